"""Device checkpoints (micro_kernels/src/tt_checkpoint.c) and their host side
(tflite_train/checkpoint.py): the blob the C code writes is the one the host builds, byte
for byte; restore picks the newest valid slot and refuses other models; power cuts at every
byte of a save, on the host and on the Cortex-M7 rig (tests/checkpoint_powercut.c), never
lose the previous checkpoint; a run resumed from a checkpoint equals the uninterrupted run
(the host engines, and a generated program across a reset on the Cortex-M7 rig).
"""
from __future__ import annotations

import ctypes as C
import json
import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest

import test_cortex_m7
from checkpoint_helpers import (BAD_ARGUMENT, EMPTY, FLASH_ERROR, OK, OTHER_MODEL, TRANSFER,
                                VERIFY_ERROR, Flash, Regions, library, restore, sample,
                                save, slot_for, train_steps)
from conftest import ROOT, SHARED_MODELS, require_tool
from tflite_train import augment, checkpoint, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.cli import main
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import make_executor
from tflite_train.runtime.numpy_exec import Executor

KERNELS = ROOT / "micro_kernels"
POWERCUT = ROOT / "tests" / "checkpoint_powercut.c"
RESUME_RIG = ROOT / "tests" / "codegen_resume_rig.c"
CHECKPOINT_C = KERNELS / "src" / "tt_checkpoint.c"
M7_SP = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]   # STM32F746


@pytest.fixture(scope="module")
def real_states(request):
    """The person detector's bias-only training model with momentum and a cosine decay
    (a zoo model when ../shared is absent), and its checkpoints after 1, 2, 3 and 4
    training steps on the C engine."""
    path = SHARED_MODELS / "tflm" / "person_detect.tflite"
    if path.exists():
        base, name = tflite_io.load(path), "person detector"
    else:
        base, name = tflite_io.load(request.getfixturevalue("zoo")["mobile"]), "zoo mobile"
    r = augment.augment(base, "bias-only", 10, Hyper(momentum=0.9, decay_steps=100, seed=3))
    model = tflite_io.serialize(r.graph)
    mid = checkpoint.model_id(model)
    ex = Executor(r.graph, "c")
    states = []
    for step in range(4):
        train_steps(r.graph, ex, 1, seed=11, start=step)
        states.append(checkpoint.capture(ex, r.graph, mid))
    return name, r.graph, model, states


# --- the blob ------------------------------------------------------------------------------

def test_crc32_is_zlibs():
    lib = library()
    data = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint8)
    assert lib.tt_crc32(0, data.ctypes.data, data.size) == zlib.crc32(data.tobytes())
    half = lib.tt_crc32(0, data.ctypes.data, 1234)
    assert lib.tt_crc32(half, data[1234:].ctypes.data, data.size - 1234) == \
        zlib.crc32(data.tobytes())
    assert lib.tt_crc32(0, None, 0) == 0


def example_states(momentum=0.5, steps=(2, 3)):
    r = augment.augment(tflite_io.load(EXAMPLE), "last:2", 4,
                        Hyper(momentum=momentum, decay_steps=20, seed=1))
    model = tflite_io.serialize(r.graph)
    mid = checkpoint.model_id(model)
    ex = Executor(r.graph, "c")
    out, done = [], 0
    for n in steps:
        train_steps(r.graph, ex, n - done, seed=4, start=done)
        done = n
        out.append(checkpoint.capture(ex, r.graph, mid))
    return r.graph, model, out


