"""The batch augment chooses when none is given (Hyper.batch None, the CLI's default):
augment.DEFAULT_BATCH where the scheme trains no pretrained weight and the model with its
accumulators fits the SRAM budget, batch 1 otherwise."""
import numpy as np
import pytest

from tflite_train import augment, tflite_io, tflm_memory, training_ops
from tflite_train.autodiff import Hyper
from tflite_train.cli import main
from tflite_train.demo import EXAMPLE
from conftest import shared_model


def _batches(result):
    return {training_ops.batch_of(op) for op in result.graph.operators
            if op.kind.startswith("TT_") and op.kind.endswith("UPDATE")}


def _bytes(scheme, hyper):
    return tflite_io.serialize(augment.augment(tflite_io.load(EXAMPLE), scheme, 4, hyper).graph)


def test_a_scheme_of_biases_and_a_new_head_gets_the_default_batch():
    result = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper(batch=None))
    assert result.hyper.batch == augment.DEFAULT_BATCH == 8
    assert _batches(result) == {8}
    assert result.batch_choice.batch == 8 and "within 262,144" in result.batch_choice.why
    # the same model as asking for it
    assert tflite_io.serialize(result.graph) == _bytes("bias-only", Hyper(batch=8))


def test_a_scheme_that_trains_weights_stays_at_batch_1():
    result = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4, Hyper(batch=None))
    assert result.hyper.batch == 1 and _batches(result) == {1}
    assert result.batch_choice.why is None
    assert tflite_io.serialize(result.graph) == _bytes("last:2", Hyper())


def test_over_the_sram_budget_the_default_is_batch_1(monkeypatch):
    """The fallback augments the untouched input again: the same bytes as batch 1."""
    monkeypatch.setattr(tflm_memory, "SRAM_BUDGET", 1000)
    graph = tflite_io.load(EXAMPLE)
    before = tflite_io.serialize(graph)
    result = augment.augment(graph, "bias-only", 4, Hyper(batch=None))
    assert result.hyper.batch == 1 and _batches(result) == {1}
    assert "over 1,000" in result.batch_choice.why
    assert tflite_io.serialize(graph) == before
    assert tflite_io.serialize(result.graph) == _bytes("bias-only", Hyper()) != before


def test_an_explicit_batch_is_kept():
    result = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper(batch=2))
    assert result.hyper.batch == 2 and result.batch_choice is None


def test_bad_input_is_refused_before_the_choice(tmp_path):
    """The checks the choice reads the scheme with say what augment says."""
    trained = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper())
    with pytest.raises(augment.ModelError, match="already a training model"):
        augment.augment(trained.graph, "bias-only", 4, Hyper(batch=None))
    with pytest.raises(augment.TTError, match="layer 99 out of range"):
        augment.augment(tflite_io.load(EXAMPLE),
                        {"n_bias_update": 1, "weight_update": [{"layer": 99, "ratio": 1}]},
                        4, Hyper(batch=None))


def test_cli_says_which_batch_it_chose(tmp_path, capsys):
    out = tmp_path / "m.train.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "4"]) == 0
    text = capsys.readouterr().out
    assert "batch 8 (default): the scheme trains no pretrained weight" in text
    assert main(["augment", str(EXAMPLE), "-o", str(tmp_path / "b1.tflite"),
                 "--num-classes", "4", "--batch", "1"]) == 0
    assert "(default)" not in capsys.readouterr().out
    assert tflite_io.serialize(tflite_io.load(out)) == _bytes("bias-only", Hyper(batch=8))


def test_the_person_detectors_bias_only_default_is_batch_8():
    """Issue 15's case (its 300 default steps reach 61.4 +- 0.7% at batch 8, 33.0 +- 2.0% at
    batch 1: benchmarks/RESULTS.md)."""
    result = augment.augment(tflite_io.load(shared_model("person_detect")), "bias-only", 10,
                             Hyper(batch=None))
    assert result.hyper.batch == 8
    sram = tflm_memory.account(result.graph, 0)["sram_total"]
    assert sram <= tflm_memory.SRAM_BUDGET


def _count(monkeypatch, module, name):
    """Calls of module.name from now on, as a list of their arguments."""
    calls, real = [], getattr(module, name)

    def counted(*args, **kw):
        calls.append((args, kw))
        return real(*args, **kw)
    monkeypatch.setattr(module, name, counted)
    return calls


