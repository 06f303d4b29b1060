"""`codegen --input rows`: the sample never in the arena, read row by row by the layer that
reads it (tt_row_source.h), from the caller's sample (tt_train_step, tt_predict) or from a
row reader (tt_train_step_rows, tt_predict_rows). Both APIs train bit-identically to
`--engine c` on the host and on the Cortex-M7 rig, rows are asked for once each in order,
a reader that gives up trains nothing, `plan` predicts the arena, and a model whose
backward needs the whole sample is refused in one line."""
from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

from conftest import require_tool
from test_codegen import assert_identical, random_conv, ratio_scheme, training_model
from tflite_train.autodiff import Hyper
from tflite_train.cli import main
from tflite_train.codegen import check, generate, host, rig
from tflite_train.demo import EXAMPLE


def rows_program(tmp_path, model, monkeypatch=None, stream=False):
    from tflite_train.codegen import program as P
    if stream:                    # the stem's three-layer stream (its arena does not need it)
        monkeypatch.setattr(P, "choose_streams", lambda graph, outside: P.blocks(graph))
    out = tmp_path / "gen"
    program, _ = generate(model, out, input_rows=True)
    return program, out


@pytest.mark.parametrize("stream, grad", [(False, "float32"), (True, "int8")],
                         ids=["conv", "stream"])
def test_both_apis_train_like_engine_c(stream, grad, tmp_path, monkeypatch):
    scheme = ratio_scheme(tmp_path, [(-1, 0.5), (-3, 0.25)], n_bias=4)
    model = training_model(tmp_path, EXAMPLE, scheme, hyper=Hyper(grad=grad, momentum=0.5))
    program, out = rows_program(tmp_path, model, monkeypatch, stream)
    kernel = (r"tt_conv_depthwise_pointwise_(packed_)?source_s8\(" if stream
              else r"tt_conv2d_source_s8\(")
    text = (out / "tt_model.c").read_text()
    assert re.search(kernel, text) and "tt_model_input" not in text
    assert "tt_train_step_rows" in (out / "README.md").read_text()
    xs, labels = check.samples(program, 3, seed=2)
    want = check.reference(program, xs, labels)
    for api in ("whole", "rows"):     # HostProgram's row run checks the order of the reads
        got = host.HostProgram(out, len(program.checkpoint_regions())).run(
            xs, labels, program.classes, api)
        assert_identical(program, got, want)


def test_a_reader_that_gives_up_trains_nothing(tmp_path):
    model = training_model(tmp_path, EXAMPLE, "last:2", hyper=Hyper(grad="int8"))
    program, out = rows_program(tmp_path, model)
    h = host.HostProgram(out, len(program.checkpoint_regions()))
    x = check.samples(program, 1, seed=3)[0][0]
    before = h.regions()
    reader = host.RowReader(x, fail_at=5)
    status, _ = h.train_step_rows(reader, 1)
    assert status == 3                                    # TT_MODEL_ERROR_INPUT
    assert reader.asked == list(range(6))                 # no read after the failure
    assert h.regions() == before
    reader = host.RowReader(x)
    assert h.train_step_rows(reader, program.classes)[0] == 1   # label refused, no row read
    assert reader.asked == [] and h.regions() == before
    status, scores = h.predict_rows(host.RowReader(x), program.classes)
    assert status == 0 and np.array_equal(scores, h.predict(x, program.classes))


