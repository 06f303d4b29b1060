"""Instructions of the device checkpoint calls (micro_kernels/src/tt_checkpoint.c) on the
Cortex-M7 rig (QEMU mps2-an500, STM32F746 flags `-mfpu=fpv5-sp-d16`, `-icount shift=0`:
SysTick ticks every 40 instructions), for the checkpoint of the person detector's bias-only
training model with momentum (the built-in example's when ../shared is absent), and the
code size and stack of the checkpoint code.

    .venv/bin/python benchmarks/checkpoint.py [--json benchmarks/checkpoint.json]

Prints markdown tables; with --json benchmarks/checkpoint.json the tables of RESULTS.md are
re-rendered from it (benchmarks/results.py).

The flash is simulated in RAM (memcpy for reads, a byte loop for programming): the counts
are the CPU's work in the checkpoint code and those callbacks, not a real flash's erase and
program times, which depend on the chip and usually dominate a save. QEMU does not model
the pipeline or caches: instruction counts, not cycles.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import results  # noqa: E402

from tflite_train import augment, checkpoint, tflite_io  # noqa: E402
from tflite_train.autodiff import Hyper  # noqa: E402
from tflite_train.demo import EXAMPLE  # noqa: E402
from tflite_train.runtime.numpy_exec import Executor  # noqa: E402

KERNELS = HERE.parent / "micro_kernels"
RIG = KERNELS / "targets" / "mps2_an500"
SOURCE = KERNELS / "src" / "tt_checkpoint.c"
CPU = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]
PERSON_DETECT = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
PAGE = 256

PROGRAM = r"""
#include <stdint.h>
#include <string.h>
#include "tt_checkpoint.h"
void tt_rig_print(const char *text);
void tt_rig_ticks_start(void);
uint32_t tt_rig_ticks(void);
%DATA%
static uint8_t flash[2 * SLOT];
static uint8_t page[PAGE];
static int erase(void *c, uint32_t o, uint32_t n) { (void)c; memset(flash + o, 0xFF, n); return 0; }
static int program(void *c, uint32_t o, const uint8_t *d, uint32_t n) {
  (void)c; for (uint32_t i = 0; i < n; ++i) flash[o + i] &= d[i]; return 0; }
static int read(void *c, uint32_t o, uint8_t *d, uint32_t n) { (void)c; memcpy(d, flash + o, n); return 0; }
static const tt_flash f = {erase, program, read, 0, {0, SLOT}, SLOT, PAGE, page};
static void put(const char *label, uint32_t ticks) {
  char buf[16]; int i = 15; buf[i] = 0;
  do { buf[--i] = (char)('0' + ticks % 10); ticks /= 10; } while (ticks);
  tt_rig_print(label); tt_rig_print(" "); tt_rig_print(buf + i); tt_rig_print("\n");
}
#define TIME(label, call) do { uint32_t t0 = tt_rig_ticks(); int r = call; \
  uint32_t t1 = tt_rig_ticks(); if (r != 0) { tt_rig_print("error\n"); return 1; } \
  put(label, (t0 - t1) & 0xFFFFFFu); } while (0)