def test_the_c_blob_is_the_hosts_and_reads_back():
    graph, model, (ckpt, _) = example_states()
    regions = Regions(ckpt)
    flash = Flash(slot_for(ckpt) + 512)
    assert library().tt_checkpoint_bytes(regions.table, len(regions.arrays)) == \
        checkpoint.blob_bytes(ckpt.regions)
    assert save(flash, ckpt.model_id, regions) == (OK, 1)
    ckpt.sequence = 1
    blob = checkpoint.to_blob(ckpt)
    assert flash.slot(0)[:len(blob)] == blob
    assert set(flash.slot(0)[len(blob):]) == {0xFF}          # the rest stays erased
    back = checkpoint.from_blob(flash.slot(0), graph, model)
    assert back.sequence == 1 and back.regions == ckpt.regions
    for a, b in zip(back.values, ckpt.values):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    kinds = {r.kind for r in ckpt.regions}
    assert kinds == {checkpoint.PARAMETER, checkpoint.MOMENTUM, checkpoint.UPDATE_STATE,
                     checkpoint.RESIDUAL}                  # the head's (augment's default)
    # the header page goes last: every other page is programmed before it
    programs = [offset for what, offset, _ in flash.calls if what == "program"]
    assert programs[-1] == 0 and sorted(programs[:-1]) == programs[:-1]
    assert flash.calls[0] == ("erase", 0, flash.struct.slot_bytes)


def test_restore_takes_the_newest_valid_slot():
    graph, model, (old, new) = example_states()
    regions = Regions(old)
    flash = Flash(slot_for(old))
    assert restore(flash, old.model_id, regions)[0] == EMPTY
    assert save(flash, old.model_id, regions) == (OK, 1)               # A
    regions.set(new)
    assert save(flash, old.model_id, regions) == (OK, 2)               # B
    regions.set(old)
    assert restore(flash, old.model_id, regions) == (OK, 2)
    assert all(np.array_equal(a, b) for a, b in zip(regions.values(), new.values))
    # the next save overwrites the older slot, A
    assert save(flash, old.model_id, regions) == (OK, 3)
    assert checkpoint.from_blob(flash.slot(0), graph, model).sequence == 3
    # a flipped bit in the newest slot: restore falls back to the other one
    flash.memory[100] ^= 0x10
    regions.set(old)
    assert restore(flash, old.model_id, regions) == (OK, 2)
    assert all(np.array_equal(a, b) for a, b in zip(regions.values(), new.values))
    # and the next save goes where the corrupt one was, never over the valid one
    assert save(flash, old.model_id, regions) == (OK, 3)
    assert checkpoint.from_blob(flash.slot(1), graph, model).sequence == 2
    # sequence numbers wrap: 0 is newer than 2^32 - 1
    flash.memory[:] = b"\xff" * len(flash.memory)
    flash.memory[:len(checkpoint.to_blob(old))] = checkpoint.to_blob(
        checkpoint.Checkpoint(old.model_id, old.regions, old.values, 0xFFFFFFFF))
    regions.set(new)
    assert save(flash, old.model_id, regions) == (OK, 0)
    regions.set(old)
    assert restore(flash, old.model_id, regions) == (OK, 0)
    assert all(np.array_equal(a, b) for a, b in zip(regions.values(), new.values))


def test_restore_refuses_another_model_and_leaves_memory_alone():
    _, _, (ckpt, other) = example_states()
    regions = Regions(ckpt)
    flash = Flash(slot_for(ckpt))
    assert save(flash, ckpt.model_id, regions)[0] == OK
    regions.set(other)
    assert restore(flash, ckpt.model_id ^ 1, regions)[0] == OTHER_MODEL
    assert all(np.array_equal(a, b) for a, b in zip(regions.values(), other.values))
    # same model id, another region table (a header of another model version)
    fewer = Regions(checkpoint.Checkpoint(ckpt.model_id, ckpt.regions[:-1], ckpt.values[:-1]))
    assert restore(flash, ckpt.model_id, fewer)[0] == OTHER_MODEL
    # another model's first save takes the empty slot; its second overwrites ours
    assert save(flash, ckpt.model_id ^ 1, regions) == (OK, 1)
    assert checkpoint.HEADER.unpack_from(flash.slot(1))[5] == ckpt.model_id ^ 1
    assert restore(flash, ckpt.model_id, regions)[0] == OK
    assert save(flash, ckpt.model_id ^ 1, regions) == (OK, 2)
    assert restore(flash, ckpt.model_id, regions)[0] == OTHER_MODEL


