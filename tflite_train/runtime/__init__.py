"""Executors of a graph: `numpy_exec` (the numpy reference; engine "c" runs its TT_* ops in
the C kernels instead) and `tflm_engine` (the real TFLM interpreter with our kernels
registered). `tflm` wraps the wheel's interpreter for the bit-exactness checks."""
from __future__ import annotations

ENGINES = ("numpy", "c", "tflm")


def make_executor(graph, engine: str = "numpy"):
    """An executor with the interface invoke(inputs) -> {tensor: value}, variables, reset()."""
    if engine == "tflm":
        from .tflm_engine import TFLMExecutor
        return TFLMExecutor(graph)
    from .numpy_exec import Executor
    return Executor(graph, engine)
