"""engine "tflm": a training model run by the real TFLM interpreter of the pinned
`tflite-micro` wheel, its forward ops by TFLM's own kernels and its TT_* ops by our C kernels
through the TFLM glue (micro_kernels/tflm/), registered the way a user's app registers them.

The wheel's Python API reads only graph outputs when tensors share the arena, so the
executor gives TFLM a copy of the model whose outputs also list the trained variables:
TFLM keeps variables out of its arena plan, so the plan of everything else is unchanged.
For checkpoints it also holds the glue's two sinks (micro_kernels/tflm/tt_tflm.h) during
each Invoke: where TFLM keeps the trained tensors, the momentum buffers, the accumulators
(batch > 1) and the update ops' random streams and step counters, to read and write them as
a device app does.
"""
from __future__ import annotations

import ctypes
from dataclasses import replace
from functools import lru_cache
from importlib import metadata

import numpy as np

from ..errors import TTError
from ..ir import Graph
from .build import micro_kernels_library
from .numpy_exec import check_inputs
from .tflm import (TFLMError, TFLMInterpreter, arena_usage, captured_c_output, reason,
                   validated_bytes)

# micro_kernels/tflm/tt_tflm_compat.h declares this build's layout (../shared/TFLM_ABI.md).
PINNED_WHEEL = "0.dev20261023182759"
REGISTERER = "TfliteTrainRegisterOps"


def check_wheel() -> None:
    """The glue's layout facts belong to one wheel build: refuse any other."""
    try:
        version = metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        raise TTError("--engine tflm needs the tflite-micro wheel (make setup installs it)") \
            from None
    if version != PINNED_WHEEL:
        raise TTError(f"--engine tflm: the TFLM glue was written for tflite-micro=={PINNED_WHEEL}"
                      f" (micro_kernels/tflm/tt_tflm_compat.h), found {version}")


@lru_cache(maxsize=1)
def glue_library() -> ctypes.CDLL:
    """Builds (when stale) and loads the glue with RTLD_GLOBAL, as the wheel's registerer
    lookup (dlsym on the whole process) requires, before any interpreter is made."""
    check_wheel()
    return ctypes.CDLL(str(micro_kernels_library("tflm-wheel", "libtt_tflm_wheel.so")),
                       mode=ctypes.RTLD_GLOBAL)


def training_arena_usage(model: Graph | bytes) -> dict[str, int]:
    """TFLM's arena account (total, head, tail) of a training model, our ops registered."""
    glue_library()
    return arena_usage(model, registerers=[REGISTERER])


