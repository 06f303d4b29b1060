"""The paper's Fig. 10 on the Cortex-M7 rig: the generated training programs of MCUNet-5FPS
and MobileNetV2-w0.35 (128x128, a new 10-class head, their 99kb sparse schemes), their full
update, and the person detector (bias-only, its sparse scheme), each built by
`tflite-train codegen --rig` for the STM32F746's CPU and FPU (`-mcpu=cortex-m7
-mfpu=fpv5-sp-d16 -mfloat-abi=hard`, -O2) and run under QEMU mps2-an500.

    nice .venv/bin/python benchmarks/codegen.py [--steps 3] [--models mcunet,mbv2,person]
        [--grad float32|int8] [--kernels dsp,portable] [--no-full]
        [--json benchmarks/codegen_results.json [--merge]]
    nice .venv/bin/python benchmarks/codegen.py --profile --models mcunet --grad int8
        --kernels dsp,portable [--input rows --rig-api rows [--lean-stack]]
        --json benchmarks/codegen_profile.json
    nice .venv/bin/python benchmarks/codegen.py --grad int8 --no-full --models mcunet,mbv2
        --input rows --rig-api rows|whole --json benchmarks/codegen_int8.json --merge

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
TFLITE_TRAIN_KERNELS=portable); same bits. `--profile`: where a step's instructions go,
operator by operator (a build whose generated code calls a hook after every kernel,
codegen/rig.py's profile), grouped by phase and kernel. `--input rows`: the programs of
`codegen --input rows` (the sample never in the arena), trained on the rig through
tt_train_step_rows (`--rig-api rows`: the harness's reader copies each row from flash, no
frame anywhere) or tt_train_step (`--rig-api whole`: the frame is the harness's, in flash,
and counted nowhere; on a board it is the caller's SRAM).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import results  # noqa: E402
from tflite_train import codegen  # noqa: E402
from tflite_train.cli import main as cli  # noqa: E402
from tflite_train.codegen import rig  # noqa: E402
from tflite_train.errors import TTError  # noqa: E402
from tflite_train.training_ops import options_of  # noqa: E402

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
            kernels: str = "dsp", arena_limit: int = 0, input_: str = "arena",
            api: str = "whole", lean_stack: bool = False) -> dict:
    """The rig's measurement, or the plan's figures when the program does not fit.
    `input_`, `api`: codegen --input (arena, rows) and the harness's API (whole, rows);
    `lean_stack`: codegen --lean-stack."""
    out = work / (model.stem + "-gen")
    rows = input_ == "rows"
    try:
        program, m = codegen.generate(model, out, rig_steps=steps, sram_budget=budget,
                                      flash_budget=budget, kernels=kernels,
                                      arena_limit=arena_limit, input_rows=rows, rig_api=api,
                                      lean_stack=lean_stack)
        return {"measured": True, **m.to_json()}
    except TTError as exc:
        program = codegen.load(model, arena_limit, rows)
        p = program.plan
        params = sum(program.param_bytes(v) for _, v in program.params)
        return {"measured": False, "why": str(exc), "planned": {
            "arena": p.arena_bytes, "trained_parameters": params,
            "momentum": sum(program.graph.tensors[t].nbytes for t in program.momentum)}}


def kb(n: float) -> str:
    return f"{n / 1024:,.1f}"


def row(r: dict) -> str:
    label, scheme, grad = r["label"], r["scheme"], r["grad"]
    if r.get("arena_limit"):
        grad += f", arena <= {r['arena_limit'] // 1024} KB"
    if r.get("input", "arena") == "rows":
        grad += (", `--input rows`, row API (no frame anywhere)" if r.get("api") == "rows" else
                 ", `--input rows`, whole-sample API (+ the caller's frame, not counted)")
    if r.get("lean_stack"):
        grad += ", `--lean-stack`"
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
        notes.append(f"TTE {kb_} KB, {ms} ms = {ms * MHZ / 1000:.1f} M cycles: "
                     f"**{s['total'] / 1024 / kb_:.2f}x** its SRAM, "
                     f"**{r['instructions_per_step'] / (ms * MHZ * 1000):.2f}x** its cycles")
    if r.get("goal"):
        notes.append(f"goal <= {r['goal'][0]} KB (0.8x), <= {r['goal'][1] / 1e6:.0f} M (0.5x)")
    same = "yes" if r["identical_to_engine_c"] else "NO"
    return (f"| {label} | {scheme} | {grad} | {kernels} | **{kb(s['total'])}** = "
            f"{kb(s['arena'])} + "
            f"{kb(s['data_bss'])} + {kb(s['stack'])} | **{kb(f['total'])}** = "
            f"{kb(f['code'])} + {kb(f['model'] + f['data_init'])} | "
            f"{r['instructions_per_step'] / 1e6:,.1f} M | "
            f"{r['instructions_per_inference'] / 1e6:,.1f} M | {same} | {'; '.join(notes)} |")


def render(data: dict, *more: dict) -> str:
    """The rows of one or more results files (float32 and int8 activation gradients), each
    model's rows together, its float32 ones first."""
    head = ("| model | scheme | grad | kernels | SRAM KB = arena + .data/.bss + stack | flash "
            "KB = code + model | instructions / step | / inference | = --engine c | reference "
            "|\n|---|---|---|---|---|---|---:|---:|---|---|")
    rows = [r for d in (data, *more) for r in d["rows"]]
    order = list(dict.fromkeys((r["label"], r["scheme"]) for r in rows))
    rows.sort(key=lambda r: (order.index((r["label"], r["scheme"])), r["grad"] != "float32"))
    return "\n".join([head, *map(row, rows)])


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` with the rows `new` measured again (same model, scheme, grad and kernels)
    replaced in place, and `new`'s other rows after them."""
    def key(r):
        return (r["label"], r["scheme"], r["grad"], r.get("kernels", "portable"),
                r.get("arena_limit", 0), r.get("input", "arena"), r.get("api", "whole"),
                r.get("lean_stack", False))
    fresh = {key(r): r for r in new}
    merged = [fresh.pop(key(r), r) for r in old]
    return merged + [r for r in new if key(r) in fresh]


# --- where the instructions go: a per-operator profile of one training step --------------

def family(program, k: int) -> str:
    """What operator k's instructions are spent on: the kernel it calls (a 1x1 convolution
    apart from the others), or what runs inside another operator's call."""
    step = program.steps[k]
    op = program.graph.operators[k]
    if step.call is None:
        return ""
    name = step.call.name
    if name in ("tt_conv2d_s8", "tt_conv2d_split_s8", "tt_conv2d_wide_s8"):
        kh, kw = program.graph.tensors[op.inputs[1]].shape[1:3]
        return f"{name} {kh}x{kw}"
    passes = options_of(op).get("passes") if op.kind.startswith("TT_") else None
    if passes is not None and "input_grad" in name and name.endswith("_s8"):
        return f"{name}, {passes} pass{'es' if passes > 1 else ''}"
    return name


def profile_rows(program, prof) -> list[dict]:
    """One row per operator that ran: phase (forward: the model's own operators; backward:
    the loss, gradients and updates), kind, kernel, instructions per step and inference."""
    rows = []
    for k, n in prof.step.items():
        step = program.steps[k]
        rows.append({"op": k, "phase": "backward" if step.training else "forward",
                     "kind": step.kind, "kernel": family(program, k),
                     "output": program.graph.tensors[program.graph.operators[k].outputs[0]].name
                     if program.graph.operators[k].outputs else "",
                     "step": n, "inference": prof.inference.get(k, 0)})
    return rows


def profile(name: str, scheme: str, grad: str, builds: list[str], steps: int,
            arena_limit: int = 0, input_: str = "arena", api: str = "whole",
            lean_stack: bool = False) -> dict:
    """The per-operator profile of `name`'s training step with each kernel build;
    `input_`, `api`, `lean_stack` as measure() takes them."""
    from tflite_train.codegen import check, project
    label, _, sparse, _ = MODELS[name]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = training_model(work, name, sparse if scheme == "99kb" else scheme, grad)
        program = codegen.load(model, arena_limit, input_ == "rows")
        folder = work / "gen"
        folder.mkdir()
        xs, labels = check.samples(program, steps, 0, None)
        project.write_files(folder, codegen.files(program, model.name, lean_stack))
        project.write_files(folder, project.rig_files(program, xs, labels, api))
        for kernels in builds:
            prof = rig.profile(program, folder, xs, labels, kernels)
            out.append({"label": label, "scheme": scheme, "grad": grad, "kernels": kernels,
                        "arena_limit": arena_limit, "arena": program.plan.arena_bytes,
                        "input": input_, "api": api, "lean_stack": lean_stack,
                        "instructions_per_step": prof.instructions_per_step,
                        "instructions_per_inference": prof.instructions_per_inference,
                        "identical_to_engine_c": prof.identical_to_engine_c,
                        "operators": profile_rows(program, prof)})
            print(render_profile({"profiles": out[-1:]}), flush=True)
    return {"profiles": out, "steps": steps}


def _m(n: float) -> str:
    return f"{n / 1e6:,.2f} M"


def render_profile(data: dict) -> str:
    """Per profile: instructions by phase and kernel family (with the operators' kinds),
    then the ten operators that cost most."""
    parts = []
    for p in data["profiles"]:
        ops = p["operators"]
        total = sum(o["step"] for o in ops)
        groups: dict[tuple, list[dict]] = {}
        for o in ops:
            groups.setdefault((o["phase"], o["kernel"]), []).append(o)
        limit = (f", arena <= {p['arena_limit'] // 1024} KB" if p.get("arena_limit") else
                 ", smallest arena")
        if p.get("input", "arena") == "rows":
            limit = f", `--input rows`, {p.get('api', 'whole')} API" + \
                (", `--lean-stack`" if p.get("lean_stack") else "") + limit
        parts.append(f"**{p['label']} {p['scheme']}, {p['grad']} gradients, {p['kernels']} "
                     f"kernels{limit} ({p['arena'] / 1024:.1f} KB)**: "
                     f"{_m(p['instructions_per_step'])} instructions per step "
                     f"({_m(total)} inside the operators, the rest: copying the sample in, "
                     f"the step's own code), {_m(p['instructions_per_inference'])} per "
                     f"inference; the profiled run = --engine c: "
                     f"{'yes' if p['identical_to_engine_c'] else 'NO'}.\n")
        parts.append("| phase | kernel | operators (kinds) | instructions / step | share "
                     "of step | / inference |\n|---|---|---|---:|---:|---:|")
        for phase in ("forward", "backward"):
            rows = sorted(((key, g) for key, g in groups.items() if key[0] == phase),
                          key=lambda x: -sum(o["step"] for o in x[1]))
            for (_, kernel), g in rows:
                n = sum(o["step"] for o in g)
                kinds = ", ".join(f"{c}x {k}" if c > 1 else k for k, c in
                                  sorted(Counter(o["kind"] for o in g).items()))
                parts.append(f"| {phase} | `{kernel}` | {kinds} | {_m(n)} | "
                             f"{100 * n / p['instructions_per_step']:.1f}% | "
                             f"{_m(sum(o['inference'] for o in g))} |")
            n = sum(o["step"] for o in ops if o["phase"] == phase)
            parts.append(f"| **{phase}** | | {sum(o['phase'] == phase for o in ops)} operators "
                         f"| **{_m(n)}** | **{100 * n / p['instructions_per_step']:.1f}%** | "
                         f"{_m(sum(o['inference'] for o in ops if o['phase'] == phase))} |")
        parts.append("\nThe ten costliest operators:\n\n| operator | kind | output | kernel "
                     "| instructions / step |\n|---:|---|---|---|---:|")
        for o in sorted(ops, key=lambda o: -o["step"])[:10]:
            parts.append(f"| {o['op']} | {o['kind']} | {o['output']} | `{o['kernel']}` | "
                         f"{_m(o['step'])} |")
        parts.append("")
    return "\n".join(parts)


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
    ap.add_argument("--arena-limit", type=int, default=0,
                    help="codegen --arena-limit (bytes): let the arena grow to this for speed "
                         "(int8 input gradients in one pass)")
    ap.add_argument("--input", choices=["arena", "rows"], default="arena",
                    help="codegen --input: the sample in the arena, or read row by row")
    ap.add_argument("--rig-api", choices=["whole", "rows"], default="whole",
                    help="the rig harness's API: tt_train_step (whole) or tt_train_step_rows "
                         "(rows, with --input rows)")
    ap.add_argument("--lean-stack", action="store_true",
                    help="codegen --lean-stack: smaller stack buffers in the DSP kernels")
    ap.add_argument("--profile", action="store_true",
                    help="instead: the per-operator instruction profile of the first model's "
                         "99kb (sparse) training step, each --kernels build")
    args = ap.parse_args()
    builds = args.kernels.split(",")
    if not set(builds) <= set(rig.KERNELS):
        ap.error(f"--kernels: comma-separated {' and '.join(rig.KERNELS)}")
    if not rig.available():
        print("the Cortex-M7 rig is not installed (make setup installs it)")
        return 1
    if args.profile:
        name = args.models.split(",")[0]
        data = profile(name, "99kb" if name != "person" else "sparse", args.grad, builds,
                       args.steps, args.arena_limit, args.input, args.rig_api,
                       args.lean_stack)
        if args.merge and args.json and args.json.exists():
            data["profiles"] = merge_rows(json.loads(args.json.read_text())["profiles"],
                                          data["profiles"])
        if args.json:
            results.save(args.json, data, PROFILE_JSON, {"codegen-profile": TABLES[
                "codegen-profile"]} if args.json.name == PROFILE_JSON else {})
        return 0
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
                                rig.RIG_MEMORY if full else None, kernels, args.arena_limit,
                                args.input, args.rig_api, args.lean_stack)
                    rows.append({"label": label, "scheme": scheme_label, "grad": args.grad,
                                 "kernels": kernels, "tte": None if full else tte,
                                 "arena_limit": args.arena_limit, "input": args.input,
                                 "api": args.rig_api, "lean_stack": args.lean_stack,
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
PROFILE_JSON = "codegen_profile.json"
INT8_JSON = "codegen_int8.json"
TABLES = {"codegen-fig10": ([JSON, INT8_JSON], render),
          "codegen-profile": ([PROFILE_JSON], render_profile)}


if __name__ == "__main__":
    sys.exit(main())
