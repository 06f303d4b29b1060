"""The test suite's shortcuts, which must not change what the tests check.

The generated programs on the rig (conftest's generated_rig_kernels,
board_build.shared_rig_make): `make rig` links the kernels' objects
compiled once per session and flags (the Makefile's RIG_KERNEL_OBJS) instead of compiling
micro_kernels/src in every folder. The ELF it links must be the very bytes the folder's own
`make rig` links, for both kernel builds and with the lean stack's defines, or every rig
test would be checking a different program than a user gets."""
from __future__ import annotations

import pytest

import session_cache

from conftest import require_tool
from test_codegen import training_model
from test_codegen_chain import chain_model
from tflite_train.autodiff import Hyper
from tflite_train.codegen import check, generate, rig
from tflite_train.codegen.project import rig_files, write_files


# keys other tests build anyway: the lean stack's DSP kernels, the portable ones
@pytest.mark.parametrize("kernels,lean", [("dsp", True), ("portable", False)])
def test_shared_kernel_objects_link_the_same_program(tmp_path, kernels, lean):
    require_tool(rig.available(), "the Cortex-M7 rig (gcc-arm-none-eabi, qemu-system-arm)")
    assert getattr(rig._make, "shared_kernels", False), "conftest no longer wraps rig._make"
    model = training_model(tmp_path, chain_model(tmp_path / "chain.tflite"), "last:4",
                           hyper=Hyper(grad="int8"))
    out = tmp_path / "gen"
    program, _ = generate(model, out, lean_stack=lean)
    xs, labels = check.samples(program, 1, seed=3)
    write_files(out, rig_files(program, xs, labels))
    own = rig._make.__wrapped__(out, rig.SRAM_BUDGET, rig.FLASH_BUDGET, kernels, out="own")
    assert own.returncode == 0, own.stderr[-2000:]
    shared = rig._make(out, rig.SRAM_BUDGET, rig.FLASH_BUDGET, kernels, out="shared")
    assert shared.returncode == 0, shared.stderr[-2000:]
    # the shortcut was taken: only the program's own three objects were compiled here
    assert sorted(p.name for p in (out / "shared" / "rig").glob("*.o")) == \
        ["rig_main.o", "startup.o", "tt_model.o"]
    assert len(list((out / "own" / "rig").glob("*.o"))) > 3
    assert (out / "shared" / "rig.elf").read_bytes() == (out / "own" / "rig.elf").read_bytes()


def test_plans_are_kept_by_their_inputs_and_not_while_patched(tmp_path, monkeypatch):
    """session_cache: the same model planned twice is one plan (a copy each time, the same
    C); a test that replaces a planner function gets a plan of its own code, and a plan made
    so is not kept."""
    from tflite_train import codegen
    from tflite_train.codegen import load
    from tflite_train.codegen import program as P
    assert getattr(codegen.build, "__wrapped__", None) is not None, "conftest no longer wraps"
    # (test_codegen_chain's model: this arena does not need its two streams, forcing them
    # changes the plan)
    model = training_model(tmp_path, chain_model(tmp_path / "chain.tflite"), "last:4",
                           hyper=Hyper(grad="int8", seed=11))
    before = dict(session_cache.stats)
    first, second = load(model), load(model)
    assert session_cache.stats["plan hits"] - before["plan hits"] >= 1
    assert first is not second and first.plan is not second.plan
    assert codegen.files(first, "m") == codegen.files(second, "m")
    streamed = first.streamed
    monkeypatch.setattr(P, "choose_streams", lambda graph, outside: P.blocks(graph))
    patched = load(model)
    assert patched.streamed != streamed
    monkeypatch.undo()
    assert load(model).streamed == streamed


def test_kernel_lines_are_taken_only_with_flags_that_mean_the_same_anywhere(tmp_path):
    """board_build.rig_kernel_lines: the kernels' compile lines of `make -n rig`, in order,
    with `-I.` dropped (nothing of the folder's is included); None, so that the folder builds
    its own, where a relative path would name other files from the objects' folder, or the
    lines do not have one set of flags."""
    import board_build
    kernels, folder = tmp_path / "k", tmp_path / "gen"
    (kernels / "src").mkdir(parents=True)
    folder.mkdir()
    for name in ("a", "b"):
        (kernels / "src" / f"{name}.c").write_text('#include "tt_kernels.h"\n')

    def dry(*flags, second=None):
        line = lambda src, f: " ".join([board_build.GCC, *f, "-c", "-o", f"build/{src}.o",  # noqa: E731
                                        str(kernels / "src" / f"{src}.c")])
        return "\n".join([line("a", flags), line("b", second or flags), "gcc tt_model.c"])
    flags = ["-O2", "-I.", f"-I{kernels / 'include'}", "-include", str(kernels / "x.h")]
    sources, got = board_build.rig_kernel_lines(dry(*flags), folder, kernels)
    assert sources == [kernels / "src" / "a.c", kernels / "src" / "b.c"]
    assert got == [f for f in flags if f != "-I."]
    for relative in (["-Iinclude"], ["-I", "include"], ["-include", "x.h"], ["-isystem", "s"]):
        assert board_build.rig_kernel_lines(dry("-O2", *relative), folder, kernels) is None
    assert board_build.rig_kernel_lines(dry("-O2", second=["-O0"]), folder, kernels) is None
    (folder / "tt_kernels.h").write_text("")       # the folder would shadow a kernel header
    assert board_build.rig_kernel_lines(dry(*flags), folder, kernels) is None


def test_a_patched_method_is_seen(monkeypatch):
    """A test that replaces a method of a tflite_train class gets no cached plan or model
    (session_cache.unpatched looks into the classes the modules define)."""
    from tflite_train.codegen.program import Program
    assert session_cache.unpatched()
    monkeypatch.setattr(Program, "checkpoint_regions", lambda self: [])
    assert not session_cache.unpatched()
    monkeypatch.undo()
    assert session_cache.unpatched()
