"""The micro_kernels C library, driven through ctypes with the numpy kernels' signatures:
`fn(graph, op, inputs)` (and `state` for the update ops), so that an executor can run any
TT_* op in C instead of numpy. `make -C micro_kernels` (re)builds the library first."""
from __future__ import annotations

import ctypes as C
import re
from functools import lru_cache

import numpy as np

from ..errors import TTError
from ..ir import Graph, Operator
from ..training_ops import grad_mode, options_of, seed_state
from .build import BUILD, MICRO_KERNELS, micro_kernels_library

ROOT = MICRO_KERNELS
LIBRARY = BUILD / "libtt_kernels.so"
HEADER = ROOT / "include" / "tt_kernels.h"


def cortex_m7_flags() -> list[str]:
    """The paper's board's compiler flags (STM32F746: Cortex-M7, single-precision FPU), from
    their one definition in micro_kernels/tflite_train.inc."""
    text = (ROOT / "tflite_train.inc").read_text()
    return re.search(r"^TFLITE_TRAIN_CORTEX_M7_FLAGS\s*:=\s*(.+)$", text, re.M).group(1).split()


class Window(C.Structure):
    _fields_ = [("stride_h", C.c_int32), ("stride_w", C.c_int32), ("dilation_h", C.c_int32),
                ("dilation_w", C.c_int32), ("pad_top", C.c_int32), ("pad_left", C.c_int32)]


class Sgd(C.Structure):
    _fields_ = [("lr", C.c_float), ("momentum", C.c_float), ("qas", C.c_int),
                ("rounding", C.c_int), ("decay_steps", C.c_int)]


class UpdateState(C.Structure):
    _fields_ = [("rng", C.c_uint32), ("step", C.c_int32)]


@lru_cache(maxsize=1)
def library() -> C.CDLL:
    return declare_return_types(C.CDLL(str(micro_kernels_library("all", LIBRARY.name))))


RETURN_CTYPES = {"void": None, "int": C.c_int, "float": C.c_float, "double": C.c_double,
                 "int32_t": C.c_int32, "int16_t": C.c_int16,
                 "uint32_t": C.c_uint32}


def declare_return_types(lib: C.CDLL) -> C.CDLL:
    """Every tt_* function's restype as the header declares it (ctypes assumes int: a float
    or double result would be read from the wrong register)."""
    for ret, name in re.findall(r"^(\w+)\s+(tt_\w+)\(", HEADER.read_text(), re.M):
        getattr(lib, name).restype = RETURN_CTYPES[ret]
    return lib


def _p(array, ctype):
    if array is None:
        return None
    return array.ctypes.data_as(C.POINTER(ctype))


F32, I8, U8, I16, I32 = C.c_float, C.c_int8, C.c_uint8, C.c_int16, C.c_int32


def _f32(a):
    return np.ascontiguousarray(a, np.float32)


def _i8(a):
    return np.ascontiguousarray(a, np.int8)


def _mask(m):
    return None if m is None else np.ascontiguousarray(m, np.uint8)


def _s8(a):
    return np.ascontiguousarray(a, np.int8)


def _scale(a) -> C.c_float:
    """An int8 gradient's scale, from its float32 [1] tensor."""
    return F32(float(np.ravel(a)[0]))


def _int8_grads(graph: Graph, op: Operator) -> bool:
    return grad_mode(graph, op) == "int8"


def _rounding(op: Operator, state: dict):
    """The tt_update_state a rounding op draws from (byref), or None (nearest); the C state
    lives in the executor's per-op state dict, as the numpy kernels' does."""
    o = options_of(op)
    return C.byref(_state({} if state is None else state, o)) if o.get("rounding") else None


def _new_scale() -> np.ndarray:
    return np.zeros(1, np.float32)


def _window(op: Operator) -> Window:
    o = options_of(op)
    return Window(o.get("stride_h", 1), o.get("stride_w", 1), o.get("dilation_h", 1),
                  o.get("dilation_w", 1), o["pad_top"], o["pad_left"])


def _scales(q, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(q.scale.astype(np.float32), (n,)))


