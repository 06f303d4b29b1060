"""The new head's rounding residual (augment --head-residual, default on; schema: the weight
updates' input `residual`): the rule on crafted values in numpy and in the C kernel, numpy ==
engine c == TFLM bit for bit over several steps (every variable, the residual too), checkpoints
carry it, export drops it, `--head-residual off` trains main's bits, and malformed residual
inputs are one-line errors."""
from __future__ import annotations

import ctypes as C
import hashlib

import numpy as np
import pytest

from tflite_train import augment, checkpoint, export, tflite_io, validate
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.errors import ModelError
from tflite_train.ir import Tensor
from tflite_train.ops.training import residual_steps
from tflite_train.runtime import c_kernels
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.training_ops import residual_input, residual_tensors, spec


# --- the rule -------------------------------------------------------------------------------

def c_rule(deltas: list[np.ndarray], w0: np.ndarray, r0: np.ndarray | None = None):
    """tt_update_weight_residual_s8 with lr 1, no QAS and scale 1 (delta = -grad, exact),
    one call per delta: (weights, residual) after them."""
    lib = c_kernels.library()
    w = np.ascontiguousarray(w0.reshape(1, -1), np.int8).copy()
    r = np.zeros(w.shape, np.int8) if r0 is None else np.ascontiguousarray(r0, np.int8).copy()
    dims = np.array(w.shape, np.int32)
    scales = np.ones(1, np.float32)
    sgd = c_kernels.K.make_struct("tt_sgd", lr=1.0, momentum=0.0, qas=0, rounding=1,
                                  decay_steps=0, half_life=0)
    state = c_kernels.UpdateState(12345, 0)
    for d in deltas:
        grad = np.ascontiguousarray(-np.asarray(d, np.float32).reshape(w.shape))
        lib.tt_update_weight_residual_s8(
            w.ctypes.data_as(C.c_void_p), dims.ctypes.data_as(C.c_void_p), 2, 0,
            scales.ctypes.data_as(C.c_void_p), 1, grad.ctypes.data_as(C.c_void_p), w.shape[1],
            None, r.ctypes.data_as(C.c_void_p), C.byref(sgd), C.byref(state))
    assert state.rng == 12345 and state.step == len(deltas)      # no draw, one step a call
    return w.ravel(), r.ravel()


def numpy_rule(deltas, w0, r0=None):
    w = np.asarray(w0, np.int8).copy()
    r = np.zeros(w.shape, np.int8) if r0 is None else np.asarray(r0, np.int8).copy()
    for d in deltas:
        step = residual_steps(np.asarray(d, np.float32), r)
        w[...] = np.clip(w.astype(np.int32) + step, -127, 127)
    return w, r


@pytest.mark.parametrize("rule", [numpy_rule, c_rule], ids=["numpy", "c"])
def test_the_rule_on_crafted_values(rule):
    # 0.3 LSB a step: q = rint(76.8) = 77; 10 steps sum 770 = 3 * 256 + 2
    w, r = rule([np.full(4, 0.3, np.float32)] * 10, np.array([0, 5, -5, 126], np.int8))
    assert list(w) == [3, 8, -2, 127] and list(r) == [2, 2, 2, 2]   # 126 + 3 saturates
    # -1/2 LSB: c = -128 keeps r = -128 (floor(0 / 256) = 0), the next one steps -1, r = 0
    w, r = rule([np.full(1, -0.5, np.float32)], np.zeros(1, np.int8))
    assert (w[0], r[0]) == (0, -128)
    w, r = rule([np.full(1, -0.5, np.float32)] * 2, np.zeros(1, np.int8))
    assert (w[0], r[0]) == (-1, 0)
    # +1/2 LSB: c = 128 steps +1 at once (floor(256 / 256)), r = -128
    w, r = rule([np.full(1, 0.5, np.float32)], np.zeros(1, np.int8))
    assert (w[0], r[0]) == (1, -128)
    # 256 v half to even: 0.5 -> 0, 1.5 -> 2, -2.5 -> -2; a remainder carried from before
    w, r = rule([np.array([1 / 512, 3 / 512, -5 / 512], np.float32)], np.zeros(3, np.int8),
                np.array([0, 100, -7], np.int8))
    assert list(w) == [0, 0, 0] and list(r) == [0, 102, -9]
    # beyond the clamp, NaN to -256, saturated weights; the residual stays in range
    w, r = rule([np.array([1000.0, -1000.0, np.nan, np.inf, 255.7], np.float32)],
                np.array([0, 0, 3, -127, -127], np.int8), np.array([127, -128, 5, 0, 0], np.int8))
    assert list(w) == [127, -127, -127, 127, 127]
    # 1000 -> 256: c = 127 + 65536, step 256, r = 127; -1000: c = -128 - 65536, step -256,
    # r = -128; NaN -> -256: c = 5 - 65536, step -256, r = 5; 255.7: q = rint(65459.2) =
    # 65459 -> step 256, r = -77
    assert list(r) == [127, -128, 5, 0, -77]