def test_flash_errors_and_bad_geometry_are_reported():
    _, _, (ckpt, new) = example_states()
    regions = Regions(ckpt)
    slot = slot_for(ckpt)
    flash = Flash(slot)
    assert save(flash, ckpt.model_id, regions) == (OK, 1)
    regions.set(new)
    for what in ("erase", "program", "read"):
        flash.fail = what
        assert save(flash, ckpt.model_id, regions)[0] == FLASH_ERROR, what
    flash.fail = None
    regions.set(ckpt)
    assert restore(flash, ckpt.model_id, regions) == (OK, 1)     # the failed saves lost nothing
    assert all(np.array_equal(a, b) for a, b in zip(regions.values(), ckpt.values))
    # a program that reports success but does not stick: the read-back catches it
    flash._callbacks = (flash._callbacks[0], TRANSFER(lambda *a: 0), flash._callbacks[2])
    flash.struct.program = flash._callbacks[1]
    assert save(flash, ckpt.model_id, regions)[0] == VERIFY_ERROR
    for bad in (Flash(slot - 256), Flash(slot, page_bytes=0)):
        assert save(bad, ckpt.model_id, regions)[0] == BAD_ARGUMENT
    overlapping = Flash(slot)
    overlapping.struct.slot_offset[1] = slot - 4
    assert save(overlapping, ckpt.model_id, regions)[0] == BAD_ARGUMENT
    assert library().tt_checkpoint_bytes(regions.table, 0) == 0


@pytest.mark.parametrize("page", [4, 32, 1000])
def test_other_page_sizes(page):
    """Pages smaller than the header and larger than the blob."""
    graph, model, (ckpt, new) = example_states()
    regions = Regions(ckpt)
    flash = Flash(slot_for(ckpt, page), page_bytes=page)
    assert save(flash, ckpt.model_id, regions) == (OK, 1)
    regions.set(new)
    assert save(flash, ckpt.model_id, regions) == (OK, 2)
    regions.set(ckpt)
    assert restore(flash, ckpt.model_id, regions) == (OK, 2)
    assert all(np.array_equal(a, b) for a, b in zip(regions.values(), new.values))


# --- power cuts ----------------------------------------------------------------------------

PAGE = 256


