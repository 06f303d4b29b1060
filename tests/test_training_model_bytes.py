"""The training model's file stores each quantization array once: a per-channel tensor's
zero points once when they are all equal (8 bytes a channel), and TT_INIT's initial-value
copies none (their variables' say what the values mean; 4 more bytes a channel). Together
182 KB of MCUNet-5FPS's 99kb training model. Every reader of the file sees what it saw in
the file written the old way ("before": a zero point per channel, the copies quantized like
their variables): our parser (the same IR, and the same bytes written again), export (the
same inference model, byte for byte, with a zero point per channel, as TF Lite needs),
codegen (the same program), the fp32 baseline (the same float forward) and TFLM (the same
training, bit for bit, and the same arena: it copies the one zero point into the
per-channel array it allocates anyway). Prepare's rejections of broken training models run
on such files too (test_tflm_engine, test_tflm_memory and test_fuzz serialize their models
the same way)."""
from __future__ import annotations

import copy
import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest
import tflite

from checkpoint_helpers import train_steps
from conftest import require_tool
from test_io import assert_same_ir
from tflite_train import augment, checkpoint, codegen, export, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.ir import TRAINING_KEY
from tflite_train.runtime import make_executor
from tflite_train.runtime.tflm import arena_usage
from tflite_train.runtime.tflm_engine import REGISTERER

# a split filter (layer 1 trains half its input channels), requantization in flash, a new head
SCHEME = {"n_bias_update": 2, "weight_update": [{"layer": 1, "ratio": 0.5},
                                                {"layer": 2, "ratio": 0.5}]}


@pytest.fixture(scope="module")
def training(zoo, tmp_path_factory):
    """(graph as augment returns it, the file's bytes) of a zoo model with every memory pass."""
    path = tmp_path_factory.mktemp("bytes") / "scheme.json"
    path.write_text(json.dumps(SCHEME))
    r = augment.augment(tflite_io.load(zoo["conv_strided"]), str(path), 3,
                        Hyper(seed=1, grad="int8"))
    assert r.metadata["memory"]["split_filters"]
    return r.graph, tflite_io.serialize(r.graph)


def initial_values(graph) -> dict[int, int]:
    """TT_INIT's constants -> the variables they initialise."""
    init = next(op for op in graph.operators if op.kind == "TT_INIT")
    return dict(zip(init.inputs[0::2], init.inputs[1::2]))


def before(graph) -> bytes:
    """The file of `graph` as it was written before: the copies quantized like their
    variables, one zero point per channel (its training record under a name of the same
    length, which does not make it a training model to the writer)."""
    g = copy.deepcopy(graph)
    for c, v in initial_values(g).items():
        g.tensors[c].quant = copy.deepcopy(g.tensors[v].quant)
    g.metadata = {(k.upper() if k == TRAINING_KEY else k): v for k, v in g.metadata.items()}
    return tflite_io.serialize(g)


def read_before(graph):
    """The IR readers got from the file written before (training record restored)."""
    return replace(tflite_io.parse(before(graph)), metadata=dict(graph.metadata))


def quantization(data: bytes) -> list[tuple[int, int]]:
    """(scales, zero points) stored per tensor of a .tflite file."""
    sg = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    out = []
    for i in range(sg.TensorsLength()):
        q = sg.Tensors(i).Quantization()
        out.append((q.ScaleLength(), q.ZeroPointLength()) if q is not None else (0, 0))
    return out


def test_each_quantization_array_is_stored_once(training):
    graph, data = training
    stored, old = quantization(data), quantization(before(graph))
    copies = initial_values(graph)
    per_channel = [n for i, (n, _) in enumerate(old) if n > 1 and i not in copies]
    assert len(per_channel) >= 6 and sum(n > 1 for i, (n, _) in enumerate(old)
                                         if i in copies) >= 2
    for i, ((n, z), (n0, z0)) in enumerate(zip(stored, old)):
        assert n0 == z0                                 # before: a zero point per channel
        assert (n, z) == ((0, 0) if i in copies else (n0, min(z0, 1)))
    # 8 bytes a channel of zero points, 12 of each copy's arrays; give or take each
    # vector's alignment to 8 and a quantization table
    saved = 8 * sum(n - 1 for n in per_channel) + 12 * sum(old[i][0] for i in copies)
    assert abs(len(before(graph)) - len(data) - saved) <= 8 * len(per_channel) + 40 * len(copies)


def test_unequal_zero_points_are_all_kept(training):
    graph, data = training
    g = tflite_io.parse(data)
    t = next(t for t in g.tensors if t.quant is not None and t.quant.per_channel)
    t.quant.zero_point = np.arange(t.quant.scale.size, dtype=np.int64) % 2
    again = tflite_io.parse(tflite_io.serialize(g))
    assert np.array_equal(again.tensors[g.tensors.index(t)].quant.zero_point,
                          t.quant.zero_point)


def test_the_parser_reads_the_same_model_and_writes_the_same_bytes(training):
    graph, data = training
    parsed, old = tflite_io.parse(data), read_before(graph)
    for c in initial_values(graph):
        assert parsed.tensors[c].quant is None
        old.tensors[c].quant = None
    assert_same_ir(old, parsed)
    assert tflite_io.serialize(parsed) == data


def test_export_gives_the_same_inference_model_with_every_zero_point(training):
    graph, data = training
    values = {v: graph.tensors[c].data for c, v in initial_values(graph).items()}
    blobs = [tflite_io.serialize(export.export(g, values, {"test": True}))
             for g in (read_before(graph), tflite_io.parse(data))]
    assert blobs[0] == blobs[1]
    stored = [q for q in quantization(blobs[0]) if q[0]]
    assert any(n > 1 for n, _ in stored) and all(n == z for n, z in stored)


def test_codegen_generates_the_same_program(training):
    graph, data = training
    programs = [codegen.files(codegen.build(g, data), "m.tflite")
                for g in (read_before(graph), tflite_io.parse(data))]
    assert programs[0] == programs[1]


def test_tflm_trains_the_file_like_the_c_engine_in_the_same_arena(training):
    graph, data = training
    runs = []
    for g, engine in ((read_before(graph), "c"), (tflite_io.parse(data), "tflm")):
        executor = make_executor(g, engine)
        losses = train_steps(g, executor, 3, seed=2)
        runs.append((losses, {i: np.array(executor.variables[i])
                              for i in checkpoint.trained_parameters(g)}))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(runs[0][1][i], runs[1][1][i]) for i in runs[0][1])
    # plan's model of TFLM's memory needs no change: TFLM allocates the per-channel arrays
    # whatever the file holds, and TT_INIT's Prepare reads no copy's quantization
    usage = [arena_usage(b, registerers=[REGISTERER], as_is=True) for b in (data, before(graph))]
    assert usage[0] == usage[1]


def test_the_fp32_baseline_reads_the_same_float_model(training):
    require_tool(importlib.util.find_spec("tensorflow") is not None,
                 "tensorflow-cpu (a dev dependency)")
    from tflite_train.fp32 import FloatTrainer
    graph, data = training
    trainers = [FloatTrainer(g) for g in (read_before(graph), tflite_io.parse(data))]
    x = np.random.default_rng(0).integers(-128, 128, graph.tensors[graph.inputs[0]].shape
                                          ).astype(np.int8)
    outs = [{i: np.asarray(v) for i, v in t._forward(t.real_input(x)).items()}
            for t in trainers]
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) > 5
    assert all(np.array_equal(outs[0][i], outs[1][i]) for i in outs[0])
    assert all(np.array_equal(p.numpy(), trainers[1].params[i].numpy())
               for i, p in trainers[0].params.items())
