"""The batch (gradient accumulation, /work/notes/s41/batch_contract.md) in a generated program:
an update op of batch B > 1 becomes the contract's composition,

    g = the op's gradient: the `grad` input (TT_UPDATE_*), or a fused op's PLAIN gradient
        kernel (tt_*_weight_grad_*, tt_bias_grad_*) into a float32 scratch of the trained
        region, in the arena (the operator's scratch, planned as every kernel's);
    if (tt_batch_accumulate_f32(acc, g, n, B, state)) {
      tt_update_weight_s8 / tt_update_bias_s32 (..., grad = acc, ..., state);
      tt_batch_end_f32(acc, n, B, state);
    }

with acc a static float array per op (SRAM, zeroed by tt_model_init() as momentum buffers
are). Ops of batch 1 keep today's single call, so a batch-1 program is unchanged."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Operator
from ..runtime import c_kernels as CK
from ..runtime.kernel_calls import In, KernelCall, Scratch
from ..training_ops import accumulator_input, batch_of, options_of

FUSED = ("TT_CONV2D_WEIGHT_UPDATE", "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE",
         "TT_FULLY_CONNECTED_WEIGHT_UPDATE", "TT_BIAS_UPDATE")
PLAIN = ("TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS")


@dataclass(frozen=True)
class AccumulatorArg:
    """The op's accumulator (a float32 SRAM array of the program) as a kernel argument."""
    tensor: int


@dataclass
class Batched:
    """An update op of batch B > 1: `grad` the plain gradient kernel writing g into its
    scratch number `g_scratch` (fused ops), or None where g is the op's `grad` input (input
    1); `update` the update kernel reading the accumulator as its gradient."""
    op: int
    batch: int
    accumulator: int            # tensor index of the float32 variable
    n: int                      # elements of the trained region
    grad: KernelCall | None
    update: KernelCall
    g_scratch: int = 0


def batched(graph: Graph, op: Operator) -> bool:
    return op.kind in FUSED + PLAIN and batch_of(op) > 1


def _with_acc(call: KernelCall, acc: int) -> KernelCall:
    """The update call with its gradient read from the accumulator."""
    i = call.signature.index("grad")
    return KernelCall(call.name, call.args[:i] + [AccumulatorArg(acc)] + call.args[i + 1:])


def _grad_call(g: Graph, op: Operator, n: int) -> KernelCall:
    """The fused op's plain gradient kernel (the same values its fused kernel computes),
    its output the float32 scratch of n elements."""
    out = Scratch(4 * n)
    if op.kind == "TT_BIAS_UPDATE":
        dy, b = CK._t(g, op, 0), CK._t(g, op, 2)
        return KernelCall("tt_bias_grad" + CK._kind(g, op), [
            *CK._dy(g, op, 4), CK._optional(op, 1), dy.size // b.size, b.size, out])
    if op.kind == "TT_FULLY_CONNECTED_WEIGHT_UPDATE":
        dy, x = CK._t(g, op, 0), CK._t(g, op, 2)
        units = CK._t(g, op, 3).shape[0]
        assert x.shape[-1] == options_of(op)["channels"], "saved holds the trained channels"
        return KernelCall("tt_fully_connected_weight_grad" + CK._kind(g, op), [
            *CK._dy(g, op, 5), CK._optional(op, 1), dy.size // units, units, In(2), x.quant.s,
            x.quant.zp, x.shape[-1], out])
    (nb, oh, ow, cm), x = CK._t(g, op, 0).shape, CK._t(g, op, 2)
    _, kh, kw, _ = CK._t(g, op, 3).shape
    if op.kind == "TT_CONV2D_WEIGHT_UPDATE":
        assert x.shape[3] == options_of(op)["channels"], "saved holds the trained channels"
        # (no staging: the int8 kernel ignores one, c_kernels._conv_weight_grad)
        stage = [None, 0] if CK._int8(g, op) else []
        return KernelCall("tt_conv2d_weight_grad" + CK._kind(g, op), [
            *CK._dy(g, op, 5), CK._optional(op, 1), nb, oh, ow, cm, In(2), x.quant.s, x.quant.zp,
            x.shape[1], x.shape[2], x.shape[3], kh, kw, CK._window(op), out, *stage])
    m = options_of(op)["depth_multiplier"]
    stage = CK._stage("tt_depthwise_conv2d_weight_grad_s8", nb, oh, ow, cm // m, m, x.shape[1],
                      x.shape[2], kh, kw, CK._window(op)) if CK._int8(g, op) else []
    return KernelCall("tt_depthwise_conv2d_weight_grad" + CK._kind(g, op), [
        *CK._dy(g, op, 5), CK._optional(op, 1), nb, oh, ow, cm // m, m, In(2), x.quant.s,
        x.quant.zp, x.shape[1], x.shape[2], kh, kw, CK._window(op), out, *stage])


def _update_call(g: Graph, op: Operator, acc: int) -> KernelCall:
    """The plain update kernel the fused op's rule is (tt_update_weight_s8 /
    tt_update_bias_s32 on the trained region), reading the accumulator."""
    o = options_of(op)
    if op.kind == "TT_UPDATE_WEIGHT":
        return _with_acc(CK._update_weight(g, op), acc)
    if op.kind == "TT_UPDATE_BIAS":
        return _with_acc(CK._update_bias(g, op), acc)
    if op.kind == "TT_BIAS_UPDATE":
        b = CK._t(g, op, 2)
        return KernelCall("tt_update_bias_s32", [
            In(2), b.size, CK._scales(b.quant, b.size), AccumulatorArg(acc),
            CK._optional(op, 3), CK._sgd(o), CK.STATE])
    w = CK._t(g, op, 3)
    scales = CK._weight_scales(g, op, 3)
    # a depthwise filter [1, kh, kw, c*m]: its scales along the last axis, every channel
    # trained; conv and fully connected: per output channel (axis 0), the first `channels`
    dw = op.kind == "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE"
    return KernelCall("tt_update_weight_s8", [
        In(3), CK._dims(w.shape), len(w.shape), 1 if dw else 0, scales, scales.size,
        AccumulatorArg(acc), w.shape[-1] if dw else o["channels"], CK._optional(op, 4),
        CK._sgd(o), CK.STATE])


def describe(g: Graph, k: int) -> Batched | None:
    """Operator k's composition when it is an update op of batch B > 1, else None."""
    op = g.operators[k]
    if not batched(g, op):
        return None
    acc = accumulator_input(g, op)
    if acc < 0:
        raise ValueError(f"operator {k} ({op.kind}) has batch {batch_of(op)} and no "
                         "accumulator input")
    n = g.tensors[acc].size
    grad = _grad_call(g, op, n).check() if op.kind in FUSED else None
    return Batched(k, batch_of(op), acc, n, grad, _update_call(g, op, acc))


def kernel_call(g: Graph, k: int) -> KernelCall | None:
    """The call the program plans operator k with (its scratch and staging in the arena): a
    fused op's plain gradient kernel, a plain op's update (whose extra calls need no
    memory); None when the op is not batched."""
    b = describe(g, k)
    if b is None:
        return None
    return b.grad if b.grad is not None else b.update
