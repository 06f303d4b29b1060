"""Command-line interface: argument parsing and printing only; the work is elsewhere."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Batch-1 training multiplies small matrices: BLAS threads cost more than they give (the
# person detector trains about 2x faster on one thread). Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from . import __version__
from .errors import TTError
from .runtime import DEFAULT_ENGINE, ENGINES
from .training_ops import MAX_BATCH
from .headroom import MAX_WEIGHT_HEADROOM

EXIT_MISMATCH = 1      # verify ran and found differences
EXIT_ERROR = 2         # bad input (also argparse's code for bad usage)
EXIT_PIPE = 141        # the reader of our output went away (128 + SIGPIPE, as a shell reports)
ENGINE_DEFAULT_HELP = (f"default {DEFAULT_ENGINE}; numpy, with a one-line notice, where the "
                       "C kernels cannot be built (no C compiler); an --engine c that cannot "
                       "be built is an error")


def _load(path: str):
    """The validated graph and the file's bytes (for its size and identity; TFLM is handed
    the model written from the validated graph, runtime/tflm.py)."""
    from . import tflite_io
    graph = tflite_io.load(path)
    return graph, Path(path).read_bytes()


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3):]


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
    print(f"arena plan          {_fmt_int(t['inference_arena_bytes'])} bytes "
          f"(TFLM greedy plan, this operator order; persistent op data and variables "
          f"not included)")
    print(f"peak live tensors   {_fmt_int(t['inference_peak_live_bytes'])} bytes "
          f"at operator {t['inference_peak_op']}")
    print("train: whether a gradient can flow through the operator "
          "(no backward rules exist yet)" if not any(
              r["trainable_through"] for r in info["operators"]) else
          "train: whether a gradient can flow through the operator")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify
    graph, _ = _load(args.model)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  sample {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    result = verify(graph, samples=args.samples, seed=args.seed, progress=progress)
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


def cmd_import(args) -> int:
    from .importers.tiny_training import import_pkl
    from .tflite_io import save
    out = Path(args.output)
    if out.resolve() == Path(args.model).resolve():
        raise TTError("the output would overwrite the input; choose another -o")
    graph = import_pkl(args.model, args.padding)
    from . import ops
    ops.validate(graph)
    save(graph, out)
    print(f"{args.model} -> {out}: {len(graph.operators)} operators, input "
          f"{'x'.join(map(str, graph.tensors[graph.inputs[0]].shape))} int8, output "
          f"{'x'.join(map(str, graph.tensors[graph.outputs[0]].shape))} "
          f"({out.stat().st_size:,} bytes)")
    return 0


def cmd_plan(args) -> int:
    from . import alias_plan, memory, ops, tflm_memory
    graph, data = _load(args.model)
    ops.validate(graph)
    p = memory.plan(graph)
    target = tflm_memory.account(graph, len(data), args.target)
    kinds = [op.kind for op in graph.operators]
    buffers = memory.tflm_buffers(graph)
    if alias_plan.aliases(graph):
        table, offline_bytes, order = alias_plan.plan(graph)
    else:
        offsets, offline_bytes, order = memory.offline_plan(buffers)
    wheel_tail = memory.tflm_persistent_bytes(graph, data, p.training) \
        if args.target.startswith("wheel") else None
    info = {"model": args.model, "training": p.training, "target": args.target,
            "offline_plan_bytes": offline_bytes, "offline_plan_order": order,
            "arena_bytes": target["arena"], "offline_plan_used": target["offline_plan"],
            "in_place_ops": target["in_place_ops"], "aliased_ops": target["aliased"],
            "peak_op": p.peak_op, "peak_op_kind": kinds[p.peak_op] if kinds else None,
            "arena_at_peak": p.peak_parts,
            "trainable_bytes": target["trained"], "optimizer_bytes": target["optimizer"],
            "accumulator_bytes": target["accumulators"],
            "persistent_bytes": target["persistent"],
            "persistent_parts": target["persistent_parts"],
            "total_bytes": target["sram_total"], "flash": target["flash"],
            "budgets": target["budgets"],
            "timeline": [{"op": k, "kind": kinds[k], **t} for k, t in enumerate(p.timeline)],
            "codegen": _codegen_plan(graph, data) if p.training else None,
            "codegen_input_rows": _codegen_plan(graph, data, True) if p.training else None}
    if wheel_tail is not None:
        info["wheel_measured_persistent_bytes"] = wheel_tail
    given = _flash_record(graph)
    if given is not None:           # augment's --flash-budget and what it gave up for it
        info["budgets"] = {**info["budgets"], "flash": given["budget"]}
        info["flash_budget"] = given
    if args.write_offline:           # after everything that can refuse the model
        out = Path(args.write_offline)
        if out.resolve() == Path(args.model).resolve():
            raise TTError("the output would overwrite the input model; choose another path")
        from .tflite_io import save
        graph.metadata[memory.OFFLINE_KEY] = (
            alias_plan.metadata(table) if alias_plan.aliases(graph)
            else memory.offline_metadata(graph, buffers, offsets))
        save(graph, out)
    if args.plot:
        from .plot import memory_chart
        what = "training" if p.training else "inference"
        memory_chart(p, kinds, f"{Path(args.model).name}: {what} SRAM per operator",
                     Path(args.plot))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _print_plan(args, info, p, kinds)
    return 0


def _flash_record(graph) -> dict | None:
    """augment's record of the flash budget (metadata memory.flash_budget), if any. A record
    we did not write (malformed, or of the wrong types anywhere) is not shown: the budget
    is advice, and the rest of the plan does not depend on it."""
    from .augment import METADATA_KEY
    try:
        meta = json.loads(graph.metadata.get(METADATA_KEY, b"{}"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    count = lambda n: isinstance(n, int) and not isinstance(n, bool) and n >= 0  # noqa: E731
    record = meta.get("memory") if isinstance(meta, dict) else None
    record = record.get("flash_budget") if isinstance(record, dict) else None
    if not isinstance(record, dict):
        return None
    given = record.get("given_up")
    ok = count(record.get("budget")) and record["budget"] > 0 \
        and count(record.get("sram_cost")) and isinstance(given, dict) \
        and all(isinstance(layers, dict) and all(map(count, layers.values()))
                for layers in given.values())
    return record if ok else None


def _print_plan(args, info: dict, p, kinds: list[str]) -> None:
    from . import memory
    kb = lambda n: f"{n / 1024:8.1f} KB"                      # noqa: E731
    where = {"cortex-m7": "TFLM on the Cortex-M7 (32-bit structs, TFLM 90b983c2b)",
             "wheel-x86_64": "the pinned tflite-micro wheel on this host (64-bit)"}[args.target]
    print(f"{args.model}: {'training' if p.training else 'inference'} model, "
          f"{len(kinds)} operators; {where}")
    budget = info["budgets"]
    print(f"SRAM                 {kb(info['total_bytes'])}  (sum of the parts below; budget "
          f"{kb(budget['sram']).strip()})")
    if info["offline_plan_used"]:
        how = (f"our offline plan in the model, {info['aliased_ops']} output(s) over their "
               "input, proved safe")
    else:
        how = "TFLM's greedy plan of the file's order" + (
            f" ({info['in_place_ops']} in-place op(s) run apart: no offline plan)"
            if info["in_place_ops"] else "")
    print(f"  arena              {kb(info['arena_bytes'])}  {how}")
    if not info["offline_plan_used"]:
        print(f"    live at the peak, operator {p.peak_op} ({kinds[p.peak_op]}):")
        for c in memory.CATEGORIES:
            print(f"      {c:<17}{kb(p.peak_parts.get(c, 0))}")
    print(f"  TFLM persistent    {kb(info['persistent_bytes'])}  modelled (tflm_memory.py):")
    for part, n in info["persistent_parts"].items():
        print(f"      {part:<17}{kb(n)}")
    if "wheel_measured_persistent_bytes" in info:
        m = info["wheel_measured_persistent_bytes"]
        print(f"      (measured in the wheel: {'n/a' if m is None else f'{m:,} bytes'})")
    print(f"  trained params     {kb(info['trainable_bytes'])}  variables")
    print(f"  optimizer state    {kb(info['optimizer_bytes'])}  momentum buffers, the head's "
          "rounding residual")
    if info["accumulator_bytes"]:
        print(f"  accumulators       {kb(info['accumulator_bytes'])}  the batch's float32 "
              "gradient sums (augment --batch)")
    f = info["flash"]
    given = info.get("flash_budget")
    print(f"flash                {kb(f['total'])}  (budget {kb(budget['flash']).strip()}"
          + (", augment's --flash-budget" if given is not None else "")
          + (f"; OVER by {kb(f['total'] - budget['flash']).strip()}"
             if f["total"] > budget["flash"] else "") + ")")
    print(f"  training model     {kb(f['model'])}  the .tflite")
    print(f"  TFLM + our code    {kb(f['tflm_code'])}  reference kernels, our glue and kernels "
          "(measured on the Cortex-M7 rig: benchmarks/tflm_rig.py; tflm_memory.py)")
    if given is not None and given["given_up"]:
        layers = [(what, layer, n) for what, done in given["given_up"].items()
                  for layer, n in done.items()]
        print(f"  given up for it    {len(layers)} conversion(s), "
              f"{kb(given['sram_cost']).strip()} more SRAM:")
        for what, layer, n in layers:
            print(f"      {_short(one_line(layer), 48):<48} {one_line(what)}, {n:,} B")
    lower = max(sum(t.values()) for t in p.timeline) if p.timeline else 0
    print(f"offline plan         {kb(info['offline_plan_bytes'])}  "
          f"({info['offline_plan_order']}; the live peak without in-place operators is "
          f"{kb(lower).strip()})")
    cg = info["codegen"]
    if cg is not None and "error" in cg:
        print(f"generated program    n/a ({cg['error']})")
    elif cg is not None:
        print(f"generated program    {kb(cg['total_bytes'])}  (`codegen`: arena "
              f"{kb(cg['arena_bytes']).strip()} with {cg['in_place_ops']} operators in place, "
              f"+ trained parameters {kb(cg['trained_parameter_bytes']).strip()} "
              f"({cg['split_filters']} filters split) + momentum "
              f"{kb(cg['momentum_bytes']).strip()}"
              + (f" + accumulators {kb(cg['accumulator_bytes']).strip()}"
                 if cg.get("accumulator_bytes") else "")
              + (f" + residual {kb(cg['residual_bytes']).strip()}"
                 if cg.get("residual_bytes") else "")
              + "; no interpreter data; stack not included)")
    rows = info.get("codegen_input_rows")
    if rows is not None and "error" not in rows:
        print(f"  sample row by row  {kb(rows['total_bytes'])}  (`codegen --input rows`: arena "
              f"{kb(rows['arena_bytes']).strip()}, the sample not in it: the caller's frame or "
              "a row reader)")
    if args.write_offline:
        print(f"wrote {args.write_offline} with the offline plan as {memory.OFFLINE_KEY} "
              "metadata")
    if args.timeline:
        print(f"{'op':>4}  {'kind':<32}" + "".join(f"{c[:11]:>12}" for c in memory.CATEGORIES))
        for row in info["timeline"]:
            print(f"{row['op']:>4}  {row['kind']:<32}"
                  + "".join(f"{row[c]:>12,}" for c in memory.CATEGORIES))
    if args.plot:
        print(f"wrote {args.plot}")


def _codegen_plan(graph, data: bytes, input_rows: bool = False) -> dict:
    """The generated program's SRAM by its plan (what `codegen` builds, with `--input rows`
    when `input_rows`), or why there is none."""
    from .codegen import CodegenError, planned_sram
    try:
        return planned_sram(graph, data, input_rows)
    except CodegenError as exc:
        return {"error": str(exc)}


def cmd_compare(args) -> int:
    from dataclasses import asdict

    from . import data as datasets
    from .autodiff import Hyper
    from .compare import compare
    graph, _ = _load(args.model)                # one clear error for a bad model, up front
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if not schemes:
        raise TTError("--schemes is empty")
    dataset = None
    if args.data:
        dataset = datasets.load(args.data, graph.tensors[graph.inputs[0]].shape)
    hyper = Hyper(lr=args.lr, bias_lr=args.bias_lr)
    engine = None
    if dataset is not None:
        from .runtime import host_engine
        engine = host_engine(args.engine)
    rows = compare(Path(args.model), schemes, args.num_classes, hyper, dataset, args.steps,
                   engine=engine)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    kb = lambda n: f"{n / 1024:,.1f}"              # noqa: E731
    head = (f"{'scheme':<24} {'trained':>9} {'saved KB':>9} {'SRAM KB':>9} {'in-place':>9} "
            f"{'MACs/step':>13} {'flash KB':>9}" + ("  accuracy" if dataset else ""))
    print(head)
    print("-" * len(head))
    for r in rows:
        acc = "" if r.accuracy is None else f"  {100 * r.accuracy:7.1f}%"
        print(f"{_short(r.scheme, 24):<24} {r.trained_params:>9,} {kb(r.saved_bytes):>9} "
              f"{kb(r.peak_separate):>9} {kb(r.peak_fused):>9} {r.macs:>13,} "
              f"{kb(r.flash_bytes):>9}{acc}")
    print("SRAM = planned arena (TFLM greedy plan of the order augment writes) + trainable "
          "parameters + optimizer "
          "state, with separate gradient and update ops; in-place = with fused in-place "
          "updates (augment's default). Persistent op data is not included.")
    return 0


def _lr_auto(args, graph, hyper):
    """`--lr auto`: the range test on --data at hyper.batch, with a progress bar and a line
    per candidate."""
    from tqdm import tqdm

    from . import data as datasets
    from . import lr as lr_rule
    from .runtime import host_engine
    dataset = datasets.load(args.data, graph.tensors[graph.inputs[0]].shape)
    factors = lr_rule.AUTO_FACTORS
    engine = host_engine(None)
    per = f"updates of batch {hyper.batch}" if hyper.batch > 1 else "steps"
    print(f"--lr auto: {len(factors)} candidate rates (more past an end that wins) x "
          f"{args.lr_test_steps} {per} on {dataset.name} (engine {engine}, seed {hyper.seed})",
          flush=True)
    bar = tqdm(total=len(factors) * args.lr_test_steps, unit="step", disable=None,
               file=sys.stderr, leave=False)
    def starting(f):
        if f not in factors:                    # a candidate past an end: the bar grows
            bar.total += args.lr_test_steps
            bar.refresh()

    def report(c):
        loss = "diverged" if c["diverged"] else f"held-out loss {c['held_out_loss']:.4f}"
        line = f"  model rates x {c['factor']:g}: {loss}"
        bar.write(line) if not bar.disable else print(line, flush=True)

    try:
        test = lr_rule.range_test(graph, args.scheme, args.num_classes, hyper, dataset,
                                  steps=args.lr_test_steps, factors=factors, engine=engine,
                                  report=report, progress=bar.update, starting=starting)
    finally:
        bar.close()
    print(f"--lr auto chose the model-derived rates x {test.factor:g}")
    return test


def cmd_augment(args) -> int:
    import copy
    from collections import Counter
    from dataclasses import replace

    from .augment import augment
    from .autodiff import Hyper
    from .memory import training_parts
    from .scheme import trained_weights
    from .tflite_io import save
    graph, _ = _load(args.model)
    out = Path(args.output)
    if out.resolve() == Path(args.model).resolve():
        raise TTError("the output would overwrite the input model; choose another -o")
    auto = args.lr == "auto"
    if auto and not args.data:
        raise TTError("--lr auto needs --data D: the data the learning rate is tuned on")
    if args.data and not auto:
        raise TTError("--data is only used by --lr auto (train takes the data)")
    if auto and args.bias_lr is not None:
        raise TTError("--lr auto tunes the bias rates too; drop --bias-lr")
    hyper = Hyper(lr=None if auto else args.lr, bias_lr=args.bias_lr, momentum=args.momentum,
                  qas=not args.no_qas, rounding=args.rounding, seed=args.seed,
                  decay_steps=args.lr_decay_steps, half_life=args.lr_half_life, grad=args.grad,
                  grad_rounding=args.grad_rounding, batch=args.batch,
                  weight_headroom=args.weight_headroom,
                  head_residual=args.head_residual == "on")
    tune = None
    if auto:
        pristine = copy.deepcopy(graph)

        def tune(batch):
            # at the batch the model gets (augment chooses it without --batch)
            test = _lr_auto(args, copy.deepcopy(pristine), replace(hyper, batch=batch))
            return test.layer_lrs, test.record
    from . import tflm_memory
    from .augment import MemoryOptions
    memory = MemoryOptions(split_filters=not args.no_split_filters, in_place=not args.no_in_place,
                           flash_requant=not args.keep_builtins, stream=not args.no_stream,
                           flash_budget=args.flash_budget or tflm_memory.FLASH_BUDGET)
    result = augment(graph, args.scheme, args.num_classes, hyper, fuse=not args.no_fuse,
                     memory=memory, tune=tune)
    hyper = result.hyper
    g = result.graph
    print(f"{args.model} -> {out}")
    print(f"scheme {result.scheme.name}"
          + (f", new {args.num_classes}-class head" if result.head is not None else "")
          + f"; QAS {'on' if hyper.qas else 'off'}, " + _describe_rates(result.metadata)
          + (f", momentum {hyper.momentum:g}" if hyper.momentum else "")
          + (f", cosine decay over {hyper.decay_steps} steps" if hyper.decay_steps else
             f", inverse-time decay (half at step {hyper.effective_half_life})"
             if hyper.effective_half_life else ", constant rates")
          + f", rounding {hyper.rounding}, seed {hyper.seed}"
          + (f", batch {hyper.batch} (one update per {hyper.batch} samples)"
             if hyper.batch > 1 else "")
          + (f"; int8 gradients ({hyper.grad_rounding} rounding)" if hyper.grad == "int8"
             else "; float32 gradients"))
    rescaled = result.metadata.get("weight_headroom")
    if rescaled is not None:
        layers = rescaled["layers"]
        print(f"weight headroom {rescaled['factor']:g}x"
              + (" (auto: the trained layers feeding the classifier)"
                 if rescaled.get("rule") else "") + ": the int8 grids of "
              f"{len(layers)} trained pretrained layer{'s' if len(layers) != 1 else ''} made "
              f"{rescaled['factor']:g}x coarser (scale x {rescaled['factor']:g}, codes "
              f"rounded: {sum(r['zeroed'] for r in layers):,} nonzero weights became 0); "
              "the forward at step 0 differs from the input model's")
    if result.batch_choice is not None and result.batch_choice.why:
        print(f"batch {result.batch_choice.batch} (default): {result.batch_choice.why}")
    print(f"  {'op':>4}  {'kind':<18} {'layer (output tensor)':<44} {'weights':>16} {'bias':>5} "
          f"{'params':>8} {'lr':>9} {'bias lr':>9}")
    total_w = total_b = 0
    filter_channels = {r["layer"]: r["filter_channels"] for r in result.metadata["trained"]}
    for k, upd in sorted(result.backward.trained.items()):
        op = result.backward.forward_ops[k]
        w = g.tensors[op.inputs[1]]
        n_w = 0
        if upd.weight_channels:
            n_w = trained_weights(w, upd.weight_channels)
        n_b = g.tensors[op.inputs[2]].size if upd.bias else 0
        total_w, total_b = total_w + n_w, total_b + n_b
        name = "new head" if k == result.head else g.tensors[op.outputs[0]].name
        chans = (f"{upd.weight_channels}/{filter_channels[g.tensors[op.outputs[0]].name]} ch"
                 if upd.weight_channels else "-")
        lr_w, lr_b = hyper.rates(k)
        print(f"  {k:>4}  {op.kind:<18} {_short(name, 44):<44} {chans:>16} "
              f"{'yes' if upd.bias else '-':>5} {n_w + n_b:>8,} "
              f"{f'{lr_w:.3g}' if upd.weight_channels else '-':>9} "
              f"{f'{lr_b:.3g}' if upd.bias else '-':>9}")
    parts = training_parts(g)
    print(f"trained parameters: {total_w + total_b:,} ({total_w:,} weights, {total_b:,} biases)")
    for u in result.unshared:
        n = len(u["copies"])
        print(f"shared tensor {_short(u['tensor'], 44)} (read by {u['readers']} operators): "
              f"{n} {'copy' if n == 1 else 'copies'}, so that each layer training it has its own")
    print(f"saved activations: {parts.saved_bytes:,} bytes in {len(parts.saved)} tensors "
          f"({parts.mask_bytes:,} bytes of 1-bit masks)")
    counts = Counter(op.kind for op in result.backward.backward_ops)
    print(f"backward ops emitted: {len(result.backward.backward_ops)} + loss + "
          f"{len(result.backward.save_ops)} save ops")
    for kind, n in sorted(counts.items()):
        print(f"  {n:>4} x {kind}")
    _print_memory_choices(result)
    save(g, out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(g.operators)} operators)")
    f = result.memory.flash
    if f is not None and not f["fits"]:
        print(f"tflite-train: warning: {out} + TFLM's code ({f['tflm_code']:,} B) is "
              f"{out.stat().st_size + f['tflm_code']:,} B of flash, over --flash-budget "
              f"{f['budget']:,} B even with no requantization in flash and no split filter",
              file=sys.stderr)
    return 0


def _print_memory_choices(result) -> None:
    """What augment's memory passes chose (passes/), and what each saved."""
    m = result.memory
    kb = lambda n: f"{n / 1024:.1f} KB"                      # noqa: E731
    print("memory (TFLM on the Cortex-M7; `tflite-train plan` for the whole account):")
    if m.split:
        print(f"  trained input channels only in SRAM, the rest in flash: {len(m.split)} "
              f"layer(s), {kb(sum(s.sram_saved for s in m.split))} less SRAM "
              "(--no-split-filters: whole filters)")
        for s in m.split:
            print(f"    {_short(s.layer, 56):<56} {s.trained}/{s.channels} input channels")
    else:
        print("  no filter trains only some of its input channels: nothing to split")
    if m.streamed:
        print(f"  expansions computed row by row (pointwise + strided depthwise as one op): "
              f"{len(m.streamed)}, arena peak {kb(sum(c.arena_saved for c in m.streamed))} "
              "lower (--no-stream: none)")
        for c in m.streamed:
            print(f"    {_short(c.layer, 56):<56} {kb(c.expansion_bytes)} -> "
                  f"{kb(c.window_bytes)} window")
    else:
        print("  no expansion computed row by row lowers the arena's peak: none")
    if m.in_place:
        print(f"  outputs written over inputs: {len(m.in_place)} operator(s), arena peak "
              f"{kb(sum(c.arena_saved for c in m.in_place))} lower (--no-in-place: none)")
        for c in m.in_place:
            print(f"    {_short(c.layer, 56):<56} {c.kind}")
    else:
        print("  no in-place operator lowers the arena's peak: none used")
    if m.flash_requant:
        print(f"  requantization in flash (our forward ops): {len(m.flash_requant)} layer(s), "
              f"{kb(sum(c.sram_saved for c in m.flash_requant))} less SRAM, "
              f"{kb(sum(c.flash_added for c in m.flash_requant))} more flash "
              "(--keep-builtins: TFLM's kernels)")
    if m.pruned_bytes:
        print(f"  unused constants dropped (the replaced classifier): {kb(m.pruned_bytes)} "
              "less flash")
    f = m.flash
    if f is not None and m.given_up:
        print(f"  given up to keep the model + TFLM's code ({kb(f['tflm_code'])}) within "
              f"--flash-budget {kb(f['budget'])}: {len(m.given_up)} conversion(s), "
              f"{kb(f['sram_cost'])} more SRAM")
        for g in m.given_up:
            print(f"    {_short(g['layer'], 56):<56} {g['pass']}: {g['sram_bytes']:,} B of "
                  f"SRAM for about {g['flash_bytes']:,} B of flash")


