"""benchmarks/RESULTS.md: every table is what its benchmark's JSON renders to, so that no
figure in a table is typed by hand (benchmarks/results.py)."""
import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import results  # noqa: E402


def test_every_table_is_rendered_from_its_json():
    assert results.stale() == []


def test_a_hand_edited_figure_is_caught():
    text = results.RESULTS.read_text()
    block = re.search(r"<!-- table:paper-memory -->\n.*?<!-- /table:paper-memory -->", text, re.S)
    digit = re.search(r"\| \d", block[0])
    at = block.start() + digit.end() - 1
    edited = text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:]
    assert results.stale(text) == []
    assert results.stale(edited) == ["paper-memory: RESULTS.md differs from "
                                     "paper_memory_results.json"]


def test_every_script_with_tables_is_run_by_make_bench():
    """Each table's JSON is written by a command of `make bench`, or is a record of an older
    checkout (run.RECORDS)."""
    import run
    scripts = {argv[0].removesuffix(".py") for argv in run.RUNS.values()}
    assert set(results.SCRIPTS) <= scripts
    for name, (files, _) in results.tables().items():
        for f in files:
            assert any(f in argv for argv in run.RUNS.values()) or f in run.RECORDS, (name, f)
