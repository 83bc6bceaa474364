"""Wide residual network (Zagoruyko & Komodakis 2016), the pre-activation variant used by
TRADES, MART, Kim, Lee, Ro 2021 (WRN-28-10) and Zhang et al.

conv1 (3x3, 16) -> block1 (16k, stride 1) -> block2 (32k, stride 2) -> block3 (64k, stride 2)
-> BatchNorm -> ReLU -> global average pool -> fc, with (depth - 4) / 6 basic blocks per group
and k = ``widen_factor``.  Basic block: BN -> ReLU -> conv3x3 -> BN -> ReLU -> (dropout) ->
conv3x3, plus the identity or a 1x1 conv shortcut when the shape changes.

- ``features(x)``: block3 output after the final BatchNorm, *before* its ReLU (Kim et al.'s Z;
  64k channels = 640 for WRN-28-10).
- ``head(z)``: ReLU -> global average pool -> fc.
- ``representation(x)``: the pooled 64k-vector.
- probes (Zhang et al.): ``conv1``, ``block1``, ``block2``, ``block3`` (the raw outputs of
  those modules: pre-activation sums, as a forward hook on them sees them) and ``fc`` (logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advfeatures.models.base import PooledHeadModel
from advfeatures.utils import AdvFeaturesError


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            None
            if in_planes == out_planes and stride == 1
            else nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        # a shape-changing block feeds the activated input to its shortcut as well
        skip = x if self.shortcut is None else self.shortcut(a)
        h = F.relu(self.bn2(self.conv1(a)))
        if self.dropout > 0:
            h = F.dropout(h, p=self.dropout, training=self.training)
        return skip + self.conv2(h)


class WideResNet(PooledHeadModel):
    probe_names = ("conv1", "block1", "block2", "block3", "fc")

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        depth: int = 28,
        widen_factor: int = 10,
        dropout: float = 0.0,
    ):
        super().__init__(mean, std)
        if depth < 10 or (depth - 4) % 6:
            raise AdvFeaturesError(
                f"wrn depth must be 6n + 4 (10, 16, 22, 28, 34, ...), got {depth} (arch.options.wrn.depth)"
            )
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)

        def group(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                *[
                    BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, dropout)
                    for i in range(n)
                ]
            )

        self.block1 = group(widths[0], widths[1], 1)
        self.block2 = group(widths[1], widths[2], 2)
        self.block3 = group(widths[2], widths[3], 2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.split_channels = widths[3]
        for m in self.modules():  # the initialisation of the reference implementation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.normalize(x))
        return self.bn(self.block3(self.block2(self.block1(h))))

    @property
    def final_linear(self) -> nn.Linear:
        return self.fc

    def probes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c1 = self.conv1(self.normalize(x))
        b1 = self.block1(c1)
        b2 = self.block2(b1)
        b3 = self.block3(b2)
        return {"conv1": c1, "block1": b1, "block2": b2, "block3": b3, "fc": self.head(self.bn(b3))}
