"""The batch (gradient accumulation, round 23's contract; schema: the update ops' `batch` and
`accumulator`): the numpy semantics against a direct reference (batch-1 updates of the mean
gradients), augment --batch, the checks, and the engines that refuse a batched model."""
import numpy as np
import pytest

from tflite_train import augment, ops, tflite_io, training_ops
from tflite_train.autodiff import Hyper
from tflite_train.cli import main
from tflite_train.demo import EXAMPLE
from tflite_train.errors import ModelError, TTError
from tflite_train.ir import Graph, Quantization, Tensor
from tflite_train.runtime.numpy_exec import Executor

F32 = np.float32
B = 3


def _options(batch, momentum, rounding, **extra):
    o = dict(lr=0.75, momentum=momentum, qas=True, rounding=rounding, seed=11,
             decay_steps=0, half_life_steps=2, **extra)
    if batch > 1:
        o["batch"] = batch
    return o


def _bias_op(shape, batch, momentum, rounding):
    """TT_UPDATE_BIAS on n int32 biases (scales 0.5 .. ), with an accumulator iff batch > 1."""
    n = shape[0] if isinstance(shape, tuple) else shape
    scale = np.linspace(0.5, 2.0, n).astype(F32)
    g = Graph(tensors=[Tensor("b", (n,), "int32", Quantization(scale, np.zeros(n, np.int64)),
                              is_variable=True),
                       Tensor("g", (n,), "float32"), Tensor("m", (n,), "float32",
                                                            is_variable=True),
                       Tensor("label", (1,), "int32"),
                       Tensor("acc", (n,), "float32", is_variable=True)],
              operators=[], inputs=[], outputs=[])
    op = training_ops.make_op("TT_UPDATE_BIAS", [0, 1, 2 if momentum else -1, 3]
                              + ([4] if batch > 1 else []), [],
                              **_options(batch, momentum, rounding))
    g.operators = [op]
    return g, op


def _weight_op(shape, batch, momentum, rounding):
    co = shape[0]
    scale = np.linspace(0.01, 0.03, co).astype(F32)
    g = Graph(tensors=[Tensor("w", shape, "int8", Quantization(scale, np.zeros(co, np.int64)),
                              is_variable=True),
                       Tensor("g", shape, "float32"), Tensor("m", shape, "float32",
                                                             is_variable=True),
                       Tensor("label", (1,), "int32"),
                       Tensor("acc", shape, "float32", is_variable=True)],
              operators=[], inputs=[], outputs=[])
    op = training_ops.make_op("TT_UPDATE_WEIGHT", [0, 1, 2 if momentum else -1, 3]
                              + ([4] if batch > 1 else []), [],
                              **_options(batch, momentum, rounding, channels=shape[-1],
                                         axis=0))
    g.operators = [op]
    return g, op


class Run:
    """One update op run in the numpy kernel, Invoke by Invoke."""

    def __init__(self, make, shape, batch, momentum, rounding):
        self.graph, self.op = make(shape, batch, momentum, rounding)
        ops.check(self.graph)
        kind = self.op.kind
        dtype = "int32" if kind == "TT_UPDATE_BIAS" else "int8"
        self.p = (np.arange(np.prod(shape)).reshape(shape) % 7 - 3).astype(dtype)
        self.m = np.zeros(shape, F32)
        self.acc = np.zeros(shape, F32) if batch > 1 else None
        self.state = {}
        self.forward = ops.REGISTRY[kind].forward

    def invoke(self, grad):
        args = [self.p, grad, self.m if self.op.inputs[2] >= 0 else None,
                np.array([0], np.int32)]
        self.forward(self.graph, self.op, args + ([self.acc] if self.acc is not None else []),
                     self.state)


def _grads(shape, count, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * 3).astype(F32) for _ in range(count)]


def _mean(gs):
    acc = np.zeros_like(gs[0])
    for g in gs:
        acc = (acc + g).astype(F32)
    return (acc * (F32(1) / F32(len(gs)))).astype(F32)


CASES = [(make, shape, momentum, rounding)
         for make, shape in ((_bias_op, (9,)), (_weight_op, (4, 3, 1, 5)))
         for momentum in (0.0, 0.9) for rounding in (0, 1)]


