"""The Table IX comparators as callbacks: SF-Net's action-frame and background mining and its
actionness loss, LACP's seeds, optimal sequence search and score-contrastive loss, MC-WES's
feature and duration consistency losses, on hand-built tensors with hand-checked values; each
callback trains a tiny module; the module's loss-term hook under video supervision; and the
module itself names none of the methods (the callback design carries them)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import compose_train
from tiny_model import QUIET, Recorder, batches, loader, make_module, make_trainer, synthetic_videos

from pwes.callbacks.lacp import LACPCallback
from pwes.callbacks.mcwes import DurationConsistencyCallback, FeatureConsistencyCallback
from pwes.callbacks.sfnet import SFNetCallback
from pwes.config import ConfigError, settings_without_effect
from pwes.model.lacp import LACPConfig, oic_score, oic_scores, optimal_sequence, score_contrastive_loss, select_seeds
from pwes.model.mcwes import DurationConsistencyConfig, duration_consistency_loss, feature_consistency_loss, soft_durations
from pwes.model.sfnet import actionness_loss, mine_action_frames, mine_background
from pwes.fold import build_callbacks

pytestmark = [pytest.mark.filterwarnings(QUIET), pytest.mark.usefixtures("one_thread")]
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- SF-Net
def mae_point_video(mae: list[float], me: float = 0.05) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One video: foreground scores [1, T, 2] (ME constant, MaE given), a MaE point at snippet 3."""
    t = len(mae)
    scores = torch.stack([torch.full((t,), me), torch.tensor(mae)], dim=-1)[None]
    points = torch.zeros(1, t, 2)
    points[0, 3, 1] = 1.0
    return scores, points, torch.ones(1, t, dtype=torch.bool)


def test_sfnet_mines_the_neighbour_whose_score_stays_close_to_the_point() -> None:
    scores, points, mask = mae_point_video([0.1, 0.2, 0.9, 1.0, 0.96, 0.5, 0.2, 0.1])
    mined = mine_action_frames(scores, points, mask, radius=3, ratio=0.95)
    # anchor 1.0: snippet 4 (0.96) passes, 2 (0.9) does not; 5 and 6 fail but do not stop the search
    assert torch.nonzero(mined[0]).tolist() == [[4, 1]]
    assert torch.nonzero(mine_action_frames(scores, points, mask, radius=3, ratio=0.85)[0]).tolist() == [[2, 1], [4, 1]]
    # radius 0 mines nothing; a snippet past the first one that fails is still examined
    assert not mine_action_frames(scores, points, mask, radius=0, ratio=0.0).any()
    far = mine_action_frames(*mae_point_video([0.1, 0.1, 0.1, 1.0, 0.2, 0.99, 0.1, 0.1]), radius=3, ratio=0.95)
    assert torch.nonzero(far[0]).tolist() == [[5, 1]]


def test_sfnet_mining_needs_the_same_leading_class_on_both_neighbours() -> None:
    scores, points, mask = mae_point_video([0.1, 0.2, 0.9, 1.0, 0.96, 0.5, 0.2, 0.1])
    scores[0, 5, 0] = 0.9  # the ME leads on snippet 5, the neighbour after snippet 4
    assert not mine_action_frames(scores, points, mask, radius=3, ratio=0.95).any()


