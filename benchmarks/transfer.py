"""Transfer learning with real data: the VWW person detector to Fashion-MNIST (10 classes,
96x96), batch 1, the same steps and samples for every row of a seed. Each scheme as int8 +
QAS (stochastic rounding, the default), int8 + QAS with nearest rounding, int8 without QAS
(plain SGD on the integers), and fp32 (the same trainable set fine-tuned in TensorFlow on
the dequantized model); the int8 variants with float32 activation gradients, int8 ones
rounded stochastically (--grad int8, augment's default until round 29) or int8 ones rounded
to nearest (--grad int8-nearest, augment's default since).

    .venv/bin/python benchmarks/transfer.py [--steps 1000] [--val 1000] [--json out.json]
    .venv/bin/python benchmarks/transfer.py --grad float32,int8 --seeds 0,1,2 --val 3000 \\
        --variants qas,fp32

With several seeds (head initialisation and sample order; the split is fixed) it also prints
each row's mean and standard error over the seeds, and the paired differences (same seed,
same samples) of int8 against float32 gradients and of int8 + QAS against fp32.

With --json NAME.json in benchmarks/, the tables of RESULTS.md that read that file are
re-rendered (benchmarks/results.py): transfer_results.json (seed 0, every variant),
transfer_seed1.json and transfer_seed2.json (--variants qas,fp32), transfer_constant_lr.json
(--constant-lr).

Diagnostics of int8 + QAS's gap to fp32 (benchmarks/RESULTS.md, "What separates int8 + QAS
from fp32 on last:2"): --variants fp32-fq, fp32-sr, fp32-fq-sr, fp32-srh, fp32-srb (fp32 on
the int8 activation grid and/or with its trained weights rounded onto their int8 grid after
every step: paper_accuracy.py), --lr rule (augment's model-derived rates instead of one lr)
and --head-headroom 4|8|12|16 (the new head's grid; the same real initial head on 4, 8, 16).
--weight-headroom H: augment --weight-headroom H (the trained pretrained weights' grids H
times coarser), for every variant (fp32 then starts from the same rounded weights).

--model, --data and --schemes run the same comparison on another model (the tests run it on
the built-in example model and a small .npz).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import numpy as np  # noqa: E402

from tflite_train import augment, data, memory, tflite_io  # noqa: E402
from tflite_train.autodiff import Hyper  # noqa: E402
from tflite_train.compare import trained_params  # noqa: E402
from tflite_train.train import Trainer, sample_order, split  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import results  # noqa: E402

MODEL = ROOT.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
SPARSE = ROOT / "schemes" / "person_detect_sparse.json"
SCHEMES = ["bias-only", "last:2", str(SPARSE)]
VARIANTS = {"qas": "int8 + QAS", "qas-nearest": "int8 + QAS, nearest rounding",
            "int8": "int8, no QAS", "fp32": "fp32",
            # diagnostics (paper_accuracy.py): fp32 on the int8 forward's activation grid,
            # fp32 with its weights put back on their int8 grid after every step, both
            "fp32-fq": "fp32, int8 activation grid",
            "fp32-sr": "fp32, weights rounded to their int8 grid",
            "fp32-fq-sr": "fp32, int8 activation grid, weights rounded to their int8 grid",
            "fp32-srh": "fp32, the new head's weights rounded to their int8 grid",
            "fp32-srb": "fp32, the pretrained weights rounded to their int8 grid"}
# --grad: the activation gradients of the int8 variants (fp32 is TensorFlow's float32)
GRADS = {"float32": ("float32", "stochastic"), "int8": ("int8", "stochastic"),
         "int8-nearest": ("int8", "nearest")}


def head_codes(trainer) -> dict:
    """The new head's int8 weights after training: the largest |code| and the share at the
    grid's end (+-127), which says whether its headroom (augment.HEAD_WEIGHT_HEADROOM) was
    used up."""
    w = np.abs(next(v for i, v in trainer.executor.variables.items()
                    if trainer.graph.tensors[i].name == "head/weights").astype(np.int32))
    return {"head_max_code": int(w.max()), "head_saturated": float(np.mean(w >= 127)),
            "head_headroom": augment.HEAD_WEIGHT_HEADROOM}


def run(scheme: str, variant: str, grad: str, seed: int, args, ds, train_idx, val_idx) -> dict:
    fp32 = variant.startswith("fp32")
    dtype, grad_rounding = GRADS[grad if not fp32 else "float32"]
    rule = args.lr == "rule"            # augment's model-derived per-layer rates (lr.py)
    h = getattr(args, "weight_headroom", 1.0)   # callers of run() without the option: 1
    hyper = Hyper(lr=None if rule else float(args.lr),
                  bias_lr=None if rule else args.bias_lr, momentum=args.momentum,
                  decay_steps=args.steps if args.cosine else 0, half_life=0,
                  qas=variant != "int8",
                  rounding="nearest" if variant == "qas-nearest" else "stochastic",
                  seed=seed, grad=dtype, grad_rounding=grad_rounding,
                  weight_headroom=h,
                  # callers of run() without the option: augment's default (on)
                  head_residual=getattr(args, "head_residual", "on") == "on")
    result = augment.augment(tflite_io.load(args.model), scheme, len(ds.classes), hyper)
    parts = memory.training_parts(result.graph)
    t0 = time.time()
    head = {}
    if fp32:
        from paper_accuracy import SR_WHICH, fake_quantized, weights_on_grid
        from tflite_train.fp32 import FloatTrainer
        cls = fake_quantized(FloatTrainer) if "-fq" in variant else FloatTrainer
        ft = (weights_on_grid(cls, seed, SR_WHICH[variant]) if "-sr" in variant
              else cls)(result.graph)
        inp = result.graph.tensors[result.graph.inputs[0]]
        for i in sample_order(train_idx, args.steps, seed):
            ft.step(data.to_model_input(ds.images[i], inp), int(ds.labels[i]))
        hits = sum(ft.predict(data.to_model_input(ds.images[i], inp)) == ds.labels[i]
                   for i in val_idx)
    else:
        tr = Trainer(result.graph, ds, args.engine)
        for i in sample_order(train_idx, args.steps, seed):
            tr.step(i)
        head = head_codes(tr)
        hits = sum(tr.predict(int(i)) == ds.labels[i] for i in val_idx)
    return {"scheme": Path(scheme).stem if scheme.endswith(".json") else scheme,
            "variant": VARIANTS[variant] + headroom_label(h),
            "grad": "-" if fp32 else grad, **({"weight_headroom": h} if h != 1 else {}),
            "seed": seed, "val_accuracy": hits / len(val_idx),
            "trained_params": trained_params(result),
            "saved_activation_bytes": parts.saved_bytes, "mask_bytes": parts.mask_bytes,
            "seconds": round(time.time() - t0, 1), **head}


def headroom_value(text: str):
    """--weight-headroom's value: auto, or a number (augment checks its range)."""
    return text if text == "auto" else float(text)


