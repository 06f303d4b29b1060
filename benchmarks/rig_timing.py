"""Timing C calls on the Cortex-M7 rig (QEMU mps2-an500, ../shared/MCU_RIG.md): the pieces
the kernel benchmarks share (mcu_kernels.py, mcu_grad_dsp.py, mcu_step.py, param_updates.py,
dw_weight_grad.py, dw_input_grad.py, pw_input_grad.py).

A timed program is C source with `%TIMING%` among its declarations (the helpers below: the
rig's print and SysTick functions, `put` and `TIME(label, call)`) and `%CALLS%` in main after
`tt_rig_ticks_start()`; time_calls puts `TIME("k<i>", call)` there, builds it with the
kernels for the board (TFLITE_TRAIN_CORTEX_M7_FLAGS, -O2) and runs it with
`-icount shift=0`, where one SysTick tick is 40 instructions. QEMU counts instructions, not
cycles. Each call is rounded to whole ticks, so a count depends by up to one tick on the
instructions run before the call (the tick's phase).

A kernel benchmark with a hash (dw_weight_grad.py, dw_input_grad.py, pw_input_grad.py) names
only its buffers, their filling, what to hash and its calls: kernel_program (or
input_grad_program, the two input-gradient benchmarks' inputs) wraps them in the program
they share (the FNV hash `fold` of what each call wrote, the markers the profile traces
between, an update state seeded 7), measure_kernels times the calls with `fold` after each,
profile_call traces one call, and parser gives the options they share (param_updates.py
uses the last two and time_program around its own program).
"""
from __future__ import annotations

import argparse
import bisect
import collections
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


def time_program(source: str, calls: list[str], tmp: Path, root: Path = ROOT, defines=(),
                 link: Path | None = None, timeout: int = 900, name: str = "bench",
                 after: str | list[str] = "") -> tuple[list[int], dict[str, int]]:
    """The instructions of each call (rounded to 40) in the timed program `source`, and the
    other numbers it puts by label (e.g. a hash). `after`: a statement after each call,
    outside its TIME (so untimed), or a list of them, one a call."""
    after = [after] * len(calls) if isinstance(after, str) else after
    program = tmp / f"{name}.c"
    program.write_text(source.replace("%TIMING%", TIMING).replace(
        "%CALLS%", "\n".join(f'  TIME("k{i}", {call});' + (f" {a};" if a else "")
                             for i, (call, a) in enumerate(zip(calls, after)))))
    res = run(build(program, tmp / f"{name}.elf", root, defines, link), timeout)
    out = res.stdout + res.stderr
    if "DONE" not in out:
        raise SystemExit(f"the rig did not finish ({name}): {out[-500:]}")
    put = {label: int(n) for label, n in re.findall(r"^(\w+) (\d+)$", out, re.M)}
    return [40 * put.pop(f"k{i}") for i in range(len(calls))], put


def time_calls(source: str, calls: list[str], tmp: Path, root: Path = ROOT, defines=(),
               link: Path | None = None, timeout: int = 900, name: str = "bench") -> list[int]:
    """The instructions of each call (rounded to 40) in the timed program `source`."""
    return time_program(source, calls, tmp, root, defines, link, timeout, name)[0]


KERNEL_PROGRAM = r"""
#include <stdint.h>
#include "tt_kernels.h"
%TIMING%
%BUFFERS%
static uint32_t hsh = 2166136261u;
/* FNV-1a over what a call wrote: equal hashes are the same bits */
static void fold(%FOLD_ARGS%) {
%FOLD%
}
__attribute__((noinline)) void bench_begin(void) { __asm volatile(""); }
__attribute__((noinline)) void bench_end(void) { __asm volatile(""); }
int main(void) {
  uint32_t r = 1;
%SETUP%
  tt_update_state st;
  tt_update_state_init(&st, 7);
  tt_rig_ticks_start();
%CALLS%
  put("hash", hsh & 0xFFFFFF);
  tt_rig_print("DONE\n");
  return 0;
}
"""

# how `fold` takes in each kind of buffer (%A: the buffer, %N: its elements): a float
# buffer's bytes, an int8 one's elements as bytes, one float's 32 bits at once (%N unused).
# The loops are the ones the round 16-18 benchmarks spelled out: the instructions between the
# calls, and so the phase of the 40-instruction ticks each call is rounded to, are theirs,
# and with them the counts and hashes RESULTS.md cites.
FOLDS = {"f32": "  { const uint8_t *b = (const uint8_t *)%A;\n"
                "    for (int i = 0; i < 4 * %N; ++i) hsh = (hsh ^ b[i]) * 16777619u; }",
         "s8": "  for (int i = 0; i < %N; ++i) hsh = (hsh ^ (uint8_t)%A[i]) * 16777619u;",
         "f32 scalar": "  { union { float f; uint32_t u; } v = {%A};\n"
                       "    hsh = (hsh ^ v.u) * 16777619u; }"}


def kernel_program(buffers: str, setup: str, folded: list[tuple[str, str, str]],
                   fold_args: str = "void") -> str:
    """A kernel benchmark's timed program: its static `buffers` at file scope, its `setup` at
    the top of main (after `uint32_t r = 1;`, the xorshift state it may draw from), then an
    update state `st` seeded 7, the calls, and the hash's low 24 bits put as `hash`.
    `fold(fold_args)` hashes the `folded` buffers, in order, each
    (kind of FOLDS, buffer, elements: C expressions; the elements may name fold's arguments)."""
    fold = "\n".join(FOLDS[kind].replace("%A", buf).replace("%N", n)
                     for kind, buf, n in folded)
    return (KERNEL_PROGRAM.replace("%BUFFERS%", buffers.strip("\n"))
            .replace("%SETUP%", setup.strip("\n")).replace("%FOLD_ARGS%", fold_args)
            .replace("%FOLD%", fold))


