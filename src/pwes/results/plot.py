"""report.png: the F1 of the three operating points (and ME F1(0.5)) per row of a sweep's report,
with error bars of one standard deviation over seeds (rendering only; :mod:`.collect` collects)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pwes import io

if TYPE_CHECKING:
    from pwes.results.stats import GroupRow


def plot_text(groups: Sequence[GroupRow], sweep_name: str) -> tuple[str, str]:
    """Title and y label of report.png: the sweep, and "mean ± std over seeds" only where a
    row has more than one seed (one seed per row is a single value, no error bar)."""
    counts = sorted({s.n for g in groups if g.ok and (s := g.stat("f1")) is not None})
    if not counts or counts == [1]:
        ylabel = "F1 (one seed per row)"
    elif len(counts) == 1:
        ylabel = f"F1 (mean ± std over {counts[0]} seeds)"
    else:
        ylabel = f"F1 (mean ± std over {counts[0]}-{counts[-1]} seeds; n per row in report.md)"
    return f"{sweep_name}: F1 per setting", ylabel


def plot(groups: Sequence[GroupRow], keys: Sequence[str], path: Path) -> None:
    """F1 at the three operating points (and ME F1(0.5)) per row, error bars = std over seeds;
    titled with the sweep folder's name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [g for g in groups if g.ok]
    labels = [",".join(g.overrides.get(k, "") for k in keys) for g in ok]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(ok) + 2.5) + 1.8, 3.4))  # + the legend beside the axes
    series = (("f1", "o-", "F1, all proposals"), ("calibrated_f1", "D-", "F1, calibrated"), ("f1_p", "^:", "F1, best-on-test†"), ("f1_me_0.5", "s--", "F1(0.5) (ME)"))
    top = 0.05
    for offset, (key, style, name) in zip((-0.12, -0.04, 0.04, 0.12), series):
        stats = [g.stat(key) for g in ok]
        if all(s is None for s in stats):
            continue
        xs = [i + offset for i, s in enumerate(stats) if s is not None]
        means = [s.mean for s in stats if s is not None]
        errors = [s.std or 0.0 for s in stats if s is not None]
        ax.errorbar(xs, means, yerr=errors, fmt=style, capsize=3, label=name)
        top = max([top] + [m + e for m, e in zip(means, errors)])
    ax.set_xticks(list(range(len(ok))), labels, rotation=30, ha="right")
    ax.set_xlabel(", ".join(keys))
    title, ylabel = plot_text(groups, path.parent.name)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top * 1.2)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)  # outside: never over a point
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with io.atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