def test_the_fallback_probes_the_model_once(monkeypatch):
    """Batch 8 over the budget: batch 1 reuses the first run's probe of the model-derived
    rates (they do not depend on the batch) and validates the input once, as augment
    --batch 1 does; the same bytes as it (before round 25: two probes, five validations)."""
    from tflite_train import lr, ops
    monkeypatch.setattr(tflm_memory, "SRAM_BUDGET", 1000)
    probes, checks = _count(monkeypatch, lr, "probe"), _count(monkeypatch, ops, "validate")
    result = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper(batch=None))
    assert result.hyper.batch == 1 and len(probes) == 1
    # the probe's own training model is validated too (lr.probe augments a copy)
    default_checks, checks[:] = len(checks), []
    assert tflite_io.serialize(result.graph) == _bytes("bias-only", Hyper())
    assert default_checks == len(checks) == 2


def test_a_scheme_that_trains_weights_validates_once(monkeypatch):
    from tflite_train import ops
    checks = _count(monkeypatch, ops, "validate")
    augment.augment(tflite_io.load(EXAMPLE), "last:2", 4, Hyper(batch=None))
    default_checks, checks[:] = len(checks), []
    augment.augment(tflite_io.load(EXAMPLE), "last:2", 4, Hyper())
    assert default_checks == len(checks)


def _lr_auto(tmp_path, capsys, *more):
    from test_train_defaults import synthetic_npz
    out = tmp_path / "auto.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "3", "--lr",
                 "auto", "--data", str(synthetic_npz(tmp_path / "d.npz")),
                 "--lr-test-steps", "4", *more]) == 0, capsys.readouterr()
    return tflite_io.load(out), capsys.readouterr().out


def _head(graph):
    meta = augment.training_metadata(graph)
    head = next(r for r in meta["trained"] if r["layer"] == "head/logits")
    w = next(t for t in graph.tensors if t.name == "head/weights")
    return meta, head, w


def test_lr_auto_tunes_at_the_default_batch(tmp_path, capsys, monkeypatch):
    """--lr auto with the default batch: the range test trains the batch-8 model (updates
    of 8 samples, the head's rates x 8 and its grid as augment gives them at batch 8), and
    the model gets what it chose: the default batch-8 model's rates x the chosen factor,
    its head's grid. (Before round 25 the test ran at batch 1 and the batch-8 model got the
    head's batch-1 rate on an 8x finer grid.)"""
    from tflite_train import lr, train
    updates = _count(monkeypatch, train.Trainer, "update")
    tests = _count(monkeypatch, lr, "range_test")
    graph, text = _lr_auto(tmp_path, capsys)
    assert "4 updates of batch 8" in text and "batch 8 (default)" in text
    meta, head, w = _head(graph)
    rule = meta["lr_rule"]
    assert meta["batch"] == 8 and rule["rule"] == "range test"
    assert rule["base"]["head_boost"] == 8.0
    assert len(tests) == 1 and tests[0][0][3].batch == 8
    assert {len(args[1]) for args, _ in updates} == {8}
    assert len(updates) == 4 * len(rule["candidates"])
    default = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 3, Hyper(batch=8))
    d_meta, d_head, d_w = _head(default.graph)
    f = rule["chosen_factor"]
    for row, ref in zip(meta["trained"], d_meta["trained"]):
        for key in ("lr", "bias_lr"):
            if ref[key] is not None:      # each rounded to 3 significant digits
                assert row[key] == pytest.approx(ref[key] * f, rel=1e-2), (row, ref)
    assert np.array_equal(w.quant.scale, d_w.quant.scale)


def test_lr_auto_at_an_explicit_batch_and_over_budget(tmp_path, capsys, monkeypatch):
    """--batch 2 tunes at batch 2; the default over the SRAM budget tunes once, at batch 1,
    and writes what --batch 1 writes."""
    from tflite_train import lr
    tests = _count(monkeypatch, lr, "range_test")
    graph, text = _lr_auto(tmp_path, capsys, "--batch", "2")
    assert [t[0][3].batch for t in tests] == [2] and "4 updates of batch 2" in text
    assert augment.training_metadata(graph)["lr_rule"]["base"]["head_boost"] == 2.0
    monkeypatch.setattr(tflm_memory, "SRAM_BUDGET", 1000)
    tests[:] = []
    graph, text = _lr_auto(tmp_path, capsys)
    assert [t[0][3].batch for t in tests] == [1] and "batch 1 (default)" in text
    one, _ = _lr_auto(tmp_path, capsys, "--batch", "1")
    assert tflite_io.serialize(graph) == tflite_io.serialize(one)
