"""The int8 forward kernels in C (micro_kernels/include/tt_forward.h) against the numpy
forward and the real TFLM interpreter: every tensor, bit for bit.

Models: the zoo (every op and option the forward claims), the shared TFLM models, the two
imported paper models, and small graphs built here for what the converter never emits
(RELU_N1_TO_1, PADV2, int8 -> int8 QUANTIZE, MEAN over other axes, batches > 1, ...).
Then the kernels the executor does not call: the in-place depthwise convolution (input and
output truly aliased) and the split-filter convolution and fully connected layer.
"""
from __future__ import annotations

import ctypes as C
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import (ROOT, SHARED_MODELS, SHARED_TFLM, require_tool, sanitizer_runtimes,
                      shared_file, shared_model)
from tflite_train import fixedpoint as fp
from tflite_train import ops, tflite_io
from tflite_train.ir import Graph, Operator, Quantization, Tensor
from tflite_train.runtime import c_forward, tflm
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.verify import random_inputs

PKLS = ["mcunet-5fps", "mbv2-w0.35"]


def assert_c_exact(graph: Graph, data: bytes | None = None, seeds=(0, 1)) -> set[str]:
    """C executor == numpy executor on every tensor, and == TFLM on every tensor TFLM keeps
    (data: the model's bytes; None to skip TFLM). Returns the kernels called."""
    ops.validate(graph)
    called: set[str] = set()
    real = c_forward.call

    def spy(name, *args):
        called.add(name)
        return real(name, *args)
    c, ref = Executor(graph, "c"), Executor(graph, "numpy")
    c_forward.call = spy
    try:
        for seed in seeds:
            xs = random_inputs(graph, np.random.default_rng(seed))
            ours, want = c.invoke(xs), ref.invoke(xs)
            theirs = tflm.run_all(graph, data, xs) if data is not None else {}
            for index, value in want.items():
                assert np.array_equal(ours[index], value), (
                    f"{graph.name} seed {seed}: tensor {index} ({graph.tensors[index].name}) "
                    f"differs from numpy in {np.count_nonzero(ours[index] != value)} elements")
            for index, value in theirs.items():
                assert np.array_equal(ours[index], value), (
                    f"{graph.name} seed {seed}: tensor {graph.tensors[index].name} differs "
                    "from TFLM")
    finally:
        c_forward.call = real
    return called


def test_zoo_models(zoo):
    for name, path in zoo.items():
        g = tflite_io.load(path)
        g.name = name
        assert_c_exact(g, path.read_bytes())


@pytest.mark.parametrize("name", SHARED_TFLM)
def test_shared_models(name):
    path = shared_model(name)
    assert_c_exact(tflite_io.load(path), path.read_bytes())


def paper_model(name: str, padding: str) -> Graph:
    from tflite_train.importers.tiny_training import import_pkl
    return import_pkl(shared_file("tiny-training", f"{name}.pkl"), padding)


@pytest.mark.parametrize("name", PKLS)
@pytest.mark.parametrize("padding", ["kernel", "pad"])
def test_paper_models(name, padding):
    g = paper_model(name, padding)
    called = assert_c_exact(g, tflite_io.serialize(g), seeds=(0,))
    assert {"tt_conv2d_s8", "tt_depthwise_conv2d_s8"} <= called


# --- graphs built here ---------------------------------------------------------------------------

