"""The DFCL memory bank (paper section 3.4): region-level vectors of ME, MaE and background
gathered across the training set, one first-in-first-out queue per class.

Everything lives in module buffers (``vectors``, ``filled``, ``pointer``), so the bank is part of
``state_dict`` and of every Lightning checkpoint, and a resumed run continues with the same bank.
The paper does not give the bank's size or update rule; a per-class FIFO sized as ``videos x
regions per video`` (MoCo-style queue) keeps the most recent region vectors of about that many
training videos, i.e. the whole training set of a CAS(ME)^2 fold at the default 128.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RegionMemoryBank(nn.Module):
    """Per-class FIFO queues of L2-normalised region vectors (detached)."""

    def __init__(self, capacities: Sequence[int], dim: int) -> None:
        super().__init__()
        if not capacities or any(int(c) < 1 for c in capacities):
            raise ValueError(f"memory bank: capacities must be positive, got {list(capacities)}")
        if int(dim) < 1:
            raise ValueError(f"memory bank: vector width must be positive, got {dim}")
        self.capacities = tuple(int(c) for c in capacities)
        self.dim = int(dim)
        self.register_buffer("vectors", torch.zeros(len(self.capacities), max(self.capacities), self.dim))
        self.register_buffer("filled", torch.zeros(len(self.capacities), dtype=torch.long))
        self.register_buffer("pointer", torch.zeros(len(self.capacities), dtype=torch.long))

    @property
    def num_classes(self) -> int:
        """Number of queues (ME, MaE, background)."""
        return len(self.capacities)

    def sizes(self) -> list[int]:
        """How many vectors each class's queue holds now."""
        return [int(n) for n in self.filled]

    @torch.no_grad()
    def enqueue(self, vectors: Tensor, classes: Tensor) -> None:
        """Append ``vectors`` [N, E] of classes ``classes`` [N] (oldest entries are overwritten)."""
        if vectors.dim() != 2 or vectors.shape[1] != self.dim or classes.shape != vectors.shape[:1]:
            raise ValueError(
                f"memory bank: expected vectors [N, {self.dim}] and classes [N], got "
                f"{tuple(vectors.shape)} and {tuple(classes.shape)}"
            )
        normed = F.normalize(vectors.detach().to(self.vectors.dtype), dim=-1)
        for c, capacity in enumerate(self.capacities):
            new = normed[classes == c]
            if new.shape[0] == 0:
                continue
            new = new[-capacity:]
            n = new.shape[0]
            slots = (self.pointer[c] + torch.arange(n, device=new.device)) % capacity
            self.vectors[c, slots] = new
            self.pointer[c] = (self.pointer[c] + n) % capacity
            self.filled[c] = torch.clamp(self.filled[c] + n, max=capacity)

    def keys(self) -> tuple[Tensor, Tensor]:
        """All stored vectors [M, E] and their classes [M] (class-major order)."""
        vecs, labels = [], []
        for c in range(self.num_classes):
            n = int(self.filled[c])
            vecs.append(self.vectors[c, :n])
            labels.append(torch.full((n,), c, dtype=torch.long, device=self.vectors.device))
        return torch.cat(vecs), torch.cat(labels)
