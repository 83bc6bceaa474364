"""Unit tests of advfeatures.bottleneck (IB distillation, Kim et al. 2021) on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advfeatures import bottleneck as ib
from advfeatures.models import build_model
from advfeatures.models.base import SplitModel
from advfeatures.stages import distill as stage
from advfeatures.utils import AdvFeaturesError, make_generator

torch.set_num_threads(1)


def tiny_lenet(seed: int = 0) -> SplitModel:
    torch.manual_seed(seed)
    return build_model("lenet5", in_channels=1, num_classes=10, image_size=28, mean=[0.13], std=[0.3])


class HalfBlindHead(SplitModel):
    """Z = x itself; logits = 4 * mean over space of ReLU(Z) of the first ``used`` channels (one per
    class); the other channels are ignored."""

    def __init__(self, channels: int = 6, used: int = 3, classes: int = 3):
        super().__init__([0.0], [1.0])
        self.used, self.split_channels = used, channels
        self.fc = nn.Linear(used, classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(classes, used) * 4.0)
            self.fc.bias.zero_()

    def features(self, x):
        return x

    def head(self, z):
        return self.fc(torch.relu(z[:, : self.used]).mean(dim=(2, 3)))


def _data(n=24, seed=0):
    g = make_generator(seed)
    return torch.rand((n, 1, 28, 28), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_kl_closed_form_matches_monte_carlo():
    # KL[N(0, a) || N(0, b)] = E_p[log p - log q] estimated by sampling from p
    g = make_generator(1)
    for a, b in ((0.5, 2.0), (3.0, 0.7), (1.0, 1.0)):
        s = torch.randn(400_000, generator=g, dtype=torch.float64) * math.sqrt(a)
        logp = -0.5 * s**2 / a - 0.5 * math.log(2 * math.pi * a)
        logq = -0.5 * s**2 / b - 0.5 * math.log(2 * math.pi * b)
        mc = float((logp - logq).mean())
        closed = float(ib.kl_gaussian(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
        assert closed == pytest.approx(mc, abs=5e-3), (a, b)
    # and against numerical integration on a grid (independent of sampling)
    a, b = 0.3, 1.7
    t = np.linspace(-12, 12, 200_001)
    p = np.exp(-0.5 * t**2 / a) / np.sqrt(2 * np.pi * a)
    q = np.exp(-0.5 * t**2 / b) / np.sqrt(2 * np.pi * b)
    num = np.trapezoid(p * (np.log(p + 1e-300) - np.log(q)), t)
    assert float(ib.kl_gaussian(torch.tensor(a), torch.tensor(b))) == pytest.approx(num, rel=1e-4)


def test_kl_guard_zero_variance_is_finite():
    v = ib.kl_gaussian(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]))
    assert torch.isfinite(v).all() and float(v[1]) == 0.0


def test_split_is_exact_and_masks_complement():
    model = tiny_lenet()
    x, y = _data()
    res = ib.distill(model, x, y, iterations=5, batch_size=8, generator=make_generator(0))
    z = ib.features(model, x)
    z_r, z_nr = ib.split_features(z, res.mask_robust)
    assert torch.equal(z_r + z_nr, z)
    # a channel is in exactly one of Z_r, Z_nr
    chan_r = z_r.abs().flatten(2).sum(2) > 0
    assert not (chan_r & ~res.mask_robust).any()
    # the robust rule: sigma^2 > T, T the batch max of sigma_z^2
    assert torch.equal(res.mask_robust, res.sigma**2 > res.threshold.view(-1, 1))
    for b in res.batch.unique():
        sel = res.batch == b
        assert torch.allclose(res.threshold[sel], res.sigma_z[sel].max())


def test_sample_threshold_is_per_row_max():
    model = tiny_lenet()
    x, y = _data(12)
    res = ib.distill(model, x, y, iterations=3, threshold="sample", generator=make_generator(0))
    assert torch.allclose(res.threshold, res.sigma_z.max(1).values)
    ch = ib.distill(model, x, y, iterations=3, threshold="channel", generator=make_generator(0))
    assert torch.equal(ch.mask_robust, ch.sigma**2 > ch.sigma_z)
    with pytest.raises(AdvFeaturesError, match=r"bottleneck\.threshold must be one of .* got 'global'"):
        ib.distill(model, x, y, iterations=1, threshold="global")


def test_beta_zero_sigma_grows_where_ce_allows():
    model = HalfBlindHead()
    x = 0.1 * torch.randn((30, 6, 4, 4), generator=make_generator(3))
    y = torch.arange(30) % 3
    res = ib.distill(model, x, y, beta=0.0, iterations=150, lr=0.1, generator=make_generator(0))
    rows = torch.arange(30)
    init = math.log(2.0)  # softplus(0)
    own = res.sigma[rows, y]  # noise on the true class's channel raises E[ReLU] of its logit: CE falls
    other = res.sigma[:, :3][torch.arange(3).view(1, 3) != y.view(-1, 1)]  # noise there raises a wrong logit
    ignored = res.sigma[:, 3:]
    assert float(own.min()) > 3 * init
    assert float(other.max()) < init
    # CE puts no pressure on ignored channels (zero gradient), nothing else does at beta = 0
    assert torch.allclose(ignored, torch.full_like(ignored, init))
    assert res.mask_robust[rows, y].all() and not res.mask_robust[:, :3][torch.arange(3).view(1, 3) != y.view(-1, 1)].any()
    # with beta > 0 the KL pulls the free channels' sigma^2 to sigma_z^2
    res_kl = ib.distill(model, x, y, beta=50.0, iterations=150, lr=0.1, generator=make_generator(0))
    ratio = (res_kl.sigma[:, 3:] ** 2 / res_kl.sigma_z[:, 3:]).median()
    assert 0.5 < float(ratio) < 2.0


def test_model_stays_in_eval_mode_and_weights_do_not_change():
    model = tiny_lenet()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    orig_head = model.head

    def spy(z):
        seen.append(model.training)
        return orig_head(z)

    model.head = spy
    x, y = _data(10)
    ib.distill(model, x, y, iterations=4, generator=make_generator(0))
    assert seen and not any(seen)
    assert model.training  # previous mode restored afterwards
    assert all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_seeded_determinism_and_seed_matters():
    model = tiny_lenet()
    x, y = _data(16)
    a = ib.distill(model, x, y, iterations=20, batch_size=8, generator=make_generator(7))
    b = ib.distill(model, x, y, iterations=20, batch_size=8, generator=make_generator(7))
    c = ib.distill(model, x, y, iterations=20, batch_size=8, generator=make_generator(8))
    assert torch.equal(a.sigma, b.sigma) and torch.equal(a.mask_robust, b.mask_robust)
    assert not torch.equal(a.sigma, c.sigma)


def test_batches_optimised_side_by_side_are_independent():
    """Changing the rows of IB batch 2 leaves batch 1's sigma untouched (same noise stream)."""
    model = HalfBlindHead()
    x = torch.rand((10, 6, 4, 4), generator=make_generator(2))
    y = torch.randint(0, 3, (10,), generator=make_generator(2))
    x2, y2 = x.clone(), y.clone()
    x2[5:] = torch.rand((5, 6, 4, 4), generator=make_generator(9))
    y2[5:] = (y[5:] + 1) % 3
    a = ib.distill(model, x, y, iterations=15, batch_size=5, generator=make_generator(0))
    b = ib.distill(model, x2, y2, iterations=15, batch_size=5, generator=make_generator(0))
    assert torch.equal(a.sigma[:5], b.sigma[:5])
    assert not torch.equal(a.sigma[5:], b.sigma[5:])


