"""Building the C kernels and the TFLM glue for the host, once per user and source version.

The sources ship inside the package (tflite_train/micro_kernels: in a checkout a symlink to
../micro_kernels, in a wheel a copy), so an installed package can build them; the libraries
go to a per-user cache keyed by a hash of the sources and the compilers,
$XDG_CACHE_HOME/tflite-train/<hash>/ (~/.cache when unset), never into the installed tree
or the checkout. `make` decides what is stale inside one cache folder; a file lock keeps two
processes (pytest workers, two CLI runs) from building the same library at once.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from ..errors import TTError

# resolved: in a checkout the real micro_kernels/ beside the package
MICRO_KERNELS = (Path(__file__).resolve().parents[1] / "micro_kernels").resolve()
# What the build reads: everything but build outputs (a checkout's `make kernels` writes
# micro_kernels/build).
_SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".h", ".hpp", ".S", ".s", ".inc", ".mk", ".ld", ".txt", ""}


def sources() -> list[Path]:
    """The files the libraries are built from, in a fixed order."""
    if not (MICRO_KERNELS / "Makefile").is_file():
        raise TTError(f"{MICRO_KERNELS}: the C kernels' sources are missing (a broken "
                      "install?)")
    return sorted(p for p in MICRO_KERNELS.rglob("*")
                  if p.is_file() and "build" not in p.relative_to(MICRO_KERNELS).parts
                  and p.suffix in _SOURCE_SUFFIXES and not p.name.startswith("."))


def _compiler(name: str) -> str:
    """What a compiler is (its --version), so that a different compiler builds afresh."""
    path = shutil.which(name)
    if path is None:
        return f"{name}: none"
    try:
        res = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return f"{name}: {path}"
    return f"{name}: {path} {res.stdout.splitlines()[0] if res.stdout else ''}"


@lru_cache(maxsize=1)
def build_dir() -> Path:
    """$XDG_CACHE_HOME/tflite-train/<hash of the sources, compilers and flags>."""
    h = hashlib.sha256()
    for p in sources():
        h.update(str(p.relative_to(MICRO_KERNELS)).encode() + b"\0" + p.read_bytes() + b"\0")
    for name in (os.environ.get("CC", "cc"), os.environ.get("CXX", "g++")):
        h.update(_compiler(name).encode() + b"\0")
    for var in ("CFLAGS", "CXXFLAGS"):
        h.update(f"{var}={os.environ.get(var, '')}\0".encode())
    h.update(platform.machine().encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tflite-train" / h.hexdigest()[:16]


def __getattr__(name: str):
    if name == "BUILD":             # the cache folder, computed when first asked for
        return build_dir()
    raise AttributeError(name)


def micro_kernels_library(target: str, filename: str) -> Path:
    """Runs `make -C micro_kernels TARGET BUILD=<cache folder>` and returns the built
    FILENAME there. A TARGET under build/ (the Makefile's default $(BUILD), as in
    `build/pic/tt_loss.o`) names that file in the cache folder."""
    folder = build_dir()
    if target.startswith("build/"):
        target = str(folder / target[len("build/"):])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "w")
    except OSError as exc:
        raise TTError(f"cannot create the kernel cache {folder}: "
                      f"{exc.strerror or type(exc).__name__}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            res = subprocess.run(["make", "-s", "-C", str(MICRO_KERNELS), target,
                                  f"BUILD={folder}"], capture_output=True, text=True)
        except OSError:
            raise TTError("building the C kernels needs `make` and a C/C++ compiler "
                          "(Debian: build-essential)") from None
    if res.returncode != 0:
        raise TTError(f"building micro_kernels ({target}) failed: "
                      f"{' '.join((res.stderr or res.stdout).split())[-500:]}")
    return folder / filename
