"""The SLURM launcher of ``hydra/launcher=slurm``: Hydra's submitit launcher, changed where a
fold sweep on a real cluster needs it.

* **Every job is waited for.** submitit's launcher returns the jobs' results in order and stops at
  the first job that ended without one (cancelled, timed out, out of memory, node failure): the
  multirun then exits while the other jobs still run and nothing is pooled. Here each job that
  ends without a result becomes a failed job whose reason names its SLURM state and log, and the
  sweep's pooling step (pwes.sweep) reports it.
* **Clusters without accounting.** submitit reads job states from ``sacct``; where the cluster
  runs no accounting daemon (sacct: "accounting storage is disabled", as on the single-node test
  cluster of tests/slurm/cluster.sh) the states come from ``squeue`` instead. Without either a
  cancelled job would be waited for forever.

Hydra instantiates launchers only from the ``hydra_plugins`` package, so the class Hydra sees
is ``hydra_plugins.pwes_plugins.SlurmLauncher``, a subclass of :class:`FoldJobSlurmLauncher`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf
from submitit.slurm.slurm import SlurmInfoWatcher

log = logging.getLogger("pwes")

WATCH_SECONDS = 30  # longest wait between two state queries (submitit's default: 600)


class JobEndedWithoutResult(RuntimeError):
    """A SLURM job that ended (cancelled, timed out, killed) without returning its result."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = message


class StateWatcher(SlurmInfoWatcher):
    """submitit's job-state watcher, with ``squeue`` where ``sacct`` is unavailable."""

    def update(self) -> None:
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        ids = sorted({x.split("_")[0] for x in self._registered - self._finished})
        try:
            sacct = subprocess.run(command, capture_output=True, text=True, timeout=60)
            if sacct.returncode == 0:
                self._info_dict.update(self.read_info(sacct.stdout))
            else:
                self._info_dict.update(squeue_states(ids))
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("job states could not be read (%s); retrying", err)
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


def squeue_states(ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{"12_0": {"JobID": "12_0", "State": "RUNNING", "NodeList": "n1"}, ...}`` from squeue,
    finished jobs included while the controller still lists them (MinJobAge)."""
    if not ids:
        return {}
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%N", "-j", ",".join(ids)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        log.warning("squeue failed (%s); job states unchanged", out.stderr.strip())
        return {}
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = {"JobID": parts[0], "State": parts[1], "NodeList": parts[2]}
    return states


class FoldJobSlurmLauncher(SubmititSlurmLauncher):
    """submitit's SLURM launcher that waits for every job and turns a job that ended without a
    result into a failed job with its reason (see the module docstring)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        params = dict(self.params)
        init_params: dict[str, Any] = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init_params["slurm_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k not in ("submitit_folder", "max_num_timeout")})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            jobs = executor.map_array(self, *zip(*job_params))
        except (submitit.core.utils.FailedJobError, OSError) as err:  # sbatch refused (or is missing)
            text = " ".join(str(err).split()) or type(err).__name__
            print(f"error: sbatch refused the {len(job_params)} job(s): {text}; check hydra.launcher.partition, account, qos, gpus_per_node/gres, mem_gb and timeout_min (docs/cluster.md)", file=sys.stderr)
            sys.exit(2)
        watcher = StateWatcher(delay_s=WATCH_SECONDS)
        for job in jobs:
            job.watcher = watcher
        log.info("submitted %d SLURM job(s) (%s); waiting for all of them (their logs: %s)", len(jobs), ", ".join(j.job_id for j in jobs[:3]) + (", ..." if len(jobs) > 3 else ""), Path(str(params["submitit_folder"])).parent)
        return [self._result(job, list(overrides)) for job, overrides in zip(jobs, job_overrides)]

    @staticmethod
    def _result(job: Any, overrides: list[str]) -> JobReturn:
        """The job's JobReturn, or a failed one naming why it has none."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.results()[0]
        except FailedJobError as err:  # raised outside Hydra's job wrapper (e.g. an import error)
            reason = f"SLURM job {job.job_id} failed before pwes ran: {last_line(str(err))} (log: {job.paths.stderr})"
        except UncompletedJobError:
            reason = f"SLURM job {job.job_id} ended {job.state} without a result (log: {job.paths.stderr})"
        ret = JobReturn(overrides=overrides, status=JobStatus.FAILED)
        ret.return_value = JobEndedWithoutResult(reason)
        return ret


def last_line(text: str) -> str:
    """The last meaningful line of a traceback (the exception), for a one-line reason."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or [""])[-1]
