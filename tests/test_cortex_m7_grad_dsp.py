"""The Cortex-M DSP versions of the int8-gradient kernels (micro_kernels/src/tt_grad_dsp.h:
the input and weight gradients of pointwise layers, the bias gradient's sums; the save
mask's SIMD bytes; the updates' FPv5 arithmetic) against the portable C99 ones, bit for
bit.

A Cortex-M7 build compiles the DSP versions (SMLAD, SXTB16); -DTT_PORTABLE, or a core
without the DSP extension, the portable ones. The reference is the host build (portable C on
x86): every call below is made there and recorded (test_cortex_m7's recorder), then replayed
on the rig (QEMU mps2-an500) in both Cortex-M7 builds, which must give the host's bytes
(outputs, scales, random streams, and untouched inputs). The calls are the edge shapes the
DSP code treats specially: channel counts that are not multiples of 2, 4 or 8 (a partial dy
word, a partial block of staged columns), output-channel counts that shrink the staged block
to 4, 2 and 1 columns or leave the buffer (portable), split filters at every alignment of
the seam, masks whose bits start mid-byte, gradients of -128 and weights of -128 at the
largest multiplier (wm = -32768), multipliers outside [0, 256] (portable), one and two
passes, nearest and stochastic rounding (the draws of dx's row-major order), calls of 1-3
rows (the weights read without staging: test_unstaged_rows_equal_portable's shapes too), and
1x1 layers that are not pointwise (stride 2, padding: portable); for the
weight gradients and fused updates, weight_grad_calls says which. Whole int8-gradient training steps
run through the DSP build in test_cortex_m7 (the rig's default build) against the host.
"""
from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess

import numpy as np

import test_cortex_m7 as rig
from conftest import require_tool
from tflite_train.runtime import c_kernels

DSP_SOURCES = [c_kernels.ROOT / "src" / f"tt_{family}_dsp.c"
               for family in ("input_grad", "input_grad_rows", "param_grad")]
REAL = c_kernels.library()


def i8(a):
    return rig_p(a, C.c_int8)


def rig_p(a, ctype):
    return c_kernels._p(a, ctype)


def multipliers(rng, co: int, terms: int, special: bool) -> tuple[np.ndarray, float]:
    """The layer's int16 multipliers and unit, as augment makes them (tt_grad_shift,
    tt_grad_multiplier_s16), from random per-channel scales; `special` puts the largest
    (2^k), 0, and -- for a small layer -- values outside [0, 256] among them."""
    lib = REAL                                     # not recorded: computed on the host
    k = lib.tt_grad_shift(terms)
    scales = rng.uniform(0.001, 0.05, co).astype(np.float32)
    top = float(scales.max())
    mult = np.array([lib.tt_grad_multiplier_s16(C.c_float(s), C.c_float(top), k)
                     for s in scales], np.int16)
    if special:
        mult[:: 3] = 1 << k
        mult[1:: 5] = 0
    return mult, float(lib.tt_grad_unit(C.c_float(top), k))


def dy_of(rng, shape, sparse: bool) -> np.ndarray:
    dy = rng.integers(-128, 128, shape).astype(np.int8)
    if sparse:                                      # small sums: the rule's exact case too
        dy[rng.random(shape) < 0.97] = 0
    return dy


