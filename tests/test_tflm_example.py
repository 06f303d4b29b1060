"""examples/tflm_app: the C++ trainer a TFLM application uses, built with its Makefile and
with CMake exactly as a user would, except against micro_kernels/tflm/wheel_abi (the pinned
wheel's TFLM, declared) instead of TFLM's headers, then run against the real TFLM in the
wheel. Its losses, predictions and checkpoints (saved, power-cut-safe, to a simulated flash;
resumed after a reboot) must equal an uninterrupted run of --engine c bit for bit; and, so
that a bug in the C kernels' arithmetic cannot hide behind C agreeing with itself, that run
equals the numpy engine's on the same samples, bit for bit (conftest.numpy_equals_c).

Also `tflite-train header`, which writes the header the example is built with.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import wheel_elf
from conftest import ROOT, numpy_equals_c, require_tool
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_kernels

APP = ROOT / "examples" / "tflm_app"
STRICT = ("-std=c++17 -O2 -Wall -Wextra -Werror -fno-exceptions -fno-rtti "
          "-fno-threadsafe-statics")

# One boot of the device, in a child process: the wheel's _runtime.so is made global so
# that the example's references to TFLM resolve to it, then the example is driven through
# its C API. The flash (two slots, a Python simulation) persists in a file between boots.
# argv: library, model, flash image, first step, steps.
DRIVER = r"""
import ctypes, json, os, sys
import numpy as np
from pathlib import Path
import tflite_micro.python.tflite_micro.runtime as rt
sys.path.insert(0, "tests")
from checkpoint_helpers import Flash, sample
from tflite_train import tflite_io

ctypes.CDLL(str(Path(rt.__file__).parent / "_runtime.so"), mode=ctypes.RTLD_GLOBAL | os.RTLD_NOLOAD)
lib = ctypes.CDLL(sys.argv[1])
graph = tflite_io.load(sys.argv[2])
image, start, steps = Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
flash = Flash(int(sys.argv[6]))
if image.exists():
    flash.image = image.read_bytes()
assert lib.tt_trainer_begin() == 0, "tt_trainer_begin failed"
seq = ctypes.c_uint32()
resumed = lib.tt_trainer_resume(ctypes.byref(flash.struct), ctypes.byref(seq))
out = {"resumed": resumed, "resumed_sequence": seq.value, "losses": []}
classes = graph.tensors[graph.outputs[0]].size
for i in range(start, start + steps):
    x, label = sample(graph, 7, i)
    loss = ctypes.c_float()
    assert lib.tt_trainer_step(x.ctypes.data_as(ctypes.c_void_p), label, ctypes.byref(loss)) == 0
    out["losses"].append(float(loss.value))
scores = np.zeros(classes, np.int8)
assert lib.tt_trainer_predict(x.ctypes.data_as(ctypes.c_void_p),
                              scores.ctypes.data_as(ctypes.c_void_p)) == 0
out["scores"] = scores.tolist()
out["checkpoint"] = lib.tt_trainer_checkpoint(ctypes.byref(flash.struct), ctypes.byref(seq))
out["sequence"] = seq.value
image.write_bytes(flash.image)
# what the device sends the host: the newest checkpoint's bytes
slot, size = ctypes.c_int32(), ctypes.c_uint32()
assert lib.tt_trainer_newest(ctypes.byref(flash.struct), ctypes.byref(slot), ctypes.byref(size)) == 0
Path(str(image) + ".newest").write_bytes(flash.slot(slot.value)[:size.value])
out["sample"] = x.tolist()
print(json.dumps(out))
"""
# steps before and after the reboot, flash slot bytes (the batch-3 model's checkpoint, with
# the head's rounding residual, is 8,252 B)
FIRST, THEN, SLOT = 5, 4, 12288


def _model_dir(d: Path, *augment_options: str) -> Path:
    """A training model of the built-in example (momentum, a cosine decay and int8
    gradients rounded stochastically, not augment's default, so that the optimizer state and
    the gradients' streams matter) and its header from `tflite-train header`."""
    model = d / "example.train.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4",
                 "--scheme", "last:2", "--momentum", "0.5", "--lr-decay-steps", "8",
                 "--grad-rounding", "stochastic", *augment_options]) == 0
    assert main(["header", str(model), "-o", str(d / "model_train.h"), "--array",
                 "g_model"]) == 0
    return d


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def reference(model_dir):
    return _reference(model_dir)


