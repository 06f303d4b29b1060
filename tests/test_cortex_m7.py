"""Every C kernel on a Cortex-M7 (QEMU mps2-an500, ../shared/MCU_RIG.md), bit for bit against
the host build of the same kernels. Built for the paper's board, the STM32F746
(`-mfpu=fpv5-sp-d16`: single precision only, so the once-per-step double math runs in
libgcc's software routines, as it would there; QEMU's FPU is double precision, unused).

While the host C library runs, every ctypes call into it is recorded: the bytes of each
array and struct argument before and after the call, the scalars, the return value. Each
recorded call becomes one call in a C program for the Cortex-M7, which copies the
"before" bytes into RAM, makes the call and memcmp's every argument (outputs, in-place
parameters, momentum, RNG state, and the inputs, which must stay untouched) and the return
value against the host's. The calls come from real training steps of the example model
(fused and separate updates, momentum, stochastic rounding, the step mid-way through a
cosine lr decay), from the direct-input tests of test_micro_kernels (every code path of the
layer gradients: strides, dilations, pads, masks, depth multipliers; pools, softmax,
mask/pad/transpose/reshape gradients, saved slices, the broadcast sum, fused updates of a
depthwise layer with depth multiplier 2), the same training steps with int8 gradients
(stochastic rounding, one and two passes) and test_int8_grads' direct cases (every layer
input-gradient geometry, the pools, a 300-class softmax, the rule's edge cases, the
multipliers), and from direct calls of the math (tt_exp, tt_log, tt_cos_pi_ratio,
tt_learning_rate, xorshift32). Every function of tt_kernels.h must be
among them: the loss and the lr decay included, since tt_math.c replaced libm, whose last
bits differ between glibc and newlib.
"""
from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import board_build
import test_int8_grads
import test_micro_kernels
from conftest import require_tool
from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import stream_args
from tflite_train.runtime import c_kernels
from tflite_train.runtime.numpy_exec import Executor

RIG = c_kernels.ROOT / "targets" / "mps2_an500"
CPU = c_kernels.cortex_m7_flags()
RETURN_C = {C.c_int: "int", C.c_float: "float", C.c_double: "double", C.c_uint32: "uint32_t",
            C.c_int16: "int16_t"}
STRUCT_C = {c_kernels.Window: "tt_window", c_kernels.Sgd: "tt_sgd",
            c_kernels.UpdateState: "tt_update_state"}


@dataclass
class Memory:
    """An array or by-reference argument: its bytes before and after the host call."""
    before: bytes
    after: bytes


@dataclass
class Call:
    name: str
    args: list          # Memory, None (NULL), int, C.c_float or C.c_double
    restype: type | None
    result: bytes


def signature_params(name: str) -> list[str]:
    """The parameter names of a kernel header function ([] for one the headers lack)."""
    from tflite_train.runtime.kernel_calls import signatures
    sig = signatures().get(name)
    return [q.name for q in sig.params] if sig else []


