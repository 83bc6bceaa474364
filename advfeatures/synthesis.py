"""Robust and non-robust datasets of Ilyas et al. 2019 ("Adversarial examples are not bugs").

Four synthetic training sets are made from the training split (x_i, y_i), i = 0..N-1:

- ``d_r`` / ``d_nr`` (representation inversion): starting from x0 (by default a *different*,
  seeded-random training image; ``start: noise`` gives grey 0.5 plus Gaussian noise as in the
  released notebook), minimise ``||g(x') - g(x)||_2 / ||g(x)||_2`` over x' by normalised-gradient
  L2 steps ``x' <- clip01(x' - lr * grad / ||grad||_2)`` with no epsilon bound.  g is the
  penultimate representation (``model.representation``) of an adversarially trained model for
  d_r and of the standard model for d_nr.  The label stays y.  We back-propagate through the
  model's true last ReLU (the reference code's "fake ReLU", identity in the backward pass, is
  not used: it needs a model-specific forward and changes only where units are dead).
- ``d_rand`` / ``d_det`` (non-robust features only): targeted L2 PGD (no random start) against
  the standard model towards t, then relabel the image as t.  t is a uniformly random class
  other than y for d_rand (as in the released example) and (y + 1) mod C for d_det.

The set is built in chunks of ``batch_size`` rows in index order.  Chunk k draws from its own
generator seeded by ``derive_seed(seed, "synthesis", kind, k)``, so the result does not depend on
whether the job was interrupted.  Finished chunks go to ``state_dir`` (not a Snakemake output)
with a fingerprint of the config, the model weights and the data; a restarted job reloads the
chunks whose fingerprint matches and continues with the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from advfeatures.attacks.pgd import pgd
from advfeatures.data import Dataset
from advfeatures.registry import INVERSION_KINDS, SYNTHESIS_KINDS, TARGETED_KINDS
from advfeatures.utils import (
    AdvFeaturesError,
    atomic_write,
    batches,
    derive_seed,
    draw_device,
    frozen,
    make_generator,
)

log = logging.getLogger("advfeatures")

KINDS = SYNTHESIS_KINDS  # declared once in advfeatures.registry
START_POINTS = ("random_image", "noise")
#: arrays of the ``synthetic`` HDF5 layout (see advfeatures.h5io)
ARRAYS = ("x", "y", "source_index", "y_source", "source_pred", "rep_distance")
_EPS = 1e-12

#: Rows per forward/backward pass on the CPU.  Inversion and targeted PGD optimise every row on
#: its own (summed per-row losses), so a chunk split into passes gives the same rows up to float32
#: rounding (GEMM blockings differ; tested) while the activations stay in the cache: LeNet-5's
#: forward+backward costs 1.4x more per row at 1000 rows than at 250-500 on the 2-core CPU
#: machine.  On a GPU the whole chunk is one pass.
CPU_ROWS_PER_PASS = 256


def rows_per_pass(device: torch.device, n: int) -> int:
    return CPU_ROWS_PER_PASS if device.type == "cpu" else max(n, 1)


@dataclass
class InversionConfig:
    steps: int = 1000
    step_size: float = 0.1
    start: str = "random_image"
    noise_std: float = 0.1  # start == "noise": x0 = clip01(0.5 + noise_std * N(0, 1))


@dataclass
class TargetedConfig:
    eps: float = 0.5
    alpha: float = 0.1
    steps: int = 100


@dataclass
class SynthesisConfig:
    kind: str
    batch_size: int = 500
    seed: int = 0
    inversion: InversionConfig = field(default_factory=InversionConfig)
    targeted: TargetedConfig = field(default_factory=TargetedConfig)

    @classmethod
    def from_dict(cls, kind: str, d: Mapping[str, Any], seed: int) -> SynthesisConfig:
        """Build from the ``synthesis`` config slice (keys batch_size, inversion, targeted)."""
        if kind not in KINDS:
            raise AdvFeaturesError(f"unknown synthetic dataset kind {kind!r}; choose one of {KINDS}")
        try:
            cfg = cls(
                kind=kind,
                batch_size=int(d.get("batch_size", 500)),
                seed=int(seed),
                inversion=InversionConfig(**(d.get("inversion") or {})),
                targeted=TargetedConfig(**(d.get("targeted") or {})),
            )
        except TypeError as exc:
            raise AdvFeaturesError(f"bad option under config key synthesis: {exc}") from None
        if cfg.inversion.start not in START_POINTS:
            raise AdvFeaturesError(
                f"synthesis.inversion.start is {cfg.inversion.start!r}; use one of {START_POINTS}"
            )
        if cfg.batch_size < 1:
            raise AdvFeaturesError(f"synthesis.batch_size must be >= 1, got {cfg.batch_size}")
        return cfg

    def relevant(self) -> dict:
        """The part of the config that changes this kind's output."""
        d = {"kind": self.kind, "batch_size": self.batch_size, "seed": self.seed}
        d |= {"inversion": asdict(self.inversion)} if self.kind in INVERSION_KINDS else {}
        d |= {"targeted": asdict(self.targeted)} if self.kind in TARGETED_KINDS else {}
        return d