def kept_splits(positions: int, seed: int) -> tuple[int, ...]:
    """Scratch positions of an int8 input gradient's forms: two passes keeping only dx's
    quarter (0), keeping more in a scratch (a third of the positions, or all but one:
    everything kept in two places, no second pass), one pass (all of them)."""
    return (0, max(1, positions // 3) if seed % 2 else max(1, positions - 1), positions)


def input_grad_variants(mask: np.ndarray, dx_shape, seed: int, steps: int):
    """The ways an int8 input gradient runs: with or without the mask, rounded to nearest or
    stochastically, in two passes or one (an int32 scratch); and stochastically, masked for
    odd seeds, in two passes keeping part of the accumulators in a scratch (kept_splits; one
    such call a layer keeps the rig program within its flash). Yields each call's last
    arguments, fresh: mask, dx, dx_scale, random stream, scratch and its positions (the
    generator keeps them alive through the call)."""
    positions = int(np.prod(dx_shape[:-1]))
    for masked in (False, True):
        for stochastic in (False, True):
            splits = kept_splits(positions, seed)
            if not stochastic or masked != bool(seed % 2):
                splits = (splits[0], splits[2])
            for kept in splits:
                dx = np.zeros(dx_shape, np.int8)
                scale = np.zeros(1, np.float32)
                state = c_kernels.UpdateState(seed, steps)
                scratch = np.zeros(kept * dx_shape[-1], np.int32) if kept else None
                yield (rig_p(mask if masked else None, C.c_uint8), i8(dx),
                       rig_p(scale, C.c_float), C.byref(state) if stochastic else None,
                       rig_p(scratch, C.c_int32), kept)



# --- the optimistic pass (tt_input_grad.c input_grad_s8): designed calls -----------------------

OPTIMISTIC_CASES = ("probed", "one_above", "twice", "twice_masked", "kept_max", "equal_rows",
                    "equal_rows_one_pass", "equal_but_last", "equal_but_last_byte")


def optimistic_case(case: str, rng, col: int):
    """A fully connected call of 32 positions (16 outputs, 24 input channels: blocks of 8
    with their rows' stream states) whose first pass keeps 8 positions in dx's bytes and 4 in
    a scratch, leaving 20 unkept, of which input_grad_s8 probes the 6 of largest sum of dy^2
    (unmasked, fewer than 40 unkept: not weighed by the multipliers, 1 here in any case).
    Column col's largest accumulator is placed by design: row 20 (unkept, of large sum of dy^2:
    probed) holds 127 * b - 1, row 25 (unkept, of small sum: not probed) 127 * 127 when it
    leads. "probed": row 20 holds the maximum, the guess holds (no second walk); "one_above":
    row 25 is one above the guess (the redo changes only the scale); "twice" (and masked):
    row 25 is about twice the guess, the redo changes the kept rows' bytes too; "kept_max":
    a kept row holds it. Column 0 is in the staged walk's first block (block's rows), 17 in
    its third (stochastically: steady_rows). Returns dy, w [units, depth], mult, mask,
    scratch positions."""
    batches, units, depth = 32, 16, 24
    if case.startswith("equal"):
        # 15 outputs for the last byte's case: rows_equal's words end 3 bytes short of it
        return equal_rows_case(case, rng, batches, units - (case == "equal_but_last_byte"),
                               depth)
    w = np.zeros((units, depth), np.int8)
    w[4] = rng.integers(-50, 51, depth)
    w[4, col] = 0                               # column col: the designed terms only
    w[0, col] = 127
    w[1, col] = 60 if case.startswith("twice") else 127
    w[2, col] = 1
    dy = np.zeros((batches, units), np.int8)
    filler = rng.choice(np.array([-100, 100], np.int8), (batches, units - 5))
    dy[:, 5:] = filler                          # w's rows 5.. are zero: sum of dy^2 only
    dy[:, 4] = rng.integers(-40, 41, batches)   # the other columns' mid-range accumulators
    dy[20, 1], dy[20, 2], dy[20, 3] = 127, -1, 127
    dy[25, 5:] = 0
    if case != "probed":
        dy[25 if case != "kept_max" else 3, 0] = 127
    if case == "kept_max":
        dy[3, 5:] = 0
    mult = np.ones(units, np.int16)
    mask = None
    if case == "twice_masked":
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        for p, o in ((20, 1), (20, 2), (25, 0)):
            mask[(p * units + o) >> 3] |= np.uint8(1 << ((p * units + o) & 7))
    return dy, w, mult, mask, 4


def equal_rows_case(case: str, rng, batches: int, units: int, depth: int):
    """dy's rows all the same, unmasked (a global average pool's gradient): input_grad_s8
    computes one row into the scratch (4 positions, or every one: "equal_rows_one_pass")
    and rounds every position from it. "equal_but_last": the last row differs in one
    output and holds the maximum (whole rows compared, not the probe's walk);
    "equal_but_last_byte" (15 outputs): it differs only in dy's last byte, past
    rows_equal's last word (its byte loop), and every other output but the first is
    weighted 0, so that the difference makes row 31 the largest in every column."""
    w = rng.integers(-128, 128, (units, depth)).astype(np.int8)
    w[0] = rng.integers(100, 128, depth)
    mult = rng.integers(0, 257, units).astype(np.int16)
    mult[0] = 256
    dy = np.tile(rng.integers(-127, 128, units).astype(np.int8), (batches, 1))
    dy[:, 0] = 90
    if case == "equal_but_last":
        dy[-1, 0] = 127
    if case == "equal_but_last_byte":
        w[-1] = rng.integers(100, 128, depth)
        mult[1:] = 0
        mult[-1] = 256
        dy[:, -1] = 90
        dy[-1, -1] = 127
    return dy, w, mult, None, batches if case == "equal_rows_one_pass" else 4


def optimistic_calls(lib, rng, check=None) -> None:
    """Every optimistic case, rounded to nearest (the designed column 0) and stochastically
    (column 17); `check(case, dy, w,
    mult, mask, dx, scale, rng_before, rng_after)` sees each result."""
    for case in OPTIMISTIC_CASES:
        for stochastic in (False, True):
            dy, w, mult, mask, kept = optimistic_case(case, rng, 17 if stochastic else 0)
            batches, units = dy.shape
            depth = w.shape[1]
            dx, scale = np.zeros((batches, depth), np.int8), np.zeros(1, np.float32)
            scratch = np.zeros(kept * depth, np.int32)
            state = c_kernels.UpdateState(0x9E3779B9, 3)
            before = int(state.rng)
            lib.tt_fully_connected_input_grad_s8(
                i8(dy), rig_p(np.array([0.03], np.float32), C.c_float), rig_p(mask, C.c_uint8),
                batches, units, i8(w), rig_p(mult, C.c_int16), C.c_float(1e-3), depth, i8(dx),
                rig_p(scale, C.c_float), C.byref(state) if stochastic else None,
                rig_p(scratch, C.c_int32), kept)
            if check is not None:
                check(case, dy, w, mult, mask, dx, scale, before if stochastic else None,
                      int(state.rng))


def input_grad_calls(rng, rows_only: bool = False) -> None:
    lib = c_kernels.library()
    # (n, h, w, co, ci): pointwise layers
    shapes = [(1, 5, 7, 5, 3), (2, 3, 3, 13, 11), (1, 4, 4, 64, 17), (1, 3, 3, 16, 8),
              (1, 2, 2, 1, 1), (1, 3, 3, 300, 9),     # 300 outputs: blocks of 6 columns
                                                      # (and a last of 3) unmasked, of 4
                                                      # masked
              (1, 2, 2, 344, 5),                      # blocks of 4 (and a last of 1)
              (1, 2, 3, 600, 7),                      # blocks of 3 (and a last of 1)
              (1, 2, 3, 700, 5),                      # blocks of 2
              (1, 1, 3, 1100, 3),                     # one column at a time
              (1, 1, 2, 2100, 3),                     # past the buffer: portable
              (1, 2, 2, 7, 1),
              (1, 3, 4, 16, 20),                      # sparse: the exact rule, 3 blocks
              (1, 6, 6, 24, 60),                      # stochastic: the rows' stream states
                                                      # (full blocks), its steps (the last)
              (1, 2, 3, 9, 15),                       # a last block of 7: 4 staged by words
              (1, 3, 3, 256, 20),                     # the staging full (256 outputs, 8
                                                      # columns): no room for the rows'
                                                      # states, every block jumps, the short
                                                      # last block's jump set up again
              (1, 7, 7, 24, 128),                     # the rows' states; the first block
                                                      # jumps 120 draws 35-48 times: tables
                                                      # built by squaring (as MCUNet's 432)
              (1, 2, 3, 336, 14),                     # co a multiple of 8 in blocks of 6:
                                                      # the first pass's and the steady
                                                      # blocks' own rows (first_rows,
                                                      # steady_rows) at 6 columns
              (1, 4, 4, 8, 23),                       # the measuring walk's blocks of 8 in
                                                      # blocks of 6 (tt_dsp_pw_rows6): 6, 8,
                                                      # 8, 1 columns, a row of two groups
                                                      # (co 8: entered at the loop's seventh
                                                      # group); co 16 and 24 (the fifth
                                                      # and third) at k 12 and 13, co 64
                                                      # (the first) at the last shape
              (1, 4, 4, 16, 22),                      # ci 4 mod 6: 6, 6, 6, then a block
                                                      # of 4 (block4_0), not 8 and 8
              (1, 3, 4, 64, 12),                      # co 64 in blocks of 6 (12 rows, ci
                                                      # 12): tt_dsp_pw_rows6 entered at its
                                                      # first group (review23a: k 2's ci 17
                                                      # never ran a block of 6)
              (1, 4, 4, 32, 32),                      # ci 2 mod 6, co 32: four sixes row
                                                      # by row (tt_dsp_pw_rows6x, co / 8
                                                      # even: the widening entered at its
                                                      # first half; co 24 above: its
                                                      # second), then one block of 8
                                                      # (tt_dsp_pw_rows8; two of 4 until
                                                      # pwig30)
              (1, 2, 3, 336, 16),                     # blocks of 6 (CB 6, no sixes) at ci
                                                      # 4 mod 6: the last of 4 is block's
                                                      # (the rounding walk's), not the
                                                      # sixes' block4_0
              (1, 3, 3, 16, 10),                      # 9 rows (the 3x3 maps) in blocks of
                                                      # 6 since pwig30c: one six, then the
                                                      # block of 4 (block4_0); 256 @3x3
                                                      # above: two sixes and a block of 8
              (1, 1, 5, 16, 14),                      # 5 rows (pwig30c's least) in blocks
                                                      # of 6: one six, then a block of 8
              (1, 3, 3, 344, 9),                      # blocks of 4 in a staged rounding
                                                      # walk (7 rows past the kept 2): to
                                                      # nearest, block's whole blocks of 4
                                                      # (near_block); 344 @2x2 above goes
                                                      # unstaged
              (1, 4, 4, 96, 13),                      # pwig31's walk with h = dy * mult
                                                      # (tt_dsp_pw_rows6h, all rows kept):
                                                      # 16 rows, outputs in chunks of 80
                                                      # and 16 (the sums kept between),
                                                      # two sixes then a block of 1; split
                                                      # at 1 (no six: all by blocks), 6 (one
                                                      # six of w_lo) and 12
              (1, 3, 3, 160, 7),                      # 9 rows, chunks of 128 and 32, one
                                                      # six then a block of 1
              (1, 1, 5, 320, 13),                     # CB 6 (no sixes): the walk's two
                                                      # sixes (chunks of 176 and 144), then
                                                      # block's last column
              (1, 4, 5, 8, 16),                       # co 8, all rows kept (pwig31b's
                                                      # tt_dsp_pw_rows_co8: every column at
                                                      # once, two loops of 8 columns a row;
                                                      # rows at a0, then at a1); split at 1,
                                                      # 8 and 15 (the staged pairs across
                                                      # the seam)
              (1, 2, 4, 8, 24)]                       # 8 rows, three loops a row (co 8 ci
                                                      # 23 above: not a multiple of 8, the
                                                      # blocks as before)
    if rows_only:
        # unstaged (tt_input_grad_rows_dsp.c, 1-3 rows): two rows and a last one, an odd co,
        # columns past the last block of four; 4 positions: the second pass of 3 rows; 520
        # columns: two chunks of accumulators (the rows' streams carried across them). The
        # indices keep the split filters and the masks' special multipliers.
        # An odd number of output pairs (co 10 and 11: 5): one_row's first pair alone before
        # its two a loop (pwig30), one row after two and a row alone.
        shapes = [(1, 1, 3, 13, 11), (1, 2, 2, 9, 21), (1, 1, 3, 8, 520), (1, 1, 3, 10, 7),
                  (1, 1, 1, 11, 9)]
    for k, (n, h, w, co, ci) in enumerate(shapes):
        dy = dy_of(rng, (n, h, w, co), sparse=k in (3, 12))
        wt = rng.integers(-128, 128, (co, 1, 1, ci)).astype(np.int8)
        mult, unit = multipliers(rng, co, co, special=k % 2 == 0)
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        win = c_kernels.Window(1, 1, 1, 1, 0, 0)
        for mask_p, dx, scale, state, scratch, kept in input_grad_variants(
                mask, (n, h, w, ci), 12345 + k, 3):
            lib.tt_conv2d_input_grad_s8(
                i8(dy), rig_p(np.array([0.01], np.float32), C.c_float), mask_p, n, h, w, co,
                i8(wt), rig_p(mult, C.c_int16), C.c_float(unit), 1, 1, C.byref(win), h, w,
                ci, dx, scale, state, scratch, kept)
        # split filters: the seam at every alignment (not on the two layers which test the
        # stochastic walk's jumps nor on the 520 columns: the rig's 1 MB of flash holds the
        # calls' data), but for the unstaged rows' 520 columns one seam at 100, in one form:
        # their second chunk (508 columns for co 8) lies wholly past it
        seams = sorted({1, ci // 2, ci - 1} - {0, ci}
                       if (k < 15 or k in (26, 29)) and ci < 512 else ())
        if rows_only and ci >= 512:
            seams = [100]
        for split in seams:
            lo = np.ascontiguousarray(wt[..., :split])
            hi = np.ascontiguousarray(wt[..., split:])
            forms = kept_splits(n * h * w, split)
            for kept in (forms[:1] if ci >= 512 else forms):
                dx = np.zeros((n, h, w, ci), np.int8)
                scale = np.zeros(1, np.float32)
                scratch = np.zeros(kept * ci, np.int32) if kept else None
                lib.tt_conv2d_input_grad_split_s8(
                    i8(dy), rig_p(np.array([0.02], np.float32), C.c_float),
                    rig_p(mask, C.c_uint8), n, h, w, co, i8(lo), split, i8(hi),
                    rig_p(mult, C.c_int16), C.c_float(unit), 1, 1, C.byref(win), h, w, ci,
                    i8(dx), rig_p(scale, C.c_float), None, rig_p(scratch, C.c_int32), kept)
    if rows_only:
        return
    # the largest |accumulator| in [128, 255], so two steps of the grid (times 2): the
    # stochastic walk's blocks after the first must not take the steady rounding copy (nor
    # the lean whole-block condition), whose rule is for times 1; small dy and weights, one
    # large product
    dy = rng.integers(-3, 4, (1, 6, 6, 24)).astype(np.int8)
    dy[rng.random(dy.shape) < 0.5] = 0
    wt = rng.integers(-3, 4, (24, 1, 1, 60)).astype(np.int8)
    dy[0, 0, 0, 0], wt[0] = 60, 3
    acc = np.einsum("nhwo,oc->nhwc", dy.astype(np.int64), wt[:, 0, 0, :].astype(np.int64))
    assert 128 <= np.abs(acc).max() <= 255
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    for mask_p, dx, scale, state, scratch, kept in input_grad_variants(mask, (1, 6, 6, 60), 7,
                                                                        3):
        lib.tt_conv2d_input_grad_s8(
            i8(dy), rig_p(np.array([0.01], np.float32), C.c_float), mask_p, 1, 6, 6, 24, i8(wt),
            rig_p(np.ones(24, np.int16), C.c_int16), C.c_float(0.001), 1, 1,
            C.byref(c_kernels.Window(1, 1, 1, 1, 0, 0)), 6, 6, 60, dx, scale, state, scratch,
            kept)
    # the first pass's maximum's test (within) at its edges: row p's largest |accumulator|,
    # (-1)^p (20000 + p), one more than the rows' before and in column p % 8 (every slot of
    # the test), the others below 5200: a test that let |v| = m + 1 or -(m + 1) pass would
    # miss every new maximum after row 0. Outputs o and o + 8 both feed column o (weights
    # 1), at multipliers 256 and 1: acc = 256 dy[o] + dy[o + 8]
    dy = rng.integers(-20, 21, (1, 4, 4, 16)).astype(np.int8)
    for p in range(16):
        v = 20000 + p
        hi = (v + 128) // 256
        dy.reshape(16, 16)[p, [p % 8, p % 8 + 8]] = np.array([hi, v - 256 * hi]) * (-1) ** p
    wt = np.zeros((16, 1, 1, 8), np.int8)
    for o in range(16):
        wt[o, 0, 0, o % 8] = 1
    mult = np.array([256] * 8 + [1] * 8, np.int16)
    acc = np.einsum("nhwo,oc->nhwc", dy.astype(np.int64) * mult,
                    wt[:, 0, 0, :].astype(np.int64)).reshape(16, 8)
    assert [int(np.abs(r).max()) for r in acc] == list(range(20000, 20016))
    for mask_p, dx, scale, state, scratch, kept in input_grad_variants(mask, (1, 4, 4, 8), 9,
                                                                        3):
        lib.tt_conv2d_input_grad_s8(
            i8(dy), rig_p(np.array([0.01], np.float32), C.c_float), mask_p, 1, 4, 4, 16, i8(wt),
            rig_p(mult, C.c_int16), C.c_float(0.001), 1, 1,
            C.byref(c_kernels.Window(1, 1, 1, 1, 0, 0)), 4, 4, 8, dx, scale, state, scratch,
            kept)
    # the same edge at ci 12, two blocks of 6 (unmasked, co a multiple of 8, 18 rows: the
    # measuring walk's tt_dsp_pw_rows6, whose test is its own assembly): row p's largest
    # |accumulator| 20000 + p in column p % 6 and 20018 + p in column p % 6 + 6, so every row
    # of each block passes the maximum so far by one, in every slot of the test. Row 17's
    # column 11 holds the call's maximum: a test that skips r5's sum (or lets |v| = m + 1
    # pass, of the sign there: both signs, one call each) misses it. Output o < 6 (times 256)
    # feeds columns o and o + 6, output 6 + o (times 1) the same two, output 12 (times 1,
    # dy 18) columns 6-11; co 16 enters the loop of eight groups at its fifth, co 24 at its
    # third. Every position kept (one pass; all but one: dx's quarter
    # and the scratch), so the first pass walks all 18 rows (a guessing pass walks only the
    # kept rows and probes, and the unkept rows' maximum is steady_rows')
    # ci 18: three blocks of 6, one chunk of tt_dsp_pw_rows6x (row-major, dy widened once a
    # row), whose own test is tried the same way in the chunk's last block: output 13 (times
    # 1, dy 18) adds 18 more to columns 12-17 (output 12's reach them too), so row p's
    # largest there is 20036 + p, one above the maximum so far (row p - 1's), in column
    # p % 6 + 12
    for ci, co, sign in ((12, 16, 1), (12, 16, -1), (12, 24, 1), (12, 24, -1), (18, 16, 1),
                         (18, 24, -1)):
        dy = rng.integers(-20, 21, (18, co)).astype(np.int8)
        dy[:, 12] = 18
        wt = np.zeros((co, 1, 1, ci), np.int8)
        for o in range(6):
            wt[o, 0, 0, list(range(o, ci, 6))] = 1
            wt[6 + o, 0, 0, list(range(o, ci, 6))] = 1
        wt[12, 0, 0, 6:] = 1
        if ci == 18:
            wt[13, 0, 0, 12:] = 1
        mult = np.array([256] * 6 + [1] * (co - 6), np.int16)
        for p in range(18):
            v = 20000 + p
            hi = (v + 128) // 256
            dy[p, [p % 6, p % 6 + 6]] = [hi, v - 256 * hi]
            dy[p, 12] = 18
            if ci == 18:
                dy[p, 13] = 18
            dy[p] *= sign * (-1) ** (p + 1)
        acc = (dy.astype(np.int64) * mult) @ wt[:, 0, 0, :].astype(np.int64)
        assert [int(np.abs(r[:6]).max()) for r in acc] == list(range(20000, 20018))
        assert [int(np.abs(r[6:12]).max()) for r in acc] == list(range(20018, 20036))
        if ci == 18:
            assert [int(np.abs(r[12:]).max()) for r in acc] == list(range(20036, 20054))
            assert [int(np.argmax(np.abs(r[12:]))) for r in acc] == [p % 6 for p in range(18)]
        assert np.sign(acc[17, ci - 1]) == sign
        for kept, stochastic in ((18, False), (17, True)):
            dx, scale = np.zeros((1, 3, 6, ci), np.int8), np.zeros(1, np.float32)
            state = c_kernels.UpdateState(5, 3)
            scratch = np.zeros(kept * ci, np.int32) if kept else None
            lib.tt_conv2d_input_grad_s8(
                i8(dy.reshape(1, 3, 6, co)), rig_p(np.array([0.01], np.float32), C.c_float),
                None, 1, 3, 6, co, i8(wt), rig_p(mult, C.c_int16), C.c_float(0.001), 1, 1,
                C.byref(c_kernels.Window(1, 1, 1, 1, 0, 0)), 3, 6, ci, i8(dx),
                rig_p(scale, C.c_float), C.byref(state) if stochastic else None,
                rig_p(scratch, C.c_int32), kept)
    # the maximum at one unkept row (its dy 12 times a column, so the largest sum of dy^2:
    # the optimistic pass probes it) and a kept row's maximum one below it, the other rows
    # small: a guess one low (the probe missed or measured short) shows in the bytes unless
    # the fallback catches it. The row and its column
    # move: unkept at either kept split (16 and 40 of 64 rows kept), the column in the first
    # block of 8 and in the second
    base = np.array([(o % 9) + 1 for o in range(32)], np.int64)
    signs = np.array([[1 if (o * (c + 3) + c) % 5 < 2 else -1 for c in range(16)]
                      for o in range(32)])
    wt = (base[:, None] * signs).astype(np.int8).reshape(32, 1, 1, 16)
    for top, col, kept_row in ((60, 13, 3), (40, 2, 8), (47, 9, 0)):
        dy = rng.integers(-1, 2, (64, 32)).astype(np.int8)
        dy[top] = 12 * wt[:, 0, 0, col]
        dy[kept_row] = dy[top]
        dy[kept_row, 0] -= np.sign(dy[kept_row, 0])          # |w[0, c]| = 1: one less
        acc = dy.astype(np.int64) @ wt[:, 0, 0, :].astype(np.int64)
        assert np.argmax(np.abs(acc).max(axis=1)) == top
        assert np.abs(acc[kept_row]).max() == np.abs(acc[top]).max() - 1
        for kept, stochastic in ((0, False), (0, True), (24, True)):
            dx, scale = np.zeros((1, 8, 8, 16), np.int8), np.zeros(1, np.float32)
            state = c_kernels.UpdateState(11, 3)
            scratch = np.zeros(kept * 16, np.int32) if kept else None
            lib.tt_conv2d_input_grad_s8(
                i8(dy.reshape(1, 8, 8, 32)), rig_p(np.array([0.01], np.float32), C.c_float),
                None, 1, 8, 8, 32, i8(wt), rig_p(np.ones(32, np.int16), C.c_int16),
                C.c_float(0.001), 1, 1, C.byref(c_kernels.Window(1, 1, 1, 1, 0, 0)), 8, 8, 16,
                i8(dx), rig_p(scale, C.c_float), C.byref(state) if stochastic else None,
                rig_p(scratch, C.c_int32), kept)
    # multipliers outside [0, 2^8] (not what augment makes): the portable code
    dy, wt = dy_of(rng, (1, 3, 3, 6), False), rng.integers(-128, 128, (6, 1, 1, 5)).astype(np.int8)
    for bad in (300, -5):
        mult = np.full(6, 100, np.int16)
        mult[2] = bad
        dx, scale = np.zeros((1, 3, 3, 5), np.int8), np.zeros(1, np.float32)
        lib.tt_conv2d_input_grad_s8(i8(dy), rig_p(np.array([0.01], np.float32), C.c_float),
                                    None, 1, 3, 3, 6, i8(wt), rig_p(mult, C.c_int16),
                                    C.c_float(1e-4), 1, 1,
                                    C.byref(c_kernels.Window(1, 1, 1, 1, 0, 0)), 3, 3, 5,
                                    i8(dx), rig_p(scale, C.c_float), None, None, 0)
    # 1x1 layers that are not pointwise: stride 2, padding
    for (s, pad, h, oh) in ((2, 0, 7, 4), (1, 1, 4, 6)):
        dy = dy_of(rng, (1, oh, oh, 9), False)
        wt = rng.integers(-128, 128, (9, 1, 1, 6)).astype(np.int8)
        mult, unit = multipliers(rng, 9, 9, False)
        dx, scale = np.zeros((1, h, h, 6), np.int8), np.zeros(1, np.float32)
        lib.tt_conv2d_input_grad_s8(i8(dy), rig_p(np.array([0.01], np.float32), C.c_float),
                                    None, 1, oh, oh, 9, i8(wt), rig_p(mult, C.c_int16),
                                    C.c_float(unit), 1, 1,
                                    C.byref(c_kernels.Window(s, s, 1, 1, pad, pad)), h, h, 6,
                                    i8(dx), rig_p(scale, C.c_float), None, None, 0)
    # the optimistic pass's guess holding and failing (test_optimistic_pass_equals_numpy)
    optimistic_calls(lib, np.random.default_rng(5))
    # fully connected: (batches, units, depth)
    for k, (batches, units, depth) in enumerate([(1, 10, 256), (3, 7, 13), (5, 33, 1),
                                                 (2, 9, 30)]):
        dy = dy_of(rng, (batches, units), False)
        wt = rng.integers(-128, 128, (units, depth)).astype(np.int8)
        mult, unit = multipliers(rng, units, units, special=True)
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        for kept in kept_splits(batches, k):
            dx, scale = np.zeros((batches, depth), np.int8), np.zeros(1, np.float32)
            scratch = np.zeros(kept * depth, np.int32) if kept else None
            lib.tt_fully_connected_input_grad_s8(
                i8(dy), rig_p(np.array([0.03], np.float32), C.c_float),
                rig_p(mask if k % 2 else None, C.c_uint8), batches, units, i8(wt),
                rig_p(mult, C.c_int16), C.c_float(unit), depth, i8(dx),
                rig_p(scale, C.c_float), None, rig_p(scratch, C.c_int32), kept)
        if depth > 1:
            split = depth // 2
            dx, scale = np.zeros((batches, depth), np.int8), np.zeros(1, np.float32)
            lib.tt_fully_connected_input_grad_split_s8(
                i8(dy), rig_p(np.array([0.03], np.float32), C.c_float), None, batches, units,
                i8(np.ascontiguousarray(wt[:, :split])), split,
                i8(np.ascontiguousarray(wt[:, split:])), rig_p(mult, C.c_int16),
                C.c_float(unit), depth, i8(dx), rig_p(scale, C.c_float), None, None, 0)


def weight_stage(n, h, w, co, k, win, part: int = 1):
    """The fused pointwise weight update's staging (stage, stage_bytes): what
    tt_conv2d_weight_update_s8_s8_stage_bytes asks for, or a `part`-th of it (too little: the
    walks without staging). The gradient alone takes none, and is given this one too: its bits
    may not depend on it."""
    nbytes = int(c_kernels.K.host_call("tt_conv2d_weight_update_s8_s8_stage_bytes", n, h, w,
                                       co, h, w, k, 1, 1, C.byref(win), 0, 0)) // part
    return rig_p(np.zeros(max(nbytes, 8), np.uint8), C.c_uint8), nbytes


def weight_grad_calls(rng) -> None:
    """tt_conv2d_weight_grad_s8 and the fused tt_conv2d_weight_update_s8_s8 of pointwise
    layers: 2 and 3 positions (a partial group), channel counts off the blocks of eight,
    output channels staged four dy columns at a time and the ones left over, the
    zero point's extremes, masks, saved inputs staged as int16, ones past the buffer (the
    large-map walk, which the int8 form's layers take since round 20; the walk without
    staging, tt_dsp_pointwise_weight_direct: direct_walk_calls), 1x1 layers that are not pointwise
    (portable), a single position (portable), momentum and stochastic rounding in the update;
    updates given too little staging, which stage their input in chunks of channels on the
    stack (update_pointwise: its draws skipped into the unstaged order)."""
    lib = c_kernels.library()
    # (n, h, w, co, k, ci): dy [n, h, w, co], saved [n, h, w, k] (the trained first k of ci)
    shapes = [(1, 1, 2, 5, 3, 3), (1, 1, 3, 7, 13, 13), (2, 3, 3, 9, 20, 24),
              (1, 3, 3, 6, 256, 256), (1, 6, 6, 4, 128, 128),    # 6 KB int16; 9 KB: large maps
              (1, 5, 7, 11, 1, 4), (1, 1, 1, 3, 8, 8), (1, 6, 6, 16, 32, 128),
              (1, 5, 7, 3, 203, 203),                 # large maps: a partial tile, 35 of 40
              (1, 8, 8, 3, 160, 160),                 # 20 KB as int16: no staging
              (1, 23, 23, 2, 8, 8),                   # 133 groups: 8.3 KB as int16, past
                                                      # the 8 KB: large maps
              (1, 3, 5, 5, 579, 579),                 # 18 KB as int16: no staging, 15
                                                      # positions, 579 = 4 * 144 + 3
              (1, 4, 4, 24, 12, 12),                  # four dy columns at once: a mask
                                                      # nibble at bit 0 and 4 of its byte
              (1, 3, 5, 12, 20, 20),                  # co % 8 = 4: masked columns one by one
              (1, 2, 3, 13, 9, 16),                   # a last partial set: one column
              (1, 3, 3, 8, 9, 9),                     # four columns of an odd position
                                                      # count: the last pair's second 0
              (1, 4, 4, 8, 16, 16),                   # t = 16: the default rule fused from
              (1, 2, 2, 3, 8, 8),                     # the sums' registers, int16 staging,
              (1, 2, 4, 6, 24, 40),                   # whole blocks of eight only (17:
                                                      # momentum, through scratch)
              (1, 8, 8, 7, 40, 48), (1, 8, 8, 6, 40, 40),   # the update given too little
                                                      # staging: chunks of 24 and 16 input
                                                      # channels on the stack (19: momentum,
                                                      # through scratch; 20: the default rule)
              (1, 2, 3, 16, 8, 8), (1, 3, 5, 8, 12, 12),   # four masked dy columns at once
                                                      # ending in a group of 2 and of 3
                                                      # positions (stage_columns4's last
                                                      # partial group)
              # large maps (no staging: tt_dsp_pointwise_weight_sums, positions in chunks)
              (1, 23, 23, 8, 13, 16),                 # 529 positions: chunks of 96 and a
                                                      # last one of 49; k = 13: a partial
                                                      # tile; masked dy in assembly
              (1, 17, 19, 7, 6, 6),                   # 323 positions; co = 7: a partial
                                                      # set of four columns and pair of two
              (1, 20, 20, 12, 40, 40),                # co % 8 = 4: the masked nibbles in C;
                                                      # the update in blocks of 32 and 8
                                                      # input channels (draws skipped)
              (1, 11, 13, 20, 36, 40),                # 143 positions; update blocks of 24
                                                      # and 12, momentum, nearest rounding
              (1, 16, 16, 48, 24, 24),                # update blocks of 8; NaN-prone scales
                                                      # inside the default rule's runs
              (1, 1, 1, 37, 21, 24),                  # one position (a classifier on a
              (1, 1, 1, 5, 9, 9),                     # pooled vector): T = g (x - x_zp);
                                                      # a dead channel, NaN-prone scales;
                                                      # momentum
              (1, 16, 16, 24, 40, 40),                # large map, update blocks of 16, 16
                                                      # and 8 (wbig_block_fused, kern27; 8
                                                      # before): each channel's stream state
                                                      # kept block to block (its reserve
                                                      # leaving 56 positions a chunk), the
                                                      # default rule's runs and NaN-prone
                                                      # channels'
              # one chunk, the floats from the tiles' registers (tt_dsp_pointwise_weight_
              # floats): 5, 4 (3 positions padded), 6, 8 and 7 pairs a tile: after the first
              # trip of four the loop entered for 1, none, 2, none (8: four pairs straight
              # into the conversion's copy, round 26) and 3 pairs
              (1, 3, 3, 8, 16, 16), (1, 1, 3, 4, 8, 8), (1, 3, 4, 8, 12, 12),
              (2, 2, 4, 16, 8, 8), (1, 2, 7, 4, 8, 8),
              # 9 positions in the float mode's own blocks (dwig30: its chunk of 5 exact
              # pairs, 256 = 184 + 72 input channels), five pairs straight a tile, the
              # stagings' last partial group by pairs (x; dy masked)
              (1, 3, 3, 8, 256, 256)]
    assert len(shapes) == 37
    for t, (n, h, w, co, k, ci) in enumerate(shapes):
        dy = dy_of(rng, (n, h, w, co), False)
        saved = rng.integers(-128, 128, (n, h, w, k)).astype(np.int8)
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        zp = (-128, 127, 5)[t % 3]
        win = c_kernels.Window(1, 1, 1, 1, 0, 0)
        for masked in (False, True):
            # NaN before: the DSP walk sums into dw's own words, which it must zero first
            dw = np.full((co, 1, 1, k), np.nan, np.float32)
            lib.tt_conv2d_weight_grad_s8(
                i8(dy), rig_p(np.array([0.02], np.float32), C.c_float),
                rig_p(mask if masked else None, C.c_uint8), n, h, w, co, i8(saved),
                C.c_float(0.05), zp, h, w, k, 1, 1, C.byref(win), rig_p(dw, C.c_float),
                *weight_stage(n, h, w, co, k, win, part=1 + masked))
        wt = rng.integers(-127, 128, (co, 1, 1, ci)).astype(np.int8)
        wt.flat[:: 7] = -128
        scales = rng.uniform(0.001, 0.01, co).astype(np.float32)
        if t in (2, 12, 27, 28, 30):  # NaN-prone (through scratch), overflowing, subnormal scales
            scales[:: 4], scales[1:: 4], scales[2:: 4] = 0.0, 1e-30, 1e-39
        if t in (2, 10, 12, 28, 30):   # a dead channel: T = 0, so 0 / 0 (scale 0) or 0 inf (unit
            dy = dy.copy()     # inf) is NaN, the rule's step -256
            dy[..., 0] = 0
        with_momentum = t % 2 and t not in (25, 27)     # (the default rule's blocks there)
        momentum = np.zeros((co, 1, 1, k), np.float32) if with_momentum else None
        # lr 0 (NaN-prone: through scratch), rounding to nearest (the rule from scratch)
        sgd = c_kernels.Sgd(0.0 if t == 4 else 0.05, 0.9 if with_momentum else 0.0, 1,
                            0 if t in (14, 26) else 1, 0)
        state = c_kernels.UpdateState(777 + t, 2)
        scratch = np.zeros(k, np.float32)
        # dy's scale: T unit overflowing to inf (unit finite), unit itself inf (NaN-prone)
        dy_scale = {8: 3e38, 10: np.inf}.get(t, 0.02)
        lib.tt_conv2d_weight_update_s8_s8(
            i8(dy), rig_p(np.array([dy_scale], np.float32), C.c_float), rig_p(mask, C.c_uint8),
            n, h, w, co, i8(saved), C.c_float(0.05), zp, h, w, k, i8(wt), 1, 1, ci,
            rig_p(scales, C.c_float), co, C.byref(win), rig_p(momentum, C.c_float),
            C.byref(sgd), C.byref(state), rig_p(scratch, C.c_float),
            *weight_stage(n, h, w, co, k, win, part=4 if t in (19, 20) else 1))
    # a 1x1 layer of stride 2: portable
    dy = dy_of(rng, (1, 3, 3, 4), False)
    saved = rng.integers(-128, 128, (1, 6, 6, 5)).astype(np.int8)
    dw = np.zeros((4, 1, 1, 5), np.float32)
    lib.tt_conv2d_weight_grad_s8(i8(dy), rig_p(np.array([0.02], np.float32), C.c_float), None,
                                 1, 3, 3, 4, i8(saved), C.c_float(0.05), -3, 6, 6, 5, 1, 1,
                                 C.byref(c_kernels.Window(2, 2, 1, 1, 0, 0)),
                                 rig_p(dw, C.c_float), rig_p(np.zeros(4096, np.uint8),
                                                             C.c_uint8), 4096)


def update_calls(rng) -> None:
    """The M7's update arithmetic (tt_param_grad.c, TT_FPV5: VCVTM/VCVTN, VMAXNM/VMINNM, a
    fixed-point conversion of the noise, SSAT) on the values it treats specially: steps past
    +-256 either way, NaN and infinite gradients (a scale of 0), exact halves rounded to
    nearest (ties to even), -0.0, weights at -128, -127 and 127; per-tensor and per-channel
    scales, momentum, both roundings. Then the bias gradient's SADD16 lanes
    (tt_param_grad_dsp.c): channels off the blocks of eight (mask bits that start mid-byte),
    more than 256 positions (lanes flushed), dy of -128 everywhere (a lane's -2^15), with and
    without a mask, and the fused bias update."""
    lib = c_kernels.library()
    grads = np.array([-0.5, -1.5, -2.5, 0.5, 1.5, 2.5, -0.0, 0.0, np.nan, np.inf, -np.inf,
                      1e9, -1e9, 300.0, -300.0, -256.5, 255.5, 3e-8, -7.25, 127.0, -127.0,
                      1e-40, 8388608.5, -0.49999997], np.float32)
    w0 = np.array([0, 1, -1, 127, -127, -128, 5, -5] * 3, np.int8)
    for rounding in (0, 1):
        for momentum_value, per_channel in ((0.0, False), (0.0, True), (0.9, True)):
            w = w0.reshape(2, 3, 4).copy()
            scales = (np.array([1.0, 0.5], np.float32) if per_channel
                      else np.array([1.0], np.float32))
            momentum = np.full(24, 0.25, np.float32) if momentum_value else None
            sgd = c_kernels.Sgd(1.0, momentum_value, 1, rounding, 0)
            state = c_kernels.UpdateState(99 + rounding, 0)
            lib.tt_update_weight_s8(i8(w), rig_p(np.array(w.shape, np.int32), C.c_int32), 3, 0,
                                    rig_p(scales, C.c_float), scales.size,
                                    rig_p(grads, C.c_float), 4, rig_p(momentum, C.c_float),
                                    C.byref(sgd), C.byref(state))
    for scale in (0.0, 1e-3):        # a scale of 0: g = +-inf or NaN in QAS
        w = w0[:8].copy()
        sgd = c_kernels.Sgd(0.5, 0.0, 1, 1, 0)
        state = c_kernels.UpdateState(7, 3)
        lib.tt_update_weight_s8(i8(w), rig_p(np.array([8], np.int32), C.c_int32), 1, 0,
                                rig_p(np.array([scale], np.float32), C.c_float), 1,
                                rig_p(grads[:8], C.c_float), 8, None, C.byref(sgd),
                                C.byref(state))
    biases = np.array([0, 1, -1, 2**31 - 1, -2**31, 5, -5, 1000] * 3, np.int32)
    for rounding in (0, 1):
        b = biases.copy()
        sgd = c_kernels.Sgd(1.0, 0.0, 1, rounding, 0)
        state = c_kernels.UpdateState(5 + rounding, 0)
        lib.tt_update_bias_s32(rig_p(b, C.c_int32), 24, rig_p(np.ones(24, np.float32), C.c_float),
                               rig_p(grads, C.c_float), None, C.byref(sgd), C.byref(state))
    # bias gradients: (outer, channels)
    for k, (outer, channels) in enumerate([(3, 8), (300, 16), (257, 24), (5, 12), (70, 13),
                                           (600, 9), (2, 1), (1, 40)]):
        dy = dy_of(rng, (outer, channels), sparse=False)
        if k == 1:
            dy[:] = -128
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        for masked in (False, True):
            db = np.zeros(channels, np.float32)
            lib.tt_bias_grad_s8(i8(dy), rig_p(np.array([0.03], np.float32), C.c_float),
                                rig_p(mask if masked else None, C.c_uint8), outer, channels,
                                rig_p(db, C.c_float))
        b = rng.integers(-1000, 1000, channels).astype(np.int32)
        sgd = c_kernels.Sgd(0.1, 0.0, 1, 1, 0)
        state = c_kernels.UpdateState(31 + k, 1)
        lib.tt_bias_update_s32_s8(
            i8(dy), rig_p(np.array([0.03], np.float32), C.c_float),
            rig_p(mask if k % 2 else None, C.c_uint8), outer, channels, rig_p(b, C.c_int32),
            rig_p(rng.uniform(1e-4, 1e-2, channels).astype(np.float32), C.c_float), None,
            C.byref(sgd), C.byref(state), rig_p(np.zeros(channels, np.float32), C.c_float))
    # the fused bias update's default rule (blocks of eight, tt_param_grad.c): biases at and
    # near the int32 extremes, steps of 2^23 to 2^31 (integers: no rounding), past 2^31
    # (VCVTM saturates: the int64 form), +-inf (dy's scale 3e38: T unit overflows), NaN (a
    # dead channel over a scale of 0: 0 / 0), subnormal and tiny scales; lr 0 (0 * inf)
    for k, (dy_scale, lr) in enumerate([(0.03, 0.1), (0.03, 3e5), (3e38, 0.1), (0.03, 0.0)]):
        outer, channels = 5, 24
        dy = dy_of(rng, (outer, channels), sparse=False)
        dy[:, 3] = 0
        b = np.array([2**31 - 1, -2**31, 2**31 - 200, -2**31 + 200, 0, 7, -7, 1 << 24] * 3,
                     np.int32)
        scales = rng.uniform(1e-4, 1e-2, channels).astype(np.float32)
        scales[3], scales[5], scales[9], scales[13] = 0.0, 1e-30, 1e-39, 1e-9
        sgd = c_kernels.Sgd(lr, 0.0, 1, 1, 0)
        state = c_kernels.UpdateState(91 + k, 1)
        lib.tt_bias_update_s32_s8(
            i8(dy), rig_p(np.array([dy_scale], np.float32), C.c_float),
            rig_p(rng.integers(0, 256, 15).astype(np.uint8) if k % 2 else None, C.c_uint8),
            outer, channels, rig_p(b, C.c_int32), rig_p(scales, C.c_float), None,
            C.byref(sgd), C.byref(state), rig_p(np.zeros(channels, np.float32), C.c_float))


def qas_order_calls() -> None:
    """The default rule's float operations in the schema's order, four weights at once
    (tt_qas_steps4: v = (-lr) (((float)T unit) / scale) + u, then VCVTM): a reordering
    changes a step by one only where v + u falls within an ulp of an integer, which random
    data almost never reaches. So two weights of a whole block of eight are chosen (found by
    a float32 search over T and the channel's scale, for the stream's first two draws of
    seed 4242): weight 0's step changes if the unit's multiply and the division by the scale
    swap, weight 1's if -lr multiplies before the division. Both stay within [-127, 127]."""
    lib = c_kernels.library()
    n, h, w, co, k = 1, 4, 4, 8, 16
    dy = np.zeros((n, h, w, co), np.int8)
    saved = np.zeros((n, h, w, k), np.int8)
    dy[0, 0, 0, 0], dy[0, 0, 1, 0] = 127, 1         # channel 0: T_j = 127 x_0j + x_1j
    saved[0, 0, 0, :2], saved[0, 0, 1, :2] = (120, -78), (71, 44)    # T = 15311, -9862
    dy[0, 1:, :, 1:] = 3                            # the other channels: ordinary steps
    saved[0, 1:] = np.arange(k, dtype=np.int8) - 8
    scales = np.full(co, 0.005, np.float32)
    scales[0] = np.uint32(1007665445).view(np.float32)      # 0.008774077
    wt = np.zeros((co, 1, 1, k), np.int8)
    dy_scale, x_scale, lr, seed = np.float32(0.02), np.float32(0.05), np.float32(0.05), 4242
    win = c_kernels.Window(1, 1, 1, 1, 0, 0)
    lib.tt_conv2d_weight_update_s8_s8(
        i8(dy), rig_p(np.array([dy_scale], np.float32), C.c_float), None, n, h, w, co,
        i8(saved), C.c_float(x_scale), 0, h, w, k, i8(wt), 1, 1, k, rig_p(scales, C.c_float),
        co, C.byref(win), None, C.byref(c_kernels.Sgd(float(lr), 0.0, 1, 1, 0)),
        C.byref(c_kernels.UpdateState(seed, 0)), rig_p(np.zeros(k, np.float32), C.c_float),
        *weight_stage(n, h, w, co, k, win))
    # the host's steps against the orders: the schema's, and the two a reordering would give
    x, u = seed, []
    for _ in range(2):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        u.append(np.float32(x >> 8) * np.float32(2.0**-24))
    t = np.array([15311, -9862], np.float32)
    unit, s = dy_scale * x_scale, scales[0]
    orders = {"schema": -lr * ((t * unit) / s), "unit after the division": -lr * ((t / s) * unit),
              "-lr before the division": ((t * unit) * -lr) / s}
    steps = {name: np.floor(v + np.array(u, np.float32)) for name, v in orders.items()}
    assert list(wt[0, 0, 0, :2]) == list(steps["schema"]), (wt[0, 0, 0, :2], steps)
    assert steps["unit after the division"][0] != steps["schema"][0]
    assert steps["-lr before the division"][1] != steps["schema"][1]


def save_mask_calls(rng) -> None:
    """tt_save_mask_s8 (tt_plumbing.c's SSUB8/SEL bytes on the M7): bounds inside, at and
    past the int8 range on either side, nothing inside (hi <= lo + 1, lo >= 127,
    hi <= -128), the int32 extremes, and sizes off the bytes (the tail)."""
    lib = c_kernels.library()
    y = rng.integers(-128, 128, 203).astype(np.int8)
    y[:6] = [-128, 127, -127, 126, 0, -1]
    bounds = [(-128, 127), (-129, 128), (-1, 6), (0, 1), (5, 5), (126, 300), (127, 300),
              (-300, -128), (-300, -127), (-2**31, 2**31 - 1), (2**31 - 1, -2**31),
              (-129, -127), (20, -20), (-50, 100)]
    for k, (lo, hi) in enumerate(bounds):
        for size in (203, 8, 16 + k % 8):
            mask = np.zeros((size + 7) // 8, np.uint8)
            lib.tt_save_mask_s8(i8(y), size, lo, hi, rig_p(mask, C.c_uint8))


def edge_calls() -> list:
    calls: list = []
    rng = np.random.default_rng(17)
    lib = c_kernels.library()
    for name in ("tt_conv2d_input_grad_split_s8", "tt_fully_connected_input_grad_split_s8"):
        getattr(lib, name).restype = None     # void (tt_split_grad.h: not declared for ctypes)
    with rig.recording(calls):
        input_grad_calls(rng)
        weight_grad_calls(rng)
        update_calls(rng)
        qas_order_calls()
        save_mask_calls(rng)
    return calls


def test_grad_dsp_versions_are_chosen_at_compile_time(tmp_path):
    """The Cortex-M7 build of the DSP sources has SMLAD; with -DTT_PORTABLE, and for the
    Cortex-M3 (no DSP extension), they compile to nothing, without warnings."""
    require_tool(bool(shutil.which("arm-none-eabi-gcc")), "arm-none-eabi-gcc")
    include = str(c_kernels.ROOT / "include")
    for src in DSP_SOURCES:
        for cpu, extra, dsp in (("cortex-m7", [], True), ("cortex-m7", ["-DTT_PORTABLE"], False),
                                ("cortex-m3", [], False)):
            obj = tmp_path / f"{src.stem}-{cpu}{len(extra)}.o"
            fpu = (["-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"] if cpu == "cortex-m7"
                   else ["-mfloat-abi=soft"])
            subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", *fpu, "-std=c99",
                            "-O2", "-Wall", "-Wextra", "-Werror", *extra, "-I", include, "-c",
                            str(src), "-o", str(obj)], check=True)
            text = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)],
                                  capture_output=True, text=True, check=True).stdout
            assert bool(re.search(r"\ssmlad\s", text)) == dsp, (src.name, cpu, extra)
            assert ("<tt_dsp_pointwise_" in text) == dsp, (src.name, cpu, extra)


