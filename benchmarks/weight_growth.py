"""Which trained pretrained weights does fine-tuning grow past their int8 grid (issue 9,
augment --weight-headroom)? fp32 (tflite_train/fp32.py, TensorFlow on the dequantized model)
trains a scheme at a benchmark's protocol; then, per trained pretrained weight tensor, over
its trained region only (a partial layer's leading input channels), in LSBs of the tensor's
own int8 grid (per channel):

- beyond 127: the share of weights that end beyond +-127.5 LSB, which the int8 grid clamps
  (what headroom is for);
- beyond 255: the share beyond +-254.5 LSB, which a 2x coarser grid clamps still;
- the largest |code| reached, and the RMS displacement W_T - W_0;
- where the layer is: its kind, its distance to the new head (1 = the layer feeding it,
  counted over the convolutions and fully connected layers) and the share of its input
  channels trained.

Protocols: `transfer` (the person detector -> Fashion-MNIST, benchmarks/transfer.py's fp32:
lr 0.2, bias lr 0.001, cosine over the run, batch 1) and `paper` (Table 1's models,
benchmarks/paper_accuracy.py's fp32: augment's model-derived rates, cosine). The same
augment, samples and order as those benchmarks' fp32 rows of the same seed.

    nice .venv/bin/python benchmarks/weight_growth.py --runs \\
        transfer:person:last:2,transfer:person:sparse,paper:mcunet-5fps:last:6,... \\
        [--seed 0] [--steps 1000] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

JSON_NAME = "weight_growth.json"
PROTOCOLS = ("transfer", "paper")
# the person detector's sparse scheme by a short name
SHORT = {"sparse": str(HERE / "schemes" / "person_detect_sparse.json")}


def parse_run(text: str) -> tuple[str, str, str]:
    """"protocol:model:scheme" (the scheme may hold a colon: last:2) -> its three parts."""
    parts = text.split(":", 2)
    if len(parts) != 3 or parts[0] not in PROTOCOLS or not parts[2]:
        raise ValueError(f"a run is protocol:model:scheme with protocol one of "
                         f"{', '.join(PROTOCOLS)}, got {text!r}")
    return parts[0], parts[1], parts[2]


def build(protocol: str, model: str, scheme: str, seed: int, steps: int, val: int):
    """The training model fp32 reads (the benchmark's augment, on the input model's grids:
    --weight-headroom 1, whatever augment's default), the data, the training samples in
    order and the validation samples."""
    from tflite_train import augment, data, tflite_io
    from tflite_train.autodiff import Hyper
    from tflite_train.train import sample_order, split
    spec = SHORT.get(scheme, scheme)
    if protocol == "transfer":
        import transfer
        if model != "person":
            raise ValueError(f"the transfer protocol's model is person, got {model!r}")
        ds = data.load("fashion-mnist")
        hyper = Hyper(lr=0.2, bias_lr=0.001, momentum=0.0, decay_steps=steps, half_life=0,
                      qas=True, seed=seed, weight_headroom=1.0)
        graph = tflite_io.load(transfer.MODEL)
    else:
        import paper_accuracy
        from tflite_train.importers.tiny_training import import_pkl
        if model not in paper_accuracy.MODELS:
            raise ValueError(f"the paper protocol's model is one of "
                             f"{', '.join(paper_accuracy.MODELS)}, got {model!r}")
        ds = data.fashion_mnist()
        hyper = Hyper(qas=True, seed=seed, decay_steps=steps, weight_headroom=1.0)
        graph = import_pkl(paper_accuracy.PKLS / f"{model}.pkl")
        spec = paper_accuracy.scheme_spec(model, scheme)
    train_idx, val_idx = split(len(ds), 0.1, val, 0)      # both benchmarks' split
    result = augment.augment(graph, spec, len(ds.classes), hyper)
    return result, ds, sample_order(train_idx, steps, seed), val_idx


def layers_of(result) -> dict[str, dict]:
    """Weight tensor name -> where its layer is (kind, distance to the new head, share of
    input channels trained), for every layer whose pretrained weights the scheme trains."""
    from tflite_train.scheme import LAYER_KINDS, input_channels
    fo = result.backward.forward_ops
    layers = [i for i, op in enumerate(fo) if op.kind in LAYER_KINDS]
    out = {}
    for k, u in sorted(result.scheme.layers.items()):
        if k == result.head or not u.weight_channels:
            continue
        op = fo[k]
        out[result.graph.tensors[op.inputs[1]].name] = {
            "layer": result.graph.tensors[op.outputs[0]].name, "kind": op.kind,
            "to_head": len(layers) - 1 - layers.index(k),
            "channels": u.weight_channels}
    return out


def measure(protocol: str, model: str, scheme: str, seed: int, steps: int,
            val: int = 0) -> dict:
    """The layers' growth; with `val` > 0 also fp32's validation accuracy on that many
    samples as trained, with each layer's trained weights alone clamped to +-127.5 LSB of
    their grid (not rounded: the range's cost alone), and with all of them clamped."""
    from tflite_train import data
    from tflite_train.fp32 import FloatTrainer, updates
    from tflite_train.tf_float import _tf, dequantize
    tf = _tf()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    result, ds, order, val_idx = build(protocol, model, scheme, seed, steps, max(val, 1))
    where = layers_of(result)
    ft = FloatTrainer(result.graph)
    tensors = []
    for (p, o), (var, _o, channels, _buf) in zip(updates(ft.graph), ft.rules):
        t = ft.graph.tensors[p]
        if t.dtype != "int8" or t.name.startswith("head/"):
            continue                                   # biases; the new head's own grid
        if t.name not in where:
            raise AssertionError(f"internal: trained weights {t.name!r} of no scheme layer")
        one = dequantize(t, np.ones(var.shape, np.int8), axis=o.get("axis", 0))
        mask = np.zeros(var.shape, bool)
        mask[..., :channels] = True
        tensors.append((t.name, var, one.astype(np.float64), var.numpy().astype(np.float64),
                        mask))
    if len(tensors) != len(where):
        raise AssertionError(f"internal: {len(where)} trained layers, {len(tensors)} tensors")
    inp = result.graph.tensors[result.graph.inputs[0]]
    t0 = time.time()
    for i in order:
        ft.step(data.to_model_input(ds.images[int(i)], inp), int(ds.labels[int(i)]))
    rows = []
    for name, var, one, w0, mask in tensors:
        q0 = (w0 / one)[mask]
        q = (var.numpy().astype(np.float64) / one)[mask]
        rows.append({**where[name], "of": int(var.shape[-1]),   # the whole filter's channels
                     "tensor": name, "trained": int(mask.sum()),
                     "beyond_127": float(np.mean(np.abs(q) > 127.5)),
                     "beyond_255": float(np.mean(np.abs(q) > 254.5)),
                     "start_at_127": float(np.mean(np.abs(np.rint(q0)) >= 127)),
                     "max_code": float(np.abs(q).max()),
                     "displacement_rms_lsb": float(np.sqrt(np.mean((q - q0) ** 2)))})
    run = {"protocol": protocol, "model": model, "scheme": scheme, "seed": seed,
           "steps": steps, "seconds": round(time.time() - t0, 1), "layers": rows}
    if val > 0:
        xs = [data.to_model_input(ds.images[int(i)], inp) for i in val_idx]
        labels = [int(ds.labels[int(i)]) for i in val_idx]

        def accuracy() -> float:
            return sum(ft.predict(x) == y for x, y in zip(xs, labels)) / len(xs)

        trained = [var.numpy() for _, var, *_ in tensors]

        def clamped(which: set[int]) -> float:
            for n, ((_, var, one, _w0, _m), w) in enumerate(zip(tensors, trained)):
                var.assign(np.clip(w, -127.5 * one, 127.5 * one).astype(np.float32)
                           if n in which else w)
            return accuracy()

        run["val_samples"] = len(xs)
        run["val_accuracy"] = clamped(set())
        for n, r in enumerate(rows):
            r["val_accuracy_clamped"] = clamped({n})
        run["val_accuracy_all_clamped"] = clamped(set(range(len(rows))))
        clamped(set())
    return run


def render(*docs: dict) -> str:
    """One table over the runs of every file given (one command each); the clamped
    evaluations' column where the runs have them (--val)."""
    runs = [run for d in docs for run in d["runs"]]
    clamps = any("val_accuracy" in run for run in runs)
    lines = ["| protocol | model | scheme | layer | kind | to head | input channels trained | "
             "beyond +-127 LSB | beyond +-255 LSB | largest code | displacement (RMS LSB) | "
             "start at +-127 |"
             + (" fp32 accuracy, this layer clamped to +-127 (minus unclamped) |"
                if clamps else ""),
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if clamps
                                                                          else "")]
    for run in runs:
        base = run.get("val_accuracy")
        for r in run["layers"]:
            kind = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise",
                    "FULLY_CONNECTED": "fc"}.get(r["kind"], r["kind"])
            clamp = r.get("val_accuracy_clamped")
            lines.append(
                f"| {run['protocol']} | {run['model']} | {run['scheme']} | "
                f"{short(r['layer'])} | {kind} | "
                f"{r['to_head']} | {r['channels']}/{r['of']} | "
                f"{100 * r['beyond_127']:.2f}% | {100 * r['beyond_255']:.2f}% | "
                f"{r['max_code']:.0f} | {r['displacement_rms_lsb']:.2f} | "
                f"{100 * r['start_at_127']:.2f}% |"
                + ("" if not clamps else
                   f" {100 * clamp:.1f} ({100 * (clamp - base):+.1f}) |" if clamp is not None
                   else " - |"))
        if base is not None:
            lines.append(f"| {run['protocol']} | {run['model']} | {run['scheme']} | "
                         f"every layer above | | | | | | | | | "
                         f"{100 * run['val_accuracy_all_clamped']:.1f} "
                         f"({100 * (run['val_accuracy_all_clamped'] - base):+.1f}); "
                         f"unclamped {100 * base:.1f} |")
    seeds = sorted({run["seed"] for run in runs})
    steps = sorted({run["steps"] for run in runs})
    val = sorted({run.get("val_samples", 0) for run in runs})
    return (f"fp32, seed {'/'.join(map(str, seeds))}, "
            f"{'/'.join(map(str, steps))} steps; shares over each layer's trained weights, in "
            "LSBs of its own int8 grid"
            + (f"; accuracy in % on {'/'.join(str(v) for v in val if v)} validation samples"
               if clamps else "") + ".\n\n" + "\n".join(lines) + "\n")


