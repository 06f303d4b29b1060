"""Training checkpoints on the host: the device's blob format (micro_kernels/include/
tt_checkpoint.h documents it byte by byte), what a training model's checkpoint holds, and
moving it into and out of the host executors.

A checkpoint is everything training needs to resume exactly, as regions in a fixed order:
every trained parameter (the variables TT_INIT fills), every momentum buffer, every batch
accumulator (augment --batch B > 1: a run resumed mid-batch gives the same bits), every
rounding residual (augment --head-residual: the head's carried remainders), and every
update op's random-stream state and step counter. `layout(graph)` is that order; the
device gets it from `tflite-train header` (c_header.py), which calls the same function.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import TTError
from .ir import Graph
from .training_ops import accumulator_input, grad_mode, grad_slots, residual_input, schema
from .training_ops import options_of as options_of_op

MAGIC = 0x4B435454                 # "TTCK"
VERSION = 1
HEADER = struct.Struct("<IHHIIQII")  # magic, version, header bytes, sequence, total, model id,
HEADER_BYTES = HEADER.size           # region count, reserved
ENTRY = struct.Struct("<IiI")        # kind, id, bytes
CRC_BYTES = 4

# ACCUMULATOR: a batch's float32 gradient sum (augment --batch B > 1), the trained region's
# shape; a batch-1 model has none, so its layout is what it was
# RESIDUAL: a weight update's int8 rounding residual (augment --head-residual, the default
# with a new head), the trained region's shape; a model without one has none
PARAMETER, MOMENTUM, UPDATE_STATE, ACCUMULATOR, RESIDUAL = 1, 2, 3, 4, 5
KIND_NAMES = {PARAMETER: "parameter", MOMENTUM: "momentum buffer", UPDATE_STATE: "update state",
              ACCUMULATOR: "accumulator", RESIDUAL: "residual"}

assert HEADER_BYTES == 32 and ENTRY.size == 12


def model_id(model: bytes) -> int:
    """The training model's identity: the first 8 bytes of its SHA-256, little-endian."""
    return int.from_bytes(hashlib.sha256(model).digest()[:8], "little")


@dataclass(frozen=True)
class Region:
    kind: int
    id: int             # tensor index (parameter, momentum, accumulator) or the updated
                        # parameter's
    shape: tuple
    dtype: str
    name: str           # the tensor's name (for an update state: its parameter's)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        return f"{KIND_NAMES.get(self.kind, f'kind {self.kind}')} {self.name!r}"


def update_ops(graph: Graph) -> list[tuple[int, int, int]]:
    """(op index, key tensor, momentum tensor or -1) of every op with a random stream and
    step counter to save, in execution order. From the schema: an update op has a
    momentum_buffer input, and its key is its parameter, the other input the op writes
    (`variable`); an op that rounds an int8 gradient stochastically (option rounding 1 in
    int8 mode) is keyed by that gradient, its output at the gradient slot
    (schema: int8_gradients.rounding)."""
    out = []
    for k, op in enumerate(graph.operators):
        spec = schema()["ops"].get(op.kind) if op.kind.startswith("TT_") else None
        names = [i["name"] for i in spec["inputs"]] if spec else []
        if "momentum_buffer" in names:
            mom = names.index("momentum_buffer")
            param = next(p for p, i in enumerate(spec["inputs"])
                         if i.get("variable") and p != mom)
            out.append((k, op.inputs[param], op.inputs[mom]))
        elif spec and grad_mode(graph, op) == "int8" and options_of_op(op).get("rounding") == 1:
            out.append((k, op.outputs[grad_slots(op.kind)[1][0]], -1))
    return out


def trained_parameters(graph: Graph) -> list[int]:
    """The variables TT_INIT initialises, in tensor order."""
    init = next((op for op in graph.operators if op.kind == "TT_INIT"), None)
    if init is None:
        raise TTError("training model without a TT_INIT op: nothing is trained")
    return sorted(init.inputs[1::2])


def trained_channels(graph: Graph) -> dict[int, int]:
    """Filter -> the input channels (last axis) its update touches, for the filters trained
    on fewer than all of them: a generated program (codegen) keeps only those in SRAM, so its
    checkpoint region of such a filter holds just them."""
    out = {}
    for k, p, _ in update_ops(graph):
        o = options_of_op(graph.operators[k])
        depth = graph.tensors[p].shape[-1]
        if "channels" in o and o.get("axis", 0) == 0 and 0 < o["channels"] < depth:
            out[p] = o["channels"]
    return out