def _describe_rates(meta: dict) -> str:
    rule = meta["lr_rule"]
    if rule["rule"] == "given":
        return f"lr {rule['lr']:g}, bias lr {rule['bias_lr']:g}"
    how = {"model-derived": "derived from the model (README: how the default is chosen)",
           "range test": f"model-derived x {rule.get('chosen_factor', 1):g} (--lr auto)"}
    return f"per-layer rates {how.get(rule['rule'], rule['rule'])}"


def cmd_train(args) -> int:
    from tqdm import tqdm

    from . import data as datasets
    from .runtime import host_engine
    from .train import save_state, train
    graph, model = _load(args.model)
    from .augment import training_metadata
    training_metadata(graph)                     # a clear error for non-training models
    dataset = datasets.load(args.data, graph.tensors[graph.inputs[0]].shape)
    from .train import batch_engine
    engine = host_engine(batch_engine(graph, args.engine))
    bar = tqdm(total=args.steps, unit="step", disable=None, file=sys.stderr, leave=False) \
        if args.steps else None
    progress = bar.update if bar else None

    def report(p):
        line = f"step {p.step:>6}  epoch {p.epoch:6.3f}  train loss {p.train_loss:.4f}"
        if p.val_accuracy is not None:
            line += f"  val accuracy {100 * p.val_accuracy:.1f}%"
        (bar.write(line) if bar else print(line, flush=True))

    def warn(line):
        line = f"tflite-train: warning: {line}"
        (bar.write(line, file=sys.stderr) if bar else print(line, file=sys.stderr, flush=True))

    from .train import model_batch
    batch = model_batch(graph)
    print(f"training {args.model} on {dataset.name} ({len(dataset):,} samples, "
          f"{len(dataset.classes)} classes), engine {engine}"
          + (f", batch {batch}: a step is one update of {batch} samples" if batch > 1 else ""),
          flush=True)
    if bar is None and args.epochs is None:
        args.epochs = 1.0
    trainer, history = train(graph, dataset, steps=args.steps, epochs=args.epochs,
                             val_split=args.val_split, val_max=args.val_samples,
                             seed=args.seed, progress=progress, report=report,
                             engine=engine, warn=warn)
    if bar:
        bar.close()
    first, last = history.points[0], history.points[-1]
    acc = "-" if last.val_accuracy is None else f"{100 * last.val_accuracy:.1f}%"
    print(f"done: {history.steps} steps"
          + (f" ({history.steps * history.batch:,} samples)" if history.batch > 1 else "")
          + f" on {history.train_samples:,} training samples; "
          f"loss {first.train_loss:.4f} -> {last.train_loss:.4f}; validation accuracy {acc} "
          f"on {history.val_samples} samples (chance {100 / trainer.classes:.1f}%)")
    if args.output:
        save_state(args.output, trainer, history, model)
        print(f"wrote trained parameters to {args.output}")
    return 0


