"""MC-WES's consistency losses as loss-term callbacks (``ablation=mcwes``): from ``start_step``
on, the attention-guided feature consistency term (``train/loss_feature_consistency``) and the
attention-guided duration consistency term (``train/loss_duration_consistency``) join the total.
They are :class:`pwes.callbacks.base.LossTermCallback`\\ s, so they act under video supervision,
the setting of MC-WES (and under point supervision too, if one wants them on PWES). The losses are
:mod:`pwes.model.mcwes`; the callbacks keep no state.

Settings: ``conf/callbacks/mcwes/feature_consistency.yaml``, ``duration_consistency.yaml``.
"""

from __future__ import annotations

from torch import Tensor

from pwes.callbacks.base import LossTermCallback
from pwes.model.mcwes import DurationConsistencyConfig, FeatureConsistencyConfig, duration_consistency_loss, feature_consistency_loss
from pwes.model.module import StepContext


class FeatureConsistencyCallback(LossTermCallback):
    """The attention-guided feature consistency loss; keywords are :class:`FeatureConsistencyConfig` settings."""

    name = "feature_consistency"
    config_key = "callbacks.feature_consistency"
    settings_type = FeatureConsistencyConfig

    def loss(self, context: StepContext) -> Tensor:
        out = context.output
        return feature_consistency_loss(out.features, out.attention, out.tcam, context.batch.video_labels, out.mask, self.config.margin)


class DurationConsistencyCallback(LossTermCallback):
    """The attention-guided duration consistency loss; keywords are :class:`DurationConsistencyConfig` settings."""

    name = "duration_consistency"
    config_key = "callbacks.duration_consistency"
    settings_type = DurationConsistencyConfig

    def loss(self, context: StepContext) -> Tensor:
        out = context.output
        return duration_consistency_loss(out.tcam_suppressed, context.batch.video_labels, out.mask, self.config)
