"""The `augment` pipeline: inference model -> training model.

load -> (new head) -> scheme -> unshare -> autodiff -> trainable variables + TT_INIT ->
metadata.
The result follows the training-model contract of DESIGN.md: inputs = original inputs +
`label` (int32 [1]); outputs = original outputs + `loss` (float32 [1]); trained parameters
are variable tensors with empty buffers that TT_INIT fills from constant copies on the first
Invoke; operator order is execution order.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import autodiff, ops
from . import scheme as schemes
from .errors import ModelError, TTError, printable
from .ir import TRAINING_KEY, Graph, Operator, Quantization, Tensor
from .memory import OFFLINE_KEY
from .training_ops import GRAD_DTYPES, MAX_BATCH, make_op
from . import tflm_memory

METADATA_KEY = TRAINING_KEY
# 2 (round 28): the forward ops' shifts are int8 tensors (ops/tt_forward.SHIFT_DTYPE), int32
# in version 1. A version-1 model is refused (training_metadata), never read: augment the
# original model again (its state files and checkpoints name the old model's id and do not
# carry over).
FORMAT_VERSION = 2

# New head. The features' real range is known from their quantization (the converter
# calibrated it), so the initial weights are sized to it: uniform in +-b with
# b = 2*sqrt(3) / (sqrt(K) * x_max) gives logits of standard deviation about 1 when the
# features spread over [0, x_max] (Kaiming-uniform with x_max/2 as the feature RMS). Sizing
# by 1/sqrt(K) alone fails on models whose features are tiny: logits round to 0 and the
# weight updates to less than one LSB. The weights' int8 grid spans 12x the initial range,
# so that training can grow them before they saturate at +-127: with 4x, 6% of the person
# detector's head weights saturated within 500 steps and int8 head-only training trailed
# fp32 by 8 points; with 8x (the default until 2026-11-29) MobileNetV2-w0.35's bias-only head
# saturated on 4 of 6 seeds, and bias-only trailed fp32 by 0.59 +- 0.15 (MCUNet-5FPS) and
# 0.74 +- 0.13 (MobileNetV2) points, by 0.45 +- 0.17 and 0.65 +- 0.10 with 12x (1000 steps,
# int8 gradients, 12 seeds; benchmarks/RESULTS.md, "Table 1 at today's defaults"). A coarser
# grid costs accuracy the other way: every sub-LSB step is rounded stochastically, and the
# head's steps are mostly sub-LSB: a step of p LSB (p < 1) adds a rounding noise of variance
# p(1 - p), more than the step's own square; with 16x MCUNet-5FPS bias-only trailed by 0.86
# +- 0.13. The initial codes are the grid's nearest levels (HEAD_INIT_STEP 1; with 8x they
# were even, the 16x grid's levels). What the rounding of the sub-LSB steps still cost on
# 12x, the head's rounding residual (autodiff.Hyper.head_residual, round 27) takes back:
# bias-only then trails fp32 by 0.27 +- 0.19 and 0.41 +- 0.13. The logits' grid spans
# [-16, 16], beyond which softmax is saturated anyway (p > 1 - 1e-6).
HEAD_WEIGHT_HEADROOM = 12.0
HEAD_INIT_STEP = 1
HEAD_LOGIT_RANGE = 16.0


@dataclass
class MemoryOptions:
    """augment's memory passes (passes/), each on unless turned off."""
    split_filters: bool = True      # only the trained input channels of a filter in SRAM
    in_place: bool = True           # outputs over inputs where that lowers the arena's peak
    flash_requant: bool = True      # TT_* forward ops where their flash requantization
    target: str = "cortex-m7"       # lowers TFLM's persistent data (on this target)
    stream: bool = True             # expansions computed row by row where that lowers the arena
    # model + tflm_memory.TFLM_CODE_BYTES within this many bytes of flash (None: no budget):
    # augment gives up the flash-adding conversions (requantization in flash, split filters;
    # _next_give_up) until the written model fits
    flash_budget: int | None = tflm_memory.FLASH_BUDGET
    give_up: frozenset = frozenset()  # layers (output names) those two passes leave alone


@dataclass
class MemoryChoices:
    """What the memory passes did, for the report and the metadata."""
    split: list = field(default_factory=list)
    in_place: list = field(default_factory=list)
    flash_requant: list = field(default_factory=list)
    streamed: list = field(default_factory=list)
    pruned_bytes: int = 0
    activations: str = ""           # passes.builtins.hidden_activations
    flash: dict | None = None       # the flash budget and what was given up for it (_fit)
    given_up: list = field(default_factory=list)  # the same, each with its flash estimate

    def record(self) -> dict:
        return {
            "split_filters": [{"layer": s.layer, "trained_channels": s.trained,
                               "channels": s.channels} for s in self.split],
            "in_place": [{"layer": c.layer, "kind": c.kind} for c in self.in_place],
            "flash_requantization": [c.layer for c in self.flash_requant],
            "streamed": [{"layer": c.layer, "window_bytes": c.window_bytes}
                         for c in self.streamed],
            **({"activations": self.activations} if self.activations else {}),
            **({"flash_budget": self.flash} if self.flash is not None else {}),
        }


