"""The numpy reference executor: runs a graph operator by operator in file order.

An `Executor` keeps what persists across Invokes on a device: variable tensors (zeroed to
their zero point at creation and on reset, as TFLM does) and per-op state (TT_INIT's flag,
the update ops' RNG). Training ops skip when the label input is negative.
Engine "c" runs the same graph in the C kernels instead (see Executor).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import TTError
from ..ir import Graph
from ..training_ops import grad_mode, inputs_of, is_forward, options_of, seed_state


def check_inputs(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if len(inputs) != len(graph.inputs):
        raise TTError(f"model has {len(graph.inputs)} inputs, got {len(inputs)}")
    out = []
    for k, (index, x) in enumerate(zip(graph.inputs, inputs)):
        t = graph.tensors[index]
        x = np.asarray(x)
        if x.size != t.size:
            raise TTError(f"input {k} ({t.name}) needs shape {t.shape}, got {x.shape}")
        out.append(np.ascontiguousarray(x.astype(t.dtype, copy=False).reshape(t.shape)))
    return out


class Executor:
    """engine "numpy": every op in numpy; "c": the forward builtins run in the int8 forward
    kernels of micro_kernels (c_forward.py) and the TT_* ops in its training kernels
    (c_kernels.py), through ctypes; numpy remains only where no C kernel exists (a
    non-int8 TRANSPOSE, tensors of rank > 6).

    Everything that does not change between Invokes (quantization parameters, shapes, which
    inputs feed each op) is worked out here, once, not per Invoke."""

    def __init__(self, graph: Graph, engine: str = "numpy"):
        self.graph = graph
        self.opdefs = [ops.get(graph, k) for k in range(len(graph.operators))]
        if engine == "c":
            from .c_kernels import C_KERNELS
            self.opdefs = [ops.OpDef(d.kind, C_KERNELS[d.kind][0], d.macs,
                                     stateful=C_KERNELS[d.kind][1])
                           if d.kind in C_KERNELS else d for d in self.opdefs]
        elif engine != "numpy":
            raise TTError(f"unknown engine {engine!r}")
        self.engine = engine
        # C-contiguous, as the C kernels read them
        self.constants = {i: np.ascontiguousarray(t.data) for i, t in enumerate(graph.tensors)
                          if t.data is not None}
        self.steps = [self._step(k, op) for k, op in enumerate(graph.operators)]
        self.reset()

    def _step(self, k: int, op) -> tuple:
        """(run(args), input indices, outputs, gate, outputs need conversion, label
        position): gate 1 for the TT_* ops that skip on a negative label (their last input
        but an update op's appended accumulator), 2 for the loss, which then outputs 0."""
        graph, opdef = self.graph, self.opdefs[k]
        gate, label = 0, -1
        forward = is_forward(op.kind)
        if op.kind.startswith("TT_") and op.kind != "TT_INIT" and not forward:
            gate = 2 if op.kind == "TT_LOSS_SOFTMAX_CE" else 1
            label = len(inputs_of(op.kind, grad_mode(graph, op))) - 1
        run = None
        if self.engine == "c" and (forward or not op.kind.startswith("TT_")):
            from . import c_forward
            run = c_forward.prepare(graph, op)
        convert = run is None
        if run is None and opdef.stateful:
            def run(args, f=opdef.forward):
                return f(graph, op, args, self.op_state[k])    # reset() replaces op_state
        elif run is None:
            def run(args, f=opdef.forward):
                return f(graph, op, args)
        outputs = [(i, graph.tensors[i].dtype, graph.tensors[i].shape) for i in op.outputs]
        return run, list(op.inputs), outputs, gate, convert, label

    def reset(self) -> None:
        self.variables: dict[int, np.ndarray] = {}
        for index, t in enumerate(self.graph.tensors):
            if t.is_variable:
                fill = t.quant.zp if t.quant is not None and t.quant.scale.size == 1 else 0
                self.variables[index] = np.full(t.shape, fill, dtype=t.dtype)
        self.op_state: dict[int, dict] = {k: {} for k in range(len(self.graph.operators))}

    # The update ops' state, as tt_update_state holds it on the device (checkpoint.py): the
    # numpy kernels keep "rng" (set at the first stochastic rounding) and "t", the C
    # kernels a tt_update_state under "c".
    def update_state(self, k: int) -> tuple[int, int]:
        """(xorshift32 state, step) of update op k."""
        state = self.op_state[k]
        if "c" in state:
            return int(state["c"].rng), int(state["c"].step)
        seed = options_of(self.graph.operators[k])["seed"]
        return int(state.get("rng", seed_state(seed))), int(state.get("t", 0))

    def set_update_state(self, k: int, rng: int, step: int) -> None:
        state = self.op_state[k]
        if self.engine == "c":
            from .c_kernels import UpdateState
            state["c"] = UpdateState(rng, step)
        else:
            state["rng"], state["t"] = rng, step

    def set_variable(self, index: int, value: np.ndarray) -> None:
        self.variables[index][...] = value

    def mark_initialised(self) -> None:
        """TT_INIT has run: the variables hold parameters and must not be refilled."""
        for k, op in enumerate(self.graph.operators):
            if op.kind == "TT_INIT":
                self.op_state[k]["done"] = True

    def invoke(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        """One Invoke; returns every tensor's value (variables by reference)."""
        graph = self.graph
        values: dict[int, np.ndarray] = dict(self.constants)
        values.update(self.variables)
        for index, x in zip(graph.inputs, check_inputs(graph, inputs)):
            values[index] = x
        for run, op_inputs, outputs, gate, convert, label in self.steps:
            args = [values.get(i) if i >= 0 else None for i in op_inputs]
            if gate and int(args[label][0]) < 0:
                if gate == 2:
                    values[outputs[0][0]] = np.zeros(1, np.float32)
                continue
            # float32 overflow to inf and inf - inf = nan are the kernels' defined IEEE
            # results (the C kernels compute the same, the updates clamp them): no warnings
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                outs = run(args)
            if convert:
                for (index, dtype, shape), y in zip(outputs, outs):
                    values[index] = np.ascontiguousarray(
                        np.asarray(y).astype(dtype, copy=False).reshape(shape))
            else:
                for (index, _, _), y in zip(outputs, outs):
                    values[index] = y
        return values

    def outputs(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        values = self.invoke(inputs)
        return [values[i] for i in self.graph.outputs]


def run(graph: Graph, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor's value after one forward pass of a fresh executor."""
    return Executor(graph).invoke(inputs)


def outputs(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return Executor(graph).outputs(inputs)
