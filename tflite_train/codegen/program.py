"""A training model as a static program: which kernel call each operator makes, where every
tensor lives, and the arena plan, decided once from the graph (no C is written here; emit.py
writes it).

Where tensors live:
  - frozen constants (weights, biases, quantization arrays): `const` arrays, i.e. flash;
  - trained parameters: SRAM arrays, filled from their initial values (constants, stored
    once) by tt_model_init(); a filter that trains only its first k input channels keeps just
    those in SRAM (`Split`), its frozen channels stay a constant;
  - momentum buffers, the update ops' random streams and, with augment --batch B > 1, their
    accumulators (batch.py): SRAM, reset by tt_model_init(); a batched fused update's
    gradient (float32, the trained region) is its operator's scratch in the arena;
  - everything else (sample, activations, saved activations, masks, gradients, kernel
    scratch): one static arena, planned by memory.codegen_plan, where a reshape is a view
    of its input and a depthwise convolution, ADD or requantization may write its output
    over an input nothing reads afterwards, a convolution or a row-streamed pair or block
    (tt_stream.h) its output over the input rows it has read; the tensors inside a stream
    are never stored;
  - the label and the loss: arguments of tt_train_step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .. import checkpoint, memory
from ..augment import training_metadata
from ..errors import ModelError, TTError
from ..ir import Graph
from ..runtime import c_forward, c_kernels
from ..runtime import kernel_calls as K
from ..runtime import stream_args
from ..runtime.kernel_calls import In, KernelCall, Scratch, Staging
from ..training_ops import batch_of, options_of, set_option
from . import batch, dw_pack, layouts


class CodegenError(TTError):
    """A training model the code generator cannot turn into a program."""


@dataclass(frozen=True)
class SplitPart:
    """The SRAM part (lo: the first k input channels) or the flash part (hi: the rest) of a
    partially trained filter."""
    tensor: int
    part: str


@dataclass(frozen=True)
class TensorArg:
    """A tensor by index (a fused call reads the tensors of two operators)."""
    tensor: int


@dataclass
class Split:
    tensor: int                     # the trained filter (a variable of the training model)
    k: int                          # input channels trained (last axis), kept in SRAM
    shape_whole: tuple[int, ...]    # the filter's shape, [.., depth]

    @property
    def depth(self) -> int:
        return self.shape_whole[-1]

    def shape(self, part: str) -> tuple[int, ...]:
        return (*self.shape_whole[:-1], self.k if part == "lo" else self.depth - self.k)


@dataclass(frozen=True)
class RowInput:
    """The sample read row by row (`codegen --input rows`): operator `op`'s call (the only
    one reading the sample) takes its rows from a tt_row_source (tt_row_source.h) in place of
    the whole sample; with the row API the source's ring, `ring_rows` rows of `row_bytes`,
    is the call's scratch number `scratch` in the arena."""
    op: int
    kernel: str                   # the source form of the call's kernel
    height: int
    row_bytes: int
    ring_rows: int
    scratch: int


# kernels that read their input row by row in ascending order -> their tt_row_source form,
# same arguments but the input (tt_row_source.h)
SOURCE_FORMS = {"tt_conv_depthwise_pointwise_packed_s8":
                    "tt_conv_depthwise_pointwise_packed_source_s8",
                "tt_conv_depthwise_pointwise_chain_s8":
                    "tt_conv_depthwise_pointwise_chain_source_s8",
                # layouts.py's forms reading pre-widened filters or row records
                "tt_conv_depthwise_pointwise_wide_s8":
                    "tt_conv_depthwise_pointwise_packed_source_wide_s8",
                "tt_conv_depthwise_pointwise_chain_wide_s8":
                    "tt_conv_depthwise_pointwise_chain_source_wide_s8",
                "tt_conv2d_s8": "tt_conv2d_source_s8"}


@dataclass
class Step:
    op: int                    # operator index in the training model
    kind: str
    call: KernelCall | None    # None: nothing to run (a view, TT_INIT)
    training: bool             # runs only in tt_train_step (TT_* ops)
    note: str = ""             # what the generated comment says beside the call


@dataclass
class Program:
    graph: Graph
    model: bytes
    steps: list[Step]
    plan: memory.CodegenPlan
    arena_tensors: set[int]
    views: dict[int, int]            # tensor -> the tensor whose storage it is (outside the arena)
    splits: dict[int, Split]
    params: list[tuple[int, int]]    # (initial-value constant, trained variable), TT_INIT order
    momentum: list[int]
    updates: list[tuple[int, int]]   # (update op, parameter), in execution order: state index
    sample: int
    label: int
    scores: int
    loss: int
    meta: dict = field(default_factory=dict)
    streamed: list[int] = field(default_factory=list)   # first operators of 3-layer streams
    rows: RowInput | None = None     # the sample read row by row (build(input_rows=True))
    # operator -> bytes of its DSP staging held in its own function's stack frame, not in
    # the arena (stage_on_stack)
    stack_stages: dict[int, int] = field(default_factory=dict)
    # update ops of batch B > 1 (batch.py): operator -> its composition; their accumulators
    # (float32 SRAM arrays, by tensor index)
    batched: dict[int, batch.Batched] = field(default_factory=dict)

    @property
    def accumulators(self) -> list[int]:
        return sorted(b.accumulator for b in self.batched.values())

    @property
    def residuals(self) -> list[int]:
        """The weight updates' rounding residuals (int8 SRAM arrays, zeroed by
        tt_model_init() as momentum buffers are), by tensor index."""
        from ..training_ops import residual_tensors
        return sorted(residual_tensors(self.graph))

    @property
    def classes(self) -> int:
        return self.graph.tensors[self.scores].size

    def storage_of(self, tensor: int) -> int:
        """The tensor whose storage `tensor` uses (itself unless a view of a non-arena one)."""
        while tensor in self.views:
            tensor = self.views[tensor]
        return tensor

    def param_bytes(self, tensor: int) -> int:
        """SRAM bytes of a trained parameter (only the trained channels of a split one)."""
        t = self.graph.tensors[tensor]
        split = self.splits.get(tensor)
        if split is None:
            return t.nbytes
        return int(np.prod(split.shape("lo"))) * np.dtype(t.dtype).itemsize

    def checkpoint_regions(self) -> list[tuple[checkpoint.Region, int]]:
        """The checkpoint's regions in checkpoint.layout's order (a split filter's region: its
        SRAM part, which `export --state` completes with the frozen channels) and bytes."""
        partial = {w: s.k for w, s in self.splits.items()}
        return [(r, r.nbytes) for r in checkpoint.layout(self.graph, partial)]


# --- which operators a partially trained filter is read by, and how the call changes ----------

