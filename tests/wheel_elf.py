"""Facts read out of the pinned tflite-micro wheel's binary (_runtime.so is not stripped):
what its vtables hold and what its functions do, so that the tests can check the layout the
TFLM glue declares for it (micro_kernels/tflm/tt_tflm_compat.h, wheel_abi/) against the
wheel itself."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import require_tool


def runtime_library() -> Path:
    import tflite_micro
    return Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "_runtime.so"


def require_binutils() -> None:
    if sys.platform != "linux" or sys.maxsize <= 2 ** 32:
        pytest.skip("the measured layout is the x86_64 Linux wheel's")
    require_tool(all(shutil.which(t) for t in ("nm", "readelf", "objdump")),
                 "binutils (nm, readelf, objdump), which read the wheel's layout,")


def _run(*cmd) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@lru_cache(maxsize=1)
def _symbols() -> tuple[dict[int, str], dict[str, int]]:
    by_address, by_name = {}, {}
    for line in _run("nm", "-C", str(runtime_library())).splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0]:          # defined symbols only
            address = int(parts[0], 16)
            by_address.setdefault(address, parts[2])
            by_name.setdefault(parts[2], address)
    return by_address, by_name


@lru_cache(maxsize=1)
def _relative_relocations() -> dict[int, int]:
    relocs = {}
    for line in _run("readelf", "-rW", str(runtime_library())).splitlines():
        f = line.split()
        if len(f) == 4 and f[2] == "R_X86_64_RELATIVE":
            relocs[int(f[0], 16)] = int(f[3], 16)
    return relocs


def vtable_slots(cls: str, count: int) -> list[str]:
    """Demangled names of the first `count` virtual functions of `cls`'s vtable."""
    by_address, by_name = _symbols()
    vtable = by_name.get(f"vtable for {cls}")
    assert vtable is not None, f"the wheel has no vtable for {cls}"
    relocs = _relative_relocations()
    # Itanium ABI: offset-to-top and typeinfo, then the virtual function pointers
    return [by_address.get(relocs.get(vtable + 16 + 8 * i, -1), "?") for i in range(count)]


@lru_cache(maxsize=1)
def disassembly() -> str:
    return _run("objdump", "-d", "--no-show-raw-insn", "-C", str(runtime_library()))


def function_body(signature: str) -> str:
    """The disassembled instructions of the function whose demangled name is `signature`."""
    m = re.search(re.escape(f"<{signature}>:") + r"\n(.*?)\n\n", disassembly(), re.S)
    assert m is not None, f"the wheel has no function {signature}"
    return m.group(1)
