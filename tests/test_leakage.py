"""Weak training sees only point labels and video labels: two feature sets that differ only in
their intervals' onsets and offsets (same apex, same type, apex points) train bit-identical
weights and store the same calibrated threshold, through the stages the protocol runs
(pwes.fold: setup_fold, fit_fold, then calibrate_fold and the checkpoint record), with MPLG and
DFCL switched on. Full supervision, the one setting allowed to read the intervals, does see the
difference (the test's control)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_train, make_feature_set
from omegaconf import open_dict
from tiny_model import QUIET

from pwes.callbacks.dfcl import DFCLCallback
from pwes.data.layout import load_feature_set
from pwes.fold import checkpoint_info, fit_fold, setup_fold
from pwes.scoring import calibrate_fold

pytestmark = [pytest.mark.filterwarnings(QUIET), pytest.mark.usefixtures("one_thread")]


VIDEOS = {"a1": ("s1", 160), "a2": ("s1", 120), "b1": ("s2", 144), "b2": ("s2", 96), "c1": ("s3", 136)}


def annotations(widen: int) -> list[dict]:
    """The same expressions (type and apex); ``widen`` moves every onset and offset outwards."""
    rows = [("a1", "s1", 20, 24, 28, "ME"), ("a1", "s1", 60, 80, 110, "MaE"), ("a2", "s1", 30, 40, 70, "MaE"),
            ("b1", "s2", 8, 12, 16, "ME"), ("b1", "s2", 90, 100, 120, "MaE"), ("c1", "s3", 40, 50, 64, "MaE")]
    return [dict(video=v, subject=s, onset=max(0, on - widen), apex=apex, offset=off + widen, type=t) for v, s, on, apex, off, t in rows]


def train(root: Path, supervision: str, extra: tuple[str, ...] = ()) -> tuple[dict[str, torch.Tensor], dict]:
    """Fold s3 of ``root`` set up, trained and calibrated by the protocol's stages: the weights
    and the checkpoint record (threshold, rule, split) the protocol would store."""
    overrides = [
        "dataset=casme2", f"dataset.root={root}", "data.points.mode=apex", "data.batch_size=2", "logger=none",
        "trainer.max_steps=6", "dataset.pretrain_steps=2", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", f"model.supervision={supervision}",
        "+dataset.network.stream_dim=16", "+dataset.network.fused_dim=16", "+dataset.network.attention_dim=8",
        "callbacks.dfcl.bank_videos=4", *(extra or ("callbacks.mplg.threshold=0.3",)),
    ]
    cfg = compose_train(overrides)
    run_dir = root.parent / f"run-{root.name}"
    with open_dict(cfg):
        cfg.run_dir, cfg.run_name, cfg.sweep_name = str(run_dir), "x", "x"  # run_protocol's, and Hydra's runtime
    feature_set = load_feature_set(root, 8, 8)
    setup = setup_fold(cfg, feature_set, "s3", run_dir / "fold-s3", "g")
    # MPLG (or the oracle), DFCL, the diagnostics (fed each set's intervals), grad_share, StopOnInterrupt
    assert len(setup.callbacks) == 5
    fit_fold(setup)
    if supervision == "point":
        (dfcl,) = (c for c in setup.callbacks if isinstance(c, DFCLCallback))
        assert dfcl.bank.sizes()[2] > 0  # DFCL did run
    calibration, validation = calibrate_fold(cfg, feature_set, setup.trainer, setup.model, setup.datamodule)
    info = checkpoint_info(setup, calibration, validation).to_dict()
    assert info["train_subjects"] == ["s1", "s2"] and info["score_threshold_rule"] == ("intervals" if supervision == "full" else "points")
    return {k: v.clone() for k, v in setup.model.state_dict().items()}, info


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("leak")
    narrow = make_feature_set(base / "narrow", VIDEOS, annotations(0), dim=6)
    wide = make_feature_set(base / "wide", VIDEOS, annotations(6), dim=6)
    return narrow, wide


def test_onsets_and_offsets_never_reach_weak_training(two_sets: tuple[Path, Path]) -> None:
    (narrow, narrow_info), (wide, wide_info) = (train(root, "point") for root in two_sets)
    for name, value in narrow.items():
        assert torch.equal(value, wide[name]), name
    # the checkpoint record too: split, rule, threshold (6 steps leave it at -inf on both sets, so
    # this checks the record's wiring more than the threshold's value)
    assert narrow_info == wide_info


def test_full_supervision_does_read_them(two_sets: tuple[Path, Path]) -> None:
    (narrow, _), (wide, _) = (train(root, "full") for root in two_sets)
    assert not all(torch.equal(value, wide[name]) for name, value in narrow.items())


def test_the_oracle_upper_bound_does_read_them(two_sets: tuple[Path, Path]) -> None:
    """ablation=oracle_*: the one explicit path from intervals into weak training."""
    (narrow, _), (wide, _) = (train(root, "point", ("ablation=oracle_mplg_bg",)) for root in two_sets)
    assert not all(torch.equal(value, wide[name]) for name, value in narrow.items())
