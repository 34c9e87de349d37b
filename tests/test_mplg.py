"""MPLG (and PPLM) on a hand-built 20-snippet video whose pseudo labels are worked out by hand.

The video (T = 20, one MaE point label at snippet 5, no ME point):

* features: background snippets [1, 0, 0]; the MaE around the point, [0.8, 0.6, 0] at 3, 7, 8,
  [0.6, 0.8, 0] at 4 and 6, [0, 1, 0] at the point 5; an ME-looking pair [0, 0, 1] at 15-16;
* attention: high at 4-7 but also at 10-11 (context with background features);
* TCAM: MaE high at 4-7 and 10-11 (and 0.88 at 1, where the attention is low); ME high at
  15-16, a class without a point label.

By hand: cosine similarity to the point = 0.6 / 0.8 / 1 / 0.8 / 0.6 / 0.6 at 3..8, 0 elsewhere,
already spanning [0, 1]. Refined attention at 3..8 = 0.18, 0.56, 0.80, 0.60, 0.36, 0.12, zero
elsewhere, so the coarse mask (floor(0.3 * 20) = 6 snippets) is {3..8}. The mean MaE TCAM is
8.35 / 20 = 0.4175, which drops 8 (0.3); of the rest 4, 5, 6, 7 exceed 0.8. The 12 lowest
attentions (0.05 to 0.30) are {0, 1, 2, 3, 8, 9, 12, 13, 14, 17, 18, 19}: the background.
"""

from __future__ import annotations

import math

import pytest
import torch

from pwes.config import ConfigError
from pwes.model.mplg import (
    MPLG_VARIANTS,
    MPLGConfig,
    class_weights,
    foreground_similarity,
    generate_mplg,
    loss_class_weights,
    masked_ranks,
    pool_sizes,
)
from pwes.model.losses import binary_cross_entropy, snippet_probabilities
from pwes.model.pplm import PPLMConfig, generate_pplm
from pwes.settings import parse_settings

T = 20
ATTENTION = [0.10, 0.15, 0.20, 0.30, 0.70, 0.80, 0.75, 0.60, 0.20, 0.10,
             0.90, 0.85, 0.05, 0.10, 0.15, 0.50, 0.55, 0.05, 0.10, 0.30]  # fmt: skip
MAE_PROB = [0.10, 0.88, 0.10, 0.50, 0.85, 0.95, 0.90, 0.82, 0.30, 0.10,
            0.95, 0.90, 0.10, 0.10, 0.10, 0.20, 0.20, 0.10, 0.10, 0.10]  # fmt: skip
BACKGROUND = {0, 1, 2, 3, 8, 9, 12, 13, 14, 17, 18, 19}


def hand_video() -> dict[str, torch.Tensor]:
    features = torch.tensor([[1.0, 0.0, 0.0]] * T)
    for t in (3, 7, 8):
        features[t] = torch.tensor([0.8, 0.6, 0.0])
    for t in (4, 6):
        features[t] = torch.tensor([0.6, 0.8, 0.0])
    features[5] = torch.tensor([0.0, 1.0, 0.0])
    features[15] = features[16] = torch.tensor([0.0, 0.0, 1.0])
    me = torch.full((T,), 0.1)
    me[15], me[16] = 0.95, 0.90
    mae = torch.tensor(MAE_PROB)
    tcam = torch.stack([me, mae, 1.0 - torch.maximum(me, mae)], dim=-1)
    points = torch.zeros(T, 2)
    points[5, 1] = 1.0
    return {
        "features": features[None],
        "attention": torch.tensor(ATTENTION)[None],
        "tcam": tcam[None],
        "points": points[None],
        "mask": torch.ones(1, T, dtype=torch.bool),
    }


def indices(flags: torch.Tensor) -> set[int]:
    return {int(i) for i in torch.nonzero(flags).flatten()}


def variant(name: str) -> MPLGConfig:
    return MPLGConfig(name=name, **MPLG_VARIANTS[name])


def test_foreground_similarity_is_normalised_with_the_point_at_one() -> None:
    video = hand_video()
    sim = foreground_similarity(video["features"], video["points"], video["mask"])[0]
    expected = torch.zeros(T)
    expected[[3, 7, 8]] = 0.6
    expected[[4, 6]] = 0.8
    expected[5] = 1.0
    assert torch.allclose(sim, expected, atol=1e-6)


