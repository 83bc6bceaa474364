"""VGG-16 with BatchNorm for small images (CIFAR-10, SVHN), as in Kim, Lee, Ro 2021.

Five stages of 3x3 conv -> BatchNorm -> ReLU (64, 64 | 128, 128 | 256 x 3 | 512 x 3 | 512 x 3,
``width`` scales the base 64), 2x2 max pooling between the stages, then a global max pool and
one linear layer (the CIFAR VGG of the public code: on 32x32 inputs the last 2x2 max pool *is*
the global max pool; the adaptive pool also serves 28x28 inputs).

- ``features(x)``: output of the 13th conv's BatchNorm, *before* its ReLU (Kim et al.'s Z;
  512 channels, 2x2 on 32x32 inputs).
- ``head(z)``: ReLU -> global max pool -> linear.
- ``representation(x)``: the pooled 512-vector (input of the linear layer).
- probes (after their ReLU): ``block2``..``block5`` = outputs of stages 2-5 (before the pooling
  that follows them; block5 = ReLU(Z)), ``fc`` = logits.  Stage 1 (64 x H x W) is skipped: it
  is the largest activation and the least informative layer for the MI study.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advfeatures.models.base import PooledHeadModel
from advfeatures.utils import AdvFeaturesError

#: convs per stage and their width in units of the base width (64 for VGG-16)
STAGES: tuple[tuple[int, ...], ...] = ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))


class VGG16(PooledHeadModel):
    global_pool = "max"
    probe_names = ("block2", "block3", "block4", "block5", "fc")

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: int = 64,
    ):
        super().__init__(mean, std)
        if image_size < 16:
            raise AdvFeaturesError(
                f"vgg16 needs images of at least 16x16 (four 2x2 poolings), got {image_size}"
            )
        self.stages = nn.ModuleList()
        c = in_channels
        for i, mults in enumerate(STAGES):
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if i else []
            for m in mults:
                layers += [
                    nn.Conv2d(c, m * width, 3, padding=1),
                    nn.BatchNorm2d(m * width),
                    nn.ReLU(inplace=True),
                ]
                c = m * width
            if i == len(STAGES) - 1:
                layers.pop()  # Z is taken before the last ReLU; head() applies it
            self.stages.append(nn.Sequential(*layers))
        self.split_channels = c
        self.classifier = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x)
        for stage in self.stages:
            h = stage(h)
        return h

    @property
    def final_linear(self) -> nn.Linear:
        return self.classifier

    def probes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        h = self.normalize(x)
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i:
                out[f"block{i + 1}"] = F.relu(h) if i == len(self.stages) - 1 else h
        out["fc"] = self.classifier(F.adaptive_max_pool2d(out["block5"], 1).flatten(1))
        return out
