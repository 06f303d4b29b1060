"""Learning rates derived from the model (augment's default) and the range test of
`augment --lr auto --data D`.

Why one constant cannot serve: QAS makes an int8 step exactly an fp32 SGD step on the real
values (dW = -lr * G_W), so what an lr does depends on the real-valued gradient next to the
real-valued parameter, and those differ by orders of magnitude between models. The new head
of MCUNet-5FPS and MobileNetV2-w0.35 reads linear (BN-folded, un-activated) features of
range +-20 whose squared norm is about 350; the person detector's reads average-pooled
ReLU6 features whose squared norm is about 2. The head's weight gradient is the logit
gradient times the features, so one step of the same lr moves the logits about 200x further
on the paper's models: lr 0.05 throws them about, while 0.2 is right for the person
detector. Inside the network, BN folding, activation ranges and the number of positions a
bias gradient sums over change |G| / |W| by another 10x from layer to layer.

The rule, per update op, on real values measured by `probe`:
  * the new head (random, must learn everything): normalized LMS, lr = ETA_HEAD / |x|^2
    with |x|^2 the mean squared norm of its input features, so that one step moves the
    sample's logits by ETA_HEAD times their gradient (dz = -lr |x|^2 g), whatever the
    features' scale. Stable for ETA_HEAD < 2 on a linear model; the softmax's curvature is
    at most 1/2. Its bias is a weight on a constant input taken at the features' rms,
    |x| / sqrt(depth), not at 1, so lr_b = lr |x|^2 / depth: one step moves the logits
    through it by ETA_HEAD / depth x g, as through a typical feature's weight. With the
    input at 1 the bias's share of the step is 1 / |x|^2: nothing on the paper's models
    (|x|^2 200-500), but 40% on the person detector's (|x|^2 about 1.4, 73% of it the
    features' common mean), whose bias and mean direction then track the last few labels
    (its int8 head simulated on its frozen features, 300 steps of the default schedule from
    eta 2 on images, 10 sample orders: 30.5% with the bias at the weights' rate, 33.8%
    without it; RESULTS.md, "The person detector's bias-only default, round 18").
    ETA_HEAD = 1: with the image-like probe inputs below, 0.5 left the person detector's
    head at 30.8% (3 seeds, 300 steps) against 33.0% at 1, while the paper's models' heads
    had run at 0.7 and 0.9 on images with the former uniform probe (their |x|^2 on uniform
    codes was 0.76x and 0.53x that on images) and run at 1.6 and 1.05 now.
  * pretrained weights and biases (they hold features a fine-tuning step must only nudge):
    a trust ratio as in LARS, lr = rho * |p| / |G_p|, so one step moves each tensor by the
    same fraction rho of its own norm whatever its BN-folded scale, fan-in or positions.
    Biases get a 20x smaller fraction than weights: a bias gradient sums the output gradient
    over every position of its layer, so its batch-1 steps are the noisiest. Measured on
    MobileNetV2-w0.35's 99kb scheme, 300 constant-rate steps on Fashion-MNIST (one run each,
    end-point accuracy): every tensor at 5e-3: 20%; weights 5e-3, biases 5e-5: 26%;
    weights 1e-3 or 5e-4, biases 5e-5: 49% or 53%.
    Under a cosine (`--lr-decay-steps`) the weights' ratio is RHO_WEIGHTS x 1 / the scheme's
    `trained_density` (the fraction of the weights from the first trained layer on that
    train), to a power of two, at most COSINE_WEIGHT_BOOST = 4: 4x on the paper's 99kb
    schemes (density 0.12-0.27), 1x on last:N and full. Their QAS steps are 0.01-0.07 LSB, so
    stochastic rounding adds as much noise as they move, and 4x about halves that ratio; a
    trust ratio moves every trained tensor by the same fraction of its norm, so a scheme
    that trains a few tensors (or channels) of many layers changes the network less per step
    and can take larger steps, while one that trains everything of its last blocks cannot
    (1000 steps, QAS - fp32: MobileNetV2 99kb -0.60 at 1x, -0.18 at 4x; at 4x fp32 lost 0.85
    point on MobileNetV2 last:6). A cosine of known length starts there and anneals to 0 at
    the run's end; the inverse-time default would start at 3x 4x = 12x and decay only as
    1/t (MCUNet 99kb, 300 steps: 69% -> 57%), so it keeps 1x.
`probe` runs the training graph's backward pass (no update) on PROBE_SAMPLES seeded
random inputs with random labels. An image input gets dead-leaves images (`dead_leaves`:
grey ellipses occluding each other on a grey background, lightly blurred), the standard
random model of natural images' flat regions and soft edges, not uniform codes: those put
an edge at every pixel and drive a network's edge detectors far harder than images do. On
the person detector the new head's |x|^2 was 2.6x that on Fashion-MNIST with uniform codes
(its head steps 2.6x too small) and is 1.25x with dead leaves; on MCUNet-5FPS and
MobileNetV2-w0.35 0.76x and 0.53x, now 0.61x and 0.95x; the pretrained tensors' |G| are
within 0.71-1.19x of those on images for all three (uniform codes: 0.28-1.61x; 8 probe
inputs against 8 images, tests/test_train_defaults.py checks |x|^2 within 1.75x). The
gradients' scale comes mostly from the weights and activation scales, not from the data.
`--lr auto` tunes the one global factor that remains on the user's data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import TTError
from .ir import Graph

ETA_HEAD = 1.0            # new head: one step moves a sample's logits by this x their gradient
RHO_WEIGHTS = 1e-3        # pretrained weights: fraction of their norm moved per step
RHO_BIASES = 5e-5         # pretrained biases: the same (see above)
PROBE_SAMPLES = 4
# the probe's images (dead_leaves): ellipses per image, and the blur as a fraction of the side
LEAVES = 8
LEAVES_BLUR = 0.02
# The default schedule: inverse-time decay lr_t = lr_0 * HALF_LIFE / (HALF_LIFE + t), which
# needs no run length (train's --steps is rarely known when the model is augmented), from
# HALF_LIFE_BOOST times the rates above: those are tuned for a constant rate, and a decaying
# one can start higher and settle lower (benchmarks/RESULTS.md, "Default schedule").
HALF_LIFE = 30
HALF_LIFE_BOOST = 3.0
# the pretrained weights' largest further factor under a cosine (the docstring; RESULTS.md,
# "MobileNetV2 99kb's gap, round 8", "The pretrained weights' rate under the cosine, round
# 10" and "..., round 11")
COSINE_WEIGHT_BOOST = 4.0
# `--lr auto`: factors on the model-derived rates, each trained for `steps` on the data
AUTO_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
# ... and while the best of them is an end of what was tried (or every one diverged), one
# more factor of 2 past that end, at most this many times each way (x1/64 .. x64): a range
# test that stops at its edge picks the edge whatever lies beyond it, and the rule's rates
# come from random probe inputs, whose statistics a user's data need not share
AUTO_EXTEND = 4
AUTO_STEPS = 100
AUTO_HELD_OUT = 64


@dataclass
class LayerRates:
    weight: float              # lr of the layer's weights (also used when only the bias trains)
    bias: float
    rule: str                  # "nlms" (the new head) or "trust ratio"
    weight_ratio: float | None = None    # measured |G_W| / |W|
    bias_ratio: float | None = None      # measured |G_b| / |b|


class Rates(dict):
    """forward op -> LayerRates, and the scheme's `trained_density` (None: no pretrained
    weight trains), which sets the pretrained weights' factor under a cosine."""
    density: float | None = None