def test_full_mplg_on_the_hand_built_video() -> None:
    labels = generate_mplg(**hand_video(), config=MPLGConfig())
    assert torch.allclose(
        labels.refined_attention[0, 3:9], torch.tensor([0.18, 0.56, 0.80, 0.60, 0.36, 0.12]), atol=1e-6
    )
    assert indices(labels.coarse_mask[0]) == {3, 4, 5, 6, 7, 8}
    assert indices(labels.foreground[0, :, 1]) == {4, 5, 6, 7}
    assert indices(labels.background[0]) == BACKGROUND
    # ME has no point label: no pseudo labels although its TCAM reaches 0.95, and weight 0
    assert not bool(labels.foreground[0, :, 0].any())
    assert float(labels.class_weights[0, :, 0].abs().sum()) == 0.0
    assert torch.allclose(labels.class_weights[0, :, 1], torch.ones(T))


def test_mplg_ca_keeps_the_high_attention_context_that_refinement_removes() -> None:
    labels = generate_mplg(**hand_video(), config=variant("ca"))
    # top 6 plain attention: 10, 11, 5, 6, 4, 7 -> all pass 0.8
    assert indices(labels.coarse_mask[0]) == {4, 5, 6, 7, 10, 11}
    assert indices(labels.foreground[0, :, 1]) == {4, 5, 6, 7, 10, 11}


def test_mplg_c_uses_class_probabilities_alone() -> None:
    labels = generate_mplg(**hand_video(), config=variant("c"))
    assert indices(labels.foreground[0, :, 1]) == {1, 4, 5, 6, 7, 10, 11}
    # snippet 1 is foreground now, so it leaves the background set
    assert indices(labels.background[0]) == BACKGROUND - {1}
    assert not bool(labels.foreground[0, :, 0].any())


def test_mplg_caf1_equals_full_when_the_video_has_one_class() -> None:
    full = generate_mplg(**hand_video(), config=variant("full"))
    caf1 = generate_mplg(**hand_video(), config=variant("caf1"))
    assert torch.equal(full.foreground, caf1.foreground)
    assert torch.equal(full.background, caf1.background)


def two_class_video() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # ME point [1, 0] at 0, MaE point [0, 1] at 1, a snippet [1, 1] at 2 and one [1, 0.2] at 3
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.2]]])
    points = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    return features, points, torch.ones(1, 4, dtype=torch.bool)


def test_class_weights_default_to_the_papers_plain_softmax() -> None:
    features, points, mask = two_class_video()
    w = class_weights(features, points, mask, temperature=1.0)[0]  # mode="softmax", the default
    e = math.e
    # snippet 0: cos 1 to the ME mean, 0 to the MaE mean -> softmax(1, 0) = (e, 1) / (e + 1)
    assert torch.allclose(w[0], torch.tensor([e / (e + 1), 1 / (e + 1)]), atol=1e-6)
    assert torch.allclose(w[2], torch.tensor([0.5, 0.5]), atol=1e-6)  # equally similar
    cos_me, cos_mae = 1.0 / math.sqrt(1.04), 0.2 / math.sqrt(1.04)
    assert float(w[3, 0]) == pytest.approx(1.0 / (1.0 + math.exp(cos_mae - cos_me)), abs=1e-6)
    assert torch.allclose(w.sum(dim=-1), torch.ones(4), atol=1e-6)  # a distribution over the classes
    # the MPLG default is this mode at temperature 1
    assert MPLGConfig().class_weights == "softmax" and MPLGConfig().class_temperature == 1.0
    # a one-class video: the present class gets 1.0, the absent one 0 (paper)
    one = class_weights(features, points * torch.tensor([0.0, 1.0]), mask, temperature=1.0)[0]
    assert torch.allclose(one, torch.tensor([[0.0, 1.0]] * 4))


def test_max_normalised_class_weights_keep_the_leading_class_at_one() -> None:
    features, points, mask = two_class_video()
    w = class_weights(features, points, mask, temperature=0.1, mode="max_normalised")[0]
    assert torch.allclose(w[0], torch.tensor([1.0, math.exp(-10.0)]), atol=1e-6)
    assert torch.allclose(w[1], torch.tensor([math.exp(-10.0), 1.0]), atol=1e-6)
    assert torch.allclose(w[2], torch.tensor([1.0, 1.0]), atol=1e-6)
    cos_me, cos_mae = 1.0 / math.sqrt(1.04), 0.2 / math.sqrt(1.04)
    assert torch.allclose(w[3], torch.tensor([1.0, math.exp((cos_mae - cos_me) / 0.1)]), atol=1e-6)


