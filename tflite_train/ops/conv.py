"""CONV_2D and DEPTHWISE_CONV_2D: int8 forward (TFLM reference ConvPerChannel /
DepthwiseConvPerChannel arithmetic), cost, backward rule, and the numpy kernels of their
TT_* gradient ops."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from ..training_ops import options_of
from ..limits import work_limit
from . import (OpDef, by_grad, centered, channel_scales, exact, fused_activation, masked,
               masked_int, register, require, require_activation, require_arity, require_bias,
               require_int8_io, require_options, require_weights, scalar, ttcheck)
from .accumulate import F32, in_order, row_sums, transposed
from .requant import conv_multipliers, exact_int, require_multipliers, requantize
from .ttcheck import tt_check
from .window import check_window, geometry, windows


def _check(graph: Graph, index: int, op: Operator) -> None:
    depthwise = op.kind == "DEPTHWISE_CONV_2D"
    require_arity(index, op, (2, 3), 1)
    require_options(index, op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    # the wheel's TFLM crashes in DEPTHWISE_CONV_2D's Prepare on a third input marked absent
    require(not depthwise or len(op.inputs) == 2 or op.inputs[2] >= 0, index, op,
            "an absent bias must be left out, not marked -1 (TFLM's depthwise kernel reads it)")
    require_int8_io(graph, index, op)
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    y = graph.tensors[op.outputs[0]]
    require(len(x.shape) == 4 and len(y.shape) == 4, index, op,
            "input and output must be 4-D NHWC")
    channels = y.shape[3]
    require_weights(graph, index, op, 1, 4, channels, 3 if depthwise else 0)
    if depthwise:
        mult = int(op.options.get("depth_multiplier") or 0)
        require(w.shape[0] == 1 and w.shape[3] == channels, index, op,
                f"filter {list(w.shape)} does not match {channels} output channels")
        require(mult >= 1 and channels == x.shape[3] * mult, index, op,
                f"depth multiplier {mult}: {x.shape[3]} input channels do not give "
                f"{channels} outputs")
    else:
        require(w.shape[0] == channels, index, op,
                f"filter {list(w.shape)} does not match {channels} output channels")
        require(w.shape[3] == x.shape[3], index, op,
                f"grouped convolution (filter depth {w.shape[3]} != input depth {x.shape[3]})")
    require(y.shape[0] == x.shape[0], index, op, "input and output batches differ")
    require_activation(graph, index, op)
    check_window(graph, index, op, x.shape, w.shape[1:3], y.shape, dilated=True)
    require_bias(graph, index, op, 2, channels)
    real = np.float64(np.float32(x.quant.s)) * w.quant.scale.astype(np.float64) \
        / np.float64(np.float32(y.quant.s))
    require_multipliers(real, index, op, "input scale x weight scale / output scale")
    n, oh, ow = y.shape[:3]
    work_limit(index, op.kind, n * oh * ow * w.shape[1] * w.shape[2] * x.shape[3],
               "input windows")


def _acc(graph: Graph, op: Operator, inputs) -> tuple[np.ndarray, int]:
    x_t = graph.tensors[op.inputs[0]]
    y_t = graph.tensors[op.outputs[0]]
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    geo = geometry(op, x.shape, w.shape[1:3], y_t.shape)
    return accumulate(x, x_t.quant.zp, w, bias, geo, op.kind == "DEPTHWISE_CONV_2D"), y_t.shape[3]


def accumulate(x, x_zp: int, w, bias, geo, depthwise: bool) -> np.ndarray:
    """int64 accumulators [N, OH, OW, Co] of a convolution with window `geo` (kernel,
    stride, dilation, pads, out), bias included."""
    # Out-of-image taps add nothing: padding with 0 after subtracting the zero point.
    xs = x.astype(np.float64) - x_zp
    win = windows(xs, *geo, fill=0.0)                          # [N,OH,OW,KH,KW,C]
    if not depthwise:
        acc = np.tensordot(win, w.astype(np.float64), axes=([3, 4, 5], [1, 2, 3]))
    else:
        c_in = x.shape[3]
        mult = w.shape[3] // c_in
        wk = w.reshape(w.shape[1], w.shape[2], c_in, mult).astype(np.float64)
        acc = np.einsum("nhwijc,ijcm->nhwcm", win, wk, optimize=True)
        acc = acc.reshape(acc.shape[:3] + (c_in * mult,))
    acc = exact_int(acc)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return acc


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t, w_t = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    y_t = graph.tensors[op.outputs[0]]
    acc, channels = _acc(graph, op, inputs)
    m, s = conv_multipliers(x_t, w_t, y_t, channels)
    return [requantize(acc, m, s, y_t, fused_activation(op))]


def macs(graph: Graph, op: Operator) -> int:
    w = graph.tensors[op.inputs[1]]
    y = graph.tensors[op.outputs[0]]
    out_positions = int(np.prod(y.shape[:3]))
    if op.kind == "CONV_2D":
        return out_positions * y.shape[3] * w.shape[1] * w.shape[2] * w.shape[3]
    return out_positions * y.shape[3] * w.shape[1] * w.shape[2]




# --- backward ------------------------------------------------------------------------------

def _geometry_options(graph: Graph, op: Operator) -> dict:
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    _, stride, dilation, pads, _ = geometry(op, x.shape, w.shape[1:3], y.shape)
    return {"stride_h": stride[0], "stride_w": stride[1], "dilation_h": dilation[0],
            "dilation_w": dilation[1], "pad_top": pads[0], "pad_left": pads[1]}


def absorbed_pad(b, op: Operator) -> tuple[int, tuple[int, int]]:
    """(x, extra leading pads): a PAD that only feeds this convolution is folded into its
    backward. Zero-point padding adds nothing to the forward, so the gradient kernels can
    read the PAD's input with larger pads: no padded gradient, no PAD_GRAD, and the smaller
    unpadded activation is what gets saved."""
    x = op.inputs[0]
    k = b.producer(x)
    if k < 0 or b.consumer_count(x) != 1:
        return x, (0, 0)
    pad = b.graph.operators[k]
    if pad.kind not in ("PAD", "PADV2"):
        return x, (0, 0)
    from .pad import paddings
    p = paddings(b.graph, pad)
    src = b.graph.tensors[pad.inputs[0]]
    if len(p) != 4 or p[0].any() or p[3].any() or src.quant is None:
        return x, (0, 0)
    if pad.kind == "PADV2" and len(pad.inputs) > 2 and pad.inputs[2] >= 0:
        value = b.graph.tensors[pad.inputs[2]].data
        if value is None or int(np.ravel(value)[0]) != b.graph.tensors[x].quant.zp:
            return x, (0, 0)
    return pad.inputs[0], (int(p[1][0]), int(p[2][0]))


def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    """Input, weight and bias gradients of a convolution; weight/bias ones only for what the
    scheme trains, and the weight one only for the trained input channels."""
    g = b.graph
    depthwise = op.kind == "DEPTHWISE_CONV_2D"
    prefix = "TT_DEPTHWISE_CONV2D" if depthwise else "TT_CONV2D"
    geo = _geometry_options(g, op)
    x, (extra_top, extra_left) = absorbed_pad(b, op)
    geo["pad_top"] += extra_top
    geo["pad_left"] += extra_left
    if depthwise:
        geo = {"depth_multiplier": int(op.options.get("depth_multiplier", 1)), **geo}
    mask = b.mask(k)
    upd = b.update(k)
    # The input gradient reads the weights: emit it before this layer's update.
    out = {}
    w = g.tensors[op.inputs[1]]
    if 0 in wants:
        dx = b.grad_like(x)
        # the most products one dx element sums (the int8 multipliers' overflow bound)
        terms = w.shape[1] * w.shape[2] * (geo["depth_multiplier"] if depthwise else w.shape[0])
        b.emit(f"{prefix}_INPUT_GRAD", [dy, mask, op.inputs[1]], [dx],
               extra=b.input_grad_multipliers(k, terms), **geo)
        out[x] = dx
    if upd is not None and upd.bias:
        b.update_bias(k, dy, mask)
    if upd is not None and upd.weight_channels:
        ch = upd.weight_channels
        saved = b.saved(x, None if depthwise else ch)
        shape = w.shape if depthwise else w.shape[:3] + (ch,)
        b.update_weights(k, f"{prefix}_WEIGHT_GRAD", [dy, mask, saved], shape,
                         axis=3 if depthwise else 0, **geo)
    return out


def _opts(op: Operator):
    o = options_of(op)
    return ((o["stride_h"], o["stride_w"]), (o["dilation_h"], o["dilation_w"]),
            (o["pad_top"], o["pad_left"]))


def conv_input_grad(graph: Graph, op: Operator, inputs) -> list:
    """tt_conv2d_input_grad_f32's sums: per tap (descending), over output channels o
    ascending, the terms (dy * s_w[o]) * w[o, tap, :] of every dy position at once."""
    w = inputs[2]
    co = w.shape[0]
    gs = masked(inputs[0], inputs[1]) * channel_scales(graph.tensors[op.inputs[2]].quant, co)
    wf = w.astype(F32)                                             # [Co, KH, KW, Ci]
    stride, dilation, pads = _opts(op)

    runs = np.moveaxis(gs, 3, 0)[..., None]                         # [Co, N, OH, OW, 1]

    def add_tap(view, i, j):
        view[...] = in_order(runs * wf[:, None, None, None, i, j], start=view)
    return [transposed(graph.tensors[op.outputs[0]].shape, w.shape[1:3], stride, dilation,
                       pads, gs.shape[1:3], add_tap)]


def conv_weight_grad(graph: Graph, op: Operator, inputs) -> list:
    kernel = graph.tensors[op.outputs[0]].shape[1:3]
    return [conv_weight_grad_values(graph, op, inputs, kernel)]


def _saved_windows(graph: Graph, op: Operator, inputs, kernel, out_hw) -> np.ndarray:
    """[N, OH, OW, KH, KW, K] float32 (saved - zp) under each tap, 0 outside the image."""
    x_t = graph.tensors[op.inputs[2]]
    stride, dilation, pads = _opts(op)
    return windows(centered(inputs[2], x_t.quant.zp), kernel, stride, dilation, pads, out_hw,
                   fill=F32(0))


def conv_weight_grad_values(graph: Graph, op: Operator, inputs, kernel) -> np.ndarray:
    """[Co, KH, KW, k] from inputs (dy, mask, saved, ...) of a weight-grad or fused op, summed
    as tt_conv2d_weight_grad_f32 does (row by row)."""
    g = masked(inputs[0], inputs[1])                               # [N, OH, OW, Co]
    n, oh, ow, co = g.shape
    xw = _saved_windows(graph, op, inputs, kernel, (oh, ow))       # [N, OH, OW, KH, KW, k]
    rows = n * oh

    def terms(ox):
        t = g[:, :, ox, :, None, None, None] * xw[:, :, ox, None]
        return t.reshape((rows,) + t.shape[2:])
    return F32(graph.tensors[op.inputs[2]].quant.s) * row_sums(terms, ow)


def dw_input_grad(graph: Graph, op: Operator, inputs) -> list:
    """tt_depthwise_conv2d_input_grad_f32's sums: per tap (descending), per j < M, the terms
    (dy * s_w) * w of the output channels ch * M + j."""
    w = inputs[2]
    cm = w.shape[3]
    gs = masked(inputs[0], inputs[1]) * channel_scales(graph.tensors[op.inputs[2]].quant, cm)
    wf = w[0].astype(F32)                                          # [KH, KW, C*M]
    mult = options_of(op)["depth_multiplier"]
    stride, dilation, pads = _opts(op)

    def add_tap(view, i, j):
        for k in range(mult):
            view += gs[..., k::mult] * wf[i, j, k::mult]
    return [transposed(graph.tensors[op.outputs[0]].shape, w.shape[1:3], stride, dilation,
                       pads, gs.shape[1:3], add_tap)]


def dw_weight_grad(graph: Graph, op: Operator, inputs) -> list:
    return [dw_weight_grad_values(graph, op, inputs, graph.tensors[op.outputs[0]].shape)]


def dw_weight_grad_values(graph: Graph, op: Operator, inputs, dw_shape) -> np.ndarray:
    """[1, KH, KW, C*M] from inputs (dy, mask, saved, ...) of a weight-grad or fused op,
    summed as tt_depthwise_conv2d_weight_grad_f32 does (row by row)."""
    g = masked(inputs[0], inputs[1])                               # [N, OH, OW, C*M]
    n, oh, ow, cm = g.shape
    xw = _saved_windows(graph, op, inputs, dw_shape[1:3], (oh, ow))   # [N, OH, OW, KH, KW, C]
    channel = np.arange(cm) // options_of(op)["depth_multiplier"]

    def terms(ox):
        t = g[:, :, ox, None, None, :] * xw[:, :, ox][..., channel]
        return t.reshape((n * oh,) + t.shape[2:])
    dw = F32(graph.tensors[op.inputs[2]].quant.s) * row_sums(terms, ow)
    return dw.reshape(dw_shape)


# --- int8 gradients (schema: int8_gradients) ---------------------------------------------

def input_grad_terms(graph: Graph, op: Operator) -> int:
    """The most products one dx element of a TT_*_INPUT_GRAD sums (int8_gradients; a split
    filter's weights part has the whole filter's leading axes, which are all it needs)."""
    w = graph.tensors[op.inputs[2]]
    if op.kind.startswith("TT_FULLY_CONNECTED"):
        return w.shape[0]
    if op.kind == "TT_DEPTHWISE_CONV2D_INPUT_GRAD":
        return w.shape[1] * w.shape[2] * options_of(op)["depth_multiplier"]
    return w.shape[0] * w.shape[1] * w.shape[2]


def input_grad_unit(graph: Graph, op: Operator) -> np.float32:
    """dy_scale's factor in a TT_*_INPUT_GRAD's unit: max s_w * 2^-k."""
    from .quantgrad import layer_unit
    return layer_unit(graph.tensors[op.inputs[2]].quant.scale, input_grad_terms(graph, op))


def _layer_s8(graph: Graph, op: Operator, inputs, state, acc) -> list:
    """The rule on a layer input gradient's accumulators: [dx, dx_scale]."""
    from .quantgrad import quantize, rounding_state
    unit = scalar(inputs[4]) * input_grad_unit(graph, op)
    q, s = quantize(exact(acc), unit, rounding_state(options_of(op), state))
    return [q, np.array([s], F32)]