@contextmanager
def recording(calls: list[Call]):
    """Record every call into the C library made through c_kernels (its `_p` and `library`
    are module globals, looked up per call). `_p` notes which array each pointer points
    to; the arrays are kept alive until the call has been recorded."""
    real_p, real_library = c_kernels._p, c_kernels.library
    arrays: dict[int, np.ndarray] = {}

    def p(array, ctype):
        if array is not None:
            arrays[array.ctypes.data] = array
        return real_p(array, ctype)

    def memory_of(arg) -> np.ndarray | C._SimpleCData | C.Structure | None:
        if isinstance(arg, C._Pointer):
            return arrays[C.cast(arg, C.c_void_p).value]
        if type(arg).__name__ == "CArgObject":              # C.byref(...)
            return arg._obj
        return None

    def snapshot(obj) -> bytes:
        return obj.tobytes() if isinstance(obj, np.ndarray) else bytes(obj)

    class Library:
        def __getattr__(self, name):
            fn = getattr(real_library(), name)

            def call(*args):
                memory = [memory_of(a) for a in args]
                before = [None if m is None else snapshot(m) for m in memory]
                result = fn(*args)
                # a DSP version's staging (`stage`) is working memory the portable code
                # leaves alone, and a fused update's `scratch` one the DSP version may leave
                # alone (its gradients kept in registers): their bytes after the call are
                # not compared
                staging = {i for i, q in enumerate(signature_params(name))
                           if q == "stage" or (q == "scratch" and "_update_" in name)}
                recorded = [(Memory(b, b"") if i in staging else Memory(b, snapshot(m)))
                            if m is not None else a
                            for i, (a, m, b) in enumerate(zip(args, memory, before))]
                calls.append(Call(name, recorded, fn.restype,
                                  bytes(fn.restype(result)) if fn.restype else b""))
                arrays.clear()
                return result
            return call

    proxy = Library()
    c_kernels._p, c_kernels.library = p, lambda: proxy
    try:
        yield
    finally:
        c_kernels._p, c_kernels.library = real_p, real_library


# --- where the calls come from -----------------------------------------------------------------

def training_steps(fuse: bool, grad: str = "float32", scheme: str = "full",
                   head_residual: bool = True) -> list[list[Call]]:
    """Three training steps of the example model on the C engine (every layer trained, a
    new 4-class head with its rounding residual, momentum, stochastic rounding; fused: a
    cosine decay over 6 steps, separate: the inverse-time decay with half-life 2, whose
    double division is libgcc's soft float on the board): the calls of each step. int8
    gradients: rounded stochastically, every other layer input gradient in one pass (int32
    scratch) and the others in two. `scheme`, `head_residual`: the bias-only run without
    the residual reaches the fully connected updates without one."""
    schedule = {"decay_steps": 6} if fuse else {"half_life": 2}
    r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4,
                        Hyper(lr=0.05, momentum=0.5, rounding="stochastic", seed=5,
                              grad=grad, grad_rounding="stochastic",
                              head_residual=head_residual, **schedule), fuse=fuse)
    if grad == "int8":
        test_int8_grads.alternate_passes(r.graph)
    ex = Executor(r.graph, "c")
    rng = np.random.default_rng(0)
    steps = []
    for i in range(3):
        x = rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
        steps.append([])
        with recording(steps[-1]):
            ex.invoke([x, np.array([i % 4], np.int32)])
    return steps


def latest_calls(steps: list[list[Call]]) -> list[Call]:
    """Each function's calls from the latest step it ran in: the last step (momentum built
    up, lr mid-decay, RNG advanced) and TT_INIT's copies from the first."""
    latest = {c.name: k for k, step in enumerate(steps) for c in step}
    return [c for k, step in enumerate(steps) for c in step if latest[c.name] == k]


def direct_calls() -> list[Call]:
    """Kernels the example model does not reach, through test_micro_kernels' direct-input
    tests, and the math and RNG functions called directly."""
    calls: list[Call] = []
    with recording(calls):
        t = test_micro_kernels
        t.test_pool_softmax_and_slice_kernels()
        t.test_layer_gradient_kernels_on_every_code_path()
        t.test_data_movement_kernels()
        t.test_broadcast_sum_kernel()
        t.test_fused_update_equals_gradient_then_update("depthwise", True)
        t.test_batch_accumulation_kernels(3)       # tt_batch_accumulate_f32, tt_batch_end_f32
        lib = c_kernels.library()
        for x in np.concatenate([-np.geomspace(1e-9, 120, 40), [0.0, -745.2, 0.3, 50.0]]):
            lib.tt_exp(C.c_double(x))
        for x in np.concatenate([np.geomspace(1e-300, 1e300, 40), [1.0, 1.5, 10.0]]):
            lib.tt_log(C.c_double(x))
        for t_, n in ((0, 1), (1, 1), (1, 2), (1, 3), (2, 3), (333, 1000), (1500, 4096),
                      (2048, 4096), (4095, 4096), (7, 100000)):
            lib.tt_cos_pi_ratio(t_, n)
        sgd = c_kernels.Sgd(0.05, 0.9, 1, 1, 1000)
        for step in (0, 1, 250, 500, 999, 1000, 2000):
            lib.tt_learning_rate(C.byref(sgd), step)
        state = c_kernels.UpdateState()
        lib.tt_update_state_init(C.byref(state), 0)
        rng = C.c_uint32(state.rng)
        for _ in range(3):
            lib.tt_xorshift32_next(C.byref(rng))
    return calls


