"""Shared fixtures: the real models in ../shared (skipped when absent) and the model zoo the
tests build themselves with TensorFlow's converter (cached by the zoo's source hash)."""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models"
SHARED_TFLM = ["person_detect", "micro_speech_quantized", "hello_world_int8"]


def require_tool(available: bool, what: str) -> None:
    """Skip a test whose tool is missing, except in CI (`CI` set, as .ci/run does), where
    `make setup` has installed every tool: there a missing tool is a failure, not a skip."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI, where make setup installs it")
    pytest.skip(f"{what} is not installed (make setup installs it)")


def sanitizer_runtimes() -> list[str] | None:
    """gcc's AddressSanitizer and UBSan runtimes (libasan.so, libubsan.so), to preload into a
    process that loads a sanitized library; None when gcc has none."""
    libs = [subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                           text=True).stdout.strip() for name in ("libasan.so", "libubsan.so")]
    return libs if all(os.path.isabs(p) and os.path.exists(p) for p in libs) else None


def numpy_equals_c(a, b) -> bool:
    """Float results of the numpy and the C engine (losses, momentum buffers): identical,
    bit for bit. Both add the same float32 terms in the same orders (include/tt_kernels.h,
    tflite_train/ops/accumulate.py) and compute the loss's exp/log with the same double
    operations, so no tolerance is needed (before the float32 kernels, 2.2e-7 relative was
    measured here)."""
    import numpy as np
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def shared_file(*parts: str) -> Path:
    """A file under ../shared/models; the test skips when it is absent."""
    path = SHARED_MODELS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/models is only beside a project checkout)")
    return path


def shared_model(name: str) -> Path:
    return shared_file("tflm", f"{name}.tflite")


@pytest.fixture(scope="session", autouse=True)
def board_objects_folder(tmp_path_factory) -> None:
    """Where board_build keeps the kernels' objects for the rig: the session's temporary
    folder, which xdist's workers share (each worker's own folder is inside it)."""
    import board_build
    base = tmp_path_factory.getbasetemp()
    board_build.ROOT = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def generated_rig_kernels(board_objects_folder):
    """Every generated folder's `make rig` (tflite_train.codegen.rig._make) links the kernels'
    objects compiled once per session and flags (board_build.shared_rig_make) instead of
    compiling micro_kernels/src again; test_shared_rig_kernels checks the programs are the
    same bytes."""
    import board_build
    from tflite_train.codegen import rig
    from tflite_train.runtime.build import MICRO_KERNELS
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rig, "_make", board_build.shared_rig_make(rig._make, Path(MICRO_KERNELS)))
        yield


@pytest.fixture(scope="session", autouse=True)
def session_caches(generated_rig_kernels, tmp_path_factory):
    """The code generator's plans kept by their inputs (session_cache.cached_build), and the
    snapshot of tflite_train's modules that tells a test's monkeypatch from the session's own
    code (taken after the session's own patches). Each worker writes what the caches saved
    to the session's folder (session-cache-WORKER.txt)."""
    import session_cache
    import tflite_train.codegen as codegen
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codegen, "build", session_cache.cached_build(codegen.build))
        session_cache.take_snapshot()
        yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    (root / f"session-cache-{worker}.txt").write_text(f"{session_cache.stats}\n")


@pytest.fixture(scope="session", autouse=True)
def child_cpu_by_command(tmp_path_factory):
    """With TT_TEST_CPU set: the CPU time of the commands the tests run (subprocess.run, with
    everything they wait for: make's compilers), summed by command, into
    child-cpu-WORKER.txt in the session's folder: where a run's time goes."""
    if not os.environ.get("TT_TEST_CPU"):
        yield
        return
    import resource
    totals: dict[str, float] = {}
    run = subprocess.run

    def timed(args, *a, **kw):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            return run(args, *a, **kw)
        finally:
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            argv = args if isinstance(args, (list, tuple)) else str(args).split()
            name = Path(str(argv[0])).name if argv else "?"
            if name == "make" and "rig" in map(str, argv):
                name = "make rig"
            totals[name] = totals.get(name, 0.0) + (after.ru_utime - before.ru_utime) + \
                (after.ru_stime - before.ru_stime)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess, "run", timed)
        yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    (root / f"child-cpu-{worker}.txt").write_text(
        "".join(f"{v:9.1f} {k}\n" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])))


@pytest.fixture(scope="session")
def zoo() -> dict[str, Path]:
    """name -> path of every model in tests/modelzoo.py, built once per source version.
    Two xdist workers share the cache; a file lock makes the second one wait."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import modelzoo
    digest = hashlib.sha256(Path(modelzoo.__file__).read_bytes()).hexdigest()[:12]
    cache = ROOT / ".cache" / f"modelzoo-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return modelzoo.build_all(cache)