def conv_input_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_conv2d_input_grad_s8: acc = the sum of (dy * mult[o]) * w[o, tap, :], exact."""
    w = inputs[2]
    h = masked_int(inputs[0], inputs[1]) * inputs[3].astype(np.float64)   # [N, OH, OW, Co]
    wf = w.astype(np.float64)
    stride, dilation, pads = _opts(op)

    def add_tap(view, i, j):
        view += h @ wf[:, i, j, :]
    acc = transposed(graph.tensors[op.outputs[0]].shape, w.shape[1:3], stride, dilation,
                     pads, h.shape[1:3], add_tap, np.float64)
    return _layer_s8(graph, op, inputs, state, acc)


def dw_input_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_depthwise_conv2d_input_grad_s8: channel c sums (dy * mult) * w over its taps and
    its M output channels, exact."""
    w = inputs[2]
    h = masked_int(inputs[0], inputs[1]) * inputs[3].astype(np.float64)   # [N, OH, OW, C*M]
    wf = w[0].astype(np.float64)
    mult = options_of(op)["depth_multiplier"]
    stride, dilation, pads = _opts(op)

    def add_tap(view, i, j):
        for k in range(mult):
            view += h[..., k::mult] * wf[i, j, k::mult]
    acc = transposed(graph.tensors[op.outputs[0]].shape, w.shape[1:3], stride, dilation,
                     pads, h.shape[1:3], add_tap, np.float64)
    return _layer_s8(graph, op, inputs, state, acc)


