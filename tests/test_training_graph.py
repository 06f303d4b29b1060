"""The training graph: pruning, saved activations, the contract of the written model, and
QAS making one int8 step equal one fp32 step."""
import json

import numpy as np
import pytest
import tflite

from conftest import shared_model
from tflite_train import augment, memory, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime.numpy_exec import Executor

GRAD_OPS = ("_INPUT_GRAD", "_WEIGHT_GRAD", "TT_BIAS_GRAD", "TT_AVERAGE_POOL_GRAD")


def grad_targets(result):
    """Forward op indices that have at least one backward op reading their output grad."""
    fwd = result.backward.forward_ops
    grad_of = {v: k for k, v in result.backward.grads.items()}
    producers = {t: k for k, op in enumerate(fwd) for t in op.outputs}
    hit = set()
    for op in result.backward.backward_ops:
        if op.kind.endswith(GRAD_OPS) or op.kind in GRAD_OPS:
            dy = op.inputs[0]
            if dy in grad_of and grad_of[dy] in producers:
                hit.add(producers[grad_of[dy]])
    return hit


def test_bias_only_k1_has_only_head_and_last_layer_backward_ops():
    g = tflite_io.load(shared_model("person_detect"))
    r = augment.augment(g, "bias-only:1", num_classes=10, fuse=False)
    # forward ops whose output gradient is consumed: the head (28), the pool between (27)
    # and the last conv (26); nothing earlier
    assert grad_targets(r) == {26, 27, 28}
    kinds = [op.kind for op in r.backward.backward_ops]
    assert kinds.count("TT_BIAS_GRAD") == 2
    assert "TT_CONV2D_INPUT_GRAD" not in kinds and "TT_DEPTHWISE_CONV2D_INPUT_GRAD" not in kinds
    assert kinds.count("TT_UPDATE_WEIGHT") == 1          # the head's weights


