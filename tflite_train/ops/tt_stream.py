"""TT_POINTWISE_DEPTHWISE: a 1x1 CONV_2D and the strided DEPTHWISE_CONV_2D that alone reads
its output, as one forward op (schema/training_ops.json) whose kernel,
tt_pointwise_depthwise_s8 (micro_kernels/include/tt_stream.h), computes the pointwise output
a few rows at a time: in an inverted-residual block that expansion is the largest tensor of
the whole step, and TFLM, running the two builtins, must hold it whole. Bit-exact with the
two builtins (the same kernels on the same rows). Also: which pairs can be fused, and the
conversions to and from the builtins (passes/stream.py, export, codegen's joined graph)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..errors import ModelError
from ..ir import Graph, Operator, Quantization, Tensor
from ..training_ops import make_op, options_of
from . import OpDef, register, require, saturate_int8
from . import tt_forward
from .conv import accumulate

KIND = "TT_POINTWISE_DEPTHWISE"
# input positions
X, PW_FILTER, PW_BIAS, PW_M, PW_S, DW_FILTER, DW_BIAS, DW_M, DW_S = range(9)
WINDOW = ("stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left")


def mid_tensor(graph: Graph, op: Operator, name: str = "") -> Tensor:
    """The pointwise output the op never materialises: [1, H, W, CM], int8, its quantization
    from the options."""
    o = options_of(op)
    x, w = graph.tensors[op.inputs[X]], graph.tensors[op.inputs[PW_FILTER]]
    q = Quantization(np.array([o["mid_scale"]], np.float32),
                     np.array([o["mid_zero_point"]], np.int64))
    return Tensor(name or f"{graph.tensors[op.outputs[0]].name}/mid",
                  (1, x.shape[1], x.shape[2], w.shape[0]), "int8", q)


def _requant(acc, m, s, zp: int, lo: int, hi: int) -> np.ndarray:
    out = fp.multiply_by_quantized_multiplier(acc, m.astype(np.int64), s.astype(np.int64))
    return saturate_int8(np.clip(out + zp, lo, hi))


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    o = options_of(op)
    x_t, y_t = graph.tensors[op.inputs[X]], graph.tensors[op.outputs[0]]
    x = inputs[X]
    h, w = x.shape[1:3]
    acc = accumulate(x, x_t.quant.zp, inputs[PW_FILTER], inputs[PW_BIAS],
                     ((1, 1), (1, 1), (1, 1), (0, 0), (h, w)), False)
    mid = _requant(acc, inputs[PW_M], inputs[PW_S], o["mid_zero_point"], o["pw_act_min"],
                   o["pw_act_max"])
    dw = inputs[DW_FILTER]
    geo = (tuple(dw.shape[1:3]), (o["stride_h"], o["stride_w"]),
           (o["dilation_h"], o["dilation_w"]), (o["pad_top"], o["pad_left"]),
           tuple(y_t.shape[1:3]))
    acc = accumulate(mid, o["mid_zero_point"], dw, inputs[DW_BIAS], geo, True)
    return [_requant(acc, inputs[DW_M], inputs[DW_S], y_t.quant.zp, o["act_min"],
                     o["act_max"])]


def macs(graph: Graph, op: Operator) -> int:
    x, y = graph.tensors[op.inputs[X]], graph.tensors[op.outputs[0]]
    pw, dw = graph.tensors[op.inputs[PW_FILTER]], graph.tensors[op.inputs[DW_FILTER]]
    return x.shape[1] * x.shape[2] * pw.shape[0] * pw.shape[3] + \
        y.size * dw.shape[1] * dw.shape[2]


def window_bytes(graph: Graph, op: Operator) -> int:
    """The scratch the op requests: tt_pointwise_depthwise_s8_window_bytes, in Python."""
    o = options_of(op)
    mid = mid_tensor(graph, op)
    kh = graph.tensors[op.inputs[DW_FILTER]].shape[1]
    return min((kh - 1) * o["dilation_h"] + 1, mid.shape[1]) * mid.shape[2] * mid.shape[3]


def _check(graph: Graph, index: int, op: Operator) -> None:
    """Types, shapes and requantization tensors equal to what the builtins' Prepare computes
    from the scales (mid's from the options), so that the op computes what they do."""
    from ..training_ops import check_options
    try:
        check_options(op.kind, options_of(op))
    except ModelError as e:
        require(False, index, op, str(e))
    require(len(op.inputs) == 9 and len(op.outputs) == 1, index, op,
            f"{len(op.inputs)} inputs and {len(op.outputs)} outputs; the schema says 9 and 1")
    for k, name in ((X, "input"), (PW_FILTER, "pw_filter"), (PW_M, "pw_multipliers"),
                    (PW_S, "pw_shifts"), (DW_FILTER, "dw_filter"), (DW_M, "dw_multipliers"),
                    (DW_S, "dw_shifts")):
        require(op.inputs[k] >= 0, index, op, f"input '{name}' is missing")
    o = options_of(op)
    x, y = graph.tensors[op.inputs[X]], graph.tensors[op.outputs[0]]
    pw, dw = graph.tensors[op.inputs[PW_FILTER]], graph.tensors[op.inputs[DW_FILTER]]
    for t, what in ((x, "input"), (y, "output"), (pw, "pw_filter"), (dw, "dw_filter")):
        require(t.dtype == "int8" and t.quant is not None and len(t.shape) == 4, index, op,
                f"{what} must be quantized int8 and 4-D")
    for t, what in ((pw, "pw_filter"), (dw, "dw_filter")):
        require(t.is_constant or t.is_variable, index, op, f"{what} must be constant or a "
                                                           "variable")
        require(not np.any(t.quant.zero_point), index, op, f"{what} must be symmetric")
    cm = pw.shape[0]
    require(x.shape[0] == 1 and y.shape[0] == 1, index, op, "batch 1 only")
    require(pw.shape[1:3] == (1, 1) and pw.shape[3] == x.shape[3], index, op,
            f"pw_filter {list(pw.shape)} is no 1x1 filter of input {list(x.shape)}")
    require(dw.shape[0] == 1 and dw.shape[3] == cm == y.shape[3], index, op,
            f"dw_filter {list(dw.shape)} does not match {cm} channels and output "
            f"{list(y.shape)} (depth multiplier 1)")
    require(o["pw_act_min"] <= o["pw_act_max"] and o["act_min"] <= o["act_max"], index, op,
            "an activation range with min > max")
    mid = mid_tensor(graph, op)
    for b, what in ((PW_BIAS, "pw_bias"), (DW_BIAS, "dw_bias")):
        if op.inputs[b] >= 0:
            t = graph.tensors[op.inputs[b]]
            require(t.dtype == "int32" and t.shape == (cm,), index, op,
                    f"{what} must be int32 [{cm}]")
    for (mk, sk), (a, w, b), what in (((PW_M, PW_S), (x, pw, mid), "pw_"),
                                      ((DW_M, DW_S), (mid, dw, y), "dw_")):
        tt_forward.check_requantization(graph, index, op, graph.tensors[op.inputs[mk]],
                                        graph.tensors[op.inputs[sk]], a, w, b, cm, what)


# --- which pairs, and the conversions ------------------------------------------------------

def fusable(graph: Graph, k: int, strided_only: bool = True) -> str | None:
    """Why operators k, k + 1 cannot become one TT_POINTWISE_DEPTHWISE (None: they can): k a
    1x1 CONV_2D at stride 1 without padding, batch 1, whose output only k + 1 reads, a
    DEPTHWISE_CONV_2D of depth multiplier 1 with a stride > 1 (then its output is a quarter of
    the pointwise output or less; at stride 1 the window saves little: `strided_only`
    False allows it, as the tests do)."""
    from .window import geometry
    if k + 1 >= len(graph.operators):
        return "no next operator"
    pw, dw = graph.operators[k], graph.operators[k + 1]
    if pw.kind != "CONV_2D" or dw.kind != "DEPTHWISE_CONV_2D":
        return "not a CONV_2D followed by a DEPTHWISE_CONV_2D"
    mid = pw.outputs[0]
    if dw.inputs[0] != mid or mid in graph.outputs or mid in graph.inputs:
        return "the depthwise layer does not read the pointwise output"
    if any(mid in op.inputs for j, op in enumerate(graph.operators) if j != k + 1):
        return "another operator reads the pointwise output"
    x, w = graph.tensors[pw.inputs[0]], graph.tensors[pw.inputs[1]]
    m, y = graph.tensors[mid], graph.tensors[dw.outputs[0]]
    _, stride, dilation, pads, _ = geometry(pw, x.shape, w.shape[1:3], m.shape)
    if x.shape[0] != 1 or w.shape[1:3] != (1, 1) or stride != (1, 1) or pads != (0, 0):
        return "the convolution is no 1x1 at stride 1 without padding, batch 1"
    if m.shape[3] != y.shape[3]:
        return "a depth multiplier other than 1"
    dw_stride = (int(dw.options.get("stride_h", 1)), int(dw.options.get("stride_w", 1)))
    if strided_only and dw_stride == (1, 1):
        return "a depthwise layer at stride 1"
    return None


def from_builtins(graph: Graph, k: int) -> Operator:
    """The TT_POINTWISE_DEPTHWISE computing operators k (CONV_2D) and k + 1
    (DEPTHWISE_CONV_2D); adds their multiplier and shift tensors to the graph."""
    pw_op, dw_op = graph.operators[k], graph.operators[k + 1]
    pw = tt_forward.from_builtin(graph, pw_op)
    dw = tt_forward.from_builtin(graph, dw_op)
    po, do = options_of(pw), options_of(dw)
    mid = graph.tensors[pw_op.outputs[0]]
    pos_pw, pos_dw = tt_forward.CONV, tt_forward.DEPTHWISE
    inputs = [pw.inputs[0], pw.inputs[pos_pw["filter"]], pw.inputs[pos_pw["bias"]],
              pw.inputs[pos_pw["multipliers"]], pw.inputs[pos_pw["shifts"]],
              dw.inputs[pos_dw["filter"]], dw.inputs[pos_dw["bias"]],
              dw.inputs[pos_dw["multipliers"]], dw.inputs[pos_dw["shifts"]]]
    return make_op(KIND, inputs, list(dw.outputs), **{key: do[key] for key in WINDOW},
                   act_min=do["act_min"], act_max=do["act_max"],
                   pw_act_min=po["act_min"], pw_act_max=po["act_max"],
                   mid_zero_point=int(mid.quant.zp), mid_scale=float(mid.quant.s))


def split(graph: Graph, op: Operator, mid: int) -> tuple[Operator, Operator]:
    """The TT_CONV2D and TT_DEPTHWISE_CONV2D the op stands for, with `mid` (a tensor the
    caller added: mid_tensor) between them."""
    o = options_of(op)
    pw = make_op("TT_CONV2D", [op.inputs[X], op.inputs[PW_FILTER], -1, op.inputs[PW_BIAS],
                               op.inputs[PW_M], op.inputs[PW_S]], [mid],
                 stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, pad_top=0, pad_left=0,
                 act_min=o["pw_act_min"], act_max=o["pw_act_max"], in_place=False)
    dw = make_op("TT_DEPTHWISE_CONV2D", [mid, op.inputs[DW_FILTER], op.inputs[DW_BIAS],
                                         op.inputs[DW_M], op.inputs[DW_S]], list(op.outputs),
                 **{key: o[key] for key in WINDOW}, act_min=o["act_min"],
                 act_max=o["act_max"], in_place=False)
    return pw, dw


def to_builtins(graph: Graph, op: Operator, activations=(None, None)) -> list[Operator]:
    """The CONV_2D and DEPTHWISE_CONV_2D the op stands for; their mid tensor is appended to
    graph.tensors. `activations`: their fused activations where the ranges cannot tell
    (tt_forward.to_builtin), None where they can."""
    graph.tensors.append(mid_tensor(graph, op))
    mid = len(graph.tensors) - 1
    pw, dw = split(graph, op, mid)
    return [tt_forward.to_builtin(graph, pw, op.inputs[PW_FILTER], activations[0]),
            tt_forward.to_builtin(graph, dw, op.inputs[DW_FILTER], activations[1])]


register(OpDef(KIND, forward, macs, _check, param_inputs=(PW_FILTER, PW_BIAS, DW_FILTER,
                                                          DW_BIAS)))
