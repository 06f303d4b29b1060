"""benchmarks/mcu_forward.py --layers: one kind of layer measured layer by layer; its refusals."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "mcu_forward.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_layers_refuses_to_overwrite_the_whole_runs_results():
    res = run("--layers", "conv 1x1", "--json", str(ROOT / "benchmarks" / "mcu_forward.json"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].endswith(
        "--layers writes a part of the run: not to benchmarks/mcu_forward.json")
