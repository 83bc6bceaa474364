"""GPU-readiness flags (issue 8): device choice, bf16 autocast and channels_last on the CPU."""

import pytest
import torch

from advfeatures.data import Dataset
from advfeatures.training import TrainConfig, train
from advfeatures.utils import AdvFeaturesError, resolve_device


def _tiny_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    # four classes that differ by a bright quadrant: learnable in one epoch
    x = torch.rand(n, 1, 16, 16, generator=g) * 0.3
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, :, r * 8 : r * 8 + 8, col * 8 : col * 8 + 8] += 0.6
    x = x.clamp(0, 1)
    return Dataset("tiny", x, y, x[:64], y[:64], list("abcd"), [0.3], [0.3])


def _train(tmp_path, tag, **over):
    cfg = TrainConfig.from_dict(
        {"method": "standard", "epochs": 2, "batch_size": 32, "lr": 0.05, "eval_subset": 64,
         "eval_attack": {"norm": "linf", "eps": 0.05, "alpha": 0.02, "steps": 2}, **over}
    )
    d = tmp_path / tag
    rows = train(cfg, _tiny_data(), model_out=d / "m.pt", metrics_out=d / "m.csv", state_dir=d / "s")
    sd = torch.load(d / "m.pt", weights_only=True)["model"]
    return rows, sd


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(AdvFeaturesError, match="device"):
            resolve_device("cuda")


def test_channels_last_does_not_change_results(tmp_path):
    rows_a, sd_a = _train(tmp_path, "a")
    rows_b, sd_b = _train(tmp_path, "b", channels_last=True)
    for k in sd_a:
        assert torch.allclose(sd_a[k], sd_b[k], atol=1e-4), k
    assert abs(rows_a[-1]["train_loss"] - rows_b[-1]["train_loss"]) < 1e-4


def test_bf16_autocast_stays_close(tmp_path):
    rows_a, _ = _train(tmp_path, "a")
    rows_b, _ = _train(tmp_path, "b", precision="bf16")
    assert rows_a[-1]["test_clean_acc"] > 0.9
    assert abs(rows_a[-1]["test_clean_acc"] - rows_b[-1]["test_clean_acc"]) <= 0.05
    assert abs(rows_a[-1]["train_loss"] - rows_b[-1]["train_loss"]) < 0.1


def test_same_seed_same_weights(tmp_path):
    _, sd_a = _train(tmp_path, "a", seed=3)
    _, sd_b = _train(tmp_path, "b", seed=3)
    _, sd_c = _train(tmp_path, "c", seed=4)
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert any(not torch.equal(sd_a[k], sd_c[k]) for k in sd_a)
