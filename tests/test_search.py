"""`tflite-train search` on the built-in example model and a small texture task, with few
steps: the analysis table, budgets checked with `plan`, seeded results, resuming after a
stop or a kill, Ray against the process pool, and the one-line errors."""
import fcntl
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_tool
from tflite_train import tflite_io
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.demo import EXAMPLE, new_task
from tflite_train.search import Options, Stopped, evolution, progress, search
from tflite_train.search.budget import Estimate
from tflite_train.search.space import Point, Space

STEPS, VAL = 20, 40
BUDGET = 10 * 1024    # the example model's candidates but those of its first two layers
#                       (Cortex-M7 totals as plan models them, int8 gradients: b6 9,892 B fits,
#                       b7 10,660 does not, nor do the weights of layers 0 and 1, 11,940 and 12,148)


def options(cache: Path, budget: int = BUDGET, **kw) -> Options:
    return Options(budget=budget, steps=STEPS, val_samples=VAL, val_split=0.25, cache=cache,
                   evolution=evolution.Settings(population=16, generations=8), **kw)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == EXIT_ERROR, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tflite-train: error:"), err
    return lines[0]


def fresh_cache(src: Path, dst: Path) -> Path:
    """A cache with `src`'s planned schemes but none of its runs (planning is not what
    these tests are about)."""
    doc = json.loads(src.read_text())
    doc["analyses"] = {}
    dst.write_text(json.dumps(doc))
    return dst


def runs_of(cache: Path) -> dict:
    (analysis,) = json.loads(cache.read_text())["analyses"].values()
    return analysis["runs"]


