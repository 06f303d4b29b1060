"""A kernel call as data: which micro_kernels function an operator calls and with what.

`c_forward.kernel_call` (forward builtins) and `c_kernels.kernel_call` (TT_* ops) say, once
per operator, which C function runs it and what each argument is: a tensor of the operator
(`In`, `Out`) or the value of one (the label), its update state, a scratch buffer, or a value
fixed when the model is prepared (a number, a constant array, a parameter struct). Two
consumers read the same description, so they cannot drift apart: the ctypes executors
(`--engine c`), which bind the tensors to numpy arrays, and the code generator, which binds
them to places in a static memory plan and writes the call as C.

The functions' signatures and the parameter structs are read from the headers themselves
(`signatures()`, `struct_class()`): a kernel whose C signature changes shows up here as a
description that no longer fits (`KernelCall.check`). The streams (tt_stream.h) take their
layers and shapes grouped into structs; a call describes them flat (`signatures()`: the
flat lists stream_args writes, not the header's), and stream_args groups them for C
(`c_signatures()`, `host_call`, the code generator); tests/test_stream_args.py checks the
flat lists and the groups against the header.
"""
from __future__ import annotations

import ctypes as C
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import TTError
from . import stream_args
from .build import MICRO_KERNELS, micro_kernels_library

HEADERS = tuple(MICRO_KERNELS / "include" / name
                for name in ("tt_forward.h", "tt_kernels.h", "tt_split_grad.h", "tt_stream.h",
                             "tt_inplace_grad.h"))

CTYPES = {"int32_t": C.c_int32, "int": C.c_int, "float": C.c_float, "double": C.c_double,
          "uint32_t": C.c_uint32, "int8_t": C.c_int8, "uint8_t": C.c_uint8, "int16_t": C.c_int16,
          "void": None}
# the numpy element type behind a pointer parameter (void: raw bytes)
DTYPES = {"int32_t": np.int32, "float": np.float32, "int8_t": np.int8, "uint8_t": np.uint8,
          "uint32_t": np.uint32, "int16_t": np.int16, "void": np.uint8}


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str            # base type: int32_t, float, tt_window, void, ...
    pointer: bool
    const: bool


@dataclass(frozen=True)
class Signature:
    name: str
    ret: str
    params: tuple[Param, ...]

    def index(self, name: str) -> int:
        return next(i for i, p in enumerate(self.params) if p.name == name)


def strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def _param(text: str) -> Param:
    pointer = "*" in text
    words = text.replace("*", " ").split()
    const = "const" in words
    words = [w for w in words if w != "const"]
    return Param(words[-1], " ".join(words[:-1]), pointer, const)


@lru_cache(maxsize=1)
def c_signatures() -> dict[str, Signature]:
    """Every tt_* function of the headers, as C declares it."""
    out = {}
    for header in HEADERS:
        text = strip_comments(header.read_text())
        for ret, name, params in re.findall(r"^(\w+)\s+(tt_\w+)\(([^)]*)\);", text, re.M):
            out[name] = Signature(name, ret, tuple(_param(p) for p in params.split(",")
                                                   if p.strip() and p.strip() != "void"))
    return out


@lru_cache(maxsize=1)
def signatures() -> dict[str, Signature]:
    """Every tt_* function of the headers as a call describes it: a stream's arguments flat
    (stream_args; the C function takes them grouped into structs)."""
    out = dict(c_signatures())
    for name, (flat, _) in stream_args.STREAMS.items():
        c = out.get(stream_args.c_function(name))
        if c is not None:
            out[name] = Signature(name, c.ret, tuple(_param(p) for p in flat))
    return out


@lru_cache(maxsize=1)
def structs() -> dict[str, tuple[tuple[str, str], ...]]:
    """struct name -> ((field, type), ...) for every `typedef struct {...} name;` (a pointer
    field's type as `base *`, const dropped: tt_stream.h's tt_stream_layer)."""
    out = {}
    for header in HEADERS:
        text = strip_comments(header.read_text())
        for body, name in re.findall(r"typedef struct \{([^}]*)\}\s*(\w+);", text):
            fields = []
            for decl in filter(str.strip, body.split(";")):
                base, declarators = re.match(r"\s*(?:const\s+)?(\w+)(.*)", decl, re.S).groups()
                for d in declarators.split(","):
                    fields.append((d.replace("*", "").strip(), base + " *" if "*" in d else base))
            out[name] = tuple(fields)
    return out


@lru_cache(maxsize=None)
def struct_class(name: str) -> type:
    """The ctypes Structure of a header's struct, field types as declared."""
    fields = structs().get(name)
    if fields is None:
        raise TTError(f"internal: no struct {name} in the kernel headers")
    return type(name, (C.Structure,), {"_fields_": [
        (f, C.c_void_p if t.endswith("*") else CTYPES[t]) for f, t in fields]})


def make_struct(name: str, **values) -> C.Structure:
    cls = struct_class(name)
    missing = {f for f, _ in cls._fields_} - set(values)
    if missing:
        raise TTError(f"internal: {name} without {sorted(missing)}")
    return cls(**values)


# --- what an argument is -------------------------------------------------------------------

@dataclass(frozen=True)
class In:
    """The operator's k-th input tensor: its data (NULL when the input is absent, -1), or
    with `value` its first element as an int (the label, a PADV2's pad value)."""
    k: int
    value: bool = False


