"""No malformed file crashes anything (issue 13): a seeded mutation campaign over every
command (tests/fuzzing.py; benchmarks/fuzz.py is the long run), the TFLM glue fed broken
training models under AddressSanitizer + UBSan, and one regression test for each class of
crash and traceback the first campaign found.

Commands run in forked children: a crash, a hang or a traceback fails the test with the
mutant and the command saved under .cache/fuzz-failures/ (the path is in the message).
"""
import random
import subprocess
import sys

import numpy as np
import pytest

import fuzzing
from conftest import ROOT, SHARED_MODELS, require_tool
from tflite_train import tflite_io
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.demo import EXAMPLE
from tflite_train.errors import ModelError, TTError

FAILURES = ROOT / ".cache" / "fuzz-failures"
BAD = ("crash", "hang", "traceback", "error, not one line", "stray stderr", "input modified",
       "partial output", "other exit")
CASES, SHARDS, SEED = 320, 4, 13


@pytest.fixture(scope="module")
def seeds(zoo, tmp_path_factory):
    tflm = sorted((SHARED_MODELS / "tflm").glob("*.tflite"))
    pkls = sorted((SHARED_MODELS / "tiny-training").glob("*.pkl"))
    train = [(EXAMPLE, "full", True), (EXAMPLE, "full", False), (EXAMPLE, "bias-only", True),
             (zoo["mobile"], "last:2", True), (zoo["branches"], "full", True),
             (zoo["pool"], "full", False),
             # int8 activation gradients: their own glue paths, options and checkpoints
             (EXAMPLE, "full", True, "int8"), (zoo["branches"], "full", False, "int8"),
             # augment --batch 3: the accumulators, their checkpoint regions, BatchStep
             (EXAMPLE, "last:2", True, "float32", 3), (zoo["mobile"], "full", False, "int8", 3)]
    return fuzzing.make_seeds(list(zoo.values()) + tflm + [EXAMPLE], pkls,
                              tmp_path_factory.mktemp("seeds"), train)


@pytest.fixture(scope="module")
def server():
    s = fuzzing.ForkServer()
    yield s
    s.close()


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_mutant_crashes_any_command(shard, seeds, server, tmp_path):
    """CASES seeded cases (a seed, one mutation, one command each), split in SHARDS."""
    bad, kinds = [], set()
    for case in range(shard, CASES, SHARDS):
        kind, detail, argv, how, case_dir = fuzzing.fuzz_case(server, seeds, SEED, case,
                                                              tmp_path, timeout=120)
        kinds.add(kind)
        if kind in BAD:
            saved = fuzzing.save_reproducer(FAILURES, case, argv, case_dir, kind, detail)
            bad.append(f"case {case} ({how}): tflite-train {' '.join(argv)}: {kind} "
                       f"{detail} -> {saved}")
    assert not bad, "\n".join(bad)
    assert {"ok", "error"} <= kinds      # mutants that still run, and mutants refused


def test_the_fuzzer_sees_crashes_hangs_and_tracebacks(server, tmp_path):
    """The harness itself: a segfault, a loop and a blocked child (both hangs: by CPU time
    and by wall-clock time) and an escaping exception in a child."""
    cases = [("crash", "import ctypes; ctypes.string_at(0)"), ("hang", "while True: pass"),
             ("hang", "import time; time.sleep(60)"), ("traceback", "raise KeyError('x')")]
    for want, code in cases:
        res = server.run([], tmp_path, timeout=0.5, python=code)
        stderr = (tmp_path / ".stderr").read_text()
        kind, _ = fuzzing.classify(res["exit"], res["signal"], res["hang"], stderr, False, [],
                                   True)
        assert kind == want, (want, res, stderr)


def test_mutations_reach_what_they_aim_at(seeds):
    """Offsets and lengths are found in the flatbuffer; every mutation changes the bytes."""
    seed = next(s for s in seeds if s.kind == "train")
    assert len(seed.positions["offset"]) > 50 and len(seed.positions["length"]) > 20
    rng = random.Random(0)
    for how in fuzzing.FLATBUFFER_MUTATIONS:
        assert fuzzing.mutate(seed, rng, how)[0] != seed.data, how
    pkl = next(s for s in seeds if s.kind == "pkl")
    for how in fuzzing.PICKLE_MUTATIONS:
        assert fuzzing.mutate(pkl, rng, how)[0] != pkl.data, how


