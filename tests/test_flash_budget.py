"""augment within a flash budget: the model file + TFLM's and our code
(tflm_memory.TFLM_CODE_BYTES) within --flash-budget, the flash-adding conversions
(requantization in flash, split filters) given up the fewest MACs first, no more than
needed."""
from __future__ import annotations

import json
import random

import pytest

from conftest import SHARED_MODELS
from tflite_train import tflite_io, tflm_memory
from tflite_train.augment import (MemoryOptions, _flash_conversions, _give_up_order,
                                  _next_give_up, augment)
from tflite_train.autodiff import Hyper
from tflite_train.errors import TTError

HYPER = Hyper(lr=0.05, momentum=0.5, seed=1)
CODE = tflm_memory.TFLM_CODE_BYTES


def run(path, budget, scheme="bias-only", give_up=frozenset()):
    graph = tflite_io.load(path)
    before = tflite_io.serialize(graph)
    r = augment(graph, scheme, 4, HYPER,
                memory=MemoryOptions(flash_budget=budget, give_up=give_up))
    # the caller's graph as it was, also when the budget gave conversions up (_fit augments
    # a copy again)
    assert tflite_io.serialize(graph) == before
    return r, tflite_io.serialize(r.graph)


def conversions(r) -> set[str]:
    return {c.layer for c in r.memory.flash_requant} | {s.layer for s in r.memory.split}


def record(data: bytes):
    return json.loads(tflite_io.parse(data).metadata["tflite_train"])["memory"] \
        .get("flash_budget")


def room_for_the_record(free) -> int:
    """Bytes for the record of every conversion of `free` given up (flash too), and 32 more:
    any one conversion kept costs more than its line in the record and these 32 bytes."""
    given = {}
    for c in _flash_conversions(free):
        given.setdefault(c["pass"], {})[c["layer"]] = c["sram_bytes"]
    return len(json.dumps({"flash_budget": {"budget": 1 << 20, "tflm_code": CODE,
                                            "fits": True, "given_up": given,
                                            "sram_cost": 99999}})) + 32


@pytest.fixture(scope="module")
def mobile(zoo):
    """The zoo's mobile model without a budget: every conversion made (seven)."""
    r, data = run(zoo["mobile"], None)
    assert len(r.memory.flash_requant) >= 5 and record(data) is None
    return zoo["mobile"], r, data


def test_a_tight_budget_gives_up_the_fewest_macs_it_can(mobile):
    path, free, free_data = mobile
    budget = len(free_data) + CODE - 1                 # one byte short
    r, data = run(path, budget)
    rec = record(data)
    assert rec == r.memory.flash and rec["budget"] == budget and rec["fits"]
    assert rec["tflm_code"] == CODE
    # the written file, as `plan` counts it, is within the budget
    assert len(data) + CODE <= budget
    given = [g["layer"] for g in r.memory.given_up]
    assert rec["given_up"] == {"requantization in flash": {
        g["layer"]: g["sram_bytes"] for g in r.memory.given_up}}
    assert len(given) == 1 < len(free.memory.flash_requant)
    assert set(given) == conversions(free) - conversions(r)
    # one byte short: one conversion covers it, the one of the fewest forward MACs (the
    # layer that then runs on TFLM's kernels), of the least SRAM among those
    cheapest = min(_flash_conversions(free),
                   key=lambda c: (c["macs"], c["sram_bytes"], c["layer"]))
    assert given == [cheapest["layer"]]
    assert rec["sram_cost"] == sum(g["sram_bytes"] for g in r.memory.given_up) > 0
    # it costs the SRAM it says (the persistent data the conversions saved), within the
    # tail's alignment
    sram = [tflm_memory.target_memory(tflite_io.parse(d)).total for d in (free_data, data)]
    assert abs(sram[1] - sram[0] - rec["sram_cost"]) <= 16 * len(given)
    # the same model as augment without those conversions, byte for byte, apart from the
    # record
    _, same = run(path, None, give_up=frozenset(given))
    assert without_record(data) == same