def int8_direct_calls() -> list[Call]:
    """The int8-gradient kernels the example model does not reach, and the rule's edge
    cases, through test_int8_grads' direct-input tests."""
    calls: list[Call] = []
    i8 = test_int8_grads
    with recording(calls):
        for name in i8.LAYER_GEOMETRIES:
            i8.test_layer_input_gradients_on_every_code_path(name)
        for kind in ("TT_AVERAGE_POOL_GRAD", "TT_MAX_POOL_GRAD"):
            i8.test_pool_gradients_on_every_code_path(kind)
        i8.test_softmax_gradient_beyond_257_classes_shifts()
        i8.test_data_movement_mask_and_broadcast_sum_in_int8()
        i8.test_the_rule_in_c_and_python()
        i8.test_shift_multipliers_and_unit_in_c_and_python()
        staging_queries()
    return calls


def staging_queries() -> None:
    """The DSP staging's sizes (tt_*_stage_bytes), which a plan made on the host assumes the
    board computes alike: whole, limited, too little, and layers no DSP version takes."""
    lib = c_kernels.library()
    same, pad = c_kernels.Window(1, 1, 1, 1, 0, 0), c_kernels.Window(2, 2, 1, 1, 1, 1)
    for limit in (0, 9000, 3000, 700, 100):
        lib.tt_conv2d_weight_grad_s8_stage_bytes(1, 8, 8, 16, 8, 8, 48, 1, 1, C.byref(same),
                                                 limit)
        lib.tt_conv2d_weight_update_s8_s8_stage_bytes(1, 4, 4, 8, 8, 8, 48, 3, 3, C.byref(pad),
                                                      0, limit)
        for hw, k in ((8, 32), (14, 16)):       # int16 whole, or none
            lib.tt_conv2d_weight_update_s8_s8_stage_bytes(1, hw, hw, 192, hw, hw, k, 1, 1,
                                                          C.byref(same),
                                                          c_kernels.LEAN_GRAD_DSP_STAGE_BYTES,
                                                          limit)
        lib.tt_depthwise_conv2d_weight_grad_s8_stage_bytes(1, 8, 8, 160, 1, 16, 16, 3, 3,
                                                           C.byref(pad), limit)
        lib.tt_depthwise_conv2d_input_grad_s8_stage_bytes(1, 4, 4, 576, 1, 3, 3, C.byref(pad),
                                                          8, 8, limit)
        lib.tt_depthwise_conv2d_input_grad_s8_stage_bytes(1, 8, 8, 16, 2, 3, 3, C.byref(same),
                                                          8, 8, limit)


# --- the Cortex-M7 program ---------------------------------------------------------------------

