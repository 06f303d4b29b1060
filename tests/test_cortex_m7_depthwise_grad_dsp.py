"""The Cortex-M DSP versions of the depthwise int8-gradient kernels (input gradient, weight
gradient and with it the fused weight update)
(micro_kernels/src/tt_depthwise_grad_dsp.h) against the portable C99 ones, bit for bit.

As test_cortex_m7_grad_dsp: every call is made on the host (portable C on x86) and recorded,
then replayed on the rig (QEMU mps2-an500) in the board's default build (the DSP versions)
and with -DTT_PORTABLE; both must give the host's bytes (outputs, scales, random streams,
untouched inputs). The calls are the shapes the DSP code treats specially: channel counts
that are not multiples of 4 (a partial last group) or of a block, blocks of channels (a
layer whose staging does not fit the buffer at once: stochastic two-pass rounding then
jumps the random stream over each position's other blocks, with and without its tables),
strides 1-3 (stride classes with 1, 2 or 3 taps, and none when the stride exceeds the
kernel), padding 0-3 on either side (zero columns staged on the left, the right
or both), kernels 1x1 to 8x8 and kh != kw, batches of two (the ring restarts), masks whose
bits start mid-byte, dy and w of -128 at the largest multiplier, one and two passes,
nearest and stochastic rounding, a first pass that skips the groups whose bound on their
accumulators cannot raise the largest magnitude (dy channels of graded sizes, at strides 1
and 2, and one channel's single large dy behind its own mask bit); and the layers it does not take (depth multiplier 2,
dilation 2, kernels of 8: portable). The fused update's rule (tt_param_grad.c: four weights
of a row at a time with their four channels' scales under the default rule, the rest one
at a time) on rows of 1-16 weights under every rule, with NaN, infinite and saturating
steps (update_rule_calls)."""
from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess

import numpy as np

import test_cortex_m7 as rig
from conftest import require_tool
from test_cortex_m7_grad_dsp import REAL, dy_of, i8, input_grad_variants, multipliers, rig_p
from tflite_train.runtime import c_kernels

SOURCE = c_kernels.ROOT / "src" / "tt_depthwise_grad_dsp.c"


