"""The paper's Table 1, our way: MCUNet-5FPS and MobileNetV2-w0.35 (imported from
../shared/models/tiny-training) -> Fashion-MNIST (new 10-class head, 128x128 RGB from the
28x28 grey images), batch 1. Schemes: bias-only, last:6 (the paper's "last two blocks":
an inverted-residual block is three convs) and the paper's 99kb sparse scheme. Variants, on
the same trainable set, the same per-layer learning rates and the same samples in the same
order: int8 + QAS (augment's defaults: model-derived rates, stochastic rounding), fp32
(TensorFlow on the dequantized model, tflite_train/fp32.py) and int8 without QAS; and
the diagnostics of QAS's gap to fp32: fp32-fq (fp32 on the int8 activation grid), fp32-sr
(its trained weights rounded stochastically onto their int8 grid after every step),
fp32-fq-sr (both), fp32-srh / fp32-srb (only the new head's / the pretrained weights
rounded), and --grad int8-nearest.
Every variant decays its rates to 0 along a cosine over the run (--lr-decay-steps = steps):
a constant-rate batch-1 run ends wherever its oscillation is (benchmarks/RESULTS.md).

    .venv/bin/python benchmarks/paper_accuracy.py [--seeds 0,1,2] [--steps 1000]
        [--val 3000] [--jobs 2] [--json benchmarks/paper_accuracy_results.json]

Resumable: every finished run is added to the JSON file (written atomically), and runs
already in it are not run again; `--jobs N` runs N at a time in separate processes. The
table (mean and standard error over the seeds of each row) is printed from the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

PKLS = HERE.parent.parent / "shared" / "models" / "tiny-training"
MODELS = ("mcunet-5fps", "mbv2-w0.35")
SCHEMES = ("bias-only", "last:6", "99kb")
VARIANTS = {"qas": "int8 + QAS", "fp32": "fp32", "int8": "int8, no QAS",
            "fp32-fq": "fp32, int8 activation grid",
            "fp32-sr": "fp32, weights rounded stochastically to their int8 grid",
            "fp32-fq-sr": "fp32, int8 activation grid, weights rounded to their int8 grid",
            "fp32-srh": "fp32, the new head's weights rounded to their int8 grid",
            "fp32-srb": "fp32, the pretrained weights rounded to their int8 grid"}
FLOAT = ("fp32", "fp32-fq", "fp32-sr", "fp32-fq-sr", "fp32-srh", "fp32-srb")          # the TensorFlow variants: no int8 gradients or grid


def scheme_spec(model: str, scheme: str) -> str:
    return str(HERE / "schemes" / f"{model}_99kb.json") if scheme == "99kb" else scheme


def fake_quantized(trainer_class):
    """The diagnostic variant fp32-fq: FloatTrainer with every op's output rounded to the
    int8 forward's grid (its tensor's scale and zero point, clamped to int8) and the
    gradient passed straight through the rounding. It separates "the int8 forward computes
    different features" from "the int8 update's arithmetic" in int8 + QAS's gap to fp32.
    Not the int8 forward bit for bit (TensorFlow's float convolutions and one rounding per
    output, not TFLM's fixed-point requantization): a diagnostic, not a baseline."""
    import numpy as np
    import tensorflow as tf

    class FakeQuantized(trainer_class):
        def _output(self, op, y):
            t = self.graph.tensors[op.outputs[0]]
            if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
                return y
            s, zp = float(np.float32(t.quant.scale[0])), float(t.quant.zp)
            q = s * (tf.clip_by_value(tf.round(y / s) + zp, -128.0, 127.0) - zp)
            return y + tf.stop_gradient(q - y)
    return FakeQuantized


SR_WHICH = {"fp32-sr": "all", "fp32-fq-sr": "all", "fp32-srh": "head", "fp32-srb": "body"}


def weights_on_grid(trainer_class, seed: int, which: str = "all"):
    """The diagnostic variants fp32-sr / fp32-fq-sr: after every SGD step each trained
    weight tensor is put back on its int8 grid (its per-channel scale, codes clamped to
    +-127) by stochastic rounding, as int8 + QAS's update does (a QAS step is the fp32 SGD
    step on the real values, rounded to the grid): the float model then carries the int8
    update's rounding noise and nothing else of int8 training (biases stay real-valued:
    their int32 grid, s_in x s_w, is far finer than their steps). Separates "the update's
    rounding" from "the int8 forward's features" in QAS's gap to fp32."""
    import numpy as np
    from tflite_train.fp32 import updates
    from tflite_train.tf_float import dequantize

    class OnGrid(trainer_class):
        def __init__(self, graph):
            super().__init__(graph)
            self.rng = np.random.default_rng(seed)
            self.grids = []
            for (p, o), (var, *_rest) in zip(updates(self.graph), self.rules):
                t = self.graph.tensors[p]
                head = t.name.startswith("head/")
                if t.dtype == "int8" and t.quant is not None and (
                        which == "all" or (which == "head") == head):
                    one = dequantize(t, np.ones(var.shape, np.int8), axis=o.get("axis", 0))
                    self.grids.append((var, one.astype(np.float32)))

        def step(self, x_int8, label):
            loss = super().step(x_int8, label)
            for var, s in self.grids:
                q = var.numpy() / s
                q = np.clip(np.floor(q + self.rng.random(q.shape)), -127, 127)
                var.assign((q * s).astype(np.float32))
            return loss
    return OnGrid


def run_one(job: dict) -> dict:
    """One (model, scheme, variant, seed): train `steps`, then accuracy on the fixed
    validation set. int8 runs train and validate in the C kernels (engine c: the int8
    forward kernels of micro_kernels and its TT_* kernels, the fastest exact host engine);
    fp32 runs in TensorFlow on one thread (the runs are the parallelism)."""
    from tflite_train import augment, data
    from tflite_train.autodiff import Hyper
    if "head_headroom" in job:
        # the int8 variants' head grid (--head-headroom; the initial codes sit on every
        # 16/X-th level, transfer.py's convention: the real initial head is the 16x grid's
        # on 4x, 8x and 16x, and the 12x grid's nearest levels on 12x, augment's own)
        augment.HEAD_WEIGHT_HEADROOM = job["head_headroom"]
        augment.HEAD_INIT_STEP = int(16 / job["head_headroom"])
    from tflite_train.compare import trained_params
    from tflite_train.importers.tiny_training import import_pkl
    from tflite_train.train import Trainer, sample_order, split
    ds = data.fashion_mnist()
    train_idx, val_idx = split(len(ds), 0.1, job["val"], 0)
    # the int8 variants' activation gradients: int8 (rounded stochastically, augment's
    # default until round 29), int8-nearest (its default since) or float32 (the default
    # until 2026-11-26, what the first table was measured with); fp32 has none
    grad = job.get("grad") or "float32"
    hyper = Hyper(qas=job["variant"] != "int8", seed=job["seed"], decay_steps=job["steps"],
                  grad=grad.split("-")[0], head_residual=job.get("head_residual", False),
                  weight_headroom=job.get("weight_headroom", 1.0),
                  grad_rounding="nearest" if grad.endswith("-nearest") else "stochastic")
    # every variant from augment's default training graph: fp32.FloatTrainer reads the
    # float model back from it (the memory passes' record restores each layer's fused
    # activation; tests/test_fp32_baseline.py)
    fp32 = job["variant"] in FLOAT
    result = augment.augment(import_pkl(PKLS / f"{job['model']}.pkl"),
                             scheme_spec(job["model"], job["scheme"]), 10, hyper)
    if fp32:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from tflite_train.fp32 import FloatTrainer
        cls = fake_quantized(FloatTrainer) if "-fq" in job["variant"] else FloatTrainer
        if "-sr" in job["variant"]:
            cls = weights_on_grid(cls, job["seed"], SR_WHICH[job["variant"]])
        ft = cls(result.graph)
        inp = result.graph.tensors[result.graph.inputs[0]]

        def step(i):
            return ft.step(data.to_model_input(ds.images[i], inp), int(ds.labels[i]))

        def predict(i):
            return ft.predict(data.to_model_input(ds.images[i], inp))
    else:
        tr = Trainer(result.graph, ds, engine="c")
        step, predict = tr.step, tr.predict
    head = {}
    w0, c0 = time.time(), time.process_time()
    losses = [step(int(i)) for i in sample_order(train_idx, job["steps"], job["seed"])]
    w1, c1 = time.time(), time.process_time()
    if not fp32:
        from transfer import head_codes
        head = head_codes(tr)
    hits = sum(predict(int(i)) == ds.labels[i] for i in val_idx)
    w2, c2 = time.time(), time.process_time()
    tail = losses[-max(1, len(losses) // 10):]
    return {**job, "val_accuracy": hits / len(val_idx), "val_samples": len(val_idx),
            "final_train_loss": sum(tail) / len(tail), "trained_params": trained_params(result),
            "engine": "tensorflow" if fp32 else "c",
            "train_seconds": round(w1 - w0, 1), "val_seconds": round(w2 - w1, 1),
            "train_cpu_seconds": round(c1 - c0, 1), "val_cpu_seconds": round(c2 - c1, 1),
            **head}


def grad_of(run: dict) -> str | None:
    """The int8 variants' activation gradients; runs from before the option were float32."""
    return None if run["variant"] in FLOAT else run.get("grad") or "float32"


def headroom_of(run: dict) -> float | None:
    """The int8 variants' head weight grid, in multiples of the initial range
    (augment.HEAD_WEIGHT_HEADROOM; runs from before the record were 16x). The fp32 variant
    starts from the int8 head's real values: the 16x grid's levels on 4x, 8x and 16x, the 12x
    grid's on 12x, so one results file holds fp32 runs of one of the two."""
    return None if run["variant"] in FLOAT else run.get("head_headroom", 16.0)


def residual_of(run: dict) -> bool | None:
    """Whether the int8 variants' new head carries a rounding residual (augment
    --head-residual, the default since round 27; runs from before the record had none)."""
    return None if run["variant"] in FLOAT else bool(run.get("head_residual", False))


def weight_headroom_of(run: dict) -> float | None:
    """The int8 variants' --weight-headroom (augment's, the trained pretrained weights' grids
    that many times coarser; 1, the default, for runs from before the record). fp32 always
    starts from the input model's weights here."""
    h = run.get("weight_headroom", 1.0)
    return None if run["variant"] in FLOAT else h if h == "auto" else float(h)


def col(run: dict) -> tuple:
    """A run's column: variant, activation gradients, head grid, head residual, pretrained
    weights' headroom."""
    return (run["variant"], grad_of(run), headroom_of(run), residual_of(run),
            weight_headroom_of(run))


def key(run: dict) -> tuple:
    return (run["model"], run["scheme"]) + col(run) + (run["seed"], run["steps"], run["val"])


mean_se = results.mean_se


def fmt(vals: list[float], sign: str = "") -> str:
    """Mean +- standard error; `sign` "+" for differences."""
    if not vals:
        return "-"
    m, se = mean_se(vals)
    return (f"{m:{sign}.1f} (n=1)" if se is None
            else f"{m:{sign}.1f} +- {se:.1f} (n={len(vals)})")


paired = results.paired


def verdict(diffs: list[float]) -> str:
    """int8 + QAS against fp32: within 0.5 point of it or not, on the mean of the paired
    differences; unresolved where that mean is smaller than its standard error."""
    if not diffs:
        return "-"
    m, se = mean_se(diffs)
    word = ("within 0.5" if abs(m) <= 0.5 else "QAS ahead" if m > 0 else "QAS behind")
    if se is None:
        return f"{word} (one seed)"
    return f"{word}, unresolved (|diff| < SE)" if abs(m) < se else word


GRAD_NAMES = {"int8": "int8", "float32": "float32", "int8-nearest": "int8, nearest-rounded"}


def column(variant: str, grad: str | None, headroom: float | None,
           residual: bool | None = None, weights: float | None = None) -> str:
    """A column's name: the variant, and for the int8 ones their activation gradients,
    head weight grid, head residual and pretrained weights' headroom (where not 1)."""
    return VARIANTS[variant] + ("" if grad is None else
                                f" ({GRAD_NAMES[grad]} gradients, head {headroom:g}x"
                                + (", residual" if residual else "")
                                + (f", weight headroom {headroom_text(weights)}"
                                   if weights not in (None, 1.0) else "") + ")")


def headroom_text(h) -> str:
    """A --weight-headroom value as a column says it: 2x, or auto."""
    return h if isinstance(h, str) else f"{h:g}x"


def short(c: tuple) -> str:
    return (f"QAS ({c[1]}, {c[2]:g}x{', residual' if c[3] else ''}"
            + (f", weights {headroom_text(c[4])}" if c[4] not in (None, 1.0) else "") + ")")


def table(runs: list[dict], steps: int, val: int, main: bool = True) -> str:
    """Markdown: one row per model and scheme; validation accuracy, mean +- standard error
    over the seeds, of a column per variant, activation gradients and head grid. `main`:
    the newest int8 + QAS column (the finest head grid, int8 gradients first), fp32 and
    int8 without QAS; else the other int8 + QAS columns, fp32 and the diagnostic fp32-fq.
    Then, paired by seed (mean +- standard error of the per-seed differences): each int8 +
    QAS column minus fp32 and its verdict, int8 without QAS minus the first int8 + QAS
    column, and fp32 and each int8 + QAS column minus fp32-fq."""
    acc: dict[tuple, dict[int, float]] = {}
    params: dict[tuple, int] = {}
    for r in runs:
        if r["steps"] == steps and r["val"] == val:
            c = col(r)
            acc.setdefault((r["model"], r["scheme"]) + c, {})[r["seed"]] = 100 * r["val_accuracy"]
            params[(r["model"], r["scheme"])] = r["trained_params"]
    order = {"qas": 0, "fp32": 1, "fp32-fq": 2, "fp32-sr": 2.1, "fp32-fq-sr": 2.2,
             "fp32-srh": 2.3, "fp32-srb": 2.4, "int8": 3}
    present = sorted({k[2:] for k in acc},
                     key=lambda c: (order[c[0]], (c[4] or 1.0) != 1.0, not c[3], c[2] or 0,
                                    c[1] != "int8"))
    fp, fq = ("fp32", None, None, None, None), ("fp32-fq", None, None, None, None)
    qas_all = [c for c in present if c[0] == "qas"]
    if main:
        cols = [c for c in present if c in qas_all[:1] or c == fp or c[0] == "int8"]
    else:
        cols = [c for c in present if c in qas_all[1:] or c in (fp, fq)]
    qas = [c for c in cols if c[0] == "qas"]
    nq = [c for c in cols if c[0] == "int8"][:1] if qas else []
    diag = [c for c in [fp] + qas if fq in cols and c in cols]
    head = (["model", "scheme", "trained params"] + [column(*c) for c in cols]
            + [h for c in qas for h in (f"{short(c)} - fp32", f"{short(c)} vs fp32")]
            + [f"no QAS - {short(qas[0])}" for _ in nq]
            + [f"{'fp32' if c == fp else short(c)} - fp32 on the int8 grid" for c in diag])
    align = (["---", "---", "---:"] + ["---:"] * len(cols) + ["---:", "---"] * len(qas)
             + ["---:"] * (len(nq) + len(diag)))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for model in MODELS:
        for scheme in SCHEMES:
            if (model, scheme) not in params:
                continue
            cell = {c: acc.get((model, scheme) + c, {}) for c in present}
            row = [model, scheme, f"{params[(model, scheme)]:,}"]
            row += [fmt(list(cell[c].values())) for c in cols]
            for c in qas:
                qf = paired(cell[c], cell.get(fp, {}))
                row += [fmt(qf, "+"), verdict(qf)]
            row += [fmt(paired(cell[c], cell[qas[0]]), "+") for c in nq]
            row += [fmt(paired(cell[c], cell[fq]), "+") for c in diag]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def times(runs: list[dict], steps: int, val: int) -> str:
    """CPU seconds per run (mean over its runs) of training and of validation, per column."""
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if r["steps"] == steps and r["val"] == val and "train_cpu_seconds" in r:
            groups.setdefault(col(r), []).append(r)
    for c, rs in groups.items():
        t = sum(r["train_cpu_seconds"] for r in rs) / len(rs)
        e = sum(r["val_cpu_seconds"] for r in rs) / len(rs)
        out.append(f"{column(*c)} ({rs[0]['engine']}): train {t:.0f} s "
                   f"({1000 * t / steps:.0f} ms a step), validation {e:.0f} s "
                   f"({1000 * e / val:.1f} ms a sample)")
    return "; ".join(out)


def render(doc: dict) -> str:
    steps, val = doc["steps"], doc["val"]
    runs = [r for r in doc["runs"] if r["steps"] == steps and r["val"] == val]
    # a second table only where the JSON holds earlier int8 + QAS columns or fp32-fq
    earlier = {col(r) for r in runs if r["variant"] in ("qas", "fp32-fq")}
    second = len(earlier) > 1 or any(c[0] == "fp32-fq" for c in earlier)
    return (f"{steps} steps, {val} validation samples; {len(runs)} runs, seeds "
            f"{','.join(map(str, doc['seeds']))} (n per cell below). Validation accuracy in %, "
            "mean +- standard error over the n seeds run; the differences are paired by seed "
            "(the seeds both columns have). "
            + ("The product's default (int8 activation gradients, "
               + ("the head residual, " if any(residual_of(r) for r in runs) else "")
               + "the finest head grid) first; the earlier int8 + QAS columns and the "
               "diagnostic (fp32 with every activation on the int8 forward's grid) below."
               if second else "")
            + "\n\n" + table(runs, steps, val)
            + ("\n\n" + table(runs, steps, val, main=False) if second else "")
            + "\n\nCPU time per run, mean (one process, niced, on the shared machine): "
            + times(runs, steps, val) + ".\n")


def render_gap(doc: dict, gap: dict, every_grid: bool = False) -> str:
    """Where int8 + QAS's gap to fp32 comes from, on the rows `gap` (the diagnostic runs:
    fp32 on the int8 activation grid and/or with its weights rounded to their int8 grid,
    int8 + QAS with other activation gradients) has runs for: per column, accuracy per
    seed, mean +- standard error, and paired by seed, minus fp32 and minus the product's
    default (int8 + QAS, int8 gradients, the finest head grid), from both JSONs."""
    steps, val = gap["steps"], gap["val"]
    runs = [r for r in doc["runs"] + gap["runs"] if r["steps"] == steps and r["val"] == val]
    acc: dict[tuple, dict[int, float]] = {}
    for r in runs:
        c = col(r)
        acc.setdefault((r["model"], r["scheme"]), {}).setdefault(c, {})[r["seed"]] = (
            100 * r["val_accuracy"])
    fp = ("fp32", None, None, None, None)
    order = ["fp32", "fp32-fq", "fp32-sr", "fp32-fq-sr", "fp32-srh", "fp32-srb", "qas"]
    lines = ["| model | scheme | run | accuracy per seed | mean +- SE | minus fp32 (paired) "
             "| minus int8 + QAS, default (paired) |", "|---|---|---|---|---:|---:|---:|"]
    for model, scheme in dict.fromkeys((r["model"], r["scheme"]) for r in gap["runs"]):
        cells = acc[(model, scheme)]
        qas = [c for c in cells if c[0] == "qas"]
        default = min(qas, key=lambda c: ((c[4] or 1.0) != 1.0, not c[3], c[2],
                                          c[1] != "int8"))
        cols = sorted((c for c in cells if c[0] in order and (c[0] != "qas" or every_grid
                                                                or c[2] == default[2])),
                      key=lambda c: (order.index(c[0]), c != default, c[1] or ""))
        for c in cols:
            by_seed = cells[c]

            m, se = mean_se(list(by_seed.values()))
            lines.append(f"| {model} | {scheme} | {column(*c)} | "
                         + " / ".join(f"{s}: {v:.1f}" for s, v in sorted(by_seed.items()))
                         + f" | {m:.2f}" + ("" if se is None else f" +- {se:.2f}")
                         + f" | {results.paired_cell(by_seed, cells[fp])}"
                         + f" | {results.paired_cell(by_seed, cells[default])} |")
    return (f"{steps} steps, {val} validation samples; accuracy in %.\n\n"
            + "\n".join(lines) + "\n")


def resolved(diffs: list[float]) -> str:
    """A paired difference's sign, resolved where its mean is at least two standard errors
    from 0 (the rule RESULTS.md applies to bias-only's -0.61 +- 0.26)."""
    if not diffs:
        return "-"
    m, se = mean_se(diffs)
    if se is None:
        return "one seed"
    if se == 0:             # every seed the same difference
        return "none" if m == 0 else f"{'gain' if m > 0 else 'loss'} on every seed"
    word = "unresolved" if abs(m) < 2 * se else f"{'gain' if m > 0 else 'loss'}, resolved"
    return f"{word} ({m / se:+.1f} SE)"


def render_nearest(doc: dict, near: dict) -> str:
    """int8 activation gradients rounded to nearest (`near`'s runs: --grad int8-nearest)
    against the same seeds' stochastically rounded ones and fp32 from Table 1 (`doc`), the
    same head grid, residual and weights' headroom: per row, accuracy (mean +- SE), nearest
    minus stochastic and nearest minus fp32 paired by seed, and per seed."""
    steps, val = near["steps"], near["val"]
    runs = [r for r in doc["runs"] + near["runs"] if r["steps"] == steps and r["val"] == val]
    acc: dict[tuple, dict[int, float]] = {}
    for r in runs:
        acc.setdefault((r["model"], r["scheme"]) + col(r), {})[r["seed"]] = 100 * r["val_accuracy"]
    fp = ("fp32", None, None, None, None)
    nearest = list(dict.fromkeys((r["model"], r["scheme"]) + col(r) for r in near["runs"]
                                 if grad_of(r) == "int8-nearest"))
    lines = ["| model | scheme | int8 + QAS, stochastic | int8 + QAS, nearest | fp32 "
             "| nearest - stochastic | resolved (2 SE)? | nearest - fp32 | nearest vs fp32 "
             "| stochastic - fp32 (same seeds) |",
             "|---|---|---:|---:|---:|---:|---|---:|---|---:|"]
    seeds = ["| model | scheme | nearest - stochastic, per seed | nearest, per seed |",
             "|---|---|---|---|"]
    order = {(m, s): i for i, (m, s) in enumerate((m, s) for m in MODELS for s in SCHEMES)}
    for k in sorted(nearest, key=lambda k: (order.get(k[:2], 99), k)):
        model, scheme = k[:2]
        near_acc = acc[k]
        stoch = acc.get(k[:3] + ("int8",) + k[4:], {})
        fp32 = acc.get((model, scheme) + fp, {})
        same = {s: v for s, v in stoch.items() if s in near_acc}
        ns, nf = paired(near_acc, stoch), paired(near_acc, fp32)
        lines.append(f"| {model} | {scheme} | {fmt(list(same.values()), '')} "
                     f"| {fmt(list(near_acc.values()))} "
                     f"| {fmt([v for s, v in fp32.items() if s in near_acc])} "
                     f"| {fmt2(ns)} | {resolved(ns)} | {fmt2(nf)} | {verdict(nf)} "
                     f"| {fmt2(paired(same, fp32))} |")
        seeds.append(f"| {model} | {scheme} | "
                     + " / ".join(f"{s}: {near_acc[s] - stoch[s]:+.1f}"
                                  for s in sorted(near_acc) if s in stoch)
                     + " | " + " / ".join(f"{s}: {v:.1f}" for s, v in sorted(near_acc.items()))
                     + " |")
    return (f"{steps} steps, {val} validation samples; validation accuracy in %, mean +- "
            "standard error over the seeds nearest was run with (the stochastic and fp32 "
            "columns over the same seeds); differences paired by seed, in points. The int8 "
            "columns: head 12x with its residual, augment's other defaults.\n\n"
            + "\n".join(lines) + "\n\n" + "\n".join(seeds) + "\n")


def fmt2(vals: list[float]) -> str:
    """Mean +- standard error to two decimals, signed (a paired difference)."""
    if not vals:
        return "-"
    m, se = mean_se(vals)
    return f"{m:+.2f}" + ("" if se is None else f" +- {se:.2f}") + f" (n={len(vals)})"


JSON_NAME = "paper_accuracy_results.json"
# Table 1 as it stood until round 24 (its int8 + QAS runs from before round 18's head rule),
# and the diagnostics of MobileNetV2 99kb's gap, which pair with those runs
ROUND24_JSON = "paper_accuracy_round24.json"
GAP_JSON = "paper_accuracy_gap.json"
# Table 1 in round 25 (the new head's grid at 8x), and the diagnostics of its bias-only rows'
# gap, which pair with those runs
ROUND25_JSON = "paper_accuracy_round25.json"
BIAS_GAP_JSON = "paper_accuracy_bias_gap.json"
# round 28: the rows that train pretrained weights with augment --weight-headroom 2, which
# pair with Table 1's runs
WEIGHT_HEADROOM_JSON = "paper_accuracy_weight_headroom.json"
# round 29: the int8 + QAS rows with int8 gradients rounded to nearest (--grad int8-nearest),
# which pair with Table 1's runs (issue 9: the candidate default)
NEAREST_JSON = "paper_accuracy_nearest.json"
TABLES = {"paper-accuracy": ([JSON_NAME], render),
          "paper-accuracy-weight-headroom": ([JSON_NAME, WEIGHT_HEADROOM_JSON], render_gap),
          "paper-accuracy-nearest": ([JSON_NAME, NEAREST_JSON], render_nearest),
          "paper-accuracy-round25": ([ROUND25_JSON], render),
          "paper-accuracy-round24": ([ROUND24_JSON], render),
          "paper-accuracy-gap": ([ROUND24_JSON, GAP_JSON], render_gap),
          "paper-accuracy-bias-gap": ([ROUND25_JSON, BIAS_GAP_JSON],
                                      lambda doc, gap: render_gap(doc, gap, every_grid=True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--val", type=int, default=3000, help="validation samples (fixed split)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--grad", default="int8",
                    help="activation gradients of the int8 variants: int8 (stochastic "
                         "rounding, Table 1's column), int8-nearest (augment's default since "
                         "round 29) or float32; comma-separated")
    ap.add_argument("--head-headroom", type=float, choices=[4.0, 8.0, 12.0, 16.0],
                    help="the int8 variants' new-head weight grid in multiples of its initial "
                         "range (default augment's, 12); the real initial head is the same on "
                         "4, 8 and 16 (the 16x grid's levels), the 12x grid's on 12")
    ap.add_argument("--head-residual", choices=["on", "off"], default="on",
                    help="the int8 variants' head rounding residual (augment --head-residual; "
                         "default on, augment's)")
    ap.add_argument("--weight-headroom", type=lambda t: t if t == "auto" else float(t),
                    default=1.0, metavar="H",
                    help="the int8 variants' augment --weight-headroom H (the trained "
                         "pretrained weights' grids H times coarser, or auto: 2x on the layers "
                         "feeding the head only; default 1, augment's); "
                         "fp32 starts from the input model either way")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    ap.add_argument("--json", type=Path, default=HERE / JSON_NAME)
    args = ap.parse_args()
    bad = [g for g in args.grad.split(",") if g not in ("int8", "int8-nearest", "float32")]
    if bad:
        sys.exit(f"unknown --grad value: {', '.join(bad)}")
    from tflite_train.errors import TTError
    from tflite_train.headroom import check
    try:
        check(args.weight_headroom)
    except TTError as e:
        sys.exit(str(e))
    if not PKLS.exists():
        sys.exit(f"{PKLS} is not present: this benchmark needs ../shared/models")
    doc = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    seeds = [int(s) for s in args.seeds.split(",")]
    # the rendered table is of this command's steps and validation size
    doc.update(steps=args.steps, val=args.val,
               seeds=sorted(set(doc.get("seeds", []) if doc.get("steps") == args.steps
                                and doc.get("val") == args.val else []) | set(seeds)))
    done = {key(r) for r in doc["runs"]}
    from tflite_train.augment import HEAD_WEIGHT_HEADROOM
    jobs = [{"model": m, "scheme": s, "variant": v, "seed": seed, "steps": args.steps,
             "val": args.val,
             **({} if v in FLOAT else {"grad": g,
                                       "head_headroom": args.head_headroom or HEAD_WEIGHT_HEADROOM,
                                       "head_residual": args.head_residual == "on",
                                       **({"weight_headroom": args.weight_headroom}
                                          if args.weight_headroom != 1.0 else {})})}
            for seed in seeds for m in args.models.split(",")
            for s in args.schemes.split(",") for v in args.variants.split(",")
            for g in (["-"] if v in FLOAT else args.grad.split(","))]
    todo = [j for j in jobs if key(j) not in done]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {args.json}; "
          f"running {len(todo)} with {args.jobs} process(es)", flush=True)
    with get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(run_one, todo):
            doc["runs"].append(r)
            results.save(args.json, doc, JSON_NAME, TABLES)
            print(f"  {r['model']} {r['scheme']} "
                  f"{column(*col(r))} "
                  f"seed {r['seed']}: "
                  f"{100 * r['val_accuracy']:.1f}% (CPU: train {r['train_cpu_seconds']:.0f} s, "
                  f"validation {r['val_cpu_seconds']:.0f} s)", flush=True)
    print()
    print(render(doc))


if __name__ == "__main__":
    main()
