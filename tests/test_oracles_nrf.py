"""Oracle tests of the NRF attack (advfeatures/attacks/nrf.py) on a tiny split network.

Kim, Lee, Ro 2021, Eq. 7-8, as their official code (model/IFP.py) computes it: Adam on the
C&W variable w, x' = lo + (hi - lo) (tanh(w) + 1) / 2, minimising over the batch

    sum_i ||x'_i - x_i||^2 + c sum_i max(margin_i, -kappa)  -/+  ||Z - (Z.detach() + m * g.detach())||_2

with g = d(sum_i max(margin_i, -kappa))/dZ and the last norm over the whole batch.  The reference
below is written out here, independently of advfeatures.attacks.cw.  Small and fast: these are
the tests ``make mutation`` runs for the nrf module (tests/test_attacks.py trains a model).
"""

from __future__ import annotations

import re
import sys

import pytest
import torch
import torch.nn.functional as F

from advfeatures.attacks import nrf as nrf_mod
from advfeatures.attacks.nrf import bottleneck_masks, nr_term, nrf
from advfeatures.utils import AdvFeaturesError

# the tests read scalars of loss terms that carry gradients (NRF's term is differentiated by the
# C&W loop); reading one with float() is intended here
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")


class TinySplit(torch.nn.Module):
    """features: conv 1 -> 3 channels on 1 x 3 x 3 images (Z [N, 3, 3, 3], no ReLU); head: ReLU,
    spatial mean, linear 3 -> 3 classes.  Seeded weights."""

    def __init__(self, seed: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            self.fc.bias.zero_()
            self.conv.bias.mul_(0.3)  # margins about 1: c = 1 fools some rows in a few steps, not all

    def features(self, x):
        return self.conv(x)

    def head(self, z):
        return self.fc(F.relu(z).mean((2, 3)))

    def forward(self, x):
        return self.head(self.features(x))


def batch(n: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 3, 3, generator=g) * 0.6 + 0.2  # inside (0, 1): no pixel at a bound
    model = TinySplit()
    with torch.no_grad():
        y = model(x).argmax(1)  # every row starts correctly classified
    return model, x, y


def half_mask(n: int, channels: int = 3) -> torch.Tensor:
    m = torch.zeros(n, channels, dtype=torch.bool)
    m[:, 0] = True
    m[::2, 2] = True
    return m


def margin(logits, y):
    """Z_y - max_{i != y} Z_i, written out."""
    rows = torch.arange(len(y))
    other = logits.clone()
    other[rows, y] = float("-inf")
    return logits[rows, y] - other.max(1).values


def reference_nrf(model, x, y, mask, *, maximize=True, c=0.1, kappa=0.0, lr=0.1, steps=200, eps=None):
    """Official NRF loop without early stopping; returns (best per row, [(x', cost)] per step)."""
    lo = torch.zeros_like(x) if eps is None else (x - eps).clamp(min=0.0)
    hi = torch.ones_like(x) if eps is None else (x + eps).clamp(max=1.0)
    w = torch.atanh((x - lo) / (hi - lo) * 2 - 1).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best, best_l2 = x.clone(), torch.full((len(x),), float("inf"))
    m = mask.float().view(len(x), -1, 1, 1)
    seen = []
    for _ in range(steps):
        xa = lo + (hi - lo) * (torch.tanh(w) + 1) / 2
        z = model.features(xa)
        logits = model.head(z)
        f = margin(logits, y).clamp(min=-kappa)
        (g,) = torch.autograd.grad(f.sum(), z, retain_graph=True)
        push = (z - (z.detach() + m * g.detach())).flatten().norm()  # gradient 0 at 0, as a subgradient
        l2 = ((xa - x) ** 2).sum((1, 2, 3))
        cost = l2.sum() + c * f.sum() + (-push if maximize else push)
        opt.zero_grad()
        cost.backward()
        opt.step()
        with torch.no_grad():
            better = (logits.argmax(1) != y) & (l2 < best_l2)
            best_l2[better] = l2[better]
            best[better] = xa[better]
        seen.append((xa.detach().clone(), float(cost.detach())))
    return best, seen


def run_traced(model, x, y, mask, **kw):
    seen = []
    out = nrf(model, x, y, mask, trace=lambda step, xa, cost: seen.append((step, xa.clone(), float(cost))), **kw)
    return out, seen


@pytest.mark.parametrize(("maximize", "c", "kappa", "eps", "lr"), [
    (True, 1.0, 0.0, None, 0.1), (False, 3.0, 0.0, None, 0.1), (True, 1.0, 0.3, None, 0.1),
    (True, 3.0, 0.0, 0.3, 0.3)])
def test_nrf_follows_the_reference_loop_iterate_for_iterate(maximize, c, kappa, eps, lr):
    model, x, y = batch()
    mask = half_mask(len(x))
    kw = dict(maximize=maximize, c=c, kappa=kappa, lr=lr, steps=12, eps=eps)
    out, seen = run_traced(model, x, y, mask, stop_checks=0, **kw)
    ref_best, ref_seen = reference_nrf(model, x, y, mask, **kw)
    assert [s for s, _, _ in seen] == list(range(12))
    for (_, xa, cost), (rxa, rcost) in zip(seen, ref_seen):
        assert torch.allclose(xa, rxa, atol=1e-5)
        assert cost == pytest.approx(rcost, rel=1e-5, abs=1e-6)
    assert torch.allclose(out, ref_best, atol=1e-5)
    fooled = (out != x).flatten(1).any(1)
    assert fooled.any() and not fooled.all()  # the test separates kept rows from attacked ones
    if eps is not None:
        assert float((out - x).abs().max()) <= eps + 1e-6


def test_the_push_term_changes_the_iterates_and_its_sign_matters():
    """Against bugs that drop the push or its sign: NRF, NRF2 and CW (empty mask) differ."""
    model, x, y = batch()
    mask = half_mask(len(x))
    kw = dict(c=1.0, steps=12, stop_checks=0)
    a = run_traced(model, x, y, mask, maximize=True, **kw)[1]
    b = run_traced(model, x, y, mask, maximize=False, **kw)[1]
    e = run_traced(model, x, y, torch.zeros_like(mask), maximize=True, **kw)[1]
    assert not torch.allclose(a[-1][1], b[-1][1], atol=1e-3)
    assert not torch.allclose(a[-1][1], e[-1][1], atol=1e-3)


def test_nrf_returns_x_for_rows_it_never_fools_and_a_detached_copy():
    model, x, y = batch()
    out = nrf(model, x, y, half_mask(len(x)), c=1.0, steps=12, stop_checks=0)
    assert not out.requires_grad and out.data_ptr() != x.data_ptr()
    _, seen = reference_nrf(model, x, y, half_mask(len(x)), c=1.0, steps=12)
    with torch.no_grad():
        never = torch.stack([model(xa).argmax(1) == y for xa, _ in seen]).all(0)
    assert never.any() and torch.equal(out[never], x[never])


def test_nrf_stops_early_by_the_cost_rise_rule_with_three_checks_by_default():
    """stop_checks=3 (default): cost compared at every steps // 3 step; with lr 2.0 the cost
    rises and the loop ends before its last step, as the reference's rule says."""
    model, x, y = batch()
    mask = half_mask(len(x))
    kw = dict(c=1.0, lr=2.0, steps=12)
    _, seen = run_traced(model, x, y, mask, **kw)
    _, ref = reference_nrf(model, x, y, mask, **kw)
    prev, stop_at = float("inf"), len(ref) - 1
    for step, (_, cost) in enumerate(ref):
        if step % 4 == 0:
            if cost > prev:
                stop_at = step
                break
            prev = cost
    assert stop_at < 11
    assert len(seen) == stop_at + 1


def test_nrf_passes_its_settings_and_official_defaults_to_the_cw_loop(monkeypatch):
    """Kim et al.'s defaults: c 0.1, kappa 0, Adam lr 0.1, 200 steps, unbounded, 3 checks, frozen start."""
    model, x, y = batch()
    got = {}

    def fake(model_, x_, y_, cs, best, best_l2, **kw):
        got.update(cs=cs.clone(), best=best.clone(), best_l2=best_l2.clone(), **kw)
        return torch.zeros(len(x_), dtype=torch.bool)

    monkeypatch.setattr(nrf_mod, "minimise_cw_cost", fake)
    nrf(model, x, y, half_mask(len(x)))
    assert got["kappa"] == 0.0 and got["lr"] == 0.1 and got["steps"] == 200 and got["stop_checks"] == 3
    assert got["start"] == "frozen" and got["trace"] is None
    assert torch.allclose(got["cs"], torch.full((len(x),), 0.1)) and got["cs"].shape == (len(x),)
    assert torch.equal(got["best"], x) and torch.all(torch.isinf(got["best_l2"]) & (got["best_l2"] > 0))
    assert torch.equal(got["lo"], torch.zeros_like(x)) and torch.equal(got["hi"], torch.ones_like(x))
    nrf(model, x, y, half_mask(len(x)), c=0.7, kappa=0.2, lr=0.05, steps=9, eps=0.1, stop_checks=5, start="clamped")
    assert got["kappa"] == 0.2 and got["lr"] == 0.05 and got["steps"] == 9 and got["stop_checks"] == 5
    assert got["start"] == "clamped" and torch.allclose(got["cs"], torch.full((len(x),), 0.7))
    assert torch.allclose(got["lo"], (x - 0.1).clamp(min=0)) and torch.allclose(got["hi"], (x + 0.1).clamp(max=1))
    # the extra term is nr_term with this call's mask, sign and kappa
    z = model.features(x).detach().requires_grad_(True)
    logits = model.head(z)
    term = got["extra"](z, logits)
    m = half_mask(len(x)).float().view(len(x), 3, 1, 1)
    f = margin(logits, y).clamp(min=-0.2)
    (g,) = torch.autograd.grad(f.sum(), z, retain_graph=True)
    assert float(term.detach()) == pytest.approx(-float((m * g).norm()), rel=1e-5)


def test_nrf_runs_the_model_frozen_in_eval_mode_and_restores_it():
    model, x, y = batch()
    model.train()
    modes = []
    orig = model.features

    def features(xa):
        modes.append((model.training, any(p.requires_grad for p in model.parameters())))
        return orig(xa)

    model.features = features
    nrf(model, x, y, half_mask(len(x)), steps=2, stop_checks=0)
    assert modes and all(m == (False, False) for m in modes)
    assert model.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("kw", "same"), [({"steps": 0}, True), ({"eps": 0.0}, True), ({"steps": 1}, False)])