def _saved_windows_int(graph: Graph, op: Operator, inputs, kernel, out_hw) -> np.ndarray:
    """[N, OH, OW, KH, KW, K] float64 (saved - zp) under each tap (exact), 0 outside."""
    x_t = graph.tensors[op.inputs[2]]
    stride, dilation, pads = _opts(op)
    x = inputs[2].astype(np.float64) - x_t.quant.zp
    return windows(x, kernel, stride, dilation, pads, out_hw, fill=0.0)


def _grad_s8(graph: Graph, op: Operator, inputs, total) -> np.ndarray:
    """(float)T * (dy_scale * x_scale) of exact sums T, float32 in that order."""
    dy_scale = scalar(inputs[5] if op.kind.endswith("_UPDATE") else inputs[3])
    return exact(total).astype(F32) * (dy_scale * F32(graph.tensors[op.inputs[2]].quant.s))


def conv_weight_grad_values_s8(graph: Graph, op: Operator, inputs, kernel) -> np.ndarray:
    """[Co, KH, KW, k] of tt_conv2d_weight_grad_s8: exact sums of dy * (saved - zp)."""
    g = masked_int(inputs[0], inputs[1])                           # [N, OH, OW, Co]
    xw = _saved_windows_int(graph, op, inputs, kernel, g.shape[1:3])
    return _grad_s8(graph, op, inputs, np.tensordot(g, xw, axes=([0, 1, 2], [0, 1, 2])))