@dataclass
class Augmented:
    graph: Graph
    scheme: schemes.Scheme
    backward: autodiff.BackwardGraph
    head: int | None              # operator index of the new head in the forward graph
    logits: int
    label: int
    loss: int
    metadata: dict
    hyper: autodiff.Hyper | None = None     # as used: with the per-layer rates it chose
    memory: MemoryChoices | None = None     # what the memory passes chose
    unshared: list[dict] | None = None      # trained tensors given to each layer (unshare)
    # tflite_io.serialize(graph) as _fit measured it (None without a flash budget); stale
    # once the graph is changed
    written: bytes | None = field(default=None, repr=False, compare=False)
    batch_choice: BatchChoice | None = None    # Hyper.batch None: the batch augment chose


def find_logits(graph: Graph) -> int:
    """The int8 logits the loss reads: the input of a final SOFTMAX, else output 0."""
    producers = graph.producers()
    t = graph.outputs[0]
    while True:
        k = producers.get(t)
        if k is None:
            break
        op = graph.operators[k]
        if op.kind == "DEQUANTIZE":
            t = op.inputs[0]
            continue
        if op.kind == "SOFTMAX":
            t = op.inputs[0]
        break
    if graph.tensors[t].dtype != "int8":
        raise ModelError(f"the logits tensor {graph.tensors[t].name} is "
                         f"{graph.tensors[t].dtype}; int8 expected")
    return t


def find_classifier(graph: Graph) -> tuple[int, list[int]]:
    """(classifier op, ops after it up to the output): the last FULLY_CONNECTED or a 1x1
    CONV_2D on a 1x1 map, followed only by RESHAPE / SOFTMAX / DEQUANTIZE."""
    producers = graph.producers()
    tail: list[int] = []
    t = graph.outputs[0]
    while t in producers:
        k = producers[t]
        op = graph.operators[k]
        if op.kind == "FULLY_CONNECTED" or (
                op.kind == "CONV_2D" and graph.tensors[op.inputs[1]].shape[1:3] == (1, 1)
                and graph.tensors[op.outputs[0]].shape[1:3] == (1, 1)):
            return k, tail
        if op.kind not in ("RESHAPE", "SOFTMAX", "DEQUANTIZE", "QUANTIZE"):
            break
        tail.append(k)
        t = op.inputs[0]
    raise ModelError("cannot find the classifier (a FULLY_CONNECTED, or a 1x1 CONV_2D, "
                     "followed only by RESHAPE/SOFTMAX up to the output) to replace")


def replace_head(graph: Graph, num_classes: int, seed: int,
                 headroom: float = HEAD_WEIGHT_HEADROOM) -> tuple[int, int]:
    """Swap the classifier for a new N-class FULLY_CONNECTED + SOFTMAX whose int8 weight
    grid spans `headroom` times the initial range. Returns (head op index, logits
    tensor)."""
    if num_classes < 2:
        raise TTError(f"--num-classes must be at least 2, got {num_classes}")
    k, tail = find_classifier(graph)
    removed = {k, *tail}
    feats = graph.operators[k].inputs[0]
    for j, op in enumerate(graph.operators):
        if j not in removed and any(t in op.inputs for r in removed
                                    for t in graph.operators[r].outputs):
            raise ModelError(f"operator {j} reads the classifier's output; cannot replace it")
    f = graph.tensors[feats]
    depth = f.size // f.shape[0] if f.shape else f.size
    rng = np.random.default_rng(seed)
    x_max = f.quant.s * max(127 - f.quant.zp, f.quant.zp + 128)
    bound = 2.0 * math.sqrt(3.0) / (math.sqrt(depth) * x_max)
    w_real = rng.uniform(-bound, bound, size=(num_classes, depth))
    w_scale = np.full(num_classes, headroom * bound / 127.0, np.float32)
    step = HEAD_INIT_STEP * w_scale[:, None]
    w_q = np.clip(HEAD_INIT_STEP * np.rint(w_real / step), -127, 127).astype(np.int8)
    b_scale = (np.float32(f.quant.s) * w_scale).astype(np.float32)
    zeros = np.zeros(num_classes, np.int64)
    w = graph.add_tensor(Tensor("head/weights", (num_classes, depth), "int8",
                                Quantization(w_scale, zeros.copy(), axis=0), data=w_q))
    b = graph.add_tensor(Tensor("head/bias", (num_classes,), "int32",
                                Quantization(b_scale, zeros.copy(), axis=0),
                                data=np.zeros(num_classes, np.int32)))
    logits = graph.add_tensor(Tensor(
        "head/logits", (1, num_classes), "int8",
        Quantization(np.array([2 * HEAD_LOGIT_RANGE / 255], np.float32), np.zeros(1, np.int64))))
    probs = graph.add_tensor(Tensor(
        "head/probabilities", (1, num_classes), "int8",
        Quantization(np.array([1 / 256], np.float32), np.array([-128], np.int64))))
    fc = Operator("FULLY_CONNECTED", [feats, w, b], [logits], options_type="FullyConnectedOptions",
                  options={"fused_activation_function": 0, "keep_num_dims": False,
                           "weights_format": 0, "asymmetric_quantize_inputs": False,
                           "quantized_bias_type": 0}, version=1)
    sm = Operator("SOFTMAX", [logits], [probs], options_type="SoftmaxOptions",
                  options={"beta": 1.0})
    graph.operators = [op for j, op in enumerate(graph.operators) if j not in removed]
    head = len(graph.operators)
    graph.operators += [fc, sm]
    graph.outputs = [probs]
    return head, logits


