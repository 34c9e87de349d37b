"""ORACLE pseudo labels: an upper bound, not a method (``ablation=oracle_mplg_bg``, ``oracle_all_bg``).

The pseudo foreground is the truth: every snippet inside an annotated interval of the training
videos (the snippet rule of :func:`pwes.data.points.snippet_intervals`, as full supervision and the
diagnostics use it), of its class (both where an ME and a MaE overlap). The background is either
MPLG's rule on the clean forward's attention (``background=lowest_0.6T`` or ``twice_foreground``,
:func:`pwes.model.mplg.background_labels`) or every other real snippet (``background=all``). Point
labels stay on top (``PWESModule.snippet_targets``); the foreground columns are the plain TCAM
(no class weights). Everything else (points before ``start_step``, DFCL, losses) is PWES's.

So a row with the oracle says how far better pseudo labels alone could take PWES: with MPLG's
background, how much of the gap is MPLG's foreground; with all background, how much is the
background rule.

**This is the one path from onset/offset into weak training** (besides
``model.supervision=full``): the protocol hands the fold's training intervals to every callback that
declares ``set_ground_truth`` (:func:`pwes.callbacks.diagnostics.attach_ground_truth`), and this
callback refuses to run without them. ``tests/test_leakage.py`` checks that the default training
never reads the intervals and that this callback does.

Settings: ``conf/callbacks/pseudo/oracle.yaml`` (``callbacks.oracle``).
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import numpy as np

from pwes.callbacks.base import PseudoLabelCallback
from pwes.callbacks.diagnostics import batch_ground_truth
from pwes.config import ConfigError
from pwes.data.batch import Batch
from pwes.model.mplg import BACKGROUND_RULES, background_labels, point_mask, pool_sizes
from pwes.model.network import NetworkOutput
from pwes.model.targets import SnippetTargets, hard_targets

ORACLE_BACKGROUNDS = (*BACKGROUND_RULES, "all")


class OracleCallback(PseudoLabelCallback):
    """Interval pseudo foreground after ``start_step`` (an upper bound; module docstring)."""

    name = "oracle"
    config_key = "callbacks.oracle"

    def __init__(
        self,
        start_step: int = 0,
        background: str = "lowest_0.6T",
        top_ratio: float = 0.3,
        background_multiplier: float = 2.0,
        background_min: int = 1,
    ) -> None:
        super().__init__(start_step)
        if background not in ORACLE_BACKGROUNDS:
            raise ConfigError(f"{self.config_key}.background: {background!r} is not one of {', '.join(ORACLE_BACKGROUNDS)}")
        if not 0.0 < float(top_ratio) <= 1.0:
            raise ConfigError(f"{self.config_key}.top_ratio: must be in (0, 1], got {top_ratio!r}")
        if float(background_multiplier) < 0.0:
            raise ConfigError(f"{self.config_key}.background_multiplier: must be >= 0, got {background_multiplier!r}")
        if isinstance(background_min, bool) or not isinstance(background_min, int) or background_min < 0:
            raise ConfigError(f"{self.config_key}.background_min: must be a whole number >= 0, got {background_min!r}")
        self.background = background
        self.top_ratio, self.background_multiplier, self.background_min = float(top_ratio), float(background_multiplier), background_min
        self.truth: Mapping[str, np.ndarray] | None = None

    def set_ground_truth(self, truth: Mapping[str, np.ndarray]) -> None:
        """The map video -> bool [T, C] of snippets inside an interval (the training videos)."""
        self.truth = truth

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.truth is None and pl_module.takes_pseudo_labels:
            raise ConfigError(f"{self.config_key}: the oracle needs the training intervals (the protocol attaches them); none were given")

    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        if self.truth is None:
            raise ConfigError(f"{self.config_key}: the oracle needs the training intervals (the protocol attaches them); none were given")
        mask = batch.mask.bool()
        foreground = batch_ground_truth(self.truth, batch, self.config_key).to(mask.device) & mask[..., None]
        labelled = point_mask(batch.points, mask)
        if self.background == "all":
            background = mask & ~foreground.any(dim=-1) & ~labelled
        else:
            _, pool = pool_sizes(mask.sum(dim=1), self.top_ratio, self.background_multiplier)
            attention = output.attention.detach().float()
            background = background_labels(self.background, attention, mask, foreground, labelled, pool, self.background_multiplier, self.background_min)
        return hard_targets(foreground, background)
