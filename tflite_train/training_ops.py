"""The TT_* custom-op contract (schema/training_ops.json) on the Python side: building ops
with checked flexbuffer options, reading them back, the xorshift32 stream used for
stochastic rounding, and the C kernels' cos(pi t / n) of the learning-rate decay."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from flatbuffers import flexbuffers

from .errors import ModelError
from .ir import Operator

# The one contract file is schema/training_ops.json; the package reaches it through the
# symlink data/training_ops.json (copied into wheels), so both sides read the same bytes.
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "training_ops.json"


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def spec(name: str) -> dict:
    try:
        return schema()["ops"][name]
    except KeyError:
        raise ModelError(f"{name} is not a TT_* op of the schema") from None


def is_forward(kind: str) -> bool:
    """A TT_* forward op (schema "forward"): runs whatever the label, takes no label input."""
    op = schema()["ops"].get(kind)
    return bool(op and op.get("forward"))


GRAD_DTYPES = ("float32", "int8")


def inputs_of(name: str, grad: str = "float32") -> list[dict]:
    """The schema's inputs of op `name` in gradient mode `grad` ("float32" or "int8"), up
    to the label (the last of them): the int8_only ones exist in int8 mode only (schema:
    int8_gradients.mode). The "appended" inputs after the label are appended_inputs'."""
    return [i for i in spec(name)["inputs"]
            if (grad == "int8" or not i.get("int8_only")) and not i.get("appended")]


def appended_inputs(name: str) -> list[dict]:
    """The optional inputs after the label (the update ops' accumulator): an op may omit
    them from the end, so that no earlier input moves."""
    return [i for i in spec(name)["inputs"] if i.get("appended")]


# the update ops' largest batch (schema option `batch`)
MAX_BATCH = 65536


def batch_of(op: Operator) -> int:
    """An update op's batch (schema option `batch`, absent = 1); 1 for every other op,
    builtins included."""
    entry = schema()["ops"].get(op.kind)
    if entry is None or "batch" not in entry["options"]:
        return 1
    return int(options_of(op).get("batch", 1))


def _appended_tensors(graph, input_of) -> set[int]:
    """The tensors `input_of(graph, op)` names (-1: none) over the model's TT_* ops."""
    return {t for op in graph.operators if op.kind.startswith("TT_") and op.kind in
            schema()["ops"] for t in [input_of(graph, op)] if t >= 0}


def accumulator_tensors(graph) -> set[int]:
    """The batch accumulators of a training model's update ops (augment --batch B > 1)."""
    return _appended_tensors(graph, accumulator_input)


def accumulator_pos(graph, op: Operator) -> int:
    """The input position of an update op's accumulator (right after its label), -1 when
    it has none (batch 1, or not an update op)."""
    if not (op.kind in schema()["ops"] and appended_inputs(op.kind)):
        return -1
    pos = len(inputs_of(op.kind, grad_mode(graph, op)))
    return pos if len(op.inputs) > pos and op.inputs[pos] >= 0 else -1


def residual_pos(graph, op: Operator) -> int:
    """The input position of an int8 weight update's rounding residual (schema input
    `residual`, after the accumulator slot, which holds -1 at batch 1), -1 when it has none."""
    if not (op.kind in schema()["ops"] and len(appended_inputs(op.kind)) > 1):
        return -1
    pos = len(inputs_of(op.kind, grad_mode(graph, op))) + 1
    return pos if len(op.inputs) > pos and op.inputs[pos] >= 0 else -1


def residual_input(graph, op: Operator) -> int:
    """The tensor index of a weight update's residual, or -1."""
    pos = residual_pos(graph, op)
    return op.inputs[pos] if pos >= 0 else -1


def residual_tensors(graph) -> set[int]:
    """The rounding residuals of a training model's weight updates (augment --head-residual)."""
    return _appended_tensors(graph, residual_input)


def accumulator_input(graph, op: Operator) -> int:
    """The tensor index of an update op's accumulator, or -1."""
    pos = accumulator_pos(graph, op)
    return op.inputs[pos] if pos >= 0 else -1


def outputs_of(name: str, grad: str = "float32") -> list[dict]:
    return [o for o in spec(name)["outputs"] if grad == "int8" or not o.get("int8_only")]


def options_spec(name: str, grad: str = "float32") -> dict:
    return {k: v for k, v in spec(name)["options"].items()
            if grad == "int8" or not v.get("int8_only")}


