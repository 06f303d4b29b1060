"""augment --weight-headroom H (headroom.py): the trained pretrained weights' int8 grids made H
times coarser at augment time. What is rescaled (the trained layers' weights and biases, a
depthwise layer's trained channels only, never the new head or a frozen layer, a bias shared
with a frozen layer copied first), that H = 1 writes the same bytes as no option, that the
engines (numpy, C, TFLM) and the generated program train such a model with the same bits,
that its export carries the new scales and verifies, and that a bad H is a one-line error.
H = "auto" (the rule): only the trained layers feeding the classifier are rescaled, by 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from checkpoint_helpers import train_steps
from conftest import shared_model
from test_codegen import assert_identical, host_run, ratio_scheme, training_model
from test_export import check_plain, inference_matches, trained_parameters
from test_train_cli import one_line_error, run
from tflite_train import augment, checkpoint, export, headroom, tflite_io
from tflite_train import scheme as schemes
from tflite_train.autodiff import Hyper
from tflite_train.cli import main
from tflite_train.demo import EXAMPLE
from tflite_train.errors import TTError
from tflite_train.fixedpoint import round_half_away
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.runtime.tflm_engine import TFLMExecutor
from tflite_train.verify import verify


def test_round_away_rounds_ties_away_from_zero():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1.4, -1.6])
    assert round_half_away(x).tolist() == [-3, -2, -1, 1, 2, 3, 1, -2]


def rescaled_pairs(before, after, k):
    """(weights before, after), (bias before, after) of operator k."""
    ob, oa = before.operators[k], after.operators[k]
    return ((before.tensors[ob.inputs[1]], after.tensors[oa.inputs[1]]),
            (before.tensors[ob.inputs[2]], after.tensors[oa.inputs[2]]))


@pytest.mark.parametrize("h", [2, 3, 4.5])
def test_trained_layers_are_rescaled_and_nothing_else(zoo, h):
    """last:2 of the mobile zoo model: its two trained layers' weights get scale x H and
    codes round(q / H), their biases likewise; every other tensor keeps its bytes."""
    before = tflite_io.load(zoo["mobile"])
    after = tflite_io.load(zoo["mobile"])
    scheme = schemes.parse("last:2", after)
    trained = [k for k, u in scheme.layers.items() if u.weight_channels]
    assert len(trained) == 2
    record = headroom.apply(after, scheme.layers, h, set())
    assert [r["channels"] == r["of"] for r in record] == [True, True]
    for k in trained:
        (w0, w1), (b0, b1) = rescaled_pairs(before, after, k)
        assert np.array_equal(w1.quant.scale, (w0.quant.scale * np.float32(h)).astype(np.float32))
        assert np.array_equal(w1.data, round_half_away(w0.data / h).astype(np.int8))
        assert np.array_equal(b1.quant.scale, (b0.quant.scale * np.float32(h)).astype(np.float32))
        assert np.array_equal(b1.data, round_half_away(b0.data.astype(np.int64) / h))
        assert np.abs(w1.data.astype(np.int32) * h - w0.data).max() <= h / 2
    touched = {after.operators[k].inputs[i] for k in trained for i in (1, 2)}
    for i, (t0, t1) in enumerate(zip(before.tensors, after.tensors)):
        if i not in touched:
            assert t0.data is None and t1.data is None or np.array_equal(t0.data, t1.data)
            assert t0.quant is None or np.array_equal(t0.quant.scale, t1.quant.scale)


def test_a_depthwise_layer_rescales_its_trained_channels_only(zoo):
    """A depthwise filter's scales run along the trained axis: only the trained channels'
    grid changes; a convolution's trained input channels touch every output channel."""
    graph = tflite_io.load(zoo["mobile"])
    before = tflite_io.load(zoo["mobile"])
    dw = next(k for k, op in enumerate(graph.operators) if op.kind == "DEPTHWISE_CONV_2D")
    conv = next(k for k, op in enumerate(graph.operators) if op.kind == "CONV_2D"
                and graph.tensors[op.inputs[1]].shape[-1] > 1)
    layers = {dw: schemes.LayerUpdate(dw, weight_channels=2),
              conv: schemes.LayerUpdate(conv, weight_channels=1)}
    record = headroom.apply(graph, layers, 2, set())
    (w0, w1), (b0, b1) = rescaled_pairs(before, graph, dw)
    n = w0.quant.scale.size
    assert n > 2 and w0.quant.axis == 3
    assert np.array_equal(w1.quant.scale[:2], w0.quant.scale[:2] * 2)
    assert np.array_equal(w1.quant.scale[2:], w0.quant.scale[2:])
    assert np.array_equal(w1.data[..., 2:], w0.data[..., 2:])
    assert np.array_equal(b1.data[2:], b0.data[2:]) and np.array_equal(b1.quant.scale[2:],
                                                                       b0.quant.scale[2:])
    (c0, c1), _ = rescaled_pairs(before, graph, conv)
    assert np.array_equal(c1.quant.scale, c0.quant.scale * 2)
    done = {r["layer"]: (r["channels"], r["of"]) for r in record}
    name = lambda k: graph.tensors[graph.operators[k].outputs[0]].name      # noqa: E731
    assert done == {name(dw): (2, n), name(conv): (c0.quant.scale.size,) * 2}


