"""The fold's stages (pwes.fold) and the checkpoint record they write (pwes.checkpoint_info):
the ``pwes`` dict on disk keeps its keys and order, old checkpoints load with their missing
fields unset, and a finished fold read back by ``load_fold`` has the split it was trained on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import compose_train, make_feature_set
from omegaconf import open_dict
from tiny_model import QUIET

from pwes.checkpoint_info import CheckpointInfo, CheckpointInfoError
from pwes.data.layout import load_feature_set
from pwes.fold import FoldSplitError, load_fold
from pwes.protocol import train_fold

PROPOSALS = {"maps": "suppressed", "k_min": 1}


def record(**changes: object) -> CheckpointInfo:
    values = dict(
        dataset="casme2", feature_dims=(6, 4), snippet_length=8, stride=4, fps=30.0, proposals=PROPOSALS, evaluation={"iou_threshold": 0.5},
        train_subjects=("s2", "s3"), validation_subjects=("s3",), seed=7, score_threshold=0.25, score_threshold_rule="points",
        train_f1_at_threshold=0.5, score_threshold_source="validation",
    )
    return CheckpointInfo(**{**values, **changes})


def test_the_record_on_disk_keeps_its_keys_order_and_plain_types() -> None:
    stored = record().to_dict()
    assert list(stored) == [
        "dataset", "feature_dims", "snippet_length", "stride", "fps", "proposals", "evaluation", "train_subjects",
        "validation_subjects", "seed", "score_threshold", "score_threshold_rule", "train_f1_at_threshold", "score_threshold_source",
    ]
    assert (stored["feature_dims"], stored["train_subjects"], stored["validation_subjects"]) == ([6, 4], ["s2", "s3"], ["s3"])
    assert CheckpointInfo.from_dict(stored) == record()
    # a fold without a validation split stores no score_threshold_source (as before the record was typed)
    assert "score_threshold_source" not in record(score_threshold_source=None, validation_subjects=()).to_dict()
    assert record(validation_subjects=()).to_dict()["validation_subjects"] == []


def test_an_old_checkpoint_loads_with_its_missing_fields_unset() -> None:
    old = {"feature_dims": [6, 4], "snippet_length": 8, "stride": 4, "fps": 25.0, "proposals": {"k_min": 2}, "retired_key": 1}
    info = CheckpointInfo.from_checkpoint({"pwes": old})
    assert (info.train_subjects, info.validation_subjects, info.score_threshold, info.dataset) == (None, (), None, None)
    assert info.threshold() == -math.inf  # no stored operating point: every proposal kept
    assert (info.proposal_config().maps, info.proposal_config().k_min) == ("plain", 2)  # built before proposals.maps existed
    assert info.to_dict() == {k: v for k, v in old.items() if k != "retired_key"} | {"validation_subjects": []}


@pytest.mark.parametrize(("checkpoint", "message"), [
    ({}, "no 'pwes' metadata"),
    ({"pwes": {"feature_dims": [6, 4], "stride": 4, "fps": 30.0}}, "lacks snippet_length, proposals"),
    ({"pwes": ["not", "a", "mapping"]}, "lacks feature_dims, snippet_length, stride, fps, proposals"),
])
def test_an_incomplete_record_is_one_line_naming_what_lacks(checkpoint: dict, message: str) -> None:
    with pytest.raises(CheckpointInfoError, match=message):
        CheckpointInfo.from_checkpoint(checkpoint)


VIDEOS = {"a1": ("s1", 160), "a2": ("s1", 120), "b1": ("s2", 144), "b2": ("s2", 96), "c1": ("s3", 136), "d1": ("s4", 152)}


def tiny_cfg(root: Path, run_dir: Path, *extra: str):
    cfg = compose_train([
        "dataset=casme2", f"dataset.root={root}", "data.batch_size=2", "trainer.max_steps=4", "dataset.pretrain_steps=2",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", "callbacks.dfcl.bank_videos=4",
        "+dataset.network.stream_dim=16", "+dataset.network.fused_dim=16", "+dataset.network.attention_dim=8", *extra,
    ])
    with open_dict(cfg):
        cfg.run_dir, cfg.run_name, cfg.sweep_name = str(run_dir), "x", "x"  # not composed under Hydra's runtime
    return cfg


@pytest.mark.filterwarnings(QUIET)
@pytest.mark.usefixtures("one_thread")
def test_a_trained_fold_is_read_back_with_its_split_and_record(tmp_path: Path) -> None:
    root = make_feature_set(tmp_path / "set", VIDEOS, dim=6)
    fs = load_feature_set(root, 8, 8)
    cfg = tiny_cfg(root, tmp_path / "run", "evaluation.validation_subjects=1")
    fold_dir = tmp_path / "run" / "fold-s1"
    result = train_fold(cfg, fs, "s1", fold_dir, "g", "[1/1]")
    stored = torch.load(fold_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["pwes"]
    trained = load_fold(cfg, fs, fold_dir, "s1")
    assert trained.info.to_dict() == stored
    assert len(trained.info.train_subjects) == 2 and len(trained.info.validation_subjects) == 1
    assert sorted([*trained.info.train_subjects, *trained.info.validation_subjects]) == ["s2", "s3", "s4"]  # never the test subject
    assert stored["score_threshold_source"] == "train" and result.metrics["val_subjects"] == list(trained.info.validation_subjects)
    assert result.metrics["calibrated_threshold"] == (None if math.isinf(stored["score_threshold"]) else stored["score_threshold"])
    assert list(trained.datamodule.test_set.videos) == ["a1", "a2"]
    # a config that would rebuild another split is refused, naming the fold and both splits
    with pytest.raises(FoldSplitError, match=r"fold-s1: the checkpoint was trained on subjects .* but the run's config now gives \['s2', 's3', 's4'\] \(validation \[\]\)"):
        load_fold(tiny_cfg(root, tmp_path / "run"), fs, fold_dir, "s1")