def _reference(model_dir: Path) -> dict:
    """--engine c on the same samples: the losses of FIRST + THEN steps in one go, the
    output after them, and the checkpoints after FIRST and after all steps as the host
    writes them (sequence numbers 1 and 2). Checked against the numpy engine on the same
    samples, and that the training moved the parameters."""
    from checkpoint_helpers import sample, train_steps
    from tflite_train import checkpoint, tflite_io
    from tflite_train.runtime.numpy_exec import Executor
    path = model_dir / "example.train.tflite"
    graph, model = tflite_io.load(path), path.read_bytes()
    ex = Executor(graph, "c")
    mid = checkpoint.model_id(model)
    losses = train_steps(graph, ex, FIRST, 7)
    blobs = [checkpoint.to_blob(checkpoint.capture(ex, graph, mid, 1))]
    losses += train_steps(graph, ex, THEN, 7, start=FIRST)
    blobs.append(checkpoint.to_blob(checkpoint.capture(ex, graph, mid, 2)))
    x, _ = sample(graph, 7, FIRST + THEN - 1)
    scores = ex.invoke([x, np.array([-1], np.int32)])[graph.outputs[0]].ravel().tolist()
    independent = Executor(graph, "numpy")
    assert numpy_equals_c(train_steps(graph, independent, FIRST + THEN, 7), losses)
    assert independent.invoke([x, np.array([-1], np.int32)])[graph.outputs[0]].ravel() \
        .tolist() == scores
    for k, value in ex.variables.items():
        other = independent.variables[k]
        assert numpy_equals_c(other, value), graph.tensors[k].name
    init = next(op for op in graph.operators if op.kind == "TT_INIT")
    assert any(np.any(ex.variables[v] != graph.tensors[c].data)
               for c, v in zip(init.inputs[0::2], init.inputs[1::2]))
    return {"losses": losses, "blobs": blobs, "scores": scores}


def boot(library, model_dir, image, start: int, steps: int) -> dict:
    res = subprocess.run([sys.executable, "-c", DRIVER, str(library),
                          str(model_dir / "example.train.tflite"), str(image), str(start),
                          str(steps), str(SLOT)], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=300)
    assert res.returncode == 0, f"the example failed (exit {res.returncode}):\n" \
                                f"{res.stderr[-3000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_example(library, model_dir, tmp_path, reference) -> None:
    """Boot, train FIRST steps, checkpoint; reboot (a new process: fresh TFLM, fresh SRAM),
    resume, train THEN more, checkpoint: the losses, the output and both checkpoints equal
    the uninterrupted run of --engine c, bit for bit; the device's blob reads back on the
    host."""
    image = tmp_path / "flash.bin"
    first = boot(library, model_dir, image, 0, FIRST)
    assert first["resumed"] == 1 and first["checkpoint"] == 0 and first["sequence"] == 1
    blob = reference["blobs"][0]
    assert image.read_bytes()[:len(blob)] == blob                  # slot A
    second = boot(library, model_dir, image, FIRST, THEN)
    assert second["resumed"] == 0 and second["resumed_sequence"] == 1
    assert second["checkpoint"] == 0 and second["sequence"] == 2
    blob = reference["blobs"][1]
    assert image.read_bytes()[SLOT:SLOT + len(blob)] == blob       # slot B
    got = [np.float32(v) for v in first["losses"] + second["losses"]]
    assert got == [np.float32(v) for v in reference["losses"]]
    assert second["scores"] == reference["scores"]
    # the host reads the device's newest checkpoint back and exports it: the plain model
    # predicts in TFLM what the device predicted
    from tflite_train import tflite_io
    from tflite_train.runtime.tflm import TFLMInterpreter
    newest = Path(str(image) + ".newest")
    assert newest.read_bytes() == blob
    tuned = tmp_path / "tuned.tflite"
    assert main(["export", str(model_dir / "example.train.tflite"), "--state", str(newest),
                 "-o", str(tuned)]) == 0
    it = TFLMInterpreter(tuned.read_bytes(), preserve_all=False)
    exported = tflite_io.load(tuned)
    shape = exported.tensors[exported.inputs[0]].shape
    it.invoke([np.array(second["sample"], np.int8).reshape(shape)])
    assert it.output(0).ravel().tolist() == second["scores"]


