"""The numpy reference executor: runs a graph operator by operator in file order."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import TTError
from ..ir import Graph


def check_inputs(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if len(inputs) != len(graph.inputs):
        raise TTError(f"model has {len(graph.inputs)} inputs, got {len(inputs)}")
    out = []
    for k, (index, x) in enumerate(zip(graph.inputs, inputs)):
        t = graph.tensors[index]
        x = np.asarray(x)
        if x.size != t.size:
            raise TTError(f"input {k} ({t.name}) needs shape {t.shape}, got {x.shape}")
        out.append(x.astype(t.dtype, copy=False).reshape(t.shape))
    return out


def run(graph: Graph, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor's value after one forward pass: tensor index -> array."""
    values: dict[int, np.ndarray] = {}
    for index, t in enumerate(graph.tensors):
        if t.data is not None:
            values[index] = t.data
    for index, x in zip(graph.inputs, check_inputs(graph, inputs)):
        values[index] = x
    for k, op in enumerate(graph.operators):
        opdef = ops.get(graph, k)
        args = [values.get(i) if i >= 0 else None for i in op.inputs]
        outs = opdef.forward(graph, op, args)
        for index, y in zip(op.outputs, outs):
            t = graph.tensors[index]
            values[index] = np.asarray(y).astype(t.dtype, copy=False).reshape(t.shape)
    return values


def outputs(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    values = run(graph, inputs)
    return [values[i] for i in graph.outputs]
