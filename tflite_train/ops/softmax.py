"""SOFTMAX: int8 -> int8 forward (TFLM reference, gemmlowp fixed-point exp and reciprocal)."""
from __future__ import annotations

import math

import numpy as np

from .. import fixedpoint as fp
from ..ir import Graph, Operator
from ..errors import UnsupportedOpError
from . import (OpDef, by_grad, centered, register, require, require_arity, require_int8_io,
               require_options, scalar, ttcheck)
from .accumulate import F32, in_order
from .ttcheck import tt_check

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def params(graph: Graph, op: Operator) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) as PreprocessSoftmaxScaling makes them."""
    x = graph.tensors[op.inputs[0]]
    beta = float(np.float32(op.options.get("beta", 1.0)))
    real = min(beta * x.quant.s * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    m, shift = fp.quantize_multiplier(real)
    radius = math.floor(((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                        * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << shift))
    return m, shift, -radius


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, 1, 1)
    require_options(index, op, "SoftmaxOptions")
    require_int8_io(graph, index, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(len(x.shape) >= 1 and x.shape == y.shape, index, op,
            f"input {list(x.shape)} and output {list(y.shape)} differ")
    require(y.quant.zp == -128 and np.float32(y.quant.s) == np.float32(1 / 256), index, op,
            "int8 softmax output must have scale 1/256 and zero point -128")
    beta = op.options.get("beta")
    require(isinstance(beta, float) and math.isfinite(beta) and beta > 0, index, op,
            f"beta {beta} must be finite and positive")
    # TFLM's Prepare aborts (QuantizeMultiplierGreaterThanOne) unless the input multiplier
    # beta * s_in * 2^(31 - 5) exceeds 1
    require(float(np.float32(beta)) * x.quant.s * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) > 1.0,
            index, op, f"beta {beta:g} times the input scale {x.quant.s:g} is below 2^-26, "
            "which TFLM cannot represent")


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    m, shift, diff_min = params(graph, op)
    x = inputs[0].astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    live = diff >= diff_min
    scaled = fp.multiply_by_quantized_multiplier(diff, m, shift)
    exps = fp.exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    acc = fp.rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS)   # Rescale<12>
    sum_of_exps = fp.wrap32(np.where(live, acc, 0).sum(axis=-1, keepdims=True))
    scale, bits_over_unit = fp.get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    out = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(scale, exps),
                                    exponent) - 128
    out = np.where(live, np.clip(out, -128, 127), -128)
    return [out.astype(np.int8)]




def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    depth = b.graph.tensors[op.outputs[0]].shape[-1]
    if b.hyper.grad == "int8" and depth >= 66000:
        raise UnsupportedOpError(k, op.kind, f"an int8 softmax gradient over {depth} "
                                 "classes could overflow its int32 sums")
    dx = b.grad_like(op.inputs[0])
    b.emit("TT_SOFTMAX_GRAD", [dy, b.saved(op.outputs[0])], [dx])
    return {op.inputs[0]: dx}


def softmax_grad(graph: Graph, op: Operator, inputs) -> list:
    """tt_softmax_grad_f32, float32: p = s * (saved - zp); dx = p * (dy - dot) per row, with
    dot = sum of p * dy over the row in order."""
    q = graph.tensors[op.inputs[1]].quant
    dy = np.asarray(inputs[0], F32)
    p = F32(q.s) * centered(inputs[1], q.zp)
    rows_p, rows_dy = p.reshape(-1, p.shape[-1]), dy.reshape(-1, dy.shape[-1])
    dot = in_order((rows_p * rows_dy).T)
    return [(rows_p * (rows_dy - dot[:, None])).reshape(dy.shape)]


def softmax_shift(depth: int) -> int:
    """The least shift with 255 * 127 * (256 + 255 * depth) < 2^(31 + shift)."""
    bound, shift = 255 * 127 * (256 + 255 * depth), 0
    while bound >> shift >= 1 << 31:
        shift += 1
    return shift


def softmax_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_softmax_grad_s8: with p = saved - zp (scale 1/256), acc = (p * (256 dy - dot)) >>
    shift per row, unit = dy_scale * 2^(shift - 16)."""
    from ..training_ops import options_of
    from .quantgrad import quantize, rounding_state
    q_t = graph.tensors[op.inputs[1]].quant
    dy = inputs[0].astype(np.int64)
    depth = dy.shape[-1]
    p = inputs[1].astype(np.int64) - q_t.zp
    rows_p, rows_dy = p.reshape(-1, depth), dy.reshape(-1, depth)
    dot = (rows_p * rows_dy).sum(axis=1, keepdims=True)
    shift = softmax_shift(depth)
    acc = (rows_p * (256 * rows_dy - dot)) >> shift
    unit = (scalar(inputs[2]) * F32(1.0 / 65536)) * F32(1 << shift)
    q, s = quantize(acc.reshape(dy.shape), unit, rounding_state(options_of(op), state))
    return [q, np.array([s], F32)]


def _grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    dy, saved, dx = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    require(len(dy.shape) >= 1, index, op, "dy must have rank >= 1")
    ttcheck.same_shape(dy, saved, index, op, "dy and the saved output")
    ttcheck.same_shape(dy, dx, index, op, "dy and dx")
    ttcheck.per_tensor(saved, index, op, "the saved output")


register(OpDef("SOFTMAX", forward, check=_check, backward=backward))
register(OpDef("TT_SOFTMAX_GRAD", by_grad(softmax_grad, softmax_grad_s8),
               check=tt_check(_grad_shapes), stateful=True))