def input_grad_program(work: str, shape_dy: str = "", mask_op: str = "|",
                       setup: str = "") -> str:
    """The input-gradient benchmarks' program (dw_input_grad.py, pw_input_grad.py): dy, dx and
    w of 64 KB each, dy and w pseudo-random, 1024 multipliers of 128-255 and a mask of 8 KB,
    two draws or'ed (about three bits in four set, ReLU's; `mask_op` "&": one in four), the
    call's `work` buffer (a declaration), `shape_dy` (statements) reshaping dy after its
    draw, `setup` after the rest; `fold()` hashes dx (all of it) and its scale."""
    buffers = ("static int8_t dy[65536], dx[65536], w[65536];\nstatic uint8_t mask[8192];\n"
               f"static int16_t mult[1024];\n{work}\nstatic float dxs, sdy = 0.01f;")
    fills = f"""
  for (int i = 0; i < 65536; ++i) dy[i] = (int8_t)((tt_xorshift32_next(&r) % 255) - 127);
{shape_dy.strip(chr(10))}
  for (int i = 0; i < 65536; ++i) w[i] = (int8_t)(tt_xorshift32_next(&r) & 0xFF);
  for (int i = 0; i < 1024; ++i) mult[i] = (int16_t)(128 + (tt_xorshift32_next(&r) & 127));
  for (int i = 0; i < 8192; ++i)
    mask[i] = (uint8_t)(tt_xorshift32_next(&r) {mask_op} tt_xorshift32_next(&r));
{setup.strip(chr(10))}"""
    return kernel_program(buffers, fills, [("s8", "dx", "65536"), ("f32 scalar", "dxs", "1")])


def measure_kernels(source: str, calls: list[str], after: str | list[str], tmp: Path,
                    root: Path = ROOT, name: str = "bench") -> tuple[list[int], int]:
    """The instructions of each call in the kernel_program `source` (the 4 MB link: the
    benchmarks' buffers need not fit the board) and the hash of what `after` folds
    after each call (its low 24 bits)."""
    counts, put = time_program(source, calls, tmp, root, link=big_link(tmp), name=name,
                               after=after)
    return counts, put["hash"]


def profile_call(source: str, call: str, title: str, tmp: Path, root: Path = ROOT,
                 annotate: str = "", link: Path | None = None) -> None:
    """trace_profile of `call` alone in the kernel_program `source` (the 4 MB link unless
    `link`); annotate: the functions to count per instruction, comma separated."""
    program = tmp / "one.c"
    program.write_text(source.replace("%TIMING%", TIMING).replace(
        "%CALLS%", f"  bench_begin();\n  {call};\n  bench_end();"))
    elf = build(program, tmp / "one.elf", root, link=link or big_link(tmp))
    trace_profile(elf, "bench_begin", "bench_end", title,
                  [f for f in annotate.split(",") if f], tmp)


def parser(doc: str) -> argparse.ArgumentParser:
    """The options the kernel benchmarks share: --root, --profile N, --annotate."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="a micro_kernels folder (default: this checkout's)")
    ap.add_argument("--profile", type=int, metavar="N", help="profile call N instead")
    ap.add_argument("--annotate", default="", help="functions to print per instruction")
    return ap


def trace_profile(elf: Path, begin: str, end: str, title: str, annotate=(),
                  tmp: Path | None = None) -> None:
    """Prints the instructions the program `elf` runs between its calls of the functions
    `begin` and `end` (noinline markers), per function, from QEMU's single-step trace
    (`-singlestep -d exec,nochain`: one line a translated block of one instruction), and per
    instruction (objdump, each line with its count) for the functions in `annotate`."""
    log = (tmp or elf.parent) / "trace.log"
    subprocess.run(["timeout", "1800", "qemu-system-arm", "-M", "mps2-an500", "-cpu",
                    "cortex-m7", "-nographic", "-monitor", "none", "-serial", "null",
                    "-singlestep", "-d", "exec,nochain", "-D", str(log), "-semihosting-config",
                    "enable=on,target=native", "-kernel", str(elf)], capture_output=True)
    syms = []
    for line in subprocess.run(["arm-none-eabi-nm", "-S", "--defined-only", "-n", str(elf)],
                               capture_output=True, text=True).stdout.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTW":
            syms.append((int(p[0], 16), p[3]))
    at = {n: a for a, n in syms}
    counts: collections.Counter = collections.Counter()
    on = False
    pc_of = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")       # Trace: [cs_base/pc/flags/cflags]
    with open(log) as f:
        for line in f:
            m = pc_of.search(line)
            if not m:
                continue
            pc = int(m.group(1), 16) & ~1
            if pc == at[begin]:
                on = True
            elif pc == at[end]:
                break
            elif on:
                counts[pc] += 1
    log.unlink()
    starts = [a for a, _ in syms]
    per: collections.Counter = collections.Counter()
    for pc, c in counts.items():
        per[syms[bisect.bisect_right(starts, pc) - 1][1]] += c
    total = sum(per.values())
    print(f"{title}: {total:,} instructions")
    for fn, c in per.most_common(20):
        print(f"{c:10,d} {100 * c / total:5.1f}% {fn}")
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True,
                         text=True).stdout
    fn = None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:", line)
        fn = m.group(1) if m else fn
        pc = re.match(r"^\s+([0-9a-f]+):", line)
        if fn in annotate and pc:
            print(f"{counts.get(int(pc.group(1), 16), 0):8d} {line}")
