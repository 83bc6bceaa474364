"""Carlini-Wagner L2 attack and the change of variables it shares with NRF.

The C&W margin is ``Z_y - max_{i != y} Z_i``: the true class is masked with ``-inf`` before
the max.  The reference code (and torchattacks 3.5.1) computes ``max((1 - onehot) * Z)``,
which returns 0 instead of the largest other logit whenever all other logits are negative;
we do not copy that bug (see ``cw_margin`` and its test).

Change of variables (Carlini & Wagner 2017): ``x' = lo + (hi - lo) * (tanh(w) + 1) / 2``.
Unbounded (the reference): ``lo = 0, hi = 1``, i.e. ``x' = (tanh(w) + 1) / 2``.  Bounded to an
Linf ball of radius ``eps``: ``lo = max(0, x - eps)``, ``hi = min(1, x + eps)``, so every iterate
lies in the ball and in [0, 1] without a clipping step that would zero the gradient.  ``w`` starts
at ``x' = x``.  Pixels at a bound of their box (exactly 0 or 1 when unbounded):

- ``start="frozen"`` (default; Kim et al.'s official code and torchattacks 3.5.1): ``atanh(+-1)
  = +-inf``, where tanh has zero gradient, so those pixels never move (on MNIST, about 80% of the
  pixels are exactly 0);
- ``start="clamped"`` (Carlini's own code): atanh's argument is clamped to +-(1 - 1e-6), so they
  start at a finite ``w`` and can move.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from advfeatures.attacks.pgd import check_budget
from advfeatures.optim import Adam
from advfeatures.utils import AdvFeaturesError, frozen

_ATANH_CLAMP = 1.0 - 1e-6
#: how ``w`` starts for pixels at a bound of their box (see the module docstring)
STARTS = ("frozen", "clamped")


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example ``Z_y - max_{i != y} Z_i`` (positive while the model is still right)."""
    real = logits.gather(1, y.view(-1, 1)).squeeze(1)
    onehot = F.one_hot(y, logits.shape[1]).bool()
    other = logits.masked_fill(onehot, float("-inf")).amax(1)
    return real - other


