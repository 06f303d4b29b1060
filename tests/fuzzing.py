"""Mutation fuzzing of every command, shared by tests/test_fuzz.py (a few hundred cases in
`make test`) and benchmarks/fuzz.py (the long run).

Seeds: .tflite models (the test zoo, ../shared's TFLM models when present, the built-in
example), training models made from them by `augment`, and tiny-training pickles (../shared's
when present, and a small one built here). A seeded `Mutator` turns a seed into a broken
file: byte flips, truncations, 32-bit overwrites of the flatbuffer's offsets, lengths and
words (positions found by recording what the generated accessors read), IR-level
mutations (shapes, types, scales, options, indices, custom options), corrupt zip archives,
pickle bytes and configurations. Each case runs one command on one mutant.

Commands run in children forked from a `ForkServer`, a process that imported everything
(and built the C libraries) once: a crash (a signal), a hang or a traceback (an exception
escaping `cli.main`) is observed from outside, never takes the fuzzer down, and costs a
fork, not an interpreter start. `classify` names the outcome of a case. A hang is a child
that spends more than the timeout in CPU time (RLIMIT_CPU: a loop), or WALL_FACTOR times
the timeout in wall-clock time (blocked): on a machine shared with other jobs, wall-clock
time alone would call a slow command hung.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import resource
import select
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRACEBACK_EXIT = 70          # the child's code for an exception escaping cli.main
WALL_FACTOR = 10             # a child blocked this many timeouts of wall-clock time hangs


# --- seeds -----------------------------------------------------------------------------------

@dataclass
class Seed:
    name: str
    kind: str        # "tflite" (inference), "train" (training model), "pkl", or a training
    data: bytes      # state for `export`: "state" (a .npz of train -o), "blob" (a checkpoint)
    positions: dict = field(default_factory=dict)   # flatbuffer: offset/length/word positions
    npz: Path | None = None         # training data matching a training model's input
    state: Path | None = None       # a training model's valid state file
    model: bytes | None = None      # the training model of a state or blob seed


def make_seeds(tflite_paths: list[Path], pkl_paths: list[Path], workdir: Path,
               train_from: list[tuple]) -> list[Seed]:
    """Seeds from the given models; `train_from`: (model, scheme, fuse) to augment, or
    (model, scheme, fuse, grad) with grad "int8" for int8 activation gradients, or
    (model, scheme, fuse, grad, batch) for augment --batch B."""
    from tflite_train import augment, tflite_io
    from tflite_train.autodiff import Hyper
    workdir.mkdir(parents=True, exist_ok=True)
    seeds = []
    for k, path in enumerate(tflite_paths):
        data = path.read_bytes()
        graph = tflite_io.parse(data)
        shape = graph.tensors[graph.inputs[0]].shape
        npz = None
        if len(shape) == 4 and graph.tensors[graph.inputs[0]].dtype == "int8":
            npz = workdir / f"images{k}.npz"        # for augment --lr auto's range test
            _images(npz, shape, 96, k)
        seeds.append(Seed(path.stem, "tflite", data, flatbuffer_positions(data), npz))
    for k, (path, scheme, fuse, *rest) in enumerate(train_from):
        grad = rest[0] if rest else "float32"
        batch = rest[1] if len(rest) > 1 else 1
        result = augment.augment(tflite_io.load(path), scheme, 3,
                                 Hyper(momentum=0.5 if k % 2 else 0.0, decay_steps=10 * (k % 3),
                                       grad=grad, batch=batch), fuse=fuse)
        data = tflite_io.serialize(result.graph)
        g = result.graph
        shape = g.tensors[g.inputs[0]].shape
        npz = workdir / f"train{k}.npz"
        _images(npz, shape, 6, k)
        name = (f"{path.stem}.{scheme}{'' if fuse else '.nofuse'}"
                f"{'.int8' if grad == 'int8' else ''}{f'.batch{batch}' if batch > 1 else ''}")
        state = None
        if len(shape) == 4 and g.tensors[g.inputs[0]].dtype == "int8":
            # image data trains it: a state to export too
            state, blob = _training_state(g, data, npz, workdir / f"train{k}")
            seeds.append(Seed(f"{name}.npz", "state", state.read_bytes(), model=data))
            seeds.append(Seed(f"{name}.ckpt", "blob", blob, model=data))
        seeds.append(Seed(name, "train", data, flatbuffer_positions(data), npz, state))
    for path in pkl_paths:
        seeds.append(Seed(path.stem, "pkl", path.read_bytes()))
    seeds.append(Seed("tiny.pkl", "pkl", tiny_pickle()))
    return seeds


def _images(path: Path, shape, n: int, seed: int) -> None:
    """n random images (3 classes) for a model input of `shape`, as an .npz for --data."""
    rng = np.random.default_rng(seed)
    image = tuple(shape[1:]) if shape[-1] in (1, 3) else tuple(shape[1:-1])
    np.savez(path, x=rng.integers(0, 256, (n,) + image, dtype=np.uint8), y=np.arange(n) % 3)


def _training_state(graph, model: bytes, npz: Path, stem: Path) -> tuple[Path, bytes]:
    """A state file of `train -o` and a device checkpoint blob after two training steps."""
    from tflite_train import checkpoint, cli
    from tflite_train.runtime.numpy_exec import Executor
    path = stem.with_suffix(".tflite")
    path.write_bytes(model)
    state = stem.with_suffix(".state.npz")
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            code = cli.main(["train", str(path), "--data", str(npz), "--steps", "2",
                             "-o", str(state)])
        finally:
            sys.stdout = stdout
    assert code == 0, f"training the seed {path} failed"
    ex = Executor(graph)
    shape = graph.tensors[graph.inputs[0]].shape
    for label in (0, 1):
        ex.invoke([np.zeros(shape, np.int8), np.array([label], np.int32)])
    blob = checkpoint.to_blob(checkpoint.capture(ex, graph, checkpoint.model_id(model), 3))
    return state, blob


def flatbuffer_positions(data: bytes) -> dict[str, list[int]]:
    """Where the model's flatbuffer keeps offsets (uoffsets and vtable soffsets), vector and
    string lengths, and custom options, found by recording the positions the generated
    accessors read while tflite_io parses it."""
    from flatbuffers import encode, packer, table
    from tflite_train import tflite_io
    found: dict[str, set] = {"offset": set(), "length": set()}
    real = {name: getattr(table.Table, name) for name in
            ("Offset", "Indirect", "String", "VectorLen", "Vector")}

    def offset(self, vtable_offset):
        found["offset"].add(self.Pos)
        return real["Offset"](self, vtable_offset)

    def indirect(self, off):
        found["offset"].add(off)
        return real["Indirect"](self, off)

    def string(self, off):
        found["offset"].add(off)
        found["length"].add(off + encode.Get(packer.uoffset, self.Bytes, off))
        return real["String"](self, off)

    def vector_len(self, off):
        at = off + self.Pos
        found["offset"].add(at)
        found["length"].add(at + encode.Get(packer.uoffset, self.Bytes, at))
        return real["VectorLen"](self, off)

    def vector(self, off):
        found["offset"].add(off + self.Pos)
        return real["Vector"](self, off)

    patched = {"Offset": offset, "Indirect": indirect, "String": string,
               "VectorLen": vector_len, "Vector": vector}
    for name, fn in patched.items():
        setattr(table.Table, name, fn)
    try:
        tflite_io.parse(data)
    finally:
        for name, fn in real.items():
            setattr(table.Table, name, fn)
    return {k: sorted(p for p in v if 0 <= p <= len(data) - 4) for k, v in found.items()}


def tiny_pickle() -> bytes:
    """A small tiny-training model (the .pkl layout of ../shared/PAPER.md): a first conv, an
    inverted-residual block with a residual add, a strided one and a classifier."""
    rng = np.random.default_rng(0)
    relu6 = (6 / 255, -128)

    def conv(cin, cout, k, stride=1, groups=1, x=relu6, y=relu6):
        w = rng.integers(-20, 21, (cout, cin // groups, k, k)).astype(np.int8)
        return {"params": {"weight": w, "w_scales": np.full(cout, 0.01, np.float32),
                           "bias": rng.integers(-500, 500, cout).astype(np.int32),
                           "x_scale": float(np.float32(x[0])), "x_zero": x[1],
                           "y_scale": float(np.float32(y[0])), "y_zero": y[1]},
                "stride": stride, "groups": groups}
    mid = (0.05, 3)
    cfg = {"first_conv": {**conv(3, 8, 3, 2, x=(1 / 128, 0)), "in_shape": 16, "in_channel": 3},
           "blocks": [{"pointwise1": conv(8, 16, 1), "depthwise": conv(16, 16, 3, 1, 16),
                       "pointwise2": conv(16, 8, 1, y=mid), "se": None,
                       "residual": {"params": {"y_scale": float(np.float32(0.06)),
                                               "y_zero": 1}}},
                      {"pointwise1": None,
                       "depthwise": conv(8, 8, 3, 2, 8, x=(0.06, 1)),
                       "pointwise2": conv(8, 12, 1), "se": None, "residual": None}],
           "feature_mix": None, "classifier": {"params": conv(12, 5, 1, y=mid)["params"]}}
    return zipped(pickle.dumps(cfg, protocol=2))


def zipped(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", payload)
    return buf.getvalue()


# --- mutations ---------------------------------------------------------------------------------

def _interesting(rng: random.Random, current: int, size: int) -> int:
    return rng.choice([0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                       0xFFFFFFFF, 0xFFFFFFFE, size, size - 4, size // 2,
                       (current + 4) & 0xFFFFFFFF, (current - 4) & 0xFFFFFFFF,
                       (current + 1) & 0xFFFFFFFF, (current - 1) & 0xFFFFFFFF,
                       (current * 2) & 0xFFFFFFFF, rng.getrandbits(32)])


def _put32(data: bytearray, at: int, value: int) -> None:
    data[at:at + 4] = value.to_bytes(4, "little")


def _flip(rng: random.Random, data: bytes, lo: int = 0, hi: int | None = None) -> bytes:
    out = bytearray(data)
    hi = len(out) if hi is None else hi
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        out[rng.randrange(lo, hi)] ^= rng.randrange(1, 256)
    return bytes(out)


FLATBUFFER_MUTATIONS = ("flip", "truncate", "offset32", "length32", "word32", "ir")
PICKLE_MUTATIONS = ("zip-flip", "zip-header", "zip-truncate", "pickle-flip",
                    "pickle-truncate", "config")
STATE_MUTATIONS = ("zip-flip", "zip-header", "zip-truncate", "npz-array", "npz-json")
BLOB_MUTATIONS = ("flip", "truncate", "word32", "word32+crc", "region+crc")


def mutate(seed: Seed, rng: random.Random, how: str | None = None) -> tuple[bytes, str]:
    """(mutant bytes, what was done): one mutation of the seed, chosen by `rng`."""
    if seed.kind == "pkl":
        how = how or rng.choice(PICKLE_MUTATIONS)
        return _mutate_pickle(seed.data, rng, how), how
    if seed.kind == "state":
        how = how or rng.choice(STATE_MUTATIONS)
        return _mutate_state(seed.data, rng, how), how
    if seed.kind == "blob":
        how = how or rng.choice(BLOB_MUTATIONS)
        return _mutate_blob(seed.data, rng, how), how
    how = how or rng.choice(FLATBUFFER_MUTATIONS)
    data = seed.data
    if how == "flip":
        return _flip(rng, data), how
    if how == "truncate":
        return data[:rng.randrange(len(data))], how
    if how in ("offset32", "length32", "word32"):
        where = {"offset32": seed.positions.get("offset"),
                 "length32": seed.positions.get("length")}.get(how) \
            or range(0, len(data) - 3, 4)
        at = rng.choice(list(where))
        out = bytearray(data)
        _put32(out, at, _interesting(rng, int.from_bytes(out[at:at + 4], "little"), len(data)))
        return bytes(out), f"{how}@{at}"
    return _mutate_ir(data, rng)


def _mutate_ir(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A structurally sound flatbuffer with one wrong value: what only the semantic checks
    can catch."""
    from tflite_train import tflite_io
    from tflite_train.ir import Quantization
    g = tflite_io.parse(data)
    t = rng.choice(g.tensors)
    what = rng.choice(["shape", "dtype", "scale", "zero_point", "axis", "variable", "option",
                       "op-input", "op-output", "graph-io", "custom", "custom-value",
                       "metadata", "flash-record", "data"])
    bad_numbers = [0, -1, 1, 2, 3, 7, 255, 256, 1 << 15, (1 << 31) - 1, -(1 << 31)]
    if what == "shape" and t.shape:
        dims = list(t.shape)
        dims[rng.randrange(len(dims))] = rng.choice(bad_numbers + [dims[0] * 2 + 1])
        if rng.random() < 0.2:
            dims = dims[:-1] if rng.random() < 0.5 else dims + [1]
        t.shape = tuple(dims)
    elif what == "dtype":
        t.dtype = rng.choice(["float32", "int8", "uint8", "int16", "int32", "int64", "bool"])
        if t.data is not None:
            t.data = None
    elif what in ("scale", "zero_point", "axis") and t.quant is not None:
        q = t.quant
        if what == "scale":
            q.scale = q.scale.copy()
            q.scale[rng.randrange(q.scale.size)] = rng.choice(
                [0.0, -1.0, np.nan, np.inf, 1e-45, 1e-30, 1e30, 3.4e38, 2.0 ** -27])
        elif what == "zero_point":
            q.zero_point = q.zero_point.copy()
            q.zero_point[rng.randrange(q.zero_point.size)] = rng.choice(
                [-129, 128, 255, 1 << 31, -1, 1])
        else:
            q.axis = rng.choice([-1, 0, 1, 3, 4, 100])
    elif what == "scale":
        t.quant = Quantization(np.array([rng.choice([0.0, 1.0, np.nan])], np.float32),
                               np.zeros(1, np.int64))
    elif what == "variable":
        t.is_variable = not t.is_variable
    elif what == "data" and t.data is not None:
        t.data = t.data.ravel()[:max(t.data.size // 2, 0)].copy()
    elif g.operators and what in ("option", "op-input", "op-output", "custom",
                                  "custom-value"):
        op = rng.choice(g.operators)
        n = len(g.tensors)
        if what == "option" and op.options:
            key = rng.choice(sorted(op.options))
            if not isinstance(op.options[key], np.ndarray):
                op.options[key] = rng.choice(bad_numbers + [0.0, -0.5, float("nan")]) \
                    if not isinstance(op.options[key], float) else \
                    rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e-30, 1e30])
        elif what == "op-input" and op.inputs:
            op.inputs[rng.randrange(len(op.inputs))] = rng.choice([-1, -2, n, n + 5,
                                                                   rng.randrange(n)])
            if rng.random() < 0.2:
                op.inputs = op.inputs[:-1] if rng.random() < 0.5 else op.inputs + [0]
        elif what == "op-output" and op.outputs:
            op.outputs[rng.randrange(len(op.outputs))] = rng.choice([-1, n, rng.randrange(n)])
        elif what in ("custom", "custom-value") and op.opcode == "CUSTOM":
            op.custom_options = _mutate_custom(op.custom_options or b"", rng,
                                               what == "custom-value")
    elif what == "graph-io":
        role = rng.choice([g.inputs, g.outputs])
        if role:
            role[rng.randrange(len(role))] = rng.choice([-1, len(g.tensors),
                                                         rng.randrange(len(g.tensors))])
    elif what == "metadata":
        key = rng.choice(sorted(g.metadata) or ["OfflineMemoryAllocation"])
        g.metadata[key] = rng.choice([b"", b"\x00" * 12, b"{}", b"[1]", b'{"version": 1}',
                                      b"\xff\xfe", os.urandom(rng.randrange(1, 64))])
    elif what == "flash-record" and "tflite_train" in g.metadata:
        g.metadata["tflite_train"] = _flash_record_mutant(g.metadata["tflite_train"], rng)
    try:
        return tflite_io.serialize(g), f"ir-{what}"
    except Exception:
        return _flip(rng, data), "flip"


