"""Offline memory plans in which an in-place operator's output shares its input's bytes,
and the proof that such a plan is safe.

An in-place operator (TT_CONV2D or TT_DEPTHWISE_CONV2D with `in_place`) may have its output
placed over its input: the depthwise kernel writes the output from the input's first byte,
the 1x1 convolution needs the input at least max(0, output - input bytes) after the output's
first byte (schema/training_ops.json). TFLM never places two tensors of one operator over
each other by itself; it does when an `OfflineMemoryAllocation` plan says so (it takes
offline offsets as given), so the aliasing is ours to plan and ours to prove:

- `plan(graph)`: each chain of aliased tensors is planned as one buffer spanning their
  lifetimes, the rest as memory.offline_plan plans them; the plan kept is the one whose
  arena TFLM actually uses (`tflm_head`: TFLM's planner with offline offsets, which it
  takes as given, and the kernels' scratch planned online around them).
- `problems(graph, offsets)`: every two planned tensors that are alive at the same time
  (TFLM's lifetimes for the file's operator order) and share bytes must be an in-place
  operator's input and output, the input read by no later operator (its last use is that
  operator, which creates the output), at the relative position the kernel takes. Anything
  else is a problem: `tflite-train plan` refuses such a model.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import memory
from .ir import Graph
from .memory import Buffer, align_up
from .training_ops import options_of


@dataclass(frozen=True)
class Alias:
    op: int           # the in-place operator
    input: int        # tensor indices
    output: int
    exact: bool       # True: the input must start where the output starts (depthwise)
    min_offset: int   # else: input offset - output offset >= this (1x1 convolution)


def aliases(graph: Graph) -> list[Alias]:
    """The operators that may run in place, with their input/output relation."""
    out = []
    for k, op in enumerate(graph.operators):
        if op.kind not in ("TT_CONV2D", "TT_DEPTHWISE_CONV2D") or \
                not options_of(op).get("in_place"):
            continue
        x, y = op.inputs[0], op.outputs[0]
        if op.kind == "TT_DEPTHWISE_CONV2D":
            out.append(Alias(k, x, y, True, 0))
        else:
            grow = max(0, graph.tensors[y].nbytes - graph.tensors[x].nbytes)
            out.append(Alias(k, x, y, False, grow))
    return out


def _input_offset(graph: Graph, a: Alias) -> int:
    """Where the planner puts the input relative to the output (16-byte aligned, as TFLM
    aligns its tensors)."""
    return 0 if a.exact else align_up(a.min_offset)


def _groups(graph: Graph, buffers: list[Buffer], pairs: list[Alias]):
    """Union of the aliased tensors: {root tensor: {tensor: offset from the group's start}}.
    An alias whose input is read after its operator (or is not planned) is left out: it
    cannot share bytes, and problems() would refuse it."""
    by_tensor = {b.tensor: b for b in buffers if b.tensor is not None}
    rel: dict[int, tuple[int, int]] = {}          # tensor -> (parent, offset from parent)

    def find(t: int) -> tuple[int, int]:
        """(root, t's offset from the root)."""
        off = 0
        while t in rel:
            t, step = rel[t]
            off += step
        return t, off

    for a in pairs:
        bx, by = by_tensor.get(a.input), by_tensor.get(a.output)
        if bx is None or by is None or bx.last != a.op + 1 or by.first != a.op + 1:
            continue
        rx, ox = find(a.input)
        ry, oy = find(a.output)
        if rx == ry:
            continue
        # input = output + d: attach the input's group under the output's
        rel[rx] = (ry, oy + _input_offset(graph, a) - ox)
    groups: dict[int, dict[int, int]] = {}
    for t in list(rel) + [r for r, _ in rel.values()]:
        root, off = find(t)
        groups.setdefault(root, {})[t] = off
    for members in groups.values():
        low = min(members.values())
        for t in members:
            members[t] -= low
    return groups


def plan(graph: Graph, refine: bool = True) -> tuple[np.ndarray, int, str]:
    """(offline offset of every tensor, -1 for those TFLM does not plan; TFLM's arena head
    for it; the order that made it). A chain of aliased tensors is placed as one buffer
    made of its members' bytes over time (memory.place_parts: the lowest offset at which
    no member collides with anything alive while it is); each first-fit order is refined by
    placing the units at its top first (`_top_first`, a few rounds, from the orders that
    gave the smallest head; `refine` False: not, for quick comparisons); the plan kept is
    the one whose offsets give TFLM the smallest head."""
    buffers = memory.tflm_buffers(graph)
    groups = _groups(graph, buffers, aliases(graph))
    member_of = {t: root for root, members in groups.items() for t in members}
    units: list[Buffer] = []
    members: list[list[int]] = []                    # buffers of each unit
    unit_of: dict[int, int] = {}
    for i, b in enumerate(buffers):
        root = member_of.get(b.tensor) if b.tensor is not None else None
        if root is None:
            units.append(b)
            members.append([i])
            continue
        if root not in unit_of:
            unit_of[root] = len(units)
            units.append(None)
            members.append([])
        members[unit_of[root]].append(i)
    for root, u in unit_of.items():
        ms = [buffers[i] for i in members[u]]
        rel = groups[root]
        parts = tuple((b.first, b.last, rel[b.tensor], rel[b.tensor] + b.aligned) for b in ms)
        units[u] = Buffer(f"aliased@{root}", max(p[3] for p in parts),
                          min(b.first for b in ms), max(b.last for b in ms), tensor=root,
                          tensors=tuple(b.tensor for b in ms), parts=parts)
    def placed(order: list[int]) -> tuple[np.ndarray, int, list[int], int]:
        offsets, top = memory.place_parts(units, order)
        table = np.full(len(graph.tensors), -1, np.int32)
        for j, off in enumerate(offsets):
            for i in members[j]:
                b = buffers[i]
                if b.tensor is not None:
                    table[b.tensor] = off + (groups[member_of[b.tensor]][b.tensor]
                                             if b.tensor in member_of else 0)
        return table, tflm_head(graph, table, buffers), offsets, top

    tried = []
    # first fit depends on the order of equal keys: both tie-breaks are tried
    for (name, key), tie in itertools.product(memory.PLAN_ORDERS.items(), (-1, 1)):
        order = sorted(range(len(units)), key=lambda i: key(units[i]) + (tie * i,))
        tried.append((placed(order), name, order))
    best = min(((table, head, name) for (table, head, _, _), name, _ in tried),
               key=lambda t: t[1])
    if not (unit_of and refine):
        return best
    for (_, head, offsets, top), name, order in tried:
        if head > best[1]:
            continue                  # refined: the orders that made the smallest head
        for _ in range(REFINE_ROUNDS):
            order, moved = _top_first(units, offsets, top, order)
            if not moved:
                break
            table, head, offsets, top = placed(order)
            if head < best[1]:
                best = (table, head, name)
    return best


# Rounds of "the units at the top first" after each first-fit order (with aliased groups
# only: without, the orders are memory.offline_plan's). An aliased group spans
# many tensors' lifetimes, so where first fit puts it decides the peak; units placed early
# get the low offsets. Measured on the person detector's sparse scheme with every
# candidate in place: 36,880 -> 30,032 bytes within 5 rounds of "earliest first".
REFINE_ROUNDS = 8


def _top_first(units: list[Buffer], offsets: list[int], top: int,
               order: list[int]) -> tuple[list[int], bool]:
    """`order` with the units that reach the plan's top moved to its front (their order
    kept); False when they are at the front already (the next plan would be the same)."""
    tops = [j for j in order if any(offsets[j] + r[3] >= top for r in units[j].rects())]
    new = tops + [j for j in order if offsets[j] + max(r[3] for r in units[j].rects()) < top]
    return new, new != order


def metadata(table: np.ndarray) -> bytes:
    """The OfflineMemoryAllocation buffer of offsets `table` (one subgraph)."""
    return np.concatenate([np.array([0, 1, len(table)], np.int32),
                           np.asarray(table, np.int32)]).tobytes()


def tflm_head(graph: Graph, table: np.ndarray, buffers: list[Buffer] | None = None) -> int:
    """The arena head TFLM's GreedyMemoryPlanner gives for offline offsets `table`
    (-1: planned online): offline buffers first at their offsets, in tensor order, then
    the online ones (tensors without an offset, the kernels' scratch) largest first into
    the gaps (greedy_memory_planner.cc)."""
    buffers = memory.tflm_buffers(graph) if buffers is None else buffers
    fixed = {i: int(table[b.tensor]) for i, b in enumerate(buffers)
             if b.tensor is not None and table[b.tensor] >= 0}
    online = [i for i in range(len(buffers)) if i not in fixed]
    order = sorted(fixed) + sorted(online, key=lambda i: (-buffers[i].aligned, -i))
    _, head = memory.place(buffers, order, fixed)
    return head


def problems(graph: Graph, table: np.ndarray) -> list[str]:
    """Why the offline offsets `table` are unsafe for this operator order (empty: safe)."""
    buffers = [b for b in memory.tflm_buffers(graph) if b.tensor is not None]
    ok_pairs = {}
    for a in aliases(graph):
        ok_pairs[frozenset((a.input, a.output))] = a
    name = {i: graph.tensors[i].name or f"tensor {i}" for i in range(len(graph.tensors))}
    out = []
    placed = sorted(((int(table[b.tensor]), b) for b in buffers if table[b.tensor] >= 0),
                    key=lambda p: p[0])
    for i, (oa, a) in enumerate(placed):
        for ob, b in placed[i + 1:]:
            if ob >= oa + a.aligned:
                break                       # sorted by offset: nothing further overlaps a
            if a.first > b.last or b.first > a.last:
                continue
            why = _alias_problem(graph, ok_pairs.get(frozenset((a.tensor, b.tensor))), a, b,
                                 table)
            if why is not None:
                out.append(f"{name[a.tensor]} and {name[b.tensor]} share bytes while both "
                           f"are alive: {why}")
    return out


def _alias_problem(graph: Graph, alias: Alias | None, a: Buffer, b: Buffer,
                   table: np.ndarray) -> str | None:
    if alias is None:
        return "they are not an in-place operator's input and output"
    x = a if a.tensor == alias.input else b
    y = b if x is a else a
    k = alias.op
    if x.last != k + 1:
        later = [j for j, op in enumerate(graph.operators) if j > k and x.tensor in op.inputs]
        reader = f"operator {later[0]} ({graph.operators[later[0]].kind})" if later \
            else "a graph output"
        return f"operator {k} writes its output over its input, which {reader} reads later"
    if y.first != k + 1:
        return f"the output of operator {k} is alive before it"
    delta = int(table[x.tensor]) - int(table[y.tensor])
    if alias.exact and delta != 0:
        return f"operator {k}'s kernel needs its input and output to start at the same byte"
    if not alias.exact and delta < alias.min_offset:
        return (f"operator {k}'s kernel needs its input at least {alias.min_offset} bytes after "
                f"its output's start, not {delta}")
    return None