# kernel -> (the argument that reads the filter, the kernel of the split form); the split form
# takes `<name>_lo, k, <name>_hi` in place of the filter and every other argument by name
SPLIT_READERS = {
    "tt_conv2d_s8": ("filter", "tt_conv2d_split_s8"),
    "tt_fully_connected_s8": ("weights", "tt_fully_connected_split_s8"),
    "tt_conv2d_input_grad_f32": ("w", "tt_conv2d_input_grad_split_f32"),
    "tt_fully_connected_input_grad_f32": ("w", "tt_fully_connected_input_grad_split_f32"),
    "tt_conv2d_input_grad_s8": ("w", "tt_conv2d_input_grad_split_s8"),
    "tt_fully_connected_input_grad_s8": ("w", "tt_fully_connected_input_grad_split_s8"),
}
# in-place updates of the trained channels: the argument holding the filter and the one
# holding its input-channel count, which becomes k (the SRAM part is a whole [.., k] filter)
SPLIT_UPDATERS = {
    "tt_conv2d_weight_update_s8": ("w", "ci"),
    "tt_fully_connected_weight_update_s8": ("w", "depth"),
    "tt_conv2d_weight_update_s8_s8": ("w", "ci"),
    "tt_fully_connected_weight_update_s8_s8": ("w", "depth"),
    "tt_update_weight_s8": ("w", None),
    # the same with a rounding residual (shaped like the trained region: unchanged by a split)
    "tt_fully_connected_weight_update_residual_s8": ("w", "depth"),
    "tt_fully_connected_weight_update_residual_s8_s8": ("w", "depth"),
    "tt_update_weight_residual_s8": ("w", None),
}


def _reads(call: KernelCall, op, tensor: int) -> list[str]:
    """Names of the call's arguments that read `tensor`."""
    return [p.name for p, a in zip(call.signature.params, call.args)
            if isinstance(a, In) and not a.value and op.inputs[a.k] == tensor]


def _split_call(call: KernelCall, split: Split) -> KernelCall:
    if call.name in SPLIT_READERS:
        name, kernel = SPLIT_READERS[call.name]
        old = dict(zip((p.name for p in call.signature.params), call.args))
        args = []
        for p in K.signatures()[kernel].params:
            if p.name == f"{name}_lo":
                args.append(SplitPart(split.tensor, "lo"))
            elif p.name == f"{name}_hi":
                args.append(SplitPart(split.tensor, "hi"))
            elif p.name == "k":
                args.append(split.k)
            else:
                args.append(old[p.name])
        return KernelCall(kernel, args).check()
    name, count = SPLIT_UPDATERS[call.name]
    args = list(call.args)
    sig = call.signature
    args[sig.index(name)] = SplitPart(split.tensor, "lo")
    if count is not None:
        args[sig.index(count)] = split.k
    else:                                   # tt_update_weight[_residual]_s8: its dims
        args[sig.index("dims")] = K.i32(split.shape("lo"))
    return KernelCall(call.name, args).check()


def _splits(graph: Graph, calls: dict[int, KernelCall]) -> dict[int, Split]:
    """Trained filters whose update touches fewer than all input channels and whose every
    reader has a split form."""
    trained: dict[int, int] = {}
    # a batched fused update reads the filter in its update call, not in the gradient
    # kernel it is planned with (batch.py)
    updates = {k: b.update for k in calls if (b := batch.describe(graph, k)) is not None}
    for k, op in enumerate(graph.operators):
        call = updates.get(k, calls.get(k))
        if call is None or call.name not in SPLIT_UPDATERS:
            continue
        o = options_of(op)
        w = op.inputs[0 if op.kind == "TT_UPDATE_WEIGHT" else 3]
        depth = graph.tensors[w].shape[-1]
        if o.get("axis", 0) == 0 and 0 < o["channels"] < depth:
            trained[w] = o["channels"]
    out = {}
    for w, k in trained.items():
        ok = True
        for j, op in enumerate(graph.operators):
            if w not in op.inputs or op.kind == "TT_INIT":
                continue
            call = updates.get(j, calls.get(j))
            names = _reads(call, op, w) if call is not None else ["?"]
            allowed = {SPLIT_READERS.get(call.name, (None,))[0],
                       SPLIT_UPDATERS.get(call.name, (None,))[0]} if call else set()
            if not names or any(n not in allowed for n in names):
                ok = False
        if ok:
            t = graph.tensors[w]
            out[w] = Split(w, k, tuple(t.shape))
    return out


# --- row streaming: a pointwise layer fused with the depthwise layer that reads it --------------

def _fusable(graph: Graph, calls: dict[int, KernelCall], consumers: dict[int, list[int]],
             k: int) -> bool:
    """Operator k (a 1x1 stride-1 unpadded CONV_2D of batch 1) whose output only operator
    k + 1, a strided DEPTHWISE_CONV_2D, reads: tt_pointwise_depthwise_s8 runs the two
    without the pointwise output (a quarter of it stays: the depthwise output)."""
    if k + 1 >= len(graph.operators):
        return False
    pw, dw = graph.operators[k], graph.operators[k + 1]
    a, b = calls.get(k), calls.get(k + 1)
    if a is None or b is None or a.name != "tt_conv2d_s8" or \
            b.name != "tt_depthwise_conv2d_s8":
        return False
    mid = pw.outputs[0]
    if dw.inputs[0] != mid or consumers.get(mid) != [k + 1] or mid in graph.outputs:
        return False
    p, q = a.args[0], b.args[0]
    w = graph.tensors[pw.inputs[1]]
    x = graph.tensors[pw.inputs[0]]
    return (w.shape[1:3] == (1, 1) and p.stride_h == p.stride_w == 1 and p.pad_top == 0
            and p.pad_left == 0 and x.shape[0] == 1 and q.stride_h * q.stride_w > 1)


def _fused_call(graph: Graph, pw_call: KernelCall, dw_call: KernelCall, k: int
                ) -> tuple[KernelCall, int]:
    """The tt_pointwise_depthwise_s8 call for operators k, k + 1 and its window bytes."""
    pw = graph.operators[k]

    def ref(a):
        return TensorArg(pw.inputs[a.k]) if isinstance(a, In) and pw.inputs[a.k] >= 0 \
            else (None if isinstance(a, In) else a)
    pp, pm, ps, pin_dims, pin, pf_dims, pf, pbias, _, _ = pw_call.args
    dp, dm, ds, mid_dims, _, df_dims, df, dbias, out_dims, out = dw_call.args
    window = int(K.host_call("tt_pointwise_depthwise_s8_window_bytes", dp, mid_dims, df_dims,
                             out_dims))
    call = KernelCall("tt_pointwise_depthwise_s8",
                      [pp, pm, ps, pin_dims, ref(pin), pf_dims, ref(pf), ref(pbias),
                       dp, dm, ds, mid_dims, df_dims, df, dbias, out_dims, out,
                       Scratch(window)])
    return call.check(), window


def _fused_over_input(graph: Graph, call: KernelCall, k: int) -> memory.AliasRequest | None:
    """The request that the fused pair k, k + 1 write its output over the pointwise input,
    `tt_pointwise_depthwise_s8_shift` bytes before it (the input rows are read from the top
    as the output rows are written), where that saves bytes."""
    pw, dw = graph.operators[k], graph.operators[k + 1]
    x_dims, dp, mid_dims, df_dims, out_dims = (call.args[i] for i in (3, 8, 11, 12, 15))
    shift = int(K.host_call("tt_pointwise_depthwise_s8_shift", dp, x_dims, mid_dims, df_dims,
                            out_dims))
    x, y = graph.tensors[pw.inputs[0]].nbytes, graph.tensors[dw.outputs[0]].nbytes
    if max(y, shift + x) >= x + y:
        return None
    return memory.AliasRequest(k + 1, dw.outputs[0], pw.inputs[0], view=False, shift=shift)


