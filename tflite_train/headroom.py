"""Headroom for the trained pretrained weights (augment --weight-headroom H): their int8 grid
made H times coarser before training, so that QAS can grow them.

Why: a pretrained tensor's int8 grid spans exactly its initial range (the converter puts
its largest weight at +-127), so every weight fine-tuning would grow saturates at +-127.
On the person detector's last:2 transfer, fp32 moves the pointwise conv's weights 16 LSB on
average and up to 990; 2.2-6.6% of each trained tensor ends beyond +-127.5 LSB, and fp32's
solution validated with those weights clamped to +-127 loses 6 points, rounded to the grid
without the clamp only 0.03 (benchmarks/RESULTS.md, "What separates int8 + QAS from fp32 on
last:2"). The new head has had such headroom all along (augment.HEAD_WEIGHT_HEADROOM).

What: for every layer whose weights the scheme trains (the new head excepted: it has its own
grid), the quantization channels the trained region touches get scale s' = s * H (float32)
and codes q' = round(q / H), ties away from zero as TFLite's quantizer rounds; codes stay in
+-127 since H >= 1. Those channels are all of a convolution's or fully connected layer's
(its scales are per output channel and the trained region is leading input channels of
every output channel), and a depthwise layer's trained channels only (its scales are per
channel along the trained axis). The layer's int32 bias is in units of s_x * s_w, so the
same channels of it get scale s_b * H and codes round(b / H) (it is given its own copy first
if other layers read it too). Everything downstream reads the new scales: every engine's
forward and backward, codegen, export (the exported model carries them), checkpoints.

What it changes:
  * the training model's forward at step 0 is no longer the input model's: each rescaled
    weight moves by up to H/2 of its old LSB (the rounding). Measure what that costs on the
    new task (benchmarks/RESULTS.md, the headroom section) before using it;
  * nothing of the learning rates: QAS divides the real-valued gradient by the scale
    (TT_UPDATE_WEIGHT: g = grad / s_w), so a step is H times fewer LSBs of the coarser grid
    and exactly the same real-valued step as before, as fp32's SGD would take; the
    model-derived rates (lr.py) are trust ratios of real values. What grows is the rounding
    noise: a sub-LSB step is rounded stochastically on a grid H times coarser.
H = 1 changes nothing (the model's bytes are those without the option).

Which layers (H = "auto", the rule, augment's default since round 29): the trained layers
that feed the classifier (the new head, else the layer computing the logits) through no
other layer, on a 2x grid; every other layer keeps its grid. Why those: measured per layer
with fp32 (benchmarks/weight_growth.py; RESULTS.md, "Which trained layers need weight
headroom, round 29"), the share of weights that fine-tuning grows past +-127 LSB does not
tell the layers apart (0.9-2.7% on Table 1's 99kb convolutions, 2.2% on the person
detector's last pointwise conv, 5-7% on depthwise ones), but what clamping them costs does:
fp32's trained person detector loses 2.1 points (last:2) and 1.4 (sparse) with only the
layer feeding the head clamped to +-127, and at most 0.4 with any other layer clamped (its
depthwise layer +0.3, the sparse scheme's partial convs -0.0 and -0.4, Table 1's last:6 and
99kb layers -0.3 to +0.3; seed 0, a diagnostic). A layer deeper in the network pays the
coarser grid's rounding noise (H times fewer LSBs a step) for range it does not need: Table
1's 99kb rows, which train no layer next to the head, lost 0.3-0.4 point with headroom 2 on
all their layers, and "auto" leaves them as they are.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import ModelError, TTError
from .fixedpoint import round_half_away
from .ir import Graph, Quantization
from .scheme import LAYER_KINDS

# Beyond 16x the trained weights keep fewer than 4 of their 8 bits at step 0.
MAX_WEIGHT_HEADROOM = 16.0
# the rule's value, and the factor it applies: 2x, the better of 2 and 4 on the person
# detector's last:2 (RESULTS.md, "Headroom for the trained pretrained weights, round 25")
AUTO = "auto"
AUTO_FACTOR = 2.0


def check(h) -> None:
    """A one-line error unless `h` is "auto" or a number in [1, MAX_WEIGHT_HEADROOM]."""
    if h == AUTO:
        return
    if isinstance(h, bool) or not isinstance(h, (int, float)) \
            or not 1.0 <= float(h) <= MAX_WEIGHT_HEADROOM:
        raise TTError(f"--weight-headroom must be auto or a number in "
                      f"[1, {MAX_WEIGHT_HEADROOM:g}], got {h!r}")


def factor(h) -> float:
    """The grids' factor of a checked value (the rule's for "auto")."""
    return AUTO_FACTOR if h == AUTO else float(h)


def feeding(graph: Graph, logits: int) -> set[int]:
    """The layers (op indices) that feed the classifier, i.e. the layer computing the
    `logits` tensor, through no other layer: walking back from the classifier's input
    through pooling, reshapes, adds and the like; a residual add reaches both its branches."""
    producers = graph.producers()
    k = producers.get(logits)
    while k is not None and graph.operators[k].kind not in LAYER_KINDS:
        k = producers.get(graph.operators[k].inputs[0])      # softmax, dequantize, ...
    if k is None:
        return set()
    found: set[int] = set()
    seen: set[int] = set()
    todo = [graph.operators[k].inputs[0]]
    while todo:
        t = todo.pop()
        if t < 0 or t in seen:
            continue
        seen.add(t)
        p = producers.get(t)
        if p is None:
            continue
        op = graph.operators[p]
        if op.kind in LAYER_KINDS:
            found.add(p)
        else:           # its activation inputs, not its constants (shapes, scales)
            todo.extend(i for i in op.inputs if i >= 0 and graph.tensors[i].data is None)
    return found


def _channels(graph: Graph, op, weight_channels: int) -> np.ndarray:
    """The weight's quantization channels that its trained region [..., :weight_channels]
    touches (a boolean mask over its scales)."""
    w = graph.tensors[op.inputs[1]]
    q = w.quant
    if q is None or w.dtype != "int8":
        raise ModelError(f"--weight-headroom: layer {graph.tensors[op.outputs[0]].name!r} has "
                         f"{w.dtype} weights without int8 quantization")
    if np.any(q.zero_point != 0):
        raise ModelError(f"--weight-headroom: weights {w.name!r} are not symmetric "
                         "(zero point != 0)")
    mask = np.ones(q.scale.size, bool)
    if q.per_channel and q.axis % len(w.shape) == len(w.shape) - 1:
        mask[weight_channels:] = False           # channels along the trained axis
    return mask


def _own(graph: Graph, op, slot: int, readers: dict[int, int]) -> int:
    """The op's input `slot` as a tensor only it reads (a copy when others read it too)."""
    t = op.inputs[slot]
    if readers.get(t, 0) <= 1:
        return t
    c = graph.copy_tensor(t, f"{graph.tensors[t].name}/headroom")
    op.inputs[slot] = c
    readers[t] -= 1
    readers[c] = 1
    return c


