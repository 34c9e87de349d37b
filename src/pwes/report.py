"""Tabulate a multirun the way the paper's tables read, with the spread over seeds.

    python -m pwes.report outputs/multiruns/table4_synthetic_casme2

One row per setting: jobs that differ only in ``seed`` (``-m ... seed=0,1,2``) form one row whose
cells read ``mean ± std (n=3)`` (sample standard deviation over the seeds). Columns, by operating
point (docs/evaluation.md): the ME figures F1(0.5) and F1(1.0); **all** proposals (REC, PRE, F1);
**calibrated** (each fold's threshold chosen on its training videos' point labels, or on their
intervals for a fully supervised row: REC, PRE, F1, ME F1); **best-on-test** (the score threshold with the best pooled F1, tuned on the test folds:
F1 and the paper's F1(p)). A second table gives the pseudo-label and attention diagnostics
(``diag_*``, pwes.callbacks.diagnostics) of rows that have them. Below the tables, every pair
of rows whose means differ by more than twice their combined spread ``sqrt(s1^2 + s2^2)`` is
listed. Jobs the sweep defines but that never ran are ``missing``; jobs that left no usable
metrics.json are ``failed`` (with the reason).
Writes report.md, report.csv (mean, std, n per figure) and report.png (error bars) into the sweep
folder; when the jobs logged to W&B, also one W&B run of the sweep (``job_type=report``) with the
table and the plot (pwes.dashboard.log_report; ``--no-wandb`` skips it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pwes import io

# (column label, metrics.json key), grouped by operating point; † = tuned on the test folds.
COLUMNS = (
    ("F1(0.5)", "f1_me_0.5"),
    ("F1(1.0)", "f1_me_1.0"),
    ("all: REC", "recall"),
    ("all: PRE", "precision"),
    ("all: F1", "f1"),
    ("calibrated: REC", "calibrated_recall"),
    ("calibrated: PRE", "calibrated_precision"),
    ("calibrated: F1", "calibrated_f1"),
    ("calibrated: ME F1", "calibrated_me_f1"),
    ("best-on-test†: F1", "f1_p"),
    ("best-on-test†: F1(p)", "f1_me_p"),
)
# Pseudo-label and attention diagnostics (pwes.callbacks.diagnostics): a second table.
DIAG_COLUMNS = (
    ("ME precision", "diag_precision_me"),
    ("ME recall", "diag_recall_me"),
    ("MaE precision", "diag_precision_mae"),
    ("MaE recall", "diag_recall_mae"),
    ("bg purity", "diag_bg_purity"),
    ("fg coverage", "diag_coverage_fg"),
    ("bg coverage", "diag_coverage_bg"),
    ("attention AUC", "diag_attention_auc"),
)
DIAG_NOTE = (
    "Pseudo labels and attention on the training videos against their annotated intervals (ground "
    "truth for logging only): the snippet-loss targets' precision/recall per class, the share of "
    "pseudo background outside every interval, the share of each video labelled, the attention's "
    "snippet AUC; each fold's mean over its last steps, then the mean over folds."
)
# Validation figures (evaluation.validation_subjects > 0): point hits on held-out training
# subjects, what `pwes.select` chooses by; a third table.
VAL_COLUMNS = (
    ("val: REC", "val_recall"),
    ("val: PRE", "val_precision"),
    ("val: F1", "val_f1"),
    ("val: ME F1", "val_me_f1"),
    ("val: MaE F1", "val_mae_f1"),
    ("val, all proposals: F1", "val_all_f1"),
)
VAL_NOTE = (
    "Validation: each fold's held-out training subjects (never the test subject), scored with the "
    "run's calibration rule (point hits under point supervision) at the fold's calibrated threshold; "
    "counts pooled over folds. The figure to choose settings by (pwes.select); the test columns above "
    "are reported, not chosen on."
)
# The figures whose row-to-row differences are checked against the spread.
HEADLINE = ("f1", "calibrated_f1", "f1_p", "f1_me_0.5")
NOTE = (
    "all: every proposal. calibrated: each fold's score threshold chosen on its training videos' "
    "point labels, or their intervals under model.supervision=full (deployable; the threshold "
    "pwes.spot uses). best-on-test†: the threshold with "
    "the best pooled F1, one threshold for all folds, tuned on the test folds (not deployable, and not "
    "an upper bound of calibrated, whose thresholds are per fold; the paper's F1(p) is its ME F1)."
)
SEED_KEY = "seed"


class ReportError(ValueError):
    """The folder is not a multirun folder, or none of its files can be used."""


@dataclass
class JobRow:
    """One job of the sweep: its overrides, status and figures (``reason`` when failed)."""

    overrides: dict[str, str]
    status: str  # ok, failed, missing
    metrics: dict[str, Any] = field(default_factory=dict)
    folder: str = ""
    reason: str = ""


@dataclass
class Stat:
    """Mean, sample standard deviation (None below two values) and count of one figure."""

    mean: float
    std: float | None
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f}" if self.std is None else f"{self.mean:.3f} ± {self.std:.3f} (n={self.n})"


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
        values = [float(j.metrics[key]) for j in self.ok if _is_number(j.metrics.get(key))]
        if not values:
            return None
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        return Stat(mean, std, len(values))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def read_overrides(path: Path) -> dict[str, str]:
    """A job's recorded overrides (``.hydra/overrides.yaml``) as key -> value; :class:`ReportError`
    naming the file."""
    return dict(_split(o) for o in read_override_list(path))


def read_override_list(path: Path) -> list[str]:
    """A job's recorded overrides as Hydra wrote them; :class:`ReportError` naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not readable YAML ({type(err).__name__})") from None
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(o, str) for o in data):
        raise ReportError(f"{path}: expected a YAML list of overrides (key=value), got {type(data).__name__}")
    return data


