"""Would a rounding residual close int8 + QAS's gap to fp32 (issue 9)? The transfer benchmark's
setting (benchmarks/transfer.py: person detector -> Fashion-MNIST, batch 1, lr 0.2 / bias lr
0.001 under a cosine over the run, augment's defaults otherwise: int8 activation gradients,
the 8x head grid), each seed's rows on the same head, samples and validation set, in the
variants:

- qas: int8 + QAS as the product trains (stochastic rounding of each QAS step to whole LSBs);
- resid8: int8 + QAS with a residual per trained weight: the step in LSBs plus the carried
  residual is rounded to nearest, the remainder (in [-1/2, 1/2] LSB) kept for the next step,
  quantized to nearest 1/256 LSB (an int8 per weight, what a device would store);
- resid8-sr: the same, the remainder quantized to 1/256 LSB stochastically (unbiased: keeps
  steps below 1/512 LSB, which resid8 drops);
- residf: the remainder kept in float32 (the bound: no rounding noise, no loss);
- fp32: TensorFlow fine-tuning of the same trainable set (transfer.py's fp32).

The residual variants run in the numpy engine with `tflite_train.ops.training
.apply_weight_update` replaced, for the run only, by `residual_update(mode)`: the product's
own float32 QAS SGD step (`training._sgd_delta`: lr schedule, QAS scaling, the schema's
operation order), then the residual rounding instead of `training._round`, then the
product's clamp to +-127. Every weight update op of the numpy engine (TT_UPDATE_WEIGHT and
the fused conv / depthwise / fully-connected weight updates) looks the function up at call
time, so all of them take the residual; bias updates stay the product's (stochastic
rounding on their fine int32 grid). Mode "stochastic" is the product's rule through the
same replacement (tests/test_rounding_residual.py: bit-identical to the unpatched numpy
engine, which is bit-identical to --engine c); qas runs in --engine c (the same bits,
faster).

    nice -n 10 .venv/bin/python benchmarks/rounding_residual.py --schemes last:2 \\
        --seeds 0,1,2 --variants qas,resid8,residf,fp32 --json /tmp/resid24/last2.json

It prints a row per run, then per variant over the seeds the mean and standard error, and
the paired differences (same seed) against int8 + QAS and against fp32; and, per residual
run, how the trained weights' QAS steps are distributed (share of |step| < 1/512 LSB, which
resid8 drops, < 1/2 LSB, >= 1/2 LSB).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import results  # noqa: E402
import transfer  # noqa: E402

from tflite_train import data  # noqa: E402
from tflite_train.ops import training  # noqa: E402
from tflite_train.train import split  # noqa: E402

VARIANTS = {"qas": "int8 + QAS (stochastic rounding)",
            # the product since round 27 (augment --head-residual on): the rule of resid8 on
            # the new head's weights only, in every engine (schema: the residual input)
            "product": "int8 + QAS, the product's head residual",
            "resid8": "int8 + QAS, int8 residual (1/256 LSB, nearest)",
            "resid8-sr": "int8 + QAS, int8 residual (1/256 LSB, stochastic)",
            "residf": "int8 + QAS, float32 residual (bound)",
            "fp32": "fp32",
            # diagnostic: fp32 trained as the fp32 row, then validated with its trained
            # weights rounded to nearest onto their int8 grid (all, the pretrained only,
            # the new head only): what the grid's resolution alone costs the trained model
            "fp32-grid": "fp32, validated with trained weights rounded to nearest"}
GRID_EVALS = {"none": "fp32 (this run, unrounded)", "all": "fp32, every trained weight "
              "rounded to nearest", "pretrained": "fp32, the pretrained weights rounded to "
              "nearest", "head": "fp32, the new head's weights rounded to nearest",
              # the two parts of "all": the grid's range alone, its resolution alone
              "clamp": "fp32, every trained weight clamped to +-127 LSB (not rounded)",
              "round": "fp32, every trained weight rounded to nearest (not clamped)",
              # a grid with headroom for the pretrained weights (scale x H, codes +-127;
              # the head on its own grid), as augment could requantize a trained layer
              "h2": "fp32, rounded to nearest, pretrained weights on a 2x coarser grid",
              "h4": "fp32, rounded to nearest, pretrained weights on a 4x coarser grid",
              # the same with the head left unrounded: what the coarser grid costs the
              # pretrained weights alone (compare with "pretrained", their own grid)
              "p2": "fp32, the pretrained weights rounded to nearest on a 2x coarser grid",
              "p4": "fp32, the pretrained weights rounded to nearest on a 4x coarser grid",
              "p8": "fp32, the pretrained weights rounded to nearest on an 8x coarser grid"}
HEADROOM = {"h2": 2, "h4": 4, "p2": 2, "p4": 4, "p8": 8}
MODES = {"resid8": "q8", "resid8-sr": "q8-sr", "residf": "f32"}
RESIDUAL_UNITS = 256                  # the int8 residual's steps per LSB of the weight
# |QAS step| bins in LSBs of the weight (after 0 exactly): below half a residual unit
# (lost by resid8's nearest rounding of the remainder), sub-LSB, at least half an LSB
BINS = (0.5 / RESIDUAL_UNITS, 0.5)


def residual_step(delta: np.ndarray, state: dict, mode: str, rng=None) -> np.ndarray:
    """Whole-LSB steps for the float32 QAS steps `delta` with a residual carried in
    `state["residual"]` (float32 LSBs, the shape of delta; 0 at first). Mode f32: s =
    rint(delta + r), r := (delta + r) - s, in [-1/2, 1/2]. Modes q8 / q8-sr: in units of
    1/256 LSB, c = 256 r + 256 delta is rounded to an integer (to nearest / stochastically
    with `rng`), s = floor((c + 128) / 256) and the residual code c - 256 s is in [-128, 127]
    (an int8: a whole step is taken when the remainder reaches +1/2 LSB, as a device would
    do with int8 arithmetic)."""
    r = state.get("residual")
    if r is None:
        r = np.zeros(delta.shape, np.float32)
    if mode == "f32":
        d = (delta + r).astype(np.float32)
        step = np.rint(d)
        state["residual"] = (d - step).astype(np.float32)   # exact in float32
        return step
    x = (r * np.float32(RESIDUAL_UNITS) + delta * np.float32(RESIDUAL_UNITS)).astype(np.float32)
    c = np.rint(x) if mode == "q8" else np.floor(x + rng.random(x.shape, np.float32))
    step = np.floor((c + RESIDUAL_UNITS // 2) / RESIDUAL_UNITS)
    state["residual"] = ((c - RESIDUAL_UNITS * step) / RESIDUAL_UNITS).astype(np.float32)
    return step


def residual_update(mode: str, stats: dict | None = None, seed: int = 0):
    """A stand-in for training.apply_weight_update: its float32 step and clamp, with the
    rounding `mode` ("stochastic": the product's _round; "f32", "q8", "q8-sr": residual_step).
    `stats`, when given, counts |step| per bin over all updates, per weight shape."""
    rngs: dict[int, np.random.Generator] = {}

    def apply(w, grad, mom, q, o: dict, state: dict, acc=None, res=None) -> None:
        if res is not None:
            raise ValueError("the stand-in replaces the rounding of a model without the "
                             "product's residual: augment it with head_residual off")
        k = o["channels"]
        shape = [1] * w.ndim
        shape[o["axis"]] = -1
        scale = (q.scale.astype(np.float32).reshape(shape) if q.per_channel
                 else np.float32(q.scale[0]))
        delta = training._sgd_delta(grad.astype(np.float32), scale, mom, o, state, acc)
        if delta is None:
            return
        if stats is not None:
            a = np.abs(delta)
            s = stats.setdefault(str(list(delta.shape)), [0] * (len(BINS) + 2))
            lo = int(np.count_nonzero(a == 0))
            s[0] += lo
            for b, edge in enumerate(BINS):
                n = int(np.count_nonzero(a < edge))
                s[b + 1] += n - lo
                lo = n
            s[-1] += a.size - lo
        if mode == "stochastic":
            step = training._round(delta, o["rounding"], state, o["seed"])
        else:
            rng = rngs.setdefault(id(state), np.random.default_rng([seed, len(rngs)]))
            step = residual_step(delta, state, mode, rng)
        step = np.clip(np.nan_to_num(step, nan=-256.0), -256.0, 256.0)
        region = w[..., :k]
        region[...] = np.clip(region.astype(np.int32) + step.astype(np.int32), -127, 127)
        if stats is not None:                 # the share at the grid's ends, last update
            stats.setdefault("at_127", {})[str(list(delta.shape))] = float(
                np.mean(np.abs(region.astype(np.int32)) == 127))
    return apply


@contextlib.contextmanager
def patched(mode: str, stats: dict | None = None, seed: int = 0):
    """training.apply_weight_update is residual_update(mode) inside the block."""
    original = training.apply_weight_update
    training.apply_weight_update = residual_update(mode, stats, seed)
    try:
        yield
    finally:
        training.apply_weight_update = original


def fp32_grid(scheme: str, seed: int, args, ds, train_idx, val_idx) -> list[dict]:
    """transfer.run's fp32 (the same augment, FloatTrainer, samples and seed), then the
    validation set four times: unrounded (= the fp32 row) and with the trained int8 weights
    (their variables) put on their int8 grid by rounding to nearest, codes clamped to
    +-127, for all of them, the pretrained ones, the head's; and per weight tensor how far
    training moved it, in LSBs (share of weights moved by less than 1/2 LSB: those rounding
    to nearest puts back where they started)."""
    import time
    from tflite_train import augment, tflite_io
    from tflite_train.autodiff import Hyper
    from tflite_train.fp32 import FloatTrainer, updates
    from tflite_train.tf_float import dequantize
    from tflite_train.train import sample_order
    hyper = Hyper(lr=float(args.lr), bias_lr=args.bias_lr, momentum=args.momentum,
                  decay_steps=args.steps if args.cosine else 0, half_life=0, qas=True,
                  rounding="stochastic", seed=seed, grad="float32",
                  weight_headroom=1.0)     # the input model's grids, as transfer.run's rows
    result = augment.augment(tflite_io.load(args.model), scheme, len(ds.classes), hyper)
    t0 = time.time()
    ft = FloatTrainer(result.graph)
    grids = []
    for (p, o), (var, *_rest) in zip(updates(ft.graph), ft.rules):
        t = ft.graph.tensors[p]
        if t.dtype == "int8" and t.quant is not None:
            one = dequantize(t, np.ones(var.shape, np.int8), axis=o.get("axis", 0))
            grids.append((t.name, var, one.astype(np.float32), var.numpy().copy()))
    inp = result.graph.tensors[result.graph.inputs[0]]
    for i in sample_order(train_idx, args.steps, seed):
        ft.step(data.to_model_input(ds.images[i], inp), int(ds.labels[i]))
    moved = {}
    for name, var, one, start in grids:
        d = np.abs(var.numpy() - start) / one
        moved[name] = {"weights": int(d.size), "mean_lsb": float(d.mean()),
                       "below_half_lsb": float(np.mean(d < 0.5)),
                       "max_lsb": float(d.max()),
                       "beyond_127": float(np.mean(np.abs(var.numpy() / one) > 127.5))}
    trained = {name: var.numpy().copy() for name, var, _, _ in grids}
    xs = [data.to_model_input(ds.images[i], inp) for i in val_idx]
    rows = []
    name_of = scheme if not scheme.endswith(".json") else Path(scheme).stem
    for which in args.grid_evals.split(","):
        label = GRID_EVALS[which]
        for name, var, one, _ in grids:
            head = name.startswith("head/")
            on = {"none": False, "pretrained": not head, "head": head}.get(
                which, not head if which.startswith("p") else True)
            w = trained[name] / (one * HEADROOM.get(which, 1) if not head else one)
            if on and which != "clamp":
                w = np.rint(w)
            if on and which != "round":
                w = np.clip(w, -127, 127)
            var.assign((w * (one * HEADROOM.get(which, 1) if not head else one))
                       .astype(np.float32))
        hits = sum(ft.predict(x) == ds.labels[i] for x, i in zip(xs, val_idx))
        rows.append({"scheme": name_of, "variant": label, "grad": "-", "seed": seed,
                     "val_accuracy": hits / len(val_idx), "moved": moved,
                     "seconds": round(time.time() - t0, 1)})
    return rows


def run(scheme: str, variant: str, seed: int, args, ds, train_idx, val_idx) -> dict:
    """One row: transfer.run's int8 + QAS (int8 gradients) or fp32, with the residual rule
    patched in for the residual variants (numpy engine)."""
    # every int8 row but "product" on a model without the product's head residual: "qas" is
    # stochastic rounding, and the patched rules replace it on every weight update
    args.head_residual = "on" if variant == "product" else "off"
    if variant == "fp32":
        r = transfer.run(scheme, "fp32", "-", seed, args, ds, train_idx, val_idx)
    elif variant == "product":
        r = transfer.run(scheme, "qas", args.grad, seed, args, ds, train_idx, val_idx)
    elif variant == "qas":
        r = transfer.run(scheme, "qas", args.grad, seed, args, ds, train_idx, val_idx)
    else:
        stats: dict = {}
        engine, args.engine = args.engine, "numpy"
        try:
            with patched(MODES[variant], stats, seed):
                r = transfer.run(scheme, "qas", args.grad, seed, args, ds, train_idx, val_idx)
        finally:
            args.engine = engine
        r["step_bins"] = stats
    r["variant"] = VARIANTS[variant]
    return r


def mean_se(values):
    return transfer.mean_se(list(values))


def summary(rows: list[dict]) -> str:
    """Per scheme and variant: accuracy per seed, mean +- SE; then paired by seed, each
    variant minus int8 + QAS and minus fp32."""
    acc: dict[tuple, dict[int, float]] = {}
    for r in rows:
        acc.setdefault((r["scheme"], r["variant"]), {})[r["seed"]] = 100 * r["val_accuracy"]
    out = ["| scheme | variant | accuracy per seed | mean +- SE | minus int8 + QAS (paired) "
           "| minus fp32 (paired) |", "|---|---|---|---:|---:|---:|"]
    for (scheme, variant), by_seed in acc.items():
        qas, fp32 = (acc.get((scheme, VARIANTS[v]), {}) for v in ("qas", "fp32"))
        m, se = mean_se(by_seed.values())
        out.append(f"| {scheme} | {variant} | "
                   + " / ".join(f"{s}: {v:.1f}" for s, v in sorted(by_seed.items()))
                   + f" | {m:.2f}" + ("" if math.isnan(se) else f" +- {se:.2f}") + " | "
                   + results.paired_cell(by_seed, qas, seeds=True) + " | "
                   + results.paired_cell(by_seed, fp32, seeds=True) + " |")
    return "\n".join(out)


def step_table(rows: list[dict]) -> str:
    """The trained weights' QAS steps over a run (every update, every element), per weight
    tensor shape: share of steps exactly 0, of |step| in (0, 1/512) LSB, in [1/512, 1/2) and
    at least 1/2 LSB."""
    out = ["| scheme | variant | seed | weights | updates x elements | 0 | (0, 1/512) LSB | "
           "[1/512, 1/2) LSB | >= 1/2 LSB | codes at +-127 after training |",
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        bins = r.get("step_bins", {})
        for shape, counts in bins.items():
            if shape == "at_127":
                continue
            n = sum(counts)
            out.append(f"| {r['scheme']} | {r['variant']} | {r['seed']} | {shape} | {n:,} | "
                       + " | ".join(f"{100 * c / n:.1f}%" for c in counts) + " | "
                       + (f"{100 * bins['at_127'][shape]:.2f}%" if "at_127" in bins
                          else "-") + " |")
    return "\n".join(out)


def moved_table(rows: list[dict]) -> str:
    """Per fp32-grid run and trained weight tensor: how far fp32 training moved the weights
    from their (on-grid) start, in LSBs of their int8 grid."""
    out = ["| scheme | seed | weights | count | mean move (LSB) | moved < 1/2 LSB | largest "
           "move (LSB) | beyond +-127.5 LSB |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["variant"] == GRID_EVALS["none"]:
            for name, m in r["moved"].items():
                out.append(f"| {r['scheme']} | {r['seed']} | {name} | {m['weights']:,} | "
                           f"{m['mean_lsb']:.3f} | {100 * m['below_half_lsb']:.1f}% | "
                           f"{m['max_lsb']:.2f} | "
                           + (f"{100 * m['beyond_127']:.2f}% |" if "beyond_127" in m
                              else "- |"))
    return "\n".join(out)


def cost(model: Path, schemes: list[str], num_classes: int = 10) -> str:
    """SRAM of a residual: one byte per trained int8 weight (each weight update op's trained
    region), next to `tflite-train plan`'s SRAM of the scheme's default training model
    (TFLM on the Cortex-M7, and the generated program's), as markdown."""
    import subprocess
    import tempfile
    from tflite_train import tflite_io
    from tflite_train.training_ops import options_of
    out = ["| scheme | trained int8 weights = residual bytes | plan SRAM, TFLM (bytes) | "
           "with the residual | generated program's SRAM | with the residual |",
           "|---|---:|---:|---:|---:|---:|"]
    cli = [sys.executable, "-m", "tflite_train.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in schemes:
            path = Path(tmp) / "m.train.tflite"
            subprocess.run(cli + ["augment", str(model), "-o", str(path), "--num-classes",
                                  str(num_classes), "--scheme", scheme], check=True,
                           capture_output=True)
            plan = json.loads(subprocess.run(cli + ["plan", str(path), "--json"], check=True,
                                             capture_output=True, text=True).stdout)
            g = tflite_io.load(path)
            n = 0
            for op in g.operators:
                if op.kind == "TT_UPDATE_WEIGHT" or op.kind.endswith("_WEIGHT_UPDATE"):
                    w = g.tensors[op.inputs[0 if op.kind == "TT_UPDATE_WEIGHT" else 3]]
                    n += int(np.prod(w.shape[:-1])) * options_of(op)["channels"]
            tflm, cg = plan["total_bytes"], plan["codegen"]["total_bytes"]
            name = Path(scheme).stem if scheme.endswith(".json") else scheme
            out.append(f"| {name} | {n:,} | {tflm:,} | {tflm + n:,} | {cg:,} | {cg + n:,} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--val", type=int, default=3000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--schemes", default="last:2")
    ap.add_argument("--variants", default="qas,resid8,residf,fp32",
                    help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--grad", default="int8", choices=list(transfer.GRADS),
                    help="activation gradients of the int8 variants (augment's default int8)")
    ap.add_argument("--engine", default="c", choices=["numpy", "c"],
                    help="engine of the qas rows (the residual rows run in numpy)")
    ap.add_argument("--model", type=Path, default=transfer.MODEL)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--grid-evals", default="none,all,pretrained,head,clamp,round",
                    help="fp32-grid's validations: comma-separated subset of "
                         + ", ".join(GRID_EVALS))
    ap.add_argument("--cost", action="store_true",
                    help="print only the residual's SRAM per scheme next to the plan's")
    args = ap.parse_args()
    # transfer.run's other settings: the transfer table's
    args.lr, args.bias_lr, args.momentum, args.cosine = "0.2", 0.001, 0.0, True
    variants = args.variants.split(",")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        sys.exit(f"unknown variant(s): {', '.join(bad)}")
    schemes = [str(transfer.SPARSE) if s == "sparse" else s for s in args.schemes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cost:
        print(cost(args.model, schemes))
        return
    ds = data.load(args.data)
    train_idx, val_idx = split(len(ds), 0.1, args.val, 0)
    rows = []
    if args.json and args.json.exists():       # resume: keep the rows already measured
        rows = json.loads(args.json.read_text())["rows"]
    done = {(r["scheme"], r["variant"], r["seed"]) for r in rows}
    for scheme in schemes:
        name = Path(scheme).stem if scheme.endswith(".json") else scheme
        for seed in seeds:
            for variant in variants:
                if (name, GRID_EVALS[args.grid_evals.split(",")[-1]] if variant == "fp32-grid"
                        else VARIANTS[variant],
                        seed) in done:
                    continue
                new = (fp32_grid(scheme, seed, args, ds, train_idx, val_idx)
                       if variant == "fp32-grid"
                       else [run(scheme, variant, seed, args, ds, train_idx, val_idx)])
                for r in new:
                    rows.append(r)
                    print(f"| {r['scheme']} | {r['variant']} | {seed} | "
                          f"{100 * r['val_accuracy']:.1f}% | {r['seconds']} s |", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(
                        {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                        indent=1))
    print(f"\nValidation accuracy in % ({len(val_idx)} samples)\n")
    print(summary(rows))
    print()
    print(step_table(rows))
    print()
    print(moved_table(rows))


if __name__ == "__main__":
    main()
