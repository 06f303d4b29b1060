"""The memory passes undone, for tools that read a training model's forward pass as TFLM
builtins (the fp32 baseline, the code generator, which plans memory its own way): every
TT_* forward op becomes the builtin(s) it stands for (a TT_POINTWISE_DEPTHWISE the two
layers, its expansion a tensor again), and a filter split in two is one tensor again whose
update covers its first `channels` input channels, as augment writes it without the split.
Tensor indices do not change (the trained part's tensor becomes the whole filter; an
expansion is appended), so what refers to the training model's tensors, checkpoints
included, still does; operator indices do after a TT_POINTWISE_DEPTHWISE."""
from __future__ import annotations

import copy

import numpy as np

from ..ir import Graph
from ..ops import tt_forward, tt_stream
from ..training_ops import grad_mode, make_op, options_of
from .split_filters import SPLIT_GRADS

JOIN_GRADS = {v: k for k, v in SPLIT_GRADS.items()}


def joined(graph: Graph) -> Graph:
    g = copy.deepcopy(graph)
    if not any(op.kind in tt_forward.FORWARD or op.kind in JOIN_GRADS
               or op.kind == tt_stream.KIND for op in g.operators):
        return g
    init = next((op for op in g.operators if op.kind == "TT_INIT"), None)
    initial = {} if init is None else dict(zip(init.inputs[1::2], init.inputs[0::2]))
    joined_parts: set[int] = set()
    for k, op in enumerate(g.operators):
        if op.kind in tt_forward.FORWARD:
            pos = tt_forward.positions(op.kind)
            part = op.inputs[pos["filter"]]
            rest = op.inputs[pos["rest"]] if pos["rest"] is not None else -1
            if rest >= 0 and part not in joined_parts:
                _join(g, part, rest, initial)
                joined_parts.add(part)
            g.operators[k] = tt_forward.to_builtin(g, op, part)
        elif op.kind in JOIN_GRADS:
            g.operators[k] = make_op(JOIN_GRADS[op.kind], tt_forward.joined_inputs(op.inputs),
                                     list(op.outputs), grad_mode(g, op), **options_of(op))
    g.operators = [new for op in g.operators
                   for new in (tt_stream.to_builtins(g, op) if op.kind == tt_stream.KIND
                               else [op])]
    return g


def _join(g: Graph, part: int, rest: int, initial: dict) -> None:
    """The part's tensor becomes the whole filter: a variable whose initial value joins
    the part's and the rest's, or a constant joining both."""
    p, r = g.tensors[part], g.tensors[rest]
    if p.is_variable:
        c = g.tensors[initial[part]]
        c.data = np.concatenate([c.data, r.data], axis=-1)
        c.shape = c.data.shape
        p.shape = c.shape
    else:
        p.data = np.concatenate([p.data, r.data], axis=-1)
        p.shape = p.data.shape