def grad_slots(name: str) -> tuple[list[int], list[int]]:
    """Positions of the gradient slots (dtype "float32|int8") among the op's inputs and
    outputs; the same positions in both modes."""
    s = spec(name)
    return ([p for p, i in enumerate(s["inputs"]) if "|" in i.get("dtype", "")],
            [p for p, o in enumerate(s["outputs"]) if "|" in o.get("dtype", "")])


def grad_mode(graph, op: Operator) -> str:
    """"int8" when the op's gradient slots hold int8 gradients, else "float32" (cached on the
    operator; a builtin's options are its flatbuffer table, so builtins are never cached
    on): what the kernels dispatch on."""
    if not (op.kind.startswith("TT_") and op.kind in schema()["ops"]):
        return "float32"
    mode = op.options.get("_grad")
    if mode is None:
        ins, outs = grad_slots(op.kind)
        tensors = [op.inputs[p] for p in ins if p < len(op.inputs)] + \
                  [op.outputs[p] for p in outs if p < len(op.outputs)]
        mode = "int8" if any(t >= 0 and graph.tensors[t].dtype == "int8"
                             for t in tensors) else "float32"
        op.options["_grad"] = mode
    return mode


def check_options(name: str, options: dict, grad: str = "float32") -> None:
    """Every option named in the schema for this gradient mode, of its type and in its
    range; nothing else."""
    problem = options_problem(name, options, grad)
    if problem is not None:
        raise ModelError(f"{name}: {problem}")


INT32 = (-(1 << 31), (1 << 31) - 1)
# The kernels hold float options as float32: a larger double would become inf there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def options_problem(name: str, options: dict, grad: str = "float32") -> str | None:
    """What is wrong with a TT_* op's options in gradient mode `grad` (None: nothing). Ints
    must fit the C side's int32 (or the rule's wider range), floats must be finite as
    float32."""
    wanted = options_spec(name, grad)
    # an option with a "default" may be absent (a model written before it existed)
    if not set(wanted) - {k for k, r in wanted.items() if "default" in r} <= set(options) \
            <= set(wanted):
        return f"options {sorted(options)} != schema {sorted(wanted)}"
    for key, rule in wanted.items():
        if key not in options:
            continue
        v = options[key]
        kind = rule["type"]
        ok = {"int": isinstance(v, (int, np.integer)) and not isinstance(v, bool),
              "float": isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
              and math.isfinite(v) and abs(v) <= FLOAT32_MAX,
              "bool": isinstance(v, (bool, np.bool_)),
              "int_vector": isinstance(v, (list, tuple)) and all(
                  isinstance(x, (int, np.integer)) and INT32[0] <= x <= INT32[1]
                  for x in v)}[kind]
        if not ok:
            return f"option {key}={v!r} is not {'a float32' if kind == 'float' else kind}"
        lo, hi = rule.get("min"), rule.get("max")
        if kind == "int":
            lo = INT32[0] if lo is None else lo
            hi = INT32[1] if hi is None else hi
        if lo is not None and v < lo or hi is not None and v > hi:
            return f"option {key}={v!r} out of range [{lo}, {hi}]"
    return None


# A TT_* op's options are a flat map of a few scalars and short int vectors; anything
# larger is not one of ours (and is not decoded).
_MAX_KEYS = 32
_MAX_VECTOR = 16


def decode_options(blob: bytes | None) -> dict:
    """A TT_* op's flexbuffer options as a dict, read with bounds: a malformed buffer is a
    ModelError (whose message shows no bytes), never an exception from the decoder or an
    unbounded walk of nested vectors."""
    if not blob:
        return {}
    try:
        root = flexbuffers.GetRoot(bytes(blob))
        if not root.IsMap:
            raise ModelError("custom options are not a flexbuffer map")
        keys, values = root.AsMap.Keys, root.AsMap.Values
        if len(keys) != len(values) or len(keys) > _MAX_KEYS:
            raise ModelError("custom options are not a flexbuffer map of a few options")
        return {keys[i].AsKeyBytes.decode("ascii"): _option_value(values[i])
                for i in range(len(keys))}
    except ModelError:
        raise
    except Exception:
        raise ModelError("custom options are not a valid flexbuffer") from None


