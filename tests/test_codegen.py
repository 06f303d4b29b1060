"""`tflite-train codegen`: the generated C program trains exactly as `--engine c` does.

On the host: each generated folder is built with its own Makefile (`make shared`) and driven
through ctypes (codegen/host.py); on the Cortex-M7 rig: `--rig` builds it for QEMU's
mps2-an500 with the STM32F746's CPU and single-precision FPU and runs it there. Either way,
N training steps of seeded random samples must give --engine c's losses (float32 bits),
every checkpoint region (trained parameters, momentum, the update ops' random streams and
step counters) and the scores of an inference, bit for bit; on the rig the regions are
compared by their CRC-32, which the program computes.

Models: the zoo and the example model under several schemes (full with momentum and a
cosine decay, last:2 with separate gradient and update ops and nearest rounding, bias-only,
and a channel-ratio scheme whose filters are split between SRAM and flash), the person
detector (bias-only and its sparse scheme) and MCUNet-5FPS with the paper's 99kb scheme.
Also: the plan `plan` reports is the arena the program has; the kernels codegen adds
(split-filter input gradients, the row-streamed pointwise + depthwise pair) equal the
kernels they stand for; bad input and budget overflows are one-line errors that leave no
folder behind.
"""
from __future__ import annotations

import ctypes as C
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import session_cache

from conftest import ROOT, require_tool, shared_file, shared_model
from tflite_train import augment, memory, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.codegen import check, host, rig
from tflite_train.codegen import generate, load
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_forward, c_kernels
from tflite_train.runtime import kernel_calls as K

SCHEMES = ROOT / "benchmarks" / "schemes"


def training_model(tmp_path: Path, source, scheme: str, classes=4, hyper=None, fuse=True,
                   name="m") -> Path:
    """SOURCE augmented with SCHEME (a built-in name or a JSON file), written to
    tmp_path/NAME.train.tflite; once per session and inputs (session_cache)."""
    hyper = hyper or Hyper()

    def make(path):
        r = augment.augment(tflite_io.load(source), scheme, classes, hyper, fuse=fuse)
        tflite_io.save(r.graph, path)
    scheme_file = Path(scheme)
    key = ("training_model", Path(source).read_bytes(), scheme,
           scheme_file.read_bytes() if scheme_file.is_file() else None, classes, repr(hyper),
           fuse)
    return session_cache.model_file(tmp_path / f"{name}.train.tflite", key, make)


def ratio_scheme(tmp_path: Path, layers: list[tuple[int, float]], n_bias: int) -> str:
    path = tmp_path / "ratios.json"
    path.write_text(json.dumps({"n_bias_update": n_bias, "weight_update": [
        {"layer": k, "ratio": r} for k, r in layers]}))
    return str(path)


def host_run(model: Path, out: Path, steps: int = 3):
    """Generate, build for the host, train `steps` steps there and on --engine c."""
    program, _ = generate(model, out)
    xs, labels = check.samples(program, steps, seed=1)
    got = host.HostProgram(out, len(program.checkpoint_regions())).run(xs, labels,
                                                                        program.classes)
    return program, got, check.reference(program, xs, labels)


def assert_identical(program, got, want):
    assert not check.differences(program, want, got), check.differences(program, want, got)
    assert len(got.losses) and np.all(np.isfinite(got.loss_values()))


# --- the generated program on the host ----------------------------------------------------------

ZOO_CASES = [
    ("mobile", "full", Hyper(momentum=0.5, decay_steps=5, seed=3), True),
    ("mobile", "last:2", Hyper(rounding="nearest"), False),
    ("depthwise", "bias-only", Hyper(), True),
    ("branches", "full", Hyper(momentum=0.9), True),      # RESHAPE (a view), TRANSPOSE, pools
    ("pool", "last:2", Hyper(), True),
    ("mean", "full", Hyper(half_life=2), False),
    ("classifier_1x1", "bias-only", Hyper(), True),
    ("conv_per_tensor", "full", Hyper(), True),
]


@pytest.mark.parametrize("name, scheme, hyper, fuse", ZOO_CASES,
                         ids=[f"{c[0]}-{c[1]}-{'fused' if c[3] else 'separate'}"
                              for c in ZOO_CASES])
def test_zoo_programs_train_like_engine_c(name, scheme, hyper, fuse, zoo, tmp_path):
    model = training_model(tmp_path, zoo[name], scheme, hyper=hyper, fuse=fuse)
    assert_identical(*host_run(model, tmp_path / "gen"))


# int8 activation gradients (augment --grad int8): the int8 kernels' calls, their scale
# tensors, one- and two-pass input gradients with their int32 scratch in the arena, and the
# random streams of stochastic rounding in the checkpoint regions (asked for: augment rounds
# to nearest by default)
INT8_CASES = [
    ("mobile", "full", Hyper(grad="int8", grad_rounding="stochastic", momentum=0.5,
                             decay_steps=5, seed=3), True),
    ("mobile", "last:2", Hyper(grad="int8", grad_rounding="nearest"), False),
    ("depthwise", "bias-only", Hyper(grad="int8", grad_rounding="stochastic"), True),
    ("branches", "full", Hyper(grad="int8", grad_rounding="stochastic"), True),
    ("pool", "full", Hyper(grad="int8", grad_rounding="stochastic"), False),
    ("mean", "full", Hyper(grad="int8", grad_rounding="nearest"), True),
]


@pytest.mark.parametrize("name, scheme, hyper, fuse", INT8_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2].grad_rounding}-"
                              f"{'fused' if c[3] else 'separate'}" for c in INT8_CASES])
def test_int8_gradient_programs_train_like_engine_c(name, scheme, hyper, fuse, zoo, tmp_path):
    model = training_model(tmp_path, zoo[name], scheme, hyper=hyper, fuse=fuse)
    program, got, want = host_run(model, tmp_path / "gen")
    assert_identical(program, got, want)
    assert "_input_grad_s8(" in (tmp_path / "gen" / "tt_model.c").read_text()


STREAM_PROGRAMS = [("example", "last:2", "float32"), ("example", "bias-only:1", "int8"),
                   ("mobile", "bias-only:1", "float32"), ("mobile", "last:1", "int8")]


@pytest.mark.parametrize("name, scheme, grad", STREAM_PROGRAMS)
def test_streamed_blocks_train_like_engine_c(name, scheme, grad, zoo, tmp_path, monkeypatch):
    """Every three-layer stream the graph allows (codegen keeps only those its arena
    needs: here none would be), run by the generated program: bit-identical to --engine c."""
    from tflite_train.codegen import program as P
    model = training_model(tmp_path, EXAMPLE if name == "example" else zoo[name], scheme,
                           hyper=Hyper(grad=grad))
    monkeypatch.setattr(P, "choose_streams", lambda graph, outside: P.blocks(graph))
    program, got, want = host_run(model, tmp_path / "gen")
    assert program.streamed
    assert_identical(program, got, want)
    assert re.search(r"tt_conv_depthwise_pointwise_(packed_)?s8\(",
                     (tmp_path / "gen" / "tt_model.c").read_text())


def test_arena_limit_buys_one_pass_input_gradients(zoo, tmp_path, capsys):
    """codegen --arena-limit: int8 input gradients in one pass wherever the arena stays
    within the limit (by default the smallest arena decides: two passes where one would
    raise the arena of two passes everywhere with its DSP staging); the program computes
    the same bits either way."""
    from tflite_train.training_ops import options_of
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(grad="int8"))

    def passes(program):
        return [options_of(op)["passes"] for op in program.graph.operators
                if op.kind in memory.INPUT_GRADS]
    small, big = load(model), load(model, arena_limit=1 << 20)
    assert 2 in passes(small) and set(passes(big)) == {1}
    assert big.plan.arena_bytes > small.plan.arena_bytes
    limited = load(model, arena_limit=small.plan.arena_bytes + 1)   # room for none of them
    assert passes(limited) == passes(small)
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--arena-limit", "1M"]) == 0
    capsys.readouterr()
    program = load(model, arena_limit=1 << 20)
    xs, labels = check.samples(program, 3, seed=1)
    got = host.HostProgram(out, len(program.checkpoint_regions())).run(xs, labels,
                                                                        program.classes)
    assert f"TT_MODEL_ARENA_BYTES {big.plan.arena_bytes} " in (out / "tt_model.h").read_text()
    assert_identical(program, got, check.reference(program, xs, labels))


