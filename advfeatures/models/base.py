"""The interface every architecture implements.

All models take images in [0, 1] pixel space and normalise inside (``Normalize``), so
attacks never see normalised tensors.  Each model exposes the split points the studies need:

- ``features(x) -> Z``: output of the last convolutional block *before* its final ReLU
  (Kim et al.'s layer l); shape [B, Cz, h, w].
- ``head(Z) -> logits``: the rest of the network f_{l+} (ReLU, pooling, classifier).
  ``forward(x) == head(features(x))``.
- ``representation(x)``: the penultimate layer, the input of the final linear layer
  (Ilyas et al.'s g(x)); shape [B, D].
- ``probes(x) -> {name: activation}``: the five named layers whose mutual information
  Zhang et al. estimate, in ``probe_names`` order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SplitModel(nn.Module):
    """Base class: subclasses implement ``features``, ``head``, ``representation``, ``probes``."""

    probe_names: tuple[str, ...] = ()
    #: number of channels of Z = features(x)
    split_channels: int = 0

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def representation(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def probes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PooledHeadModel(SplitModel):
    """A model whose head is ReLU -> global pooling -> one linear layer (VGG, WRN, ResNet).

    Subclasses implement ``features`` and ``probes``, name their last layer through
    ``final_linear`` and choose ``global_pool`` (``"avg"`` or ``"max"``).
    """

    global_pool: str = "avg"

    @property
    def final_linear(self) -> nn.Linear:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pool(self, z: torch.Tensor) -> torch.Tensor:
        pool = F.adaptive_max_pool2d if self.global_pool == "max" else F.adaptive_avg_pool2d
        return pool(F.relu(z), 1).flatten(1)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.final_linear(self._pool(z))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self.features(x))
