"""Pre-widened frozen 1x1 filters (tflite_train/codegen/layouts.py, tt_conv2d_wide_s8): the
layout the DSP kernels read, which layers the generated program gives one, and the kernel's
bits against tt_conv2d_s8 on the host (the rig: test_cortex_m7_dsp's edge shapes and
test_cortex_m7_forward; the generated programs: test_codegen)."""
from __future__ import annotations

import numpy as np
import pytest

from tflite_train.codegen import layouts
from tflite_train.runtime import c_forward

# (h, w, ci, co): blocks of 6 pixels with the rows sign-extended in every block (48), with
# tt_dsp_rows6w's widening once a call replaced (24, 40), leftover pixels in blocks of 4, 2
# and 1; blocks of 4 (132 and 256 channels: 8 pixels of them do not fit the staging
# buffer); chunks of the channels (260 and 288: blocks of 6, then of 4) over more than one
# chunk and more than 16 rows (one ROW_BLOCK); one pixel
SHAPES = [(4, 4, 48, 10), (7, 5, 24, 7), (3, 9, 40, 5), (4, 5, 132, 9), (2, 4, 256, 3),
          (4, 4, 260, 18), (3, 5, 288, 4), (1, 1, 48, 6)]


def test_the_layout_is_sxtb16s_lanes():
    """Per group of four weights, [w0, w2, w1, w3] as int16: what SXTB16 and SXTB16 ROR 8
    give from the int8 word, int8's ends included."""
    f = np.array([[-128, 127, -1, 0, 5, -6, 7, -8]], np.int8).reshape(1, 1, 1, 8)
    assert layouts.widened(f).tolist() == [[-128, -1, 127, 0, 5, 7, -6, -8]]
    assert layouts.widened(f).dtype == np.int16
    with pytest.raises(ValueError):
        layouts.widened(np.zeros((2, 1, 1, 6), np.int8))      # not whole groups
    with pytest.raises(ValueError):
        layouts.widened(np.zeros((2, 3, 3, 8), np.int8))      # not 1x1


def test_the_estimate_follows_the_kernels_paths():
    # 8 and 16 channels take the column kernels, a channel count not a multiple of 4 no
    # groups: nothing saved
    assert layouts.saved_instructions(64, 16, 32) == 0
    assert layouts.saved_instructions(64, 50, 32) == 0
    # 2 a group, row and block: of 6 pixels up to 128 channels, of 4 up to 256, then chunks
    assert layouts.saved_instructions(64, 48, 10) == 2 * 12 * 10 * 10
    assert layouts.saved_instructions(64, 160, 10) == 2 * 40 * 10 * 16
    assert layouts.saved_instructions(16, 384, 10) == 2 * 96 * 10 * 3
    # where tt_dsp_rows6w already widens once a call (<= 40 channels, >= 4 blocks a call):
    # that widening, 6 a group and row per call
    assert layouts.saved_instructions(256, 24, 10) == 6 * 6 * 10 * 6


def wide_calls(rng) -> None:
    """tt_conv2d_wide_s8 on SHAPES through c_forward.call (recorded by the rig tests), each
    against tt_conv2d_s8: real quantization (every row in the assembly), dead channels
    among them (shifts of -25, a bias at int32's end: runs of rows, the rest in C), a clamp
    that is not int8's range and an output offset past 255 (the pre-widened rows unread),
    int8's whole range of inputs and weights."""
    for k, (h, w, ci, co) in enumerate(SHAPES):
        x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
        f = rng.integers(-128, 128, (co, 1, 1, ci)).astype(np.int8)
        f[0, 0, 0, :4] = [-128, 127, -128, 127]
        wide = layouts.widened(f)
        for act in ((7, -5, -128, 127), (-128, 127, -128, 127), (3, 300, -128, 127),
                    (0, 2, -20, 60)):
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, *act)
            m = rng.integers(1 << 30, 1 << 31, co).astype(np.int32)
            sh = rng.integers(-12, -6, co).astype(np.int8)
            b = rng.integers(-3000, 3000, co).astype(np.int32)
            if act[0] == -128:                     # dead channels between live ones
                m[1::3], sh[1::3] = (1 << 31) - 1, -25
                b[2::5] = (1 << 31) - 1
            bias = b if k % 3 else None
            assert wide_equals_int8(p, m, sh, x, f, wide, bias), (h, w, ci, co, act)


