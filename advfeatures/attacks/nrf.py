"""The non-robust feature attack (NRF, Kim, Lee, Ro 2021, Eq. 7-8) and its Table 4 ablations.

As the official code computes it (model/IFP.py, ``NRF``, ``NRF2``, ``RF``, ``RF2``): Adam
(lr 0.1, 200 steps) on the C&W variable ``w`` (``x' = (tanh(w) + 1) / 2``, see
:mod:`advfeatures.attacks.cw`) minimises, over the whole batch,

    sum_i ||x'_i - x_i||_2^2 + c * sum_i f_i  -/+  ||Z - (Z.detach() + m * g.detach())||_2

with ``Z = model.features(x')`` (the split layer, before its final ReLU), ``f = max(Z_y -
max_{i != y} Z_i, -kappa)`` the C&W margin of ``model.head(Z)`` (L_base of Eq. 7), ``g = df/dZ``
taken with the graph cut (no second-order path), ``m`` a channel mask computed once on the clean
input by the information bottleneck, and the last norm over the whole batch (``torch.dist``).
Its gradient w.r.t. Z is ``-/+ m * g / ||m * g||``: a unit-length push of Z along the masked
margin gradient, downhill on the margin for ``-`` (see :func:`nr_term`).

- NRF proper (``maximize=True``, ``m = mask_nonrobust``): ``- dist``; ``NRF2``
  (``maximize=False``): ``+ dist``.  ``RF`` / ``RF2``: the same with ``m = mask_robust``.
- Deliberate deviation from the official code: the margin takes the largest *other* logit
  (``max_{i != y}``, as :func:`cw.cw_margin`); the official ``max((1 - onehot) * Z)`` returns 0
  instead whenever all other logits are negative.
- Early stopping: :class:`cw.CostRiseStop`, shared with CW (official rule: every ``steps // 3``
  steps, stop when the cost rose since the last check).  With an all-zero mask NRF is CW,
  iterate for iterate.
- ``eps=None``: unbounded, as the reference code (only [0, 1]); ``eps``: bounded to the same Linf
  ball as the other attacks by the box change of variables of :func:`cw.box`.
- ``start``: pixels at a bound of their box stay there (``frozen``, the official code's
  ``atanh(+-1) = +-inf``) or start just inside it (``clamped``); see :mod:`advfeatures.attacks.cw`.
- The returned example is, per sample, the successful iterate with the smallest L2 distance;
  ``x`` itself where no iterate fooled the model.
- Because the distance is one norm over the batch, the push per example depends on the batch
  (``attacks.batch_size``; the reference test batch is 100).
"""

from __future__ import annotations

import torch

from advfeatures.attacks.cw import Trace, box, cw_margin, minimise_cw_cost
from advfeatures.attacks.pgd import check_budget
from advfeatures.utils import AdvFeaturesError, frozen


def _channel_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(device=like.device, dtype=like.dtype).view(mask.shape[0], mask.shape[1], *([1] * (like.dim() - 2)))


def nr_term(
    z: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *, maximize: bool = True,
    kappa: float = 0.0,
) -> torch.Tensor:
    """``-/+ ||Z - (Z.detach() + m * g.detach())||_2`` (over the batch), g = d(sum f)/dZ, graph cut.

    ``z``: the split-layer output (part of the graph), ``logits = model.head(z)``, ``mask`` [N, Cz].
    ``maximize=True`` gives the NRF sign (minus).
    """
    f = cw_margin(logits, y).clamp_min(-kappa).sum()
    (g,) = torch.autograd.grad(f, z, retain_graph=True)
    dist = torch.dist(z, z.detach() + _channel_mask(mask, g) * g.detach())
    return -dist if maximize else dist


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
    stop_checks: int = 3,
    start: str = "frozen",
    trace: Trace | None = None,
) -> torch.Tensor:
    """NRF (``maximize=True`` with the non-robust mask) or an ablation; see the module docstring."""
    check_budget("nrf", c=c, kappa=kappa, lr=lr, steps=steps, eps=eps)
    x = x.detach()
    if mask.dim() != 2 or mask.shape[0] != x.shape[0]:
        raise AdvFeaturesError(
            f"NRF mask has shape {tuple(mask.shape)}; expected [N={x.shape[0]}, channels of features(x)]"
        )
    best = x.clone()
    best_l2 = torch.full((x.shape[0],), float("inf"), device=x.device)
    if steps <= 0 or (eps is not None and eps <= 0):
        return best
    lo, hi = box(x, eps)
    mask = mask.to(x.device)
    cs = torch.full((x.shape[0],), float(c), device=x.device)

    def extra(z, logits):
        return nr_term(z, logits, y, mask, maximize=maximize, kappa=kappa)

    with frozen(model):
        minimise_cw_cost(model, x, y, cs, best, best_l2, lo=lo, hi=hi, kappa=kappa, lr=lr, steps=steps,
                         stop_checks=stop_checks, extra=extra, trace=trace, start=start)
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