def test_nrf_without_budget_returns_x_without_calling_the_model(monkeypatch, kw, same):
    model, x, y = batch()
    calls = []
    monkeypatch.setattr(nrf_mod, "minimise_cw_cost", lambda *a, **k: calls.append(1))
    out = nrf(model, x, y, half_mask(len(x)), **kw)
    assert torch.equal(out, x)
    assert (not calls) is same


@pytest.mark.parametrize(("kw", "name"), [({"c": -1.0}, "c"), ({"kappa": float("nan")}, "kappa"),
                                          ({"lr": -0.1}, "lr"), ({"steps": -1}, "steps"), ({"eps": -0.1}, "eps")])
def test_nrf_refuses_a_bad_budget_naming_the_attack_and_the_key(kw, name):
    model, x, y = batch()
    with pytest.raises(AdvFeaturesError, match=rf"^nrf: {name} must be a finite number >= 0"):
        nrf(model, x, y, half_mask(len(x)), **kw)


@pytest.mark.parametrize("shape", [(6,), (5, 3), (6, 3, 1), (7, 3)])
def test_nrf_refuses_a_mask_of_the_wrong_shape_naming_it(shape):
    model, x, y = batch()
    with pytest.raises(AdvFeaturesError, match=re.escape(f"NRF mask has shape {tuple(shape)}; expected [N=6, channels")):
        nrf(model, x, y, torch.ones(shape, dtype=torch.bool), steps=1)


