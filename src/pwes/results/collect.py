"""Collecting a multirun folder: every job the sweep defines, ran or not, with its recorded
overrides and figures, and the fold sweep's pooled figures (pwes.sweep).

The layout read is the one Hydra writes with conf/hydra/default.yaml: ``<sweep>/multirun.yaml``
and one job folder ``<num>_<safe name>/`` per job directly in the sweep folder, holding
``.hydra/overrides.yaml`` and (once finished) ``metrics.json``; pooled fold sweeps add
``pooled/metrics.json`` or ``pooled/<setting>/metrics.json``. Unusable files never raise past
here: they mark their job ``failed`` with the reason, or add a warning line.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


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


def read_metrics(path: Path) -> tuple[dict[str, Any] | None, str]:
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
    jobs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    # job order: by the number Hydra prefixes (its digit count first, so 10_ follows 9_)
    for job_dir in sorted(jobs, key=lambda p: (len(p.name.split("_")[0]), str(p))):
        folder = job_dir.name
        try:
            overrides = read_overrides(job_dir / ".hydra" / "overrides.yaml")
        except ReportError as err:
            found.append(JobRow({}, "failed", folder=folder, reason=str(err)))
            continue
        metrics_path = job_dir / "metrics.json"
        if not metrics_path.exists():
            found.append(JobRow(overrides, "failed", folder=folder, reason="no metrics.json (crashed or still running)"))
            continue
        metrics, reason = read_metrics(metrics_path)
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


def pooled_metrics(sweep_dir: Path, warnings: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The fold sweep's pooled figures as (setting, metrics): ``""`` for ``pooled/metrics.json``,
    the folder name for each ``pooled/<setting>/metrics.json``. An unusable file adds a line to
    ``warnings`` and is left out."""
    paths = [sweep_dir / "pooled" / "metrics.json"] + sorted((sweep_dir / "pooled").glob("*/metrics.json"))
    found = []
    for path in (p for p in paths if p.exists()):
        metrics, reason = read_metrics(path)
        if metrics is None:
            warnings.append(f"{path}: {reason.split(': ', 1)[1]}")
            continue
        found.append(("" if path.parent.name == "pooled" else path.parent.name, metrics))
    return found
