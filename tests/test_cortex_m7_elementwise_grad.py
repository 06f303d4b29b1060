"""The DSP versions of TT_SUM_GRAD's two-input int8 sum (tt_add_grad_s8: SMUAD sums of four
elements, the stochastic rule computed in registers) and of the global average pool's
gradient (tt_average_pool_grad_s8 with one window reading the whole image: dy copied or
rounded, no window search) against the portable C99, bit for bit, on the rig.

The calls are made on the host (portable C on x86) and recorded, then replayed on the rig
(QEMU mps2-an500) in the Cortex-M7 DSP build and in the -DTT_PORTABLE one; each must give
the host's bytes (dx, dx's scale, the random stream). The edge shapes: sizes that are not
multiples of the DSP block of four (the tail), 1-3 elements (no block at all), scales of
either input the larger, equal, a million times apart (a multiplier of 0 or 1), zero
(both multipliers 0: every sum 0), extreme values (-128 in both at the largest multipliers),
sums whose largest magnitude is 0, at most 127 (exact: no draws), 128-255 (the rule's
doubled accumulator) and larger, both roundings; for the pool, channel counts off the
rounder's block of 8, batches, padded windows that still read every input, dy of -128
(A = 128: rounded, not copied), and windows one row or column short of the image (the
portable walk, in both builds).
"""
from __future__ import annotations

import ctypes as C
import shutil

import numpy as np

import test_cortex_m7 as rig
from conftest import require_tool
from tflite_train.runtime import c_kernels


def i8(a):
    return c_kernels._p(a, C.c_int8)


def f32(v: float):
    return c_kernels._p(np.array([v], np.float32), C.c_float)


def state(seed: int):
    s = c_kernels.UpdateState()
    s.rng, s.step = 0x9E3779B9 ^ (seed * 7919), 0
    return s


def add_grad_calls(rng) -> None:
    lib = c_kernels.library()
    scales = [(0.02, 0.02), (0.05, 0.01), (0.003, 0.04), (1.0, 1e-6), (1e-6, 1.0),
              (0.0, 0.03), (0.0, 0.0), (1.0, 0.01), (1.0, 0.005)]
    for size in (1, 3, 4, 5, 7, 8, 64, 203, 896):
        for k, (sa, sb) in enumerate(scales):
            for values in ("random", "extreme", "zero", "small"):
                a = rng.integers(-128, 128, size).astype(np.int8)
                b = rng.integers(-128, 128, size).astype(np.int8)
                if values == "extreme":
                    a[::2] = -128
                    b[::3] = -128
                    a[1::4] = 127
                elif values == "zero":
                    a[:] = 0
                    b[:] = 0
                elif values == "small":
                    # the larger input all 0, the other +-1: sums of +-mb (exact for a
                    # multiplier <= 127, doubled for 128-255)
                    a[:] = 0
                    b = rng.integers(-1, 2, size).astype(np.int8)
                for stochastic in (True, False):
                    if not stochastic and (size not in (5, 203, 896) or values == "zero"):
                        continue
                    dx = np.zeros(size, np.int8)
                    scale = np.zeros(1, np.float32)
                    st = state(size * 31 + k) if stochastic else None
                    lib.tt_add_grad_s8(i8(a), f32(sa), i8(b), f32(sb), size, i8(dx),
                                       c_kernels._p(scale, C.c_float),
                                       C.byref(st) if st is not None else None)


def window(stride_h, stride_w, pad_top, pad_left):
    return c_kernels.K.make_struct("tt_window", stride_h=stride_h, stride_w=stride_w,
                                   dilation_h=1, dilation_w=1, pad_top=pad_top,
                                   pad_left=pad_left)


