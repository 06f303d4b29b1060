"""engine "tflm": a training model run by the real TFLM interpreter of the pinned
`tflite-micro` wheel, its forward ops by TFLM's own kernels and its TT_* ops by our C kernels
through the TFLM glue (micro_kernels/tflm/), registered the way a user's app registers them.

The wheel's Python API reads only graph outputs when tensors share the arena, so the
executor gives TFLM a copy of the model whose outputs also list the trained variables:
TFLM keeps variables out of its arena plan, so the plan of everything else is unchanged.
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
from .tflm import TFLMError, TFLMInterpreter, arena_usage

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

    def invoke(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        """One Invoke; returns the graph outputs by tensor index."""
        self._it.invoke(check_inputs(self.graph, inputs))
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
