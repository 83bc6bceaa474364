"""Gradient attacks in [0, 1] pixel space: FGSM, BIM and PGD under Linf or L2.

The model is put in eval mode (and its parameters frozen) for the attack, then restored.
Every random draw comes from the ``generator`` passed in, so the same seed gives the same
adversarial examples.  ``early_stop=True`` drops examples from the step loop once they are
misclassified (untargeted) or hit the target (targeted): a robust-accuracy evaluation gives the
same answer, and each later step costs only the examples still standing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from advfeatures.utils import AdvFeaturesError, draw_device, frozen

_EPS = 1e-12


@dataclass
class PGDSettings:
    """One PGD attack as training, synthesis evaluation and MI estimation configure it."""

    norm: str = "linf"
    eps: float = 0.3
    alpha: float = 0.01
    steps: int = 10
    random_start: bool = True


def check_budget(attack: str, **values) -> None:
    """Stop an attack whose budget is NaN, infinite or negative (``None`` = not bounded).

    ``eps <= 0`` alone would let NaN through (every comparison with NaN is false): the attack
    then writes all-NaN images, and a negative eps returns the clean input labelled as attacked.
    """
    for name, value in values.items():
        if value is None:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise AdvFeaturesError(f"{attack}: {name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(v) or v < 0:
            raise AdvFeaturesError(f"{attack}: {name} must be a finite number >= 0, got {value!r}; "
                                   f"fix the attack's {name} in the config or job record")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(_EPS).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``delta`` onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        n = _flat_norm(delta)
        return delta * torch.clamp(eps / n, max=1.0)
    raise ValueError(f"unknown norm {norm!r}; use 'linf' or 'l2'")


def random_start(
    x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None
) -> torch.Tensor:
    """A uniform draw from the Linf ball, or from the L2 ball (uniform in volume)."""
    dev = draw_device(generator, x.device)
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
        return (2 * u - 1) * eps
    d = x[0].numel()
    g = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
    r = torch.rand(x.shape[0], generator=generator, device=dev, dtype=x.dtype).to(x.device) ** (1.0 / d)
    return g / _flat_norm(g) * (r * eps).view(-1, *([1] * (x.dim() - 1)))


def _step(grad: torch.Tensor, alpha: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return alpha * grad.sign()
    return alpha * grad / _flat_norm(grad)


def ce_loss_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy computed in float64.

    In float32 the softmax of a confident model rounds p_y to exactly 1, the gradient vanishes
    and PGD stalls (gradient masking by saturation: a standard MNIST LeNet kept 10% accuracy at
    Linf eps 0.3).  Float64 on the [B, K] logits costs nothing and keeps the gradient alive.
    """
    return F.cross_entropy(logits.double(), y, reduction="sum")


def _success(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == y if targeted else pred != y


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str = "linf",
    random_init: bool = True,
    targeted: bool = False,
    early_stop: bool = False,
    generator: torch.Generator | None = None,
    loss_fn=None,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) on the cross-entropy loss.

    Untargeted: ascend CE(model(x'), y).  Targeted (``y`` holds the targets): descend it.
    ``loss_fn(logits, y)`` replaces the summed cross-entropy (e.g. TRADES' KL); ``start`` replaces
    the random start with a given point.  Returns x' with ||x' - x|| <= eps in ``norm`` and x' in [0, 1].  With ``eps == 0`` or
    ``steps == 0`` returns ``x`` unchanged.
    """
    check_budget("pgd", eps=eps, alpha=alpha, steps=steps)
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    loss_fn = loss_fn or ce_loss_sum
    sign = -1.0 if targeted else 1.0
    with frozen(model):
        if start is not None:
            x_adv = (x + project(start.detach() - x, eps, norm)).clamp(0, 1)
        else:
            delta = random_start(x, eps, norm, generator) if random_init else torch.zeros_like(x)
            x_adv = (x + delta).clamp(0, 1)
        if not early_stop:
            # plain PGD: whole batch every step, no gather/scatter of the active rows
            for _ in range(steps):
                x_adv.requires_grad_(True)
                (grad,) = torch.autograd.grad(loss_fn(model(x_adv), y), x_adv)
                with torch.no_grad():
                    x_adv = x_adv.detach() + sign * _step(grad, alpha, norm)
                    x_adv = (x + project(x_adv - x, eps, norm)).clamp_(0, 1)
            return x_adv.detach()
        # early stopping: work on compacted copies of the rows still standing; a row that is
        # already successful at its current iterate is written back once and leaves the loop
        active = torch.arange(x.shape[0], device=x.device)
        xa, x0, ya = x_adv.clone(), x, y
        for _ in range(steps):
            xa.requires_grad_(True)
            logits = model(xa)
            (grad,) = torch.autograd.grad(loss_fn(logits, ya), xa)
            with torch.no_grad():
                done = _success(logits.detach(), ya, targeted)
                xa = xa.detach()
                if done.any():
                    x_adv[active[done]] = xa[done]
                    keep = (~done).nonzero().squeeze(1)  # one nonzero, then cheap gathers
                    active, xa, x0, ya, grad = (t.index_select(0, keep) for t in (active, xa, x0, ya, grad))
                    if active.numel() == 0:
                        break
                xa = xa + sign * _step(grad, alpha, norm)
                xa = (x0 + project(xa - x0, eps, norm)).clamp_(0, 1)
        if active.numel():
            x_adv[active] = xa.detach()
    return x_adv.detach()


def fgsm(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, targeted: bool = False
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one Linf step of size eps."""
    return pgd(model, x, y, eps=eps, alpha=eps, steps=1, norm="linf", random_init=False, targeted=targeted)


def bim(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    targeted: bool = False,
    early_stop: bool = False,
) -> torch.Tensor:
    """Basic iterative method (Kurakin et al. 2017): PGD-Linf without random start."""
    return pgd(
        model, x, y, eps=eps, alpha=alpha, steps=steps, norm="linf", random_init=False, targeted=targeted,
        early_stop=early_stop,
    )
