"""A small generated program whose first two streams are chained (`codegen --input rows`:
tt_conv_depthwise_pointwise_chain_source_s8 reads the sample row by row), trained with the
default rule (QAS, stochastic rounding, no momentum) and int8 gradients: the paths of a
generated program no other test runs, on x86 and on the Cortex-M7 rig.

  - A reader that gives up at the first, the middle or the last row, inside the chain:
    tt_train_step_rows and tt_predict_rows return TT_MODEL_ERROR_INPUT, no row is asked for
    after the failure, nothing is trained (every checkpoint region as it was), the loss
    reported is 0 (never a partial one) and the scores are not written; the steps after it train as if it had never happened.
  - A chain that refuses its arguments (the second stream's projection made strided in the
    generated C): both APIs return TT_MODEL_ERROR_KERNEL before any row is read, nothing
    trained.
  - The fused pointwise weight update with the default rule (tt_dsp_pointwise_weight_update_run,
    from the sums' registers) inside the program on the rig, from the int16 staging whole and
    in chunks (where the arena's staging is cut below the int16 level) and both ends of a
    layer's channels (whole blocks of eight only, and a partial last block): the rig's
    harness counts the channels its runs take, of each kind. Bit-identical to --engine c (losses, regions,
    scores).

The model is built here (test_c_forward.Builder, no converter): a stem, depthwise and
projection, a 1x1 expansion, stride-2 depthwise and projection (the two chained streams),
four 1x1 layers of 8, 12, 16 and 12 input channels (the trained ones), a mean and the
classifier augment replaces.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import ROOT, require_tool
from test_c_forward import Builder
from test_checkpoint import rig_phases
from test_codegen import assert_identical, training_model
from tflite_train import tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.codegen import check, generate, host, rig
from tflite_train.runtime import kernel_calls as K
from tflite_train.runtime.build import MICRO_KERNELS

RIG_MAIN = ROOT / "tests" / "codegen_rows_rig.c"
RELU6 = 3
ERROR_KERNEL, ERROR_INPUT = 2, 3     # TT_MODEL_ERROR_KERNEL, TT_MODEL_ERROR_INPUT
STEPS = 3


def chain_model(path):
    b = Builder(7)
    x = b.act((1, 16, 16, 3), 0.02, -1)
    y = b.conv(x, "CONV_2D", (1, 8, 8, 8), (3, 3), stride=2, activation=RELU6)
    y = b.conv(y, "DEPTHWISE_CONV_2D", (1, 8, 8, 8), (3, 3), activation=RELU6)
    y = b.conv(y, "CONV_2D", (1, 8, 8, 8), (1, 1))
    y = b.conv(y, "CONV_2D", (1, 8, 8, 12), (1, 1), activation=RELU6)
    y = b.conv(y, "DEPTHWISE_CONV_2D", (1, 4, 4, 12), (3, 3), stride=2, activation=RELU6)
    y = b.conv(y, "CONV_2D", (1, 4, 4, 8), (1, 1))
    for c in (12, 16, 12, 8):
        y = b.conv(y, "CONV_2D", (1, 4, 4, c), (1, 1), activation=RELU6)
    m = b.act((1, 8), 0.08, 5)
    b.op("MEAN", [y, b.const(np.array([1, 2], np.int32))], [m], "ReducerOptions",
         keep_dims=False)
    w, ws = b.weights((4, 8), 4, 0, True)
    o = b.act((1, 4), 0.1, 0)
    b.op("FULLY_CONNECTED", [m, w, b.bias(4, 0.08, ws)], [o], "FullyConnectedOptions",
         fused_activation_function=0)
    s = b.act((1, 4), 1 / 256, -128)
    b.op("SOFTMAX", [o], [s], "SoftmaxOptions", beta=1.0)
    tflite_io.save(b.graph([x], [s], "chain"), path)
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """(program, folder): the chain (both streams forced: this arena does not need them) and
    the two last-run pointwise updates' arena staging cut to 3/4 of their int16 level, which
    leaves them the chunked path."""
    from tflite_train.codegen import program as P
    tmp = tmp_path_factory.mktemp("chain")
    model = training_model(tmp, chain_model(tmp / "chain.tflite"), "last:4",
                           hyper=Hyper(grad="int8"))
    level = P.level_staging

    def below_int16_for_two(graph, arena_of, *args, **kwargs):
        stages = level(graph, arena_of, *args, **kwargs)
        for k in sorted(stages)[:2]:            # the backward's first two: the last layers
            stages[k] = stages[k] * 3 // 4
        return stages
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "choose_streams", lambda graph, outside: P.blocks(graph))
        mp.setattr(P, "level_staging", below_int16_for_two)
        # (the cut stagings kept: not widened into the free arena again)
        mp.setattr(P, "widen_staging", lambda graph, calls, plan: {})
        program, _ = generate(model, tmp / "gen", input_rows=True)
    text = (tmp / "gen" / "tt_model.c").read_text()
    assert "tt_conv_depthwise_pointwise_chain_source_s8(" in text
    assert not program.momentum
    return program, tmp / "gen"


def test_a_reader_failing_inside_the_chain_on_x86(generated):
    program, out = generated
    h = host.HostProgram(out, len(program.checkpoint_regions()))
    xs, labels = check.samples(program, STEPS, seed=6)
    before = h.regions()
    rows = program.rows.height
    for fail_at in (0, rows // 2, rows - 1):
        reader = host.RowReader(xs[0], fail_at=fail_at)
        status, loss = h.train_step_rows(reader, int(labels[0]))
        # a failed step reports a loss of 0, never a partial one
        assert status == ERROR_INPUT and loss == 0.0, (fail_at, status, loss)
        assert reader.asked == list(range(fail_at + 1)), fail_at
        assert h.regions() == before
        reader = host.RowReader(xs[0], fail_at=fail_at)
        scores = np.full(program.classes, 0x5A, np.int8)
        assert h.lib.tt_predict_rows(reader.fn, None, scores.ctypes.data) == ERROR_INPUT
        assert reader.asked == list(range(fail_at + 1)) and np.all(scores == 0x5A)
    assert_identical(program, h.run(xs, labels, program.classes, "rows"),
                     check.reference(program, xs, labels))


def test_a_refused_chain_reaches_the_caller_on_x86(generated, tmp_path):
    program, out = generated
    folder = tmp_path / "refused"
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("build", "rig"))
    text = (folder / "tt_model.c").read_text()
    call = re.search(r"status = tt_conv_depthwise_pointwise_chain_source_s8\((.*)\);", text)
    args = call.group(1).split(", ")
    names = [p.name for p in K.c_signatures()["tt_conv_depthwise_pointwise_chain_s8"].params]
    assert len(args) == len(names)
    # the second stream's projection (its tt_stream_layer's params) strided
    layer = args[names.index("b_pw")].lstrip("&")
    text, n = re.subn(rf"(static const tt_stream_layer {layer} = {{\.params = )[^,]+", r"\1&tt_refused",
                      text)
    assert n == 1
    text = text.replace("static int run(", "static const tt_fwd_conv_params tt_refused = "
                        "{2, 2, 1, 1, 0, 0, 0, 0, -128, 127};   /* strided */\n\n"
                        "static int run(", 1)
    (folder / "tt_model.c").write_text(text)
    h = host.HostProgram(folder, len(program.checkpoint_regions()))
    xs, labels = check.samples(program, 1, seed=6)
    before = h.regions()
    reader = host.RowReader(xs[0])
    assert h.train_step_rows(reader, int(labels[0]))[0] == ERROR_KERNEL and reader.asked == []
    assert h.lib.tt_train_step(xs[0].ctypes.data, int(labels[0]), None) == ERROR_KERNEL
    scores = np.full(program.classes, 0x5A, np.int8)
    assert h.lib.tt_predict(xs[0].ctypes.data, scores.ctypes.data) == ERROR_KERNEL
    assert h.predict_rows(host.RowReader(xs[0]), program.classes)[0] == ERROR_KERNEL
    assert h.regions() == before and np.all(scores == 0x5A)


def test_a_failing_reader_and_the_default_rule_on_the_cortex_m7(generated):
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.codegen.project import rig_files, write_files
    program, out = generated
    xs, labels = check.samples(program, STEPS, seed=6)
    write_files(out, rig_files(program, xs, labels, "rows"))
    (out / "rig" / "rig_main.c").write_text(RIG_MAIN.read_text())
    res = rig._make(out, rig.SRAM_BUDGET, rig.FLASH_BUDGET, "dsp",
                    extra=f"-I{MICRO_KERNELS / 'src'} "
                          "-Wl,--wrap=tt_dsp_pointwise_weight_update_run")
    assert res.returncode == 0, (res.stderr or res.stdout)[-2000:]
    output = rig.run_qemu(out / "build" / "rig.elf", timeout=300)
    phases = dict(rig_phases(output))
    assert list(phases) == ["boot", "failed", "trained"]
    parse = lambda text: rig.parse(text, program.classes)[0]          # noqa: E731
    rows = program.rows.height
    failed = re.findall(r"^TT failed (\w+) at (\d+) status (\d+) rows (\d+) bad (\d+) "
                        r"untouched (\d+)$", phases["failed"], re.M)
    assert failed == [(what, str(at), str(ERROR_INPUT), str(at + 1), "0", "1")
                      for at in (0, rows // 2, rows - 1) for what in ("train", "predict")]
    assert parse(phases["failed"]).crcs == parse(phases["boot"]).crcs
    assert check.differences(program, check.reference(program, xs, labels),
                             parse(phases["trained"])) == []
    counts = dict(zip(*[iter(re.search(r"^TT fused (.*)$", output, re.M).group(1).split())] * 2))
    # every output channel of the four layers (12, 16, 12 and 8) in every step, all from the
    # int16 staging (the only one since round 20: tt_conv2d_weight_update_s8_s8_stage_bytes),
    # the last two layers' in chunks of channels on the update's stack
    assert counts == {"whole": str(STEPS * 24), "partial": str(STEPS * 24)}, counts


def test_lean_stack_on_the_cortex_m7(tmp_path):
    """`codegen --lean-stack`: the folder's Makefile (every kernel's compile line, as `make -n
    rig` prints it) and CMakeLists.txt build the kernels with the smaller stack buffers, and
    on the rig the program trains bit-identically to --engine c with no more stack than the
    default build of the same program. (This model is too small to fill the buffers, so its
    painted stack is the same; MobileNetV2's falls by about 1 KB: benchmarks/RESULTS.md.)"""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.codegen.project import LEAN_STACK_DEFINES
    model = training_model(tmp_path, chain_model(tmp_path / "chain.tflite"), "last:4",
                           hyper=Hyper(grad="int8"))
    stacks = {}
    for lean in (False, True):
        out = tmp_path / f"gen-{lean}"
        _, m = generate(model, out, rig_steps=2, lean_stack=lean)
        assert m.identical_to_engine_c is True, m.differences
        stacks[lean] = m.sram_bytes["stack"]
        make, cmake = (out / "Makefile").read_text(), (out / "CMakeLists.txt").read_text()
        lines = subprocess.run(["make", "-n", "-C", str(out), "rig", "OUT=dry"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        kernels = [line for line in lines if "/src/tt_input_grad_dsp.c" in line
                   or "/src/tt_fwd_conv.c" in line]
        assert len(kernels) == 2, lines
        for d in LEAN_STACK_DEFINES:
            assert (f"-D{d} " in make) == lean and (d in cmake) == lean, d
            assert all((f"-D{d} " in line) == lean for line in kernels), d
    assert stacks[True] <= stacks[False], stacks


def test_depthwise_staging_on_the_stack_on_the_cortex_m7(tmp_path):
    """A depthwise int8 input gradient whose DSP staging the arena does not hold (no arena
    staging anywhere here) takes it on the stack (program.stage_on_stack): a function of its
    own declares the array and makes only that call, the plan holds no buffer for it, and
    on the rig the program trains bit-identically to --engine c (an array shorter than the
    staging_bytes the call passes overwrites the caller's frame: HardFault)."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.codegen import program as P
    model = training_model(tmp_path, chain_model(tmp_path / "chain.tflite"), "last:8",
                           hyper=Hyper(grad="int8"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "level_staging", lambda graph, arena_of, ceiling: {})
        mp.setattr(P, "widen_staging", lambda graph, calls, plan: {})
        program, m = generate(model, tmp_path / "gen", rig_steps=2)
    assert m.identical_to_engine_c is True, m.differences
    assert program.stack_stages, "no depthwise gradient's staging on the stack"
    text = (tmp_path / "gen" / "tt_model.c").read_text()
    run = text[text.index("static int run("):]
    for k, n in program.stack_stages.items():
        step = program.steps[k]
        assert step.call.name in P.STACK_STAGED
        stage = step.call.signature.index("stage")
        assert step.call.args[stage].nbytes == step.call.args[stage + 1] == n
        assert 0 < n <= P.STACK_STAGE_BYTES
        # the plan holds only the operator's lent accumulators, if any
        assert all(b.name.startswith("kept@") for b in program.plan.buffers if b.op == k)
        body = re.search(rf"static TT_NOINLINE void tt_op{k}\(int32_t label\) {{\n(.*?)\n}}",
                         text, re.S)
        assert body and f"uint8_t bytes[TT_KERNELS_DSP ? {n} : 1]; }} tt_stage;" in body.group(1)
        assert "tt_stage.bytes, (int32_t)sizeof tt_stage.bytes)" in body.group(1)
        assert f"tt_op{k}(label);" in run
    assert "tt_stage" not in run
    # the array is the DSP build's only: a portable build's frames do not hold it
    for flags, holds in (([], True), (["-DTT_PORTABLE"], False)):
        frames = stack_usage(tmp_path / "gen" / "tt_model.c", flags, tmp_path)
        for k, n in program.stack_stages.items():
            assert (frames.get(f"tt_op{k}", 0) >= n) is holds, (flags, k, frames, n)


def stack_usage(source, flags, tmp_path) -> dict:
    """Each function's frame in bytes (gcc -fstack-usage) of `source` built for the board."""
    from tflite_train.codegen.project import BOARD_CPU
    out = tmp_path / "su.o"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", *BOARD_CPU.split(), *flags,
                    "-fstack-usage", f"-I{MICRO_KERNELS / 'include'}", f"-I{source.parent}",
                    "-c", str(source), "-o", str(out)], check=True, capture_output=True)
    frames = {}
    for line in out.with_suffix(".su").read_text().splitlines():
        where, size, _ = line.split("\t")
        frames[where.rsplit(":", 1)[1].split(".")[0]] = int(size)   # tt_op9.constprop: tt_op9
    return frames
