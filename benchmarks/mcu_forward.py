"""The int8 forward kernels (micro_kernels/include/tt_forward.h): instructions per MAC on the
Cortex-M7 rig, a whole inference in instructions, and host training speed with them.

    .venv/bin/python benchmarks/mcu_forward.py                 # rig + host, markdown tables
    .venv/bin/python benchmarks/mcu_forward.py --rig-only
    .venv/bin/python benchmarks/mcu_forward.py --host-only --source DIR   # another checkout

Rig: a forward pass of the person detector and of MCUNet-5FPS (imported, 128x128) through
--engine c is recorded on the host, kernel call by kernel call (test_cortex_m7_forward's
recorder), and replayed on QEMU's mps2-an500 with -icount shift=0: SysTick ticks every 40
instructions, read around each kernel call only (copying the recorded inputs in is not
counted). Portable C99 at -O2 for the STM32F746 (-mfpu=fpv5-sp-d16). QEMU does not model the
pipeline or caches: these are instruction counts, not cycles. Twice: the portable build
(-DTT_FWD_PORTABLE) and the DSP versions a Cortex-M7 build picks (SMLAD, ...); every call's
outputs are compared with the host's, as in the test. The in-place depthwise kernel is timed
on the same layers (data in place, a ring of lines as scratch).

Host: steps/s of `train` (batch 1, Fashion-MNIST) for MobileNetV2-w0.35 with its 99kb scheme
(import + augment --num-classes 10 --scheme benchmarks/schemes/mbv2-w0.35_99kb.json) on one
core (OMP_NUM_THREADS=1), engines numpy and c; CPU time of the training process (the
machine is shared, so wall time depends on the neighbours) and wall time; and the
`train --steps 100 --engine c` command as a user runs it (100 steps + 1000 validation
inferences). `--source DIR` runs the host part with the tflite_train of another checkout,
e.g. the commit before the forward kernels: `git archive d63dde6 | tar -x -C /tmp/before`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared" / "models"
TICK = 40                           # instructions per SysTick tick under -icount shift=0


# --- rig ---------------------------------------------------------------------------------------

def layer_calls(graph):
    """[(op index, Call)] of one forward pass through --engine c, plus the in-place
    depthwise call on each depthwise layer's real input (where the kernel supports it)."""
    import numpy as np
    from test_cortex_m7_forward import recording
    from tflite_train.runtime import c_forward
    from tflite_train.runtime.numpy_exec import Executor
    from tflite_train.verify import random_inputs
    ex = Executor(graph, "c")
    xs = random_inputs(graph, np.random.default_rng(0))
    values = ex.invoke(xs)
    out = []
    for k, (run, inputs, _, _, _) in enumerate(ex.steps):
        calls = []
        with recording(calls):
            run([values.get(i) if i >= 0 else None for i in inputs])
        out += [(k, c) for c in calls]
        op = graph.operators[k]
        kc = c_forward.inplace_depthwise_call(graph, op)
        if kc is not None:
            args = [values[op.inputs[0]].copy()] + [values.get(i) if i >= 0 else None
                                                    for i in op.inputs[1:]]
            calls = []
            with recording(calls):
                c_forward.bind(graph, op, kc)(args)
            y = values[op.outputs[0]]
            assert np.array_equal(args[0].ravel()[:y.size], y.ravel())
            out += [(k, c) for c in calls]
    return out


def timed_source(program, first: int) -> str:
    """The test's program with SysTick read around each kernel call; main prints the ticks
    of call `first + k` as 'tK N'."""
    from test_cortex_m7_forward import source
    text = source(program)
    lines, case = [], None
    for line in text.splitlines():
        m = re.match(r"static int case(\d+)\(void\)", line)
        if m:
            case = int(m.group(1))
        if re.match(r"  (const \w+ r = )?tt_(?!rig_)\w+\(", line):
            lines += ["  const uint32_t t0_ = tt_rig_ticks();", line,
                      f"  ticks_[{case}] = (t0_ - tt_rig_ticks()) & 0xFFFFFFu;"]
        else:
            lines.append(line)
    text = "\n".join(lines)
    n = len(program.cases)
    assert text.count("ticks_[") == n, "one timed kernel call per case"
    prelude = (f"void tt_rig_ticks_start(void);\nuint32_t tt_rig_ticks(void);\n"
               f"static uint32_t ticks_[{n}];\n")
    text = text.replace("static int check(", prelude + "static int check(", 1)
    report = (f"  for (int k = 0; k < {n}; ++k) {{ char b[24]; int i = 23; uint32_t v = "
              f"ticks_[k]; int id = k + {first}; b[i] = 0;\n"
              "    do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);\n"
              "    b[--i] = ' ';\n"
              "    do { b[--i] = (char)('0' + id % 10); id /= 10; } while (id);\n"
              "    b[--i] = 't'; tt_rig_print(b + i); tt_rig_print(\"\\n\"); }\n")
    text = text.replace("int main(void) {\n  int fails = 0;",
                        "int main(void) {\n  int fails = 0;\n  tt_rig_ticks_start();", 1)
    return text.replace('  tt_rig_print(fails ? "FAIL', report + '  tt_rig_print(fails ? "FAIL', 1)


