"""The MPLG callback (paper 3.3): from ``start_step`` on, MPLG pseudo labels from the clean
forward go to the snippet loss, with step 3's class weights on the foreground probabilities
(when the variant uses class similarity and ``weights_in_loss``; times the coarse mask with
``coarse_mask_in_loss``: :func:`pwes.model.mplg.loss_class_weights`). The algorithm is :mod:`pwes.model.mplg`; MPLG keeps no
state between batches, so nothing needs saving in a checkpoint.

Settings: ``conf/callbacks/pseudo/mplg.yaml`` (``callbacks.mplg``).
"""

from __future__ import annotations

from typing import Any

from pwes.callbacks.base import PseudoLabelCallback
from pwes.config import ConfigError
from pwes.data.batch import Batch
from pwes.model.mplg import MPLG_VARIANTS, MPLGConfig, generate_mplg, loss_class_weights
from pwes.model.network import NetworkOutput
from pwes.model.targets import SnippetTargets, hard_targets
from pwes.settings import parse_settings


class MPLGCallback(PseudoLabelCallback):
    """MPLG pseudo labels after ``start_step``; ``variant`` is a Table II row (``full``, ``c``,
    ``ca``, ``caf1``, ``caf2``), the other keywords are :class:`MPLGConfig` settings."""

    name = "mplg"
    config_key = "callbacks.mplg"

    def __init__(self, start_step: int = 0, variant: str = "full", **settings: Any) -> None:
        super().__init__(start_step)
        if variant not in MPLG_VARIANTS:
            raise ConfigError(f"callbacks.mplg.variant: {variant!r} is not one of {', '.join(MPLG_VARIANTS)}")
        flags = set(MPLG_VARIANTS[variant]) & set(settings)
        if flags or "name" in settings:
            raise ConfigError(f"callbacks.mplg: {', '.join(sorted(flags | ({'name'} & set(settings))))} follow from variant; set variant instead")
        self.config = parse_settings(MPLGConfig, {**MPLG_VARIANTS[variant], "name": variant, **settings}, "callbacks.mplg")

    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        labels = generate_mplg(output.features, output.attention, output.tcam, batch.points, batch.mask, config=self.config)
        return hard_targets(labels.foreground, labels.background, loss_class_weights(labels, self.config))
