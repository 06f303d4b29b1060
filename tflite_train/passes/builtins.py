"""The memory passes undone, for tools that read a training model's forward pass as TFLM
builtins (the fp32 baseline, gradient checks): every TT_* forward op becomes the builtin
it stands for, and a filter split in two becomes one trained variable again whose update
covers its first `channels` input channels, as augment wrote it without the split."""
from __future__ import annotations

import copy

import numpy as np

from ..ir import Graph, Tensor
from ..ops import tt_forward
from ..training_ops import options_of
from .split_filters import SPLIT_GRADS

JOIN_GRADS = {v: k for k, v in SPLIT_GRADS.items()}


def joined(graph: Graph) -> Graph:
    g = copy.deepcopy(graph)
    init = next((op for op in g.operators if op.kind == "TT_INIT"), None)
    initial = {} if init is None else dict(zip(init.inputs[1::2], init.inputs[0::2]))
    whole_of: dict[int, int] = {}            # trained part -> the whole filter
    for k, op in enumerate(g.operators):
        if op.kind not in tt_forward.FORWARD:
            continue
        pos = tt_forward.positions(op.kind)
        part = op.inputs[pos["filter"]]
        rest = op.inputs[pos["rest"]] if pos["rest"] is not None else -1
        w = part
        if rest >= 0:
            w = whole_of.get(part) or _join(g, part, rest, initial, init)
            whole_of[part] = w
        g.operators[k] = tt_forward.to_builtin(g, op, w)
    for k, op in enumerate(g.operators):
        if op.kind in JOIN_GRADS:
            dy, mask, part, _, label = op.inputs
            from ..training_ops import make_op
            g.operators[k] = make_op(JOIN_GRADS[op.kind], [dy, mask, whole_of[part], label],
                                     list(op.outputs), **options_of(op))
        elif op.kind != "TT_INIT":
            op.inputs = [whole_of.get(t, t) if t >= 0 else t for t in op.inputs]
    return g


def _join(g: Graph, part: int, rest: int, initial: dict, init) -> int:
    """A whole filter: a variable whose initial value joins the part's and the rest's (the
    part a variable), or a constant joining both (the part constant)."""
    p, r = g.tensors[part], g.tensors[rest]
    shape = p.shape[:-1] + (p.shape[-1] + r.shape[-1],)
    if not p.is_variable:
        return g.add_tensor(Tensor(p.name, shape, "int8", p.quant,
                                   data=np.concatenate([p.data, r.data], axis=-1)))
    w = g.add_tensor(Tensor(p.name, shape, "int8", p.quant, is_variable=True))
    value = np.concatenate([g.tensors[initial[part]].data, r.data], axis=-1)
    c = g.add_tensor(Tensor(f"{p.name}/init", shape, "int8", data=value))
    pairs = list(init.inputs)
    at = pairs.index(part, 1)
    pairs[at - 1:at + 1] = [c, w]
    init.inputs = pairs
    return w