# --- the TFLM glue, fed broken training models directly ----------------------------------

# One broken option of each class that crashed the glue before issue 13 (the flexbuffers
# map assertion in the mask ops' options, segfaults on garbage options and key lookups, SGD
# and window options): (op, key or None for the whole options blob, value, the Prepare's
# message). Run under the sanitizers, where an out-of-bounds read would abort.
GLUE_CRASH_CLASSES = [
    ("TT_SAVE_MASK", None, [1, 2], "not a flexbuffer map"),
    ("TT_BIAS_UPDATE", None, 7, "not a flexbuffer map"),
    ("TT_BIAS_UPDATE", None, b"\x01\x02\x03\x04\x05\x06\x07\x08\xff\x24\x01",
     "not a valid flexbuffer"),
    ("TT_BIAS_UPDATE", "momentum", float("nan"), "option 'momentum'"),
    ("TT_BIAS_UPDATE", "momentum", 1.5, "momentum in [0, 1)"),
    ("TT_BIAS_UPDATE", "lr", "text", "option 'lr'"),
    ("TT_BIAS_UPDATE", "lr", 1e300, "option 'lr'"),        # inf as the kernels' float32
    ("TT_CONV2D_WEIGHT_UPDATE", "seed", -5, "option 'seed'"),
    ("TT_CONV2D_WEIGHT_UPDATE", "stride_h", 1 << 30, "window's strides"),
    ("TT_CONV2D_INPUT_GRAD", "pad_top", 1 << 30, "window's strides"),
    ("TT_DEPTHWISE_CONV2D_INPUT_GRAD", "dilation_w", 1 << 31, "option 'dilation_w'"),
    ("TT_MEAN_GRAD", "axes", [1, 1], "given twice"),
    ("TT_MEAN_GRAD", "axes", list(range(20)), "option 'axes'"),
    ("TT_FULLY_CONNECTED_WEIGHT_UPDATE", "channels", 1 << 20, "trained channels"),
]


def with_option(blob: bytes, key: str, value) -> bytes:
    """TT_* options (a flexbuffer map) with `key` set to `value`. Python's flexbuffers
    cannot write a double beyond float32's range: 0.1 is written, then its bytes replaced."""
    import struct
    from flatbuffers import flexbuffers
    options = flexbuffers.Loads(blob)
    big = isinstance(value, float) and abs(value) > 3.4e38
    options[key] = 0.1 if big else value
    out = bytes(flexbuffers.Dumps(options))
    if big:
        assert out.count(struct.pack("<d", 0.1)) == 1
        out = out.replace(struct.pack("<d", 0.1), struct.pack("<d", value))
    assert flexbuffers.Loads(out)[key] == value or value != value      # NaN != NaN
    return out


def glue_regression(kind: str, key, value) -> bytes:
    """The example's training model with one TT_* op's options broken, unvalidated."""
    from flatbuffers import flexbuffers
    g = training_model(momentum=0.5)
    op = next(op for op in g.operators if op.kind == kind)
    if key is None:
        op.custom_options = value if isinstance(value, bytes) else \
            bytes(flexbuffers.Dumps(value))
    else:
        op.custom_options = with_option(op.custom_options, key, value)
    return tflite_io.serialize(g)