def test_full_update_has_backward_ops_for_every_layer():
    g = tflite_io.load(shared_model("person_detect"))
    r = augment.augment(g, "full", num_classes=10, fuse=False)
    layers = [k for k, op in enumerate(r.backward.forward_ops)
              if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert set(layers) <= grad_targets(r)
    kinds = [op.kind for op in r.backward.backward_ops]
    assert kinds.count("TT_UPDATE_WEIGHT") == len(layers) == 28     # 27 + the new head
    assert kinds.count("TT_UPDATE_BIAS") == 28
    # the first layer's input is the image: no gradient is computed for it
    first = r.backward.forward_ops[0]
    assert first.inputs[0] not in r.backward.grads


def test_saved_activation_bytes_match_a_hand_count(tmp_path):
    """tiny_cnn, new 4-class head, last:1 = op 7 (1x1 CONV_2D 4x4x16 -> 4x4x32, ReLU6):
    head input (MEAN output, 32 int8) + op 7 input (4x4x16 int8 = 256) + op 7's ReLU6 mask
    (512 bits = 64 bytes) = 352 bytes; with ratio 1/2 on op 7 its input slice is 128."""
    r = augment.augment(tflite_io.load(EXAMPLE), "last:1", num_classes=4)
    parts = memory.training_parts(r.graph)
    assert parts.saved_bytes == 32 + 256 + 64 and parts.mask_bytes == 64
    p = tmp_path / "half.json"
    p.write_text(json.dumps({"n_bias_update": 1, "weight_update": [{"layer": -1, "ratio": 0.5}]}))
    r = augment.augment(tflite_io.load(EXAMPLE), str(p), num_classes=4)
    parts = memory.training_parts(r.graph)
    assert parts.saved_bytes == 32 + 128 + 64
    # trained parameters: head 4x32 int8 + 4 int32, op 7's trained 8 of its 16 input
    # channels (32x1x1x8 int8: the split filter's SRAM part) + 32 int32
    assert parts.trainable_bytes == 4 * 32 + 4 * 4 + 32 * 8 + 32 * 4


def test_written_model_follows_the_contract(tmp_path):
    src = EXAMPLE.read_bytes()
    r = augment.augment(tflite_io.parse(src), "last:2", num_classes=5,
                        hyper=Hyper(lr=0.05, momentum=0.9, rounding="stochastic", seed=3))
    path = tmp_path / "m.train.tflite"
    tflite_io.save(r.graph, path)
    data = path.read_bytes()
    m = tflite.Model.GetRootAs(data, 0)                   # parses with the tflite package
    assert m.SubgraphsLength() == 1
    g = tflite_io.parse(data)
    label, loss = g.tensors[g.inputs[-1]], g.tensors[g.outputs[-1]]
    assert (label.name, label.dtype, label.shape) == ("label", "int32", (1,))
    assert (loss.name, loss.dtype, loss.shape) == ("loss", "float32", (1,))
    assert g.tensors[g.outputs[0]].shape == (1, 5)
    assert g.operators[0].kind == "TT_INIT"
    for t in g.tensors:
        if t.is_variable:
            assert t.data is None                        # trainable: empty buffers
    meta = json.loads(g.metadata["tflite_train"])
    assert meta["scheme"] == "last:2" and meta["momentum"] == 0.9 and meta["seed"] == 3
    assert meta["rounding"] == "stochastic" and meta["qas"] is True
    assert len(meta["trained"]) == 3
    # momentum buffers exist and are variables too
    assert any(t.name.endswith("/momentum") and t.is_variable for t in g.tensors)


def test_label_below_zero_is_inference_only():
    r = augment.augment(tflite_io.load(EXAMPLE), "full", num_classes=3, hyper=Hyper(lr=0.5))
    ex = Executor(r.graph)
    x = np.random.default_rng(0).integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
    before = {k: v.copy() for k, v in ex.variables.items()}
    out1 = ex.outputs([x, np.array([-1], np.int32)])
    out2 = ex.outputs([x, np.array([-1], np.int32)])
    assert np.array_equal(out1[0], out2[0]) and out1[1][0] == 0
    ex.outputs([x, np.array([1], np.int32)])
    changed = [k for k, v in ex.variables.items() if not np.array_equal(v, before[k])]
    assert changed                                       # a training step moves weights
    ex.reset()                                            # Reset re-runs TT_INIT
    assert np.array_equal(ex.outputs([x, np.array([-1], np.int32)])[0], out1[0])


def one_step(qas: bool, lr: float, rounding: str = "nearest"):
    r = augment.augment(tflite_io.load(EXAMPLE), "last:1", num_classes=4,
                        hyper=Hyper(lr=lr, bias_lr=lr, qas=qas, rounding=rounding), fuse=False)
    g = r.graph
    ex = Executor(g)
    x = np.random.default_rng(1).integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
    init = {var: g.tensors[c].data for c, var in zip(g.operators[0].inputs[0::2],
                                                      g.operators[0].inputs[1::2])}
    values = ex.invoke([x, np.array([2], np.int32)])
    return g, r, init, ex.variables, values


@pytest.mark.parametrize("kind, lr", [("weights", 5.0), ("bias", 0.5)])
@pytest.mark.parametrize("rounding, lsb", [("nearest", 0.5), ("stochastic", 1.0)])
def test_qas_int8_step_equals_fp32_step(kind, lr, rounding, lsb):
    # lr large enough that the weight steps span several LSBs on this sample; the int8 step
    # is the fp32 step rounded: within half an LSB (nearest) or one LSB (stochastic)
    g, r, init, after, values = one_step(True, lr, rounding)
    moved = 0
    for p, grad in r.backward.param_grads.items():
        t = g.tensors[p]
        if (t.dtype == "int8") != (kind == "weights"):
            continue
        scale = t.quant.scale.reshape((-1,) + (1,) * (t.data is None and init[p].ndim - 1))
        G = values[grad]                                  # real-valued dL/dW (checked vs TF)
        k = G.shape[-1]
        old = init[p][..., :k].astype(np.float64) * scale
        new = after[p][..., :k].astype(np.float64) * scale
        fp32 = old - lr * G
        inside = np.abs(fp32 / scale) < 126                # not saturated at +-127
        # one int8 step moves the real weights like one fp32 SGD step, to within rounding
        assert np.all(np.abs(new - fp32)[inside] <= lsb * np.broadcast_to(scale, new.shape)[inside]
                      * (1 + 1e-5))
        moved += int(np.count_nonzero(new != old))
    assert moved > 10


def test_without_qas_the_step_is_not_the_fp32_step():
    lr = 5.0
    g, r, init, after, values = one_step(False, lr)
    for p, grad in r.backward.param_grads.items():
        t = g.tensors[p]
        if t.dtype != "int8":
            continue
        scale = t.quant.scale.reshape((-1,) + (1,) * (init[p].ndim - 1))
        G = values[grad]
        k = G.shape[-1]
        # the gradient w.r.t. W_q is s_w * G, so plain SGD steps lr * s_w * G LSBs: s_w^2
        # times too small in real terms. On this sample every step is below half an LSB, so
        # round-to-nearest leaves every int8 weight where it was, while fp32 SGD moves them
        # by lr * G
        assert np.abs(lr * scale * G).max() < 0.5
        assert np.array_equal(after[p][..., :k], init[p][..., :k])
        assert np.abs(lr * G).max() > np.abs(scale).max()              # over an LSB in fp32


@pytest.mark.parametrize("hyper", [Hyper(lr=0.05, rounding="stochastic", seed=4),
                                   Hyper(lr=0.05, momentum=0.9, rounding="nearest"),
                                   Hyper(lr=0.02, momentum=0.5, decay_steps=6)])
def test_fused_in_place_updates_train_bit_identically(hyper):
    """In-place fused gradient+update ops give exactly the weights of separate gradient and
    update ops (same arithmetic, same RNG order), without any weight-gradient tensor."""
    rng = np.random.default_rng(0)
    xs = [rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8) for _ in range(8)]
    finals = []
    for fuse in (False, True):
        r = augment.augment(tflite_io.load(EXAMPLE), "full", num_classes=4, hyper=hyper,
                            fuse=fuse)
        ex = Executor(r.graph)
        for i, x in enumerate(xs):
            ex.invoke([x, np.array([i % 4], np.int32)])
        finals.append({r.graph.tensors[k].name: v for k, v in ex.variables.items()})
        kinds = {op.kind for op in r.graph.operators}
        assert ("TT_UPDATE_WEIGHT" in kinds) != fuse
        assert ("TT_CONV2D_WEIGHT_UPDATE" in kinds) == fuse
    assert finals[0].keys() == finals[1].keys()
    for name in finals[0]:
        assert np.array_equal(finals[0][name], finals[1][name]), name