def cmd_header(args) -> int:
    from .c_header import write
    n = write(args.model, args.output, args.array)
    print(f"wrote {args.output}: inputs, outputs, arena size and {n} trained tensors"
          + (f", model bytes as {args.array}[]" if args.array else ""))
    return 0


def cmd_export(args) -> int:
    from .export import write
    done = write(args.model, args.state, args.output)
    g, source = done["graph"], done["source"]
    shape = lambda t: "x".join(map(str, t.shape))                # noqa: E731
    what = source["kind"] + (f" sequence {source['sequence']}" if "sequence" in source else "")
    steps = f", {source['steps']} training steps" if source.get("steps") is not None else ""
    print(f"{args.model} + {args.state} ({what}{steps}) -> {args.output}")
    print(f"  {done['trained']} trained tensors folded in as constants; {done['operators']} "
          f"operators, input {shape(g.tensors[g.inputs[0]])} "
          f"{g.tensors[g.inputs[0]].dtype}, output {shape(g.tensors[g.outputs[0]])} "
          f"{g.tensors[g.outputs[0]].dtype}; {done['bytes']:,} bytes")
    return 0


def cmd_search(args) -> int:
    from .search import Options, evolution, search
    from .search.space import ratio_number
    if args.ray and args.workers != 1:
        raise TTError("--workers is for the local process pool; with --ray the cluster's "
                      "CPUs run the fine-tuning")
    opts = Options(budget=args.budget, num_classes=args.num_classes, steps=args.steps,
                   val_samples=args.val_samples, val_split=args.val_split, seed=args.seed,
                   workers=args.workers, ray=args.ray, target=args.target,
                   cache=Path(args.cache) if args.cache else None, max_macs=args.max_macs,
                   engine=args.engine,
                   evolution=evolution.Settings(population=args.population,
                                                generations=args.generations,
                                                patience=args.patience))
    done = search(args.model, args.data, args.output, opts)
    kb = lambda n: f"{n / 1024:.1f}"                          # noqa: E731
    pp = lambda v: "" if v is None else f"{100 * v:+.1f}"     # noqa: E731
    print(f"contribution analysis of {args.model} on {args.data}: {len(done.table)} "
          f"candidates, {done.runs_needed} runs within budget ({done.runs_new} new, the rest "
          f"from {done.cache_path}); {args.steps} steps each, seed {args.seed}, accuracy on "
          f"{args.val_samples} held-out samples at most")
    head = (f"{'run':<16} {'what is trained (besides the head)':<44} {'memory KB':>9} "
            f"{'accuracy':>8} {'gain pp':>8}")
    print(head)
    print("-" * len(head))
    for e in done.table:
        acc = "" if e.accuracy is None else f"{100 * e.accuracy:.1f}%"
        note = "" if e.status == "measured" else f"  ({e.status})"
        print(f"{e.run.key:<16} {_short(e.description, 44):<44} {kb(e.cost.total):>9} "
              f"{acc:>8} {pp(e.gain):>8}{note}")
    print(f"gain: against the head alone (bias runs) or against the bias run of the same "
          f"depth (weight runs); baseline accuracy {100 * done.baseline_accuracy:.1f}%")
    p = done.point
    print(f"search: {done.generations} generations, {done.schemes_planned} schemes planned "
          f"(the rest from the cache); minimum {kb(done.minimum)} KB")
    print(f"best scheme: biases of the last {p.k} layers"
          + "".join(f", layer {q} weights x{ratio_number(r)}" for q, r in p.weights)
          + f"; summed gain {100 * done.score:+.1f} pp")
    print(f"memory {done.cost.total:,} bytes ({kb(done.cost.total)} KB, budget "
          f"{kb(args.budget)} KB, target {args.target}); {done.cost.macs:,} MACs per step")
    print(f"wrote {args.output}; use it with: tflite-train augment {args.model} "
          f"--num-classes {done.scheme['search']['num_classes']} --scheme {args.output}")
    return 0