class Builder:
    """A one-subgraph model assembled tensor by tensor (int8 activations, seeded weights)."""

    def __init__(self, seed: int = 0):
        self.tensors: list[Tensor] = []
        self.operators: list[Operator] = []
        self.rng = np.random.default_rng(seed)

    def act(self, shape, scale=0.05, zp=-3, dtype="int8") -> int:
        quant = None if dtype == "float32" else Quantization(
            np.array([scale], np.float32), np.array([zp], np.int64))
        self.tensors.append(Tensor(f"t{len(self.tensors)}", tuple(shape), dtype, quant))
        return len(self.tensors) - 1

    def const(self, data: np.ndarray, scale=None, axis=0, zp=0) -> int:
        quant = None
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, np.float32))
            quant = Quantization(scale, np.full(scale.size, zp, np.int64), axis)
        self.tensors.append(Tensor(f"c{len(self.tensors)}", data.shape, str(data.dtype), quant,
                                   data=data))
        return len(self.tensors) - 1

    def weights(self, shape, channels: int, axis: int, per_channel: bool) -> tuple[int, float]:
        scales = self.rng.uniform(0.002, 0.02, channels if per_channel else 1)
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        return self.const(w, scales, axis), scales

    def bias(self, channels: int, x_scale: float, w_scales) -> int:
        b = self.rng.integers(-3000, 3000, channels).astype(np.int32)
        return self.const(b, np.broadcast_to(x_scale * np.asarray(w_scales), (channels,)))

    def op(self, opcode: str, inputs, outputs, options_type=None, **options) -> None:
        self.operators.append(Operator(opcode, list(inputs), list(outputs), options,
                                       options_type))

    def conv(self, x: int, kind: str, out_shape, kernel, stride=1, dilation=1, padding=0,
             activation=0, per_channel=True, multiplier=1) -> int:
        xt = self.tensors[x]
        if kind == "CONV_2D":
            co = out_shape[3]
            w, s = self.weights((co, *kernel, xt.shape[3]), co, 0, per_channel)
            opts = {}
        else:
            co = xt.shape[3] * multiplier
            w, s = self.weights((1, *kernel, co), co, 3, per_channel)
            opts = {"depth_multiplier": multiplier}
        b = self.bias(co, xt.quant.s, s)
        y = self.act(out_shape, 0.08, 5)
        self.op(kind, [x, w, b], [y], "Conv2DOptions" if kind == "CONV_2D" else
                "DepthwiseConv2DOptions", padding=padding, stride_w=stride, stride_h=stride,
                fused_activation_function=activation, dilation_w_factor=dilation,
                dilation_h_factor=dilation, **opts)
        return y

    def graph(self, inputs, outputs, name: str) -> Graph:
        g = Graph(self.tensors, self.operators, list(inputs), list(outputs), name=name)
        return tflite_io.parse(tflite_io.serialize(g))           # what TFLM will read


RELU_N1_TO_1 = 2