def test_a_bias_shared_with_a_frozen_layer_is_copied(zoo):
    """The converter stores equal constants once (zero biases): the trained layer gets its
    own rescaled copy, the frozen reader keeps the original."""
    graph = tflite_io.load(zoo["mobile"])
    convs = [k for k, op in enumerate(graph.operators) if op.kind == "CONV_2D"]
    a, b = next((a, b) for a in convs for b in convs if a < b and
                graph.tensors[graph.operators[a].inputs[2]].shape
                == graph.tensors[graph.operators[b].inputs[2]].shape)
    shared = graph.operators[a].inputs[2]
    graph.operators[b].inputs[2] = shared
    kept = graph.tensors[shared].data.copy()
    headroom.apply(graph, {a: schemes.LayerUpdate(a, weight_channels=1)}, 2, set())
    assert graph.operators[b].inputs[2] == shared and np.array_equal(
        graph.tensors[shared].data, kept)
    own = graph.operators[a].inputs[2]
    assert own != shared and graph.tensors[own].name.endswith("/headroom")


def test_the_new_head_and_frozen_layers_keep_their_grids(zoo):
    """augment with a new head: the head's grid is the same with and without the option;
    the metadata records the factor and the layers; a bias-only scheme changes nothing."""
    def model(h, scheme="last:2"):
        return augment.augment(tflite_io.load(zoo["mobile"]), scheme, 5,
                               Hyper(lr=0.1, seed=1, weight_headroom=h))
    one, two = model(1), model(2)
    names = lambda r: {t.name: t for t in r.graph.tensors}                   # noqa: E731
    assert np.array_equal(names(one)["head/weights"].quant.scale,
                          names(two)["head/weights"].quant.scale)
    assert "weight_headroom" not in one.metadata
    record = two.metadata["weight_headroom"]
    assert record["factor"] == 2.0 and len(record["layers"]) == 2        # the head excluded
    assert not any(r["layer"].startswith("head/") for r in record["layers"])
    meta = json.loads(two.graph.metadata[augment.METADATA_KEY])
    assert meta["weight_headroom"] == record
    # bias-only trains no pretrained weight: every tensor as without the option, the
    # metadata saying so
    four, plain = model(4, "bias-only"), model(1, "bias-only")
    assert four.metadata["weight_headroom"] == {"factor": 4.0, "layers": []}
    assert len(four.graph.tensors) == len(plain.graph.tensors)
    for a, b in zip(four.graph.tensors, plain.graph.tensors):
        assert a.name == b.name and (a.data is None) == (b.data is None)
        assert a.data is None or a.data.tobytes() == b.data.tobytes()
        assert a.quant is None or a.quant.scale.tobytes() == b.quant.scale.tobytes()