def test_sfnet_background_is_the_highest_background_score_pooled_over_the_batch() -> None:
    background = torch.tensor([[0.9, 0.1, 0.8, 0.2], [0.95, 0.3, 0.92, 0.99]])
    labelled = torch.tensor([[False, True, False, False], [False, False, False, True]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    # one labelled snippet each, ratio 2: 4 picks among the 6 unlabelled, the batch's highest
    picked = mine_background(background, labelled, mask, ratio=2.0, pool="batch")
    assert picked.tolist() == [[True, False, True, False], [True, False, True, False]]
    picked = mine_background(background, labelled, mask, ratio=1.0, pool="batch")
    assert picked.tolist() == [[False, False, False, False], [True, False, True, False]]
    picked = mine_background(background, labelled, mask, ratio=1.0, pool="video")
    assert picked.tolist() == [[True, False, False, False], [True, False, False, False]]


def test_sfnet_actionness_loss_by_hand() -> None:
    attention = torch.tensor([[0.5, 0.8, 0.2, 0.9]])
    positives = torch.tensor([[False, True, False, False]])
    loss = actionness_loss(attention, positives, torch.ones(1, 4, dtype=torch.bool), ratio=1.0)
    # positive 0.8; one negative, the unlabelled snippet of highest actionness (0.9)
    assert float(loss) == pytest.approx(-math.log(0.8) - math.log(0.1), rel=1e-5)


# --------------------------------------------------------------------------------------- LACP
CURVE = np.array([0.1, 0.1, 0.8, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_lacp_oic_score_by_hand() -> None:
    prefix = np.concatenate([[0.0], np.cumsum(CURVE)])
    # [2, 4]: inner 2.5/3; outer floor(2 - 0.75) = 1 .. floor(4 + 0.75) = 4: snippet 1 alone (0.1)
    assert float(oic_scores(prefix, np.array(2), np.array(4), 0.25)) == pytest.approx(2.5 / 3 - 0.1)
    assert float(oic_score(torch.tensor(CURVE), 2, 4, 0.25)) == pytest.approx(2.5 / 3 - 0.1)
    # [0, 1]: no outer snippet inside the video reaches it (outer 0 by definition)
    assert float(oic_scores(prefix, np.array(0), np.array(1), 0.25)) == pytest.approx(0.1)


def test_lacp_seeds_by_hand() -> None:
    background = 1.0 - CURVE
    points = np.zeros((10, 2), dtype=bool)
    points[3, 1] = True
    action, seeds = select_seeds(background, points, action_threshold=0.1, background_threshold=0.95)
    # nothing reaches 0.95: before the point the argmax (0) and everything before it, after the
    # point the argmax (5) and everything after; 2 and 4 (background 0.2 > 0.1) are no action points
    assert seeds.astype(int).tolist() == [1, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert np.flatnonzero(action[:, 1]).tolist() == [3]
    action, _ = select_seeds(background, points, action_threshold=0.25, background_threshold=0.95)
    assert np.flatnonzero(action[:, 1]).tolist() == [2, 3, 4]


def test_lacp_optimal_sequence_on_a_toy_curve() -> None:
    seed = np.zeros(10, dtype=bool)
    seed[3] = True
    forced = np.zeros(10, dtype=bool)
    forced[[0, 8]] = True
    sequence, score = optimal_sequence(CURVE, seed, forced, 0.25)
    assert sequence.astype(int).tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    # background [0,1]: 0.9 - 0; action [2,4]: 2.5/3 - 0.1; background [5,9]: 0.9 - mean(0.9, 0.8)
    assert score == pytest.approx((0.9 + (2.5 / 3 - 0.1) + (0.9 - 0.15)) / 3)
    # exhaustive check over every admissible pair of boundaries
    best = -np.inf
    prefix_a, prefix_b = np.concatenate([[0.0], np.cumsum(CURVE)]), np.concatenate([[0.0], np.cumsum(1 - CURVE)])
    for s in range(1, 4):
        for e in range(3, 8):
            total = oic_scores(prefix_b, np.array(0), np.array(s - 1), 0.25) + oic_scores(prefix_a, np.array(s), np.array(e), 0.25) + oic_scores(prefix_b, np.array(e + 1), np.array(9), 0.25)
            best = max(best, float(total) / 3)
    assert score == pytest.approx(best)


def test_lacp_two_runs_get_background_between_them_and_the_edges_follow_the_seeds() -> None:
    curve = np.array([0.9, 0.9, 0.2, 0.8, 0.9])
    seed = np.array([True, False, False, False, True])
    sequence, _ = optimal_sequence(curve, seed, np.zeros(5, dtype=bool), 0.25)
    # no forced background: the lowest snippet between the runs is, and nothing precedes the first
    assert sequence.astype(int).tolist() == [1, 1, 0, 1, 1]


def test_lacp_score_contrastive_loss_by_hand() -> None:
    scores = torch.tensor(CURVE, dtype=torch.float32, requires_grad=True)
    sequences = torch.tensor([[0, 0, 1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)[..., None].expand(1, 10, 1)
    loss = score_contrastive_loss(scores[None, :, None], sequences, torch.tensor([[True]]), torch.ones(1, 10, dtype=torch.bool), 0.25)
    act = 1 - (2.5 / 3 - 0.1)
    bkg = ((1 - 0.9) + (1 - 0.75)) / 2
    assert float(loss.detach()) == pytest.approx((act + bkg) ** 2, rel=1e-5)
    loss.backward()
    assert scores.grad is not None and float(scores.grad.abs().sum()) > 0


def test_lacp_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"callbacks.lacp.scores: must be one of suppressed, tcam"):
        LACPCallback(scores="cas")
    assert LACPConfig().inflation == 0.25


# ------------------------------------------------------------------------------------- MC-WES
def test_feature_consistency_loss_by_hand() -> None:
    # video 0: foreground snippet [1, 0], background [0, 1]; video 1 the other way round
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    attention = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    tcam = torch.ones(2, 2, 3)
    mask = torch.ones(2, 2, dtype=torch.bool)
    both = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # d(f0, f1) = 1, d(f0, b1) = d(b0, f1) = 0: 0.5 x (relu(1 + 0.5) + relu(1 + 0.5)) = 1.5
    assert float(feature_consistency_loss(features, attention, tcam, both, mask, 0.5)) == pytest.approx(1.5)
    aligned = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    assert float(feature_consistency_loss(aligned, attention, tcam, both, mask, 0.5)) == pytest.approx(0.0)
    # no class shared by two videos: zero
    alone = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(feature_consistency_loss(features, attention, tcam, alone, mask, 0.5)) == 0.0


def test_duration_consistency_loss_by_hand() -> None:
    activation = torch.zeros(1, 10, 3)
    activation[0, 2:5, :2] = 0.8  # a 3-snippet block in both classes
    mask = torch.ones(1, 10, dtype=torch.bool)
    assert soft_durations(activation[..., :2], mask).tolist() == [[pytest.approx(3.0), pytest.approx(3.0)]]
    cfg = DurationConsistencyConfig(fps=30.0, stride=8)  # 3 snippets = 0.8 s
    mae_only = duration_consistency_loss(activation, torch.tensor([[0.0, 1.0]]), mask, cfg)
    assert float(mae_only) == pytest.approx(0.0, abs=1e-6)  # 0.8 s is a MaE's duration
    me_only = duration_consistency_loss(activation, torch.tensor([[1.0, 0.0]]), mask, cfg)
    assert float(me_only) == pytest.approx(math.log(0.8 / 0.5), rel=1e-5)  # 1.6 times an ME's 0.5 s
    short = torch.zeros(1, 10, 3)
    short[0, 4, 1] = 0.5  # one snippet, 0.267 s: too short for a MaE (0.5 s)
    assert float(duration_consistency_loss(short, torch.tensor([[0.0, 1.0]]), mask, cfg)) == pytest.approx(math.log(0.5 / (8 / 30)), rel=1e-4)


def test_duration_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"callbacks.duration_consistency.me_seconds: needs \[min, max\]"):
        DurationConsistencyCallback(me_seconds=[0.5, 0.2])


# ------------------------------------------------------------------------- callbacks and hook
@pytest.mark.parametrize("make", [lambda: SFNetCallback(start_step=0, expand_step=1), lambda: LACPCallback(start_step=1)])
def test_point_level_comparators_train_and_log_their_terms(make) -> None:
    L.seed_everything(0)
    recorder, callback = Recorder(), make()
    make_trainer(4, [callback, recorder]).fit(make_module(), loader(batches(synthetic_videos(8, 0)[0])))
    assert all(math.isfinite(loss) for loss in recorder.losses)
    term = "train/loss_sfnet_actionness" if isinstance(callback, SFNetCallback) else "train/loss_lacp_score"
    assert term in recorder.metrics[-1] and recorder.metrics[-1]["train/pseudo_bg"] > 0


def test_mcwes_terms_act_under_video_supervision_and_not_under_full() -> None:
    L.seed_everything(0)
    recorder = Recorder()
    make_trainer(3, [FeatureConsistencyCallback(), DurationConsistencyCallback(), recorder]).fit(make_module(supervision="video"), loader(batches(synthetic_videos(8, 0)[0])))
    assert {"train/loss_feature_consistency", "train/loss_duration_consistency"} <= set(recorder.metrics[-1])
    assert recorder.metrics[-1]["train/loss_duration_consistency"] > 0
    recorder = Recorder()
    make_trainer(2, [FeatureConsistencyCallback(), recorder]).fit(make_module(supervision="full"), loader(batches(synthetic_videos(8, 0)[0])))
    assert not any("train/loss_feature_consistency" in m for m in recorder.metrics)


def test_the_hook_takes_loss_terms_but_no_pseudo_labels_under_video_supervision() -> None:
    video, full = make_module(supervision="video"), make_module(supervision="full")
    assert video.takes_loss_terms and not video.takes_pseudo_labels and not full.takes_loss_terms
    video.contribute("extra", loss_term=lambda context: context.output.tcam.sum() * 0.0)
    targets = synthetic_videos(2, 0)[0]
    from pwes.model.targets import point_targets

    batch = batches(targets, 2)[0]
    with pytest.raises(RuntimeError, match="extra: the module takes no pseudo labels under supervision='video'"):
        video.contribute("extra", targets=point_targets(batch.points, batch.mask))
    with pytest.raises(RuntimeError, match="extra: the module takes no loss terms under supervision='full'"):
        full.contribute("extra", loss_term=lambda context: context.output.tcam.sum())


def test_the_module_knows_none_of_the_comparators() -> None:
    """The callback design carries them: the module file names no comparator (its one generic
    addition is the loss-term hook under video supervision, ``takes_loss_terms``)."""
    source = (ROOT / "src" / "pwes" / "model" / "module.py").read_text().lower()
    for name in ("sfnet", "sf-net", "lacp", "mcwes", "actionness", "optimal sequence", "duration", "feature_consistency"):
        assert name not in source, name
    assert re.search(r"def takes_loss_terms", source)


@pytest.mark.parametrize(
    ("ablation", "names", "supervision"),
    [
        ("sfnet", {"sfnet"}, "point"),
        ("lacp", {"lacp"}, "point"),
        ("mcwes", {"feature_consistency", "duration_consistency"}, "video"),
    ],
)
def test_each_comparator_is_one_config(ablation: str, names: set[str], supervision: str) -> None:
    cfg = compose_train([f"ablation={ablation}"])
    assert cfg.model.supervision == supervision
    built = {type(c).__name__ for c in build_callbacks(cfg)}
    expected = {"sfnet": "SFNetCallback", "lacp": "LACPCallback", "feature_consistency": "FeatureConsistencyCallback", "duration_consistency": "DurationConsistencyCallback"}
    assert {expected[n] for n in names} <= built
    if ablation != "mcwes":
        assert "DFCLCallback" not in built and "MPLGCallback" not in built


def test_loss_term_callbacks_are_no_effect_settings_under_full_supervision_only() -> None:
    video = compose_train(["ablation=mcwes"])
    assert settings_without_effect(video, ["callbacks.duration_consistency.weight=2"]) == []
    full = compose_train(["ablation=mcwes", "model.supervision=full"])
    assert settings_without_effect(full, ["callbacks.duration_consistency.weight=2"]) == [
        ("callbacks.duration_consistency.weight=2", "the duration_consistency callback does nothing under model.supervision=full (it acts under point and video supervision only)")
    ]


def test_table9_sweeps_the_six_jobs() -> None:
    text = (ROOT / "experiments" / "table9.yaml").read_text()
    assert "ablation: mplg_dfcl,sfnet,lacp,mcwes,baseline,full" in text
    assert "sweep_name: table9_${dataset.name}" in text


def test_an_expand_step_past_the_run_is_refused() -> None:
    from pwes.config import validate_run_settings

    cfg = compose_train(["ablation=sfnet", "trainer.max_steps=20", "dataset.pretrain_steps=10", "callbacks.sfnet.expand_step=20"])
    with pytest.raises(ConfigError, match=r"callbacks.sfnet.expand_step=20 must be below trainer.max_steps=20"):
        validate_run_settings(cfg)
