"""Small shared helpers: seeding, device choice, eval-mode context, logging."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch


class AdvFeaturesError(RuntimeError):
    """An error with a one-line message that names the bad file, key or value."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch global state and return a CPU generator seeded with ``seed``.

    Library code draws from explicit generators; the global seeds only guard against
    third-party code (torchvision transforms, pyautoattack) that draws from global state.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return make_generator(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def draw_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """Where to draw random numbers for data on ``fallback``: the generator's own device (torch
    refuses a CPU generator for a CUDA draw), else ``fallback``.  Callers move the draw to the
    data's device, so a CPU generator gives CUDA data the same numbers as on the CPU."""
    return generator.device if generator is not None else fallback


def derive_seed(seed: int, *tags: object) -> int:
    """A stable per-purpose seed: same (seed, tags) -> same value on every machine."""
    import hashlib

    h = hashlib.sha256(repr((int(seed),) + tuple(str(t) for t in tags)).encode()).digest()
    return int.from_bytes(h[:7], "little")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise AdvFeaturesError(
            "config key 'device' is 'cuda' but no CUDA device is visible; set device: auto or cpu"
        )
    if device not in ("cpu", "cuda"):
        raise AdvFeaturesError(f"config key 'device' must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def set_threads(threads: int | None) -> None:
    """Limit torch to the cores Snakemake gave this job (``threads:`` of the rule)."""
    if threads:
        torch.set_num_threads(max(1, int(threads)))
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and ``requires_grad=False`` on all parameters (attacks, distillation)."""
    flags = [p.requires_grad for p in model.parameters()]
    with eval_mode(model):
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for p, f in zip(model.parameters(), flags):
                p.requires_grad_(f)


def setup_logging(log_path: str | os.PathLike | None = None) -> logging.Logger:
    """Log to ``log_path`` (Snakemake's ``log:``) and stderr; returns the package logger."""
    logger = logging.getLogger("advfeatures")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The one atomic-write helper of the package: a killed job leaves no output that looks
    complete. The temporary name (``.{name}.tmp``) never matches a glob for finished files
    (``*.pt``, ``chunk_*.pt``), and the next write of the same path overwrites what a killed
    one left; writers that infer the format from the name need it given explicitly. Parent
    folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
