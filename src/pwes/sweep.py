"""Pooling across the jobs of a multirun that sweeps ``fold`` (one job per subject, e.g. on a
SLURM array): when the multirun ends, each group of jobs that differ only in ``fold`` is pooled
into ``<sweep dir>/pooled[/<group>]/metrics.json`` and ``proposals.csv``.

Hydra's basic sweeper stops at the first failed job and skips the end-of-multirun callbacks, so
one failed fold would leave the others unpooled. pwes's sweeper (``hydra/sweeper=pwes``, the
default; Hydra sees it as ``hydra_plugins.pwes_plugins.PoolingSweeper``) runs the grid the same
way, then pools what finished and records each failed job, with its reason, in the pooled
``metrics.json`` of its group (``failed_jobs``, ``complete: false``) before the multirun exits
with an error: a failed fold is never silently left out of pooled figures."""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pwes import io
from pwes.config import run_name_from_overrides
from pwes.results.collect import ReportError, read_override_list

log = logging.getLogger("pwes")


def job_overrides(job_dir: Path) -> list[str]:
    """The command-line overrides Hydra recorded for a job (empty when none are recorded);
    :class:`pwes.results.collect.ReportError` naming the file when it is not a YAML list of strings."""
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
        groups[group_key(overrides)].append(job_dir)
    return groups


def group_key(overrides: Sequence[str]) -> str:
    """The pooling group of a job: its overrides other than ``fold`` (and ``sweep_name``)."""
    rest = [o for o in overrides if not o.lstrip("+~").startswith(("fold=", "sweep_name="))]  # sweep_name: the same in every job
    return run_name_from_overrides(",".join(rest))


def failed_entry(overrides: Sequence[str], reason: str) -> dict[str, str]:
    """A failed job as the pooled metrics.json lists it."""
    fold = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").startswith("fold=")), "")
    return {"fold": fold, "overrides": " ".join(o for o in overrides if not o.startswith("sweep_name=")), "reason": reason}


def pool_sweep(sweep_dir: Path, failed: Sequence[tuple[Sequence[str], str]] = ()) -> dict[str, dict[str, Any]]:
    """Pool every group of single-fold jobs in ``sweep_dir``; returns the pooled figures by group.
    ``failed`` (each failed job's overrides and reason) are listed in their group's figures."""
    # imported here: Hydra imports this module (hydra_plugins.pwes_plugins) at every start-up
    from pwes.evaluation.megc import MatchConfig
    from pwes.protocol import resolve_feature_set
    from pwes.scoring import pool_folds, write_proposals

    failures: dict[str, list[dict[str, str]]] = defaultdict(list)
    for overrides, reason in failed:
        failures[group_key(overrides)].append(failed_entry(overrides, reason))
    found = fold_groups(sweep_dir)
    groups = {k: v for k, v in found.items() if len(v) + len(failures.get(k, [])) > 1}
    results: dict[str, dict[str, Any]] = {}
    for name, jobs in groups.items():
        configs = [OmegaConf.create(yaml.safe_load((j / "config.yaml").read_text())) for j in jobs]
        if any(str(c.fold) in ("all", "none") for c in configs):
            continue
        fold_dirs = [j / f"fold-{c.fold}" for j, c in zip(jobs, configs)]
        done = [d for d in fold_dirs if (d / "metrics.json").exists()]
        failed_folds = {entry["fold"] for entry in failures.get(name, [])}
        # unfinished without a failure to name (a crashed earlier run): listed by folder
        missing = [d.parent.name for d in fold_dirs if d not in done and d.name[len("fold-"):] not in failed_folds]
        if not done:
            continue
        feature_set = resolve_feature_set(configs[0])
        metrics, proposals = pool_folds(done, feature_set, MatchConfig(**OmegaConf.to_container(configs[0].evaluation, resolve=True)))
        metrics["missing_jobs"] = missing
        metrics["failed_jobs"] = failures.get(name, [])
        metrics["complete"] = not missing and not metrics["failed_jobs"]
        out = sweep_dir / "pooled" / (name if len(groups) > 1 else "")
        write_proposals(out / "proposals.csv", proposals, feature_set)
        io.write_json(out / "metrics.json", metrics)
        results[name] = metrics
        log.info("pooled %d fold job(s) of %s into %s%s", len(done), name, out, f" ({len(missing)} missing)" if missing else "")
    for name, entries in failures.items():
        if name not in results:  # no finished fold to pool: still say so
            for entry in entries:
                log.warning("not pooled: %s has no finished fold; job %s failed: %s", name, entry["overrides"], entry["reason"])
    return results


