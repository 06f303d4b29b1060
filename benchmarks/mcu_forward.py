"""The int8 forward kernels (micro_kernels/include/tt_forward.h): instructions per MAC on the
Cortex-M7 rig, a whole inference in instructions, and host training speed with them.

    .venv/bin/python benchmarks/mcu_forward.py                 # rig + host, markdown tables
    .venv/bin/python benchmarks/mcu_forward.py --rig-only --json benchmarks/mcu_forward.json
    .venv/bin/python benchmarks/mcu_forward.py --host-only --source DIR   # another checkout
    .venv/bin/python benchmarks/mcu_forward.py --layers "conv 1x1" --dsp-only --json F
        # one kind of layer, layer by layer (PYTHONPATH=DIR: another checkout's kernels)

Rig: a forward pass of the person detector and of MCUNet-5FPS (imported, 128x128) through
--engine c is recorded on the host, kernel call by kernel call (test_cortex_m7_forward's
recorder), and replayed on QEMU's mps2-an500 with -icount shift=0: SysTick ticks every 40
instructions, read around each kernel call only (copying the recorded inputs in is not
counted). Portable C99 at -O2 for the STM32F746 (-mfpu=fpv5-sp-d16). QEMU does not model the
pipeline or caches: these are instruction counts, not cycles. Twice: the portable build
(-DTT_PORTABLE) and the DSP versions a Cortex-M7 build picks (SMLAD, ...); every call's
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
sys.path.insert(0, str(ROOT / "benchmarks"))
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
    for k, (run, inputs, *_) in enumerate(ex.steps):
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


def layer_shape(graph, k: int) -> str:
    """'HxWxCi -> OHxOWxCo' of operator k (batch 1)."""
    op = graph.operators[k]
    x, y = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
    return f"{x[1]}x{x[2]}x{x[3]} -> {y[1]}x{y[2]}x{y[3]}"


BUILDS = (("portable", ("-DTT_PORTABLE",)), ("DSP", ()))


def model_data(title: str, graph, tmp: Path) -> dict:
    """Instructions of every kernel call of one inference (and the in-place depthwise calls),
    in both builds, grouped by kernel and layer kind."""
    calls = layer_calls(graph)
    counts = {label: rig_instructions(calls, tmp, defines) for label, defines in BUILDS}
    groups: dict = {}
    forward = dict.fromkeys(counts, 0)
    for i, (k, call) in enumerate(calls):
        label, macs = describe(graph, k)
        if call.name == "tt_depthwise_conv2d_inplace_s8":
            label += ", in place"
        g = groups.setdefault((call.name, label), {
            "kernel": call.name, "label": label, "layers": 0, "macs": 0,
            "instructions": dict.fromkeys(counts, 0), "per_layer": {b: [] for b in counts},
            "shapes": []})
        g["layers"] += 1
        g["macs"] += macs
        if macs:
            g["shapes"].append(layer_shape(graph, k))
        for build, n in counts.items():
            if call.name != "tt_depthwise_conv2d_inplace_s8":
                forward[build] += n[i]
            g["instructions"][build] += n[i]
            if macs:
                g["per_layer"][build].append(round(n[i] / macs, 4))
    return {"model": title, "macs": sum(describe(graph, k)[1]
                                        for k in range(len(graph.operators))),
            "forward": forward, "kernels": list(groups.values())}


def kernel_text(tmp: Path) -> dict:
    """.text of every forward source, portable and DSP, at -O2 and -Os."""
    from test_cortex_m7_forward import BOARD_CPU, SOURCES
    from tflite_train.runtime import c_forward
    out = {}
    for src in SOURCES:
        sizes = {}
        for key, opt, defines in (("portable -O2", "-O2", ["-DTT_PORTABLE"]),
                                  ("DSP -O2", "-O2", []), ("DSP -Os", "-Os", [])):
            obj = tmp / f"{src.stem}{opt}.o"
            subprocess.run(["arm-none-eabi-gcc", *BOARD_CPU, "-std=c99", opt, *defines, "-I",
                            str(c_forward.MICRO_KERNELS / "include"), "-c", str(src), "-o",
                            str(obj)], check=True)
            out_ = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True,
                                  text=True, check=True).stdout
            sizes[key] = int(out_.splitlines()[1].split()[0])
        out[src.name] = sizes
    return out


def render_models(data: dict) -> str:
    """Per model: the whole inference, then instructions per MAC of each kernel and layer
    kind, portable and DSP (the range over layers for DSP)."""
    out = []
    for m in data["models"]:
        p, d, macs = m["forward"]["portable"], m["forward"]["DSP"], m["macs"]
        out += [f"**{m['model']}**: one inference (every forward kernel call, {macs:,} MACs): "
                f"portable {p:,} instructions ({p / macs:.2f}/MAC), DSP {d:,} "
                f"({d / macs:.2f}/MAC), {p / d:.2f}x fewer", "",
                "| kernel | layers | MACs | portable instructions/MAC | DSP instructions/MAC "
                "(range over layers) | DSP instructions |", "|---|---:|---:|---:|---:|---:|"]
        for g in sorted(m["kernels"], key=lambda g: -g["instructions"]["DSP"]):
            def ratio(build, with_range):
                if not g["macs"]:
                    return "-"
                per = g["per_layer"][build]
                rng = (f" ({min(per):.2f}-{max(per):.2f})"
                       if with_range and len(per) > 1 else "")
                return f"{g['instructions'][build] / g['macs']:.2f}{rng}"
            out.append(f"| {g['kernel']}: {g['label']} | {g['layers']} | {g['macs']:,} | "
                       f"{ratio('portable', False)} | {ratio('DSP', True)} | "
                       f"{g['instructions']['DSP']:,} |")
        out.append("")
    return "\n".join(out)


def render_code(data: dict) -> str:
    out = ["| forward kernel source (arm-none-eabi-gcc 12.2, fpv5-sp-d16) | .text -O2 portable "
           "| .text -O2 DSP | .text -Os DSP |", "|---|---:|---:|---:|"]
    for name, t in data["text"].items():
        out.append(f"| {name} | {t['portable -O2']:,} | {t['DSP -O2']:,} | {t['DSP -Os']:,} |")
    return "\n".join(out)


def render_before_after(data: dict, before: dict) -> str:
    """The DSP versions' instructions per MAC of the 1x1 convolutions and the out-of-place
    depthwise layers, layer shape by layer shape, against `before` (the same calls measured
    with an earlier version of the kernels; layers in the same order)."""
    out = ["| model | kernel | layer (input -> output) | layers | DSP instructions/MAC before "
           "| after |", "|---|---|---|---:|---:|---:|"]
    for m, mb in zip(data["models"], before["models"]):
        old = {(g["kernel"], g["label"]): g for g in mb["kernels"]}
        for g in m["kernels"]:
            if not g.get("shapes") or "inplace" in g["kernel"]:
                continue
            b = old[(g["kernel"], g["label"])]["per_layer"]["DSP"]
            rows: dict = {}
            for shape, o, n in zip(g["shapes"], b, g["per_layer"]["DSP"]):
                rows.setdefault(shape, []).append((o, n))
            for shape, v in rows.items():
                o = sum(x for x, _ in v) / len(v)
                n = sum(y for _, y in v) / len(v)
                out.append(f"| {m['model'].split(' (')[0]} | {g['label']} | {shape} | {len(v)} "
                           f"| {o:.2f} | {n:.2f} |")
    return "\n".join(out)


JSON = "mcu_forward.json"
# each round's "before" is the previous round's JSON: dsp3 against 9f6da88, fwd-speed
# (blocks of 6 columns, 8-channel rows in registers, im2col staging, ADD by tables) against
# main at 6f4db7a, round 4 (fwd-dw, fwd-pw: per-call depthwise set-up, the stem's im2col)
# against main at 9779b7c
BEFORE_DSP3 = "mcu_forward_before_dsp3.json"
BEFORE = "mcu_forward_before_fwd_speed.json"
BEFORE_ROUND4 = "mcu_forward_before_round4.json"
TABLES = {"mcu-forward": ([JSON], render_models), "mcu-forward-code": ([JSON], render_code),
          "mcu-forward-dsp3": ([BEFORE, BEFORE_DSP3], render_before_after),
          "mcu-forward-fwd-speed": ([BEFORE_ROUND4, BEFORE], render_before_after),
          "mcu-forward-round4": ([JSON, BEFORE_ROUND4], render_before_after)}


def rig_models() -> list:
    """[(title, graph)] of the shared models measured on the rig (SystemExit: none there)."""
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
    return models


def layer_rows(tmp: Path, label: str, builds) -> dict:
    """Instructions of every call of the layers `describe` labels `label` (e.g. "conv 1x1"),
    layer by layer, in `builds`: a kernel's before and after without the whole run."""
    out: dict = {"label": label, "models": []}
    for title, graph in rig_models():
        calls = [(k, c) for k, c in layer_calls(graph) if describe(graph, k)[0] == label]
        counts = {b: rig_instructions(calls, tmp, d) if calls else [] for b, d in builds}
        out["models"].append({"model": title, "layers": [
            {"op": k, "kernel": c.name, "shape": layer_shape(graph, k),
             "macs": describe(graph, k)[1], "instructions": {b: n[i] for b, n in counts.items()}}
            for i, (k, c) in enumerate(calls)]})
    return out


