"""benchmarks/default_schedule.py's bookkeeping: runs of other gradients or head factors are
other rows (never skipped as done, never averaged together), the before/after table pairs
the runs of two checkouts, and --head-factor scales the new head's rates and nothing else."""
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import default_schedule as ds  # noqa: E402


def run(model="person", seed=0, acc=0.3, grad="int8", head=1.0, schedule="default",
        rule=ds.RULE):
    r = {"model": model, "schedule": schedule, "seed": seed, "steps": 300, "val": 1000,
         "val_accuracy": acc, "loss_first": 2.4, "loss_last": 1.9, "head_lr": 1.53,
         "half_life_steps": 30, "decay_steps": 0, "weight_boost": 1.0, "seconds": 1.0}
    if grad is not None:
        r["grad"] = grad
    if head is not None:
        r["head_factor"] = head
    if rule is not None:
        r["rule"] = rule
    return r


def test_runs_of_other_gradients_or_head_factors_are_other_keys():
    base = ds.key(run())
    assert ds.key(run(grad="float32")) != base
    assert ds.key(run(head=2.0)) != base
    # the table's first runs record neither: float32 gradients, the rule's head, and the
    # rule before round 18
    assert ds.key(run(grad=None, head=None, rule=None)) == ds.key(
        run(grad="float32", head=1.0, rule=ds.OLD_RULE))


def test_runs_of_the_rule_before_round_18_are_not_skipped_on_a_rerun():
    """Round 18 changed the rule (probe inputs, head bias, ETA_HEAD): a run that records no
    rule is of the rule before, so a rerun of its schedule today is made, not skipped."""
    old = run(schedule="inv30x3", grad=None, head=None, rule=None)
    new = run(schedule="inv30x3", grad=None, head=None)
    assert ds.key(old) != ds.key(new)
    assert not ds.current(old) and ds.current(new)
    todo = ds.todo_key("person", "inv30", 0, 300, 1000, ds.GRAD, 1.0)
    assert todo not in ds.done_keys({"runs": [old]})
    assert todo in ds.done_keys({"runs": [old, new]})
    # and the table keeps the two rules' runs in two rows, the new one labelled
    lines = ds.render({"runs": [old, run(schedule="inv30x3", grad=None, head=None, acc=0.6)]}
                      ).splitlines()[2:]
    assert len(lines) == 2
    assert any("rule round18" in line and "0: 60.0" in line for line in lines)
    assert any("rule" not in line and "0: 30.0" in line for line in lines)
    # inv30x3 is today's default schedule; the old rule's runs of it are not today's default
    assert ds.default_name() == "inv30x3"
    assert any("| inv30x3 (default), rule round18 |" in line for line in lines)
    assert any("| inv30x3 (default before round 18) |" in line for line in lines)


def test_run_one_records_the_rule(monkeypatch):
    from types import SimpleNamespace

    from tflite_train import augment, data, train
    meta = {"half_life_steps": 30, "decay_steps": 0, "trained": [{"lr": 1.0}]}
    graph = SimpleNamespace(tensors=[SimpleNamespace(shape=(1, 4))], inputs=[0])
    monkeypatch.setattr(ds, "load_model", lambda path: None)
    monkeypatch.setattr(ds, "schedule_hyper", lambda *a: None)
    monkeypatch.setattr(augment, "augment",
                        lambda *a: SimpleNamespace(graph=graph, metadata=meta))
    monkeypatch.setattr(data, "load", lambda *a: list(range(20)))
    monkeypatch.setattr(train, "Trainer", lambda *a: SimpleNamespace(
        step=lambda i: 1.0, accuracy=lambda idx: 0.5))
    r = ds.run_one("person", "inv30", 0, 10, 5)
    assert r["rule"] == ds.RULE and ds.current(r)
    assert ds.key(r) == ds.todo_key("person", "inv30", 0, 10, 5, ds.GRAD, 1.0)


def test_the_default_schedule_table_keeps_other_gradients_apart():
    doc = {"runs": [run(schedule="inv30x3", grad=None, head=None, acc=0.7),
                    run(schedule="inv30x3", grad="int8", acc=0.2)]}
    lines = ds.render(doc).splitlines()[2:]
    assert len(lines) == 2
    assert any("int8 gradients" in line and "0: 20.0" in line for line in lines)
    assert any("int8" not in line and "0: 70.0" in line for line in lines)


def test_before_after_pairs_the_two_checkouts_row_by_row():
    before = {"runs": [run(seed=s, acc=a) for s, a in ((0, .2), (1, .4), (2, .3))]
              + [run(seed=0, acc=.25, head=2.0), run(seed=0, acc=.5, schedule="inv50x2")]}
    after = {"runs": [run(seed=s, acc=a) for s, a in ((0, .3), (1, .4), (2, .5))]
             + [run(model="mcunet", grad="float32", acc=.7)]}
    lines = ds.render_before_after(before, after).splitlines()
    assert lines[0].count("| seed ") == 3
    body = lines[2:]
    # bias-only before, bias-only after, head x2 before, MCUNet after; no inv50x2 row
    assert len(body) == 4
    assert body[0].startswith("| person detector, bias-only | int8 | before")
    assert "| 20.0 | 40.0 | 30.0 | 30.0 +- 5.8 |" in body[0]
    assert "| 30.0 | 40.0 | 50.0 | 40.0 +- 5.8 |" in body[1] and "after" in body[1]
    assert "head x2" in body[2] and "| 25.0 | - | - | 25.0 |" in body[2]
    assert body[3].startswith("| MCUNet-5FPS, 99kb | float32 | after")


def test_head_factor_scales_the_new_heads_rates_only(zoo):
    from tflite_train import lr, tflite_io
    from tflite_train.autodiff import Hyper
    graph = tflite_io.load(zoo["dense"])
    hyper = Hyper(seed=0)
    rates = lr.model_rates(graph, "full", 10, 0)
    plain = lr.scaled(rates, lr.schedule_boost(hyper), lr.weight_boost(hyper, rates.density))
    doubled = ds.head_scaled_rates(graph, "full", 0, 2.0, hyper)
    assert ds.head_scaled_rates(graph, "full", 0, 1.0, hyper) == plain
    head = [k for k, r in rates.items() if r.rule == "nlms"]
    assert len(head) == 1 and len(rates) > 1
    for k in rates:
        if k in head:
            assert doubled[k][0] == pytest.approx(2 * plain[k][0], rel=0.01)
            assert doubled[k][1] == pytest.approx(2 * plain[k][1], rel=0.01)
        else:
            assert doubled[k] == plain[k]
    with pytest.raises(SystemExit):
        ds.schedule_hyper("inv30x3", 300, 0, graph, "full", "int8", 2.0)
