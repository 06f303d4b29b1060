"""Issue 11 on the rig itself: TFLM built for the Cortex-M7 with our glue, the example app
(examples/tflm_app/trainer.cc, registering the forward builtins and our TT_* ops as any TFLM
app does) and a training model, run under QEMU (mps2-an500, `-icount shift=0`, the board's
flags: ../shared/MCU_RIG.md), each row measured and set beside what `tflite-train plan`
predicts for a 32-bit Cortex-M7 build of TFLM (tflite_train/tflm_memory.py).

    nice .venv/bin/python benchmarks/tflm_rig.py --tflm-src DIR --tflm-lib LIB \\
        --flatbuffers DIR --gemmlowp DIR --ruy DIR [--tflm-commit SHA] [--steps 3] \\
        [--grad int8|float32] [--json benchmarks/tflm_rig.json]

--tflm-src: a TFLM source tree (its headers; `tensorflow/lite/micro/...`); --flatbuffers,
--gemmlowp, --ruy: the trees TFLM's headers include (flatbuffers' with TFLM's patch applied,
at the versions TFLM's Makefile downloads). --tflm-lib: TFLM itself (the framework and the
reference kernels the app registers) compiled for the board by the user: a static library.
This script builds only our side against it (kernels, glue, app, harness) and links: a
recipe that builds TFLM's own sources is not part of this repository (they came from a
mirror whose terms forbid committing one); TFLM's own Makefile
(`TARGET=cortex_m_generic TARGET_ARCH=cortex-m7+fp microlite`, with -mfpu=fpv5-sp-d16) makes
such a library. The link keeps only what the app references (--gc-sections), so a library
holding more kernels measures the same.

Per row (augment's defaults, memory passes on, 10 classes, --grad's activation gradients:
int8 by default): N training steps and one
inference on seeded random samples, each timed in SysTick ticks (40 instructions under
`-icount shift=0`; QEMU counts instructions, not cycles); the losses (float32 bits) and the
inference's scores must equal the same run on `--engine c`, the executor `train --engine c`
uses, bit for bit. Memory as parts: TFLM's arena after AllocateTensors and the first Invoke
(arena_used_bytes = head, the planned non-persistent part, + tail, the persistent part, read
from the arena's SingleArenaBufferAllocator), flash from the linker's map (TFLM, glue,
kernels, app, C/C++ runtime, start-up; the model apart), .data/.bss, the stack's painted
high-water mark (and newlib's heap, should anything call malloc: the harness's _sbrk counts
it). A model whose SRAM does not fit the board (320 KB, 16 KB kept for the
stack) is linked again with the rig's whole 4 MB and its row says so. The app's arena array
is the header's TT_MODEL_ARENA_BYTES (`tflite-train header`: for a 32-bit target, plan's
figure): each row checks that TFLM used all of it and no more.

A run replaces the rows it measures in the --json file and keeps the others (each row
says which gradients it has).

Not a test in `make test`: TFLM's sources are not installable from our registries, so CI
cannot build this image; without --tflm-src the script stops with one line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

KERNELS = ROOT / "micro_kernels"
APP = ROOT / "examples" / "tflm_app"
STARTUP = KERNELS / "targets" / "mps2_an500" / "startup.c"
BOARD_SRAM = 320 * 1024           # the STM32F746; the link keeps 16 KB of it for the stack
BOARD_FLASH = 1024 * 1024


class Stop(Exception):
    """A one-line reason to stop (exit 2)."""


def cpu_flags() -> list[str]:
    """The board's flags, from the one line that states them (tflite_train.inc)."""
    text = (KERNELS / "tflite_train.inc").read_text()
    return re.search(r"^TFLITE_TRAIN_CORTEX_M7_FLAGS\s*:=\s*(.+)$", text, re.M)[1].split()


COMMON = ["-O2", "-ffunction-sections", "-fdata-sections", "-ffp-contract=off",
          "-fno-fast-math"]
# what every TFLM app is compiled with (TFLM's Makefile: TF_LITE_STATIC_MEMORY fixes the
# layout of TfLiteTensor, which the library and the app must agree on)
TFLM_DEFINES = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON",
                "-DFLATBUFFERS_LOCALE_INDEPENDENT=0"]
