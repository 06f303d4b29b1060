"""TT_CONV2D, TT_DEPTHWISE_CONV2D, TT_FULLY_CONNECTED: forward ops of ours that replace a
TFLM builtin bit for bit where memory needs what the builtin cannot do (schema/training_ops
.json): a filter in two parts along its input channels (the trained ones in an SRAM variable,
the frozen rest constant in flash), an output written over its input, and requantization
parameters read from constant tensors instead of computed into TFLM's persistent memory.
Also the input gradients of a filter in two parts (TT_*_SPLIT_INPUT_GRAD), and the
conversions between these ops and the builtins (passes/ and export use them)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..errors import ModelError
from ..ir import Graph, Operator, Tensor
from ..training_ops import make_op, options_of
from . import OpDef, by_grad, fused_activation, register, require, saturate_int8
from .conv import _input_grad_shapes as conv_input_grad_shapes
from .conv import accumulate, conv_input_grad, conv_input_grad_s8
from .fully_connected import _input_grad_shapes as fc_input_grad_shapes
from .fully_connected import input_grad as fc_input_grad
from .fully_connected import input_grad_s8 as fc_input_grad_s8
from .ttcheck import tt_check
from .requant import conv_multipliers, exact_int
from .window import geometry

FORWARD = ("TT_CONV2D", "TT_DEPTHWISE_CONV2D", "TT_FULLY_CONNECTED")
BUILTIN = {"TT_CONV2D": "CONV_2D", "TT_DEPTHWISE_CONV2D": "DEPTHWISE_CONV_2D",
           "TT_FULLY_CONNECTED": "FULLY_CONNECTED"}

# input positions
CONV = {"input": 0, "filter": 1, "rest": 2, "bias": 3, "multipliers": 4, "shifts": 5}
DEPTHWISE = {"input": 0, "filter": 1, "rest": None, "bias": 2, "multipliers": 3, "shifts": 4}
FC = CONV


def positions(kind: str) -> dict:
    return DEPTHWISE if kind == "TT_DEPTHWISE_CONV2D" else CONV


def _t(graph: Graph, op: Operator, name: str) -> Tensor | None:
    k = positions(op.kind)[name]
    return None if k is None or k >= len(op.inputs) or op.inputs[k] < 0 \
        else graph.tensors[op.inputs[k]]


def whole_filter(graph: Graph, op: Operator, inputs) -> np.ndarray:
    """The filter (weights) as the builtin has it: both parts joined along the last axis."""
    pos = positions(op.kind)
    w = inputs[pos["filter"]]
    rest = inputs[pos["rest"]] if pos["rest"] is not None else None
    return w if rest is None else np.concatenate([w, rest], axis=-1)


def whole_filter_tensor(graph: Graph, op: Operator) -> Tensor:
    """A tensor describing the whole filter (shape and quantization; no data)."""
    w, rest = _t(graph, op, "filter"), _t(graph, op, "rest")
    shape = w.shape if rest is None else w.shape[:-1] + (w.shape[-1] + rest.shape[-1],)
    return Tensor(w.name, shape, w.dtype, w.quant)


def _window(o: dict, out_hw) -> tuple:
    return None, (o["stride_h"], o["stride_w"]), (o["dilation_h"], o["dilation_w"]), \
        (o["pad_top"], o["pad_left"]), tuple(out_hw)


def _requantize(acc, op: Operator, inputs, y: Tensor) -> np.ndarray:
    pos = positions(op.kind)
    o = options_of(op)
    m, s = inputs[pos["multipliers"]], inputs[pos["shifts"]]
    out = fp.multiply_by_quantized_multiplier(acc, m.astype(np.int64), s.astype(np.int64))
    return saturate_int8(np.clip(out + y.quant.zp, o["act_min"], o["act_max"]))


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    pos = positions(op.kind)
    w = whole_filter(graph, op, inputs)
    bias = inputs[pos["bias"]]
    if op.kind == "TT_FULLY_CONNECTED":
        depth = w.shape[1]
        xs = inputs[0].reshape(-1, depth).astype(np.float64) - x_t.quant.zp
        acc = exact_int(xs @ w.astype(np.float64).T)
        if bias is not None:
            acc = acc + bias.astype(np.int64)
        return [_requantize(acc, op, inputs, y_t).reshape(y_t.shape)]
    geo = (tuple(w.shape[1:3]),) + _window(options_of(op), y_t.shape[1:3])[1:]
    acc = accumulate(inputs[0], x_t.quant.zp, w, bias, geo,
                     op.kind == "TT_DEPTHWISE_CONV2D")
    return [_requantize(acc, op, inputs, y_t)]


def macs(graph: Graph, op: Operator) -> int:
    w = whole_filter_tensor(graph, op)
    y = graph.tensors[op.outputs[0]]
    if op.kind == "TT_FULLY_CONNECTED":
        return y.size * w.shape[1]
    taps = w.shape[1] * w.shape[2] * (w.shape[3] if op.kind == "TT_CONV2D" else 1)
    return y.size * taps


# The shifts' storage type (schema: int8 since training model format version 2).
# QuantizeMultiplier gives shifts in [-31, 31] for every multiplier TFLM can requantize
# (below 2^31), so int8 holds them exactly: 1 B of flash a channel instead of int32's 4.
SHIFT_DTYPE = "int8"
SHIFT_RANGE = (-31, 31)


def requantization(graph: Graph, x: Tensor, w: Tensor, y: Tensor) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """(multipliers int32, shifts int8) [Co] as the builtin's Prepare computes them.
    ModelError when the scales give a shift outside [-31, 31] (a multiplier of 2^31 or more,
    which only a crafted file's scales give): int8 would wrap it, and the kernels' shifts
    are defined on [-31, 31] only."""
    m, s = conv_multipliers(x, w, y, y.shape[-1])
    return m.astype(np.int32), shifts_int8(s)


def shifts_int8(s) -> np.ndarray:
    """Shifts as every forward kernel takes them (int8, contiguous). ModelError outside
    SHIFT_RANGE: int8 would wrap a larger one, and the kernels shift by it (C leaves a
    shift of 32 or more undefined, and x86 and the Cortex-M7 do differ there)."""
    s = np.asarray(s, np.int64)
    if s.size and (s.min() < SHIFT_RANGE[0] or s.max() > SHIFT_RANGE[1]):
        bad = int(s[(s < SHIFT_RANGE[0]) | (s > SHIFT_RANGE[1])][0])
        raise ModelError(f"the scales give a requantization shift of {bad}, outside "
                         f"[{SHIFT_RANGE[0]}, {SHIFT_RANGE[1]}]")
    return np.ascontiguousarray(s.astype(np.int8))


def check_requantization(graph: Graph, index: int, op: Operator, m_t: Tensor, s_t: Tensor,
                         x: Tensor, w: Tensor, y: Tensor, channels: int,
                         what: str = "") -> None:
    """A forward op's multipliers (constant int32) and shifts (constant int8) [channels],
    equal to what the scales of x, w, y give. `what`: the layer's prefix (pw_, dw_)."""
    require(m_t.dtype == "int32" and m_t.shape == (channels,) and m_t.is_constant, index, op,
            f"{what}multipliers must be constant int32 [{channels}]")
    # format version 1 stored int32 shifts: say what to do, never read them as int8
    require(s_t.dtype != "int32", index, op,
            f"{what}shifts are int32 (training model format version 1): run tflite-train "
            "augment again on the original model")
    require(s_t.dtype == SHIFT_DTYPE and s_t.shape == (channels,) and s_t.is_constant, index,
            op, f"{what}shifts must be constant {SHIFT_DTYPE} [{channels}]")
    require(w.quant.scale.size in (1, channels), index, op,
            f"the filter has {w.quant.scale.size} scales for {channels} output channels")
    try:
        m, s = requantization(graph, x, w, y)
    except ModelError as e:
        require(False, index, op, str(e))
    require(np.array_equal(m_t.data, m) and np.array_equal(s_t.data, s), index, op,
            f"{what}multipliers/{what}shifts differ from what the scales give "
            "(conventions.requantization)")


def in_place_ok(graph: Graph, op: Operator) -> str | None:
    """Why `op` cannot run in place (None: it can). TT_DEPTHWISE_CONV2D: depth multiplier 1
    (the in-place kernel's) and an output no larger than its input; TT_CONV2D: a 1x1
    filter at stride 1 without padding (each output row reads only its own input row)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    o = options_of(op) if op.opcode == "CUSTOM" else None
    if op.kind == "TT_DEPTHWISE_CONV2D":
        if x.shape[3] != y.shape[3]:
            return "a depth multiplier other than 1"
        if y.shape[1] * y.shape[2] > x.shape[1] * x.shape[2]:
            return "an output larger than its input"
        return None
    if op.kind == "TT_CONV2D":
        w = whole_filter_tensor(graph, op)
        if w.shape[1:3] != (1, 1) or (o["stride_h"], o["stride_w"]) != (1, 1) \
                or (o["pad_top"], o["pad_left"]) != (0, 0) or x.shape[1:3] != y.shape[1:3]:
            return "not a 1x1 convolution at stride 1"
        return None
    return f"{op.kind} has no in-place form"


def scratch_bytes(graph: Graph, op: Operator) -> int:
    """The scratch an in_place op requests (schema scratch_bytes): one output row for the
    1x1 convolution; for depthwise the ring of line buffers of
    tt_depthwise_conv2d_inplace_s8_scratch_bytes, whose schedule this repeats."""
    o = options_of(op)
    if not o.get("in_place"):
        return 0
    x, y = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
    if op.kind == "TT_CONV2D":
        return y[2] * y[3]
    n, h, w, c = x
    _, oh, ow, _ = y

    def writable(b, q, oy):
        if oy + 1 >= oh:
            return True
        first_needed = max((oy + 1) * o["stride_h"] - o["pad_top"], 0)
        return (b * oh + q + 1) * ow - 1 - b * h * w < first_needed * w

    most = 0
    for b in range(n):
        nxt = 0
        for oy in range(oh):
            most = max(most, oy - nxt + 1)
            while nxt <= oy and writable(b, nxt, oy):
                nxt += 1
    return most * ow * min(c, 4)


def _check(graph: Graph, index: int, op: Operator) -> None:
    """Shapes, types and the requantization tensors (equal to what the builtin computes from
    the scales, so that this op computes what the builtin does)."""
    from ..training_ops import check_options
    pos = positions(op.kind)
    try:
        check_options(op.kind, options_of(op))
    except ModelError as e:
        require(False, index, op, str(e))
    n_in = 6 if op.kind != "TT_DEPTHWISE_CONV2D" else 5
    require(len(op.inputs) == n_in and len(op.outputs) == 1, index, op,
            f"{len(op.inputs)} inputs and {len(op.outputs)} outputs; the schema says "
            f"{n_in} and 1")
    for name in ("input", "filter", "multipliers", "shifts"):
        require(op.inputs[pos[name]] >= 0, index, op, f"input '{name}' is missing")
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    w, rest, bias = _t(graph, op, "filter"), _t(graph, op, "rest"), _t(graph, op, "bias")
    for t, what in ((x, "input"), (y, "output"), (w, "filter")) + \
            (((rest, "filter_rest"),) if rest is not None else ()):
        require(t.dtype == "int8" and t.quant is not None, index, op,
                f"{what} must be quantized int8")
    require(w.is_constant or w.is_variable, index, op, "the filter must be constant or a "
                                                       "variable")
    require(rest is None or rest.is_constant, index, op, "filter_rest must be constant")
    require(not np.any(w.quant.zero_point), index, op, "the filter must be symmetric")
    whole = whole_filter_tensor(graph, op)
    o = options_of(op)
    require(o["act_min"] <= o["act_max"], index, op, "act_min > act_max")
    if op.kind == "TT_FULLY_CONNECTED":
        require(len(w.shape) == 2 and (rest is None or (len(rest.shape) == 2 and
                                                         rest.shape[0] == w.shape[0])),
                index, op, "weights must be [units, Dt] and [units, depth - Dt]")
        units, depth = whole.shape
        require(x.size % depth == 0 and y.size == x.size // depth * units, index, op,
                f"input {list(x.shape)}, weights [{units}, {depth}] and output "
                f"{list(y.shape)} do not match")
        channels = units
    else:
        require(len(x.shape) == 4 and len(y.shape) == 4 and len(w.shape) == 4, index, op,
                "input, filter and output must be 4-D")
        require(rest is None or (len(rest.shape) == 4 and rest.shape[:3] == w.shape[:3]),
                index, op, "filter and filter_rest must differ only in their last axis")
        channels = y.shape[3]
        if op.kind == "TT_CONV2D":
            require(whole.shape[0] == channels and whole.shape[3] == x.shape[3], index, op,
                    f"filter {list(whole.shape)} does not match input {list(x.shape)} and "
                    f"output {list(y.shape)}")
        else:
            require(whole.shape[0] == 1 and whole.shape[3] == channels == x.shape[3], index,
                    op, f"filter {list(whole.shape)} does not match input {list(x.shape)} "
                        f"and output {list(y.shape)} (depth multiplier 1)")
        require(y.shape[0] == x.shape[0], index, op, "input and output batches differ")
        if o["in_place"]:
            why = in_place_ok(graph, op)
            require(why is None, index, op, f"in_place with {why}")
    require(bias is None or (bias.dtype == "int32" and bias.shape == (channels,)), index, op,
            f"bias must be int32 [{channels}]")
    check_requantization(graph, index, op, _t(graph, op, "multipliers"),
                         _t(graph, op, "shifts"), x, whole, y, channels)


# TT_*_SPLIT_INPUT_GRAD -> the whole-filter op it computes. Its inputs are that op's with
# weights_rest inserted after the weights (both gradient modes: the int8_only inputs follow)
JOINED = {"TT_CONV2D_SPLIT_INPUT_GRAD": "TT_CONV2D_INPUT_GRAD",
          "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD": "TT_FULLY_CONNECTED_INPUT_GRAD"}


def split_inputs(inputs: list, rest) -> list:
    """A whole-filter input gradient's inputs with the filter's frozen part after it."""
    return list(inputs[:3]) + [rest] + list(inputs[3:])


def joined_inputs(inputs: list) -> list:
    """A split input gradient's inputs without weights_rest (the whole-filter op's)."""
    return list(inputs[:3]) + list(inputs[4:])


def _joined_view(op: Operator, weights: int) -> Operator:
    """The split op as its whole-filter form reads it: the same kind, options and outputs,
    the inputs without weights_rest and with `weights` (a tensor index) as the filter."""
    inputs = joined_inputs(op.inputs)
    inputs[2] = weights
    return Operator("CUSTOM", inputs, list(op.outputs), custom_code=op.kind,
                    custom_options=op.custom_options)


def _split_input_grad(base):
    """The numpy kernel of a TT_*_SPLIT_INPUT_GRAD: the whole-filter kernel (float32 or
    int8 by the op's gradient mode) on both parts joined (the C kernels add the same terms
    in the same order, or the same exact int32 sums)."""
    def run(graph: Graph, op: Operator, inputs, state=None) -> list:
        w = np.concatenate([inputs[2], inputs[3]], axis=-1)
        view = _joined_view(op, op.inputs[2])
        return base(graph, view, [inputs[0], inputs[1], w, *inputs[4:]], state)
    return run


def _split_grad_shapes(whole_shapes):
    """The whole-filter op's shape checks on a filter in two parts: the parts differ only in
    their last axis, then the whole op's checks on a tensor of both parts' shape."""
    def check(graph: Graph, index: int, op: Operator, o: dict) -> None:
        import copy
        w, rest = graph.tensors[op.inputs[2]], graph.tensors[op.inputs[3]]
        require(len(w.shape) == len(rest.shape) and w.shape[:-1] == rest.shape[:-1], index,
                op, f"weights {list(w.shape)} and weights_rest {list(rest.shape)} must differ "
                    "only in their last axis")
        require(rest.is_constant, index, op, "weights_rest must be a constant")
        view_graph = copy.copy(graph)
        view_graph.tensors = list(graph.tensors) + [
            Tensor(w.name, w.shape[:-1] + (w.shape[-1] + rest.shape[-1],), w.dtype, w.quant)]
        whole_shapes(view_graph, index, _joined_view(op, len(graph.tensors)), o)
    return check


def split_grad_macs(graph: Graph, op: Operator) -> int:
    w, rest = graph.tensors[op.inputs[2]], graph.tensors[op.inputs[3]]
    dy = graph.tensors[op.inputs[0]]
    batches = dy.size // dy.shape[-1]
    if op.kind == "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD":
        return batches * (w.size + rest.size)
    return int(np.prod(dy.shape[:3])) * dy.shape[3] * w.shape[1] * w.shape[2] \
        * (w.shape[3] + rest.shape[3])


# --- conversions between the builtins and these ops ----------------------------------------

def from_builtin(graph: Graph, op: Operator, filter_: int | None = None,
                 rest: int | None = None, in_place: bool = False) -> Operator:
    """The TT_* op computing what the builtin `op` computes. `filter_`/`rest`: the filter in
    two parts (tensor indices), by default the builtin's whole filter. Adds the constant
    multiplier and shift tensors to the graph."""
    kind = {v: k for k, v in BUILTIN.items()}[op.kind]
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    m, s = requantization(graph, x, w, y)
    name = y.name or f"tensor{op.outputs[0]}"
    mt = graph.add_tensor(Tensor(f"{name}/multipliers", (m.size,), "int32", data=m))
    st = graph.add_tensor(Tensor(f"{name}/shifts", (s.size,), SHIFT_DTYPE, data=s))
    lo, hi = _range(fused_activation(op), y)
    act = {"act_min": int(lo), "act_max": int(hi)}
    f = op.inputs[1] if filter_ is None else filter_
    r = -1 if rest is None else rest
    if kind == "TT_FULLY_CONNECTED":
        return make_op(kind, [op.inputs[0], f, r, bias, mt, st], list(op.outputs), **act)
    _, stride, dilation, pads, _ = geometry(op, x.shape, w.shape[1:3], y.shape)
    window = {"stride_h": stride[0], "stride_w": stride[1], "dilation_h": dilation[0],
              "dilation_w": dilation[1], "pad_top": pads[0], "pad_left": pads[1]}
    if kind == "TT_DEPTHWISE_CONV2D":
        if int(op.options.get("depth_multiplier", 1) or 1) != 1 and x.shape[3] != y.shape[3]:
            raise ModelError("TT_DEPTHWISE_CONV2D has depth multiplier 1 only")
        return make_op(kind, [op.inputs[0], f, bias, mt, st], list(op.outputs), **window,
                       **act, in_place=in_place)
    return make_op(kind, [op.inputs[0], f, r, bias, mt, st], list(op.outputs), **window,
                   **act, in_place=in_place)


def make_in_place(op: Operator) -> Operator:
    """The same TT_* forward op with `in_place` set."""
    return make_op(op.kind, list(op.inputs), list(op.outputs),
                   **{**options_of(op), "in_place": True})


ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}  # fused_activation_function


def layer_name(graph: Graph, op: Operator) -> str:
    """The output name of the builtin a TT_* forward op was made from (from_builtin names
    the op's multipliers after it; a streamed pointwise output no longer exists)."""
    return graph.tensors[op.inputs[positions(op.kind)["multipliers"]]].name \
        .removesuffix("/multipliers")


def to_builtin(graph: Graph, op: Operator, filter_: int, activation: int | None = None) \
        -> Operator:
    """The builtin computing what the TT_* forward op computes, reading the whole filter
    `filter_` (a tensor the caller made of both parts). Padding and activation are the
    builtin options that give the op's window and range; `activation`, the builtin's own
    fused activation where the range cannot tell (augment's metadata records it:
    passes.builtins.hidden_activations), must give that range too."""
    from .window import SAME, VALID, pad_before
    kind = BUILTIN[op.kind]
    o = options_of(op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    bias = op.inputs[positions(op.kind)["bias"]]
    inputs = [op.inputs[0], filter_] + ([bias] if bias >= 0 else [])
    if activation is None:
        activation = activation_of(o, y)
    elif _range(activation, y) != (o["act_min"], o["act_max"]):
        raise ModelError(f"{op.kind}: activation {ACTIVATIONS.get(activation, activation)} "
                         f"does not give its range [{o['act_min']}, {o['act_max']}]")
    if kind == "FULLY_CONNECTED":
        return Operator("FULLY_CONNECTED", inputs, list(op.outputs),
                        options_type="FullyConnectedOptions",
                        options={"fused_activation_function": activation, "keep_num_dims":
                                 len(y.shape) != 2, "weights_format": 0,
                                 "asymmetric_quantize_inputs": False,
                                 "quantized_bias_type": 0})
    w = graph.tensors[filter_]
    stride, dilation = (o["stride_h"], o["stride_w"]), (o["dilation_h"], o["dilation_w"])
    padding = None
    for p in (SAME, VALID):
        pads = tuple(pad_before(p, x.shape[1 + i], w.shape[1 + i], stride[i], dilation[i],
                                y.shape[1 + i]) for i in range(2))
        from .window import out_size
        outs = tuple(out_size(p, x.shape[1 + i], w.shape[1 + i], stride[i], dilation[i])
                     for i in range(2))
        if pads == (o["pad_top"], o["pad_left"]) and outs == tuple(y.shape[1:3]):
            padding = p
            break
    if padding is None:
        raise ModelError(f"{op.kind}: its window has no SAME or VALID builtin form")
    options = {"padding": padding, "stride_w": stride[1], "stride_h": stride[0],
               "fused_activation_function": activation,
               "dilation_w_factor": dilation[1], "dilation_h_factor": dilation[0]}
    if kind == "DEPTHWISE_CONV_2D":
        return Operator(kind, inputs, list(op.outputs), options_type="DepthwiseConv2DOptions",
                        options={**options, "depth_multiplier": 1})
    return Operator(kind, inputs, list(op.outputs), options_type="Conv2DOptions",
                    options=options)


def _range(activation: int, y: Tensor) -> tuple[int, int]:
    lo, hi = fp.activation_range(activation, y.quant.s, y.quant.zp)
    return max(lo, -128), min(hi, 127)


def activation_of(o: dict, y: Tensor) -> int:
    """The fused activation whose clamped range is the op's (NONE when nothing clamps)."""
    for act in (0, 1, 3, 2):                  # NONE, RELU, RELU6, RELU_N1_TO_1
        if _range(act, y) == (o["act_min"], o["act_max"]):
            return act
    raise ModelError(f"activation range [{o['act_min']}, {o['act_max']}] is no fused "
                     "activation's")


for _kind in FORWARD:
    register(OpDef(_kind, forward, macs, _check, param_inputs=(1, 2, 3) if _kind !=
                   "TT_DEPTHWISE_CONV2D" else (1, 2)))
register(OpDef("TT_CONV2D_SPLIT_INPUT_GRAD",
               _split_input_grad(by_grad(conv_input_grad, conv_input_grad_s8)),
               split_grad_macs, tt_check(_split_grad_shapes(conv_input_grad_shapes)),
               stateful=True))
register(OpDef("TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD",
               _split_input_grad(by_grad(fc_input_grad, fc_input_grad_s8)),
               split_grad_macs, tt_check(_split_grad_shapes(fc_input_grad_shapes)),
               stateful=True))
