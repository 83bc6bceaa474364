"""Model checkpoints: save (atomically), load (``weights_only``) and rebuild the recorded model.

A checkpoint is a dict with ``model`` (state dict) and ``meta`` (``arch``, ``arch_options``,
``model_kwargs``: what :func:`advfeatures.models.build_model` needs), written by
:func:`advfeatures.training.train` as ``model.pt`` and ``checkpoints/epoch_N.pt``.

:func:`save_checkpoint` is the one guard that no checkpoint holding NaN or inf is ever written:
a diverged model fails its job instead of reaching the attacks and reports.
"""

from __future__ import annotations

from pathlib import Path

import torch

from advfeatures.models import SplitModel, build_model
from advfeatures.utils import AdvFeaturesError, atomic_write

#: what to change when training diverges (named by every non-finite error)
FIX_DIVERGENCE = "lower training.lr, or set training.lr_warmup_epochs or training.grad_clip_norm"


def nonfinite_tensors(state: dict) -> list[str]:
    """Names of the floating tensors of a state dict that hold NaN or inf."""
    return [
        k for k, v in state.items()
        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


def name_list(names: list[str], k: int = 4) -> str:
    """The first ``k`` names, comma-separated, and how many more."""
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def _assert_finite(path: Path, payload: dict) -> None:
    """Last guard before a save: never write a checkpoint holding NaN or inf."""
    names = nonfinite_tensors(payload.get("model", {}))
    if names:
        meta = payload.get("meta", {})
        when = f"epoch {meta['epoch']}" if "epoch" in meta else "save"
        raise AdvFeaturesError(
            f"{path}: non-finite weights at {when} (method {meta.get('method', '?')}): "
            f"{name_list(names)}; not saved; {FIX_DIVERGENCE}"
        )


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` atomically; refuses (one-line error, nothing written) when a floating
    tensor of ``payload["model"]`` is not finite."""
    path = Path(path)
    _assert_finite(path, payload)
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
