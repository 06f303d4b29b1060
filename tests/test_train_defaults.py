"""Learning rates that train without options (the model-derived rates of
tflite_train/lr.py), `augment --lr auto`, and train's divergence guard."""
import json
import math

import numpy as np
import pytest

from tflite_train import augment, lr, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.demo import EXAMPLE
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.train import DivergedError, DivergenceGuard
from test_train_cli import one_line_error, run

# Zoo models whose features separate the task below. Left out: conv, depthwise, mobile
# and their per-tensor twins. Their random weights, calibrated on uniform noise, give the
# three classes features that differ by less than their scatter (conv: class means of its
# one live feature 0.29 / 0.32 / 0.28, scatter 0.02-0.05): no head can learn them, and the
# pretrained layers' rates are meant to nudge features, not to build them in 200 steps.
ZOO_LEARNABLE = ["branches", "classifier_1x1", "conv_strided", "dense", "float_io", "mean",
                 "pool"]
ZOO_CASES = ([(name, "full") for name in ZOO_LEARNABLE]
             + [(name, "bias-only") for name in ("dense", "pool")])
CLASSES = 3
TRAIN, TEST = 200, 60


def brightness_task(graph, n: int, seed: int):
    """A task any model's features can separate, random weights included: dark, bright,
    and mid-grey with strong noise (int8 codes; a float input gets the real values of its
    QUANTIZE's codes), so the learning rates are what the test is about."""
    rng = np.random.default_rng(seed)
    t = graph.tensors[graph.inputs[0]]
    y = rng.integers(0, CLASSES, n)
    level, noise = np.array([-70, 70, 0]), np.array([20, 20, 70])
    codes = np.clip(np.rint(level[y].reshape((n,) + (1,) * len(t.shape))
                            + noise[y].reshape((n,) + (1,) * len(t.shape))
                            * rng.standard_normal((n,) + t.shape)), -128, 127)
    if t.dtype == "int8":
        return codes.astype(np.int8), y
    q = next(graph.tensors[op.outputs[0]].quant for op in graph.operators
             if op.kind == "QUANTIZE" and op.inputs[0] == graph.inputs[0])
    return (np.float32(q.s) * (codes - q.zp)).astype(np.float32), y


