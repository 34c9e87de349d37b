"""Dropout for the PWES network, with a cheaper mask than ``torch.nn.Dropout`` on CPU.

``nn.Dropout`` draws its mask with ``bernoulli_``, which on CPU costs about three times a plain
uniform draw (one ``Conv1d`` step's worth at width 128: 22% of a CAS(ME)^2-sized training step was
``bernoulli_``, benchmarks/bench_train.py). :class:`FastDropout` draws one float32 uniform ``u`` per
element and keeps the element when ``u >= p``: the same distribution (each element kept
independently with probability ``1 - p``) and the same inverted scaling (kept elements times
``1 / (1 - p)``, so the expectation is unchanged; eval mode is the identity). Its gradient is
``mask / (1 - p)``, as ``nn.Dropout``'s. It consumes the random stream differently, so the two
give different masks for one seed: ``model.network.dropout_impl=torch`` reproduces runs made
before it existed.

Under bf16 autocast the uniforms are still float32 (a bf16 uniform has 8 bits, which would round
``p``); the mask is cast to the input's dtype, as ``nn.Dropout``'s output is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

DROPOUT_IMPLS = ("fast", "torch")


def fast_dropout(x: Tensor, p: float, training: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout of ``x``: each element kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``; the identity when not ``training`` or ``p == 0``. ``generator`` defaults to
    torch's global one (seeded by ``seed_everything``)."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    uniform_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    uniform = torch.rand(x.shape, dtype=uniform_dtype, device=x.device, generator=generator)
    mask = uniform.ge_(p)  # in place: 1.0 where kept, 0.0 where dropped
    if mask.dtype != x.dtype:
        mask = mask.to(x.dtype)
    return x * mask.mul_(1.0 / (1.0 - p))


class FastDropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` drawing a uniform mask (see the module docstring)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_dropout(p: float, impl: str = "fast") -> nn.Module:
    """The dropout layer of ``impl``: ``fast`` (:class:`FastDropout`) or ``torch`` (``nn.Dropout``,
    the random stream of runs made before ``fast`` existed)."""
    if impl == "fast":
        return FastDropout(p)
    if impl == "torch":
        return nn.Dropout(p)
    raise ValueError(f"dropout_impl must be one of {', '.join(DROPOUT_IMPLS)}, got {impl!r}")