CXX = ["-std=c++17", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
       "-fno-unwind-tables", "-fno-asynchronous-unwind-tables"]


def first_error(text: str) -> str:
    lines = text.strip().splitlines()
    return next((ln for ln in lines if "error" in ln), lines[-1] if lines else "")


def run(cmd: list, what: str) -> None:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if res.returncode != 0:
        raise Stop(f"{what} failed: {first_error(res.stderr or res.stdout)}")


def glue_sources() -> list[Path]:
    """The glue's C++ files, as tflite_train.inc lists them for an app."""
    text = (KERNELS / "tflite_train.inc").read_text()
    block = re.search(r"^TFLITE_TRAIN_CC_SRCS\s*:=(.*?)(?<!\\)\n", text, re.M | re.S)[1]
    return [KERNELS / "tflm" / name for name in re.findall(r"tflm/(\w+\.cc)", block)]


def compile_ours(out: Path, includes: list[str]) -> list[Path]:
    """Our kernels (C99, the DSP versions as the board build defaults to) and the glue
    (C++ against TFLM's headers), two compilers at a time."""
    cpu = cpu_flags()
    jobs = []
    for src in sorted((KERNELS / "src").glob("*.c")):
        jobs.append((["arm-none-eabi-gcc", "-std=c99", *cpu, *COMMON,
                      f"-I{KERNELS / 'include'}", "-c", src, "-o", out / f"{src.stem}.o"],
                     src.name))
    for src in glue_sources():
        name = src.name
        jobs.append((["arm-none-eabi-g++", *CXX, *cpu, *COMMON, *TFLM_DEFINES,
                      f"-I{KERNELS / 'include'}", f"-I{KERNELS / 'tflm'}", *includes, "-c", src,
                      "-o", out / f"{src.stem}.o"], name))
    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(run, cmd, f"compiling {what}") for cmd, what in jobs]:
            f.result()
    return [Path(cmd[-1]) for cmd, _ in jobs]


def samples(graph, steps: int, seed: int = 0):
    """`steps` seeded random int8 samples of the model's input and labels."""
    import numpy as np

    from tflite_train.train import classes_of
    x = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    xs = rng.integers(-128, 128, (steps, *x.shape)).astype(np.int8)
    return xs, rng.integers(0, classes_of(graph), steps).astype(np.int32)


def samples_header(xs, labels) -> str:
    rows = [", ".join(str(int(v)) for v in x.reshape(-1)) for x in xs]
    return "\n".join([
        "/* benchmarks/tflm_rig.py: the samples and labels of the run (the harness's, in .rig) */",
        f"#define RIG_STEPS {len(xs)}",
        f"__attribute__((section(\".rig.samples\"), aligned(16))) static const int8_t "
        f"rig_samples[{len(xs)}][{xs[0].size}] = {{",
        *[f"  {{{r}}}," for r in rows], "};",
        f"__attribute__((section(\".rig.labels\"))) static const int32_t rig_labels[{len(xs)}]"
        f" = {{{', '.join(str(int(v)) for v in labels)}}};", ""])


def reference(graph, xs, labels):
    """The same run on --engine c: each step's loss (float32 bits), then one inference; and
    the CRC-32 of each variable after it."""
    import zlib

    import numpy as np

    from tflite_train.runtime import make_executor
    ex = make_executor(graph, "c")
    losses = [np.float32(ex.invoke([x, np.array([y], np.int32)])[graph.outputs[-1]][0])
              for x, y in zip(xs, labels)]
    scores = ex.invoke([xs[0], np.array([-1], np.int32)])[graph.outputs[0]]
    crcs = {i: zlib.crc32(np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<")).tobytes())
            for i, v in ex.variables.items()}
    return (np.array(losses, np.float32).view(np.uint32).tolist(),
            np.asarray(scores, np.int8).reshape(-1).tobytes().hex(), crcs)


def planned_places(graph) -> dict[int, int]:
    """Where plan puts each variable: bytes from the arena's end to its start (TFLM's tail
    grows down from the end), by tensor index."""
    from tflite_train import tflm_memory
    variables = [i for i, t in enumerate(graph.tensors) if t.is_variable]
    out, used = [], 0
    for a, step in tflm_memory.persistent_tail(graph, "cortex-m7").placed():
        used += step
        if a.part == "variables":
            out.append(used)
    return dict(zip(variables, out))


def link(folder: Path, objects: list[Path], lib: Path, sram: int, flash: int):
    # the gcc driver: the app needs no libstdc++ (no exceptions, no RTTI)
    cmd = ["arm-none-eabi-gcc", *cpu_flags(), "-T", HERE / "tflm_rig.ld",
           f"-Wl,--defsym=TT_SRAM_BUDGET={sram}", f"-Wl,--defsym=TT_FLASH_BUDGET={flash}",
           "-Wl,--gc-sections", f"-Wl,-Map={folder / 'rig.map'}", "-nostartfiles",
           "--specs=nano.specs", "--specs=nosys.specs", "-o", folder / "rig.elf", *objects,
           lib, "-lm"]
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True)