def test_grad_dsp_equals_portable_on_edge_shapes(tmp_path):
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = edge_calls()
    assert {c.name for c in calls} >= {"tt_conv2d_input_grad_s8",
                                       "tt_conv2d_input_grad_split_s8",
                                       "tt_fully_connected_input_grad_s8",
                                       "tt_fully_connected_input_grad_split_s8",
                                       "tt_conv2d_weight_grad_s8",
                                       "tt_conv2d_weight_update_s8_s8",
                                       "tt_update_weight_s8", "tt_update_bias_s32",
                                       "tt_bias_grad_s8", "tt_bias_update_s32_s8",
                                       "tt_save_mask_s8"}
    run_edge_calls(calls, tmp_path)
    print(f"{len(calls)} edge-shape calls")


def run_edge_calls(calls: list, tmp_path, core=None) -> None:
    """The edge-shape calls in both builds, as three programs (the pointwise input gradients
    in two halves, the others): one no longer fits the rig's 1 MB of flash with the blocks of
    six columns' shapes and code, nor two since pwig31's shapes."""
    first = [c for c in calls if c.name.startswith("tt_conv2d_input_grad")]
    rest = [c for c in calls if not c.name.startswith("tt_conv2d_input_grad")]
    half = len(first) // 2
    for k, part in enumerate((first[:half], first[half:], rest)):
        (tmp_path / str(k)).mkdir()
        rig.run_in_both_builds(part, tmp_path / str(k), core=core)


