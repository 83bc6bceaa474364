"""Oracle tests of advfeatures/training.py on a tiny linear model (a few parameters, CPU, seeded).

The training loop is compared with a reference loop written out here (seeded init, per-epoch
shuffling generator, batches with a remainder, SGD, warm-ups, clipping, evaluation subset);
the schedules, warm-ups, augmentation, config parsing and health checks with their formulas.
Fast: these are the tests ``make mutation`` runs for the training module (with the TRADES / MART
loss oracles of tests/test_oracles.py); tests/test_training.py trains real models.
"""

from __future__ import annotations

import csv
import math
import re

import pytest
import torch
import torch.nn.functional as F

from advfeatures import training
from advfeatures.attacks.evaluate import robust_accuracy
from advfeatures.attacks.pgd import PGDSettings
from advfeatures.data import Dataset, eval_subset
from advfeatures.models.checkpoint import load_checkpoint
from advfeatures.training import (
    HealthConfig,
    TrainConfig,
    augment,
    check_above_chance,
    data_fingerprint,
    eps_factor,
    finite_flag,
    lr_at_epoch,
    lr_factor,
    make_optimizer,
    method_loss,
    pgd_eval_due,
    scaled_attack,
    train,
    warmup_factor,
)
from advfeatures.utils import AdvFeaturesError, derive_seed


class Tiny(torch.nn.Module):
    """Linear classifier on [N, 1, 4, 4]; weights from torch's global generator (as build_model's
    architectures), one float buffer (a scale, 1) and one integer buffer (a counter)."""

    def __init__(self, num_classes: int = 3, **_):
        super().__init__()
        self.fc = torch.nn.Linear(16, num_classes)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("spare", torch.zeros(2))  # not used by forward

    def forward(self, x):
        return self.fc(x.flatten(1)) * self.scale


@pytest.fixture
def tiny(monkeypatch):
    built = []

    def build(name, *, options=None, **kw):
        built.append((name, options, kw))
        return Tiny(kw["num_classes"])

    monkeypatch.setattr(training, "build_model", build)
    return built


def dataset(n_train: int = 13, n_test: int = 9, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % 3
        x = torch.rand(n, 1, 4, 4, generator=g) * 0.3
        for i, c in enumerate(y.tolist()):
            x[i, 0, c] += 0.6  # class c lights row c
        return x.clamp(0, 1), y

    xtr, ytr = split(n_train)
    xte, yte = split(n_test)
    return Dataset("tinyset", xtr, ytr, xte, yte, ["a", "b", "c"], [0.3], [0.2])


def config(**kw) -> TrainConfig:
    d = {"method": "standard", "arch": "tinyarch", "epochs": 2, "batch_size": 5, "lr": 0.2, "momentum": 0.5,
         "weight_decay": 0.01, "eval_subset": 6, "eval_batch_size": 4, "seed": 7, "eval_pgd_epochs": "last",
         "eval_attack": {"norm": "linf", "eps": 0.1, "alpha": 0.05, "steps": 2, "random_start": True}}
    d.update(kw)
    return TrainConfig.from_dict(d)


def run(cfg, data, tmp_path, **kw):
    return train(cfg, data, model_out=tmp_path / "model.pt", metrics_out=tmp_path / "metrics.csv",
                 state_dir=tmp_path / "state", **kw)


def reference_train(cfg: TrainConfig, data: Dataset, lrs=None):
    """The loop written out: seeded init, per-epoch generator for the permutation, batches of
    batch_size with a smaller last one, SGD, per-step linear LR warm-up, clipping; per-epoch
    loss mean over samples, accuracy, clean and (due epochs) PGD accuracy on the eval subset."""
    torch.manual_seed(cfg.seed)
    model = Tiny(data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov)
    n, bs = len(data.x_train), cfg.batch_size
    per_epoch = math.ceil(n / bs)
    ev = eval_subset(data.y_test, cfg.eval_subset, derive_seed(cfg.seed, "eval_subset"))
    xe, ye = data.x_test[ev], data.y_test[ev]
    rows = []
    for epoch in range(cfg.epochs):
        lr = lrs[epoch] if lrs else cfg.lr
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, "epoch", epoch))
        perm = torch.randperm(n, generator=g)
        model.train()
        loss_sum, correct = 0.0, 0
        for b in range(per_epoch):
            step = epoch * per_epoch + b
            w = cfg.lr_warmup_epochs
            for group in opt.param_groups:
                group["lr"] = lr * (min(1.0, (step + 1) / (w * per_epoch)) if w else 1.0)
            idx = perm[b * bs:(b + 1) * bs]
            x, y = data.x_train[idx], data.y_train[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
        model.eval()
        with torch.no_grad():
            clean = float((model(xe).argmax(1) == ye).float().mean())
        robust = math.nan
        if cfg.eval_pgd_epochs == "all" or epoch + 1 == cfg.epochs:
            clean, robust = robust_accuracy(model, xe, ye, cfg.eval_attack, derive_seed(cfg.seed, "eval"), 4)
        rows.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / n, "train_acc": correct / n,
                     "test_clean_acc": clean, "test_pgd_acc": robust})
    return model, rows


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_each_epoch_is_logged_with_its_metrics(tiny, tmp_path, caplog):
    with caplog.at_level("INFO", logger="advfeatures"):
        rows = run(config(epochs=2), dataset(), tmp_path, chance_check=False)
    lines = [m for m in messages(caplog) if m.startswith("standard epoch ")]
    assert len(lines) == 2
    r = rows[1]
    assert lines[1] == (f"standard epoch 2/2 lr {r['lr']:.4g} loss {r['train_loss']:.4f} train acc {r['train_acc']:.4f} | "
                        f"test clean {r['test_clean_acc']:.4f} pgd {r['test_pgd_acc']:.4f} ({r['epoch_seconds']:.1f}s)")


