"""The model IR: tensors, operators and one graph, independent of the file format.

Every later stage (ops, autodiff, schedule, memory, writers) reads and builds these plain
objects; only `tflite_io` knows about flatbuffers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import ModelError

# TFLite TensorType codes <-> numpy dtypes (only the types a .tflite can hold as plain arrays).
TENSOR_TYPES: dict[int, str] = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string",
    6: "bool", 7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128",
    12: "uint64", 13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4",
}
TYPE_CODES: dict[str, int] = {v: k for k, v in TENSOR_TYPES.items()}
_ITEMSIZE = {"int4": 0.5, "string": 1, "resource": 0, "variant": 0}
# the metadata entry that makes a model a training model (augment's record)
TRAINING_KEY = "tflite_train"


@dataclass
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or along `axis`."""
    scale: np.ndarray                 # float32, shape [1] or [channels]
    zero_point: np.ndarray            # int64, same shape as scale
    axis: int = 0                     # quantized_dimension, meaningful when per-channel
    min: np.ndarray | None = None     # kept only to round-trip files that carry them
    max: np.ndarray | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def s(self) -> float:
        """The single scale of a per-tensor quantization (float32 as TFLM stores it)."""
        if self.per_channel:
            raise ModelError("per-channel quantization has no single scale")
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point[0])


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str                                # numpy dtype name, see TENSOR_TYPES
    quant: Quantization | None = None
    data: np.ndarray | None = None            # constant contents (None: computed at run time)
    is_variable: bool = False
    shape_signature: tuple[int, ...] | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        item = _ITEMSIZE.get(self.dtype)
        if item is None:
            item = np.dtype(self.dtype).itemsize
        return int(np.ceil(self.size * item))


@dataclass
class Operator:
    """One node. `opcode` is the builtin name ("CONV_2D") or "CUSTOM" with `custom_code`."""
    opcode: str
    inputs: list[int]                         # tensor indices; -1 = optional input absent
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)   # builtin options, snake_case
    options_type: str | None = None           # flatbuffer table name, e.g. "Conv2DOptions"
    custom_code: str | None = None
    custom_options: bytes | None = None
    version: int = 1
    intermediates: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The name ops are registered under: builtin name, or the custom code."""
        return self.custom_code if self.opcode == "CUSTOM" else self.opcode


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    name: str = ""
    description: str = ""
    metadata: dict[str, bytes] = field(default_factory=dict)
    version: int = 3

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def op_inputs(self, op: Operator) -> list[Tensor | None]:
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def op_outputs(self, op: Operator) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]

    def producers(self) -> dict[int, int]:
        """tensor index -> index of the operator that writes it."""
        return {t: k for k, op in enumerate(self.operators) for t in op.outputs}

    def consumers(self) -> dict[int, list[int]]:
        """tensor index -> indices of the operators that read it, in execution order."""
        users: dict[int, list[int]] = {}
        for k, op in enumerate(self.operators):
            for t in op.inputs:
                if t >= 0:
                    users.setdefault(t, []).append(k)
        return users

    def add_tensor(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def copy_tensor(self, index: int, name: str) -> int:
        """A new tensor equal to tensor `index` (its own quantization and data), named `name`."""
        src = self.tensors[index]
        return self.add_tensor(replace(src, name=name, quant=copy.deepcopy(src.quant),
                                       data=None if src.data is None else src.data.copy()))

    def readers(self) -> dict[int, int]:
        """tensor index -> how many operators read it (an operator reading it twice counts once)."""
        return {t: len(set(ks)) for t, ks in self.consumers().items()}