def rig_instructions(calls, tmp: Path, defines: tuple[str, ...] = ()) -> list[int]:
    """Instructions of each recorded call on the rig (outputs checked bit for bit)."""
    from test_cortex_m7_forward import build, programs, run_rig
    counts: dict[int, int] = {}
    first = 0
    for k, program in enumerate(programs([c for _, c in calls])):
        res = run_rig(build(tmp, f"bench{k}", timed_source(program, first), defines),
                      icount=True)
        out = res.stdout + res.stderr
        if res.returncode != 0 or "PASS" not in out:
            raise SystemExit(f"the rig failed: {out[-800:]}")
        counts.update({int(i): int(t) * TICK for i, t in re.findall(r"^t(\d+) (\d+)$", out, re.M)})
        first += len(program.cases)
    return [counts[i] for i in range(len(calls))]


def describe(graph, k: int) -> tuple[str, int]:
    """(kernel family label, MACs) of operator k."""
    from tflite_train import ops
    op = graph.operators[k]
    macs = ops.get(graph, k).macs(graph, op)
    if op.kind == "CONV_2D":
        w = graph.tensors[op.inputs[1]]
        s = op.options.get("stride_h", 1)
        label = f"conv {w.shape[1]}x{w.shape[2]}" + (f"/{s}" if s > 1 else "")
    elif op.kind == "DEPTHWISE_CONV_2D":
        w = graph.tensors[op.inputs[1]]
        label = f"depthwise {w.shape[1]}x{w.shape[2]}/{op.options.get('stride_h', 1)}"
        m = int(op.options.get("depth_multiplier", 1) or 1)
        label += f", depth multiplier {m}" if m > 1 else ""
    else:
        label = op.kind.lower()
    return label, macs


BUILDS = (("portable", ("-DTT_FWD_PORTABLE",)), ("DSP", ()))


def rig_tables(models, tmp: Path) -> None:
    for title, graph in models:
        calls = layer_calls(graph)
        counts = {label: rig_instructions(calls, tmp, defines) for label, defines in BUILDS}
        groups = defaultdict(lambda: [0, 0, {label: [0, []] for label, _ in BUILDS}])
        forward = dict.fromkeys(counts, 0)
        for i, (k, call) in enumerate(calls):
            label, macs = describe(graph, k)
            if call.name == "tt_depthwise_conv2d_inplace_s8":
                label += ", in place"
            g = groups[(call.name, label)]
            g[0] += 1
            g[1] += macs
            for build, n in counts.items():
                if call.name != "tt_depthwise_conv2d_inplace_s8":
                    forward[build] += n[i]
                g[2][build][0] += n[i]
                if macs:
                    g[2][build][1].append(n[i] / macs)
        total_macs = sum(describe(graph, k)[1] for k in range(len(graph.operators)))
        p, d = forward["portable"], forward["DSP"]
        print(f"\n**{title}**: one inference (every forward kernel call, {total_macs:,} MACs): "
              f"portable {p:,} instructions ({p / total_macs:.2f}/MAC), DSP {d:,} "
              f"({d / total_macs:.2f}/MAC), {p / d:.2f}x fewer\n")
        print("| kernel | layers | MACs | portable instructions/MAC | DSP instructions/MAC "
              "(range over layers) | DSP instructions |")
        print("|---|---:|---:|---:|---:|---:|")

        def ratio(n, per, macs):
            if not macs:
                return "-"
            rng = f" ({min(per):.2f}-{max(per):.2f})" if len(per) > 1 else ""
            return f"{n / macs:.2f}{rng}"
        for (name, label), (layers, macs, by) in sorted(groups.items(),
                                                         key=lambda kv: -kv[1][2]["DSP"][0]):
            print(f"| {name}: {label} | {layers} | {macs:,} | "
                  f"{ratio(by['portable'][0], [], macs)} | "
                  f"{ratio(by['DSP'][0], by['DSP'][1], macs)} | {by['DSP'][0]:,} |")


