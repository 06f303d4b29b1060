"""Numpy reference kernels of the TT_* ops that belong to no single forward op: init,
saved masks and slices, the loss, gradient plumbing, and the QAS SGD updates.
Semantics: schema/training_ops.json (the C kernels implement the same text)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator
from .. import training_ops
from ..training_ops import cos_pi_ratio, grad_mode, options_of, seed_state, uniform
from . import OpDef, by_grad, exact, masked, masked_int, register, require, scalar, ttcheck
from .accumulate import F32, blocked, in_order
from .ttcheck import tt_check

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def init(graph: Graph, op: Operator, inputs, state) -> list:
    if not state.get("done"):
        for const, var in zip(inputs[0::2], inputs[1::2]):
            var[...] = const
        state["done"] = True
    return []


def save_mask(graph: Graph, op: Operator, inputs) -> list:
    o = options_of(op)
    y = inputs[0].astype(np.int16).ravel()
    bits = (y > o["lo"]) & (y < o["hi"])
    return [np.packbits(bits, bitorder="little")]


def save_slice(graph: Graph, op: Operator, inputs) -> list:
    return [np.ascontiguousarray(inputs[0][..., :options_of(op)["channels"]])]


def loss_softmax_ce(graph: Graph, op: Operator, inputs) -> list:
    """tt_loss_softmax_ce_s8, operation for operation: float32, with the C kernels' double
    exp and log (training_ops.exp / log) rounded to float32."""
    q = graph.tensors[op.inputs[0]].quant
    logits = inputs[0].ravel()
    label = int(np.ravel(inputs[1])[0])
    if label >= logits.size:
        raise ValueError(f"label {label} out of range for {logits.size} classes")
    v = F32(q.s) * (logits.astype(F32) - F32(q.zp))
    top = v.max()
    e = np.array([training_ops.exp(float(d)) for d in v - top], F32)
    total = in_order(e)
    loss = F32(training_ops.log(float(total))) - (v[label] - top)
    grad = e / total
    grad[label] -= F32(1)
    return [np.array([loss], F32), grad.reshape(inputs[0].shape)]


def loss_softmax_ce_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_loss_softmax_ce_s8_s8: the float32 dlogits as above, in fixed point
    acc_i = (int32)(d_i * 2^30) (truncated), then the rule with unit 2^-30."""
    from .quantgrad import LOSS_FIXED_BITS, quantize, rounding_state
    loss, grad = loss_softmax_ce(graph, op, inputs)
    acc = (grad * F32(1 << LOSS_FIXED_BITS)).astype(np.int32)
    q, s = quantize(acc, F32(1) / F32(1 << LOSS_FIXED_BITS),
                    rounding_state(options_of(op), state))
    return [loss, q, np.array([s], F32)]


def bias_grad_values_s8(dy, mask, dy_scale) -> np.ndarray:
    """tt_bias_grad_s8: (float)T * dy_scale, T the exact sum of dy over every position."""
    g = masked_int(dy, mask)
    return exact(g.reshape(-1, g.shape[-1]).sum(axis=0)).astype(F32) * scalar(dy_scale)


def sum_grad_s8(graph: Graph, op: Operator, inputs, state) -> list:
    """tt_add_grad_s8 (a + b rescaled to the larger scale) or tt_sum_broadcast_grad_s8."""
    from .quantgrad import ADD_GRAD_SHIFT, multiplier, quantize, rounding_state, unit
    a, b = inputs[0].astype(np.int64), inputs[1]
    out_shape = graph.tensors[op.outputs[0]].shape
    rounding = rounding_state(options_of(op), state)
    a_scale = scalar(inputs[2])
    if b is not None:
        b_scale = scalar(inputs[3])
        top = max(a_scale, b_scale)
        acc = (a * multiplier(a_scale, top, ADD_GRAD_SHIFT)
               + b.astype(np.int64) * multiplier(b_scale, top, ADD_GRAD_SHIFT))
        q, s = quantize(acc, unit(top, ADD_GRAD_SHIFT), rounding)
    else:
        dims = (1,) * (a.ndim - len(out_shape)) + tuple(out_shape)
        axes = tuple(d for d in range(a.ndim) if dims[d] != a.shape[d])
        acc = a.sum(axis=axes, keepdims=True).reshape(out_shape)
        q, s = quantize(acc, a_scale, rounding)
    return [q, np.array([s], F32)]


def bias_grad(graph: Graph, op: Operator, inputs) -> list:
    return [bias_grad_values(inputs[0], inputs[1])]


def bias_grad_values(dy, mask) -> np.ndarray:
    """tt_bias_grad_f32's order: partial sums over blocks of 16 positions, then the blocks."""
    g = masked(dy, mask)
    return blocked(g.reshape(-1, g.shape[-1]))


