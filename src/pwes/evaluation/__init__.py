"""The MEGC evaluation protocol (paper section 4.2): matching, the paper's figures and the
proposal files."""

from pwes.evaluation.megc import (
    Counts,
    EvaluationError,
    MatchConfig,
    match_video,
    score,
)
from pwes.evaluation.proposal_files import read_ground_truth, read_proposals_csv, write_proposals_csv

__all__ = [
    "Counts",
    "EvaluationError",
    "MatchConfig",
    "match_video",
    "read_ground_truth",
    "read_proposals_csv",
    "score",
    "write_proposals_csv",
]
