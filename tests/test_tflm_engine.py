"""--engine tflm: training models in the real TFLM interpreter (the pinned tflite-micro
wheel) with our kernels registered through the TFLM glue (micro_kernels/tflm/).

The claim is bit-identity with --engine c: both run the same C kernels for the TT_* ops, and
TFLM's forward kernels equal our numpy forward bit for bit (tests/test_forward_exact.py), so
every loss and every trained int8/int32 parameter must be identical, with no tolerance.

C against C cannot see a bug in the C kernels' arithmetic, so every case is also run on the
numpy engine, an independent implementation of the same ops: losses and every variable
(parameters and momentum buffers) identical to C's, bit for bit (conftest.numpy_equals_c).

The glue reaches into the wheel at a layout it cannot include headers for
(../shared/TFLM_ABI.md). The self-checks below read that layout out of the wheel's own
binary and run a training step in a child process, so that a different wheel fails with a
message naming the broken fact instead of crashing the test run.
"""
import ctypes
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import wheel_elf
from conftest import ROOT, numpy_equals_c, require_tool, shared_model
from fuzzing import sanitized_glue
from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.errors import TTError
from tflite_train.runtime import tflm_engine
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.runtime.tflm_engine import TFLMExecutor
from tflite_train.training_ops import encode_options, options_of


def run_both(graph, steps: int, seed: int = 0, labels=None):
    """The same samples through --engine c, --engine tflm and --engine numpy: for each, the
    losses and the final variables."""
    results = []
    for ex in (Executor(graph, "c"), TFLMExecutor(graph), Executor(graph, "numpy")):
        rng = np.random.default_rng(seed)
        shape = graph.tensors[graph.inputs[0]].shape
        classes = graph.tensors[graph.outputs[0]].size
        losses = []
        for i in range(steps):
            x = rng.integers(-128, 128, shape).astype(np.int8)
            label = labels[i] if labels is not None else i % classes
            out = ex.invoke([x, np.array([label], np.int32)])
            losses.append(np.asarray(out[graph.outputs[-1]]).copy())
        results.append((losses, {k: v.copy() for k, v in ex.variables.items()}))
    return results


def assert_identical(graph, results):
    """TFLM == C == numpy, bit for bit."""
    (loss_c, var_c), (loss_t, var_t), (loss_n, var_n) = results
    assert [l.tobytes() for l in loss_c] == [l.tobytes() for l in loss_t], (loss_c, loss_t)
    assert var_c.keys() == var_t.keys() == var_n.keys()
    for k in var_c:
        assert np.array_equal(var_c[k], var_t[k]), graph.tensors[k].name
    assert numpy_equals_c(np.concatenate(loss_n), np.concatenate(loss_c)), (loss_n, loss_c)
    for k in var_c:
        assert numpy_equals_c(var_n[k], var_c[k]), graph.tensors[k].name


def moved(graph, variables) -> dict[str, int]:
    """Trained tensor name -> elements that differ from the initial value TT_INIT copied."""
    init = next(op for op in graph.operators if op.kind == "TT_INIT")
    return {graph.tensors[var].name: int(np.count_nonzero(variables[var] !=
                                                          graph.tensors[const].data))
            for const, var in zip(init.inputs[0::2], init.inputs[1::2])}


# -- the wheel's layout -------------------------------------------------------------------

def test_the_wheel_is_the_build_the_glue_was_written_for():
    assert metadata.version("tflite-micro") == tflm_engine.PINNED_WHEEL
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"tflite-micro=={tflm_engine.PINNED_WHEEL}"' in pyproject


def test_the_wheels_layout_is_what_the_glue_assumes():
    """Each fact micro_kernels/tflm/tt_tflm_compat.h and tt_tflm_wheel.cc rely on, read
    from the wheel's binary."""
    wheel_elf.require_binutils()
    slots = wheel_elf.vtable_slots("tflite::micro::MicroInterpreterContext", 10)
    wanted = {2: "AllocatePersistentBuffer(", 3: "RequestScratchBufferInArena(",
              4: "GetScratchBuffer(", 5: "AllocateTempTfLiteTensor(",
              6: "DeallocateTempTfLiteTensor(", 9: "GetEvalTensor("}
    for slot, name in wanted.items():
        assert f"::{name}" in slots[slot], \
            f"MicroContext vtable slot {slot} is {slots[slot]!r}, the glue calls it as {name}"
    # the op resolver the registerer appends to: registrations_len_ at 0x2bc8, and FindOp
    # steps through 56-byte registrations
    body = wheel_elf.function_body(
        "tflite::micro::MicroMutableOpResolver<200u>::FindOp(char const*) const")
    assert "0x2bc8(" in body, \
        "MicroMutableOpResolver<200>::registrations_len_ is no longer at offset 0x2bc8"
    assert re.search(r"\$0x38,|0x38\(", body), "TFLMRegistration is no longer 56 bytes"


