"""The depthwise int8 input gradient (tt_depthwise_conv2d_input_grad_s8, two passes) on the
Cortex-M7 rig for both models' shapes, one call each, and where a call's instructions go.

    .venv/bin/python benchmarks/dw_input_grad.py                     # this checkout's kernels
    .venv/bin/python benchmarks/dw_input_grad.py --root /tmp/main/micro_kernels   # another's
    .venv/bin/python benchmarks/dw_input_grad.py --profile 0         # call 0, per function
    .venv/bin/python benchmarks/dw_input_grad.py --profile 0 --annotate rows3,walk
    .venv/bin/python benchmarks/dw_input_grad.py --stage 16384       # one staging for all
    .venv/bin/python benchmarks/dw_input_grad.py --rows-program      # the 113 KB program's

Each row: instructions (QEMU `-icount shift=0`, rounded to 40; instructions, not cycles), per
MAC of the forward layer and per dx element. The calls are a generated program's: a mask
with about three bits in four set (ReLU's), no scratch (two passes: the first finds the
largest magnitude, pruning the channels whose bound cannot raise it), stochastic rounding,
the staging `_stage_bytes` asks for. dy is graded by channel (shifted right by 0-7 bits,
as a trained layer's channels differ), so that the pruning works as it does in a step;
benchmarks/mcu_grad_dsp.py's rows have every channel alike. `hash` folds every call's dx
and scale: equal hashes are the same bits. --profile runs one call under QEMU's
single-step trace and counts instructions per function (per PC with --annotate).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rig_timing  # noqa: E402

SOURCE = r"""
#include <stdint.h>
#include "tt_kernels.h"
%TIMING%
static int8_t dy[65536], dx[65536], w[65536];
static uint8_t mask[8192];
static int16_t mult[1024];
static uint8_t stage[16384] __attribute__((aligned(8)));
static float dxs, sdy = 0.01f;
static uint32_t hsh = 2166136261u;
static void fold(void) {
  for (int i = 0; i < 65536; ++i) hsh = (hsh ^ (uint8_t)dx[i]) * 16777619u;
  union { float f; uint32_t u; } v = {dxs};
  hsh = (hsh ^ v.u) * 16777619u;
}
__attribute__((noinline)) void dw_begin(void) { __asm volatile(""); }
__attribute__((noinline)) void dw_end(void) { __asm volatile(""); }
int main(void) {
  uint32_t r = 1;
  for (int i = 0; i < 65536; ++i) dy[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
  /* graded channels: at c channels a position, channel ch is shifted by (5 ch) mod 8 where
   * c is a multiple of 8 */
  for (int i = 0; i < 65536; ++i) dy[i] = (int8_t)(dy[i] >> ((i * 5) % 8));
  for (int i = 0; i < 65536; ++i) w[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < 1024; ++i) mult[i] = (int16_t)(128 + (tt_xorshift32_next(&r) & 127));
  for (int i = 0; i < 8192; ++i) mask[i] = (uint8_t)(tt_xorshift32_next(&r) | tt_xorshift32_next(&r));
  tt_update_state st;
  tt_update_state_init(&st, 7);
  tt_rig_ticks_start();
%CALLS%
  put("hash", hsh & 0xFFFFFF);
  tt_rig_print("DONE\n");
  return 0;
}
"""

# (oh = ow, c, k, stride, pad, h = w of dx): MobileNetV2-w0.35's and MCUNet-5FPS's depthwise
# layers whose input gradient a 99kb step computes (blocks.9-16 and blocks.7-13), and two
# of MCUNet's larger maps.
SHAPES = [(8, 192, 3, 1, 1, 8), (8, 144, 3, 1, 1, 8), (4, 336, 3, 1, 1, 4),
          (4, 576, 3, 1, 1, 4), (4, 384, 5, 1, 2, 4), (8, 160, 5, 1, 2, 8),
          (4, 192, 4, 2, 1, 8), (4, 240, 8, 2, 3, 8), (8, 48, 3, 1, 1, 8),
          (16, 120, 3, 1, 1, 16)]

# MobileNetV2's 8 calls in its 113 KB program (`codegen --input rows --lean-stack`, the plan
# at 9ccdd38): (operator, SHAPES index, the staging the planner gives it)
ROWS_PROGRAM = [(91, 2, 1216), (98, 2, 984), (106, 2, 2376), (114, 6, 1960), (121, 0, 1832),
                (129, 0, 3472), (137, 1, 7080), (144, 1, 9048)]


def call(shape, stage: int) -> str:
    oh, c, k, s, pad, h = shape
    win = f"&(tt_window){{{s}, {s}, 1, 1, {pad}, {pad}}}"
    size = (str(stage) if stage else
            f"tt_depthwise_conv2d_input_grad_s8_stage_bytes(1, {oh}, {oh}, {c}, 1, {k}, {k}, "
            f"{win}, {h}, {h}, 0)")
    return (f"tt_depthwise_conv2d_input_grad_s8(dy, &sdy, mask, 1, {oh}, {oh}, {c}, 1, w, "
            f"mult, 3.9e-5f, {k}, {k}, {win}, {h}, {h}, dx, &dxs, &st, 0, 0, stage, {size})")


def name(shape) -> str:
    oh, c, k, s, _, h = shape
    return f"{k}x{k}/{s} {c} @{oh}x{oh} (dx {h}x{h})"


def measure(root: Path, tmp: Path, stage: int, rows_program: bool = False) -> None:
    runs = ([(f"op {op}", SHAPES[i], size) for op, i, size in ROWS_PROGRAM] if rows_program
            else [(f"{i:2d}", s, stage) for i, s in enumerate(SHAPES)])
    program = tmp / "dw.c"
    program.write_text(SOURCE.replace("%TIMING%", rig_timing.TIMING).replace(
        "%CALLS%", "\n".join(f'  TIME("k{i}", {call(s, size)}); fold();'
                             for i, (_, s, size) in enumerate(runs))))
    res = rig_timing.run(rig_timing.build(program, tmp / "dw.elf", root,
                                          link=rig_timing.big_link(tmp)))
    ticks = dict(re.findall(r"(k\d+|hash) (\d+)", res.stdout + res.stderr))
    print(f"hash {ticks['hash']}")
    total = 0
    for i, (label, s, size) in enumerate(runs):
        n = 40 * int(ticks[f"k{i}"])
        total += n
        oh, c, k, _, _, h = s
        print(f"{label} {name(s):30s} {n:10,d} {n / (oh * oh * c * k * k):6.2f} a MAC "
              f"{n / (h * h * c):6.1f} an element" + (f"  staging {size} B" if size else ""))
    print(f"total {total:,d}")


def profile(root: Path, tmp: Path, index: int, annotate: list[str], stage: int) -> None:
    program = tmp / "dw1.c"
    program.write_text(SOURCE.replace("%TIMING%", rig_timing.TIMING).replace(
        "%CALLS%", f"  dw_begin();\n  {call(SHAPES[index], stage)};\n  dw_end();"))
    elf = rig_timing.build(program, tmp / "dw1.elf", root, link=rig_timing.big_link(tmp))
    rig_timing.trace_profile(elf, "dw_begin", "dw_end", name(SHAPES[index]), annotate, tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=HERE.parent / "micro_kernels",
                    help="a micro_kernels folder (default: this checkout's)")
    ap.add_argument("--profile", type=int, metavar="N", help="profile call N instead")
    ap.add_argument("--annotate", default="", help="functions to print per instruction")
    ap.add_argument("--stage", type=int, default=0, metavar="BYTES",
                    help="this staging for every call (at most 16384) instead of the one "
                    "_stage_bytes asks for")
    ap.add_argument("--rows-program", action="store_true",
                    help="MobileNetV2's 8 calls with the stagings of its 113 KB program")
    args = ap.parse_args()
    if not 0 <= args.stage <= 16384:
        ap.error("--stage: 0 to 16384")
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile is None:
            measure(args.root, Path(tmp), args.stage, args.rows_program)
        else:
            annotate = [f for f in args.annotate.split(",") if f]
            profile(args.root, Path(tmp), args.profile, annotate, args.stage)


if __name__ == "__main__":
    main()
