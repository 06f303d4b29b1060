"""The DSP staging's planner rules (codegen/program.py): level_staging, the largest level
each kernel takes within the arena, and widen_staging, the staging widened into
the planned arena's free run at its operator. Fakes stand for the kernels' calls, so that
each rule is seen alone, in milliseconds."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tflite_train import memory
from tflite_train.codegen import program as P
from tflite_train.runtime.kernel_calls import Scratch, Staging


def pointwise_weight(most: int) -> int:
    """A kernel of two staging levels, as a pointwise weight gradient's were until round 20:
    int16 input 4,608 B, int8 2,176, else none (a limit <= 0: none, as the kernels'
    tt_*_stage_bytes take it)."""
    most = most if most > 0 else 1 << 30
    return 4608 if most >= 4608 else 2176 if most >= 2176 else 0


def depthwise_input(most: int) -> int:
    """Blocks of 100 B from 1,000 B up to 9,000 B (a limit <= 0: none)."""
    most = most if most > 0 else 1 << 30
    return min(most, 9000) // 100 * 100 if most >= 1000 else 0


def fake_call(within, limit: int, extra: int | None = None):
    """A call with an optional scratch before its staging (stage, stage_bytes) cut to
    `limit` (the signature's names are all widen_staging reads)."""
    n = within(limit) if limit > 0 else 0
    stage = [Staging(n, within), n] if n > 0 else [None, 0]
    head = [Scratch(extra)] if extra else [None]
    names = ["scratch", "stage", "stage_bytes"]
    sig = SimpleNamespace(params=[SimpleNamespace(name=x) for x in names],
                          index=names.index)
    return SimpleNamespace(name="tt_fake_s8", args=head + stage, signature=sig)


@pytest.fixture
def fakes(monkeypatch):
    wanted = {1: 4608, 2: 9000}
    full = {1: fake_call(pointwise_weight, 4608), 2: fake_call(depthwise_input, 9000)}
    monkeypatch.setattr(P, "staging_ops", lambda graph: dict(wanted))
    monkeypatch.setattr(P, "_calls", lambda graph: full)
    return wanted


def test_level_staging_takes_the_levels_the_arena_has_room_for(fakes):
    """Each operator gets the largest level its kernel takes within the ceiling, the largest
    asked for first (operator 2's 9,000 B)."""
    free = 8000                                          # bytes under the ceiling

    def arena_of(graph, stages):
        used = sum(f(stages[k]) for k, f in ((1, pointwise_weight), (2, depthwise_input))
                   if stages.get(k, 0) > 0)
        return SimpleNamespace(arena_bytes=40000 + max(0, used - free))
    got = P.level_staging(None, arena_of, 40000)
    # operator 2 first: all it asks for (8,000 B), operator 1 none of its levels beside it
    assert depthwise_input(got[2]) == 8000 and 1 not in got
    # operator 2 whole, operator 1 the level below its int16 one (4,608 B no longer fits)
    free = 9000 + 2176
    got = P.level_staging(None, arena_of, 40000)
    assert (pointwise_weight(got[1]), depthwise_input(got[2])) == (2176, 9000)
    assert arena_of(None, got).arena_bytes <= 40000
    # with room for both at their largest, both get it
    free = 4608 + 9000
    got = P.level_staging(None, arena_of, 40000)
    assert (pointwise_weight(got[1]), depthwise_input(got[2])) == (4608, 9000)
    # with room for nothing, nothing
    free = 0
    assert P.level_staging(None, arena_of, 40000) == {}


def plan_with(buffers: list[tuple[str, int, int, int, int | None]], arena: int):
    """A CodegenPlan of (name, bytes, first, last, op) buffers at their offsets in order."""
    bs, offs = [], []
    for name, nbytes, first, last, op, offset in buffers:
        bs.append(memory.Buffer(name, nbytes, first, last, op=op, align=memory.CODEGEN_ALIGN))
        offs.append(offset)
    return memory.CodegenPlan(bs, offs, arena, "test", [], [], [0] * 4, 0, {})


def test_widen_staging_fills_the_free_run_at_its_operator(fakes):
    """Operator 1 (scope 2) got no staging from the planning, operator 2 (scope 3) 1,000 B:
    each is widened into the largest run free during its operator, its own staging's bytes
    counted free, at the levels its kernel takes; the plan's other buffers stay where they
    are, and the staging is the operator's scratch after the one before it."""
    plan = plan_with([
        ("long", 2000, 1, 3, None, 0),               # alive at both
        ("a@1", 1000, 2, 2, None, 2000),             # [2000, 3000) at operator 1
        ("scratch0@1", 100, 2, 2, 1, 3000),          # operator 1's own scratch
        ("b@2", 500, 3, 3, None, 9000),              # [9000, 9500) at operator 2
        ("scratch0@2", 100, 3, 3, 2, 2000),          # operator 2's scratch, then its staging
        ("scratch1@2", 1000, 3, 3, 2, 2100),
    ], 10000)
    calls = {1: fake_call(pointwise_weight, 0, extra=100),
             2: fake_call(depthwise_input, 1000, extra=100)}
    graph = SimpleNamespace(operators=[SimpleNamespace(kind=f"OP{k}") for k in range(4)])
    got = P.widen_staging(graph, calls, plan)
    # operator 1: free [3100, 10000), 6,900 B: the int16 level; operator 2: its 1,000 B freed,
    # free [2100, 9000) 6,900 B and [9500, 10000): 6,900 B
    assert got == {1: 4608, 2: 6900}
    assert calls[1].args[1].nbytes == calls[1].args[2] == 4608
    assert calls[2].args[1].nbytes == calls[2].args[2] == 6900
    placed = {b.name: (off, b.size) for b, off in zip(plan.buffers, plan.offsets)}
    assert placed["long"] == (0, 2000) and placed["b@2"] == (9000, 500)
    mine = [(b.name, off) for b, off in zip(plan.buffers, plan.offsets) if b.op == 2]
    assert mine[0] == ("scratch0@2", 2000) and mine[1][1] == 2100
    assert plan.scratch_offset(1, 1) == 3100 and plan.scratch_offset(2, 1) == 2100
    # nothing overlaps at either operator
    for scope in (2, 3):
        spans = sorted((off, off + b.size) for b, off in zip(plan.buffers, plan.offsets)
                       if b.first <= scope <= b.last)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
        assert spans[-1][1] <= plan.arena_bytes
    # a staging already as large as asked for, or no room: unchanged
    calls = {k: SimpleNamespace(name=c.name, args=c.args, signature=fake_call(
        depthwise_input, 0).signature) for k, c in calls.items()}
    before = [(b.name, b.size, off) for b, off in zip(plan.buffers, plan.offsets)]
    assert P.widen_staging(graph, calls, plan) == {}
    # the stagings tried and put back where they were (a plan without them would leave the
    # calls' Staging indexing the wrong buffer)
    assert [(b.name, b.size, off) for b, off in zip(plan.buffers, plan.offsets)] == before


def test_widen_staging_leaves_an_operator_with_no_free_run_alone(fakes):
    """No byte free during operator 1: no staging (a kernel's limit of 0 would mean no
    limit: its whole staging over what is alive)."""
    plan = plan_with([("full", 10000, 1, 3, None, 0),
                      ("scratch0@1", 100, 2, 2, 1, 10000)], 10100)
    calls = {1: fake_call(pointwise_weight, 0, extra=100)}
    graph = SimpleNamespace(operators=[SimpleNamespace(kind=f"OP{k}") for k in range(4)])
    assert P.widen_staging(graph, calls, plan) == {}
    assert calls[1].args[1] is None and calls[1].args[2] == 0
    assert [b.name for b in plan.buffers] == ["full", "scratch0@1"]


def test_stage_on_stack_moves_a_smaller_arena_staging_out_of_the_plan(fakes, monkeypatch):
    """Operator 2 (a depthwise gradient) has 1,000 B of arena staging, less than its kernel
    takes from the stack's room: the staging moves to the stack (the call's Staging and
    stage_bytes at that level) and its arena buffer leaves the plan, the operator's other
    scratch where it was; operator 1 (another kernel) is left alone; a staging at least as
    large as the room's level stays in the arena."""
    monkeypatch.setattr(P, "STACK_STAGED", {"tt_fake_dw_s8"})
    plan = plan_with([
        ("long", 2000, 1, 3, None, 0),
        ("scratch0@1", 100, 2, 2, 1, 2000),
        ("scratch0@2", 100, 3, 3, 2, 2000),          # operator 2's scratch, then its staging
        ("scratch1@2", 1000, 3, 3, 2, 2100),
    ], 4000)
    calls = {1: fake_call(pointwise_weight, 0, extra=100),
             2: fake_call(depthwise_input, 1000, extra=100)}
    calls[2].name = "tt_fake_dw_s8"
    graph = SimpleNamespace(operators=[SimpleNamespace(kind=f"OP{k}") for k in range(4)])
    assert P.stage_on_stack(graph, calls, plan, room=2345) == {2: 2300}
    assert calls[2].args[1].nbytes == calls[2].args[2] == 2300
    assert calls[2].args[0].nbytes == 100 and calls[1].args[1] is None
    assert [b.name for b in plan.buffers] == ["long", "scratch0@1", "scratch0@2"]
    assert plan.offsets == [0, 2000, 2000]
    assert plan.scratch_offset(2, 0) == 2000
    # again (the fake's signature back): its staging, 2,300 B, is what the room gives
    calls[2] = SimpleNamespace(name=calls[2].name, args=calls[2].args,
                               signature=calls[1].signature)
    assert P.stage_on_stack(graph, calls, plan, room=2345) == {}
    calls[2] = fake_call(depthwise_input, 3000, extra=100)      # an arena staging above it
    calls[2].name = "tt_fake_dw_s8"
    assert P.stage_on_stack(graph, calls, plan, room=2345) == {}
    assert calls[2].args[1].nbytes == 3000


def update_stage_bytes(hw: int, k: int, limit: int, name: str = "tt_conv2d_weight_update_s8_s8"
                       ) -> int:
    """The staging a fused pointwise update of 192 output channels from k input channels at
    hw x hw positions takes within `limit` (the lean stack's chunk buffer)."""
    from tflite_train.runtime import c_kernels
    shape = (1, hw, hw, 192, hw, hw, k, 1, 1, c_kernels.Window(1, 1, 1, 1, 0, 0))
    extra = (c_kernels.LEAN_GRAD_DSP_STAGE_BYTES,) if "update" in name else ()
    return int(c_kernels.K.host_call(name + "_stage_bytes", *shape, *extra, limit))


def test_a_pointwise_weight_update_offers_the_int16_level_or_none():
    """The fused pointwise weight update asks for its input staged whole as int16 or for
    nothing: a layer past that, or given less, takes the walks without staging (the chunked
    update), which run it in fewer instructions than the int8 form of the input it took until
    round 20 (benchmarks/RESULTS.md, "Pointwise weight gradients that staged int8, round 20":
    the person detector's 32->64 @12x12 2.39 -> 1.07 a MAC, MCUNet's 24->120 @16x16 2.43 ->
    0.96), so level_staging and widen_staging never give it a level between. MobileNetV2's
    blocks.12/13.pointwise1 (192x32 at 8x8): 4,608 B or nothing; 128 channels at 6x6 (9,216 B
    as int16, past the 8 KB default): nothing. The gradient alone asks for nothing at any
    shape (since round 21 its large-map walk beats the staging everywhere: RESULTS, round 21
    (pwwg21)), so a plan never gives it arena it would not use."""
    name = "tt_conv2d_weight_update_s8_s8"
    assert [update_stage_bytes(8, 32, m, name) for m in (0, 4608, 4600, 2176)] == \
        [4608, 4608, 0, 0]
    full = update_stage_bytes(14, 16, 0, name)
    assert full == 2 * 196 * 16 + 32 * 49 and update_stage_bytes(14, 16, full - 8, name) == 0
    assert update_stage_bytes(6, 128, 0, name) == 0
    assert [update_stage_bytes(hw, k, m, "tt_conv2d_weight_grad_s8")
            for hw, k in ((8, 32), (14, 16), (6, 128), (2, 4)) for m in (0, 9000)] == [0] * 8

def dw_weight_stage_bytes(h: int, oh: int, c: int, k: int, s: int, pad: int, limit: int
                          ) -> int:
    """tt_depthwise_conv2d_weight_grad_s8_stage_bytes for a square layer of h x h in, oh x oh
    out, c channels, a k x k kernel at stride s with `pad` before (as
    benchmarks/mcu_grad_dsp.py's DEPTHWISE)."""
    from tflite_train.runtime import c_kernels
    win = c_kernels.Window(s, s, 1, 1, pad, pad)
    return int(c_kernels.K.host_call("tt_depthwise_conv2d_weight_grad_s8_stage_bytes", 1, oh,
                                     oh, c, 1, h, h, k, k, win, limit))


def test_a_depthwise_weight_gradient_asks_for_its_channel_major_band():
    """Where the lane walk's bytes (8 (ow + wd) a group of four channels, all groups) fall
    short of the channel-major walk's smallest band with every tap row in one staging (four
    channels' dy row and its kh x rows; two dy rows at stride 2, where one leaves it to the
    lane walk), the query asks for the band (benchmarks/RESULTS.md, "The depthwise weight
    gradient's staging ask, round 22"): the person detector's 3x3/1 8 @48x48 1,600 B (4 x
    (25 + 3 x 25) words), not 1,536 (channel-major already, but one tap row a staging); its
    3x3/2 16 @48x48 2,384 (4 x (2 x 12 + 5 x 25)), not 2,304 (one dy row a band: the lane
    walk). Below the band, the lane walk's bytes; above, as before; a limit under both gives
    less."""
    assert [dw_weight_stage_bytes(48, 48, 8, 3, 1, 1, m) for m in (0, 1600, 1592, 800, 700)] == \
        [1600, 1600, 1536, 768, 0]
    assert [dw_weight_stage_bytes(48, 24, 16, 3, 2, 0, m) for m in (0, 2384, 2376)] == \
        [2384, 2384, 2304]
    # the lane walk's bytes already hold more (32 @24x24 3x3/1: 8 groups): unchanged
    assert dw_weight_stage_bytes(24, 24, 32, 3, 1, 1, 0) == 8 * 8 * (24 + 24)
