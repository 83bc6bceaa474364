"""Information-bottleneck distillation of robust and non-robust features (Kim, Lee, Ro 2021).

At the model's split point ``Z = model.features(x)`` (last conv block before its final ReLU)
one noise scale per sample and channel, ``sigma = softplus(lambda)`` with ``lambda = 0`` at the
start, is learnt with Adam (lr 0.1, 200 iterations in the paper's code) on

    CE(model.head(Z + sigma * eps), y) + beta * mean_{B,C} KL[N(Z, sigma_z^2) || N(Z, sigma^2)]

where ``eps ~ N(0, 1)`` has shape [B, C, 1, 1] (one draw per channel, broadcast over space),
``sigma_z^2`` is the per-sample, per-channel spatial variance of Z and the KL of two Gaussians
with the same mean has the closed form (paper Eq. 4 and the text below it)

    KL[N(m, a) || N(m, b)] = 0.5 * (a / b + ln(b / a) - 1)      (a, b variances).

A channel is robust when ``sigma^2 > T`` with ``T = max sigma_z^2`` over the IB batch (the
reference code; ``threshold="sample"`` takes the per-sample maximum instead;
``threshold="channel"``, not in the paper, compares each channel with its own sigma_z^2 - on
LeNet-5/MNIST the paper's batch maximum leaves almost no channel robust).  Then
``Z_r = mask * Z``, ``Z_nr = (1 - mask) * Z`` and ``Z = Z_r + Z_nr`` exactly.

Batches.  As in the reference code the CE term is a mean over the IB batch and the KL term a
mean over (batch, channel), and ``T`` is taken over the batch, so ``batch_size`` changes the
result; it is a config value (the reference code ran test batches of 100).  ``lambda`` is per
sample and Adam is element-wise, so the batches are independent: they are optimised side by
side in one vectorised run (``chunk_size`` rows at a time) with each batch keeping its own means,
which gives the updates of separate per-batch runs at a fraction of the cost.

The model is frozen (eval mode, no parameter gradients) throughout; its weights never change.
Every noise draw comes from the explicit ``generator``: same seed, same masks (CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from advfeatures import registry
from advfeatures.optim import Adam
from advfeatures.utils import AdvFeaturesError, frozen, make_generator

THRESHOLDS = registry.THRESHOLDS  # declared once in advfeatures.registry
#: floor for variances inside the KL (as the reference code's delta): a channel whose
#: activation is constant over space (sigma_z^2 = 0) keeps a finite loss, and its gradient
#: (which does not depend on sigma_z^2 once sigma_z^2 / sigma^2 -> 0) is unchanged.
VAR_FLOOR = 1e-10


@dataclass
class DistillResult:
    """What :func:`distill` learnt for N samples and C channels of Z.

    ``sigma`` is the learnt noise *scale* softplus(lambda) (a standard deviation);
    ``sigma_z`` is the spatial *variance* sigma_z^2 of Z; the robust test compares
    ``sigma ** 2`` with ``threshold`` (a variance).
    """

    sigma: torch.Tensor  # [N, C] float32, learnt noise scale
    sigma_z: torch.Tensor  # [N, C] float32, spatial variance of Z per sample and channel
    mask_robust: torch.Tensor  # [N, C] bool, sigma^2 > threshold
    threshold: torch.Tensor  # [N] float32, the T each sample was compared with ([N, C] for "channel")
    labels: torch.Tensor  # [N] int64, the labels the IB optimised CE for
    batch: torch.Tensor  # [N] int64, IB batch of each row (the group T is taken over)
    final_ce: list[float] = field(default_factory=list)  # per IB batch, CE at the last iteration
    final_kl: list[float] = field(default_factory=list)  # per IB batch, mean KL at the last iteration
    beta: float = 0.3
    mode: str = "batch"

    @property
    def mask_nonrobust(self) -> torch.Tensor:
        return ~self.mask_robust

    @property
    def n_robust(self) -> torch.Tensor:
        """Robust channels per sample [N] (int64)."""
        return self.mask_robust.sum(1)


def kl_gaussian(var_p: torch.Tensor, var_q: torch.Tensor, floor: float = VAR_FLOOR) -> torch.Tensor:
    """Element-wise KL[N(m, var_p) || N(m, var_q)] = 0.5 (var_p/var_q + ln(var_q/var_p) - 1).

    Both variances are floored at ``floor`` so that a zero-variance channel gives a finite value.
    """
    p = var_p.clamp_min(floor)
    q = var_q.clamp_min(floor)
    return 0.5 * (p / q + torch.log(q) - torch.log(p) - 1.0)


def spatial_variance(z: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel variance of ``z`` [N, C, h, w] over space (unbiased, as torch.var)."""
    if z.dim() != 4:
        raise AdvFeaturesError(f"bottleneck: Z must be [N, C, h, w], got shape {tuple(z.shape)}")
    if z.shape[2] * z.shape[3] < 2:
        raise AdvFeaturesError(
            f"bottleneck: Z has spatial size {z.shape[2]}x{z.shape[3]}; sigma_z^2 needs at least 2 "
            "positions - choose an architecture/input size with a larger split layer"
        )
    return z.var(dim=(2, 3))


