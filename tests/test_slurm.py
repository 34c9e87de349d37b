"""Fold sweeps through a real single-node SLURM (tests/slurm/cluster.sh: Debian's slurm-wlm and
munge, started for the session and stopped after it, nothing left running): Table IV's grid on two
thresholds x two folds of the tiny synthetic preset, one SLURM job per (theta, fold), pooled per
theta when the multirun ends, equal to the same sweep run locally; a job cancelled mid-fold and a
job requeued mid-fold (preemption) both end with the same pooled counts after a rerun of the same
command (the requeued one without any); the report renders the pooled figures; a partition the
cluster lacks is one error line.

Marked ``slurm`` (deselected by default; ``make test-slurm``). Skipped with the reason where the
packages are missing or the tests do not run as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm

CLUSTER = Path(__file__).parent / "slurm" / "cluster.sh"
SRC = Path(__file__).resolve().parents[1] / "src"
# Table IV's grid cut to two thresholds, swept together with two LOSO folds: four jobs. 100 steps:
# a fold trains for about 6 s here, long enough to be cancelled in the middle (KillWait=2 s).
SWEEP = [
    "-m", "experiment=table4", "callbacks.mplg.threshold=0.6,0.8", "fold=s01,s03", "dataset=synthetic_tiny",
    "trainer.max_steps=100", "dataset.pretrain_steps=50", "logger=none", "trainer.enable_progress_bar=false",
]
# Sized for a 2-core test machine: one core, 1 GB and no GPU per job; the setup lines run in
# each job before python (on a real cluster: module load / source .venv/bin/activate).
ON_SLURM = [
    "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=20", f'hydra.launcher.setup=["export PYTHONPATH={SRC}","export OMP_NUM_THREADS=1"]',
]
THETAS = ("callbacks.mplg.threshold=0.6", "callbacks.mplg.threshold=0.8")
BOOKKEEPING = ("failed_jobs", "missing_jobs", "complete")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running single-node SLURM; its environment (SLURM_CONF) for the commands that use it."""
    check = subprocess.run(["bash", str(CLUSTER), "check"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"no test SLURM: {check.stdout.strip() or check.stderr.strip()}")
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, f"the test cluster did not start:\n{start.stdout}\n{start.stderr}"
    env = {"SLURM_CONF": str(state / "slurm.conf")}
    try:
        yield env
    finally:
        stop = subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, text=True, timeout=180)
        assert stop.returncode == 0, f"the test cluster did not stop cleanly:\n{stop.stdout}\n{stop.stderr}"


def environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(extra or {}), "PWES_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "pwes.train", *SWEEP, *extra]


def sweep_dir(home: Path) -> Path:
    return home / "outputs" / "multiruns" / "table4_synthetic_tiny"


def pooled(home: Path) -> dict[str, dict]:
    """The pooled metrics.json of each threshold, by its override."""
    out = {}
    for theta in THETAS:
        paths = [p for p in (sweep_dir(home) / "pooled").glob("*/metrics.json") if theta in p.parent.name]
        assert len(paths) == 1, sorted((sweep_dir(home) / "pooled").glob("*"))
        out[theta] = json.loads(paths[0].read_text())
    return out


