"""Evaluation helpers shared by every stage: batched prediction, the batched attack loop,
clean / PGD accuracy, and the transfer rate of Ilyas et al.

- :func:`predict`: the one batched ``argmax`` (eval mode, no grad).
- :func:`attack_batches`: the one batched attack loop; :func:`robust_accuracy` (training,
  synthesis evaluation), :func:`transfer_rate`, MI's PGD inputs and the attack suite use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from advfeatures.attacks.pgd import PGDSettings, pgd
from advfeatures.data import Dataset, eval_subset
from advfeatures.utils import batches, derive_seed, eval_mode, frozen, make_generator

#: ``fn(batch_number, x_batch, y_batch) -> x_adv_batch``
BatchAttack = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted classes of ``x`` in batches (model in eval mode); empty input, empty output."""
    with eval_mode(model):
        if not len(x):
            return torch.zeros(0, dtype=torch.long)
        return torch.cat([model(x[s]).argmax(1) for s in batches(len(x), batch_size)])


def attack_batches(x: torch.Tensor, y: torch.Tensor, fn: BatchAttack, batch_size: int, *,
                   progress: Callable | None = None) -> list[torch.Tensor]:
    """``fn`` on each batch of (x, y), in order; ``progress`` wraps the batch iterator (tqdm)."""
    it = list(enumerate(batches(len(x), batch_size)))
    if progress is not None:
        it = progress(it)
    return [fn(b, x[s], y[s]) for b, s in it]


def adversarial_examples(model, x, y, a: PGDSettings, generator) -> torch.Tensor:
    """PGD under ``a`` (random start drawn from ``generator``)."""
    return pgd(
        model, x, y, eps=a.eps, alpha=a.alpha, steps=a.steps, norm=a.norm,
        random_init=a.random_start, generator=generator,
    )


def pgd_batches(model, x, y, a: PGDSettings, generator, batch_size: int) -> torch.Tensor:
    """PGD examples of (x, y) made batch by batch, one generator across batches."""
    def fn(_b, xb, yb):
        return adversarial_examples(model, xb, yb, a, generator)

    return torch.cat(attack_batches(x, y, fn, batch_size))


def robust_accuracy(model, x, y, a: PGDSettings, seed: int, batch_size: int = 500) -> tuple[float, float]:
    """Clean and PGD accuracy (model in eval mode, seeded random start)."""
    g = make_generator(seed, x.device)
    clean = (predict(model, x, batch_size) == y).float().mean()
    x_adv = pgd_batches(model, x, y, a, g, batch_size)
    robust = predict(model, x_adv, batch_size) == y
    return float(clean), float(robust.float().mean())


def pgd_settings(attacks: Mapping[str, Mapping]) -> dict[str, PGDSettings]:
    """``{name: PGDSettings}`` from a config mapping of PGD attacks (synthesis.eval.attacks)."""
    return {name: PGDSettings(**dict(a)) for name, a in attacks.items()}


def _subset(data: Dataset, subset: int | None, seed: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    idx = eval_subset(data.y_test, subset, derive_seed(seed, "ilyas_eval_subset"))
    return idx, data.x_test[idx].to(device), data.y_test[idx].to(device)


def evaluate_model(
    model, data: Dataset, attacks: Mapping[str, PGDSettings], *, subset: int | None, seed: int,
    batch_size: int = 500,
) -> dict[str, float]:
    """Clean accuracy and robust accuracy under each attack on the fixed test subset (eval mode)."""
    device = next(model.parameters()).device
    idx, x, y = _subset(data, subset, seed, device)
    row: dict[str, float] = {"n_test": float(len(idx))}
    with frozen(model):
        for name, a in attacks.items():
            clean, robust = robust_accuracy(model, x, y, a, derive_seed(seed, "ilyas_eval", name), batch_size)
            row["clean_acc"] = clean
            row[f"robust_acc_{name}"] = robust
    return row


def transfer_rate(
    source, target, data: Dataset, attack: PGDSettings, *, subset: int | None, seed: int,
    batch_size: int = 500,
) -> dict[str, float]:
    """How often untargeted adversarial examples made on ``source`` also fool ``target``.

    Counted over test rows that both models classify correctly and on which the attack fools the
    source model (so the rate measures transfer, not the target's own errors).
    """
    device = next(target.parameters()).device
    _, x, y = _subset(data, subset, seed, device)
    g = make_generator(derive_seed(seed, "ilyas_transfer"), device)
    with frozen(source), frozen(target):
        x_adv = pgd_batches(source, x, y, attack, g, batch_size)
        ok = (predict(source, x, batch_size) == y) & (predict(target, x, batch_size) == y)
        fooled_src = predict(source, x_adv, batch_size) != y
        fooled_tgt = predict(target, x_adv, batch_size) != y
    base = ok & fooled_src
    n = int(base.sum())
    rate = float((fooled_tgt & base).sum()) / n if n else float("nan")
    return {"transfer_rate": rate, "transfer_n": float(n)}