def _flash_record_mutant(blob: bytes, rng: random.Random) -> bytes:
    """augment's flash budget record (metadata memory.flash_budget, read by `plan`) with one
    value, at any depth, of a wrong type."""
    try:
        meta = json.loads(blob)
        meta["memory"]["flash_budget"] = record = {
            "budget": 1 << 20, "tflm_code": 1 << 19, "fits": True, "sram_cost": 64,
            "given_up": {"requantization in flash": {"conv": 64}}}
    except (ValueError, KeyError, TypeError):
        return blob
    wrong = rng.choice([[], "x", None, {}, -1, 1.5, True, [64], {"a": []}])
    where = rng.choice([(), ("given_up",), ("given_up", "requantization in flash"),
                        ("given_up", "requantization in flash", "conv"), ("budget",),
                        ("sram_cost",)])
    if not where:
        meta["memory"]["flash_budget"] = wrong
    else:
        for key in where[:-1]:
            record = record[key]
        record[where[-1]] = wrong
    return json.dumps(meta).encode()


def _mutate_custom(blob: bytes, rng: random.Random, values: bool) -> bytes:
    """Broken flexbuffer options: random bytes, or a well-formed map of wrong values."""
    from flatbuffers import flexbuffers
    if not values or not blob:
        return _flip(rng, blob) if blob and rng.random() < 0.6 else os.urandom(
            rng.randrange(0, 40))
    try:
        options = flexbuffers.Loads(blob)
    except Exception:
        return blob
    if not isinstance(options, dict) or not options:
        return blob
    key = rng.choice(sorted(options))
    choice = rng.random()
    if choice < 0.2:
        del options[key]
    else:
        options[key] = rng.choice([0, -1, 1 << 40, -(1 << 40), 2.5, float("nan"), True,
                                   "text", [1, 2], list(range(20)), [-1] * 6, 7, 1 << 31])
    return bytes(flexbuffers.Dumps(options))


