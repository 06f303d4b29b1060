"""The real TFLM interpreter from the pinned `tflite-micro` wheel, as an oracle."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

import numpy as np

from ..ir import Graph

DEFAULT_ARENA = 8 << 20


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


class TFLMInterpreter:
    """Wraps tflite_micro.runtime.Interpreter. preserve_all=True keeps every tensor readable
    after Invoke (TFLM's kPreserveAllTensors), which the bit-exactness checks rely on."""

    def __init__(self, model: bytes, preserve_all: bool = True,
                 arena_size: int = DEFAULT_ARENA, registerers: list[str] | None = None):
        from tflite_micro.python.tflite_micro import runtime
        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all
                  else runtime.InterpreterConfig.kAllocationRecording)
        self._it = runtime.Interpreter.from_bytes(
            model, custom_op_registerers=registerers or [], arena_size=arena_size,
            intrepreter_config=config)

    def invoke(self, inputs: list[np.ndarray]) -> None:
        for k, x in enumerate(inputs):
            self._it.set_input(np.ascontiguousarray(x), k)
        self._it.invoke()

    def output(self, k: int) -> np.ndarray:
        return np.array(self._it.get_output(k))

    def tensor(self, index: int) -> np.ndarray:
        return np.array(self._it.GetTensor(index, 0)["tensor_data"])

    def reset(self) -> None:
        self._it.reset()


def run_all(graph: Graph, model: bytes, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every non-constant tensor after one TFLM Invoke: tensor index -> array."""
    it = TFLMInterpreter(model, preserve_all=True)
    it.invoke(inputs)
    values = {}
    for index, t in enumerate(graph.tensors):
        if t.data is None:
            values[index] = it.tensor(index).reshape(t.shape)
    return values


def arena_usage(model: bytes, registerers: list[str] | None = None,
                arena_size: int = DEFAULT_ARENA) -> dict[str, int]:
    """TFLM's own account of its arena after AllocateTensors: head (planned, non-persistent)
    and tail (persistent) bytes, as its RecordingMicroAllocator prints them."""
    it = TFLMInterpreter(model, preserve_all=False, arena_size=arena_size,
                         registerers=registerers)
    with captured_c_output() as out:
        it._it.print_allocations()
    usage = {}
    for part in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {part} (\d+) bytes", out["text"])
        if m is None:
            raise RuntimeError(f"unexpected TFLM allocation report: {out['text'][:200]!r}")
        usage[part] = int(m.group(1))
    return usage
