"""Pseudo-label and attention diagnostics: does MPLG (or another source) label the right snippets?

**Ground truth is used for logging only.** The protocol hands the callback a read-only map video ->
snippet-level ground truth of the fold's *training* videos (:func:`attach_ground_truth`); it never
enters the batch, the module, a loss, a pseudo label or a threshold (``tests/test_diagnostics.py``
trains with true and with shuffled ground truth and gets bit-identical weights).

A snippet is **inside** an interval of class c when its centre frame lies in the interval, and the
snippet nearest the interval's middle always is (so an ME shorter than a snippet still counts):
the rule of :func:`pwes.data.points.snippet_intervals`, the one full supervision trains on.

Per training step, over the real snippets of the batch's videos (pooled over the batch), logged
through ``pl_module.log`` under one prefix, ``diag/`` (W&B makes it one panel section), the
per-class figures as pairs that sort together (``diag/me_precision``, ``diag/me_recall``,
``diag/mae_precision``, ...; :func:`logged_key`), in W&B and the CSV logger:

* ``precision_me``, ``precision_mae``: share of the snippets the snippet loss treats as foreground
  of the class (target >= 0.5, in the loss) that lie inside an interval of that class;
  ``recall_me``, ``recall_mae``: share of the inside snippets of the class so labelled.
* ``bg_purity``: share of the pseudo-background snippets that lie outside every interval.
* ``coverage_fg``, ``coverage_bg``: share of each video labelled foreground (any class) or
  background, averaged over the batch's videos.
* ``attention_auc``: ROC AUC of the clean forward's attention (eval mode, the one pseudo labels
  are made from, taken before the step's update) separating inside snippets (any class) from the
  rest; ties count one half.

The labels are the targets the step's snippet loss used (``outputs["targets"]`` of
``on_train_batch_end``, :class:`pwes.model.module.StepOutput`: point labels over the pseudo
labels; the point labels alone before the pseudo-label callback's ``start_step``). Under ``model.supervision=video`` or ``full`` there are no pseudo labels: only
``attention_auc`` is logged. A figure whose denominator is empty in a step (no ME pseudo label,
no interval in the batch) is not logged that step.

:meth:`DiagnosticsCallback.final_values` gives each figure's mean over the last ``final_steps``
steps where it was defined; the protocol writes them into the fold's ``metrics.json`` as
``diag_<name>``. Settings: ``conf/callbacks/diagnostics.yaml`` (``~callbacks.diagnostics`` removes it).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from pwes.callbacks.host import HostCallback
from pwes.config import ConfigError
from pwes.data.batch import NUM_CLASSES
from pwes.data.layout import FeatureSet
from pwes.data.points import snippet_intervals
from pwes.evaluation.auc import snippet_auc
from pwes.model.module import StepOutput
from pwes.model.targets import SnippetTargets

CLASS_NAMES = ("me", "mae")
PREFIX = "diag"


# ------------------------------------------------------------------------------- ground truth
def ground_truth_map(feature_set: FeatureSet, videos: Iterable[str]) -> Mapping[str, np.ndarray]:
    """Read-only ``{video: bool [T, C]}`` of snippets inside an annotated interval (module
    docstring for the rule), for ``videos`` only."""
    truth = {}
    for name in videos:
        grid = snippet_intervals(feature_set.intervals[name], feature_set.num_snippets[name], feature_set.snippet_length, feature_set.stride, NUM_CLASSES) > 0
        grid.flags.writeable = False
        truth[name] = grid
    return types.MappingProxyType(truth)


def attach_ground_truth(callbacks: Iterable[Callback], feature_set: FeatureSet, videos: Sequence[str]) -> None:
    """Give the callbacks that declare ``set_ground_truth`` the map of ``videos`` (the protocol
    calls this with the fold's training videos). Besides these diagnostics, only the oracle upper
    bounds (``pwes.callbacks.oracle``, ``ablation=oracle_*``) declare it: the one path from
    intervals into weak training, explicit and named as such."""
    wanting = [c for c in callbacks if callable(getattr(c, "set_ground_truth", None))]
    if wanting:
        truth = ground_truth_map(feature_set, videos)
        for callback in wanting:
            callback.set_ground_truth(truth)


def batch_ground_truth(truth: Mapping[str, np.ndarray], batch: Any, where: str) -> Tensor:
    """[B, T, C] bool: the ``truth`` map's grids of the batch's videos, padded like the batch;
    a missing video or a length mismatch is an error naming ``where``."""
    B, T = batch.mask.shape
    out = torch.zeros(B, T, NUM_CLASSES, dtype=torch.bool)
    for i, (name, length) in enumerate(zip(batch.videos, batch.lengths.tolist())):
        grid = truth.get(name)
        if grid is None:
            raise KeyError(f"{where}: no ground truth for training video {name!r}")
        if grid.shape[0] != length:
            raise ValueError(f"{where}: video {name!r} has {length} snippets in the batch but {grid.shape[0]} in the ground truth")
        out[i, :length] = torch.from_numpy(np.array(grid))
    return out


def final_values(callbacks: Iterable[Callback]) -> dict[str, float]:
    """The ``diag_*`` figures of every diagnostics callback among ``callbacks`` (for metrics.json)."""
    out: dict[str, float] = {}
    for callback in callbacks:
        if isinstance(callback, DiagnosticsCallback):
            out.update(callback.final_values())
    return out


def logged_key(name: str) -> str:
    """The logged key of a figure: ``precision_me`` -> ``diag/me_precision`` (class first, so a
    class's precision and recall sit side by side), ``bg_purity`` -> ``diag/bg_purity``."""
    figure, _, kind = name.rpartition("_")
    return f"{PREFIX}/{kind}_{figure}" if kind in CLASS_NAMES and figure else f"{PREFIX}/{name}"


# ------------------------------------------------------------------------------------ metrics
def _ratio(numerator: Tensor, denominator: Tensor) -> float | None:
    d = float(denominator)
    return None if d == 0 else float(numerator) / d


def pseudo_label_metrics(targets: SnippetTargets, truth: Tensor, mask: Tensor) -> dict[str, float]:
    """Precision/recall per class, background purity and coverage (module docstring) of hard
    ``targets`` for a padded batch; ``truth`` [B, T, C] bool, ``mask`` [B, T] bool. Undefined
    figures (empty denominator) are left out."""
    mask = mask.bool()
    truth = truth.bool() & mask[..., None]
    hard = targets.hard_labels() & mask[..., None]
    foreground, background = hard[..., :NUM_CLASSES], hard[..., NUM_CLASSES]
    out: dict[str, float | None] = {}
    for c, name in enumerate(CLASS_NAMES):
        hits = (foreground[..., c] & truth[..., c]).sum()
        out[f"precision_{name}"] = _ratio(hits, foreground[..., c].sum())
        out[f"recall_{name}"] = _ratio(hits, truth[..., c].sum())
    out["bg_purity"] = _ratio((background & ~truth.any(dim=-1)).sum(), background.sum())
    lengths = mask.sum(dim=1).clamp(min=1).double()
    real = mask.sum(dim=1) > 0
    if bool(real.any()):
        out["coverage_fg"] = float((foreground.any(dim=-1).sum(dim=1).double() / lengths)[real].mean())
        out["coverage_bg"] = float((background.sum(dim=1).double() / lengths)[real].mean())
    return {k: v for k, v in out.items() if v is not None}


def attention_auc(attention: Tensor, truth: Tensor, mask: Tensor) -> dict[str, float]:
    """``{"attention_auc": ...}`` over the real snippets (inside any interval vs the rest), or {}."""
    mask = mask.bool()
    auc = snippet_auc(attention[mask], truth.bool().any(dim=-1)[mask])
    return {} if auc is None else {"attention_auc": auc}


# ----------------------------------------------------------------------------------- callback
class DiagnosticsCallback(HostCallback):
    """Logs ``diag/*`` per training step (module docstring); does nothing until the
    protocol gives it ground truth (:meth:`set_ground_truth`)."""

    config_key = "callbacks.diagnostics"

    def __init__(self, final_steps: int = 20) -> None:
        if isinstance(final_steps, bool) or not isinstance(final_steps, int) or final_steps < 1:
            raise ConfigError(f"{self.config_key}.final_steps: must be a whole number >= 1, got {final_steps!r}")
        self.final_steps = final_steps
        self.truth: Mapping[str, np.ndarray] | None = None
        self.history: dict[str, list[float]] = {}
        self._attention: Tensor | None = None

    def set_ground_truth(self, truth: Mapping[str, np.ndarray]) -> None:
        """The read-only map video -> bool [T, C] of snippets inside an interval (logging only)."""
        self.truth = truth

    def batch_truth(self, batch: Any) -> Tensor:
        """[B, T, C] bool ground truth of the batch's videos, padded like the batch."""
        assert self.truth is not None
        return batch_ground_truth(self.truth, batch, self.config_key)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._attention = None
        if self.truth is None:
            return
        # The clean forward is shared per batch with the pseudo-label callback, and it changes no
        # state (eval mode, no gradient, no random numbers); taken before the optimizer step.
        self._attention = pl_module.clean_forward(batch).attention.detach().float().cpu()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: StepOutput, batch: Any, batch_idx: int) -> None:
        if self.truth is None or self._attention is None:
            return
        attention, self._attention = self._attention, None
        truth, mask = self.batch_truth(batch), batch.mask.detach().bool().cpu()
        values = attention_auc(attention, truth, mask)
        targets = outputs["targets"]
        if pl_module.takes_pseudo_labels and targets is not None:
            cpu = SnippetTargets(targets.targets.detach().cpu(), targets.weight.detach().cpu())
            values.update(pseudo_label_metrics(cpu, truth, mask))
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
            pl_module.log(logged_key(name), value, batch_size=len(batch), on_step=True, on_epoch=False)

    def final_values(self) -> dict[str, float]:
        """``{"diag_<name>": mean over the last final_steps steps where it was defined}``."""
        return {f"diag_{name}": round(float(np.mean(v[-self.final_steps :])), 6) for name, v in sorted(self.history.items()) if v}