def test_the_glue_refuses_broken_training_models_under_sanitizers(seeds, tmp_path):
    """Training models broken where only the glue can notice (TT_* options, inputs,
    outputs, the tensors only TT_* ops use) go straight into the wheel's TFLM, bypassing
    the Python validation, with the glue built under ASan + UBSan: each one runs or is
    refused by a Prepare, none reads out of bounds or crashes. (The glue before issue 13
    crashed on 5 of the first 300 of these: a flexbuffers assertion on options that are
    not a map, and segfaults reading malformed options.) First GLUE_CRASH_CLASSES, each
    refused with its line, then 120 seeded glue mutants."""
    built = fuzzing.sanitized_glue(tmp_path)
    require_tool(built is not None, "gcc's sanitizer runtimes (libasan, libubsan)")
    lib, env = built
    server = fuzzing.ForkServer(env={**env, "TT_FUZZ_GLUE": str(lib)})
    outcomes, bad = {}, []
    try:
        model = tmp_path / "regression.tflite"
        for kind, key, value, message in GLUE_CRASH_CLASSES:
            model.write_bytes(glue_regression(kind, key, value))
            res = server.run([], tmp_path, timeout=120, glue=str(model))
            err = (tmp_path / ".stderr").read_text()
            if res["exit"] != 2 or f"{kind}: " not in err or message not in err:
                bad.append(f"{kind} {key}={value!r}: {res}: {err[-1500:]}")
        for case in range(120):
            kind, how, data = fuzzing.glue_case(server, seeds, case, tmp_path, timeout=120)
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if kind not in ("ran", "refused"):
                FAILURES.mkdir(parents=True, exist_ok=True)
                saved = FAILURES / f"glue{case}.tflite"
                saved.write_bytes(data)
                bad.append(f"{how}: {kind}: {(tmp_path / '.stderr').read_text()[-1500:]} "
                           f"-> {saved}")
    finally:
        server.close()
    assert not bad, "\n".join(bad)
    assert outcomes.get("refused", 0) > 20 and outcomes.get("ran", 0) > 20, outcomes


def test_the_glue_refuses_malformed_batched_models_under_sanitizers(tmp_path):
    """test_batch.MALFORMED (augment --batch 3 models with one update op's batch option or
    accumulator broken) straight into the wheel's TFLM with the sanitized glue: each one
    refused by that op's Prepare with its line, nothing read out of bounds. (Before
    review24 an accumulator that is the op's momentum buffer was accepted and trained.)"""
    from test_batch import MALFORMED, malformed_model
    built = fuzzing.sanitized_glue(tmp_path)
    require_tool(built is not None, "gcc's sanitizer runtimes (libasan, libubsan)")
    lib, env = built
    server = fuzzing.ForkServer(env={**env, "TT_FUZZ_GLUE": str(lib)})
    bad = []
    try:
        model = tmp_path / "batched.tflite"
        for what, kind, fuse, mutate, _, words in MALFORMED:
            if words is None:            # across ops: only the validation sees it
                continue
            model.write_bytes(malformed_model(kind, fuse, mutate))
            res = server.run([], tmp_path, timeout=120, glue=str(model))
            err = (tmp_path / ".stderr").read_text()
            if res["exit"] != 2 or f"{kind}: " not in err or words not in err:
                bad.append(f"{what}: {res}: {err[-1500:]}")
    finally:
        server.close()
    assert not bad, "\n".join(bad)


# --- one regression test per class of crash and traceback ----------------------------------

def raw_tflm(server, tmp_path, model: bytes, registerers: str = "[]") -> dict:
    """`model` handed to the wheel's TFLM as is, in a child: what used to happen."""
    path = tmp_path / "raw.tflite"
    path.write_bytes(model)
    code = ("import numpy as np\n"
            "from tflite_micro.python.tflite_micro import runtime\n"
            f"it = runtime.Interpreter.from_bytes(open({str(path)!r}, 'rb').read(), "
            f"custom_op_registerers={registerers}, arena_size=1 << 22)\n"
            "d = it.get_input_details(0)\n"
            "it.set_input(np.zeros(d['shape'], d['dtype']), 0)\n"
            "it.invoke()\n")
    return server.run([], tmp_path, timeout=60, python=code)


