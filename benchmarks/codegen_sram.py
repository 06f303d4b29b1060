"""What is in SRAM, byte by byte, in the generated training programs of MCUNet-5FPS and
MobileNetV2-w0.35 (their 99kb schemes, int8 activation gradients, the kernels' DSP
versions), with the sample in the arena (`codegen`, the whole-sample API) and read row by
row (`codegen --input rows`, the row API):

    nice .venv/bin/python benchmarks/codegen_sram.py [--models mbv2,mcunet]
        [--json benchmarks/codegen_sram.json]

Each program is built for the Cortex-M7 rig and run for one training step there (bit for
bit against --engine c). The parts: the arena by its plan (`tt_arena` in the ELF has the
same size: checked), what it holds at its peak, where the sample is; every trained tensor
in SRAM (`tt_p*` symbols, checked against the plan), the update ops' states (`tt_state`),
the harness's own .bss; the stack's painted high-water mark and the largest frames on it
(`-fstack-usage` of the same build). With --json benchmarks/codegen_sram.json the table of
benchmarks/RESULTS.md that reads it is re-rendered.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import results  # noqa: E402
from codegen import MODELS, training_model  # noqa: E402
from tflite_train import codegen, tflite_io  # noqa: E402
from tflite_train.codegen import rig  # noqa: E402

MODES = {"arena": "`codegen` (the sample in the arena; whole-sample API)",
         "rows": "`codegen --input rows` (row API)"}


def symbols(elf: Path) -> dict[str, int]:
    """Sizes of the ELF's .data/.bss symbols."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sizes = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "bBdD":
            sizes[p[3]] = int(p[1], 16)
    return sizes


def frames(folder: Path, kernels: str) -> list[tuple[str, int]]:
    """(function, stack frame bytes) of every frame of 1 KB or more, by -fstack-usage."""
    res = rig._make(folder, rig.RIG_MEMORY, rig.RIG_MEMORY, kernels, extra="-fstack-usage",
                    out="build-su")
    if res.returncode != 0:
        raise SystemExit(res.stderr[-400:])
    out = []
    for su in (folder / "build-su" / "rig").glob("*.su"):
        for line in su.read_text().splitlines():
            where, n, _ = line.split("\t")
            if int(n) >= 1024:
                out.append((where.rsplit(":", 1)[-1], int(n)))
    return sorted(out, key=lambda f: -f[1])


def account(model: Path, work: Path, mode: str, kernels: str = "dsp") -> dict:
    rows = mode == "rows"
    out = work / f"{model.stem}-{mode}"
    program, m = codegen.generate(model, out, rig_steps=1, kernels=kernels, input_rows=rows)
    g, plan = program.graph, program.plan
    syms = symbols(out / "build" / "rig.elf")
    assert syms["tt_arena"] == plan.arena_bytes, (syms["tt_arena"], plan.arena_bytes)
    sample = g.tensors[program.sample]
    params = []
    for _, var in program.params:
        t = g.tensors[var]
        split = program.splits.get(var)
        n = program.param_bytes(var)
        assert syms[f"tt_p{var}"] == n, (t.name, syms[f"tt_p{var}"], n)
        params.append({"name": t.name, "dtype": t.dtype, "bytes": n, "whole_bytes": t.nbytes,
                       "kind": "bias" if t.dtype == "int32" else "weight",
                       "split": [split.k, split.depth] if split else None})
    states = syms.get("tt_state", 0)
    assert states == 8 * len(program.updates)
    known = {"tt_arena", "tt_state", *(f"tt_p{v}" for _, v in program.params)}
    other = {k: v for k, v in syms.items() if k not in known}
    peak = plan.peak_op
    return {"mode": mode, "kernels": kernels, "arena": plan.arena_bytes,
            "sample_bytes": sample.nbytes,
            "sample_in_arena": program.sample in program.arena_tensors,
            "ring_bytes": (program.rows.ring_rows * program.rows.row_bytes
                           if program.rows else 0),
            "peak_op": peak, "peak_kind": g.operators[peak].kind,
            "peak_output": g.tensors[g.operators[peak].outputs[0]].name,
            "live_at_peak": plan.live_at(peak, g)[:4],
            "params": params, "updates": len(program.updates), "update_state_bytes": states,
            "other_bss": other, "measured": m.to_json(),
            "frames": frames(out, kernels)[:6]}