def save_mask(graph: Graph, op: Operator, inputs) -> list:
    o = options_of(op)
    y = _i8(inputs[0])
    out = np.empty((y.size + 7) // 8, np.uint8)
    library().tt_save_mask_s8(_p(y, I8), y.size, o["lo"], o["hi"], _p(out, U8))
    return [out]


def save_slice(graph: Graph, op: Operator, inputs) -> list:
    x = _i8(inputs[0])
    k = options_of(op)["channels"]
    out = np.empty(x.shape[:-1] + (k,), np.int8)
    library().tt_save_slice_s8(_p(x, I8), x.size // x.shape[-1], x.shape[-1], k, _p(out, I8))
    return [out]


def loss(graph: Graph, op: Operator, inputs, state=None) -> list:
    q = graph.tensors[op.inputs[0]].quant
    logits = _i8(inputs[0])
    label = int(np.ravel(inputs[1])[0])
    out, grad = np.zeros(1, np.float32), np.empty(logits.shape, np.float32)
    if _int8_grads(graph, op):
        dq, scale = np.empty(logits.shape, np.int8), _new_scale()
        status = library().tt_loss_softmax_ce_s8_s8(
            _p(logits, I8), logits.size, F32(q.s), q.zp, label, _p(out, F32), _p(dq, I8),
            _p(scale, F32), _rounding(op, state), _p(grad, F32))
        result = [out, dq, scale]
    else:
        status = library().tt_loss_softmax_ce_s8(_p(logits, I8), logits.size, F32(q.s), q.zp,
                                                  label, _p(out, F32), _p(grad, F32))
        result = [out, grad]
    if status:
        raise ValueError(f"label {label} out of range")
    return result


def bias_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    out = np.empty(inputs[0].shape[-1], np.float32)
    if _int8_grads(graph, op):
        dy = _s8(inputs[0])
        library().tt_bias_grad_s8(_p(dy, I8), _scale(inputs[2]), _p(_mask(inputs[1]), U8),
                                  dy.size // dy.shape[-1], dy.shape[-1], _p(out, F32))
        return [out]
    dy = _f32(inputs[0])
    library().tt_bias_grad_f32(_p(dy, F32), _p(_mask(inputs[1]), U8), dy.size // dy.shape[-1],
                               dy.shape[-1], _p(out, F32))
    return [out]


def mask_grad(graph: Graph, op: Operator, inputs) -> list:
    if np.asarray(inputs[0]).dtype == np.int8:
        dy = _s8(inputs[0])
        out = np.empty_like(dy)
        library().tt_mask_grad_s8(_p(dy, I8), _p(_mask(inputs[1]), U8), dy.size, _p(out, I8))
        return [out]
    dy = _f32(inputs[0])
    out = np.empty_like(dy)
    library().tt_mask_grad_f32(_p(dy, F32), _p(_mask(inputs[1]), U8), dy.size, _p(out, F32))
    return [out]


def _input_grad_s8(graph: Graph, op: Operator, inputs, state, fn, args_between) -> list:
    """An int8 layer input gradient: (dy, dy_scale, mask, `args_between`..., dx, dx_scale,
    rounding, scratch) with the multipliers' unit computed as the TFLM glue's Prepare does,
    and scratch when the op's `passes` is 1."""
    dx_shape = graph.tensors[op.outputs[0]].shape
    dx, scale = np.empty(dx_shape, np.int8), _new_scale()
    scratch = (np.empty(int(np.prod(dx_shape)), np.int32)
               if options_of(op)["passes"] == 1 else None)
    dy = _s8(inputs[0])
    fn(_p(dy, I8), _scale(inputs[4]), _p(_mask(inputs[1]), U8), *args_between(dy),
       _p(dx, I8), _p(scale, F32), _rounding(op, state), _p(scratch, I32))
    return [dx, scale]


def _multipliers(graph: Graph, op: Operator, inputs):
    from ..ops.conv import input_grad_unit
    mult = np.ascontiguousarray(inputs[3], np.int16)
    return _p(mult, I16), F32(input_grad_unit(graph, op)), mult


def conv_input_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    w_t = graph.tensors[op.inputs[2]]
    w = _i8(inputs[2])
    dx_shape = graph.tensors[op.outputs[0]].shape
    win = _window(op)
    if _int8_grads(graph, op):
        mult, unit, keep = _multipliers(graph, op, inputs)
        return _input_grad_s8(graph, op, inputs, state, library().tt_conv2d_input_grad_s8,
                              lambda dy: (*dy.shape, _p(w, I8), mult, unit, w.shape[1],
                                          w.shape[2], C.byref(win), *dx_shape[1:]))
    dy = _f32(inputs[0])
    n, oh, ow, co = dy.shape
    dx = np.empty(dx_shape, np.float32)
    library().tt_conv2d_input_grad_f32(
        _p(dy, F32), _p(_mask(inputs[1]), U8), n, oh, ow, co, _p(w, I8),
        _p(_scales(w_t.quant, co), F32), w.shape[1], w.shape[2], C.byref(win),
        dx_shape[1], dx_shape[2], dx_shape[3], _p(dx, F32))
    return [dx]


def _dy(graph: Graph, op: Operator, inputs, scale_at: int):
    """dy's pointer and the leading scale argument of an int8 kernel ([]: float32 mode)."""
    if _int8_grads(graph, op):
        dy = _s8(inputs[0])
        return dy, [_p(dy, I8), _scale(inputs[scale_at])], "_s8"
    dy = _f32(inputs[0])
    return dy, [_p(dy, F32)], "_f32"


def conv_weight_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    x_t = graph.tensors[op.inputs[2]]
    dy, head, kind = _dy(graph, op, inputs, 3)
    x = _i8(inputs[2])
    n, oh, ow, co = dy.shape
    dw = np.empty(graph.tensors[op.outputs[0]].shape, np.float32)
    win = _window(op)
    getattr(library(), "tt_conv2d_weight_grad" + kind)(
        *head, _p(_mask(inputs[1]), U8), n, oh, ow, co, _p(x, I8), F32(x_t.quant.s),
        x_t.quant.zp, x.shape[1], x.shape[2], x.shape[3], dw.shape[1], dw.shape[2],
        C.byref(win), _p(dw, F32))
    return [dw]


def dw_input_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    w_t = graph.tensors[op.inputs[2]]
    w = _i8(inputs[2])
    m = options_of(op)["depth_multiplier"]
    dx_shape = graph.tensors[op.outputs[0]].shape
    win = _window(op)
    if _int8_grads(graph, op):
        mult, unit, keep = _multipliers(graph, op, inputs)
        return _input_grad_s8(graph, op, inputs, state,
                              library().tt_depthwise_conv2d_input_grad_s8,
                              lambda dy: (*dy.shape[:3], dy.shape[3] // m, m, _p(w, I8), mult,
                                          unit, w.shape[1], w.shape[2], C.byref(win),
                                          dx_shape[1], dx_shape[2]))
    dy = _f32(inputs[0])
    n, oh, ow, cm = dy.shape
    dx = np.empty(dx_shape, np.float32)
    library().tt_depthwise_conv2d_input_grad_f32(
        _p(dy, F32), _p(_mask(inputs[1]), U8), n, oh, ow, cm // m, m, _p(w, I8),
        _p(_scales(w_t.quant, cm), F32), w.shape[1], w.shape[2], C.byref(win), dx_shape[1],
        dx_shape[2], _p(dx, F32))
    return [dx]


def dw_weight_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    x_t = graph.tensors[op.inputs[2]]
    dy, head, kind = _dy(graph, op, inputs, 3)
    x = _i8(inputs[2])
    n, oh, ow, cm = dy.shape
    m = options_of(op)["depth_multiplier"]
    dw = np.empty(graph.tensors[op.outputs[0]].shape, np.float32)
    win = _window(op)
    getattr(library(), "tt_depthwise_conv2d_weight_grad" + kind)(
        *head, _p(_mask(inputs[1]), U8), n, oh, ow, cm // m, m, _p(x, I8),
        F32(x_t.quant.s), x_t.quant.zp, x.shape[1], x.shape[2], dw.shape[1], dw.shape[2],
        C.byref(win), _p(dw, F32))
    return [dw]


def fc_input_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    w_t = graph.tensors[op.inputs[2]]
    w = _i8(inputs[2])
    units, depth = w.shape
    if _int8_grads(graph, op):
        mult, unit, keep = _multipliers(graph, op, inputs)
        return _input_grad_s8(graph, op, inputs, state,
                              library().tt_fully_connected_input_grad_s8,
                              lambda dy: (dy.size // units, units, _p(w, I8), mult, unit,
                                          depth))
    dy = _f32(inputs[0])
    dx = np.empty(graph.tensors[op.outputs[0]].shape, np.float32)
    library().tt_fully_connected_input_grad_f32(
        _p(dy, F32), _p(_mask(inputs[1]), U8), dy.size // units, units, _p(w, I8),
        _p(_scales(w_t.quant, units), F32), depth, _p(dx, F32))
    return [dx]


def fc_weight_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    x_t = graph.tensors[op.inputs[2]]
    dy, head, kind = _dy(graph, op, inputs, 3)
    x = _i8(inputs[2])
    units, k = dy.shape[-1], x.shape[-1]
    dw = np.empty((units, k), np.float32)
    getattr(library(), "tt_fully_connected_weight_grad" + kind)(
        *head, _p(_mask(inputs[1]), U8), dy.size // units, units, _p(x, I8),
        F32(x_t.quant.s), x_t.quant.zp, k, _p(dw, F32))
    return [dw]


def _pool(graph: Graph, op: Operator, inputs, state, name, saved=None) -> list:
    o = options_of(op)
    n, oh, ow, c = inputs[0].shape
    dx_shape = graph.tensors[op.outputs[0]].shape
    win = Window(o["stride_h"], o["stride_w"], 1, 1, o["pad_top"], o["pad_left"])
    geometry = (n, oh, ow, c, o["filter_h"], o["filter_w"], C.byref(win), dx_shape[1],
                dx_shape[2])
    saved_arg = [_p(_i8(saved), I8)] if saved is not None else []
    if _int8_grads(graph, op):
        dy = _s8(inputs[0])
        dx, scale = np.empty(dx_shape, np.int8), _new_scale()
        getattr(library(), name + "_s8")(_p(dy, I8), _scale(inputs[-2]), *saved_arg, *geometry,
                                         _p(dx, I8), _p(scale, F32), _rounding(op, state))
        return [dx, scale]
    dy = _f32(inputs[0])
    dx = np.empty(dx_shape, np.float32)
    getattr(library(), name + "_f32")(_p(dy, F32), *saved_arg, *geometry, _p(dx, F32))
    return [dx]


def avg_pool_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    return _pool(graph, op, inputs, state, "tt_average_pool_grad")


def max_pool_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    return _pool(graph, op, inputs, state, "tt_max_pool_grad", saved=inputs[1])


def softmax_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    q = graph.tensors[op.inputs[1]].quant
    p = _i8(inputs[1])
    rows, depth = inputs[0].size // inputs[0].shape[-1], inputs[0].shape[-1]
    if _int8_grads(graph, op):
        dy = _s8(inputs[0])
        dx, scale = np.empty_like(dy), _new_scale()
        library().tt_softmax_grad_s8(_p(dy, I8), _scale(inputs[2]), _p(p, I8), q.zp, rows,
                                     depth, _p(dx, I8), _p(scale, F32), _rounding(op, state))
        return [dx, scale]
    dy = _f32(inputs[0])
    dx = np.empty_like(dy)
    library().tt_softmax_grad_f32(_p(dy, F32), _p(p, I8), F32(q.s), q.zp, rows, depth,
                                  _p(dx, F32))
    return [dx]


def _dims(shape) -> np.ndarray:
    if len(shape) > 6:
        raise TTError("the C kernels handle tensors of rank <= 6")
    return np.array(shape, np.int32)


def mean_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    shape = graph.tensors[op.outputs[0]].shape
    axes = set(options_of(op)["axes"])
    reduced = np.array([1 if d in axes else 0 for d in range(len(shape))], np.int32)
    if _int8_grads(graph, op):
        dx, scale = np.empty(shape, np.int8), _new_scale()
        library().tt_mean_grad_s8(_p(_s8(inputs[0]), I8), _scale(inputs[1]),
                                  _p(_dims(shape), I32), _p(reduced, I32), len(shape),
                                  _p(dx, I8), _p(scale, F32))
        return [dx, scale]
    dx = np.empty(shape, np.float32)
    library().tt_mean_grad_f32(_p(_f32(inputs[0]), F32), _p(_dims(shape), I32),
                               _p(reduced, I32), len(shape), _p(dx, F32))
    return [dx]


def _moved(inputs) -> tuple[np.ndarray, type, str, type]:
    """dy as its kernel takes it: (array, numpy dtype, kernel suffix, ctype)."""
    if np.asarray(inputs[0]).dtype == np.int8:
        return _s8(inputs[0]), np.int8, "_s8", I8
    return _f32(inputs[0]), np.float32, "_f32", F32


def pad_grad(graph: Graph, op: Operator, inputs) -> list:
    dy, dtype, kind, ctype = _moved(inputs)
    shape = graph.tensors[op.outputs[0]].shape
    before = np.array(options_of(op)["before"], np.int32)
    dx = np.empty(shape, dtype)
    getattr(library(), "tt_pad_grad" + kind)(_p(dy, ctype), _p(_dims(dy.shape), I32),
                                             _p(before, I32), _p(_dims(shape), I32),
                                             len(shape), _p(dx, ctype))
    return [dx]


def transpose_grad(graph: Graph, op: Operator, inputs) -> list:
    dy, dtype, kind, ctype = _moved(inputs)
    perm = np.array(options_of(op)["perm"], np.int32)
    dx = np.empty(graph.tensors[op.outputs[0]].shape, dtype)
    getattr(library(), "tt_transpose_grad" + kind)(_p(dy, ctype), _p(_dims(dy.shape), I32),
                                                   _p(perm, I32), dy.ndim, _p(dx, ctype))
    return [dx]


def reshape_grad(graph: Graph, op: Operator, inputs) -> list:
    """dx = dy in another shape: the same bytes (tt_init_copy is the device's memcpy)."""
    dy, dtype, _, ctype = _moved(inputs)
    dx = np.empty(graph.tensors[op.outputs[0]].shape, dtype)
    library().tt_init_copy(_p(dy, ctype), _p(dx, ctype), dy.nbytes)
    return [dx]


def init(graph: Graph, op: Operator, inputs, state) -> list:
    if not state.get("done"):
        for const, var in zip(inputs[0::2], inputs[1::2]):
            src = np.ascontiguousarray(const, var.dtype)
            library().tt_init_copy(_p(src, C.c_uint8), _p(var, C.c_uint8), var.nbytes)
        state["done"] = True
    return []


def sum_grad(graph: Graph, op: Operator, inputs, state=None) -> list:
    shape = graph.tensors[op.outputs[0]].shape
    if _int8_grads(graph, op):
        a, scale = _s8(inputs[0]), _new_scale()
        dx = np.empty(shape, np.int8)
        if inputs[1] is None:
            dx_dims = (1,) * (a.ndim - len(shape)) + tuple(shape)
            library().tt_sum_broadcast_grad_s8(_p(a, I8), _scale(inputs[2]),
                                               _p(_dims(a.shape), I32), _p(_dims(dx_dims), I32),
                                               a.ndim, _p(dx, I8), _p(scale, F32),
                                               _rounding(op, state))
        else:
            b = _s8(inputs[1])
            library().tt_add_grad_s8(_p(a, I8), _scale(inputs[2]), _p(b, I8), _scale(inputs[3]),
                                     a.size, _p(dx, I8), _p(scale, F32), _rounding(op, state))
        return [dx, scale]
    if inputs[1] is None:
        return [_sum_broadcast(_f32(inputs[0]), shape)]
    a, b = _f32(inputs[0]), _f32(inputs[1])
    out = np.empty_like(a)
    library().tt_add_grad_f32(_p(a, F32), _p(b, F32), a.size, _p(out, F32))
    return [out]


def _sum_broadcast(dy: np.ndarray, shape) -> np.ndarray:
    """dy summed back to the forward input's `shape`, given leading 1s up to dy's rank."""
    dx_dims = (1,) * (dy.ndim - len(shape)) + tuple(shape)
    dx = np.empty(shape, np.float32)
    library().tt_sum_broadcast_grad_f32(_p(dy, F32), _p(_dims(dy.shape), I32),
                                        _p(_dims(dx_dims), I32), dy.ndim, _p(dx, F32))
    return dx


def _sgd(o: dict) -> Sgd:
    return Sgd(float(o["lr"]), float(o["momentum"]), int(bool(o["qas"])), int(o["rounding"]),
               int(o["decay_steps"]))


def _state(state: dict, o: dict) -> UpdateState:
    """The C state lives in the executor's per-op state dict, as the numpy kernels' does."""
    if "c" not in state:
        s = UpdateState()
        s.rng, s.step = seed_state(o["seed"]), 0
        state["c"] = s
    return state["c"]


def _weight_scales(graph: Graph, op: Operator, index: int) -> np.ndarray:
    """The scales of the weights at input `index`: one, or one per output channel."""
    return np.ascontiguousarray(graph.tensors[op.inputs[index]].quant.scale.astype(np.float32))


def update_weight(graph: Graph, op: Operator, inputs, state) -> list:
    w, o = inputs[0], options_of(op)
    scales = _weight_scales(graph, op, 0)
    sgd, st = _sgd(o), _state(state, o)
    library().tt_update_weight_s8(
        _p(w, I8), _p(_dims(w.shape), I32), w.ndim, 0 if o["axis"] == 0 else 1,
        _p(scales, F32), scales.size, _p(_f32(inputs[1]), F32), o["channels"],
        _p(inputs[2], F32), C.byref(sgd), C.byref(st))
    return []


def update_bias(graph: Graph, op: Operator, inputs, state) -> list:
    b, o = inputs[0], options_of(op)
    sgd, st = _sgd(o), _state(state, o)
    scales = _scales(graph.tensors[op.inputs[0]].quant, b.size)
    library().tt_update_bias_s32(_p(b, I32), b.size, _p(scales, F32), _p(_f32(inputs[1]), F32),
                                 _p(inputs[2], F32), C.byref(sgd), C.byref(st))
    return []


# The fused updates (inputs dy, mask, saved, weights, momentum, label): the C kernel computes
# the gradient piece by piece into `scratch`, of the schema's scratch_floats size.

def conv_weight_update(graph: Graph, op: Operator, inputs, state) -> list:
    x_t, o = graph.tensors[op.inputs[2]], options_of(op)
    dy, head, kind = _dy(graph, op, inputs, 5)
    x, w = _i8(inputs[2]), inputs[3]
    n, oh, ow, co = dy.shape
    _, kh, kw, ci = w.shape
    k = o["channels"]
    scales = _weight_scales(graph, op, 3)
    scratch = np.empty(kh * kw * k, np.float32)
    win, sgd, st = _window(op), _sgd(o), _state(state, o)
    getattr(library(), "tt_conv2d_weight_update_s8" + _update_suffix(kind))(
        *head, _p(_mask(inputs[1]), U8), n, oh, ow, co, _p(x, I8), F32(x_t.quant.s),
        x_t.quant.zp, x.shape[1], x.shape[2], k, _p(w, I8), kh, kw, ci, _p(scales, F32),
        scales.size, C.byref(win), _p(inputs[4], F32), C.byref(sgd), C.byref(st),
        _p(scratch, F32))
    return []


def dw_weight_update(graph: Graph, op: Operator, inputs, state) -> list:
    x_t, o = graph.tensors[op.inputs[2]], options_of(op)
    dy, head, kind = _dy(graph, op, inputs, 5)
    x, w = _i8(inputs[2]), inputs[3]
    n, oh, ow, cm = dy.shape
    m = o["depth_multiplier"]
    _, kh, kw, _ = w.shape
    scales = _weight_scales(graph, op, 3)
    scratch = np.empty(kh * kw * cm, np.float32)
    win, sgd, st = _window(op), _sgd(o), _state(state, o)
    getattr(library(), "tt_depthwise_conv2d_weight_update_s8" + _update_suffix(kind))(
        *head, _p(_mask(inputs[1]), U8), n, oh, ow, cm // m, m, _p(x, I8),
        F32(x_t.quant.s), x_t.quant.zp, x.shape[1], x.shape[2], _p(w, I8), kh, kw,
        _p(scales, F32), scales.size, C.byref(win), _p(inputs[4], F32), C.byref(sgd),
        C.byref(st), _p(scratch, F32))
    return []


def fc_weight_update(graph: Graph, op: Operator, inputs, state) -> list:
    x_t, o = graph.tensors[op.inputs[2]], options_of(op)
    dy, head, kind = _dy(graph, op, inputs, 5)
    x, w = _i8(inputs[2]), inputs[3]
    units, depth = w.shape
    k = o["channels"]
    scales = _weight_scales(graph, op, 3)
    scratch = np.empty(k, np.float32)
    sgd, st = _sgd(o), _state(state, o)
    getattr(library(), "tt_fully_connected_weight_update_s8" + _update_suffix(kind))(
        *head, _p(_mask(inputs[1]), U8), dy.size // units, units, _p(x, I8),
        F32(x_t.quant.s), x_t.quant.zp, k, _p(w, I8), depth, _p(scales, F32), scales.size,
        _p(inputs[4], F32), C.byref(sgd), C.byref(st), _p(scratch, F32))
    return []


def _update_suffix(kind: str) -> str:
    """The fused update kernels: the float32-dy ones are named for their parameters only
    (tt_conv2d_weight_update_s8), the int8-dy ones add dy's type (..._s8_s8)."""
    return "_s8" if kind == "_s8" else ""


def bias_update(graph: Graph, op: Operator, inputs, state) -> list:
    b, o = inputs[2], options_of(op)
    dy, head, kind = _dy(graph, op, inputs, 4)
    scales = _scales(graph.tensors[op.inputs[2]].quant, b.size)
    scratch = np.empty(b.size, np.float32)
    sgd, st = _sgd(o), _state(state, o)
    getattr(library(), "tt_bias_update_s32" + _update_suffix(kind))(
        *head, _p(_mask(inputs[1]), U8), dy.size // b.size, b.size, _p(b, I32),
        _p(scales, F32), _p(inputs[3], F32), C.byref(sgd), C.byref(st), _p(scratch, F32))
    return []


# op name -> (C-backed kernel, stateful)
C_KERNELS = {
    "TT_INIT": (init, True),
    "TT_MEAN_GRAD": (mean_grad, True),
    "TT_PAD_GRAD": (pad_grad, False),
    "TT_TRANSPOSE_GRAD": (transpose_grad, False),
    "TT_RESHAPE_GRAD": (reshape_grad, False),
    "TT_SAVE_MASK": (save_mask, False),
    "TT_SAVE_SLICE": (save_slice, False),
    "TT_LOSS_SOFTMAX_CE": (loss, True),
    "TT_BIAS_GRAD": (bias_grad, True),
    "TT_MASK_GRAD": (mask_grad, False),
    "TT_SUM_GRAD": (sum_grad, True),
    "TT_CONV2D_INPUT_GRAD": (conv_input_grad, True),
    "TT_CONV2D_WEIGHT_GRAD": (conv_weight_grad, True),
    "TT_DEPTHWISE_CONV2D_INPUT_GRAD": (dw_input_grad, True),
    "TT_DEPTHWISE_CONV2D_WEIGHT_GRAD": (dw_weight_grad, True),
    "TT_FULLY_CONNECTED_INPUT_GRAD": (fc_input_grad, True),
    "TT_FULLY_CONNECTED_WEIGHT_GRAD": (fc_weight_grad, True),
    "TT_AVERAGE_POOL_GRAD": (avg_pool_grad, True),
    "TT_MAX_POOL_GRAD": (max_pool_grad, True),
    "TT_SOFTMAX_GRAD": (softmax_grad, True),
    "TT_UPDATE_WEIGHT": (update_weight, True),
    "TT_UPDATE_BIAS": (update_bias, True),
    "TT_BIAS_UPDATE": (bias_update, True),
    "TT_CONV2D_WEIGHT_UPDATE": (conv_weight_update, True),
    "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE": (dw_weight_update, True),
    "TT_FULLY_CONNECTED_WEIGHT_UPDATE": (fc_weight_update, True),
}
