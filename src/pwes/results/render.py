"""Rendering a sweep's rows: the Markdown report (main table, validation and diagnostics side
tables, the spread screen, failed jobs, pooled fold sweeps, warnings) and report.csv's rows
(mean, std, n per figure). Text only: nothing here reads or writes files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pwes.results.collect import JobRow
from pwes.results.columns import COLUMNS, DIAG_COLUMNS, DIAG_NOTE, NOTE, VAL_COLUMNS, VAL_NOTE
from pwes.results.stats import GroupRow, differences, is_number, swept_keys


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
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def pooled_section(pooled: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The fold sweep's pooled figures (:func:`pwes.results.collect.pooled_metrics`), each with
    its failed and unfinished fold jobs (pwes.sweep); empty without any."""
    lines = []
    for setting, metrics in pooled:
        name = f" {setting}" if setting else ""
        figures = ", ".join(f"{label} {float(metrics[key]):.3f}" for label, key in COLUMNS if is_number(metrics.get(key)))
        counts = f" (tp={metrics['tp']} fp={metrics['fp']} fn={metrics['fn']}, {metrics.get('num_folds', '?')} folds)" if all(k in metrics for k in ("tp", "fp", "fn")) else ""
        lines.append(f"- pooled{name}: {figures}{counts}")
        for job in metrics.get("failed_jobs") or []:
            lines.append(f"  - NOT IN THESE FIGURES: fold {job.get('fold')} failed: {job.get('reason')}")
        for folder in metrics.get("missing_jobs") or []:
            lines.append(f"  - NOT IN THESE FIGURES: {folder} did not finish its fold")
    return "\nPooled over the fold jobs:\n" + "\n".join(lines) + "\n" if lines else ""


def report_markdown(rows: Sequence[JobRow], groups: Sequence[GroupRow], pooled: Sequence[tuple[str, dict[str, Any]]], warnings: Sequence[str], beside: str = "") -> str:
    """report.md: the tables, the spread screen (rows with more than one seed), ``beside`` (the
    paper's rows, pwes.results.paper), failed jobs, the pooled fold sweeps and the warnings."""
    header, cells = table(groups)
    text = markdown(header, cells) + "\n" + NOTE + "\n"
    for title, columns, note in (("Validation", VAL_COLUMNS, VAL_NOTE), ("Diagnostics", DIAG_COLUMNS, DIAG_NOTE)):
        side_header, side_cells = figures_table(groups, columns)
        if side_cells:
            text += f"\n{title}:\n\n" + markdown(side_header, side_cells) + "\n" + note + "\n"
    keys = swept_keys(groups)
    if any((s := g.stat("f1")) is not None and s.n > 1 for g in groups):
        found = differences(groups, keys)
        text += "\nDifferences beyond twice the combined spread sqrt(s1² + s2²) of two rows:\n"
        text += ("\n".join(found) if found else "- none: every difference is within the seed-to-seed spread") + "\n"
    text += beside
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        text += "\nFailed jobs:\n" + "\n".join(f"- {r.folder}: {r.reason}" for r in failed) + "\n"
    text += pooled_section(pooled)
    if warnings:
        text += "\nWarnings:\n" + "\n".join(f"- {w}" for w in warnings) + "\n"
    return text