def _byte_size(text: str) -> int:
    """100KB, 256K, 1M, 4MiB, 262144 -> bytes (K and M are 1024 and 1024^2); search's
    --budget and codegen's --sram-budget/--flash-budget."""
    import re
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)(i?[bB])?\s*", text)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 100KB or 1M, got {text!r}")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def _add_search_parser(sub) -> None:
    s = sub.add_parser("search", help="contribution analysis on your data and an "
                                      "evolutionary search for the sparse-update scheme "
                                      "that fits a memory budget")
    s.add_argument("model", help="an int8 .tflite model")
    s.add_argument("--data", required=True,
                   help="fashion-mnist, an .npz with x and y, or a folder of class folders")
    s.add_argument("--budget", required=True, type=_byte_size, metavar="SIZE",
                   help="SRAM the training model may use, as `plan` totals it for --target "
                        "(100KB, 256K, 1M; K = 1024 bytes)")
    s.add_argument("-o", "--output", required=True,
                   help="the JSON scheme to write (for augment --scheme)")
    s.add_argument("--num-classes", type=_positive_int, default=None,
                   help="classes of the new head (default: the data's)")
    s.add_argument("--steps", type=_positive_int, default=500,
                   help="training steps of each analysis run (default 500)")
    s.add_argument("--val-samples", type=_positive_int, default=1000,
                   help="held-out samples each run is scored on, at most (default 1000)")
    s.add_argument("--val-split", type=_unit_float, default=0.1,
                   help="fraction of the data held out (default 0.1)")
    s.add_argument("--seed", type=_seed, default=0,
                   help="seed of the runs (head, data order, rounding) and of the evolution")
    s.add_argument("--workers", type=_positive_int, default=1,
                   help="fine-tuning runs in parallel on this machine (default 1)")
    s.add_argument("--ray", metavar="ADDRESS",
                   help="run the fine-tuning on this Ray cluster (needs the ray extra)")
    s.add_argument("--target", choices=["tflm", "codegen"], default="tflm",
                   help="whose memory plan the budget is for (default tflm)")
    s.add_argument("--cache", metavar="FILE",
                   help="the file finished runs and planned schemes are kept in (default: "
                        "one per model under ~/.cache/tflite-train/search)")
    s.add_argument("--max-macs", type=_positive_int, default=None,
                   help="also keep a training step's MACs at most this")
    s.add_argument("--engine", choices=ENGINES, default=None,
                   help=f"the host training engine of the runs ({ENGINE_DEFAULT_HELP})")
    s.add_argument("--population", type=_positive_int, default=40,
                   help="schemes per generation of the evolution (default 40)")
    s.add_argument("--generations", type=_positive_int, default=25,
                   help="generations of the evolution (default 25)")
    s.add_argument("--patience", type=_positive_int, default=5,
                   help="stop the evolution after this many generations without a better "
                        "scheme (default 5)")
    s.set_defaults(func=cmd_search)


