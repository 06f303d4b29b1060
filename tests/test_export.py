"""`tflite-train export`: the exported inference model computes exactly what the training
model computes with label < 0 (numpy, C and TFLM engines; the exported model in numpy and in
TFLM), passes `verify`, can be augmented and trained again, keeps the original metadata,
and reads both a state file of `train -o` and a device checkpoint blob; bad state files are
one-line errors."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from checkpoint_helpers import train_steps
from conftest import shared_model
from test_train_cli import blobs_dataset, one_line_error, run
from tflite_train import augment, checkpoint, export, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.data import Dataset
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import make_executor
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.runtime.tflm import TFLMInterpreter
from tflite_train.train import save_state, train
from tflite_train.verify import random_inputs, verify

ENGINES = ["numpy", "c", "tflm"]


def trained_parameters(graph, executor) -> dict[int, np.ndarray]:
    return {i: np.array(executor.variables[i]) for i in checkpoint.trained_parameters(graph)}


def inference_matches(graph, executor, exported, samples: int = 3) -> None:
    """The training model's label < 0 pass on `executor` == the exported model in numpy ==
    the exported model in the TFLM interpreter, every output element."""
    model = tflite_io.serialize(exported)
    tflm = TFLMInterpreter(model, preserve_all=False)
    rng = np.random.default_rng(5)
    for _ in range(samples):
        xs = random_inputs(exported, rng)
        want = executor.invoke(xs + [np.array([-1], np.int32)])
        ours = Executor(exported).outputs(xs)
        tflm.invoke(xs)
        for k, (i, j) in enumerate(zip(graph.outputs[:-1], exported.outputs)):
            w = np.asarray(want[i]).reshape(exported.tensors[j].shape)
            assert ours[k].dtype == w.dtype and np.array_equal(ours[k], w)
            assert np.array_equal(tflm.output(k).reshape(w.shape), w)


def check_plain(exported, graph) -> None:
    assert not any(op.opcode == "CUSTOM" for op in exported.operators)
    assert not any(t.is_variable for t in exported.tensors)
    assert len(exported.inputs) == len(graph.inputs) - 1
    assert len(exported.outputs) == len(graph.outputs) - 1
    assert augment.METADATA_KEY not in exported.metadata


@pytest.fixture(scope="module")
def models(request):
    """name -> a training model of a real model: the person detector's bias-only with a new
    10-class head (float32 or int8 gradients), a zoo model's last three layers with a new
    5-class head."""
    def make(name):
        if name.startswith("person_detect"):
            base = tflite_io.load(shared_model("person_detect"))
            grad = "int8" if name.endswith("int8") else "float32"
            return augment.augment(base, "bias-only", 10, Hyper(seed=2, grad=grad)).graph
        base = tflite_io.load(request.getfixturevalue("zoo")["mobile"])
        return augment.augment(base, "last:3", 5, Hyper(momentum=0.5, seed=2)).graph
    return make


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["person_detect", "person_detect_int8", "zoo_mobile"])
def test_export_is_bit_identical_to_the_training_models_inference(models, name, engine, zoo):
    graph = models(name)
    executor = make_executor(graph, engine)
    train_steps(graph, executor, 3, seed=1)
    exported = export.export(graph, trained_parameters(graph, executor), {"test": True})
    check_plain(exported, graph)
    inference_matches(graph, executor, exported)
    if engine == "c":       # every tensor of the exported model: numpy forward == TFLM
        assert verify(exported, tflite_io.serialize(exported), samples=1).exact
        # and its layers are the original's, fused activations included: the RELU6 and
        # RELU whose int8 range is NONE's too (augment records them) compute the same in
        # int8 but not in float, nor in the ReLU masks of a training model made from it
        base = tflite_io.load(shared_model("person_detect")) if name.startswith("person") \
            else tflite_io.load(zoo["mobile"])
        layers = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        acts = lambda g: {g.tensors[op.outputs[0]].name:                  # noqa: E731
                          op.options["fused_activation_function"]
                          for op in g.operators if op.kind in layers}
        want, got = acts(base), acts(exported)
        assert len(set(want) & set(got)) >= len(want) - 1             # the head is new
        assert all(got[n] == a for n, a in want.items() if n in got)


def example_training(tmp_path, steps=40, engine="c"):
    """The built-in example with a new 3-class head, trained on easy images."""
    r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 3, Hyper(momentum=0.5, seed=4))
    path = tmp_path / "ex.train.tflite"
    tflite_io.save(r.graph, path)
    data = np.load(blobs_dataset(tmp_path / "blobs.npz", n=90))
    dataset = Dataset("blobs", data["x"], data["y"], ["0", "1", "2"])
    trainer, history = train(r.graph, dataset, steps=steps, val_split=0.1, engine=engine)
    return path, trainer, history


def test_a_device_checkpoint_and_the_state_file_export_the_same_model(tmp_path):
    path, trainer, history = example_training(tmp_path)
    graph, model = tflite_io.load(path), path.read_bytes()
    save_state(tmp_path / "state.npz", trainer, history, model)
    ckpt = checkpoint.capture(trainer.executor, graph, checkpoint.model_id(model), sequence=9)
    (tmp_path / "blob.bin").write_bytes(checkpoint.to_blob(ckpt) + b"\xff" * 300)
    a = export.write(str(path), str(tmp_path / "state.npz"), str(tmp_path / "a.tflite"))
    b = export.write(str(path), str(tmp_path / "blob.bin"), str(tmp_path / "b.tflite"))
    assert a["source"] == {"kind": "state file", "steps": 40}
    assert b["source"] == {"kind": "device checkpoint", "sequence": 9, "steps": 40}
    ga, gb = a["graph"], b["graph"]
    assert len(ga.tensors) == len(gb.tensors)
    for ta, tb in zip(ga.tensors, gb.tensors):
        assert ta.name == tb.name and (ta.data is None) == (tb.data is None)
        assert ta.data is None or np.array_equal(ta.data, tb.data)
    # the state file also keeps what a resume would need
    saved = np.load(tmp_path / "state.npz")
    state = json.loads(str(saved["__state__"]))
    assert state["model_id"] == f"{checkpoint.model_id(model):#018x}"
    for k, p, m in checkpoint.update_ops(graph):
        assert state["update_states"][graph.tensors[p].name] == \
            list(trainer.executor.update_state(k))
        if m >= 0:                     # -1: an int8 gradient's stream, no momentum
            assert np.array_equal(saved[graph.tensors[m].name], trainer.executor.variables[m])


def test_train_export_verify_augment_train_export_again(tmp_path, capsys):
    """Continual learning from the command line: train, export, verify; augment the
    export (its trained head kept), train on, export again."""
    data = blobs_dataset(tmp_path / "blobs.npz", n=90)
    base = tmp_path / "base.tflite"
    base.write_bytes(EXAMPLE.read_bytes())
    files = {n: tmp_path / n for n in ("m1.train.tflite", "s1.npz", "m1.tflite",
                                       "m2.train.tflite", "s2.npz", "m2.tflite")}
    assert run(capsys, "augment", base, "-o", files["m1.train.tflite"], "--num-classes", 3,
               "--scheme", "last:2")[0] == 0
    assert run(capsys, "train", files["m1.train.tflite"], "--data", data, "--steps", 30,
               "-o", files["s1.npz"], "--engine", "c")[0] == 0
    before = {n: hashlib.sha256(f.read_bytes()).hexdigest() for n, f in files.items()
              if f.exists()}
    code, out, _ = run(capsys, "export", files["m1.train.tflite"], "--state", files["s1.npz"],
                       "-o", files["m1.tflite"])
    assert code == 0 and "30 training steps" in out and "trained tensors folded in" in out
    assert {n: hashlib.sha256(files[n].read_bytes()).hexdigest() for n in before} == before
    code, out, _ = run(capsys, "verify", files["m1.tflite"], "--samples", 3)
    assert code == 0 and out.rstrip().endswith("bit-exact")
    # the exported head is the trained one: train it on without a new head
    assert run(capsys, "augment", files["m1.tflite"], "-o", files["m2.train.tflite"],
               "--scheme", "last:1")[0] == 0
    assert run(capsys, "train", files["m2.train.tflite"], "--data", data, "--steps", 20,
               "-o", files["s2.npz"])[0] == 0
    assert run(capsys, "export", files["m2.train.tflite"], "--state", files["s2.npz"],
               "-o", files["m2.tflite"])[0] == 0
    assert run(capsys, "verify", files["m2.tflite"], "--samples", 2)[0] == 0
    m1, m2 = tflite_io.load(files["m1.tflite"]), tflite_io.load(files["m2.tflite"])
    head = "head/weights"
    w1 = next(t.data for t in m1.tensors if t.name == head)
    w2 = next(t.data for t in m2.tensors if t.name == head)
    assert not np.array_equal(w1, w2)                       # the second run trained it
    records = export.exports(m2)
    assert [r["state"]["file"] for r in records] == ["s1.npz", "s2.npz"]
    assert records[0]["scheme"] == "last:2" and records[1]["scheme"] == "last:1"


def test_export_keeps_the_original_metadata(zoo, tmp_path):
    base = tflite_io.load(zoo["dense"])
    assert base.metadata
    g = augment.augment(tflite_io.load(zoo["dense"]), "full", None, Hyper()).graph
    ex = Executor(g)
    train_steps(g, ex, 2, seed=3)
    exported = export.export(g, trained_parameters(g, ex), {"test": 1})
    for key, blob in base.metadata.items():
        assert exported.metadata[key] == blob
    assert export.exports(exported) == [{"test": 1}]
    inference_matches(g, ex, exported, samples=2)


def test_the_person_detector_from_train_to_verify(tmp_path, capsys):
    """The issue's command line: augment, train -o state.npz, export, verify."""
    pd = shared_model("person_detect")
    model, state, tuned = (tmp_path / n for n in ("pd.train.tflite", "state.npz",
                                                  "pd.tuned.tflite"))
    data = blobs_dataset(tmp_path / "blobs.npz", n=40, classes=3, size=48)
    assert run(capsys, "augment", pd, "-o", model, "--num-classes", 3,
               "--scheme", "bias-only")[0] == 0
    assert run(capsys, "train", model, "--data", data, "--steps", 4, "--engine", "c",
               "-o", state)[0] == 0
    assert run(capsys, "export", model, "--state", state, "-o", tuned)[0] == 0
    code, out, _ = run(capsys, "verify", tuned, "--samples", 2)
    assert code == 0 and out.rstrip().endswith("bit-exact")


