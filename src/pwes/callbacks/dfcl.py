"""The DFCL callback (paper 3.4, eq. 17): from ``start_step`` on, the contrastive term joins the
loss, and the callback owns the memory bank.

Per training step the callback contributes a loss term. The feature *sets* (which snippets are
ME, MaE, background) come from the snippet targets the module used (point labels over the
pseudo labels of the clean forward). The *anchors* are region vectors of the training forward's
features (they carry the gradient) against the bank as it was before the step. After the step
(``on_train_batch_end``, the sets from ``outputs["targets"]``) the same regions of the clean
forward's features (eval mode, no dropout), captured at batch start and so taken before the
optimizer step, are enqueued into the bank (pooled under the training step's precision context,
as the anchors are): an anchor never meets itself.

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
from pwes.config import plain
from pwes.model.dfcl import DFCLConfig, RegionCounts, contrastive_anchors, info_nce, sample_region_vectors
from pwes.model.memory_bank import RegionMemoryBank
from pwes.model.module import StepContext, StepOutput
from pwes.model.network import NetworkOutput
from pwes.model.targets import SnippetTargets
from pwes.settings import parse_settings


class DFCLCallback(MilestoneCallback):
    """DFCL after ``start_step``. ``regions``: vectors per video and class ``{background, me,
    mae}`` (``dataset.regions``); other keywords are :class:`DFCLConfig` settings."""

    name = "contrastive"
    config_key = "callbacks.dfcl"

    def __init__(self, start_step: int = 0, regions: Mapping[str, int] | None = None, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(DFCLConfig, settings, "callbacks.dfcl")
        self.counts = RegionCounts.from_mapping(plain(regions), "callbacks.dfcl.regions")
        self.bank: RegionMemoryBank | None = None
        self._clean: NetworkOutput | None = None  # this batch's clean forward, captured at its start

    # ------------------------------------------------------------------------------------- bank
    def make_bank(self, dim: int) -> RegionMemoryBank:
        capacities = [self.config.bank_videos * n for n in self.counts.per_video(self.config.main_region)]
        return RegionMemoryBank(capacities, dim)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
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
        self._clean = None
        if not self.active(trainer, pl_module):
            return
        if self.bank is None:
            self.bank = self.make_bank(int(pl_module.feature_dim))
        self.bank.to(pl_module.device)
        self._clean = pl_module.clean_forward(batch)  # before the optimizer step: what the bank gets
        pl_module.contribute(self.name, loss_term=self.contrastive_loss, weight=self.config.weight)

    def contrastive_loss(self, context: StepContext) -> Tensor:
        """Eq. 17 for this step's anchors (the training forward's regions) against the bank."""
        assert self.bank is not None
        output = context.output
        if context.targets is None:
            return output.features.sum() * 0.0
        regions = sample_region_vectors(output.features, context.targets.hard_labels(), self.counts, self.config.main_region)
        anchors, anchor_classes = contrastive_anchors(regions)
        keys, key_classes = self.bank.keys()
        return info_nce(anchors, anchor_classes, keys, key_classes, self.config.temperature)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: StepOutput, batch: Any, batch_idx: int) -> None:
        clean, self._clean = self._clean, None
        if clean is not None and outputs["targets"] is not None:
            with trainer.precision_plugin.train_step_context():  # pooled as the anchors are (bf16 under cpu_bf16)
                self.enqueue(clean, outputs["targets"])

    @torch.no_grad()
    def enqueue(self, clean: NetworkOutput, targets: SnippetTargets) -> None:
        """Store the regions of the clean forward's features over the sets of ``targets``."""
        assert self.bank is not None
        stored = sample_region_vectors(clean.features, targets.hard_labels(), self.counts, self.config.main_region)
        self.bank.enqueue(*stored.flatten())
