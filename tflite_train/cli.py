"""Command-line interface: argument parsing and printing only; the work is elsewhere."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import TTError

EXIT_MISMATCH = 1      # verify ran and found differences
EXIT_ERROR = 2         # bad input (also argparse's code for bad usage)


def _load(path: str):
    from . import tflite_io
    graph = tflite_io.load(path)
    return graph, Path(path).read_bytes()


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def cmd_inspect(args) -> int:
    from .report import summarize
    graph, data = _load(args.model)
    info = summarize(graph, len(data))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    shape = lambda s: "x".join(str(d) for d in s) or "scalar"   # noqa: E731
    print(f"{args.model}: {info['totals']['operators']} operators")
    for io in ("inputs", "outputs"):
        for t in info[io]:
            print(f"  {io[:-1]:6} {t['name']}  {shape(t['shape'])} {t['dtype']}")
    header = (f"{'#':>3}  {'op':<18} {'input':<14} {'output':<14} {'params':>9} "
              f"{'bytes':>9} {'MACs':>11} {'act.bytes':>10} {'live':>9}  train")
    print(header)
    print("-" * len(header))
    for r in info["operators"]:
        ins = shape(r["inputs"][0]) if r["inputs"] else "-"
        outs = shape(r["outputs"][0]) if r["outputs"] else "-"
        print(f"{r['index']:>3}  {r['op']:<18} {ins:<14} {outs:<14} {_fmt_int(r['params']):>9} "
              f"{_fmt_int(r['param_bytes']):>9} {_fmt_int(r['macs']):>11} "
              f"{_fmt_int(r['activation_bytes']):>10} {_fmt_int(r['live_bytes']):>9}  "
              f"{'yes' if r['trainable_through'] else 'no'}")
    t = info["totals"]
    print("-" * len(header))
    print(f"parameters          {_fmt_int(t['params'])} ({_fmt_int(t['param_bytes'])} bytes)")
    print(f"MACs                {_fmt_int(t['macs'])}")
    print(f"flash (model file)  {_fmt_int(t['flash_bytes'])} bytes")
    print(f"inference arena     {_fmt_int(t['inference_arena_bytes'])} bytes "
          f"(TFLM greedy plan, this operator order; persistent op data not included)")
    print(f"peak live tensors   {_fmt_int(t['inference_peak_live_bytes'])} bytes "
          f"at operator {t['inference_peak_op']}")
    print("train: whether a gradient can flow through the operator "
          "(no backward rules exist yet)" if not any(
              r["trainable_through"] for r in info["operators"]) else
          "train: whether a gradient can flow through the operator")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify
    graph, data = _load(args.model)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  sample {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    result = verify(graph, data, samples=args.samples, seed=args.seed, progress=progress)
    compared = [d for d in result.tensors]
    print(f"{args.model}: numpy forward vs TFLM interpreter, {result.samples} seeded random "
          f"input(s) (seed {args.seed}), {len(compared)} tensors compared")
    by_index = {d.tensor: d for d in result.tensors}
    for k, i in enumerate(result.outputs):
        d = by_index[i]
        print(f"  output {k} ({d.name}): {d.differing} of {d.elements} elements differ, "
              f"largest difference {d.max_diff:g}")
    bad = [d for d in result.tensors if d.differing]
    for d in bad[:10]:
        where = f"operator {d.producer}" if d.producer is not None else "graph input"
        print(f"  tensor {d.tensor} ({d.name}, from {where}): {d.differing} differ, "
              f"largest {d.max_diff:g}")
    if len(bad) > 10:
        print(f"  ... and {len(bad) - 10} more tensors differ")
    total = sum(d.elements for d in result.tensors)
    print(f"  total: {result.differing} of {total} elements differ, largest difference "
          f"{result.max_diff:g}")
    print("bit-exact" if result.exact else "NOT bit-exact")
    return 0 if result.exact else EXIT_MISMATCH


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tflite-train",
        description="On-device training for int8 TensorFlow Lite models on microcontrollers.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("inspect", help="operators, shapes, parameters, MACs, inference memory")
    s.add_argument("model", help="an int8 .tflite model")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("verify", help="compare the numpy forward with the TFLM interpreter, "
                                      "tensor by tensor")
    s.add_argument("model", help="an int8 .tflite model")
    s.add_argument("--samples", type=_positive_int, default=10,
                   help="number of random inputs (default 10)")
    s.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    s.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TTError as exc:
        if args.debug:
            raise
        print(f"tflite-train: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tflite-train: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
