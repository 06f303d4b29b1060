"""The drop-in TFLM path's memory (issue 11): the TT_* forward ops (split filters, in place,
requantization in flash) compute what the builtins compute in numpy, C and TFLM; augment's
memory passes change nothing that is computed; our offline plans with aliasing are what
TFLM uses and are refused when unsafe; the model of TFLM's persistent data reproduces the
wheel exactly with its 64-bit structs; the glue's Prepare turns broken models into error
statuses, never crashes."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SHARED_MODELS, require_tool
from tflite_train import alias_plan, memory, ops, tflite_io, tflm_memory
from tflite_train.augment import MemoryOptions, augment
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.ops import tt_forward
from tflite_train.runtime.numpy_exec import Executor

OFF = MemoryOptions(False, False, False, stream=False)
SPARSE = {"n_bias_update": 2, "weight_update": [{"layer": -1, "ratio": 0.5}]}


def converted(graph, in_place: bool = True):
    """The graph with every CONV_2D, DEPTHWISE_CONV_2D (m = 1) and FULLY_CONNECTED as our op,
    in place where it can be."""
    g = copy.deepcopy(graph)
    for k, op in enumerate(g.operators):
        if op.kind not in tt_forward.BUILTIN.values():
            continue
        if op.kind == "DEPTHWISE_CONV_2D" and \
                g.tensors[op.inputs[0]].shape[3] != g.tensors[op.outputs[0]].shape[3]:
            continue
        new = tt_forward.from_builtin(g, op)
        if in_place and op.kind != "FULLY_CONNECTED" and tt_forward.in_place_ok(g, new) is None:
            new = tt_forward.make_in_place(new)
        g.operators[k] = new
    ops.validate(g)
    return g


def random_input(graph, rng):
    t = graph.tensors[graph.inputs[0]]
    return rng.integers(-128, 128, t.shape).astype(np.int8)


# --- the ops compute what the builtins compute ----------------------------------------------

def test_tt_forward_ops_equal_the_builtins_in_numpy_c_and_tflm(zoo):
    """Every conv/depthwise/fully-connected of the zoo's models as our op (in place where it
    can be, aliased in TFLM by our offline plan): every tensor in numpy and C equals the
    builtin graph's, and TFLM's outputs equal them, bit for bit."""
    from tflite_train.runtime.tflm import TFLMInterpreter
    from tflite_train.runtime.tflm_engine import REGISTERER, glue_library
    glue_library()
    rng = np.random.default_rng(0)
    seen = set()
    for name in ("conv", "conv_strided", "depthwise", "dense", "mobile", "branches"):
        g = tflite_io.load(zoo[name])
        tt = converted(g)
        table, head, _ = alias_plan.plan(tt)
        assert alias_plan.problems(tt, table) == []
        tt.metadata[memory.OFFLINE_KEY] = alias_plan.metadata(table)
        data = tflite_io.serialize(tt)
        it = TFLMInterpreter(data, preserve_all=False, registerers=[REGISTERER])
        from tflite_train.runtime.tflm_engine import training_arena_usage
        assert training_arena_usage(data)["head"] == head
        seen |= {op.kind for op in tt.operators}
        for _ in range(3):
            x = random_input(g, rng)
            want = Executor(g).invoke([x])
            for engine in ("numpy", "c"):
                got = Executor(tt, engine).invoke([x])
                for i in want:
                    if g.tensors[i].data is None:
                        assert np.array_equal(got[i], want[i]), (name, engine, i)
            it.invoke([x])
            for k, i in enumerate(g.outputs):
                assert np.array_equal(it.output(k).reshape(want[i].shape), want[i]), name
    assert {"TT_CONV2D", "TT_DEPTHWISE_CONV2D", "TT_FULLY_CONNECTED"} <= seen


def streamed(graph, strided_only: bool = True):
    """The graph with every pointwise + depthwise pair TT_POINTWISE_DEPTHWISE can take as
    one op (`strided_only` False: stride-1 depthwise layers too)."""
    from tflite_train.ops import tt_stream
    g = copy.deepcopy(graph)
    k = 0
    while k < len(g.operators):
        if tt_stream.fusable(g, k, strided_only) is None:
            g.operators[k:k + 2] = [tt_stream.from_builtins(g, k)]
        k += 1
    from tflite_train.passes.prune import prune_tensors
    prune_tensors(g)
    ops.validate(g)
    return g


def expansion_graph(h: int, w: int, ci: int, cm: int, kernel: int, stride: int,
                    padding: int, seed: int):
    """x [1, h, w, ci] -> CONV_2D 1x1 (per-channel, RELU6) -> DEPTHWISE_CONV_2D
    kernel x kernel, `stride`, SAME/VALID (per-tensor scale, no activation), random values."""
    from tflite_train.ir import Graph, Operator, Quantization as Q, Tensor
    from tflite_train.ops.window import out_size
    rng = np.random.default_rng(seed)

    def q(scale, zp=0, n=1):
        return Q(np.full(n, scale, np.float32), np.full(n, zp, np.int64), 0)
    pw_scales = Q(rng.uniform(0.002, 0.02, cm).astype(np.float32), np.zeros(cm, np.int64), 0)
    oh, ow = (out_size(padding, n, kernel, stride, 1) for n in (h, w))
    t = [Tensor("x", (1, h, w, ci), "int8", q(0.05, 3)),
         Tensor("pw", (cm, 1, 1, ci), "int8", pw_scales,
                data=rng.integers(-127, 128, (cm, 1, 1, ci)).astype(np.int8)),
         Tensor("pw_bias", (cm,), "int32", Q(pw_scales.scale * np.float32(0.05),
                                             np.zeros(cm, np.int64), 0),
                data=rng.integers(-3000, 3000, cm).astype(np.int32)),
         Tensor("mid", (1, h, w, cm), "int8", q(0.03, -128)),
         Tensor("dw", (1, kernel, kernel, cm), "int8", q(0.01),
                data=rng.integers(-127, 128, (1, kernel, kernel, cm)).astype(np.int8)),
         Tensor("dw_bias", (cm,), "int32", q(0.0003, 0, cm),
                data=rng.integers(-3000, 3000, cm).astype(np.int32)),
         Tensor("y", (1, oh, ow, cm), "int8", q(0.08, -7))]
    conv = Operator("CONV_2D", [0, 1, 2], [3], options_type="Conv2DOptions",
                    options={"padding": 1, "stride_w": 1, "stride_h": 1,
                             "fused_activation_function": 3, "dilation_w_factor": 1,
                             "dilation_h_factor": 1})
    dw = Operator("DEPTHWISE_CONV_2D", [3, 4, 5], [6], options_type="DepthwiseConv2DOptions",
                  options={"padding": padding, "stride_w": stride, "stride_h": stride,
                           "fused_activation_function": 0, "dilation_w_factor": 1,
                           "dilation_h_factor": 1, "depth_multiplier": 1})
    g = Graph(t, [conv, dw], [0], [6])
    ops.validate(g)
    return tflite_io.parse(tflite_io.serialize(g))


def stream_graphs():
    """(name, graph, strided only) with fusable pairs: hand-built expansions (strides 2 and
    1, SAME and VALID, odd sizes), and the person detector (its four pointwise -> stride-2
    depthwise pairs) when the shared models are there."""
    out = [(f"expansion{i}", expansion_graph(*case, seed=i), False)
           for i, case in enumerate([(9, 8, 5, 12, 3, 2, 0), (10, 7, 3, 16, 3, 1, 0),
                                     (11, 11, 4, 8, 5, 2, 1), (6, 6, 8, 4, 3, 2, 1)])]
    pd = SHARED_MODELS / "tflm" / "person_detect.tflite"
    if pd.exists():
        out.append(("person_detect", tflite_io.load(pd), True))
    return out


def test_streamed_pair_equals_the_two_builtins_in_numpy_c_and_tflm():
    """TT_POINTWISE_DEPTHWISE: every tensor of the streamed graph in numpy and C equals the
    builtin graph's, and TFLM's outputs equal them, bit for bit; the scratch TFLM plans is
    the kernel's window; and the two builtins written back (export, codegen) are the graph
    it came from, computing the same."""
    from tflite_train.passes.builtins import joined
    from tflite_train.runtime.tflm import TFLMInterpreter
    from tflite_train.runtime.tflm_engine import REGISTERER, glue_library, training_arena_usage
    glue_library()
    rng = np.random.default_rng(5)
    for name, g, strided in stream_graphs():
        st = streamed(g, strided)
        fused = [op for op in st.operators if op.kind == "TT_POINTWISE_DEPTHWISE"]
        assert len(fused) == (4 if name == "person_detect" else 1), name
        data = tflite_io.serialize(st)
        assert training_arena_usage(data)["head"] == memory.plan(tflite_io.parse(data)).arena_bytes
        it = TFLMInterpreter(data, preserve_all=False, registerers=[REGISTERER])
        back = joined(st)
        assert [op.kind for op in back.operators] == [op.kind for op in g.operators]
        for _ in range(2):
            x = random_input(g, rng)
            want = Executor(g).invoke([x])
            by_name = {g.tensors[i].name: v for i, v in want.items() if g.tensors[i].data is None}
            for engine in ("numpy", "c"):
                got = Executor(st, engine).invoke([x])
                names = [st.tensors[i].name for i in got if st.tensors[i].data is None]
                assert len(names) == len(by_name) - len(fused)     # no expansion tensors
                for i, v in got.items():
                    if st.tensors[i].data is None:
                        assert np.array_equal(v, by_name[st.tensors[i].name]), (name, engine)
            it.invoke([x])
            for k, i in enumerate(g.outputs):
                assert np.array_equal(it.output(k).reshape(want[i].shape), want[i]), name
            got = Executor(back).invoke([x])
            assert all(np.array_equal(got[j], want[i]) for j, i in zip(back.outputs, g.outputs))


def test_in_place_conv_kernel_takes_only_safe_layouts():
    """tt_conv2d_split_inplace_s8: the output over the input, growing (input at the end)
    and shrinking (same start): bit-identical to the out-of-place kernel; an input placed
    where a row written would destroy one not yet read is refused, nothing touched."""
    from tflite_train.runtime import c_forward as cf
    rng = np.random.default_rng(1)
    for ci, co in ((8, 32), (32, 8), (16, 16)):
        n, h, w = 1, 5, 6
        x = rng.integers(-128, 128, (n, h, w, ci)).astype(np.int8)
        f = rng.integers(-127, 128, (co, 1, 1, ci)).astype(np.int8)
        m = rng.integers(1 << 30, (1 << 31) - 1, co).astype(np.int32)
        s = rng.integers(-12, -4, co).astype(np.int8)
        b = rng.integers(-5000, 5000, co).astype(np.int32)
        p = cf.ConvParams(1, 1, 1, 1, 0, 0, 7, -3, -128, 127)
        dims = [cf._nhwc(x.shape), cf._nhwc(f.shape), cf._nhwc((n, h, w, co))]
        want = np.empty((n, h, w, co), np.int8)
        cf.call("tt_conv2d_split_s8", p, m, s, dims[0], x, dims[1], f, ci, None, b, dims[2],
                want)
        grow = max(0, want.nbytes - x.nbytes)
        scratch = np.empty(w * co, np.int8)
        buf = np.zeros(max(want.nbytes, grow + x.nbytes) + 64, np.int8)
        buf[grow:grow + x.nbytes] = x.ravel()
        assert cf.call("tt_conv2d_split_inplace_s8", p, m, s, dims[0], buf[grow:], dims[1], f,
                       ci, None, b, dims[2], buf, scratch) == 0
        assert np.array_equal(buf[:want.nbytes], want.ravel())
        if grow:
            buf[grow - 16:grow - 16 + x.nbytes] = x.ravel()     # 16 bytes too early
            before = buf.copy()
            assert cf.call("tt_conv2d_split_inplace_s8", p, m, s, dims[0], buf[grow - 16:],
                           dims[1], f, ci, None, b, dims[2], buf, scratch) != 0
            assert np.array_equal(buf, before)


def test_depthwise_scratch_is_the_kernels(zoo):
    """The in-place depthwise scratch the planner counts (ops/tt_forward.scratch_bytes)
    equals what the C kernel asks for, over strides, kernels, paddings and batches."""
    from tflite_train.runtime import c_forward as cf
    from tflite_train.ir import Graph, Operator, Quantization, Tensor
    from tflite_train.training_ops import make_op
    q = Quantization(np.array([0.1], np.float32), np.array([0]))
    for n, h, c, k, stride, pad in [(1, 9, 5, 3, 1, 1), (2, 8, 4, 3, 2, 0), (1, 16, 8, 5, 1, 2),
                                    (1, 15, 3, 7, 2, 3), (1, 4, 16, 3, 1, 0), (3, 7, 6, 5, 2, 2)]:
        oh = (h + 2 * pad - k) // stride + 1
        g = Graph([Tensor("x", (n, h, h, c), "int8", q), Tensor("w", (1, k, k, c), "int8", q,
                                                                data=np.zeros((1, k, k, c))),
                   Tensor("m", (c,), "int32", data=np.zeros(c, np.int32)),
                   Tensor("s", (c,), "int8", data=np.zeros(c, np.int8)),
                   Tensor("y", (n, oh, oh, c), "int8", q)], [], [0], [4])
        op = make_op("TT_DEPTHWISE_CONV2D", [0, 1, -1, 2, 3], [4], stride_h=stride,
                     stride_w=stride, dilation_h=1, dilation_w=1, pad_top=pad, pad_left=pad,
                     act_min=-128, act_max=127, in_place=True)
        p = cf.ConvParams(stride, stride, 1, 1, pad, pad, 0, 0, -128, 127)
        want = cf.call("tt_depthwise_conv2d_inplace_s8_scratch_bytes", p, cf._nhwc(g.tensors[0].shape),
                       cf._nhwc(g.tensors[1].shape), cf._nhwc(g.tensors[4].shape))
        assert tt_forward.scratch_bytes(g, op) == want > 0


# --- augment's passes change where bytes live, not what is computed --------------------------

def train(graph, engine: str, steps: int, seed: int = 0):
    ex = Executor(graph, engine) if engine != "tflm" else None
    if engine == "tflm":
        from tflite_train.runtime.tflm_engine import TFLMExecutor
        ex = TFLMExecutor(graph)
    rng = np.random.default_rng(seed)
    losses = []
    for s in range(steps):
        out = ex.invoke([random_input(graph, rng), np.array([s % 4], np.int32)])
        losses.append(np.asarray(out[graph.outputs[-1]]).copy())
    return losses, {graph.tensors[i].name: np.asarray(v).copy()
                    for i, v in ex.variables.items()}


@pytest.mark.parametrize("grad", ["float32", "int8"])
def test_split_filters_train_bit_for_bit_like_whole_ones(tmp_path, grad):
    """A ratio-1/2 layer: its filter split (trained half a variable, the rest constant) and
    the forward ops with requantization in flash train exactly like the whole filter, on
    the numpy, C and TFLM engines (momentum and stochastic rounding on; with int8 gradients
    the split input gradient rounds stochastically too, from the whole one's stream)."""
    scheme = tmp_path / "half.json"
    scheme.write_text(json.dumps(SPARSE))
    hyper = Hyper(lr=0.05, momentum=0.5, seed=3, grad=grad, grad_rounding="stochastic")
    whole = augment(tflite_io.load(EXAMPLE), str(scheme), 4, hyper, memory=OFF).graph
    r = augment(tflite_io.load(EXAMPLE), str(scheme), 4, hyper)
    split = tflite_io.parse(tflite_io.serialize(r.graph))
    assert [s.trained for s in r.memory.split] == [8] and r.memory.flash_requant
    kinds = {op.kind for op in split.operators}
    assert {"TT_CONV2D", "TT_CONV2D_SPLIT_INPUT_GRAD"} <= kinds
    ref_losses, ref_vars = train(whole, "numpy", 6)
    for engine in ("numpy", "c", "tflm"):
        losses, variables = train(split, engine, 6)
        assert [a.tobytes() for a in losses] == [a.tobytes() for a in ref_losses], engine
        assert set(variables) == set(ref_vars)
        for name, v in variables.items():      # a split filter's variable: its trained part
            assert np.array_equal(ref_vars[name][..., :v.shape[-1]], v), (engine, name)
        assert any(ref_vars[n].shape != v.shape for n, v in variables.items())


def test_paper_model_passes_train_identically_in_tflm(tmp_path):
    """MCUNet-5FPS with its 99kb scheme, every pass on (split filters, the first expansion
    computed row by row, in-place outputs aliased by the offline plan, requantization in
    flash): three steps in TFLM equal
    --engine c bit for bit, and equal the model without the passes."""
    pkl = SHARED_MODELS / "tiny-training" / "mcunet-5fps.pkl"
    if not pkl.exists():
        pytest.skip(f"{pkl} not present")
    from tflite_train.cli import main
    model = tmp_path / "mcunet.tflite"
    assert main(["import", str(pkl), "-o", str(model)]) == 0
    scheme = str(ROOT / "benchmarks" / "schemes" / "mcunet-5fps_99kb.json")
    hyper = Hyper(lr=0.01, seed=1)
    r = augment(tflite_io.load(model), scheme, 10, hyper)
    g = tflite_io.parse(tflite_io.serialize(r.graph))
    assert r.memory.split and r.memory.in_place and memory.OFFLINE_KEY in g.metadata
    assert [c.layer for c in r.memory.streamed] == ["blocks.1.pointwise1"]
    assert "TT_POINTWISE_DEPTHWISE" in {op.kind for op in g.operators}
    whole = augment(tflite_io.load(model), scheme, 10, hyper, memory=OFF).graph
    c_losses, c_vars = train(g, "c", 3)
    t_losses, t_vars = train(g, "tflm", 3)
    w_losses, _ = train(whole, "c", 3)
    assert [a.tobytes() for a in t_losses] == [a.tobytes() for a in c_losses] \
        == [a.tobytes() for a in w_losses]
    assert all(np.array_equal(t_vars[n], c_vars[n]) for n in c_vars)


def test_person_detector_sparse_fits_128_kb_and_trains_identically_in_tflm():
    """Issue 11's goal for the person detector's sparse scheme (int8 gradients): at most
    128 KB for a 32-bit TFLM. Its forward's peak is three layers tied at 36 KB (48x48x8 and
    24x24x32, each read and written whole), which no one or two in-place operators lower:
    the in-place pass makes the group at the peak in place, then chooses the input
    gradients' passes again (the one-pass int32 scratch at 6x6x128 would be the next peak).
    TFLM trains the result bit for bit like --engine c. The goal holds without the new
    head's rounding residual (--head-residual off): augment's default since round 27 adds
    1 B a head weight (10 x 256) and takes the model to 133,524 B, 2,452 B over; the default
    model is the one TFLM trains here."""
    model = SHARED_MODELS / "tflm" / "person_detect.tflite"
    if not model.exists():
        pytest.skip(f"{model} not present")
    scheme = str(ROOT / "benchmarks" / "schemes" / "person_detect_sparse.json")
    r = augment(tflite_io.load(model), scheme, 10, Hyper(seed=0, grad="int8",
                                                         head_residual=False))
    data = tflite_io.serialize(r.graph)
    g = tflite_io.parse(data)
    a = tflm_memory.account(g, len(data), "cortex-m7")
    assert a["sram_total"] <= 128 * 1024, a
    assert len(r.memory.in_place) >= 3 and a["aliased"] == len(r.memory.in_place)
    assert alias_plan.problems(g, tflm_memory.offline_table(g)) == []
    r = augment(tflite_io.load(model), scheme, 10, Hyper(seed=0, grad="int8"))
    data = tflite_io.serialize(r.graph)
    g = tflite_io.parse(data)
    on = tflm_memory.account(g, len(data), "cortex-m7")
    assert on["optimizer"] - a["optimizer"] == 10 * 256 and on["arena"] == a["arena"]
    c_losses, c_vars = train(g, "c", 2)
    t_losses, t_vars = train(g, "tflm", 2)
    assert [x.tobytes() for x in t_losses] == [x.tobytes() for x in c_losses]
    assert all(np.array_equal(t_vars[n], c_vars[n]) for n in c_vars)


# --- offline plans with aliasing: what TFLM uses, and proved safe ----------------------------

def test_plan_refuses_an_unsafe_aliasing(tmp_path, capsys):
    """An in-place depthwise whose input something reads after it: augment never aliases
    it, and `plan` refuses a model whose offline plan does (exit 2, one line)."""
    from tflite_train.cli import main
    from tflite_train.training_ops import make_op
    g = converted(tflite_io.load(EXAMPLE), in_place=False)
    dw = next(k for k, op in enumerate(g.operators) if op.kind == "TT_DEPTHWISE_CONV2D"
              and tt_forward.in_place_ok(g, tt_forward.make_in_place(op)) is None)
    g.operators[dw] = tt_forward.make_in_place(g.operators[dw])
    x = g.operators[dw].inputs[0]
    # a reader of x after the depthwise layer: a saved mask of it, as a backward pass keeps
    from tflite_train.ir import Tensor
    lab = g.add_tensor(Tensor("label", (1,), "int32"))
    mask = g.add_tensor(Tensor("late/mask", ((g.tensors[x].size + 7) // 8,), "uint8"))
    g.operators.insert(dw + 1, make_op("TT_SAVE_MASK", [x, lab], [mask], lo=-129, hi=128))
    g.inputs.append(lab)
    g.outputs.append(mask)
    table, _, _ = alias_plan.plan(g)
    op = g.operators[dw]
    assert table[op.inputs[0]] != table[op.outputs[0]]          # the planner kept them apart
    assert alias_plan.problems(g, table) == []
    forced = table.copy()
    forced[op.outputs[0]] = forced[op.inputs[0]]
    why = alias_plan.problems(g, forced)
    assert why and "reads later" in why[0] and "TT_SAVE_MASK" in why[0]
    g.metadata[memory.OFFLINE_KEY] = alias_plan.metadata(forced)
    bad = tmp_path / "bad.tflite"
    tflite_io.save(g, bad)
    assert main(["plan", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unsafe" in err and len(err.splitlines()) == 1
    # two tensors that are no in-place pair, overlapping while both alive: refused too
    forced = table.copy()
    a, b = op.inputs[0], mask
    forced[b] = forced[a]
    assert any("not an in-place operator's" in w for w in alias_plan.problems(g, forced))


def test_augment_reports_its_choices_and_each_can_be_turned_off(tmp_path, capsys):
    from tflite_train.cli import main
    scheme = tmp_path / "half.json"
    scheme.write_text(json.dumps(SPARSE))
    out = tmp_path / "t.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "4",
                 "--scheme", str(scheme)]) == 0
    text = capsys.readouterr().out
    assert "8/16 input channels" in text and "requantization in flash" in text
    meta = json.loads(tflite_io.load(out).metadata["tflite_train"])["memory"]
    assert meta["split_filters"] and meta["flash_requantization"]
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "4", "--scheme",
                 str(scheme), "--no-split-filters", "--no-in-place", "--keep-builtins",
                 "--no-stream"]) == 0
    text = capsys.readouterr().out
    g = tflite_io.load(out)
    assert not any(op.kind in tt_forward.FORWARD or "SPLIT" in op.kind for op in g.operators)
    assert memory.OFFLINE_KEY not in g.metadata
    meta = json.loads(g.metadata["tflite_train"])["memory"]
    assert meta == {"split_filters": [], "in_place": [], "flash_requantization": [],
                    "streamed": []}


def test_plan_prints_the_target_parts(tmp_path, capsys):
    """plan's SRAM is the sum of its parts for the Cortex-M7; for the wheel its modelled
    persistent data is what the wheel measures."""
    from tflite_train.cli import main
    out = tmp_path / "t.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "4",
                 "--momentum", "0.9", "--batch", "1"]) == 0
    capsys.readouterr()
    assert main(["plan", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["target"] == "cortex-m7" and info["optimizer_bytes"] > 0
    assert info["total_bytes"] == info["arena_bytes"] + info["persistent_bytes"] + \
        info["trainable_bytes"] + info["optimizer_bytes"]
    assert info["persistent_bytes"] == sum(info["persistent_parts"].values())
    assert info["flash"]["total"] == out.stat().st_size + tflm_memory.TFLM_CODE_BYTES
    assert main(["plan", str(out), "--json", "--target", "wheel-x86_64"]) == 0
    wheel = json.loads(capsys.readouterr().out)
    # the whole tail agrees; the wheel's figure is the tail less each variable's aligned
    # size, while plan gives the variables the padding between them (8 bytes here with
    # int8 gradients, whose op data moves where the variables fall)
    variables = sum(memory.align_up(t.nbytes) for t in tflite_io.load(out).tensors
                    if t.is_variable)
    assert wheel["persistent_bytes"] + wheel["trainable_bytes"] + wheel["optimizer_bytes"] == \
        wheel["wheel_measured_persistent_bytes"] + variables
    assert wheel["persistent_bytes"] > info["persistent_bytes"]      # 64-bit structs
    assert main(["plan", str(out)]) == 0
    assert "TFLM persistent" in capsys.readouterr().out


# --- the persistent-data model ---------------------------------------------------------------

RECORD = re.compile(r"'(.+?)' used (\d+) bytes with alignment overhead \(requested (\d+) "
                    r"bytes for (\d+)")


def wheel_allocations(data: bytes) -> tuple[int, dict]:
    """The wheel's RecordingMicroAllocator report: (tail, {category: (requested, used,
    count)})."""
    from tflite_train.runtime.tflm import TFLMInterpreter, captured_c_output
    from tflite_train.runtime.tflm_engine import REGISTERER, glue_library
    glue_library()
    it = TFLMInterpreter(data, preserve_all=False, registerers=[REGISTERER])
    with captured_c_output() as out:
        it._it.print_allocations()
    text = out["text"]
    tail = int(re.search(r"Arena allocation tail (\d+) bytes", text).group(1))
    return tail, {m.group(1): (int(m.group(3)), int(m.group(2)), int(m.group(4)))
                  for m in RECORD.finditer(text)}


def model_graphs(zoo):
    graphs = [tflite_io.load(p) for p in zoo.values()]
    graphs += [tflite_io.load(SHARED_MODELS / "tflm" / f"{n}.tflite")
               for n in ("person_detect", "hello_world_int8", "micro_speech_quantized")
               if (SHARED_MODELS / "tflm" / f"{n}.tflite").exists()]
    hyper = Hyper(lr=0.05, momentum=0.5, seed=2)
    for scheme, fuse, passes in (("full", False, OFF), ("full", True, MemoryOptions()),
                                 ("last:2", True, MemoryOptions()),
                                 ("bias-only", True, MemoryOptions(True, True, False))):
        graphs.append(augment(tflite_io.load(EXAMPLE), scheme, 4, hyper, fuse=fuse,
                              memory=passes).graph)
    for name in ("mobile", "branches", "mean"):
        graphs.append(augment(tflite_io.load(zoo[name]), "full", None, hyper).graph)
    graphs += [streamed(g, strided) for _, g, strided in stream_graphs()]
    return graphs


def test_persistent_model_reproduces_the_wheel_exactly(zoo):
    """With the wheel's 64-bit structs and its allocator, the model's tail and every
    category the wheel records (requested bytes, bytes with alignment, count) equal the
    wheel's own report: inference models (every builtin we support) and training models
    (every glue op, the TT forward ops, variables, scratch handles, offline plans)."""
    seen = set()
    for g in model_graphs(zoo):
        data = tflite_io.serialize(g)
        tail, recorded = wheel_allocations(data)
        model = tflm_memory.persistent_tail(tflite_io.parse(data), "wheel-x86_64",
                                            recording=True)
        assert model.bytes == tail, g.name
        assert model.recorded() == recorded, g.name
        seen |= {op.kind for op in g.operators}
    assert set(tflm_memory.BUILTINS) - seen <= {"PADV2", "QUANTIZE", "DEQUANTIZE", "TRANSPOSE"}
    assert {"TT_CONV2D", "TT_DEPTHWISE_CONV2D", "TT_FULLY_CONNECTED",
            "TT_POINTWISE_DEPTHWISE"} <= seen


def _probe(compiler: list[str], structs: list[str], sources: list[Path], tmp: Path,
           name: str) -> dict[str, tuple[int, int]]:
    """sizeof/alignof of structs defined in `sources` (their unnamed namespaces included),
    read from the sizes of empty symbols."""
    kernels = ROOT / "micro_kernels"
    src = tmp / f"{name}.cc"
    lines = [f'#include "{s}"' for s in sources]
    for s in structs:
        lines.append(f'extern "C" const char size_{s}[sizeof(tflite_train::tflm::{s})] = {{}};')
        lines.append(f'extern "C" const char align_{s}[alignof(tflite_train::tflm::{s})] = {{}};')
    src.write_text("\n".join(lines) + "\n")
    include = tmp / "include"
    include.mkdir(exist_ok=True)
    if not (include / "flatbuffers").exists():
        (include / "flatbuffers").symlink_to("/usr/include/flatbuffers")
    obj = tmp / f"{name}.o"
    subprocess.run([*compiler, "-std=c++17", "-fno-exceptions", "-fno-rtti", "-c",
                    "-DTT_TFLM_WHEEL_ABI", "-DFLATBUFFERS_LOCALE_INDEPENDENT=0",
                    "-I", str(kernels / "include"), "-I", str(kernels / "tflm"),
                    "-I", str(kernels / "tflm" / "wheel_abi"), "-isystem", str(include),
                    str(src), "-o", str(obj)], check=True)
    sizes = {}
    for line in subprocess.run(["nm", "-S", str(obj)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith(("size_", "align_")):
            sizes[parts[3]] = int(parts[1], 16)
    return {s: (sizes[f"size_{s}"], sizes[f"align_{s}"]) for s in structs}


def test_glue_op_data_sizes_are_the_models(tmp_path):
    """GLUE_STRUCTS holds sizeof/alignof of the glue's op data as g++ (x86-64) and
    arm-none-eabi-g++ (Cortex-M7) lay them out: compiled from the glue's sources here, so the
    table cannot go stale."""
    from tflite_train.runtime.c_kernels import cortex_m7_flags
    gxx, arm = shutil.which("g++"), shutil.which("arm-none-eabi-g++")
    require_tool(gxx is not None and arm is not None and shutil.which("nm") is not None
                 and Path("/usr/include/newlib/c++").exists(),
                 "g++, arm-none-eabi-g++ with libstdc++-arm-none-eabi-dev and nm")
    tflm = ROOT / "micro_kernels" / "tflm"
    structs = {"tt_tflm_ops.cc": ["InitData", "IntsData", "QuantData", "PoolData", "LayerData",
                                  "SumData"],
               "tt_tflm_forward_ops.cc": ["ForwardData", "StreamData"]}
    for target, compiler in (("wheel-x86_64", [gxx]), ("cortex-m7", [arm, *cortex_m7_flags()])):
        got = {}
        for source, names in structs.items():
            got.update(_probe(compiler, names, [tflm / source], tmp_path,
                              f"{target}-{Path(source).stem}"))
        assert got == tflm_memory.GLUE_STRUCTS[target], target


def test_32_bit_model_counts_every_op_it_meets():
    """The Cortex-M7 tail of a training model: smaller than the wheel's (every pointer
    4 bytes), and an op it has no model for is an error, not a guess."""
    g = augment(tflite_io.load(EXAMPLE), "full", 4, Hyper(lr=0.05)).graph
    m7 = tflm_memory.persistent_tail(g, "cortex-m7")
    wheel = tflm_memory.persistent_tail(g, "wheel-x86_64")
    assert 0 < m7.bytes < wheel.bytes
    assert sum(m7.by_part().values()) == m7.bytes
    g.operators[1].custom_code = "TT_SOMETHING_ELSE"
    with pytest.raises(ValueError, match="no TFLM memory model"):
        tflm_memory.persistent_tail(g, "cortex-m7")


# --- the shifts are int8 (training model format version 2) ------------------------------------

def test_shifts_are_int8_and_the_checker_refuses_int32_and_wrapped_ones():
    """Requantization in flash stores 4 + 1 bytes a channel (int32 multiplier, int8 shift);
    the checker refuses format version 1's int32 shifts and a file whose scales give a shift
    outside [-31, 31] (stored wrapped into int8 to match), each in one line."""
    from tflite_train.errors import ModelError
    from tflite_train.passes.forward_ops import to_tt_ops
    g = tflite_io.load(EXAMPLE)
    done = to_tt_ops(g)
    assert done
    for op in g.operators:
        if op.kind in tt_forward.FORWARD:
            pos = tt_forward.positions(op.kind)
            m, s = (g.tensors[op.inputs[pos[k]]] for k in ("multipliers", "shifts"))
            assert m.dtype == "int32" and s.dtype == "int8" and s.data.dtype == np.int8
            assert -31 <= s.data.min() and s.data.max() <= 31
    channels = sum(g.tensors[g.operators[k].outputs[0]].shape[-1]
                   for k, op in enumerate(g.operators) if op.kind in tt_forward.FORWARD)
    assert sum(c.flash_added for c in done) == 5 * channels
    ops.validate(g)
    k = next(k for k, op in enumerate(g.operators) if op.kind == "TT_CONV2D")
    op = g.operators[k]

    def refused(edit) -> str:
        bad = copy.deepcopy(g)
        edit(bad, bad.operators[k])
        with pytest.raises(ModelError) as e:
            ops.validate(bad)
        assert "\n" not in str(e.value)
        return str(e.value)

    def int32_shifts(bad, op):
        s = bad.tensors[op.inputs[5]]
        s.dtype, s.data = "int32", s.data.astype(np.int32)
    assert "format version 1" in refused(int32_shifts) and "augment again" in \
        refused(int32_shifts)

    def huge_scale(bad, op):
        # real multiplier s_x s_w / s_y past 2^130: QuantizeMultiplier's shift past 127 wraps in
        # int8; the file stores that, so only the range check can tell
        y = bad.tensors[op.outputs[0]]
        y.quant.scale = np.full_like(y.quant.scale, 1e-44)
        x, w = bad.tensors[op.inputs[0]], bad.tensors[op.inputs[1]]
        from tflite_train.ops.requant import conv_multipliers
        m, s = conv_multipliers(x, w, y, y.shape[-1])
        assert s.max() > 127
        bad.tensors[op.inputs[4]].data = m.astype(np.int32)
        bad.tensors[op.inputs[5]].data = s.astype(np.int8)
    assert "outside [-31, 31]" in refused(huge_scale)
    assert op is g.operators[k]


def test_streamed_checker_refuses_int32_shifts():
    from tflite_train.errors import ModelError
    g = streamed(expansion_graph(9, 8, 5, 12, 3, 2, 0, seed=0), strided_only=False)
    k = next(k for k, op in enumerate(g.operators) if op.kind == "TT_POINTWISE_DEPTHWISE")
    for slot, prefix in ((4, "pw_"), (8, "dw_")):
        bad = copy.deepcopy(g)
        s = bad.tensors[bad.operators[k].inputs[slot]]
        assert s.dtype == "int8"
        s.dtype, s.data = "int32", s.data.astype(np.int32)
        with pytest.raises(ModelError, match=f"{prefix}shifts are int32 .training model format "
                                             "version 1.: run tflite-train augment again"):
            ops.validate(bad)


def test_a_version_1_training_model_is_refused_with_what_to_do():
    from tflite_train.augment import FORMAT_VERSION, METADATA_KEY, training_metadata
    from tflite_train.errors import ModelError
    g = tflite_io.load(EXAMPLE)
    assert FORMAT_VERSION == 2
    g.metadata[METADATA_KEY] = json.dumps({"version": 1, "logits": "x"}).encode()
    with pytest.raises(ModelError, match="format version 1 is not supported .this tflite-train "
                                         "reads version 2.: run `tflite-train augment` again"):
        training_metadata(g)


# --- the glue's Prepare refuses broken models ------------------------------------------------

def broken_models() -> list[tuple[str, bytes, str]]:
    """(what is broken, model bytes, a piece of the message the glue must print)."""
    from tflite_train.ir import Operator
    from tflite_train.training_ops import encode_options, options_of
    base = converted(tflite_io.load(EXAMPLE), in_place=False)
    conv = next(k for k, op in enumerate(base.operators) if op.kind == "TT_CONV2D"
                and base.tensors[op.inputs[1]].shape[1:3] == (1, 1))
    dw = next(k for k, op in enumerate(base.operators) if op.kind == "TT_DEPTHWISE_CONV2D")
    fc = next(k for k, op in enumerate(base.operators) if op.kind == "TT_FULLY_CONNECTED")
    cases = []

    def case(what, k, message, edit):
        g = copy.deepcopy(base)
        edit(g, g.operators[k])
        cases.append((what, tflite_io.serialize(g), message))

    def options(op, **change):
        o = {**options_of(op), **change}
        o = {key: v for key, v in o.items() if v is not None}
        op.custom_options = encode_options(o)
        op.options.pop("_tt", None)

    def retype(g, t, dtype):
        g.tensors[t].dtype = dtype
        if g.tensors[t].data is not None:
            g.tensors[t].data = g.tensors[t].data.astype(dtype)

    case("conv filter int32", conv, "(filter) has type",
         lambda g, op: retype(g, op.inputs[1], "int32"))
    case("conv filter depth", conv, "shapes do not match",
         lambda g, op: setattr(g.tensors[op.inputs[1]], "shape",
                               g.tensors[op.inputs[1]].shape[:3] + (1,))
         or setattr(g.tensors[op.inputs[1]], "data", g.tensors[op.inputs[1]].data[..., :1]))
    case("conv option missing", conv, "option 'act_min'", lambda g, op: options(op, act_min=None))
    case("conv act range", conv, "act_min/act_max", lambda g, op: options(op, act_min=50,
                                                                          act_max=10))
    case("conv multipliers short", conv, "multipliers and shifts need",
         lambda g, op: _shorten(g, op.inputs[4]))
    case("conv shift out of range", conv, "out of range",
         lambda g, op: g.tensors[op.inputs[5]].data.__setitem__(0, -40))
    # format version 1's int32 shifts: refused by their type, never read as int8
    case("conv shifts int32", conv, "format version 1 stored int32: run tflite-train augment",
         lambda g, op: retype(g, op.inputs[5], "int32"))
    case("conv multipliers int8", conv, "(multipliers) has type",
         lambda g, op: retype(g, op.inputs[4], "int8"))
    case("depthwise shifts int32", dw, "format version 1 stored int32",
         lambda g, op: retype(g, op.inputs[4], "int32"))
    case("fully connected shifts int32", fc, "format version 1 stored int32",
         lambda g, op: retype(g, op.inputs[5], "int32"))
    case("conv multipliers an activation", conv, "multipliers must be constant",
         lambda g, op: setattr(g.tensors[op.inputs[4]], "data", None))
    case("conv in place 3x3", next(k for k, op in enumerate(base.operators)
                                   if op.kind == "TT_CONV2D"
                                   and base.tensors[op.inputs[1]].shape[1] > 1),
         "in_place needs a 1x1", lambda g, op: options(op, in_place=True))
    case("conv output zero point beyond int8", conv, "zero points must be within",
         lambda g, op: setattr(g.tensors[op.outputs[0]].quant, "zero_point",
                               np.array([200], np.int64)))
    case("conv too few inputs", conv, "inputs and",
         lambda g, op: setattr(op, "inputs", op.inputs[:5]))
    case("depthwise multiplier 2", dw, "shapes do not match",
         lambda g, op: _widen_output(g, op))
    case("depthwise bias length", dw, "bias must have",
         lambda g, op: _shorten(g, op.inputs[2]))
    case("fully connected depth", fc, "do not match",
         lambda g, op: setattr(g.tensors[op.inputs[1]], "shape", (g.tensors[op.inputs[1]].shape[0], 3))
         or setattr(g.tensors[op.inputs[1]], "data", g.tensors[op.inputs[1]].data[:, :3]))
    case("fully connected filter_rest a variable", fc, "filter_rest must be constant",
         lambda g, op: _add_rest(g, op, variable=True))
    # TT_POINTWISE_DEPTHWISE
    base = streamed(expansion_graph(9, 8, 5, 12, 3, 2, 0, seed=0), strided_only=False)
    st = next(k for k, op in enumerate(base.operators) if op.kind == "TT_POINTWISE_DEPTHWISE")
    case("streamed dw_filter depth", st, "shapes do not match",
         lambda g, op: _shorten_last(g, op.inputs[5]))
    case("streamed pw_filter not 1x1", st, "pw_filter must be",
         lambda g, op: setattr(g.tensors[op.inputs[1]], "shape", (6, 2, 1, 5))
         or setattr(g.tensors[op.inputs[1]], "data", g.tensors[op.inputs[1]].data.reshape(
             6, 2, 1, 5)))
    case("streamed dw shifts short", st, "multipliers and shifts need",
         lambda g, op: _shorten(g, op.inputs[8]))
    case("streamed pw shifts int32", st, "format version 1 stored int32",
         lambda g, op: retype(g, op.inputs[4], "int32"))
    case("streamed option missing", st, "option 'mid_zero_point'",
         lambda g, op: options(op, mid_zero_point=None))
    case("streamed pw range", st, "act_min/act_max", lambda g, op: options(op, pw_act_min=9,
                                                                         pw_act_max=3))
    case("streamed batch 2", st, "batch 1 only", lambda g, op: _batch2(g, op))
    case("streamed too few inputs", st, "inputs and",
         lambda g, op: setattr(op, "inputs", op.inputs[:8]))
    return cases


def _shorten_last(g, t):
    g.tensors[t].data = g.tensors[t].data[..., :-1].copy()
    g.tensors[t].shape = g.tensors[t].data.shape


def _batch2(g, op):
    for t in (op.inputs[0], op.outputs[0]):
        g.tensors[t].shape = (2,) + g.tensors[t].shape[1:]


def _shorten(g, t):
    g.tensors[t].data = g.tensors[t].data[:-1].copy()
    g.tensors[t].shape = g.tensors[t].data.shape


def _widen_output(g, op):
    y = g.tensors[op.outputs[0]]
    y.shape = y.shape[:3] + (2 * y.shape[3],)


def _add_rest(g, op, variable):
    from tflite_train.ir import Tensor
    w = g.tensors[op.inputs[1]]
    rest = Tensor("rest", (w.shape[0], 1), "int8", w.quant,
                  data=None if variable else np.zeros((w.shape[0], 1), np.int8),
                  is_variable=variable)
    op.inputs[2] = g.add_tensor(rest)


# The bytes go to the wheel's TFLM as they are: TFLMInterpreter would validate them first
# (and refuse most of these in Python), while this test is about the glue's Prepare.
GLUE_CHILD = r"""
import sys, json
sys.path.insert(0, {tests!r})
from tflite_micro.python.tflite_micro import runtime
from tflite_train.runtime.tflm import captured_c_output
from tflite_train.runtime.tflm_engine import REGISTERER, glue_library
glue_library()
for path in sys.argv[1:]:
    with captured_c_output() as out:
        try:
            runtime.Interpreter.from_bytes(open(path, "rb").read(),
                                           custom_op_registerers=[REGISTERER],
                                           arena_size=64 << 20)
            status = "allocated"
        except RuntimeError:
            status = "refused"
    print(json.dumps({{"path": path, "status": status, "text": out["text"]}}), flush=True)
"""


def test_glue_prepare_refuses_broken_models_without_crashing(tmp_path):
    """Models whose TT_* forward op's tensors do not match it (types, shapes, missing or
    out-of-range options, requantization tensors) fail AllocateTensors with the glue's
    one-line message; the TFLM interpreter runs in a child process, so a crash would show
    as the child dying, not as a passing test."""
    cases = broken_models()
    paths = []
    for i, (what, data, _) in enumerate(cases):
        path = tmp_path / f"broken{i}.tflite"
        path.write_bytes(data)
        paths.append(str(path))
    code = GLUE_CHILD.format(tests=str(ROOT / "tests"))
    res = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    results = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases), res.stdout[-2000:]
    for (what, _, message), r in zip(cases, results):
        assert r["status"] == "refused", what
        ours = [line for line in r["text"].splitlines() if line.startswith("TT_")]
        assert ours and message in ours[0], (what, r["text"][-500:])
