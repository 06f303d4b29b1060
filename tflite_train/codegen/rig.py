"""The generated program on the Cortex-M7 rig (QEMU mps2-an500 with the STM32F746's CPU and
single-precision FPU, ../shared/MCU_RIG.md): build it with the budgets in the linker
script, run N training steps and one inference, and measure it.

SRAM is reported as its parts: the static arena, every other byte of .data and .bss
(trained parameters, momentum, update states, the harness's few bytes) and the stack's
painted high-water mark. Flash: code (.text: the program, the kernels, libc, start-up) and
the model's constants (tt_model.c's .rodata). QEMU counts instructions, not cycles: one
SysTick tick is 40 instructions under `-icount shift=0`, so counts are whole ticks.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TTError
from .check import Run, differences, reference
from .program import Program

INSTRUCTIONS_PER_TICK = 40
SRAM_BUDGET = 256 * 1024
FLASH_BUDGET = 1024 * 1024
RIG_MEMORY = 4 * 1024 * 1024       # what QEMU's mps2-an500 has in each of flash and SRAM


@dataclass
class Measurement:
    sram_bytes: dict
    flash_bytes: dict
    instructions_per_step: int
    instructions_per_inference: int
    losses: list[float]
    instructions_each_step: list[int] = field(default_factory=list)
    sram_budget: int = SRAM_BUDGET
    flash_budget: int = FLASH_BUDGET
    identical_to_engine_c: bool | None = None
    differences: list[str] = field(default_factory=list)
    planned: dict = field(default_factory=dict)
    kernels: str = "dsp"

    def to_json(self) -> dict:
        return asdict(self)


def available() -> bool:
    return bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def _sections(elf: Path) -> dict[str, int]:
    res = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                         check=True)
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _symbol_size(elf: Path, name: str) -> int:
    res = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                         check=True)
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    return 0


KERNELS = ("dsp", "portable")     # TFLITE_TRAIN_KERNELS (micro_kernels/tflite_train.inc)


def _make(folder: Path, sram: int, flash: int, kernels: str = "dsp", extra: str = "",
          out: str = "build") -> subprocess.CompletedProcess:
    """`make rig` as the folder's Makefile says, warnings as errors (ours are all clean),
    with the kernels' DSP versions or their portable C99 (`extra`: more compiler flags,
    `out`: the build folder)."""
    from .project import BOARD_CPU
    return subprocess.run(["make", "-s", "-C", str(folder), "rig", f"SRAM_BUDGET={sram}",
                           f"FLASH_BUDGET={flash}", f"TFLITE_TRAIN_KERNELS={kernels}",
                           f"OUT={out}",
                           f"RIG_CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror {BOARD_CPU} {extra}"],
                          capture_output=True, text=True)


def sram_parts(program: Program) -> str:
    """What is in SRAM by the plan, and what is live at the arena's peak, in one line."""
    g, plan = program.graph, program.plan
    op = g.operators[plan.peak_op]
    live = ", ".join(f"{name} {_kb(n)}" for name, n in plan.live_at(plan.peak_op, g)[:4])
    params = sum(program.param_bytes(v) for _, v in program.params)
    momentum = sum(g.tensors[m].nbytes for m in program.momentum)
    accumulators = sum(g.tensors[a].nbytes for a in program.accumulators)
    return (f"arena {_kb(plan.arena_bytes)} (most alive at operator {plan.peak_op} {op.kind}, "
            f"{_kb(plan.live[plan.peak_op])}: {live}, ...) + trained parameters {_kb(params)} + "
            f"momentum {_kb(momentum)}" +
            (f" + accumulators {_kb(accumulators)}" if program.batched else ""))


def _over_budget(program: Program, folder: Path, sram: int, flash: int,
                 kernels: str = "dsp") -> TTError:
    """The message for a link that failed its budget: relinked with the rig's whole memory
    to measure by how much."""
    res = _make(folder, RIG_MEMORY, RIG_MEMORY, kernels)
    if res.returncode != 0:
        return TTError(f"building for the rig failed: {(res.stderr or res.stdout).strip()[-600:]}")
    s = _sections(folder / "build" / "rig.elf")
    used_sram = s.get(".data", 0) + s.get(".bss", 0)
    used_flash = s.get(".text", 0) + s.get(".model", 0) + s.get(".ARM.exidx", 0) + \
        s.get(".data", 0)
    if used_sram > sram:
        return TTError(f"SRAM budget exceeded by {_kb(used_sram - sram)} before the stack: "
                       f".data+.bss {_kb(used_sram)} > {_kb(sram)}; {sram_parts(program)}")
    return TTError(f"flash budget exceeded by {_kb(used_flash - flash)}: code "
                   f"{_kb(used_flash - s.get('.model', 0))} + model constants "
                   f"{_kb(s.get('.model', 0))} > {_kb(flash)}")


