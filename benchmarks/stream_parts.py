"""Where a stream's instructions go (tt_stream.h), on the Cortex-M7 rig: each stream of a
generated training program (MCUNet-5FPS, MobileNetV2-w0.35; 99kb, int8 gradients, smallest
arena), called as the program calls it (its pack and pre-widened filters, real filters and
quantization, a random input), against its parts called as the stream calls them: its first
layer's row calls (one a depthwise output row: tt_conv2d_rows_call_s8 on the input rows
they read, or tt_conv2d_wide_s8 on a pre-widened filter) and its projection's (one an
output row); the rest is the depthwise rows and the stream's own work (moving the window,
per-row set-up). Beside them the same layers called whole (the three kernels on whole
tensors, the depthwise layer unpacked), which is what streaming costs against.

Every part is one timed call on the rig (DSP build, -O2), multiplied by how many the stream
makes; a middle row's call stands for all of them (the first and last rows read padding).
QEMU mps2-an500 with -icount shift=0 counts instructions, not cycles; each call is rounded
to 40. Usage: nice .venv/bin/python benchmarks/stream_parts.py [--models mcunet,mbv2] [--ops 3,9]
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codegen as cg  # noqa: E402
import mcu_forward as mf  # noqa: E402  (puts tests/ on the path too)

TICK = mf.TICK


def _resolve(graph, k: int, arg, rng):
    """A program call's argument as rig memory: tensors by their data (an activation: random
    int8), scratch zeroed, structs and arrays as they are."""
    from test_cortex_m7 import Memory
    from tflite_train.runtime.kernel_calls import In, Scratch
    t = None
    if isinstance(arg, In) and not arg.value:
        t = graph.operators[k].inputs[arg.k]
    elif hasattr(arg, "tensor"):
        t = arg.tensor
    elif type(arg).__name__ == "Out":
        t = graph.operators[k].outputs[arg.k]
    if t is not None:
        if t < 0:
            return None
        tensor = graph.tensors[t]
        # a trained bias (int32, in RAM: no data) as zeros, not as int8 bytes: 4 random bytes
        # a bias (and a quarter of them read past the tensor) put every channel outside the
        # one-multiply form, requantized in C (op 31's projection: 0.83 M against 0.23 M)
        data = tensor.data if tensor.data is not None else \
            rng.integers(-128, 128, tensor.shape).astype(np.int8) if tensor.dtype == "int8" \
            else np.zeros(tensor.shape, tensor.dtype)
        return Memory(np.ascontiguousarray(data).tobytes(), b"")
    if isinstance(arg, Scratch):
        return Memory(bytes(arg.nbytes), b"")
    if arg is None:
        return None
    data = arg.tobytes() if isinstance(arg, np.ndarray) else bytes(arg)
    return Memory(data, b"")


def _call(name: str, args):
    from test_cortex_m7 import Call
    return Call(name, args, None, b"")


def stream_parts(program, k: int, rng) -> dict:
    """{part: (calls, one call or None)} of the stream at operator k."""
    from test_cortex_m7 import Memory
    from tflite_train.runtime import c_forward, stream_args
    D, P = c_forward.Dims, c_forward.ConvParams
    graph, call = program.graph, program.steps[k].call
    args = [_resolve(graph, k, a, rng) for a in call.args]
    pair = call.name.startswith("tt_pointwise_depthwise")
    raw = stream_args.named(call.name, call.args)        # the planner's values
    arg = stream_args.named(call.name, args)             # as rig memory
    f = "pw" if pair else "a"                            # the first layer's prefix
    a, x_dims, af_dims, mid = raw[f], raw["input_dims"], raw[f"{f}_filter_dims"], raw["mid_dims"]
    dw = raw["dw"]
    dout = raw["output_dims"] if pair else raw["dw_output_dims"]
    a_wide = arg.get(f"{f}_wide")
    pw_wide = None if pair else arg.get("pw_wide")
    first = [arg[f], arg[f"{f}_multiplier"], arg[f"{f}_shift"]]

    def m(struct):
        return Memory(bytes(struct), b"")

    def zeros(n):
        return Memory(bytes(n), b"")

    def rand(n):
        return Memory(rng.integers(-128, 128, n).astype(np.int8).tobytes(), b"")

    parts = {"stream": (1, _call(call.name, args))}
    # the first layer's rows a middle depthwise row computes: dw stride rows of mid, read
    # from the input rows they need (no top padding left in the middle)
    n = min(dw.stride_h, mid.h)
    rows_in = (n - 1) * a.stride_h + (af_dims.h - 1) * a.dilation_h + 1
    q = P.from_buffer_copy(bytes(a))
    q.pad_top = 0
    win, out = m(D(1, rows_in, x_dims.w, x_dims.c)), m(D(1, n, mid.w, mid.c))
    a_args = [m(q), *first[1:], win, rand(rows_in * x_dims.w * x_dims.c),
              arg[f"{f}_filter_dims"], arg[f"{f}_filter"]]
    tail = [arg[f"{f}_bias"], out, zeros(n * mid.w * mid.c)]
    rows = (_call("tt_conv2d_wide_s8", [*a_args, a_wide, *tail]) if a_wide is not None
            else _call("tt_conv2d_rows_call_s8", [*a_args, *tail]))
    parts["first layer, row calls"] = (-(-mid.h // n), rows)
    parts["first layer, whole"] = (1, _call("tt_conv2d_s8", [
        *first, arg["input_dims"], arg["input"], arg[f"{f}_filter_dims"], arg[f"{f}_filter"],
        arg[f"{f}_bias"], m(mid), zeros(mid.h * mid.w * mid.c)]))
    parts["depthwise, whole"] = (1, _call("tt_depthwise_conv2d_s8", [
        arg["dw"], arg["dw_multiplier"], arg["dw_shift"], m(mid), rand(mid.h * mid.w * mid.c),
        arg["dw_filter_dims"], arg["dw_filter"], arg["dw_bias"], m(dout),
        zeros(dout.h * dout.w * dout.c)]))
    if not pair:
        y = raw["output_dims"]
        pw = [arg["pw"], arg["pw_multiplier"], arg["pw_shift"]]
        row_in, row_out = m(D(1, 1, dout.w, dout.c)), m(D(1, 1, y.w, y.c))
        p_args = [*pw, row_in, rand(dout.w * dout.c), arg["pw_filter_dims"], arg["pw_filter"]]
        proj = (_call("tt_conv2d_wide_s8", [*p_args, pw_wide, arg["pw_bias"], row_out,
                                            zeros(y.w * y.c)]) if pw_wide is not None
                else _call("tt_conv2d_s8", [*p_args, arg["pw_bias"], row_out, zeros(y.w * y.c)]))
        parts["projection, row calls"] = (y.h, proj)
        parts["projection, whole"] = (1, _call("tt_conv2d_s8", [
            *pw, m(dout), rand(dout.h * dout.w * dout.c), arg["pw_filter_dims"], arg["pw_filter"],
            arg["pw_bias"], m(y), zeros(y.h * y.w * y.c)]))
    return parts


def rig_counts(calls, tmp: Path) -> list[int]:
    """Instructions of each call on the rig (DSP build), one timed program per call."""
    import test_cortex_m7_forward as F
    from test_cortex_m7 import Program
    src = F.c_forward.MICRO_KERNELS / "src"
    F.SOURCES = [*dict.fromkeys([*F.SOURCES, src / "tt_stream.c", src / "tt_row_source.c"])]
    counts = []
    for i, call in enumerate(calls):
        program = Program(timed=True)
        program.add(call)
        text = program.source().replace(
            '#include "tt_kernels.h"', '#include "tt_kernels.h"\n#include "tt_forward.h"\n'
            '#include "tt_stream.h"\n#include "tt_fwd_conv_rows.h"')
        res = F.run_rig(F.build(tmp, f"part{i}", text, ("-I", str(src))), icount=True)
        found = re.findall(r"^T0 (\d+)$", res.stdout + res.stderr, re.M)
        if res.returncode != 0 or not found:
            raise SystemExit(f"the rig failed: {(res.stdout + res.stderr)[-800:]}")
        counts.append(int(found[0]) * TICK)
    return counts


def shapes(program, k: int) -> str:
    from tflite_train.runtime import stream_args
    call = program.steps[k].call
    c = stream_args.named(call.name, call.args)
    pair = call.name.startswith("tt_pointwise_depthwise")
    f = "pw" if pair else "a"
    x, af, mid, df = c["input_dims"], c[f"{f}_filter_dims"], c["mid_dims"], c["dw_filter_dims"]
    text = (f"{x.h}x{x.w}x{x.c} -{af.h}x{af.w}/{c[f].stride_h}-> {mid.c} "
            f"-dw {df.h}x{df.w}/{c['dw'].stride_h}-> ")
    y = c["output_dims"]
    if pair:
        return text + f"{y.h}x{y.w}x{y.c}"
    return text + f"{c['dw_output_dims'].c} -1x1-> {y.h}x{y.w}x{y.c}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mcunet,mbv2")
    ap.add_argument("--ops", default="", help="comma-separated operators (default: every stream)")
    args = ap.parse_args()
    from tflite_train import codegen
    rng = np.random.default_rng(0)
    print("| model | op | layers | stream | first layer: row calls (whole) | projection: row "
          "calls (whole) | depthwise rows and the rest (whole) |\n|---|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            label, _, sparse, _ = cg.MODELS[name]
            model = cg.training_model(work, name, str(sparse), "int8")
            program = codegen.load(model, 0)
            streams = [s.op for s in program.steps if s.call is not None and
                       s.call.name.startswith(("tt_pointwise_depthwise",
                                               "tt_conv_depthwise_pointwise"))]
            for k in streams:
                if args.ops and str(k) not in args.ops.split(","):
                    continue
                parts = stream_parts(program, k, rng)
                counts = rig_counts([c for _, c in parts.values()], work)
                got = {p: n * c for (p, (n, _)), c in zip(parts.items(), counts)}
                first, proj = got["first layer, row calls"], got.get("projection, row calls", 0)
                rest = got["stream"] - first - proj
                whole_proj = got.get("projection, whole")
                print(f"| {label} | {k} | {shapes(program, k)} | {got['stream'] / 1e6:.3f} M | "
                      f"{first / 1e6:.3f} M ({got['first layer, whole'] / 1e6:.3f}) | "
                      + (f"{proj / 1e6:.3f} M ({whole_proj / 1e6:.3f})" if whole_proj else "-")
                      + f" | {rest / 1e6:.3f} M ({got['depthwise, whole'] / 1e6:.3f}) |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
