"""The backward pass and updates of one training step of the person detector (new 10-class
head) through our C kernels on the Cortex-M7 rig (QEMU mps2-an500, `-icount shift=0`,
built for the board: TFLITE_TRAIN_CORTEX_M7_FLAGS), per kernel function.

    .venv/bin/python benchmarks/mcu_step.py [--schemes bias-only,sparse,mcunet-99kb]
        [--grad float32,int8]
        [--json benchmarks/mcu_step.json]

Every kernel call of the second training step on the C engine (seeded random image and
label) is recorded on the host and replayed on the rig with its real inputs; each call is
timed in SysTick ticks of 40 instructions. The forward pass is not included (TFLM's kernels,
or the int8 forward kernels, run it). --grad int8: the training model `augment --grad int8`
writes (int8 activation gradients, stochastic rounding, the planner's one or two passes per
input gradient). QEMU counts instructions, not cycles. The replay has
its inputs in a memory larger than the board's (all the step's vectors at once), which
changes no instruction count.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import results  # noqa: E402
import rig_timing  # noqa: E402
import test_cortex_m7 as rig  # noqa: E402
from tflite_train import augment, memory, ops, tflite_io  # noqa: E402
from tflite_train.autodiff import Hyper  # noqa: E402
from tflite_train.runtime.numpy_exec import Executor  # noqa: E402
from tflite_train.training_ops import options_of, set_option  # noqa: E402

MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
MCUNET = HERE.parent.parent / "shared" / "models" / "tiny-training" / "mcunet-5fps.pkl"
SCHEMES = {"bias-only": "bias-only", "sparse": str(HERE / "schemes" / "person_detect_sparse.json"),
           "mcunet-99kb": str(HERE / "schemes" / "mcunet-5fps_99kb.json")}


def source_graph(name: str):
    """The model a scheme trains: MCUNet-5FPS (imported, 128x128) for mcunet-*, else the
    person detector."""
    if name.startswith("mcunet"):
        from tflite_train.importers.tiny_training import import_pkl
        return import_pkl(MCUNET)
    return tflite_io.load(MODEL)


def step_calls(graph) -> list:
    ex = Executor(graph, "c")
    rng = np.random.default_rng(0)
    shape = graph.tensors[graph.inputs[0]].shape
    steps = []
    for _ in range(2):                           # the first step also runs TT_INIT's copies
        x = rng.integers(-128, 128, shape).astype(np.int8)
        steps.append([])
        with rig.recording(steps[-1]):
            ex.invoke([x, np.array([rng.integers(0, 10)], np.int32)])
    return steps[-1]


def backward_macs(graph) -> int:
    return sum(ops.REGISTRY[op.kind].macs(graph, op) for op in graph.operators
               if op.kind.startswith("TT_"))


def measure(name: str, grad: str, defines=()) -> dict:
    """`defines`: ("-DTT_PORTABLE",) measures the portable kernels instead of the DSP
    versions the board's build picks where a kernel has one."""
    graph = augment.augment(source_graph(name), SCHEMES.get(name, name), 10,
                            Hyper(grad=grad.split("-")[0])).graph
    if grad == "int8-1pass":
        for op in graph.operators:
            if "passes" in options_of(op):
                set_option(op, "passes", 1)
    arena = memory.plan(graph).arena_bytes
    calls = step_calls(graph)
    program = rig.Program(timed=True)
    for call in calls:
        program.add(call)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = rig.run_on_rig(program, tmp, link=rig_timing.big_link(tmp), icount=True,
                             defines=defines)
    ticks = {int(k): int(n) for k, n in re.findall(r"T(\d+) (\d+)", out)}
    per = defaultdict(lambda: [0, 0])
    for k, call in enumerate(calls):
        per[call.name][0] += 1
        per[call.name][1] += 40 * ticks[k]
    return {"scheme": name, "grad": grad, "arena": arena, "macs": backward_macs(graph),
            "calls": len(calls),
            "kernels": [{"kernel": fn, "calls": n, "instructions": instr}
                        for fn, (n, instr) in sorted(per.items(), key=lambda kv: -kv[1][1])]}


