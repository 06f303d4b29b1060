"""In-place forward operators: a depthwise convolution (depth multiplier 1) or a 1x1
convolution whose output is written over its input, where nothing reads the input later.

Each candidate, in operator order, becomes TT_DEPTHWISE_CONV2D / TT_CONV2D with `in_place`,
and is kept only if our offline plan (alias_plan.plan) then gives TFLM a smaller arena: the
aliasing saves the smaller of the two tensors at that operator, so it matters at the peak
only. Readers of the input that only save it (TT_SAVE_MASK, TT_SAVE_SLICE) are moved to
before the operator when that is what stands in the way; they read nothing else that is
made later.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import alias_plan
from ..ir import Graph
from ..ops import tt_forward
from ..training_ops import options_of

HOISTABLE = ("TT_SAVE_MASK", "TT_SAVE_SLICE")


@dataclass
class InPlace:
    op: int               # operator index at the time of the choice
    layer: str            # its output tensor
    kind: str
    arena_saved: int      # bytes of TFLM arena head saved by this choice


def in_place(graph: Graph) -> list[InPlace]:
    """Choose in-place operators greedily: a candidate is kept when the arena head drops;
    one that does not lower it alone is tried with the next candidate (an expanding 1x1
    convolution and the strided depthwise after it are often the peak together), and passes
    repeat until nothing more helps."""
    chosen = []
    head = alias_plan.plan(graph)[1]
    progress = True
    while progress:
        progress = False
        candidates = [k for k in range(len(graph.operators)) if _candidate(graph, k)]
        for i, k in enumerate(candidates):
            for group in ([k], candidates[i:i + 2]) if i + 1 < len(candidates) else ([k],):
                saved_ops = list(graph.operators)
                names = [graph.tensors[graph.operators[j].outputs[0]].name for j in group]
                if not _apply(graph, group):
                    graph.operators = saved_ops
                    continue
                new_head = alias_plan.plan(graph)[1]
                if new_head < head:
                    for name in names:
                        j = next(j for j, op in enumerate(graph.operators)
                                 if op.outputs and graph.tensors[op.outputs[0]].name == name)
                        chosen.append(InPlace(j, name, graph.operators[j].kind,
                                              (head - new_head) // len(group)))
                    head = new_head
                    progress = True
                    break
                graph.operators = saved_ops
            if progress:
                break
    return chosen


def _apply(graph: Graph, group: list[int]) -> bool:
    """Make the operators at `group` (positions, ascending) in place; False when one of them
    cannot be."""
    shift = 0
    for k in group:
        k += shift
        op = graph.operators[k]
        candidate = _candidate(graph, k)
        if candidate is None:
            return False
        pos = _hoist(graph, k, op.inputs[0])
        if pos is None:
            return False
        shift += pos - k
        graph.operators[pos] = candidate
    return True


def _candidate(graph: Graph, k: int):
    """The in-place form of operator k, or None."""
    op = graph.operators[k]
    if op.kind in ("DEPTHWISE_CONV_2D", "CONV_2D"):
        if op.kind == "DEPTHWISE_CONV_2D" and \
                graph.tensors[op.inputs[0]].shape[3] != graph.tensors[op.outputs[0]].shape[3]:
            return None
        new = tt_forward.from_builtin(graph, op, in_place=True)
    elif op.kind == "TT_CONV2D" and not options_of(op)["in_place"]:
        new = tt_forward.make_in_place(op)
    else:
        return None
    if tt_forward.in_place_ok(graph, new) is not None:
        return None
    x = graph.tensors[op.inputs[0]]
    if x.is_constant or x.is_variable or op.inputs[0] in graph.inputs \
            or op.inputs[0] in graph.outputs:
        return None
    return new


def _hoist(graph: Graph, k: int, x: int) -> int | None:
    """Move the later readers of x that only save it to just before operator k; returns
    k's new position, or None when another operator reads x after k."""
    later = [j for j in range(k + 1, len(graph.operators))
             if x in graph.operators[j].inputs]
    if any(graph.operators[j].kind not in HOISTABLE for j in later):
        return None
    moved = [graph.operators[j] for j in later]
    rest = [op for j, op in enumerate(graph.operators) if j not in later]
    graph.operators = rest[:k] + moved + rest[k:]
    return k + len(moved)
