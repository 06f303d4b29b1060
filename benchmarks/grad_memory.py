"""Training SRAM of the person detector (new 10-class head) with float32 and with int8
activation gradients (`augment --grad int8`), bias-only and the sparse scheme: the parts of
`tflite-train plan` (the arena TFLM's greedy planner allocates for the file's operator order,
split at its peak operator; trained parameters; optimizer state; TFLM's persistent data,
measured in the 64-bit wheel: an upper bound for the 32-bit board), and how many int8 input
gradients the planner left at two passes (no int32 scratch) because one pass would raise
the arena.

    .venv/bin/python benchmarks/grad_memory.py [--schemes bias-only,sparse]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tflite_train import augment, memory, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.training_ops import options_of

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
SCHEMES = {"bias-only": "bias-only", "sparse": str(HERE / "schemes" / "person_detect_sparse.json")}


def kb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1024:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="bias-only,sparse")
    args = ap.parse_args()
    if not MODEL.exists():
        sys.exit(f"{MODEL} is not present: this benchmark needs ../shared/models")
    print("| scheme | gradients | peak op | arena | activations | saved | gradients | scratch "
          "| params | optimizer | persistent (TFLM) | total | input grads at 2 passes |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.schemes.split(","):
        for grad in ("float32", "int8"):
            graph = augment.augment(tflite_io.load(MODEL), SCHEMES.get(name, name), 10,
                                    Hyper(grad=grad)).graph
            p = memory.plan(graph)
            persistent = memory.tflm_persistent_bytes(graph, tflite_io.serialize(graph), True)
            passes = [options_of(op)["passes"] for op in graph.operators
                      if op.kind in memory.INPUT_GRADS and grad == "int8"]
            parts = p.peak_parts
            print(f"| {name} | {grad} | {p.peak_op} {graph.operators[p.peak_op].kind} | "
                  f"{kb(p.arena_bytes)} | {kb(parts['activations'])} | "
                  f"{kb(parts['saved activations'])} | {kb(parts['gradients'])} | "
                  f"{kb(parts['scratch'])} | {kb(p.trainable_bytes)} | {kb(p.optimizer_bytes)} | "
                  f"{kb(persistent)} | {kb(p.total_bytes + (persistent or 0))} | "
                  f"{passes.count(2)} of {len(passes)} |" if passes else
                  f"| {name} | {grad} | {p.peak_op} {graph.operators[p.peak_op].kind} | "
                  f"{kb(p.arena_bytes)} | {kb(parts['activations'])} | "
                  f"{kb(parts['saved activations'])} | {kb(parts['gradients'])} | "
                  f"{kb(parts['scratch'])} | {kb(p.trainable_bytes)} | {kb(p.optimizer_bytes)} | "
                  f"{kb(persistent)} | {kb(p.total_bytes + (persistent or 0))} | - |")
    print("\nKB = 1024 bytes; arena parts are the buffers live at the arena's peak operator.")


if __name__ == "__main__":
    main()
