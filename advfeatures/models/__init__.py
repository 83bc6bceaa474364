"""Architectures with the split points the three studies need (see ``base.SplitModel``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from advfeatures.models.base import Normalize, SplitModel
from advfeatures.models.lenet import LeNet5
from advfeatures.models.resnet import resnet18, resnet50
from advfeatures.models.vgg import VGG16
from advfeatures.models.wrn import WideResNet
from advfeatures.utils import AdvFeaturesError

#: name -> constructor(in_channels, num_classes, image_size, mean, std, **options)
ARCHITECTURES: dict[str, Callable[..., SplitModel]] = {
    "lenet5": LeNet5,
    "vgg16": VGG16,
    "wrn": WideResNet,
    "resnet18": resnet18,
    "resnet50": resnet50,
}


def build_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    options: dict[str, Any] | None = None,
) -> SplitModel:
    """Build architecture ``name``; ``options`` are its own keyword arguments (e.g. depth, width)."""
    if name not in ARCHITECTURES:
        raise AdvFeaturesError(
            f"unknown architecture {name!r} (config key arch.name); choose one of {sorted(ARCHITECTURES)}"
        )
    ctor = ARCHITECTURES[name]
    options = dict(options or {})
    allowed = list(inspect.signature(ctor).parameters)[5:]  # after the dataset arguments
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise AdvFeaturesError(
            f"architecture {name!r}: unknown option(s) {unknown} in config key arch.options.{name}; "
            f"allowed: {allowed}"
        )
    return ctor(in_channels, num_classes, image_size, mean, std, **options)

__all__ = ["ARCHITECTURES", "Normalize", "SplitModel", "build_model"]
