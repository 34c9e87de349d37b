"""End-to-end `python -m pwes.train` runs of the Table IX comparators on the tiny synthetic preset:
each ablation trains a fold, logs its own loss terms and writes its figures; experiment=table9
runs its six jobs and pwes.report tabulates them (slow)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

QUICK = ["dataset=synthetic_tiny", "fold=s01", "trainer.max_steps=6", "dataset.pretrain_steps=2", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "logger=csv", "~callbacks.diagnostics", "~callbacks.grad_share"]


def run(home: Path, *args: str, module: str = "pwes.train") -> subprocess.CompletedProcess:
    env = {**os.environ, "PWES_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=home, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.mark.parametrize(
    ("ablation", "terms"),
    [
        ("sfnet", ["train/loss_sfnet_actionness", "train/pseudo_bg"]),
        ("lacp", ["train/loss_lacp_score", "train/pseudo_bg"]),
        ("mcwes", ["train/loss_feature_consistency", "train/loss_duration_consistency"]),
    ],
)
def test_each_comparator_trains_a_fold_from_the_command_line(tmp_path: Path, ablation: str, terms: list[str]) -> None:
    run(tmp_path, f"ablation={ablation}", "run_name=cmp", *QUICK)
    run_dir = tmp_path / "outputs" / "runs" / "synthetic_tiny" / "cmp"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_folds"] == 1 and 0.0 <= metrics["f1"] <= 1.0 and "calibrated_f1" in metrics and "f1_p" in metrics
    rows = list(csv.DictReader(open(next(run_dir.glob("fold-s01/**/metrics.csv")))))
    for term in terms:
        values = [float(r[term]) for r in rows if r.get(term)]
        assert values and all(v == v for v in values), term  # logged, finite
    supervision = "video" if ablation == "mcwes" else "point"
    assert f"supervision: {supervision}" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_table9_runs_its_six_jobs_and_reports_them(tmp_path: Path) -> None:
    run(tmp_path, "-m", "experiment=table9", *QUICK)
    sweep = tmp_path / "outputs" / "multiruns" / "table9_synthetic_tiny"
    report = run(tmp_path, str(sweep), module="pwes.report").stdout
    for ablation in ("mplg_dfcl", "sfnet", "lacp", "mcwes", "baseline", "full"):
        assert f"| {ablation} " in report, ablation
    assert "failed" not in report and "missing" not in report
