"""Host training speed: steps per second of each engine, batch 1, seeded random inputs and
labels, on the person detector (new 10-class head; bias-only and its sparse scheme) and on
the paper's MobileNetV2-w0.35 and MCUNet-5FPS (imported from ../shared/models/tiny-training,
new 10-class head, their 99kb schemes); augment's other options at their defaults (the JSON
records the gradient type they gave).

    .venv/bin/python benchmarks/train_speed.py [--steps 30] [--engines numpy,c,tflm]
        [--rows person:bias-only,person:sparse,mbv2:99kb,mcunet:99kb]
        [--json benchmarks/train_speed.json]

The time is the process's CPU time over `--steps` Invokes after 3 warm-up ones, so that
other load on a shared machine counts less than in wall-clock time; one core
(OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1). The JSON also records the load average before
and after. The issue's goal: the default engine (runtime.DEFAULT_ENGINE) at >= 30 steps/s on
MobileNetV2-w0.35 with its 99kb scheme; the table says whether it is met. With `PYTHONPATH`
set to an older checkout the same script measures that checkout's engines:
`train_speed_before.json` is such a run (benchmarks/run.py RECORDS, person detector rows
only), which the RESULTS.md table puts beside today's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = HERE.parent.parent / "shared" / "models"
MODEL = MODELS / "tflm" / "person_detect.tflite"
PKLS = MODELS / "tiny-training"
# row key -> (model label, scheme label, model file, scheme for augment)
ROWS = {
    "person:bias-only": ("person detector", "bias-only", MODEL, "bias-only"),
    "person:sparse": ("person detector", "sparse", MODEL,
                      str(HERE / "schemes" / "person_detect_sparse.json")),
    "mbv2:99kb": ("MobileNetV2-w0.35", "99kb", PKLS / "mbv2-w0.35.pkl",
                  str(HERE / "schemes" / "mbv2-w0.35_99kb.json")),
    "mcunet:99kb": ("MCUNet-5FPS", "99kb", PKLS / "mcunet-5fps.pkl",
                    str(HERE / "schemes" / "mcunet-5fps_99kb.json")),
}
GOAL_ROW, GOAL = ("MobileNetV2-w0.35", "99kb"), 30.0


def load(path: Path):
    if path.suffix == ".pkl":
        from tflite_train.importers.tiny_training import import_pkl
        return import_pkl(path)
    from tflite_train import tflite_io
    return tflite_io.load(path)


def steps_per_second(graph, engine: str, steps: int) -> float:
    import numpy as np

    from tflite_train.runtime import make_executor
    ex = make_executor(graph, engine)
    rng = np.random.default_rng(0)
    shape = graph.tensors[graph.inputs[0]].shape
    samples = [(rng.integers(-128, 128, shape).astype(np.int8),
                np.array([rng.integers(0, 10)], np.int32)) for _ in range(steps + 3)]
    for x, y in samples[:3]:
        ex.invoke([x, y])
    t0 = time.process_time()
    for x, y in samples[3:]:
        ex.invoke([x, y])
    return steps / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--engines", default="numpy,c,tflm")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = [ROWS[r] for r in args.rows.split(",")]
    for _, _, path, _ in rows:
        if not path.exists():
            sys.exit(f"{path} is not present: this benchmark needs ../shared/models")
    engines = args.engines.split(",")
    # imported here, not at the top: results.py imports this module for its TABLES
    from tflite_train import augment
    from tflite_train.autodiff import Hyper
    from tflite_train.runtime import DEFAULT_ENGINE
    data = {"model": MODEL.name, "steps": args.steps, "engines": engines,
            "default_engine": DEFAULT_ENGINE, "load_before": list(os.getloadavg()),
            "rows": []}
    for label, name, path, scheme in rows:
        result = augment.augment(load(path), scheme, 10, Hyper())
        data["rows"].append({"model": label, "scheme": name, "grad": result.hyper.grad,
                             "steps_per_second": {
                                 e: round(steps_per_second(result.graph, e, args.steps), 2)
                                 for e in engines}})
        print(data["rows"][-1], flush=True)
    data["load_after"] = list(os.getloadavg())
    print(render(data))
    print(goal(data))
    if args.json:
        import results
        results.save(args.json, data, JSON, TABLES)


def goal(now: dict) -> str:
    """The issue's goal line: met or not, from the measured row."""
    engine = now.get("default_engine")
    row = next((r for r in now["rows"] if (r.get("model"), r["scheme"]) == GOAL_ROW), None)
    if engine is None or row is None or engine not in row["steps_per_second"]:
        return f"Goal ({GOAL_ROW[0]} {GOAL_ROW[1]}, default engine, >= {GOAL:g} steps/s): " \
               "not measured in this run."
    v = row["steps_per_second"][engine]
    return (f"Goal: {GOAL_ROW[0]} with its {GOAL_ROW[1]} scheme on the default engine "
            f"(`{engine}`) at >= {GOAL:g} steps/s on one core: {v:.1f} steps/s, "
            f"{'met' if v >= GOAL else 'NOT met'}.")


def render(now: dict, before: dict | None = None) -> str:
    """Steps per second per model, scheme and engine; with `before`, its column beside each
    (rows without a model are the person detector's, as the older JSON has them)."""
    default = now.get("default_engine")
    head, rule = ["model", "scheme", "gradients"], ["---", "---", "---"]
    for e in now["engines"]:
        name = f"{e} (default)" if e == default else e
        if before is not None and e in before["engines"]:
            head.append(f"{e} before")
            rule.append("---:")
        head.append(f"{name} now" if before is not None else name)
        rule.append("---:")
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    key = lambda r: (r.get("model", "person detector"), r["scheme"])      # noqa: E731
    old = {key(r): r["steps_per_second"] for r in before["rows"]} if before else {}
    for r in now["rows"]:
        cells = [*key(r), r.get("grad", "float32")]
        for e in now["engines"]:
            if before is not None and e in before["engines"]:
                v = old.get(key(r), {}).get(e)
                cells.append("-" if v is None else f"{v:.1f}")
            cells.append(f"{r['steps_per_second'][e]:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def render_table(before: dict, now: dict) -> str:
    loads = f"{now['load_before'][0]:.1f} / {now['load_after'][0]:.1f}"
    return (render(now, before) + f"\n\nSteps per second ({now['steps']} steps, CPU time); "
            f"load average (1 min) before / after today's run: {loads}.\n\n" + goal(now))


JSON = "train_speed.json"
TABLES = {"train-speed": (["train_speed_before.json", JSON], render_table)}

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")      # before numpy is imported
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
