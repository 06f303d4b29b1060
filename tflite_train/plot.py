"""`plan --plot`: SRAM over the operator sequence, stacked by what occupies it."""
from __future__ import annotations

from pathlib import Path

from .memory import CATEGORIES, Plan

COLORS = {"activations": "#4c78a8", "saved activations": "#f58518", "gradients": "#e45756",
          "scratch": "#72b7b2", "trainable parameters": "#54a24b", "optimizer state": "#b279a2"}


def memory_chart(plan: Plan, kinds: list[str], title: str, path: Path,
                 budget_kb: float | None = 256) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = list(range(len(plan.timeline)))
    used = [c for c in CATEGORIES if any(t[c] for t in plan.timeline)]
    layers = [[t[c] / 1024 for t in plan.timeline] for c in used]
    labels = list(used)
    if plan.trainable_bytes:
        layers.append([plan.trainable_bytes / 1024] * len(xs))
        labels.append("trainable parameters")
    if plan.optimizer_bytes:
        layers.append([plan.optimizer_bytes / 1024] * len(xs))
        labels.append("optimizer state")
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=120)
    ax.stackplot(xs, layers, labels=labels, colors=[COLORS[l] for l in labels], step="mid")
    total = [sum(col) for col in zip(*layers)]
    peak = max(range(len(total)), key=total.__getitem__) if total else 0
    if total:
        ax.annotate(f"peak {total[peak]:.1f} KB\nop {peak} {kinds[peak]}",
                    xy=(peak, total[peak]), xytext=(0.45, 0.72), textcoords="axes fraction",
                    arrowprops={"arrowstyle": "->"}, fontsize=9)
    if budget_kb:
        ax.axhline(budget_kb, color="black", linestyle="--", linewidth=1)
        ax.text(max(len(xs) - 1, 1), budget_kb, f"{budget_kb:g} KB budget ", va="bottom",
                ha="right", fontsize=8)
    loss = next((k for k, kind in enumerate(kinds) if kind == "TT_LOSS_SOFTMAX_CE"), None)
    if loss is not None:
        ax.axvline(loss, color="grey", linewidth=0.8)
        ax.text(loss, ax.get_ylim()[1] * 0.98, " loss", va="top", fontsize=8, color="grey")
    ax.set_xlabel("operator (execution order)")
    ax.set_ylabel("SRAM in use (KB)")
    ax.set_ylim(0, max(max(total, default=0), budget_kb or 0) * 1.12)
    ax.set_title(title)
    ax.set_xlim(0, max(len(xs) - 1, 1))
    ax.legend(loc="upper right", fontsize=8, bbox_to_anchor=(1.0, 0.93))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
