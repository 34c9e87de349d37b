"""Which of the network's maps become proposals (paper 3.2), decided in one place.

The paper: "these suppressed TCAMs and attention scores are used to generate expression
proposals". ``proposals.maps`` selects the arrays of a model prediction that
:func:`~pwes.inference.proposals.generate_proposals` receives:

- ``suppressed`` (default, the paper's reading): the attention, the suppressed TCAM
  (TCAM x attention) and the branch-2 video scores (top-k of the suppressed TCAM);
- ``plain`` (this project's earlier behaviour): the attention, the plain TCAM and the branch-1
  video scores.

The attention ranks the snippets either way (``proposals.rank_by``); the maps decide the
outer-inner confidence (and the class curves when ``rank_by`` includes ``class``). Training-time
evaluation, threshold calibration and ``pwes.spot`` all call :func:`proposals_from_prediction`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pwes.inference.proposals import PROPOSAL_MAPS, Proposal, ProposalConfig, ProposalConfigError, generate_proposals


class Prediction(Protocol):
    """What a prediction must carry (``pwes.model.module.VideoPrediction`` does)."""

    video: str
    attention: np.ndarray  # [T]
    tcam: np.ndarray  # [T, 3]
    tcam_suppressed: np.ndarray  # [T, 3]
    video_scores: np.ndarray  # [3] branch 1
    video_scores_suppressed: np.ndarray  # [3] branch 2


def proposal_maps(prediction: Prediction, maps: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(attention, tcam, video_scores)`` to build proposals from, for ``maps`` in
    ``suppressed`` | ``plain``."""
    if maps == "suppressed":
        return prediction.attention, prediction.tcam_suppressed, prediction.video_scores_suppressed
    if maps == "plain":
        return prediction.attention, prediction.tcam, prediction.video_scores
    raise ProposalConfigError(f"proposals.maps must be one of {', '.join(PROPOSAL_MAPS)}, got {maps!r}")


def proposals_from_prediction(prediction: Prediction, num_frames: int, fps: float, snippet_length: int, stride: int, config: ProposalConfig) -> list[Proposal]:
    """Typed proposals of one predicted video from the maps ``config.maps`` selects."""
    attention, tcam, video_scores = proposal_maps(prediction, config.maps)
    return generate_proposals(prediction.video, attention, tcam, video_scores, num_frames, fps, snippet_length, stride, config)