def one_line_error(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tflite-train: error: "), err
    return lines[0]


def crashes_tflm_and_is_refused(graph, signal: int, command: str, message: str, server,
                                tmp_path, capsys) -> None:
    """What the graph did to the wheel's TFLM (killed by `signal`), and the one-line error
    `command` gives now."""
    data = tflite_io.serialize(graph)
    assert raw_tflm(server, tmp_path, data)["signal"] == signal
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert message in one_line_error(capsys, command, path)


def test_a_softmax_scale_that_aborts_tflm_is_refused(zoo, server, tmp_path, capsys):
    """TFLM's Prepare aborts (QuantizeMultiplierGreaterThanOne) when beta * s_in * 2^26 <= 1:
    an input scale below 2^-26 (a 224x224 MobileNetV2 with untrained weights has 7.9e-9)."""
    g = tflite_io.load(zoo["softmax_mid"])
    sm = next(op for op in g.operators if op.kind == "SOFTMAX")
    g.tensors[sm.inputs[0]].quant.scale = np.array([2.0 ** -27], np.float32)
    crashes_tflm_and_is_refused(g, 6, "verify", "2^-26", server, tmp_path, capsys)


def test_a_filter_deeper_than_its_input_is_refused(zoo, server, tmp_path, capsys):
    """TFLM's ConvPerChannel divides by input depth / filter depth: 0 groups, SIGFPE in
    Invoke."""
    g = tflite_io.load(zoo["conv"])
    w = g.tensors[[op for op in g.operators if op.kind == "CONV_2D"][1].inputs[1]]
    w.shape = w.shape[:3] + (2 * w.shape[3],)
    w.data = np.concatenate([w.data, w.data], axis=3)
    crashes_tflm_and_is_refused(g, 8, "verify", "grouped convolution", server, tmp_path,
                                capsys)


def test_a_depthwise_bias_marked_absent_is_refused(zoo, server, tmp_path, capsys):
    """TFLM's depthwise Prepare dereferences a third input given as -1 (absent)."""
    g = tflite_io.load(zoo["depthwise"])
    next(op for op in g.operators if op.kind == "DEPTHWISE_CONV_2D").inputs[2] = -1
    crashes_tflm_and_is_refused(g, 11, "plan", "absent bias", server, tmp_path, capsys)


def _tensor_tables(data: bytes) -> list:
    import tflite
    sg = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    return [sg.Tensors(i) for i in range(sg.TensorsLength())]


def _put32(data: bytes, at: int, value: int) -> bytes:
    out = bytearray(data)
    out[at:at + 4] = value.to_bytes(4, "little")
    return bytes(out)


def buffer_index_overwritten(data: bytes) -> list[bytes]:
    """Tensor buffers: a weight tensor whose buffer index is 2^31 - 1."""
    t = next(t for t in _tensor_tables(data) if t.Buffer() > 0)
    return [_put32(data, t._tab.Pos + t._tab.Offset(8), 0x7FFFFFFF)]


def tensor_table_misplaced(data: bytes) -> list[bytes]:
    """Eval tensors: a tensor table whose vtable offset points 16 bytes off (each tensor's;
    the test keeps those that crash the wheel)."""
    return [_put32(data, t._tab.Pos, 0xFFFFFFF0) for t in _tensor_tables(data)]


def allocation_info_empty(data: bytes) -> list[bytes]:
    """Allocation info: an empty OfflineMemoryAllocation metadata buffer."""
    from tflite_train.memory import OFFLINE_KEY
    g = tflite_io.parse(data)
    g.metadata[OFFLINE_KEY] = b""
    return [tflite_io.serialize(g)]


@pytest.mark.parametrize("model, damage", [
    ("inference", buffer_index_overwritten), ("inference", tensor_table_misplaced),
    ("inference", allocation_info_empty), ("training", buffer_index_overwritten),
    ("training", allocation_info_empty)])
def test_malformed_flatbuffers_that_crash_tflm_are_refused(model, damage, server, tmp_path,
                                                           capsys):
    """The wheel's TFLM reads the flatbuffer unchecked: these files kill it (SIGSEGV or
    SIGABRT). verify, plan and train --engine tflm refuse them in one line instead: TFLM
    only ever gets bytes written from a validated graph."""
    from tflite_train.runtime.tflm_engine import REGISTERER
    base, ours = (EXAMPLE.read_bytes(), "[]") if model == "inference" else \
        (tflite_io.serialize(training_model()), f"[{REGISTERER!r}]")
    crashing = [m for m in damage(base) if raw_tflm(server, tmp_path, m, ours)["signal"]]
    assert crashing, "none of these crashes the wheel's TFLM any more"
    commands = [["verify", "--samples", "1"], ["plan"]] if model == "inference" else \
        [["train", "--data", "fashion-mnist", "--steps", "1", "--engine", "tflm"], ["plan"]]
    path = tmp_path / "m.tflite"
    for data in crashing[:3]:
        path.write_bytes(data)
        for argv in commands:
            one_line_error(capsys, argv[0], path, *argv[1:])
        assert path.read_bytes() == data


def training_model(**hyper):
    from tflite_train import augment
    from tflite_train.autodiff import Hyper
    return augment.augment(tflite_io.load(EXAMPLE), "full", 3, Hyper(**hyper)).graph


def test_the_glue_reports_options_that_are_not_a_map(server, tmp_path):
    """The flexbuffers assertion (Map::operator[] on a root that is not a map) and the
    segfaults on garbage options: Init verifies the buffer, Prepare fails with a line."""
    from flatbuffers import flexbuffers
    from tflite_train.runtime.tflm_engine import REGISTERER
    for blob in (bytes(flexbuffers.Dumps(7)), bytes(flexbuffers.Dumps([1, 2])),
                 b"\x01\x02\x03\x04\x05\x06\x07\x08\xff\x24\x01", b"\x00"):
        g = training_model()
        next(op for op in g.operators if op.kind == "TT_BIAS_UPDATE").custom_options = blob
        res = raw_tflm(server, tmp_path, tflite_io.serialize(g), f"[{REGISTERER!r}]")
        err = (tmp_path / ".stderr").read_text()
        assert res["signal"] is None and res["exit"] == 70, (res, err)
        assert "TT_BIAS_UPDATE: custom options" in err or "TT_BIAS_UPDATE: option" in err, err


@pytest.mark.parametrize("mutate, message", [
    (lambda g, op: setattr(op, "custom_options", b"\xff\xfe\xfd\x01\x24\x01"), "flexbuffer"),
    (lambda g, op: setattr(op, "custom_options", b"\x80abc\x00\x01\x04\x01\x01\x24\x01"),
     "flexbuffer"),
    (lambda g, op: setattr(op, "custom_options", None), "options"),
    (lambda g, op: g.tensors[op.inputs[0]].__setattr__("shape", (1, 0, 4, 4)), "positive"),
    (lambda g, op: g.tensors[op.inputs[0]].__setattr__("shape", (1, 1 << 20, 1 << 10, 8)),
     "elements"),
    (lambda g, op: g.tensors[op.inputs[-1]].__setattr__("shape", (1, 1)), "label"),
])
def test_broken_training_ops_are_one_line_errors(mutate, message, capsys, tmp_path):
    """Custom options that are not UTF-8 or not a flexbuffer (UnicodeDecodeError, KeyError
    and bad flexbuffer types before), absurd and empty shapes."""
    g = training_model(momentum=0.5)
    op = next(op for op in g.operators if op.kind == "TT_CONV2D_WEIGHT_UPDATE")
    mutate(g, op)
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite_io.serialize(g))
    for argv in (["inspect", path], ["train", path, "--data", "fashion-mnist", "--steps", "1",
                                     "--engine", "tflm"]):
        assert message in one_line_error(capsys, *argv)