def symbol_size(elf: Path, pattern: str) -> int:
    res = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                         check=True)
    return sum(int(p[1], 16) for p in (line.split() for line in res.stdout.splitlines())
               if len(p) == 4 and re.fullmatch(pattern, p[3]))


# where an input section comes from, by its file (TFLM: the --tflm-lib archive, first)
ORIGINS = (("glue", re.compile(r"tt_tflm_\w+\.o$")),
           ("kernels", re.compile(r"/tt_\w+\.o$")),
           ("app", re.compile(r"tflm_rig_main\.o$")),
           ("start-up", re.compile(r"startup\.o$")),
           ("C/C++ runtime", re.compile(r"\.a\(|crt|lib(c|m|gcc|stdc\+\+|nosys)")))
FLASH_SECTIONS = (".text", ".rodata", ".ARM.exidx", ".data")


def code_parts(map_file: Path, elf: Path, lib: Path) -> dict[str, int]:
    """Flash bytes of code and constants by where they come from, from the linker's map: each
    input section of .text, .rodata, .ARM.exidx and .data (its initial values) attributed to
    its object; `padding` is the rest of the sections' sizes: alignment, less what merging
    equal strings of different objects saved (the map lists each object's strings as they
    were before the merge)."""
    lib_name = re.escape(lib.name)
    origins = (("TFLM", re.compile(rf"{lib_name}\(")),) + ORIGINS
    parts = {name: 0 for name, _ in origins}
    out_section, pending = None, None
    text = map_file.read_text()
    text = text[text.index("Linker script and memory map"):]
    for line in text.splitlines():
        m = re.match(r"^(\.\S+)\s", line) or re.match(r"^(\.\S+)$", line)
        if m:
            out_section = m.group(1)
            continue
        if out_section not in FLASH_SECTIONS:
            continue
        m = re.match(r"^ (\.\S+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m and (m.group(1) or pending):
            size, origin = int(m.group(3), 16), m.group(4).strip()
            pending = None
            if size == 0:
                continue
            name = next((n for n, pat in origins if pat.search(origin)), None)
            if name is None:
                raise Stop(f"cannot tell where {origin} in the link map comes from")
            parts[name] += size
        else:
            pending = None
    sizes = sections(elf)
    parts["padding"] = sum(sizes.get(k, 0) for k in FLASH_SECTIONS) - sum(parts.values())
    return parts


LINE = re.compile(r"^TT (\w+)((?: \w+ \S+)*)\s*$")


def parse(output: str) -> dict:
    got = {"steps": [], "trained": []}
    for line in output.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        words = m.group(2).split()
        f = dict(zip(words[0::2], words[1::2]))
        if m.group(1) == "step":
            got["steps"].append(f)
        elif m.group(1) == "trained":
            got["trained"].append({k: int(v) for k, v in f.items()})
        else:
            got[m.group(1)] = f
    return got


def sections(elf: Path) -> dict[str, int]:
    from tflite_train.codegen.rig import _sections
    return _sections(elf)


def measure(label: str, source: Path, scheme: str, steps: int, tmp: Path, ours: list[Path],
            includes: list[str], lib: Path, passes: str, grad: str = "int8",
            batch: int = 1) -> dict:
    import numpy as np

    from tflite_train import c_header, tflite_io, tflm_memory
    from tflite_train.codegen.rig import INSTRUCTIONS_PER_TICK, RIG_MEMORY
    from tflite_train.augment import MemoryOptions, augment
    from tflite_train.autodiff import Hyper
    from tflm_memory import load
    memory = MemoryOptions() if passes == "all" else MemoryOptions(False, False, False,
                                                                      stream=False)
    r = augment(load(source), scheme, 10, Hyper(seed=0, grad=grad, batch=batch), memory=memory)
    data = tflite_io.serialize(r.graph)
    g = tflite_io.parse(data)
    folder = tmp / re.sub(r"\W+", "_", f"{label}_{Path(scheme).stem}_{grad}_{passes}_{batch}")
    folder.mkdir()
    (folder / "model.train.tflite").write_bytes(data)
    c_header.write(str(folder / "model.train.tflite"), str(folder / "model_train.h"), "g_model")
    header_arena = int(re.search(r"#define TT_MODEL_ARENA_BYTES_32 (\d+)",
                                 (folder / "model_train.h").read_text())[1])
    xs, labels = samples(g, steps)
    (folder / "rig_samples.h").write_text(samples_header(xs, labels))
    cpu = cpu_flags()
    run(["arm-none-eabi-g++", *CXX, *cpu, *COMMON, *TFLM_DEFINES, f"-I{folder}", f"-I{APP}",
         f"-I{KERNELS / 'include'}", f"-I{KERNELS / 'tflm'}", f"-I{STARTUP.parent}", *includes,
         "-c",
         HERE / "tflm_rig_main.cc", "-o", folder / "tflm_rig_main.o"], "compiling the app")
    run(["arm-none-eabi-gcc", "-std=c99", *cpu, "-O2", "-c", STARTUP, "-o",
         folder / "startup.o"], "compiling the start-up code")
    objects = [folder / "startup.o", folder / "tflm_rig_main.o", *ours]
    memory_map = "board"
    res = link(folder, objects, lib, BOARD_SRAM, BOARD_FLASH)
    if res.returncode != 0:
        if "budget exceeded" not in res.stderr:
            raise Stop(f"linking {label} failed: {first_error(res.stderr)}")
        memory_map = "rig 4 MB: " + ", ".join(
            m for m in ("flash", "SRAM") if f"{m} budget exceeded" in res.stderr)
        res = link(folder, objects, lib, RIG_MEMORY, RIG_MEMORY)
        if res.returncode != 0:
            raise Stop(f"linking {label} failed: {first_error(res.stderr)}")
    elf = folder / "rig.elf"
    s = sections(elf)
    if s.get(".init_array", 0) or s.get(".preinit_array", 0):
        raise Stop("the image has static constructors, which the rig's start-up does not run")
    try:
        qemu = subprocess.run(
            ["qemu-system-arm", "-M", "mps2-an500", "-cpu", "cortex-m7", "-nographic",
             "-monitor", "none", "-serial", "stdio", "-icount", "shift=0,align=off,sleep=off",
             "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
            capture_output=True, text=True, timeout=300 + 60 * steps)
    except subprocess.TimeoutExpired:
        raise Stop(f"{label}: the rig did not finish within {300 + 60 * steps} s") from None
    output = qemu.stdout + qemu.stderr
    got = parse(output)
    if qemu.returncode != 0 or "done" not in got:
        raise Stop(f"{label}: the program failed on the rig (exit {qemu.returncode}): "
                   f"{output.strip().splitlines()[-3:]}")
    arena = {k: int(v) for k, v in got["arena"].items()}
    if arena["head"] + arena["tail"] != arena["used"]:
        raise Stop(f"{label}: head + tail != arena_used_bytes ({arena})")
    losses = [int.from_bytes(bytes.fromhex(f["loss"]), "little") for f in got["steps"]]
    ref_losses, ref_scores, ref_crcs = reference(g, xs, labels)
    places = planned_places(g)
    trained = got["trained"]
    misplaced = [t["tensor"] for t in trained if places.get(t["tensor"]) != t["from_end"]]
    planned = tflm_memory.account(g, len(data), "cortex-m7")
    parts = code_parts(folder / "rig.map", elf, lib)
    model_flash = s.get(".model", 0)
    code = sum(s.get(k, 0) for k in (".text", ".rodata", ".ARM.exidx"))
    if abs(parts["padding"]) > 4096:
        raise Stop(f"{label}: the map's parts are {parts['padding']} bytes from the sections' "
                   "sizes: the map was not read right")
    each = [int(f["ticks"]) * INSTRUCTIONS_PER_TICK for f in got["steps"]]
    return {
        "model": label, "scheme": Path(scheme).stem if scheme.endswith(".json") else scheme,
        "grad": grad, "passes": passes, "memory_map": memory_map, "steps": steps,
        **({"batch": batch} if batch > 1 else {}),
        "header_arena": header_arena,
        "model_bytes": len(data),
        "arena": arena, "trained_entries": trained,
        "trained_where_planned": f"{len(trained) - len(misplaced)}/{len(trained)}",
        "planned": {k: planned[k] for k in ("arena", "persistent", "persistent_parts",
                                             "trained", "optimizer", "accumulators",
                                             "sram_total")},
        "flash": {"code_parts": parts, "code": code, "data_init": s.get(".data", 0),
                  "model": model_flash, "total": code + s.get(".data", 0) + model_flash},
        "sram": {"data": s.get(".data", 0), "bss": s.get(".bss", 0),
                 "arena_array": symbol_size(elf, r"_ZN12_GLOBAL__N_17g_arenaE"),
                 "stack": int(got["stack"]["high_water"]), "heap": int(got["stack"]["heap"])},
        "instructions_each_step": each,
        "instructions_per_step": int(round(sum(each) / len(each))),
        "instructions_per_inference": int(got["predict"]["ticks"]) * INSTRUCTIONS_PER_TICK,
        "instructions_begin": int(got["begin"]["ticks"]) * INSTRUCTIONS_PER_TICK,
        "losses": [float(v) for v in np.array(losses, np.uint32).view(np.float32)],
        "identical_to_engine_c": losses == ref_losses
        and got["predict"]["scores"] == ref_scores
        and all(ref_crcs.get(t["tensor"]) == t["crc"] for t in trained),
    }


def check_inputs(args) -> list[str]:
    """The include folders, or Stop with the one thing that is missing."""
    if args.tflm_src is None:
        raise Stop("--tflm-src DIR is required: a TFLM source tree (TFLM is not installable "
                   "from our registries, so this benchmark cannot run without one)")
    need = [(args.tflm_src, "tensorflow/lite/micro/micro_interpreter.h", "--tflm-src"),
            (args.flatbuffers, "include/flatbuffers/flexbuffers.h", "--flatbuffers"),
            (args.gemmlowp, "fixedpoint/fixedpoint.h", "--gemmlowp"),
            (args.ruy, "ruy/profiler/instrumentation.h", "--ruy")]
    for folder, probe, flag in need:
        if folder is None or not (folder / probe).is_file():
            raise Stop(f"{flag} {folder or '(missing)'}: no {probe} there")
    if args.tflm_lib is None or not args.tflm_lib.is_file():
        raise Stop(f"--tflm-lib {args.tflm_lib or '(missing)'}: not a file (TFLM compiled "
                   "for the Cortex-M7 as a static library)")
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm"):
        if shutil.which(tool) is None:
            raise Stop(f"{tool} is not installed (../shared/MCU_RIG.md)")
    return [f"-I{args.tflm_src}", f"-I{args.flatbuffers / 'include'}", f"-I{args.gemmlowp}",
            f"-I{args.ruy}"]


def tflm_commit(args) -> str:
    if args.tflm_commit:
        return args.tflm_commit
    res = subprocess.run(["git", "-C", str(args.tflm_src), "rev-parse", "HEAD"],
                         capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflm-src", type=Path, help="a TFLM source tree (headers)")
    ap.add_argument("--tflm-lib", type=Path, help="TFLM compiled for the Cortex-M7 (.a)")
    ap.add_argument("--flatbuffers", type=Path, help="flatbuffers' tree (TFLM's patch applied)")
    ap.add_argument("--gemmlowp", type=Path, help="gemmlowp's tree")
    ap.add_argument("--ruy", type=Path, help="ruy's tree")
    ap.add_argument("--tflm-commit", help="the TFLM commit of --tflm-src and --tflm-lib "
                                          "(default: git rev-parse in --tflm-src)")
    ap.add_argument("--tflm-build", default="", help="how --tflm-lib was built, recorded")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--passes", default="all", help="augment's memory passes per row: all, "
                                                    "none or all,none")
    ap.add_argument("--only", help="rows whose model label contains this")
    ap.add_argument("--grad", choices=("int8", "float32"), default="int8",
                    help="activation gradients of the training models (augment --grad)")
    ap.add_argument("--batch", type=int, default=1,
                    help="augment --batch B for every row (the rows then say so)")
    ap.add_argument("--model", type=Path, help="this .tflite (or .pkl) instead of the "
                                               "benchmark's models, with --scheme")
    ap.add_argument("--scheme", default="last:2", help="--model's scheme")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="build in this (new) folder and keep it")
    ap.add_argument("--extra-code", type=int, default=0, metavar="BYTES",
                    help="augment as if TFLM's and our code were BYTES larger (what the "
                         "flash budget gives up when code grows; the rows record it)")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    try:
        if args.extra_code < 0:
            raise Stop("--extra-code must be 0 or more bytes")
        includes = check_inputs(args)
        if args.steps < 1:
            raise Stop("--steps must be at least 1")
        if args.extra_code:
            from tflite_train import tflm_memory
            tflm_memory.TFLM_CODE_BYTES += args.extra_code
        from tflm_memory import MODELS
        rows = []
        with tempfile.TemporaryDirectory(prefix="tflm-rig-") as tmp:
            tmp = Path(tmp)
            if args.keep:
                args.keep.mkdir(parents=True)
                tmp = args.keep
            (tmp / "ours").mkdir()
            ours = compile_ours(tmp / "ours", includes)
            models = MODELS if args.model is None else \
                [(args.model.stem, args.model, args.scheme, 0)]
            for label, source, scheme, _goal in models:
                if args.only and args.only.lower() not in label.lower():
                    continue
                if not source.exists():
                    print(f"{label}: {source} not present, skipped", flush=True)
                    continue
                for passes in args.passes.split(","):
                    rows.append(measure(label, source, scheme, args.steps, tmp, ours,
                                        includes, args.tflm_lib.resolve(), passes, args.grad,
                                        args.batch))
                    if args.extra_code:
                        rows[-1]["extra_code"] = args.extra_code
                    print(render_rows([rows[-1]]), flush=True)
    except Stop as exc:
        if args.debug:
            raise
        print(f"tflm_rig: {exc}", file=sys.stderr)
        return 2
    lib = args.tflm_lib.read_bytes()
    if args.json and args.json.exists():
        rows = merged(json.loads(args.json.read_text())["rows"], rows)
    data = {"rows": rows, "tflm_commit": tflm_commit(args), "tflm_build": args.tflm_build,
            "tflm_lib_sha256": hashlib.sha256(lib).hexdigest(),
            "compiler": subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0],
            "flags": " ".join(cpu_flags() + COMMON + TFLM_DEFINES),
            "qemu": subprocess.run(["qemu-system-arm", "--version"], capture_output=True,
                                   text=True).stdout.splitlines()[0]}
    print(render(data))
    if args.json:
        results.save(args.json, data, JSON, TABLES)
    return 0