def test_the_registerer_refuses_a_resolver_of_another_layout(capfd):
    lib = tflm_engine.glue_library()
    fake = (ctypes.c_ubyte * 0x2bd0)()                # a "resolver" with 0 registrations
    assert not lib.TfliteTrainRegisterOps(ctypes.byref(fake))
    ctypes.c_uint.from_buffer(fake, 0x2bc8).value = 3    # 3 empty (invalid) registrations
    assert not lib.TfliteTrainRegisterOps(ctypes.byref(fake))
    err = capfd.readouterr().err
    assert err.count("does not look like the layout") == 2, err


def test_a_training_step_in_a_child_process():
    """The canary: if the wheel's layout were not the one declared, this is where it would
    crash; in a child process the crash becomes this test's message."""
    code = (
        "import numpy as np\n"
        "from tflite_train import augment, tflite_io\n"
        "from tflite_train.autodiff import Hyper\n"
        "from tflite_train.demo import EXAMPLE\n"
        "from tflite_train.runtime.tflm_engine import TFLMExecutor\n"
        "g = augment.augment(tflite_io.load(EXAMPLE), 'full', 4, Hyper(momentum=0.5)).graph\n"
        "ex = TFLMExecutor(g)\n"
        "x = np.zeros((1, 32, 32, 1), np.int8)\n"
        "loss = ex.invoke([x, np.array([1], np.int32)])[g.outputs[-1]][0]\n"
        "assert np.isfinite(loss) and loss > 0, loss\n"
        "print('step ok', loss)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=300)
    assert res.returncode == 0 and "step ok" in res.stdout, (
        f"a TFLM training step in the pinned wheel failed (exit {res.returncode}): the "
        f"wheel's layout may differ from micro_kernels/tflm/tt_tflm_compat.h\n"
        f"{res.stderr[-2000:]}")


SANITIZED_RUN = r"""
import contextlib, ctypes, sys
import numpy as np
from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import tflm, tflm_engine

@contextlib.contextmanager
def uncaptured():                      # let a sanitizer's report reach stderr
    yield {"text": ""}

tflm.captured_c_output = uncaptured
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
tflm_engine.glue_library = lambda: lib
from tflite_train.runtime.numpy_exec import Executor
models = [(EXAMPLE, 4, s, f, 1) for s, f in (("full", True), ("full", False), ("last:2", True))]
models += [(path, None, "full", True, 1) for path in sys.argv[2:]]
# batch 3 (review24): every update op's BatchStep, the plain gradients into the op's scratch,
# an update at the third Invoke and one Invoke into the next batch, bits == engine c's
models += [(EXAMPLE, 4, "full", f, 3) for f in (True, False)]
models = [(*m, grad) for m in models for grad in ("float32", "int8")]
for path, classes, scheme, fuse, batch, grad in models:
    g = augment.augment(tflite_io.load(path), scheme, classes,
                        Hyper(momentum=0.5, decay_steps=3, seed=1, grad=grad,
                              grad_rounding="stochastic", batch=batch),
                        fuse=fuse).graph
    ex = tflm_engine.TFLMExecutor(g)
    ref = Executor(g, "c") if batch > 1 else None
    rng = np.random.default_rng(0)
    shape = g.tensors[g.inputs[0]].shape
    for i in range(3 if batch == 1 else 4):
        x = rng.integers(-128, 128, shape).astype(np.int8)
        ex.invoke([x, np.array([i % 2], np.int32)])
        if ref is not None:
            ref.invoke([x, np.array([i % 2], np.int32)])
            for k, v in ref.variables.items():
                assert ex.variables[k].tobytes() == v.tobytes(), (batch, i, g.tensors[k].name)
    ex.invoke([rng.integers(-128, 128, shape).astype(np.int8), np.array([-1], np.int32)])
    ex.reset()
print("sanitized run ok")
"""


def test_the_glue_is_clean_under_asan_and_ubsan(tmp_path, zoo):
    """The glue and kernels built with AddressSanitizer + UBSan, training in the wheel's
    TFLM (every TT_* op: the example's graphs and three zoo models, with float32 and with
    int8 gradients; the example's at batch 3 too, compared with engine c). UBSan's vptr check is
    off: the glue calls the wheel's MicroContext through tt_tflm_compat.h's declaration of
    it, a type UBSan cannot know is the same one."""
    built = sanitized_glue(tmp_path)
    require_tool(built is not None, "gcc's sanitizer runtimes (libasan, libubsan)")
    lib, sanitizers = built
    env = dict(__import__("os").environ, **sanitizers)
    zoo_models = [str(zoo[n]) for n in ("branches", "mobile", "softmax_mid")]
    res = subprocess.run([sys.executable, "-c", SANITIZED_RUN, str(lib), *zoo_models],
                         capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
    assert res.returncode == 0 and "sanitized run ok" in res.stdout, res.stderr[-3000:]


def test_a_different_wheel_version_is_refused(monkeypatch):
    monkeypatch.setattr(tflm_engine.metadata, "version", lambda name: "0.dev1")
    with pytest.raises(TTError, match="written for tflite-micro=="):
        tflm_engine.check_wheel()


# -- training in TFLM = training with the C kernels, bit for bit --------------------------

@pytest.mark.parametrize("scheme, fuse, hyper", [
    ("full", True, Hyper(lr=0.05, momentum=0.5, rounding="stochastic",
                         grad_rounding="stochastic", seed=3)),
    ("full", False, Hyper(lr=0.05, momentum=0.9, rounding="nearest", seed=1)),
    ("last:2", True, Hyper(lr=0.1, decay_steps=6, seed=2)),
    ("bias-only", True, Hyper(lr=0.05, seed=4, half_life=2)),
    ("last:2", False, Hyper(lr=0.05, seed=5, half_life=0)),
])
def test_tflm_trains_bit_identically_to_the_c_engine(scheme, fuse, hyper):
    graph = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, hyper, fuse=fuse).graph
    results = run_both(graph, 10)
    assert_identical(graph, results)
    # and the parameters did move: every trained tensor left its initial value
    still = [name for name, n in moved(graph, results[1][1]).items() if n == 0]
    assert not still, still


def test_zoo_graphs_train_bit_identically_in_tflm(zoo, tmp_path):
    """TRANSPOSE, MEAN, broadcast ADD, max and average pools, explicit PADs, a softmax,
    masks of every fused clamp inside the int8 range ("clamps") and a channel slice on the
    backward path: with the example's graphs, every TT_* op."""
    seen = set()
    for name in ("branches", "depthwise", "mobile", "softmax_mid", "clamps"):
        for fuse in (False, True):
            graph = augment.augment(tflite_io.load(zoo[name]), "full", None,
                                    Hyper(lr=0.05, seed=3, grad_rounding="stochastic"),
                                    fuse=fuse).graph
            seen |= {op.kind for op in graph.operators if op.kind.startswith("TT_")}
            results = run_both(graph, 4)
            assert_identical(graph, results)
            assert sum(moved(graph, results[1][1]).values()) > 0, name
    # a channel ratio: the saved input is a slice (TT_SAVE_SLICE)
    scheme = tmp_path / "half.json"
    scheme.write_text('{"n_bias_update": 1, "weight_update": [{"layer": -1, "ratio": 0.5}]}')
    graph = augment.augment(tflite_io.load(EXAMPLE), str(scheme), 4, Hyper(seed=2)).graph
    seen |= {op.kind for op in graph.operators if op.kind.startswith("TT_")}
    results = run_both(graph, 6)
    assert_identical(graph, results)
    assert sum(moved(graph, results[1][1]).values()) > 0
    from tflite_train import training_ops
    # the forward ops and split-filter gradients of augment's memory passes train in TFLM
    # in tests/test_tflm_memory.py
    seen |= {"TT_POINTWISE_DEPTHWISE", "TT_CONV2D_SPLIT_INPUT_GRAD",
             "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD"}
    assert seen == set(training_ops.schema()["ops"]), \
        set(training_ops.schema()["ops"]) - seen


def test_person_detector_200_steps_cli_identical_weights(tmp_path, capsys):
    """The issue's command: 200 steps on Fashion-MNIST, --engine tflm and --engine c end
    with identical trained weights, and --engine numpy with the same ones too (measured: 0
    of 5,306 differ); validation cut to 50 samples to save time."""
    from tflite_train import data
    from tflite_train.cli import main
    pd = shared_model("person_detect")
    require_tool(data.FASHION_MNIST_DIR.exists(), "Debian's dataset-fashion-mnist")
    model = tmp_path / "pd.train.tflite"
    assert main(["augment", str(pd), "-o", str(model), "--num-classes", "10",
                 "--scheme", "bias-only", "--batch", "1"]) == 0
    states = {}
    for engine in ("tflm", "c", "numpy"):
        out = tmp_path / f"{engine}.npz"
        assert main(["train", str(model), "--data", "fashion-mnist", "--steps", "200",
                     "--val-samples", "50", "--engine", engine, "-o", str(out)]) == 0
        states[engine] = np.load(out)
    text = capsys.readouterr().out
    assert text.count("engine tflm") == 1 and text.count("engine c") == 1
    names = [n for n in states["c"].files if not n.startswith("__")]    # not the records
    # every bias + the new head, and the head's rounding residual (10 x 256)
    assert sum(states["c"][n].size for n in names) == 5306 + 2560
    for n in names:
        assert np.array_equal(states["c"][n], states["tflm"][n]), n
        assert np.array_equal(states["c"][n], states["numpy"][n]), n
    graph = tflite_io.load(model)
    assert sum(moved(graph, {i: states["c"][t.name] for i, t in enumerate(graph.tensors)
                             if t.name in names}).values()) > 5306 // 10


# -- the device's behaviour: label gating, errors, reset ----------------------------------

def test_negative_label_runs_the_forward_only():
    graph = augment.augment(tflite_io.load(EXAMPLE), "full", 4, Hyper(seed=1)).graph
    tflm, ref = TFLMExecutor(graph), Executor(graph, "numpy")
    x = np.random.default_rng(5).integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
    out_t = tflm.invoke([x, np.array([-1], np.int32)])
    out_r = ref.invoke([x, np.array([-1], np.int32)])
    assert out_t[graph.outputs[-1]][0] == 0.0
    assert np.array_equal(out_t[graph.outputs[0]], out_r[graph.outputs[0]])
    before = {k: v.copy() for k, v in tflm.variables.items()}
    for k, v in before.items():        # TT_INIT ran: the variables hold the initial values
        init = ref.variables[k]
        assert np.array_equal(v, init), graph.tensors[k].name
    tflm.invoke([x, np.array([-1], np.int32)])
    after = tflm.variables
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_label_out_of_range_is_a_one_line_error():
    graph = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper()).graph
    ex = TFLMExecutor(graph)
    with pytest.raises(TTError, match=r"TT_LOSS_SOFTMAX_CE: label 4 out of range for 4 classes"):
        ex.invoke([np.zeros((1, 32, 32, 1), np.int8), np.array([4], np.int32)])