def _option_value(ref):
    if ref.IsBool:
        return ref.AsBool
    if ref.IsInt:
        return ref.AsInt
    if ref.IsFloat:
        return ref.AsFloat
    if ref.IsVector or ref.IsTypedVector:
        v = ref.AsVector if ref.IsVector else ref.AsTypedVector
        if len(v) > _MAX_VECTOR or not all(v[i].IsInt for i in range(len(v))):
            raise ModelError("custom options: a flexbuffer vector option is not a few ints")
        return [v[i].AsInt for i in range(len(v))]
    raise ModelError("custom options: a flexbuffer value is not a number, bool or int vector")


def encode_options(options: dict) -> bytes:
    plain = {k: (list(map(int, v)) if isinstance(v, (list, tuple, np.ndarray))
                 else bool(v) if isinstance(v, (bool, np.bool_))
                 else int(v) if isinstance(v, (int, np.integer))
                 else float(v)) for k, v in options.items()}
    return bytes(flexbuffers.Dumps(plain))


def options_of(op: Operator) -> dict:
    """The decoded flexbuffer options of a TT_* op (cached on the operator)."""
    cached = op.options.get("_tt")
    if cached is None:
        cached = decode_options(op.custom_options)
        op.options["_tt"] = cached
    return cached


def set_option(op: Operator, key: str, value) -> None:
    """Changes one option of a TT_* op (re-encoding its flexbuffer)."""
    options = dict(options_of(op))
    options[key] = value
    op.custom_options = encode_options(options)
    op.options.pop("_tt", None)           # decoded again on next use, as read from a file


def make_op(name: str, inputs: list[int], outputs: list[int], grad: str = "float32",
            **options) -> Operator:
    """A TT_* op in gradient mode `grad` (its int8_only inputs, outputs and options are the
    caller's in int8 mode)."""
    check_options(name, options, grad)
    n_in = len(inputs_of(name, grad))
    if not spec(name)["inputs"][0].get("repeated") and not \
            n_in <= len(inputs) <= n_in + len(appended_inputs(name)):
        raise ModelError(f"{name}: {len(inputs)} inputs, schema says {n_in}")
    n_out = len(outputs_of(name, grad))
    if len(outputs) != n_out:
        raise ModelError(f"{name}: {len(outputs)} outputs, schema says {n_out}")
    op = Operator(opcode="CUSTOM", custom_code=name, inputs=list(inputs),
                  outputs=list(outputs), custom_options=encode_options(options))
    return op


# --- xorshift32 ----------------------------------------------------------------------------

DEFAULT_SEED = 2463534242


def seed_state(seed: int) -> int:
    return (seed & 0xFFFFFFFF) or DEFAULT_SEED


@lru_cache(maxsize=8)
def _jump_table(n: int) -> np.ndarray:
    """table[k, j] = state after k+1 steps starting from the single bit j. xorshift is
    linear over GF(2), so the k-th state from any seed is the XOR of the columns of its set
    bits: n numbers without an n-step Python loop per call."""
    table = np.empty((n, 32), np.uint64)
    x = np.uint64(1) << np.arange(32, dtype=np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    for k in range(n):
        x = x ^ ((x << np.uint64(13)) & mask)
        x = x ^ (x >> np.uint64(17))
        x = x ^ ((x << np.uint64(5)) & mask)
        table[k] = x
    return table


_STREAM_BLOCK = 4096      # the largest table: longer streams are made block by block


def xorshift32_stream(state: int, n: int) -> tuple[np.ndarray, int]:
    """The next n outputs of xorshift32 from `state`, and the new state."""
    if n == 0:
        return np.zeros(0, np.uint32), state
    table = _jump_table(min(_bucket(n), _STREAM_BLOCK))
    out = np.empty(n, np.uint32)
    for pos in range(0, n, len(table)):
        m = min(len(table), n - pos)
        block = np.zeros(m, np.uint64)
        for j in range(32):
            if state >> j & 1:
                block ^= table[:m, j]
        out[pos:pos + m] = block
        state = int(block[-1])
    return out, state


def _bucket(n: int) -> int:
    """Round table sizes up to a power of two so that few tables are built."""
    return 1 << max(n - 1, 1).bit_length()


def uniform(state: int, n: int) -> tuple[np.ndarray, int]:
    """n float32 uniforms in [0, 1) as the schema defines them, and the new state."""
    r, state = xorshift32_stream(state, n)
    return (r >> 8).astype(np.float32) * np.float32(2.0 ** -24), state


# --- cos(pi t / n), as micro_kernels/src/tt_math.c computes it ------------------------------
# The same IEEE double operations in the same order as tt_cos_pi_ratio (Python floats are
# doubles, and Python never fuses a multiply-add), so the decayed learning rate is
# bit-identical between the numpy reference and the C kernels on every target. The
# coefficients are 1/k! rounded once, exactly as C's `1.0 / 6.0` constants.

_PI = float.fromhex("0x1.921fb54442d18p+1")
_SIN = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(1, 9))    # -1/3!, .., 1/17!
_COS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(1, 10))       # -1/2!, .., -1/18!