def box(x: torch.Tensor, eps: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds [lo, hi] of the feasible set: [0, 1], or its intersection with the Linf ball."""
    if eps is None:
        return torch.zeros_like(x), torch.ones_like(x)
    return (x - eps).clamp_min(0.0), (x + eps).clamp_max(1.0)


def to_tanh_space(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, start: str = "frozen") -> torch.Tensor:
    """``w`` with ``from_tanh_space(w, lo, hi) = x``; pixels at a bound: +-inf (``frozen``) or
    +-atanh(1 - 1e-6) (``clamped``)."""
    if start not in STARTS:
        raise AdvFeaturesError(f"C&W start {start!r} unknown; use one of {list(STARTS)} (attacks.suite.<name>.start)")
    u = (x - lo) / (hi - lo).clamp_min(1e-12) * 2 - 1
    bound = 1.0 if start == "frozen" else _ATANH_CLAMP
    return torch.atanh(u.clamp(-bound, bound))


def from_tanh_space(w: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return lo + (hi - lo) * (torch.tanh(w) + 1) / 2


def sq_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).pow(2).sum(1)


class CostRiseStop:
    """The early-stopping rule CW and NRF share (Kim, Lee, Ro's official code, model/IFP.py).

    At every ``steps // checks`` step (step 0 included) compare the total cost with the value at
    the previous check and stop when it rose.  ``checks=3`` is the official rule (default);
    ``checks=10`` is torchattacks' / Carlini's ``abort_early``; ``checks=0`` never stops early.
    """

    def __init__(self, steps: int, checks: int = 3):
        self.every = max(steps // checks, 1) if checks > 0 else 0
        self.prev = float("inf")

    def __call__(self, step: int, cost: torch.Tensor) -> bool:
        if not self.every or step % self.every:
            return False
        value = float(cost.detach())
        if value > self.prev:
            return True
        self.prev = value
        return False


#: ``extra(z, logits) -> scalar`` added to the C&W cost, computed from Z = model.features(x')
FeatureTerm = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``trace(step, x', cost)``, called after every Adam step (tests compare iterates)
Trace = Callable[[int, torch.Tensor, torch.Tensor], None]


def minimise_cw_cost(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cs: torch.Tensor,
    best: torch.Tensor,
    best_l2: torch.Tensor,
    *,
    lo: torch.Tensor,
    hi: torch.Tensor,
    kappa: float,
    lr: float,
    steps: int,
    stop_checks: int,
    extra: FeatureTerm | None = None,
    trace: Trace | None = None,
    start: str = "frozen",
) -> torch.Tensor:
    """One C&W optimisation round (model frozen by the caller); updates ``best``/``best_l2`` in place.

    Adam on ``w`` minimises ``sum_i ||x'_i - x_i||^2 + c_i * max(margin_i, -kappa)`` (+ ``extra``,
    which sees ``Z = model.features(x')`` and ``model.head(Z)``), stops by :class:`CostRiseStop`
    and keeps, per example, the successful iterate with the smallest L2 distance.  Returns the
    examples fooled at some step.
    """
    w = to_tanh_space(x, lo, hi, start).requires_grad_(True)
    opt = Adam([w], lr=lr)
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    stop = CostRiseStop(steps, stop_checks)
    for step in range(steps):
        xa = from_tanh_space(w, lo, hi)
        if extra is None:
            logits = model(xa)
        else:
            z = model.features(xa)
            logits = model.head(z)
        l2 = sq_l2(xa, x)
        cost = (l2 + cs * cw_margin(logits, y).clamp_min(-kappa)).sum()
        if extra is not None:
            cost = cost + extra(z, logits)
        opt.zero_grad()
        cost.backward()
        opt.step()
        with torch.no_grad():
            ok = logits.argmax(1) != y
            better = ok & (l2 < best_l2)
            best_l2.copy_(torch.where(better, l2, best_l2))
            best[better] = xa[better].detach()
            found |= ok
        if trace is not None:
            trace(step, xa.detach(), cost.detach())
        if stop(step, cost):
            break
    return found


def cw_l2(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    c: float = 0.1,
    kappa: float = 0.0,
    lr: float = 0.1,
    steps: int = 200,
    eps: float | None = None,
    search_steps: int = 0,
    stop_checks: int = 3,
    start: str = "frozen",
    trace: Trace | None = None,
) -> torch.Tensor:
    """C&W-L2 (untargeted): Adam on ``w`` minimising ``||x' - x||_2^2 + c * max(margin, -kappa)``.

    Returns, per example, the successful iterate with the smallest L2 distance (``x`` itself
    where no iterate fooled the model).  ``eps`` bounds the attack to an Linf ball (None: the
    reference's unbounded attack).  ``search_steps > 0`` adds Carlini's binary search over ``c``
    per example (start ``c``; success halves towards the last failure, failure multiplies by 10
    until a success brackets it).  ``stop_checks``: early stopping of each round, shared with
    NRF (:class:`CostRiseStop`; 3 = the official Kim et al. rule, 0 = never).  ``start``: how
    saturated pixels start (``frozen``, the official code's; ``clamped``, Carlini's).
    """
    check_budget("cw", c=c, kappa=kappa, lr=lr, steps=steps, eps=eps, search_steps=search_steps)
    x = x.detach()
    best = x.clone()
    best_l2 = torch.full((x.shape[0],), float("inf"), device=x.device)
    if steps <= 0 or (eps is not None and eps <= 0):
        return best
    lo, hi = box(x, eps)
    cs = torch.full((x.shape[0],), float(c), device=x.device)
    c_lo = torch.zeros_like(cs)
    c_hi = torch.full_like(cs, float("inf"))
    with frozen(model):
        for _ in range(max(1, search_steps)):
            found = minimise_cw_cost(model, x, y, cs, best, best_l2, lo=lo, hi=hi, kappa=kappa, lr=lr,
                                     steps=steps, stop_checks=stop_checks, trace=trace, start=start)
            if search_steps > 0:
                c_hi = torch.where(found, torch.minimum(c_hi, cs), c_hi)
                c_lo = torch.where(found, c_lo, torch.maximum(c_lo, cs))
                cs = torch.where(torch.isinf(c_hi), cs * 10, (c_lo + c_hi) / 2)
    return best.detach()