def build(program: Program, folder: Path, sram: int = SRAM_BUDGET,
          flash: int = FLASH_BUDGET, kernels: str = "dsp") -> Path:
    """`make rig` in the generated folder; a budget overflow is one TTError that says by how
    much and what is in SRAM. `kernels`: "dsp" (the Cortex-M7's DSP versions of the kernels
    that have them) or "portable" (their C99)."""
    if kernels not in KERNELS:
        raise TTError(f"kernels must be one of {', '.join(KERNELS)}, not {kernels!r}")
    if not available():
        raise TTError("--rig needs gcc-arm-none-eabi and qemu-system-arm (make setup "
                      "installs them)")
    res = _make(folder, sram, flash, kernels)
    if res.returncode != 0:
        if "budget exceeded" in res.stderr + res.stdout:
            raise _over_budget(program, folder, sram, flash, kernels)
        raise TTError(f"building for the rig failed: {(res.stderr or res.stdout).strip()[-800:]}")
    return folder / "build" / "rig.elf"


LINE = re.compile(r"^TT (step|predict|region|stack|done)\b(.*)$")
PROFILE_LINE = re.compile(r"^TT profile (step|predict) op (\d+) ticks (\d+)$")


def _fields(text: str) -> dict[str, str]:
    words = text.split()
    return dict(zip(words[0::2], words[1::2]))