def layout(graph: Graph, partial: dict[int, int] | None = None) -> list[Region]:
    """The regions of this training model's checkpoint, in blob order: parameters by
    tensor index, then momentum buffers by tensor index, then accumulators by tensor index,
    then rounding residuals by tensor index, then update states by the index of the parameter they update. `partial`: filter -> k,
    filters whose region is their first k input channels (a generated program's split
    filters)."""
    regions = []
    for i in trained_parameters(graph):
        t = graph.tensors[i]
        shape = t.shape if i not in (partial or {}) else (*t.shape[:-1], partial[i])
        regions.append(Region(PARAMETER, i, shape, t.dtype, t.name))
    updates = update_ops(graph)
    for m in sorted(m for _, _, m in updates if m >= 0):
        t = graph.tensors[m]
        regions.append(Region(MOMENTUM, m, t.shape, t.dtype, t.name))
    accumulators = (accumulator_input(graph, graph.operators[k]) for k, _, _ in updates)
    for a in sorted(a for a in accumulators if a >= 0):
        t = graph.tensors[a]
        regions.append(Region(ACCUMULATOR, a, t.shape, t.dtype, t.name))
    residuals = (residual_input(graph, graph.operators[k]) for k, _, _ in updates)
    for a in sorted(a for a in residuals if a >= 0):
        t = graph.tensors[a]
        regions.append(Region(RESIDUAL, a, t.shape, t.dtype, t.name))
    params = [p for _, p, _ in updates]
    if len(set(params)) != len(params):
        raise TTError("training model: a parameter is updated by two ops; its checkpoint "
                      "could not tell their random streams apart")
    for p in sorted(params):
        regions.append(Region(UPDATE_STATE, p, (2,), "uint32", graph.tensors[p].name))
    return regions


