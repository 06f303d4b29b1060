"""A compiler cache for arm-none-eabi-gcc, for the test session only (tests/conftest.py puts a
shim that runs this first on PATH).

Why: most rig tests compile the same ~30 kernel sources for the board again (every generated
program's `make rig`, every test program linked with the kernels), and that compiling was
most of their time. Identical inputs give identical objects, so the test session compiles
each (source, flags) once and reuses the object.

What counts as identical is what ccache's preprocessor mode uses: the real compiler, every
argument but the output's name, and the source after preprocessing (so any header it
includes, any -D, any -I that finds another header is part of the key). Only successful
compiles are stored, with the warnings they printed, which are printed again on a reuse; a
failing compile always runs, so a test that breaks a source still sees the error.

Handled: `-c` of one C file, and a compile-and-link of several C files (each C file is
compiled as by `-c` with the same flags, then the objects are linked with the original
arguments, which is what the gcc driver does itself). Anything else (preprocessing,
assembly listings, dependency files, stack-usage files, other languages, no C input) runs
the real compiler unchanged.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REAL = os.environ["TT_ARM_GCC_REAL"]
CACHE = Path(os.environ["TT_ARM_GCC_CACHE"])

# options whose value is the next argument
TAKES_VALUE = {"-o", "-I", "-D", "-U", "-T", "-include", "-imacros", "-isystem", "-iquote",
               "-idirafter", "-L", "-l", "-Xlinker", "-Xassembler", "-Xpreprocessor",
               "--param", "-MF", "-MT", "-MQ", "-x", "-aux-info"}
# options that write files besides the object, or change what the output is: not cached
UNCACHED = ("-E", "-S", "-M", "-fstack-usage", "-save-temps", "-fdump", "-Wa,-a", "-x",
            "-fcallgraph-info", "-aux-info", "--coverage", "-fprofile", "-ftest-coverage",
            "-flto", "-v", "-###", "--version", "-print", "-dump")
# options that only the link step reads
LINK_ONLY_VALUE = {"-T", "-L", "-l", "-Xlinker"}
LINK_ONLY_PREFIX = ("-Wl,", "-T", "-L", "-l")
LINK_ONLY = {"-nostartfiles", "-nostdlib", "-nodefaultlibs", "-static", "-shared", "-r"}


def parse(args: list[str]) -> tuple[list[tuple[str, ...]], list[int], int | None]:
    """The arguments grouped (an option with its value as one group), the indexes of the
    groups that are C sources, and the index of the `-o` group."""
    groups, sources, out = [], [], None
    i = 0
    while i < len(args):
        a = args[i]
        if a in TAKES_VALUE and i + 1 < len(args):
            if a == "-o":
                out = len(groups)
            groups.append((a, args[i + 1]))
            i += 2
            continue
        if not a.startswith("-") and a.endswith(".c"):
            sources.append(len(groups))
        groups.append((a,))
        i += 1
    return groups, sources, out


# options that only steer the preprocessor (newlib-nano's specs add an include folder, and
# link options): the preprocessed text holds their effect, so the key leaves them out and
# callers that order them differently share objects
PREPROCESSOR_VALUE = {"-I", "-D", "-U", "-include", "-imacros", "-isystem", "-iquote",
                      "-idirafter"}
PREPROCESSOR_PREFIX = ("-I", "-D", "-U", "--specs=")


def key(compile_args: list[str], source: str) -> str | None:
    """The cache key of compiling `source` with `compile_args` (no -o), or None when the
    preprocessor fails (the real compile then reports why)."""
    pre = subprocess.run([REAL, *compile_args, "-E", source, "-o", "-"], capture_output=True)
    if pre.returncode != 0:
        return None
    groups, _, _ = parse(compile_args)
    codegen = [a for g in groups
               if not (g[0] in PREPROCESSOR_VALUE or g[0].startswith(PREPROCESSOR_PREFIX))
               for a in g]
    st = os.stat(REAL)
    h = hashlib.sha256()
    for part in (REAL, str(st.st_size), str(st.st_mtime_ns), *codegen, source):
        h.update(part.encode() + b"\0")
    h.update(pre.stdout)
    return h.hexdigest()


def note(what: str, source: str, args: list[str]) -> None:
    """One line per compile in the cache's log (hit or miss, the source), to see what the
    cache saves; one short append is atomic, so the workers can share the file."""
    with open(CACHE / "log", "a") as f:
        f.write(f"{what} {source} {' '.join(args)}\n")


def compile_one(compile_args: list[str], source: str, obj: str) -> int:
    """`gcc compile_args -c source -o obj`, from the cache when it holds the same compile."""
    k = key(compile_args, source)
    stored, warnings = CACHE / f"{k}.o", CACHE / f"{k}.err"
    if k is not None and stored.exists() and warnings.exists():
        note("hit", source, compile_args)
        sys.stderr.buffer.write(warnings.read_bytes())
        with open(stored, "rb") as src, open(obj, "wb") as dst:
            dst.write(src.read())
        return 0
    note("miss", source, compile_args)
    res = subprocess.run([REAL, *compile_args, "-c", source, "-o", obj], stderr=subprocess.PIPE)
    sys.stderr.buffer.write(res.stderr)
    if res.returncode == 0 and k is not None:
        # written under a temporary name and renamed: another worker may read it at once
        for path, data in ((warnings, res.stderr), (stored, Path(obj).read_bytes())):
            fd, tmp = tempfile.mkstemp(dir=CACHE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
    return res.returncode


def main(args: list[str]) -> int:
    groups, sources, out = parse(args)
    flat = [a for g in groups for a in g]
    if not sources or any(a.startswith(u) for a in flat for u in UNCACHED):
        return subprocess.run([REAL, *args]).returncode
    if "-c" in flat:
        if len(sources) != 1:
            return subprocess.run([REAL, *args]).returncode
        src = groups[sources[0]][0]
        obj = groups[out][1] if out is not None else Path(src).with_suffix(".o").name
        rest = [a for i, g in enumerate(groups) if i not in (sources[0], out) and g != ("-c",)
                for a in g]
        return compile_one(rest, src, obj)
    # compile and link: every C file to an object, then the link with the objects instead
    compile_args = [a for i, g in enumerate(groups)
                    if i != out and not (i in sources or g[0] in LINK_ONLY_VALUE
                                         or g[0].startswith(LINK_ONLY_PREFIX)
                                         or g[0] in LINK_ONLY
                                         or not g[0].startswith("-"))
                    for a in g]
    with tempfile.TemporaryDirectory(prefix="tt-arm-gcc-") as tmp:
        link = list(groups)
        for n, i in enumerate(sources):
            src = groups[i][0]
            obj = os.path.join(tmp, f"{n}-{Path(src).stem}.o")
            rc = compile_one(compile_args, src, obj)
            if rc != 0:
                return rc
            link[i] = (obj,)
        return subprocess.run([REAL, *(a for g in link for a in g)]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