def scores(runs: dict) -> dict:
    """What a run computed (its timings aside)."""
    return {k: {f: v for f, v in r.items() if not f.endswith("seconds")}
            for k, r in runs.items()}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """One analysis for the whole module; xdist workers share it (the first one runs it, a
    file lock makes the other wait and read it from the cache). Tests copy the cache before
    they add to it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    tmp = root / "search-task"
    tmp.mkdir(exist_ok=True)
    with open(tmp / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = tmp / "textures.npz"
        if not data.exists():
            new_task(data, n=200)
        cache, out = tmp / "cache.json", tmp / "scheme.json"
        done = search(str(EXAMPLE), str(data), str(out), options(cache), progress=False)
    return {"data": data, "cache": cache, "out": out, "done": done}


def same_runs(cache: Path, reference: Path) -> bool:
    mine, ref = scores(runs_of(cache)), scores(runs_of(reference))
    return mine == {k: ref[k] for k in mine}


def test_analysis_table_has_one_entry_per_candidate(task):
    done = task["done"]
    space = Space(tflite_io.load(EXAMPLE), 4)
    keys = [e.run.key for e in done.table]
    assert keys == [r.key for r in space.runs()] and len(set(keys)) == len(keys)
    # head, a bias run per depth, a weight run per layer and distinct channel count
    n_weight = sum(len(layer.ratios) for layer in space.layers)
    assert len(keys) == 1 + space.n + n_weight
    assert n_weight > space.n                     # several ratios on the pointwise layers
    runs = runs_of(task["cache"])
    for e in done.table:
        within = e.cost.total <= BUDGET
        assert (e.status == "measured") == within or e.run.key == "head"
        if within:
            r = runs[e.run.key]
            assert (r["steps"], r["seed"], r["val_samples"]) == (STEPS, 0, VAL)
            assert e.accuracy == r["accuracy"]
            if e.run.reference is not None:
                assert e.gain == pytest.approx(r["accuracy"] - runs[e.run.reference]["accuracy"])
    assert {e.status.split(",")[0] for e in done.table} == {"measured", "over budget"}
    assert done.runs_needed == len(runs)


def test_search_never_exceeds_the_budget_checked_with_plan(task, tmp_path, capsys):
    minimum = task["done"].minimum
    cache = shutil.copy(task["cache"], tmp_path / "cache.json")
    for budget in (minimum, minimum + 1500, BUDGET, 40 * 1024):
        out = tmp_path / f"s{budget}.json"
        done = search(str(EXAMPLE), str(task["data"]), str(out), options(cache, budget),
                      progress=False)
        model = tmp_path / f"m{budget}.tflite"
        assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4",
                     "--scheme", str(out), "--batch", "1"]) == 0
        capsys.readouterr()
        assert main(["plan", str(model), "--json"]) == 0
        total = json.loads(capsys.readouterr().out)["total_bytes"]
        doc = json.loads(out.read_text())
        assert total == doc["search"]["memory_bytes"] == done.cost.total <= budget
        contributions = doc["search"]["contributions"]
        assert contributions["sum"] == pytest.approx(
            contributions["bias"]["gain"] + sum(w["gain"] for w in contributions["weights"]))
        if budget == minimum:
            assert done.point.k == 0 and not done.point.weights
    # a bigger budget than the analysis covered runs only the candidates it adds
    assert done.runs_new > 0 and done.runs_needed > task["done"].runs_needed


def test_codegen_target_is_the_generated_programs_plan(task, tmp_path, capsys):
    """--target codegen budgets what `plan` prints as the generated program's SRAM."""
    cache = shutil.copy(task["cache"], tmp_path / "cache.json")
    out = tmp_path / "s.json"
    budget = task["done"].minimum - 1          # below what TFLM needs for the head alone
    done = search(str(EXAMPLE), str(task["data"]), str(out),
                  options(cache, budget, target="codegen"), progress=False)
    model = tmp_path / "m.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4",
                 "--scheme", str(out), "--batch", "1"]) == 0
    capsys.readouterr()
    assert main(["plan", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    doc = json.loads(out.read_text())["search"]
    assert doc["target"] == "codegen"
    assert info["codegen"]["total_bytes"] == doc["memory_bytes"] == done.cost.total <= budget
    assert info["total_bytes"] > budget         # TFLM's plan of the same model


def test_the_default_batch_keeps_the_budget_searched_under(task, tmp_path, capsys):
    """augment --scheme s.json without --batch: a searched scheme that trains no pretrained
    weight (here only the new head) would get the default batch 8, whose accumulators the
    search never counted (it plans batch 1). The model stays within the budget the file
    carries, as its target plans it (batch 1 here, saying why); a budget with room for the
    accumulators gets batch 8. (Before round 25 both got batch 8, over the budget.)"""
    cache = shutil.copy(task["cache"], tmp_path / "cache.json")
    # each target's minimum: the new head alone
    codegen = search(str(EXAMPLE), str(task["data"]), str(tmp_path / "c.json"),
                     options(cache, task["done"].minimum, target="codegen"), progress=False)
    for target, budget in (("tflm", task["done"].minimum), ("codegen", codegen.minimum)):
        out = tmp_path / f"{target}.json"
        done = search(str(EXAMPLE), str(task["data"]), str(out),
                      options(cache, budget, target=target), progress=False)
        assert not done.point.weights                 # the default batch is weighed
        model = tmp_path / f"{target}.tflite"
        code, text, err = run_cli(capsys, "augment", EXAMPLE, "-o", model, "--num-classes",
                                  4, "--scheme", out)
        assert code == 0, err
        assert "batch 1 (default): a batch of 8 would take" in text
        assert f"over {budget:,}, the --budget its search had (target {target})" in text
        assert main(["plan", str(model), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        total = info["total_bytes"] if target == "tflm" else info["codegen"]["total_bytes"]
        assert total == done.cost.total <= budget
        # room for the accumulators: batch 8, within the budget
        doc = json.loads(out.read_text())
        doc["search"]["budget_bytes"] = 200_000
        roomy = tmp_path / f"{target}-roomy.json"
        roomy.write_text(json.dumps(doc))
        code, text, err = run_cli(capsys, "augment", EXAMPLE, "-o", model, "--num-classes",
                                  4, "--scheme", roomy)
        assert code == 0, err
        assert "batch 8 (default): the scheme trains no pretrained weight" in text
        assert "within 200,000, the --budget its search had (target " + target in text
        assert main(["plan", str(model), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        total = info["total_bytes"] if target == "tflm" else info["codegen"]["total_bytes"]
        assert done.cost.total < total <= 200_000 and info["accumulator_bytes"] > 0


def test_a_codegen_search_falls_back_to_batch_1_when_batch_8_cannot_be_generated(
        task, tmp_path, capsys, monkeypatch):
    """A scheme searched for the generated program is weighed at the default batch by
    codegen's planner; if codegen cannot generate that model, augment gives batch 1 (which
    the search generated) and says why, instead of failing with codegen's error."""
    from tflite_train import codegen
    from tflite_train.codegen.program import CodegenError
    cache = shutil.copy(task["cache"], tmp_path / "cache.json")
    out = tmp_path / "c.json"
    minimum = search(str(EXAMPLE), str(task["data"]), str(tmp_path / "min.json"),
                     options(cache, task["done"].minimum, target="codegen"),
                     progress=False).minimum
    done = search(str(EXAMPLE), str(task["data"]), str(out),
                  options(cache, minimum, target="codegen"), progress=False)
    assert not done.point.weights                 # the default batch is weighed
    doc = json.loads(out.read_text())
    doc["search"]["budget_bytes"] = 200_000       # room for batch 8's accumulators
    out.write_text(json.dumps(doc))

    def refuses(graph, data, input_rows=False):
        raise CodegenError("operator 3 (MEAN) has no generated kernel")
    monkeypatch.setattr(codegen, "planned_sram", refuses)
    model = tmp_path / "m.tflite"
    code, text, err = run_cli(capsys, "augment", EXAMPLE, "-o", model, "--num-classes", 4,
                              "--scheme", out)
    assert code == 0, err
    assert ("batch 1 (default): a batch of 8 cannot be generated, and the scheme was "
            "searched for the generated program (operator 3 (MEAN) has no generated "
            "kernel)") in text
    monkeypatch.undo()
    assert main(["plan", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accumulator_bytes"] == 0


def test_same_seed_same_scheme(task, tmp_path):
    a = search(str(EXAMPLE), str(task["data"]), str(tmp_path / "a.json"),
               options(task["cache"]), progress=False)
    assert a.runs_new == 0
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(task["out"].read_text())
    assert a.point == task["done"].point


def test_resumed_search_equals_an_uninterrupted_one(task, tmp_path):
    cache = fresh_cache(task["cache"], tmp_path / "cache.json")
    out = tmp_path / "s.json"
    with pytest.raises(Stopped):
        search(str(EXAMPLE), str(task["data"]), str(out), options(cache), progress=False,
               stop_after=3)
    assert len(runs_of(cache)) == 3 and not out.exists()
    done = search(str(EXAMPLE), str(task["data"]), str(out), options(cache), progress=False)
    assert done.runs_new == done.runs_needed - 3 == task["done"].runs_needed - 3
    assert same_runs(cache, task["cache"])
    assert out.read_text() == task["out"].read_text()


def test_a_killed_search_resumes(task, tmp_path):
    """The command line, killed (SIGKILL) once some runs have finished, then run again."""
    cache = fresh_cache(task["cache"], tmp_path / "cache.json")
    out = tmp_path / "s.json"
    argv = [sys.executable, "-m", "tflite_train", "search", str(EXAMPLE), "--data",
            str(task["data"]), "--budget", str(BUDGET), "-o", str(out), "--steps", str(STEPS),
            "--val-samples", str(VAL), "--val-split", "0.25", "--cache", str(cache),
            "--population", "16", "--generations", "8"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(runs_of(cache)) >= 2:
                    break
            except ValueError:          # no analysis yet
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the search ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = len(runs_of(cache))
    assert 2 <= killed_at < task["done"].runs_needed
    res = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"({task['done'].runs_needed - killed_at} new" in res.stdout
    assert same_runs(cache, task["cache"])
    assert json.loads(out.read_text())["weight_update"] == \
        json.loads(task["out"].read_text())["weight_update"]


def test_ray_equals_the_process_pool(task, tmp_path):
    """A local Ray instance (2 CPUs, on loopback) started here; the command line connects to
    it with --ray, as to any cluster. Its runs and scheme equal the process pool's, and both
    equal the runs made in this process."""
    # a single-node instance on the loopback address, not the machine's network address
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        ray = None
    require_tool(ray is not None, "ray (the ray extra)")
    budget = task["done"].minimum + 3000        # a tiny case: a few runs
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024,
             logging_level="ERROR", log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:")
        cache = fresh_cache(task["cache"], tmp_path / "ray.json")
        out = tmp_path / "ray.scheme.json"
        # Ray's instances take a token (~/.ray/auth_token); a client says it uses one
        env = {**os.environ, "RAY_AUTH_MODE": "token"}
        res = subprocess.run([sys.executable, "-m", "tflite_train", "search", str(EXAMPLE),
                              "--data", str(task["data"]), "--budget", str(budget), "-o",
                              str(out), "--steps", str(STEPS), "--val-samples", str(VAL),
                              "--val-split", "0.25", "--cache", str(cache), "--population",
                              "16", "--generations", "8", "--ray", address],
                             cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        ray.shutdown()
    pool_cache = fresh_cache(task["cache"], tmp_path / "pool.json")
    done = search(str(EXAMPLE), str(task["data"]), str(tmp_path / "pool.scheme.json"),
                  options(pool_cache, budget, workers=2), progress=False)
    assert done.runs_new == done.runs_needed >= 3
    assert f"({done.runs_needed} new" in res.stdout
    assert scores(runs_of(cache)) == scores(runs_of(pool_cache))
    assert same_runs(cache, task["cache"])
    assert out.read_text() == (tmp_path / "pool.scheme.json").read_text()


def test_budget_below_the_minimum_is_one_line(task, capsys, tmp_path):
    line = one_line_error(capsys, "search", EXAMPLE, "--data", task["data"], "--budget", "2KB",
                          "-o", tmp_path / "s.json", "--cache", task["cache"])
    minimum = task["done"].minimum
    assert "below the minimum" in line and f"{minimum:,} bytes" in line
    assert not (tmp_path / "s.json").exists()


def test_bad_inputs_are_one_line(task, capsys, tmp_path):
    base = ["search", EXAMPLE, "--budget", "30KB", "-o", tmp_path / "s.json"]
    assert "no such file" in one_line_error(capsys, *base, "--data", tmp_path / "none.npz",
                                            "--cache", task["cache"])
    assert "out of range" in one_line_error(capsys, *base, "--data", task["data"],
                                            "--num-classes", "2", "--cache", task["cache"])
    junk = tmp_path / "junk.json"
    junk.write_text("{")
    assert "not a readable search cache" in one_line_error(capsys, *base, "--data",
                                                           task["data"], "--cache", junk)
    other = tmp_path / "other.json"
    shutil.copy(task["cache"], other)
    doc = json.loads(other.read_text())
    doc["model_sha256"] = "0" * 64
    other.write_text(json.dumps(doc))
    assert "another model" in one_line_error(capsys, *base, "--data", task["data"],
                                             "--cache", other)
    assert "overwrite" in one_line_error(capsys, "search", EXAMPLE, "--budget", "30KB",
                                         "-o", EXAMPLE, "--data", task["data"])
    with pytest.raises(SystemExit) as exc:                          # argparse's usage error
        main([str(a) for a in base] + ["--data", str(task["data"]), "--budget", "lots"])
    assert exc.value.code == EXIT_ERROR and "expected a size" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_search_writes_a_scheme_augment_reads(task, capsys, tmp_path):
    """The command line end to end: table, scheme file, and augment --scheme on it."""
    out = tmp_path / "s.json"
    code, text, _ = run_cli(capsys, "search", EXAMPLE, "--data", task["data"], "--budget",
                            f"{BUDGET // 1024}KB", "-o", out, "--steps", STEPS, "--val-samples",
                            VAL, "--val-split", "0.25", "--cache", task["cache"],
                            "--population", "16", "--generations", "8")
    assert code == 0
    assert "(0 new" in text and "best scheme" in text
    assert len([line for line in text.splitlines()
                if line.startswith(("head ", "bias:", "weight:"))]) == len(task["done"].table)
    assert json.loads(out.read_text()) == json.loads(task["out"].read_text())


def synthetic_space(n: int = 30):
    """Gains and single-layer costs of a made-up model of n layers; a scheme's planned total
    is the additive estimate 0-4% off either way (crc32 of its key), as a planner's peaks
    are off a sum."""
    rng = np.random.default_rng(1)
    ratios = [Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1)]
    bias = {k: 1000 + 40 * k ** 2 for k in range(n + 1)}
    costs = {Point(k).key: c for k, c in bias.items()}
    for p in range(n):
        for r in ratios:
            costs[Point(n - p, ((p, r),)).key] = bias[n - p] + int(rng.integers(50, 400) * r * 8)
    gains = evolution.Gains({k: 0.01 * k ** 0.5 for k in range(n + 1)},
                            {(p, r): float(rng.random()) * 0.05 for p in range(n)
                             for r in ratios}, n)
    estimate = Estimate(costs, lambda p: n - p)

    def planned(p: Point) -> int:
        return int(estimate(p) * (1 + 0.04 * math.sin(zlib.crc32(p.key.encode()))))
    return gains, estimate, planned


def test_evolution_plans_few_schemes_when_few_fit():
    """The Done-when search (person detector, 100 KB) ran for half an hour in the evolution
    without end: under a tight budget most children are over it, each was planned (then
    ~4 s a scheme) and retried up to 50 times. The estimate now skips children clearly over
    budget and the search stops when its best stops improving: far fewer plans, the same
    best (here) as the exhaustive version, never a scheme over budget."""
    gains, estimate, planned = synthetic_space()
    budget = 5000

    def run(plausible, settings):
        asked = {}

        def feasible(p):
            asked[p.key] = planned(p)
            estimate.observe(p, asked[p.key])
            return asked[p.key] <= budget
        best, generations = evolution.evolve(gains, feasible, 0, settings, plausible=plausible)
        return best, generations, asked

    full, _, asked_full = run(lambda p: True, evolution.Settings(patience=10 ** 6))
    best, generations, asked = run(lambda p: estimate.plausible(p, budget),
                                   evolution.Settings())
    assert len(asked_full) > 1000                       # what the search planned before
    assert len(asked) < len(asked_full) / 3 and generations < evolution.Settings().generations
    assert planned(best) <= budget and gains.score(best) == gains.score(full)
    # every scheme skipped was over budget: the margin covered the estimate's misses
    assert all(planned(p) > budget for p in map(parse_point, asked_full)
               if p.key not in asked and not estimate.plausible(p, budget))


def parse_point(key: str) -> Point:
    k, *ws = key.split("+")
    return Point(int(k[1:]), tuple((int(w[1:].split(":")[0]), Fraction(w.split(":")[1]))
                                   for w in ws))


def test_progress_is_lines_when_stderr_is_not_a_terminal(task, capsys, tmp_path):
    """A search in a log or a pipe (the Done-when run's stderr was one) reports each
    finished run with runs done / total and the time left, and each generation."""
    cache = tmp_path / "cache.json"
    doc = json.loads(task["cache"].read_text())
    (analysis,) = doc["analyses"].values()
    dropped = sorted(k for k in analysis["runs"] if k != "head")[:2]
    for k in dropped:
        del analysis["runs"][k]
    cache.write_text(json.dumps(doc))
    code, _, err = run_cli(capsys, "search", EXAMPLE, "--data", task["data"], "--budget",
                           f"{BUDGET // 1024}KB", "-o", tmp_path / "s.json", "--steps", STEPS,
                           "--val-samples", VAL, "--val-split", "0.25", "--cache", cache,
                           "--population", "16", "--generations", "8")
    assert code == 0, err
    n = task["done"].runs_needed
    runs = [line for line in err.splitlines() if line.startswith("search: fine-tuning")]
    assert [line.split()[2] for line in runs] == [f"{n - 1}/{n}", f"{n}/{n}"]
    assert "left" in runs[0] and "elapsed" in runs[1]
    assert any(line.startswith("search: evolution 1/8 generations") and "schemes planned"
               in line for line in err.splitlines())


def test_progress_lines_are_throttled_and_estimate_the_time_left():
    clock = iter([0.0, 10.0, 20.0, 40.0, 50.0, 61.0]).__next__
    out = io.StringIO()
    bar = progress.Lines("planning", 5, "scheme", 0, 30.0, stream=out, now=clock)
    for _ in range(5):
        bar.update()
    # at 10 and 20 s nothing (30 s apart at most), at 40 s 3 done, the last always
    assert out.getvalue().splitlines() == [
        "search: planning 3/5 schemes, 40s elapsed, about 27s left",
        "search: planning 5/5 schemes, 1m01s elapsed"]


def test_an_interrupted_evolution_keeps_its_plans(task, tmp_path, monkeypatch):
    """The cache is written while the evolution plans, not only at its end."""
    cache = tmp_path / "cache.json"
    doc = json.loads(task["cache"].read_text())
    singles = {r.point.key for r in Space(tflite_io.load(EXAMPLE), 4).runs()}
    doc["memory"] = {k: v for k, v in doc["memory"].items() if k.split("|")[-1] in singles}
    cache.write_text(json.dumps(doc))
    known = len(doc["memory"])
    evolve = evolution.evolve

    def stopped(*args, **kw):
        def on_generation(g, best):
            raise KeyboardInterrupt
        return evolve(*args, **{**kw, "on_generation": on_generation})
    monkeypatch.setattr(evolution, "evolve", stopped)
    with pytest.raises(KeyboardInterrupt):
        search(str(EXAMPLE), str(task["data"]), str(tmp_path / "s.json"), options(cache),
               progress=False)
    assert len(json.loads(cache.read_text())["memory"]) > known
    assert not (tmp_path / "s.json").exists()


def test_plans_of_another_tflite_train_are_planned_again(task, tmp_path):
    """A cache written before `plan`'s totals changed (the memory table is keyed by scheme
    only) must not budget with them: its plans are dropped, its runs kept."""
    cache = tmp_path / "cache.json"
    doc = json.loads(task["cache"].read_text())
    doc["planner"] = "0" * 16
    for cost in doc["memory"].values():
        cost["total"] //= 2                             # what an older plan said
    cache.write_text(json.dumps(doc))
    out = tmp_path / "s.json"
    done = search(str(EXAMPLE), str(task["data"]), str(out), options(cache), progress=False)
    assert done.runs_new == 0
    assert json.loads(out.read_text()) == json.loads(task["out"].read_text())
    assert json.loads(cache.read_text())["memory"] == json.loads(
        task["cache"].read_text())["memory"]