def probe_inputs(graph: Graph, n: int, seed: int) -> list[np.ndarray]:
    """Seeded random inputs with image-like statistics for an image input ([N, H, W, C]):
    `dead_leaves` codes, N images each; for any other input shape, codes spread uniformly
    over every int8 value. A float input gets the real values of the QUANTIZE that reads it
    (the data path also maps pixels onto the whole code range)."""
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    if len(t.shape) == 4 and min(t.shape[1:3]) >= 4:
        # a batched input [N, H, W, C] gets N images
        codes = [np.stack([dead_leaves(rng, t.shape[1], t.shape[2], t.shape[3])
                           for _ in range(t.shape[0])]) for _ in range(n)]
    else:
        codes = [rng.integers(-128, 128, size=t.shape) for _ in range(n)]
    if t.dtype == "int8":
        return [c.astype(np.int8) for c in codes]
    reader = next((op for op in graph.operators if op.inputs and op.inputs[0] == graph.inputs[0]
                   and op.kind == "QUANTIZE"), None)
    if t.dtype != "float32" or reader is None:
        raise TTError(f"cannot derive learning rates: input {t.name} is {t.dtype} (int8, or "
                      "float32 read by a QUANTIZE, expected); give --lr")
    q = graph.tensors[reader.outputs[0]].quant
    return [(np.float32(q.s) * (c - q.zp)).astype(np.float32) for c in codes]