# ----------------------------------------------------------------------------- pieces


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def relative_rep_distance(model, x: torch.Tensor, target_rep: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||g(x) - target||_2 / ||target||_2`` on ``model.representation``."""
    rep = model.representation(x)
    return _flat_norm(rep - target_rep) / _flat_norm(target_rep).clamp_min(_EPS)


def invert_representation(
    model, target_rep: torch.Tensor, start: torch.Tensor, *, steps: int, step_size: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Find x' in [0, 1] whose representation matches ``target_rep``; returns (x', final distance).

    Normalised-gradient descent on the relative L2 distance, no epsilon bound, clipped to [0, 1].
    The model is frozen and in eval mode for the duration.
    """
    x = start.detach().clone().clamp_(0, 1)
    target_rep = target_rep.detach()
    with frozen(model):
        for _ in range(int(steps)):
            x.requires_grad_(True)
            loss = relative_rep_distance(model, x, target_rep)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            with torch.no_grad():
                step = grad / _flat_norm(grad).clamp_min(_EPS).view(-1, *([1] * (grad.dim() - 1)))
                x = (x - step_size * step).clamp_(0, 1)
        with torch.no_grad():
            final = relative_rep_distance(model, x, target_rep)
    if not torch.isfinite(final).all():
        raise AdvFeaturesError("representation inversion produced non-finite losses; lower synthesis.inversion.step_size")
    return x.detach(), final


def random_other_index(index: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """For each row index i, a uniformly random j in [0, n) with j != i."""
    if n < 2:
        raise AdvFeaturesError("random_image start needs at least 2 training images; use start: noise")
    offset = torch.randint(1, n, index.shape, generator=generator,
                           device=draw_device(generator, index.device)).to(index.device)
    return (index + offset) % n


def start_points(
    x_all: torch.Tensor, index: torch.Tensor, cfg: InversionConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inversion start points for rows ``index``: (x0, start_index) with start_index -1 for noise."""
    if cfg.start == "random_image":
        other = random_other_index(index, len(x_all), generator)
        return x_all[other].clone(), other
    shape = (len(index), *x_all.shape[1:])
    noise = torch.randn(shape, generator=generator, dtype=x_all.dtype,
                        device=draw_device(generator, x_all.device)).to(x_all.device)
    return (0.5 + cfg.noise_std * noise).clamp(0, 1), torch.full_like(index, -1)


def choose_targets(y: torch.Tensor, num_classes: int, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """d_rand: a uniformly random class other than y; d_det: (y + 1) mod C."""
    if num_classes < 2:
        raise AdvFeaturesError(f"{kind} needs at least 2 classes, got {num_classes}")
    if kind == "d_det":
        return (y + 1) % num_classes
    if kind == "d_rand":
        offset = torch.randint(1, num_classes, y.shape, generator=generator,
                               device=draw_device(generator, y.device)).to(y.device)
        return (y + offset) % num_classes
    raise AdvFeaturesError(f"choose_targets: kind {kind!r} is not d_rand or d_det")


def targeted_examples(model, x: torch.Tensor, targets: torch.Tensor, cfg: TargetedConfig) -> torch.Tensor:
    """Targeted L2 PGD without random start (model frozen, eval mode inside ``pgd``)."""
    return pgd(
        model, x, targets, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, norm="l2",
        random_init=False, targeted=True,
    )


def synthesize_chunk(
    cfg: SynthesisConfig,
    model,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    index: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Synthesize rows ``index`` of the training set; returns the ``synthetic`` arrays (CPU)."""
    device = next(model.parameters()).device
    x = x_all[index].to(device)
    y = y_all[index].to(device)
    with frozen(model), torch.no_grad():
        target_rep = model.representation(x)
    passes = list(batches(len(x), rows_per_pass(device, len(x))))
    if cfg.kind in INVERSION_KINDS:
        x0, _ = start_points(x_all, index, cfg.inversion, generator)
        x0 = x0.to(device)
        parts = [
            invert_representation(
                model, target_rep[s], x0[s], steps=cfg.inversion.steps, step_size=cfg.inversion.step_size
            )
            for s in passes
        ]
        xs, dist = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        label = y
    else:
        label = choose_targets(y, num_classes, cfg.kind, generator)
        xs = torch.cat([targeted_examples(model, x[s], label[s], cfg.targeted) for s in passes])
        with frozen(model), torch.no_grad():
            dist = relative_rep_distance(model, xs, target_rep)
    with frozen(model), torch.no_grad():
        pred = model(xs).argmax(1)
    out = {
        "x": xs.float(),
        "y": label.long(),
        "source_index": index.long(),
        "y_source": y.long(),
        "source_pred": pred.long(),
        "rep_distance": dist.float(),
    }
    return {k: v.detach().cpu() for k, v in out.items()}


# ----------------------------------------------------------------------------- the whole set


def _tensor_digest(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def fingerprint(cfg: SynthesisConfig, model, x_train: torch.Tensor, y_train: torch.Tensor) -> str:
    """Hash of the config, the model weights and the training data: what a chunk depends on."""
    h = hashlib.sha256(json.dumps(cfg.relevant(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        _tensor_digest(h, t)
    _tensor_digest(h, x_train)
    _tensor_digest(h, y_train)
    return h.hexdigest()[:16]


class _LogStream:
    """A file-like sink that sends tqdm's progress lines to the package log."""

    def write(self, s: str) -> None:
        s = s.strip("\r\n ")
        if s:
            log.info(s)

    def flush(self) -> None:
        pass


def _load_chunk(path: Path, fp: str) -> dict[str, torch.Tensor] | None:
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a half-written or foreign file is simply redone
        return None
    arrays = st.get("arrays") if isinstance(st, dict) else None  # a bare tensor or list: not a chunk
    if not isinstance(arrays, dict) or st.get("fingerprint") != fp or set(arrays) != set(ARRAYS):
        return None
    return arrays


def synthesize(
    cfg: SynthesisConfig,
    model,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    num_classes: int,
    *,
    state_dir: str | os.PathLike,
    progress: bool = True,
    stop_after_chunk: int | None = None,
) -> dict[str, torch.Tensor] | None:
    """Build synthetic set ``cfg.kind`` from the whole training split, chunk by chunk, resumably.

    Returns the concatenated arrays (``ARRAYS``), or None when ``stop_after_chunk`` (chunks done,
    as a kill would leave them; used by the resume test) ends the run early.
    """
    from tqdm import tqdm

    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(cfg, model, x_train, y_train)
    n = len(x_train)
    starts = list(range(0, n, cfg.batch_size))
    chunks: list[dict[str, torch.Tensor]] = []
    reused = 0
    bar = tqdm(
        total=len(starts), desc=f"synthesize {cfg.kind}", unit="chunk",
        file=_LogStream(), disable=not progress, mininterval=0, ascii=True,
    )
    for k, start in enumerate(starts):
        path = state_dir / f"chunk_{k:05d}.pt"
        arrays = _load_chunk(path, fp) if path.exists() else None
        if arrays is None:
            index = torch.arange(start, min(n, start + cfg.batch_size))
            g = make_generator(derive_seed(cfg.seed, "synthesis", cfg.kind, k))
            arrays = synthesize_chunk(cfg, model, x_train, y_train, index, num_classes, g)
            with atomic_write(path) as tmp:
                torch.save({"fingerprint": fp, "arrays": arrays}, tmp)
        else:
            reused += 1
        chunks.append(arrays)
        bar.set_postfix(
            refresh=False,
            rep_dist=f"{float(arrays['rep_distance'].mean()):.3f}",
            hit=f"{float((arrays['source_pred'] == arrays['y']).float().mean()):.3f}",
        )
        bar.update(1)
        if stop_after_chunk is not None and k + 1 >= stop_after_chunk:
            bar.close()
            return None
    bar.close()
    if reused:
        log.info("reused %d of %d finished chunks from %s", reused, len(starts), state_dir)
    return {name: torch.cat([c[name] for c in chunks]) for name in ARRAYS}


def clear_state(state_dir: str | os.PathLike) -> None:
    """Delete the finished chunks once the output file is written."""
    for p in Path(state_dir).glob("chunk_*.pt"):
        p.unlink()


# ----------------------------------------------------------------------------- the set as training data


def synthetic_dataset(base: Dataset, x: torch.Tensor, y: torch.Tensor, name: str) -> Dataset:
    """A Dataset whose train split is a synthetic set and whose test split is the ORIGINAL test set.

    Normalisation statistics stay those of the original training split.
    """
    if x.shape[1:] != base.x_train.shape[1:]:
        raise AdvFeaturesError(
            f"synthetic set {name}: image shape {tuple(x.shape[1:])} differs from the dataset's "
            f"{tuple(base.x_train.shape[1:])}; delete it and rerun synthesize"
        )
    return Dataset(
        name=base.name, x_train=x.float(), y_train=y.long(), x_test=base.x_test, y_test=base.y_test,
        classes=base.classes, mean=base.mean, std=base.std,
    )
