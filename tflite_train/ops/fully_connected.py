"""FULLY_CONNECTED: int8 forward (TFLM reference FullyConnected arithmetic) and cost."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from . import OpDef, fused_activation, register, require, require_int8_io
from .requant import conv_multipliers, exact_int, requantize


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_int8_io(graph, index, op)
    w = graph.tensors[op.inputs[1]]
    require(w.dtype == "int8" and w.quant is not None, index, op, "weights must be int8")
    require(not np.any(w.quant.zero_point), index, op, "weights must be symmetric")
    require(int(op.options.get("weights_format", 0) or 0) == 0, index, op,
            "shuffled weights format not supported")
    require(fused_activation(op) in (0, 1, 2, 3), index, op,
            f"fused activation {fused_activation(op)} not supported")


def multipliers(graph: Graph, op: Operator):
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    units = w.shape[0]
    if w.quant.per_channel:
        return conv_multipliers(x, w, y, units)
    # Per-tensor path of TFLM's FC: GetQuantizedConvolutionMultipler takes the product of
    # the two float32 scales in float32 before widening (conv widens first).
    real = np.float64(np.float32(x.quant.s) * np.float32(w.quant.s)) / np.float64(y.quant.s)
    m, s = fp.quantize_multiplier(float(real))
    return np.full(units, m, np.int64), np.full(units, s, np.int64)


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    units, depth = w.shape
    xs = x.reshape(-1, depth).astype(np.float64) - x_t.quant.zp
    acc = exact_int(xs @ w.astype(np.float64).T)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    m, s = multipliers(graph, op)
    out = requantize(acc, m, s, y_t, fused_activation(op))
    return [out.reshape(y_t.shape)]


def macs(graph: Graph, op: Operator) -> int:
    w = graph.tensors[op.inputs[1]]
    x = graph.tensors[op.inputs[0]]
    batches = x.size // w.shape[1]
    return batches * w.shape[0] * w.shape[1]


register(OpDef("FULLY_CONNECTED", forward, macs, _check, param_inputs=(1, 2)))
