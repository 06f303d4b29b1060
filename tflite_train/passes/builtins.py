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
import json

import numpy as np

from ..ir import Graph
from ..ops import fused_activation, tt_forward, tt_stream
from ..training_ops import grad_mode, make_op, options_of
from .split_filters import SPLIT_GRADS

JOIN_GRADS = {v: k for k, v in SPLIT_GRADS.items()}


def builtin_activations(graph: Graph) -> dict[str, int]:
    """Output name -> fused activation of every CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED: what augment notes before its memory passes."""
    return {graph.tensors[op.outputs[0]].name: fused_activation(op) for op in graph.operators
            if op.kind in tt_forward.BUILTIN.values()}


def hidden_activations(graph: Graph, before: dict[str, int]) -> dict[str, str]:
    """The fused activations (by output name, as names) of the builtins `before` that the
    TT_* forward ops of `graph` replaced and whose int8 range does not tell them: a RELU6
    whose output's grid ends at 0 and 6 clamps exactly as NONE does in int8, not in float.
    augment records them in its metadata (memory.activations), `joined` restores them."""
    hidden = {}
    for op in graph.operators:
        g, parts = graph, [op] if op.kind in tt_forward.FORWARD else []
        if op.kind == tt_stream.KIND:           # its two layers, on a copy with their mid
            g = copy.copy(graph)
            g.tensors = graph.tensors + [tt_stream.mid_tensor(graph, op)]
            parts = tt_stream.split(g, op, len(g.tensors) - 1)
        for part in parts:
            name = tt_forward.layer_name(g, part)
            y = g.tensors[part.outputs[0]]
            if name in before and tt_forward.activation_of(options_of(part), y) != before[name]:
                hidden[name] = tt_forward.ACTIVATIONS[before[name]]
    return hidden


def recorded_activations(graph: Graph) -> dict[str, int]:
    """hidden_activations as a training model's metadata records them (empty if none)."""
    from ..augment import METADATA_KEY
    raw = graph.metadata.get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        record = json.loads(raw).get("memory", {}).get("activations", {})
    except (ValueError, AttributeError):
        return {}
    codes = {v: k for k, v in tt_forward.ACTIVATIONS.items()}
    return {name: codes[a] for name, a in record.items() if a in codes} \
        if isinstance(record, dict) else {}


def joined(graph: Graph) -> Graph:
    g = copy.deepcopy(graph)
    if not any(op.kind in tt_forward.FORWARD or op.kind in JOIN_GRADS
               or op.kind == tt_stream.KIND for op in g.operators):
        return g
    acts = recorded_activations(g)
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
            g.operators[k] = tt_forward.to_builtin(
                g, op, part, acts.get(tt_forward.layer_name(g, op)))
        elif op.kind in JOIN_GRADS:
            g.operators[k] = make_op(JOIN_GRADS[op.kind], tt_forward.joined_inputs(op.inputs),
                                     list(op.outputs), grad_mode(g, op), **options_of(op))
    g.operators = [new for op in g.operators
                   for new in (tt_stream.to_builtins(g, op, acts) if op.kind == tt_stream.KIND
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