def unshare(graph: Graph, scheme: schemes.Scheme) -> list[dict]:
    """Give each trained layer its own copy of a trained tensor other operators read too.

    The converter stores equal constants once: two layers built with equal weights (the same
    seeded initializer, zero biases) read one tensor. Trained as it is, that tensor would get
    both layers' updates every step, and a layer the scheme leaves frozen would change too.
    The user built separate layers, so each is trained on its own: the layers that train the
    tensor get copies (the first keeps the original when nobody else reads it), the other
    readers keep the constant. A copy costs its bytes twice (a variable and TT_INIT's
    initial value), as two unshared tensors would have. Returns what was copied."""
    readers = graph.readers()
    trained: dict[int, list[tuple[int, int]]] = {}      # tensor -> (layer, input slot)
    for k, u in sorted(scheme.layers.items()):
        inputs = graph.operators[k].inputs
        for slot, on in ((1, u.weight_channels > 0), (2, u.bias)):
            if on and slot < len(inputs) and inputs[slot] >= 0:
                trained.setdefault(inputs[slot], []).append((k, slot))
    record = []
    for t, users in trained.items():
        if readers[t] == 1:
            continue
        src = graph.tensors[t]
        moved = users[1:] if readers[t] == len(users) else users
        copies = []
        for n, (k, slot) in enumerate(moved, 1):
            c = graph.copy_tensor(t, f"{src.name}/copy{n}")
            graph.operators[k].inputs[slot] = c
            copies.append({"name": graph.tensors[c].name,
                           "layer": graph.tensors[graph.operators[k].outputs[0]].name})
        record.append({"tensor": src.name, "readers": readers[t], "copies": copies})
    return record


def _make_variables(graph: Graph, params: list[int], buffers: list[int]) -> Operator:
    """Trainable tensors become variables with empty buffers; TT_INIT copies their
    initial values from new constant tensors. A copy has no quantization of its own (its
    variable's says what its values mean, and TT_INIT copies bytes): a per-channel tensor's
    scales would cost 4 bytes a channel of flash twice."""
    pairs = []
    for p in dict.fromkeys(params):
        t = graph.tensors[p]
        if t.is_variable:
            continue
        init = graph.add_tensor(Tensor(f"{t.name}/init", t.shape, t.dtype, None,
                                       data=t.data.copy()))
        t.data = None
        t.is_variable = True
        pairs += [init, p]
    for m in buffers:                  # momentum, accumulators: zero, no initial value
        graph.tensors[m].is_variable = True
    return make_op("TT_INIT", pairs, [])


def augment(graph: Graph, scheme_spec: str = "bias-only", num_classes: int | None = None,
            hyper: autodiff.Hyper | None = None, fuse: bool = True,
            reorder: bool = True, lr_rule: dict | None = None,
            memory: MemoryOptions | None = None, tune=None) -> Augmented:
    """`fuse`: compute weight and bias gradients inside their update ops (in-place update,
    the default); False keeps them as tensors, which the gradient checks read.
    `reorder`: keep schedule.greedy's operator order when its arena plan is smaller.
    Without hyper.lr (and layer_lrs), each layer's rates are derived from the model
    (lr.model_rates). `lr_rule`: how the layer_lrs were chosen, for the metadata.
    `memory`: which of the memory passes run (passes/: filters split into trained and frozen
    parts, in-place operators, requantization in flash, expansions computed row by row); they
    change where bytes live, not what is computed. Within memory.flash_budget: see _fit.
    hyper.batch None: augment chooses it (_default_batch). `tune(batch)`: (layer_lrs, their
    record) found for a model of that batch (`--lr auto`'s range test), called for the batch
    the model gets, in place of hyper's rates. `graph` is left as it was: the training graph
    is built on a copy (4 ms for MCUNet-5FPS), so one parsed model serves many augments."""
    graph = copy.deepcopy(graph)
    hyper = hyper or autodiff.Hyper()
    _check_hyper(hyper if hyper.batch is not None else replace(hyper, batch=1))
    _check_input(graph)             # once: every model below is built from this graph
    if hyper.batch is None:
        return _default_batch(graph, scheme_spec, num_classes, hyper, fuse, reorder, lr_rule,
                              memory, tune)
    if tune is not None:
        hyper, lr_rule = _tuned(hyper, tune)
    return _fitted(graph, scheme_spec, num_classes, hyper, fuse, reorder, lr_rule, memory)


def _tuned(hyper: autodiff.Hyper, tune) -> tuple[autodiff.Hyper, dict]:
    layer_lrs, record = tune(hyper.batch)
    return replace(hyper, lr=None, bias_lr=None, layer_lrs=layer_lrs), record


