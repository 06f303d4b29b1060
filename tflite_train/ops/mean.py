"""MEAN: int8 forward (TFLM reduce.cc QuantizedMeanOrSum, the 1/N folded into the
multiplier)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from . import (OpDef, by_grad, register, require, require_arity, require_int8_io,
               require_options, saturate_int8, scalar)
from .requant import require_multipliers, rescale_multiplier
from .ttcheck import tt_check


def axes(graph: Graph, op: Operator) -> tuple[int, ...]:
    rank = len(graph.tensors[op.inputs[0]].shape)
    raw = np.ravel(graph.tensors[op.inputs[1]].data).astype(int)
    return tuple(sorted({int(a) % rank for a in raw}))


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, 2, 1)
    require_options(index, op, "ReducerOptions", required=False)
    require_int8_io(graph, index, op)
    x, a, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    require(a.is_constant and a.dtype == "int32", index, op, "axes must be constant int32")
    rank = len(x.shape)
    raw = np.ravel(a.data)
    require(rank >= 1 and raw.size >= 1 and all(-rank <= int(v) < rank for v in raw), index, op,
            f"axes {raw.tolist()} out of range for rank {rank}")
    kept = x.size // int(np.prod([x.shape[i] for i in axes(graph, op)]))
    require(y.size == kept, index, op, f"output {list(y.shape)} does not hold the "
                                       f"{kept} means")
    require_multipliers(float(np.float32(x.quant.s)) / float(np.float32(y.quant.s)), index, op,
                        "input scale / output scale")


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


def _grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """dx [dims]; dy holds dx's size over the kept axes; the axes are distinct and
    non-negative, as backward() writes them."""
    dy, dx = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    ax = o["axes"]
    require(len(set(ax)) == len(ax) and all(0 <= a < len(dx.shape) for a in ax), index, op,
            f"axes {ax} are not distinct axes of dx {list(dx.shape)}")
    kept = dx.size // int(np.prod([dx.shape[a] for a in ax]))
    require(dy.size == kept, index, op, f"dy {list(dy.shape)} must hold dx {list(dx.shape)} "
                                        f"over the kept axes ({kept} elements)")


register(OpDef("MEAN", forward, check=_check, backward=backward))
register(OpDef("TT_MEAN_GRAD", by_grad(mean_grad, mean_grad_s8), check=tt_check(_grad_shapes),
               stateful=True))