def test_fusion_lowers_the_training_peak():
    g = tflite_io.load(shared_model("person_detect"))
    plain = augment.augment(g, "last:2", num_classes=10, fuse=False)
    fused = augment.augment(tflite_io.load(shared_model("person_detect")), "last:2",
                            num_classes=10)
    p, f = memory.plan(plain.graph), memory.plan(fused.graph)
    # the 256x256 pointwise layer's float gradient (256 KB) is never materialised
    assert f.arena_bytes < p.arena_bytes - 200_000


def example_with_shared_layer(share: bool):
    """The built-in example with depthwise layer op 6 reading the weights and bias of
    depthwise op 3 (same shapes): one tensor for both (`share`: the converter stores equal
    constants once, see tests/modelzoo.py clamps_model) or an equal copy of each."""
    from dataclasses import replace
    g = tflite_io.load(EXAMPLE)
    for slot in (1, 2):
        t = g.operators[3].inputs[slot]
        g.operators[6].inputs[slot] = t if share else g.add_tensor(
            replace(g.tensors[t], name=f"copy {slot}", data=g.tensors[t].data.copy()))
    return g


@pytest.mark.parametrize("engine", ["numpy", "c"])
@pytest.mark.parametrize("scheme, frozen", [("full", False), ("last:3", True)])
def test_a_tensor_two_layers_share_is_trained_once_per_layer(scheme, frozen, engine):
    """Two layers reading one weight tensor and one bias train exactly like two layers with
    equal copies, bit for bit: each trained layer updates its own copy once per step (not
    the shared tensor twice), and a layer the scheme freezes (op 3 under last:3, which
    trains op 6) keeps reading the original values."""
    hyper = Hyper(lr=0.05, momentum=0.9, rounding="stochastic", seed=3)
    rng = np.random.default_rng(0)
    xs = [rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8) for _ in range(6)]
    finals = []
    for share in (True, False):
        g = example_with_shared_layer(share)
        before = {slot: g.tensors[g.operators[3].inputs[slot]].data.copy() for slot in (1, 2)}
        r = augment.augment(g, scheme, num_classes=4, hyper=hyper)
        assert len(set(r.backward.variables)) == len(r.backward.variables)
        assert len(r.unshared) == (2 if share else 0)
        assert all(len(u["copies"]) == 1 and u["readers"] == 2 for u in r.unshared)
        assert r.metadata["unshared"] == r.unshared
        op3 = next(op for op in r.graph.operators
                   if op.outputs == r.backward.forward_ops[3].outputs)
        assert r.graph.tensors[op3.inputs[1]].is_variable != frozen
        ex = Executor(r.graph, engine)
        for i, x in enumerate(xs):
            ex.invoke([x, np.array([i % 4], np.int32)])
        if frozen:
            for slot in (1, 2):
                assert np.array_equal(ex.constants[op3.inputs[slot]], before[slot])
        variables = list(dict.fromkeys(r.backward.variables)) + r.backward.momentum
        finals.append([ex.variables[v] for v in variables])
    assert len(finals[0]) == len(finals[1])
    for i, (a, b) in enumerate(zip(*finals)):
        assert a.tobytes() == b.tobytes(), i


@pytest.mark.parametrize("scheme", ["bias-only", "last:2"])
def test_augment_leaves_its_input_graph_as_it_was(scheme):
    """One parsed model augmented twice gives the same training model twice (augment once
    built on its argument, which then read as a training model and was refused)."""
    graph = tflite_io.load(str(EXAMPLE))
    before = tflite_io.serialize(graph)
    first = tflite_io.serialize(augment.augment(graph, scheme, 3).graph)
    assert tflite_io.serialize(graph) == before
    assert tflite_io.serialize(augment.augment(graph, scheme, 3).graph) == first
