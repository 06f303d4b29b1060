"""Timing C calls on the Cortex-M7 rig (QEMU mps2-an500, ../shared/MCU_RIG.md): the pieces
the kernel benchmarks share (mcu_kernels.py, mcu_grad_dsp.py, mcu_step.py).

A timed program is C source with `%TIMING%` among its declarations (the helpers below: the
rig's print and SysTick functions, `put` and `TIME(label, call)`) and `%CALLS%` in main after
`tt_rig_ticks_start()`; time_calls puts `TIME("k<i>", call)` there, builds it with the
kernels for the board (TFLITE_TRAIN_CORTEX_M7_FLAGS, -O2) and runs it with
`-icount shift=0`, where one SysTick tick is 40 instructions. QEMU counts instructions, not
cycles. Each call is rounded to whole ticks.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tflite_train.runtime.c_kernels import cortex_m7_flags

ROOT = Path(__file__).resolve().parent.parent / "micro_kernels"
RIG = ROOT / "targets" / "mps2_an500"

TIMING = r"""void tt_rig_print(const char *text);
void tt_rig_ticks_start(void);
uint32_t tt_rig_ticks(void);
static void put(const char *label, uint32_t ticks) {
  char buf[16]; int i = 15; buf[i] = 0;
  do { buf[--i] = (char)('0' + ticks % 10); ticks /= 10; } while (ticks);
  tt_rig_print(label); tt_rig_print(" "); tt_rig_print(buf + i); tt_rig_print("\n");
}
#define TIME(label, ...) do { uint32_t t0 = tt_rig_ticks(); __VA_ARGS__; \
  uint32_t t1 = tt_rig_ticks(); put(label, (t0 - t1) & 0xFFFFFFu); } while (0)"""


def big_link(tmp: Path) -> Path:
    """The rig's linker script with 4000 KB of flash and of RAM (its 4 MB memories) instead of
    the board's budgets: for benchmarks whose inputs do not fit the board at once (which
    changes no instruction count)."""
    link = tmp / "link-4mb.ld"
    link.write_text(re.sub(r"(FLASH|RAM)_SIZE = \d+K;", r"\1_SIZE = 4000K;",
                           (RIG / "link.ld").read_text()))
    return link


def build(main: Path, elf: Path, root: Path = ROOT, defines=(), link: Path | None = None,
          warnings=()) -> Path:
    """main.c with the kernels of `root` (a micro_kernels folder) and the rig's startup, for
    the board."""
    subprocess.run(["arm-none-eabi-gcc", *cortex_m7_flags(), "-std=c99", "-O2",
                    "-ffp-contract=off", *warnings, *defines, "-I", str(root / "include"),
                    "-ffunction-sections", "-fdata-sections", "-nostartfiles",
                    "--specs=nano.specs", "--specs=nosys.specs", "-T",
                    str(link or RIG / "link.ld"), "-Wl,--gc-sections", str(RIG / "startup.c"),
                    *map(str, sorted((root / "src").glob("*.c"))), str(main), "-o", str(elf)],
                   check=True)
    return elf


def run(elf: Path, timeout: int = 600, icount: bool = True) -> subprocess.CompletedProcess:
    """The program under QEMU (with `-icount shift=0` unless icount is False); its
    semihosting text is on stderr, the UART's on stdout."""
    return subprocess.run(["timeout", str(timeout), "qemu-system-arm", "-M", "mps2-an500",
                           "-cpu", "cortex-m7", "-nographic", "-monitor", "none", "-serial",
                           "stdio", *(["-icount", "shift=0,align=off,sleep=off"] if icount
                                      else []), "-semihosting-config",
                           "enable=on,target=native", "-kernel", str(elf)],
                          capture_output=True, text=True)


def time_calls(source: str, calls: list[str], tmp: Path, root: Path = ROOT, defines=(),
               link: Path | None = None, timeout: int = 900, name: str = "bench") -> list[int]:
    """The instructions of each call (rounded to 40) in the timed program `source`."""
    program = tmp / f"{name}.c"
    program.write_text(source.replace("%TIMING%", TIMING).replace(
        "%CALLS%", "\n".join(f'  TIME("k{i}", {call});' for i, call in enumerate(calls))))
    res = run(build(program, tmp / f"{name}.elf", root, defines, link), timeout)
    out = res.stdout + res.stderr
    if "DONE" not in out:
        raise SystemExit(f"the rig did not finish ({name}): {out[-500:]}")
    ticks = dict(re.findall(r"(k\d+) (\d+)", out))
    return [40 * int(ticks[f"k{i}"]) for i in range(len(calls))]
