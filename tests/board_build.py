"""The kernels compiled for the rig once per test session, not once per program.

Each rig test (test_cortex_m7*, test_checkpoint's power cuts) links a program of recorded
calls with the kernels; the kernels' objects depend only on their sources, headers and
flags, so every program built with the same flags links the same objects. `objects` compiles
each source once per session and key, each object by itself, exactly as one gcc command
with many sources does (no LTO: gcc compiles every file of a command alone), so the programs
are the same bytes as before.

The objects live in the session's temporary folder, which the xdist workers share (conftest
sets `ROOT`): never in the source tree, never reused by another session. One folder per key:
the sha256 of the compiler's version, the flags, the specs files they name and the bytes of
every source and of every header beside them or in a -I folder (a test that edits a kernel
gets a key of its own). An exclusive lock file makes a second worker wait for the first
one's build.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

# Set by conftest (the session's temporary folder, shared by its xdist workers); a caller
# outside pytest gets a temporary folder of its own.
ROOT: Path | None = None
GCC = "arm-none-eabi-gcc"


@lru_cache(maxsize=None)
def _version(compiler: str) -> str:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True,
                          check=True).stdout


def _root() -> Path:
    """ROOT, or (a benchmark: mcu_forward.py, ...) a temporary folder removed at exit."""
    global ROOT
    if ROOT is None:
        ROOT = Path(tempfile.mkdtemp(prefix="tt-board-"))
        atexit.register(shutil.rmtree, ROOT, True)
    return ROOT


def _key(sources: tuple[Path, ...], flags: tuple[str, ...]) -> str:
    h = hashlib.sha256(_version(GCC).encode())
    h.update("\0".join(flags).encode())
    # nano.specs changes the include path (newlib-nano's newlib.h) as well as the link
    for spec in (f.split("=", 1)[1] for f in flags if f.startswith("--specs=")):
        path = subprocess.run([GCC, f"-print-file-name={spec}"], capture_output=True,
                              text=True, check=True).stdout.strip()
        h.update(Path(path).read_bytes() if os.path.isabs(path) else path.encode())
    # every header any of them could include: the kernels' include/ and src/ folders (and
    # any other folder a source sits in), whole
    folders = {s.parent for s in sources}
    folders |= {Path(f[2:]) if f.startswith("-I") and len(f) > 2 else None for f in flags}
    folders |= {Path(b) for a, b in zip(flags, flags[1:]) if a == "-I"}
    headers = sorted(p for d in folders if d is not None for p in Path(d).glob("*.h"))
    for path in (*sources, *headers):
        h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def objects(sources, flags) -> list[Path]:
    """`sources` compiled with `flags` (`gcc FLAGS -c SOURCE`), one object each, in order.
    `flags` are the whole command's (link options included: gcc ignores them with -c, and
    the specs files also change the include path)."""
    sources, flags = tuple(Path(s) for s in sources), tuple(flags)
    folder = _root() / "board-objects" / _key(sources, flags)
    folder.mkdir(parents=True, exist_ok=True)
    # distinct names for sources of the same name in different folders
    objs = [folder / f"{k:02d}-{s.stem}.o" for k, s in enumerate(sources)]
    done = folder / "done"
    if done.exists():
        return objs
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            for src, obj in zip(sources, objs):
                partial = obj.with_suffix(".part")
                subprocess.run([GCC, *flags, "-c", str(src), "-o", str(partial)], check=True)
                partial.replace(obj)
            done.touch()
    return objs


# --- the generated programs' kernels (tflite_train/codegen/rig.py's `make rig`) -------------
#
# Every generated folder's `make rig` compiles all of micro_kernels/src for the board again;
# with the same flags those objects are the same bytes for every program. `shared_rig_make`
# wraps rig._make: it asks make what it would run (a dry run of the very same call), compiles
# the kernels' lines once per session and key with `objects`, and passes them to the
# folder's Makefile as RIG_KERNEL_OBJS (in the same order, so the link is the same), which
# then compiles only tt_model.c, the harness and the start-up code. Anything it does not
# recognise falls back to the folder's own build.

import re
import shlex
from contextlib import contextmanager

# the options whose argument (joined or the next one) is a file or folder
_PATH_FLAGS = ("-iquote", "-isystem", "-idirafter", "-include", "-imacros", "-I")
_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


@contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _included_names(kernel_dir: Path) -> set[str]:
    names = set()
    for path in (*kernel_dir.glob("src/*.[ch]"), *kernel_dir.glob("include/*.h")):
        names |= set(_INCLUDE.findall(path.read_text(errors="replace")))
    return names


def rig_kernel_lines(dry_run: str, folder: Path, kernel_dir: Path):
    """(sources, flags) of the kernels' compile lines in `make -n rig`'s output, in make's
    order, or None when the lines are not the Makefile's `$(ARM_CC) FLAGS -c -o OBJ SRC`
    with one set of flags. `-I.` (the generated folder, searched from make's folder) is
    dropped when no header there has a name the kernels include: then it finds nothing."""
    src_dir = str(kernel_dir / "src") + "/"
    sources, flags = [], None
    for line in dry_run.splitlines():
        argv = shlex.split(line) if src_dir in line else []
        if not argv or not argv[-1].startswith(src_dir) or not argv[-1].endswith(".c"):
            continue
        if argv[0] != GCC or argv[-4:-2] != ["-c", "-o"]:
            return None
        if flags is not None and argv[1:-4] != flags:
            return None
        flags = argv[1:-4]
        sources.append(Path(argv[-1]))
    if not sources or sorted(map(str, sources)) != sorted(
            str(p) for p in (kernel_dir / "src").glob("*.c")):
        return None
    if "-I." in flags:
        if {p.name for p in folder.glob("*.h")} & _included_names(kernel_dir):
            return None
        flags = [f for f in flags if f != "-I."]
    # objects() compiles from another folder than make: any other relative path would name
    # other files there (and the key would hash those)
    for flag, after in zip(flags, [*flags[1:], ""]):
        prefix = next((p for p in _PATH_FLAGS if flag.startswith(p)), None)
        if prefix is not None and not os.path.isabs(flag[len(prefix):] or after):
            return None
    return sources, flags


def shared_rig_make(original, kernel_dir: Path):
    """rig._make, with the kernels' objects compiled once per session and flags."""
    def _make(folder, *args, **kwargs):
        folder = Path(folder)
        with _env(MAKEFLAGS="n"):
            dry = original(folder, *args, **kwargs)
        found = rig_kernel_lines(dry.stdout, folder, kernel_dir) if dry.returncode == 0 \
            else None
        if found is None:
            return original(folder, *args, **kwargs)
        try:
            objs = objects(*found)
        except subprocess.CalledProcessError:
            return original(folder, *args, **kwargs)    # the folder's build says what failed
        if any(any(c.isspace() for c in str(o)) for o in objs):
            return original(folder, *args, **kwargs)    # make splits the list at spaces
        with _env(RIG_KERNEL_OBJS=" ".join(map(str, objs))):
            return original(folder, *args, **kwargs)
    _make.shared_kernels = True
    _make.__wrapped__ = original
    return _make


# --- any other build the tests repeat ------------------------------------------------------

def built_once(kind: str, compilers, flags, inputs, build) -> Path:
    """`build(folder)` run once per session and key in a folder of its own, which it
    returns: the key is the compilers' versions, the flags and the bytes of every file in
    `inputs` (files, or folders taken whole). A second caller (another xdist worker) waits
    for the first one's build; a build that fails leaves nothing behind."""
    h = hashlib.sha256(kind.encode())
    for c in compilers:
        h.update(_version(c).encode())
    h.update("\0".join(map(str, flags)).encode())
    for item in map(Path, inputs):
        for path in sorted(item.rglob("*")) if item.is_dir() else [item]:
            if path.is_file():
                h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    folder = _root() / kind / h.hexdigest()[:20]
    done = folder / "done"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            for old in folder.iterdir():
                if old.name != ".lock":
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            build(folder)
            done.touch()
    return folder
