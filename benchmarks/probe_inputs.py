"""The new head's input |x|^2 at lr.probe's point (seed 0, bias-only) on three kinds of
input, for the three shared models: lr.probe_inputs (dead-leaves images, what augment
probes with since round 18), the former probe's uniform int8 codes (every code equally
likely at every pixel), and Fashion-MNIST images (16, drawn with seed 0), as the data path
feeds them. The head's normalized-LMS rate is ETA_HEAD / |x|^2 on the probe, so the ratio
probe / images is the factor by which its steps on images are too small.

    nice .venv/bin/python benchmarks/probe_inputs.py [--samples 4] [--images 16]
        [--json probe_inputs.json]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "models"
MODELS = {"person detector": SHARED / "tflm" / "person_detect.tflite",
          "MCUNet-5FPS": SHARED / "tiny-training" / "mcunet-5fps.pkl",
          "MobileNetV2-w0.35": SHARED / "tiny-training" / "mbv2-w0.35.pkl"}
JSON = HERE / "probe_inputs.json"


def uniform_codes(graph, n: int, seed: int) -> list[np.ndarray]:
    """The probe's inputs before round 18 (int8 image inputs): uniform codes."""
    t = graph.tensors[graph.inputs[0]]
    if t.dtype != "int8":
        raise SystemExit(f"{t.name}: an int8 input expected")
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=t.shape).astype(np.int8) for _ in range(n)]


def head_x2(graph, inputs) -> float:
    """|x|^2 of the new head's input, averaged over `inputs`: |G_W|^2 / |G_b|^2 of the
    head (G_W = g x^T, G_b = g for one sample)."""
    from tflite_train import lr
    norms, head, _ = lr.probe(graph, "bias-only", 10, seed=0, inputs=inputs)
    return norms[head]["gw2"] / norms[head]["gb2"]


def measure(samples: int, n_images: int) -> dict:
    from tflite_train import data, lr, tflite_io
    from tflite_train.importers.tiny_training import import_pkl
    ds = data.fashion_mnist()
    picks = np.random.default_rng(0).choice(len(ds), n_images, replace=False)
    rows = []
    for name, path in MODELS.items():
        graph = import_pkl(path) if path.suffix == ".pkl" else tflite_io.load(path)
        t = graph.tensors[graph.inputs[0]]
        row = {"model": name,
               "dead_leaves": head_x2(graph, lr.probe_inputs(graph, samples, 0)),
               "uniform": head_x2(graph, uniform_codes(graph, samples, 0)),
               "images": head_x2(graph, [data.to_model_input(ds.images[i], t)
                                         for i in picks])}
        rows.append(row)
        print(row, flush=True)
    return {"samples": samples, "images": n_images, "rows": rows}


def render(doc: dict) -> str:
    n, m = doc["samples"], doc["images"]
    out = [f"| model | dead leaves ({n}, the probe now) | uniform codes ({n}, before) | "
           f"{m} images | dead leaves / images | uniform / images |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        out.append(f"| {r['model']} | {r['dead_leaves']:.4g} | {r['uniform']:.4g} | "
                   f"{r['images']:.4g} | {r['dead_leaves'] / r['images']:.2f} | "
                   f"{r['uniform'] / r['images']:.2f} |")
    return "\n".join(out)


TABLES = {"probe-inputs": (["probe_inputs.json"], render)}


def main() -> None:
    from tflite_train import lr
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=lr.PROBE_SAMPLES,
                    help="probe inputs of each kind (augment's probe uses lr.PROBE_SAMPLES)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--json", type=Path, default=JSON)
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} is not present: this benchmark needs ../shared/models")
    doc = measure(args.samples, args.images)
    results.write_json(args.json, doc)
    print(render(doc))
    if args.json.resolve() == JSON.resolve():
        results.publish(["probe-inputs"])


if __name__ == "__main__":
    main()
