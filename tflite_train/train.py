"""Host simulation of on-device training: one Invoke per sample, exactly as the training
graph says (the executor runs every TT_* op as the device would; a model of augment --batch B
updates its parameters every B-th training Invoke, and a step here is such an update)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .augment import training_metadata
from .data import Dataset, DataError, to_model_input
from .errors import TTError
from .ir import Graph
from .runtime import host_engine, make_executor


@dataclass
class EvalPoint:
    step: int
    epoch: float
    train_loss: float        # mean loss over the steps since the previous point
    val_accuracy: float | None


@dataclass
class History:
    points: list[EvalPoint] = field(default_factory=list)
    steps: int = 0              # updates (each of `batch` training samples)
    train_samples: int = 0
    val_samples: int = 0
    batch: int = 1


def classes_of(graph: Graph) -> int:
    meta = training_metadata(graph)
    for t in graph.tensors:
        if t.name == meta["logits"]:
            return t.size
    raise TTError("training model: logits tensor named in the metadata is missing")


def split(n: int, val_split: float, val_max: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 <= val_split < 1:
        raise TTError(f"--val-split must be in [0, 1), got {val_split}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_split))
    val, train = order[:n_val], order[n_val:]
    if len(train) == 0:
        raise DataError("no training samples left after the validation split")
    return train, val[:val_max]


def sample_order(train_idx: np.ndarray, steps: int, seed: int):
    """The training samples of each step: reshuffled passes over the training split."""
    rng = np.random.default_rng(seed + 1)
    order, pos = rng.permutation(train_idx), 0
    for _ in range(steps):
        if pos == len(order):
            order, pos = rng.permutation(train_idx), 0
        yield int(order[pos])
        pos += 1


# The engines that run update ops of batch B > 1 (schema option `batch`), the first the
# default for such a model; an engine added later refuses one with a line until it joins.
BATCH_ENGINES = ("c", "numpy", "codegen", "tflm")


def model_batch(graph: Graph) -> int:
    """The largest batch of the model's update ops (1: no gradient accumulation)."""
    from .training_ops import batch_of
    return max([batch_of(op) for op in graph.operators] or [1])


def batch_engine(graph: Graph, engine: str | None, what: str | None = None) -> str | None:
    """`engine` if it runs this model's batch; None (the default) becomes BATCH_ENGINES[0]
    (c) for a batched model; an engine that cannot (or `what`, another consumer of the model) is a
    one-line TTError."""
    batch = model_batch(graph)
    if batch == 1 or engine in BATCH_ENGINES:
        return engine
    if engine is None:
        return BATCH_ENGINES[0]
    hint = "" if what else f"; use --engine {BATCH_ENGINES[0]}"
    raise TTError(f"{what or 'engine ' + engine} does not run a model of batch {batch} "
                  f"(augment --batch) yet{hint}")


class DivergedError(TTError):
    pass


ADVICE = "augment again with a lower --lr, or with --lr auto --data D"


class DivergenceGuard:
    """Watches the per-step losses. A non-finite loss stops training (DivergedError: nothing
    is written). A smoothed loss that keeps rising gives one warning: an exponential moving
    average over about 1/ALPHA steps (bias-corrected, so it starts at the first losses),
    warned about when, for PATIENCE steps in a row, it stands above RISE x the lowest value
    it had since step SETTLE, plus MARGIN nats. Batch-1 losses scatter by about one nat:
    after SETTLE steps the average scatters by about 1 / sqrt(SETTLE) = 0.35 nat, later
    by sqrt(ALPHA / 2) = 0.16, so a run that merely plateaus never warns, and one that
    blows up in its first steps (a far too high lr) is caught too."""
    ALPHA = 0.05
    SETTLE = 8
    RISE, MARGIN = 1.5, 0.5
    PATIENCE = 10

    def __init__(self, warn=None):
        self.warn = warn
        self.ema = 0.0
        self.steps = 0
        self.lowest = math.inf
        self.above = 0
        self.warned = False

    def update(self, loss: float) -> None:
        self.steps += 1
        if not math.isfinite(loss):
            raise DivergedError(f"training diverged at step {self.steps}: the loss is "
                                f"{loss}; {ADVICE}")
        self.ema += self.ALPHA * (loss - self.ema)
        smooth = self.ema / (1 - (1 - self.ALPHA) ** self.steps)
        if self.steps < self.SETTLE:
            return
        self.lowest = min(self.lowest, smooth)
        self.above = self.above + 1 if smooth > self.RISE * self.lowest + self.MARGIN else 0
        if self.above >= self.PATIENCE and not self.warned:
            self.warned = True
            if self.warn:
                self.warn(f"the smoothed training loss rose from {self.lowest:.3g} to "
                          f"{smooth:.3g} by step {self.steps}: the learning rate is "
                          f"probably too high; {ADVICE}")


