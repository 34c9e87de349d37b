"""The PWES network: output shapes and ranges, padding never leaking into real snippets, the
masked top-k pooling with class-specific k, and clear errors for bad settings or inputs."""

from __future__ import annotations

import pytest
import torch

from pwes.config import ConfigError
from pwes.model.network import (
    NetworkConfig,
    PWESNetwork,
    masked_mean,
    masked_topk_mean,
    topk_counts,
)
from pwes.settings import parse_settings

SMALL = NetworkConfig(stream_dim=8, fused_dim=12, attention_dim=6, dropout=0.0, topk_divisors=(4, 2, 2))


def make_network(seed: int = 0, config: NetworkConfig = SMALL) -> PWESNetwork:
    torch.manual_seed(seed)
    return PWESNetwork(rgb_dim=6, flow_dim=5, config=config).eval()


def lengths_mask(lengths: list[int], max_len: int) -> torch.Tensor:
    return torch.arange(max_len)[None] < torch.tensor(lengths)[:, None]


def test_every_output_has_its_shape_and_range() -> None:
    net = make_network()
    rgb, flow = torch.randn(3, 10, 6), torch.randn(3, 10, 5)
    mask = lengths_mask([10, 7, 3], 10)
    out = net(rgb, flow, mask)
    assert out.attention_rgb.shape == out.attention_flow.shape == out.attention.shape == (3, 10)
    assert out.features.shape == (3, 10, 12)
    assert out.tcam.shape == out.tcam_suppressed.shape == (3, 10, 3)
    assert out.video_scores.shape == out.video_scores_suppressed.shape == (3, 3)
    assert torch.allclose(out.attention, 0.5 * (out.attention_rgb + out.attention_flow))
    real = mask
    assert bool(((out.attention[real] > 0) & (out.attention[real] < 1)).all())
    assert bool(((out.tcam[real] > 0) & (out.tcam[real] < 1)).all())
    assert torch.allclose(out.tcam_suppressed, out.tcam * out.attention[..., None])
    # padded positions are zero
    assert float(out.attention.detach()[~real].abs().sum()) == 0.0
    assert float(out.tcam.detach()[~real].abs().sum()) == 0.0
    assert net.feature_dim == 12


def test_padding_with_garbage_changes_nothing_for_the_real_snippets() -> None:
    net = make_network()
    torch.manual_seed(1)
    rgb, flow = torch.randn(1, 9, 6), torch.randn(1, 9, 5)
    alone = net(rgb, flow, torch.ones(1, 9, dtype=torch.bool))
    garbage_rgb = torch.cat([rgb, 1e3 * torch.randn(1, 6, 6)], dim=1)
    garbage_flow = torch.cat([flow, -1e3 * torch.randn(1, 6, 5)], dim=1)
    padded = net(garbage_rgb, garbage_flow, lengths_mask([9], 15))
    for name in ("attention_rgb", "attention_flow", "attention", "features", "tcam"):
        assert torch.allclose(getattr(alone, name), getattr(padded, name)[:, :9], atol=1e-5), name
    assert torch.allclose(alone.video_scores, padded.video_scores, atol=1e-6)
    assert torch.allclose(alone.video_scores_suppressed, padded.video_scores_suppressed, atol=1e-6)


def test_a_video_is_unaffected_by_the_other_videos_of_its_batch() -> None:
    net = make_network()
    torch.manual_seed(2)
    short_rgb, short_flow = torch.randn(1, 5, 6), torch.randn(1, 5, 5)
    long_rgb, long_flow = torch.randn(1, 11, 6), torch.randn(1, 11, 5)
    alone = net(short_rgb, short_flow, torch.ones(1, 5, dtype=torch.bool))
    rgb = torch.cat([torch.cat([short_rgb, torch.randn(1, 6, 6)], 1), long_rgb])
    flow = torch.cat([torch.cat([short_flow, torch.randn(1, 6, 5)], 1), long_flow])
    batch = net(rgb, flow, lengths_mask([5, 11], 11))
    assert torch.allclose(alone.tcam[0], batch.tcam[0, :5], atol=1e-5)
    assert torch.allclose(alone.video_scores[0], batch.video_scores[0], atol=1e-6)