class PoolFoldSweep(Callback):
    """Hydra callback: when a multirun ends, pool its fold sweeps (nothing to do for other
    sweeps), then name the multirun folder and what it holds."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        finish_multirun(Path(config.hydra.sweep.dir))


def finish_multirun(sweep_dir: Path, failed: Sequence[tuple[Sequence[str], str]] = ()) -> None:
    """Pool the fold sweeps, print each group's figures (and its failed folds), and the summary."""
    pooled: dict[str, dict[str, Any]] = {}
    if sweep_dir.is_dir():
        pooled = pool_sweep(sweep_dir, failed)
        for name, metrics in pooled.items():
            calibrated = f" calibrated_f1={metrics['calibrated_f1']:.3f}" if "calibrated_f1" in metrics else ""
            incomplete = "" if metrics["complete"] else f" INCOMPLETE: {len(metrics['failed_jobs'])} failed, {len(metrics['missing_jobs'])} unfinished fold job(s) not in these figures"
            print(f"pooled {name}: f1={metrics['f1']:.3f} recall={metrics['recall']:.3f} precision={metrics['precision']:.3f}{calibrated} f1_p={metrics['f1_p']:.3f} (best-on-test){incomplete}")
    print(multirun_summary(sweep_dir, bool(pooled)))


class SweepJobsFailed(CompactHydraException):
    """Some jobs of the multirun failed (listed above, and in the pooled figures)."""


class PoolingSweeperBase(BasicSweeper):
    """Hydra's basic sweeper, except that a failed job does not stop the pooling (module
    docstring): every batch runs, then the failed jobs are printed with their reasons, the fold
    sweeps pooled with them listed, and the multirun fails naming how many failed."""

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(self._parse_config() + list(arguments)), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: list[Sequence[JobReturn]] = []
        failed: list[tuple[Sequence[str], str]] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for index, result in enumerate(results, start=initial_job_idx):
                if result.status != JobStatus.COMPLETED:
                    reason = failure_reason(result._return_value)
                    failed.append((list(result.overrides or batch[index - initial_job_idx]), reason))
                    print(f"job #{index} failed ({' '.join(filter_overrides(failed[-1][0]))}): {reason}", file=sys.stderr)
            initial_job_idx += len(batch)
            returns.append(results)
        if failed:
            finish_multirun(sweep_dir, failed)
            raise SweepJobsFailed(f"{len(failed)} of {initial_job_idx} job(s) failed (listed above; the pooled metrics.json of their setting lists them under failed_jobs); the same command reruns them and keeps the finished folds")
        return returns


def failure_reason(error: Any) -> str:
    """One line saying why a job failed (pwes's own errors carry it as ``reason``)."""
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason)
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def multirun_summary(sweep_dir: Path, pooled: bool) -> str:
    """One line naming the multirun folder and the files its jobs wrote."""
    finished = len([p for p in sweep_dir.glob("*/metrics.json") if p.parent.name != "pooled"]) + len(list(sweep_dir.glob("*/model/checkpoints/last.ckpt")))
    parts = [f"multirun folder {sweep_dir}: {finished} job(s) finished, each <job>/metrics.json, proposals.csv and fold-<subject>/"]
    if pooled:
        parts.append("pooled/metrics.json and proposals.csv (fold sweep)")
    parts.append(f"report: {sweep_dir / 'report.md'}" if (sweep_dir / "report.md").exists() else f"table: python -m pwes.report {sweep_dir}")
    return "; ".join(parts)
