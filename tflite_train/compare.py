"""`compare`: several update schemes of one model side by side - what each trains, what it
saves, its training SRAM with separate and with in-place fused updates, its MACs per step
and its flash size; optionally its accuracy after host training."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import augment, memory, ops, scheme, tflite_io
from .autodiff import Hyper
from .ir import Graph


@dataclass
class Row:
    scheme: str
    trained_params: int
    saved_bytes: int
    peak_separate: int           # total SRAM (arena + params + optimizer), separate updates
    peak_fused: int              # the same with in-place fused updates (augment's default)
    arena_fused: int
    trainable_bytes: int
    optimizer_bytes: int
    macs: int                    # one training step: forward + backward
    flash_bytes: int             # the training model file
    accuracy: float | None = None


def trained_params(result: augment.Augmented) -> int:
    g, n = result.graph, 0
    for k, u in result.backward.trained.items():
        op = result.backward.forward_ops[k]
        w = g.tensors[op.inputs[1]]
        if u.weight_channels:
            n += scheme.trained_weights(w, u.weight_channels)
        if u.bias:
            n += g.tensors[op.inputs[2]].size
    return n


def step_macs(graph: Graph) -> int:
    return sum(ops.get(graph, k).macs(graph, op) for k, op in enumerate(graph.operators))


def compare(model: Path, schemes: list[str], num_classes: int | None, hyper: Hyper,
            data=None, steps: int = 0, progress=None, engine: str | None = None) -> list[Row]:
    rows = []
    for spec in schemes:
        plans = {}
        for fuse in (False, True):
            result = augment.augment(tflite_io.load(model), spec, num_classes, hyper, fuse=fuse)
            plans[fuse] = (result, memory.plan(result.graph))
        result, fused = plans[True]
        blob = tflite_io.serialize(result.graph)
        row = Row(scheme=result.scheme.name, trained_params=trained_params(result),
                  saved_bytes=memory.training_parts(result.graph).saved_bytes,
                  peak_separate=plans[False][1].total_bytes, peak_fused=fused.total_bytes,
                  arena_fused=fused.arena_bytes, trainable_bytes=fused.trainable_bytes,
                  optimizer_bytes=fused.optimizer_bytes, macs=step_macs(result.graph),
                  flash_bytes=len(blob))
        if data is not None:
            from .train import train
            _, history = train(result.graph, data, steps=steps, progress=progress,
                               engine=engine)
            row.accuracy = history.points[-1].val_accuracy
        rows.append(row)
    return rows
