"""The fold loop's bookkeeping without training: run-folder checks and pooling (the spot
threshold is tested in test_calibration.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwes.config import ConfigError
from pwes.data.layout import load_feature_set
from pwes.evaluation.megc import MatchConfig, score, write_proposals_csv
from pwes.inference.proposals import Proposal
from pwes.protocol import pool_folds, prepare_run_folder

CONFIG = {"seed": 0, "fold": "all", "model": {"lr": 1.0}, "trainer": {"max_steps": 5, "enable_progress_bar": True}, "logger": {"offline": True}}


def test_run_folder_accepts_same_config_and_ignores_cosmetic_settings(tmp_path: Path) -> None:
    prepare_run_folder(tmp_path, CONFIG, resume=True)
    (tmp_path / "fold-s1").mkdir()
    (tmp_path / "fold-s1" / "metrics.json").write_text("{}")
    cosmetic = {**CONFIG, "trainer": {"max_steps": 5, "enable_progress_bar": False}, "logger": {"offline": False}}
    prepare_run_folder(tmp_path, cosmetic, resume=True)


def test_run_folder_refuses_other_config_or_no_resume(tmp_path: Path) -> None:
    prepare_run_folder(tmp_path, CONFIG, resume=True)
    (tmp_path / "fold-s1").mkdir()
    (tmp_path / "fold-s1" / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"different config \(differs in: model\)"):
        prepare_run_folder(tmp_path, {**CONFIG, "model": {"lr": 2.0}}, resume=True)
    with pytest.raises(ConfigError, match="resume=false refuses"):
        prepare_run_folder(tmp_path, CONFIG, resume=False)


def test_pooling_equals_the_sum_of_folds(feature_root: Path, tmp_path: Path) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    extras = {n: {"subject": v.subject, "fold": v.subject} for n, v in fs.videos.items()}
    by_fold = {
        "s1": [Proposal("a1", 8, 15, 0.9, "ME"), Proposal("a1", 0, 5, 0.5, "ME"), Proposal("a1", 40, 70, 0.8, "MaE")],
        "s2": [Proposal("b1", 40, 60, 0.7, "MaE")],
    }
    folds = []
    for subject, proposals in by_fold.items():
        write_proposals_csv(tmp_path / f"fold-{subject}" / "proposals.csv", proposals, extras)
        folds.append(tmp_path / f"fold-{subject}")
    pooled, proposals = pool_folds(folds, fs, MatchConfig())
    assert len(proposals) == 4 and pooled["num_folds"] == 2 and pooled["num_videos"] == 3  # a1, a2, b1
    # a1: ME and MaE found, one FP; b1: FP and its MaE missed
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (2, 2, 1)
    for subject, fold_proposals in by_fold.items():
        videos = fs.videos_of([subject])
        per_fold = score(fold_proposals, {v: fs.intervals[v] for v in videos}, {v: 30.0 for v in videos})
        pooled["tp"] -= per_fold["tp"]
        pooled["fp"] -= per_fold["fp"]
    assert pooled["tp"] == 0 and pooled["fp"] == 0

