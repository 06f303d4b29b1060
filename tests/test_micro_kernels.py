"""The C kernels (micro_kernels/) against the numpy reference: every op on random inputs,
whole training runs, a warning-free build for x86 and Cortex-M7, and the sanitizers.

Tolerances. Integer results (masks, slices, updated int8 weights and int32 biases) must be
identical. Float gradients: both sides accumulate in double and round once to float32, in
different summation orders, so they agree to a few float32 ulps: relative 1e-6 of the
tensor's largest magnitude. The loss uses libm's expf/logf against numpy's float32 exp/log:
within 1e-6 relative too.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tflite_train import augment, ops, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_kernels
from tflite_train.runtime.numpy_exec import Executor

ROOT = c_kernels.ROOT
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]


def close(a, b, rel=1e-6):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(initial=0), 1e-30)
    return a.shape == b.shape and np.abs(a - b).max(initial=0) <= rel * scale


def training_graphs():
    """Training models whose TT ops cover every C kernel: both update forms, masks, pools."""
    out = []
    for scheme, fuse in (("full", False), ("full", True), ("last:2", True)):
        r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4,
                            Hyper(lr=0.05, momentum=0.5, rounding="stochastic", seed=7),
                            fuse=fuse)
        out.append(r)
    return out


def test_every_c_kernel_matches_numpy_on_real_training_steps():
    """Run the numpy executor; at every TT op, also run the C kernel on the same inputs
    (copies for in-place ops) and compare."""
    seen = set()
    rng = np.random.default_rng(0)
    for r in training_graphs():
        g = r.graph
        ex = Executor(g)
        x = rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
        values = {}
        for index, t in enumerate(g.tensors):
            if t.data is not None:
                values[index] = t.data
        values.update(ex.variables)
        values[g.inputs[0]], values[g.inputs[1]] = x, np.array([2], np.int32)
        for k, op in enumerate(g.operators):
            d = ex.opdefs[k]
            args = [values.get(i) if i >= 0 else None for i in op.inputs]
            if op.kind in c_kernels.C_KERNELS:
                fn, stateful = c_kernels.C_KERNELS[op.kind]
                c_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
                c_out = fn(g, op, c_args, {}) if stateful else fn(g, op, c_args)
            outs = d.forward(g, op, args, ex.op_state[k]) if d.stateful else d.forward(g, op,
                                                                                      args)
            if op.kind in c_kernels.C_KERNELS:
                seen.add(op.kind)
                for ours, theirs in zip(c_out, outs):
                    if np.asarray(theirs).dtype.kind in "iu":
                        assert np.array_equal(ours, theirs), op.kind
                    else:
                        assert close(ours, theirs), op.kind
                if stateful:                     # in-place: compare the written tensors
                    for a, b in zip(c_args, args):
                        if isinstance(a, np.ndarray) and a.dtype.kind in "iu":
                            assert np.array_equal(a, b), op.kind
            for index, y in zip(op.outputs, outs):
                values[index] = np.asarray(y).reshape(g.tensors[index].shape)
    # the rest are reached by test_pool_softmax_and_slice_kernels
    direct = {"TT_MAX_POOL_GRAD", "TT_AVERAGE_POOL_GRAD", "TT_SOFTMAX_GRAD", "TT_SAVE_SLICE",
              "TT_MASK_GRAD", "TT_PAD_GRAD", "TT_TRANSPOSE_GRAD", "TT_RESHAPE_GRAD"}
    missing = set(c_kernels.C_KERNELS) - seen - direct
    assert not missing, missing


def test_every_schema_op_has_a_c_kernel():
    from tflite_train import training_ops
    assert set(training_ops.schema()["ops"]) == set(c_kernels.C_KERNELS)


def test_data_movement_kernels():
    from tflite_train.ir import Graph, Tensor
    from tflite_train.training_ops import make_op
    rng = np.random.default_rng(2)
    dy = rng.normal(size=(1, 6, 7, 3)).astype(np.float32)
    g = Graph([Tensor("dy", (1, 6, 7, 3), "float32"), Tensor("label", (1,), "int32"),
               Tensor("dx", (1, 4, 4, 3), "float32")], [], [], [])
    op = make_op("TT_PAD_GRAD", [0, 1], [2], before=[0, 1, 2, 0])
    args = [dy, np.array([0])]
    assert np.array_equal(c_kernels.pad_grad(g, op, args)[0],
                          ops.REGISTRY["TT_PAD_GRAD"].forward(g, op, args)[0])
    g = Graph([Tensor("dy", (1, 7, 6, 3), "float32"), Tensor("label", (1,), "int32"),
               Tensor("dx", (1, 6, 3, 7), "float32")], [], [], [])
    op = make_op("TT_TRANSPOSE_GRAD", [0, 1], [2], perm=[0, 3, 1, 2])
    args = [rng.normal(size=(1, 7, 6, 3)).astype(np.float32), np.array([0])]
    assert np.array_equal(c_kernels.transpose_grad(g, op, args)[0],
                          ops.REGISTRY["TT_TRANSPOSE_GRAD"].forward(g, op, args)[0])
    g = Graph([Tensor("dy", (1, 2, 3), "float32"), Tensor("label", (1,), "int32"),
               Tensor("dx", (6,), "float32")], [], [], [])
    op = make_op("TT_RESHAPE_GRAD", [0, 1], [2])
    args = [np.arange(6, dtype=np.float32).reshape(1, 2, 3), np.array([0])]
    assert np.array_equal(c_kernels.reshape_grad(g, op, args)[0], np.arange(6))


def test_pool_softmax_and_slice_kernels():
    """Kernels the example model's training graphs do not reach, on direct inputs."""
    from tflite_train.ir import Graph, Quantization, Tensor
    from tflite_train.training_ops import make_op
    rng = np.random.default_rng(1)
    q = Quantization(np.array([0.05], np.float32), np.array([3]))
    for kind in ("TT_MAX_POOL_GRAD", "TT_AVERAGE_POOL_GRAD"):
        for stride, pad in ((1, 0), (2, 1)):
            oh = 4
            h = 7
            g = Graph([Tensor("dy", (1, oh, oh, 3), "float32"), Tensor("x", (1, h, h, 3), "int8", q),
                       Tensor("label", (1,), "int32"), Tensor("dx", (1, h, h, 3), "float32")],
                      [], [], [])
            opts = dict(filter_h=3, filter_w=2, stride_h=stride, stride_w=stride, pad_top=pad,
                        pad_left=pad)
            ins = [0, 1, 2] if kind == "TT_MAX_POOL_GRAD" else [0, 2]
            op = make_op(kind, ins, [3], **opts)
            dy = rng.normal(size=(1, oh, oh, 3)).astype(np.float32)
            x = rng.integers(-128, 128, (1, h, h, 3)).astype(np.int8)
            args = [dy, x, np.array([0])] if kind == "TT_MAX_POOL_GRAD" else [dy, np.array([0])]
            want = ops.REGISTRY[kind].forward(g, op, args)[0]
            got = c_kernels.C_KERNELS[kind][0](g, op, args)[0]
            assert close(got, want), (kind, stride)
    g = Graph([Tensor("dy", (2, 5), "float32"),
               Tensor("p", (2, 5), "int8", Quantization(np.array([1 / 256], np.float32),
                                                        np.array([-128]))),
               Tensor("label", (1,), "int32"), Tensor("dx", (2, 5), "float32")], [], [], [])
    op = make_op("TT_SOFTMAX_GRAD", [0, 1, 2], [3])
    args = [rng.normal(size=(2, 5)).astype(np.float32),
            rng.integers(-128, 127, (2, 5)).astype(np.int8), np.array([0])]
    assert close(c_kernels.softmax_grad(g, op, args)[0],
                 ops.REGISTRY["TT_SOFTMAX_GRAD"].forward(g, op, args)[0])
    g = Graph([Tensor("dy", (2, 9), "float32"), Tensor("m", (3,), "uint8"),
               Tensor("label", (1,), "int32"), Tensor("dx", (2, 9), "float32")], [], [], [])
    op = make_op("TT_MASK_GRAD", [0, 1, 2], [3])
    args = [rng.normal(size=(2, 9)).astype(np.float32),
            rng.integers(0, 256, 3).astype(np.uint8), np.array([0])]
    assert np.array_equal(c_kernels.mask_grad(g, op, args)[0],
                          ops.REGISTRY["TT_MASK_GRAD"].forward(g, op, args)[0])
    g = Graph([Tensor("x", (1, 3, 3, 8), "int8", q), Tensor("label", (1,), "int32"),
               Tensor("s", (1, 3, 3, 3), "int8", q)], [], [], [])
    op = make_op("TT_SAVE_SLICE", [0, 1], [2], channels=3)
    x = rng.integers(-128, 128, (1, 3, 3, 8)).astype(np.int8)
    assert np.array_equal(c_kernels.save_slice(g, op, [x, np.array([0])])[0], x[..., :3])


