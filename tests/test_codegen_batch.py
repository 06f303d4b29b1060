"""The batch (augment --batch B, /work/notes/s41/batch_contract.md) in the generated program:
every update op of batch B > 1 runs its gradient (the `grad` input, or a fused op's plain
gradient kernel into arena scratch), tt_batch_accumulate_f32 into a static accumulator, and
at each batch's end the update on the mean and tt_batch_end_f32. The host build of the
program against the numpy engine (the rig's case: against engine c), training Invoke by
training Invoke: the loss's bits and every checkpoint region (trained parameters, momentum,
the update states, and the accumulators once the checkpoint has them) after each one, then
an inference's scores. Seven or more Invokes: two whole batches of 3 and a partial one.
Mutations of the generated C (an update every Invoke; the accumulator never zeroed) must
differ; a batch-1 model's program has none of it."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from test_codegen import ratio_scheme, training_model
from tflite_train.autodiff import Hyper
from tflite_train.cli import main
from tflite_train.codegen import check, generate, host, rig
from tflite_train.demo import EXAMPLE
from tflite_train.runtime.numpy_exec import Executor

B = 3
STEPS = 8                     # batches 1 and 2 whole, batch 3 two Invokes in


def step_by_step(program, folder: Path, steps: int = STEPS, seed: int = 1) -> list[str]:
    """The program on the host and engine numpy, Invoke by Invoke: what differs (empty:
    the same bits throughout)."""
    xs, labels = check.samples(program, steps, seed=seed)
    h = host.HostProgram(folder, len(program.checkpoint_regions()))
    ex = Executor(program.graph, "numpy")
    names = [r.describe() for r, _ in program.checkpoint_regions()]
    for i, (x, label) in enumerate(zip(xs, labels)):
        got = h.train_step(x, label)
        want = np.float32(ex.invoke([x, np.array([label], np.int32)])[program.loss][0])
        if got.view(np.uint32) != want.view(np.uint32):
            return [f"Invoke {i + 1}: loss {got} != {want}"]
        diff = [name for name, a, b in zip(names, h.regions(), check.region_bytes(program, ex))
                if a != b]
        if diff:
            return [f"Invoke {i + 1}: {name} differs" for name in diff]
    scores = ex.invoke([xs[0], np.array([-1], np.int32)])[program.scores]
    if not np.array_equal(h.predict(xs[0], program.classes), np.ravel(scores)):
        return ["the inference's scores differ"]
    return []


CASES = [   # zoo model, scheme, gradients, momentum, fused updates
    ("mobile", "full", "float32", 0.5, True),
    ("mobile", "full", "int8", 0.0, True),
    ("mobile", "last:2", "float32", 0.0, False),
    ("mobile", "last:2", "int8", 0.9, False),
    ("depthwise", "bias-only", "int8", 0.9, True),
    ("branches", "full", "float32", 0.0, True),
    ("mean", "full", "int8", 0.5, False),
]


@pytest.mark.parametrize("name, scheme, grad, momentum, fuse", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-m{c[3]}-{'fused' if c[4] else 'separate'}"
                              for c in CASES])
def test_batched_programs_train_like_engine_numpy(name, scheme, grad, momentum, fuse, zoo,
                                                  tmp_path):
    # int8 gradients rounded stochastically (augment's default is nearest): the streams'
    # state is among the regions compared
    hyper = Hyper(grad=grad, momentum=momentum, batch=B, half_life=2, seed=5,
                  rounding="stochastic" if momentum else "nearest", grad_rounding="stochastic")
    model = training_model(tmp_path, zoo[name], scheme, hyper=hyper, fuse=fuse)
    program, _ = generate(model, tmp_path / "gen")
    assert program.batched and all(b.batch == B for b in program.batched.values())
    assert not step_by_step(program, tmp_path / "gen")
    text = (tmp_path / "gen" / "tt_model.c").read_text()
    assert text.count("tt_batch_accumulate_f32(") == len(program.batched)
    if fuse:   # the fused kernels give way to the plain gradient kernels
        assert not re.search(r"tt_\w+_update_s(8|32)\w*\(", text)


def test_split_filters_in_a_batch(tmp_path):
    """Filters trained on some input channels (their SRAM part) with fused updates and
    momentum, batch 3: the batch's update is tt_update_weight_s8 on the SRAM part."""
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25), (-2, 1)], n_bias=5)
    model = training_model(tmp_path, EXAMPLE, scheme,
                           hyper=Hyper(momentum=0.9, batch=B, decay_steps=4))
    program, _ = generate(model, tmp_path / "gen")
    assert len(program.splits) == 2
    assert not step_by_step(program, tmp_path / "gen", steps=7)


