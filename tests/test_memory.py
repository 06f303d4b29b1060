"""The arena plan equals what the real TFLM interpreter allocates, for inference models and
(with our training ops registered) for training models."""
import numpy as np
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


def test_training_model_plans_equal_tflm_head(zoo):
    """Training graphs (saved activations, masks, gradients, the fused updates' scratch)
    planned in file order: the same head as TFLM's, our kernels registered."""
    from tflite_train import augment
    from tflite_train.autodiff import Hyper
    from tflite_train.demo import EXAMPLE
    from tflite_train.runtime.tflm_engine import training_arena_usage
    models = [(EXAMPLE, 4, s, fuse) for s in ("full", "bias-only", "last:2")
              for fuse in (True, False)]
    models += [(zoo[n], None, "full", True) for n in ("branches", "mobile", "softmax_mid")]
    for path, classes, scheme, fuse in models:
        graph = augment.augment(tflite_io.load(path), scheme, classes, Hyper(momentum=0.5),
                                fuse=fuse).graph
        plan = memory.plan(graph)
        head = training_arena_usage(tflite_io.serialize(graph))["head"]
        assert plan.arena_bytes == head, (path.name, scheme, fuse)


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


def test_plan_command_inference_parts_are_tflm_numbers(capsys):
    import json

    from tflite_train.cli import main
    path = shared_model("person_detect")
    assert main(["plan", str(path), "--json", "--target", "wheel-x86_64"]) == 0
    info = json.loads(capsys.readouterr().out)
    usage = arena_usage(path.read_bytes())
    assert info["arena_bytes"] == usage["head"]
    assert info["persistent_bytes"] == usage["tail"]
    assert info["total_bytes"] == usage["head"] + usage["tail"]
    assert info["peak_op_kind"] == "CONV_2D" and not info["training"]


def test_plan_of_a_training_model_splits_its_parts(tmp_path, capsys):
    import json

    from tflite_train import augment
    from tflite_train.cli import main
    from tflite_train.demo import EXAMPLE
    r = augment.augment(tflite_io.load(EXAMPLE), "full", num_classes=4,
                        hyper=augment.autodiff.Hyper(momentum=0.9))
    model = tmp_path / "t.tflite"
    tflite_io.save(r.graph, model)
    png = tmp_path / "plan.png"
    assert main(["plan", str(model), "--json", "--plot", str(png), "--target",
                 "wheel-x86_64"]) == 0
    info = json.loads(capsys.readouterr().out)
    parts = memory.training_parts(r.graph)
    # the variables as TFLM places them in the arena's tail, alignment included
    assert info["training"] and info["trainable_bytes"] >= parts.trainable_bytes
    assert info["optimizer_bytes"] >= parts.optimizer_bytes > 0
    peak = info["arena_at_peak"]
    assert peak["gradients"] > 0 and peak["saved activations"] >= 0
    assert info["arena_bytes"] >= sum(peak.values())
    assert len(info["timeline"]) == len(r.graph.operators)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # TFLM's persistent data, measured with our ops registered, without the variables
    from tflite_train.runtime.tflm_engine import training_arena_usage
    usage = training_arena_usage(model.read_bytes())
    assert info["arena_bytes"] == usage["head"]
    variables = info["trainable_bytes"] + info["optimizer_bytes"]
    assert info["persistent_bytes"] == usage["tail"] - variables > 0
    assert variables - parts.trainable_bytes - parts.optimizer_bytes < 16 * sum(
        t.is_variable for t in r.graph.tensors)
    assert main(["plan", str(model), "--timeline"]) == 0
    assert "TT_LOSS_SOFTMAX_CE" in capsys.readouterr().out


