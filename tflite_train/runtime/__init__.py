"""Executors of a graph: `numpy_exec` (the numpy reference; engine "c" runs the same graph in
the C kernels of micro_kernels instead: the int8 forward builtins through `c_forward`, the
TT_* ops through `c_kernels`) and `tflm_engine` (the real TFLM interpreter with our kernels
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