def data_header(states: list[checkpoint.Checkpoint], strides: tuple[int, int, int]) -> str:
    """powercut_data.h: the regions and the four states as the C program's constants."""
    regions = states[0].regions
    n = len(regions)
    blob = checkpoint.blob_bytes(regions)
    pages = -(-blob // PAGE)
    data = [checkpoint.to_blob(s)[32 + 12 * n:blob - 4] for s in states]
    rows = ",\n".join("  {" + ",".join(map(str, d)) + "}" for d in data)
    return "\n".join([
        f"#define CK_COUNT {n}", f"#define CK_PAGE_BYTES {PAGE}u",
        f"#define CK_BLOB_PAGES {pages}u", f"#define CK_SLOT_BYTES {pages * PAGE}u",
        f"#define CK_STATE_BYTES {len(data[0])}u",
        "static const uint32_t ck_stride[3] = {" + ",".join(map(str, strides)) + "};",
        f"#define CK_MODEL_ID {states[0].model_id:#x}ull",
        "static const uint32_t ck_kind[CK_COUNT] = {"
        + ",".join(str(r.kind) for r in regions) + "};",
        "static const int32_t ck_id[CK_COUNT] = {" + ",".join(str(r.id) for r in regions) + "};",
        "static const uint32_t ck_bytes[CK_COUNT] = {"
        + ",".join(str(r.nbytes) for r in regions) + "};",
        "static const uint8_t ck_state[4][CK_STATE_BYTES] = {", rows, "};", ""])


SWEEP = re.compile(r"(sweep \d) \(([^)]*)\): stride (\d+) byte operations (\d+) cuts checked (\d+) torn "
                   r"bytes (\d+) gave previous (\d+) new (\d+) empty (\d+)")


def sweeps(output: str) -> list[dict]:
    return [dict(name=m[0], what=m[1], stride=int(m[2]), operations=int(m[3]),
                 checked=int(m[4]), torn=int(m[5]), previous=int(m[6]), new=int(m[7]),
                 empty=int(m[8]))
            for m in SWEEP.findall(output)]


def check_sweeps(result: list[dict], states) -> None:
    slot = -(-checkpoint.blob_bytes(states[0].regions) // PAGE) * PAGE
    assert len(result) == 3, result
    for s in result:
        # a save erases the slot and programs it, one byte operation per byte
        assert s["operations"] == 2 * slot
        if s["stride"] == 1:                 # every position, plus the one before the save
            assert s["checked"] - s["torn"] == s["operations"] + 1
        assert s["new"] >= 1 and s["torn"] > 0
    assert result[0]["previous"] == 0 and result[0]["empty"] > 0
    assert all(s["empty"] == 0 and s["previous"] > 0 for s in result[1:])


def test_power_cut_at_every_byte_of_a_save_on_the_host(real_states, tmp_path):
    """Every position of the first save and of a save over an older checkpoint (sweeps 1
    and 2); the mirror-image save into slot B every 16th position (sweep 3), to keep the
    test within seconds (the CRC of the previous slot at each of ~100,000 boots is what
    costs)."""
    name, _, _, states = real_states
    (tmp_path / "powercut_data.h").write_text(data_header(states, (1, 1, 16)))
    exe = tmp_path / "powercut"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-I", str(KERNELS / "include"), "-I", str(tmp_path), str(POWERCUT),
                    str(CHECKPOINT_C), "-o", str(exe)], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    print(f"{name}: {checkpoint.blob_bytes(states[0].regions):,}-byte checkpoint\n"
          + res.stdout)
    assert res.returncode == 0 and res.stdout.rstrip().endswith("PASS"), res.stdout[-3000:]
    check_sweeps(sweeps(res.stdout), states)


RIG_STRIDE = 97      # prime: the sampled positions fall on every offset within a page


def test_power_cuts_on_the_cortex_m7(real_states, tmp_path):
    """The same program on the Cortex-M7 rig (QEMU mps2-an500, the STM32F746's
    fpv5-sp-d16), on a subset of positions: every 97th, plus every byte of the header
    page and of the last page, and the first and last byte of every page."""
    gcc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    require_tool(gcc is not None and qemu is not None,
                 "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    name, _, _, states = real_states
    (tmp_path / "powercut_data.h").write_text(data_header(states, (RIG_STRIDE,) * 3))
    elf = tmp_path / "powercut.elf"
    rig = test_cortex_m7.RIG
    subprocess.run([gcc, *M7_SP, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-DTT_RIG",
                    "-ffunction-sections", "-fdata-sections", "-nostartfiles",
                    "--specs=nano.specs", "--specs=nosys.specs", "-T", str(rig / "link.ld"),
                    "-Wl,--gc-sections", "-I", str(KERNELS / "include"), "-I", str(tmp_path),
                    str(rig / "startup.c"), str(POWERCUT), str(CHECKPOINT_C), "-o", str(elf)],
                   check=True)
    res = subprocess.run(["timeout", "300", qemu, "-M", "mps2-an500", "-cpu", "cortex-m7",
                          "-nographic", "-monitor", "none", "-serial", "stdio",
                          "-semihosting-config", "enable=on,target=native", "-kernel",
                          str(elf)], capture_output=True, text=True)
    output = res.stdout + res.stderr
    print(f"{name} on the Cortex-M7:\n{output}")
    assert res.returncode == 0 and "PASS" in output, output[-3000:]
    check_sweeps(sweeps(output), states)


# --- resume == uninterrupted -----------------------------------------------------------------

def resumable_model(fuse: bool, grad: str = "float32"):
    """Every piece of state matters here: momentum, stochastic rounding (the random
    streams), a cosine decay over the run (the step counters), weights and biases; with
    int8 gradients also the streams of the ops that round them stochastically (int8-nearest:
    rounded to nearest, no stream)."""
    r = augment.augment(tflite_io.load(EXAMPLE), "full", 4,
                        Hyper(lr=0.05, momentum=0.9, rounding="stochastic", seed=9,
                              decay_steps=12, grad=grad.split("-")[0],
                              grad_rounding="nearest" if grad.endswith("-nearest")
                              else "stochastic"), fuse=fuse)
    return r.graph, tflite_io.serialize(r.graph)


def states_equal(a: checkpoint.Checkpoint, b: checkpoint.Checkpoint) -> bool:
    return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a.values, b.values))