def built_models() -> list[Graph]:
    models = []

    b = Builder(1)          # RELU_N1_TO_1 everywhere it can be fused; batch 2
    x = b.act((2, 9, 9, 4), 0.03, 2)
    y = b.conv(x, "CONV_2D", (2, 5, 5, 6), (3, 3), stride=2, padding=0, activation=RELU_N1_TO_1)
    z = b.conv(y, "DEPTHWISE_CONV_2D", (2, 5, 5, 12), (3, 3), activation=RELU_N1_TO_1,
               multiplier=2, per_channel=False)
    p = b.act((2, 3, 3, 12), 0.08, 5)
    b.op("AVERAGE_POOL_2D", [z], [p], "Pool2DOptions", padding=0, stride_w=2, stride_h=2,
         filter_width=2, filter_height=2, fused_activation_function=RELU_N1_TO_1)
    m = b.act((2, 3, 3, 12), 0.08, 5)
    b.op("MAX_POOL_2D", [z], [m], "Pool2DOptions", padding=0, stride_w=2, stride_h=2,
         filter_width=3, filter_height=3, fused_activation_function=RELU_N1_TO_1)
    s = b.act((2, 3, 3, 12), 0.02, -1)
    b.op("ADD", [p, m], [s], "AddOptions", fused_activation_function=RELU_N1_TO_1)
    f = b.act((2, 108), 0.02, -1)
    b.op("RESHAPE", [s, b.const(np.array([2, 108], np.int32))], [f], "ReshapeOptions",
         new_shape=np.array([2, 108], np.int32))
    w, ws = b.weights((7, 108), 1, 0, False)
    o = b.act((2, 7), 0.02, 1)
    b.op("FULLY_CONNECTED", [f, w, b.bias(7, 0.02, ws)], [o], "FullyConnectedOptions",
         fused_activation_function=RELU_N1_TO_1)
    models.append(b.graph([x], [o], "relu_n1_to_1"))

    b = Builder(2)          # PADV2, int8 requantize, broadcast ADD of lower rank, MEANs
    x = b.act((1, 6, 5, 8), 0.04, -7)
    padded = b.act((1, 9, 7, 8), 0.04, -7)
    b.op("PADV2", [x, b.const(np.array([[0, 0], [2, 1], [0, 2], [0, 0]], np.int32)),
                   b.const(np.array([100], np.int8), 0.04, zp=-7)], [padded], "PadV2Options")
    r = b.act((1, 9, 7, 8), 0.09, 11)
    b.op("QUANTIZE", [padded], [r], "QuantizeOptions")
    row = b.const(b.rng.integers(-128, 128, (7, 8)).astype(np.int8), 0.03, zp=4)
    s = b.act((1, 9, 7, 8), 0.1, -2)
    b.op("ADD", [r, row], [s], "AddOptions", fused_activation_function=0)
    outs = []
    for axes, shape in (([3], (1, 9, 7, 1)), ([1], (1, 1, 7, 8)), ([1, 3], (1, 1, 7, 1)),
                        ([0, 2], (1, 9, 1, 8))):
        mean = b.act(shape, 0.07, 3)
        b.op("MEAN", [s, b.const(np.array(axes, np.int32))], [mean], "ReducerOptions",
             keep_dims=True)
        outs.append(mean)
    t = b.act((7, 1, 8, 9), 0.1, -2)
    b.op("TRANSPOSE", [s, b.const(np.array([2, 0, 3, 1], np.int32))], [t], "TransposeOptions")
    outs.append(t)
    models.append(b.graph([x], outs, "padv2_requantize_mean"))

    b = Builder(3)          # float I/O, a wide softmax with beta, dilation with stride 1
    x = b.act((1, 1000), dtype="float32")
    q = b.act((1, 1000), 0.25, 0)
    b.op("QUANTIZE", [x], [q], "QuantizeOptions")
    sm = b.act((1, 1000), 1 / 256, -128)
    b.op("SOFTMAX", [q], [sm], "SoftmaxOptions", beta=0.7)
    d = b.act((1, 1000), dtype="float32")
    b.op("DEQUANTIZE", [sm], [d])
    models.append(b.graph([x], [d], "float_softmax"))

    b = Builder(4)          # dilated SAME windows with output positions that see no pixel
    x = b.act((1, 2, 2, 4), 0.03, 2)      # 2x2 taps 3 apart, pad 1: (0, 0) reads (-1, 2)^2
    y = b.conv(x, "DEPTHWISE_CONV_2D", (1, 2, 2, 4), (2, 2), dilation=3)
    z = b.conv(x, "CONV_2D", (1, 2, 2, 3), (2, 2), dilation=3)
    models.append(b.graph([x], [y, z], "dilated_past_the_image"))
    return models


def test_built_models_and_kernel_coverage():
    """The built graphs against numpy and TFLM; they call every kernel the executor uses
    (the rest are tested directly below)."""
    called = set()
    for g in built_models():
        called |= assert_c_exact(g, tflite_io.serialize(g), seeds=(0, 1, 2))
    direct = {"tt_depthwise_conv2d_inplace_s8", "tt_depthwise_conv2d_inplace_s8_scratch_bytes",
              "tt_conv2d_split_s8", "tt_fully_connected_split_s8",
              "tt_conv2d_split_inplace_s8",      # the split and in-place ones: test_tflm_memory
              "tt_conv2d_wide_s8"}               # test_codegen_layouts
    assert called | direct == set(c_forward.FUNCTIONS), set(c_forward.FUNCTIONS) - called


