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

from ..ir import Graph
from ..runtime import c_kernels
from ..runtime.kernel_calls import BatchCall, KernelCall, Out, Scratch
from ..training_ops import batch_of

@dataclass
class Batched:
    """An update op of batch B > 1 (engine c's BatchCall, c_kernels._batched): `grad` the
    plain gradient kernel writing g into its scratch number `g_scratch` (fused ops), or None
    where g is the op's `grad` input (input 1); `update` the update kernel reading the
    accumulator (its input) as its gradient."""
    op: int
    batch: int
    accumulator: int            # tensor index of the float32 variable
    n: int                      # elements of the trained region
    grad: KernelCall | None
    update: KernelCall
    g_scratch: int = 0


def describe(g: Graph, k: int) -> Batched | None:
    """Operator k's composition when it is an update op of batch B > 1, else None: engine
    c's, the gradient's Out(0) become the operator's scratch (in the arena)."""
    op = g.operators[k]
    if batch_of(op) == 1:
        return None
    bc = c_kernels.kernel_call(g, op)
    if not isinstance(bc, BatchCall):
        raise ValueError(f"internal: operator {k} ({op.kind}) of batch {batch_of(op)} is "
                         "not a BatchCall")
    grad, at = None, 0
    if bc.grad is not None:
        out = next(i for i, a in enumerate(bc.grad.args) if isinstance(a, Out) and a.k == 0)
        args = list(bc.grad.args)
        args[out] = Scratch(4 * bc.n)
        grad = KernelCall(bc.grad.name, args).check()
        at = sum(isinstance(a, Scratch) for a in args[:out])     # its scratch number
    return Batched(k, bc.batch, op.inputs[bc.acc], bc.n, grad, bc.update, at)


def kernel_call(g: Graph, k: int) -> KernelCall | None:
    """The call the program plans operator k with (its scratch and staging in the arena): a
    fused op's plain gradient kernel, a plain op's update (whose extra calls need no
    memory); None when the op is not batched."""
    b = describe(g, k)
    if b is None:
        return None
    return b.grad if b.grad is not None else b.update