@pytest.mark.parametrize("engine", ["numpy", "c", "tflm"])
@pytest.mark.parametrize("fuse, grad", [(True, "float32"), (False, "float32"), (True, "int8"),
                                        (False, "int8"), (True, "int8-nearest")],
                         ids=["fused", "separate", "fused-int8", "separate-int8",
                              "fused-int8-nearest"])
def test_a_resumed_run_equals_the_uninterrupted_one(engine, fuse, grad):
    """Train 5 steps, save a checkpoint through tt_checkpoint_save, restore it through
    tt_checkpoint_restore into a fresh executor (for the TFLM engine: into the memory of a
    fresh TFLM interpreter, where the glue reports it), train 7 more: the losses of all 12
    steps and the final state (parameters, momentum, random streams, steps) equal 12 steps
    in one go, bit for bit. Restoring the parameters alone does not: the test can tell.
    Rounded to nearest, the int8 gradients keep no stream: the checkpoint has none of them
    (every update op has a momentum buffer here, so a key without one is a gradient's)."""
    graph, model = resumable_model(fuse, grad)
    keys = {p for _, p, m in checkpoint.update_ops(graph) if m < 0}
    if grad == "int8":          # the int8 gradients' streams are in the checkpoint too
        assert any(graph.tensors[p].dtype == "int8" for p in keys)
    else:
        assert not keys
    mid, seed, n, m = checkpoint.model_id(model), 21, 5, 7
    straight = make_executor(graph, engine)
    want = train_steps(graph, straight, n + m, seed)
    first = make_executor(graph, engine)
    losses = train_steps(graph, first, n, seed)
    saved = checkpoint.capture(first, graph, mid)
    flash = Flash(slot_for(saved))
    assert save(flash, mid, Regions(saved)) == (OK, 1)

    def resumed(parameters_only: bool):
        booted = Regions(saved)
        for a in booted.arrays:
            a[...] = 0
        assert restore(flash, mid, booted) == (OK, 1)
        ckpt = checkpoint.Checkpoint(mid, booted.regions, booted.values())
        fresh = make_executor(graph, engine)
        x, _ = sample(graph, seed, 0)
        fresh.invoke([x, np.array([-1], np.int32)])           # the boot's first Invoke
        if parameters_only:
            for i, v in ckpt.parameters().items():
                fresh.set_variable(i, v)
        else:
            checkpoint.restore(fresh, graph, ckpt)
        return train_steps(graph, fresh, m, seed, start=n), fresh

    rest, fresh = resumed(parameters_only=False)
    assert [np.float32(v) for v in losses + rest] == [np.float32(v) for v in want]
    assert states_equal(checkpoint.capture(fresh, graph, mid),
                        checkpoint.capture(straight, graph, mid))
    rest, fresh = resumed(parameters_only=True)
    assert rest != want[n:]
    assert not states_equal(checkpoint.capture(fresh, graph, mid),
                            checkpoint.capture(straight, graph, mid))


