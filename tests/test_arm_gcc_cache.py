"""The test session's compiler cache (tests/arm_gcc_cache.py): a reused object is the one the
compiler gives, and anything that changes what is compiled compiles afresh, so no rig test
can pass on a stale object."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool

SHIM = Path(__file__).with_name("arm_gcc_cache.py")
CPU = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]


@pytest.fixture
def gcc(tmp_path):
    """Runs the cache with a cache folder of its own; returns (run, log lines so far)."""
    real = os.environ.get("TT_ARM_GCC_REAL") or shutil.which("arm-none-eabi-gcc")
    require_tool(real is not None, "arm-none-eabi-gcc")
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "TT_ARM_GCC_REAL": real, "TT_ARM_GCC_CACHE": str(cache)}

    def run(*args, real_compiler=False):
        cmd = [real, *args] if real_compiler else [sys.executable, str(SHIM), *args]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)

    def log():
        path = cache / "log"
        return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []
    return run, log


def test_an_identical_compile_reuses_the_object_and_its_warnings(gcc, tmp_path):
    run, log = gcc
    (tmp_path / "k.h").write_text("#define SCALE 3\n")
    (tmp_path / "k.c").write_text('#include "k.h"\nint f(int x) { int unused; return x * SCALE; }\n')
    first = run(*CPU, "-O2", "-Wall", "-I.", "-c", "k.c", "-o", "a.o")
    # the -I spelt another way, and newlib-nano's specs: same preprocessed text, same object
    again = run(*CPU, "-O2", "-Wall", "-I", str(tmp_path), "--specs=nano.specs", "-c", "k.c",
                "-o", "b.o")
    real = run(*CPU, "-O2", "-Wall", "-I.", "-c", "k.c", "-o", "c.o", real_compiler=True)
    assert first.returncode == again.returncode == real.returncode == 0
    assert log() == ["miss", "hit"]
    assert "unused" in again.stderr and again.stderr == first.stderr
    assert (tmp_path / "a.o").read_bytes() == (tmp_path / "b.o").read_bytes() \
        == (tmp_path / "c.o").read_bytes()


def test_a_changed_header_flag_or_define_compiles_afresh(gcc, tmp_path):
    run, log = gcc
    (tmp_path / "k.h").write_text("#ifndef SCALE\n#define SCALE 3\n#endif\n")
    (tmp_path / "k.c").write_text('#include "k.h"\nint f(int x) { return x * SCALE; }\n')
    assert run(*CPU, "-O2", "-c", "k.c", "-o", "a.o").returncode == 0
    (tmp_path / "k.h").write_text("#ifndef SCALE\n#define SCALE 5\n#endif\n")
    assert run(*CPU, "-O2", "-c", "k.c", "-o", "b.o").returncode == 0
    assert run(*CPU, "-O1", "-c", "k.c", "-o", "c.o").returncode == 0
    assert run(*CPU, "-O2", "-DSCALE=7", "-c", "k.c", "-o", "d.o").returncode == 0
    assert run(*CPU, "-O2", "-Werror", "-c", "k.c", "-o", "e.o").returncode == 0
    assert log() == ["miss"] * 5
    objects = {(tmp_path / f"{n}.o").read_bytes() for n in "abd"}
    assert len(objects) == 3


def test_a_failing_compile_is_never_stored(gcc, tmp_path):
    run, log = gcc
    (tmp_path / "k.c").write_text("int f(int x) { int unused; return x; }\n")
    for _ in range(2):
        res = run(*CPU, "-O2", "-Wall", "-Werror", "-c", "k.c", "-o", "a.o")
        assert res.returncode != 0 and "unused" in res.stderr
    assert log() == ["miss", "miss"]


def test_compile_and_link_gives_the_real_drivers_elf(gcc, tmp_path):
    run, log = gcc
    (tmp_path / "k.c").write_text("int f(int x) { return x * 3; }\n")
    (tmp_path / "main.c").write_text("int f(int);\nint main(void) { return f(2); }\n")
    link = [*CPU, "-O2", "--specs=nano.specs", "--specs=nosys.specs", "k.c", "main.c"]
    for out in ("a.elf", "b.elf"):
        assert run(*link, "-o", out).returncode == 0
    assert run(*link, "-o", "c.elf", real_compiler=True).returncode == 0
    assert log() == ["miss", "miss", "hit", "hit"]
    assert (tmp_path / "a.elf").read_bytes() == (tmp_path / "b.elf").read_bytes() \
        == (tmp_path / "c.elf").read_bytes()
