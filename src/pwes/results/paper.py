"""The paper's published rows beside a sweep's (``pwes.report``'s "Beside the paper" section).

The paper reports one operating point, **all** proposals (README, Outputs), on the three real
datasets: Table I (CAS(ME)^2: Baseline, +PPLM, +MPLG, +MPLG+DFCL) and Tables IX-XI (CAS(ME)^2,
SAMM-LV, CAS(ME)^3: MC-WES, SF-Net, LACP, PWES). A sweep row is matched to a paper row by its
``ablation`` alone (no ``ablation`` = the defaults = PWES); the full-supervision reference and the
controls have no paper row. The section lists, for each pair of matched rows, whether the paper's
F1 ordering holds here over all proposals and at the calibrated point, and whether the gap is
beyond twice the combined seed spread. Text only: the dataset is read by :func:`dataset_of`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import yaml

from pwes.results.render import markdown
from pwes.results.stats import GroupRow, Stat, combined_spread

# The paper's columns, in its order, and the metrics.json key each is compared with.
PAPER_COLUMNS = (("F1(0.5)", "f1_me_0.5"), ("F1(1.0)", "f1_me_1.0"), ("F1(p)", "f1_me_p"), ("REC", "recall"), ("PRE", "precision"), ("F1", "f1"))
DEFAULT_ABLATION = "mplg_dfcl"  # conf/train.yaml: ablation null is the paper's method

# dataset -> (its name in the paper, {ablation: (paper label, table, (F1(0.5), F1(1.0), F1(p), REC, PRE, F1))})
PAPER_ROWS: dict[str, tuple[str, dict[str, tuple[str, str, tuple[float, ...]]]]] = {
    "casme2": ("CAS(ME)^2", {
        "baseline": ("Baseline", "I", (0.167, 0.076, 0.000, 0.252, 0.282, 0.266)),
        "pplm": ("+PPLM", "I", (0.172, 0.081, 0.000, 0.204, 0.384, 0.267)),
        "mplg": ("+MPLG", "I", (0.207, 0.095, 0.000, 0.272, 0.473, 0.345)),
        "mplg_dfcl": ("PWES (+MPLG+DFCL)", "I, IX", (0.203, 0.102, 0.023, 0.305, 0.467, 0.366)),
        "mcwes": ("MC-WES", "IX", (0.167, 0.108, 0.169, 0.266, 0.415, 0.324)),
        "sfnet": ("SF-Net", "IX", (0.139, 0.089, 0.096, 0.270, 0.334, 0.298)),
        "lacp": ("LACP", "IX", (0.019, 0.016, 0.020, 0.120, 0.091, 0.103)),
    }),
    "samm": ("SAMM-LV", {
        "mplg_dfcl": ("PWES", "X", (0.310, 0.077, 0.000, 0.286, 0.226, 0.252)),
        "mcwes": ("MC-WES", "X", (0.135, 0.055, 0.135, 0.263, 0.178, 0.212)),
        "sfnet": ("SF-Net", "X", (0.088, 0.075, 0.036, 0.132, 0.253, 0.174)),
        "lacp": ("LACP", "X", (0.097, 0.049, 0.096, 0.164, 0.151, 0.157)),
    }),
    "casme3": ("CAS(ME)^3", {
        "mplg_dfcl": ("PWES", "XI", (0.093, 0.047, 0.000, 0.171, 0.158, 0.164)),
        "mcwes": ("MC-WES", "XI", (0.048, 0.022, 0.000, 0.141, 0.060, 0.084)),
        "sfnet": ("SF-Net", "XI", (0.010, 0.006, 0.017, 0.075, 0.036, 0.049)),
        "lacp": ("LACP", "XI", (0.051, 0.023, 0.000, 0.111, 0.078, 0.091)),
    }),
}
SYNTHETIC_PREFIX = "synthetic_"


def paper_dataset(name: str) -> str | None:
    """The paper dataset a dataset name stands for (``synthetic_casme2`` -> ``casme2``), or None."""
    base = name[len(SYNTHETIC_PREFIX):] if name.startswith(SYNTHETIC_PREFIX) else name
    return base if base in PAPER_ROWS else None


def dataset_of(sweep_dir: Path, groups: Sequence[GroupRow]) -> str | None:
    """The ``dataset.name`` of the sweep's finished jobs (their config.yaml), when they all agree."""
    names = set()
    for group in groups:
        for job in group.ok:
            try:
                config = yaml.safe_load((sweep_dir / job.folder / "config.yaml").read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                continue
            name = (config.get("dataset") or {}).get("name") if isinstance(config, dict) else None
            if isinstance(name, str):
                names.add(name)
    return names.pop() if len(names) == 1 else None


def _matched(groups: Sequence[GroupRow], rows: dict) -> list[tuple[GroupRow, str]]:
    """(row, ablation) of the finished whole-protocol rows with a paper row (a single ``fold=``
    job is not the paper's protocol)."""
    found = [(g, g.overrides.get("ablation", DEFAULT_ABLATION)) for g in groups if g.ok and g.overrides.get("fold", "all") == "all"]
    return [(g, ablation) for g, ablation in found if ablation in rows]


def _label(name: str, group: GroupRow, keys: Sequence[str]) -> str:
    """The paper's name of the row, with the group's own values of the settings that differ."""
    own = ", ".join(f"{k}={group.overrides[k]}" for k in keys if k in group.overrides)
    return f"{name} ({own})" if own else name


def _ordering(a: Stat | None, b: Stat | None) -> str:
    """Whether mean a > mean b (the paper's order) holds, and against the spread."""
    if a is None or b is None:
        return "not measured"
    holds = "holds" if a.mean > b.mean else "reversed"
    spread = combined_spread(a, b)
    if spread is None:
        return f"{holds} ({a.mean:.3f} vs {b.mean:.3f}, one seed: no spread)"
    beyond = "beyond" if abs(a.mean - b.mean) > 2 * spread else "within"
    return f"{holds} ({a.mean:.3f} vs {b.mean:.3f}, {beyond} twice the combined spread {2 * spread:.3f})"


def paper_section(groups: Sequence[GroupRow], dataset: str, run_dataset: str) -> str:
    """Markdown: the paper's rows of ``dataset`` beside the matched sweep rows, then the paper's
    pairwise F1 orderings checked here; empty when fewer than one sweep row matches."""
    paper_name, rows = PAPER_ROWS[dataset]
    matched = _matched(groups, rows)
    if not matched:
        return ""
    keys = [k for k in dict.fromkeys(k for g, _ in matched for k in g.overrides) if k != "ablation" and len({g.overrides.get(k) for g, _ in matched}) > 1]
    header = ["row", "source", *(name for name, _ in PAPER_COLUMNS), "calibrated: F1"]
    cells = []
    for ablation in rows:  # the paper's order; each paper row once, then the sweep's rows of it
        label, table, values = rows[ablation]
        ours = [g for g, a in matched if a == ablation]
        if ours:
            cells.append([label, f"paper, Table {table}", *(f"{v:.3f}" for v in values), "–"])
        for group in ours:
            stats = [group.stat(key) for _, key in (*PAPER_COLUMNS, ("", "calibrated_f1"))]
            cells.append([_label(label, group, keys), f"here: {run_dataset}", *("" if s is None else str(s) for s in stats)])
    stand_in = " (a synthetic stand-in: its figures are not comparable with the paper's, only its orderings)" if run_dataset != dataset else ""
    text = f"\nBeside the paper ({paper_name}, the paper's all-proposals figures; this sweep: {run_dataset}{stand_in}):\n\n" + markdown(header, cells)
    text += "\nRows the paper does not have (the full-supervision reference, the controls, single folds) are left out here.\n"
    order = []
    for (ga, aa), (gb, ab) in itertools.combinations(matched, 2):
        fa, fb = rows[aa][2][-1], rows[ab][2][-1]
        if fa == fb or aa == ab:
            continue
        (hi, hi_ab), (lo, lo_ab) = ((ga, aa), (gb, ab)) if fa > fb else ((gb, ab), (ga, aa))
        names = (_label(rows[hi_ab][0], hi, keys), _label(rows[lo_ab][0], lo, keys))
        order.append(
            f"- paper: {names[0]} > {names[1]} (F1 {max(fa, fb):.3f} vs {min(fa, fb):.3f}); here, all proposals: "
            f"{_ordering(hi.stat('f1'), lo.stat('f1'))}; calibrated: {_ordering(hi.stat('calibrated_f1'), lo.stat('calibrated_f1'))}"
        )
    if order:
        text += "\nThe paper's F1 orderings, checked here:\n" + "\n".join(order) + "\n"
    return text