def test_softmax_ties_and_quantize_rounding():
    """Rows of tied maxima (the sum of exps grows past 2^28: the undefined shift in TFLM
    that the header documents) and float inputs on rounding boundaries."""
    from tflite_train.ops import quantize as q_ops
    from tflite_train.ops import softmax as sm_ops
    b = Builder()
    x = b.act((3, 4096), 0.001, 0)
    y = b.act((3, 4096), 1 / 256, -128)
    b.op("SOFTMAX", [x], [y], "SoftmaxOptions", beta=1.0)
    g = b.graph([x], [y], "ties")
    xs = np.full((3, 4096), 127, np.int8)
    xs[1, ::2] = -128
    xs[2, :7] = 0
    want = sm_ops.forward(g, g.operators[0], [xs])[0]
    got = c_forward.prepare(g, g.operators[0])([xs])[0]
    assert np.array_equal(got, want)

    b = Builder()
    f = b.act((64,), dtype="float32")
    out = b.act((64,), 0.5, -3)
    b.op("QUANTIZE", [f], [out], "QuantizeOptions")
    g = b.graph([f], [out], "rounding")
    halves = (np.arange(64, dtype=np.float32) - 32) * np.float32(0.25)   # k/4: .25, .5, ...
    halves[:4] = [1e6, -3e9, 63.75, -64.25]
    want = q_ops.quantize(g, g.operators[0], [halves])[0]
    got = c_forward.prepare(g, g.operators[0])([halves])[0]
    assert np.array_equal(got, want)


def test_requantization_matches_the_reference_on_ties_and_extremes():
    """MultiplyByQuantizedMultiplier in C (one SMLAL-style rounding, see tt_fwd_internal.h)
    against fixedpoint.py's literal gemmlowp transcription: every int8 input and offset
    against multipliers that make exact halves (2^30: x * 2^30 / 2^31 ends in .5 for odd x),
    the extremes and random ones, right and left shifts."""
    rng = np.random.default_rng(0)
    x = np.arange(-128, 128, dtype=np.int8)
    multipliers = [0, 1 << 30, (1 << 30) + 1, (1 << 31) - 1, 1518500250,
                   *rng.integers(1 << 30, 1 << 31, 6)]
    checked = 0
    for m in multipliers:
        for shift in (-31, -20, -9, -1, 0, 1, 3, 7, 12):
            for offset in (-255, 0, 128, 255):
                for zp in (-128, 0, 17):
                    want = fp.multiply_by_quantized_multiplier(x.astype(np.int64) + offset, m,
                                                               shift) + zp
                    want = np.clip(want, -128, 127).astype(np.int8)
                    got = np.empty(256, np.int8)
                    c_forward.call("tt_requantize_s8", x, 256, offset, int(m), shift, zp, got)
                    assert np.array_equal(got, want), (m, shift, offset, zp)
                    checked += 1
    assert checked == len(multipliers) * 9 * 4 * 3


# --- in-place depthwise --------------------------------------------------------------------------

def dims(shape) -> c_forward.Dims:
    return c_forward.Dims(*shape)


def depthwise_layer(rng, n, h, w, c, kernel, stride, dilation, padding):
    """Random int8 data, weights, bias and real quantization for a depthwise layer."""
    from tflite_train.ops.window import out_size, pad_before
    oh, ow = (out_size(padding, size, k, stride, dilation) for size, k in zip((h, w), kernel))
    pads = [pad_before(padding, size, k, stride, dilation, o)
            for size, k, o in zip((h, w), kernel, (oh, ow))]
    p = c_forward.ConvParams(stride, stride, dilation, dilation, pads[0], pads[1], 5, -3, -128,
                             127)
    scales = rng.uniform(0.002, 0.01, c)
    m, s = fp.quantize_multipliers(0.05 * scales / 0.03)
    return dict(
        p=p, m=np.ascontiguousarray(m, np.int32), s=np.ascontiguousarray(s, np.int8),
        x=rng.integers(-128, 128, (n, h, w, c)).astype(np.int8),
        w=rng.integers(-127, 128, (1, *kernel, c)).astype(np.int8),
        b=rng.integers(-2000, 2000, c).astype(np.int32), out=(n, oh, ow, c))