def test_progress_is_called_after_each_epoch(tiny, tmp_path):
    seen = []
    run(config(epochs=2), dataset(), tmp_path, chance_check=False, progress=seen.append)
    assert seen == [1, 2]


def assert_rows_close(rows, ref):
    assert len(rows) == len(ref)
    for r, e in zip(rows, ref):
        assert set(r) == set(training.METRIC_FIELDS) and r["epoch_seconds"] >= 0
        for k, v in e.items():
            if isinstance(v, float) and math.isnan(v):
                assert math.isnan(r[k]), k
            else:
                assert r[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k


def assert_weights_close(model_path, ref_model):
    st = load_checkpoint(model_path)["model"]
    for k, v in ref_model.state_dict().items():
        assert torch.allclose(st[k].float(), v.float(), rtol=1e-5, atol=1e-6), k


# ----------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("kw", [
    {},
    {"lr_warmup_epochs": 1, "grad_clip_norm": 0.05, "nesterov": True, "eval_pgd_epochs": "all"},
    {"epochs": 3, "batch_size": 13, "lr_warmup_epochs": 2, "momentum": 0.0},
])
def test_training_loop_equals_the_reference_loop(tiny, tmp_path, kw):
    cfg, data = config(**kw), dataset()
    rows = run(cfg, data, tmp_path, chance_check=False)
    ref_model, ref_rows = reference_train(cfg, data)
    assert_rows_close(rows, ref_rows)
    assert_weights_close(tmp_path / "model.pt", ref_model)
    assert tiny[0][0] == "tinyarch" and tiny[0][2] == data.model_kwargs()
    with open(tmp_path / "metrics.csv") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == list(training.METRIC_FIELDS) and len(got) == cfg.epochs
    assert float(got[-1]["train_loss"]) == pytest.approx(rows[-1]["train_loss"], rel=1e-6)
    assert not list((tmp_path / "state").glob("*.pt"))  # the resume state is dropped at the end


def test_schedule_lr_reaches_every_epoch_and_the_warmup_multiplies_it(tiny, tmp_path):
    cfg = config(epochs=3, schedule={"type": "multistep", "milestones": [1, 2], "gamma": 0.5}, lr_warmup_epochs=1)
    data = dataset()
    rows = run(cfg, data, tmp_path, chance_check=False)
    ref_model, ref_rows = reference_train(cfg, data, lrs=[0.2, 0.1, 0.05])
    assert_rows_close(rows, ref_rows)
    assert_weights_close(tmp_path / "model.pt", ref_model)


def test_the_model_file_and_checkpoints_record_what_was_trained(tiny, tmp_path):
    cfg, data = config(epochs=3, checkpoint_epochs=[1, 3], arch_options={"width": 2}), dataset()
    outs = {1: tmp_path / "out" / "e1.pt", "3": tmp_path / "out" / "e3.pt"}
    run(cfg, data, tmp_path, checkpoint_outs=outs, chance_check=False)
    assert tiny[0][1] == {"width": 2}
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert meta == {"arch": "tinyarch", "arch_options": {"width": 2}, "model_kwargs": data.model_kwargs(),
                    "method": "standard", "dataset": "tinyset", "fingerprint": cfg.fingerprint(),
                    "data_fingerprint": data_fingerprint(data), "epoch": 3}
    for e, p in ((1, outs[1]), (3, outs["3"])):
        ck = load_checkpoint(p)
        assert ck["meta"]["epoch"] == e and set(ck) == {"model", "meta"}
    ref = reference_train(config(epochs=1, arch_options={"width": 2}), data)[0]
    assert_weights_close(outs[1], ref)