def test_grad_dsp_equals_portable_on_the_cortex_m4(tmp_path):
    """The same edge-shape calls on a Cortex-M4 (QEMU mps2-an386, FPv4: the updates' portable
    float forms instead of VCVTM/VMAXNM, the int16 update's sums out of line): both builds
    give the host's bits there too."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    run_edge_calls(edge_calls(), tmp_path, core=rig.CORTEX_M4)


def test_unstaged_rows_equal_portable(tmp_path):
    """The pointwise input gradients of 1-3 rows, which the DSP version computes without
    staging the weights (tt_input_grad_rows_dsp.c: one and two rows at a time, split
    filters, masks, both roundings, the kept accumulators of a first pass and the second
    pass of the rest), give the portable code's bits on the rig."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    lib = c_kernels.library()
    lib.tt_conv2d_input_grad_split_s8.restype = None
    with rig.recording(calls):
        input_grad_calls(np.random.default_rng(29), rows_only=True)
    rig.run_in_both_builds(calls, tmp_path)


def direct_walk_calls(rng) -> None:
    """Pointwise weight gradients and fused updates given no staging, of 161 and 256
    positions (TT_WDSP_DIRECT_ROWS) and 176-177 output channels: too many positions for
    update_chunked's blocks of int16 input on its stack, too many output channels for the
    large-map walk's block of sums there (wbig_block), so the default build's fused update
    runs tt_dsp_pointwise_weight_direct (dy columns as int16 pairs, SMLAxy); the gradient,
    which the large-map walk takes in the default build, does too where
    TT_GRAD_DSP_STAGE_BYTES is 1024. Odd positions (the last one alone), k off the blocks of
    four, masks whose bits start mid-byte, the zero point's extremes, momentum and nearest
    rounding."""
    lib = c_kernels.library()
    win = c_kernels.Window(1, 1, 1, 1, 0, 0)
    # (n, h, w, co, k, ci, zp)
    for t, (n, h, w, co, k, ci, zp) in enumerate([(1, 7, 23, 177, 6, 8, -128),
                                                   (1, 16, 16, 176, 9, 9, 127)]):
        dy = dy_of(rng, (n, h, w, co), False)
        saved = rng.integers(-128, 128, (n, h, w, k)).astype(np.int8)
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        dw = np.zeros((co, 1, 1, k), np.float32)
        lib.tt_conv2d_weight_grad_s8(
            i8(dy), rig_p(np.array([0.02], np.float32), C.c_float),
            rig_p(mask if t == 0 else None, C.c_uint8), n, h, w, co, i8(saved),
            C.c_float(0.05), zp, h, w, k, 1, 1, C.byref(win), rig_p(dw, C.c_float), None, 0)
        wt = rng.integers(-128, 128, (co, 1, 1, ci)).astype(np.int8)
        momentum = np.zeros((co, 1, 1, k), np.float32) if t else None
        sgd = c_kernels.Sgd(0.05, 0.9 if t else 0.0, 1, 1 - t, 0)
        state = c_kernels.UpdateState(4242 + t, 2)
        lib.tt_conv2d_weight_update_s8_s8(
            i8(dy), rig_p(np.array([0.02], np.float32), C.c_float),
            rig_p(mask if t == 0 else None, C.c_uint8), n, h, w, co, i8(saved),
            C.c_float(0.05), zp, h, w, k, i8(wt), 1, 1, ci,
            rig_p(rng.uniform(0.001, 0.01, co).astype(np.float32), C.c_float), co,
            C.byref(win), rig_p(momentum, C.c_float), C.byref(sgd), C.byref(state),
            rig_p(np.zeros(k, np.float32), C.c_float), None, 0)


