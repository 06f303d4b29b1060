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
        assert acc == op.inputs[-1]
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

def test_a_run_resumed_mid_batch_equals_the_uninterrupted_one():
    """B = 3, numpy engine: 4 training Invokes (a batch and one sample), a checkpoint
    through the blob format (kind 4 = accumulator, after the momentum buffers), 5 more in
    a fresh executor: the same losses and state as 9 in one go. Without the accumulators
    (zeroed) the resumed run differs: the test can tell."""
    from checkpoint_helpers import sample, train_steps
    from tflite_train import checkpoint
    r = augment.augment(tflite_io.load(EXAMPLE), "full", 4,
                        Hyper(lr=0.05, momentum=0.9, rounding="stochastic", seed=9,
                              decay_steps=4, batch=B, grad="float32"))
    graph, model = r.graph, tflite_io.serialize(r.graph)
    regions = checkpoint.layout(graph)
    kinds = [x.kind for x in regions]
    assert kinds == sorted(kinds, key=[1, 2, 4, 3].index)
    accs = [x for x in regions if x.kind == checkpoint.ACCUMULATOR]
    assert sorted(x.id for x in accs) == sorted(r.backward.accumulators)
    assert all(x.dtype == "float32" for x in accs)
    assert checkpoint.ACCUMULATOR not in [x.kind for x in checkpoint.layout(_augment(1).graph)]
    mid, seed, n, m = checkpoint.model_id(model), 21, 4, 5
    straight = Executor(graph)
    want = train_steps(graph, straight, n + m, seed)
    first = Executor(graph)
    losses = train_steps(graph, first, n, seed)
    saved = checkpoint.from_blob(checkpoint.to_blob(checkpoint.capture(first, graph, mid)),
                                 graph, model)
    assert any(v.any() for x, v in zip(saved.regions, saved.values)
               if x.kind == checkpoint.ACCUMULATOR)

    def resumed(drop_accumulators: bool):
        fresh = Executor(graph)
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
    p1, p3 = memory.plan(one), memory.plan(three)
    assert (p1.accumulator_bytes, p3.accumulator_bytes) == (0, accs)
    assert p1.optimizer_bytes == p3.optimizer_bytes == accs      # the momentum buffers
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