def dead_leaves(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """One [h, w, c] image of int8 codes from the dead-leaves model of natural images: a
    random grey background occluded by LEAVES ellipses (semi-axes 5-40% of the side), each
    of one random grey level (per channel +- a little colour), then blurred by a Gaussian of
    LEAVES_BLUR x the side, as optics and resizing blur a camera image's edges. Flat regions
    and a few soft edges are what a network's features see in images; uniform codes are
    the opposite (every pixel an edge) and excite edge detectors far more (why: module
    docstring)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, c))
    img[:] = rng.uniform(-128, 127)
    for _ in range(LEAVES):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.4) * h, rng.uniform(0.05, 0.4) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[inside] = rng.uniform(-128, 127) + (rng.normal(0, 16, c) if c > 1 else 0.0)
    for axis, side in ((0, h), (1, w)):
        sigma = LEAVES_BLUR * side
        r = max(1, int(math.ceil(3 * sigma)))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        k /= k.sum()
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        padded = np.pad(img, pad, mode="reflect" if side > r else "edge")
        img = sum(k[j] * np.take(padded, np.arange(j, j + side), axis=axis)
                  for j in range(2 * r + 1))
    return np.clip(np.rint(img), -128, 127).astype(np.int16)


def probe(graph: Graph, scheme_spec: str, num_classes: int | None, seed: int,
          samples: int = PROBE_SAMPLES, inputs: list[np.ndarray] | None = None
          ) -> tuple[dict[int, dict], int | None, float | None]:
    """Real-valued norms of each trained layer's parameters and gradients at the initial
    point: forward op index -> {"w": |W|, "gw": rms |G_W|, "b": |b|, "gb": rms |G_b|} (only
    the trained ones), the new head's op index and the scheme's `trained_density`. Runs on
    a copy: `graph` is untouched. `inputs`: other inputs than `probe_inputs`' (`samples`
    of them), to compare the probe with data (benchmarks/probe_inputs.py)."""
    from .augment import MemoryOptions, augment
    from .autodiff import Hyper
    from .runtime.numpy_exec import Executor
    from .tf_float import dequantize
    # any explicit lr: the update ops are dropped below
    result = augment(graph, scheme_spec, num_classes, Hyper(lr=1.0, seed=seed), fuse=False,
                     reorder=False,
                     memory=MemoryOptions(False, False, False, flash_budget=None))
    tg = result.graph
    # gradients only: the update ops are dropped, so every sample sees the initial point
    tg.operators = [op for op in tg.operators
                    if op.kind not in ("TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS")]
    initial = {}
    init = next(op for op in tg.operators if op.kind == "TT_INIT")
    for c, v in zip(init.inputs[0::2], init.inputs[1::2]):
        initial[v] = tg.tensors[c].data
    owner = {}
    for k, op in enumerate(result.backward.forward_ops):
        if k in result.backward.trained:
            u = result.backward.trained[k]
            if u.weight_channels:
                owner[op.inputs[1]] = (k, "w")
            if u.bias:
                owner[op.inputs[2]] = (k, "b")
    ex = Executor(tg)
    classes = tg.tensors[result.logits].size
    rng = np.random.default_rng(seed + 1)
    sums: dict[int, dict] = {}
    if inputs is not None:
        samples = len(inputs)
    for x in probe_inputs(tg, samples, seed) if inputs is None else inputs:
        label = np.array([rng.integers(0, classes)], np.int32)
        values = ex.invoke([x, label])
        for p, grad in result.backward.param_grads.items():
            k, kind = owner[p]
            entry = sums.setdefault(k, {})
            if kind not in entry:
                # the whole tensor, also where a ratio < 1 trains its first input channels
                real = dequantize(tg.tensors[p], initial[p]).astype(np.float64)
                entry[kind] = float(np.linalg.norm(real))
                if kind == "w":
                    entry["fan_in"] = int(np.prod(tg.tensors[p].shape[1:]))
            entry["g" + kind + "2"] = entry.get("g" + kind + "2", 0.0) + float(
                np.sum(values[grad].astype(np.float64) ** 2))
    for entry in sums.values():
        for kind in ("w", "b"):
            if "g" + kind + "2" in entry:
                entry["g" + kind] = math.sqrt(entry["g" + kind + "2"] / samples)
    return sums, result.head, trained_density(tg, result.backward, result.head)


def trained_density(graph: Graph, backward, head: int | None) -> float | None:
    """The fraction of the pretrained weights that train, counted from the first layer
    whose weights train to the last one (the new head left out): 1 for last:N and full,
    0.12-0.27 for the paper's 99kb schemes. None where no pretrained weight trains."""
    from .scheme import LAYER_KINDS, trained_weights
    trained = {k: u.weight_channels for k, u in backward.trained.items()
               if u.weight_channels and k != head}
    if not trained:
        return None
    total = done = 0
    for k, op in enumerate(backward.forward_ops):
        if k < min(trained) or k == head or op.kind not in LAYER_KINDS:
            continue
        w = graph.tensors[op.inputs[1]]
        total += w.size
        done += trained_weights(w, trained.get(k, 0))
    return done / total