def run_qemu_raw(elf: Path, timeout: int) -> str:
    """What a program prints under QEMU (instructions counted: -icount shift=0); TTError if
    it fails or does not finish in `timeout` seconds."""
    try:
        res = subprocess.run(
            ["qemu-system-arm", "-M", "mps2-an500", "-cpu", "cortex-m7", "-nographic",
             "-monitor", "none", "-serial", "stdio", "-icount", "shift=0,align=off,sleep=off",
             "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
            capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TTError(f"the rig did not finish within {timeout} s") from None
    output = res.stdout + res.stderr
    if res.returncode != 0:
        raise TTError(f"the program failed on the rig (exit {res.returncode}): "
                      f"{output.strip()[-400:]}")
    return output


def run_qemu(elf: Path, timeout: int) -> str:
    output = run_qemu_raw(elf, timeout)
    if "TT done" not in output:
        raise TTError(f"the program stopped early on the rig: {output.strip()[-400:]}")
    return output


def parse(output: str, classes: int) -> tuple[Run, list[int], int, int]:
    """(the run, ticks of each step, ticks of the inference, stack high-water)."""
    losses, ticks, crcs = [], [], []
    predict_ticks = stack = 0
    scores = np.zeros(classes, np.int8)
    for line in output.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        kind, rest = m.group(1), m.group(2).split()
        if kind == "step":
            f = _fields(" ".join(rest[1:]))
            if f["status"] != "0":
                raise TTError(f"tt_train_step returned {f['status']} on the rig")
            ticks.append(int(f["ticks"]))
            losses.append(int.from_bytes(bytes.fromhex(f["loss"]), "little"))
        elif kind == "predict":
            f = _fields(" ".join(rest))
            if f["status"] != "0":
                raise TTError(f"tt_predict returned {f['status']} on the rig")
            predict_ticks = int(f["ticks"])
            scores = np.frombuffer(bytes.fromhex(f["scores"]), np.int8).copy()
        elif kind == "region":
            crcs.append(int(_fields(" ".join(rest[1:]))["crc"]))
        elif kind == "stack":
            stack = int(rest[0])
    return Run(np.array(losses, np.uint32), scores, crcs=crcs), ticks, predict_ticks, stack


def measure(program: Program, folder: Path, xs: np.ndarray, labels: np.ndarray,
            sram: int = SRAM_BUDGET, flash: int = FLASH_BUDGET, verify: bool = True,
            kernels: str = "dsp") -> Measurement:
    """Builds (`kernels` as build() takes it), runs and measures; checks the run against
    --engine c when `verify`."""
    elf = build(program, folder, sram, flash, kernels)
    output = run_qemu(elf, timeout=120 + 60 * len(labels))
    got, ticks, predict_ticks, stack = parse(output, program.classes)
    s = _sections(elf)
    arena = _symbol_size(elf, "tt_arena")
    data_bss = s.get(".data", 0) + s.get(".bss", 0) - arena
    total_sram = arena + data_bss + stack
    free = sram - (s.get(".data", 0) + s.get(".bss", 0))
    if stack >= free - 4:
        raise TTError(f"the stack overflowed its {_kb(free)} above .bss on the rig; "
                      f"{sram_parts(program)}")
    if total_sram > sram:
        raise TTError(f"SRAM budget exceeded by {_kb(total_sram - sram)}: arena {_kb(arena)} "
                      f"+ .data/.bss {_kb(data_bss)} + stack {_kb(stack)} > {_kb(sram)}; "
                      f"{sram_parts(program)}")
    code = s.get(".text", 0) + s.get(".ARM.exidx", 0)
    model = s.get(".model", 0)
    each = [t * INSTRUCTIONS_PER_TICK for t in ticks]
    g = program.graph
    m = Measurement(
        sram_bytes={"arena": arena, "data_bss": data_bss, "stack": stack,
                    "total": total_sram},
        flash_bytes={"code": code, "model": model, "data_init": s.get(".data", 0),
                     "total": code + model + s.get(".data", 0)},
        instructions_per_step=int(round(sum(each) / len(each))) if each else 0,
        instructions_per_inference=predict_ticks * INSTRUCTIONS_PER_TICK,
        losses=got.loss_values(), instructions_each_step=each, sram_budget=sram,
        flash_budget=flash, kernels=kernels,
        planned={"arena": program.plan.arena_bytes,
                 "trained_parameters": sum(program.param_bytes(v) for _, v in program.params),
                 "momentum": sum(g.tensors[t].nbytes for t in program.momentum),
                 **({"accumulators": sum(g.tensors[a].nbytes for a in program.accumulators)}
                    if program.batched else {}),
                 "update_states": 8 * len(program.updates)})
    if verify:
        diffs = differences(program, reference(program, xs, labels), got)
        m.identical_to_engine_c, m.differences = not diffs, diffs
    return m


@dataclass
class Profile:
    """Instructions of each operator (index in program.graph) in a training step (the mean
    of the run's steps) and in an inference, from a build whose generated code calls a hook
    after every kernel (TT_PROFILE_HOOK): whole SysTick ticks, so each operator's count is
    within 40 instructions; the hook's own few instructions are counted in the operator
    after it. The run is the measured one's (same samples, same bits), checked against
    --engine c when `verify`."""
    step: dict[int, int]
    inference: dict[int, int]
    instructions_per_step: int
    instructions_per_inference: int
    kernels: str
    identical_to_engine_c: bool | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "step": {str(k): v for k, v in self.step.items()},
                "inference": {str(k): v for k, v in self.inference.items()}}


def profile(program: Program, folder: Path, xs: np.ndarray, labels: np.ndarray,
            kernels: str = "dsp", verify: bool = True) -> Profile:
    """Builds the folder (written with its rig files) with the profile hook into
    build-profile-KERNELS/ (the rig's whole memory as budgets: the hook's table is not the
    program's), runs it and reads the "TT profile" lines."""
    if kernels not in KERNELS:
        raise TTError(f"kernels must be one of {', '.join(KERNELS)}, not {kernels!r}")
    out = f"build-profile-{kernels}"          # one per build: make sees no flag change
    res = _make(folder, RIG_MEMORY, RIG_MEMORY, kernels,
                extra="-DTT_PROFILE_HOOK=tt_rig_profile", out=out)
    if res.returncode != 0:
        raise TTError(f"building the profile failed: {(res.stderr or res.stdout).strip()[-800:]}")
    output = run_qemu(folder / out / "rig.elf", timeout=120 + 60 * len(labels))
    got, ticks, predict_ticks, _ = parse(output, program.classes)
    step: dict[int, int] = {}
    inference: dict[int, int] = {}
    for line in output.splitlines():
        m = PROFILE_LINE.match(line.strip())
        if m:
            into = step if m.group(1) == "step" else inference
            into[int(m.group(2))] = int(m.group(3)) * INSTRUCTIONS_PER_TICK
    n = max(len(ticks), 1)
    step = {k: int(round(v / n)) for k, v in sorted(step.items())}
    same = None
    if verify:
        same = not differences(program, reference(program, xs, labels), got)
    return Profile(step, dict(sorted(inference.items())),
                   int(round(sum(ticks) * INSTRUCTIONS_PER_TICK / n)),
                   predict_ticks * INSTRUCTIONS_PER_TICK, kernels, same)
