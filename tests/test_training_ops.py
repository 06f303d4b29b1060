"""The TT_* contract: schema <-> numpy kernels, option checking, the xorshift32 stream and
stochastic rounding."""
import numpy as np
import pytest

from tflite_train import ops, training_ops
from tflite_train.errors import ModelError


def test_every_schema_op_has_a_numpy_kernel_and_back():
    schema_ops = set(training_ops.schema()["ops"])
    registered = {k for k in ops.REGISTRY if k.startswith("TT_")}
    assert schema_ops == registered


def test_options_are_checked_against_the_schema():
    with pytest.raises(ModelError, match="options"):
        training_ops.make_op("TT_SAVE_SLICE", [0, 1], [2])
    with pytest.raises(ModelError, match="out of range"):
        training_ops.make_op("TT_SAVE_SLICE", [0, 1], [2], channels=0)
    with pytest.raises(ModelError, match="is not int"):
        training_ops.make_op("TT_SAVE_SLICE", [0, 1], [2], channels=1.5)
    op = training_ops.make_op("TT_PAD_GRAD", [0, 1], [2], before=[0, 1, 1, 0])
    assert training_ops.options_of(op) == {"before": [0, 1, 1, 0]}


def scalar_xorshift(state, n):
    out = []
    for _ in range(n):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out.append(state)
    return out, state


@pytest.mark.parametrize("seed, n", [(1, 1), (2463534242, 100), (0xDEADBEEF, 1000), (7, 3)])
def test_xorshift_stream_matches_the_scalar_definition(seed, n):
    got, state = training_ops.xorshift32_stream(seed, n)
    want, want_state = scalar_xorshift(seed, n)
    assert got.tolist() == want and state == want_state


def test_stream_continues_across_calls():
    a, s = training_ops.xorshift32_stream(12345, 50)
    b, _ = training_ops.xorshift32_stream(s, 50)
    whole, _ = training_ops.xorshift32_stream(12345, 100)
    assert np.array_equal(np.concatenate([a, b]), whole)


def run_update(delta_values, rounding, seed=5, steps=1, engine="numpy"):
    """Apply TT_UPDATE_BIAS with a gradient chosen so that the float update is `delta`, in
    the numpy kernel or (engine "c") the C one."""
    from tflite_train.ir import Graph, Quantization, Tensor
    n = len(delta_values)
    g = Graph(tensors=[Tensor("b", (n,), "int32", Quantization(np.ones(n, np.float32),
                                                               np.zeros(n, np.int64)),
                              is_variable=True),
                       Tensor("g", (n,), "float32"), Tensor("label", (1,), "int32")],
              operators=[], inputs=[], outputs=[])
    op = training_ops.make_op("TT_UPDATE_BIAS", [0, 1, -1, 2], [], lr=1.0, momentum=0.0,
                              qas=True, rounding=rounding, seed=seed, decay_steps=0,
                              half_life_steps=0)
    b = np.zeros(n, np.int32)
    state = {}
    update = ops.REGISTRY["TT_UPDATE_BIAS"].forward
    if engine == "c":
        from tflite_train.runtime.c_kernels import C_KERNELS
        update = C_KERNELS["TT_UPDATE_BIAS"][0]
    for _ in range(steps):
        update(g, op, [b, -np.asarray(delta_values, np.float32), None, np.array([0], np.int32)],
               state)
    return b


def test_stochastic_rounding_is_reproducible_for_a_seed():
    d = np.full(1000, 0.3)
    assert np.array_equal(run_update(d, 1, seed=9), run_update(d, 1, seed=9))
    assert not np.array_equal(run_update(d, 1, seed=9), run_update(d, 1, seed=10))


def test_stochastic_rounding_is_unbiased_and_nearest_loses_small_updates():
    # Bounds: 4 standard errors of the mean (a seeded stream, so a fixed draw; the bound
    # says how far a fair one may stray). Measured: -0.00105, -0.00105 and -0.066.
    def se(p, n, steps=1):
        return 4 * np.sqrt(steps * p * (1 - p) / n)

    d = np.full(20000, 0.3)
    b = run_update(d, 1)
    assert set(np.unique(b)) <= {0, 1}
    assert abs(b.mean() - 0.3) < se(0.3, 20000)                     # 0.013
    assert not run_update(d, 0).any()                   # nearest: a 0.3 LSB update vanishes
    neg = run_update(np.full(20000, -0.7), 1)
    assert set(np.unique(neg)) <= {-1, 0}
    assert abs(neg.mean() + 0.7) < se(0.3, 20000)
    # over many steps the stochastic sum tracks the float sum (40 draws of Bernoulli(0.05))
    assert abs(run_update(np.full(500, 0.05), 1, steps=40).mean() - 2.0) < se(0.05, 500, 40)


