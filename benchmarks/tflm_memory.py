"""Issue 11: training inside TFLM on the paper's board, as `tflite-train plan` accounts it for
a 32-bit Cortex-M7 build of TFLM: SRAM = arena (our offline plan when the model has one) +
TFLM's persistent data (modelled from TFLM's and our glue's struct sizes on that target) +
trained parameters + optimizer state; flash = the training model + TFLM's and our code
(369 KB, tflm_memory.TFLM_CODE_BYTES, measured by benchmarks/tflm_rig.py). One row per
model and scheme with every memory pass of augment off, then on (what each chose is
listed), and whether `--engine tflm` (the pinned wheel's TFLM with our glue) trains bit for
bit like `--engine c` for --steps steps.

    .venv/bin/python benchmarks/tflm_memory.py [--steps 2] [--grad float32|int8]
        [--models "person detector"] [--json benchmarks/tflm_memory.json]

--grad int8 augments with int8 activation gradients (`augment --grad int8`); --models keeps
the rows whose model label contains the text.

Not measured here: the stack and the image on the rig (benchmarks/tflm_rig.py does that,
given TFLM's sources).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "models"
SCHEMES = HERE / "schemes"
# label, source (a .tflite, or a tiny-training .pkl), scheme, the SRAM goal (KB)
MODELS = [
    ("person detector", SHARED / "tflm" / "person_detect.tflite", "bias-only", 128),
    ("person detector", SHARED / "tflm" / "person_detect.tflite",
     str(SCHEMES / "person_detect_sparse.json"), 128),
    ("MCUNet-5FPS", SHARED / "tiny-training" / "mcunet-5fps.pkl",
     str(SCHEMES / "mcunet-5fps_99kb.json"), 256),
    ("MobileNetV2-w0.35", SHARED / "tiny-training" / "mbv2-w0.35.pkl",
     str(SCHEMES / "mbv2-w0.35_99kb.json"), 256),
]


def load(source: Path):
    from tflite_train import tflite_io
    if source.suffix == ".pkl":
        from tflite_train.importers.tiny_training import import_pkl
        return tflite_io.parse(tflite_io.serialize(import_pkl(source)))
    return tflite_io.load(source)


def identical(graph, steps: int) -> bool:
    """--engine tflm == --engine c: every loss and every variable after `steps` steps."""
    import numpy as np
    from tflite_train.runtime.numpy_exec import Executor
    from tflite_train.runtime.tflm_engine import TFLMExecutor
    runs = []
    for ex in (Executor(graph, "c"), TFLMExecutor(graph)):
        rng = np.random.default_rng(0)
        x_t = graph.tensors[graph.inputs[0]]
        losses = []
        for s in range(steps):
            x = rng.integers(-128, 128, x_t.shape).astype(np.int8)
            out = ex.invoke([x, np.array([s % 10], np.int32)])
            losses.append(np.asarray(out[graph.outputs[-1]]).tobytes())
        runs.append((losses, {i: np.asarray(v).tobytes() for i, v in ex.variables.items()}))
    return runs[0] == runs[1]


def measure(label: str, source: Path, scheme: str, goal: int, steps: int,
            grad: str = "float32") -> list[dict]:
    from tflite_train import tflite_io, tflm_memory
    from tflite_train.augment import MemoryOptions, augment
    from tflite_train.autodiff import Hyper
    base = tflite_io.serialize(load(source))
    rows = []
    for passes, memory in (("none", MemoryOptions(False, False, False, stream=False)),
                           ("all", MemoryOptions())):
        r = augment(tflite_io.parse(base), scheme, 10, Hyper(seed=0, grad=grad), memory=memory)
        data = tflite_io.serialize(r.graph)
        g = tflite_io.parse(data)
        a = tflm_memory.account(g, len(data), "cortex-m7")
        m = r.memory
        chosen = {"split filters": len(m.split), "streamed": len(m.streamed),
                  "in place": len(m.in_place), "flash requantization": len(m.flash_requant)}
        rows.append({
            "model": label, "scheme": Path(scheme).stem if scheme.endswith(".json") else scheme,
            "grad": grad, "passes": passes, "chosen": chosen, "arena": a["arena"],
            "persistent": a["persistent"], "trained": a["trained"],
            "optimizer": a["optimizer"], "sram": a["sram_total"], "goal_kb": goal,
            "model_flash": a["flash"]["model"], "tflm_code": a["flash"]["tflm_code"],
            "flash": a["flash"]["total"],
            "identical_to_engine_c": identical(g, steps) if passes == "all" and steps else None,
            "steps": steps})
        print(row(rows[-1]), flush=True)
    return rows


def _order(r: dict) -> tuple:
    """MODELS' order, then float32 before int8, passes off before on."""
    where = [(label, Path(scheme).stem if scheme.endswith(".json") else scheme)
             for label, _, scheme, _ in MODELS]
    at = (r["model"], r["scheme"])
    return (where.index(at) if at in where else len(where), r.get("grad", "float32") != "float32",
            r["passes"] != "none")