def test_the_example_built_with_its_makefile_trains_and_resumes_like_the_c_engine(
        model_dir, tmp_path, reference):
    out = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(APP), "WHEEL_ABI=1", f"MODEL_DIR={model_dir}",
                    f"OUT={out}", f"CXXFLAGS={STRICT}",
                    "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror", str(out / "libtrainer.so")],
                   check=True)
    run_example(out / "libtrainer.so", model_dir, tmp_path, reference)


def test_the_example_trains_a_batched_model_and_resumes_it_mid_batch(tmp_path):
    """augment --batch 3: the checkpoint after FIRST = 5 training Invokes is mid-batch (two
    gradients in the accumulators), so the resumed device finds each accumulator through
    the sink (trainer.cc's Locate, TT_CHECKPOINT_ACCUMULATOR) and must restore it for the
    losses after the reboot to equal the uninterrupted --engine c run; the checkpoints'
    bytes, accumulators included, equal the host's."""
    from tflite_train import checkpoint, tflite_io
    model_dir = _model_dir(tmp_path / "model", "--batch", "3") if (tmp_path / "model").mkdir() \
        is None else None
    graph = tflite_io.load(model_dir / "example.train.tflite")
    assert any(r.kind == checkpoint.ACCUMULATOR for r in checkpoint.layout(graph))
    assert FIRST % 3 and THEN % 3 == 1
    out = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(APP), "WHEEL_ABI=1", f"MODEL_DIR={model_dir}",
                    f"OUT={out}", f"CXXFLAGS={STRICT}",
                    "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror", str(out / "libtrainer.so")],
                   check=True)
    run_example(out / "libtrainer.so", model_dir, tmp_path, _reference(model_dir))