def step_parts(kernels: list[dict]) -> tuple[int, str]:
    """A measured step's instructions, and its three largest kernels as table text (kernels
    sorted largest first, as measure() writes them)."""
    total = sum(k["instructions"] for k in kernels)
    top = ", ".join(f"{k['kernel']} {k['instructions'] / 1e6:.1f} M" for k in kernels[:3])
    return total, top


def render(data: dict) -> str:
    """The whole backward step per scheme and gradient type: instructions, the arena it
    needs, and where the instructions go."""
    out = ["| scheme | gradients | arena (bytes) | backward MACs | instructions | "
           "instructions / MAC | the largest parts |", "|---|---|---:|---:|---:|---:|---|"]
    for r in data["runs"]:
        total, top = step_parts(r["kernels"])
        out.append(f"| {r['scheme']} | {r['grad']} | {r['arena']:,} | {r['macs']:,} | "
                   f"{total / 1e6:.1f} M | {total / r['macs']:.1f} | {top} |")
    return "\n".join(out)


def float32_runs(data: dict) -> list[dict]:
    return [r for r in data["runs"] if r["grad"] == "float32"]


def render_float32(data: dict) -> str:
    """The float32-gradient step per scheme: MACs, kernel calls, instructions."""
    out = ["| scheme | backward MACs | kernel calls | instructions | per MAC |",
           "|---|---:|---:|---:|---:|"]
    for r in float32_runs(data):
        total = sum(k["instructions"] for k in r["kernels"])
        out.append(f"| {r['scheme']} | {r['macs']:,} | {r['calls']:,} | {total / 1e6:,.1f} M | "
                   f"{total / r['macs']:.1f} |")
    return "\n".join(out)


def render_kernels(data: dict) -> str:
    """Each kernel function's share of the float32-gradient step, largest first, down to 1%."""
    out = ["| scheme | kernel | calls | instructions | share |", "|---|---|---:|---:|---:|"]
    for r in float32_runs(data):
        total = sum(k["instructions"] for k in r["kernels"])
        rest = [0, 0]
        for k in r["kernels"]:
            share = k["instructions"] / total
            if share >= 0.01:
                out.append(f"| {r['scheme']} | {k['kernel']} | {k['calls']} | "
                           f"{k['instructions']:,} | {100 * share:.1f}% |")
            else:
                rest = [rest[0] + k["calls"], rest[1] + k["instructions"]]
        if rest[0]:
            out.append(f"| {r['scheme']} | the others (under 1% each) | {rest[0]} | "
                       f"{rest[1]:,} | {100 * rest[1] / total:.1f}% |")
    return "\n".join(out)


JSON = "mcu_step.json"
TABLES = {"mcu-step": ([JSON], render), "mcu-step-float32": ([JSON], render_float32),
          "mcu-step-kernels": ([JSON], render_kernels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="bias-only,sparse")
    ap.add_argument("--grad", default="float32",
                    help="comma-separated: float32, int8 (the planner's passes), int8-1pass "
                         "(every int8 input gradient in one pass, whatever the memory)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not MODEL.exists():
        sys.exit(f"{MODEL} is not present: this benchmark needs ../shared/models")
    data = {"runs": [measure(n, g) for n in args.schemes.split(",")
                     for g in args.grad.split(",")]}
    for r in data["runs"]:
        total = sum(k["instructions"] for k in r["kernels"])
        print(f"\n{r['scheme']}, {r['grad']} gradients: {total:,} instructions for "
              f"{r['macs']:,} MACs of the backward ops, {r['calls']} kernel calls; arena "
              f"{r['arena']:,} bytes\n")
        print("| kernel | calls | instructions | share |\n|---|---:|---:|---:|")
        for k in r["kernels"]:
            print(f"| {k['kernel']} | {k['calls']} | {k['instructions']:,} | "
                  f"{100 * k['instructions'] / total:.1f}% |")
    print()
    print(render(data))
    if args.json:
        results.save(args.json, data, JSON, TABLES)


if __name__ == "__main__":
    main()