@pytest.mark.parametrize("make, shape, momentum, rounding", CASES)
def test_batch_3_is_batch_1_on_the_mean_gradient(make, shape, momentum, rounding):
    """B = 3 over 7 training Invokes against batch-1 updates given the float32 mean of each
    3 gradients: Invokes 1, 2 (4, 5, 7) change no parameter, momentum or stream; Invokes 3
    and 6 give the batch-1 op's updates 1 and 2 (its lr schedule at t = 0 and 1: half-life
    2 makes t = n would differ); the accumulator is zero after them and holds the partial
    batch's gradient after Invoke 7; the step counter counts Invokes."""
    gs = _grads(shape, 7)
    run, ref = Run(make, shape, B, momentum, rounding), Run(make, shape, 1, momentum, rounding)
    start = run.p.copy()
    for n, g in enumerate(gs, start=1):
        before = (run.p.copy(), run.m.copy(), dict(run.state))
        run.invoke(g)
        assert run.state["t"] == n
        if n % B:
            assert np.array_equal(run.p, before[0]) and np.array_equal(run.m, before[1])
            assert run.state.get("rng") == before[2].get("rng")       # no draw
            assert np.array_equal(run.acc, _sum(gs[n - n % B:n]))
            continue
        ref.invoke(_mean(gs[n - B:n]))
        assert run.p.tobytes() == ref.p.tobytes() and run.m.tobytes() == ref.m.tobytes()
        assert run.state.get("rng") == ref.state.get("rng")
        assert not run.acc.any() and not np.signbit(run.acc).any()    # +0.0f
        assert ref.state["t"] == n // B
    assert not np.array_equal(run.p, start)
    assert run.acc.tobytes() == gs[6].tobytes()


def _sum(gs):
    acc = np.zeros_like(gs[0])
    for g in gs:
        acc = (acc + g).astype(F32)
    return acc


def test_batch_1_is_todays_rule_whatever_the_option_says():
    """An explicit batch 1 (allowed, though augment leaves it out) is the op without it."""
    shape = (9,)
    gs = _grads(shape, 4)
    a, b = Run(_bias_op, shape, 1, 0.9, 1), Run(_bias_op, shape, 1, 0.9, 1)
    a.op.custom_options = training_ops.encode_options({**training_ops.options_of(a.op),
                                                       "batch": 1})
    a.op.options.pop("_tt", None)
    ops.check(a.graph)
    for g in gs:
        a.invoke(g)
        b.invoke(g)
    assert a.p.tobytes() == b.p.tobytes() and a.state == b.state


def test_the_accumulator_is_there_iff_batch_is_above_1():
    g, op = _bias_op(5, 3, 0.0, 1)
    op.inputs = op.inputs[:4]                                # batch 3, no accumulator
    with pytest.raises(ModelError, match="batch 3 needs an accumulator"):
        ops.check(g)
    g, op = _bias_op(5, 1, 0.0, 1)
    op.inputs = op.inputs + [4]                              # batch 1 with one
    with pytest.raises(ModelError, match="batch 1 takes no accumulator"):
        ops.check(g)
    g, op = _bias_op(5, 3, 0.0, 1)
    g.tensors[4].shape = (6,)
    with pytest.raises(ModelError, match="accumulator \\[6\\] is not the trained region"):
        ops.check(g)
    g, op = _bias_op(5, 3, 0.0, 1)
    g.tensors[4].is_variable = False
    with pytest.raises(ModelError, match="accumulator.*not a variable"):
        ops.check(g)
    for bad in (0, 65537):
        with pytest.raises(ModelError, match="batch"):
            training_ops.make_op("TT_UPDATE_BIAS", [0, 1, -1, 3, 4], [],
                                 **{**_options(1, 0.0, 1), "batch": bad})


# --- augment --batch --------------------------------------------------------------------

UPDATE_OPS = {"TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS", "TT_CONV2D_WEIGHT_UPDATE",
              "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE", "TT_FULLY_CONNECTED_WEIGHT_UPDATE",
              "TT_BIAS_UPDATE"}


def _augment(batch, fuse=True, grad="int8", momentum=0.9):
    return augment.augment(tflite_io.load(EXAMPLE), "last:2", num_classes=4,
                           hyper=Hyper(lr=0.05, momentum=momentum, seed=3, batch=batch,
                                       grad=grad), fuse=fuse)


