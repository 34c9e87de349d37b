"""Proposal generation: multi-top runs, outer-inner scores, NMS, frames and types, by hand."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from pwes.inference.maps import proposal_maps, proposals_from_prediction

from pwes.inference.proposals import (
    Proposal,
    ProposalConfig,
    ProposalConfigError,
    ProposalInputError,
    expression_type,
    generate_proposals,
    interval_iou,
    multi_top_runs,
    non_maximum_suppression,
    outer_inner_scores,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "proposals" / "default.yaml"


def bump_video(length: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attention with one bump on snippets 5..7 (peak at 6); the ME column is 0.8 there, 0.1
    elsewhere; the MaE column is flat 0.2; video scores ME 0.5, MaE 0.1."""
    attention = np.zeros(length)
    attention[[5, 6, 7]] = [0.9, 1.0, 0.9]
    tcam = np.zeros((length, 3))
    tcam[:, 0] = 0.1
    tcam[5:8, 0] = 0.8
    tcam[:, 1] = 0.2
    return attention, tcam, np.array([0.5, 0.1, 0.0])


def test_one_bump_gives_one_proposal_at_its_frames() -> None:
    attention, tcam, video_scores = bump_video()
    # K = ceil(0.15 * 20) = 3: candidates [6] (k=1), [5,6] (k=2, tie 5/7 goes to the earlier), [5,7] (k=3)
    proposals = generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig(k_max_ratio=0.15))
    assert len(proposals) == 1
    p = proposals[0]
    # snippets 5..7 of 8 frames: frames 40..63 (24 frames = 0.8 s at 30 fps -> MaE)
    assert (p.video, p.onset, p.offset, p.type, p.label, p.k) == ("v", 40, 63, "MaE", 0, 3)
    # ME: inside 0.8, margin max(1, ceil(0.75)) = 1 snippet each side (0.1, 0.1) -> 0.7, + 0.2 * 0.5
    assert p.score == pytest.approx(0.8)


def test_candidate_scores_by_hand_and_nms_keeps_the_best() -> None:
    attention, tcam, video_scores = bump_video()
    config = ProposalConfig(k_max_ratio=0.15, nms_threshold=1.0)  # NMS off: see every candidate
    found = {(p.onset, p.offset): p.score for p in generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, config)}
    # [6]: 0.8 - mean(0.8, 0.8) + 0.1; [5,6]: 0.8 - mean(0.1, 0.8) + 0.1; [5,7]: 0.7 + 0.1
    assert found == pytest.approx({(48, 55): 0.1, (40, 55): 0.45, (40, 63): 0.8})


def test_multi_top_runs_over_the_k_series() -> None:
    curve = np.array([0.1, 0.9, 0.2, 0.8, 0.7])
    # k=1: {1}; k=2: {1},{3}; k=3: {1},{3,4}; k=4: {1..4}; k=5: {0..4}
    assert multi_top_runs(curve, 1, 5) == {(1, 1): 1, (3, 3): 2, (3, 4): 3, (1, 4): 4, (0, 4): 5}
    assert multi_top_runs(curve, 2, 3) == {(1, 1): 2, (3, 3): 2, (3, 4): 3}
    assert multi_top_runs(curve, 9, 12) == {(0, 4): 5}  # k beyond T: all snippets


def test_outer_inner_scores_by_hand() -> None:
    curve = np.array([0.2, 0.4, 1.0, 0.8, 0.6, 0.0, 0.1])
    starts, ends = np.array([2, 0, 0]), np.array([4, 1, 6])
    # [2,4]: 0.8 - mean(0.4, 0.0); [0,1]: 0.3 - 1.0 (nothing left of it); [0,6]: no outside -> inner mean
    expected = [0.8 - 0.2, 0.3 - 1.0, curve.mean()]
    assert outer_inner_scores(curve, starts, ends, 0.25) == pytest.approx(expected)
    long_curve = np.arange(12, dtype=float)
    # [2,9]: length 8 -> margin 2 on each side: frames 0,1 and 10,11
    assert outer_inner_scores(long_curve, np.array([2]), np.array([9]), 0.25) == pytest.approx([5.5 - np.mean([0, 1, 10, 11])])
    assert outer_inner_scores(curve, starts, ends, 0.0) == pytest.approx([0.8, 0.3, curve.mean()])


