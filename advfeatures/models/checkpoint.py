"""Model checkpoints: save (atomically), load (``weights_only``) and rebuild the recorded model.

A checkpoint is a dict with ``model`` (state dict) and ``meta`` (``arch``, ``arch_options``,
``model_kwargs``: what :func:`advfeatures.models.build_model` needs), written by
:func:`advfeatures.training.train` as ``model.pt`` and ``checkpoints/epoch_N.pt``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from advfeatures.models import SplitModel, build_model
from advfeatures.utils import AdvFeaturesError, atomic_write


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint saved by this module (``weights_only=True``); one-line error if bad."""
    path = Path(path)
    if not path.exists():
        raise AdvFeaturesError(f"{path}: checkpoint not found; run the train rule that makes it")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise AdvFeaturesError(
            f"{path}: unreadable or corrupt checkpoint ({exc.__class__.__name__}); delete it and rerun"
        ) from None


def model_from_checkpoint(path: str | Path, map_location="cpu") -> SplitModel:
    """Rebuild the architecture recorded in a ``model.pt``/epoch checkpoint and load its weights."""
    ck = load_checkpoint(path, map_location)
    meta = ck["meta"]
    model = build_model(meta["arch"], options=meta.get("arch_options") or {}, **meta["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.eval()
    return model.to(map_location)
