"""A plain (not editable) install gives every command, `--engine c`, `--engine tflm` and
`codegen` included: the wheel carries the C kernels' and the glue's sources, and the
libraries are built once into the user's cache, never into the installed tree or the
checkout.

The project is copied, built into a wheel (no network: the test venv's setuptools, no
build isolation) and installed without dependencies into a fresh venv that reaches the
test venv's packages (numpy, tflite, tflite-micro, ...) through a .pth file.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

SHIPPED = ("Makefile", "tflite_train.inc", "CMakeLists.txt", "include", "src", "tflm")


def run(argv, **kw):
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                         timeout=600, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, argv))}:\n{res.stdout}\n{res.stderr}"
    return res


def listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")
            if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "tflite_train", "micro_kernels", "schema"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"symlinks": True, "ignore": shutil.ignore_patterns(
            "build", "__pycache__")} if (ROOT / name).is_dir() else {}))
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", dist, src])
    return next(dist.glob("tflite_train-*.whl"))


def test_the_wheel_carries_every_kernel_and_glue_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    kernels = ROOT / "micro_kernels"
    wanted = [p for part in SHIPPED for p in ([kernels / part] if (kernels / part).is_file()
                                               else (kernels / part).rglob("*"))
              if p.is_file() and p.suffix in (".c", ".cc", ".h", ".inc", ".txt", "")]
    assert len(wanted) > 8
    for p in wanted:
        assert f"tflite_train/micro_kernels/{p.relative_to(kernels)}" in names, p
    assert "tflite_train/data/training_ops.json" in names
    assert "tflite_train/data/tiny_cnn.tflite" in names


def test_a_fresh_install_trains_with_the_c_kernels_and_in_tflm(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel])
    # the heavy dependencies, from the test venv, after the fresh venv's own packages
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    Path(site.stdout.strip(), "test-venv.pth").write_text(sysconfig.get_paths()["purelib"])

    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    where = run([python, "-c", "import tflite_train, os; print(os.path.dirname("
                               "tflite_train.__file__))"], cwd=tmp_path, env=env)
    installed = Path(where.stdout.strip())
    assert installed.is_relative_to(venv), installed
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, (12, 32, 32), dtype=np.uint8), y=np.arange(12) % 4)
    model = tmp_path / "m.train.tflite"
    before_install = listing(installed)
    before_checkout = listing(ROOT / "micro_kernels")
    cli = venv / "bin" / "tflite-train"
    run([cli, "augment", installed / "data" / "tiny_cnn.tflite", "-o", model,
         "--num-classes", "4", "--scheme", "full"], cwd=tmp_path, env=env)
    for engine in ("c", "tflm"):
        res = run([cli, "train", model, "--data", data, "--steps", "3", "--engine", engine],
                  cwd=tmp_path, env=env)
        assert "done: 3 steps" in res.stdout, res.stdout
    built = {p.name: p.stat().st_mtime for p in cache.rglob("*.so")}
    assert {"libtt_kernels.so", "libtt_tflm_wheel.so"} <= set(built), built
    assert all(p.parent.parent == cache / "tflite-train" for p in cache.rglob("*.so"))
    # once: a second run builds nothing
    run([cli, "train", model, "--data", data, "--steps", "1", "--engine", "tflm"], cwd=tmp_path,
        env=env)
    assert {p.name: p.stat().st_mtime for p in cache.rglob("*.so")} == built
    assert listing(installed) == before_install, "the run wrote into the installed package"
    assert listing(ROOT / "micro_kernels") == before_checkout, "the run wrote into the checkout"
    report = json.loads(run([cli, "plan", model, "--json"], cwd=tmp_path, env=env).stdout)
    assert report["training"] and report["persistent_bytes"] > 0
    run([cli, "codegen", model, "-o", tmp_path / "program"], cwd=tmp_path, env=env)
    assert (tmp_path / "program" / "tt_model.c").is_file()
