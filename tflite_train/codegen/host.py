"""A generated program built for the host and driven through ctypes: the x86 half of the
check that it trains exactly as `--engine c` does. tt_model.c is compiled warning-free
(-Werror) and linked with the kernels' position-independent objects, which micro_kernels'
Makefile keeps up to date (so a test suite compiles the kernels once, not per program; the
folder's own `make shared` builds the same library from the sources)."""
from __future__ import annotations

import ctypes as C
import subprocess
from pathlib import Path

import numpy as np

from ..errors import TTError
from ..runtime.build import MICRO_KERNELS, micro_kernels_library
from .check import Run


class Region(C.Structure):
    """tt_checkpoint_region (tt_checkpoint.h)."""
    _fields_ = [("kind", C.c_uint32), ("id", C.c_int32), ("data", C.c_void_p),
                ("bytes", C.c_uint32)]


FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-fast-math"]


def kernel_objects() -> list[Path]:
    """micro_kernels' sources as -fPIC objects (build/pic/), made or refreshed by its Makefile."""
    return [micro_kernels_library(f"build/pic/{src.stem}.o", f"pic/{src.stem}.o")
            for src in sorted((MICRO_KERNELS / "src").glob("*.c"))]


def build(folder: Path) -> Path:
    out = folder / "build" / "libtt_model.so"
    out.parent.mkdir(exist_ok=True)
    res = subprocess.run(["gcc", *FLAGS, "-fPIC", "-shared", "-I", str(folder), "-I",
                          str(MICRO_KERNELS / "include"), "-o", str(out),
                          str(folder / "tt_model.c"), *map(str, kernel_objects())],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise TTError(f"building {folder} for the host failed: "
                      f"{(res.stderr or res.stdout).strip()[-800:]}")
    return out


class HostProgram:
    def __init__(self, folder: str | Path, regions: int):
        self.lib = C.CDLL(str(build(Path(folder))))
        self.lib.tt_train_step.argtypes = [C.c_void_p, C.c_int32, C.POINTER(C.c_float)]
        self.lib.tt_predict.argtypes = [C.c_void_p, C.c_void_p]
        self.table = (Region * regions).in_dll(self.lib, "tt_model_checkpoint")
        self.lib.tt_model_init()

    def train_step(self, sample: np.ndarray, label: int) -> np.float32:
        x = np.ascontiguousarray(sample, np.int8)
        loss = C.c_float()
        status = self.lib.tt_train_step(x.ctypes.data, int(label), C.byref(loss))
        if status:
            raise TTError(f"tt_train_step returned {status}")
        return np.float32(loss.value)

    def predict(self, sample: np.ndarray, classes: int) -> np.ndarray:
        x = np.ascontiguousarray(sample, np.int8)
        scores = np.zeros(classes, np.int8)
        status = self.lib.tt_predict(x.ctypes.data, scores.ctypes.data)
        if status:
            raise TTError(f"tt_predict returned {status}")
        return scores

    def regions(self) -> list[bytes]:
        return [C.string_at(r.data, r.bytes) for r in self.table]

    def run(self, xs: np.ndarray, labels: np.ndarray, classes: int) -> Run:
        """The steps, then an inference of the first sample (as check.reference)."""
        losses = [self.train_step(x, label) for x, label in zip(xs, labels)]
        scores = self.predict(xs[0], classes)
        return Run(np.array(losses, np.float32).view(np.uint32), scores, regions=self.regions())
