"""Mutation testing of the arithmetic: does the test suite notice a small deliberate bug?

    .venv/bin/python benchmarks/mutation.py [--modules fixedpoint,ops,training,c]
        [--sample N] [--seed S] [--jobs J] [--json benchmarks/mutation_results.json]
        [--tests-from DIR] [--before OLD.json]

Each mutant changes one thing in one source file of a module group (an operator, a
comparison, a constant, a rounding or precision function; see PY_* and C_* below), and the
group's fast tests run against it, stopping at the first failure, with a time limit of
three times the unmutated run plus 10 s (a mutant that hangs counts as killed). A mutant is
"killed" when a test fails, "survived" when all pass; a C mutant that does not compile
with the kernels' warnings-as-errors flags is "invalid" and not counted.

Python mutants come from our own small AST mutator (`ast.unparse` of the mutated module:
comments and layout are not needed in the scratch copy), C mutants from a token mutator
that works on whatever micro_kernels/src/*.c contains. Validation, error messages and
cost (MAC) functions are not mutated: the point is the arithmetic.

Everything runs in scratch copies of the checkout (one per job), never in the checkout.
--sample N draws a seeded sample of N mutants per group (0: all). --tests-from DIR runs
another tests/ folder (e.g. an older one, for a before/after score); --before OLD.json puts
that run's scores beside this one's. The JSON is what benchmarks/RESULTS.md's mutation
tables are rendered from.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

OPS = ["add", "conv", "fully_connected", "mean", "pad", "pool", "quantize", "requant",
       "shape", "softmax", "window"]
# group -> (sources, tests); tests fastest first, since a run stops at the first failure.
# Slow tests (200-step runs, the sanitizer and cross builds) are left out: they are not the
# ones that see arithmetic, and they would make a mutant cost minutes. The C group runs the
# forward kernels' tests (test_c_forward: every kernel against numpy) and leaves out the
# TFLM-engine tests: they rebuild the C++ glue per mutant and compare C with C
# (their numpy comparison is the one test_micro_kernels makes on every kernel).
# The kernels only generated programs call (streamed, row-by-row, in-place and split), each
# compared with the plain kernels or numpy; not the whole-program tests, which compile and
# run a generated program per case.
CODEGEN_KERNEL_TESTS = [f"tests/test_codegen.py::test_{name}" for name in (
    "split_input_gradients_equal_whole_filter_ones",
    "streamed_pointwise_depthwise_equals_the_two_layers",
    "row_by_row_convolution_over_its_own_input",
    "inplace_depthwise_input_gradient_equals_out_of_place")]
GROUPS = {
    "fixedpoint": (["tflite_train/fixedpoint.py"],
                   ["tests/test_fixedpoint.py", "tests/test_forward_exact.py"]),
    "ops": ([f"tflite_train/ops/{m}.py" for m in OPS],
            ["tests/test_forward_exact.py", "tests/test_training_graph.py",
             "tests/test_backward.py", "tests/test_cli.py::test_inspect_json_counts_params"]),
    "training": (["tflite_train/training_ops.py", "tflite_train/ops/training.py",
                  "tflite_train/ops/accumulate.py"],
                 ["tests/test_training_ops.py", "tests/test_training_graph.py",
                  "tests/test_micro_kernels.py", "tests/test_backward.py"]),
    "c": (["micro_kernels/src/*.c"],
          ["tests/test_training_ops.py", "tests/test_micro_kernels.py", "tests/test_c_forward.py",
           "tests/test_checkpoint.py", *CODEGEN_KERNEL_TESTS]),
}
DESELECT = ("not person_detect_trains and not asan and not builds_warning_free and not power_cut "
            "and not person_detect_gradients_match_tensorflow and not child_process "
            "and not wheel and not person_detector_200")
C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]


@dataclass
class Mutant:
    group: str
    path: str            # relative to the checkout
    line: int
    what: str            # "a + b -> a - b"-style description
    index: int           # which mutation site/variant in the file
    status: str = ""     # killed, survived, timeout, invalid
    seconds: float = 0.0


# -- Python ---------------------------------------------------------------------------------

PY_BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
             ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.LShift: ast.RShift,
             ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
             ast.BitXor: ast.BitOr, ast.Pow: ast.Mult, ast.MatMult: ast.Mult}
PY_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
              ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
              ast.In: ast.NotIn, ast.NotIn: ast.In}
PY_BOOL = {ast.And: ast.Or, ast.Or: ast.And}
# rounding, precision and clamping functions: name -> replacement
PY_CALLS = {"floor": "ceil", "ceil": "floor", "rint": "floor", "round_half_away": "rint",
            "maximum": "minimum", "minimum": "maximum", "max": "min", "min": "max",
            "float32": "float64", "float64": "float32", "trunc": "floor"}
SKIP_CALLS = {"require", "require_int8_io", "TTError", "ModelError", "UnsupportedOpError",
              "ValueError", "TypeError", "KeyError", "RuntimeError"}
SKIP_FUNCS = re.compile(r"^_?check|macs|^_?describe|__repr__")


def _sym(op) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|",
            ast.BitXor: "^", ast.Pow: "**", ast.MatMult: "@", ast.Lt: "<", ast.LtE: "<=",
            ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
            ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and",
            ast.Or: "or"}.get(type(op), type(op).__name__)


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _walk(node, skip=False):
    """(node, skipped) in a fixed depth-first order."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and SKIP_FUNCS.search(node.name):
        skip = True
    if isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr, ast.Import, ast.ImportFrom)):
        skip = True
    if isinstance(node, ast.Call) and _call_name(node) in SKIP_CALLS:
        skip = True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        skip = True                                            # docstrings
    yield node, skip
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, skip)


