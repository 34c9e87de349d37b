"""End-to-end multiruns of `python -m pwes.train -m` on the tiny synthetic preset: an ad-hoc grid
resumes after Ctrl-C with the same command, a swept setting that does nothing (or a job that
cannot be composed) refuses the sweep before anything runs, and the end names the folder."""

from __future__ import annotations


import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_train_cli import run_train

GRID = ["-m", "logger=none", "trainer.max_steps=6", "dataset.pretrain_steps=3", "callbacks.mplg.threshold=0.6,0.8"]


def test_an_interrupted_ad_hoc_grid_resumes_with_the_same_command(tmp_path: Path) -> None:
    env = {**os.environ, "PWES_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "pwes.train", "-m", "dataset=synthetic_tiny", "trainer.enable_progress_bar=false", *GRID[1:]]
    multiruns = tmp_path / "outputs" / "multiruns"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    first = []
    while not first and time.time() < deadline and proc.poll() is None:
        first = list(multiruns.glob("*/0_*/fold-s01/metrics.json"))
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # while job 0 trains its second fold
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and first, stderr[-2000:]
    assert "kept 1 finished fold(s) (fold-s01)" in stderr and "resume with the same command: python -m pwes.train -m dataset=synthetic_tiny" in stderr
    kept = first[0].stat().st_mtime_ns
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(list(multiruns.iterdir())) == 1  # the same multirun folder, not a new one
    assert first[0].stat().st_mtime_ns == kept  # the finished fold was not retrained
    assert "[1/3] fold s01: finished earlier, kept" in rerun.stdout + rerun.stderr
    sweep = next(multiruns.iterdir())
    assert sweep.name == "callbacks.mplg.threshold=0.6,0.8,dataset.pretrain_steps=3,dataset=synthetic_tiny,trainer.max_steps=6"
    assert sorted(p.parent.name[:2] for p in sweep.glob("*/metrics.json")) == ["0_", "1_"]
    # the last line names the multirun folder and what it holds
    last = rerun.stdout.strip().splitlines()[-1]
    assert last.startswith(f"multirun folder {sweep}: 2 job(s) finished, each <job>/metrics.json, proposals.csv") and f"python -m pwes.report {sweep}" in last


def test_a_failed_fold_job_is_pooled_as_failed_with_its_reason(tmp_path: Path) -> None:
    proc = run_train(tmp_path, "-m", "logger=none", "fold=s01,s99", "sweep_name=folds", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    reason = "fold='s99' is not a subject of"
    assert "job #1 failed (" in proc.stderr and f"fold=s99 sweep_name=folds): {reason}" in proc.stderr
    assert "1 of 2 job(s) failed" in proc.stderr
    sweep = tmp_path / "outputs" / "multiruns" / "folds"
    pooled = json.loads((sweep / "pooled" / "metrics.json").read_text())
    fold = json.loads(next(sweep.glob("0_*/fold-s01/metrics.json")).read_text())
    assert pooled["num_folds"] == 1 and (pooled["tp"], pooled["fp"], pooled["fn"]) == (fold["tp"], fold["fp"], fold["fn"])
    assert pooled["complete"] is False and pooled["missing_jobs"] == []
    [failed] = pooled["failed_jobs"]
    assert failed["fold"] == "s99" and failed["reason"].startswith(reason) and "fold=s99" in failed["overrides"]
    assert "INCOMPLETE: 1 failed, 0 unfinished fold job(s) not in these figures" in proc.stdout
    report = subprocess.run([sys.executable, "-m", "pwes.report", str(sweep)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and f"NOT IN THESE FIGURES: fold s99 failed: {reason}" in report.stdout, report.stderr[-2000:]


def assert_refused(proc: subprocess.CompletedProcess, home: Path) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (home / "outputs").exists()  # nothing ran, no folder left behind
    return errors[0]


def test_a_swept_setting_that_does_nothing_refuses_the_sweep(tmp_path: Path) -> None:
    error = assert_refused(run_train(tmp_path, *GRID, "ablation=baseline", "fold=s01", check=False), tmp_path)
    assert "callbacks.mplg.threshold is swept, but in the job callbacks.mplg.threshold=0.6 the mplg callback does nothing under model.supervision=video" in error
    assert "identical models" in error


def test_a_grid_job_without_the_callback_refuses_the_sweep(tmp_path: Path) -> None:
    proc = run_train(tmp_path, "-m", "logger=none", "fold=s01", "ablation=mplg,mplg_dfcl", "callbacks.dfcl.temperature=0.5", check=False)
    error = assert_refused(proc, tmp_path)
    assert error == "error: job ablation=mplg: cannot be composed: callbacks.dfcl.temperature=0.5: there is no dfcl callback in this job's setup (conf/callbacks/)"
