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
  default    augment with no option but --seed: the CLI's default run as it stands in
             the checkout that runs the script (with --grad int8, the CLI's own)

--head-factor F multiplies the new head's normalized-LMS rates (weight and bias) by F on top
of the rule, before the schedule's boost (a sweep of the head's rate; `default` only).
--grad: the activation gradients (float32 for the "Default schedule" table, see GRAD).
Models: mcunet, mbv2 (99kb schemes), person (bias-only), person_last2 (last:2),
person_sparse (schemes/person_detect_sparse.json).

Seed s: augment --seed s (the new head's weights, stochastic rounding) and the sample
order of train --seed s; the split is train's default one, that of seed 0, for every run (so
the validation samples are the same and never trained on). Seed 0 of the default schedule
was exactly the CLI's default run while float32 activation gradients were augment's default;
the runs keep float32 gradients (GRAD) so that the table stays one experiment.

    nice .venv/bin/python benchmarks/default_schedule.py [--schedules const,inv50]
        [--models mcunet,mbv2,person] [--seeds 0,1,2] [--steps 300] [--val 1000]
        [--grad float32|int8] [--head-factor 1] [--json FILE]

The round-18 before/after table (default-rates-round18): `--schedules default` with
`--json default_rates_round18.json`, and the same from a `git archive` of the commit before
(benchmarks/run.py's RECORDS) with `--json default_rates_before_round18.json`.

Resumable: every finished run is added to benchmarks/default_schedule.json (atomically) and
runs already in it are skipped, if made with today's rule (RULE: runs that record none were
made before round 18's rule and are run again, in rows of their own); the table (mean and
standard error over the seeds) is rendered into RESULTS.md from it.
"""
from __future__ import annotations

import argparse
import json
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
    "person_last2": ("person detector, last:2", SHARED / "tflm" / "person_detect.tflite",
                     "last:2"),
    "person_sparse": ("person detector, sparse", SHARED / "tflm" / "person_detect.tflite",
                      HERE / "schemes" / "person_detect_sparse.json"),
}
JSON = HERE / "default_schedule.json"
# the table's runs were made while float32 was augment's default activation gradient type;
# pinned so that a resumed run adds comparable rows (int8 became the default on 2026-11-26)
GRAD = "float32"
# the version of tflite_train/lr.py's rule a run records: round 18 changed it (dead-leaves
# probe inputs, the head's bias at the features' rms, ETA_HEAD 1.0 not 0.5), so every
# schedule's rates changed; runs that record no rule were made with the rule before (OLD_RULE)
RULE = "round18"
OLD_RULE = "before round 18"


def head_scaled_rates(graph, scheme: str, seed: int, factor: float, hyper):
    """augment's default per-layer rates with the new head's NLMS rates x `factor` (rounded
    as the rule rounds them), then the schedule's and the pretrained weights' boosts."""
    from dataclasses import replace

    from tflite_train import lr
    rates = lr.model_rates(graph, scheme, 10, seed)
    for k, r in list(rates.items()):
        if r.rule == "nlms":
            rates[k] = replace(r, weight=lr._sig(r.weight * factor),
                               bias=lr._sig(r.bias * factor))
    return lr.scaled(rates, lr.schedule_boost(hyper), lr.weight_boost(hyper, rates.density))


def schedule_hyper(name: str, steps: int, seed: int, graph, scheme: str, grad: str = GRAD,
                   head_factor: float = 1.0):
    """Hyper for the schedule `name` on the model-derived rates."""
    from tflite_train import lr
    from tflite_train.autodiff import Hyper
    if head_factor != 1 and name != "default":
        raise SystemExit("--head-factor goes with --schedules default only")
    if name == "default":
        hyper = Hyper(seed=seed, grad=grad)
        if head_factor != 1:
            hyper = Hyper(seed=seed, grad=grad, layer_lrs=head_scaled_rates(
                graph, scheme, seed, head_factor, hyper))
        return hyper
    if name == "const":
        return Hyper(seed=seed, half_life=0, grad=grad)
    if name == "cos":
        return Hyper(seed=seed, decay_steps=steps, grad=grad)
    m = re.fullmatch(r"inv(\d+)x([\d.]+)", canonical(name))
    if not m:
        raise SystemExit(f"unknown schedule {name!r}: const, cos, invT or invTxF")
    rates = lr.model_rates(graph, scheme, 10, seed)
    return Hyper(seed=seed, half_life=int(m[1]), layer_lrs=lr.scaled(rates, float(m[2])),
                 grad=grad)


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


def run_one(model: str, schedule: str, seed: int, steps: int, val: int, grad: str = GRAD,
            head_factor: float = 1.0) -> dict:
    schedule = canonical(schedule)
    import copy

    from tflite_train import augment, data
    from tflite_train.train import Trainer, sample_order, split
    _, path, scheme = MODELS[model]
    graph = load_model(path)
    hyper = schedule_hyper(schedule, steps, seed, copy.deepcopy(graph), str(scheme), grad,
                           head_factor)
    result = augment.augment(graph, str(scheme), 10, hyper)
    ds = data.load("fashion-mnist", result.graph.tensors[result.graph.inputs[0]].shape)
    train_idx, val_idx = split(len(ds), 0.1, val, 0)
    t0 = time.time()
    trainer = Trainer(result.graph, ds, "c")
    losses = [trainer.step(i) for i in sample_order(train_idx, steps, seed)]
    k = max(1, steps // 5)
    return {"model": model, "schedule": schedule, "seed": seed, "steps": steps, "val": val,
            "grad": grad, "head_factor": head_factor, "rule": RULE,
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
    not mixed with new ones (it keeps its own row, by its factor); a run of an older rule
    (rule_of) is re-run as well."""
    return (not r.get("decay_steps") or "weight_boost" in r) and rule_of(r) == RULE