def cmd_codegen(args) -> int:
    from . import codegen
    from .codegen import rig
    if args.steps is not None and not args.rig:
        raise TTError("--steps runs on the rig: add --rig")
    if args.kernels not in rig.KERNELS:
        raise TTError(f"--kernels must be dsp or portable, not {args.kernels!r}")
    if args.rig_api is not None and not args.rig:
        raise TTError("--rig-api chooses the rig harness's API: add --rig")
    if args.kernels != "dsp" and not args.rig:
        raise TTError("--kernels chooses the rig's build: add --rig (the folder's Makefile "
                      "and CMakeLists.txt take TFLITE_TRAIN_KERNELS)")
    from .train import BATCH_ENGINES, batch_engine
    if "codegen" not in BATCH_ENGINES:
        batch_engine(_load(args.model)[0], "codegen", "codegen")
    program, m = codegen.generate(args.model, args.output,
                                  rig_steps=(args.steps or 3) if args.rig else None,
                                  sram_budget=args.sram_budget, flash_budget=args.flash_budget,
                                  seed=args.seed, data=args.data, kernels=args.kernels,
                                  arena_limit=args.arena_limit or 0,
                                  input_rows=args.input == "rows", rig_api=args.rig_api,
                                  lean_stack=args.lean_stack)
    plan = program.plan
    if args.json:
        info = {"model": args.model, "output": args.output,
                "planned": {"arena": plan.arena_bytes, "arena_order": plan.order,
                            "trained_parameters": sum(program.param_bytes(v)
                                                      for _, v in program.params),
                            "split_filters": len(program.splits),
                            "in_place_ops": sum(not r.view for r in plan.aliases),
                            "views": sum(r.view for r in plan.aliases)}}
        if m is not None:
            measured = m.to_json()
            info["planned"].update(measured.pop("planned"))
            info.update(measured)
        print(json.dumps(info, indent=2))
        return 0 if m is None or m.identical_to_engine_c is not False else EXIT_MISMATCH
    kb = lambda n: f"{n / 1024:,.1f} KB"                      # noqa: E731
    inplace = sum(not r.view for r in plan.aliases)
    print(f"{args.model} -> {args.output}/: tt_model.c, tt_model.h, Makefile, CMakeLists.txt, "
          "README.md" + (", rig/" if m is not None else ""))
    print(f"planned SRAM: {rig.sram_parts(program)}; {inplace} operators in place, "
          f"{sum(r.view for r in plan.aliases)} views, {len(program.splits)} split filters")
    if m is None:
        return 0
    s, f = m.sram_bytes, m.flash_bytes
    same = {True: "bit-identical to --engine c", False: "DIFFERS from --engine c",
            None: "not compared"}[m.identical_to_engine_c]
    print(f"Cortex-M7 rig (QEMU mps2-an500, -mfpu=fpv5-sp-d16, {m.kernels} kernels), "
          f"{len(m.losses)} training steps, {same}:")
    print(f"  SRAM   {kb(s['total']):>10} = arena {kb(s['arena'])} + other .data/.bss "
          f"{kb(s['data_bss'])} + stack {kb(s['stack'])}  (budget {kb(m.sram_budget)})")
    print(f"  flash  {kb(f['total']):>10} = code {kb(f['code'])} + model constants "
          f"{kb(f['model'])}" + (f" + .data {kb(f['data_init'])}" if f["data_init"] else "")
          + f"  (budget {kb(m.flash_budget)})")
    print(f"  instructions per training step {m.instructions_per_step:,}, per inference "
          f"{m.instructions_per_inference:,} (QEMU counts instructions, not cycles)")
    print("  losses " + " ".join(f"{v:.6g}" for v in m.losses))
    for line in m.differences:
        print(f"  differs: {line}")
    return 0 if m.identical_to_engine_c is not False else EXIT_MISMATCH


