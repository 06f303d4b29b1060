"""Pointwise (1x1) convolutions with pre-widened filters on the Cortex-M7 rig: instructions per
MAC of every 1x1 layer of the person detector and MCUNet-5FPS, tt_conv2d_s8 (int8 filter)
against tt_conv2d_wide_s8 (the filter also pre-widened, as the generated program stores a
frozen one: tflite_train/codegen/layouts.py), DSP build, both bit-identical to the host.

QEMU mps2-an500 with -icount shift=0 counts instructions, not cycles; each call is rounded to
40 (mcu_forward.py's timing). Usage: nice .venv/bin/python benchmarks/pointwise_wide.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mcu_forward as mf  # noqa: E402  (puts tests/ on the path too)


MAX_WIDE = 96 * 1024


def pointwise_calls(graph):
    """([(op, Call of tt_conv2d_s8, Call of tt_conv2d_wide_s8)], the shapes left out) for
    every 1x1 CONV_2D at stride 1 of whole groups of four input channels (more than 16) and
    at most MAX_WIDE bytes pre-widened, on one forward pass's real inputs."""
    from test_cortex_m7_forward import recording
    from tflite_train.codegen import layouts
    from tflite_train.runtime import c_forward
    out, skipped = [], []
    for k, call in mf.layer_calls(graph):
        op = graph.operators[k]
        if call.name != "tt_conv2d_s8":
            continue
        w = graph.tensors[op.inputs[1]]
        # (8 and 16 channels take the column kernels, which read no pre-widened rows)
        if w.shape[1:3] != (1, 1) or w.shape[3] % 4 or w.shape[3] <= 16 or \
                op.options.get("stride_h", 1) != 1:
            continue
        if 2 * w.size > MAX_WIDE:      # the rig's replay copies every array into its SRAM
            skipped.append(mf.layer_shape(graph, k))
            continue
        p, m, sh, xd, x, fd, f, b, yd, y = call.args
        wide = layouts.widened(w.data)
        recorded = []
        with recording(recorded):
            c_forward.call("tt_conv2d_wide_s8", c_forward.ConvParams.from_buffer_copy(p.before),
                           np.frombuffer(m.before, np.int32).copy(),
                           np.frombuffer(sh.before, np.int8).copy(),
                           c_forward.Dims.from_buffer_copy(xd.before),
                           np.frombuffer(x.before, np.int8).copy(),
                           c_forward.Dims.from_buffer_copy(fd.before),
                           np.frombuffer(f.before, np.int8).copy(), wide,
                           None if b is None else np.frombuffer(b.before, np.int32).copy(),
                           c_forward.Dims.from_buffer_copy(yd.before),
                           np.empty(len(y.before), np.int8))
        assert recorded[0].args[-1].after == y.after, "tt_conv2d_wide_s8 != tt_conv2d_s8"
        out.append((k, call, recorded[0]))
    return out, skipped


def main() -> None:
    models = [(title.split(" (")[0], graph) for title, graph in mf.rig_models()]
    print("| model | layer | int8 filter | pre-widened |\n|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for title, graph in models:
            calls, skipped = pointwise_calls(graph)
            flat = [(k, c) for k, a, b in calls for c in (a, b)]
            counts = mf.rig_instructions(flat, Path(tmp))
            total = [0, 0, 0]
            for i, (k, _, _) in enumerate(calls):
                macs = mf.describe(graph, k)[1]
                before, after = counts[2 * i], counts[2 * i + 1]
                total = [total[0] + before, total[1] + after, total[2] + macs]
                print(f"| {title} | {mf.layer_shape(graph, k)} | {before / macs:.3f} | "
                      f"{after / macs:.3f} |")
            print(f"| {title} | the {len(calls)} layers | {total[0]:,} ({total[0] / total[2]:.3f})"
                  f" | {total[1]:,} ({total[1] / total[2]:.3f}) |")
            if skipped:
                print(f"\n{title}: not measured (over {MAX_WIDE // 1024} KB pre-widened, more "
                      f"than the replay's SRAM holds): {', '.join(skipped)}\n")


if __name__ == "__main__":
    main()
