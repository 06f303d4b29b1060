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

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rig_timing  # noqa: E402

SOURCE = rig_timing.input_grad_program(
    "static uint8_t stage[16384] __attribute__((aligned(8)));", shape_dy="""
  /* graded channels: at c channels a position, channel ch is shifted by (5 ch) mod 8 where
   * c is a multiple of 8 */
  for (int i = 0; i < 65536; ++i) dy[i] = (int8_t)(dy[i] >> ((i * 5) % 8));""")

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
    counts, hsh = rig_timing.measure_kernels(SOURCE, [call(s, size) for _, s, size in runs],
                                             "fold()", tmp, root, "dw")
    print(f"hash {hsh}")
    for (label, s, size), n in zip(runs, counts):
        oh, c, k, _, _, h = s
        print(f"{label} {name(s):30s} {n:10,d} {n / (oh * oh * c * k * k):6.2f} a MAC "
              f"{n / (h * h * c):6.1f} an element" + (f"  staging {size} B" if size else ""))
    print(f"total {sum(counts):,d}")


def main() -> None:
    ap = rig_timing.parser(__doc__)
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
            shape = SHAPES[args.profile]
            rig_timing.profile_call(SOURCE, call(shape, args.stage), name(shape), Path(tmp),
                                    args.root, args.annotate)


if __name__ == "__main__":
    main()
