"""Two streams chained (tt_stream.h: tt_conv_depthwise_pointwise_chain_s8; tt_row_source.h:
tt_conv_depthwise_pointwise_chain_source_s8, the first stream's input from a row source) on the
Cortex-M7 rig, bit for bit against the host's two streams called one after the other
(portable C, x86). The first stream's output rows reach the second's first layer through a
ring of that layer's span; on the board both streams' depthwise layers take the DSP
versions (packed or not), so the ring's row order and the packs are what is under test.

Small geometries (the rig's flash): odd widths, padding at every border (SAME with the odd
pixel after, and explicit padding past the window's reach), a stride-2 first stream, a
second stream whose first layer reads 3 rows of stride 2 (rows moved in the ring) or 1;
with and without packs. Each chain call is replayed as is, through a reader (the harness's
read_row checks it is asked for every input row once, in order) and through a frame. Both
builds (DSP and -DTT_PORTABLE) must give the host's output and leave every input alone;
the windows', packs' and rings' bytes after a call are unspecified (not compared).
"""
from __future__ import annotations

import ctypes as C

import numpy as np

import test_cortex_m7_forward as F
from conftest import require_tool
from test_cortex_m7 import Call, Memory
from test_cortex_m7_dsp import biases, quantization
from tflite_train.codegen import host
from tflite_train.runtime import c_forward
from tflite_train.runtime import kernel_calls as K
from tflite_train.runtime import stream_args

D, P = c_forward.Dims, c_forward.ConvParams

# a stream: (cm, co, kernel, stride, pad, dw kernel, dw stride, dw pad); a chain: (h, w, ci,
# first stream, second stream). The first: MobileNetV2's stem + blocks.0 in small (4x4/2 on
# an odd width, padded top, left and bottom) then blocks.1 (1x1 expansion, 4x4/2
# depthwise); the second: padding on all four sides, a 5x5 depthwise padded past its reach
# (13x15 out of 11x13), a 3x3/2 first layer in the second stream (rows moved to the ring's
# start); the third: a stride-2 stem without padding, a 3x3/2 depthwise padded top and left
# only, then a second stream on a 3x2 map (every row a border row, 3 rows in the ring)
CHAINS = [
    (16, 15, 3, (8, 4, 4, 2, 1, 3, 1, 1), (12, 4, 1, 1, 0, 4, 2, 1)),
    (11, 13, 2, (6, 5, 3, 1, 1, 5, 1, 3), (7, 3, 3, 2, 1, 3, 1, 1)),
    (13, 9, 3, (5, 3, 3, 2, 0, 3, 2, 1), (4, 6, 3, 1, 1, 3, 1, 1)),
]

# tt_conv_depthwise_pointwise_chain_s8's arguments: window, pack, ring (after the first
# stream's 23 but its output), the second's window and pack (after its output)
UNSPECIFIED = (23, 24, 25, 48, 49)

# the chain with its input from a tt_row_source over the recorded input: the same
# arguments, then the reader's ring of the first layer's span, and 1 for a frame instead
# (the source form of the whole-sample API)
READER_TEMPLATE = r"""
#include "tt_row_source.h"
typedef struct { const int8_t *x; int32_t row_bytes, next, bad; } rig_rows;
static int rig_read_row(int32_t y, int8_t *row, void *ctx) {
  rig_rows *r = (rig_rows *)ctx;
  if (y != r->next) r->bad = 1;           /* every row once, in order */
  r->next = y + 1;
  memcpy(row, r->x + y * r->row_bytes, (unsigned)r->row_bytes);
  return 0;
}
static int rig_chain_source_s8(%(params)s, int8_t *rows, int32_t frame) {
  rig_rows r = {input, input_dims->w * input_dims->c, 0, 0};
  int32_t span = (a_filter_dims->h - 1) * a->dilation_h + 1;
  tt_row_source s;
  int status;
  %(decls)s
  if (frame)
    tt_row_source_frame(&s, input, input_dims->h, r.row_bytes);
  else
    tt_row_source_reader(&s, rig_read_row, &r, rows, span < input_dims->h ? span
                                                                         : input_dims->h,
                         input_dims->h, r.row_bytes);
  status = tt_conv_depthwise_pointwise_chain_source_s8(%(args)s);
  return r.bad || r.next != (frame ? 0 : input_dims->h) ? 99 : status;
}
"""


