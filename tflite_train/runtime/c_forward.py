"""The int8 forward kernels of micro_kernels (include/tt_forward.h) through ctypes.

`kernel_call(graph, op)` works out, once, everything a device would before its first Invoke:
the kernel and its arguments, i.e. the requantization multipliers and shifts (from the same
functions the numpy forward uses, so there is one definition of TFLM's arithmetic),
activation ranges, windows and shapes, with placeholders for the tensors (In, Out, Scratch).
A code generator emits that call; `prepare` binds it into `run(inputs) -> outputs` for the
executor, which then only allocates the outputs and calls C.

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
from ..ops import add, fully_connected, mean, pad, pool, shape, softmax, tt_forward
from ..ops import fused_activation
from ..ops.requant import conv_multipliers, rescale_multiplier
from ..ops.window import geometry
from ..training_ops import options_of
from . import kernel_calls as K
from .build import MICRO_KERNELS, micro_kernels_library
from .kernel_calls import In, KernelCall, Out, Scratch

HEADER = MICRO_KERNELS / "include" / "tt_forward.h"
LIBRARY_NAME = "libtt_kernels.so"
MAX_RANK = 6

def _declarations() -> tuple[dict, dict]:
    """(struct name -> ctypes.Structure, function name -> (restype, argtypes)) of the
    forward kernels, from the signatures kernel_calls reads out of the headers."""
    structs = {name: K.struct_class(name) for name in K.structs() if name.startswith("tt_fwd")}
    functions = {}
    for name, sig in K.signatures().items():
        if name in HEADER_FUNCTIONS:
            functions[name] = (K.CTYPES[sig.ret], [C.c_void_p if p.pointer else K.CTYPES[p.ctype]
                                                   for p in sig.params])
    return structs, functions


HEADER_FUNCTIONS = set(re.findall(r"^\w+\s+(tt_\w+)\(", K.strip_comments(HEADER.read_text()),
                                  re.M))
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
    header declares them. Arrays must be C-contiguous and of the kernel's element type.
    Functions of the other kernel headers (tt_stream.h, ...) go through kernel_calls, which
    declares them all."""
    if name not in FUNCTIONS:
        return K.host_call(name, *args)
    K.check_arrays(name, K.c_signatures()[name].params, args)
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


# --- what each operator calls ---------------------------------------------------------------

def conv_params(graph: Graph, op: Operator) -> tuple[ConvParams, np.ndarray, np.ndarray]:
    """The window, offsets, activation range and per-channel (multiplier, shift) of a
    CONV_2D or DEPTHWISE_CONV_2D."""
    x_t, w_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    _, stride, dilation, pads, _ = geometry(op, x_t.shape, w_t.shape[1:3], y_t.shape)
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    params = ConvParams(stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[1],
                        -x_t.quant.zp, y_t.quant.zp, lo, hi)
    m, s = conv_multipliers(x_t, w_t, y_t, y_t.shape[3])
    return params, _i32(m), tt_forward.shifts_int8(s)


def _bias(op: Operator):
    return In(2) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None


def _tensors(graph: Graph, op: Operator, *positions):
    return [graph.tensors[op.inputs[k]] for k in positions]


def _conv(graph: Graph, op: Operator) -> KernelCall:
    x_t, w_t = _tensors(graph, op, 0, 1)
    y_t = graph.tensors[op.outputs[0]]
    params, m, s = conv_params(graph, op)
    name = "tt_conv2d_s8" if op.kind == "CONV_2D" else "tt_depthwise_conv2d_s8"
    return KernelCall(name, [params, m, s, _nhwc(x_t.shape), In(0), _nhwc(w_t.shape), In(1),
                             _bias(op), _nhwc(y_t.shape), Out(0)])


def inplace_depthwise_call(graph: Graph, op: Operator) -> KernelCall | None:
    """tt_depthwise_conv2d_inplace_s8 for a DEPTHWISE_CONV_2D: its output is written over
    In(0), the first output-size bytes of it; None when the kernel does not support the
    layer (a depth multiplier)."""
    if op.kind != "DEPTHWISE_CONV_2D":
        return None
    x_t, w_t = _tensors(graph, op, 0, 1)
    y_t = graph.tensors[op.outputs[0]]
    params, m, s = conv_params(graph, op)
    dims = [_nhwc(t.shape) for t in (x_t, w_t, y_t)]
    nbytes = call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", params, *dims)
    if nbytes == 0:
        return None
    return KernelCall("tt_depthwise_conv2d_inplace_s8",
                      [params, m, s, dims[0], In(0), dims[1], In(1), _bias(op), dims[2],
                       Scratch(nbytes)])


