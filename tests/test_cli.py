"""The command line: inspect and verify on real and generated models, and every kind of bad
input giving one line on stderr and a non-zero exit, never a traceback."""
import json
import subprocess
import sys

import pytest

from conftest import shared_model
from tflite_train import tflite_io
from tflite_train.cli import EXIT_ERROR, main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_person_detect_reports_paper_macs(capsys):
    code, out, _ = run_cli(capsys, "inspect", shared_model("person_detect"), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["totals"]["macs"] == 7_157_888
    by_kind = {}
    for r in info["operators"]:
        by_kind[r["op"]] = by_kind.get(r["op"], 0) + r["macs"]
    assert set(k for k, v in by_kind.items() if v) == {"CONV_2D", "DEPTHWISE_CONV_2D"}
    assert info["totals"]["inference_arena_bytes"] == 55_296
    assert info["totals"]["flash_bytes"] == shared_model("person_detect").stat().st_size


def test_inspect_text_table(capsys, zoo):
    path = next(iter(zoo.values()))
    code, out, _ = run_cli(capsys, "inspect", path)
    assert code == 0
    assert "MACs" in out and "arena plan" in out
    graph = tflite_io.load(path)
    for op in graph.operators:
        assert op.kind in out


def test_inspect_json_counts_params(capsys, zoo):
    path = next(iter(zoo.values()))
    _, out, _ = run_cli(capsys, "inspect", path, "--json")
    info = json.loads(out)
    graph = tflite_io.load(path)
    expected = sum(graph.tensors[op.inputs[i]].size for op in graph.operators
                   if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                   for i in (1, 2) if i < len(op.inputs) and op.inputs[i] >= 0)
    assert info["totals"]["params"] == expected


def test_verify_bit_exact_exit_zero(capsys):
    code, out, _ = run_cli(capsys, "verify", shared_model("micro_speech_quantized"),
                           "--samples", 3)
    assert code == 0
    assert out.strip().endswith("bit-exact")
    assert "0 of" in out


def test_verify_reports_differences_and_exits_one(capsys, zoo, monkeypatch):
    """Break one op of our forward on purpose: verify must notice, name it, and fail."""
    from tflite_train import ops
    path = zoo[sorted(zoo)[0]]
    graph = tflite_io.load(path)
    kind = graph.operators[0].kind
    real = ops.REGISTRY[kind]

    def off_by_one(g, op, inputs):
        return [(y.astype("int16") + 1).clip(-128, 127).astype(y.dtype) if y.dtype.kind == "i"
                else y * 1.5 for y in real.forward(g, op, inputs)]
    monkeypatch.setitem(ops.REGISTRY, kind, ops.OpDef(kind, off_by_one, real.macs, real.check,
                                                      real.param_inputs))
    code, out, _ = run_cli(capsys, "verify", path, "--samples", 1)
    assert code == 1
    assert "NOT bit-exact" in out
    assert "from operator 0" in out


def one_line_error(capsys, *argv, expect=EXIT_ERROR):
    code, out, err = run_cli(capsys, *argv)
    assert code == expect
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tflite-train: error:")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_missing_file(capsys, tmp_path, command):
    msg = one_line_error(capsys, command, tmp_path / "nope.tflite")
    assert "no such file" in msg


def test_directory(capsys, tmp_path):
    assert "directory" in one_line_error(capsys, "inspect", tmp_path)


def test_not_a_flatbuffer(capsys, tmp_path):
    p = tmp_path / "text.tflite"
    p.write_text("this is not a model at all\n")
    assert "not a TensorFlow Lite flatbuffer" in one_line_error(capsys, "inspect", p)


def test_empty_file(capsys, tmp_path):
    p = tmp_path / "empty.tflite"
    p.write_bytes(b"")
    assert "not a TensorFlow Lite flatbuffer" in one_line_error(capsys, "verify", p)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file(capsys, tmp_path, fraction):
    data = shared_model("person_detect").read_bytes()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: int(len(data) * fraction)])
    msg = one_line_error(capsys, "inspect", p)
    assert "truncated" in msg or "malformed" in msg


def test_truncated_generated_model(capsys, tmp_path, zoo):
    data = next(iter(zoo.values())).read_bytes()
    for cut in (12, len(data) // 3, len(data) - 7):
        p = tmp_path / f"cut{cut}.tflite"
        p.write_bytes(data[:cut])
        msg = one_line_error(capsys, "inspect", p)
        assert "truncated" in msg or "malformed" in msg


def test_float_model(capsys, tmp_path):
    import badmodels
    p = tmp_path / "float.tflite"
    p.write_bytes(badmodels.float_model())
    msg = one_line_error(capsys, "inspect", p)
    assert "float model" in msg and "int8" in msg


def test_several_subgraphs(capsys, tmp_path):
    import badmodels
    p = tmp_path / "while.tflite"
    p.write_bytes(badmodels.control_flow_model())
    assert "3 subgraphs" in one_line_error(capsys, "verify", p)


def test_unsupported_operator_is_named_with_its_index(capsys, tmp_path, zoo):
    graph = tflite_io.load(next(iter(zoo.values())))
    k = len(graph.operators) - 1
    graph.operators[k].opcode = "TANH"
    graph.operators[k].options, graph.operators[k].options_type = {}, None
    p = tmp_path / "tanh.tflite"
    tflite_io.save(graph, p)
    msg = one_line_error(capsys, "inspect", p)
    assert f"operator {k} (TANH)" in msg and "not supported" in msg


@pytest.mark.parametrize("argv", [["--samples", "0"], ["--samples", "-3"],
                                  ["--samples", "many"], ["--seed", "-1"]])
def test_out_of_range_options(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(shared_model("hello_world_int8"))] + argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_subprocess_error_is_one_line_and_debug_shows_traceback(tmp_path):
    p = tmp_path / "junk.tflite"
    p.write_bytes(b"\x00" * 64)
    cmd = [sys.executable, "-m", "tflite_train"]
    r = subprocess.run(cmd + ["inspect", str(p)], capture_output=True, text=True)
    assert r.returncode == EXIT_ERROR
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--debug", "inspect", str(p)], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_verify_refuses_training_models_with_one_line(capsys, tmp_path):
    from tflite_train.demo import EXAMPLE
    out = tmp_path / "t.tflite"
    assert main(["augment", str(EXAMPLE), "-o", str(out), "--num-classes", "3"]) == 0
    capsys.readouterr()
    assert "custom ops (TT_" in one_line_error(capsys, "verify", out)


def test_help_lists_commands():
    r = subprocess.run([sys.executable, "-m", "tflite_train", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0
    assert "inspect" in r.stdout and "verify" in r.stdout
