"""The attack registry: every attack selectable by name from ``attacks.suite`` in the config.

A suite entry is ``name -> {type: <one of ATTACK_TYPES>, ...params}``; :func:`make_attack` turns
it into an :class:`Attack` (type, resolved keyword arguments, a label saying which budget it
uses).  :func:`evaluate_attack` runs it batch by batch on given test rows and returns an
:class:`AttackResult` (the ``attack`` HDF5 layout of :mod:`advfeatures.h5io`);
:func:`robust_accuracy_vs_eps` sweeps the Linf budget.

Budgets: Linf attacks default to the shared ``attacks.eps``.  ``cw`` and ``nrf`` take
``bound: none`` (unbounded, as the reference code) or ``bound: linf`` (projected to the same
Linf eps by the box change of variables); both share one early-stopping rule, ``stop_checks``
(:class:`advfeatures.attacks.cw.CostRiseStop`; default 3 = the official steps // 3 rule) and
``start: frozen | clamped`` (pixels at 0 or 1 fixed, as the official code, or free to move).
Seeds: one generator per job seeded from the config seed and the attack name, drawn batch by
batch (same seed and batch size, same examples); pyautoattack gets a per-batch seed derived the
same way.
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
from advfeatures.attacks.nrf import nrf
from advfeatures.attacks.pgd import bim, fgsm, pgd
from advfeatures.registry import ATTACKS, GENERIC_KEYS
from advfeatures.utils import AdvFeaturesError, derive_seed, eval_mode, make_generator

log = logging.getLogger("advfeatures")



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
        if self.type not in REGISTRY:
            raise AdvFeaturesError(f"unknown attack type {self.type!r}; choose one of {ATTACK_TYPES}")
        if self.needs_mask and mask is None:
            raise AdvFeaturesError(f"attack {self.name!r} ({self.type}) needs a channel mask; none was given")
        return REGISTRY[self.type].run(model, x, y, self.kwargs, generator=generator, seed=seed, mask=mask)

    def with_eps(self, eps: float) -> Attack:
        """The same attack at another Linf budget (for the eps sweep)."""
        spec = REGISTRY[self.type]
        if "eps" not in self.kwargs and not spec.has_bound:
            raise AdvFeaturesError(f"attack {self.name!r} has no eps to sweep")
        entry = dict(self.extra["spec"], eps=float(eps))
        if spec.has_bound:
            entry["bound"] = "linf"
        return make_attack(self.name, entry, eps_default=float(eps))


#: ``resolve(name, entry, p, eps) -> (kwargs, bound label, extra)``; ``p``: defaults + entry
Resolve = Callable[[str, Mapping[str, Any], dict[str, Any], float], tuple[dict, str, dict]]
#: ``run(model, x, y, kwargs, *, generator, seed, mask) -> x_adv``
Run = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class AttackSpec:
    """One attack type of the suite: what it accepts, its defaults, its label in the tables,
    how its eps and keyword arguments resolve, and how it runs."""

    type: str
    label: str  #: column label in Kim et al. Table 3 (reporting.attacks)
    params: tuple[str, ...]  #: keys it accepts besides ``type`` and GENERIC_KEYS
    defaults: dict[str, Any]  #: the reference settings of Kim et al. where they exist
    resolve: Resolve
    run: Run
    needs_mask: bool = False  #: runs on bottleneck channel masks (NRF)
    has_bound: bool = False  #: ``bound: none | linf`` (cw, nrf)
    #: library modules its jobs load lazily (rule inputs; advfeatures.deps.LAZY)
    modules: tuple[str, ...] = ()


def _alpha(p: dict, eps: float) -> float:
    if p.get("alpha") is not None:
        return float(p["alpha"])
    return float(p["alpha_scale"]) * eps / max(1, int(p["steps"]))


def _linf(eps: float) -> str:
    return f"Linf {eps:.4g}"


def _fgsm(name, entry, p, eps):
    return {"eps": eps}, _linf(eps), {}


def _bim(name, entry, p, eps):
    return {"eps": eps, "steps": int(p["steps"]), "alpha": _alpha(p, eps), "early_stop": bool(p["early_stop"])}, \
        _linf(eps), {}


def _pgd(name, entry, p, eps):
    k, _, extra = _bim(name, entry, p, eps)
    norm = p["norm"]
    if norm == "l2" and entry.get("eps") is None:
        raise AdvFeaturesError(f"config key attacks.suite.{name}.eps: an L2 PGD needs its own eps")
    k.update(norm=norm, random_init=bool(p["random_start"]))
    return k, f"{'Linf' if norm == 'linf' else 'L2'} {eps:.4g}", extra


def _cw_like(p, eps):
    bounded = p["bound"] == "linf"
    k = {key: p[key] for key in ("c", "kappa", "lr", "steps")}
    k["eps"] = eps if bounded else None
    k["stop_checks"] = int(p["stop_checks"])
    k["start"] = str(p["start"])
    return k, (_linf(eps) if bounded else "unbounded")


def _cw(name, entry, p, eps):
    k, bound = _cw_like(p, eps)
    k.update(search_steps=int(p["search_steps"]))
    return k, bound, {}


def _nrf(name, entry, p, eps):
    k, bound = _cw_like(p, eps)
    if p["mask"] not in ("nonrobust", "robust"):
        raise AdvFeaturesError(f"config key attacks.suite.{name}.mask must be nonrobust or robust")
    k.update(maximize=bool(p["maximize"]))
    return k, bound, {"mask": p["mask"]}


def _apgd(name, entry, p, eps):
    return {"eps": eps, "n_iter": int(p["n_iter"]), "n_restarts": int(p["n_restarts"])}, _linf(eps), {}


def _autoattack(name, entry, p, eps):
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
    return k, _linf(eps), {"standard": standard}


def _fab(name, entry, p, eps):
    return {"eps": eps, "n_iter": int(p["n_iter"]), "n_restarts": int(p["n_restarts"]),
            "targeted": bool(p["targeted"]), "n_target_classes": int(p["n_target_classes"])}, _linf(eps), {}


#: how each attack type resolves and runs; what it accepts, its defaults and label come from
#: the torch-free metadata advfeatures.registry.ATTACKS
_RUNNERS: dict[str, tuple[Resolve, Run]] = {
    "fgsm": (_fgsm, lambda m, x, y, k, **_: fgsm(m, x, y, **k)),
    "bim": (_bim, lambda m, x, y, k, **_: bim(m, x, y, **k)),
    "pgd": (_pgd, lambda m, x, y, k, *, generator, **_: pgd(m, x, y, generator=generator, **k)),
    "cw": (_cw, lambda m, x, y, k, **_: cw_l2(m, x, y, **k)),
    "apgd_ce": (_apgd, lambda m, x, y, k, *, seed, **_: aa.apgd_ce(m, x, y, seed=seed, **k)),
    "autoattack": (_autoattack, lambda m, x, y, k, *, seed, **_: aa.autoattack(m, x, y, seed=seed, **k)),
    "fab": (_fab, lambda m, x, y, k, *, seed, **_: aa.fab(m, x, y, seed=seed, **k)),
    "nrf": (_nrf, lambda m, x, y, k, *, mask, **_: nrf(m, x, y, mask, **k)),
}

#: the attack registry: type -> spec (config key attacks.suite.<name>.type)
REGISTRY: dict[str, AttackSpec] = {
    t: AttackSpec(t, m.label, m.params, m.defaults, *_RUNNERS[t], needs_mask=m.needs_mask,
                  has_bound=m.has_bound, modules=m.modules)
    for t, m in ATTACKS.items()
}
ATTACK_TYPES = tuple(REGISTRY)


def make_attack(name: str, spec: Mapping[str, Any], *, eps_default: float) -> Attack:
    """Resolve a suite entry into an :class:`Attack` (a registry lookup); unknown types or keys
    are one clear error."""
    spec = dict(spec or {})
    t = spec.get("type")
    if t not in REGISTRY:
        raise AdvFeaturesError(
            f"config key attacks.suite.{name}.type is {t!r}; choose one of {list(ATTACK_TYPES)}"
        )
    reg = REGISTRY[t]
    unknown = set(spec) - set(reg.params) - set(GENERIC_KEYS)
    if unknown:
        raise AdvFeaturesError(
            f"config key attacks.suite.{name} has unknown option(s) {sorted(unknown)} for type {t}; "
            f"allowed: {sorted(reg.params)}"
        )
    p = {**reg.defaults, **{k: v for k, v in spec.items() if k not in GENERIC_KEYS}}
    eps = float(p.get("eps", eps_default) if p.get("eps") is not None else eps_default)
    kwargs, bound, extra = reg.resolve(name, spec, p, eps)
    return Attack(name, t, kwargs, bound, needs_mask=reg.needs_mask, extra={"spec": spec, **extra})


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
    # one mask seed for every NRF-type attack (not per name): NRF and its ablations on the same
    # rows and batches get the same IB masks, so Table 4 compares them on the same channels
    g_mask = make_generator(derive_seed(seed, "attack-mask"), device)

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
        pred_clean=predict(model, x).cpu(),
        pred_adv=predict(model, x_adv).cpu(),
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
            acc = float((predict(model, x).cpu() == y.cpu()).float().mean())
            rows.append({"eps": 0.0, "n": len(y), "robust_acc": acc, "max_linf": 0.0})
            continue
        res = evaluate_attack(model, attack.with_eps(eps), x, y, seed=seed, batch_size=batch_size, mask_fn=mask_fn)
        rows.append({"eps": float(eps), "n": len(y), "robust_acc": res.robust_acc, "max_linf": float(res.linf.max())})
        log.info("%s eps=%.4g robust acc %.4f (n=%d)", attack.name, eps, res.robust_acc, len(y))
    return rows