def blob_bytes(regions: list[Region]) -> int:
    return (HEADER_BYTES + ENTRY.size * len(regions)
            + sum(-(-r.nbytes // 4) * 4 for r in regions) + CRC_BYTES)


@dataclass
class Checkpoint:
    """A training state: one array per region of `layout(graph)` (an update state is
    uint32 [xorshift32 state, step counter as two's complement])."""
    model_id: int
    regions: list[Region]
    values: list[np.ndarray]
    sequence: int = 0

    def value(self, kind: int, id_: int) -> np.ndarray:
        for r, v in zip(self.regions, self.values):
            if r.kind == kind and r.id == id_:
                return v
        raise KeyError((kind, id_))

    def parameters(self) -> dict[int, np.ndarray]:
        return {r.id: v for r, v in zip(self.regions, self.values) if r.kind == PARAMETER}

    @property
    def step(self) -> int | None:
        """The update ops' step counter (training Invokes run), when they agree."""
        steps = {int(np.int32(v.view(np.int32)[1])) for r, v in zip(self.regions, self.values)
                 if r.kind == UPDATE_STATE}
        return steps.pop() if len(steps) == 1 else None


def to_blob(ckpt: Checkpoint) -> bytes:
    """The checkpoint as tt_checkpoint_save writes it into a slot."""
    table = b"".join(ENTRY.pack(r.kind, r.id, r.nbytes) for r in ckpt.regions)
    data = b""
    for r, v in zip(ckpt.regions, ckpt.values):
        raw = np.ascontiguousarray(v, np.dtype(r.dtype).newbyteorder("<")).tobytes()
        if len(raw) != r.nbytes:
            raise TTError(f"{r.describe()}: {len(raw)} bytes, the model needs {r.nbytes}")
        data += raw + bytes(-len(raw) % 4)
    body = HEADER.pack(MAGIC, VERSION, HEADER_BYTES, ckpt.sequence & 0xFFFFFFFF,
                       HEADER_BYTES + len(table) + len(data) + CRC_BYTES, ckpt.model_id,
                       len(ckpt.regions), 0) + table + data
    return body + struct.pack("<I", zlib.crc32(body))


def from_blob(data: bytes, graph: Graph, model: bytes, what: str = "checkpoint") -> Checkpoint:
    """Parses one slot's bytes (trailing bytes past the blob, erased flash say, are
    ignored) and checks it against the training model; every problem is one TTError."""
    if len(data) < HEADER_BYTES:
        raise TTError(f"{what}: truncated ({len(data)} bytes, a checkpoint header is "
                      f"{HEADER_BYTES})")
    magic, version, header, seq, total, mid, count, _ = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise TTError(f"{what}: not a tflite-train checkpoint (no 'TTCK' magic)")
    if version != VERSION or header != HEADER_BYTES:
        raise TTError(f"{what}: checkpoint format version {version} is not supported "
                      f"(this tflite-train reads version {VERSION})")
    if total > len(data):
        raise TTError(f"{what}: truncated (the checkpoint says {total} bytes, the file has "
                      f"{len(data)})")
    if total < HEADER_BYTES + ENTRY.size * count + CRC_BYTES:
        raise TTError(f"{what}: corrupt checkpoint header ({count} regions in {total} bytes)")
    (crc,) = struct.unpack_from("<I", data, total - CRC_BYTES)
    if zlib.crc32(data[:total - CRC_BYTES]) != crc:
        raise TTError(f"{what}: corrupt checkpoint (CRC-32 mismatch)")
    want = model_id(model)
    if mid != want:
        raise TTError(f"{what}: a checkpoint of another training model (model id "
                      f"{mid:#018x}, this model's is {want:#018x})")
    regions = layout(graph)
    table = [ENTRY.unpack_from(data, HEADER_BYTES + ENTRY.size * i) for i in range(count)]
    # a generated program's checkpoint holds split filters' trained channels only
    partial = {r.id: k for r, (kind, id_, nbytes) in zip(regions, table)
               for p, k in trained_channels(graph).items()
               if r.kind == kind == PARAMETER and r.id == id_ == p and nbytes != r.nbytes}
    stored = layout(graph, partial)
    if table != [(r.kind, r.id, r.nbytes) for r in stored]:
        raise TTError(f"{what}: its region table does not match this training model's "
                      f"({count} regions, the model has {len(regions)})")
    init = {var: const for op in graph.operators if op.kind == "TT_INIT"
            for const, var in zip(op.inputs[0::2], op.inputs[1::2])}
    values, pos = [], HEADER_BYTES + ENTRY.size * count
    for r, s in zip(regions, stored):
        raw = data[pos:pos + s.nbytes]
        value = np.frombuffer(raw, np.dtype(s.dtype).newbyteorder("<")).astype(s.dtype) \
            .reshape(s.shape)
        if s.shape != r.shape:          # the frozen channels never change: the initial ones
            whole = graph.tensors[init[r.id]].data.astype(r.dtype).copy()
            whole[..., :s.shape[-1]] = value
            value = whole
        values.append(value)
        pos += -(-s.nbytes // 4) * 4
    return Checkpoint(mid, regions, values, seq)


# --- host executors ---------------------------------------------------------------------

def capture(executor, graph: Graph, mid: int, sequence: int = 0) -> Checkpoint:
    """The checkpoint of an executor (runtime: numpy and c engines, and tflm after its first
    Invoke)."""
    regions = layout(graph)
    op_of = {p: k for k, p, _ in update_ops(graph)}
    values = []
    for r in regions:
        if r.kind == UPDATE_STATE:
            rng, step = executor.update_state(op_of[r.id])
            values.append(np.array([rng, step & 0xFFFFFFFF], np.uint32))
        else:
            values.append(executor.variables[r.id].copy())
    return Checkpoint(mid, regions, values, sequence)


def restore(executor, graph: Graph, ckpt: Checkpoint) -> None:
    """Puts a checkpoint into a host executor, as tt_checkpoint_restore does on the device
    after the first Invoke: TT_INIT counts as done, so it will not overwrite the values."""
    op_of = {p: k for k, p, _ in update_ops(graph)}
    for r, v in zip(ckpt.regions, ckpt.values):
        if r.kind == UPDATE_STATE:
            executor.set_update_state(op_of[r.id], int(v[0]), int(np.uint32(v[1]).view(np.int32)))
        else:
            executor.set_variable(r.id, v)
    executor.mark_initialised()


def update_state_values(graph: Graph, executor) -> dict[str, list[int]]:
    """{parameter name: [xorshift32 state, step]} of every update op, for the state file."""
    return {graph.tensors[p].name: list(executor.update_state(k))
            for k, p, _ in update_ops(graph)}
