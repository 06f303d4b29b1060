"""Mutation fuzzing of every command, the long run (tests/test_fuzz.py runs a few hundred
cases of the same in `make test`): seeded mutants of the test zoo, ../shared's models (when
present), training models made from them and tiny-training pickles, each case one command
in a forked child (tests/fuzzing.py). Prints runs per command and outcome; any crash, hang,
traceback, error of more than one line, modified input or partial output is saved as a
reproducer (mutant + command) under benchmarks/fuzz_failures/ and makes the exit code 1.
With `--json benchmarks/fuzz_results.json` it re-renders its table in RESULTS.md.

    nice .venv/bin/python benchmarks/fuzz.py --runs 12000 --glue 1000 --seed 0 --jobs 2 \
        --json benchmarks/fuzz_results.json

`--sweep` mutates nothing: every command once on every seed of a wider corpus, training
models of every zoo model at three schemes among them, because valid but unusual models find
what mutants miss (round 29: `header` crashed TFLM's planner on the zoo's strided conv
trained last:1, a model no mutant started from).

    nice .venv/bin/python benchmarks/fuzz.py --sweep --jobs 2 --json benchmarks/fuzz_sweep.json
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import fuzzing  # noqa: E402
import results  # noqa: E402

BAD = ("crash", "hang", "traceback", "error, not one line", "stray stderr", "input modified",
       "partial output", "other exit")
OUTCOMES = ("ok", "not bit-exact", "error") + BAD


SWEEP_SCHEMES = ("bias-only", "last:1", "full")
NUMBER = re.compile(r"\b[0-9]+\b")     # refusals counted alike whatever their numbers


def _trainable(path: Path, scheme: str) -> bool:
    """Whether augment takes this model and scheme (a zoo model without a classifier to
    replace does not)."""
    from tflite_train import augment, tflite_io
    from tflite_train.errors import TTError
    try:
        augment.augment(tflite_io.load(path), scheme, 3)
        return True
    except TTError:
        return False


def corpus(workdir: Path, wide: bool = False) -> list[fuzzing.Seed]:
    """The seeds; `wide` adds a training model of every zoo model at each SWEEP_SCHEMES
    (fused, int8 gradients) where augment takes it."""
    from tflite_train.demo import EXAMPLE
    zoo = fuzzing.zoo_paths()
    shared = fuzzing.ROOT.parent / "shared" / "models"
    tflm = sorted((shared / "tflm").glob("*.tflite"))
    pkls = sorted((shared / "tiny-training").glob("*.pkl"))
    by_name = {p.stem: p for p in zoo + tflm}
    train = [(EXAMPLE, "full", True), (EXAMPLE, "full", False), (EXAMPLE, "bias-only", True),
             (by_name["mobile"], "last:2", True), (by_name["branches"], "full", True),
             (by_name["pool"], "full", False), (by_name["mean"], "full", True)]
    if "person_detect" in by_name:
        train += [(by_name["person_detect"], "bias-only", True)]
    if "micro_speech_quantized" in by_name:
        train += [(by_name["micro_speech_quantized"], "full", True)]
    if wide:
        train += [(p, scheme, True, "int8") for p in zoo for scheme in SWEEP_SCHEMES
                  if _trainable(p, scheme)]
    return fuzzing.make_seeds(zoo + tflm + [Path(EXAMPLE)], pkls, workdir, train)


def table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, numbers right-aligned."""
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                       for i, (c, w) in enumerate(zip(r, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])