def _block(graph: Graph, calls: dict[int, KernelCall], consumers: dict[int, list[int]],
           k: int) -> bool:
    """Operators k, k + 1, k + 2: a CONV_2D of batch 1, the DEPTHWISE_CONV_2D alone reading
    its output and the 1x1 stride-1 unpadded CONV_2D alone reading that one's:
    tt_conv_depthwise_pointwise_packed_s8 runs the three (an inverted-residual block, or a stem
    convolution and the block after it) without either tensor between them."""
    if k + 2 >= len(graph.operators):
        return False
    a, d, c = (calls.get(j) for j in (k, k + 1, k + 2))
    if a is None or d is None or c is None or a.name != "tt_conv2d_s8" or \
            d.name != "tt_depthwise_conv2d_s8" or c.name != "tt_conv2d_s8":
        return False
    ops = graph.operators[k:k + 3]
    for j in (0, 1):
        mid = ops[j].outputs[0]
        if ops[j + 1].inputs[0] != mid or consumers.get(mid) != [k + j + 1] or \
                mid in graph.outputs:
            return False
    p = c.args[0]
    return (graph.tensors[ops[2].inputs[1]].shape[1:3] == (1, 1) and p.stride_h == p.stride_w == 1
            and p.pad_top == 0 and p.pad_left == 0 and a.args[3].n == 1)


def _block_call(graph: Graph, calls: dict[int, KernelCall], k: int
                ) -> tuple[KernelCall, int, memory.AliasRequest | None]:
    """The tt_conv_depthwise_pointwise_packed_s8 call for operators k .. k + 2 (it runs at
    k + 2; its pack NULL: dw_pack.place lends one where the arena is free), its window bytes,
    and the request to write its output over the first one's input where that saves bytes."""
    ops = graph.operators[k:k + 3]

    def ref(op):
        return lambda a: TensorArg(op.inputs[a.k]) if isinstance(a, In) and op.inputs[a.k] >= 0 \
            else (None if isinstance(a, In) else a)
    ra, rd = ref(ops[0]), ref(ops[1])
    ap, am, as_, x_dims, x, af_dims, af, ab, mid_dims, _ = calls[k].args
    dp, dm, ds, _, _, df_dims, df, db, dout_dims, _ = calls[k + 1].args
    pp, pm, ps, _, _, pf_dims, pf, pb, y_dims, y = calls[k + 2].args
    window = int(K.host_call("tt_conv_depthwise_pointwise_s8_window_bytes", dp, mid_dims,
                             df_dims, dout_dims))
    call = KernelCall("tt_conv_depthwise_pointwise_packed_s8",
                      [ap, am, as_, x_dims, ra(x), af_dims, ra(af), ra(ab),
                       dp, dm, ds, mid_dims, df_dims, rd(df), rd(db),
                       pp, pm, ps, dout_dims, pf_dims, pf, pb, y_dims, y, Scratch(window), None])
    shift = int(K.host_call("tt_conv_depthwise_pointwise_s8_shift", ap, x_dims, af_dims, dp,
                            mid_dims, df_dims, y_dims))
    xb, yb = graph.tensors[ops[0].inputs[0]].nbytes, graph.tensors[ops[2].outputs[0]].nbytes
    over = None
    if _together(xb, yb, shift) < xb + yb:
        over = memory.AliasRequest(k + 2, ops[2].outputs[0], ops[0].inputs[0], view=False,
                                   shift=shift)
    return call.check(), window, over


def _chain(graph: Graph, streamed: list[int], consumers: dict[int, list[int]]) -> int | None:
    """The first operator of the three-layer stream reading the sample row by row whose
    output only the next stream reads (operators k .. k + 5): tt_conv_depthwise_pointwise_chain_s8
    runs the two without that output ever whole (MobileNetV2's 64x64x8 blocks.0 output, 32 KB,
    the forward's peak with the streams apart); None where there is none."""
    sample = graph.inputs[0]
    for k in streamed:
        out = graph.operators[k + 2].outputs[0]
        if graph.operators[k].inputs[0] == sample and k + 3 in streamed and \
                consumers.get(out) == [k + 3] and out not in graph.outputs:
            return k
    return None


def _chain_call(graph: Graph, first: KernelCall, second: KernelCall, k: int) -> KernelCall:
    """The chained call of the streams at operators k .. k + 2 and k + 3 .. k + 5
    (_block_call's calls: the second reads the first's output), run at k + 5; each stream's
    depthwise layer packed (its pack in the chain's scratch, a few hundred bytes a group of
    four channels, while the forward's peak is elsewhere), and the ring of the first's
    output rows the second's first layer reads at a time."""
    # the first's own operands (its projection's filter and bias) by tensor: an In of the
    # call would be operator k + 5's
    last = graph.operators[k + 2]
    first = KernelCall(first.name, [
        (TensorArg(last.inputs[a.k]) if last.inputs[a.k] >= 0 else None)
        if isinstance(a, In) and not a.value else a for a in first.args])
    one, two = stream_args.named(first.name, first.args), stream_args.named(second.name,
                                                                           second.args)
    x_dims = one["output_dims"]                     # the first's output: the second's input
    a, f_dims = two["a"], two["a_filter_dims"]
    span = min((f_dims.h - 1) * a.dilation_h + 1, x_dims.h)

    def pack(call):
        n = dw_pack.pack_bytes(call)
        return Scratch(n) if n > 0 else None
    # the second's arguments as the chain names them: its first layer `b`, the rest b_*
    chain = {**one, "pack": pack(first), "ring": Scratch(span * x_dims.w * x_dims.c),
             **{("b" + n[1:] if n == "a" or n.startswith("a_") else "b_" + n): v
                for n, v in two.items()}, "b_pack": pack(second)}
    name = "tt_conv_depthwise_pointwise_chain_s8"
    return KernelCall(name, stream_args.flat_values(name, chain)).check()


# --- in place: kernels that write their output over their input --------------------------------