def test_headroom_1_writes_the_same_bytes(zoo, monkeypatch):
    """H = 1 writes the model augment wrote before the option (headroom.apply a no-op)."""
    b = augment.augment(tflite_io.load(zoo["mobile"]), "full", 3,
                        Hyper(lr=0.1, weight_headroom=1.0))
    monkeypatch.setattr(headroom, "apply", lambda *args, **kw: [])
    a = augment.augment(tflite_io.load(zoo["mobile"]), "full", 3,
                        Hyper(lr=0.1, weight_headroom=1.0))
    assert tflite_io.serialize(a.graph) == tflite_io.serialize(b.graph)
    assert "weight_headroom" not in b.metadata


def test_auto_is_the_default(tmp_path, capsys):
    """augment without the option rescales the layer feeding the new head (the API and the
    command line); --weight-headroom 1 keeps every grid and prints nothing about it."""
    assert Hyper().weight_headroom == "auto"
    result = augment.augment(tflite_io.load(shared_model("person_detect")), "last:2", 10,
                             Hyper(seed=2))
    assert result.metadata["weight_headroom"]["rule"] == "auto"
    out = tmp_path / "d.train.tflite"
    code, text, _ = run(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                        "--scheme", "full")
    assert code == 0 and "weight headroom 2x (auto: " in text
    code, text, _ = run(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                        "--scheme", "full", "--weight-headroom", "1")
    assert code == 0 and "weight headroom" not in text
    assert "weight_headroom" not in augment.training_metadata(tflite_io.load(out))


def engine_state(ex, graph):
    out = {graph.tensors[k].name: v.tobytes() for k, v in ex.variables.items()}
    for k, p, _ in checkpoint.update_ops(graph):
        out[f"state of {graph.tensors[p].name}"] = ex.update_state(k)
    return out


CASES = [("mobile", "last:3", 5, "int8", 2.0, True),
         ("mobile", "last:3", 5, "int8", "auto", True),
         ("mobile", "full", None, "float32", 4.0, False),
         ("depthwise", "full", None, "int8", 3.0, True),
         ("dense", "full", None, "float32", 2.0, True)]


@pytest.mark.parametrize("name, scheme, classes, grad, h, fuse", CASES)
def test_numpy_c_and_tflm_train_a_headroom_model_with_the_same_bits(zoo, name, scheme,
                                                                    classes, grad, h, fuse):
    graph = augment.augment(tflite_io.load(zoo[name]), scheme, classes,
                            Hyper(lr=0.05, momentum=0.5, seed=3, grad=grad,
                                  weight_headroom=h), fuse=fuse).graph
    assert json.loads(graph.metadata[augment.METADATA_KEY])["weight_headroom"]["layers"]
    runs = []
    for ex in (Executor(graph, "numpy"), Executor(graph, "c"), TFLMExecutor(graph)):
        losses = train_steps(graph, ex, 4, seed=2)
        runs.append((losses, engine_state(ex, graph)))
    assert runs[0] == runs[1] == runs[2]
    assert all(np.isfinite(runs[0][0]))


def test_generated_program_trains_a_headroom_model_like_engine_c(tmp_path):
    """Split filters (their frozen rest in flash shares the rescaled grid) and a fused
    update, in the generated C program."""
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25), (-2, 1)], n_bias=5)
    model = training_model(tmp_path, EXAMPLE, scheme,
                           hyper=Hyper(momentum=0.9, grad="int8", weight_headroom=2))
    program, got, want = host_run(model, tmp_path / "gen")
    assert len(program.splits) >= 2
    assert_identical(program, got, want)