def out_size(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    """The output size of a window of k taps, `pad` zeros before and after."""
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


# (n, h, w, c, kh, kw, stride, pad_top, pad_left, m, dilation)
INPUT_GRAD_SHAPES = [
    (1, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1), (1, 7, 5, 5, 3, 3, 1, 1, 1, 1, 1),
    (2, 6, 7, 13, 3, 3, 2, 0, 1, 1, 1), (1, 9, 8, 3, 3, 3, 2, 1, 0, 1, 1),
    (1, 8, 8, 17, 5, 5, 1, 2, 2, 1, 1), (1, 9, 9, 6, 5, 5, 2, 2, 2, 1, 1),
    (1, 10, 9, 4, 7, 7, 1, 3, 3, 1, 1), (1, 11, 11, 9, 7, 7, 3, 3, 1, 1, 1),
    (1, 5, 9, 7, 1, 3, 1, 0, 1, 1, 1), (1, 7, 4, 2, 3, 1, 3, 1, 0, 1, 1),
    (1, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1), (1, 6, 6, 5, 2, 2, 3, 0, 0, 1, 1),  # stride > kernel
    (1, 5, 5, 4, 3, 3, 1, 0, 0, 1, 1),                                        # valid
    (1, 3, 3, 300, 3, 3, 1, 1, 1, 1, 1),          # 75 groups: blocks of 42 and 33
    (1, 12, 12, 64, 3, 3, 1, 1, 1, 1, 1),         # 16 groups, one block of up to 20
    (1, 20, 20, 22, 7, 7, 1, 3, 3, 1, 1),         # blocks of 4 groups: 4, 2 (partial)
    (2, 7, 7, 30, 7, 7, 1, 3, 3, 1, 1),           # blocks of 6 groups, two images: the
                                                  # stochastic stream's jump tables
    (1, 6, 6, 6, 3, 3, 1, 1, 1, 2, 1),            # depth multiplier 2: portable
    (1, 7, 7, 5, 3, 3, 1, 2, 2, 1, 2),            # dilation 2: portable
    (1, 16, 16, 10, 8, 8, 2, 3, 3, 1, 1),         # MCUNet's 8x8 of stride 2
    (1, 12, 12, 3, 9, 9, 1, 4, 4, 1, 1),          # kernel 9: portable
    (1, 8, 8, 10, 8, 8, 2, 3, 3, 1, 1),           # every dy row staged (slots >= oh): the
    (1, 4, 4, 13, 5, 5, 1, 2, 2, 1, 1),           # tap rows at fixed steps (MCUNet's 8x8/2
                                                  # at 8x8 and 5x5 at 4x4), partial groups
    (1, 5, 2, 9, 3, 3, 1, 1, 1, 1, 1),            # 3x3/1 kept, 2 wide: below walk3's
                                                  # width (DW3_MIN_WIDTH 6)
    (1, 4, 1, 6, 3, 3, 1, 1, 1, 1, 1),            # one column (walk3 does not take it)
    (1, 4, 7, 53, 3, 3, 1, 2, 2, 1, 1),           # walk3 with padding 2 (no zero column on
                                                  # the left), an odd width, c >= 48: staged
                                                  # word by word, a partial group
    (1, 3, 20, 10, 3, 3, 1, 1, 0, 1, 1),          # walk3 at padding 0 on the left (two zero
                                                  # columns), group by group (wider than 16)
    (2, 8, 8, 21, 3, 3, 1, 1, 1, 1, 1),           # walk3 at 8x8: four pairs, no loop
                                                  # (tt_dsp_dw3_input_pairs_34, its first
                                                  # entry), two images, a partial group
    (1, 5, 13, 11, 3, 3, 1, 1, 0, 1, 1),          # walk3, odd width of six pairs (its
                                                  # first column through the entry, then
                                                  # the pairs' loop: odd entry 6), padding
                                                  # 0 on the left (odd entries 4 and 5:
                                                  # widths 9 and 7, in this list)
    (1, 4, 19, 6, 3, 3, 1, 1, 1, 1, 1),           # walk3, odd width of nine pairs, staged
                                                  # group by group (wider than 16)
    # walk3's pairs entered at every entry of the even copy by even rows (entries 3, 1
    # and 0: 5, 7 and 8 pairs; 2 is 12x12's) and by an odd row of five pairs (entry 7:
    # the first column, then the table's byte 3): four shapes, so that the layers after
    # keep their staging parts ((k + v) % 4 below)
    (1, 10, 10, 9, 3, 3, 1, 1, 1, 1, 1), (1, 5, 14, 5, 3, 3, 1, 1, 0, 1, 1),
    (1, 4, 16, 10, 3, 3, 1, 1, 1, 1, 1), (1, 6, 11, 7, 3, 3, 1, 1, 1, 1, 1),
    (2, 17, 16, 13, 3, 3, 2, 0, 0, 1, 1),         # walk2 (stride 2 kept, by channel and
                                                  # row): padding 0, column pairs only (ow 7:
                                                  # D[7] is a zero column), two images, a
                                                  # partial group
    (1, 18, 17, 6, 4, 4, 2, 1, 1, 1, 1),          # walk2 4x4/2 at padding 1: an odd column
                                                  # first, every dx row of two dy rows
    (1, 8, 20, 40, 3, 3, 2, 1, 1, 1, 1),          # walk2: an odd column first, an even one
                                                  # last, 40 channels (blocks where staged
                                                  # in part)
    (1, 9, 16, 24, 4, 4, 2, 2, 2, 1, 1),          # walk2 at padding 2 (the rows from S[1])
    # walk2's assembly rows (dwig30b) at its narrowest width (DW2_MIN_WIDTH 12) and the
    # width below (walk); the pairs' entries (eight a loop) 2, 1, 3, 4, 5, 6 and 0 (6, 7,
    # 5, 12, 11, 10 and 8 pairs; 7 is 20 columns' above), an odd column first and an even
    # one last, a partial group: eight shapes, so that the layers after keep their staging
    # parts ((k + v) % 4 below)
    (1, 12, 12, 20, 3, 3, 2, 0, 0, 1, 1), (1, 8, 14, 6, 4, 4, 2, 1, 0, 1, 1),
    (1, 6, 12, 5, 3, 3, 2, 1, 1, 1, 1), (1, 10, 11, 9, 3, 3, 2, 1, 1, 1, 1),
    (1, 6, 24, 7, 3, 3, 2, 1, 0, 1, 1), (1, 6, 22, 5, 4, 4, 2, 1, 0, 1, 1),
    (1, 5, 21, 6, 3, 3, 2, 0, 1, 1, 1), (1, 7, 18, 3, 4, 4, 2, 1, 1, 1, 1),
    # walk3 at its narrow width (DW3_NARROW_WIDTH 3: one odd column and one pair a channel
    # and row) at padding 1 and 2, and on either side of it (4 and 5 wide: walk; 2 wide is
    # above): four shapes, so that the layers after keep their staging parts
    (1, 4, 3, 10, 3, 3, 1, 1, 1, 1, 1), (2, 3, 3, 9, 3, 3, 1, 2, 2, 1, 1),
    (1, 6, 4, 7, 3, 3, 1, 1, 1, 1, 1), (1, 5, 5, 11, 3, 3, 1, 1, 1, 1, 1),
    # the unmasked rows' staging by group (dw3_stage_plain: wider than 16, fewer than 48
    # channels) at every head of outside columns: walk3 at padding 2 (L 0: none), an odd
    # width at padding 0 (L 3: two words), one group (L 2), and walk2 (L 1), 3 groups
    (1, 4, 18, 9, 3, 3, 1, 1, 2, 1, 1), (1, 4, 17, 8, 3, 3, 1, 1, 0, 1, 1),
    (1, 3, 17, 4, 3, 3, 1, 1, 1, 1, 1), (1, 7, 17, 12, 3, 3, 2, 1, 1, 1, 1),
    # walk2's row pairs (tt_dsp_dw2_quad, dwig31: 3x3, pad_left and width even) and its
    # narrow widths (DW2_NARROW_WIDTH 6, from DW2_NARROW_ROWS 4 whole rows): 6 columns (3
    # pairs: entry 5), 14 at padding 1 on top (the first row alone, py = 1), an odd height
    # (the last row alone), two images and a partial group (entry 1), 10 (entry 3), 18 at
    # padding 2 on the left (entry 7); beyond them, the walk: 3 rows, 4 columns, padding 1
    # on the left, an odd width: eight shapes, so that the layers after keep their staging
    # parts
    (1, 6, 6, 12, 3, 3, 2, 0, 0, 1, 1), (2, 7, 14, 5, 3, 3, 2, 1, 0, 1, 1),
    (1, 8, 10, 9, 3, 3, 2, 0, 0, 1, 1), (1, 5, 18, 6, 3, 3, 2, 0, 2, 1, 1),
    (1, 3, 6, 4, 3, 3, 2, 0, 0, 1, 1), (1, 8, 4, 8, 3, 3, 2, 0, 0, 1, 1),
    (1, 6, 8, 6, 3, 3, 2, 1, 1, 1, 1), (1, 6, 7, 8, 3, 3, 2, 0, 0, 1, 1),
    (1, 9, 9, 67, 3, 3, 1, 1, 1, 1, 1),           # 17 groups of 3 taps a row: the sums by
                                                  # row, a partial last group
    (1, 6, 6, 16, 3, 3, 1, 1, 1, 1, 1),           # SPIKE in the upper four of eight lanes
    (1, 7, 7, 42, 3, 3, 1, 1, 1, 1, 1),           # GRADED: the first pass skips the groups
                                                  # whose bound is under the largest so far
                                                  # (blocks of the chosen groups, a partial
                                                  # one, a kept prefix summed whole)
    (1, 9, 9, 32, 3, 3, 2, 1, 1, 1, 1),           # GRADED at stride 2 (the bounds by stride
                                                  # class) and c a multiple of 8 (the bounds'
                                                  # largest |dy| eight channels a mask byte)
    (1, 8, 8, 48, 7, 7, 2, 3, 3, 1, 1),           # GRADED: 7x7/2 (classes of 4x4 to 3x3
                                                  # taps), 48 channels
    (1, 4, 4, 100, 3, 3, 1, 1, 1, 1, 1),          # GRADED, CODED: a sixth of the staging,
                                                  # too little for the sorted bounds: the
                                                  # codes (in chunks of 64 channels, four
                                                  # at a time: c not a multiple of 8)
    (1, 8, 8, 96, 3, 3, 2, 1, 1, 1, 1),           # GRADED, CODED at stride 2, c a multiple
]                                                 # of 8 (the bounds eight channels at a time)
# shapes whose dy channels shrink by powers of two (as a trained layer's differ): most
# groups' bounds fall under the largest magnitude of the others
GRADED = tuple(range(len(INPUT_GRAD_SHAPES) - 5, len(INPUT_GRAD_SHAPES)))
# shapes run with this part of the staging asked for on every variant: the first pass's
# pruning with each channel's bound in a byte (tt_depthwise_grad_dsp.c, prune_walk), the
# 113 KB program's case (MobileNetV2's 336 channels at 984-2,376 B)
CODED = {len(INPUT_GRAD_SHAPES) - 2: 6, len(INPUT_GRAD_SHAPES) - 1: 5}
# the first of them with a channel whose largest accumulator equals its bound (below)
BOUNDED = len(INPUT_GRAD_SHAPES) - 2
# and of them one whose largest magnitude is one channel's single large dy, which only that
# channel's own mask bit lets through (its neighbour four lanes down has the bit clear): a
# bound taken with another lane's mask bits loses it
SPIKE, SPIKE_CHANNEL = len(INPUT_GRAD_SHAPES) - 4, 5
# and where c is a multiple of 8 (the bounds' largest |dy| eight channels a mask byte, its
# two halves): channel 13's spike, its neighbour four lanes down all zeros (a bound taken
# from the byte's lower half of lanes is 0, and the spike's channel is skipped)
SPIKES = {SPIKE: SPIKE_CHANNEL, len(INPUT_GRAD_SHAPES) - 6: 13}
# and on two of walk2's shapes, channel 1's largest magnitude in the odd first column (one
# dy at column 0 through the taps of kernel column 1) or the even last one (at column ow - 1
# through kernel column 2), where its other taps are 1 and the other dy small: the assembly
# rows test those columns' sums apart from the pairs' (dwig30b): shape -> (tap, dy column)
# (a tap (ky, kx) alone: the row pairs' quads, dwig31, test their four sums' exact
# magnitudes apart: (1, 1) reaches only row 2Y + 1's column 2X + 1, (1, 0) its column 2X;
# at stride 1, (1, 0) at dy column 0 only dx column 0)
COLUMN_SPIKES = {INPUT_GRAD_SHAPES.index((1, 6, 12, 5, 3, 3, 2, 1, 1, 1, 1)): (1, 0),
                 INPUT_GRAD_SHAPES.index((1, 7, 18, 3, 4, 4, 2, 1, 1, 1, 1)): (2, -1),
                 INPUT_GRAD_SHAPES.index((1, 8, 10, 9, 3, 3, 2, 0, 0, 1, 1)): ((1, 1), 1),
                 INPUT_GRAD_SHAPES.index((2, 7, 14, 5, 3, 3, 2, 1, 0, 1, 1)): ((1, 0), 2),
                 # walk3's odd first column (13 wide): the Q flag's rescan takes it alone
                 INPUT_GRAD_SHAPES.index((1, 5, 13, 11, 3, 3, 1, 1, 0, 1, 1)): ((1, 0), 0)}

# and on one of walk3's looping rows (stride 1, 18 wide: tt_dsp_dw3_input_pairs_even), the
# largest magnitude a negative sum exactly one above the largest before it: every channel's
# sums are its dy (one tap of 1, multipliers 1), channel 2 holds +127 in dy row 1 and -128 in
# row 2 (a power of two more: the rule's scale differs; 100 and -101 give the same). The
# loop's Q-flag test must flag v < -T (QSUB(R, v), R = 0x7FFFFFFF - T); QSUB(v, R) flags
# only v < -T - 1 and keeps 127 (dwig31's one unseen mutation: now MISMATCH of dx, its scale)
NEGATIVE_TIE = INPUT_GRAD_SHAPES.index((1, 4, 18, 9, 3, 3, 1, 1, 2, 1, 1))


def staging(name: str, *shape, part: int = 1):
    """A DSP version's staging for a layer (stage, stage_bytes): what `name`_stage_bytes asks
    for, or a `part`-th of it (smaller blocks of channels; too little for one: portable)."""
    n = int(c_kernels.K.host_call(name + "_stage_bytes", *shape, 0)) // part
    return rig_p(np.zeros(max(n, 8), np.uint8), C.c_uint8), n


def input_grad_calls(rng) -> None:
    lib = c_kernels.library()
    for k, (n, h, w, c, kh, kw, s, pt, pl, m, dil) in enumerate(INPUT_GRAD_SHAPES):
        oh, ow = out_size(h, kh, s, pt, dil), out_size(w, kw, s, pl, dil)
        dy = dy_of(rng, (n, oh, ow, c * m), sparse=k == 4)
        if k in GRADED:
            dy = (dy.astype(np.int32) >> (rng.permutation(c * m) % 8)).astype(np.int8)
        wt = rng.integers(-128, 128, (1, kh, kw, c * m)).astype(np.int8)
        mult, unit = multipliers(rng, c * m, kh * kw * m, special=k % 2 == 0)
        if k == 0:                                  # the largest terms: -128 * -128 * 2^k
            dy[...] = -128
            wt[...] = -128
            mult[:] = mult.max()
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        if k in SPIKES:
            spike = SPIKES[k]
            dy = (dy.astype(np.int32) >> 4).astype(np.int8)
            at = (0, oh // 2, ow // 2, spike)
            dy[..., spike] = 0
            if k != SPIKE:
                dy[..., spike - 4] = 0
            dy[at] = 127
            wt[..., spike] = -128
            mult[spike] = mult.max()
            i = int(np.ravel_multi_index(at, dy.shape))
            mask[i >> 3] |= np.uint8(1 << (i & 7))
            mask[(i - 4) >> 3] &= np.uint8(~(1 << ((i - 4) & 7)) & 0xFF)
        if k in COLUMN_SPIKES:
            tap, x = COLUMN_SPIKES[k]
            dy = (dy.astype(np.int32) >> 4).astype(np.int8)
            at = (0, oh // 2, x % ow, 1)
            dy[at] = 127
            wt[..., 1] = 1
            if isinstance(tap, tuple):
                wt[0, tap[0], tap[1], 1] = -128
            else:
                wt[0, :, tap, 1] = -128
            mult[1] = mult.max()
            i = int(np.ravel_multi_index(at, dy.shape))
            mask[i >> 3] |= np.uint8(1 << (i & 7))
        if k == NEGATIVE_TIE:
            dy = (dy.astype(np.int32) >> 4).astype(np.int8)
            wt[...] = 0
            wt[0, 1, 1, :] = 1
            mult[:] = 1
            for at, v in (((0, 1, 3, 2), 127), ((0, 2, 6, 2), -128)):
                dy[at] = v
                i = int(np.ravel_multi_index(at, dy.shape))
                mask[i >> 3] |= np.uint8(1 << (i & 7))
        if k == BOUNDED:
            # the coded bounds must round up: channel 50's largest accumulator (every
            # interior position: 9 taps of 100 * 101 * 200 = 18,180,000) is its bound, whose
            # code rounds it up to 9 << 21; channels 0-7 (a higher zone: the first block)
            # reach 17,556,480 (one position: 256 * 127 * 540) from a larger bound. Rounded
            # down (8 << 21 = 16,777,216), channel 50's would fall under that and the largest
            # magnitude miss it
            dy = (dy.astype(np.int32) >> 6).astype(np.int8)
            dy[..., :8] = 0
            for oy, ox, d in ((0, 0, 127), (0, 1, 127), (1, 0, 127), (1, 1, 127), (2, 2, 32)):
                dy[0, oy, ox, :8] = d
            wt[..., :8] = 127
            mult[:8] = 256
            dy[..., 50] = 101
            wt[..., 50] = 100
            mult[50] = 200
        win = c_kernels.Window(s, s, dil, dil, pt, pl)
        for v, (mask_p, dx, scale, state, scratch, kept) in enumerate(
                input_grad_variants(mask, (n, h, w, c), 4321 + k, 5)):
            # the staging asked for, and on some layers a third or a 40th of it: more,
            # smaller blocks of channels (and the jump tables), or too little (portable)
            part = CODED.get(k) or ((1, 1, 3, 40)[(k + v) % 4] if k >= 13 else 1)
            stage = staging("tt_depthwise_conv2d_input_grad_s8", n, oh, ow, c, m, kh, kw,
                            C.byref(win), h, w, part=part)
            lib.tt_depthwise_conv2d_input_grad_s8(
                i8(dy), rig_p(np.array([0.01], np.float32), C.c_float), mask_p, n, oh, ow, c,
                m, i8(wt), rig_p(mult, C.c_int16), C.c_float(unit), kh, kw, C.byref(win), h,
                w, dx, scale, state, scratch, kept, *stage)


# (n, h, w, c, kh, kw, stride, pad_top, pad_left, staging bytes (0: what _stage_bytes asks
# for)): the weight gradient's channel-major walk (tt_depthwise_grad_dsp.c, wg_walk): odd
# ow (a zero dy position ends the rows), both stride-2 phases in one walk (3x3/2 and 4x4/2
# from 32 columns on, odd and even ow), partial groups of channels, a staging that holds
# one tap row of x rows at a time (ky_step 1) and bands of fewer dy rows than oh. With the
# staging asked for, the stride-1 shapes whose band is one dy row (by wg_plan's arithmetic:
# 0, 1 and 7 here, and most of INPUT_GRAD_SHAPES' stride-1 layers, which weight_grad_calls
# also runs) take wg_walk_ring, the x rows a ring of kh slots (kern27; one image and two)
WEIGHT_GRAD_SHAPES = [
    (1, 9, 9, 12, 3, 3, 1, 1, 1, 0),          # ow 9, whole map, 3 groups
    (2, 7, 11, 7, 3, 3, 1, 0, 2, 0),          # pad_left 2, pad_top 0: edge pairs, c = 7
    (1, 6, 65, 5, 3, 3, 2, 0, 1, 0),          # 3x3/2, ow 33: both phases in one walk, c = 5
    (1, 5, 66, 8, 4, 4, 2, 1, 1, 0),          # 4x4/2, ow 32: both phases of two taps
    (1, 12, 12, 8, 3, 3, 1, 1, 1, 300),       # one tap row of x rows a staging, 1 dy row
    (1, 12, 12, 8, 3, 3, 1, 1, 1, 1000),      # bands of 3 dy rows of 12
    (1, 11, 13, 9, 5, 5, 1, 2, 2, 1200),      # 5x5 (4 + 1 taps), bands, c = 9
    (1, 10, 10, 6, 7, 7, 1, 3, 3, 0),         # 7x7/1: 4 + 3 taps
    (1, 7, 12, 6, 3, 3, 3, 1, 1, 0),          # stride 3: three phases of one tap, ow 4
                                              # (c 6: the small maps' walk takes c 4)
    (1, 9, 20, 4, 8, 8, 2, 3, 3, 0),          # 8x8/2 (two phases of four taps), ow 9
    # 4x4/2 in bands of 2 dy rows (the staging _stage_bytes asks for holds 1: the lane
    # walk): wg_sums_22's assembly loop, ow 33 (an odd pair after it) and 32, c 6 (a block
    # of 4 and one of 2)
    (1, 9, 66, 8, 4, 4, 2, 1, 1, 4000),
    (1, 10, 64, 6, 4, 4, 2, 1, 1, 4000),
    # the lane walk at strides 1-3, given the bytes _stage_bytes asked for until round 22 (it
    # now asks for the channel-major walk's band where they fell short of it): bands of one
    # dy row at strides 2 and 3 (3x3/2 of two images, c 13; 4x4/2; 3x3/3), and 7x7/1 where
    # no channel-major band fits
    (2, 6, 7, 13, 3, 3, 2, 0, 1, 352),
    (1, 18, 17, 6, 4, 4, 2, 1, 1, 400),
    (1, 7, 12, 6, 3, 3, 3, 1, 1, 128),
    (1, 10, 9, 4, 7, 7, 1, 3, 3, 144),
    # maps of up to 6 output columns, channels a multiple of 4: the small maps' walk
    # (dwig30, wg_small_walk): 3x3/2 of two images (the sums kept across them), 3x3/2
    # padded, stride 3 (three phases a staged x row), one position (every other tap empty:
    # 0 times unit), a 1x3 kernel, x 12x12 at stride 2 (144 staged positions, the limit),
    # dy 6x6 (36, the limit); beyond them, below 4 columns the portable loop: 5x5 (25 taps),
    # x 13x13 at stride 4 (208 staged), 6 channels; from 4 the other walks: dy 7x6 (42), x
    # 11x14 staged (154)
    (2, 6, 6, 12, 3, 3, 2, 0, 0, 0),
    (1, 5, 5, 4, 3, 3, 2, 1, 1, 0),
    (1, 7, 7, 8, 3, 3, 3, 1, 1, 0),
    (1, 1, 1, 4, 3, 3, 1, 1, 1, 0),
    (1, 2, 3, 4, 1, 3, 1, 0, 1, 0),
    (1, 12, 12, 8, 3, 3, 2, 0, 0, 0),
    (1, 6, 6, 4, 3, 3, 1, 1, 1, 0),
    (1, 3, 3, 4, 5, 5, 1, 2, 2, 0),
    (1, 13, 13, 4, 3, 3, 4, 0, 0, 0),
    (1, 3, 3, 6, 3, 3, 1, 1, 1, 0),
    (1, 7, 6, 4, 3, 3, 1, 1, 1, 0),
    (1, 11, 13, 4, 3, 3, 2, 0, 0, 0),
]


def weight_grad_calls(rng) -> None:
    """tt_depthwise_conv2d_weight_grad_s8 and the fused update (whose gradient it is) on the
    same shapes: the zero point at its extremes and 0, masks, momentum and stochastic
    rounding in the update."""
    lib = c_kernels.library()
    for k, (n, h, w, c, kh, kw, s, pt, pl, m, dil) in enumerate(INPUT_GRAD_SHAPES):
        oh, ow = out_size(h, kh, s, pt, dil), out_size(w, kw, s, pl, dil)
        dy = dy_of(rng, (n, oh, ow, c * m), sparse=k == 4)
        saved = rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)
        if k == 0:                                  # the largest terms: -128 * (127 + 128)
            dy[...] = -128
            saved[...] = 127
        zp = (-128, 127, 5, 0)[k % 4]
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        win = c_kernels.Window(s, s, dil, dil, pt, pl)
        for masked in (False, True):
            dw = np.zeros((1, kh, kw, c * m), np.float32)
            lib.tt_depthwise_conv2d_weight_grad_s8(
                i8(dy), rig_p(np.array([0.02], np.float32), C.c_float),
                rig_p(mask if masked else None, C.c_uint8), n, oh, ow, c, m, i8(saved),
                C.c_float(0.05), zp, h, w, kh, kw, C.byref(win), rig_p(dw, C.c_float),
                *staging("tt_depthwise_conv2d_weight_grad_s8", n, oh, ow, c, m, h, w, kh, kw,
                         C.byref(win), part=1 + 2 * masked))
        wt = rng.integers(-127, 128, (1, kh, kw, c * m)).astype(np.int8)
        scales = rng.uniform(0.001, 0.01, c * m).astype(np.float32)
        momentum = np.zeros((1, kh, kw, c * m), np.float32) if k % 2 else None
        sgd = c_kernels.Sgd(0.05, 0.9 if k % 2 else 0.0, 1, 1, 0)
        state = c_kernels.UpdateState(99 + k, 2)
        scratch = np.zeros(kh * kw * c * m, np.float32)
        lib.tt_depthwise_conv2d_weight_update_s8_s8(
            i8(dy), rig_p(np.array([0.02], np.float32), C.c_float), rig_p(mask, C.c_uint8), n,
            oh, ow, c, m, i8(saved), C.c_float(0.05), zp, h, w, i8(wt), kh, kw,
            rig_p(scales, C.c_float), c * m, C.byref(win), rig_p(momentum, C.c_float),
            C.byref(sgd), C.byref(state), rig_p(scratch, C.c_float),
            *staging("tt_depthwise_conv2d_weight_grad_s8", n, oh, ow, c, m, h, w, kh, kw,
                     C.byref(win)))
    for k, (n, h, w, c, kh, kw, s, pt, pl, size) in enumerate(WEIGHT_GRAD_SHAPES):
        oh, ow = out_size(h, kh, s, pt), out_size(w, kw, s, pl)
        dy = dy_of(rng, (n, oh, ow, c), sparse=False)
        saved = rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)
        zp = (-128, 127, 5, 0)[k % 4]
        mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
        win = c_kernels.Window(s, s, 1, 1, pt, pl)
        for masked in (False, True):
            buf = np.zeros(max(size, 8), np.uint8)     # kept alive until recorded
            stage = (staging("tt_depthwise_conv2d_weight_grad_s8", n, oh, ow, c, 1, h, w, kh,
                             kw, C.byref(win)) if size == 0 else (rig_p(buf, C.c_uint8), size))
            dw = np.zeros((1, kh, kw, c), np.float32)
            lib.tt_depthwise_conv2d_weight_grad_s8(
                i8(dy), rig_p(np.array([0.02], np.float32), C.c_float),
                rig_p(mask if masked else None, C.c_uint8), n, oh, ow, c, 1, i8(saved),
                C.c_float(0.05), zp, h, w, kh, kw, C.byref(win), rig_p(dw, C.c_float), *stage)


# (n, h, w, c, m, kh, kw, stride, pad): the fused update's rows of c * m weights around the
# default rule's fours (tt_param_grad.c update_fours, tt_qas_steps4_cols): 1-3 weights of a
# row after 0-3 fours (c * m = 1, 2, 3, 5, 6, 7, 9, 13), none (8, 16); depth multiplier 2
# (the portable gradient, the same update)
UPDATE_SHAPES = [
    (1, 5, 5, 5, 1, 3, 3, 1, 1), (1, 6, 6, 7, 1, 3, 3, 2, 1), (1, 4, 4, 3, 1, 3, 3, 1, 1),
    (1, 6, 6, 13, 1, 5, 5, 1, 2), (1, 5, 5, 3, 2, 3, 3, 1, 1), (1, 4, 4, 16, 1, 3, 3, 1, 1),
    (1, 4, 5, 9, 1, 2, 2, 1, 0), (1, 3, 3, 1, 1, 3, 3, 1, 1), (2, 3, 3, 2, 1, 3, 3, 1, 1),
    (1, 5, 5, 8, 1, 3, 3, 1, 1),
]
# (qas, rounding, momentum): the default rule (the fours), momentum, nearest, QAS off
UPDATE_RULES = [(1, 1, 0.0), (1, 1, 0.9), (1, 0, 0.0), (0, 1, 0.0), (0, 0, 0.9)]


def update_rule_calls(rng) -> None:
    """The depthwise fused update (tt_depthwise_conv2d_weight_update_s8_s8: per-channel
    scales along each of its kh * kw rows) on UPDATE_SHAPES under every rule of UPDATE_RULES,
    at a learning rate that makes steps of a few units (each weight's step depends on its own
    channel's scale: scales spread over 1:30, so a scale of the wrong channel changes steps),
    weights at -128 and 127; on two shapes under each rule without momentum also two channels of
    scale 0, one of them dead (g +-inf, and NaN under QAS), and one of 1e-30 (steps past
    256). Then the separate update
    (tt_update_weight_s8) of such rows: per-channel scales along the last axis (7 and 5
    channels) and one scale (10 weights a row), with NaN, infinite and huge gradients."""
    lib = c_kernels.library()
    for k, (n, h, w, c, m, kh, kw, s, pad) in enumerate(UPDATE_SHAPES):
        oh, ow = out_size(h, kh, s, pad), out_size(w, kw, s, pad)
        cm = c * m
        dy = dy_of(rng, (n, oh, ow, cm), sparse=False)
        saved = rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)
        win = c_kernels.Window(s, s, 1, 1, pad, pad)
        zp, dy_scale, x_scale = (-3, 5, 0)[k % 3], np.float32(0.02), np.float32(0.05)
        # the gradient, to scale the learning rate (on the host only: not recorded)
        dw = np.zeros(kh * kw * cm, np.float32)
        REAL.tt_depthwise_conv2d_weight_grad_s8(
            i8(dy), rig_p(np.array([dy_scale], np.float32), C.c_float), None, n, oh, ow, c, m,
            i8(saved), C.c_float(x_scale), zp, h, w, kh, kw, C.byref(win), rig_p(dw, C.c_float),
            None, 0)
        for r, (qas, rounding, mom) in enumerate(UPDATE_RULES):
            scales = np.exp(rng.uniform(np.log(0.001), np.log(0.03), cm)).astype(np.float32)
            # (not with momentum: a NaN's bits in the buffer are the FPU's, x86's differ)
            special = k in (0, 3) and not mom
            if special:
                scales[1], scales[2], scales[cm - 2] = 0.0, 0.0, 1e-30
                dy[..., 1] = 0                      # 0 / 0 under QAS: NaN
            with np.errstate(divide="ignore"):
                g = np.abs(dw.reshape(kh * kw, cm) / scales if qas
                           else dw.reshape(kh * kw, cm) * scales)
            typical = float(np.median(g[np.isfinite(g) & (g > 0)])) if np.any(g > 0) else 1.0
            lr = np.float32(3.0 / typical)
            wt = rng.integers(-128, 128, (1, kh, kw, cm)).astype(np.int8)
            wt.reshape(-1)[:4] = (-128, 127, -127, -128)
            momentum = (rng.uniform(-5, 5, (1, kh, kw, cm)).astype(np.float32) / lr
                        if mom else None)
            sgd = c_kernels.Sgd(float(lr), mom, qas, rounding, 0)
            state = c_kernels.UpdateState(777 + 10 * k + r, 2)
            lib.tt_depthwise_conv2d_weight_update_s8_s8(
                i8(dy), rig_p(np.array([dy_scale], np.float32), C.c_float),
                rig_p(rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
                      if (k + r) % 3 == 2 else None, C.c_uint8), n,
                oh, ow, c, m, i8(saved), C.c_float(x_scale), zp, h, w, i8(wt), kh, kw,
                rig_p(scales, C.c_float), cm, C.byref(win), rig_p(momentum, C.c_float),
                C.byref(sgd), C.byref(state), rig_p(np.zeros(kh * kw * cm, np.float32), C.c_float),
                *staging("tt_depthwise_conv2d_weight_grad_s8", n, oh, ow, c, m, h, w, kh, kw,
                         C.byref(win)))
    grads = np.array([-0.5, 2.5, np.nan, np.inf, -np.inf, 1e9, -1e9, 300.0, -256.5, 255.5,
                      3e-8, -7.25, 1e-40, 0.0, -0.0], np.float32)
    for r, (qas, rounding, mom) in enumerate(UPDATE_RULES):
        for dims, n_scales in (((3, 3, 7), 7), ((2, 2, 5), 5), ((3, 10), 1)):
            size = int(np.prod(dims))
            grad = rng.normal(0, 3, size).astype(np.float32)
            grad[:: 4] = np.resize(grads, grad[:: 4].size)
            scales = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n_scales)).astype(np.float32)
            wt = rng.integers(-128, 128, dims).astype(np.int8)
            momentum = rng.normal(0, 1, size).astype(np.float32) if mom else None
            state = c_kernels.UpdateState(555 + r, 1)
            lib.tt_update_weight_s8(i8(wt), rig_p(np.array(dims, np.int32), C.c_int32),
                                    len(dims), len(dims) - 1, rig_p(scales, C.c_float),
                                    n_scales, rig_p(grad, C.c_float), dims[-1],
                                    rig_p(momentum, C.c_float),
                                    C.byref(c_kernels.Sgd(1.0, mom, qas, rounding, 0)),
                                    C.byref(state))


