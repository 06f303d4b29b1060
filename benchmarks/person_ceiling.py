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
        if int8:
            dW = np.floor(dW / sw + rng.random(dW.shape)) * sw
            db = np.floor(db / sb + rng.random(db.shape)) * sb
            W = np.clip(W + dW, -127 * sw, 127 * sw)
        else:
            W = W + dW
        b = b + db
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
          "person-samples": (["person_samples.json"], render_samples)}
HEAD_BIAS_JSON = HERE / "person_head_bias.json"
SAMPLES_JSON = HERE / "person_samples.json"


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
    if args.samples:
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
