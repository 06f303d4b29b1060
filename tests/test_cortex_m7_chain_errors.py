"""The chained streams' error returns (tt_row_source.h: tt_conv_depthwise_pointwise_chain_source_s8)
on x86 and on the Cortex-M7 rig (DSP and -DTT_PORTABLE builds), which the streams' bit tests
(test_cortex_m7_chain.py) never reach:

  - a row reader that gives up at the first, a middle or the last input row: the chain
    returns TT_FWD_INPUT_FAILED, the reader is asked for no row after the one that failed,
    no input is changed and nothing is written outside the output and scratch buffers;
  - every geometry the chain refuses, in its first stream and in its second (a batch of 2,
    a projection that is not 1x1, strided or padded, a depthwise output of another size
    than the projection's): TT_FWD_UNSUPPORTED, no row read, and nothing touched but the
    first stream's pack, through a reader and through a frame.

One harness, generated from tt_conv_depthwise_pointwise_chain_s8's signature in tt_stream.h
(so that the chain's parameter list is not written out once more): every pointer argument
lies between two 16-byte guards, which it checks after the call; it reads the sample
through a reader that gives up at row `fail_at` (-1: a frame) and returns status * 1000 +
the rows asked for (99: asked out of order or again). It runs on x86 first, whose bytes
the rig must then reproduce.
"""
from __future__ import annotations

import ctypes as C
import subprocess

import numpy as np
import pytest

import test_cortex_m7_chain as chain
import test_cortex_m7_forward as F
from conftest import require_tool
from test_cortex_m7 import Call, Memory
from tflite_train.codegen import host
from tflite_train.runtime import stream_args
from tflite_train.runtime import c_forward
from tflite_train.runtime import kernel_calls as K

GUARD = 16              # bytes each side of every buffer (keeps the arena's 8-byte alignment)
FILL = 0xA5
OUT_OF_ORDER = 99
OK, UNSUPPORTED, INPUT_FAILED = 0, 1, 2      # TT_FWD_OK, TT_FWD_UNSUPPORTED, TT_FWD_INPUT_FAILED
CHAIN = "tt_conv_depthwise_pointwise_chain_s8"

# the chain's scratch (its window, pack and ring, the second stream's window and pack; the
# harness's reader ring): bytes not specified after any call
SCRATCH = {"window", "pack", "ring", "b_window", "b_pack", "rows"}
# after a failed read, the output is not to be used either
NOT_AFTER_A_FAILURE = SCRATCH | {"b_output"}
PACK = {"pack"}         # the one argument a refused chain may have written


