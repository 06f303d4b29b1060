"""Work the tests repeat with the same inputs, done once per test session: the training
models `augment` writes (on disk, shared by the xdist workers) and the code generator's plans
(in each worker's memory; a Program cannot be pickled). MCUNet's training model takes about
10 s to augment and its plan 12 s or more, and several tests of several files ask for the
same ones.

Each entry is keyed by every input of the call (the source model's bytes, the scheme, the
options; the graph's serialized bytes and the model bytes for a plan) and lives in the
session's temporary folder or memory, never in the source tree, never in another session.
The code computing them is the session's own, unless a test has replaced part of it:
`unpatched()` compares every tflite_train module's attributes (and the entries its
module-level dicts and its classes had) with what they were when the session started, and a
call made while anything differs (a test's monkeypatch of a planner function, of a method,
an op's registry entry) is computed afresh and not stored. (A module attribute a test
mutates in place, not through setattr or setitem, would not be seen.)
"""
from __future__ import annotations

import copy
import fcntl
import hashlib
import importlib
import pkgutil
import shutil
import sys
import time
from pathlib import Path

import board_build

_snapshot: dict[str, dict[str, object]] | None = None
stats = {"model hits": 0, "model misses": 0, "plan hits": 0, "plan misses": 0, "patched": 0,
         "plan cpu s": 0.0, "model cpu s": 0.0}


def _state(module) -> dict[str, object]:
    """Each attribute's identity and, of a dict or of a class the module defines (a test may
    patch a method: monkeypatch.setattr(Trainer, "step", ...)), its entries' identities."""
    out = {}
    for name, value in list(vars(module).items()):
        entries = None
        if isinstance(value, dict) and name != "__builtins__":
            entries = value
        elif isinstance(value, type) and value.__module__ == module.__name__:
            entries = vars(value)
        out[name] = (id(value), None if entries is None else
                     {k: id(v) for k, v in list(entries.items())})
    return out


def _same(now: dict, then: dict) -> bool:
    """Every attribute the module had is the same object, and every entry its dicts had
    (entries added since are the module's own caches filling: c_kernels._PREPARED)."""
    for name, (ident, entries) in then.items():
        got = now.get(name)
        if got is None or got[0] != ident:
            return False
        if entries is not None and any(got[1].get(k, ()) != v for k, v in entries.items()):
            return False
    return True


def take_snapshot() -> None:
    """Every tflite_train module imported and its attributes recorded (at session start,
    before any test runs)."""
    global _snapshot
    import tflite_train
    for info in pkgutil.walk_packages(tflite_train.__path__, "tflite_train."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    _snapshot = {name: _state(m) for name, m in list(sys.modules.items())
                 if name == "tflite_train" or name.startswith("tflite_train.")}


def unpatched() -> bool:
    if _snapshot is None:
        return False
    for name, state in _snapshot.items():
        module = sys.modules.get(name)
        if module is None or not _same(_state(module), state):
            stats["patched"] += 1
            return False
    return True


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def model_file(out: Path, key: tuple, make) -> Path:
    """`make(path)` writes a model to `path`; the file it wrote for `key` earlier in the
    session is copied to `out` instead (when nothing is patched)."""
    if not unpatched() or board_build.ROOT is None:
        make(out)
        return out
    folder = board_build.ROOT / "models" / _digest(*key)
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / "model.tflite"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached.exists():
            stats["model hits"] += 1
        else:
            stats["model misses"] += 1
            t = time.process_time()
            make(out)
            stats["model cpu s"] += time.process_time() - t
            partial = folder / "model.part"
            shutil.copyfile(out, partial)
            partial.replace(cached)
            return out
    shutil.copyfile(cached, out)
    return out


_plans: dict[str, object] = {}


def cached_build(build):
    """codegen.program.build, with its Programs kept in memory by their inputs; a copy of
    the kept one each time (callers may change the Program they get)."""
    from tflite_train import tflite_io

    def _build(graph, model, arena_limit=0, input_rows=False):
        if not unpatched():
            return build(graph, model, arena_limit, input_rows)
        before = tflite_io.serialize(graph)
        key = _digest(before, bytes(model), int(arena_limit), bool(input_rows))
        if key in _plans:
            stats["plan hits"] += 1
            return copy.deepcopy(_plans[key])
        stats["plan misses"] += 1
        t = time.process_time()
        program = build(graph, model, arena_limit, input_rows)
        stats["plan cpu s"] += time.process_time() - t
        # kept only when the plan changed nothing of the caller's graph (a copy from the
        # cache would not change it either)
        if tflite_io.serialize(graph) == before:
            _plans[key] = copy.deepcopy(program)
        return program
    _build.__wrapped__ = build
    return _build
