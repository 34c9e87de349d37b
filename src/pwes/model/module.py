"""The PWES LightningModule: the network, the losses that exist from step 0, prediction trimmed
to each video's real length, and one hook through which callbacks add to training.

The training loop builds it from ``conf/model/pwes.yaml``::

    hydra.utils.instantiate(cfg.model, rgb_dim=..., flow_dim=...)

**Losses from step 0** (paper eq. 18 without its contrastive term): video-level MIL on both
branches, guide, sparsity, mutual learning and the snippet loss, which under point supervision
trains on the point labels (``model.loss.points_before_switch``) until a callback adds pseudo
labels. ``supervision``: ``point`` (PWES), ``video`` (the Table I baseline: video labels only, no
snippet loss) or ``full`` (the reference: snippet labels from the whole annotated intervals,
``batch.intervals``; callbacks contribute nothing).

**The callback hook** (the contract: :class:`pwes.callbacks.host.CallbackHost`; the module
imports no callback). In ``on_train_batch_start`` a callback (MPLG, PPLM, DFCL, ...) reads
:meth:`PWESModule.clean_forward` (eval mode, no dropout, no gradient: pseudo labels never come
from the dropout-perturbed training forward) and calls ``contribute(name, targets=None,
loss_term=None, weight=1.0)``, which the next ``training_step`` consumes (removing a callback
removes its mechanism): ``targets`` are :class:`pwes.model.targets.SnippetTargets` pseudo labels
for the snippet loss (soft allowed, optional ``class_weights``; point labels put over them; one
source per step; only if ``takes_pseudo_labels``: point supervision); a ``loss_term`` is a
function of a :class:`StepContext` returning a scalar, added with ``weight`` and logged as
``train/loss_<name>`` (only if ``takes_loss_terms``: point and video supervision, e.g. MC-WES).
``training_step`` returns a :class:`StepOutput` (``loss``, the snippet loss's ``targets``) that
callbacks read in ``on_train_batch_end``; :attr:`PWESModule.loss_report` holds the step's terms
until then. ``on_train_batch_end`` (after the callbacks') drops it and the batch's clean forward.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import lightning as L
import numpy as np
import torch
from torch import Tensor

from pwes.config import ConfigError, plain
from pwes.data.batch import Batch
from pwes.model.losses import (
    LOSS_NAMES,
    LossConfig,
    guide_loss,
    mutual_loss,
    snippet_loss,
    snippet_probabilities,
    sparsity_loss,
    video_mil_loss,
)
from pwes.model.network import NetworkConfig, NetworkOutput, PWESNetwork
from pwes.model.targets import SnippetTargets, combine_targets, interval_targets
from pwes.model.topk import point_counts, point_rate, points_topk_counts, rate_topk_counts
from pwes.settings import parse_settings
from pwes.supervision import SUPERVISIONS

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "lr": 5e-4}
CHECKPOINT_TOPK_RATE = "pwes_topk_rate"  # checkpoint key of the training point rate (topk=points)


@dataclass
class VideoPrediction:
    """The model's output for one video, trimmed to its real snippets (numpy, float32)."""

    video: str
    attention: np.ndarray  # [T] foreground probability (mean of the two stream attentions)
    tcam: np.ndarray  # [T, 3] sigmoid TCAM over (ME, MaE, background)
    video_scores: np.ndarray  # [3] branch 1 (top-k of the TCAM)
    video_scores_suppressed: np.ndarray  # [3] branch 2 (top-k of TCAM x attention)
    tcam_suppressed: np.ndarray  # [T, 3] TCAM x attention, what paper 3.2 builds proposals from


@dataclass
class StepContext:
    """What a contributed loss term sees: the training step's batch, the training forward (with
    gradients and dropout) and the snippet targets the snippet loss used (None without any)."""

    batch: Batch
    output: NetworkOutput
    targets: SnippetTargets | None


LossTerm = Callable[[StepContext], Tensor]