def test_two_pass_input_gradients_keep_what_the_free_arena_holds(zoo, tmp_path, monkeypatch):
    """The arena-aware split: at the smallest arena each two-pass int8 input gradient keeps,
    besides dx's quarter, as many positions' accumulators as a scratch fits that overlaps
    nothing alive at the operator, within the arena the program needs anyway (the same
    arena as without lending); the program trains bit for bit like --engine c."""
    from tflite_train.codegen import program as P
    from tflite_train.training_ops import options_of
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(grad="int8"))
    program = load(model)
    plan, g = program.plan, program.graph
    def positions(call):
        names = [p.name for p in call.signature.params]
        return call.args[names.index("scratch_positions")] if "scratch_positions" in names \
            else 0
    kept = {s.op: positions(s.call) for s in program.steps if s.call is not None
            and positions(s.call) > 0 and options_of(g.operators[s.op])["passes"] == 2}
    assert kept, "no two-pass input gradient kept anything"
    for k, positions in kept.items():
        dx = g.tensors[g.operators[k].outputs[0]]
        assert 0 < positions <= dx.size // dx.shape[-1] - dx.size // dx.shape[-1] // 4
        mine = [(off, b) for b, off in zip(plan.buffers, plan.offsets) if b.name.startswith(
            "kept@") and b.op == k]
        assert len(mine) == 1 and mine[0][1].size == 4 * dx.shape[-1] * positions
        lo, hi = mine[0][0], mine[0][0] + mine[0][1].size
        assert hi <= plan.arena_bytes
        for b, off in zip(plan.buffers, plan.offsets):
            for f, la, a, z in b.rects():
                if b is not mine[0][1] and f <= k + 1 <= la:
                    assert off + z <= lo or off + a >= hi, (k, b.name)
    xs, labels = check.samples(program, 3, seed=2)
    out = tmp_path / "gen"
    generate(model, out)
    assert "in free arena" in (out / "tt_model.c").read_text()
    got = host.HostProgram(out, len(program.checkpoint_regions())).run(xs, labels,
                                                                        program.classes)
    assert_identical(program, got, check.reference(program, xs, labels))
    monkeypatch.setattr(P, "lend_scratch", lambda graph, calls, plan, *limit: {})
    unlent = load(model)
    assert plan.arena_bytes == unlent.plan.arena_bytes
    assert not any(b.name.startswith("kept@") for b in unlent.plan.buffers)


def test_arena_limit_lends_two_pass_input_gradients_up_to_it(zoo, tmp_path, monkeypatch):
    """codegen --arena-limit above the smallest arena but short of one pass everywhere: the
    two-pass int8 input gradients keep more positions than the arena without the lent
    scratch holds, that scratch growing the arena up to the limit and never past it; the
    program trains bit for bit like --engine c."""
    from tflite_train.codegen import program as P
    from tflite_train.training_ops import options_of
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(grad="int8"))

    def kept(program):
        return sum(s.call.args[s.call.signature.index("scratch_positions")]
                   for s in program.steps if s.call is not None
                   and any(p.name == "scratch_positions" for p in s.call.signature.params)
                   and options_of(program.graph.operators[s.op])["passes"] == 2)
    lend = P.lend_scratch
    small = load(model)
    for grow in (256, 512, 1024, 2048):
        limit = small.plan.arena_bytes + grow
        program = load(model, arena_limit=limit)
        with monkeypatch.context() as m:     # the same passes, lending within the arena
            m.setattr(P, "lend_scratch", lambda graph, calls, plan, *_: lend(graph, calls, plan))
            within = load(model, arena_limit=limit)
        if kept(program) > kept(within):
            break
    else:
        pytest.fail("no limit up to 2 KB above the arena lent more")
    assert within.plan.arena_bytes < program.plan.arena_bytes <= limit
    out = tmp_path / "gen"
    generate(model, out, arena_limit=limit)
    xs, labels = check.samples(program, 3, seed=3)
    got = host.HostProgram(out, len(program.checkpoint_regions())).run(xs, labels,
                                                                        program.classes)
    assert_identical(program, got, check.reference(program, xs, labels))


def test_two_pass_lending_keeps_the_split_that_recomputes_less(zoo, tmp_path, monkeypatch):
    """The free arena is lent operator by operator twice, in operator order and with the
    operators whose dx elements sum the most terms first; the program keeps the split whose
    second passes compute fewer products again."""
    from tflite_train.codegen import program as P
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(grad="int8"))
    tries = []
    lend = memory.lend_free_arena

    def spy(plan, graph, wants, limit=0):
        got = lend(plan, graph, wants, limit)
        tries.append((list(wants), got))
        return got
    monkeypatch.setattr(memory, "lend_free_arena", spy)
    program = load(model)
    g = program.graph
    calls = {s.op: s.call for s in program.steps if s.call is not None
             and any(p.name == "scratch_positions" for p in s.call.signature.params)}
    terms = {k: P._terms(c) for k, c in calls.items()}
    assert len(tries) == 2 and tries[0][0] == sorted(tries[0][0])
    assert [terms[k] for k in tries[1][0]] == sorted((terms[k] for k in tries[1][0]),
                                                     reverse=True)

    def recomputed(lent):
        total = 0
        for k in tries[0][0]:
            dx = g.tensors[g.operators[k].outputs[0]]
            positions = dx.size // dx.shape[-1]
            total += (positions - positions // 4 - lent.get(k, 0)) * dx.shape[-1] * terms[k]
        return total
    kept = {k: c.args[c.signature.index("scratch_positions")] for k, c in calls.items()
            if k in tries[0][0] and c.args[c.signature.index("scratch_positions")] > 0}
    assert kept in (tries[0][1], tries[1][1])
    assert recomputed(kept) == min(recomputed(lent) for _, lent in tries)


@pytest.mark.parametrize("fuse, grad", [(True, "int8"), (False, "float32")])
def test_split_filters_train_like_engine_c(fuse, grad, tmp_path):
    """Filters of which only the first input channels train: those channels in SRAM, the
    rest in flash; the gradient flows on through them to trained biases before, in the
    split input-gradient kernel of its gradient type."""
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25), (-2, 1)], n_bias=5)
    model = training_model(tmp_path, EXAMPLE, scheme, hyper=Hyper(momentum=0.9, grad=grad),
                           fuse=fuse)
    program, got, want = host_run(model, tmp_path / "gen")
    assert len(program.splits) >= 2
    assert_identical(program, got, want)
    text = (tmp_path / "gen" / "tt_model.c").read_text()
    suffix = "_split_s8(" if grad == "int8" else "_split_f32("
    assert "tt_conv2d_split_s8" in text and f"_input_grad{suffix}" in text


@pytest.mark.parametrize("scheme, grad", [("bias-only", "float32"), ("sparse", "float32"),
                                          ("bias-only", "int8"), ("sparse", "int8")])
def test_person_detector_trains_like_engine_c(scheme, grad, tmp_path):
    """The README's person detector with a new 10-class head: bias-only (the gradient runs
    through every layer) and its sparse scheme (split filters, fused updates), with float32
    and int8 activation gradients."""
    spec = "bias-only" if scheme == "bias-only" else str(SCHEMES / "person_detect_sparse.json")
    model = training_model(tmp_path, shared_model("person_detect"), spec, classes=10,
                           hyper=Hyper(grad=grad))
    program, got, want = host_run(model, tmp_path / "gen")
    assert_identical(program, got, want)
    streamed = sum(s.call is not None and s.call.name in ("tt_pointwise_depthwise_s8",
                                                           "tt_pointwise_depthwise_packed_s8",
                                                           "tt_pointwise_depthwise_wide_s8")
                   for s in program.steps)
    # MobileNet v1's pointwise -> stride-2 depthwise pairs, where no mask is saved between
    assert streamed == (0 if scheme == "bias-only" else 3)


def mcunet(tmp_path: Path, grad: str = "float32") -> Path:
    pkl = shared_file("tiny-training", "mcunet-5fps.pkl")
    assert main(["import", str(pkl), "-o", str(tmp_path / "mc.tflite")]) == 0
    return training_model(tmp_path, tmp_path / "mc.tflite",
                          str(SCHEMES / "mcunet-5fps_99kb.json"), classes=10, name="mc",
                          hyper=Hyper(grad=grad))


