"""pwes.model.dropout: FastDropout keeps nn.Dropout's distribution and scaling (statistically,
with tolerances a wrong keep rate or scale fails), is the identity in eval mode, has gradient
mask / (1 - p), is reproducible from a seed, and is what model.network.dropout_impl selects."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pwes.config import ConfigError
from pwes.model.dropout import FastDropout, fast_dropout, make_dropout
from pwes.model.network import NetworkConfig, PWESNetwork

N = 1_000_000


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_and_expectation_match_inverted_dropout(p: float) -> None:
    x = torch.ones(N)
    out = fast_dropout(x, p, generator=torch.Generator().manual_seed(0))
    kept = out != 0
    # keep rate 1 - p within 5 binomial standard deviations (at most 0.0025)
    sigma = math.sqrt(p * (1 - p) / N)
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma
    # every kept element is scaled by exactly 1/(1-p); the mean is 1 within 5 of its sigma
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    mean_sigma = math.sqrt(p / (1 - p) / N)
    assert abs(out.mean().item() - 1.0) < 5 * mean_sigma


def test_a_wrong_scaling_or_keep_rate_would_fail_the_tolerances() -> None:
    """The tolerances above are tight enough: nn.Dropout passes, p and 1-p swapped does not."""
    p, x = 0.3, torch.ones(N)
    torch.manual_seed(0)
    reference = nn.Dropout(p).train()(x)
    sigma = math.sqrt(p * (1 - p) / N)
    assert abs((reference != 0).float().mean().item() - (1 - p)) < 5 * sigma
    swapped = fast_dropout(x, 1 - p, generator=torch.Generator().manual_seed(0))
    assert abs((swapped != 0).float().mean().item() - (1 - p)) > 100 * sigma
    unscaled = (fast_dropout(x, p, generator=torch.Generator().manual_seed(0)) != 0).float()
    assert abs(unscaled.mean().item() - 1.0) > 100 * math.sqrt(p / (1 - p) / N)


def test_elements_are_dropped_independently() -> None:
    """Neighbouring elements' masks are uncorrelated (a tiled or repeated mask would not be)."""
    out = fast_dropout(torch.ones(N), 0.5, generator=torch.Generator().manual_seed(1)) != 0
    a, b = out[:-1].float(), out[1:].float()
    correlation = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
    assert abs(correlation.item()) < 5 / math.sqrt(N)


def test_eval_mode_and_zero_p_are_the_identity() -> None:
    x = torch.randn(4, 8, 16)
    layer = FastDropout(0.5).eval()
    assert layer(x) is x
    assert fast_dropout(x, 0.0) is x
    assert not torch.equal(FastDropout(0.5).train()(x), x)


def test_gradient_is_mask_over_keep_probability() -> None:
    p = 0.25
    x = torch.randn(64, 32, requires_grad=True)
    out = fast_dropout(x, p, generator=torch.Generator().manual_seed(3))
    out.sum().backward()
    mask = (out != 0).float()
    assert 0.6 < mask.mean().item() < 0.9  # some kept, some dropped
    assert torch.equal(x.grad, mask / (1 - p))


def test_same_seed_same_output() -> None:
    x = torch.randn(8, 16, 40)
    torch.manual_seed(7)
    first = FastDropout(0.5).train()(x)
    torch.manual_seed(7)
    second = FastDropout(0.5).train()(x)
    third = FastDropout(0.5).train()(x)
    assert torch.equal(first, second)
    assert not torch.equal(second, third)  # the stream advances


def test_bf16_input_keeps_its_dtype_and_scale() -> None:
    x = torch.ones(10_000, dtype=torch.bfloat16)
    out = fast_dropout(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.bfloat16
    assert set(out.unique().tolist()) == {0.0, 2.0}


def test_bad_probability_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\), got 1.0"):
        FastDropout(1.0)
    with pytest.raises(ValueError, match="dropout_impl must be one of fast, torch, got 'bernoulli'"):
        make_dropout(0.5, "bernoulli")


def test_network_setting_selects_the_implementation() -> None:
    widths = {"stream_dim": 8, "fused_dim": 8, "attention_dim": 4}
    fast = PWESNetwork(6, 6, NetworkConfig(**widths))
    old = PWESNetwork(6, 6, NetworkConfig(**widths, dropout_impl="torch"))
    assert {type(m) for m in fast.modules() if isinstance(m, (nn.Dropout, FastDropout))} == {FastDropout}
    assert sum(isinstance(m, FastDropout) for m in fast.modules()) == 5
    assert sum(isinstance(m, nn.Dropout) for m in old.modules()) == 5
    with pytest.raises(ConfigError, match="dropout_impl: must be one of fast, torch"):
        NetworkConfig(dropout_impl="bernoulli")