@dataclass
class Contributions:
    """What callbacks handed the module for one training step."""

    targets: SnippetTargets | None = None
    targets_from: str | None = None
    terms: dict[str, tuple[LossTerm, float]] = field(default_factory=dict)


@dataclass
class LossReport:
    """Every loss term of one batch, their weighted total and the snippet targets used."""

    terms: dict[str, Tensor]
    total: Tensor
    targets: SnippetTargets | None  # [B, T, 3] targets of the snippet loss (None: no snippet loss)
    weights: dict[str, float] = field(default_factory=dict)  # each term's weight in the total


class StepOutput(TypedDict):
    """What ``training_step`` returns, and callbacks get as ``outputs`` in ``on_train_batch_end``."""

    loss: Tensor  # the weighted total (graph attached; Lightning backpropagates it)
    targets: SnippetTargets | None  # the snippet loss's targets (point labels over pseudo labels)


def as_float32(output: NetworkOutput) -> NetworkOutput:
    """``output`` with every floating tensor in fp32 (a no-op in fp32; under bf16 autocast the
    losses, pseudo labels and memory bank then compute in fp32; the cast keeps gradients)."""
    changes = {
        f.name: value.float()
        for f in dataclasses.fields(output)
        if isinstance(value := getattr(output, f.name), Tensor) and value.is_floating_point() and value.dtype != torch.float32
    }
    return dataclasses.replace(output, **changes) if changes else output


def optimizer_to_config(optimizer: Any) -> dict[str, Any]:
    """The picklable description ``{_target_: ..., **kwargs}`` of a partial optimizer.

    Accepts what ``hydra.utils.instantiate`` makes of ``_partial_: true`` (a ``functools.partial``
    of an optimizer class) or an already plain mapping with ``_target_``.
    """
    if isinstance(optimizer, functools.partial):
        if optimizer.args:
            raise ConfigError("model.optimizer: give the optimizer's settings as keywords, not positional arguments")
        func = optimizer.func
        target = f"{func.__module__}.{func.__qualname__}"
        return {"_target_": target, **{k: plain(v) for k, v in optimizer.keywords.items()}}
    settings = plain(optimizer)
    if isinstance(settings, Mapping) and "_target_" in settings:
        return {k: v for k, v in settings.items() if k != "_partial_"}
    raise ConfigError(
        "model.optimizer: expected a partial optimizer (a node with `_target_: torch.optim.Adam` and "
        f"`_partial_: true`), got {type(optimizer).__name__}"
    )


def build_optimizer(config: Mapping[str, Any], params: Any) -> torch.optim.Optimizer:
    """Instantiate the optimizer described by :func:`optimizer_to_config` over ``params``."""
    import hydra.utils

    kwargs = dict(config)
    target = kwargs.pop("_target_")
    kwargs.pop("_partial_", None)
    try:
        cls = hydra.utils.get_class(target)
    except Exception as err:  # hydra raises its own error types for a bad path
        raise ConfigError(f"model.optimizer._target_: cannot import {target!r} ({err})") from None
    return cls(params, **kwargs)


