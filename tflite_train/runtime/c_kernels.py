"""The micro_kernels C training kernels (include/tt_kernels.h) through ctypes, with the numpy
kernels' signatures: `fn(graph, op, inputs)` (and `state` for the update ops), so that an
executor can run any TT_* op in C instead of numpy. `make -C micro_kernels` (re)builds the
library first.

`kernel_call(graph, op)` says which kernel runs a TT_* op and with what arguments
(kernel_calls.KernelCall); `run` binds that description to numpy arrays, and the code
generator binds the same description to a static memory plan.
"""
from __future__ import annotations

import ctypes as C
import re
from functools import lru_cache, partial

import numpy as np

from ..errors import TTError
from ..ir import Graph, Operator
from ..training_ops import (accumulator_pos, batch_of, grad_mode, options_of, residual_pos,
                            seed_state)
from . import kernel_calls as K
from .build import BUILD, MICRO_KERNELS, micro_kernels_library
from .kernel_calls import STATE, BatchCall, In, KernelCall, Out, Scratch, Staging

ROOT = MICRO_KERNELS
LIBRARY = BUILD / "libtt_kernels.so"
HEADER = ROOT / "include" / "tt_kernels.h"


def cortex_m7_flags() -> list[str]:
    """The paper's board's compiler flags (STM32F746: Cortex-M7, single-precision FPU), from
    their one definition in micro_kernels/tflite_train.inc."""
    text = (ROOT / "tflite_train.inc").read_text()
    return re.search(r"^TFLITE_TRAIN_CORTEX_M7_FLAGS\s*:=\s*(.+)$", text, re.M).group(1).split()


# the header's structs, as ctypes declares them
Window = K.struct_class("tt_window")
Sgd = K.struct_class("tt_sgd")
UpdateState = K.struct_class("tt_update_state")


@lru_cache(maxsize=1)
def library() -> C.CDLL:
    return declare_return_types(C.CDLL(str(micro_kernels_library("all", LIBRARY.name))))


RETURN_CTYPES = {"void": None, "int": C.c_int, "float": C.c_float, "double": C.c_double,
                 "uint32_t": C.c_uint32, "int32_t": C.c_int32, "int16_t": C.c_int16}


def declare_return_types(lib: C.CDLL) -> C.CDLL:
    """Every tt_* function's restype as the header declares it (ctypes assumes int: a float
    or double result would be read from the wrong register)."""
    for ret, name in re.findall(r"^(\w+)\s+(tt_\w+)\(", K.strip_comments(HEADER.read_text()),
                                re.M):
        getattr(lib, name).restype = RETURN_CTYPES[ret]
    return lib


def _p(array, ctype):
    if array is None:
        return None
    return array.ctypes.data_as(C.POINTER(ctype))


# --- one description per TT_* op: the kernel call, its arguments fixed at preparation -------

def _t(graph: Graph, op: Operator, slot: int):
    return graph.tensors[op.inputs[slot]]


def _optional(op: Operator, slot: int):
    """An optional input (mask, momentum buffer): NULL when the slot is absent."""
    return In(slot) if op.inputs[slot] >= 0 else None


def _window(op: Operator):
    o = options_of(op)
    return K.make_struct("tt_window", stride_h=o.get("stride_h", 1), stride_w=o.get("stride_w", 1),
                         dilation_h=o.get("dilation_h", 1), dilation_w=o.get("dilation_w", 1),
                         pad_top=o["pad_top"], pad_left=o["pad_left"])


def _scales(q, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(q.scale.astype(np.float32), (n,)))


def _weight_scales(graph: Graph, op: Operator, index: int) -> np.ndarray:
    """The scales of the weights at input `index`: one, or one per output channel."""
    return np.ascontiguousarray(_t(graph, op, index).quant.scale.astype(np.float32))


def _sgd(o: dict):
    return K.make_struct("tt_sgd", lr=float(o["lr"]), momentum=float(o["momentum"]),
                         qas=int(bool(o["qas"])), rounding=int(o["rounding"]),
                         decay_steps=int(o["decay_steps"]),
                         half_life=int(o["half_life_steps"]))


def _dims(shape) -> np.ndarray:
    if len(shape) > 6:
        raise TTError("the C kernels handle tensors of rank <= 6")
    return K.i32(shape)


def _int8(g: Graph, op: Operator) -> bool:
    """The op's gradients are int8 (schema: int8_gradients): its _s8 kernel runs it."""
    return grad_mode(g, op) == "int8"