def bias_update(graph: Graph, op: Operator, inputs, state) -> list:
    """TT_BIAS_UPDATE = TT_BIAS_GRAD then TT_UPDATE_BIAS, without the gradient tensor."""
    grad = (bias_grad_values_s8(inputs[0], inputs[1], inputs[4])
            if grad_mode(graph, op) == "int8" else bias_grad_values(inputs[0], inputs[1]))
    apply_bias_update(inputs[2], grad, inputs[3], graph.tensors[op.inputs[2]].quant,
                      options_of(op), state, accumulator(graph, op, inputs))
    return []


def mask_grad(graph: Graph, op: Operator, inputs) -> list:
    """dy where the mask bit is 1, else 0 (float32 +0.0, or int8 0 with dy's scale)."""
    if np.asarray(inputs[0]).dtype == np.int8:
        return [masked_int(inputs[0], inputs[1]).astype(np.int8)]
    return [masked(inputs[0], inputs[1])]


def sum_grad(graph: Graph, op: Operator, inputs) -> list:
    a, b = inputs[0], inputs[1]
    out_shape = graph.tensors[op.outputs[0]].shape
    if b is not None:
        return [np.asarray(a, F32) + np.asarray(b, F32)]
    # tt_sum_broadcast_grad_f32: each element sums the dy elements broadcast from it, in
    # row-major order of the broadcast axes (a lower-rank input gets leading 1s)
    a = np.asarray(a, F32)
    dims = (1,) * (a.ndim - len(out_shape)) + tuple(out_shape)
    axes = [d for d in range(a.ndim) if dims[d] != a.shape[d]]
    kept = [d for d in range(a.ndim) if d not in axes]
    moved = np.transpose(a, axes + kept).reshape((-1,) + tuple(a.shape[d] for d in kept))
    return [in_order(moved).reshape(out_shape)]


def reshape_grad(graph: Graph, op: Operator, inputs) -> list:
    return [inputs[0].reshape(graph.tensors[op.outputs[0]].shape)]


def _round(delta: np.ndarray, rounding: int, state: dict, seed: int) -> np.ndarray:
    if rounding == 0:
        return np.rint(delta)
    rng_state = state.get("rng", seed_state(seed))
    u, state["rng"] = uniform(rng_state, delta.size)
    return np.floor(delta.ravel() + u).reshape(delta.shape)


def learning_rate(o: dict, step: int) -> np.float32:
    """The op's lr at its `step`-th training Invoke: cosine-decayed to 0, inverse-time
    decayed, or constant, as tt_learning_rate computes it from the float32 option: the same
    double operations in the same order (Python floats are IEEE doubles; the cosine is the C
    kernels' own, cos_pi_ratio), so the lr is bit-identical to theirs."""
    n, lr = o["decay_steps"], np.float32(o["lr"])          # tt_sgd.lr is a float
    if n > 0:
        return np.float32(float(lr) * 0.5 * (1.0 + cos_pi_ratio(min(step, n), n)))
    t = o["half_life_steps"]
    if t > 0:
        return np.float32(float(lr) * float(t) / (float(t) + float(step)))
    return lr


def _sgd_delta(grad: np.ndarray, scale: np.ndarray, momentum_buf, o: dict, state: dict,
               acc=None) -> np.ndarray | None:
    """The float32 update of the integer parameters, in the schema's operation order; None
    when a batch (o["batch"] = B > 1) is still accumulating into `acc` (this training
    Invoke then only adds its gradient: no update, no draw)."""
    n = state.get("t", 0)              # training Invokes before this one
    state["t"] = n + 1
    batch = o.get("batch", 1)
    t = n
    if batch > 1:
        acc[...] = acc + grad.astype(F32)
        if (n + 1) % batch != 0:
            return None
        grad = acc * (F32(1) / F32(batch))
        acc[...] = F32(0)
        t = n // batch                 # the schedule counts updates
    lr = learning_rate(o, t)
    g = grad / scale if o["qas"] else grad * scale
    g = g.astype(np.float32)
    if o["momentum"] > 0 and momentum_buf is not None:
        momentum_buf[...] = np.float32(o["momentum"]) * momentum_buf + g
        g = momentum_buf
    return (-lr * g).astype(np.float32)


def accumulator(graph: Graph, op: Operator, inputs):
    """An update op's accumulator array (the input after its label), or None."""
    pos = training_ops.accumulator_pos(graph, op)
    return inputs[pos] if pos >= 0 else None


def residual(graph: Graph, op: Operator, inputs):
    """A weight update's rounding residual array (schema input `residual`), or None."""
    pos = training_ops.residual_pos(graph, op)
    return inputs[pos] if pos >= 0 else None


