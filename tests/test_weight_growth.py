"""benchmarks/weight_growth.py (RESULTS "Which trained layers need weight headroom, round
29"): where it places each trained layer, its one-line errors, and the rule's table pairing
runs by seed."""
import sys

import pytest

from conftest import ROOT, shared_model

sys.path.insert(0, str(ROOT / "benchmarks"))
import weight_growth as wg  # noqa: E402


@pytest.mark.parametrize("text", ["last:2", "fp32:person:last:2", "transfer:person:",
                                  "paper"])
def test_a_bad_run_is_a_one_line_error(text):
    with pytest.raises(ValueError) as exc:
        wg.parse_run(text)
    assert "protocol:model:scheme" in str(exc.value) and "\n" not in str(exc.value)


def test_a_run_keeps_the_colon_of_its_scheme():
    assert wg.parse_run("transfer:person:last:2") == ("transfer", "person", "last:2")


def test_the_layers_are_placed_from_the_head():
    """The person detector's sparse scheme: the last pointwise conv feeds the head (1), the
    partial ones are 3 and 5 layers from it, with their trained input channels; the new
    head and the bias-only layers are not listed."""
    from tflite_train import augment, tflite_io
    from tflite_train.autodiff import Hyper
    result = augment.augment(tflite_io.load(shared_model("person_detect")),
                             wg.SHORT["sparse"], 10, Hyper(lr=0.2, seed=0))
    got = {wg.short(v["layer"]): (v["kind"], v["to_head"], v["channels"])
           for v in wg.layers_of(result).values()}
    assert got == {"Conv2d_13_pointwise": ("CONV_2D", 1, 256),
                   "Conv2d_12_pointwise": ("CONV_2D", 3, 64),
                   "Conv2d_11_pointwise": ("CONV_2D", 5, 32)}


def test_the_rule_table_pairs_by_seed():
    """Each run minus fp32 and minus the default on the seeds both have, from the files'
    rows (a seed missing from one side is left out of the pair, not of the row's mean)."""
    def row(scheme, variant, grad, seed, acc):
        return {"scheme": scheme, "variant": variant, "grad": grad, "seed": seed,
                "val_accuracy": acc}
    t28 = {"rows": [row("last:2", "int8 + QAS", "int8", 0, 0.50),
                    row("last:2", "int8 + QAS", "int8", 1, 0.60),
                    row("last:2", "int8 + QAS", "float32", 0, 0.99),
                    row("last:2", "fp32", "-", 0, 0.52), row("last:2", "fp32", "-", 1, 0.64)]}
    h2 = {"rows": [row("last:2", "int8 + QAS, weight headroom 2x", "int8", 0, 0.51)]}
    auto = {"rows": [row("last:2", "int8 + QAS, weight headroom auto", "int8", 0, 0.53),
                     row("last:2", "int8 + QAS, weight headroom auto", "int8", 1, 0.62)]}

    def run(variant, seed, acc, **kw):
        return {"model": "m", "scheme": "last:6", "variant": variant, "seed": seed,
                "steps": 10, "val": 5, "val_accuracy": acc, **kw}
    qas = {"grad": "int8", "head_headroom": 12.0, "head_residual": True}
    pa = {"runs": [run("qas", 0, 0.80, **qas), run("fp32", 0, 0.81),
                   run("qas", 0, 0.70, grad="int8", head_headroom=12.0)]}   # no residual
    pa_h2 = {"runs": [run("qas", 0, 0.79, weight_headroom=2.0, **qas)]}
    pa_auto = {"steps": 10, "val": 5, "seeds": [0],
               "runs": [run("qas", 0, 0.805, weight_headroom="auto", **qas)]}
    text = wg.render_rule(t28, h2, auto, pa, pa_h2, pa_auto)
    lines = {tuple(c.strip() for c in line.split("|")[1:4]): line
             for line in text.splitlines() if line.startswith("| ")}
    assert "| 0: 53.0 / 1: 62.0 | 57.50 +- 4.50 | -0.50 +- 1.50 (n=2) | +2.50 +- 0.50 (n=2) |" \
        in lines[("person", "last:2", "headroom auto")]
    assert "| 0: 51.0 | 51.00 | -1.00 (n=1) | +1.00 (n=1) |" \
        in lines[("person", "last:2", "headroom 2x")]
    assert "| 0: 80.5 | 80.50 | -0.50 (n=1) | +0.50 (n=1) |" \
        in lines[("m", "last:6", "headroom auto")]
    assert "| 0: 80.0 | 80.00 | -1.00 (n=1) | - |" in lines[("m", "last:6", "default")]