def _mutant(tmp_path: Path, program, mutate) -> list[str]:
    folder = tmp_path / f"mutant{len(list(tmp_path.glob('mutant*')))}"
    shutil.copytree(tmp_path / "gen", folder, ignore=shutil.ignore_patterns("build"))
    c = folder / "tt_model.c"
    text = mutate(c.read_text())
    assert text != c.read_text()
    c.write_text(text)
    return step_by_step(program, folder)


def test_mutations_of_the_batch_fail(tmp_path, zoo):
    """An update at every Invoke differs at the first; an accumulator never zeroed at the
    first batch's end (Invoke 3: the checkpoint's accumulator region; without it, the
    parameters at Invoke 6)."""
    model = training_model(tmp_path, zoo["mobile"], "last:2",
                           hyper=Hyper(momentum=0.9, batch=B, seed=5))
    program, _ = generate(model, tmp_path / "gen")
    assert not step_by_step(program, tmp_path / "gen")
    every = _mutant(tmp_path, program, lambda t: re.sub(
        r"if \((tt_batch_accumulate_f32\([^;]*\))\) \{", r"\1; if (1) {", t))
    assert every and every[0].startswith("Invoke 1:")
    kept = _mutant(tmp_path, program, lambda t: re.sub(
        r"tt_batch_end_f32\((\w+), (\d+)", r"tt_batch_end_f32(\1, 0", t))
    assert kept and kept[0].startswith("Invoke 3: accumulator")