def update_weight(graph: Graph, op: Operator, inputs, state) -> list:
    res = residual(graph, op, inputs)
    apply_weight_update(inputs[0], inputs[1], inputs[2], graph.tensors[op.inputs[0]].quant,
                        options_of(op), state, accumulator(graph, op, inputs),
                        **({"res": res} if res is not None else {}))
    return []


# The residual's units per LSB of the weight (schema: the update ops' residual): an int8
# holds a remainder in [-1/2, 1/2) LSB to 1/256 LSB
RESIDUAL_UNITS = 256


def residual_steps(delta: np.ndarray, res: np.ndarray) -> np.ndarray:
    """The schema's residual rule on float32 steps `delta` (the trained region): whole-LSB
    steps (int32), and the int8 residual `res` (modified in place) carrying the remainder.
    Round to nearest of remainder + step: no draw, so no rounding noise accumulates."""
    v = np.clip(np.nan_to_num(delta, nan=-256.0), -256.0, 256.0).astype(np.float32)
    q = np.rint(np.float32(RESIDUAL_UNITS) * v).astype(np.int32)    # exact, half to even
    c = res.astype(np.int32) + q
    step = (c + RESIDUAL_UNITS // 2) // RESIDUAL_UNITS                 # floor division
    res[...] = (c - RESIDUAL_UNITS * step).astype(np.int8)            # in [-128, 127]
    return step


def apply_weight_update(w, grad, mom, q, o: dict, state: dict, acc=None, res=None) -> None:
    """TT_UPDATE_WEIGHT on arrays: w (int8, modified in place) += rounded QAS SGD step (of
    the batch's mean gradient, every B-th call, when o["batch"] = B > 1); with `res` (the
    int8 residual, modified in place) rounded by the residual rule instead of o["rounding"].
    Callers pass res only when the op has one (benchmarks/rounding_residual.py replaces
    this function with one of the old signature)."""
    k = o["channels"]
    shape = [1] * w.ndim
    shape[o["axis"]] = -1
    scale = q.scale.astype(np.float32).reshape(shape) if q.per_channel else np.float32(q.scale[0])
    delta = _sgd_delta(grad.astype(np.float32), scale, mom, o, state, acc)
    if delta is None:
        return
    if res is not None:
        step = residual_steps(delta, res)
    else:
        step = _round(delta, o["rounding"], state, o["seed"])
        # |step| > 254 saturates either way: clamp first so the conversion is defined (NaN too)
        step = np.clip(np.nan_to_num(step, nan=-256.0), -256.0, 256.0).astype(np.int32)
    region = w[..., :k]
    region[...] = np.clip(region.astype(np.int32) + step, -127, 127)


def update_bias(graph: Graph, op: Operator, inputs, state) -> list:
    apply_bias_update(inputs[0], inputs[1], inputs[2], graph.tensors[op.inputs[0]].quant,
                      options_of(op), state, accumulator(graph, op, inputs))
    return []


def apply_bias_update(b, grad, mom, q, o: dict, state: dict, acc=None) -> None:
    """TT_UPDATE_BIAS on arrays: b (int32, modified in place) += rounded QAS SGD step (of
    the batch's mean gradient, every B-th call, when o["batch"] = B > 1)."""
    delta = _sgd_delta(grad.astype(np.float32), q.scale.astype(np.float32), mom, o, state,
                       acc)
    if delta is None:
        return
    step = _round(delta, o["rounding"], state, o["seed"])
    step = np.clip(np.nan_to_num(step, nan=-2.0**33), -2.0**33, 2.0**33)
    b[...] = np.clip(b.astype(np.int64) + step.astype(np.int64), INT32_MIN, INT32_MAX)


# --- checks (shapes the kernels rely on; the schema's part is ttcheck.schema_check) ------

def _init_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    for k in range(0, len(op.inputs), 2):
        src, var = graph.tensors[op.inputs[k]], graph.tensors[op.inputs[k + 1]]
        require(src.is_constant and var.is_variable and src.dtype == var.dtype
                and src.size == var.size, index, op,
                f"pair {k // 2}: needs a constant and a variable of one type and size")


def _mask_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    y, mask = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(mask.size == (y.size + 7) // 8, index, op, "the mask must hold one bit per element")


def _slice_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    x, saved = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require(len(x.shape) >= 1 and o["channels"] <= x.shape[-1], index, op,
            f"{o['channels']} channels of {list(x.shape)}")
    require(tuple(saved.shape) == tuple(x.shape[:-1]) + (o["channels"],), index, op,
            f"saved {list(saved.shape)} is not the first {o['channels']} channels of "
            f"{list(x.shape)}")


def _loss_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    logits = graph.tensors[op.inputs[0]]
    loss, dlogits = graph.tensors[op.outputs[0]], graph.tensors[op.outputs[1]]
    ttcheck.per_tensor(logits, index, op, "the logits")
    require(loss.shape == (1,), index, op, f"the loss is {list(loss.shape)}, not [1]")
    ttcheck.same_shape(logits, dlogits, index, op, "logits and their gradient")


def _bias_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    dy, db = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    ttcheck.check_mask(graph, index, op, dy.size)
    require(len(dy.shape) >= 1 and db.size == dy.shape[-1], index, op,
            f"db {list(db.shape)} must have dy's {dy.shape[-1] if dy.shape else 0} channels")


def _mask_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    dy, dx = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    ttcheck.check_mask(graph, index, op, dy.size)
    ttcheck.same_shape(dy, dx, index, op, "dy and dx")


def _sum_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    a, dx = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    b = ttcheck.tensor(graph, op, 1)
    if b is not None:
        ttcheck.same_shape(a, b, index, op, "a and b")
        ttcheck.same_shape(a, dx, index, op, "a and dx")
        return
    lead = len(a.shape) - len(dx.shape)
    require(lead >= 0 and all(n in (1, a.shape[lead + d]) for d, n in enumerate(dx.shape)),
            index, op, f"dx {list(dx.shape)} does not broadcast to dy {list(a.shape)}")


def _reshape_grad_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    ttcheck.same_size(graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]], index, op,
                      "dy and dx")


