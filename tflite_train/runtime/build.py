"""Building micro_kernels/ for the host: `make` decides what is stale, a file lock keeps two
processes (pytest workers, two CLI runs) from writing the same library at once."""
from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

from ..errors import TTError

MICRO_KERNELS = Path(__file__).resolve().parents[2] / "micro_kernels"
BUILD = MICRO_KERNELS / "build"


def micro_kernels_library(target: str, filename: str) -> Path:
    """Runs `make -C micro_kernels TARGET` and returns build/FILENAME."""
    if not (MICRO_KERNELS / "Makefile").exists():
        raise TTError(f"{MICRO_KERNELS}: the C kernels' sources are missing")
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        res = subprocess.run(["make", "-s", "-C", str(MICRO_KERNELS), target],
                             capture_output=True, text=True)
    if res.returncode != 0:
        raise TTError(f"building micro_kernels ({target}) failed: "
                      f"{(res.stderr or res.stdout).strip()[-500:]}")
    return BUILD / filename
