"""ResNet-18 and ResNet-50 with the CIFAR stem (He et al. 2016; the variant of the robustness
library used by Ilyas et al. 2019): 3x3 conv (64, stride 1) -> BN -> ReLU, no max pool, then
four stages (64, 128, 256, 512 base channels; strides 1, 2, 2, 2), global average pool, linear.
ResNet-18 uses basic blocks [2, 2, 2, 2]; ResNet-50 bottleneck blocks [3, 4, 6, 3] (expansion 4).
``width`` scales the base 64 (tiny models for tests and CPU smoke runs).

Every residual block ends with ``ReLU(residual + shortcut)``.  The split takes the last block of
the last stage *without* that ReLU:

- ``features(x)``: ``bn_last(conv_last(...)) + shortcut`` of the final block (the pre-activation
  sum; 512 channels for ResNet-18, 2048 for ResNet-50; 4x4 on 32x32 inputs) - the tensor the
  robustness library's "fake ReLU" acts on.
- ``head(z)``: ReLU (the block's own) -> global average pool -> linear.
- ``representation(x)``: the pooled vector (input of the linear layer; Ilyas et al.'s g(x)).
- probes (after their ReLU): ``layer1``..``layer4`` stage outputs (layer4 = ReLU(Z)), ``fc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advfeatures.models.base import PooledHeadModel


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(cin, planes, stride)

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        """The block output before its final ReLU."""
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return h + (x if self.shortcut is None else self.shortcut(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.preact(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return h + (x if self.shortcut is None else self.shortcut(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.preact(x))


class ResNet(PooledHeadModel):
    probe_names = ("layer1", "layer2", "layer3", "layer4", "fc")

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: Sequence[int],
        in_channels: int,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: int = 64,
    ):
        super().__init__(mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        layers = []
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (i and not j) else 1))
                cin = planes * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.split_channels = cin
        self.linear = nn.Linear(cin, num_classes)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(self.normalize(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer3(self.layer2(self.layer1(self._stem(x))))
        for blk in self.layer4[:-1]:
            h = blk(h)
        return self.layer4[-1].preact(h)

    @property
    def final_linear(self) -> nn.Linear:
        return self.linear

    def probes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        l1 = self.layer1(self._stem(x))
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        fc = self.linear(F.adaptive_avg_pool2d(l4, 1).flatten(1))
        return {"layer1": l1, "layer2": l2, "layer3": l3, "layer4": l4, "fc": fc}


def resnet18(in_channels, num_classes, image_size, mean, std, width: int = 64) -> ResNet:
    """ResNet-18, CIFAR stem; ``image_size`` is accepted for the common signature (any size works)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, mean, std, width)


def resnet50(in_channels, num_classes, image_size, mean, std, width: int = 64) -> ResNet:
    """ResNet-50 (bottleneck blocks), CIFAR stem."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, mean, std, width)
