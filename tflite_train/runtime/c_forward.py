"""The int8 forward kernels of micro_kernels (include/tt_forward.h) through ctypes.

`prepare(graph, op)` does, once, everything a device would do before its first Invoke: the
requantization multipliers and shifts (from the same functions the numpy forward uses, so
there is one definition of TFLM's arithmetic), activation ranges, windows and shapes. It
returns `run(inputs) -> outputs`, which only allocates the outputs and calls C.

Argument and return types of every tt_* function, and the layout of every parameter
struct, are read from the header itself, so a signature can not drift from its binding.
All kernel calls go through `call` (the Cortex-M7 tests and benchmarks record them there).
"""
from __future__ import annotations

import ctypes as C
import re
from functools import lru_cache

import numpy as np

from .. import fixedpoint as fp
from ..errors import TTError
from ..ir import Graph, Operator
from ..ops import add, fully_connected, mean, pad, pool, shape, softmax
from ..ops import fused_activation
from ..ops.requant import conv_multipliers, rescale_multiplier
from ..ops.window import geometry
from . import kernel_calls as K
from .kernel_calls import In, KernelCall, Out, Scratch
from .build import MICRO_KERNELS, micro_kernels_library

HEADER = MICRO_KERNELS / "include" / "tt_forward.h"
LIBRARY_NAME = "libtt_kernels.so"
MAX_RANK = 6


def _declarations() -> tuple[dict, dict]:
    """(struct name -> ctypes.Structure, function name -> (restype, argtypes)) of
    tt_forward.h, from the signatures kernel_calls reads out of the header."""
    structs = {name: K.struct_class(name) for name in K.structs() if name.startswith("tt_fwd")}
    functions = {}
    for name, sig in K.signatures().items():
        if name in HEADER_FUNCTIONS:
            functions[name] = (K.CTYPES[sig.ret], [C.c_void_p if p.pointer else K.CTYPES[p.ctype]
                                                   for p in sig.params])
    return structs, functions


# the forward kernels, and the row-streamed pairs of them (tt_stream.h, for the code generator)
HEADER_FUNCTIONS = {name for h in (HEADER, MICRO_KERNELS / "include" / "tt_stream.h")
                    for name in re.findall(r"^\w+\s+(tt_\w+)\(", K.strip_comments(h.read_text()),
                                           re.M)}
STRUCTS, FUNCTIONS = _declarations()
Dims, ConvParams, FcParams = STRUCTS["tt_fwd_dims"], STRUCTS["tt_fwd_conv_params"], \
    STRUCTS["tt_fwd_fc_params"]
AddParams, PoolParams = STRUCTS["tt_fwd_add_params"], STRUCTS["tt_fwd_pool_params"]


def declare(lib: C.CDLL) -> C.CDLL:
    """Give every tt_* forward function of `lib` the header's argument and return types."""
    for name, (restype, argtypes) in FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


@lru_cache(maxsize=1)
def library() -> C.CDLL:
    return declare(C.CDLL(str(micro_kernels_library("all", LIBRARY_NAME))))


def _pointer(a):
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        if not a.flags.c_contiguous:
            raise TTError("internal: a C kernel got a non-contiguous array")
        return a.ctypes.data
    return C.addressof(a)                     # a parameter struct


def call(name: str, *args):
    """tt_`name`(*args): numpy arrays and structs are passed by address, scalars as the
    header declares them. Arrays must be C-contiguous and of the kernel's element type."""
    fn = getattr(library(), name)
    return fn(*[_pointer(a) if a is None or isinstance(a, (np.ndarray, C.Structure)) else a
                for a in args])


def _i32(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, np.int64).astype(np.int32))


def _dims(shape) -> np.ndarray:
    if len(shape) > MAX_RANK:
        raise TTError(f"the C forward kernels handle tensors of rank <= {MAX_RANK}")
    return _i32(shape)


def _nhwc(shape) -> Dims:
    return Dims(*[int(d) for d in shape])


def _contiguous(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype)


# --- one description per operator ---------------------------------------------------------------

def conv_params(graph: Graph, op: Operator) -> tuple[ConvParams, np.ndarray, np.ndarray]:
    """The window, offsets, activation range and per-channel (multiplier, shift) of a
    CONV_2D or DEPTHWISE_CONV_2D: what a code generator emits as constants."""
    x_t, w_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    _, stride, dilation, pads, _ = geometry(op, x_t.shape, w_t.shape[1:3], y_t.shape)
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    params = ConvParams(stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[1],
                        -x_t.quant.zp, y_t.quant.zp, lo, hi)
    m, s = conv_multipliers(x_t, w_t, y_t, y_t.shape[3])
    return params, _i32(m), _i32(s)


