"""The streams with their depthwise layer packed once per call (tt_stream.h:
tt_pointwise_depthwise_packed_s8, tt_conv_depthwise_pointwise_packed_s8; tt_fwd_depthwise.c
packs every channel group's constants and filter once, where the unpacked streams pack them
for every output row) on the Cortex-M7 rig, bit for bit against the host's unpacked streams
(portable C). Edge shapes: 1-3 channels left over past the groups of four, odd widths,
padding on every side, stride 2, dilation 2, depth multiplier 4, a row too wide for one
chunk, the 3x3, 4x4/2, 5x5, 7x7 and 8x8/2 windows, 4x4 maps; the depthwise layer's
requantization on both sides of the one-multiply form (multipliers 0, 2^30, 2^31 - 1, shifts
+3 to -31, biases near int32's ends: test_cortex_m7_dsp's edge parameters). Both Cortex-M7
builds (DSP and -DTT_PORTABLE) must give the host's output and leave every input alone; the
window's and the pack's bytes after a call are unspecified. So must a DSP build with a
smaller staging buffer than the host that sized the packs (a layer it does not take gets a
pack that says so, and the packed call runs the unpacked kernel). The streams' _wide_s8
forms, their 1x1 layers' filters also pre-widened (either side, both, dead rows among the
widened ones), must give the packed streams' host output too.
"""
from __future__ import annotations

import numpy as np

import test_cortex_m7_forward as F
from conftest import require_tool
from test_cortex_m7 import Call, Memory, Program
from test_cortex_m7_dsp import biases, int8, quantization
from tflite_train import memory
from tflite_train.codegen import layouts
from tflite_train.runtime import c_forward
from tflite_train.runtime import kernel_calls as K

D, P = c_forward.Dims, c_forward.ConvParams

# (h, w, ci, cm, m, k, stride, dilation, pad_top, pad_left): pointwise ci -> cm, depthwise
# k x k over cm channels with depth multiplier m
PAIRS = [
    (16, 16, 8, 16, 1, 3, 1, 1, 1, 1),
    (15, 13, 5, 7, 1, 3, 2, 1, 1, 1),      # a group of 3, odd widths, stride 2
    (12, 11, 4, 5, 1, 3, 1, 1, 1, 0),      # a group of 1, no left padding
    (11, 12, 4, 6, 1, 3, 2, 1, 0, 1),      # a group of 2, no top padding, right padding
    (16, 16, 4, 6, 1, 4, 2, 1, 1, 1),      # 4x4/2
    (16, 12, 4, 8, 1, 8, 2, 1, 3, 3),      # 8x8/2
    (9, 9, 3, 12, 1, 5, 1, 1, 2, 2),       # 5x5
    (10, 10, 3, 9, 1, 7, 1, 1, 3, 3),      # 7x7, a group of 1
    (4, 4, 8, 12, 1, 3, 1, 1, 1, 1),       # a 4x4 map
    (4, 4, 8, 8, 1, 5, 1, 1, 2, 2),        # 5x5 on a 4x4 map: every row a border row
    (8, 9, 4, 4, 4, 3, 1, 1, 1, 1),        # depth multiplier 4
    (5, 200, 4, 6, 1, 3, 1, 1, 1, 1),      # a row in chunks
    (12, 12, 3, 6, 1, 5, 2, 2, 4, 4),      # dilation 2
    # the importer's grown kernels (a last row and column of zero taps: computed as 3x3 and
    # 7x7, dw_trim), a group of 3
    (16, 16, 4, 11, 1, 4, 2, 1, 1, 1, "grown"),
    (16, 12, 4, 8, 1, 8, 2, 1, 3, 3, "grown"),
]
# (h, w, ci, cm, co, a_kernel, a_stride, a_pad, dw_kernel, dw_stride, dw_pad[, the first
# layer's quantization: "real" unless "edge"]); the first layer's row calls of 18 columns or
# more widen its rows (tt_conv2d_rows_call_s8, tt_dsp_mm_blocks6_wide): the stem with dead
# and C-requantized rows among the widened ones ("edge"), with two padding rows and columns,
# and 3x3 over 4 channels into 20 rows
BLOCKS = [(18, 18, 3, 16, 8, 4, 2, 1, 3, 1, 1), (17, 15, 4, 7, 6, 3, 2, 1, 5, 2, 2),
          (12, 12, 6, 10, 6, 1, 1, 0, 7, 1, 3), (16, 16, 8, 12, 8, 1, 1, 0, 4, 2, 1),
          (40, 40, 3, 16, 8, 4, 2, 1, 3, 1, 1, "edge"), (41, 45, 3, 16, 8, 4, 2, 2, 3, 1, 1),
          (20, 22, 4, 20, 8, 3, 1, 1, 3, 1, 1),
          (20, 20, 8, 24, 8, 1, 1, 0, 4, 2, 1, "grown"),   # MobileNetV2's blocks.1
          (40, 40, 3, 16, 8, 4, 2, 1, 3, 1, 1, "stem"),    # its grown stem
          # the depthwise layer in the one-multiply form with no slow channel (every group of
          # an output row in one tt_dsp_dw3_run): output offset -128 (the _low pairs) and -5,
          # stride 1 and 2, 4x4 maps, 3-4 groups
          (16, 16, 8, 16, 8, 1, 1, 0, 3, 1, 1, "dw-low"), (4, 4, 8, 12, 8, 1, 1, 0, 3, 1, 1, "dw-low"),
          (17, 16, 8, 12, 8, 1, 1, 0, 3, 2, 1, "dw-real")]


