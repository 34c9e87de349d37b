"""A sweep's report files: collect the jobs, group them by seed, and write report.md,
report.csv and report.png into the sweep folder (each written to a temp file and renamed)."""

from __future__ import annotations

from pathlib import Path

from pwes import io
from pwes.results.collect import ReportError, collect, pooled_metrics
from pwes.results.paper import PAPER_ROWS, dataset_of, paper_dataset, paper_section
from pwes.results.render import csv_table, report_markdown
from pwes.results.stats import group_by_seed, swept_keys


def write_report(sweep_dir: Path, warnings: list[str] | None = None, paper: str = "auto") -> str:
    """Write report.md, report.csv and report.png into ``sweep_dir``; return the Markdown.
    Lines about unusable files are appended to ``warnings`` (and to the Markdown). ``paper``:
    whose published rows to show beside the sweep's (:mod:`.paper`): ``auto`` (the dataset the
    jobs ran on, ``synthetic_X`` standing for ``X``), ``none``, or casme2 / samm / casme3."""
    if paper not in ("auto", "none", *PAPER_ROWS):
        raise ReportError(f"--paper {paper}: expected auto, none, or one of {', '.join(PAPER_ROWS)}")
    warnings = warnings if warnings is not None else []
    rows = collect(sweep_dir, warnings)
    groups = group_by_seed(rows)
    beside = ""
    if paper != "none":  # the jobs' dataset names the table under auto, and labels the rows
        run_dataset = dataset_of(sweep_dir, groups)
        dataset = paper_dataset(run_dataset or "") if paper == "auto" else paper
        beside = paper_section(groups, dataset, run_dataset or "unknown dataset") if dataset else ""
    text = report_markdown(rows, groups, pooled_metrics(sweep_dir, warnings), warnings, beside)
    io.write_text(sweep_dir / "report.md", text)
    csv_header, csv_rows = csv_table(groups)
    io.write_csv(sweep_dir / "report.csv", csv_header, csv_rows)
    if any(g.ok for g in groups):
        from pwes.results.plot import plot

        plot(groups, swept_keys(groups), sweep_dir / "report.png")
    return text