@pytest.mark.parametrize("grad", ["float32", "int8"])
def test_mcunet_99kb_trains_like_engine_c(grad, tmp_path, capsys):
    model = mcunet(tmp_path, grad)
    capsys.readouterr()
    program, got, want = host_run(model, tmp_path / "gen", steps=2)
    assert_identical(program, got, want)
    assert len(program.splits) == 2                       # layers 36 (1/8) and 39 (1/4)
    assert program.plan.arena_bytes < 128 * 1024          # the 128 KB expansion is streamed
    if grad == "int8":
        text = (tmp_path / "gen" / "tt_model.c").read_text()
        assert "tt_conv2d_input_grad_split_s8(" in text
        assert_passes_chosen_by_the_programs_arena(model, program)
        # the stem, blocks.0's depthwise and projection streamed (the 64 KB stem output
        # never exists) over the sample: the peak is the sample + the stream's window
        assert program.streamed[0] == 1
        # its depthwise layer packed once (codegen.dw_pack): the pack fits under the peak
        assert "tt_conv_depthwise_pointwise_packed_s8(" in text
        from tflite_train.runtime.kernel_calls import Scratch
        window = next(a for a in program.steps[3].call.args if isinstance(a, Scratch))
        sample = program.graph.tensors[program.sample].nbytes
        # (the peak without the DSP staging, which fits into the room under it:
        # program.level_staging)
        from tflite_train.codegen import program as P
        peak = P._layout(program.graph, {program.label, program.loss}, program.streamed)[-1]
        assert peak.peak_op == 3
        assert peak.arena_bytes == program.plan.live[3] == sample + window.nbytes <= 52 * 1024
        # the streams' frozen 1x1 sides of more than 16 channels read pre-widened filters
        # (codegen.layouts): blocks.2's projection (48 -> 16), blocks.5's expansion (24 ->
        # 120); the 8- and 16-channel ones (column kernels) their row records instead
        # (layouts.records: here 16 -> 48, 12 words a row), the stem neither: two of its 16
        # channels requantize outside the assembly, which layouts.stem_wide's form trusts
        names = {s.call.name for s in program.steps if s.call is not None}
        assert {"tt_conv_depthwise_pointwise_wide_s8", "tt_pointwise_depthwise_wide_s8"} <= names
        # written as the packed streams, their layers' `wide` set (stream_args.c_function)
        assert "_wide_s8(" not in text.replace("tt_conv2d_wide_s8(", "")
        assert re.search(r"\.wide = [^0]", text)
        block = program.steps[9].call.args
        assert block[-2].shape == (48, 24) and block[-1].shape == (16, 48)
        # the stem's stream: its projection (16 -> 8) reads row records, the stem nothing
        stem = program.steps[3].call.args
        assert program.steps[3].call.name == "tt_conv_depthwise_pointwise_wide_s8"
        assert stem[-2] is None and stem[-1].shape == (8, 24)


def assert_passes_chosen_by_the_programs_arena(model: Path, program):
    """augment chose one pass or two for the int8 input gradients by TFLM's arena, which
    here would put a 60 KB int32 scratch at the program's peak; codegen chooses again by its
    own arena: that of two passes everywhere and the DSP staging fitted to it, with one pass
    wherever it costs nothing beside that staging."""
    from tflite_train.codegen import program as P
    from tflite_train.training_ops import options_of, set_option
    from tflite_train.passes.builtins import joined
    graph = P.hoist_bias_updates(joined(tflite_io.load(model)))
    outside = {graph.inputs[1], graph.outputs[1]}
    by_augment = P._layout(graph, outside, program.streamed)[-1].arena_bytes
    for op in graph.operators:
        if op.kind in memory.INPUT_GRADS:
            set_option(op, "passes", 2)
    two_passes = P._layout(graph, outside, program.streamed)[-1].arena_bytes
    chosen = [options_of(op)["passes"] for op in program.graph.operators
              if op.kind in memory.INPUT_GRADS]
    # the staging is fitted first, to two passes everywhere, into the room that arena has
    # (program.level_staging: it does not grow it); the passes chosen then keep that arena
    assert two_passes < by_augment
    stages = P.level_staging(graph, lambda g, s: P._layout(g, outside, program.streamed, False,
                                                           s)[-1], two_passes)
    staged = P._layout(graph, outside, program.streamed, False, stages)[-1].arena_bytes
    assert P._layout(program.graph, outside, program.streamed, False,
                     stages)[-1].arena_bytes == staged
    assert two_passes <= program.plan.arena_bytes <= staged
    assert 1 in chosen and 2 in chosen


def test_checkpoint_regions_resume_training(tmp_path):
    """tt_model_checkpoint is all the state: 2 steps, copy the regions out, 2 more steps;
    then tt_model_init, copy them back, the same 2 steps: the same bytes as straight on
    (the int8 gradients rounded stochastically: their streams are regions too)."""
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-2, 1)], n_bias=3)
    model = training_model(tmp_path, EXAMPLE, scheme,
                           hyper=Hyper(momentum=0.9, decay_steps=6, rounding="stochastic",
                                       grad_rounding="stochastic"))
    program, _ = generate(model, tmp_path / "gen")
    xs, labels = check.samples(program, 4, seed=2)
    h = host.HostProgram(tmp_path / "gen", len(program.checkpoint_regions()))
    for i in range(2):
        h.train_step(xs[i], labels[i])
    saved = h.regions()
    straight = [h.train_step(xs[i], labels[i]) for i in (2, 3)]
    after = h.regions()
    h.lib.tt_model_init()
    assert h.regions() != saved                           # init really reset them
    for region, data in zip(h.table, saved):
        C.memmove(region.data, data, len(data))
    resumed = [h.train_step(xs[i], labels[i]) for i in (2, 3)]
    assert resumed == straight and h.regions() == after


