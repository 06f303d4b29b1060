"""How narrow the accumulators a two-pass int8 input gradient keeps could be (bwd-cache,
round 7): for every 1x1 and depthwise input gradient of a training step, on the second
step's real calls of the C engine (seeded random image and label, as benchmarks/mcu_step.py),
the largest magnitude A, and the share of dx's elements and of its positions (a position:
all ci channels) whose accumulator fits int16, and for depthwise layers whose tap sum
T = acc / mult[c] (the sum of dy * w over the taps, exact: tt_kernels.h's factoring) does.

    nice .venv/bin/python benchmarks/kept_width.py [--models mcunet,mbv2]

A kept form narrower than int32 pays only where whole positions fit (a second pass
recomputes whole positions), so the "positions" columns decide.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import codegen as cg  # noqa: E402
import test_cortex_m7 as rig  # noqa: E402
from mcu_step import step_calls  # noqa: E402
from tflite_train import tflite_io  # noqa: E402

GRADS = ("tt_conv2d_input_grad_s8", "tt_conv2d_input_grad_split_s8",
         "tt_depthwise_conv2d_input_grad_s8")


def accumulators(call) -> tuple[str, np.ndarray, np.ndarray | None] | None:
    """(shape label, acc [positions, ci], T [positions, ci] or None) of one call, or None
    for a convolution that is not 1x1."""
    a = dict(zip(rig.signature_params(call.name), call.args))

    def arr(name, dtype):
        return np.frombuffer(a[name].before, dtype).astype(np.int64)

    def num(name):
        v = a[name]
        return int(v.value if hasattr(v, "value") else v)
    n, oh, ow, kh, kw, h, wd = (num(k) for k in ("n", "oh", "ow", "kh", "kw", "h", "wd"))
    depthwise = call.name.startswith("tt_depthwise")
    co = num("c") * num("m") if depthwise else num("co")
    dy = arr("dy", np.int8).reshape(n, oh, ow, co)
    if a["mask"] is not None:
        bits = np.unpackbits(np.frombuffer(a["mask"].before, np.uint8), bitorder="little")
        dy = dy * bits[:dy.size].reshape(dy.shape)
    mult = arr("w_mult", np.int16)
    if not depthwise:
        if kh != 1 or kw != 1:
            return None
        ci = num("ci")
        if call.name.endswith("split_s8"):
            k = num("k")
            w = arr("w_lo", np.int8).reshape(co, k)
            if ci > k:
                w = np.concatenate([w, arr("w_hi", np.int8).reshape(co, ci - k)], 1)
        else:
            w = arr("w", np.int8).reshape(co, ci)
        return f"1x1 {h}x{wd} {co}->{ci}", (dy.reshape(-1, co) * mult) @ w, None
    if num("m") != 1:
        return None
    sh, sw, _, _, pt, pl = np.frombuffer(a["win"].before, np.int32)
    w = arr("w", np.int8).reshape(kh, kw, co)
    t = np.zeros((n, h, wd, co), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            for oy in range(oh):
                iy = oy * sh + ky - pt
                for ox in range(ow):
                    ix = ox * sw + kx - pl
                    if 0 <= iy < h and 0 <= ix < wd:
                        t[:, iy, ix] += dy[:, oy, ox] * w[ky, kx]
    t = t.reshape(-1, co)
    return f"dw {kh}x{kw}/{sh} {h}x{wd}x{co}", t * mult, t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mcunet,mbv2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = cg.training_model(Path(tmp), name, cg.MODELS[name][2], "int8")
            print(f"\n**{cg.MODELS[name][0]} 99kb, int8 gradients**\n")
            print("| layer | A (bits) | acc in int16: elements | positions "
                  "| T in int16: elements | positions |")
            print("|---|---:|---:|---:|---:|---:|")
            for call in step_calls(tflite_io.load(model)):
                got = accumulators(call) if call.name in GRADS else None
                if got is None:
                    continue
                label, acc, t = got
                top = int(np.abs(acc).max())
                fit = np.abs(acc) <= 32767
                row = (f"| {label} | {top} ({top.bit_length() + 1}) | {fit.mean():.3f} "
                       f"| {fit.all(-1).mean():.3f} |")
                if t is not None:
                    tfit = np.abs(t) <= 32767
                    row += f" {tfit.mean():.3f} | {tfit.all(-1).mean():.3f} |"
                else:
                    row += " | |"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
