"""RESHAPE and TRANSPOSE: data movement only, quantization unchanged."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from . import OpDef, register, require


def _check_same_quant(graph: Graph, index: int, op: Operator) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.dtype == y.dtype, index, op, "input and output types differ")
    if x.quant is not None and y.quant is not None:
        require(x.quant.zp == y.quant.zp and
                np.float32(x.quant.scale[0]) == np.float32(y.quant.scale[0]),
                index, op, "input and output quantization differ")


def reshape(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    return [inputs[0].reshape(graph.tensors[op.outputs[0]].shape)]


def perm(graph: Graph, op: Operator) -> tuple[int, ...]:
    return tuple(int(p) for p in np.ravel(graph.tensors[op.inputs[1]].data))


def _check_transpose(graph: Graph, index: int, op: Operator) -> None:
    _check_same_quant(graph, index, op)
    require(graph.tensors[op.inputs[1]].is_constant, index, op, "perm must be constant")


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


register(OpDef("RESHAPE", reshape, check=_check_same_quant, backward=reshape_backward))
register(OpDef("TRANSPOSE", transpose, check=_check_transpose, backward=transpose_backward))
register(OpDef("TT_TRANSPOSE_GRAD", transpose_grad))
