"""The validation every TT_* op shares (schema/training_ops.json): arity, dtypes, variables
and options, read from the schema; and helpers for the op modules' shape checks, which
guarantee what the numpy and C kernels (and the TFLM glue's Prepare) rely on."""
from __future__ import annotations

from typing import Callable

from ..errors import ModelError
from ..ir import Graph, Operator
from ..limits import MAX_MACS, work_limit
from ..training_ops import (accumulator_input, appended_inputs, batch_of, grad_mode, inputs_of,
                            options_of, options_problem, outputs_of, residual_input, spec)
from . import require


def tt_check(shapes: Callable[[Graph, int, Operator, dict], None] | None = None):
    """A TT_* op's check: the schema's part, then `shapes(graph, index, op, options)`."""
    def check(graph: Graph, index: int, op: Operator) -> None:
        options = schema_check(graph, index, op)
        if shapes is not None:
            shapes(graph, index, op, options)
    return check


def schema_check(graph: Graph, index: int, op: Operator) -> dict:
    """Arity, dtypes, variables and options from the schema, in the op's gradient mode
    (int8 when any gradient slot holds int8: then every gradient slot must, and the int8-only
    inputs, outputs and options are there; schema int8_gradients)."""
    s = spec(op.kind)
    try:
        options = options_of(op)
    except ModelError as exc:
        require(False, index, op, str(exc))
    grad = grad_mode(graph, op)
    problem = options_problem(op.kind, options, grad)
    require(problem is None, index, op, str(problem))
    inputs, outputs = inputs_of(op.kind, grad), outputs_of(op.kind, grad)

    def dtype(rule) -> str:
        return grad if "|" in rule["dtype"] else rule["dtype"]
    if inputs and inputs[0].get("repeated"):
        require(len(op.inputs) >= 2 and len(op.inputs) % 2 == 0 and min(op.inputs) >= 0,
                index, op, "inputs must be (initial value, variable) pairs")
    else:
        n_label = len(inputs)
        require(n_label <= len(op.inputs) <= n_label + len(appended_inputs(op.kind)), index,
                op, f"{len(op.inputs)} inputs, the schema says {n_label}"
                + (" with int8 gradients" if grad == "int8" else ""))
        inputs = inputs + appended_inputs(op.kind)
        for pos, (t, rule) in enumerate(zip(op.inputs, inputs)):
            if t < 0:
                require(rule.get("optional", False), index, op,
                        f"input {pos} ({rule['name']}) is absent")
                continue
            tensor = graph.tensors[t]
            require(dtype(rule) in ("any", tensor.dtype), index, op,
                    f"input {pos} ({rule['name']}) is {tensor.dtype}, wants {dtype(rule)}")
            require(not rule.get("variable") or tensor.is_variable, index, op,
                    f"input {pos} ({rule['name']}) is not a variable tensor")
            require(not rule["name"].endswith("_scale") or tensor.shape == (1,), index, op,
                    f"input {pos} ({rule['name']}) is {list(tensor.shape)}, not [1]")
        label = graph.tensors[op.inputs[n_label - 1]]
        require(label.shape == (1,), index, op, f"the label is {list(label.shape)}, not [1]")
    require(len(op.outputs) == len(outputs), index, op,
            f"{len(op.outputs)} outputs, the schema says {len(outputs)}"
            + (" with int8 gradients" if grad == "int8" else ""))
    for pos, (t, rule) in enumerate(zip(op.outputs, outputs)):
        tensor = graph.tensors[t]
        require(tensor.dtype == dtype(rule), index, op,
                f"output {pos} ({rule['name']}) is {tensor.dtype}, wants {dtype(rule)}")
        require(not rule["name"].endswith("_scale") or tensor.shape == (1,), index, op,
                f"output {pos} ({rule['name']}) is {list(tensor.shape)}, not [1]")
    return options


def int8_multipliers(graph: Graph, index: int, op: Operator, w, channels: int,
                     terms: int) -> None:
    """An input gradient in int8 mode: `terms` products per dx element within int32, and its
    multipliers (input 3) the constant int16 tt_grad_multiplier_s16 of the weights' scales,
    one per output channel (what the glue's Prepare checks: numpy and C read the tensor)."""
    import numpy as np

    from . import channel_scales
    from .quantgrad import grad_shift, multipliers
    if grad_mode(graph, op) != "int8":
        return
    shift = grad_shift(terms)
    require(shift >= 0, index, op, f"int8 gradients: {terms} terms per element overflow int32")
    m = graph.tensors[op.inputs[3]]
    require(m.is_constant and m.size == channels, index, op,
            f"the multipliers must be a constant of {channels} elements")
    want = multipliers(channel_scales(w.quant, channels), shift)
    require(bool(np.array_equal(np.asarray(m.data).ravel(), want)), index, op,
            "the multipliers do not match the weights' scales")


