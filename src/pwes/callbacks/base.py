"""What every PWES training callback shares: a ``start_step`` milestone, and for pseudo-label
sources the per-batch flow (clean forward -> targets -> ``module.contribute``).

A callback is active on a training batch when ``trainer.global_step >= start_step`` (iteration
``start_step``, 0-based, is the first) and the module takes pseudo labels (point supervision; under
video or full supervision every callback does nothing), except a :class:`LossTermCallback`, which
also acts under video supervision (its loss term needs no pseudo labels). The step comes from the trainer, so a run
resumed from a checkpoint is active again from its first batch. What a callback may use of the
module is :class:`pwes.callbacks.host.CallbackHost`, checked once per fit (``setup``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import lightning as L

from pwes.callbacks.host import HostCallback
from pwes.config import ConfigError
from pwes.data.batch import Batch
from pwes.model.network import NetworkOutput
from pwes.model.targets import SnippetTargets, target_counts
from pwes.settings import parse_settings

if TYPE_CHECKING:
    from torch import Tensor

    from pwes.model.module import StepContext


def check_start_step(start_step: Any, where: str) -> int:
    """``start_step`` as a whole number >= 0, or a one-line ConfigError naming ``where``."""
    if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
        raise ConfigError(f"{where}.start_step: must be a whole number >= 0, got {start_step!r}")
    return int(start_step)


class MilestoneCallback(HostCallback):
    """A callback that acts from ``start_step`` on (the pretraining iterations before it)."""

    config_key = "callbacks"  # where its settings live, for error messages
    supervisions: tuple[str, ...] = ("point",)  # the model.supervision values it acts under

    def __init__(self, start_step: int = 0) -> None:
        self.start_step = check_start_step(start_step, self.config_key)

    def active(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        """Whether to act on the coming batch."""
        return bool(pl_module.takes_pseudo_labels) and trainer.global_step >= self.start_step


class LossTermCallback(MilestoneCallback):
    """A callback that only adds a loss term (no pseudo labels), so it acts under point **and**
    video supervision (``PWESModule.takes_loss_terms``): a video-level method's own losses, such
    as MC-WES's consistency terms, are callbacks like this one. Under full supervision it does
    nothing."""

    supervisions = ("point", "video")
    settings_type: type  # a dataclass of the term's settings, with a ``weight`` field

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(self.settings_type, settings, self.config_key)

    def active(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        return bool(pl_module.takes_loss_terms) and trainer.global_step >= self.start_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.active(trainer, pl_module):
            pl_module.contribute(self.name, loss_term=self.loss, weight=self.config.weight)

    @abstractmethod
    def loss(self, context: StepContext) -> Tensor:
        """The term for this step, from the training forward's ``context``."""


class PseudoLabelCallback(MilestoneCallback):
    """Base of the pseudo-label sources: from ``start_step`` on, before every training batch,
    targets from the module's clean forward (eval mode, no gradient) go to the snippet loss, and
    their counts are logged (``train/pseudo_fg_me``, ``train/pseudo_fg_mae``, ``train/pseudo_bg``).

    A new source subclasses this and implements :meth:`pseudo_targets`.
    """

    name = "pseudo"

    @abstractmethod
    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        """Pseudo-label targets for ``batch`` from the clean forward's ``output``."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.active(trainer, pl_module):
            return
        self.contribute_targets(pl_module, self.pseudo_targets(pl_module.clean_forward(batch), batch), batch)

    def contribute_targets(self, pl_module: L.LightningModule, targets: SnippetTargets, batch: Batch) -> None:
        """Hand ``targets`` to the snippet loss and log their counts (for sources that add more
        than targets in their own ``on_train_batch_start``, e.g. SF-Net, LACP)."""
        pl_module.contribute(self.name, targets=targets)
        for key, value in target_counts(targets, len(batch)).items():
            pl_module.log(f"train/{key}", value, batch_size=len(batch))