def test_memory_report_counts_the_accumulators(tmp_path, zoo, capsys):
    from tflite_train.codegen import planned_sram
    from tflite_train import tflite_io
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(momentum=0.9, batch=B))
    program, _ = generate(model, tmp_path / "gen")
    g = program.graph
    acc = sum(g.tensors[a].nbytes for a in program.accumulators)
    assert acc == sum(g.tensors[m].nbytes for m in program.momentum) > 0
    header = (tmp_path / "gen" / "tt_model.h").read_text()
    assert f"#define TT_MODEL_ACCUMULATOR_BYTES {acc} " in header
    assert f"| {acc:,} | SRAM" in (tmp_path / "gen" / "README.md").read_text()
    planned = planned_sram(tflite_io.load(model), model.read_bytes())
    assert planned["accumulator_bytes"] == acc
    res = sum(g.tensors[r].nbytes for r in program.residuals)     # the head's, 1 B a weight
    assert planned["residual_bytes"] == res > 0
    assert f"| {res:,} | SRAM" in (tmp_path / "gen" / "README.md").read_text()
    assert planned["total_bytes"] == (planned["arena_bytes"] + planned["trained_parameter_bytes"]
                                      + planned["momentum_bytes"] + acc + res
                                      + planned["update_state_bytes"])
    assert main(["plan", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["codegen"]["accumulator_bytes"] == acc
    assert main(["plan", str(model)]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines()
                if t.startswith("generated program"))
    assert "+ accumulators" in line


def test_batch_1_programs_have_no_batch(tmp_path, zoo):
    model = training_model(tmp_path, zoo["mobile"], "full", hyper=Hyper(momentum=0.9))
    program, _ = generate(model, tmp_path / "gen")
    assert not program.batched
    text = (tmp_path / "gen" / "tt_model.c").read_text()
    assert "tt_batch_" not in text and not re.search(r"\btt_a\d", text)
    assert "ACCUMULATOR" not in (tmp_path / "gen" / "tt_model.h").read_text()


def test_a_batch_on_the_rig(tmp_path, capsys):
    """The example model, int8 gradients, split filters, momentum, stochastic rounding (of
    the updates and of the gradients) and batch 3, 7 training steps under QEMU:
    bit-identical to engine c (check.reference)."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25), (-2, 1)], n_bias=5)
    model = training_model(tmp_path, EXAMPLE, scheme,
                           hyper=Hyper(grad="int8", grad_rounding="stochastic", momentum=0.9,
                                       batch=B, half_life=3))
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--rig", "--steps", "7", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["identical_to_engine_c"] is True and m["differences"] == []
    assert m["planned"]["accumulators"] > 0


def test_checkpoint_mid_batch_resumes_the_same_bits(tmp_path):
    """tt_model_checkpoint holds the accumulators (kind 4): 4 steps (one into the second
    batch), the regions copied out, 3 more; tt_model_init, the regions back, the same 3: the
    same bytes (the int8 gradients' streams among them: rounded stochastically). Restored
    without the accumulators, the second batch's update differs."""
    from tflite_train import checkpoint
    import ctypes as C
    model = training_model(tmp_path, EXAMPLE, "last:2",
                           hyper=Hyper(momentum=0.9, batch=B, decay_steps=6,
                                       grad_rounding="stochastic"))
    program, _ = generate(model, tmp_path / "gen")
    kinds = [r.kind for r, _ in program.checkpoint_regions()]
    assert kinds.count(checkpoint.ACCUMULATOR) == len(program.batched) > 0
    assert "4u /* accumulator */" in (tmp_path / "gen" / "tt_model.c").read_text()
    xs, labels = check.samples(program, 7, seed=2)
    h = host.HostProgram(tmp_path / "gen", len(program.checkpoint_regions()))
    for i in range(4):
        h.train_step(xs[i], labels[i])
    saved = h.regions()
    straight = [h.train_step(xs[i], labels[i]) for i in (4, 5, 6)]
    after = h.regions()

    def resumed(skip_accumulators: bool):
        h.lib.tt_model_init()
        for region, data, kind in zip(h.table, saved, kinds):
            if not (skip_accumulators and kind == checkpoint.ACCUMULATOR):
                C.memmove(region.data, data, len(data))
        return [h.train_step(xs[i], labels[i]) for i in (4, 5, 6)], h.regions()
    assert resumed(False) == (straight, after)
    assert resumed(True)[1] != after


@pytest.mark.parametrize("grad, fuse", [("int8", True), ("float32", False)])
def test_a_batch_through_the_row_api(grad, fuse, tmp_path):
    """codegen --input rows on a batch-3 model (no test generated one before review24):
    tt_train_step_rows, 7 steps, then tt_predict_rows: losses, every checkpoint region
    (accumulators and update states included) and the scores == engine c; a reader failing
    mid-sample in the middle of a batch (after 4 steps) changes nothing, the step counter
    included, so the batch ends where it would have."""
    model = training_model(tmp_path, EXAMPLE, "last:4",
                           hyper=Hyper(grad=grad, momentum=0.5, batch=B, seed=4,
                                       decay_steps=5), fuse=fuse)
    program, _ = generate(model, tmp_path / "gen", input_rows=True)
    assert program.rows and program.batched
    xs, labels = check.samples(program, 7, seed=3)
    h = host.HostProgram(tmp_path / "gen", len(program.checkpoint_regions()))
    want = check.reference(program, xs, labels)
    assert not check.differences(program, want, h.run(xs, labels, program.classes, "rows"))
    h.lib.tt_model_init()
    for x, label in zip(xs[:4], labels[:4]):
        assert h.train_step_rows(host.RowReader(x), int(label))[0] == 0
    before = h.regions()
    reader = host.RowReader(xs[4], fail_at=program.rows.height // 2)
    assert h.train_step_rows(reader, int(labels[4])) == (3, 0.0)    # TT_MODEL_ERROR_INPUT
    assert h.regions() == before
    losses = [h.train_step_rows(host.RowReader(x), int(label))[1]
              for x, label in zip(xs[4:], labels[4:])]
    assert np.array(losses, np.float32).view(np.uint32).tolist() == want.losses[4:].tolist()
