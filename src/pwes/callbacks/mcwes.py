"""MC-WES's consistency losses as loss-term callbacks (``ablation=mcwes``): from ``start_step``
on, the attention-guided feature consistency term (``train/loss_feature_consistency``) and the
attention-guided duration consistency term (``train/loss_duration_consistency``) join the total.
They are :class:`pwes.callbacks.base.LossTermCallback`\\ s, so they act under video supervision,
the setting of MC-WES (and under point supervision too, if one wants them on PWES). The losses are
:mod:`pwes.model.mcwes`; the callbacks keep no state.

Settings: ``conf/callbacks/mcwes/feature_consistency.yaml``, ``duration_consistency.yaml``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import Tensor

from pwes.callbacks.base import LossTermCallback
from pwes.model.mcwes import DurationConsistencyConfig, FeatureConsistencyConfig, duration_consistency_loss, feature_consistency_loss
from pwes.model.module import StepContext
from pwes.model.network import parse_settings


class FeatureConsistencyCallback(LossTermCallback):
    """The attention-guided feature consistency loss; keywords are :class:`FeatureConsistencyConfig` settings."""

    name = "feature_consistency"
    config_key = "callbacks.feature_consistency"

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(FeatureConsistencyConfig, settings, self.config_key)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.active(trainer, pl_module):
            return
        margin = self.config.margin

        def term(context: StepContext) -> Tensor:
            out = context.output
            return feature_consistency_loss(out.features, out.attention, out.tcam, context.batch.video_labels, out.mask, margin)

        pl_module.contribute(self.name, loss_term=term, weight=self.config.weight)


class DurationConsistencyCallback(LossTermCallback):
    """The attention-guided duration consistency loss; keywords are :class:`DurationConsistencyConfig` settings."""

    name = "duration_consistency"
    config_key = "callbacks.duration_consistency"

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(DurationConsistencyConfig, settings, self.config_key)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.active(trainer, pl_module):
            return
        cfg = self.config

        def term(context: StepContext) -> Tensor:
            out = context.output
            return duration_consistency_loss(out.tcam_suppressed, context.batch.video_labels, out.mask, cfg)

        pl_module.contribute(self.name, loss_term=term, weight=cfg.weight)