def model_rates(graph: Graph, scheme_spec: str, num_classes: int | None,
                seed: int) -> Rates:
    """The default per-layer learning rates (module docstring): forward op -> rates."""
    norms, head, density = probe(graph, scheme_spec, num_classes, seed)
    rates = Rates()
    rates.density = density
    for k, n in norms.items():
        w_ratio = n["gw"] / n["w"] if "gw" in n and n["w"] > 0 else None
        b_ratio = n["gb"] / n["b"] if "gb" in n and n["b"] > 0 else None
        if k == head:
            # NLMS: |G_W|^2 / |G_b|^2 = |x|^2 per sample (G_W = g x^T, G_b = g)
            features = n["gw2"] / n["gb2"] if n["gb2"] > 0 else 0.0
            lr_head = ETA_HEAD / features if features > 0 else ETA_HEAD
            # the bias as a weight on a constant input at the features' rms, not at 1:
            # lr_head |x|^2 / depth, which is ETA_HEAD / depth also where |x|^2 is 0
            lr_bias = ETA_HEAD / n["fan_in"]
            rates[k] = LayerRates(_sig(lr_head), _sig(lr_bias), "nlms", w_ratio, b_ratio)
            continue
        lr_w = RHO_WEIGHTS / w_ratio if w_ratio else None
        if b_ratio:
            lr_b = RHO_BIASES / b_ratio
        elif "gb" in n:
            # a zero bias has no norm to keep a fraction of: move it by RHO_BIASES of one
            # real unit per unit of gradient
            lr_b = RHO_BIASES / n["gb"] if n["gb"] > 0 else RHO_BIASES
        else:
            lr_b = None
        lr_w = lr_w if lr_w is not None else lr_b
        lr_b = lr_b if lr_b is not None else lr_w
        rates[k] = LayerRates(_sig(lr_w), _sig(lr_b), "trust ratio", w_ratio, b_ratio)
    return rates


def _sig(v: float) -> float:
    """Three significant digits: the rates are printed and stored, and no more is meant."""
    return float(f"{v:.3g}")


def scaled(rates: dict[int, LayerRates], factor: float, weight_factor: float = 1.0,
           head_factor: float = 1.0) -> dict[int, tuple[float, float]]:
    """(weight lr, bias lr) per layer: every rate x `factor`, and the pretrained weights'
    (trust ratio, measured weight gradient) also x `weight_factor`, the new head's NLMS
    rates (weights and bias) also x `head_factor`."""
    def extra(r: LayerRates, weight: bool) -> float:
        if r.rule == "nlms":
            return head_factor
        return weight_factor if weight and _pretrained_weight(r) else 1.0
    return {k: (_sig(r.weight * factor * extra(r, True)), _sig(r.bias * factor * extra(r, False)))
            for k, r in rates.items()}


