"""The numpy int8 forward against the real TFLM interpreter: every tensor, bit for bit, on
inputs that reach every clamp.

Inputs: seeded uniform samples over the whole int8 (or the float input's representable)
range, the two constant extremes, which drive many accumulators into int8 saturation, and
for float inputs QUANTIZE's rounding boundaries. The zoo's "clamps" model moves every fused
activation's bounds inside the int8 grid (the converter never does; tests/modelzoo.py says
why), and `test_every_fused_clamp_bites` proves that these inputs push values past each
bound, so a wrong clamp cannot pass. One-op models built here reach what random inputs
almost never do: a FULLY_CONNECTED accumulator on a rounding boundary of its multiplier,
and SOFTMAX over wide rows with ties.
"""
import dataclasses
import math

import numpy as np
import pytest

from conftest import SHARED_TFLM, shared_model
from tflite_train import ops, tflite_io
from tflite_train.runtime import numpy_exec, tflm
from tflite_train.verify import _float_input_range, random_inputs

REQUIRED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "PAD",
                "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "RESHAPE", "SOFTMAX", "QUANTIZE",
                "DEQUANTIZE", "TRANSPOSE"}
SEEDS = (0, 1, 2)
RELU, RELU_N1_TO_1, RELU6 = 1, 2, 3


def forward_inputs(graph):
    """(label, inputs): the seeded random samples, every input at its minimum and at its
    maximum, and for float inputs values on QUANTIZE's rounding boundaries ((k + 1/2)
    scales, and the float32 numbers beside them), where float32 division and roundf decide
    the code."""
    cases = [(f"seed {s}", random_inputs(graph, np.random.default_rng(s))) for s in SEEDS]
    for end in (0, 1):
        xs = []
        for index in graph.inputs:
            t = graph.tensors[index]
            ends = (np.iinfo(t.dtype).min, np.iinfo(t.dtype).max) if t.dtype != "float32" \
                else _float_input_range(graph, index)
            xs.append(np.full(t.shape, ends[end], t.dtype))
        cases.append(("all " + ("minimum", "maximum")[end], xs))
    if any(graph.tensors[i].dtype == "float32" for i in graph.inputs):
        xs = []
        for index in graph.inputs:
            t = graph.tensors[index]
            if t.dtype != "float32":
                xs.append(random_inputs(graph, np.random.default_rng(0))[len(xs)])
                continue
            q = next(graph.tensors[op.outputs[0]].quant for op in graph.operators
                     if op.kind == "QUANTIZE" and op.inputs[0] == index)
            k = np.arange(t.size) % 200 - 100 - q.zp
            half = ((k + 0.5) * np.float32(q.s)).astype(np.float32)
            near = np.nextafter(half, np.where(np.arange(t.size) % 3 == 0, -np.inf,
                                               np.inf).astype(np.float32))
            xs.append(np.where(np.arange(t.size) % 3 == 2, half, near).reshape(t.shape))
        cases.append(("rounding boundaries", xs))
    return cases


def assert_every_tensor_exact(path):
    data = path.read_bytes()
    graph = tflite_io.parse(data)
    ops.validate(graph)
    for label, xs in forward_inputs(graph):
        ours = numpy_exec.run(graph, xs)
        theirs = tflm.run_all(graph, data, xs, as_is=True)    # TFLM on the file itself
        for index, value in theirs.items():
            assert np.array_equal(ours[index], value), (
                f"{path.name} {label}: tensor {index} ({graph.tensors[index].name}) "
                f"differs in {np.count_nonzero(ours[index] != value)} elements")


@pytest.mark.parametrize("name", SHARED_TFLM)
def test_shared_models_bit_exact(name):
    assert_every_tensor_exact(shared_model(name))


def test_zoo_models_bit_exact(zoo):
    for path in zoo.values():
        assert_every_tensor_exact(path)


# -- every clamp is exercised ---------------------------------------------------------------