def pool_grad_calls(rng) -> None:
    lib = c_kernels.library()
    #  n, h, w, c, fh, fw, stride, pad
    shapes = [(1, 4, 4, 112, 4, 4, 1, 0), (1, 4, 4, 13, 4, 4, 4, 0), (2, 3, 5, 9, 3, 5, 1, 0),
              (1, 1, 1, 1, 1, 1, 1, 0), (1, 4, 4, 8, 6, 6, 2, 1), (1, 4, 4, 7, 5, 4, 1, 1),
              (1, 4, 4, 12, 3, 4, 1, 0), (1, 4, 4, 12, 4, 3, 1, 0), (1, 4, 4, 5, 5, 5, 1, 2)]
    for k, (n, h, w, c, fh, fw, stride, pad) in enumerate(shapes):
        for values in ("random", "min", "zero"):
            dy = rng.integers(-127, 128, (n, 1, 1, c)).astype(np.int8)
            if values == "min":
                dy.flat[-1 - k % dy.size] = -128        # a later batch's too
            elif values == "zero":
                dy[:] = 0
            for stochastic in (True, False):
                dx = np.zeros((n, h, w, c), np.int8)
                scale = np.zeros(1, np.float32)
                st = state(k) if stochastic else None
                win = window(stride, stride, pad, pad)
                lib.tt_average_pool_grad_s8(i8(dy), f32(0.0125), n, 1, 1, c, fh, fw,
                                            C.byref(win), h, w, i8(dx),
                                            c_kernels._p(scale, C.c_float),
                                            C.byref(st) if st is not None else None)


def elementwise_calls() -> list:
    calls: list = []
    rng = np.random.default_rng(35)
    with rig.recording(calls):
        add_grad_calls(rng)
        pool_grad_calls(rng)
    return calls


def test_elementwise_grads_equal_portable_on_the_rig(tmp_path):
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = elementwise_calls()
    assert {c.name for c in calls} == {"tt_add_grad_s8", "tt_average_pool_grad_s8"}
    rig.run_in_both_builds(calls, tmp_path)
    print(f"{len(calls)} calls")


def test_the_edge_calls_reach_every_form():
    """The recorded tt_add_grad_s8 calls of size >= 4 (those with a DSP block) take each of
    the rule's forms, stochastically and to nearest: A = 0, A <= 127 (exact), 128-255
    (doubled accumulator: the loop), wider (the DSP rounding); the pool calls both read
    the whole image (the DSP path) and miss a row or column (the walk), with A 0, <= 127
    and 128."""
    lib = c_kernels.library()
    forms = set()
    for c in elementwise_calls():
        if c.name != "tt_add_grad_s8" or c.args[4] < 4:
            continue
        a, b = (np.frombuffer(c.args[k].before, np.int8).astype(np.int64) for k in (0, 2))
        sa, sb = (float(np.frombuffer(c.args[k].before, np.float32)[0]) for k in (1, 3))
        top = max(sa, sb)
        ma, mb = (lib.tt_grad_multiplier_s16(C.c_float(s), C.c_float(top), 14)
                  for s in (sa, sb))
        amax = int(np.abs(a * ma + b * mb).max())
        form = "zero" if amax == 0 else "exact" if amax <= 127 else (
            "doubled" if amax <= 255 else "wide")
        forms.add((form, c.args[7] is not None))
    assert forms == {(f, s) for f in ("zero", "exact", "doubled", "wide")
                     for s in (True, False)}, forms
    pools, whole_shapes = set(), set()
    for c in elementwise_calls():
        if c.name != "tt_average_pool_grad_s8":
            continue
        dy = np.frombuffer(c.args[0].before, np.int8)
        n, oh, ow, ch, fh, fw = c.args[2:8]
        stride_h, stride_w, _, _, pad_top, pad_left = np.frombuffer(c.args[8].before, np.int32)
        h, w = c.args[9:11]

        def taps(stride, pad, size, kernel):   # output 0's in-image taps (taps_in_image)
            return sum(0 <= k - pad < size for k in range(kernel))
        # tt_average_pool_grad_s8's condition for whole_image_grad_s8 (the DSP build)
        whole = (oh, ow) == (1, 1) and taps(stride_h, pad_top, h, fh) == h and \
            taps(stride_w, pad_left, w, fw) == w
        amax = int(np.abs(dy[:n * ch].astype(np.int64)).max())
        pools.add((whole, "zero" if amax == 0 else "exact" if amax <= 127 else "128"))
        if whole:
            whole_shapes.add((h, w, fh, fw, int(stride_h), int(pad_top)))
    # pool_grad_calls' first five shapes (a 6x6/2 window padded 1 covers the 4x4 image too),
    # not the last four (a 5x4 window padded 1 misses a column; 3x4, 4x3, 5x5 padded 2)
    assert whole_shapes == {(4, 4, 4, 4, 1, 0), (4, 4, 4, 4, 4, 0), (3, 5, 3, 5, 1, 0),
                            (1, 1, 1, 1, 1, 0), (4, 4, 6, 6, 2, 1)}, whole_shapes
    assert pools == {(whole, a) for whole in (True, False) for a in ("zero", "exact", "128")}, \
        pools
