"""Architectures with the split points the three studies need (see ``base.SplitModel``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from advfeatures.models.base import Normalize, SplitModel
from advfeatures.models.lenet import LeNet5
from advfeatures.utils import AdvFeaturesError

#: name -> constructor(in_channels, num_classes, image_size, mean, std, **options)
ARCHITECTURES: dict[str, Callable[..., SplitModel]] = {
    "lenet5": LeNet5,
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
    return ARCHITECTURES[name](in_channels, num_classes, image_size, mean, std, **(options or {}))


__all__ = ["ARCHITECTURES", "Normalize", "SplitModel", "build_model"]