def _fully_connected(graph: Graph, op: Operator) -> KernelCall:
    x_t, w_t = _tensors(graph, op, 0, 1)
    y_t = graph.tensors[op.outputs[0]]
    units, depth = w_t.shape
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    m, s = fully_connected.multipliers(graph, op)
    return KernelCall("tt_fully_connected_s8",
                      [FcParams(-x_t.quant.zp, y_t.quant.zp, lo, hi), _i32(m),
                       tt_forward.shifts_int8(s),
                       x_t.size // depth, depth, In(0), units, In(1), _bias(op), Out(0)])


def add_params(graph: Graph, op: Operator) -> AddParams:
    a, b = _tensors(graph, op, 0, 1)
    y = graph.tensors[op.outputs[0]]
    (ma, sa), (mb, sb), (my, sy) = add.params(graph, op)
    lo, hi = fp.activation_range(fused_activation(op), y.quant.s, y.quant.zp)
    return AddParams(-a.quant.zp, -b.quant.zp, y.quant.zp, add.LEFT_SHIFT, ma, sa, mb, sb,
                     my, sy, lo, hi)


def _add(graph: Graph, op: Operator) -> KernelCall:
    a_t, b_t = _tensors(graph, op, 0, 1)
    y_t = graph.tensors[op.outputs[0]]
    params = add_params(graph, op)
    if a_t.shape == b_t.shape == y_t.shape:
        return KernelCall("tt_add_s8", [params, In(0), In(1), y_t.size, Out(0)])
    rank = len(y_t.shape)
    da, db = (_dims((1,) * (rank - len(t.shape)) + tuple(t.shape)) for t in (a_t, b_t))
    return KernelCall("tt_add_broadcast_s8",
                      [params, In(0), da, In(1), db, _dims(y_t.shape), rank, Out(0)])


def _pad(graph: Graph, op: Operator) -> KernelCall:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    value = y_t.quant.zp
    if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        v_t = graph.tensors[op.inputs[2]]
        value = int(np.ravel(v_t.data)[0]) if v_t.data is not None else In(2, value=True)
    return KernelCall("tt_pad_s8", [In(0), _dims(x_t.shape),
                                    _dims(pad.paddings(graph, op)[:, 0]), _dims(y_t.shape),
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
    return KernelCall("tt_mean_s8", [In(0), _dims(x_t.shape), reduced, rank, x_t.quant.zp, m,
                                     s, y_t.quant.zp, Out(0)])


def _softmax(graph: Graph, op: Operator) -> KernelCall:
    y_t = graph.tensors[op.outputs[0]]
    m, shift, diff_min = softmax.params(graph, op)
    depth = y_t.shape[-1]
    return KernelCall("tt_softmax_s8", [In(0), y_t.size // depth, depth, m, shift, diff_min,
                                        Out(0)])


def _quantize(graph: Graph, op: Operator) -> KernelCall:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x_t.dtype == "float32":
        return KernelCall("tt_quantize_f32_s8", [In(0), y_t.size, float(np.float32(y_t.quant.s)),
                                                 y_t.quant.zp, Out(0)])
    m, s = rescale_multiplier(x_t, y_t)
    return KernelCall("tt_requantize_s8", [In(0), y_t.size, -x_t.quant.zp, m, s, y_t.quant.zp,
                                           Out(0)])


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
    return KernelCall("tt_transpose_s8", [In(0), _dims(x_t.shape),
                                          _dims(shape.perm(graph, op)), len(x_t.shape), Out(0)])


def _tt_params(graph: Graph, op: Operator) -> ConvParams:
    """A TT_* forward op's window and offsets: its options and its tensors' zero points."""
    o = options_of(op)
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return ConvParams(o.get("stride_h", 1), o.get("stride_w", 1), o.get("dilation_h", 1),
                      o.get("dilation_w", 1), o.get("pad_top", 0), o.get("pad_left", 0),
                      -x_t.quant.zp, y_t.quant.zp, o["act_min"], o["act_max"])


def _opt_in(op: Operator, k: int):
    return In(k) if k < len(op.inputs) and op.inputs[k] >= 0 else None


def _tt_forward(graph: Graph, op: Operator) -> KernelCall:
    """TT_CONV2D, TT_DEPTHWISE_CONV2D, TT_FULLY_CONNECTED out of place: the multipliers and
    shifts are the op's constant inputs."""
    pos = tt_forward.positions(op.kind)
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    w_t = graph.tensors[op.inputs[pos["filter"]]]
    whole = tt_forward.whole_filter_tensor(graph, op)
    p = _tt_params(graph, op)
    m, s, bias = In(pos["multipliers"]), In(pos["shifts"]), _opt_in(op, pos["bias"])
    if op.kind == "TT_FULLY_CONNECTED":
        units, depth = whole.shape
        fc = FcParams(p.input_offset, p.output_offset, p.act_min, p.act_max)
        return KernelCall("tt_fully_connected_split_s8",
                          [fc, m, s, x_t.size // depth, depth, In(0), units, In(1),
                           w_t.shape[1], _opt_in(op, pos["rest"]), bias, Out(0)])
    if op.kind == "TT_DEPTHWISE_CONV2D":
        return KernelCall("tt_depthwise_conv2d_s8",
                          [p, m, s, _nhwc(x_t.shape), In(0), _nhwc(whole.shape), In(1), bias,
                           _nhwc(y_t.shape), Out(0)])
    return KernelCall("tt_conv2d_split_s8",
                      [p, m, s, _nhwc(x_t.shape), In(0), _nhwc(whole.shape), In(1),
                       w_t.shape[3], _opt_in(op, pos["rest"]), bias, _nhwc(y_t.shape),
                       Out(0)])


def _tt_stream(graph: Graph, op: Operator) -> KernelCall:
    """TT_POINTWISE_DEPTHWISE: tt_pointwise_depthwise_s8 with its window as scratch."""
    from ..ops import tt_stream as st
    o = options_of(op)
    x_t, y_t = graph.tensors[op.inputs[st.X]], graph.tensors[op.outputs[0]]
    mid = st.mid_tensor(graph, op)
    pw_t, dw_t = graph.tensors[op.inputs[st.PW_FILTER]], graph.tensors[op.inputs[st.DW_FILTER]]
    pw = ConvParams(1, 1, 1, 1, 0, 0, -x_t.quant.zp, o["mid_zero_point"], o["pw_act_min"],
                    o["pw_act_max"])
    dw = ConvParams(o["stride_h"], o["stride_w"], o["dilation_h"], o["dilation_w"],
                    o["pad_top"], o["pad_left"], -o["mid_zero_point"], y_t.quant.zp,
                    o["act_min"], o["act_max"])
    return KernelCall("tt_pointwise_depthwise_s8",
                      [pw, In(st.PW_M), In(st.PW_S), _nhwc(x_t.shape), In(st.X),
                       _nhwc(pw_t.shape), In(st.PW_FILTER), _opt_in(op, st.PW_BIAS),
                       dw, In(st.DW_M), In(st.DW_S), _nhwc(mid.shape), _nhwc(dw_t.shape),
                       In(st.DW_FILTER), _opt_in(op, st.DW_BIAS), _nhwc(y_t.shape), Out(0),
                       Scratch(st.window_bytes(graph, op))])


def in_place_offset(graph: Graph, op: Operator) -> int:
    """Bytes from the output's first byte to the input's in the in-place layout the kernels
    take (schema: TT_CONV2D / TT_DEPTHWISE_CONV2D in_place), 16-byte aligned as TFLM places
    tensors."""
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    grow = max(0, y_t.nbytes - x_t.nbytes)
    return -(-grow // 16) * 16


def _tt_in_place(graph: Graph, op: Operator):
    """`run(inputs) -> outputs` of an in_place TT_CONV2D / TT_DEPTHWISE_CONV2D: the input is
    copied into one buffer at the in-place layout and the kernel overwrites it, as on the
    device, so the in-place kernels themselves are what runs."""
    pos = tt_forward.positions(op.kind)
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    whole = tt_forward.whole_filter_tensor(graph, op)
    p = _tt_params(graph, op)
    dims = [_nhwc(x_t.shape), _nhwc(whole.shape), _nhwc(y_t.shape)]
    at = in_place_offset(graph, op)
    size = max(at + x_t.nbytes, y_t.nbytes)
    bias_k, rest_k = pos["bias"], pos["rest"]
    if op.kind == "TT_DEPTHWISE_CONV2D":
        scratch = np.empty(call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", p, *dims),
                           np.int8)
    else:
        scratch = np.empty(y_t.shape[2] * y_t.shape[3], np.int8)
    k_lo = graph.tensors[op.inputs[pos["filter"]]].shape[-1]

    def run(inputs):
        def opt(k):
            return None if k is None or k >= len(inputs) else inputs[k]
        data = np.zeros(size, np.int8)
        data[at:at + x_t.nbytes] = inputs[0].reshape(-1)
        m, s = inputs[pos["multipliers"]], inputs[pos["shifts"]]
        if op.kind == "TT_DEPTHWISE_CONV2D":
            status = call("tt_depthwise_conv2d_inplace_s8", p, m, s, dims[0], data, dims[1],
                          inputs[1], opt(bias_k), dims[2], scratch)
        else:
            status = call("tt_conv2d_split_inplace_s8", p, m, s, dims[0], data[at:],
                          dims[1], inputs[1], k_lo, opt(rest_k), opt(bias_k), dims[2], data,
                          scratch)
        if status:
            raise TTError(f"the in-place kernel refused operator {op.kind}")
        return [data[:y_t.nbytes].reshape(y_t.shape).copy()]
    return run


PREPARERS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "ADD": _add, "PAD": _pad, "PADV2": _pad, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool,
    "MEAN": _mean, "SOFTMAX": _softmax, "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize,
    "RESHAPE": _reshape, "TRANSPOSE": _transpose,
    "TT_CONV2D": _tt_forward, "TT_DEPTHWISE_CONV2D": _tt_forward,
    "TT_FULLY_CONNECTED": _tt_forward, "TT_POINTWISE_DEPTHWISE": _tt_stream,
}


def kernel_call(graph: Graph, op: Operator) -> KernelCall | None:
    """The C kernel call of a forward operator, or None when no C kernel covers it (a TT_*
    op, a non-int8 TRANSPOSE, a tensor of rank > 6)."""
    preparer = PREPARERS.get(op.kind)
    if preparer is None:
        return None
    ranks = [len(graph.tensors[i].shape) for i in list(op.inputs[:1]) + list(op.outputs)]
    if max(ranks) > MAX_RANK:
        return None
    kc = preparer(graph, op)
    return None if kc is None else kc.check()


def bind(graph: Graph, op: Operator, kc: KernelCall):
    """`run(inputs) -> outputs` making the call `kc` with the operator's tensors: outputs
    are allocated, inputs passed as they come (C-contiguous, of their tensor's type)."""
    template = list(kc.args)
    inputs_at = [(i, a.k, a.value) for i, a in enumerate(template) if isinstance(a, In)]
    outputs = [(i, graph.tensors[op.outputs[a.k]]) for i, a in enumerate(template)
               if isinstance(a, Out)]
    outputs = [(i, t.shape, np.dtype(t.dtype)) for i, t in outputs]
    for i, a in enumerate(template):
        if isinstance(a, Scratch):
            template[i] = np.empty(a.nbytes, np.int8)
    name = kc.name

    def run(inputs):
        args = list(template)
        for i, k, value in inputs_at:
            args[i] = int(np.ravel(inputs[k])[0]) if value else inputs[k]
        outs = []
        for i, shape_, dtype in outputs:
            args[i] = y = np.empty(shape_, dtype)
            outs.append(y)
        if call(name, *args):                     # only status-returning kernels are bound
            raise TTError(f"{name} refused operator {op.kind}")
        return outs
    return run


def prepare(graph: Graph, op: Operator):
    """`run(inputs) -> outputs` running `op` in C, or None (see kernel_call): the caller
    keeps the numpy reference for those."""
    if op.kind in tt_forward.FORWARD and options_of(op).get("in_place"):
        return _tt_in_place(graph, op)
    kc = kernel_call(graph, op)
    return None if kc is None else bind(graph, op, kc)