def figures(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in BOOKKEEPING}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The same sweep on this machine, one job after the other (Hydra's basic launcher)."""
    home = tmp_path_factory.mktemp("local")
    proc = subprocess.run(command(), cwd=home, env=environment(home), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = pooled(home)
    assert all(m["complete"] and m["num_folds"] == 2 for m in result.values())
    return result


def submit(home: Path, slurm: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*ON_SLURM, *extra), cwd=home, env=environment(home, slurm), capture_output=True, text=True, timeout=900)


def test_a_fold_sweep_on_slurm_pools_like_the_local_run(slurm: dict[str, str], local_run: dict[str, dict], tmp_path: Path) -> None:
    proc = submit(tmp_path, slurm)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 4  # four SLURM jobs returned
    assert "submitted 4 SLURM job(s)" in proc.stdout + proc.stderr
    [script] = sweep.glob(".submitit/*/*_submission.sh")  # one array (submitit caps %N at its size), sized by the launcher settings
    text = script.read_text()
    assert all(line in text for line in ("#SBATCH --array=0-3%4", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=1GB", "export OMP_NUM_THREADS=1"))
    assert "gpus" not in text and "--partition" not in text
    result = pooled(tmp_path)
    for theta in THETAS:
        assert result[theta]["complete"] and result[theta]["num_folds"] == 2
        assert figures(result[theta]) == figures(local_run[theta])  # exact counts and figures
    assert result[THETAS[0]]["tp"] + result[THETAS[0]]["fn"] == result[THETAS[0]]["num_ground_truth"]
    assert all(m["num_proposals"] > 0 for m in result.values())  # figures of real proposals, not of empty folds
    report = subprocess.run([sys.executable, "-m", "pwes.report", str(sweep)], cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    m = result[THETAS[1]]
    assert f"(tp={m['tp']} fp={m['fp']} fn={m['fn']}, 2 folds)" in report.stdout
    assert report.stdout.count("- pooled callbacks.mplg.threshold=") == 2 and "NOT IN THESE FIGURES" not in report.stdout


def job_mid_fold(sweep: Path, deadline: float) -> tuple[str, Path]:
    """The SLURM id and folder of a job that is training its fold (started, not finished)."""
    while time.time() < deadline:
        for record in sweep.glob("*/.hydra/hydra.yaml"):
            job = record.parent.parent
            folds = list(job.glob("fold-*/fingerprint.json"))
            if folds and not (folds[0].parent / "metrics.json").exists():
                job_id = str(yaml.safe_load(record.read_text())["hydra"]["job"]["id"])
                return job_id, job
        time.sleep(0.1)
    raise AssertionError(f"no job was seen mid-fold in {sweep}")


def scontrol_show(job_id: str, slurm: dict[str, str]) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], env={**os.environ, **slurm}, capture_output=True, text=True).stdout


def test_a_job_cancelled_mid_fold_is_reported_and_the_rerun_pools_the_same_counts(slurm: dict[str, str], local_run: dict[str, dict], tmp_path: Path) -> None:
    env = environment(tmp_path, slurm)
    proc = subprocess.Popen(command(*ON_SLURM), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_id, job = job_mid_fold(sweep_dir(tmp_path), time.time() + 600)
    subprocess.run(["scancel", job_id], env=env, check=True)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode != 0, stderr[-3000:]
    assert f"SLURM job {job_id} ended CANCELLED" in stderr and "1 of 4 job(s) failed" in stderr, stderr[-3000:]
    theta = next(t for t in THETAS if t in job.name)
    first = pooled(tmp_path)
    assert not first[theta]["complete"] and first[theta]["num_folds"] == 1  # the cancelled fold is not in the figures ...
    [failed] = first[theta]["failed_jobs"]  # ... and is listed, with its reason
    assert failed["fold"] in ("s01", "s03") and f"SLURM job {job_id} ended CANCELLED" in failed["reason"] and f"fold={failed['fold']}" in failed["overrides"]
    assert "INCOMPLETE: 1 failed, 0 unfinished" in stdout and first[theta]["missing_jobs"] == []
    finished = {p: p.stat().st_mtime_ns for p in sweep_dir(tmp_path).glob("*/fold-*/metrics.json")}
    assert len(finished) == 3
    rerun = submit(tmp_path, slurm)  # the same command
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # finished folds were kept, not retrained
    result = pooled(tmp_path)
    for t in THETAS:
        assert result[t]["complete"] and figures(result[t]) == figures(local_run[t])


def test_a_job_requeued_mid_fold_resumes_and_the_sweep_pools_the_same_counts(slurm: dict[str, str], local_run: dict[str, dict], tmp_path: Path) -> None:
    env = environment(tmp_path, slurm)
    proc = subprocess.Popen(command(*ON_SLURM), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_id, job = job_mid_fold(sweep_dir(tmp_path), time.time() + 600)
    subprocess.run(["scontrol", "requeue", job_id], env=env, check=True)  # what preemption with requeue does
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Restarts=1" in scontrol_show(job_id, slurm)  # it really ran twice
    result = pooled(tmp_path)
    for t in THETAS:
        assert result[t]["complete"] and figures(result[t]) == figures(local_run[t])


def test_a_partition_the_cluster_lacks_is_refused_in_one_line(slurm: dict[str, str], tmp_path: Path) -> None:
    proc = submit(tmp_path, slurm, "hydra.launcher.partition=nope")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "sbatch refused the 4 job(s)" in errors[0] and "Invalid partition name" in errors[0] and "hydra.launcher.partition" in errors[0]
