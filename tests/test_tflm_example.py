"""examples/tflm_app: the C++ trainer a TFLM application uses, built with its Makefile and
with CMake exactly as a user would, except against micro_kernels/tflm/wheel_abi (the pinned
wheel's TFLM, declared) instead of TFLM's headers, then run against the real TFLM in the
wheel. Its losses, predictions and saved parameters must equal --engine c bit for bit, and,
so that a bug in the C kernels' arithmetic cannot hide behind C agreeing with itself, the
numpy engine's (integers identical, floats within conftest.numpy_c_close).

Also `tflite-train header`, which writes the header the example is built with.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import wheel_elf
from conftest import ROOT, numpy_c_close, require_tool
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.demo import EXAMPLE

APP = ROOT / "examples" / "tflm_app"
STRICT = ("-std=c++17 -O2 -Wall -Wextra -Werror -fno-exceptions -fno-rtti "
          "-fno-threadsafe-statics")

# Runs in a child process: the wheel's _runtime.so is made global so that the example's
# references to TFLM resolve to it, then the example is driven through its C API.
DRIVER = r"""
import ctypes, json, os, sys
import numpy as np
from pathlib import Path
import tflite_micro.python.tflite_micro.runtime as rt
from tflite_train import tflite_io
from tflite_train.runtime.numpy_exec import Executor

ctypes.CDLL(str(Path(rt.__file__).parent / "_runtime.so"), mode=ctypes.RTLD_GLOBAL | os.RTLD_NOLOAD)
lib = ctypes.CDLL(sys.argv[1])
graph = tflite_io.load(sys.argv[2])
ref = Executor(graph, "c")
independent = Executor(graph, "numpy")
assert lib.tt_trainer_begin() == 0, "tt_trainer_begin failed"
rng = np.random.default_rng(0)
shape = graph.tensors[graph.inputs[0]].shape
classes = graph.tensors[graph.outputs[0]].size
losses = []
for i in range(8):
    x = rng.integers(-128, 128, shape).astype(np.int8)
    loss = ctypes.c_float()
    assert lib.tt_trainer_step(x.ctypes.data_as(ctypes.c_void_p), i % classes,
                               ctypes.byref(loss)) == 0
    want = ref.invoke([x, np.array([i % classes], np.int32)])[graph.outputs[-1]][0]
    other = independent.invoke([x, np.array([i % classes], np.int32)])[graph.outputs[-1]][0]
    losses.append([float(loss.value), float(want), float(other)])
scores = np.zeros(classes, np.int8)
assert lib.tt_trainer_predict(x.ctypes.data_as(ctypes.c_void_p),
                              scores.ctypes.data_as(ctypes.c_void_p)) == 0
want_scores = ref.invoke([x, np.array([-1], np.int32)])[graph.outputs[0]].ravel()
other_scores = independent.invoke([x, np.array([-1], np.int32)])[graph.outputs[0]].ravel()
n = lib.tt_trainer_state_bytes()
state = (ctypes.c_uint8 * n)()
assert lib.tt_trainer_save(state) == 0
saved = bytes(state)
init = next(op for op in graph.operators if op.kind == "TT_INIT")
want_state = b"".join(ref.variables[k].tobytes() for k in sorted(init.inputs[1::2]))
# the numpy engine's variables, integers and floats apart; moved: changed since TT_INIT
c_vars = {graph.tensors[k].name: ref.variables[k].tolist() for k in ref.variables}
other_vars = {graph.tensors[k].name: independent.variables[k].tolist()
              for k in independent.variables}
moved = sum(int(np.count_nonzero(ref.variables[v] != graph.tensors[c].data))
            for c, v in zip(init.inputs[0::2], init.inputs[1::2]))
# restore: train on, put the saved state back, read it out again
x = rng.integers(-128, 128, shape).astype(np.int8)
assert lib.tt_trainer_step(x.ctypes.data_as(ctypes.c_void_p), 0, ctypes.byref(loss)) == 0
assert lib.tt_trainer_restore(state) == 0
again = (ctypes.c_uint8 * n)()
assert lib.tt_trainer_save(again) == 0
print(json.dumps({"losses": losses, "scores": scores.tolist(),
                  "want_scores": want_scores.tolist(), "other_scores": other_scores.tolist(),
                  "state_equal": saved == want_state, "state_bytes": n,
                  "restored": bytes(again) == saved, "c_vars": c_vars,
                  "numpy_vars": other_vars, "moved": moved}))
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A training model of the built-in example (momentum, so optimizer state is saved too)
    and its header from `tflite-train header`."""
    d = tmp_path_factory.mktemp("model")
    model = d / "example.train.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4",
                 "--scheme", "last:2", "--momentum", "0.5"]) == 0
    assert main(["header", str(model), "-o", str(d / "model_train.h"), "--array",
                 "g_model"]) == 0
    return d


def run_example(library, model_dir) -> dict:
    res = subprocess.run([sys.executable, "-c", DRIVER, str(library),
                          str(model_dir / "example.train.tflite")], capture_output=True,
                         text=True, cwd=str(ROOT), timeout=300)
    assert res.returncode == 0, f"the example failed (exit {res.returncode}):\n" \
                                f"{res.stderr[-3000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def check(result: dict) -> None:
    for got, want, independent in result["losses"]:
        assert np.float32(got) == np.float32(want), result["losses"]
        assert numpy_c_close(independent, want), result["losses"]
    assert result["scores"] == result["want_scores"] == result["other_scores"]
    assert result["state_equal"] and result["restored"]
    assert result["state_bytes"] > 0 and result["moved"] > 0
    for name, value in result["c_vars"].items():
        other = np.asarray(result["numpy_vars"][name])
        if other.dtype.kind == "f":
            assert numpy_c_close(other, value), name
        else:
            assert np.array_equal(other, value), name


def test_the_example_built_with_its_makefile_trains_like_the_c_engine(model_dir, tmp_path):
    out = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(APP), "WHEEL_ABI=1", f"MODEL_DIR={model_dir}",
                    f"OUT={out}", f"CXXFLAGS={STRICT}",
                    "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror", str(out / "libtrainer.so")],
                   check=True)
    check(run_example(out / "libtrainer.so", model_dir))


def test_the_example_built_with_cmake_trains_like_the_c_engine(model_dir, tmp_path):
    require_tool(shutil.which("cmake") is not None, "cmake")
    build = tmp_path / "cmake"
    subprocess.run(["cmake", "-S", str(APP), "-B", str(build), "-DTFLITE_TRAIN_WHEEL_ABI=ON",
                    f"-DMODEL_DIR={model_dir}", f"-DCMAKE_CXX_FLAGS={STRICT}",
                    "-DCMAKE_C_FLAGS=-O2 -Wall -Wextra -Werror"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j", "2"], check=True,
                   capture_output=True)
    check(run_example(build / "libtrainer.so", model_dir))


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
    flags = [*STRICT.split(), "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16",
             "-mfloat-abi=hard", "-ffp-contract=off", "-DTT_TFLM_WHEEL_ABI",
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
    import re
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
    momentum = [i for i, t in enumerate(graph.tensors) if t.is_variable and i not in params]
    assert momentum and not any(f"  {{{i}, " in text for i in momentum)
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
