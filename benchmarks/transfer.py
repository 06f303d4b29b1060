"""Transfer learning with real data: the VWW person detector to Fashion-MNIST (10 classes,
96x96), batch 1, the same steps and samples for every row. Each scheme as int8 + QAS
(stochastic rounding, the default), int8 + QAS with nearest rounding, int8 without QAS (plain
SGD on the integers), and fp32 (the same trainable set fine-tuned in TensorFlow on the
dequantized model).

    .venv/bin/python benchmarks/transfer.py [--steps 1000] [--val 1000] [--json out.json]

With --json NAME.json in benchmarks/, the tables of RESULTS.md that read that file are
re-rendered (benchmarks/results.py): transfer_results.json (seed 0, every variant),
transfer_seed1.json and transfer_seed2.json (--variants qas,fp32), transfer_constant_lr.json
(--constant-lr).

--model, --data and --schemes run the same comparison on another model (the tests run it on
the built-in example model and a small .npz).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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


def run(scheme: str, variant: str, args, ds, train_idx, val_idx) -> dict:
    hyper = Hyper(lr=args.lr, bias_lr=args.bias_lr, momentum=args.momentum,
                  decay_steps=args.steps if args.cosine else 0,
                  qas=variant != "int8",
                  rounding="nearest" if variant == "qas-nearest" else "stochastic",
                  seed=args.seed)
    result = augment.augment(tflite_io.load(args.model), scheme, len(ds.classes), hyper)
    parts = memory.training_parts(result.graph)
    t0 = time.time()
    if variant == "fp32":
        from tflite_train.fp32 import FloatTrainer
        ft = FloatTrainer(result.graph)
        inp = result.graph.tensors[result.graph.inputs[0]]
        for i in sample_order(train_idx, args.steps, args.seed):
            ft.step(data.to_model_input(ds.images[i], inp), int(ds.labels[i]))
        hits = sum(ft.predict(data.to_model_input(ds.images[i], inp)) == ds.labels[i]
                   for i in val_idx)
    else:
        tr = Trainer(result.graph, ds)
        for i in sample_order(train_idx, args.steps, args.seed):
            tr.step(i)
        hits = sum(tr.predict(int(i)) == ds.labels[i] for i in val_idx)
    return {"scheme": Path(scheme).stem if scheme.endswith(".json") else scheme,
            "variant": {"qas": "int8 + QAS", "qas-nearest": "int8 + QAS, nearest rounding",
                        "int8": "int8, no QAS", "fp32": "fp32"}[variant],
            "val_accuracy": hits / len(val_idx), "trained_params": trained_params(result),
            "saved_activation_bytes": parts.saved_bytes, "mask_bytes": parts.mask_bytes,
            "seconds": round(time.time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--bias-lr", type=float, default=0.001)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--constant-lr", dest="cosine", action="store_false",
                    help="no cosine decay of the learning rates over the run")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the new head and of the sample order (the split is fixed)")
    ap.add_argument("--variants", default="qas,qas-nearest,int8,fp32",
                    help="comma-separated subset of qas, qas-nearest, int8, fp32")
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
    ds = data.load(args.data)
    train_idx, val_idx = split(len(ds), 0.1, args.val, 0)
    rows = []
    print("| scheme | variant | val accuracy | trained params | saved activations (bytes) |"
          "\n|---|---|---:|---:|---:|", flush=True)
    for scheme in args.schemes.split(","):
        for variant in args.variants.split(","):
            r = run(scheme, variant, args, ds, train_idx, val_idx)
            rows.append(r)
            print(f"| {r['scheme']} | {r['variant']} | {100 * r['val_accuracy']:.1f}% | "
                  f"{r['trained_params']:,} | {r['saved_activation_bytes']:,} "
                  f"({r['mask_bytes']:,} masks) |", flush=True)
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


TABLES = {
    "transfer": (["transfer_results.json"], render_rows),
    "transfer-seeds": (["transfer_results.json", "transfer_seed1.json", "transfer_seed2.json"],
                       render_seeds),
    "transfer-constant-lr": (["transfer_constant_lr.json"], render_rows),
}


if __name__ == "__main__":
    main()
