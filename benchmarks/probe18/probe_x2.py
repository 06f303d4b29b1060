"""Round 18 (probe18): the new head's input |x|^2 at the probe point (lr.probe, seed 0,
bias-only) on lr.probe_inputs (dead leaves, 4), on the former uniform codes (4) and on 16
Fashion-MNIST images, for the three shared models.

    PYTHONPATH=. nice .venv/bin/python benchmarks/probe18/probe_x2.py
"""
import sys, numpy as np
from pathlib import Path
from tflite_train import lr, tflite_io, data
from tflite_train.importers.tiny_training import import_pkl
SH = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "models"
ds = data.fashion_mnist()
picks = np.random.default_rng(0).choice(len(ds), 16, replace=False)
orig = lr.probe_inputs
def uniform(g, n, seed):
    t = g.tensors[g.inputs[0]]; rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=t.shape).astype(np.int8) for _ in range(n)]
for p in ["tflm/person_detect.tflite", "tiny-training/mcunet-5fps.pkl", "tiny-training/mbv2-w0.35.pkl"]:
    path = SH / p
    g = import_pkl(path) if path.suffix == ".pkl" else tflite_io.load(path)
    out = {}
    for name, fn, n in (("leaves", orig, 4), ("uniform", uniform, 4),
                        ("images", lambda gg, n, seed: [data.to_model_input(ds.images[i], gg.tensors[gg.inputs[0]]) for i in picks[:n]], 16)):
        lr.probe_inputs = fn
        norms, head, _ = lr.probe(g, "bias-only", 10, seed=0, samples=n)
        out[name] = norms[head]["gw2"] / norms[head]["gb2"]
    print(p, {k: round(v, 3) for k, v in out.items()}, "leaves/images %.2f uniform/images %.2f" % (out["leaves"]/out["images"], out["uniform"]/out["images"]), flush=True)
