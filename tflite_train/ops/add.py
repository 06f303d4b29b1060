"""ADD: int8 forward (TFLM add.cc: both inputs rescaled to a common 2^20-shifted scale)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from . import (OpDef, fused_activation, register, require, require_activation, require_arity,
               require_int8_io, require_options, saturate_int8)

LEFT_SHIFT = 20     # int8 ADD headroom, as in TFLM


def params(graph: Graph, op: Operator):
    a, b, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    twice_max = 2.0 * float(max(np.float32(a.quant.s), np.float32(b.quant.s)))
    ma = fp.quantize_multiplier(a.quant.s / twice_max)
    mb = fp.quantize_multiplier(b.quant.s / twice_max)
    my = fp.quantize_multiplier(twice_max / ((1 << LEFT_SHIFT) * y.quant.s))
    return ma, mb, my


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, 2, 1)
    require_options(index, op, "AddOptions", required=False)
    require_int8_io(graph, index, op, inputs=(0, 1))
    require_activation(graph, index, op)
    a, b, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        shape = None
    require(shape == tuple(y.shape), index, op,
            f"inputs {list(a.shape)} and {list(b.shape)} do not broadcast to the output "
            f"{list(y.shape)}")
    # TFLM's Prepare aborts (QuantizeMultiplierSmallerThanOneExp) unless this rescale of
    # the 2^20-shifted sum to the output is below 1
    twice_max = 2.0 * float(max(np.float32(a.quant.s), np.float32(b.quant.s)))
    require(twice_max / ((1 << LEFT_SHIFT) * float(np.float32(y.quant.s))) < 1.0, index, op,
            "the output scale is too small for the inputs' (TFLM needs "
            "2 max(s_a, s_b) < 2^20 s_out)")


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    a_t, b_t, y_t = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    (ma, sa), (mb, sb), (my, sy) = params(graph, op)
    a = (inputs[0].astype(np.int64) - a_t.quant.zp) << LEFT_SHIFT
    b = (inputs[1].astype(np.int64) - b_t.quant.zp) << LEFT_SHIFT
    total = (fp.multiply_by_quantized_multiplier(a, ma, sa)
             + fp.multiply_by_quantized_multiplier(b, mb, sb))
    out = fp.multiply_by_quantized_multiplier(total, my, sy) + y_t.quant.zp
    lo, hi = fp.activation_range(fused_activation(op), y_t.quant.s, y_t.quant.zp)
    return [saturate_int8(np.clip(out, lo, hi)).reshape(y_t.shape)]




def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    """Real-valued y = a + b: both inputs receive dy (through the fused activation's mask),
    summed over the axes an input was broadcast along."""
    mask = b.mask(k)
    g = dy
    if mask >= 0:
        g = b.grad_like(op.outputs[0], "grad_masked")
        b.emit("TT_MASK_GRAD", [dy, mask], [g])
    out = {}
    y_shape = b.graph.tensors[op.outputs[0]].shape
    for pos in sorted(wants):
        t = op.inputs[pos]
        if b.graph.tensors[t].shape == y_shape:
            out[t] = g
        else:
            dx = b.grad_like(t)
            b.emit("TT_SUM_GRAD", [g, -1], [dx])
            out[t] = dx
    return out


register(OpDef("ADD", forward, check=_check, backward=backward))