def without_record(data: bytes) -> bytes:
    """The model `data` with its metadata's memory.flash_budget removed."""
    g = tflite_io.parse(data)
    meta = json.loads(g.metadata["tflite_train"])
    del meta["memory"]["flash_budget"]
    g.metadata["tflite_train"] = json.dumps(meta).encode()
    return tflite_io.serialize(g)


def test_a_budget_only_the_model_without_any_conversion_meets(mobile):
    path, free, _ = mobile
    _, bare = run(path, None, give_up=frozenset(conversions(free)))
    budget = len(bare) + CODE + room_for_the_record(free)
    r, data = run(path, budget)
    assert not conversions(r) and record(data)["fits"] and len(data) + CODE <= budget
    assert set(record(data)["given_up"]["requantization in flash"]) == conversions(free)


def test_a_budget_nothing_meets_keeps_every_conversion_and_warns(mobile, tmp_path, capsys):
    """Giving them all up would not fit either: the SRAM they save is kept, the model is
    written, and augment warns in one line."""
    path, free, free_data = mobile
    _, bare = run(path, None, give_up=frozenset(conversions(free)))
    budget = len(bare) + CODE - 1
    r, data = run(path, budget)
    assert conversions(r) == conversions(free)
    rec = record(data)
    assert rec == {"budget": budget, "tflm_code": CODE, "fits": False, "given_up": {},
                   "sram_cost": 0}
    assert without_record(data) == free_data      # the model without a budget, and the record
    from tflite_train.cli import main
    out = tmp_path / "t.tflite"
    assert main(["augment", str(path), "-o", str(out), "--num-classes", "4", "--lr", "0.05",
                 "--flash-budget", str(budget)]) == 0
    captured = capsys.readouterr()
    warning = captured.err.strip().splitlines()
    assert len(warning) == 1 and "over --flash-budget" in warning[0] and out.exists()
    assert main(["plan", str(out)]) == 0
    assert "OVER by" in capsys.readouterr().out


