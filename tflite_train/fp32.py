"""The fp32 baseline: the same trainable set of a training model fine-tuned in TensorFlow on
the dequantized float model, same SGD (learning rates, momentum), same samples: one update
per sample, or with a model of augment --batch B one update per B samples with their mean
gradient (the int8 ops' batch, so that int8 and fp32 stay paired sample for sample).

Everything is read from the training model itself: the forward ops (the builtins), the
initial parameter values (TT_INIT's constants), what is trained and how (the update ops'
inputs and options: separate TT_UPDATE_* ops or the fused gradient+update ops augment writes
by default), and the logits (TT_LOSS_SOFTMAX_CE's input). Requires TensorFlow (the `dev`
extra).
"""
from __future__ import annotations

import numpy as np

from .ir import Graph
from .ops.training import learning_rate
from .tf_float import _tf, apply, dequantize
from .training_ops import options_of, spec


def updates(graph: Graph):
    """(parameter tensor, options) of every update op of a training model, separate
    (TT_UPDATE_WEIGHT / TT_UPDATE_BIAS) or fused (TT_*_WEIGHT_UPDATE, TT_BIAS_UPDATE): the
    schema's ops with a learning rate, whose parameter is their `weights` or `bias` input."""
    for op in graph.operators:
        if not op.kind.startswith("TT_") or "lr" not in spec(op.kind)["options"]:
            continue
        names = [i["name"] for i in spec(op.kind)["inputs"]]
        yield op.inputs[names.index("weights" if "weights" in names else "bias")], options_of(op)


class FloatTrainer:
    def __init__(self, graph: Graph):
        from .passes.builtins import joined
        tf = _tf()
        graph = joined(graph)             # builtins, whole filters (augment's memory passes)
        self.graph = graph
        init = next(op for op in graph.operators if op.kind == "TT_INIT")
        initial = {var: graph.tensors[c].data for c, var in zip(init.inputs[0::2],
                                                                init.inputs[1::2])}
        self.forward_ops = [op for op in graph.operators if not op.kind.startswith("TT_")]
        loss_op = next(op for op in graph.operators if op.kind == "TT_LOSS_SOFTMAX_CE")
        self.logits = loss_op.inputs[0]
        self.input = graph.inputs[0]
        self.output = graph.outputs[0]
        self.params: dict[int, object] = {}
        self.rules = []                      # (variable, update options, channels, buffer)
        self.t = 0                           # updates so far (for lr decay)
        self.seen = 0                        # training samples so far
        self.batch = 1                       # samples per update (the update ops' batch)
        for p, o in updates(graph):
            t = graph.tensors[p]
            axis = o.get("axis", 0)                 # biases: one scale per element
            var = tf.Variable(dequantize(t, initial[p], axis=axis), name=t.name.replace("/", "_"))
            self.params[p] = var
            channels = o.get("channels", t.shape[-1])
            buf = tf.Variable(tf.zeros_like(var)) if o["momentum"] > 0 else None
            self.rules.append((var, o, channels, buf))
            self.batch = max(self.batch, int(o.get("batch", 1)))
        # the batch's gradient sums, one per rule (batch > 1)
        self.accs = [tf.Variable(tf.zeros_like(r[0])) for r in self.rules] \
            if self.batch > 1 else []
        self.constants = {}
        for op in self.forward_ops:
            for t in op.inputs:
                tensor = graph.tensors[t] if t >= 0 else None
                if tensor is not None and t not in self.params and tensor.data is not None:
                    axis = 3 if op.kind == "DEPTHWISE_CONV_2D" and t == op.inputs[1] else None
                    self.constants[t] = tf.constant(dequantize(tensor, tensor.data, axis))
        # no tensor-dependent Python control flow: plain tracing, no AutoGraph rewriting
        self._step = tf.function(self._train_step, autograph=False)
        self._accumulate = tf.function(self._accumulate_step, autograph=False)
        self._apply_mean = tf.function(self._apply_mean_step, autograph=False)
        self._predict = tf.function(self._forward_output, autograph=False)

    def _forward(self, x):
        values = {self.input: x}
        for op in self.forward_ops:
            args = []
            for pos, t in enumerate(op.inputs):
                if t < 0:
                    args.append(None)
                elif t in self.params:
                    args.append(self.params[t])
                elif t in values:
                    args.append(values[t])
                else:
                    args.append(self.constants.get(t))
            values[op.outputs[0]] = self._output(op, apply(self.graph, op, args))
        return values

    def _output(self, op, y):
        """An op's real-valued output as the next ops read it (a subclass may put it on
        the int8 forward's grid: benchmarks/paper_accuracy.py's diagnostic)."""
        return y

    def _forward_output(self, x):
        return self._forward(x)[self.output]

    def _loss_grads(self, x, label):
        tf = _tf()
        with tf.GradientTape() as tape:
            logits = tf.reshape(self._forward(x)[self.logits], [1, -1])
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(label, logits)[0]
        return loss, tape.gradient(loss, [r[0] for r in self.rules])

    def _train_step(self, x, label, lrs):
        loss, grads = self._loss_grads(x, label)
        self._apply(grads, lrs)
        return loss

    def _accumulate_step(self, x, label):
        loss, grads = self._loss_grads(x, label)
        for acc, g in zip(self.accs, grads):
            acc.assign_add(g)
        return loss

    def _apply_mean_step(self, lrs):
        self._apply([acc / float(self.batch) for acc in self.accs], lrs)
        for acc in self.accs:
            acc.assign(_tf().zeros_like(acc))

    def _apply(self, grads, lrs):
        tf = _tf()
        for (var, o, channels, buf), g, lr in zip(self.rules, grads, tf.unstack(lrs)):
            momentum = float(o["momentum"])
            if channels < var.shape[-1]:                 # only the trained input channels
                keep = tf.cast(tf.range(var.shape[-1]) < channels, g.dtype)
                g = g * keep
            if buf is not None:
                buf.assign(momentum * buf + g)
                g = buf
            var.assign_sub(lr * g)

    def real_input(self, x_int8: np.ndarray) -> np.ndarray:
        return dequantize(self.graph.tensors[self.input], x_int8)

    def step(self, x_int8: np.ndarray, label: int) -> float:
        """One training sample (its loss); the update runs every `batch`-th sample, on the
        mean gradient of the batch's samples, all taken at the same parameters."""
        # the same per-update learning rates as the int8 update ops (ops/training.py)
        lrs = np.array([learning_rate(o, self.t) for _, o, _, _ in self.rules], np.float32)
        x, y = self.real_input(x_int8), np.array([label], np.int32)
        self.seen += 1
        if self.batch == 1:
            self.t += 1
            return float(self._step(x, y, lrs))
        loss = float(self._accumulate(x, y))
        if self.seen % self.batch == 0:
            self._apply_mean(lrs)
            self.t += 1
        return loss

    def predict(self, x_int8: np.ndarray) -> int:
        return int(np.argmax(self._predict(self.real_input(x_int8)).numpy()))