def _py_variants(node) -> list[tuple[str, callable]]:
    """(description, apply) pairs for one node; apply mutates it in place."""
    out = []

    def setter(attr, value):
        return lambda n: setattr(n, attr, value)

    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in PY_BINOPS:
        new = PY_BINOPS[type(node.op)]
        out.append((f"{_sym(node.op)} -> {_sym(new())}", setter("op", new())))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in PY_COMPARE:
        new = PY_COMPARE[type(node.ops[0])]
        out.append((f"{_sym(node.ops[0])} -> {_sym(new())}", setter("ops", [new()])))
    elif isinstance(node, ast.BoolOp):
        new = PY_BOOL[type(node.op)]
        out.append((f"{_sym(node.op)} -> {_sym(new())}", setter("op", new())))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
        out.append((f"drop unary {type(node.op).__name__}", setter("op", ast.UAdd())))
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        out.append((f"{node.value!r} -> {node.value + 1!r}", setter("value", node.value + 1)))
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        out.append((f"{node.value} -> {not node.value}", setter("value", not node.value)))
    elif isinstance(node, ast.Call):
        name = _call_name(node)
        if name in PY_CALLS:
            attr = "id" if isinstance(node.func, ast.Name) else "attr"
            new = PY_CALLS[name]
            if name == "round_half_away":            # a module function -> numpy's
                def apply(n):
                    n.func = ast.Attribute(ast.Name("np", ast.Load()), "rint", ast.Load())
            else:
                def apply(n, attr=attr, new=new):
                    setattr(n.func, attr, new)
            out.append((f"{name}() -> {new}()", apply))
        if name == "clip" and len(node.args) == 3:
            def apply(n):
                n.func, n.args = ast.Name("_mut_identity", ast.Load()), n.args[:1]
            out.append(("clip(x, lo, hi) -> x", apply))
        if name == "where" and len(node.args) == 3:
            def apply(n):
                n.args = [n.args[0], n.args[2], n.args[1]]
            out.append(("where(c, a, b) -> where(c, b, a)", apply))
    return out


def python_mutants(group: str, rel: str) -> list[Mutant]:
    tree = ast.parse((ROOT / rel).read_text())
    out = []
    for site, (node, skip) in enumerate(_walk(tree)):
        if skip:
            continue
        for k, (what, _) in enumerate(_py_variants(node)):
            out.append(Mutant(group, rel, getattr(node, "lineno", 0), what, site * 4 + k))
    return out


def python_source(rel: str, index: int, base: Path) -> str:
    tree = ast.parse((base / rel).read_text())
    site, k = divmod(index, 4)
    node = next(n for i, (n, _) in enumerate(_walk(tree)) if i == site)
    _py_variants(node)[k][1](node)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n\n\ndef _mut_identity(x):\n    return x\n"


# -- C --------------------------------------------------------------------------------------

C_TOKEN = re.compile(r"""
    (?P<skip>//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|^[ \t]*\#[^\n]*)
  | (?P<num>0[xX][0-9a-fA-F]+[uUlL]*|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[fFuUlL]*)
  | (?P<id>[A-Za-z_]\w*)
  | (?P<op><<=|>>=|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||\+=|-=|\*=|/=|->|[-+*/%<>&|^!~?:;,.(){}\[\]=])
""", re.S | re.M | re.X)
C_OPS = {"+": "-", "-": "+", "*": "/", "/": "*", "%": "/", "<<": ">>", ">>": "<<",
         "<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "&&": "||",
         "||": "&&", "&": "|", "|": "&", "^": "|", "+=": "-=", "-=": "+=", "*=": "/=",
         "/=": "*=", "++": "--", "--": "++"}