def test_a_float_option_beyond_float32_is_refused(tmp_path, capsys):
    """An lr of 3.1e303 is a finite double but inf as the float32 the kernels hold: codegen
    met it as a non-finite C constant (a traceback, found by the fuzz benchmark), the
    engines as an inf learning rate."""
    g = training_model()
    op = next(op for op in g.operators if op.kind == "TT_FULLY_CONNECTED_WEIGHT_UPDATE")
    op.custom_options = with_option(op.custom_options, "lr", 3.095e303)
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite_io.serialize(g))
    for argv in (["inspect", path], ["codegen", path, "-o", tmp_path / "out"],
                 ["train", path, "--data", "fashion-mnist", "--steps", "1", "--engine", "c"]):
        assert "is not a float32" in one_line_error(capsys, *argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    (lambda op, g: op.options.update(stride_h=0), "stride_h"),
    (lambda op, g: op.options.update(dilation_w_factor=-3), "dilation_w_factor"),
    (lambda op, g: op.options.update(padding=7), "padding"),
    (lambda op, g: op.options.update(fused_activation_function=9), "fused activation"),
    (lambda op, g: g.tensors[op.inputs[1]].quant.scale.__setitem__(0, np.nan), "finite"),
    (lambda op, g: g.tensors[op.inputs[0]].quant.scale.__setitem__(0, 0.0), "positive"),
    (lambda op, g: g.tensors[op.inputs[1]].quant.scale.__setitem__(0, 1e30), "2^31"),
    (lambda op, g: g.tensors[op.outputs[0]].quant.scale.__setitem__(0, 1e-45), "beyond int32"),
    (lambda op, g: g.tensors[op.inputs[0]].quant.zero_point.__setitem__(0, 300), "zero point"),
    (lambda op, g: setattr(op, "options_type", None), "options table"),
    (lambda op, g: op.inputs.__setitem__(0, 999), "does not exist"),
    (lambda op, g: op.inputs.__setitem__(0, -7), "does not exist"),
    (lambda op, g: setattr(g.tensors[op.outputs[0]], "shape",
                           (1, 3, 3) + g.tensors[op.outputs[0]].shape[3:]), "padding/stride"),
])
def test_broken_forward_ops_are_one_line_errors(change, message, capsys, tmp_path):
    """What raised ZeroDivisionError, IndexError, ValueError or numpy warnings in the op
    modules, the executors and fixedpoint: refused once, when the file is read."""
    g = tflite_io.load(EXAMPLE)
    op = next(op for op in g.operators if op.kind == "CONV_2D")
    change(op, g)
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite_io.serialize(g))
    for argv in (["inspect", path], ["verify", path], ["augment", path, "-o", tmp_path / "o"]):
        assert message in one_line_error(capsys, *argv)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cut", [9, 100, 1000, -200, -17])
