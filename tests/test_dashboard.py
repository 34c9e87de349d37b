"""pwes.dashboard: the protocol run, its tables and the pictures, read back from W&B's offline
run files with W&B's own record definitions (tests/wandb_records.py); no server involved."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from pwes import dashboard, tracking
from wandb_records import OfflineRun, read_runs

CONF = Path(__file__).resolve().parents[1] / "conf"
QUICK = ["dataset=synthetic_tiny", "trainer.max_steps=4", "dataset.pretrain_steps=2", "trainer.enable_progress_bar=false", "print_metrics=false"]
SUBJECTS = ["s01", "s02", "s03"]


def run_train(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PWES_HOME": str(home), "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    flags = [a for a in args if a.startswith("-")]
    proc = subprocess.run([sys.executable, "-m", "pwes.train", *flags, *QUICK, *(a for a in args if not a.startswith("-"))], cwd=home, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


# ------------------------------------------------------------------------------------ units
def test_flat_config_makes_every_setting_a_column() -> None:
    config = {"seed": 3, "callbacks": {"mplg": {"threshold": 0.7, "variant": "full"}}, "tags": [], "empty": {}}
    flat = dashboard.flat_config(config, ["callbacks.mplg.threshold=0.7", "ablation=mplg", "seed=3"])
    assert flat == {
        "seed": 3, "callbacks.mplg.threshold": 0.7, "callbacks.mplg.variant": "full", "tags": [], "empty": {},
        "ablation": "mplg",  # a config-group choice: a column too
        "overrides": "callbacks.mplg.threshold=0.7,ablation=mplg,seed=3",
    }


def test_summary_holds_the_pooled_figures_and_the_protocol_status() -> None:
    metrics = {"calibrated_f1": 0.25, "threshold_p": float("nan"), "calibrated_thresholds": {"s01": 0.1, "s02": None}}
    summary = dashboard.summary_values(metrics, ["s01", "s02"], ["s01", "s02", "s03"], "s01")
    assert summary["calibrated_f1"] == 0.25 and summary["threshold_p"] is None and summary["calibrated_thresholds"] == {"s01": 0.1, "s02": None}
    assert summary["protocol/status"] == "partial (2 of 3 folds)" and summary["protocol/folds_pooled"] == 2 and summary["protocol/subjects"] == 3
    assert dashboard.summary_values(metrics, SUBJECTS, SUBJECTS, "all")["protocol/status"] == "complete"


def test_protocol_run_id_comes_from_the_run_folder(tmp_path: Path) -> None:
    first, again, other = (dashboard.protocol_run_id(p) for p in (tmp_path / "a", tmp_path / "x" / ".." / "a", tmp_path / "b"))
    assert first == again != other
    assert len(first) <= 64 and first.replace("-", "").isalnum()  # W&B's id characters
    # an earlier offline copy of that run is removed before the new one is written; others stay
    wandb_dir = tmp_path / "wandb"
    for name in (f"offline-run-20260101_000000-{first}", f"offline-run-20260101_000000-{other}", "offline-run-20260101_000000-abc123"):
        (wandb_dir / name).mkdir(parents=True)
    dashboard.drop_offline_copies(wandb_dir, first)
    assert sorted(p.name for p in wandb_dir.iterdir()) == sorted([f"offline-run-20260101_000000-{other}", "offline-run-20260101_000000-abc123"])


def test_pictures_only_under_wandb_and_the_setting_is_checked(tmp_path: Path) -> None:
    wandb_cfg = OmegaConf.load(CONF / "logger" / "wandb.yaml")
    assert dashboard.videos_per_fold(wandb_cfg) == 3
    assert dashboard.videos_per_fold(OmegaConf.load(CONF / "logger" / "csv.yaml")) == 0
    assert dashboard.videos_per_fold(OmegaConf.load(CONF / "logger" / "none.yaml")) == 0
    with pytest.raises(ValueError, match=r"logger.videos_per_fold: must be a whole number >= 0"):
        dashboard.videos_per_fold(OmegaConf.merge(wandb_cfg, {"videos_per_fold": -1}))
    # pwes's own setting never reaches WandbLogger (wandb.init would refuse the argument)
    logger = tracking.make_logger(wandb_cfg, tmp_path, tmp_path / "fold-s01", "g/fold-s01", "g")
    assert "videos_per_fold" not in logger._wandb_init


def test_videos_with_intervals_are_drawn_first_and_the_title_names_the_threshold() -> None:
    from types import SimpleNamespace

    feature_set = SimpleNamespace(intervals={"a": [], "b": ["gt"], "c": [], "d": ["gt"]})
    assert dashboard.picture_videos(["a", "b", "c", "d"], feature_set, 3) == ["b", "d", "a"]  # type: ignore[arg-type]
    assert dashboard.picture_videos(["a", "b"], feature_set, 0) == []  # type: ignore[arg-type]
    assert dashboard.threshold_source("train", "points") == "calibrated on the training videos' point labels"
    assert dashboard.threshold_source("validation", "intervals") == "calibrated on the validation subjects' intervals"


def flush_wandb() -> None:
    """Shut W&B's service down so every record of the runs this process made is on disk (a run's
    finish() may return before its writer has flushed; a training process ends, which does this)."""
    import wandb

    wandb.teardown()


def test_a_protocol_run_that_fails_is_never_marked_finished(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"logger": OmegaConf.load(CONF / "logger" / "wandb.yaml"), "fold": "all", "seed": 0})
    with pytest.raises(FileNotFoundError):  # the folds' metrics.json are missing: logging fails midway
        dashboard.log_protocol(cfg, tmp_path, "g", ["s01"], {"calibrated_f1": 0.5}, None, None)  # type: ignore[arg-type]
    flush_wandb()
    (run,) = read_runs(tmp_path / "wandb")
    assert run.job_type == "protocol" and run.exit_code == 1 and "calibrated_f1" not in run.summary


def test_the_report_of_a_wandb_sweep_is_a_report_run(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "0_seed=0").mkdir(parents=True)
    (sweep / "0_seed=0" / "config.yaml").write_text("logger:\n  _target_: lightning.pytorch.loggers.WandbLogger\n  project: pwes\n  offline: true\n")
    (sweep / "report.csv").write_text("callbacks.mplg.threshold,seeds,f1_mean\n0.5,0 1,0.250000\n0.7,0 1,0.125000\n")
    Image.new("RGB", (40, 20), "white").save(sweep / "report.png")
    settings = dashboard.sweep_wandb_settings(sweep)
    assert settings is not None and settings["project"] == "pwes"
    for _ in range(2):  # a second report replaces the first
        line = dashboard.log_report(sweep, settings)
    assert line.startswith("W&B report run sweep/report (report-") and "wandb sync" in line
    flush_wandb()
    (run,) = read_runs(sweep / "wandb")
    assert (run.job_type, run.group, run.exit_code) == ("report", "sweep", 0)
    assert run.table("report/table") == {"columns": ["callbacks.mplg.threshold", "seeds", "f1_mean"], "data": [["0.5", "0 1", "0.250000"], ["0.7", "0 1", "0.125000"]]}
    assert list(run.media("image-file")) == ["report/plot"]
    (sweep / "0_seed=0" / "config.yaml").write_text("logger:\n  _target_: lightning.pytorch.loggers.CSVLogger\n")
    assert dashboard.sweep_wandb_settings(sweep) is None  # a CSV-logged sweep gets no W&B run


# --------------------------------------------------------------------------- one fold, CLI
def protocol_and_folds(runs: list[OfflineRun]) -> tuple[OfflineRun, list[OfflineRun]]:
    protocols = [r for r in runs if r.job_type == "protocol"]
    assert len(protocols) == 1, [r.name for r in runs]
    return protocols[0], [r for r in runs if r.job_type == "fold"]


def test_one_fold_run_has_its_protocol_run_tables_and_pictures(tmp_path: Path) -> None:
    run_train(tmp_path, "logger=wandb", "fold=s02", "run_name=wb")
    run_dir = tmp_path / "outputs" / "runs" / "synthetic_tiny" / "wb"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    protocol, folds = protocol_and_folds(read_runs(run_dir / "wandb"))
    assert len(folds) == 1 and folds[0].exit_code == 0 and protocol.exit_code == 0
    assert protocol.name == "synthetic_tiny/wb/protocol" and protocol.group == folds[0].group == "synthetic_tiny/wb"
    assert protocol.run_id == dashboard.protocol_run_id(run_dir)
    for key in ("calibrated_f1", "f1", "f1_p", "f1_me_0.5", "tp", "calibrated_tp", "diag_attention_auc"):
        assert protocol.summary[key] == metrics[key], key
    assert protocol.summary["calibrated_thresholds"] == metrics["calibrated_thresholds"]
    assert protocol.summary["protocol/status"] == "partial (1 of 3 folds)"
    assert protocol.config["seed"] == 0 and protocol.config["dataset.name"] == "synthetic_tiny" and protocol.config["fold"] == "s02"
    # the tables: one row per fold; one row per proposal, TP rows naming the interval they matched
    fold_table = protocol.table("folds")
    row = dict(zip(fold_table["columns"], fold_table["data"][0]))
    fold_metrics = json.loads((run_dir / "fold-s02" / "metrics.json").read_text())
    assert len(fold_table["data"]) == 1 and row["subject"] == "s02"
    assert (row["all_tp"], row["all_fp"], row["all_fn"]) == (fold_metrics["tp"], fold_metrics["fp"], fold_metrics["fn"])
    assert (row["calibrated_tp"], row["calibrated_fp"], row["calibrated_fn"]) == (fold_metrics["calibrated_tp"], fold_metrics["calibrated_fp"], fold_metrics["calibrated_fn"])
    assert row["calibrated_threshold"] == fold_metrics["calibrated_threshold"]
    assert row["best_on_test_f1"] == pytest.approx(fold_metrics["f1_p"])
    proposals = protocol.table("proposals")
    cells = [dict(zip(proposals["columns"], r)) for r in proposals["data"]]
    assert len(cells) == metrics["num_proposals"]
    assert sum(c["outcome"] == "TP" for c in cells) == metrics["tp"] and all((c["outcome"] == "TP") == bool(c["matched_gt"]) for c in cells)
    assert sum(c["above_threshold"] for c in cells) == metrics["calibrated_num_proposals"]
    # pictures: the fold's test videos (2 < the default 3) in the fold folder, its run and the protocol run
    pngs = sorted((run_dir / "fold-s02" / "maps").glob("*.png"))
    assert [p.stem for p in pngs] == ["s02_v01", "s02_v02"]
    assert Image.open(pngs[0]).size[0] >= 800  # a readable width
    assert sorted(folds[0].media("image-file")) == sorted(protocol.media("image-file")) == ["maps/s02_v01", "maps/s02_v02"]


# -------------------------------------------------------------------- multirun, resume (slow)
@pytest.mark.slow
def test_multirun_has_one_protocol_run_per_job_also_after_a_rerun(tmp_path: Path) -> None:
    args = ("-m", "logger=wandb", "seed=0,1", "callbacks.mplg.threshold=0.5,0.7", "sweep_name=wb")
    run_train(tmp_path, *args)
    sweep = tmp_path / "outputs" / "multiruns" / "wb"
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert len(jobs) == 4

    def check(job: Path) -> str:
        metrics = json.loads((job / "metrics.json").read_text())
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        protocol, folds = protocol_and_folds(read_runs(job / "wandb"))
        assert protocol.exit_code == 0 and protocol.summary["calibrated_f1"] == metrics["calibrated_f1"] and protocol.summary["f1"] == metrics["f1"]
        assert protocol.summary["protocol/status"] == "complete"
        assert protocol.config["seed"] == int(overrides["seed"]) and protocol.config["callbacks.mplg.threshold"] == float(overrides["callbacks.mplg.threshold"])
        assert sorted(f.name for f in folds) == [f"{protocol.group}/fold-{s}" for s in SUBJECTS] and all(f.exit_code == 0 for f in folds)
        assert [r[0] for r in protocol.table("folds")["data"]] == SUBJECTS
        pictured = {key.split("/")[1].split("_")[0] for key in protocol.media("image-file")}
        assert pictured == set(SUBJECTS)  # at least one picture per fold
        for fold in folds:
            assert fold.media("image-file"), fold.name
        return protocol.run_id

    ids = [check(job) for job in jobs]
    assert len(set(ids)) == 4
    run_train(tmp_path, *args)  # the same command again: every fold kept, the protocol runs replaced
    assert [check(job) for job in jobs] == ids


@pytest.mark.slow
def test_logging_to_wandb_changes_no_weight_and_no_figure(tmp_path: Path) -> None:
    run_train(tmp_path, "logger=wandb", "fold=s01", "run_name=wb")
    run_train(tmp_path, "logger=none", "fold=s01", "run_name=none")
    runs = tmp_path / "outputs" / "runs" / "synthetic_tiny"
    with_wandb, without = (torch.load(runs / name / "fold-s01" / "checkpoints" / "last.ckpt", weights_only=False) for name in ("wb", "none"))
    assert with_wandb["state_dict"].keys() == without["state_dict"].keys()
    for key, value in with_wandb["state_dict"].items():
        assert torch.equal(value, without["state_dict"][key]), key
    for a, b in zip(with_wandb["optimizer_states"][0]["state"].values(), without["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)

    def figures(name: str, path: str) -> dict:
        return {k: v for k, v in json.loads((runs / name / path).read_text()).items() if k != "train_seconds" and not (isinstance(v, float) and math.isnan(v))}

    for path in ("fold-s01/metrics.json", "metrics.json"):
        assert figures("wb", path) == figures("none", path)
    assert (runs / "wb" / "fold-s01" / "proposals.csv").read_bytes() == (runs / "none" / "fold-s01" / "proposals.csv").read_bytes()
    assert not (runs / "none" / "wandb").exists() and not (runs / "none" / "fold-s01" / "maps").exists()
