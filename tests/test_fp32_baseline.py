"""The fp32 baseline (tflite_train/fp32.py): TensorFlow fine-tuning of the same trainable set,
read from the training model, whether its updates are fused (augment's default) or separate;
and benchmarks/transfer.py running it beside int8 training, on the built-in example model."""
import importlib.util
import json
import subprocess
import sys

import numpy as np

from conftest import require_tool
from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE

ROOT = EXAMPLE.parents[2]


def test_float_trainer_trains_the_same_set_fused_or_separate():
    """Fused and separate update ops name the same parameters with the same options, so the
    float trainer builds the same variables and its steps give the same losses (bit for
    bit: the same TensorFlow computation); the trainable set is exactly the int8 model's
    (every integer variable TT_INIT fills); and the updates are applied."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    from tflite_train.fp32 import FloatTrainer, updates
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, (4, 1, 32, 32, 1)).astype(np.int8)
    losses = {}
    for fuse in (True, False):
        r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4,
                            Hyper(lr=0.05, momentum=0.5, decay_steps=100), fuse=fuse)
        g = r.graph
        assert any(op.kind.endswith("_WEIGHT_UPDATE") for op in g.operators) == fuse
        init = next(op for op in g.operators if op.kind == "TT_INIT")
        params = {g.tensors[p].name for p, _ in updates(g)}
        assert params == {g.tensors[v].name for v in init.inputs[1::2]    # not the momentum
                          if g.tensors[v].dtype != "float32"}
        ft = FloatTrainer(g)
        losses[fuse] = [ft.step(x, i % 4) for i, x in enumerate(xs)]
        # the updates are applied: ten more steps on one sample lower its loss
        losses[fuse] += [ft.step(xs[1], 1) for _ in range(10)]
        assert losses[fuse][-1] < losses[fuse][1] / 2, losses[fuse]
    assert losses[True] == losses[False]


def test_transfer_benchmark_runs_fp32_beside_int8(tmp_path):
    """benchmarks/transfer.py --variants qas,fp32 end to end on the example model (32x32x1)
    and a small .npz of 4 classes: one row per scheme and variant, accuracies in [0, 1]."""
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    rng = np.random.default_rng(1)
    y = np.arange(40) % 4
    x = (rng.integers(0, 64, (40, 32, 32)) + 48 * y[:, None, None]).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    out = tmp_path / "rows.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "transfer.py"),
                          "--model", str(EXAMPLE), "--data", str(tmp_path / "tiny.npz"),
                          "--schemes", "bias-only,last:1", "--steps", "12", "--val", "4",
                          "--variants", "qas,fp32", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["scheme"], r["variant"]) for r in rows] == [
        ("bias-only", "int8 + QAS"), ("bias-only", "fp32"),
        ("last:1", "int8 + QAS"), ("last:1", "fp32")]
    assert all(0 <= r["val_accuracy"] <= 1 and r["trained_params"] > 0 for r in rows)
    assert "| last:1 | fp32 |" in res.stdout