def test_cli_prints_and_plan_shows_what_was_given_up(mobile, tmp_path, capsys):
    path, _, free_data = mobile
    from tflite_train.cli import main
    out = tmp_path / "t.tflite"
    budget = len(free_data) + CODE - 1
    assert main(["augment", str(path), "-o", str(out), "--num-classes", "4", "--lr", "0.05",
                 "--momentum", "0.5", "--seed", "1", "--flash-budget", str(budget)]) == 0
    text = capsys.readouterr().out
    assert "given up to keep the model" in text and "more SRAM" in text
    assert out.stat().st_size + CODE <= budget
    assert main(["plan", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["budgets"]["flash"] == budget and info["flash_budget"]["given_up"]
    assert info["flash"]["total"] == out.stat().st_size + CODE <= budget
    assert main(["plan", str(out)]) == 0
    text = capsys.readouterr().out
    assert "augment's --flash-budget" in text and "given up for it" in text


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5M", "12G"])
def test_bad_flash_budgets_are_one_line_errors(value, tmp_path, capsys):
    from tflite_train.cli import main
    from tflite_train.demo import EXAMPLE
    out = tmp_path / "t.tflite"
    with pytest.raises(SystemExit) as exc:             # argparse's usage error
        main(["augment", str(EXAMPLE), "-o", str(out), "--flash-budget", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and "expected a size" in err[-1] and not out.exists()


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "1M"])
def test_bad_flash_budgets_in_the_api(value):
    from tflite_train.demo import EXAMPLE
    with pytest.raises(TTError, match="--flash-budget"):
        augment(tflite_io.load(EXAMPLE), "bias-only", 4, HYPER,
                memory=MemoryOptions(flash_budget=value))


def test_a_larger_code_gives_up_conversions_under_the_default_budget(mobile, monkeypatch):
    """The budget follows TFLM_CODE_BYTES as it grows (read at run time)."""
    path, _, free_data = mobile
    monkeypatch.setattr(tflm_memory, "TFLM_CODE_BYTES",
                        tflm_memory.FLASH_BUDGET - len(free_data) + 1)
    r, data = run(path, tflm_memory.FLASH_BUDGET)
    assert record(data)["given_up"] and len(data) + tflm_memory.TFLM_CODE_BYTES <= \
        tflm_memory.FLASH_BUDGET


# MCUNet's 99kb model is the one nearest the budget's edge (2,700 B of 1 MB spare at round
# 26's code, about 0.3 KB at round 27's, 15 KB since round 28's int8 shifts); the person
# detector and MobileNetV2 are 200-350 KB under it and take the same path.
MCUNET = ("tiny-training", "mcunet-5fps.pkl")


@pytest.mark.slow
def test_the_default_budget_changes_mcunet_only_when_it_must():
    """int8 gradients, every pass on: when augment without a budget fits the default one
    (1 MB) with TFLM's code, the budget writes the same bytes; when it does not (our
    kernels grew), the budgeted model fits and records what it gave up."""
    from pathlib import Path
    path = SHARED_MODELS.joinpath(*MCUNET)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/models is only beside a project checkout)")
    from tflite_train.importers.tiny_training import import_pkl
    base = tflite_io.serialize(import_pkl(path))
    scheme = str(Path(__file__).resolve().parent.parent / "benchmarks" / "schemes"
                 / "mcunet-5fps_99kb.json")
    hyper = Hyper(seed=0, grad="int8")
    budgeted, free = [augment(tflite_io.parse(base), scheme, 10, hyper,
                              memory=MemoryOptions(flash_budget=b))
                      for b in (tflm_memory.FLASH_BUDGET, None)]
    written = [tflite_io.serialize(r.graph) for r in (budgeted, free)]
    assert len(written[0]) + CODE <= tflm_memory.FLASH_BUDGET
    if len(written[1]) + CODE <= tflm_memory.FLASH_BUDGET:
        assert written[0] == written[1]
    else:
        assert budgeted.memory.given_up and len(written[0]) < len(written[1])


def test_a_split_filter_given_up_keeps_the_filter_whole(tmp_path):
    """The demo model's last layer trains half its input channels, so its filter is split
    (256 B of SRAM less for about 1.2 KB of flash on this tiny layer); a budget that only the
    model without any conversion meets gives the split up too: the filter is whole again."""
    from tflite_train.demo import EXAMPLE
    scheme = tmp_path / "half.json"
    scheme.write_text(json.dumps({"n_bias_update": 2,
                                  "weight_update": [{"layer": -1, "ratio": 0.5}]}))
    free, free_data = run(EXAMPLE, None, str(scheme))
    assert [s.trained for s in free.memory.split] == [8] and free.memory.flash_requant
    _, bare = run(EXAMPLE, None, str(scheme), give_up=frozenset(conversions(free)))
    budget = len(bare) + CODE + room_for_the_record(free)
    r, data = run(EXAMPLE, budget, str(scheme))
    assert not r.memory.split and not r.memory.flash_requant
    rec = record(data)
    assert rec["fits"] and len(data) + CODE <= budget
    assert list(rec["given_up"]["split filter"]) == [free.memory.split[0].layer]
    # the filter is a whole variable again
    w = [t for t in r.graph.tensors if t.is_variable and t.dtype == "int8"]
    assert any(t.shape[-1] == 16 for t in w) and not any(t.name.endswith("/frozen")
                                                         for t in r.graph.tensors)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The demo model augmented under a budget that is not the default: it has a record."""
    from tflite_train.demo import EXAMPLE
    r, data = run(EXAMPLE, 1 << 24)
    assert record(data) == {"budget": 1 << 24, "tflm_code": CODE, "fits": True,
                            "given_up": {}, "sram_cost": 0}
    return tflite_io.parse(data)


GOOD = {"budget": 1 << 24, "tflm_code": CODE, "fits": True,
        "given_up": {"requantization in flash": {"conv": 64}}, "sram_cost": 64}


@pytest.mark.parametrize("memory", [
    [], "x", 7, {"flash_budget": []}, {"flash_budget": "x"}, {"flash_budget": None},
    {"flash_budget": {}},
    {"flash_budget": {**GOOD, "given_up": []}},
    {"flash_budget": {**GOOD, "given_up": "requantization in flash"}},
    {"flash_budget": {**GOOD, "given_up": None}},
    {"flash_budget": {**GOOD, "given_up": {"requantization in flash": []}}},
    {"flash_budget": {**GOOD, "given_up": {"requantization in flash": "conv"}}},
    {"flash_budget": {**GOOD, "given_up": {"requantization in flash": {"conv": "64"}}}},
    {"flash_budget": {**GOOD, "given_up": {"requantization in flash": {"conv": [64]}}}},
    {"flash_budget": {**GOOD, "given_up": {"requantization in flash": {"conv": True}}}},
    {"flash_budget": {**GOOD, "given_up": {"requantization in flash": {"conv": -1}}}},
    {"flash_budget": {**GOOD, "budget": "1M"}}, {"flash_budget": {**GOOD, "budget": 0}},
    {"flash_budget": {**GOOD, "budget": True}}, {"flash_budget": {**GOOD, "budget": 1.5}},
    {"flash_budget": {**GOOD, "sram_cost": None}}, {"flash_budget": {**GOOD, "sram_cost": []}},
])
def test_plan_ignores_a_malformed_flash_record(recorded, memory, tmp_path, capsys):
    """A record augment did not write is not shown: `plan` gives the default budget, as for a
    model without one, and no traceback (a list for given_up was an AttributeError)."""
    import copy
    from tflite_train.cli import main
    g = copy.deepcopy(recorded)
    meta = json.loads(g.metadata["tflite_train"])
    meta["memory"] = memory
    g.metadata["tflite_train"] = json.dumps(meta).encode()
    path = tmp_path / "m.tflite"
    tflite_io.save(g, path)
    assert main(["plan", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "flash_budget" not in info and info["budgets"]["flash"] == tflm_memory.FLASH_BUDGET
    assert main(["plan", str(path)]) == 0
    captured = capsys.readouterr()
    assert "augment's --flash-budget" not in captured.out and not captured.err


def test_plan_shows_a_well_formed_flash_record(recorded, tmp_path, capsys):
    """The malformed ones' control: GOOD itself is shown."""
    import copy
    from tflite_train.cli import main
    g = copy.deepcopy(recorded)
    meta = json.loads(g.metadata["tflite_train"])
    meta["memory"]["flash_budget"] = GOOD
    g.metadata["tflite_train"] = json.dumps(meta).encode()
    path = tmp_path / "m.tflite"
    tflite_io.save(g, path)
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "augment's --flash-budget" in out and "given up for it    1 conversion(s)" in out


def test_the_fuzzer_breaks_the_flash_record(recorded):
    """tests/fuzzing.py's "flash-record" mutation (the fuzz runs give `plan` such models):
    a record with one value of a wrong type, which `plan` reads without a traceback."""
    import fuzzing
    from tflite_train.cli import _flash_record
    g = tflite_io.parse(tflite_io.serialize(recorded))
    seen = set()
    for seed in range(60):
        g.metadata["tflite_train"] = fuzzing._flash_record_mutant(
            recorded.metadata["tflite_train"], random.Random(seed))
        rec = json.loads(g.metadata["tflite_train"])["memory"]["flash_budget"]
        seen.add(json.dumps(rec, sort_keys=True))
        shown = _flash_record(g)
        assert shown is None or shown == rec and shown != GOOD
    assert len(seen) > 20


def test_only_what_reports_memory_has_a_budget(tmp_path, capsys, monkeypatch):
    """The rate probe, --lr auto's trials and search's fine-tuning runs augment without a
    budget (its conversions change no bits: _fit would serialize for nothing); the memory
    planner of search keeps it and measures the bytes _fit wrote, not serialized again."""
    from test_train_defaults import synthetic_npz

    from tflite_train import augment as aug
    from tflite_train import data as data_mod
    from tflite_train import lr
    from tflite_train import train as train_mod
    from tflite_train.cli import main
    from tflite_train.demo import EXAMPLE
    from tflite_train.search import analysis, budget
    budgets = []
    fit = aug._fit
    monkeypatch.setattr(aug, "_fit", lambda first, b, again: budgets.append(b) or
                        fit(first, b, again))
    out = tmp_path / "m.tflite"
    npz = synthetic_npz(tmp_path / "d.npz", n=120)
    monkeypatch.setattr(lr, "AUTO_FACTORS", (1.0,))
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "3", "--lr",
                 "auto", "--data", str(npz), "--lr-test-steps", "2"]) == 0
    capsys.readouterr()
    # the written model and, before the range test, the default batch's model of batch 8
    # with the model-derived rates, which sizes it as it would be written (augment.
    # _default_batch): no trial
    assert budgets == [tflm_memory.FLASH_BUDGET] * 2
    budgets[:] = [tflm_memory.FLASH_BUDGET]
    model = EXAMPLE.read_bytes()
    settings = analysis.Settings(3, 2, 0, 0.1, 8, "numpy")
    settings.id("data", model)

    def no_training(*args, **kwargs):
        raise TTError("not trained here")
    monkeypatch.setattr(train_mod, "train", no_training)
    job = analysis.Job("b1", {"n_bias_update": 1}, None)
    assert analysis.fine_tune(model, data_mod.load(str(npz)), settings, job)["failed"]
    assert budgets == [tflm_memory.FLASH_BUDGET]
    serialized = []
    serialize = tflite_io.serialize
    monkeypatch.setattr(tflite_io, "serialize", lambda g: serialized.append(1) or serialize(g))
    cost = budget.MemoryModel(model, 3, "tflm", {}).cost_of("b1", {"n_bias_update": 1})
    assert budgets[1:] == [tflm_memory.FLASH_BUDGET] and len(serialized) == 1
    assert cost.total > 0
    # search --target codegen: the budget counts TFLM's code, which the program has not
    assert budget.MemoryModel(model, 3, "codegen", {}).cost_of("b1", {"n_bias_update": 1}) \
        .total > 0 and budgets[1:] == [tflm_memory.FLASH_BUDGET]