def _add_codegen_parser(sub) -> None:
    s = sub.add_parser("codegen", help="a standalone C training program (no interpreter, a "
                                       "static memory plan); --rig measures it on the "
                                       "Cortex-M7")
    s.add_argument("model", help="a training model written by `augment`")
    s.add_argument("-o", "--output", required=True,
                   help="the folder to write (replaced if it is an earlier codegen output)")
    s.add_argument("--rig", action="store_true",
                   help="also build it for the Cortex-M7 rig (QEMU mps2-an500, fpv5-sp-d16), "
                        "run training steps there, measure SRAM, flash and instructions and "
                        "check the run against --engine c")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="training steps on the rig (default 3)")
    s.add_argument("--kernels", default="dsp", metavar="{dsp,portable}",
                   help="the rig's build of the kernels that have Cortex-M DSP versions: "
                        "those (default) or their portable C99 (same bits)")
    s.add_argument("--sram-budget", type=_byte_size, default=None, metavar="SIZE",
                   help="SRAM the linker allows (default 256K; the rig has 4M)")
    s.add_argument("--flash-budget", type=_byte_size, default=None, metavar="SIZE",
                   help="flash the linker allows (default 1M; the rig has 4M)")
    s.add_argument("--arena-limit", type=_byte_size, default=None, metavar="SIZE",
                   help="let the arena grow to SIZE for speed: int8 input gradients in one "
                        "pass (an int32 scratch) wherever it stays within (default: the "
                        "smallest arena decides); the DSP kernels' staging in the arena "
                        "stays within it too")
    s.add_argument("--lean-stack", action="store_true",
                   help="build the DSP kernels with smaller stack buffers (the pointwise "
                        "input gradient's staging 3 KB, the stem's im2col without widened "
                        "rows): about 1 KB less stack for a few tenths of a million more "
                        "instructions a step; the same bits")
    s.add_argument("--input", choices=["arena", "rows"], default="arena",
                   help="arena (default): the sample is copied into the arena (or written "
                        "there, tt_model_input()); rows: it is never in the arena, the first "
                        "layer reads it row by row, in place from the caller's sample "
                        "(tt_train_step) or from a row reader (tt_train_step_rows: a ring of "
                        "the rows it needs); refused when the backward needs the whole sample")
    s.add_argument("--rig-api", choices=["whole", "rows"], default=None,
                   help="the rig harness's API: whole (tt_train_step) or rows "
                        "(tt_train_step_rows; the default with --input rows)")
    s.add_argument("--data", help="train on the first samples of this dataset (train's "
                                  "--data spellings) instead of seeded random ones")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the random samples")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_codegen)