def robust_threshold(var_z: torch.Tensor, batch: torch.Tensor, mode: str) -> torch.Tensor:
    """T per row: max sigma_z^2 over the row's IB batch (``batch``) or over its own channels
    (``sample``); ``channel``: T per row and channel = its own sigma_z^2 ([N, C])."""
    if mode == "channel":
        return var_z
    if mode == "sample":
        return var_z.max(dim=1).values
    if mode != "batch":
        raise AdvFeaturesError(f"bottleneck.threshold must be one of {THRESHOLDS}, got {mode!r}")
    per_row = var_z.max(dim=1).values
    nb = int(batch.max()) + 1 if len(batch) else 0
    tmax = torch.full((nb,), -math.inf, dtype=var_z.dtype, device=var_z.device)
    tmax = tmax.scatter_reduce(0, batch, per_row, reduce="amax")
    return tmax[batch]


def split_features(z: torch.Tensor, mask_robust: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z_r, Z_nr) for ``z`` [N, C, ...] and a per-channel ``mask_robust`` [N, C]; Z_r + Z_nr == Z exactly."""
    if mask_robust.shape != z.shape[:2]:
        raise AdvFeaturesError(
            f"bottleneck: mask shape {tuple(mask_robust.shape)} does not match Z {tuple(z.shape[:2])}"
        )
    m = mask_robust.to(device=z.device, dtype=torch.bool).view(*z.shape[:2], *([1] * (z.dim() - 2)))
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return torch.where(m, z, zero), torch.where(m, zero, z)


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Z = model.features(x) in eval mode, batched, on the model's device."""
    device = next(model.parameters()).device
    with frozen(model):
        return torch.cat([model.features(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def head_predict(model: torch.nn.Module, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """argmax of model.head(z) (eval mode), as int64 on the CPU."""
    with frozen(model):
        out = [model.head(z[i : i + batch_size]).argmax(1).cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def predict_split(
    model: torch.nn.Module, z: torch.Tensor, mask_robust: torch.Tensor, batch_size: int = 500
) -> dict[str, torch.Tensor]:
    """Predictions of Z, Z_r and Z_nr: ``{"full", "robust", "nonrobust"}`` (int64 [N])."""
    z_r, z_nr = split_features(z, mask_robust)
    return {
        "full": head_predict(model, z, batch_size),
        "robust": head_predict(model, z_r, batch_size),
        "nonrobust": head_predict(model, z_nr, batch_size),
    }


def random_mask_like(mask_robust: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random per-channel mask with the same number of robust channels in every row (seeded)."""
    n, c = mask_robust.shape
    k = mask_robust.sum(1, keepdim=True)
    scores = torch.rand((n, c), generator=generator, device=generator.device).to(mask_robust.device)
    rank = scores.argsort(dim=1).argsort(dim=1)  # a uniform random permutation's ranks per row
    return rank < k


def distill(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    beta: float = 0.3,
    iterations: int = 200,
    lr: float = 0.1,
    threshold: str = "batch",
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int | None = 4096,
    z: torch.Tensor | None = None,
) -> DistillResult:
    """Learn sigma for every row of ``x`` (labels ``y``) and split Z's channels into robust / non-robust.

    ``batch_size``: rows per IB batch (the CE/KL means and the batch threshold are per batch);
    None = all rows in one batch.  ``generator``: source of the noise (None = seed 0).
    ``chunk_size``: rows optimised side by side (whole batches).  The noise is drawn per chunk,
    so another chunk size gives another, equally valid, noise sequence: results match between
    chunk sizes only in distribution, not row for row.  ``z``: precomputed features(x).
    """
    if threshold not in THRESHOLDS:
        raise AdvFeaturesError(f"bottleneck.threshold must be one of {THRESHOLDS}, got {threshold!r}")
    if beta < 0 or iterations < 0 or lr <= 0:
        raise AdvFeaturesError(
            f"bottleneck: need beta >= 0, iterations >= 0, lr > 0; got {beta}, {iterations}, {lr}"
        )
    device = next(model.parameters()).device
    if z is None:
        z = features(model, x)
    z = z.detach().to(device)
    y = torch.as_tensor(y).long().to(device)
    n, c = z.shape[:2]
    if len(y) != n:
        raise AdvFeaturesError(f"bottleneck: {n} inputs but {len(y)} labels")
    bs = int(batch_size) if batch_size else max(n, 1)
    var_z = spatial_variance(z)
    batch = torch.arange(n, device=device) // bs
    g = generator if generator is not None else make_generator(0)
    chunk = max(bs, (int(chunk_size) // bs) * bs) if chunk_size else max(n, 1)

    sigma_out = torch.empty((n, c), dtype=torch.float32, device=device)
    final_ce: list[float] = []
    final_kl: list[float] = []
    with frozen(model), torch.enable_grad():
        for start in range(0, n, chunk):
            sl = slice(start, min(n, start + chunk))
            zc, yc, vc, bc = z[sl], y[sl], var_z[sl], batch[sl]
            m = len(yc)
            # each row's weight in its own batch mean (the last batch may be short)
            counts = torch.bincount(bc - bc.min()).to(z.dtype)
            w = (1.0 / counts)[bc - bc.min()]
            lam = torch.zeros((m, c, 1, 1), device=device, requires_grad=True)
            opt = Adam([lam], lr=lr)
            ce_rows = kl_rows = None
            for it in range(iterations):
                sigma = F.softplus(lam)
                eps = torch.randn((m, c, 1, 1), generator=g, device=g.device).to(device)
                logits = model.head(zc + sigma * eps)
                ce_rows = F.cross_entropy(logits, yc, reduction="none")
                kl_rows = kl_gaussian(vc, sigma.view(m, c) ** 2).mean(1)
                loss = (w * (ce_rows + beta * kl_rows)).sum()
                if not torch.isfinite(loss):
                    raise AdvFeaturesError(
                        f"bottleneck: non-finite IB loss at iteration {it + 1} (beta {beta}, lr {lr}); "
                        "lower bottleneck.lr or check the model checkpoint"
                    )
                opt.zero_grad()
                loss.backward()
                opt.step()
            sigma_out[sl] = F.softplus(lam.detach()).view(m, c)
            if ce_rows is not None:
                for b in bc.unique():
                    sel = bc == b
                    final_ce.append(float(ce_rows.detach()[sel].mean()))
                    final_kl.append(float(kl_rows.detach()[sel].mean()))
    t = robust_threshold(var_z, batch, threshold)
    mask = sigma_out**2 > (t if t.dim() == 2 else t.view(-1, 1))
    return DistillResult(
        sigma=sigma_out.cpu(), sigma_z=var_z.float().cpu(), mask_robust=mask.cpu(),
        threshold=t.float().cpu(), labels=y.cpu(), batch=batch.cpu(),
        final_ce=final_ce, final_kl=final_kl, beta=float(beta), mode=threshold,
    )


# ----------------------------------------------------------------------------- settings


@dataclass
class IBSettings:
    """IB settings: config ``bottleneck`` (distill jobs, beta from the wildcard) and ``attacks.nrf``
    (the NRF attack's masks); :meth:`kwargs` are those of :func:`distill`."""

    beta: float = 0.3
    iterations: int = 200
    lr: float = 0.1
    batch_size: int | None = 100
    threshold: str = "batch"

    def kwargs(self) -> dict:
        return {
            "beta": self.beta, "iterations": self.iterations, "lr": self.lr,
            "batch_size": self.batch_size, "threshold": self.threshold,
        }
