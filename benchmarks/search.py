"""Sparse-update search (`tflite-train search`) against fixed schemes: the person detector
and MCUNet-5FPS, each with a new 10-class head, fine-tuned on Fashion-MNIST.

Per model and budget: the searched scheme, bias-only:K and last:K with the largest K that
fits the budget, (MCUNet) the paper's hand-written 99kb scheme at a budget equal to its own
memory, and a few last-k schemes over budget for reference. Memory is `plan`'s total for
the TFLM target (the search's own number; `augment --scheme` + `plan` give the same). Every
scheme is trained from a fresh head with augment's defaults (learning rates decayed to 0 over
the run, as in the analysis) for --eval-steps steps on the Fashion-MNIST training set and
scored on the first --test-samples images of its test set (never seen by the search, which
scores on a split of the training set); --seeds seeds (head initialisation, rounding, data
order); mean and standard error over the seeds. The analysis runs --analysis-steps steps
each, scored on --analysis-val held-out samples (default per model: MODELS).

    nice .venv/bin/python benchmarks/search.py [--models person_detect,mcunet]
        [--workdir DIR] [--workers 2] [--seeds 3] [--eval-steps 1000] [--test-samples 3000]
        [--analysis-steps N] [--analysis-val N] [--budgets KB,..] [--no-hand-budget]
        [--population N] [--patience N] [--speedup] [--speedup-budget KB] [--json FILE]
        [--replan]

Everything is kept in --workdir (the search caches, scheme files, every evaluation), so the
benchmark killed and started again redoes only what is missing, and prints what it has.
--speedup also times one analysis (the person detector at --speedup-budget KB, 200 steps per
run) with 1 and with 2 workers. --json FILE puts the rows and searches of this run into FILE
and keeps those it did not redo (other models, other budgets: `merge`); with
benchmarks/search_results.json it re-renders the tables in RESULTS.md, with a line per goal
of the issue under them (`goals`).
--replan (with --json FILE, running nothing else) plans every row of FILE again with this
tflite-train's `plan` and keeps the total it had when it was searched beside it: the rows'
schemes and accuracies stay, their memory becomes what `plan` prints today.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import results  # noqa: E402
from tflite_train import augment, data, ops, tflite_io  # noqa: E402
from tflite_train.search import Options, evolution, search  # noqa: E402
from tflite_train.search.analysis import Settings  # noqa: E402
from tflite_train.search.budget import MemoryModel  # noqa: E402
from tflite_train.search.cache import Cache  # noqa: E402
from tflite_train.search.space import Point, Space  # noqa: E402
from tflite_train.tflite_io import write_atomic  # noqa: E402
from tflite_train.train import Trainer, sample_order  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "models"
HAND_MCUNET = HERE / "schemes" / "mcunet-5fps_99kb.json"
# analysis: (steps per run, held-out samples) by default; MCUNet's runs cost 2-3x the
# person detector's and it has 114 candidates within the hand-written scheme's total, hence
# fewer steps. MCUNet's budgets: 256 KB, and the hand-written scheme's own total, added
# (320 KB, once a third budget, is 1.5x that total with today's plan: comparable to nothing).
MODELS = {
    "person_detect": {"tflite": SHARED / "tflm" / "person_detect.tflite",
                      "budgets_kb": [100, 150, 200], "ladder": [1, 2, 3],
                      "analysis": (500, 1000)},
    "mcunet": {"pkl": SHARED / "tiny-training" / "mcunet-5fps.pkl",
               "budgets_kb": [256], "ladder": [1], "hand": HAND_MCUNET,
               "analysis": (300, 500)},
}
LABELS = {"person_detect": "person detector", "mcunet": "MCUNet-5FPS"}
CLASSES = 10
KB = 1024


class Store:
    """A JSON file of results by key, rewritten atomically after every change."""

    def __init__(self, path: Path):
        self.path = path
        self.doc = json.loads(path.read_text()) if path.exists() else {}

    def __contains__(self, key):
        return key in self.doc

    def __getitem__(self, key):
        return self.doc[key]

    def put(self, key, value) -> None:
        self.doc[key] = value
        write_atomic(self.path, json.dumps(self.doc, indent=1).encode())


def model_file(name: str, workdir: Path) -> Path:
    spec = MODELS[name]
    if "tflite" in spec:
        return spec["tflite"]
    out = workdir / f"{name}.tflite"
    if not out.exists():
        from tflite_train.importers.tiny_training import import_pkl
        graph = import_pkl(str(spec["pkl"]), "kernel")
        ops.validate(graph)
        tflite_io.save(graph, out)
    return out


# --- evaluation: a fresh head, train, score on the test set --------------------------------

_data = None


def fashion_train_test() -> tuple[data.Dataset, np.ndarray, np.ndarray]:
    """The training set followed by the test set in one Dataset; (data, train, test indices)."""
    global _data
    if _data is None:
        train = data.fashion_mnist()
        folder = data.FASHION_MNIST_DIR
        x = data._idx(folder / "t10k-images-idx3-ubyte.gz")
        y = data._idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
        ds = data.Dataset("fashion-mnist train+test", np.concatenate([train.images, x]),
                          np.concatenate([train.labels, y]), train.classes)
        _data = ds, np.arange(len(train)), len(train) + np.arange(len(y))
    return _data


def evaluate(model: str, scheme, seed: int, steps: int, test_samples: int) -> dict:
    ds, train_idx, test_idx = fashion_train_test()
    cpu = time.process_time()
    hyper = Settings(CLASSES, steps, seed, 0.0, 0, "c").hyper()
    result = augment.augment(tflite_io.load(model), scheme, CLASSES, hyper)
    trainer = Trainer(result.graph, ds, engine="c")
    for i in sample_order(train_idx, steps, seed):
        trainer.step(i)
    return {"accuracy": trainer.accuracy(test_idx[:test_samples]),
            "cpu_seconds": time.process_time() - cpu}


def eval_key(model: Path, scheme, seed: int, args) -> str:
    text = json.dumps([model.name, scheme, seed, args.eval_steps, args.test_samples,
                       repr(Settings(CLASSES, args.eval_steps, seed, 0.0, 0, "c").hyper())],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_evaluations(todo: list[tuple[str, Path, object, int]], store: Store, args) -> None:
    """todo: (key, model, scheme, seed); results go to the store as they finish."""
    todo = [t for t in todo if t[0] not in store]
    if not todo:
        return
    print(f"evaluating {len(todo)} training runs ({args.workers} workers)", flush=True)
    t0 = time.time()
    with cf.ProcessPoolExecutor(args.workers,
                                mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(evaluate, str(m), s, seed, args.eval_steps, args.test_samples):
                   key for key, m, s, seed in todo}
        for n, f in enumerate(cf.as_completed(futures), 1):
            store.put(futures[f], f.result())
            print(f"  {n}/{len(todo)} done, {time.time() - t0:.0f} s", flush=True)


# --- the comparison ------------------------------------------------------------------------

def describe(point: Point) -> str:
    return f"biases of last {point.k}" + (f", weights of {len(point.weights)} layers "
                                          f"({', '.join(f'{p}x{r}' for p, r in point.weights)})"
                                          if point.weights else "")


def point_of(doc: dict) -> Point:
    from fractions import Fraction
    return Point(doc["n_bias_update"],
                 tuple(sorted((w["layer"], Fraction(w["ratio"]).limit_denominator(64))
                              for w in doc.get("weight_update", []))))


def bench_model(name: str, args, searches: Store, evals: Store) -> list[dict]:
    workdir = args.workdir
    model = model_file(name, workdir)
    blob = model.read_bytes()
    spec = MODELS[name]
    steps, val = spec["analysis"]
    steps, val = args.analysis_steps or steps, args.analysis_val or val
    cache_path = workdir / f"{name}.cache.json"
    cache = Cache(cache_path, blob)
    mem = MemoryModel(blob, CLASSES, "tflm", cache.memory)
    space = Space(tflite_io.load(model), CLASSES)
    minimum = mem.cost(Point(0)).total
    budgets = [b * KB for b in (spec["budgets_kb"] if args.budgets is None else args.budgets)]
    hand = None
    if "hand" in spec:
        hand = json.loads(spec["hand"].read_text())
        hand_cost = mem.cost_of(f"hand:{spec['hand'].name}", hand).total
        if not args.no_hand_budget:
            budgets.append(hand_cost)
    if not args.report_only:
        cache.save()
    rows = []
    for budget in sorted(budgets):       # the smallest first: complete rows come early, and
        out = workdir / f"{name}_{budget}.json"   # each larger budget adds to the analysis
        key = f"{name}|{budget}|{steps}|{val}"
        if args.report_only:
            if not out.exists() or key not in searches:
                print(f"{name} at {budget / KB:.1f} KB: not searched yet", file=sys.stderr)
                continue
            searched = json.loads(out.read_text())
            done = None
        else:
            done = search(str(model), "fashion-mnist", str(out),
                          Options(budget=budget, num_classes=CLASSES, steps=steps,
                                  val_samples=val, workers=args.workers, cache=cache_path,
                                  evolution=evolution.Settings(
                                      population=args.population, patience=args.patience)))
            searched = done.scheme
        if done is not None and (key not in searches or done.runs_new):
            searches.put(key, {"runs": done.runs_needed, "new_runs": done.runs_new,
                               "cpu_seconds": done.cpu_seconds,
                               "wall_seconds": done.wall_seconds,
                               "schemes_planned": done.schemes_planned})
        cache = Cache(cache_path, blob)              # as the search left it
        mem = MemoryModel(blob, CLASSES, "tflm", cache.memory)
        schemes = [("searched", searched)]
        fits = [k for k in range(space.n + 1) if mem.cost(Point(k)).total <= budget]
        schemes.append((f"bias-only:{max(fits)}", f"bias-only:{max(fits)}"))
        last = [k for k in range(1, space.n + 1) if mem.cost_of(f"last:{k}", f"last:{k}")
                .total <= budget]
        if last:
            schemes.append((f"last:{max(last)}", f"last:{max(last)}"))
        if hand is not None and budget == hand_cost:
            schemes.append(("hand-written 99kb", hand))
        new_rows = []
        for label, scheme in schemes:
            cost = mem.cost_of(label if label != "searched" else f"searched@{budget}",
                               scheme)
            new_rows.append({"model": name, "budget": budget, "scheme": label,
                             "doc": scheme, "cost": cost,
                             "search": searches[key] if label == "searched" else None})
        if not args.report_only:
            cache.save()
        evaluate_rows(model, new_rows, evals, args)
        rows += new_rows
    ladder = [{"model": name, "budget": None, "scheme": f"last:{k}", "doc": f"last:{k}",
               "cost": mem.cost_of(f"last:{k}", f"last:{k}"), "search": None}
              for k in spec["ladder"] if not any(r["scheme"] == f"last:{k}" for r in rows)]
    if hand is not None and not any(r["scheme"] == "hand-written 99kb" for r in rows):
        ladder.append({"model": name, "budget": None, "scheme": "hand-written 99kb",
                       "doc": hand, "cost": mem.cost_of(f"hand:{spec['hand'].name}", hand),
                       "search": None})
    if not args.report_only:
        cache.save()
    evaluate_rows(model, ladder, evals, args)
    rows += ladder
    for r in rows:
        r["minimum"] = minimum
        r["cost"] = r["cost"].__dict__
        r.pop("keys")
    return rows


def evaluate_rows(model: Path, rows: list[dict], evals: Store, args) -> None:
    todo = []
    for r in rows:
        r["keys"] = [eval_key(model, r["doc"], s, args) for s in range(args.seeds)]
        todo += [(k, model, r["doc"], s) for s, k in enumerate(r["keys"])]
    # seed by seed: a benchmark stopped half-way has every row's first seeds
    todo.sort(key=lambda t: t[3])
    if not args.report_only:
        run_evaluations(list({t[0]: t for t in todo}.values()), evals, args)
    for r in rows:
        accs = [evals[k]["accuracy"] for k in r["keys"] if k in evals]
        r["accuracy"] = float(np.mean(accs)) if accs else None
        r["stderr"] = float(np.std(accs, ddof=1) / math.sqrt(len(accs))) if len(accs) > 1 \
            else None
        r["accuracies"] = accs
        r["trains"] = describe(point_of(r["doc"])) if isinstance(r["doc"], dict) else \
            r["doc"]


def speedup(args, searches: Store) -> dict:
    """One analysis (person detector, --speedup-budget, 200 steps, 300 samples) with 1 and 2
    workers, each from an empty run cache (the planned schemes copied: this times
    fine-tuning)."""
    name = "person_detect"
    model = model_file(name, args.workdir)
    src = args.workdir / f"{name}.cache.json"
    out = {}
    for workers in (1, 2):
        key = f"speedup|{workers}|{args.speedup_budget}"
        if key in searches:
            out[workers] = searches[key]
            continue
        cache = args.workdir / f"speedup-{workers}.json"
        doc = json.loads(src.read_text()) if src.exists() else None
        if doc is not None:
            doc["analyses"] = {}
            cache.write_text(json.dumps(doc))
        elif cache.exists():
            cache.unlink()
        load = os.getloadavg()[0]
        done = search(str(model), "fashion-mnist", str(args.workdir / "speedup.json"),
                      Options(budget=args.speedup_budget * KB, num_classes=CLASSES,
                              steps=200, val_samples=300, workers=workers, cache=cache,
                              # only the fine-tuning is timed: the least evolution
                              evolution=evolution.Settings(population=2, parents=1,
                                                           generations=1)))
        searches.put(key, {"runs": done.runs_new, "wall_seconds": done.wall_seconds,
                           "cpu_seconds": done.cpu_seconds, "budget_kb": args.speedup_budget,
                           "load_average_1min": load,
                           "load_average_1min_after": os.getloadavg()[0]})
        if not src.exists():             # the second timing plans nothing
            shutil.copy(cache, src)
        out[workers] = searches[key]
    return out


def replan(doc: dict, workdir: Path) -> dict:
    """Every row's memory planned again by this tflite-train (`plan`'s totals change with
    its code); the total it had when it was searched stays beside it, once."""
    import datetime
    today = datetime.date.today().isoformat()
    for name, m in doc["models"].items():
        blob = model_file(name, workdir).read_bytes()
        mem = MemoryModel(blob, CLASSES, "tflm", {})
        minimum = mem.cost(Point(0)).total
        for r in m["rows"]:
            label = r["scheme"] if isinstance(r["doc"], str) else \
                f"{r['scheme']}@{r['budget']}"
            cost = mem.cost_of(label, r["doc"])
            if cost.total != r["cost"]["total"] or minimum != r["minimum"]:
                r.setdefault("when_searched", {"total": r["cost"]["total"],
                                               "minimum": r["minimum"]})
                r["cost"], r["minimum"], r["replanned"] = cost.__dict__, minimum, today
    return doc


def render(data: dict) -> str:
    """The comparison table and the search's cost, from search_results.json."""
    out = ["| model | budget | scheme | trains (besides the head) | memory KB | above head "
           "alone KB | MACs/step | test accuracy (mean +- s.e.) | per seed |",
           "|---|---:|---|---|---:|---:|---:|---:|---|"]
    for name, m in data["models"].items():
        for r in m["rows"]:
            se = f" +- {100 * r['stderr']:.1f}" if r["stderr"] is not None else ""
            acc = f"{100 * r['accuracy']:.1f}%{se}" if r["accuracy"] is not None else \
                "not run"
            budget = _budget(r)
            cost = r["cost"]
            then = r.get("when_searched")
            was = f" ({then['total'] / KB:.1f})" if then else ""
            out.append(f"| {LABELS[name]} | {budget} | {r['scheme']} | {r['trains']} | "
                       f"{cost['total'] / KB:.1f}{was} | "
                       f"{(cost['total'] - r['minimum']) / KB:.1f} | "
                       f"{cost['macs'] / 1e6:.1f} M | {acc} | "
                       f"{' / '.join(f'{100 * a:.1f}' for a in r['accuracies'])} |")
    out += ["", "| model | analysis: steps per run, held-out samples | budget KB | runs within "
            "budget | CPU time of those runs | schemes it planned (first search) |",
            "|---|---|---:|---:|---:|---:|"]
    for name, m in data["models"].items():
        for v in m["searches"]:
            old = "*" if v.get("old_plan") else ""
            out.append(f"| {LABELS[name]} | {v['analysis_steps']}, {v['analysis_val']} | "
                       f"{v['budget'] / KB:.1f}{old} | {v['runs']} | "
                       f"{v['cpu_seconds'] / 3600:.2f} core-hours | {v['schemes_planned']:,} |")
    speed = data.get("speedup")
    if speed:
        w1, w2 = speed["1"], speed["2"]

        def load(w):
            if "load_average_1min_after" in w:
                return (f" (1-minute load average {w['load_average_1min']:.1f} before, "
                        f"{w['load_average_1min_after']:.1f} after)")
            return f" (1-minute load average before: {w['load_average_1min']:.1f})" \
                if "load_average_1min" in w else ""
        out += ["", f"Speed-up with 2 workers (one analysis, the person detector at "
                f"{w1.get('budget_kb', 100)} KB, "
                f"{w1['runs']} runs of 200 steps, 300 held-out samples): "
                f"{w1['wall_seconds']:.0f} s with 1 worker{load(w1)}, "
                f"{w2['wall_seconds']:.0f} s with 2{load(w2)}: "
                f"x{w1['wall_seconds'] / w2['wall_seconds']:.2f}; CPU time of the runs "
                f"{w1['cpu_seconds']:.0f} s and {w2['cpu_seconds']:.0f} s."]
    return "\n".join(out + [""] + goals(data))