def pack_bytes(dw, mid, f, out) -> int:
    return K.host_call("tt_stream_depthwise_pack_bytes", dw, mid, f, out)


def mem(a) -> Memory:
    """An input: its bytes before, and the same after (the rig checks it is left alone)."""
    b = bytes(a) if not isinstance(a, np.ndarray) else a.tobytes()
    return Memory(b, b)


def scratch(n: int) -> Memory:
    return Memory(bytes(n), b"")


def dw_layer(rng, cm: int, m: int, k: int, kind: str = "edge"):
    f = rng.integers(-127, 128, (1, k, k, cm * m)).astype(np.int8)
    mult, shift = quantization(rng, cm * m, kind)
    return f, mult, shift, biases(rng, cm * m, kind == "edge")


def pair_call(rng, case) -> Call:
    h, w, ci, cm, m, k, stride, dil, pad_top, pad_left, *grown = case
    pw = P(1, 1, 1, 1, 0, 0, 3, -128, -128, 127)
    dw = P(stride, stride, dil, dil, pad_top, pad_left, 128, -5, -128, 127)
    span = (k - 1) * dil + 1
    oh, ow = (h + 2 * pad_top - span) // stride + 1, (w + 2 * pad_left - span) // stride + 1
    x, pf = int8(rng, (1, h, w, ci)), int8(rng, (cm, 1, 1, ci))
    pm, ps = quantization(rng, cm, "real")
    pb = biases(rng, cm, False)
    df, dm, ds, db = dw_layer(rng, cm, m, k)
    if grown:
        df[:, k - 1] = df[:, :, k - 1] = 0
    mid, fd, od = D(1, h, w, cm), D(*df.shape), D(1, oh, ow, cm * m)
    window = K.host_call("tt_pointwise_depthwise_s8_window_bytes", dw, mid, fd, od)
    pack = pack_bytes(dw, mid, fd, od)
    assert pack > 0 and pack % 8 == 0, case
    y = np.zeros((1, oh, ow, cm * m), np.int8)
    args = [pw, pm, ps, D(*x.shape), x, D(*pf.shape), pf, pb, dw, dm, ds, mid, fd, df, db, od]
    assert K.host_call("tt_pointwise_depthwise_s8", *args, y, np.zeros(window, np.int8)) == 0
    packed = np.zeros_like(y)      # the host (portable) leaves the pack alone: same bits
    assert K.host_call("tt_pointwise_depthwise_packed_s8", *args, packed,
                       np.zeros(window, np.int8), np.zeros(pack, np.int8)) == 0
    assert np.array_equal(packed, y), case
    return Call("tt_pointwise_depthwise_packed_s8",
                [*map(mem, args), Memory(bytes(y.nbytes), y.tobytes()), scratch(window),
                 scratch(pack)], c_forward.C.c_int, bytes(c_forward.C.c_int(0)))


