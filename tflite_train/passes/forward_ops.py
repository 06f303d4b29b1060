"""Requantization in flash: the CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1) and
FULLY_CONNECTED builtins left become TT_CONV2D / TT_DEPTHWISE_CONV2D / TT_FULLY_CONNECTED
where that lowers TFLM's persistent SRAM on the target.

TFLM's builtin kernels compute each layer's per-channel requantization (an int32
multiplier and shift per output channel) in Prepare into persistent arena memory; our ops
read the same numbers from two constant tensors in the model (flash). Same bits; the
kernels are ours (micro_kernels/, tt_forward.h) instead of TFLM's.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from ..ops import tt_forward
from .. import tflm_memory


@dataclass
class Converted:
    layer: str
    kind: str
    sram_saved: int        # bytes of TFLM's persistent data on the target
    flash_added: int       # bytes of multipliers and shifts in the model


def to_tt_ops(graph: Graph, target: str = "cortex-m7", skip: frozenset = frozenset()
              ) -> list[Converted]:
    """Convert every builtin whose conversion lowers the persistent tail, except the layers
    (output tensor names) in `skip`: those augment gave up to keep within a flash budget."""
    done = []
    before = tflm_memory.persistent_tail(graph, target).bytes
    for k, op in enumerate(graph.operators):
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        if op.kind == "DEPTHWISE_CONV_2D" and \
                graph.tensors[op.inputs[0]].shape[3] != graph.tensors[op.outputs[0]].shape[3]:
            continue
        if graph.tensors[op.outputs[0]].name in skip:
            continue
        n = len(graph.tensors)
        graph.operators[k] = tt_forward.from_builtin(graph, op)
        after = tflm_memory.persistent_tail(graph, target).bytes
        if after < before:
            done.append(Converted(graph.tensors[op.outputs[0]].name, op.kind, before - after,
                                  sum(t.nbytes for t in graph.tensors[n:])))
            before = after
        else:
            graph.operators[k] = op
            del graph.tensors[n:]
    return done