def headroom_label(h) -> str:
    """The variant's suffix for augment --weight-headroom H (none at 1, the default)."""
    return "" if h == 1 else f", weight headroom {h}" if isinstance(h, str) \
        else f", weight headroom {h:g}x"


def mean_se(values: list[float]) -> tuple[float, float]:
    """results.mean_se with NaN for one value's standard error (this script's tables
    print it as such)."""
    m, se = results.mean_se(values)
    return m, math.nan if se is None else se


def summary(rows: list[dict]) -> str:
    """Per row over seeds (points of accuracy: each seed's, the mean, the standard error of
    the mean), then the paired differences of int8 against float32 gradients and of int8 +
    QAS against fp32 (same seed: same head, samples and validation set), as markdown."""
    out = ["| scheme | variant | gradients | seeds | mean | s.e. |",
           "|---|---|---|---|---:|---:|"]
    groups: dict[tuple, dict[int, float]] = {}
    for r in rows:
        groups.setdefault((r["scheme"], r["variant"], r.get("grad", "float32")), {})[
            r.get("seed", 0)] = 100 * r["val_accuracy"]
    for (scheme, variant, grad), by_seed in groups.items():
        m, se = mean_se(list(by_seed.values()))
        out.append(f"| {scheme} | {variant} | {grad} | "
                   f"{' / '.join(f'{v:.1f}' for v in by_seed.values())} | {m:.2f} | {se:.2f} |")
    pairs = []
    for (scheme, variant, grad), by_seed in groups.items():
        if variant == VARIANTS["fp32"] or grad == "float32":
            continue
        for other, label in (((scheme, variant, "float32"), "float32 gradients"),
                             ((scheme, VARIANTS["fp32"], "-"), "fp32")):
            base = groups.get(other)
            seeds = sorted(set(by_seed) & set(base or {}))
            if not seeds or (label == "fp32" and variant.split(", weight headroom")[0]
                             != VARIANTS["qas"]):
                continue
            d = [by_seed[s] - base[s] for s in seeds]
            m, se = mean_se(d)
            pairs.append(f"| {scheme} | {variant}, {grad} gradients | {label} | "
                         f"{' / '.join(f'{v:+.1f}' for v in d)} | {m:+.2f} | {se:.2f} |")
    if pairs:
        out += ["", "Paired differences in points (same seed: same head, samples and "
                    "validation set):", "", "| scheme | row | minus | per seed | mean | s.e. |",
                "|---|---|---|---|---:|---:|", *pairs]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--lr", default="0.2",
                    help="the weights' rate, or 'rule': augment's model-derived per-layer "
                         "rates for weights and biases (README, how the default is chosen)")
    ap.add_argument("--bias-lr", type=float, default=0.001, help="(not with --lr rule)")
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--head-headroom", type=float, choices=[4.0, 8.0, 12.0, 16.0],
                    help="the new head's int8 weight grid in multiples of its initial range "
                         "(default augment's, 12); initial codes on every 16/X-th level: the "
                         "same real initial head on 4, 8 and 16, the 12x grid's on 12")
    ap.add_argument("--weight-headroom", type=headroom_value, default=1.0, metavar="H",
                    help="augment --weight-headroom: the trained pretrained weights' int8 "
                         "grids H times coarser, or auto (2x on the layers feeding the "
                         "head only); every variant: fp32 then starts from the rounded "
                         "weights too; default 1, the model's grids (augment's default is auto "
                         "since round 29; this benchmark's stored runs are at 1)")
    ap.add_argument("--head-residual", choices=("on", "off"), default="on",
                    help="augment --head-residual: the new head's weights round to nearest "
                         "with an int8 residual (on, the default) or stochastically (off)")
    ap.add_argument("--constant-lr", dest="cosine", action="store_false",
                    help="no cosine decay of the learning rates over the run")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the new head and of the sample order (the split is fixed)")
    ap.add_argument("--seeds", help="comma-separated seeds (overrides --seed)")
    ap.add_argument("--variants", default="qas,qas-nearest,int8,fp32",
                    help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--grad", default="float32",
                    help="comma-separated activation gradients of the int8 variants: float32, "
                         "int8 (stochastic rounding), int8-nearest (augment's default)")
    ap.add_argument("--engine", default="c", choices=["numpy", "c", "tflm"],
                    help="executor of the int8 variants (bit-identical; c is the fastest)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--model", type=Path, default=MODEL,
                    help="the int8 model to fine-tune with a new head (default: the person "
                         "detector)")
    ap.add_argument("--data", default="fashion-mnist",
                    help="fashion-mnist, an .npz with x and y, or a folder of class folders")
    ap.add_argument("--schemes", default=",".join(SCHEMES),
                    help="comma-separated schemes (default: bias-only, last:2 and "
                         "schemes/person_detect_sparse.json)")
    args = ap.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model} is not present: this benchmark needs ../shared/models")
    grads = args.grad.split(",")
    unknown = [g for g in grads if g not in GRADS] + [
        v for v in args.variants.split(",") if v not in VARIANTS]
    if args.lr != "rule":
        try:
            float(args.lr)
        except ValueError:
            unknown.append(f"--lr {args.lr}")
    if unknown:
        sys.exit(f"unknown --grad, --variants or --lr value: {', '.join(unknown)}")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    if args.head_headroom:
        augment.HEAD_WEIGHT_HEADROOM = args.head_headroom
        augment.HEAD_INIT_STEP = int(16 / args.head_headroom)
    ds = data.load(args.data)
    train_idx, val_idx = split(len(ds), 0.1, args.val, 0)
    rows = []
    print("| scheme | variant | gradients | seed | val accuracy | trained params | "
          "saved activations (bytes) |\n|---|---|---|---:|---:|---:|---:|", flush=True)
    for scheme in args.schemes.split(","):
        for seed in seeds:
            for variant in args.variants.split(","):
                for grad in (grads if not variant.startswith("fp32") else ["-"]):
                    r = run(scheme, variant, grad, seed, args, ds, train_idx, val_idx)
                    rows.append(r)
                    print(f"| {r['scheme']} | {r['variant']} | {r['grad']} | {seed} | "
                          f"{100 * r['val_accuracy']:.1f}% | {r['trained_params']:,} | "
                          f"{r['saved_activation_bytes']:,} ({r['mask_bytes']:,} masks) |",
                          flush=True)
    if len(seeds) > 1 or len(grads) > 1:
        print(f"\nValidation accuracy in % ({len(val_idx)} samples each: binomial standard "
              f"error at most {100 * math.sqrt(0.25 / len(val_idx)):.1f} points)\n")
        print(summary(rows))
    if args.json:
        results.write_json(args.json, {"args": vars(args) | {"json": str(args.json),
                                                              "model": str(args.model)},
                                       "rows": rows})
        if args.json.resolve().parent == ROOT:
            results.publish([name for name, (files, _) in TABLES.items()
                             if args.json.name in files
                             and all((ROOT / f).exists() for f in files)])


