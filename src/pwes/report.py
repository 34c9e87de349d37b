"""Tabulate a multirun the way the paper's tables read, with the spread over seeds.

    python -m pwes.report outputs/multiruns/table4_synthetic_casme2
    python -m pwes.report outputs/runs/synthetic_casme2     # separate fold=all runs, one folder each

One row per setting: jobs that differ only in ``seed`` (``-m ... seed=0,1,2``) form one row whose
cells read ``mean ± std (n=3)`` (sample standard deviation over the seeds). Columns, by operating
point (docs/evaluation.md): the ME figures F1(0.5) and F1(1.0); **all** proposals (REC, PRE, F1);
**calibrated** (each fold's threshold chosen on its training videos' point labels, or on their
intervals for a fully supervised row: REC, PRE, F1, ME F1); **best-on-test** (the score threshold with the best pooled F1, tuned on the test folds:
F1 and the paper's F1(p)). A second table gives the pseudo-label and attention diagnostics
(``diag_*``, pwes.callbacks.diagnostics) of rows that have them. Below the tables, every pair
of rows whose means differ by more than twice their combined spread ``sqrt(s1^2 + s2^2)`` is
listed. Beside them, the paper's own rows for the dataset (Tables I and IX-XI, all proposals; a
``synthetic_X`` preset stands for X, ``--paper`` chooses another or none) with the paper's F1
orderings checked on the sweep's rows. Jobs the sweep defines but that never ran are ``missing``; jobs that left no usable
metrics.json are ``failed`` (with the reason).
Writes report.md, report.csv (mean, std, n per figure) and report.png (error bars) into the sweep
folder; when the jobs logged to W&B, also one W&B run of the sweep (``job_type=report``) with the
table and the plot (pwes.dashboard.log_report; ``--no-wandb`` skips it).

The command line only; collecting, statistics and rendering live in :mod:`pwes.results`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pwes.results import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pwes.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (outputs/multiruns/<name>), or a folder of runs (outputs/runs/<dataset>)")
    parser.add_argument("--paper", default="auto", metavar="auto|none|casme2|samm|casme3", help="whose published rows (Tables I, IX-XI) to show beside the sweep's: auto (default) takes the dataset the jobs ran on, synthetic_X standing for X")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the report as a W&B run (by default it is, when the jobs logged to W&B)")
    args = parser.parse_args(argv)
    warnings: list[str] = []
    try:
        text = write_report(args.sweep_dir, warnings, paper=args.paper)
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