def test_truncated_and_overwritten_flatbuffers_are_one_line_errors(cut, capsys, tmp_path):
    data = EXAMPLE.read_bytes()
    path = tmp_path / "m.tflite"
    path.write_bytes(data[:cut])
    one_line_error(capsys, "verify", path)
    broken = bytearray(data)
    broken[cut % len(data) & ~3:(cut % len(data) & ~3) + 4] = b"\xff\xff\xff\x7f"
    path.write_bytes(bytes(broken))
    code = main(["inspect", str(path)])
    assert code in (0, EXIT_ERROR) and len(capsys.readouterr().err.splitlines()) <= 1


# --- import -----------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["header", "directory", "pickle", "bytes-in-message",
                                    "missing-key", "wrong-type", "nan-scale"])
def test_import_of_a_damaged_pickle_is_one_line_without_bytes(damage, tmp_path, capsys):
    import io
    import pickle
    import zipfile
    raw_zip = fuzzing.tiny_pickle()
    with zipfile.ZipFile(io.BytesIO(raw_zip)) as z:
        raw = z.read("archive/data.pkl")
    cfg = pickle.loads(raw)
    if damage == "header":                     # OSError / UnicodeDecodeError escaped before
        data = bytearray(raw_zip)
        data[26:30] = b"\xff\xff\xff\xff"      # the local header's name and extra lengths
        data = bytes(data)
    elif damage == "directory":
        data = raw_zip[:-30] + b"\xfe" * 30
    elif damage == "pickle":
        data = fuzzing.zipped(raw[:len(raw) // 2])
    elif damage == "bytes-in-message":         # "invalid load key, '\x..'" quoted raw bytes
        data = fuzzing.zipped(b"\xfa\n\x00garbage")
    elif damage == "missing-key":
        del cfg["blocks"][0]["depthwise"]["params"]["w_scales"]
        data = fuzzing.zipped(pickle.dumps(cfg))
    elif damage == "wrong-type":
        cfg["first_conv"]["stride"] = "two"
        data = fuzzing.zipped(pickle.dumps(cfg))
    else:
        cfg["classifier"]["params"]["y_scale"] = float("nan")
        data = fuzzing.zipped(pickle.dumps(cfg))
    path = tmp_path / "m.pkl"
    path.write_bytes(data)
    line = one_line_error(capsys, "import", path, "-o", tmp_path / "o.tflite")
    assert "\\x" not in line and "\ufffd" not in line, line
    if damage == "missing-key":
        assert "blocks.0.depthwise.params" in line and "w_scales" in line
    if damage == "wrong-type":
        assert "first_conv.stride" in line
    assert not (tmp_path / "o.tflite").exists()


def test_the_tiny_pickle_imports_and_verifies(tmp_path, capsys):
    path = tmp_path / "tiny.pkl"
    path.write_bytes(fuzzing.tiny_pickle())
    assert main(["import", str(path), "-o", str(tmp_path / "t.tflite")]) == 0
    assert main(["verify", str(tmp_path / "t.tflite"), "--samples", "2"]) == 0
    assert "bit-exact" in capsys.readouterr().out


# --- messages, pipes, tracebacks, arena -------------------------------------------------------

def big_graph():
    """3 computed int8 tensors of 4 MB: 12 MB with every tensor preserved."""
    from tflite_train.ir import Graph, Operator, Quantization, Tensor
    q = lambda: Quantization(np.array([0.05], np.float32), np.zeros(1, np.int64))  # noqa: E731
    tensors = [Tensor(f"t{i}", (1, 512, 512, 16), "int8", q()) for i in range(3)]
    pool = dict(padding=1, stride_h=1, stride_w=1, filter_height=1, filter_width=1,
                fused_activation_function=0)
    ops = [Operator("MAX_POOL_2D", [i], [i + 1], dict(pool), "Pool2DOptions") for i in (0, 1)]
    return Graph(tensors, ops, [0], [2])


def test_tflm_log_lines_become_one_line_errors(capfd):
    """TFLM prints its own lines before failing; they end up in our message, not stderr."""
    from tflite_train.runtime.tflm import TFLMError, TFLMInterpreter
    with pytest.raises(TFLMError, match="Failed to resize buffer"):
        TFLMInterpreter(big_graph(), arena_size=1 << 20)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.filterwarnings("error")    # pytest would otherwise catch the warning itself
def test_float32_overflow_in_training_prints_no_warning(tmp_path, capfd):
    """A learning rate of 3e38 overflows lr * gradient to inf: the kernels' defined IEEE
    result (the update clamps it), which numpy used to report as a RuntimeWarning on
    stderr."""
    g = training_model(momentum=0.5)
    for op in g.operators:
        if op.kind.endswith("_UPDATE"):
            op.custom_options = with_option(op.custom_options, "lr", 3e38)
    path, data = tmp_path / "m.tflite", tmp_path / "d.npz"
    tflite_io.save(g, path)
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, (8, 32, 32), dtype=np.uint8), y=np.arange(8) % 3)
    code = main(["train", str(path), "--data", str(data), "--steps", "3", "--engine", "numpy"])
    out, err = capfd.readouterr()
    assert code == 0 and "done: 3 steps" in out and err == "", err