def _fitted(graph: Graph, scheme_spec, num_classes, hyper, fuse, reorder, lr_rule,
            memory: MemoryOptions | None) -> Augmented:
    """_augment, within memory.flash_budget (_fit)."""
    memory = MemoryOptions() if memory is None else memory
    if memory.flash_budget is None:
        return _augment(graph, scheme_spec, num_classes, hyper, fuse, reorder, lr_rule, memory)
    check_flash_budget(memory.flash_budget)
    pristine = copy.deepcopy(graph)
    first = _augment(graph, scheme_spec, num_classes, hyper, fuse, reorder, lr_rule, memory)

    def again(give_up: frozenset) -> Augmented:
        # the first run's rates (derived from the same input model) and rule, as given
        return _augment(copy.deepcopy(pristine), scheme_spec, num_classes, first.hyper, fuse,
                        reorder, first.metadata["lr_rule"],
                        replace(memory, give_up=memory.give_up | give_up))
    return _fit(first, memory.flash_budget, again)


# The batch augment chooses where the user gives none (Hyper.batch None, the CLI's default).
DEFAULT_BATCH = 8


@dataclass
class BatchChoice:
    batch: int
    why: str | None           # None where nothing was weighed (the scheme trains weights)


def _default_batch(graph: Graph, scheme_spec, num_classes, hyper, fuse, reorder, lr_rule,
                   memory, tune) -> Augmented:
    """DEFAULT_BATCH where the scheme trains no pretrained weight (only biases and a new
    head) and the training model, accumulators included, fits the board's SRAM
    (tflm_memory.SRAM_BUDGET, as `plan` counts it for TFLM) and the budget a searched scheme
    file was searched under (_batch_fits); batch 1 otherwise. Why a batch
    there: a head trained on a frozen body from one sample a step is badly conditioned
    (README, "The person detector's bias-only ceiling"): the person detector's bias-only
    reaches 33.0 +- 2.0% in 300 steps of batch 1 and 61.4 +- 0.7% in 300 of batch 8
    (benchmarks/RESULTS.md, "The batch in every engine, round 23"), for 21,224 B of
    accumulators. Why not where weights train: their accumulators are 4 bytes a trained
    weight (2-12x the arena of the paper's schemes, RESULTS "batch-accumulators"), and
    their defaults reach their accuracy at batch 1. The chosen batch and why are in the
    result's batch_choice.
    The model-derived rates' probe runs once for both batches (it does not depend on the
    batch: lr.head_boost scales its result). With `tune` (a range test, minutes), the batch
    is first sized with the model-derived rates, so that tune runs once, for the batch the
    model gets; the tuned model is measured again (the rates change no byte of SRAM, but
    the file's size, and so what the flash budget gives up, may differ)."""
    pristine = graph                  # augment's own copy; each build edits a copy of it
    derived = None

    def build(batch: int, tuned: bool = True) -> Augmented:
        nonlocal derived
        h, rule = replace(hyper, batch=batch), lr_rule
        if tune is not None and tuned:
            h, rule = _tuned(h, tune)
        elif h.lr is None and h.layer_lrs is None:
            if derived is None:
                from . import lr
                derived = lr.model_rates(pristine, scheme_spec, num_classes, h.seed)
            h, rule = default_rates(pristine, scheme_spec, num_classes, h, derived)
        return _fitted(copy.deepcopy(pristine), scheme_spec, num_classes, h, fuse, reorder,
                       rule, memory)

    if _trains_pretrained_weights(pristine, scheme_spec, num_classes):
        result = build(1)
        result.batch_choice = BatchChoice(1, None)
        return result
    result = build(DEFAULT_BATCH, tuned=False)
    fits, why = _batch_fits(result)
    if fits and tune is not None:
        result = build(DEFAULT_BATCH)
        fits, why = _batch_fits(result)
    if not fits:
        result = build(1)
    result.batch_choice = BatchChoice(DEFAULT_BATCH if fits else 1, why)
    return result


def _batch_fits(result: Augmented) -> tuple[bool, str]:
    """Whether a model of DEFAULT_BATCH is within the SRAM budget and, for a scheme file
    `search` wrote, within the budget it was searched under, as search measured it (its
    target's planner, search.budget): search counted no accumulators (it plans batch 1), and
    a user who searched under 100 KB expects the model to take at most that. Why, as augment
    prints it."""
    acc = tflm_memory.account(result.graph, 0)    # the file's size is flash, not SRAM: 0
    searched = result.scheme.searched
    note = "" if searched is None else \
        f", the --budget its search had (target {searched['target']})"
    # (what, where its SRAM is counted, its bytes, the limit, why that limit)
    limit, why = tflm_memory.SRAM_BUDGET, ""
    if searched is not None and searched["target"] == "tflm" and \
            searched["budget_bytes"] < limit:
        limit, why = searched["budget_bytes"], note
    checks = [("the model", "under TFLM", acc["sram_total"], limit, why)]
    if searched is not None and searched["target"] != "tflm":
        from .codegen.program import CodegenError
        from .search.budget import planner
        from .tflite_io import serialize
        try:
            total = planner(searched["target"])(result.graph,
                                                result.written or serialize(result.graph))[0]
        except CodegenError as e:        # batch 1 was generated when it was searched
            return False, (f"a batch of {DEFAULT_BATCH} cannot be generated, and the scheme "
                           f"was searched for the generated program ({e})")
        checks.append(("the generated program", "as codegen plans it", total,
                       searched["budget_bytes"], note))
    n = acc["accumulators"]
    for who, where, used, most, why in checks:
        if used > most:
            return False, (f"a batch of {DEFAULT_BATCH} would take {who} to {used:,} B of "
                           f"SRAM {where} ({n:,} B of accumulators), over {most:,}{why}")
    return True, (f"the scheme trains no pretrained weight, and with its {n:,} B of "
                  "accumulators " + " and ".join(
                      f"{who} takes {used:,} B of SRAM {where}, within {most:,}{why}"
                      for who, where, used, most, why in checks))


