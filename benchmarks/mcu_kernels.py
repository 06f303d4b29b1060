"""Instructions of the C training kernels on the Cortex-M7 rig (QEMU mps2-an500 with
`-icount shift=0`: SysTick ticks every 40 instructions), for the layer shapes of the person
detector's last blocks, and the code size (.text) of the kernel library.

    .venv/bin/python benchmarks/mcu_kernels.py        # prints a markdown table

QEMU does not model the pipeline or caches: these are instruction counts, not cycles.
Numbers are rounded to whole SysTick ticks (40 instructions).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "micro_kernels"
RIG = ROOT / "targets" / "mps2_an500"
SOURCES = sorted((ROOT / "src").glob("*.c"))
CPU = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]

# (label, kernel call template, MACs): person_detect blocks 11-13 (6x6 and 3x3 maps)
CASES = [
    ("conv 1x1 128->128 @6x6, input grad", "conv_in", dict(h=6, ci=128, co=128), 36 * 128 * 128),
    ("conv 1x1 128->128 @6x6, weight grad", "conv_w", dict(h=6, ci=128, co=128), 36 * 128 * 128),
    ("conv 1x1 256->256 @3x3, input grad", "conv_in", dict(h=3, ci=256, co=256), 9 * 256 * 256),
    ("dw 3x3 256 @3x3, input grad", "dw_in", dict(h=3, c=256), 9 * 256 * 9),
    ("dw 3x3 256 @3x3, weight grad", "dw_w", dict(h=3, c=256), 9 * 256 * 9),
    ("bias grad 256 @3x3", "bias", dict(h=3, c=256), 0),
    ("update 128x128 int8, stochastic rounding", "update", dict(n=128 * 128), 0),
]

PROGRAM = r"""
#include <stdint.h>
#include <string.h>
#include "tt_kernels.h"
void tt_rig_print(const char *text);
void tt_rig_ticks_start(void);
uint32_t tt_rig_ticks(void);
/* inputs and outputs sized for the largest case; all of it fits the 320 KB SRAM budget */
static float f_a[128 * 128], f_b[128 * 128];
static int8_t s_a[256 * 256], s_b[128 * 128];
static float scales[256];
static void put(const char *label, uint32_t ticks) {
  char buf[16]; int i = 15; buf[i] = 0;
  do { buf[--i] = (char)('0' + ticks % 10); ticks /= 10; } while (ticks);
  tt_rig_print(label); tt_rig_print(" "); tt_rig_print(buf + i); tt_rig_print("\n");
}
#define TIME(label, ...) do { uint32_t t0 = tt_rig_ticks(); __VA_ARGS__; \
  uint32_t t1 = tt_rig_ticks(); put(label, (t0 - t1) & 0xFFFFFFu); } while (0)
static const int32_t dims128[2] = {128, 128};
int main(void) {
  uint32_t x = 1;
  for (int i = 0; i < 128 * 128; ++i)
    f_a[i] = (float)(int32_t)(tt_xorshift32_next(&x) & 0xFFFF) * 1e-5f;
  for (int i = 0; i < 256 * 256; ++i) s_a[i] = (int8_t)(tt_xorshift32_next(&x) & 0xFF);
  for (int i = 0; i < 256; ++i) scales[i] = 0.01f;
  const tt_window same = {1, 1, 1, 1, 0, 0}, dw = {1, 1, 1, 1, 1, 1};
  tt_sgd sgd = {0.05, 0.0f, 1, 1, 0};
  tt_update_state st; tt_update_state_init(&st, 7);
  tt_rig_ticks_start();
%CALLS%
  tt_rig_print("DONE\n");
  return 0;
}
"""


def call(kind: str, p: dict, label: str) -> str:
    if kind == "conv_in":
        h, ci, co = p["h"], p["ci"], p["co"]
        c = (f"tt_conv2d_input_grad_f32(f_a, 0, 1, {h}, {h}, {co}, s_a, scales, 1, 1, &same, "
             f"{h}, {h}, {ci}, f_b)")
    elif kind == "conv_w":
        h, ci, co = p["h"], p["ci"], p["co"]
        c = (f"tt_conv2d_weight_grad_f32(f_a, 0, 1, {h}, {h}, {co}, s_a, 0.02f, -128, {h}, {h},"
             f" {ci}, 1, 1, &same, f_b)")
    elif kind == "dw_in":
        h, ch = p["h"], p["c"]
        c = (f"tt_depthwise_conv2d_input_grad_f32(f_a, 0, 1, {h}, {h}, {ch}, 1, s_a, scales, "
             f"3, 3, &dw, {h}, {h}, f_b)")
    elif kind == "dw_w":
        h, ch = p["h"], p["c"]
        c = (f"tt_depthwise_conv2d_weight_grad_f32(f_a, 0, 1, {h}, {h}, {ch}, 1, s_a, 0.02f, "
             f"-128, {h}, {h}, 3, 3, &dw, f_b)")
    elif kind == "bias":
        c = f"tt_bias_grad_f32(f_a, 0, {p['h'] * p['h']}, {p['c']}, f_b)"
    else:
        c = "tt_update_weight_s8(s_b, dims128, 2, 0, scales, 128, f_a, 128, 0, &sgd, &st)"
    return f'  TIME("{label}", {c});'


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        labels = [f"k{i}" for i in range(len(CASES))]
        calls = "\n".join(call(kind, p, lab) for lab, (_, kind, p, _) in zip(labels, CASES))
        (tmp / "bench.c").write_text(PROGRAM.replace("%CALLS%", calls))
        flags = [*CPU, "-std=c99", "-O2", "-ffp-contract=off", "-I", str(ROOT / "include")]
        elf = tmp / "bench.elf"
        subprocess.run(["arm-none-eabi-gcc", *flags, "-ffunction-sections", "-fdata-sections",
                        "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                        "-T", str(RIG / "link.ld"), "-Wl,--gc-sections",
                        str(RIG / "startup.c"), *map(str, SOURCES),
                        str(tmp / "bench.c"), "-o", str(elf)], check=True)
        text_bytes = 0
        for src in SOURCES:
            obj = tmp / f"{src.stem}.o"
            subprocess.run(["arm-none-eabi-gcc", *flags, "-c", str(src), "-o", str(obj)],
                           check=True)
            text_bytes += int(subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True,
                                       text=True, check=True).stdout.splitlines()[1].split()[0])
        res = subprocess.run(["timeout", "300", "qemu-system-arm", "-M", "mps2-an500", "-cpu",
                              "cortex-m7", "-nographic", "-monitor", "none", "-serial", "stdio",
                              "-icount", "shift=0,align=off,sleep=off", "-semihosting-config",
                              "enable=on,target=native", "-kernel", str(elf)],
                             capture_output=True, text=True)
    out = res.stdout + res.stderr
    if "DONE" not in out:
        raise SystemExit(f"the rig did not finish: {out[-500:]}")
    ticks = dict(re.findall(r"(k\d+) (\d+)", out))
    print("| kernel (person_detect last blocks) | instructions | MACs | instructions / MAC |")
    print("|---|---:|---:|---:|")
    for lab, (name, _, _, macs) in zip(labels, CASES):
        n = int(ticks[lab]) * 40
        per = f"{n / macs:.1f}" if macs else "-"
        print(f"| {name} | {n:,} | {macs:,} | {per} |")
    print(f"\nkernel library .text: {text_bytes:,} bytes (arm-none-eabi-gcc -O2, "
          f"-mcpu=cortex-m7, portable C99)")


if __name__ == "__main__":
    main()