def glue_campaign(seeds, n: int, work: Path, timeout: float, failures: Path,
                  bad: list[str]) -> Counter:
    """n training models broken where only the glue can notice (fuzzing.glue_mutant), each
    loaded and run by the wheel's TFLM in a forked child, the glue built with sanitizers."""
    work.mkdir(parents=True)
    built = fuzzing.sanitized_glue(work)
    if built is None:
        raise SystemExit("gcc's sanitizer runtimes are missing: run without --glue")
    lib, env = built
    server = fuzzing.ForkServer(env={**env, "TT_FUZZ_GLUE": str(lib)})
    outcomes: Counter = Counter()
    try:
        for case in range(n):
            kind, how, data = fuzzing.glue_case(server, seeds, case, work, timeout)
            outcomes[kind] += 1
            if kind not in ("ran", "refused"):
                failures.mkdir(parents=True, exist_ok=True)
                saved = failures / f"glue{case}.tflite"
                saved.write_bytes(data)
                bad.append(f"glue case {case} ({how}): {kind} -> {saved}")
                print(bad[-1], flush=True)
    finally:
        server.close()
    return outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="fork servers run in parallel")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="CPU seconds after which a command counts as hung (or "
                         f"{fuzzing.WALL_FACTOR}x that of wall-clock time)")
    ap.add_argument("--failures", type=Path, default=HERE / "fuzz_failures")
    ap.add_argument("--only", nargs="+", default=[], metavar="COMMAND",
                    help="run only these commands (on the seeds they apply to)")
    ap.add_argument("--glue", type=int, default=0, metavar="N",
                    help="also load N broken training models straight into the wheel's TFLM "
                         "with the glue built under ASan + UBSan")
    ap.add_argument("--json", type=Path, help="also write the counts here (benchmarks/"
                    f"{JSON}: and re-render its table in RESULTS.md)")
    ap.add_argument("--sweep", action="store_true",
                    help="no mutants: every command once on every seed of the wider corpus "
                         "(training models of each zoo model at three schemes); --runs, "
                         "--seed and --glue do not apply")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tt-fuzz-"))
    seeds = corpus(work / "seeds", wide=args.sweep)
    if args.sweep:
        return sweep(seeds, work, args)
    kinds = tuple(k for k in fuzzing.KIND_WEIGHTS if any(
        s.kind == k and (not args.only or any(c[0] in args.only
                                              for c in fuzzing.commands(s, "m", "o")))
        for s in seeds))
    print(f"{len(seeds)} seeds: {', '.join(s.name for s in seeds)}", flush=True)
    counts: dict[str, Counter] = defaultdict(Counter)
    mutations: Counter = Counter()
    bad: list[str] = []
    start = time.monotonic()

    def one(server, job: int, case: int):
        kind, detail, argv, how, case_dir = fuzzing.fuzz_case(
            server, seeds, args.seed, case, work / f"job{job}", args.timeout, kinds,
            tuple(args.only))
        return case_dir, (kind, detail, argv, how)

    def record(case: int, case_dir: Path, result) -> None:
        kind, detail, argv, how = result
        name = fuzzing.command_name(argv)
        counts[name][kind] += 1
        mutations[how.split(":")[-1].split("@")[0]] += 1
        if kind in BAD:
            saved = fuzzing.save_reproducer(args.failures, case, argv, case_dir, kind, detail)
            bad.append(f"case {case}: {name}: {kind} {detail} -> {saved}")
            print(bad[-1], flush=True)
        done = sum(sum(c.values()) for c in counts.values())
        if done % 500 == 0:
            print(f"  {done} runs, {time.monotonic() - start:.0f} s", flush=True)

    run_cases(args.jobs, range(args.runs), one, record)
    seconds = time.monotonic() - start
    glue = glue_campaign(seeds, args.glue, work / "glue", args.timeout, args.failures, bad) \
        if args.glue else None
    shutil.rmtree(work, ignore_errors=True)

    data = {"command": "benchmarks/fuzz.py " + " ".join(sys.argv[1:]), "seeds": len(seeds),
            "seconds": round(seconds), "timeout": args.timeout,
            "counts": {k: dict(v) for k, v in sorted(counts.items())},
            "mutations": dict(sorted(mutations.items())),
            "glue": dict(sorted(glue.items())) if glue is not None else None}
    print()
    print(render(data))
    if args.json:
        results.save(args.json, data, JSON, TABLES)
    return 1 if bad else 0