def rule_of(r: dict) -> str:
    """The learning-rate rule a run trained with (runs that do not record it: OLD_RULE)."""
    return r.get("rule", OLD_RULE)


def grad_of(r: dict) -> str:
    """The activation gradients a run used (the table's first runs, which do not record
    it, pinned float32: GRAD)."""
    return r.get("grad", GRAD)


def key(r: dict) -> tuple:
    return (r["model"], r["schedule"], r["seed"], r["steps"], r["val"], grad_of(r),
            r.get("head_factor", 1.0), rule_of(r))


def done_keys(doc: dict) -> set[tuple]:
    """The runs a resumed run skips: those of today's code (current)."""
    return {key(r) for r in doc["runs"] if current(r)}


def todo_key(model: str, schedule: str, seed: int, steps: int, val: int, grad: str,
             head_factor: float) -> tuple:
    """The key of the run that run_one would make now (under RULE)."""
    return key({"model": model, "schedule": canonical(schedule), "seed": seed, "steps": steps,
                "val": val, "grad": grad, "head_factor": head_factor, "rule": RULE})


def mean_se(vals: list[float]) -> str:
    m, se = results.mean_se(vals)
    return f"{m:.1f}" if se is None else f"{m:.1f} +- {se:.1f}"


def render(doc: dict) -> str:
    """One row per model and schedule: accuracy per seed, mean +- standard error."""
    cells: dict[tuple, dict[int, dict]] = {}
    for r in doc["runs"]:
        cells.setdefault((r["model"], r["schedule"], r["steps"], r["val"], boost(r),
                          grad_of(r), r.get("head_factor", 1.0), rule_of(r)),
                         {})[r["seed"]] = r
    out = ["| model, scheme | schedule | steps | val samples | accuracy per seed (%) | "
           "mean +- SE (%) | loss, first -> last fifth (seed 0) |",
           "|---|---|---:|---:|---|---:|---|"]
    for (model, schedule, steps, val, factor, grad, head, rule), by_seed in sorted(
            cells.items(), key=lambda kv: (list(MODELS).index(kv[0][0]), kv[0][1:])):
        accs = [100 * by_seed[s]["val_accuracy"] for s in sorted(by_seed)]
        first = by_seed.get(0)
        loss = f"{first['loss_first']:.2f} -> {first['loss_last']:.2f}" if first else "-"
        default = " (default)" if rule == RULE else f" (default {rule})"
        label = schedule + (default if schedule == default_name() else "") + (
            f", pretrained weights {factor:g}x" if factor != 1 else "") + (
            f", {grad} gradients" if grad != GRAD else "") + (
            f", head x{head:g}" if head != 1 else "") + (
            f", rule {rule}" if rule != OLD_RULE else "")
        out.append(f"| {MODELS[model][0]} | {label} | {steps} | {val} | "
                   + " / ".join(f"{s}: {a:.1f}" for s, a in zip(sorted(by_seed), accs))
                   + f" | {mean_se(accs)} | {loss} |")
    return "\n".join(out)