class Program:
    """One C function per recorded call; inputs and expected bytes as deduplicated constant
    blobs in flash, each call's arguments copied into one RAM arena. `timed`: no checks, but
    each call's SysTick ticks (40 instructions under -icount shift=0) printed as `T<k> <n>`
    (benchmarks/mcu_step.py)."""

    def __init__(self, timed: bool = False):
        self.blobs: dict[bytes, str] = {}
        self.cases: list[str] = []
        self.arena = 8
        self.structs: dict[str, int] = {}
        self.timed = timed

    def blob(self, data: bytes) -> str:
        if data not in self.blobs:
            self.blobs[data] = f"d{len(self.blobs)}"
        return self.blobs[data]

    def add(self, call: Call) -> None:
        k = len(self.cases)
        lines, values, offset = [], [], 0
        for arg in call.args:
            values.append(self.scalar(arg) if not isinstance(arg, Memory)
                          else f"(void *)(A.bytes + {offset})")
            if isinstance(arg, Memory):
                if arg.before and not any(arg.before):
                    # zeros (outputs, scratch, staging) cost no flash
                    lines.append(f"  memset(A.bytes + {offset}, 0, {len(arg.before)});")
                elif arg.before:
                    lines.append(f"  memcpy(A.bytes + {offset}, {self.blob(arg.before)}, "
                                 f"{len(arg.before)});")
                offset += (len(arg.before) + 7) // 8 * 8
        self.arena = max(self.arena, offset)
        if call.name in stream_args.STREAMS:      # recorded flat: the structs declared here
            decls, values = stream_args.c_groups(call.name, stream_args.flat_names(call.name),
                                                 values, "s_", "const")
            lines += ["  " + d for d in decls]
        invocation = f"{stream_args.c_function(call.name)}({', '.join(values)})"
        if self.timed:
            lines.append("  const uint32_t t0 = tt_rig_ticks();")
            lines.append(f"  (void){invocation};")
            lines.append(f"  ticks[{k}] = (t0 - tt_rig_ticks()) & 0xFFFFFFu;")
            self.cases.append(f"static int case{k}(void) {{\n" + "\n".join(lines)
                              + "\n  return 0;\n}")
            return
        if call.restype is None:
            lines.append(f"  {invocation};")
        else:
            lines.append(f"  const {RETURN_C[call.restype]} r = {invocation};")
            lines.append(f'  fails += check("{k} {call.name} result", &r, '
                         f"{self.blob(call.result)}, sizeof r);")
        offset = 0
        for i, arg in enumerate(call.args):
            if isinstance(arg, Memory):
                if arg.after:
                    lines.append(f'  fails += check("{k} {call.name} argument {i}", '
                                 f"A.bytes + {offset}, {self.blob(arg.after)}, "
                                 f"{len(arg.after)});")
                offset += (len(arg.before) + 7) // 8 * 8
        self.cases.append(f"static int case{k}(void) {{\n  int fails = 0;\n"
                          + "\n".join(lines) + "\n  return fails;\n}")

    @staticmethod
    def scalar(arg) -> str:
        if arg is None:
            return "0"
        if isinstance(arg, int):
            return str(arg) if -2**31 <= arg < 2**31 else f"{arg}u"
        value = float(arg.value)
        assert np.isfinite(value), arg
        return f"{value.hex()}f" if isinstance(arg, C.c_float) else value.hex()

    def source(self) -> str:
        blobs = [f"static const uint8_t {name}[{len(data)}] = {{"
                 f"{','.join(map(str, data))}}};" for data, name in self.blobs.items() if data]
        # the host's ctypes layout of the structs is the one copied in: same on the M7
        sizes = [f"typedef char size_of_{name}[sizeof({name}) == {C.sizeof(cls)} ? 1 : -1];"
                 for cls, name in STRUCT_C.items()]
        calls = "\n".join(f"  fails += case{k}();" for k in range(len(self.cases)))
        timing = [
            "void tt_rig_ticks_start(void);", "uint32_t tt_rig_ticks(void);",
            f"static uint32_t ticks[{len(self.cases)}];",
            "static void put(unsigned k, uint32_t n) {",
            "  char buf[32]; int i = 31; buf[i] = 0;",
            "  do { buf[--i] = (char)('0' + n % 10); n /= 10; } while (n);",
            "  buf[--i] = ' ';",
            "  do { buf[--i] = (char)('0' + k % 10); k /= 10; } while (k);",
            "  buf[--i] = 'T'; tt_rig_print(buf + i); tt_rig_print(\"\\n\");", "}"]
        report = [f"  for (unsigned k = 0; k < {len(self.cases)}u; ++k) put(k, ticks[k]);"]
        return "\n".join([
            "#include <stdint.h>", "#include <string.h>", '#include "tt_kernels.h"',
            '#include "tt_split_grad.h"',
            "void tt_rig_print(const char *text);", *sizes, *blobs,
            *(timing if self.timed else []),
            f"static union {{ double align; uint8_t bytes[{self.arena}]; }} A;",
            *([] if self.timed else [
                "static int check(const char *label, const void *got, const void *want, "
                "unsigned n) {",
                "  if (memcmp(got, want, n) == 0) return 0;",
                '  tt_rig_print("MISMATCH "); tt_rig_print(label); tt_rig_print("\\n");',
                "  return 1;", "}"]), *self.cases,
            "int main(void) {", "  int fails = 0;",
            *(["  tt_rig_ticks_start();"] if self.timed else []), calls,
            *(report if self.timed else []),
            '  tt_rig_print(fails ? "FAIL\\n" : "PASS\\n");', "  return fails;", "}", ""])


