"""The DFCL callback (paper 3.4, eq. 17): from ``start_step`` on, the contrastive term joins the
loss, and the callback owns the memory bank.

Per training step the callback contributes a loss term. The feature *sets* (which snippets are
ME, MaE, background) come from the snippet targets the module used (point labels over the
pseudo labels of the clean forward). The *anchors* are region vectors of the training forward's
features (they carry the gradient); the vectors enqueued into the bank afterwards are the same
regions of the clean forward's features (eval mode, no dropout), so an anchor never meets itself.

The bank is saved in the checkpoint through :meth:`state_dict` / :meth:`load_state_dict`, so a
resumed run continues with the same bank. The algorithm is :mod:`pwes.model.dfcl`, the bank
:mod:`pwes.model.memory_bank`. Settings: ``conf/callbacks/contrastive/dfcl.yaml`` (``callbacks.dfcl``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from pwes.callbacks.base import MilestoneCallback
from pwes.model.dfcl import DFCLConfig, RegionCounts, contrastive_anchors, info_nce, sample_region_vectors
from pwes.model.memory_bank import RegionMemoryBank
from pwes.model.module import StepContext
from pwes.model.network import parse_settings


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


class DFCLCallback(MilestoneCallback):
    """DFCL after ``start_step``. ``regions``: vectors per video and class ``{background, me,
    mae}`` (``dataset.regions``); other keywords are :class:`DFCLConfig` settings."""

    name = "contrastive"
    config_key = "callbacks.dfcl"

    def __init__(self, start_step: int = 0, regions: Mapping[str, int] | None = None, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(DFCLConfig, settings, "callbacks.dfcl")
        self.counts = RegionCounts.from_mapping(_plain(regions), "callbacks.dfcl.regions")
        self.bank: RegionMemoryBank | None = None

    # ------------------------------------------------------------------------------------- bank
    def make_bank(self, dim: int) -> RegionMemoryBank:
        capacities = [self.config.bank_videos * n for n in self.counts.per_video(self.config.main_region)]
        return RegionMemoryBank(capacities, dim)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        dim = int(pl_module.feature_dim)
        if self.bank is None or self.bank.dim != dim:
            self.bank = self.make_bank(dim)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.bank is None else {"bank": {k: v.detach().cpu().clone() for k, v in self.bank.state_dict().items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("bank")
        if saved is None:
            return
        if self.bank is None or self.bank.vectors.shape != saved["vectors"].shape:
            self.bank = self.make_bank(int(saved["vectors"].shape[-1]))
            if self.bank.vectors.shape != saved["vectors"].shape:
                raise ValueError(
                    f"callbacks.dfcl: the checkpoint's memory bank {tuple(saved['vectors'].shape)} does not fit "
                    f"these settings {tuple(self.bank.vectors.shape)} (bank_videos, regions, main_region)"
                )
        self.bank.load_state_dict(saved)

    # ------------------------------------------------------------------------------------- step
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.active(trainer, pl_module):
            return
        if self.bank is None:
            self.bank = self.make_bank(int(pl_module.feature_dim))
        self.bank.to(pl_module.device)

        def term(context: StepContext) -> Tensor:
            return self.contrastive_loss(context, pl_module)

        pl_module.contribute(self.name, loss_term=term, weight=self.config.weight)

    def contrastive_loss(self, context: StepContext, pl_module: L.LightningModule) -> Tensor:
        """Eq. 17 for this step's anchors against the bank; then the clean regions are enqueued."""
        assert self.bank is not None
        output = context.output
        if context.targets is None:
            return output.features.sum() * 0.0
        sets = context.targets.hard_labels()
        regions = sample_region_vectors(output.features, sets, self.counts, self.config.main_region)
        anchors, anchor_classes = contrastive_anchors(regions)
        keys, key_classes = self.bank.keys()
        loss = info_nce(anchors, anchor_classes, keys, key_classes, self.config.temperature)
        with torch.no_grad():
            clean = pl_module.clean_forward(context.batch)
            stored = sample_region_vectors(clean.features, sets, self.counts, self.config.main_region)
            self.bank.enqueue(*stored.flatten())
        return loss