def clamp_bounds(activation: int, scale: float, zero_point: int) -> tuple[float, float]:
    """TFLite's CalculateActivationRangeQuantized written out independently of
    tflite_train.fixedpoint: q(v) = zp + roundf(v / s) in float32, halves away from zero.
    A bound the activation does not have is +-inf."""
    def q(v):
        f = float(np.float32(v) / np.float32(scale))
        return zero_point + math.copysign(math.floor(abs(f) + 0.5), f)
    lo = {RELU: q(0.0), RELU6: q(0.0), RELU_N1_TO_1: q(-1.0)}.get(activation, -math.inf)
    hi = {RELU6: q(6.0), RELU_N1_TO_1: q(1.0)}.get(activation, math.inf)
    return lo, hi


def other_roundings(activation: int, scale: float, side: str) -> set[str]:
    """Which of floor, ceil, truncation and round-half-even would give this float bound
    (6.0 or +-1.0 over the scale) another integer than TFLite's roundf."""
    v = {"lo": {RELU_N1_TO_1: -1.0}, "hi": {RELU6: 6.0, RELU_N1_TO_1: 1.0}}[side].get(activation)
    if v is None:
        return set()
    f = float(np.float32(v) / np.float32(scale))
    rounded = math.copysign(math.floor(abs(f) + 0.5), f)
    return {name for name, fn in (("floor", math.floor), ("ceil", math.ceil),
                                  ("trunc", math.trunc), ("half-even", round))
            if fn(f) != rounded}


def clamp_hits(path) -> tuple[dict[tuple[str, int, str], int], dict[tuple[int, str], set]]:
    """(op kind, activation, "lo"/"hi") -> elements, over the test inputs, whose value
    before the fused activation lies beyond that bound, for bounds strictly inside the
    int8 range (where the clamp, not int8 saturation, decides); and, for the bounds that
    bite, (activation, side) -> the other roundings that would have moved one. The
    unclamped value is the same op run with activation NONE on TFLM's own input tensors."""
    data = path.read_bytes()
    graph = tflite_io.parse(data)
    hits, moved = {}, {}
    for _, xs in forward_inputs(graph):
        theirs = tflm.run_all(graph, data, xs)
        values = {i: t.data for i, t in enumerate(graph.tensors) if t.data is not None}
        values.update(theirs)
        for k, op in enumerate(graph.operators):
            act = ops.fused_activation(op)
            if act == 0:
                continue
            y = graph.tensors[op.outputs[0]]
            lo, hi = clamp_bounds(act, float(y.quant.s), int(y.quant.zp))
            bare = dataclasses.replace(op, options={**op.options, "fused_activation_function": 0})
            args = [values.get(i) if i >= 0 else None for i in op.inputs]
            raw = ops.get(graph, k).forward(graph, bare, args)[0].astype(np.int64)
            out = theirs[op.outputs[0]].astype(np.int64)
            for side, bound, beyond in (("lo", lo, raw < lo), ("hi", hi, raw > hi)):
                if -128 < bound < 127 and np.any(beyond):
                    assert np.all(out[beyond] == bound), (path.name, k, op.kind, side)
                    key = (op.kind, act, side)
                    hits[key] = hits.get(key, 0) + int(np.count_nonzero(beyond))
                    moved.setdefault((act, side), set()).update(
                        other_roundings(act, float(y.quant.s), side))
    return hits, moved