def header_functions() -> set[str]:
    return set(re.findall(r"^\w+\s+(tt_\w+)\(", c_kernels.HEADER.read_text(), re.M))


# Another core on QEMU's MPS2 boards, the same memory map as the rig's: the Cortex-M4 (DSP
# extension, FPv4: no VCVTM/VMAXNM, so the kernels' portable float forms, -DTT_NO_FPV5)
CORTEX_M4 = (["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard",
              "-DTT_NO_FPV5"], "mps2-an386", "cortex-m4")


def run_on_rig(program: Program, tmp_path, link=RIG / "link.ld", icount: bool = False,
               defines=(), core=None) -> str:
    """Build `program` with the kernels for the board and run it under QEMU; its output.
    `defines`: e.g. ("-DTT_PORTABLE",) for the portable kernels instead of the DSP versions;
    `core`: (flags, QEMU machine, QEMU cpu) for another core than the rig's M7 (CORTEX_M4)."""
    cpu, machine, qemu_cpu = core or (CPU, "mps2-an500", "cortex-m7")
    (tmp_path / "main.c").write_text(program.source())
    elf, main_o = tmp_path / "test.elf", tmp_path / "main.o"
    flags = [*cpu, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
             *defines, "-ffunction-sections", "-fdata-sections", "-nostartfiles",
             "--specs=nano.specs", "--specs=nosys.specs", "-T", str(link), "-Wl,--gc-sections",
             "-I", str(c_kernels.ROOT / "include")]
    # the kernels' objects are the session's (board_build), the same for every program
    kernels = board_build.objects([RIG / "startup.c", *test_micro_kernels.SOURCES], flags)
    subprocess.run(["arm-none-eabi-gcc", *flags, "-c", str(tmp_path / "main.c"), "-o",
                    str(main_o)], check=True)
    subprocess.run(["arm-none-eabi-gcc", *flags, *map(str, kernels), str(main_o), "-o",
                    str(elf)], check=True)
    res = subprocess.run(["timeout", "600", "qemu-system-arm", "-M", machine, "-cpu",
                          qemu_cpu, "-nographic", "-monitor", "none", "-serial", "stdio",
                          *(["-icount", "shift=0,align=off,sleep=off"] if icount else []),
                          "-semihosting-config", "enable=on,target=native", "-kernel",
                          str(elf)], capture_output=True, text=True)
    output = res.stdout + res.stderr
    assert res.returncode == 0 and "PASS" in output, output[-2000:]
    return output


def run_in_both_builds(calls: list, tmp_path, core=None) -> None:
    """The recorded calls replayed on the rig with the kernels' DSP versions and with their
    portable C; each build must reproduce the host's bits (run_on_rig asserts PASS)."""
    for label, defines in (("dsp", ()), ("portable", ("-DTT_PORTABLE",))):
        program = Program()
        for call in calls:
            program.add(call)
        (tmp_path / label).mkdir()
        run_on_rig(program, tmp_path / label, defines=defines, core=core)


