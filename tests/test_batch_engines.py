"""The batch (round 23's contract: the update ops' option `batch` and their accumulator, the
last input) in the C engines: engine tflm (the TFLM glue, micro_kernels/tflm/) against
engines c and numpy, bit for bit, on zoo models with every update op (fused and separate, conv,
depthwise, fully connected, bias), both gradient modes, momentum on and off, both roundings,
over two whole batches and a partial one; and a TFLM checkpoint taken mid-batch."""
import numpy as np
import pytest

from tflite_train import augment, checkpoint, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.runtime.tflm_engine import TFLMExecutor
from tflite_train.training_ops import accumulator_input, batch_of, encode_options, options_of

B = 3
INVOKES = 8          # 7 training Invokes (two batches and one of the third) and an inference

UPDATE_OPS = {"TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS", "TT_CONV2D_WEIGHT_UPDATE",
              "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE", "TT_FULLY_CONNECTED_WEIGHT_UPDATE",
              "TT_BIAS_UPDATE"}


def batched(zoo, name, fuse, grad, momentum, rounding, batch=B):
    # int8 gradients rounded stochastically (not augment's default, nearest): their streams
    # are state the engines and a mid-batch checkpoint must carry too
    return augment.augment(tflite_io.load(zoo[name]), "full", None,
                           Hyper(lr=0.05, momentum=momentum, rounding=rounding, seed=5,
                                 grad=grad, grad_rounding="stochastic", batch=batch),
                           fuse=fuse).graph


def labels(graph):
    """Training labels, one inference Invoke (label -1) in the middle of the second batch."""
    classes = graph.tensors[graph.outputs[0]].size
    return [-1 if i == 4 else i % classes for i in range(INVOKES)]


def run(ex, graph, seed=0, invokes=None):
    rng = np.random.default_rng(seed)
    shape = graph.tensors[graph.inputs[0]].shape
    losses = []
    for i, label in enumerate(labels(graph)):
        x = rng.integers(-128, 128, shape).astype(np.int8)
        if invokes is None or i in invokes:
            out = ex.invoke([x, np.array([label], np.int32)])
            losses.append(np.asarray(out[graph.outputs[-1]]).copy())
    return losses


def state(ex, graph):
    """Every variable (parameters, momentum buffers, accumulators) and every update op's
    stream and step, as bytes."""
    out = {graph.tensors[k].name: v.tobytes() for k, v in ex.variables.items()}
    for k, p, _ in checkpoint.update_ops(graph):
        out[f"state of {graph.tensors[p].name}"] = ex.update_state(k)
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    bad = [k for k in a if a[k] != b[k]]
    assert not bad, bad


CASES = [  # (model, fuse, gradients, momentum, rounding): each op kind with each setting
    ("mobile", True, "int8", 0.9, "stochastic"),
    ("mobile", True, "float32", 0.0, "nearest"),
    ("mobile", False, "int8", 0.0, "stochastic"),
    ("mobile", False, "float32", 0.9, "nearest"),
    ("mobile", True, "int8", 0.0, "nearest"),
    ("mobile", False, "float32", 0.0, "stochastic"),
    ("depthwise", True, "float32", 0.9, "stochastic"),
    ("dense", False, "int8", 0.9, "nearest"),
]


@pytest.mark.parametrize("name, fuse, grad, momentum, rounding", CASES)
def test_tflm_equals_c_and_numpy_at_batch_3(zoo, name, fuse, grad, momentum, rounding):
    graph = batched(zoo, name, fuse, grad, momentum, rounding)
    updates = [op for op in graph.operators if op.kind in UPDATE_OPS]
    assert updates and all(batch_of(op) == B for op in updates)
    assert {op.kind for op in updates} & {"TT_UPDATE_WEIGHT", "TT_CONV2D_WEIGHT_UPDATE",
                                          "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE",
                                          "TT_FULLY_CONNECTED_WEIGHT_UPDATE"}
    tflm, ref, c = TFLMExecutor(graph), Executor(graph, "numpy"), Executor(graph, "c")
    losses_t, losses_n, losses_c = run(tflm, graph), run(ref, graph), run(c, graph)
    assert [l.tobytes() for l in losses_t] == [l.tobytes() for l in losses_n] \
        == [l.tobytes() for l in losses_c]
    got, want = state(tflm, graph), state(ref, graph)
    assert_same(got, want)
    assert_same(state(c, graph), want)
    # 7 training Invokes: two updates made, the third batch's first gradient accumulated
    accs = [graph.tensors[accumulator_input(graph, op)].name for op in updates]
    assert all(np.frombuffer(got[a], np.float32).any() for a in accs)
    assert {v[1] for k, v in got.items() if k.startswith("state of ")} == {7}


