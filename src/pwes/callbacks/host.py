"""THE contract between the training callbacks and the module they extend.

A PWES callback may use only what :class:`CallbackHost` names (``pwes.model.module.PWESModule``
implements it) and the dict :meth:`training_step` returns (:class:`pwes.model.module.StepOutput`,
which Lightning hands to ``on_train_batch_end`` as ``outputs``). One training batch, in order:

1. ``on_train_batch_start``: a callback reads the batch through :meth:`CallbackHost.clean_forward`
   (eval mode, no dropout, no gradient; computed once per batch and shared, so what it returns is
   the network *before* this batch's optimizer step) and hands the coming step pseudo-label
   targets and/or a loss term with :meth:`CallbackHost.contribute`.
2. ``training_step``: the training forward (dropout, gradients) and the losses with this step's
   contributions, which the step consumes (the next step starts with none: removing a callback
   removes its mechanism). A loss term sees a :class:`pwes.model.module.StepContext`.
3. ``on_before_backward``: :attr:`CallbackHost.loss_report` holds every term with its graph
   (for measurements such as ``pwes.callbacks.grad_share``).
4. ``on_train_batch_end(outputs)``: after the optimizer step; ``outputs["targets"]`` are the
   snippet targets the step's loss used (point labels over the pseudo labels; None without a
   snippet loss). Side effects that depend on the step (DFCL's bank enqueue, the diagnostics)
   happen here, from what the callback captured in 1 and from ``outputs``. Then the module
   drops the batch's clean forward and loss report.

:class:`HostCallback` checks the contract once, in ``setup`` (before the fit starts), and names
every missing member in one line; nothing is checked per batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import lightning as L
from lightning.pytorch.callbacks import Callback

if TYPE_CHECKING:
    import torch

    from pwes.data.batch import Batch
    from pwes.model.module import LossReport, LossTerm
    from pwes.model.network import NetworkOutput, PWESNetwork
    from pwes.model.targets import SnippetTargets


@runtime_checkable
class CallbackHost(Protocol):
    """What a training callback may use of the module (module docstring for when)."""

    network: PWESNetwork  # its parameters (grad_share measures the stream embeddings or all)

    @property
    def device(self) -> torch.device:
        """Where the module's tensors live (a callback's own state moves there)."""

    @property
    def takes_pseudo_labels(self) -> bool:
        """Whether ``contribute(targets=...)`` is accepted (point supervision only)."""

    @property
    def takes_loss_terms(self) -> bool:
        """Whether ``contribute(loss_term=...)`` is accepted (point and video supervision)."""

    @property
    def feature_dim(self) -> int:
        """Width of the fused features ``NetworkOutput.features``."""

    @property
    def loss_report(self) -> LossReport | None:
        """This step's loss terms, weights and total (graph attached until backward), from
        ``training_step`` until the batch ends; None otherwise."""

    def contribute(
        self, name: str, *, targets: SnippetTargets | None = None, loss_term: LossTerm | None = None, weight: float = 1.0
    ) -> None:
        """Hand the next training step pseudo-label ``targets`` (at most one source per step)
        and/or a ``loss_term`` (logged as ``train/loss_<name>``, added with ``weight``)."""

    def clean_forward(self, batch: Batch) -> NetworkOutput:
        """The batch's eval-mode forward without gradients, shared by every caller of the batch."""

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Lightning's ``LightningModule.log``."""


HOST_MEMBERS: tuple[str, ...] = tuple(
    sorted({*CallbackHost.__annotations__, *(n for n in vars(CallbackHost) if not n.startswith("_"))})
)


def missing_members(module: object) -> list[str]:
    """The :class:`CallbackHost` members ``module`` lacks (empty: it is a host)."""
    return [name for name in HOST_MEMBERS if not hasattr(module, name)]


def check_host(module: object, user: object) -> None:
    """A one-line TypeError naming what ``module`` lacks for ``user`` (a callback), if anything."""
    missing = missing_members(module)
    if missing:
        raise TypeError(
            f"{type(user).__name__}: {type(module).__name__} has no {', '.join(missing)} "
            "(the callback host protocol, pwes.callbacks.host.CallbackHost); use it with pwes.model.module.PWESModule"
        )


class HostCallback(Callback):
    """A callback written against :class:`CallbackHost`: the module is checked once per fit."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        check_host(pl_module, self)