def render_rows(data: dict) -> str:
    out = ["| scheme | variant | val accuracy | trained params | saved activations (bytes) |",
           "|---|---|---:|---:|---:|"]
    for r in data["rows"]:
        out.append(f"| {r['scheme']} | {r['variant']} | {100 * r['val_accuracy']:.1f}% | "
                   f"{r['trained_params']:,} | {r['saved_activation_bytes']:,} "
                   f"({r['mask_bytes']:,} masks) |")
    return "\n".join(out)


def render_seeds(*runs: dict) -> str:
    """int8 + QAS against fp32 over the seeds of `runs` (one JSON per seed)."""
    out = ["| scheme | int8 + QAS, seeds " + "/".join(str(i) for i in range(len(runs))) +
           " | mean | fp32, seeds " + "/".join(str(i) for i in range(len(runs))) +
           " | mean | int8 + QAS - fp32 |", "|---|---|---:|---|---:|---:|"]
    for scheme in dict.fromkeys(r["scheme"] for r in runs[0]["rows"]):
        acc = {v: [100 * next(r["val_accuracy"] for r in run["rows"]
                              if r["scheme"] == scheme and r["variant"] == v) for run in runs]
               for v in ("int8 + QAS", "fp32")}
        mean = {v: sum(a) / len(a) for v, a in acc.items()}
        out.append(f"| {scheme} | {' / '.join(f'{a:.1f}' for a in acc['int8 + QAS'])} | "
                   f"{mean['int8 + QAS']:.1f}% | {' / '.join(f'{a:.1f}' for a in acc['fp32'])} | "
                   f"{mean['fp32']:.1f}% | {mean['int8 + QAS'] - mean['fp32']:+.1f} |")
    return "\n".join(out)