BINARY_ONLY = {"+", "-", "*", "&"}
C_TYPES = re.compile(r"^(const|void|char|short|int|long|float|double|unsigned|signed|"
                     r"static|struct|\w+_t|tt_\w+)$")


def _c_tokens(text: str):
    return [m for m in C_TOKEN.finditer(text) if m.lastgroup != "skip"]


def _c_sites(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, old, new) for every mutable token."""
    toks = _c_tokens(text)
    sites = []
    for i, m in enumerate(toks):
        tok, kind = m.group(), m.lastgroup
        prev = toks[i - 1] if i else None
        if kind == "op" and tok in C_OPS:
            if tok in BINARY_ONLY:
                binary = prev is not None and (prev.lastgroup == "num" or prev.group() in (")", "]")
                                               or (prev.lastgroup == "id"
                                                   and not C_TYPES.match(prev.group())))
                if not binary:
                    continue
            sites.append((m.start(), m.end(), tok, C_OPS[tok]))
        elif kind == "num":
            body = tok.rstrip("uUlL") if tok[:2] in ("0x", "0X") else tok.rstrip("fFuUlL")
            suffix = tok[len(body):]
            if body.lower().startswith("0x"):
                new = hex(int(body, 16) + 1)
            elif re.fullmatch(r"\d+", body):
                new = str(int(body) + 1)
            else:
                new = repr(float(body) + 1.0)
            sites.append((m.start(), m.end(), tok, new + suffix))
    return sites


def c_mutants(group: str, rel: str) -> list[Mutant]:
    text = (ROOT / rel).read_text()
    return [Mutant(group, rel, text.count("\n", 0, start) + 1, f"{old} -> {new}", k)
            for k, (start, _, old, new) in enumerate(_c_sites(text))]


def c_source(rel: str, index: int, base: Path) -> str:
    text = (base / rel).read_text()
    start, end, _, new = _c_sites(text)[index]
    return text[:start] + new + text[end:]


# -- running ----------------------------------------------------------------------------------

def scratch_copy(dest: Path, tests_from: Path | None) -> Path:
    """The tracked files of the checkout (tests/ possibly from elsewhere), the model zoo's
    cache, and ../shared beside it, as the tests expect."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    checkout = dest / "checkout"
    for f in files:
        if (ROOT / f).is_file():
            (checkout / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, checkout / f)
    if tests_from is not None:
        shutil.rmtree(checkout / "tests")
        shutil.copytree(tests_from, checkout / "tests",
                        ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / ".cache").exists():
        (checkout / ".cache").symlink_to(ROOT / ".cache")
    if (ROOT.parent / "shared").exists():
        (dest / "shared").symlink_to(ROOT.parent / "shared")
    return checkout


def run_tests(checkout: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("CI", None)
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                              "-k", DESELECT, *tests], cwd=checkout, env=env,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0
    # 1: a test failed; 2: collection failed (the mutant broke an import); < 0: the mutant
    # crashed the process (a C kernel out of bounds): each detects it
    status = "survived" if res.returncode == 0 else \
        "killed" if res.returncode in (1, 2) or res.returncode < 0 else \
        f"error {res.returncode}: {res.stdout[-300:]}"
    return status, time.perf_counter() - t0


