"""Stages of the attack suite: one attack against one trained model (attack), and robust
accuracy of one Linf attack against the eps list (attack_sweep)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from advfeatures import h5io
from advfeatures.attacks.nrf import bottleneck_masks
from advfeatures.attacks.suite import (
    Attack,
    MaskFn,
    evaluate_attack,
    make_attack,
    robust_accuracy_vs_eps,
)
from advfeatures.data import eval_subset, load_dataset
from advfeatures.models.checkpoint import load_checkpoint, model_from_checkpoint
from advfeatures.stages.job import Job, main
from advfeatures.utils import atomic_write, derive_seed

log = logging.getLogger("advfeatures")


def attack_rows(y_test: torch.Tensor, eval_subset_n: int | None, subset_n: int | None, seed: int) -> torch.Tensor:
    """Test rows an attack runs on, sorted.

    The common rows are the seeded stratified eval subset every stage uses (seed tag
    ``eval_subset``, as training).  An attack's ``subset`` takes the first ``subset_n`` of those
    in one seeded, class-interleaved order (seed tag ``attack_subset``, shared by all attacks):
    each prefix keeps the class proportions, and a smaller subset is always contained in a
    larger one, so attacks run on different subset sizes are compared on the smaller one's rows.
    """
    idx = eval_subset(y_test, eval_subset_n, derive_seed(seed, "eval_subset"))
    if not subset_n or subset_n >= len(idx):
        return idx
    yy = y_test[idx].numpy()
    perm = np.random.default_rng(derive_seed(seed, "attack_subset")).permutation(len(yy))
    rank = np.empty(len(yy))
    position = np.empty(len(yy))
    position[perm] = np.arange(len(yy))
    for c in np.unique(yy):
        members = perm[yy[perm] == c]  # this class's rows in permutation order
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    first = np.lexsort((position, rank))[: int(subset_n)]
    return idx[torch.from_numpy(np.sort(first)).long()]


def nrf_mask_fn(settings: Mapping[str, Any]) -> MaskFn:
    """``mask_fn`` for :func:`evaluate_attack` from the ``attacks.nrf`` slice (IB on the clean batch)."""
    from advfeatures.bottleneck import (
        IBSettings,  # lazy: only NRF jobs load the bottleneck (deps.LAZY)
    )

    ib = IBSettings(
        beta=float(settings["beta"]), iterations=int(settings["iterations"]), lr=float(settings["lr"]),
        batch_size=settings.get("batch_size"), threshold=settings.get("threshold", "batch"),
    )

    def fn(model, x, y, generator):
        return bottleneck_masks(model, x, y, generator=generator, **ib.kwargs())

    return fn


def attack_from_slice(sl: Mapping[str, Any]) -> tuple[Attack, MaskFn | None]:
    """The :class:`Attack` and (for NRF) mask function of one rule's ``params.attack`` slice."""
    attack = make_attack(sl["name"], sl["spec"], eps_default=float(sl["eps"]))
    return attack, (nrf_mask_fn(sl["nrf"]) if attack.needs_mask else None)


def _setup(job: Job, subset_n):
    sl = job.params["attack"]
    attack, mask_fn = attack_from_slice(sl)
    data = load_dataset(job.input.data)
    model = model_from_checkpoint(job.input.model, map_location=job.device())
    index = attack_rows(data.y_test, sl["eval_subset"], subset_n, job.seed)
    return sl, attack, mask_fn, data, model, index


def recording(mask_fn: MaskFn | None) -> tuple[MaskFn | None, list]:
    """``mask_fn`` that also keeps every batch's robust mask (in order) in the returned list."""
    if mask_fn is None:
        return None, []
    kept: list = []

    def fn(model, x, y, generator):
        m = mask_fn(model, x, y, generator)
        kept.append(m.detach().bool().cpu())
        return m

    return fn, kept


def attack(job: Job) -> None:
    sl = job.params["attack"]
    sl, atk, mask_fn, data, model, index = _setup(job, sl["spec"].get("subset"))
    method = job.wildcards["method"]
    log.info("%s (%s, %s) on %s: %d test rows", atk.name, atk.type, atk.bound, method, len(index))
    mask_fn, masks = recording(mask_fn)
    res = evaluate_attack(
        model, atk, data.x_test[index], data.y_test[index], seed=job.seed,
        batch_size=int(sl["batch_size"]), mask_fn=mask_fn, progress=True,
    )
    log.info("clean acc %.4f, robust acc %.4f, max linf %.4f", res.clean_acc, res.robust_acc, float(res.linf.max()))
    extra = {}
    if masks:  # NRF-type: the IB robust-channel mask of each clean row, so the claims can gate on it
        mask_r = torch.cat(masks)
        extra["mask_robust"] = mask_r.to(torch.uint8)
        log.info("IB masks: %.2f robust / %.2f non-robust channels per row", float(mask_r.sum(1).float().mean()),
                 float((~mask_r).sum(1).float().mean()))
    h5io.write_h5(
        job.output[0],
        {"x_adv": res.x_adv, "index": index, "y": res.y, "pred_clean": res.pred_clean, "pred_adv": res.pred_adv,
         "linf": res.linf.float(), "l2": res.l2.float(), **extra},
        kind="attack",
        producer="rule attack (advfeatures.attacks.suite.evaluate_attack)",
        params={**sl, "seed": job.seed},
        attrs={"attack": atk.name, "attack_type": atk.type, "method": method, "bound": atk.bound,
               "attack_kwargs": atk.kwargs, "standard": bool(atk.extra.get("standard", False)),
               "mask": atk.extra.get("mask", ""), "clean_acc": res.clean_acc, "robust_acc": res.robust_acc,
               # training.health.allow_degenerate models: the claims' precondition reads this flag
               "degenerate": bool(load_checkpoint(job.input.model)["meta"].get("degenerate", False))},
    )


def attack_sweep(job: Job) -> None:
    import pandas as pd  # here only: the 40-odd attack jobs skip its import (0.26 s each)

    sweep = job.params["sweep"]
    sl, atk, mask_fn, data, model, index = _setup(job, sweep["subset"])
    rows = robust_accuracy_vs_eps(
        model, atk, data.x_test[index], data.y_test[index], sweep["eps"], seed=job.seed,
        batch_size=int(sl["batch_size"]), mask_fn=mask_fn,
    )
    df = pd.DataFrame(rows)
    df.insert(0, "attack", atk.name)
    df.insert(0, "method", job.wildcards["method"])
    with atomic_write(job.output[0]) as tmp:
        df.to_csv(tmp, index=False)
    log.info("wrote %s", job.output[0])


STAGES = {"attack": attack, "attack_sweep": attack_sweep}

if __name__ == "__main__":
    main(STAGES)
