"""The int8 forward kernels on the paper's board: cross-compiled for the STM32F746's
Cortex-M7 (`-mfpu=fpv5-sp-d16`: single-precision FPU), run under QEMU (mps2-an500, see
../shared/MCU_RIG.md) on real layer data, bit for bit against the host build.

Every call into tt_forward.h made on the host is recorded with the bytes of its arrays and
parameter structs before and after; each becomes a call in a Cortex-M7 program that copies
the "before" bytes in, makes the call and compares every argument and the result with the
host's (test_cortex_m7.Program). The calls: a forward pass of the zoo's MobileNet-like model
and of the person detector (when ../shared is there), the graphs test_c_forward builds
(every kernel the executor uses, RELU_N1_TO_1, PADV2, MEAN over odd axes, softmax, float
I/O), and the in-place depthwise convolution and split filters on the same data.
"""
from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess
from contextlib import contextmanager

import numpy as np
import pytest

import board_build
import test_c_forward
import test_codegen_layouts
from conftest import SHARED_MODELS, require_tool
from test_cortex_m7 import RIG, Call, Memory, Program
from tflite_train import tflite_io
from tflite_train.runtime import c_forward
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.verify import random_inputs

BOARD_CPU = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]
SOURCES = sorted((c_forward.MICRO_KERNELS / "src").glob("tt_fwd_*.c"))
FLASH_FOR_VECTORS = 700 * 1024      # per program: the rig's linker budget is 1 MB of flash


# Arguments whose bytes after a call the header leaves unspecified (a scratch the DSP
# versions may not use): replayed, not compared.
UNSPECIFIED_AFTER = {"tt_depthwise_conv2d_inplace_s8": (9,)}


@contextmanager
def recording(calls: list[Call]):
    """Record every kernel call made through c_forward.call while the block runs."""
    real = c_forward.call

    def snapshot(obj) -> bytes:
        return obj.tobytes() if isinstance(obj, np.ndarray) else bytes(obj)

    def record(name, *args):
        restype, argtypes = c_forward.FUNCTIONS[name]
        memory = [a if isinstance(a, (np.ndarray, C.Structure)) else None for a in args]
        before = [None if m is None else snapshot(m) for m in memory]
        result = real(name, *args)
        recorded = []
        for arg, m, b, argtype in zip(args, memory, before, argtypes):
            if m is not None:
                recorded.append(Memory(b, snapshot(m)))
            elif arg is None:
                recorded.append(None)
            else:
                recorded.append(C.c_float(arg) if argtype is C.c_float else int(arg))
        for i in UNSPECIFIED_AFTER.get(name, ()):
            recorded[i] = Memory(recorded[i].before, b"")      # not compared
        calls.append(Call(name, recorded, restype,
                          bytes(restype(result)) if restype else b""))
        return result
    c_forward.call = record
    try:
        yield
    finally:
        c_forward.call = real


def forward_calls(graph, seed: int = 0) -> list[Call]:
    calls: list[Call] = []
    ex = Executor(graph, "c")
    xs = random_inputs(graph, np.random.default_rng(seed))
    with recording(calls):
        ex.invoke(xs)
    return calls


def programs(calls: list[Call]) -> list[Program]:
    """The calls in programs whose vectors fit the rig's flash budget."""
    out, used = [Program()], 0
    for call in calls:
        new = {m for a in call.args if isinstance(a, Memory) for m in (a.before, a.after)}
        extra = sum(len(m) for m in new if m not in out[-1].blobs)
        if used and used + extra > FLASH_FOR_VECTORS:
            out, used = out + [Program()], 0
            extra = sum(map(len, new))
        out[-1].add(call)
        used += extra
    return out


def source(program: Program) -> str:
    return program.source().replace('#include "tt_kernels.h"',
                                    '#include "tt_kernels.h"\n#include "tt_forward.h"')