def run_inplace(layer) -> tuple[np.ndarray, np.ndarray, int]:
    """(out-of-place output, in-place output read from the front of the input's own buffer,
    scratch bytes); guard bytes around the data and the scratch must stay untouched."""
    x, out = layer["x"], layer["out"]
    args = (layer["p"], layer["m"], layer["s"], dims(x.shape))
    want = np.empty(out, np.int8)
    c_forward.call("tt_depthwise_conv2d_s8", *args, x, dims(layer["w"].shape), layer["w"],
                   layer["b"], dims(out), want)
    nbytes = c_forward.call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", layer["p"],
                            dims(x.shape), dims(layer["w"].shape), dims(out))
    guard = 64
    buf = np.full(x.size + 2 * guard, 77, np.int8)
    buf[guard:guard + x.size] = x.ravel()
    scratch = np.full(nbytes + 2 * guard, 77, np.int8)
    data, work = buf[guard:guard + x.size], scratch[guard:guard + nbytes]
    status = c_forward.call("tt_depthwise_conv2d_inplace_s8", *args, data,
                            dims(layer["w"].shape), layer["w"], layer["b"], dims(out), work)
    assert status == 0
    assert (buf[:guard] == 77).all() and (buf[guard + x.size:] == 77).all()
    assert (scratch[:guard] == 77).all() and (scratch[guard + nbytes:] == 77).all()
    got = data[:want.size].reshape(out).copy()
    return want, got, nbytes


SAME, VALID = 0, 1


INPLACE_CASES = [
    (1, 12, 12, 8, (3, 3), 1, 1, SAME, 2),      # MobileNet blocks: pad_top + 1 lines
    (1, 13, 11, 5, (3, 3), 2, 1, SAME, 1),      # stride 2, odd sizes
    (1, 12, 12, 8, (3, 3), 2, 1, SAME, 1),      # stride 2, asymmetric padding (0 before)
    (1, 16, 16, 4, (5, 5), 1, 1, SAME, 3),      # MCUNet's 5x5
    (1, 16, 16, 4, (7, 7), 1, 1, SAME, 4),      # and 7x7
    (1, 15, 15, 4, (7, 7), 2, 1, SAME, 2),      # pad_top 3: two lines at stride 2
    (1, 16, 16, 4, (4, 4), 2, 1, SAME, 1),      # the imported models' grown 4x4 kernels
    (1, 10, 9, 6, (3, 3), 1, 1, VALID, 1),
    (1, 10, 9, 6, (3, 3), 2, 1, VALID, 1),
    (1, 14, 14, 3, (3, 3), 1, 2, SAME, 3),      # dilation 2: pad_top 2
    (2, 8, 8, 4, (3, 3), 1, 1, SAME, 2),        # batches
    (1, 1, 1, 16, (3, 3), 1, 1, SAME, 1),       # 1x1 map
    (1, 6, 6, 4, (1, 1), 1, 1, VALID, 1),
]