def test_the_export_carries_the_new_scales_and_verifies(zoo):
    base = tflite_io.load(shared_model("person_detect"))
    result = augment.augment(base, "last:2", 10, Hyper(seed=2, weight_headroom=2))
    graph = result.graph
    ex = Executor(graph, "c")
    train_steps(graph, ex, 3, seed=1)
    exported = export.export(graph, trained_parameters(graph, ex), {"test": True})
    check_plain(exported, graph)
    inference_matches(graph, ex, exported)
    assert verify(exported, tflite_io.serialize(exported), samples=1).exact
    original = {t.name: t for t in tflite_io.load(shared_model("person_detect")).tensors}
    rescaled = [t for t in exported.tensors if t.name in original
                and t.quant is not None and t.quant.scale.size == original[t.name].quant.scale.size
                and not np.array_equal(t.quant.scale, original[t.name].quant.scale)]
    # the two trained layers' weights and biases
    assert len(rescaled) == 4
    assert all(np.array_equal(t.quant.scale, original[t.name].quant.scale * 2) for t in rescaled)


@pytest.mark.parametrize("h", [0.5, 0, -2, 17, float("nan"), float("inf"), True, "2",
                               "Auto", "auto2", None])
def test_a_bad_headroom_is_a_one_line_error(zoo, h):
    with pytest.raises(TTError) as exc:
        augment.augment(tflite_io.load(zoo["mobile"]), "last:2", 3,
                        Hyper(lr=0.1, weight_headroom=h))
    assert "--weight-headroom must be auto or a number in [1, 16]" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("value", ["0.5", "17", "nan", "two", "AUTO"])
