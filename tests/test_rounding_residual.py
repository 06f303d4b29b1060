"""benchmarks/rounding_residual.py (RESULTS "A rounding residual for QAS, round 24"): its
stand-in for the weight update is the product's rule when told to round stochastically, it
reaches every weight update op of the numpy engine (fused ones too), and its residual
rules carry the remainder as documented."""
import sys

import numpy as np

from conftest import ROOT
from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.data import Dataset
from tflite_train.demo import EXAMPLE
from tflite_train.train import Trainer

sys.path.insert(0, str(ROOT / "benchmarks"))
import rounding_residual as rr  # noqa: E402


def trained(mode: str | None, steps: int = 12) -> dict:
    """The example model's last:2 (fused conv and fully-connected weight updates) after
    `steps` numpy-engine steps, with the weight update patched to `mode` (None: not)."""
    rng = np.random.default_rng(3)
    y = np.arange(16) % 4
    x = (rng.integers(0, 64, (16, 32, 32)) + 48 * y[:, None, None]).astype(np.uint8)
    ds = Dataset("tiny", x, y, [str(c) for c in range(4)])
    r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4,
                        Hyper(lr=0.05, bias_lr=0.001, decay_steps=steps, seed=1,
                              head_residual=False))
    assert any(op.kind.endswith("_WEIGHT_UPDATE") for op in r.graph.operators)
    tr = Trainer(r.graph, ds, "numpy")
    if mode is None:
        for i in range(steps):
            tr.step(i % 16)
    else:
        with rr.patched(mode, seed=1):
            for i in range(steps):
                tr.step(i % 16)
    return tr.parameters()


def test_stochastic_stand_in_is_the_product_and_residuals_reach_every_weight_update():
    base = trained(None)
    same = trained("stochastic")
    assert base.keys() == same.keys()
    for name in base:
        assert np.array_equal(base[name], same[name]), name
    weights = [n for n, v in base.items() if v.dtype == np.int8]
    assert len(weights) >= 2                        # the conv's and the head's
    for mode in ("f32", "q8", "q8-sr"):
        other = trained(mode)
        for name in weights:                        # each weight op took the residual rule
            assert not np.array_equal(base[name], other[name]), (mode, name)


def run_steps(delta: float, n: int, mode: str) -> tuple[float, float]:
    state: dict = {}
    rng = np.random.default_rng(0)
    d = np.full(64, delta, np.float32)
    total = sum(rr.residual_step(d, state, mode, rng) for _ in range(n))
    return total, state["residual"]


def test_float_residual_keeps_every_fraction():
    total, r = run_steps(0.3, 10, "f32")
    assert np.all(total == 3) and np.allclose(r, 0, atol=1e-5)
    total, r = run_steps(-0.7, 7, "f32")            # steps plus residual = the sum of deltas
    assert np.allclose(total + r, -4.9, atol=1e-5) and np.all(np.abs(r) <= 0.5)


def test_int8_residual_to_nearest_drops_steps_below_half_a_unit():
    total, r = run_steps(1 / 1024, 2000, "q8")
    assert np.all(total == 0) and np.all(r == 0)
    total, r = run_steps(1 / 256, 2000, "q8")       # one unit a step: exact
    assert np.all(total + r == 2000 / 256)
    assert np.all(r * 256 == np.rint(r * 256)) and np.all(np.abs(r) <= 0.5)
    rng = np.random.default_rng(5)                  # mixed steps: the sum of their 1/256ths
    deltas = rng.normal(0, 0.3, (500, 64)).astype(np.float32)
    state: dict = {}
    total = sum(rr.residual_step(d, state, "q8") for d in deltas)
    codes = state["residual"] * 256
    assert np.all((codes >= -128) & (codes <= 127))
    assert np.array_equal(256 * total + codes, np.rint(deltas * 256).sum(axis=0))


def test_int8_residual_rounded_stochastically_is_unbiased():
    total, r = run_steps(1 / 1024, 20000, "q8-sr")  # 19.53 LSB expected
    assert abs(np.mean(total + r) - 20000 / 1024) < 0.5
    assert np.all(r * 256 == np.rint(r * 256))
