"""benchmarks/tflm_rig.py builds and runs the example TFLM app on the Cortex-M7 rig against
TFLM's own sources, which no registry installs, so the suite cannot run it (its docstring
says so; benchmarks/RESULTS.md has its measurements). What the suite can check: without
them it stops with one line, exit 2."""
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "tflm_rig.py"


def stderr_of(*args: str) -> str:
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_without_tflm_sources_it_stops_with_one_line(tmp_path):
    assert "--tflm-src DIR is required" in stderr_of()
    assert f"--tflm-src {tmp_path}: no tensorflow/lite/micro/micro_interpreter.h" in \
        stderr_of("--tflm-src", str(tmp_path))


def test_a_negative_extra_code_stops_with_one_line():
    assert "--extra-code must be 0 or more bytes" in stderr_of("--extra-code", "-1")