def test_a_bad_headroom_on_the_command_line(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["augment", str(EXAMPLE), "-o", str(tmp_path / "o.tflite"),
              "--weight-headroom", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--weight-headroom" in err[-1] and value in err[-1]
    assert not (tmp_path / "o.tflite").exists()


def test_the_command_line_says_what_it_rescaled(tmp_path, capsys):
    out = tmp_path / "h.train.tflite"
    code, text, _ = run(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                        "--scheme", "last:2", "--weight-headroom", "2")
    assert code == 0
    assert "weight headroom 2x: the int8 grids of 2 trained pretrained layers made 2x " \
        "coarser" in text
    meta = augment.training_metadata(tflite_io.load(out))
    assert meta["weight_headroom"]["factor"] == 2.0


def names_of(graph):
    return {t.name: t for t in graph.tensors}


def test_auto_rescales_only_the_layer_feeding_the_new_head(zoo):
    """mobile -> a new head: "full" trains every layer, "auto" rescales the one the head
    reads (the dense layer before it) by 2, exactly as H = 2 does it, and no other tensor;
    the metadata names the rule."""
    def model(h):
        return augment.augment(tflite_io.load(zoo["mobile"]), "full", 5,
                               Hyper(lr=0.1, seed=1, weight_headroom=h))
    plain, auto, two = model(1), model("auto"), model(2)
    record = auto.metadata["weight_headroom"]
    assert record["factor"] == 2.0 and record["rule"] == "auto"
    assert len(record["layers"]) == 1 and len(two.metadata["weight_headroom"]["layers"]) > 2
    fed = record["layers"][0]["layer"]
    kinds = {auto.graph.tensors[op.outputs[0]].name: op.kind
             for op in auto.backward.forward_ops}
    assert kinds[fed] == "FULLY_CONNECTED"
    changed = [n for n, t in names_of(auto.graph).items()
               if t.quant is not None and n in names_of(plain.graph)
               and not np.array_equal(t.quant.scale, names_of(plain.graph)[n].quant.scale)]
    assert len(changed) == 2                          # the dense layer's weights and bias
    for n in changed:                                 # the same grids as H = 2 gives them
        assert np.array_equal(names_of(auto.graph)[n].quant.scale,
                              names_of(two.graph)[n].quant.scale)
        assert np.array_equal(names_of(auto.graph)[n].data, names_of(two.graph)[n].data)


def test_auto_on_the_person_detector_rescales_its_last_pointwise_conv_only():
    """last:2 trains Conv2d_13's depthwise and pointwise layers: only the pointwise one
    feeds the head (through the average pool and the reshape)."""
    base = tflite_io.load(shared_model("person_detect"))
    result = augment.augment(base, "last:2", 10, Hyper(seed=2, weight_headroom="auto"))
    layers = [r["layer"] for r in result.metadata["weight_headroom"]["layers"]]
    assert layers == ["MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6"]
    original = names_of(tflite_io.load(shared_model("person_detect")))
    rescaled = sorted(n for n, t in names_of(result.graph).items()
                      if n in original and t.quant is not None
                      and t.quant.scale.size == original[n].quant.scale.size
                      and not np.array_equal(t.quant.scale, original[n].quant.scale))
    assert len(rescaled) == 2 and all("Conv2d_13_pointwise" in n for n in rescaled)


def test_feeding_walks_through_adds_pools_and_reshapes(zoo):
    """mean_model's classifier reads MEAN <- TRANSPOSE <- ADD of a conv and a 1x1 conv on a
    pooled branch: both convs feed it, nothing before them does."""
    graph = tflite_io.load(zoo["mean"])
    convs = [k for k, op in enumerate(graph.operators) if op.kind == "CONV_2D"]
    assert len(convs) == 2
    assert headroom.feeding(graph, augment.find_logits(graph)) == set(convs)
    graph = tflite_io.load(zoo["branches"])     # dense <- reshape <- the strided conv
    last = max(k for k, op in enumerate(graph.operators) if op.kind == "CONV_2D")
    assert headroom.feeding(graph, augment.find_logits(graph)) == {last}


def test_auto_changes_nothing_where_no_trained_layer_feeds_the_head(zoo, tmp_path):
    """A trained layer deeper in the network keeps its grid, and a model whose trained
    layers are all deeper is the model without the option, byte for byte (no metadata)."""
    graph = tflite_io.load(zoo["mobile"])
    first = next(k for k, op in enumerate(graph.operators) if op.kind == "CONV_2D")
    kept = graph.tensors[graph.operators[first].inputs[1]].data.copy()
    record = headroom.apply(graph, {first: schemes.LayerUpdate(first, weight_channels=1)},
                            "auto", set(), augment.find_logits(graph))
    assert record == [] and np.array_equal(graph.tensors[graph.operators[first].inputs[1]]
                                           .data, kept)
    # the pointwise conv before the pool and the dense layer: trained, but not feeding the head
    deep = ratio_scheme(tmp_path, [(-2, 1)], n_bias=2)
    for scheme in ("bias-only", deep):
        a = augment.augment(tflite_io.load(zoo["mobile"]), scheme, 3, Hyper(lr=0.1))
        b = augment.augment(tflite_io.load(zoo["mobile"]), scheme, 3,
                            Hyper(lr=0.1, weight_headroom="auto"))
        assert "weight_headroom" not in b.metadata
        assert tflite_io.serialize(a.graph) == tflite_io.serialize(b.graph)
    two = augment.augment(tflite_io.load(zoo["mobile"]), deep, 3,
                          Hyper(lr=0.1, weight_headroom=2))
    assert len(two.metadata["weight_headroom"]["layers"]) == 1     # it does train weights


def test_auto_without_a_new_head_rescales_what_feeds_the_model_classifier(zoo):
    """No new head: the layer computing the logits is the model's own dense layer; what
    feeds it (the dense RELU layer) is rescaled, the classifier keeps its grid."""
    result = augment.augment(tflite_io.load(zoo["mobile"]), "full", None,
                             Hyper(lr=0.1, weight_headroom="auto"))
    record = result.metadata["weight_headroom"]["layers"]
    fo = result.backward.forward_ops
    dense = [result.graph.tensors[op.outputs[0]].name for op in fo
             if op.kind == "FULLY_CONNECTED"]
    assert len(dense) == 2 and [r["layer"] for r in record] == dense[:1]


def test_the_command_line_takes_auto(tmp_path, capsys):
    out = tmp_path / "a.train.tflite"
    code, text, _ = run(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                        "--scheme", "full", "--weight-headroom", "auto")
    assert code == 0
    assert "weight headroom 2x (auto: the trained layers feeding the classifier): the int8 " \
        "grids of 1 trained pretrained layer made 2x coarser" in text
    meta = augment.training_metadata(tflite_io.load(out))
    assert meta["weight_headroom"]["rule"] == "auto"