def test_every_fused_clamp_bites(zoo):
    """For each activation and each of its bounds, on CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED and ADD: some zoo model has the bound strictly inside the int8 range and
    values past it on the test inputs, where TFLM outputs exactly the bound. For RELU6's
    and RELU_N1_TO_1's float bounds, at least one such bound lies where another rounding
    than TFLite's would move it, and each of floor, ceil, truncation and round-half-even
    moves one of them. (Bit-exactness on these inputs: test_zoo_models_bit_exact.)"""
    hits, moved = {}, {}
    for path in zoo.values():
        h, m = clamp_hits(path)
        for key, n in h.items():
            hits[key] = hits.get(key, 0) + n
        for key, names in m.items():
            moved.setdefault(key, set()).update(names)
    want = {("CONV_2D", RELU, "lo"), ("CONV_2D", RELU6, "lo"), ("CONV_2D", RELU6, "hi"),
            ("DEPTHWISE_CONV_2D", RELU_N1_TO_1, "lo"), ("DEPTHWISE_CONV_2D", RELU_N1_TO_1, "hi"),
            ("FULLY_CONNECTED", RELU6, "hi"), ("FULLY_CONNECTED", RELU_N1_TO_1, "lo"),
            ("FULLY_CONNECTED", RELU_N1_TO_1, "hi"), ("ADD", RELU6, "lo"),
            ("ADD", RELU6, "hi")}
    assert want <= set(hits), sorted(want - set(hits))
    for bound in ((RELU6, "hi"), (RELU_N1_TO_1, "lo"), (RELU_N1_TO_1, "hi")):
        assert moved.get(bound), (bound, moved)
    assert set().union(*moved.values()) == {"floor", "ceil", "trunc", "half-even"}, moved


def test_zoo_covers_every_op_and_option(zoo):
    """The family of generated models exercises each op and option the forward claims."""
    seen_ops, seen = set(), set()
    for path in zoo.values():
        g = tflite_io.load(path)
        for op in g.operators:
            seen_ops.add(op.kind)
            o = op.options
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
                seen.add((op.kind, "padding", o["padding"]))
                seen.add((op.kind, "stride2", o["stride_h"] == 2))
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                seen.add((op.kind, "dilated", o["dilation_h_factor"] > 1))
                w = g.tensors[op.inputs[1]]
                seen.add((op.kind, "per_channel", w.quant.per_channel))
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"):
                seen.add((op.kind, "act", o["fused_activation_function"]))
            if op.kind == "DEPTHWISE_CONV_2D":
                seen.add(("dw", "multiplier", o["depth_multiplier"] > 1))
    assert REQUIRED_OPS <= seen_ops, REQUIRED_OPS - seen_ops
    for kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        for want in [("padding", 0), ("padding", 1), ("stride2", True), ("dilated", True),
                     ("act", 0), ("per_channel", True), ("per_channel", False)]:
            assert (kind,) + want in seen, (kind,) + want
    for want in [("CONV_2D", "act", RELU), ("CONV_2D", "act", RELU6),
                 ("DEPTHWISE_CONV_2D", "act", RELU6), ("DEPTHWISE_CONV_2D", "act", RELU_N1_TO_1),
                 ("FULLY_CONNECTED", "act", RELU), ("FULLY_CONNECTED", "act", RELU6),
                 ("FULLY_CONNECTED", "act", RELU_N1_TO_1), ("ADD", "act", RELU),
                 ("ADD", "act", RELU6), ("dw", "multiplier", True),
                 ("AVERAGE_POOL_2D", "padding", 0), ("AVERAGE_POOL_2D", "padding", 1),
                 ("MAX_POOL_2D", "padding", 0), ("MAX_POOL_2D", "padding", 1)]:
        assert want in seen, want


def one_op_model(kind, options_type, options, tensors, inputs, outputs):
    """A model of one builtin op from (name, shape, dtype, scale, zero point, data) tuples;
    returns (graph, bytes) as read back from the serialized file."""
    from tflite_train.ir import Graph, Operator, Quantization, Tensor
    ts = [Tensor(name, shape, dtype, None if scale is None else
                 Quantization(np.array([scale], np.float32), np.array([zp])), data)
          for name, shape, dtype, scale, zp, data in tensors]
    data = tflite_io.serialize(Graph(ts, [Operator(kind, list(inputs), list(outputs), options,
                                                   options_type)],
                                     [i for i in inputs if ts[i].data is None], list(outputs)))
    return tflite_io.parse(data), data