def dw_weight_grad_values_s8(graph: Graph, op: Operator, inputs, dw_shape) -> np.ndarray:
    g = masked_int(inputs[0], inputs[1])                           # [N, OH, OW, C*M]
    xw = _saved_windows_int(graph, op, inputs, dw_shape[1:3], g.shape[1:3])
    channel = np.arange(g.shape[3]) // options_of(op)["depth_multiplier"]
    total = np.einsum("nhwo,nhwijo->ijo", g, xw[..., channel])
    return _grad_s8(graph, op, inputs, total).reshape(dw_shape)


def _fused_update(grad_values):
    """TT_*_WEIGHT_UPDATE = the weight-gradient kernel then TT_UPDATE_WEIGHT, in place."""
    def forward(graph: Graph, op: Operator, inputs, state) -> list:
        from .training import accumulator, apply_weight_update
        w_t = graph.tensors[op.inputs[3]]
        o = options_of(op)
        grad = grad_values(graph, op, inputs, w_t.shape[:3] + (o["channels"],))
        apply_weight_update(inputs[3], grad, inputs[4], w_t.quant, o, state,
                            accumulator(graph, op, inputs))
        return []
    return forward


register(OpDef("CONV_2D", forward, macs, _check, param_inputs=(1, 2), backward=backward))
register(OpDef("DEPTHWISE_CONV_2D", forward, macs, _check, param_inputs=(1, 2),
               backward=backward))
