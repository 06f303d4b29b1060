"""Tensors no operator reads or writes, and no graph input or output names, removed (a
replaced classifier's weights): a model file ships them otherwise, and TFLM gives each one
a TfLiteEvalTensor in SRAM."""
from __future__ import annotations

from ..ir import Graph, Operator


def prune_tensors(graph: Graph, also: list[Operator] = (), drop: set[int] = frozenset()
                  ) -> dict[int, int]:
    """Remove unreferenced tensors in place and renumber the rest; returns old -> new index
    of the tensors kept. `also`: operators outside the graph (a record of what it was) whose
    tensors are kept and renumbered too, except those in `drop` (tensors a memory pass did
    away with), which become -1 there."""
    used = set(graph.inputs) | set(graph.outputs)
    for op in list(graph.operators):
        used.update(t for t in list(op.inputs) + list(op.outputs) + list(op.intermediates)
                    if t >= 0)
    for op in also:
        used.update(t for t in list(op.inputs) + list(op.outputs) + list(op.intermediates)
                    if t >= 0 and t not in drop)
    keep = [i for i in range(len(graph.tensors)) if i in used]
    new = {old: k for k, old in enumerate(keep)}
    if len(keep) == len(graph.tensors):
        return new

    def remap(ts):
        return [new.get(t, -1) if t >= 0 else t for t in ts]
    seen = set()
    for op in list(graph.operators) + list(also):
        if id(op) in seen:
            continue
        seen.add(id(op))
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        op.intermediates = remap(op.intermediates)
    graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
    graph.tensors = [graph.tensors[i] for i in keep]
    return new
