"""AVERAGE_POOL_2D and MAX_POOL_2D: int8 forward (TFLM reference pooling)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from ..limits import work_limit
from . import (OpDef, by_grad, exact, fused_activation, register, require, require_activation,
               require_arity, require_int8_io, require_options, require_same_quant,
               saturate_int8, scalar, ttcheck)
from .accumulate import F32, transposed
from .ttcheck import tt_check
from .window import check_window, geometry, windows


def kernel(op: Operator) -> tuple[int, int]:
    return int(op.options["filter_height"]), int(op.options["filter_width"])


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, 1, 1)
    require_options(index, op, "Pool2DOptions")
    require_int8_io(graph, index, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(len(x.shape) == 4 and len(y.shape) == 4, index, op,
            "input and output must be 4-D NHWC")
    require(y.shape[0] == x.shape[0] and y.shape[3] == x.shape[3], index, op,
            "input and output batches or channels differ")
    require_same_quant(graph, index, op)
    require_activation(graph, index, op)
    check_window(graph, index, op, x.shape, kernel(op), y.shape, dilated=False)
    n, oh, ow, c = y.shape
    work_limit(index, op.kind, n * oh * ow * kernel(op)[0] * kernel(op)[1] * c,
               "input windows")


def _geometry(graph: Graph, op: Operator, x: np.ndarray):
    y_t = graph.tensors[op.outputs[0]]
    return geometry(op, x.shape, kernel(op), y_t.shape)


def _clamp(graph: Graph, op: Operator, out) -> np.ndarray:
    y_t = graph.tensors[op.outputs[0]]
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    return saturate_int8(np.clip(out, lo, hi))


def average(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x = inputs[0]
    geo = _geometry(graph, op, x)
    total = windows(x.astype(np.int64), *geo, fill=0).sum(axis=(3, 4))
    # TFLM divides by the number of taps inside the image, not the kernel size.
    ones = np.ones((1,) + x.shape[1:3] + (1,), np.int64)
    count = windows(ones, *geo, fill=0).sum(axis=(3, 4))
    half = count // 2
    avg = np.where(total > 0, (total + half) // count, -((-(total - half)) // count))
    return [_clamp(graph, op, avg)]


def maximum(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x = inputs[0]
    geo = _geometry(graph, op, x)
    return [_clamp(graph, op, windows(x.astype(np.int16), *geo, fill=-32768).max(axis=(3, 4)))]




# --- backward ------------------------------------------------------------------------------

def _pool_options(graph: Graph, op: Operator) -> dict:
    x = graph.tensors[op.inputs[0]]
    (kh, kw), stride, _, pads, _ = _geometry(graph, op, np.empty(x.shape, np.int8))
    return {"filter_h": kh, "filter_w": kw, "stride_h": stride[0], "stride_w": stride[1],
            "pad_top": pads[0], "pad_left": pads[1]}


def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    g = dy
    mask = b.mask(k)
    if mask >= 0:
        g = b.grad_like(op.outputs[0], "grad_masked")
        b.emit("TT_MASK_GRAD", [dy, mask], [g])
    dx = b.grad_like(op.inputs[0])
    opts = _pool_options(b.graph, op)
    if op.kind == "AVERAGE_POOL_2D":
        b.emit("TT_AVERAGE_POOL_GRAD", [g], [dx], **opts)
    else:
        b.emit("TT_MAX_POOL_GRAD", [g, b.saved(op.inputs[0])], [dx], **opts)
    return {op.inputs[0]: dx}


def _tt_geometry(graph: Graph, op: Operator, dy_shape):
    from ..training_ops import options_of
    o = options_of(op)
    return ((o["filter_h"], o["filter_w"]), (o["stride_h"], o["stride_w"]), (1, 1),
            (o["pad_top"], o["pad_left"]), tuple(dy_shape[1:3]))


def average_grad(graph: Graph, op: Operator, inputs) -> list:
    """tt_average_pool_grad_f32: share = dy / (in-image taps of its window), float32, added
    to the window's taps, each dx element in dy's row-major order."""
    dy = np.asarray(inputs[0], F32)
    dx_shape = graph.tensors[op.outputs[0]].shape
    geo = _tt_geometry(graph, op, dy.shape)
    ones = np.ones((1,) + tuple(dx_shape[1:3]) + (1,), np.int32)
    count = windows(ones, *geo, fill=0).sum(axis=(3, 4))               # TFLM's divisor
    # (a window without in-image taps adds nothing: its share lands in the cut-off padding)
    share = dy / np.maximum(count, 1).astype(F32)

    def add_tap(view, i, j):
        view += share
    return [transposed(dx_shape, *geo, add_tap)]


def max_grad(graph: Graph, op: Operator, inputs) -> list:
    """tt_max_pool_grad_f32: dy to the first in-image tap holding its window's maximum."""
    dy = np.asarray(inputs[0], F32)
    dx_shape = graph.tensors[op.outputs[0]].shape
    geo = _tt_geometry(graph, op, dy.shape)
    win = windows(inputs[1].astype(np.int16), *geo, fill=-32768)       # [N,OH,OW,KH,KW,C]
    kh, kw = geo[0]
    first = win.reshape(win.shape[:3] + (kh * kw, win.shape[5])).argmax(axis=3)

    def add_tap(view, i, j):
        view += np.where(first == i * kw + j, dy, F32(0))
    return [transposed(dx_shape, *geo, add_tap)]


