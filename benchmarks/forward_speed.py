"""Speed of the numpy int8 forward (one core) next to the TFLM interpreter, per model.

    .venv/bin/python benchmarks/forward_speed.py [--repeats N] [--markdown]

Prints one row per model: MACs, median wall time of our forward and of TFLM's Invoke
(reference kernels, x86), over N runs after one warm-up.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")          # "one core", as the claim says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from tflite_train import ops, tflite_io  # noqa: E402
from tflite_train.runtime import numpy_exec  # noqa: E402
from tflite_train.runtime.tflm import TFLMInterpreter  # noqa: E402
from tflite_train.verify import random_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = [ROOT / "tflite_train" / "data" / "tiny_cnn.tflite"] + [
    ROOT.parent / "shared" / "models" / "tflm" / f"{m}.tflite"
    for m in ("person_detect", "micro_speech_quantized", "hello_world_int8")]


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    for path in MODELS:
        if not path.exists():
            print(f"skipping {path}: not present")
            continue
        graph = tflite_io.load(path)
        macs = sum(ops.get(graph, k).macs(graph, op) for k, op in enumerate(graph.operators))
        xs = random_inputs(graph, np.random.default_rng(0))
        t_np = median_time(lambda: numpy_exec.run(graph, xs), args.repeats)
        it = TFLMInterpreter(path.read_bytes(), preserve_all=False)
        t_tflm = median_time(lambda: it.invoke(xs), args.repeats)
        rows.append((path.name, macs, t_np * 1e3, t_tflm * 1e3))
    if args.markdown:
        print("| model | MACs | numpy forward (ms) | TFLM invoke (ms) |\n|---|---:|---:|---:|")
        for name, macs, a, b in rows:
            print(f"| {name} | {macs:,} | {a:.2f} | {b:.2f} |")
    else:
        print(f"{'model':<32} {'MACs':>12} {'numpy ms':>10} {'TFLM ms':>10}")
        for name, macs, a, b in rows:
            print(f"{name:<32} {macs:>12,} {a:>10.2f} {b:>10.2f}")


if __name__ == "__main__":
    main()
