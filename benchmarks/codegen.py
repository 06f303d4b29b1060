"""The paper's Fig. 10 on the Cortex-M7 rig: the generated training programs of MCUNet-5FPS
and MobileNetV2-w0.35 (128x128, a new 10-class head, their 99kb sparse schemes), their full
update, and the person detector (bias-only, its sparse scheme), each built by
`tflite-train codegen --rig` for the STM32F746's CPU and FPU (`-mcpu=cortex-m7
-mfpu=fpv5-sp-d16 -mfloat-abi=hard`, -O2) and run under QEMU mps2-an500.

    nice .venv/bin/python benchmarks/codegen.py [--steps 3] [--models mcunet,mbv2,person]
        [--grad float32|int8] [--kernels dsp,portable] [--no-full]
        [--json benchmarks/codegen_results.json [--merge]]

With --json benchmarks/codegen_results.json (float32 activation gradients) or
benchmarks/codegen_int8.json (--grad int8 --no-full) the table of benchmarks/RESULTS.md
that reads it is re-rendered (benchmarks/results.py).

SRAM is all of it, measured: the static arena, every other byte of .data/.bss (trained
parameters, optimizer state, update states) and the painted stack's high-water mark.
Flash: code (.text) and the model's constants. QEMU counts instructions, not cycles (one
SysTick tick = 40 instructions under -icount shift=0; counts are whole ticks). Every run is
checked bit for bit against `--engine c` (losses, CRC-32 of every checkpoint region, the
scores of an inference). The full update is measured with the rig's whole 4 MiB of SRAM
when it fits there, and planned otherwise. `--grad` is passed to `augment`: float32 or
int8 activation gradients. `--kernels`: the builds to measure, the kernels' Cortex-M DSP
versions (`dsp`, what a Cortex-M7 build compiles) and/or their portable C99 (`portable`,
TFLITE_TRAIN_KERNELS=portable); same bits.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import results  # noqa: E402
from tflite_train import codegen  # noqa: E402
from tflite_train.cli import main as cli  # noqa: E402
from tflite_train.codegen import rig  # noqa: E402
from tflite_train.errors import TTError  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "models"
SCHEMES = HERE / "schemes"
MODELS = {   # name -> (source, how to get a .tflite, 99kb scheme, TTE's KB and ms per step)
    "mcunet": ("MCUNet-5FPS", SHARED / "tiny-training" / "mcunet-5fps.pkl",
               SCHEMES / "mcunet-5fps_99kb.json", (173, 546)),
    "mbv2": ("MobileNetV2-w0.35", SHARED / "tiny-training" / "mbv2-w0.35.pkl",
             SCHEMES / "mbv2-w0.35_99kb.json", (141, 373)),
    "person": ("person detector", SHARED / "tflm" / "person_detect.tflite",
               SCHEMES / "person_detect_sparse.json", None),
}
GOALS = {"mcunet": (138, 59e6), "mbv2": (113, 40e6)}     # KB of SRAM, instructions per step
MHZ = 216                                                 # the STM32F746's clock


def quiet(*argv) -> None:
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        if cli([str(a) for a in argv]) != 0:
            raise TTError(f"tflite-train {' '.join(map(str, argv))} failed")


def training_model(work: Path, name: str, scheme: str, grad: str) -> Path:
    label, source, _, _ = MODELS[name]
    model = source
    if source.suffix == ".pkl":
        model = work / f"{name}.tflite"
        if not model.exists():
            quiet("import", source, "-o", model)
    out = work / f"{name}-{Path(scheme).stem}-{grad}.train.tflite"
    extra = ["--grad", grad]
    quiet("augment", model, "-o", out, "--num-classes", 10, "--scheme", scheme, *extra)
    return out


def measure(model: Path, work: Path, steps: int, budget: int | None = None,
            kernels: str = "dsp") -> dict:
    """The rig's measurement, or the plan's figures when the program does not fit."""
    out = work / (model.stem + "-gen")
    try:
        program, m = codegen.generate(model, out, rig_steps=steps, sram_budget=budget,
                                      flash_budget=budget, kernels=kernels)
        return {"measured": True, **m.to_json()}
    except TTError as exc:
        program = codegen.load(model)
        p = program.plan
        params = sum(program.param_bytes(v) for _, v in program.params)
        return {"measured": False, "why": str(exc), "planned": {
            "arena": p.arena_bytes, "trained_parameters": params,
            "momentum": sum(program.graph.tensors[t].nbytes for t in program.momentum)}}


def kb(n: float) -> str:
    return f"{n / 1024:,.1f}"


def row(r: dict) -> str:
    label, scheme, grad = r["label"], r["scheme"], r["grad"]
    kernels = r.get("kernels", "portable")    # rows measured before there was a choice
    if not r["measured"]:
        p = r["planned"]
        total = p["arena"] + p["trained_parameters"] + p["momentum"]
        return (f"| {label} | {scheme} | {grad} | {kernels} | planned {kb(total)} = "
                f"{kb(p['arena'])} + "
                f"{kb(p['trained_parameters'] + p['momentum'])} + stack | - | - | - | - | "
                f"not run: {r['why'][:90]} |")
    s, f = r["sram_bytes"], r["flash_bytes"]
    notes = []
    if r.get("tte"):
        kb_, ms = r["tte"]
        notes.append(f"TTE {kb_} KB, {ms} ms = {ms * MHZ / 1000:.1f} M cycles")
    if r.get("goal"):
        notes.append(f"goal <= {r['goal'][0]} KB, <= {r['goal'][1] / 1e6:.0f} M")
    same = "yes" if r["identical_to_engine_c"] else "NO"
    return (f"| {label} | {scheme} | {grad} | {kernels} | **{kb(s['total'])}** = "
            f"{kb(s['arena'])} + "
            f"{kb(s['data_bss'])} + {kb(s['stack'])} | **{kb(f['total'])}** = "
            f"{kb(f['code'])} + {kb(f['model'] + f['data_init'])} | "
            f"{r['instructions_per_step'] / 1e6:,.1f} M | "
            f"{r['instructions_per_inference'] / 1e6:,.1f} M | {same} | {'; '.join(notes)} |")


def render(data: dict) -> str:
    head = ("| model | scheme | grad | kernels | SRAM KB = arena + .data/.bss + stack | flash "
            "KB = code + model | instructions / step | / inference | = --engine c | reference "
            "|\n|---|---|---|---|---|---|---:|---:|---|---|")
    return "\n".join([head, *map(row, data["rows"])])


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` with the rows `new` measured again (same model, scheme, grad and kernels)
    replaced in place, and `new`'s other rows after them."""
    def key(r):
        return r["label"], r["scheme"], r["grad"], r.get("kernels", "portable")
    fresh = {key(r): r for r in new}
    merged = [fresh.pop(key(r), r) for r in old]
    return merged + [r for r in new if key(r) in fresh]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default="mcunet,mbv2,person")
    ap.add_argument("--grad", default="float32")
    ap.add_argument("--kernels", default="dsp",
                    help="comma-separated builds: dsp (Cortex-M DSP versions), portable")
    ap.add_argument("--no-full", action="store_true", help="skip the full-update rows")
    ap.add_argument("--json", type=Path, help="write the measurements to this file (the "
                                              "one in benchmarks/ re-renders RESULTS.md)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of the --json file this run did not measure (same "
                         "model, scheme, grad and kernels: replaced)")
    args = ap.parse_args()
    builds = args.kernels.split(",")
    if not set(builds) <= set(rig.KERNELS):
        ap.error(f"--kernels: comma-separated {' and '.join(rig.KERNELS)}")
    if not rig.available():
        print("the Cortex-M7 rig is not installed (make setup installs it)")
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            label, source, sparse, tte = MODELS[name]
            if not source.exists():
                print(f"{label}: {source} not present, skipped")
                continue
            schemes = [("bias-only", "bias-only")] if name == "person" else []
            schemes.append(("99kb" if name != "person" else "sparse", str(sparse)))
            if not args.no_full and name != "person":
                schemes.append(("full", "full"))
            for scheme_label, scheme in schemes:
                model = training_model(work, name, scheme, args.grad)
                full = scheme == "full"
                for kernels in builds:
                    r = measure(model, work, 1 if full else args.steps,
                                rig.RIG_MEMORY if full else None, kernels)
                    rows.append({"label": label, "scheme": scheme_label, "grad": args.grad,
                                 "kernels": kernels, "tte": None if full else tte,
                                 "goal": None if full else GOALS.get(name), **r})
                    print(row(rows[-1]), flush=True)
    data = {"rows": rows, "rig": "QEMU 7.2 mps2-an500 (Cortex-M7), -icount shift=0; "
                                 "arm-none-eabi-gcc 12.2 -O2 -mfpu=fpv5-sp-d16"}
    print(render(data))
    if args.json and args.merge and args.json.exists():
        data["rows"] = merge_rows(json.loads(args.json.read_text())["rows"], rows)
    if args.json:
        # the table that reads this file, when it is one of ours in benchmarks/
        tables = {t: e for t, e in TABLES.items() if args.json.name in e[0]}
        results.save(args.json, data, args.json.name if tables else JSON, tables or TABLES)
    return 0


JSON = "codegen_results.json"
TABLES = {"codegen-fig10": ([JSON], render), "codegen-int8": (["codegen_int8.json"], render)}


if __name__ == "__main__":
    sys.exit(main())