def test_device_checkpoint_of_a_generated_program_exports(tmp_path, capsys):
    """tt_checkpoint_save of tt_model_checkpoint (split filters: their SRAM part) in the
    program's own library, then `export --state` of that blob: the exported model holds
    --engine c's trained parameters, frozen channels included."""
    from checkpoint_helpers import Flash
    from tflite_train import checkpoint
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25)], n_bias=4)
    model = training_model(tmp_path, EXAMPLE, scheme, hyper=Hyper(momentum=0.9))
    program, _ = generate(model, tmp_path / "gen")
    assert len(program.splits) == 2
    xs, labels = check.samples(program, 3, seed=4)
    h = host.HostProgram(tmp_path / "gen", len(program.checkpoint_regions()))
    for x, label in zip(xs, labels):
        h.train_step(x, label)
    blob_bytes = checkpoint.blob_bytes([r for r, _ in program.checkpoint_regions()])
    flash = Flash(-(-blob_bytes // 256) * 256)
    h.lib.tt_checkpoint_save.argtypes = [C.c_void_p, C.c_uint64, C.c_void_p, C.c_int32,
                                         C.c_void_p]
    assert h.lib.tt_checkpoint_save(C.addressof(flash.struct), checkpoint.model_id(
        model.read_bytes()), C.addressof(h.table), len(h.table), None) == 0
    blob = tmp_path / "blob.bin"
    blob.write_bytes(flash.image[:blob_bytes])
    graph = tflite_io.load(model)
    ckpt = checkpoint.from_blob(blob.read_bytes(), graph, model.read_bytes())
    ex = c_kernels_executor(graph, xs, labels)
    for tensor, value in ckpt.parameters().items():
        assert np.array_equal(value, ex.variables[tensor]), graph.tensors[tensor].name
    assert main(["export", str(model), "--state", str(blob), "-o",
                 str(tmp_path / "tuned.tflite")]) == 0
    capsys.readouterr()


def c_kernels_executor(graph, xs, labels):
    from tflite_train.runtime.numpy_exec import Executor
    ex = Executor(graph, "c")
    for x, label in zip(xs, labels):
        ex.invoke([x, np.array([label], np.int32)])
    return ex


# --- the plan -----------------------------------------------------------------------------------

def test_plan_predicts_the_programs_arena(tmp_path, capsys):
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25)], n_bias=4)
    model = training_model(tmp_path, EXAMPLE, scheme)
    assert main(["plan", str(model), "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)["codegen"]
    program, _ = generate(model, tmp_path / "gen")
    header = (tmp_path / "gen" / "tt_model.h").read_text()
    assert f"#define TT_MODEL_ARENA_BYTES {planned['arena_bytes']} " in header
    subprocess.run(["make", "-s", "-C", str(tmp_path / "gen"), "shared"], check=True)
    nm = subprocess.run(["nm", "-S", str(tmp_path / "gen" / "build" / "libtt_model.so")],
                        capture_output=True, text=True, check=True).stdout
    size = next(int(line.split()[1], 16) for line in nm.splitlines()
                if line.endswith(" tt_arena"))
    assert size == planned["arena_bytes"] == program.plan.arena_bytes
    assert planned["trained_parameter_bytes"] == sum(program.param_bytes(v)
                                                     for _, v in program.params)


def test_aliasing_rules():
    """A view shares its input's bytes however long both live; an overwrite is granted only
    where nothing reads the input (or anything sharing its bytes) afterwards."""
    from tflite_train.ir import Graph, Operator, Tensor
    t = [Tensor(f"t{i}", (16,), "int8") for i in range(6)]
    ops = [Operator("RESHAPE", [0], [1]),       # 1 views 0
           Operator("ADD", [1, 1], [2]),        # 2 over 1? 0 and 1 are read again by op 3
           Operator("ADD", [0, 2], [3]),        # 3 over 2 (2 dies here)
           Operator("ADD", [3, 3], [4]),        # 4 over 3
           Operator("ADD", [4, 0], [5])]
    g = Graph(t, ops, [0], [5])
    requests = [memory.AliasRequest(0, 1, 0, view=True),
                memory.AliasRequest(1, 2, 1, view=False),
                memory.AliasRequest(2, 3, 2, view=False),
                memory.AliasRequest(3, 4, 3, view=False)]
    plan = memory.codegen_plan(g, set(range(6)), {}, requests)
    assert [r.op for r in plan.aliases] == [0, 2, 3] and [r.op for r in plan.refused] == [1]
    assert plan.offset_of(0) == plan.offset_of(1)
    assert plan.offset_of(2) == plan.offset_of(3) == plan.offset_of(4)
    assert plan.offset_of(2) != plan.offset_of(0)         # both alive at op 2
    assert plan.arena_bytes == 3 * 16                     # {0,1}, {2,3,4}, 5
    # an output that starts before its input (a row-by-row convolution): the group grows
    t = [Tensor("x", (40,), "int8"), Tensor("y", (64,), "int8"), Tensor("z", (8,), "int8")]
    g = Graph(t, [Operator("CONV_2D", [0], [1]), Operator("CONV_2D", [1], [2])], [0], [2])
    plan = memory.codegen_plan(g, {0, 1, 2}, {}, [memory.AliasRequest(0, 1, 0, view=False,
                                                                      shift=30)])
    assert plan.offset_of(0) - plan.offset_of(1) == 32      # the shift, in 4-byte units
    assert plan.arena_bytes == 32 + 40          # z fits where x was, after x is read


# --- the kernels codegen adds ------------------------------------------------------------------

def test_split_input_gradients_equal_whole_filter_ones():
    rng = np.random.default_rng(0)
    lib = c_kernels.library()
    n, h, wd, ci, co, kh, kw = 1, 7, 6, 10, 5, 3, 3
    win = c_kernels.Window(2, 1, 1, 2, 1, 2)
    oh, ow = 4, 5
    dy = rng.normal(size=(n, oh, ow, co)).astype(np.float32)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    w = rng.integers(-127, 128, (co, kh, kw, ci)).astype(np.int8)
    scales = rng.uniform(1e-3, 1e-2, co).astype(np.float32)
    p = lambda a, t: c_kernels._p(a, t)                              # noqa: E731
    whole = np.empty((n, h, wd, ci), np.float32)
    lib.tt_conv2d_input_grad_f32(p(dy, C.c_float), p(mask, C.c_uint8), n, oh, ow, co,
                                 p(w, C.c_int8), p(scales, C.c_float), kh, kw, C.byref(win),
                                 h, wd, ci, p(whole, C.c_float))
    for k in (1, 3, 8, ci):
        lo, hi = np.ascontiguousarray(w[..., :k]), np.ascontiguousarray(w[..., k:])
        split = np.empty_like(whole)
        lib.tt_conv2d_input_grad_split_f32(
            p(dy, C.c_float), p(mask, C.c_uint8), n, oh, ow, co, p(lo, C.c_int8), k,
            p(hi, C.c_int8) if k < ci else None, p(scales, C.c_float), kh, kw, C.byref(win),
            h, wd, ci, p(split, C.c_float))
        assert whole.tobytes() == split.tobytes(), k
    units, depth, b = 7, 12, 2
    dy = rng.normal(size=(b, units)).astype(np.float32)
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    scales = rng.uniform(1e-3, 1e-2, units).astype(np.float32)
    whole = np.empty((b, depth), np.float32)
    lib.tt_fully_connected_input_grad_f32(p(dy, C.c_float), None, b, units, p(w, C.c_int8),
                                          p(scales, C.c_float), depth, p(whole, C.c_float))
    for k in (1, 5, depth):
        lo, hi = np.ascontiguousarray(w[:, :k]), np.ascontiguousarray(w[:, k:])
        split = np.empty_like(whole)
        lib.tt_fully_connected_input_grad_split_f32(
            p(dy, C.c_float), None, b, units, p(lo, C.c_int8), k,
            p(hi, C.c_int8) if k < depth else None, p(scales, C.c_float), depth,
            p(split, C.c_float))
        assert whole.tobytes() == split.tobytes(), k


def test_split_int8_input_gradients_equal_whole_filter_ones():
    """Int8 gradients: the same dx bytes and scale, and the same random stream after, for
    splits inside and at the edges of the kernels' blocks of 8 channels, two passes and one
    (an int32 scratch), two passes keeping some or all of the accumulators in a scratch (the
    arena-aware split of codegen), stochastic and nearest rounding: all equal to the whole
    filter's two passes."""
    rng = np.random.default_rng(1)
    n, h, wd, ci, co, kh, kw = 1, 7, 6, 19, 6, 3, 3
    win = c_kernels.Window(2, 1, 1, 2, 1, 2)
    oh, ow = 4, 5
    dy = rng.integers(-127, 128, (n, oh, ow, co)).astype(np.int8)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8)
    w = rng.integers(-127, 128, (co, kh, kw, ci)).astype(np.int8)
    mult = rng.integers(1, 1 << 8, co).astype(np.int16)
    dy_scale = np.array([0.013], np.float32)
    units, depth, b = 7, 20, 2
    fdy = rng.integers(-127, 128, (b, units)).astype(np.int8)
    fw = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    fmult = rng.integers(1, 1 << 8, units).astype(np.int16)

    def run(kernel, head, tail, dx_shape, seed, kept):
        state = c_kernels.UpdateState()
        if seed is not None:
            K.host_call("tt_update_state_init", state, seed)
        dx, scale = np.zeros(dx_shape, np.int8), np.zeros(1, np.float32)
        scratch = np.zeros(kept * dx_shape[-1], np.int32) if kept else None
        K.host_call(kernel, *head, *tail, dx, scale, state if seed is not None else None,
                    scratch, kept)
        return dx.tobytes(), scale.tobytes(), bytes(state)

    for seed in (None, 7):
        tail = (mult, 1.5e-4, kh, kw, win, h, wd, ci)
        whole = run("tt_conv2d_input_grad_s8", (dy, dy_scale, mask, n, oh, ow, co, w), tail,
                    (n, h, wd, ci), seed, 0)
        assert np.count_nonzero(np.frombuffer(whole[0], np.int8)) > n * h * wd * ci // 2
        # positions kept besides dx's quarter (10 of 42): none, some, all but one, all
        for kept in (0, 1, 13, 31, 32, 41, n * h * wd):
            got = run("tt_conv2d_input_grad_s8", (dy, dy_scale, mask, n, oh, ow, co, w), tail,
                      (n, h, wd, ci), seed, kept)
            assert got == whole, (seed, kept)
            for k in (1, 5, 8, 11, 16, ci):
                lo, hi = np.ascontiguousarray(w[..., :k]), np.ascontiguousarray(w[..., k:])
                split = run("tt_conv2d_input_grad_split_s8",
                            (dy, dy_scale, mask, n, oh, ow, co, lo, k, hi if k < ci else None),
                            tail, (n, h, wd, ci), seed, kept)
                assert split == whole, (seed, kept, k)
        tail = (fmult, 2.5e-4, depth)
        whole = run("tt_fully_connected_input_grad_s8", (fdy, dy_scale, None, b, units, fw),
                    tail, (b, depth), seed, 0)
        for kept in (0, 1, b):
            for k in (3, 8, 13, depth):
                lo, hi = np.ascontiguousarray(fw[:, :k]), np.ascontiguousarray(fw[:, k:])
                split = run("tt_fully_connected_input_grad_split_s8",
                            (fdy, dy_scale, None, b, units, lo, k, hi if k < depth else None),
                            tail, (b, depth), seed, kept)
                assert split == whole, (seed, kept, k)


STREAM_CASES = [  # (h, w, ci, cm, kernel, stride, dilation, pad_top, pad_left)
    (16, 16, 8, 24, 3, 2, 1, 1, 1), (16, 16, 8, 24, 3, 2, 1, 0, 0), (15, 13, 5, 12, 3, 2, 1, 1, 1),
    (16, 16, 4, 8, 4, 2, 1, 1, 1), (16, 12, 4, 8, 8, 2, 1, 3, 3), (12, 12, 3, 6, 5, 2, 2, 4, 4),
    (9, 9, 4, 4, 3, 3, 1, 1, 1), (10, 10, 4, 8, 3, 1, 1, 1, 1), (7, 9, 2, 5, 7, 2, 1, 3, 3)]


@pytest.mark.parametrize("case", STREAM_CASES)
def test_streamed_pointwise_depthwise_equals_the_two_layers(case):
    h, w, ci, cm, kernel, stride, dilation, pad_top, pad_left = case
    rng = np.random.default_rng(sum(case))
    D, P = c_forward.Dims, c_forward.ConvParams
    pw = P(1, 1, 1, 1, 0, 0, 3, -128, -128, 127)
    dw = P(stride, stride, dilation, dilation, pad_top, pad_left, 128, -5, -128, 127)
    span = (kernel - 1) * dilation + 1
    oh = (h + 2 * pad_top - span) // stride + 1
    ow = (w + 2 * pad_left - span) // stride + 1
    x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
    pf = rng.integers(-127, 128, (cm, 1, 1, ci)).astype(np.int8)
    df = rng.integers(-127, 128, (1, kernel, kernel, cm)).astype(np.int8)
    pb, db = (rng.integers(-5000, 5000, cm).astype(np.int32) for _ in range(2))
    pm, dm = (rng.integers(1 << 30, (1 << 31) - 1, cm).astype(np.int32) for _ in range(2))
    ps, ds = (rng.integers(-9, -6, cm).astype(np.int8) for _ in range(2))
    mid = np.empty((1, h, w, cm), np.int8)
    want = np.empty((1, oh, ow, cm), np.int8)
    c_forward.call("tt_conv2d_s8", pw, pm, ps, D(*x.shape), x, D(*pf.shape), pf, pb,
                   D(*mid.shape), mid)
    c_forward.call("tt_depthwise_conv2d_s8", dw, dm, ds, D(*mid.shape), mid, D(*df.shape), df,
                   db, D(*want.shape), want)
    nbytes = K.host_call("tt_pointwise_depthwise_s8_window_bytes", dw, D(*mid.shape),
                         D(*df.shape), D(*want.shape))
    assert nbytes == min(span, h) * w * cm
    guard = 32
    buf = np.full(nbytes + 2 * guard, 55, np.int8)
    got = np.zeros_like(want)
    status = K.host_call("tt_pointwise_depthwise_s8", pw, pm, ps, D(*x.shape), x,
                         D(*pf.shape), pf, pb, dw, dm, ds, D(*mid.shape), D(*df.shape), df, db,
                         D(*want.shape), got, buf[guard:guard + nbytes])
    assert status == 0 and np.array_equal(got, want)
    assert (buf[:guard] == 55).all() and (buf[guard + nbytes:] == 55).all()
    # over its own input: the output starting tt_pointwise_depthwise_s8_shift bytes before it
    shift = K.host_call("tt_pointwise_depthwise_s8_shift", dw, D(*x.shape), D(*mid.shape),
                        D(*df.shape), D(*want.shape))
    assert 0 <= shift <= want.size
    size = max(want.size, shift + x.size)
    one = np.full(size + 2 * guard, 99, np.int8)
    one[guard + shift:guard + shift + x.size] = x.ravel()
    status = K.host_call("tt_pointwise_depthwise_s8", pw, pm, ps, D(*x.shape),
                         one[guard + shift:guard + shift + x.size], D(*pf.shape), pf, pb, dw,
                         dm, ds, D(*mid.shape), D(*df.shape), df, db, D(*want.shape),
                         one[guard:guard + want.size], buf[guard:guard + nbytes])
    assert status == 0 and np.array_equal(one[guard:guard + want.size], want.ravel())
    assert (one[:guard] == 99).all() and (one[guard + size:] == 99).all()


BLOCK_CASES = [  # (h, w, ci, cm, co, a_kernel, a_stride, a_pad, dw_kernel, dw_stride, dw_pad)
    (16, 16, 8, 24, 8, 1, 1, 0, 3, 1, 1), (16, 16, 8, 24, 12, 1, 1, 0, 3, 2, 1),
    (18, 18, 3, 16, 8, 4, 2, 1, 3, 1, 1), (17, 15, 4, 12, 6, 3, 2, 1, 5, 2, 2),
    (12, 12, 6, 18, 6, 1, 1, 0, 7, 1, 3), (9, 11, 3, 8, 16, 3, 1, 1, 3, 2, 0)]


@pytest.mark.parametrize("case", BLOCK_CASES)
def test_streamed_block_equals_the_three_layers(case):
    """tt_conv_depthwise_pointwise_packed_s8 without a pack (a convolution, depthwise, 1x1
    projection) == the three layers run whole, with its own window and over its own input
    at tt_conv_depthwise_pointwise_s8_shift."""
    h, w, ci, cm, co, ak, ast, apad, dk, dst, dpad = case
    rng = np.random.default_rng(sum(case))
    D, P = c_forward.Dims, c_forward.ConvParams
    a = P(ast, ast, 1, 1, apad, apad, 5, -128, -128, 127)
    dw = P(dst, dst, 1, 1, dpad, dpad, 128, -5, -128, 127)
    pw = P(1, 1, 1, 1, 0, 0, 5, 3, -128, 127)
    mh, mw = (h + 2 * apad - ak) // ast + 1, (w + 2 * apad - ak) // ast + 1
    oh, ow = (mh + 2 * dpad - dk) // dst + 1, (mw + 2 * dpad - dk) // dst + 1
    x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
    af = rng.integers(-127, 128, (cm, ak, ak, ci)).astype(np.int8)
    df = rng.integers(-127, 128, (1, dk, dk, cm)).astype(np.int8)
    pf = rng.integers(-127, 128, (co, 1, 1, cm)).astype(np.int8)
    ab, db = (rng.integers(-5000, 5000, cm).astype(np.int32) for _ in range(2))
    pb = rng.integers(-5000, 5000, co).astype(np.int32)
    am, dm = (rng.integers(1 << 30, (1 << 31) - 1, cm).astype(np.int32) for _ in range(2))
    pm = rng.integers(1 << 30, (1 << 31) - 1, co).astype(np.int32)
    as_, ds = (rng.integers(-9, -6, cm).astype(np.int8) for _ in range(2))
    ps = rng.integers(-9, -6, co).astype(np.int8)
    mid = np.empty((1, mh, mw, cm), np.int8)
    dout = np.empty((1, oh, ow, cm), np.int8)
    want = np.empty((1, oh, ow, co), np.int8)
    c_forward.call("tt_conv2d_s8", a, am, as_, D(*x.shape), x, D(*af.shape), af, ab,
                   D(*mid.shape), mid)
    c_forward.call("tt_depthwise_conv2d_s8", dw, dm, ds, D(*mid.shape), mid, D(*df.shape), df,
                   db, D(*dout.shape), dout)
    c_forward.call("tt_conv2d_s8", pw, pm, ps, D(*dout.shape), dout, D(*pf.shape), pf, pb,
                   D(*want.shape), want)
    nbytes = K.host_call("tt_conv_depthwise_pointwise_s8_window_bytes", dw, D(*mid.shape),
                         D(*df.shape), D(*dout.shape))
    assert nbytes == min(dk, mh) * mw * cm + ow * cm
    shift = K.host_call("tt_conv_depthwise_pointwise_s8_shift", a, D(*x.shape), D(*af.shape),
                        dw, D(*mid.shape), D(*df.shape), D(*want.shape))
    assert shift >= 0
    guard = 32
    win = np.full(nbytes + 2 * guard, 55, np.int8)
    for xo in (None, shift):            # separate buffers, then the output over the input
        if xo is None:
            buf = np.full(want.size + 2 * guard, 99, np.int8)
            xin, yo, size = x, 0, want.size
        else:
            size = max(want.size, xo + x.size)
            buf = np.full(size + 2 * guard, 99, np.int8)
            buf[guard + xo:guard + xo + x.size] = x.ravel()
            xin, yo = buf[guard + xo:guard + xo + x.size], 0
        status = K.host_call("tt_conv_depthwise_pointwise_packed_s8", a, am, as_, D(*x.shape), xin,
                             D(*af.shape), af, ab, dw, dm, ds, D(*mid.shape), D(*df.shape), df,
                             db, pw, pm, ps, D(*dout.shape), D(*pf.shape), pf, pb,
                             D(*want.shape), buf[guard + yo:guard + yo + want.size],
                             win[guard:guard + nbytes], None)
        assert status == 0, xo
        assert np.array_equal(buf[guard:guard + want.size], want.ravel()), xo
        assert (buf[:guard] == 99).all() and (buf[guard + size:] == 99).all()
        assert (win[:guard] == 55).all() and (win[guard + nbytes:] == 55).all()


def test_streamed_pointwise_depthwise_fits_over_its_input():
    """MCUNet's first stride-2 block (64x64x8 -> 64x64x32 -> 32x32x32): its output fits
    exactly over its input, shift 0."""
    D, P = c_forward.Dims, c_forward.ConvParams
    dw = P(2, 2, 1, 1, 1, 1, 0, 0, -128, 127)
    assert K.host_call("tt_pointwise_depthwise_s8_shift", dw, D(1, 64, 64, 8),
                       D(1, 64, 64, 32), D(1, 3, 3, 32), D(1, 32, 32, 32)) == 0


ROWS_CASES = [  # (h, w, ci, co, kernel, stride, pad_top, pad_left): stem, projection, ...
    (16, 16, 3, 16, 4, 2, 1, 1), (16, 16, 3, 8, 3, 2, 1, 1), (12, 12, 16, 8, 1, 1, 0, 0),
    (12, 10, 8, 24, 1, 1, 0, 0), (11, 9, 4, 6, 3, 1, 1, 1), (13, 13, 4, 4, 5, 2, 2, 2),
    (9, 9, 6, 6, 3, 1, 0, 0)]


def random_conv(case: tuple, dilation: int = 1) -> tuple:
    """A seeded int8 CONV_2D, case = (h, w, ci, co, kernel, stride, pad_top, pad_left), and
    its output by tt_conv2d_s8: (params, multiplier, shift, input, filter, bias, output)."""
    h, w, ci, co, kernel, stride, pad_top, pad_left = case
    rng = np.random.default_rng(sum(case))
    D = c_forward.Dims
    p = c_forward.ConvParams(stride, stride, dilation, dilation, pad_top, pad_left, 7, -3,
                             -128, 127)
    span = (kernel - 1) * dilation + 1
    oh = (h + 2 * pad_top - span) // stride + 1
    ow = (w + 2 * pad_left - span) // stride + 1
    x = rng.integers(-128, 128, (1, h, w, ci)).astype(np.int8)
    f = rng.integers(-127, 128, (co, kernel, kernel, ci)).astype(np.int8)
    bias = rng.integers(-5000, 5000, co).astype(np.int32)
    m = rng.integers(1 << 30, (1 << 31) - 1, co).astype(np.int32)
    sh = rng.integers(-10, -7, co).astype(np.int8)
    want = np.empty((1, oh, ow, co), np.int8)
    c_forward.call("tt_conv2d_s8", p, m, sh, D(*x.shape), x, D(*f.shape), f, bias,
                   D(*want.shape), want)
    return p, m, sh, x, f, bias, want


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("case", ROWS_CASES)
def test_row_by_row_convolution_over_its_own_input(case, reverse):
    """tt_conv2d_rows_s8 with its output starting tt_conv2d_rows_s8_shift bytes before its
    input in one buffer (tt_conv2d_rows_reverse_s8: tt_conv2d_rows_reverse_s8_lead bytes
    after it) == tt_conv2d_s8 on separate ones."""
    h, w, ci, co, kernel, stride, pad_top, pad_left = case
    D = c_forward.Dims
    p, m, sh, x, f, bias, want = random_conv(case)
    oh, ow = want.shape[1:3]
    name = "tt_conv2d_rows_reverse_s8" if reverse else "tt_conv2d_rows_s8"
    gap = K.host_call("tt_conv2d_rows_reverse_s8_lead" if reverse else "tt_conv2d_rows_s8_shift",
                      p, D(*x.shape), D(*f.shape), D(*want.shape))
    assert gap >= 0
    guard = 16

    def run(gap):
        xo, yo = (0, gap) if reverse else (gap, 0)      # offsets of input and output
        size = max(yo + want.size, xo + x.size)
        buf = np.full(size + 2 * guard, 99, np.int8)
        buf[guard + xo:guard + xo + x.size] = x.ravel()
        status = K.host_call(name, p, m, sh, D(*x.shape), buf[guard + xo:guard + xo + x.size],
                             D(*f.shape), f, bias, D(*want.shape),
                             buf[guard + yo:guard + yo + want.size])
        assert status == 0
        assert (buf[:guard] == 99).all() and (buf[guard + size:] == 99).all()
        return np.array_equal(buf[guard + yo:guard + yo + want.size], want.ravel())
    assert run(gap)
    in_row, out_row = w * ci, ow * co     # the header's bound, computed here too
    if reverse:
        ends = [min(h, oy * stride - pad_top + kernel) for oy in range(oh)]
        assert gap == max([0] + [r * in_row - oy * out_row for oy, r in enumerate(ends)])
    else:
        rows = [max(0, oy * stride - pad_top) for oy in range(oh)]
        assert gap == max([0] + [(oy + 1) * out_row - r * in_row
                                 for oy, r in enumerate(rows) if r < h])


INPLACE_GRAD_CASES = [  # (h, w, c, kernel, dilation, pad, mask)
    (8, 8, 16, 3, 1, 1, True), (8, 8, 12, 3, 1, 1, False), (7, 5, 8, 5, 1, 2, True),
    (6, 6, 8, 3, 2, 2, True), (9, 4, 4, 7, 1, 3, False), (1, 3, 8, 3, 1, 1, True)]


@pytest.mark.parametrize("case", INPLACE_GRAD_CASES)
def test_inplace_depthwise_input_gradient_equals_out_of_place(case):
    h, w, c, kernel, dilation, pad, use_mask = case
    rng = np.random.default_rng(sum(case))
    lib = c_kernels.library()
    fp, u8, i8 = C.c_float, C.c_uint8, C.c_int8
    p = lambda a, t: None if a is None else c_kernels._p(a, t)     # noqa: E731
    win = c_kernels.Window(1, 1, dilation, dilation, pad, pad)
    dy = rng.normal(size=(1, h, w, c)).astype(np.float32)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8) if use_mask else None
    wt = rng.integers(-127, 128, (1, kernel, kernel, c)).astype(np.int8)
    scales = rng.uniform(1e-3, 1e-2, c).astype(np.float32)
    want = np.empty_like(dy)
    lib.tt_depthwise_conv2d_input_grad_f32(p(dy, fp), p(mask, u8), 1, h, w, c, 1, p(wt, i8),
                                           p(scales, fp), kernel, kernel, C.byref(win), h, w,
                                           p(want, fp))
    nbytes = K.host_call("tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes", 1, h, w, c,
                         1, kernel, kernel, win, h, w, int(use_mask))
    assert nbytes == min(h, max(1, (kernel - 1) * dilation - pad + 1)) * w * c * 4
    data, scratch = dy.copy(), np.empty(nbytes // 4, np.float32)
    assert lib.tt_depthwise_conv2d_input_grad_inplace_f32(
        p(data, fp), p(mask, u8), 1, h, w, c, 1, p(wt, i8), p(scales, fp), kernel, kernel,
        C.byref(win), h, w, p(scratch, fp)) == 0
    assert data.tobytes() == want.tobytes()


# (h, w, c, kh, kw, dilation, pad_top, pad_left, mask, stochastic, kept positions)
OVER_GRAD_CASES = [
    (8, 8, 16, 3, 3, 1, 1, 1, True, True, 0), (7, 5, 5, 3, 3, 1, 1, 1, False, False, 11),
    (6, 7, 9, 5, 5, 1, 2, 2, True, True, 42), (6, 6, 8, 3, 3, 2, 2, 2, True, False, 0),
    (9, 4, 4, 7, 7, 1, 3, 3, False, True, 35), (1, 3, 8, 3, 3, 1, 1, 1, True, True, 0),
    (5, 6, 3, 3, 1, 1, 1, 0, False, True, 0),         # kh != kw
    (5, 5, 7, 3, 3, 1, 3, 3, True, True, 7)]          # pad > span: dx over dy, no lead


@pytest.mark.parametrize("case", OVER_GRAD_CASES)
def test_int8_depthwise_input_gradient_over_dy_equals_apart(case):
    """tt_depthwise_conv2d_input_grad_over_s8 with dx starting its lead before dy in one
    buffer (x86, portable walk; the DSP walk runs in the generated programs on the rig,
    test_int8_gradients_on_the_rig) gives the bytes, scale and random stream of
    tt_depthwise_conv2d_input_grad_s8 with them apart: masks, stochastic rounding, part of
    the accumulators kept in a scratch (the first pass writes nothing over dy), and the
    bytes before dx and after dy untouched."""
    h, w, c, kh, kw, dil, pt, pl, use_mask, stochastic, kept = case
    rng = np.random.default_rng(sum(case))
    lib = c_kernels.library()
    f32, u8, i8, i16, i32 = C.c_float, C.c_uint8, C.c_int8, C.c_int16, C.c_int32
    p = lambda a, t: None if a is None else c_kernels._p(a, t)     # noqa: E731
    win = c_kernels.Window(1, 1, dil, dil, pt, pl)
    dy = rng.integers(-128, 128, (1, h, w, c)).astype(np.int8)
    mask = rng.integers(0, 256, (dy.size + 7) // 8).astype(np.uint8) if use_mask else None
    wt = rng.integers(-128, 128, (1, kh, kw, c)).astype(np.int8)
    mult = rng.integers(1, 1 << 9, c).astype(np.int16)
    geometry = (1, h, w, c, 1, kh, kw, win, h, w)
    lead = int(K.host_call("tt_depthwise_conv2d_input_grad_over_s8_lead", *geometry))
    lag, lag_w = (kh - 1) * dil - pt, (kw - 1) * dil - pl
    assert lead == max(0, lag * w + lag_w + 1) * c

    def run(name, dy_p, dx_p):
        scale = np.zeros(1, np.float32)
        state = c_kernels.UpdateState(77, 3)
        scratch = np.zeros(max(kept, 1) * c, np.int32)
        getattr(lib, name)(dy_p, p(np.array([0.01], np.float32), f32), p(mask, u8), 1, h, w, c,
                           1, p(wt, i8), p(mult, i16), f32(0.003), kh, kw, C.byref(win), h, w,
                           dx_p, p(scale, f32), C.byref(state) if stochastic else None,
                           p(scratch, i32) if kept else None, kept, None, 0)
        return scale.tobytes(), bytes(state)

    want = np.zeros_like(dy)
    apart = run("tt_depthwise_conv2d_input_grad_s8", p(dy.copy(), i8), p(want, i8))
    guard = 12
    buf = rng.integers(-128, 128, guard + lead + dy.size + guard).astype(np.int8)
    fence = buf.copy()
    buf[guard + lead:guard + lead + dy.size] = dy.ravel()
    dx_at, dy_at = guard, guard + lead
    over = run("tt_depthwise_conv2d_input_grad_over_s8",
               C.cast(buf.ctypes.data + dy_at, C.POINTER(i8)),
               C.cast(buf.ctypes.data + dx_at, C.POINTER(i8)))
    assert over == apart
    assert buf[dx_at:dx_at + dy.size].tobytes() == want.tobytes()
    assert buf[:dx_at].tobytes() == fence[:dx_at].tobytes()
    end = dy_at + dy.size
    assert buf[end:].tobytes() == fence[end:].tobytes()


def test_int8_gradients_over_dy_only_where_the_arena_needs_them(tmp_path):
    """The smallest arena (no --arena-limit) takes the int8 depthwise gradient over its dy
    wherever it is granted; an arena limit that the program fits without it takes none
    (the form keeps no accumulators in dx: more computed twice)."""
    from tflite_train.codegen import program as P
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25), (-2, 1)], n_bias=5)
    model = training_model(tmp_path, EXAMPLE, scheme, hyper=Hyper(grad="int8"))
    names = lambda p: {s.call.name for s in p.steps if s.call is not None}   # noqa: E731
    smallest = load(model)
    assert P.OVER_DY & names(smallest)
    roomy = load(model, arena_limit=smallest.plan.arena_bytes + 64 * 1024)
    assert not P.OVER_DY & names(roomy)
    assert "tt_depthwise_conv2d_input_grad_s8" in names(roomy)


