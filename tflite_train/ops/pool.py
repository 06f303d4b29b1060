"""AVERAGE_POOL_2D and MAX_POOL_2D: int8 forward (TFLM reference pooling)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from . import OpDef, fused_activation, register, require, require_int8_io, saturate_int8
from .window import expected_out, geometry, windows


def kernel(op: Operator) -> tuple[int, int]:
    return int(op.options["filter_height"]), int(op.options["filter_width"])


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_int8_io(graph, index, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(len(x.shape) == 4, index, op, "input must be 4-D NHWC")
    require(x.quant.zp == y.quant.zp and np.float32(x.quant.s) == np.float32(y.quant.s),
            index, op, "input and output quantization differ")
    require(expected_out(op, x.shape, kernel(op)) == tuple(y.shape[1:3]), index, op,
            "output shape does not match the padding/stride rule")


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


register(OpDef("AVERAGE_POOL_2D", average, check=_check))
register(OpDef("MAX_POOL_2D", maximum, check=_check))
