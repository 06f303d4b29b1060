"""How far a new head on the person detector's frozen features can get on Fashion-MNIST:
why bias-only training of the person detector stays far below 60% in 300 steps.

The features are what the new head reads (the 256 average-pooled ReLU6 activations of
person_detect.tflite, dequantized), on `--train` training samples and the `--val` validation
samples of train's default split (seed 0). On them, in float64 (an upper bound for the int8
head: QAS makes its step the same SGD step, up to rounding):
  * batch-1 SGD, one pass over 300 samples from a zero head, like `train --steps 300`: the
    best of a sweep of normalized rates eta (lr = eta / mean |x|^2) for each schedule, on
    the raw features (what the head gets), centred, and standardised per feature (what no
    int8 head can do: its input has one scale and zero point);
  * the optimum of the convex problem: softmax regression fitted to convergence on 300 and
    on 3000 samples (full batch, L2 tuned on the validation set: an optimistic bound).
Also the new head itself, float and simulated int8 (its initial weights, grids and
stochastic rounding), at the best rate of each schedule; and |x|^2 on the data against
lr.probe's random inputs, from which augment sets the head's normalized LMS rate. Seeds 0, 1, 2 choose the samples; mean over them.

    nice .venv/bin/python benchmarks/person_ceiling.py [--train 3000] [--val 1000]
        [--features CACHE.npz]

`--head-bias` (round 18): instead, the new head simulated in int8 under augment's default
schedule (inverse time, T = lr.HALF_LIFE) for a sweep of eta0 (lr = eta0 / mean |x|^2 over
the training features), with its bias at the weights' rate (x1) and frozen (x0), over
`--orders` sample orders of 300 from the training features; into person_head_bias.json,
table person-head-bias.

`--samples` (round 20): 300 steps of batch B against 300 B steps of batch 1 on the raw
features, cosine, the best eta: whether 60% is a matter of steps or of samples seen; into
person_samples.json, table person-samples.

`--batch` (round 22): gradient accumulation, 300 steps of batch B = 1..16 from the new head's
initial int8 weights (per-sample gradients summed in float32, one update a step with their
mean), float and the int8 head on augment's grid and on coarser ones, at a sweep of eta and
at the rule's rates; into person_batch.json, table person-batch. Needs 4,800 training
features: `--train 5000 --val 3000`. `--accumulators`: the SRAM of one 4-byte accumulator
per trained parameter for each scheme of the shipped models against its `plan`; into
batch_accumulators.json, table batch-accumulators.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
JSON = HERE / "person_ceiling.json"
ETAS = (0.25, 0.5, 1, 2, 4, 8, 16)
SCHEDULES = {"constant": lambda t, n: 1.0, "inverse time, T=50": lambda t, n: 50 / (50 + t),
             "cosine over the run": lambda t, n: 0.5 * (1 + np.cos(np.pi * t / n))}
SEEDS = (0, 1, 2)


def builtins():
    """augment's memory passes off: the head stays TFLM's FULLY_CONNECTED (the passes move
    bytes, not values: the same features and head)."""
    from tflite_train.augment import MemoryOptions
    return MemoryOptions(split_filters=False, in_place=False, flash_requant=False, stream=False)


def head_quantization() -> dict:
    """The new head as augment writes it (seed 0): initial weight codes, weight, bias and
    logit scales, and |x|^2 on lr.probe's inputs."""
    from tflite_train import augment, lr, tflite_io
    from tflite_train.autodiff import Hyper
    norms, _, _ = lr.probe(tflite_io.load(MODEL), "bias-only", 10, 0)
    g = augment.augment(tflite_io.load(MODEL), "bias-only", 10, Hyper(half_life=0, grad="float32"),
                        memory=builtins()).graph
    fc = next(op for op in g.operators if op.kind == "FULLY_CONNECTED")
    w, b, z = (g.tensors[t] for t in (fc.inputs[1], fc.inputs[2], fc.outputs[0]))
    init = next(op for op in g.operators if op.kind == "TT_INIT")
    codes = next(g.tensors[c].data for c, v in zip(init.inputs[0::2], init.inputs[1::2])
                 if v == fc.inputs[1])
    return {"codes": codes.astype(np.float64), "w_scale": float(w.quant.scale[0]),
            "b_scale": float(b.quant.scale[0]), "z_scale": float(z.quant.s),
            "probe_x2": next(n["gw2"] / n["gb2"] for n in norms.values() if "gw2" in n)}