def _budget(r: dict) -> str:
    """A row's budget in KB, starred when its scheme was searched under older totals."""
    if not r["budget"]:
        return "-"
    return f"{r['budget'] / KB:.1f}" + ("*" if r.get("when_searched") else "")


def _mean_se(r: dict) -> str:
    se = f" +- {100 * r['stderr']:.1f}" if r["stderr"] is not None else ""
    return f"{100 * r['accuracy']:.1f}%{se}"


def goals(data: dict) -> list[str]:
    """The issue's goals, each met or not, with the figures of the table: (1) a searched
    scheme reaches last-k's accuracy (mean over the seeds, at least as high) with at most
    1/4 of its memory; (2) the searched scheme beats the hand-written one at equal budget,
    told apart from a tie when the difference is within two standard errors (of the
    difference); (3) the search's own cost and its speed-up with 2 workers."""
    out = []
    for name, m in data["models"].items():
        rows = [r for r in m["rows"] if r["accuracy"] is not None]
        searched = [r for r in rows if r["scheme"] == "searched"]
        best = None                        # (memory ratio, searched row, last-k row)
        for last in (r for r in rows if r["scheme"].startswith("last:")):
            reach = [s for s in searched if s["accuracy"] >= last["accuracy"]]
            if reach:
                s = min(reach, key=lambda s: s["cost"]["total"])
                ratio = s["cost"]["total"] / last["cost"]["total"]
                if best is None or ratio < best[0]:
                    best = (ratio, s, last)
        if best is None:
            out.append(f"- Goal, {LABELS[name]}: a searched scheme reaches last-k's accuracy "
                       f"with <= 1/4 of its memory: not met, no searched scheme reaches the "
                       f"accuracy of a last-k row.")
        else:
            ratio, s, last = best
            above = (s["cost"]["total"] - s["minimum"]) / (last["cost"]["total"] -
                                                           last["minimum"])
            out.append(f"- Goal, {LABELS[name]}: a searched scheme reaches last-k's accuracy "
                       f"with <= 1/4 of its memory: {'met' if ratio <= 0.25 else 'not met'}; "
                       f"at best the {_budget(s)} KB search's scheme "
                       f"({_mean_se(s)}, {s['cost']['total'] / KB:.1f} KB) against "
                       f"{last['scheme']} ({_mean_se(last)}, "
                       f"{last['cost']['total'] / KB:.1f} KB): {100 * ratio:.0f}% of its "
                       f"memory, {100 * above:.0f}% of what it adds above the head alone.")
        for hand in (r for r in rows if r["scheme"].startswith("hand-written")):
            equal = [s for s in searched if s["budget"] == hand["budget"]]
            if not equal:
                out.append(f"- Goal, {LABELS[name]}: the searched scheme beats the "
                           f"{hand['scheme']} scheme at equal budget: not measured.")
                continue
            s = equal[0]
            diff = s["accuracy"] - hand["accuracy"]
            se = math.hypot(s["stderr"] or 0.0, hand["stderr"] or 0.0)
            verdict = ("met" if diff > 2 * se else "not met" if diff < -2 * se else
                       "not met, a tie within two standard errors")
            out.append(f"- Goal, {LABELS[name]}: the searched scheme beats the {hand['scheme']} "
                       f"scheme at equal budget ({_budget(hand)} KB): {verdict}; "
                       f"{_mean_se(s)} at {s['cost']['total'] / KB:.1f} KB against "
                       f"{_mean_se(hand)} at {hand['cost']['total'] / KB:.1f} KB, "
                       f"{100 * diff:+.1f} points +- {100 * se:.1f}.")
    searches = [(name, v) for name, m in data["models"].items() for v in m["searches"]]
    if searches:
        out.append("- The search's own cost (analysis runs within budget, their CPU time): " +
                   "; ".join(f"{LABELS[name]} at {v['budget'] / KB:.1f} KB"
                             f"{'*' if v.get('old_plan') else ''}: {v['runs']} runs, "
                             f"{v['cpu_seconds'] / 3600:.2f} core-hours"
                             for name, v in searches) + ".")
    speed = data.get("speedup")
    if speed:
        out.append(f"- Speed-up with 2 workers: x"
                   f"{speed['1']['wall_seconds'] / speed['2']['wall_seconds']:.2f}.")
    return out


