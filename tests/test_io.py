"""Reading and writing .tflite: a re-written model is the same model to TFLM."""
import hashlib

import numpy as np
import pytest

from conftest import SHARED_TFLM, shared_model
from tflite_train import tflite_io
from tflite_train.runtime.tflm import TFLMInterpreter
from tflite_train.verify import random_inputs


def assert_same_ir(a, b):
    assert (a.inputs, a.outputs) == (b.inputs, b.outputs)
    assert len(a.tensors) == len(b.tensors)
    for s, t in zip(a.tensors, b.tensors):
        assert (s.name, s.shape, s.dtype, s.is_variable) == (t.name, t.shape, t.dtype, t.is_variable)
        assert (s.data is None) == (t.data is None)
        if s.data is not None:
            assert np.array_equal(s.data, t.data)
        assert (s.quant is None) == (t.quant is None)
        if s.quant is not None:
            assert np.array_equal(s.quant.scale, t.quant.scale)
            assert np.array_equal(s.quant.zero_point, t.quant.zero_point)
            assert s.quant.axis == t.quant.axis
    for p, q in zip(a.operators, b.operators):
        assert (p.kind, p.inputs, p.outputs, p.options_type) == (q.kind, q.inputs, q.outputs,
                                                                 q.options_type)
        assert p.options.keys() == q.options.keys()
        for k in p.options:
            assert np.array_equal(p.options[k], q.options[k]), k
    assert a.metadata == b.metadata


def assert_roundtrip(original: bytes):
    graph = tflite_io.parse(original)
    rewritten = tflite_io.serialize(graph)
    assert_same_ir(graph, tflite_io.parse(rewritten))
    xs = random_inputs(graph, np.random.default_rng(0))
    outs = []
    for model in (original, rewritten):
        it = TFLMInterpreter(model, preserve_all=False, as_is=True)   # the file's own bytes
        it.invoke(xs)
        outs.append([it.output(k) for k in range(len(graph.outputs))])
    for p, q in zip(*outs):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("name", SHARED_TFLM)
def test_shared_models_roundtrip(name):
    assert_roundtrip(shared_model(name).read_bytes())


def test_zoo_models_roundtrip(zoo):
    for name, path in zoo.items():
        assert_roundtrip(path.read_bytes())


def test_buffers_are_16_byte_aligned(zoo):
    data = next(iter(zoo.values())).read_bytes()
    out = tflite_io.serialize(tflite_io.parse(data))
    import tflite
    m = tflite.Model.GetRootAs(out, 0)
    for i in range(1, m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            assert start % 16 == 0


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, zoo):
    graph = tflite_io.load(next(iter(zoo.values())))
    target = tmp_path / "out.tflite"
    target.write_bytes(b"old contents")
    tflite_io.save(graph, target)
    assert tflite_io.load(target).tensors[0].shape == graph.tensors[0].shape
    assert [p.name for p in tmp_path.iterdir()] == ["out.tflite"]


def test_loading_never_modifies_the_input(zoo):
    path = next(iter(zoo.values()))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    graph = tflite_io.load(path)
    graph.tensors[0].name = "changed"
    tflite_io.serialize(graph)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
