"""Instructions of the C training kernels on the Cortex-M7 rig (QEMU mps2-an500 with
`-icount shift=0`: SysTick ticks every 40 instructions), for the layer shapes of the person
detector's last blocks (operators 22-28 of person_detect.tflite, with a new 10-class head),
and the code size (.text) of the kernel library and of the TFLM glue.

    .venv/bin/python benchmarks/mcu_kernels.py        # prints markdown tables
    .venv/bin/python benchmarks/mcu_kernels.py --kernels OTHER/micro_kernels   # another copy
    .venv/bin/python benchmarks/mcu_kernels.py --json benchmarks/mcu_kernels.json

With --json benchmarks/mcu_kernels.json (this checkout's kernels) the tables of RESULTS.md
are re-rendered from it (benchmarks/results.py).

Built for the paper's board (TFLITE_TRAIN_CORTEX_M7_FLAGS: -mfpu=fpv5-sp-d16, single
precision only; QEMU's FPU could do double, the code does not ask it to). QEMU does not model
the pipeline or caches: these are instruction counts, not cycles. Numbers are rounded to
whole SysTick ticks (40 instructions). Inputs are pseudo-random; the kernels' work does not
depend on the values, except where a row says "masked": there the ReLU mask has about half
its bits set and masked elements are skipped (otherwise masks are absent and every element
counts).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tflite_train.runtime.c_kernels import cortex_m7_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402
import rig_timing  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "micro_kernels"
CPU = cortex_m7_flags()

# Buffers of the program below: dy in f_a, outputs / scratch in f_b, int8 weights in w,
# int8 saved activations in x, int32 biases in b; int8 gradients: dy in g8, dx in o8, the
# weights' multipliers in mult, the one-pass int32 scratch in s32. `same` is a 1x1 window,
# `dw1`/`dw2` the depthwise 3x3 windows at stride 1 and 2 (SAME padding).


def pointwise(h, ci, co):
    macs = h * h * ci * co
    return [
        (f"conv 1x1 {ci}->{co} @{h}x{h}, input grad",
         f"tt_conv2d_input_grad_f32(f_a, 0, 1, {h}, {h}, {co}, w, scales, 1, 1, &same, {h}, "
         f"{h}, {ci}, f_b)", macs),
        (f"conv 1x1 {ci}->{co} @{h}x{h}, weight grad",
         f"tt_conv2d_weight_grad_f32(f_a, 0, 1, {h}, {h}, {co}, x, 0.02f, -128, {h}, {h}, {ci}, "
         f"1, 1, &same, f_b)", macs) if ci * co <= 128 * 128 else None,
        (f"conv 1x1 {ci}->{co} @{h}x{h}, fused weight update",
         f"tt_conv2d_weight_update_s8(f_a, 0, 1, {h}, {h}, {co}, x, 0.02f, -128, {h}, {h}, {ci},"
         f" w, 1, 1, {ci}, scales, {co}, &same, 0, &sgd, &st, f_b)", macs),
    ]


def depthwise(h, c, stride):
    oh = (h + stride - 1) // stride
    win = "&dw1" if stride == 1 else "&dw2"
    macs = oh * oh * c * 9
    name = f"dw 3x3/{stride} {c} @{h}x{h}"
    return [
        (f"{name}, input grad",
         f"tt_depthwise_conv2d_input_grad_f32(f_a, 0, 1, {oh}, {oh}, {c}, 1, w, scales, 3, 3, "
         f"{win}, {h}, {h}, f_b)", macs),
        (f"{name}, weight grad",
         f"tt_depthwise_conv2d_weight_grad_f32(f_a, 0, 1, {oh}, {oh}, {c}, 1, x, 0.02f, -128, "
         f"{h}, {h}, 3, 3, {win}, f_b)", macs),
        (f"{name}, fused weight update",
         f"tt_depthwise_conv2d_weight_update_s8(f_a, 0, 1, {oh}, {oh}, {c}, 1, x, 0.02f, -128, "
         f"{h}, {h}, w, 3, 3, scales, {c}, {win}, 0, &sgd, &st, f_b)", macs),
    ]


def pointwise_s8(h, ci, co):
    """The int8-gradient kernels of a 1x1 conv: input gradient in two passes and in one
    (int32 scratch), weight gradient, fused update."""
    macs = h * h * ci * co
    pw = "tt_conv2d_weight_update_s8_s8_stage_bytes"   # the fused update's (the gradient: none)
    ig = (f"tt_conv2d_input_grad_s8(g8, &sdy, 0, 1, {h}, {h}, {co}, w, mult, 3.9e-5f, 1, 1, "
          f"&same, {h}, {h}, {ci}, o8, &dxs, &st, %s)")
    return [
        (f"int8 grad: conv 1x1 {ci}->{co} @{h}x{h}, input grad, 2 passes", ig % "0, 0", macs),
        (f"int8 grad: conv 1x1 {ci}->{co} @{h}x{h}, input grad, 1 pass",
         ig % f"s32, {h * h}", macs),
        (f"int8 grad: conv 1x1 {ci}->{co} @{h}x{h}, weight grad",
         f"tt_conv2d_weight_grad_s8(g8, &sdy, 0, 1, {h}, {h}, {co}, x, 0.02f, -128, {h}, {h}, "
         f"{ci}, 1, 1, &same, f_b, 0, 0)", macs) if ci * co <= 128 * 128 else None,
        (f"int8 grad: conv 1x1 {ci}->{co} @{h}x{h}, fused weight update",
         f"tt_conv2d_weight_update_s8_s8(g8, &sdy, 0, 1, {h}, {h}, {co}, x, 0.02f, -128, {h}, "
         f"{h}, {ci}, w, 1, 1, {ci}, scales, {co}, &same, 0, &sgd, &st, f_b, stage, "
         f"{pw}(1, {h}, {h}, {co}, {h}, {h}, {ci}, 1, 1, &same, 0, 0))", macs),
    ]


def depthwise_s8(h, c, stride):
    oh = (h + stride - 1) // stride
    win = "&dw1" if stride == 1 else "&dw2"
    macs = oh * oh * c * 9
    name = f"int8 grad: dw 3x3/{stride} {c} @{h}x{h}"
    ig = (f"tt_depthwise_conv2d_input_grad_s8(g8, &sdy, 0, 1, {oh}, {oh}, {c}, 1, w, mult, "
          f"3.9e-5f, 3, 3, {win}, {h}, {h}, o8, &dxs, &st, %s, stage, "
          f"tt_depthwise_conv2d_input_grad_s8_stage_bytes(1, {oh}, {oh}, {c}, 1, 3, 3, {win}, "
          f"{h}, {h}, 0))")
    dws = (f"stage, tt_depthwise_conv2d_weight_grad_s8_stage_bytes(1, {oh}, {oh}, {c}, 1, {h}, "
           f"{h}, 3, 3, {win}, 0)")
    return [
        (f"{name}, input grad, 2 passes", ig % "0, 0", macs),
        (f"{name}, input grad, 1 pass", ig % f"s32, {h * h}", macs),
        (f"{name}, weight grad",
         f"tt_depthwise_conv2d_weight_grad_s8(g8, &sdy, 0, 1, {oh}, {oh}, {c}, 1, x, 0.02f, "
         f"-128, {h}, {h}, 3, 3, {win}, f_b, {dws})", macs),
        (f"{name}, fused weight update",
         f"tt_depthwise_conv2d_weight_update_s8_s8(g8, &sdy, 0, 1, {oh}, {oh}, {c}, 1, x, "
         f"0.02f, -128, {h}, {h}, w, 3, 3, scales, {c}, {win}, 0, &sgd, &st, f_b, {dws})",
         macs),
    ]


CASES = [c for c in [
    *pointwise(6, 128, 128),                                           # operator 22
    ("conv 1x1 128->128 @6x6, input grad, masked",
     "tt_conv2d_input_grad_f32(f_a, mask, 1, 6, 6, 128, w, scales, 1, 1, &same, 6, 6, 128, f_b)",
     6 * 6 * 128 * 128),
    *depthwise(6, 128, 2),                                             # operator 23
    *pointwise(3, 128, 256),                                           # operator 24
    *depthwise(3, 256, 1),                                             # operator 25
    ("dw 3x3/1 256 @3x3, input grad, masked",
     "tt_depthwise_conv2d_input_grad_f32(f_a, mask, 1, 3, 3, 256, 1, w, scales, 3, 3, &dw1, 3, "
     "3, f_b)", 3 * 3 * 256 * 9),
    *pointwise(3, 256, 256),                                           # operator 26
    ("average pool 3x3 -> 1x1, 256, grad",
     "tt_average_pool_grad_f32(f_a, 1, 1, 1, 256, 3, 3, &same, 3, 3, f_b)", 0),
    ("FC head 256->10, input grad",
     "tt_fully_connected_input_grad_f32(f_a, 0, 1, 10, w, scales, 256, f_b)", 2560),
    ("FC head 256->10, fused weight update",
     "tt_fully_connected_weight_update_s8(f_a, 0, 1, 10, x, 0.02f, -128, 256, w, 256, scales,"
     " 10, 0, &sgd, &st, f_b)", 2560),
    ("softmax cross-entropy loss, 10 classes",
     "tt_loss_softmax_ce_s8(x, 10, 0.1f, -3, 4, &loss, f_b)", 0),
    ("bias grad + update 256 @3x3 (fused)",
     "tt_bias_update_s32(f_a, 0, 9, 256, b, scales, 0, &sgd, &st, f_b)", 0),
    ("save ReLU mask 6x6x128",
     "tt_save_mask_s8(x, 4608, -128, 127, mask)", 0),
    ("update 128x128 int8 (separate), stochastic rounding",
     "tt_update_weight_s8(w, dims128, 2, 0, scales, 128, f_a, 128, 0, &sgd, &st)", 0),
    # the same layers with int8 activation gradients (augment --grad int8), stochastic
    # rounding of the int8 outputs
    *pointwise_s8(6, 128, 128),
    ("int8 grad: conv 1x1 128->128 @6x6, input grad, 2 passes, masked",
     "tt_conv2d_input_grad_s8(g8, &sdy, mask, 1, 6, 6, 128, w, mult, 3.9e-5f, 1, 1, &same, 6, "
     "6, 128, o8, &dxs, &st, 0, 0)", 6 * 6 * 128 * 128),
    *depthwise_s8(6, 128, 2),
    *pointwise_s8(3, 128, 256),
    *depthwise_s8(3, 256, 1),
    *pointwise_s8(3, 256, 256),
    ("int8 grad: average pool 3x3 -> 1x1, 256, grad",
     "tt_average_pool_grad_s8(g8, &sdy, 1, 1, 1, 256, 3, 3, &same, 3, 3, o8, &dxs, &st)", 0),
    ("int8 grad: FC head 256->10, input grad, 1 pass",
     "tt_fully_connected_input_grad_s8(g8, &sdy, 0, 1, 10, w, mult, 3.9e-5f, 256, o8, &dxs, "
     "&st, s32, 1)", 2560),
    ("int8 grad: FC head 256->10, fused weight update",
     "tt_fully_connected_weight_update_s8_s8(g8, &sdy, 0, 1, 10, x, 0.02f, -128, 256, w, 256, "
     "scales, 10, 0, &sgd, &st, f_b)", 2560),
    ("int8 grad: softmax cross-entropy loss, 10 classes",
     "tt_loss_softmax_ce_s8_s8(x, 10, 0.1f, -3, 4, &loss, o8, &dxs, &st, f_b)", 0),
    ("int8 grad: the rule on 4608 int32 accumulators, stochastic",
     "tt_quantize_grad_s8(s32, 4608, 1e-6f, &st, o8, &dxs)", 0),
    ("int8 grad: the rule on 4608 int32 accumulators, nearest",
     "tt_quantize_grad_s8(s32, 4608, 1e-6f, 0, o8, &dxs)", 0),
    ("int8 grad: bias grad + update 256 @3x3 (fused)",
     "tt_bias_update_s32_s8(g8, &sdy, 0, 9, 256, b, scales, 0, &sgd, &st, f_b)", 0),
] if c is not None]

PROGRAM = r"""
#include <stdint.h>
#include <string.h>
#include "tt_kernels.h"
%TIMING%
/* sized for the largest case; all of it fits the rig's 320 KB SRAM budget */
static float f_a[128 * 128], f_b[128 * 128], scales[256], loss, dxs, sdy = 0.01f;
static int8_t w[256 * 256], x[6 * 6 * 256], g8[128 * 128], o8[128 * 128];
static int16_t mult[256];
static int32_t s32[6 * 6 * 256];
static uint64_t stage[9216 / 8];   /* the DSP gradient kernels' staging */
static int32_t b[256];
static uint8_t mask[4608 / 8];
static const int32_t dims128[2] = {128, 128};
int main(void) {
  uint32_t r = 1;
  for (int i = 0; i < 128 * 128; ++i)
    f_a[i] = (float)(int32_t)(tt_xorshift32_next(&r) & 0xFFFF) * 1e-5f;
  for (int i = 0; i < 256 * 256; ++i) w[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < 6 * 6 * 256; ++i) x[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < 256; ++i) scales[i] = 0.01f;
  for (int i = 0; i < 128 * 128; ++i) g8[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
  for (int i = 0; i < 256; ++i) mult[i] = (int16_t)(128 + (tt_xorshift32_next(&r) & 127));
  for (int i = 0; i < 6 * 6 * 256; ++i)
    s32[i] = (int32_t)(tt_xorshift32_next(&r) & 0xFFFFF) - 0x80000;
  for (int i = 0; i < 4608 / 8; ++i) mask[i] = (uint8_t)(tt_xorshift32_next(&r) & 0xFF);
  const tt_window same = {1, 1, 1, 1, 0, 0}, dw1 = {1, 1, 1, 1, 1, 1}, dw2 = {2, 2, 1, 1, 0, 0};
  tt_sgd sgd = {0.05f, 0.0f, 1, 1, 0};
  tt_update_state st; tt_update_state_init(&st, 7);
  tt_rig_ticks_start();
%CALLS%
  tt_rig_print("DONE\n");
  return 0;
}
"""


def text_size(obj: Path) -> int:
    out = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.splitlines()[1].split()[0])


def glue_text(root: Path, tmp: Path) -> dict[str, int] | None:
    """.text of micro_kernels/tflm/tt_tflm_ops.cc for the Cortex-M7, compiled against the
    wheel_abi declarations (TFLM's own headers are not installable here; the glue's code
    does not depend on which)."""
    gxx = shutil.which("arm-none-eabi-g++")
    if gxx is None or not Path("/usr/include/newlib/c++").exists():
        return None
    include = tmp / "include"
    include.mkdir()
    (include / "flatbuffers").symlink_to("/usr/include/flatbuffers")
    sizes = {}
    for opt in ("-O2", "-Os"):
        obj = tmp / f"glue{opt}.o"
        subprocess.run([gxx, *CPU, "-std=c++17", opt, "-ffp-contract=off", "-fno-exceptions",
                        "-fno-rtti", "-DTT_TFLM_WHEEL_ABI", "-DFLATBUFFERS_LOCALE_INDEPENDENT=0",
                        "-I", str(root / "include"), "-I", str(root / "tflm"),
                        "-isystem", str(include), "-c", str(root / "tflm" / "tt_tflm_ops.cc"),
                        "-o", str(obj)], check=True)
        sizes[opt] = text_size(obj)
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=Path, default=ROOT,
                    help="the micro_kernels folder to measure (default: this checkout's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    root = args.kernels.resolve()
    sources = sorted((root / "src").glob("*.c"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        instructions = rig_timing.time_calls(PROGRAM, [call for _, call, _ in CASES], tmp, root)
        flags = [*CPU, "-std=c99", "-O2", "-ffp-contract=off", "-I", str(root / "include")]
        kernels_text = {}                       # (source, opt) -> .text bytes
        for opt in ("-O2", "-Os"):
            for src in sources:
                obj = tmp / f"{src.stem}{opt}.o"
                subprocess.run(["arm-none-eabi-gcc", *flags, opt, "-c", str(src), "-o", str(obj)],
                               check=True)
                kernels_text[src.name, opt] = text_size(obj)
        glue = glue_text(root, tmp)
    data = {"kernels": [{"kernel": name, "instructions": n, "macs": macs}
                        for n, (name, _, macs) in zip(instructions, CASES)],
            "sources_text": {src.name: {opt: kernels_text[src.name, opt] for opt in ("-O2", "-Os")}
                             for src in sources},
            "glue_text": glue}
    print(render_text(data))
    if args.json:
        results.save(args.json, data, JSON, TABLES)


def render_kernels(before_d16: dict, before: dict, now: dict) -> str:
    """Instructions per MAC (instructions where a row has no MACs), before and now: the
    double-accumulating kernels of commit d63dde6 built for fpv5-d16 and for the board's
    fpv5-sp-d16, and this checkout's float32 kernels; "-" where a run lacks the row."""
    def per(run, name):
        k = next((k for k in run["kernels"] if k["kernel"] == name), None)
        if k is None:
            return "-"
        return f"{k['instructions'] / k['macs']:.1f}" if k["macs"] else f"{k['instructions']:,}"
    out = ["| kernel (person_detect operators 22-28, new 10-class head) | MACs | before: double, "
           "fpv5-d16 | before: double, fpv5-sp-d16 | now: float32, fpv5-sp-d16 | now: "
           "instructions |", "|---|---:|---:|---:|---:|---:|"]
    for k in now["kernels"]:
        name = k["kernel"]
        if name.startswith(INT8):
            continue
        out.append(f"| {name} | {k['macs']:,} | {per(before_d16, name)} | {per(before, name)} | "
                   f"{per(now, name)} | {k['instructions']:,} |")
    return "\n".join(out)


def render_text(data: dict) -> str:
    out = ["| code now (arm-none-eabi-gcc/g++ 12.2, -mcpu=cortex-m7, fpv5-sp-d16) | .text -O2 "
           "| .text -Os |", "|---|---:|---:|"]
    for name, t in data["sources_text"].items():
        out.append(f"| micro_kernels/src/{name} | {t['-O2']:,} | {t['-Os']:,} |")
    total = {opt: sum(t[opt] for t in data["sources_text"].values()) for opt in ("-O2", "-Os")}
    out.append(f"| micro_kernels/src, all (portable C99) | {total['-O2']:,} | {total['-Os']:,} |")
    glue = data["glue_text"]
    if glue:
        out.append(f"| TFLM glue (micro_kernels/tflm/tt_tflm_ops.cc, 26 registrations, both "
                   f"gradient types) | {glue['-O2']:,} | {glue['-Os']:,} |")
    else:
        out.append("| TFLM glue | n/a (needs arm-none-eabi-g++ and libstdc++-arm-none-eabi-dev) | |")
    return "\n".join(out)


def render_int8(now: dict) -> str:
    """The int8-gradient kernels beside the float32-gradient ones of the same layer:
    instructions per MAC (instructions where a row has no MACs)."""
    rows = {k["kernel"]: k for k in now["kernels"]}

    def per(k):
        if k is None:
            return "-"
        return f"{k['instructions'] / k['macs']:.1f}" if k["macs"] else f"{k['instructions']:,}"
    out = ["| kernel (person_detect operators 22-28, new 10-class head) | MACs | float32 "
           "gradients | int8 gradients | int8: instructions |", "|---|---:|---:|---:|---:|"]
    for k in now["kernels"]:
        name = k["kernel"]
        if not name.startswith(INT8):
            continue
        base = name[len(INT8):]
        for form in (", 2 passes", ", 1 pass"):
            base = base.replace(form, "")
        out.append(f"| {name[len(INT8):]} | {k['macs']:,} | {per(rows.get(base))} | {per(k)} | "
                   f"{k['instructions']:,} |")
    return "\n".join(out)


INT8 = "int8 grad: "       # the rows of the int8-gradient kernels
JSON = "mcu_kernels.json"
TABLES = {"mcu-kernels": (["mcu_kernels_before_d16.json", "mcu_kernels_before.json", JSON],
                          render_kernels),
          "mcu-kernels-int8": ([JSON], render_int8),
          "mcu-code": ([JSON], render_text)}


if __name__ == "__main__":
    main()