def _rounding(op: Operator):
    """An int8 gradient's rounding: the op's stream (stochastic) or NULL (nearest)."""
    return STATE if options_of(op).get("rounding") else None


def _save_mask(g, op):
    o = options_of(op)
    return KernelCall("tt_save_mask_s8", [In(0), _t(g, op, 0).size, o["lo"], o["hi"], Out(0)])


def _save_slice(g, op):
    x = _t(g, op, 0)
    return KernelCall("tt_save_slice_s8", [In(0), x.size // x.shape[-1], x.shape[-1],
                                           options_of(op)["channels"], Out(0)])


def _loss(g, op):
    q, logits = _t(g, op, 0).quant, _t(g, op, 0)
    if _int8(g, op):
        return KernelCall("tt_loss_softmax_ce_s8_s8", [
            In(0), logits.size, q.s, q.zp, In(1, value=True), Out(0), Out(1), Out(2),
            _rounding(op), Scratch(4 * logits.size)])
    return KernelCall("tt_loss_softmax_ce_s8", [In(0), logits.size, q.s, q.zp, In(1, value=True),
                                                Out(0), Out(1)])


def _dy(g, op, scale_slot: int) -> list:
    """A gradient kernel's leading arguments: dy, and with int8 gradients dy's scale."""
    return [In(0), In(scale_slot)] if _int8(g, op) else [In(0)]


def _kind(g, op) -> str:
    """The kernel suffix of an op's gradient type."""
    return "_s8" if _int8(g, op) else "_f32"