@pytest.mark.parametrize("name, scheme", ZOO_CASES)
def test_default_rates_train_the_zoo(zoo, name, scheme):
    """No learning-rate or batch option (bias-only gets batch 8 here, so its 200 samples
    are 25 updates): the loss falls and held-out accuracy beats always answering the most
    frequent class by a wide margin."""
    result = augment.augment(tflite_io.load(zoo[name]), scheme, CLASSES,
                             Hyper(seed=1, batch=None))      # augment's default batch
    assert result.metadata["lr_rule"]["rule"] == "model-derived"
    assert result.hyper.batch == (augment.DEFAULT_BATCH if scheme == "bias-only" else 1)
    g = result.graph
    x, y = brightness_task(g, TRAIN + TEST, seed=2)
    ex = Executor(g)
    losses = [float(ex.invoke([x[i], np.array([y[i]], np.int32)])[g.outputs[-1]][0])
              for i in range(TRAIN)]
    assert all(math.isfinite(v) for v in losses)
    first, last = np.mean(losses[:TRAIN // 4]), np.mean(losses[-TRAIN // 4:])
    hits = sum(int(np.argmax(ex.invoke([x[i], np.array([-1], np.int32)])[g.outputs[0]]))
               == y[i] for i in range(TRAIN, TRAIN + TEST))
    majority = np.bincount(y[TRAIN:], minlength=CLASSES).max()
    assert last < 0.8 * first, (first, last)
    assert hits >= majority + 10, (hits, majority)      # 2.5 binomial sd above it


def test_rates_follow_the_rule(zoo):
    """The rule itself, at the probe point: every pretrained tensor's lr * |G| / |p| is its
    fraction RHO_WEIGHTS or RHO_BIASES; the new head's lr * |x|^2 is ETA_HEAD (to the 3
    significant digits the rates are stored with)."""
    graph = tflite_io.load(zoo["mobile"])
    norms, head, _ = lr.probe(graph, "full", CLASSES, seed=0)
    rates = lr.model_rates(graph, "full", CLASSES, seed=0)
    assert set(rates) == set(norms) and head in rates
    for k, r in rates.items():
        n = norms[k]
        if k == head:
            x2 = n["gw2"] / n["gb2"]
            assert r.weight * x2 == pytest.approx(lr.ETA_HEAD, rel=5e-3)
            # the bias: a weight on a constant input at the features' rms, |x| / sqrt(depth),
            # so one step moves the logits by ETA_HEAD / depth x their gradient through it
            aug = augment.augment(tflite_io.load(zoo["mobile"]), "full", CLASSES, Hyper())
            depth = aug.graph.tensors[aug.backward.forward_ops[aug.head].inputs[1]].shape[1]
            assert n["fan_in"] == depth > 1
            assert r.bias == pytest.approx(lr.ETA_HEAD / depth, rel=1e-2)
            assert r.bias == pytest.approx(r.weight * x2 / depth, rel=1e-2)
            continue
        assert r.weight * n["gw"] / n["w"] == pytest.approx(lr.RHO_WEIGHTS, rel=5e-3)
        assert r.bias * n["gb"] / n["b"] == pytest.approx(lr.RHO_BIASES, rel=5e-3)


def test_head_bias_rate_is_the_rules_where_the_features_are_zero(monkeypatch):
    """A head whose features are all 0 on the probe (|x|^2 = 0) still gets the rule's bias
    rate ETA_HEAD / depth, not ETA_HEAD (depth times it)."""
    norms = {0: {"w": 1.0, "b": 0.0, "fan_in": 40, "gw2": 0.0, "gb2": 0.0, "gw": 0.0,
                 "gb": 0.0},
             5: {"w": 1.0, "b": 0.0, "fan_in": 40, "gw2": 8.0, "gb2": 2.0, "gw": 1.0,
                 "gb": 1.0}}
    for head in (0, 5):
        monkeypatch.setattr(lr, "probe", lambda *a, **k: (norms, head, None))
        rates = lr.model_rates(None, "bias-only", CLASSES, seed=0)
        assert rates[head].rule == "nlms"
        assert rates[head].bias == pytest.approx(lr.ETA_HEAD / 40, rel=1e-2)


def test_update_ops_carry_the_layer_rates_and_metadata_records_them():
    result = augment.augment(tflite_io.load(EXAMPLE), "full", 4, Hyper())
    from tflite_train.training_ops import options_of
    by_layer = {}
    for k, (lr_w, lr_b) in result.hyper.layer_lrs.items():
        by_layer[k] = (lr_w, lr_b)
    rows = result.metadata["trained"]
    assert [r["lr"] for r in rows] == [by_layer[k][0] for k in sorted(result.backward.trained)]
    update_lrs = sorted(options_of(op)["lr"] for op in result.graph.operators
                        if op.kind.endswith("_UPDATE"))
    assert update_lrs == sorted([v for pair in by_layer.values() for v in pair])
    assert len(set(update_lrs)) > 2                      # per layer, not one constant


def test_probe_images_are_smooth_and_span_the_codes(zoo):
    """lr.probe's inputs for an image input are dead-leaves images: flat regions and a few
    soft edges over most of the int8 range (uniform codes, the former probe, put an edge
    at every pixel: their neighbours differ by 1.15 x their spread), seeded."""
    graph = tflite_io.load(zoo["mobile"])
    shape = graph.tensors[graph.inputs[0]].shape
    assert len(shape) == 4
    xs = lr.probe_inputs(graph, 4, seed=3)
    assert all(x.shape == tuple(shape) and x.dtype == np.int8 for x in xs)
    assert all(np.array_equal(a, b) for a, b in zip(xs, lr.probe_inputs(graph, 4, seed=3)))
    rng = np.random.default_rng(0)
    images = [lr.dead_leaves(rng, 96, 96, 3) for _ in range(8)]
    for im in images:
        assert im.min() >= -128 and im.max() <= 127
        step = np.abs(np.diff(im.astype(float), axis=1)).mean()
        assert step < 0.1 * im.std(), (step, im.std())
        # soft edges (blurred by LEAVES_BLUR of the side: a step of the whole range rises
        # over about 5 pixels), as a resized or focused camera image's, not one-pixel cliffs
        assert np.abs(np.diff(im.astype(float), axis=0)).max() < 80
        assert np.abs(np.diff(im.astype(float), axis=1)).max() < 80
    # together they cover the range: dark, bright and mid-grey regions
    allcodes = np.concatenate([im.ravel() for im in images])
    assert allcodes.std() > 40 and allcodes.min() < -90 and allcodes.max() > 90
    # colour: channels mostly agree (grey levels, +- a little colour), but not exactly
    im = images[0].astype(float)
    assert 0 < np.abs(im[..., 0] - im[..., 1]).mean() < 0.5 * im.std()


def batched_model(path, batch=2):
    """A small int8 model whose input is a batch [batch, 8, 8, 3] (TensorFlow's converter)."""
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    L = tf.keras.layers
    inp = tf.keras.Input((8, 8, 3), batch_size=batch)
    x = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
    model = tf.keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    rng = np.random.RandomState(0)
    samples = [rng.uniform(-1, 1, (batch, 8, 8, 3)).astype(np.float32) for _ in range(8)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s] for s in samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path


def test_probe_inputs_of_a_batched_input_are_a_batch_of_images(tmp_path):
    """An input [N, H, W, C] with N > 1 gets N different dead-leaves images per probe input.
    Training such a model is refused in one line since round 29 (its training model took
    one label for N images, and `train` failed reshaping one sample into N): the rule's
    rates, which augment the model, say so too."""
    from tflite_train.errors import ModelError
    graph = tflite_io.load(batched_model(tmp_path / "batch2.tflite"))
    xs = lr.probe_inputs(graph, 3, seed=0)
    assert [x.shape for x in xs] == [(2, 8, 8, 3)] * 3 and xs[0].dtype == np.int8
    assert np.any(xs[0][0] != xs[0][1])
    with pytest.raises(ModelError, match="has batch 2 .* augment needs a batch-1 model"):
        lr.model_rates(graph, "full", None, seed=0)


@pytest.mark.parametrize("parts", [("tflm", "person_detect.tflite"),
                                   ("tiny-training", "mcunet-5fps.pkl"),
                                   ("tiny-training", "mbv2-w0.35.pkl")])
def test_probe_head_features_have_the_images_scale(parts):
    """The new head's NLMS rate divides by |x|^2 of its input features on the probe's
    inputs; on the three shared models that |x|^2 is within PROBE_X2_FACTOR of its value on
    Fashion-MNIST images (uniform codes gave 2.6x on the person detector, 0.76x and 0.53x on
    MCUNet-5FPS and MobileNetV2-w0.35, benchmarks/probe_inputs.json: the person detector's
    head steps were 2.6x too small)."""
    from conftest import require_tool, shared_file
    from tflite_train import data
    from tflite_train.importers.tiny_training import import_pkl
    path = shared_file(*parts)
    require_tool((data.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                 "Debian's dataset-fashion-mnist")
    graph = import_pkl(path) if path.suffix == ".pkl" else tflite_io.load(path)
    scheme = "bias-only"

    def head_x2(inputs=None):
        norms, head, _ = lr.probe(graph, scheme, 10, seed=0, inputs=inputs)
        return norms[head]["gw2"] / norms[head]["gb2"]
    probe = head_x2()
    ds = data.fashion_mnist()
    picks = np.random.default_rng(0).choice(len(ds), 16, replace=False)
    xs = [data.to_model_input(ds.images[i], graph.tensors[graph.inputs[0]]) for i in picks]
    images = head_x2(xs)
    # lr.probe(inputs=...) probes the inputs given: one image twice has that image's |x|^2
    assert head_x2(xs[:1] * 2) == pytest.approx(head_x2(xs[:1]), rel=1e-6)
    assert 1 / PROBE_X2_FACTOR < probe / images < PROBE_X2_FACTOR, (probe, images)


PROBE_X2_FACTOR = 1.75


@pytest.mark.parametrize("options, half_life, boost", [
    ({}, lr.HALF_LIFE, lr.HALF_LIFE_BOOST),             # the default: inverse-time decay
    ({"decay_steps": 300}, 0, 1.0),                     # a cosine instead
    ({"half_life": 0}, 0, 1.0),                         # a constant rate
    ({"half_life": 20}, 20, lr.HALF_LIFE_BOOST),
])
def test_the_schedule_and_its_starting_rates(options, half_life, boost):
    """Without options every update op decays its rate (inverse time, half at step
    HALF_LIFE) from HALF_LIFE_BOOST x the constant-rate rule; a cosine or a constant rate
    starts at the rule's own rates. The metadata says which."""
    from tflite_train.training_ops import options_of
    graph = tflite_io.load(EXAMPLE)
    rates = lr.model_rates(graph, "full", 4, seed=0)
    result = augment.augment(graph, "full", 4, Hyper(**options))
    updates = [options_of(op) for op in result.graph.operators if op.kind.endswith("_UPDATE")]
    assert updates and all(o["half_life_steps"] == half_life for o in updates)
    assert all(o["decay_steps"] == options.get("decay_steps", 0) for o in updates)
    assert result.metadata["half_life_steps"] == half_life
    assert result.metadata["lr_rule"]["schedule_boost"] == boost
    # "full" trains every weight (density 1): no further factor under any schedule
    w_boost = 1.0
    assert result.metadata["lr_rule"]["weight_boost"] == w_boost
    assert result.metadata["lr_rule"]["trained_density"] == 1.0
    for k, r in rates.items():
        wb = w_boost if r.rule == "trust ratio" else 1.0
        # both sides keep 3 significant digits: each rounding is within 0.5%
        assert result.hyper.layer_lrs[k] == pytest.approx(
            (r.weight * boost * wb, r.bias * boost), rel=1e-2)


# EXAMPLE's layers without the classifier: 0 conv 72, 1 dw 72, 2 conv 128, 3 dw 144,
# 4 conv 256, 5 dw 144, 6 conv 512 weights
SPARSE = {"n_bias_update": 3, "weight_update": [{"layer": 2, "ratio": 0.5},
                                                {"layer": 6, "ratio": 0.125}]}  # 128 / 1184
HALF = {"n_bias_update": 2, "weight_update": [{"layer": 5, "ratio": 1},
                                              {"layer": 6, "ratio": 0.5}]}      # 400 / 656


@pytest.mark.parametrize("scheme, density, factor", [
    ("full", 1.0, 1.0), ("last:3", 1.0, 1.0), ("bias-only", None, 1.0),
    (SPARSE, 128 / 1184, lr.COSINE_WEIGHT_BOOST), (HALF, 400 / 656, 2.0)])
def test_the_cosine_raises_only_the_pretrained_weights_rate(tmp_path, scheme, density, factor):
    """Under a cosine the pretrained weights' trust ratio is the rule x 1 / the scheme's
    trained density, to a power of two, at most COSINE_WEIGHT_BOOST (lr.py): 4x for a sparse
    scheme like the 99kb ones, 1x where every weight from the first trained layer on trains
    (last:N, full). The new head's NLMS rates, every bias's rate, a bias-only layer's and
    the default inverse-time schedule's rates (the issue's 300-step check) are untouched."""
    if isinstance(scheme, dict):
        (tmp_path / "s.json").write_text(json.dumps(scheme))
        scheme = str(tmp_path / "s.json")
    rates = lr.model_rates(tflite_io.load(EXAMPLE), scheme, 4, seed=0)
    assert rates.density == (None if density is None else pytest.approx(density))
    default = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, Hyper())
    cosine = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, Hyper(decay_steps=1000))
    assert default.metadata["lr_rule"]["weight_boost"] == 1.0
    assert cosine.metadata["lr_rule"]["weight_boost"] == factor
    default, cosine = default.hyper.layer_lrs, cosine.hyper.layer_lrs
    assert lr.COSINE_WEIGHT_BOOST == 4 and set(default) == set(cosine) == set(rates)
    kinds = set()
    for k, r in rates.items():
        pretrained_weight = r.rule == "trust ratio" and r.weight_ratio is not None
        kinds.add((r.rule, pretrained_weight))
        # the default: the rule x HALF_LIFE_BOOST, exactly as before the cosine's factor
        assert default[k] == (lr._sig(r.weight * lr.HALF_LIFE_BOOST),
                              lr._sig(r.bias * lr.HALF_LIFE_BOOST))
        assert cosine[k] == (lr._sig(r.weight * (factor if pretrained_weight else 1.0)),
                             r.bias)
    # each scheme has every kind of rate this test is about
    assert ("nlms", False) in kinds
    assert ("trust ratio", density is not None) in kinds


def test_two_schedules_at_once_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "m.tflite"
    line = one_line_error(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                          "--lr-decay-steps", 300, "--lr-half-life", 50)
    assert "--lr-decay-steps (cosine) and --lr-half-life (inverse time)" in line
    assert not out.exists()


def test_explicit_lr_is_one_rate_as_before():
    result = augment.augment(tflite_io.load(EXAMPLE), "full", 4, Hyper(lr=0.03))
    from tflite_train.training_ops import options_of
    lrs = {options_of(op)["lr"] for op in result.graph.operators
           if op.kind.endswith("_UPDATE")}
    assert lrs == {0.03, 0.03 / 100}
    assert result.metadata["lr_rule"] == {"rule": "given", "lr": 0.03, "bias_lr": 0.0003}


def test_explicit_bias_lr_overrides_only_the_biases():
    result = augment.augment(tflite_io.load(EXAMPLE), "full", 4, Hyper(bias_lr=0.002))
    assert {b for _, b in result.hyper.layer_lrs.values()} == {0.002}
    assert len({w for w, _ in result.hyper.layer_lrs.values()}) > 1


# -- divergence guard
def test_guard_stops_on_a_non_finite_loss():
    guard = DivergenceGuard()
    for _ in range(30):
        guard.update(2.0)
    with pytest.raises(DivergedError, match="step 31.*--lr auto"):
        guard.update(float("nan"))


def test_guard_warns_once_on_a_rising_loss_and_not_on_noise():
    rng = np.random.default_rng(0)
    lines = []
    guard = DivergenceGuard(lines.append)
    for _ in range(2000):                 # a plateau with batch-1 scatter: no warning
        guard.update(float(rng.exponential(1.0)))
    assert lines == []
    for step in range(300):               # then a steady climb
        guard.update(1.0 + step * 0.05 + float(rng.exponential(1.0)))
    assert len(lines) == 1 and "lower --lr" in lines[0] and "--lr auto" in lines[0]


def synthetic_npz(path, n=200, seed=0):
    """Three easy classes of 32x32 images (horizontal / vertical stripes / flat grey)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    grid = np.arange(32)
    stripes = (grid // 2 % 2 * 200).astype(float)
    base = [stripes[:, None] + 0 * grid, stripes[None, :] + 0 * grid[:, None],
            np.full((32, 32), 100.0)]
    x = np.stack([np.clip(base[c] + rng.normal(0, 10, (32, 32)), 0, 255) for c in y])
    np.savez(path, x=x.astype(np.uint8), y=y)
    return path


def test_absurd_lr_warns_once_in_one_line(tmp_path, capsys):
    model = tmp_path / "m.tflite"
    assert run(capsys, "augment", EXAMPLE, "-o", model, "--num-classes", 3,
               "--scheme", "full", "--lr", 1e4)[0] == 0
    data = synthetic_npz(tmp_path / "d.npz")
    code, out, err = run(capsys, "train", model, "--data", data, "--steps", 60,
                         "--val-split", 0.1)
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert code == 0 and len(warnings) == 1, err
    assert warnings[0].startswith("tflite-train: warning: the smoothed training loss rose")
    # the default rates on the same model and data do not warn
    assert run(capsys, "augment", EXAMPLE, "-o", model, "--num-classes", 3,
               "--scheme", "full")[0] == 0
    code, out, err = run(capsys, "train", model, "--data", data, "--steps", 60,
                         "--val-split", 0.1)
    assert code == 0 and "warning" not in err, err


def test_non_finite_loss_stops_with_one_line_and_writes_nothing(tmp_path, capsys,
                                                              monkeypatch):
    # int8 logits bound the loss (|logit| <= 16), so a NaN needs a broken kernel: inject one
    from tflite_train import train
    model = tmp_path / "m.tflite"
    assert run(capsys, "augment", EXAMPLE, "-o", model, "--num-classes", 3,
               "--batch", 1)[0] == 0
    real_step = train.Trainer.step
    calls = []

    def step(self, i):
        calls.append(i)
        return float("inf") if len(calls) == 7 else real_step(self, i)
    monkeypatch.setattr(train.Trainer, "step", step)
    state = tmp_path / "state.npz"
    line = one_line_error(capsys, "train", model, "--data", synthetic_npz(tmp_path / "d.npz"),
                          "--steps", 50, "-o", state)
    assert "diverged at step 7" in line and "--lr auto" in line
    assert not state.exists() and len(calls) == 7


# -- --lr auto
def test_lr_auto_usage_errors(tmp_path, capsys):
    out = tmp_path / "m.tflite"
    data = synthetic_npz(tmp_path / "d.npz")
    assert "--lr auto needs --data" in one_line_error(
        capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3, "--lr", "auto")
    assert "only used by --lr auto" in one_line_error(
        capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3, "--data", data)
    assert "drop --bias-lr" in one_line_error(
        capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3, "--lr", "auto",
        "--data", data, "--bias-lr", 0.01)
    assert "no such file" in one_line_error(
        capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3, "--lr", "auto",
        "--data", tmp_path / "missing.npz")
    assert "out of range" in one_line_error(                      # 3 labels, 2 classes
        capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 2, "--lr", "auto",
        "--data", data, "--lr-test-steps", 5)
    with pytest.raises(SystemExit) as exc:
        main(["augment", str(EXAMPLE), "-o", str(out), "--lr", "fast"])
    assert exc.value.code == EXIT_ERROR
    assert "expected a positive number or auto, got 'fast'" in capsys.readouterr().err
    assert not out.exists()


def check_range_test(rule, factors):
    """The candidates are `factors`, then one factor of 2 past an end while the best so far
    is that end (ties: the smaller rate), at most lr.AUTO_EXTEND each way; the choice is the
    best of all, and it is not an end that could still have been extended."""
    cands = rule["candidates"]
    assert [c["factor"] for c in cands[:len(factors)]] == list(factors)

    def best_of(cs):
        finite = [c for c in cs if not c["diverged"]]
        return min(finite, key=lambda c: (c["held_out_loss"], c["factor"])) if finite else None

    up = down = 0
    for n in range(len(factors), len(cands) + 1):
        tried = sorted(c["factor"] for c in cands[:n])
        best = best_of(cands[:n])
        if best is not None and best["factor"] == tried[-1] and up < lr.AUTO_EXTEND:
            want, up = tried[-1] * 2, up + 1
        elif (best is None or best["factor"] == tried[0]) and down < lr.AUTO_EXTEND:
            want, down = tried[0] / 2, down + 1
        else:
            want = None
        assert (cands[n]["factor"] if n < len(cands) else None) == want, (n, cands)
    assert rule["chosen_factor"] == best_of(cands)["factor"]


@pytest.mark.parametrize("factors, extends", [((1 / 64, 1 / 32), "up"), ((64.0, 128.0), "down")])
def test_lr_auto_goes_past_an_end_that_wins(tmp_path, capsys, monkeypatch, factors, extends):
    """Rates far too low: the test doubles past its top (4 times at most); far too high (the
    logits saturate: equal losses): it halves past its bottom until the loss improves."""
    monkeypatch.setattr(lr, "AUTO_FACTORS", factors)
    out = tmp_path / "m.tflite"
    code, text, err = run(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                          "--scheme", "full", "--lr", "auto", "--data",
                          synthetic_npz(tmp_path / "d.npz"), "--lr-test-steps", 8)
    assert code == 0, err
    rule = json.loads(tflite_io.load(out).metadata["tflite_train"])["lr_rule"]
    check_range_test(rule, factors)
    more = [c["factor"] for c in rule["candidates"][len(factors):]]
    assert more and all((f > max(factors)) if extends == "up" else (f < min(factors))
                        for f in more)
    assert text.count("held-out loss") == len(rule["candidates"])
    assert f"--lr auto chose the model-derived rates x {rule['chosen_factor']:g}\n" in text


def test_lr_auto_records_its_choice_and_candidates(tmp_path, capsys):
    out = tmp_path / "m.tflite"
    data = synthetic_npz(tmp_path / "d.npz")
    code, text, err = run(capsys, "augment", EXAMPLE, "-o", out, "--num-classes", 3,
                          "--scheme", "full", "--lr", "auto", "--data", data,
                          "--lr-test-steps", 8)
    assert code == 0, err
    assert "--lr auto chose the model-derived rates x" in text
    meta = json.loads(tflite_io.load(out).metadata["tflite_train"])
    rule = meta["lr_rule"]
    assert rule["rule"] == "range test" and rule["steps_per_candidate"] == 8
    assert text.count("held-out loss") == len(rule["candidates"])
    check_range_test(rule, lr.AUTO_FACTORS)
    best = min(rule["candidates"], key=lambda c: c["held_out_loss"])
    # the stored rates are the model-derived ones times the chosen factor
    base = augment.augment(tflite_io.load(EXAMPLE), "full", 3, Hyper()).metadata["trained"]
    for row, ref in zip(meta["trained"], base):
        # both are rounded to 3 significant digits: each rounding is within 0.5%
        assert row["lr"] == pytest.approx(ref["lr"] * best["factor"], rel=1e-2)
    # seeded: the same command gives the same file
    again = tmp_path / "again.tflite"
    assert run(capsys, "augment", EXAMPLE, "-o", again, "--num-classes", 3, "--scheme",
               "full", "--lr", "auto", "--data", data, "--lr-test-steps", 8)[0] == 0
    assert again.read_bytes() == out.read_bytes()
