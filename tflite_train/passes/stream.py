"""Pointwise expansions that never exist whole: a 1x1 CONV_2D and the strided
DEPTHWISE_CONV_2D that alone reads its output become one TT_POINTWISE_DEPTHWISE
(ops/tt_stream.py), which computes the expansion a few rows at a time into a scratch window.
In MobileNetV2-like models the first blocks' expansions are the largest tensors of the whole
training step; TFLM, running the two builtins, must hold each whole.

Each pair is fused only if TFLM's arena (our offline plan, alias_plan.plan) then shrinks."""
from __future__ import annotations

from dataclasses import dataclass

from .. import alias_plan
from ..ir import Graph
from ..ops import tt_stream


@dataclass
class Streamed:
    layer: str             # the expansion (pointwise output) that is no longer a tensor
    expansion_bytes: int   # its bytes
    window_bytes: int      # the scratch window that replaces it
    arena_saved: int       # bytes of TFLM arena saved by this choice


def stream(graph: Graph) -> tuple[list[Streamed], list[int]]:
    """Fuse the pairs that lower the arena, in operator order, in passes until none does
    (a fused pair moves the peak, which may make an earlier pair worth it); returns what was
    chosen and the expansion tensors no operator uses any more (for the caller's pruning)."""
    chosen, mids = [], []
    head = alias_plan.plan(graph)[1]
    progress = True
    while progress:
        progress = False
        for k in range(len(graph.operators)):
            if tt_stream.fusable(graph, k) is not None:
                continue
            saved_ops, n = list(graph.operators), len(graph.tensors)
            mid = graph.operators[k].outputs[0]
            fused = tt_stream.from_builtins(graph, k)
            graph.operators[k:k + 2] = [fused]
            new_head = alias_plan.plan(graph)[1]
            if new_head < head:
                chosen.append(Streamed(graph.tensors[mid].name, graph.tensors[mid].nbytes,
                                       tt_stream.window_bytes(graph, fused), head - new_head))
                mids.append(mid)
                head = new_head
                progress = True
                break
            graph.operators = saved_ops
            del graph.tensors[n:]
    return chosen, mids
