"""The LACP comparator callback (``callbacks/pseudo=lacp``, ``ablation=lacp``): from
``start_step`` on, per training batch and from the clean forward, LACP's seeds (pseudo action
points and background seeds) go to the snippet loss, the optimal sequence search turns the points
into dense pseudo sequences, and the score-contrastive loss of the training forward's scores
against them joins the total as ``train/loss_lacp_score``. The algorithms are
:mod:`pwes.model.lacp`; the callback keeps no state (the code stores the sequences of the whole
training set and searches again every 10 steps; here the batch's are searched every step).

Settings: ``conf/callbacks/pseudo/lacp.yaml`` (``callbacks.lacp``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import Tensor

from pwes.callbacks.base import PseudoLabelCallback
from pwes.data.batch import NUM_CLASSES, Batch
from pwes.model.lacp import LACPConfig, dense_sequences, score_contrastive_loss
from pwes.model.module import StepContext
from pwes.model.mplg import classes_present
from pwes.model.network import BACKGROUND, NetworkOutput
from pwes.model.targets import SnippetTargets, hard_targets
from pwes.settings import parse_settings


def class_scores(output: NetworkOutput, which: str) -> Tensor:
    """[B, T, C]: the class scores LACP searches and trains (``suppressed``: TCAM x attention, the
    analogue of LACP's class score x (1 - background score); ``tcam``: the plain TCAM)."""
    source = output.tcam_suppressed if which == "suppressed" else output.tcam
    return source[..., :NUM_CLASSES]


class LACPCallback(PseudoLabelCallback):
    """LACP after ``start_step``; keywords are :class:`LACPConfig` settings."""

    name = "lacp"
    config_key = "callbacks.lacp"

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(LACPConfig, settings, "callbacks.lacp")

    def search(self, output: NetworkOutput, batch: Batch) -> tuple[SnippetTargets, Tensor]:
        """The seed targets and the optimal sequences [B, T, C] of ``batch`` from ``output``."""
        action, background, sequences = dense_sequences(
            class_scores(output, self.config.scores), output.tcam[..., BACKGROUND], batch.points, batch.mask, self.config
        )
        return hard_targets(action & batch.mask.bool()[..., None], background), sequences

    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        return self.search(output, batch)[0]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.active(trainer, pl_module):
            return
        targets, sequences = self.search(pl_module.clean_forward(batch), batch)
        cfg = self.config

        def score_loss(context: StepContext) -> Tensor:
            mask = context.batch.mask.bool()
            present = classes_present(context.batch.points, mask)
            return score_contrastive_loss(class_scores(context.output, cfg.scores), sequences, present, mask, cfg.inflation)

        self.contribute_targets(pl_module, targets, batch)
        pl_module.contribute(f"{self.name}_score", loss_term=score_loss, weight=cfg.score_weight)
