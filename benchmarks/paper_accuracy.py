"""The paper's Table 1, our way: MCUNet-5FPS and MobileNetV2-w0.35 (imported from
../shared/models/tiny-training) -> Fashion-MNIST (new 10-class head, 128x128 RGB from the
28x28 grey images), batch 1. Schemes: bias-only, last:6 (the paper's "last two blocks":
an inverted-residual block is three convs) and the paper's 99kb sparse scheme. Variants, on
the same trainable set, the same per-layer learning rates and the same samples in the same
order: int8 + QAS (augment's defaults: model-derived rates, stochastic rounding), fp32
(TensorFlow on the dequantized model, tflite_train/fp32.py) and int8 without QAS.
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
import math
import os
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
PKLS = HERE.parent.parent / "shared" / "models" / "tiny-training"
MODELS = ("mcunet-5fps", "mbv2-w0.35")
SCHEMES = ("bias-only", "last:6", "99kb")
VARIANTS = {"qas": "int8 + QAS", "fp32": "fp32", "int8": "int8, no QAS"}


def scheme_spec(model: str, scheme: str) -> str:
    return str(HERE / "schemes" / f"{model}_99kb.json") if scheme == "99kb" else scheme


def run_one(job: dict) -> dict:
    """One (model, scheme, variant, seed): train `steps`, then accuracy on the fixed
    validation set."""
    from tflite_train import augment, data, tflite_io
    from tflite_train.autodiff import Hyper
    from tflite_train.compare import trained_params
    from tflite_train.importers.tiny_training import import_pkl
    from tflite_train.train import Trainer, sample_order, split
    ds = data.fashion_mnist()
    train_idx, val_idx = split(len(ds), 0.1, job["val"], 0)
    hyper = Hyper(qas=job["variant"] != "int8", seed=job["seed"], decay_steps=job["steps"])
    # fp32.FloatTrainer reads the separate TT_UPDATE_* ops: build that variant unfused (the
    # same trainable set and rates; fused == separate bit for bit, tests/test_training_graph)
    result = augment.augment(import_pkl(PKLS / f"{job['model']}.pkl"),
                             scheme_spec(job["model"], job["scheme"]), 10, hyper,
                             fuse=job["variant"] != "fp32")
    t0 = time.time()
    losses = []
    if job["variant"] == "fp32":
        from tflite_train.fp32 import FloatTrainer
        ft = FloatTrainer(result.graph)
        inp = result.graph.tensors[result.graph.inputs[0]]
        for i in sample_order(train_idx, job["steps"], job["seed"]):
            losses.append(ft.step(data.to_model_input(ds.images[i], inp), int(ds.labels[i])))
        train_s = time.time() - t0
        hits = sum(ft.predict(data.to_model_input(ds.images[i], inp)) == ds.labels[i]
                   for i in val_idx)
    else:
        tr = Trainer(result.graph, ds, engine="c")
        for i in sample_order(train_idx, job["steps"], job["seed"]):
            losses.append(tr.step(i))
        train_s = time.time() - t0
        hits = sum(tr.predict(int(i)) == ds.labels[i] for i in val_idx)
    tail = losses[-max(1, len(losses) // 10):]
    return {**job, "val_accuracy": hits / len(val_idx), "val_samples": len(val_idx),
            "final_train_loss": sum(tail) / len(tail), "trained_params": trained_params(result),
            "train_seconds": round(train_s, 1), "seconds": round(time.time() - t0, 1)}


def key(run: dict) -> tuple:
    return (run["model"], run["scheme"], run["variant"], run["seed"], run["steps"], run["val"])


def save(path: Path, doc: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(doc, f, indent=1)
    os.replace(f.name, path)


def table(runs: list[dict], steps: int, val: int) -> str:
    """Markdown: one row per model and scheme, a column per variant: mean +- standard
    error over the seeds (n = seeds), and int8 + QAS minus fp32."""
    cells: dict[tuple, list[float]] = {}
    params: dict[tuple, int] = {}
    for r in runs:
        if r["steps"] == steps and r["val"] == val:
            cells.setdefault((r["model"], r["scheme"], r["variant"]), []).append(
                100 * r["val_accuracy"])
            params[(r["model"], r["scheme"])] = r["trained_params"]

    def fmt(vals):
        if not vals:
            return "-"
        m = sum(vals) / len(vals)
        if len(vals) < 2:
            return f"{m:.1f} (n=1)"
        se = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1) / len(vals))
        return f"{m:.1f} +- {se:.1f} (n={len(vals)})"
    lines = ["| model | scheme | trained params | " + " | ".join(VARIANTS.values())
             + " | QAS - fp32 |", "|---|---|---:|" + "---:|" * (len(VARIANTS) + 1)]
    for model in MODELS:
        for scheme in SCHEMES:
            if (model, scheme) not in params:
                continue
            row = [fmt(cells.get((model, scheme, v), [])) for v in VARIANTS]
            q, f = cells.get((model, scheme, "qas")), cells.get((model, scheme, "fp32"))
            diff = (f"{sum(q) / len(q) - sum(f) / len(f):+.1f}" if q and f else "-")
            lines.append(f"| {model} | {scheme} | {params[(model, scheme)]:,} | "
                         + " | ".join(row) + f" | {diff} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--val", type=int, default=3000, help="validation samples (fixed split)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    ap.add_argument("--json", type=Path, default=HERE / "paper_accuracy_results.json")
    args = ap.parse_args()
    if not PKLS.exists():
        sys.exit(f"{PKLS} is not present: this benchmark needs ../shared/models")
    doc = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    done = {key(r) for r in doc["runs"]}
    jobs = [{"model": m, "scheme": s, "variant": v, "seed": int(seed), "steps": args.steps,
             "val": args.val}
            for seed in args.seeds.split(",") for m in args.models.split(",")
            for s in args.schemes.split(",") for v in args.variants.split(",")]
    todo = [j for j in jobs if key(j) not in done]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {args.json}; "
          f"running {len(todo)} with {args.jobs} process(es)", flush=True)
    with get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(run_one, todo):
            doc["runs"].append(r)
            save(args.json, doc)
            print(f"  {r['model']} {r['scheme']} {VARIANTS[r['variant']]} seed {r['seed']}: "
                  f"{100 * r['val_accuracy']:.1f}% ({r['seconds']:.0f} s)", flush=True)
    print(f"\n{args.steps} steps, {args.val} validation samples:\n")
    print(table(doc["runs"], args.steps, args.val))


if __name__ == "__main__":
    main()
