"""Each loss term's share of the gradient norm (pwes.callbacks.grad_share): hand-checked norms, shares
summing to 1 on a tiny model, a doubled weight raising its term's share, and no effect on training."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_model import QUIET, REGIONS, batches, loader, make_module, make_trainer, synthetic_videos

from pwes.callbacks import DFCLCallback, MPLGCallback
from pwes.callbacks.grad_share import GradShareCallback, shares, term_gradient_norms
from pwes.config import ConfigError

pytestmark = pytest.mark.filterwarnings(QUIET)


def test_norms_and_shares_by_hand() -> None:
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    q = torch.tensor([5.0], requires_grad=True)  # reached by no term
    terms = {"square": (p**2).sum(), "sum": p.sum(), "off": (p * 0).sum().detach(), "zero_weight": p.sum()}
    norms = term_gradient_norms(terms, {"square": 1.0, "sum": 3.0, "off": 1.0, "zero_weight": 0.0}, [p, q])
    # d/dp sum(p^2) = 2p = (2, 4): sqrt(20); 3 x d/dp sum(p) = (3, 3): sqrt(18)
    assert norms == pytest.approx({"square": math.sqrt(20), "sum": math.sqrt(18), "off": 0.0, "zero_weight": 0.0})
    got = shares(norms)
    assert got["square"] == pytest.approx(math.sqrt(20) / (math.sqrt(20) + math.sqrt(18)))  # 0.5132
    assert sum(got.values()) == pytest.approx(1.0)
    assert shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def first_step_shares(loss: dict | None = None, every: int = 1, steps: int = 1, parameters: str = "shared") -> tuple[GradShareCallback, dict]:
    items, _ = synthetic_videos(8, seed=3)
    torch.manual_seed(0)
    module = make_module(loss=loss or {})
    share = GradShareCallback(every_n_steps=every, parameters=parameters)
    callbacks = [MPLGCallback(start_step=0, threshold=0.3), DFCLCallback(start_step=0, regions=REGIONS, bank_videos=8), share]
    make_trainer(steps, callbacks).fit(module, loader(batches(items, 4)))
    return share, {k: v.clone() for k, v in module.state_dict().items()}


def test_shares_sum_to_one_over_every_term_and_a_doubled_weight_raises_its_share() -> None:
    base, _ = first_step_shares(steps=2)
    first = {name: values[0] for name, values in base.history.items()}
    assert set(first) == {"mil", "mil_suppressed", "snippet", "guide", "sparsity", "mutual", "contrastive"}
    for step in (0, 1):
        assert sum(values[step] for values in base.history.values()) == pytest.approx(1.0)
    assert first["contrastive"] == 0.0  # step 0: DFCL's memory bank is still empty, no negatives
    assert base.history["contrastive"][1] > 0.0  # step 1: it has the first batch's vectors
    assert all(value > 0 for name, value in first.items() if name != "contrastive")
    doubled, _ = first_step_shares(loss={"mil": 2.0})
    assert doubled.history["mil"][0] > first["mil"]  # same weights at step 0: only the weight differs
    assert doubled.history["snippet"][0] < first["snippet"]


def test_every_n_steps_and_no_effect_on_training() -> None:
    measured, with_callback = first_step_shares(every=2, steps=5)
    assert len(measured.history["mil"]) == 3  # steps 0, 2, 4
    items, _ = synthetic_videos(8, seed=3)
    torch.manual_seed(0)
    module = make_module()
    callbacks = [MPLGCallback(start_step=0, threshold=0.3), DFCLCallback(start_step=0, regions=REGIONS, bank_videos=8)]
    make_trainer(5, callbacks).fit(module, loader(batches(items, 4)))
    for name, value in module.state_dict().items():
        assert torch.equal(value, with_callback[name]), name


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="callbacks.grad_share.every_n_steps"):
        GradShareCallback(every_n_steps=0)
    with pytest.raises(ConfigError, match="callbacks.grad_share.parameters"):
        GradShareCallback(parameters="heads")
