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
# AddressSanitizer + UBSan, every report fatal: what micro_kernels' SANITIZE_FLAGS add to its
# CFLAGS (its `sanitize` target builds the kernels so).
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]


def kernel_objects() -> list[Path]:
    """micro_kernels' sources as -fPIC objects (build/pic/), made or refreshed by its Makefile."""
    return [micro_kernels_library(f"build/pic/{src.stem}.o", f"pic/{src.stem}.o")
            for src in sorted((MICRO_KERNELS / "src").glob("*.c"))]


def _gcc(folder: Path, out: Path, flags: list[str], inputs: list[Path]) -> Path:
    out.parent.mkdir(exist_ok=True)
    res = subprocess.run(["gcc", *FLAGS, *flags, "-I", str(folder), "-I",
                          str(MICRO_KERNELS / "include"), "-o", str(out),
                          str(folder / "tt_model.c"), *map(str, inputs)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise TTError(f"building {folder} for the host failed: "
                      f"{(res.stderr or res.stdout).strip()[-800:]}")
    return out


def build(folder: Path) -> Path:
    return _gcc(folder, folder / "build" / "libtt_model.so", ["-fPIC", "-shared"],
                kernel_objects())


def build_sanitized(folder: Path, driver: Path) -> Path:
    """tt_model.c and DRIVER (a C file with main()) linked with the kernels into an
    executable, all compiled with SANITIZE (ASan's runtime must be the first library a
    process loads, so a ctypes load into a running Python cannot have it: a program)."""
    kernels = micro_kernels_library("build/sanitize/libtt_kernels.a", "sanitize/libtt_kernels.a")
    return _gcc(folder, folder / "build" / "sanitized", SANITIZE, [driver, kernels])


# tt_read_row_fn (tt_row_source.h)
READ_ROW = C.CFUNCTYPE(C.c_int, C.c_int32, C.POINTER(C.c_int8), C.c_void_p)


class RowReader:
    """A sample handed over row by row through read_row, as a camera would: records the rows
    asked for; `fail_at`: the row whose read gives up."""

    def __init__(self, sample: np.ndarray, fail_at: int | None = None):
        x = np.ascontiguousarray(sample, np.int8)
        self.rows = x.reshape(x.shape[-3], -1) if x.ndim >= 3 else x.reshape(1, -1)
        self.asked: list[int] = []
        self.fail_at = fail_at
        self.fn = READ_ROW(self._read)

    def _read(self, y, row, _ctx) -> int:
        self.asked.append(int(y))
        if y == self.fail_at:
            return 1
        C.memmove(row, self.rows[y].ctypes.data, self.rows.shape[1])
        return 0


class HostProgram:
    def __init__(self, folder: str | Path, regions: int):
        self.lib = C.CDLL(str(build(Path(folder))))
        self.lib.tt_train_step.argtypes = [C.c_void_p, C.c_int32, C.POINTER(C.c_float)]
        self.lib.tt_predict.argtypes = [C.c_void_p, C.c_void_p]
        self.rows = hasattr(self.lib, "tt_train_step_rows")     # generated with --input rows
        if self.rows:
            self.lib.tt_train_step_rows.argtypes = [READ_ROW, C.c_void_p, C.c_int32,
                                                    C.POINTER(C.c_float)]
            self.lib.tt_predict_rows.argtypes = [READ_ROW, C.c_void_p, C.c_void_p]
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

    def train_step_rows(self, reader: RowReader, label: int) -> tuple[int, np.float32]:
        """(status, loss) of tt_train_step_rows."""
        loss = C.c_float()
        status = self.lib.tt_train_step_rows(reader.fn, None, int(label), C.byref(loss))
        return status, np.float32(loss.value)

    def predict_rows(self, reader: RowReader, classes: int) -> tuple[int, np.ndarray]:
        scores = np.zeros(classes, np.int8)
        return self.lib.tt_predict_rows(reader.fn, None, scores.ctypes.data), scores

    def regions(self) -> list[bytes]:
        return [C.string_at(r.data, r.bytes) for r in self.table]

    def run(self, xs: np.ndarray, labels: np.ndarray, classes: int, api: str = "whole") -> Run:
        """The steps, then an inference of the first sample (as check.reference), through
        tt_train_step / tt_predict (api "whole") or their row forms ("rows"; a read out of
        order, or a row left unread, is a TTError)."""
        if api == "rows":
            losses = [self._rows_checked(self.train_step_rows, x, label)
                      for x, label in zip(xs, labels)]
            scores = self._rows_checked(self.predict_rows, xs[0], classes)
        else:
            losses = [self.train_step(x, label) for x, label in zip(xs, labels)]
            scores = self.predict(xs[0], classes)
        return Run(np.array(losses, np.float32).view(np.uint32), scores, regions=self.regions())

    @staticmethod
    def _rows_checked(call, x: np.ndarray, arg):
        reader = RowReader(x)
        status, out = call(reader, arg)
        if status:
            raise TTError(f"the row API returned {status}")
        if reader.asked != list(range(len(reader.rows))):
            raise TTError(f"read_row was asked for rows {reader.asked[:8]}..., not each "
                          "row once in order")
        return out
