"""Only the trained input channels of a filter in SRAM.

A layer that trains the first Ct of its Ci input channels (scheme: a ratio < 1) has its
filter split along the input channels: the trained part [.., Ct] becomes the variable
(SRAM, initial value in flash), the frozen rest [.., Ci - Ct] stays a constant (flash).
The forward builtin becomes TT_CONV2D / TT_FULLY_CONNECTED reading both parts, the input
gradient the TT_*_SPLIT_INPUT_GRAD op reading both, the weight update the trained part
alone (its `channels` are all of it). Bit for bit the same training run (the learning rates
are derived before: they see the whole filter).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Tensor
from ..ops import tt_forward
from ..training_ops import grad_mode, make_op, options_of

SPLIT_GRADS = {"TT_CONV2D_INPUT_GRAD": "TT_CONV2D_SPLIT_INPUT_GRAD",
               "TT_FULLY_CONNECTED_INPUT_GRAD": "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD"}


@dataclass
class Split:
    layer: str            # the layer's output tensor
    trained: int          # input channels in SRAM
    channels: int         # of this many
    sram_saved: int       # bytes of filter no longer in SRAM
    flash_added: int = 0  # bytes of the forward op's multipliers and shifts in the model


def split_filters(graph: Graph, variables: list[int], skip: frozenset = frozenset()
                  ) -> list[Split]:
    """Split every partially trained CONV_2D / FULLY_CONNECTED filter among `variables` (the
    trained parameters), except the layers (output tensor names) in `skip` (given up for a
    flash budget). The filter's tensor becomes its trained part (so every reference to the
    trained parameter stays valid); the frozen rest is a new constant."""
    done = []
    readers = graph.consumers()
    for k, op in enumerate(list(graph.operators)):
        if op.kind not in ("CONV_2D", "FULLY_CONNECTED") or op.inputs[1] not in variables \
                or graph.tensors[op.outputs[0]].name in skip:
            continue
        w_index = op.inputs[1]
        w = graph.tensors[w_index]
        trained = _trained_channels(graph, readers.get(w_index, []))
        if trained is None or trained >= w.shape[-1]:
            continue
        channels = w.shape[-1]
        n = len(graph.tensors)
        rest = graph.add_tensor(Tensor(f"{w.name}/frozen", w.shape[:-1] + (channels - trained,),
                                       "int8", w.quant, data=w.data[..., trained:].copy()))
        for j in readers.get(w_index, []):
            reader = graph.operators[j]
            if j == k:
                # the builtin's requantization comes from the whole filter's scales
                graph.operators[j] = tt_forward.from_builtin(graph, reader, w_index, rest)
            elif reader.kind in SPLIT_GRADS:
                graph.operators[j] = make_op(SPLIT_GRADS[reader.kind],
                                             tt_forward.split_inputs(reader.inputs, rest),
                                             list(reader.outputs), grad_mode(graph, reader),
                                             **options_of(reader))
        before = w.nbytes
        w.data = w.data[..., :trained].copy()
        w.shape = w.data.shape
        done.append(Split(graph.tensors[op.outputs[0]].name, trained, channels,
                          before - w.nbytes, _flash_added(graph.tensors[n:])))
    return done


def _flash_added(new: list[Tensor]) -> int:
    """Bytes of the model file a split adds besides its tables: the multipliers' and shifts'
    data and the frozen part's scales (its data was in the file already, as the whole
    filter's initial value)."""
    rest, *tables = new
    scales = 0 if rest.quant is None else 4 * rest.quant.scale.size
    return scales + sum(t.nbytes for t in tables)


def _trained_channels(graph: Graph, readers: list[int]) -> int | None:
    """The input channels the layer's weight update trains (the `channels` option of the
    update op that writes w); None when no update op or another reader is unexpected."""
    trained = None
    for j in readers:
        op = graph.operators[j]
        if op.kind.endswith("_WEIGHT_UPDATE") or op.kind == "TT_UPDATE_WEIGHT":
            trained = options_of(op)["channels"]
        elif op.kind not in ("CONV_2D", "FULLY_CONNECTED", *SPLIT_GRADS):
            return None
    return trained
