"""A Program (program.py) as C99: tt_model.h (the API) and tt_model.c (the whole training
step: constants, SRAM state, the arena, one kernel call per operator)."""
from __future__ import annotations

import ctypes as C

import numpy as np

from .. import __version__, checkpoint
from ..runtime import kernel_calls as K
from ..runtime import stream_args
from ..runtime.kernel_calls import In, KernelCall, Out, Scratch, UpdateState
from ..training_ops import options_of
from .program import CodegenError, Program, SplitPart, TensorArg

C_TYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "uint8": "uint8_t",
           "int16": "int16_t", "uint32": "uint32_t"}
ARENA = "tt_arena.bytes"


def c_float(value: float, ctype: str = "float") -> str:
    v = float(np.float32(value)) if ctype == "float" else float(value)
    if not np.isfinite(v):
        raise ValueError(f"internal: a non-finite {ctype} constant ({v})")
    text = v.hex()
    return text + "f" if ctype == "float" else text


def c_int(value: int, ctype: str = "int32_t") -> str:
    value = int(value)
    if ctype in ("uint32_t",):
        return f"{value & 0xFFFFFFFF}u"
    if value == -2**31:
        return "(-2147483647 - 1)"
    return str(value)


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


class Constants:
    """Constant arrays and structs of tt_model.c, each emitted once (identical contents
    share one definition)."""

    SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "uint32_t": 4,
             "float": 4, "double": 8}

    def __init__(self):
        self.lines: list[str] = []
        self.names: dict[tuple, str] = {}
        self.nbytes = 0                     # of every array and struct defined


    def array(self, values: np.ndarray, ctype: str, name: str | None = None,
              comment: str = "") -> str:
        flat = np.ascontiguousarray(values).ravel()
        key = (ctype, flat.dtype.str, flat.tobytes())
        if key in self.names:
            return self.names[key]
        name = name or f"tt_k{len(self.names)}"
        self.names[key] = name
        if ctype == "float":
            items = [c_float(v) for v in flat]
        elif ctype == "double":
            items = [c_float(v, "double") for v in flat]
        else:
            items = [c_int(v, ctype) for v in flat]
        self.nbytes += max(len(items), 1) * self.SIZES[ctype]
        rows = [", ".join(items[i:i + 16]) for i in range(0, len(items), 16)] or ["0"]
        note = f"  /* {_comment(comment)} */" if comment else ""
        self.lines.append(f"static const {ctype} {name}[{max(len(items), 1)}] TT_ALIGNED = "
                          f"{{{note}")
        self.lines += [f"  {r}," for r in rows]
        self.lines.append("};")
        return name

    def struct(self, value: C.Structure) -> str:
        cname = type(value).__name__
        fields = K.structs()[cname]
        parts = []
        for f, ctype in fields:
            v = getattr(value, f)
            parts.append(f".{f} = " + (c_float(v, ctype) if ctype in ("float", "double")
                                       else c_int(v, ctype)))
        key = (cname, tuple(parts))
        if key in self.names:
            return self.names[key]
        name = f"tt_k{len(self.names)}"
        self.names[key] = name
        self.nbytes += C.sizeof(value)
        self.lines.append(f"static const {cname} {name} = {{{', '.join(parts)}}};")
        return name