def _rescale(q: Quantization, mask: np.ndarray, h: float) -> Quantization:
    scale = q.scale.astype(np.float32).copy()
    scale[mask] = scale[mask] * np.float32(h)
    return replace(q, scale=scale, zero_point=q.zero_point.copy())


def apply(graph: Graph, layers: dict, h, exclude: set[int],
          logits: int | None = None) -> list[dict]:
    """Rescale the trained weights (and their layers' biases) of `layers` (op index ->
    scheme.LayerUpdate) by `h`, in place, leaving the ops in `exclude` (the new head) alone;
    with h = "auto", only those of `feeding(graph, logits)`, by AUTO_FACTOR. Returns a record
    per layer: its name, the channels rescaled, and how many of its weights rounded to 0
    that were not 0."""
    check(h)
    if h == AUTO:
        if logits is None:
            raise AssertionError("internal: --weight-headroom auto needs the logits")
        near = feeding(graph, logits)
        layers = {k: u for k, u in layers.items() if k in near}
    h = factor(h)
    if h == 1.0:
        return []
    readers = graph.readers()
    record = []
    for k, u in sorted(layers.items()):
        if k in exclude or not u.weight_channels:
            continue
        op = graph.operators[k]
        mask = _channels(graph, op, u.weight_channels)
        w = graph.tensors[_own(graph, op, 1, readers)]
        shape = [1] * len(w.shape)
        if w.quant.per_channel:
            shape[w.quant.axis] = -1
            where = np.broadcast_to(mask.reshape(shape), w.shape)
        else:
            where = np.ones(w.shape, bool)
        old = w.data.astype(np.int32)
        new = np.where(where, round_half_away(old / float(h)), old).astype(np.int8)
        w.data, w.quant = new, _rescale(w.quant, mask, h)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = graph.tensors[_own(graph, op, 2, readers)]
            bq = b.quant
            if bq is None or b.dtype != "int32":
                raise ModelError(f"--weight-headroom: bias {b.name!r} is {b.dtype} without "
                                 "int32 quantization")
            if bq.scale.size == mask.size:
                bmask = mask
            elif bq.scale.size == 1 and mask.all():
                bmask = np.ones(1, bool)
            else:
                raise ModelError(f"--weight-headroom: bias {b.name!r} has {bq.scale.size} "
                                 f"scales for {mask.size} weight scales")
            full = bmask if bq.per_channel else np.ones(b.shape, bool)
            bold = b.data.astype(np.int64)
            b.data = np.where(np.broadcast_to(full, b.shape), round_half_away(bold / float(h)),
                              bold).astype(np.int32)
            b.quant = _rescale(bq, bmask, h)
        record.append({"layer": graph.tensors[op.outputs[0]].name,
                       "channels": int(mask.sum()), "of": int(mask.size),
                       "zeroed": int(np.count_nonzero((new == 0) & (old != 0)))})
    return record