def test_the_example_built_with_cmake_trains_and_resumes_like_the_c_engine(
        model_dir, tmp_path, reference):
    require_tool(shutil.which("cmake") is not None, "cmake")
    build = tmp_path / "cmake"
    subprocess.run(["cmake", "-S", str(APP), "-B", str(build), "-DTFLITE_TRAIN_WHEEL_ABI=ON",
                    f"-DMODEL_DIR={model_dir}", f"-DCMAKE_CXX_FLAGS={STRICT}",
                    "-DCMAKE_C_FLAGS=-O2 -Wall -Wextra -Werror"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j", "2"], check=True,
                   capture_output=True)
    run_example(build / "libtrainer.so", model_dir, tmp_path, reference)


def test_the_glue_and_the_example_compile_for_cortex_m7(model_dir, tmp_path):
    """A device build: arm-none-eabi-g++ for the Cortex-M7, warnings as errors. (TFLM's own
    headers are not installable here, so wheel_abi stands in for them; what this catches is
    the glue's portability, e.g. TFLM's int dims against the kernels' int32_t, which is
    long on arm-none-eabi.)"""
    gxx = shutil.which("arm-none-eabi-g++")
    cxx_headers = Path("/usr/include/newlib/c++")
    require_tool(gxx is not None and cxx_headers.exists(),
                 "arm-none-eabi-g++ with libstdc++-arm-none-eabi-dev")
    include = tmp_path / "include"                     # flexbuffers.h without host libc
    include.mkdir()
    (include / "flatbuffers").symlink_to("/usr/include/flatbuffers")
    kernels = ROOT / "micro_kernels"
    flags = [*STRICT.split(), *c_kernels.cortex_m7_flags(), "-ffp-contract=off",
             "-DTT_TFLM_WHEEL_ABI",
             "-DFLATBUFFERS_LOCALE_INDEPENDENT=0", "-I", str(kernels / "include"),
             "-I", str(kernels / "tflm"), "-I", str(kernels / "tflm" / "wheel_abi"),
             "-isystem", str(include), "-I", str(model_dir), "-c"]
    for src in (kernels / "tflm" / "tt_tflm_ops.cc", APP / "trainer.cc"):
        subprocess.run([gxx, *flags, str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                       check=True)


def test_the_wheel_matches_the_declared_app_api():
    """What micro_kernels/tflm/wheel_abi declares about the wheel's own classes."""
    wheel_elf.require_binutils()
    slots = wheel_elf.vtable_slots("tflite::PythonOpsResolver", 5)
    for slot, name in enumerate(["FindOp(tflite::BuiltinOperator)", "FindOp(char const*)",
                                 "GetOpDataParser(tflite::BuiltinOperator)",
                                 "~", "~"]):
        assert f"::{name}" in slots[slot], \
            f"MicroOpResolver vtable slot {slot} is {slots[slot]!r}, wheel_abi declares {name}"
    # MicroInterpreter: wheel_abi reserves 1024 bytes for it; the wheel allocates 0xf0
    body = wheel_elf.function_body(
        "tflite::InterpreterWrapper::InterpreterWrapper(_object*, std::vector<std::__cxx11::"
        "basic_string<char, std::char_traits<char>, std::allocator<char> >, std::allocator<"
        "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > > "
        "const&, unsigned long, int, tflite::InterpreterConfig, unsigned long)")
    sizes = [int(s, 16) for s in re.findall(
        r"mov +\$0x([0-9a-f]+),%edi\n[^\n]*call[^\n]*<operator new\(unsigned long\)@plt>\n"
        r"(?:[^\n]*\n){0,12}?[^\n]*call[^\n]*MicroInterpreter::MicroInterpreter", body)]
    assert sizes and max(sizes) <= 1024, sizes


# -- tflite-train header ------------------------------------------------------------------

def test_header_lists_the_interface_and_compiles_as_c(model_dir, tmp_path):
    text = (model_dir / "model_train.h").read_text()
    for needle in ("#define TT_MODEL_LABEL_INPUT 1", "#define TT_MODEL_LOSS_OUTPUT 1",
                   "#define TT_MODEL_SAMPLE_BYTES 1024",
                   "#define TT_MODEL_CLASSES 4", "TT_MODEL_ARENA_BYTES",
                   "tt_model_trained[TT_MODEL_TRAINED_TENSORS]", "g_model_len"):
        assert needle in text, needle
    from tflite_train import tflite_io
    graph = tflite_io.load(model_dir / "example.train.tflite")
    init = next(op for op in graph.operators if op.kind == "TT_INIT")
    params = sorted(init.inputs[1::2])
    assert f"#define TT_MODEL_TRAINED_TENSORS {len(params)}" in text
    for i in params:
        assert f"  {{{i}, " in text
    # the arena: to the byte what plan computes for a 32-bit TFLM (the figure the rig
    # checks against TFLM's own count), or the tail and the room TFLM plans the head in
    # where that is more (this small head: tflm_memory.planning_room); the wheel's on
    # 64-bit hosts, larger
    from tflite_train import tflm_memory
    data = (model_dir / "example.train.tflite").read_bytes()
    a = tflm_memory.account(graph, len(data), "cortex-m7")
    need = max(a["sram_total"], a["sram_total"] - a["arena"]
               + tflm_memory.planning_room(graph, "cortex-m7"))
    a32 = -(-need // 16) * 16
    a64 = int(re.search(r"#define TT_MODEL_ARENA_BYTES_64 (\d+)", text)[1])
    assert f"#define TT_MODEL_ARENA_BYTES_32 {a32}\n" in text and a32 < a64
    momentum = [i for i, t in enumerate(graph.tensors) if t.is_variable and i not in params
                and t.dtype == "float32"]           # not the head's (int8) residual
    assert momentum and not any(f"  {{{i}, " in text for i in momentum)
    # the checkpoint: the model's identity and every region, momentum buffers included
    from tflite_train import checkpoint
    model = (model_dir / "example.train.tflite").read_bytes()
    regions = checkpoint.layout(graph)
    assert f"#define TT_MODEL_ID 0x{checkpoint.model_id(model):016x}ull" in text
    assert f"#define TT_MODEL_CHECKPOINT_BYTES {checkpoint.blob_bytes(regions)} " in text
    table = re.findall(r"^  \{(\d+), (\d+), (\d+)\},   /\*", text, re.M)
    assert [tuple(map(int, row)) for row in table] == [(r.kind, r.id, r.nbytes) for r in regions]
    # 5: the new head's rounding residual (augment's default)
    assert {r.kind for r in regions} == {1, 2, 3, 5} and {r.id for r in regions if r.kind == 2} == \
        set(momentum)
    src = tmp_path / "use.c"
    src.write_text('#include "model_train.h"\n'
                   "int main(void) { return (int)(g_model_len + tt_model_trained[0].bytes); }\n")
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(model_dir),
                    "-c", str(src), "-o", str(tmp_path / "use.o")], check=True)


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tflite-train: error:"), err
    return err[0]


def test_header_refuses_bad_input(model_dir, tmp_path, capsys):
    model = model_dir / "example.train.tflite"
    assert "not a training model" in _one_line_error(
        capsys, ["header", str(EXAMPLE), "-o", str(tmp_path / "x.h")])
    assert "would overwrite it" in _one_line_error(
        capsys, ["header", str(model), "-o", str(model)])
    assert "not a C identifier" in _one_line_error(
        capsys, ["header", str(model), "-o", str(tmp_path / "x.h"), "--array", "1bad"])
    assert "no such file" in _one_line_error(
        capsys, ["header", str(tmp_path / "missing.tflite"), "-o", str(tmp_path / "x.h")])
    assert not (tmp_path / "x.h").exists()


def _m7_glue_symbols(tmp_path: Path, src: Path, extra: list[str]) -> dict[str, bytes]:
    """Each function of the glue file built for the Cortex-M7 at -O2 (wheel_abi for TFLM's
    headers, as above): name -> its code bytes."""
    include = tmp_path / "include"
    if not include.exists():
        include.mkdir()
        (include / "flatbuffers").symlink_to("/usr/include/flatbuffers")
    kernels = ROOT / "micro_kernels"
    obj = tmp_path / f"{src.stem}{''.join(extra)}.o"
    subprocess.run(["arm-none-eabi-g++", *STRICT.split(), *c_kernels.cortex_m7_flags(),
                    "-ffp-contract=off", "-ffunction-sections", "-DTT_TFLM_WHEEL_ABI",
                    "-DFLATBUFFERS_LOCALE_INDEPENDENT=0", *extra,
                    "-I", str(kernels / "include"), "-I", str(kernels / "tflm"),
                    "-I", str(kernels / "tflm" / "wheel_abi"), "-isystem", str(include),
                    "-c", str(src), "-o", str(obj)], check=True)
    dump = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", "-r",
                           str(obj)], check=True, capture_output=True, text=True).stdout
    funcs: dict[str, list[str]] = {}
    name = None
    for line in dump.splitlines():
        m = re.match(r"^[0-9a-f]+ <(\S+)>:$", line)
        if m:
            name = m.group(1)
            funcs[name] = []
        elif name and re.match(r"^\s+[0-9a-f]+:\s", line):
            # the instruction without its address (branch targets inside the function are
            # offsets) nor a literal's value (string offsets in merged sections: the
            # relocation line that follows names what it points to)
            funcs[name].append(re.sub(r"^\.word\s+0x[0-9a-f]+", ".word",
                                      line.split(":", 1)[1].strip()))
    return {k: "\n".join(v).encode() for k, v in funcs.items()}


