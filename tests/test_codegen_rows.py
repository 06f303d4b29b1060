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


def test_mobilenetv2_chains_its_first_two_streams(tmp_path):
    """MobileNetV2-w0.35 (99kb scheme, int8 gradients) read row by row: the stem stream and
    blocks.1's chained (blocks.0's 64x64x8 output, 32 KB, never whole), both APIs two
    steps bit-identical to --engine c on the host (the rig: benchmarks/codegen.py --input
    rows, which checks the same)."""
    from conftest import shared_file
    from test_codegen import SCHEMES
    pkl = shared_file("tiny-training", "mbv2-w0.35.pkl")
    assert main(["import", str(pkl), "-o", str(tmp_path / "mb.tflite")]) == 0
    model = training_model(tmp_path, tmp_path / "mb.tflite", str(SCHEMES / "mbv2-w0.35_99kb.json"),
                           classes=10, name="mb", hyper=Hyper(grad="int8"))
    program, out = rows_program(tmp_path, model)
    text = (out / "tt_model.c").read_text()
    assert "tt_conv_depthwise_pointwise_chain_source_s8(" in text
    assert program.rows.op == 6 and "blocks.0.pointwise2" not in {
        program.graph.tensors[t].name for t in program.arena_tensors}
    # the chain's frozen layers read flash (layouts.py): the stem its filter packed and
    # widened, blocks.0's projection (16 -> 8) and blocks.1's expansion (8 -> 48) row
    # records, blocks.1's projection (48 -> 8) its filter pre-widened
    chain = program.steps[6].call
    assert chain.name == "tt_conv_depthwise_pointwise_chain_wide_s8"
    assert [a.shape for a in chain.args[-4:]] == [(16 * 14 + 16 * 28,), (8, 24), (48, 16),
                                                   (8, 48)]
    assert program.rows.kernel == "tt_conv_depthwise_pointwise_chain_source_wide_s8"
    xs, labels = check.samples(program, 2, seed=4)
    want = check.reference(program, xs, labels)
    for api in ("whole", "rows"):
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