def test_the_steps_and_updates_follow_the_batch(zoo):
    """Invoke by Invoke inside TFLM: the parameters change on the 3rd and 6th training
    Invoke only, the accumulators are empty right after them, the step counts Invokes."""
    graph = batched(zoo, "mobile", True, "int8", 0.9, "stochastic")
    ex = TFLMExecutor(graph)
    updates = [(k, p) for k, p, _ in checkpoint.update_ops(graph)
               if graph.operators[k].kind in UPDATE_OPS]
    params = [p for _, p in updates]
    accs = [accumulator_input(graph, op) for op in graph.operators if op.kind in UPDATE_OPS]
    rng = np.random.default_rng(2)
    shape = graph.tensors[graph.inputs[0]].shape
    ex.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([-1], np.int32)])
    for n in range(1, 8):
        before = {p: ex.variables[p].copy() for p in params}
        ex.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([n % 2], np.int32)])
        changed = [p for p in params if not np.array_equal(ex.variables[p], before[p])]
        if n % B:
            assert not changed and all(ex.variables[a].any() for a in accs), n
        else:
            assert changed and not any(ex.variables[a].any() for a in accs), n
        assert {ex.update_state(k)[1] for k, _ in updates} == {n}


@pytest.mark.parametrize("fuse, grad", [(True, "int8"), (False, "float32")])
def test_a_tflm_checkpoint_mid_batch_resumes_with_the_same_bits(zoo, fuse, grad):
    """Checkpoint after 4 training Invokes (one whole batch, one sample into the second):
    the blob holds the accumulators (kind 4); a new interpreter restored from it and given
    the rest of the samples ends where the uninterrupted run ends."""
    graph = batched(zoo, "mobile", fuse, grad, 0.9, "stochastic")
    model = tflite_io.serialize(graph)
    whole = TFLMExecutor(graph)
    run(whole, graph)
    first = TFLMExecutor(graph)
    run(first, graph, invokes=range(4))                   # Invokes 0..3: 4 training
    ckpt = checkpoint.capture(first, graph, checkpoint.model_id(model))
    kinds = [r.kind for r in ckpt.regions]
    assert checkpoint.ACCUMULATOR in kinds
    assert any(v.any() for r, v in zip(ckpt.regions, ckpt.values)
               if r.kind == checkpoint.ACCUMULATOR)
    ckpt = checkpoint.from_blob(checkpoint.to_blob(ckpt), graph, model)
    resumed = TFLMExecutor(graph)
    rng = np.random.default_rng(9)
    shape = graph.tensors[graph.inputs[0]].shape
    resumed.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([-1], np.int32)])
    checkpoint.restore(resumed, graph, ckpt)
    run(resumed, graph, invokes=range(4, INVOKES))
    assert_same(state(resumed, graph), state(whole, graph))
    # and the accumulators matter: restored without them, the run ends elsewhere
    empty = TFLMExecutor(graph)
    empty.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([-1], np.int32)])
    checkpoint.restore(empty, graph, checkpoint.Checkpoint(
        ckpt.model_id, ckpt.regions,
        [np.zeros_like(v) if r.kind == checkpoint.ACCUMULATOR else v
         for r, v in zip(ckpt.regions, ckpt.values)]))
    run(empty, graph, invokes=range(4, INVOKES))
    assert state(empty, graph) != state(whole, graph)


def test_an_explicit_batch_1_is_todays_rule_in_tflm(zoo):
    """Option batch 1 written out (augment leaves it absent) and no accumulator: the same
    bits as the model without the option, in TFLM and numpy."""
    graph = batched(zoo, "dense", True, "int8", 0.9, "stochastic", batch=1)
    explicit = tflite_io.parse(tflite_io.serialize(graph))
    for op in explicit.operators:
        if op.kind in UPDATE_OPS:
            op.custom_options = encode_options({**options_of(op), "batch": 1})
            op.options.pop("_tt", None)
    assert all(batch_of(op) == 1 and "batch" in options_of(op)
               for op in explicit.operators if op.kind in UPDATE_OPS)
    want = TFLMExecutor(graph)
    run(want, graph)
    for g in (explicit,):
        for ex in (TFLMExecutor(g), Executor(g, "numpy")):
            run(ex, g)
            assert_same(state(ex, g), state(want, graph))


def test_tflm_plans_the_batch_scratch_as_memory_does(zoo):
    """At B > 1 a fused update's gradient scratch is its whole trained region (the plain
    gradient kernel's output): memory.plan must predict TFLM's head."""
    from tflite_train import memory
    from tflite_train.runtime.tflm_engine import training_arena_usage
    graph = batched(zoo, "mobile", True, "int8", 0.9, "stochastic")
    data = tflite_io.serialize(graph)
    assert training_arena_usage(data)["head"] == memory.plan(tflite_io.parse(data)).arena_bytes
