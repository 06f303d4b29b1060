"""RESHAPE and TRANSPOSE: data movement only, quantization unchanged."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from . import OpDef, register, require, require_arity, require_options, require_same_quant
from .ttcheck import tt_check


def _check_same_quant(graph: Graph, index: int, op: Operator) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.dtype == y.dtype, index, op, "input and output types differ")
    require((x.quant is None) == (y.quant is None), index, op,
            "only one of input and output is quantized")
    if x.quant is not None:
        require(not x.quant.per_channel and not y.quant.per_channel, index, op,
                "per-channel quantized data")
        require_same_quant(graph, index, op)


def _check_reshape(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, (1, 2), 1)
    require_options(index, op, "ReshapeOptions", required=False)
    _check_same_quant(graph, index, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.size == y.size, index, op, f"input {list(x.shape)} and output {list(y.shape)} "
                                         "differ in size")


def reshape(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    return [inputs[0].reshape(graph.tensors[op.outputs[0]].shape)]


def perm(graph: Graph, op: Operator) -> tuple[int, ...]:
    return tuple(int(p) for p in np.ravel(graph.tensors[op.inputs[1]].data))


def _check_transpose(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, 2, 1)
    _check_same_quant(graph, index, op)
    x, p, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    require(p.is_constant and p.dtype == "int32" and len(p.shape) == 1, index, op,
            "perm must be a constant int32 vector")
    require(1 <= len(x.shape) <= 5, index, op, f"input rank {len(x.shape)}; TFLM transposes "
                                               "1-D to 5-D")
    order = perm(graph, op)
    require(sorted(order) == list(range(len(x.shape))), index, op,
            f"perm {list(order)} is not a permutation of the input's {len(x.shape)} axes")
    require(tuple(x.shape[a] for a in order) == tuple(y.shape), index, op,
            f"output {list(y.shape)} is not the input {list(x.shape)} transposed")


def transpose(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.transpose(inputs[0], perm(graph, op)))]




def reshape_backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    dx = b.grad_like(op.inputs[0])
    b.emit("TT_RESHAPE_GRAD", [dy], [dx])
    return {op.inputs[0]: dx}


def transpose_backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    dx = b.grad_like(op.inputs[0])
    b.emit("TT_TRANSPOSE_GRAD", [dy], [dx], perm=list(perm(b.graph, op)))
    return {op.inputs[0]: dx}


def transpose_grad(graph: Graph, op: Operator, inputs) -> list:
    from ..training_ops import options_of
    p = options_of(op)["perm"]
    return [np.ascontiguousarray(np.transpose(inputs[0], np.argsort(p)))]


def _transpose_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    dy, dx = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    p = o["perm"]
    require(sorted(p) == list(range(len(dy.shape))), index, op,
            f"perm {p} is not a permutation of dy's {len(dy.shape)} axes")
    require(tuple(dx.shape[a] for a in p) == tuple(dy.shape), index, op,
            f"dy {list(dy.shape)} is not dx {list(dx.shape)} transposed by {p}")


register(OpDef("RESHAPE", reshape, check=_check_reshape, backward=reshape_backward))
register(OpDef("TRANSPOSE", transpose, check=_check_transpose, backward=transpose_backward))
register(OpDef("TT_TRANSPOSE_GRAD", transpose_grad, check=tt_check(_transpose_grad_shapes)))
