"""pwes.rescore and pwes.select end to end on runs trained by the real CLI (synthetic_tiny):
re-scoring with unchanged settings reproduces a run exactly and never writes into it; a changed
proposal setting changes the figures; nested selection picks per fold by validation figures only
and pools the chosen folds like a run."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from pwes import rescore, select
from pwes.protocol import resolve_feature_set
from pwes.scoring import match_config, pool_folds

QUICK = ["dataset=synthetic_tiny", "trainer.max_steps=12", "dataset.pretrain_steps=6", "trainer.enable_progress_bar=false", "logger=none"]


def run(home: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PWES_HOME": str(home), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=home, env=env, capture_output=True, text=True, timeout=600)


def call(capsys: pytest.CaptureFixture, module: object, *args: str) -> subprocess.CompletedProcess:
    """The command's ``main`` in this process (no interpreter start-up): returncode, stdout, stderr."""
    code = module.main(list(args))  # type: ignore[attr-defined]
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A default run (one fold, to save time) and one with a validation subject per fold (all
    three), trained by pwes.train."""
    home = tmp_path_factory.mktemp("home")
    for name, extra in (("plain", ["fold=s02"]), ("val", ["evaluation.validation_subjects=1"])):
        proc = run(home, "pwes.train", *QUICK, f"run_name={name}", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs_dir = home / "outputs" / "runs" / "synthetic_tiny"
    return home, runs_dir / "plain", runs_dir / "val"


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("which", ["plain", "val"])
def test_unchanged_settings_reproduce_the_run_exactly_and_leave_it_untouched(runs: tuple[Path, Path, Path], tmp_path: Path, which: str, capsys: pytest.CaptureFixture) -> None:
    home, plain, val = runs
    run_dir = plain if which == "plain" else val
    before = snapshot(run_dir)
    out = tmp_path / "again"
    args = (str(run_dir), "--out", str(out))
    proc = run(home, "pwes.rescore", *args) if which == "plain" else call(capsys, rescore, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert snapshot(run_dir) == before  # not one file of the run written or touched
    assert json.loads((out / "metrics.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == json.loads((run_dir / "metrics.json").read_text())
    assert (out / "proposals.csv").read_bytes() == (run_dir / "proposals.csv").read_bytes()
    for subject in ("s02",) if which == "plain" else ("s01", "s02", "s03"):
        new, old = out / f"fold-{subject}", run_dir / f"fold-{subject}"
        assert json.loads((new / "metrics.json").read_text()) == json.loads((old / "metrics.json").read_text())
        assert (new / "proposals.csv").read_bytes() == (old / "proposals.csv").read_bytes()
    if which == "val":
        assert "val_f1" in json.loads((out / "metrics.json").read_text())
    assert yaml.safe_load((out / "config.yaml").read_text()) == yaml.safe_load((run_dir / "config.yaml").read_text())


def test_a_changed_proposal_setting_changes_the_figures(runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture) -> None:
    home, plain, _ = runs
    proc = call(capsys, rescore, str(plain), "proposals.k_max_ratio=0.1", "evaluation.point_hit_extent=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = [p for p in plain.parent.glob("plain-rescored-*")]
    assert yaml.safe_load((out / "config.yaml").read_text())["proposals"]["k_max_ratio"] == 0.1
    record = json.loads((out / "rescore.json").read_text())
    assert record["overrides"] == ["proposals.k_max_ratio=0.1", "evaluation.point_hit_extent=true"] and record["folds"] == ["s02"]
    new, old = (json.loads((d / "metrics.json").read_text()) for d in (out, plain))
    assert new["num_proposals"] < old["num_proposals"]  # a smaller k range, fewer candidates
    rows = list(csv.DictReader(open(out / "proposals.csv")))
    assert len(rows) == new["num_proposals"]
    # the default folder name comes from the overrides: the same command lands in the same folder
    again = call(capsys, rescore, str(plain), "proposals.k_max_ratio=0.1", "evaluation.point_hit_extent=true")
    assert again.returncode == 0 and [p for p in plain.parent.glob("plain-rescored-*")] == [out]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.max_steps=3"], "pwes.rescore changes only proposals.* and evaluation.* settings (trainer.max_steps needs retraining"),
        (["evaluation.validation_subjects=2"], "evaluation.validation_subjects cannot be re-scored"),
        (["proposals.k_max_ratio=0.1,0.2"], "one value per setting"),
        (["~proposals.k_min"], "only plain key=value overrides"),
        (["proposals.k_maxratio=0.1"], "has no setting proposals.k_maxratio"),
        (["proposals.k_max_ratio=abc"], "proposals.k_max_ratio: expected a number, got 'abc'"),
        (["evaluation.calibration_source=validation"], "evaluation.calibration_source=validation needs held-out validation subjects"),
    ],
)
def test_refused_overrides_are_one_line(runs: tuple[Path, Path, Path], args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    home, plain, _ = runs
    proc = call(capsys, rescore, str(plain), *args, "--out", str(home / "never"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert not (home / "never").exists()


def test_refused_folders(runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home, plain, _ = runs
    proc = call(capsys, rescore, str(plain), "--out", str(plain / "inside"))
    assert proc.returncode == 2 and "inside the run folder" in proc.stderr and not (plain / "inside").exists()
    proc = call(capsys, rescore, str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path}: not a pwes run folder (no config.yaml)"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    proc = call(capsys, rescore, str(plain), "--out", str(tmp_path / "other"))
    assert proc.returncode == 2 and "holds files that pwes.rescore did not write" in proc.stderr


# --------------------------------------------------------------------------------- pwes.select


def make_sweep(home: Path, val: Path, sweep: Path, capsys: pytest.CaptureFixture) -> None:
    """Two settings as a multirun: the trained run (k_max_ratio 0.3) and its re-scoring at 0.15."""
    proc = call(capsys, rescore, str(val), "proposals.k_max_ratio=0.15", "--out", str(home / "k015"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job, (source, k) in enumerate(((val, 0.3), (home / "k015", 0.15))):
        shutil.copytree(source, sweep / str(job))
        (sweep / str(job) / ".hydra").mkdir(exist_ok=True)
        (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"proposals.k_max_ratio={k}", "evaluation.validation_subjects=1"]))


def test_select_chooses_per_fold_by_validation_only_and_pools_like_a_run(runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home, _, val = runs
    sweep = tmp_path / "sweep"
    make_sweep(home, val, sweep, capsys)
    proc = call(capsys, select, str(sweep))
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = ["proposals.k_max_ratio=0.3", "proposals.k_max_ratio=0.15"]
    expected = {}
    for subject in ("s01", "s02", "s03"):
        values = [json.loads((sweep / str(job) / f"fold-{subject}" / "metrics.json").read_text())["val_f1"] for job in (0, 1)]
        expected[subject] = labels[values.index(max(values))]  # ties: the first job
    out = sweep / "selected-val_f1"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selected"] == expected
    for subject, label in expected.items():
        assert f"  {subject}: {label} (val_f1 " in proc.stdout
    cfg = OmegaConf.create(yaml.safe_load((val / "config.yaml").read_text()))
    fs = resolve_feature_set(cfg)
    chosen = [sweep / str(labels.index(expected[s])) / f"fold-{s}" for s in ("s01", "s02", "s03")]
    pooled, _ = pool_folds(chosen, fs, match_config(cfg))
    assert {k: v for k, v in metrics.items() if k not in ("selected", "selection_by", "folds_left_out")} == pooled
    assert metrics["tp"] == sum(json.loads((d / "metrics.json").read_text())["tp"] for d in chosen)
    summary = json.loads((out / "selection.json").read_text())["settings"]
    assert sum(row["chosen"] for row in summary.values()) == 3
    assert summary[labels[0]]["val_f1"] == pytest.approx(json.loads((val / "metrics.json").read_text())["val_f1"])  # pooled over its folds
    # test-fold figures play no part: make the other setting's test folds perfect, nothing changes
    for subject in ("s01", "s02", "s03"):
        for job in (0, 1):
            path = sweep / str(job) / f"fold-{subject}" / "metrics.json"
            figures = json.loads(path.read_text())
            if labels[job] != expected[subject]:
                figures.update(f1=1.0, calibrated_f1=1.0, f1_p=1.0, recall=1.0, precision=1.0)
                path.write_text(json.dumps(figures))
    again = call(capsys, select, str(sweep), "--out", str(tmp_path / "again"))
    assert again.returncode == 0 and json.loads((tmp_path / "again" / "metrics.json").read_text())["selected"] == expected
    refused = call(capsys, select, str(sweep), "--by", "calibrated_f1")
    assert refused.returncode == 2 and "must be a validation figure" in refused.stderr and "test-fold figures are never used to choose" in refused.stderr


def test_select_refuses_runs_without_validation(runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home, plain, _ = runs
    shutil.copytree(plain, tmp_path / "sweep" / "0")
    (tmp_path / "sweep" / "0" / ".hydra").mkdir(exist_ok=True)
    (tmp_path / "sweep" / "0" / ".hydra" / "overrides.yaml").write_text("[]\n")
    proc = call(capsys, select, str(tmp_path / "sweep"))
    assert proc.returncode == 2 and "no validation figures (val_*): run the sweep with evaluation.validation_subjects > 0" in proc.stderr


def test_jobs_are_taken_in_hydra_job_order(tmp_path: Path) -> None:
    for name in ("10_k=0.1", "2_k=0.3", "0_k=0.5"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("[]\n")
        (tmp_path / name / "config.yaml").write_text("{}\n")
    assert [p.name for p in select.job_dirs(tmp_path)] == ["0_k=0.5", "2_k=0.3", "10_k=0.1"]  # ties go to the first listed


def test_a_job_without_the_swept_overrides_is_labelled_the_defaults(tmp_path: Path) -> None:
    """A re-scoring sweep whose first job is the run itself (no override) names it as the defaults,
    not as the sweep's only setting."""
    for name, extra in (("0_default", []), ("1_k", ["proposals.k_max_ratio=0.1"])):
        job = tmp_path / name
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=0", *extra]))
        (job / "config.yaml").write_text("{}\n")
        (job / "fold-s01").mkdir()
        (job / "fold-s01" / "metrics.json").write_text(json.dumps({"val_tp": 1, "val_f1": 0.5}))
    assert sorted(select.collect_settings(tmp_path)["0"]) == ["(the defaults)", "proposals.k_max_ratio=0.1"]
    (tmp_path / "1_k" / "fold-s01").rename(tmp_path / "1_k" / "fold-s02")
    (tmp_path / "1_k" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=0"]))
    assert sorted(select.collect_settings(tmp_path)["0"]) == ["(the sweep's only setting)"]
    # two jobs of one setting may not both hold a fold: which one would count is arbitrary
    (tmp_path / "1_k" / "fold-s02").rename(tmp_path / "1_k" / "fold-s01")
    with pytest.raises(select.SelectionError, match="fold s01 of setting \"\(the sweep's only setting\)\" \(seed 0\) is in two jobs"):
        select.collect_settings(tmp_path)


def test_several_multirun_folders_are_one_sweep(runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One-at-a-time changes run as separate multiruns (each its own sweep_name) select as one
    sweep: the same choice and figures as the one-folder sweep, labels without sweep_name."""
    home, _, val = runs
    sweep = tmp_path / "sweep"
    make_sweep(home, val, sweep, capsys)
    assert call(capsys, select, str(sweep)).returncode == 0
    single = json.loads((sweep / "selected-val_f1" / "metrics.json").read_text())
    parts = []
    for job, name in ((0, "default"), (1, "k015")):
        part = tmp_path / name
        shutil.copytree(sweep / str(job), part / "0_fold=all")
        overrides = part / "0_fold=all" / ".hydra" / "overrides.yaml"
        overrides.write_text(yaml.safe_dump([*yaml.safe_load(overrides.read_text()), f"sweep_name={name}"]))
        parts.append(str(part))
    refused = call(capsys, select, *parts)
    assert refused.returncode == 2 and "2 multirun folders: give --out" in refused.stderr
    proc = call(capsys, select, *parts, "--out", str(tmp_path / "both"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    both = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert both == single
    summary = json.loads((tmp_path / "both" / "selection.json").read_text())
    assert sorted(summary["settings"]) == ["proposals.k_max_ratio=0.15", "proposals.k_max_ratio=0.3"]
    assert summary["sweep"] == parts
    # the same folder twice: every fold of its setting is in two jobs
    twice = call(capsys, select, parts[0], parts[0], parts[1], "--out", str(tmp_path / "twice"))
    assert twice.returncode == 2 and "fold s01 of setting 'proposals.k_max_ratio=0.3' is in two jobs" in twice.stderr
    assert not (tmp_path / "twice").exists()