class Trainer:
    """Runs a training model on the host. `engine` None: runtime.DEFAULT_ENGINE (c), or
    numpy with a notice where the C kernels cannot be built (runtime.host_engine)."""
    def __init__(self, graph: Graph, dataset: Dataset, engine: str | None = None):
        self.graph = graph
        self.meta = training_metadata(graph)
        self.engine = host_engine(batch_engine(graph, engine))
        self.executor = make_executor(graph, self.engine)
        self.input = graph.tensors[graph.inputs[0]]
        self.classes = classes_of(graph)
        self.data = dataset
        if len(dataset) == 0:
            raise DataError(f"dataset {dataset.name} is empty")
        top = int(dataset.labels.max())
        if top >= self.classes:
            raise DataError(f"label {top} out of range: the model has {self.classes} classes "
                            f"(augment with --num-classes {top + 1}?)")
        self.loss_index = graph.outputs[-1]
        self.output_index = graph.outputs[0]
        self.batch = model_batch(graph)      # training Invokes (samples) per update

    def update(self, samples) -> float:
        """One update: a training Invoke per sample (the batch's, in order); the mean of
        their losses."""
        return float(np.mean([self.step(int(i)) for i in samples]))

    def step(self, i: int) -> float:
        x = to_model_input(self.data.images[i], self.input)
        values = self.executor.invoke([x, np.array([self.data.labels[i]], np.int32)])
        return float(values[self.loss_index][0])

    def predict(self, i: int) -> int:
        x = to_model_input(self.data.images[i], self.input)
        values = self.executor.invoke([x, np.array([-1], np.int32)])
        return int(np.argmax(values[self.output_index]))

    def accuracy(self, indices: np.ndarray) -> float | None:
        if len(indices) == 0:
            return None
        hits = sum(self.predict(int(i)) == self.data.labels[i] for i in indices)
        return hits / len(indices)

    def parameters(self) -> dict[str, np.ndarray]:
        return {self.graph.tensors[i].name: v.copy()
                for i, v in self.executor.variables.items()}