def test_mplg_caf2_suppresses_the_class_the_features_do_not_resemble() -> None:
    # two classes present; snippet 2 has a high MaE probability but ME-like features
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [0.0, 1.0], [1.0, 1.0]]])
    points = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    tcam = torch.tensor([[[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.2, 0.95, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]]])
    args = dict(features=features, attention=torch.full((1, 5), 0.5), tcam=tcam, points=points,
                mask=torch.ones(1, 5, dtype=torch.bool))
    wide = dict(top_ratio=1.0, background_multiplier=0.0)  # every snippet in the coarse pool
    # the earlier reading (max-normalised at temperature 0.1) keeps the leading class at weight 1
    wide.update(class_weights="max_normalised", class_temperature=0.1)
    ca = generate_mplg(**args, config=MPLGConfig(**MPLG_VARIANTS["ca"], **wide))
    caf2 = generate_mplg(**args, config=MPLGConfig(**MPLG_VARIANTS["caf2"], **wide))
    assert 2 in indices(ca.foreground[0, :, 1])
    assert 2 not in indices(caf2.foreground[0, :, 1])
    assert 3 in indices(caf2.foreground[0, :, 1]) and 0 in indices(caf2.foreground[0, :, 0])


def test_padding_with_garbage_changes_no_pseudo_label() -> None:
    video = hand_video()
    alone = generate_mplg(**video, config=MPLGConfig())
    extra = 7
    padded = {
        "features": torch.cat([video["features"], 50 * torch.randn(1, extra, 3)], dim=1),
        "attention": torch.cat([video["attention"], torch.ones(1, extra)], dim=1),
        "tcam": torch.cat([video["tcam"], torch.ones(1, extra, 3)], dim=1),
        "points": torch.cat([video["points"], torch.ones(1, extra, 2)], dim=1),
        "mask": torch.arange(T + extra)[None] < T,
    }
    labels = generate_mplg(**padded, config=MPLGConfig())
    assert torch.equal(labels.foreground[:, :T], alone.foreground)
    assert torch.equal(labels.background[:, :T], alone.background)
    assert not bool(labels.foreground[:, T:].any()) and not bool(labels.background[:, T:].any())


def test_batched_videos_get_their_own_labels() -> None:
    video = hand_video()
    alone = generate_mplg(**video, config=MPLGConfig())
    # second video: the same one without its point -> no foreground, same background pool
    batch = {k: torch.cat([v, v]) for k, v in video.items()}
    batch["points"][1] = 0.0
    labels = generate_mplg(**batch, config=MPLGConfig())
    assert torch.equal(labels.foreground[0], alone.foreground[0])
    assert not bool(labels.foreground[1].any())
    assert indices(labels.background[1]) == BACKGROUND


def test_pool_sizes_and_ranks() -> None:
    fg, bg = pool_sizes(torch.tensor([20, 3, 1]), 0.3, 2.0)
    assert fg.tolist() == [6, 1, 1] and bg.tolist() == [12, 2, 0]
    ranks = masked_ranks(torch.tensor([[0.5, 0.9, 0.5, 7.0]]), torch.tensor([[True, True, True, False]]), True)
    assert ranks.tolist() == [[1, 0, 2, 3]]


