"""In-place forward operators: a depthwise convolution (depth multiplier 1) or a 1x1
convolution whose output is written over its input, where nothing reads the input later.

Each candidate, in operator order, becomes TT_DEPTHWISE_CONV2D / TT_CONV2D with `in_place`,
and is kept only if our offline plan (alias_plan.plan) then gives TFLM a smaller arena: the
aliasing saves the smaller of the two tensors at that operator, so it matters at the peak
only. Readers of the input that only save it (TT_SAVE_MASK, TT_SAVE_SLICE) are moved to
before the operator when that is what stands in the way; they read nothing else that is
made later.

Candidates are tried one at a time, then two consecutive ones (an expanding 1x1 convolution
and the strided depthwise after it are often the peak together). When the arena's peak is
several operators tied (the person detector's 48x48 and 24x24 layers: three of them at
36 KB), no one or two lower it: then every candidate is made in place at once and, if that
lowers the arena, only those that must be for it are kept (`_peak_group`): a few plans,
nothing exponential.
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
    """Choose in-place operators: greedily, a candidate (or two consecutive ones) kept when
    the arena head drops; when none does, the group at the peak (`_peak_group`); repeated
    until nothing more helps."""
    chosen = []
    head = alias_plan.plan(graph)[1]
    while True:
        new_head, names = _one_or_two(graph, head)
        if names is None:
            new_head, names = _peak_group(graph, head)
        if names is None:
            return chosen
        for name in names:
            j = _position(graph, name)
            chosen.append(InPlace(j, name, graph.operators[j].kind,
                                  (head - new_head) // len(names)))
        head = new_head


def _one_or_two(graph: Graph, head: int) -> tuple[int, list[str] | None]:
    """The first candidate, or pair of consecutive candidates, whose being in place lowers
    the arena head below `head`, applied: (new head, their output names); (head, None) when
    there is none (the graph unchanged). Quick plans (alias_plan.plan without refining):
    never below the refined one, so what they accept is a gain."""
    candidates = [k for k in range(len(graph.operators)) if _candidate(graph, k)]
    for i, k in enumerate(candidates):
        for group in ([k], candidates[i:i + 2]) if i + 1 < len(candidates) else ([k],):
            saved_ops = list(graph.operators)
            names = [graph.tensors[graph.operators[j].outputs[0]].name for j in group]
            if _apply(graph, group):
                new_head = alias_plan.plan(graph, refine=False)[1]
                if new_head < head:
                    return new_head, names
            graph.operators = saved_ops
    return head, None


def _peak_group(graph: Graph, head: int) -> tuple[int, list[str] | None]:
    """Every candidate in place at once; if that lowers the arena head below `head` (to
    `low`), the candidates that must be in place for it: those whose operator has more
    bytes alive than `low` (aliasing elsewhere does not lower them); when these alone do not
    reach `low`, every candidate, each turned back (in operator order) where the head stays
    at `low` without it. Applied: (new head, the names kept); (head, None) and the graph
    unchanged when all at once do not lower the head."""
    original = list(graph.operators)
    alive = _alive_bytes(graph)
    at = {graph.tensors[graph.operators[k].outputs[0]].name: alive[k + 1]
          for k in range(len(graph.operators)) if _candidate(graph, k)}
    names = _apply_named(graph, list(at))
    low = alias_plan.plan(graph)[1]
    if len(names) < 2 or low >= head:
        graph.operators = original
        return head, None
    needed = [n for n in names if at[n] > low]
    graph.operators = list(original)
    if _apply_named(graph, needed) == needed and alias_plan.plan(graph)[1] <= low:
        return low, needed
    for name in list(names):
        trial = [n for n in names if n != name]
        graph.operators = list(original)
        if _apply_named(graph, trial) == trial and alias_plan.plan(graph)[1] <= low:
            names = trial
    graph.operators = list(original)
    _apply_named(graph, names)
    return alias_plan.plan(graph)[1], names


def _alive_bytes(graph: Graph) -> list[int]:
    """Bytes of the buffers TFLM plans alive at each allocation scope (operator k: k + 1)."""
    from ..memory import tflm_buffers
    alive = [0] * (len(graph.operators) + 1)
    for b in tflm_buffers(graph):
        for scope in range(b.first, b.last + 1):
            alive[scope] += b.aligned
    return alive


def _apply_named(graph: Graph, names: list[str]) -> list[str]:
    """Make the operators writing the tensors `names` in place, in operator order, each
    where it can be; returns the names made in place."""
    done = []
    for name in names:
        k = _position(graph, name)
        saved_ops = list(graph.operators)
        if _apply(graph, [k]):
            done.append(name)
        else:
            graph.operators = saved_ops
    return done


def _position(graph: Graph, name: str) -> int:
    """The operator writing the tensor called `name` (its first output)."""
    return next(j for j, op in enumerate(graph.operators)
                if op.outputs and graph.tensors[op.outputs[0]].name == name)


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


def with_passes(graph: Graph) -> list[InPlace]:
    """In-place operators, then the int8 input gradients' passes again (memory.choose_passes,
    on the aliased plan): augment chose them against the forward's peak, which in-place
    operators may have lowered below a one-pass input gradient's int32 scratch; then
    in-place operators again if that lowered the arena (the next peak may be one)."""
    from ..memory import INPUT_GRADS, choose_passes
    from ..training_ops import options_of, set_option
    chosen = in_place(graph)
    grads = [op for op in graph.operators
             if op.kind in INPUT_GRADS and options_of(op).get("passes") == 1]
    if not chosen or not grads:
        return chosen
    head = alias_plan.plan(graph)[1]
    for op in grads:                 # all at two passes first: one plan says if it matters
        set_option(op, "passes", 2)
    if alias_plan.plan(graph)[1] >= head:
        for op in grads:
            set_option(op, "passes", 1)
        return chosen
    choose_passes(graph, lambda g: alias_plan.plan(g)[1])
    chosen += in_place(graph)
    return chosen