def grad_macs(graph: Graph, op: Operator) -> int:
    """Multiply-accumulates of a gradient op: one per (output position, filter tap) pair it
    combines, i.e. the forward's count restricted to the trained input channels."""
    dy = graph.tensors[op.inputs[0]]
    positions = int(np.prod(dy.shape[:3]))
    if op.kind.endswith("_INPUT_GRAD"):
        w = graph.tensors[op.inputs[2]]
        taps = w.shape[1] * w.shape[2] * (w.shape[3] if op.kind == "TT_CONV2D_INPUT_GRAD" else 1)
        return positions * dy.shape[3] * taps
    if op.kind.endswith("_WEIGHT_UPDATE"):
        w = graph.tensors[op.inputs[3]]
        grad_shape = w.shape[:3] + (options_of(op)["channels"],)
    else:
        grad_shape = graph.tensors[op.outputs[0]].shape
    if "DEPTHWISE" in op.kind:
        return positions * grad_shape[1] * grad_shape[2] * grad_shape[3]
    return positions * int(np.prod(grad_shape))


# --- checks of the gradient ops (shapes the numpy and C kernels rely on) -----------------

def _window(o: dict):
    return ((o["stride_h"], o["stride_w"]), (o["dilation_h"], o["dilation_w"]),
            (o["pad_top"], o["pad_left"]))


def _input_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """dy [N, OH, OW, Co], weights [Co, KH, KW, Ci] (depthwise [1, KH, KW, C*M]),
    dx [N, H, W, Ci] (depthwise C)."""
    dy, w, dx = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[2]],
                 graph.tensors[op.outputs[0]])
    for t, what in ((dy, "dy"), (w, "the weights"), (dx, "dx")):
        ttcheck.rank(t, 4, index, op, what)
    ttcheck.check_mask(graph, index, op, dy.size)
    co = dy.shape[3]
    if "DEPTHWISE" not in op.kind:          # TT_CONV2D_(SPLIT_)INPUT_GRAD
        require(w.shape[0] == co and w.shape[3] == dx.shape[3], index, op,
                f"dy {list(dy.shape)}, weights {list(w.shape)} and dx {list(dx.shape)} "
                "channels do not match")
        ttcheck.scales(w, co, 0, index, op, "the weights")
        terms = co * w.shape[1] * w.shape[2]
    else:
        require(w.shape[0] == 1 and w.shape[3] == co
                and co == dx.shape[3] * o["depth_multiplier"], index, op,
                f"dy {list(dy.shape)}, weights {list(w.shape)} and dx {list(dx.shape)} do not "
                f"match depth multiplier {o['depth_multiplier']}")
        ttcheck.scales(w, co, 3, index, op, "the weights")
        terms = w.shape[1] * w.shape[2] * o["depth_multiplier"]
    ttcheck.int8_multipliers(graph, index, op, w, co, terms)
    require(dx.shape[0] == dy.shape[0], index, op, "dy and dx batches differ")
    stride, dilation, pads = _window(o)
    ttcheck.window_grid(index, op, dx.shape, w.shape[1:3], stride, dilation, pads,
                        dy.shape[1:3])
    ttcheck.loops(index, op, dx.size * w.shape[1] * w.shape[2] * co, "input gradient")


