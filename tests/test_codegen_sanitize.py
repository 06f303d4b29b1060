"""Generated programs under AddressSanitizer and UndefinedBehaviorSanitizer.

The host tests (test_codegen.py) compare a program's bits with --engine c; an access past
`tt_arena` or a sample that happens to land in mapped memory can leave those bits intact, or
crash only now and then. Here tt_model.c and the kernels are compiled with ASan + UBSan
(codegen/host.py build_sanitized, micro_kernels' `sanitize` target) and a small driver
(codegen_sanitize_main.c) runs tt_model_init, a few training steps on seeded samples and an
inference; the first sanitizer report fails the test. The cases are the programs whose arena
aliases most: int8 input gradients in two passes with their kept accumulators in lent free
arena and the DSP staging beside them (the person detector bias-only and sparse, the zoo's
MobileNet), float32 gradients, a `--input rows` program, MCUNet's 99kb scheme.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_tool, sanitizer_runtimes, shared_model
from test_codegen import SCHEMES, mcunet, ratio_scheme, training_model
from tflite_train.autodiff import Hyper
from tflite_train.codegen import check, generate, host
from tflite_train.demo import EXAMPLE

DRIVER = ROOT / "tests" / "codegen_sanitize_main.c"
# every report fatal; leaks are not the question (a generated program has no heap)
ENV = {"ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
       "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
REPORT = re.compile(r"ERROR: AddressSanitizer.*|\S+:\d+:\d+: runtime error:.*")


@lru_cache(maxsize=1)
def sanitizers_work() -> bool:
    """gcc links and runs a program with -fsanitize=address,undefined (libasan, libubsan)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "t.c"), os.path.join(d, "t")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        try:
            res = subprocess.run(["gcc", *host.SANITIZE, "-o", exe, src], capture_output=True)
            return res.returncode == 0 and subprocess.run(
                [exe], env={**os.environ, **ENV}, capture_output=True).returncode == 0
        except OSError:
            return False


def first_report(output: str) -> str:
    """The sanitizer's first report line, the first frame in the program or a kernel and
    where the address lies (ASan: "... is located 8 bytes after global variable 'tt_arena'")."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        report = REPORT.search(line)
        if report:
            frame = next((f.strip() for f in lines[i + 1:] if re.match(r"\s*#\d+ .* in tt_", f)),
                         None)
            where = next((f.strip() for f in lines[i + 1:] if " is located " in f), None)
            return "; ".join(filter(None, [report.group(0), frame and f"at {frame}", where]))
    return output.strip()[-800:]


def run_sanitized(model, tmp_path, steps=3, input_rows=False, seed=1):
    """Generates MODEL's program, builds it sanitized, runs STEPS steps; returns the losses."""
    out = tmp_path / "gen"
    program, _ = generate(model, out, input_rows=input_rows)
    exe = host.build_sanitized(out, DRIVER)
    xs, labels = check.samples(program, steps, seed=seed)
    data = tmp_path / "samples.bin"
    data.write_bytes(xs.tobytes() + labels.astype("<i4").tobytes())
    rows = [str(xs.shape[-3])] if input_rows else []
    res = subprocess.run([str(exe), str(data), str(steps), *rows], capture_output=True,
                         text=True, env={**os.environ, **ENV}, timeout=300)
    if res.returncode != 0 or REPORT.search(res.stderr):   # (a report that did not halt)
        pytest.fail(first_report(res.stderr + res.stdout), pytrace=False)
    losses = [float(line.split()[1]) for line in res.stdout.splitlines()
              if line.startswith("loss ")]
    assert len(losses) == steps and np.all(np.isfinite(losses)), res.stdout
    return program


@pytest.fixture(autouse=True)
def _sanitizers():
    require_tool(sanitizers_work(), "gcc with -fsanitize=address,undefined (libasan, libubsan)")


@pytest.mark.parametrize("scheme", ["bias-only", "sparse"])
def test_person_detector_int8_under_asan(scheme, tmp_path):
    """The case of 7055618: bias-only's depthwise int8 input gradients both lend their kept
    accumulators the free arena and stage for the DSP kernels."""
    spec = "bias-only" if scheme == "bias-only" else str(SCHEMES / "person_detect_sparse.json")
    model = training_model(tmp_path, shared_model("person_detect"), spec, classes=10,
                           hyper=Hyper(grad="int8"))
    run_sanitized(model, tmp_path, steps=2)


@pytest.mark.parametrize("grad", ["int8", "float32"])
def test_zoo_mobilenet_under_asan(grad, zoo, tmp_path):
    model = training_model(tmp_path, zoo["mobile"], "full",
                           hyper=Hyper(grad=grad, momentum=0.5, decay_steps=5, seed=3))
    program = run_sanitized(model, tmp_path)
    if grad == "int8":          # two-pass input gradients keeping accumulators in lent arena
        assert any(b.name.startswith("kept@") for b in program.plan.buffers)


@pytest.mark.parametrize("grad", ["int8", "float32"])
def test_zoo_mobilenet_batch_under_asan(grad, zoo, tmp_path):
    """augment --batch 3 (test_codegen_batch.py): the fused updates' plain gradients in arena
    scratch, the accumulators, 4 steps (one update, one Invoke into the next batch)."""
    model = training_model(tmp_path, zoo["mobile"], "full",
                           hyper=Hyper(grad=grad, momentum=0.5, batch=3, seed=3))
    assert run_sanitized(model, tmp_path, steps=4).batched


def test_input_rows_under_asan(tmp_path):
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25)], n_bias=4)
    model = training_model(tmp_path, EXAMPLE, scheme, hyper=Hyper(grad="int8", momentum=0.5))
    run_sanitized(model, tmp_path, input_rows=True)


def test_mcunet_99kb_int8_under_asan(tmp_path, capsys):
    """Split filters, fused updates, the streamed stem and two-pass input gradients in a
    96 KB arena."""
    model = mcunet(tmp_path, "int8")
    capsys.readouterr()
    run_sanitized(model, tmp_path, steps=2)


ENGINE_C_RUN = """
import sys
import numpy as np
from tflite_train.codegen import check, load
from tflite_train.runtime import build
program = load(sys.argv[1])
xs, labels = check.samples(program, 3, seed=1)
run = check.reference(program, xs, labels)
assert np.all(np.isfinite(run.loss_values())), run.loss_values()
print(build.build_dir())
"""


def test_engine_c_int8_under_asan(zoo, tmp_path):
    """--engine c's kernel library built with the sanitizers (CFLAGS: its own cache folder)
    and loaded into a Python with ASan's runtime preloaded: three steps and an inference of
    int8 input gradients in one and two passes, their scratch and the arrays numpy allocates
    (ASan's malloc) all checked."""
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(grad="int8"))
    runtimes = sanitizer_runtimes()
    require_tool(runtimes is not None, "gcc's sanitizer runtimes (libasan, libubsan)")
    env = {**os.environ, **ENV, "CFLAGS": " ".join([*host.FLAGS, *host.SANITIZE]),
           "LD_PRELOAD": ":".join(runtimes)}
    res = subprocess.run([sys.executable, "-c", ENGINE_C_RUN, str(model)], capture_output=True,
                         text=True, env=env, timeout=600)
    if res.returncode != 0 or REPORT.search(res.stderr):
        pytest.fail(first_report(res.stderr + res.stdout), pytrace=False)
    library = Path(res.stdout.split()[-1]) / "libtt_kernels.so"
    assert b"libasan.so" in library.read_bytes(), f"{library} is not built with ASan"
