"""Results of a multirun (``python -m pwes.report``): :mod:`.collect` reads the jobs and pooled
figures of a sweep folder, :mod:`.stats` groups them by seed (mean ± std, the spread screen),
:mod:`.render` writes the Markdown and CSV text, :mod:`.plot` report.png, :mod:`.write` puts
them into the folder; :mod:`.columns` names the figures each table shows."""

from pwes.results.collect import JobRow, ReportError, collect, read_override_list, read_overrides
from pwes.results.stats import GroupRow, Stat, combined_spread, group_by_seed
from pwes.results.write import write_report

__all__ = [
    "GroupRow",
    "JobRow",
    "ReportError",
    "Stat",
    "collect",
    "combined_spread",
    "group_by_seed",
    "read_override_list",
    "read_overrides",
    "write_report",
]