def test_compare_lists_each_scheme_with_its_parts(tmp_path, capsys):
    import json

    from tflite_train.cli import main
    from tflite_train.demo import EXAMPLE, new_task
    data = new_task(tmp_path / "tex.npz", n=40)
    assert main(["compare", str(EXAMPLE), "--num-classes", "4", "--schemes",
                 "full,bias-only:1,last:2", "--data", str(data), "--steps", "10",
                 "--json"]) == 0
    rows = {r["scheme"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["full", "bias-only:1", "last:2"]
    full, b1, l2 = rows["full"], rows["bias-only:1"], rows["last:2"]
    assert full["trained_params"] > l2["trained_params"] > b1["trained_params"]
    assert full["macs"] > l2["macs"] > b1["macs"] > 67_648       # forward + some backward
    # whole weight gradients dominate full's separate plan; in place they never exist
    assert full["peak_fused"] < full["peak_separate"]
    for r in rows.values():
        assert r["peak_fused"] == r["arena_fused"] + r["trainable_bytes"] + r["optimizer_bytes"]
        # the training model file holds the whole forward model and more
        assert 0 <= r["accuracy"] <= 1 and r["flash_bytes"] > len(EXAMPLE.read_bytes())
    assert main(["compare", str(EXAMPLE), "--schemes", "most"]) == 2
    assert "unknown scheme" in capsys.readouterr().err


def test_offline_plan_is_used_by_tflm_and_changes_nothing_else(tmp_path, capsys, zoo):
    """Our offline plan, embedded as OfflineMemoryAllocation metadata: TFLM places the
    tensors where it says, needs no more arena than it, and computes the same outputs."""
    import numpy as np

    from tflite_train.cli import main
    from tflite_train.runtime.numpy_exec import outputs
    from tflite_train.runtime.tflm import TFLMInterpreter
    from tflite_train.verify import random_inputs
    from conftest import SHARED_MODELS
    person = SHARED_MODELS / "tflm" / "person_detect.tflite"
    models = [person] if person.exists() else []          # the zoo alone still checks it
    models += [zoo["mobile"], zoo["depthwise"], zoo["branches"]]
    for path in models:
        out = tmp_path / f"{path.stem}.offline.tflite"
        assert main(["plan", str(path), "--write-offline", str(out)]) == 0
        capsys.readouterr()
        g = tflite_io.load(out)
        assert memory.OFFLINE_KEY in g.metadata
        buffers = memory.tflm_buffers(g)
        _, planned, _ = memory.offline_plan(buffers)
        scratch = sum(b.aligned for b in buffers if b.tensor is None)
        head = arena_usage(out.read_bytes())["head"]
        assert planned <= head <= planned + scratch
        xs = random_inputs(g, np.random.default_rng(0))
        it = TFLMInterpreter(out.read_bytes(), preserve_all=False)
        it.invoke(xs)
        assert np.array_equal(it.output(0), outputs(g, xs)[0])


def _place_parts_by_definition(buffers, order):
    """place_parts as specified: try 0 and every near part's end less a rect's start, in
    ascending order, checking each against every near part (quadratic; the reference)."""
    placed, offsets = [], [0] * len(buffers)
    for i in order:
        rects = buffers[i].rects()
        near = [p for p in placed if any(p[0] <= r[1] and r[0] <= p[1] for r in rects)]
        for base in sorted({0} | {p[3] - r[2] for p in near for r in rects if p[3] > r[2]}):
            if not any(p[0] <= r[1] and r[0] <= p[1] and p[2] < base + r[3] and
                       base + r[2] < p[3] for r in rects for p in near):
                break
        offsets[i] = base
        placed += [(r[0], r[1], base + r[2], base + r[3]) for r in rects]
    return offsets


def test_place_parts_is_first_fit_over_its_candidates():
    """The sweep in place_parts gives the offsets of the definition, for buffers of one
    part and of several (aliased groups: parts at offsets within the group, over time)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        buffers = []
        for _ in range(int(rng.integers(1, 40))):
            first = int(rng.integers(0, 30))
            if rng.random() < 0.3:
                parts, lo = [], 0
                for _ in range(int(rng.integers(2, 4))):
                    f = first + int(rng.integers(0, 5))
                    size = 16 * int(rng.integers(1, 20))
                    parts.append((f, f + int(rng.integers(0, 6)), lo, lo + size))
                    lo += 16 * int(rng.integers(-3, 6))
                    lo = max(lo, 0)
                buffers.append(memory.Buffer("g", max(p[3] for p in parts),
                                             min(p[0] for p in parts),
                                             max(p[1] for p in parts), parts=tuple(parts)))
            else:
                buffers.append(memory.Buffer("b", int(rng.integers(1, 400)), first,
                                             first + int(rng.integers(0, 8))))
        order = [int(i) for i in rng.permutation(len(buffers))]
        assert memory.place_parts(buffers, order)[0] == \
            _place_parts_by_definition(buffers, order)