def test_pplm_modulates_by_attention_and_point_reliability() -> None:
    # scores = MaE x attention; reliability = similarity to the MaE point (0 at 10-11)
    # corrected: 4: 0.476, 5: 0.76, 6: 0.54, 7: 0.295 -> above 0.5: {5, 6}
    labels = generate_pplm(**hand_video(), config=PPLMConfig(threshold=0.5))
    assert indices(labels.foreground[0, :, 1]) == {5, 6}
    assert not bool(labels.foreground[0, :, 0].any())
    assert indices(labels.background[0]) == BACKGROUND


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"top_ratio": 0.4}, "callbacks.mplg.top_ratio"),
        ({"threshold": 1.5}, "callbacks.mplg.threshold"),
        ({"attention_mask": False, "foreground_similarity": True}, "callbacks.mplg.foreground_similarity"),
        ({"theta": 0.8}, "unknown setting(s) theta"),
        ({"threshold": "0.8"}, "callbacks.mplg.threshold: expected a number"),
        ({"class_similarity": "yes"}, "callbacks.mplg.class_similarity: expected true or false"),
        ({"class_weights": "max"}, "callbacks.mplg.class_weights"),
        ({"background": "lowest"}, "callbacks.mplg.background"),
        ({"background_min": -1}, "callbacks.mplg.background_min"),
        ({"weights_in_loss": 1}, "callbacks.mplg.weights_in_loss: expected true or false"),
    ],
)
def test_bad_mplg_settings_name_the_setting(settings: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(MPLGConfig, settings, "callbacks.mplg")
    assert fragment in str(err.value)


# ------------------------------------------------------------- readings the paper leaves open
def test_twice_foreground_background_is_twice_the_selected_foreground() -> None:
    labels = generate_mplg(**hand_video(), config=MPLGConfig(background="twice_foreground"))
    assert indices(labels.foreground[0, :, 1]) == {4, 5, 6, 7}
    # 2 x 4 = 8 lowest attentions among the snippets without a label (ties by time):
    # 12, 17 (0.05), 0, 9, 13, 18 (0.10), 1, 14 (0.15); 2 and 8 (0.20) are left out
    assert indices(labels.background[0]) == {0, 1, 9, 12, 13, 14, 17, 18}


def test_twice_foreground_edge_cases() -> None:
    # no pseudo foreground (theta out of reach): background_min = 1 snippet, the lowest (12)
    none = generate_mplg(**hand_video(), config=MPLGConfig(background="twice_foreground", threshold=0.99))
    assert not bool(none.foreground.any()) and indices(none.background[0]) == {12}
    zero = generate_mplg(**hand_video(), config=MPLGConfig(background="twice_foreground", threshold=0.99, background_min=0))
    assert not bool(zero.background.any())
    # more asked than there are unlabelled snippets: all of them (every snippet but the point 5)
    every = generate_mplg(**hand_video(), config=MPLGConfig(background="twice_foreground", threshold=0.99, background_min=50))
    assert indices(every.background[0]) == set(range(T)) - {5}
    # padding never becomes background
    video = hand_video()
    video["mask"][0, 15:] = False
    padded = generate_mplg(**video, config=MPLGConfig(background="twice_foreground", threshold=0.99, background_min=50))
    assert indices(padded.background[0]) == set(range(15)) - {5}


def snippet_zero_loss(config: MPLGConfig) -> float:
    """BCE summed over the classes at snippet 0 (pseudo background, outside the coarse mask): TCAM
    ME 0.1, MaE 0.1, background 0.9, targets (0, 0, 1)."""
    video = hand_video()
    labels = generate_mplg(**video, config=config)
    assert bool(labels.background[0, 0]) and not bool(labels.coarse_mask[0, 0])
    probabilities = snippet_probabilities(video["tcam"], loss_class_weights(labels, config))
    return float(binary_cross_entropy(probabilities[0, 0], torch.tensor([0.0, 0.0, 1.0])).sum())


def test_weights_in_loss_decides_whether_the_absent_class_gets_negatives() -> None:
    nll = -math.log(0.9)  # 0.10536: BCE of 0.1 against 0, and of 0.9 against 1
    # weights in the loss (default): the ME column (no ME point, weight 0) has probability 0 there:
    # no negative for ME; MaE (weight 1) and background count: 2 x 0.10536
    assert snippet_zero_loss(MPLGConfig()) == pytest.approx(2 * nll, abs=1e-5)
    # weights only select labels: the plain TCAM, ME's 0.1 is a negative too: 3 x 0.10536
    assert snippet_zero_loss(MPLGConfig(weights_in_loss=False)) == pytest.approx(3 * nll, abs=1e-5)
    assert loss_class_weights(generate_mplg(**hand_video(), config=MPLGConfig(weights_in_loss=False)), MPLGConfig(weights_in_loss=False)) is None


def test_coarse_mask_in_loss_applies_eq6s_mask() -> None:
    nll = -math.log(0.9)
    # snippet 0 lies outside M = {3..8}: both foreground columns are 0, only background learns
    config = MPLGConfig(coarse_mask_in_loss=True)
    assert snippet_zero_loss(config) == pytest.approx(nll, abs=1e-5)
    assert snippet_zero_loss(MPLGConfig(coarse_mask_in_loss=True, weights_in_loss=False)) == pytest.approx(nll, abs=1e-5)
    labels = generate_mplg(**hand_video(), config=config)
    weights = loss_class_weights(labels, config)
    assert indices(weights[0, :, 1]) == {3, 4, 5, 6, 7, 8} and float(weights[0, :, 0].sum()) == 0.0
    mask_only = loss_class_weights(labels, MPLGConfig(coarse_mask_in_loss=True, weights_in_loss=False))
    assert indices(mask_only[0, :, 0]) == indices(mask_only[0, :, 1]) == {3, 4, 5, 6, 7, 8}


def test_the_callback_hands_the_loss_weights_of_its_settings() -> None:
    from types import SimpleNamespace

    from pwes.callbacks.mplg import MPLGCallback

    video = hand_video()
    output = SimpleNamespace(features=video["features"], attention=video["attention"], tcam=video["tcam"])
    batch = SimpleNamespace(points=video["points"], mask=video["mask"])
    default = MPLGCallback().pseudo_targets(output, batch)
    assert torch.equal(default.class_weights[0, :, 0], torch.zeros(T))  # the ME column scaled to 0
    assert MPLGCallback(weights_in_loss=False).pseudo_targets(output, batch).class_weights is None
    twice = MPLGCallback(background="twice_foreground").pseudo_targets(output, batch)
    assert indices(twice.targets[0, :, 2]) == {0, 1, 9, 12, 13, 14, 17, 18}