def test_stochastic_rounding_adds_in_float32_as_the_c_kernel_does():
    """floor(delta + u) with the sum rounded to float32 (tt_param_grad.c), not taken exactly:
    updates of about 101 LSBs (float32 steps of 2^-17) made to land just beside an integer
    once the stream's u is added, where the two differ, give the C kernel's integers."""
    n = 2000
    u, _ = training_ops.uniform(training_ops.seed_state(5), n)
    delta = (101.0 - u.astype(np.float64)).astype(np.float32)
    exact = np.floor(delta.astype(np.float64) + u.astype(np.float64))
    got = run_update(delta, 1)
    assert np.array_equal(got, run_update(delta, 1, engine="c"))
    assert np.count_nonzero(got != exact) > n // 4       # the cases are there: 1,029 of 2,000


def test_bias_steps_past_float32_integers_saturate_in_numpy_and_c():
    """Steps of 2^23 LSBs and more (float32 holds only integers there: the C kernel adds them
    without its rounding step, converting through int64) up to 1e12 (clamped to 2^33): the
    int32 bias saturates at its limits, in numpy and in C, with either rounding."""
    d = np.array([2.0**23, -(2.0**23) - 2, 2.0**24 + 2, 2.0**31 - 128, 3 * 2.0**30, 2.0**32,
                  -(2.0**32), 1e12, -1e12], np.float32)
    want = [2**23, -(2**23) - 2, 2**24 + 2, 2**31 - 128] + [2**31 - 1, 2**31 - 1, -2**31,
                                                             2**31 - 1, -2**31]
    for rounding in (0, 1):
        assert run_update(d, rounding).tolist() == want
        assert run_update(d, rounding, engine="c").tolist() == want


def test_nearest_rounds_half_to_even():
    assert run_update([0.5, 1.5, 2.5, -0.5, 0.49], 0).tolist() == [0, 2, 2, 0, 0]


def test_softmax_grad_is_the_softmax_jacobian():
    """TT_SOFTMAX_GRAD (a softmax in the middle of a gradient path; the zoo has none):
    dx = J^T dy with J = diag(p) - p p^T, p the saved int8 softmax output."""
    from tflite_train.ir import Graph, Quantization, Tensor
    rng = np.random.default_rng(0)
    saved = rng.integers(-128, 0, (1, 7)).astype(np.int8)
    dy = rng.normal(size=(1, 7)).astype(np.float32)
    q = Quantization(np.array([1 / 256], np.float32), np.array([-128]))
    g = Graph([Tensor("dy", (1, 7), "float32"), Tensor("p", (1, 7), "int8", q),
               Tensor("label", (1,), "int32"), Tensor("dx", (1, 7), "float32")],
              [], [], [])
    op = training_ops.make_op("TT_SOFTMAX_GRAD", [0, 1, 2], [3])
    dx = ops.REGISTRY["TT_SOFTMAX_GRAD"].forward(g, op, [dy, saved, np.array([0])])[0]
    p = (saved.astype(np.float64) + 128) / 256
    jac = np.diag(p[0]) - np.outer(p[0], p[0])
    assert np.allclose(dx[0], jac.T @ dy[0], rtol=1e-6, atol=1e-7)


def test_requantize_and_reshape_grads_are_identities():
    from tflite_train.ir import Graph, Tensor
    g = Graph([Tensor("dy", (1, 2, 3), "float32"), Tensor("label", (1,), "int32"),
               Tensor("dx", (6,), "float32")], [], [], [])
    op = training_ops.make_op("TT_RESHAPE_GRAD", [0, 1], [2])
    dy = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    dx = ops.REGISTRY["TT_RESHAPE_GRAD"].forward(g, op, [dy, np.array([0])])[0]
    assert np.array_equal(dx, dy.ravel())


def test_learning_rate_schedules():
    from tflite_train.ops.training import learning_rate
    o = {"lr": 0.2, "decay_steps": 100, "half_life_steps": 0}
    assert learning_rate(o, 0) == np.float32(0.2)
    assert learning_rate(o, 50) == np.float32(0.1)
    assert learning_rate(o, 100) == 0 and learning_rate(o, 150) == 0
    constant = {"lr": 0.2, "decay_steps": 0, "half_life_steps": 0}
    assert learning_rate(constant, 10_000) == np.float32(0.2)
    inverse = {"lr": 0.2, "decay_steps": 0, "half_life_steps": 50}
    assert learning_rate(inverse, 0) == np.float32(0.2)
    assert learning_rate(inverse, 50) == np.float32(0.1)        # half at step T
    assert learning_rate(inverse, 150) == np.float32(0.05)
    rates = [learning_rate(inverse, t) for t in range(0, 100_000, 997)]
    assert all(a > b > 0 for a, b in zip(rates, rates[1:]))      # falls, never reaches 0
