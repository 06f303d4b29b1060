"""PAD / PADV2: constant padding; PAD fills with the output zero point (real 0)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from . import OpDef, register, require, require_arity, require_int8_io, require_same_quant
from .ttcheck import tt_check


def paddings(graph: Graph, op: Operator) -> np.ndarray:
    return graph.tensors[op.inputs[1]].data.reshape(-1, 2).astype(np.int64)


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, (2, 3) if op.kind == "PADV2" else 2, 1)
    require_int8_io(graph, index, op)
    p = graph.tensors[op.inputs[1]]
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(p.is_constant and p.dtype == "int32", index, op, "paddings must be constant int32")
    require(1 <= len(x.shape) <= 5, index, op, f"input rank {len(x.shape)}; TFLM pads 1-D "
                                               "to 5-D")
    require(p.shape == (len(x.shape), 2), index, op,
            f"paddings {list(p.shape)} are not [{len(x.shape)}, 2]")
    pads = paddings(graph, op)
    require(bool(np.all(pads >= 0)), index, op, "negative paddings")
    want = tuple(int(n + b + a) for n, (b, a) in zip(x.shape, pads))
    require(want == tuple(y.shape), index, op, f"output {list(y.shape)} is not the padded "
                                               f"input {list(want)}")
    require_same_quant(graph, index, op)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        v = graph.tensors[op.inputs[2]]
        require(v.dtype == "int8" and v.size == 1 and v.quant is not None
                and v.quant.zp == y.quant.zp and np.float32(v.quant.s) == np.float32(y.quant.s),
                index, op, "the constant value must be one int8 quantized as the output")


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


def _grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """dx [dims] sits in dy at `before` on every axis."""
    dy, dx = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    before = o["before"]
    require(len(before) == len(dy.shape) == len(dx.shape), index, op,
            f"before {before}, dy {list(dy.shape)} and dx {list(dx.shape)} need one rank")
    require(all(0 <= b and b + n <= m for b, n, m in zip(before, dx.shape, dy.shape)),
            index, op, f"dx {list(dx.shape)} does not fit in dy {list(dy.shape)} at {before}")


register(OpDef("PAD", forward, check=_check, backward=backward))
register(OpDef("PADV2", forward, check=_check, backward=backward))
register(OpDef("TT_PAD_GRAD", pad_grad, check=tt_check(_grad_shapes)))