def test_reset_starts_training_over():
    graph = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4,
                            Hyper(momentum=0.5, seed=9)).graph
    ex = TFLMExecutor(graph)
    xs = np.random.default_rng(1).integers(-128, 128, (3, 1, 32, 32, 1)).astype(np.int8)
    runs = []
    for _ in range(2):
        for i, x in enumerate(xs):
            ex.invoke([x, np.array([i], np.int32)])
        runs.append({k: v.copy() for k, v in ex.variables.items()})
        ex.reset()
    for k in runs[0]:
        assert np.array_equal(runs[0][k], runs[1][k]), graph.tensors[k].name


def _model_with(graph, edit) -> object:
    """A copy of a training graph with one TT op's options edited."""
    g = tflite_io.parse(tflite_io.serialize(graph))
    edit(g)
    return g


def test_a_missing_option_is_reported_by_prepare():
    graph = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper()).graph

    def drop_lr(g):
        op = next(o for o in g.operators if o.kind == "TT_BIAS_UPDATE")
        opts = dict(options_of(op))
        del opts["lr"]
        op.custom_options = encode_options(opts)
        op.options.pop("_tt", None)

    with pytest.raises(TTError, match=r"TT_BIAS_UPDATE: option 'lr' is missing"):
        TFLMExecutor(_model_with(graph, drop_lr))


def test_a_constant_parameter_is_never_written():
    """An update op whose parameter is not a variable would write into flash on a device."""
    graph = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4, Hyper()).graph

    def constant_bias(g):
        op = next(o for o in g.operators if o.kind == "TT_BIAS_UPDATE")
        t = g.tensors[op.inputs[2]]
        t.is_variable = False
        t.data = np.zeros(t.shape, np.int32)
        init = next(o for o in g.operators if o.kind == "TT_INIT")
        at = init.inputs.index(op.inputs[2])            # drop its (initial, variable) pair
        del init.inputs[at - 1:at + 1]

    with pytest.raises(TTError, match=r"TT_BIAS_UPDATE: bias is not a variable tensor"):
        TFLMExecutor(_model_with(graph, constant_bias))