def _trains_pretrained_weights(graph: Graph, scheme_spec, num_classes) -> bool:
    """Whether the scheme trains any weight of the input model (a new head left out), read
    from the scheme as _augment parses it; a bad scheme raises what augment would (the
    model was checked by augment)."""
    exclude = {find_classifier(graph)[0]} if num_classes is not None else set()
    return any(u.weight_channels for u in schemes.parse(scheme_spec, graph, exclude)
               .layers.values())


def _check_input(graph: Graph) -> None:
    if METADATA_KEY in graph.metadata:
        raise ModelError("this is already a training model (it has tflite_train metadata)")
    ops.validate(graph)
    # The training model takes one sample an Invoke (batches accumulate across Invokes,
    # --batch): a forward of batch 2 would hand the new head two samples and one label.
    for index in graph.inputs:
        t = graph.tensors[index]
        if len(t.shape) > 1 and t.shape[0] != 1:
            raise ModelError(f"input {t.name!r} has batch {t.shape[0]} (shape "
                             f"{tuple(t.shape)}): augment needs a batch-1 model (training "
                             "batches accumulate over Invokes: --batch B)")


def check_flash_budget(budget) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise TTError(f"--flash-budget must be a positive number of bytes, got {budget!r}")


# What a conversion costs in the file beyond its tensors' data (flash_added), estimated: for
# each new constant tensor (two for requantization in flash, three for a split filter) its
# Tensor and Buffer tables, shape, vector lengths, the data's 16-byte alignment and a share
# of the TT_* op's custom options against the builtin's (TENSOR_OVERHEAD), and the layer's
# name three times (in the tensors' names and in the metadata's record of the pass).
# Measured: 272-288 B for a requantization (two tensors) and 480 B for a split (three) in
# MCUNet's int8 training model (names of 10-20 characters); 599 B a requantization in the
# zoo's mobile model (names of about 100). The estimate ranks and picks the conversions to
# give up; the written bytes decide (_fit serializes the model).
TENSOR_OVERHEAD = 144


def _fit(first: Augmented, budget: int, again) -> Augmented:
    """The model, as augment writes it, with TFLM's and our code (tflm_memory.TFLM_CODE_BYTES)
    within `budget` bytes of flash. The flash-adding conversions (requantization in flash,
    filters split into trained and frozen parts) are given up (_next_give_up), and augment
    runs again without them (`again(layers)`) until the serialized model fits. If even
    giving up every one cannot make it fit, none is given up: the SRAM they save would be
    lost for nothing, the model is still written (it is the user's; the
    budget is advice) and the record says it does not fit. The record (metadata memory.
    flash_budget) is left out when the budget is the default and nothing was given up, so
    that such models are byte for byte those of augment before the budget."""
    from .tflite_io import serialize
    code = tflm_memory.TFLM_CODE_BYTES

    def size(result: Augmented, given: list[dict], fits: bool = True) -> int:
        record = None
        if given or not fits or budget != tflm_memory.FLASH_BUDGET:
            # compact: every byte of it is flash too ({pass: {layer: SRAM bytes}})
            by_pass: dict[str, dict[str, int]] = {}
            for g in given:
                by_pass.setdefault(g["pass"], {})[g["layer"]] = g["sram_bytes"]
            record = {"budget": budget, "tflm_code": code, "fits": fits, "given_up": by_pass,
                      "sram_cost": sum(g["sram_bytes"] for g in given)}
        result.memory.flash, result.memory.given_up = record, list(given)
        result.metadata["memory"] = result.memory.record()
        result.graph.metadata[METADATA_KEY] = json.dumps(result.metadata).encode()
        result.written = serialize(result.graph)
        return len(result.written)

    total = size(first, []) + code
    if total <= budget:
        return first
    given: list[dict] = []
    result = first
    while True:
        names = {g["layer"] for g in given}
        left = [c for c in _flash_conversions(result) if c["layer"] not in names]
        if not left:
            break                                    # cannot fit, even without them all
        excess = total - budget
        while excess > 0 and left:
            c = _next_give_up(left, excess)
            left.remove(c)
            given.append(c)
            excess -= c["flash_bytes"]
        result = again(frozenset(g["layer"] for g in given))
        total = size(result, given) + code
        if total <= budget:
            return result
    size(first, [], fits=False)
    return first


