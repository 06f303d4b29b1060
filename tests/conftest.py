"""Shared fixtures: the real models in ../shared (skipped when absent) and the model zoo the
tests build themselves with TensorFlow's converter (cached by the zoo's source hash)."""
from __future__ import annotations

import fcntl
import hashlib
import os
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


def numpy_c_close(a, b) -> bool:
    """Float results of the numpy and the C engine (losses, momentum buffers) agree to 2
    float32 ulps of the largest magnitude, 2^-22 relative: both sum in double in different
    orders and round once to float32, and the loss's exp/log are numpy's float32 ones
    against C's tt_exp/tt_log. Measured on the TFLM-engine and example-app cases: at most
    2.2e-7."""
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and \
        float(np.abs(a - b).max(initial=0)) <= 2.0 ** -22 * max(float(np.abs(b).max(initial=0)),
                                                                1e-30)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/models; the test skips when it is absent."""
    path = SHARED_MODELS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/models is only beside a project checkout)")
    return path


def shared_model(name: str) -> Path:
    return shared_file("tflm", f"{name}.tflite")


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