def _inplace_call(graph: Graph, op, call: KernelCall) -> tuple[KernelCall, dict] | None:
    """(the call that writes op's output over its input 0, the AliasRequest's fields) where a
    kernel can: a depthwise convolution (a ring of output rows), a convolution row by row
    (its output starting `shift` bytes before its input), the input gradient of a stride-1
    depthwise layer (float32: a ring of dx rows; int8: dx starting a few rows before dy)."""
    if call.name == "tt_depthwise_conv2d_s8":
        inplace = c_forward.inplace_depthwise_call(graph, op)
        if inplace is None:
            return None
        ring = next(a.nbytes for a in inplace.args if isinstance(a, Scratch))
        return inplace.check(), {"view": False, "scratch": ring}
    if call.name == "tt_conv2d_s8":
        p, _, _, x_dims, _, f_dims, _, _, y_dims, _ = call.args
        if x_dims.n != 1:
            return None
        x, y = graph.tensors[op.inputs[0]].nbytes, graph.tensors[op.outputs[0]].nbytes
        # top down, the output starting `shift` bytes before the input, or bottom up, `lead`
        # bytes after it (shift = -lead): the form whose two tensors take fewer bytes
        shift = int(K.host_call("tt_conv2d_rows_s8_shift", p, x_dims, f_dims, y_dims))
        lead = int(K.host_call("tt_conv2d_rows_reverse_s8_lead", p, x_dims, f_dims, y_dims))
        name = "tt_conv2d_rows_s8"
        # (ties stay top down: either can place better in the whole plan, and bottom up
        # fragmented MCUNet's float32 one by 0.5 KB)
        if lead > 0 and max(x, lead + y) < max(y, shift + x):
            name, shift = "tt_conv2d_rows_reverse_s8", -lead
        if _together(x, y, shift) >= x + y:
            return None                    # overlapping would save nothing
        return KernelCall(name, list(call.args)).check(), {"view": False, "shift": shift}
    if call.name == "tt_depthwise_conv2d_input_grad_s8":
        sig = call.signature
        geometry = [call.args[sig.index(name)] for name in
                    ("n", "oh", "ow", "c", "m", "kh", "kw", "win", "h", "wd")]
        lead = int(K.host_call("tt_depthwise_conv2d_input_grad_over_s8_lead", *geometry))
        if lead < 0:
            return None
        # the plan's offsets are CODEGEN_ALIGN-aligned, and dx may start further back only
        # by whole positions (the DSP walk's channel blocks write their own channels over
        # dy's same channels): the least multiple of both at or beyond the lead
        step = math.lcm(int(geometry[3]), memory.CODEGEN_ALIGN)
        lead = -(-lead // step) * step
        # (a strided layer's dx is larger: dy may lie within its tail)
        x, y = graph.tensors[op.inputs[0]].nbytes, graph.tensors[op.outputs[0]].nbytes
        if _together(x, y, lead) >= x + y:
            return None
        return KernelCall("tt_depthwise_conv2d_input_grad_over_s8",
                          list(call.args)).check(), {"view": False, "shift": lead}
    if call.name == "tt_depthwise_conv2d_input_grad_f32":
        dy, mask, n, oh, ow, c, m, w, scales, kh, kw, win, h, wd, _ = call.args
        ring = int(K.host_call("tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes", n, oh,
                               ow, c, m, kh, kw, win, h, wd, int(mask is not None)))
        if ring <= 0:
            return None
        return KernelCall("tt_depthwise_conv2d_input_grad_inplace_f32",
                          [dy, mask, n, oh, ow, c, m, w, scales, kh, kw, win, h, wd,
                           Scratch(ring)]).check(), {"view": False, "scratch": ring}
    return None


def _together(x: int, y: int, shift: int) -> int:
    """Bytes an input of x and an output of y bytes take when the output starts `shift`
    bytes before the input (after it when negative)."""
    return max(y, shift + x) if shift >= 0 else max(x, y - shift)


def _without_needless_rows(graph: Graph, plan: memory.CodegenPlan, arena: set[int],
                           scratch: dict, requests: list, reads: dict, rows: set[int]
                           ) -> memory.CodegenPlan:
    """A convolution row by row costs a kernel call per row (a few % of the forward's
    instructions): keep it only where the arena needs it. Those whose operator would stay
    within the arena with input and output apart are planned again without; the plan with
    fewer is kept unless its arena is larger. `rows`: the operators whose granted request
    means a row-by-row kernel."""
    needless = set()
    for r in plan.aliases:
        if r.op in rows:
            x, y = graph.tensors[r.input].nbytes, graph.tensors[r.output].nbytes
            together = _together(x, y, r.shift)
            if plan.live[r.op] - together + x + y <= plan.arena_bytes:
                needless.add(r)
    if not needless:
        return plan
    fewer = memory.codegen_plan(graph, arena, scratch, [r for r in requests if r not in needless],
                                reads)
    return fewer if fewer.arena_bytes <= plan.arena_bytes else plan


def hoist_bias_updates(graph: Graph) -> Graph:
    """The graph with each bias update moved up to just after the last operator making what
    it reads (its dy and mask): it writes only its bias, which nothing after the loss reads,
    and has its own random stream, so the step computes the same; and dy no longer has to
    outlive the input gradient computed from it, which may then overwrite it."""
    order = list(graph.operators)
    for op in graph.operators:
        if op.kind not in ("TT_BIAS_UPDATE", "TT_UPDATE_BIAS"):
            continue
        order.remove(op)
        made = {t: j for j, o in enumerate(order) for t in o.outputs}
        after = max((made[t] for t in op.inputs if t in made), default=-1)
        order.insert(after + 1, op)
    if order == graph.operators:
        return graph
    return Graph(graph.tensors, order, graph.inputs, graph.outputs, graph.name,
                 graph.description, graph.metadata, graph.version)


# --- the program -------------------------------------------------------------------------------

def _check_interface(graph: Graph) -> tuple[int, int, int, int]:
    training_metadata(graph)                 # a model augment did not write is refused here
    if len(graph.inputs) != 2 or len(graph.outputs) != 2:
        raise CodegenError(f"the training model has {len(graph.inputs)} inputs and "
                           f"{len(graph.outputs)} outputs; the generated API takes one sample "
                           "and a label and gives one output and the loss")
    sample, label = graph.inputs
    scores, loss = graph.outputs
    s, l_, y, lo = (graph.tensors[i] for i in (sample, label, scores, loss))
    if s.dtype != "int8":
        raise CodegenError(f"the model's input {s.name!r} is {s.dtype}; the generated "
                           "tt_train_step takes an int8 sample")
    if y.dtype != "int8":
        raise CodegenError(f"the model's output {y.name!r} is {y.dtype}; the generated "
                           "tt_predict gives int8 scores")
    if l_.dtype != "int32" or lo.dtype != "float32":
        raise ModelError("not a training model written by augment (label/loss types)")
    return sample, label, scores, loss


def kernel_call(graph: Graph, k: int) -> KernelCall | None:
    op = graph.operators[k]
    if op.kind == "TT_INIT":
        return None
    if batch_of(op) > 1:
        return batch.kernel_call(graph, k)
    call = c_kernels.kernel_call(graph, op) if op.kind.startswith("TT_") else \
        c_forward.kernel_call(graph, op)
    if call is None:
        shapes = " ".join("x".join(map(str, graph.tensors[i].shape)) + ":" + graph.tensors[i].dtype
                          for i in op.inputs[:1] if i >= 0)
        raise CodegenError(f"operator {k} ({op.kind}, input {shapes}) has no C kernel: "
                           "the generated program cannot run it")
    assert not isinstance(call, K.BatchCall), "batch.kernel_call describes those"
    return call


def _calls(graph: Graph) -> dict[int, KernelCall]:
    calls = {k: kernel_call(graph, k) for k in range(len(graph.operators))}
    return {k: c for k, c in calls.items() if c is not None}


def blocks(graph: Graph, calls: dict[int, KernelCall] | None = None) -> list[int]:
    """First operators of every three-layer stream (_block) the graph allows, in order and
    not overlapping, split filters excluded."""
    calls = calls if calls is not None else _calls(graph)
    splits = _splits(graph, calls)
    consumers = graph.consumers()
    out: list[int] = []
    for k in range(len(graph.operators)):
        if (not out or k > out[-1] + 2) and _block(graph, calls, consumers, k) and \
                not any(w in splits for op in graph.operators[k:k + 3] for w in op.inputs):
            out.append(k)
    return out


def _row_input(graph: Graph, calls: dict[int, KernelCall], streamed: list[int],
               skipped: set[int], fused: dict[int, KernelCall]) -> RowInput:
    """Where the sample is read row by row, or CodegenError saying why it cannot be: its one
    reader must be a convolution of batch 1 (alone, or the first of a three-layer stream)
    that nothing else needs the whole sample for (a trained first layer's weight gradient,
    which reads it in the backward, does)."""
    sample = graph.inputs[0]
    readers = [k for k, op in enumerate(graph.operators) if sample in op.inputs]
    x = graph.tensors[sample]
    why = None
    if len(readers) != 1:
        kinds = ", ".join(f"{k} ({graph.operators[k].kind})" for k in readers)
        why = (f"{len(readers)} operators read the sample ({kinds}): the backward needs the "
               "whole sample (a trained first layer)" if len(readers) > 1 else
               "no operator reads the sample")
    elif len(x.shape) != 4 or x.shape[0] != 1:
        why = f"the sample is {_shape_text(x.shape)}, not one NHWC image"
    else:
        k = readers[0]
        # a stream runs at its last operator, a chain (_chain) at its second stream's
        at = max((j for j in fused if j > k and all(i in skipped for i in range(k, j))),
                 default=k)
        call = calls.get(k)
        kernel = None
        if graph.operators[k].inputs[0] == sample and k in streamed:
            kernel = fused[at].name
        elif graph.operators[k].inputs[0] == sample and call is not None and \
                call.name == "tt_conv2d_s8" and k not in skipped:
            kernel = "tt_conv2d_s8"
        if kernel is None:
            why = (f"operator {k} ({graph.operators[k].kind}) reads the sample and has no "
                   "row-by-row form")
        elif kernel not in SOURCE_FORMS:
            # a 1x1 first layer streamed into its depthwise (tt_pointwise_depthwise*): that
            # stream has no tt_row_source form
            why = (f"operator {k} ({graph.operators[k].kind}) reads the sample in {kernel}, "
                   "which has no row-by-row form")
    if why is not None:
        raise CodegenError(f"--input rows: {why}; generate it with --input arena")
    f_dims = calls[k].args[5]
    p = calls[k].args[0]
    span = min((f_dims.h - 1) * p.dilation_h + 1, x.shape[1])
    row_bytes = x.shape[2] * x.shape[3]
    # the ring: the call's scratch after its own ones (_layout appends it)
    own = sum(isinstance(a, Scratch) for a in (fused[at] if at in fused else calls[k]).args)
    return RowInput(at, SOURCE_FORMS[kernel], x.shape[1], row_bytes, span, own)


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


def _staged(calls: dict[int, KernelCall], stages: dict[int, int] | None
            ) -> dict[int, KernelCall]:
    """The calls with their DSP staging (kernel_calls.Staging) cut to `stages[k]` bytes at
    operator k (none where it is absent; stages None: none anywhere)."""
    stages = stages or {}
    return {k: c_kernels.staged_within(c, stages.get(k, 0)) for k, c in calls.items()}


def staging_ops(graph: Graph) -> dict[int, int]:
    """Operator -> the bytes of DSP staging its kernel asks for (int8-gradient kernels with a
    Cortex-M DSP version, tt_kernels.h: tt_*_stage_bytes)."""
    out = {}
    for k, call in _calls(graph).items():
        for a in call.args:
            if isinstance(a, Staging):
                out[k] = a.nbytes
    return out


def _staging_levels(call: KernelCall, most: int) -> list[int]:
    """The distinct stagings (bytes) `call`'s kernel takes from at most `most` bytes,
    largest first, 0 excluded: a limit between two of them buys nothing over the lower."""
    stage = next(a for a in call.args if isinstance(a, Staging))
    levels, limit = [], most
    while limit > 0:
        n = stage.within(limit)
        if n <= 0:
            break
        levels.append(n)
        limit = n - 8
    return levels


def level_staging(graph: Graph, arena_of, ceiling: int) -> dict[int, int]:
    """How much of its DSP staging each operator gets, by its kernel's levels
    (_staging_levels): operator by operator, the largest asked for first, the largest level
    that keeps `arena_of(graph, stages)` (the arena with those) within `ceiling` (searched
    by bisection: the arena grows with the staging but for the placement's accidents). The
    staging lives in the arena, not on the kernel's stack (there it was the program's
    deepest frames, 8-9 KB; the rig's painted stack went 10.5 -> 5.8 KB when it moved), so
    the ceiling is the smallest arena without any staging, or the arena limit where larger:
    letting it grow by what the stack saved cost MobileNetV2's row-API program 4.5 KB of
    arena for 1.7 M instructions (round 8). Round 8's rule, one limit in bytes for every
    operator shrunk by the arena's excess, left bytes below a kernel's next level unused (a
    pointwise weight gradient took 4,608 or 2,176 B, nothing from less) and its uniform
    shrinking took from operators where the arena had room: MobileNetV2's row-API program
    (36,232 B of arena either way), with widen_staging after it, 55.60 -> 54.47 M
    instructions a step (2-step probes), MCUNet's 80.31 -> 72.49 M; raising that rule's
    result instead of starting from none: 54.99 and 72.70 M. (Other orders from none, the
    smallest asked first, the last operator first, the kernels with few levels first: the
    same MobileNetV2 program; MCUNet's arena grew to 40,964-41,120 B.)"""
    wanted = staging_ops(graph)
    calls = _calls(graph)
    stages: dict[int, int] = {}
    for k in sorted(wanted, key=lambda k: (-wanted[k], k)):
        levels = _staging_levels(calls[k], wanted[k])
        lo, hi, best = 0, len(levels), None   # levels descending: the first that fits
        while lo < hi:
            mid = (lo + hi) // 2
            if arena_of(graph, {**stages, k: levels[mid]}).arena_bytes <= ceiling:
                best, hi = levels[mid], mid
            else:
                lo = mid + 1
        if best is not None:
            stages[k] = best
    return stages


def widen_staging(graph: Graph, calls: dict[int, KernelCall], plan: memory.CodegenPlan
                  ) -> dict[int, int]:
    """Each DSP staging below what its kernel asks for widened into the largest run of the
    planned arena free during its operator (memory.place_in_free_run, its own staging's
    bytes counted free), the plan otherwise unchanged: a staging lives during its operator
    only, so it takes nothing from another operator, while level_staging's trials place the
    whole arena again and see only whether it still fits (MCUNet's row-API program, 2-step
    probes: 80.96 M a step without this, 72.49 M with it). Before the lending
    (lend_scratch), which takes what is left (lending first: 73.29 M). Sets the calls and
    the plan's buffers; returns operator -> bytes widened to."""
    full = _calls(graph)
    widened = {}
    for k, want in sorted(staging_ops(graph).items()):
        call = calls.get(k)
        if call is None or "stage" not in [p.name for p in call.signature.params]:
            continue
        i = call.signature.index("stage")
        now = call.args[i].nbytes if isinstance(call.args[i], Staging) else 0
        if now >= want:
            continue
        j = sum(isinstance(a, Scratch) for a in call.args[:i])   # its scratch number
        name = f"scratch{j}@{k}:{graph.operators[k].kind}"
        old = None
        if now > 0:
            at = [x for x, b in enumerate(plan.buffers) if b.op == k][j]
            old = (at, plan.buffers.pop(at), plan.offsets.pop(at))
        stage = full[k].args[full[k].signature.index("stage")]
        room = min(memory.free_run(plan, k)[1], want)
        n = stage.within(room) if room > 0 else 0      # (a limit of 0 means none)
        if n > now and memory.place_in_free_run(plan, k, name, n, j):
            calls[k] = KernelCall(call.name, call.args[:i] + [Staging(n, stage.within), n]
                                  + call.args[i + 2:])
            widened[k] = n
        elif old is not None:
            plan.buffers.insert(old[0], old[1])
            plan.offsets.insert(old[0], old[2])
    return widened


# int8 depthwise input gradients whose DSP staging may sit in a stack frame of its own
# (stage_on_stack), and the bytes it may take there
STACK_STAGED = {"tt_depthwise_conv2d_input_grad_s8", "tt_depthwise_conv2d_input_grad_over_s8"}
STACK_STAGE_BYTES = 2048


def stage_on_stack(graph: Graph, calls: dict[int, KernelCall], plan: memory.CodegenPlan,
                   room: int = STACK_STAGE_BYTES) -> dict[int, int]:
    """The int8 depthwise input gradients whose DSP staging takes more from `room` bytes of
    stack than the arena gave it (level_staging, widen_staging): their staging moves to a
    local array of a function that makes only that call (emit), and its arena buffer leaves
    the plan (the lending, after this, may use those bytes). The stack has the room there:
    its high-water is the pointwise input gradient's path (staged_walk's frame holds that
    kernel's own staging, TT_GRAD_DSP_STAGE_BYTES: 3,744 B with --lean-stack, -O2,
    -fstack-usage), and a depthwise gradient's path is shallower by about that staging
    (over_s8 88 + input_grad_s8 288 + tt_dsp_depthwise_input_grad_s8 216 + walk 1,488 B,
    the jump tables on walk's stack, + the tap sums' frames, up to 128 B, + the second
    pass's stream states, up to 256 B, under prune_walk's 264 B: DW_STACK_STATES), so the array makes
    it the deeper one by what it takes past about 1.9 KB. MobileNetV2's 113 KB program (its
    backward's peak leaves these gradients 1-2.4 KB of arena staging), painted stack and SRAM
    with round 13's kernels (1 step, the review's runs): 2,400 B 5,480 B, 116,016 B (304 B
    over 113 KB); 2,048 B 5,008 B, 115,544 B (168 B under); 1,800 B 4,932 B; with round 14's
    at 2,048 B (3 steps): 5,016 B, 115,552 B. Sets the calls;
    returns operator -> bytes on the stack."""
    full = _calls(graph)
    moved = {}
    for k, call in sorted(calls.items()):
        if call.name not in STACK_STAGED:
            continue
        i = call.signature.index("stage")
        now = call.args[i].nbytes if isinstance(call.args[i], Staging) else 0
        stage = full[k].args[full[k].signature.index("stage")]
        if not isinstance(stage, Staging):     # a kernel that stages nothing for this layer
            continue
        n = stage.within(room)
        if n <= now:
            continue
        if now > 0:        # the arena's staging is the operator's last scratch buffer
            j = sum(isinstance(a, Scratch) for a in call.args[:i])
            at = [x for x, b in enumerate(plan.buffers) if b.op == k][j]
            plan.buffers.pop(at)
            plan.offsets.pop(at)
        calls[k] = KernelCall(call.name, call.args[:i] + [Staging(n, stage.within), n]
                              + call.args[i + 2:])
        moved[k] = n
    return moved


def _layout(graph: Graph, outside: set[int], streamed: list[int] | None = None,
            input_rows: bool = False, stages: dict[int, int] | None = None,
            over_dy: bool = True):
    """The kernel calls, split filters, arena tensors, views, fused operators, in-place
    calls and the arena's plan of a training graph (`outside`: tensors the caller holds;
    `streamed`: first operators of the three-layer streams to run, by default none;
    `input_rows`: the sample is read row by row, outside the arena but for the ring of rows
    the call that reads it keeps, _row_input; `stages`: the DSP staging of each operator,
    level_staging, by default none; `over_dy`: False, no int8 gradient over its dy, OVER_DY)."""
    calls = _staged(_calls(graph), stages)
    splits = _splits(graph, calls)

    # views of tensors outside the arena (a RESHAPE of a constant) share their storage
    views: dict[int, int] = {}
    arena = set()
    for i, t in enumerate(graph.tensors):
        if not t.is_constant and not t.is_variable and t.nbytes > 0 and i not in outside:
            arena.add(i)
    requests: list[memory.AliasRequest] = []
    scratch: dict[int, list[int]] = {}
    inplace_calls: dict[int, KernelCall] = {}
    fused: dict[int, KernelCall] = {}          # the second operator of a fused pair -> call
    reads: dict[int, int] = {}
    consumers = graph.consumers()
    skipped: set[int] = set()                  # operators a stream runs inside another one
    for k in streamed or ():
        fused[k + 2], window, over = _block_call(graph, calls, k)
        skipped.update((k, k + 1))
        for j in (k, k + 1):
            arena.discard(graph.operators[j].outputs[0])
        reads[graph.operators[k].inputs[0]] = k + 2
        scratch[k + 2] = [window]
        if over is not None:
            requests.append(over)
    chain = _chain(graph, list(streamed or ()), consumers) if input_rows else None
    if chain is not None:
        k = chain
        fused[k + 5] = _chain_call(graph, fused.pop(k + 2), fused[k + 5], k)
        skipped.update((k + 2, k + 3, k + 4))
        middle = graph.operators[k + 2].outputs[0]
        arena.discard(middle)
        reads.pop(middle, None)
        requests = [r for r in requests if middle not in (r.input, r.output)]
        del scratch[k + 2]
        scratch[k + 5] = [a.nbytes for a in fused[k + 5].args if isinstance(a, Scratch)]
    for k in range(len(graph.operators)):
        if not {k, k + 1} & (skipped | set(fused)) and _fusable(graph, calls, consumers, k) \
                and not any(w in splits for w in graph.operators[k].inputs):
            fused[k + 1], window = _fused_call(graph, calls[k], calls[k + 1], k)
            skipped.add(k)
            arena.discard(graph.operators[k].outputs[0])
            reads[graph.operators[k].inputs[0]] = k + 1
            scratch[k + 1] = [window]
            over = _fused_over_input(graph, fused[k + 1], k)
            if over is not None:
                requests.append(over)
    for k, op in enumerate(graph.operators):
        call = calls.get(k)
        if call is None or k in fused or k in skipped:
            continue
        if op.kind in ("RESHAPE", "TT_RESHAPE_GRAD"):
            x, y = op.inputs[0], op.outputs[0]
            if x in arena:
                requests.append(memory.AliasRequest(k, y, x, view=True))
            else:
                views[y] = x
                arena.discard(y)
            continue
        if op.inputs and op.inputs[0] in arena and not any(w in splits for w in op.inputs):
            inplace = _inplace_call(graph, op, call)
            if inplace is not None and (over_dy or inplace[0].name not in OVER_DY):
                inplace_calls[k], request = inplace[0], inplace[1]
                requests.append(memory.AliasRequest(k, op.outputs[0], op.inputs[0], **request))
        if call.name in ("tt_add_s8", "tt_requantize_s8"):
            for j in ((0, 1) if call.name == "tt_add_s8" else (0,)):
                if op.inputs[j] in arena:
                    requests.append(memory.AliasRequest(k, op.outputs[0], op.inputs[j],
                                                        view=False))
        sizes = [a.nbytes for a in call.args if isinstance(a, Scratch)]
        if sizes:
            scratch[k] = sizes
    if input_rows:
        row_input = _row_input(graph, calls, list(streamed or ()), skipped, fused)
        scratch.setdefault(row_input.op, []).append(row_input.ring_rows * row_input.row_bytes)
    plan = memory.codegen_plan(graph, arena, scratch, requests, reads)
    rows = {k for k, c in inplace_calls.items() if c.name.startswith("tt_conv2d_rows")}
    plan = _without_needless_rows(graph, plan, arena, scratch, requests, reads, rows)
    return calls, splits, arena, views, fused, skipped, inplace_calls, plan


# input gradients whose dx overlaps dy (_inplace_call): their first pass keeps no
# accumulators in dx's bytes
OVER_DY = {"tt_depthwise_conv2d_input_grad_over_s8"}


def lend_scratch(graph: Graph, calls: dict[int, KernelCall], plan: memory.CodegenPlan,
                 arena_limit: int = 0) -> dict[int, int]:
    """The arena-aware split of the two-pass int8 input gradients: each keeps, besides the
    quarter of its accumulators that dx's own bytes hold, as many positions' accumulators
    as the arena has free at it (memory.lend_free_arena: the plan's largest free run there,
    so the arena does not grow, or grows up to `arena_limit`: a limit the one-pass forms
    left unused buys fewer recomputed positions), and its second pass computes only the
    rest again (same bits whatever the split, tt_kernels.h). Sets those calls' scratch and
    scratch_positions in `calls` and the buffers in `plan`; returns operator -> positions
    kept there."""
    wants, terms = {}, {}
    for k, call in calls.items():
        sig = call.signature
        if any(p.name == "scratch_positions" for p in sig.params) \
                and call.args[sig.index("scratch")] is None:
            dx = graph.tensors[graph.operators[k].outputs[0]]
            positions = dx.size // dx.shape[-1]
            # dx's quarter is kept in any case (the arena's offsets are 4-byte aligned),
            # but where dx overlaps dy (the first pass would overwrite dy there)
            in_dx = 0 if call.name in OVER_DY else positions // 4
            wants[k] = (4 * dx.shape[-1], positions - in_dx)
            terms[k] = _terms(call)

    def recomputed(lent: dict[int, int]) -> int:
        """The products the second passes compute again."""
        return sum((most - lent.get(k, 0)) * (unit // 4) * terms[k]
                   for k, (unit, most) in wants.items())
    # operator by operator, an earlier one's scratch may leave a later one less room: lent
    # in operator order, and with those whose elements sum the most first (a kept
    # accumulator saves its terms: MCUNet's 1x1 layers sum 48-576 an element, its depthwise
    # ones 9-64), the split that recomputes fewer products is kept (measured: the second
    # order on MCUNet, 332 K fewer instructions a step at its smallest arena; the first on
    # MobileNetV2, where the second costs 16 K)
    best = None
    orders = [sorted(wants), sorted(wants, key=lambda k: (-terms[k], k))]
    for order in orders[:1] if orders[0] == orders[1] else orders:
        trial = replace(plan, buffers=list(plan.buffers), offsets=list(plan.offsets))
        got = memory.lend_free_arena(trial, graph, {k: wants[k] for k in order}, arena_limit)
        score = (recomputed(got), trial.arena_bytes)
        if best is None or score < best[0]:
            best = (score, trial, got)
    _, trial, lent = best
    plan.buffers[:], plan.offsets[:] = trial.buffers, trial.offsets
    plan.arena_bytes, plan.order = trial.arena_bytes, trial.order
    for k, positions in lent.items():
        calls[k] = c_kernels.keeping(calls[k], positions, wants[k][0] // 4)
        # the plan holds the lent buffer as the operator's first scratch
        first = next(a for a in calls[k].args if isinstance(a, Scratch))
        assert first is calls[k].args[calls[k].signature.index("scratch")], calls[k].name
    return lent


def _terms(call: KernelCall) -> int:
    """The most products one dx element of an int8 input gradient sums (tt_kernels.h's
    `terms`): units (fully connected), kh * kw * m (depthwise), co * kh * kw."""
    names = [p.name for p in call.signature.params]
    arg = {n: a for n, a in zip(names, call.args)}
    if "units" in names:
        return int(arg["units"])
    taps = int(arg["kh"]) * int(arg["kw"])
    return taps * int(arg["m"]) if "m" in names else taps * int(arg["co"])


def choose_streams(graph: Graph, outside: set[int]) -> list[int]:
    """The three-layer streams (`blocks`) the arena needs: a stream calls its first two
    kernels once per row (a few % more instructions), so of all the graph allows, keep those
    whose operators would otherwise hold more than the arena with all of them streamed; the
    fewer are kept unless their arena is larger. Decided with two-pass int8 input gradients
    everywhere (the smallest arena those allow); the graph's passes are left as they were."""
    cand = blocks(graph)
    if not cand:
        return []
    grads = [op for op in graph.operators if op.kind in memory.INPUT_GRADS
             and "passes" in options_of(op)]
    before = [options_of(op)["passes"] for op in grads]
    for op in grads:
        set_option(op, "passes", 2)
    try:
        every = _layout(graph, outside, cand)[-1]
        alone = _layout(graph, outside, [])[-1]
        keep = [k for k in cand if max(alone.live[k:k + 3]) > every.arena_bytes]
        if keep != cand and _layout(graph, outside, keep)[-1].arena_bytes > every.arena_bytes:
            keep = cand
    finally:
        for op, n in zip(grads, before):
            set_option(op, "passes", n)
    return keep


def build(graph: Graph, model: bytes, arena_limit: int = 0, input_rows: bool = False
          ) -> Program:
    """Decides everything about the generated program; CodegenError when the graph has
    something no kernel runs. `arena_limit`: bytes the arena may grow to for speed (int8
    input gradients in one pass; by default the smallest arena decides). `input_rows`: the
    sample is not in the arena but read row by row by the layer that reads it (RowInput),
    from the caller's frame or a row reader; CodegenError when the graph needs it whole."""
    sample, label, scores, loss = _check_interface(graph)
    # augment's TFLM memory passes undone (same tensors): codegen plans memory its own way
    from ..passes.builtins import joined
    graph = hoist_bias_updates(joined(graph))
    init = next((op for op in graph.operators if op.kind == "TT_INIT"), None)
    if init is None:
        raise ModelError("training model without a TT_INIT op: nothing is trained")
    params = list(zip(init.inputs[0::2], init.inputs[1::2]))
    # int8 input gradients in one pass or two (the same bits): `augment` chose by TFLM's
    # arena, which streaming, in-place kernels and split filters make another one here;
    # choose again by this program's own arena
    outside = {label, loss} | ({sample} if input_rows else set())
    streamed = choose_streams(graph, outside)
    # the DSP gradient kernels' staging first, where it fits with two-pass gradients
    # everywhere (the smallest arena they allow), then one pass wherever its scratch fits
    # beside that staging: chosen the other way round, a one-pass gradient could take the
    # room under the arena that the staging then needed above it (with round 7's growth
    # allowance; an in-place gradient made that room in MobileNetV2's backward: 53.2 -> 57.7 KB)
    for op in graph.operators:
        if op.kind in memory.INPUT_GRADS and "passes" in options_of(op):
            set_option(op, "passes", 2)
    # a gradient over its dy keeps no accumulators in dx (more computed twice): where the
    # arena may grow to a limit that the smallest arena without them fits, none
    over = not arena_limit or \
        _layout(graph, outside, streamed, input_rows, over_dy=False)[-1].arena_bytes > arena_limit

    def layout(g, s=None):
        return _layout(g, outside, streamed, input_rows, s, over)[-1]
    stages = level_staging(graph, layout, max(layout(graph).arena_bytes, arena_limit))
    memory.choose_passes(graph, lambda g: layout(g, stages).arena_bytes, arena_limit)
    calls, splits, arena, views, fused, skipped, inplace_calls, plan = \
        _layout(graph, outside, streamed, input_rows, stages, over)
    granted = {r.op for r in plan.aliases}
    # the in-place forms the plan granted are the calls (the lending below sizes their
    # scratch, which may differ from the separate form's)
    calls.update({k: c for k, c in inplace_calls.items() if k in granted})
    widen_staging(graph, calls, plan)
    stack_stages = stage_on_stack(graph, calls, plan)
    lent = lend_scratch(graph, calls, plan, arena_limit)
    # the streams' depthwise layers packed once where the arena has room at them (after the
    # lending, whose placing again may shrink the arena, as it does for MCUNet)
    dw_pack.place(graph, fused, plan)
    row_input = _row_input(graph, calls, streamed, skipped, fused) if input_rows else None
    runs_in = {j: k for k in fused for j in skipped if j < k and
               all(i in skipped for i in range(j, k))}

    steps = []
    for k, op in enumerate(graph.operators):
        call = calls.get(k)
        note = ""
        if k in skipped:
            call, note = None, f"runs row by row inside operator {runs_in[k]}"
        elif k in fused:
            first = min(j for j, at in runs_in.items() if at == k)
            call, note = fused[k], (f"with operator{'s' if k - first > 1 else ''} "
                                    f"{', '.join(map(str, range(first, k)))}, row by row: "
                                    f"{'their outputs never exist' if k - first > 1 else 'its output never exists'} whole")
            if k in granted:
                note += "; the output over the input rows already read"
        elif op.kind in ("RESHAPE", "TT_RESHAPE_GRAD"):
            call, note = None, "a view of its input: nothing to run"
        elif k in inplace_calls and k in granted:
            note = ("row by row, the output over the input rows already read"
                    if call.name == "tt_conv2d_rows_s8" else
                    "row by row from the last, the output over the input rows already read"
                    if call.name == "tt_conv2d_rows_reverse_s8" else
                    ("dx over dy, from a few rows before it: over dy rows already read"
                     if graph.tensors[op.inputs[0]].nbytes ==
                     graph.tensors[op.outputs[0]].nbytes else
                     "dy within dx's tail: dx over dy positions already read")
                    if call.name in OVER_DY else
                    "in place: the output over its input")
        elif call is not None and k in granted:
            note = "in place: the output over an input read for the last time"
        if k in lent:
            dx = graph.tensors[op.outputs[0]]
            note = (note + "; " if note else "") + \
                (f"two passes, the first keeping the accumulators of {lent[k]} of dx's "
                 f"{dx.size // dx.shape[-1]} positions in free arena"
                 f"{'' if call.name in OVER_DY else ' (and a quarter in dx)'}")
        if k in stack_stages:
            note = (note + "; " if note else "") + \
                f"its DSP staging, {stack_stages[k]} B, on the stack in a function of its own"
        if call is not None:
            for w, split in splits.items():
                if w in op.inputs and _reads(call, op, w):
                    call = _split_call(call, split)
                    note = (note + "; " if note else "") + \
                        f"filter split: {split.k} of {split.depth} input channels in SRAM"
        steps.append(Step(k, op.kind, call, op.kind.startswith("TT_"), note))
    # frozen 1x1 filters pre-widened in flash where that saves the most instructions a byte
    # (the row input's call too where its kernel's form reading them has a source form)
    wide = layouts.choose(graph, {s.op: s.call for s in steps
                                  if row_input is None or s.op != row_input.op or
                                  layouts.STREAMS.get(s.call.name) in SOURCE_FORMS})
    if row_input is not None and row_input.op in wide:
        row_input = replace(row_input, kernel=SOURCE_FORMS[wide[row_input.op].name])
    steps = [replace(s, call=wide[s.op], note=(s.note + "; " if s.note else "") +
                     "the filter also pre-widened in flash") if s.op in wide else s
             for s in steps]
    momentum = sorted(m for _, _, m in checkpoint.update_ops(graph) if m >= 0)
    updates = [(k, p) for k, p, _ in checkpoint.update_ops(graph)]
    batched = {}
    for k in range(len(graph.operators)):
        b = batch.describe(graph, k)
        if b is None:
            continue
        if b.grad is None:            # a plain update: its step's call, split where it is
            b = replace(b, update=steps[k].call)
        else:
            op = graph.operators[k]
            for w, split in splits.items():
                if w in op.inputs and _reads(b.update, op, w):
                    b = replace(b, update=_split_call(b.update, split))
                    steps[k].note = (steps[k].note + "; " if steps[k].note else "") + \
                        f"filter split: {split.k} of {split.depth} input channels in SRAM"
            b = replace(b, grad=steps[k].call)          # with the staging the plan gave it
        batched[k] = b
    if row_input is not None:
        steps[row_input.op].note += ("; " if steps[row_input.op].note else "") + \
            "the sample's rows from a tt_row_source"
    return Program(graph, model, steps, plan, arena, views, splits, params, momentum, updates,
                   sample, label, scores, loss, training_metadata(graph), streamed, row_input,
                   stack_stages, batched)