def train(graph: Graph, dataset: Dataset, *, steps: int | None = None,
          epochs: float | None = None, val_split: float = 0.1, val_max: int = 1000,
          eval_points: int = 5, seed: int = 0, progress=None, report=None,
          engine: str | None = None, warn=None):
    """Returns (trainer, history). `steps` (or `epochs` of samples) counts updates: with a
    model of batch B each runs B training Invokes, so N steps train N x B samples, and the
    losses (points, divergence guard) are each update's mean over its samples.
    `progress(n)` advances a bar by updates; `report(point)` prints; `warn(line)` is told
    once when the loss keeps rising. A non-finite loss raises DivergedError."""
    trainer = Trainer(graph, dataset, engine)
    guard = DivergenceGuard(warn)
    train_idx, val_idx = split(len(dataset), val_split, val_max, seed)
    if steps is None:
        epochs = 1.0 if epochs is None else epochs
        if not epochs > 0:
            raise TTError(f"--epochs must be positive, got {epochs}")
        steps = max(1, int(math.ceil(epochs * len(train_idx) / trainer.batch)))
    elif steps < 1:
        raise TTError(f"--steps must be at least 1, got {steps}")
    # loss is reported `eval_points` times; validation (a forward pass per sample, the
    # slow part) at the end of every epoch and of the run
    every = max(1, steps // eval_points)
    history = History(steps=steps, train_samples=len(train_idx), val_samples=len(val_idx),
                      batch=trainer.batch)
    losses = []
    batch = trainer.batch
    order = sample_order(train_idx, steps * batch, seed)
    for s in range(1, steps + 1):
        losses.append(trainer.update([next(order) for _ in range(batch)]))
        guard.update(losses[-1])
        if progress:
            progress(1)
        # an epoch ends at the update whose samples complete a pass over the split
        epoch_end = s * batch // len(train_idx) > (s - 1) * batch // len(train_idx)
        if s % every == 0 or epoch_end or s == steps:
            validate = epoch_end or s == steps
            point = EvalPoint(s, s * batch / len(train_idx), float(np.mean(losses)),
                              trainer.accuracy(val_idx) if validate else None)
            history.points.append(point)
            losses = []
            if report:
                report(point)
    return trainer, history


STATE_FORMAT = "tflite-train state"
STATE_VERSION = 1


def save_state(path, trainer: Trainer, history: History, model: bytes) -> None:
    """The run's state as .npz: every variable of the training model by tensor name (trained
    parameters and momentum buffers), `__history__` (the run) and `__state__` (the training
    model's id, the update ops' random-stream states and step counters by parameter name,
    when the engine shows them)."""
    import io

    from . import checkpoint
    from .tflite_io import write_atomic
    buf = io.BytesIO()
    info = {"metadata": trainer.meta, "steps": history.steps,
            "points": [p.__dict__ for p in history.points]}
    state = {"format": STATE_FORMAT, "version": STATE_VERSION,
             "model_id": f"{checkpoint.model_id(model):#018x}",
             "update_states": checkpoint.update_state_values(trainer.graph, trainer.executor)}
    np.savez(buf, **trainer.parameters(), __history__=np.array(json.dumps(info)),
             __state__=np.array(json.dumps(state)))
    write_atomic(path, buf.getvalue())


def load_state(path, graph: Graph, model: bytes) -> tuple[dict[int, np.ndarray], dict]:
    """The trained parameters (tensor index -> values) of a state file, checked against the
    training model, and what the file is; every problem is one TTError."""
    from . import checkpoint
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as exc:      # zipfile, zlib and format errors of a damaged file
        raise TTError(f"{path}: not a readable .npz state file, truncated or corrupt "
                      f"({type(exc).__name__})") from None
    try:
        state = json.loads(str(arrays["__state__"]))
        history = json.loads(str(arrays.get("__history__", "{}")))
    except (KeyError, ValueError, RecursionError):
        state = history = None
    history = history if isinstance(history, dict) else {}
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TTError(f"{path}: not a tflite-train state file (no __state__ record; write "
                      "one with `train -o`)")
    if state.get("version") != STATE_VERSION:
        raise TTError(f"{path}: state file version {state.get('version')} is not supported")
    want = f"{checkpoint.model_id(model):#018x}"
    if state.get("model_id") != want:
        raise TTError(f"{path}: the state of another training model (model id "
                      f"{state.get('model_id')}, this model's is {want})")
    params = {}
    for i in checkpoint.trained_parameters(graph):
        t = graph.tensors[i]
        value = arrays.get(t.name)
        if value is None:
            raise TTError(f"{path}: no values for trained tensor {t.name!r}")
        if value.shape != t.shape or value.dtype != np.dtype(t.dtype):
            raise TTError(f"{path}: trained tensor {t.name!r} is {value.dtype} {value.shape} "
                          f"there, the model needs {t.dtype} {t.shape}")
        params[i] = value
    return params, {"kind": "state file", "steps": history.get("steps")}
