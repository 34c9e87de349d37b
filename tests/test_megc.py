"""The MEGC protocol on hand-built cases with known answers."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from pwes.data.layout import Interval, LayoutError, write_feature_set
from pwes.evaluation.figures import prf
from pwes.evaluation.megc import (
    Counts,
    EvaluationError,
    MatchConfig,
    match_video,
    matched_ground_truth,
    score,
)
from pwes.evaluation.proposal_files import read_ground_truth, read_proposals_csv, write_proposals_csv
from pwes.inference.proposals import Proposal, expression_type

CONF = Path(__file__).resolve().parents[1] / "conf" / "evaluation" / "default.yaml"


def gt(onset: int, offset: int, kind: str = "MaE", video: str = "v") -> Interval:
    return Interval(video, "s1", onset, offset, kind)


def prop(onset: int, offset: int, score: float = 0.5, kind: str = "MaE", video: str = "v") -> Proposal:
    return Proposal(video, onset, offset, score, kind)


def triple(counts: Counts) -> tuple[int, int, int]:
    return counts.tp, counts.fp, counts.fn


# ------------------------------------------------------------------------------ matching


def test_iou_exactly_half_counts() -> None:
    counts = match_video([prop(0, 4)], [gt(0, 9)])  # 5 / 10
    assert triple(counts["MaE"]) == (1, 0, 0)


def test_iou_049_does_not_count() -> None:
    counts = match_video([prop(0, 48)], [gt(0, 99)])  # 49 / 100
    assert triple(counts["MaE"]) == (0, 1, 1)


def test_inclusive_ends_and_the_no_plus_one_variant() -> None:
    # [0,9] vs [5,14]: 5 shared frames of 15 -> 1/3; without the +1: 4 / 14
    third = MatchConfig(iou_threshold=1 / 3)
    assert triple(match_video([prop(5, 14)], [gt(0, 9)], third)["MaE"]) == (1, 0, 0)
    assert triple(match_video([prop(5, 14)], [gt(0, 9)], MatchConfig(iou_threshold=0.34))["MaE"]) == (0, 1, 1)
    assert triple(match_video([prop(5, 14)], [gt(0, 9)], MatchConfig(iou_threshold=1 / 3, iou_plus_one=False))["MaE"]) == (0, 1, 1)
    assert triple(match_video([prop(5, 14)], [gt(0, 9)], MatchConfig(iou_threshold=0.28, iou_plus_one=False))["MaE"]) == (1, 0, 0)


def test_one_proposal_on_two_ground_truths_and_the_one_to_many_variant() -> None:
    truths = [gt(0, 9), gt(0, 8)]  # IoU 1.0 and 0.9 with the proposal
    assert triple(match_video([prop(0, 9)], truths)["MaE"]) == (1, 0, 1)
    assert triple(match_video([prop(0, 9)], truths, MatchConfig(one_to_many=True))["MaE"]) == (2, 0, 0)


def test_a_proposal_takes_the_ground_truth_of_largest_iou() -> None:
    # B = [2,11] listed first, A = [0,9]. First (0.9): IoU 9/12 with B, 10/11 with A -> A;
    # second (0.8): IoU 8/12 with B, 6/14 with A -> B. Taking the first listed would leave an FP.
    counts = match_video([prop(0, 10, 0.9), prop(4, 13, 0.8)], [gt(2, 11), gt(0, 9)])
    assert triple(counts["MaE"]) == (2, 0, 0)


def test_two_proposals_on_one_ground_truth() -> None:
    counts = match_video([prop(0, 9, 0.9), prop(1, 9, 0.5)], [gt(0, 9)])
    assert triple(counts["MaE"]) == (1, 1, 0)
    # the higher score is matched first even with the lower IoU: the set {score >= 0.9} is perfect
    metrics = score([prop(0, 5, 0.9), prop(0, 9, 0.5)], {"v": [gt(0, 9)]}, {"v": 30.0})
    assert (metrics["tp"], metrics["fp"], metrics["threshold_p"], metrics["f1_p"]) == (1, 1, 0.9, 1.0)


def test_type_mismatch_and_the_class_agnostic_variant() -> None:
    counts = match_video([prop(0, 9, kind="ME")], [gt(0, 9, "MaE")])
    assert triple(counts["ME"]) == (0, 1, 0)
    assert triple(counts["MaE"]) == (0, 0, 1)
    agnostic = match_video([prop(0, 9, kind="ME")], [gt(0, 9, "MaE")], MatchConfig(class_agnostic=True))
    assert triple(agnostic["ME"]) == (0, 0, 0)
    assert triple(agnostic["MaE"]) == (1, 0, 0)  # a TP counts under the ground truth's type


def test_empty_predictions_and_empty_videos() -> None:
    metrics = score([], {"v": [gt(0, 9, "ME")], "w": []}, {})
    assert (metrics["tp"], metrics["fp"], metrics["fn"], metrics["me_fn"]) == (0, 0, 1, 1)
    assert metrics["recall"] == metrics["precision"] == metrics["f1"] == metrics["f1_me_p"] == 0.0
    assert math.isnan(metrics["threshold_p"])
    assert metrics["num_videos"] == 2
    nothing = score([], {"w": []}, {})
    assert (nothing["tp"], nothing["fp"], nothing["fn"], nothing["f1"]) == (0, 0, 0, 0.0)
    assert triple(match_video([], [])["ME"]) == (0, 0, 0)


# ------------------------------------------------------------------------------ figures


def test_duration_cuts_re_type_proposals_but_not_ground_truth() -> None:
    fps = {"v": 30.0}
    # ME truth of 10 frames found; a MaE truth of 24 frames (0.8 s) found by a proposal that the
    # 1.0 s cut turns into an ME (an ME false positive; the truth stays MaE)
    truths = {"v": [gt(0, 9, "ME"), gt(100, 123, "MaE")]}
    metrics = score([prop(0, 9, 0.9, "ME"), prop(100, 123, 0.8, "MaE")], truths, fps)
    assert metrics["f1_me_0.5"] == metrics["me_f1"] == 1.0
    assert metrics["f1_me_1.0"] == pytest.approx(2 / 3)  # P = 1/2, R = 1
    assert metrics["f1"] == 1.0
    # an ME truth of 21 frames (0.7 s): its 0.7 s proposal is MaE at 0.5 s but ME at 1.0 s
    long_me = score([prop(0, 20, 0.9, "MaE")], {"v": [gt(0, 20, "ME")]}, fps)
    assert (long_me["me_f1"], long_me["f1_me_0.5"], long_me["f1_me_1.0"]) == (0.0, 0.0, 1.0)


def test_given_types_are_kept_for_the_main_figures() -> None:
    # a 10-frame proposal labelled MaE by its producer: me_* uses the label, f1_me_0.5 the duration
    metrics = score([prop(0, 9, 0.9, "MaE")], {"v": [gt(0, 9, "ME")]}, {"v": 30.0})
    assert (metrics["me_tp"], metrics["mae_fp"], metrics["f1_me_0.5"]) == (0, 1, 1.0)


def test_f1_p_is_the_me_f1_in_the_best_score_threshold_set() -> None:
    truths = {"v": [gt(0, 59), gt(100, 159), gt(300, 309, "ME")]}
    proposals = [
        prop(0, 59, 0.9),  # TP
        prop(100, 159, 0.8),  # TP
        prop(200, 209, 0.7, "ME"),  # FP
        prop(300, 309, 0.6, "ME"),  # TP
        prop(400, 409, 0.5, "ME"),  # FP
        prop(500, 509, 0.4, "ME"),  # FP
    ]
    metrics = score(proposals, truths, {"v": 30.0})
    # overall F1 of the sets >=0.9 .. >=0.4: 2/4, 4/5, 4/6, 6/7, 6/8, 6/9 -> best at 0.6
    assert (metrics["threshold_p"], metrics["num_proposals_p"]) == (0.6, 4)
    assert metrics["f1_p"] == pytest.approx(6 / 7)
    assert (metrics["recall_p"], metrics["precision_p"]) == (1.0, pytest.approx(3 / 4))  # 3 TP, 1 FP, 0 FN
    assert metrics["f1_me_p"] == pytest.approx(2 / 3)  # ME in that set: 1 TP, 1 FP
    assert metrics["f1_me_0.5"] == pytest.approx(2 / 5)  # all ME proposals: 1 TP, 3 FP
    assert metrics["f1"] == pytest.approx(6 / 9)


def test_f1_p_ties_go_to_the_lower_threshold_and_equal_scores_stay_together() -> None:
    truths = {"v": [gt(0, 59), gt(100, 159)]}
    # sets: >=0.9 (1,0,1) 2/3; >=0.8 (1,1,1) 1/2; >=0.7 (1,2,1) 2/5; >=0.6 (2,2,0) 2/3
    tied = [prop(0, 59, 0.9), prop(200, 259, 0.8), prop(300, 359, 0.7), prop(100, 159, 0.6)]
    assert score(tied, truths, {"v": 30.0})["threshold_p"] == 0.6
    same_score = [prop(0, 59, 0.9), prop(200, 259, 0.9)]
    metrics = score(same_score, {"v": [gt(0, 59)]}, {"v": 30.0})
    assert (metrics["num_proposals_p"], metrics["f1_p"]) == (2, pytest.approx(2 / 3))


def random_fold(rng: np.random.Generator, videos: list[str]) -> tuple[list[Proposal], dict[str, list[Interval]]]:
    """Random but seeded proposals and truths near each other, so that TP, FP and FN all occur."""
    proposals, truths = [], {}
    for video in videos:
        truths[video] = []
        for start in rng.choice(np.arange(0, 2000, 100), size=rng.integers(0, 5), replace=False):
            length = int(rng.integers(5, 60))
            kind = expression_type(int(start), int(start) + length - 1, 30.0)
            truths[video].append(Interval(video, "s", int(start), int(start) + length - 1, kind))
            jitter = rng.integers(-5, 6, size=2)
            onset = max(0, int(start + jitter[0]))
            offset = max(onset, int(start + length - 1 + jitter[1]))
            proposals.append(Proposal(video, onset, offset, float(rng.random()), expression_type(onset, offset, 30.0)))
        for start in rng.integers(0, 2000, size=rng.integers(0, 4)):
            offset = int(start + rng.integers(3, 50))
            proposals.append(Proposal(video, int(start), offset, float(rng.random()), expression_type(int(start), offset, 30.0)))
    return proposals, truths


COUNT_KEYS = ("tp", "fp", "fn", "me_tp", "me_fp", "me_fn", "mae_tp", "mae_fp", "mae_fn")


def test_pooling_folds_equals_summing_their_counts() -> None:
    rng = np.random.default_rng(0)
    folds = [random_fold(rng, [f"f{f}v{i}" for i in range(6)]) for f in range(3)]
    fps = {video: 30.0 for _, truths in folds for video in truths}
    per_fold = [score(p, t, fps) for p, t in folds]
    pooled_p = [p for proposals, _ in folds for p in proposals]
    pooled_t = {k: v for _, truths in folds for k, v in truths.items()}
    pooled = score(pooled_p, pooled_t, fps)
    for key in COUNT_KEYS:
        assert pooled[key] == sum(m[key] for m in per_fold)
    assert pooled["tp"] > 0 and pooled["fp"] > 0 and pooled["fn"] > 0
    recall, precision, f1 = prf(pooled["tp"], pooled["fp"], pooled["fn"])
    assert (pooled["recall"], pooled["precision"], pooled["f1"]) == (recall, precision, f1)


def test_unknown_video_and_missing_fps_are_errors() -> None:
    with pytest.raises(EvaluationError, match="video 'x'.*not among the 1 evaluated videos"):
        score([prop(0, 9, video="x")], {"v": []}, {"v": 30.0, "x": 30.0})
    with pytest.raises(EvaluationError, match="frame rate.*'v'"):
        score([prop(0, 9)], {"v": []}, {})
    with pytest.raises(EvaluationError, match="onset 9 > offset 0"):
        score([prop(9, 0)], {"v": []}, {"v": 30.0})
    with pytest.raises(EvaluationError, match="one video"):
        match_video([prop(0, 9, video="a")], [gt(0, 9, video="b")])


def test_score_is_fast_on_a_protocol_sized_input() -> None:
    rng = np.random.default_rng(1)
    truths = {f"v{i}": [gt(int(s), int(s) + 40, video=f"v{i}") for s in range(100, 2900, 700)] for i in range(100)}
    proposals = []
    for video in truths:
        starts = rng.integers(0, 2900, size=300)
        proposals += [prop(int(s), int(s) + int(rng.integers(5, 60)), float(rng.random()), video=video) for s in starts]
    begin = time.perf_counter()
    metrics = score(proposals, truths, {video: 30.0 for video in truths})
    elapsed = time.perf_counter() - begin
    assert metrics["num_proposals"] == 30000
    assert elapsed < 5.0, f"score() took {elapsed:.2f} s on 100 videos x 300 proposals"


def test_config_file_matches_the_dataclass() -> None:
    node = OmegaConf.to_container(OmegaConf.load(CONF))
    assert asdict(MatchConfig(**node)) == asdict(MatchConfig())
    with pytest.raises(EvaluationError, match="evaluation.iou_threshold"):
        MatchConfig(iou_threshold=0)
    assert MatchConfig().calibration == "auto"  # points unless the model was trained on intervals (test_calibration.py)
    with pytest.raises(EvaluationError, match="evaluation.calibration must be one of auto, points, intervals"):
        MatchConfig(calibration="test")


# ------------------------------------------------------------------------------ files


def test_proposals_csv_round_trip(tmp_path: Path) -> None:
    proposals = [Proposal("a", 0, 9, 0.1 + 0.2, "ME"), Proposal("b", 5, 40, -1.5, "MaE")]
    extras = {"a": {"subject": "s1", "fold": "s1"}, "b": {"subject": "s2", "fold": "s2"}, "unused": {"subject": "s9", "fold": "s9"}}
    path = write_proposals_csv(tmp_path / "out" / "proposals.csv", proposals, extras)
    assert path.read_text().splitlines()[:2] == ["video,subject,fold,onset,offset,score,type", "a,s1,s1,0,9,0.30000000000000004,ME"]
    assert read_proposals_csv(path, {"a", "b"}) == proposals
    plain = write_proposals_csv(tmp_path / "plain.csv", proposals)
    assert plain.read_text().splitlines()[0] == "video,onset,offset,score,type"
    with pytest.raises(EvaluationError, match="no value of extra column.s. fold for video 'b'"):
        write_proposals_csv(tmp_path / "bad.csv", proposals, {"a": {"subject": "s1", "fold": "s1"}, "b": {"subject": "s2"}})


def test_ground_truth_and_untyped_proposals_from_files(tmp_path: Path) -> None:
    videos = [{"video": "a", "subject": "s1", "num_frames": 300, "fps": 30}, {"video": "b", "subject": "s2", "num_frames": 200, "fps": 200}]
    annotations = [{"video": "a", "subject": "s1", "onset": 10, "apex": -1, "offset": 19, "type": "ME"}]
    write_feature_set(tmp_path, videos, annotations)  # no feature files: not needed here
    infos, intervals = read_ground_truth(tmp_path / "videos.csv", tmp_path / "annotations.csv")
    assert intervals == {"a": [Interval("a", "s1", 10, 19, "ME", None)], "b": []}
    assert (infos["b"].num_frames, infos["b"].fps) == (200, 200.0)
    pred = tmp_path / "pred.csv"
    pred.write_text("video,onset,offset,score\na,10,25,0.5\nb,0,99,0.4\n")
    # 16 frames at 30 fps = 0.53 s -> MaE; 100 frames at 200 fps = 0.5 s -> ME
    assert [p.type for p in read_proposals_csv(pred, infos)] == ["MaE", "ME"]
    with pytest.raises(EvaluationError, match="no type given"):
        read_proposals_csv(pred, {"a", "b"})
    (tmp_path / "annotations.csv").write_text("video,subject,onset,apex,offset,type\na,s1,10,,400,ME\n")
    with pytest.raises(LayoutError, match=r"annotations.csv:2: interval \[10, 400\] outside video 'a'"):
        read_ground_truth(tmp_path / "videos.csv", tmp_path / "annotations.csv")


def test_matched_ground_truth_names_what_each_proposal_matched() -> None:
    # IoU 0.5 rule: [0,9] matches [0,9]; [40,49] overlaps [40,59] by 10/20 = 0.5; the lower-scoring
    # duplicate of [0,9] finds it taken (a false positive); [80,89] is an ME, no MaE proposal takes it
    truth = [gt(0, 9), gt(40, 59), gt(80, 89, "ME")]
    props = [prop(0, 9, 0.9), prop(40, 49, 0.5), prop(1, 9, 0.3), prop(80, 89, 0.8)]
    matches = matched_ground_truth(props, truth)
    assert matches == [[truth[0]], [truth[1]], [], []]
    # a score threshold keeps the matches of the proposals it keeps (matching visits them by score)
    assert matched_ground_truth([props[0], props[1]], truth) == matches[:2]
    assert sum(map(len, matches)) == match_video(props, truth)["MaE"].tp
