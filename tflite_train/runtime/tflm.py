"""The real TFLM interpreter from the pinned `tflite-micro` wheel, as an oracle."""
from __future__ import annotations

import contextlib
import os

import numpy as np

from ..ir import Graph

DEFAULT_ARENA = 8 << 20


@contextlib.contextmanager
def _quiet_stderr():
    """TFLM prints kernel errors on the C stderr; keep them for the error message only."""
    saved = os.dup(2)
    import tempfile
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield tmp
        finally:
            os.dup2(saved, 2)
            os.close(saved)


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