def row(r: dict) -> str:
    kb = results.kb
    chosen = ", ".join(f"{v} {k}" for k, v in r["chosen"].items() if v) or "-"
    fits = "yes" if r["sram"] <= r["goal_kb"] * 1024 and r["flash"] <= 1024 * 1024 else "no"
    same = {None: "", True: f"yes ({r['steps']} steps)", False: "NO"}[r["identical_to_engine_c"]]
    return (f"| {r['model']} | {r['scheme']} | {r.get('grad', 'float32')} | {r['passes']} | "
            f"{chosen} | **{kb(r['sram'])}** = "
            f"{kb(r['arena'])} + {kb(r['persistent'])} + {kb(r['trained'])} + "
            f"{kb(r['optimizer'])} | {r['goal_kb']} | **{kb(r['flash'])}** = "
            f"{kb(r['model_flash'])} + {kb(r['tflm_code'])} | {fits} | {same} |")


def render(data: dict) -> str:
    head = ("| model | scheme | gradients | memory passes | chosen | SRAM KB = arena + TFLM "
            "persistent + trained + optimizer | goal KB | flash KB = model + TFLM code | "
            "within goals | tflm = c |\n|---|---|---|---|---|---|---:|---|---|---|")
    return "\n".join([head, *map(row, data["rows"])])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2,
                    help="training steps compared between --engine tflm and c (0: none)")
    ap.add_argument("--json", type=Path, help="write the measurements to this file (the "
                                              "one in benchmarks/ re-renders RESULTS.md)")
    ap.add_argument("--grad", choices=("float32", "int8"), default="float32",
                    help="activation gradients of the training models (augment --grad)")
    ap.add_argument("--models", default="", help="only the models whose label contains this")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory():
        for label, source, scheme, goal in MODELS:
            if args.models not in label:
                continue
            if not source.exists():
                print(f"{label}: {source} not present, skipped")
                continue
            rows += measure(label, source, scheme, goal, args.steps, args.grad)
    if args.json and args.json.exists() and (args.models or args.grad != "float32"):
        # a partial run replaces its own rows in the file and keeps the others
        import json

        def key(r):
            return r["model"], r["scheme"], r.get("grad", "float32"), r["passes"]
        ours = {key(r) for r in rows}
        rows = sorted([r for r in json.loads(args.json.read_text())["rows"]
                       if key(r) not in ours] + rows, key=_order)
    data = {"rows": rows, "target": "TFLM 90b983c2b for the Cortex-M7 (32-bit structs), "
                                    "as `tflite-train plan` models it"}
    print(render(data))
    if args.json:
        results.save(args.json, data, JSON, TABLES)
    return 0


JSON = "tflm_memory.json"
TABLES = {"tflm-memory": ([JSON], render)}

if __name__ == "__main__":
    sys.exit(main())
