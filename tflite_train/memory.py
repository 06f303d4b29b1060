"""Tensor lifetimes and arena plans.

`tflm_buffers` lists what TFLM's MicroAllocator hands to its planner for a given operator
order (non-constant, non-variable tensors and the kernels' scratch requests, sizes rounded
up to 16 bytes, lifetimes in "allocation scopes": graph inputs at 0, operator k at k+1),
and `greedy_plan` reproduces TFLM's GreedyMemoryPlanner on them, tie-breaking included, so
that the peak we report is the arena head TFLM will actually use.
"""
from __future__ import annotations

import bisect
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
    align: int = ARENA_ALIGN       # sizes are rounded up to this (TFLM: 16)
    tensors: tuple[int, ...] = ()  # codegen plan: every tensor sharing these bytes
    parts: tuple = ()              # codegen plan: (first, last, lo, hi) of each, within it

    @property
    def aligned(self) -> int:
        return align_up(self.size, self.align)

    def rects(self) -> tuple:
        """(first, last, lo, hi): the bytes it occupies over time, relative to its offset."""
        return self.parts or ((self.first, self.last, 0, self.aligned),)


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
               "TT_FULLY_CONNECTED_INPUT_GRAD", "TT_CONV2D_SPLIT_INPUT_GRAD",
               "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD")


def scratch_requests(graph: Graph, k: int) -> list[int]:
    """Bytes of the scratch buffers TFLM's reference kernel for operator k requests."""
    op = graph.operators[k]
    if op.kind in ("TT_CONV2D", "TT_DEPTHWISE_CONV2D"):
        from .ops.tt_forward import scratch_bytes
        n = scratch_bytes(graph, op)
        return [n] if n else []
    if op.kind == "TT_POINTWISE_DEPTHWISE":
        from .ops.tt_stream import window_bytes
        return [window_bytes(graph, op)]
    if op.kind in FUSED_UPDATE_SCRATCH:
        # at a batch > 1 the plain gradient kernel writes the whole trained region (the
        # accumulator's size) before the accumulation, not one filter's at a time
        from .training_ops import accumulator_input
        acc = accumulator_input(graph, op)
        return [4 * (graph.tensors[acc].size if acc >= 0
                     else FUSED_UPDATE_SCRATCH[op.kind](graph, op))]
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