def test_a_stopped_run_resumes_to_the_same_result(tiny, tmp_path, caplog):
    cfg, data = config(epochs=3, checkpoint_epochs=[2]), dataset()
    full = run(cfg, data, tmp_path / "full", checkpoint_outs={2: tmp_path / "full" / "c2.pt"}, chance_check=False)
    part = tmp_path / "part"
    early = run(cfg, data, part, checkpoint_outs={2: part / "c2.pt"}, stop_after_epoch=2, chance_check=False)
    assert len(early) == 2 and not (part / "model.pt").exists() and (part / "state" / "epoch_2.pt").exists()
    st = load_checkpoint(part / "state" / "last.pt")
    assert st["epoch"] == 2 and len(st["metrics"]) == 2 and "optimizer" in st
    with caplog.at_level("INFO", logger="advfeatures"):
        resumed = run(cfg, data, part, checkpoint_outs={2: part / "c2.pt"}, chance_check=False)
    assert f"resuming standard from {part / 'state' / 'last.pt'} at epoch 2" in messages(caplog)
    assert_rows_close(resumed, [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in full])
    a, b = load_checkpoint(part / "model.pt")["model"], load_checkpoint(tmp_path / "full" / "model.pt")["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-6) for k in a)
    assert torch.equal(load_checkpoint(part / "c2.pt")["model"]["fc.weight"],
                       load_checkpoint(tmp_path / "full" / "c2.pt")["model"]["fc.weight"])


def test_resume_state_of_another_config_or_a_broken_one_is_ignored(tiny, tmp_path, caplog):
    data = dataset()
    run(config(epochs=2), data, tmp_path, stop_after_epoch=1, chance_check=False)
    (tmp_path / "state" / "epoch_9.pt").write_bytes(b"stale")
    with caplog.at_level("INFO", logger="advfeatures"):
        rows = run(config(epochs=2, lr=0.1), data, tmp_path, chance_check=False)
    assert f"ignoring {tmp_path / 'state' / 'last.pt'}: made with a different config or dataset" in messages(caplog)
    assert "resuming" not in caplog.text
    assert_rows_close(rows, reference_train(config(epochs=2, lr=0.1), data)[1])
    assert not (tmp_path / "state" / "epoch_9.pt").exists()
    (tmp_path / "state" / "last.pt").write_bytes(b"not a checkpoint")
    caplog.clear()
    with caplog.at_level("INFO", logger="advfeatures"):
        rows = run(config(epochs=2), data, tmp_path, chance_check=False)
    assert [m for m in messages(caplog) if m.startswith("ignoring resume state: ")
            and str(tmp_path / "state" / "last.pt") in m]
    assert_rows_close(rows, reference_train(config(epochs=2), data)[1])
    # a finished run keeps no state: a rerun on other data trains afresh
    other = dataset(seed=1)
    run(config(epochs=2), other, tmp_path, stop_after_epoch=1, chance_check=False)
    rows = run(config(epochs=2), data, tmp_path, chance_check=False)
    assert_rows_close(rows, reference_train(config(epochs=2), data)[1])


def test_a_missing_epoch_checkpoint_names_the_state_dir(tiny, tmp_path):
    cfg, data = config(epochs=1), dataset()
    with pytest.raises(AdvFeaturesError, match=re.escape(f"epoch_5.pt: epoch checkpoint missing; delete "
                                                         f"{tmp_path / 'state'} and rerun")):
        run(cfg, data, tmp_path, checkpoint_outs={5: tmp_path / "e5.pt"}, chance_check=False)


def test_eps_warmup_scales_the_training_attack_per_step(tiny, tmp_path, monkeypatch):
    seen = []

    def fake(cfg, model, x, y, generator, attack=None):
        seen.append((attack.eps, attack.alpha, attack.steps, len(y)))
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    monkeypatch.setattr(training, "method_loss", fake)
    cfg = config(method="pgd_linf", eps_warmup_epochs=1, epochs=2,
                 attack={"norm": "linf", "eps": 0.3, "alpha": 0.1, "steps": 3})
    run(cfg, dataset(), tmp_path, chance_check=False)
    assert [s[3] for s in seen] == [5, 5, 3] * 2
    for step, (eps, alpha, steps, _) in enumerate(seen):
        f = min(1.0, (step + 1) / 3)
        assert eps == pytest.approx(0.3 * f) and alpha == pytest.approx(0.1 * f) and steps == 3


def test_augmentation_draws_from_the_epoch_generator_after_the_permutation(tiny, tmp_path, monkeypatch):
    seen = []

    def fake(cfg, model, x, y, generator, attack=None):
        seen.append((x.clone(), y.clone()))
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    monkeypatch.setattr(training, "method_loss", fake)
    data = dataset()
    run(config(epochs=1, augmentation="crop_flip"), data, tmp_path, chance_check=False)
    g = torch.Generator().manual_seed(derive_seed(7, "epoch", 0))
    perm = torch.randperm(13, generator=g)
    for b, (x, y) in enumerate(seen):
        idx = perm[5 * b:5 * b + 5]
        assert torch.equal(y, data.y_train[idx])
        assert torch.allclose(x, augment(data.x_train[idx], "crop_flip", g))


def test_train_accuracy_uses_the_logits_method_loss_returns(tiny, tmp_path, monkeypatch):
    def fake(cfg, model, x, y, generator, attack=None):
        logits = model(x)
        wrong = F.one_hot((y + 1) % 3, 3).float() * 100
        return F.cross_entropy(logits, y), wrong

    monkeypatch.setattr(training, "method_loss", fake)
    rows = run(config(epochs=1), dataset(), tmp_path, chance_check=False)
    assert rows[0]["train_acc"] == 0.0 and rows[0]["train_loss"] > 0


# ----------------------------------------------------------------------------- health in the loop


def nan_loss_at(batch_nr: int, epoch_nr: int = 0):
    calls = []

    def fake(cfg, model, x, y, generator, attack=None):
        calls.append(1)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        per_epoch = -(-13 // cfg.batch_size)
        if len(calls) - 1 == epoch_nr * per_epoch + batch_nr:
            loss = loss * float("nan")
        return loss, logits

    return fake, calls


def test_a_non_finite_loss_fails_naming_epoch_batch_method_and_lr(tiny, tmp_path, monkeypatch):
    fake, _ = nan_loss_at(1, epoch_nr=1)
    monkeypatch.setattr(training, "method_loss", fake)
    with pytest.raises(AdvFeaturesError) as e:
        run(config(epochs=2), dataset(), tmp_path, chance_check=False)
    msg = str(e.value)
    assert msg.startswith("non-finite training loss at epoch 2, batch 2 (method standard, lr 0.2); non-finite now: "
                          "fc.weight, fc.bias; the last finite state (last.pt, epoch 1) stays in ")
    assert str(tmp_path / "state") in msg and msg.endswith(training.FIX_DIVERGENCE)


def test_a_non_finite_model_with_a_finite_loss_is_named_as_such(tiny, tmp_path, monkeypatch):
    def fake(cfg, model, x, y, generator, attack=None):
        logits = model(x)
        if len(y) == 3:  # the last batch: a buffer goes bad, the loss stays finite
            model.spare.fill_(float("inf"))
        return F.cross_entropy(logits, y), logits

    monkeypatch.setattr(training, "method_loss", fake)
    with pytest.raises(AdvFeaturesError, match=re.escape(
            "non-finite model after the optimiser step at epoch 1, batch 3 (method standard, lr 0.2); non-finite "
            "now: spare; nothing was saved; ")):
        run(config(epochs=2), dataset(), tmp_path, chance_check=False)
    assert not (tmp_path / "state" / "last.pt").exists()


def test_the_host_reads_the_health_flags_every_20_batches(tiny, tmp_path, monkeypatch):
    fake, calls = nan_loss_at(0)
    monkeypatch.setattr(training, "method_loss", fake)
    with pytest.raises(AdvFeaturesError, match="non-finite training loss at epoch 1, batch 1 "):
        run(config(epochs=1, batch_size=1, eval_pgd_epochs="none"), dataset(n_train=26), tmp_path, chance_check=False)
    assert len(calls) == 20  # not all 26 batches of the epoch
    assert training.HEALTH_SYNC_EVERY == 20


def test_the_chance_check_fails_or_marks_a_degenerate_model(tiny, tmp_path, caplog):
    data = dataset()
    cfg = config(epochs=1, lr=0.0, health={"min_acc_over_chance": 90.0})
    with pytest.raises(AdvFeaturesError, match="standard model at chance"):
        run(cfg, data, tmp_path)
    assert not (tmp_path / "model.pt").exists()
    cfg = config(epochs=1, lr=0.0, health={"min_acc_over_chance": 90.0, "allow_degenerate": True})
    run(cfg, data, tmp_path)
    assert load_checkpoint(tmp_path / "model.pt")["meta"]["degenerate"] is True
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].getMessage().startswith("standard model at chance: clean test accuracy ")
    assert warned[0].getMessage().endswith("; kept because training.health.allow_degenerate is true")
    run(config(epochs=1, health={"min_acc_over_chance": -100.0}), data, tmp_path / "b")
    assert load_checkpoint(tmp_path / "b" / "model.pt")["meta"]["degenerate"] is False


# ----------------------------------------------------------------------------- pieces


def test_finite_flag_covers_parameters_and_floating_buffers():
    m = Tiny()
    assert bool(finite_flag(m)) and finite_flag(m).dim() == 0
    m.count.fill_(2**40)
    assert bool(finite_flag(m))
    m.spare[1] = float("nan")
    assert not bool(finite_flag(m))
    m = Tiny()
    with torch.no_grad():
        m.fc.bias[1] = float("-inf")
    assert not bool(finite_flag(m))


def test_check_above_chance_threshold_and_message():
    rows = [{"test_clean_acc": 0.1, "train_loss": 9.0, "train_acc": 0.0},
            {"test_clean_acc": 0.45, "train_loss": 1.23456, "train_acc": 0.5}]
    cfg = config(health={"min_acc_over_chance": 10.0})
    assert check_above_chance(cfg, rows, 3) is False  # 45 > 33.3 + 10
    with pytest.raises(AdvFeaturesError) as e:
        check_above_chance(config(health={"min_acc_over_chance": 11.7}), rows, 3)
    assert str(e.value) == (
        "standard model at chance: clean test accuracy 45.0% is not above chance 33.3% + "
        "training.health.min_acc_over_chance 11.7 points (final train loss 1.2346, train acc 50.0%); change the "
        "knobs that usually fix it (training.lr 0.2, lr_warmup_epochs 0, eps_warmup_epochs 0, epochs 2): lower the "
        "LR, warm up LR/eps, train longer - or set training.health.allow_degenerate: true to keep it on purpose")
    rows[-1]["test_clean_acc"] = 0.35
    with pytest.raises(AdvFeaturesError):
        check_above_chance(config(health={"min_acc_over_chance": 0.0}), rows, 2)  # 35 <= 50
    rows[-1]["test_clean_acc"] = 0.5
    with pytest.raises(AdvFeaturesError):  # equal is not above
        check_above_chance(config(health={"min_acc_over_chance": 0.0}), rows, 2)
    assert check_above_chance(config(health={"min_acc_over_chance": 0.0, "allow_degenerate": True}), rows, 2)
    assert HealthConfig() == HealthConfig(10.0, False)


def test_lr_schedules_follow_their_formulas():
    c = config(lr=0.4, epochs=10)
    assert [lr_at_epoch(c, e) for e in (0, 9)] == [0.4, 0.4]
    c.schedule = None
    assert lr_at_epoch(c, 3) == 0.4
    c.schedule = {}
    assert lr_at_epoch(c, 3) == 0.4
    c.schedule = {"type": "multistep", "milestones": [2, 5], "gamma": 0.5}
    assert [lr_at_epoch(c, e) for e in (0, 1, 2, 4, 5, 9)] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1, 0.1])
    c.schedule = {"type": "multistep", "milestones": [3]}
    assert [lr_at_epoch(c, e) for e in (2, 3)] == pytest.approx([0.4, 0.04])
    c.schedule = {"type": "multistep"}
    assert lr_at_epoch(c, 7) == pytest.approx(0.4)
    c.schedule = {"type": "step", "step_size": 3, "gamma": 0.5}
    assert [lr_at_epoch(c, e) for e in (0, 2, 3, 5, 6, 9)] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1, 0.05])
    c.schedule = {"type": "step", "step_size": 4}
    assert lr_at_epoch(c, 4) == pytest.approx(0.04)
    c.schedule = {"type": "cosine"}
    for e in (0, 3, 5, 9):
        assert lr_at_epoch(c, e) == pytest.approx(0.2 * (1 + math.cos(math.pi * e / 10)))
    c.schedule = {"type": "linear"}
    with pytest.raises(AdvFeaturesError, match=r"^unknown LR schedule 'linear' \(training\.schedule\.type\)$"):
        lr_at_epoch(c, 0)