@pytest.mark.parametrize("fuse, grad", [(True, "int8"), (False, "float32")])
def test_augment_batch_writes_the_option_and_an_accumulator_per_update_op(fuse, grad,
                                                                          tmp_path):
    r = _augment(B, fuse, grad)
    path = tmp_path / "b.tflite"
    tflite_io.save(r.graph, path)
    g = tflite_io.load(path)                                 # checked on reading
    updates = [op for op in g.operators if op.kind in UPDATE_OPS]
    assert len(updates) == 6                 # 3 layers' weights and biases
    names = []
    for op in updates:
        assert training_ops.batch_of(op) == B
        acc = training_ops.accumulator_input(g, op)
        assert acc == op.inputs[training_ops.accumulator_pos(g, op)]   # after the label
        t = g.tensors[acc]
        names.append(t.name)
        assert t.is_variable and t.dtype == "float32" and t.data is None
        assert t.name.endswith("/accumulator")
        mom = g.tensors[op.inputs[[i["name"] for i in training_ops.inputs_of(op.kind)]
                                  .index("momentum_buffer")]]
        assert mom.shape == t.shape and mom.name.replace("/momentum", "/accumulator") == t.name
    assert len(set(names)) == len(names)
    assert r.metadata["batch"] == B
    assert len(r.backward.accumulators) == 6


def test_augment_batch_1_writes_todays_model():
    a, b = _augment(1), augment.augment(tflite_io.load(EXAMPLE), "last:2", num_classes=4,
                                        hyper=Hyper(lr=0.05, momentum=0.9, seed=3))
    assert tflite_io.serialize(a.graph) == tflite_io.serialize(b.graph)
    assert not any(t.name.endswith("/accumulator") for t in a.graph.tensors)
    assert "batch" not in a.metadata


def test_numpy_executor_accumulates_then_updates_once_a_batch():
    """The whole model under the numpy executor: Invokes 1 and 2 of a batch change no
    parameter or momentum but fill the accumulators, Invoke 3 updates and empties them;
    inference Invokes (label -1) touch nothing."""
    r = _augment(B)
    ex = Executor(r.graph)
    params = list(dict.fromkeys(r.backward.variables)) + r.backward.momentum
    rng = np.random.default_rng(1)
    x = [rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8) for _ in range(7)]
    ex.invoke([x[0], np.array([-1], np.int32)])
    for n in range(1, 8):
        before = {v: ex.variables[v].copy() for v in params}
        ex.invoke([x[n - 1], np.array([n % 4], np.int32)])
        changed = [v for v in params if not np.array_equal(ex.variables[v], before[v])]
        accs = [ex.variables[a] for a in r.backward.accumulators]
        if n % B:
            assert changed == [] and all(a.any() for a in accs)
        else:
            assert changed and not any(a.any() for a in accs)
        snapshot = {v: ex.variables[v].copy() for v in ex.variables}
        ex.invoke([x[0], np.array([-1], np.int32)])
        assert all(np.array_equal(ex.variables[v], snapshot[v]) for v in snapshot)


@pytest.mark.parametrize("value", ["0", "65537", "-1", "two", "1.5"])
def test_bad_batch_is_one_line(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["augment", str(EXAMPLE), "-o", str(tmp_path / "x.tflite"), "--batch", value])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--batch" in err[-1] and "1..65536" in err[-1] or "integer" in err[-1]


def test_hyper_batch_is_checked():
    with pytest.raises(TTError, match="--batch must be an integer in 1..65536"):
        augment.augment(tflite_io.load(EXAMPLE), "last:2", num_classes=4,
                        hyper=Hyper(lr=0.05, batch=0))


def test_engines_without_the_batch_refuse_a_batched_model():
    from tflite_train.train import BATCH_ENGINES, batch_engine, model_batch
    g = _augment(B).graph
    assert model_batch(g) == B and model_batch(_augment(1).graph) == 1
    assert batch_engine(g, None) == BATCH_ENGINES[0] and batch_engine(g, "numpy") == "numpy"
    for engine in {"c", "tflm"} - set(BATCH_ENGINES):
        with pytest.raises(TTError, match=f"engine {engine} does not run a model of batch 3"):
            batch_engine(g, engine)
        assert batch_engine(_augment(1).graph, engine) == engine