def block_call(rng, case) -> Call:
    h, w, ci, cm, co, ak, ast, apad, dk, dst, dpad, *kind = case
    edge = kind == ["edge"]
    a = P(ast, ast, 1, 1, apad, apad, 5, -128, -128, 127)
    dw = P(dst, dst, 1, 1, dpad, dpad, 128, -128 if kind == ["dw-low"] else -5, -128, 127)
    pw = P(1, 1, 1, 1, 0, 0, 5, 3, -128, 127)
    mh, mw = (h + 2 * apad - ak) // ast + 1, (w + 2 * apad - ak) // ast + 1
    oh, ow = (mh + 2 * dpad - dk) // dst + 1, (mw + 2 * dpad - dk) // dst + 1
    x, af, pf = int8(rng, (1, h, w, ci)), int8(rng, (cm, ak, ak, ci)), int8(rng, (co, 1, 1, cm))
    am, as_ = quantization(rng, cm, "edge" if edge else "real")
    pm, ps = quantization(rng, co, "real")
    ab, pb = biases(rng, cm, edge), biases(rng, co, False)
    if kind == ["stem"]:
        af[:, ak - 1] = af[:, :, ak - 1] = 0
    df, dm, ds, db = dw_layer(rng, cm, 1, dk, "real" if kind[:1] in (["dw-low"], ["dw-real"])
                              else "edge")
    if kind == ["grown"]:
        df[:, dk - 1] = df[:, :, dk - 1] = 0
    mid, fd, dout = D(1, mh, mw, cm), D(*df.shape), D(1, oh, ow, cm)
    window = K.host_call("tt_conv_depthwise_pointwise_s8_window_bytes", dw, mid, fd, dout)
    pack = pack_bytes(dw, mid, fd, dout)
    assert pack > 0, case
    y = np.zeros((1, oh, ow, co), np.int8)
    args = [a, am, as_, D(*x.shape), x, D(*af.shape), af, ab, dw, dm, ds, mid, fd, df, db,
            pw, pm, ps, dout, D(*pf.shape), pf, pb, D(*y.shape)]
    assert K.host_call("tt_conv_depthwise_pointwise_packed_s8", *args, y,
                       np.zeros(window, np.int8), None) == 0
    return Call("tt_conv_depthwise_pointwise_packed_s8",
                [*map(mem, args), Memory(bytes(y.nbytes), y.tobytes()), scratch(window),
                 scratch(pack)], c_forward.C.c_int, bytes(c_forward.C.c_int(0)))


# the streams' _wide_s8 forms: pairs (h, w, ci, cm, dw_kernel, dw_stride, the 1x1 layer's
# quantization: the expansion reads its filter pre-widened) and blocks (h, w, ci, cm, co,
# dw_kernel, dw_stride, which 1x1 sides read a pre-widened filter, quantization). Rows of 25-26 pixels: 4 blocks of 6 a
# call and some left over (the pre-widened rows run only in whole blocks); 20-24 channels
# (the run-time widening's range: tt_dsp_rows6w) and 48 (sign-extended in every block);
# "edge": dead and C-requantized rows among the pre-widened ones (read from the int8 filter)
WIDE_PAIRS = [(9, 26, 24, 12, 3, 2, "real"), (8, 25, 20, 8, 3, 2, "edge")]
WIDE_BLOCKS = [(7, 25, 20, 24, 10, 3, 1, "a,pw", "real"), (8, 26, 8, 48, 12, 3, 1, "pw", "edge"),
               (9, 25, 24, 20, 8, 3, 2, "a", "real"), (6, 25, 28, 48, 20, 3, 1, "a,pw", "edge")]


