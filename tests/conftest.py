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


def shared_model(name: str) -> Path:
    path = SHARED_MODELS / "tflm" / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/models is only beside a project checkout)")
    return path


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
