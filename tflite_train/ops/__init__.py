"""One module per op family; each registers its int8 forward, its cost and (later) its
backward rule here, so that everything about an op lives in one place.

`forward(graph, op, inputs)` gets the input arrays (None for an absent optional input) and
returns the output arrays, bit-exact with TFLM's reference kernels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ModelError, UnsupportedOpError, printable
from ..ir import Graph, Operator


@dataclass(frozen=True)
class OpDef:
    kind: str
    forward: Callable[[Graph, Operator, list], list]
    # multiply-accumulates of one forward pass (0 for data movement and element-wise ops)
    macs: Callable[[Graph, Operator], int] = lambda graph, op: 0
    # raises UnsupportedOpError when this instance uses an option we do not implement
    check: Callable[[Graph, int, Operator], None] = lambda graph, index, op: None
    # input positions holding parameters (weights, bias) rather than activations
    param_inputs: tuple[int, ...] = ()
    # gradient rule: emits the TT_* ops computing input (and parameter) gradients;
    # None when the op cannot sit on a gradient path
    backward: Callable | None = None
    # TT ops that keep state across Invokes (init flag, RNG) get it as a 4th argument
    stateful: bool = False


REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    REGISTRY[opdef.kind] = opdef
    return opdef


def get(graph: Graph, index: int) -> OpDef:
    op = graph.operators[index]
    opdef = REGISTRY.get(op.kind)
    if opdef is None:
        raise UnsupportedOpError(index, op.kind)
    return opdef


def validate(graph: Graph) -> None:
    """Raise a ModelError naming the first thing in `graph` we cannot run exactly."""
    supported(graph)
    check(graph)


def supported(graph: Graph) -> None:
    """Every operator is one we implement, and the model is not a float model."""
    for index, op in enumerate(graph.operators):
        if op.kind in ("QUANTIZE", "DEQUANTIZE") or op.kind.startswith("TT_"):
            continue
        for t in graph.op_inputs(op)[:1] + graph.op_outputs(op):
            if t is not None and t.dtype in ("float32", "float16"):
                raise ModelError(
                    f"operator {index} ({printable(op.kind)}) computes in {t.dtype}: this is a "
                    "float model; tflite-train needs a full-integer int8 model (convert with a "
                    "representative dataset and TFLITE_BUILTINS_INT8)")
    for index in range(len(graph.operators)):
        get(graph, index)


def check(graph: Graph) -> None:
    """Each operator's own check: arity, types, shapes, options (the op modules' _check)."""
    for index, op in enumerate(graph.operators):
        get(graph, index).check(graph, index, op)


def fused_activation(op: Operator) -> int:
    return int(op.options.get("fused_activation_function", 0) or 0)


def require(cond: bool, index: int, op: Operator, why: str) -> None:
    if not cond:
        raise UnsupportedOpError(index, op.kind, why)


def require_arity(index: int, op: Operator, inputs, outputs: int) -> None:
    """`inputs`: a count or an inclusive (least, most) range; absent optional inputs (-1)
    count. Inputs before the optional tail must be present."""
    lo, hi = (inputs, inputs) if isinstance(inputs, int) else inputs
    require(lo <= len(op.inputs) <= hi, index, op,
            f"{len(op.inputs)} inputs, expected {lo if lo == hi else f'{lo} to {hi}'}")
    require(len(op.outputs) == outputs, index, op,
            f"{len(op.outputs)} outputs, expected {outputs}")
    require(all(t >= 0 for t in op.inputs[:lo]), index, op, "a required input is absent")


def require_options(index: int, op: Operator, table: str, required: bool = True) -> None:
    """The builtin options table the op's kernel reads (TFLM substitutes zeros for a missing
    or mismatched table: zero strides, zero beta)."""
    if op.options_type is None and not required:
        return
    require(op.options_type == table, index, op,
            f"options table {op.options_type or 'missing'}, expected {table}")


def require_activation(graph: Graph, index: int, op: Operator) -> None:
    """A fused activation we implement, whose clamp TFLM can quantize to the output's grid
    (6 / scale within int32: its float-to-int conversion is undefined beyond)."""
    act = fused_activation(op)
    require(act in (0, 1, 2, 3), index, op, f"fused activation {act} not supported")
    bound = {2: 1.0, 3: 6.0}.get(act)
    if bound is not None:
        s = graph.tensors[op.outputs[0]].quant.s
        require(bound / s < 2.0 ** 31, index, op,
                f"output scale {s:g} puts the activation's bound {bound:g} beyond int32")


def require_int8_io(graph: Graph, index: int, op: Operator, inputs=(0,)) -> None:
    """The listed inputs and every output: int8 with one scale and zero point."""
    for pos in inputs:
        t = graph.tensors[op.inputs[pos]]
        require(t.dtype == "int8" and t.quant is not None, index, op,
                f"input {pos} is {t.dtype}; only quantized int8 is supported")
        require(not t.quant.per_channel, index, op, f"input {pos} is quantized per channel")
    for t in graph.op_outputs(op):
        require(t.dtype == "int8" and t.quant is not None, index, op,
                f"output is {t.dtype}; only quantized int8 is supported")
        require(not t.quant.per_channel, index, op, "the output is quantized per channel")


def require_same_quant(graph: Graph, index: int, op: Operator) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(x.quant.zp == y.quant.zp and np.float32(x.quant.s) == np.float32(y.quant.s),
            index, op, "input and output quantization differ")


def require_weights(graph: Graph, index: int, op: Operator, pos: int, rank: int,
                    channels: int, axis: int) -> None:
    """An int8 symmetric parameter tensor (constant, or a trained variable) of `rank`, with 1
    or `channels` scales along `axis`."""
    w = graph.tensors[op.inputs[pos]]
    require(w.dtype == "int8" and (w.is_constant or w.is_variable), index, op,
            f"input {pos} (weights) must be int8 and constant (or a trainable variable)")
    require(len(w.shape) == rank, index, op, f"weights have rank {len(w.shape)}, "
                                             f"expected {rank}")
    require(w.quant is not None and not np.any(w.quant.zero_point), index, op,
            "weights must be symmetric (zero point 0)")
    n = w.quant.scale.size
    require(n == 1 or (n == channels and w.quant.axis == axis), index, op,
            f"weights have {n} scales (axis {w.quant.axis}); expected 1 or {channels} along "
            f"axis {axis}")


def require_bias(graph: Graph, index: int, op: Operator, pos: int, channels: int) -> None:
    if len(op.inputs) <= pos or op.inputs[pos] < 0:
        return
    b = graph.tensors[op.inputs[pos]]
    require(b.dtype == "int32" and (b.is_constant or b.is_variable), index, op,
            f"bias is {b.dtype}{'' if b.is_constant or b.is_variable else ' and computed'}; "
            "a constant int32 expected")
    require(b.size == channels, index, op, f"bias has {b.size} elements, expected {channels}")


def saturate_int8(x) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


def unpack_mask(mask: np.ndarray, dims) -> np.ndarray:
    """The bit-packed activation mask (LSB first) as a boolean array of shape `dims`."""
    size = int(np.prod(dims))
    bits = np.unpackbits(np.asarray(mask, np.uint8), bitorder="little")[:size]
    return bits.reshape(dims).astype(bool)


def masked(dy: np.ndarray, mask) -> np.ndarray:
    """dy as float32 with the activation mask applied: a masked-out element is +0.0 (the C
    kernels skip its terms, which gives the same bits); an absent mask (None) means no
    clamp."""
    dy = np.asarray(dy, np.float32)
    return dy if mask is None else np.where(unpack_mask(mask, dy.shape), dy, np.float32(0))


def masked_int(dy: np.ndarray, mask) -> np.ndarray:
    """An int8 gradient as exact integers (float64, for BLAS: every int8-gradient sum stays
    below 2^31, far inside float64's exact integers) with the mask applied."""
    dy = np.asarray(dy).astype(np.float64)
    return dy if mask is None else np.where(unpack_mask(mask, dy.shape), dy, 0.0)


def exact(values: np.ndarray) -> np.ndarray:
    """float64 arrays of exact integers as int64."""
    return np.rint(values).astype(np.int64)


def scalar(tensor) -> np.float32:
    """The float32 value of a [1] tensor (an int8 gradient's scale)."""
    return np.float32(np.ravel(tensor)[0])


def by_grad(f32, s8, f32_stateful: bool = False):
    """A TT_* op's numpy kernel dispatching on its gradient mode (training_ops.grad_mode):
    f32(graph, op, inputs[, state]) or s8(graph, op, inputs, state), as the C kernels
    dispatch on dy's type."""
    from ..training_ops import grad_mode

    def run(graph, op, inputs, state=None):
        if grad_mode(graph, op) == "int8":
            return s8(graph, op, inputs, {} if state is None else state)
        return f32(graph, op, inputs, state) if f32_stateful else f32(graph, op, inputs)
    return run


def channel_scales(quant, n: int) -> np.ndarray:
    """The float32 scale of each of n output channels (a per-tensor scale repeated)."""
    return np.ascontiguousarray(np.broadcast_to(quant.scale.astype(np.float32), (n,)))


def centered(q: np.ndarray, zero_point: int) -> np.ndarray:
    """float32(q - zero_point) of an int8 tensor: exact, as the C kernels convert it."""
    return (q.astype(np.int16) - np.int16(zero_point)).astype(np.float32)


def real_weights(w: np.ndarray, quant, axis: int) -> np.ndarray:
    """s_w * w with per-channel scales along `axis` (float64 for the reference)."""
    dims = [1] * w.ndim
    dims[axis] = -1
    scale = quant.scale.astype(np.float64)
    return w.astype(np.float64) * (scale.reshape(dims) if scale.size > 1 else scale[0])


# Importing the modules fills REGISTRY.
from . import conv, fully_connected, add, pad, pool, mean, shape, softmax, quantize  # noqa: E402,F401
from . import training  # noqa: E402,F401
from . import tt_forward  # noqa: E402,F401
from . import tt_stream  # noqa: E402,F401