def short(layer: str) -> str:
    """A layer's output tensor name without the model's prefix and the activation."""
    parts = layer.split("/")
    return parts[-2] if len(parts) > 1 else layer


mean_se = results.mean_se


def render_rule(t28: dict, t28_h2: dict, t_auto: dict, pa: dict, pa_h2: dict,
                pa_auto: dict) -> str:
    """augment --weight-headroom auto against the default (1), headroom 2 on every trained
    layer and fp32 from the input model, on the rows the rule changes: the person detector's
    transfer runs (transfer.py, round 28's files) and Table 1's (paper_accuracy.py); per row
    the accuracy per seed, mean +- SE, and paired by seed minus fp32 and minus the default."""
    import paper_accuracy as pa_mod
    import transfer
    qas = transfer.VARIANTS["qas"]
    rows: dict[tuple, dict[int, float]] = {}       # (model, scheme, run) -> seed -> %

    def add(model, scheme, run, r):
        rows.setdefault((model, scheme, run), {})[r["seed"]] = 100 * r["val_accuracy"]
    schemes = list(dict.fromkeys(r["scheme"] for r in t_auto["rows"]))
    for scheme in schemes:
        for r in t28["rows"]:
            if r["scheme"] == scheme and r["variant"] == qas and r["grad"] == "int8":
                add("person", scheme, "default", r)
        for r in t28["rows"]:
            if r["scheme"] == scheme and r["variant"] == transfer.VARIANTS["fp32"]:
                add("person", scheme, "fp32", r)
        for r in t28_h2["rows"]:
            if r["scheme"] == scheme and r["variant"].startswith(qas + ",") \
                    and r["grad"] == "int8":
                add("person", scheme, "headroom 2x", r)
        for r in t_auto["rows"]:
            if r["scheme"] == scheme:
                add("person", scheme, "headroom auto", r)
    default = ("qas", "int8", 12.0, True, 1.0)
    runs = {"default": default, "fp32": ("fp32", None, None, None, None),
            "headroom 2x": default[:4] + (2.0,), "headroom auto": default[:4] + ("auto",)}
    pairs = list(dict.fromkeys((r["model"], r["scheme"]) for r in pa_auto["runs"]))
    for doc in (pa, pa_h2, pa_auto):
        for r in doc["runs"]:
            if (r["model"], r["scheme"]) in pairs and r["steps"] == pa_auto["steps"] \
                    and r["val"] == pa_auto["val"] and r["seed"] in pa_auto["seeds"]:
                for name, c in runs.items():
                    if pa_mod.col(r) == c:
                        add(r["model"], r["scheme"], name, r)
    lines = ["| model | scheme | int8 + QAS with | accuracy per seed | mean +- SE | minus fp32 "
             "(paired) | minus the default (paired) |", "|---|---|---|---|---:|---:|---:|"]

    order = ["default", "headroom 2x", "headroom auto", "fp32"]
    for (model, scheme) in [("person", s) for s in schemes] + pairs:
        for run in order:
            by = rows.get((model, scheme, run))
            if not by:
                continue
            m, se = mean_se(list(by.values()))
            lines.append(
                f"| {model} | {scheme} | {run if run != 'fp32' else '(fp32)'} | "
                + " / ".join(f"{s}: {v:.1f}" for s, v in sorted(by.items()))
                + f" | {m:.2f}" + ("" if se is None else f" +- {se:.2f}")
                + f" | {results.paired_cell(by, rows.get((model, scheme, 'fp32'), {}))}"
                + f" | {results.paired_cell(by, rows.get((model, scheme, 'default'), {}))} |")
    return ("1000 steps, 3000 validation samples; "
            "accuracy in %. The default: --weight-headroom 1 (the input model's grids); fp32 "
            "starts from the input model.\n\n" + "\n".join(lines) + "\n")


