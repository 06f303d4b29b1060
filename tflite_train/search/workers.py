"""Where the fine-tuning runs go: this process (one worker), a process pool on this machine
(--workers N) or a Ray cluster (--ray ADDRESS). Each yields (job, result) as runs finish, in
whatever order they finish; a run's result does not depend on where it ran (each run is
deterministic), which the tests check.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterator

from ..data import Dataset
from ..errors import TTError
from .analysis import Job, Settings, fine_tune

# Batch-1 training multiplies small matrices: one BLAS thread per run (see cli.py).
_THREADS = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


class Serial:
    def __init__(self, model: bytes, dataset: Dataset, settings: Settings):
        self.args = (model, dataset, settings)

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, dict]]:
        for job in jobs:
            yield job, fine_tune(*self.args, job)

    def close(self) -> None:
        pass


_worker_args: tuple | None = None


def _init_worker(model: bytes, dataset: Dataset, settings: Settings) -> None:
    global _worker_args
    _worker_args = (model, dataset, settings)


def _pool_fine_tune(job: Job) -> dict:
    return fine_tune(*_worker_args, job)


class Pool:
    """Worker processes started fresh (spawn: no inherited TFLM or C-library state), each
    holding the model and data once."""

    def __init__(self, model: bytes, dataset: Dataset, settings: Settings, workers: int):
        for var, value in _THREADS.items():
            os.environ.setdefault(var, value)
        self.pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker,
                                           initargs=(model, dataset, settings))

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, dict]]:
        futures = {self.pool.submit(_pool_fine_tune, job): job for job in jobs}
        try:
            for f in cf.as_completed(futures):
                yield futures[f], f.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _ray_fine_tune(model: bytes, dataset: Dataset, settings: Settings, job: Job) -> dict:
    return fine_tune(model, dataset, settings, job)


class Ray:
    """Runs on the Ray cluster at `address` (one CPU per run). The model and the data go to
    the cluster's object store once; every node needs this tflite-train installed."""

    def __init__(self, model: bytes, dataset: Dataset, settings: Settings, address: str):
        try:
            import ray
        except ImportError:
            raise TTError("--ray needs Ray: pip install 'tflite-train[ray]'") from None
        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            try:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                         runtime_env={"env_vars": _THREADS})
            except (ConnectionError, RuntimeError, ValueError) as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                hint = "" if os.environ.get("RAY_AUTH_MODE") else \
                    "; a cluster with token authentication needs RAY_AUTH_MODE=token"
                raise TTError(f"--ray {address}: cannot connect to a Ray cluster ({why}{hint})"
                              ) from None
        self.refs = (ray.put(model), ray.put(dataset), settings)
        self.remote = ray.remote(num_cpus=1)(_ray_fine_tune)

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, dict]]:
        pending = {self.remote.remote(*self.refs, job): job for job in jobs}
        try:
            while pending:
                done, _ = self.ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                yield job, self.ray.get(done[0])
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


def executor(model: bytes, dataset: Dataset, settings: Settings, workers: int,
             ray_address: str | None):
    if ray_address:
        return Ray(model, dataset, settings, ray_address)
    if workers > 1:
        return Pool(model, dataset, settings, workers)
    return Serial(model, dataset, settings)
