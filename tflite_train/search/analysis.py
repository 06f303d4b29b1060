"""Contribution analysis: one ordinary host training run per candidate (augment in memory,
then `train`, engine c by default), every run from the same starting point and with the
same seed, steps, data order and held-out split, so that the runs differ only in what they
train.

The starting point: the baseline trains the new head alone; every other run starts with
the baseline's trained head (its values, taken by tensor name from the baseline's trained
state as `train -o` would save it, become the initial values TT_INIT copies into the head's
variables) and trains the head again with the rest of its scheme.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import __version__, augment, tflite_io
from ..autodiff import Hyper
from ..data import Dataset
from ..errors import TTError
from ..ir import Graph

# Fine-tuning runs train without a flash budget: the conversions it gives up change where
# bytes live, not one bit of a run (search.budget plans the memory with the budget).
NO_BUDGET = augment.MemoryOptions(flash_budget=None)


@dataclass(frozen=True)
class Settings:
    """What every run of one analysis shares; its id keys the results in the cache."""
    num_classes: int
    steps: int
    seed: int
    val_split: float
    val_samples: int
    engine: str

    def hyper(self) -> Hyper:
        """augment's default hyper-parameters (learning rates included), with the learning
        rates decayed to 0 over the run along a cosine: a constant-rate batch-1 run ends
        wherever its oscillation happens to be, and its last accuracy does not compare two
        runs (benchmarks/RESULTS.md, transfer learning)."""
        return Hyper(seed=self.seed, decay_steps=self.steps)

    def id(self, data_digest: str, model: bytes) -> str:
        """Changes with anything that changes a run: the settings, the data, and augment's
        defaults (a tflite-train whose defaults differ does not reuse these runs: the
        training record augment writes for the head alone, rates included, is part of it)."""
        record = augment.augment(tflite_io.parse(model), {}, self.num_classes, self.hyper(),
                                 memory=NO_BUDGET).metadata
        text = json.dumps({**asdict(self), "data": data_digest, "hyper": repr(self.hyper()),
                           "augment": record, "version": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    key: str
    scheme: dict                    # the JSON scheme (search.space.Point.doc)
    head: dict | None               # the baseline's trained head (encode_arrays), or None


def data_digest(dataset: Dataset) -> str:
    h = hashlib.sha256()
    for a in (dataset.images, dataset.labels):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def encode_arrays(arrays: dict[str, np.ndarray]) -> dict:
    return {name: {"dtype": a.dtype.str, "shape": list(a.shape),
                   "bytes": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}
            for name, a in arrays.items()}


def decode_arrays(doc: dict) -> dict[str, np.ndarray]:
    return {name: np.frombuffer(base64.b64decode(v["bytes"]), np.dtype(v["dtype"]))
            .reshape(v["shape"]).copy() for name, v in doc.items()}


def start_from(graph: Graph, values: dict[str, np.ndarray]) -> None:
    """Make TT_INIT fill the named variables with `values` instead of their initial values."""
    init = next(op for op in graph.operators if op.kind == "TT_INIT")
    pairs = dict(zip(init.inputs[1::2], init.inputs[0::2]))          # variable -> its copy
    by_name = {graph.tensors[v].name: v for v in pairs}
    for name, value in values.items():
        if name not in by_name:
            raise TTError(f"the starting point's {name!r} is not trained by this scheme")
        copy = graph.tensors[pairs[by_name[name]]]
        if value.shape != copy.shape or value.dtype != np.dtype(copy.dtype):
            raise TTError(f"the starting point's {name!r} is {value.dtype} {value.shape}, the "
                          f"model needs {copy.dtype} {copy.shape}")
        copy.data = value.copy()


def fine_tune(model: bytes, dataset: Dataset, settings: Settings, job: Job) -> dict:
    """One run: the training model of `job.scheme` (augment's default hyper-parameters), the
    head started from `job.head`, trained and scored on the held-out split. A run whose
    training fails (a diverging loss) is recorded as failed: it contributes nothing."""
    from ..train import train
    cpu, wall = time.process_time(), time.perf_counter()
    result = augment.augment(tflite_io.parse(model), job.scheme, settings.num_classes,
                             settings.hyper(), memory=NO_BUDGET)
    if job.head is not None:
        start_from(result.graph, decode_arrays(job.head))
    try:
        trainer, history = train(result.graph, dataset, steps=settings.steps,
                                 val_split=settings.val_split, val_max=settings.val_samples,
                                 seed=settings.seed, engine=settings.engine)
    except TTError as exc:       # the data passed every check: the training itself failed
        return {"accuracy": None, "failed": str(exc), "steps": settings.steps,
                "seed": settings.seed, "val_samples": settings.val_samples,
                "cpu_seconds": time.process_time() - cpu,
                "wall_seconds": time.perf_counter() - wall}
    last = history.points[-1]
    out = {"accuracy": last.val_accuracy, "val_samples": history.val_samples,
           "steps": history.steps, "train_samples": history.train_samples,
           "seed": settings.seed, "final_loss": last.train_loss,
           "cpu_seconds": time.process_time() - cpu,
           "wall_seconds": time.perf_counter() - wall}
    if job.head is None:                       # the baseline: its trained head is the start
        # its trained parameters (what TT_INIT fills), not the optimizer state: the head's
        # rounding residual starts at 0 in every candidate, as its momentum would
        from ..checkpoint import trained_parameters
        names = {result.graph.tensors[i].name for i in trained_parameters(result.graph)}
        out["head"] = encode_arrays({n: v for n, v in trainer.parameters().items()
                                     if n in names})
    return out