def edge_calls() -> list:
    calls: list = []
    rng = np.random.default_rng(23)
    with rig.recording(calls):
        input_grad_calls(rng)
        weight_grad_calls(rng)
        update_rule_calls(rng)
    return calls


def test_depthwise_grad_dsp_is_chosen_at_compile_time(tmp_path):
    """The Cortex-M7 build has the DSP version (SMLABB); -DTT_PORTABLE and the Cortex-M3
    compile it to nothing, without warnings."""
    require_tool(bool(shutil.which("arm-none-eabi-gcc")), "arm-none-eabi-gcc")
    include = str(c_kernels.ROOT / "include")
    for cpu, extra, dsp in (("cortex-m7", [], True), ("cortex-m7", ["-DTT_PORTABLE"], False),
                            ("cortex-m3", [], False)):
        obj = tmp_path / f"{cpu}{len(extra)}.o"
        fpu = (["-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"] if cpu == "cortex-m7"
               else ["-mfloat-abi=soft"])
        subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", *fpu, "-std=c99", "-O2",
                        "-Wall", "-Wextra", "-Werror", *extra, "-I", include, "-c",
                        str(SOURCE), "-o", str(obj)], check=True)
        text = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True,
                              text=True, check=True).stdout
        assert bool(re.search(r"\ssmlabb\s", text)) == dsp, (cpu, extra)
        assert ("<tt_dsp_depthwise_input_grad_s8>" in text) == dsp, (cpu, extra)
        assert ("<tt_dsp_depthwise_weight_grad_s8>" in text) == dsp, (cpu, extra)


def test_depthwise_grad_dsp_equals_portable_on_edge_shapes(tmp_path):
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = edge_calls()
    assert {c.name for c in calls} >= {"tt_depthwise_conv2d_input_grad_s8",
                                       "tt_depthwise_conv2d_weight_grad_s8",
                                       "tt_depthwise_conv2d_weight_update_s8_s8"}
    # the input gradients (in three parts) and the weight gradients in four programs: fewer
    # would not fit the rig's 1 MB of flash (two parts of the input gradients no longer
    # did with round 29's rounding code: the second linked past the budget)
    inputs = [c for c in calls if "input_grad" in c.name]
    third = (len(inputs) + 2) // 3
    for part, group in (("input", inputs[:third]), ("input2", inputs[third:2 * third]),
                        ("input3", inputs[2 * third:]),
                        ("weight", [c for c in calls if "input_grad" not in c.name])):
        (tmp_path / part).mkdir()
        rig.run_in_both_builds(group, tmp_path / part)
    print(f"{len(calls)} edge-shape calls")
