"""What a checkpoint's user needs besides the weights, as one typed record.

Training (:mod:`pwes.fold`) writes it under the ``pwes`` key of every checkpoint it saves;
:mod:`pwes.spot` reads the snippet geometry, fps, feature widths, proposal settings and threshold
from it, and :mod:`pwes.rescore` the subjects the model was trained on. On disk it stays a plain
dict (:meth:`CheckpointInfo.to_dict`), so a checkpoint loads without pwes classes; checkpoints
written before a field existed lack its key and load with that field unset (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pwes.inference.proposals import ProposalConfig

# The keys a checkpoint must have for spotting; every other field is optional (older checkpoints).
REQUIRED = ("feature_dims", "snippet_length", "stride", "fps", "proposals")


class CheckpointInfoError(ValueError):
    """A checkpoint's ``pwes`` metadata is missing or incomplete; the message says what lacks."""


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """The ``pwes`` record of a checkpoint. Field order is the on-disk key order."""

    dataset: str | None = None  # dataset.name of the run
    feature_dims: tuple[int, int]  # RGB and flow feature widths the network reads
    snippet_length: int  # frames per snippet of the features it was trained on
    stride: int  # frames between snippet starts
    fps: float  # dataset.fps of training (the time a snippet spans)
    proposals: dict[str, Any]  # the proposals.* settings of training
    evaluation: dict[str, Any] | None = None  # the evaluation.* settings of training
    train_subjects: tuple[str, ...] | None = None  # the subjects it trained on (pwes.rescore checks them)
    validation_subjects: tuple[str, ...] = ()  # the fold's validation subjects, held out of training
    seed: int | None = None
    score_threshold: float | None = None  # the calibrated operating point (-inf keeps every proposal)
    score_threshold_rule: str | None = None  # points or intervals (pwes.evaluation.calibration)
    train_f1_at_threshold: float | None = None  # F1 the threshold reached where it was chosen, 4 decimals
    score_threshold_source: str | None = None  # "train" or "validation"; only where the fold had a validation split

    def to_dict(self) -> dict[str, Any]:
        """The plain dict stored as ``checkpoint["pwes"]`` (unset optional fields left out, lists
        where the record holds tuples)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, metadata: Any) -> CheckpointInfo:
        """The record a checkpoint's ``pwes`` dict describes; keys it lacks stay unset, keys this
        version does not know are ignored. CheckpointInfoError when a spotting key is missing."""
        if not metadata:
            raise CheckpointInfoError("no 'pwes' metadata")
        missing = [k for k in REQUIRED if k not in metadata] if isinstance(metadata, Mapping) else list(REQUIRED)
        if missing:
            raise CheckpointInfoError(f"the 'pwes' metadata lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in metadata.items() if k in known}
        for key in ("feature_dims", "train_subjects", "validation_subjects"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def from_checkpoint(cls, checkpoint: Any) -> CheckpointInfo:
        """The record of a loaded checkpoint (the dict ``torch.load`` returns)."""
        return cls.from_dict(checkpoint.get("pwes") if isinstance(checkpoint, Mapping) else None)

    def proposal_config(self) -> ProposalConfig:
        """The proposal settings of training; checkpoints written before ``proposals.maps``
        existed built their threshold on the plain maps."""
        return ProposalConfig(**{"maps": "plain", **self.proposals})

    def threshold(self) -> float:
        """The stored operating point; checkpoints without one keep every proposal (-inf)."""
        return float(self.score_threshold) if self.score_threshold is not None else -math.inf