def rig_phases(output: str) -> list[tuple[str, str]]:
    """The parts of codegen_resume_rig.c's output, each after its "TT phase NAME" line."""
    parts = re.split(r"^TT phase (\w+)$", output, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def rig_call(text: str, what: str) -> tuple[int, int, int]:
    """(instructions, status, value) of a "TT save" or "TT restore" line."""
    ticks, status, value = re.search(rf"^TT {what} ticks (\d+) status (\d+) value (\d+)$",
                                     text, re.M).groups()
    return int(ticks) * 40, int(status), int(value)     # one SysTick tick = 40 instructions


def test_a_generated_program_resumes_across_a_reset_on_the_cortex_m7(tmp_path, capsys):
    """A generated program (tflite-train codegen; split filters, momentum, stochastic
    rounding of the updates and of the int8 gradients, a cosine decay) on the Cortex-M7
    rig, one QEMU run of tests/codegen_resume_rig.c: 6 steps straight; then tt_model_init,
    3 steps, tt_checkpoint_save into a RAM-backed flash, a system reset (start-up code
    again, .data and .bss re-initialised, the flash kept), tt_model_init,
    tt_checkpoint_restore, 3 more steps. Both runs give --engine c's 6 losses, inference scores and checkpoint regions
    (CRC-32s), bit for bit; the blob the device saved is the host's blob of --engine c's
    state after 3 steps, byte for byte, and `export --state` of it gives a model that
    passes `verify`."""
    from tflite_train.codegen import check, generate, rig
    from tflite_train.codegen.project import rig_files, write_files
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    scheme = tmp_path / "ratios.json"
    scheme.write_text(json.dumps({"n_bias_update": 3, "weight_update": [
        {"layer": -1, "ratio": 0.5}, {"layer": -2, "ratio": 1}]}))
    r = augment.augment(tflite_io.load(EXAMPLE), str(scheme), 4,
                        Hyper(lr=0.05, momentum=0.9, rounding="stochastic", seed=9,
                              decay_steps=6, grad_rounding="stochastic"))
    # the int8 gradients' streams are among the regions saved and restored
    assert any(r.graph.tensors[p].dtype == "int8" for _, p, _ in checkpoint.update_ops(r.graph))
    model = tmp_path / "m.train.tflite"
    tflite_io.save(r.graph, model)
    folder = tmp_path / "gen"
    program, _ = generate(model, folder)
    assert program.splits                    # a region that holds part of its filter
    n, m = 3, 3
    xs, labels = check.samples(program, n + m, seed=5)
    write_files(folder, rig_files(program, xs, labels))
    (folder / "rig" / "rig_main.c").write_text(f"#define RIG_RESUME_AT {n}\n"
                                               + RESUME_RIG.read_text())
    output = rig.run_qemu(rig.build(program, folder), timeout=300)
    phases = rig_phases(output)
    assert [name for name, _ in phases] == ["boot", "straight", "first", "boot", "resumed"]
    (_, boot), (_, straight), (_, first), (_, reboot), (_, resumed) = phases
    parse = lambda text: rig.parse(text, program.classes)[0]           # noqa: E731

    want = check.reference(program, xs, labels)
    assert check.differences(program, want, parse(straight)) == []
    got = parse(resumed)
    got.losses = np.concatenate([parse(first).losses, got.losses])
    assert check.differences(program, want, got) == []

    # the reset and tt_model_init really started over: the state after 3 steps is not there
    ex = Executor(r.graph, "c")
    for x, label in zip(xs[:n], labels[:n]):
        ex.invoke([x, np.array([label], np.int32)])
    saved = check.region_bytes(program, ex)
    assert parse(boot).crcs == parse(reboot).crcs
    regions = [region for region, _ in program.checkpoint_regions()]
    for region, crc, data in zip(regions, parse(reboot).crcs, saved):
        if region.kind != checkpoint.PARAMETER:         # step counters, momentum
            assert crc != zlib.crc32(data), region.describe()

    save_instructions, status, sequence = rig_call(first, "save")
    assert (status, sequence) == (OK, 1)
    restore_instructions, status, sequence = rig_call(resumed, "restore")
    assert (status, sequence) == (OK, 1)
    blob = bytes.fromhex(re.search(r"^TT blob ([0-9a-f]+)$", resumed, re.M).group(1))
    values = [np.frombuffer(data, np.dtype(region.dtype).newbyteorder("<")).reshape(region.shape)
              for region, data in zip(regions, saved)]
    assert blob == checkpoint.to_blob(checkpoint.Checkpoint(
        checkpoint.model_id(model.read_bytes()), regions, values, sequence=1))
    (tmp_path / "blob.bin").write_bytes(blob)
    tuned = tmp_path / "m.tuned.tflite"
    assert main(["export", str(model), "--state", str(tmp_path / "blob.bin"), "-o",
                 str(tuned)]) == 0
    assert main(["verify", str(tuned)]) == 0
    capsys.readouterr()
    print(f"{len(blob):,}-byte checkpoint of a generated program on the Cortex-M7: "
          f"save {save_instructions:,} instructions, restore {restore_instructions:,}")
