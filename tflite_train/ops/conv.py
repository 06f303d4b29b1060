"""CONV_2D and DEPTHWISE_CONV_2D: int8 forward (TFLM reference ConvPerChannel /
DepthwiseConvPerChannel arithmetic) and cost."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from . import OpDef, fused_activation, register, require, require_int8_io
from .requant import conv_multipliers, exact_int, requantize
from .window import expected_out, geometry, windows


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_int8_io(graph, index, op)
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    y = graph.tensors[op.outputs[0]]
    require(w.dtype == "int8" and w.is_constant, index, op, "filter must be constant int8")
    require(w.quant is not None and not np.any(w.quant.zero_point), index, op,
            "filter must be symmetric (zero point 0)")
    require(len(x.shape) == 4, index, op, "input must be 4-D NHWC")
    depthwise = op.kind == "DEPTHWISE_CONV_2D"
    if not depthwise:
        require(w.shape[3] == x.shape[3], index, op,
                f"grouped convolution (filter depth {w.shape[3]} != input depth {x.shape[3]})")
    require(fused_activation(op) in (0, 1, 2, 3), index, op,
            f"fused activation {fused_activation(op)} not supported")
    oh, ow = expected_out(op, x.shape, w.shape[1:3])
    require((oh, ow) == tuple(y.shape[1:3]), index, op,
            f"output shape {y.shape} does not match the padding/stride rule ({oh}x{ow})")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = graph.tensors[op.inputs[2]]
        require(b.dtype == "int32", index, op, f"bias is {b.dtype}; int32 expected")


def _acc(graph: Graph, op: Operator, inputs) -> tuple[np.ndarray, int]:
    x_t, w_t = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    y_t = graph.tensors[op.outputs[0]]
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    # Out-of-image taps add nothing: padding with 0 after subtracting the zero point.
    xs = x.astype(np.float64) - x_t.quant.zp
    geo = geometry(op, x.shape, w.shape[1:3], y_t.shape)
    win = windows(xs, *geo, fill=0.0)                          # [N,OH,OW,KH,KW,C]
    if op.kind == "CONV_2D":
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
    return acc, y_t.shape[3]


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


register(OpDef("CONV_2D", forward, macs, _check, param_inputs=(1, 2)))
register(OpDef("DEPTHWISE_CONV_2D", forward, macs, _check, param_inputs=(1, 2)))