class PWESModule(L.LightningModule):
    """PWES: point-level weakly-supervised ME/MaE spotting (paper section 3)."""

    def __init__(
        self,
        rgb_dim: int,
        flow_dim: int,
        supervision: str = "point",
        network: Mapping[str, Any] | None = None,
        loss: Mapping[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping[str, Any] | None = None,
        optimizer_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Build the model.

        ``rgb_dim``/``flow_dim``: snippet feature widths. ``supervision``: ``point``, ``video`` or
        ``full``. ``network``/``loss``: settings mappings (see the dataclasses they fill).
        ``optimizer``: a partial optimizer (Hydra ``_partial_: true``); it is not pickled, its
        description is saved as ``optimizer_config`` so ``load_from_checkpoint`` needs nothing else.
        """
        super().__init__()
        if supervision not in SUPERVISIONS:
            raise ConfigError(f"model.supervision: {supervision!r} is not one of {', '.join(SUPERVISIONS)}")
        self.network_config = parse_settings(NetworkConfig, plain(network), "model.network")
        self.loss_config = parse_settings(LossConfig, plain(loss), "model.loss")

        # Saved hyperparameters: every setting spelled out, plain containers only.
        network, loss = plain(self.network_config), plain(self.loss_config)
        self._optimizer_factory: Callable[..., torch.optim.Optimizer] | None = None
        if optimizer is not None:
            optimizer_config = optimizer_to_config(optimizer)
            if callable(optimizer):
                self._optimizer_factory = optimizer
        elif optimizer_config is not None:
            optimizer_config = optimizer_to_config(optimizer_config)
        self.save_hyperparameters(ignore=["optimizer"])

        self.supervision = supervision
        self.network = PWESNetwork(rgb_dim, flow_dim, self.network_config)
        self._contributions = Contributions()  # for the next training step (contribute)
        self._clean: tuple[Batch, NetworkOutput] | None = None  # the current batch's clean_forward
        self._report: LossReport | None = None  # the current step's losses (loss_report)
        # topk=points at inference: the training videos' points per snippet of each class, set when
        # fit starts (on_fit_start) and kept in the checkpoint (CHECKPOINT_TOPK_RATE).
        self.topk_rate: tuple[float, ...] | None = None

    # ------------------------------------------------------------------------- the callback hook
    @property
    def takes_pseudo_labels(self) -> bool:
        """Whether callbacks may contribute pseudo-label targets (point supervision only)."""
        return self.supervision == "point"

    @property
    def takes_loss_terms(self) -> bool:
        """Whether callbacks may contribute loss terms (point and video supervision)."""
        return self.supervision in ("point", "video")

    @property
    def loss_report(self) -> LossReport | None:
        """The current training step's :class:`LossReport` (graph attached until the backward
        pass), from ``training_step`` until the batch ends; for logged measurements (grad_share)."""
        return self._report

    @property
    def feature_dim(self) -> int:
        """Width of the fused features F (what DFCL's memory bank stores)."""
        return self.network.feature_dim

    def contribute(self, name: str, *, targets: SnippetTargets | None = None, loss_term: LossTerm | None = None, weight: float = 1.0) -> None:
        """Hand the next training step pseudo-label ``targets`` and/or a ``loss_term`` (see the
        module docstring). ``name`` names the contributor and the logged term."""
        if targets is not None and not self.takes_pseudo_labels:
            raise RuntimeError(f"{name}: the module takes no pseudo labels under supervision={self.supervision!r}")
        if loss_term is not None and not self.takes_loss_terms:
            raise RuntimeError(f"{name}: the module takes no loss terms under supervision={self.supervision!r}")
        if targets is not None:
            if self._contributions.targets is not None and self._contributions.targets_from != name:
                raise ConfigError(
                    f"callbacks: both {self._contributions.targets_from!r} and {name!r} give pseudo labels; "
                    "configure one pseudo-label callback (callbacks/pseudo=...)"
                )
            self._contributions.targets, self._contributions.targets_from = targets, name
        if loss_term is not None:
            if name in LOSS_NAMES:
                raise ValueError(f"{name}: a contributed loss term cannot reuse a built-in name ({', '.join(LOSS_NAMES)})")
            self._contributions.terms[name] = (loss_term, float(weight))

    @torch.no_grad()
    def clean_forward(self, batch: Batch) -> NetworkOutput:
        """The network's outputs for ``batch`` in eval mode (no dropout) without gradients; the
        module's train/eval mode is restored. Computed at the first call on a batch and shared by
        every later call on it until ``on_train_batch_end`` drops it, so during training it is the
        network before the batch's optimizer step (a loop without a Trainer calls that hook too)."""
        if self._clean is not None and self._clean[0] is batch:
            return self._clean[1]
        was_training = self.network.training
        self.network.eval()
        try:
            with self._precision_context():  # the callbacks call it outside the training step's autocast
                output = as_float32(self.forward(batch, from_points=True))
        finally:
            self.network.train(was_training)
        self._clean = (batch, output)
        return output

    def _precision_context(self) -> contextlib.AbstractContextManager[Any]:
        """The Trainer's forward context (bf16 autocast under trainer=cpu_bf16); none outside a Trainer."""
        trainer = getattr(self, "_trainer", None)
        return trainer.precision_plugin.forward_context() if trainer is not None else contextlib.nullcontext()

    # ------------------------------------------------------------------------------------ forward
    def forward(self, batch: Batch, from_points: bool = True) -> NetworkOutput:
        """The network's outputs for a batch (top-k from its points, or the rate: :meth:`topk`)."""
        return self.network(batch.rgb, batch.flow, batch.mask, self.topk(batch, from_points))

    def topk(self, batch: Batch, from_points: bool) -> Tensor | None:
        """The pooling's k [B, 3] under ``model.network.topk=points`` (``pwes.model.topk``): from
        the batch's point counts (training) or from the stored training point rate (inference,
        ``from_points=False``); None under ``topk=divisors`` (the network's own divisors)."""
        cfg = self.network_config
        if cfg.topk == "divisors":
            return None
        mask = batch.mask.bool()
        lengths, typical, divisor = mask.sum(dim=1), cfg.typical_snippets(), cfg.topk_divisors[-1]
        if from_points:
            return points_topk_counts(lengths, point_counts(batch.points, mask), typical, divisor)
        if self.topk_rate is None:
            raise RuntimeError(
                "model.network.topk=points: no training point rate; it is estimated when training starts "
                "(from the datamodule's train_set) and saved in the checkpoint"
            )
        return rate_topk_counts(lengths, torch.tensor(self.topk_rate), typical, divisor)

    def on_fit_start(self) -> None:
        """Under ``topk=points``, estimate the point rate from the training videos' point labels.
        Refused under video supervision, which has no points (checked here, not at construction,
        so checkpoints saved before the setting existed still load: on_load_checkpoint)."""
        if self.supervision == "video" and self.network_config.topk == "points":
            raise ConfigError(
                "model.network.topk=points takes k from the point counts, which model.supervision=video "
                "does not have: set model.network.topk=divisors (the video-level rows of conf/ablation do)"
            )
        train_set = getattr(getattr(self.trainer, "datamodule", None), "train_set", None)
        if self.network_config.topk == "points" and train_set is not None:
            self.topk_rate = point_rate(points for _, points in train_set.labels.values())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_TOPK_RATE] = None if self.topk_rate is None else list(self.topk_rate)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_TOPK_RATE not in checkpoint:
            # Saved before model.network.topk existed (it came with this key), when k was always
            # T // divisor: its hyperparameters lack topk, so they would read as today's default.
            self.network_config = dataclasses.replace(self.network_config, topk="divisors")
            self.network.config = self.network_config  # one config object, as built in __init__
            self.hparams["network"] = plain(self.network_config)
        rate = checkpoint.get(CHECKPOINT_TOPK_RATE)
        self.topk_rate = None if rate is None else tuple(float(r) for r in rate)

    def snippet_targets(self, batch: Batch, pseudo: SnippetTargets | None = None) -> SnippetTargets | None:
        """Targets of the snippet loss for this supervision; None when there is no snippet loss."""
        mask = batch.mask.bool()
        if self.supervision == "full":
            if batch.intervals is None:
                raise ValueError("model.supervision=full: the batch carries no interval labels (batch.intervals)")
            return interval_targets(batch.intervals, mask)
        if self.supervision == "video":
            return None
        if pseudo is None and not self.loss_config.points_before_switch:
            return None
        return combine_targets(batch.points, pseudo, mask)

    def compute_losses(
        self,
        batch: Batch,
        output: NetworkOutput,
        pseudo: SnippetTargets | None = None,
        extra_terms: Mapping[str, tuple[LossTerm, float]] | None = None,
    ) -> LossReport:
        """Every loss term for ``batch`` given the training forward's ``output``, the pseudo-label
        targets and the contributed terms ``{name: (function, weight)}``."""
        mask = batch.mask.bool()
        video_labels = batch.video_labels.to(output.tcam.dtype)
        attentions = [output.attention, output.attention_rgb, output.attention_flow]
        terms: dict[str, Tensor] = {
            "mil": video_mil_loss(output.video_scores, video_labels, background_target=1.0),
            "mil_suppressed": video_mil_loss(output.video_scores_suppressed, video_labels, background_target=0.0),
            "guide": guide_loss(attentions, output.tcam, mask),
            "sparsity": sparsity_loss(attentions, mask),
            "mutual": mutual_loss(output.attention_rgb, output.attention_flow, mask),
        }
        weights = {name: self.loss_config.weight(name) for name in terms}
        targets = self.snippet_targets(batch, pseudo)
        if targets is not None:
            probabilities = snippet_probabilities(output.tcam, targets.class_weights)
            terms["snippet"] = snippet_loss(probabilities, targets.targets, targets.weight)
        elif self.supervision == "point":  # logged as 0 until the points or pseudo labels arrive
            terms["snippet"] = output.tcam.sum() * 0.0
        if "snippet" in terms:
            weights["snippet"] = self.loss_config.weight("snippet")
        context = StepContext(batch, output, targets)
        for name, (term, weight) in (extra_terms or {}).items():
            terms[name], weights[name] = term(context), weight
        total = sum(weights[name] * value for name, value in terms.items())
        return LossReport(terms=terms, total=total, targets=targets, weights=weights)

    # ----------------------------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        """One iteration: the training forward, the losses with this step's contributions."""
        contributions, self._contributions = self._contributions, Contributions()
        output = as_float32(self.forward(batch, from_points=True))  # losses in fp32 under autocast
        report = self._report = self.compute_losses(batch, output, contributions.targets, contributions.terms)
        size = len(batch)
        for name, value in report.terms.items():
            self.log(f"train/loss_{name}", value.detach(), batch_size=size)
        self.log("train/loss", report.total.detach(), batch_size=size, prog_bar=True)
        return StepOutput(loss=report.total, targets=report.targets)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """The batch is over (the callbacks' ``on_train_batch_end`` ran first): drop its clean
        forward and loss report."""
        self._clean = self._report = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The configured (partial) optimizer over the network's parameters."""
        if self._optimizer_factory is not None:
            return self._optimizer_factory(self.parameters())
        config = self.hparams.get("optimizer_config") or DEFAULT_OPTIMIZER
        return build_optimizer(config, self.parameters())

    # --------------------------------------------------------------------------------- prediction
    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> list[VideoPrediction]:
        """Attention, TCAM and video scores of every video, trimmed to its real snippets."""
        if len(batch.videos) != len(batch):
            raise ValueError(f"predict: the batch names {len(batch.videos)} videos but holds {len(batch)}")
        output = self.forward(batch, from_points=False)
        lengths = batch.mask.sum(dim=1).tolist()

        def numpy(x: Tensor) -> np.ndarray:
            return x.detach().float().cpu().numpy().astype(np.float32, copy=False)

        return [
            VideoPrediction(
                video=name,
                attention=numpy(output.attention[i, :n]),
                tcam=numpy(output.tcam[i, :n]),
                video_scores=numpy(output.video_scores[i]),
                video_scores_suppressed=numpy(output.video_scores_suppressed[i]),
                tcam_suppressed=numpy(output.tcam_suppressed[i, :n]),
            )
            for i, (name, n) in enumerate(zip(batch.videos, lengths))
        ]