def random_stream(rng, h: int, ci: int, cm: int, co: int, kernel: int, stride: int,
                  dw_kernel: int, dw_stride: int) -> tuple[list, tuple]:
    """A seeded three-layer stream (a kernel x kernel CONV_2D, a depthwise layer, a 1x1
    CONV_2D) on an h x h x ci input: its arguments as tt_conv_depthwise_pointwise_packed_s8
    takes them but the input, output and scratch, and the output's shape."""
    from tflite_train.runtime import c_forward
    D = c_forward.Dims

    def params(stride, k, size):
        pad = max((-(-size // stride) - 1) * stride + k - size, 0) // 2    # SAME
        return c_forward.ConvParams(stride, stride, 1, 1, pad, pad, int(rng.integers(-9, 9)),
                                    int(rng.integers(-9, 9)), -128, 127), -(-size // stride)

    def quant(n):
        return (rng.integers(1 << 30, (1 << 31) - 1, n).astype(np.int32),
                rng.integers(-10, -6, n).astype(np.int8),
                rng.integers(-3000, 3000, n).astype(np.int32))
    a, m = params(stride, kernel, h)
    af = rng.integers(-127, 128, (cm, kernel, kernel, ci)).astype(np.int8)
    am, ash, ab = quant(cm)
    d, oh = params(dw_stride, dw_kernel, m)
    df = rng.integers(-127, 128, (1, dw_kernel, dw_kernel, cm)).astype(np.int8)
    dm, dsh, db = quant(cm)
    p, _ = params(1, 1, oh)
    pf = rng.integers(-127, 128, (co, 1, 1, cm)).astype(np.int8)
    pm, psh, pb = quant(co)
    first = [a, am, ash, D(1, h, h, ci)]
    rest = [D(*af.shape), af, ab, d, dm, dsh, D(1, m, m, cm), D(*df.shape), df, db,
            p, pm, psh, D(1, oh, oh, cm), D(*pf.shape), pf, pb, D(1, oh, oh, co)]
    return first + rest, (1, oh, oh, co)


# (h, ci, first stream: cm, co, kernel, stride, dw kernel, dw stride; second: cm, co, kernel,
# stride, dw kernel, dw stride): MobileNetV2's stem + blocks.0 then blocks.1 (a 1x1
# expansion, a 4x4 depthwise of stride 2) in small, and a second stream whose first layer
# reads 3 rows (the ring's span) of stride 2 (rows moved to the ring's start)
CHAIN_CASES = [(16, 3, (8, 4, 4, 2, 3, 1), (12, 4, 1, 1, 4, 2)),
               (12, 2, (6, 5, 3, 1, 3, 2), (7, 3, 3, 2, 3, 1)),
               (9, 3, (5, 3, 3, 2, 5, 1), (4, 6, 3, 1, 3, 2))]


@pytest.mark.parametrize("case", CHAIN_CASES)
def test_chained_streams_equal_the_two_streams(case):
    """tt_conv_depthwise_pointwise_chain_s8 (the first stream's output rows fed to the
    second's first layer through a ring, never whole) == the two streams called one after
    the other, with packs and without; the ring, windows and packs the planner sizes."""
    from tflite_train.runtime import c_forward
    from tflite_train.runtime import kernel_calls as K
    h, ci, s0, s1 = case
    rng = np.random.default_rng(sum(case[:2]) + sum(s0) + sum(s1))
    args0, mid_shape = random_stream(rng, h, ci, *s0)
    args1, out_shape = random_stream(rng, mid_shape[1], mid_shape[3], *s1)
    x = rng.integers(-128, 128, (1, h, h, ci)).astype(np.int8)

    def scratch(args):
        dw = [args[i] for i in (7, 10, 11, 17)]       # its depthwise layer's
        window = K.host_call("tt_conv_depthwise_pointwise_s8_window_bytes", *dw)
        pack = K.host_call("tt_stream_depthwise_pack_bytes", *dw)
        return np.zeros(window, np.int8), np.zeros(pack, np.int8)

    def stream(args, x, shape, pack):
        out = np.zeros(shape, np.int8)
        window, packed = scratch(args)
        assert c_forward.call("tt_conv_depthwise_pointwise_packed_s8", *args[:4], x, *args[4:],
                              out, window, packed if pack else None) == 0
        return out
    mid = stream(args0, x, mid_shape, False)
    want = stream(args1, mid, out_shape, False)
    b = args1[:3] + args1[4:]                          # the second stream without its input
    span = min((args1[4].h - 1) * args1[0].dilation_h + 1, mid_shape[1])
    assert span == (3 if s1[2] == 3 else 1)
    for pack in (False, True):
        (w0, p0), (w1, p1) = scratch(args0), scratch(args1)
        ring = np.zeros(span * mid_shape[2] * mid_shape[3], np.int8)
        got = np.zeros(out_shape, np.int8)
        assert c_forward.call("tt_conv_depthwise_pointwise_chain_s8", *args0[:4], x.copy(),
                              *args0[4:], w0, p0 if pack else None, ring, *b, got, w1,
                              p1 if pack else None) == 0
        assert got.tobytes() == want.tobytes(), pack


@pytest.mark.parametrize("kernel", ["tt_pointwise_depthwise_s8",
                                    "tt_pointwise_depthwise_packed_s8"])
def test_a_pointwise_depthwise_stream_reading_the_sample_is_refused(kernel):
    """A 1x1 first layer streamed into its depthwise (a tt_pointwise_depthwise* stream, which
    has no tt_row_source form) reads the sample: --input rows refuses it in one line (a
    CodegenError, not SOURCE_FORMS's KeyError)."""
    from types import SimpleNamespace as NS
    from tflite_train.codegen import program as P
    graph = NS(inputs=[0], tensors=[NS(shape=(1, 8, 8, 3))],
               operators=[NS(kind="CONV_2D", inputs=[0, 1]),
                          NS(kind="DEPTHWISE_CONV_2D", inputs=[2, 3])])
    with pytest.raises(P.CodegenError) as err:
        P._row_input(graph, {}, [0, 1], {0}, {1: NS(name=kernel)})
    text = str(err.value)
    assert len(text.splitlines()) == 1 and "--input rows" in text and kernel in text \
        and "--input arena" in text
