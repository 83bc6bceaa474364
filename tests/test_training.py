"""Unit tests of advfeatures.training on a tiny synthetic dataset (CPU, one thread)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

from advfeatures.attacks.pgd import PGDSettings
from advfeatures.models import build_model
from advfeatures.models.checkpoint import load_checkpoint, model_from_checkpoint
from advfeatures.training import (
    METHODS,
    TrainConfig,
    augment,
    lr_at_epoch,
    method_loss,
    train,
)
from advfeatures.utils import AdvFeaturesError, derive_seed, make_generator

ATTACK = {"norm": "linf", "eps": 0.1, "alpha": 0.05, "steps": 2, "random_start": True}


def cfg_for(method="standard", **kw) -> TrainConfig:
    d = {
        "method": method, "epochs": 3, "batch_size": 32, "lr": 0.05, "checkpoint_epochs": [1, 3],
        "eval_subset": 20, "eval_batch_size": 20, "attack": dict(ATTACK),
        "eval_attack": {**ATTACK, "steps": 2}, "seed": 7,
    }
    d.update(kw)
    return TrainConfig.from_dict(d)


def run_train(cfg, data, out: Path, **kw):
    ckpts = {e: out / f"epoch_{e}.pt" for e in cfg.checkpoint_epochs}
    rows = train(
        cfg, data, model_out=out / "model.pt", metrics_out=out / "metrics.csv",
        checkpoint_outs=ckpts, state_dir=out / "state", **kw,
    )
    return rows, ckpts


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]


def weights(path):
    return load_checkpoint(path)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ----------------------------------------------------------------------------- resume


def test_killed_run_resumes_to_identical_result(tiny_data, tmp_path, caplog):
    # pgd_linf with crop augmentation: shuffling, augmentation and random starts all draw
    cfg = cfg_for("pgd_linf", augmentation="crop")
    full, _ = run_train(cfg, tiny_data, tmp_path / "full")

    part = tmp_path / "killed"
    early = run_train(cfg, tiny_data, part, stop_after_epoch=1)[0]
    assert len(early) == 1 and not (part / "model.pt").exists() and not (part / "metrics.csv").exists()
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        resumed, ckpts = run_train(cfg, tiny_data, part)
    assert "resuming pgd_linf" in caplog.text and "at epoch 1" in caplog.text
    assert strip_time(resumed) == strip_time(full)
    assert_same_weights(weights(part / "model.pt"), weights(tmp_path / "full" / "model.pt"))
    for e in (1, 3):
        assert_same_weights(weights(ckpts[e]), weights(tmp_path / "full" / f"epoch_{e}.pt"))
    assert (part / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")


def test_resume_state_ignored_when_config_changed(tiny_data, tmp_path, caplog):
    out = tmp_path / "run"
    run_train(cfg_for("standard"), tiny_data, out, stop_after_epoch=1)
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        rows, _ = run_train(cfg_for("standard", lr=0.02), tiny_data, out)
    assert "resuming" not in caplog.text and "different config" in caplog.text
    fresh, _ = run_train(cfg_for("standard", lr=0.02), tiny_data, tmp_path / "fresh")
    assert strip_time(rows) == strip_time(fresh)


def test_resume_state_ignored_when_data_changed(tiny_data, tmp_path, caplog):
    out = tmp_path / "run"
    run_train(cfg_for("standard"), tiny_data, out, stop_after_epoch=1)
    other = type(tiny_data)(**{**tiny_data.__dict__, "x_train": tiny_data.x_train.flip(3)})
    # (mirrored training images: the model fails on the unmirrored test set - keep it anyway)
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        run_train(cfg_for("standard", health={"allow_degenerate": True}), other, out)
    assert "resuming" not in caplog.text


def test_completed_run_leaves_no_resume_state(tiny_data, tmp_path):
    """A rerun after success (code or data edited upstream) must train again, not reuse state."""
    run_train(cfg_for("standard", epochs=1, checkpoint_epochs=[1]), tiny_data, tmp_path)
    assert not list((tmp_path / "state").glob("*.pt"))


def test_corrupt_resume_state_starts_fresh(tiny_data, tmp_path, caplog):
    out = tmp_path / "run"
    run_train(cfg_for("standard"), tiny_data, out, stop_after_epoch=1)
    (out / "state" / "last.pt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        rows, _ = run_train(cfg_for("standard"), tiny_data, out)
    assert len(rows) == 3 and "resuming" not in caplog.text and "last.pt" in caplog.text


# ----------------------------------------------------------------------------- failures


def test_nan_loss_from_huge_lr_names_epoch_and_batch(tiny_data, tmp_path):
    with pytest.raises(AdvFeaturesError) as exc:
        run_train(cfg_for("standard", lr=1e30, momentum=0.0), tiny_data, tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and "non-finite training loss at epoch 1, batch " in msg and "lr 1e+30" in msg
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.csv").exists()


def test_nan_in_data_names_the_batch_that_holds_it(tiny_data, tmp_path):
    x = tiny_data.x_train.clone()
    row = 77
    x[row, 0, 3, 3] = float("nan")
    bad = type(tiny_data)(**{**tiny_data.__dict__, "x_train": x})
    cfg = cfg_for("standard")
    # the batch that holds row 77 in epoch 1 (same draw as training's shuffle)
    g = make_generator(derive_seed(cfg.seed, "epoch", 0))
    perm = torch.randperm(len(x), generator=g)
    batch = int((perm == row).nonzero()) // cfg.batch_size + 1
    with pytest.raises(AdvFeaturesError, match=rf"at epoch 1, batch {batch} \(method standard"):
        run_train(cfg, bad, tmp_path)


def test_unknown_method_and_option_rejected():
    with pytest.raises(AdvFeaturesError, match="unknown training method 'sgd_at'"):
        cfg_for("sgd_at")
    with pytest.raises(AdvFeaturesError, match="unknown training option"):
        cfg_for("standard", learning_rate=0.1)


# ----------------------------------------------------------------------------- schedule, augmentation


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ({"type": "constant"}, [0.1, 0.1, 0.1, 0.1]),
        ({"type": "multistep", "milestones": [1, 3], "gamma": 0.1}, [0.1, 0.01, 0.01, 0.001]),
        ({"type": "step", "step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
        ({"type": "cosine"}, [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]),
    ],
)
def test_lr_schedule_per_epoch(schedule, expected):
    cfg = cfg_for(lr=0.1, epochs=4, schedule=schedule)
    assert [lr_at_epoch(cfg, e) for e in range(4)] == pytest.approx(expected)


def test_training_steps_lr_once_per_epoch(tiny_data, tmp_path, monkeypatch):
    """Every optimizer step of an epoch sees that epoch's LR (never changed within an epoch)."""
    seen: list[float] = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    cfg = cfg_for(lr=0.1, schedule={"type": "multistep", "milestones": [1, 2], "gamma": 0.5})
    rows, _ = run_train(cfg, tiny_data, tmp_path)
    per_epoch = math.ceil(len(tiny_data.x_train) / cfg.batch_size)
    assert seen == pytest.approx([0.1] * per_epoch + [0.05] * per_epoch + [0.025] * per_epoch)
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.05, 0.025])