def test_masked_topk_mean_uses_real_snippets_and_per_class_k() -> None:
    values = torch.tensor([[[0.1, 0.9], [0.5, 0.2], [0.3, 0.4], [9.0, 9.0]]])  # last snippet padded
    mask = torch.tensor([[True, True, True, False]])
    k = torch.tensor([[1, 2]])
    pooled = masked_topk_mean(values, mask, k)
    assert torch.allclose(pooled, torch.tensor([[0.5, (0.9 + 0.4) / 2]]))


def test_topk_counts_follow_the_divisors_and_never_drop_below_one() -> None:
    counts = topk_counts(torch.tensor([368, 10, 3]), (16, 8, 8))
    assert counts.tolist() == [[23, 46, 46], [1, 1, 1], [1, 1, 1]]


def test_video_scores_are_the_top_k_means_of_the_tcam() -> None:
    net = make_network()
    torch.manual_seed(3)
    out = net(torch.randn(1, 8, 6), torch.randn(1, 8, 5), torch.ones(1, 8, dtype=torch.bool))
    # divisors (4, 2, 2) on T=8 -> k = (2, 4, 4)
    expected = torch.stack([out.tcam[0, :, c].topk(k).values.mean() for c, k in enumerate((2, 4, 4))])
    assert torch.allclose(out.video_scores[0], expected, atol=1e-6)


def test_masked_mean_ignores_padding() -> None:
    values = torch.tensor([[1.0, 3.0, 100.0]])
    assert torch.allclose(masked_mean(values, torch.tensor([[True, True, False]])), torch.tensor([2.0]))


def test_same_seed_same_outputs_and_training_mode_dropout_is_seeded() -> None:
    config = NetworkConfig(stream_dim=8, fused_dim=12, attention_dim=6, dropout=0.5)
    rgb, flow, mask = torch.randn(2, 6, 6), torch.randn(2, 6, 5), torch.ones(2, 6, dtype=torch.bool)
    runs = []
    for _ in range(2):
        net = make_network(seed=7, config=config).train()
        torch.manual_seed(11)
        runs.append(net(rgb, flow, mask).tcam)
    assert torch.equal(runs[0], runs[1])


def test_without_cross_modal_compensation_the_streams_are_independent() -> None:
    config = NetworkConfig(stream_dim=8, fused_dim=12, attention_dim=6, dropout=0.0, cross_modal=False)
    net = make_network(config=config)
    rgb, mask = torch.randn(1, 6, 6), torch.ones(1, 6, dtype=torch.bool)
    a = net(rgb, torch.randn(1, 6, 5), mask)
    b = net(rgb, torch.randn(1, 6, 5), mask)
    assert torch.allclose(a.attention_rgb, b.attention_rgb)
    with_cross = make_network()
    c = with_cross(rgb, torch.randn(1, 6, 5), mask)
    d = with_cross(rgb, torch.randn(1, 6, 5), mask)
    assert not torch.allclose(c.attention_rgb, d.attention_rgb)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"kernel_size": 4}, "model.network.kernel_size"),
        ({"dropout": 1.0}, "model.network.dropout"),
        ({"topk_divisors": [8, 8]}, "model.network.topk_divisors"),
        ({"hidden": 3}, "unknown setting(s) hidden"),
        ({"stream_dim": 12.5}, "model.network.stream_dim: expected a whole number"),
    ],
)
def test_bad_settings_fail_with_the_setting_named(settings: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse_settings(NetworkConfig, settings, "model.network")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_inputs_fail_with_one_clear_line() -> None:
    net = make_network()
    with pytest.raises(ValueError, match="feature widths rgb=7"):
        net(torch.randn(1, 4, 7), torch.randn(1, 4, 5), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no real snippets"):
        net(torch.randn(2, 4, 6), torch.randn(2, 4, 5), lengths_mask([4, 0], 4))
    with pytest.raises(ValueError, match="disagree"):
        net(torch.randn(1, 4, 6), torch.randn(1, 5, 5), torch.ones(1, 4, dtype=torch.bool))