def head_boost(hyper) -> float:
    """The further factor on the new head's NLMS rates: the batch B. NLMS sets the step that
    moves one sample's logits by ETA_HEAD times their gradient; an update of batch B steps
    along the mean of B samples' gradients, so B times that rate moves the head as far per
    sample as batch 1 does (the linear scaling rule), with B times less noise. Measured on
    the person detector's bias-only, 300 updates of batch 8, seed 0, 1000 validation
    samples: 52.0% at 1x, 64.5% at 8x (with the grid 8x coarser, augment's
    head_headroom), 61.9% with every layer's rate at 8x (benchmarks/RESULTS.md, "The
    batch in every engine, round 23"). The pretrained layers keep their rates: their
    trust ratio already sets a step per update."""
    return float(max(1, int(getattr(hyper, "batch", 1))))


def _pretrained_weight(r: LayerRates) -> bool:
    # without a weight ratio the layer trains only its bias, and .weight is the bias's rate
    return r.rule == "trust ratio" and bool(r.weight_ratio)


def schedule_boost(hyper) -> float:
    """The factor on the constant-rate rule for `hyper`'s schedule: HALF_LIFE_BOOST under
    the inverse-time decay, else 1 (a constant rate, or a cosine, which starts at the rule's
    rate and spends half the run above half of it; the pretrained weights' further factor
    under it is `weight_boost`'s)."""
    return HALF_LIFE_BOOST if hyper.effective_half_life > 0 else 1.0


def weight_boost(hyper, density: float | None = 1.0) -> float:
    """The further factor on the pretrained weights' trust ratio: under a cosine
    (`decay_steps` > 0) 1 / `density` (the scheme's `trained_density`) to the nearest power
    of two, at most COSINE_WEIGHT_BOOST (4 on the 99kb schemes, 1 on last:N and full); else 1
    (the inverse-time default and a constant rate)."""
    if hyper.decay_steps <= 0 or not density:
        return 1.0
    return min(COSINE_WEIGHT_BOOST, 2.0 ** round(math.log2(1.0 / density)))


def base_record(boost: float = 1.0, weights_boost: float = 1.0,
                density: float | None = None, heads_boost: float = 1.0) -> dict:
    """The model-derived rule and its constants, as the metadata records them
    (`weight_boost`: the pretrained weights' further factor, on top of `schedule_boost`;
    `trained_density`: the scheme's, which chose it under a cosine)."""
    return {"rule": "model-derived", "eta_head": ETA_HEAD, "rho_weights": RHO_WEIGHTS,
            "rho_biases": RHO_BIASES, "probe_samples": PROBE_SAMPLES,
            "schedule_boost": boost, "weight_boost": weights_boost,
            **({"head_boost": heads_boost} if heads_boost != 1.0 else {}),
            "trained_density": None if density is None else round(density, 4)}


def held_out_loss(trainer, indices) -> float:
    """Mean cross-entropy of the current parameters on `indices`, inference only (label
    -1: no update), from the dequantized logits the loss op reads."""
    graph = trainer.graph
    logits = next(op.inputs[0] for op in graph.operators if op.kind == "TT_LOSS_SOFTMAX_CE")
    q = graph.tensors[logits].quant
    total = 0.0
    for i in indices:
        x = to_model_input_of(trainer, i)
        z = q.s * (trainer.executor.invoke([x, np.array([-1], np.int32)])[logits]
                   .astype(np.float64).ravel() - q.zp)
        z -= z.max()
        total += math.log(np.exp(z).sum()) - z[int(trainer.data.labels[i])]
    return total / len(indices)


def to_model_input_of(trainer, i: int) -> np.ndarray:
    from .data import to_model_input
    return to_model_input(trainer.data.images[i], trainer.input)


@dataclass
class RangeTest:
    factor: float                       # the chosen multiple of the model-derived rates
    layer_lrs: dict[int, tuple[float, float]]
    record: dict                        # what the metadata keeps