# --- checkpoint, train ------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["numpy", "c"])
def test_a_run_resumed_mid_batch_equals_the_uninterrupted_one(engine):
    """B = 3, numpy and c engines (c since review24): 4 training Invokes (a batch and one
    sample), a checkpoint through the blob format (kind 4 = accumulator, after the momentum
    buffers), 5 more in a fresh executor: the same losses and state as 9 in one go. Without the accumulators
    (zeroed) the resumed run differs: the test can tell."""
    from checkpoint_helpers import sample, train_steps
    from tflite_train import checkpoint
    r = augment.augment(tflite_io.load(EXAMPLE), "full", 4,
                        Hyper(lr=0.05, momentum=0.9, rounding="stochastic", seed=9,
                              decay_steps=4, batch=B, grad="float32"))
    graph, model = r.graph, tflite_io.serialize(r.graph)
    regions = checkpoint.layout(graph)
    kinds = [x.kind for x in regions]
    assert kinds == sorted(kinds, key=[1, 2, 4, 5, 3].index)       # 5: the head's residual
    accs = [x for x in regions if x.kind == checkpoint.ACCUMULATOR]
    assert sorted(x.id for x in accs) == sorted(r.backward.accumulators)
    assert all(x.dtype == "float32" for x in accs)
    assert checkpoint.ACCUMULATOR not in [x.kind for x in checkpoint.layout(_augment(1).graph)]
    mid, seed, n, m = checkpoint.model_id(model), 21, 4, 5
    straight = Executor(graph, engine)
    want = train_steps(graph, straight, n + m, seed)
    first = Executor(graph, engine)
    losses = train_steps(graph, first, n, seed)
    saved = checkpoint.from_blob(checkpoint.to_blob(checkpoint.capture(first, graph, mid)),
                                 graph, model)
    assert any(v.any() for x, v in zip(saved.regions, saved.values)
               if x.kind == checkpoint.ACCUMULATOR)

    def resumed(drop_accumulators: bool):
        fresh = Executor(graph, engine)
        fresh.invoke([sample(graph, seed, 0)[0], np.array([-1], np.int32)])
        ckpt = checkpoint.Checkpoint(mid, saved.regions, [
            v * 0 if drop_accumulators and x.kind == checkpoint.ACCUMULATOR else v
            for x, v in zip(saved.regions, saved.values)])
        checkpoint.restore(fresh, graph, ckpt)
        return train_steps(graph, fresh, m, seed, start=n), fresh

    rest, fresh = resumed(False)
    assert [F32(v) for v in losses + rest] == [F32(v) for v in want]
    a, b = checkpoint.capture(fresh, graph, mid), checkpoint.capture(straight, graph, mid)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.values, b.values))
    rest, fresh = resumed(True)
    assert [F32(v) for v in rest] != [F32(v) for v in want[n:]]


def _dataset(n=40, classes=4):
    from tflite_train.data import Dataset
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (n, 32, 32, 1)).astype(np.uint8)
    return Dataset("random", images, np.arange(n) % classes, [str(c) for c in range(classes)])


def test_train_counts_updates_of_b_samples():
    """train --steps N on a batch-3 model: N updates of 3 training Invokes (3N samples, in
    the batch-1 run's sample order), each point's loss the mean of its updates' means."""
    from tflite_train import train as training
    g = _augment(B, grad="float32").graph
    calls = []

    class Counting(training.Trainer):
        def step(self, i):
            calls.append(i)
            return float(i)                  # a loss that says which sample it was
    old = training.Trainer
    training.Trainer = Counting
    try:
        trainer, history = training.train(g, _dataset(), steps=4, val_split=0.25,
                                          eval_points=2, engine="numpy")
    finally:
        training.Trainer = old
    train_idx, _ = training.split(40, 0.25, 1000, 0)
    assert calls[:12] == list(training.sample_order(train_idx, 12, 0))
    assert len(calls) == 12 and history.steps == 4 and history.batch == B
    assert [p.step for p in history.points] == [2, 4]
    assert history.points[0].train_loss == pytest.approx(np.mean(calls[:6]))
    assert history.points[1].epoch == pytest.approx(12 / 30)


def test_train_refuses_an_engine_without_the_batch():
    from tflite_train import train as train_module
    from tflite_train.train import train
    saved = train_module.BATCH_ENGINES
    train_module.BATCH_ENGINES = ("numpy",)      # an engine that has no batch yet
    try:
        with pytest.raises(TTError, match="engine c does not run a model of batch 3"):
            train(_augment(B).graph, _dataset(), steps=1, engine="c")
    finally:
        train_module.BATCH_ENGINES = saved


# --- the fp32 baseline --------------------------------------------------------------------

