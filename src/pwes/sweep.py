"""Pooling across the jobs of a multirun that sweeps ``fold`` (one job per subject, e.g. on a
SLURM array): a Hydra callback that, when the multirun ends, pools each group of jobs that
differ only in ``fold`` into ``<sweep dir>/pooled[/<group>]/metrics.json`` and ``proposals.csv``."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pwes import io
from pwes.config import run_name_from_overrides
from pwes.evaluation.megc import MatchConfig
from pwes.report import ReportError, read_override_list

log = logging.getLogger("pwes")


def job_overrides(job_dir: Path) -> list[str]:
    """The command-line overrides Hydra recorded for a job (empty when none are recorded);
    :class:`pwes.report.ReportError` naming the file when it is not a YAML list of strings."""
    path = job_dir / ".hydra" / "overrides.yaml"
    return read_override_list(path) if path.exists() else []


def fold_groups(sweep_dir: Path) -> dict[str, list[Path]]:
    """Jobs of a sweep grouped by their overrides other than ``fold``; a job whose record cannot
    be read is left out with a warning naming the file."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for job_dir in sorted(p for p in sweep_dir.iterdir() if (p / "config.yaml").exists()):
        try:
            overrides = job_overrides(job_dir)
        except ReportError as err:
            log.warning("not pooled: %s", err)
            continue
        rest = [o for o in overrides if not o.lstrip("+~").startswith(("fold=", "sweep_name="))]  # sweep_name: the same in every job
        groups[run_name_from_overrides(",".join(rest))].append(job_dir)
    return groups


def pool_sweep(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Pool every group of single-fold jobs in ``sweep_dir``; returns the pooled figures by group."""
    from pwes.protocol import pool_folds, resolve_feature_set, write_proposals

    groups = {k: v for k, v in fold_groups(sweep_dir).items() if len(v) > 1}
    results: dict[str, dict[str, Any]] = {}
    for name, jobs in groups.items():
        configs = [OmegaConf.create(yaml.safe_load((j / "config.yaml").read_text())) for j in jobs]
        if any(str(c.fold) in ("all", "none") for c in configs):
            continue
        fold_dirs = [j / f"fold-{c.fold}" for j, c in zip(jobs, configs)]
        done = [d for d in fold_dirs if (d / "metrics.json").exists()]
        missing = [d.parent.name for d in fold_dirs if d not in done]
        if not done:
            continue
        feature_set = resolve_feature_set(configs[0])
        metrics, proposals = pool_folds(done, feature_set, MatchConfig(**OmegaConf.to_container(configs[0].evaluation, resolve=True)))
        metrics["missing_jobs"] = missing
        out = sweep_dir / "pooled" / (name if len(groups) > 1 else "")
        write_proposals(out / "proposals.csv", proposals, feature_set)
        io.write_json(out / "metrics.json", metrics)
        results[name] = metrics
        log.info("pooled %d fold job(s) of %s into %s%s", len(done), name, out, f" ({len(missing)} missing)" if missing else "")
    return results


class PoolFoldSweep(Callback):
    """Hydra callback: when a multirun ends, pool its fold sweeps (nothing to do for other
    sweeps), then name the multirun folder and what it holds."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        pooled: dict[str, dict[str, Any]] = {}
        if sweep_dir.is_dir():
            pooled = pool_sweep(sweep_dir)
            for name, metrics in pooled.items():
                calibrated = f" calibrated_f1={metrics['calibrated_f1']:.3f}" if "calibrated_f1" in metrics else ""
                print(f"pooled {name}: f1={metrics['f1']:.3f} recall={metrics['recall']:.3f} precision={metrics['precision']:.3f}{calibrated} f1_p={metrics['f1_p']:.3f} (best-on-test)")
        print(multirun_summary(sweep_dir, bool(pooled)))


def multirun_summary(sweep_dir: Path, pooled: bool) -> str:
    """One line naming the multirun folder and the files its jobs wrote."""
    finished = len(list(sweep_dir.glob("*/metrics.json"))) + len(list(sweep_dir.glob("*/model/checkpoints/last.ckpt")))
    parts = [f"multirun folder {sweep_dir}: {finished} job(s) finished, each <job>/metrics.json, proposals.csv and fold-<subject>/"]
    if pooled:
        parts.append("pooled/metrics.json and proposals.csv (fold sweep)")
    parts.append(f"report: {sweep_dir / 'report.md'}" if (sweep_dir / "report.md").exists() else f"table: python -m pwes.report {sweep_dir}")
    return "; ".join(parts)
