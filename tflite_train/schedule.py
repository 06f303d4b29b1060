"""Execution order of a training graph: reorder operators to lower the training peak.

The operator order in the file is the order TFLM runs, so a schedule is a permutation of
the operators that respects every dependency:
- data: an operator runs after the producers of its inputs;
- in-place writes: an update op writes its parameter (and momentum buffer) in place, so it
  runs after every other reader of that tensor (the layer's input gradient reads the
  weights it is about to change), and TT_INIT, which fills every variable, stays first.

`greedy` is a list scheduler for any size: among the ready operators it runs the one that
adds the fewest live bytes (allocations minus the inputs it frees). `exact` searches all
valid orders of a small graph (branch and bound on the peak) to show how far the heuristic
is from optimal. The objective is the peak of live bytes, the lower bound every arena plan
meets; memory.plan then gives the arena of the chosen order.
"""
from __future__ import annotations

from .ir import Graph
from .memory import align_up

# in-place writers: op kind -> input positions it writes (parameter, momentum buffer)
WRITES = {
    "TT_UPDATE_WEIGHT": (0, 2), "TT_UPDATE_BIAS": (0, 2),
    "TT_CONV2D_WEIGHT_UPDATE": (3, 4), "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE": (3, 4),
    "TT_FULLY_CONNECTED_WEIGHT_UPDATE": (3, 4), "TT_BIAS_UPDATE": (2, 3),
}


def dependencies(graph: Graph) -> list[set[int]]:
    """preds[k]: the operators that must run before operator k."""
    ops = graph.operators
    producer = graph.producers()
    preds: list[set[int]] = [set() for _ in ops]
    readers: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for t in op.inputs:
            if t < 0:
                continue
            if t in producer and producer[t] != k:
                preds[k].add(producer[t])
            readers.setdefault(t, []).append(k)
    for k, op in enumerate(ops):
        for pos in WRITES.get(op.kind, ()):
            if pos < len(op.inputs) and op.inputs[pos] >= 0:
                for r in readers.get(op.inputs[pos], []):
                    if r != k and r < k:
                        preds[k].add(r)          # everyone who read it first
                    elif r != k:
                        preds[r].add(k)          # later readers see the update
    for k, op in enumerate(ops):
        if op.kind == "TT_INIT":
            for j in range(len(ops)):
                if j != k:
                    preds[j].add(k)
    return preds


def _sizes(graph: Graph) -> dict[int, int]:
    return {i: align_up(t.nbytes) for i, t in enumerate(graph.tensors)
            if not t.is_constant and not t.is_variable}


def _uses(graph: Graph) -> dict[int, set[int]]:
    uses: dict[int, set[int]] = {}
    for k, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0:
                uses.setdefault(t, set()).add(k)
    return uses


def peak(graph: Graph, order: list[int]) -> int:
    """Peak live bytes of running the graph's operators in `order` (graph inputs live from
    the start, outputs to the end, as TFLM's lifetimes)."""
    sizes, uses = _sizes(graph), _uses(graph)
    pinned = set(graph.outputs)
    live = {t for t in graph.inputs if t in sizes}
    remaining = {t: set(u) for t, u in uses.items()}
    current = sum(sizes[t] for t in live)
    best = current
    for k in order:
        op = graph.operators[k]
        for t in op.outputs:
            if t in sizes and t not in live:
                live.add(t)
                current += sizes[t]
        best = max(best, current)
        for t in set(op.inputs) | set(op.outputs):
            if t in remaining:
                remaining[t].discard(k)
            if t in live and not remaining.get(t) and t not in pinned:
                live.discard(t)
                current -= sizes[t]
    return best


def greedy(graph: Graph) -> list[int]:
    preds = dependencies(graph)
    sizes, uses = _sizes(graph), _uses(graph)
    remaining = {t: set(u) for t, u in uses.items()}
    pinned = set(graph.outputs)
    done: set[int] = set()
    order: list[int] = []
    ready = {k for k in range(len(graph.operators)) if not preds[k]}
    while ready:
        def delta(k: int) -> tuple[int, int]:
            op = graph.operators[k]
            grow = sum(sizes.get(t, 0) for t in op.outputs)
            free = sum(sizes.get(t, 0) for t in set(op.inputs)
                       if t >= 0 and remaining.get(t) == {k} and t not in pinned)
            return grow - free, k
        k = min(ready, key=delta)
        ready.discard(k)
        done.add(k)
        order.append(k)
        for t in graph.operators[k].inputs:
            if t in remaining:
                remaining[t].discard(k)
        for j in range(len(graph.operators)):
            if j not in done and j not in ready and preds[j] <= done:
                ready.add(j)
    if len(order) != len(graph.operators):
        raise ValueError("dependency cycle in the training graph")
    return order


def exact(graph: Graph, limit: int = 24) -> list[int]:
    """The order with the smallest peak, by branch and bound (small graphs only)."""
    n = len(graph.operators)
    if n > limit:
        raise ValueError(f"exact scheduling is for graphs of at most {limit} operators")
    preds = dependencies(graph)
    best_order = greedy(graph)
    best = [peak(graph, best_order), best_order]

    def search(order: list[int], done: frozenset) -> None:
        if len(order) == n:
            p = peak(graph, order)
            if p < best[0]:
                best[0], best[1] = p, list(order)
            return
        if peak(graph, order) >= best[0]:
            return                                # cannot get better below here
        for k in range(n):
            if k not in done and preds[k] <= done:
                order.append(k)
                search(order, done | {k})
                order.pop()
    search([], frozenset())
    return best[1]


def apply(graph: Graph, order: list[int]) -> None:
    graph.operators = [graph.operators[k] for k in order]