def test_warmup_factors_are_linear_per_step_and_capped():
    assert warmup_factor(0, 4, 0) == 1.0 and warmup_factor(5, 4, -1) == 1.0
    assert [warmup_factor(s, 4, 2) for s in (0, 3, 6, 7, 8, 20)] == pytest.approx([1 / 8, 4 / 8, 7 / 8, 1, 1, 1])
    assert warmup_factor(0, 1, 1) == 1.0
    c = config(lr_warmup_epochs=2, eps_warmup_epochs=1)
    assert lr_factor(c, 2, 4) == pytest.approx(3 / 8) and eps_factor(c, 2, 4) == pytest.approx(3 / 4)


def test_scaled_attack_scales_eps_and_alpha_only_below_one():
    a = PGDSettings("l2", 0.5, 0.1, 7, False)
    assert scaled_attack(a, 1.0) is a and scaled_attack(a, 1.5) is a
    assert scaled_attack(a, 0.5) == PGDSettings("l2", 0.25, 0.05, 7, False)


def test_pgd_eval_due_per_setting():
    due = {k: [pgd_eval_due(config(epochs=4, eval_pgd_epochs=k, checkpoint_epochs=[2]), e) for e in (1, 2, 3, 4)]
           for k in training.EVAL_PGD_EPOCHS}
    assert due == {"all": [True] * 4, "checkpoints": [False, True, False, True], "last": [False, False, False, True],
                   "none": [False] * 4}


