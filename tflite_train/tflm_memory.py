"""TFLM's persistent arena data for a model, on the target: a model of every allocation TFLM's
MicroAllocator makes in the arena's tail, parameterised by the target's struct sizes.

`memory.plan` gives the arena's head (TFLM's planner, reproduced); this module gives its
tail: the allocator objects, a TfLiteEvalTensor per tensor, a NodeAndRegistration per
operator, each builtin's parsed options ("builtin data"), each kernel's op data from its
Init and Prepare (TFLM's reference kernels and our glue, micro_kernels/tflm/), the scratch
buffer handles, the variables, and the TfLiteTensor structs the interpreter keeps for the
graph's inputs and outputs. Every allocation is placed as TFLM places it: downwards from the
arena's end, each aligned down to its alignment, in TFLM's order (TFLM commit 90b983c2b,
micro_allocator.cc and micro_interpreter.cc: AllocateTensors), so the sum includes the
padding between them.

The sizes come from compilers, not from reading structs by eye:
- TFLM_STRUCTS: TFLM's headers at commit 90b983c2b with TF_LITE_STATIC_MEMORY, compiled
  twice: "wheel-x86_64" by g++ 12.2 for x86-64 with USE_TFLM_COMPRESSION, as the pinned
  wheel is built (its conv and fully-connected op data carry the compressed weights' scratch
  indices), and "cortex-m7" by arm-none-eabi-g++ 12.2 for `-mcpu=cortex-m7 -mfpu=fpv5-sp-d16
  -mfloat-abi=hard` as TFLM builds by default, without compression (short enums, as every
  Cortex-M build of TFLM with this compiler). `benchmarks/tflm_struct_sizes.py` prints the
  table from a TFLM checkout.
- GLUE_STRUCTS: our glue's op data, compiled the same two ways by
  tests/test_tflm_memory.py, which fails when this table is stale.

Validation: with the 64-bit sizes and the wheel's allocator (RecordingMicroAllocator, which
the wheel's Python interpreter uses to report allocations), the model must reproduce exactly
what the pinned wheel reports: the tail and each recorded category's requested bytes, used
bytes and count (tests/test_tflm_memory.py, on inference and training models). A Cortex-M
build allocates with the plain MicroAllocator, whose objects are smaller.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .ir import Graph, Operator

ARENA_ALIGN = 16          # MicroArenaBufferAlignment(): every kernel's persistent buffer

# (size, alignment) per target; see the module docstring for where they come from.
TFLM_STRUCTS = {
    "wheel-x86_64": {
        "TfLiteEvalTensor": (24, 8), "TfLiteTensor": (64, 8),
        "TfLiteAffineQuantization": (24, 8), "NodeAndRegistration": (64, 8),
        "SubgraphAllocations": (24, 8), "ScratchBufferHandle": (8, 8),
        "SingleArenaBufferAllocator": (72, 8), "RecordingSingleArenaBufferAllocator": (104, 8),
        "GreedyMemoryPlanner": (72, 8), "MicroAllocator": (72, 8),
        "RecordingMicroAllocator": (272, 8), "MicroBuiltinDataAllocator": (16, 8),
        "OpDataConv": (80, 8), "OpDataFullyConnected": (72, 8), "OpDataAdd": (60, 4),
        "OpDataPad": (56, 4), "OpDataPooling": (32, 4), "OpDataReduce": (44, 4),
        "SoftmaxParams": (80, 8), "OpDataQuantizeReference": (32, 8),
        "DequantizeOpData": (32, 8), "TfLiteConvParams": (28, 4),
        "TfLiteDepthwiseConvParams": (28, 4), "TfLiteFullyConnectedParams": (32, 8),
        "TfLiteAddParams": (8, 4), "TfLitePoolParams": (40, 4), "TfLiteReducerParams": (1, 1),
        "TfLiteReshapeParams": (36, 4), "TfLiteSoftmaxParams": (4, 4),
    },
    "cortex-m7": {
        "TfLiteEvalTensor": (12, 4), "TfLiteTensor": (32, 4),
        "TfLiteAffineQuantization": (12, 4), "NodeAndRegistration": (32, 4),
        "SubgraphAllocations": (8, 4), "ScratchBufferHandle": (4, 4),
        "SingleArenaBufferAllocator": (36, 4), "RecordingSingleArenaBufferAllocator": (52, 4),
        "GreedyMemoryPlanner": (44, 4), "MicroAllocator": (36, 4),
        "RecordingMicroAllocator": (124, 4), "MicroBuiltinDataAllocator": (8, 4),
        "OpDataConv": (56, 4), "OpDataFullyConnected": (48, 4), "OpDataAdd": (60, 4),
        "OpDataPad": (56, 4), "OpDataPooling": (32, 4), "OpDataReduce": (44, 4),
        "SoftmaxParams": (56, 8), "OpDataQuantizeReference": (32, 8),
        "DequantizeOpData": (32, 8), "TfLiteConvParams": (28, 4),
        "TfLiteDepthwiseConvParams": (28, 4), "TfLiteFullyConnectedParams": (5, 1),
        "TfLiteAddParams": (2, 1), "TfLitePoolParams": (40, 4), "TfLiteReducerParams": (1, 1),
        "TfLiteReshapeParams": (36, 4), "TfLiteSoftmaxParams": (4, 4),
    },
}

# Our glue's op data (micro_kernels/tflm/tt_tflm_ops.cc), (size, alignment) per target.
GLUE_STRUCTS = {
    "wheel-x86_64": {"InitData": (1, 1), "IntsData": (40, 8), "QuantData": (56, 8),
                     "PoolData": (88, 8), "LayerData": (104, 8), "ForwardData": (16, 8),
                     "StreamData": (16, 8), "SumData": (48, 8)},
    "cortex-m7": {"InitData": (1, 1), "IntsData": (32, 4), "QuantData": (44, 4),
                  "PoolData": (68, 4), "LayerData": (80, 4), "ForwardData": (12, 4),
                  "StreamData": (12, 4), "SumData": (32, 4)},
}

TARGETS = tuple(TFLM_STRUCTS)

# Each builtin's parsed options (flatbuffer_conversions.cc: Parse*), its Init's op data and
# whether its Prepare allocates per-channel requantization arrays (and along which axis of
# the filter): TFLM's reference kernels at the commit above.
BUILTINS = {
    #                    builtin data                 Init op data           per-channel axis
    "CONV_2D": ("TfLiteConvParams", "OpDataConv", 0),
    "DEPTHWISE_CONV_2D": ("TfLiteDepthwiseConvParams", "OpDataConv", 3),
    "FULLY_CONNECTED": ("TfLiteFullyConnectedParams", "OpDataFullyConnected", "per-channel"),
    "ADD": ("TfLiteAddParams", "OpDataAdd", None),
    "PAD": (None, "OpDataPad", None),
    "PADV2": (None, "OpDataPad", None),
    "AVERAGE_POOL_2D": ("TfLitePoolParams", "OpDataPooling", None),
    "MAX_POOL_2D": ("TfLitePoolParams", "OpDataPooling", None),
    "MEAN": ("TfLiteReducerParams", "OpDataReduce", None),
    "RESHAPE": ("TfLiteReshapeParams", None, None),
    "SOFTMAX": ("TfLiteSoftmaxParams", "SoftmaxParams", None),
    "QUANTIZE": (None, "OpDataQuantizeReference", None),
    "DEQUANTIZE": (None, "DequantizeOpData", None),
    "TRANSPOSE": (None, None, None),
}

# The glue's Init data per TT_* op (tt_tflm_ops.cc and tt_tflm_forward_ops.cc: the
# registration tables' init functions; None: the op's Init allocates nothing).
GLUE_INIT = {
    "TT_INIT": "InitData", "TT_SAVE_MASK": "IntsData", "TT_SAVE_SLICE": "IntsData",
    "TT_LOSS_SOFTMAX_CE": "QuantData", "TT_SOFTMAX_GRAD": "QuantData",
    "TT_TRANSPOSE_GRAD": "IntsData", "TT_PAD_GRAD": "IntsData", "TT_MEAN_GRAD": "IntsData",
    "TT_AVERAGE_POOL_GRAD": "PoolData", "TT_MAX_POOL_GRAD": "PoolData",
    "TT_BIAS_GRAD": None, "TT_MASK_GRAD": None, "TT_SUM_GRAD": "SumData", "TT_RESHAPE_GRAD": None,
    **{kind: "LayerData" for kind in (
        "TT_CONV2D_INPUT_GRAD", "TT_CONV2D_WEIGHT_GRAD", "TT_DEPTHWISE_CONV2D_INPUT_GRAD",
        "TT_DEPTHWISE_CONV2D_WEIGHT_GRAD", "TT_FULLY_CONNECTED_INPUT_GRAD",
        "TT_FULLY_CONNECTED_WEIGHT_GRAD", "TT_CONV2D_SPLIT_INPUT_GRAD",
        "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD", "TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS",
        "TT_CONV2D_WEIGHT_UPDATE", "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE",
        "TT_FULLY_CONNECTED_WEIGHT_UPDATE", "TT_BIAS_UPDATE")},
    "TT_CONV2D": "ForwardData", "TT_DEPTHWISE_CONV2D": "ForwardData",
    "TT_FULLY_CONNECTED": "ForwardData", "TT_POINTWISE_DEPTHWISE": "StreamData",
}


def _glue_scales(graph: Graph, op: Operator) -> list[int]:
    """Bytes the glue's Prepare allocates for op: a per-tensor weight or bias scale repeated
    per output channel (Prepare::Scales; per-channel scales stay in the flatbuffer)."""
    from .training_ops import options_of

    def repeated(t: int, count: int) -> list[int]:
        q = graph.tensors[t].quant
        return [4 * count] if q is not None and q.scale.size == 1 else []

    kind = op.kind
    if kind in ("TT_CONV2D_INPUT_GRAD", "TT_FULLY_CONNECTED_INPUT_GRAD",
                "TT_CONV2D_WEIGHT_UPDATE", "TT_FULLY_CONNECTED_WEIGHT_UPDATE",
                "TT_CONV2D_SPLIT_INPUT_GRAD", "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD"):
        w = op.inputs[2] if kind.endswith("INPUT_GRAD") else op.inputs[3]
        return repeated(w, graph.tensors[w].shape[0])
    if kind in ("TT_DEPTHWISE_CONV2D_INPUT_GRAD", "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE"):
        w = op.inputs[2] if kind.endswith("INPUT_GRAD") else op.inputs[3]
        return repeated(w, graph.tensors[w].shape[-1])
    if kind == "TT_BIAS_UPDATE":
        return repeated(op.inputs[2], graph.tensors[op.inputs[2]].size)
    if kind in ("TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS"):
        p = graph.tensors[op.inputs[0]]
        if kind == "TT_UPDATE_BIAS":
            return repeated(op.inputs[0], p.size)
        return repeated(op.inputs[0], p.shape[0] if options_of(op)["axis"] == 0
                        else p.shape[-1])
    return []


@dataclass
class Allocation:
    part: str                # what it is for (PARTS)
    what: str
    size: int
    align: int
    count: int = 1           # structs in it (one array of tensor or node structs)
    dtype: str = ""          # of a variable
    accumulator: bool = False  # a variable that is a batch accumulator (augment --batch)
    residual: bool = False     # a variable that is a weights' rounding residual (optimizer)


# The parts of the tail, in the order plan prints them. `recorded` maps the wheel's
# RecordingMicroAllocator categories onto them (for the validation).
PARTS = ("allocator objects", "tensor structs", "node structs", "builtin options",
         "kernel op data", "glue op data", "scratch handles", "interpreter I/O",
         "variables")
RECORDED = {
    "TfLiteEvalTensor data": ("tensor structs",),
    "NodeAndRegistration struct": ("node structs",),
    "Persistent buffer data": ("kernel op data", "glue op data", "interpreter I/O arrays"),
    "Persistent TfLiteTensor data": ("interpreter I/O tensors",),
    "Persistent TfLiteTensor quantization data": ("interpreter I/O quantization",),
    "TfLiteTensor variable buffer data": ("variables",),
}


@dataclass
class Tail:
    """TFLM's persistent allocations for one model on one target, in allocation order."""
    target: str
    allocations: list[Allocation] = field(default_factory=list)

    def placed(self) -> list[tuple[Allocation, int]]:
        """Each allocation with the bytes it moved the tail (its size plus the padding that
        aligns it), the arena's end being 16-byte aligned."""
        out, used = [], 0
        for a in self.allocations:
            new = -(-(used + a.size) // a.align) * a.align
            out.append((a, new - used))
            used = new
        return out

    @property
    def bytes(self) -> int:
        return sum(u for _, u in self.placed())

    def by_part(self) -> "OrderedDict[str, int]":
        parts: OrderedDict[str, int] = OrderedDict()
        for a, used in self.placed():
            key = "interpreter I/O" if a.part.startswith("interpreter I/O") else a.part
            parts[key] = parts.get(key, 0) + used
        return parts

    def recorded(self) -> dict[str, tuple[int, int, int]]:
        """(requested, used, count) per RecordingMicroAllocator category, as the wheel
        prints them."""
        out = {}
        placed = self.placed()
        for name, parts in RECORDED.items():
            hits = [(a, u) for a, u in placed if a.part in parts]
            if hits:
                # the recorder counts the one array of tensors (or nodes) as one per element
                count = sum(a.count for a, _ in hits)
                out[name] = (sum(a.size for a, _ in hits), sum(u for _, u in hits), count)
        return out

    @property
    def variable_bytes(self) -> int:
        return sum(u for a, u in self.placed() if a.part == "variables")


def persistent_tail(graph: Graph, target: str = "cortex-m7", recording: bool = False) -> Tail:
    """Every allocation TFLM makes in the arena's tail for `graph` (as a training model with
    our glue registered, or an inference model) on `target`. `recording`: the wheel's
    RecordingMicroAllocator instead of the plain MicroAllocator an application gets from
    MicroInterpreter(model, resolver, arena, size)."""
    if target not in TFLM_STRUCTS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    s, g = TFLM_STRUCTS[target], GLUE_STRUCTS[target]
    tail = Tail(target)

    def add(part: str, what: str, struct: str | None = None, size: int | None = None,
            align: int = ARENA_ALIGN, count: int = 1) -> None:
        if struct is not None:
            size, align = s[struct] if struct in s else g[struct]
            size *= count
        tail.allocations.append(Allocation(part, what, size, align, count))

    # MicroAllocator::Create (micro_allocator.cc) or RecordingMicroAllocator::Create
    if recording:
        for struct in ("RecordingSingleArenaBufferAllocator", "GreedyMemoryPlanner",
                       "RecordingMicroAllocator"):
            add("allocator objects", struct, struct)
    else:
        for struct in ("SingleArenaBufferAllocator", "GreedyMemoryPlanner", "MicroAllocator"):
            add("allocator objects", struct, struct)
    # StartModelAllocation
    add("allocator objects", "MicroBuiltinDataAllocator", "MicroBuiltinDataAllocator")
    add("allocator objects", "SubgraphAllocations", "SubgraphAllocations")
    add("tensor structs", f"{len(graph.tensors)} TfLiteEvalTensor", "TfLiteEvalTensor",
        count=len(graph.tensors))
    add("node structs", f"{len(graph.operators)} NodeAndRegistration", "NodeAndRegistration",
        count=len(graph.operators))
    # PrepareNodeAndRegistrationDataFromFlatbuffer: builtin options, in operator order
    for k, op in enumerate(graph.operators):
        if op.opcode != "CUSTOM":
            struct = _builtin(op)[0]
            if struct is not None:
                add("builtin options", f"{k}:{op.kind}", struct)
    # InitSubgraphs, then PrepareSubgraphs
    for k, op in enumerate(graph.operators):
        for part, what, size in _init(graph, op, s, g):
            add(part, f"{k}:{op.kind} {what}", size=size)
    for k, op in enumerate(graph.operators):
        for part, what, size in _prepare(graph, op):
            add(part, f"{k}:{op.kind} {what}", size=size)
    # FinishModelAllocation: scratch buffer handles, then the variables
    from .memory import scratch_requests
    handles = sum(len(scratch_requests(graph, k)) for k in range(len(graph.operators)))
    if handles:
        add("scratch handles", f"{handles} ScratchBufferHandle", "ScratchBufferHandle",
            count=handles)
    from .training_ops import accumulator_tensors, residual_tensors
    accumulators, residuals = accumulator_tensors(graph), residual_tensors(graph)
    for i, t in enumerate(graph.tensors):
        if t.is_variable:
            add("variables", t.name or f"tensor {i}", size=t.nbytes)
            tail.allocations[-1].dtype = t.dtype
            tail.allocations[-1].accumulator = i in accumulators
            tail.allocations[-1].residual = i in residuals
    # MicroInterpreter::AllocateTensors: the inputs' and outputs' TfLiteTensor structs
    pointer = s["ScratchBufferHandle"][0]          # one pointer
    for kind, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        add("interpreter I/O arrays", f"{kind} tensor pointers", size=pointer * len(tensors))
        for i in tensors:
            add("interpreter I/O tensors", f"{kind} {i} TfLiteTensor", "TfLiteTensor")
            q = graph.tensors[i].quant
            if q is not None and q.scale.size > 0 and q.zero_point.size > 0:
                add("interpreter I/O quantization", f"{kind} {i} quantization",
                    "TfLiteAffineQuantization")
                add("interpreter I/O quantization", f"{kind} {i} zero points",
                    size=4 + 4 * q.scale.size, align=4)
    return tail


def _builtin(op: Operator) -> tuple:
    try:
        return BUILTINS[op.kind]
    except KeyError:
        raise ValueError(f"no TFLM memory model for builtin {op.kind}") from None


def _init(graph: Graph, op: Operator, s: dict, g: dict) -> list[tuple[str, str, int]]:
    if op.opcode == "CUSTOM":
        if op.kind not in GLUE_INIT:
            raise ValueError(f"no TFLM memory model for {op.kind}")
        struct = GLUE_INIT[op.kind]
        return [] if struct is None else [("glue op data", struct, g[struct][0])]
    struct = _builtin(op)[1]
    return [] if struct is None else [("kernel op data", struct, s[struct][0])]


def _prepare(graph: Graph, op: Operator) -> list[tuple[str, str, int]]:
    if op.opcode == "CUSTOM":
        return [("glue op data", "scales", n) for n in _glue_scales(graph, op)]
    axis = _builtin(op)[2]
    if axis is None:
        return []
    w = graph.tensors[op.inputs[1]]
    if axis == "per-channel":            # FULLY_CONNECTED: only per-channel filters
        if w.quant is None or w.quant.scale.size <= 1:
            return []
        channels = w.quant.scale.size
    else:
        channels = w.shape[axis]
    return [("kernel op data", "output multipliers", 4 * channels),
            ("kernel op data", "output shifts", 4 * channels)]


@dataclass
class TargetMemory:
    """A model's SRAM on a TFLM target, as its parts (bytes)."""
    target: str
    arena: int                 # TFLM's planned head (activations, saved, gradients, scratch)
    persistent: int            # TFLM's tail without the variables
    trained: int               # trained parameters (variables)
    optimizer: int             # momentum buffers (float32 variables), rounding residuals (int8)
    offline: bool              # the arena follows an offline plan (in-place operators)
    accumulators: int = 0      # the batch's gradient sums (float32 variables, --batch B > 1)

    @property
    def total(self) -> int:
        return self.arena + self.persistent + self.trained + self.optimizer + self.accumulators


def target_memory(graph: Graph, target: str = "cortex-m7") -> TargetMemory:
    """SRAM of `graph` in TFLM on `target`: the head TFLM plans (our offline plan when the
    graph has in-place operators or carries one), the persistent tail of this module's
    model split into TFLM's own data and the variables (trained parameters: int8/int32;
    optimizer state: float32)."""
    from . import alias_plan, memory
    table = offline_table(graph)
    if table is None and alias_plan.aliases(graph):
        table = alias_plan.plan(graph)[0]
    arena = memory.plan(graph).arena_bytes if table is None \
        else alias_plan.tflm_head(graph, table)
    tail = persistent_tail(graph, target)
    trained, optimizer, accumulators = _variables(tail)
    return TargetMemory(target, arena, tail.bytes - trained - optimizer - accumulators, trained,
                        optimizer, table is not None, accumulators)


def _variables(tail) -> tuple[int, int, int]:
    """Bytes of the tail's variables: (trained parameters, optimizer state = momentum
    buffers and rounding residuals, batch accumulators): the accumulators are never
    optimizer state."""
    trained = optimizer = accumulators = 0
    for a, used in tail.placed():
        if a.part != "variables":
            continue
        if a.accumulator:
            accumulators += used
        elif a.dtype == "float32" or a.residual:
            optimizer += used
        else:
            trained += used
    return trained, optimizer, accumulators


def offline_table(graph: Graph):
    """The OfflineMemoryAllocation offsets a model carries (None: it has none)."""
    import numpy as np
    from .memory import OFFLINE_KEY
    blob = graph.metadata.get(OFFLINE_KEY)
    if blob is None:
        return None
    words = np.frombuffer(blob, np.int32)
    if len(words) < 3 or words[0] != 0 or words[1] != 1 or words[2] != len(graph.tensors) \
            or len(words) != 3 + len(graph.tensors):
        from .errors import ModelError
        raise ModelError(f"{OFFLINE_KEY} metadata does not hold one offset per tensor of "
                         "one subgraph")
    return words[3:].copy()


# TFLM's own code with its reference kernels, our glue and kernels and the example app
# (examples/tflm_app/trainer.cc), for the Cortex-M7: .text + .rodata + .ARM.exidx + .data's
# initial values of the image benchmarks/tflm_rig.py links, the training model apart.
# Measured 2026-11-26 on QEMU's mps2-an500 with TFLM 90b983c2b (the framework at -Os and the
# reference kernels the app registers at -O2, TFLM's levels, with -DNDEBUG and
# TF_LITE_STATIC_MEMORY), ours at -O2 with the DSP kernels, all with arm-none-eabi-gcc 12.2
# and -mcpu=cortex-m7 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard, newlib-nano: 250.1 KB =
# TFLM 71.6 + glue 55.9 + kernels 102.7 + app 4.3 + start-up 0.5 + C runtime 15.4 - 0.4 of
# alignment, the image of MobileNetV2-w0.35 with int8 gradients, the largest of the four
# models' images with either gradient type at the last full measurement (they differ only in
# the app's per-model tables; every image links the float32 and the int8 gradient kernels,
# the glue calling both); re-measured on that row after the round-11 kernels (main at
# 8cb2ad4, same command and TFLM build: kernels 163.7 KB, 9,920 B more on the figure - the
# offset -128 pointwise rows, the packed 3x3 depthwise rows, the pointwise input
# gradient's steady rounding copies); after the round-10 kernels (main at
# 3c8579b, same command and TFLM build: kernels 154.0 KB, 12,108 B more - the stems'
# packed im2col, the pruned depthwise first pass, the updates' and input gradients'
# assembly loops - padding 12 B more, the rest unchanged: +12,120 B on the figure); after
# the round-9 kernels (main at
# 57ce3d2, same command and rebuilt TFLM: kernels 142.2 KB, 3,732 B more - the unstaged
# pointwise input-gradient rows, the grown kernels' trimming - glue 68 B less, padding 16 B
# less: +3,648 B on the figure); after the round-8 kernels (main at e7d9846; benchmarks/tflm_rig.py --passes all --grad int8 --only mobilenet: kernels 138.5 KB,
# 136 B more than round 7's; the rest as round 7's. TFLM itself was rebuilt on another
# machine from the same sources and flags and links 400 B smaller there, 71.2 KB: the figure
# keeps round 7's TFLM and adds the kernels' growth); after round 7 (aa28663): 285.8 KB, .data's
# initial values included = TFLM 71.6 + glue 55.9 + kernels 138.4 + app 4.3 + start-up 0.5 +
# C runtime 15.4 - 0.4; after round 6, at 7f44a8f: 279.9 KB with kernels of 132.5; after
# round 5, at 887f6c1: 262.1 KB with kernels of 114.7).
# benchmarks/RESULTS.md, "Training inside TFLM on the rig"; replaces 250.1 KB measured after
# round 4 (main at 7055618), 241.7 KB before round 4 (227.3 KB before the DSP forward
# kernels of branch fwd-speed, 217.7 KB before main's DSP depthwise-gradient kernels, 185 KB
# before the glue had int8 gradients, 141 KB before the TT_* forward ops).
# After round 12 (main at ffafca9, the same probe, MobileNetV2 int8): code parts 326,908 B,
# +8,832 against round 11's 318,076 (our kernels 176.5 KB: 172.3 KiB). After round 13 (main
# at 32b5e3a, the same probe): 336,060 B, +9,152 (our kernels 185,609 B: 181.3 KiB). After
# round 14 (main at d3244a3): 339,612 B, +3,552 (our kernels 189,161 B: 184.7 KiB). After
# round 15 (main at b316e7d): 359,356 B, +19,744 (our kernels 208,921 B: the pointwise
# input gradient's optimistic pass measures in every copy of its walk, +17 KB). After round
# 16 (main at ba013b9): 353,764 B, -5,592 (our kernels 203,301 B: the probes' code shared).
# After round 17 (main at 89a48ea, the same probe on a TFLM library rebuilt the same way,
# which gave 353,760 B for round 16's main): 359,968 B, +6,208 (our kernels 209,517 B: the
# DSP element-wise gradients and ADD, one call for many depthwise group rows, the masked
# bias sums' 2 KB mask table). After round 18 (main at 16f7a81): 379,488 B, +19,520 (our
# kernels 229,041 B: the DSP weight gradients of large pointwise maps, the depthwise input
# gradient's tap-pair walk, the depthwise weight gradient's channel-major walk, the 5x5
# forward windows in assembly; 381,184 B at b56b2f6, before 16f7a81 shared update_block's
# and the edge staging's copies: MCUNet's int8 model had been 1,412 B over 1 MB). After
# round 19 (main at e2c03c2): 377,408 B, -2,080 (our kernels 226,945 B: the fused pointwise
# updates' one frame, one staging macro, begin_update out of line). After round 20 (main at
# 14bf40a): 378,240 B, +832 (our kernels 227,773 B: the pointwise weight gradient's int8
# staging level removed, -2.5 KB; the fused updates' kept stream states, the depthwise input
# gradient's stride-2 walk by rows and the few-output input gradient's rounding walk, +3.3 KB).
# After round 21 (main at 46209d9): 376,064 B, -2,176 (our kernels 225,621 B: one copy of the
# pointwise input gradient's 8-row loop, -2.7 KB; its blocks of 6, the weight gradient's
# walk over a pair of rows' tiles and the depthwise walks' assembly, about +0.5 KB).
# After round 22 (main at 88cb3b4): 378,048 B, +1,984 (our kernels 227,617 B: the pointwise
# weight gradient's floats from its tiles, +1.0 KB; the masked and 6-column input gradient
# rows, walk3's small maps and the depthwise weight gradient's band query, +1.0 KB).
# After round 23 (main at 16a7d05): 375,752 B, -2,296 (the glue's set-up code, Init and
# Prepare, built for size: -2.9 KB, flash23 and batchc23; the batch in the glue and its two
# kernels, +0.6 KB; our kernels 227,793 B).
# After round 26 (main at 976bc8f, tflmrig27: all 16 rows of benchmarks/tflm_rig.py on a TFLM
# library rebuilt from the recorded recipe, whose TFLM links 72,952 B like every probe's since
# round 8): 377,460 B, the largest image (MobileNetV2 int8) as measured. The same library
# gives main at 16a7d05 375,748 B (4 B under that probe's 375,752), so rounds 24-26 added
# +1,712 B (our kernels 229,281 B, +1,488: round 26's pointwise rows; glue 54,783 B, +235:
# review24's and fixes25's checks). The figure no longer carries the +404 B of the
# 2026-11-26 table's TFLM (73,350 B, not reproduced by the recipe): the table is now this
# library's throughout, so plan's figure is the table's code to the byte.
# After round 27 (lead, the same library): 379,708 B, +2,248 (our kernels 230,657 B, +1,376:
# the head residual's update kernels and kern27's depthwise ring and fused-update block
# choice; glue 55,736 B, +953: the residual's input, checks and checkpoint report; the app
# +416). MCUNet-5FPS 99kb int8 keeps every conversion with about 0.3 KB of 1 MB to spare;
# at 381,092 B (with two changes reverted for it, worth 1.4 KB) the default budget gave up 4
# flash requantizations and the step ran 2.5x the instructions on TFLM's reference kernels.
# After round 28 (lead, the same library): 382,880 B, +3,172 (our kernels 233,685 B, +3,028:
# kern28's blocks of 6 staged together in the pointwise input gradient 1,352, fwd28's
# leaner forward rows and columns 1,360, shift8's int8 shift loads 324; glue 55,901 B, +165:
# shift8's type checks). shift8 took 18 KB off MCUNet-5FPS 99kb's model: 15.2 KB of 1 MB
# to spare on the rig, and the budget's order now weighs speed (augment._next_give_up).
# After round 29 (lead, the same library): 384,224 B, +1,344 on the largest image (our
# kernels 235,397 B, +1,712: kern29's nearest rule in registers and assembly and the
# depthwise scan's largest magnitude in assembly). MCUNet-5FPS 99kb int8 takes 1,034,760 B
# of flash on the rig: 13.5 KB of 1 MB to spare.
# After round 30 (lead, the same library): 391,216 B, +6,992 on the largest image (our
# kernels 242,381 B, +6,984: the forward's tt_dsp_colk and tt_dsp_gemv4 and its staging in
# assembly, the gradients' small-map and stride-2 depthwise walks and pointwise row blocks in
# assembly; glue 55,897 B, -4: LayerData's update and input-gradient parts in a union).
# MCUNet-5FPS 99kb int8 takes 1,041,752 B of flash on the rig: 6.7 KB of 1 MB to spare.
# After round 31 (lead, the same library): 395,784 B, +4,568 on the largest image (our
# kernels 246,961 B, +4,580: fwd31's one-shift column kernels and tt_dsp_gemv2 in place of
# tt_dsp_gemv4, cg31's generator records read in that form, pwig31's dy x multiplier rows
# and pwig31b's co = 8 rows, dwig31's stride-2 row pairs and Q-flag test; glue unchanged).
# MCUNet-5FPS 99kb int8 takes 1,046,320 B of flash on the rig: 2.2 KB of 1 MB to spare.
TFLM_CODE_BYTES = 395_784

# the paper's budgets for the STM32F746 (320 KB of SRAM, 1 MB of flash): training within
# 256 KB of SRAM leaves the rest to the application
SRAM_BUDGET = 256 * 1024
FLASH_BUDGET = 1024 * 1024


# TFLM's head planning (MicroAllocator::CommitStaticMemoryPlan) per target: the bytes of an
# AllocationInfo, of a ScratchBufferRequest and of a size_t; and the GreedyMemoryPlanner's
# bytes per planned buffer (its per_buffer_size(): a four-int BufferRequirements, two sorted
# ints, a three-int ListEntry and an offset), the same on every target.
PLANNING_STRUCTS = {"wheel-x86_64": (32, 16, 8), "cortex-m7": (24, 12, 4)}
PLANNER_BYTES_PER_BUFFER = 40


def planning_room(graph: Graph, target: str = "cortex-m7") -> int:
    """The room TFLM's AllocateTensors needs after the persistent tail while it plans the
    head (CommitStaticMemoryPlan): the scratch requests, the subgraph offsets, an allocation
    record per tensor and per scratch buffer, then the greedy planner's lists per planned
    buffer in what is left, aligned. All of it is freed once the head is planned, so the
    arena needs tail + max(head, this): more than TFLM's use for a small head of many tensors
    (the example's last:2 at batch 3 on the wheel: use 17,312 B, 18,048 B needed; this
    formula gives 18,224, the final tail counting ~160 B TFLM takes after the plan)."""
    from . import memory
    info, request, size_t = PLANNING_STRUCTS[target]
    buffers = memory.tflm_buffers(graph)
    scratch = sum(b.tensor is None for b in buffers)
    up = memory.align_up
    return (up(request * scratch) + up(size_t) + up(info * (len(graph.tensors) + scratch))
            + PLANNER_BYTES_PER_BUFFER * len(buffers) + ARENA_ALIGN)


def account(graph: Graph, model_bytes: int, target: str = "cortex-m7") -> dict:
    """Everything `plan` reports for TFLM on `target`: SRAM as its parts (arena, TFLM's
    persistent data and what it is, trained parameters, optimizer state) and flash (the
    model file, TFLM's code). The arena follows the model's offline plan when it has one,
    after alias_plan proved it safe (ModelError otherwise)."""
    from . import alias_plan, memory
    from .errors import ModelError
    table = offline_table(graph)
    in_place = alias_plan.aliases(graph)
    if table is not None:
        unsafe = alias_plan.problems(graph, table)
        if unsafe:
            raise ModelError(f"the model's {memory.OFFLINE_KEY} plan is unsafe: {unsafe[0]}")
        arena = alias_plan.tflm_head(graph, table)
    else:
        arena = memory.plan(graph).arena_bytes
    wheel = target.startswith("wheel")
    tail = persistent_tail(graph, target, recording=wheel)
    parts = tail.by_part()
    trained, optimizer, accumulators = _variables(tail)
    persistent = tail.bytes - trained - optimizer - accumulators
    parts.pop("variables", None)
    sram = arena + persistent + trained + optimizer + accumulators
    flash = {"model": model_bytes, "tflm_code": TFLM_CODE_BYTES}
    return {
        "target": target, "arena": arena, "offline_plan": table is not None,
        "in_place_ops": len(in_place),
        "aliased": sum(1 for a in in_place if table is not None
                       and _aliased(graph, table, a)),
        "persistent": persistent, "persistent_parts": dict(parts),
        "trained": trained, "optimizer": optimizer, "accumulators": accumulators,
        "sram_total": sram,
        "flash": {**flash, "total": sum(flash.values())},
        "budgets": {"sram": SRAM_BUDGET, "flash": FLASH_BUDGET},
    }


def _aliased(graph: Graph, table, a) -> bool:
    """Whether the offline plan puts the in-place op's output over its input."""
    x, y = graph.tensors[a.input], graph.tensors[a.output]
    ox, oy = int(table[a.input]), int(table[a.output])
    return ox >= 0 and oy >= 0 and ox < oy + y.nbytes and oy < ox + x.nbytes