def kernel_text(tmp: Path) -> None:
    from test_cortex_m7_forward import BOARD_CPU, SOURCES
    from tflite_train.runtime import c_forward
    print("\n| forward kernel source (arm-none-eabi-gcc 12.2, fpv5-sp-d16) | .text -O2 portable "
          "| .text -O2 DSP | .text -Os DSP |")
    print("|---|---:|---:|---:|")
    for src in SOURCES:
        sizes = []
        for opt, defines in (("-O2", ["-DTT_FWD_PORTABLE"]), ("-O2", []), ("-Os", [])):
            obj = tmp / f"{src.stem}{opt}.o"
            subprocess.run(["arm-none-eabi-gcc", *BOARD_CPU, "-std=c99", opt, *defines, "-I",
                            str(c_forward.MICRO_KERNELS / "include"), "-c", str(src), "-o",
                            str(obj)], check=True)
            out = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True,
                                 text=True, check=True).stdout
            sizes.append(int(out.splitlines()[1].split()[0]))
        print(f"| {src.name} | {sizes[0]:,} | {sizes[1]:,} | {sizes[2]:,} |")


def rig(tmp: Path) -> None:
    from tflite_train import tflite_io
    from tflite_train.importers.tiny_training import import_pkl
    models = []
    person = SHARED / "tflm" / "person_detect.tflite"
    mcunet = SHARED / "tiny-training" / "mcunet-5fps.pkl"
    if person.exists():
        models.append(("person detector (96x96, person_detect.tflite)", tflite_io.load(person)))
    if mcunet.exists():
        models.append(("MCUNet-5FPS (128x128, imported, 1000 classes)", import_pkl(mcunet)))
    if not models:
        raise SystemExit("../shared/models is missing: nothing to measure")
    print("Instructions on the Cortex-M7 rig (QEMU mps2-an500, -icount shift=0; instruction "
          "counts, not cycles), -O2 -mcpu=cortex-m7 -mfpu=fpv5-sp-d16, each call rounded to "
          "40; portable C99 (-DTT_FWD_PORTABLE) and the DSP versions, both bit-identical to "
          "the host.")
    rig_tables(models, tmp)
    kernel_text(tmp)


# --- host training speed ----------------------------------------------------------------------

HOST_SCRIPT = r"""
import json, sys, time
import numpy as np
from tflite_train import data, tflite_io
from tflite_train.train import Trainer
graph = tflite_io.load(sys.argv[1])
ds = data.load("fashion-mnist")
out = {}
for engine in sys.argv[3].split(","):
    tr = Trainer(graph, ds, engine)
    for i in range(3):
        tr.step(i)
    steps = int(sys.argv[2])
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(steps):
        tr.step(3 + i)
    out[engine] = {"cpu": steps / (time.process_time() - c0),
                   "wall": steps / (time.perf_counter() - w0)}
print(json.dumps(out))
"""


def host(source: Path, steps: int, tmp: Path) -> None:
    pkl = SHARED / "tiny-training" / "mbv2-w0.35.pkl"
    if not pkl.exists():
        raise SystemExit(f"{pkl} is missing")
    cli = [sys.executable, "-m", "tflite_train"]
    model, train_model = tmp / "mbv2.tflite", tmp / "mbv2.train.tflite"
    subprocess.run([*cli, "import", str(pkl), "-o", str(model)], check=True,
                   capture_output=True)
    subprocess.run([*cli, "augment", str(model), "-o", str(train_model), "--num-classes", "10",
                    "--scheme", str(ROOT / "benchmarks/schemes/mbv2-w0.35_99kb.json")],
                   check=True, capture_output=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(source),
               PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run([sys.executable, "-c", HOST_SCRIPT, str(train_model), str(steps),
                          "numpy,c"], capture_output=True, text=True, env=env, cwd=str(source))
    if res.returncode != 0:
        raise SystemExit(res.stderr[-1500:])
    speed = json.loads(res.stdout.splitlines()[-1])
    t0 = time.perf_counter()
    subprocess.run([*cli, "train", str(train_model), "--data", "fashion-mnist", "--steps", "100",
                    "--engine", "c"], check=True, capture_output=True, env=env,
                   cwd=str(source))
    command = time.perf_counter() - t0
    print(f"\nHost training, MobileNetV2-w0.35 99kb scheme, batch 1, one core "
          f"(tflite_train from {source}; {steps} timed steps):\n")
    print("| engine | steps/s (CPU time) | steps/s (wall) |")
    print("|---|---:|---:|")
    for engine, v in speed.items():
        print(f"| {engine} | {v['cpu']:.1f} | {v['wall']:.1f} |")
    print(f"\n`train --data fashion-mnist --steps 100 --engine c` (100 steps + 1000 validation "
          f"inferences, start-up included): {command:.1f} s wall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig-only", action="store_true")
    ap.add_argument("--host-only", action="store_true")
    ap.add_argument("--source", type=Path, default=ROOT,
                    help="checkout whose tflite_train the host part runs (default: this one)")
    ap.add_argument("--steps", type=int, default=100, help="timed training steps per engine")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.host_only:
            rig(Path(tmp))
        if not args.rig_only:
            host(args.source.resolve(), args.steps, Path(tmp))


if __name__ == "__main__":
    main()