def _reader() -> str:
    """READER_TEMPLATE with the chain's flat parameters (stream_args) and the structs it
    groups them into."""
    name = "tt_conv_depthwise_pointwise_chain_source_s8"
    names = stream_args.flat_names(name)
    decls, args = stream_args.c_groups(name, names, names, "s_", "const")
    args = ["&s" if n == "input" else n for n in args]
    return READER_TEMPLATE % {"params": ", ".join(stream_args.STREAMS[name][0]).replace(
        "tt_row_source *input", "const int8_t *input"), "decls": "\n  ".join(decls),
        "args": ", ".join(args)}


READER = _reader()


def stream(rng, h: int, w: int, ci: int, case) -> tuple[list, D]:
    """A seeded three-layer stream (a k x k CONV_2D, a depthwise layer, a 1x1 CONV_2D) on an
    h x w x ci input: tt_conv_depthwise_pointwise_packed_s8's arguments from its first
    layer's to its output's dims (the input after the fourth), and the output's dims."""
    cm, co, k, stride, pad, dk, dstride, dpad = case
    a = P(stride, stride, 1, 1, pad, pad, 5, -128, -128, 127)
    dw = P(dstride, dstride, 1, 1, dpad, dpad, 128, -5, -128, 127)
    pw = P(1, 1, 1, 1, 0, 0, 5, 3, -128, 127)
    mh, mw = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    oh, ow = (mh + 2 * dpad - dk) // dstride + 1, (mw + 2 * dpad - dk) // dstride + 1
    af = rng.integers(-127, 128, (cm, k, k, ci)).astype(np.int8)
    df = rng.integers(-127, 128, (1, dk, dk, cm)).astype(np.int8)
    pf = rng.integers(-127, 128, (co, 1, 1, cm)).astype(np.int8)
    (am, ash), (dm, dsh), (pm, psh) = (quantization(rng, n, "real") for n in (cm, cm, co))
    ab, db, pb = biases(rng, cm, False), biases(rng, cm, False), biases(rng, co, False)
    out = D(1, oh, ow, co)
    return [a, am, ash, D(1, h, w, ci), D(*af.shape), af, ab, dw, dm, dsh, D(1, mh, mw, cm),
            D(*df.shape), df, db, pw, pm, psh, D(1, oh, ow, cm), D(*pf.shape), pf, pb,
            out], out


def scratch(args) -> tuple[int, int]:
    """A stream's window and pack bytes (its depthwise layer's params and dims)."""
    dw = [args[i] for i in (7, 10, 11, 17)]
    return (K.host_call("tt_conv_depthwise_pointwise_s8_window_bytes", *dw),
            K.host_call("tt_stream_depthwise_pack_bytes", *dw))


def snapshot(a) -> bytes:
    return a.tobytes() if isinstance(a, np.ndarray) else bytes(a)


def pointer(a):
    """An array's or struct's address (None: NULL) for a function without argtypes."""
    if a is None:
        return None
    return C.byref(a) if isinstance(a, C.Structure) else a.ctypes.data_as(C.c_void_p)


def address(a):
    """An array's or struct's address as an int (None: NULL)."""
    if a is None:
        return None
    return C.addressof(a) if isinstance(a, (C.Structure, C.Array)) else a.ctypes.data


def shape(d: D) -> tuple:
    return (d.n, d.h, d.w, d.c)