def run_cases(jobs: int, items, run_one, record) -> None:
    """`jobs` threads, each with its own fork server, take the next item and run
    run_one(server, job, item) -> (case folder, result); record(item, folder, result) is
    called under one lock, then the folder is removed."""
    lock = threading.Lock()
    todo = iter(items)

    def worker(job: int) -> None:
        server = fuzzing.ForkServer()
        try:
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                case_dir, result = run_one(server, job, item)
                with lock:
                    record(item, case_dir, result)
                shutil.rmtree(case_dir, ignore_errors=True)
        finally:
            server.close()

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def sweep(seeds: list[fuzzing.Seed], work: Path, args) -> int:
    """Every command of every seed once, unmutated, on args.jobs fork servers; the same
    outcomes and reproducers as the campaign."""
    cases = [(seed, k) for seed in seeds
             for k, argv in enumerate(fuzzing.commands(seed, "m", "o"))
             if not args.only or argv[0] in args.only]
    counts: dict[str, Counter] = defaultdict(Counter)
    errors: Counter = Counter()
    bad: list[str] = []
    start = time.monotonic()

    def one(server, job: int, item):
        case, (seed, command) = item
        kind, detail, argv, case_dir = fuzzing.sweep_case(
            server, seed, command, work / f"job{job}" / f"case{case}", args.timeout)
        return case_dir, (kind, detail, argv)

    def record(item, case_dir: Path, result) -> None:
        case, (seed, _) = item
        kind, detail, argv = result
        name = fuzzing.command_name(argv, mutated=False)
        counts[name][kind] += 1
        if kind == "error":         # a valid model refused: say why, to review
            errors[f"{name}: " + NUMBER.sub("N", detail)] += 1
        if kind in BAD:
            saved = fuzzing.save_reproducer(args.failures, case, argv, case_dir, kind, detail)
            bad.append(f"{seed.name}: {name}: {kind} {detail} -> {saved}")
            print(bad[-1], flush=True)
        done = sum(sum(c.values()) for c in counts.values())
        if done % 100 == 0:
            print(f"  {done} of {len(cases)} runs, {time.monotonic() - start:.0f} s",
                  flush=True)

    run_cases(args.jobs, list(enumerate(cases)), one, record)
    shutil.rmtree(work, ignore_errors=True)
    data = {"command": "benchmarks/fuzz.py " + " ".join(sys.argv[1:]), "seeds": len(seeds),
            "seconds": round(time.monotonic() - start), "timeout": args.timeout,
            "counts": {k: dict(v) for k, v in sorted(counts.items())},
            "mutations": {"none (sweep)": sum(sum(c.values()) for c in counts.values())},
            "glue": None, "errors": dict(errors.most_common())}
    print()
    print(render(data))
    print("\nWhy valid seeds were refused (digits as N):")
    for message, n in errors.most_common():
        print(f"  {n:4d}  {message}")
    if args.json:
        results.save(args.json, data, SWEEP_JSON, TABLES)
    return 1 if bad else 0


def render(data: dict) -> str:
    """Runs per command and outcome, the mutations, and the glue campaign's outcomes."""
    counts = {name: Counter(c) for name, c in data["counts"].items()}
    total: Counter = Counter()
    for c in counts.values():
        total.update(c)
    shown = [o for o in OUTCOMES if total[o] or o in ("ok", "error", "crash", "hang",
                                                      "traceback")]
    rows = [[name] + [f"{c[o]:,}" for o in shown] + [f"{sum(c.values()):,}"]
            for name, c in sorted(counts.items())]
    rows.append(["all"] + [f"{total[o]:,}" for o in shown] + [f"{sum(total.values()):,}"])
    out = [table(["command"] + shown + ["runs"], rows), "",
           f"{sum(total.values()):,} runs in {data['seconds']:,} s on {data['seeds']} seeds "
           f"(`{data['command']}`). Mutations: "
           + ", ".join(f"{k} {v:,}" for k, v in sorted(data["mutations"].items(),
                                                       key=lambda kv: (-kv[1], kv[0]))) + ".",
           "",
           f"Crashes {total['crash']}, tracebacks {total['traceback']}, hangs {total['hang']}, "
           f"errors of more than one line {total['error, not one line']}, stray stderr "
           f"{total['stray stderr']}, modified inputs {total['input modified']}, partial "
           f"outputs {total['partial output']}, other exits {total['other exit']}."]
    if data.get("glue") is not None:
        glue = data["glue"]
        out += ["", f"TFLM glue under ASan + UBSan, {sum(glue.values()):,} broken training "
                "models loaded straight into the wheel's TFLM: "
                + ", ".join(f"{k} {v:,}" for k, v in glue.items()) + "."]
    return "\n".join(out)


JSON = "fuzz_results.json"
SWEEP_JSON = "fuzz_sweep.json"
TABLES = {"fuzz": ([JSON], render), "fuzz-sweep": ([SWEEP_JSON], render)}


if __name__ == "__main__":
    sys.exit(main())