def test_nms_removes_a_contained_duplicate() -> None:
    onsets, offsets = np.array([0, 10, 200, 99]), np.array([99, 20, 210, 120])
    scores = np.array([0.9, 0.5, 0.3, 0.2])
    # [10,20] lies inside [0,99] (IoU 0.11); [99,120] shares one frame (IoU 1/121 < 0.01) and stays
    assert non_maximum_suppression(onsets, offsets, scores, 0.01).tolist() == [0, 2, 3]
    assert non_maximum_suppression(onsets, offsets, scores, 0.005).tolist() == [0, 2]


def test_interval_iou_inclusive_and_exclusive() -> None:
    assert interval_iou(np.array([0]), np.array([9]), 5, 14).tolist() == pytest.approx([5 / 15])
    assert interval_iou(np.array([0]), np.array([9]), 5, 14, plus_one=False).tolist() == pytest.approx([4 / 14])


def test_frames_are_clipped_to_the_video() -> None:
    attention = np.zeros(8)
    attention[[6, 7]] = 1.0
    tcam = np.zeros((8, 3))
    tcam[6:, 0] = 1.0
    config = ProposalConfig(k_min=2, k_max_ratio=0.25)  # k = 2 only: the run [6, 7]
    # 8 snippets of 8 frames reach frame 63, but the video has 60 frames (extractor slack)
    (p,) = generate_proposals("v", attention, tcam, np.zeros(3), 60, 30.0, 8, 8, config)
    assert (p.onset, p.offset) == (48, 59)
    # with 56 frames snippet 7 starts past the end: the run keeps its part inside
    (p,) = generate_proposals("v", attention, tcam, np.zeros(3), 56, 30.0, 8, 8, config)
    assert (p.onset, p.offset) == (48, 55)


def test_overlapping_snippets_use_the_stride() -> None:
    attention = np.zeros(10)
    attention[3:6] = 1.0
    tcam = np.zeros((10, 3))
    config = ProposalConfig(k_min=3, k_max_ratio=0.3)
    # snippets of 8 frames every 2: snippet 3 starts at 6, snippet 5 ends at 10 + 7
    (p,) = generate_proposals("v", attention, tcam, np.zeros(3), 100, 30.0, 8, 2, config)
    assert (p.onset, p.offset, p.type) == (6, 17, "ME")


def test_type_by_duration() -> None:
    assert expression_type(0, 14, 30.0) == "ME"  # 15 frames = exactly 0.5 s
    assert expression_type(0, 15, 30.0) == "MaE"
    assert expression_type(0, 99, 200.0) == "ME"
    assert expression_type(0, 15, 30.0, me_max_seconds=1.0) == "ME"


def test_class_score_rule_duration_uses_the_class_of_the_type() -> None:
    attention = np.zeros(12)
    attention[4] = 1.0
    tcam = np.zeros((12, 3))
    tcam[4] = [0.3, 0.9, 0.0]  # MaE column scores higher, but one snippet (8 frames) is an ME
    base = dict(k_max_ratio=1 / 12)
    (best,) = generate_proposals("v", attention, tcam, np.zeros(3), 96, 30.0, 8, 8, ProposalConfig(**base))
    (typed,) = generate_proposals("v", attention, tcam, np.zeros(3), 96, 30.0, 8, 8, ProposalConfig(class_score="duration", **base))
    assert (best.type, best.label, best.score) == ("ME", 1, pytest.approx(0.9))
    assert (typed.type, typed.label, typed.score) == ("ME", 0, pytest.approx(0.3))