def expected_jobs(sweep_dir: Path) -> list[dict[str, str]]:
    """The jobs the sweep defines (from multirun.yaml: sweeper params and command-line sweeps);
    :class:`ReportError` naming the file when it cannot be read."""
    path = sweep_dir / "multirun.yaml"
    if not path.exists():
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        hydra_cfg = config.get("hydra", {}) or {}
        task = list((hydra_cfg.get("overrides", {}) or {}).get("task", []) or [])
        params = (hydra_cfg.get("sweeper", {}) or {}).get("params") or {}
        lines = [f"{k}={v}" for k, v in params.items()] + [str(t) for t in task]
        parsed = OverridesParser.create().parse_overrides(lines)
        axes: dict[str, list[str]] = {}
        for override in parsed:
            key = override.get_key_element()
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
            axes[key.lstrip("+~")] = values  # later (command line) wins, as in Hydra
    except Exception as err:  # noqa: BLE001 - YAML, structure and Hydra parse errors all mean "unusable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReportError(f"{path}: not a usable Hydra multirun record ({first})") from None
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def _read_metrics(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(metrics, "") or (None, why the file cannot be used)."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return None, f"{path.name}: not valid JSON ({err.msg}, line {err.lineno})"
    except (OSError, UnicodeDecodeError) as err:
        return None, f"{path.name}: unreadable ({type(err).__name__})"
    if not isinstance(metrics, dict):
        return None, f"{path.name}: not a JSON object (a {type(metrics).__name__})"
    return metrics, ""


def collect(sweep_dir: Path, warnings: list[str] | None = None) -> list[JobRow]:
    """Every job of the sweep, ran or not, in job order. Unusable files mark their job ``failed``
    (with the reason); an unusable multirun.yaml adds a line to ``warnings`` instead."""
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: folder not found")
    warnings = warnings if warnings is not None else []
    found: list[JobRow] = []
    # Job folders sit directly in the sweep folder; older sweeps with '/' in an override value
    # (model/mplg=c) nested them one level deeper, so look two levels down.
    jobs = [p.parent.parent for p in [*sweep_dir.glob("*/.hydra/overrides.yaml"), *sweep_dir.glob("*/*/.hydra/overrides.yaml")]]
    for job_dir in sorted(jobs, key=lambda p: (len(p.relative_to(sweep_dir).parts[0].split("_")[0]), str(p))):
        folder = str(job_dir.relative_to(sweep_dir))
        try:
            overrides = read_overrides(job_dir / ".hydra" / "overrides.yaml")
        except ReportError as err:
            found.append(JobRow({}, "failed", folder=folder, reason=str(err)))
            continue
        metrics_path = job_dir / "metrics.json"
        if not metrics_path.exists():
            found.append(JobRow(overrides, "failed", folder=folder, reason="no metrics.json (crashed or still running)"))
            continue
        metrics, reason = _read_metrics(metrics_path)
        found.append(JobRow(overrides, "ok", metrics, folder) if metrics is not None else JobRow(overrides, "failed", folder=folder, reason=reason))
    try:
        expected = expected_jobs(sweep_dir)
    except ReportError as err:
        warnings.append(f"{err}; jobs that never ran cannot be listed")
        expected = []
    if not found and not expected:
        raise ReportError(f"{sweep_dir}: no Hydra jobs found (expected subfolders with .hydra/overrides.yaml, or multirun.yaml)")
    rows = list(found)
    for combo in expected:
        if not any(all(job.overrides.get(k) == v for k, v in combo.items()) for job in found):
            rows.append(JobRow(combo, "missing"))
    return rows


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


def combined_spread(a: Stat, b: Stat) -> float | None:
    """``sqrt(s1^2 + s2^2)``: the spread of the difference between one run of each row; None
    unless both rows have a standard deviation (n >= 2)."""
    if a.std is None or b.std is None:
        return None
    return math.sqrt(a.std**2 + b.std**2)


def differences(groups: Sequence[GroupRow], keys: Sequence[str]) -> list[str]:
    """Lines naming each pair of rows whose headline figures differ by more than twice their
    combined spread."""
    labels = [_label(g, keys) for g in groups]
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


def _label(group: GroupRow, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={group.overrides.get(k, '')}" for k in keys) or (group.jobs[0].folder or "job")


def table(groups: Sequence[GroupRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the Markdown table."""
    keys = swept_keys(groups)
    with_seeds = any(g.seeds for g in groups)
    header = [*keys, *(["seeds"] if with_seeds else []), *(name for name, _ in COLUMNS), "status"]
    cells = []
    for group in groups:
        values = [group.overrides.get(k, "") for k in keys] + ([",".join(group.seeds)] if with_seeds else [])
        if group.ok:
            values += [str(s) if (s := group.stat(key)) is not None else "" for _, key in COLUMNS]
        else:
            values += [group.status] * len(COLUMNS)
        cells.append(values + [group.status])
    return header, cells


def csv_table(groups: Sequence[GroupRow]) -> tuple[list[str], list[list[Any]]]:
    """report.csv: the swept settings, the seeds, then ``<key>_mean, <key>_std, <key>_n`` per figure."""
    keys = swept_keys(groups)
    header = [*keys, "seeds", *(f"{key}_{part}" for _, key in (*COLUMNS, *VAL_COLUMNS, *DIAG_COLUMNS) for part in ("mean", "std", "n")), "status"]
    rows = []
    for group in groups:
        values: list[Any] = [group.overrides.get(k, "") for k in keys] + [" ".join(group.seeds)]
        for _, key in (*COLUMNS, *VAL_COLUMNS, *DIAG_COLUMNS):
            s = group.stat(key)
            values += ["", "", 0] if s is None else [f"{s.mean:.6f}", "" if s.std is None else f"{s.std:.6f}", s.n]
        rows.append(values + [group.status])
    return header, rows


def figures_table(groups: Sequence[GroupRow], columns: Sequence[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a side table (diagnostics, validation): the rows with any of its figures."""
    keys = swept_keys(groups)
    with_seeds = any(g.seeds for g in groups)
    header = [*keys, *(["seeds"] if with_seeds else []), *(name for name, _ in columns)]
    cells = []
    for group in groups:
        stats = [group.stat(key) for _, key in columns] if group.ok else []
        if any(s is not None for s in stats):
            values = [group.overrides.get(k, "") for k in keys] + ([",".join(group.seeds)] if with_seeds else [])
            cells.append(values + ["" if s is None else str(s) for s in stats])
    return header, cells


def markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def write_report(sweep_dir: Path, warnings: list[str] | None = None) -> str:
    """Write report.md, report.csv and report.png into ``sweep_dir``; return the Markdown.
    Lines about unusable files are appended to ``warnings`` (and to the Markdown)."""
    warnings = warnings if warnings is not None else []
    rows = collect(sweep_dir, warnings)
    groups = group_by_seed(rows)
    header, cells = table(groups)
    text = markdown(header, cells) + "\n" + NOTE + "\n"
    for title, columns, note in (("Validation", VAL_COLUMNS, VAL_NOTE), ("Diagnostics", DIAG_COLUMNS, DIAG_NOTE)):
        side_header, side_cells = figures_table(groups, columns)
        if side_cells:
            text += f"\n{title}:\n\n" + markdown(side_header, side_cells) + "\n" + note + "\n"
    keys = swept_keys(groups)
    if any(g.stat("f1") is not None and g.stat("f1").n > 1 for g in groups):
        found = differences(groups, keys)
        text += "\nDifferences beyond twice the combined spread sqrt(s1² + s2²) of two rows:\n"
        text += ("\n".join(found) if found else "- none: every difference is within the seed-to-seed spread") + "\n"
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        text += "\nFailed jobs:\n" + "\n".join(f"- {r.folder}: {r.reason}" for r in failed) + "\n"
    text += pooled_section(sweep_dir, warnings)
    if warnings:
        text += "\nWarnings:\n" + "\n".join(f"- {w}" for w in warnings) + "\n"
    io.write_text(sweep_dir / "report.md", text)
    csv_header, csv_rows = csv_table(groups)
    io.write_csv(sweep_dir / "report.csv", csv_header, csv_rows)
    if any(g.ok for g in groups):
        from pwes.report_plot import plot

        plot(groups, swept_keys(groups), sweep_dir / "report.png")
    return text


def pooled_section(sweep_dir: Path, warnings: list[str]) -> str:
    """The fold sweep's pooled figures (``pooled/metrics.json``, or one ``pooled/<setting>/``
    per setting), each with its failed and unfinished fold jobs (pwes.sweep)."""
    paths = [sweep_dir / "pooled" / "metrics.json"] + sorted((sweep_dir / "pooled").glob("*/metrics.json"))
    lines = []
    for path in (p for p in paths if p.exists()):
        metrics, reason = _read_metrics(path)
        if metrics is None:
            warnings.append(f"{path}: {reason.split(': ', 1)[1]}")
            continue
        name = "" if path.parent.name == "pooled" else f" {path.parent.name}"
        figures = ", ".join(f"{label} {float(metrics[key]):.3f}" for label, key in COLUMNS if _is_number(metrics.get(key)))
        counts = f" (tp={metrics['tp']} fp={metrics['fp']} fn={metrics['fn']}, {metrics.get('num_folds', '?')} folds)" if all(k in metrics for k in ("tp", "fp", "fn")) else ""
        lines.append(f"- pooled{name}: {figures}{counts}")
        for job in metrics.get("failed_jobs") or []:
            lines.append(f"  - NOT IN THESE FIGURES: fold {job.get('fold')} failed: {job.get('reason')}")
        for folder in metrics.get("missing_jobs") or []:
            lines.append(f"  - NOT IN THESE FIGURES: {folder} did not finish its fold")
    return "\nPooled over the fold jobs:\n" + "\n".join(lines) + "\n" if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pwes.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (outputs/multiruns/<name>)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the report as a W&B run (by default it is, when the jobs logged to W&B)")
    args = parser.parse_args(argv)
    warnings: list[str] = []
    try:
        text = write_report(args.sweep_dir, warnings)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    if not args.no_wandb:  # the jobs logged to W&B: the report becomes a W&B run of the sweep too
        from pwes.dashboard import log_report, sweep_wandb_settings

        settings = sweep_wandb_settings(args.sweep_dir)
        if settings is not None:
            print(log_report(args.sweep_dir, settings), file=sys.stderr)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