@pytest.mark.parametrize("name", ["tt_tflm_forward_ops.cc", "tt_tflm_ops.cc"])
def test_glue_set_up_code_is_for_size_and_step_code_unchanged(tmp_path, name):
    """Round 23 (flash23): the glue's Init and Prepare code is built for size (TT_SETUP and
    tt_tflm_prepare.h's Prepare class, GCC optimize("Os")) to leave the board's flash to new
    features. What runs in a step must be the same code as at the build's level: every Invoke
    (and the option readers it calls) disassembles to the same instructions with and
    without it, and the set-up code is clearly smaller."""
    require_tool(shutil.which("arm-none-eabi-g++") is not None
                 and Path("/usr/include/newlib/c++").exists(),
                 "arm-none-eabi-g++ with libstdc++-arm-none-eabi-dev")
    src = ROOT / "micro_kernels" / "tflm" / name
    small = _m7_glue_symbols(tmp_path, src, [])
    fast = _m7_glue_symbols(tmp_path, src, ["-DTT_TFLM_SETUP_AT_BUILD_LEVEL"])
    step = [k for k in fast if "Invoke" in k]
    assert step

    def calls(code: bytes) -> list[str]:
        return sorted(re.findall(r"R_ARM_THM_(?:CALL|JUMP24)\s+(\S+)", code.decode()))

    for k in step:
        if small.get(k) != fast[k]:
            # only where a helper the set-up code shared with Invoke (e.g. the wheel ABI's
            # EvalInput) lost its other callers and is now inlined: fewer calls, none new
            left = calls(small[k])
            assert len(left) < len(calls(fast[k])), k
            assert set(left) <= set(calls(fast[k])), k
    if name == "tt_tflm_forward_ops.cc":
        assert all(small[k] == fast[k] for k in step)
    size = lambda funcs: sum(v.count(b"\n") + 1 for v in funcs.values())  # noqa: E731
    # instructions, not bytes (arm-none-eabi-gcc 12.2: forward ops 6,965 -> 5,840, ops 16,288
    # -> 15,701); the forward ops' margin fails without TT_SETUP on either Prepare
    fewer = {"tt_tflm_forward_ops.cc": 1050, "tt_tflm_ops.cc": 500}[name]
    assert size(small) <= size(fast) - fewer, (size(small), size(fast))