def test_c_and_numpy_agree_on_random_steps():
    rng = np.random.default_rng(7)
    deltas = [rng.normal(0, s, 257).astype(np.float32) for s in (0.01, 0.2, 0.5, 3, 200)
              for _ in range(4)]
    w0 = rng.integers(-127, 128, 257).astype(np.int8)
    r0 = rng.integers(-128, 128, 257).astype(np.int8)
    for a, b in zip(numpy_rule(deltas, w0, r0), c_rule(deltas, w0, r0)):
        assert np.array_equal(a, b)


# --- the engines ----------------------------------------------------------------------------

CASES = [("bias-only", True, Hyper(lr=0.05)),                               # int8, fused
         ("bias-only", True, Hyper(lr=0.05, grad="float32", momentum=0.9)),
         ("last:2", False, Hyper(lr=0.05, grad="float32", rounding="nearest")),   # separate
         ("last:2", True, Hyper(lr=0.05, batch=3, decay_steps=4)),           # batch, fused
         ("last:2", False, Hyper(lr=0.05, batch=2, half_life=3))]            # batch, separate


def run(graph, engine, steps=8):
    if engine == "tflm":
        from tflite_train.runtime.tflm_engine import TFLMExecutor
        ex = TFLMExecutor(graph)
    else:
        ex = Executor(graph, engine)
    rng = np.random.default_rng(2)
    shape = graph.tensors[graph.inputs[0]].shape
    seen = []
    for i in range(steps):
        label = -1 if i == 4 else i % 4         # an inference Invoke changes nothing
        ex.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([label], np.int32)])
        seen.append({graph.tensors[k].name: np.array(v).tobytes()
                     for k, v in ex.variables.items()})
    return seen


@pytest.mark.parametrize("scheme, fuse, hyper", CASES)
def test_numpy_c_and_tflm_train_the_same_bits(scheme, fuse, hyper):
    r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, hyper, fuse=fuse)
    g = r.graph
    assert r.metadata["head_residual"] is True
    (res,) = residual_tensors(g)
    assert g.tensors[res].name == "head/residual" and g.tensors[res].dtype == "int8"
    assert [op.kind for op in g.operators if residual_input(g, op) >= 0] == \
        ["TT_FULLY_CONNECTED_WEIGHT_UPDATE" if fuse else "TT_UPDATE_WEIGHT"]
    want = run(g, "numpy")
    for engine in ("c", "tflm"):
        got = run(g, engine)
        for i, (a, b) in enumerate(zip(want, got)):
            differing = [n for n in a if a[n] != b[n]]
            assert not differing, f"{engine}, Invoke {i}: {differing[:4]}"
    assert np.frombuffer(want[-1]["head/residual"], np.int8).any()
    assert want[-1]["head/weights"] != want[0]["head/weights"]


def test_the_residual_is_optimizer_state_saved_in_checkpoints_and_not_exported(tmp_path):
    r = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper(lr=0.05))
    g = r.graph
    (res,) = residual_tensors(g)
    regions = checkpoint.layout(g)
    assert [x.kind for x in regions if x.id == res] == [checkpoint.RESIDUAL]
    ex = Executor(g, "c")
    rng = np.random.default_rng(1)
    shape = g.tensors[g.inputs[0]].shape
    xs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(6)]
    for i in range(3):
        ex.invoke([xs[i], np.array([i % 4], np.int32)])
    model = tflite_io.serialize(g)
    ckpt = checkpoint.capture(ex, g, checkpoint.model_id(model))
    blob = checkpoint.to_blob(ckpt)
    for i in range(3, 6):
        ex.invoke([xs[i], np.array([i % 4], np.int32)])
    straight = {k: v.copy() for k, v in ex.variables.items()}
    other = Executor(g, "numpy")                      # resumed in another engine
    checkpoint.restore(other, g, checkpoint.from_blob(blob, g, model))
    assert other.variables[res].any()
    for i in range(3, 6):
        other.invoke([xs[i], np.array([i % 4], np.int32)])
    for k, v in straight.items():
        assert np.array_equal(other.variables[k], v), g.tensors[k].name
    # the memory plan counts it with the optimizer state, 1 B a head weight
    from tflite_train import memory, tflm_memory
    w = next(t for t in g.tensors if t.name == "head/weights")
    assert memory.training_parts(g).optimizer_bytes == w.size
    assert tflm_memory.target_memory(g).optimizer >= w.size
    # the inference model has no residual
    params = {k: v for k, v in ex.variables.items() if k in checkpoint.trained_parameters(g)}
    inference = export.export(g, params, {})
    assert not any("residual" in t.name for t in inference.tensors)
    assert not any(t.is_variable for t in inference.tensors)


# --- off: main's bits -----------------------------------------------------------------------

