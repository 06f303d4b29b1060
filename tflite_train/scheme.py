"""Update schemes: which parameters of a model are trained.

Layers. The layers a scheme talks about are the model's CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED operators, numbered from 0 in execution (file) order. When `augment`
replaces the classifier (`--num-classes`), the new head is not one of the numbered layers:
it is always trained, weights and bias. A layer can also be named by its output tensor's
name. Negative indices count from the end (-1 is the last layer).

Schemes (the `--scheme` argument):
  full          weights and biases of every layer
  bias-only     biases of every layer;  bias-only:K  biases of the last K layers
  last:N        weights and biases of the last N layers
  FILE.json     {"n_bias_update": K, "weight_update": [{"layer": 21, "ratio": 0.5}, ...]}
                biases of the last K layers, and the weights of the listed layers, each
                for a ratio in {1/8, 1/4, 1/2, 1} of its input channels (0 = none); a file
                `tflite-train search` wrote also has its record ("search"), of which the
                budget and target are read (Scheme.searched: augment's default batch keeps
                the model within that budget)

Channel rule. A ratio r keeps the FIRST ceil(r * C) input channels of a layer (C = filter
input depth). Contiguous channels make the saved activation a plain slice on the device;
the paper's reference code picks top-magnitude channels in simulation but the first k in its
compiler, and we use one rule everywhere. Depthwise layers have one input channel per filter,
so their weights are trained on all channels (ratio must be 1).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .errors import TTError
from .ir import Graph

LAYER_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# 0 = "no weight update for this layer", as in the paper's shipped schemes
RATIOS = (Fraction(0), Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1))


class SchemeError(TTError):
    pass


@dataclass
class LayerUpdate:
    op: int                     # operator index in the graph
    bias: bool = False
    weight_channels: int = 0    # number of leading input channels whose weights are trained


@dataclass
class Scheme:
    name: str
    layers: dict[int, LayerUpdate] = field(default_factory=dict)   # op index -> update
    # a searched file's {"target", "budget_bytes"}: the budget it was searched under
    searched: dict | None = None

    def trained_ops(self) -> list[int]:
        return sorted(k for k, u in self.layers.items() if u.bias or u.weight_channels)

    def describe(self) -> dict:
        return {"name": self.name,
                "layers": [{"op": u.op, "bias": u.bias, "weight_channels": u.weight_channels}
                           for k, u in sorted(self.layers.items())]}


def layer_ops(graph: Graph, exclude: set[int] = frozenset()) -> list[int]:
    return [k for k, op in enumerate(graph.operators)
            if op.kind in LAYER_KINDS and k not in exclude]


def input_channels(graph: Graph, op_index: int) -> int:
    op = graph.operators[op_index]
    w = graph.tensors[op.inputs[1]]
    if op.kind == "DEPTHWISE_CONV_2D":
        return w.shape[3]
    return w.shape[-1]


def trained_weights(filt, channels: int) -> int:
    """How many of a filter's weights train when its first `channels` input channels do (the
    last axis: input channels, or a depthwise filter's channels)."""
    return filt.size // filt.shape[-1] * channels


def has_bias(graph: Graph, op_index: int) -> bool:
    op = graph.operators[op_index]
    return len(op.inputs) > 2 and op.inputs[2] >= 0


