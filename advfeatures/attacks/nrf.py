"""The non-robust feature attack (NRF, Kim, Lee, Ro 2021, Eq. 7-8) and its Table 4 ablations.

Per example, Adam (lr 0.1, 200 steps) on the C&W variable ``w`` (``x' = (tanh(w) + 1) / 2``,
see :mod:`advfeatures.attacks.cw`) minimises

    ||x' - x||_2^2 + c * max(Z_y - max_{i != y} Z_i, -kappa) - s * ||m * dL/dZ||_2

with ``Z = model.features(x')`` (the split layer, before its final ReLU), ``L`` the per-example
cross-entropy of ``model.head(Z)`` (as in the reference code; ``grad_loss="margin"`` uses the
C&W term of Eq. 7's L_base instead), ``m`` a channel mask computed once on the clean input by
the information bottleneck, ``s = +1`` to maximise the masked gradient norm and ``-1`` to
minimise it.  The gradient term needs a double backward (``create_graph=True``).

- NRF proper: ``m = mask_nonrobust``, maximise.  Ablations (Table 4): minimise it, or use
  ``m = mask_robust`` (maximise / minimise).
- ``eps=None``: unbounded, as the reference code (only [0, 1]); ``eps``: bounded to the same Linf
  ball as the other attacks by the box change of variables of :func:`cw.box`.
- The returned example is, per sample, the successful iterate with the smallest L2 distance;
  ``x`` itself where no iterate fooled the model.
- Per-example CE (summed, not averaged over the batch) keeps the gradient term independent of
  the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advfeatures.attacks.cw import box, cw_margin, from_tanh_space, sq_l2, to_tanh_space
from advfeatures.utils import AdvFeaturesError, frozen

GRAD_LOSSES = ("ce", "margin")


def masked_feature_grad_norm(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *,
    grad_loss: str = "ce", create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(||mask * dL/dZ||_2 per example, logits)`` at ``x``; ``mask`` is [N, Cz] over channels."""
    z = model.features(x)
    if not z.requires_grad:
        z.requires_grad_(True)
    logits = model.head(z)
    if grad_loss == "ce":
        loss = F.cross_entropy(logits, y, reduction="sum")
    elif grad_loss == "margin":
        loss = cw_margin(logits, y).sum()
    else:
        raise AdvFeaturesError(f"unknown NRF grad_loss {grad_loss!r}; use one of {GRAD_LOSSES}")
    (gz,) = torch.autograd.grad(loss, z, create_graph=create_graph)
    m = mask.to(gz.dtype).view(mask.shape[0], mask.shape[1], *([1] * (gz.dim() - 2)))
    return (m * gz).flatten(1).norm(dim=1), logits


def nrf(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    *,
    maximize: bool = True,
    c: float = 0.1,
    kappa: float = 0.0,
    lr: float = 0.1,
    steps: int = 200,
    eps: float | None = None,
    grad_loss: str = "ce",
) -> torch.Tensor:
    """NRF (``maximize=True`` with the non-robust mask) or an ablation; see the module docstring."""
    x = x.detach()
    if mask.dim() != 2 or mask.shape[0] != x.shape[0]:
        raise AdvFeaturesError(
            f"NRF mask has shape {tuple(mask.shape)}; expected [N={x.shape[0]}, channels of features(x)]"
        )
    best = x.clone()
    best_l2 = torch.full((x.shape[0],), float("inf"), device=x.device)
    if steps <= 0 or (eps is not None and eps <= 0):
        return best
    sign = -1.0 if maximize else 1.0
    lo, hi = box(x, eps)
    mask = mask.to(x.device)
    with frozen(model):
        w = to_tanh_space(x, lo, hi).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            xa = from_tanh_space(w, lo, hi)
            gnorm, logits = masked_feature_grad_norm(model, xa, y, mask, grad_loss=grad_loss, create_graph=True)
            l2 = sq_l2(xa, x)
            cost = (l2 + c * cw_margin(logits, y).clamp_min(-kappa) + sign * gnorm).sum()
            opt.zero_grad()
            cost.backward()
            opt.step()
            with torch.no_grad():
                better = (logits.argmax(1) != y) & (l2 < best_l2)
                best_l2 = torch.where(better, l2, best_l2)
                best[better] = xa[better].detach()
    return best.detach()


def bottleneck_masks(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, beta: float, iterations: int, lr: float,
    generator: torch.Generator | None, batch_size: int | None = None, threshold: str = "batch",
) -> torch.Tensor:
    """``mask_robust`` [N, Cz] (bool) from the IB distillation of :mod:`advfeatures.bottleneck` on clean x.

    ``batch_size``: rows per IB batch (the batch threshold is taken over it); None = all of ``x``.
    """
    try:
        from advfeatures.bottleneck import distill
    except ImportError as exc:
        raise AdvFeaturesError(
            f"NRF needs advfeatures.bottleneck.distill for its masks ({exc}); install the bottleneck module "
            "or drop the nrf attacks from attacks.suite"
        ) from None
    res = distill(model, x, y, beta=beta, iterations=iterations, lr=lr, threshold=threshold,
                  batch_size=batch_size, generator=generator)
    return res.mask_robust.bool()
