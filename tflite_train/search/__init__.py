"""`tflite-train search`: the paper's contribution analysis and evolutionary search for a
sparse-update scheme under a memory budget, on the user's own data.

  space.py      the schemes `augment --scheme` takes, and the analysis runs
  budget.py     a scheme's memory: `plan`'s total for the target, cached
  analysis.py   one fine-tuning run (augment in memory + host training, engine c)
  workers.py    where runs go: this process, a process pool, a Ray cluster
  cache.py      the cache file: every finished run and planned scheme
  evolution.py  the search itself
  progress.py   progress on stderr, a bar on a terminal, lines elsewhere

The analysis runs only candidates whose own scheme fits the budget (and the runs their gains
are measured against): a scheme that trains all a candidate trains and more keeps its saved
activations and trained parameters, so a candidate over budget cannot be part of a scheme
within it. (Not every larger scheme needs more memory: training a slice of a filter adds an
operator, the channel slice of its saved input, whose TFLM data the whole filter does not
need.) Every scheme the
search keeps is planned for real, so the result is within budget whatever the planner does.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__, ops, tflite_io
from .. import data as datasets
from ..errors import TTError
from ..tflite_io import write_atomic
from . import analysis, evolution
from .budget import Cost, Estimate, MemoryModel
from .cache import Cache, default_path
from .progress import reporter
from .space import Point, Run, Space, ratio_number
from .workers import executor


class Stopped(Exception):
    """Raised by `search(stop_after=N)` after N new runs: a kill half-way, for the tests."""


@dataclass
class Options:
    budget: int                              # bytes
    num_classes: int | None = None           # None: the data's classes
    steps: int = 500
    val_samples: int = 1000
    val_split: float = 0.1
    seed: int = 0
    workers: int = 1
    ray: str | None = None
    target: str = "tflm"
    cache: Path | None = None
    max_macs: int | None = None
    engine: str | None = None                # None: runtime.host_engine's default
    evolution: evolution.Settings = field(default_factory=evolution.Settings)


@dataclass
class Entry:
    """A row of the analysis table: one candidate run."""
    run: Run
    description: str
    cost: Cost
    status: str                    # "measured", "over budget", "over MACs", "failed: why"
    accuracy: float | None = None
    gain: float | None = None      # against the run's reference


@dataclass
class Outcome:
    point: Point
    cost: Cost
    score: float
    baseline_accuracy: float
    minimum: int
    table: list[Entry]
    runs_needed: int
    runs_new: int
    cpu_seconds: float             # every run of the analysis, cached ones included
    wall_seconds: float            # the fine-tuning of the new runs
    schemes_planned: int
    generations: int
    cache_path: Path
    scheme: dict


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def search(model_path: str, data_spec: str, output: str, opts: Options, *,
           progress: bool = True, stop_after: int | None = None) -> Outcome:
    out = Path(output)
    if out.resolve() == Path(model_path).resolve():
        raise TTError("-o would overwrite the input model; choose another path")
    graph = tflite_io.load(model_path)
    model = Path(model_path).read_bytes()
    ops.validate(graph)
    dataset = datasets.load(data_spec, graph.tensors[graph.inputs[0]].shape)
    if len(dataset) == 0:
        raise datasets.DataError(f"--data {data_spec}: no samples")
    n_classes = opts.num_classes or len(dataset.classes)
    if int(dataset.labels.max()) >= n_classes:
        raise datasets.DataError(f"label {int(dataset.labels.max())} out of range for "
                                 f"--num-classes {n_classes}")
    datasets.to_model_input(dataset.images[0], graph.tensors[graph.inputs[0]])
    space = Space(graph, n_classes)
    cache = Cache(opts.cache or default_path(model), model)
    mem = MemoryModel(model, n_classes, opts.target, cache.memory)

    minimum = mem.cost(Point(0)).total
    if opts.budget < minimum:
        raise TTError(f"--budget {_kb(opts.budget)} is below the minimum: the model needs "
                      f"{minimum:,} bytes ({_kb(minimum)}) for inference plus its new "
                      f"{n_classes}-class head (target {opts.target})")

    def fits(cost: Cost) -> str:
        if cost.total > opts.budget:
            return "over budget"
        if opts.max_macs is not None and cost.macs > opts.max_macs:
            return "over MACs"
        return "measured"

    runs = space.runs()
    bar = reporter(progress, "planning", len(runs), "scheme")
    costs = {}
    saver = _Saver(cache)
    for run in runs:
        costs[run.key] = mem.cost(run.point)
        bar.update()
        saver.maybe()
    bar.close()
    by_key = {r.key: r for r in runs}
    needed: set[str] = set()
    for run in runs:
        key = run.key if fits(costs[run.key]) == "measured" else None
        while key is not None and key not in needed:
            needed.add(key)
            key = by_key[key].reference
    cache.save()

    from ..runtime import host_engine
    settings = analysis.Settings(n_classes, opts.steps, opts.seed, opts.val_split,
                                 opts.val_samples, host_engine(opts.engine))
    digest = analysis.data_digest(dataset)
    results = cache.runs(settings.id(digest, model), {**asdict(settings), "data": data_spec,
                                               "data_digest": digest})
    # the head first (every other run starts from it), then the cheapest: a search stopped
    # half-way has then finished the runs of the smaller budgets
    todo = sorted((r for r in runs if r.key in needed and r.key not in results),
                  key=lambda r: (r.key != "head", costs[r.key].total, r.key))
    new, wall = _fine_tune(todo, results, cache, model, dataset, settings, opts,
                           len(needed), progress, stop_after)
    acc0 = results["head"]["accuracy"]
    table = _table(runs, costs, results, fits, space, needed)
    gains = evolution.Gains(
        bias={0: 0.0, **{e.run.point.k: e.gain for e in table
                         if e.gain is not None and e.run.weight is None}},
        weights={e.run.weight: e.gain for e in table
                 if e.gain is not None and e.run.weight is not None},
        n_layers=space.n)

    estimate = Estimate({r.point.key: costs[r.key].total for r in runs}, space.depth)

    def feasible(point: Point) -> bool:
        cost = mem.cost(point)
        estimate.observe(point, cost.total)
        saver.maybe()
        return fits(cost) == "measured"

    bar = reporter(progress, "evolution", opts.evolution.generations, "generation",
                   per_item=True, bound=True)
    planned = mem.planned

    def generation(_: int, best: Point) -> None:
        bar.update(note=f"{mem.planned - planned} schemes planned, best sum "
                        f"{100 * gains.score(best):+.1f} pp")

    try:
        best, generations = evolution.evolve(
            gains, feasible, opts.seed, opts.evolution,
            plausible=lambda p: estimate.plausible(p, opts.budget), on_generation=generation)
    finally:
        bar.close()
        cache.save()
    cost = mem.cost(best)
    cache.save()
    doc = _scheme_doc(best, cost, gains, space, acc0, model_path, cache, opts, n_classes,
                      settings, data_spec, digest, len(needed))
    write_atomic(out, (json.dumps(doc, indent=2) + "\n").encode())
    return Outcome(best, cost, gains.score(best), acc0, minimum, table, len(needed), new,
                   sum(results[k]["cpu_seconds"] for k in needed), wall, mem.planned,
                   generations, cache.path, doc)


def _fine_tune(todo: list[Run], results: dict, cache: Cache, model: bytes, dataset,
               settings: analysis.Settings, opts: Options, needed: int, progress: bool,
               stop_after: int | None) -> tuple[int, float]:
    """Runs `todo` (the baseline first: the others start from its head), each result into
    the cache file as it finishes. (new runs, wall seconds)"""
    new = 0
    bar = reporter(progress, "fine-tuning", needed, "run", initial=needed - len(todo),
                   per_item=True)
    started = time.perf_counter()
    pool = executor(model, dataset, settings, opts.workers, opts.ray) if todo else None
    try:
        if todo and todo[0].key == "head":
            todo = todo[1:]
            for _, result in pool.run([analysis.Job("head", Point(0).doc(), None)]):
                new += _record(cache, results, "head", result, bar, stop_after, new)
        if results["head"]["accuracy"] is None:
            raise TTError(f"the baseline run (the new head alone) failed: "
                          f"{results['head']['failed']}")
        jobs = [analysis.Job(r.key, r.point.doc(), results["head"]["head"]) for r in todo]
        if jobs:
            for job, result in pool.run(jobs):
                new += _record(cache, results, job.key, result, bar, stop_after, new)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
    return new, time.perf_counter() - started


def _table(runs: list[Run], costs: dict, results: dict, fits, space: Space,
           needed: set[str]) -> list[Entry]:
    table = []
    for run in runs:
        status = fits(costs[run.key]) if run.key != "head" else "measured"
        entry = Entry(run, space.describe(run), costs[run.key], status)
        if run.key in results:
            if status != "measured":
                entry.status += (", run as a reference" if run.key in needed else
                                 ", run for a larger budget")
            entry.accuracy = results[run.key]["accuracy"]
            reference = results[run.reference]["accuracy"] if run.reference else None
            if entry.accuracy is None:
                entry.status = "failed: " + results[run.key]["failed"]
            elif reference is not None:
                entry.gain = entry.accuracy - reference
        table.append(entry)
    return table


class _Saver:
    """Writes the cache at most every `every` seconds while schemes are planned (each run
    is written as it finishes): a search killed while it plans keeps most of its plans."""

    def __init__(self, cache: Cache, every: float = 30.0):
        self.cache, self.every, self.last = cache, every, time.monotonic()

    def maybe(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.cache.save()
            self.last = time.monotonic()


def _record(cache: Cache, results: dict, key: str, result: dict, bar, stop_after, new) -> int:
    results[key] = result
    cache.save()
    bar.update()
    if stop_after is not None and new + 1 >= stop_after:
        raise Stopped(f"stopped after {new + 1} runs")
    return 1


def _scheme_doc(best: Point, cost: Cost, gains: evolution.Gains, space: Space, acc0: float,
                model_path: str, cache: Cache, opts: Options, n_classes: int,
                settings: analysis.Settings, data_spec: str, digest: str, runs: int) -> dict:
    doc = best.doc()
    weights = [{"layer": p, "name": space.layers[p].name, "ratio": ratio_number(r),
                "gain": gains.weights[(p, r)]} for p, r in best.weights]
    record = {
        "tool": f"tflite-train {__version__} search",
        "model": Path(model_path).name, "model_sha256": cache.model_sha,
        "num_classes": n_classes, "target": opts.target, "budget_bytes": opts.budget,
        "max_macs": opts.max_macs,
        "memory_bytes": cost.total, "memory_parts": cost.parts, "macs_per_step": cost.macs,
        "augment_assumed": "augment's defaults (fused in-place updates, no momentum)",
        "contributions": {"baseline_accuracy": acc0,
                          "bias": {"n_bias_update": best.k, "gain": gains.bias[best.k]},
                          "weights": weights, "sum": gains.score(best)},
        "analysis": {**asdict(settings), "data": data_spec, "data_digest": digest,
                     "runs": runs},
        "evolution": {"seed": opts.seed, **asdict(opts.evolution)},
    }
    return {"comment": f"Searched by tflite-train search for {Path(model_path).name} with a "
                       f"new {n_classes}-class head: {cost.total:,} bytes planned for "
                       f"target {opts.target}, budget {opts.budget:,}.",
            **doc, "search": record}