def test_fp32_baseline_updates_once_a_batch_with_the_mean_gradient():
    """FloatTrainer on a batch-3 model: samples 1 and 2 change no variable and their losses
    are those of the initial parameters; the third applies lr x the mean of the three
    gradients taken at the initial parameters (momentum 0.5: the buffer starts at it)."""
    import importlib.util

    from conftest import require_tool
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    from tflite_train.fp32 import FloatTrainer
    from tflite_train.ops.training import learning_rate
    r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4,
                        Hyper(lr=0.05, momentum=0.5, decay_steps=100, batch=B))
    ft, fresh = FloatTrainer(r.graph), FloatTrainer(r.graph)
    assert ft.batch == B
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, (4, 1, 32, 32, 1)).astype(np.int8)
    start = [v.numpy().copy() for v, _, _, _ in ft.rules]
    grads = [fresh._loss_grads(fresh.real_input(x), np.array([i % 4], np.int32))
             for i, x in enumerate(xs[:3])]
    for i, x in enumerate(xs[:3]):
        loss = ft.step(x, i % 4)
        assert loss == pytest.approx(float(grads[i][0]), rel=1e-6)
        moved = [not np.array_equal(v.numpy(), s) for (v, _, _, _), s in zip(ft.rules, start)]
        assert any(moved) == (i == 2)
    assert ft.t == 1 and ft.seen == 3
    for j, ((v, o, channels, _), s) in enumerate(zip(ft.rules, start)):
        mean = np.mean([np.asarray(g[1][j]) for g in grads], axis=0)
        if channels < s.shape[-1]:
            mean[..., channels:] = 0
        want = s - learning_rate(o, 0) * mean
        assert np.allclose(v.numpy(), want, rtol=1e-5, atol=1e-7), j
    assert all(not a.numpy().any() for a in ft.accs)


# --- memory: the accumulators are their own part ---------------------------------------

def test_plan_counts_the_accumulators_apart_from_the_optimizer_state(tmp_path, capsys):
    """memory.plan, tflm_memory (target_memory, account) and `plan`: B = 3 adds one float32
    accumulator per trained parameter (as large as the momentum buffers, 0.9 momentum
    here), in "accumulators", never in the optimizer state, and into the total; B = 1
    has none and `plan` prints no such line."""
    from tflite_train import memory, tflm_memory
    one, three = _augment(1).graph, _augment(B).graph
    accs = sum(three.tensors[a].nbytes for a in training_ops.accumulator_tensors(three))
    assert accs == 3344 and not training_ops.accumulator_tensors(one)
    # the head's int8 rounding residual (augment's default) is optimizer state, 1 B a weight
    res = sum(three.tensors[r].nbytes for r in training_ops.residual_tensors(three))
    assert res == 128
    p1, p3 = memory.plan(one), memory.plan(three)
    assert (p1.accumulator_bytes, p3.accumulator_bytes) == (0, accs)
    assert p1.optimizer_bytes == p3.optimizer_bytes == accs + res   # momentum buffers, residual
    assert p1.trainable_bytes == p3.trainable_bytes
    assert p3.total_bytes - p1.total_bytes == accs
    t1 = tflm_memory.account(one, len(tflite_io.serialize(one)))
    t3 = tflm_memory.account(three, len(tflite_io.serialize(three)))
    assert (t1["accumulators"], t3["accumulators"]) == (0, accs)
    assert t1["optimizer"] == t3["optimizer"] and t1["trained"] == t3["trained"]
    assert t3["sram_total"] == (t3["arena"] + t3["persistent"] + t3["trained"]
                                + t3["optimizer"] + accs)
    assert tflm_memory.target_memory(three).accumulators == accs
    assert tflm_memory.target_memory(three).total == t3["sram_total"]
    for g, name in ((one, "one"), (three, "three")):
        path = tmp_path / f"{name}.tflite"
        tflite_io.save(g, path)
        assert main(["plan", str(path)]) == 0
        out = capsys.readouterr().out
        assert ("accumulators" in out) == (g is three)
        assert main(["plan", str(path), "--json"]) == 0
        info = __import__("json").loads(capsys.readouterr().out)
        assert info["accumulator_bytes"] == (accs if g is three else 0)