def test_make_optimizer_passes_the_settings():
    p = [torch.nn.Parameter(torch.zeros(2))]
    o = make_optimizer(config(lr=0.3, momentum=0.7, weight_decay=0.01, nesterov=True), p)
    assert isinstance(o, torch.optim.SGD)
    d = o.param_groups[0]
    assert (d["lr"], d["momentum"], d["weight_decay"], d["nesterov"]) == (0.3, 0.7, 0.01, True)
    o = make_optimizer(config(optimizer="adam", lr=0.3, weight_decay=0.02), p)
    assert isinstance(o, torch.optim.Adam)
    assert (o.param_groups[0]["lr"], o.param_groups[0]["weight_decay"]) == (0.3, 0.02)
    with pytest.raises(AdvFeaturesError, match=r"^unknown optimizer 'rmsprop' \(training\.optimizer\); use sgd or adam$"):
        make_optimizer(config(optimizer="rmsprop"), p)


def test_config_from_dict_builds_nested_settings_and_names_bad_keys():
    c = TrainConfig.from_dict({"attack": {"eps": 0.2}, "eval_attack": {"steps": 3}, "health": {"allow_degenerate": True}})
    assert c.attack == PGDSettings(eps=0.2) and c.eval_attack == PGDSettings(steps=3)
    assert c.health == HealthConfig(10.0, True)
    d = {"attack": {"eps": 0.2}}
    TrainConfig.from_dict(d)
    assert d == {"attack": {"eps": 0.2}}  # the caller's dict is not changed
    with pytest.raises(AdvFeaturesError, match=r"^unknown training\.health option\(s\) \['typo'\]$"):
        TrainConfig.from_dict({"health": {"typo": 1}})
    with pytest.raises(AdvFeaturesError, match=r"^unknown training option\(s\) \['a', 'b'\]$"):
        TrainConfig.from_dict({"b": 1, "a": 2})
    with pytest.raises(AdvFeaturesError, match=re.escape(
            "training.eval_pgd_epochs must be one of ('all', 'checkpoints', 'last', 'none'), got 'some'")):
        TrainConfig.from_dict({"eval_pgd_epochs": "some"})
    with pytest.raises(AdvFeaturesError, match=re.escape(f"unknown training method 'sgd'; choose one of {training.METHODS}")):
        TrainConfig.from_dict({"method": "sgd"})
    assert TrainConfig.from_dict({}) == TrainConfig()
    assert TrainConfig().eval_pgd_epochs == "all" and TrainConfig().beta == 6.0