@pytest.mark.parametrize("scheme, hyper", [
    ("full", Hyper(lr=0.05, rounding="stochastic", seed=1)),
    ("last:2", Hyper(lr=0.05, momentum=0.9, rounding="nearest")),
    ("bias-only", Hyper(lr=0.05, decay_steps=10)),
])
def test_training_with_c_kernels_gives_identical_parameters(scheme, hyper):
    """20 training steps, numpy vs C: trained int8/int32 parameters identical. A rounding
    boundary (a float update landing within an ulp of .5 or of an integer) could flip one
    element; none occur on these runs, and the test allows none."""
    finals = {}
    for engine in ("numpy", "c"):
        r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, hyper)
        ex = Executor(r.graph, engine)
        rng = np.random.default_rng(0)
        for i in range(20):
            x = rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
            ex.invoke([x, np.array([i % 4], np.int32)])
        finals[engine] = {r.graph.tensors[k].name: v.copy() for k, v in ex.variables.items()}
    differing = sum(int(np.count_nonzero(finals["numpy"][n] != finals["c"][n]))
                    for n in finals["numpy"] if finals["numpy"][n].dtype != np.float32)
    print(f"{scheme}: {differing} differing integer parameters")
    assert differing == 0


def test_train_cli_with_the_c_engine(tmp_path, capsys):
    from tflite_train.cli import main
    from tflite_train.demo import new_task
    model = tmp_path / "t.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(model), "--num-classes", "4"]) == 0
    data = new_task(tmp_path / "d.npz", n=40)
    states = []
    for engine in ("numpy", "c"):
        out = tmp_path / f"{engine}.npz"
        assert main(["train", str(model), "--data", str(data), "--steps", "15",
                     "--engine", engine, "-o", str(out)]) == 0
        states.append(np.load(out))
    for name in states[0].files:
        if name != "__history__" and states[0][name].dtype != np.float32:
            assert np.array_equal(states[0][name], states[1][name]), name