def test_a_refused_plan_leaves_no_offline_model(tmp_path, capsys):
    """`plan --write-offline` wrote its output before the generated program's plan read
    the training metadata and refused the model (found by the fuzz benchmark)."""
    from tflite_train.augment import METADATA_KEY
    g = training_model()
    g.metadata[METADATA_KEY] = b"{not json"
    path, out = tmp_path / "m.tflite", tmp_path / "o.tflite"
    tflite_io.save(g, path)
    assert "metadata is corrupt" in one_line_error(capsys, "plan", path, "--write-offline", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


@pytest.mark.parametrize("argv", [["inspect", str(EXAMPLE)], ["plan", str(EXAMPLE), "--json"]])
def test_a_closed_pipe_ends_quietly(argv):
    cmd = f"{sys.executable} -m tflite_train {' '.join(argv)} | head -n 1"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                         text=True, cwd=str(ROOT), timeout=120)
    assert res.stdout.count("\n") == 1 and res.stderr == "", res.stderr
    assert res.returncode in (0, 141)


def test_debug_still_shows_the_traceback(tmp_path):
    with pytest.raises(ModelError):
        main(["--debug", "inspect", str(tmp_path / "missing.tflite")])


def test_the_verify_arena_is_sized_from_the_model(tmp_path, capsys):
    """More than the fixed 8 MB every tensor preserved used to get (a 224x224 MobileNetV2
    with alpha 1.4 needs 14 MB)."""
    path = tmp_path / "big.tflite"
    tflite_io.save(big_graph(), path)
    assert main(["verify", str(path), "--samples", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith("bit-exact")


def test_validation_happens_when_the_ir_is_built():
    """tflite_io.parse and the importer return only validated graphs."""
    g = tflite_io.load(EXAMPLE)
    g.tensors[g.inputs[0]].shape = (1, -2, 3, 1)
    with pytest.raises(ModelError, match="positive"):
        tflite_io.parse(tflite_io.serialize(g))
    with pytest.raises(TTError):
        tflite_io.parse(b"xxxxTFL3" + b"\x00" * 64)