def test_int8_depthwise_input_gradient_over_dy_refuses_what_it_cannot_do():
    win, strided = c_kernels.Window(1, 1, 1, 1, 1, 1), c_kernels.Window(2, 2, 1, 1, 1, 1)
    lead = lambda *a: K.host_call(                                 # noqa: E731
        "tt_depthwise_conv2d_input_grad_over_s8_lead", *a)
    assert lead(1, 8, 8, 8, 1, 3, 3, win, 8, 8) == (8 + 1 + 1) * 8
    assert lead(1, 8, 8, 8, 2, 3, 3, win, 8, 8) == -1            # depth multiplier
    # stride 2 is taken (dy in dx's tail: 48 of dx's 64 positions before it; the count
    # against a brute-force one in tests/test_cortex_m7_over_dy.py)
    assert lead(1, 4, 4, 8, 1, 3, 3, strided, 8, 8) == 48 * 8
    assert lead(1, 8, 8, 8, 1, 3, 3, win, 8, 9) == -1            # dx not dy's shape


def test_inplace_depthwise_input_gradient_refuses_what_it_cannot_do():
    win, strided = c_kernels.Window(1, 1, 1, 1, 1, 1), c_kernels.Window(2, 2, 1, 1, 1, 1)
    size = lambda *a: K.host_call(                                 # noqa: E731
        "tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes", *a)
    assert size(1, 8, 8, 8, 1, 3, 3, win, 8, 8, 1) > 0
    assert size(2, 8, 8, 8, 1, 3, 3, win, 8, 8, 1) == 0          # batch
    assert size(1, 8, 8, 8, 2, 3, 3, win, 8, 8, 1) == 0          # depth multiplier
    assert size(1, 4, 4, 8, 1, 3, 3, strided, 8, 8, 1) == 0      # stride
    assert size(1, 8, 3, 5, 1, 3, 3, win, 8, 3, 1) == 0          # mask rows not on a byte
    assert size(1, 8, 3, 5, 1, 3, 3, win, 8, 3, 0) > 0


