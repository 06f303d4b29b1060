"""Host training speed: steps per second of each engine on the person detector with a new
10-class head (batch 1, seeded random inputs and labels), per scheme.

    .venv/bin/python benchmarks/train_speed.py [--steps 30] [--engines numpy,c,tflm]

The time is the process's CPU time over `--steps` Invokes after 3 warm-up ones, so that
other load on a shared machine counts less than in wall-clock time; one core
(OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from tflite_train import augment, tflite_io  # noqa: E402
from tflite_train.autodiff import Hyper  # noqa: E402
from tflite_train.runtime import make_executor  # noqa: E402

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
SCHEMES = {"bias-only": "bias-only", "sparse": str(HERE / "schemes" / "person_detect_sparse.json")}


def steps_per_second(graph, engine: str, steps: int) -> float:
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
    args = ap.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model} is not present: this benchmark needs ../shared/models")
    engines = args.engines.split(",")
    print("| scheme | " + " | ".join(f"{e} (steps/s)" for e in engines) + " |")
    print("|---|" + "---:|" * len(engines))
    for name, scheme in SCHEMES.items():
        graph = augment.augment(tflite_io.load(args.model), scheme, 10, Hyper()).graph
        speeds = [steps_per_second(graph, e, args.steps) for e in engines]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in speeds) + " |", flush=True)


if __name__ == "__main__":
    main()