def render_grads(*runs: dict) -> str:
    """int8 against float32 activation gradients (and fp32), over seeds: one or more runs of
    --grad float32,int8,... --seeds ..., their rows together."""
    return summary([r for run in runs for r in run["rows"]])


def render_head_grid(new: dict, more: dict, *old: dict) -> str:
    """int8 + QAS with int8 gradients on the new head's 8x grid (`new` and `more`, seeds 0-2
    of every scheme and 3-5 of the sparse one; the default since 2026-11-26) against the
    same on the 16x grid and fp32 (`old`: the int8-gradient tables' runs; fp32 starts from
    the same real-valued head on either grid), per scheme:
    accuracy per seed, mean and standard error, then the paired differences on the seeds
    both have, and the head's largest |code| and share at +-127 after training."""
    qas16 = (VARIANTS["qas"], "int8")
    acc: dict[tuple, dict[int, float]] = {}
    codes: dict[str, list[tuple[int, float]]] = {}
    rows = new["rows"] + more["rows"]
    for r in rows:
        acc.setdefault((r["scheme"], "8x"), {})[r["seed"]] = 100 * r["val_accuracy"]
        codes.setdefault(r["scheme"], []).append((r["head_max_code"], r["head_saturated"]))
    for run in old:
        for r in run["rows"]:
            if (r["variant"], r.get("grad")) == qas16:
                acc.setdefault((r["scheme"], "16x"), {})[r["seed"]] = 100 * r["val_accuracy"]
            elif r["variant"] == VARIANTS["fp32"]:
                acc.setdefault((r["scheme"], "fp32"), {})[r["seed"]] = 100 * r["val_accuracy"]
    names = {"8x": "int8 + QAS, int8 gradients, head 8x", "16x":
             "int8 + QAS, int8 gradients, head 16x", "fp32": "fp32"}
    out = ["| scheme | row | seeds | mean | s.e. |", "|---|---|---|---:|---:|"]
    pairs = ["| scheme | row | per seed | mean | s.e. | head: largest code, share at +-127 "
             "(8x, per seed) |", "|---|---|---|---:|---:|---|"]
    for scheme in dict.fromkeys(r["scheme"] for r in rows):
        for row in ("8x", "16x", "fp32"):
            by_seed = acc.get((scheme, row), {})
            if by_seed:
                m, se = mean_se(list(by_seed.values()))
                out.append(f"| {scheme} | {names[row]} | "
                           + " / ".join(f"{s}: {v:.1f}" for s, v in sorted(by_seed.items()))
                           + f" | {m:.2f} | {se:.2f} |")
        mine = acc[(scheme, "8x")]
        for row in ("16x", "fp32"):
            base = acc.get((scheme, row), {})
            d = [mine[s] - base[s] for s in sorted(mine) if s in base]
            if d:
                m, se = mean_se(d)
                pairs.append(f"| {scheme} | head 8x - {names[row]} | "
                             + " / ".join(f"{v:+.1f}" for v in d) + f" | {m:+.2f} | {se:.2f} | "
                             + (" / ".join(f"{c}, {100 * f:.2f}%" for c, f in codes[scheme])
                                if row == "16x" else "") + " |")
    return "\n".join(out + ["", "Paired differences in points (same seed: same initial head, "
                             "samples and validation set):", ""] + pairs)


