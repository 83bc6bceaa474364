"""Training health (issue 13): no non-finite or chance-level model leaves the training job,
and the remedies (LR / eps warm-up, gradient clipping) do what they say."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import advfeatures.training as tr
from advfeatures.attacks.pgd import PGDSettings
from advfeatures.models.checkpoint import load_checkpoint, nonfinite_tensors, save_checkpoint
from advfeatures.training import (
    TrainConfig,
    eps_factor,
    finite_flag,
    lr_factor,
    scaled_attack,
    train,
    warmup_factor,
)
from advfeatures.utils import AdvFeaturesError

ATTACK = {"norm": "linf", "eps": 0.1, "alpha": 0.05, "steps": 2, "random_start": True}


def cfg_for(method="standard", **kw) -> TrainConfig:
    d = {
        "method": method, "epochs": 3, "batch_size": 32, "lr": 0.05, "checkpoint_epochs": [1, 3],
        "eval_subset": 40, "eval_batch_size": 40, "attack": dict(ATTACK),
        "eval_attack": {**ATTACK, "steps": 2}, "seed": 7,
    }
    d.update(kw)
    return TrainConfig.from_dict(d)


def run_train(cfg, data, out: Path, **kw):
    ckpts = {e: out / f"epoch_{e}.pt" for e in cfg.checkpoint_epochs}
    return train(
        cfg, data, model_out=out / "model.pt", metrics_out=out / "metrics.csv",
        checkpoint_outs=ckpts, state_dir=out / "state", **kw,
    )


def saved_files_all_finite(out: Path) -> list[Path]:
    """Every .pt under ``out`` (outputs and resume state); asserts none holds NaN/inf."""
    files = sorted(out.rglob("*.pt"))
    for f in files:
        assert not nonfinite_tensors(load_checkpoint(f)["model"]), f
    return files


# ----------------------------------------------------------------------------- finiteness


def test_finite_flag_sees_parameters_and_batchnorm_buffers():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert bool(finite_flag(net))
    net[1].running_var[1] = float("nan")  # a buffer, not a parameter
    assert not bool(finite_flag(net))
    assert nonfinite_tensors(net.state_dict()) == ["1.running_var"]
    net[1].running_var.fill_(1.0)
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] = float("-inf")
    assert not bool(finite_flag(net)) and nonfinite_tensors(net.state_dict()) == ["0.weight"]



def test_save_checkpoint_refuses_nonfinite_tensors(tmp_path):
    """The guard lives in save_checkpoint itself: no caller can write a NaN checkpoint."""
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    meta = {"method": "pgd_linf", "epoch": 3}
    save_checkpoint(tmp_path / "ok.pt", {"model": net.state_dict(), "meta": meta})
    assert not nonfinite_tensors(load_checkpoint(tmp_path / "ok.pt")["model"])
    net[1].running_mean[0] = float("inf")
    with pytest.raises(AdvFeaturesError) as err:
        save_checkpoint(tmp_path / "bad.pt", {"model": net.state_dict(), "meta": meta})
    msg = str(err.value)
    assert "\n" not in msg and "bad.pt: non-finite weights at epoch 3 (method pgd_linf)" in msg
    assert "1.running_mean" in msg and "not saved" in msg and "training.lr" in msg
    assert not list(tmp_path.glob("*bad.pt*"))  # neither the file nor a temporary

@pytest.mark.parametrize("method", ["standard", "trades", "mart"])
def test_divergence_on_the_last_step_of_an_epoch_is_never_saved(method, tiny_data, tmp_path):
    """Issue 13's NaN model.pt: one batch per epoch, a huge LR; the loss of that batch is finite
    (computed before the step), the step makes the weights non-finite.  The old per-epoch
    loss check passed and model.pt was written with NaN; now the job fails naming the batch."""
    cfg = cfg_for(method, lr=math.inf, momentum=0.0, epochs=1, checkpoint_epochs=[1], batch_size=1000)
    with pytest.raises(AdvFeaturesError) as exc:
        run_train(cfg, tiny_data, tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"non-finite model after the optimiser step at epoch 1, batch 1 (method {method}" in msg
    assert "lr_warmup_epochs" in msg and "grad_clip_norm" in msg and "nothing was saved" in msg
    assert not saved_files_all_finite(tmp_path)  # no model.pt, no checkpoint, no resume state


def test_forced_divergence_keeps_the_last_finite_checkpoint(tiny_data, tmp_path, caplog):
    """A run whose LR explodes in epoch 2: epoch 1's state stays on disk, nothing non-finite is
    written, and the message names method, epoch, batch and the kept file."""
    cfg = cfg_for("pgd_linf", schedule={"type": "multistep", "milestones": [1], "gamma": 1e38})
    with pytest.raises(AdvFeaturesError) as exc:
        run_train(cfg, tiny_data, tmp_path)
    msg = str(exc.value)
    assert re.search(r"non-finite [a-z ]+ at epoch 2, batch \d+ \(method pgd_linf, lr 5e\+36\)", msg)
    assert "last finite state (last.pt, epoch 1)" in msg
    files = saved_files_all_finite(tmp_path)
    assert {f.name for f in files} == {"last.pt", "epoch_1.pt"}
    assert load_checkpoint(tmp_path / "state" / "last.pt")["epoch"] == 1
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.csv").exists()


def test_health_is_read_within_the_epoch(tiny_data, tmp_path, monkeypatch):
    """The host reads the device flags every HEALTH_SYNC_EVERY batches: a divergence at batch 1
    stops the epoch at the first read, not after the whole epoch."""
    monkeypatch.setattr(tr, "HEALTH_SYNC_EVERY", 2)
    calls = []
    real = tr.method_loss
    monkeypatch.setattr(tr, "method_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(AdvFeaturesError, match="epoch 1, batch 1 "):
        run_train(cfg_for(lr=math.inf, momentum=0.0, batch_size=10), tiny_data, tmp_path)
    assert len(calls) == 2  # of 12 batches in the epoch


# ----------------------------------------------------------------------------- chance


def test_model_at_chance_fails_with_the_knobs(tiny_data, tmp_path):
    cfg = cfg_for("pgd_linf", lr=1e-9, epochs=2, checkpoint_epochs=[2])
    with pytest.raises(AdvFeaturesError) as exc:
        run_train(cfg, tiny_data, tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("pgd_linf model at chance: clean test accuracy ")
    assert "chance 25.0% + training.health.min_acc_over_chance 10 points" in msg
    assert "final train loss " in msg and "train acc " in msg
    assert "training.lr 1e-09, lr_warmup_epochs 0, eps_warmup_epochs 0, epochs 2" in msg
    assert "allow_degenerate" in msg
    assert not (tmp_path / "model.pt").exists()


def test_allow_degenerate_keeps_the_model_and_marks_it(tiny_data, tmp_path, caplog):
    cfg = cfg_for("pgd_linf", lr=1e-9, epochs=2, checkpoint_epochs=[2])
    with pytest.raises(AdvFeaturesError, match="allow_degenerate"):
        run_train(cfg, tiny_data, tmp_path)
    # the same run with allow_degenerate resumes the finished state: no retraining
    keep = cfg_for("pgd_linf", lr=1e-9, epochs=2, checkpoint_epochs=[2],
                   health={"allow_degenerate": True})
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        rows = run_train(keep, tiny_data, tmp_path)
    assert "resuming pgd_linf" in caplog.text and "at epoch 2" in caplog.text
    assert "kept because training.health.allow_degenerate is true" in caplog.text
    assert len(rows) == 2
    assert load_checkpoint(tmp_path / "model.pt")["meta"]["degenerate"] is True


def test_healthy_model_is_not_degenerate_and_margin_is_configurable(tiny_data, tmp_path):
    run_train(cfg_for(epochs=2, checkpoint_epochs=[2]), tiny_data, tmp_path / "ok")
    assert load_checkpoint(tmp_path / "ok" / "model.pt")["meta"]["degenerate"] is False
    # a margin no model can clear (100% - chance): the same healthy run now fails the check
    strict = cfg_for(epochs=2, checkpoint_epochs=[2], health={"min_acc_over_chance": 75})
    with pytest.raises(AdvFeaturesError, match="standard model at chance"):
        run_train(strict, tiny_data, tmp_path / "strict")


def test_synthetic_models_skip_the_chance_check_not_finiteness(tiny_data, tmp_path):
    cfg = cfg_for(lr=1e-9, epochs=1, checkpoint_epochs=[])
    run_train(cfg, tiny_data, tmp_path / "syn", chance_check=False)
    assert "degenerate" not in load_checkpoint(tmp_path / "syn" / "model.pt")["meta"]
    boom = cfg_for(lr=math.inf, momentum=0.0, epochs=1, checkpoint_epochs=[], batch_size=1000)
    with pytest.raises(AdvFeaturesError, match="non-finite model"):
        run_train(boom, tiny_data, tmp_path / "boom", chance_check=False)


def test_unknown_health_option_rejected():
    with pytest.raises(AdvFeaturesError, match=r"unknown training.health option\(s\) \['min_acc'\]"):
        cfg_for(health={"min_acc": 5})


# ----------------------------------------------------------------------------- remedies


def test_warmup_schedule_values():
    # 2 warm-up epochs of 4 steps: (step + 1) / 8, then 1
    assert [warmup_factor(s, 4, 2) for s in range(10)] == pytest.approx(
        [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 1.0]
    )
    assert [warmup_factor(s, 4, 0) for s in range(3)] == [1.0, 1.0, 1.0]
    cfg = cfg_for(eps_warmup_epochs=1, lr_warmup_epochs=0)
    assert eps_factor(cfg, 0, 5) == pytest.approx(0.2) and lr_factor(cfg, 0, 5) == 1.0
    a = scaled_attack(PGDSettings("linf", 0.03, 0.008, 7, True), 0.25)
    assert (a.eps, a.alpha) == pytest.approx((0.0075, 0.002))
    assert (a.steps, a.norm, a.random_start) == (7, "linf", True)


def test_training_uses_the_ramped_eps_and_lr(tiny_data, tmp_path, monkeypatch):
    """120 images, batch 32: 4 steps per epoch; eps ramps over 1 epoch, LR over 2."""
    eps_seen, lr_seen = [], []
    real = tr.method_loss

    def spy(cfg, model, x, y, g, attack=None):
        eps_seen.append(attack.eps)
        return real(cfg, model, x, y, g, attack)

    orig_step = torch.optim.SGD.step

    def step_spy(self, *a, **k):
        lr_seen.append(self.param_groups[0]["lr"])
        return orig_step(self, *a, **k)

    monkeypatch.setattr(tr, "method_loss", spy)
    monkeypatch.setattr(torch.optim.SGD, "step", step_spy)
    cfg = cfg_for("pgd_linf", lr=0.08, eps_warmup_epochs=1, lr_warmup_epochs=2,
                  schedule={"type": "multistep", "milestones": [2], "gamma": 0.5},
                  health={"allow_degenerate": True})
    rows = run_train(cfg, tiny_data, tmp_path)
    per_epoch = math.ceil(len(tiny_data.x_train) / cfg.batch_size)
    assert per_epoch == 4
    assert eps_seen == pytest.approx([0.025, 0.05, 0.075, 0.1] + [0.1] * 8)
    assert lr_seen == pytest.approx([0.01 * k for k in range(1, 9)] + [0.04] * 4)
    assert [r["lr"] for r in rows] == pytest.approx([0.08, 0.08, 0.04])  # the scheduled LR


def test_gradient_clipping_bounds_the_update(tiny_data, tmp_path, monkeypatch):
    norms = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        params = list(params)
        total = real(params, max_norm, *a, **k)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        norms.append((float(total), float(after)))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    cfg = cfg_for(epochs=1, checkpoint_epochs=[], grad_clip_norm=0.01,
                  health={"allow_degenerate": True})
    run_train(cfg, tiny_data, tmp_path)
    assert len(norms) == 4
    assert all(after <= 0.01 * 1.001 for _, after in norms) and max(t for t, _ in norms) > 0.01


# ----------------------------------------------------------------------------- in the workflow


@pytest.mark.slow
def test_train_job_at_chance_fails_with_one_line_and_no_model(repo_copy, tmp_path):
    """The tiny config's 16-step standard model is at chance: with the health check on, the
    train job (not a later stage) fails with the one-line message and leaves no model.pt."""
    from conftest import REP0, Snake

    strict = tmp_path / "strict.yaml"
    strict.write_text("training:\n  common:\n    health: {allow_degenerate: false}\n")
    snake = Snake(repo_copy, tmp_path / "wd", extra_configs=[strict])
    target = f"{REP0}/mnist5k/lenet5/standard/metrics.csv"
    proc = snake.run("--cores", "1", target, check=False, timeout=1500)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("advfeatures error: ")]
    assert lines and "standard model at chance" in lines[0] and "allow_degenerate" in lines[0], out[-3000:]
    assert "Traceback" not in out
    assert not (snake.wd / f"{REP0}/mnist5k/lenet5/standard/model.pt").exists()
    # allow_degenerate (the tiny default) keeps it, marked, without training again
    snake.extra_configs = []
    proc = snake.run("--cores", "1", target, check=False, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    ck = load_checkpoint(snake.wd / f"{REP0}/mnist5k/lenet5/standard/model.pt")
    assert ck["meta"]["degenerate"] is True
