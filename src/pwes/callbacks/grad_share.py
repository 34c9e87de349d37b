"""Each loss term's share of the gradient, logged (measurement only; it changes no update).

Every ``every_n_steps`` training steps (step 0 first), just before the backward pass, the
callback takes the step's loss terms from the module (``loss_report`` of the callback host
protocol, :mod:`pwes.callbacks.host`; graph still attached) and computes for each term the L2 norm of ``d(weight x term) / d(parameters)``
over the chosen parameters, with one extra backward pass per term (``retain_graph``). It logs

* ``train/grad_norm/<term>``: that norm, and
* ``train/grad_share/<term>``: the norm over the sum of every term's norm (the shares sum to 1),

for the module's terms (``mil``, ``mil_suppressed``, ``snippet``, ``guide``, ``sparsity``,
``mutual``) and the contributed ones (DFCL's ``contrastive``). A term with weight 0 or without a
path to the parameters has norm 0.

``parameters``: ``shared`` (default) takes the two stream embeddings (``network.rgb_stream``,
``network.flow_stream``), the only parameters every term reaches, so the shares compare like with
like; ``all`` takes every network parameter (heads only one term reaches then weigh in).

Cost: one backward per term on the measured steps, about 1.4 training steps each (measured on a
synthetic_small-sized model), so ``every_n_steps=50`` (default) adds ~3% to training
(conf/callbacks/grad_share.yaml). Settings:
``callbacks.grad_share``; ``~callbacks.grad_share`` removes it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from pwes.callbacks.host import HostCallback
from pwes.config import ConfigError

PARAMETER_SETS = ("shared", "all")


def term_gradient_norms(terms: dict[str, Tensor], weights: dict[str, float], parameters: list[Tensor]) -> dict[str, float]:
    """``{name: ||d(weight x term)/d parameters||_2}`` (graphs retained); 0 for a zero weight or
    a term that does not reach the parameters."""
    norms: dict[str, float] = {}
    for name, value in terms.items():
        weight = float(weights.get(name, 0.0))
        if weight == 0.0 or not value.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(weight * value, parameters, retain_graph=True, allow_unused=True)
        squares = [g.detach().double().pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def shares(norms: dict[str, float]) -> dict[str, float]:
    """Each norm over their sum (all 0 when every norm is 0)."""
    total = sum(norms.values())
    return {name: (value / total if total > 0 else 0.0) for name, value in norms.items()}


class GradShareCallback(HostCallback):
    """Logs ``train/grad_share/<term>`` and ``train/grad_norm/<term>`` every ``every_n_steps``."""

    config_key = "callbacks.grad_share"

    def __init__(self, every_n_steps: int = 50, parameters: str = "shared") -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ConfigError(f"{self.config_key}.every_n_steps: must be a whole number >= 1, got {every_n_steps!r}")
        if parameters not in PARAMETER_SETS:
            raise ConfigError(f"{self.config_key}.parameters: {parameters!r} is not one of {', '.join(PARAMETER_SETS)}")
        self.every_n_steps, self.parameters = every_n_steps, parameters
        self.history: dict[str, list[float]] = {}

    def parameter_list(self, pl_module: L.LightningModule) -> list[Tensor]:
        """The parameters the norms are taken over (module docstring)."""
        network = pl_module.network
        modules = [network.rgb_stream, network.flow_stream] if self.parameters == "shared" else [network]
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        report = pl_module.loss_report
        if report is None:  # the host sets it in training_step, before the backward pass
            raise RuntimeError(f"{type(self).__name__}: {type(pl_module).__name__} gave no loss_report for this step")
        norms = term_gradient_norms(report.terms, report.weights, self.parameter_list(pl_module))
        for name, share in shares(norms).items():
            self.history.setdefault(name, []).append(share)
            pl_module.log(f"train/grad_share/{name}", share, on_step=True, on_epoch=False, batch_size=1)
            pl_module.log(f"train/grad_norm/{name}", norms[name], on_step=True, on_epoch=False, batch_size=1)

    def mean_shares(self) -> dict[str, float]:
        """Each term's mean share over the measured steps so far."""
        return {name: float(np.mean(values)) for name, values in sorted(self.history.items()) if values}

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = dict(state_dict.get("history", {}))