def functions_run(elf) -> set[str]:
    """The functions of the rig program `elf` that QEMU translated code of, i.e. that ran
    (`-d in_asm` logs each block once, when it is first reached: cheap, unlike a trace)."""
    log = elf.parent / "in_asm.log"
    subprocess.run(["timeout", "600", "qemu-system-arm", "-M", "mps2-an500", "-cpu",
                    "cortex-m7", "-nographic", "-monitor", "none", "-serial", "null", "-d",
                    "in_asm", "-D", str(log), "-semihosting-config", "enable=on,target=native",
                    "-kernel", str(elf)], capture_output=True, check=True)
    return set(re.findall(r"^IN: (\w+)", log.read_text(), re.M))


def test_direct_walk_equals_portable(tmp_path):
    """tt_dsp_pointwise_weight_direct (direct_walk_calls' layers, no staging) gives the
    portable code's bits on the rig: in the default build (the fused updates) and in one of
    1 KB of staging (the gradients too). It does run in both (the bits alone would not tell
    a dispatch that never takes it)."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with rig.recording(calls):
        direct_walk_calls(np.random.default_rng(43))
    for label, defines in (("dsp", ()), ("dsp1k", ("-DTT_GRAD_DSP_STAGE_BYTES=1024",)),
                           ("portable", ("-DTT_PORTABLE",))):
        program = rig.Program()
        for call in calls:
            program.add(call)
        (tmp_path / label).mkdir()
        rig.run_on_rig(program, tmp_path / label, defines=defines)
        ran = functions_run(tmp_path / label / "test.elf")
        assert ("tt_dsp_pointwise_weight_direct" in ran) == (label != "portable"), label


def test_rounding_rule_equals_portable(tmp_path):
    """tt_round_grads' rules (tt_grad_quant.c), which the DSP build runs four elements at a
    time in assembly (round_fours, stochastic; round_fours_nearest where the high word is
    shifted: one LDM of four sums, one STR of four bytes, eight elements an iteration; since
    pwig30 tt_round_eights_nearest before it, one LDM of eight sums, sixteen an iteration, an
    odd eight first at 8, 12, 13) and the rest in C: every count of elements around the
    fours and eights, the largest
    magnitudes of each rule's case (A <= 127 exact, shift 31 doubled, shift 32 with no shift
    of the high word, up to A near 2^31) and both roundings give the portable code's bits and
    random stream on the rig."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    rng = np.random.default_rng(31)
    calls: list = []
    with rig.recording(calls):
        lib = c_kernels.library()
        for k, top in enumerate((100, 200, 500, 70_000, 2**31 - 1)):
            for n in (1, 3, 4, 5, 7, 8, 9, 12, 13, 16, 23, 64):
                for stochastic in (True, False):
                    acc = rng.integers(-top, top + 1, n, dtype=np.int64).astype(np.int32)
                    acc[n // 2] = top if n % 2 else -top     # A itself, both signs
                    q, scale = np.zeros(n, np.int8), np.zeros(1, np.float32)
                    state = c_kernels.UpdateState(1000 * k + n, 3)
                    lib.tt_quantize_grad_s8(rig_p(acc, C.c_int32), n, C.c_float(0.01),
                                            C.byref(state) if stochastic else None,
                                            i8(q), rig_p(scale, C.c_float))
    rig.run_in_both_builds(calls, tmp_path)


MISALIGNED_MULTIPLIERS = r"""
#include <stdint.h>
#include <string.h>
#include "tt_kernels.h"
void tt_rig_print(const char *text);
enum { OH = 4, OW = 4, CO = 8, CI = 8 };
static int8_t dy[OH * OW * CO], w[CO * CI], dx_word[OH * OW * CI], dx_half[OH * OW * CI];
static int16_t mult[CO + 2] __attribute__((aligned(8)));
int main(void) {
  uint32_t x = 12345u;
  for (int i = 0; i < (int)sizeof dy; ++i) dy[i] = (int8_t)((x = x * 1103515245u + 12345u) >> 24);
  for (int i = 0; i < (int)sizeof w; ++i) w[i] = (int8_t)((x = x * 1103515245u + 12345u) >> 24);
  int16_t m[CO];
  for (int o = 0; o < CO; ++o) m[o] = (int16_t)(100 + 17 * o);
  const tt_window win = {1, 1, 1, 1, 0, 0};
  float dy_scale = 0.01f, s_word = 0.0f, s_half = 0.0f;
  memcpy(mult, m, sizeof m);                            /* word-aligned */
  tt_conv2d_input_grad_s8(dy, &dy_scale, 0, 1, OH, OW, CO, w, mult, 0.001f, 1, 1, &win, OH, OW,
                          CI, dx_word, &s_word, 0, 0, 0);
  memcpy(mult + 1, m, sizeof m);                        /* 2 bytes past a word */
  tt_conv2d_input_grad_s8(dy, &dy_scale, 0, 1, OH, OW, CO, w, mult + 1, 0.001f, 1, 1, &win, OH,
                          OW, CI, dx_half, &s_half, 0, 0, 0);
  tt_rig_print(memcmp(dx_word, dx_half, sizeof dx_word) == 0 && s_word == s_half ? "PASS\n"
                                                                                 : "FAIL\n");
  return 0;
}
"""


class _Text:
    def __init__(self, text: str):
        self.text = text

    def source(self) -> str:
        return self.text


def test_pointwise_input_grad_takes_multipliers_at_2_byte_alignment(tmp_path):
    """tt_conv2d_input_grad_s8's int16 multipliers need only their type's alignment: the
    DSP staging reads them with LDR, not LDRD, which faults on the Cortex-M7 at an address
    that is not a multiple of 4 (a HardFault, no PASS). The call at a word and at a
    2-byte offset gives the same bits."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    rig.run_on_rig(_Text(MISALIGNED_MULTIPLIERS), tmp_path)


def test_optimistic_pass_equals_numpy():
    """The host's input_grad_s8 on the designed calls (optimistic_case) against numpy's rule:
    the guess holding (the probes found the maximum, or a kept row holds it) and failing (a
    row not probed one above the guess, and about twice it: the kept rows computed again,
    the stream started again from the op's state), to nearest and stochastically. The rig
    replays the same calls in both builds (test_grad_dsp_equals_portable_on_edge_shapes)."""
    from tflite_train.ops import quantgrad
    seen = []

    def check(case, dy, w, mult, mask, dx, scale, before, after):
        live = np.ones(dy.size, bool)
        if mask is not None:
            live = np.unpackbits(mask, bitorder="little")[:dy.size].astype(bool)
        h = np.where(live.reshape(dy.shape), dy.astype(np.int64), 0) * mult.astype(np.int64)
        acc = h @ w.astype(np.int64)
        rounding = None if before is None else {"rng": before}
        q, sc = quantgrad.quantize(acc, np.float32(0.03) * np.float32(1e-3), rounding)
        assert np.array_equal(dx, q), (case, before is not None)
        assert scale[0] == sc, (case, before is not None)
        if rounding is not None:
            assert after == rounding["rng"], case
        top = np.abs(acc).max(axis=1)
        seen.append((case, int(np.argmax(top))))

    optimistic_calls(c_kernels.library(), np.random.default_rng(5), check)
    # the designs put the maximum where they say
    where = {"probed": 20, "one_above": 25, "twice": 25, "twice_masked": 25, "kept_max": 3,
             "equal_rows": 0, "equal_rows_one_pass": 0, "equal_but_last": 31,
             "equal_but_last_byte": 31}
    assert {c for c, _ in seen} == set(where) and all(p == where[c] for c, p in seen), seen


def weighted_probe_case(row: int, units: int = 16, seed: int = 41):
    """A fully connected call of 64 positions (16 outputs, 24 input channels; 4 positions in
    a scratch: 20 kept, 44 unkept, 8 probes) whose largest accumulators are all in `row`:
    its only live output is output 0, of multiplier 256 and weights 127 (127 * 256 * 127 in
    every column), while every other row has |dy| = 100 in the 15 outputs of multiplier 4
    and weights of at most 3, and |dy| <= 20 in output 0 (at most about 0.67 M). Ranked by
    sum dy^2, `row` is the last of all (127^2 against 15 * 100^2); by sum (dy * mult)^2 the
    first. Returns dy, w [units, depth], mult, scratch positions."""
    rng = np.random.default_rng(seed)
    batches, depth = 64, 24
    mult = np.full(units, 4, np.int16)
    mult[0] = 256
    w = rng.integers(-3, 4, (units, depth)).astype(np.int8)
    w[0] = 127
    dy = rng.choice(np.array([-100, 100], np.int8), (batches, units))
    dy[:, 0] = rng.integers(-20, 21, batches)
    dy[row] = 0
    dy[row, 0] = 127
    return dy, w, mult, 4


def time_probed_calls(tmp_path, cases) -> list[int]:
    """Each case (dy, w, mult, scratch positions, mask or None) as a fully connected input
    gradient, checked against numpy's rule on the host, then timed on the rig (DSP build;
    instructions, rounded to 40): the instructions of each call, in order."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.ops import quantgrad
    calls: list = []
    with rig.recording(calls):
        lib = c_kernels.library()
        for dy, w, mult, kept, mask in cases:
            batches, units = dy.shape
            depth = w.shape[1]
            dx, scale = np.zeros((batches, depth), np.int8), np.zeros(1, np.float32)
            scratch = np.zeros(kept * depth, np.int32)
            state = c_kernels.UpdateState(0x9E3779B9, 3)
            lib.tt_fully_connected_input_grad_s8(
                i8(dy), rig_p(np.array([0.03], np.float32), C.c_float),
                None if mask is None else rig_p(mask, C.c_uint8), batches, units,
                i8(w), rig_p(mult, C.c_int16), C.c_float(1e-3), depth, i8(dx),
                rig_p(scale, C.c_float), C.byref(state), rig_p(scratch, C.c_int32), kept)
            live = np.ones(dy.size, bool) if mask is None else \
                np.unpackbits(mask, bitorder="little")[:dy.size].astype(bool)
            h = np.where(live.reshape(dy.shape), dy.astype(np.int64), 0) * mult
            q, sc = quantgrad.quantize(h @ w.astype(np.int64),
                                       np.float32(0.03) * np.float32(1e-3),
                                       {"rng": 0x9E3779B9})
            assert np.array_equal(dx, q) and scale[0] == sc
    program = rig.Program(timed=True)
    for call in calls:
        program.add(call)
    out = rig.run_on_rig(program, tmp_path, icount=True)
    ticks = {int(k): int(n) for k, n in re.findall(r"T(\d+) (\d+)", out)}
    return [40 * ticks[i] for i in range(len(cases))]


def test_probes_weigh_outputs_by_their_multipliers(tmp_path):
    """The optimistic pass probes the unkept rows of largest sum (dy * mult)^2 (row_norm) where
    40 or more rows are unkept (here 44): a
    row whose large sums come from one output of a large multiplier is probed, though its
    sum of dy^2 is the smallest, so the guess holds and the call costs what it costs when a
    kept row holds the maximum (the same walks); ranked by dy^2 alone it would be missed and
    every row computed again (about twice the instructions)."""
    cases = []
    for row in (40, 5):                       # unkept (probed by the weighting), kept
        dy, w, mult, kept = weighted_probe_case(row)
        acc = (dy.astype(np.int64) * mult.astype(np.int64)) @ w.astype(np.int64)
        assert int(np.argmax(np.abs(acc).max(axis=1))) == row
        h = dy.astype(np.int64) * mult
        assert int(np.argmax((h * h).sum(axis=1)[20:])) + 20 == 40 or row == 5
        assert int(np.argmin((dy.astype(np.int64) ** 2).sum(axis=1))) == row
        cases.append((dy, w, mult, kept, None))
    probed, kept = time_probed_calls(tmp_path, cases)
    print(f"the maximum probed: {probed:,} instructions; kept: {kept:,}")
    assert probed < 1.15 * kept, (probed, kept)


def masked_probe_case(row: int):
    """weighted_probe_case with 20 outputs (seed 43) and a mask: every other row's output 0 holds
    dy = -128 that the mask takes out, which ranks it above `row` (by (128 * 256)^2 against
    (127 * 256)^2) if the ranking reads masked-out outputs. With 20 outputs a row's mask
    starts on a byte in even rows and mid-byte in odd ones, so `row` 40 and the even
    decoys test row_norm's byte-aligned loop, 41 and the odd ones its other loop (each
    parity has 21 or 22 decoys among the 44 unkept rows: more than the 9 probes).
    Returns dy, w, mult, scratch positions, mask."""
    dy, w, mult, kept = weighted_probe_case(row, units=20, seed=43)
    live = np.ones(dy.shape, bool)
    decoys = [p for p in range(20, dy.shape[0]) if p != row]
    dy[decoys, 0] = -128
    live[decoys, 0] = False
    return dy, w, mult, kept, np.packbits(live.reshape(-1), bitorder="little")


def test_probes_rank_only_the_outputs_the_mask_lets_through(tmp_path):
    """A masked layer's probes are ranked by sum (dy * mult)^2 over its live outputs: the
    row holding the maximum is probed whether its mask starts on a byte (row 40) or not
    (41), so both cost what the call costs when a kept row holds it; ranked with the
    masked-out outputs, 43 decoys would take every probe and every row would be computed
    again (about twice the instructions)."""
    cases = []
    for row in (40, 41, 5):
        dy, w, mult, kept, mask = masked_probe_case(row)
        live = np.unpackbits(mask, bitorder="little")[:dy.size].reshape(dy.shape)
        h = np.where(live, dy.astype(np.int64), 0) * mult
        assert int(np.argmax(np.abs(h @ w.astype(np.int64)).max(axis=1))) == row
        raw = dy.astype(np.int64) * mult
        assert int(np.argmax((raw * raw).sum(axis=1))) != row
        cases.append((dy, w, mult, kept, mask))
    aligned, mid_byte, kept = time_probed_calls(tmp_path, cases)
    print(f"probed {aligned:,} (row 40) and {mid_byte:,} (row 41) instructions; kept: {kept:,}")
    assert aligned < 1.15 * kept and mid_byte < 1.15 * kept, (aligned, mid_byte, kept)