def test_rank_by_class_finds_what_attention_misses() -> None:
    attention = np.zeros(12)
    attention[2] = 1.0
    tcam = np.zeros((12, 3))
    tcam[2, 1] = 0.2
    tcam[8, 0] = 1.0  # an ME peak the attention does not see
    config = dict(k_max_ratio=1 / 12, nms_threshold=0.01)
    by_attention = generate_proposals("v", attention, tcam, np.zeros(3), 96, 30.0, 8, 8, ProposalConfig(**config))
    by_both = generate_proposals("v", attention, tcam, np.zeros(3), 96, 30.0, 8, 8, ProposalConfig(rank_by=("attention", "class"), **config))
    assert [(p.onset, p.offset) for p in by_attention] == [(16, 23)]
    assert [(p.onset, p.offset) for p in by_both] == [(64, 71), (16, 23)]


def test_random_video_gives_disjoint_sorted_deterministic_proposals() -> None:
    rng = np.random.default_rng(0)
    attention, tcam, video_scores = rng.random(200), rng.random((200, 3)), rng.random(3)
    run = lambda: generate_proposals("v", attention, tcam, video_scores, 1600, 30.0, 8, 8, ProposalConfig())  # noqa: E731
    proposals = run()
    assert proposals == run()
    assert len(proposals) > 5
    scores = [p.score for p in proposals]
    assert scores == sorted(scores, reverse=True)
    on, off = np.array([p.onset for p in proposals]), np.array([p.offset for p in proposals])
    for p in proposals:
        assert 0 <= p.onset <= p.offset <= 1599
        others = interval_iou(on, off, p.onset, p.offset)
        assert np.sum(others > 0.01) == 1  # only itself
    capped = generate_proposals("v", attention, tcam, video_scores, 1600, 30.0, 8, 8, ProposalConfig(max_proposals=3))
    assert capped == proposals[:3]


def test_bad_arrays_raise_a_message_naming_the_video() -> None:
    attention, tcam, video_scores = bump_video()
    with pytest.raises(ProposalInputError, match=r"video 'v7'.*tcam must have shape \[T, 3\]"):
        generate_proposals("v7", attention, tcam[:, :2], video_scores, 160, 30.0, 8, 8, ProposalConfig())
    attention[3] = np.nan
    with pytest.raises(ProposalInputError, match="attention contains NaN"):
        generate_proposals("v7", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig())


def test_config_file_matches_the_dataclass() -> None:
    node = OmegaConf.to_container(OmegaConf.load(CONF))
    assert set(node) == set(ProposalConfig.field_names())
    assert asdict(ProposalConfig(**node)) == asdict(ProposalConfig())
    assert ProposalConfig(**OmegaConf.load(CONF)).rank_by == ("attention",)  # a ListConfig works too


@pytest.mark.parametrize(
    ("setting", "value"),
    [("k_min", 0), ("k_max_ratio", 1.5), ("rank_by", ["attention", "flow"]), ("class_score", "mean"), ("nms_threshold", -0.1), ("me_max_seconds", 0), ("maps", "tcam"), ("max_seconds", 0), ("max_seconds", float("inf"))],
)
def test_bad_settings_are_named(setting: str, value: object) -> None:
    with pytest.raises(ProposalConfigError, match=f"proposals.{setting}"):
        ProposalConfig(**{setting: value})


def test_proposal_length() -> None:
    assert Proposal("v", 10, 19, 0.5, "ME").num_frames == 10


def test_min_score_drops_weak_proposals() -> None:
    attention, tcam, video_scores = bump_video()
    config = dict(k_max_ratio=0.3)  # K = 6 also finds runs in the flat background
    everything = generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig(**config))
    strong = generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig(min_score=0.5, **config))
    assert len(everything) > 1
    assert [(p.onset, p.offset) for p in strong] == [(40, 63)]