def build(tmp_path, name: str, main_c: str, defines: tuple[str, ...] = (), core=None) -> str:
    """The kernels at -O2 for the board with `main_c`, which is compiled on its own with
    -fno-builtin: gcc would otherwise copy constant vectors it memcpy's (+60% flash).
    `defines` go to every file (e.g. -DTT_PORTABLE: the portable kernels on the M7); `core`:
    (flags, QEMU machine, QEMU cpu) of another core (test_cortex_m7.CORTEX_M4)."""
    gcc = shutil.which("arm-none-eabi-gcc")
    flags = [*(core[0] if core else BOARD_CPU), "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
             "-ffunction-sections", "-fdata-sections", *defines, "-I",
             str(c_forward.MICRO_KERNELS / "include")]
    (tmp_path / f"{name}.c").write_text(main_c)
    main_o, elf = tmp_path / f"{name}.o", tmp_path / f"{name}.elf"
    subprocess.run([gcc, *flags, "-fno-builtin", "-c", str(tmp_path / f"{name}.c"), "-o",
                    str(main_o)], check=True)
    link = [*flags, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-T",
            str(RIG / "link.ld"), "-Wl,--gc-sections"]
    # the kernels' objects are the session's (board_build), the same for every program
    kernels = board_build.objects([RIG / "startup.c", *SOURCES], link)
    subprocess.run([gcc, *link, *map(str, kernels), str(main_o), "-o", str(elf)], check=True)
    return str(elf)


def run_rig(elf: str, icount: bool = False, core=None) -> subprocess.CompletedProcess:
    machine, cpu = core[1:] if core else ("mps2-an500", "cortex-m7")
    return subprocess.run(["timeout", "300", "qemu-system-arm", "-M", machine, "-cpu",
                           cpu, "-nographic", "-monitor", "none", "-serial", "stdio",
                           *(["-icount", "shift=0,align=off,sleep=off"] if icount else []),
                           "-semihosting-config", "enable=on,target=native", "-kernel", elf],
                          capture_output=True, text=True)


def rig_available() -> bool:
    return bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def test_no_double_arithmetic_in_the_forward_kernels(tmp_path):
    """Built for the board's single-precision FPU, no forward kernel calls a software double
    routine (__aeabi_d*, or a double<->float/int conversion helper)."""
    require_tool(bool(shutil.which("arm-none-eabi-gcc")), "arm-none-eabi-gcc")
    offenders = []
    for src in SOURCES:
        obj = tmp_path / f"{src.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *BOARD_CPU, "-std=c99", "-O2", "-ffunction-sections",
                        "-I", str(c_forward.MICRO_KERNELS / "include"), "-c", str(src), "-o",
                        str(obj)], check=True)
        dump = subprocess.run(["arm-none-eabi-objdump", "-r", str(obj)], capture_output=True,
                              text=True, check=True).stdout
        section = None
        for line in dump.splitlines():
            m = re.match(r"RELOCATION RECORDS FOR \[\.text\.(\w+)\]", line)
            if m:
                section = m.group(1)
            elif re.search(r"__aeabi_(d\w+|[fiul]2d|l2d|ul2d)\b", line):
                offenders.append(f"{src.name}:{section} calls {line.split()[-1]}")
    assert not offenders, offenders


def test_forward_kernels_are_bit_identical_on_the_cortex_m7(tmp_path, zoo):
    require_tool(rig_available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    calls = forward_calls(tflite_io.load(zoo["mobile"]))
    person = SHARED_MODELS / "tflm" / "person_detect.tflite"
    if person.exists():
        calls += forward_calls(tflite_io.load(person))
    for g in test_c_forward.built_models():
        calls += forward_calls(g)
    with recording(calls):
        for case in test_c_forward.INPLACE_CASES[:4]:
            test_c_forward.test_inplace_depthwise_equals_out_of_place(*case)
        test_c_forward.test_inplace_depthwise_on_real_layers(zoo)
        test_c_forward.test_inplace_depthwise_refuses_a_depth_multiplier()
        for k in (3, 16):
            test_c_forward.test_split_filters_equal_whole_ones(k)
        test_codegen_layouts.wide_calls(np.random.default_rng(1))
    # not replayed on the rig yet (issue 11 left it): the in-place split 1x1 convolution
    missing = set(c_forward.FUNCTIONS) - {c.name for c in calls} - {"tt_conv2d_split_inplace_s8"}
    assert not missing, missing
    for k, program in enumerate(programs(calls)):
        res = run_rig(build(tmp_path, f"fwd{k}", source(program)))
        output = res.stdout + res.stderr
        assert res.returncode == 0 and "PASS" in output, output[-2000:]
    print(f"{len(calls)} calls of {len({c.name for c in calls})} kernels"
          + ("" if person.exists() else " (person detector absent: ../shared missing)"))
