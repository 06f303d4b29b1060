"""QUANTIZE (float32 -> int8, or int8 -> int8 requantize) and DEQUANTIZE (int8 -> float32)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from . import OpDef, register, require, require_arity, saturate_int8
from .requant import require_multipliers, rescale_multiplier


def _same_shape(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, 1, 1)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.shape == y.shape, index, op, f"input {list(x.shape)} and output "
                                           f"{list(y.shape)} differ")


def _check_quantize(graph: Graph, index: int, op: Operator) -> None:
    _same_shape(graph, index, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.dtype == "float32" or (x.dtype == "int8" and x.quant is not None
                                     and not x.quant.per_channel),
            index, op, f"input type {x.dtype} not supported (float32 or per-tensor int8)")
    require(y.dtype == "int8" and y.quant is not None and not y.quant.per_channel,
            index, op, "output must be per-tensor int8")
    if x.dtype == "int8":
        require_multipliers(float(np.float32(x.quant.s)) / float(np.float32(y.quant.s)),
                            index, op, "input scale / output scale")


def quantize(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    x = inputs[0]
    if x_t.dtype == "float32":
        # AffineQuantize: float32 division, roundf, then the zero point.
        q = fp.round_half_away(x.astype(np.float32) / np.float32(y_t.quant.s))
        return [saturate_int8(q.astype(np.int64) + y_t.quant.zp)]
    m, s = rescale_multiplier(x_t, y_t)
    out = fp.multiply_by_quantized_multiplier(x.astype(np.int64) - x_t.quant.zp, m, s)
    return [saturate_int8(out + y_t.quant.zp)]


def _check_dequantize(graph: Graph, index: int, op: Operator) -> None:
    _same_shape(graph, index, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.dtype == "int8" and x.quant is not None and not x.quant.per_channel,
            index, op, "input must be per-tensor int8")
    require(y.dtype == "float32", index, op, f"output type {y.dtype} not supported")


def dequantize(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t = graph.tensors[op.inputs[0]]
    # double(scale) * (q - zp), then narrowed to float32
    real = np.float64(np.float32(x_t.quant.s)) * (inputs[0].astype(np.float64) - x_t.quant.zp)
    return [real.astype(np.float32)]


register(OpDef("DEQUANTIZE", dequantize, check=_check_dequantize))


def requantize_backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    """int8 -> int8 QUANTIZE is the identity on real values."""
    if b.graph.tensors[op.inputs[0]].dtype != "int8":
        return {}
    dx = b.grad_like(op.inputs[0])
    b.emit("TT_RESHAPE_GRAD", [dy], [dx])
    return {op.inputs[0]: dx}


register(OpDef("QUANTIZE", quantize, check=_check_quantize, backward=requantize_backward))