def int8_positions(graph: Graph, index: int, op: Operator, dy) -> None:
    """A weight gradient of int8 dy sums at most MAX_POSITIONS positions in int32."""
    from .quantgrad import MAX_POSITIONS
    if grad_mode(graph, op) != "int8" or not dy.shape:
        return
    positions = dy.size // max(dy.shape[-1], 1)
    require(positions <= MAX_POSITIONS, index, op,
            f"int8 gradients: {positions} positions per weight gradient, at most "
            f"{MAX_POSITIONS}")


def tensor(graph: Graph, op: Operator, pos: int):
    """Input `pos` (None when an optional input is absent)."""
    return graph.tensors[op.inputs[pos]] if op.inputs[pos] >= 0 else None


def check_mask(graph: Graph, index: int, op: Operator, dy_size: int, pos: int = 1) -> None:
    """A bit-packed mask, when present: one bit per element of dy."""
    mask = tensor(graph, op, pos)
    require(mask is None or mask.size == (dy_size + 7) // 8, index, op,
            f"the mask has {mask.size if mask else 0} bytes for {dy_size} elements")


def per_tensor(t, index: int, op: Operator, what: str) -> None:
    require(t.quant is not None and not t.quant.per_channel, index, op,
            f"{what} needs one scale and zero point")


def scales(w, channels: int, axis: int, index: int, op: Operator, what: str) -> None:
    """1 or `channels` scales along `axis` of a parameter tensor."""
    n = w.quant.scale.size if w.quant is not None else 0
    require(n == 1 or (n == channels and (w.quant.axis == axis or len(w.shape) == 1)),
            index, op,
            f"{what} has {n} scales (axis {w.quant.axis if w.quant else '-'}); expected 1 "
            f"or {channels} along axis {axis}")


def rank(t, n: int, index: int, op: Operator, what: str) -> None:
    require(len(t.shape) == n, index, op, f"{what} {list(t.shape)} must have rank {n}")


def loops(index: int, op: Operator, count: int, what: str) -> None:
    """Work that a kernel's loops do, within the per-Invoke limit."""
    require(count <= MAX_MACS, index, op, f"its {what} would take {count:,} steps; more than "
                                          f"{MAX_MACS:,} are refused")


def window_grid(index: int, op: Operator, dx_shape, kernel, stride, dilation, pads,
                out_hw) -> None:
    """The padded grid the numpy window kernels allocate for a gradient op."""
    n, h, w, c = dx_shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow) = kernel, stride, dilation, pads, out_hw
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, pw + w)
    work_limit(index, op.kind, n * hp * wp * c, "padded grid")


def same_shape(a, b, index: int, op: Operator, what: str) -> None:
    require(tuple(a.shape) == tuple(b.shape), index, op,
            f"{what}: {list(a.shape)} and {list(b.shape)} differ")


def same_size(a, b, index: int, op: Operator, what: str) -> None:
    require(a.size == b.size, index, op, f"{what}: {list(a.shape)} and {list(b.shape)} "
                                         "differ in size")


def momentum(graph: Graph, index: int, op: Operator, pos: int, shape) -> None:
    """An update op's optimizer buffers: the optional momentum buffer (input `pos`) and the
    batch's accumulator (after the label, present iff batch > 1), each shaped like the
    trained region."""
    m = tensor(graph, op, pos)
    require(m is None or tuple(m.shape) == tuple(shape), index, op,
            f"momentum buffer {list(m.shape) if m else []} is not the trained region "
            f"{list(shape)}")
    acc, batch = accumulator_input(graph, op), batch_of(op)
    require((acc >= 0) == (batch > 1), index, op,
            f"batch {batch} " + ("needs an accumulator input" if batch > 1
                                 else "takes no accumulator input"))
    a = graph.tensors[acc] if acc >= 0 else None
    require(a is None or tuple(a.shape) == tuple(shape), index, op,
            f"accumulator {list(a.shape) if a else []} is not the trained region "
            f"{list(shape)}")
    # the rounding residual (after the accumulator slot): dtype and variable are checked
    # with the schema's inputs; its shape is the trained region's, and a slot the schema
    # allows only for it is not left dangling
    appended = len(op.inputs) - len(inputs_of(op.kind, grad_mode(graph, op)))
    res = residual_input(graph, op)
    require(appended < 2 or res >= 0, index, op, "the residual input is absent (-1)")
    r = graph.tensors[res] if res >= 0 else None
    require(r is None or tuple(r.shape) == tuple(shape), index, op,
            f"residual {list(r.shape) if r else []} is not the trained region {list(shape)}")