def _mutate_state(data: bytes, rng: random.Random, how: str) -> bytes:
    """A broken state file: its zip, one array, or its JSON records."""
    if how.startswith("zip-"):
        return _mutate_pickle(data, rng, how)
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    name = rng.choice(sorted(arrays))
    if how == "npz-json" and "__state__" in arrays:
        name = rng.choice(["__state__", "__history__"])
        text = str(arrays[name])
        cut = rng.randrange(len(text))
        arrays[name] = np.array(rng.choice([text[:cut], text[:cut] + "7" + text[cut + 1:],
                                            "[]", "{}", '{"format": 1}', "null"]))
    elif rng.random() < 0.2:
        del arrays[name]
    else:
        arrays[name] = _wrong_value(arrays[name], rng)
        if not isinstance(arrays[name], np.ndarray) or arrays[name].dtype == object:
            arrays[name] = np.array([np.nan])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _mutate_blob(data: bytes, rng: random.Random, how: str) -> bytes:
    """A broken checkpoint blob; "+crc": its CRC-32 recomputed, so that the damage gets past
    the check a device does first."""
    import struct
    import zlib
    if how == "flip":
        return _flip(rng, data)
    if how == "truncate":
        return data[:rng.randrange(len(data))]
    out = bytearray(data)
    limit = 64 if how == "region+crc" else len(out) - 4     # the header and region table
    at = rng.randrange(0, min(limit, len(out) - 4)) & ~3
    _put32(out, at, _interesting(rng, int.from_bytes(out[at:at + 4], "little"), len(out)))
    if how.endswith("+crc"):
        total = int.from_bytes(out[16:20], "little")
        if 4 <= total <= len(out):
            out[total - 4:total] = struct.pack("<I", zlib.crc32(bytes(out[:total - 4])))
    return bytes(out)


