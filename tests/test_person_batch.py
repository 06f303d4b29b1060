"""benchmarks/person_ceiling.py's gradient accumulation (`--batch`, RESULTS "A batch for the
person detector's bias-only, round 22"): batch 1 is head_sgd's batch-1 SGD, and batch B is
one update a step with the mean gradient of B samples taken at the step's parameters."""
import sys

import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import person_ceiling as pc  # noqa: E402


def data(n=48, d=12, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d)) * 0.3
    y = rng.integers(0, classes, n)
    head = {"codes": rng.integers(-16, 17, (classes, d)).astype(np.float64),
            "w_scale": 0.01, "b_scale": 1e-4, "z_scale": 0.125}
    return X, y, head


def test_batch_1_is_head_sgd():
    X, y, head = data()
    order = np.random.default_rng(1).permutation(len(y))
    for int8 in (False, True):
        a = pc.head_sgd(X, y, X, y, 4.0, "cosine over the run", order, head, int8, 3, 0.25,
                        x2=2.0)
        b = pc.head_batch(X, y, X, y, 2.0, 0.5, "cosine over the run", order, head, int8, 3, 1)
        assert a == b


def test_batch_b_is_one_mean_gradient_step_at_the_steps_parameters():
    X, y, head = data()
    B, lr_w, lr_b = 4, 3.0, 0.7
    order = np.random.default_rng(2).permutation(len(y))
    W, b, _ = pc.head_batch_params(X, y, lr_w, lr_b, "inverse time, T=50", order, head, False,
                                   0, B)
    Wr, br = head["codes"] * head["w_scale"], np.zeros(10)
    steps = order.reshape(-1, B)
    for t, idx in enumerate(steps):
        P = pc.softmax(X[idx] @ Wr.T + br)
        P[np.arange(B), y[idx]] -= 1
        f = 50 / (50 + t)
        Wr, br = Wr - lr_w * f * P.T @ X[idx] / B, br - lr_b * f * P.mean(0)
    # float32 accumulation against float64: agreement to float32's precision
    assert np.allclose(W, Wr, rtol=0, atol=1e-5) and np.allclose(b, br, rtol=0, atol=1e-5)
    assert not np.allclose(W, head["codes"] * head["w_scale"], atol=1e-3)


def test_int8_batch_stays_on_the_grids():
    X, y, head = data()
    W, b, _ = pc.head_batch_params(X, y, 5.0, 1.0, "constant", np.arange(48), head, True, 0, 8)
    assert np.allclose(W / head["w_scale"], np.rint(W / head["w_scale"]), atol=1e-6)
    assert np.abs(np.rint(W / head["w_scale"])).max() <= 127
    assert np.allclose(b / head["b_scale"], np.rint(b / head["b_scale"]), atol=1e-4)