def conversion(layer, what, flash, sram, macs=None):
    return {"layer": layer, "pass": what, "flash_bytes": flash, "sram_bytes": sram,
            **({} if macs is None else {"macs": macs})}


REQ = "requantization in flash"


def test_give_up_order_weighs_speed_then_sram_and_never_overshoots_needlessly():
    """Round 27's incident in miniature: a requantization costs about its flash in SRAM, so
    the speed it costs decides (the fewest MACs per byte first); one that alone covers what
    is missing is preferred to several, and the smallest such; split filters (SRAM only,
    tens of KB a few hundred flash bytes) come after every requantization."""
    big_cheap = conversion("dw", REQ, 4900, 4600, macs=80_000)
    small_cheap = conversion("dw2", REQ, 1500, 1200, macs=80_000)
    hot = conversion("pw", REQ, 450, 170, macs=3_000_000)
    split = conversion("split", "split filter", 7000, 40_000)
    left = [hot, split, big_cheap, small_cheap]
    # 1.1 KB missing: dw2 covers it alone, with dw's MACs and less SRAM; pw (most MACs per
    # byte, least SRAM per byte: the old order's pick) is not touched
    assert _next_give_up(left, 1100) is small_cheap
    # 4.8 KB missing: only dw covers it among the requantizations
    assert _next_give_up(left, 4800) is big_cheap
    # 9 KB missing: none covers it alone; the least MACs per flash byte first
    assert _next_give_up(left, 9000) is big_cheap
    assert [c["layer"] for c in sorted(left, key=_give_up_order)] == ["dw", "dw2", "pw",
                                                                       "split"]
    # only splits left: they go too, the least SRAM per flash byte first
    other = conversion("split2", "split filter", 100, 90_000)
    assert _next_give_up([split, other], 50) is split
