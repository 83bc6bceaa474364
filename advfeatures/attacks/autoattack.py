"""APGD-CE, AutoAttack and FAB through ``pyautoattack`` (the packaged reference AutoAttack).

pyautoattack seeds torch's *global* generator with its ``seed`` argument inside every attack;
we pass a seed derived from the config seed and run it inside ``torch.random.fork_rng`` so the
caller's global RNG state is left untouched and the same seed gives the same examples.

AutoAttack "standard" = APGD-CE, APGD-T (9 target classes), FAB-T (9 targets), Square (5000
queries), Linf, each component run on the examples still robust after the previous ones, so an
example counts as robust only if every component failed on it (the per-example worst case,
never an average).  ``n_iter``, ``n_target_classes`` and ``n_queries`` can be lowered for a cheap
CPU run (passed to the pyautoattack constructors, see :func:`build_autoattack`, so APGD's step-size
schedule follows ``n_iter``); the tables then say "reduced budget".  ``components`` picks a subset (version custom).
"""

from __future__ import annotations

import contextlib
import logging

import torch

from advfeatures import registry
from advfeatures.attacks.pgd import check_budget
from advfeatures.utils import frozen

AA_COMPONENTS = registry.AA_COMPONENTS  # declared once in advfeatures.registry
#: AutoAttack "standard" budgets (Croce & Hein 2020)
AA_STANDARD = registry.AA_STANDARD


@contextlib.contextmanager
def _quiet_seeded(device: torch.device):
    """Fork the global RNG (pyautoattack reseeds it) and silence its logger."""
    aa_log = logging.getLogger("auto-attack")
    level = aa_log.level
    aa_log.setLevel(logging.WARNING)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        aa_log.setLevel(level)


def _norm_name(norm: str) -> str:
    return {"linf": "Linf", "l2": "L2"}[norm]


def apgd_ce(model, x, y, *, eps: float, n_iter: int = 100, n_restarts: int = 1, norm: str = "linf",
            seed: int = 0) -> torch.Tensor:
    """APGD on the cross-entropy loss (Croce & Hein 2020); the "AA" column of Kim et al.'s code."""
    from pyautoattack.autopgd_base import APGDAttack

    check_budget("apgd_ce", eps=eps, n_iter=n_iter, n_restarts=n_restarts)
    x = x.detach()
    if eps == 0:
        return x.clone()
    with frozen(model), _quiet_seeded(x.device):
        atk = APGDAttack(model, n_iter=n_iter, norm=_norm_name(norm), n_restarts=n_restarts, eps=eps,
                         seed=seed, loss="ce", device=x.device)
        return atk.perturb(x, y).detach()


def fab(model, x, y, *, eps: float, n_iter: int = 100, n_restarts: int = 1, targeted: bool = False,
        n_target_classes: int = 9, norm: str = "linf", seed: int = 0) -> torch.Tensor:
    """FAB (Croce & Hein 2020), minimal-norm; successes beyond ``eps`` are discarded (returns x there).

    Targeted, it tries at most the ``num_classes - 1`` other classes (at least one), as
    :func:`autoattack` does: pyautoattack indexes past the logits when ``n_target_classes`` is not
    below the number of classes (the default 9 on a model of fewer than 10) and fails with an
    IndexError as soon as a row survives the classes there are.
    """
    from pyautoattack.fab_pt import FABAttack_PT

    check_budget("fab", eps=eps, n_iter=n_iter, n_restarts=n_restarts, n_target_classes=n_target_classes)
    x = x.detach()
    if eps == 0:
        return x.clone()
    with frozen(model), _quiet_seeded(x.device):
        if targeted:
            with torch.no_grad():
                num_classes = model(x[:1]).shape[1]
            n_target_classes = max(1, min(int(n_target_classes), num_classes - 1))
        atk = FABAttack_PT(model, n_restarts=n_restarts, n_iter=n_iter, eps=eps, seed=seed,
                           norm=_norm_name(norm), verbose=False, device=x.device, targeted=targeted,
                           n_target_classes=n_target_classes)
        return atk.perturb(x, y).detach()


def build_autoattack(model, *, eps: float, norm: str = "linf", seed: int = 0, device=None,
                     components: tuple[str, ...] | list[str] = AA_COMPONENTS, n_iter: int = 100,
                     n_target_classes: int = 9, n_queries: int = 5000):
    """A pyautoattack ``AutoAttack`` with the standard settings and the budget in its constructors.

    APGD computes its step-size checkpoints (``n_iter_2``, ``n_iter_min``, ``size_decr``) in its
    constructor, so a reduced ``n_iter`` set on the built objects would keep the 100-step
    schedule (the step size would never halve); the components are therefore rebuilt here
    with the standard version's other settings (pyautoattack's ``AutoAttack.__init__`` and
    ``_set_version('standard')``).
    """
    from pyautoattack import AutoAttack
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack

    nn = _norm_name(norm)
    aa = AutoAttack(model, norm=nn, eps=eps, seed=seed, version="standard", device=device)
    aa.verbose = False
    aa.attacks_to_run = list(components)
    aa.apgd = APGDAttack(model, n_restarts=1, n_iter=n_iter, verbose=False, eps=eps, norm=nn, eot_iter=1,
                         rho=0.75, seed=seed, device=device, logger=aa.logger)
    aa.apgd_targeted = APGDAttack_targeted(model, n_restarts=1, n_iter=n_iter, verbose=False, eps=eps, norm=nn,
                                           eot_iter=1, rho=0.75, seed=seed, device=device, logger=aa.logger,
                                           n_target_classes=n_target_classes)
    aa.fab = FABAttack_PT(model, n_restarts=1, n_iter=n_iter, eps=eps, seed=seed, norm=nn, verbose=False,
                          device=device, targeted=True, n_target_classes=n_target_classes)
    aa.square = SquareAttack(model, p_init=0.8, n_queries=n_queries, eps=eps, norm=nn, n_restarts=1, seed=seed,
                             verbose=False, device=device, resc_schedule=False)
    return aa


def autoattack(model, x, y, *, eps: float, norm: str = "linf", seed: int = 0,
               components: tuple[str, ...] | list[str] = AA_COMPONENTS, n_iter: int = 100,
               n_target_classes: int = 9, n_queries: int = 5000) -> torch.Tensor:
    """AutoAttack (standard version by default) on one batch; see the module docstring."""
    check_budget("autoattack", eps=eps, n_iter=n_iter, n_target_classes=n_target_classes, n_queries=n_queries)
    x = x.detach()
    if eps == 0:
        return x.clone()
    with frozen(model), _quiet_seeded(x.device):
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        n_t = max(1, min(int(n_target_classes), num_classes - 1))
        aa = build_autoattack(model, eps=eps, norm=norm, seed=seed, device=x.device, components=components,
                              n_iter=n_iter, n_target_classes=n_t, n_queries=n_queries)
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=x.shape[0])
    return x_adv.detach()