def _weight_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """dy [N, OH, OW, Co], saved [N, H, W, k], dw [Co, KH, KW, k] (depthwise
    [1, KH, KW, C*M] with saved [N, H, W, C])."""
    kernel = _check_saved(graph, index, op, o, graph.tensors[op.outputs[0]].shape)
    dy = graph.tensors[op.inputs[0]]
    ttcheck.loops(index, op, dy.size * kernel, "weight gradient")


def _update_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """The fused update: the weight gradient's shapes, with the weights themselves."""
    from .training import check_weight_update
    w = graph.tensors[op.inputs[3]]
    ttcheck.rank(w, 4, index, op, "the weights")
    region = check_weight_update(graph, index, op, w, o)
    require(o["axis"] == (3 if "DEPTHWISE" in op.kind else 0), index, op,
            f"axis {o['axis']} is not the output-channel axis")
    kernel = _check_saved(graph, index, op, o, region)
    ttcheck.momentum(graph, index, op, 4, region)
    ttcheck.loops(index, op, graph.tensors[op.inputs[0]].size * kernel, "weight gradient")


def _check_saved(graph: Graph, index: int, op: Operator, o: dict, dw_shape) -> int:
    """dy, mask and the saved input against a weight gradient of `dw_shape`; returns the
    taps per output element (KH * KW * k, or KH * KW for depthwise)."""
    dy, saved = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[2]]
    for t, what in ((dy, "dy"), (saved, "the saved input")):
        ttcheck.rank(t, 4, index, op, what)
    require(len(dw_shape) == 4, index, op, f"the weight gradient {list(dw_shape)} must be 4-D")
    ttcheck.check_mask(graph, index, op, dy.size)
    ttcheck.per_tensor(saved, index, op, "the saved input")
    require(saved.shape[0] == dy.shape[0], index, op, "dy and the saved input batches differ")
    ttcheck.int8_positions(graph, index, op, dy)
    co = dy.shape[3]
    if "DEPTHWISE" in op.kind:
        ok = (dw_shape[0] == 1 and dw_shape[3] == co
              and co == saved.shape[3] * o["depth_multiplier"])
        taps = dw_shape[1] * dw_shape[2]
    else:
        ok = dw_shape[0] == co and dw_shape[3] == saved.shape[3]
        taps = dw_shape[1] * dw_shape[2] * dw_shape[3]
    require(ok, index, op, f"dy {list(dy.shape)}, saved {list(saved.shape)} and the weight "
                           f"gradient {list(dw_shape)} do not match")
    stride, dilation, pads = _window(o)
    ttcheck.window_grid(index, op, saved.shape, dw_shape[1:3], stride, dilation, pads,
                        dy.shape[1:3])
    return taps


register(OpDef("TT_CONV2D_INPUT_GRAD", by_grad(conv_input_grad, conv_input_grad_s8), grad_macs,
               tt_check(_input_grad_shapes), stateful=True))
register(OpDef("TT_CONV2D_WEIGHT_GRAD", by_grad(conv_weight_grad, lambda g, op, ins, st: [
    conv_weight_grad_values_s8(g, op, ins, g.tensors[op.outputs[0]].shape[1:3])]), grad_macs,
    tt_check(_weight_grad_shapes), stateful=True))
register(OpDef("TT_DEPTHWISE_CONV2D_INPUT_GRAD", by_grad(dw_input_grad, dw_input_grad_s8),
               grad_macs, tt_check(_input_grad_shapes), stateful=True))
register(OpDef("TT_DEPTHWISE_CONV2D_WEIGHT_GRAD", by_grad(dw_weight_grad, lambda g, op, ins, st: [
    dw_weight_grad_values_s8(g, op, ins, g.tensors[op.outputs[0]].shape)]), grad_macs,
    tt_check(_weight_grad_shapes), stateful=True))
register(OpDef("TT_CONV2D_WEIGHT_UPDATE", by_grad(
    _fused_update(lambda g, op, ins, shape: conv_weight_grad_values(g, op, ins, shape[1:3])),
    _fused_update(lambda g, op, ins, shape: conv_weight_grad_values_s8(g, op, ins, shape[1:3])),
    f32_stateful=True), grad_macs, tt_check(_update_shapes), stateful=True))
register(OpDef("TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE", by_grad(
    _fused_update(dw_weight_grad_values), _fused_update(dw_weight_grad_values_s8),
    f32_stateful=True), grad_macs, tt_check(_update_shapes), stateful=True))
