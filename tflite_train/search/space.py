"""The search space of sparse updates, in the terms of `augment --scheme`.

Layers are the scheme's layers of the model with its new head (scheme.py: CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED in execution order, the new head not counted). A point
of the space is (k, {layer: ratio}): the biases of the last k layers and the weights of the
listed layers over the first ratio of their input channels, the new head always trained.
Weight-trained layers lie within the last k layers, as in every scheme the paper ships: a
weight's contribution is measured on top of the biases down to its layer (below), so a
scheme that sums it has those biases too; and they cost little, since the gradient reaches
that layer anyway.

The contribution analysis trains these runs, from the same starting point:
  head         the new head alone (the baseline)
  bias:K       + the biases of the last K layers                 gain against head
  weight:P:R   + the biases of the last L-P layers (down to P) and the weights of layer P
               on ratio R of its input channels                  gain against bias:L-P
Ratios that give the same number of channels are one run (kept as the largest such ratio);
depthwise layers train all their channels (ratio 1 only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from .. import scheme as schemes
from ..augment import replace_head
from ..ir import Graph

WEIGHT_RATIOS = schemes.RATIOS[1:]


@dataclass(frozen=True)
class Layer:
    position: int                  # the index `augment --scheme` uses
    op: int                        # operator index in the model with its new head
    name: str                      # output tensor
    kind: str
    channels: int                  # input channels of its filter
    ratios: tuple[Fraction, ...]   # the weight runs: one per distinct channel count


@dataclass(frozen=True)
class Point:
    """(k, {layer position: ratio}): a scheme of the space."""
    k: int
    weights: tuple[tuple[int, Fraction], ...] = ()     # sorted by position

    @property
    def key(self) -> str:
        return f"b{self.k}" + "".join(f"+w{p}:{r}" for p, r in self.weights)

    def doc(self) -> dict:
        """The JSON scheme `augment --scheme` reads."""
        return {"n_bias_update": self.k,
                "weight_update": [{"layer": p, "ratio": ratio_number(r)}
                                  for p, r in self.weights]}


@dataclass(frozen=True)
class Run:
    key: str                       # head | bias:K | weight:P:R
    point: Point
    reference: str | None          # the run its gain is measured against

    @property
    def weight(self) -> tuple[int, Fraction] | None:
        return self.point.weights[0] if self.point.weights else None


def ratio_number(r: Fraction) -> float | int:
    """1/8, 1/4, 1/2 are exact binary fractions: written as JSON numbers, as the paper's
    schemes are."""
    return int(r) if r.denominator == 1 else float(r)


class Space:
    def __init__(self, graph: Graph, num_classes: int):
        """`graph`: the inference model (modified: its classifier is replaced)."""
        head, _ = replace_head(graph, num_classes, seed=0)
        self.layers: list[Layer] = []
        for position, op in enumerate(schemes.layer_ops(graph, exclude={head})):
            kind = graph.operators[op].kind
            c = schemes.input_channels(graph, op)
            by_count: dict[int, Fraction] = {}
            for r in WEIGHT_RATIOS if kind != "DEPTHWISE_CONV_2D" else (Fraction(1),):
                by_count[math.ceil(r * c)] = r          # the largest ratio per count
            self.layers.append(Layer(position, op, graph.tensors[graph.operators[op].outputs[0]]
                                     .name, kind, c, tuple(sorted(by_count.values()))))
        self.n = len(self.layers)

    def depth(self, position: int) -> int:
        """The number of last layers that reaches down to `position`."""
        return self.n - position

    def runs(self) -> list[Run]:
        out = [Run("head", Point(0), None)]
        out += [Run(f"bias:{k}", Point(k), "head") for k in range(1, self.n + 1)]
        for layer in self.layers:
            k = self.depth(layer.position)
            out += [Run(f"weight:{layer.position}:{r}", Point(k, ((layer.position, r),)),
                        f"bias:{k}") for r in layer.ratios]
        return out

    def describe(self, run: Run) -> str:
        if run.key == "head":
            return "new head only"
        if run.weight is None:
            return f"biases of the last {run.point.k} layers"
        p, r = run.weight
        layer = self.layers[p]
        return (f"layer {p} ({layer.kind.lower().replace('_2d', '')}) weights "
                f"{math.ceil(r * layer.channels)}/{layer.channels} ch, biases of the last "
                f"{run.point.k}")
