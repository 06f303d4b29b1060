"""The depthwise int8-dy weight gradient (tt_depthwise_conv2d_weight_grad_s8) and its fused
update (tt_depthwise_conv2d_weight_update_s8_s8) on the Cortex-M7 rig, for the person
detector's and MCUNet-5FPS's depthwise shapes (benchmarks/mcu_grad_dsp.py's), one call each,
and where a call's instructions go.

    .venv/bin/python benchmarks/dw_weight_grad.py                    # this checkout's kernels
    .venv/bin/python benchmarks/dw_weight_grad.py --root /tmp/main/micro_kernels   # another's
    .venv/bin/python benchmarks/dw_weight_grad.py --mask             # with a ReLU-like mask
    .venv/bin/python benchmarks/dw_weight_grad.py --profile 0        # call 0, per function
    .venv/bin/python benchmarks/dw_weight_grad.py --profile 0 --annotate wg_sums_3

Each row: instructions (QEMU `-icount shift=0`, rounded to 40; instructions, not cycles) and
per MAC of the forward layer, the staging `_stage_bytes` asks for. `hash` folds every call's
dw and updated weights: equal hashes are the same bits.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rig_timing  # noqa: E402
from mcu_grad_dsp import DEPTHWISE  # noqa: E402

BUFFERS = r"""
static int8_t dy[65536], x[65536], w[16384];
static uint8_t mask[8192];
static float dw[16384], scales[1024], sdy = 0.01f;
static uint8_t stage[9216] __attribute__((aligned(8)));
"""
SETUP = r"""
  for (int i = 0; i < 65536; ++i) dy[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
  for (int i = 0; i < 65536; ++i) x[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < 16384; ++i) w[i] = (int8_t)(tt_xorshift32_next(&r) % 255 - 127);
  for (int i = 0; i < 8192; ++i) mask[i] = (uint8_t)(tt_xorshift32_next(&r) | tt_xorshift32_next(&r));
  for (int i = 0; i < 1024; ++i) scales[i] = 0.001f * (float)(1 + (i & 7));
  tt_sgd sgd = {0.05f, 0.0f, 1, 1, 0, 0};
"""
# each call's dw (float) and w, n elements each
SOURCE = rig_timing.kernel_program(BUFFERS, SETUP, [("f32", "dw", "n"), ("s8", "w", "n")],
                                   "int n")


def calls(shape, masked: bool) -> list[tuple[str, str, int]]:
    model, h, c, oh, k, s, pad = shape
    win = f"&(tt_window){{{s}, {s}, 1, 1, {pad}, {pad}}}"
    m = "mask" if masked else "0"
    size = (f"tt_depthwise_conv2d_weight_grad_s8_stage_bytes(1, {oh}, {oh}, {c}, 1, {h}, {h}, "
            f"{k}, {k}, {win}, 0)")
    name = f"{model}: {k}x{k}/{s} {c} @{h}x{h}"
    macs = oh * oh * c * k * k
    return [(f"{name} weight grad",
             f"tt_depthwise_conv2d_weight_grad_s8(dy, &sdy, {m}, 1, {oh}, {oh}, {c}, 1, x, "
             f"0.02f, -128, {h}, {h}, {k}, {k}, {win}, dw, stage, {size})", macs),
            (f"{name} fused update",
             f"tt_depthwise_conv2d_weight_update_s8_s8(dy, &sdy, {m}, 1, {oh}, {oh}, {c}, 1, "
             f"x, 0.02f, -128, {h}, {h}, w, {k}, {k}, scales, {c}, {win}, 0, &sgd, &st, dw, "
             f"stage, {size})", macs)]


def all_calls(masked: bool):
    return [(cl, s) for s in DEPTHWISE for cl in calls(s, masked)]


def measure(root: Path, tmp: Path, masked: bool) -> None:
    runs = all_calls(masked)
    counts, hsh = rig_timing.measure_kernels(
        SOURCE, [call for (_, call, _), _ in runs],
        [f"fold({s[2] * s[4] * s[4]})" for _, s in runs],
        tmp, root, "wg")
    print(f"hash {hsh}")
    for i, (((label, _, macs), _), n) in enumerate(zip(runs, counts)):
        print(f"{i:2d} {label:58s} {n:10,d} {n / macs:6.2f} a MAC")


def main() -> None:
    ap = rig_timing.parser(__doc__)
    ap.add_argument("--mask", action="store_true", help="dy masked (about 3 bits in 4 set)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile is None:
            measure(args.root, Path(tmp), args.mask)
        else:
            (label, call, _), _ = all_calls(args.mask)[args.profile]
            rig_timing.profile_call(SOURCE, call, label, Path(tmp), args.root, args.annotate)


if __name__ == "__main__":
    main()
