"""FULLY_CONNECTED: int8 forward (TFLM reference FullyConnected arithmetic), cost, backward
rule and the numpy kernels of its TT_* gradient ops."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from ..training_ops import options_of
from . import (OpDef, by_grad, centered, channel_scales, fused_activation, masked, masked_int,
               register, require, require_activation, require_arity, require_bias,
               require_int8_io, require_options, require_weights, ttcheck)
from .accumulate import F32, in_order
from .requant import conv_multipliers, exact_int, require_multipliers, requantize
from .ttcheck import tt_check


def _check(graph: Graph, index: int, op: Operator) -> None:
    require_arity(index, op, (2, 3), 1)
    require_options(index, op, "FullyConnectedOptions", required=False)
    require_int8_io(graph, index, op)
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    require(len(w.shape) == 2, index, op, f"weights {list(w.shape)} are not [units, depth]")
    units, depth = w.shape
    require_weights(graph, index, op, 1, 2, units, 0)
    require(int(op.options.get("weights_format", 0) or 0) == 0, index, op,
            "shuffled weights format not supported")
    require_activation(graph, index, op)
    # TFLM takes the batch count from the output and reads depth inputs per batch
    require(len(y.shape) >= 1 and y.shape[-1] == units and x.size % depth == 0
            and y.size == x.size // depth * units, index, op,
            f"input {list(x.shape)}, weights {list(w.shape)} and output {list(y.shape)} "
            "do not match")
    require_bias(graph, index, op, 2, units)
    real = np.float64(np.float32(x.quant.s)) * w.quant.scale.astype(np.float64) \
        / np.float64(np.float32(y.quant.s))
    require_multipliers(real, index, op, "input scale x weight scale / output scale")


def multipliers(graph: Graph, op: Operator):
    x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
               graph.tensors[op.outputs[0]])
    # Per-channel and per-tensor alike, the pinned TFLM widens both scales to double before
    # multiplying them, as conv does (a float32 product gives another multiplier for most
    # scales, and another output at accumulators near a rounding boundary:
    # tests/test_forward_exact.py builds one).
    return conv_multipliers(x, w, y, w.shape[0])


def forward(graph: Graph, op: Operator, inputs) -> list[np.ndarray]:
    x_t, y_t = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    units, depth = w.shape
    xs = x.reshape(-1, depth).astype(np.float64) - x_t.quant.zp
    acc = exact_int(xs @ w.astype(np.float64).T)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    m, s = multipliers(graph, op)
    out = requantize(acc, m, s, y_t, fused_activation(op))
    return [out.reshape(y_t.shape)]


def macs(graph: Graph, op: Operator) -> int:
    w = graph.tensors[op.inputs[1]]
    x = graph.tensors[op.inputs[0]]
    batches = x.size // w.shape[1]
    return batches * w.shape[0] * w.shape[1]




# --- backward ------------------------------------------------------------------------------

def backward(b, k: int, op: Operator, dy: int, wants: set[int]) -> dict[int, int]:
    g = b.graph
    w = g.tensors[op.inputs[1]]
    units, depth = w.shape
    mask = b.mask(k)
    upd = b.update(k)
    # The input gradient reads the weights: emit it before this layer's update.
    out = {}
    if 0 in wants:
        dx = b.grad_like(op.inputs[0])
        b.emit("TT_FULLY_CONNECTED_INPUT_GRAD", [dy, mask, op.inputs[1]], [dx],
               extra=b.input_grad_multipliers(k, units))
        out[op.inputs[0]] = dx
    if upd is not None and upd.bias and len(op.inputs) > 2 and op.inputs[2] >= 0:
        b.update_bias(k, dy, mask)
    if upd is not None and upd.weight_channels:
        ch = upd.weight_channels
        x = op.inputs[0]
        if g.tensors[x].shape[-1] != depth:
            # the forward flattens its input; keep the saved copy in the [B, depth] view
            flat = b.tensor(f"{g.tensors[x].name}/flat", (g.tensors[x].size // depth, depth),
                            "int8", g.tensors[x].quant)
            b.add_after(b.producer(x), _reshape_op(x, flat, g.tensors[flat].shape))
            x = flat
        saved = b.saved(x, ch)
        b.update_weights(k, "TT_FULLY_CONNECTED_WEIGHT_GRAD", [dy, mask, saved], (units, ch),
                         axis=0)
    return out


def _reshape_op(src: int, dst: int, shape) -> Operator:
    return Operator(opcode="RESHAPE", inputs=[src], outputs=[dst],
                    options={"new_shape": np.array(shape, np.int32)},
                    options_type="ReshapeOptions")


def input_grad(graph: Graph, op: Operator, inputs) -> list:
    """tt_fully_connected_input_grad_f32's sums: over units ascending, the terms
    (dy[:, u] * s_w[u]) * w[u, :]."""
    w = inputs[2]
    units = w.shape[0]
    gs = masked(inputs[0], inputs[1]).reshape(-1, units)
    gs = gs * channel_scales(graph.tensors[op.inputs[2]].quant, units)
    wf = w.astype(F32)
    dx = in_order(gs.T[:, :, None] * wf[:, None, :])                # terms [units, B, depth]
    return [dx.reshape(graph.tensors[op.outputs[0]].shape)]


def weight_grad(graph: Graph, op: Operator, inputs) -> list:
    return [weight_grad_values(graph, op, inputs)]


def weight_grad_values(graph: Graph, op: Operator, inputs) -> np.ndarray:
    """[units, k] from inputs (dy, mask, saved, ...) of a weight-grad or fused op:
    x_scale * (the sum over batches ascending of dy[b, u] * (saved[b, j] - zp))."""
    g = masked(inputs[0], inputs[1])
    g = g.reshape(-1, g.shape[-1])                                 # [B, units]
    x_t = graph.tensors[op.inputs[2]]
    x = centered(inputs[2], x_t.quant.zp)
    x = x.reshape(-1, x.shape[-1])                                 # [B, k]
    return F32(x_t.quant.s) * in_order(g[:, :, None] * x[:, None, :])


def weight_update(graph: Graph, op: Operator, inputs, state, values=None) -> list:
    """TT_FULLY_CONNECTED_WEIGHT_UPDATE = weight gradient then TT_UPDATE_WEIGHT, in place."""
    from .training import accumulator, apply_weight_update, residual
    res = residual(graph, op, inputs)
    apply_weight_update(inputs[3], (values or weight_grad_values)(graph, op, inputs), inputs[4],
                        graph.tensors[op.inputs[3]].quant, options_of(op), state,
                        accumulator(graph, op, inputs), **({"res": res} if res is not None else {}))
    return []


# --- int8 gradients (schema: int8_gradients) ---------------------------------------------

def input_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_fully_connected_input_grad_s8: acc = (dy * mult) @ w, exact."""
    from .conv import _layer_s8
    w = inputs[2]
    h = masked_int(inputs[0], inputs[1]).reshape(-1, w.shape[0]) * inputs[3].astype(np.float64)
    acc = (h @ w.astype(np.float64)).reshape(graph.tensors[op.outputs[0]].shape)
    return _layer_s8(graph, op, inputs, state, acc)