@pytest.mark.parametrize("kind", ["crop", "crop_flip"])
def test_augmentation_shapes_determinism_and_content(kind):
    x = torch.rand(6, 3, 12, 12, generator=make_generator(0))
    a = augment(x, kind, make_generator(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, augment(x, kind, make_generator(1)))
    assert not torch.equal(a, augment(x, kind, make_generator(2)))
    pad = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):  # each output is a 12x12 window of the zero-padded input (maybe flipped)
        windows = [pad[i, :, dy : dy + 12, dx : dx + 12] for dy in range(9) for dx in range(9)]
        flips = [w.flip(2) for w in windows] if kind == "crop_flip" else []
        assert any(torch.equal(a[i], w) for w in windows + flips)
    assert torch.equal(augment(x, "none", make_generator(1)), x)
    with pytest.raises(AdvFeaturesError, match="unknown augmentation 'rotate'"):
        augment(x, "rotate", make_generator(1))


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("method", METHODS)
def test_method_losses_finite_and_mode_restored(method, tiny_data):
    torch.manual_seed(0)
    model = build_model("lenet5", **tiny_data.model_kwargs())
    model.train()
    cfg = cfg_for(method, attack={**ATTACK, "norm": "l2", "eps": 1.0, "alpha": 0.5} if method == "pgd_l2" else ATTACK)
    x, y = tiny_data.x_train[:16], tiny_data.y_train[:16]
    loss, logits = method_loss(cfg, model, x, y, make_generator(0))
    assert loss.ndim == 0 and torch.isfinite(loss) and logits.shape == (16, tiny_data.num_classes)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.training  # adversarial examples are made in eval mode, the update in train mode
    assert all(p.requires_grad for p in model.parameters())
    clean_logits = model(x)
    clean = torch.nn.functional.cross_entropy(clean_logits, y)
    if method == "standard":
        torch.testing.assert_close(loss, clean)
        return
    # the adversarial part of the loss is really there (the exact formulas: tests/test_oracles.py)
    assert not torch.allclose(logits, clean_logits, atol=1e-4)  # logits of adversarial inputs
    if method in ("pgd_linf", "pgd_l2"):
        torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, y))
    else:  # TRADES / MART: beta scales a strictly positive robust term
        cfg.beta = 0.0
        no_robust, _ = method_loss(cfg, model, x, y, make_generator(0))
        assert float(loss.detach()) > float(no_robust.detach()) + 1e-4