def kb(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KB)"


def render(data: dict) -> str:
    parts = []
    for entry in data["models"]:
        a, r = entry["arena"], entry["rows"]
        parts.append(f"**{entry['label']} 99kb, int8 gradients, {a['kernels']} kernels** "
                     f"(one training step on the rig, = --engine c: "
                     f"{'yes' if a['measured']['identical_to_engine_c'] and r['measured']['identical_to_engine_c'] else 'NO'})\n")
        parts.append(f"| part | {MODES['arena']} | {MODES['rows']} |\n|---|---:|---:|")

        def line(what, f):
            parts.append(f"| {what} | {f(a)} | {f(r)} |")

        def peak(x):
            live = ", ".join(f"{n} {b:,}" for n, b in x["live_at_peak"])
            return f"{kb(x['arena'])}: at operator {x['peak_op']} {x['peak_kind']} ({live})"
        line("**arena** (at its peak)", peak)
        line("the sample, int8 " + "x".join(map(str, _shape(entry))),
             lambda x: (f"{x['sample_bytes']:,} B in the arena until the first layer has read "
                        "it" if x["sample_in_arena"] else
                        f"not in SRAM: a ring of {x['ring_bytes']:,} B in the arena (the rows "
                        "the stem reads), only while the stem runs"))
        for kind, what in (("weight", "trained weights, int8"), ("bias", "trained biases, int32")):
            def group(x, kind=kind):
                ps = [p for p in x["params"] if p["kind"] == kind]
                return f"{sum(p['bytes'] for p in ps):,} B ({len(ps)} tensors)"
            line(f"**{what}**", group)
        splits = [p for p in a["params"] if p["split"]]
        if splits:
            line("of which split filters (their trained input channels only; the rest in "
                 "flash): " + ", ".join(f"{p['name']} {p['split'][0]}/{p['split'][1]}"
                                        for p in splits),
                 lambda x: ", ".join(f"{p['bytes']:,} of {p['whole_bytes']:,} B"
                                     for p in x["params"] if p["split"]))
        line("**update states** (per update op: its xorshift32 rounding stream and step "
             "count, 8 B)", lambda x: f"{x['update_state_bytes']:,} B ({x['updates']} ops)")
        line("the harness's .bss", lambda x: ", ".join(f"{k} {v} B" for k, v in
                                                      sorted(x["other_bss"].items())))
        line("**.data + .bss besides the arena** (measured)",
             lambda x: kb(x["measured"]["sram_bytes"]["data_bss"]))
        line("**stack** (painted high-water, measured)",
             lambda x: kb(x["measured"]["sram_bytes"]["stack"]))
        line("its largest frames (-fstack-usage)",
             lambda x: ", ".join(f"`{f}` {n:,}" for f, n in x["frames"][:3]))
        line("**SRAM, all of it** (measured)", lambda x: kb(x["measured"]["sram_bytes"]["total"]))
        parts.append("")
    return "\n".join(parts)


def _shape(entry) -> tuple:
    return tuple(entry.get("sample_shape", ()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mbv2,mcunet")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not rig.available():
        print("the Cortex-M7 rig is not installed (make setup installs it)")
        return 1
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            label, source, scheme, _ = MODELS[name]
            if not source.exists():
                print(f"{label}: {source} not present, skipped")
                continue
            model = training_model(work, name, str(scheme), "int8")
            graph = tflite_io.load(model)
            shape = graph.tensors[graph.inputs[0]].shape
            entries.append({"label": label, "sample_shape": list(shape),
                            **{mode: account(model, work, mode) for mode in MODES}})
            print(render({"models": entries[-1:]}), flush=True)
    data = {"models": entries}
    if args.json:
        results.save(args.json, data, JSON, {"codegen-sram": TABLES["codegen-sram"]})
    return 0


JSON = "codegen_sram.json"
TABLES = {"codegen-sram": ([JSON], render)}


if __name__ == "__main__":
    sys.exit(main())
