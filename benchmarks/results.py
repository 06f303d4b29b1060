"""The tables of benchmarks/RESULTS.md come from the JSON the benchmark scripts write.

A script that publishes tables defines `TABLES = {name: (json_files, render)}`: `render`
takes the loaded JSON of each file (in benchmarks/) and returns the markdown between
`<!-- table:NAME -->` and `<!-- /table:NAME -->` in RESULTS.md. `publish(...)` writes a
script's JSON and re-renders its tables in place; `stale()` re-renders every table from the
JSON on disk and names those that differ from RESULTS.md (tests/test_results.py), so that
no figure in a table is typed by hand. Everything outside the markers is prose and stays
as it is.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
# the scripts whose TABLES are in RESULTS.md; `make bench` runs them (benchmarks/run.py)
SCRIPTS = ["forward_speed", "transfer", "paper_memory", "mcu_kernels", "checkpoint",
           "mutation", "codegen", "grad_memory", "tflm_memory", "train_speed", "mcu_step",
           "default_schedule", "person_ceiling", "fuzz", "mcu_forward", "search", "tflm_rig",
           "mcu_grad_dsp", "paper_accuracy", "codegen_sram", "probe_inputs",
           "default_runs", "weight_growth"]
MARKER = re.compile(r"<!-- table:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /table:(?P=name) -->",
                    re.S)


def mean_se(values) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); None
    for one value. Every benchmark's accuracy table reports these."""
    vals = list(values)
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1) / len(vals))


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """a - b over the seeds both have (a seed's variants share head, samples and order)."""
    return [a[s] - b[s] for s in sorted(a) if s in b]


def paired_cell(a: dict[int, float], b: dict[int, float], seeds: bool = False) -> str:
    """A table's cell for a - b paired by seed: "-" for a row against itself or no common
    seed, else the mean +- its standard error (none for one seed) and n, with each seed's
    difference after n when `seeds`."""
    d = [] if a is b else paired(a, b)
    if not d:
        return "-"
    m, se = mean_se(d)
    each = ": " + " / ".join(f"{v:+.1f}" for v in d) if seeds else ""
    return f"{m:+.2f}" + ("" if se is None else f" +- {se:.2f}") + f" (n={len(d)}{each})"


def machine() -> dict:
    """Where and when: the date, the CPU and its cores, Python and numpy."""
    import datetime
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import numpy
        np_version = numpy.__version__
    except ImportError:
        np_version = None
    return {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np_version}


def write_json(path: Path, data: dict) -> None:
    """Atomically, with a trailing newline; adds where and when ("measured")."""
    path = Path(path)
    data = {**data, "measured": data.get("measured") or machine()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def save(path: Path, data: dict, json_name: str, tables: dict) -> None:
    """A benchmark's JSON written to `path`; when that is the results file itself
    (benchmarks/`json_name`), its `tables` re-rendered into RESULTS.md as well."""
    write_json(path, data)
    if Path(path).resolve() == (HERE / json_name).resolve():
        publish(tables)


def caption(data: list[dict]) -> str:
    """"Measured DATE on MACHINE" for the data that record it."""
    stamps = [d["measured"] for d in data if isinstance(d, dict) and d.get("measured")]
    if not stamps:
        return ""
    dates = " / ".join(dict.fromkeys(m["date"] for m in stamps))
    if len(stamps) < len(data):
        dates += " and earlier (a JSON written before dates were recorded)"
    m = stamps[-1]
    return (f"Measured {dates}: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"numpy {m['numpy']}.\n\n")


def tables() -> dict[str, tuple]:
    """name -> (json files, render) over every script in SCRIPTS."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    out = {}
    for script in SCRIPTS:
        for name, entry in importlib.import_module(script).TABLES.items():
            if name in out:
                raise ValueError(f"table {name!r} is defined twice")
            out[name] = entry
    return out


def render(name: str, *data) -> str:
    """The markdown of table `name`, from the given JSON data or else from its files."""
    files, fn = tables()[name]
    if not data:
        data = [json.loads((HERE / f).read_text()) for f in files]
    return caption(list(data)) + fn(*data).rstrip("\n") + "\n"


def publish(names, text: str | None = None) -> None:
    """Re-render the tables `names` into RESULTS.md from their JSON files (atomically)."""
    text = RESULTS.read_text() if text is None else text
    for name in names:
        block = f"<!-- table:{name} -->\n{render(name)}<!-- /table:{name} -->"
        text = MARKER.sub(lambda m, b=block: b if m["name"] == name else m[0], text)
        if not any(m["name"] == name for m in MARKER.finditer(text)):
            raise ValueError(f"RESULTS.md has no <!-- table:{name} --> markers")
    tmp = RESULTS.with_name(f".{RESULTS.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS)


def stale(text: str | None = None) -> list[str]:
    """Tables whose text in RESULTS.md (or `text`) is not what their JSON renders to, and
    tables that are defined but have no markers."""
    defined = tables()
    text = RESULTS.read_text() if text is None else text
    found = {m["name"]: m["body"] for m in MARKER.finditer(text)}
    out = [f"{name}: no markers in RESULTS.md" for name in defined if name not in found]
    for name, body in found.items():
        missing = [f for f in defined.get(name, ((), None))[0] if not (HERE / f).exists()]
        if name not in defined:
            out.append(f"{name}: no script defines it")
        elif missing:
            out.append(f"{name}: benchmarks/{missing[0]} is missing (benchmarks/run.py writes it)")
        elif body != render(name):
            out.append(f"{name}: RESULTS.md differs from {', '.join(defined[name][0])}")
    return out


def fmt_int(n) -> str:
    return f"{n:,}"


def kb(n) -> str:
    return f"{n / 1024:,.0f}"
