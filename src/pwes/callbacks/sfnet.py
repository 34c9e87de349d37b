"""The SF-Net comparator callback (``callbacks/pseudo=sfnet``, ``ablation=sfnet``): from
``start_step`` on, mined background snippets (and from ``expand_step`` on, mined action frames)
from the clean forward go to the snippet loss, and SF-Net's actionness loss on the attention joins
the total as ``train/loss_sfnet_actionness``. The algorithms are :mod:`pwes.model.sfnet`; the
callback keeps no state.

Settings: ``conf/callbacks/pseudo/sfnet.yaml`` (``callbacks.sfnet``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from pwes.callbacks.base import PseudoLabelCallback
from pwes.data.batch import Batch
from pwes.model.module import StepContext
from pwes.model.mplg import point_mask
from pwes.model.network import BACKGROUND, NetworkOutput
from pwes.model.sfnet import SFNetConfig, actionness_loss, foreground_scores, mine_action_frames, mine_background
from pwes.model.targets import SnippetTargets, hard_targets
from pwes.settings import parse_settings


class SFNetCallback(PseudoLabelCallback):
    """SF-Net after ``start_step``; keywords are :class:`SFNetConfig` settings."""

    name = "sfnet"
    config_key = "callbacks.sfnet"

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(SFNetConfig, settings, "callbacks.sfnet")
        self.expanding = False

    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        cfg, mask = self.config, batch.mask.bool()
        if self.expanding:
            mined = mine_action_frames(foreground_scores(output.tcam), batch.points, mask, cfg.radius, cfg.ratio)
        else:
            mined = torch.zeros_like(batch.points, dtype=torch.bool)
        labelled = point_mask(batch.points, mask) | mined.any(dim=-1)
        background = mine_background(output.tcam[..., BACKGROUND], labelled, mask, cfg.background_ratio, cfg.background_pool)
        return hard_targets(mined, background)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.active(trainer, pl_module):
            return
        self.expanding = trainer.global_step >= self.config.expand_step
        targets = self.pseudo_targets(pl_module.clean_forward(batch), batch)
        ratio = self.config.background_ratio

        def actionness(context: StepContext) -> Tensor:
            """Sum over the mean and both stream attentions, as the code sums its three streams."""
            out = context.output
            positives = context.targets.hard_labels()[..., :BACKGROUND].any(dim=-1) if context.targets is not None else point_mask(context.batch.points, out.mask)
            curves = (out.attention, out.attention_rgb, out.attention_flow)
            return torch.stack([actionness_loss(a, positives, out.mask, ratio) for a in curves]).sum()

        self.contribute_targets(pl_module, targets, batch)
        pl_module.contribute(f"{self.name}_actionness", loss_term=actionness, weight=self.config.actionness_weight)