def range_test(graph: Graph, scheme_spec: str, num_classes: int | None, hyper, dataset,
               steps: int = AUTO_STEPS, factors=AUTO_FACTORS, engine: str | None = None,
               report=None, progress=None, starting=None) -> RangeTest:
    """`--lr auto`: the model-derived rates times each factor, trained `steps` from the same
    start on the same seeded samples, scored by the mean loss on AUTO_HELD_OUT held-out
    samples; then, while the best is the largest or the smallest factor tried (or all
    diverged), the next factor of 2 past that end (AUTO_EXTEND at most each way). Both
    sample sets come from the part of the data `train` (default --val-split and --seed)
    trains on, so its validation samples stay unseen. `graph` is not touched. `starting(f)`
    is called before each candidate, `report(candidate)` after it, `progress(1)` each step.
    At hyper.batch B (a number: the batch the model gets) each candidate is the model of
    batch B, the new head's rates x B (head_boost) and its grid as augment gives them,
    trained `steps` updates of B samples, as `train --steps` counts them. A batch-B update
    applies the MEAN of its B gradients (the update ops' batch), so what a rate does depends
    on B: before round 25 the test ran at batch 1 and a batch-8 model got its rates without
    the head's x 8 (52.0% against 64.5% for the person detector's bias-only: head_boost)."""
    from dataclasses import replace

    from .augment import MemoryOptions, augment
    from .train import Trainer, sample_order, split
    train_idx, _ = split(len(dataset), 0.1, 0, 0)
    order = np.random.default_rng(hyper.seed).permutation(train_idx)
    held, fit = order[:AUTO_HELD_OUT], order[AUTO_HELD_OUT:]
    if len(held) < 8 or len(fit) < 8:
        raise LRTestError(f"--lr auto: {dataset.name} has too few samples for a range test "
                          f"({len(dataset)}; at least {AUTO_HELD_OUT + 8 * 2} wanted)")
    rates = model_rates(graph, scheme_spec, num_classes, hyper.seed)
    boost, w_boost = schedule_boost(hyper), weight_boost(hyper, rates.density)
    h_boost = head_boost(hyper)
    base = base_record(boost, w_boost, rates.density, h_boost)
    candidates = []

    def trial(f: float) -> None:
        nonlocal engine
        if starting:
            starting(f)
        layer_lrs = scaled(rates, f * boost, w_boost, h_boost)
        # no flash budget: the conversions it gives up change no bits of a trial; the base
        # record: the head's grid follows its rate (augment.head_headroom)
        result = augment(graph, scheme_spec, num_classes,
                         replace(hyper, lr=None, bias_lr=None, layer_lrs=layer_lrs),
                         lr_rule=base, memory=MemoryOptions(flash_budget=None))
        trainer = Trainer(result.graph, dataset, engine)
        engine = trainer.engine                 # None resolved once: runtime.host_engine
        losses = []
        samples = sample_order(fit, steps * trainer.batch, hyper.seed)
        for _ in range(steps):
            losses.append(trainer.update([next(samples) for _ in range(trainer.batch)]))
            if progress:
                progress(1)
            if not math.isfinite(losses[-1]):
                break
        diverged = not math.isfinite(losses[-1])
        score = math.inf if diverged else held_out_loss(trainer, held)
        tail = losses[len(losses) // 2:]
        candidates.append({"factor": f, "held_out_loss": None if diverged else round(score, 4),
                           "train_loss_last_half": round(float(np.mean(tail)), 4)
                           if not diverged else None, "diverged": diverged})
        if report:
            report(candidates[-1])

    for f in factors:
        trial(f)
    up = down = 0
    while True:
        finite = [c for c in candidates if not c["diverged"]]
        tried = sorted(c["factor"] for c in candidates)
        # equal losses (e.g. saturated logits at too high a rate): the smaller rate
        best = min(finite, key=lambda c: (c["held_out_loss"], c["factor"])) if finite else None
        if best is not None and best["factor"] == tried[-1] and up < AUTO_EXTEND:
            up += 1
            trial(tried[-1] * 2)
        elif (best is None or best["factor"] == tried[0]) and down < AUTO_EXTEND:
            down += 1
            trial(tried[0] / 2)
        else:
            break
    if best is None:
        raise LRTestError(f"--lr auto: every candidate learning rate diverged on this data "
                          f"(down to the model-derived rates x {tried[0]:g})")
    record = {"rule": "range test", "base": base, "chosen_factor": best["factor"],
              "steps_per_candidate": steps, "held_out_samples": len(held),
              "data": dataset.name, "engine": engine, "candidates": candidates}
    return RangeTest(best["factor"], scaled(rates, best["factor"] * boost, w_boost, h_boost),
                     record)


class LRTestError(TTError):
    pass
