"""The search's cache file: one JSON document per model (its sha256 inside), rewritten
atomically after every finished run, so a search killed at any moment keeps every run that
had finished. It holds
  memory:   scheme key -> its planned cost (search.budget), for every target asked;
  analyses: analysis id (settings + data digest) -> {settings, runs: key -> result}.
A search with another budget reuses all of it; one with other settings (steps, seed, data)
starts a new analysis beside the old ones. The memory table holds only the plans of the
tflite-train that made them (`planner`: a digest of its sources): `plan`'s totals change
with its code (the Cortex-M7 totals, augment's in-place pass took the person detector's
minimum from 86.6 to 44.2 KB), and a search must budget what `plan` prints today.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from ..errors import TTError
from ..tflite_io import write_atomic

FORMAT = "tflite-train search cache"
VERSION = 1
_PACKAGE = Path(__file__).resolve().parent.parent


@functools.cache
def planner_digest() -> str:
    """The sources of this tflite-train (its modules and schema files), hashed."""
    h = hashlib.sha256()
    for f in sorted(_PACKAGE.rglob("*")):
        if f.suffix in (".py", ".json") and f.is_file():
            h.update(str(f.relative_to(_PACKAGE)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def default_path(model: bytes) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "tflite-train" / "search" / f"{hashlib.sha256(model).hexdigest()[:16]}.json"


class Cache:
    def __init__(self, path: Path, model: bytes):
        self.path = Path(path)
        self.model_sha = hashlib.sha256(model).hexdigest()
        self.doc = {"format": FORMAT, "version": VERSION, "model_sha256": self.model_sha,
                    "planner": planner_digest(), "memory": {}, "analyses": {}}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TTError(f"--cache {self.path}: not a readable search cache ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise TTError(f"--cache {self.path}: not a tflite-train search cache")
        if doc.get("version") != VERSION:
            raise TTError(f"--cache {self.path}: cache version {doc.get('version')} is not "
                          f"supported (this tflite-train writes version {VERSION})")
        if doc.get("model_sha256") != self.model_sha:
            raise TTError(f"--cache {self.path}: the cache of another model; give another "
                          "--cache file")
        if not isinstance(doc.get("memory"), dict) or not isinstance(doc.get("analyses"), dict):
            raise TTError(f"--cache {self.path}: not a tflite-train search cache")
        if doc.get("planner") != planner_digest():        # another tflite-train's plans
            doc["planner"], doc["memory"] = planner_digest(), {}
        self.doc = doc

    @property
    def memory(self) -> dict:
        return self.doc["memory"]

    def runs(self, analysis: str, settings: dict) -> dict:
        entry = self.doc["analyses"].setdefault(analysis, {"settings": settings, "runs": {}})
        return entry["runs"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.doc, separators=(",", ":")).encode())
