"""TFLite's integer arithmetic, vectorized and bit-exact.

Everything mirrors the code paths TFLM's reference kernels take in the pinned wheel, which is
built WITHOUT `TFLITE_SINGLE_ROUNDING`: `MultiplyByQuantizedMultiplier` is the double-rounding
gemmlowp form (saturating rounding doubling high multiply, then rounding right shift).

Values are carried as int64 numpy arrays holding int32 quantities, so that products of two
int32 values (|ab| < 2^62) never overflow; `wrap32` reproduces C's int32 wrap-around where
the C code relies on it.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap32(x):
    """int32 two's-complement wrap of int64 values."""
    return ((np.asarray(x, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def round_half_away(x):
    """C's std::round / roundf: halves away from zero (numpy's rint rounds to even)."""
    x = np.asarray(x)
    a = np.abs(x)
    r = np.floor(a)
    r = r + (a - r >= 0.5)        # a - floor(a) is exact, unlike floor(a + 0.5)
    return np.copysign(r, x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """double -> (Q31 multiplier, shift): TFLite's QuantizeMultiplier (frexp + std::round)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    return (np.array([m for m, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64))


def _trunc_div_pow2(v, bits: int):
    """C integer division by 2^bits (truncation toward zero) of int64 values."""
    return np.where(v >= 0, v >> bits, -((-v) >> bits))


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH) on int32 values."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div_pow2(ab + nudge, 31)
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, out)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: right shift rounding half away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier(int32 x, ...), double-rounding version."""
    x = np.asarray(x, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrap32(x << left), multiplier), right)


def saturating_rounding_multiply_by_pot(x, exponent: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32 raw values."""
    x = np.asarray(x, np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    out = x << exponent
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def count_leading_zeros32(x):
    """Leading zero bits of non-negative values as uint32 (32 for 0)."""
    x = np.asarray(x, np.int64)
    _, e = np.frexp(x.astype(np.float64))       # exact: x < 2^53
    return np.where(x == 0, 32, 32 - e).astype(np.int64)


def activation_range(activation: int, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation's clamp in the int domain."""
    def q(value: float) -> int:
        # Quantize() in kernel_util.cc: float division, roundf
        f = np.float32(value) / np.float32(scale)
        return zero_point + int(round_half_away(np.float32(f)))
    if activation == 0:                                   # NONE
        return qmin, qmax
    if activation == 1:                                   # RELU
        return max(qmin, q(0.0)), qmax
    if activation == 3:                                   # RELU6
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == 2:                                   # RELU_N1_TO_1
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"fused activation {activation} not supported")


# --- gemmlowp fixed-point exp and reciprocal, as used by the int8 softmax -----------------

def _fp_mul(a, b):
    return saturating_rounding_doubling_high_mul(a, b)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out."""
    constant_term = 1895147668          # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))           # a + 1/8
    x2 = _fp_mul(x, x)
    x3 = _fp_mul(x2, x)
    x4 = _fp_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap32(_fp_mul(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term + _fp_mul(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a, integer_bits: int):
    """exp(a) for a <= 0 given as raw Q(integer_bits).(31-integer_bits); result Q0.31."""
    a = np.asarray(a, np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
                                 (1, 290630308), (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, _fp_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a):
    """1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson, 3 steps)."""
    a = np.asarray(a, np.int64)
    s = a + INT32_MAX                                     # RoundingHalfSum(a, One())
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))
    x = wrap32(1515870810 + _fp_mul(half_denominator, -1010580540))   # Q2.29
    for _ in range(3):
        half_denominator_times_x = _fp_mul(half_denominator, x)
        one_minus = wrap32((1 << 29) - half_denominator_times_x)
        x = wrap32(x + saturating_rounding_multiply_by_pot(_fp_mul(x, one_minus), 2))
    return saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal: (Q0.31 reciprocal scale, num_bits_over_unit)."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = (((x & 0xFFFFFFFF) << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x_for_x_in_0_1(wrap32(shifted)), num_bits_over_unit
