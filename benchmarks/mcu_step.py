"""The backward pass and updates of one training step of the person detector (new 10-class
head) through our C kernels on the Cortex-M7 rig (QEMU mps2-an500, `-icount shift=0`,
built for the board: TFLITE_TRAIN_CORTEX_M7_FLAGS), per kernel function.

    .venv/bin/python benchmarks/mcu_step.py [--schemes bias-only,sparse]
        [--json benchmarks/mcu_step.json]

Every kernel call of the second training step on the C engine (seeded random image and
label) is recorded on the host and replayed on the rig with its real inputs; each call is
timed in SysTick ticks of 40 instructions. The forward pass is not included (TFLM's kernels,
or the int8 forward kernels, run it). QEMU counts instructions, not cycles. The replay has
its inputs in a memory larger than the board's (all the step's vectors at once), which
changes no instruction count. The JSON is what RESULTS.md's mcu-step tables render from.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODEL = HERE.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"
SCHEMES = {"bias-only": "bias-only", "sparse": str(HERE / "schemes" / "person_detect_sparse.json")}


def step_calls(graph, rig) -> list:
    import numpy as np

    from tflite_train.runtime.numpy_exec import Executor
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
    from tflite_train import ops
    return sum(ops.REGISTRY[op.kind].macs(graph, op) for op in graph.operators
               if op.kind.startswith("TT_"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="bias-only,sparse")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not MODEL.exists():
        sys.exit(f"{MODEL} is not present: this benchmark needs ../shared/models")
    # imported here, not at the top: results.py imports this module for its TABLES
    sys.path.insert(0, str(HERE.parent / "tests"))
    import test_cortex_m7 as rig
    from tflite_train import augment, tflite_io
    from tflite_train.autodiff import Hyper
    data = {"model": MODEL.name, "rows": []}
    for name in args.schemes.split(","):
        graph = augment.augment(tflite_io.load(MODEL), SCHEMES.get(name, name), 10,
                                Hyper()).graph
        calls = step_calls(graph, rig)
        program = rig.Program(timed=True)
        for call in calls:
            program.add(call)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            link = tmp / "link.ld"                 # the rig's 4 MB + 4 MB for the vectors
            link.write_text(re.sub(r"(FLASH|RAM)_SIZE = \d+K;", r"\1_SIZE = 4000K;",
                                   (rig.RIG / "link.ld").read_text()))
            out = rig.run_on_rig(program, tmp, link=link, icount=True)
        ticks = {int(k): int(n) for k, n in re.findall(r"T(\d+) (\d+)", out)}
        per = defaultdict(lambda: [0, 0])
        for k, call in enumerate(calls):
            per[call.name][0] += 1
            per[call.name][1] += 40 * ticks[k]
        data["rows"].append({
            "scheme": name, "backward_macs": backward_macs(graph), "calls": len(calls),
            "instructions": sum(v[1] for v in per.values()),
            "kernels": [{"kernel": fn, "calls": n, "instructions": instr}
                        for fn, (n, instr) in sorted(per.items(), key=lambda kv: -kv[1][1])]})
    print(render_step(data) + "\n\n" + render_kernels(data))
    if args.json:
        import results
        results.save(args.json, data, JSON, TABLES)


def render_step(data: dict) -> str:
    out = ["| scheme | backward MACs | kernel calls | instructions | per MAC |",
           "|---|---:|---:|---:|---:|"]
    for r in data["rows"]:
        out.append(f"| {r['scheme']} | {r['backward_macs']:,} | {r['calls']:,} | "
                   f"{r['instructions'] / 1e6:,.1f} M | "
                   f"{r['instructions'] / r['backward_macs']:.1f} |")
    return "\n".join(out)


def render_kernels(data: dict) -> str:
    """Each kernel function's share of the step, largest first, down to 1%."""
    out = ["| scheme | kernel | calls | instructions | share |", "|---|---|---:|---:|---:|"]
    for r in data["rows"]:
        rest = [0, 0]
        for k in r["kernels"]:
            share = k["instructions"] / r["instructions"]
            if share >= 0.01:
                out.append(f"| {r['scheme']} | {k['kernel']} | {k['calls']} | "
                           f"{k['instructions']:,} | {100 * share:.1f}% |")
            else:
                rest = [rest[0] + k["calls"], rest[1] + k["instructions"]]
        if rest[0]:
            out.append(f"| {r['scheme']} | the others (under 1% each) | {rest[0]} | "
                       f"{rest[1]:,} | {100 * rest[1] / r['instructions']:.1f}% |")
    return "\n".join(out)


JSON = "mcu_step.json"
TABLES = {"mcu-step": ([JSON], render_step), "mcu-step-kernels": ([JSON], render_kernels)}

if __name__ == "__main__":
    main()