def _key(r: dict) -> tuple:
    return (r["model"], r["scheme"], r.get("grad", "float32"), r["passes"], r.get("batch", 1),
            r.get("extra_code", 0))


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` rows with those `new` measures again replaced; MODELS' order, float32 before
    int8, passes on before off."""
    from tflm_memory import MODELS
    where = [(label, Path(scheme).stem if scheme.endswith(".json") else scheme)
             for label, _, scheme, _ in MODELS]
    ours = {_key(r) for r in new}
    rows = [r for r in old if _key(r) not in ours] + new

    def order(r):
        at = (r["model"], r["scheme"])
        return (where.index(at) if at in where else len(where),
                r.get("grad", "float32") != "float32", r["passes"] != "all")
    return sorted(rows, key=order)


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _name(r: dict) -> str:
    name = f"{r['model']} {r['scheme']}, {r.get('grad', 'float32')} gradients"
    if r.get("batch", 1) > 1:
        name += f", batch {r['batch']}"
    if r["passes"] != "all":
        name += " (memory passes off)"
    if r["memory_map"] != "board":
        name += f" [{r['memory_map']}]"
    if r.get("extra_code"):
        name += f" (augmented as if the code were {r['extra_code']:,} B larger)"
    return name


def render_rows(rows: list[dict]) -> str:
    """Memory: measured beside plan's prediction, parts in KB."""
    out = ["| model | arena used = head + tail (measured) | plan: head + tail (tail = TFLM "
           "persistent + trained + optimizer) | head: measured - plan | tail: measured - plan "
           "| trained tensors where plan puts them "
           "| header's arena - used "
           "| flash = code + model (+ .data init) | SRAM = .data + .bss (of which the arena array) + "
           "stack |",
           "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        a, p, f, s = r["arena"], r["planned"], r["flash"], r["sram"]
        # a batch's accumulators (augment --batch B > 1; rows before review24 lack them)
        acc = p.get("accumulators", 0)
        tail = p["persistent"] + p["trained"] + p["optimizer"] + acc
        sram = s["data"] + s["bss"] + s["stack"] + s["heap"]
        out.append(
            f"| {_name(r)} | **{_kb(a['used'])}** = {_kb(a['head'])} + {_kb(a['tail'])} | "
            f"**{_kb(p['arena'] + tail)}** = {_kb(p['arena'])} + {_kb(tail)} ("
            f"{_kb(p['persistent'])} + {_kb(p['trained'])} + {_kb(p['optimizer'])}"
            + (f" + accumulators {_kb(acc)}" if acc else "") + ") | "
            f"{a['head'] - p['arena']:+,} B | {a['tail'] - tail:+,} B | "
            f"{r['trained_where_planned']} | {_header_slack(r)} | "
            f"**{_kb(f['total'])}** = {_kb(f['code'])} + {_kb(f['model'])} "
            f"(+ {f['data_init']:,} B) | **{_kb(sram)}** = {_kb(s['data'])} + "
            f"{_kb(s['bss'])} ({_kb(s['arena_array'])}) + {_kb(s['stack'])}"
            + (f" + heap {_kb(s['heap'])}" if s["heap"] else "") + " |")
    return "\n".join(out)


def _header_slack(r: dict) -> str:
    """The app's arena (the header's 32-bit figure) less what TFLM used; rows measured
    before the header had it: its 64-bit figure, not comparable."""
    if "header_arena" not in r:
        return "(64-bit figure)"
    return f"{r['header_arena'] - r['arena']['used']:+,} B"


def render_code(data: dict) -> str:
    """The code's flash by origin, and the instructions."""
    rows = data["rows"]
    origins = list(rows[0]["flash"]["code_parts"]) if rows else []
    out = ["| model | code KB = " + " + ".join(origins) + " | instructions per training "
           "step | per inference | == --engine c, bit for bit |",
           "|---|---|---:|---:|---|"]
    for r in rows:
        parts = r["flash"]["code_parts"]
        code = sum(parts.values())
        same = f"yes ({r['steps']} steps, 1 inference, trained tensors)" \
            if r["identical_to_engine_c"] else "**NO**"
        out.append(f"| {_name(r)} | **{_kb(code)}** = "
                   + " + ".join(_kb(parts[o]) for o in origins)
                   + f" | {r['instructions_per_step'] / 1e6:,.1f} M | "
                   f"{r['instructions_per_inference'] / 1e6:,.1f} M | {same} |")
    return "\n".join(out)


def render(data: dict) -> str:
    head = (f"TFLM {data['tflm_commit'][:9]} ({data.get('tflm_build') or 'build not recorded'})"
            f"; {data['compiler']}; ours: {data['flags']}; {data['qemu']}.\n\n")
    return head + render_rows(data["rows"]) + "\n\n" + render_code(data)


JSON = "tflm_rig.json"
TABLES = {"tflm-rig": ([JSON], render)}

if __name__ == "__main__":
    sys.exit(main())
