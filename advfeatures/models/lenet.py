"""LeNet-5 (LeCun et al. 1998), the small CNN of the default run and of Zhang et al.'s MNIST study.

conv1 (5x5, 6 ch, pad 2) -> ReLU -> maxpool -> conv2 (5x5, 16 ch) = Z -> ReLU -> maxpool
-> fc1 (120) -> ReLU -> fc2 (84) -> ReLU = representation -> fc3 (classes).
Probes (every conv and linear output, after its activation): conv1, conv2, fc1, fc2, fc3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advfeatures.models.base import SplitModel


class LeNet5(SplitModel):
    probe_names = ("conv1", "conv2", "fc1", "fc2", "fc3")

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: int = 1,
    ):
        super().__init__(mean, std)
        c1, c2 = 6 * width, 16 * width
        self.split_channels = c2
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        side = ((image_size // 2) - 4) // 2
        self.fc1 = nn.Linear(c2 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(self.normalize(x))), 2)
        return self.conv2(h)

    def _penultimate(self, z: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(z), 2).flatten(1)
        return F.relu(self.fc2(F.relu(self.fc1(h))))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc3(self._penultimate(z))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        return self._penultimate(self.features(x))

    def probes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a1 = F.relu(self.conv1(self.normalize(x)))
        a2 = F.relu(self.conv2(F.max_pool2d(a1, 2)))
        f1 = F.relu(self.fc1(F.max_pool2d(a2, 2).flatten(1)))
        f2 = F.relu(self.fc2(f1))
        return {"conv1": a1, "conv2": a2, "fc1": f1, "fc2": f2, "fc3": self.fc3(f2)}