def run_mutant(m: Mutant, checkout: Path, timeout: float) -> Mutant:
    target = checkout / m.path
    original = target.read_text()
    if m.path.endswith(".py"):
        target.write_text(python_source(m.path, m.index, checkout))
    else:
        target.write_text(c_source(m.path, m.index, checkout))
        ok = subprocess.run(["gcc", *C_FLAGS, "-fsyntax-only", "-I",
                             str(checkout / "micro_kernels" / "include"), str(target)],
                            capture_output=True).returncode == 0
        if not ok:
            target.write_text(original)
            m.status = "invalid"
            return m
    try:
        m.status, m.seconds = run_tests(checkout, GROUPS[m.group][1], timeout)
    finally:
        target.write_text(original)
        os.utime(target)                   # newer than the mutant's build: make rebuilds
    if m.status == "timeout":
        m.status = "killed"                # a hang is a failure; noted in `seconds`
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", default=",".join(GROUPS))
    ap.add_argument("--sample", type=int, default=30, help="mutants per group (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tests-from", type=Path)
    ap.add_argument("--before", type=Path, help="an earlier run's JSON, shown beside")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--list", action="store_true", help="only count the mutants")
    args = ap.parse_args()
    groups = args.modules.split(",")
    mutants, totals = [], {}
    for group in groups:
        pool = []
        for pattern in GROUPS[group][0]:
            for path in sorted(ROOT.glob(pattern)):
                rel = str(path.relative_to(ROOT))
                pool += python_mutants(group, rel) if rel.endswith(".py") else \
                    c_mutants(group, rel)
        totals[group] = len(pool)
        if args.sample and len(pool) > args.sample:
            pool = random.Random(f"{args.seed}:{group}").sample(pool, args.sample)
        mutants += pool
    if args.list:
        for group in groups:
            print(f"{group}: {totals[group]} mutants")
        return
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copies = [scratch_copy(Path(tmp) / f"job{j}", args.tests_from)
                  for j in range(args.jobs)]
        timeouts = {}
        for group in groups:                       # the unmutated run must pass
            status, seconds = run_tests(copies[0], GROUPS[group][1], 1800)
            if status != "survived":
                sys.exit(f"{group}: the tests fail without a mutant ({status})")
            timeouts[group] = 3 * seconds + 10
            print(f"{group}: tests pass unmutated in {seconds:.0f} s", flush=True)
        free = list(copies)
        done = 0

        def work(m):
            nonlocal done
            checkout = free.pop()
            try:
                return run_mutant(m, checkout, timeouts[m.group])
            finally:
                free.append(checkout)
                done += 1
                print(f"[{done}/{len(mutants)}] {m.status:8} {m.seconds:5.1f}s "
                      f"{m.path}:{m.line} {m.what}", flush=True)

        with ThreadPoolExecutor(args.jobs) as ex:
            results = list(ex.map(work, mutants))
    report(results, groups, totals, args)


def counts(ms: list) -> dict:
    n = {s: sum(m["status"] == s for m in ms) for s in ("killed", "survived", "invalid")}
    valid = n["killed"] + n["survived"]
    return {**n, "score": round(n["killed"] / valid, 4) if valid else None}


def report(results: list[Mutant], groups, totals, args) -> None:
    import results as results_md                   # benchmarks/results.py
    mutants = [asdict(m) for m in results]
    before = json.loads(args.before.read_text()) if args.before else None
    rows = []
    for group in groups:
        row = {"module": group, "sources": GROUPS[group][0], "tests": GROUPS[group][1],
               "mutants": totals[group],
               **counts([m for m in mutants if m["group"] == group])}
        if before is not None:
            row["before"] = next(r for r in before["rows"] if r["module"] == group)
        rows.append(row)
    data = {"args": {"sample": args.sample, "seed": args.seed,
                     "tests_from": str(args.tests_from) if args.tests_from else None,
                     "before": args.before.name if args.before else None},
            "rows": rows, "mutants": mutants}
    print(render_scores(data))
    print(render_survivors(data))
    if args.json:
        results_md.write_json(args.json, data)
        if args.json.resolve() == (Path(__file__).parent / JSON).resolve():
            results_md.publish(TABLES)


def _score(r: dict) -> str:
    return "-" if r["score"] is None else f"{100 * r['score']:.0f}%"


def render_scores(data: dict) -> str:
    """Scores per group; an earlier run given with --before (and the one before that, when
    that run had one) in columns beside."""
    earlier = []                       # rows -> their earlier runs, newest first
    for r in data["rows"]:
        chain, row = [], r
        while "before" in row:
            row = row["before"]
            chain.append(row)
        earlier.append(chain)
    depth = max(map(len, earlier), default=0)
    names = ["score before", "score before that"][:depth]
    out = ["| module | sources | mutants (sample) | killed | survived | invalid | score |"
           + "".join(f" {n} |" for n in names),
           "|---|---|---:|---:|---:|---:|---:|" + "---:|" * depth]
    for r, chain in zip(data["rows"], earlier):
        run = r["killed"] + r["survived"] + r["invalid"]
        line = (f"| {r['module']} | {', '.join(r['sources'])} | {r['mutants']:,} ({run}) | "
                f"{r['killed']} | {r['survived']} | {r['invalid']} | {_score(r)} |")
        for b in chain + [None] * (depth - len(chain)):
            line += " - |" if b is None else \
                f" {_score(b)} ({b['killed']} of {b['killed'] + b['survived']}) |"
        out.append(line)
    return "\n".join(out)


def render_survivors(data: dict) -> str:
    out = ["| module | where | mutation |", "|---|---|---|"]
    for m in data["mutants"]:
        if m["status"] == "survived":
            out.append(f"| {m['group']} | {m['path']}:{m['line']} | `{m['what']}` |")
    return "\n".join(out)


JSON = "mutation_results.json"
TABLES = {"mutation": ([JSON], render_scores), "mutation-survivors": ([JSON], render_survivors)}


if __name__ == "__main__":
    main()