def render_gap(head8x: dict, head8x_more: dict, old: dict, old_more: dict, rule: dict,
               diag: dict, f32: dict) -> str:
    """Where int8 + QAS's gap to fp32 comes from on the schemes of `diag` (the fp32
    diagnostics of paper_accuracy.py, lr 0.2): per run, accuracy per seed, mean +- SE, and
    paired by seed minus fp32 at the same rates and minus the default int8 + QAS (int8
    gradients, head 8x, lr 0.2); `rule`: int8 + QAS and fp32 at augment's model-derived
    rates (--lr rule); `old`: fp32 and the 16x-grid int8 + QAS runs (lr 0.2); `f32`: int8 +
    QAS with float32 activation gradients on the 8x grid (lr 0.2). The `_more` files add
    seeds."""
    out = ["| scheme | rates | run | accuracy per seed | mean +- SE | minus fp32, same rates "
           "(paired) | minus int8 + QAS, int8 gradients, head 8x, lr 0.2 (paired) |",
           "|---|---|---|---|---:|---:|---:|"]

    def grid(r, src):
        return ("" if r["variant"].startswith("fp32") else "head 8x"
                if src in (head8x, head8x_more, f32) else "head 16x")
    for scheme in dict.fromkeys(r["scheme"] for r in diag["rows"] + f32["rows"]):
        rows: dict[tuple, dict[int, float]] = {}
        for src, rates in ((old, "lr 0.2"), (old_more, "lr 0.2"), (diag, "lr 0.2"),
                           (head8x, "lr 0.2"), (head8x_more, "lr 0.2"), (f32, "lr 0.2"),
                           (rule, "rule")):
            for r in src["rows"]:
                if r["scheme"] != scheme or (src in (old, old_more) and r["grad"] ==
                                             "int8-nearest"):
                    continue
                g = "" if r["grad"] == "-" else f", {r['grad']} gradients"
                label = r["variant"] + g + (f", {grid(r, src)}" if grid(r, src) and
                                            src is not rule else "")
                if r["variant"].startswith("fp32") and r.get("head_headroom", 8) != 8:
                    label += f", head grid {r['head_headroom']:g}x"
                rows.setdefault((rates, label), {})[r["seed"]] = 100 * r["val_accuracy"]
        default = rows[("lr 0.2", f"{VARIANTS['qas']}, int8 gradients, head 8x")]
        for (rates, label), by_seed in rows.items():
            fp32 = rows.get((rates, VARIANTS["fp32"]), {})
            m, se = mean_se(list(by_seed.values()))
            out.append(f"| {scheme} | {rates} | {label} | "
                       + " / ".join(f"{s}: {v:.1f}" for s, v in sorted(by_seed.items()))
                       + f" | {m:.2f}" + ("" if math.isnan(se) else f" +- {se:.2f}")
                       + f" | {results.paired_cell(by_seed, fp32)} | "
                       + (results.paired_cell(by_seed, default) if rates == "lr 0.2" else "-")
                       + " |")
    return "\n".join(out)