def prediction_with_a_distractor() -> SimpleNamespace:
    """A TCAM whose ME column peaks (0.9) at snippets 2-3, where the attention is low (0.05), and
    is 0.6 at snippets 10-12, where the attention is 1: the suppressed TCAM keeps only the latter.
    The branch-1 and branch-2 video scores differ, so both choices are seen in the scores."""
    attention = np.full(20, 0.05)
    attention[10:13] = 1.0
    tcam = np.zeros((20, 3))
    tcam[:, 0] = 0.1
    tcam[2:4, 0] = 0.9
    tcam[10:13, 0] = 0.6
    tcam[:, 1] = 0.1
    return SimpleNamespace(
        video="v", attention=attention, tcam=tcam, tcam_suppressed=tcam * attention[:, None],
        video_scores=np.array([0.9, 0.1, 0.0]), video_scores_suppressed=np.array([0.6, 0.1, 0.0]),
    )


def test_maps_choose_the_arrays_of_a_prediction() -> None:
    pred = prediction_with_a_distractor()
    suppressed = proposal_maps(pred, "suppressed")
    plain = proposal_maps(pred, "plain")
    assert suppressed[0] is pred.attention and suppressed[1] is pred.tcam_suppressed and suppressed[2] is pred.video_scores_suppressed
    assert plain[0] is pred.attention and plain[1] is pred.tcam and plain[2] is pred.video_scores
    assert ProposalConfig().maps == "suppressed"  # the paper's reading is the default


def test_suppressed_maps_drop_a_peak_the_attention_rejects() -> None:
    pred = prediction_with_a_distractor()
    base = dict(rank_by=("class",), k_max_ratio=0.1, margin=0.0, video_score_weight=0.2)  # k = 1, 2 on each class curve
    by_plain = proposals_from_prediction(pred, 160, 30.0, 8, 8, ProposalConfig(maps="plain", **base))
    by_suppressed = proposals_from_prediction(pred, 160, 30.0, 8, 8, ProposalConfig(maps="suppressed", **base))
    # plain: the ME peak at snippets 2-3 (from frame 16) wins, scored 0.9 + 0.2 * 0.9
    assert (by_plain[0].onset, by_plain[0].label) == (16, 0)
    assert by_plain[0].score == pytest.approx(0.9 + 0.2 * 0.9)
    # suppressed: that peak is gone (0.045); snippets 10-11 (from frame 80) win, 0.6 + 0.2 * 0.6
    assert (by_suppressed[0].onset, by_suppressed[0].label) == (80, 0)
    assert by_suppressed[0].score == pytest.approx(0.6 + 0.2 * 0.6)
    assert all(p.onset >= 80 or p.offset < 16 or p.score < 0.1 for p in by_suppressed)


def test_max_seconds_drops_long_candidates_before_nms() -> None:
    attention, tcam, video_scores = bump_video()
    base = dict(k_max_ratio=0.15)
    # candidates: [6] = frames 48..55 (0.27 s, 0.1), [5,6] = 40..55 (0.53 s, 0.45), [5,7] = 40..63 (0.8 s, 0.8)
    uncapped = generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig(**base))
    assert [(p.onset, p.offset) for p in uncapped] == [(40, 63)]  # NMS keeps the long one alone
    capped = generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig(max_seconds=0.6, **base))
    # the 0.8 s run is gone before NMS, so [5,6] (0.45) wins and suppresses [6] (IoU 8/16 > 0.01);
    # a cap after NMS would have left nothing
    assert [(p.onset, p.offset, round(p.score, 6)) for p in capped] == [(40, 55, 0.45)]
    exact = generate_proposals("v", attention, tcam, video_scores, 160, 30.0, 8, 8, ProposalConfig(max_seconds=16 / 30, nms_threshold=1.0, **base))
    assert sorted((p.onset, p.offset) for p in exact) == [(40, 55), (48, 55)]  # 16 frames = exactly the cap: kept
    assert ProposalConfig(**OmegaConf.load(CONF)).max_seconds is None  # default: no cap (the paper's)
