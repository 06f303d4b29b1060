"""Int8 gradients (`augment --grad int8`): the quantization rule and the layers' int16
weight-scale multipliers, exactly as micro_kernels/src/tt_grad_quant.c computes them
(include/tt_kernels.h and schema/training_ops.json state the rule), shared by the numpy
kernels of every op that makes an int8 gradient.

Accumulators are exact integers (int64 here, int32 in C, where every kernel bounds them
below 2^31), so the order of a sum does not matter and numpy may use any reduction; float32
enters only through per-tensor and per-channel scale factors, computed in the C kernels'
order of float32 operations.
"""
from __future__ import annotations

import numpy as np

from ..training_ops import seed_state, xorshift32_stream

F32 = np.float32
GRAD_MAX_SHIFT = 8              # TT_GRAD_MAX_SHIFT
ADD_GRAD_SHIFT = 14             # TT_ADD_GRAD_SHIFT
MAX_POSITIONS = 66311           # TT_GRAD_MAX_POSITIONS: 66311 * 127 * 255 < 2^31
LOSS_FIXED_BITS = 30            # the loss's acc_i = (int32)(d_i * 2^30)


def grad_shift(terms: int) -> int:
    """tt_grad_shift: the largest k <= 8 with terms * 127 * 128 * 2^k < 2^31, or -1."""
    if terms < 1:
        return -1
    for k in range(GRAD_MAX_SHIFT, -1, -1):
        if terms * 127 * 128 << k < 1 << 31:
            return k
    return -1


def multiplier(scale, scale_max, shift: int) -> int:
    """tt_grad_multiplier_s16: round(2^shift * scale / scale_max) in float32, in C's order."""
    scale, scale_max = F32(scale), F32(scale_max)
    if not (scale_max > 0 and scale > 0):
        return 0
    if scale >= scale_max:
        return 1 << shift
    return int((scale / scale_max) * F32(1 << shift) + F32(0.5))


def multipliers(scales, shift: int) -> np.ndarray:
    scales = np.asarray(scales, F32).ravel()
    top = scales.max()
    return np.array([multiplier(s, top, shift) for s in scales], np.int16)


def unit(scale_max, shift: int) -> np.float32:
    """tt_grad_unit: scale_max * 2^-shift in float32."""
    return F32(scale_max) * (F32(1) / F32(1 << shift))


def layer_multipliers(scales, terms: int) -> tuple[np.ndarray, np.float32]:
    """(w_mult, w_unit) of a layer's input gradient whose dx elements sum at most `terms`
    products; ValueError when no shift keeps them below 2^31."""
    k = grad_shift(terms)
    if k < 0:
        raise ValueError(f"an int8 input gradient of {terms} terms per element could "
                         "overflow its int32 sums")
    scales = np.asarray(scales, F32).ravel()
    return multipliers(scales, k), unit(scales.max(), k)


def layer_unit(scales, terms: int) -> np.float32:
    """w_unit of a layer's input gradient (the multipliers' real unit)."""
    return unit(np.asarray(scales, F32).max(), grad_shift(terms))


def rounding_state(options: dict, state: dict | None) -> dict | None:
    """The op's stream when it rounds stochastically (its per-op state dict, "rng" set from
    the seed at first use, as tt_update_state_init does), else None: round to nearest."""
    if not options.get("rounding"):
        return None
    state.setdefault("rng", seed_state(options["seed"]))
    return state


def quantize(acc, unit_, rounding: dict | None = None) -> tuple[np.ndarray, np.float32]:
    """THE RULE: (q int8, scale float32) of exact accumulators `acc` whose real values are
    unit_ * acc. `rounding`: None to round to nearest, or the op's state dict (its "rng"
    advances by one draw per element, its "t" by one per call)."""
    acc = np.asarray(acc, np.int64)
    amax = int(np.abs(acc).max()) if acc.size else 0
    if rounding is not None:
        rounding["t"] = rounding.get("t", 0) + 1
    if amax <= 127:
        return acc.astype(np.int8), F32(unit_)
    shift = amax.bit_length() + 23
    r = (127 << shift) // amax
    if rounding is not None:
        x, rounding["rng"] = xorshift32_stream(rounding["rng"], acc.size)
        bias = (x >> 8).astype(np.int64).reshape(acc.shape) << (shift - 24)
    else:
        bias = np.int64(1) << (shift - 1)
    q = (acc * r + bias) >> shift
    return q.astype(np.int8), (F32(unit_) * F32(amax)) / F32(127)


def dequantize(q, scale) -> np.ndarray:
    """The real values of an int8 gradient (float64, for checks)."""
    return np.asarray(q, np.float64) * float(np.ravel(scale)[0])