def training_arena_bytes(model: Graph | bytes, step: int = 1024) -> int:
    """The smallest multiple of `step` bytes in which the pinned wheel's TFLM, our ops
    registered, allocates the training model: its arena usage (head + tail) rounded up, or
    more where allocating needs more than TFLM keeps. TFLM plans the head in a temporary area
    between the head and the tail (an allocation record per tensor, the greedy planner's
    lists per buffer), which a small head need not cover: the example's last:2 of batch 3
    uses 17,312 B and fails to allocate in 17,408 ("Too many buffers"). Sizes are tried from
    where planning fits (tail + tflm_memory.planning_room, which over-counts by 100-200 B),
    never below: in an arena too small for the planner's lists TFLM's GreedyMemoryPlanner
    can crash the process instead of failing (found with the zoo's conv_strided, last:1:
    usage 4,672 B, 5,952 B needed, SIGSEGV in 5,120)."""
    from tflite_micro.python.tflite_micro import runtime

    from ..tflm_memory import planning_room
    glue_library()
    graph, data = validated_bytes(model)
    parts = arena_usage(data, registerers=[REGISTERER])
    usage = max(parts["total"], parts["tail"] + planning_room(graph, "wheel-x86_64"))
    size = -(-usage // step) * step
    while True:
        try:
            with captured_c_output() as out:
                runtime.Interpreter.from_bytes(data, custom_op_registerers=[REGISTERER],
                                               arena_size=size)
            return size
        except (RuntimeError, ValueError):
            pass
        size += step
        if size > 2 * usage + (64 << 10):
            raise TFLMError(f"TFLM could not allocate the model in {size:,} bytes: "
                            f"{reason(out['text'])}")


class _TrainedTensor(ctypes.Structure):
    _fields_ = [("tensor", ctypes.c_int32), ("data", ctypes.c_void_p),
                ("bytes", ctypes.c_int32)]


class _UpdateOpState(ctypes.Structure):
    _fields_ = [("parameter", ctypes.c_int32), ("state", ctypes.c_void_p),
                ("state_bytes", ctypes.c_int32), ("momentum", ctypes.c_int32),
                ("momentum_data", ctypes.c_void_p), ("momentum_bytes", ctypes.c_int32),
                ("accumulator", ctypes.c_int32), ("accumulator_data", ctypes.c_void_p),
                ("accumulator_bytes", ctypes.c_int32), ("residual", ctypes.c_int32),
                ("residual_data", ctypes.c_void_p), ("residual_bytes", ctypes.c_int32)]


def _sink(entry, n: int):
    entries = (entry * max(n, 1))()

    class Sink(ctypes.Structure):
        _fields_ = [("entries", ctypes.POINTER(entry)), ("capacity", ctypes.c_int32),
                    ("count", ctypes.c_int32)]
    return entries, Sink(entries, n, 0)


class TFLMExecutor:
    """The Executor interface (invoke, variables, reset) on the real TFLM interpreter."""

    def __init__(self, graph: Graph, arena_size: int | None = None):
        glue_library()
        self.graph = graph
        self._trained = [i for i, t in enumerate(graph.tensors) if t.is_variable]
        # the graph was validated when it was read; this copy only lists more outputs
        try:
            self._it = TFLMInterpreter(
                replace(graph, outputs=list(graph.outputs) + self._trained),
                preserve_all=False, arena_size=arena_size, registerers=[REGISTERER])
        except TFLMError as exc:
            raise TTError(str(exc).replace("the model", "the training model", 1)) from exc
        from ..checkpoint import update_ops
        self._update_ops = {k: p for k, p, _ in update_ops(graph)}
        init = [op for op in graph.operators if op.kind == "TT_INIT"]
        self._trained_entries, self._trained_sink = _sink(
            _TrainedTensor, len(init[0].inputs) // 2 if init else 0)
        self._update_entries, self._update_sink = _sink(_UpdateOpState, len(self._update_ops))

    def invoke(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        """One Invoke; returns the graph outputs by tensor index. TFLM's failure (its lines,
        captured) is a one-line TFLMError."""
        lib = glue_library()
        # the sinks are global in the glue: set for this interpreter's Invoke only
        lib.TfliteTrainReportTo(ctypes.byref(self._trained_sink),
                                ctypes.byref(self._update_sink))
        try:
            self._it.invoke(check_inputs(self.graph, inputs))
        finally:
            lib.TfliteTrainReportTo(None, None)
        return {index: self._it.output(k).reshape(self.graph.tensors[index].shape)
                for k, index in enumerate(self.graph.outputs)}

    @property
    def variables(self) -> dict[int, np.ndarray]:
        """The trained parameters and optimizer state, read back from TFLM."""
        first = len(self.graph.outputs)
        return {index: self._it.output(first + k).reshape(self.graph.tensors[index].shape)
                for k, index in enumerate(self._trained)}

    def reset(self) -> None:
        self._it.reset()
        self._trained_sink.count = self._update_sink.count = 0

    # -- the training state inside TFLM, once an Invoke has reported it (checkpoint.py)
    def _memory(self, address: int | None, nbytes: int, dtype, shape) -> np.ndarray:
        if not address:
            raise TTError("the TFLM engine's training state is known after its first Invoke")
        buf = (ctypes.c_uint8 * nbytes).from_address(address)
        return np.frombuffer(buf, dtype).reshape(shape)

    def _update_entry(self, k: int) -> _UpdateOpState:
        n = min(self._update_sink.count, self._update_sink.capacity)
        entry = next((e for e in self._update_entries[:n]
                      if e.parameter == self._update_ops[k]), None)
        if entry is None:
            raise TTError("the TFLM engine's training state is known after its first Invoke")
        return entry

    def update_state(self, k: int) -> tuple[int, int]:
        """(xorshift32 state, step) of update op k, read from TFLM."""
        rng, step = self._memory(self._update_entry(k).state, 8, np.uint32, (2,))
        return int(rng), int(np.uint32(step).view(np.int32))

    def set_update_state(self, k: int, rng: int, step: int) -> None:
        self._memory(self._update_entry(k).state, 8, np.uint32, (2,))[:] = \
            [rng, step & 0xFFFFFFFF]

    def set_variable(self, index: int, value: np.ndarray) -> None:
        """Writes a trained parameter, momentum buffer, accumulator or residual inside
        TFLM."""
        t = self.graph.tensors[index]
        address = None
        for e in self._trained_entries[:min(self._trained_sink.count,
                                            self._trained_sink.capacity)]:
            address = e.data if e.tensor == index else address
        for e in self._update_entries[:min(self._update_sink.count,
                                           self._update_sink.capacity)]:
            address = e.momentum_data if e.momentum == index else address
            address = e.accumulator_data if e.accumulator == index else address
            address = e.residual_data if e.residual == index else address
        self._memory(address, t.nbytes, t.dtype, t.shape)[...] = value

    def mark_initialised(self) -> None:
        """TT_INIT has run on the first Invoke (the state is known only after it)."""
        if self._trained_sink.count == 0:
            raise TTError("the TFLM engine's training state is known after its first Invoke")
