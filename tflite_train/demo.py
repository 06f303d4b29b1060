"""`make demo`: what tflite-train does today, on the built-in example model (and on the
TFLM person detector when ../shared/models is beside the checkout): inspect it, check the
host simulation against TFLM, then give it a new 4-class head and train it, batch 1, on
textures it has never seen: in the numpy simulation, then inside the real TFLM interpreter."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from .cli import main

EXAMPLE = Path(__file__).resolve().parent / "data" / "tiny_cnn.tflite"
PERSON_DETECT = (Path(__file__).resolve().parents[2] / "shared" / "models" / "tflm"
                 / "person_detect.tflite")


def step(title: str, argv: list[str]) -> int:
    print(f"\n=== {title}\n$ tflite-train {' '.join(argv)}", flush=True)
    return main(argv)


def new_task(path: Path, n: int = 400, seed: int = 0) -> Path:
    """4 classes of 32x32 textures: checkerboards of two sizes, dots, and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    y = rng.integers(0, 4, n)
    x = np.empty((n, 32, 32), np.uint8)
    for i, c in enumerate(y):
        dy, dx = rng.integers(0, 8, 2)
        if c < 2:
            size = 2 if c == 0 else 4
            img = ((yy + dy) // size + (xx + dx) // size) % 2 * 200.0
        elif c == 2:
            img = (((yy + dy) % 6 < 2) & ((xx + dx) % 6 < 2)) * 220.0
        else:
            img = rng.uniform(0, 255, (32, 32))
        x[i] = np.clip(img + rng.normal(0, 12, (32, 32)), 0, 255).astype(np.uint8)
    np.savez(path, x=x, y=y)
    return path


def run() -> int:
    worst = 0
    worst |= step("What is in the model: operators, parameters, MACs, inference memory",
                  ["inspect", str(EXAMPLE)])
    worst |= step("Does the host simulation compute exactly what TFLM computes?",
                  ["verify", str(EXAMPLE), "--samples", "5"])
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny_cnn.train.tflite"
        data = new_task(Path(tmp) / "textures.npz")
        worst |= step("A training model: new 4-class head, last 2 layers trained, QAS SGD",
                      ["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4",
                       "--scheme", "last:2"])
        worst |= step("On-device training, simulated on the host: batch 1, 2 epochs of 300",
                      ["train", str(model), "--data", str(data), "--epochs", "2",
                       "--val-split", "0.25"])
        worst |= step("The same training inside the real TFLM interpreter, our C kernels "
                      "registered: the same numbers, bit for bit",
                      ["train", str(model), "--data", str(data), "--epochs", "2",
                       "--val-split", "0.25", "--engine", "tflm"])
    if PERSON_DETECT.exists():
        worst |= step("The same check on a real model: the TFLM person detector (7.2 M MACs)",
                      ["verify", str(PERSON_DETECT), "--samples", "5"])
    return worst


if __name__ == "__main__":
    sys.exit(run())
