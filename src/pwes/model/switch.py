"""The pretraining switch: MPLG (or PPLM) and DFCL start after the pretraining iterations
(80 on CAS(ME)^2, 50 on SAMM-LV; paper 4.3, Table III).

The callback keeps no state of its own: before every training batch it sets the module's switch
from ``trainer.global_step >= module.pretrain_steps``. Iteration ``pretrain_steps`` (0-based) is
the first with pseudo labels, and a run resumed from a checkpoint saved after that point has the
switch on again from its first batch, since the global step is restored with the checkpoint.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class PretrainingSwitch(Callback):
    """Turn pseudo labels and DFCL on once ``trainer.global_step`` reaches ``pretrain_steps``.

    The module must declare ``pretrain_steps`` and ``set_pseudo_labels_enabled(flag)``
    (:class:`pwes.model.module.PWESModule` does).
    """

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        steps = getattr(pl_module, "pretrain_steps", None)
        setter = getattr(pl_module, "set_pseudo_labels_enabled", None)
        if steps is None or setter is None:
            raise TypeError(
                f"PretrainingSwitch: {type(pl_module).__name__} declares no `pretrain_steps` and "
                "`set_pseudo_labels_enabled`; use it with pwes.model.module.PWESModule"
            )
        setter(trainer.global_step >= steps)
