"""Host training speed: steps per second of each engine on the person detector with a new
10-class head (batch 1, seeded random inputs and labels), per scheme.

    .venv/bin/python benchmarks/train_speed.py [--steps 30] [--engines numpy,c,tflm]
        [--json benchmarks/train_speed.json]

The time is the process's CPU time over `--steps` Invokes after 3 warm-up ones, so that
other load on a shared machine counts less than in wall-clock time; one core
(OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1). The JSON also records the load average before
and after. With `PYTHONPATH` set to an older checkout the same script measures that
checkout's engines: `train_speed_before.json` is such a run (benchmarks/run.py RECORDS), which
the RESULTS.md table puts beside today's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
SCHEMES = {"bias-only": "bias-only", "sparse": str(HERE / "schemes" / "person_detect_sparse.json")}


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
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model} is not present: this benchmark needs ../shared/models")
    engines = args.engines.split(",")
    # imported here, not at the top: results.py imports this module for its TABLES
    from tflite_train import augment, tflite_io
    from tflite_train.autodiff import Hyper
    data = {"model": args.model.name, "steps": args.steps, "engines": engines,
            "load_before": list(os.getloadavg()), "rows": []}
    for name, scheme in SCHEMES.items():
        graph = augment.augment(tflite_io.load(args.model), scheme, 10, Hyper()).graph
        data["rows"].append({"scheme": name, "steps_per_second": {
            e: round(steps_per_second(graph, e, args.steps), 2) for e in engines}})
    data["load_after"] = list(os.getloadavg())
    print(render(data))
    if args.json:
        import results
        results.save(args.json, data, JSON, TABLES)


def render(now: dict, before: dict | None = None) -> str:
    """Steps per second per scheme and engine; with `before`, its column beside each."""
    head, rule = ["scheme"], ["---"]
    for e in now["engines"]:
        if before is not None and e in before["engines"]:
            head.append(f"{e} before")
            rule.append("---:")
        head.append(f"{e} now" if before is not None else e)
        rule.append("---:")
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    old = {r["scheme"]: r["steps_per_second"] for r in before["rows"]} if before else {}
    for r in now["rows"]:
        cells = [r["scheme"]]
        for e in now["engines"]:
            if before is not None and e in before["engines"]:
                v = old.get(r["scheme"], {}).get(e)
                cells.append("-" if v is None else f"{v:.1f}")
            cells.append(f"{r['steps_per_second'][e]:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def render_table(before: dict, now: dict) -> str:
    loads = f"{now['load_before'][0]:.1f} / {now['load_after'][0]:.1f}"
    return (render(now, before) + f"\n\nSteps per second ({now['steps']} steps, CPU time); "
            f"load average (1 min) before / after today's run: {loads}.")


JSON = "train_speed.json"
TABLES = {"train-speed": (["train_speed_before.json", JSON], render_table)}

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")      # before numpy is imported
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