def _update_weight_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    w, grad = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    region = check_weight_update(graph, index, op, w, o)
    require(tuple(grad.shape) == region, index, op,
            f"grad {list(grad.shape)} is not the trained region {list(region)}")
    ttcheck.momentum(graph, index, op, 2, region)


def check_weight_update(graph: Graph, index: int, op: Operator, w, o: dict) -> tuple:
    """The options of a weight update against its weights; returns the trained region
    (the first `channels` input channels, on the last axis)."""
    require(len(w.shape) in (2, 4), index, op, f"weights {list(w.shape)} must be 2-D or 4-D")
    depth, axis = w.shape[-1], o["axis"]
    require(o["channels"] <= depth, index, op, f"{o['channels']} of {depth} input channels")
    require(axis == 0 or (axis == len(w.shape) - 1 and o["channels"] == depth), index, op,
            f"axis {axis}: scales run along the first axis, or the last one when every "
            "channel is trained")
    ttcheck.scales(w, w.shape[axis], axis, index, op, "the weights")
    return tuple(w.shape[:-1]) + (o["channels"],)


def _update_bias_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    b, grad = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    check_bias(graph, index, op, b)
    ttcheck.same_shape(b, grad, index, op, "bias and grad")
    ttcheck.momentum(graph, index, op, 2, b.shape)


def check_bias(graph: Graph, index: int, op: Operator, b) -> None:
    ttcheck.rank(b, 1, index, op, "the bias")
    ttcheck.scales(b, b.size, 0, index, op, "the bias")


def _bias_update_shapes(graph: Graph, index: int, op: Operator, o: dict) -> None:
    dy, b = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[2]]
    ttcheck.check_mask(graph, index, op, dy.size)
    check_bias(graph, index, op, b)
    require(len(dy.shape) >= 1 and b.size == dy.shape[-1], index, op,
            f"bias {list(b.shape)} must have dy's channels")
    ttcheck.momentum(graph, index, op, 3, b.shape)


register(OpDef("TT_INIT", init, check=tt_check(_init_shapes), stateful=True))
register(OpDef("TT_SAVE_MASK", save_mask, check=tt_check(_mask_shapes)))
register(OpDef("TT_SAVE_SLICE", save_slice, check=tt_check(_slice_shapes)))
register(OpDef("TT_LOSS_SOFTMAX_CE", by_grad(loss_softmax_ce, loss_softmax_ce_s8),
               check=tt_check(_loss_shapes), stateful=True))
register(OpDef("TT_BIAS_GRAD", by_grad(bias_grad, lambda g, op, ins, st: [
    bias_grad_values_s8(ins[0], ins[1], ins[2])]), check=tt_check(_bias_grad_shapes),
    stateful=True))
register(OpDef("TT_MASK_GRAD", mask_grad, check=tt_check(_mask_grad_shapes)))
register(OpDef("TT_SUM_GRAD", by_grad(sum_grad, sum_grad_s8), check=tt_check(_sum_grad_shapes),
               stateful=True))
register(OpDef("TT_RESHAPE_GRAD", reshape_grad, check=tt_check(_reshape_grad_shapes)))
register(OpDef("TT_UPDATE_WEIGHT", update_weight, check=tt_check(_update_weight_shapes),
               stateful=True))
register(OpDef("TT_UPDATE_BIAS", update_bias, check=tt_check(_update_bias_shapes),
               stateful=True))
register(OpDef("TT_BIAS_UPDATE", bias_update, check=tt_check(_bias_update_shapes),
               stateful=True))