# sha256 prefixes of the training model and of every variable after 6 numpy Invokes, made by
# main at 464c208 (before residuals existed) with the same script: --head-residual off must
# give the same bytes
OFF_GOLDEN = [("last:2", True, {}, "950e9b683b73dcb5", "42bd2b4509689441"),
              ("bias-only", False, {"grad": "float32"}, "a622d39307dd19c4", "be93063566917361"),
              ("last:2", True, {"batch": 2, "momentum": 0.5}, "ca3039c63b6e9175",
               "0da5badcfbac35ea")]


def format_1_bytes(g) -> bytes:
    """The file `g` would have been in training model format version 1 (before round 28):
    the forward ops' shifts int32, the metadata's version 1. The goldens above are such files:
    that these bytes equal them shows format 2 changed nothing else."""
    import copy
    import json
    from tflite_train.ops import tt_forward, tt_stream
    g = copy.deepcopy(g)
    for op in g.operators:
        slots = ([tt_forward.positions(op.kind)["shifts"]] if op.kind in tt_forward.FORWARD
                 else [tt_stream.PW_S, tt_stream.DW_S] if op.kind == tt_stream.KIND else [])
        for k in slots:
            s = g.tensors[op.inputs[k]]
            s.dtype, s.data = "int32", s.data.astype(np.int32)
    key = augment.METADATA_KEY
    meta = json.loads(g.metadata[key])
    assert meta["version"] == 2
    g.metadata[key] = json.dumps({**meta, "version": 1}).encode()
    return tflite_io.serialize(g)


@pytest.mark.parametrize("scheme, fuse, kw, model_sha, trained_sha", OFF_GOLDEN)
def test_head_residual_off_trains_mains_bits(scheme, fuse, kw, model_sha, trained_sha):
    # the goldens' int8 gradients were rounded stochastically, augment's default then
    r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4,
                        Hyper(lr=0.05, seed=7, head_residual=False, weight_headroom=1.0,
                              grad_rounding="stochastic", **kw),
                        fuse=fuse)       # the goldens predate both defaults of round 29
    g = r.graph
    assert not residual_tensors(g) and "head_residual" not in r.metadata
    assert hashlib.sha256(format_1_bytes(g)).hexdigest()[:16] == model_sha
    ex = Executor(g, "numpy")
    rng = np.random.default_rng(4)
    shape = g.tensors[g.inputs[0]].shape
    for i in range(6):
        ex.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([i % 4], np.int32)])
    got = hashlib.sha256(b"".join(ex.variables[k].tobytes() for k in sorted(ex.variables)))
    assert got.hexdigest()[:16] == trained_sha


# --- malformed residuals ----------------------------------------------------------------------

def _model(fuse=True, batch=1):
    r = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4,
                        Hyper(lr=0.05, batch=batch, grad="float32"), fuse=fuse)
    g = r.graph
    (res,) = residual_tensors(g)
    op = next(op for op in g.operators if residual_input(g, op) >= 0)
    return g, op, res


def _new_tensor(g, **changes):
    t = g.tensors[residual_tensors(g).pop()]
    fields = dict(name="bad/residual", shape=t.shape, dtype=t.dtype)
    fields.update({k: v for k, v in changes.items() if k != "variable"})
    index = g.add_tensor(Tensor(**fields))
    g.tensors[index].is_variable = changes.get("variable", True)
    return index


BAD = {
    "float32": lambda g, op, res: op.inputs.__setitem__(-1, _new_tensor(g, dtype="float32")),
    "shape": lambda g, op, res: op.inputs.__setitem__(-1, _new_tensor(g, shape=(4, 31))),
    "constant": lambda g, op, res: op.inputs.__setitem__(
        -1, _new_tensor(g, variable=False, data=np.zeros(g.tensors[res].shape, np.int8))),
    "absent": lambda g, op, res: op.inputs.__setitem__(-1, -1),
    "accumulator at batch 1": lambda g, op, res: op.inputs.__setitem__(
        -2, _new_tensor(g, dtype="float32")),
    "one too many": lambda g, op, res: op.inputs.append(res),
    "the weights": lambda g, op, res: op.inputs.__setitem__(-1, op.inputs[
        [i["name"] for i in spec(op.kind)["inputs"]].index("weights")]),
    "shared": lambda g, op, res: next(o for o in g.operators if o.kind == "TT_BIAS_UPDATE"
                                      or o.kind == "TT_UPDATE_BIAS").inputs.append(res),
}


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "separate"])
@pytest.mark.parametrize("case", list(BAD))
def test_malformed_residuals_are_one_line_errors(case, fuse):
    g, op, res = _model(fuse)
    BAD[case](g, op, res)
    with pytest.raises(ModelError) as e:
        validate.check(g)
    assert "\n" not in str(e.value)
    # the glue's Prepare refuses them too (one line, from TFLM's log)
    if case in ("float32", "shape", "constant", "accumulator at batch 1"):
        from tflite_train.errors import TTError
        from tflite_train.runtime.tflm_engine import TFLMExecutor
        with pytest.raises(TTError) as e:
            TFLMExecutor(g).invoke([np.zeros(g.tensors[g.inputs[0]].shape, np.int8),
                                    np.array([0], np.int32)])
        assert "\n" not in str(e.value)