def test_plan_predicts_the_rows_programs_arena(tmp_path, capsys, monkeypatch):
    model = training_model(tmp_path, EXAMPLE, "bias-only:1", hyper=Hyper(grad="int8"))
    assert main(["plan", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    planned = info["codegen_input_rows"]
    program, out = rows_program(tmp_path, model)
    subprocess.run(["make", "-s", "-C", str(out), "shared"], check=True)
    nm = subprocess.run(["nm", "-S", str(out / "build" / "libtt_model.so")],
                        capture_output=True, text=True, check=True).stdout
    size = next(int(line.split()[1], 16) for line in nm.splitlines()
                if line.endswith(" tt_arena"))
    assert size == planned["arena_bytes"] == program.plan.arena_bytes
    assert f"#define TT_MODEL_ARENA_BYTES {size} " in (out / "tt_model.h").read_text()


def test_a_backward_that_needs_the_whole_sample_is_refused(tmp_path, capsys):
    model = training_model(tmp_path, EXAMPLE, "full")
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--input", "rows"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input rows" in err and "whole sample" in err
    assert not out.exists()
    assert main(["codegen", str(model), "-o", str(out), "--rig-api", "rows"]) == 2
    assert "--rig" in capsys.readouterr().err and not out.exists()


def test_row_api_on_the_rig(tmp_path, capsys, monkeypatch):
    """The example's stem stream reading a reader's rows (the harness checks they come in
    order, each once), int8 gradients, 2 steps under QEMU: bit-identical to --engine c."""
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    from tflite_train.codegen import program as P
    monkeypatch.setattr(P, "choose_streams", lambda graph, outside: P.blocks(graph))
    model = training_model(tmp_path, EXAMPLE, "bias-only:1", hyper=Hyper(grad="int8"))
    out = tmp_path / "gen"
    assert main(["codegen", str(model), "-o", str(out), "--input", "rows", "--rig",
                 "--steps", "2", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["identical_to_engine_c"] is True and m["differences"] == []
    assert m["sram_bytes"]["arena"] == m["planned"]["arena"]
    assert "RIG_ROWS" in (out / "rig" / "rig_data.h").read_text()
    # the stream's depthwise layer packed (codegen.dw_pack): the pack and the ring both
    # scratch of the one call, in that order
    assert "tt_conv_depthwise_pointwise_packed_source_s8(" in (out / "tt_model.c").read_text()


SOURCE_CASES = [  # (h, w, ci, co, kernel, stride, pad_top, dilation): a stem, 1x1, ...
    (16, 16, 3, 16, 4, 2, 1, 1), (16, 16, 3, 8, 3, 2, 1, 1), (11, 9, 4, 6, 3, 1, 1, 1),
    (13, 13, 4, 4, 5, 2, 2, 1), (12, 10, 8, 24, 1, 1, 0, 1),
    (12, 10, 3, 4, 1, 2, 0, 1),       # stride > kernel: rows 1, 3, ... are read, not used
    (14, 8, 2, 3, 2, 3, 0, 1), (12, 12, 3, 5, 3, 1, 2, 2), (5, 7, 3, 4, 7, 2, 3, 1)]


@pytest.mark.parametrize("case", SOURCE_CASES)
def test_convolution_from_a_row_source_equals_the_whole_input(case):
    """tt_conv2d_source_s8 with its rows from a reader through a ring of the kernel's span,
    and from a frame, == tt_conv2d_s8 on the whole input; the reader is asked for every
    row once, in order, also the rows the convolution never reads."""
    import ctypes as C
    from tflite_train.runtime import c_forward
    from tflite_train.runtime import kernel_calls as K
    h, w, ci, co, kernel, stride, pad, dil = case
    D = c_forward.Dims
    p, m, sh, x, f, bias, want = random_conv((h, w, ci, co, kernel, stride, pad, pad), dil)
    span = (kernel - 1) * dil + 1
    lib = K._library()
    capacity = min(span, h)
    ring = np.zeros(capacity * w * ci, np.int8)
    reader = host.RowReader(x[0])
    ptr = lambda a: a.ctypes.data_as(C.c_void_p)         # noqa: E731
    for frame in (False, True):
        source = (C.c_uint8 * 256)()
        if frame:
            lib.tt_row_source_frame(source, ptr(x), h, w * ci)
        else:
            lib.tt_row_source_reader(source, reader.fn, None, ptr(ring), capacity, h, w * ci)
        got = np.zeros_like(want)
        status = lib.tt_conv2d_source_s8(
            C.byref(p), ptr(m), ptr(sh), C.byref(D(*x.shape)), source, C.byref(D(*f.shape)),
            ptr(f), ptr(bias), C.byref(D(*want.shape)), ptr(got))
        assert status == 0
        assert np.array_equal(got, want)
    assert reader.asked == list(range(h))