def wide_pair_call(rng, case) -> Call:
    """tt_pointwise_depthwise_wide_s8, the host's packed stream's output expected."""
    h, w, ci, cm, k, stride, kind = case
    pw = P(1, 1, 1, 1, 0, 0, 3, -128, -128, 127)
    dw = P(stride, stride, 1, 1, 1, 1, 128, -5, -128, 127)
    oh, ow = (h + 2 - k) // stride + 1, (w + 2 - k) // stride + 1
    x, pf = int8(rng, (1, h, w, ci)), int8(rng, (cm, 1, 1, ci))
    pm, ps = quantization(rng, cm, kind)
    pb = biases(rng, cm, kind == "edge")
    df, dm, ds, db = dw_layer(rng, cm, 1, k)
    mid, fd, od = D(1, h, w, cm), D(*df.shape), D(1, oh, ow, cm)
    window = K.host_call("tt_pointwise_depthwise_s8_window_bytes", dw, mid, fd, od)
    pack = pack_bytes(dw, mid, fd, od)
    y = np.zeros((1, oh, ow, cm), np.int8)
    args = [pw, pm, ps, D(*x.shape), x, D(*pf.shape), pf, pb, dw, dm, ds, mid, fd, df, db, od]
    assert K.host_call("tt_pointwise_depthwise_packed_s8", *args, y, np.zeros(window, np.int8),
                       np.zeros(pack, np.int8)) == 0
    return Call("tt_pointwise_depthwise_wide_s8",
                [*map(mem, args), Memory(bytes(y.nbytes), y.tobytes()), scratch(window),
                 scratch(pack), mem(layouts.widened(pf))], c_forward.C.c_int,
                bytes(c_forward.C.c_int(0)))


def wide_block_call(rng, case) -> Call:
    """tt_conv_depthwise_pointwise_wide_s8 (a 1x1 first layer), the host's packed stream's
    output expected."""
    h, w, ci, cm, co, dk, dst, sides, kind = case
    a = P(1, 1, 1, 1, 0, 0, 5, -128, -128, 127)
    dw = P(dst, dst, 1, 1, 1, 1, 128, -5, -128, 127)
    pw = P(1, 1, 1, 1, 0, 0, 5, 3, -128, 127)
    oh, ow = (h + 2 - dk) // dst + 1, (w + 2 - dk) // dst + 1
    x, af, pf = int8(rng, (1, h, w, ci)), int8(rng, (cm, 1, 1, ci)), int8(rng, (co, 1, 1, cm))
    am, as_ = quantization(rng, cm, kind)
    pm, ps = quantization(rng, co, kind)
    ab, pb = biases(rng, cm, kind == "edge"), biases(rng, co, kind == "edge")
    df, dm, ds, db = dw_layer(rng, cm, 1, dk)
    mid, fd, dout = D(1, h, w, cm), D(*df.shape), D(1, oh, ow, cm)
    window = K.host_call("tt_conv_depthwise_pointwise_s8_window_bytes", dw, mid, fd, dout)
    pack = pack_bytes(dw, mid, fd, dout)
    y = np.zeros((1, oh, ow, co), np.int8)
    args = [a, am, as_, D(*x.shape), x, D(*af.shape), af, ab, dw, dm, ds, mid, fd, df, db,
            pw, pm, ps, dout, D(*pf.shape), pf, pb, D(*y.shape)]
    assert K.host_call("tt_conv_depthwise_pointwise_packed_s8", *args, y,
                       np.zeros(window, np.int8), None) == 0
    wide = {side: mem(layouts.widened(f)) for side, f in (("a", af), ("pw", pf))
            if side in sides.split(",")}
    return Call("tt_conv_depthwise_pointwise_wide_s8",
                [*map(mem, args), Memory(bytes(y.nbytes), y.tobytes()), scratch(window),
                 scratch(pack), wide.get("a"), wide.get("pw")], c_forward.C.c_int,
                bytes(c_forward.C.c_int(0)))