def features(n_train: int, n_val: int, cache: Path | None):
    """Pooled features of the bias-only training model (inference Invokes: nothing trains).
    `cache`: an .npz of earlier features (Xt, yt, Xv, yv, the same definition), used when
    it holds enough samples, else written."""
    if cache is not None and cache.exists():
        f = np.load(cache)
        if len(f["yt"]) >= n_train and len(f["yv"]) >= n_val:
            return f["Xt"][:n_train], f["yt"][:n_train], f["Xv"][:n_val], f["yv"][:n_val]
    out = extract(n_train, n_val)
    if cache is not None:
        np.savez(cache, Xt=out[0], yt=out[1], Xv=out[2], yv=out[3])
    return out


def extract(n_train: int, n_val: int):
    from tflite_train import augment, data, tflite_io
    from tflite_train.autodiff import Hyper
    from tflite_train.runtime.numpy_exec import Executor
    from tflite_train.train import split
    result = augment.augment(tflite_io.load(MODEL), "bias-only", 10, Hyper(grad="float32"), memory=builtins())
    g = result.graph
    head = next(op for op in g.operators if op.kind == "FULLY_CONNECTED")
    q = g.tensors[head.inputs[0]].quant
    ds = data.load("fashion-mnist", g.tensors[g.inputs[0]].shape)
    train_idx, val_idx = split(len(ds), 0.1, n_val, 0)
    ex = Executor(g, "c")
    inp = g.tensors[g.inputs[0]]

    def of(indices):
        return np.array([q.s * (ex.invoke([data.to_model_input(ds.images[i], inp),
                                           np.array([-1], np.int32)])[head.inputs[0]]
                                .astype(np.float64).ravel() - q.zp) for i in indices])
    return (of(train_idx[:n_train]), ds.labels[train_idx[:n_train]], of(val_idx),
            ds.labels[val_idx])


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def sgd(X, y, V, vy, eta, schedule, order, batch=1):
    """SGD of a linear head from zero: one step per `batch` samples of `order` (their mean
    gradient), lr = eta / mean |x|^2 times the schedule over the steps."""
    steps = np.asarray(order).reshape(-1, batch)
    lr0 = eta / float((X[steps.ravel()] ** 2).sum(1).mean())
    W, b = np.zeros((10, X.shape[1])), np.zeros(10)
    for t, idx in enumerate(steps):
        P = softmax(X[idx] @ W.T + b)
        P[np.arange(batch), y[idx]] -= 1
        step = lr0 * SCHEDULES[schedule](t, len(steps))
        W -= step * (P.T @ X[idx]) / batch
        b -= step * P.mean(0)
    return float((np.argmax(V @ W.T + b, 1) == vy).mean())


def head_update(W, b, dW, db, sw, sb, int8, rng):
    """The head's step W + dW, b + db (head_sgd's and head_batch_params'): int8 as the
    device's QAS update rounds it, each step stochastically onto the scale's grid (dW's
    draws, then db's) and the weights clipped to +-127 steps; float as it is."""
    if int8:
        dW = np.floor(dW / sw + rng.random(dW.shape)) * sw
        db = np.floor(db / sb + rng.random(db.shape)) * sb
        W = np.clip(W + dW, -127 * sw, 127 * sw)
    else:
        W = W + dW
    return W, b + db


def head_sgd(X, y, V, vy, eta, schedule, order, head, int8, seed, bias_factor=1.0,
             x2=None):
    """The new head from its initial int8 weights, float or simulated int8: weights and
    biases on their grids with stochastic rounding of each step (QAS: the real step is
    the float one), weights saturating at +-127, logits rounded to their grid.
    `schedule`: a name in SCHEDULES or a function (t, n) -> factor; `bias_factor`: the
    bias's rate over the weights'; `x2`: the |x|^2 that normalizes eta (default: the
    mean over the samples of `order`)."""
    rng = np.random.default_rng(seed)
    sw, sb, sz = head["w_scale"], head["b_scale"], head["z_scale"]
    lr0 = eta / (x2 if x2 is not None else float((X[order] ** 2).sum(1).mean()))
    factor = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    W, b = head["codes"] * sw, np.zeros(10)

    def logits(x):
        z = x @ W.T + b
        return np.clip(np.rint(z / sz), -128, 127) * sz if int8 else z
    for t, i in enumerate(order):
        p = softmax(logits(X[i]))
        p[y[i]] -= 1
        step = lr0 * factor(t, len(order))
        dW, db = -step * np.outer(p, X[i]), -step * bias_factor * p
        W, b = head_update(W, b, dW, db, sw, sb, int8, rng)
    return float((np.argmax(logits(V), 1) == vy).mean())


