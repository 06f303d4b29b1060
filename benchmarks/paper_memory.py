"""The paper's Fig. 10 on the paper's own models: peak training SRAM of MCUNet-5FPS and
MobileNetV2-w0.35 (128x128, new 10-class head, batch 1) with full update, the paper's
99kb sparse scheme, and the sparse scheme with in-place fused updates, next to the paper's
figures; plus TensorFlow fine-tuning the float model (full update, batch 1), measured.

    .venv/bin/python benchmarks/paper_memory.py [--no-tf] [--json benchmarks/paper_memory_results.json]

SRAM here = the TFLM greedy arena plan of the training model in file order (activations,
saved activations, gradients, scratch) + trainable parameters (SRAM copies) + optimizer
state (none: plain SGD). Beside it, not in the total: TFLM's persistent op data and tensor
structs, measured in the pinned wheel with our ops registered (`tflite-train plan` does the
same; 64-bit structs, an upper bound for the Cortex-M7). Not included at all: the stack and
the frozen weights, which stay in flash. With --json benchmarks/paper_memory_results.json
the tables of RESULTS.md are re-rendered from it (benchmarks/results.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

PKLS = HERE.parent.parent / "shared" / "models" / "tiny-training"
PAPER_KB = {"mcunet-5fps": (3650, 560, 173), "mbv2-w0.35": (2939, 335, 141)}


def rows_for(name: str) -> list[dict]:
    from tflite_train import augment, memory, tflite_io
    from tflite_train.importers.tiny_training import import_pkl
    base = tflite_io.serialize(import_pkl(PKLS / f"{name}.pkl"))
    sparse = str(HERE / "schemes" / f"{name}_99kb.json")
    out = []
    for label, spec, fuse, paper in (("full update", "full", False, 0),
                                     ("sparse (99kb)", sparse, False, 1),
                                     ("sparse + in-place updates", sparse, True, 2)):
        r = augment.augment(tflite_io.parse(base), spec, 10, fuse=fuse)
        p = memory.plan(r.graph)
        persistent = memory.tflm_persistent_bytes(r.graph, tflite_io.serialize(r.graph), True)
        out.append({"model": name, "variant": label, "arena": p.arena_bytes,
                    **{f"peak_{k}": v for k, v in p.peak_parts.items()},
                    "trainable": p.trainable_bytes, "optimizer": p.optimizer_bytes,
                    "total": p.total_bytes, "persistent": persistent,
                    "peak_op": r.graph.operators[p.peak_op].kind,
                    "paper_kb": PAPER_KB[name][paper]})
    return out


def tf_peak(name: str) -> dict:
    """Run in a child process: TF fine-tuning of the float model, all parameters, batch 1.
    Training memory = peak resident set over building the float model and 3 training steps,
    minus the resident set once TensorFlow, numpy and the int8 model are loaded."""
    code = f"""
import os, resource, json, numpy as np
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
from tflite_train import augment, tflite_io
from tflite_train.importers.tiny_training import import_pkl
from tflite_train.fp32 import FloatTrainer
import tensorflow as tf
g = import_pkl({str(PKLS / (name + '.pkl'))!r})
r = augment.augment(g, 'full', 10, fuse=False)
tf.constant(0.0)         # TensorFlow's runtime is up before the baseline
with open('/proc/self/status') as f:
    rss = [int(l.split()[1]) for l in f if l.startswith('VmRSS')][0]
ft = FloatTrainer(r.graph)
x = np.zeros((1, 128, 128, 3), np.int8)
for i in range(3):
    ft.step(x, i)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{'rss_before_kb': rss, 'maxrss_kb': peak}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=1200)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    info = json.loads(res.stdout.strip().splitlines()[-1])
    info["training_kb"] = info["maxrss_kb"] - info["rss_before_kb"]
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tf", action="store_true", help="skip the TensorFlow measurement")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not PKLS.exists():
        sys.exit(f"{PKLS} is not present: this benchmark needs ../shared/models")
    rows = []
    for name in PAPER_KB:
        rows += rows_for(name)
    tf = {} if args.no_tf else {name: tf_peak(name) for name in PAPER_KB}
    data = {"rows": rows, "tensorflow": tf}
    for fn in (render_table, render_ratios, render_tf):
        print(fn(data) + "\n")
    if args.json:
        results.save(args.json, data, JSON, TABLES)


def render_table(data: dict) -> str:
    kb = results.kb
    out = ["| model | variant | total KB | arena KB (activations / saved / gradients / "
           "scratch at the peak) | trainable params KB | peak at | paper KB | TFLM persistent "
           "KB (not in total) |", "|---|---|---:|---|---:|---|---:|---:|"]
    for r in data["rows"]:
        persistent = "n/a" if r.get("persistent") is None else kb(r["persistent"])
        out.append(f"| {r['model']} | {r['variant']} | {kb(r['total'])} | {kb(r['arena'])} "
                   f"({kb(r['peak_activations'])} / {kb(r['peak_saved activations'])} / "
                   f"{kb(r['peak_gradients'])} / {kb(r['peak_scratch'])}) | "
                   f"{kb(r['trainable'])} | {r['peak_op']} | {r['paper_kb']:,} | {persistent} |")
    return "\n".join(out)


def render_ratios(data: dict) -> str:
    out = ["| model | full update / sparse + in-place (total) | paper's ratio |",
           "|---|---:|---:|"]
    for name in dict.fromkeys(r["model"] for r in data["rows"]):
        rows = [r for r in data["rows"] if r["model"] == name]
        out.append(f"| {name} | {rows[0]['total'] / rows[-1]['total']:.1f}x | "
                   f"{rows[0]['paper_kb'] / rows[-1]['paper_kb']:.1f}x |")
    return "\n".join(out)


def render_tf(data: dict) -> str:
    out = ["| model | TensorFlow float fine-tuning, MB (resident-set growth) | "
           "x our sparse + in-place total |", "|---|---:|---:|"]
    for name, t in data["tensorflow"].items():
        best = [r for r in data["rows"] if r["model"] == name][-1]
        out.append(f"| {name} | {t['training_kb'] / 1024:,.0f} | "
                   f"{t['training_kb'] * 1024 / best['total']:.0f}x |")
    return "\n".join(out)


JSON = "paper_memory_results.json"
TABLES = {"paper-memory": ([JSON], render_table), "paper-memory-ratios": ([JSON], render_ratios),
          "paper-memory-tensorflow": ([JSON], render_tf)}


if __name__ == "__main__":
    main()