def _bias(op: Operator):
    return In(2) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None


def _conv(graph: Graph, op: Operator) -> KernelCall:
    x_t, w_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    params, m, s = conv_params(graph, op)
    name = "tt_conv2d_s8" if op.kind == "CONV_2D" else "tt_depthwise_conv2d_s8"
    return KernelCall(name, [params, m, s, _nhwc(x_t.shape), In(0), _nhwc(w_t.shape), In(1),
                             _bias(op), _nhwc(y_t.shape), Out(0)])


def inplace_depthwise(graph: Graph, op: Operator) -> tuple[KernelCall, int] | None:
    """The in-place form of a DEPTHWISE_CONV_2D (output written over its input, the input
    slot In(0) doubling as the output) and its scratch bytes; None when the kernel does not
    support the layer (then tt_depthwise_conv2d_inplace_s8_scratch_bytes says 0)."""
    call_ = _conv(graph, op)
    params, m, s, dx, _, dw, _, bias, dy, _ = call_.args
    nbytes = int(call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", params, dx, dw, dy))
    if nbytes <= 0:
        return None
    return KernelCall("tt_depthwise_conv2d_inplace_s8",
                      [params, m, s, dx, In(0), dw, In(1), bias, dy, Scratch(nbytes)],
                      status=True), nbytes


def _fully_connected(graph: Graph, op: Operator) -> KernelCall:
    x_t, w_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    units, depth = w_t.shape
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    params = FcParams(-x_t.quant.zp, y_t.quant.zp, lo, hi)
    m, s = fully_connected.multipliers(graph, op)
    return KernelCall("tt_fully_connected_s8",
                      [params, _i32(m), _i32(s), x_t.size // depth, depth, In(0), units, In(1),
                       _bias(op), Out(0)])


def add_params(graph: Graph, op: Operator) -> AddParams:
    a, b, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    (ma, sa), (mb, sb), (my, sy) = add.params(graph, op)
    lo, hi = fp.activation_range(fused_activation(op), y.quant.s, y.quant.zp)
    return AddParams(-a.quant.zp, -b.quant.zp, y.quant.zp, add.LEFT_SHIFT, ma, sa, mb, sb,
                     my, sy, lo, hi)


def _add(graph: Graph, op: Operator) -> KernelCall:
    a_t, b_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    params = add_params(graph, op)
    if a_t.shape == b_t.shape == y_t.shape:
        return KernelCall("tt_add_s8", [params, In(0), In(1), y_t.size, Out(0)])
    rank = len(y_t.shape)
    da, db = (_dims((1,) * (rank - len(t.shape)) + tuple(t.shape)) for t in (a_t, b_t))
    return KernelCall("tt_add_broadcast_s8",
                      [params, In(0), da, In(1), db, _dims(y_t.shape), rank, Out(0)])


def _pad(graph: Graph, op: Operator) -> KernelCall | None:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    value = y_t.quant.zp
    if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        constant = graph.tensors[op.inputs[2]]
        if not constant.is_constant:
            return None
        value = int(np.ravel(constant.data)[0])
    before = _dims(pad.paddings(graph, op)[:, 0])
    return KernelCall("tt_pad_s8", [In(0), _dims(x_t.shape), before, _dims(y_t.shape),
                                    len(y_t.shape), value, Out(0)])


def pool_params(graph: Graph, op: Operator) -> PoolParams:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    (kh, kw), stride, _, pads, _ = geometry(op, x_t.shape, pool.kernel(op), y_t.shape)
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    return PoolParams(stride[0], stride[1], pads[0], pads[1], kh, kw, lo, hi)


def _pool(graph: Graph, op: Operator) -> KernelCall:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    name = "tt_avg_pool_s8" if op.kind == "AVERAGE_POOL_2D" else "tt_max_pool_s8"
    return KernelCall(name, [pool_params(graph, op), _nhwc(x_t.shape), In(0),
                             _nhwc(y_t.shape), Out(0)])


def _mean(graph: Graph, op: Operator) -> KernelCall:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    axes = mean.axes(graph, op)
    count = int(np.prod([x_t.shape[a] for a in axes]))
    m, s = mean.multiplier(graph, op, count)
    rank = len(x_t.shape)
    reduced = _i32([1 if d in axes else 0 for d in range(rank)])
    return KernelCall("tt_mean_s8", [In(0), _dims(x_t.shape), reduced, rank, x_t.quant.zp,
                                     int(m), int(s), y_t.quant.zp, Out(0)])


def _softmax(graph: Graph, op: Operator) -> KernelCall:
    y_t = graph.tensors[op.outputs[0]]
    m, shift, diff_min = softmax.params(graph, op)
    depth = y_t.shape[-1]
    return KernelCall("tt_softmax_s8", [In(0), y_t.size // depth, depth, int(m), int(shift),
                                        int(diff_min), Out(0)])


def _quantize(graph: Graph, op: Operator) -> KernelCall:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x_t.dtype == "float32":
        return KernelCall("tt_quantize_f32_s8", [In(0), y_t.size, float(np.float32(y_t.quant.s)),
                                                 y_t.quant.zp, Out(0)])
    m, s = rescale_multiplier(x_t, y_t)
    return KernelCall("tt_requantize_s8", [In(0), y_t.size, -x_t.quant.zp, int(m), int(s),
                                           y_t.quant.zp, Out(0)])


def _dequantize(graph: Graph, op: Operator) -> KernelCall:
    x_t = graph.tensors[op.inputs[0]]
    return KernelCall("tt_dequantize_s8_f32", [In(0), x_t.size, float(np.float32(x_t.quant.s)),
                                               x_t.quant.zp, Out(0)])


def _reshape(graph: Graph, op: Operator) -> KernelCall:
    return KernelCall("tt_reshape", [In(0), graph.tensors[op.outputs[0]].nbytes, Out(0)])


def _transpose(graph: Graph, op: Operator) -> KernelCall | None:
    x_t = graph.tensors[op.inputs[0]]
    if x_t.dtype != "int8":
        return None
    return KernelCall("tt_transpose_s8", [In(0), _dims(x_t.shape), _dims(shape.perm(graph, op)),
                                          len(x_t.shape), Out(0)])


DESCRIBERS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "ADD": _add, "PAD": _pad, "PADV2": _pad, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool,
    "MEAN": _mean, "SOFTMAX": _softmax, "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize,
    "RESHAPE": _reshape, "TRANSPOSE": _transpose,
}


