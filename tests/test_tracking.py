"""pwes.tracking: the W&B logger is built without the argument that made W&B warn on every run."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from pwes import tracking


def test_wandb_logger_gets_no_unset_anonymous_argument(tmp_path: Path) -> None:
    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "logger" / "wandb.yaml")
    logger = tracking.make_logger(cfg, tmp_path, tmp_path / "fold-s01", "g/fold-s01", "g")
    assert "anonymous" not in logger._wandb_init  # W&B warns "has no effect" whenever it is passed
    assert logger._wandb_init["name"] == "g/fold-s01" and logger._wandb_init["dir"] == str(tmp_path)
    asked = OmegaConf.merge(cfg, {"anonymous": True})  # asked for explicitly: kept
    assert tracking.make_logger(asked, tmp_path, tmp_path, "n", "g")._wandb_init["anonymous"] == "allow"
