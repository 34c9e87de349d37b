"""Statistics over seeds: jobs that differ only in ``seed`` form one row whose figures are
``mean ± std (n)`` (sample standard deviation), and the spread screen that names each pair of
rows whose headline figures differ by more than twice their combined spread."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pwes.results.collect import JobRow
from pwes.results.columns import COLUMNS, HEADLINE

SEED_KEY = "seed"


@dataclass
class Stat:
    """Mean, sample standard deviation (None below two values) and count of one figure."""

    mean: float
    std: float | None
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f}" if self.std is None else f"{self.mean:.3f} ± {self.std:.3f} (n={self.n})"


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): a figure that can enter a mean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass
class GroupRow:
    """Jobs that differ only in ``seed``: one row of the report."""

    overrides: dict[str, str]  # without seed
    jobs: list[JobRow]

    @property
    def seeds(self) -> list[str]:
        """The group's seeds in numeric order (jobs of several sweeps come in folder order)."""
        seeds = [j.overrides[SEED_KEY] for j in self.jobs if SEED_KEY in j.overrides]
        return sorted(seeds, key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))

    @property
    def ok(self) -> list[JobRow]:
        return [j for j in self.jobs if j.status == "ok"]

    @property
    def status(self) -> str:
        counts = {s: sum(j.status == s for j in self.jobs) for s in ("ok", "failed", "missing")}
        if len(self.jobs) == 1 or counts["ok"] in (0, len(self.jobs)) and sum(v > 0 for v in counts.values()) == 1:
            return self.jobs[0].status
        return ", ".join(f"{v} {s}" for s, v in counts.items() if v)

    def stat(self, key: str) -> Stat | None:
        values = [float(j.metrics[key]) for j in self.ok if is_number(j.metrics.get(key))]
        if not values:
            return None
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        return Stat(mean, std, len(values))


def group_by_seed(rows: Sequence[JobRow]) -> list[GroupRow]:
    """Jobs whose overrides are equal but for ``seed``, in order of first appearance. A job whose
    overrides could not be read stays a row of its own."""
    groups: dict[Any, GroupRow] = {}
    for index, row in enumerate(rows):
        rest = {k: v for k, v in row.overrides.items() if k != SEED_KEY}
        key = tuple(sorted(rest.items())) if row.overrides or row.status != "failed" else ("#unreadable", index)
        groups.setdefault(key, GroupRow(rest, [])).jobs.append(row)
    return list(groups.values())


def swept_keys(groups: Sequence[GroupRow]) -> list[str]:
    """Overrides whose value differs between rows: the first columns of the table."""
    keys = list(dict.fromkeys(k for g in groups for k in g.overrides))
    return [k for k in keys if len({g.overrides.get(k) for g in groups}) > 1] or keys[:1]


def row_label(group: GroupRow, keys: Sequence[str]) -> str:
    """``key=value, ...`` of the swept settings (the job folder when there are none)."""
    return ", ".join(f"{k}={group.overrides.get(k, '')}" for k in keys) or (group.jobs[0].folder or "job")


def combined_spread(a: Stat, b: Stat) -> float | None:
    """``sqrt(s1^2 + s2^2)``: the spread of the difference between one run of each row; None
    unless both rows have a standard deviation (n >= 2)."""
    if a.std is None or b.std is None:
        return None
    return math.sqrt(a.std**2 + b.std**2)


def differences(groups: Sequence[GroupRow], keys: Sequence[str]) -> list[str]:
    """Lines naming each pair of rows whose headline figures differ by more than twice their
    combined spread."""
    labels = [row_label(g, keys) for g in groups]
    column = {key: name for name, key in COLUMNS}
    lines = []
    for figure in HEADLINE:
        for (i, a), (j, b) in itertools.combinations(enumerate(groups), 2):
            sa, sb = a.stat(figure), b.stat(figure)
            if sa is None or sb is None:
                continue
            spread = combined_spread(sa, sb)
            gap = abs(sa.mean - sb.mean)
            if spread is not None and gap > 2 * spread:
                hi, lo = (labels[i], labels[j]) if sa.mean > sb.mean else (labels[j], labels[i])
                lines.append(f"- {column.get(figure, figure)}: {hi} > {lo} by {gap:.3f} (2 × combined spread = {2 * spread:.3f})")
    return lines