def _ranged(convert, ok, rule: str):
    """An argparse type: `convert` the text, then require `ok(value)` (`rule` says what)."""
    noun = "an integer" if convert is int else "a number"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


_positive_float = _ranged(float, lambda v: 0 < v < float("inf"), "a positive number")
_unit_float = _ranged(float, lambda v: 0 <= v < 1, "in [0, 1)")
_positive_int = _ranged(int, lambda v: v >= 1, "at least 1")


def _lr_value(text: str):
    if text == "auto":
        return text
    try:
        return _positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number or auto, got {text!r}") \
            from None
_seed = _ranged(int, lambda v: 0 <= v <= 0xFFFFFFFF, "in 0..4294967295")
_batch = _ranged(int, lambda v: 1 <= v <= MAX_BATCH, f"in 1..{MAX_BATCH}")
_headroom_factor = _ranged(float, lambda v: 1 <= v <= MAX_WEIGHT_HEADROOM,
                          f"in [1, {MAX_WEIGHT_HEADROOM:g}]")


def _headroom(text: str):
    if text == "auto":
        return text
    try:
        return _headroom_factor(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto or a number in "
                                         f"[1, {MAX_WEIGHT_HEADROOM:g}], got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from .augment import DEFAULT_BATCH
    from .lr import COSINE_WEIGHT_BOOST, HALF_LIFE, HALF_LIFE_BOOST
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

    s = sub.add_parser("plan", help="SRAM of a model: peak and its parts, per-operator "
                                    "timeline, chart")
    s.add_argument("model", help="an inference or training .tflite")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--timeline", action="store_true", help="print bytes alive per operator")
    s.add_argument("--plot", metavar="FILE.png", help="draw memory over operators")
    s.add_argument("--write-offline", metavar="OUT.tflite",
                   help="write a copy of the model with our offline arena plan embedded as "
                        "OfflineMemoryAllocation metadata (TFLM then uses it)")
    s.add_argument("--target", choices=["cortex-m7", "wheel-x86_64"], default="cortex-m7",
                   help="whose TFLM: a 32-bit Cortex-M7 build (default), or the pinned "
                        "64-bit wheel our tools run (then also measured)")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("compare", help="update schemes side by side: trained parameters, "
                                       "memory, MACs, flash (and accuracy with --data)")
    s.add_argument("model", help="an int8 .tflite model")
    s.add_argument("--schemes", default="full,bias-only,last:2",
                   help="comma-separated schemes (full, bias-only[:K], last:N, FILE.json)")
    s.add_argument("--num-classes", type=_positive_int, default=None,
                   help="give each variant a new N-class head")
    s.add_argument("--data", help="also train each variant on this data and report accuracy")
    s.add_argument("--steps", type=_positive_int, default=200,
                   help="training steps per variant with --data (default 200)")
    s.add_argument("--lr", type=_positive_float, default=None,
                   help="one weight learning rate (default: per-layer rates derived from "
                        "each variant's model, as augment)")
    s.add_argument("--bias-lr", type=_positive_float, default=None)
    s.add_argument("--engine", choices=ENGINES, default=None,
                   help=f"the host training engine with --data ({ENGINE_DEFAULT_HELP})")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("import", help="convert a tiny-training .pkl model into an int8 "
                                      ".tflite")
    s.add_argument("model", help="a tiny-training .pkl (torch-style zip of numpy arrays)")
    s.add_argument("-o", "--output", required=True, help="the .tflite to write")
    s.add_argument("--padding", choices=["kernel", "pad"], default="kernel",
                   help="strided convs: SAME padding with a zero-grown kernel (default; no "
                        "activation copy) or an explicit PAD + VALID conv")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("augment", help="write a training model: forward + pruned backward "
                                       "graph + QAS update ops")
    s.add_argument("model", help="an int8 .tflite model")
    s.add_argument("-o", "--output", required=True, help="the training model to write")
    s.add_argument("--num-classes", type=_positive_int, default=None,
                   help="replace the classifier with a new N-class head (always trained)")
    s.add_argument("--scheme", default="bias-only",
                   help="full, bias-only[:K], last:N or a .json scheme file (default bias-only)")
    s.add_argument("--lr", type=_lr_value, default=None,
                   help="weight learning rate of every layer, or `auto` (a short range test "
                        "on --data). Default: per-layer rates derived from the model, each "
                        "tensor moving a fixed fraction of its norm per step (README)")
    s.add_argument("--bias-lr", type=_positive_float, default=None,
                   help="bias learning rate of every layer (default: with --lr, lr / 100; "
                        "otherwise derived per layer like the weights')")
    s.add_argument("--data", help="with --lr auto: the data to tune the learning rate on "
                                  "(as train's --data)")
    s.add_argument("--lr-test-steps", type=_positive_int, default=100, metavar="N",
                   help="with --lr auto: training steps (updates of the batch the model gets) "
                        "per candidate rate (default 100)")
    s.add_argument("--momentum", type=_unit_float, default=0.0, help="SGD momentum, [0, 1)")
    s.add_argument("--batch", type=_batch, default=None, metavar="B",
                   help="gradient accumulation: each update op sums the gradients of B "
                        "samples in a float32 accumulator (4 bytes a trained parameter) and "
                        "updates once with their mean; train --steps then counts updates. "
                        f"Default: {DEFAULT_BATCH} where the scheme trains no pretrained "
                        "weight and the model with its accumulators fits 256 KB of SRAM "
                        "under TFLM, else 1 (an update per sample)")
    s.add_argument("--lr-decay-steps", type=_seed, default=0, metavar="N",
                   help="cosine-decay both learning rates to 0 over N training steps "
                        "(instead of the default inverse-time decay; model-derived rates then "
                        "start at their constant-rate values, the pretrained weights' at up "
                        f"to {COSINE_WEIGHT_BOOST:g}x where the scheme trains few of them)")
    s.add_argument("--lr-half-life", type=_seed, default=None, metavar="T",
                   help="inverse-time decay lr * T / (T + step): the rates halve at step T "
                        f"(default {HALF_LIFE} unless --lr-decay-steps; model-derived rates "
                        f"then start at {HALF_LIFE_BOOST:g}x their constant-rate values); 0: "
                        "a constant rate")
    s.add_argument("--rounding", choices=["nearest", "stochastic"], default="stochastic",
                   help="how fractional integer updates are rounded (default stochastic: "
                        "sub-LSB updates then survive on average)")
    s.add_argument("--seed", type=_seed, default=0,
                   help="seed of the new head's weights and of stochastic rounding")
    s.add_argument("--no-qas", action="store_true",
                   help="plain SGD on the integer parameters (the baseline QAS fixes)")
    s.add_argument("--grad", default="int8", metavar="{int8,float32}",
                   help="activation gradients: int8 (default) with a per-tensor scale found "
                        "at run time and exact int32 sums, or float32 (the same accuracy "
                        "within the benchmark's errors, 4x the gradient memory)")
    s.add_argument("--grad-rounding", default="nearest", metavar="{nearest,stochastic}",
                   help="how int8 gradients are rounded: nearest (default; no random "
                        "stream to keep) or stochastic (unbiased, one stream per op)")
    s.add_argument("--weight-headroom", type=_headroom, default="auto", metavar="H",
                   help="make the int8 grids of the pretrained weights the scheme trains H "
                        "times coarser (scale x H, codes rounded half away from zero; their "
                        "biases likewise), so that training can grow them past their initial "
                        "range instead of saturating at +-127 (the new head has its own 12x "
                        "grid). The training model's forward then differs from the input "
                        "model's at step 0; QAS keeps the real-valued steps. auto: 2x on the "
                        "trained layers that feed the classifier only (the ones whose range "
                        "fine-tuning uses; deeper layers pay the coarser grid for nothing), "
                        "the default; 1: the input model's grids everywhere. At most "
                        f"{MAX_WEIGHT_HEADROOM:g}")
    s.add_argument("--head-residual", choices=("on", "off"), default="on",
                   help="the new head's weight update carries each weight's rounding "
                        "remainder in an int8 of 1/256 LSB (the tensor head/residual, 1 B a "
                        "head weight of SRAM) and rounds to nearest instead of "
                        "stochastically (schema: the update ops' residual). Default on; "
                        "off: stochastic rounding, as before round 27")
    s.add_argument("--no-fuse", action="store_true",
                   help="keep weight and bias gradients as whole tensors instead of computing "
                        "them inside the in-place update ops (a larger peak)")
    s.add_argument("--no-split-filters", action="store_true",
                   help="keep a partially trained filter whole in SRAM (default: only its "
                        "trained input channels are a variable, the rest stays in flash)")
    s.add_argument("--no-in-place", action="store_true",
                   help="never write an output over its input (default: depthwise and 1x1 "
                        "convolutions do, where that lowers the arena's peak)")
    s.add_argument("--no-stream", action="store_true",
                   help="never compute a 1x1 expansion row by row inside the strided "
                        "depthwise layer that reads it (default: where that lowers the "
                        "arena's peak)")
    s.add_argument("--flash-budget", type=_byte_size, default=None, metavar="SIZE",
                   help="flash for the training model + TFLM's and our code "
                        "(tflm_memory.TFLM_CODE_BYTES; default 1M, the paper's board): "
                        "requantizations in flash (the fewest MACs first), then split "
                        "filters, are given up until the model fits (a warning if even "
                        "none would fit; the model is written anyway)")
    s.add_argument("--keep-builtins", action="store_true",
                   help="leave CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED as TFLM builtins "
                        "unless a split filter or an in-place output needs our op (default: "
                        "our ops, with requantization in flash, where that lowers TFLM's "
                        "persistent SRAM)")
    s.set_defaults(func=cmd_augment)

    s = sub.add_parser("train", help="train a training model on the host, one sample per "
                                     "Invoke, exactly as the device would")
    s.add_argument("model", help="a training model written by `augment`")
    s.add_argument("--data", required=True,
                   help="fashion-mnist, an .npz with x and y, or a folder of class folders")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--steps", type=_positive_int,
                       help="number of training steps (updates: a model of augment --batch B "
                            "runs B samples per step)")
    group.add_argument("--epochs", type=_positive_float, help="passes over the data "
                                                             "(default 1)")
    s.add_argument("--val-split", type=_unit_float, default=0.1,
                   help="fraction of the data held out for validation (default 0.1)")
    s.add_argument("--val-samples", type=_positive_int, default=1000,
                   help="at most this many validation samples are evaluated (default 1000)")
    s.add_argument("--engine", choices=ENGINES, default=None,
                   help="c: the forward and TT_* ops in the micro_kernels C library (built "
                        "on first use with the system's C compiler); numpy: the reference, "
                        "the same bits, several times slower; tflm: the whole model in the "
                        f"real TFLM interpreter (pinned tflite-micro wheel) with the C kernels "
                        f"registered ({ENGINE_DEFAULT_HELP})")
    s.add_argument("--seed", type=_seed, default=0, help="shuffling seed")
    s.add_argument("-o", "--output", help="write the trained parameters (.npz)")
    s.set_defaults(func=cmd_train)

    _add_header_parser(sub)
    _add_export_parser(sub)
    _add_search_parser(sub)
    _add_codegen_parser(sub)
    return p


