"""The oracle upper bound (pwes.callbacks.oracle): interval pseudo foreground with MPLG's background
rule or every other snippet, hand-checked on a 10-snippet video; it refuses to run without the
intervals, which only the protocol's attach_ground_truth hands it."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest
import torch

from pwes.callbacks.oracle import OracleCallback
from pwes.config import ConfigError
from pwes.data.batch import VideoItem, collate

ATTENTION = [0.1, 0.2, 0.3, 0.9, 0.8, 0.05, 0.4, 0.5, 0.6, 0.7]


def setup() -> tuple[SimpleNamespace, object, MappingProxyType]:
    """v: MaE inside 3-4 (a point at 4), ME inside 8 (no point); a 6-snippet second video pads it."""
    points = torch.zeros(10, 2)
    points[4, 1] = 1.0
    items = [VideoItem("v", "s", torch.zeros(10, 2), torch.zeros(10, 2), torch.tensor([1.0, 1.0]), points),
             VideoItem("w", "s", torch.zeros(6, 2), torch.zeros(6, 2), torch.zeros(2), torch.zeros(6, 2))]
    batch = collate(items)
    truth_v = np.zeros((10, 2), dtype=bool)
    truth_v[[3, 4], 1] = True
    truth_v[8, 0] = True
    truth = MappingProxyType({"v": truth_v, "w": np.zeros((6, 2), dtype=bool)})
    attention = torch.zeros(2, 10)
    attention[0] = torch.tensor(ATTENTION)
    attention[1, :6] = torch.tensor([0.5, 0.4, 0.3, 0.2, 0.1, 0.6])
    return SimpleNamespace(attention=attention), batch, truth


def labels(background: str, **kwargs) -> tuple[set[int], set[int], set[int], set[int]]:
    output, batch, truth = setup()
    oracle = OracleCallback(background=background, **kwargs)
    oracle.set_ground_truth(truth)
    targets = oracle.pseudo_targets(output, batch)
    idx = lambda flags: {int(i) for i in torch.nonzero(flags).flatten()}  # noqa: E731
    assert targets.class_weights is None  # plain TCAM: no class weights
    return idx(targets.targets[0, :, 0]), idx(targets.targets[0, :, 1]), idx(targets.targets[0, :, 2]), idx(targets.targets[1, :, 2])


def test_oracle_foreground_is_the_intervals() -> None:
    me, mae, _, _ = labels("all")
    assert (me, mae) == ({8}, {3, 4})


def test_all_background_is_every_other_real_snippet() -> None:
    _, _, background, other = labels("all")
    assert background == {0, 1, 2, 5, 6, 7, 9}
    assert other == set(range(6))  # the padded snippets 6-9 of the short video never are


def test_mplg_background_rule_on_the_attention() -> None:
    # lowest 2 x floor(0.3 x 10) = 6 attentions: 5, 0, 1, 2, 6, 7 (none of them foreground or a point)
    _, _, background, other = labels("lowest_0.6T")
    assert background == {0, 1, 2, 5, 6, 7}
    assert other == {3, 4}  # the short video: pool 2 x floor(0.3 x 6) = 2, its lowest: 4 (0.1), 3 (0.2)


def test_twice_foreground_counts_the_oracle_foreground() -> None:
    # 3 foreground snippets x multiplier 1 = 3 lowest among the unlabelled: 5, 0, 1
    _, _, background, other = labels("twice_foreground", background_multiplier=1.0)
    assert background == {0, 1, 5}
    assert other == {4}  # no foreground there: background_min = 1, the lowest


def test_the_oracle_refuses_to_run_without_intervals() -> None:
    output, batch, _ = setup()
    with pytest.raises(ConfigError, match="callbacks.oracle: the oracle needs the training intervals"):
        OracleCallback().pseudo_targets(output, batch)
    with pytest.raises(ConfigError, match="callbacks.oracle.background"):
        OracleCallback(background="rest")
