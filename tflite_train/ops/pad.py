"""PAD / PADV2: constant padding; PAD fills with the output zero point (real 0)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from . import OpDef, register, require, require_int8_io


def paddings(graph: Graph, op: Operator) -> np.ndarray:
    return graph.tensors[op.inputs[1]].data.reshape(-1, 2).astype(np.int64)


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_int8_io(graph, index, op)
    require(graph.tensors[op.inputs[1]].is_constant, index, op, "paddings must be constant")
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.quant.zp == y.quant.zp and np.float32(x.quant.s) == np.float32(y.quant.s),
            index, op, "input and output quantization differ")


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    y_t = graph.tensors[op.outputs[0]]
    value = y_t.quant.zp
    if op.kind == "PADV2" and len(inputs) > 2 and inputs[2] is not None:
        value = int(np.ravel(inputs[2])[0])
    pads = paddings(graph, op)
    return [np.pad(inputs[0], [tuple(p) for p in pads], constant_values=value)]




def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    dx = b.grad_like(op.inputs[0])
    before = [int(p) for p in paddings(b.graph, op)[:, 0]]
    b.emit("TT_PAD_GRAD", [dy], [dx], before=before)
    return {op.inputs[0]: dx}


def pad_grad(graph: Graph, op: Operator, inputs) -> list:
    from ..training_ops import options_of
    before = options_of(op)["before"]
    shape = graph.tensors[op.outputs[0]].shape
    index = tuple(slice(s, s + n) for s, n in zip(before, shape))
    return [np.ascontiguousarray(inputs[0][index])]


register(OpDef("PAD", forward, check=_check, backward=backward))
register(OpDef("PADV2", forward, check=_check, backward=backward))
register(OpDef("TT_PAD_GRAD", pad_grad))
