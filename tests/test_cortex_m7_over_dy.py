"""The int8 depthwise input gradient with dx written over dy, stride 1 and strided
(tt_inplace_grad.h: tt_depthwise_conv2d_input_grad_over_s8) on the Cortex-M7 rig, bit for
bit against the host (portable C, x86), in the board's build (the DSP walk, staging the dy
rows a dx row reads ahead of writing it) and with -DTT_PORTABLE.

Each call is made on the host in one buffer: a fence, dx, dy, a fence, dx starting before
dy by the shift codegen places it at (program.py: the kernel's lead rounded up to whole
positions that keep the arena's 4-byte alignment) and, where that differs, by the kernel's
own lead (tt_depthwise_conv2d_input_grad_over_s8_lead). On the rig the harness places dx
that far before the recorded dy, compares the whole buffer (dx, the rest of dy's bytes,
both fences), dx's scale, the random stream and the kept scratch with the host's, and
returns the lead the rig computes (compared with the host's). The separate kernel
(tt_depthwise_conv2d_input_grad_s8, dx apart) runs on the same data in the same programs:
the host asserts it gives the over form's bytes, the rig must reproduce both. Geometries:
kh != kw, pad > span (a window reading only below and right: no lead), dilation 2, a
1-row map, odd widths and channel counts (6 groups of 4 and a partial one); masks;
nearest and stochastic rounding; two passes without a scratch, keeping some positions'
accumulators in one, and a scratch of none; the full staging and, every other variant, a
smaller one (the DSP walk in blocks of channels: a dx placed by part of a position, the
planner's bug that aa28663 mended, fails here on the DSP build). Strided layers (stride 2
and 3, the larger dx holding dy in its tail): their lead against a brute-force count of
what each dx position reads, SAME-like and other paddings, a 5x5 window."""
from __future__ import annotations

import ctypes as C
import math
import shutil

import numpy as np
import pytest

import test_cortex_m7 as rig
from conftest import require_tool
from test_cortex_m7_grad_dsp import i8, multipliers, rig_p
from tflite_train import memory
from tflite_train.runtime import c_kernels
from tflite_train.runtime import kernel_calls as K

# (h, w, c, kh, kw, dilation, pad_top, pad_left[, stride[, oh, ow[, stride_w]]]): oh, ow
# default to SAME's, stride_w to stride
SHAPES = [(8, 8, 16, 3, 3, 1, 1, 1), (7, 5, 5, 3, 3, 1, 1, 1), (6, 7, 9, 5, 5, 1, 2, 2),
          (6, 6, 8, 3, 3, 2, 2, 2),         # dilation 2: the portable walk on the board too
          (9, 5, 4, 7, 7, 1, 3, 3), (1, 3, 8, 3, 3, 1, 1, 1),
          (5, 6, 3, 3, 1, 1, 1, 0),         # kh != kw
          (5, 7, 6, 1, 5, 1, 0, 2),         # kh != kw, the other way
          (5, 5, 7, 3, 3, 1, 3, 3),         # pad > span: dx over dy, no lead
          (6, 5, 22, 3, 3, 1, 1, 1),        # 6 groups of 4 channels, a partial one
          # strided (h, w: dx's; dy's from them): dy within dx's tail
          (8, 8, 24, 3, 3, 1, 0, 0, 2),     # MobileNetV2's SAME on an even map
          (9, 7, 5, 3, 3, 1, 1, 1, 2),      # odd sizes, pad 1
          (10, 10, 8, 5, 5, 1, 1, 2, 2),    # 5x5, uneven padding
          (9, 9, 4, 3, 3, 1, 1, 1, 3)]      # stride 3
# more strided layers, in a program of their own (with the above they pass the rig's 1 MB
# of flash): the geometries the planner can give beside SAME on equal strides
MORE_STRIDED = [(9, 9, 8, 3, 3, 1, 0, 0, 2, 4, 4),        # VALID on an odd map
                (10, 10, 12, 3, 3, 1, 0, 0, 2, 4, 4),     # VALID on an even map
                (11, 7, 20, 5, 5, 1, 2, 2, 2, 6, 4),      # 5x5, 5 groups of 4 channels
                (8, 9, 8, 3, 3, 1, 1, 1, 2, 4, 9, 1),     # strided down only
                (7, 8, 8, 3, 3, 1, 1, 0, 1, 7, 4, 2),     # strided across only
                (12, 12, 40, 3, 3, 1, 0, 0, 2, 6, 6),     # 10 groups of 4 channels
                (5, 5, 6, 3, 3, 1, 1, 1, 2, 3, 3)]        # a map of 3x3
GUARD = 8                                   # fence bytes either side (keeps dx 4-aligned)