def model_entry(name: str, rows: list[dict], searches: Store, args) -> dict:
    steps, val = MODELS[name]["analysis"]
    steps, val = args.analysis_steps or steps, args.analysis_val or val
    runs = []
    for key, v in searches.doc.items():           # key: model|budget|steps|held-out
        model, budget, *analysis = key.split("|")
        if model == name and analysis == [str(steps), str(val)]:
            runs.append({**v, "budget": int(budget), "analysis_steps": steps,
                         "analysis_val": val})
    return {"rows": rows, "searches": sorted(runs, key=lambda v: v["budget"]),
            "settings": {"seeds": args.seeds, "eval_steps": args.eval_steps,
                         "test_samples": args.test_samples,
                         "analysis_steps": steps, "analysis_val": val,
                         "workers": args.workers}}


def merge(old: dict | None, new: dict) -> dict:
    """A model's entry in the results file after a run of some of its budgets: the rows and
    searches of the run, and those of the old entry it did not redo (a searched row is one per
    budget, any other row one per scheme: a reference row measured again at a budget replaces
    its budget-less one; a search is one per budget and analysis settings)."""
    if old is None:
        return new

    def row_key(r):
        return (r["scheme"], r["budget"] if r["scheme"] == "searched" else None)

    def search_key(v):
        return v["budget"], v["analysis_steps"], v["analysis_val"]

    done = {row_key(r) for r in new["rows"]}
    rows = [r for r in old["rows"] if row_key(r) not in done] + new["rows"]
    rows.sort(key=lambda r: (r["budget"] is None, r["budget"] or 0))   # stable: rows' order
    redone = {search_key(v) for v in new["searches"]}
    searches = [v for v in old["searches"] if search_key(v) not in redone] + new["searches"]
    return {**new, "rows": rows, "searches": sorted(searches, key=lambda v: v["budget"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="person_detect,mcunet")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tflite-train-search-bench"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-steps", type=int, default=1000)
    ap.add_argument("--test-samples", type=int, default=3000)
    ap.add_argument("--analysis-steps", type=int, help="default: the model's (MODELS)")
    ap.add_argument("--analysis-val", type=int, help="default: the model's (MODELS)")
    ap.add_argument("--budgets", type=lambda t: [int(b) for b in t.split(",") if b],
                    help="budgets in KB instead of the model's (comma-separated; MCUNet "
                         "always adds the hand-written scheme's own memory)")
    ap.add_argument("--no-hand-budget", action="store_true",
                    help="MCUNet: no search at the hand-written scheme's memory (the scheme "
                         "is still trained, as a reference row)")
    ap.add_argument("--population", type=int, default=evolution.Settings.population,
                    help="the evolution's population (MCUNet's plans cost seconds each)")
    ap.add_argument("--patience", type=int, default=evolution.Settings.patience)
    ap.add_argument("--speedup", action="store_true")
    ap.add_argument("--speedup-budget", type=int, default=60,
                    help="KB; the speed-up's analysis (default 60: 23 runs, planned totals "
                         "of 2026-11-25)")
    ap.add_argument("--replan", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: the table of what --workdir holds (budgets searched, "
                         "the seeds evaluated so far)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.replan:
        if not args.json:
            sys.exit("--replan needs --json FILE")
        doc = replan(json.loads(args.json.read_text()), args.workdir)
        print(render(doc))
        results.save(args.json, doc, JSON, TABLES)
        return
    searches = Store(args.workdir / "searches.json")
    evals = Store(args.workdir / "evaluations.json")
    models = {}
    for name in filter(None, args.models.split(",")):
        if name not in MODELS:
            sys.exit(f"unknown model {name!r}: one of {', '.join(MODELS)}")
        models[name] = model_entry(name, bench_model(name, args, searches, evals), searches,
                                   args)
    speed = None
    keys = {w: f"speedup|{w}|{args.speedup_budget}" for w in (1, 2)}
    if args.speedup and args.report_only:
        if all(k in searches for k in keys.values()):
            speed = {w: searches[k] for w, k in keys.items()}
    elif args.speedup:
        speed = speedup(args, searches)
    doc = {"models": models}
    if speed:
        doc["speedup"] = {str(k): v for k, v in speed.items()}
    if args.json and args.json.exists():           # what this run did not measure stays
        old = json.loads(args.json.read_text())
        doc = {"models": {**old["models"],
                          **{k: merge(old["models"].get(k), v) for k, v in models.items()}},
               "speedup": doc.get("speedup", old.get("speedup"))}
        doc = {k: v for k, v in doc.items() if v is not None}
    print(render(doc))
    if args.json:
        results.save(args.json, doc, JSON, TABLES)


JSON = "search_results.json"
TABLES = {"search": ([JSON], render)}


if __name__ == "__main__":
    main()
