"""`tflite-train codegen`: a training model as a standalone C99 program (no interpreter, no
malloc, one static arena planned offline), with its project files. program.py decides,
emit.py writes the C, project.py the folder, rig.py builds and measures it on the Cortex-M7
rig, host.py builds it for the host, check.py says what it must reproduce."""
from __future__ import annotations

from pathlib import Path

from .. import tflite_io
from .emit import render
from .program import CodegenError, Program, build
from .project import project_files, rig_files, staged, write_files

__all__ = ["CodegenError", "Program", "build", "load", "files", "generate", "planned_sram"]


def load(model_path: str | Path, arena_limit: int = 0, input_rows: bool = False) -> Program:
    path = Path(model_path)
    return build(tflite_io.load(path), path.read_bytes(), arena_limit, input_rows)


def planned_sram(graph, data: bytes, input_rows: bool = False) -> dict:
    """The generated program's SRAM by its plan, as `plan` prints it: arena + trained
    parameters + momentum + the batches' accumulators (augment --batch) + the rounding
    residuals (augment --head-residual) + the update ops' random-stream states (no interpreter data, stack not included). CodegenError when the graph cannot be generated. `input_rows`: the
    program of `codegen --input rows` (the sample read row by row, not in the arena)."""
    program = build(graph, data, input_rows=input_rows)
    plan = program.plan
    params = sum(program.param_bytes(v) for _, v in program.params)
    momentum = sum(graph.tensors[m].nbytes for m in program.momentum)
    accumulators = sum(graph.tensors[a].nbytes for a in program.accumulators)
    residuals = sum(graph.tensors[r].nbytes for r in program.residuals)
    states = 8 * len(program.updates)
    return {"arena_bytes": plan.arena_bytes, "trained_parameter_bytes": params,
            "momentum_bytes": momentum, "accumulator_bytes": accumulators,
            "residual_bytes": residuals, "update_state_bytes": states,
            "total_bytes": plan.arena_bytes + params + momentum + accumulators + residuals
            + states,
            "peak_op": plan.peak_op, "peak_op_kind": graph.operators[plan.peak_op].kind,
            "live_at_peak": [{"buffer": name, "bytes": n}
                             for name, n in plan.live_at(plan.peak_op, program.graph)],
            "in_place_ops": sum(not r.view for r in plan.aliases),
            "views": sum(r.view for r in plan.aliases), "split_filters": len(program.splits)}


def files(program: Program, source: str, lean_stack: bool = False) -> dict[str, str]:
    """Every file of the generated folder (without the rig's); `lean_stack`: its Makefile and
    CMakeLists.txt build the kernels with project.LEAN_STACK_DEFINES."""
    code, constants = render(program, source)
    return project_files(program, code, constants, source, lean_stack)


def generate(model_path: str | Path, out_dir: str | Path, rig_steps: int | None = None,
             sram_budget: int | None = None, flash_budget: int | None = None, seed: int = 0,
             data: str | None = None, verify: bool = True, kernels: str = "dsp",
             arena_limit: int = 0, input_rows: bool = False, rig_api: str | None = None,
             lean_stack: bool = False):
    """Writes the folder atomically; with `rig_steps`, also builds it for the Cortex-M7
    rig (the kernels' DSP versions, or their portable C99 with kernels="portable"), runs
    that many training steps there and measures it (the folder is only kept if all of that
    succeeds). `arena_limit`, `input_rows`: as build() takes them. `rig_api`: which API the
    rig's harness trains through, "whole" (tt_train_step) or "rows" (tt_train_step_rows, a
    program with input_rows only; its default). `lean_stack`: smaller stack buffers in the
    DSP kernels (project.LEAN_STACK_DEFINES). Returns (program, rig.Measurement or None)."""
    from . import check, rig
    program = load(model_path, arena_limit, input_rows)
    api = rig_api or ("rows" if input_rows else "whole")
    if api not in ("whole", "rows") or (api == "rows" and not input_rows):
        raise CodegenError(f"the rig's API {api!r}: 'whole', or 'rows' with --input rows")
    measurement = None
    with staged(out_dir) as tmp:
        write_files(tmp, files(program, Path(model_path).name, lean_stack))
        if rig_steps is not None:
            xs, labels = check.samples(program, rig_steps, seed, data)
            write_files(tmp, rig_files(program, xs, labels, api))
            measurement = rig.measure(program, tmp, xs, labels,
                                      sram_budget or rig.SRAM_BUDGET,
                                      flash_budget or rig.FLASH_BUDGET, verify, kernels)
    return program, measurement
