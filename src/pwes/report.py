"""Tabulate a multirun the way the paper's tables read.

    python -m pwes.report outputs/multiruns/table4_synthetic_casme2

One row per job: the swept setting(s) first, then F1(0.5), F1(1.0), F1(p), REC, PRE, F1. Jobs
that the sweep defines but that never ran are ``missing``; jobs that started but left no
metrics.json are ``failed``. Writes report.md, report.csv and report.png into the sweep folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pwes import io

COLUMNS = (("F1(0.5)", "f1_me_0.5"), ("F1(1.0)", "f1_me_1.0"), ("F1(p)", "f1_me_p"), ("REC", "recall"), ("PRE", "precision"), ("F1", "f1"))


class ReportError(ValueError):
    """The folder is not a multirun folder, or its files are unreadable."""


@dataclass
class JobRow:
    """One job of the sweep: its overrides, status and figures."""

    overrides: dict[str, str]
    status: str  # ok, failed, missing
    metrics: dict[str, Any] = field(default_factory=dict)
    folder: str = ""


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def expected_jobs(sweep_dir: Path) -> list[dict[str, str]]:
    """The jobs the sweep defines (from multirun.yaml: sweeper params and command-line sweeps)."""
    path = sweep_dir / "multirun.yaml"
    if not path.exists():
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config = yaml.safe_load(path.read_text()) or {}
    hydra_cfg = config.get("hydra", {})
    task = list(hydra_cfg.get("overrides", {}).get("task", []) or [])
    params = hydra_cfg.get("sweeper", {}).get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + task
    parsed = OverridesParser.create().parse_overrides(lines)
    axes: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        axes[key.lstrip("+~")] = values  # later (command line) wins, as in Hydra
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def collect(sweep_dir: Path) -> list[JobRow]:
    """Every job of the sweep, ran or not, in job order."""
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: folder not found")
    found: list[JobRow] = []
    # Job folders sit directly in the sweep folder; older sweeps with '/' in an override value
    # (model/mplg=c) nested them one level deeper, so look two levels down.
    jobs = [p.parent.parent for p in [*sweep_dir.glob("*/.hydra/overrides.yaml"), *sweep_dir.glob("*/*/.hydra/overrides.yaml")]]
    for job_dir in sorted(jobs, key=lambda p: (len(p.relative_to(sweep_dir).parts[0].split("_")[0]), str(p))):
        overrides = dict(_split(o) for o in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or [])
        metrics_path = job_dir / "metrics.json"
        if metrics_path.exists():
            try:
                metrics = json.loads(metrics_path.read_text())
            except json.JSONDecodeError as err:
                raise ReportError(f"{metrics_path}: not valid JSON ({err.msg})") from None
            found.append(JobRow(overrides, "ok", metrics, str(job_dir.relative_to(sweep_dir))))
        else:
            found.append(JobRow(overrides, "failed", folder=str(job_dir.relative_to(sweep_dir))))
    expected = expected_jobs(sweep_dir)
    if not found and not expected:
        raise ReportError(f"{sweep_dir}: no Hydra jobs found (expected subfolders with .hydra/overrides.yaml, or multirun.yaml)")
    rows = list(found)
    for combo in expected:
        if not any(all(job.overrides.get(k) == v for k, v in combo.items()) for job in found):
            rows.append(JobRow(combo, "missing"))
    return rows


def swept_keys(rows: list[JobRow]) -> list[str]:
    """Overrides whose value differs between jobs: the first columns of the table."""
    keys = list(dict.fromkeys(k for r in rows for k in r.overrides))
    return [k for k in keys if len({r.overrides.get(k) for r in rows}) > 1] or keys[:1]


def table(rows: list[JobRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the report."""
    keys = swept_keys(rows)
    header = [*keys, *(name for name, _ in COLUMNS), "status"]
    cells = []
    for row in rows:
        values = [row.overrides.get(k, "") for k in keys]
        if row.status == "ok":
            values += [f"{float(row.metrics[key]):.3f}" if key in row.metrics else "" for _, key in COLUMNS]
        else:
            values += [row.status] * len(COLUMNS)
        cells.append(values + [row.status])
    return header, cells


def markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def plot(rows: list[JobRow], path: Path) -> None:
    """F1 (and ME F1(0.5)) against the swept value(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = swept_keys(rows)
    ok = [r for r in rows if r.status == "ok"]
    labels = [",".join(r.overrides.get(k, "") for k in keys) for r in ok]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(ok) + 2), 3.2))
    xs = range(len(ok))
    ax.plot(xs, [float(r.metrics.get("f1", 0)) for r in ok], "o-", label="F1")
    ax.plot(xs, [float(r.metrics.get("f1_me_0.5", 0)) for r in ok], "s--", label="F1(0.5) (ME)")
    ax.set_xticks(list(xs), labels, rotation=30, ha="right")
    ax.set_xlabel(", ".join(keys))
    ax.set_ylabel("F1")
    ax.set_ylim(0, max([0.05] + [float(r.metrics.get("f1", 0)) for r in ok]) * 1.2)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with io.atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def write_report(sweep_dir: Path) -> str:
    """Write report.md, report.csv and report.png into ``sweep_dir``; return the Markdown."""
    rows = collect(sweep_dir)
    header, cells = table(rows)
    text = markdown(header, cells)
    pooled = sweep_dir / "pooled" / "metrics.json"
    if pooled.exists():
        metrics = json.loads(pooled.read_text())
        text += "\nPooled over the fold jobs: " + ", ".join(f"{name} {float(metrics[key]):.3f}" for name, key in COLUMNS if key in metrics) + "\n"
    io.write_text(sweep_dir / "report.md", text)
    io.write_csv(sweep_dir / "report.csv", header, cells)
    if any(r.status == "ok" for r in rows):
        plot(rows, sweep_dir / "report.png")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pwes.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (outputs/multiruns/<name>)")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.sweep_dir), end="")
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
