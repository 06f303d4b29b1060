"""The real TFLM interpreter from the pinned `tflite-micro` wheel, as an oracle.

TFLM trusts the bytes it is given: a malformed flatbuffer or an option its Prepare cannot
handle crashes the process. So it is only ever handed a model written from a validated IR
(tflite_io.parse / validate.check): `TFLMInterpreter` takes a Graph, or bytes that it parses
(validating them) and writes back. Its arena is sized from the model, and its own log lines
become one-line errors.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

import numpy as np

from ..errors import TTError
from ..ir import Graph

# The wheel's arena lives in host memory; beyond this a model is not one for a device.
MAX_ARENA = 1 << 31
# Below a few KB the wheel's allocator crashes instead of failing: no arena is smaller.
MIN_ARENA = 64 << 10


class TFLMError(TTError):
    """TFLM refused the model or failed to run it; the message is TFLM's reason."""


@contextlib.contextmanager
def captured_c_output():
    """Collect what C code writes to file descriptors 1 and 2 (MicroPrintf)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    box = {"text": ""}
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            box["text"] = tmp.read().decode(errors="replace")


def reason(text: str) -> str:
    """What TFLM printed, as one line: our glue's own "TT_...: message" line when there is
    one (TFLM follows it with a generic "Node ... failed" line), else TFLM's last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith(("TT_", "tflite-train:"))]
    line = (ours or lines or ["no message"])[-1]
    return "".join(c if c.isprintable() else "?" for c in line)[:300]


def validated_bytes(model: Graph | bytes) -> tuple[Graph, bytes]:
    """(graph, bytes TFLM may be handed): the bytes are written from the validated IR."""
    from .. import tflite_io
    graph = tflite_io.parse(model) if isinstance(model, (bytes, bytearray)) else model
    return graph, tflite_io.serialize(graph)


def arena_estimate(graph: Graph, preserve_all: bool) -> int:
    """An arena that fits the model: the planned tensors (all of them when every tensor is
    preserved), the variables, and room for TFLM's per-tensor and per-op structs."""
    from .. import memory
    buffers = memory.tflm_buffers(graph)
    head = sum(b.aligned for b in buffers) if preserve_all else memory.greedy_plan(buffers)[1]
    variables = sum(memory.align_up(t.nbytes) for t in graph.tensors if t.is_variable)
    channels = sum(t.quant.scale.size for t in graph.tensors if t.quant is not None)
    return head + variables + 16 * channels + 512 * (len(graph.tensors)
                                                     + len(graph.operators)) + (64 << 10)


_MISSING = re.compile(r"missing: (\d+)|Needed (\d+) but only (\d+)")


class TFLMInterpreter:
    """Wraps tflite_micro.runtime.Interpreter. preserve_all=True keeps every tensor readable
    after Invoke (TFLM's kPreserveAllTensors), which the bit-exactness checks rely on.

    `model`: a validated Graph, or .tflite bytes (parsed and validated here, then written
    back). `as_is=True` hands trusted bytes over unchanged: only for tests showing that a
    rewritten model is the same model to TFLM. `arena_size=None` sizes the arena from the
    model and grows it by what TFLM reports missing."""

    def __init__(self, model: Graph | bytes, preserve_all: bool = True,
                 arena_size: int | None = None, registerers: list[str] | None = None,
                 as_is: bool = False):
        from tflite_micro.python.tflite_micro import runtime
        if as_is:
            from .. import tflite_io
            graph, self._model = tflite_io.parse(model), bytes(model)
        else:
            graph, self._model = validated_bytes(model)
        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all
                  else runtime.InterpreterConfig.kAllocationRecording)
        size = max(arena_size or arena_estimate(graph, preserve_all), MIN_ARENA)
        while True:
            with captured_c_output() as out:
                try:
                    self._it = runtime.Interpreter.from_bytes(
                        self._model, custom_op_registerers=registerers or [],
                        arena_size=size, intrepreter_config=config)
                    error = None
                except (RuntimeError, ValueError) as exc:
                    error = exc
            if error is None:
                break
            grown = _grown_arena(out["text"], size) if arena_size is None else None
            if grown is None:
                raise TFLMError(f"TFLM could not prepare the model: {reason(out['text'])}") \
                    from error
            size = grown
        self.arena_size = size

    def invoke(self, inputs: list[np.ndarray]) -> None:
        for k, x in enumerate(inputs):
            self._it.set_input(np.ascontiguousarray(x), k)
        with captured_c_output() as out:
            try:
                self._it.invoke()
                error = None
            except RuntimeError as exc:
                error = exc
        if error is not None:
            raise TFLMError(f"TFLM Invoke failed: {reason(out['text'])}") from error

    def output(self, k: int) -> np.ndarray:
        return np.array(self._it.get_output(k))

    def tensor(self, index: int) -> np.ndarray:
        return np.array(self._it.GetTensor(index, 0)["tensor_data"])

    def reset(self) -> None:
        self._it.reset()


def _grown_arena(text: str, size: int) -> int | None:
    """A larger arena when TFLM ran out of it (by what it says is missing, at least
    doubling), None for any other failure or beyond MAX_ARENA."""
    m = _MISSING.search(text)
    if m is None and "Failed to resize buffer" not in text:
        return None
    missing = int(m.group(1) or int(m.group(2)) - int(m.group(3))) if m else size
    grown = size + max(2 * missing, size)
    return grown if grown <= MAX_ARENA else None


def run_all(graph: Graph, model: Graph | bytes, inputs: list[np.ndarray],
            as_is: bool = False) -> dict[int, np.ndarray]:
    """Every non-constant tensor after one TFLM Invoke: tensor index -> array."""
    it = TFLMInterpreter(model, preserve_all=True, as_is=as_is)
    it.invoke(inputs)
    values = {}
    for index, t in enumerate(graph.tensors):
        if t.data is None:
            values[index] = it.tensor(index).reshape(t.shape)
    return values


def arena_usage(model: Graph | bytes, registerers: list[str] | None = None,
                arena_size: int | None = None, as_is: bool = False) -> dict[str, int]:
    """TFLM's own account of its arena after AllocateTensors: head (planned, non-persistent)
    and tail (persistent) bytes, as its RecordingMicroAllocator prints them. `as_is`: as
    TFLMInterpreter takes it."""
    it = TFLMInterpreter(model, preserve_all=False, arena_size=arena_size,
                         registerers=registerers, as_is=as_is)
    with captured_c_output() as out:
        it._it.print_allocations()
    usage = {}
    for part in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {part} (\d+) bytes", out["text"])
        if m is None:
            raise TFLMError(f"unexpected TFLM allocation report: {reason(out['text'])}")
        usage[part] = int(m.group(1))
    return usage