# --- int8 gradients (schema: int8_gradients) ---------------------------------------------

def _pool_s8(graph: Graph, op: Operator, state, add_tap, unit) -> list:
    from ..training_ops import options_of
    from .quantgrad import quantize, rounding_state
    dx_shape = graph.tensors[op.outputs[0]].shape
    dy_shape = graph.tensors[op.inputs[0]].shape
    acc = transposed(dx_shape, *_tt_geometry(graph, op, dy_shape), add_tap, np.float64)
    q, s = quantize(exact(acc), unit, rounding_state(options_of(op), state))
    return [q, np.array([s], F32)]


def average_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_average_pool_grad_s8: shares dy * R(count), R = 1 when every window has the same
    count, else round(2^k * cmin / count)."""
    dy = inputs[0].astype(np.float64)
    dx_shape = graph.tensors[op.outputs[0]].shape
    geo = _tt_geometry(graph, op, dy.shape)
    ones = np.ones((1,) + tuple(dx_shape[1:3]) + (1,), np.int64)
    count = windows(ones, *geo, fill=0).sum(axis=(3, 4))              # [1, OH, OW, 1]
    live = count[count > 0]
    cmin = int(live.min()) if live.size else 1
    unit = scalar(inputs[1]) / F32(cmin)
    if live.size == 0 or cmin == int(live.max()):
        share = np.ones(count.shape)
    else:
        (fh, fw), (sh, sw) = geo[0], geo[1]
        windows_per = -(-fh // sh) * -(-fw // sw)
        k = 16
        while k > 0 and 127 * windows_per << k >= 1 << 31:
            k -= 1
        c = np.maximum(count, 1)
        share = (((cmin << (k + 1)) + c) // (2 * c)).astype(np.float64)
        unit = unit * (F32(1) / F32(1 << k))
    shared = dy * share

    def add_tap(view, i, j):
        view += shared
    return _pool_s8(graph, op, state, add_tap, unit)


def max_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_max_pool_grad_s8: dy to the first in-image maximum of its window, summed exact."""
    dy = inputs[0].astype(np.float64)
    geo = _tt_geometry(graph, op, dy.shape)
    win = windows(inputs[1].astype(np.int16), *geo, fill=-32768)      # [N,OH,OW,KH,KW,C]
    kh, kw = geo[0]
    first = win.reshape(win.shape[:3] + (kh * kw, win.shape[5])).argmax(axis=3)

    def add_tap(view, i, j):
        view += np.where(first == i * kw + j, dy, 0.0)
    return _pool_s8(graph, op, state, add_tap, scalar(inputs[2]))


def _grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """dy [N, OH, OW, C] and dx [N, H, W, C] (and the saved input of max pooling, shaped
    like dx), with a window that a forward pool has: each output window starts inside the
    image or its leading padding and holds at least one input."""
    dy, dx = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    ttcheck.rank(dy, 4, index, op, "dy")
    ttcheck.rank(dx, 4, index, op, "dx")
    require(dy.shape[0] == dx.shape[0] and dy.shape[3] == dx.shape[3], index, op,
            f"dy {list(dy.shape)} and dx {list(dx.shape)} batches or channels differ")
    if op.kind == "TT_MAX_POOL_GRAD":
        ttcheck.same_shape(graph.tensors[op.inputs[1]], dx, index, op, "saved input and dx")
    (fh, fw), stride, _, pads, (oh, ow) = _tt_geometry(graph, op, dy.shape)
    for f, s, p, out, size in ((fh, stride[0], pads[0], oh, dx.shape[1]),
                               (fw, stride[1], pads[1], ow, dx.shape[2])):
        require(p < f and (out - 1) * s - p < size, index, op,
                "a window outside the image (pads must be below the filter size and every "
                "window must start inside the image)")
    ttcheck.window_grid(index, op, dx.shape, (fh, fw), stride, (1, 1), pads, (oh, ow))
    # the C kernels walk every window tap from each input (and count a window's in-image
    # taps for each of them when averaging)
    taps = fh * fw * (fh * fw if op.kind == "TT_AVERAGE_POOL_GRAD" else 1)
    ttcheck.loops(index, op, dx.size * taps, "window walk")


register(OpDef("AVERAGE_POOL_2D", average, check=_check, backward=backward))
register(OpDef("MAX_POOL_2D", maximum, check=_check, backward=backward))
register(OpDef("TT_AVERAGE_POOL_GRAD", by_grad(average_grad, average_grad_s8),
               check=tt_check(_grad_shapes), stateful=True))
register(OpDef("TT_MAX_POOL_GRAD", by_grad(max_grad, max_grad_s8), check=tt_check(_grad_shapes),
               stateful=True))
