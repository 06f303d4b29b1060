"""What a generated program must reproduce: the same training run on `--engine c` (the same
kernels through ctypes, graph order), and the comparison of the two, bit for bit."""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .. import checkpoint
from ..data import load as load_data
from ..data import to_model_input
from ..errors import TTError
from ..runtime.numpy_exec import Executor
from .program import Program


@dataclass
class Run:
    """A training run of a program: per step its loss (float32 bits), then one inference's
    scores and the checkpoint regions' bytes (or their CRC-32 when only those are known)."""
    losses: np.ndarray             # uint32 bit patterns of the float32 losses
    scores: np.ndarray             # int8
    regions: list[bytes] | None = None
    crcs: list[int] | None = None

    def region_crcs(self) -> list[int]:
        return self.crcs if self.crcs is not None else [zlib.crc32(r) for r in self.regions]

    def loss_values(self) -> list[float]:
        return [float(v) for v in self.losses.view(np.float32)]


def samples(program: Program, steps: int, seed: int = 0, data: str | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """`steps` (sample, label) pairs: seeded random int8 samples and labels, or the first of
    a dataset (`train --data` spellings) quantized to the model's input."""
    t = program.graph.tensors[program.sample]
    if data is None:
        rng = np.random.default_rng(seed)
        xs = rng.integers(-128, 128, (steps, *t.shape)).astype(np.int8)
        return xs, rng.integers(0, program.classes, steps).astype(np.int32)
    dataset = load_data(data, t.shape)
    if len(dataset) < steps:
        raise TTError(f"--data {data}: {len(dataset)} samples, fewer than --steps {steps}")
    if int(dataset.labels[:steps].max()) >= program.classes:
        raise TTError(f"--data {data}: labels up to {int(dataset.labels[:steps].max())}, the "
                      f"model has {program.classes} classes")
    xs = np.stack([to_model_input(dataset.images[i], t) for i in range(steps)]).astype(np.int8)
    return xs, dataset.labels[:steps].astype(np.int32)


def region_bytes(program: Program, executor: Executor) -> list[bytes]:
    """The checkpoint regions of a host executor, as the generated program holds them (a
    split filter: only its trained input channels)."""
    ops_of = {p: k for k, p, _ in checkpoint.update_ops(executor.graph)}
    out = []
    for r, _ in program.checkpoint_regions():
        if r.kind == checkpoint.UPDATE_STATE:
            rng, step = executor.update_state(ops_of[r.id])
            out.append(np.array([rng, step & 0xFFFFFFFF], "<u4").tobytes())
            continue
        value = executor.variables[r.id]
        split = program.splits.get(r.id) if r.kind == checkpoint.PARAMETER else None
        if split is not None:
            value = value[..., :split.k]
        out.append(np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes())
    return out


def reference(program: Program, xs: np.ndarray, labels: np.ndarray) -> Run:
    """The run on `--engine c`: the steps, then an inference of the first sample (a model
    of batch B > 1 on `--engine numpy` while engine c does not run its batch)."""
    from ..train import BATCH_ENGINES
    g = program.graph
    ex = Executor(g, "c" if not program.batched or "c" in BATCH_ENGINES else "numpy")
    losses = []
    for x, label in zip(xs, labels):
        values = ex.invoke([x, np.array([label], np.int32)])
        losses.append(np.float32(values[program.loss][0]))
    scores = ex.invoke([xs[0], np.array([-1], np.int32)])[program.scores]
    return Run(np.array(losses, np.float32).view(np.uint32),
               np.ascontiguousarray(scores, np.int8).ravel(), regions=region_bytes(program, ex))


def differences(program: Program, want: Run, got: Run) -> list[str]:
    """What differs between two runs, one line each (empty: bit-identical)."""
    out = []
    if len(got.losses) != len(want.losses) or np.any(got.losses != want.losses):
        out.append(f"losses {got.loss_values()} != {want.loss_values()}")
    if not np.array_equal(got.scores, want.scores):
        out.append(f"scores {got.scores.tolist()} != {want.scores.tolist()}")
    names = [r.describe() for r, _ in program.checkpoint_regions()]
    for name, a, b in zip(names, got.region_crcs(), want.region_crcs()):
        if a != b:
            out.append(f"{name} differs")
    return out