def test_random_mask_keeps_counts():
    m = torch.rand((50, 16), generator=make_generator(0)) > 0.7
    r = ib.random_mask_like(m, make_generator(1))
    assert torch.equal(r.sum(1), m.sum(1))
    assert not torch.equal(r, m)
    assert torch.equal(r, ib.random_mask_like(m, make_generator(1)))


def test_analyse_input_record_and_clean_mask_lookup():
    model = tiny_lenet()
    x, y = _data(12)
    s = ib.IBSettings(iterations=5, batch_size=6)
    seeds = {"true": 1, "pred": 2, "random": 3}
    clean = stage.analyse_input(model, x, y, s, seeds)
    clean["index"] = torch.arange(100, 112)
    assert torch.equal(clean["pred_full"], model(x).argmax(1))
    assert torch.equal(clean["mask_random"].sum(1), clean["mask_robust"].sum(1))
    # attacked rows 105..111 plus one row (200) the clean file lacks: recomputed
    index = torch.tensor([105, 111, 200])
    calls = []

    def recompute(rows):
        calls.append(rows.tolist())
        return stage.masks_on(model, x[:1], y[:1], s, seeds)

    masks, n_new = stage.clean_masks_for(index, {k: clean[k] for k in clean}, recompute)
    assert n_new == 1 and calls == [[2]]
    assert torch.equal(masks[""][0], clean["mask_robust"][5])
    assert torch.equal(masks["_predlabel"][1], clean["mask_robust_predlabel"][11])
    rec = stage.analyse_input(model, x[[5, 11, 0]], y[[5, 11, 0]], s, seeds, clean_masks=masks)
    assert torch.equal(rec["clean_mask_robust"], masks[""])
    z = ib.features(model, x[[5, 11, 0]])
    assert torch.equal(rec["pred_robust_cleanmask"], ib.head_predict(model, ib.split_features(z, masks[""])[0]))


def test_bad_inputs_raise_one_line_errors():
    model = tiny_lenet()
    x, y = _data(4)
    with pytest.raises(AdvFeaturesError, match="labels"):
        ib.distill(model, x, y[:3], iterations=1)
    with pytest.raises(AdvFeaturesError, match="spatial"):
        ib.spatial_variance(torch.zeros(2, 3, 1, 1))
    with pytest.raises(AdvFeaturesError, match="mask shape"):
        ib.split_features(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, dtype=torch.bool))