def weight_grad_values_s8(graph: Graph, op: Operator, inputs) -> np.ndarray:
    """[units, k] of tt_fully_connected_weight_grad_s8: exact sums over the batches."""
    from .conv import _grad_s8
    g = masked_int(inputs[0], inputs[1])
    g = g.reshape(-1, g.shape[-1])                                 # [B, units]
    x = inputs[2].astype(np.float64) - graph.tensors[op.inputs[2]].quant.zp
    return _grad_s8(graph, op, inputs, g.T @ x.reshape(-1, x.shape[-1]))


register(OpDef("FULLY_CONNECTED", forward, macs, _check, param_inputs=(1, 2),
               backward=backward))
def grad_macs(graph: Graph, op: Operator) -> int:
    """units x depth for the input gradient, units x trained inputs for the weights'."""
    dy = graph.tensors[op.inputs[0]]
    batches = dy.size // dy.shape[-1]
    if op.kind == "TT_FULLY_CONNECTED_INPUT_GRAD":
        return batches * graph.tensors[op.inputs[2]].size
    return batches * dy.shape[-1] * graph.tensors[op.inputs[2]].shape[-1]


def _input_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    """dy [B, units], weights [units, depth], dx [B, depth] (any shapes of those sizes)."""
    dy, w, dx = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[2]],
                 graph.tensors[op.outputs[0]])
    ttcheck.rank(w, 2, index, op, "the weights")
    units, depth = w.shape
    ttcheck.check_mask(graph, index, op, dy.size)
    ttcheck.scales(w, units, 0, index, op, "the weights")
    require(len(dy.shape) >= 1 and dy.shape[-1] == units
            and dx.size == dy.size // units * depth, index, op,
            f"dy {list(dy.shape)}, weights {list(w.shape)} and dx {list(dx.shape)} do not match")
    ttcheck.int8_multipliers(graph, index, op, w, units, units)


def _weight_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    _check_saved(graph, index, op, graph.tensors[op.outputs[0]].shape)


def _update_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    from .training import check_weight_update
    w = graph.tensors[op.inputs[3]]
    ttcheck.rank(w, 2, index, op, "the weights")
    require(o["axis"] == 0, index, op, f"axis {o['axis']} is not the output-channel axis")
    region = check_weight_update(graph, index, op, w, o)
    _check_saved(graph, index, op, region)
    ttcheck.momentum(graph, index, op, 4, region)


def _check_saved(graph: Graph, index: int, op: Operator, dw_shape) -> None:
    """dy [B, units], saved [B, k], and a weight gradient [units, k]."""
    dy, saved = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[2]]
    ttcheck.check_mask(graph, index, op, dy.size)
    ttcheck.per_tensor(saved, index, op, "the saved input")
    ttcheck.int8_positions(graph, index, op, dy)
    ok = (len(dw_shape) == 2 and len(dy.shape) >= 1 and len(saved.shape) >= 1
          and dw_shape[0] == dy.shape[-1] and dw_shape[1] == saved.shape[-1]
          and dy.size // dy.shape[-1] == saved.size // saved.shape[-1])
    require(ok, index, op, f"dy {list(dy.shape)}, saved {list(saved.shape)} and the weight "
                           f"gradient {list(dw_shape)} do not match")


register(OpDef("TT_FULLY_CONNECTED_INPUT_GRAD", by_grad(input_grad, input_grad_s8), grad_macs,
               tt_check(_input_grad_shapes), stateful=True))
register(OpDef("TT_FULLY_CONNECTED_WEIGHT_GRAD", by_grad(weight_grad, lambda g, op, ins, st: [
    weight_grad_values_s8(g, op, ins)]), grad_macs, tt_check(_weight_grad_shapes),
    stateful=True))
register(OpDef("TT_FULLY_CONNECTED_WEIGHT_UPDATE", by_grad(
    weight_update, lambda g, op, ins, st: weight_update(g, op, ins, st, weight_grad_values_s8),
    f32_stateful=True), grad_macs, tt_check(_update_shapes), stateful=True))
