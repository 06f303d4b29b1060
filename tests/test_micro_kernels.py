"""The C kernels (micro_kernels/) against the numpy reference: every op on random inputs,
whole training runs, fused == separate updates, the libm-free math, a warning-free and
libm-free build for x86 and Cortex-M7, no double arithmetic in the kernels on the board's
single-precision FPU, and the sanitizers.

No tolerance anywhere: numpy and C agree bit for bit, floats included. The C kernels sum in
float32 in the orders include/tt_kernels.h documents, and the numpy kernels add the same
float32 terms in the same orders (tflite_train/ops/accumulate.py); the loss's exp and log
are the same double operations on both sides (tt_math.c, training_ops.exp / log).
"""
import ctypes as C
import json
import math
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal, localcontext

import numpy as np
import pytest

from conftest import require_tool, shared_model
from tflite_train import augment, ops, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_kernels
from tflite_train.runtime.numpy_exec import Executor
from tflite_train import training_ops
from tflite_train.training_ops import cos_pi_ratio

ROOT = c_kernels.ROOT
SOURCES = sorted((ROOT / "src").glob("*.c"))
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
M7 = c_kernels.cortex_m7_flags()


def same_bits(a, b) -> bool:
    """Float32 arrays identical bit for bit (the sign of zero and NaN payloads included)."""
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def training_graphs():
    """Training models whose TT ops cover every C kernel: both update forms, masks, pools,
    int8 gradients rounded stochastically (augment's default, nearest, draws nothing)."""
    out = []
    for scheme, fuse in (("full", False), ("full", True), ("last:2", True)):
        r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4,
                            Hyper(lr=0.05, momentum=0.5, rounding="stochastic", seed=7,
                                  grad_rounding="stochastic"),
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
                        assert same_bits(ours, theirs), op.kind
                if stateful:                     # in-place: compare the written tensors
                    for a, b in zip(c_args, args):
                        if isinstance(a, np.ndarray):
                            assert a.tobytes() == b.tobytes(), op.kind
            for index, y in zip(op.outputs, outs):
                values[index] = np.asarray(y).reshape(g.tensors[index].shape)
    # the rest are reached by test_pool_softmax_and_slice_kernels
    direct = {"TT_MAX_POOL_GRAD", "TT_AVERAGE_POOL_GRAD", "TT_SOFTMAX_GRAD", "TT_SAVE_SLICE",
              "TT_MASK_GRAD", "TT_PAD_GRAD", "TT_TRANSPOSE_GRAD", "TT_RESHAPE_GRAD"}
    # the forward ops and split-filter gradients: tests/test_tflm_memory.py
    direct |= {"TT_CONV2D", "TT_DEPTHWISE_CONV2D", "TT_FULLY_CONNECTED", "TT_POINTWISE_DEPTHWISE",
               "TT_CONV2D_SPLIT_INPUT_GRAD", "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD"}
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
            assert same_bits(got, want), (kind, stride)
    g = Graph([Tensor("dy", (2, 5), "float32"),
               Tensor("p", (2, 5), "int8", Quantization(np.array([1 / 256], np.float32),
                                                        np.array([-128]))),
               Tensor("label", (1,), "int32"), Tensor("dx", (2, 5), "float32")], [], [], [])
    op = make_op("TT_SOFTMAX_GRAD", [0, 1, 2], [3])
    args = [rng.normal(size=(2, 5)).astype(np.float32),
            rng.integers(-128, 127, (2, 5)).astype(np.int8), np.array([0])]
    assert same_bits(c_kernels.softmax_grad(g, op, args)[0],
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


def test_layer_gradient_kernels_on_every_code_path():
    """The layer gradients, numpy vs C bit for bit, on geometries the models do not all
    reach: two images, strides, dilations, leading pads, depth multipliers 1 and 2, channel
    counts that leave a remainder after the kernels' blocks of eight, masks, per-channel and
    per-tensor scales, more positions than a bias-gradient block."""
    from tflite_train.ir import Graph, Quantization, Tensor
    from tflite_train.training_ops import make_op
    rng = np.random.default_rng(4)

    def quant(n):
        return Quantization(rng.uniform(0.002, 0.02, n).astype(np.float32), np.zeros(n, int))

    def check(kind, tensors, values, opts):
        label = len(tensors)
        g = Graph(tensors + [Tensor("label", (1,), "int32")], [], [], [])
        ins = [0, 1 if values[1] is not None else -1, 2, label]
        op = make_op(kind, ins, [3], **opts)
        args = [values[0], values[1], values[2], np.array([0], np.int32)]
        want = ops.REGISTRY[kind].forward(g, op, args)[0]
        got = c_kernels.C_KERNELS[kind][0](g, op, args)[0]
        assert same_bits(got, want), (kind, opts)

    def mask_of(size):
        return rng.integers(0, 256, (size + 7) // 8).astype(np.uint8)

    xq = Quantization(np.array([0.03], np.float32), np.array([-7]))
    n, h, wd, oh, ow = 2, 7, 6, 4, 5
    geo = dict(stride_h=2, stride_w=1, dilation_h=1, dilation_w=2, pad_top=1, pad_left=2)
    for ci, co, per_channel in ((11, 5, True), (16, 9, False)):
        dy = rng.normal(size=(n, oh, ow, co)).astype(np.float32)
        for mask in (None, mask_of(dy.size)):
            w = rng.integers(-127, 128, (co, 3, 3, ci)).astype(np.int8)
            x = rng.integers(-128, 128, (n, h, wd, ci)).astype(np.int8)
            t = [Tensor("dy", dy.shape, "float32"), Tensor("m", (0,), "uint8"),
                 Tensor("w", w.shape, "int8", quant(co if per_channel else 1))]
            check("TT_CONV2D_INPUT_GRAD", t + [Tensor("dx", x.shape, "float32")],
                  [dy, mask, w], geo)
            t[2] = Tensor("x", x.shape, "int8", xq)
            check("TT_CONV2D_WEIGHT_GRAD", t + [Tensor("dw", w.shape, "float32")],
                  [dy, mask, x], geo)
    for c, m in ((11, 1), (5, 2), (16, 1)):
        dgeo = dict(depth_multiplier=m, stride_h=2, stride_w=2, dilation_h=2, dilation_w=1,
                    pad_top=2, pad_left=1)
        dy = rng.normal(size=(n, 3, 3, c * m)).astype(np.float32)
        for mask in (None, mask_of(dy.size)):
            w = rng.integers(-127, 128, (1, 3, 3, c * m)).astype(np.int8)
            x = rng.integers(-128, 128, (n, h, wd, c)).astype(np.int8)
            t = [Tensor("dy", dy.shape, "float32"), Tensor("m", (0,), "uint8"),
                 Tensor("w", w.shape, "int8", quant(c * m))]
            check("TT_DEPTHWISE_CONV2D_INPUT_GRAD", t + [Tensor("dx", x.shape, "float32")],
                  [dy, mask, w], dgeo)
            t[2] = Tensor("x", x.shape, "int8", xq)
            check("TT_DEPTHWISE_CONV2D_WEIGHT_GRAD", t + [Tensor("dw", w.shape, "float32")],
                  [dy, mask, x], dgeo)
    dy = rng.normal(size=(3, 5)).astype(np.float32)
    for mask in (None, mask_of(dy.size)):
        w = rng.integers(-127, 128, (5, 13)).astype(np.int8)
        x = rng.integers(-128, 128, (3, 9)).astype(np.int8)
        t = [Tensor("dy", dy.shape, "float32"), Tensor("m", (0,), "uint8"),
             Tensor("w", w.shape, "int8", quant(5))]
        check("TT_FULLY_CONNECTED_INPUT_GRAD", t + [Tensor("dx", (3, 13), "float32")],
              [dy, mask, w], {})
        t[2] = Tensor("x", x.shape, "int8", xq)
        check("TT_FULLY_CONNECTED_WEIGHT_GRAD", t + [Tensor("dw", (5, 9), "float32")],
              [dy, mask, x], {})
    for outer, channels in ((37, 11), (9, 16), (16, 3)):
        dy = rng.normal(size=(outer, channels)).astype(np.float32)
        for mask in (None, mask_of(dy.size)):
            g = Graph([Tensor("dy", dy.shape, "float32"), Tensor("m", (0,), "uint8"),
                       Tensor("label", (1,), "int32"), Tensor("db", (channels,), "float32")],
                      [], [], [])
            op = make_op("TT_BIAS_GRAD", [0, 1 if mask is not None else -1, 2], [3])
            args = [dy, mask, np.array([0], np.int32)]
            assert same_bits(c_kernels.bias_grad(g, op, args)[0],
                             ops.REGISTRY["TT_BIAS_GRAD"].forward(g, op, args)[0]), outer


@pytest.mark.parametrize("scheme, hyper", [
    ("full", Hyper(lr=0.05, rounding="stochastic", grad_rounding="stochastic", seed=1,
                   half_life=3)),
    ("last:2", Hyper(lr=0.05, momentum=0.9, rounding="nearest", half_life=0)),
    ("bias-only", Hyper(lr=0.05, decay_steps=10)),
])
def test_training_with_c_kernels_gives_identical_parameters(scheme, hyper):
    """20 training steps, numpy vs C: every variable (int8 weights, int32 biases, float32
    momentum buffers) identical bit for bit; the three schedules (inverse time, constant,
    cosine), whose rate the C engine computes from the step count it keeps in the update
    state (the tt_sgd struct holds the schedule, not the current rate)."""
    finals = {}
    for engine in ("numpy", "c"):
        r = augment.augment(tflite_io.load(EXAMPLE), scheme, 4, hyper)
        ex = Executor(r.graph, engine)
        rng = np.random.default_rng(0)
        for i in range(20):
            x = rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
            ex.invoke([x, np.array([i % 4], np.int32)])
        finals[engine] = {r.graph.tensors[k].name: v.copy() for k, v in ex.variables.items()}
    differing = [n for n in finals["numpy"]
                 if finals["numpy"][n].tobytes() != finals["c"][n].tobytes()]
    assert not differing, f"{scheme}: {differing} differ"


def test_the_c_engines_rate_follows_the_step():
    """The schedule changes what the C engine trains: the same steps with the inverse-time
    decay (half life 2) and with a constant rate: the decayed run's rates sum to 0.26 of
    the constant run's over these 20 steps, and its parameters move much less (measured:
    492 vs 3848 integer steps in all)."""
    moved = {}
    for half_life in (0, 2):
        # nearest rounding without the head's residual (which would keep the sub-LSB steps
        # the decayed rates make, and that nearest rounding drops): the measurement above
        r = augment.augment(tflite_io.load(EXAMPLE), "bias-only", 4,
                            Hyper(lr=0.05, rounding="nearest", half_life=half_life,
                                  head_residual=False))
        ex = Executor(r.graph, "c")
        rng = np.random.default_rng(0)
        # an inference Invoke first: TT_INIT fills the variables, and nothing trains
        ex.invoke([np.zeros((1, 32, 32, 1), np.int8), np.array([-1], np.int32)])
        initial = {k: v.astype(np.int64) for k, v in ex.variables.items()}
        for i in range(20):
            ex.invoke([rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8),
                       np.array([i % 4], np.int32)])
        moved[half_life] = sum(int(np.abs(v.astype(np.int64) - initial[k]).sum())
                               for k, v in ex.variables.items())
    assert 0 < moved[2] < moved[0] / 2, moved


def undefined_symbols(nm: str, objects: list) -> set[str]:
    out = subprocess.run([nm, "-u", *map(str, objects)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip().startswith("U ")}


def test_builds_warning_free_and_without_libm_for_x86_and_cortex_m7(tmp_path):
    """Every source compiles with -Werror for both targets, and the objects need nothing but
    memcpy/memset, each other and (on the M7) libgcc's __aeabi_ helpers: no libm, whose last
    bits differ between glibc and newlib."""
    inc = ROOT / "include"
    targets = [("x86", "gcc", [], "nm")]
    arm = shutil.which("arm-none-eabi-gcc")
    if arm is not None:
        targets.append(("m7", arm, M7, "arm-none-eabi-nm"))
    for name, cc, cpu, nm in targets:
        objects = []
        for src in SOURCES:
            obj = tmp_path / f"{name}-{src.stem}.o"
            subprocess.run([cc, *FLAGS, *cpu, "-I", str(inc), "-c", str(src), "-o", str(obj)],
                           check=True)
            objects.append(obj)
        outside = {s for s in undefined_symbols(nm, objects)
                   if not s.startswith(("tt_", "__aeabi_")) and s not in ("memcpy", "memset")}
        assert not outside, (name, outside)
    require_tool(arm is not None, "arm-none-eabi-gcc (the Cortex-M7 half of this test)")


# --- no double arithmetic on the board's single-precision FPU ---------------------------------

# libgcc's double-precision routines: ARM EABI names (__aeabi_dadd, __aeabi_f2d, __aeabi_d2f,
# __aeabi_i2d, __aeabi_dcmplt, ...) and the generic ones (__adddf3, __extendsfdf2, ...).
DOUBLE_HELPER = re.compile(r"^__aeabi_(d[a-z0-9]+|[a-z0-9]+2d)$|^__[a-z]*df[a-z0-9]*$")

# The only kernel functions that may use them: once-per-step scalar math, a handful of calls
# per training step, never per element. Everything else computes in float32.
ONCE_PER_STEP = {
    "tt_exp": "the loss's exp, once per class per step",
    "tt_log": "the loss's log, once per step",
    "tt_cos_pi_ratio": "the learning-rate decay's cosine, once per update op per step",
    "tt_learning_rate": "the learning-rate decay, once per update op per step",
    "tt_loss_softmax_ce_s8": "widens each class's float32 for tt_exp and the total for tt_log",
    "tt_loss_softmax_ce_s8_s8": "the int8-gradient loss: tt_loss_softmax_ce_s8 (may be inlined)",
}


def double_users(obj) -> dict[str, set[str]]:
    """function -> the double-precision helpers it calls, from the relocations of an object
    built with -ffunction-sections (one .text.<function> section per function)."""
    out = subprocess.run(["arm-none-eabi-objdump", "-r", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    users: dict[str, set[str]] = {}
    section = None
    for line in out.splitlines():
        header = re.match(r"RELOCATION RECORDS FOR \[(\S+)\]:", line)
        if header:
            section = header.group(1)
            continue
        fields = line.split()
        if section and section.startswith(".text") and len(fields) == 3 and \
                DOUBLE_HELPER.match(fields[2]):
            users.setdefault(section.split(".text.", 1)[-1], set()).add(fields[2])
    return users


def test_no_kernel_does_double_arithmetic_on_the_boards_fpu(tmp_path):
    """Every kernel source compiled for the STM32F746 (-mfpu=fpv5-sp-d16, where a double is
    a software call): no function outside ONCE_PER_STEP calls a double-precision helper.
    At -O2 (our builds) and -Os (an app's size build: less inlining)."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None and
                 shutil.which("arm-none-eabi-objdump") is not None, "gcc-arm-none-eabi")
    source_text = "\n".join(src.read_text() for src in SOURCES)
    stale = [f for f in ONCE_PER_STEP if not re.search(rf"\b{f}\(", source_text)]
    assert not stale, f"ONCE_PER_STEP names functions the sources do not have: {stale}"
    # the check itself: a float function that slips into double is caught, by name
    probe = tmp_path / "probe.c"
    probe.write_text("float tt_probe(const float *x, int n) {\n"
                     "  double acc = 0.0;\n"
                     "  for (int i = 0; i < n; ++i) acc += x[i];\n"
                     "  return (float)acc;\n}\n")
    cc = ["arm-none-eabi-gcc", *FLAGS, *M7, "-ffunction-sections", "-I", str(ROOT / "include")]
    subprocess.run([*cc, "-c", str(probe), "-o", str(tmp_path / "probe.o")], check=True)
    assert double_users(tmp_path / "probe.o") == {
        "tt_probe": {"__aeabi_f2d", "__aeabi_dadd", "__aeabi_d2f"}}
    offenders, allowed = [], set()
    for opt in ("-O2", "-Os"):
        for src in SOURCES:
            obj = tmp_path / f"{src.stem}{opt}.o"
            subprocess.run([*cc, opt, "-c", str(src), "-o", str(obj)], check=True)
            for fn, helpers in sorted(double_users(obj).items()):
                # gcc's clones of a function (f.part.0, f.isra.0, f.constprop.0) are f
                if fn.split(".")[0] in ONCE_PER_STEP:
                    allowed.add(fn)
                else:
                    offenders.append(f"{fn} ({src.name}, {opt}) calls {', '.join(sorted(helpers))}")
    assert not offenders, "double arithmetic in kernels: " + "; ".join(offenders)
    assert {"tt_exp", "tt_log", "tt_learning_rate"} <= allowed     # the check saw them


def test_kernels_compile_in_a_debug_build(tmp_path):
    """Every kernel source for the board at -Og (PlatformIO's and Zephyr's debug builds),
    which no macro tells from -O2 and which keeps a register for the frame: the
    inline-assembly loops that take fourteen registers must still get them ("impossible
    constraints" otherwise; tt_dsp_common.h's TT_DSP_ASM_FN). -O2 and -Os are the no-double
    check's builds, -O0 with PIC the CMake build's."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None, "gcc-arm-none-eabi")
    cc = ["arm-none-eabi-gcc", *FLAGS, *M7, "-I", str(ROOT / "include")]
    failed = []
    # and with a frame pointer, which no macro reveals: the sources with such loops built as
    # the header says (-DTT_DSP_ASM_ALL_REGS=0, their C twins)
    framed = [s for s in SOURCES if "TT_DSP_ASM_ALL_REGS" in s.read_text()]
    assert framed
    builds = [(src, ["-Og"]) for src in SOURCES] + [
        (src, ["-O2", "-fno-omit-frame-pointer", "-DTT_DSP_ASM_ALL_REGS=0"]) for src in framed]
    for src, opts in builds:
        r = subprocess.run([*cc, *opts, "-c", str(src), "-o", str(tmp_path / "k.o")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            first = next((line for line in r.stderr.splitlines() if "error" in line), "")
            failed.append(f"{src.name} {' '.join(opts)}: {first}")
    assert not failed, "; ".join(failed)


# The other cores with the DSP extension (README: Cortex-M4/M7/M33) and the Cortex-M55, whose
# low-overhead loops (Armv8.1-M's LE) take lr from the fourteen registers unless the
# functions holding those loops say otherwise (TT_DSP_ASM_FN); the M4 has no FPv5.
OTHER_DSP_CORES = [["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-DTT_NO_FPV5"],
                   ["-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16"],
                   ["-mcpu=cortex-m55", "-mfpu=auto"]]


def test_kernels_compile_for_the_other_dsp_cores(tmp_path):
    """The sources with fourteen-register assembly at -O2 for the Cortex-M4, M33 and M55:
    the rule's portable float forms (no FPv5) and the M55's loops leave the assembly fewer
    registers than on the M7 ("impossible constraints" otherwise)."""
    require_tool(shutil.which("arm-none-eabi-gcc") is not None, "gcc-arm-none-eabi")
    framed = [s for s in SOURCES if "TT_DSP_ASM_ALL_REGS" in s.read_text()]
    assert framed
    failed = []
    for core in OTHER_DSP_CORES:
        for src in framed:
            r = subprocess.run(["arm-none-eabi-gcc", *FLAGS, "-mthumb", "-mfloat-abi=hard", *core,
                                "-I", str(ROOT / "include"), "-c", str(src),
                                "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
            if r.returncode != 0:
                first = next((line for line in r.stderr.splitlines() if "error" in line), "")
                failed.append(f"{src.name} {core[0]}: {first}")
    assert not failed, "; ".join(failed)


def test_kernels_are_clean_under_asan_and_ubsan(tmp_path):
    """The same comparisons in a child process whose C library is built with
    AddressSanitizer + UndefinedBehaviorSanitizer (any report aborts the child), the int8
    gradients' included."""
    lib = tmp_path / "libtt_kernels.so"
    subprocess.run(["gcc", *FLAGS, "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-fPIC",
                    "-shared", "-I", str(ROOT / "include"), *map(str, SOURCES),
                    "-o", str(lib)], check=True)
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    ubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"], capture_output=True,
                           text=True).stdout.strip()
    require_tool(os.path.isabs(asan) and os.path.exists(asan), "gcc's libasan")
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from tflite_train.runtime import c_kernels\n"
        f"c_kernels.LIBRARY = __import__('pathlib').Path({str(lib)!r})\n"
        "c_kernels.library.cache_clear()\n"
        "import ctypes\n"
        "lib = c_kernels.declare_return_types(ctypes.CDLL(str(c_kernels.LIBRARY)))\n"
        "c_kernels.library = lambda: lib\n"
        "import test_micro_kernels as t\n"
        "t.test_every_c_kernel_matches_numpy_on_real_training_steps()\n"
        "t.test_pool_softmax_and_slice_kernels()\n"
        "t.test_layer_gradient_kernels_on_every_code_path()\n"
        "t.test_broadcast_sum_kernel()\n"
        "for kind in t.FUSED_CASES:\n"
        "    for per_channel in (True, False):\n"
        "        t.test_fused_update_equals_gradient_then_update(kind, per_channel)\n"
        "t.test_python_cos_pi_ratio_is_the_c_one_bit_for_bit()\n"
        "import test_int8_grads as i8\n"
        "i8.test_examples_int8_kernels_match_numpy()\n"
        "for name in i8.LAYER_GEOMETRIES:\n"
        "    i8.test_layer_input_gradients_on_every_code_path(name)\n"
        "for kind in ('TT_AVERAGE_POOL_GRAD', 'TT_MAX_POOL_GRAD'):\n"
        "    i8.test_pool_gradients_on_every_code_path(kind)\n"
        "i8.test_softmax_gradient_beyond_257_classes_shifts()\n"
        "i8.test_data_movement_mask_and_broadcast_sum_in_int8()\n"
        "i8.test_the_rule_in_c_and_python()\n"
        "i8.test_one_pass_and_two_passes_give_the_same_bits()\n"
        "i8.test_optimistic_pass_past_a_small_guess()\n"
        "import test_cortex_m7_grad_dsp as gd\n"
        "gd.test_optimistic_pass_equals_numpy()\n"
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
                                Hyper(lr=0.05, rounding="stochastic", grad_rounding="stochastic",
                                      seed=3), fuse=False)
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
            assert finals[0][n].tobytes() == finals[1][n].tobytes(), (name, n)


# --- TT_SUM_GRAD with one input ---------------------------------------------------------------

def test_broadcast_sum_kernel():
    """tt_sum_broadcast_grad_f32 against ops/training.py sum_grad (b None): the gradient of a
    broadcast ADD input, to a same-rank or lower-rank shape, bit for bit."""
    from tflite_train.ir import Graph, Tensor
    from tflite_train.training_ops import make_op
    rng = np.random.default_rng(3)
    dy = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    for shape in ((1, 3, 1, 5), (2, 1, 4, 1), (4, 1), (5,), (1,), (2, 3, 4, 5), (1, 1, 1, 1)):
        g = Graph([Tensor("dy", dy.shape, "float32"), Tensor("label", (1,), "int32"),
                   Tensor("dx", shape, "float32")], [], [], [])
        op = make_op("TT_SUM_GRAD", [0, -1, 1], [2])
        args = [dy, None, np.array([0])]
        want = ops.REGISTRY["TT_SUM_GRAD"].forward(g, op, args)[0]
        got = c_kernels.sum_grad(g, op, args)[0]
        assert got.shape == tuple(shape) and same_bits(got, want), shape


# --- fused gradient + update == the gradient kernel, then the update kernel -------------------

def ptr(a, ctype):
    return c_kernels._p(a, ctype)     # (looked up per call: the Cortex-M7 test records it)


F32, I8, U8, I32 = C.c_float, C.c_int8, C.c_uint8, C.c_int32
# momentum, stochastic rounding, per-channel QAS and a cosine decay the calls are in the middle of
SGD = c_kernels.Sgd(2e-4, 0.9, 1, 1, 10)


def conv_case(rng, per_channel):
    """CONV_2D 3x3, stride (2, 1), dilation (1, 2), trained on 3 of its 5 input channels."""
    n, h, wd, ci, k, co, kh, kw, oh, ow = 1, 7, 6, 5, 3, 4, 3, 3, 4, 5
    win = c_kernels.Window(2, 1, 1, 2, 1, 2)
    dy = rng.normal(size=(n, oh, ow, co)).astype(np.float32)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    saved = rng.integers(-128, 128, (n, h, wd, k)).astype(np.int8)
    scales = rng.uniform(0.002, 0.02, co if per_channel else 1).astype(np.float32)
    w = rng.integers(-127, 128, (co, kh, kw, ci)).astype(np.int8)
    mom = rng.normal(size=(co, kh, kw, k)).astype(np.float32)
    lib, xs = c_kernels.library(), F32(0.03)

    def separate(w, m, st):
        dw = np.empty((co, kh, kw, k), np.float32)
        lib.tt_conv2d_weight_grad_f32(ptr(dy, F32), ptr(mask, U8), n, oh, ow, co,
                                      ptr(saved, I8), xs, 5, h, wd, k, kh, kw, C.byref(win),
                                      ptr(dw, F32))
        lib.tt_update_weight_s8(ptr(w, I8), ptr(np.array(w.shape, np.int32), I32), 4, 0,
                                ptr(scales, F32), scales.size, ptr(dw, F32), k, ptr(m, F32),
                                C.byref(SGD), C.byref(st))

    def fused(w, m, st):
        scratch = np.empty(kh * kw * k, np.float32)
        lib.tt_conv2d_weight_update_s8(ptr(dy, F32), ptr(mask, U8), n, oh, ow, co,
                                       ptr(saved, I8), xs, 5, h, wd, k, ptr(w, I8), kh, kw, ci,
                                       ptr(scales, F32), scales.size, C.byref(win),
                                       ptr(m, F32), C.byref(SGD), C.byref(st),
                                       ptr(scratch, F32))
    return w, mom, separate, fused


def depthwise_case(rng, per_channel):
    """DEPTHWISE_CONV_2D 3x3 with depth multiplier 2, stride 2, SAME-like pads."""
    n, h, wd, c, m, kh, kw, oh, ow = 1, 6, 7, 3, 2, 3, 3, 3, 4
    win = c_kernels.Window(2, 2, 1, 1, 1, 1)
    dy = rng.normal(size=(n, oh, ow, c * m)).astype(np.float32)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    saved = rng.integers(-128, 128, (n, h, wd, c)).astype(np.int8)
    scales = rng.uniform(0.002, 0.02, c * m if per_channel else 1).astype(np.float32)
    w = rng.integers(-127, 128, (1, kh, kw, c * m)).astype(np.int8)
    mom = rng.normal(size=w.shape).astype(np.float32)
    lib, xs = c_kernels.library(), F32(0.03)

    def separate(w, mo, st):
        dw = np.empty(w.shape, np.float32)
        lib.tt_depthwise_conv2d_weight_grad_f32(ptr(dy, F32), ptr(mask, U8), n, oh, ow, c, m,
                                                ptr(saved, I8), xs, -3, h, wd, kh, kw,
                                                C.byref(win), ptr(dw, F32))
        lib.tt_update_weight_s8(ptr(w, I8), ptr(np.array(w.shape, np.int32), I32), 4, 1,
                                ptr(scales, F32), scales.size, ptr(dw, F32), c * m,
                                ptr(mo, F32), C.byref(SGD), C.byref(st))

    def fused(w, mo, st):
        scratch = np.empty(kh * kw * c * m, np.float32)
        lib.tt_depthwise_conv2d_weight_update_s8(ptr(dy, F32), ptr(mask, U8), n, oh, ow, c, m,
                                                 ptr(saved, I8), xs, -3, h, wd, ptr(w, I8), kh,
                                                 kw, ptr(scales, F32), scales.size,
                                                 C.byref(win), ptr(mo, F32), C.byref(SGD),
                                                 C.byref(st), ptr(scratch, F32))
    return w, mom, separate, fused


def fc_case(rng, per_channel):
    """FULLY_CONNECTED 8 -> 5, trained on its first 6 input columns, 2 batches."""
    batches, units, depth, k = 2, 5, 8, 6
    dy = rng.normal(size=(batches, units)).astype(np.float32)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    saved = rng.integers(-128, 128, (batches, k)).astype(np.int8)
    scales = rng.uniform(0.002, 0.02, units if per_channel else 1).astype(np.float32)
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    mom = rng.normal(size=(units, k)).astype(np.float32)
    lib, xs = c_kernels.library(), F32(0.03)

    def separate(w, m, st):
        dw = np.empty((units, k), np.float32)
        lib.tt_fully_connected_weight_grad_f32(ptr(dy, F32), ptr(mask, U8), batches, units,
                                               ptr(saved, I8), xs, 7, k, ptr(dw, F32))
        lib.tt_update_weight_s8(ptr(w, I8), ptr(np.array(w.shape, np.int32), I32), 2, 0,
                                ptr(scales, F32), scales.size, ptr(dw, F32), k, ptr(m, F32),
                                C.byref(SGD), C.byref(st))

    def fused(w, m, st):
        scratch = np.empty(k, np.float32)
        lib.tt_fully_connected_weight_update_s8(ptr(dy, F32), ptr(mask, U8), batches, units,
                                                ptr(saved, I8), xs, 7, k, ptr(w, I8), depth,
                                                ptr(scales, F32), scales.size, ptr(m, F32),
                                                C.byref(SGD), C.byref(st), ptr(scratch, F32))
    return w, mom, separate, fused


def bias_case(rng, per_channel):
    """Biases of a layer with a [1, 3, 4, 7] output (per_channel: nothing to vary)."""
    outer, channels = 12, 7
    dy = rng.normal(size=(1, 3, 4, channels)).astype(np.float32)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    scales = rng.uniform(1e-5, 1e-4, channels).astype(np.float32)
    b = rng.integers(-(1 << 20), 1 << 20, channels).astype(np.int32)
    mom = rng.normal(size=channels).astype(np.float32)
    lib = c_kernels.library()

    def separate(b, m, st):
        db = np.empty(channels, np.float32)
        lib.tt_bias_grad_f32(ptr(dy, F32), ptr(mask, U8), outer, channels, ptr(db, F32))
        lib.tt_update_bias_s32(ptr(b, I32), channels, ptr(scales, F32), ptr(db, F32),
                               ptr(m, F32), C.byref(SGD), C.byref(st))

    def fused(b, m, st):
        scratch = np.empty(channels, np.float32)
        lib.tt_bias_update_s32(ptr(dy, F32), ptr(mask, U8), outer, channels, ptr(b, I32),
                               ptr(scales, F32), ptr(m, F32), C.byref(SGD), C.byref(st),
                               ptr(scratch, F32))
    return b, mom, separate, fused


FUSED_CASES = {"conv": conv_case, "depthwise": depthwise_case, "fc": fc_case,
               "bias": bias_case}


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("kind", list(FUSED_CASES))
def test_fused_update_equals_gradient_then_update(kind, per_channel):
    """Three calls of the fused C kernel vs the C gradient kernel then the C update kernel on
    the same inputs, mid-way through a cosine decay, with momentum and stochastic rounding:
    parameters, momentum buffers and RNG state identical bit for bit."""
    param, mom, separate, fused = FUSED_CASES[kind](np.random.default_rng(11), per_channel)
    results = []
    for run in (separate, fused):
        p, m = param.copy(), mom.copy()
        st = c_kernels.UpdateState(987654321, 4)
        for _ in range(3):
            run(p, m, st)
        results.append((p, m.view(np.uint32), st.rng, st.step))
    (p0, m0, rng0, step0), (p1, m1, rng1, step1) = results
    assert np.array_equal(p0, p1) and np.array_equal(m0, m1), kind
    assert (rng0, step0) == (rng1, step1) and step0 == 7
    changed = np.count_nonzero(p0 != param)
    assert 0 < changed and np.count_nonzero(np.abs(p0) == 127) < p0.size / 2, kind


@pytest.mark.parametrize("batch", [1, 3])
def test_batch_accumulation_kernels(batch):
    """tt_batch_accumulate_f32 / tt_batch_end_f32 around the bias update, 7 training Invokes
    of batch B, against the contract written out here: the float32 sum of B gradients, one
    update with their mean (the reciprocal rounded to float32 once) at step n / B, the
    accumulator zeroed, the stream untouched between updates."""
    lib = c_kernels.library()
    rng = np.random.default_rng(5)
    channels = 7
    scales = rng.uniform(1e-5, 1e-4, channels).astype(np.float32)
    b0 = rng.integers(-(1 << 20), 1 << 20, channels).astype(np.int32)
    grads = [rng.normal(size=channels).astype(np.float32) for _ in range(7)]
    b, m, acc = b0.copy(), np.zeros(channels, np.float32), np.zeros(channels, np.float32)
    st = c_kernels.UpdateState(987654321, 0)
    ref_b, ref_m, ref_acc = b0.copy(), np.zeros(channels, np.float32), np.zeros(channels, np.float32)
    ref = c_kernels.UpdateState(987654321, 0)
    for n, g in enumerate(grads):
        if lib.tt_batch_accumulate_f32(ptr(acc, F32), ptr(g, F32), channels, batch,
                                       C.byref(st)):
            lib.tt_update_bias_s32(ptr(b, I32), channels, ptr(scales, F32), ptr(acc, F32),
                                   ptr(m, F32), C.byref(SGD), C.byref(st))
            lib.tt_batch_end_f32(ptr(acc, F32), channels, batch, C.byref(st))
        ref_acc = ref_acc + g
        if (n + 1) % batch == 0:
            mean = ref_acc * (np.float32(1) / np.float32(batch))
            ref.step = n // batch
            lib.tt_update_bias_s32(ptr(ref_b, I32), channels, ptr(scales, F32),
                                   ptr(mean, F32), ptr(ref_m, F32), C.byref(SGD),
                                   C.byref(ref))
            ref_acc = np.zeros(channels, np.float32)
        ref.step = n + 1
        assert np.array_equal(b, ref_b) and np.array_equal(acc.view(np.uint32),
                                                            ref_acc.view(np.uint32))
        assert np.array_equal(m.view(np.uint32), ref_m.view(np.uint32))
        assert (st.rng, st.step) == (ref.rng, n + 1)
    assert np.count_nonzero(b != b0) > 0 and st.rng != 987654321


# --- the libm-free math (micro_kernels/src/tt_math.c) ------------------------------------------

PI_50 = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")


def decimal_cos(x: Decimal) -> Decimal:
    term = total = Decimal(1)
    k = 0
    while abs(term) > Decimal(10) ** -45:
        k += 2
        term = -term * x * x / (k * (k - 1))
        total += term
    return total


def ulps(got: float, exact: Decimal) -> float:
    """|got - exact| in units of the last place of the double nearest to `exact`."""
    return float(abs(Decimal(got) - exact) / Decimal(math.ulp(float(exact))))


def test_libm_free_math_is_accurate():
    """tt_exp, tt_log and tt_cos_pi_ratio against 50-digit references (Python's decimal) on
    dense grids, and exp/log against libm. Measured maxima on these grids: exp 1.05 ulp
    (glibc's exp at most 1 ulp away), log 0.74 ulp (glibc: 1 ulp), cos_pi_ratio 1.85 ulp
    (mostly the rounding of the argument pi * t / n); the bound is 2 ulp.
    cos_pi_ratio is not compared with libm's cos(pi * t / n): the rounding of pi * t / n alone
    makes that one wrong by up to 1e16 ulps next to t = n/2."""
    lib = c_kernels.library()
    exp, log = (lambda x: lib.tt_exp(C.c_double(x))), (lambda x: lib.tt_log(C.c_double(x)))
    rng = np.random.default_rng(0)
    with localcontext() as ctx:
        ctx.prec = 50
        xs = np.concatenate([np.linspace(-708, 0, 8001), -np.geomspace(1e-12, 700, 4001),
                             np.linspace(0, 709, 1001), rng.uniform(-0.36, 0.36, 2000)])
        worst = max(ulps(exp(float(x)), Decimal(float(x)).exp()) for x in xs)
        libm = max(abs(exp(float(x)) - math.exp(x)) / math.ulp(math.exp(x)) for x in xs)
        assert worst <= 2 and libm <= 2, (worst, libm)
        assert exp(-746.0) == 0 and exp(0.0) == 1 and exp(-1e-300) == 1
        xs = np.concatenate([np.geomspace(1e-300, 1e300, 8001), np.linspace(0.5, 2, 4001),
                             1 + np.linspace(-1e-6, 1e-6, 1000), np.linspace(1, 1000, 4001),
                             [5e-324, 1e-310]])
        xs = xs[xs != 1]
        worst = max(ulps(log(float(x)), Decimal(float(x)).ln()) for x in xs)
        libm = max(abs(log(float(x)) - math.log(x)) / math.ulp(math.log(x)) for x in xs)
        assert worst <= 2 and libm <= 2, (worst, libm)
        assert log(1.0) == 0
        worst = 0.0
        for n in (1, 2, 3, 7, 100, 1000, 4096, 9999):
            for t in range(n + 1):
                got = lib.tt_cos_pi_ratio(t, n)
                if 2 * t == n:
                    assert got == 0, (t, n)
                    continue
                worst = max(worst, ulps(got, decimal_cos(PI_50 * t / n)))
        assert worst <= 2, worst


def test_python_cos_pi_ratio_is_the_c_one_bit_for_bit():
    """training_ops.cos_pi_ratio repeats tt_cos_pi_ratio's double operations: the decayed
    learning rate (cosine or inverse time) is identical in numpy and C by construction."""
    lib = c_kernels.library()
    for n in (1, 2, 3, 7, 100, 1000, 4096):
        for t in range(n + 1):
            got, want = cos_pi_ratio(t, n), lib.tt_cos_pi_ratio(t, n)
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (t, n)
    from tflite_train.ops.training import learning_rate
    for lr, decay, half in ((0.05, 1000, 0), (0.05, 0, 50), (3.7e-4, 0, 7), (0.3, 0, 0)):
        o = c_kernels.Sgd(lr, 0.0, 1, 1, decay, half)
        options = {"lr": lr, "decay_steps": decay, "half_life_steps": half}
        for step in (0, 1, 3, 250, 499, 500, 777, 1000, 5000, 2**31 - 1):
            assert learning_rate(options, step) == \
                np.float32(lib.tt_learning_rate(C.byref(o), step)), (lr, decay, half, step)


def test_python_exp_and_log_are_the_c_ones_bit_for_bit():
    """training_ops.exp / log repeat tt_exp / tt_log's double operations (the numpy loss
    uses them): identical on the arguments the loss gives them and across their ranges,
    subnormals, huge values and the special cases included."""
    lib = c_kernels.library()
    rng = np.random.default_rng(5)
    xs = np.concatenate([-np.geomspace(1e-12, 745.2, 3000), np.linspace(-30, 0, 3001),
                         rng.uniform(-745.2, 709.9, 3000), [0.0, -0.0, 1e-300, 709.78, 800.0,
                                                            -746.0, -745.13, np.nan]])
    for x in xs:
        got, want = training_ops.exp(float(x)), lib.tt_exp(C.c_double(x))
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), x
    xs = np.concatenate([np.geomspace(5e-324, 1e308, 6001), rng.uniform(0.5, 2.0, 3000),
                         rng.uniform(1, 100, 2000).astype(np.float32), [1.0, np.inf, 0.0]])
    for x in xs:
        got, want = training_ops.log(float(x)), lib.tt_log(C.c_double(x))
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), x
    assert math.isnan(training_ops.log(-1.0)) and math.isnan(lib.tt_log(C.c_double(-1.0)))


# --- a real model: numpy vs C over 200 training steps ------------------------------------------

def person_detect_scheme(name: str, tmp_path) -> str:
    """bias-only, or benchmarks/schemes/person_detect_sparse.json plus the depthwise layer
    before the last pointwise conv, so that all three fused weight updates run."""
    if name == "bias-only":
        return name
    scheme = json.loads((ROOT.parent / "benchmarks" / "schemes" /
                         "person_detect_sparse.json").read_text())
    scheme["weight_update"].append({"layer": -2, "ratio": 1})
    path = tmp_path / "sparse_dw.json"
    path.write_text(json.dumps(scheme))
    return str(path)


@pytest.mark.parametrize("scheme", ["bias-only", "sparse"])
def test_person_detect_trains_identically_in_numpy_and_c(scheme, tmp_path):
    """The person detector with a new 10-class head (the README's /tmp/pd.train.tflite, and a
    sparse scheme that runs the fused conv, depthwise and fully-connected weight updates),
    200 steps of seeded random images and labels on the numpy and the C engine: every
    variable (trained int8 weights, int32 biases, float32 momentum buffers if any) identical
    bit for bit at the end. Both sides sum the same float32 terms in the same order and
    share the loss's exp/log, so nothing may differ: no rounding-boundary allowance."""
    path = shared_model("person_detect")
    r = augment.augment(tflite_io.load(path), person_detect_scheme(scheme, tmp_path), 10,
                        Hyper())
    g = r.graph
    finals = {}
    for engine in ("numpy", "c"):
        ex = Executor(g, engine)
        rng = np.random.default_rng(0)
        for _ in range(200):
            x = rng.integers(-128, 128, (1, 96, 96, 1)).astype(np.int8)
            ex.invoke([x, np.array([rng.integers(0, 10)], np.int32)])
        finals[engine] = {k: v.copy() for k, v in ex.variables.items()}
    trained = sum(v.size for v in finals["c"].values())
    bits = {e: {k: v.view(f"u{v.itemsize}") for k, v in finals[e].items()} for e in finals}
    differing = sum(int(np.count_nonzero(bits["numpy"][k] != bits["c"][k])) for k in bits["c"])
    print(f"{scheme}: {differing} of {trained} trained parameters differ")
    assert differing == 0
    init = next(op for op in g.operators if op.kind == "TT_INIT")
    moved = sum(int(np.count_nonzero(g.tensors[const].data != finals["c"][var]))
                for const, var in zip(init.inputs[0::2], init.inputs[1::2]) if var in finals["c"])
    assert moved > trained // 10, moved          # the training did move the parameters