def parse_ratio(value, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SchemeError(f"{where}: ratio must be one of 0, 1/8, 1/4, 1/2, 1 (got {value!r})")
    try:
        r = Fraction(value).limit_denominator(64) if not isinstance(value, str) \
            else Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise SchemeError(f"{where}: ratio {value!r} is not a number") from None
    if r not in RATIOS:
        raise SchemeError(f"{where}: ratio must be one of 0, 1/8, 1/4, 1/2, 1 (got {value})")
    return r


def resolve_layer(graph: Graph, layers: list[int], ref, where: str) -> int:
    if isinstance(ref, bool):
        raise SchemeError(f"{where}: layer must be an index or an output tensor name")
    if isinstance(ref, int):
        if not -len(layers) <= ref < len(layers):
            raise SchemeError(f"{where}: layer {ref} out of range (the model has "
                              f"{len(layers)} CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED layers)")
        return layers[ref]
    if isinstance(ref, str):
        for k in layers:
            if graph.tensors[graph.operators[k].outputs[0]].name == ref:
                return k
        raise SchemeError(f"{where}: no layer has an output tensor named {ref!r}")
    raise SchemeError(f"{where}: layer must be an index or an output tensor name, got {ref!r}")


def _bias_last(graph: Graph, layers: list[int], k: int, scheme: Scheme) -> None:
    for op in layers[len(layers) - k:] if k else []:
        if has_bias(graph, op):
            scheme.layers.setdefault(op, LayerUpdate(op)).bias = True


def _weights(graph: Graph, op: int, ratio: Fraction, scheme: Scheme, where: str) -> None:
    c = input_channels(graph, op)
    if ratio == 0:
        return
    if graph.operators[op].kind == "DEPTHWISE_CONV_2D" and ratio != 1:
        raise SchemeError(f"{where}: layer is depthwise; its weights are trained on all "
                          "channels (ratio must be 1)")
    scheme.layers.setdefault(op, LayerUpdate(op)).weight_channels = math.ceil(ratio * c)


def _count(text: str, spec: str, n_layers: int) -> int:
    try:
        k = int(text)
    except ValueError:
        raise SchemeError(f"scheme {spec!r}: {text!r} is not an integer") from None
    if not 0 <= k <= n_layers:
        raise SchemeError(f"scheme {spec!r}: {k} is out of range 0..{n_layers} "
                          f"(the model has {n_layers} layers)")
    return k


def parse(spec: str | dict, graph: Graph, exclude: set[int] = frozenset()) -> Scheme:
    """A scheme from its `--scheme` text, or a JSON scheme's document (`search` builds them
    in memory). `exclude`: operator indices not counted as layers (the replaced classifier)."""
    if isinstance(spec, dict):
        return from_dict(spec, graph, exclude)
    layers = layer_ops(graph, exclude)
    n = len(layers)
    if spec == "full":
        s = Scheme("full")
        _bias_last(graph, layers, n, s)
        for op in layers:
            _weights(graph, op, Fraction(1), s, f"layer op {op}")
        return s
    if spec == "bias-only" or spec.startswith("bias-only:"):
        k = n if spec == "bias-only" else _count(spec.split(":", 1)[1], spec, n)
        s = Scheme(spec)
        _bias_last(graph, layers, k, s)
        return s
    if spec.startswith("last:"):
        k = _count(spec.split(":", 1)[1], spec, n)
        s = Scheme(spec)
        _bias_last(graph, layers, k, s)
        for op in layers[n - k:] if k else []:
            _weights(graph, op, Fraction(1), s, f"layer op {op}")
        return s
    path = Path(spec)
    if spec.endswith(".json") or path.exists():
        return from_file(path, graph, exclude)
    raise SchemeError(f"unknown scheme {spec!r}: use full, bias-only[:K], last:N or a "
                      ".json scheme file")


def from_file(path: Path, graph: Graph, exclude: set[int] = frozenset()) -> Scheme:
    if not path.is_file():
        raise SchemeError(f"scheme file {path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemeError(f"scheme file {path}: not valid JSON ({exc})") from None
    return from_dict(doc, graph, exclude, str(path))


def from_dict(doc, graph: Graph, exclude: set[int] = frozenset(),
              name: str = "scheme") -> Scheme:
    if not isinstance(doc, dict):
        raise SchemeError(f"{name}: expected a JSON object with n_bias_update and "
                          "weight_update")
    # "search": what `tflite-train search` predicted and summed for this scheme; only its
    # budget and target are read (_searched)
    unknown = set(doc) - {"n_bias_update", "weight_update", "comment", "search"}
    if unknown:
        raise SchemeError(f"{name}: unknown key(s) {sorted(unknown)}")
    layers = layer_ops(graph, exclude)
    n_bias = doc.get("n_bias_update", 0)
    if isinstance(n_bias, bool) or not isinstance(n_bias, int) or not 0 <= n_bias <= len(layers):
        raise SchemeError(f"{name}: n_bias_update must be an integer in 0..{len(layers)}, "
                          f"got {n_bias!r}")
    s = Scheme(Path(name).stem if name != "scheme" else name, searched=_searched(doc, name))
    _bias_last(graph, layers, n_bias, s)
    entries = doc.get("weight_update", [])
    if not isinstance(entries, list):
        raise SchemeError(f"{name}: weight_update must be a list of {{layer, ratio}}")
    seen = set()
    for i, entry in enumerate(entries):
        where = f"{name}: weight_update[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"layer", "ratio"} or "layer" not in entry:
            raise SchemeError(f"{where}: expected {{\"layer\": index or name, \"ratio\": r}}, "
                              f"got {entry!r}")
        op = resolve_layer(graph, layers, entry["layer"], where)
        if op in seen:
            raise SchemeError(f"{where}: layer {entry['layer']!r} is listed twice")
        seen.add(op)
        ratio = parse_ratio(entry.get("ratio", 1), where)
        _weights(graph, op, ratio, s, where)
    return s


def _searched(doc: dict, name: str) -> dict | None:
    """The budget and target of a file's search record (None without one): the memory the
    user asked `search` to keep the training model within, which augment's default batch must
    not undo (augment._batch_fits)."""
    record = doc.get("search")
    if record is None:
        return None
    from .search.budget import TARGETS
    budget = record.get("budget_bytes") if isinstance(record, dict) else None
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0 or \
            record.get("target") not in TARGETS:
        raise SchemeError(f"{name}: search must be the record `tflite-train search` writes, "
                          "with budget_bytes (a positive integer) and target "
                          f"({' or '.join(TARGETS)})")
    return {"target": record["target"], "budget_bytes": budget}