def wide_equals_int8(p, m, sh, x, f, wide, bias, shape=None) -> bool:
    """Whether tt_conv2d_wide_s8 given `wide` (pre-widened filters, row records or a stem
    packed and widened) writes tt_conv2d_s8's bytes (through c_forward.call: recorded by the
    rig tests); `shape`: the output's, where not the input's pixels."""
    want = np.empty(shape or (*x.shape[:3], f.shape[0]), np.int8)
    got = np.full_like(want, 99)
    dims = [c_forward.Dims(*t.shape) for t in (x, f, want)]
    c_forward.call("tt_conv2d_s8", p, m, sh, dims[0], x, dims[1], f, bias, dims[2], want)
    c_forward.call("tt_conv2d_wide_s8", p, m, sh, dims[0], x, dims[1], f, wide, bias, dims[2],
                   got)
    return bool(np.array_equal(got, want))


def test_wide_filters_equal_int8_ones_on_the_host():
    wide_calls(np.random.default_rng(3))


def test_row_records_are_cols_records_words():
    """Per row [2 bias, the weights doubled in SXTB16's lanes, multiplier, (2 o + 1)
    2^(e - 1), e], the last row's e marked by bit 8: tt_fwd_dsp.c's cols_records."""
    f = np.array([[-128, 127, -1, 0, 5, -6, 7, -8], [1, 2, 3, 4, 5, 6, 7, 8]], np.int8)
    rec = layouts.records(f.reshape(2, 1, 1, 8), np.array([-3, 7]),
                          [1 << 30, (1 << 31) - 1], [-1, -21], -128, 5)
    words = rec.view(np.uint32).reshape(2, 8).astype(np.int64)
    lane = lambda a, b: (a & 0xFFFF) | (b & 0xFFFF) << 16          # noqa: E731
    assert words[0].tolist() == [
        (-6) & 0xFFFFFFFF, lane(-256, -2), lane(254, 0), lane(10, 14), lane(-12, -16),
        1 << 30, (-255 * 1) & 0xFFFFFFFF, 1]
    assert words[1, -3:].tolist() == [(1 << 31) - 1, (-255 << 20) & 0xFFFFFFFF, 21 | 256]
    assert rec.dtype == np.int16 and rec.size == 2 * (8 // 2 + 4) * 2
    with pytest.raises(ValueError):
        layouts.records(np.zeros((3, 1, 1, 8), np.int8), None, [1 << 30] * 3, [-1] * 3, 0, 0)
    with pytest.raises(ValueError):
        layouts.records(np.zeros((2, 1, 1, 12), np.int8), None, [1 << 30] * 2, [-1] * 2, 0,
                        0)


# (h, w, ci, co): 8 and 16 channels, rows a multiple of 8 (the 8-row loops, MobileNetV2's
# 8 -> 48 and 16 -> 96 expansions, one pass past the staging buffer's 64 / 42 rows) or not
# (2 a loop), one column and many
RECORD_SHAPES = [(1, 64, 8, 48), (1, 64, 16, 96), (3, 5, 8, 10), (1, 1, 16, 2),
                 (2, 7, 16, 66), (1, 32, 8, 130)]
# the same with output offset -128 for the one-shift records: MCUNet's 16 -> 48 (past the
# staging buffer's 42 rows) and 8 -> 32, rows the one-shift loops do not take (8 of 8
# elements, 10 of 16: plain records), one column
ONE_SHIFT_RECORD_SHAPES = [(1, 64, 8, 48), (1, 64, 16, 96), (4, 8, 16, 48), (3, 4, 8, 32),
                           (2, 3, 8, 8), (3, 5, 16, 10), (1, 1, 16, 8)]


def one_multiply_params(rng, co):
    """Multipliers, shifts and a bias of co channels that all requantize in the assembly's
    one-multiply form, its corners included: the multiplier's ends (2^30, 2^31 - 1), the
    shift's (-1, -21), the bias's (+-(2^28 - 1))."""
    m = rng.integers(1 << 30, 1 << 31, co).astype(np.int32)
    sh = rng.integers(-12, -6, co).astype(np.int8)
    b = rng.integers(-3000, 3000, co).astype(np.int32)
    m[:2], sh[:2] = [1 << 30, (1 << 31) - 1], [-1, -21]
    b[-2:] = [(1 << 28) - 1, 1 - (1 << 28)]
    return m, sh, b


def one_shift_params(rng, co, ci, input_offset):
    """one_multiply_params for the one-shift form (layouts.one_shift): shifts -4 to -10,
    both ends among them, and a bias at the scaled sums' bound for s = 7 (|2 bias| +
    2 ci (128 + |input_offset|) 128 < 2^24) in rows 2 and 3 (of the rows there are)."""
    m, _, b = one_multiply_params(rng, co)
    sh = rng.integers(-10, -3, co).astype(np.int8)
    sh[:4] = [-4, -10, -4, -4][:co]
    b[-2:] = rng.integers(-3000, 3000, 2)
    bound = (1 << 23) - ci * (128 + abs(input_offset)) * 128 - 1
    b[2:4] = [bound, -bound][:max(co - 2, 0)]
    return m, sh, b


def record_calls(rng) -> None:
    """tt_conv2d_wide_s8 given row records (layouts.records) on RECORD_SHAPES through
    c_forward.call (recorded by the rig tests), each against tt_conv2d_s8: every row in the
    assembly (the records' condition), the one-multiply form's corners (multipliers 2^30 and
    2^31 - 1, shifts -1 and -21, biases at +-(2^28 - 1)), output offsets -128 (the _low
    loops), -5 and 255, with and without a bias, int8's whole range of inputs."""
    for k, (h, w, ci, co) in enumerate(RECORD_SHAPES):
        x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
        f = rng.integers(-128, 128, (co, 1, 1, ci)).astype(np.int8)
        f[0, 0, 0, :4] = [-128, 127, -128, 127]
        for out_off in (-128, -5, 255):
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, 11, out_off, -128, 127)
            m, sh, b = one_multiply_params(rng, co)
            bias = b if (k + out_off) % 2 else None
            wide = layouts.records(f, bias, m, sh, out_off, 11)
            assert wide_equals_int8(p, m, sh, x, f, wide, bias), (h, w, ci, co, out_off)