class Emitter:
    def __init__(self, program: Program, source: str):
        self.p = program
        self.g = program.graph
        self.source = source
        self.constants = Constants()
        self.state_index = {k: i for i, (k, _) in enumerate(program.updates)}
        self.params = {var: const for const, var in program.params}
        self.stack_lines: list[str] = []   # stack_function's functions, before run()
        self.accumulators = set(program.accumulators)
        self.residuals = set(program.residuals)

    # --- where a tensor is, as a C expression ---------------------------------------------

    def param_name(self, tensor: int) -> str:
        return f"tt_p{tensor}"

    def momentum_name(self, tensor: int) -> str:
        return f"tt_m{tensor}"

    def accumulator_name(self, tensor: int) -> str:
        return f"tt_a{tensor}"

    def residual_name(self, tensor: int) -> str:
        return f"tt_r{tensor}"

    def tensor_expr(self, tensor: int, param: K.Param | None = None) -> str:
        tensor = self.p.storage_of(tensor)
        t = self.g.tensors[tensor]
        ctype = C_TYPES[t.dtype]
        if tensor in self.p.arena_tensors:
            off = self.p.plan.offset_of(tensor)
            const = "const " if param is not None and param.const else ""
            target = ctype if param is None or param.ctype == "void" else param.ctype
            return f"({const}{target} *)({ARENA} + {off})"
        if tensor == self.p.loss:
            return "loss"
        if t.is_variable:
            if tensor in self.params:
                return self.param_name(tensor)
            if tensor in self.accumulators:
                return self.accumulator_name(tensor)
            if tensor in self.residuals:
                return self.residual_name(tensor)
            return self.momentum_name(tensor)
        if t.is_constant:
            return self.constants.array(t.data, ctype, f"tt_c{tensor}",
                                        f"{t.name}: {_shape(t.shape)} {t.dtype}")
        raise ValueError(f"internal: tensor {tensor} ({t.name}) has no storage")

    def split_expr(self, part: SplitPart) -> str:
        if part.part == "lo":
            return self.param_name(part.tensor)
        split = self.p.splits[part.tensor]
        init = self.params[part.tensor]
        data = self.g.tensors[init].data[..., split.k:]
        return self.constants.array(data, "int8_t", f"tt_c{part.tensor}_hi",
                                    f"{self.g.tensors[part.tensor].name}: frozen input channels "
                                    f"{split.k}..{split.depth - 1}, {_shape(data.shape)}")

    def arg(self, k: int, param: K.Param, a, scratch: int = 0) -> str:
        """C for argument `a` of operator k's call (`scratch`: which of the call's scratch
        buffers, when it is one)."""
        op = self.g.operators[k]
        if a is None:
            return "0"
        if self.p.rows is not None and k == self.p.rows.op and self.reads_sample(k, a):
            return "source"
        if isinstance(a, In) and a.value:
            if op.inputs[a.k] != self.p.label:
                raise CodegenError(f"operator {k} ({op.kind}) reads a tensor's value at run "
                                   "time; the generated program knows only the label's")
            return "label"
        if isinstance(a, In):
            return "0" if op.inputs[a.k] < 0 else self.tensor_expr(op.inputs[a.k], param)
        if isinstance(a, Out):
            return self.tensor_expr(op.outputs[a.k], param)
        if isinstance(a, Scratch):
            return f"({param.ctype} *)({ARENA} + {self.p.plan.scratch_offset(k, scratch)})"
        if isinstance(a, UpdateState):
            return f"&tt_state[{self.state_index[k]}]"
        if isinstance(a, SplitPart):
            return self.split_expr(a)
        if isinstance(a, TensorArg):
            return self.tensor_expr(a.tensor, param)
        if isinstance(a, np.ndarray):
            return self.constants.array(a, param.ctype)
        if isinstance(a, C.Structure):
            return "&" + self.constants.struct(a)
        if param.ctype in ("float", "double"):
            return c_float(a, param.ctype)
        return c_int(a, param.ctype)

    def reads_sample(self, k: int, a) -> bool:
        op = self.g.operators[k]
        return (isinstance(a, TensorArg) and a.tensor == self.p.sample) or \
            (isinstance(a, In) and not a.value and op.inputs[a.k] == self.p.sample)

    def call(self, k: int, call: KernelCall) -> tuple[list[str], str]:
        """(the declarations the call needs: a stream's argument structs, static const
        designated initialisers; the call)."""
        scratch = [sum(isinstance(b, Scratch) for b in call.args[:i])
                   for i in range(len(call.args))]
        params = call.signature.params
        # a staging on the stack (Program.stack_stages): the local array of stack_function,
        # whatever size the build gives it
        local = {}
        if k in self.p.stack_stages:
            stage = call.signature.index("stage")
            local = {stage: "tt_stage.bytes", stage + 1: "(int32_t)sizeof tt_stage.bytes"}
        args = [local[i] if i in local else self.arg(k, p, a, j)
                for i, (p, a, j) in enumerate(zip(params, call.args, scratch))]
        name = self.p.rows.kernel if self.p.rows is not None and k == self.p.rows.op \
            else call.name
        decls = []
        if name in stream_args.STREAMS:
            decls, args = stream_args.c_groups(name, [p.name for p in params], args,
                                               f"tt_s{k}_")
        return decls, f"{stream_args.c_function(name)}({', '.join(args)})"

    # --- the files --------------------------------------------------------------------------

    def state_lines(self) -> list[str]:
        lines = ["/* Trained parameters (SRAM), their initial values in flash; momentum and the",
                 " * update ops' random streams (SRAM). tt_model_init() sets all of them. */"]
        for const, var in self.p.params:
            t = self.g.tensors[var]
            split = self.p.splits.get(var)
            shape = split.shape("lo") if split else t.shape
            what = (f"input channels 0..{split.k - 1} of {_shape(t.shape)}" if split
                    else _shape(t.shape))
            lines.append(f"static {C_TYPES[t.dtype]} {self.param_name(var)}"
                         f"[{int(np.prod(shape))}] TT_ALIGNED;  /* {_comment(t.name)}: {what} */")
        for m in self.p.momentum:
            t = self.g.tensors[m]
            lines.append(f"static float {self.momentum_name(m)}[{t.size}];  "
                         f"/* {_comment(t.name)} */")
        lines += self._state_arrays(
            self.p.accumulators, "float", self.accumulator_name,
            ["/* The batches' gradient sums (augment --batch), one per update op: SRAM,",
             " * zeroed by tt_model_init() and at each batch's end. */"])
        lines += self._state_arrays(
            self.p.residuals, "int8_t", self.residual_name,
            ["/* The weights' rounding remainders in 1/256 LSB (augment --head-residual):",
             " * SRAM, zeroed by tt_model_init(). */"])
        if self.p.updates:
            lines.append(f"static tt_update_state tt_state[{len(self.p.updates)}];")
        return lines

    def _state_arrays(self, tensors, c_type: str, name, comment: list[str]) -> list[str]:
        """Static arrays of training state (batch sums, residuals), each named by `name`,
        after `comment`; nothing when there are none."""
        return (comment if tensors else []) + [
            f"static {c_type} {name(i)}[{self.g.tensors[i].size}];  "
            f"/* {_comment(self.g.tensors[i].name)} */" for i in tensors]

    def init_lines(self) -> list[str]:
        body = []
        for const, var in self.p.params:
            split = self.p.splits.get(var)
            data = self.g.tensors[const].data
            ctype = C_TYPES[self.g.tensors[var].dtype]
            if split:
                src = self.constants.array(data[..., :split.k], ctype, f"tt_c{var}_init",
                                           f"initial {self.g.tensors[var].name}, channels "
                                           f"0..{split.k - 1}")
            else:
                src = self.constants.array(data, ctype, f"tt_c{const}",
                                           f"initial {self.g.tensors[var].name}")
            body.append(f"  memcpy({self.param_name(var)}, {src}, "
                        f"sizeof {self.param_name(var)});")
        for m in self.p.momentum:
            body.append(f"  memset({self.momentum_name(m)}, 0, sizeof {self.momentum_name(m)});")
        for a in self.p.accumulators:
            body.append(f"  memset({self.accumulator_name(a)}, 0, "
                        f"sizeof {self.accumulator_name(a)});")
        for r in self.p.residuals:
            body.append(f"  memset({self.residual_name(r)}, 0, sizeof {self.residual_name(r)});")
        for i, (k, _) in enumerate(self.p.updates):
            seed = options_of(self.g.operators[k])["seed"]
            body.append(f"  tt_update_state_init(&tt_state[{i}], {c_int(seed, 'uint32_t')});")
        return ["int tt_model_init(void) {", *body, "  return TT_MODEL_OK;", "}"]

    def run_lines(self) -> list[str]:
        source = "tt_row_source *source, " if self.p.rows is not None else ""
        lines = [f"static int run({source}int32_t label, float *loss, int8_t *scores) {{",
                 "  const int train = label >= 0;",
                 *(["  int status;"] if self.p.rows is not None else []),
                 "  (void)train;",
                 "  TT_PROFILE(-1);"]
        producer = self.g.producers().get(self.p.scores)
        open_block = False
        for step in self.p.steps:
            op = self.g.operators[step.op]
            if step.call is None and step.op != producer:
                continue
            if step.training and not open_block:
                lines.append("  if (train) {")
                open_block = True
            elif not step.training and open_block:
                lines.append("  }")
                open_block = False
            pad = "    " if open_block else "  "
            ins = " ".join(_shape(self.g.tensors[i].shape) for i in op.inputs[:1] if i >= 0)
            outs = " ".join(_shape(self.g.tensors[i].shape) for i in op.outputs[:1])
            name = self.g.tensors[op.outputs[0]].name if op.outputs else ""
            head = f"{step.op} {step.kind}"
            if name:
                head += f" {name}"
            if ins or outs:
                head += f": {ins} -> {outs}" if outs else f": {ins}"
            if step.note:
                head += f" ({step.note})"
            lines.append(f"{pad}/* {_comment(head)} */")
            if step.op in self.p.batched:
                lines += [pad + line for line in self.batch_lines(step.op)]
                lines.append(f"{pad}TT_PROFILE({step.op});")
            elif step.call is not None:
                decls, text = self.call(step.op, step.call)
                if step.op in self.p.stack_stages:
                    text = self.stack_function(step.op, text, step.call.status)
                lines += [pad + d for d in decls]
                if self.p.rows is not None and step.op == self.p.rows.op:
                    lines += [f"{pad}status = {text};",
                              f"{pad}if (status == TT_FWD_INPUT_FAILED) return "
                              "TT_MODEL_ERROR_INPUT;",
                              f"{pad}if (status != 0) return TT_MODEL_ERROR_KERNEL;"]
                elif step.call.status:
                    error = "TT_MODEL_ERROR_LABEL" if step.kind == "TT_LOSS_SOFTMAX_CE" else \
                        "TT_MODEL_ERROR_KERNEL"
                    lines.append(f"{pad}if ({text} != 0) return {error};")
                else:
                    lines.append(f"{pad}{text};")
                lines.append(f"{pad}TT_PROFILE({step.op});")
            if step.op == producer:
                lines.append(f"{pad}if (scores) memcpy(scores, "
                             f"{self.tensor_expr(self.p.scores)}, {self.p.classes});")
        if open_block:
            lines.append("  }")
        lines += ["  return TT_MODEL_OK;", "}"]
        return lines

    def batch_text(self) -> str:
        return "/".join(str(b) for b in sorted({b.batch for b in self.p.batched.values()}))

    def batch_lines(self, k: int) -> list[str]:
        """Operator k's batch (batch.py): its gradient into the accumulator, and at the
        batch's end the update on the mean and the accumulator zeroed."""
        b = self.p.batched[k]
        out = []
        if b.grad is not None:
            if b.grad.status:
                raise ValueError(f"internal: {b.grad.name} returns a status")
            decls, text = self.call(k, b.grad)
            out += [*decls, f"{text};"]
            g = f"(const float *)({ARENA} + {self.p.plan.scratch_offset(k, b.g_scratch)})"
        else:
            g = self.tensor_expr(self.g.operators[k].inputs[1])
        acc, state = self.accumulator_name(b.accumulator), f"&tt_state[{self.state_index[k]}]"
        _, update = self.call(k, b.update)
        return [*out,
                f"/* a batch of {b.batch}: the gradient summed; the update on the mean at "
                "the batch's end */",
                f"if (tt_batch_accumulate_f32({acc}, {g}, {b.n}, {b.batch}, {state})) {{",
                f"  {update};",
                f"  tt_batch_end_f32({acc}, {b.n}, {b.batch}, {state});",
                "}"]

    def stack_function(self, k: int, text: str, status: bool) -> str:
        """Operator k's call made by a function of its own whose frame holds the call's DSP
        staging (program.stage_on_stack): the bytes are on the stack only while this kernel
        runs, never in run()'s frame (a block in run() would be, for every operator, at
        -O0). Adds the function to stack_lines; returns the C that calls it."""
        n = self.p.stack_stages[k]
        ret = "int" if status else "void"
        self.stack_lines += [
            f"/* Operator {k}'s kernel, its DSP staging in this frame: on the stack while it runs,",
            " * where the stack's deepest path (a pointwise input gradient's) has room. */",
            f"static TT_NOINLINE {ret} tt_op{k}(int32_t label) {{",
            "  /* its DSP staging, 8-aligned; the portable kernels have no use for it */",
            f"  union {{ int64_t align; uint8_t bytes[TT_KERNELS_DSP ? {n} : 1]; }} tt_stage;",
            "  (void)label;",
            f"  {'return ' if status else ''}{text};", "}", ""]
        return f"tt_op{k}(label)"

    def checkpoint_lines(self) -> list[str]:
        kinds = {checkpoint.PARAMETER: "TT_CHECKPOINT_PARAMETER",
                 checkpoint.MOMENTUM: "TT_CHECKPOINT_MOMENTUM",
                 checkpoint.UPDATE_STATE: "TT_CHECKPOINT_UPDATE_STATE"}
        accumulator = getattr(checkpoint, "ACCUMULATOR", None)
        if accumulator is not None:
            # by number: tt_checkpoint.h may not name it yet
            kinds[accumulator] = f"{int(accumulator)}u /* accumulator */"
        kinds[checkpoint.RESIDUAL] = "TT_CHECKPOINT_RESIDUAL"
        state_of = {p: self.state_index[k] for k, p in self.p.updates}
        rows = []
        for r, nbytes in self.p.checkpoint_regions():
            if r.kind == checkpoint.PARAMETER:
                data = self.param_name(r.id)
            elif r.kind == checkpoint.MOMENTUM:
                data = self.momentum_name(r.id)
            elif r.kind == accumulator:
                data = self.accumulator_name(r.id)
            elif r.kind == checkpoint.RESIDUAL:
                data = self.residual_name(r.id)
            else:
                data = f"&tt_state[{state_of[r.id]}]"
            rows.append(f"  {{{kinds[r.kind]}, {r.id}, {data}, {nbytes}u}},  "
                        f"/* {_comment(r.name)} */")
        return ["const tt_checkpoint_region tt_model_checkpoint[TT_MODEL_CHECKPOINT_REGIONS] = {",
                *rows, "};"]

    def source_c(self) -> str:
        p = self.p
        run = self.run_lines()            # first: collects the kernels' constants
        init = self.init_lines()
        ckpt = self.checkpoint_lines()
        input_expr = self.tensor_expr(p.sample) if p.rows is None else ""
        arena = max(p.plan.arena_bytes, 4)
        lines = [
            f"/* Generated by tflite-train {__version__} from {_comment(self.source)}: the whole",
            " * training program (see tt_model.h). Do not edit; regenerate with",
            " * `tflite-train codegen`. */",
            '#include "tt_model.h"', "", "#include <string.h>", "",
            *[f'#include "{h.name}"' for h in K.HEADERS], "",
            "/* Arrays start on a word, which word-wide loads of int8 data may want. */",
            "#if defined(__GNUC__) || defined(__clang__)",
            "#define TT_ALIGNED __attribute__((aligned(4)))", "#else", "#define TT_ALIGNED",
            "#endif", "",
            *(["/* A kernel call whose DSP staging is on the stack: its own frame, not run()'s. */",
               "#if defined(__GNUC__) || defined(__clang__)",
               "#define TT_NOINLINE __attribute__((noinline))", "#else", "#define TT_NOINLINE",
               "#endif", ""] if self.stack_lines else []),
            "/* A per-operator profile: built with -DTT_PROFILE_HOOK=f, f(k) is called after",
            " * operator k's kernel (and f(-1) when a step or an inference starts); by default",
            " * nothing (the rig's profile: tflite_train/codegen/rig/rig_main.c). */",
            "#ifdef TT_PROFILE_HOOK", "void TT_PROFILE_HOOK(int32_t op);",
            "#define TT_PROFILE(op) TT_PROFILE_HOOK(op)", "#else",
            "#define TT_PROFILE(op) ((void)0)", "#endif", "",
            f"/* The arena: {p.plan.arena_bytes} bytes planned offline ({p.plan.order} first-fit),",
            " * every activation, saved activation, gradient and scratch buffer of a step. */",
            f"static union {{ int32_t align; uint8_t bytes[{arena}]; }} tt_arena;", "",
            *self.state_lines(), "",
            "/* Frozen weights, quantization and the kernels' arguments (flash). */",
            *self.constants.lines, "",
            *ckpt, "",
            *init, "",
            *(self.arena_input_lines(input_expr) if p.rows is None else []),
            *self.stack_lines,
            *run, "",
            *(self.arena_entry_lines(input_expr) if p.rows is None else self.row_entry_lines()),
            ""]
        return "\n".join(lines)

    def arena_input_decl(self) -> list[str]:
        return ["/* The arena's input buffer: write a sample here (a camera's DMA, say) and pass this",
                " * pointer to tt_train_step / tt_predict to skip the copy. Every step overwrites",
                " * it. */",
                "int8_t *tt_model_input(void);", ""]

    def row_decls(self) -> list[str]:
        r = self.p.rows
        return [
            "/* The sample row by row (generated with --input rows): it is never in the arena.",
            " * tt_train_step / tt_predict read `sample` where the caller keeps it (no copy; it",
            " * must stay unchanged during the call). tt_train_step_rows / tt_predict_rows take",
            " * the rows from read_row(y, row, ctx), which fills input row y (TT_MODEL_ROW_BYTES",
            " * bytes, NHWC) and returns 0, or anything else to give up (the call then returns",
            " * TT_MODEL_ERROR_INPUT and nothing is trained); it is called for y = 0, 1, ...,",
            " * TT_MODEL_ROWS - 1 in order, each row once per call (after a failure, no more),",
            " * as the first layer reads them: a camera's lines need no frame buffer. The rows",
            f" * it has not used yet wait in a ring of {r.ring_rows} rows inside the arena. Both forms",
            " * give the same bits. A label outside [0, TT_MODEL_CLASSES) is refused before any",
            " * row is read. */",
            f"#define TT_MODEL_ROWS {r.height}",
            f"#define TT_MODEL_ROW_BYTES {r.row_bytes}",
            "int tt_train_step_rows(tt_read_row_fn read_row, void *ctx, int32_t label, float *loss);",
            "int tt_predict_rows(tt_read_row_fn read_row, void *ctx, int8_t *scores);", ""]

    def arena_input_lines(self, input_expr: str) -> list[str]:
        return [f"int8_t *tt_model_input(void) {{ return {input_expr}; }}", ""]

    def arena_entry_lines(self, input_expr: str) -> list[str]:
        """The whole-sample API of a program whose sample is in the arena (copied there)."""
        return [
            "static void take_sample(const int8_t *sample) {",
            f"  int8_t *input = {input_expr};",
            f"  if (sample != input) memcpy(input, sample, {self.g.tensors[self.p.sample].nbytes});",
            "}", "",
            "int tt_train_step(const int8_t *sample, int32_t label, float *loss) {",
            "  float value = 0.0f;",
            "  int status;",
            f"  if (label < 0 || label >= {self.p.classes}) return TT_MODEL_ERROR_LABEL;",
            "  take_sample(sample);",
            "  status = run(label, &value, 0);",
            "  if (loss) *loss = value;",
            "  return status;",
            "}", "",
            "int tt_predict(const int8_t *sample, int8_t *scores) {",
            "  take_sample(sample);",
            "  return run(-1, 0, scores);",
            "}"]

    def row_entry_lines(self) -> list[str]:
        """Both APIs of a program whose sample is read row by row (`--input rows`): the whole
        sample is read where the caller holds it, rows from a reader go through the ring."""
        r = self.p.rows
        ring = f"({ARENA} + {self.p.plan.scratch_offset(r.op, r.scratch)})"
        frame = f"tt_row_source_frame(&source, sample, {r.height}, {r.row_bytes});"
        reader = (f"tt_row_source_reader(&source, read_row, ctx, (int8_t *){ring}, {r.ring_rows}, "
                  f"{r.height}, {r.row_bytes});")
        out = []
        for head, make in (("tt_train_step(const int8_t *sample, ", frame),
                           ("tt_train_step_rows(tt_read_row_fn read_row, void *ctx, ", reader)):
            out += [f"int {head}int32_t label, float *loss) {{",
                    "  tt_row_source source;",
                    "  float value = 0.0f;",
                    "  int status;",
                    f"  if (label < 0 || label >= {self.p.classes}) return TT_MODEL_ERROR_LABEL;",
                    f"  {make}",
                    "  status = run(&source, label, &value, 0);",
                    "  if (loss) *loss = value;",
                    "  return status;",
                    "}", ""]
        for head, make in (("tt_predict(const int8_t *sample, ", frame),
                           ("tt_predict_rows(tt_read_row_fn read_row, void *ctx, ", reader)):
            out += [f"int {head}int8_t *scores) {{",
                    "  tt_row_source source;",
                    f"  {make}",
                    "  return run(&source, -1, 0, scores);",
                    "}", ""]
        return out[:-1]

    def header(self) -> str:
        p = self.p
        sample, scores = self.g.tensors[p.sample], self.g.tensors[p.scores]
        regions = p.checkpoint_regions()
        sram_params = sum(p.param_bytes(v) for _, v in p.params)
        momentum = sum(self.g.tensors[m].nbytes for m in p.momentum)
        accumulators = sum(self.g.tensors[a].nbytes for a in p.accumulators)
        residuals = sum(self.g.tensors[r].nbytes for r in p.residuals)
        blob = (checkpoint.HEADER_BYTES + checkpoint.ENTRY.size * len(regions)
                + sum(-(-n // 4) * 4 for _, n in regions) + checkpoint.CRC_BYTES)
        q = sample.quant
        lines = [
            f"/* Generated by tflite-train {__version__} from {_comment(self.source)}.",
            " * Do not edit.",
            " *",
            " * A standalone training program: no interpreter, no heap; one static arena, the",
            " * frozen weights as constants (flash), the trained parameters in SRAM. Build",
            " * tt_model.c with the micro_kernels sources (see README.md).",
            " *",
            " *   tt_model_init();                       at boot: initial parameters, optimizer",
            " *   tt_train_step(sample, label, &loss);   one SGD step on one sample (batch 1)"
            if not p.batched else
            " *   tt_train_step(sample, label, &loss);   one sample; every "
            f"{self.batch_text()} steps, an SGD step on their mean",
            " *   tt_predict(sample, scores);            inference only",
            " *",
            " * Every function returns TT_MODEL_OK or an error below. Not reentrant: one model,",
            " * one caller at a time. */",
            "#ifndef TT_MODEL_H", "#define TT_MODEL_H", "",
            "#include <stdint.h>", "", '#include "tt_checkpoint.h"',
            *(['#include "tt_row_source.h"'] if p.rows is not None else []), "",
            "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
            "#define TT_MODEL_OK 0",
            "#define TT_MODEL_ERROR_LABEL 1    /* tt_train_step: label outside [0, classes) */",
            "#define TT_MODEL_ERROR_KERNEL 2   /* a kernel refused its arguments (a bug) */",
            *(["#define TT_MODEL_ERROR_INPUT 3    /* read_row gave up (nothing was trained) */"]
              if p.rows is not None else []), "",
            f"/* The sample: int8 {_shape(sample.shape)} (NHWC), real = "
            f"{q.s:.9g} * (q - {q.zp}). */" if q is not None else
            f"/* The sample: int8 {_shape(sample.shape)} (NHWC). */",
            f"#define TT_MODEL_SAMPLE_BYTES {sample.nbytes}",
            f"/* The scores tt_predict writes: int8 [{scores.size}] ({scores.name}). */",
            f"#define TT_MODEL_CLASSES {p.classes}",
            f"#define TT_MODEL_ARENA_BYTES {p.plan.arena_bytes}   /* the static arena */",
            f"#define TT_MODEL_PARAMETER_BYTES {sram_params}   /* trained parameters, SRAM */",
            f"#define TT_MODEL_MOMENTUM_BYTES {momentum}",
            *([f"#define TT_MODEL_ACCUMULATOR_BYTES {accumulators}  /* the batches' gradient "
               "sums, SRAM */"] if p.batched else []),
            *([f"#define TT_MODEL_RESIDUAL_BYTES {residuals}  /* the head's rounding residual, "
               "SRAM */"] if p.residuals else []),
            f"#define TT_MODEL_ID 0x{checkpoint.model_id(p.model):016x}ull  "
            "/* the training model's identity (tt_checkpoint_save/restore) */",
            "", "/* Sets the trained parameters to their initial values and resets momentum and",
            " * the update ops' random streams and step counters. Call once before the rest (and",
            " * again to start over). To resume training, tt_checkpoint_restore() after it. */",
            "int tt_model_init(void);", "",
            *([f"/* A batch of {self.batch_text()} (augment --batch): each step adds its gradients "
               "to the",
               " * accumulators (TT_MODEL_ACCUMULATOR_BYTES); the step that ends a batch updates "
               "the",
               " * parameters with their mean and zeroes them. Counted per update op since "
               "tt_model_init()",
               " * (the checkpoint keeps the count and the accumulators: a run resumed mid-batch "
               "goes on",
               " * with the same bits). */"] if p.batched else []),
            "/* One training step: forward, loss, backward, parameter update. sample: "
            "TT_MODEL_SAMPLE_BYTES",
            " * bytes (" + ("copied into the arena, unless it is tt_model_input()" if p.rows is None
                         else "read in place, row by row") + "); label in",
            " * [0, TT_MODEL_CLASSES); loss (may be NULL) receives the cross-entropy before the",
            " * update. */",
            "int tt_train_step(const int8_t *sample, int32_t label, float *loss);", "",
            "/* Inference: scores (may be NULL) receives the model's TT_MODEL_CLASSES outputs. */",
            "int tt_predict(const int8_t *sample, int8_t *scores);", "",
            *(self.arena_input_decl() if p.rows is None else self.row_decls()),
            "/* What training changes, as checkpoint regions (tt_checkpoint.h), in the order",
            " * tt_checkpoint_save/restore take them: the trained parameters (a partially trained",
            " * filter: its SRAM part, the trained input channels), momentum buffers, batch",
            " * accumulators, rounding residuals, the update ops' tt_update_state. Save them to",
            " * keep what was learned; restore them after tt_model_init(). */",
            f"#define TT_MODEL_CHECKPOINT_REGIONS {len(regions)}",
            f"#define TT_MODEL_CHECKPOINT_BYTES {blob}  /* one flash slot, before page rounding */",
            "extern const tt_checkpoint_region tt_model_checkpoint[TT_MODEL_CHECKPOINT_REGIONS];",
            "", "#ifdef __cplusplus", "}", "#endif", "", "#endif  /* TT_MODEL_H */", ""]
        return "\n".join(lines)


def render(program: Program, source: str) -> tuple[dict[str, str], int]:
    """({file name: text} of the generated C, bytes of the constants it defines)."""
    e = Emitter(program, source)
    c = e.source_c()
    return {"tt_model.c": c, "tt_model.h": e.header()}, e.constants.nbytes