@pytest.mark.parametrize("n, h, w, c, kernel, stride, dilation, padding, lines", INPLACE_CASES)
def test_inplace_depthwise_equals_out_of_place(n, h, w, c, kernel, stride, dilation, padding,
                                               lines):
    rng = np.random.default_rng(h * 100 + c)
    layer = depthwise_layer(rng, n, h, w, c, kernel, stride, dilation, padding)
    want, got, nbytes = run_inplace(layer)
    assert np.array_equal(got, want)
    assert nbytes == lines * layer["out"][2] * min(c, 4)
    assert lines == min(layer["out"][1], layer["p"].pad_top // stride + 1)  # the header's rule


def test_inplace_depthwise_on_real_layers(zoo):
    """Every depth-multiplier-1 depthwise layer of the zoo and the paper models, called as
    c_forward.inplace_depthwise_call says, on its real input held in a guarded buffer:
    the front of that buffer == the out-of-place output."""
    graphs = [tflite_io.load(zoo[n]) for n in ("depthwise", "mobile")]
    for name in PKLS:
        path = SHARED_MODELS / "tiny-training" / f"{name}.pkl"
        if path.exists():
            from tflite_train.importers.tiny_training import import_pkl
            graphs.append(import_pkl(path, "kernel"))
    layers = refused = 0
    for g in graphs:
        values = Executor(g, "c").invoke(random_inputs(g, np.random.default_rng(0)))
        for op in g.operators:
            if op.kind != "DEPTHWISE_CONV_2D":
                continue
            x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
            kc = c_forward.inplace_depthwise_call(g, op)
            if x_t.shape[3] != y_t.shape[3]:
                assert kc is None
                refused += 1
                continue
            scratch = next(a for a in kc.args if isinstance(a, c_forward.Scratch))
            lines = min(y_t.shape[1], kc.args[0].pad_top // kc.args[0].stride_h + 1)
            assert scratch.nbytes == lines * y_t.shape[2] * min(y_t.shape[3], 4)
            guard = 64
            buf = np.full(x_t.size + 2 * guard, 77, np.int8)
            data = buf[guard:guard + x_t.size].reshape(x_t.shape)
            data[...] = values[op.inputs[0]]
            args = [data] + [values.get(i) if i >= 0 else None for i in op.inputs[1:]]
            assert c_forward.bind(g, op, kc)(args) == []
            assert (buf[:guard] == 77).all() and (buf[guard + x_t.size:] == 77).all()
            assert np.array_equal(data.ravel()[:y_t.size], values[op.outputs[0]].ravel())
            layers += 1
    assert layers >= 3 and refused >= 1


def test_inplace_depthwise_refuses_a_depth_multiplier():
    rng = np.random.default_rng(0)
    layer = depthwise_layer(rng, 1, 6, 6, 4, (3, 3), 1, 1, SAME)
    x = layer["x"].copy()
    out = dims((1, 6, 6, 8))
    w = rng.integers(-127, 128, (1, 3, 3, 8)).astype(np.int8)
    assert c_forward.call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", layer["p"],
                          dims(x.shape), dims(w.shape), out) == 0
    status = c_forward.call("tt_depthwise_conv2d_inplace_s8", layer["p"], np.tile(layer["m"], 2),
                            np.tile(layer["s"], 2), dims(x.shape), x, dims(w.shape), w, None,
                            out, np.empty(64, np.int8))
    assert status == 1 and np.array_equal(x, layer["x"])


# --- split filters (trained channels in SRAM, frozen ones in flash) -------------------------------

@pytest.mark.parametrize("k", [1, 3, 8, 13, 16])
def test_split_filters_equal_whole_ones(k):
    rng = np.random.default_rng(k)
    ci, co = 16, 6
    x = rng.integers(-128, 128, (1, 7, 7, ci)).astype(np.int8)
    w = rng.integers(-127, 128, (co, 3, 3, ci)).astype(np.int8)
    bias = rng.integers(-500, 500, co).astype(np.int32)
    m = np.full(co, 1 << 30, np.int32)
    s = np.full(co, -8, np.int8)
    p = c_forward.ConvParams(2, 2, 1, 1, 1, 1, 3, -2, -128, 127)
    lo, hi = np.ascontiguousarray(w[..., :k]), np.ascontiguousarray(w[..., k:])
    whole, split = np.empty((1, 4, 4, co), np.int8), np.empty((1, 4, 4, co), np.int8)
    c_forward.call("tt_conv2d_s8", p, m, s, dims(x.shape), x, dims(w.shape), w, bias,
                   dims(whole.shape), whole)
    c_forward.call("tt_conv2d_split_s8", p, m, s, dims(x.shape), x, dims(w.shape), lo, k,
                   hi if k < ci else None, bias, dims(split.shape), split)
    assert np.array_equal(whole, split)
    assert len(np.unique(whole)) > 20                      # not saturated: a real comparison

    fc = c_forward.FcParams(3, -2, -128, 127)
    xf = x.reshape(-1, ci)[:5].copy()
    wf = np.ascontiguousarray(w[:, 0, 0, :])
    whole, split = np.empty((5, co), np.int8), np.empty((5, co), np.int8)
    c_forward.call("tt_fully_connected_s8", fc, m, s, 5, ci, xf, co, wf, bias, whole)
    c_forward.call("tt_fully_connected_split_s8", fc, m, s, 5, ci, xf, co,
                   np.ascontiguousarray(wf[:, :k]), k,
                   np.ascontiguousarray(wf[:, k:]) if k < ci else None, bias, split)
    assert np.array_equal(whole, split)


# --- the same under AddressSanitizer + UBSan ----------------------------------------------------

def test_forward_kernels_are_clean_under_asan_and_ubsan(tmp_path, zoo):
    """The built models, the in-place and split kernels and two zoo models in a child process
    whose kernels are built with AddressSanitizer + UndefinedBehaviorSanitizer."""
    sources = sorted((c_forward.MICRO_KERNELS / "src").glob("tt_fwd_*.c"))
    lib = tmp_path / "libtt_forward.so"
    subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    "-fno-omit-frame-pointer", "-fPIC", "-shared", "-I",
                    str(c_forward.MICRO_KERNELS / "include"), *map(str, sources), "-o",
                    str(lib)], check=True)
    libs = sanitizer_runtimes()
    require_tool(libs is not None, "gcc's sanitizer runtimes (libasan, libubsan)")
    paths = {n: str(zoo[n]) for n in ("mobile", "branches")}
    code = (
        "import sys, json, ctypes, pathlib; sys.path.insert(0, 'tests')\n"
        "from tflite_train.runtime import c_forward\n"
        f"lib = c_forward.declare(ctypes.CDLL({str(lib)!r}))\n"
        "c_forward.library = lambda: lib\n"
        "import test_c_forward as t\n"
        "for g in t.built_models():\n"
        "    t.assert_c_exact(g, None)\n"
        f"for p in json.loads({json.dumps(json.dumps(paths))}).values():\n"
        "    t.assert_c_exact(t.tflite_io.load(p), None, seeds=(0,))\n"
        "for case in t.INPLACE_CASES:\n"
        "    t.test_inplace_depthwise_equals_out_of_place(*case)\n"
        "t.test_inplace_depthwise_refuses_a_depth_multiplier()\n"
        "for k in (1, 16):\n"
        "    t.test_split_filters_equal_whole_ones(k)\n"
        "print('sanitized run ok')\n")
    env = dict(os.environ, LD_PRELOAD=" ".join(libs), ASAN_OPTIONS="detect_leaks=0",
               UBSAN_OPTIONS="halt_on_error=1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=str(ROOT), timeout=600)
    assert res.returncode == 0 and "sanitized run ok" in res.stdout, res.stderr[-3000:]


def test_an_array_of_another_element_type_is_refused_before_the_call():
    """C would read an int32 shift array as int8 bytes, silently: both direct call paths
    (the forward kernels' and the host engine's) refuse it by the parameter's type first."""
    from tflite_train.errors import TTError
    from tflite_train.runtime import c_forward, kernel_calls
    with pytest.raises(TTError, match="argument shift is int32, the kernel reads int8_t"):
        c_forward.call("tt_conv2d_s8", None, np.zeros(1, np.int32), np.zeros(1, np.int32))
    with pytest.raises(TTError, match="argument dy is float64, the kernel reads float"):
        kernel_calls.host_call("tt_bias_grad_f32", np.zeros(4), None, 1, 4,
                               np.zeros(4, np.float32))


def test_a_shift_beyond_the_kernels_range_never_reaches_them():
    """A graph that skipped ops.validate (which refuses a multiplier of 2^31 or more) still
    cannot hand the C kernels a shift outside [-31, 31]: one ModelError, the same check as
    the training ops' (tt_forward.shifts_int8), not a shift C leaves undefined."""
    from dataclasses import replace
    from tflite_train.errors import ModelError
    g = built_models()[0]
    for kind in ("CONV_2D", "FULLY_CONNECTED"):
        op = next(o for o in g.operators if o.kind == kind)
        y = g.tensors[op.outputs[0]]
        keep = y.quant
        y.quant = replace(keep, scale=np.asarray(keep.scale) * 2.0 ** -40)
        with pytest.raises(ModelError, match="requantization shift of 3[0-9], outside"):
            Executor(g, "c").invoke(random_inputs(g, np.random.default_rng(0)))
        y.quant = keep
