"""Training SRAM of the person detector (new 10-class head) with float32 and with int8
activation gradients (`augment --grad int8`), bias-only and the sparse scheme: the parts of
`tflite-train plan` (the arena TFLM's greedy planner allocates for the file's operator order,
split at its peak operator; trained parameters; optimizer state; TFLM's persistent data,
measured in the 64-bit wheel: an upper bound for the 32-bit board), and how many int8 input
gradients the planner left at two passes (no int32 scratch) because one pass would raise
the arena.

    .venv/bin/python benchmarks/grad_memory.py [--schemes bias-only,sparse] [--json F.json]

With --json benchmarks/grad_memory.json its table in RESULTS.md is re-rendered
(benchmarks/results.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import results
from tflite_train import augment, memory, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.training_ops import options_of

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
SCHEMES = {"bias-only": "bias-only", "sparse": str(HERE / "schemes" / "person_detect_sparse.json")}
JSON = "grad_memory.json"


def measure(name: str, grad: str) -> dict:
    graph = augment.augment(tflite_io.load(MODEL), SCHEMES.get(name, name), 10,
                            Hyper(grad=grad)).graph
    p = memory.plan(graph)
    passes = [options_of(op)["passes"] for op in graph.operators
              if op.kind in memory.INPUT_GRADS and grad == "int8"]
    return {"scheme": name, "grad": grad, "peak_op": p.peak_op,
            "peak_kind": graph.operators[p.peak_op].kind, "arena": p.arena_bytes,
            "parts": p.peak_parts, "params": p.trainable_bytes, "optimizer": p.optimizer_bytes,
            "persistent": memory.tflm_persistent_bytes(graph, tflite_io.serialize(graph), True),
            "input_grads": len(passes), "two_passes": passes.count(2)}


def kb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1024:.1f}"


def render(data: dict) -> str:
    out = ["| scheme | gradients | peak operator | arena | activations | saved | gradients | "
           "scratch | params | optimizer | persistent (TFLM) | total | input grads at 2 passes |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        parts, persistent = r["parts"], r["persistent"]
        total = r["arena"] + r["params"] + r["optimizer"] + (persistent or 0)
        passes = f"{r['two_passes']} of {r['input_grads']}" if r["grad"] == "int8" else "-"
        out.append(f"| {r['scheme']} | {r['grad']} | {r['peak_op']} {r['peak_kind']} | "
                   f"{kb(r['arena'])} | {kb(parts['activations'])} | "
                   f"{kb(parts['saved activations'])} | {kb(parts['gradients'])} | "
                   f"{kb(parts['scratch'])} | {kb(r['params'])} | {kb(r['optimizer'])} | "
                   f"{kb(persistent)} | {kb(total)} | {passes} |")
    return "\n".join(out)


TABLES = {"grad-memory": ([JSON], render)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="bias-only,sparse")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not MODEL.exists():
        sys.exit(f"{MODEL} is not present: this benchmark needs ../shared/models")
    data = {"rows": [measure(name, grad) for name in args.schemes.split(",")
                     for grad in ("float32", "int8")]}
    print(render(data))
    print("\nKB = 1024 bytes; arena parts: the buffers live at the arena's peak operator.")
    if args.json:
        results.save(args.json, data, JSON, TABLES)


if __name__ == "__main__":
    main()