def test_the_header_lists_the_accumulator_regions():
    """`tflite-train header`: the checkpoint regions of a batch-3 model include one kind-4
    row per accumulator, in checkpoint.layout's order."""
    from tflite_train import c_header, checkpoint
    g = _augment(B).graph
    lines = c_header.checkpoint_lines(g, tflite_io.serialize(g))
    rows = [line for line in lines if "/* accumulator:" in line]
    assert len(rows) == 6
    want = [r for r in checkpoint.layout(g) if r.kind == checkpoint.ACCUMULATOR]
    assert rows == [line for line in lines if line.startswith("  {4, ")]
    assert [f"  {{4, {r.id}, {r.nbytes}}}," for r in want] == [x.split("   ")[0] for x in rows]


def test_cli_augment_batch_then_train(tmp_path, capsys):
    """augment --batch 2 says so; train --steps 3 runs 3 updates of 2 samples (engine c, the
    default for a batched model); an engine without the batch refuses the model in one
    line."""
    from tflite_train.cli import EXIT_ERROR
    rng = np.random.default_rng(1)
    y = np.arange(24) % 4
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (24, 32, 32)).astype(np.uint8), y=y)
    model = tmp_path / "b.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4",
                 "--lr", "0.05", "--batch", "2"]) == 0
    assert "batch 2 (one update per 2 samples)" in capsys.readouterr().out
    state = tmp_path / "s.npz"
    assert main(["train", str(model), "--data", str(tmp_path / "d.npz"), "--steps", "3",
                 "-o", str(state)]) == 0
    out = capsys.readouterr().out
    assert "engine c, batch 2" in out and "done: 3 steps (6 samples)" in out
    # export drops the accumulators with the other training state
    tuned = tmp_path / "t.tflite"
    assert main(["export", str(model), "--state", str(state), "-o", str(tuned)]) == 0
    capsys.readouterr()
    assert not any(t.is_variable for t in tflite_io.load(tuned).tensors)
    from tflite_train.train import BATCH_ENGINES
    refusing = [["train", str(model), "--data", str(tmp_path / "d.npz"), "--steps", "1",
                 "--engine", e] for e in ("c", "tflm") if e not in BATCH_ENGINES]
    if "codegen" not in BATCH_ENGINES:
        refusing.append(["codegen", str(model), "-o", str(tmp_path / "gen")])
    for argv in refusing:
        assert main(argv) == EXIT_ERROR
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "does not run a model of batch 2" in err


def test_a_batch_scales_the_new_heads_rates_and_grid_only():
    """lr.head_boost: with model-derived rates, batch B multiplies the new head's NLMS rates
    (weights and bias) by B and its grid's headroom by B; every other layer keeps its rates;
    given rates (--lr) leave the head as at batch 1."""
    from tflite_train import lr as lr_rule

    def head_and_rates(batch, lr=None):
        r = augment.augment(tflite_io.load(EXAMPLE), "bias-only", num_classes=4,
                            hyper=Hyper(lr=lr, batch=batch, seed=3))
        g = r.graph
        w = next(t for t in g.tensors if t.name == "head/weights")
        rates = {}
        for op in g.operators:
            if "UPDATE" in op.kind:
                o = training_ops.options_of(op)
                name = g.tensors[op.inputs[0 if op.kind.startswith("TT_UPDATE") else
                                         (2 if op.kind == "TT_BIAS_UPDATE" else 3)]].name
                rates[name] = o["lr"]
        return float(w.quant.scale[0]), rates, r.metadata["lr_rule"]

    s1, r1, rule1 = head_and_rates(1)
    s4, r4, rule4 = head_and_rates(4)
    assert s4 == pytest.approx(4 * s1, rel=1e-6)
    assert rule4["head_boost"] == 4.0 and "head_boost" not in rule1
    heads = [n for n in r1 if n.startswith("head/")]
    assert len(heads) == 2
    for n in r1:
        want = lr_rule._sig(r1[n] * 4) if n in heads else r1[n]
        assert r4[n] == pytest.approx(want, rel=2e-2), n
    g1, _, _ = head_and_rates(1, lr=0.05)
    g4, q4, _ = head_and_rates(4, lr=0.05)
    assert g4 == g1 and all(v == pytest.approx(0.05) or v == pytest.approx(0.0005)
                            for v in q4.values())


# --- malformed batched models: one line from every consumer (review24) -------------------

def _set_batch(op, value):
    o = dict(training_ops.options_of(op))
    if value is None:
        o.pop("batch", None)
    else:
        o["batch"] = value
    op.custom_options = training_ops.encode_options(o)
    op.options.pop("_tt", None)


def _acc(g, op):
    return g.tensors[training_ops.accumulator_input(g, op)]


