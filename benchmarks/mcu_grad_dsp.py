"""The Cortex-M DSP versions of the int8-gradient kernels against the portable ones on the
Cortex-M7 rig (QEMU mps2-an500, `-icount shift=0`: SysTick ticks every 40 instructions),
built for the board (TFLITE_TRAIN_CORTEX_M7_FLAGS, -O2), once with -DTT_PORTABLE and once
as the board's build compiles them (the DSP versions where a kernel has one).

    .venv/bin/python benchmarks/mcu_grad_dsp.py                       # prints the tables
    .venv/bin/python benchmarks/mcu_grad_dsp.py --json benchmarks/mcu_grad_dsp.json
    .venv/bin/python benchmarks/mcu_grad_dsp.py --no-step             # kernels only
    .venv/bin/python benchmarks/mcu_grad_dsp.py --no-step --only depthwise
    .venv/bin/python benchmarks/mcu_grad_dsp.py --profile "16->8 @64x64: weight grad" \
        [--annotate wbig_walk]         # that one row's DSP call, per function (per instruction)

Kernels: the int8-gradient kernels of every 1x1 and depthwise convolution shape of the person
detector and of MCUNet-5FPS (imported, 128x128; its classifier is a 1x1 convolution too). The
depthwise ones (tt_depthwise_grad_dsp.c): the input gradient in one pass and in two, each
rounded stochastically and to nearest, the weight gradient and the fused update, in instructions per MAC of the
forward layer (oh * ow * c * kh * kw, padded taps included). The 1x1 ones: the input
gradient (tt_conv2d_input_grad_s8) in one pass (int32 scratch, then the rule over it) and in
two passes, each rounded stochastically and to nearest (tt_grad_dsp.h; "1 pass" alone is
stochastic), the weight gradient (tt_conv2d_weight_grad_s8) and the fused weight update
(tt_conv2d_weight_update_s8_s8, stochastic rounding, all input channels trained), on
pseudo-random inputs without a mask, in instructions per MAC of the layer (a two-pass call
computes every accumulator twice). Step: the backward pass and updates of a whole
int8-gradient training step of the person detector (benchmarks/mcu_step.py: the second
step's kernel calls with their real inputs, stochastic rounding, the planner's one or two
passes), bias-only and the sparse scheme, and of MCUNet-5FPS with its 99kb scheme (when
../shared/models has it), in both builds.

QEMU counts instructions, not cycles: it models neither the pipeline (SMLAD is one cycle on
the Cortex-M7, so are most of the instructions here) nor the caches.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import results  # noqa: E402
import rig_timing  # noqa: E402

BUILDS = (("portable", ("-DTT_PORTABLE",)), ("DSP", ()))

# (model, h = w, ci, co) of every 1x1 CONV_2D, stride 1 (from person_detect.tflite and the
# imported mcunet-5fps.pkl; repeated shapes once). The input gradient runs from dy
# [h, h, co] to dx [h, h, ci]: it sums over co.
LAYERS = [
    ("person detector", 48, 8, 16), ("person detector", 24, 16, 32),
    ("person detector", 24, 32, 32), ("person detector", 12, 32, 64),
    ("person detector", 12, 64, 64), ("person detector", 6, 64, 128),
    ("person detector", 6, 128, 128), ("person detector", 3, 128, 256),
    ("person detector", 3, 256, 256),
    ("MCUNet-5FPS", 64, 16, 8), ("MCUNet-5FPS", 64, 8, 32), ("MCUNet-5FPS", 32, 32, 16),
    ("MCUNet-5FPS", 32, 16, 48), ("MCUNet-5FPS", 32, 48, 16), ("MCUNet-5FPS", 16, 48, 24),
    ("MCUNet-5FPS", 16, 24, 120), ("MCUNet-5FPS", 16, 120, 24), ("MCUNet-5FPS", 8, 120, 40),
    ("MCUNet-5FPS", 8, 40, 160), ("MCUNet-5FPS", 8, 160, 40), ("MCUNet-5FPS", 8, 160, 48),
    ("MCUNet-5FPS", 8, 48, 144), ("MCUNet-5FPS", 8, 144, 48), ("MCUNet-5FPS", 8, 48, 192),
    ("MCUNet-5FPS", 8, 192, 48), ("MCUNet-5FPS", 8, 48, 240), ("MCUNet-5FPS", 4, 240, 96),
    ("MCUNet-5FPS", 4, 96, 384), ("MCUNet-5FPS", 4, 384, 96), ("MCUNet-5FPS", 4, 96, 576),
    ("MCUNet-5FPS", 4, 576, 160), ("MCUNet-5FPS", 1, 160, 1000),
]
# (model, h = w, c, oh = ow, k, stride, pad) of every depthwise layer whose input gradient a
# training step can need (person_detect.tflite's first one, of depth multiplier 8 on the
# image, cannot): the input gradient runs from dy [oh, oh, c] to dx [h, h, c].
DEPTHWISE = [
    ("person detector", 48, 8, 48, 3, 1, 1), ("person detector", 48, 16, 24, 3, 2, 0),
    ("person detector", 24, 32, 24, 3, 1, 1), ("person detector", 24, 32, 12, 3, 2, 0),
    ("person detector", 12, 64, 12, 3, 1, 1), ("person detector", 12, 64, 6, 3, 2, 0),
    ("person detector", 6, 128, 6, 3, 1, 1), ("person detector", 6, 128, 3, 3, 2, 0),
    ("person detector", 3, 256, 3, 3, 1, 1),
    ("MCUNet-5FPS", 64, 16, 64, 3, 1, 1), ("MCUNet-5FPS", 64, 32, 32, 4, 2, 1),
    ("MCUNet-5FPS", 32, 48, 32, 3, 1, 1), ("MCUNet-5FPS", 32, 48, 16, 8, 2, 3),
    ("MCUNet-5FPS", 16, 120, 16, 3, 1, 1), ("MCUNet-5FPS", 16, 120, 8, 4, 2, 1),
    ("MCUNet-5FPS", 8, 160, 8, 7, 1, 3), ("MCUNet-5FPS", 8, 160, 8, 5, 1, 2),
    ("MCUNet-5FPS", 8, 144, 8, 3, 1, 1), ("MCUNet-5FPS", 8, 192, 8, 3, 1, 1),
    ("MCUNet-5FPS", 8, 240, 4, 8, 2, 3), ("MCUNet-5FPS", 4, 384, 4, 5, 1, 2),
    ("MCUNet-5FPS", 4, 576, 4, 3, 1, 1),
]
# (form, scratch and its positions (%d: every dx position), rounding)
# ("1 pass": stochastic, the name the rows had before the nearest one-pass form was added)
FORMS = (("1 pass", "s32, %d", "&st"), ("1 pass, nearest", "s32, %d", "0"),
         ("2 passes, nearest", "0, 0", "0"), ("2 passes, stochastic", "0, 0", "&st"))

PROGRAM = r"""
#include <stdint.h>
#include "tt_kernels.h"
%TIMING%
static int8_t dy[%DY%], dx[%DX%], w[%W%], w0[%W%], x[%DX%];
static int16_t mult[%CO%];
static float dw[%W%], scales[%CO%];
static int32_t s32[%DX%];
/* the DSP gradient kernels' staging (tt_*_stage_bytes: at most 9 KB), as the generated
 * programs place it in their arena */