def _flash_conversions(result: Augmented) -> list[dict]:
    """The conversions of `result` that added flash: what each saves of SRAM and costs of
    flash (the file's bytes, estimated: its tensors' data + TENSOR_OVERHEAD a tensor and
    its name); a requantization's forward MACs too (what runs on TFLM's kernels instead of
    ours once it is given up)."""
    m = result.memory
    macs = _requantized_macs(result.graph)
    return [{"layer": c.layer, "pass": what, "sram_bytes": c.sram_saved,
             "flash_bytes": c.flash_added + tensors * TENSOR_OVERHEAD + 3 * len(c.layer),
             **({"macs": macs.get(c.layer, 0)} if what == REQUANT else {})}
            for what, tensors, done in ((REQUANT, 2, m.flash_requant),
                                        ("split filter", 3, m.split)) for c in done]


REQUANT = "requantization in flash"


def _give_up_order(c: dict) -> tuple:
    """Which conversion the flash budget gives up first. A requantization given up costs
    about as much SRAM as it frees flash (TFLM keeps the same multipliers and shifts in its
    persistent arena: 40.8 KB of SRAM for 38.9 KB of flash on MCUNet-5FPS 99kb), so what
    tells them apart is speed: the layer then runs on TFLM's kernels, which on a build
    without optimized kernels (the rig's) take 3-4x the instructions of ours (round 27: four
    layers given up took MCUNet's step from 52.1 to 129.5 M instructions). The fewest
    forward MACs per flash byte go first. A split filter given up keeps the whole filter in
    SRAM (tens of KB for a few hundred bytes of flash) and not a MAC more: after every
    requantization, the least SRAM per flash byte first."""
    if c["pass"] == REQUANT:
        return 0, c["macs"] / c["flash_bytes"], c["sram_bytes"] / c["flash_bytes"], c["layer"]
    return 1, 0.0, c["sram_bytes"] / c["flash_bytes"], c["layer"]


def _next_give_up(left: list[dict], excess: int) -> dict:
    """The conversion to give up next, `excess` bytes of flash still to find: of the first
    group of _give_up_order, the cheapest one that alone covers the excess (fewest MACs,
    then least SRAM) where one does, so that no more is given up than needed (round 27's
    1.1 KB would otherwise have cost a 4.9 KB one); else the cheapest per flash byte."""
    group = min(_give_up_order(c)[0] for c in left)
    cover = [c for c in left if _give_up_order(c)[0] == group and c["flash_bytes"] >= excess]
    if cover:
        return min(cover, key=lambda c: (c.get("macs", 0), c["sram_bytes"], c["layer"]))
    return min(left, key=_give_up_order)


def _requantized_macs(graph: Graph) -> dict[str, int]:
    """{layer: forward MACs} of the ops reading a requantization's multipliers from flash
    (tt_forward.from_builtin names them LAYER/multipliers; a streamed pair counts its
    whole op for each of its layers)."""
    readers = {}
    for k, op in enumerate(graph.operators):
        for i in op.inputs:
            name = graph.tensors[i].name if i >= 0 else ""
            if name.endswith("/multipliers"):
                readers[name.removesuffix("/multipliers")] = \
                    int(ops.get(graph, k).macs(graph, op))
    return readers