TABLES = {
    "transfer": (["transfer_results.json"], render_rows),
    "transfer-int8-grads": (["transfer_int8_grads.json", "transfer_int8_grads_more.json",
                             "transfer_int8_grads_sparse_more.json"], render_grads),
    "transfer-seeds": (["transfer_results.json", "transfer_seed1.json", "transfer_seed2.json"],
                       render_seeds),
    "transfer-constant-lr": (["transfer_constant_lr.json"], render_rows),
    "transfer-head-grid": (["transfer_head8x.json", "transfer_head8x_sparse_more.json",
                            "transfer_int8_grads.json",
                            "transfer_int8_grads_more.json",
                            "transfer_int8_grads_sparse_more.json"], render_head_grid),
    "transfer-head12x": (["transfer_head12x.json"], render_grads),
    # round 27: int8 + QAS with the head's rounding residual (augment's default since), fp32
    # rows copied from transfer_head12x.json (fp32 has no residual: the same runs)
    "transfer-head-residual": (["transfer_head_residual.json"], render_grads),
    # round 28: today's defaults (head 12x with its residual), int8 against float32
    # gradients and fp32 on 6 seeds, bias-only on 24 (12 with fp32), int8 gradients rounded
    # to nearest, last:2 with --weight-headroom 2
    "transfer-round28": (["transfer_round28.json", "transfer_round28_bias.json",
                          "transfer_round28_bias2.json", "transfer_round28_nearest.json",
                          "transfer_round28_nearest_ws.json", "transfer_round28_h2.json"],
                         render_grads),
    # round 29: both new defaults together (int8 gradients rounded to nearest, --weight-
    # headroom auto) on last:2 and sparse, beside round 28's defaults and fp32 (the same
    # seeds) and room29's auto with stochastic gradients
    "transfer-round29": (["transfer_round28.json", "transfer_round29_auto.json",
                          "transfer_round29_defaults.json"], render_grads),
    "transfer-gap": (["transfer_head8x.json", "transfer_head8x_sparse_more.json",
                      "transfer_int8_grads.json", "transfer_int8_grads_sparse_more.json",
                      "transfer_rule_rates.json", "transfer_gap_diag.json",
                      "transfer_f32_8x.json"], render_gap),
}


if __name__ == "__main__":
    main()
