"""`python -m pwes.report` on hand-built multirun folders: rows per setting, seeds grouped into
mean ± std (n), the three operating points, failed and missing jobs, corrupt files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pwes.results import Stat, collect, combined_spread, group_by_seed, write_report


def make_job(sweep: Path, name: str, overrides: list[str], metrics: dict | None) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "config.yaml").write_text("fold: all\n")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def metrics(f1: float, calibrated: float = 0.2, best: float = 0.3) -> dict:
    return {
        "f1_me_0.5": 0.1, "f1_me_1.0": 0.05, "f1_me_p": 0.0, "recall": 0.3, "precision": 0.4, "f1": f1,
        "calibrated_recall": 0.25, "calibrated_precision": 0.5, "calibrated_f1": calibrated, "calibrated_me_f1": 0.0,
        "f1_p": best, "calibrated_thresholds": {"s1": 0.1},  # a non-numeric entry is ignored
    }


def make_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    multirun = {"hydra": {"overrides": {"task": ["dataset=synthetic_tiny", "model.mplg.threshold=0.5,0.7,0.9"]}, "sweeper": {"params": None}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    make_job(sweep, "0_model.mplg.threshold=0.5", ["dataset=synthetic_tiny", "model.mplg.threshold=0.5"], metrics(0.25))
    make_job(sweep, "1_model.mplg.threshold=0.7", ["dataset=synthetic_tiny", "model.mplg.threshold=0.7"], None)  # crashed
    return sweep  # 0.9 never ran


def make_seed_sweep(tmp_path: Path) -> Path:
    """Two settings x two seeds: baseline F1 0.10/0.12, pwes F1 0.30/0.32 (calibrated F1 equal)."""
    sweep = tmp_path / "seeds"
    sweep.mkdir()
    multirun = {"hydra": {"overrides": {"task": ["ablation=baseline,pwes", "seed=0,1"]}, "sweeper": {"params": None}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    values = {("baseline", "0"): 0.10, ("baseline", "1"): 0.12, ("pwes", "0"): 0.30, ("pwes", "1"): 0.32}
    for number, ((ablation, seed), f1) in enumerate(values.items()):
        make_job(sweep, f"{number}_ablation={ablation},seed={seed}", [f"ablation={ablation}", f"seed={seed}"], metrics(f1, calibrated=0.2 + 0.05 * int(seed)))
    return sweep


def test_rows_statuses_and_order(tmp_path: Path) -> None:
    rows = collect(make_sweep(tmp_path))
    assert [(r.overrides["model.mplg.threshold"], r.status) for r in rows] == [("0.5", "ok"), ("0.7", "failed"), ("0.9", "missing")]
    assert "no metrics.json" in rows[1].reason


def test_report_files_show_the_three_operating_points(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    text = write_report(sweep)
    lines = text.splitlines()
    assert lines[0] == (
        "| model.mplg.threshold | F1(0.5) | F1(1.0) | all: REC | all: PRE | all: F1 | calibrated: REC | calibrated: PRE"
        " | calibrated: F1 | calibrated: ME F1 | best-on-test†: F1 | best-on-test†: F1(p) | status |"
    )
    assert lines[2] == "| 0.5 | 0.100 | 0.050 | 0.300 | 0.400 | 0.250 | 0.250 | 0.500 | 0.200 | 0.000 | 0.300 | 0.000 | ok |"
    assert lines[3].startswith("| 0.7 | failed |") and lines[4].startswith("| 0.9 | missing |")
    assert "tuned on the test folds" in text and "1_model.mplg.threshold=0.7: no metrics.json" in text
    rows = list(csv.reader((sweep / "report.csv").open()))
    assert rows[0][:5] == ["model.mplg.threshold", "seeds", "f1_me_0.5_mean", "f1_me_0.5_std", "f1_me_0.5_n"]
    assert rows[1][:5] == ["0.5", "", "0.100000", "", "1"]
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_seeds_become_one_row_with_mean_std_and_n(tmp_path: Path) -> None:
    sweep = make_seed_sweep(tmp_path)
    groups = group_by_seed(collect(sweep))
    assert [(g.overrides, g.seeds) for g in groups] == [({"ablation": "baseline"}, ["0", "1"]), ({"ablation": "pwes"}, ["0", "1"])]
    text = write_report(sweep)
    lines = text.splitlines()
    assert lines[0].startswith("| ablation | seeds | F1(0.5) |")
    # F1 of baseline: mean 0.11, sample std 0.01414
    assert "| baseline | 0,1 | 0.100 ± 0.000 (n=2) | 0.050 ± 0.000 (n=2) | 0.300 ± 0.000 (n=2) | 0.400 ± 0.000 (n=2) | 0.110 ± 0.014 (n=2) |" in lines[2]
    assert "| 0.310 ± 0.014 (n=2) |" in lines[3] and lines[3].endswith("| ok |")
    # all-proposal F1 differs by 0.2 > 2 x sqrt(2 x 0.0141^2) = 0.04; the calibrated F1s are identical
    assert "- all: F1: ablation=pwes > ablation=baseline by 0.200 (2 × combined spread = 0.040)" in text
    assert "calibrated: F1: " not in text
    rows = {r["ablation"]: r for r in csv.DictReader((sweep / "report.csv").open())}
    assert (rows["pwes"]["f1_mean"], rows["pwes"]["f1_std"], rows["pwes"]["f1_n"], rows["pwes"]["seeds"]) == ("0.310000", "0.014142", "2", "0 1")
    assert (sweep / "report.png").stat().st_size > 0


def test_a_failed_seed_leaves_n_one_and_says_so(tmp_path: Path) -> None:
    sweep = make_seed_sweep(tmp_path)
    (sweep / "3_ablation=pwes,seed=1" / "metrics.json").unlink()
    lines = write_report(sweep).splitlines()
    assert "| pwes | 0,1 | 0.100 | 0.050 |" in lines[3] and lines[3].endswith("| 1 ok, 1 failed |")


def test_combined_spread() -> None:
    assert combined_spread(Stat(0.2, 0.03, 3), Stat(0.1, 0.04, 3)) == pytest.approx(0.05)
    assert combined_spread(Stat(0.2, None, 1), Stat(0.1, 0.04, 3)) is None


def run_report(sweep: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pwes.report", str(sweep)], capture_output=True, text=True, timeout=120)


def test_corrupt_files_mark_rows_failed_without_a_traceback(tmp_path: Path) -> None:
    sweep = make_seed_sweep(tmp_path)
    (sweep / "0_ablation=baseline,seed=0" / ".hydra" / "overrides.yaml").write_text("[unclosed: {")
    (sweep / "1_ablation=baseline,seed=1" / "metrics.json").write_text("[0.1, 0.2]")
    (sweep / "2_ablation=pwes,seed=0" / "metrics.json").write_text("{not json")
    proc = run_report(sweep)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "0_ablation=baseline,seed=0: " in proc.stdout and "overrides.yaml: not readable YAML" in proc.stdout
    assert "1_ablation=baseline,seed=1: metrics.json: not a JSON object (a list)" in proc.stdout
    assert "2_ablation=pwes,seed=0: metrics.json: not valid JSON" in proc.stdout
    (sweep / "0_ablation=baseline,seed=0" / ".hydra" / "overrides.yaml").write_text("just a string\n")
    assert "expected a YAML list of overrides" in run_report(sweep).stdout


def test_corrupt_multirun_yaml_is_one_warning_line(tmp_path: Path) -> None:
    sweep = make_seed_sweep(tmp_path)
    (sweep / "multirun.yaml").write_text("hydra: [1, 2")
    proc = run_report(sweep)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"warning: {sweep / 'multirun.yaml'}: not a usable Hydra multirun record (while parsing a flow sequence); jobs that never ran cannot be listed"]
    assert "0.110 ± 0.014 (n=2)" in proc.stdout
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["seed=0,,,1)"]}}}))
    proc = run_report(sweep)
    assert proc.returncode == 0 and proc.stderr.startswith(f"warning: {sweep / 'multirun.yaml'}: not a usable Hydra multirun record")


def test_cli_errors_in_one_line(tmp_path: Path) -> None:
    proc = run_report(tmp_path / "nope")
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nope'}: folder not found"
    (tmp_path / "empty").mkdir()
    proc = run_report(tmp_path / "empty")
    assert proc.returncode == 2 and "no Hydra jobs found" in proc.stderr


@pytest.mark.slow
def test_a_real_two_seed_multirun_prints_mean_and_std(tmp_path: Path) -> None:
    env = {**os.environ, "PWES_HOME": str(tmp_path), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    quick = ["dataset=synthetic_tiny", "trainer.max_steps=8", "dataset.pretrain_steps=4", "trainer.enable_progress_bar=false", "logger=none"]
    proc = subprocess.run([sys.executable, "-m", "pwes.train", "-m", *quick, "seed=0,1", "sweep_name=seeds"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "outputs" / "multiruns" / "seeds"
    for job in sweep.glob("*_seed=*"):
        pooled = json.loads((job / "metrics.json").read_text())
        assert {"calibrated_f1", "calibrated_me_f1", "f1_p", "calibrated_thresholds"} <= set(pooled)
        fold = json.loads(next(job.glob("fold-*/metrics.json")).read_text())
        assert "calibrated_threshold" in fold and "calibrated_recall" in fold
    report = run_report(sweep)
    assert report.returncode == 0, report.stderr
    row = report.stdout.splitlines()[2]
    assert row.startswith("| ") and "(n=2)" in row and row.endswith("| ok |")


def test_fold_pooling_skips_a_job_whose_record_is_corrupt(tmp_path: Path) -> None:
    from pwes.sweep import fold_groups

    sweep = make_seed_sweep(tmp_path)
    (sweep / "0_ablation=baseline,seed=0" / ".hydra" / "overrides.yaml").write_text("{a: [")
    grouped = [job.name for jobs in fold_groups(sweep).values() for job in jobs]
    assert sorted(grouped) == ["1_ablation=baseline,seed=1", "2_ablation=pwes,seed=0", "3_ablation=pwes,seed=1"]


def test_report_png_title_and_seed_label(tmp_path: Path) -> None:
    """report.png is titled with the sweep and says mean ± std only when a row has several seeds."""
    from pwes.results.plot import plot_text

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = make_sweep(tmp_path / "a")
    write_report(one)
    assert plot_text(group_by_seed(collect(one)), one.name) == (f"{one.name}: F1 per setting", "F1 (one seed per row)")
    seeds = make_seed_sweep(tmp_path / "b")
    write_report(seeds)
    assert plot_text(group_by_seed(collect(seeds)), seeds.name)[1] == "F1 (mean ± std over 2 seeds)"


def test_validation_figures_get_their_own_table(tmp_path: Path) -> None:
    sweep = tmp_path / "val"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["model.network.topk=divisors,points", "seed=0,1"]}, "sweeper": {"params": None}}}))
    for number, (topk, seed, val) in enumerate((("divisors", 0, 0.30), ("divisors", 1, 0.40), ("points", 0, 0.50), ("points", 1, 0.70))):
        make_job(sweep, f"{number}_x", [f"model.network.topk={topk}", f"seed={seed}"], {**metrics(0.2), "val_f1": val, "val_all_f1": 0.1})
    text = write_report(sweep)
    section = text.split("\nValidation:\n\n", 1)[1].splitlines()
    assert section[0] == "| model.network.topk | seeds | val: REC | val: PRE | val: F1 | val: ME F1 | val: MaE F1 | val, all proposals: F1 |"
    assert section[2] == "| divisors | 0,1 |  |  | 0.350 ± 0.071 (n=2) |  |  | 0.100 ± 0.000 (n=2) |"
    assert section[3].startswith("| points | 0,1 |  |  | 0.600 ± 0.141 (n=2) |")
    header = next(csv.reader((sweep / "report.csv").open()))
    assert "val_f1_mean" in header and "val_all_f1_n" in header
    # a sweep without a validation split has no such table
    assert "Validation:" not in write_report(make_sweep(tmp_path))


def test_a_folder_of_separate_runs_is_tabulated_like_a_multirun(tmp_path: Path) -> None:
    """outputs/runs/<dataset>/ holds one folder per `fold=all` run, named by its overrides, with no
    multirun.yaml: runs that differ only in seed still form one row, and a run still training
    (no metrics.json yet) shows as failed with the reason."""
    runs = tmp_path / "runs" / "synthetic_casme2"
    for seed, f1 in ((0, 0.30), (1, 0.32)):
        make_job(runs, f"ablation=full,seed={seed}", ["ablation=full", f"seed={seed}"], metrics(f1))
    make_job(runs, "ablation=full,seed=2", ["ablation=full", "seed=2"], None)
    text = write_report(runs)
    row = next(line for line in text.splitlines() if line.startswith("| full |"))
    assert "| 0,1,2 |" in row and "| 0.310 ± 0.014 (n=2) |" in row and row.endswith("| 2 ok, 1 failed |")
    assert "no metrics.json (crashed or still running)" in text


def make_paper_sweep(tmp_path: Path, dataset: str) -> Path:
    """PWES (all-proposal F1 0.30/0.32, calibrated 0.50/0.52) and LACP (0.40/0.42, calibrated
    0.20/0.22), two seeds each, plus a full-supervision row the paper has no figure for."""
    sweep = tmp_path / dataset
    sweep.mkdir()
    values = {("mplg_dfcl", "0"): (0.30, 0.50), ("mplg_dfcl", "1"): (0.32, 0.52), ("lacp", "0"): (0.40, 0.20), ("lacp", "1"): (0.42, 0.22), ("full", "0"): (0.9, 0.9)}
    for number, ((ablation, seed), (f1, calibrated)) in enumerate(values.items()):
        job = make_job(sweep, f"{number}_ablation={ablation},seed={seed}", [f"ablation={ablation}", f"seed={seed}"], metrics(f1, calibrated=calibrated))
        (job / "config.yaml").write_text(yaml.safe_dump({"fold": "all", "dataset": {"name": dataset}}))
    return sweep


def test_report_puts_the_papers_rows_beside_and_checks_its_orderings(tmp_path: Path) -> None:
    text = write_report(make_paper_sweep(tmp_path, "synthetic_casme2"))
    section = text[text.index("Beside the paper (CAS(ME)^2"):]
    lines = section.splitlines()
    # the paper's LACP row (Table IX), then ours; the full-supervision row has no paper row
    assert "| LACP | paper, Table IX | 0.019 | 0.016 | 0.020 | 0.120 | 0.091 | 0.103 | – |" in lines
    ours = "| LACP | here: synthetic_casme2 | 0.100 ± 0.000 (n=2) | 0.050 ± 0.000 (n=2) | 0.000 ± 0.000 (n=2) | 0.300 ± 0.000 (n=2)"
    assert ours + " | 0.400 ± 0.000 (n=2) | 0.410 ± 0.014 (n=2) | 0.210 ± 0.014 (n=2) |" in lines
    assert "synthetic stand-in" in section and not any(line.startswith("| Full") for line in lines)
    # paper: PWES 0.366 > LACP 0.103. Here all-proposal F1 0.31 vs 0.41: reversed, gap 0.10 beyond
    # 2 x sqrt(0.014^2 + 0.014^2) = 0.040; calibrated 0.51 vs 0.21: holds.
    order = next(line for line in lines if line.startswith("- paper: PWES"))
    assert "> LACP (F1 0.366 vs 0.103)" in order
    assert "all proposals: reversed (0.310 vs 0.410, beyond twice the combined spread 0.040)" in order
    assert "calibrated: holds (0.510 vs 0.210, beyond" in order


def test_report_paper_rows_follow_the_dataset_and_the_option(tmp_path: Path) -> None:
    small = make_paper_sweep(tmp_path, "synthetic_small")  # not shaped like a paper dataset
    assert "Beside the paper" not in write_report(small)
    assert "Beside the paper (SAMM-LV" in write_report(small, paper="samm")
    real = make_paper_sweep(tmp_path, "casme3")
    text = write_report(real)
    assert "| LACP | paper, Table XI |" in text and "stand-in" not in text
    assert "Beside the paper" not in write_report(real, paper="none")
    result = subprocess.run([sys.executable, "-m", "pwes.report", str(real), "--paper", "thumos", "--no-wandb"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: --paper thumos: expected auto, none, or one of casme2, samm, casme3")