def _momentum_pos(op) -> int:
    names = [i["name"] for i in training_ops.spec(op.kind)["inputs"]]
    return names.index("momentum_buffer")


def _share_accumulator(g, op):
    """The accumulator of the first update op with the same trained region as a later one
    made that one's too."""
    batched = [o for o in g.operators if training_ops.batch_of(o) > 1]
    a, b = next((a, b) for i, a in enumerate(batched) for b in batched[i + 1:]
                if _acc(g, a).shape == _acc(g, b).shape)
    b.inputs[training_ops.accumulator_pos(g, b)] = training_ops.accumulator_input(g, a)


# (what, op kind, fused updates, mutation of (graph, op), the line's words, the glue
# Prepare's words): crafted from a batch-3 model (momentum 0.5) of the example
MALFORMED = [
    ("no accumulator", "TT_BIAS_UPDATE", True,
     lambda g, op: op.inputs.pop(), "batch 3 needs an accumulator", "inputs, the schema says"),
    ("accumulator -1", "TT_UPDATE_WEIGHT", False,
     lambda g, op: op.inputs.__setitem__(training_ops.accumulator_pos(g, op), -1),
     "batch 3 needs an accumulator", "accumulator"),
    ("accumulator shape", "TT_CONV2D_WEIGHT_UPDATE", True,
     lambda g, op: setattr(_acc(g, op), "shape", (_acc(g, op).size + 1,)),
     "is not the trained region", "accumulator must be shaped like the trained region"),
    ("accumulator int8", "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE", True,
     lambda g, op: setattr(_acc(g, op), "dtype", "int8"), "(accumulator) is int8, wants float32",
     "accumulator"),
    ("accumulator float16", "TT_FULLY_CONNECTED_WEIGHT_UPDATE", True,
     lambda g, op: setattr(_acc(g, op), "dtype", "float16"), "has type float16", "accumulator"),
    ("accumulator constant", "TT_UPDATE_BIAS", False,
     lambda g, op: (setattr(_acc(g, op), "is_variable", False),
                    setattr(_acc(g, op), "data", np.zeros(_acc(g, op).shape, F32))),
     "(accumulator) is not a variable", "accumulator"),
    # the glue counted the accumulator as an input too many before round 25
    ("batch 0", "TT_BIAS_UPDATE", True, lambda g, op: _set_batch(op, 0),
     "option batch=0 out of range", "option batch=0 out of range 1..65536"),
    ("batch 0, weights", "TT_FULLY_CONNECTED_WEIGHT_UPDATE", True,
     lambda g, op: _set_batch(op, 0), "option batch=0 out of range",
     "option batch=0 out of range 1..65536"),
    ("batch -3", "TT_UPDATE_BIAS", False, lambda g, op: _set_batch(op, -3),
     "option batch=-3 out of range", "option batch=-3 out of range 1..65536"),
    ("batch 2^40", "TT_UPDATE_WEIGHT", False, lambda g, op: _set_batch(op, 1 << 40),
     "option batch=1099511627776 out of range", "option 'batch'"),
    ("batch 1 with an accumulator", "TT_CONV2D_WEIGHT_UPDATE", True,
     lambda g, op: _set_batch(op, 1), "batch 1 takes no accumulator", "inputs, the schema says"),
    ("no batch with an accumulator", "TT_UPDATE_BIAS", False,
     lambda g, op: _set_batch(op, None), "batch 1 takes no accumulator",
     "inputs, the schema says"),
    # every kernel and Prepare accepted these before review24; numpy and C trained the
    # first to different bits (numpy zeroes the accumulator before the momentum reads it)
    ("accumulator = momentum buffer", "TT_UPDATE_BIAS", False,
     lambda g, op: op.inputs.__setitem__(training_ops.accumulator_pos(g, op),
                                         op.inputs[_momentum_pos(op)]),
     "is also its input", "the accumulator is the momentum buffer"),
    ("accumulator = momentum buffer, fused", "TT_FULLY_CONNECTED_WEIGHT_UPDATE", True,
     lambda g, op: op.inputs.__setitem__(training_ops.accumulator_pos(g, op),
                                         op.inputs[_momentum_pos(op)]),
     "is also its input", "the accumulator is the momentum buffer"),
    ("accumulator shared by two ops", "TT_BIAS_UPDATE", True, _share_accumulator,
     "is also an input of operator", None),
]


