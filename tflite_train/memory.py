"""Tensor lifetimes and arena plans.

`tflm_buffers` lists what TFLM's MicroAllocator hands to its planner for a given operator
order (non-constant, non-variable tensors and the kernels' scratch requests, sizes rounded
up to 16 bytes, lifetimes in "allocation scopes": graph inputs at 0, operator k at k+1),
and `greedy_plan` reproduces TFLM's GreedyMemoryPlanner on them, tie-breaking included, so
that the peak we report is the arena head TFLM will actually use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Graph

ARENA_ALIGN = 16


def align_up(n: int, a: int = ARENA_ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    name: str
    size: int              # bytes requested
    first: int             # allocation scope it is created in
    last: int              # last allocation scope that uses it
    tensor: int | None = None      # tensor index, None for scratch
    op: int | None = None          # requesting operator, for scratch

    @property
    def aligned(self) -> int:
        return align_up(self.size)


def _options(op):
    from .training_ops import options_of
    return options_of(op)


# Floats of scratch the fused update kernels request (schema: scratch_floats): one output
# channel's gradient for conv and FC, the whole (small) gradient for depthwise and biases.
FUSED_UPDATE_SCRATCH = {
    "TT_CONV2D_WEIGHT_UPDATE": lambda g, op: (g.tensors[op.inputs[3]].shape[1]
                                              * g.tensors[op.inputs[3]].shape[2]
                                              * _options(op)["channels"]),
    "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE": lambda g, op: g.tensors[op.inputs[3]].size,
    "TT_FULLY_CONNECTED_WEIGHT_UPDATE": lambda g, op: _options(op)["channels"],
    "TT_BIAS_UPDATE": lambda g, op: g.tensors[op.inputs[2]].size,
}


INPUT_GRADS = ("TT_CONV2D_INPUT_GRAD", "TT_DEPTHWISE_CONV2D_INPUT_GRAD",
               "TT_FULLY_CONNECTED_INPUT_GRAD")


def scratch_requests(graph: Graph, k: int) -> list[int]:
    """Bytes of the scratch buffers TFLM's reference kernel for operator k requests."""
    op = graph.operators[k]
    if op.kind in FUSED_UPDATE_SCRATCH:
        return [4 * FUSED_UPDATE_SCRATCH[op.kind](graph, op)]
    if op.kind in INPUT_GRADS and _options(op).get("passes") == 1:
        return [4 * graph.tensors[op.outputs[0]].size]    # int8 gradients, one pass: int32 dx
    if op.kind == "TT_LOSS_SOFTMAX_CE" and len(op.outputs) > 2:
        return [4 * graph.tensors[op.outputs[1]].size]    # int8 gradients: float32 dlogits
    if op.kind == "MEAN":
        x, axes, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                      graph.tensors[op.outputs[0]])
        acc = [4 * y.size] if x.dtype in ("int8", "int16") else []
        return acc + [4 * len(x.shape), 4 * axes.size]
    return []


def tflm_buffers(graph: Graph) -> list[Buffer]:
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, scope: int, create: bool) -> None:
        if create:
            first.setdefault(t, scope)
        last[t] = scope

    for t in graph.inputs:
        touch(t, 0, True)
    scratch: list[Buffer] = []
    for k, op in enumerate(graph.operators):
        scope = k + 1
        for t in op.outputs:
            first.setdefault(t, scope)
        for t in op.inputs:
            if t >= 0:
                touch(t, scope, False)
        for t in op.outputs:
            touch(t, scope, False)
        for j, size in enumerate(scratch_requests(graph, k)):
            scratch.append(Buffer(f"scratch{j}@{k}:{op.kind}", size, scope, scope, op=k))
    end = len(graph.operators)
    for t in graph.outputs:
        touch(t, end, True)

    buffers = []
    for index, t in enumerate(graph.tensors):
        if t.is_constant or t.is_variable or t.nbytes == 0 or index not in first:
            continue
        buffers.append(Buffer(t.name or f"tensor{index}", t.nbytes, first[index],
                              last.get(index, first[index]), tensor=index))
    return buffers + scratch


def greedy_plan(buffers: list[Buffer]) -> tuple[list[int], int]:
    """(offset of each buffer, arena bytes) exactly as TFLM's GreedyMemoryPlanner."""
    # TFLM fills its sort array from the tail, then bubble-sorts by size, descending;
    # equal sizes therefore keep reverse insertion order.
    return place(buffers, sorted(range(len(buffers)), key=lambda i: (-buffers[i].aligned, -i)))


