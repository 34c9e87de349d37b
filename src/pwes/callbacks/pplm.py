"""The PPLM callback (Table I's CRRC-Net-style alternative to MPLG): from ``start_step`` on, PPLM
pseudo labels from the clean forward go to the snippet loss (no class re-weighting). The
algorithm is :mod:`pwes.model.pplm`; it keeps no state.

Settings: ``conf/callbacks/pseudo/pplm.yaml`` (``callbacks.pplm``).
"""

from __future__ import annotations

from typing import Any

from pwes.callbacks.base import PseudoLabelCallback
from pwes.data.batch import Batch
from pwes.model.network import NetworkOutput
from pwes.model.pplm import PPLMConfig, generate_pplm
from pwes.model.targets import SnippetTargets, hard_targets
from pwes.settings import parse_settings


class PPLMCallback(PseudoLabelCallback):
    """PPLM pseudo labels after ``start_step``; keywords are :class:`PPLMConfig` settings."""

    name = "pplm"
    config_key = "callbacks.pplm"

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(PPLMConfig, settings, "callbacks.pplm")

    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        labels = generate_pplm(output.features, output.attention, output.tcam, batch.points, batch.mask, config=self.config)
        return hard_targets(labels.foreground, labels.background)
