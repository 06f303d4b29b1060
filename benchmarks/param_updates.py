"""MobileNetV2-w0.35's int8 weight and bias updates one call at a time on the Cortex-M7 rig
(QEMU mps2-an500, `-icount shift=0`, the board's flags, -O2, the DSP build): instructions a
call (rounded to 40) and a hash of every updated weight and bias, so that two checkouts'
kernels can be compared for speed and for bits.

    .venv/bin/python benchmarks/param_updates.py                       # this checkout
    .venv/bin/python benchmarks/param_updates.py --root /tmp/x/micro_kernels   # another
    .venv/bin/python benchmarks/param_updates.py --profile 0 --annotate update_run16

`--profile N` runs call N alone under QEMU's single-step trace (rig_timing.profile_call)
and prints its instructions per function, and per instruction for the `--annotate` ones.

The calls: the shapes of the 99kb scheme's generated program (`tflite-train codegen` of the
augmented model: its TT_CONV2D_WEIGHT_UPDATE and TT_BIAS_UPDATE operators), the default rule
(QAS, stochastic rounding, no momentum), dy pseudo-random with a mask of about three live
bits in four where the program has one; each pointwise update with the whole-input staging
the smallest-arena program gives it, and 192x32 @8x8 once more without staging (the chunked
staging in the kernel's own frame, as the 113 KB row-API program runs it).

QEMU counts instructions, not cycles.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import rig_timing  # noqa: E402

# (label, h = w, co, k trained input channels, staged: the arena staging or none)
WEIGHTS = [("336x56 @4x4 (op 95)", 4, 336, 56, True), ("336x28 @4x4 (op 101)", 4, 336, 28, True),
           ("336x7 @4x4 (op 109)", 4, 336, 7, True),
           ("192x32 @8x8 (ops 118-132)", 8, 192, 32, True),
           ("144x24 @8x8 (ops 141, 147)", 8, 144, 24, True),
           ("192x32 @8x8, chunked (row-API program)", 8, 192, 32, False)]
# (label, positions, channels, masked)
BIASES = [("336 @16, masked (x7)", 16, 336, True), ("192 @64, masked (x4)", 64, 192, True),
          ("144 @64, masked (x4)", 64, 144, True), ("192 @16, masked", 16, 192, True),
          ("56 @16 (x3)", 16, 56, False), ("32 @64 (x3)", 64, 32, False),
          ("24 @64 (x2)", 64, 24, False)]

PROGRAM = r"""
#include <stdint.h>
#include "tt_kernels.h"
%TIMING%
static int8_t dy[64 * 336], x[64 * 56], w[336 * 56];
static uint8_t mask[64 * 336 / 8];
static int32_t b[336];
static float scales[336], bscales[336], scratch[336 * 56];
static uint64_t stage[4608 / 8];        /* the largest staging the program gives */
static float sdy = 0.004f;
static void fill(uint32_t seed) {
  uint32_t r = seed;
  for (int i = 0; i < 64 * 336; ++i) dy[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
  for (int i = 0; i < 64 * 336 / 8; ++i)
    mask[i] = (uint8_t)(tt_xorshift32_next(&r) | tt_xorshift32_next(&r));
  for (int i = 0; i < 64 * 56; ++i) x[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < 336 * 56; ++i) w[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
  for (int i = 0; i < 336; ++i) {
    b[i] = (int32_t)(tt_xorshift32_next(&r) % 20001) - 10000;
    scales[i] = 0.002f + (float)(tt_xorshift32_next(&r) & 1023) * 1e-5f;
    bscales[i] = 1e-5f + (float)(tt_xorshift32_next(&r) & 1023) * 1e-7f;
  }
}
__attribute__((noinline)) void bench_begin(void) { __asm volatile(""); }
__attribute__((noinline)) void bench_end(void) { __asm volatile(""); }
static uint32_t hash(uint32_t h, const void *p, int n) {
  const uint8_t *c = (const uint8_t *)p;
  for (int i = 0; i < n; ++i) h = (h ^ c[i]) * 16777619u;
  return h;
}
int main(void) {
  tt_sgd sgd = {0.05f, 0.0f, 1, 1, 0, 0};
  const tt_window same = {1, 1, 1, 1, 0, 0};
  tt_update_state st;
  tt_update_state_init(&st, 7);
  uint32_t h = 2166136261u;
  tt_rig_ticks_start();
%CALLS%
  put("hash", h & 0xFFFFFFu);
  put("hash_hi", h >> 24);
  tt_rig_print("DONE\n");
  return 0;
}
"""


def calls() -> list[tuple[str, str]]:
    out = []
    for i, (label, h, co, k, staged) in enumerate(WEIGHTS):
        bytes_ = (f"tt_conv2d_weight_update_s8_s8_stage_bytes(1, {h}, {h}, {co}, {h}, {h}, {k}, "
                  f"1, 1, &same, 0, 0)") if staged else "0"
        out.append((f"weights {label}",
                    f"tt_conv2d_weight_update_s8_s8(dy, &sdy, mask, 1, {h}, {h}, {co}, x, 0.02f, "
                    f"-3, {h}, {h}, {k}, w, 1, 1, {k}, scales, {co}, &same, 0, &sgd, &st, "
                    f"scratch, {'stage' if staged else '0'}, {bytes_}); "
                    f"h = hash(h, w, {co * k}); fill({i + 1})"))
    for i, (label, n, c, masked) in enumerate(BIASES):
        out.append((f"biases {label}",
                    f"tt_bias_update_s32_s8(dy, &sdy, {'mask' if masked else '0'}, {n}, {c}, b, "
                    f"bscales, 0, &sgd, &st, scratch); h = hash(h, b, {4 * c}); "
                    f"fill({i + 101})"))
    return out


def main() -> None:
    ap = rig_timing.parser(__doc__)
    args = ap.parse_args()
    rows = calls()
    source = PROGRAM.replace("%CALLS%", "  fill(0);\n%CALLS%")
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile is not None:
            rig_timing.profile_call(source, rows[args.profile][1].split("; h = ")[0],
                                    rows[args.profile][0], Path(tmp), args.root, args.annotate,
                                    link=rig_timing.RIG / "link.ld")
            return
        # the hash and the refill are inside TIME: measure them alone and take them off
        base = [c.split("; h = ")[0] for _, c in rows]
        tail = ["h = " + c.split("; h = ")[1] for _, c in rows]
        counts, got = rig_timing.time_program(source, [x for pair in zip(base, tail)
                                                       for x in pair], Path(tmp),
                                              root=args.root, name="updates")
    print(f"kernels: {args.root}")
    print("| call | instructions |\n|---|---:|")
    for (label, _), n in zip(rows, counts[0::2]):
        print(f"| {label} | {n:,} |")
    print(f"hash of every updated weight and bias: {got['hash_hi']:02x}{got['hash']:06x}")


if __name__ == "__main__":
    main()
