"""Update schemes: parsing, layer addressing, the channel rule, and every bad scheme file
failing with a message that names the bad entry."""
import json

import pytest

from conftest import shared_model
from tflite_train import scheme, tflite_io
from tflite_train.scheme import SchemeError


@pytest.fixture(scope="module")
def pd():
    return tflite_io.load(shared_model("person_detect"))


@pytest.fixture(scope="module")
def example():
    """The built-in example: layers 0..7 = CONV, DW, CONV, DW, CONV, DW, CONV, FC."""
    from tflite_train.demo import EXAMPLE
    return tflite_io.load(EXAMPLE)


def test_layer_numbering_counts_conv_dw_fc_in_order(pd):
    layers = scheme.layer_ops(pd)
    assert len(layers) == 28            # 14 CONV_2D + 14 DEPTHWISE_CONV_2D (classifier included)
    assert all(pd.operators[k].kind in scheme.LAYER_KINDS for k in layers)
    assert layers == sorted(layers)


def test_builtin_schemes(pd):
    full = scheme.parse("full", pd)
    assert len(full.layers) == 28 and all(u.bias and u.weight_channels for u in full.layers.values())
    bias = scheme.parse("bias-only", pd)
    assert all(u.bias and not u.weight_channels for u in bias.layers.values())
    assert len(bias.layers) == 28
    b1 = scheme.parse("bias-only:1", pd)
    assert list(b1.layers) == [scheme.layer_ops(pd)[-1]]
    last2 = scheme.parse("last:2", pd, exclude={28})
    assert sorted(last2.layers) == [25, 26]
    assert last2.layers[26].weight_channels == 256


def test_json_scheme_with_ratios_names_and_negative_indices(pd, tmp_path):
    name = pd.tensors[pd.operators[24].outputs[0]].name
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"n_bias_update": 3, "weight_update": [
        {"layer": -1, "ratio": 0.5}, {"layer": name, "ratio": "1/8"},
        {"layer": 23, "ratio": 1}, {"layer": 22, "ratio": 0}]}))
    s = scheme.parse(str(p), pd, exclude={28})
    layers = scheme.layer_ops(pd, {28})
    assert s.layers[layers[-1]].weight_channels == 128        # first half of 256 inputs
    assert s.layers[24].weight_channels == 16                  # ceil(128 / 8)
    assert s.layers[23].weight_channels == 128                 # depthwise: all channels
    assert 22 not in s.layers or not s.layers[22].weight_channels
    assert sum(u.bias for u in s.layers.values()) == 3


@pytest.mark.parametrize("doc, fragment", [
    ([1, 2], "expected a JSON object"),
    ({"n_bias_update": -1}, "n_bias_update"),
    ({"n_bias_update": 99}, "n_bias_update"),
    ({"n_bias_update": "3"}, "n_bias_update"),
    ({"weights": []}, "unknown key"),
    ({"weight_update": {"layer": 1}}, "must be a list"),
    ({"weight_update": [{"layer": 99, "ratio": 1}]}, "weight_update[0]: layer 99 out of range"),
    ({"weight_update": [{"layer": 1, "ratio": 1}, {"layer": 5, "ratio": 0.3}]},
     "weight_update[1]: ratio must be one of"),
    ({"weight_update": [{"layer": "no/such/tensor", "ratio": 1}]}, "no layer has an output"),
    ({"weight_update": [{"layer": 2, "ratio": 1}, {"layer": 2, "ratio": 0.5}]}, "listed twice"),
    ({"weight_update": [{"layer": 1, "ratio": 0.5}]}, "depthwise"),
    ({"weight_update": [{"ratio": 0.5}]}, "weight_update[0]: expected"),
    ({"weight_update": [{"layer": True, "ratio": 1}]}, "layer must be"),
    ({"weight_update": [{"layer": 2, "ratio": "half"}]}, "not a number"),
    # a search record's budget and target are read (augment's default batch keeps them)
    ({"search": "by hand"}, "search must be the record `tflite-train search` writes"),
    ({"search": {"target": "tflm"}}, "budget_bytes (a positive integer)"),
    ({"search": {"target": "tflm", "budget_bytes": 0}}, "budget_bytes"),
    ({"search": {"target": "tflm", "budget_bytes": True}}, "budget_bytes"),
    ({"search": {"target": "mcu", "budget_bytes": 1000}}, "target (tflm or codegen)"),
])
def test_bad_scheme_files(example, tmp_path, doc, fragment):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(SchemeError) as exc:
        scheme.parse(str(p), example)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bad_scheme_specs(example, tmp_path):
    for spec, fragment in [("last:x", "not an integer"), ("last:99", "out of range"),
                           ("bias-only:-1", "out of range"), ("everything", "unknown scheme"),
                           (str(tmp_path / "missing.json"), "no such file")]:
        with pytest.raises(SchemeError) as exc:
            scheme.parse(spec, example)
        assert fragment in str(exc.value)
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(SchemeError, match="not valid JSON"):
        scheme.parse(str(p), example)


def test_a_search_record_gives_its_budget(example, tmp_path):
    """What search writes: its record's budget and target, nothing else of it."""
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"n_bias_update": 2, "search": {
        "budget_bytes": 102400, "target": "codegen", "memory_bytes": 99000, "any": [1]}}))
    assert scheme.parse(str(p), example).searched == {"target": "codegen",
                                                        "budget_bytes": 102400}
    p.write_text(json.dumps({"n_bias_update": 2}))
    assert scheme.parse(str(p), example).searched is None
    assert scheme.parse("bias-only", example).searched is None
