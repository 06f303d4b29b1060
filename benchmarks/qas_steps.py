"""Diagnostic of int8 + QAS's gap to fp32 (benchmarks/RESULTS.md, "MobileNetV2 99kb's gap,
round 8"): how big each trained tensor's SGD steps are on its int8 (weights) or int32
(biases) grid, and how much noise stochastic rounding would add to them.

It trains the fp32 baseline of paper_accuracy.py (TensorFlow, the same trainable set, rates,
cosine and samples as the table's runs) and, per trained tensor, over the trained channels:
the median step in LSB and the share of steps below one LSB in a window early, mid-run and
late; the displacement W_T - W_0 (RMS, in LSB) that fp32 reaches; the path (sum of |step|,
mean per element, in LSB); and the rounding noise a QAS update would add on that path. A QAS
step leaves the parameter on its grid, so the step's own fractional part p (of one LSB) is
what stochastic rounding rounds, with variance p(1 - p); the noise is the RMS over elements
of sqrt(sum over steps of p(1 - p)). Where it is about as large as the displacement, QAS
carries about as much rounding noise as signal. fp32 float steps stand in for QAS's (a QAS
step is the fp32 step rounded: its size is the same up to the model's drift).

    .venv/bin/python benchmarks/qas_steps.py [--model mbv2-w0.35] [--scheme 99kb]
        [--seed 0] [--steps 1000] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import paper_accuracy  # noqa: E402

WINDOWS = {"early": (0, 10), "mid": (290, 300), "late": (900, 1000)}


def lsb_of(tensor, shape, axis):
    """One step of the parameter's grid, per element, in real units."""
    import numpy as np
    from tflite_train.tf_float import dequantize
    ones = np.ones(shape, np.int8 if tensor.dtype == "int8" else np.int32)
    return dequantize(tensor, ones, axis=axis).astype(np.float64)


def measure(model: str, scheme: str, seed: int, steps: int) -> list[dict]:
    import numpy as np
    import tensorflow as tf
    from tflite_train import augment, data
    from tflite_train.autodiff import Hyper
    from tflite_train.fp32 import FloatTrainer, updates
    from tflite_train.importers.tiny_training import import_pkl
    from tflite_train.train import sample_order, split
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    ds = data.fashion_mnist()
    train_idx, _ = split(len(ds), 0.1, 3000, 0)          # paper_accuracy's split
    # the input model's grids (--weight-headroom 1), as the runs this measured
    hyper = Hyper(qas=True, seed=seed, decay_steps=steps, weight_headroom=1.0)
    result = augment.augment(import_pkl(paper_accuracy.PKLS / f"{model}.pkl"),
                             paper_accuracy.scheme_spec(model, scheme), 10, hyper)
    ft = FloatTrainer(result.graph)
    inp = result.graph.tensors[result.graph.inputs[0]]
    tensors = []
    for (p, o), (var, _o, channels, _buf) in zip(updates(ft.graph), ft.rules):
        t = ft.graph.tensors[p]
        mask = np.zeros(var.shape, bool)
        mask[..., :channels] = True                      # a partial layer's trained channels
        tensors.append({"tensor": t, "var": var, "mask": mask, "lr": float(o["lr"]),
                        "lsb": lsb_of(t, var.shape, o.get("axis", 0)),
                        "w0": var.numpy().astype(np.float64),
                        "noise": np.zeros(var.shape), "path": np.zeros(var.shape),
                        "windows": {}})
    for k, i in enumerate(sample_order(train_idx, steps, seed)):
        before = [d["var"].numpy().astype(np.float64) for d in tensors]
        ft.step(data.to_model_input(ds.images[int(i)], inp), int(ds.labels[int(i)]))
        for d, b in zip(tensors, before):
            s = np.abs(d["var"].numpy() - b) / d["lsb"]
            p = s - np.floor(s)
            d["noise"] += p * (1 - p)
            d["path"] += s
            for name, (a, e) in WINDOWS.items():
                if a <= k < e:
                    d["windows"].setdefault(name, []).append(s[d["mask"]])
    rows = []
    for d in tensors:
        m = d["mask"]
        moved = ((d["var"].numpy() - d["w0"]) / d["lsb"])[m]
        row = {"tensor": d["tensor"].name, "dtype": d["tensor"].dtype, "trained": int(m.sum()),
               "lr": d["lr"],
               "value_rms_lsb": float(np.sqrt(np.mean((d["w0"] / d["lsb"])[m] ** 2))),
               "displacement_rms_lsb": float(np.sqrt(np.mean(moved ** 2))),
               "rounding_noise_rms_lsb": float(np.sqrt(np.mean(d["noise"][m]))),
               "path_mean_lsb": float(np.mean(d["path"][m]))}
        for name, arrays in d["windows"].items():
            a = np.concatenate(arrays)
            row[f"median_step_lsb_{name}"] = float(np.median(a))
            row[f"below_one_lsb_{name}"] = float(np.mean(a < 1))
        rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    lines = ["| tensor | trained | RMS value (LSB) | median step, steps 290-300 (LSB) | "
             "steps < 1 LSB there | displacement (RMS LSB) | rounding noise (RMS LSB) | "
             "noise / displacement | path (LSB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['tensor']} | {r['trained']:,} | {r['value_rms_lsb']:.3g} | "
            f"{r.get('median_step_lsb_mid', float('nan')):.3g} | "
            f"{100 * r.get('below_one_lsb_mid', float('nan')):.0f}% | "
            f"{r['displacement_rms_lsb']:.3g} | {r['rounding_noise_rms_lsb']:.3g} | "
            f"{r['rounding_noise_rms_lsb'] / max(r['displacement_rms_lsb'], 1e-12):.2f} | "
            f"{r['path_mean_lsb']:.3g} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mbv2-w0.35", choices=paper_accuracy.MODELS)
    ap.add_argument("--scheme", default="99kb")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    last = max(e for _, e in WINDOWS.values())
    if args.steps < last:
        ap.error(f"--steps must be at least {last}: the windows are steps "
                 + ", ".join(f"{a}-{e}" for a, e in WINDOWS.values()))
    rows = measure(args.model, args.scheme, args.seed, args.steps)
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "scheme": args.scheme,
                                         "seed": args.seed, "steps": args.steps,
                                         "tensors": rows}, indent=1) + "\n")
    print(render(rows))


if __name__ == "__main__":
    main()
