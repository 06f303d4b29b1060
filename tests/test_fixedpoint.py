"""The vectorized fixed-point helpers against scalar transcriptions of the C code written
with Python's unbounded ints (C division truncates toward zero; shifts are arithmetic)."""

import math

import numpy as np
import pytest

from tflite_train import fixedpoint as fp


def c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm_ref(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def rdbp_ref(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def mbqm_ref(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return rdbp_ref(srdhm_ref(x * (1 << left), m), right)


def test_srdhm_and_rdbp_match_scalar_reference():
    rng = np.random.default_rng(1)
    a = rng.integers(-(1 << 31), 1 << 31, 2000)
    b = rng.integers(-(1 << 31), 1 << 31, 2000)
    a[:3] = [-(1 << 31), 0, (1 << 31) - 1]
    b[:3] = [-(1 << 31), 5, -(1 << 31)]
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    assert list(got) == [srdhm_ref(int(x), int(y)) for x, y in zip(a, b)]
    e = rng.integers(0, 32, 2000)
    got = fp.rounding_divide_by_pot(a, e)
    assert list(got) == [rdbp_ref(int(x), int(k)) for x, k in zip(a, e)]


def test_multiply_by_quantized_multiplier_matches_scalar_reference():
    rng = np.random.default_rng(2)
    x = rng.integers(-(1 << 20), 1 << 20, 3000)
    m = rng.integers(1 << 30, 1 << 31, 3000)
    s = rng.integers(-20, 8, 3000)
    got = fp.multiply_by_quantized_multiplier(x, m, s)
    assert list(got) == [mbqm_ref(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)]


@pytest.mark.parametrize("real", [0.5, 0.75, 1e-3, 3.2e-5, 1.0, 1.5, 123.456, 2.0**-40])
def test_quantize_multiplier_represents_the_real_value(real):
    m, shift = fp.quantize_multiplier(real)
    if real < 2.0**-32:                          # flushed to zero like TFLM
        assert (m, shift) == (0, 0)
        return
    assert (1 << 30) <= m < (1 << 31)
    assert abs(m * 2.0**(shift - 31) - real) <= real * 2.0**-30


def test_quantize_multiplier_rounds_half_away_from_zero():
    # q * 2^31 exactly halfway between two integers
    real = (2**30 + 0.5) / 2**31
    assert fp.quantize_multiplier(real) == (2**30 + 1, 0)


def test_round_half_away():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994, -1.2])
    assert list(fp.round_half_away(x)) == [1, 2, 3, -1, -3, 0, -1]


def test_exp_and_reciprocal_are_close_to_real_math():
    # Not the exactness check (that is the softmax vs TFLM test); a sanity check of the
    # transcription: Q5.26 exp and the Q0.31 reciprocal against libm.
    a = -np.arange(0, 31 << 26, 1 << 22, dtype=np.int64)
    got = fp.exp_on_negative_values(a, 5) / 2.0**31
    assert np.allclose(got, np.exp(a / 2.0**26), atol=2e-6)
    x = np.arange(0, 1 << 31, 1 << 24, dtype=np.int64)
    got = fp.one_over_one_plus_x_for_x_in_0_1(x) / 2.0**31
    assert np.allclose(got, 1 / (1 + x / 2.0**31), atol=1e-7)


def test_clz():
    x = np.array([0, 1, 2, 3, 1 << 20, (1 << 31) - 1, 1 << 31])
    assert list(fp.count_leading_zeros32(x)) == [32, 31, 30, 30, 11, 1, 0]
    assert all(32 - int(v).bit_length() == c
               for v, c in zip(x, fp.count_leading_zeros32(x)))


def test_quantize_multiplier_carries_a_mantissa_that_rounds_up_to_one():
    """q * 2^31 rounding to 2^31 (q just below 1) becomes 2^30 with the exponent one up,
    as TFLite's QuantizeMultiplier does."""
    for real, shift in (((2**31 - 0.25) / 2**31, 1), ((2**31 - 0.25) / 2**29, 3)):
        assert fp.quantize_multiplier(real) == (1 << 30, shift)


# gemmlowp's fixed-point exp and reciprocal (fixedpoint.h), transcribed with Python ints;
# every constant from its definition (gemmlowp's GEMMLOWP_CHECKED_FIXEDPOINT_CONSTANT checks
# the same: the raw value is the real one rounded to the format), none copied.
def wrap(x: int) -> int:
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


def srmpot_ref(x: int, e: int) -> int:
    """SaturatingRoundingMultiplyByPOT<e>."""
    if e <= 0:
        return rdbp_ref(x, -e) if e else x
    threshold = (1 << (31 - e)) - 1
    return (1 << 31) - 1 if x > threshold else -(1 << 31) if x < -threshold else x << e


def q31(real: float) -> int:
    return round(real * 2**31)


def exp_interval_ref(a: int) -> int:
    """exp on [-1/4, 0): Taylor around -1/8."""
    x = wrap(a + (1 << 28))
    x2 = srdhm_ref(x, x)
    x3 = srdhm_ref(x2, x)
    x4_over_4 = srmpot_ref(srdhm_ref(x2, x2), -2)
    poly = srmpot_ref(wrap(srdhm_ref(wrap(x4_over_4 + x3), q31(1 / 3)) + x2), -1)
    return wrap(q31(math.exp(-1 / 8)) + srdhm_ref(q31(math.exp(-1 / 8)), wrap(x + poly)))


def exp_ref(a: int, integer_bits: int) -> int:
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = wrap((a & (quarter - 1)) - quarter)
    result = exp_interval_ref(srmpot_ref(a_mod, integer_bits))
    remainder = wrap(a_mod - a)
    for e in range(-2, 5):
        if integer_bits > e and remainder & (1 << (frac + e)):
            result = srdhm_ref(result, q31(math.exp(-2.0**e)))
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return (1 << 31) - 1 if a == 0 else result


def reciprocal_ref(a: int) -> int:
    """1 / (1 + a), a in [0, 1): Newton-Raphson from 48/17 - 32/17 d, in Q2.29."""
    s = a + (1 << 31) - 1                          # RoundingHalfSum(a, One())
    half_d = c_div(s + (1 if s >= 0 else -1), 2)
    x = wrap(round(48 / 17 * 2**29) + srdhm_ref(half_d, round(-32 / 17 * 2**29)))
    for _ in range(3):
        one_minus = wrap((1 << 29) - srdhm_ref(half_d, x))
        x = wrap(x + srmpot_ref(srdhm_ref(x, one_minus), 2))
    return srmpot_ref(x, 1)


@pytest.mark.parametrize("integer_bits", [5, 6])
def test_exp_on_negative_values_is_gemmlowps(integer_bits):
    """Bit for bit (the softmax's exactness rests on it; a changed constant moves results by
    far less than an int8 step, which the forward tests cannot see). Integer bits 5 is the
    softmax's; 6 reaches the clamp below -32."""
    rng = np.random.default_rng(integer_bits)
    a = np.concatenate([-rng.integers(0, 1 << 31, 3000), [0, -1, -(1 << 31), -(1 << 30)],
                        -(np.arange(0, 40) << (31 - integer_bits))])
    got = fp.exp_on_negative_values(a, integer_bits)
    assert list(got) == [exp_ref(int(v), integer_bits) for v in a]


def test_reciprocal_is_gemmlowps():
    a = np.concatenate([np.random.default_rng(3).integers(0, 1 << 31, 3000),
                        [0, 1, (1 << 31) - 1, 1 << 30]])
    got = fp.one_over_one_plus_x_for_x_in_0_1(a)
    assert list(got) == [reciprocal_ref(int(v)) for v in a]