def chain_calls(rng, case) -> list[Call]:
    """The chain with packs and without, on the host (== the two streams apart, asserted),
    and for each the same call through a reader (the host checks that one too) and a
    frame (the rig only)."""
    h, w, ci, s0, s1 = case
    first, mid = stream(rng, h, w, ci, s0)
    second, out = stream(rng, mid.h, mid.w, mid.c, s1)
    x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
    (w0, p0), (w1, p1) = scratch(first), scratch(second)
    assert p0 > 0 and p1 > 0, case                     # both packed: the DSP versions' path

    def apart(args, x, dims):
        y = np.zeros(shape(dims), np.int8)
        assert c_forward.call("tt_conv_depthwise_pointwise_packed_s8", *args[:4], x, *args[4:],
                              y, np.zeros(scratch(args)[0], np.int8), None) == 0
        return y
    want = apart(second, apart(first, x, mid), out)
    span = min((second[4].h - 1) * second[0].dilation_h + 1, mid.h)
    source_span = min((first[4].h - 1) * first[0].dilation_h + 1, h)
    calls = []
    for pack in (False, True):
        y = np.zeros(shape(out), np.int8)
        args = [*first[:4], x, *first[4:], np.zeros(w0, np.int8),
                np.zeros(p0, np.int8) if pack else None,
                np.zeros(span * mid.w * mid.c, np.int8), *second[:3], *second[4:], y,
                np.zeros(w1, np.int8), np.zeros(p1, np.int8) if pack else None]
        before = [None if a is None else snapshot(a) for a in args]
        assert c_forward.call("tt_conv_depthwise_pointwise_chain_s8", *args) == 0
        assert y.tobytes() == want.tobytes(), (case, pack)
        call = Call("tt_conv_depthwise_pointwise_chain_s8",
                    [None if a is None else Memory(b, b"" if i in UNSPECIFIED else snapshot(a))
                     for i, (a, b) in enumerate(zip(args, before))],
                    C.c_int, bytes(C.c_int(0)))
        calls.append(call)
        # the same call reading x row by row on the host: the rig's reader form's bits
        got = np.zeros_like(y)
        reader = host.RowReader(x[0])
        source = (C.c_uint8 * 256)()                   # a tt_row_source's room
        rows = np.zeros(source_span * w * ci, np.int8)
        lib = K._library()                             # tt_row_source.h: no argtypes
        lib.tt_row_source_reader(source, reader.fn, None, pointer(rows), source_span, h,
                                 w * ci)
        values, keep = stream_args.host_args(
            "tt_conv_depthwise_pointwise_chain_source_s8",
            [address(a) for a in (*args[:4], source, *args[5:-3], got, *args[-2:])],
            K.struct_class)
        assert lib.tt_conv_depthwise_pointwise_chain_source_s8(
            *(C.c_void_p(v) for v in values)) == 0
        assert got.tobytes() == want.tobytes() and reader.asked == list(range(h)), case
        calls += [Call("rig_chain_source_s8",
                       [*call.args, Memory(bytes(rows.nbytes), b""), frame], call.restype,
                       call.result) for frame in (0, 1)]
    return calls


def test_chained_streams_equal_the_host_on_the_cortex_m7(tmp_path, monkeypatch):
    require_tool(F.rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    rng = np.random.default_rng(31)
    calls = [c for case in CHAINS for c in chain_calls(rng, case)]
    src = c_forward.MICRO_KERNELS / "src"
    monkeypatch.setattr(F, "SOURCES", [*F.SOURCES, src / "tt_stream.c", src / "tt_row_source.c"])
    [program] = F.programs(calls)                       # one program: small vectors
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",))):
        text = F.source(program).replace(
            '#include "tt_forward.h"', '#include "tt_forward.h"\n#include "tt_stream.h"' + READER)
        res = F.run_rig(F.build(tmp_path, f"chain-{label}", text, defines))
        output = res.stdout + res.stderr
        assert res.returncode == 0 and "PASS" in output, (label, output[-2000:])
