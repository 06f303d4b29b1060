"""The Cortex-M DSP versions of the int8 forward kernels (SMLAD, SXTB16, ...: micro_kernels/src
tt_fwd_dsp.h) against the portable C99 ones, bit for bit.

A build for a core with the DSP extension (the board's Cortex-M7) compiles the DSP versions;
-DTT_PORTABLE, or a core without it (Cortex-M0+, M3), compiles the portable ones. The
reference is the host build (portable C on x86): every call below is made there first and
recorded (test_cortex_m7_forward's recorder), then replayed on the rig (QEMU mps2-an500) in
both Cortex-M7 builds, which must give the host's bytes. The calls: edge shapes the DSP code
handles in a special way (channel counts not a multiple of four, odd and single-column
blocks, the tail of a staged group, split filters at every alignment, padding, strides,
dilation, batches, kernels whose buffer does not fit and fall back to the portable code,
depth multipliers, 8-channel pointwise rows, blocks of 6, 8 and 4 pixels, chunks of 6 and
4; ADD on every pair of int8 inputs) with requantization parameters on both sides of the
one-multiply form's conditions (tt_fwd_dsp.h: left shifts, shifts past -21, multipliers
below 2^30 or 0, biases past 2^28, a large output offset, clamps that are not int8's range),
and the convolution, depthwise and fully connected calls of a forward pass of the zoo's
MobileNet-like model. The real models' layers (the person detector and the zoo) run
through the DSP build in test_cortex_m7_forward, against the same host results.
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import test_codegen_layouts
from conftest import require_tool
from test_cortex_m7_forward import (BOARD_CPU, SOURCES, build, forward_calls, programs,
                                    recording, rig_available, run_rig, source)
from test_c_forward import built_models
from test_cortex_m7 import Call, Memory, Program
from tflite_train import tflite_io
from tflite_train.cli import main
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_forward

DSP_KERNELS = {"tt_conv2d_s8", "tt_conv2d_split_s8", "tt_conv2d_wide_s8",
               "tt_fully_connected_s8", "tt_fully_connected_split_s8", "tt_depthwise_conv2d_s8",
               "tt_depthwise_conv2d_inplace_s8", "tt_add_s8"}
INCLUDE = str(c_forward.MICRO_KERNELS / "include")
# (-mcpu, -mfpu or None, whether the core has the DSP extension)
CORES = [("cortex-m7", "fpv5-sp-d16", True), ("cortex-m4", "fpv4-sp-d16", True),
         ("cortex-m33", "fpv5-sp-d16", True), ("cortex-m3", None, False),
         ("cortex-m0plus", None, False)]


def dims(shape) -> c_forward.Dims:
    return c_forward.Dims(*shape)


# --- the calls ---------------------------------------------------------------------------------

def quantization(rng, channels: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel multipliers and shifts: `real` ones (what converters make: [2^30, 2^31),
    a right shift), or `edge` ones that leave the one-multiply form: 0, 2^30 exactly,
    2^31 - 1, shifts 0, +3, -21 (its last), -22, -31 (a depthwise channel whose output is
    its offset for every sum: tt_dsp_rq_init_constant), small multipliers."""
    m = rng.integers(1 << 30, 1 << 31, channels, dtype=np.int64)
    s = rng.integers(-12, -4, channels, dtype=np.int64)
    if kind == "edge":
        specials = [(0, -7), (1 << 30, -9), ((1 << 31) - 1, -21), (1 << 30, -1),
                    (1518500250, 0), (1518500250, 3), (1 << 30, -22), ((1 << 31) - 1, -31),
                    (12345, -2)]
        for k in range(channels):
            if k % 2 == 1:
                m[k], s[k] = specials[(k // 2) % len(specials)]
    return m.astype(np.int32), s.astype(np.int8)


def biases(rng, channels: int, big: bool) -> np.ndarray:
    b = rng.integers(-3000, 3000, channels).astype(np.int64)
    if big:                       # past the one-multiply form's 2^28 (and near int32's ends)
        b[::3] = rng.choice([1 << 28, -(1 << 28), (1 << 30) + 7, -(1 << 30) - 5], b[::3].size)
    return b.astype(np.int32)


def int8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def weights(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)    # -128 too: the lanes' extreme


# (input offset, output offset, act_min, act_max): int8's whole range, ReLU-like, a narrow
# clamp, the offsets' extremes, an output offset past the one-multiply form's range
ACTIVATIONS = [(5, -3, -128, 127), (128, -128, -128, 127), (-127, 127, -128, 127),
               (0, 17, 17, 127), (-3, 4, -20, 50), (9, 300, -128, 127)]


def conv_calls(rng) -> None:
    """tt_conv2d_s8 / _split_s8 / tt_fully_connected_s8 / _split_s8 on edge shapes."""
    # (n, h, w, ci, co, kh, kw, stride, dilation, pad_top, pad_left, oh, ow)
    shapes = [
        (1, 5, 7, 3, 5, 1, 1, 1, 1, 0, 0, 5, 7),       # pointwise: 35 columns, 8 + ... + 2 + 1
        (2, 3, 3, 13, 6, 1, 1, 1, 1, 0, 0, 3, 3),      # batches, 13 channels: a tail group
        (1, 4, 4, 64, 17, 1, 1, 1, 1, 0, 0, 4, 4),
        (1, 2, 3, 300, 3, 1, 1, 1, 1, 0, 0, 2, 3),     # 600-byte columns: in chunks
        (1, 3, 3, 320, 40, 1, 1, 1, 1, 0, 0, 3, 3),    # chunks, three blocks of rows
        (1, 2, 5, 320, 7, 1, 1, 1, 1, 0, 0, 2, 5),     # chunks of 6 columns, then of 4
        (1, 2, 3, 301, 5, 1, 1, 1, 1, 0, 0, 2, 3),     # 301: blocks of 2 whole columns
        (1, 2, 4, 1100, 3, 1, 1, 1, 1, 0, 0, 2, 4),    # a column past the buffer: chunks
        (1, 1, 3, 1100, 2, 1, 1, 1, 1, 0, 0, 1, 3),    # and not 8 of them: portable
        (1, 2, 4, 1101, 2, 1, 1, 1, 1, 0, 0, 2, 4),    # nor whole groups: portable
        # pointwise through tt_dsp_mac8 (the assembly loop: an odd group count enters at
        # its second copy) and rows sharing their constants over Q staged blocks of 8
        (1, 7, 13, 8, 6, 1, 1, 1, 1, 0, 0, 7, 13),     # 91 columns: 11 blocks and 3
        (1, 5, 9, 4, 9, 1, 1, 1, 1, 0, 0, 5, 9),       # one group, 9 channels
        (1, 3, 11, 20, 7, 1, 1, 1, 1, 0, 0, 3, 11),    # five groups
        (2, 4, 5, 24, 5, 1, 1, 1, 1, 0, 0, 4, 5),      # six, batches
        (1, 2, 8, 14, 3, 1, 1, 1, 1, 0, 0, 2, 8),      # three groups and a half
        (1, 3, 5, 200, 9, 1, 1, 1, 1, 0, 0, 3, 5),     # 4 columns fit: tt_dsp_rows4's LDMs
        (1, 9, 9, 3, 7, 3, 3, 2, 1, 1, 1, 5, 5),       # im2col, padding
        (1, 12, 12, 3, 16, 4, 4, 2, 1, 1, 1, 6, 6),    # MCUNet's first layer, smaller
        (1, 4, 8, 4, 5, 3, 3, 1, 1, 1, 1, 4, 8),       # 32 columns: a block of 8, then 6s
        (2, 7, 6, 5, 4, 3, 3, 1, 2, 2, 1, 6, 5),       # dilation 2, batches, odd sizes
        (1, 6, 6, 2, 3, 5, 5, 1, 1, 2, 2, 6, 6),
        (1, 7, 7, 6, 5, 1, 1, 2, 1, 0, 0, 4, 4),       # 1x1 stride 2: not pointwise
        (1, 4, 5, 8, 4, 1, 1, 1, 1, 1, 1, 6, 7),       # 1x1 padded: zero columns
        (1, 6, 5, 4, 3, 2, 3, 1, 1, 0, 1, 5, 5),       # 2x3 kernel
        (1, 4, 4, 120, 2, 3, 3, 1, 1, 1, 1, 4, 4),     # 1080-element columns: portable
        # MCUNet's stem in int8's whole range: 100 columns (5 calls of 3 blocks of 6, then
        # 6 and 4), runs of 3 words staged unrolled, its rows' plan (dead rows among them)
        (1, 20, 20, 3, 16, 4, 4, 2, 1, 1, 1, 10, 10),
        # two images, border windows copied with the padding value 127 (input offset -127)
        (2, 7, 7, 4, 5, 3, 3, 2, 1, 1, 1, 4, 4),
        # rows widened once a call (tt_dsp_rows6w: 4 or more blocks of 6, up to 40
        # channels): clamped and with an output offset of 300 first (the C
        # requantization), then in int8's whole range (the last two)
        (1, 6, 5, 40, 7, 1, 1, 1, 1, 0, 0, 6, 5),
        (1, 5, 5, 4, 6, 1, 1, 1, 1, 0, 0, 5, 5),
        (1, 5, 5, 4, 6, 1, 1, 1, 1, 0, 0, 5, 5),
        (1, 6, 5, 40, 7, 1, 1, 1, 1, 0, 0, 6, 5),      # the widest row: 4 blocks, then 6
        (1, 5, 5, 4, 6, 1, 1, 1, 1, 0, 0, 5, 5),       # one group: 4 blocks, then 1
        # the stem's border windows staged from the image (stage_rows_in, stage_border):
        # two padding rows above, a word across the left edge (bytes 6-7 inside) and across
        # the right one (byte 8 inside), in int8's whole range, clamped and with an output
        # offset of 300; a window with fewer than 4 bytes inside (1 channel, 3 columns of
        # padding: byte by byte); 3x3 over 4 channels into 20; input offset 128 (padding
        # -128). (The widened rows: test_cortex_m7_stream_pack, a stream's row calls.)
        (1, 11, 13, 3, 16, 4, 4, 2, 1, 2, 2, 6, 7),
        (1, 6, 6, 1, 5, 4, 4, 1, 1, 3, 3, 9, 9),
        (1, 11, 13, 3, 16, 4, 4, 2, 1, 2, 2, 6, 7),
        (1, 11, 13, 3, 16, 4, 4, 2, 1, 2, 2, 6, 7),
        (1, 8, 8, 4, 20, 3, 3, 1, 1, 1, 1, 8, 8),
        (1, 10, 9, 3, 16, 4, 4, 2, 1, 1, 2, 5, 5),
    ]
    for k, (n, h, w, ci, co, kh, kw, s, d, pt, pl, oh, ow) in enumerate(shapes):
        act = ACTIVATIONS[k % len(ACTIVATIONS)]
        p = c_forward.ConvParams(s, s, d, d, pt, pl, *act)
        x, f = int8(rng, (n, h, w, ci)), weights(rng, (co, kh, kw, ci))
        for kind in ("real", "edge"):
            m, sh = quantization(rng, co, kind)
            b = biases(rng, co, kind == "edge")
            y = np.empty((n, oh, ow, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f,
                           b if k % 4 else None, dims(y.shape), y)
        for split in sorted({1, ci // 2, ci - 1} - {0}):   # every alignment of the seam
            lo, hi = np.ascontiguousarray(f[..., :split]), np.ascontiguousarray(f[..., split:])
            y = np.empty((n, oh, ow, co), np.int8)
            c_forward.call("tt_conv2d_split_s8", p, m, sh, dims(x.shape), x, dims(f.shape),
                           lo, split, hi, b, dims(y.shape), y)
    # round 30's 1x1 paths, tt_conv2d_s8 only (their split forms are the paths above), in
    # int8's whole range (the assembly's requantization; "edge" quantization the rest):
    rows30 = [
        # one column (tt_dsp_gemv2: rows two at a time, steps of 8 elements four a loop
        # entered at n / 8 mod 4 = 0, 3, 2, 1; odd rows, n not a multiple of 8, and rows
        # outside the assembly's requantization, as a block of one column): MCUNet's
        # 160 -> 1000 classifier, smaller; 8, 16, 24, 32, 40, 56 and 168 elements
        (1, 1, 1, 160, 13, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 8, 2, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 16, 6, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 24, 10, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 32, 2, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 40, 14, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 56, 4, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 168, 22, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 44, 6, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 40, 9, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 36, 4, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 12, 17, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 160, 8, 1, 1, 1, 1, 0, 0, 1, 1),
        (1, 1, 1, 160, 12, 1, 1, 1, 1, 0, 0, 1, 1),
        # 6 columns fit but not 8 (145-170 elements: blocks of 6, one a call): 16 columns
        # (6, 6, then 4), 13 (6, 6, 1), 7 of 148 elements
        (1, 2, 8, 160, 10, 1, 1, 1, 1, 0, 0, 2, 8),
        (1, 1, 13, 168, 6, 1, 1, 1, 1, 0, 0, 1, 13),
        (1, 1, 7, 148, 9, 1, 1, 1, 1, 0, 0, 1, 7),
        # columns of 48 and 32 elements in chunks of 16 (tt_dsp_colk: two middle chunks or
        # one, then the last): 16 rows in one pass, 28 in two (16 and 12), 12 and 4 rows;
        # 26 rows (not a multiple of 4: the blocks of 6)
        (1, 3, 5, 48, 16, 1, 1, 1, 1, 0, 0, 3, 5),
        (2, 2, 7, 48, 28, 1, 1, 1, 1, 0, 0, 2, 7),
        (1, 4, 4, 32, 12, 1, 1, 1, 1, 0, 0, 4, 4),
        (1, 1, 3, 32, 4, 1, 1, 1, 1, 0, 0, 1, 3),
        (1, 2, 5, 48, 26, 1, 1, 1, 1, 0, 0, 2, 5),
        # rows widened once a call two groups a step after an odd one (tt_dsp_rows6w: 3 and
        # 7 groups, 30 columns: 5 blocks of 6)
        (1, 5, 6, 12, 6, 1, 1, 1, 1, 0, 0, 5, 6),
        (1, 5, 6, 28, 5, 1, 1, 1, 1, 0, 0, 5, 6),
        (1, 3, 3, 48, 16, 1, 1, 1, 1, 0, 0, 3, 3),
        (1, 2, 2, 32, 16, 1, 1, 1, 1, 0, 0, 2, 2),
    ]
    for k, (n, h, w, ci, co, kh, kw, s, d, pt, pl, oh, ow) in enumerate(rows30):
        p = c_forward.ConvParams(s, s, d, d, pt, pl, *ACTIVATIONS[k % 3])
        x, f = int8(rng, (n, h, w, ci)), weights(rng, (co, kh, kw, ci))
        for kind in ("real", "edge"):
            m, sh = quantization(rng, co, kind)
            b = biases(rng, co, kind == "edge")
            y = np.empty((n, oh, ow, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f,
                           b if k % 4 else None, dims(y.shape), y)
    # split 1x1 filters whose seam is not a group's (tt_dsp_rows6s/4s read each segment's
    # last group into the next row's first weights, times staged zeros; the last rows in C):
    # MobileNetV2's blocks.14.pointwise1 (7 of 56 trained, 16 columns: 6 + 6 + 4) with every
    # row in the assembly's requantization, then 5 of 9 (lo and hi both past a group) over
    # 13 columns (6 + 6 + 1), edge quantization (runs of rows), and 1 of 6 over 4 rows:
    # only row 0's 4-weight read of its 1 stays inside the filter; output offsets -5 and
    # -128 (the expansions' ReLU6)
    seams = [(16, 56, 21, 7, "real"), (13, 9, 10, 5, "real"), (16, 56, 21, 7, "edge"),
             (10, 6, 4, 1, "real")]
    for (n_cols, ci, co, k, kind), out_offset in itertools.product(seams, (-5, -128)):
        p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, 3, out_offset, -128, 127)
        x, f = int8(rng, (1, 1, n_cols, ci)), weights(rng, (co, 1, 1, ci))
        m, sh = quantization(rng, co, kind)
        b = biases(rng, co, False)
        y = np.empty((1, 1, n_cols, co), np.int8)
        c_forward.call("tt_conv2d_split_s8", p, m, sh, dims(x.shape), x, dims(f.shape),
                       np.ascontiguousarray(f[..., :k]), k,
                       np.ascontiguousarray(f[..., k:]), b, dims(y.shape), y)
    # fully connected: (batches, depth, units)
    for k, (batches, depth, units) in enumerate([(1, 7, 5), (3, 33, 10), (9, 256, 4),
                                                 (1, 1, 3), (2, 1100, 2), (5, 20, 6),
                                                 (1, 600, 20)]):
        act = ACTIVATIONS[k % len(ACTIVATIONS)]
        p = c_forward.FcParams(*act)
        x, f = int8(rng, (batches, depth)), weights(rng, (units, depth))
        for kind in ("real", "edge"):
            m, sh = quantization(rng, units, kind)
            b = biases(rng, units, kind == "edge")
            y = np.empty((batches, units), np.int8)
            c_forward.call("tt_fully_connected_s8", p, m, sh, batches, depth, x, units, f,
                           b if k % 2 else None, y)
        for split in sorted({1, depth // 2, depth - 1} - {0}):
            y = np.empty((batches, units), np.int8)
            c_forward.call("tt_fully_connected_split_s8", p, m, sh, batches, depth, x, units,
                           np.ascontiguousarray(f[:, :split]), split,
                           np.ascontiguousarray(f[:, split:]), b, y)


def pointwise8_calls(rng) -> None:
    """1x1 convolutions of 8 and 16 input channels whose every row requantizes in int8's
    whole range: 8 channels and an odd number of rows (tt_dsp_row8: the weights held in
    registers; an odd and an even number of columns, more than one staged batch of 128); an
    even number (tt_dsp_col8/16: the column in registers, the rows from records, in passes
    of up to 64 / 42 rows: 2 rows, 64 in one pass, one column, 66 in two); the offsets'
    extremes, the one-multiply form's corners (multipliers 2^30 and 2^31 - 1, right shifts
    1 and 21); and with edge quantization (the block form)."""
    shapes = [(5, 7, 9, 8), (12, 13, 5, 8), (4, 8, 16, 8), (3, 5, 2, 8), (2, 7, 64, 8),
              (1, 1, 6, 8), (3, 3, 66, 8),
              # 16 channels: one pass of 2, 8 and 42 rows, two of 22 and of 24, three of 30,
              # 30 and 26; 7 rows (the block form)
              (3, 5, 2, 16), (4, 9, 8, 16), (1, 3, 42, 16), (2, 3, 44, 16), (3, 4, 48, 16),
              (1, 1, 86, 16), (2, 5, 7, 16),
              # 8 rows a loop with output offset -128 (k % 3 = 1: the _low forms) and not
              (2, 3, 24, 16), (3, 3, 16, 8), (4, 5, 16, 16)]
    for k, (h, w, co, ci) in enumerate(shapes):
        p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, *ACTIVATIONS[k % 3])
        x, f = int8(rng, (1, h, w, ci)), weights(rng, (co, 1, 1, ci))
        for kind in ("real", "corner", "edge"):
            m, sh = quantization(rng, co, "edge" if kind == "edge" else "real")
            if kind == "corner":
                m[::2], m[1::2] = 1 << 30, (1 << 31) - 1
                sh[::3], sh[1::3] = -1, -21
            y = np.empty((1, h, w, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f,
                           biases(rng, co, False) if k % 4 else None, dims(y.shape), y)


def one_shift_calls(rng) -> None:
    """1x1 convolutions of 8 and 16 input channels, output offset -128, whose rows the
    one-shift column kernels take (tt_fwd_dsp.c: tt_dsp_col8x16_e, tt_dsp_col16x8_e: every
    e in [E - 7, E - 1] = [4, 10], 16 / 8 rows a loop) and the ones next to them that must
    not: e 3 or 11 in one row, a bias one past the scaled sums' bound 2^(s + 1) (|bias| +
    K (128 + |input_offset|) 128) < 2^31 and one at it, 80 rows of 8 (two passes of 40),
    output offset -127; every input value against weights -128, 127, +-1 with the
    multipliers 2^30 (ties), 2^31 - 1 and shifts 4, 5, 9, 10."""
    E = 11
    # (h, w, co, ci, input offset): one pass of 16, 32, 48 and 64 rows of 8, of 8, 24 and
    # 40 of 16; 48 of 16 in two passes of 24; 80 of 8 in two of 40 (not 16 a loop)
    shapes = [(3, 5, 16, 8, 128), (2, 7, 32, 8, -127), (1, 9, 48, 8, 6), (2, 2, 64, 8, 0),
              (3, 3, 8, 16, 128), (2, 5, 24, 16, -12), (1, 6, 40, 16, 127),
              (2, 3, 48, 16, 0), (1, 4, 80, 8, 5)]
    for h, w, co, ci, io in shapes:
        x, f = int8(rng, (1, h, w, ci)), weights(rng, (co, 1, 1, ci))
        sums = ci * (128 + abs(io)) * 128
        for case in ("in", "e low", "e high", "bias at", "bias past", "offset"):
            m = rng.integers(1 << 30, 1 << 31, co).astype(np.int32)
            m[:2] = (1 << 30, (1 << 31) - 1)
            e = rng.integers(E - 7, E, co)
            e[:4] = (E - 7, E - 1, E - 7, E - 1)
            b = biases(rng, co, False)
            if case == "e low":
                e[co // 2] = E - 8
            if case == "e high":
                e[-1] = E
            if case in ("bias at", "bias past"):    # s = 7 (e = 4): |bias| + sums < 2^23
                e[1:3] = E - 7
                b[1:3] = (1 << 23) - sums - (1 if case == "bias at" else 0)
                b[2] *= -1
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, io, -127 if case == "offset" else -128,
                                     -128, 127)
            y = np.empty((1, h, w, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, (-e).astype(np.int8), dims(x.shape), x,
                           dims(f.shape), f, None if case == "in" and co == 32 else b,
                           dims(y.shape), y)
    xs = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    for ci, co in ((8, 16), (16, 8)):
        xk = np.ascontiguousarray(np.stack([np.roll(xs[..., 0], j) for j in range(ci)], 3))
        f = np.zeros((co, 1, 1, ci), np.int8)
        f[:, 0, 0, 0] = np.resize([-128, 127, 1, -1], co)
        f[1::2, 0, 0, 1:] = np.resize(np.array([1, -2, 3, -128, 127], np.int8),
                                      (co // 2, ci - 1))
        m = np.resize(np.array([1 << 30, (1 << 31) - 1], np.int32), co)
        sh = np.resize(np.array([-4, -5, -9, -10], np.int8), co)
        b = np.resize(np.array([0, -1, 1, 12345, -98765], np.int32), co)
        for io in (128, 0, -128):
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, io, -128, -128, 127)
            y = np.empty((1, 16, 16, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(xk.shape), xk, dims(f.shape), f, b,
                           dims(y.shape), y)


def rows_one_calls(rng) -> None:
    """1x1 convolutions whose rows all requantize in the assembly but one (tt_fwd_dsp.c:
    rows_one_all tests four rows a step without a branch a row, the rest as rows_one): a
    shift of 0, -22 or -31, a multiplier 2^30 - 1, 2^29, negative or 0 (shift -1), a bias
    of 2^28, -2^28, 2^30 + 7 or INT32_MIN, at row 0, in a step's middle or among the last
    rows (10 rows: 8 in steps, 2 after); and the edges that stay in: shifts -1 and -21,
    multipliers 2^30 and 2^31 - 1, biases +-(2^28 - 1). Pointwise products of 24 (the rows
    kernels), 8 and 16 (the column kernels) elements and one column (tt_dsp_gemv2)."""
    bad = [("shift", 0), ("shift", -22), ("shift", -31), ("mult", (1 << 30) - 1),
           ("mult", 1 << 29), ("mult", -1518500250), ("mult", 0), ("bias", 1 << 28),
           ("bias", -(1 << 28)), ("bias", (1 << 30) + 7), ("bias", -(1 << 31))]
    for k, (what, value) in enumerate(bad + [("edges", 0)]):
        for ci, co, hw in ((24, 10, 5), (8, 16, 3), (16, 8, 4), (32, 10, 1)):
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, *ACTIVATIONS[k % 3])
            x, f = int8(rng, (1, hw, hw, ci)), weights(rng, (co, 1, 1, ci))
            m, sh = quantization(rng, co, "real")
            b = biases(rng, co, False)
            if what == "edges":
                sh[:2], m[2:4], b[4:6] = (-1, -21), (1 << 30, (1 << 31) - 1), (
                    (1 << 28) - 1, 1 - (1 << 28))
            else:
                row = (0, co // 2 + 1, co - 1)[k % 3]
                {"shift": sh, "mult": m, "bias": b}[what][row] = value
                if what == "mult":    # shift -1: ties (the low form's a < 0) often
                    sh[row] = -1
            y = np.empty((1, hw, hw, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f, b,
                           dims(y.shape), y)


def rows_one_tie_calls(rng) -> None:
    """Rows that only rows_one_all's multiplier test keeps out of the assembly: a negative
    multiplier (-2^30, -1518500250), shift -1, an output offset that is not -128 (the
    sign-corrected form: (h + c - [a < 0]) >> e). With m < 0 the sign of the rounded
    product h is not the accumulator's, so where h lands exactly on a tie of the shift
    (h = 2^(e - 1) mod 2^e: h odd for e = 1) the form's - [a < 0] rounds it down where
    RoundingDivideByPOT rounds it up (and the other way for a > 0): one unit off. The
    other forms are exact for these multipliers (m in (0, 2^30), or the -128 offset's low
    form: every a < 0 clamps there). Each such row is among the rows tested four a step
    (row 1 and 2), its weights 2 and -1 on the channel that carries int8's every value,
    so that small accumulators of both signs reach every residue; the rows kernels (24
    elements), the column kernels (8, 16) and one column (tt_dsp_gemv2: a = -1)."""
    for ci, co, hw in ((24, 8, 16), (8, 16, 16), (16, 8, 16), (32, 8, 1)):
        for out_off in (0, 3):
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, 0, out_off, -128, 127)
            x = np.zeros((1, hw, hw, ci), np.int8)
            x[..., 0] = np.arange(-128, 128).reshape(hw, hw) if hw == 16 else -1
            x[..., 1:] = int8(rng, (1, hw, hw, ci - 1)) // 64      # small: |a| stays < 2^9
            f = weights(rng, (co, 1, 1, ci))
            f[1:3] = 0
            f[1, 0, 0, 0], f[2, 0, 0, 0] = 2, -1
            m, sh = quantization(rng, co, "real")
            m[1:3], sh[1:3] = (-(1 << 30), -1518500250), -1
            b = biases(rng, co, False)
            b[1:3] = 0
            y = np.empty((1, hw, hw, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f, b,
                           dims(y.shape), y)


# (h, w, ci, co, output offset): the column kernels' products (8 and 16 elements, an even
# number of rows; -128: the one-shift kernels, 16 / 8 rows a loop) and a 48-row one
MISALIGNED_SHAPES = [(3, 5, 8, 16, -128), (2, 7, 16, 8, -128), (4, 4, 8, 10, -5),
                     (3, 3, 16, 48, 7)]
# where each call's input starts past the harness's 8-byte aligned place
MISALIGNMENTS = (1, 2, 3)


def misaligned_calls(rng) -> list[int]:
    """1x1 convolutions of MISALIGNED_SHAPES whose input the rig gets at 1, 2 or 3 bytes
    past a word (tt_fwd_dsp.c: cols_ok takes word-aligned columns only, one LDM a column;
    the others run tt_dsp_row8's mm_k8 or the blocks), tt_conv2d_s8 and tt_conv2d_wide_s8
    with the code generator's row records (which it then ignores: `wide = 0`); every row
    in the one-shift kernels' range (e in [4, 10]). Returns each recorded call's shift
    (MisalignedProgram.add_shifted); the host's calls are on aligned arrays (the bytes are
    what the rig compares: alignment changes none)."""
    shifts = []
    for k, (h, w, ci, co, out_off) in enumerate(MISALIGNED_SHAPES):
        p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, (-12, 128, 0)[k % 3], out_off, -128, 127)
        x, f = int8(rng, (1, h, w, ci)), weights(rng, (co, 1, 1, ci))
        m = rng.integers(1 << 30, 1 << 31, co).astype(np.int32)
        sh = (-rng.integers(4, 11, co)).astype(np.int8)
        b = biases(rng, co, False)
        for d in MISALIGNMENTS:
            y = np.empty((1, h, w, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f, b,
                           dims(y.shape), y)
            wide = test_codegen_layouts.layouts.records(f, b, m, sh, out_off, p.input_offset)
            shifts += [d] * 3                      # the call above, wide_equals_int8's two
            assert test_codegen_layouts.wide_equals_int8(p, m, sh, x, f, wide, b)
    return shifts


class MisalignedProgram(Program):
    """test_cortex_m7.Program whose calls get their input (argument 4) `shift` bytes past
    the arena's 8-byte aligned place: the argument's bytes (before and after) recorded
    behind `shift` zeros, and the call's pointer moved past them."""

    def add_shifted(self, call: Call, shift: int) -> None:
        arg = call.args[4]
        pad = bytes(shift)
        moved = Call(call.name, [*call.args[:4], Memory(pad + arg.before, pad + arg.after),
                                 *call.args[5:]], call.restype, call.result)
        offset = sum((len(a.before) + 7) // 8 * 8 for a in call.args[:4]
                     if isinstance(a, Memory))
        self.add(moved)
        pointer = f"(void *)(A.bytes + {offset})"
        assert self.cases[-1].count(pointer) == 1, self.cases[-1]
        self.cases[-1] = self.cases[-1].replace(pointer,
                                                f"(void *)(A.bytes + {offset + shift})")


def depthwise_calls(rng) -> None:
    """tt_depthwise_conv2d_s8 (any depth multiplier) and the in-place kernel on edge shapes."""
    # (n, h, w, c, m, kh, kw, stride, dilation, pad_top, pad_left, oh, ow)
    shapes = [
        (1, 9, 9, 8, 1, 3, 3, 1, 1, 1, 1, 9, 9),
        (1, 8, 7, 5, 1, 3, 3, 2, 1, 0, 1, 4, 4),       # a group of 1 channel, stride 2
        (2, 6, 6, 7, 1, 3, 3, 1, 1, 1, 1, 6, 6),       # batches, a group of 3
        (1, 5, 200, 6, 1, 3, 3, 1, 1, 1, 1, 5, 200),   # wide: the band in chunks
        (1, 12, 12, 4, 1, 5, 5, 1, 1, 2, 2, 12, 12),
        (1, 10, 10, 3, 1, 7, 7, 1, 1, 3, 3, 10, 10),
        (1, 16, 16, 12, 1, 4, 4, 2, 1, 1, 1, 8, 8),    # the imported models' grown kernels
        (1, 16, 40, 8, 1, 8, 8, 2, 1, 3, 3, 8, 20),
        (1, 7, 7, 4, 1, 2, 2, 1, 1, 0, 0, 6, 6),
        (1, 6, 6, 9, 1, 1, 1, 1, 1, 0, 0, 6, 6),
        (1, 6, 5, 4, 1, 3, 1, 1, 1, 1, 0, 6, 5),       # kh != kw
        (1, 5, 6, 4, 1, 1, 3, 1, 1, 0, 1, 5, 6),
        (1, 11, 11, 4, 1, 3, 3, 1, 2, 2, 2, 11, 11),   # dilation 2
        (1, 9, 1, 4, 1, 3, 3, 1, 1, 1, 1, 9, 1),       # one column
        (1, 3, 3, 1, 1, 3, 3, 3, 1, 0, 0, 1, 1),       # stride 3
        (1, 20, 20, 4, 1, 17, 17, 1, 1, 8, 8, 4, 4),   # taller than the DSP path: portable
        (1, 20, 24, 4, 1, 15, 20, 1, 1, 7, 9, 6, 5),   # packed filter past the buffer
        (1, 12, 12, 1, 8, 3, 3, 2, 1, 0, 0, 6, 6),     # the person detector's first layer
        (2, 7, 6, 3, 2, 3, 3, 1, 1, 1, 1, 7, 6),       # depth multiplier 2, batches
        (1, 6, 6, 2, 3, 5, 5, 2, 2, 3, 3, 3, 3),       # 3, dilation 2
        (1, 5, 5, 1, 64, 7, 7, 1, 1, 3, 3, 5, 5),      # 64: groups of one input channel
        (1, 20, 24, 1, 4, 15, 20, 1, 1, 7, 9, 6, 5),   # those past the buffer: im2col
        (1, 17, 17, 1, 7, 17, 17, 1, 1, 0, 0, 1, 1),   # a filter past the buffer: portable
        # 3x3 windows in pairs (tt_dsp_dw3x3_s1/_s2: int8's whole range, the rows
        # ACTIVATIONS[k % 6] with k % 6 < 3), an odd last window in C
        (1, 6, 6, 8, 1, 3, 3, 1, 1, 1, 1, 6, 6),
        (1, 7, 13, 16, 1, 3, 3, 2, 1, 1, 1, 4, 7),     # stride 2, 7 windows, 4 groups
        (1, 5, 3, 4, 1, 3, 3, 1, 1, 1, 1, 5, 3),       # 3 windows: 1 pair and 1
        (1, 9, 9, 2, 4, 3, 3, 2, 1, 1, 1, 5, 5),       # depth multiplier 4
        (1, 4, 2, 4, 1, 3, 3, 1, 1, 1, 1, 4, 2),
        (1, 5, 4, 6, 1, 3, 3, 1, 1, 0, 0, 3, 2),       # VALID
        (1, 5, 5, 9, 1, 3, 3, 1, 1, 1, 1, 5, 5),
        (1, 6, 1, 4, 1, 3, 3, 1, 1, 1, 1, 6, 1),       # one window: no pair
        (2, 6, 10, 4, 1, 3, 3, 2, 1, 0, 0, 2, 4),      # stride 2 VALID, batches
        (1, 4, 64, 16, 1, 3, 3, 1, 1, 1, 1, 4, 64),    # wide; 16 channels: the 'edge'
        # quantization's fourth group is all shifts -22 and -31 (tt_dsp_rq_init_constant)
        # windows taller than the map (MCUNet's 5x5 on 4x4): rows outside it above and below
        # at once, staged masked per row count (stage_masked_5/_7)
        (1, 4, 4, 8, 1, 5, 5, 1, 1, 2, 2, 4, 4),
        (1, 3, 5, 4, 1, 7, 7, 1, 1, 3, 3, 3, 5),
        # the same with int8's whole range (k % 6 = 5, 0): the sums requantized in registers
        # (outputs_5x5, outputs_7x7)
        (1, 4, 4, 8, 1, 5, 5, 1, 1, 2, 2, 4, 4),
        (1, 3, 5, 4, 1, 7, 7, 1, 1, 3, 3, 3, 5),
    ]
    for k, (n, h, w, c, mult, kh, kw, s, d, pt, pl, oh, ow) in enumerate(shapes):
        act = ACTIVATIONS[k % len(ACTIVATIONS)]
        p = c_forward.ConvParams(s, s, d, d, pt, pl, *act)
        cm = c * mult
        x, f = int8(rng, (n, h, w, c)), weights(rng, (1, kh, kw, cm))
        for kind in ("real", "edge"):
            m, sh = quantization(rng, cm, kind)
            b = biases(rng, cm, kind == "edge")
            depthwise_call(p, m, sh, x, f, b, b if k % 3 else None, (n, oh, ow, cm),
                           mult == 1 and oh * ow <= h * w)
    # a group's rows in one tt_dsp_dw3_run (even widths, int8's whole range, the pairs with
    # and without the sign correction): its top and bottom rows only, one pair a row, stride 2
    # with and without border rows, 4x4 maps of 3 groups and batches, the first row inside
    # and the last at the bottom, a map of 1 row (masked: C's loop), dilation 2 (the generic
    # DSP sums: the 3x3 path wants dilation_w 1), and dilation (2, 1) (height, width): its two
    # top rows (C's loop) and its one top row, eight inside and one bottom (a run of taps 2
    # rows apart); (n, h, w, c, stride, dilation, pad_top, pad_left, oh, ow)
    runs = [(1, 2, 4, 4, 1, 1, 1, 1, 2, 4), (1, 3, 2, 8, 1, 1, 1, 1, 3, 2),
            (1, 9, 8, 8, 2, 1, 1, 1, 5, 4), (1, 7, 9, 4, 2, 1, 0, 0, 3, 4),
            (2, 4, 4, 12, 1, 1, 1, 1, 4, 4), (1, 5, 6, 4, 1, 1, 0, 1, 4, 6),
            (1, 1, 6, 4, 1, 1, 1, 1, 1, 6), (1, 9, 8, 4, 1, 2, 2, 2, 9, 8),
            (1, 9, 8, 4, 1, (2, 1), 2, 1, 9, 8), (1, 12, 8, 4, 1, (2, 1), 1, 1, 10, 8)]
    for act in ACTIVATIONS[:2]:
        for n, h, w, c, s, d, pt, pl, oh, ow in runs:
            dh, dw = d if isinstance(d, tuple) else (d, d)
            p = c_forward.ConvParams(s, s, dh, dw, pt, pl, *act)
            x, f = int8(rng, (n, h, w, c)), weights(rng, (1, 3, 3, c))
            m, sh = quantization(rng, c, "real")
            b = biases(rng, c, False)
            depthwise_call(p, m, sh, x, f, b, b, (n, oh, ow, c), oh * ow <= h * w)


def depthwise_call(p, m, sh, x, f, b, b_out, y_shape, in_place: bool) -> None:
    """tt_depthwise_conv2d_s8 (bias b_out) and, where `in_place`, the in-place kernel (bias b)
    on the same layer."""
    y = np.empty(y_shape, np.int8)
    c_forward.call("tt_depthwise_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f, b_out,
                   dims(y.shape), y)
    if in_place:
        nbytes = c_forward.call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", p,
                                dims(x.shape), dims(f.shape), dims(y.shape))
        data, scratch = x.copy(), np.zeros(max(nbytes, 1), np.int8)
        assert c_forward.call("tt_depthwise_conv2d_inplace_s8", p, m, sh, dims(x.shape), data,
                              dims(f.shape), f, b, dims(y.shape), scratch) == 0


def depthwise_slow_channel_calls(rng) -> None:
    """Depthwise layers whose groups of four mix channels of the one-multiply form with
    channels outside it (tt_fwd_depthwise.c's slow channels: the group stays on the fast path,
    their sums start from 0 and C adds the bias, wrapping, and requantizes): biases at
    int32's ends whose sums wrap, shifts 0 and +2, a multiplier below 2^30, next to ordinary
    channels; the 3x3 pairs in assembly (odd widths, stride 2, a row in chunks, a depth
    multiplier of 4, a 4x4 map), the sums in memory (5x5, 4x4/2), and in place."""
    specials = {1: ((1 << 30) + 5, -27, (1 << 31) - 1), 6: (1134765312, -27, -(1 << 31)),
                9: (1691025280, -24, -1377137152), 11: (1518500250, 0, 40),
                12: ((1 << 29) + 3, -3, -7), 14: (1 << 30, 2, 3)}
    # (h, w, c, mult, kh, kw, stride, pad_top, pad_left, oh, ow)
    shapes = [(7, 9, 16, 1, 3, 3, 1, 1, 1, 7, 9), (9, 11, 15, 1, 3, 3, 2, 1, 1, 5, 6),
              (4, 4, 16, 1, 3, 3, 1, 1, 1, 4, 4), (3, 130, 16, 1, 3, 3, 1, 1, 1, 3, 130),
              (6, 5, 4, 4, 3, 3, 1, 1, 1, 6, 5), (4, 4, 16, 1, 5, 5, 1, 2, 2, 4, 4),
              (8, 8, 16, 1, 4, 4, 2, 1, 1, 4, 4)]
    for act in ((128, -128, -128, 127), (128, -128, -128, 60)):
        for (h, w, c, mult, kh, kw, s, pt, pl, oh, ow) in shapes:
            cm = c * mult
            p = c_forward.ConvParams(s, s, 1, 1, pt, pl, *act)
            m, sh = quantization(rng, cm, "real")
            b = biases(rng, cm, False)
            for j, (mj, sj, bj) in specials.items():
                if j < cm:
                    m[j], sh[j], b[j] = mj, sj, bj
            x, f = int8(rng, (1, h, w, c)), weights(rng, (1, kh, kw, cm))
            depthwise_call(p, m, sh, x, f, b, b, (1, oh, ow, cm), mult == 1)


def requantization_calls() -> None:
    """Every int8 input through 1x1 convolutions and depthwise layers whose channels hold the
    one-multiply form's corners: multipliers 2^30 (half of every odd sum a tie), 2^30 + 1,
    2^31 - 1, right shifts 1, 2, 3, 5 and 21, weights +-1, +-2, 127 and -128, biases of
    both signs up to 2^27: tens of thousands of accumulators, ties and signs included."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    mults = [1 << 30, (1 << 30) + 1, (1 << 31) - 1, 1518500250]
    shifts = [-1, -2, -3, -5, -21]
    ws = [1, -1, 2, -2, 127, -128]
    bs = [0, -1, 1, -12345, 98765, (1 << 27) - 1, -(1 << 27)]
    chans = [(mults[k % 4], shifts[k % 5], ws[k % 6], bs[k % 7]) for k in range(60)]
    m = np.array([c[0] for c in chans], np.int32)
    sh = np.array([c[1] for c in chans], np.int8)
    b = np.array([c[3] for c in chans], np.int32)
    co = len(chans)
    for act in ((0, -3, -128, 127), (-1, 6, -128, 127), (3, 0, -100, 90)):
        p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, *act)
        f = np.array([c[2] for c in chans], np.int8).reshape(co, 1, 1, 1)
        y = np.empty((1, 16, 16, co), np.int8)
        c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f, b,
                       dims(y.shape), y)
        xs = np.ascontiguousarray(np.repeat(x, co, axis=3))
        f = np.ascontiguousarray(f.reshape(1, 1, 1, co))
        y = np.empty(xs.shape, np.int8)
        c_forward.call("tt_depthwise_conv2d_s8", p, m, sh, dims(xs.shape), xs, dims(f.shape),
                       f, b, dims(y.shape), y)
    # the same corners through the K = 8 and 16 rows 8 a loop (tt_dsp_col8x8/16x8 and their
    # _low forms: an output offset of -128 drops the sign correction; -127 and 0 must not),
    # every input value in channel 0 against the corner weight, small weights elsewhere
    chans = chans + chans[:4]
    m = np.array([c[0] for c in chans], np.int32)
    sh = np.array([c[1] for c in chans], np.int8)
    b = np.array([c[3] for c in chans], np.int32)
    co = len(chans)
    for k in (8, 16):
        xk = np.ascontiguousarray(np.stack([np.roll(x[..., 0], j) for j in range(k)], axis=3))
        f = np.zeros((co, 1, 1, k), np.int8)
        f[:, 0, 0, 0] = [c[2] for c in chans]
        f[1::3, 0, 0, 1:] = np.resize(np.array([1, -2, 3, -1, 0], np.int8), (len(f[1::3]), k - 1))
        for act in ((128, -128, -128, 127), (0, -128, -128, 127), (-1, -127, -128, 127),
                    (0, 0, -128, 127)):
            p = c_forward.ConvParams(1, 1, 1, 1, 0, 0, *act)
            y = np.empty((1, 16, 16, co), np.int8)
            c_forward.call("tt_conv2d_s8", p, m, sh, dims(xk.shape), xk, dims(f.shape), f, b,
                           dims(y.shape), y)


def add_calls() -> None:
    """tt_add_s8 on every pair of int8 inputs (a 256 x 256 grid) for
    parameters on both sides of the DSP version's conditions (tt_fwd_elementwise.c): the
    output multiplier 2^30 (ties), 2^31 - 1, output shifts -1, -21 and -22, input multipliers
    2^30 with shift 0 (the larger scale's input) and 2^31 - 1, offsets at int8's ends, an
    output offset past +-256, scaled inputs whose sum reaches 2^29, and a clamp."""
    a = np.tile(np.arange(-128, 128, dtype=np.int8), 256)
    b = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)
    for params in (
            (0, -14, 12, 20, 1150568910, -1, 1 << 30, 0, 1082203597, -18, -128, 127),
            (128, -127, -128, 20, (1 << 31) - 1, -1, 1 << 30, -3, 1 << 30, -21, -128, 127),
            (-127, 128, 255, 20, 1 << 30, 0, (1 << 31) - 1, -2, (1 << 31) - 1, -1, -128, 127),
            (3, -5, -256, 20, 1518500250, -1, 1 << 30, 0, 1904674158, -19, -20, 50),
            (1, 1, 4, 20, 2069100239, -1, 1 << 30, 0, 1600434252, -22, -128, 127),
            (7, 7, 256, 20, 2069100239, -1, 1 << 30, 0, 1600434252, -19, -128, 127),
            (128, 128, 0, 20, (1 << 31) - 1, 0, (1 << 31) - 1, 0, 1 << 30, -8, -128, 127)):
        p = c_forward.AddParams(*params)
        out = np.empty_like(a)
        c_forward.call("tt_add_s8", p, a, b, a.size, out)


def add_table_calls() -> None:
    """tt_add_s8 on every 17th pair of the 256 x 256 grid (all 256 values of each input)
    for the tables' other parameters and the element loop's tails (tt_fwd_elementwise.c's
    add_table and add_lookup): a program of their own (the edge shapes' fill the rig's
    flash)."""
    a2 = np.tile(np.arange(-128, 128, dtype=np.int8), 256)[::17].copy()
    b2 = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)[::17].copy()
    # the tables' other parameters (add_table: a negative input multiplier, an input shift
    # > 0, (x + offset) << shift reaching 2^31 or just below it), which add_table builds
    # entry by entry or by its running sum, and a left shift 0 (outputs that see each
    # table entry's rounding: ties of negative values); sizes off the four-element words
    # (1-3 left over) at odd addresses
    for params in (
            (0, -14, 12, 20, -1150568910, -1, 1 << 30, 0, 1082203597, -18, -128, 127),
            (5, -9, 3, 20, 1 << 30, 2, (1 << 31) - 1, -3, 1 << 30, -21, -128, 127),
            (0, 1, 0, 23, 1 << 30, -1, 1 << 30, -2, 1 << 30, -18, -128, 127),
            (1, 0, 0, 24, 1 << 30, -3, 1 << 30, -3, 1 << 30, -18, -128, 127),
            (-1, 2, 0, 21, 1 << 30, 1, 1 << 30, 0, 1 << 30, -17, -100, 100),
            (0, 0, 0, 0, 1 << 30, -1, 1 << 30, -2, 1 << 30, -1, -128, 127),
            (127, 0, 0, 20, (1 << 31) - 1, 1, 1 << 30, -1, (1 << 31) - 1, -21, -128, 127),
            (0, -127, 0, 20, 1 << 30, -1, (1 << 31) - 1, 1, (1 << 31) - 1, -21, -128, 127),
            # input 1's a(x) reaching 2^31 - 2^24 (|a| >= 2^30: its doubled entries wrap),
            # which the running-sum form must report as its maximum (the review's case:
            # with the wrapped entries' maximum, the lookup differed from add1)
            (127, 0, 0, 23, (1 << 31) - 1, 0, 1 << 30, -8, 1 << 30, -21, -128, 127)):
        p = c_forward.AddParams(*params)
        for start, size in ((0, a2.size), (1, a2.size - 2), (3, 1), (2, 7)):
            out = np.zeros(size, np.int8)
            c_forward.call("tt_add_s8", p, a2[start:start + size], b2[start:start + size],
                           size, out)


def grown_calls(rng) -> None:
    """The importer's grown kernels (its 3x3/2 and 7x7/2 layers as 4x4/2 and 8x8/2 with a
    last row and column of zero taps, SAME padding) through tt_conv2d_s8 and
    tt_depthwise_conv2d_s8, which compute fewer taps for them (tt_fwd_conv.c:
    trailing_zero_rows, tt_fwd_depthwise.c: dw_trim); the DSP build's bits against the
    portable build's, which computes every tap (a program of their own: the edge shapes'
    fill the rig's flash)."""
    # stems, whose zero last rows the im2col path leaves out: 49 columns in int8's whole
    # range and clamped; two zero rows; a zero row but for one tap (none left out). Those
    # with one zero row and a zero last column stage 28 values a column (tt_fwd_conv.c's
    # stem_packs): with the input offsets' extremes (128, -127); SAME on 13x13 and 12x11
    # (7x7 and 6x6 out: windows past the bottom and right edges too, stage_stem_border);
    # and a zero last column but for one tap (the 36-value columns).
    for h, w, act, zero_rows, tap, oh, ow in [
            (14, 14, 0, 1, 0, 7, 7), (14, 14, 4, 1, 0, 7, 7), (11, 13, 1, 2, 0, 5, 6),
            (11, 13, 0, 1, 1, 5, 6), (13, 13, 1, 1, 0, 7, 7), (12, 11, 2, 1, 0, 6, 6),
            (14, 14, 0, 1, 2, 7, 7)]:
        p = c_forward.ConvParams(2, 2, 1, 1, 1, 1, *ACTIVATIONS[act])
        x, f = int8(rng, (1, h, w, 3)), weights(rng, (16, 4, 4, 3))
        f[:, 4 - zero_rows:] = 0
        f[:, :, 3] = 0
        if tap == 1:
            f[5, 3, 1, 2] = -1
        if tap == 2:
            f[9, 2, 3, 1] = 3
        m, sh = quantization(rng, 16, "real")
        y = np.empty((1, oh, ow, 16), np.int8)
        c_forward.call("tt_conv2d_s8", p, m, sh, dims(x.shape), x, dims(f.shape), f,
                       biases(rng, 16, False), dims(y.shape), y)
    # depthwise layers, computed as the smaller window: in int8's whole range (the 3x3
    # pairs; ACTIVATIONS[0]) or clamped ([3]), a group of 3, depth multiplier 4; a kernel whose last row only is zero (4x3 computed, kind 1) and one whose last
    # column is zero but for one tap (its last row zero: 3x4 computed, the column kept,
    # kind 2); out of place and in place
    grown = [(16, 16, 12, 1, 4, 8, 8, 0, 0), (16, 14, 7, 1, 4, 8, 7, 3, 0),
             (16, 20, 4, 1, 8, 8, 10, 0, 3), (9, 9, 2, 4, 4, 5, 5, 0, 0),
             (10, 10, 4, 1, 4, 5, 5, 1, 0), (10, 10, 4, 1, 4, 5, 5, 2, 3)]
    for h, w, c, mult, k, oh, ow, kind, act in grown:
        pad = (k - 2) // 2
        p = c_forward.ConvParams(2, 2, 1, 1, pad, pad, *ACTIVATIONS[act])
        cm = c * mult
        x, f = int8(rng, (1, h, w, c)), weights(rng, (1, k, k, cm))
        f[:, k - 1] = 0
        if kind != 1:
            f[:, :, k - 1] = 0
        if kind == 2:
            f[0, 1, k - 1, cm - 1] = 1
        m, sh = quantization(rng, cm, "real")
        b = biases(rng, cm, False)
        depthwise_call(p, m, sh, x, f, b, b, (1, oh, ow, cm), mult == 1)


def round18_calls(rng) -> None:
    """The depthwise paths of round 18 (tt_fwd_depthwise.c; a program of their own: the edge
    shapes' fill the rig's flash)."""
    # 5x5 windows in assembly over their columns inside the image only
    # (tt_dsp_dw5x5, and _low for an output offset of -128): 4x4 and 2x2 maps (every window
    # clipped, both sides on 2x2), 1 row, VALID, stride 2 on odd sizes, a wide map in chunks
    # (45 columns: chunks of 30 and 15); a depth multiplier of 8 and 4 with 3x3 windows
    # (stage_one_k's unrolled rows; a band staged once for the groups of one input channel,
    # dw_dsp_shared, up to 16, not 20; 12: an odd number of shared groups) at odd widths, stride 1 and 2, and in chunks; and in
    # place at stride 2 (a ring of one line: the rows straight over their input) on odd
    # sizes, VALID, batches, and rows in chunks (the ring kept); ACTIVATIONS[a]
    # (n, h, w, c, mult, k, stride, pad_top, pad_left, oh, ow, a)
    round18 = [
        (1, 4, 4, 8, 1, 5, 1, 2, 2, 4, 4, 0), (1, 4, 4, 8, 1, 5, 1, 2, 2, 4, 4, 1),
        (1, 2, 2, 4, 1, 5, 1, 2, 2, 2, 2, 2), (1, 1, 3, 4, 1, 5, 1, 2, 2, 1, 3, 1),
        (1, 6, 7, 8, 1, 5, 1, 0, 0, 2, 3, 0), (1, 9, 7, 4, 1, 5, 2, 2, 2, 5, 4, 1),
        (1, 3, 45, 4, 1, 5, 1, 2, 2, 3, 45, 0), (2, 5, 5, 12, 1, 5, 1, 2, 2, 5, 5, 1),
        (1, 11, 13, 1, 8, 3, 2, 1, 1, 6, 7, 1), (1, 5, 7, 1, 8, 3, 1, 1, 1, 5, 7, 0),
        (1, 7, 9, 2, 4, 3, 2, 0, 0, 3, 4, 2), (1, 5, 101, 1, 8, 3, 2, 1, 1, 3, 51, 1),
        (1, 9, 7, 8, 1, 3, 2, 1, 1, 5, 4, 1), (1, 11, 11, 12, 1, 3, 2, 0, 0, 5, 5, 0),
        (2, 8, 8, 4, 1, 3, 2, 0, 0, 4, 4, 1), (1, 13, 13, 4, 1, 3, 2, 1, 1, 7, 7, 2),
        (1, 3, 181, 4, 1, 3, 2, 1, 1, 2, 91, 1), (1, 7, 7, 4, 1, 3, 2, 1, 1, 4, 4, 4),
        (1, 6, 9, 2, 16, 3, 1, 1, 1, 6, 9, 0), (1, 4, 5, 1, 20, 3, 2, 1, 1, 2, 3, 1),
        (2, 5, 6, 3, 8, 3, 2, 0, 1, 2, 3, 2), (1, 5, 7, 1, 12, 3, 1, 1, 1, 5, 7, 0)]
    for n, h, w, c, mult, k, s, pt, pl, oh, ow, a in round18:
        p = c_forward.ConvParams(s, s, 1, 1, pt, pl, *ACTIVATIONS[a])
        cm = c * mult
        x, f = int8(rng, (n, h, w, c)), weights(rng, (1, k, k, cm))
        for kind in ("real", "edge"):
            m, sh = quantization(rng, cm, kind)
            b = biases(rng, cm, kind == "edge")
            depthwise_call(p, m, sh, x, f, b, b, (n, oh, ow, cm),
                           mult == 1 and oh * ow <= h * w)
    # the k groups of one input channel sharing a band (dw_dsp_shared) with slow channels
    # in them (depthwise_slow_channel_calls' kinds): depth multiplier 8, two input channels
    specials = {1: ((1 << 30) + 5, -27, (1 << 31) - 1), 6: (1134765312, -27, -(1 << 31)),
                9: (1691025280, -24, -1377137152), 11: (1518500250, 0, 40),
                12: ((1 << 29) + 3, -3, -7), 14: (1 << 30, 2, 3)}
    for act in ((128, -128, -128, 127), (-5, 3, -128, 127)):
        p = c_forward.ConvParams(2, 2, 1, 1, 1, 1, *act)
        m, sh = quantization(rng, 16, "real")
        b = biases(rng, 16, False)
        for j, (mj, sj, bj) in specials.items():
            m[j], sh[j], b[j] = mj, sj, bj
        x, f = int8(rng, (1, 7, 9, 2)), weights(rng, (1, 3, 3, 16))
        depthwise_call(p, m, sh, x, f, b, b, (1, 4, 5, 16), False)


def edge_calls() -> list:
    calls: list = []
    rng = np.random.default_rng(9)
    with recording(calls):
        requantization_calls()
        add_calls()
        conv_calls(rng)
        pointwise8_calls(rng)
        test_codegen_layouts.wide_calls(rng)
        test_codegen_layouts.record_calls(rng)
        test_codegen_layouts.stem_calls(rng)
        depthwise_calls(rng)
        depthwise_slow_channel_calls(rng)
    return calls


def layer_calls(zoo) -> list:
    """The DSP kernels' calls of a forward pass of the zoo's MobileNet-like model and of the
    graphs test_c_forward builds (batches, a depth multiplier, fully connected)."""
    calls = forward_calls(tflite_io.load(zoo["mobile"]))
    for g in built_models():
        calls += forward_calls(g)
    return [c for c in calls if c.name in DSP_KERNELS]


# --- the tests ---------------------------------------------------------------------------------

def disassembly(tmp_path, src, cpu: str, fpu: str | None, defines=()) -> str:
    obj = tmp_path / f"{src.stem}-{cpu}.o"
    flags = [f"-mcpu={cpu}", "-mthumb"] + (
        [f"-mfpu={fpu}", "-mfloat-abi=hard"] if fpu else ["-mfloat-abi=soft"])
    subprocess.run(["arm-none-eabi-gcc", *flags, "-std=c99", "-O2", "-Wall", "-Wextra",
                    "-Werror", *defines, "-I", INCLUDE, "-c", str(src), "-o", str(obj)],
                   check=True)
    return subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True,
                          text=True, check=True).stdout


def test_dsp_versions_are_chosen_at_compile_time(tmp_path):
    """Cores with the DSP extension compile the SMLAD versions of the convolution and
    depthwise kernels; -DTT_PORTABLE on the Cortex-M7, the Cortex-M3 and the Cortex-M0+
    (no DSP extension) compile every forward source without warnings and without the DSP
    versions' instructions (gcc itself may pick SMLABB or SSAT for portable C on a DSP core,
    never SMLAD, SXTAB16 or SMMLAR)."""
    require_tool(bool(shutil.which("arm-none-eabi-gcc")), "arm-none-eabi-gcc")
    dsp = re.compile(r"\s(smlad|sxtab16|smmlar)\s")
    for cpu, fpu, has_dsp in CORES:
        for defines in ([()] + ([("-DTT_PORTABLE",)] if has_dsp else [])):
            portable = not has_dsp or defines
            code = {src.name: disassembly(tmp_path, src, cpu, fpu, defines) for src in SOURCES}
            used = {name for name, text in code.items()
                    if dsp.search(text) or "<tt_dsp_" in text}    # or calls tt_fwd_dsp.c
            if portable:
                assert not used, (cpu, defines, used)
            else:
                assert {"tt_fwd_conv.c", "tt_fwd_depthwise.c", "tt_fwd_dsp.c"} <= used, (
                    cpu, used)


def run_builds(tmp_path, calls, name: str, core=None) -> None:
    """Every call replayed on the rig in the DSP build and in the portable one (on the M7,
    or on `core`: test_cortex_m7.CORTEX_M4)."""
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",))):
        for k, program in enumerate(programs(calls)):
            res = run_rig(build(tmp_path, f"{name}-{label}{k}", source(program), defines,
                                core), core=core)
            output = res.stdout + res.stderr
            assert res.returncode == 0 and "PASS" in output, (label, output[-2000:])


def test_dsp_equals_portable_on_edge_shapes(tmp_path):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = edge_calls()
    assert {c.name for c in calls} >= DSP_KERNELS
    run_builds(tmp_path, calls, "edge")
    print(f"{len(calls)} edge-shape calls")


def test_dsp_equals_portable_on_one_shift_columns(tmp_path):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with recording(calls):
        one_shift_calls(np.random.default_rng(31))
        test_codegen_layouts.one_shift_record_calls(np.random.default_rng(35))
    run_builds(tmp_path, calls, "one_shift")


def test_dsp_equals_portable_on_rows_one_edges(tmp_path):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with recording(calls):
        rows_one_calls(np.random.default_rng(32))
        rows_one_tie_calls(np.random.default_rng(33))
    run_builds(tmp_path, calls, "rows_one")


def test_dsp_equals_portable_on_misaligned_columns(tmp_path):
    """The column kernels' products given inputs that are not word-aligned (a caller's
    buffer: the kernels' own callers pass aligned ones), with and without the generator's
    records: their fallbacks give the host's bits, and no LDM faults."""
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with recording(calls):
        shifts = misaligned_calls(np.random.default_rng(34))
    assert len(shifts) == len(calls) == 3 * len(MISALIGNED_SHAPES) * len(MISALIGNMENTS)
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",))):
        program = MisalignedProgram()
        for call, shift in zip(calls, shifts):
            program.add_shifted(call, shift)
        res = run_rig(build(tmp_path, f"misaligned-{label}", source(program), defines))
        output = res.stdout + res.stderr
        assert res.returncode == 0 and "PASS" in output, (label, output[-2000:])


def test_dsp_equals_portable_on_round18_shapes(tmp_path):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with recording(calls):
        round18_calls(np.random.default_rng(18))
    assert {c.name for c in calls} >= {"tt_depthwise_conv2d_s8",
                                       "tt_depthwise_conv2d_inplace_s8"}
    run_builds(tmp_path, calls, "round18")


def test_dsp_equals_portable_on_the_cortex_m4(tmp_path):
    """The forward kernels' edge shapes on a Cortex-M4 (QEMU mps2-an386: the DSP extension,
    the same assembly compiled for another core's register and instruction choices): both
    builds give the host's bits there too."""
    from test_cortex_m7 import CORTEX_M4
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    run_builds(tmp_path, edge_calls(), "edge-m4", core=CORTEX_M4)


def test_dsp_add_equals_portable_on_its_tables(tmp_path):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with recording(calls):
        add_table_calls()
    assert len(calls) == 36
    run_builds(tmp_path, calls, "add")


def test_dsp_equals_portable_on_grown_kernels(tmp_path):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls: list = []
    with recording(calls):
        grown_calls(np.random.default_rng(10))
    assert {c.name for c in calls} >= {"tt_conv2d_s8", "tt_depthwise_conv2d_s8",
                                       "tt_depthwise_conv2d_inplace_s8"}
    run_builds(tmp_path, calls, "grown")


def test_dsp_equals_portable_on_real_layers(tmp_path, zoo):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = layer_calls(zoo)
    assert {c.name for c in calls} >= {"tt_conv2d_s8", "tt_depthwise_conv2d_s8",
                                       "tt_fully_connected_s8"}
    run_builds(tmp_path, calls, "layers")


# --- the build flag: TFLITE_TRAIN_KERNELS ------------------------------------------------------

def dsp_symbols(archive_or_object) -> set[str]:
    """The DSP versions' functions (tt_fwd_dsp.c: tt_dsp_*) a Cortex-M7 build defines."""
    res = subprocess.run(["arm-none-eabi-nm", "--defined-only", str(archive_or_object)],
                         capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in res.stdout.splitlines()
            if line.split() and line.split()[-1].startswith("tt_dsp_")}


def test_build_flag_selects_the_kernels(tmp_path):
    """TFLITE_TRAIN_KERNELS (micro_kernels/tflite_train.inc) through the kernels' Makefile and
    CMakeLists.txt for the board: dsp (the default) builds the DSP versions, portable does
    not, anything else is refused."""
    require_tool(all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-nm",
                                               "cmake", "make")),
                 "gcc-arm-none-eabi, cmake and make")
    root = c_forward.MICRO_KERNELS
    make = ["make", "-s", "-C", str(root), f"BUILD={tmp_path / 'make'}", "cortex-m7"]
    subprocess.run(make, check=True, capture_output=True)
    subprocess.run(make + ["TFLITE_TRAIN_KERNELS=portable"], check=True, capture_output=True)
    assert "tt_dsp_mm_blocks" in dsp_symbols(tmp_path / "make" / "m7" / "libtt_kernels.a")
    assert not dsp_symbols(tmp_path / "make" / "m7-portable" / "libtt_kernels.a")
    res = subprocess.run(make + ["TFLITE_TRAIN_KERNELS=neon"], capture_output=True, text=True)
    assert res.returncode != 0 and "TFLITE_TRAIN_KERNELS must be dsp or portable" in res.stderr
    # CMake: only tt_fwd_dsp.c's object (the rest is the Makefile's sources)
    build = tmp_path / "cmake"
    configure = ["cmake", "-S", str(root), "-B", str(build), "-DCMAKE_SYSTEM_NAME=Generic",
                 "-DCMAKE_SYSTEM_PROCESSOR=arm", "-DCMAKE_C_COMPILER=arm-none-eabi-gcc",
                 "-DCMAKE_CXX_COMPILER=arm-none-eabi-g++",
                 "-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY", "-DTFLITE_TRAIN_WHEEL_ABI=ON"]
    obj = build / "CMakeFiles" / "tflite_train.dir" / "src" / "tt_fwd_dsp.c.obj"
    for value, expected in (("dsp", True), ("portable", False)):
        subprocess.run(configure + [f"-DTFLITE_TRAIN_KERNELS={value}"], check=True,
                       capture_output=True)
        obj.unlink(missing_ok=True)
        subprocess.run(["make", "-s", "-C", str(build), "src/tt_fwd_dsp.obj"], check=True,
                       capture_output=True)
        assert bool(dsp_symbols(obj)) == expected, value
    res = subprocess.run(configure + ["-DTFLITE_TRAIN_KERNELS=neon"], capture_output=True,
                         text=True)
    assert res.returncode != 0 and "TFLITE_TRAIN_KERNELS must be dsp or portable" in res.stderr


def test_codegen_rig_builds_either_kernels(tmp_path, capsys):
    """`tflite-train codegen --rig --kernels portable|dsp`: the generated program with the
    portable or the DSP kernels on the rig, both bit-identical to --engine c; the DSP build
    has the DSP versions and needs fewer instructions per inference."""
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    model = tmp_path / "tiny.train.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "10",
                 "--scheme", "last:2"]) == 0
    runs = {}
    for kernels in ("portable", "dsp"):
        capsys.readouterr()
        out = tmp_path / kernels
        assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "1",
                     "--kernels", kernels, "--json"]) == 0
        runs[kernels] = json.loads(capsys.readouterr().out)
        assert runs[kernels]["identical_to_engine_c"] is True, runs[kernels]["differences"]
        assert runs[kernels]["kernels"] == kernels
        assert bool(dsp_symbols(out / "build" / "rig.elf")) == (kernels == "dsp")
    assert (runs["dsp"]["instructions_per_inference"]
            < runs["portable"]["instructions_per_inference"])
    assert main(["codegen", str(model), "-o", str(tmp_path / "x"), "--rig",
                 "--kernels", "neon"]) == 2
    err = capsys.readouterr().err
    assert err == "tflite-train: error: --kernels must be dsp or portable, not 'neon'\n"
