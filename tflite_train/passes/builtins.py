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


# the record's letters: fused_activation_function NONE, RELU, RELU_N1_TO_1, RELU6
LETTERS = {0: "N", 1: "R", 2: "1", 3: "6"}


def builtin_activations(graph: Graph) -> dict[str, int]:
    """Output name -> fused activation of every CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED: what augment notes before its memory passes."""
    return {graph.tensors[op.outputs[0]].name: fused_activation(op) for op in graph.operators
            if op.kind in tt_forward.BUILTIN.values()}


def _layers(graph: Graph):
    """(operator index, part) of every TT_* forward layer, in operator order: a
    TT_POINTWISE_DEPTHWISE is two, its expansion (0) and its depthwise layer (1)."""
    for k, op in enumerate(graph.operators):
        if op.kind in tt_forward.FORWARD:
            yield k, 0
        elif op.kind == tt_stream.KIND:
            yield from ((k, 0), (k, 1))


def hidden_activations(graph: Graph, before: dict[str, int]) -> str:
    """The fused activation of each TT_* forward layer (_layers' order, one letter each:
    LETTERS) as the builtin it replaced had it, when the int8 ranges do not tell them all
    (else ""): a RELU6 whose output grid ends at 0 and 6, or a RELU whose grid starts at 0,
    clamps exactly as NONE does in int8, not in float. augment records it in the metadata
    (memory.activations), `joined` and export restore them."""
    letters, hidden = [], False
    for k, part in _layers(graph):
        op, g = graph.operators[k], graph
        if op.kind == tt_stream.KIND:           # its two layers, on a copy with their mid
            g = copy.copy(graph)
            g.tensors = graph.tensors + [tt_stream.mid_tensor(graph, op)]
            op = tt_stream.split(g, op, len(g.tensors) - 1)[part]
        own = tt_forward.activation_of(options_of(op), g.tensors[op.outputs[0]])
        act = before.get(tt_forward.layer_name(g, op), own)
        hidden |= act != own
        letters.append(LETTERS[act])
    return "".join(letters) if hidden else ""


def recorded_activations(graph: Graph) -> dict[tuple[int, int], int]:
    """(operator index, part) -> fused activation, as a training model's metadata records
    them (hidden_activations; empty when it records none); to_builtin checks each against
    the op's range."""
    from ..augment import METADATA_KEY
    from ..errors import ModelError
    raw = graph.metadata.get(METADATA_KEY)
    try:
        record = json.loads(raw).get("memory", {}).get("activations", "") if raw else ""
    except (ValueError, AttributeError):
        record = ""
    if not record:
        return {}
    layers = list(_layers(graph))
    codes = {v: k for k, v in LETTERS.items()}
    if not isinstance(record, str) or len(record) != len(layers) \
            or not set(record) <= set(codes):
        raise ModelError("training model metadata: memory.activations does not describe "
                         f"its {len(layers)} TT_* forward layers")
    return {layer: codes[c] for layer, c in zip(layers, record)}


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
            g.operators[k] = tt_forward.to_builtin(g, op, part, acts.get((k, 0)))
        elif op.kind in JOIN_GRADS:
            g.operators[k] = make_op(JOIN_GRADS[op.kind], tt_forward.joined_inputs(op.inputs),
                                     list(op.outputs), grad_mode(g, op), **options_of(op))
    g.operators = [new for k, op in enumerate(g.operators)
                   for new in (tt_stream.to_builtins(g, op, (acts.get((k, 0)), acts.get((k, 1))))
                               if op.kind == tt_stream.KIND else [op])]
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