def render_layers(data: dict) -> str:
    builds = next(iter(list(r["instructions"]) for m in data["models"] for r in m["layers"]))
    out = []
    for m in (m for m in data["models"] if m["layers"]):
        out += [f"**{m['model']}**, {data['label']}", "",
                "| op | kernel | layer | MACs | " + " | ".join(
                    f"{b} instructions | {b}/MAC" for b in builds) + " |",
                "|---:|---|---|---:|" + "---:|---:|" * len(builds)]
        for r in m["layers"]:
            cells = " | ".join(f"{r['instructions'][b]:,} | "
                               f"{r['instructions'][b] / max(r['macs'], 1):.4f}" for b in builds)
            out.append(f"| {r['op']} | {r['kernel']} | {r['shape']} | {r['macs']:,} | {cells} |")
        macs = sum(r["macs"] for r in m["layers"])
        out.append(f"| | all | {len(m['layers'])} layers | {macs:,} | " + " | ".join(
            f"{sum(r['instructions'][b] for r in m['layers']):,} | "
            f"{sum(r['instructions'][b] for r in m['layers']) / max(macs, 1):.4f}"
            for b in builds) + " |")
        out.append("")
    return "\n".join(out)


def rig(tmp: Path, json_path: Path | None) -> None:
    import results
    models = rig_models()
    data = {"models": [model_data(title, graph, tmp) for title, graph in models],
            "text": kernel_text(tmp)}
    print("Instructions on the Cortex-M7 rig (QEMU mps2-an500, -icount shift=0; instruction "
          "counts, not cycles), -O2 -mcpu=cortex-m7 -mfpu=fpv5-sp-d16, each call rounded to "
          "40; portable C99 (-DTT_PORTABLE) and the DSP versions, both bit-identical to "
          "the host.\n")
    print(render_models(data))
    print(render_code(data))
    if json_path:
        results.save(json_path, data, JSON, TABLES)


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
    ap.add_argument("--json", type=Path,
                    help="write the rig's numbers there (benchmarks/mcu_forward.json also "
                         "re-renders their tables in RESULTS.md)")
    ap.add_argument("--layers", metavar="LABEL",
                    help="only the layers of this kind, as the tables label it (e.g. \"conv "
                         "1x1\"), layer by layer on the rig; --json writes those")
    ap.add_argument("--dsp-only", action="store_true", help="with --layers: the DSP build only")
    args = ap.parse_args()
    if args.layers:
        if args.json and args.json.resolve() == (ROOT / "benchmarks" / JSON).resolve():
            ap.error(f"--layers writes a part of the run: not to benchmarks/{JSON}")
        builds = tuple(b for b in BUILDS if b[0] == "DSP" or not args.dsp_only)
        with tempfile.TemporaryDirectory() as tmp:
            data = layer_rows(Path(tmp), args.layers, builds)
        if not any(m["layers"] for m in data["models"]):
            ap.error(f"no layer is labelled {args.layers!r}")
        print(render_layers(data))
        if args.json:
            import results
            results.write_json(args.json, data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not args.host_only:
            rig(Path(tmp), args.json)
        if not args.rig_only:
            host(args.source.resolve(), args.steps, Path(tmp))


if __name__ == "__main__":
    main()