def _sin_taylor(a: float) -> float:
    z = a * a
    p = _SIN[-1]
    for c in reversed(_SIN[:-1]):
        p = c + z * p
    return a + a * (z * p)


def _cos_taylor(a: float) -> float:
    z = a * a
    p = _COS[-1]
    for c in reversed(_COS[:-1]):
        p = c + z * p
    return 1.0 + z * p


def cos_pi_ratio(t: int, n: int) -> float:
    """cos(pi * t / n) for 0 <= t <= n, bit-identical to tt_cos_pi_ratio: folded in integers
    to an angle in [0, pi/4], then a Taylor polynomial (schema: math.cos_pi_ratio)."""
    sign = 1.0
    if 2 * t > n:
        t, sign = n - t, -1.0
    if 4 * t > n:
        return sign * _sin_taylor(_PI * float(n - 2 * t) / float(2 * n))
    return sign * _cos_taylor(_PI * float(t) / float(n))


# --- exp and log, as micro_kernels/src/tt_math.c computes them (schema: math.exp, math.log) --
# The loss's elementary functions, bit-identical to tt_exp / tt_log for the same reasons as
# cos_pi_ratio above, so that the numpy loss equals the C loss bit for bit.

_LN2_HI = float.fromhex("0x1.62e42feep-1")
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
_INV_LN2 = float.fromhex("0x1.71547652b82fep+0")
_SQRT2 = float.fromhex("0x1.6a09e667f3bcdp+0")
_EXP_UNDERFLOW = -745.1332191019412
_EXP_OVERFLOW = 709.782712893384
_EXP = tuple(1.0 / math.factorial(k) for k in range(14))                     # 1/0!, .., 1/13!
_ATANH = tuple(2.0 / (2 * j + 1) for j in range(1, 11))                      # 2/3, .., 2/21


def _scale_pow2(y: float, n: int) -> float:
    """y * 2^n as tt_math.c's scale_pow2: at most two multiplications by exact powers."""
    if n > 1000:
        return y * math.ldexp(1.0, n - 1000) * math.ldexp(1.0, 1000)
    if n < -1000:
        return y * math.ldexp(1.0, n + 1000) * math.ldexp(1.0, -1000)
    return y * math.ldexp(1.0, n)


def exp(x: float) -> float:
    """tt_exp(x): Cody-Waite reduction by ln 2, then Taylor to r^13 by Horner."""
    if x != x:
        return x
    if x < _EXP_UNDERFLOW:
        return 0.0
    if x > _EXP_OVERFLOW:
        return math.inf
    t = x * _INV_LN2
    n = int(t - 0.5) if t < 0.0 else int(t + 0.5)            # C's conversion truncates
    r = (x - float(n) * _LN2_HI) - float(n) * _LN2_LO
    p = _EXP[13]
    for c in reversed(_EXP[:13]):
        p = c + r * p
    return _scale_pow2(p, n)


def log(x: float) -> float:
    """tt_log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)), fdlibm's log(1 + f) = 2 atanh(s)."""
    if x != x or x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    if x == math.inf:
        return x
    u = int(np.float64(x).view(np.uint64))
    e = 0
    if u < (1 << 52):                                         # subnormal: make it normal
        u = int(np.float64(x * 18014398509481984.0).view(np.uint64))
        e = -54
    e += (u >> 52) - 1023
    m = float(np.uint64((u & ((1 << 52) - 1)) | (1023 << 52)).view(np.float64))
    if m >= _SQRT2:
        m *= 0.5
        e += 1
    f = m - 1.0
    s = f / (2.0 + f)
    hfsq = 0.5 * f * f
    z = s * s
    p = _ATANH[9]
    for c in reversed(_ATANH[:9]):
        p = c + z * p
    k = float(e)
    return k * _LN2_HI - ((hfsq - (s * (hfsq + z * p) + k * _LN2_LO)) - f)