# the growth alone (no --val) of every run, MobileNetV2's included: the first command
ALL_JSON = "weight_growth_all.json"
# MobileNetV2's clamped evaluations, a second command (the first stopped after four runs)
MBV2_JSON = "weight_growth_mbv2.json"
TABLES = {"weight-growth": ([JSON_NAME, MBV2_JSON], render),
          "weight-growth-all": ([ALL_JSON], render),
          "weight-headroom-auto": (["transfer_round28.json", "transfer_round28_h2.json",
                                    "transfer_round29_auto.json", "paper_accuracy_results.json",
                                    "paper_accuracy_weight_headroom.json",
                                    "paper_accuracy_weight_headroom_auto.json"], render_rule)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True,
                    help="comma-separated protocol:model:scheme (transfer:person:last:2, "
                         "transfer:person:sparse, paper:mcunet-5fps:99kb, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--val", type=int, default=0,
                    help="validation samples for the clamped evaluations (0: none)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    # "last:2" holds a colon, so runs are split on commas and then at most twice on colons
    try:
        runs = [parse_run(r) for r in args.runs.split(",")]
    except ValueError as e:
        sys.exit(str(e))
    if args.steps < 1:
        sys.exit(f"--steps must be >= 1, got {args.steps}")
    doc = {"args": vars(args) | {"json": str(args.json)}, "runs": []}
    for protocol, model, scheme in runs:
        try:
            r = measure(protocol, model, scheme, args.seed, args.steps, args.val)
        except ValueError as e:
            sys.exit(str(e))
        doc["runs"].append(r)
        print(f"{protocol} {model} {scheme}: {r['seconds']:.0f} s", flush=True)
        if args.json:
            # any file of the tables re-renders them when written into benchmarks/
            results.save(args.json, doc, args.json.name if args.json.name in
                         (ALL_JSON, MBV2_JSON) else JSON_NAME, TABLES)
    print(results.caption([doc]) + render(doc))


if __name__ == "__main__":
    main()
