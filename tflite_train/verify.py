"""`verify`: does the host simulation behave like the device? Runs the numpy forward and
the real TFLM interpreter on seeded random inputs and compares every tensor."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import TTError, printable
from .ir import Graph
from .runtime import numpy_exec
from .runtime.tflm import TFLMInterpreter


def random_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    """One input sample per model input, spanning the whole representable range."""
    xs = []
    for index in graph.inputs:
        t = graph.tensors[index]
        if t.dtype in ("int8", "uint8", "int16"):
            info = np.iinfo(t.dtype)
            xs.append(rng.integers(info.min, info.max + 1, size=t.shape).astype(t.dtype))
        elif t.dtype == "float32":
            lo, hi = _float_input_range(graph, index)
            xs.append(rng.uniform(lo, hi, size=t.shape).astype(np.float32))
        else:
            raise TTError(f"input {t.name}: cannot make random {t.dtype} data")
    return xs


def _float_input_range(graph: Graph, index: int) -> tuple[float, float]:
    """The real range the QUANTIZE that consumes a float input can represent."""
    for op in graph.operators:
        if op.kind == "QUANTIZE" and op.inputs[0] == index:
            q = graph.tensors[op.outputs[0]].quant
            return q.s * (-128 - q.zp), q.s * (127 - q.zp)
    return -1.0, 1.0


@dataclass
class TensorDiff:
    tensor: int
    name: str
    producer: int | None
    differing: int = 0
    max_diff: float = 0.0
    elements: int = 0


@dataclass
class VerifyResult:
    samples: int
    tensors: list[TensorDiff] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return all(d.differing == 0 for d in self.tensors)

    @property
    def differing(self) -> int:
        return sum(d.differing for d in self.tensors)

    @property
    def max_diff(self) -> float:
        return max((d.max_diff for d in self.tensors), default=0.0)


def verify(graph: Graph, model: bytes | None = None, samples: int = 10, seed: int = 0,
           progress=None) -> VerifyResult:
    """`graph` validated (tflite_io.load); TFLM runs the model written from it (`model`, the
    file's bytes, is not needed and no longer handed to TFLM)."""
    if samples < 1:
        raise TTError("--samples must be at least 1")
    ops.validate(graph)
    custom = sorted({op.kind for op in graph.operators if op.opcode == "CUSTOM"})
    if custom:
        raise TTError(f"the model uses custom ops ({', '.join(map(printable, custom[:3]))}"
                      f"{', ...' if len(custom) > 3 else ''}) that the TFLM interpreter cannot "
                      "run without their kernels; verify compares inference models")
    interpreter = TFLMInterpreter(graph, preserve_all=True)
    producers = graph.producers()
    diffs = {i: TensorDiff(i, graph.tensors[i].name, producers.get(i))
             for i, t in enumerate(graph.tensors) if not t.is_constant}
    rng = np.random.default_rng(seed)
    for s in range(samples):
        xs = random_inputs(graph, rng)
        ours = numpy_exec.run(graph, xs)
        interpreter.invoke(xs)
        for i, d in diffs.items():
            theirs = interpreter.tensor(i).reshape(graph.tensors[i].shape)
            delta = np.abs(ours[i].astype(np.float64) - theirs.astype(np.float64))
            d.differing += int(np.count_nonzero(delta))
            d.max_diff = max(d.max_diff, float(delta.max()) if delta.size else 0.0)
            d.elements += delta.size
        if progress:
            progress(s + 1, samples)
    order = sorted(diffs.values(), key=lambda d: -1 if d.producer is None else d.producer)
    return VerifyResult(samples, order, list(graph.outputs))
