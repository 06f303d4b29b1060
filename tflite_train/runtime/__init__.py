"""Executors of a graph: `numpy_exec` (the numpy reference; engine "c" runs the same graph in
the C kernels of micro_kernels instead: the int8 forward builtins through `c_forward`, the
TT_* ops through `c_kernels`) and `tflm_engine` (the real TFLM interpreter with our kernels
registered). `tflm` wraps the wheel's interpreter for the bit-exactness checks."""
from __future__ import annotations

ENGINES = ("numpy", "c", "tflm")
# What trains on the host unless told otherwise (train, compare --data, search, augment --lr
# auto): the C kernels, bit-identical to numpy and several times faster.
DEFAULT_ENGINE = "c"
NO_COMPILER = "--engine numpy needs no C compiler"
_fell_back = False                  # the default fell back to numpy in this process


def host_engine(engine: str | None, notice=None) -> str:
    """The engine to train with. An engine asked for is used, and `c` that cannot be built
    here is a one-line error naming --engine numpy. None (nothing asked for) is
    DEFAULT_ENGINE, or numpy when the C kernels cannot be built (no C compiler or make): the
    same bits, only slower, so training still works out of the box; `notice(line)` (default:
    stderr) is told why, once per process. The library is built here, on first use, into the
    kernel cache (build.py), where the executors find it."""
    global _fell_back
    if engine not in (None, "c"):
        return engine
    if engine is None and _fell_back:
        return "numpy"
    from ..errors import TTError
    from . import c_forward, c_kernels
    try:
        c_kernels.library()
        c_forward.library()
    except TTError as exc:
        if engine == "c":
            raise TTError(f"{exc} ({NO_COMPILER})") from None
        line = (f"engine c is unavailable ({_short(str(exc))}); training with --engine numpy "
                "instead (the same results, slower)")
        if notice is None:
            import sys
            print(f"tflite-train: notice: {line}", file=sys.stderr, flush=True)
        else:
            notice(line)
        _fell_back = True
        return "numpy"
    return "c"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def make_executor(graph, engine: str = "numpy"):
    """An executor with the interface invoke(inputs) -> {tensor: value}, variables, reset()."""
    if engine == "tflm":
        from .tflm_engine import TFLMExecutor
        return TFLMExecutor(graph)
    from .numpy_exec import Executor
    return Executor(graph, engine)