def test_pack_bytes_only_where_the_dsp_version_takes_the_layer():
    """No pack for a depth multiplier of 2 (the DSP version's im2col form) or a window taller
    than the staging takes; otherwise the shape, one group record and filter a group."""
    dw = P(1, 1, 1, 1, 1, 1, 0, 0, -128, 127)
    assert pack_bytes(dw, D(1, 8, 8, 4), D(1, 3, 3, 8), D(1, 8, 8, 8)) == 0
    assert pack_bytes(dw, D(1, 20, 20, 4), D(1, 17, 17, 4), D(1, 4, 4, 4)) == 0
    def of(c: int) -> int:
        return pack_bytes(dw, D(1, 8, 8, c), D(1, 3, 3, c), D(1, 8, 8, c))
    assert of(4) > 0 and of(9) - of(4) == 2 * (of(8) - of(4)) > 0


def test_a_pack_goes_only_where_the_arena_is_free():
    """memory.place_in_free_run: the largest run free during the operator, the plan's other
    buffers and its size unchanged; nothing when it does not fit there."""
    B = memory.Buffer
    buffers = [B("x", 64, 0, 2, tensor=0), B("window@1", 32, 2, 2, op=1),
               B("y", 96, 1, 3, tensor=1)]
    plan = memory.CodegenPlan(buffers, [0, 64, 96], 192, "", [], [], [160, 192, 96], 1, {})
    assert not memory.place_in_free_run(plan, 1, "pack@1", 8, 1)   # none free
    assert len(plan.buffers) == 3
    assert memory.place_in_free_run(plan, 2, "pack@2", 60, 0)      # [0, 96) free
    assert (plan.buffers[-1].name, plan.offsets[-1], plan.arena_bytes) == ("pack@2", 0, 192)
    assert plan.scratch_offset(2) == 0
    assert not memory.place_in_free_run(plan, 2, "more@2", 40, 0)  # [60, 96) left


def test_packed_streams_equal_the_host_on_the_cortex_m7(tmp_path, monkeypatch):
    require_tool(F.rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    rng = np.random.default_rng(23)
    calls = [pair_call(rng, c) for c in PAIRS] + [block_call(rng, c) for c in BLOCKS]
    calls += [wide_pair_call(rng, c) for c in WIDE_PAIRS]
    calls += [wide_block_call(rng, c) for c in WIDE_BLOCKS]
    src = c_forward.MICRO_KERNELS / "src"
    monkeypatch.setattr(F, "SOURCES", [*F.SOURCES, src / "tt_stream.c", src / "tt_row_source.c"])
    # "small": a target built with less staging than the host that sized the packs (the
    # 8x8/2 and 7x7 layers no longer fit it): those calls must take the unpacked kernel;
    # "narrow": a stem's row call built with a smaller buffer than the staging (no room to
    # widen its rows; how MobileNetV2's row-API program gets its stack under 113 KB, round
    # 8): it must stage within that buffer (staging TT_FWD_DSP_STAGE_BYTES: a HardFault)
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",)),
                           ("small", ("-DTT_FWD_DSP_STAGE_BYTES=1024",)),
                           ("narrow", ("-DTT_FWD_DSP_WIDE_EXTRA=-1024",))):
        for k, program in enumerate(F.programs(calls)):
            text = F.source(program).replace('#include "tt_forward.h"',
                                             '#include "tt_forward.h"\n#include "tt_stream.h"')
            res = F.run_rig(F.build(tmp_path, f"pack-{label}{k}", text, defines))
            output = res.stdout + res.stderr
            assert res.returncode == 0 and "PASS" in output, (label, output[-2000:])