# dx placed `shift` bytes before the recorded dy at buf + dy_at; returns the lead the rig
# computes (compared with the host's)
HARNESS = r"""
#include "tt_inplace_grad.h"
static int32_t rig_over_s8(int8_t *buf, int32_t dy_at, int32_t shift, const float *dy_scale,
                           const uint8_t *mask, int32_t n, int32_t oh, int32_t ow, int32_t c,
                           int32_t m, const int8_t *w, const int16_t *w_mult, float w_unit,
                           int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                           int32_t wd, float *dx_scale, tt_update_state *rounding,
                           int32_t *scratch, int32_t scratch_positions, void *stage,
                           int32_t stage_bytes) {
  const int32_t lead = tt_depthwise_conv2d_input_grad_over_s8_lead(n, oh, ow, c, m, kh, kw,
                                                                   win, h, wd);
  tt_depthwise_conv2d_input_grad_over_s8(buf + dy_at, dy_scale, mask, n, oh, ow, c, m, w,
                                         w_mult, w_unit, kh, kw, win, h, wd,
                                         buf + dy_at - shift, dx_scale, rounding, scratch,
                                         scratch_positions, stage, stage_bytes);
  return lead;
}
"""


class OverProgram(rig.Program):
    def source(self) -> str:
        return super().source().replace('#include "tt_split_grad.h"',
                                        '#include "tt_split_grad.h"' + HARNESS)


def snapshot(a) -> bytes:
    return a.tobytes() if isinstance(a, np.ndarray) else bytes(a)


def strided_lead(h, w, oh, ow, kh, kw, sh, sw, pt, pl) -> int:
    """Positions dy must start after dx for a strided layer, counted the long way: each dx
    position's least dy position read, the least over every later one, the most a position
    runs ahead of it."""
    def least(y, x):
        reads = [oy * ow + ox for ky in range(kh) for kx in range(kw)
                 for oy, ry in [divmod(y + pt - ky, sh)]
                 for ox, rx in [divmod(x + pl - kx, sw)]
                 if ry == 0 and rx == 0 and 0 <= oy < oh and 0 <= ox < ow]
        return min(reads, default=None)
    firsts = [least(y, x) for y in range(h) for x in range(w)]
    later = [[q for q in firsts[p + 1:] if q is not None] for p in range(len(firsts))]
    return max([0] + [p - min(q) + 1 for p, q in enumerate(later) if q])


