"""Forward graph + scheme -> the same graph extended with a pruned backward graph and
update ops, all as TT_* custom ops in execution order.

Pruning: a tensor gets a gradient only if some trained parameter lies upstream of it (a
gradient below every trained parameter feeds nothing), and an operator's backward rule is
emitted only for outputs that have a gradient. Saved activations are whatever forward tensor
a backward op reads: the inputs of weight gradients, sliced to the trained channels by a
TT_SAVE_SLICE right after the forward op, and 1-bit activation masks (TT_SAVE_MASK).

Each op's rule lives in its ops/ module as `OpDef.backward(builder, k, op, dy, wants)`:
it returns {tensor: gradient tensor} for the inputs at the positions in `wants` (a rule may
answer for a tensor further up instead, as a convolution does for the input of the PAD it
absorbs), and asks the builder for masks, saved activations and parameter updates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import fixedpoint as fp
from . import ops
from .errors import ModelError, UnsupportedOpError
from .ir import Graph, Operator, Quantization, Tensor
from .scheme import LayerUpdate, Scheme
from .ops.quantgrad import MAX_POSITIONS, layer_multipliers
from .training_ops import inputs_of, make_op, options_spec, outputs_of, spec


@dataclass
class Hyper:
    # None: per-layer rates derived from the model (lr.py: normalized LMS for a new head, a
    # trust ratio for pretrained tensors); a number: that lr for every layer's weights.
    lr: float | None = None
    # None: with an explicit lr, lr / 100 (a bias gradient sums the output gradient over
    # every position of its layer); with model-derived rates, each bias its own rate.
    bias_lr: float | None = None
    momentum: float = 0.0
    qas: bool = True
    # stochastic by default: with nearest rounding the many sub-LSB weight updates vanish
    # and int8 training falls behind fp32 (benchmarks/RESULTS.md)
    rounding: str = "stochastic"        # or "nearest"
    seed: int = 0
    decay_steps: int = 0                # N > 0: cosine decay to 0 over N steps
    # T > 0: inverse-time decay lr * T / (T + t), the lr halves at step T and keeps falling
    # without knowing the run's length; 0: none (with decay_steps 0, a constant lr). None:
    # lr.HALF_LIFE unless decay_steps asks for a cosine.
    half_life: int | None = None
    # forward op index -> (weight lr, bias lr); augment fills it when lr is None. A layer
    # not in it gets lr / effective_bias_lr.
    layer_lrs: dict[int, tuple[float, float]] | None = None
    # activation gradients: "float32", or "int8" with a run-time scale per tensor
    # (schema: int8_gradients), rounded to nearest (the default since round 29: stochastic
    # rounding's noise cost the person detector's bias-only transfer 0.6 point against
    # float32 gradients, nearest none; README "Int8 activation gradients") or stochastically
    grad: str = "int8"
    grad_rounding: str = "nearest"
    # B > 1: every update op sums the gradients of B training Invokes in a float32
    # accumulator and updates once with their mean (schema: the update ops' batch).
    # None: augment chooses (augment.DEFAULT_BATCH where it suits the scheme and fits)
    batch: int | None = 1
    # H > 1: the trained pretrained weights' int8 grids are made H times coarser at augment
    # time (scale x H, codes rounded), so that QAS can grow them past their initial range
    # (headroom.py); 1: the input model's grids, untouched; "auto" (the default since round
    # 29): 2x on the trained layers feeding the classifier only (headroom.feeding), where the
    # range is what int8 + QAS lacked (person detector last:2: +0.37 +- 0.21 point, paired);
    # no other row changes resolvably (benchmarks/RESULTS.md, "Which trained layers need
    # weight headroom, round 29")
    weight_headroom: float | str = "auto"
    # the new head's weight update carries each weight's rounding remainder in an int8 of
    # 1/256 LSB and rounds to nearest (schema: the update ops' residual) instead of rounding
    # stochastically: the head's steps are mostly sub-LSB and their rounding noise cost
    # bias-only 0.24 +- 0.09 point on MobileNetV2-w0.35 and 0.18 +- 0.09 on MCUNet-5FPS (12
    # seeds, paired; benchmarks/RESULTS.md, "Table 1 at today's defaults, round 27").
    # Pretrained weights never get one (measured useless there: RESULTS "A rounding
    # residual for QAS, round 24")
    head_residual: bool = True

    @property
    def effective_bias_lr(self) -> float | None:
        if self.bias_lr is not None:
            return self.bias_lr
        return None if self.lr is None else self.lr / 100

    @property
    def effective_half_life(self) -> int:
        if self.half_life is not None:
            return self.half_life
        from .lr import HALF_LIFE
        return 0 if self.decay_steps else HALF_LIFE

    def rates(self, k: int) -> tuple[float, float]:
        if self.layer_lrs and k in self.layer_lrs:
            return self.layer_lrs[k]
        if self.lr is None:
            raise ValueError(f"no learning rate for operator {k}: neither lr nor "
                             "layer_lrs gives one")
        return self.lr, self.effective_bias_lr

    def options(self, bias: bool, seed: int, k: int) -> dict:
        lr_w, lr_b = self.rates(k)
        return {"lr": float(lr_b if bias else lr_w),
                "momentum": float(self.momentum), "qas": bool(self.qas),
                "rounding": 1 if self.rounding == "stochastic" else 0,
                "seed": int(seed) & 0xFFFFFFFF, "decay_steps": int(self.decay_steps),
                "half_life_steps": int(self.effective_half_life),
                # absent at 1, so that a batch-1 model's bytes are what they were
                **({"batch": int(self.batch)} if self.batch > 1 else {})}


@dataclass
class BackwardGraph:
    """What autodiff added, for reporting and tests."""
    forward_ops: list[Operator]
    save_ops: list[Operator] = field(default_factory=list)
    loss_op: Operator | None = None
    backward_ops: list[Operator] = field(default_factory=list)
    trained: dict[int, LayerUpdate] = field(default_factory=dict)   # forward op -> update
    variables: list[int] = field(default_factory=list)     # trainable parameter tensors
    momentum: list[int] = field(default_factory=list)      # optimizer state tensors
    accumulators: list[int] = field(default_factory=list)  # the batch's gradient sums
    residuals: list[int] = field(default_factory=list)     # weights' rounding residuals
    grads: dict[int, int] = field(default_factory=dict)    # forward tensor -> its gradient
    param_grads: dict[int, int] = field(default_factory=dict)   # parameter -> its gradient
    grad_scales: dict[int, int] = field(default_factory=dict)   # int8 gradient -> its scale


class GradBuilder:
    """What backward rules use to add tensors and ops to the training graph."""

    def __init__(self, graph: Graph, scheme: Scheme, hyper: Hyper, label: int,
                 fuse: bool = True, residual_layers: frozenset = frozenset()):
        self.graph = graph
        self.residual_layers = residual_layers   # forward ops whose weights get a residual
        self.fuse = fuse
        self.scheme = scheme
        self.hyper = hyper
        self.label = label
        self.after: dict[int, list[Operator]] = {}      # forward op -> save ops after it
        self.backward: list[Operator] = []
        self._masks: dict[int, int] = {}
        self._saved: dict[tuple[int, int], int] = {}
        self.result = BackwardGraph(forward_ops=list(graph.operators))
        self._producer = graph.producers()      # forward op that makes each tensor
        self._consumers = graph.consumers()
        self.scales = self.result.grad_scales   # int8 gradient -> its scale tensor
        self._multipliers: dict[int, int] = {}
        self._rounders = 0

    # -- tensors and ops
    def tensor(self, name: str, shape, dtype: str = "float32",
               quant: Quantization | None = None) -> int:
        return self.graph.add_tensor(Tensor(name=name, shape=tuple(int(s) for s in shape),
                                            dtype=dtype, quant=quant))

    def grad_like(self, t: int, suffix: str = "grad") -> int:
        """A new activation gradient shaped like tensor t, of the graph's gradient dtype."""
        src = self.graph.tensors[t]
        return self.tensor(f"{src.name}/{suffix}", src.shape, self.hyper.grad)

    def emit(self, name: str, inputs: list[int], outputs: list[int],
             extra: dict[str, int] | None = None, after_label: tuple[int, ...] = (),
             **options) -> None:
        self.backward.append(self.make(name, inputs, outputs, extra, after_label, **options))

    def make(self, name: str, inputs: list[int], outputs: list[int],
             extra: dict[str, int] | None = None, after_label: tuple[int, ...] = (),
             **options) -> Operator:
        """A TT_* op from its float32-mode inputs (without the label), outputs and options;
        with int8 gradients it gets its int8_only inputs (scales of its gradient inputs, and
        `extra` by name), scale outputs (new scale tensors) and options (the gradient's
        rounding and seed; `passes` 2 until augment's planner chooses). `after_label`: its
        appended inputs (an update op's accumulator)."""
        inputs, outputs = list(inputs), list(outputs)
        tail = [self.label, *after_label]
        grad_in = [p for p, i in enumerate(spec(name)["inputs"]) if "|" in i.get("dtype", "")]
        if self.hyper.grad != "int8" or not grad_in and not any(
                "|" in o.get("dtype", "") for o in spec(name)["outputs"]):
            return make_op(name, inputs + tail, outputs, **options)
        names = [i["name"] for i in inputs_of(name, "int8")]
        for i in inputs_of(name, "int8")[len(inputs):-1]:
            if i["name"].endswith("_scale"):
                of = inputs[names.index(i["name"][:-len("_scale")])]
                inputs.append(self.scales[of] if of >= 0 else -1)
            else:
                inputs.append((extra or {})[i["name"]])
        out_names = [o["name"] for o in outputs_of(name, "int8")]
        for o in outputs_of(name, "int8")[len(outputs):]:
            of = outputs[out_names.index(o["name"][:-len("_scale")])]
            outputs.append(self.new_scale(of))
        if len(outputs) == len(outputs_of(name, "float32")):   # data movement: dy's scale
            for p, o in enumerate(spec(name)["outputs"]):
                if "|" in o.get("dtype", ""):
                    self.scales[outputs[p]] = self.scales[inputs[grad_in[0]]]
        wanted = options_spec(name, "int8")
        if "rounding" in wanted and "rounding" not in options:
            options["rounding"] = 1 if self.hyper.grad_rounding == "stochastic" else 0
            options["seed"] = (self.hyper.seed * 1000003 + 0x5EED0000 + self._rounders) \
                & 0xFFFFFFFF
            self._rounders += 1
        if "passes" in wanted:
            options.setdefault("passes", 2)
        return make_op(name, inputs + tail, outputs, grad="int8", **options)

    def new_scale(self, g: int) -> int:
        """The float32 [1] run-time scale tensor of int8 gradient g."""
        s = self.tensor(f"{self.graph.tensors[g].name}_scale", (1,), "float32")
        self.scales[g] = s
        return s

    def input_grad_multipliers(self, k: int, terms: int) -> dict[str, int]:
        """`extra` of forward op k's input gradient in int8 mode: its weights' scales as a
        constant int16 tensor of multipliers (schema: int8_gradients.multipliers)."""
        if self.hyper.grad != "int8":
            return {}
        w = self.graph.operators[k].inputs[1]
        if w not in self._multipliers:
            wt = self.graph.tensors[w]
            channels = wt.shape[3] if self.graph.operators[k].kind == "DEPTHWISE_CONV_2D" \
                else wt.shape[0]
            scales = np.broadcast_to(wt.quant.scale.astype(np.float32), (channels,))
            try:
                mult, _ = layer_multipliers(scales, terms)
            except ValueError as e:
                raise ModelError(f"operator {k} ({self.graph.operators[k].kind}): {e}") from None
            self._multipliers[w] = self.graph.add_tensor(Tensor(
                f"{wt.name}/grad_multipliers", mult.shape, "int16", data=mult))
        return {"multipliers": self._multipliers[w]}

    # -- saved state of the forward pass
    def add_after(self, k: int, op: Operator) -> None:
        """Run `op` right after forward op k (-1: before every forward op)."""
        self.after.setdefault(k, []).append(op)
        for t in op.outputs:
            self._producer[t] = k

    def producer(self, t: int) -> int:
        return self._producer.get(t, -1)

    def consumer_count(self, t: int) -> int:
        """Forward operators reading tensor t (graph outputs count as readers too)."""
        return len(self._consumers.get(t, [])) + (t in self.graph.outputs)

    def mask(self, k: int) -> int:
        """Mask tensor of forward op k's fused activation, or -1 when it has none."""
        if k in self._masks:
            return self._masks[k]
        op = self.graph.operators[k]
        act = ops.fused_activation(op)
        if act == 0:
            self._masks[k] = -1
            return -1
        y = self.graph.tensors[op.outputs[0]]
        # The activation's own bounds before int8 clamping: a bound outside [-128, 127]
        # (e.g. RELU6 whose output scale cannot reach 6.0) never clamps, and plain int8
        # saturation is not masked, so that side stays open.
        lo, hi = fp.activation_range(act, y.quant.s, y.quant.zp, qmin=-(1 << 31),
                                     qmax=(1 << 31) - 1)
        lo = lo if act in (1, 2, 3) and lo >= -128 else -129
        hi = hi if act in (2, 3) and hi <= 127 else 128
        m = self.tensor(f"{y.name}/mask", [(y.size + 7) // 8], "uint8")
        self.add_after(k, make_op("TT_SAVE_MASK", [op.outputs[0], self.label], [m],
                                  lo=int(lo), hi=int(hi)))
        self._masks[k] = m
        return m

    def saved(self, t: int, channels: int | None = None) -> int:
        """An int8 activation kept for the backward pass, sliced to its first `channels`."""
        src = self.graph.tensors[t]
        full = src.shape[-1]
        if channels is None or channels >= full:
            return t
        key = (t, channels)
        if key not in self._saved:
            s = self.tensor(f"{src.name}/saved{channels}", src.shape[:-1] + (channels,),
                            "int8", src.quant)
            self.add_after(self._producer.get(t, -1),
                           make_op("TT_SAVE_SLICE", [t, self.label], [s], channels=channels))
            self._saved[key] = s
        return self._saved[key]

    # -- parameters
    def update(self, k: int) -> LayerUpdate | None:
        return self.scheme.layers.get(k)

    def update_weights(self, k: int, grad_kind: str, grad_inputs: list[int],
                       shape: tuple, axis: int, **geometry) -> None:
        """Train forward op k's weights from `grad_kind` (a TT_*_WEIGHT_GRAD) applied to
        `grad_inputs` (dy, mask, saved): fused with the update when the builder fuses, so
        that the layer's weight gradient [`shape`] never exists as a whole."""
        w = self.graph.operators[k].inputs[1]
        channels = int(shape[-1])
        dy = self.graph.tensors[grad_inputs[0]]
        positions = dy.size // dy.shape[-1]
        if self.hyper.grad == "int8" and positions > MAX_POSITIONS:
            raise ModelError(f"operator {k} ({self.graph.operators[k].kind}): its weight "
                             f"gradient sums {positions} positions, more than the "
                             f"{MAX_POSITIONS} int8 gradients' int32 sums allow")
        self.result.trained.setdefault(k, LayerUpdate(k)).weight_channels = channels
        if self.fuse:
            mom = self._momentum(w, shape)
            self.emit(grad_kind.replace("_WEIGHT_GRAD", "_WEIGHT_UPDATE"),
                      grad_inputs + [w, mom], [], after_label=self._weight_tail(k, w, shape),
                      **geometry, **self._options(False, k), channels=channels, axis=axis)
            self._record(w, None)
            return
        dw = self.tensor(f"{self.graph.tensors[w].name}/grad", shape)
        self.emit(grad_kind, grad_inputs, [dw], **geometry)
        mom = self._momentum(w, shape)
        self.emit("TT_UPDATE_WEIGHT", [w, dw, mom], [],
                  after_label=self._weight_tail(k, w, shape), **self._options(False, k),
                  channels=channels, axis=axis)
        self._record(w, dw)

    def update_bias(self, k: int, dy: int, mask: int) -> None:
        """Train forward op k's bias from dy (through the activation mask)."""
        op = self.graph.operators[k]
        b = op.inputs[2]
        bt = self.graph.tensors[b]
        if bt.quant is None:       # TFLite leaves it implicit: s_b = s_x * s_w
            x, w = self.graph.tensors[op.inputs[0]], self.graph.tensors[op.inputs[1]]
            scale = (np.float32(x.quant.s) * w.quant.scale.astype(np.float32)).astype(np.float32)
            bt.quant = Quantization(scale, np.zeros(scale.size, np.int64))
        self.result.trained.setdefault(k, LayerUpdate(k)).bias = True
        if self.fuse:
            mom = self._momentum(b, bt.shape)
            self.emit("TT_BIAS_UPDATE", [dy, mask, b, mom], [],
                      after_label=self._accumulator(b, bt.shape), **self._options(True, k))
            self._record(b, None)
            return
        db = self.tensor(f"{bt.name}/grad", bt.shape)
        self.emit("TT_BIAS_GRAD", [dy, mask], [db])
        self.emit("TT_UPDATE_BIAS", [b, db, self._momentum(b, bt.shape)], [],
                  after_label=self._accumulator(b, bt.shape), **self._options(True, k))
        self._record(b, db)

    def _options(self, bias: bool, k: int) -> dict:
        # one seed per update op, so that stochastic rounding streams never overlap
        seed = self.hyper.seed * 1000003 + len(self.result.variables) + 1
        return self.hyper.options(bias, seed, k)

    def _momentum(self, param: int, shape) -> int:
        if self.hyper.momentum <= 0:
            return -1
        return self._buffer(param, shape, "momentum", self.result.momentum)

    def _accumulator(self, param: int, shape) -> tuple[int, ...]:
        """The update op's appended inputs: its accumulator when batch > 1, else none."""
        if self.hyper.batch <= 1:
            return ()
        return (self._buffer(param, shape, "accumulator", self.result.accumulators),)

    def _weight_tail(self, k: int, w: int, shape) -> tuple[int, ...]:
        """A weight update's appended inputs: the accumulator's, then for forward op k's
        weights with a residual the accumulator's slot (-1 at batch 1) and the residual.
        Made after the momentum buffer, so that a model without a residual has the
        tensors, in the order, it had before residuals existed."""
        after = self._accumulator(w, shape)
        if k not in self.residual_layers:
            return after
        return (after[0] if after else -1, self._residual(w, shape))

    def _residual(self, param: int, shape) -> int:
        """An int8 variable of the trained region, zero at allocation and Reset: the
        weights' rounding remainders (the new head's is "head/residual")."""
        name = self.graph.tensors[param].name
        name = name[:-len("/weights")] if name.endswith("/weights") else name
        t = self.tensor(f"{name}/residual", shape, "int8")
        self.graph.tensors[t].is_variable = True
        self.result.residuals.append(t)
        return t

    def _buffer(self, param: int, shape, kind: str, record: list[int]) -> int:
        """A float32 variable of the update of `param`, zero at allocation and Reset (as
        every variable tensor is), shaped like the trained region."""
        t = self.tensor(f"{self.graph.tensors[param].name}/{kind}", shape)
        self.graph.tensors[t].is_variable = True
        record.append(t)
        return t

    def _record(self, param: int, grad: int | None) -> None:
        self.result.variables.append(param)
        if grad is not None:
            self.result.param_grads[param] = grad


def needs_gradient(graph: Graph, scheme: Scheme) -> set[int]:
    """Tensors downstream of a trained parameter: only they need gradients."""
    needs: set[int] = set()
    for k, op in enumerate(graph.operators):
        if k in scheme.layers or any(t in needs for t in op.inputs if t >= 0):
            needs.update(op.outputs)
    return needs


def build(graph: Graph, scheme: Scheme, hyper: Hyper, logits: int, label: int,
          loss: int, fuse: bool = True, residual_layers=frozenset()) -> BackwardGraph:
    """Extend `graph` in place: save ops after forward ops, the loss, then the backward ops
    in reverse order, each parameter update right after its gradient; with `fuse`, weight
    and bias gradients are computed inside their update ops (in-place update: no layer's
    whole gradient is ever materialised). `residual_layers`: forward ops whose weight
    update carries a rounding residual (augment: the new head's)."""
    b = GradBuilder(graph, scheme, hyper, label, fuse, frozenset(residual_layers))
    dlogits = b.tensor("dlogits", graph.tensors[logits].shape, hyper.grad)
    loss_op = b.make("TT_LOSS_SOFTMAX_CE", [logits], [loss, dlogits])
    b.result.loss_op = loss_op
    needs = needs_gradient(graph, scheme)
    grads: dict[int, int] = {logits: dlogits}
    producers = graph.producers()
    n_forward = len(b.result.forward_ops)
    last = producers.get(logits, -1)
    for k in range(last, -1, -1):
        op = graph.operators[k]
        y = op.outputs[0]
        if y not in grads:
            continue
        opdef = ops.get(graph, k)
        wants = {pos for pos, t in enumerate(op.inputs)
                 if t >= 0 and t in needs and pos not in opdef.param_inputs}
        if not wants and k not in scheme.layers:
            continue
        if opdef.backward is None:
            raise UnsupportedOpError(k, op.kind, "no backward rule: training cannot pass "
                                     "through it (train only layers after it)")
        for t, g in opdef.backward(b, k, op, grads[y], wants).items():
            if t in grads:               # fan-out: add the two contributions
                total = b.grad_like(t, "grad_sum")
                b.emit("TT_SUM_GRAD", [grads[t], g], [total])
                grads[t] = total
            else:
                grads[t] = g
    missing = [k for k in scheme.layers if k > last]
    if missing:
        raise ModelError(f"operator {missing[0]} is trained but lies after the logits")
    order: list[Operator] = []
    for k, op in enumerate(b.result.forward_ops[:n_forward]):
        order.append(op)
        order.extend(b.after.get(k, []))
    order = b.after.get(-1, []) + order      # slices of graph inputs come first
    b.result.save_ops = [o for ops_ in b.after.values() for o in ops_]
    b.result.backward_ops = b.backward
    b.result.grads = grads
    graph.operators = order + [loss_op] + b.backward
    return b.result