def test_kernels_are_bit_identical_on_the_cortex_m7(tmp_path):
    gcc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    require_tool(gcc is not None and qemu is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    # two groups (float32 gradients, int8 gradients): one program would not fit the 1 MB flash
    groups = [[c for fuse in (True, False) for c in latest_calls(training_steps(fuse))]
              + latest_calls(training_steps(True, "float32", "bias-only", False))
              + direct_calls(),
              [c for fuse in (True, False) for c in latest_calls(training_steps(fuse, "int8"))]
              + latest_calls(training_steps(True, "int8", "bias-only", False))
              + int8_direct_calls()]
    missing = header_functions() - {c.name for calls in groups for c in calls}
    assert not missing, missing
    # each group in programs of at most VECTOR_BYTES of vectors, so that the kernels' code
    # and the vectors fit the link script's 1 MB together as the kernels grow
    k = 0
    for calls in groups:
        program, taken = Program(), []
        for call in calls + [None]:
            if call is not None:
                program.add(call)
                taken.append(call)
                if sum(map(len, program.blobs)) < VECTOR_BYTES:
                    continue
            if taken:
                (tmp_path / str(k)).mkdir()
                run_on_rig(program, tmp_path / str(k))
                print(f"{len(taken)} calls of {len({c.name for c in taken})} functions, "
                      f"{sum(map(len, program.blobs)):,} bytes of vectors")
                k += 1
            program, taken = Program(), []


VECTOR_BYTES = 200_000


def hard_float_use(archive) -> list[str]:
    """Tag_ABI_HardFP_use of every member of a static library ("SP only" for the board's
    FPU; absent for a double-precision one)."""
    out = subprocess.run(["arm-none-eabi-readelf", "-A", str(archive)], capture_output=True,
                         text=True, check=True).stdout
    members = out.split("File: ")[1:]
    return [re.search(r"Tag_ABI_HardFP_use: (.+)", m).group(1).strip()
            if "Tag_ABI_HardFP_use" in m else "no tag (double precision or no FPU)"
            for m in members]


def test_board_builds_default_to_its_single_precision_fpu(tmp_path):
    """The kernels' Makefile target for the board, and micro_kernels/CMakeLists.txt
    cross-compiled for an ARM processor with no FPU flags of its own (the CMake default),
    give objects for the STM32F746's FPU: single precision only."""
    require_tool(all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++",
                                               "arm-none-eabi-readelf", "cmake", "make")),
                 "gcc-arm-none-eabi, cmake and make")
    require_tool(Path("/usr/include/newlib/c++").exists(), "libstdc++-arm-none-eabi-dev")
    root = c_kernels.ROOT
    subprocess.run(["make", "-C", str(root), f"BUILD={tmp_path / 'make'}", "cortex-m7"],
                   check=True, capture_output=True)
    uses = hard_float_use(tmp_path / "make" / "m7" / "libtt_kernels.a")
    assert uses and set(uses) == {"SP only"}, uses
    include = tmp_path / "include"                     # flexbuffers.h without host libc
    include.mkdir()
    (include / "flatbuffers").symlink_to("/usr/include/flatbuffers")
    build = tmp_path / "cmake"
    subprocess.run(["cmake", "-S", str(root), "-B", str(build), "-DCMAKE_SYSTEM_NAME=Generic",
                    "-DCMAKE_SYSTEM_PROCESSOR=arm", "-DCMAKE_C_COMPILER=arm-none-eabi-gcc",
                    "-DCMAKE_CXX_COMPILER=arm-none-eabi-g++",
                    "-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY",
                    "-DTFLITE_TRAIN_WHEEL_ABI=ON", f"-DCMAKE_CXX_FLAGS=-isystem {include}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j", "2"], check=True, capture_output=True)
    uses = hard_float_use(build / "libtflite_train.a")
    # the kernels and the glue's two sources
    assert len(uses) == len(test_micro_kernels.SOURCES) + 2 and set(uses) == {"SP only"}, uses
