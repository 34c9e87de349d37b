"""Loss terms against hand-computed values, padding never counting, soft targets, and the target
combination of eq. 15 (points over pseudo labels, point snippets at full weight)."""

from __future__ import annotations

import math

import pytest
import torch

from pwes.config import ConfigError
from pwes.model.losses import (
    LossConfig,
    guide_loss,
    mutual_loss,
    snippet_loss,
    snippet_probabilities,
    sparsity_loss,
    video_mil_loss,
)
from pwes.model.targets import SnippetTargets, combine_targets, hard_targets, interval_targets
from pwes.settings import parse_settings


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_video_mil_loss_branch_targets() -> None:
    scores = torch.tensor([[0.8, 0.3, 0.6]])
    labels = torch.tensor([[1.0, 0.0]])
    branch1 = video_mil_loss(scores, labels, background_target=1.0)
    branch2 = video_mil_loss(scores, labels, background_target=0.0)
    assert float(branch1) == pytest.approx((bce(0.8, 1) + bce(0.3, 0) + bce(0.6, 1)) / 3, abs=1e-6)
    assert float(branch2) == pytest.approx((bce(0.8, 1) + bce(0.3, 0) + bce(0.6, 0)) / 3, abs=1e-6)


def test_snippet_loss_averages_over_labelled_snippets_only() -> None:
    probs = torch.tensor([[[0.9, 0.2, 0.1], [0.5, 0.5, 0.5], [0.1, 0.1, 0.7], [0.3, 0.3, 0.3]]])
    labels = torch.zeros(1, 4, 3, dtype=torch.bool)
    labels[0, 0, 0] = True  # ME
    labels[0, 2, 2] = True  # background; snippets 1 and 3 unlabelled
    expected = (
        bce(0.9, 1) + bce(0.2, 0) + bce(0.1, 0) + bce(0.1, 0) + bce(0.1, 0) + bce(0.7, 1)
    ) / 2
    assert float(snippet_loss(probs, labels)) == pytest.approx(expected, abs=1e-6)


def test_snippet_loss_without_labels_is_a_zero_in_the_graph() -> None:
    probs = torch.full((1, 3, 3), 0.5, requires_grad=True)
    loss = snippet_loss(probs, torch.zeros(1, 3, 3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert probs.grad is not None


def test_snippet_probabilities_reweight_only_foreground() -> None:
    tcam = torch.tensor([[[0.8, 0.6, 0.4]]])
    weights = torch.tensor([[[1.0, 0.5]]])
    assert torch.allclose(snippet_probabilities(tcam, weights), torch.tensor([[[0.8, 0.3, 0.4]]]))
    assert torch.equal(snippet_probabilities(tcam, None), tcam)


def test_attention_losses_by_hand_and_padding_ignored() -> None:
    mask = torch.tensor([[True, True, False]])
    a = torch.tensor([[0.2, 0.6, 0.99]])
    b = torch.tensor([[0.4, 0.2, 0.01]])
    tcam = torch.tensor([[[0.0, 0.0, 0.7], [0.0, 0.0, 0.1], [0.0, 0.0, 0.5]]])
    # guide |1 - a - bg|: a -> (0.1 + 0.3)/2 = 0.2 ; b -> (0.1 + 0.7)/2 = 0.4
    assert float(guide_loss([a, b], tcam, mask)) == pytest.approx(0.3, abs=1e-6)
    assert float(sparsity_loss([a, b], mask)) == pytest.approx((0.4 + 0.3) / 2, abs=1e-6)
    # mutual: 0.5 (mse + mse) of the same squared difference -> ((0.2)^2 + (0.4)^2)/2 = 0.1
    assert float(mutual_loss(a, b, mask)) == pytest.approx(0.1, abs=1e-6)


def test_videos_weigh_equally_whatever_their_length() -> None:
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    a = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 5.0, 5.0, 5.0]])
    assert float(sparsity_loss([a], mask)) == pytest.approx(0.5)


def test_mutual_loss_teaches_each_stream_from_the_other() -> None:
    a = torch.tensor([[0.2, 0.6]], requires_grad=True)
    b = torch.tensor([[0.4, 0.2]], requires_grad=True)
    mutual_loss(a, b, torch.ones(1, 2, dtype=torch.bool)).backward()
    # d/da of 0.5 mean((a - b)^2) = (a - b) / 2 per snippet
    assert torch.allclose(a.grad, torch.tensor([[-0.1, 0.2]]))
    assert torch.allclose(b.grad, torch.tensor([[0.1, -0.2]]))