def class_means(X, y, V, vy, per_feature_variance):
    """No SGD at all: the head set from the 300 samples' class means (weight imprinting, a
    nearest-class-mean classifier in Euclidean distance), optionally divided by the pooled
    within-class variance of each feature (diagonal LDA). A device could accumulate either
    in one pass; it shows whether a data-derived starting head could reach 60%."""
    M = np.stack([X[y == c].mean(0) if (y == c).any() else np.zeros(X.shape[1])
                  for c in range(10)])
    var = ((X - M[y]) ** 2).mean(0) + 1e-6 if per_feature_variance else np.ones(X.shape[1])
    W, b = M / var, -0.5 * (M ** 2 / var).sum(1)
    return float((np.argmax(V @ W.T + b, 1) == vy).mean())


def optimum(X, y, V, vy, l2):
    mu, sd = X.mean(0), X.std(0) + 1e-6           # conditioning only: the same linear models
    Xs, Vs, n = (X - mu) / sd, (V - mu) / sd, len(y)
    W, b = np.zeros((10, X.shape[1])), np.zeros(10)
    for _ in range(2000):
        P = softmax(Xs @ W.T + b)
        P[np.arange(n), y] -= 1
        W -= 0.5 * (P.T @ Xs / n + l2 * W)
        b -= 0.5 * P.mean(0)
    return float((np.argmax(Vs @ W.T + b, 1) == vy).mean())


def measure(n_train: int, n_val: int, cache: Path | None) -> dict:
    X, y, V, vy = features(n_train, n_val, cache)
    head = head_quantization()
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    inputs = {"raw": (X, V), "centred": (X - mu, V - mu),
              "standardised": ((X - mu) / sd, (V - mu) / sd)}
    orders = {s: np.random.default_rng(s).permutation(len(y))[:300] for s in SEEDS}
    rows = []
    for name, (A, B) in inputs.items():
        for schedule in SCHEDULES:
            by_eta = {eta: float(np.mean([sgd(A, y, B, vy, eta, schedule, orders[s])
                                          for s in SEEDS])) for eta in ETAS}
            best = max(by_eta, key=by_eta.get)
            rows.append({"what": f"batch-1 SGD, 300 steps, {name} features", "schedule":
                         schedule, "accuracy": by_eta[best], "eta": best, "by_eta": by_eta})
            if name != "raw":
                continue
            for int8 in (False, True):
                acc = float(np.mean([head_sgd(X, y, V, vy, best, schedule, orders[s], head,
                                              int8, s) for s in SEEDS]))
                rows.append({"what": "the same from the new head's initial weights, "
                             + ("int8 head simulated" if int8 else "float"),
                             "schedule": schedule, "accuracy": acc, "eta": best})
    for per_feature_variance, what in ((False, "class means of the 300 samples (imprinting, "
                                        "nearest class mean)"),
                                       (True, "class means / per-feature variance (diagonal "
                                        "LDA)")):
        acc = float(np.mean([class_means(X[orders[s]], y[orders[s]], V, vy,
                                         per_feature_variance) for s in SEEDS]))
        rows.append({"what": what, "schedule": "one pass, no SGD", "accuracy": acc})
    for n in (300, n_train):
        seeds = SEEDS if n < len(y) else SEEDS[:1]          # all samples: one fit
        by_l2 = {l2: float(np.mean([optimum(X[o], y[o], V, vy, l2) for o in
                                    (np.random.default_rng(s).permutation(len(y))[:n]
                                     for s in seeds)])) for l2 in (1e-3, 1e-2, 1e-1)}
        best = max(by_l2, key=by_l2.get)
        rows.append({"what": f"optimum on {n} samples (full batch, to convergence)",
                     "schedule": f"L2 {best:g}", "accuracy": by_l2[best], "by_l2": by_l2})
    x2 = float((X ** 2).sum(1).mean())
    return {"train": n_train, "val": n_val, "rows": rows, "x2_data": x2,
            "x2_probe": head["probe_x2"], "mean_energy_fraction": float((mu ** 2).sum() / x2),
            "feature_sd_ratio": float(sd.max() / sd.min())}


