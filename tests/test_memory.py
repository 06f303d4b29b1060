"""The inference arena plan equals what the real TFLM interpreter allocates."""
import pytest

from conftest import SHARED_TFLM, shared_model
from tflite_train import memory, tflite_io
from tflite_train.runtime.tflm import arena_usage


def assert_plan_matches_tflm(data: bytes):
    graph = tflite_io.parse(data)
    plan = memory.plan_inference(graph)
    assert plan.arena_bytes == arena_usage(data)["head"]
    assert plan.arena_bytes >= max(plan.live)


@pytest.mark.parametrize("name", SHARED_TFLM)
def test_shared_models_plan_equals_tflm_head(name):
    assert_plan_matches_tflm(shared_model(name).read_bytes())


def test_zoo_models_plan_equals_tflm_head(zoo):
    for path in zoo.values():
        assert_plan_matches_tflm(path.read_bytes())


def test_greedy_plan_places_overlapping_buffers_apart():
    bufs = [memory.Buffer("a", 100, 0, 2), memory.Buffer("b", 40, 1, 3),
            memory.Buffer("c", 100, 3, 4)]
    offsets, peak = memory.greedy_plan(bufs)
    # a and c are never alive together: c reuses a's space; b must sit beside both.
    assert offsets[0] == offsets[2] == 0
    assert offsets[1] == 112
    assert peak == 112 + 48


def test_equal_sizes_tie_break_like_tflm():
    # TFLM places equal-size buffers in reverse order of their addition.
    bufs = [memory.Buffer("first", 32, 0, 1), memory.Buffer("second", 32, 0, 1)]
    offsets, _ = memory.greedy_plan(bufs)
    assert offsets == [32, 0]
