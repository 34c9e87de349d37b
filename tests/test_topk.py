"""model.network.topk=points: k of the MIL pooling from the point counts (training) or from the
training videos' point rate (inference), hand-checked on tiny tensors; the network takes a per-video
k; the module builds it, estimates the rate when fit starts and keeps it in the checkpoint."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from tiny_model import QUIET, TINY, batches, make_module, make_trainer, synthetic_videos, loader

from pwes.config import ConfigError
from pwes.data.batch import collate, VideoItem
from pwes.model.module import PWESModule
from pwes.model.network import NetworkConfig, PWESNetwork
from pwes.model.topk import point_counts, point_rate, points_topk_counts, rate_topk_counts
from pwes.settings import parse_settings

pytestmark = pytest.mark.filterwarnings(QUIET)

# 0.3 s and 1.5 s at 30 fps with 8-frame steps: 1.125 and 5.625 snippets
TYPICAL = NetworkConfig().typical_snippets()


def test_typical_snippets_are_seconds_times_fps_over_stride() -> None:
    assert TYPICAL.tolist() == [1.125, 5.625]
    assert NetworkConfig(topk_seconds=(0.5, 4.0), topk_fps=200.0, topk_stride=32).typical_snippets().tolist() == [3.125, 25.0]


def test_points_k_is_the_point_count_times_the_typical_length() -> None:
    lengths = torch.tensor([40, 10, 4])
    counts = torch.tensor([[1, 2], [0, 0], [0, 2]])
    k = points_topk_counts(lengths, counts, TYPICAL, background_divisor=8)
    # v0: ME round(1.125) = 1, MaE round(11.25) = 11, background 40 // 8 = 5
    # v1: no points -> k = 1 for both classes, background max(1, 10 // 8) = 1
    # v2: MaE 11 clipped to the 4 snippets, background max(1, 0) = 1
    assert k.tolist() == [[1, 11, 5], [1, 1, 1], [1, 4, 1]]


def test_points_k_rounds_half_up() -> None:
    typical = torch.tensor([1.5, 2.5], dtype=torch.float64)  # 0.4 s and 0.666.. s at 30 fps / 8
    k = points_topk_counts(torch.tensor([50]), torch.tensor([[1, 1]]), typical, 8)
    assert k.tolist() == [[2, 3, 6]]  # 1.5 -> 2 and 2.5 -> 3 (not banker's 2)


def test_rate_k_takes_the_expected_point_count() -> None:
    # 368 snippets x 0.005 ME points per snippet = 1.84 points x 1.125 = 2.07 -> 2;
    # 368 x 0.02 = 7.36 MaE points x 5.625 = 41.4 -> 41; background 368 // 8 = 46
    k = rate_topk_counts(torch.tensor([368, 20]), torch.tensor([0.005, 0.02]), TYPICAL, 8)
    assert k.tolist() == [[2, 41, 46], [1, 2, 2]]  # 20: 0.1 x 1.125 -> 1 (at least 1), 0.4 x 5.625 = 2.25 -> 2


def test_point_rate_and_counts() -> None:
    grids = [np.array([[1, 0], [0, 1], [0, 0], [0, 1]]), np.array([[0, 0], [0, 1]])]
    assert point_rate(grids) == pytest.approx((1 / 6, 3 / 6))
    points = torch.tensor([[[1.0, 0], [0, 1], [0, 1]], [[0, 1], [1, 0], [0, 0]]])
    mask = torch.tensor([[True, True, True], [True, False, False]])  # padded points never count
    assert point_counts(points, mask).tolist() == [[1, 2], [0, 1]]
    with pytest.raises(ValueError, match="topk=points"):
        point_rate([])


def test_the_settings_are_checked() -> None:
    for values, where in (({"topk": "share"}, "model.network.topk"), ({"topk_seconds": [0.3]}, "model.network.topk_seconds"),
                          ({"topk_seconds": [0.3, 0]}, "model.network.topk_seconds"), ({"topk_fps": 0}, "model.network.topk_fps")):
        with pytest.raises(ConfigError, match=where):
            parse_settings(NetworkConfig, values, "model.network")


def test_the_network_pools_with_the_given_k_over_real_snippets_only() -> None:
    torch.manual_seed(0)
    net = PWESNetwork(6, 5, NetworkConfig(stream_dim=8, fused_dim=12, attention_dim=6, dropout=0.0)).eval()
    rgb, flow = torch.randn(2, 9, 6), torch.randn(2, 9, 5)
    mask = torch.arange(9)[None] < torch.tensor([9, 4])[:, None]
    k = torch.tensor([[1, 3, 2], [2, 9, 1]])  # 9 > 4 real snippets: clipped to 4
    with torch.no_grad():
        out = net(rgb, flow, mask, k)
    for b, ks in enumerate([(1, 3, 2), (2, 4, 1)]):
        n = int(mask[b].sum())
        for c, kc in enumerate(ks):
            expected = out.tcam[b, :n, c].topk(kc).values.mean()
            assert out.video_scores[b, c] == pytest.approx(float(expected), abs=1e-6)
            assert out.video_scores_suppressed[b, c] == pytest.approx(float(out.tcam_suppressed[b, :n, c].topk(kc).values.mean()), abs=1e-6)
    # None keeps the divisors: k = max(1, T // (16, 8, 8)) = (1, 1, 1) for both videos
    with torch.no_grad():
        default = net(rgb, flow, mask)
    assert torch.allclose(default.video_scores, out.tcam.masked_fill(~mask[..., None], -1).amax(dim=1), atol=1e-6)
    with pytest.raises(ValueError, match=r"k must have shape \[B, 3\]"):
        net(rgb, flow, mask, torch.ones(2, 2, dtype=torch.long))


def _item(name: str, T: int, me: list[int], mae: list[int]) -> VideoItem:
    points = torch.zeros(T, 2)
    points[me, 0], points[mae, 1] = 1.0, 1.0
    g = torch.Generator().manual_seed(T)
    return VideoItem(name, "s", torch.randn(T, 12, generator=g), torch.randn(T, 12, generator=g), (points.amax(0) > 0).float(), points)


def test_the_module_takes_k_from_points_in_training_and_from_the_rate_in_prediction() -> None:
    module = make_module(network={**TINY, "topk": "points"}).eval()
    batch = collate([_item("a", 40, [3], [10, 20]), _item("b", 16, [], [5])])
    assert module.topk(batch, from_points=True).tolist() == [[1, 11, 10], [1, 6, 4]]  # background T // 4
    with pytest.raises(RuntimeError, match="no training point rate"):
        module.predict_step(batch, 0)
    module.topk_rate = (0.025, 0.05)
    # a: 40 x 0.025 = 1 x 1.125 -> 1; 40 x 0.05 = 2 x 5.625 = 11.25 -> 11. b: 0.4 x 1.125 -> 1 (0.45); 0.8 x 5.625 = 4.5 -> 5
    assert module.topk(batch, from_points=False).tolist() == [[1, 11, 10], [1, 5, 4]]
    pred = module.predict_step(batch, 0)
    with torch.no_grad():
        out = module.network(batch.rgb, batch.flow, batch.mask, torch.tensor([[1, 11, 10], [1, 5, 4]]))
    assert np.allclose(pred[1].video_scores, out.video_scores[1].numpy(), atol=1e-6)
    assert make_module(network={**TINY, "topk": "divisors"}).topk(batch, from_points=True) is None  # the network's own


def test_the_rate_is_estimated_at_fit_start_and_kept_in_the_checkpoint(tmp_path) -> None:
    items, _ = synthetic_videos(6, seed=1)

    class TrainSet:  # what the module reads from trainer.datamodule: the training videos' labels
        labels = {item.name: (item.video_label.numpy(), item.points.numpy()) for item in items}

    class Data(L.LightningDataModule):
        train_set = TrainSet()

        def train_dataloader(self):
            return loader(batches(items, 3))

    expected = point_rate(item.points for item in items)
    assert all(r > 0 for r in expected)
    module = make_module(network={**TINY, "topk": "points"})
    trainer = make_trainer(2, [], default_root_dir=tmp_path)
    trainer.fit(module, datamodule=Data())
    assert module.topk_rate == expected
    path = tmp_path / "points.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, map_location="cpu", weights_only=False)["pwes_topk_rate"] == list(expected)
    loaded = PWESModule.load_from_checkpoint(path)
    assert loaded.topk_rate == expected and loaded.network_config.topk == "points"


def test_a_checkpoint_saved_before_topk_existed_loads_as_divisors(tmp_path) -> None:
    """Such a checkpoint has no topk in its hyperparameters and no rate key: k was T // divisor."""
    module = make_module(supervision="video", network={**TINY, "topk": "divisors"})
    trainer = make_trainer(1, [], default_root_dir=tmp_path)
    trainer.strategy.connect(module)
    path = tmp_path / "old.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    del checkpoint["pwes_topk_rate"], checkpoint["hyper_parameters"]["network"]["topk"]
    torch.save(checkpoint, path)
    loaded = PWESModule.load_from_checkpoint(path)
    assert loaded.network_config.topk == "divisors" and loaded.hparams["network"]["topk"] == "divisors"
    assert loaded.network.config is loaded.network_config
    batch = collate(synthetic_videos(2, seed=3)[0])
    assert loaded.topk(batch, from_points=False) is None  # the network's own T // divisor
    assert NetworkConfig().topk == "points"  # what the same hyperparameters would read as otherwise


@pytest.mark.slow
def test_train_then_spot_with_topk_points(tmp_path) -> None:
    """End to end: pwes.train with topk=points stores the training rate in the checkpoint, and
    pwes.spot (which has no point labels) runs from it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PWES_HOME": str(tmp_path)}
    args = ["dataset=synthetic_tiny", "fold=none", "logger=none", "trainer.max_steps=6", "dataset.pretrain_steps=3",
            "trainer.enable_progress_bar=false", "run_name=all", "model.network.topk=points"]
    proc = subprocess.run([sys.executable, "-m", "pwes.train", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "outputs/runs/synthetic_tiny/all/model/checkpoints/last.ckpt"
    rate = torch.load(ckpt, map_location="cpu", weights_only=False)["pwes_topk_rate"]
    assert len(rate) == 2 and all(0 < r < 0.5 for r in rate)
    video = sorted(next((tmp_path / ".cache" / "synthetic").glob("tiny-*")).joinpath("features").glob("*.npz"))[0]
    spot = subprocess.run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(video), "--out", str(tmp_path / "out"), "--threshold", "-100"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert spot.returncode == 0, spot.stderr[-3000:]
    assert (tmp_path / "out" / f"{video.stem}.csv").exists()