SAMPLE_BATCHES = (1, 2, 4, 8, 10)
SAMPLE_ETAS = ETAS + (32,)


def samples(n_train: int, n_val: int, cache: Path | None) -> dict:
    """Is 60% a matter of steps or of samples? On the raw features, cosine over the run, the
    best eta of SAMPLE_ETAS (mean over SEEDS) for 300 steps of batch B (300 B samples, each
    step their mean gradient, as gradient accumulation on a device would do) and for 300 B
    steps of batch 1 (the same samples)."""
    X, y, V, vy = features(n_train, n_val, cache)
    rows = []
    for batch in SAMPLE_BATCHES:
        n = 300 * batch
        if n > len(y):
            break
        orders = {s: np.random.default_rng(s).permutation(len(y))[:n] for s in SEEDS}
        for steps, b in ((300, batch), (n, 1)) if batch > 1 else ((300, 1),):
            by_eta = {eta: [sgd(X, y, V, vy, eta, "cosine over the run", orders[s], b)
                            for s in SEEDS] for eta in SAMPLE_ETAS}
            best = max(by_eta, key=lambda e: np.mean(by_eta[e]))
            rows.append({"samples": n, "steps": steps, "batch": b, "eta": best,
                         "accuracies": by_eta[best]})
            print(f"{n} samples, {steps} steps of batch {b}: "
                  f"{100 * np.mean(by_eta[best]):.1f}% (eta {best})", flush=True)
    return {"train": n_train, "val": n_val, "rows": rows}


