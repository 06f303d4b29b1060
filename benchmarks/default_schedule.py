"""The issue's "Done when" and the choice of the default learning-rate schedule: `import` +
`augment` (no hyper-parameter option) + `train --data fashion-mnist --steps 300`, on
MCUNet-5FPS and MobileNetV2-w0.35 with their 99kb schemes and the person detector with
bias-only, for each candidate schedule on the model-derived rates (tflite_train/lr.py):

  const      a constant rate: the rule's rates (--lr-half-life 0)
  invTxF     inverse-time decay lr * T / (T + t) from F x the rule's rates (--lr-half-life T;
             invT: F = lr.HALF_LIFE_BOOST, what augment uses; the default is marked)
  cos        cosine to 0 over the run from the rule's rates (--lr-decay-steps = steps),
             the pretrained weights' x lr.weight_boost (4 on the 99kb schemes since
             round 11: the table's cos rows, run before, were at 1x)

Seed s: augment --seed s (the new head's weights, stochastic rounding) and the sample
order of train --seed s; the split is train's default one, that of seed 0, for every run (so
the validation samples are the same and never trained on). Seed 0 of the default schedule
was exactly the CLI's default run while float32 activation gradients were augment's default;
the runs keep float32 gradients (GRAD) so that the table stays one experiment.

    nice .venv/bin/python benchmarks/default_schedule.py [--schedules const,inv50]
        [--models mcunet,mbv2,person] [--seeds 0,1,2] [--steps 300] [--val 1000]

Resumable: every finished run is added to benchmarks/default_schedule.json (atomically) and
runs already in it are skipped; the table (mean and standard error over the seeds) is
rendered into RESULTS.md from it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "models"
MODELS = {
    "mcunet": ("MCUNet-5FPS, 99kb", SHARED / "tiny-training" / "mcunet-5fps.pkl",
               HERE / "schemes" / "mcunet-5fps_99kb.json"),
    "mbv2": ("MobileNetV2-w0.35, 99kb", SHARED / "tiny-training" / "mbv2-w0.35.pkl",
             HERE / "schemes" / "mbv2-w0.35_99kb.json"),
    "person": ("person detector, bias-only", SHARED / "tflm" / "person_detect.tflite",
               "bias-only"),
}
JSON = HERE / "default_schedule.json"
# the table's runs were made while float32 was augment's default activation gradient type;
# pinned so that a resumed run adds comparable rows (int8 became the default on 2026-11-26)
GRAD = "float32"


def schedule_hyper(name: str, steps: int, seed: int, graph, scheme: str):
    """Hyper for the schedule `name` on the model-derived rates."""
    from tflite_train import lr
    from tflite_train.autodiff import Hyper
    if name == "const":
        return Hyper(seed=seed, half_life=0, grad=GRAD)
    if name == "cos":
        return Hyper(seed=seed, decay_steps=steps, grad=GRAD)
    m = re.fullmatch(r"inv(\d+)x([\d.]+)", canonical(name))
    if not m:
        raise SystemExit(f"unknown schedule {name!r}: const, cos, invT or invTxF")
    rates = lr.model_rates(graph, scheme, 10, seed)
    return Hyper(seed=seed, half_life=int(m[1]), layer_lrs=lr.scaled(rates, float(m[2])),
                 grad=GRAD)


def canonical(name: str) -> str:
    """invT -> invTxF with F = augment's boost, so that a row says what it ran."""
    from tflite_train import lr
    return f"{name}x{lr.HALF_LIFE_BOOST:g}" if re.fullmatch(r"inv\d+", name) else name


def default_name() -> str:
    from tflite_train import lr
    return f"inv{lr.HALF_LIFE}x{lr.HALF_LIFE_BOOST:g}"


def load_model(path: Path):
    from tflite_train import tflite_io
    from tflite_train.importers.tiny_training import import_pkl
    return import_pkl(path) if path.suffix == ".pkl" else tflite_io.load(path)