def _mutate_pickle(data: bytes, rng: random.Random, how: str) -> bytes:
    if how == "zip-flip":
        return _flip(rng, data)
    if how == "zip-header":       # the local header or the central directory
        span = min(64, len(data))
        return _flip(rng, data, 0, span) if rng.random() < 0.5 else \
            _flip(rng, data, len(data) - span, len(data))
    if how == "zip-truncate":
        return data[:rng.randrange(len(data))]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = next(n for n in z.namelist() if n.endswith("data.pkl"))
        raw = z.read(name)
    if how == "pickle-flip":
        return zipped(_flip(rng, raw))
    if how == "pickle-truncate":
        return zipped(raw[:rng.randrange(len(raw))])
    from tflite_train.importers.tiny_training import _NumpyOnlyUnpickler
    cfg = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    _break_config(cfg, rng)
    return zipped(pickle.dumps(cfg, protocol=2))


def _break_config(cfg, rng: random.Random) -> None:
    """One missing or wrongly typed key somewhere in the configuration."""
    node, key = cfg, None
    for _ in range(rng.randrange(1, 6)):
        if isinstance(node, dict) and node:
            key = rng.choice(sorted(node, key=str))
            if isinstance(node[key], (dict, list)) and node[key] and rng.random() < 0.8:
                node = node[key]
                key = None
                continue
            break
        if isinstance(node, list) and node:
            i = rng.randrange(len(node))
            if isinstance(node[i], (dict, list)) and rng.random() < 0.8:
                node = node[i]
                continue
            key = i
            break
    if isinstance(node, dict) and node:
        key = key if key in node else rng.choice(sorted(node, key=str))
        if rng.random() < 0.25:
            del node[key]
            return
        node[key] = _wrong_value(node[key], rng)
    elif isinstance(node, list) and node:
        node[rng.randrange(len(node))] = _wrong_value(None, rng)