def malformed_model(kind: str, fuse: bool, mutate) -> bytes:
    """A batch-3 training model of the example with one update op broken, unvalidated."""
    r = augment.augment(tflite_io.load(EXAMPLE), "full" if kind == "TT_BIAS_UPDATE" else
                        "last:2", num_classes=4, fuse=fuse,
                        hyper=Hyper(lr=0.05, momentum=0.5, seed=3, batch=B))
    g = tflite_io.parse(tflite_io.serialize(r.graph))
    mutate(g, next(op for op in g.operators if op.kind == kind))
    return tflite_io.serialize(g)


@pytest.mark.parametrize("what, kind, fuse, mutate, words, glue_words", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_batched_models_are_one_line_errors(what, kind, fuse, mutate, words,
                                                      glue_words, tmp_path, capsys):
    """Every command that reads a training model refuses it with one line, exit 2, naming
    the problem, never a traceback: the validation when the file is read (training_ops'
    schema, ops/ttcheck.momentum, validate._optimizer_buffers) is the one place."""
    from test_fuzz import one_line_error
    path = tmp_path / "m.tflite"
    path.write_bytes(malformed_model(kind, fuse, mutate))
    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.zeros((4, 32, 32, 1), np.uint8), y=np.arange(4) % 4)
    for argv in (["inspect", path], ["plan", path], ["header", path, "-o", tmp_path / "h.h"],
                 *(["train", path, "--data", npz, "--steps", "1", "--engine", e]
                   for e in ("numpy", "c", "tflm")),
                 ["codegen", path, "-o", tmp_path / "gen"],
                 ["export", path, "--state", npz, "-o", tmp_path / "x.tflite"],
                 ["verify", path], ["compare", path]):
        line = one_line_error(capsys, *argv)
        assert words in line or argv[0] in ("verify", "compare"), (argv[0], line)
    assert not any((tmp_path / f).exists() for f in ("h.h", "gen", "x.tflite"))


def test_export_of_a_batched_model(tmp_path):
    """export of a batch-3 model (review24: never run by a test): from the state file of
    train --steps 4 (engine c) and from a device checkpoint of the same run, and from one
    taken mid-batch (2 Invokes later: the partial batch is accumulated, not applied, so the
    same parameters): the same plain model (no TT_* op, no variable, no accumulator), which
    computes what the training model computes with label -1 (test_export's check) and passes
    verify; every source reports 4 steps, the updates (the device's counter is 12 Invokes,
    which export reported as 12 steps before)."""
    from checkpoint_helpers import sample
    from test_export import check_plain, inference_matches
    from tflite_train import checkpoint, export
    from tflite_train.train import save_state, train
    from tflite_train.verify import verify
    g = _augment(B, grad="float32").graph
    path = tmp_path / "m.tflite"
    tflite_io.save(g, path)
    graph, model = tflite_io.load(path), path.read_bytes()
    trainer, history = train(graph, _dataset(), steps=4, val_split=0.1, engine="c")
    save_state(tmp_path / "state.npz", trainer, history, model)
    mid = checkpoint.model_id(model)
    (tmp_path / "end.bin").write_bytes(checkpoint.to_blob(
        checkpoint.capture(trainer.executor, graph, mid, 1)))
    for i in range(2):
        trainer.executor.invoke([sample(graph, 3, i)[0], np.array([i % 4], np.int32)])
    ckpt = checkpoint.capture(trainer.executor, graph, mid, 2)
    assert any(v.any() for r, v in zip(ckpt.regions, ckpt.values)
               if r.kind == checkpoint.ACCUMULATOR)
    (tmp_path / "mid.bin").write_bytes(checkpoint.to_blob(ckpt))
    results = [export.write(str(path), str(tmp_path / name), str(tmp_path / f"{name}.tflite"))
               for name in ("state.npz", "end.bin", "mid.bin")]
    assert [r["source"]["steps"] for r in results] == [4, 4, 4]
    data = [(tmp_path / f"{name}.tflite").read_bytes() for name in ("state.npz", "end.bin")]
    exported = results[0]["graph"]
    check_plain(exported, graph)
    assert not any("accumulator" in t.name for t in exported.tensors)
    for r in results[1:]:
        assert all(a.data is None and b.data is None or np.array_equal(a.data, b.data)
                   for a, b in zip(exported.tensors, r["graph"].tensors))
    inference_matches(graph, trainer.executor, exported)
    assert verify(exported, data[0], samples=1).exact
