"""The depthwise forward kernels on the Cortex-M7 rig, layer by layer, in the three ways the
generated programs call them: a whole layer out of place (tt_depthwise_conv2d_s8), in place
(tt_depthwise_conv2d_inplace_s8), and one output row per call on a window of the input rows
it reads, as the streams of tt_stream.c do (depthwise_row: each call packs every channel
group's filter and constants again, so the per-call set-up is paid per row).

    nice .venv/bin/python benchmarks/depthwise_rows.py [--model mcunet|mbv2] [--json FILE]

The calls are a forward pass of the imported model (../shared/models/tiny-training) through
--engine c, recorded on the host (mcu_forward.layer_calls); the row calls are made on the host
from each out-of-place call's input and checked against its output. All are replayed on QEMU's
mps2-an500 (-icount shift=0) with the DSP versions, outputs compared bit for bit with the
host's (the portable kernels); SysTick counts instructions (40 a tick), not cycles. Prints
instructions per MAC of each depthwise layer in the three ways; the row calls are summed over
the layer's rows (the window copies of the stream are not counted)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))        # this checkout's tflite_train and kernels

import mcu_forward as MF  # noqa: E402

MODELS = {"mcunet": "mcunet-5fps.pkl", "mbv2": "mbv2-w0.35.pkl"}


def row_calls(call) -> list:
    """The out-of-place depthwise `call` one output row per call, as tt_stream.c's
    depthwise_row makes them (the window: the input rows the row reads; pad_top what lies
    above the image), recorded; each row checked against the whole call's output."""
    from test_cortex_m7_forward import recording
    from tflite_train.runtime import c_forward as CF
    arg = [a.before if hasattr(a, "before") else a for a in call.args]
    p = CF.ConvParams.from_buffer_copy(arg[0])
    ind, fd, od = (CF.Dims.from_buffer_copy(arg[k]) for k in (3, 5, 8))
    x = np.frombuffer(arg[4], np.int8).reshape(ind.h, ind.w, ind.c)
    m, s = np.frombuffer(arg[1], np.int32).copy(), np.frombuffer(arg[2], np.int8).copy()
    f = np.frombuffer(arg[6], np.int8).copy()
    b = None if arg[7] is None else np.frombuffer(arg[7], np.int32).copy()
    y = np.frombuffer(call.args[9].after, np.int8).reshape(od.h, od.w, od.c)
    span = (fd.h - 1) * p.dilation_h + 1
    calls: list = []
    with recording(calls):
        for oy in range(od.h):
            top = oy * p.stride_h - p.pad_top
            r0, r1 = max(top, 0), min(top + span, ind.h)
            q = CF.ConvParams.from_buffer_copy(bytes(p))
            q.pad_top = -top if top < 0 else 0
            out = np.zeros((1, od.w, od.c), np.int8)
            CF.call("tt_depthwise_conv2d_s8", q, m, s, CF.Dims(1, r1 - r0, ind.w, ind.c),
                    np.ascontiguousarray(x[r0:r1]), fd, f, b, CF.Dims(1, 1, od.w, od.c), out)
            assert np.array_equal(out[0], y[oy]), oy
    return calls


def measure(model: str) -> list[dict]:
    from tflite_train.importers.tiny_training import import_pkl
    graph = import_pkl(MF.SHARED / "tiny-training" / MODELS[model])
    calls = [(k, c) for k, c in MF.layer_calls(graph) if "depthwise" in c.name]
    rows = [(k, r) for k, c in calls if c.name == "tt_depthwise_conv2d_s8"
            for r in row_calls(c)]
    with tempfile.TemporaryDirectory() as tmp:
        counts = MF.rig_instructions(calls + rows, Path(tmp))
    layers: dict = {}
    for i, ((k, c), n) in enumerate(zip(calls + rows, counts)):
        label, macs = MF.describe(graph, k)
        way = ("rows" if i >= len(calls) else
               "in place" if c.name == "tt_depthwise_conv2d_inplace_s8" else "whole")
        row = layers.setdefault(k, {"op": k, "layer": label, "shape": MF.layer_shape(graph, k),
                                    "macs": macs, "whole": 0, "in place": 0, "rows": 0})
        row[way] += n
    return list(layers.values())


def render(model: str, layers: list[dict]) -> str:
    out = [f"{model}: DSP instructions per MAC of each depthwise layer (QEMU counts "
           "instructions, not cycles)", "",
           "| op | layer | input -> output | MACs | whole | in place | one row a call |",
           "|---:|---|---|---:|---:|---:|---:|"]
    for r in layers:
        out.append(f"| {r['op']} | {r['layer']} | {r['shape']} | {r['macs']:,} | "
                   f"{r['whole'] / r['macs']:.2f} | {r['in place'] / r['macs']:.2f} | "
                   f"{r['rows'] / r['macs']:.2f} |")
    tot = {w: sum(r[w] for r in layers) / 1e6 for w in ("whole", "in place", "rows")}
    out.append("")
    out.append("totals: " + ", ".join(f"{w} {v:.2f} M" for w, v in tot.items()))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="mcunet")
    ap.add_argument("--json", type=Path, help="write the per-layer instructions there")
    a = ap.parse_args()
    if not (MF.SHARED / "tiny-training" / MODELS[a.model]).exists():
        raise SystemExit("../shared/models/tiny-training is missing: nothing to measure")
    layers = measure(a.model)
    print(render(a.model, layers))
    if a.json:
        a.json.write_text(json.dumps(layers, indent=1))


if __name__ == "__main__":
    main()
