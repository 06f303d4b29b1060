"""Streamed depthwise layers packed once per call (tt_stream.h: the streams' `_packed_s8`
forms). Without a pack every depthwise output row of a stream works out each channel
group's requantization constants and packed filter again (320-410 instructions a group and
row on the Cortex-M7); with one the stream does it once per call, into arena scratch
(tt_stream_depthwise_pack_bytes: a few hundred bytes a group of four channels). A pack is
placed only where the arena is free during its stream, the plan otherwise unchanged, so it
never costs SRAM; the filters stay int8 wherever they are (trained or frozen; --engine c
and TFLM call the forms without a pack).
"""
from __future__ import annotations

from .. import memory
from ..ir import Graph
from ..runtime import kernel_calls as K
from ..runtime import stream_args

# a stream's kernel -> its form with a pack (the same arguments, then the pack); the
# three-layer stream has only that form, called with a NULL pack until one is lent
PACKED = {"tt_pointwise_depthwise_s8": "tt_pointwise_depthwise_packed_s8",
          "tt_conv_depthwise_pointwise_packed_s8": "tt_conv_depthwise_pointwise_packed_s8"}
# each one's depthwise layer: its parameters, input (mid), filter and output dims
DEPTHWISE_ARGS = {"tt_pointwise_depthwise_s8": ("dw", "mid_dims", "dw_filter_dims",
                                                "output_dims"),
                  "tt_conv_depthwise_pointwise_packed_s8": ("dw", "mid_dims", "dw_filter_dims",
                                                            "dw_output_dims")}


def pack_bytes(call: K.KernelCall) -> int:
    """Bytes of the pack of a stream's depthwise layer (0: it has none), the same for every
    target."""
    args = stream_args.named(call.name, call.args)
    return int(K.host_call("tt_stream_depthwise_pack_bytes",
                           *(args[n] for n in DEPTHWISE_ARGS[call.name])))


def place(graph: Graph, fused: dict[int, K.KernelCall], plan: memory.CodegenPlan) -> set[int]:
    """Each stream of `fused` (operator -> its call) whose depthwise layer has a pack that
    fits the largest run of the arena free during it gets it: the call becomes its packed
    form, the pack the call's scratch after its window in `plan` (before any the caller adds
    after the call's own, as the row input's ring: program._row_input, to be asked after
    this). Returns those operators."""
    packed = set()
    for k, call in sorted(fused.items()):
        nbytes = pack_bytes(call) if call.name in PACKED else 0
        own = sum(isinstance(a, K.Scratch) for a in call.args)
        if nbytes and memory.place_in_free_run(plan, k, f"pack@{k}:{graph.operators[k].kind}",
                                               nbytes, own):
            args = call.args[:-1] if call.name == PACKED[call.name] else call.args  # its NULL
            fused[k] = K.KernelCall(PACKED[call.name], [*args, K.Scratch(nbytes)]).check()
            packed.add(k)
    return packed
