"""The kernel benchmarks' shared rig program (benchmarks/rig_timing.py: kernel_program,
input_grad_program, measure_kernels): dw_weight_grad.py --mask and pw_input_grad.py --sparse
print the hashes they printed before round 19 (dw_input_grad.py is pw_input_grad.py's
program with another dy and work buffer). A hash folds every call's
outputs, so it holds while the program draws the same inputs, makes the same calls and
folds what each benchmark folded, and while the kernels keep their bits (their instruction
counts are free to change, and are not checked)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import require_tool
from tflite_train.codegen import rig

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _measure(module: str, *args):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return getattr(__import__(module), "measure"), args
    finally:
        sys.path.remove(str(BENCHMARKS))


# (benchmark, its measure's arguments after root and tmp, the hash it prints): every kind
# of fold (float bytes, int8, one float's word), a dy reshaped after its draw, both masks
CASES = [("dw_weight_grad", (True,), 13396349), ("pw_input_grad", (True,), 5873974)]


@pytest.mark.parametrize("module, args, expected", CASES, ids=[c[0] for c in CASES])
def test_kernel_benchmarks_print_their_recorded_hashes(module, args, expected, tmp_path,
                                                       capsys):
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    measure, args = _measure(module, *args)
    measure(BENCHMARKS.parent / "micro_kernels", tmp_path, *args)
    assert capsys.readouterr().out.splitlines()[0] == f"hash {expected}"


@pytest.mark.parametrize("pattern, count", [("weight grad", 54), ("no such row", 0)])
def test_grad_dsp_profile_takes_exactly_one_row(pattern, count, tmp_path):
    """mcu_grad_dsp.py --profile REGEX traces one call: a pattern that matches several rows or
    none is a one-line error before anything is built."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        profile = __import__("mcu_grad_dsp").profile
    finally:
        sys.path.remove(str(BENCHMARKS))
    with pytest.raises(SystemExit) as e:
        profile(tmp_path, pattern, "")
    assert str(e.value) == f"--profile {pattern!r} matches {count} rows, not one"
