"""`python -m pwes.report` on a hand-built multirun folder: rows per job, failed and missing jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pwes.report import collect, write_report


def make_job(sweep: Path, name: str, overrides: list[str], metrics: dict | None) -> None:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "config.yaml").write_text("fold: all\n")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def metrics(f1: float) -> dict:
    return {"f1_me_0.5": 0.1, "f1_me_1.0": 0.05, "f1_me_p": 0.0, "recall": 0.3, "precision": 0.4, "f1": f1}


def make_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    multirun = {"hydra": {"overrides": {"task": ["dataset=synthetic_tiny", "model.mplg.threshold=0.5,0.7,0.9"]}, "sweeper": {"params": None}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    make_job(sweep, "0_model.mplg.threshold=0.5", ["dataset=synthetic_tiny", "model.mplg.threshold=0.5"], metrics(0.25))
    make_job(sweep, "1_model.mplg.threshold=0.7", ["dataset=synthetic_tiny", "model.mplg.threshold=0.7"], None)  # crashed
    return sweep  # 0.9 never ran


def test_rows_statuses_and_order(tmp_path: Path) -> None:
    rows = collect(make_sweep(tmp_path))
    assert [(r.overrides["model.mplg.threshold"], r.status) for r in rows] == [("0.5", "ok"), ("0.7", "failed"), ("0.9", "missing")]


def test_report_files(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    text = write_report(sweep)
    lines = text.splitlines()
    assert lines[0] == "| model.mplg.threshold | F1(0.5) | F1(1.0) | F1(p) | REC | PRE | F1 | status |"
    assert lines[2] == "| 0.5 | 0.100 | 0.050 | 0.000 | 0.300 | 0.400 | 0.250 | ok |"
    assert lines[3].startswith("| 0.7 | failed |") and lines[4].startswith("| 0.9 | missing |")
    assert (sweep / "report.csv").read_text().splitlines()[1] == "0.5,0.100,0.050,0.000,0.300,0.400,0.250,ok"
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_errors_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pwes.report", str(tmp_path / "nope")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nope'}: folder not found"
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "pwes.report", str(tmp_path / "empty")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no Hydra jobs found" in proc.stderr
