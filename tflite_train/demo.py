"""`make demo`: what tflite-train does today, on the built-in example model (and on the
TFLM person detector when ../shared/models is beside the checkout)."""
from __future__ import annotations

import sys
from pathlib import Path

from .cli import main

EXAMPLE = Path(__file__).resolve().parent / "data" / "tiny_cnn.tflite"
PERSON_DETECT = (Path(__file__).resolve().parents[2] / "shared" / "models" / "tflm"
                 / "person_detect.tflite")


def step(title: str, argv: list[str]) -> int:
    print(f"\n=== {title}\n$ tflite-train {' '.join(argv)}", flush=True)
    return main(argv)


def run() -> int:
    worst = 0
    worst |= step("What is in the model: operators, parameters, MACs, inference memory",
                  ["inspect", str(EXAMPLE)])
    worst |= step("Does the host simulation compute exactly what TFLM computes?",
                  ["verify", str(EXAMPLE), "--samples", "5"])
    if PERSON_DETECT.exists():
        worst |= step("The same check on a real model: the TFLM person detector (7.2 M MACs)",
                      ["verify", str(PERSON_DETECT), "--samples", "5"])
    return worst


if __name__ == "__main__":
    sys.exit(run())