@pytest.mark.parametrize("scheme, batch", [("last:2", 3), ("bias-only", 1), ("bias-only", 3)])
def test_the_headers_64_bit_arena_allocates_the_model(scheme, batch):
    """TT_MODEL_ARENA_BYTES_64 is an arena the wheel's TFLM allocates the model in (before
    review24 it was TFLM's arena use rounded up to 1 KB, too small for these three: TFLM
    plans the head in room the head alone need not cover), and 1 KB less is not."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_train import augment, c_header, tflite_io
    from tflite_train.autodiff import Hyper
    from tflite_train.runtime.tflm import captured_c_output
    from tflite_train.runtime.tflm_engine import REGISTERER, training_arena_usage
    g = augment.augment(tflite_io.load(EXAMPLE), scheme, 4,
                        Hyper(momentum=0.5, decay_steps=8, batch=batch)).graph
    model = tflite_io.serialize(g)
    size = c_header.arena_bytes(model)

    def allocates(n: int) -> bool:
        try:
            with captured_c_output():
                runtime.Interpreter.from_bytes(model, custom_op_registerers=[REGISTERER],
                                               arena_size=n)
            return True
        except RuntimeError:
            return False
    assert allocates(size) and size % 1024 == 0
    usage = training_arena_usage(model)
    assert size - 1024 < usage["total"] or not allocates(size - 1024)
    # the planning room's formula (which the 32-bit header figure uses, with the M7's
    # structs) on the wheel's: enough, and within 256 B (the tail TFLM keeps after planning)
    from tflite_train import tflm_memory
    room = usage["tail"] + tflm_memory.planning_room(tflite_io.parse(model), "wheel-x86_64")
    assert room > usage["total"] and allocates(room) and not allocates(room - 256)


def test_header_never_tries_an_arena_that_crashes_tflm(zoo, tmp_path):
    """The zoo's strided conv, last:1: its usage rounded up to 1 KB (5,120 B) is too small
    for TFLM's planner, which then segfaulted the header command (found by running every
    command on the zoo); sizes are tried from where planning fits. In a child process, so
    that a crash fails this test instead of ending the session."""
    model = tmp_path / "strided.train.tflite"
    assert main(["augment", str(zoo["conv_strided"]), "-o", str(model), "--num-classes", "3",
                 "--scheme", "last:1"]) == 0
    run = subprocess.run([sys.executable, "-m", "tflite_train.cli", "header", str(model),
                          "-o", str(tmp_path / "h.h")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, (run.returncode, run.stderr[-400:])
    size = int(re.search(r"TT_MODEL_ARENA_BYTES_64 (\d+)", (tmp_path / "h.h").read_text())[1])
    assert size == 6144


def test_a_batched_fused_update_stacks_one_staging(tmp_path):
    """A fused weight update of batch > 1 runs the plain gradient (WeightGrad) from its own
    Invoke, whose frame already holds the int8 kernels' 9 KB DSP staging (GradStage): the
    gradient must use that one, not a second in its own frame (review24: 9,384 + 9,344 B of
    frames on the M7 for a batched int8 depthwise update, the rig's painted stack 12.1 ->
    19.6 KB at batch 3). -fstack-usage of the glue built for the Cortex-M7."""
    require_tool(shutil.which("arm-none-eabi-g++") is not None
                 and Path("/usr/include/newlib/c++").exists(),
                 "arm-none-eabi-g++ with libstdc++-arm-none-eabi-dev")
    include = tmp_path / "include"
    include.mkdir()
    (include / "flatbuffers").symlink_to("/usr/include/flatbuffers")
    kernels = ROOT / "micro_kernels"
    obj = tmp_path / "ops.o"
    subprocess.run(["arm-none-eabi-g++", *STRICT.split(), *c_kernels.cortex_m7_flags(),
                    "-ffp-contract=off", "-fstack-usage", "-DTT_TFLM_WHEEL_ABI",
                    "-DFLATBUFFERS_LOCALE_INDEPENDENT=0", "-I", str(kernels / "include"),
                    "-I", str(kernels / "tflm"), "-I", str(kernels / "tflm" / "wheel_abi"),
                    "-isystem", str(include), "-c", str(kernels / "tflm" / "tt_tflm_ops.cc"),
                    "-o", str(obj)], check=True)
    frames = {}
    for line in obj.with_suffix(".su").read_text().splitlines():
        where, size, _ = line.rsplit("\t", 2)
        m = re.search(r"::(\w+)\(.*kLayer = [\w:<>]*::(k\w+)", where)
        if m:
            frames[m.groups()] = max(frames.get(m.groups(), 0), int(size))
    stage = 9216                                   # kGradStageBytes
    assert frames[("WeightUpdateInvoke", "kDepthwise")] >= stage       # the one staging
    for layer in ("kConv", "kDepthwise", "kFullyConnected"):
        assert frames[("WeightGrad", layer)] < 1024, (layer, frames)