def test_builds_warning_free_for_x86_and_cortex_m7(tmp_path):
    src, inc = ROOT / "src" / "tt_kernels.c", ROOT / "include"
    subprocess.run(["gcc", *FLAGS, "-I", str(inc), "-c", str(src), "-o",
                    str(tmp_path / "x86.o")], check=True)
    arm = shutil.which("arm-none-eabi-gcc")
    if arm is None:
        pytest.skip("arm-none-eabi-gcc is not installed (make setup installs it)")
    subprocess.run([arm, *FLAGS, "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16",
                    "-mfloat-abi=hard", "-I", str(inc), "-c", str(src), "-o",
                    str(tmp_path / "m7.o")], check=True)


def test_kernels_are_clean_under_asan_and_ubsan(tmp_path):
    """The same comparisons in a child process whose C library is built with
    AddressSanitizer + UndefinedBehaviorSanitizer (any report aborts the child)."""
    lib = tmp_path / "libtt_kernels.so"
    subprocess.run(["gcc", *FLAGS, "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-fPIC",
                    "-shared", "-I", str(ROOT / "include"), str(ROOT / "src" / "tt_kernels.c"),
                    "-o", str(lib), "-lm"], check=True)
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    ubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"], capture_output=True,
                           text=True).stdout.strip()
    if not os.path.isabs(asan) or not os.path.exists(asan):
        pytest.skip("gcc's libasan is not available")
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from tflite_train.runtime import c_kernels\n"
        f"c_kernels.LIBRARY = __import__('pathlib').Path({str(lib)!r})\n"
        "c_kernels.library.cache_clear()\n"
        "import ctypes; c_kernels.library = lambda: ctypes.CDLL(str(c_kernels.LIBRARY))\n"
        "import test_micro_kernels as t\n"
        "t.test_every_c_kernel_matches_numpy_on_real_training_steps()\n"
        "t.test_pool_softmax_and_slice_kernels()\n"
        "print('sanitized run ok')\n")
    env = dict(os.environ, LD_PRELOAD=" ".join(p for p in (asan, ubsan) if os.path.exists(p)),
               ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="halt_on_error=1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=str(ROOT.parent), timeout=600)
    assert res.returncode == 0 and "sanitized run ok" in res.stdout, res.stderr[-3000:]


def test_zoo_training_with_c_kernels_is_identical(zoo):
    """Graphs with TRANSPOSE, MEAN, broadcast ADD, pools and explicit PADs on the path."""
    for name in ("branches", "depthwise", "mobile"):
        finals = []
        for engine in ("numpy", "c"):
            r = augment.augment(tflite_io.load(zoo[name]), "full", None,
                                Hyper(lr=0.05, rounding="stochastic", seed=3), fuse=False)
            g = r.graph
            ex = Executor(g, engine)
            rng = np.random.default_rng(0)
            shape = g.tensors[g.inputs[0]].shape
            classes = g.tensors[r.logits].size
            for i in range(5):
                x = rng.integers(-128, 128, shape).astype(np.int8)
                ex.invoke([x, np.array([i % classes], np.int32)])
            finals.append({g.tensors[k].name: v.copy() for k, v in ex.variables.items()})
        for n in finals[0]:
            assert np.array_equal(finals[0][n], finals[1][n]), (name, n)
