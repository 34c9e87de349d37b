"""End-to-end runs of `python -m pwes.train` on the tiny synthetic preset: outputs, resume after a
killed process, a two-value multirun with its report, W&B offline, and one-line errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

QUICK = ["dataset=synthetic_tiny", "trainer.max_steps=12", "dataset.pretrain_steps=6", "trainer.enable_progress_bar=false"]


def run_train(home: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PWES_HOME": str(home), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    flags = [o for o in overrides if o.startswith("-")]  # Hydra wants its flags before the overrides
    overrides = tuple(o for o in overrides if not o.startswith("-"))
    proc = subprocess.run([sys.executable, "-m", "pwes.train", *flags, *QUICK, *overrides], cwd=home, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def last_json_line(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """A finished fold=all run: its folder, the printed figures, and its standard output."""
    home = tmp_path_factory.mktemp("home")
    proc = run_train(home, "logger=csv", "run_name=ref")
    return home / "outputs" / "runs" / "synthetic_tiny" / "ref", last_json_line(proc.stdout), proc.stdout


def test_run_folder_holds_config_checkpoints_metrics_and_proposals(full_run: tuple[Path, dict, str]) -> None:
    run_dir, printed, output = full_run
    # the last line names the run folder and the files written
    assert output.strip().splitlines()[-1].endswith(f"run folder {run_dir}: metrics.json and proposals.csv (pooled), fold-<subject>/ (checkpoints/last.ckpt, metrics.json, proposals.csv), config.yaml")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == printed
    for key in ("recall", "precision", "f1", "tp", "fp", "fn", "me_f1", "f1_me_0.5", "f1_me_1.0", "f1_me_p"):
        assert key in metrics
    assert metrics["num_folds"] == 3 and metrics["num_videos"] == 6
    assert "max_steps: 12" in (run_dir / "config.yaml").read_text()
    fold_tp = 0
    for subject in ("s01", "s02", "s03"):
        fold = run_dir / f"fold-{subject}"
        assert (fold / "checkpoints" / "last.ckpt").stat().st_size > 0
        fold_metrics = json.loads((fold / "metrics.json").read_text())
        fold_tp += fold_metrics["tp"]
        rows = list(csv.DictReader(open(fold / "proposals.csv")))
        assert all(r["subject"] == subject == r["fold"] for r in rows)
        assert (fold / "logs" / "metrics.csv").exists()  # logger=csv
    assert fold_tp == metrics["tp"]  # pooled counts are the sums of the folds' counts
    # each fold records the CPU thread count it trained with (it changes float sums), the log says it
    threads = {json.loads((run_dir / f"fold-{s}" / "metrics.json").read_text())["torch_threads"] for s in ("s01", "s02", "s03")}
    assert len(threads) == 1 and metrics["torch_threads"] == (n := threads.pop()) >= 1
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        assert n == int(os.environ["OMP_NUM_THREADS"])
    assert f"on cpu ({n} thread" in output + (run_dir / "train.log").read_text()
    # and what it computed on (the kernels, and so the numbers, depend on the processor)
    platforms = {json.loads((run_dir / f"fold-{s}" / "metrics.json").read_text())["compute_platform"] for s in ("s01", "s02", "s03")}
    assert platforms == {metrics["compute_platform"]} and metrics["compute_platform"].endswith(f"torch {torch.__version__}")
    pooled = list(csv.DictReader(open(run_dir / "proposals.csv")))
    assert list(pooled[0]) == ["video", "subject", "fold", "onset", "offset", "score", "type"]
    assert len(pooled) == metrics["num_proposals"]


def test_me_findability_reads_a_finished_run(full_run: tuple[Path, dict, str], tmp_path: Path) -> None:
    run_dir, _, _ = full_run
    home = run_dir.parents[2]
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "me_findability.py"
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(script), str(run_dir), "--json", str(out)], cwd=home, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| attention (flow) |" in proc.stdout and "| suppressed TCAM ME |" in proc.stdout
    result = json.loads(out.read_text())
    funnel = result["funnel"]
    # proposals are runs of the attention's multi-top series, and calibration only removes some
    assert funnel["me"] >= funnel["candidate"] >= funnel["all"] >= funnel["calibrated"] >= 0
    # the same proposals and thresholds as the run itself: its pooled ME figures come back
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert funnel["me"] == metrics["me_tp"] + metrics["me_fn"]
    assert (funnel["all"], funnel["calibrated"]) == (metrics["me_tp"], metrics["calibrated_me_tp"])
    for row in result["curves"].values():
        assert all(0.0 <= v <= 1.0 for v in row.values() if v == v)  # NaN where a class is absent
    bad = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=home, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path}: not a pwes run folder (no config.yaml)"
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "fold-s02" / "checkpoints" / "last.ckpt").write_text("not a checkpoint")
    bad = subprocess.run([sys.executable, str(script), str(broken)], cwd=home, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {broken / 'fold-s02' / 'checkpoints' / 'last.ckpt'}: not a readable checkpoint (UnpicklingError)"


@pytest.mark.slow  # 77 s of a 20-min loaded suite; Ctrl-C resume stays fast (test_ctrl_c_says_what_is_kept_and_exits_130)
def test_killed_run_resumes_to_the_same_result(full_run: tuple[Path, dict, str], tmp_path: Path) -> None:
    _, reference, _ = full_run
    env = {**os.environ, "PWES_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "pwes.train", *QUICK, "logger=csv", "run_name=ref"]
    run_dir = tmp_path / "outputs" / "runs" / "synthetic_tiny" / "ref"
    first_fold = run_dir / "fold-s01" / "metrics.json"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not first_fold.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first_fold.exists() and not (run_dir / "metrics.json").exists()
    kept = first_fold.stat().st_mtime_ns
    proc = run_train(tmp_path, "logger=csv", "run_name=ref")
    assert first_fold.stat().st_mtime_ns == kept  # the finished fold was not retrained
    assert "fold s01: finished earlier, kept" in proc.stderr + proc.stdout
    assert last_json_line(proc.stdout) == reference


@pytest.mark.slow
def test_resume_refuses_a_different_config(full_run: tuple[Path, dict, str], tmp_path: Path) -> None:
    run_train(tmp_path, "logger=none", "run_name=x", "fold=s01")
    proc = run_train(tmp_path, "logger=none", "run_name=x", "fold=s01", "callbacks.mplg.threshold=0.5", check=False)
    assert proc.returncode == 2
    assert "different config" in proc.stderr and "callbacks" in proc.stderr


@pytest.mark.slow  # 62 s; tests/test_report.py's real multirun (slow) and fast report tests cover the rest
def test_multirun_and_report(tmp_path: Path) -> None:
    run_train(tmp_path, "-m", "logger=none", "fold=s01", "callbacks.mplg.threshold=0.6,0.8", "sweep_name=theta")
    sweep = tmp_path / "outputs" / "multiruns" / "theta"
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert len(jobs) == 2
    proc = subprocess.run([sys.executable, "-m", "pwes.report", str(sweep)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| callbacks.mplg.threshold | F1(0.5) | F1(1.0) | all: REC | all: PRE | all: F1 | calibrated: REC |")
    assert lines[2].startswith("| 0.6 |") and lines[3].startswith("| 0.8 |")
    assert (sweep / "report.csv").exists() and (sweep / "report.png").stat().st_size > 0
    assert (sweep / "report.md").read_text() == proc.stdout


@pytest.mark.slow  # 89 s: two whole trainings
def test_the_stored_threshold_uses_intervals_only_under_full_supervision(tmp_path: Path) -> None:
    run_train(tmp_path, "-m", "logger=none", "fold=s01", "model.supervision=point,full", "evaluation.calibration=auto,points", "sweep_name=cal")
    rules = {}
    for job in (tmp_path / "outputs" / "multiruns" / "cal").iterdir():
        overrides = (job / ".hydra" / "overrides.yaml").read_text() if (job / ".hydra").is_dir() else ""
        if "supervision" not in overrides:
            continue
        key = tuple(line.split("=")[1] for line in overrides.splitlines() if "supervision=" in line or "calibration=" in line)
        metadata = torch.load(job / "fold-s01" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["pwes"]
        rules[key] = metadata["score_threshold_rule"]
    assert rules == {("point", "auto"): "points", ("full", "auto"): "intervals", ("point", "points"): "points", ("full", "points"): "points"}


@pytest.mark.slow
def test_fold_sweep_is_pooled(tmp_path: Path) -> None:
    run_train(tmp_path, "-m", "logger=none", "fold=s01,s02", "sweep_name=folds")
    pooled = json.loads((tmp_path / "outputs" / "multiruns" / "folds" / "pooled" / "metrics.json").read_text())
    assert pooled["num_folds"] == 2 and pooled["num_videos"] == 4


def test_wandb_offline_writes_inside_the_run_folder(tmp_path: Path) -> None:
    env_proxy = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}  # any network use would fail
    os.environ.update(env_proxy)
    try:
        proc = run_train(tmp_path, "logger=wandb", "fold=s01", "run_name=wb")
    finally:
        for key in env_proxy:
            os.environ.pop(key, None)
    run_dir = tmp_path / "outputs" / "runs" / "synthetic_tiny" / "wb"
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(any(r.rglob("*.wandb")) for r in runs)  # the fold's run and the protocol run (tests/test_dashboard.py)
    assert not (tmp_path / "wandb").exists()
    assert "anonymous" not in proc.stdout + proc.stderr  # no W&B warning about a setting pwes never set


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["fold=s09"], "fold='s09' is not a subject"),
        (["dataset=casme2"], "dataset.root is not set"),
        (["dataset=casme2", "dataset.root=/nonexistent/set"], "/nonexistent/set: feature-set folder not found"),
    ],
)
def test_bad_settings_give_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    proc = run_train(tmp_path, "logger=none", *overrides, check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert (proc.stdout + proc.stderr).count(message) == 1  # once: no log ERROR copy of the line


def folder_state(run_dir: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file of a folder with its size, modification time and content."""
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return errors[0]


