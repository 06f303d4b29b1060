"""The numpy int8 forward against the real TFLM interpreter: every tensor, bit for bit."""
import numpy as np
import pytest

from conftest import SHARED_TFLM, shared_model
from tflite_train import ops, tflite_io
from tflite_train.runtime import numpy_exec, tflm
from tflite_train.verify import random_inputs

REQUIRED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "PAD",
                "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "RESHAPE", "SOFTMAX", "QUANTIZE",
                "DEQUANTIZE", "TRANSPOSE"}


def assert_every_tensor_exact(path, seeds=(0, 1, 2)):
    data = path.read_bytes()
    graph = tflite_io.parse(data)
    ops.validate(graph)
    for seed in seeds:
        xs = random_inputs(graph, np.random.default_rng(seed))
        ours = numpy_exec.run(graph, xs)
        theirs = tflm.run_all(graph, data, xs, as_is=True)    # TFLM on the file itself
        for index, value in theirs.items():
            assert np.array_equal(ours[index], value), (
                f"{path.name} seed {seed}: tensor {index} ({graph.tensors[index].name}) "
                f"differs in {np.count_nonzero(ours[index] != value)} elements")


@pytest.mark.parametrize("name", SHARED_TFLM)
def test_shared_models_bit_exact(name):
    assert_every_tensor_exact(shared_model(name))


def test_zoo_models_bit_exact(zoo):
    for path in zoo.values():
        assert_every_tensor_exact(path)


def test_zoo_covers_every_op_and_option(zoo):
    """The family of generated models exercises each op and option the forward claims."""
    seen_ops, seen = set(), set()
    for path in zoo.values():
        g = tflite_io.load(path)
        for op in g.operators:
            seen_ops.add(op.kind)
            o = op.options
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
                seen.add((op.kind, "padding", o["padding"]))
                seen.add((op.kind, "stride2", o["stride_h"] == 2))
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                seen.add((op.kind, "act", o["fused_activation_function"]))
                seen.add((op.kind, "dilated", o["dilation_h_factor"] > 1))
                w = g.tensors[op.inputs[1]]
                seen.add((op.kind, "per_channel", w.quant.per_channel))
            if op.kind == "DEPTHWISE_CONV_2D":
                seen.add(("dw", "multiplier", o["depth_multiplier"] > 1))
            if op.kind == "FULLY_CONNECTED":
                seen.add(("fc", "act", o["fused_activation_function"]))
    assert REQUIRED_OPS <= seen_ops, REQUIRED_OPS - seen_ops
    for kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        for want in [("padding", 0), ("padding", 1), ("stride2", True), ("dilated", True),
                     ("act", 0), ("per_channel", True), ("per_channel", False)]:
            assert (kind,) + want in seen, (kind,) + want
    for want in [("CONV_2D", "act", 1), ("CONV_2D", "act", 3), ("DEPTHWISE_CONV_2D", "act", 3),
                 ("dw", "multiplier", True), ("AVERAGE_POOL_2D", "padding", 0),
                 ("AVERAGE_POOL_2D", "padding", 1), ("MAX_POOL_2D", "padding", 0),
                 ("MAX_POOL_2D", "padding", 1)]:
        assert want in seen, want