def render_samples(doc: dict) -> str:
    out = [f"Raw features, cosine over the run, best eta of {', '.join(map(str, SAMPLE_ETAS))} "
           f"(lr = eta / mean |x|^2); {doc['val']} validation samples; accuracy in %, mean "
           f"+- SE over seeds {', '.join(map(str, SEEDS))} (seed s: the samples).", "",
           "| samples seen | steps | batch | best eta | accuracy |", "|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        a = 100 * np.array(r["accuracies"])
        out.append(f"| {r['samples']:,} | {r['steps']:,} | {r['batch']} | {r['eta']:g} | "
                   f"{a.mean():.1f} +- {a.std(ddof=1) / np.sqrt(len(a)):.1f} |")
    return "\n".join(out)


BATCHES = (1, 2, 4, 8, 16)
BATCH_ETAS = SAMPLE_ETAS + (64,)
BATCH_STEPS = 300
BATCH_GRIDS = (2, 4, 8)


def head_batch(X, y, V, vy, lr_w, lr_b, schedule, order, head, int8, seed, batch):
    """The new head from its initial int8 weights, `batch` samples a step: their per-sample
    gradients accumulated in float32 (as a device would, one sample's backward pass at a
    time), then ONE update with their mean, lr_w / lr_b times the schedule over the steps;
    int8: QAS onto the weight and bias grids with stochastic rounding (head_sgd's update).
    `order`: steps x batch sample indices (one row a step). Returns the validation accuracy."""
    W, b, logits = head_batch_params(X, y, lr_w, lr_b, schedule, order, head, int8, seed, batch)
    return float((np.argmax(logits(V), 1) == vy).mean())


def head_batch_params(X, y, lr_w, lr_b, schedule, order, head, int8, seed, batch):
    """head_batch's training: the final weights, biases and the head's logits function."""
    rng = np.random.default_rng(seed)
    sw, sb, sz = head["w_scale"], head["b_scale"], head["z_scale"]
    factor = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    W, b = head["codes"] * sw, np.zeros(len(head["codes"]))

    def logits(x):
        z = x @ W.T + b
        return np.clip(np.rint(z / sz), -128, 127) * sz if int8 else z
    order = np.asarray(order).reshape(-1, batch)
    for t, idx in enumerate(order):
        acc_w, acc_b = np.zeros(W.shape, np.float32), np.zeros(len(b), np.float32)
        for i in idx:                          # the parameters do not move inside a batch
            p = softmax(logits(X[i]))
            p[y[i]] -= 1
            acc_w += np.outer(p, X[i]).astype(np.float32)
            acc_b += p.astype(np.float32)
        f = factor(t, len(order))
        dW = -lr_w * f * (acc_w.astype(np.float64) / batch)
        db = -lr_b * f * (acc_b.astype(np.float64) / batch)
        W, b = head_update(W, b, dW, db, sw, sb, int8, rng)
    return W, b, logits


def batch_rule() -> dict:
    """The head's rates augment's rule gives (lr.model_rates: normalized LMS from lr.probe's
    |x|^2, the bias at the features' rms) under a cosine (x1) and under the default
    inverse-time schedule (x HALF_LIFE_BOOST), for `head_batch`."""
    from tflite_train import lr
    head = head_quantization()
    lr_w = float(f"{lr.ETA_HEAD / head['probe_x2']:.3g}")
    lr_b = float(f"{lr.ETA_HEAD / head['codes'].shape[1]:.3g}")
    return {"head": head, "lr_w": lr_w, "lr_b": lr_b, "boost": lr.HALF_LIFE_BOOST,
            "half_life": lr.HALF_LIFE}


def batch(n_train: int, n_val: int, cache: Path | None) -> dict:
    """Gradient accumulation on the frozen features: BATCH_STEPS steps of batch B (B in
    BATCHES; 300 B samples of a permutation of seed s of the training features), one update
    a step with the mean of B float32-accumulated gradients, float and the int8 head
    simulated (seed s: the samples and the stochastic rounding), on augment's weight grid
    and on grids BATCH_GRIDS times coarser (the same initial weights rounded onto them).
    Rates: the cosine over the run at each eta of BATCH_ETAS (lr_w = eta / mean |x|^2 over
    the training features, the bias at the rule's ratio lr_b / lr_w), at the rule's own
    rates and at B times them; at B = 1 also the product's default (inverse time, the rule x
    HALF_LIFE_BOOST), against the real runs."""
    X, y, V, vy = features(n_train, n_val, cache)
    rule = batch_rule()
    head = rule["head"]
    x2 = float((X ** 2).sum(1).mean())
    ratio = rule["lr_b"] / rule["lr_w"]
    T = rule["half_life"]
    heads = {0: head}                   # 0: float; g: int8 on the grid g times augment's
    for g in (1,) + BATCH_GRIDS:
        heads[g] = dict(head, w_scale=head["w_scale"] * g, codes=np.rint(head["codes"] / g))
    rows = []
    for b in BATCHES:
        n = BATCH_STEPS * b
        if n > len(y):
            print(f"batch {b}: {n} samples > {len(y)} training features, skipped", flush=True)
            continue
        orders = {s: np.random.default_rng(s).permutation(len(y))[:n] for s in SEEDS}
        cosine = "cosine over the run"
        runs = [("cosine", eta / x2, cosine) for eta in BATCH_ETAS]
        runs += [("inverse time", eta / x2, lambda t, n, T=T: T / (T + t)) for eta in BATCH_ETAS]
        runs.append(("rule, cosine", rule["lr_w"], cosine))
        if b > 1:
            runs.append(("rule x B, cosine", b * rule["lr_w"], cosine))
        else:
            runs.append(("rule, default", rule["boost"] * rule["lr_w"],
                         lambda t, n, T=T: T / (T + t)))
        for what, lr_w, schedule in runs:
            for grid, h in heads.items():
                accs = [head_batch(X, y, V, vy, lr_w, lr_w * ratio, schedule, orders[s], h,
                                   grid > 0, s, b) for s in SEEDS]
                rows.append({"batch": b, "rates": what, "eta": lr_w * x2, "lr_w": lr_w,
                             "lr_b": lr_w * ratio, "grid": grid, "accuracies": accs})
            print(f"batch {b} {what} eta {lr_w * x2:.3g}: " + ", ".join(
                f"grid {r['grid']} {100 * np.mean(r['accuracies']):.1f}"
                for r in rows[-len(heads):]), flush=True)
    return {"train": n_train, "val": n_val, "steps": BATCH_STEPS, "x2_data": x2,
            "rule_lr_w": rule["lr_w"], "rule_lr_b": rule["lr_b"], "boost": rule["boost"],
            "half_life": T, "w_scale": head["w_scale"], "grids": list(BATCH_GRIDS),
            "rows": rows}


def _pm(a) -> str:
    a = 100 * np.asarray(a)
    return f"{a.mean():.1f} +- {a.std(ddof=1) / np.sqrt(len(a)):.1f}"


def render_batch(doc: dict) -> str:
    grids = [0, 1] + doc["grids"]
    sat = 127 * doc["w_scale"]

    def pick(b, rates, grid, eta=None):
        rs = [r for r in doc["rows"] if r["batch"] == b and r["rates"] == rates
              and r["grid"] == grid and (eta is None or r["eta"] == eta)]
        return max(rs, key=lambda r: np.mean(r["accuracies"])) if rs else None

    def cell(r, eta=True):
        if r is None:
            return "-"
        edge = ", the grid's edge" if r["rates"] in ("cosine", "inverse time") \
            and r["eta"] == BATCH_ETAS[-1] else ""
        return _pm(r["accuracies"]) + (f" (eta {r['eta']:.3g}{edge})" if eta else "")
    name = {0: "float", 1: f"int8, augment's grid (+-{sat:.2f})"}
    name.update({g: f"int8, grid {g}x coarser (+-{g * sat:.2f})" for g in doc["grids"]})
    out = [f"{doc['steps']} steps of batch B from the new head's initial int8 weights on the "
           f"frozen features ({doc['train']:,} training features, {doc['val']:,} validation "
           f"samples); each step the mean of B per-sample gradients accumulated in float32, one "
           f"update. int8: the head simulated (QAS onto its grids, stochastic rounding, logits "
           f"on their grid), on augment's weight grid (LSB {doc['w_scale']:.3g}, saturating at "
           f"+-{sat:.3f}) and on grids {', '.join(map(str, doc['grids']))}x coarser (the same "
           f"initial weights rounded onto them). Rates, cosine over the run unless said: the "
           f"best eta of {', '.join(map(str, BATCH_ETAS))} (lr = eta / {doc['x2_data']:.2f}, "
           f"the mean |x|^2; best by the mean over the seeds, in each column; also as eta0 of "
           f"the default's inverse time), the rule's rates (lr "
           f"{doc['rule_lr_w']:g}, bias {doc['rule_lr_b']:g}: eta "
           f"{doc['rule_lr_w'] * doc['x2_data']:.2f}) and B times them; the bias at the rule's "
           f"ratio to the weights everywhere. Accuracy in %, mean +- SE over seeds "
           f"{', '.join(map(str, SEEDS))} (seed s: the samples and the rounding).", "",
           "| batch | samples | rates | " + " | ".join(name[g] for g in grids) + " |",
           "|---:|---:|---|" + "---:|" * len(grids)]
    for b in dict.fromkeys(r["batch"] for r in doc["rows"]):
        for rates, label in (("cosine", "best eta"),
                             ("inverse time", f"inverse time T={doc['half_life']}, best eta0"),
                             ("rule, cosine", "rule"),
                             ("rule x B, cosine", "rule x B"),
                             ("rule, default", f"default: inverse time T={doc['half_life']}, "
                              f"rule x {doc['boost']:g}")):
            if pick(b, rates, 0) is None:
                continue
            out.append(f"| {b} | {doc['steps'] * b:,} | {label} | " + " | ".join(
                cell(pick(b, rates, g), rates in ("cosine", "inverse time")) for g in grids)
                + " |")
    out += ["", "int8 - float at the same eta, paired by seed (each int8 column at its own best "
            "eta):", "", "| batch | " + " | ".join(name[g] for g in grids[1:]) + " |",
            "|---:|" + "---:|" * (len(grids) - 1)]
    for b in dict.fromkeys(r["batch"] for r in doc["rows"]):
        cells = []
        for g in grids[1:]:
            i = pick(b, "cosine", g)
            f = pick(b, "cosine", 0, i["eta"])
            cells.append(f"{_pm(np.subtract(i['accuracies'], f['accuracies']))} "
                         f"(eta {i['eta']:.3g})")
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(out)

PKLS = HERE.parent.parent / "shared" / "models" / "tiny-training"
ACCUMULATOR_SCHEMES = (("person detector", "person_detect", "bias-only"),
                       ("person detector", "person_detect", "last:2"),
                       ("person detector", "person_detect", "schemes/person_detect_sparse.json"),
                       ("MCUNet-5FPS", "mcunet-5fps", "bias-only"),
                       ("MCUNet-5FPS", "mcunet-5fps", "schemes/mcunet-5fps_99kb.json"),
                       ("MobileNetV2-w0.35", "mbv2-w0.35", "bias-only"),
                       ("MobileNetV2-w0.35", "mbv2-w0.35", "schemes/mbv2-w0.35_99kb.json"))


def accumulators() -> dict:
    """What a batch costs in SRAM: one 4-byte (float32 or int32) accumulator per trained
    parameter, against the training model's own SRAM as `tflite-train plan` reports it
    (tflm_memory.account, cortex-m7: TFLM's arena, its persistent data, the trained
    parameters). The training model: augment's defaults (10 classes, every memory pass)."""
    from tflite_train import augment, memory, tflite_io, tflm_memory
    from tflite_train.autodiff import Hyper
    from tflite_train.importers.tiny_training import import_pkl
    rows = []
    for name, model, scheme in ACCUMULATOR_SCHEMES:
        graph = tflite_io.load(MODEL) if model == "person_detect" else \
            import_pkl(PKLS / f"{model}.pkl")
        spec = str(HERE / scheme) if scheme.startswith("schemes/") else scheme
        g = augment.augment(graph, spec, 10, Hyper()).graph
        parts = memory.training_parts(g)
        momentum = {i for i, t in enumerate(g.tensors) if t.is_variable and t.dtype == "float32"}
        params = [t for i, t in enumerate(g.tensors) if t.is_variable and i not in momentum]
        acct = tflm_memory.account(g, len(tflite_io.serialize(g)))
        rows.append({"model": name, "scheme": Path(scheme).stem if "/" in scheme else scheme,
                     "params": int(sum(int(np.prod(t.shape)) for t in params)),
                     "int8_params": int(sum(int(np.prod(t.shape)) for t in params
                                            if t.dtype == "int8")),
                     "trainable_bytes": parts.trainable_bytes, "arena": acct["arena"],
                     "persistent": acct["persistent"], "trained": acct["trained"],
                     "sram_total": acct["sram_total"], "sram_budget": acct["budgets"]["sram"]})
        print(rows[-1], flush=True)
    return {"accumulator_bytes": 4, "rows": rows}


def render_accumulators(doc: dict) -> str:
    a = doc["accumulator_bytes"]
    out = [f"One {a}-byte accumulator (float32 or int32) per trained parameter; the training "
           f"model of augment's defaults, its SRAM as `tflite-train plan` (cortex-m7) gives it: "
           f"TFLM's arena, + its persistent data and the trained parameters = SRAM.", "",
           "| model | scheme | trained params (int8 weights) | trained bytes | arena | SRAM "
           "| accumulators | accumulators / arena | SRAM with accumulators |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        acc = a * r["params"]
        out.append(f"| {r['model']} | {r['scheme']} | {r['params']:,} ({r['int8_params']:,}) | "
                   f"{r['trained']:,} | {r['arena']:,} | {r['sram_total']:,} | {acc:,} | "
                   f"{acc / r['arena']:.2f} | {r['sram_total'] + acc:,} |")
    return "\n".join(out)


HEAD_ETAS = (0.45, 1.35, 2, 3, 4.5, 6, 9)
HEAD_BIAS = {1.0: "bias at the weights' rate", 0.0: "bias frozen"}


def head_bias(n_train: int, n_val: int, cache: Path | None, orders: int) -> dict:
    """The int8 head under the default inverse-time schedule, per eta0 and bias factor:
    mean and standard error over `orders` sample orders (order s: permutation of seed s,
    stochastic rounding of seed s + 100)."""
    from tflite_train import lr
    X, y, V, vy = features(n_train, n_val, cache)
    head = head_quantization()
    x2 = float((X ** 2).sum(1).mean())
    T = lr.HALF_LIFE
    rows = []
    for bias_factor in HEAD_BIAS:
        for eta in HEAD_ETAS:
            accs = [head_sgd(X, y, V, vy, eta, lambda t, n: T / (T + t),
                             np.random.default_rng(s).permutation(len(y))[:300], head, True,
                             s + 100, bias_factor, x2) for s in range(orders)]
            rows.append({"bias_factor": bias_factor, "eta0": eta, "accuracies": accs})
            print(f"bias x{bias_factor:g} eta0 {eta}: {100 * np.mean(accs):.1f}", flush=True)
    return {"train": n_train, "val": n_val, "orders": orders, "half_life": T, "x2_data": x2,
            "rows": rows}


def render_head_bias(doc: dict) -> str:
    etas = list(dict.fromkeys(r["eta0"] for r in doc["rows"]))
    out = [f"The int8 head, {doc['train']} training samples (300 steps of inverse time, "
           f"T={doc['half_life']}, from eta0 / {doc['x2_data']:.2f}), {doc['val']} validation "
           f"samples; accuracy in %, mean +- SE over {doc['orders']} sample orders.", "",
           "| eta0 | " + " | ".join(f"{e:g}" for e in etas) + " |",
           "|---|" + "---:|" * len(etas)]
    for bias_factor, what in HEAD_BIAS.items():
        cells = []
        for e in etas:
            a = 100 * np.array(next(r["accuracies"] for r in doc["rows"]
                                    if r["eta0"] == e and r["bias_factor"] == bias_factor))
            cells.append(f"{a.mean():.1f} +- {a.std(ddof=1) / np.sqrt(len(a)):.1f}")
        out.append(f"| {what} (x{bias_factor:g}) | " + " | ".join(cells) + " |")
    return "\n".join(out)


def render(doc: dict) -> str:
    out = [f"Head input |x|^2: {doc['x2_data']:.2f} on Fashion-MNIST, {doc['x2_probe']:.2f} "
           f"on lr.probe's random inputs; the features' common mean holds "
           f"{100 * doc['mean_energy_fraction']:.0f}% of |x|^2, and their standard "
           f"deviations differ by {doc['feature_sd_ratio']:.1f}x. Validation: {doc['val']} "
           f"samples; mean over seeds {', '.join(map(str, SEEDS))}.", "",
           "| linear head on the frozen features | schedule / L2 | best eta | accuracy |",
           "|---|---|---:|---:|"]
    for r in doc["rows"]:
        out.append(f"| {r['what']} | {r['schedule']} | {r.get('eta', '-')} | "
                   f"{100 * r['accuracy']:.1f}% |")
    return "\n".join(out)


TABLES = {"person-ceiling": (["person_ceiling.json"], render),
          "person-head-bias": (["person_head_bias.json"], render_head_bias),
          "person-samples": (["person_samples.json"], render_samples),
          "person-batch": (["person_batch.json"], render_batch),
          "batch-accumulators": (["batch_accumulators.json"], render_accumulators)}
HEAD_BIAS_JSON = HERE / "person_head_bias.json"
SAMPLES_JSON = HERE / "person_samples.json"
BATCH_JSON = HERE / "person_batch.json"
ACCUMULATORS_JSON = HERE / "batch_accumulators.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None,
                    help="default: person_ceiling.json, person_head_bias.json with --head-bias")
    ap.add_argument("--head-bias", action="store_true",
                    help="only the int8 head's eta0 x bias sweep (table person-head-bias)")
    ap.add_argument("--samples", action="store_true",
                    help="only steps against samples: 300 steps of batch B against 300 B steps "
                         "of batch 1 (table person-samples)")
    ap.add_argument("--batch", action="store_true",
                    help="only gradient accumulation: 300 steps of batch B, float and the int8 "
                         "head simulated (table person-batch)")
    ap.add_argument("--accumulators", action="store_true",
                    help="only the SRAM of a batch's accumulators per scheme of the shipped "
                         "models (table batch-accumulators)")
    ap.add_argument("--orders", type=int, default=10, help="sample orders of --head-bias")
    ap.add_argument("--features", type=Path, default=None,
                    help="an .npz cache of the features: read if it holds enough, else written")
    ap.add_argument("--extract-only", action="store_true",
                    help="write --features and stop")
    args = ap.parse_args()
    if not MODEL.exists():
        sys.exit(f"{MODEL} is not present: this benchmark needs ../shared/models")
    if args.extract_only:
        np.savez(args.features, **dict(zip(("Xt", "yt", "Xv", "yv"),
                                           extract(args.train, args.val))))
        return
    # each mode: its measurement, its rendering, its default JSON and the table it publishes
    if args.accumulators:
        run, show, default, table = (lambda *a: accumulators(), render_accumulators,
                                     ACCUMULATORS_JSON, "batch-accumulators")
    elif args.batch:
        run, show, default, table = batch, render_batch, BATCH_JSON, "person-batch"
    elif args.samples:
        run, show, default, table = samples, render_samples, SAMPLES_JSON, "person-samples"
    elif args.head_bias:
        run, show, default, table = (lambda *a: head_bias(*a, args.orders), render_head_bias,
                                     HEAD_BIAS_JSON, "person-head-bias")
    else:
        run, show, default, table = measure, render, JSON, "person-ceiling"
    path = args.json or default
    doc = run(args.train, args.val, args.features)
    results.write_json(path, doc)
    print(show(doc))
    if path.resolve() == default.resolve():
        results.publish([table])


if __name__ == "__main__":
    main()