TINY = ("logger=none", "run_name=x", "fold=s02", "trainer.max_steps=3", "dataset.pretrain_steps=1")


@pytest.fixture(scope="module")
def finished_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished one-fold run (home, run folder) for the refused-resume tests."""
    home = tmp_path_factory.mktemp("refuse")
    run_train(home, *TINY)
    run_dir = home / "outputs" / "runs" / "synthetic_tiny" / "x"
    assert (run_dir / "fingerprint.json").exists() and (run_dir / "fold-s02" / "fingerprint.json").exists()
    return home, run_dir


def test_refused_resume_names_the_setting_and_leaves_the_folder_untouched(finished_tiny: tuple[Path, Path]) -> None:
    home, run_dir = finished_tiny
    before = folder_state(run_dir)
    assert ".hydra/overrides.yaml" in before and "train.log" in before
    error = one_error_line(run_train(home, *TINY, "seed=1", check=False))
    assert "was written by a different config (data.points.seed: 0 vs 1; seed: 0 vs 1)" in error and "run_name=NEW" in error
    assert folder_state(run_dir) == before  # .hydra/ and train.log included


def test_resume_after_the_annotations_changed_is_refused(finished_tiny: tuple[Path, Path]) -> None:
    home, run_dir = finished_tiny
    before = folder_state(run_dir)
    annotations = next((home / ".cache" / "synthetic").glob("tiny-*")) / "annotations.csv"
    lines = annotations.read_text().splitlines(keepends=True)
    annotations.write_text("".join(lines[:-1]))
    error = one_error_line(run_train(home, *TINY, check=False))
    assert f"the data changed since fold-s02 was trained (changed: annotations.csv ({annotations}))" in error and "run_name=NEW" in error
    assert folder_state(run_dir) == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # (every other bad count is checked without a process in test_protocol.py)
        (["trainer.max_steps=-1"], "trainer.max_steps=-1 must be at least 1"),
        (["seed=abc"], "seed='abc' must be a whole number"),
    ],
)
def test_bad_iteration_counts_and_seed_give_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    assert message in one_error_line(run_train(tmp_path, "logger=none", *overrides, check=False))
    assert not list((tmp_path / "outputs").rglob("fold-*"))  # nothing trained


def test_unwritable_output_folder_gives_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should go")
    env_home = blocker  # PWES_HOME under a file: the run folder cannot be created
    proc = subprocess.run([sys.executable, "-m", "pwes.train", *QUICK, "logger=none"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PWES_HOME": str(env_home)})
    error = one_error_line(proc)
    assert f"{blocker}/outputs/runs/synthetic_tiny" in error and "cannot write" in error and "PWES_HOME" in error


def test_ctrl_c_says_what_is_kept_and_exits_130(tmp_path: Path) -> None:
    env = {**os.environ, "PWES_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "trainer.max_steps=100000", "dataset.pretrain_steps=1", "trainer.enable_progress_bar=false", "logger=none", "run_name=c"]
    started = tmp_path / "outputs" / "runs" / "synthetic_tiny" / "c" / "fold-s01" / "fingerprint.json"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # inside the fold's training
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: no fold had finished in" in stderr and "resume with the same command: python -m pwes.train dataset=synthetic_tiny" in stderr
    assert "Traceback" not in stderr and not (started.parent / "metrics.json").exists()