def calls_of(rng, shape) -> list:
    """The over form and the separate one for each variant of one geometry."""
    h, w, c, kh, kw, dil, pt, pl, *rest = shape
    s = rest[0] if rest else 1
    sw = rest[3] if len(rest) > 3 else s
    oh, ow = (rest[1], rest[2]) if len(rest) > 1 else (-(-h // s), -(-w // s))
    win = c_kernels.Window(s, sw, dil, dil, pt, pl)
    geometry = (1, oh, ow, c, 1, kh, kw, win, h, w)
    lead = int(K.host_call("tt_depthwise_conv2d_input_grad_over_s8_lead", *geometry))
    lag, lag_w = (kh - 1) * dil - pt, (kw - 1) * dil - pl
    if s == 1 and sw == 1:
        assert lead == max(0, lag * w + lag_w + 1) * c, shape
    else:
        assert lead == strided_lead(h, w, oh, ow, kh, kw, s, sw, pt, pl) * c, shape
    # codegen's shift (program.py, _inplace_call): the lead rounded up to whole positions
    # that keep the arena's alignment; dx at the kernel's own lead too where that differs
    step = math.lcm(c, memory.CODEGEN_ALIGN)
    shifts = sorted({-(-lead // step) * step, lead})
    full = int(K.host_call("tt_depthwise_conv2d_input_grad_s8_stage_bytes", *geometry, 0))
    # the DSP walk takes every layer here on the board but the dilated one (portable there)
    assert (full > 0) == (dil == 1), shape
    # a smaller staging (codegen's limit): the DSP walk in blocks of channels, where any
    # smaller one takes the layer
    fits = [int(K.host_call("tt_depthwise_conv2d_input_grad_s8_stage_bytes", *geometry,
                            full * q // 8)) for q in (6, 5, 4)]
    small = next((b for b in fits if 0 < b < full), full)
    dy = rng.integers(-128, 128, (1, oh, ow, c)).astype(np.int8)
    wt = rng.integers(-128, 128, (1, kh, kw, c)).astype(np.int8)
    # as augment makes them (the DSP walk refuses multipliers outside [0, 256]); on some
    # layers the largest (2^k) and 0 among them
    mult, unit = multipliers(rng, c, kh * kw, special=c % 2 == 0)
    dy_scale, unit = np.array([0.01], np.float32), C.c_float(unit)
    mask_bits = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    some = int(rng.integers(1, h * w))               # dx positions kept: some of them
    calls: list = []
    for k, (masked, stochastic, kept) in enumerate(
            [(m_, s_, kept) for m_ in (False, True) for s_ in (False, True)
             for kept in (None, some, 0)]):
        mask = mask_bits if masked else None
        seed = 1000 + 7 * k
        # every other variant the smaller staging: blocks of channels, each writing its
        # channels over dy's same channels (so codegen places dx by whole positions)
        stage_bytes = small if k % 2 else full

        def run(name, dy_p, dx_p, scale, state, scratch):
            getattr(c_kernels.library(), name)(
                dy_p, rig_p(dy_scale, C.c_float), rig_p(mask, C.c_uint8), 1, oh, ow, c, 1, i8(wt),
                rig_p(mult, C.c_int16), unit, kh, kw, C.byref(win), h, w, dx_p,
                rig_p(scale, C.c_float), C.byref(state) if stochastic else None,
                rig_p(scratch, C.c_int32), kept or 0,
                rig_p(np.zeros(max(stage_bytes, 8), np.uint8), C.c_uint8), stage_bytes)

        def fresh():
            return (np.zeros(1, np.float32), c_kernels.UpdateState(seed, 3),
                    None if kept is None else np.zeros(max(kept, 1) * c, np.int32))
        # apart: recorded as is (its stage is not compared)
        want = np.zeros((1, h, w, c), np.int8)
        scale_a, state_a, scratch_a = fresh()
        with rig.recording(calls):
            run("tt_depthwise_conv2d_input_grad_s8", i8(dy.copy()), i8(want), scale_a,
                state_a, scratch_a)
        # over, dx `place` bytes before dy in one buffer: recorded by hand (its pointers
        # are not the arrays' starts); its expectations: the separate kernel's outputs
        for place in shifts:
            buf = rng.integers(-128, 128, GUARD + max(place + dy.size, want.size) + GUARD
                               ).astype(np.int8)
            dy_at = GUARD + place
            buf[dy_at:dy_at + dy.size] = dy.ravel()
            # what it must leave: the separate kernel's dx at the buffer's dx, dy's last
            # `place` bytes (past dx's end) and the fences as they were
            expect = buf.copy()
            expect[GUARD:GUARD + want.size] = want.ravel()
            scale, state, scratch = fresh()
            args = [buf, dy_at, place, dy_scale, mask, 1, oh, ow, c, 1, wt, mult, unit, kh, kw,
                    win, h, w, scale, state if stochastic else None, scratch, kept or 0,
                    np.zeros(max(stage_bytes, 8), np.uint8), stage_bytes]
            before = [snapshot(a) if isinstance(a, (np.ndarray, C.Structure)) else None
                      for a in args]
            base = buf.ctypes.data
            run("tt_depthwise_conv2d_input_grad_over_s8",
                C.cast(base + dy_at, C.POINTER(C.c_int8)),
                C.cast(base + dy_at - place, C.POINTER(C.c_int8)), scale, state, scratch)
            assert buf.tobytes() == expect.tobytes(), (shape, k, place)
            assert (scale.tobytes(), bytes(state)) == (scale_a.tobytes(), bytes(state_a))
            after = [snapshot(a) if b is not None else None for a, b in zip(args, before)]
            # the separate kernel's outputs are the over form's expectations on the rig
            after[0], after[18] = expect.tobytes(), scale_a.tobytes()
            after[19] = bytes(state_a) if stochastic else None
            after[len(args) - 2] = b""                      # the stage: not compared
            calls.append(rig.Call("rig_over_s8", [
                rig.Memory(b, z) if b is not None else a
                for a, b, z in zip(args, before, after)], C.c_int32, bytes(C.c_int32(lead))))
    return calls


@pytest.mark.parametrize("shapes, seed", [(SHAPES, 47), (MORE_STRIDED, 48)],
                         ids=["shapes", "more-strided"])
def test_int8_depthwise_input_gradient_over_dy_on_the_cortex_m7(tmp_path, shapes, seed):
    require_tool(shutil.which("arm-none-eabi-gcc") is not None
                 and shutil.which("qemu-system-arm") is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    rng = np.random.default_rng(seed)
    calls = [call for shape in shapes for call in calls_of(rng, shape)]
    assert {c.name for c in calls} == {"rig_over_s8", "tt_depthwise_conv2d_input_grad_s8"}
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",))):
        program = OverProgram()
        for call in calls:
            program.add(call)
        (tmp_path / label).mkdir()
        rig.run_on_rig(program, tmp_path / label, defines=defines)