def _augment(graph: Graph, scheme_spec: str, num_classes: int | None,
             hyper: autodiff.Hyper | None, fuse: bool, reorder: bool, lr_rule: dict | None,
             memory: MemoryOptions) -> Augmented:
    hyper = hyper or autodiff.Hyper()
    _check_hyper(hyper)             # the input graph: checked by augment (_check_input)
    if hyper.lr is None and hyper.layer_lrs is None:
        hyper, lr_rule = default_rates(graph, scheme_spec, num_classes, hyper)
    elif lr_rule is None:
        lr_rule = ({"rule": "given", "lr": hyper.lr, "bias_lr": hyper.effective_bias_lr}
                   if hyper.layer_lrs is None else {"rule": "given per layer"})
    n_original = len(graph.tensors)
    head = None
    if num_classes is not None:
        head, logits = replace_head(graph, num_classes, hyper.seed,
                                    head_headroom(_head_boost_of(lr_rule)))
    else:
        logits = find_logits(graph)
    scheme = schemes.parse(scheme_spec, graph, exclude={head} if head is not None else set())
    if head is not None:
        depth = graph.tensors[graph.operators[head].inputs[1]].shape[1]
        scheme.layers[head] = schemes.LayerUpdate(head, bias=True, weight_channels=depth)
    if not scheme.layers:
        raise TTError(f"scheme {scheme_spec!r} trains nothing")
    unshared = unshare(graph, scheme)
    from . import headroom
    rescaled = headroom.apply(graph, scheme.layers, hyper.weight_headroom,
                              {head} if head is not None else set(), logits)
    label = graph.add_tensor(Tensor("label", (1,), "int32"))
    loss = graph.add_tensor(Tensor("loss", (1,), "float32"))
    bwd = autodiff.build(graph, scheme, hyper, logits, label, loss, fuse=fuse,
                         residual_layers={head} if head is not None and hyper.head_residual
                         else set())
    filter_channels = {k: graph.tensors[bwd.forward_ops[k].inputs[1]].shape[-1]
                       for k, u in bwd.trained.items() if u.weight_channels}
    graph.metadata.pop(OFFLINE_KEY, None)        # the inference model's plan, if any
    choices = MemoryChoices()
    from .passes.builtins import builtin_activations, hidden_activations
    activations = builtin_activations(graph)
    if memory.split_filters:
        from .passes.split_filters import split_filters
        choices.split = split_filters(graph, bwd.variables, memory.give_up)
    init = _make_variables(graph, bwd.variables,
                           bwd.momentum + bwd.accumulators + bwd.residuals)
    graph.operators.insert(0, init)
    order_name = "autodiff"
    if reorder:
        order_name = _reorder(graph)
    if hyper.grad == "int8":
        from .memory import choose_passes
        choose_passes(graph)
    graph.inputs = graph.inputs + [label]
    graph.outputs = graph.outputs + [loss]
    gone: list[int] = []
    if memory.stream:
        from .passes.stream import stream
        choices.streamed, gone = stream(graph)
    if memory.in_place:
        from .passes.inplace import in_place, with_passes
        choices.in_place = with_passes(graph) if hyper.grad == "int8" else in_place(graph)
    if memory.flash_requant:
        from .passes.forward_ops import to_tt_ops
        choices.flash_requant = to_tt_ops(graph, memory.target, memory.give_up)
    logits, label, loss = _prune(graph, bwd, choices, n_original, set(gone), logits, label,
                                 loss)
    # the float model (fp32.py, passes.builtins.joined) needs them back
    choices.activations = hidden_activations(graph, activations)
    from . import alias_plan
    if alias_plan.aliases(graph):
        table = alias_plan.plan(graph)[0]
        unsafe = alias_plan.problems(graph, table)
        if unsafe:
            raise AssertionError(f"internal: an unsafe in-place plan: {unsafe[0]}")
        graph.metadata[OFFLINE_KEY] = alias_plan.metadata(table)
    meta = {
        "format": "tflite-train training model", "version": FORMAT_VERSION,
        "scheme": scheme.name, "num_classes": num_classes,
        "new_head": head is not None,
        "qas": hyper.qas, "lr": hyper.lr,
        "bias_lr": hyper.effective_bias_lr, "lr_rule": lr_rule,
        "momentum": hyper.momentum, "rounding": hyper.rounding, "seed": hyper.seed,
        "decay_steps": hyper.decay_steps, "half_life_steps": hyper.effective_half_life,
        # absent at batch 1, so that a batch-1 model's bytes are what they were
        **({"batch": hyper.batch} if hyper.batch > 1 else {}),
        # absent at 1, so that such a model's bytes are what they were; with the rule
        # ("auto") absent where it rescales nothing, for the same reason
        **({"weight_headroom": {"factor": headroom.factor(hyper.weight_headroom),
                                **({"rule": headroom.AUTO}
                                   if hyper.weight_headroom == headroom.AUTO else {}),
                                "layers": rescaled}}
           if (rescaled if hyper.weight_headroom == headroom.AUTO
               else headroom.factor(hyper.weight_headroom) != 1.0) else {}),
        # the new head's rounding residual; absent without one, so that such a model's
        # bytes are what they were before round 27
        **({"head_residual": True} if bwd.residuals else {}),
        "fused_updates": fuse, "schedule": order_name, "grad": hyper.grad,
        **({"grad_rounding": hyper.grad_rounding} if hyper.grad == "int8" else {}),
        "logits": graph.tensors[logits].name,
        "trained": [{"layer": _layer_name(graph, bwd, k), "bias": u.bias,
                     "weight_channels": u.weight_channels,
                     "filter_channels": filter_channels.get(k),
                     "lr": hyper.rates(k)[0] if u.weight_channels else None,
                     "bias_lr": hyper.rates(k)[1] if u.bias else None}
                    for k, u in sorted(bwd.trained.items())],
        "variables": [graph.tensors[v].name for v in dict.fromkeys(bwd.variables)],
        "memory": choices.record(),
        "unshared": unshared,
    }
    graph.metadata[METADATA_KEY] = json.dumps(meta).encode()
    return Augmented(graph, scheme, bwd, head, logits, label, loss, meta, hyper, choices,
                     unshared)


def _prune(graph: Graph, bwd: autodiff.BackwardGraph, choices: MemoryChoices,
           n_original: int, gone: set[int], *tensors: int) -> list[int]:
    """Drop the tensors nothing uses any more (passes/prune.py), renumbering the record of
    what autodiff built along with the graph; returns `tensors` renumbered. The bytes
    reported are the input model's constants dropped (its replaced classifier)."""
    from .passes.prune import prune_tensors
    record = bwd.forward_ops + bwd.save_ops + bwd.backward_ops + \
        ([bwd.loss_op] if bwd.loss_op is not None else [])
    original = graph.tensors[:n_original]
    new = prune_tensors(graph, record, drop=gone)
    bwd.variables = [new[t] for t in bwd.variables]
    bwd.momentum = [new[t] for t in bwd.momentum]
    bwd.accumulators = [new[t] for t in bwd.accumulators]
    bwd.residuals = [new[t] for t in bwd.residuals]
    bwd.grads = {new[a]: new[b] for a, b in bwd.grads.items()}
    bwd.param_grads = {new[a]: new[b] for a, b in bwd.param_grads.items()}
    bwd.grad_scales = {new[a]: new[b] for a, b in bwd.grad_scales.items()}
    choices.pruned_bytes = sum(t.nbytes for i, t in enumerate(original)
                               if i not in new and t.data is not None)
    return [new[t] for t in tensors]


