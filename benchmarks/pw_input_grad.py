"""The pointwise int8 input gradient (tt_conv2d_input_grad_s8) on the Cortex-M7 rig for both
models' shapes, one call each, and where a call's instructions go.

    .venv/bin/python benchmarks/pw_input_grad.py                     # this checkout's kernels
    .venv/bin/python benchmarks/pw_input_grad.py --root /tmp/main/micro_kernels   # another's
    .venv/bin/python benchmarks/pw_input_grad.py --profile 1         # call 1, per function
    .venv/bin/python benchmarks/pw_input_grad.py --profile 1 --annotate block8_1
    .venv/bin/python benchmarks/pw_input_grad.py --sparse            # sparse masks and dy

Each row: instructions (QEMU `-icount shift=0`, rounded to 40; instructions, not cycles) and
per MAC of the forward layer, pseudo-random dy, weights, multipliers and a mask with about
three bits in four set (ReLU's), stochastic rounding; "1p" keeps every position in a scratch
(one pass), "2p" none (two passes, dx's quarter kept). `hash` folds every call's dx and
scale: equal hashes are the same bits. --profile runs one call under QEMU's single-step
trace (`-singlestep -d exec,nochain`) and counts instructions per function (per PC with
--annotate: the objdump of those functions with each instruction's count).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rig_timing  # noqa: E402

# (h = w, ci, co, masked, form) of the forward 1x1 layer ci -> co; the gradient sums over co.
# MobileNetV2-w0.35's projections and expansions at 8x8 and 4x4, MCUNet-5FPS's at 4x4-16x16.
SHAPES = [(8, 192, 32, 0, "2p"), (8, 32, 192, 1, "1p"), (8, 144, 24, 0, "1p"),
          (8, 24, 144, 1, "1p"), (4, 336, 56, 0, "2p"), (4, 56, 336, 1, "1p"),
          (8, 192, 32, 0, "1p"), (4, 576, 160, 0, "2p"), (4, 96, 576, 1, "1p"),
          (8, 48, 192, 1, "2p"), (8, 160, 40, 0, "2p"), (16, 120, 24, 0, "1p"),
          (4, 240, 96, 0, "1p"), (4, 96, 384, 1, "1p"), (4, 384, 96, 0, "2p")]


def call(h: int, ci: int, co: int, masked: int, form: str) -> str:
    scratch = f"s32, {h * h}" if form == "1p" else "0, 0"
    return (f"tt_conv2d_input_grad_s8(dy, &sdy, {'mask' if masked else '0'}, 1, {h}, {h}, "
            f"{co}, w, mult, 3.9e-5f, 1, 1, &same, {h}, {h}, {ci}, dx, &dxs, &st, {scratch})")


def name(h: int, ci: int, co: int, masked: int, form: str) -> str:
    return f"{ci}->{co} @{h}x{h} {'masked ' if masked else ''}{form}"


def source(sparse: bool) -> str:
    """The program's text: dense masks (three bits in four set), or with `sparse` a quarter
    of the mask bits set and half of dy zero (a step's masks and gradients: many all-zero
    words)."""
    return rig_timing.input_grad_program(
        "static int32_t s32[65536];",
        "  for (int i = 0; i < 65536; ++i) if (tt_xorshift32_next(&r) & 1) dy[i] = 0;"
        if sparse else "", "&" if sparse else "|", "  const tt_window same = {1, 1, 1, 1, 0, 0};")


def measure(root: Path, tmp: Path, sparse: bool) -> None:
    counts, hsh = rig_timing.measure_kernels(source(sparse), [call(*s) for s in SHAPES],
                                             "fold()", tmp, root, "pw")
    print(f"hash {hsh}")
    for i, (s, n) in enumerate(zip(SHAPES, counts)):
        print(f"{i:2d} {name(*s):28s} {n:10,d} {n / (s[0] * s[0] * s[1] * s[2]):6.3f} a MAC")


def main() -> None:
    ap = rig_timing.parser(__doc__)
    ap.add_argument("--sparse", action="store_true",
                    help="a quarter of the mask bits set and half of dy zero")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile is None:
            measure(args.root, Path(tmp), args.sparse)
        else:
            shape = SHAPES[args.profile]
            rig_timing.profile_call(source(args.sparse), call(*shape), name(*shape), Path(tmp),
                                    args.root, args.annotate)


if __name__ == "__main__":
    main()