def _wrong_value(value, rng: random.Random):
    options = [None, "text", 1.5, -1, 0, 1 << 40, float("nan"), float("inf"), [], {}, [1, 2],
               np.float32(np.nan), np.array([np.nan]), np.zeros((0,), np.int8), b"\x00\xff"]
    if isinstance(value, np.ndarray) and value.size and value.dtype.kind in "iuf":
        options += [value.ravel()[:value.size // 2], value.astype(np.float32) * 1e30,
                    value.reshape(-1), value[..., :0] if value.ndim else value]
    return rng.choice(options)


def glue_mutant(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A training model broken only where the TFLM glue (micro_kernels/tflm) must notice:
    one TT_* op's options, inputs or outputs, or a tensor only TT_* ops use. Written without
    validation, for the wheel's TFLM to load directly: the forward builtins stay valid, so
    anything that goes wrong is the glue's."""
    from tflite_train import tflite_io
    from tflite_train.ir import Quantization
    g = tflite_io.parse(data)
    tt = [op for op in g.operators if op.kind.startswith("TT_")]
    builtin_uses = {t for op in g.operators if not op.kind.startswith("TT_")
                    for t in op.inputs + op.outputs}
    only_tt = [i for i, t in enumerate(g.tensors) if i not in builtin_uses
               and i not in g.inputs]
    op = rng.choice(tt)
    what = rng.choice(["options", "options", "values", "input", "output", "arity", "tensor",
                       "tensor", "quant", "variable"])
    n = len(g.tensors)
    if what == "options":
        op.custom_options = _mutate_custom(op.custom_options or b"", rng, False)
    elif what == "values":
        op.custom_options = _mutate_custom(op.custom_options or b"", rng, True)
    elif what == "input" and op.inputs:
        op.inputs[rng.randrange(len(op.inputs))] = rng.choice([-1, rng.randrange(n)])
    elif what == "output" and op.outputs:
        op.outputs[rng.randrange(len(op.outputs))] = rng.choice(only_tt or [0])
    elif what == "arity":
        op.inputs = op.inputs[:-1] if rng.random() < 0.5 else op.inputs + [rng.randrange(n)]
    elif only_tt:
        t = g.tensors[rng.choice(only_tt)]
        if what == "tensor":
            dims = list(t.shape) or [1]
            k = rng.randrange(len(dims))
            dims[k] = rng.choice([1, 2, 3, dims[k] + 1, dims[k] * 2, 64])
            if rng.random() < 0.3:
                dims = dims[:-1] if len(dims) > 1 and rng.random() < 0.5 else dims + [2]
            t.shape = tuple(dims)
            if rng.random() < 0.3:
                t.dtype = rng.choice(["float32", "int8", "uint8", "int32"])
        elif what == "quant":
            t.quant = rng.choice([None, Quantization(np.ones(3, np.float32), np.zeros(3, np.int64)),
                                  Quantization(np.zeros(1, np.float32), np.zeros(1, np.int64))])
        else:
            t.is_variable = not t.is_variable
    return tflite_io.serialize(g), f"glue-{what}"


def glue_case(server: "ForkServer", seeds: list[Seed], case: int, work: Path,
              timeout: float) -> tuple[str, str, bytes]:
    """Glue case number `case`: a glue_mutant of a training seed loaded and run by the
    wheel's TFLM in a forked child. Returns (ran | refused | crash | hang | other exit,
    what was mutated, the mutant)."""
    rng = random.Random(f"glue:{case}")
    seed = rng.choice([s for s in seeds if s.kind == "train"])
    data, how = glue_mutant(seed.data, rng)
    model = work / "glue.tflite"
    model.write_bytes(data)
    res = server.run([], work, timeout, glue=str(model))
    kind = ("hang" if res["hang"] else "crash" if res["signal"] else
            {0: "ran", 2: "refused"}.get(res["exit"], "other exit"))
    return kind, f"{seed.name}: {how}", data


# --- commands -----------------------------------------------------------------------------------

def commands(seed: Seed, model: str, out: str) -> list[list[str]]:
    """Every command that applies to a seed of this kind, on the mutant at `model`."""
    if seed.kind == "pkl":
        return [["import", model, "-o", out], ["import", model, "-o", out, "--padding", "pad"]]
    if seed.kind in ("state", "blob"):
        return [["export", "train.tflite", "--state", model, "-o", out]]
    common = [["inspect", model], ["inspect", model, "--json"], ["plan", model],
              ["plan", model, "--json", "--timeline"],
              ["plan", model, "--target", "wheel-x86_64"]]       # measured in the wheel
    if seed.kind == "tflite":
        return common + [["verify", model, "--samples", "1"],
                         ["augment", model, "-o", out, "--num-classes", "3"],
                         ["augment", model, "-o", out, "--scheme", "full", "--no-fuse",
                          "--momentum", "0.5"],
                         ["compare", model, "--schemes", "bias-only"],
                         ["header", model, "-o", out]] + \
            ([["augment", model, "-o", out, "--num-classes", "3", "--lr", "auto", "--data",
               str(seed.npz), "--lr-test-steps", "2"]] if seed.npz else [])
    data = str(seed.npz)
    return common + [["header", model, "-o", out, "--array", "g_model"],
                     ["train", model, "--data", data, "--steps", "2", "--engine", "numpy",
                      "-o", out + ".npz"],
                     ["train", model, "--data", data, "--steps", "2", "--engine", "c"],
                     ["train", model, "--data", data, "--steps", "2", "--engine", "tflm"],
                     ["verify", model, "--samples", "1"],
                     ["plan", model, "--write-offline", out], ["codegen", model, "-o", out]] + \
        ([["export", model, "--state", str(seed.state), "-o", out]] if seed.state else [])


def command_name(argv: list[str], mutated: bool = True) -> str:
    name = argv[0]
    if name == "export":
        what = ("model" if argv[1] != "train.tflite" else
                "checkpoint" if argv[3].endswith(".ckpt") else "state")
        name += f" (broken {what})" if mutated else f" (of a {what} seed)"
    elif name == "train":
        name += " --engine " + argv[argv.index("--engine") + 1]
    elif name in ("inspect", "plan") and "--json" in argv:
        name += " --json"
    elif name == "plan" and "--write-offline" in argv:
        name += " --write-offline"
    elif name == "plan" and "--target" in argv:
        name += " --target " + argv[argv.index("--target") + 1]
    elif name == "augment" and "--no-fuse" in argv:
        name += " --no-fuse"
    elif name == "augment" and "auto" in argv:
        name += " --lr auto"
    elif name == "import" and "--padding" in argv:
        name += " --padding pad"
    return name


# --- running -------------------------------------------------------------------------------------

def classify(exit_code: int | None, sig: int | None, hang: bool, stderr: str,
             input_changed: bool, leftovers: list[str], wrote: bool) -> tuple[str, str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if hang:
        return "hang", ""
    if sig is not None:
        return "crash", f"signal {signal.Signals(sig).name}"
    if exit_code == TRACEBACK_EXIT or "Traceback (most recent call last)" in stderr:
        return "traceback", last[:200]
    if input_changed:
        return "input modified", ""
    if leftovers:
        return "partial output", ", ".join(leftovers)
    if exit_code in (0, 1) and lines:
        return "stray stderr", " | ".join(lines)[:300]
    if exit_code == 0:
        return ("ok", "") if wrote else ("partial output", "no output written")
    if exit_code == 1:
        return "not bit-exact", ""
    if exit_code == 2:
        if len(lines) == 1 and last.startswith("tflite-train: error: "):
            return "error", last[len("tflite-train: error: "):][:200]
        return "error, not one line", " | ".join(lines)[:300]
    return "other exit", f"exit {exit_code}: {last[:200]}"


class ForkServer:
    """A child Python that imports tflite-train once and forks one grandchild per command."""

    def __init__(self, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                                     env={**os.environ, **(env or {})})
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"fuzz server did not start: {ready}{self.proc.stderr.read()}")

    def run(self, argv: list[str], cwd: Path, timeout: float, glue: str | None = None,
            python: str | None = None) -> dict:
        """Runs `tflite-train argv` in a forked child; or, with `glue`, loads that model
        straight into the wheel's TFLM with the glue registered; or runs `python`."""
        req = {"argv": argv, "cwd": str(cwd), "timeout": timeout}
        if glue is not None:
            req["glue"] = glue
        if python is not None:
            req["python"] = python
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fuzz server died: {self.proc.stderr.read()[-2000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def run_case(server: ForkServer, argv: list[str], model: Path, out: Path, case_dir: Path,
             timeout: float) -> tuple[str, str, float]:
    """Runs argv in a forked child (cwd case_dir, which holds only the model and perhaps
    the data); returns (outcome kind, detail, seconds)."""
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    listing = set(os.listdir(case_dir))
    res = server.run(argv, case_dir, timeout)
    stderr = (case_dir / ".stderr").read_text(errors="replace")
    changed = hashlib.sha256(model.read_bytes()).hexdigest() != before
    new = sorted(set(os.listdir(case_dir)) - listing - {".stdout", ".stderr"})
    outputs = [p for p in (out.name, out.name + ".npz") if p in new]
    wants_output = any(a in argv for a in ("-o", "--write-offline"))
    leftovers = [p for p in new if p not in outputs] if res["exit"] == 0 else new
    if res["exit"] == 0 and any(a == "--plot" for a in argv):
        leftovers = []
    kind, detail = classify(res["exit"], res["signal"], res["hang"], stderr, changed,
                            leftovers, bool(outputs) or not wants_output)
    return kind, detail, res["seconds"]


# How often each kind of seed is picked: models, which every command reads, most.
KIND_WEIGHTS = {"tflite": 4, "train": 4, "pkl": 1, "state": 1, "blob": 1}


def fuzz_case(server: ForkServer, seeds: list[Seed], base_seed: int, case: int, workdir: Path,
              timeout: float,
              kinds: tuple[str, ...] = ("tflite", "train", "pkl", "state", "blob"),
              only: tuple[str, ...] = ()):
    """Case number `case` of the seeded campaign: a seed, one mutation, one command (of
    `only`, when given). Returns (outcome kind, detail, argv, mutation, the case's folder)."""
    rng = random.Random(f"{base_seed}:{case}")
    present = [k for k in KIND_WEIGHTS if k in kinds and any(s.kind == k for s in seeds)]
    kind = rng.choices(present, [KIND_WEIGHTS[k] for k in present])[0]
    seed = rng.choice([s for s in seeds if s.kind == kind])
    data, how = mutate(seed, rng)
    case_dir = workdir / f"case{case}"
    model, out = _case_files(seed, data, case_dir)
    argv = rng.choice([a for a in commands(seed, model.name, out.name)
                       if not only or a[0] in only])
    kind, detail, _ = run_case(server, argv, model, out, case_dir, timeout)
    return kind, detail, argv, f"{seed.name}:{how}", case_dir


def sweep_case(server: ForkServer, seed: Seed, command: int, case_dir: Path,
               timeout: float):
    """Command number `command` of commands(seed) on the seed itself, unmutated (fuzz.py
    --sweep). Returns (outcome kind, detail, argv, the case's folder)."""
    model, out = _case_files(seed, seed.data, case_dir)
    argv = commands(seed, model.name, out.name)[command]
    kind, detail, _ = run_case(server, argv, model, out, case_dir, timeout)
    return kind, detail, argv, case_dir


def _case_files(seed: Seed, data: bytes, case_dir: Path) -> tuple[Path, Path]:
    """A case's folder: the (mutated) seed under its kind's name, the training model a
    state or checkpoint belongs to; (model, output) paths."""
    case_dir.mkdir(parents=True, exist_ok=True)
    model = case_dir / {"pkl": "model.pkl", "state": "state.npz",
                        "blob": "state.ckpt"}.get(seed.kind, "model.tflite")
    model.write_bytes(data)
    if seed.model is not None:
        (case_dir / "train.tflite").write_bytes(seed.model)
    return model, case_dir / "out.bin"


def save_reproducer(folder: Path, case: int, argv: list[str], case_dir: Path, kind: str,
                    detail: str) -> Path:
    """The mutant, the command and what it printed, to run again by hand."""
    import shutil
    target = folder / f"case{case}"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(case_dir, target)
    local = []                    # files outside the case (training data, a state): copied
    for a in argv:
        if os.path.isabs(a) and Path(a).is_file():
            shutil.copy(a, target / Path(a).name)
            a = Path(a).name
        local.append(a)
    (target / "README").write_text(
        f"{kind}: {detail}\nrun in this folder:\n  tflite-train {' '.join(local)}\n")
    return target


def zoo_paths() -> list[Path]:
    """The test zoo's models (tests/modelzoo.py), built once per source version into the
    cache the tests share."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT / "tests"))
    import fcntl
    import modelzoo
    digest = hashlib.sha256(Path(modelzoo.__file__).read_bytes()).hexdigest()[:12]
    cache = ROOT / ".cache" / f"modelzoo-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return [Path(p) for p in modelzoo.build_all(cache).values()]


def sanitized_glue(folder: Path) -> tuple[Path, dict] | None:
    """The glue and kernels built with AddressSanitizer + UBSan, and the environment that
    preloads the sanitizers' runtimes (None when gcc has none). UBSan's vptr check is off:
    the glue calls the wheel's MicroContext through tt_tflm_compat.h's declaration of it, a
    type UBSan cannot know is the same one. Built once per test session and sources
    (board_build.built_once: test_fuzz and test_tflm_engine load the same library); outside
    a session, into `folder`."""
    from conftest import sanitizer_runtimes
    runtimes = sanitizer_runtimes()
    if runtimes is None:
        return None
    asan, ubsan = runtimes
    kernels = ROOT / "micro_kernels"
    sanitize = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize=vptr",
                "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-fPIC"]

    def build(into: Path) -> None:
        objs = []
        for src in sorted((kernels / "src").glob("*.c")):
            objs.append(into / f"{src.stem}.o")
            subprocess.run(["gcc", "-std=c99", *sanitize, "-I", str(kernels / "include"), "-c",
                            str(src), "-o", str(objs[-1])], check=True)
        subprocess.run(["g++", "-std=c++17", *sanitize, "-shared", "-DTT_TFLM_WHEEL_ABI",
                        "-DFLATBUFFERS_LOCALE_INDEPENDENT=0", "-I", str(kernels / "include"),
                        "-I", str(kernels / "tflm"), str(kernels / "tflm" / "tt_tflm_ops.cc"),
                        str(kernels / "tflm" / "tt_tflm_forward_ops.cc"),
                        str(kernels / "tflm" / "tt_tflm_wheel.cc"), *map(str, objs), "-o",
                        str(into / "libtt_tflm_wheel.so")], check=True)
    import board_build
    if board_build.ROOT is None:
        build(folder)
        lib = folder / "libtt_tflm_wheel.so"
    else:
        lib = board_build.built_once(
            "sanitized-glue", ("gcc", "g++"), sanitize,
            [kernels / "src", kernels / "include", kernels / "tflm"], build) / \
            "libtt_tflm_wheel.so"
    env = {"LD_PRELOAD": f"{asan} {ubsan}", "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:print_stacktrace=1"}
    return lib, env


# --- the server side ----------------------------------------------------------------------------

def _serve() -> None:
    """Reads {"argv", "cwd", "timeout"} lines, forks a child per line, answers with its
    exit code, signal, whether it hung, and the seconds it took."""
    import traceback
    out = sys.stdout
    # everything heavy, once: the children inherit it
    from tflite_train import augment, cli, compare, memory, verify  # noqa: F401
    from tflite_train.runtime import c_kernels, tflm_engine
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    c_kernels.library()
    if os.environ.get("TT_FUZZ_GLUE"):       # a glue build of the caller's (sanitizers)
        import ctypes
        lib = ctypes.CDLL(os.environ["TT_FUZZ_GLUE"], mode=ctypes.RTLD_GLOBAL)
        tflm_engine.glue_library = lambda: lib
    tflm_engine.glue_library()
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = TRACEBACK_EXIT
            try:
                cpu = max(1, int(req["timeout"]))        # SIGXCPU after `timeout` CPU seconds
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
                os.chdir(req["cwd"])
                for fd, name in ((1, ".stdout"), (2, ".stderr")):
                    f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(f, fd)
                    os.close(f)
                sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), newline="\n")
                sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), newline="\n",
                                              line_buffering=True)
                try:
                    if "python" in req:            # the fuzzer's own tests
                        exec(req["python"], {})
                        code = 0
                    else:
                        code = _glue_run(req["glue"]) if "glue" in req else cli.main(req["argv"])
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 2
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                code = TRACEBACK_EXIT
            os._exit(code if isinstance(code, int) else TRACEBACK_EXIT)
        status, hang = _wait(pid, WALL_FACTOR * req["timeout"])
        hang = hang or os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU
        result = {"exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                  "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) and not hang
                  else None, "hang": hang, "seconds": time.monotonic() - start}
        out.write(json.dumps(result) + "\n")
        out.flush()


def _glue_run(path: str) -> int:
    """The model at `path`, unvalidated, into the wheel's TFLM with our ops registered, then
    a training and an inference Invoke: 0 when it ran, 2 when TFLM or the glue refused."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_train.runtime.tflm_engine import REGISTERER
    try:
        it = runtime.Interpreter.from_bytes(Path(path).read_bytes(),
                                            custom_op_registerers=[REGISTERER],
                                            arena_size=64 << 20)
        for label in (0, -1):
            for k, detail in enumerate(it.get_input_details(i) for i in range(2)):
                x = np.full(detail["shape"], label if k == 1 else 1, detail["dtype"])
                it.set_input(x, k)
            it.invoke()
    except (RuntimeError, ValueError, IndexError, KeyError, TypeError) as exc:
        print(f"refused: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], True
        select.select([], [], [], delay)
        delay = min(delay * 2, 0.02)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    sys.path.insert(0, str(ROOT))
    _serve()