def lifetimes(graph: Graph, keep_outputs: bool = True) -> tuple[dict[int, int], dict[int, int]]:
    """(first, last) allocation scope of every tensor an operator or the graph touches:
    graph inputs are created at scope 0, operator k's tensors at scope k + 1, and graph
    outputs stay alive to the last scope (TFLM's rules; `keep_outputs` False: a generated
    program hands an output over as soon as it is made, so it lives only until its last
    reader)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, scope: int, create: bool) -> None:
        if create:
            first.setdefault(t, scope)
        last[t] = scope

    for t in graph.inputs:
        touch(t, 0, True)
    for k, op in enumerate(graph.operators):
        scope = k + 1
        for t in op.outputs:
            first.setdefault(t, scope)
        for t in op.inputs:
            if t >= 0:
                touch(t, scope, False)
        for t in op.outputs:
            touch(t, scope, False)
    end = len(graph.operators)
    for t in graph.outputs:
        touch(t, end if keep_outputs else first.get(t, 0), True)
        if not keep_outputs:
            last[t] = max(last[t], first[t])
    return first, last


def tflm_buffers(graph: Graph) -> list[Buffer]:
    first, last = lifetimes(graph)
    scratch = [Buffer(f"scratch{j}@{k}:{op.kind}", size, k + 1, k + 1, op=k)
               for k, op in enumerate(graph.operators)
               for j, size in enumerate(scratch_requests(graph, k))]
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


def place(buffers: list[Buffer], order: list[int],
          fixed: dict[int, int] | None = None) -> tuple[list[int], int]:
    """First-fit placement in `order`: each buffer goes to the lowest offset that does not
    overlap, in space, any already placed buffer alive at the same time (TFLM's rule).
    `fixed`: buffers with an offline offset, which TFLM takes as given."""
    n = len(buffers)
    if n == 0:
        return [], 0
    fixed = fixed or {}
    size = [b.aligned for b in buffers]
    first = [b.first for b in buffers]
    last = [b.last for b in buffers]
    placed: list[int] = []                     # buffer ids, kept sorted by offset
    starts: list[int] = []                     # their offsets
    offsets = [0] * n
    for i in order:
        if i in fixed:
            candidate = fixed[i]
        else:
            candidate, born, dies, s = 0, first[i], last[i], size[i]
            for off, j in zip(starts, placed):
                if first[j] > dies or born > last[j]:
                    continue                    # not alive at the same time
                if off - candidate >= s:
                    break                       # fits in the gap before this one
                candidate = max(candidate, off + size[j])
        offsets[i] = candidate
        # insert after every entry with offset <= candidate (TFLM's list order)
        pos = bisect.bisect_right(starts, candidate)
        placed.insert(pos, i)
        starts.insert(pos, candidate)
    return offsets, max(offsets[i] + size[i] for i in range(n))


def place_parts(buffers: list[Buffer], order: list[int]) -> tuple[list[int], int]:
    """First-fit placement in `order` of buffers made of parts (Buffer.rects: a tensor group
    whose members live at different times): each goes to the lowest offset where none of
    its parts overlaps, in time and space, a part already placed. The offsets tried are 0
    and the ends of the parts alive at the same time, each less the start of one of its
    own parts."""
    placed: list[tuple[int, int, int, int]] = []       # absolute (first, last, lo, hi)
    offsets = [0] * len(buffers)
    for i in order:
        rects = buffers[i].rects()
        if len(rects) == 1:                  # most buffers: one tensor, one lifetime
            first, last = rects[0][0], rects[0][1]
            near = [p for p in placed if p[0] <= last and first <= p[1]]
        else:
            near = [p for p in placed if any(p[0] <= r[1] and r[0] <= p[1] for r in rects)]
        if len(rects) == 1 and rects[0][2] == 0:
            # first fit by lower end: an offset below a part's end is blocked by it
            base, size = 0, rects[0][3]
            for p in sorted(near, key=lambda p: p[2]):
                if p[2] >= base + size:
                    break
                base = max(base, p[3])
        else:
            base = _lowest_free(near, rects)
        offsets[i] = base
        placed += [(r[0], r[1], base + r[2], base + r[3]) for r in rects]
    arena = max((offsets[i] + r[3] for i, b in enumerate(buffers) for r in b.rects()),
                default=0)
    return offsets, arena


def _lowest_free(near: list[tuple], rects: tuple) -> int:
    """The lowest candidate offset (0, or a near part's end less one of `rects`' starts)
    at which no rect overlaps, in time and space, a near part. A part and a rect alive
    together forbid the open interval of offsets (part lo - rect hi, part hi - rect lo);
    candidates in ascending order meet the intervals in the order of their lower ends, so
    one sweep finds the first candidate that no interval begun below it still covers.
    (The largest candidate always fits: it puts every rect above every near part.)"""
    forbidden = sorted((p[2] - r[3], p[3] - r[2]) for r in rects for p in near
                       if p[0] <= r[1] and r[0] <= p[1])
    candidates = sorted({0} | {p[3] - r[2] for p in near for r in rects if p[3] - r[2] > 0})
    j, reach = 0, 0
    for c in candidates:
        while j < len(forbidden) and forbidden[j][0] < c:
            reach = max(reach, forbidden[j][1])
            j += 1
        if reach <= c:
            return c
    raise AssertionError("unreachable: the largest candidate is free")


# Orders tried by our own offline planner; TFLM's (largest first) is one of them, so the
# offline plan is never worse than what TFLM would do online.
PLAN_ORDERS = {
    "largest first (TFLM)": lambda b: (-b.aligned,),
    "longest-lived first": lambda b: (-(b.last - b.first), -b.aligned),
    "largest area first": lambda b: (-b.aligned * (b.last - b.first + 1), -b.aligned),
    "earliest first": lambda b: (b.first, -b.aligned),
}


def offline_plan(buffers: list[Buffer], placer=None) -> tuple[list[int], int, str]:
    """The smallest of the first-fit plans over PLAN_ORDERS: (offsets, bytes, order name).
    `placer(buffers, order)`: place (TFLM's rule) unless given."""
    best = None
    for name, key in PLAN_ORDERS.items():
        if name.endswith("(TFLM)") and placer is None:
            offsets, size = greedy_plan(buffers)
        elif name.endswith("(TFLM)"):
            offsets, size = placer(buffers, sorted(range(len(buffers)),
                                                   key=lambda i: (-buffers[i].aligned, -i)))
        else:
            offsets, size = (placer or place)(buffers, sorted(
                range(len(buffers)), key=lambda i: key(buffers[i]) + (i,)))
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
    optimizer_bytes: int         # momentum buffers, rounding residuals
    accumulator_bytes: int = 0   # the batch's gradient sums (augment --batch B > 1)


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
    from .training_ops import accumulator_tensors, residual_tensors
    accumulators = accumulator_tensors(graph)
    # optimizer state: momentum buffers and the rounding residuals (int8, 1 B a weight)
    residuals = residual_tensors(graph)
    momentum = [i for i, t in enumerate(graph.tensors)
                if t.is_variable and (t.dtype == "float32" or i in residuals)
                and i not in accumulators]
    params = [i for i, t in enumerate(graph.tensors)
              if t.is_variable and i not in momentum and i not in accumulators]
    return TrainingParts(
        saved=saved, saved_bytes=sum(graph.tensors[t].nbytes for t in saved),
        mask_bytes=sum(graph.tensors[t].nbytes for t in masks),
        trainable_bytes=sum(graph.tensors[t].nbytes for t in params),
        optimizer_bytes=sum(graph.tensors[t].nbytes for t in momentum),
        accumulator_bytes=sum(graph.tensors[t].nbytes for t in accumulators))


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
    accumulator_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.arena_bytes + self.trainable_bytes + self.optimizer_bytes \
            + self.accumulator_bytes


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
    trainable = optimizer = accumulators = 0
    if training:
        parts = training_parts(graph)
        trainable, optimizer = parts.trainable_bytes, parts.optimizer_bytes
        accumulators = parts.accumulator_bytes
    return Plan(arena, peak_op, timeline[peak_op] if timeline else {}, timeline,
                trainable, optimizer, training, accumulators)


def choose_passes(graph: Graph, arena_of=None, limit: int = 0) -> list[int]:
    """The int8 input gradients' form (schema: option passes): one pass, into an int32
    scratch of dx's size, wherever that scratch does not raise the arena (`arena_of(graph)`,
    by default TFLM's greedy plan of this operator order; codegen passes its own) above the
    arena of two passes everywhere or `limit` bytes, whichever is larger; two passes (the
    accumulators computed twice, no scratch) elsewhere: the peak decides, then speed. Tries
    the largest scratch first; sets the options in place and returns the operators left at
    two passes."""
    from .training_ops import set_option
    arena_of = arena_of or (lambda g: plan(g).arena_bytes)
    ops_ = [k for k, op in enumerate(graph.operators)
            if op.kind in INPUT_GRADS and "passes" in _options(op)]
    if not ops_:
        return []
    for k in ops_:
        set_option(graph.operators[k], "passes", 2)
    arena = max(arena_of(graph), limit)
    two = []
    for k in sorted(ops_, key=lambda k: -graph.tensors[graph.operators[k].outputs[0]].size):
        set_option(graph.operators[k], "passes", 1)
        if arena_of(graph) > arena:
            set_option(graph.operators[k], "passes", 2)
            two.append(k)
    return sorted(two)


def tflm_persistent_bytes(graph: Graph, model: Graph | bytes, training: bool) -> int | None:
    """TFLM's persistent tail for the model (a training model with our ops registered), less
    the variables it holds, which a plan lists as trained parameters and optimizer state;
    None when TFLM cannot allocate it. Measured in the 64-bit wheel: an upper bound for a
    32-bit target, whose TFLM structs are smaller."""
    from .errors import TTError
    from .runtime.tflm import arena_usage
    from .runtime.tflm_engine import training_arena_usage
    try:
        tail = (training_arena_usage(model) if training else arena_usage(model))["tail"]
    except (RuntimeError, ValueError, TTError):
        return None
    return tail - sum(align_up(t.nbytes) for t in graph.tensors if t.is_variable)


# --- the generated program's plan (codegen) ----------------------------------------------------
#
# A generated program (tflite_train/codegen) has no interpreter: its arena holds exactly the
# activations, saved activations, gradients and kernel scratch of one training step, sized
# to 4 bytes (float32 is the widest element it holds), and it may let one tensor reuse
# another's bytes where the plan proves it safe:
#   - a view (RESHAPE and its gradient): the output IS the input's bytes; both stay
#     readable, so the shared bytes live as long as either;
#   - an overwrite (in-place depthwise convolution, ADD or requantization of same-shape
#     tensors): the kernel writes the output over its input's first bytes, which is safe
#     only when nothing reads those bytes after that operator: the input and every tensor
#     already sharing its bytes are last read there.

CODEGEN_ALIGN = 4


@dataclass(frozen=True)
class AliasRequest:
    op: int                # the operator that makes `output`
    output: int            # tensor
    input: int             # tensor whose bytes `output` would reuse
    view: bool             # True: same bytes, both readable; False: output overwrites input
    scratch: int = 0       # bytes of working memory the in-place form needs at `op`
    shift: int = 0         # the output starts this many bytes before the input (a kernel
                           # that writes its output rows only over input rows already read;
                           # negative: after it)


@dataclass
class CodegenPlan:
    buffers: list[Buffer]          # tensor groups (Buffer.tensors) and scratch (Buffer.op)
    offsets: list[int]             # of each buffer
    arena_bytes: int
    order: str                     # the placement order that gave the smallest arena
    aliases: list[AliasRequest]    # the requests the plan accepted
    refused: list[AliasRequest]    # and those it could not (the input is read later)
    live: list[int]                # bytes alive during each operator
    peak_op: int                   # operator with the most bytes alive
    within: dict[int, int]         # tensor -> its offset inside its buffer

    def offset_of(self, tensor: int) -> int:
        for b, off in zip(self.buffers, self.offsets):
            if tensor in b.tensors:
                return off + self.within[tensor]
        raise KeyError(tensor)

    def scratch_offset(self, op: int, j: int = 0) -> int:
        found = [off for b, off in zip(self.buffers, self.offsets) if b.op == op]
        return found[j]

    def live_at(self, k: int, graph: Graph) -> list[tuple[str, int]]:
        """(tensor or scratch, bytes) of what is alive during operator k, largest first."""
        out = []
        for b in self.buffers:
            if b.op is not None:
                if b.first <= k + 1 <= b.last:
                    out.append((b.name, b.aligned))
                continue
            for t in b.tensors:
                f, la, lo, hi = next(r for r, m in zip(b.rects(), b.tensors) if m == t)
                if f <= k + 1 <= la:
                    out.append((graph.tensors[t].name or f"tensor{t}", hi - lo))
        return sorted(out, key=lambda x: -x[1])


def _place_codegen(buffers: list[Buffer], tries: int = 32) -> tuple[list[int], int, str]:
    """The smallest first-fit placement (place_parts) over the offline planner's orders,
    largest part first, and `tries` seeded shuffles of it within 4 KB size classes (first
    fit is sensitive to the order of near-equal buffers; the seeds make it repeatable)."""
    import random
    offsets, arena, name = offline_plan(buffers, place_parts)
    biggest = [max(r[3] - r[2] for r in b.rects()) for b in buffers]
    by_part = sorted(range(len(buffers)), key=lambda i: (-biggest[i], i))
    candidates = [("largest part first", by_part)]
    rng = random.Random(0)
    for t in range(tries):
        order = list(range(len(buffers)))
        rng.shuffle(order)
        candidates.append((f"largest part first, shuffle {t}",
                           sorted(order, key=lambda i: -(biggest[i] // 4096))))
    for cand_name, order in candidates:
        o, a = place_parts(buffers, order)
        if a < arena:
            offsets, arena, name = o, a, cand_name
    return offsets, arena, name


def _covered(spans: list[tuple[int, int]]) -> int:
    """Bytes in the union of [lo, hi) spans (members of one group may share bytes)."""
    total, reach = 0, None
    for lo, hi in sorted(spans):
        if reach is None or lo >= reach:
            total += hi - lo
            reach = hi
        elif hi > reach:
            total += hi - reach
            reach = hi
    return total


def codegen_plan(graph: Graph, arena_tensors: set[int], scratch: dict[int, list[int]],
                 requests: list[AliasRequest], reads: dict[int, int] | None = None
                 ) -> CodegenPlan:
    """The arena of a generated program: `arena_tensors` (the tensors it places), the
    scratch bytes each operator's kernel needs, and the aliasing its kernels allow; the
    requests are granted in operator order where safe (see above). `reads`: tensor ->
    operator that reads it although the graph does not say so (a fused pair of operators
    runs at the second one's place)."""
    first, last = lifetimes(graph, keep_outputs=False)
    for t, k in (reads or {}).items():
        last[t] = max(last.get(t, 0), k + 1)
    group = {t: t for t in arena_tensors}

    def root(t: int) -> int:
        while group[t] != t:
            t = group[t]
        return t

    nbytes = {t: graph.tensors[t].nbytes for t in arena_tensors}
    members: dict[int, dict[int, int]] = {t: {t: 0} for t in arena_tensors}   # tensor -> offset
    end: dict[int, int] = {t: last.get(t, first.get(t, 0)) for t in arena_tensors}
    granted, refused = [], []
    for r in sorted(requests, key=lambda r: r.op):
        if r.output not in group or r.input not in group or root(r.output) != r.output \
                or len(members[r.output]) > 1:
            refused.append(r)
            continue
        host = root(r.input)
        size = max(o + nbytes[m] for m, o in members[host].items())
        if not r.view and (end[host] > r.op + 1 or r.output in graph.inputs
                           or (r.shift == 0 and nbytes[r.output] > size)):
            refused.append(r)
            continue
        # aligned away from the input: never less room than the kernel needs
        at = members[host][r.input] - (align_up(r.shift, CODEGEN_ALIGN) if r.shift >= 0
                                       else -align_up(-r.shift, CODEGEN_ALIGN))
        if at < 0:                           # the group grows downwards
            members[host] = {m: o - at for m, o in members[host].items()}
            at = 0
        del members[r.output]
        members[host][r.output] = at
        group[r.output] = host
        end[host] = max(end[host], end.pop(r.output))
        granted.append(r)
    buffers, within = [], {}
    for host, ts in members.items():
        t = graph.tensors[host]
        start = min(first.get(m, 0) for m in ts)
        size = max(o + nbytes[m] for m, o in ts.items())
        # the group's bytes over time: each member's own bytes while it lives
        parts = tuple((first.get(m, 0), max(last.get(m, first.get(m, 0)), first.get(m, 0)), ts[m],
                       ts[m] + align_up(nbytes[m], CODEGEN_ALIGN)) for m in sorted(ts))
        buffers.append(Buffer(t.name or f"tensor{host}", size, start, max(end[host], start),
                              tensor=host, align=CODEGEN_ALIGN, tensors=tuple(sorted(ts)),
                              parts=parts))
        within.update(ts)
    buffers.sort(key=lambda b: (b.first, b.tensor))
    scratch = {k: list(v) for k, v in scratch.items()}
    for r in granted:
        if r.scratch > 0:
            scratch.setdefault(r.op, []).append(r.scratch)
    for k in sorted(scratch):
        for j, n in enumerate(scratch[k]):
            if n > 0:
                buffers.append(Buffer(f"scratch{j}@{k}:{graph.operators[k].kind}", n,
                                      k + 1, k + 1, op=k, align=CODEGEN_ALIGN))
    offsets, arena, order = _place_codegen(buffers)
    live = [sum(_covered([(lo, hi) for f, la, lo, hi in b.rects() if f <= k + 1 <= la])
                for b in buffers) for k in range(len(graph.operators))]
    peak = max(range(len(live)), key=live.__getitem__) if live else 0
    return CodegenPlan(buffers, offsets, arena, order, granted, refused, live, peak, within)


def free_run(plan: CodegenPlan, k: int) -> tuple[int, int, int]:
    """(offset, bytes) of the largest run of the arena nothing alive during operator k
    occupies (the offset CODEGEN_ALIGN-aligned), and the bytes free during k in all."""
    scope = k + 1
    used = sorted((off + lo, off + hi) for b, off in zip(plan.buffers, plan.offsets)
                  for f, la, lo, hi in b.rects() if f <= scope <= la)
    gap_at, gap, reach, free = 0, 0, 0, 0
    for lo, hi in used + [(plan.arena_bytes, plan.arena_bytes)]:
        at = align_up(reach, CODEGEN_ALIGN)
        free += max(0, lo - reach)
        if lo - at > gap:
            gap_at, gap = at, lo - at
        reach = max(reach, hi)
    return gap_at, gap, free


def place_in_free_run(plan: CodegenPlan, k: int, name: str, nbytes: int, j: int) -> bool:
    """Operator k's scratch buffer of `nbytes` placed in the largest run of the arena free
    during k (free_run), the plan otherwise unchanged, as its scratch number j
    (CodegenPlan.scratch_offset: the ones from j on move up one); False, the plan untouched,
    when it does not fit there."""
    at, gap, _ = free_run(plan, k)
    buffer = Buffer(name, nbytes, k + 1, k + 1, op=k, align=CODEGEN_ALIGN)
    if buffer.aligned > gap:
        return False
    _insert_scratch(plan, k, j, buffer, at)
    return True


def _insert_scratch(plan: CodegenPlan, k: int, j: int, buffer: Buffer, offset: int) -> None:
    """`buffer` at `offset` as operator k's scratch number j: CodegenPlan.scratch_offset
    counts an operator's scratch in its kernel's argument order, so the ones from j on move
    up one."""
    mine = [i for i, b in enumerate(plan.buffers) if b.op == k]
    i = mine[j] if j < len(mine) else (mine[-1] + 1 if mine else len(plan.buffers))
    plan.buffers.insert(i, buffer)
    plan.offsets.insert(i, offset)


def lend_free_arena(plan: CodegenPlan, graph: Graph, wants: dict[int, tuple[int, int]],
                    limit: int = 0) -> dict[int, int]:
    """Free arena lent to operators that can use any amount of it (a two-pass int8 input
    gradient keeps as many more accumulators, so that its second pass computes fewer again):
    `wants` maps operator k to (bytes of a unit, most units it can use). Operator by
    operator in the order of `wants` (placing again moves the others, so an earlier one's
    scratch may leave a later one less room), the largest number of units whose scratch
    buffer (alive during k only) the placement fits without growing the arena past the
    larger of its bytes and `limit` (codegen --arena-limit): at least the largest run of
    bytes nothing alive during k occupies (placed there, the plan unchanged), more where
    placing again with the buffer among the others (_place_codegen; searched by bisection
    up to the bytes free at k under that ceiling) finds room. The plan's buffers, offsets,
    order and arena take the result; its `live` and `peak_op` stay the bytes the program
    needs. Returns k -> units lent (operators lent none left out)."""
    lent = {}
    for k, (unit, most) in wants.items():
        if unit <= 0 or most <= 0:
            continue
        scope = k + 1
        gap_at, gap, free = free_run(plan, k)
        ceiling = max(plan.arena_bytes, limit)
        free += ceiling - plan.arena_bytes

        def buffer(units: int) -> Buffer:
            return Buffer(f"kept@{k}:{graph.operators[k].kind}", units * unit, scope, scope,
                          op=k, align=CODEGEN_ALIGN)

        units, placed = min(gap // unit, most), None
        low, high = units, min(free // unit, most)
        while low < high:                       # more than the gap: place everything again
            mid = (low + high + 1) // 2
            offsets, arena, order = _place_codegen(plan.buffers + [buffer(mid)])
            if arena <= ceiling:
                low, units, placed = mid, mid, (offsets, arena, order)
            else:
                high = mid - 1
        if units <= 0:
            continue
        if placed is None:
            offset = gap_at
        else:
            offsets, plan.arena_bytes, plan.order = placed
            plan.offsets[:], offset = offsets[:-1], offsets[-1]
        # the operator's first scratch: the lent one comes before a DSP staging
        _insert_scratch(plan, k, 0, buffer(units), offset)
        lent[k] = units
    return lent