def _bias_grad(g, op):
    dy = _t(g, op, 0)
    return KernelCall("tt_bias_grad" + _kind(g, op), [
        *_dy(g, op, 2), _optional(op, 1), dy.size // dy.shape[-1], dy.shape[-1], Out(0)])


def _mask_grad(g, op):
    return KernelCall("tt_mask_grad" + _kind(g, op), [In(0), _optional(op, 1), _t(g, op, 0).size,
                                                      Out(0)])


# The smallest TT_GRAD_DSP_STAGE_BYTES a generated program's build has (codegen --lean-stack):
# the fused pointwise update's staging levels are those worth more than the chunked path it
# takes without one in every build (tt_conv2d_weight_update_s8_s8_stage_bytes)
LEAN_GRAD_DSP_STAGE_BYTES = 3072


def _stage(name: str, *shape, limit: int = 0) -> list:
    """The staging arguments (stage, stage_bytes) of an int8-gradient kernel with a Cortex-M
    DSP version: scratch of the bytes its `name`_stage_bytes asks for the layer's shapes
    within `limit` (0: none; the same on every target, so that every build plans the same
    arena; the portable code leaves it untouched), or NULL and 0 where no DSP version takes
    the layer."""
    def within(most: int) -> int:
        return int(K.host_call(name + "_stage_bytes", *shape, most))
    n = within(limit)
    return [Staging(n, within), n] if n > 0 else [None, 0]


def staged_within(call: KernelCall, limit: int) -> KernelCall:
    """`call` with its DSP staging cut to what the kernel takes from at most `limit` bytes
    (NULL and 0, the portable code, where that is too little); calls without one as they
    are."""
    at = next((i for i, a in enumerate(call.args) if isinstance(a, Staging)), None)
    if at is None:
        return call
    n = call.args[at].within(limit) if limit > 0 else 0
    if n == call.args[at].nbytes:
        return call
    stage = [Staging(n, call.args[at].within), n] if n > 0 else [None, 0]
    return KernelCall(call.name, call.args[:at] + stage + call.args[at + 2:])


def _input_grad_s8(g, op, name: str, middle: list, stage: list = ()):
    """An int8 layer input gradient: dy, its scale, the mask, `middle` (shapes, the weights,
    their multipliers and unit, geometry), dx and its scale, the rounding, and the int32
    scratch of dx with its positions when the op runs in one pass (two passes: none; a
    generated program may give them part of one, codegen.program.lend_scratch). dy_scale is
    the input before the label (after the multipliers, and after weights_rest in a split
    op)."""
    from ..ops.conv import input_grad_unit
    dx = g.tensors[op.outputs[0]]
    one = options_of(op)["passes"] == 1
    scratch = [Scratch(4 * dx.size), dx.size // dx.shape[-1]] if one else [None, 0]
    middle = [float(input_grad_unit(g, op)) if a == "unit" else a for a in middle]
    return KernelCall(name, [In(0), In(len(op.inputs) - 2), _optional(op, 1), *middle, Out(0),
                             Out(1), _rounding(op), *scratch, *stage])


def keeping(call: KernelCall, positions: int, ci: int) -> KernelCall:
    """An int8 input gradient's call (its last arguments scratch, scratch_positions) whose
    first pass keeps the accumulators of `positions` dx positions of `ci` channels in an
    int32 scratch (besides dx's own quarter; all of them: one pass). Same bits."""
    args, sig = list(call.args), call.signature
    args[sig.index("scratch")] = Scratch(4 * ci * positions) if positions > 0 else None
    args[sig.index("scratch_positions")] = max(positions, 0)
    return KernelCall(call.name, args).check()


def _conv_input_grad(g, op):
    (n, oh, ow, co), w = _t(g, op, 0).shape, _t(g, op, 2)
    _, h, wd, ci = g.tensors[op.outputs[0]].shape
    if _int8(g, op):
        return _input_grad_s8(g, op, "tt_conv2d_input_grad_s8", [
            n, oh, ow, co, In(2), In(3), "unit", w.shape[1], w.shape[2], _window(op), h, wd, ci])
    return KernelCall("tt_conv2d_input_grad_f32", [
        In(0), _optional(op, 1), n, oh, ow, co, In(2), _scales(w.quant, co), w.shape[1],
        w.shape[2], _window(op), h, wd, ci, Out(0)])


def _conv_weight_grad(g, op):
    (n, oh, ow, co), x = _t(g, op, 0).shape, _t(g, op, 2)
    dw = g.tensors[op.outputs[0]].shape
    # no staging: since round 21 the int8 kernel walks every pointwise layer on its own stack
    # (cheaper than the staged path at every map measured) and ignores one (its query,
    # tt_conv2d_weight_grad_s8_stage_bytes, is 0; the fused update has its own)
    stage = [None, 0] if _int8(g, op) else []
    return KernelCall("tt_conv2d_weight_grad" + _kind(g, op), [
        *_dy(g, op, 3), _optional(op, 1), n, oh, ow, co, In(2), x.quant.s, x.quant.zp,
        x.shape[1], x.shape[2], x.shape[3], dw[1], dw[2], _window(op), Out(0), *stage])


def _dw_input_grad(g, op):
    (n, oh, ow, cm), w = _t(g, op, 0).shape, _t(g, op, 2)
    m = options_of(op)["depth_multiplier"]
    dx = g.tensors[op.outputs[0]].shape
    if _int8(g, op):
        return _input_grad_s8(g, op, "tt_depthwise_conv2d_input_grad_s8", [
            n, oh, ow, cm // m, m, In(2), In(3), "unit", w.shape[1], w.shape[2], _window(op),
            dx[1], dx[2]], _stage("tt_depthwise_conv2d_input_grad_s8", n, oh, ow, cm // m, m,
                                  w.shape[1], w.shape[2], _window(op), dx[1], dx[2]))
    return KernelCall("tt_depthwise_conv2d_input_grad_f32", [
        In(0), _optional(op, 1), n, oh, ow, cm // m, m, In(2), _scales(w.quant, cm), w.shape[1],
        w.shape[2], _window(op), dx[1], dx[2], Out(0)])


def _dw_weight_grad(g, op):
    (n, oh, ow, cm), x = _t(g, op, 0).shape, _t(g, op, 2)
    m = options_of(op)["depth_multiplier"]
    dw = g.tensors[op.outputs[0]].shape
    stage = _stage("tt_depthwise_conv2d_weight_grad_s8", n, oh, ow, cm // m, m, x.shape[1],
                   x.shape[2], dw[1], dw[2], _window(op)) if _int8(g, op) else []
    return KernelCall("tt_depthwise_conv2d_weight_grad" + _kind(g, op), [
        *_dy(g, op, 3), _optional(op, 1), n, oh, ow, cm // m, m, In(2), x.quant.s, x.quant.zp,
        x.shape[1], x.shape[2], dw[1], dw[2], _window(op), Out(0), *stage])


def _fc_input_grad(g, op):
    dy, w = _t(g, op, 0), _t(g, op, 2)
    units, depth = w.shape
    if _int8(g, op):
        return _input_grad_s8(g, op, "tt_fully_connected_input_grad_s8", [
            dy.size // units, units, In(2), In(3), "unit", depth])
    return KernelCall("tt_fully_connected_input_grad_f32", [
        In(0), _optional(op, 1), dy.size // units, units, In(2), _scales(w.quant, units), depth,
        Out(0)])


def _conv_split_input_grad(g, op):
    """TT_CONV2D_SPLIT_INPUT_GRAD (dy, mask, weights, weights_rest[, multipliers, dy_scale],
    label): tt_split_grad.h."""
    (n, oh, ow, co), w = _t(g, op, 0).shape, _t(g, op, 2)
    _, h, wd, ci = g.tensors[op.outputs[0]].shape
    if _int8(g, op):
        return _input_grad_s8(g, op, "tt_conv2d_input_grad_split_s8", [
            n, oh, ow, co, In(2), w.shape[3], In(3), In(4), "unit", w.shape[1], w.shape[2],
            _window(op), h, wd, ci])
    return KernelCall("tt_conv2d_input_grad_split_f32", [
        In(0), _optional(op, 1), n, oh, ow, co, In(2), w.shape[3], In(3), _scales(w.quant, co),
        w.shape[1], w.shape[2], _window(op), h, wd, ci, Out(0)])


def _fc_split_input_grad(g, op):
    dy, w, rest = _t(g, op, 0), _t(g, op, 2), _t(g, op, 3)
    units, k = w.shape
    if _int8(g, op):
        return _input_grad_s8(g, op, "tt_fully_connected_input_grad_split_s8", [
            dy.size // units, units, In(2), k, In(3), In(4), "unit", k + rest.shape[1]])
    return KernelCall("tt_fully_connected_input_grad_split_f32", [
        In(0), _optional(op, 1), dy.size // units, units, In(2), k, In(3),
        _scales(w.quant, units), k + rest.shape[1], Out(0)])


def _fc_weight_grad(g, op):
    dy, x = _t(g, op, 0), _t(g, op, 2)
    units = dy.shape[-1]
    return KernelCall("tt_fully_connected_weight_grad" + _kind(g, op), [
        *_dy(g, op, 3), _optional(op, 1), dy.size // units, units, In(2), x.quant.s, x.quant.zp,
        x.shape[-1], Out(0)])


def _pool_window(op):
    o = options_of(op)
    return o, K.make_struct("tt_window", stride_h=o["stride_h"], stride_w=o["stride_w"],
                            dilation_h=1, dilation_w=1, pad_top=o["pad_top"],
                            pad_left=o["pad_left"])


def _pool(g, op, name: str, saved: list):
    (n, oh, ow, c), dx = _t(g, op, 0).shape, g.tensors[op.outputs[0]].shape
    o, win = _pool_window(op)
    geometry = [n, oh, ow, c, o["filter_h"], o["filter_w"], win, dx[1], dx[2]]
    if _int8(g, op):
        return KernelCall(name + "_s8", [In(0), In(len(op.inputs) - 2), *saved, *geometry,
                                         Out(0), Out(1), _rounding(op)])
    return KernelCall(name + "_f32", [In(0), *saved, *geometry, Out(0)])


def _avg_pool_grad(g, op):
    return _pool(g, op, "tt_average_pool_grad", [])


def _max_pool_grad(g, op):
    return _pool(g, op, "tt_max_pool_grad", [In(1)])


def _softmax_grad(g, op):
    dy, q = _t(g, op, 0), _t(g, op, 1).quant
    rows, depth = dy.size // dy.shape[-1], dy.shape[-1]
    if _int8(g, op):
        return KernelCall("tt_softmax_grad_s8", [In(0), In(2), In(1), q.zp, rows, depth, Out(0),
                                                 Out(1), _rounding(op)])
    return KernelCall("tt_softmax_grad_f32", [In(0), In(1), q.s, q.zp, rows, depth, Out(0)])


def _mean_grad(g, op):
    shape = g.tensors[op.outputs[0]].shape
    axes = set(options_of(op)["axes"])
    reduced = K.i32([1 if d in axes else 0 for d in range(len(shape))])
    if _int8(g, op):
        return KernelCall("tt_mean_grad_s8", [In(0), In(1), _dims(shape), reduced, len(shape),
                                              Out(0), Out(1)])
    return KernelCall("tt_mean_grad_f32", [In(0), _dims(shape), reduced, len(shape), Out(0)])


def _pad_grad(g, op):
    dy, shape = _t(g, op, 0).shape, g.tensors[op.outputs[0]].shape
    return KernelCall("tt_pad_grad" + _kind(g, op), [
        In(0), _dims(dy), K.i32(options_of(op)["before"]), _dims(shape), len(shape), Out(0)])


def _transpose_grad(g, op):
    dy = _t(g, op, 0).shape
    return KernelCall("tt_transpose_grad" + _kind(g, op), [
        In(0), _dims(dy), K.i32(options_of(op)["perm"]), len(dy), Out(0)])


def _reshape_grad(g, op):
    """dx = dy in another shape: the same bytes (tt_init_copy is the device's memcpy)."""
    return KernelCall("tt_init_copy", [In(0), Out(0), _t(g, op, 0).nbytes])


def _sum_grad(g, op):
    int8 = _int8(g, op)
    if op.inputs[1] < 0:
        # dy summed back to the forward input's shape, given leading 1s up to dy's rank
        dy, shape = _t(g, op, 0).shape, g.tensors[op.outputs[0]].shape
        dx_dims = (1,) * (len(dy) - len(shape)) + tuple(shape)
        if int8:
            return KernelCall("tt_sum_broadcast_grad_s8", [
                In(0), In(2), _dims(dy), _dims(dx_dims), len(dy), Out(0), Out(1),
                _rounding(op)])
        return KernelCall("tt_sum_broadcast_grad_f32", [In(0), _dims(dy), _dims(dx_dims),
                                                        len(dy), Out(0)])
    if int8:
        return KernelCall("tt_add_grad_s8", [In(0), In(2), In(1), In(3), _t(g, op, 0).size,
                                             Out(0), Out(1), _rounding(op)])
    return KernelCall("tt_add_grad_f32", [In(0), In(1), _t(g, op, 0).size, Out(0)])


def _update_weight(g, op):
    update = partial(_weight_update_call, g, op, 0, momentum_slot=2)
    return _batched(g, op, update(1), update)


def _update_bias(g, op):
    update = partial(_bias_update_call, g, op, 0, momentum_slot=2)
    return _batched(g, op, update(1), update)


def _weight_update_call(g, op, w_slot: int, grad_slot: int, momentum_slot: int) -> KernelCall:
    """tt_update_weight_s8 of the weights at input w_slot, the gradient at grad_slot."""
    w, o = _t(g, op, w_slot), options_of(op)
    scales = _weight_scales(g, op, w_slot)
    res = _residual(g, op)
    return KernelCall("tt_update_weight" + ("_residual" if res else "") + "_s8", [
        In(w_slot), _dims(w.shape), len(w.shape), 0 if o["axis"] == 0 else 1, scales,
        scales.size, In(grad_slot), o["channels"], _optional(op, momentum_slot),
        *([res] if res else []), _sgd(o), STATE])


def _residual(g, op):
    """A weight update's rounding residual (schema input `residual`), or None: an op with
    one runs the kernel's _residual form (and one without, today's call, unchanged)."""
    pos = residual_pos(g, op)
    return In(pos) if pos >= 0 else None


def _bias_update_call(g, op, b_slot: int, grad_slot: int, momentum_slot: int) -> KernelCall:
    b, o = _t(g, op, b_slot), options_of(op)
    return KernelCall("tt_update_bias_s32", [In(b_slot), b.size, _scales(b.quant, b.size),
                                             In(grad_slot), _optional(op, momentum_slot),
                                             _sgd(o), STATE])


def _batched(g, op, call: KernelCall, update, grad=None):
    """The op's call: `call` at batch 1 (today's, fused or not), else a BatchCall of the plain
    gradient kernel `grad()` (None: the op's grad input) and `update(slot)`, the update
    kernel with its gradient read from input `slot`: the accumulator (after the label)."""
    batch = batch_of(op)
    if batch == 1:
        return call
    acc = accumulator_pos(g, op)
    if acc < 0:
        raise TTError(f"internal: {op.kind} of batch {batch} has no accumulator")
    return BatchCall(grad() if grad else None, update(acc), acc, _t(g, op, acc).size, batch)


# The fused updates (inputs dy, mask, saved, weights, momentum, label): the C kernel computes
# the gradient piece by piece into a float scratch of the schema's scratch_floats size.

def _conv_weight_update(g, op):
    (n, oh, ow, co), x, o = _t(g, op, 0).shape, _t(g, op, 2), options_of(op)
    _, kh, kw, ci = _t(g, op, 3).shape
    k = o["channels"]
    scales = _weight_scales(g, op, 3)
    stage = _stage("tt_conv2d_weight_update_s8_s8", n, oh, ow, co, x.shape[1], x.shape[2], k,
                   kh, kw, _window(op), LEAN_GRAD_DSP_STAGE_BYTES) if _int8(g, op) else []
    operands = [*_dy(g, op, 5), _optional(op, 1), n, oh, ow, co, In(2), x.quant.s, x.quant.zp,
                x.shape[1], x.shape[2], k]
    return _batched(g, op, KernelCall("tt_conv2d_weight_update_s8" + _dy_suffix(g, op), [
        *operands, In(3), kh, kw, ci, scales, scales.size, _window(op), _optional(op, 4),
        _sgd(o), STATE, Scratch(4 * kh * kw * k), *stage]),
        partial(_weight_update_call, g, op, 3, momentum_slot=4),
        lambda: KernelCall("tt_conv2d_weight_grad" + _kind(g, op), [
            *operands, kh, kw, _window(op), Out(0), *([None, 0] if _int8(g, op) else [])]))


def _dw_weight_update(g, op):
    (n, oh, ow, cm), x, o = _t(g, op, 0).shape, _t(g, op, 2), options_of(op)
    m = o["depth_multiplier"]
    _, kh, kw, _ = _t(g, op, 3).shape
    scales = _weight_scales(g, op, 3)
    stage = _stage("tt_depthwise_conv2d_weight_grad_s8", n, oh, ow, cm // m, m, x.shape[1],
                   x.shape[2], kh, kw, _window(op)) if _int8(g, op) else []
    operands = [*_dy(g, op, 5), _optional(op, 1), n, oh, ow, cm // m, m, In(2), x.quant.s,
                x.quant.zp, x.shape[1], x.shape[2]]
    return _batched(g, op, KernelCall("tt_depthwise_conv2d_weight_update_s8" + _dy_suffix(g, op), [
        *operands, In(3), kh, kw, scales, scales.size, _window(op), _optional(op, 4), _sgd(o),
        STATE, Scratch(4 * kh * kw * cm), *stage]),
        partial(_weight_update_call, g, op, 3, momentum_slot=4),
        lambda: KernelCall("tt_depthwise_conv2d_weight_grad" + _kind(g, op), [
            *operands, kh, kw, _window(op), Out(0), *stage]))


def _fc_weight_update(g, op):
    dy, x, o = _t(g, op, 0), _t(g, op, 2), options_of(op)
    units, depth = _t(g, op, 3).shape
    k = o["channels"]
    scales = _weight_scales(g, op, 3)
    operands = [*_dy(g, op, 5), _optional(op, 1), dy.size // units, units, In(2), x.quant.s,
                x.quant.zp, k]
    res = _residual(g, op)
    name = "tt_fully_connected_weight_update" + ("_residual" if res else "") + "_s8"
    return _batched(g, op, KernelCall(name + _dy_suffix(g, op), [
        *operands, In(3), depth, scales, scales.size, _optional(op, 4), *([res] if res else []),
        _sgd(o), STATE, Scratch(4 * k)]),
        partial(_weight_update_call, g, op, 3, momentum_slot=4),
        lambda: KernelCall("tt_fully_connected_weight_grad" + _kind(g, op), [*operands, Out(0)]))


def _dy_suffix(g, op) -> str:
    """The fused updates: named for their parameters' type (tt_conv2d_weight_update_s8), the
    int8-dy ones add dy's (..._s8_s8)."""
    return "_s8" if _int8(g, op) else ""


def _bias_update(g, op):
    dy, b, o = _t(g, op, 0), _t(g, op, 2), options_of(op)
    operands = [*_dy(g, op, 4), _optional(op, 1), dy.size // b.size, b.size]
    return _batched(g, op, KernelCall("tt_bias_update_s32" + _dy_suffix(g, op), [
        *operands, In(2), _scales(b.quant, b.size), _optional(op, 3), _sgd(o), STATE,
        Scratch(4 * b.size)]),
        partial(_bias_update_call, g, op, 2, momentum_slot=3),
        lambda: KernelCall("tt_bias_grad" + _kind(g, op), [*operands, Out(0)]))


DESCRIBERS = {
    "TT_MEAN_GRAD": _mean_grad, "TT_PAD_GRAD": _pad_grad, "TT_TRANSPOSE_GRAD": _transpose_grad,
    "TT_RESHAPE_GRAD": _reshape_grad, "TT_SAVE_MASK": _save_mask, "TT_SAVE_SLICE": _save_slice,
    "TT_LOSS_SOFTMAX_CE": _loss, "TT_BIAS_GRAD": _bias_grad, "TT_MASK_GRAD": _mask_grad,
    "TT_SUM_GRAD": _sum_grad, "TT_CONV2D_INPUT_GRAD": _conv_input_grad,
    "TT_CONV2D_WEIGHT_GRAD": _conv_weight_grad, "TT_DEPTHWISE_CONV2D_INPUT_GRAD": _dw_input_grad,
    "TT_DEPTHWISE_CONV2D_WEIGHT_GRAD": _dw_weight_grad,
    "TT_FULLY_CONNECTED_INPUT_GRAD": _fc_input_grad,
    "TT_FULLY_CONNECTED_WEIGHT_GRAD": _fc_weight_grad, "TT_AVERAGE_POOL_GRAD": _avg_pool_grad,
    "TT_MAX_POOL_GRAD": _max_pool_grad, "TT_SOFTMAX_GRAD": _softmax_grad,
    "TT_UPDATE_WEIGHT": _update_weight, "TT_UPDATE_BIAS": _update_bias,
    "TT_BIAS_UPDATE": _bias_update, "TT_CONV2D_WEIGHT_UPDATE": _conv_weight_update,
    "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE": _dw_weight_update,
    "TT_FULLY_CONNECTED_WEIGHT_UPDATE": _fc_weight_update,
    "TT_CONV2D_SPLIT_INPUT_GRAD": _conv_split_input_grad,
    "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD": _fc_split_input_grad,
}


def kernel_call(graph: Graph, op: Operator) -> KernelCall | None:
    """The kernel call of a TT_* op (None for TT_INIT, which is a list of copies, and for
    anything else)."""
    describer = DESCRIBERS.get(op.kind)
    return describer(graph, op).check() if describer else None


# --- running a description through ctypes --------------------------------------------------

_PREPARED: dict[int, tuple] = {}


def _prepared(graph: Graph, op: Operator) -> tuple:
    """(call, output shapes and dtypes) of op, described once per (graph, op) object."""
    key = id(op)
    hit = _PREPARED.get(key)
    # an op whose options change (training_ops.set_option) is described again
    if hit is None or hit[0] is not op or hit[1] is not graph or hit[4] is not op.custom_options:
        if len(_PREPARED) > 4096:
            _PREPARED.clear()
        outs = [(graph.tensors[i].shape, np.dtype(graph.tensors[i].dtype)) for i in op.outputs]
        hit = (op, graph, kernel_call(graph, op), outs, op.custom_options)
        _PREPARED[key] = hit
    return hit[2], hit[3]


def _array(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype)


def run(graph: Graph, op: Operator, inputs, state=None, call: KernelCall | None = None,
        outputs: list | None = None) -> list:
    """Runs a TT_* op's kernel on `inputs` (numpy arrays; in-place parameters are updated in
    the arrays given) and returns its outputs. `state`: the executor's per-op dict, which
    keeps the op's tt_update_state under "c". `call`: another description of the op's call
    than kernel_call's (the same kernel, as a generated program makes it); `outputs`: the
    arrays its Out arguments write (a BatchCall's gradient scratch)."""
    kc, shapes = _prepared(graph, op)
    kc = call or kc
    if isinstance(kc, BatchCall):
        return _run_batch(graph, op, kc, inputs, state)
    outs = outputs if outputs is not None else [np.empty(s, d) for s, d in shapes]
    args = []
    for p, a in zip(kc.signature.params, kc.args):
        ctype = K.CTYPES.get(p.ctype) or C.c_uint8
        if isinstance(a, In) and a.value:
            args.append(int(np.ravel(inputs[a.k])[0]))
        elif isinstance(a, In):
            x = inputs[a.k]
            # an updated parameter or momentum buffer must be the caller's own array
            if x is not None and p.const:
                x = np.ascontiguousarray(x) if p.ctype == "void" else _array(x, K.DTYPES[p.ctype])
            args.append(_p(x, ctype))
        elif isinstance(a, Out):
            args.append(_p(outs[a.k], ctype))
        elif isinstance(a, Scratch):
            args.append(_p(np.empty(a.nbytes // 4, np.float32), C.c_float))
        elif isinstance(a, K.UpdateState):
            args.append(C.byref(_state({} if state is None else state, options_of(op))))
        elif isinstance(a, np.ndarray):
            args.append(_p(a, ctype))
        elif isinstance(a, C.Structure):
            args.append(C.byref(a))
        elif a is None:
            args.append(None)
        elif p.ctype in ("float", "double"):
            args.append(K.CTYPES[p.ctype](a))
        else:
            args.append(int(a))
    status = getattr(library(), kc.name)(*args)
    if kc.status and status:
        raise ValueError(f"label {int(np.ravel(inputs[-1])[0])} out of range")
    return outs


def _run_batch(graph: Graph, op: Operator, bc: BatchCall, inputs, state) -> list:
    """A BatchCall: the gradient (into a scratch, or the grad input), the accumulation, and
    at a batch's end the update from the accumulator."""
    if bc.grad is None:
        g = np.ascontiguousarray(inputs[1], np.float32)
    else:
        g = np.empty(bc.n, np.float32)
        run(graph, op, inputs, state, call=bc.grad, outputs=[g])
    acc = inputs[bc.acc]
    lib, s = library(), C.byref(_state({} if state is None else state, options_of(op)))
    if lib.tt_batch_accumulate_f32(_p(acc, C.c_float), _p(g, C.c_float), bc.n, bc.batch, s):
        run(graph, op, inputs, state, call=bc.update)
        lib.tt_batch_end_f32(_p(acc, C.c_float), bc.n, bc.batch, s)
    return []


def _state(state: dict, o: dict) -> UpdateState:
    """The C state lives in the executor's per-op state dict, as the numpy kernels' does."""
    if "c" not in state:
        s = UpdateState()
        s.rng, s.step = seed_state(o["seed"]), 0
        state["c"] = s
    return state["c"]


def init(graph: Graph, op: Operator, inputs, state) -> list:
    if not state.get("done"):
        for const, var in zip(inputs[0::2], inputs[1::2]):
            src = np.ascontiguousarray(const, var.dtype)
            library().tt_init_copy(_p(src, C.c_uint8), _p(var, C.c_uint8), var.nbytes)
        state["done"] = True
    return []


# the update ops, and the ops that may round an int8 gradient stochastically (schema:
# int8_gradients.rounding): their tt_update_state lives in the executor's per-op state
STATEFUL = {"TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS", "TT_BIAS_UPDATE", "TT_CONV2D_WEIGHT_UPDATE",
            "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE", "TT_FULLY_CONNECTED_WEIGHT_UPDATE",
            "TT_LOSS_SOFTMAX_CE", "TT_CONV2D_INPUT_GRAD", "TT_DEPTHWISE_CONV2D_INPUT_GRAD",
            "TT_FULLY_CONNECTED_INPUT_GRAD", "TT_CONV2D_SPLIT_INPUT_GRAD",
            "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD", "TT_SUM_GRAD", "TT_AVERAGE_POOL_GRAD",
            "TT_MAX_POOL_GRAD", "TT_SOFTMAX_GRAD"}

def forward_op(graph: Graph, op: Operator, inputs) -> list:
    """TT_CONV2D, TT_DEPTHWISE_CONV2D, TT_POINTWISE_DEPTHWISE, TT_FULLY_CONNECTED: the int8
    forward kernels (runtime/c_forward.py, whose preparation the executor keeps; this runs
    one op)."""
    from . import c_forward
    return c_forward.prepare(graph, op)(inputs)


# op name -> (C-backed kernel, stateful)
C_KERNELS = {"TT_INIT": (init, True),
             **{kind: (run, kind in STATEFUL) for kind in DESCRIBERS},
             **{kind: (forward_op, False) for kind in ("TT_CONV2D", "TT_DEPTHWISE_CONV2D",
                                                       "TT_POINTWISE_DEPTHWISE",
                                                       "TT_FULLY_CONNECTED")}}

# each TT_* op's kernel by name, as the tests call them directly (all the same runner)
save_mask = save_slice = loss = bias_grad = mask_grad = conv_input_grad = conv_weight_grad = run
dw_input_grad = dw_weight_grad = fc_input_grad = fc_weight_grad = avg_pool_grad = run
max_pool_grad = softmax_grad = mean_grad = pad_grad = transpose_grad = reshape_grad = run
sum_grad = update_weight = update_bias = conv_weight_update = dw_weight_update = run
fc_weight_update = bias_update = run