@dataclass(frozen=True)
class Out:
    """The operator's k-th output tensor."""
    k: int


@dataclass(frozen=True)
class Scratch:
    """Working memory of `nbytes` the call may overwrite; nothing survives the call."""
    nbytes: int


@dataclass(frozen=True)
class Staging(Scratch):
    """The staging of an int8-gradient kernel's Cortex-M DSP version (the argument before
    its stage_bytes): scratch that may be smaller, `within(limit)` being the bytes the kernel
    takes from at most `limit` (0: it runs the portable code), so that a planner can fit it
    into the room it has."""
    within: object = field(default=None, compare=False)


@dataclass(frozen=True)
class UpdateState:
    """The operator's tt_update_state (xorshift32 stream, step), kept across steps."""


STATE = UpdateState()


def check_array(name: str, p: Param, a: np.ndarray) -> None:
    """An array passed to pointer parameter p of kernel `name` must hold p's element type:
    C would read another's bytes as garbage, silently (the forward kernels' shifts went from
    int32_t to int8_t in round 28: a stale caller fails here instead)."""
    if p.pointer and p.ctype in DTYPES and p.ctype != "void" \
            and a.dtype != np.dtype(DTYPES[p.ctype]):
        raise TTError(f"internal: {name}: argument {p.name} is {a.dtype}, the kernel reads "
                      f"{p.ctype}")


def check_arrays(name: str, params, args) -> None:
    """check_array for each numpy array of a direct call's `args` against its parameter."""
    for p, a in zip(params, args):
        if isinstance(a, np.ndarray):
            check_array(name, p, a)


@dataclass
class KernelCall:
    """name(*args): each argument is one of the placeholders above, None (NULL), a Python
    int or float (a scalar of the parameter's type), an np.ndarray (a constant array of the
    parameter's element type) or a ctypes Structure (a constant struct, passed by address).
    The executor binds the tensors at run time; a code generator emits the same call."""
    name: str
    args: list

    @property
    def signature(self) -> Signature:
        return signatures()[self.name]

    @property
    def status(self) -> bool:
        """The kernel returns an int status (non-zero: it refused its arguments)."""
        return self.signature.ret == "int"

    def check(self) -> "KernelCall":
        sig = signatures().get(self.name)
        if sig is None:
            raise TTError(f"internal: {self.name} is not declared in the kernel headers")
        if len(sig.params) != len(self.args):
            raise TTError(f"internal: {self.name} takes {len(sig.params)} arguments, the "
                          f"description has {len(self.args)}")
        for p, a in zip(sig.params, self.args):
            value = isinstance(a, In) and a.value
            pointer_like = isinstance(a, (np.ndarray, C.Structure, Out, Scratch, UpdateState)) \
                or (isinstance(a, In) and not value)
            scalar_like = value or (isinstance(a, (int, float)) and not isinstance(a, bool))
            if (pointer_like and not p.pointer) or (scalar_like and p.pointer):
                raise TTError(f"internal: {self.name}: argument {p.name} does not fit "
                              f"{'a pointer' if p.pointer else p.ctype}")
            if isinstance(a, np.ndarray):
                check_array(self.name, p, a)
        return self


@dataclass
class BatchCall:
    """An update op with a batch of B > 1 (schema: option batch, input accumulator; the
    kernels' side in include/tt_kernels.h, tt_batch_accumulate_f32): `grad` writes the op's
    gradient, n float32s, into its Out(0), a scratch of the call (None: the gradient is the
    op's input 1, a TT_UPDATE_* op's grad); tt_batch_accumulate_f32 adds it into the
    accumulator (input `acc`); at a batch's last Invoke `update`, the plain update kernel
    reading the accumulator as its gradient, runs, then tt_batch_end_f32. At B = 1 an op
    is its KernelCall, as before the batch existed."""
    grad: "KernelCall | None"
    update: "KernelCall"
    acc: int
    n: int
    batch: int

    def check(self) -> "BatchCall":
        if self.grad is not None:
            self.grad.check()
        self.update.check()
        return self


def i32(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, np.int64).astype(np.int32))


def f32(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, np.float32))


@lru_cache(maxsize=1)
def _library() -> C.CDLL:
    """The host kernel library with every header function's argument and return types."""
    lib = C.CDLL(str(micro_kernels_library("all", "libtt_kernels.so")))
    for name, sig in c_signatures().items():
        fn = getattr(lib, name)
        fn.restype = CTYPES[sig.ret]
        fn.argtypes = [C.c_void_p if p.pointer else CTYPES[p.ctype] for p in sig.params]
    return lib


def host_call(name: str, *args):
    """A kernel header function called on the host with Python values: structs and arrays
    by address (a planner asks the kernels' own *_bytes functions, say)."""
    def arg(a):
        if isinstance(a, C.Structure):
            return C.addressof(a)
        if isinstance(a, np.ndarray):
            return np.ascontiguousarray(a).ctypes.data
        return a
    keep = [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args]
    sig = signatures().get(name)
    if sig is not None:
        check_arrays(name, sig.params, keep)
    if name in stream_args.STREAMS:
        values, alive = stream_args.host_args(name, [arg(a) for a in keep], struct_class)
        result = getattr(_library(), stream_args.c_function(name))(*values)
        del alive                                 # the structs, until the call returned
        return result
    return getattr(_library(), name)(*[arg(a) for a in keep])
