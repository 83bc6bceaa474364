"""Standard and adversarial training (PGD-AT Linf/L2, TRADES, MART) with checkpoints and resume.

One entry point, :func:`train`, takes the whole training config slice (see ``TrainConfig``).
Adversarial examples are generated with the model in eval mode (as the robustness library
does); the update runs in train mode.  Randomness (shuffling, augmentation, random starts) is
drawn from generators seeded per epoch from the config seed, so a job killed after epoch k and
resumed from its checkpoint ends with exactly the metrics of an uninterrupted run (CPU).

Resume state lives in ``state_dir`` (not a Snakemake output, so Snakemake never deletes it):
``last.pt`` after every epoch and ``epoch_{k}.pt`` at the configured epochs.  It is ignored
when the config it was made with differs from the current one.

Health: every parameter and floating buffer is checked for NaN/inf after each
optimiser step (on the device, read by the host every ``HEALTH_SYNC_EVERY`` batches and at each
epoch end), nothing non-finite is ever saved (``models.checkpoint.save_checkpoint`` refuses
it), and a model that ends within ``health.min_acc_over_chance`` points of chance fails the job
unless ``health.allow_degenerate``.
Remedies for adversarial training that never leaves chance or diverges: ``eps_warmup_epochs``,
``lr_warmup_epochs`` (linear, per step) and ``grad_clip_norm``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from advfeatures import registry
from advfeatures.attacks.evaluate import adversarial_examples, predict, robust_accuracy
from advfeatures.attacks.pgd import PGDSettings, pgd
from advfeatures.data import Dataset, eval_subset
from advfeatures.models import build_model
from advfeatures.models.checkpoint import (
    FIX_DIVERGENCE,
    load_checkpoint,
    name_list,
    nonfinite_tensors,
    save_checkpoint,
)
from advfeatures.utils import (
    AdvFeaturesError,
    atomic_write,
    derive_seed,
    draw_device,
    eval_mode,
    make_generator,
)

log = logging.getLogger("advfeatures")

METHODS = registry.METHODS  # declared once in advfeatures.registry
EVAL_PGD_EPOCHS = ("all", "checkpoints", "last", "none")
METRIC_FIELDS = (
    "epoch", "lr", "train_loss", "train_acc", "test_clean_acc", "test_pgd_acc", "epoch_seconds",
)


@dataclass
class HealthConfig:
    """End-of-training chance check (config key ``training.health``).

    ``min_acc_over_chance`` is in percentage points of clean test accuracy above 100 / classes.
    Default 10: on an evaluation subset of 500 images a constant predictor's accuracy has a
    standard error of about 1.3 points at chance (p = 0.1), so 10 points is ~7 standard errors
    - a dead model never passes by luck - while every working model of the default run
    (MNIST, > 90%) and of presets/cifar10-cpu.yaml (>= 35%) clears it by far.
    """

    min_acc_over_chance: float = 10.0
    allow_degenerate: bool = False


@dataclass
class TrainConfig:
    method: str = "standard"
    arch: str = "lenet5"
    arch_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: dict = field(default_factory=lambda: {"type": "constant"})
    augmentation: str = "none"
    attack: PGDSettings = field(default_factory=PGDSettings)
    beta: float = 6.0
    checkpoint_epochs: list = field(default_factory=list)
    eval_subset: int = 500
    eval_attack: PGDSettings = field(default_factory=PGDSettings)
    eval_batch_size: int = 500
    # epochs whose test-set PGD accuracy is measured (clean accuracy: every epoch): all,
    # checkpoints (checkpoint_epochs and the last) or last.  Only the reporting changes; the
    # evaluation draws from its own generator, so the trained weights are the same for each.
    eval_pgd_epochs: str = "all"
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    # remedies for training that diverges or never leaves chance (see lr_factor /
    # eps_factor): linear warm-ups over the first k epochs, per optimiser step, and clipping
    lr_warmup_epochs: int = 0
    eps_warmup_epochs: int = 0
    grad_clip_norm: float | None = None
    health: HealthConfig = field(default_factory=lambda: HealthConfig())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        for key in ("attack", "eval_attack"):
            if isinstance(d.get(key), dict):
                d[key] = PGDSettings(**d[key])
        if isinstance(d.get("health"), dict):
            bad = set(d["health"]) - set(HealthConfig.__dataclass_fields__)
            if bad:
                raise AdvFeaturesError(f"unknown training.health option(s) {sorted(bad)}")
            d["health"] = HealthConfig(**d["health"])
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise AdvFeaturesError(f"unknown training option(s) {sorted(unknown)}")
        cfg = cls(**d)
        if cfg.eval_pgd_epochs not in EVAL_PGD_EPOCHS:
            raise AdvFeaturesError(
                f"training.eval_pgd_epochs must be one of {EVAL_PGD_EPOCHS}, got {cfg.eval_pgd_epochs!r}"
            )
        if cfg.method not in METHODS:
            raise AdvFeaturesError(f"unknown training method {cfg.method!r}; choose one of {METHODS}")
        return cfg

    def fingerprint(self) -> str:
        """Hash of everything that changes the trajectory (device-independent)."""
        d = json.loads(json.dumps(self.__dict__, default=lambda o: o.__dict__))
        # health only judges the result: changing it resumes a finished run instead of retraining
        for key in ("checkpoint_epochs", "device", "eval_batch_size", "eval_pgd_epochs", "health"):
            d.pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- pieces


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise AdvFeaturesError(f"unknown optimizer {cfg.optimizer!r} (training.optimizer); use sgd or adam")


def pgd_eval_due(cfg: TrainConfig, epoch: int) -> bool:
    """Whether 1-based ``epoch`` gets the test-set PGD evaluation (``training.eval_pgd_epochs``)."""
    if cfg.eval_pgd_epochs == "none":
        return False
    if cfg.eval_pgd_epochs == "all" or epoch == cfg.epochs:
        return True
    return cfg.eval_pgd_epochs == "checkpoints" and epoch in cfg.checkpoint_epochs


def lr_at_epoch(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch`` (stepped once per epoch, never per batch)."""
    s = cfg.schedule or {"type": "constant"}
    kind = s.get("type", "constant")
    if kind == "constant":
        return cfg.lr
    if kind == "multistep":
        n = sum(1 for m in s.get("milestones", []) if epoch >= m)
        return cfg.lr * s.get("gamma", 0.1) ** n
    if kind == "step":
        return cfg.lr * s.get("gamma", 0.1) ** (epoch // s["step_size"])
    if kind == "cosine":
        import math

        return 0.5 * cfg.lr * (1 + math.cos(math.pi * epoch / cfg.epochs))
    raise AdvFeaturesError(f"unknown LR schedule {kind!r} (training.schedule.type)")


def warmup_factor(step: int, steps_per_epoch: int, warmup_epochs: int) -> float:
    """Linear ramp for 0-based optimiser ``step``: (step + 1) / (warmup_epochs * steps_per_epoch),
    capped at 1; 1 throughout when ``warmup_epochs`` is 0.  Stepped per batch, so even a
    one-epoch warm-up starts small."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (step + 1) / (warmup_epochs * steps_per_epoch))


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """LR warm-up (``training.lr_warmup_epochs``), multiplied into the epoch's scheduled LR.

    Linear warm-up from Goyal et al. 2017, "Accurate, Large Minibatch SGD" (sec. 2.2): large
    initial steps on a freshly initialised net are what throws adversarial training into a
    dead constant predictor or a divergence (Pang et al. 2021, "Bag of Tricks for Adversarial
    Training", sec. 3, list LR warm-up among the AT tricks).
    """
    return warmup_factor(step, steps_per_epoch, cfg.lr_warmup_epochs)


def eps_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Training-eps warm-up (``training.eps_warmup_epochs``): eps and the step size alpha of the
    training attack are scaled by this factor (the number of steps stays).

    Linear eps ramp from Gowal et al. 2018, "On the Effectiveness of Interval Bound Propagation"
    (sec. 4, "ramp up epsilon"), and curriculum AT (Cai et al. 2018, "Curriculum Adversarial
    Training"): on hard data, full-strength PGD from the first step leaves a small net at the
    constant predictor (loss ln C); a clean-ish start lets it learn features first.
    """
    return warmup_factor(step, steps_per_epoch, cfg.eps_warmup_epochs)


def scaled_attack(a: PGDSettings, factor: float) -> PGDSettings:
    if factor >= 1.0:
        return a
    return PGDSettings(a.norm, a.eps * factor, a.alpha * factor, a.steps, a.random_start)


def augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``crop``: random crop with 4-pixel zero padding; ``crop_flip``: and horizontal flip."""
    if kind == "none":
        return x
    if kind not in ("crop", "crop_flip"):
        raise AdvFeaturesError(f"unknown augmentation {kind!r}; use none, crop or crop_flip")
    b, c, h, w = x.shape
    pad = F.pad(x, (4, 4, 4, 4))
    dev = draw_device(generator, x.device)
    dx = torch.randint(0, 9, (b,), generator=generator, device=dev).to(x.device)
    dy = torch.randint(0, 9, (b,), generator=generator, device=dev).to(x.device)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device).view(1, h)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device).view(1, w)).view(b, 1, 1, w)
    out = pad.gather(2, rows.expand(b, c, h, w + 8)).gather(3, cols.expand(b, c, h, w))
    if kind == "crop_flip":
        flip = torch.rand(b, generator=generator, device=dev).to(x.device) < 0.5
        out = torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)
    return out


def trades_examples(model, x, a: PGDSettings, generator) -> torch.Tensor:
    """TRADES inner maximisation: ascend KL(f(x) || f(x')) from x + 0.001 N(0, 1), eval mode."""
    with eval_mode(model), torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    noise = torch.randn(x.shape, generator=generator, device=draw_device(generator, x.device),
                        dtype=x.dtype).to(x.device)

    def kl_loss(logits, _target):
        return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")

    return pgd(
        model, x, p_clean.argmax(1), eps=a.eps, alpha=a.alpha, steps=a.steps, norm=a.norm,
        random_init=False, loss_fn=kl_loss, start=(x + 0.001 * noise).clamp(0, 1),
    )


def method_loss(
    cfg: TrainConfig, model, x, y, generator, attack: PGDSettings | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, logits used for train accuracy) for one batch under ``cfg.method``.

    ``attack`` replaces ``cfg.attack`` (the eps warm-up passes the ramped budget)."""
    m = cfg.method
    atk = attack or cfg.attack
    if m == "standard":
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    if m in ("pgd_linf", "pgd_l2"):
        x_adv = adversarial_examples(model, x, y, atk, generator)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    if m == "trades":
        x_adv = trades_examples(model, x, atk, generator)
        logits = model(x)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
        return F.cross_entropy(logits, y) + cfg.beta * kl, logits_adv
    if m == "mart":
        x_adv = adversarial_examples(model, x, y, atk, generator)
        logits = model(x)
        logits_adv = model(x_adv)
        adv_probs = F.softmax(logits_adv, 1)
        top2 = adv_probs.topk(2, dim=1).indices
        new_y = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
        loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
        nat_probs = F.softmax(logits, 1)
        true_probs = nat_probs.gather(1, y.view(-1, 1)).squeeze(1)
        kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
        loss_robust = (kl * (1.0000001 - true_probs)).mean()
        return loss_adv + cfg.beta * loss_robust, logits_adv
    raise AdvFeaturesError(f"unknown training method {m!r}")


# ----------------------------------------------------------------------------- health

#: batches between host reads of the on-device health flags (one sync, amortised)
HEALTH_SYNC_EVERY = 20


def finite_flag(model: torch.nn.Module) -> torch.Tensor:
    """0-dim bool tensor on the model's device: every parameter and floating buffer is finite.

    One fused max-abs per tensor (``torch._foreach_norm`` with ord inf, what clip_grad_norm_
    uses) and a max over them; NaN and inf propagate through both, so no host sync is needed.
    """
    ts = [t.detach() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return torch.isfinite(torch.stack(torch._foreach_norm(ts, float("inf"))).float().max())


def _fail_if_nonfinite(cfg: TrainConfig, model, epoch: int, bad: torch.Tensor, lr: float, last: Path):
    """Raise naming method, epoch and batch when the device flags ``bad`` = [first batch with a
    non-finite loss, first batch with a non-finite model] (-1 = none) saw one."""
    loss_b, model_b = (int(v) for v in bad.tolist())
    if loss_b < 0 and model_b < 0:
        return
    if loss_b >= 0 and (model_b < 0 or loss_b <= model_b):
        what, b = "training loss", loss_b
    else:
        what, b = "model after the optimiser step", model_b
    names = nonfinite_tensors(model.state_dict())
    tensors = f"; non-finite now: {name_list(names)}" if names else ""
    kept = (
        f"the last finite state ({last.name}, epoch {epoch}) stays in {last.parent}"
        if epoch > 0 and last.exists()
        else "nothing was saved"
    )
    raise AdvFeaturesError(
        f"non-finite {what} at epoch {epoch + 1}, batch {b + 1} (method {cfg.method}, lr {lr:g})"
        f"{tensors}; {kept}; {FIX_DIVERGENCE}"
    )


def check_above_chance(cfg: TrainConfig, rows: list[dict], num_classes: int) -> bool:
    """End-of-training chance check on the last epoch's clean test accuracy.

    Returns True when the model is degenerate and ``training.health.allow_degenerate`` keeps it
    (logged as a warning), False when it is healthy; raises otherwise.
    """
    last = rows[-1]
    chance = 100.0 / num_classes
    acc = 100.0 * last["test_clean_acc"]
    need = chance + cfg.health.min_acc_over_chance
    if acc > need:
        return False
    knobs = (
        f"training.lr {cfg.lr:g}, lr_warmup_epochs {cfg.lr_warmup_epochs}, "
        f"eps_warmup_epochs {cfg.eps_warmup_epochs}, epochs {cfg.epochs}"
    )
    what = (
        f"{cfg.method} model at chance: clean test accuracy {acc:.1f}% is not above chance "
        f"{chance:.1f}% + training.health.min_acc_over_chance {cfg.health.min_acc_over_chance:g} "
        f"points (final train loss {last['train_loss']:.4f}, train acc {100 * last['train_acc']:.1f}%)"
    )
    if cfg.health.allow_degenerate:
        log.warning("%s; kept because training.health.allow_degenerate is true", what)
        return True
    raise AdvFeaturesError(
        f"{what}; change the knobs that usually fix it ({knobs}): lower the LR, warm up LR/eps, "
        f"train longer - or set training.health.allow_degenerate: true to keep it on purpose"
    )


# ----------------------------------------------------------------------------- main loop


def train(
    cfg: TrainConfig,
    data: Dataset,
    *,
    model_out: str | Path,
    metrics_out: str | Path,
    checkpoint_outs: dict[int, str | Path] | None = None,
    state_dir: str | Path,
    progress: Callable | None = None,
    stop_after_epoch: int | None = None,
    chance_check: bool = True,
) -> list[dict]:
    """Train per ``cfg``; writes model, metrics CSV and epoch checkpoints. Returns the metrics rows.

    Health: after every optimiser step every parameter and floating buffer must be
    finite (checked on the device, read by the host every ``HEALTH_SYNC_EVERY`` batches and at
    each epoch end); the first non-finite step fails the job naming method, epoch and batch,
    before anything of that epoch is saved.  At the end the clean test accuracy must clear
    chance by ``cfg.health.min_acc_over_chance`` points unless ``chance_check`` is false (models
    trained on the synthetic sets, where chance level is a result) or
    ``cfg.health.allow_degenerate`` is set (then ``meta["degenerate"]`` is true in model.pt).

    ``stop_after_epoch`` ends the run early (as a kill would) - used by the resume test.
    """
    device = torch.device(cfg.device)
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_outs = {int(k): Path(v) for k, v in (checkpoint_outs or {}).items()}
    meta = {
        "arch": cfg.arch,
        "arch_options": cfg.arch_options,
        "model_kwargs": data.model_kwargs(),
        "method": cfg.method,
        "dataset": data.name,
        "fingerprint": cfg.fingerprint(),
        "data_fingerprint": data_fingerprint(data),
    }
    torch.manual_seed(cfg.seed)  # initial weights: torch's init draws from the global generator
    model = build_model(cfg.arch, options=cfg.arch_options, **data.model_kwargs()).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg, model.parameters())
    rows: list[dict] = []
    start_epoch = 0
    last = state_dir / "last.pt"
    if last.exists():
        try:
            st = load_checkpoint(last, device)
        except AdvFeaturesError as exc:  # resume state is a cache: a bad one means start over
            log.warning("ignoring resume state: %s", exc)
            st = {}
        same = ("fingerprint", "data_fingerprint")
        if st and all(st.get("meta", {}).get(k) == meta[k] for k in same):
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            rows = list(st["metrics"])
            start_epoch = int(st["epoch"])
            log.info("resuming %s from %s at epoch %d", cfg.method, last, start_epoch)
        else:
            if st:
                log.info("ignoring %s: made with a different config or dataset", last)
            for p in state_dir.glob("*.pt"):
                p.unlink()

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    ev_idx = eval_subset(data.y_test, cfg.eval_subset, derive_seed(cfg.seed, "eval_subset"))
    x_ev, y_ev = data.x_test[ev_idx].to(device), data.y_test[ev_idx].to(device)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if cfg.precision == "bf16"
        else torch.autocast(device_type=device.type, enabled=False)
    )
    n = len(x_train)
    steps_per_epoch = -(-n // cfg.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        lr = lr_at_epoch(cfg, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        g = make_generator(derive_seed(cfg.seed, "epoch", epoch), device)
        perm = torch.randperm(n, generator=g, device=device)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        # first batch (0-based) with a non-finite loss / model, kept on the device: no host sync
        # per step; the host reads them every HEALTH_SYNC_EVERY batches and at the epoch end
        bad = torch.full((2,), -1, device=device, dtype=torch.long)
        for b, start in enumerate(range(0, n, cfg.batch_size)):
            step = epoch * steps_per_epoch + b
            step_lr = lr * lr_factor(cfg, step, steps_per_epoch)
            if cfg.lr_warmup_epochs:
                for group in opt.param_groups:
                    group["lr"] = step_lr
            attack = scaled_attack(cfg.attack, eps_factor(cfg, step, steps_per_epoch))
            idx = perm[start : start + cfg.batch_size]
            x = augment(x_train[idx], cfg.augmentation, g)
            y = y_train[idx]
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss, logits = method_loss(cfg, model, x, y, g, attack)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
            opt.step()
            ld = loss.detach().float()
            now_bad = torch.stack([~torch.isfinite(ld), ~finite_flag(model)])
            bad = torch.where((bad < 0) & now_bad, torch.tensor(b, device=device), bad)
            loss_sum += ld * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            if (b + 1) % HEALTH_SYNC_EVERY == 0:
                _fail_if_nonfinite(cfg, model, epoch, bad, step_lr, last)
        _fail_if_nonfinite(cfg, model, epoch, bad, step_lr, last)
        if pgd_eval_due(cfg, epoch + 1):
            clean, robust = robust_accuracy(
                model, x_ev, y_ev, cfg.eval_attack, derive_seed(cfg.seed, "eval"), cfg.eval_batch_size
            )
        else:
            clean, robust = float((predict(model, x_ev, cfg.eval_batch_size) == y_ev).float().mean()), math.nan
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(loss_sum) / n,
            "train_acc": float(correct) / n,
            "test_clean_acc": clean,
            "test_pgd_acc": robust,
            "epoch_seconds": round(time.perf_counter() - t0, 3),
        }
        rows.append(row)
        log.info(
            "%s epoch %d/%d lr %.4g loss %.4f train acc %.4f | test clean %.4f pgd %.4f (%.1fs)",
            cfg.method, epoch + 1, cfg.epochs, lr, row["train_loss"], row["train_acc"], clean, robust,
            row["epoch_seconds"],
        )
        if progress:
            progress(epoch + 1)
        # save_checkpoint refuses non-finite tensors: nothing non-finite is ever saved
        payload = {"model": model.state_dict(), "meta": {**meta, "epoch": epoch + 1}}
        if (epoch + 1) in checkpoint_outs:
            save_checkpoint(state_dir / f"epoch_{epoch + 1}.pt", payload)
        save_checkpoint(
            last, {**payload, "optimizer": opt.state_dict(), "metrics": rows, "epoch": epoch + 1}
        )
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            return rows

    if chance_check:
        meta["degenerate"] = check_above_chance(cfg, rows, data.num_classes)
    for e, out in checkpoint_outs.items():
        src = state_dir / f"epoch_{e}.pt"
        if not src.exists():
            raise AdvFeaturesError(f"{src}: epoch checkpoint missing; delete {state_dir} and rerun")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    save_checkpoint(Path(model_out), {"model": model.state_dict(), "meta": {**meta, "epoch": cfg.epochs}})
    write_metrics(metrics_out, rows)
    # the outputs are complete: drop the resume state, so that a later rerun (code or data
    # changed upstream) trains afresh instead of finding a finished run to "resume"
    for p in state_dir.glob("*.pt"):
        p.unlink()
    return rows


def data_fingerprint(data: Dataset) -> str:
    """Hash of the training data, so that resume state made on other data is never reused."""
    h = hashlib.sha256()
    for t in (data.x_train, data.y_train):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def write_metrics(path: str | Path, rows: list[dict]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