def _add_export_parser(sub) -> None:
    s = sub.add_parser("export", help="a plain int8 inference model with the trained "
                                      "parameters folded in (no training ops)")
    s.add_argument("model", help="the training model written by `augment`")
    s.add_argument("--state", required=True,
                   help="the trained state: a state file of `train -o` (.npz) or a device "
                        "checkpoint (one slot's bytes, tt_checkpoint.h)")
    s.add_argument("-o", "--output", required=True, help="the .tflite to write")
    s.set_defaults(func=cmd_export)


def _add_header_parser(sub) -> None:
    s = sub.add_parser("header", help="a C header for a TFLM app: the training model's "
                                      "inputs, outputs, arena size and trained tensors")
    s.add_argument("model", help="a training model written by `augment`")
    s.add_argument("-o", "--output", required=True, help="the .h file to write")
    s.add_argument("--array", metavar="NAME",
                   help="also embed the model as `NAME[]` (16-byte aligned) and NAME_len")
    s.set_defaults(func=cmd_header)


def one_line(text: str, width: int = 4000) -> str:
    """An error message as one line of printable text: whatever a file smuggles into it
    (names with newlines or control characters) cannot break the line."""
    text = "".join(c if c.isprintable() else " " if c in "\n\r\t" else "?" for c in text)
    return text if len(text) <= width else text[:width - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()          # a closed pipe shows here, not at interpreter exit
        return code
    except TTError as exc:
        if args.debug:
            raise
        print(f"tflite-train: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `inspect MODEL | head`: the reader has gone; stop quietly, and keep Python's exit
        # flush from failing again on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("tflite-train: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