def run_one(model: str, schedule: str, seed: int, steps: int, val: int) -> dict:
    schedule = canonical(schedule)
    import copy

    from tflite_train import augment, data
    from tflite_train.train import Trainer, sample_order, split
    _, path, scheme = MODELS[model]
    graph = load_model(path)
    hyper = schedule_hyper(schedule, steps, seed, copy.deepcopy(graph), str(scheme))
    result = augment.augment(graph, str(scheme), 10, hyper)
    ds = data.load("fashion-mnist", result.graph.tensors[result.graph.inputs[0]].shape)
    train_idx, val_idx = split(len(ds), 0.1, val, 0)
    t0 = time.time()
    trainer = Trainer(result.graph, ds, "c")
    losses = [trainer.step(i) for i in sample_order(train_idx, steps, seed)]
    k = max(1, steps // 5)
    return {"model": model, "schedule": schedule, "seed": seed, "steps": steps, "val": val,
            "val_accuracy": trainer.accuracy(val_idx),
            "loss_first": sum(losses[:k]) / k, "loss_last": sum(losses[-k:]) / k,
            "half_life_steps": result.metadata["half_life_steps"],
            "decay_steps": result.metadata["decay_steps"],
            "head_lr": result.metadata["trained"][-1]["lr"],
            "weight_boost": (result.metadata.get("lr_rule") or {}).get("weight_boost", 1.0),
            "seconds": round(time.time() - t0, 1)}


def boost(r: dict) -> float:
    """The pretrained weights' factor a run trained with (runs from before the cosine's
    factor, which do not record it, had 1)."""
    return r.get("weight_boost", 1.0)


def current(r: dict) -> bool:
    """Whether a finished run stands for the code of today: a cosine's weight factor comes
    from the scheme (lr.weight_boost), so a cosine run that does not record it is re-run,
    not mixed with new ones (it keeps its own row, by its factor)."""
    return not r.get("decay_steps") or "weight_boost" in r


def key(r: dict) -> tuple:
    return r["model"], r["schedule"], r["seed"], r["steps"], r["val"]


def mean_se(vals: list[float]) -> str:
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return f"{m:.1f}"
    se = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1) / len(vals))
    return f"{m:.1f} +- {se:.1f}"


def render(doc: dict) -> str:
    """One row per model and schedule: accuracy per seed, mean +- standard error."""
    cells: dict[tuple, dict[int, dict]] = {}
    for r in doc["runs"]:
        cells.setdefault((r["model"], r["schedule"], r["steps"], r["val"], boost(r)),
                         {})[r["seed"]] = r
    out = ["| model, scheme | schedule | steps | val samples | accuracy per seed (%) | "
           "mean +- SE (%) | loss, first -> last fifth (seed 0) |",
           "|---|---|---:|---:|---|---:|---|"]
    for (model, schedule, steps, val, factor), by_seed in sorted(
            cells.items(), key=lambda kv: (list(MODELS).index(kv[0][0]), kv[0][1:])):
        accs = [100 * by_seed[s]["val_accuracy"] for s in sorted(by_seed)]
        first = by_seed.get(0)
        loss = f"{first['loss_first']:.2f} -> {first['loss_last']:.2f}" if first else "-"
        label = schedule + (" (default)" if schedule == default_name() else "") + (
            f", pretrained weights {factor:g}x" if factor != 1 else "")
        out.append(f"| {MODELS[model][0]} | {label} | {steps} | {val} | "
                   + " / ".join(f"{s}: {a:.1f}" for s, a in zip(sorted(by_seed), accs))
                   + f" | {mean_se(accs)} | {loss} |")
    return "\n".join(out)


TABLES = {"default-schedule": (["default_schedule.json"], render)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", default="const,inv50")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=JSON)
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} is not present: this benchmark needs ../shared/models")
    doc = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    doc.pop("measured", None)
    done = {key(r) for r in doc["runs"] if current(r)}
    for seed in map(int, args.seeds.split(",")):
        for model in args.models.split(","):
            for schedule in args.schedules.split(","):
                if (model, canonical(schedule), seed, args.steps, args.val) in done:
                    continue
                r = run_one(model, schedule, seed, args.steps, args.val)
                doc["runs"].append(r)
                results.write_json(args.json, doc)
                doc.pop("measured", None)
                print(f"{MODELS[model][0]}, {schedule}, seed {seed}: "
                      f"{100 * r['val_accuracy']:.1f}% ({r['seconds']:.0f} s)", flush=True)
    print(render(doc))
    if args.json.resolve() == JSON.resolve():
        results.publish(["default-schedule"])


if __name__ == "__main__":
    main()
