"""Issue 15's "done when", run as a user runs it: `tflite-train import` (the paper's models),
`augment --num-classes 10 --scheme S` with no hyper-parameter option (`--seed` only), then
`train --data fashion-mnist --steps 300` (the default engine), on MCUNet-5FPS and
MobileNetV2-w0.35 with their 99kb schemes and the person detector with bias-only. Seeds
vary augment's and train's `--seed`; `--val-samples 3000` (train's default split) instead of
train's default 1000, so that a mean over three seeds resolves a few points. Each command
runs in its own process, exactly as typed (`python -m tflite_train.cli`); the accuracy and
the batch augment chose are read from their output.

    nice .venv/bin/python benchmarks/default_runs.py [--seeds 0,1,2] [--val 3000]
        [--json benchmarks/default_runs.json]

Resumable: finished runs stay in the JSON and are not run again.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "models"
# (name, the model's source: a tiny-training .pkl to import or a .tflite, the scheme)
CASES = [("MCUNet-5FPS", SHARED / "tiny-training" / "mcunet-5fps.pkl",
          str(HERE / "schemes" / "mcunet-5fps_99kb.json")),
         ("MobileNetV2-w0.35", SHARED / "tiny-training" / "mbv2-w0.35.pkl",
          str(HERE / "schemes" / "mbv2-w0.35_99kb.json")),
         ("person detector", SHARED / "tflm" / "person_detect.tflite", "bias-only")]
STEPS = 300
GOAL = 60.0
JSON_NAME = "default_runs.json"


def cli(*args: str) -> str:
    """One tflite-train command in its own process; its standard output."""
    p = subprocess.run([sys.executable, "-m", "tflite_train.cli", *args], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise SystemExit(f"tflite-train {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout


def run_one(name: str, source: Path, scheme: str, seed: int, val: int, work: Path) -> dict:
    model = source
    if source.suffix == ".pkl":
        model = work / f"{source.stem}.tflite"
        if not model.exists():
            cli("import", str(source), "-o", str(model))
    out = work / f"{source.stem}-{seed}.train.tflite"
    t0 = time.time()
    said = cli("augment", str(model), "-o", str(out), "--num-classes", "10", "--scheme",
               scheme, "--seed", str(seed))
    t1 = time.time()
    trained = cli("train", str(out), "--data", "fashion-mnist", "--steps", str(STEPS),
                  "--seed", str(seed), "--val-samples", str(val))
    t2 = time.time()
    batch = re.search(r", batch (\d+) \(one update per", said)
    acc = re.search(r"validation accuracy ([\d.]+)% on (\d+) samples", trained)
    if acc is None:
        raise SystemExit(f"no validation accuracy in train's output:\n{trained}")
    return {"model": name, "scheme": Path(scheme).stem, "seed": seed, "steps": STEPS,
            "batch": int(batch[1]) if batch else 1, "val_accuracy": float(acc[1]),
            "val_samples": int(acc[2]), "augment_seconds": round(t1 - t0, 1),
            "train_seconds": round(t2 - t1, 1)}


mean_se = results.mean_se


def render(doc: dict) -> str:
    lines = ["| model | scheme | batch (augment's choice) | samples seen | validation accuracy, "
             "mean +- SE | per seed | goal |", "|---|---|---:|---:|---:|---|---|"]
    for name, _, scheme in CASES:
        rs = sorted((r for r in doc["runs"] if r["model"] == name
                     and r["scheme"] == Path(scheme).stem), key=lambda r: r["seed"])
        if not rs:
            continue
        m, se = mean_se([r["val_accuracy"] for r in rs])
        batches = sorted({r["batch"] for r in rs})
        lines.append(
            f"| {name} | {Path(scheme).stem} | {', '.join(map(str, batches))} | "
            f"{STEPS * batches[0]:,} | {m:.1f}" + ("" if se is None else f" +- {se:.1f}")
            + f" (n={len(rs)}) | " + " / ".join(f"{r['val_accuracy']:.1f}" for r in rs)
            + f" | {'met' if m >= GOAL else 'not met'} ({GOAL:g}%) |")
    vals = {r["val_samples"] for r in doc["runs"]}
    return (f"`train --steps {STEPS}` after `augment` with no hyper-parameter option; "
            f"{', '.join(map(str, sorted(vals)))} validation samples (train's default split), "
            "accuracy in %.\n\n" + "\n".join(lines) + "\n")


TABLES = {"default-runs": ([JSON_NAME], render)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--val", type=int, default=3000, help="validation samples")
    ap.add_argument("--json", type=Path, default=HERE / JSON_NAME)
    args = ap.parse_args()
    missing = [str(s) for _, s, _ in CASES if not s.exists()]
    if missing:
        sys.exit(f"{missing[0]} is not present: this benchmark needs ../shared/models")
    doc = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    done = {(r["model"], r["seed"], r["val_samples"]) for r in doc["runs"]}
    with tempfile.TemporaryDirectory(prefix="default_runs") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, source, scheme in CASES:
                if (name, seed, args.val) in done:
                    continue
                r = run_one(name, source, scheme, seed, args.val, Path(tmp))
                doc["runs"].append(r)
                results.save(args.json, doc, JSON_NAME, TABLES)
                print(f"  {name} {Path(scheme).stem} seed {seed}: batch {r['batch']}, "
                      f"{r['val_accuracy']:.1f}% ({r['augment_seconds']:.0f} s augment, "
                      f"{r['train_seconds']:.0f} s train)", flush=True)
    print(render(doc))


if __name__ == "__main__":
    main()
