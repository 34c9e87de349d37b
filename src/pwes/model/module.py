"""The PWES LightningModule: network, pseudo labels (MPLG or PPLM), DFCL memory bank and the
joint loss of eq. 18, plus prediction trimmed to each video's real length.

The training loop builds it from ``conf/model/pwes.yaml``::

    hydra.utils.instantiate(cfg.model, rgb_dim=..., flow_dim=..., region_counts=cfg.dataset.regions,
                            pretrain_steps=cfg.dataset.pretrain_steps)

Pseudo labels and DFCL are off until ``pseudo_labels_enabled`` is set, which
:class:`pwes.model.switch.PretrainingSwitch` does from ``trainer.global_step`` before every batch;
without the callback the module trains as pure pretraining (MIL, attention losses and, under point
supervision, the point-label snippet loss). Supervision ``video`` is the Table I baseline: MC-WES
without its consistency losses, so no point labels, no pseudo labels and no DFCL.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from pwes.config import ConfigError
from pwes.data.batch import Batch
from pwes.model.dfcl import (
    DFCLConfig,
    RegionCounts,
    RegionVectors,
    contrastive_anchors,
    info_nce,
    sample_region_vectors,
)
from pwes.model.losses import (
    LossConfig,
    combine_labels,
    guide_loss,
    mutual_loss,
    snippet_loss,
    snippet_probabilities,
    sparsity_loss,
    video_mil_loss,
)
from pwes.model.memory_bank import RegionMemoryBank
from pwes.model.mplg import MPLGConfig, PseudoLabels, generate_mplg
from pwes.model.network import NetworkConfig, NetworkOutput, PWESNetwork, parse_settings
from pwes.model.pplm import PPLMConfig, generate_pplm

SUPERVISIONS = ("point", "video")
PSEUDO_SOURCES = ("mplg", "pplm", "none")
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "lr": 5e-4}


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
class LossReport:
    """Every loss term of one batch, their weighted total and what produced them."""

    terms: dict[str, Tensor]
    total: Tensor
    labels: Tensor | None  # [B, T, 3] snippet labels used by the snippet loss (point supervision)
    pseudo: PseudoLabels | None
    regions: RegionVectors | None


def _plain(value: Any) -> Any:
    """A DictConfig/ListConfig or settings dataclass as plain Python containers."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()}
    return value


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
        return {"_target_": target, **{k: _plain(v) for k, v in optimizer.keywords.items()}}
    plain = _plain(optimizer)
    if isinstance(plain, Mapping) and "_target_" in plain:
        return {k: v for k, v in plain.items() if k != "_partial_"}
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
        region_counts: Mapping[str, int] | None = None,
        pretrain_steps: int = 0,
        supervision: str = "point",
        pseudo: str = "mplg",
        network: Mapping[str, Any] | None = None,
        mplg: Mapping[str, Any] | None = None,
        pplm: Mapping[str, Any] | None = None,
        dfcl: Mapping[str, Any] | None = None,
        loss: Mapping[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping[str, Any] | None = None,
        optimizer_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Build the model.

        ``rgb_dim``/``flow_dim``: snippet feature widths. ``region_counts``: DFCL regions per video
        ``{background, me, mae}`` (CAS(ME)^2's 10/2/3 when omitted). ``pretrain_steps``: iterations
        before MPLG and DFCL switch on. ``supervision``: ``point`` or ``video``. ``pseudo``:
        ``mplg``, ``pplm`` or ``none``. ``network``/``mplg``/``pplm``/``dfcl``/``loss``: settings
        mappings (see the dataclasses they fill). ``optimizer``: a partial optimizer (Hydra
        ``_partial_: true``); it is not pickled, its description is saved as ``optimizer_config``
        so that ``load_from_checkpoint`` needs nothing else.
        """
        super().__init__()
        if supervision not in SUPERVISIONS:
            raise ConfigError(f"model.supervision: {supervision!r} is not one of {', '.join(SUPERVISIONS)}")
        if pseudo not in PSEUDO_SOURCES:
            raise ConfigError(f"model.pseudo: {pseudo!r} is not one of {', '.join(PSEUDO_SOURCES)}")
        if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) or pretrain_steps < 0:
            raise ConfigError(f"dataset.pretrain_steps: must be a whole number >= 0, got {pretrain_steps!r}")

        self.network_config = parse_settings(NetworkConfig, _plain(network), "model.network")
        self.mplg_config = parse_settings(MPLGConfig, _plain(mplg), "model.mplg")
        self.pplm_config = parse_settings(PPLMConfig, _plain(pplm), "model.pplm")
        self.dfcl_config = parse_settings(DFCLConfig, _plain(dfcl), "model.dfcl")
        self.loss_config = parse_settings(LossConfig, _plain(loss), "model.loss")
        self.region_counts = RegionCounts.from_mapping(_plain(region_counts))

        # Saved hyperparameters: every setting spelled out, plain containers only.
        network = _plain(self.network_config)
        mplg = _plain(self.mplg_config)
        pplm = _plain(self.pplm_config)
        dfcl = _plain(self.dfcl_config)
        loss = _plain(self.loss_config)
        region_counts = self.region_counts.as_dict()
        self._optimizer_factory: Callable[..., torch.optim.Optimizer] | None = None
        if optimizer is not None:
            optimizer_config = optimizer_to_config(optimizer)
            if callable(optimizer):
                self._optimizer_factory = optimizer
        elif optimizer_config is not None:
            optimizer_config = optimizer_to_config(optimizer_config)
        self.save_hyperparameters(ignore=["optimizer"])

        self.supervision = supervision
        self.pseudo_source = pseudo
        self.pretrain_steps = int(pretrain_steps)
        self.pseudo_labels_enabled = False
        self.network = PWESNetwork(rgb_dim, flow_dim, self.network_config)
        self.memory_bank: RegionMemoryBank | None = None
        if self.uses_dfcl:
            capacities = [self.dfcl_config.bank_videos * n for n in self.region_counts.as_tuple()]
            self.memory_bank = RegionMemoryBank(capacities, self.network.feature_dim)

    # ----------------------------------------------------------------------------------- switches
    @property
    def uses_pseudo_labels(self) -> bool:
        """Whether pseudo labels are generated once the switch is on."""
        return self.supervision == "point" and self.pseudo_source != "none"

    @property
    def uses_dfcl(self) -> bool:
        """Whether DFCL (memory bank and contrastive loss) is part of this model."""
        return self.supervision == "point" and self.dfcl_config.enabled

    def set_pseudo_labels_enabled(self, flag: bool) -> None:
        """Switch MPLG/PPLM and DFCL on or off (the pretraining switch calls this)."""
        self.pseudo_labels_enabled = bool(flag)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> NetworkOutput:
        """The network's outputs for a batch."""
        return self.network(batch.rgb, batch.flow, batch.mask)

    def generate_pseudo_labels(self, output: NetworkOutput, points: Tensor, mask: Tensor) -> PseudoLabels:
        """Pseudo labels by the configured source (MPLG or PPLM) from the network's outputs."""
        args = (output.features, output.attention, output.tcam, points, mask)
        if self.pseudo_source == "pplm":
            return generate_pplm(*args, config=self.pplm_config)
        return generate_mplg(*args, config=self.mplg_config)

    def compute_losses(
        self, batch: Batch, output: NetworkOutput, pseudo_active: bool, update_memory: bool = False
    ) -> LossReport:
        """Every loss term for ``batch`` given the network's ``output``.

        ``pseudo_active``: generate pseudo labels and run DFCL (after pretraining).
        ``update_memory``: enqueue this batch's region vectors into the memory bank afterwards.
        """
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
        pseudo: PseudoLabels | None = None
        labels: Tensor | None = None
        regions: RegionVectors | None = None
        zero = output.tcam.new_zeros(())
        if self.supervision == "point":
            if pseudo_active and self.uses_pseudo_labels:
                pseudo = self.generate_pseudo_labels(output, batch.points, mask)
            labels = combine_labels(batch.points, pseudo, mask)
            if pseudo_active or self.loss_config.points_before_switch:
                reweight = pseudo is not None and self.pseudo_source == "mplg" and self.mplg_config.class_similarity
                probabilities = snippet_probabilities(output.tcam, pseudo.class_weights if reweight else None)
                terms["snippet"] = snippet_loss(probabilities, labels)
            else:
                terms["snippet"] = zero
            if self.memory_bank is not None:
                terms["contrastive"] = zero
                if pseudo_active:
                    regions = sample_region_vectors(output.features, labels, self.region_counts)
                    anchors, anchor_classes = contrastive_anchors(regions)
                    keys, key_classes = self.memory_bank.keys()
                    terms["contrastive"] = info_nce(
                        anchors, anchor_classes, keys, key_classes, self.dfcl_config.temperature
                    )
                    if update_memory:
                        self.memory_bank.enqueue(*regions.flatten())
        total = sum(self.loss_config.weight(name) * value for name, value in terms.items())
        return LossReport(terms=terms, total=total, labels=labels, pseudo=pseudo, regions=regions)

    # ----------------------------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """One iteration: forward, pseudo labels and DFCL when switched on, logged loss terms."""
        output = self.network(batch.rgb, batch.flow, batch.mask)
        report = self.compute_losses(batch, output, pseudo_active=self.pseudo_labels_enabled, update_memory=True)
        size = len(batch)
        for name, value in report.terms.items():
            self.log(f"train/loss_{name}", value.detach(), batch_size=size)
        self.log("train/loss", report.total.detach(), batch_size=size, prog_bar=True)
        if self.supervision == "point":
            self.log("train/pseudo_active", float(self.pseudo_labels_enabled), batch_size=size)
            for name, count in self.pseudo_label_counts(report.pseudo, size).items():
                self.log(f"train/{name}", count, batch_size=size)
        return report.total

    @staticmethod
    def pseudo_label_counts(pseudo: PseudoLabels | None, videos: int) -> dict[str, Tensor | float]:
        """Mean number of pseudo-labelled snippets per video: ME, MaE foreground and background."""
        if pseudo is None:
            return {"pseudo_fg_me": 0.0, "pseudo_fg_mae": 0.0, "pseudo_bg": 0.0}
        fg = pseudo.foreground.float()
        return {
            "pseudo_fg_me": fg[..., 0].sum() / videos,
            "pseudo_fg_mae": fg[..., 1].sum() / videos,
            "pseudo_bg": pseudo.background.float().sum() / videos,
        }

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
        output = self.network(batch.rgb, batch.flow, batch.mask)
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