def test_combine_targets_priorities() -> None:
    mask = torch.tensor([[True, True, True, True, False]])
    points = torch.zeros(1, 5, 2)
    points[0, 0, 1] = 1.0  # MaE point at 0
    points[0, 4, 0] = 1.0  # a point on a padded snippet: ignored
    fg = torch.zeros(1, 5, 2, dtype=torch.bool)
    fg[0, 0, 0] = True  # pseudo ME where the MaE point is: the point wins
    fg[0, 1, 1] = True
    bg = torch.tensor([[True, True, True, False, True]])  # at 1 pseudo foreground wins
    combined = combine_targets(points, hard_targets(fg, bg), mask)
    assert combined.targets[0].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert combined.weight[0].tolist() == [1, 1, 1, 0, 0]
    only_points = combine_targets(points, None, mask)
    assert only_points.targets[0, :, :2].tolist() == [[0, 1]] + [[0, 0]] * 4
    assert only_points.weight[0].tolist() == [1, 0, 0, 0, 0]


def test_point_snippets_keep_full_weight_whatever_the_pseudo_source_says() -> None:
    mask = torch.ones(1, 3, dtype=torch.bool)
    points = torch.zeros(1, 3, 2)
    points[0, 0, 0] = 1.0  # ME point at 0
    # a pseudo source that left the point snippet out (weight 0), soft-labelled it background and
    # gave its ME column a class weight of 0.01
    pseudo = SnippetTargets(
        targets=torch.tensor([[[0.0, 0.0, 0.9], [0.7, 0.0, 0.3], [0.0, 0.0, 1.0]]]),
        weight=torch.tensor([[0.0, 1.0, 1.0]]),
        class_weights=torch.tensor([[[0.01, 0.99], [0.5, 0.5], [0.5, 0.5]]]),
    )
    combined = combine_targets(points, pseudo, mask)
    assert combined.weight[0].tolist() == [1.0, 1.0, 1.0]
    assert combined.targets[0, 0].tolist() == [1.0, 0.0, 0.0]
    assert combined.class_weights[0, 0].tolist() == [1.0, 1.0]  # never scaled at a point
    assert combined.class_weights[0, 1].tolist() == [0.5, 0.5]
    tcam = torch.tensor([[[0.8, 0.1, 0.2], [0.6, 0.2, 0.4], [0.1, 0.1, 0.9]]])
    probs = snippet_probabilities(tcam, combined.class_weights)
    assert float(probs[0, 0, 0]) == pytest.approx(0.8)  # the point's ME probability as the TCAM has it
    expected = (
        bce(0.8, 1) + bce(0.1, 0) + bce(0.2, 0)
        + bce(0.3, 0.7) + bce(0.1, 0) + bce(0.4, 0.3)
        + bce(0.05, 0) + bce(0.05, 0) + bce(0.9, 1)
    ) / 3
    assert float(snippet_loss(probs, combined.targets, combined.weight)) == pytest.approx(expected, abs=1e-5)


def test_an_me_and_an_mae_point_in_one_snippet_make_it_positive_for_both() -> None:
    mask = torch.ones(1, 2, dtype=torch.bool)
    points = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    bg = torch.tensor([[True, True]])
    combined = combine_targets(points, hard_targets(torch.zeros(1, 2, 2, dtype=torch.bool), bg), mask)
    assert combined.targets[0].tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert combined.hard_labels()[0, 0].tolist() == [True, True, False]  # in both DFCL sets
    probs = torch.tensor([[[0.6, 0.7, 0.2], [0.5, 0.5, 0.5]]])
    loss = snippet_loss(probs, combined.targets, combined.weight)
    expected = (bce(0.6, 1) + bce(0.7, 1) + bce(0.2, 0) + 2 * bce(0.5, 0) + bce(0.5, 1)) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_soft_targets_in_the_snippet_loss() -> None:
    probs = torch.tensor([[[0.6, 0.1, 0.3], [0.2, 0.2, 0.9]]])
    targets = torch.tensor([[[0.75, 0.0, 0.25], [0.0, 0.0, 1.0]]])
    weight = torch.tensor([[1.0, 0.0]])
    expected = bce(0.6, 0.75) + bce(0.1, 0.0) + bce(0.3, 0.25)
    assert float(snippet_loss(probs, targets, weight)) == pytest.approx(expected, abs=1e-6)


def test_interval_targets_label_every_real_snippet() -> None:
    intervals = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]])
    mask = torch.tensor([[True, True, True, False]])
    full = interval_targets(intervals, mask)
    assert full.targets[0].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert full.weight[0].tolist() == [1, 1, 1, 0]


def test_loss_weights_validate() -> None:
    assert LossConfig().weight("guide") == 0.8
    with pytest.raises(ConfigError, match=r"model.loss.mutual: loss weight must be a number >= 0"):
        parse_settings(LossConfig, {"mutual": -1}, "model.loss")
