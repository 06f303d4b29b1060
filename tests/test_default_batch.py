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
    assert result.graph is graph
    assert tflite_io.serialize(graph) == _bytes("bias-only", Hyper()) != before


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
