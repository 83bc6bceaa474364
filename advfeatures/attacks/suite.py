"""The attack registry: every attack selectable by name from ``attacks.suite`` in the config.

A suite entry is ``name -> {type: <one of ATTACK_TYPES>, ...params}``; :func:`make_attack` turns
it into an :class:`Attack` (type, resolved keyword arguments, a label saying which budget it
uses).  :func:`evaluate_attack` runs it batch by batch on given test rows and returns an
:class:`AttackResult` (the ``attack`` HDF5 layout of :mod:`advfeatures.h5io`);
:func:`robust_accuracy_vs_eps` sweeps the Linf budget.

Budgets: Linf attacks default to the shared ``attacks.eps``.  ``cw`` and ``nrf`` take
``bound: none`` (unbounded, as the reference code) or ``bound: linf`` (projected to the same
Linf eps by the box change of variables).  Seeds: one generator per job seeded from the config
seed and the attack name, drawn batch by batch (same seed and batch size, same examples);
pyautoattack gets a per-batch seed derived the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from advfeatures.attacks import autoattack as aa
from advfeatures.attacks.cw import cw_l2
from advfeatures.attacks.evaluate import attack_batches, predict
from advfeatures.attacks.nrf import GRAD_LOSSES, nrf
from advfeatures.attacks.pgd import bim, fgsm, pgd
from advfeatures.utils import AdvFeaturesError, derive_seed, eval_mode, make_generator

log = logging.getLogger("advfeatures")

#: type -> keys it accepts besides ``type`` (and the generic subset/models keys)
ATTACK_PARAMS: dict[str, tuple[str, ...]] = {
    "fgsm": ("eps",),
    "bim": ("eps", "steps", "alpha", "alpha_scale", "early_stop"),
    "pgd": ("eps", "steps", "alpha", "alpha_scale", "norm", "random_start", "early_stop"),
    "cw": ("c", "kappa", "lr", "steps", "bound", "eps", "search_steps", "abort_early"),
    "apgd_ce": ("eps", "n_iter", "n_restarts"),
    "autoattack": ("eps", "components", "n_iter", "n_target_classes", "n_queries"),
    "fab": ("eps", "n_iter", "n_restarts", "targeted", "n_target_classes"),
    "nrf": ("c", "kappa", "lr", "steps", "bound", "eps", "maximize", "mask", "grad_loss"),
}
ATTACK_TYPES = tuple(ATTACK_PARAMS)
GENERIC_KEYS = ("type", "subset", "models")
#: defaults per type (the reference settings of Kim et al. where they exist)
DEFAULTS: dict[str, dict[str, Any]] = {
    "fgsm": {},
    "bim": {"steps": 10, "alpha_scale": 1.25, "early_stop": False},
    "pgd": {"steps": 10, "alpha_scale": 2.3, "norm": "linf", "random_start": True, "early_stop": False},
    "cw": {"c": 0.1, "kappa": 0.0, "lr": 0.1, "steps": 200, "bound": "none", "search_steps": 0,
           "abort_early": True},
    "apgd_ce": {"n_iter": 100, "n_restarts": 1},
    "autoattack": {"components": list(aa.AA_COMPONENTS), **aa.AA_STANDARD},
    "fab": {"n_iter": 100, "n_restarts": 1, "targeted": False, "n_target_classes": 9},
    "nrf": {"c": 0.1, "kappa": 0.0, "lr": 0.1, "steps": 200, "bound": "none", "maximize": True,
            "mask": "nonrobust", "grad_loss": "ce"},
}


@dataclass
class Attack:
    name: str
    type: str
    kwargs: dict[str, Any]
    #: which perturbation budget it uses, for tables ("Linf 0.176", "unbounded", "L2 1.5")
    bound: str
    needs_mask: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model, x, y, *, generator: torch.Generator | None = None, seed: int = 0,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        k = self.kwargs
        t = self.type
        if t == "fgsm":
            return fgsm(model, x, y, **k)
        if t == "bim":
            return bim(model, x, y, **k)
        if t == "pgd":
            return pgd(model, x, y, generator=generator, **k)
        if t == "cw":
            return cw_l2(model, x, y, **k)
        if t == "apgd_ce":
            return aa.apgd_ce(model, x, y, seed=seed, **k)
        if t == "autoattack":
            return aa.autoattack(model, x, y, seed=seed, **k)
        if t == "fab":
            return aa.fab(model, x, y, seed=seed, **k)
        if t == "nrf":
            if mask is None:
                raise AdvFeaturesError(f"attack {self.name!r} (nrf) needs a channel mask; none was given")
            return nrf(model, x, y, mask, **k)
        raise AdvFeaturesError(f"unknown attack type {t!r}; choose one of {ATTACK_TYPES}")

    def with_eps(self, eps: float) -> Attack:
        """The same attack at another Linf budget (for the eps sweep)."""
        if "eps" not in self.kwargs and self.type not in ("cw", "nrf"):
            raise AdvFeaturesError(f"attack {self.name!r} has no eps to sweep")
        spec = dict(self.extra["spec"], eps=float(eps))
        if self.type in ("cw", "nrf"):
            spec["bound"] = "linf"
        return make_attack(self.name, spec, eps_default=float(eps))


def _alpha(p: dict, eps: float) -> float:
    if p.get("alpha") is not None:
        return float(p["alpha"])
    return float(p["alpha_scale"]) * eps / max(1, int(p["steps"]))


def make_attack(name: str, spec: Mapping[str, Any], *, eps_default: float) -> Attack:
    """Resolve a suite entry into an :class:`Attack`; unknown types or keys are one clear error."""
    spec = dict(spec or {})
    t = spec.get("type")
    if t not in ATTACK_PARAMS:
        raise AdvFeaturesError(
            f"config key attacks.suite.{name}.type is {t!r}; choose one of {list(ATTACK_TYPES)}"
        )
    unknown = set(spec) - set(ATTACK_PARAMS[t]) - set(GENERIC_KEYS)
    if unknown:
        raise AdvFeaturesError(
            f"config key attacks.suite.{name} has unknown option(s) {sorted(unknown)} for type {t}; "
            f"allowed: {sorted(ATTACK_PARAMS[t])}"
        )
    p = {**DEFAULTS[t], **{k: v for k, v in spec.items() if k not in GENERIC_KEYS}}
    eps = float(p.get("eps", eps_default) if p.get("eps") is not None else eps_default)
    extra = {"spec": spec}
    if t == "fgsm":
        return Attack(name, t, {"eps": eps}, f"Linf {eps:.4g}", extra=extra)
    if t in ("bim", "pgd"):
        k = {"eps": eps, "steps": int(p["steps"]), "alpha": _alpha(p, eps), "early_stop": bool(p["early_stop"])}
        norm = "linf"
        if t == "pgd":
            norm = p["norm"]
            if norm == "l2" and spec.get("eps") is None:
                raise AdvFeaturesError(f"config key attacks.suite.{name}.eps: an L2 PGD needs its own eps")
            k.update(norm=norm, random_init=bool(p["random_start"]))
        return Attack(name, t, k, f"{'Linf' if norm == 'linf' else 'L2'} {eps:.4g}", extra=extra)
    if t in ("cw", "nrf"):
        bounded = p["bound"] == "linf"
        k = {key: p[key] for key in ("c", "kappa", "lr", "steps")}
        k["eps"] = eps if bounded else None
        if t == "cw":
            k.update(search_steps=int(p["search_steps"]), abort_early=bool(p["abort_early"]))
            return Attack(name, t, k, f"Linf {eps:.4g}" if bounded else "unbounded", extra=extra)
        if p["mask"] not in ("nonrobust", "robust"):
            raise AdvFeaturesError(f"config key attacks.suite.{name}.mask must be nonrobust or robust")
        if p["grad_loss"] not in GRAD_LOSSES:
            raise AdvFeaturesError(f"config key attacks.suite.{name}.grad_loss must be one of {GRAD_LOSSES}")
        k.update(maximize=bool(p["maximize"]), grad_loss=p["grad_loss"])
        extra["mask"] = p["mask"]
        return Attack(name, t, k, f"Linf {eps:.4g}" if bounded else "unbounded", needs_mask=True, extra=extra)
    if t == "apgd_ce":
        k = {"eps": eps, "n_iter": int(p["n_iter"]), "n_restarts": int(p["n_restarts"])}
    elif t == "autoattack":
        bad = set(p["components"]) - set(aa.AA_COMPONENTS)
        if bad or not p["components"]:
            raise AdvFeaturesError(
                f"config key attacks.suite.{name}.components: {sorted(bad)} not in {list(aa.AA_COMPONENTS)}"
            )
        k = {"eps": eps, "components": list(p["components"]), "n_iter": int(p["n_iter"]),
             "n_target_classes": int(p["n_target_classes"]), "n_queries": int(p["n_queries"])}
        standard = list(p["components"]) == list(aa.AA_COMPONENTS) and all(
            k[key] >= v for key, v in aa.AA_STANDARD.items()
        )
        extra["standard"] = standard
    else:  # fab
        k = {"eps": eps, "n_iter": int(p["n_iter"]), "n_restarts": int(p["n_restarts"]),
             "targeted": bool(p["targeted"]), "n_target_classes": int(p["n_target_classes"])}
    return Attack(name, t, k, f"Linf {eps:.4g}", extra=extra)


@dataclass
class AttackResult:
    """Adversarial examples and what the ``attack`` HDF5 layout stores about them."""

    x_adv: torch.Tensor
    y: torch.Tensor
    pred_clean: torch.Tensor
    pred_adv: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor

    @property
    def clean_acc(self) -> float:
        return float((self.pred_clean == self.y).float().mean()) if len(self.y) else float("nan")

    @property
    def robust_acc(self) -> float:
        return float((self.pred_adv == self.y).float().mean()) if len(self.y) else float("nan")


MaskFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def evaluate_attack(
    model: torch.nn.Module,
    attack: Attack,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int,
    batch_size: int = 250,
    mask_fn: MaskFn | None = None,
    progress: bool = False,
) -> AttackResult:
    """Run ``attack`` on (x, y) in batches (model in eval mode); x_adv lies in [0, 1].

    For NRF, ``mask_fn(model, x_batch, y_batch, generator) -> mask_robust [B, Cz]`` gives the
    bottleneck masks, computed once per batch on the clean input; the attack uses the
    non-robust (``~mask_robust``) or robust mask as its spec says.
    """
    device = next(model.parameters()).device
    g = make_generator(derive_seed(seed, "attack", attack.name), device)
    g_mask = make_generator(derive_seed(seed, "attack-mask", attack.name), device)

    def run(b, xb, yb):
        xb, yb = xb.to(device), yb.to(device)
        mask = None
        if attack.needs_mask:
            if mask_fn is None:
                raise AdvFeaturesError(f"attack {attack.name!r} needs bottleneck masks; pass mask_fn")
            mask_r = mask_fn(model, xb, yb, g_mask).bool()
            mask = mask_r if attack.extra["mask"] == "robust" else ~mask_r
        xa = attack(model, xb, yb, generator=g, seed=derive_seed(seed, "attack", attack.name, b), mask=mask)
        return xa.detach().clamp(0, 1).cpu()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = lambda it: tqdm(it, desc=attack.name, leave=False)  # noqa: E731
    with eval_mode(model):
        out = attack_batches(x, y, run, batch_size, progress=bar)
    x_adv = torch.cat(out) if out else x.clone()
    delta = (x_adv - x).flatten(1)
    return AttackResult(
        x_adv=x_adv.float(),
        y=y.clone(),
        pred_clean=predict(model, x.to(device)).cpu(),
        pred_adv=predict(model, x_adv.to(device)).cpu(),
        linf=delta.abs().amax(1) if len(x) else torch.zeros(0),
        l2=delta.norm(dim=1) if len(x) else torch.zeros(0),
    )


def robust_accuracy_vs_eps(
    model: torch.nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor, eps_list, *, seed: int,
    batch_size: int = 250, mask_fn: MaskFn | None = None,
) -> list[dict]:
    """Rows ``{eps, n, robust_acc, max_linf}`` for each eps (eps = 0: the clean input, no attack run)."""
    rows = []
    for eps in eps_list:
        if float(eps) <= 0:
            acc = float((predict(model, x) == y).float().mean())
            rows.append({"eps": 0.0, "n": len(y), "robust_acc": acc, "max_linf": 0.0})
            continue
        res = evaluate_attack(model, attack.with_eps(eps), x, y, seed=seed, batch_size=batch_size, mask_fn=mask_fn)
        rows.append({"eps": float(eps), "n": len(y), "robust_acc": res.robust_acc, "max_linf": float(res.linf.max())})
        log.info("%s eps=%.4g robust acc %.4f (n=%d)", attack.name, eps, res.robust_acc, len(y))
    return rows