def one_shift_record_calls(rng) -> None:
    """record_calls for the one-shift records (layouts.one_shift) on
    ONE_SHIFT_RECORD_SHAPES, output offset -128: shifts -4 to -10, a bias at the scaled
    bound, input offsets 11 and -128, with and without a bias; the form checked to be the
    one-shift one exactly where the rows a loop allow it."""
    for k, (h, w, ci, co) in enumerate(ONE_SHIFT_RECORD_SHAPES):
        x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
        f = rng.integers(-128, 128, (co, 1, 1, ci)).astype(np.int8)
        f[0, 0, 0, :4] = [-128, 127, -128, 127]
        io = -128 if k % 2 else 11
        p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, io, -128, -128, 127)
        m, sh, b = one_shift_params(rng, co, ci, io)
        bias = None if k == 3 else b
        wide = layouts.records(f, bias, m, sh, -128, io)
        form = not wide.view(np.uint32).reshape(co, -1)[0, -1] & 255
        assert form == (co % layouts.ONE_SHIFT_ROWS[ci] == 0), (h, w, ci, co)
        assert wide_equals_int8(p, m, sh, x, f, wide, bias), (h, w, ci, co)


def test_one_shift_records_are_records_e_words():
    """The one-shift form (tt_fwd_dsp.c: records_e on cols_records' record): 2 bias and
    each weight lane times 2^s, s = 11 - e, the multiplier, -255 2^10 + 2^(s - 1), then 0
    (256 in the last row); plain records where one row's e or bias, the output offset or
    the rows a loop do not allow it (e 3 or 11, the bound 2^(s + 1) (|bias| + sums) <
    2^31 at and one past it)."""
    f = np.zeros((16, 1, 1, 8), np.int8)
    f[0, 0, 0] = [-128, 127, -1, 0, 5, -6, 7, -8]
    sh = np.full(16, -4, np.int8)
    sh[0] = -10
    bias = np.zeros(16, np.int64)
    bias[0] = -3
    sums = 8 * (128 + 20) * 128
    rec = layouts.records(f, bias, [1 << 30] * 16, sh, -128, -20)
    words = rec.view(np.uint32).reshape(16, 8).astype(np.int64)
    lane = lambda a, b: (a & 0xFFFF) | (b & 0xFFFF) << 16          # noqa: E731
    assert words[0].tolist() == [(-6 << 1) & 0xFFFFFFFF, lane(-512, -4), lane(508, 0),
                                 lane(20, 28), lane(-24, -32), 1 << 30,
                                 (-255 * 1024 + 1) & 0xFFFFFFFF, 0]
    assert words[1].tolist() == [0] * 5 + [1 << 30, (-255 * 1024 + 64) & 0xFFFFFFFF, 0]
    assert words[15, -1] == 256
    plain = lambda r: bool(r.view(np.uint32).reshape(16, 8)[0, -1] & 255)   # noqa: E731
    for e, b, out_off, co in ((4, 0, -128, 16), (10, 0, -128, 16), (3, 0, -128, 16),
                              (11, 0, -128, 16), (4, 0, -127, 16), (4, 0, -128, 8),
                              (4, (1 << 23) - sums - 1, -128, 16),
                              (4, (1 << 23) - sums, -128, 16)):
        s2 = sh.copy()
        s2[5] = -e
        b2 = bias.copy()
        b2[7] = -b
        got = plain(np.resize(layouts.records(f[:co], b2[:co], [1 << 30] * co, s2[:co],
                                              out_off, -20), 16 * 16))
        assert got == (not (4 <= e <= 10) or out_off != -128 or co % 16 > 0 or
                       2 * b + 2 * sums << 7 >= 1 << 31), (e, b, out_off, co)