static uint64_t stage[9216 / 8];
static float dxs, sdy = 0.01f;
int main(void) {
  uint32_t r = 1;
  for (int i = 0; i < %DY%; ++i) dy[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
  for (int i = 0; i < %W%; ++i) w0[i] = w[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < %CO%; ++i) mult[i] = (int16_t)(128 + (tt_xorshift32_next(&r) & 127));
  for (int i = 0; i < %DX%; ++i) x[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < %CO%; ++i) scales[i] = 0.01f;
  tt_sgd sgd = {0.05f, 0.0f, 1, 1, 0, 0};
  const tt_window same = {1, 1, 1, 1, 0, 0};
  tt_update_state st; tt_update_state_init(&st, 7);
  tt_rig_ticks_start();
%CALLS%
  tt_rig_print("DONE\n");
  return 0;
}
"""


def pw_stage(h: int, co: int, ci: int) -> str:
    """The staging the fused pointwise weight update asks for (C: the kernels' own query, so
    the count includes it: a few dozen instructions); the gradient alone takes none."""
    return (f"tt_conv2d_weight_update_s8_s8_stage_bytes(1, {h}, {h}, {co}, {h}, {h}, {ci}, 1, 1, "
            f"&same, 0, 0)")


def cases() -> list[tuple[str, str, str, int]]:
    out = []
    for model, h, ci, co in LAYERS:
        name = f"{model}: conv 1x1 {ci}->{co} @{h}x{h}"
        for form, scratch, rounding in FORMS:
            out.append((name, f"input grad, {form}",
                        f"tt_conv2d_input_grad_s8(dy, &sdy, 0, 1, {h}, {h}, {co}, w, mult, "
                        f"3.9e-5f, 1, 1, &same, {h}, {h}, {ci}, dx, &dxs, {rounding}, "
                        f"{scratch.replace('%d', str(h * h))})",
                        h * h * ci * co))
        out.append((name, "weight grad",
                    f"tt_conv2d_weight_grad_s8(dy, &sdy, 0, 1, {h}, {h}, {co}, x, 0.02f, -128, "
                    f"{h}, {h}, {ci}, 1, 1, &same, dw, 0, 0)",
                    h * h * ci * co))
        out.append((name, "fused weight update",
                    f"tt_conv2d_weight_update_s8_s8(dy, &sdy, 0, 1, {h}, {h}, {co}, x, 0.02f, "
                    f"-128, {h}, {h}, {ci}, w, 1, 1, {ci}, scales, {co}, &same, 0, &sgd, &st, "
                    f"dw, stage, {pw_stage(h, co, ci)})", h * h * ci * co))
    for model, h, c, oh, k, s, pad in DEPTHWISE:
        name = f"{model}: depthwise {k}x{k}/{s} {c} @{h}x{h}"
        for form, scratch, rounding in FORMS:
            out.append((name, f"input grad, {form}",
                        f"tt_depthwise_conv2d_input_grad_s8(dy, &sdy, 0, 1, {oh}, {oh}, {c}, 1, "
                        f"w, mult, 3.9e-5f, {k}, {k}, &(tt_window){{{s}, {s}, 1, 1, {pad}, "
                        f"{pad}}}, {h}, {h}, dx, &dxs, {rounding}, "
                        f"{scratch.replace('%d', str(h * h))}, stage, "
                        f"tt_depthwise_conv2d_input_grad_s8_stage_bytes(1, {oh}, {oh}, {c}, 1, "
                        f"{k}, {k}, &(tt_window){{{s}, {s}, 1, 1, {pad}, {pad}}}, {h}, {h}, 0))",
                        oh * oh * c * k * k))
        win = f"&(tt_window){{{s}, {s}, 1, 1, {pad}, {pad}}}"
        dw_stage = (f"tt_depthwise_conv2d_weight_grad_s8_stage_bytes(1, {oh}, {oh}, {c}, 1, "
                    f"{h}, {h}, {k}, {k}, {win}, 0)")
        out.append((name, "weight grad",
                    f"tt_depthwise_conv2d_weight_grad_s8(dy, &sdy, 0, 1, {oh}, {oh}, {c}, 1, x, "
                    f"0.02f, -128, {h}, {h}, {k}, {k}, {win}, dw, stage, {dw_stage})",
                    oh * oh * c * k * k))
        out.append((name, "fused weight update",
                    f"tt_depthwise_conv2d_weight_update_s8_s8(dy, &sdy, 0, 1, {oh}, {oh}, {c}, 1, "
                    f"x, 0.02f, -128, {h}, {h}, w, {k}, {k}, scales, {c}, {win}, 0, &sgd, &st, "
                    f"dw, stage, {dw_stage})", oh * oh * c * k * k))
    return out


def program_sizes() -> dict[str, int]:
    return {"%DY%": max([h * h * co for _, h, _, co in LAYERS] +
                         [oh * oh * c for _, _, c, oh, *_ in DEPTHWISE]),
             "%DX%": max([h * h * ci for _, h, ci, _ in LAYERS] +
                         [h * h * c for _, h, c, *_ in DEPTHWISE]),
             "%W%": max([ci * co for _, _, ci, co in LAYERS] +
                        [k * k * c for _, _, c, _, k, *_ in DEPTHWISE]),
             "%CO%": max([co for *_, co in LAYERS] + [c for _, _, c, *_ in DEPTHWISE])}


def program() -> str:
    """PROGRAM sized for every row's buffers."""
    source = PROGRAM
    for key, value in program_sizes().items():
        source = source.replace(key, str(value))
    return source


def run_kernels(tmp: Path, only: str | None = None) -> list[dict]:
    rows = [r for r in cases() if only is None or re.search(only, f"{r[0]}: {r[1]}")]
    source = program()
    # a fused update writes w, which the input gradients after it read, and the two-pass ones
    # take data-dependent paths: restored after it (untimed), every row has the same inputs
    # whichever rows run before it (until round 26 the two-pass rows' counts depended on it:
    # 32->16 @32x32 nearest 1,205,560 after the updates before it, 2,301,920 alone)
    restore = f"for (int i = 0; i < {program_sizes()['%W%']}; ++i) w[i] = w0[i]"
    after = [restore if form == "fused weight update" else "" for _, form, _, _ in rows]
    counts = {build: rig_timing.time_program(source, [call for _, _, call, _ in rows], tmp,
                                             defines=defines, link=rig_timing.big_link(tmp),
                                             name=f"bench-{build}", after=after)[0]
              for build, defines in BUILDS}
    return [{"layer": layer, "form": form, "macs": macs,
             "instructions": {b: counts[b][i] for b, _ in BUILDS}}
            for i, (layer, form, _, macs) in enumerate(rows)]


def profile(tmp: Path, pattern: str, annotate: str) -> None:
    """The DSP build's call of the one row whose 'layer: kernel' matches `pattern` under
    QEMU's single-step trace (rig_timing.profile_call: instructions per function, and per
    instruction of the functions in `annotate`); the markers it traces between are added to
    this program only, so the timed one stays as it is."""
    rows = [r for r in cases() if re.search(pattern, f"{r[0]}: {r[1]}")]
    if len(rows) != 1:
        sys.exit(f"--profile {pattern!r} matches {len(rows)} rows, not one")
    layer, form, call, macs = rows[0]
    markers = ("__attribute__((noinline)) void bench_begin(void) { __asm volatile(\"\"); }\n"
               "__attribute__((noinline)) void bench_end(void) { __asm volatile(\"\"); }\n")
    source = program().replace("int main(void)", markers + "int main(void)", 1)
    rig_timing.profile_call(source, call, f"{layer}: {form} ({macs:,} MACs)", tmp,
                            annotate=annotate)


def run_step() -> list[dict]:
    import mcu_step
    schemes = (["bias-only", "sparse"] if mcu_step.MODEL.exists() else []) + \
        (["mcunet-99kb"] if mcu_step.MCUNET.exists() else [])
    runs = []
    for scheme in schemes:
        for build, defines in BUILDS:
            r = mcu_step.measure(scheme, "int8", defines)
            runs.append({**r, "build": build})
    return runs


def render_kernels(data: dict) -> str:
    out = ["| layer (int8 gradients) | MACs | kernel | portable "
           "instructions/MAC | DSP instructions/MAC | DSP instructions |",
           "|---|---:|---|---:|---:|---:|"]
    for k in data["kernels"]:
        p, d = k["instructions"]["portable"], k["instructions"]["DSP"]
        out.append(f"| {k['layer']} | {k['macs']:,} | {k['form']} | {p / k['macs']:.2f} | "
                   f"{d / k['macs']:.2f} | {d:,} |")
    return "\n".join(out)


STEP_LABELS = {"bias-only": "person detector, bias-only", "sparse": "person detector, sparse",
               "mcunet-99kb": "MCUNet-5FPS, 99kb"}


def render_step(data: dict) -> str:
    out = ["| scheme (int8 gradients) | build | backward MACs | instructions "
           "| per MAC | the largest parts |", "|---|---|---:|---:|---:|---|"]
    from mcu_step import step_parts
    for r in data["step"]:
        total, top = step_parts(r["kernels"])
        scheme = STEP_LABELS.get(r["scheme"], r["scheme"])
        out.append(f"| {scheme} | {r['build']} | {r['macs']:,} | {total / 1e6:.1f} M | "
                   f"{total / r['macs']:.2f} | {top} |")
    return "\n".join(out)


JSON = "mcu_grad_dsp.json"
TABLES = {"mcu-grad-dsp": ([JSON], render_kernels), "mcu-grad-dsp-step": ([JSON], render_step)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-step", action="store_true", help="the kernels only (with --json: "
                    "the file's step table is kept)")
    ap.add_argument("--only", metavar="REGEX", help="the kernel rows whose 'layer: kernel' "
                    "matches (e.g. depthwise); the tables are not saved")
    ap.add_argument("--profile", metavar="REGEX", help="instead: the one row whose 'layer: "
                    "kernel' matches, its DSP call per function (QEMU's single-step trace)")
    ap.add_argument("--annotate", default="", help="with --profile: functions to print per "
                    "instruction, comma separated")
    args = ap.parse_args()
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            profile(Path(tmp), args.profile, args.annotate)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = {"kernels": run_kernels(Path(tmp), args.only)}
    # --no-step with --json keeps the file's step table (the steps do not run this program)
    data["step"] = run_step() if not args.no_step else \
        json.loads(args.json.read_text()).get("step", []) if args.json and args.json.exists() \
        else []
    print(render_kernels(data))
    if data["step"]:
        print()
        print(render_step(data))
    if args.json and not args.only:
        results.save(args.json, data, JSON, TABLES)


if __name__ == "__main__":
    main()
