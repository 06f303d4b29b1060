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
from .build import MICRO_KERNELS, micro_kernels_library

HEADER = MICRO_KERNELS / "include" / "tt_forward.h"
LIBRARY_NAME = "libtt_kernels.so"
MAX_RANK = 6

SCALAR_CTYPES = {"int32_t": C.c_int32, "int": C.c_int, "float": C.c_float,
                 "uint32_t": C.c_uint32, "int8_t": C.c_int8, "void": None}


def _declarations() -> tuple[dict, dict]:
    """(struct name -> ctypes.Structure, function name -> (restype, argtypes)) of the header."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    structs = {}
    for body, name in re.findall(r"typedef struct \{([^}]*)\}\s*(\w+);", text):
        fields = []
        for decl in body.split(";"):
            words = decl.split()
            if not words:
                continue
            if words[0] != "int32_t":
                raise TTError(f"{HEADER.name}: {name} has a non-int32_t field ({decl.strip()})")
            fields += [(f.strip(), C.c_int32) for f in " ".join(words[1:]).split(",")]
        structs[name] = type(name, (C.Structure,), {"_fields_": fields})
    functions = {}
    for ret, name, params in re.findall(r"^(\w+)\s+(tt_\w+)\(([^)]*)\);", text, re.M):
        argtypes = []
        for param in params.split(","):
            ctype = " ".join(param.split()[:-1]).replace("const ", "")
            argtypes.append(C.c_void_p if "*" in param else SCALAR_CTYPES[ctype])
        functions[name] = (SCALAR_CTYPES[ret], argtypes)
    return structs, functions


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


# --- one preparer per operator -----------------------------------------------------------------

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
    return len(op.inputs) > 2 and op.inputs[2] >= 0


def _conv(graph: Graph, op: Operator):
    x_t, w_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    params, m, s = conv_params(graph, op)
    dx, dw, dy = _nhwc(x_t.shape), _nhwc(w_t.shape), _nhwc(y_t.shape)
    name = "tt_conv2d_s8" if op.kind == "CONV_2D" else "tt_depthwise_conv2d_s8"
    has_bias, shape_y = _bias(op), y_t.shape

    def run(inputs):
        y = np.empty(shape_y, np.int8)
        call(name, params, m, s, dx, inputs[0], dw, inputs[1],
             inputs[2] if has_bias else None, dy, y)
        return [y]
    return run


def _fully_connected(graph: Graph, op: Operator):
    x_t, w_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    units, depth = w_t.shape
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    params = FcParams(-x_t.quant.zp, y_t.quant.zp, lo, hi)
    m, s = fully_connected.multipliers(graph, op)
    m, s = _i32(m), _i32(s)
    batches, has_bias, shape_y = x_t.size // depth, _bias(op), y_t.shape

    def run(inputs):
        y = np.empty(shape_y, np.int8)
        call("tt_fully_connected_s8", params, m, s, batches, depth, inputs[0], units,
             inputs[1], inputs[2] if has_bias else None, y)
        return [y]
    return run


def add_params(graph: Graph, op: Operator) -> AddParams:
    a, b, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    (ma, sa), (mb, sb), (my, sy) = add.params(graph, op)
    lo, hi = fp.activation_range(fused_activation(op), y.quant.s, y.quant.zp)
    return AddParams(-a.quant.zp, -b.quant.zp, y.quant.zp, add.LEFT_SHIFT, ma, sa, mb, sb,
                     my, sy, lo, hi)


def _add(graph: Graph, op: Operator):
    a_t, b_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    params, shape_y = add_params(graph, op), y_t.shape
    if a_t.shape == b_t.shape == y_t.shape:
        size = y_t.size

        def run(inputs):
            y = np.empty(shape_y, np.int8)
            call("tt_add_s8", params, inputs[0], inputs[1], size, y)
            return [y]
        return run
    rank = len(y_t.shape)
    da, db = (_dims((1,) * (rank - len(t.shape)) + tuple(t.shape)) for t in (a_t, b_t))
    dy = _dims(y_t.shape)

    def run_broadcast(inputs):
        y = np.empty(shape_y, np.int8)
        call("tt_add_broadcast_s8", params, inputs[0], da, inputs[1], db, dy, rank, y)
        return [y]
    return run_broadcast


def _pad(graph: Graph, op: Operator):
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    before = _dims(pad.paddings(graph, op)[:, 0])
    dx, dy, rank, shape_y = _dims(x_t.shape), _dims(y_t.shape), len(y_t.shape), y_t.shape
    value_input = op.inputs[2] if op.kind == "PADV2" and len(op.inputs) > 2 else -1

    def run(inputs):
        value = y_t.quant.zp if value_input < 0 else int(np.ravel(inputs[2])[0])
        y = np.empty(shape_y, np.int8)
        call("tt_pad_s8", inputs[0], dx, before, dy, rank, value, y)
        return [y]
    return run


def pool_params(graph: Graph, op: Operator) -> PoolParams:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    (kh, kw), stride, _, pads, _ = geometry(op, x_t.shape, pool.kernel(op), y_t.shape)
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    return PoolParams(stride[0], stride[1], pads[0], pads[1], kh, kw, lo, hi)


def _pool(graph: Graph, op: Operator):
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    params, dx, dy, shape_y = pool_params(graph, op), _nhwc(x_t.shape), _nhwc(y_t.shape), \
        y_t.shape
    name = "tt_avg_pool_s8" if op.kind == "AVERAGE_POOL_2D" else "tt_max_pool_s8"

    def run(inputs):
        y = np.empty(shape_y, np.int8)
        call(name, params, dx, inputs[0], dy, y)
        return [y]
    return run


def _mean(graph: Graph, op: Operator):
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    axes = mean.axes(graph, op)
    count = int(np.prod([x_t.shape[a] for a in axes]))
    m, s = mean.multiplier(graph, op, count)
    dims, rank, shape_y = _dims(x_t.shape), len(x_t.shape), y_t.shape
    reduced = _i32([1 if d in axes else 0 for d in range(rank)])

    def run(inputs):
        y = np.empty(shape_y, np.int8)
        call("tt_mean_s8", inputs[0], dims, reduced, rank, x_t.quant.zp, m, s, y_t.quant.zp, y)
        return [y]
    return run


def _softmax(graph: Graph, op: Operator):
    y_t = graph.tensors[op.outputs[0]]
    m, shift, diff_min = softmax.params(graph, op)
    depth, shape_y = y_t.shape[-1], y_t.shape
    rows = y_t.size // depth

    def run(inputs):
        y = np.empty(shape_y, np.int8)
        call("tt_softmax_s8", inputs[0], rows, depth, m, shift, diff_min, y)
        return [y]
    return run


def _quantize(graph: Graph, op: Operator):
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    size, shape_y, zp = y_t.size, y_t.shape, y_t.quant.zp
    if x_t.dtype == "float32":
        scale = float(np.float32(y_t.quant.s))

        def run(inputs):
            y = np.empty(shape_y, np.int8)
            call("tt_quantize_f32_s8", _contiguous(inputs[0], np.float32), size, scale, zp, y)
            return [y]
        return run
    m, s = rescale_multiplier(x_t, y_t)

    def run_requantize(inputs):
        y = np.empty(shape_y, np.int8)
        call("tt_requantize_s8", inputs[0], size, -x_t.quant.zp, m, s, zp, y)
        return [y]
    return run_requantize


def _dequantize(graph: Graph, op: Operator):
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    size, shape_y, scale, zp = x_t.size, y_t.shape, float(np.float32(x_t.quant.s)), x_t.quant.zp

    def run(inputs):
        y = np.empty(shape_y, np.float32)
        call("tt_dequantize_s8_f32", inputs[0], size, scale, zp, y)
        return [y]
    return run


def _reshape(graph: Graph, op: Operator):
    y_t = graph.tensors[op.outputs[0]]
    shape_y, dtype = y_t.shape, np.dtype(y_t.dtype)

    def run(inputs):
        x = np.ascontiguousarray(inputs[0])
        y = np.empty(shape_y, dtype)
        call("tt_reshape", x, x.nbytes, y)
        return [y]
    return run


def _transpose(graph: Graph, op: Operator):
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x_t.dtype != "int8":
        return None
    perm, dims, rank, shape_y = _dims(shape.perm(graph, op)), _dims(x_t.shape), \
        len(x_t.shape), y_t.shape

    def run(inputs):
        y = np.empty(shape_y, np.int8)
        call("tt_transpose_s8", inputs[0], dims, perm, rank, y)
        return [y]
    return run


PREPARERS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "ADD": _add, "PAD": _pad, "PADV2": _pad, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool,
    "MEAN": _mean, "SOFTMAX": _softmax, "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize,
    "RESHAPE": _reshape, "TRANSPOSE": _transpose,
}


def prepare(graph: Graph, op: Operator):
    """`run(inputs) -> outputs` running `op` in C, or None when no C kernel covers it (a
    TT_* op, a non-int8 TRANSPOSE): the caller keeps the numpy reference for those."""
    preparer = PREPARERS.get(op.kind)
    if preparer is None:
        return None
    ranks = [len(graph.tensors[i].shape) for i in list(op.inputs[:1]) + list(op.outputs)]
    if max(ranks) > MAX_RANK:
        return None
    return preparer(graph, op)