def test_fingerprint_follows_the_trajectory_only():
    base = config().fingerprint()
    assert len(base) == 16 and re.fullmatch("[0-9a-f]{16}", base)
    for same in ({"checkpoint_epochs": [1]}, {"device": "cuda"}, {"eval_batch_size": 99}, {"eval_pgd_epochs": "all"},
                 {"health": {"allow_degenerate": True}}):
        assert config(**same).fingerprint() == base, same
    for other in ({"lr": 0.3}, {"attack": {"eps": 0.2}}, {"seed": 8}, {"eval_subset": 5}):
        assert config(**other).fingerprint() != base, other


def test_data_fingerprint_follows_the_training_data():
    a = dataset()
    assert data_fingerprint(a) == data_fingerprint(dataset()) and len(data_fingerprint(a)) == 16
    b = dataset()
    b.x_train[0, 0, 0, 0] += 0.01
    c = dataset()
    c.y_train[0] = 2
    d = dataset()
    d.x_test[0] += 0.5
    e = dataset()
    e.x_train = e.x_train.double()
    assert len({data_fingerprint(t) for t in (a, b, c, e)}) == 4 and data_fingerprint(d) == data_fingerprint(a)


def test_augment_is_a_padded_random_crop_and_flip():
    x = torch.rand(5, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(3)
    assert augment(x, "none", g) is x
    for kind in ("crop", "crop_flip"):
        out = augment(x, kind, torch.Generator().manual_seed(3))
        r = torch.Generator().manual_seed(3)
        dx = torch.randint(0, 9, (5,), generator=r)
        dy = torch.randint(0, 9, (5,), generator=r)
        pad = torch.zeros(5, 2, 14, 14)
        pad[:, :, 4:10, 4:10] = x
        ref = torch.stack([pad[i, :, dy[i]:dy[i] + 6, dx[i]:dx[i] + 6] for i in range(5)])
        if kind == "crop_flip":
            flip = torch.rand(5, generator=r) < 0.5
            assert flip.any() and not flip.all()
            ref[flip] = ref[flip].flip(3)
        assert torch.equal(out, ref), kind
        assert (dx != 4).any() and (dx != dy).any()
    with pytest.raises(AdvFeaturesError, match=r"^unknown augmentation 'flip'; use none, crop or crop_flip$"):
        augment(x, "flip", g)


def test_method_loss_standard_and_pgd_use_the_given_or_configured_attack(monkeypatch):
    model = Tiny()
    x, y = dataset().x_train[:4], dataset().y_train[:4]
    loss, logits = method_loss(config(), model, x, y, None)
    assert torch.allclose(loss, F.cross_entropy(model(x), y)) and torch.allclose(logits, model(x))
    seen = []
    x_adv = (x + 0.1).clamp(0, 1)

    def fake(model_, x_, y_, a, g):
        seen.append((a, g))
        return x_adv

    monkeypatch.setattr(training, "adversarial_examples", fake)
    g = torch.Generator()
    for m in ("pgd_linf", "pgd_l2"):
        cfg = config(method=m, attack={"eps": 0.2})
        loss, logits = method_loss(cfg, model, x, y, g)
        assert torch.allclose(loss, F.cross_entropy(model(x_adv), y)) and torch.allclose(logits, model(x_adv))
        assert seen[-1] == (PGDSettings(eps=0.2), g)
        method_loss(cfg, model, x, y, g, PGDSettings(eps=0.05))
        assert seen[-1][0] == PGDSettings(eps=0.05)
    cfg = config()
    cfg.method = "fgsm"
    with pytest.raises(AdvFeaturesError, match=r"^unknown training method 'fgsm'$"):
        method_loss(cfg, model, x, y, g)


def test_trades_and_mart_use_the_given_attack_and_the_generator(monkeypatch):
    model = Tiny()
    x, y = dataset().x_train[:4], dataset().y_train[:4]
    seen = []
    monkeypatch.setattr(training, "trades_examples", lambda m, x_, a, g: seen.append(("t", a, g)) or x_)
    monkeypatch.setattr(training, "adversarial_examples", lambda m, x_, y_, a, g: seen.append(("m", a, g)) or x_)
    g = torch.Generator()
    method_loss(config(method="trades", attack={"eps": 0.2}), model, x, y, g, PGDSettings(eps=0.05))
    method_loss(config(method="mart", attack={"eps": 0.2}), model, x, y, g)
    assert seen == [("t", PGDSettings(eps=0.05), g), ("m", PGDSettings(eps=0.2), g)]


def test_trades_examples_start_from_the_generators_noise_and_run_in_eval_mode(monkeypatch):
    model = Tiny()
    model.train()
    x = dataset().x_train[:4]
    got = {}

    def fake_pgd(model_, x_, y_, **kw):
        got.update(kw, y=y_, training=model_.training)
        return kw["start"]

    monkeypatch.setattr(training, "pgd", fake_pgd)
    a = PGDSettings("l2", 0.5, 0.1, 4, True)
    out = training.trades_examples(model, x, a, torch.Generator().manual_seed(2))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(out, (x + 0.001 * noise).clamp(0, 1))
    assert (got["eps"], got["alpha"], got["steps"], got["norm"], got["random_init"]) == (0.5, 0.1, 4, "l2", False)
    with torch.no_grad():
        p = F.softmax(model(x), 1)
    assert torch.equal(got["y"], p.argmax(1)) and model.training
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    ref = (p * (p.log() - F.log_softmax(logits, 1))).sum()
    assert float(got["loss_fn"](logits, None)) == pytest.approx(float(ref), rel=1e-5)
    # the clean probabilities are taken in eval mode
    model.scale.fill_(2.0)
    seen = []
    orig = model.forward
    model.forward = lambda x_: seen.append(model.training) or orig(x_)
    training.trades_examples(model, x, a, torch.Generator().manual_seed(2))
    assert seen == [False]


# ----------------------------------------------------------------------------- TRADES / MART details


class Lin(torch.nn.Module):
    """logits = W flatten(x) + b on [N, 1, 2, 2] inputs, W and b given."""

    def __init__(self, w, b):
        super().__init__()
        self.fc = torch.nn.Linear(w.shape[1], w.shape[0]).to(w.dtype)
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_(b)

    def forward(self, x):
        return self.fc(x.flatten(1))


def mart_reference(logits_nat, logits_adv, y, beta):
    """Wang et al. 2020's official MART loss, written out per row (float64 or as given)."""
    p_nat, p_adv = logits_nat.softmax(1), logits_adv.softmax(1)
    rows = torch.arange(len(y))
    others = p_adv.clone()
    others[rows, y] = -1.0
    wrong = others.argmax(1)
    bce = -torch.log_softmax(logits_adv, 1)[rows, y] - torch.log(1.0001 - p_adv[rows, wrong] + 1e-12)
    kl = (p_nat * (torch.log(p_nat + 1e-30) - torch.log(p_adv + 1e-12))).sum(1)
    return bce.mean() + beta * (kl * (1.0000001 - p_nat[rows, y])).mean()


def mart_loss(monkeypatch, model, x, x_adv, y, beta=6.0):
    got = {}

    def fake(m, x_, y_, a, g):
        got.update(model=m, x=x_, y=y_)
        return x_adv

    monkeypatch.setattr(training, "adversarial_examples", fake)
    loss, logits = method_loss(config(method="mart", beta=beta), model, x, y, torch.Generator())
    assert got["model"] is model and got["x"] is x and got["y"] is y
    return loss, logits


def test_mart_with_two_classes_matches_the_reference(monkeypatch):
    """Binary MART: the most likely wrong class is the other class (top-2 of 2 classes)."""
    g = torch.Generator().manual_seed(0)
    model = Lin(torch.randn(2, 4, generator=g), torch.zeros(2))
    x = torch.rand(6, 1, 2, 2, generator=g)
    x_adv = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    loss, logits = mart_loss(monkeypatch, model, x, x_adv, y, beta=2.0)
    with torch.no_grad():
        expected = mart_reference(model(x).double(), model(x_adv).double(), y, 2.0)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_mart_with_saturated_adversarial_probabilities(monkeypatch):
    """Adversarial probabilities near 1e-11: the 1e-12 inside log(p_adv + 1e-12) matters."""
    w = torch.tensor([[30.0, 0, 0, 0], [0, 30.0, 0, 0], [0, 0, 1.0, 0]])
    model = Lin(w, torch.zeros(3))
    x = torch.full((4, 1, 2, 2), 0.5)
    x_adv = x.clone()
    x_adv[:, 0, 0, 0] = 1.0  # class 0 wins by 15+: p_adv of class 1 and 2 near e^-15 ... e^-30
    x_adv[:, 0, 0, 1] = 0.1
    y = torch.tensor([0, 1, 2, 1])
    loss, _ = mart_loss(monkeypatch, model, x, x_adv, y)
    with torch.no_grad():
        p_adv = model(x_adv).softmax(1)
        expected = mart_reference(model(x).double(), model(x_adv).double(), y, 6.0)
    assert float(p_adv.min()) < 1e-10
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-4)