def harness() -> str:
    """rig_chain_guarded: the chain's parameters, then the reader's ring, the bytes between
    the guards of every pointer argument (in order) and fail_at."""
    params = K.signatures()[CHAIN].params
    pointers = [p for p in params if p.pointer]
    decl = ", ".join(f"{'const ' if p.const else ''}{p.ctype} *{p.name}" if p.pointer
                     else f"{p.ctype} {p.name}" for p in params)
    exprs = [("&source" if p.name == "input" else
              f"({'const ' if p.const else ''}{p.ctype} *)inner({p.name})")
             if p.pointer else p.name for p in params]
    decls, args = stream_args.c_groups(CHAIN.replace("_s8", "_source_s8"),
                                       [p.name for p in params], exprs, "s_", "const")
    args = ", ".join(args)
    decls = "\n".join("  " + d for d in decls)
    checks = "\n".join(f"  if (!guarded({p.name}, sizes[{i}])) return {90 + i % 9};"
                       for i, p in enumerate(pointers))
    return r"""
#include <stdint.h>
#include <string.h>
#include "tt_row_source.h"
#include "tt_stream.h"
#define RIG_GUARD %(guard)d
typedef struct { const int8_t *x; int32_t row_bytes, next, fail_at, bad; } rig_rows;
static int rig_read_row(int32_t y, int8_t *row, void *ctx) {
  rig_rows *r = (rig_rows *)ctx;
  if (y != r->next) r->bad = 1;                /* each row once, in order, none after a failure */
  if (r->next > r->fail_at) r->bad = 1;
  r->next = y + 1;
  if (y == r->fail_at) return 1;
  memcpy(row, r->x + y * r->row_bytes, (unsigned)r->row_bytes);
  return 0;
}
static void *inner(const void *p) {
  return p ? (void *)((uintptr_t)p + RIG_GUARD) : 0;
}
static int guarded(const void *p, int32_t bytes) {
  const uint8_t *b = (const uint8_t *)p;
  if (!b) return 1;
  for (int32_t i = 0; i < RIG_GUARD; ++i)
    if (b[i] != %(fill)d || b[RIG_GUARD + bytes + i] != %(fill)d) return 0;
  return 1;
}
int rig_chain_guarded(%(decl)s, int8_t *rows, const int32_t *sizes, int32_t fail_at) {
  const int8_t *x = (const int8_t *)inner(input);
  const tt_fwd_dims *xd = (const tt_fwd_dims *)inner(input_dims);
  const tt_fwd_conv_params *ap = (const tt_fwd_conv_params *)inner(a);
  const tt_fwd_dims *afd = (const tt_fwd_dims *)inner(a_filter_dims);
  const int32_t span = (afd->h - 1) * ap->dilation_h + 1;
  rig_rows r = {x, xd->w * xd->c, 0, fail_at, 0};
  tt_row_source source;
  if (fail_at < 0)
    tt_row_source_frame(&source, x, xd->h, r.row_bytes);
  else
    tt_row_source_reader(&source, rig_read_row, &r, (int8_t *)inner(rows),
                         span < xd->h ? span : xd->h, xd->h, r.row_bytes);
%(decls)s
  const int status = tt_conv_depthwise_pointwise_chain_source_s8(%(args)s);
%(checks)s
  if (!guarded(rows, sizes[%(n)d])) return 89;
  return r.bad ? %(bad)d : status * 1000 + r.next;
}
""" % {"guard": GUARD, "fill": FILL, "decl": decl, "args": args, "decls": decls, "checks": checks,
       "n": len(pointers), "bad": OUT_OF_ORDER}


def guarded(data: bytes) -> np.ndarray:
    g = bytes([FILL]) * GUARD
    return np.frombuffer(g + data + g, np.uint8).copy()


def chain_args(rng, case):
    """A seeded chain's arguments with packs (tt_conv_depthwise_pointwise_chain_s8's order;
    the second stream's input dims are the first's output dims) and the input's height."""
    h, w, ci, s0, s1 = case
    first, mid = chain.stream(rng, h, w, ci, s0)
    second, out = chain.stream(rng, mid.h, mid.w, mid.c, s1)
    x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
    (w0, p0), (w1, p1) = chain.scratch(first), chain.scratch(second)
    span = min((second[4].h - 1) * second[0].dilation_h + 1, mid.h)
    args = [*first[:4], x, *first[4:], np.zeros(w0, np.int8), np.zeros(p0, np.int8),
            np.zeros(span * mid.w * mid.c, np.int8), *second[:3], *second[4:],
            np.zeros(chain.shape(out), np.int8), np.zeros(w1, np.int8), np.zeros(p1, np.int8)]
    return args, h


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> C.CDLL:
    """The harness linked with the kernels for x86 (their -fPIC objects)."""
    folder = tmp_path_factory.mktemp("chain-errors")
    (folder / "harness.c").write_text(harness())
    so = folder / "harness.so"
    subprocess.run(["gcc", *host.FLAGS, "-fPIC", "-shared", "-I",
                    str(c_forward.MICRO_KERNELS / "include"), "-o", str(so),
                    str(folder / "harness.c"), *map(str, host.kernel_objects())], check=True)
    return C.CDLL(str(so))


