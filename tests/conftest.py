"""Shared test fixtures: tiny feature sets written into tmp_path, and the composed train config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from pwes.config import CONFIG_DIR, register_resolvers
from pwes.data.layout import write_feature_set


def compose_train(overrides: list[str] | None = None, with_hydra: bool = False):
    """The train config (conf/train.yaml) with ``overrides``, as Hydra's compose API gives it;
    ``with_hydra`` keeps the ``hydra`` node."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [], return_hydra_config=with_hydra)


def make_feature_set(root: Path, videos: dict[str, tuple[str, int]] | None = None, annotations: list[dict] | None = None, dim: int = 4, snippet: int = 8, seed: int = 0) -> Path:
    """Write a small valid feature set: ``videos`` maps id -> (subject, num_frames)."""
    videos = videos or {"a1": ("s1", 80), "a2": ("s1", 64), "b1": ("s2", 72), "c1": ("s3", 80)}
    annotations = annotations if annotations is not None else [
        dict(video="a1", subject="s1", onset=8, apex=10, offset=15, type="ME"),
        dict(video="a1", subject="s1", onset=40, apex="", offset=70, type="MaE"),
        dict(video="b1", subject="s2", onset=0, apex=5, offset=30, type="MaE"),
        dict(video="c1", subject="s3", onset=20, apex=-1, offset=27, type="ME"),
    ]
    rng = np.random.default_rng(seed)
    feats = {}
    rows = []
    for name, (subject, frames) in videos.items():
        t = frames // snippet
        feats[name] = (rng.random((t, dim), dtype=np.float32), rng.random((t, dim), dtype=np.float32))
        rows.append(dict(video=name, subject=subject, num_frames=frames, fps=30))
    return write_feature_set(root, rows, annotations, feats)


@pytest.fixture
def feature_root(tmp_path: Path) -> Path:
    return make_feature_set(tmp_path / "set")


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest (and steadiest on a busy machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