def test_mart_in_float64_keeps_the_official_constants(monkeypatch):
    """In float64 the 1e-12 of log(1.0001 - max_{k != y} p_k + 1e-12) is visible when that
    probability is near 1."""
    w = torch.tensor([[40.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]], dtype=torch.float64)
    model = Lin(w, torch.zeros(3, dtype=torch.float64))
    x = torch.full((3, 1, 2, 2), 0.5, dtype=torch.float64)
    x_adv = x.clone()
    x_adv[:, 0, 0, 0] = 1.0  # class 0 near 1 under attack: 1.0001 - p close to 1e-4
    y = torch.tensor([1, 2, 1])
    loss, _ = mart_loss(monkeypatch, model, x, x_adv, y)
    with torch.no_grad():
        expected = mart_reference(model(x), model(x_adv), y, 6.0)
    assert loss.dtype == torch.float64
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-12)


def test_the_losses_and_the_trades_attack_raise_no_warnings(monkeypatch):
    """No deprecated implicit softmax dimension (or any other warning) on the training path."""
    import warnings

    model = Tiny()
    x, y = dataset().x_train[:4], dataset().y_train[:4]
    a = PGDSettings("linf", 0.1, 0.05, 2, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for m in ("trades", "mart"):
            method_loss(config(method=m), model, x, y, torch.Generator().manual_seed(0), a)
        training.trades_examples(model, x, a, torch.Generator().manual_seed(0))


def test_trades_start_noise_follows_the_inputs_dtype_and_stays_in_the_box(monkeypatch):
    got = {}

    def fake_pgd(model_, x_, y_, **kw):
        got.update(kw, model=model_, x=x_)
        return kw["start"]

    monkeypatch.setattr(training, "pgd", fake_pgd)
    model = Tiny().double()
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[:, :, 0] = 0.0
    x[:, :, 1] = 1.0
    out = training.trades_examples(model, x, PGDSettings(), torch.Generator().manual_seed(5))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert out.dtype == torch.float64 and got["model"] is model and got["x"] is x
    assert torch.allclose(out, (x + 0.001 * noise).clamp(0, 1), rtol=0, atol=1e-12)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    assert (out[:, :, 0] == 0).any() and (out[:, :, 0] > 0).any() and (out[:, :, 1] < 1).any()


def test_trades_passes_the_model_and_batch_to_its_attack(monkeypatch):
    model = Tiny()
    x, y = dataset().x_train[:4], dataset().y_train[:4]
    got = {}

    def fake(m, x_, a, g):
        got.update(model=m, x=x_)
        return x_

    monkeypatch.setattr(training, "trades_examples", fake)
    method_loss(config(method="trades"), model, x, y, None)
    assert got["model"] is model and got["x"] is x
    got.clear()

    def fake_adv(m, x_, y_, a, g):
        got.update(model=m, x=x_, y=y_)
        return x_

    monkeypatch.setattr(training, "adversarial_examples", fake_adv)
    method_loss(config(method="pgd_linf"), model, x, y, None)
    assert got["model"] is model and got["x"] is x and got["y"] is y


def test_fingerprints_are_the_documented_hashes():
    """Resume state written by one version is found by the next: the hashes, written out."""
    import hashlib
    import json

    cfg = config(attack={"eps": 0.2}, checkpoint_epochs=[1], eval_batch_size=7)
    d = {k: v for k, v in vars(cfg).items()
         if k not in ("checkpoint_epochs", "device", "eval_batch_size", "eval_pgd_epochs", "health")}
    d["attack"], d["eval_attack"] = vars(d["attack"]), vars(d["eval_attack"])
    expected = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert cfg.fingerprint() == expected
    data = dataset()
    h = hashlib.sha256()
    for t in (data.x_train, data.y_train):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    assert data_fingerprint(data) == h.hexdigest()[:16]


def bad_at(loss_batches=(), model_batches=()):
    """method_loss whose loss is NaN (with finite gradients) at the given global batches and whose
    model goes non-finite (an unused buffer) at others."""
    calls = []

    def fake(cfg, model, x, y, generator, attack=None):
        b = len(calls)
        calls.append(b)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if b in loss_batches:
            loss = loss + torch.tensor(float("nan"))  # a constant: the gradient stays finite
        if b in model_batches:
            model.spare.fill_(float("inf"))
        return loss, logits

    return fake


@pytest.mark.parametrize(("loss_b", "model_b", "expected"), [
    ((0,), (), "non-finite training loss at epoch 1, batch 1 (method standard, lr 0.2); nothing was saved; "),
    ((), (0,), "non-finite model after the optimiser step at epoch 1, batch 1 (method standard, lr 0.2); non-finite "
               "now: spare; nothing was saved; "),
    ((1,), (0,), "non-finite model after the optimiser step at epoch 1, batch 1 (method standard, lr 0.2); non-finite "
                 "now: spare; nothing was saved; "),
    ((1,), (1,), "non-finite training loss at epoch 1, batch 2 (method standard, lr 0.2); non-finite now: spare; "
                 "nothing was saved; "),
    ((0,), (2,), "non-finite training loss at epoch 1, batch 1 (method standard, lr 0.2); non-finite now: spare; "
                 "nothing was saved; "),
])
def test_the_first_non_finite_batch_is_named_loss_first_on_a_tie(tiny, tmp_path, monkeypatch, loss_b, model_b,
                                                                  expected):
    monkeypatch.setattr(training, "method_loss", bad_at(loss_b, model_b))
    with pytest.raises(AdvFeaturesError) as e:
        run(config(epochs=2), dataset(), tmp_path, chance_check=False)
    assert str(e.value) == expected + training.FIX_DIVERGENCE


def test_a_broken_resume_file_is_not_called_the_last_finite_state(tiny, tmp_path, monkeypatch):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "last.pt").write_bytes(b"broken")
    monkeypatch.setattr(training, "method_loss", bad_at(loss_batches=(1,)))
    with pytest.raises(AdvFeaturesError) as e:
        run(config(epochs=2), dataset(), tmp_path, chance_check=False)
    assert str(e.value) == ("non-finite training loss at epoch 1, batch 2 (method standard, lr 0.2); nothing was saved; "
                            + training.FIX_DIVERGENCE)


def test_finite_flag_accepts_huge_finite_weights():
    """The largest absolute value is checked (no squares that overflow float32)."""
    m = Tiny()
    with torch.no_grad():
        m.fc.weight.fill_(3e38)
    assert bool(finite_flag(m))


def test_a_schedule_without_a_type_is_constant():
    c = config(lr=0.4, epochs=10)
    c.schedule = {"milestones": [1], "gamma": 0.5}
    assert [lr_at_epoch(c, e) for e in (0, 5)] == [0.4, 0.4]
