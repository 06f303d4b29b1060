"""The checkpoint C API (tt_checkpoint.h) through ctypes on a flash simulated in Python, and
seeded training runs that can be split anywhere: shared by test_checkpoint.py, test_export.py
and the TFLM example's driver (test_tflm_example.py)."""
from __future__ import annotations

import ctypes as C

import numpy as np

from tflite_train import checkpoint
from tflite_train.runtime import c_kernels

OK, EMPTY, OTHER_MODEL, FLASH_ERROR, VERIFY_ERROR, BAD_ARGUMENT = range(6)


class Region(C.Structure):
    _fields_ = [("kind", C.c_uint32), ("id", C.c_int32), ("data", C.c_void_p),
                ("bytes", C.c_uint32)]


ERASE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.c_uint32)
TRANSFER = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.POINTER(C.c_uint8), C.c_uint32)


class FlashStruct(C.Structure):
    _fields_ = [("erase", ERASE), ("program", TRANSFER), ("read", TRANSFER),
                ("ctx", C.c_void_p), ("slot_offset", C.c_uint32 * 2),
                ("slot_bytes", C.c_uint32), ("page_bytes", C.c_uint32),
                ("page", C.POINTER(C.c_uint8))]


def library():
    lib = c_kernels.library()
    lib.tt_crc32.argtypes = [C.c_uint32, C.c_void_p, C.c_uint32]
    for name in ("tt_checkpoint_bytes", "tt_crc32"):
        getattr(lib, name).restype = C.c_uint32
    return lib


class Flash:
    """Two slots of NOR-like flash in a bytearray: erase to 0xFF, programming clears bits.
    `fail` names a callback that returns an error."""

    def __init__(self, slot_bytes: int, page_bytes: int = 256, gap: int = 0):
        self.memory = bytearray(b"\xff" * (2 * slot_bytes + gap))
        self.fail = None
        self.calls = []
        self._page = (C.c_uint8 * page_bytes)()
        self._callbacks = (ERASE(self._erase), TRANSFER(self._program), TRANSFER(self._read))
        self.struct = FlashStruct(*self._callbacks, None, (C.c_uint32 * 2)(0, slot_bytes + gap),
                                  slot_bytes, page_bytes, self._page)

    @property
    def image(self) -> bytes:
        return bytes(self.memory)

    @image.setter
    def image(self, data: bytes) -> None:
        assert len(data) == len(self.memory)
        self.memory[:] = data

    def slot(self, s: int) -> bytes:
        start = self.struct.slot_offset[s]
        return bytes(self.memory[start:start + self.struct.slot_bytes])

    def _erase(self, ctx, offset, n):
        self.calls.append(("erase", offset, n))
        if self.fail == "erase":
            return -1
        self.memory[offset:offset + n] = b"\xff" * n
        return 0

    def _program(self, ctx, offset, data, n):
        self.calls.append(("program", offset, n))
        if self.fail == "program":
            return -1
        new = np.frombuffer(self.memory, np.uint8, n, offset) & np.ctypeslib.as_array(data, (n,))
        self.memory[offset:offset + n] = new.tobytes()
        return 0

    def _read(self, ctx, offset, data, n):
        if self.fail == "read":
            return -1
        C.memmove(data, bytes(self.memory[offset:offset + n]), n)
        return 0


class Regions:
    """A checkpoint's values in C-owned memory, as a region table for the C API."""

    def __init__(self, ckpt: checkpoint.Checkpoint):
        self.regions = ckpt.regions
        self.arrays = [np.ascontiguousarray(v).copy() for v in ckpt.values]
        self.table = (Region * len(self.arrays))(*[
            Region(r.kind, r.id, a.ctypes.data, a.nbytes) for r, a in zip(self.regions, self.arrays)])

    def values(self) -> list[np.ndarray]:
        return [a.copy() for a in self.arrays]

    def set(self, ckpt: checkpoint.Checkpoint) -> None:
        for a, v in zip(self.arrays, ckpt.values):
            a[...] = v


def save(flash: Flash, mid: int, regions: Regions) -> tuple[int, int]:
    seq = C.c_uint32()
    status = library().tt_checkpoint_save(C.byref(flash.struct), C.c_uint64(mid), regions.table,
                                          len(regions.arrays), C.byref(seq))
    return status, seq.value


def restore(flash: Flash, mid: int, regions: Regions) -> tuple[int, int]:
    seq = C.c_uint32()
    status = library().tt_checkpoint_restore(C.byref(flash.struct), C.c_uint64(mid),
                                             regions.table, len(regions.arrays), C.byref(seq))
    return status, seq.value


def slot_for(ckpt: checkpoint.Checkpoint, page: int = 256) -> int:
    return -(-checkpoint.blob_bytes(ckpt.regions) // page) * page


# --- training states of real models ---------------------------------------------------------

def sample(graph, seed: int, i: int) -> tuple[np.ndarray, int]:
    """Training sample i of a seeded run (random int8, labels cycling over the classes):
    the same whatever step a run is split at."""
    t = graph.tensors[graph.inputs[0]]
    x = np.random.default_rng([seed, i]).integers(-128, 128, t.shape).astype(np.int8)
    return x, i % graph.tensors[graph.outputs[0]].size


def train_steps(graph, executor, steps: int, seed: int, start: int = 0) -> list[float]:
    """Steps start .. start + steps - 1 of a seeded run; the losses."""
    losses = []
    for i in range(start, start + steps):
        x, label = sample(graph, seed, i)
        values = executor.invoke([x, np.array([label], np.int32)])
        losses.append(float(values[graph.outputs[-1]][0]))
    return losses