def test_adversarial_example_is_made_in_eval_mode(tiny_data, monkeypatch):
    """BatchNorm/dropout models must be attacked in eval mode: record model.training in forward."""
    import advfeatures.attacks.evaluate as tr

    modes = []
    real_pgd = tr.pgd

    def spy(model, *a, **k):
        hook = model.register_forward_pre_hook(lambda m, inp: modes.append(m.training))
        try:
            return real_pgd(model, *a, **k)
        finally:
            hook.remove()

    monkeypatch.setattr(tr, "pgd", spy)
    model = build_model("lenet5", **tiny_data.model_kwargs()).train()
    method_loss(cfg_for("pgd_linf"), model, tiny_data.x_train[:8], tiny_data.y_train[:8], make_generator(0))
    assert modes and not any(modes)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoints_load_with_weights_only(tiny_data, tmp_path):
    cfg = cfg_for("standard", epochs=1, checkpoint_epochs=[1])
    run_train(cfg, tiny_data, tmp_path, stop_after_epoch=None)
    for p in (tmp_path / "model.pt", tmp_path / "epoch_1.pt"):
        ck = torch.load(p, weights_only=True)
        assert ck["meta"]["arch"] == "lenet5" and ck["meta"]["epoch"] == 1
    m = model_from_checkpoint(tmp_path / "model.pt")
    assert not m.training
    x = tiny_data.x_test[:4]
    assert m(x).shape == (4, tiny_data.num_classes)
    # the resume state is plain data too (optimizer state, metrics)
    run_train(cfg_for("standard"), tiny_data, tmp_path / "k", stop_after_epoch=1)
    st = torch.load(tmp_path / "k" / "state" / "last.pt", weights_only=True)
    assert st["epoch"] == 1 and len(st["metrics"]) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_one_line_naming_file(tiny_data, tmp_path, damage):
    run_train(cfg_for("standard", epochs=1, checkpoint_epochs=[1]), tiny_data, tmp_path)
    p = tmp_path / "model.pt"
    blob = p.read_bytes()
    p.write_bytes({"garbage": b"\x00junk" * 50, "truncated": blob[: len(blob) // 2], "empty": b""}[damage])
    with pytest.raises(AdvFeaturesError) as exc:
        model_from_checkpoint(p)
    msg = str(exc.value)
    assert str(p) in msg and "\n" not in msg and "corrupt" in msg
    with pytest.raises(AdvFeaturesError, match="checkpoint not found"):
        model_from_checkpoint(tmp_path / "missing.pt")


def test_attack_config_roundtrip():
    cfg = cfg_for("pgd_l2", attack={"norm": "l2", "eps": 1.5, "alpha": 0.375, "steps": 7, "random_start": False})
    assert isinstance(cfg.attack, PGDSettings) and cfg.attack.norm == "l2" and not cfg.attack.random_start
    assert cfg.fingerprint() == cfg_for("pgd_l2", attack=dict(cfg.attack.__dict__), device="cuda").fingerprint()
    assert cfg.fingerprint() != cfg_for("pgd_l2", attack={**cfg.attack.__dict__, "eps": 1.0}).fingerprint()


# ----------------------------------------------------------------------------- evaluation schedule


@pytest.mark.parametrize(
    "mode, expected", [("all", [1, 2, 3, 4]), ("checkpoints", [2, 4]), ("last", [4]), ("none", [])]
)
def test_pgd_evaluation_epochs_leave_training_unchanged(mode, expected, tiny_data, tmp_path):
    """training.eval_pgd_epochs only thins the PGD column: clean accuracy every epoch, the same
    weights and the same PGD numbers at the epochs that are measured."""
    from advfeatures.training import pgd_eval_due

    cfg = cfg_for("pgd_linf", epochs=4, checkpoint_epochs=[2], eval_pgd_epochs=mode)
    assert [e for e in range(1, 5) if pgd_eval_due(cfg, e)] == expected
    rows, _ = run_train(cfg, tiny_data, tmp_path / mode)
    ref, _ = run_train(cfg_for("pgd_linf", epochs=4, checkpoint_epochs=[2]), tiny_data, tmp_path / "ref")
    assert_same_weights(weights(tmp_path / mode / "model.pt"), weights(tmp_path / "ref" / "model.pt"))
    for r, q in zip(rows, ref):
        assert r["test_clean_acc"] == q["test_clean_acc"]
        if r["epoch"] in expected:
            assert r["test_pgd_acc"] == q["test_pgd_acc"]
        else:
            assert math.isnan(r["test_pgd_acc"])
    with pytest.raises(AdvFeaturesError, match="eval_pgd_epochs"):
        cfg_for(eval_pgd_epochs="some")