# --- bad state files -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained example, its state file and its device checkpoint; a second training
    model (another seed: another model id, same shapes) and its state."""
    d = tmp_path_factory.mktemp("bad")
    path, trainer, history = example_training(d, steps=5)
    graph, model = tflite_io.load(path), path.read_bytes()
    save_state(d / "state.npz", trainer, history, model)
    ckpt = checkpoint.capture(trainer.executor, graph, checkpoint.model_id(model), 3)
    (d / "blob.bin").write_bytes(checkpoint.to_blob(ckpt))
    other = augment.augment(tflite_io.load(EXAMPLE), "last:2", 3, Hyper(momentum=0.5, seed=5))
    tflite_io.save(other.graph, d / "other.train.tflite")
    small = augment.augment(tflite_io.load(EXAMPLE), "last:1", 3, Hyper(seed=4))
    tflite_io.save(small.graph, d / "small.train.tflite")
    return d, path


def bad(capsys, d, model, state_bytes: bytes | None, name="bad.bin", state=None) -> str:
    if state_bytes is not None:
        state = d / name
        state.write_bytes(state_bytes)
    out = d / "out.tflite"
    msg = one_line_error(capsys, "export", model, "--state", state, "-o", out)
    assert not out.exists()
    return msg


def test_bad_state_files_are_one_line_errors(trained, capsys):
    d, model = trained
    blob, npz = (d / "blob.bin").read_bytes(), (d / "state.npz").read_bytes()
    other, small = d / "other.train.tflite", d / "small.train.tflite"
    # another model: refused by its identity, whichever the format
    assert "another training model" in bad(capsys, d, other, None, state=d / "blob.bin")
    assert "another training model" in bad(capsys, d, other, None, state=d / "state.npz")
    # truncated
    assert "truncated" in bad(capsys, d, model, blob[:-10])
    assert "truncated" in bad(capsys, d, model, blob[:20])
    assert "truncated or corrupt" in bad(capsys, d, model, npz[:len(npz) // 2], "cut.npz")
    # a flipped bit
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 4
    assert "CRC-32 mismatch" in bad(capsys, d, model, bytes(flipped))
    flipped = bytearray(npz)
    k = npz.index(b"head/weights.npy") + 200     # inside that member's data
    flipped[k] ^= 4
    assert "truncated or corrupt" in bad(capsys, d, model, bytes(flipped), "flip.npz")
    # wrong shapes: a state file edited by hand, a checkpoint of another layout
    arrays = dict(np.load(d / "state.npz"))
    arrays["head/weights"] = arrays["head/weights"][:, :-1]
    np.savez(d / "shape.npz", **arrays)
    assert "needs int8" in bad(capsys, d, model, None, state=d / "shape.npz")
    ckpt = checkpoint.Checkpoint(checkpoint.model_id(small.read_bytes()),
                                 checkpoint.layout(tflite_io.load(model)),
                                 checkpoint.from_blob(blob, tflite_io.load(model),
                                                      model.read_bytes()).values)
    assert "region table does not match" in bad(capsys, d, small, checkpoint.to_blob(ckpt))
    # not a state at all, missing, the output over an input
    np.savez(d / "plain.npz", **{k: v for k, v in arrays.items() if k != "__state__"})
    assert "not a tflite-train state file" in bad(capsys, d, model, None,
                                                  state=d / "plain.npz")
    assert "neither a state file" in bad(capsys, d, model, b"hello, world" * 10)
    assert "no such file" in bad(capsys, d, model, None, state=d / "missing.npz")
    assert "is an input file" in one_line_error(capsys, "export", model, "--state",
                                                d / "blob.bin", "-o", d / "blob.bin")
    assert "not a training model" in one_line_error(capsys, "export", EXAMPLE, "--state",
                                                    d / "blob.bin", "-o", d / "x.tflite")
    assert (d / "blob.bin").read_bytes() == blob
