"""benchmarks/search.py's bookkeeping: a run of some budgets merged into the results file
keeps what it did not redo, and the goal lines give the verdicts the table's figures imply."""
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import search  # noqa: E402

KB = 1024


def row(scheme, budget, total, acc, se, minimum=100 * KB):
    return {"model": "mcunet", "scheme": scheme, "budget": budget, "minimum": minimum,
            "cost": {"total": total, "parts": {}, "macs": 0}, "accuracy": acc, "stderr": se,
            "accuracies": [acc], "trains": scheme, "doc": scheme, "search": None}


def entry(rows, searches=()):
    return {"rows": rows, "searches": list(searches), "settings": {}}


def searched(budget, steps):
    return {"budget": budget, "analysis_steps": steps, "analysis_val": 500, "runs": 1,
            "cpu_seconds": 3600.0, "schemes_planned": 1}


def test_a_run_of_one_budget_keeps_the_other_budgets_and_replaces_its_references():
    hand = 216 * KB
    old = entry([row("searched", 256 * KB, 150 * KB, .79, .01),
                 row("bias-only:26", 256 * KB, 160 * KB, .79, .01),
                 row("last:1", None, 210 * KB, .77, .01),
                 row("hand-written 99kb", None, hand, .82, .01)],
                [searched(256 * KB, 300)])
    new = entry([row("searched", hand, 200 * KB, .83, .01),
                 row("bias-only:30", hand, 170 * KB, .80, .01),
                 row("last:1", hand, 210 * KB, .76, .01),
                 row("hand-written 99kb", hand, hand, .81, .01)],
                [searched(hand, 200)])
    merged = search.merge(old, new)
    assert [(r["scheme"], r["budget"], r["accuracy"]) for r in merged["rows"]] == [
        ("searched", hand, .83), ("bias-only:30", hand, .80), ("last:1", hand, .76),
        ("hand-written 99kb", hand, .81),
        ("searched", 256 * KB, .79), ("bias-only:26", 256 * KB, .79)]
    assert [(v["budget"], v["analysis_steps"]) for v in merged["searches"]] == [
        (hand, 200), (256 * KB, 300)]
    again = search.merge(merged, new)            # the same run merged twice: nothing doubles
    assert again["rows"] == merged["rows"] and again["searches"] == merged["searches"]


def goal_lines(searched_acc, searched_se, hand_acc=.82, hand_se=.005, searched_kb=60):
    hand = 216 * KB
    doc = {"models": {"mcunet": entry([
        row("searched", hand, searched_kb * KB, searched_acc, searched_se),
        row("last:1", hand, 210 * KB, .77, .004),
        row("hand-written 99kb", hand, hand, hand_acc, hand_se)])}}
    return search.goals(doc)


def test_goal_verdicts_follow_the_figures():
    # 200 KB above the head's 100 KB against 110 KB: the total's ratio decides, not the part
    reach, beat = goal_lines(.83, .005, searched_kb=200)
    assert "1/4 of its memory: not met" in reach and "95% of its memory" in reach
    assert "91% of what it adds" in reach
    reach, _ = goal_lines(.83, .005, searched_kb=52)
    assert "1/4 of its memory: met" in reach and "25% of its memory" in reach
    # ahead by 1.0 point, two standard errors of the difference 1.41: a tie
    assert "not met, a tie within two standard errors" in goal_lines(.83, .005)[1]
    assert "equal budget (216.0 KB): met; " in goal_lines(.84, .005)[1]
    assert "equal budget (216.0 KB): not met; " in goal_lines(.80, .005)[1]
    reach, beat = goal_lines(.70, .005)
    assert "not met, no searched scheme reaches" in reach