def describe(graph: Graph, op: Operator) -> KernelCall | None:
    """The kernel call that runs `op`, or None when no C kernel covers it (a TT_* op, a
    non-int8 TRANSPOSE, a tensor of rank > 6, a PADV2 whose value is not a constant)."""
    describer = DESCRIBERS.get(op.kind)
    if describer is None:
        return None
    ranks = [len(graph.tensors[i].shape) for i in list(op.inputs[:1]) + list(op.outputs)]
    if max(ranks) > MAX_RANK:
        return None
    kc = describer(graph, op)
    return kc.check() if kc is not None else None


def prepare(graph: Graph, op: Operator):
    """`run(inputs) -> outputs` running `op` in C, or None when no C kernel covers it (a
    TT_* op, a non-int8 TRANSPOSE): the caller keeps the numpy reference for those."""
    kc = describe(graph, op)
    if kc is None:
        return None
    outputs = [(graph.tensors[i].shape, np.dtype(graph.tensors[i].dtype)) for i in op.outputs]
    params = kc.signature.params
    # an argument is bound once if it is fixed, else per call from the inputs and outputs
    binders = []
    for p, a in zip(params, kc.args):
        if isinstance(a, K.In):
            dtype = K.DTYPES[p.ctype]
            binders.append(lambda ins, outs, j=a.slot, d=dtype: _contiguous(ins[j], d))
        elif isinstance(a, K.Out):
            binders.append(lambda ins, outs, j=a.slot: outs[j])
        elif isinstance(a, (K.Scratch, K.UpdateState, K.LabelValue)):
            raise TTError(f"internal: {kc.kernel}: a forward call with {type(a).__name__}")
        else:
            binders.append(lambda ins, outs, v=a: v)
    name = kc.kernel

    def run(inputs):
        outs = [np.empty(s, d) for s, d in outputs]
        call(name, *[b(inputs, outs) for b in binders])
        return outs
    return run
