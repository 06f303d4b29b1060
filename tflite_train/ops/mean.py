"""MEAN: int8 forward (TFLM reduce.cc QuantizedMeanOrSum, the 1/N folded into the
multiplier)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from . import OpDef, by_grad, register, require, require_int8_io, saturate_int8, scalar
from .requant import rescale_multiplier


def axes(graph: Graph, op: Operator) -> tuple[int, ...]:
    rank = len(graph.tensors[op.inputs[0]].shape)
    raw = np.ravel(graph.tensors[op.inputs[1]].data).astype(int)
    return tuple(sorted({int(a) % rank for a in raw}))


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_int8_io(graph, index, op)
    require(graph.tensors[op.inputs[1]].is_constant, index, op, "axes must be constant")


def multiplier(graph: Graph, op: Operator, count: int) -> tuple[int, int]:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    m, s = rescale_multiplier(x, y)
    shift = min(count.bit_length() - 1, 32, 31 + s)
    return (m << shift) // count, s - shift


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    x = inputs[0].astype(np.int64)
    ax = axes(graph, op)
    count = int(np.prod([x.shape[a] for a in ax]))
    total = x.sum(axis=ax) - x_t.quant.zp * count
    m, s = multiplier(graph, op, count)
    out = fp.multiply_by_quantized_multiplier(fp.wrap32(total), m, s) + y_t.quant.zp
    return [saturate_int8(out).reshape(y_t.shape)]




def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    dx = b.grad_like(op.inputs[0])
    b.emit("TT_MEAN_GRAD", [dy], [dx], axes=list(axes(b.graph, op)))
    return {op.inputs[0]: dx}


def mean_grad(graph: Graph, op: Operator, inputs) -> list:
    from ..training_ops import options_of
    ax = tuple(options_of(op)["axes"])
    shape = graph.tensors[op.outputs[0]].shape
    keep = [1 if i in ax else n for i, n in enumerate(shape)]
    count = int(np.prod([shape[a] for a in ax]))
    dy = inputs[0].astype(np.float32).reshape(keep)
    return [np.ascontiguousarray(np.broadcast_to(dy / np.float32(count), shape))]


def mean_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_mean_grad_s8: dy broadcast unchanged, the scale divided by the count."""
    from ..training_ops import options_of
    ax = tuple(options_of(op)["axes"])
    shape = graph.tensors[op.outputs[0]].shape
    keep = [1 if i in ax else n for i, n in enumerate(shape)]
    count = int(np.prod([shape[a] for a in ax]))
    dx = np.ascontiguousarray(np.broadcast_to(inputs[0].reshape(keep), shape))
    return [dx, np.array([scalar(inputs[1]) / np.float32(count)], np.float32)]


register(OpDef("MEAN", forward, check=_check, backward=backward))
register(OpDef("TT_MEAN_GRAD", by_grad(mean_grad, mean_grad_s8), stateful=True))
