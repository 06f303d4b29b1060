"""The fp32 baseline (tflite_train/fp32.py): TensorFlow fine-tuning of the same trainable set,
read from the training model, whether its updates are fused (augment's default) or separate;
and benchmarks/transfer.py running it beside int8 training, on the built-in example model."""
import importlib.util
import json
import subprocess
import sys

import numpy as np

from conftest import require_tool, shared_model
from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE

ROOT = EXAMPLE.parents[2]


def test_float_trainer_trains_the_same_set_fused_or_separate():
    """Fused and separate update ops name the same parameters with the same options, so the
    float trainer builds the same variables and its steps give the same losses (bit for
    bit: the same TensorFlow computation); the trainable set is exactly the int8 model's
    (every integer variable TT_INIT fills); and the updates are applied."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    from tflite_train.fp32 import FloatTrainer, updates
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, (4, 1, 32, 32, 1)).astype(np.int8)
    losses = {}
    for fuse in (True, False):
        r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4,
                            Hyper(lr=0.05, momentum=0.5, decay_steps=100), fuse=fuse)
        g = r.graph
        assert any(op.kind.endswith("_WEIGHT_UPDATE") for op in g.operators) == fuse
        init = next(op for op in g.operators if op.kind == "TT_INIT")
        params = {g.tensors[p].name for p, _ in updates(g)}
        assert params == {g.tensors[v].name for v in init.inputs[1::2]    # not the momentum
                          if g.tensors[v].dtype != "float32"}
        ft = FloatTrainer(g)
        losses[fuse] = [ft.step(x, i % 4) for i, x in enumerate(xs)]
        # the updates are applied: ten more steps on one sample lower its loss
        losses[fuse] += [ft.step(xs[1], 1) for _ in range(10)]
        assert losses[fuse][-1] < losses[fuse][1] / 2, losses[fuse]
    assert losses[True] == losses[False]


def test_transfer_benchmark_runs_fp32_beside_int8(tmp_path):
    """benchmarks/transfer.py --variants qas,fp32 end to end on the example model (32x32x1)
    and a small .npz of 4 classes: one row per scheme and variant, accuracies in [0, 1]."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    rng = np.random.default_rng(1)
    y = np.arange(40) % 4
    x = (rng.integers(0, 64, (40, 32, 32)) + 48 * y[:, None, None]).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    out = tmp_path / "rows.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "transfer.py"),
                          "--model", str(EXAMPLE), "--data", str(tmp_path / "tiny.npz"),
                          "--schemes", "bias-only,last:1", "--steps", "12", "--val", "4",
                          "--variants", "qas,fp32", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["scheme"], r["variant"]) for r in rows] == [
        ("bias-only", "int8 + QAS"), ("bias-only", "fp32"),
        ("last:1", "int8 + QAS"), ("last:1", "fp32")]
    assert all(0 <= r["val_accuracy"] <= 1 and r["trained_params"] > 0 for r in rows)
    assert "| last:1 | fp32 |" in res.stdout


def float_forwards_agree(load, scheme: str, num_classes: int) -> dict:
    """The float forward FloatTrainer reads from a default-augmented training model (memory
    passes on) against the one from the same model augmented with every pass off, on two
    seeded int8 inputs: every tensor both have, bit for bit (tolerance 0: the same
    TensorFlow ops on the same dequantized constants, one thread). Returns the default
    model's memory record."""
    from tflite_train.fp32 import FloatTrainer
    off = augment.MemoryOptions(split_filters=False, in_place=False, flash_requant=False,
                                stream=False)
    hyper = Hyper(lr=0.01, grad="float32", seed=0)
    on = augment.augment(load(), scheme, num_classes, hyper)
    plain = augment.augment(load(), scheme, num_classes, hyper, memory=off)
    trainers = [FloatTrainer(r.graph) for r in (on, plain)]
    shape = on.graph.tensors[on.graph.inputs[0]].shape
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(2):
        x = rng.integers(-128, 128, shape).astype(np.int8)
        values = [{t.graph.tensors[i].name: np.asarray(v)
                   for i, v in t._forward(t.real_input(x)).items()} for t in trainers]
        for name, v in values[1].items():
            if name in values[0]:
                assert np.array_equal(values[0][name], v), name
                compared += 1
    assert compared >= 2 * len(trainers[1].forward_ops), compared
    return on.metadata["memory"]


def test_float_forward_survives_the_memory_passes_zoo(zoo):
    """A zoo model whose RELU and RELU6 outputs span their whole int8 grid (so that their
    TT_* ops' int8 range is NONE's) and whose filters are split: the float forward keeps
    every clamp (augment records them, passes.builtins.joined restores them). On the code
    before the record, the float forward of the split and requantized layers lost them."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    scheme = {"n_bias_update": 2, "weight_update": [{"layer": 1, "ratio": 0.5},
                                                    {"layer": 2, "ratio": 0.5}]}
    path = zoo["conv_strided"].parent / "conv_strided_split.json"
    path.write_text(json.dumps(scheme))
    memory = float_forwards_agree(lambda: tflite_io.load(zoo["conv_strided"]), str(path), 3)
    assert memory["split_filters"] and "6" in memory["activations"]      # a RELU6


def test_float_forward_survives_the_memory_passes_person_detector():
    """The person detector's sparse scheme: filters split, an expansion streamed, 26 RELU6
    layers whose int8 range is the whole grid."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    model = shared_model("person_detect")
    memory = float_forwards_agree(lambda: tflite_io.load(model),
                                  str(ROOT / "benchmarks" / "schemes" /
                                      "person_detect_sparse.json"), 10)
    assert memory["split_filters"] and memory["streamed"]
    assert memory["activations"].count("6") >= 20                        # RELU6


def test_weights_on_grid_diagnostic_rounds_only_the_chosen_weights():
    """benchmarks/paper_accuracy.py's fp32-sr diagnostics: after every step each chosen
    weight tensor lies on its int8 grid (code = real / scale an integer within +-127, to
    float32 rounding of one product), the others stay off it as plain fp32 leaves them,
    and the steps still move the weights."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from paper_accuracy import weights_on_grid
    from tflite_train.fp32 import FloatTrainer, updates
    from tflite_train.tf_float import dequantize
    g = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4, Hyper(lr=0.05)).graph
    xs = np.random.default_rng(0).integers(-128, 128, (6, 1, 32, 32, 1)).astype(np.int8)
    for which in ("all", "head", "body", None):
        ft = (FloatTrainer if which is None else weights_on_grid(FloatTrainer, 0, which))(g)
        before = [var.numpy().copy() for var, *_ in ft.rules]
        for i, x in enumerate(xs):
            ft.step(x, i % 4)
        for (p, o), (var, *_), b in zip(updates(ft.graph), ft.rules, before):
            t = ft.graph.tensors[p]
            if t.dtype != "int8":
                continue
            assert not np.array_equal(var.numpy(), b), t.name
            q = var.numpy() / dequantize(t, np.ones(var.shape, np.int8), o.get("axis", 0))
            on_grid = np.abs(q - np.rint(q)).max() < 1e-3 and np.abs(q).max() <= 127.001
            head = t.name.startswith("head/")
            assert on_grid == (which == "all" or (which == "head") == head
                               if which else False), (which, t.name)
