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


def check_options(name: str, options: dict) -> None:
    """Every option named in the schema, of its type and in its range; nothing else."""
    wanted = spec(name)["options"]
    if set(options) != set(wanted):
        raise ModelError(f"{name}: options {sorted(options)} != schema {sorted(wanted)}")
    for key, rule in wanted.items():
        v = options[key]
        kind = rule["type"]
        ok = {"int": isinstance(v, (int, np.integer)) and not isinstance(v, bool),
              "float": isinstance(v, (int, float, np.floating)) and not isinstance(v, bool),
              "bool": isinstance(v, (bool, np.bool_)),
              "int_vector": isinstance(v, (list, tuple)) and all(
                  isinstance(x, (int, np.integer)) for x in v)}[kind]
        if not ok:
            raise ModelError(f"{name}: option {key}={v!r} is not {kind}")
        if "min" in rule and v < rule["min"] or "max" in rule and v > rule["max"]:
            raise ModelError(f"{name}: option {key}={v!r} out of range "
                             f"[{rule.get('min')}, {rule.get('max')}]")


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
        cached = flexbuffers.Loads(op.custom_options) if op.custom_options else {}
        op.options["_tt"] = cached
    return cached


def make_op(name: str, inputs: list[int], outputs: list[int], **options) -> Operator:
    check_options(name, options)
    n_in = len(spec(name)["inputs"])
    if not spec(name)["inputs"][0].get("repeated") and len(inputs) != n_in:
        raise ModelError(f"{name}: {len(inputs)} inputs, schema says {n_in}")
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


def xorshift32_stream(state: int, n: int) -> tuple[np.ndarray, int]:
    """The next n outputs of xorshift32 from `state`, and the new state."""
    if n == 0:
        return np.zeros(0, np.uint32), state
    table = _jump_table(_bucket(n))[:n]
    out = np.zeros(n, np.uint64)
    for j in range(32):
        if state >> j & 1:
            out ^= table[:, j]
    return out.astype(np.uint32), int(out[-1])


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