def place(buffers: list[Buffer], order: list[int]) -> tuple[list[int], int]:
    """First-fit placement in `order`: each buffer goes to the lowest offset that does not
    overlap, in space, any already placed buffer alive at the same time (TFLM's rule)."""
    n = len(buffers)
    if n == 0:
        return [], 0
    placed: list[tuple[int, int]] = []         # (offset, buffer id), kept sorted by offset
    offsets = [0] * n
    for i in order:
        b = buffers[i]
        candidate = 0
        for off, j in placed:
            o = buffers[j]
            if o.first > b.last or b.first > o.last:
                continue                        # not alive at the same time
            if off - candidate >= b.aligned:
                break                           # fits in the gap before this one
            candidate = max(candidate, off + o.aligned)
        offsets[i] = candidate
        # insert after every entry with offset <= candidate (TFLM's list order)
        pos = 0
        while pos < len(placed) and placed[pos][0] <= candidate:
            pos += 1
        placed.insert(pos, (candidate, i))
    return offsets, max(offsets[i] + buffers[i].aligned for i in range(n))


# Orders tried by our own offline planner; TFLM's (largest first) is one of them, so the
# offline plan is never worse than what TFLM would do online.
PLAN_ORDERS = {
    "largest first (TFLM)": lambda b: (-b.aligned,),
    "longest-lived first": lambda b: (-(b.last - b.first), -b.aligned),
    "largest area first": lambda b: (-b.aligned * (b.last - b.first + 1), -b.aligned),
    "earliest first": lambda b: (b.first, -b.aligned),
}


def offline_plan(buffers: list[Buffer]) -> tuple[list[int], int, str]:
    """The smallest of the first-fit plans over PLAN_ORDERS: (offsets, bytes, order name)."""
    best = None
    for name, key in PLAN_ORDERS.items():
        if name.endswith("(TFLM)"):
            offsets, size = greedy_plan(buffers)
        else:
            offsets, size = place(buffers, sorted(range(len(buffers)),
                                                  key=lambda i: key(buffers[i]) + (i,)))
        if best is None or size < best[1]:
            best = (offsets, size, name)
    return best


def offline_metadata(graph: Graph, buffers: list[Buffer], offsets: list[int]) -> bytes:
    """TFLM's OfflineMemoryAllocation buffer: [version 0, 1 subgraph, n tensors, offset of
    each tensor or -1]. Scratch buffers stay online: TFLM fits them around these."""
    table = np.full(len(graph.tensors), -1, np.int32)
    for b, off in zip(buffers, offsets):
        if b.tensor is not None:
            table[b.tensor] = off
    return np.concatenate([np.array([0, 1, len(graph.tensors)], np.int32), table]).tobytes()


OFFLINE_KEY = "OfflineMemoryAllocation"


def live_bytes(graph: Graph, buffers: list[Buffer] | None = None) -> list[int]:
    """Bytes alive during each operator (the lower bound any planner must meet)."""
    buffers = tflm_buffers(graph) if buffers is None else buffers
    return [sum(b.aligned for b in buffers if b.first <= k + 1 <= b.last)
            for k in range(len(graph.operators))]


@dataclass
class InferencePlan:
    buffers: list[Buffer]
    offsets: list[int]
    arena_bytes: int            # TFLM's planned arena head for this operator order
    live: list[int]             # bytes alive at each operator
    peak_op: int                # operator with the most live bytes


def plan_inference(graph: Graph) -> InferencePlan:
    buffers = tflm_buffers(graph)
    offsets, peak = greedy_plan(buffers)
    live = live_bytes(graph, buffers)
    peak_op = max(range(len(live)), key=live.__getitem__) if live else 0
    return InferencePlan(buffers, offsets, peak, live, peak_op)


@dataclass
class TrainingParts:
    saved: list[int]             # forward tensors the backward pass reads
    saved_bytes: int
    mask_bytes: int              # the part of saved_bytes that is 1-bit activation masks
    trainable_bytes: int         # trained parameters (variables in SRAM)
    optimizer_bytes: int         # momentum buffers


def training_parts(graph: Graph) -> TrainingParts:
    """Split a training model's memory into the parts the paper talks about."""
    loss_k = next((k for k, op in enumerate(graph.operators)
                   if op.kind == "TT_LOSS_SOFTMAX_CE"), None)
    if loss_k is None:
        raise ValueError("not a training model: no TT_LOSS_SOFTMAX_CE operator")
    produced = set(graph.inputs)
    for op in graph.operators[:loss_k]:
        produced.update(op.outputs)
    read_after = {t for op in graph.operators[loss_k + 1:] for t in op.inputs if t >= 0}
    label = graph.operators[loss_k].inputs[1]
    saved = sorted(t for t in produced & read_after
                   if t != label and not graph.tensors[t].is_constant
                   and not graph.tensors[t].is_variable)
    masks = [t for t in saved if graph.tensors[t].dtype == "uint8"]
    momentum = [i for i, t in enumerate(graph.tensors)
                if t.is_variable and t.dtype == "float32"]
    params = [i for i, t in enumerate(graph.tensors) if t.is_variable and i not in momentum]
    return TrainingParts(
        saved=saved, saved_bytes=sum(graph.tensors[t].nbytes for t in saved),
        mask_bytes=sum(graph.tensors[t].nbytes for t in masks),
        trainable_bytes=sum(graph.tensors[t].nbytes for t in params),
        optimizer_bytes=sum(graph.tensors[t].nbytes for t in momentum))