def default_rates(graph: Graph, scheme_spec: str, num_classes: int | None,
                  hyper: autodiff.Hyper, rates=None) -> tuple[autodiff.Hyper, dict]:
    """Hyper with the model-derived per-layer rates (lr.py), and their record. An explicit
    bias lr replaces every bias's rate. `rates`: lr.model_rates of this graph, scheme,
    classes and seed, where already measured."""
    from . import lr as lr_rule
    if rates is None:
        rates = lr_rule.model_rates(graph, scheme_spec, num_classes, hyper.seed)
    boost = lr_rule.schedule_boost(hyper)
    w_boost = lr_rule.weight_boost(hyper, rates.density)
    h_boost = lr_rule.head_boost(hyper)
    layer_lrs = {k: (w, hyper.bias_lr if hyper.bias_lr is not None else b)
                 for k, (w, b) in lr_rule.scaled(rates, boost, w_boost, h_boost).items()}
    record = lr_rule.base_record(boost, w_boost, rates.density, h_boost)
    return replace(hyper, layer_lrs=layer_lrs), record


def _head_boost_of(lr_rule: dict) -> float:
    """The head's rate factor a record of rates says (the model-derived rule's, or the base
    of a range test's)."""
    return lr_rule.get("head_boost", lr_rule.get("base", {}).get("head_boost", 1.0))


def head_headroom(head_boost: float = 1.0) -> float:
    """The new head's grid follows its rate: HEAD_WEIGHT_HEADROOM times the factor on its
    NLMS rates (lr.head_boost, the batch), so that a step is as many LSBs as at batch 1 and
    the weights it grows do not saturate (the person detector's bias-only at batch 8 and 8x
    the rate: 54.8% on the 8x grid, 64.5% on the 64x one, seed 0, 1000 validation samples;
    benchmarks/RESULTS.md, "The batch in every engine, round 23"; the base was 8x then:
    on today's 96x, 61.9 +- 0.6% after 300 updates, 3 seeds, 3000 samples,
    benchmarks/default_runs.json)."""
    return HEAD_WEIGHT_HEADROOM * head_boost


def _reorder(graph: Graph) -> str:
    """Adopt the list scheduler's order if TFLM's arena plan for it is smaller."""
    from . import memory, schedule
    before = memory.plan(graph).arena_bytes
    original = list(graph.operators)
    schedule.apply(graph, schedule.greedy(graph))
    if memory.plan(graph).arena_bytes < before:
        return "greedy list schedule"
    graph.operators = original
    return "autodiff"


def _layer_name(graph: Graph, bwd: autodiff.BackwardGraph, k: int) -> str:
    return graph.tensors[bwd.forward_ops[k].outputs[0]].name


def _check_hyper(h: autodiff.Hyper) -> None:
    if h.lr is not None and not (math.isfinite(h.lr) and h.lr > 0):
        raise TTError(f"--lr must be a positive number, got {h.lr}")
    if h.bias_lr is not None and not (math.isfinite(h.bias_lr) and h.bias_lr > 0):
        raise TTError(f"--bias-lr must be a positive number, got {h.bias_lr}")
    if not (0 <= h.momentum < 1):
        raise TTError(f"--momentum must be in [0, 1), got {h.momentum}")
    if h.rounding not in ("nearest", "stochastic"):
        raise TTError(f"--rounding must be nearest or stochastic, got {h.rounding!r}")
    if h.decay_steps < 0:
        raise TTError(f"--lr-decay-steps must be >= 0, got {h.decay_steps}")
    if h.half_life is not None and h.half_life < 0:
        raise TTError(f"--lr-half-life must be >= 0, got {h.half_life}")
    if h.decay_steps and h.half_life:
        raise TTError("--lr-decay-steps (cosine) and --lr-half-life (inverse time) are two "
                      "schedules; give one")
    if not 0 <= h.seed <= 0xFFFFFFFF:
        raise TTError(f"--seed must be in 0..4294967295, got {h.seed}")
    if isinstance(h.batch, bool) or not isinstance(h.batch, int) \
            or not 1 <= h.batch <= MAX_BATCH:
        raise TTError(f"--batch must be an integer in 1..{MAX_BATCH}, got {h.batch!r}")
    if h.grad not in GRAD_DTYPES:
        raise TTError(f"--grad must be {' or '.join(GRAD_DTYPES)}, got {h.grad!r}")
    if h.grad_rounding not in ("nearest", "stochastic"):
        raise TTError(f"--grad-rounding must be nearest or stochastic, got {h.grad_rounding!r}")
    from .headroom import check
    check(h.weight_headroom)


def training_metadata(graph: Graph) -> dict:
    blob = graph.metadata.get(METADATA_KEY)
    if blob is None:
        raise ModelError("not a training model (no tflite_train metadata): run "
                         "`tflite-train augment` first")
    try:
        meta = json.loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ModelError("the tflite_train metadata is corrupt") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("logits"), str):
        raise ModelError("the tflite_train metadata is corrupt (no logits tensor named)")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelError(f"training model format version {printable(repr(meta.get('version')))}"
                         " is not "
                         f"supported (this tflite-train reads version {FORMAT_VERSION}): run "
                         "`tflite-train augment` again on the original model")
    return meta
