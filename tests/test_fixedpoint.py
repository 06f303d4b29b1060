"""The vectorized fixed-point helpers against scalar transcriptions of the C code written
with Python's unbounded ints (C division truncates toward zero; shifts are arithmetic)."""

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