def test_softmax_over_many_classes_and_scales():
    """SOFTMAX alone, bit for bit with TFLM, on 400-class rows (the wheel's interpreter
    aborts from 512) of random and of tied inputs at several input scales: every sum of exps, reciprocal and rounding step of the
    gemmlowp arithmetic is exercised far more often than the zoo's small heads do."""
    rng = np.random.default_rng(0)
    for scale in (0.02, 0.0625, 0.1, 0.25, 0.7):
        graph, data = one_op_model(
            "SOFTMAX", "SoftmaxOptions", {"beta": 1.0},
            [("x", (16, 400), "int8", scale, 3, None), ("y", (16, 400), "int8", 1 / 256, -128,
                                                         None)], [0], [1])
        x = rng.integers(-128, 128, (16, 400)).astype(np.int8)
        x[8:] = np.where(rng.random((8, 400)) < 0.5, 127, x[8:])       # many tied maxima
        x[15] = rng.integers(90, 128, 400)                             # a narrow range
        xs = [x]
        assert np.array_equal(numpy_exec.run(graph, xs)[1], tflm.run_all(graph, data, xs)[1]), \
            scale


def test_fully_connected_multiplier_at_a_rounding_boundary():
    """A per-tensor FULLY_CONNECTED whose effective scale s_x s_w / s_y quantizes to
    different Q31 multipliers when s_x s_w is taken in float32 and in double, with a bias
    that puts the accumulator where the two multipliers round to different outputs: our
    forward must give TFLM's output there. (Random inputs almost never land on such a
    boundary, which is why the zoo cannot decide this.)"""
    from tflite_train import fixedpoint as fp
    rng = np.random.default_rng(1)
    while True:
        sx, sw, sy = (np.float32(v) for v in rng.uniform(0.5, 1, 3) * [2**-7, 2**-8, 2**-2])
        single = fp.quantize_multiplier(float(np.float64(sx * sw) / np.float64(sy)))
        double = fp.quantize_multiplier(float(np.float64(sx) * np.float64(sw) / np.float64(sy)))
        acc = rng.integers(-(1 << 26), 1 << 26, 1 << 20)
        a = fp.multiply_by_quantized_multiplier(acc, *single)
        b = fp.multiply_by_quantized_multiplier(acc, *double)
        apart = np.flatnonzero((a != b) & (np.abs(b) < 100))
        if apart.size:
            break

    graph, data = one_op_model(
        "FULLY_CONNECTED", "FullyConnectedOptions",
        {"fused_activation_function": 0, "keep_num_dims": False, "weights_format": 0,
         "asymmetric_quantize_inputs": False},
        [("x", (1, 1), "int8", sx, 0, None), ("w", (1, 1), "int8", sw, 0, np.ones((1, 1), np.int8)),
         ("b", (1,), "int32", float(sx * sw), 0, np.array([acc[apart[0]]], np.int32)),
         ("y", (1, 1), "int8", sy, 0, None)], [0, 1, 2], [3])        # x = 0: acc = bias
    xs = [np.zeros((1, 1), np.int8)]
    theirs = tflm.run_all(graph, data, xs)[3]
    assert theirs[0, 0] in (a[apart[0]], b[apart[0]])            # the case is a boundary
    assert np.array_equal(numpy_exec.run(graph, xs)[3], theirs)


def test_padv2_pads_with_its_constant_value():
    """PADV2 (the zoo's tf.pad converts to PAD): the constant value, not the zero point."""
    x_q = (0.1, 5)
    graph, data = one_op_model(
        "PADV2", "PadV2Options", {},
        [("x", (1, 3, 3, 2), "int8", *x_q, None),
         ("paddings", (4, 2), "int32", None, 0, np.array([[0, 0], [1, 2], [2, 1], [0, 0]],
                                                          np.int32)),
         ("value", (1,), "int8", *x_q, np.array([-7], np.int8)),
         ("y", (1, 6, 6, 2), "int8", *x_q, None)], [0, 1, 2], [3])
    xs = [np.random.default_rng(0).integers(-128, 128, (1, 3, 3, 2)).astype(np.int8)]
    theirs = tflm.run_all(graph, data, xs)[3]
    assert theirs[0, 0, 0, 0] == -7
    assert np.array_equal(numpy_exec.run(graph, xs)[3], theirs)