def run(lib, args: list, fail_at: int, unspecified: set[str], writes: set[str]
        ) -> tuple[int, Call]:
    """The harness on x86 with `args` (ctypes structs, arrays, None) between guards: its
    result, and the call for the rig (the bytes after it, but those of `unspecified`).
    Every argument but `writes` must be as it was."""
    names = [p.name for p in K.signatures()[CHAIN].params]
    bufs = [None if a is None else guarded(chain.snapshot(a)) for a in args]
    sizes = [0 if a is None else len(chain.snapshot(a)) for a in args]
    rows = guarded(bytes(max(sizes[names.index("input")], 1)))
    table = np.array([*sizes, rows.size - 2 * GUARD], np.int32)
    before = [None if b is None else b.tobytes() for b in bufs]
    ring_before = rows.tobytes()
    pointer = lambda b: None if b is None else b.ctypes.data_as(C.c_void_p)   # noqa: E731
    result = lib.rig_chain_guarded(*map(pointer, bufs), pointer(rows), pointer(table),
                                   C.c_int32(fail_at))
    memory = [None if b is None else Memory(before[i], b"" if names[i] in unspecified
                                            else b.tobytes())
              for i, b in enumerate(bufs)]
    memory += [Memory(ring_before, b"" if "rows" in unspecified else rows.tobytes()),
               Memory(table.tobytes(), table.tobytes()), fail_at]
    for i, b in enumerate(bufs):
        if b is not None and names[i] not in writes:
            assert b.tobytes() == before[i], names[i]
    if "rows" not in writes:
        assert rows.tobytes() == ring_before
    return result, Call("rig_chain_guarded", memory, C.c_int, bytes(C.c_int(result)))


def failing_calls(lib, rng) -> list[Call]:
    calls = []
    for case in chain.CHAINS:
        args, h = chain_args(rng, case)
        for fail_at in (0, h // 2, h - 1):
            result, call = run(lib, args, fail_at, NOT_AFTER_A_FAILURE, NOT_AFTER_A_FAILURE)
            assert result == INPUT_FAILED * 1000 + fail_at + 1, (case, fail_at, result)
            calls.append(call)
        result, call = run(lib, args, h, SCRATCH, NOT_AFTER_A_FAILURE)   # it never fails
        assert result == OK * 1000 + h, (case, result)
        calls.append(call)
    return calls


def refusals(args: list) -> list[tuple[str, list]]:
    """(what, the chain's arguments changed so that it refuses them)."""
    names = [p.name for p in K.signatures()[CHAIN].params]
    out = []

    def changed(name, **fields):
        new = list(args)
        at = names.index(name)
        value = type(args[at]).from_buffer_copy(bytes(args[at]))
        for k, v in fields.items():
            setattr(value, k, v)
        new[at] = value
        return new
    for s in ("", "b_"):
        out += [(f"{s}pw strided", changed(f"{s}pw", stride_h=2, stride_w=2)),
                (f"{s}pw padded", changed(f"{s}pw", pad_left=1)),
                (f"{s}pw filter 3x1", changed(f"{s}pw_filter_dims", h=3)),
                (f"{s}dw output taller", changed(f"{s}dw_output_dims",
                                                 h=args[names.index(f"{s}dw_output_dims")].h + 1))]
    out += [("a batch of 2", changed("input_dims", n=2)),
            ("a batch of 2 between the streams", changed("output_dims", n=2))]
    return out


def refused_calls(lib, rng) -> list[Call]:
    calls = []
    for case in chain.CHAINS[:2]:
        args, h = chain_args(rng, case)
        for what, bad in refusals(args):
            for fail_at in (-1, h):                        # a frame; a reader
                result, call = run(lib, bad, fail_at, PACK, PACK)
                assert result == UNSUPPORTED * 1000, (case, what, fail_at, result)
                calls.append(call)
    return calls


def test_a_failing_reader_inside_the_chain_on_x86(lib):
    assert len(failing_calls(lib, np.random.default_rng(8))) == 4 * len(chain.CHAINS)


def test_the_refused_geometries_on_x86(lib):
    assert len(refused_calls(lib, np.random.default_rng(9))) == 2 * 10 * 2


def test_the_chains_errors_on_the_cortex_m7(lib, tmp_path, monkeypatch):
    """The x86 calls above replayed on the rig: the same results and bytes."""
    require_tool(F.rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = (failing_calls(lib, np.random.default_rng(8))
             + refused_calls(lib, np.random.default_rng(9)))
    src = c_forward.MICRO_KERNELS / "src"
    monkeypatch.setattr(F, "SOURCES", [*F.SOURCES, src / "tt_stream.c", src / "tt_row_source.c"])
    [program] = F.programs(calls)
    text = F.source(program).replace('#include "tt_forward.h"',
                                     '#include "tt_forward.h"\n' + harness())
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",))):
        res = F.run_rig(F.build(tmp_path, f"chain-errors-{label}", text, defines))
        output = res.stdout + res.stderr
        assert res.returncode == 0 and "PASS" in output, (label, output[-2000:])
