"""The batch (round 23's contract: an update op's `batch` and `accumulator`) in engine c: the
C kernels (tt_batch_accumulate_f32 around the plain gradient and update kernels) give the
numpy reference's bits on every variable after every Invoke: parameters, momentum buffers
and accumulators, through two whole batches and a partial one."""
import numpy as np
import pytest

from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_kernels
from tflite_train.runtime.kernel_calls import BatchCall
from tflite_train.runtime.numpy_exec import Executor

B = 3


def _run(graph, engine, steps=8):
    ex = Executor(graph, engine)
    rng = np.random.default_rng(2)
    shape = graph.tensors[graph.inputs[0]].shape
    seen = []
    for i in range(steps):
        x = rng.integers(-128, 128, shape).astype(np.int8)
        # an inference Invoke in the middle of a batch changes nothing
        label = -1 if i == 4 else i % 4
        ex.invoke([x, np.array([label], np.int32)])
        seen.append({graph.tensors[k].name: v.tobytes() for k, v in ex.variables.items()})
    return seen


@pytest.mark.parametrize("scheme, fuse, hyper", [
    ("last:2", True, Hyper(lr=0.05, momentum=0.9, seed=3, batch=B, grad="int8")),
    ("last:2", False, Hyper(lr=0.05, seed=4, batch=B, grad="float32", rounding="nearest",
                            half_life=3)),
    ("full", True, Hyper(lr=0.05, seed=5, batch=B, grad="float32", decay_steps=4)),
    ("bias-only", True, Hyper(lr=0.05, momentum=0.5, seed=6, batch=2, grad="int8",
                              rounding="nearest")),
])
def test_engine_c_runs_the_batch_as_numpy_does(scheme, fuse, hyper):
    r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, hyper, fuse=fuse)
    g = r.graph
    calls = [c_kernels.kernel_call(g, op) for op in g.operators if op.kind.startswith("TT_")]
    assert any(isinstance(c, BatchCall) and c.grad is not None for c in calls) == fuse
    numpy_run, c_run = _run(g, "numpy"), _run(g, "c")
    for i, (a, b) in enumerate(zip(numpy_run, c_run)):
        differing = [n for n in a if a[n] != b[n]]
        assert not differing, f"Invoke {i}: {differing[:4]}"
    accumulators = [g.tensors[k].name for k in r.backward.accumulators]
    params = [g.tensors[k].name for k in dict.fromkeys(r.backward.variables)]
    # something trained, and the accumulators hold a partial batch at the end (7 samples)
    assert any(numpy_run[-1][n] != numpy_run[0][n] for n in params)
    assert any(np.frombuffer(numpy_run[-1][n], np.float32).any() for n in accumulators)


def test_batch_1_is_todays_single_call():
    r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4, Hyper(lr=0.05, batch=1))
    calls = [c_kernels.kernel_call(r.graph, op) for op in r.graph.operators
             if op.kind.startswith("TT_")]
    assert calls and not any(isinstance(c, BatchCall) for c in calls)