def test_nr_term_is_minus_or_plus_the_batch_norm_of_the_masked_margin_gradient():
    model, x, y = batch()
    mask = half_mask(len(x))
    for kappa in (0.0, 0.4):
        for maximize, sign in ((True, -1.0), (False, 1.0)):
            z = model.features(x).detach().requires_grad_(True)
            logits = model.head(z)
            term = nr_term(z, logits, y, mask, maximize=maximize, kappa=kappa)
            f = margin(logits, y).clamp(min=-kappa)
            (g,) = torch.autograd.grad(f.sum(), z, retain_graph=True)
            mg = g * mask.float().view(len(x), 3, 1, 1)
            assert float(term.detach()) == pytest.approx(sign * float(mg.norm()), rel=1e-5)
            (grad,) = torch.autograd.grad(term, z)
            assert torch.allclose(grad, -sign * mg / mg.norm(), atol=1e-6)  # graph cut: no second order
    z = model.features(x).detach().requires_grad_(True)
    assert float(nr_term(z, model.head(z), y, mask).detach()) < 0  # default: the NRF sign


def test_nr_term_kappa_clamps_the_margin_of_fooled_rows():
    """A row already past -kappa gets no gradient, a row within it does."""
    model, x, y = batch()
    z = model.features(x).detach().requires_grad_(True)
    logits = model.head(z)
    wrong = (y + 1) % 3
    f = margin(logits, wrong)
    kappa = float(-f.median().detach())
    mask = torch.ones(len(x), 3, dtype=torch.bool)
    term = nr_term(z, logits, wrong, mask, maximize=False, kappa=kappa)
    (g,) = torch.autograd.grad(f.clamp(min=-kappa).sum(), z, retain_graph=True)
    assert float(term.detach()) == pytest.approx(float(g.norm()), rel=1e-5)
    assert (g.flatten(1).abs().sum(1) == 0).any() and (g.flatten(1).abs().sum(1) > 0).any()


