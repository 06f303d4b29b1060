"""Speed of the numpy int8 forward (one core) next to the TFLM interpreter, per model.

    .venv/bin/python benchmarks/forward_speed.py [--repeats N] [--json benchmarks/forward_speed.json]

Prints one row per model: MACs, median wall time of our forward and of TFLM's Invoke
(reference kernels, x86), over N runs after one warm-up. With --json
benchmarks/forward_speed.json the table of RESULTS.md is re-rendered from it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
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
sys.path.insert(0, str(ROOT / "benchmarks"))
import results  # noqa: E402

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
    ap.add_argument("--json", type=Path)
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
        rows.append({"model": path.name, "macs": macs, "numpy_ms": round(t_np * 1e3, 2),
                     "tflm_ms": round(t_tflm * 1e3, 2)})
    data = {"repeats": args.repeats, "rows": rows}
    print(render(data))
    if args.json:
        results.save(args.json, data, JSON, TABLES)


def render(data: dict) -> str:
    out = ["| model | MACs | numpy forward (ms) | TFLM invoke (ms) |", "|---|---:|---:|---:|"]
    for r in data["rows"]:
        out.append(f"| {r['model']} | {r['macs']:,} | {r['numpy_ms']:.2f} | {r['tflm_ms']:.2f} |")
    return "\n".join(out)


JSON = "forward_speed.json"
TABLES = {"forward-speed": ([JSON], render)}


if __name__ == "__main__":
    main()