CATEGORIES = ("activations", "saved activations", "gradients", "scratch")


def categorize(graph: Graph, buffers: list[Buffer]) -> list[str]:
    """What each planned buffer is, for the training-memory breakdown: forward activations,
    saved activations (forward tensors the backward pass reads; masks included), gradients
    (everything made from the loss on), or kernel scratch."""
    loss_k = next((k for k, op in enumerate(graph.operators)
                   if op.kind == "TT_LOSS_SOFTMAX_CE"), None)
    read_after: set[int] = set()
    if loss_k is not None:
        read_after = {t for op in graph.operators[loss_k + 1:] for t in op.inputs if t >= 0}
    kinds = []
    for b in buffers:
        if b.tensor is None:
            kinds.append("scratch")
        elif loss_k is not None and b.first > loss_k:     # scope k+1 = operator k
            kinds.append("gradients")
        elif b.tensor in read_after:
            kinds.append("saved activations")
        else:
            kinds.append("activations")
    return kinds


@dataclass
class Plan:
    """A graph's SRAM, as its parts. `timeline[k]` maps category -> bytes alive during
    operator k; the arena is TFLM's greedy plan for the file's operator order."""
    arena_bytes: int
    peak_op: int
    peak_parts: dict[str, int]
    timeline: list[dict[str, int]]
    trainable_bytes: int
    optimizer_bytes: int
    training: bool

    @property
    def total_bytes(self) -> int:
        return self.arena_bytes + self.trainable_bytes + self.optimizer_bytes


def plan(graph: Graph) -> Plan:
    buffers = tflm_buffers(graph)
    _, arena = greedy_plan(buffers)
    kinds = categorize(graph, buffers)
    timeline = []
    for k in range(len(graph.operators)):
        parts = dict.fromkeys(CATEGORIES, 0)
        for b, kind in zip(buffers, kinds):
            if b.first <= k + 1 <= b.last:
                parts[kind] += b.aligned
        timeline.append(parts)
    peak_op = max(range(len(timeline)), key=lambda k: sum(timeline[k].values())) \
        if timeline else 0
    training = any(op.kind == "TT_LOSS_SOFTMAX_CE" for op in graph.operators)
    trainable = optimizer = 0
    if training:
        parts = training_parts(graph)
        trainable, optimizer = parts.trainable_bytes, parts.optimizer_bytes
    return Plan(arena, peak_op, timeline[peak_op] if timeline else {}, timeline,
                trainable, optimizer, training)


def choose_passes(graph: Graph) -> list[int]:
    """The int8 input gradients' form (schema: option passes): one pass, into an int32
    scratch of dx's size, wherever that scratch does not raise the arena (TFLM's greedy plan
    of this operator order), two passes (the accumulators computed twice, no scratch)
    elsewhere: the peak decides, then speed. Tries the largest scratch first; sets the
    options in place and returns the operators left at two passes."""
    from .training_ops import set_option
    ops_ = [k for k, op in enumerate(graph.operators)
            if op.kind in INPUT_GRADS and "passes" in _options(op)]
    for k in ops_:
        set_option(graph.operators[k], "passes", 2)
    arena = plan(graph).arena_bytes
    two = []
    for k in sorted(ops_, key=lambda k: -graph.tensors[graph.operators[k].outputs[0]].size):
        set_option(graph.operators[k], "passes", 1)
        if plan(graph).arena_bytes > arena:
            set_option(graph.operators[k], "passes", 2)
            two.append(k)
    return sorted(two)


def tflm_persistent_bytes(graph: Graph, data: bytes, training: bool) -> int | None:
    """TFLM's persistent tail for the model (a training model with our ops registered), less
    the variables it holds, which a plan lists as trained parameters and optimizer state;
    None when TFLM cannot allocate it. Measured in the 64-bit wheel: an upper bound for a
    32-bit target, whose TFLM structs are smaller."""
    from .errors import TTError
    from .runtime.tflm import arena_usage
    from .runtime.tflm_engine import training_arena_usage
    try:
        tail = (training_arena_usage(data) if training else arena_usage(data))["tail"]
    except (RuntimeError, ValueError, TTError):
        return None
    return tail - sum(align_up(t.nbytes) for t in graph.tensors if t.is_variable)
