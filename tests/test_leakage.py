"""Weak training sees only point labels and video labels: two feature sets that differ only in
their intervals' onsets and offsets (same apex, same type, apex points) train bit-identical
weights through the protocol's own builders, with MPLG and DFCL switched on. Full supervision, the
one setting allowed to read the intervals, does see the difference (the test's control)."""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from conftest import compose_train, make_feature_set
from tiny_model import QUIET

from pwes.data.layout import load_feature_set
from pwes.callbacks.diagnostics import attach_ground_truth
from pwes.protocol import build_callbacks, build_datamodule, build_model

pytestmark = [pytest.mark.filterwarnings(QUIET), pytest.mark.usefixtures("one_thread")]


VIDEOS = {"a1": ("s1", 160), "a2": ("s1", 120), "b1": ("s2", 144), "b2": ("s2", 96), "c1": ("s3", 136)}


def annotations(widen: int) -> list[dict]:
    """The same expressions (type and apex); ``widen`` moves every onset and offset outwards."""
    rows = [("a1", "s1", 20, 24, 28, "ME"), ("a1", "s1", 60, 80, 110, "MaE"), ("a2", "s1", 30, 40, 70, "MaE"),
            ("b1", "s2", 8, 12, 16, "ME"), ("b1", "s2", 90, 100, 120, "MaE"), ("c1", "s3", 40, 50, 64, "MaE")]
    return [dict(video=v, subject=s, onset=max(0, on - widen), apex=apex, offset=off + widen, type=t) for v, s, on, apex, off, t in rows]


def train(root: Path, supervision: str, extra: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    overrides = [
        "dataset=casme2", f"dataset.root={root}", "data.points.mode=apex", "data.batch_size=2",
        "trainer.max_steps=6", "dataset.pretrain_steps=2", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", f"model.supervision={supervision}",
        "+dataset.network.stream_dim=16", "+dataset.network.fused_dim=16", "+dataset.network.attention_dim=8",
        "callbacks.dfcl.bank_videos=4", *(extra or ("callbacks.mplg.threshold=0.3",)),
    ]
    cfg = compose_train(overrides)
    feature_set = load_feature_set(root, 8, 8)
    L.seed_everything(0, verbose=False)
    datamodule = build_datamodule(cfg, feature_set, ["s3"])
    model = build_model(cfg, feature_set)
    callbacks = build_callbacks(cfg)
    assert len(callbacks) == 4  # MPLG (or the oracle) and DFCL both run, the diagnostics (fed each set's intervals), grad_share
    attach_ground_truth(callbacks, feature_set, datamodule.train_set.videos)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=callbacks, default_root_dir=str(root))
    trainer.fit(model, datamodule=datamodule)
    if supervision == "point":
        assert callbacks[1].bank.sizes()[2] > 0  # DFCL did run
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("leak")
    narrow = make_feature_set(base / "narrow", VIDEOS, annotations(0), dim=6)
    wide = make_feature_set(base / "wide", VIDEOS, annotations(6), dim=6)
    return narrow, wide


def test_onsets_and_offsets_never_reach_weak_training(two_sets: tuple[Path, Path]) -> None:
    narrow, wide = (train(root, "point") for root in two_sets)
    for name, value in narrow.items():
        assert torch.equal(value, wide[name]), name


def test_full_supervision_does_read_them(two_sets: tuple[Path, Path]) -> None:
    narrow, wide = (train(root, "full") for root in two_sets)
    assert not all(torch.equal(value, wide[name]) for name, value in narrow.items())


def test_the_oracle_upper_bound_does_read_them(two_sets: tuple[Path, Path]) -> None:
    """ablation=oracle_*: the one explicit path from intervals into weak training."""
    narrow, wide = (train(root, "point", ("ablation=oracle_mplg_bg",)) for root in two_sets)
    assert not all(torch.equal(value, wide[name]) for name, value in narrow.items())