def render_before_after(before: dict, after: dict) -> str:
    """The `default` schedule's runs of two checkouts: per model, gradient type and head
    factor, the accuracy per seed, mean +- SE, and seed 0's loss and head rate."""
    rows: dict[tuple, dict[str, dict[int, dict]]] = {}
    for side, doc in (("before", before), ("after", after)):
        for r in doc["runs"]:
            if r["schedule"] == "default":
                k = (r["model"], grad_of(r), r.get("head_factor", 1.0), r["steps"], r["val"])
                rows.setdefault(k, {}).setdefault(side, {})[r["seed"]] = r
    seeds = sorted({s for sides in rows.values() for by in sides.values() for s in by})
    out = ["| model, scheme | gradients | rule | steps | "
           + " | ".join(f"seed {s}" for s in seeds)
           + " | mean +- SE | loss, first -> last fifth (seed 0) | head lr (seed 0) |",
           "|---|---|---|---:|" + "---:|" * len(seeds) + "---:|---|---:|"]
    order = ["person", "person_last2", "person_sparse", "mcunet", "mbv2"]   # the claim first
    for (model, grad, head, steps, val), sides in sorted(
            rows.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1], kv[0][2] != 1,
                                          kv[0][2:])):
        for side in ("before", "after"):
            by_seed = sides.get(side)
            if not by_seed:
                continue
            accs = [100 * by_seed[s]["val_accuracy"] for s in sorted(by_seed)]
            first = by_seed.get(0)
            label = ("before (main 6765842)" if side == "before" else "after") + (
                f", head x{head:g}" if head != 1 else "")
            out.append(f"| {MODELS[model][0]} | {grad} | {label} | {steps} | "
                       + " | ".join(f"{100 * by_seed[s]['val_accuracy']:.1f}"
                                    if s in by_seed else "-" for s in seeds)
                       + f" | {mean_se(accs)} | "
                       + (f"{first['loss_first']:.3f} -> {first['loss_last']:.3f} | "
                          f"{first['head_lr']:g} |" if first else "- | - |"))
    return "\n".join(out)


ROUND18 = ("default_rates_before_round18.json", "default_rates_round18.json")
TABLES = {"default-schedule": (["default_schedule.json"], render),
          "default-rates-round18": (list(ROUND18), render_before_after)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", default="const,inv50")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--grad", default=GRAD, choices=["float32", "int8"])
    ap.add_argument("--head-factor", type=float, default=1.0)
    ap.add_argument("--json", type=Path, default=JSON)
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} is not present: this benchmark needs ../shared/models")
    doc = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    doc.pop("measured", None)
    done = done_keys(doc)
    for seed in map(int, args.seeds.split(",")):
        for model in args.models.split(","):
            for schedule in args.schedules.split(","):
                if todo_key(model, schedule, seed, args.steps, args.val, args.grad,
                            args.head_factor) in done:
                    continue
                r = run_one(model, schedule, seed, args.steps, args.val, args.grad,
                            args.head_factor)
                doc["runs"].append(r)
                results.write_json(args.json, doc)
                doc.pop("measured", None)
                print(f"{MODELS[model][0]}, {schedule}, {args.grad}, head x"
                      f"{args.head_factor:g}, seed {seed}: "
                      f"{100 * r['val_accuracy']:.1f}% ({r['seconds']:.0f} s)", flush=True)
    print(render(doc))
    if args.json.resolve() == JSON.resolve():
        results.publish(["default-schedule"])
    elif (args.json.resolve().parent == HERE and args.json.name in ROUND18
          and all((HERE / f).exists() for f in ROUND18)):
        results.publish(["default-rates-round18"])


if __name__ == "__main__":
    main()