# --- the folder and the CLI --------------------------------------------------------------------

def test_folder_builds_with_make_and_cmake(tmp_path, capsys):
    model = training_model(tmp_path, EXAMPLE, "last:2")
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out)]) == 0
    assert "tt_model.c" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"tt_model.c", "tt_model.h", "Makefile", "CMakeLists.txt", "README.md"} <= names
    subprocess.run(["make", "-s", "-C", str(out), "CFLAGS=-std=c99 -O1 -Wall -Wextra -Werror"],
                   check=True)
    assert (out / "build" / "libtt_model.a").exists()
    require_tool(bool(shutil.which("cmake")), "cmake")
    build = tmp_path / "cmake"
    subprocess.run(["cmake", "-S", str(out), "-B", str(build), "-DCMAKE_C_FLAGS=-Werror"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    assert list(build.glob("libtt_model.a"))


def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path, capsys, zoo):
    out = tmp_path / "gen"
    float_model = training_model(tmp_path, zoo["float_io"], "bias-only", name="float")
    for argv in (["codegen", str(zoo["mobile"]), "-o", str(out)],              # not training
                 ["codegen", str(float_model), "-o", str(out)],               # float input
                 ["codegen", str(tmp_path / "missing.tflite"), "-o", str(out)],
                 ["codegen", str(float_model), "-o", str(out), "--steps", "2"]):
        assert main(argv) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith("tflite-train: error: ") and err.count("\n") == 1, err
        assert not out.exists()
    # an earlier codegen folder is replaced; any other folder is not touched
    model = training_model(tmp_path, EXAMPLE, "bias-only")
    assert main(["codegen", str(model), "-o", str(out)]) == 0
    assert main(["codegen", str(model), "-o", str(out)]) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["codegen", str(model), "-o", str(other)]) == EXIT_ERROR
    assert (other / "keep.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp folders


# --- on the Cortex-M7 rig ----------------------------------------------------------------------

def test_mcunet_on_the_rig(tmp_path, capsys):
    """MCUNet-5FPS with the paper's 99kb scheme (split filters, fused updates, in-place,
    row-by-row and streamed layers, in-place input gradients) built for the STM32F746's CPU
    and FPU, 2 steps under QEMU: bit-identical to --engine c; SRAM, flash and instructions
    measured as parts, within the board's budgets."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    model = mcunet(tmp_path)
    capsys.readouterr()
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "2", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["identical_to_engine_c"] is True and m["differences"] == []
    s, f = m["sram_bytes"], m["flash_bytes"]
    program = load(model)
    assert s["arena"] == program.plan.arena_bytes == m["planned"]["arena"]
    assert s["data_bss"] >= m["planned"]["trained_parameters"]
    assert 0 < s["stack"] < 8192 and s["total"] == s["arena"] + s["data_bss"] + s["stack"]
    assert s["total"] <= 256 * 1024 and f["total"] <= 1024 * 1024
    # the code bound guards against growth by accident: 107,528 B since round 17 (its
    # one call for many depthwise group rows and two pairs a loop, the masked bias sums'
    # 2 KB table of mask bytes, the DSP element-wise gradients and ADD), 109,304 B with the
    # head's rounding residual (round 27: its update rule and kernels, tt_param_grad.o
    # 14,656 -> 15,252 B of text at -O2), 111,000 B after round 28 (fwd28's leaner forward
    # rows and columns, +1,360 B in tt_fwd_dsp.o; shift8's int8 shift loads), 112,872 B
    # after round 30 (its gradient kernels' assembly walks and the forward's tt_dsp_colk and
    # tt_dsp_gemv4, +5.6 KB of .text across the kernels, not all of it linked here); the
    # board's flash budget is 1 MB
    assert f["model"] > 500_000 and 0 < f["code"] < 114_000
    assert len(m["losses"]) == 2 and len(m["instructions_each_step"]) == 2
    # MCUNet's inference: about 150 M instructions with portable forward kernels, 39.5 M
    # with the Cortex-M7's DSP versions (fwd-dw and fwd-pw, benchmarks/RESULTS.md), 29.9 M
    # since round 31 (cg31: the one-shift records in flash): a floor well below that,
    # against a count that missed the kernels
    assert m["instructions_per_step"] > m["instructions_per_inference"] > 25_000_000
    assert (out / "build" / "rig.elf").exists()
    text = (out / "tt_model.c").read_text()           # the kernels codegen adds ran there too
    for kernel in ("tt_conv2d_split_s8", "tt_conv2d_input_grad_split_f32",
                   "tt_pointwise_depthwise_packed_s8", "tt_conv2d_rows_s8",
                   "tt_depthwise_conv2d_input_grad_inplace_f32", "tt_depthwise_conv2d_inplace_s8"):
        assert f"{kernel}(" in text, kernel


def test_int8_gradients_on_the_rig(tmp_path, capsys):
    """The example model with int8 activation gradients, split filters (the int8 split input
    gradients) and stochastic rounding, 3 steps under QEMU: bit-identical to --engine c."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25), (-2, 1)], n_bias=5)
    model = training_model(tmp_path, EXAMPLE, scheme,
                           hyper=Hyper(grad="int8", grad_rounding="stochastic", momentum=0.9))
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "3", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["identical_to_engine_c"] is True and m["differences"] == []
    text = (out / "tt_model.c").read_text()
    for kernel in ("tt_conv2d_input_grad_split_s8", "tt_conv2d_weight_update_s8_s8",
                   "tt_depthwise_conv2d_input_grad_s8", "tt_loss_softmax_ce_s8_s8",
                   "tt_depthwise_conv2d_input_grad_over_s8"):    # dx over dy, DSP walk
        assert f"{kernel}(" in text, kernel


def test_streamed_block_and_profile_on_the_rig(tmp_path, capsys, monkeypatch):
    """The example's stem, depthwise and projection as one stream (forced: its arena does
    not need it), int8 gradients, 2 steps under QEMU: bit-identical to --engine c; and the
    per-operator profile of the same run: every operator that calls a kernel has its
    instructions, and they add up to the step's."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.codegen import program as P, project
    model = training_model(tmp_path, EXAMPLE, "bias-only:1", hyper=Hyper(grad="int8"))
    monkeypatch.setattr(P, "choose_streams", lambda graph, outside: P.blocks(graph))
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "2", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["identical_to_engine_c"] is True and m["differences"] == []
    assert re.search(r"tt_conv_depthwise_pointwise_(packed_)?s8\(",
                     (out / "tt_model.c").read_text())
    program = load(model)
    xs, labels = check.samples(program, 2, 0, None)
    project.write_files(out, project.rig_files(program, xs, labels))
    prof = rig.profile(program, out, xs, labels, "dsp")
    assert prof.identical_to_engine_c is True
    ran = {s.op for s in program.steps if s.call is not None}
    assert set(prof.step) <= ran and set(prof.inference) <= ran
    assert {s.op for s in program.steps if s.call is not None and not s.training} <= \
        set(prof.inference)
    inside = sum(prof.step.values())
    # the rest: the sample's copy and the run's own code, a few thousand instructions
    assert 0 <= prof.instructions_per_step - inside < 0.02 * prof.instructions_per_step
    assert prof.instructions_per_step == pytest.approx(m["instructions_per_step"], rel=0.02)


@pytest.mark.parametrize("scheme, rounding", [("bias-only", "stochastic"), ("sparse", "nearest")])
def test_person_detector_int8_200_steps_on_the_rig(scheme, rounding, tmp_path, capsys):
    """Issue 9's check on the board's CPU: the person detector with int8 activation
    gradients as `augment --grad int8` writes them, rounded stochastically on bias-only
    (whose gradients reach every layer: every stochastic kernel path) and to nearest,
    augment's default, on the sparse scheme, 200 training steps
    of the generated program under QEMU, bit-identical to --engine c (every loss, the CRC-32
    of every trained parameter and random stream, the scores); --engine c equals numpy and
    TFLM on 200 steps (test_int8_grads). The 200 samples (1.8 MB) are the rig harness's, in
    the rig's 4 MiB of flash; the program itself stays within the board's budgets."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    spec = "bias-only" if scheme == "bias-only" else str(SCHEMES / "person_detect_sparse.json")
    model = tmp_path / "pd.train.tflite"
    assert main(["augment", str(shared_model("person_detect")), "-o", str(model),
                 "--num-classes", "10", "--scheme", spec, "--grad", "int8",
                 "--grad-rounding", rounding]) == 0
    capsys.readouterr()
    assert main(["codegen", str(model), "-o", str(tmp_path / "gen"), "--rig", "--steps", "200",
                 "--flash-budget", "4M", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["identical_to_engine_c"] is True and m["differences"] == []
    assert len(m["losses"]) == 200
    assert m["sram_bytes"]["total"] <= 256 * 1024 and m["flash_bytes"]["total"] <= 1024 * 1024


SPIN = r"""
#include <stdint.h>
void tt_rig_print(const char *text);
void tt_rig_ticks64_start(void);
uint64_t tt_rig_ticks64(void);
static void spin(uint32_t n) { __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n)); }
static void put(uint64_t v) {
  char buf[24]; int i = 23; buf[i] = 0;
  do { buf[--i] = (char)('0' + (int)(v % 10u)); v /= 10u; } while (v);
  tt_rig_print(buf + i); tt_rig_print("\n");
}
int main(void) {
  tt_rig_ticks64_start();
  uint64_t t0 = tt_rig_ticks64();
  spin(1000000u);
  uint64_t t1 = tt_rig_ticks64();
  spin(360000000u);
  uint64_t t2 = tt_rig_ticks64();
  put(t1 - t0); put(t2 - t1);
  return 0;
}
"""


def test_rig_ticks_count_the_counters_wraps(tmp_path):
    """A loop of 2 instructions an iteration, 360 M iterations: 18 M SysTick ticks, past the
    24-bit counter's 16.8 M; the wraps counted in its interrupt make it whole."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.codegen.project import BOARD_CPU
    from tflite_train.runtime.build import MICRO_KERNELS
    (tmp_path / "spin.c").write_text(SPIN)
    elf = tmp_path / "spin.elf"
    rig_dir = MICRO_KERNELS / "targets" / "mps2_an500"
    subprocess.run(["arm-none-eabi-gcc", *BOARD_CPU.split(), "-O2", "-nostartfiles",
                    "--specs=nano.specs", "--specs=nosys.specs", "-T", str(rig_dir / "link.ld"),
                    str(rig_dir / "startup.c"), str(tmp_path / "spin.c"), "-o", str(elf)],
                   check=True)
    out = rig.run_qemu_raw(elf, timeout=120)
    short, long = (int(v) for v in out.split()[:2])
    assert abs(short * 40 - 2_000_000) < 400
    assert long > 1 << 24 and abs(long * 40 - 720_000_000) < 400


def test_budget_overflow_says_by_how_much_and_what_is_live(tmp_path, capsys):
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    model = training_model(tmp_path, EXAMPLE, "full")
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "1",
                 "--sram-budget", "8K"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SRAM budget exceeded by" in err
    assert "most alive at operator" in err and "trained parameters" in err
    assert not out.exists()
    assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "1",
                 "--flash-budget", "16K"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "flash budget exceeded by" in err and not out.exists()