def test_row_records_equal_int8_filters_on_the_host():
    record_calls(np.random.default_rng(5))
    one_shift_record_calls(np.random.default_rng(6))


# (h, w, co, pad): stems of 3 channels, 4x4/2 with a zero last row and column (the
# importer's grown 3x3/2), output rows of 8 (a block of 6 and 2 left), 32 (5 blocks of 6 and
# 2 left), 5 (blocks of 4 and 1) and 1 pixels, 16, 8 and 5 output channels (5 * 28 bytes:
# the packed head's 4-byte pad before the widened rows), padded or not
STEM_SHAPES = [(16, 16, 16, 1), (4, 64, 16, 1), (10, 9, 8, 0), (3, 3, 16, 1), (6, 7, 5, 1)]


def stem_filter(rng, co) -> np.ndarray:
    f = rng.integers(-128, 128, (co, 4, 4, 3)).astype(np.int8)
    f[:, 3] = 0
    f[:, :, 3] = 0
    f[0, :3, :3] = [[-128, 127, -128], [127, -128, 127], [-128, -128, 127]]
    return f


def stem_calls(rng) -> None:
    """tt_conv2d_wide_s8 given a stem's filter packed and widened (layouts.stem_wide) on
    STEM_SHAPES through c_forward.call (recorded by the rig tests), each against
    tt_conv2d_s8: every row in the assembly (stem_wide's condition; the one-multiply form's
    corners), output offsets -128 (the _low loops), -5 and 255, with and without a bias,
    and a clamp that is not int8's range (the packed filter read, its widened rows not)."""
    for k, (h, w, co, pad) in enumerate(STEM_SHAPES):
        x = rng.integers(-128, 128, (1, h, w, 3)).astype(np.int8)
        f = stem_filter(rng, co)
        oh, ow = (h + 2 * pad - 4) // 2 + 1, (w + 2 * pad - 4) // 2 + 1
        for out_off, act in ((-128, (-128, 127)), (-5, (-128, 127)), (255, (-128, 127)),
                             (3, (0, 90))):
            p = c_forward.ConvParams(2, 2, 1, 1, pad, pad, 11, out_off, *act)
            m, sh, b = one_multiply_params(rng, co)
            bias = b if (k + out_off) % 2 else None
            y = np.zeros((1, oh, ow, co), np.int8)
            assert wide_equals_int8(p, m, sh, x, f, layouts.stem_wide(f), bias, y.shape), \
                (h, w, co, out_off)


@pytest.mark.parametrize("co, head", [(2, 56), (3, 88)])
def test_a_stems_packed_filter_is_stem_pack_filters_words(co, head):
    """Rows 0-2's bytes 0-7, then [row 1's byte 8, 0, row 0's, row 2's] (tt_fwd_conv.c:
    stem_pack_filter), padded to 8 bytes (3 channels: 84 bytes and 4 of zeros), then the
    same rows in SXTB16's lanes."""
    f = stem_filter(np.random.default_rng(1), co)
    wide = layouts.stem_wide(f)
    rows = f.reshape(co, 4, 12)
    head_bytes = wide[:head // 2].view(np.int8)
    packed = head_bytes[:co * 28].reshape(co, 28)
    for c in range(co):
        assert packed[c].tolist() == [*rows[c, 0, :8], *rows[c, 1, :8], *rows[c, 2, :8],
                                      rows[c, 1, 8], 0, rows[c, 0, 8], rows[c, 2, 8]]
    assert not head_bytes[co * 28:].any()
    assert wide[head // 2:].tolist() == \
        layouts.widened(packed.reshape(co, 1, 1, 28)).ravel().tolist()
    assert wide.dtype == np.int16 and wide.size == head // 2 + co * 28
    assert layouts.stem_packs(f)
    for bad in ((0, 3, 0), (0, 1, 3), (slice(None), 2, slice(None))):
        g = f.copy()
        g[bad] = 1 if bad[0] == 0 else 0           # a grown tap not zero; no third row
        assert not layouts.stem_packs(g)
        with pytest.raises(ValueError):
            layouts.stem_wide(g)


def test_packed_stems_equal_int8_filters_on_the_host():
    stem_calls(np.random.default_rng(7))