def test_bottleneck_masks_are_the_boolean_robust_masks_of_distill(monkeypatch):
    from advfeatures import bottleneck

    model, x, y = batch()
    got = {}

    class Res:
        mask_robust = torch.tensor([[1.0, 0.0, 1.0]]).repeat(len(x), 1)

    def fake(model_, x_, y_, **kw):
        got.update(model=model_, x=x_, y=y_, **kw)
        return Res()

    monkeypatch.setattr(bottleneck, "distill", fake)
    g = torch.Generator()
    m = bottleneck_masks(model, x, y, beta=0.3, iterations=7, lr=0.2, generator=g, batch_size=4, threshold="global")
    assert m.dtype == torch.bool and torch.equal(m, Res.mask_robust.bool())
    assert got["model"] is model and got["x"] is x and got["y"] is y
    assert {k: got[k] for k in ("beta", "iterations", "lr", "generator", "batch_size", "threshold")} == {
        "beta": 0.3, "iterations": 7, "lr": 0.2, "generator": g, "batch_size": 4, "threshold": "global"}
    bottleneck_masks(model, x, y, beta=0.3, iterations=7, lr=0.2, generator=None)
    assert got["batch_size"] is None and got["threshold"] == "batch" and got["generator"] is None


def test_bottleneck_masks_without_the_bottleneck_module_names_it(monkeypatch):
    model, x, y = batch()
    monkeypatch.setitem(sys.modules, "advfeatures.bottleneck", None)
    with pytest.raises(AdvFeaturesError, match=r"^NRF needs advfeatures\.bottleneck\.distill for its masks .*; "
                                               r"install the bottleneck module or drop the nrf attacks from attacks\.suite$"):
        bottleneck_masks(model, x, y, beta=0.3, iterations=1, lr=0.1, generator=None)


def test_nr_term_default_kappa_is_zero():
    """Margins of wrong labels in (-1, 0): clamped away at kappa 0 (no push), not at kappa 1."""
    model, x, y = batch()
    z = model.features(x).detach().requires_grad_(True)
    logits = 0.3 * model.head(z)
    wrong = (y + 2) % 3
    f = margin(logits, wrong)
    assert bool(((f < 0) & (f > -1)).all())
    mask = torch.ones(len(x), 3, dtype=torch.bool)
    assert float(nr_term(z, logits, wrong, mask)) == 0.0
    assert float(nr_term(z, logits, wrong, mask, kappa=1.0)) < -1e-3


def test_nr_term_follows_zs_dtype_whatever_the_masks():
    """The mask is cast to Z's dtype: bool, integer or float64 masks give the same float32 term."""
    model, x, y = batch()
    z = model.features(x).detach().requires_grad_(True)
    logits = model.head(z)
    m = half_mask(len(x))
    ref = nr_term(z, logits, y, m)
    for mask in (m.long(), m.double()):
        term = nr_term(z, logits, y, mask)
        assert term.dtype == torch.float32 and float(term.detach()) == pytest.approx(float(ref), rel=1e-6)
        (grad,) = torch.autograd.grad(term, z)
        assert grad.dtype == torch.float32