int main(void) {
  uint32_t seq;
  memset(flash, 0xFF, sizeof flash);
  for (int i = 0; i < COUNT; ++i) regions[i].data = state + offset[i];
  tt_rig_ticks_start();
  TIME("first", tt_checkpoint_save(&f, MODEL_ID, regions, COUNT, &seq));
  if (tt_checkpoint_save(&f, MODEL_ID, regions, COUNT, &seq) != 0) return 1;
  TIME("steady", tt_checkpoint_save(&f, MODEL_ID, regions, COUNT, &seq));
  TIME("restore", tt_checkpoint_restore(&f, MODEL_ID, regions, COUNT, &seq));
  flash[(seq % 2 ? 0 : SLOT) + SLOT / 2] ^= 1;          /* corrupt the newest slot */
  TIME("fallback", tt_checkpoint_restore(&f, MODEL_ID, regions, COUNT, &seq));
  tt_rig_print("DONE\n");
  return 0;
}
"""


def model() -> tuple[str, checkpoint.Checkpoint]:
    if PERSON_DETECT.exists():
        name, base = "person detector, bias-only, momentum", tflite_io.load(PERSON_DETECT)
        r = augment.augment(base, "bias-only", 10, Hyper(momentum=0.9, grad="float32"))
    else:
        name = "built-in example, last:2, momentum"
        r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4, Hyper(momentum=0.9, grad="float32"))
    ex = Executor(r.graph, "c")
    t = r.graph.tensors[r.graph.inputs[0]]
    import numpy as np
    ex.invoke([np.zeros(t.shape, np.int8), np.array([1], np.int32)])
    mid = checkpoint.model_id(tflite_io.serialize(r.graph))
    return name, checkpoint.capture(ex, r.graph, mid)


def data(ckpt: checkpoint.Checkpoint) -> str:
    blob = checkpoint.to_blob(ckpt)
    n = len(ckpt.regions)
    state = blob[32 + 12 * n:-4]
    offsets, pos = [], 0
    for r in ckpt.regions:
        offsets.append(pos)
        pos += -(-r.nbytes // 4) * 4
    slot = -(-len(blob) // PAGE) * PAGE
    return "\n".join([
        f"#define COUNT {n}", f"#define SLOT {slot}u", f"#define PAGE {PAGE}u",
        f"#define MODEL_ID {ckpt.model_id:#x}ull",
        "static uint32_t state_words[" + str(len(state) // 4) + "];",
        "static uint8_t *const state = (uint8_t *)state_words;",
        "static const uint32_t offset[COUNT] = {" + ",".join(map(str, offsets)) + "};",
        "static tt_checkpoint_region regions[COUNT] = {" + ",".join(
            f"{{{r.kind}, {r.id}, 0, {r.nbytes}}}" for r in ckpt.regions) + "};"])


def code(tmp: Path) -> dict[str, tuple[int, int, int]]:
    """(.text, .rodata, the deepest stack of a public call) at -O2 and -Os."""
    out = {}
    for opt in ("-O2", "-Os"):
        obj = tmp / f"ck{opt}.o"
        subprocess.run(["arm-none-eabi-gcc", *CPU, "-std=c99", opt, "-fstack-usage",
                        "-I", str(KERNELS / "include"), "-c", str(SOURCE), "-o", str(obj)],
                       check=True, cwd=tmp)
        sizes = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True,
                               text=True, check=True).stdout
        text = int(re.search(r"^\.text\s+(\d+)", sizes, re.M)[1])
        rodata = int(re.search(r"^\.rodata\s+(\d+)", sizes, re.M)[1])
        su = dict((m[0], int(m[1])) for m in re.findall(
            r":(\w+)\t(\d+)\t", obj.with_suffix(".su").read_text()))
        # the deepest chain: save -> scan -> check_slot (-> tt_crc32, a leaf)
        stack = su["tt_checkpoint_save"] + su["scan"] + su["check_slot"] + su["tt_crc32"]
        out[opt] = (text, rodata, stack)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    name, ckpt = model()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bench.c").write_text(PROGRAM.replace("%DATA%", data(ckpt)))
        elf = tmp / "bench.elf"
        subprocess.run(["arm-none-eabi-gcc", *CPU, "-std=c99", "-O2", "-ffunction-sections",
                        "-fdata-sections", "-nostartfiles", "--specs=nano.specs",
                        "--specs=nosys.specs", "-T", str(RIG / "link.ld"), "-Wl,--gc-sections",
                        "-I", str(KERNELS / "include"), str(RIG / "startup.c"), str(SOURCE),
                        str(tmp / "bench.c"), "-o", str(elf)], check=True)
        sizes = code(tmp)
        res = subprocess.run(["timeout", "120", "qemu-system-arm", "-M", "mps2-an500", "-cpu",
                              "cortex-m7", "-nographic", "-monitor", "none", "-serial", "stdio",
                              "-icount", "shift=0,align=off,sleep=off", "-semihosting-config",
                              "enable=on,target=native", "-kernel", str(elf)],
                             capture_output=True, text=True)
    out = res.stdout + res.stderr
    if "DONE" not in out:
        raise SystemExit(f"the rig did not finish: {out[-500:]}")
    ticks = {k: int(v) * 40 for k, v in re.findall(r"(\w+) (\d+)\n", out)}
    measured = {"model": name, "bytes": checkpoint.blob_bytes(ckpt.regions),
                "regions": len(ckpt.regions), "page": PAGE, "instructions": ticks,
                "code": {opt: dict(zip(("text", "rodata", "stack"), v))
                         for opt, v in sizes.items()}}
    print(render_calls(measured) + "\n\n" + render_code(measured))
    if args.json:
        results.save(args.json, measured, JSON, TABLES)


def render_calls(data: dict) -> str:
    size, ticks = data["bytes"], data["instructions"]
    out = [f"| {data['model']}: {size:,}-byte checkpoint, {data['regions']} regions, "
           f"{data['page']}-byte pages | instructions | per checkpoint byte |", "|---|---:|---:|"]
    for key, what in (("first", "save into erased flash"),
                      ("steady", "save, both slots valid (the newest one's CRC checked, "
                                 "the other slot erased and written, then read back)"),
                      ("restore", "restore at boot (the newest slot's CRC, then the copy)"),
                      ("fallback", "restore, the newest slot corrupt (both CRCs)")):
        out.append(f"| {what} | {ticks[key]:,} | {ticks[key] / size:.1f} |")
    return "\n".join(out)


def render_code(data: dict) -> str:
    out = ["| tt_checkpoint.c (arm-none-eabi-gcc 12.2, -mcpu=cortex-m7) | .text | .rodata "
           "(CRC table) | deepest stack (save) |", "|---|---:|---:|---:|"]
    for opt, c in data["code"].items():
        out.append(f"| {opt} | {c['text']:,} | {c['rodata']:,} | {c['stack']} bytes |")
    return "\n".join(out)


JSON = "checkpoint.json"
TABLES = {"checkpoint-calls": ([JSON], render_calls), "checkpoint-code": ([JSON], render_code)}


if __name__ == "__main__":
    main()
