"""The one validation layer between reading a model and using it.

`check(graph)` runs once, when the IR is built from a file (`tflite_io.parse`) or a pickle
(`importers`): every tensor's type, shape and quantization, every index, the dataflow order,
the metadata TFLM reads, resource limits, and every operator's arity, types, shapes and
options through its op module's check (`ops.check`). Each problem is a ModelError of one
line naming the tensor or operator. Everything after it may assume a valid graph, and TFLM
is only handed bytes written from such a graph (runtime/tflm.py).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .errors import ModelError, printable
from .ir import Graph
from .limits import (MAX_ACTIVATION_BYTES, MAX_MACS, MAX_RANK, MAX_TENSOR_ELEMENTS)
from .memory import OFFLINE_KEY

# The types a tensor of a supported model can have (the rest: strings, resources, ...).
DTYPES = ("float32", "int8", "uint8", "int16", "int32", "int64", "bool")
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def tensor_name(graph: Graph, index: int) -> str:
    return f"tensor {index} ({printable(graph.tensors[index].name)})"


def check(graph: Graph) -> Graph:
    """Raise a one-line ModelError for the first problem; return the graph when valid."""
    _tensors(graph)
    _indices(graph)
    ops.supported(graph)
    _dataflow(graph)
    _metadata(graph)
    ops.check(graph)
    _optimizer_buffers(graph)
    _cost(graph)
    return graph


def _tensors(graph: Graph) -> None:
    activation_bytes = 0
    for i, t in enumerate(graph.tensors):
        what = tensor_name(graph, i)
        if t.dtype not in DTYPES:
            raise ModelError(f"{what} has type {t.dtype}, which no supported operator uses")
        if len(t.shape) > MAX_RANK:
            raise ModelError(f"{what} has rank {len(t.shape)}; at most {MAX_RANK} is supported")
        smallest = 0 if t.is_constant else 1
        if any(d < smallest for d in t.shape):
            raise ModelError(f"{what} has shape {list(t.shape)}: dimensions must be "
                             f"{'>= 0' if smallest == 0 else 'positive'}")
        if t.size > MAX_TENSOR_ELEMENTS:
            raise ModelError(f"{what} has {t.size:,} elements; more than "
                             f"{MAX_TENSOR_ELEMENTS:,} are refused")
        if t.shape_signature is not None and len(t.shape_signature) != len(t.shape):
            raise ModelError(f"{what}: shape signature {list(t.shape_signature)} does not "
                             f"match shape {list(t.shape)}")
        if t.is_variable and t.is_constant:
            raise ModelError(f"{what} is a variable with constant data; a variable's buffer "
                             "must be empty")
        if not t.is_constant:
            activation_bytes += t.nbytes
        if t.quant is not None:
            _quantization(graph, i)
    if activation_bytes > MAX_ACTIVATION_BYTES:
        raise ModelError(f"the computed tensors need {activation_bytes:,} bytes; more than "
                         f"{MAX_ACTIVATION_BYTES:,} are refused")


def _quantization(graph: Graph, i: int) -> None:
    t, what = graph.tensors[i], tensor_name(graph, i)
    q = t.quant
    scale, zp = np.asarray(q.scale), np.asarray(q.zero_point)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise ModelError(f"{what}: quantization scales must be finite and positive")
    if zp.size != scale.size:
        raise ModelError(f"{what}: {zp.size} zero points for {scale.size} scales")
    lo, hi = ZERO_POINT_RANGE.get(t.dtype, (-(1 << 31), (1 << 31) - 1))
    if zp.size and (zp.min() < lo or zp.max() > hi):
        raise ModelError(f"{what}: zero point outside the range of {t.dtype}")
    # the quantized dimension matters only with several scales (files carry any value
    # with one), and a vector has one axis whatever the file says (converters write 3 for
    # per-channel biases; TFLM ignores it)
    axis = 0 if len(t.shape) == 1 else q.axis
    if scale.size > 1 and not (0 <= axis < len(t.shape) and t.shape[axis] == scale.size):
        raise ModelError(f"{what}: {scale.size} scales along axis {q.axis} of shape "
                         f"{list(t.shape)}")


def _indices(graph: Graph) -> None:
    n = len(graph.tensors)
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if not indices:
            raise ModelError(f"the model has no {role}s")
        for k, t in enumerate(indices):
            if not 0 <= t < n:
                raise ModelError(f"graph {role} {k} is tensor {t}, but there are {n} tensors")
    for k, op in enumerate(graph.operators):
        where = f"operator {k} ({printable(op.kind)})"
        for role, indices, least in (("input", op.inputs, -1), ("output", op.outputs, 0),
                                     ("intermediate", op.intermediates, 0)):
            for t in indices:
                if not least <= t < n:
                    raise ModelError(f"{where}: {role} tensor {t} does not exist "
                                     f"({n} tensors)")


def _dataflow(graph: Graph) -> None:
    """Operators run in file order: every computed tensor an operator reads was written
    before by exactly one operator (or is a graph input); nothing writes a constant."""
    inputs = set(graph.inputs)
    for k, t in enumerate(graph.inputs):
        tensor = graph.tensors[t]
        if tensor.is_constant or tensor.is_variable:
            raise ModelError(f"graph input {k}, {tensor_name(graph, t)}, is "
                             f"{'a constant' if tensor.is_constant else 'a variable'}")
    written = set(inputs)
    for k, op in enumerate(graph.operators):
        where = f"operator {k} ({printable(op.kind)})"
        for t in op.inputs:
            tensor = graph.tensors[t] if t >= 0 else None
            if tensor is not None and not (tensor.is_constant or tensor.is_variable
                                           or t in written):
                raise ModelError(f"{where} reads {tensor_name(graph, t)} before any operator "
                                 "writes it")
        for t in op.outputs:
            tensor = graph.tensors[t]
            if tensor.is_constant or tensor.is_variable:
                raise ModelError(f"{where} writes {tensor_name(graph, t)}, which is "
                                 f"{'a constant' if tensor.is_constant else 'a variable'}")
            if t in written:
                raise ModelError(f"{where} writes {tensor_name(graph, t)}, which "
                                 f"{'is a graph input' if t in inputs else 'is written twice'}")
            written.add(t)
    for k, t in enumerate(graph.outputs):
        if not (t in written or graph.tensors[t].is_variable):
            raise ModelError(f"graph output {k}, {tensor_name(graph, t)}, is never computed")


def _optimizer_buffers(graph: Graph) -> None:
    """An update op's momentum buffer, batch accumulator and rounding residual are its own:
    no other operator (TT_INIT, which fills them, aside) and no other input of its own reads
    them (a residual that is the weights would be two int8 arrays in one). The kernels
    read and write both within one call, in an order the contract does not fix for aliases:
    an accumulator that is also the momentum buffer trained to different bits in numpy and
    in C, and one shared by two ops would mix their batches."""
    from .training_ops import accumulator_pos, residual_pos, schema
    owner: dict[int, tuple[int, str]] = {}
    for k, op in enumerate(graph.operators):
        spec = schema()["ops"].get(op.kind) if op.kind.startswith("TT_") else None
        names = [i["name"] for i in spec["inputs"]] if spec else []
        if "momentum_buffer" not in names:
            continue
        for pos, what in ((names.index("momentum_buffer"), "momentum buffer"),
                          (accumulator_pos(graph, op), "accumulator"),
                          (residual_pos(graph, op), "residual")):
            if pos >= 0 and op.inputs[pos] >= 0:
                owner[op.inputs[pos]] = (k, what)
    if not owner:
        return
    for j, op in enumerate(graph.operators):
        if op.kind == "TT_INIT":
            continue
        for pos, t in enumerate(op.inputs):
            k, what = owner.get(t, (None, None))
            if k is None:
                continue
            own = graph.operators[k]
            if j == k and (op.inputs.index(t) == pos and op.inputs.count(t) == 1):
                continue
            raise ModelError(f"operator {k} ({printable(own.kind)}): its {what}, "
                             f"{tensor_name(graph, t)}, is also "
                             + (f"its input {op.inputs.index(t)}" if j == k else
                                f"an input of operator {j} ({printable(op.kind)})")
                             + "; an update op's optimizer buffers must be its own")


def _metadata(graph: Graph) -> None:
    """The metadata TFLM itself reads: an offline arena plan (memory.offline_metadata's
    format), whose offsets TFLM trusts."""
    blob = graph.metadata.get(OFFLINE_KEY)
    if blob is None:
        return
    n = len(graph.tensors)
    if len(blob) != 4 * (3 + n):
        raise ModelError(f"{OFFLINE_KEY} metadata has {len(blob)} bytes; {4 * (3 + n)} "
                         f"expected for {n} tensors")
    table = np.frombuffer(blob, "<i4")
    if table[1] != 1 or table[2] != n:
        raise ModelError(f"{OFFLINE_KEY} metadata is for {table[1]} subgraph(s) and "
                         f"{table[2]} tensors; expected 1 and {n}")
    for i, offset in enumerate(table[3:]):
        t = graph.tensors[i]
        if offset == -1:
            continue
        if offset < 0 or t.is_constant or t.is_variable \
                or int(offset) + t.nbytes > MAX_ACTIVATION_BYTES:
            raise ModelError(f"{OFFLINE_KEY} metadata: offset {offset} for "
                             f"{tensor_name(graph, i)} is not a valid arena offset")


def _cost(graph: Graph) -> None:
    total = 0
    for k, op in enumerate(graph.operators):
        total += int(ops.get(graph, k).macs(graph, op))
    if total > MAX_MACS:
        raise ModelError(f"one Invoke needs {total:,} multiply-accumulates; more than "
                         f"{MAX_MACS:,} are refused")

