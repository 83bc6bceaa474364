"""Oracle and property tests of the science functions.

Each test compares a function with an independent computation (a reference formula written out
on fixed tensors, torchattacks, statsmodels, scipy) or checks a property a plausible bug breaks.
The bug each one is meant to catch is named in its docstring; ``docs/testing.md`` lists how they
were verified (each bug planted by hand, the test seen failing, the bug reverted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advfeatures import bottleneck, stats
from advfeatures.attacks import cw
from advfeatures.attacks.pgd import _flat_norm, pgd, project
from advfeatures.data import stratified_subset
from advfeatures.mutual_info import bin_patterns, binning_mi

# ----------------------------------------------------------------------------- fixtures


class Linear(torch.nn.Module):
    """A small linear classifier on [N, 3, 4, 4] inputs, weights drawn from a seeded generator
    and scaled so that its softmax is not saturated (float32 and float64 losses agree)."""

    def __init__(self, classes: int = 4, scale: float = 0.3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = torch.nn.Linear(48, classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(classes, 48, generator=g) * scale)
            self.fc.bias.copy_(torch.randn(classes, generator=g) * 0.1)

    def forward(self, x):
        return self.fc(x.flatten(1))


def inputs(n: int = 8, seed: int = 1, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g) * 0.6 + 0.2
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


# ----------------------------------------------------------------------------- PGD, L2


def test_flat_norm_is_one_norm_per_row():
    """Bug: one norm over the whole batch in ``_flat_norm``."""
    t = torch.zeros(3, 2, 2, 2)
    t[0, 0, 0, 0], t[1] = 3.0, 1.0
    t[2, 1, 1, 1], t[2, 0, 0, 0] = 4.0, 3.0
    assert torch.allclose(_flat_norm(t).flatten(), torch.tensor([3.0, math.sqrt(8), 5.0]))


def test_l2_projection_scales_only_rows_outside_the_ball():
    """Bug: the projection without its clamp (every delta pushed onto the sphere)."""
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(6, 3, 4, 4, generator=g)
    delta = delta / _flat_norm(delta) * torch.tensor([0.1, 0.5, 0.99, 1.0, 2.0, 7.0]).view(-1, 1, 1, 1)
    out = project(delta, 1.0, "l2")
    norms = out.flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.tensor([0.1, 0.5, 0.99, 1.0, 1.0, 1.0]), atol=1e-6)
    assert torch.allclose(out[:4], delta[:4])  # inside the ball: unchanged
    # outside: the same direction
    cos = F.cosine_similarity(out[4:].flatten(1), delta[4:].flatten(1), dim=1)
    assert torch.allclose(cos, torch.ones(2), atol=1e-6)


def test_linf_projection_is_a_clamp_per_pixel():
    delta = torch.tensor([-0.5, -0.1, 0.0, 0.05, 0.3]).view(1, 5, 1, 1)
    assert torch.equal(project(delta, 0.1, "linf").flatten(), torch.tensor([-0.1, -0.1, 0.0, 0.05, 0.1]))


@pytest.mark.parametrize(("eps", "alpha", "steps", "sphere"), [
    (0.5, 0.1, 10, True),  # the L2 budget binds, the box does not
    (2.0, 0.4, 7, False),  # the [0, 1] box binds too
    (0.05, 0.2, 3, True),  # alpha > eps: every step projected
])
def test_l2_pgd_equals_torchattacks_pgdl2_step_for_step(eps, alpha, steps, sphere):
    """L2 PGD without random start against torchattacks' PGDL2 (the same algorithm): the same
    adversarial examples, and each row's perturbation within eps in L2 and in [0, 1]."""
    import torchattacks

    model, (x, y) = Linear(), inputs()
    ours = pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, norm="l2", random_init=False)
    theirs = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    norms = (ours - x).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-5).all() and ours.min() >= 0 and ours.max() <= 1
    if sphere:  # every row ends on the sphere: no row keeps a smaller (batch-shared) scale
        assert torch.allclose(norms, torch.full_like(norms, eps), atol=1e-4)


def test_l2_pgd_rows_do_not_share_a_scale():
    """A batch whose rows need different projections: a row that stays inside the ball must keep
    its own step (a batch-wide norm would rescale it with the others)."""
    model, (x, y) = Linear(), inputs(n=4)
    one = torch.stack([pgd(model, x[i : i + 1], y[i : i + 1], eps=0.3, alpha=0.25, steps=2, norm="l2",
                           random_init=False)[0] for i in range(4)])
    batch = pgd(model, x, y, eps=0.3, alpha=0.25, steps=2, norm="l2", random_init=False)
    assert torch.allclose(one, batch, atol=1e-6)


# ----------------------------------------------------------------------------- training losses


def _cfg(method: str, beta: float):
    from advfeatures.training import TrainConfig

    return TrainConfig(method=method, beta=beta)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p || q) = sum_k p_k (ln p_k - ln q_k), written out."""
    return (p * (p.log() - q.log())).sum(1)


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_loss_is_ce_plus_beta_kl_of_clean_to_adversarial(monkeypatch, beta):
    """Zhang et al. 2019, Eq. 5 / their code: CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x'_i)).
    Bugs: beta ignored, the KL's direction swapped."""
    from advfeatures import training

    model, (x, y) = Linear(), inputs()
    x_adv = (x + 0.2 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(5)))).clamp(0, 1)
    monkeypatch.setattr(training, "trades_examples", lambda *a, **k: x_adv)
    loss, logits = training.method_loss(_cfg("trades", beta), model, x, y, None)
    p, q = F.softmax(model(x), 1), F.softmax(model(x_adv), 1)
    expected = F.cross_entropy(model(x), y) + beta * _kl(p, q).mean()
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(logits, model(x_adv))
    if beta:  # the direction matters on these tensors
        assert not torch.allclose(_kl(p, q).mean(), _kl(q, p).mean(), rtol=1e-3)


def test_trades_inner_maximisation_ascends_kl_of_clean_to_adversarial():
    """TRADES' inner loop: sign steps up the gradient of KL(p(x) || p(x')) from x + 0.001 N(0, 1)
    (the generator's draw), projected to eps.  Bug: the KL's direction swapped (identical to
    second order at the start, so it shows after a few steps)."""
    from advfeatures.attacks.pgd import PGDSettings
    from advfeatures.training import trades_examples

    model, (x, _) = Linear(scale=2.0), inputs()
    a = PGDSettings(norm="linf", eps=0.3, alpha=0.1, steps=5)
    ours = trades_examples(model, x, a, torch.Generator().manual_seed(3))
    p = F.softmax(model(x), 1).detach()

    def reference(kl):
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        xa = (x + 0.001 * noise).clamp(0, 1)
        for _ in range(a.steps):
            xa = xa.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(kl(F.softmax(model(xa), 1)).sum(), xa)
            xa = (x + (xa.detach() + a.alpha * grad.sign() - x).clamp(-a.eps, a.eps)).clamp(0, 1)
        return xa

    assert torch.allclose(ours, reference(lambda q: _kl(p, q)), atol=1e-6)
    assert not torch.allclose(ours, reference(lambda q: _kl(q, p)), atol=1e-3)  # the swap is caught


@pytest.mark.parametrize("beta", [0.0, 2.0, 6.0])
def test_mart_loss_matches_the_reference_formula(monkeypatch, beta):
    """Wang et al. 2020 (MART), their code: BCE(p(x'), y) + beta * mean_i KL(p(x_i) || p(x'_i)) *
    (1 - p_y(x_i)), BCE = CE + -ln(1 - max_{k != y} p_k(x')).  Bug: the (1 - p_y) weight flipped."""
    from advfeatures import training

    model, (x, y) = Linear(scale=1.0), inputs()
    x_adv = (x + 0.3 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(7)))).clamp(0, 1)
    monkeypatch.setattr(training, "adversarial_examples", lambda *a, **k: x_adv)
    loss, logits = training.method_loss(_cfg("mart", beta), model, x, y, None)
    p_nat, p_adv = F.softmax(model(x), 1).double(), F.softmax(model(x_adv), 1).double()
    rows = torch.arange(len(y))
    others = p_adv.clone()
    others[rows, y] = -1.0
    wrong = others.argmax(1)  # the most likely wrong class under attack
    bce = -p_adv[rows, y].log() - (1.0001 - p_adv[rows, wrong] + 1e-12).log()
    kl = (p_nat * (p_nat.log() - (p_adv + 1e-12).log())).sum(1)
    expected = bce.mean() + beta * (kl * (1.0000001 - p_nat[rows, y])).mean()
    assert torch.allclose(loss.double(), expected, rtol=1e-5)
    assert torch.allclose(logits, model(x_adv))
    if beta:  # flipping the weight to p_y changes the value on these tensors
        flipped = bce.mean() + beta * (kl * p_nat[rows, y]).mean()
        assert not torch.allclose(flipped, expected, rtol=1e-3)


# ----------------------------------------------------------------------------- C&W


def _run_with_trace(**kw):
    model, (x, y) = Linear(scale=1.0), inputs(n=6)
    seen: list[torch.Tensor] = []
    costs: list[float] = []

    def trace(step, xa, cost):
        seen.append(xa.clone())
        costs.append(float(cost))

    out = cw.cw_l2(model, x, y, trace=trace, stop_checks=0, **kw)
    return model, x, y, out, seen, costs


def test_cw_returns_the_smallest_successful_iterate_not_the_last():
    """Bug: keeping the last success.  A large c and kappa push the iterates well past the
    decision boundary, so later successes are farther away than the first ones."""
    model, x, y, out, seen, _ = _run_with_trace(c=20.0, kappa=5.0, lr=0.05, steps=60)
    it = torch.stack(seen)  # [steps, N, ...]
    with torch.no_grad():
        ok = torch.stack([model(s).argmax(1) != y for s in seen])  # [steps, N]
    l2 = (it - x).flatten(2).pow(2).sum(2)
    assert ok.any(0).all(), "the setting must fool every row"
    l2_ok = torch.where(ok, l2, torch.full_like(l2, math.inf))
    best = l2_ok.argmin(0)
    expected = it[best, torch.arange(len(y))]
    assert torch.allclose(out, expected)
    last = ok.shape[0] - 1 - ok.flip(0).int().argmax(0)  # the last successful step per row
    assert (l2[last, torch.arange(len(y))] > l2_ok.min(0).values + 1e-4).any(), "test setting too easy"


def test_cw_leaves_rows_it_cannot_fool_unchanged():
    model, (x, y) = Linear(scale=1.0), inputs(n=6)
    out = cw.cw_l2(model, x, y, c=1e-6, lr=0.001, steps=3)
    with torch.no_grad():
        still = model(out).argmax(1) == y
    assert torch.equal(out[still], x[still])


@pytest.mark.parametrize("kappa", [0.0, 0.5, 4.0])
def test_cw_cost_is_l2_plus_c_times_margin_clamped_at_minus_kappa(kappa):
    """Each step's cost against the C&W objective written out: sum_i ||x'_i - x_i||^2 +
    c * max(Z_y - max_{k != y} Z_k, -kappa).  Bugs: kappa's sign, the clamp, the margin."""
    c = 3.0
    model, x, y, _, seen, costs = _run_with_trace(c=c, kappa=kappa, lr=0.05, steps=25)
    for xa, cost in zip(seen, costs):
        with torch.no_grad():
            z = model(xa)
        other = z.clone()
        other[torch.arange(len(y)), y] = -math.inf
        margin = z[torch.arange(len(y)), y] - other.max(1).values
        expected = ((xa - x).flatten(1).pow(2).sum(1) + c * margin.clamp_min(-kappa)).sum()
        assert math.isclose(cost, float(expected), rel_tol=1e-5, abs_tol=1e-6)


def test_cw_binary_search_moves_c_towards_the_smallest_successful_value(monkeypatch):
    """Carlini's search: failure multiplies c by 10 until a success brackets it, then bisection
    between the last failure and the smallest success.  A fake optimisation round succeeds
    exactly when c >= the row's threshold.  Bug: the search going the wrong way."""
    thresholds = torch.tensor([3.0, 0.05, 0.1, 1e3])
    calls: list[torch.Tensor] = []

    def fake_round(model, x, y, cs, best, best_l2, **kw):
        calls.append(cs.clone())
        return cs >= thresholds

    monkeypatch.setattr(cw, "minimise_cw_cost", fake_round)
    x = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    cw.cw_l2(Linear(), x, torch.zeros(4, dtype=torch.long), c=0.1, steps=5, search_steps=6)
    got = torch.stack(calls)
    expected = torch.tensor([
        [0.1, 1.0, 10.0, 5.5, 3.25, 2.125],  # fails twice, brackets at 10, bisects (1, 10]
        [0.1, 0.05, 0.025, 0.0375, 0.04375, 0.046875],  # succeeds at once: bisects (0, 0.1]
        [0.1, 0.05, 0.075, 0.0875, 0.09375, 0.096875],  # succeeds at exactly its threshold
        [0.1, 1.0, 10.0, 100.0, 1000.0, 550.0],
    ]).T
    assert torch.allclose(got, expected, rtol=1e-6)


def test_cw_binary_search_improves_on_a_single_c():
    """With a search the returned perturbations are never larger than with its first c alone
    (the best is kept across rounds)."""
    model, (x, y) = Linear(scale=1.0), inputs(n=6)
    single = cw.cw_l2(model, x, y, c=0.05, lr=0.05, steps=40, stop_checks=0)
    searched = cw.cw_l2(model, x, y, c=0.05, lr=0.05, steps=40, stop_checks=0, search_steps=4)
    with torch.no_grad():
        fooled_single = model(single).argmax(1) != y
        fooled = model(searched).argmax(1) != y
    assert (fooled >= fooled_single).all()
    d_single = (single - x).flatten(1).norm(dim=1)
    d = (searched - x).flatten(1).norm(dim=1)
    assert (d[fooled_single] <= d_single[fooled_single] + 1e-6).all()


# ----------------------------------------------------------------------------- information bottleneck


class SplitNet(torch.nn.Module):
    """features -> Z [N, 4, 3, 3]; head records every Z_I it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)
        self.seen: list[torch.Tensor] = []

    def features(self, x):
        return self.conv(x)

    def head(self, z):
        self.seen.append(z.detach().clone())
        return self.fc(F.relu(z).mean((2, 3)))

    def forward(self, x):
        return self.head(self.features(x))


def _z(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    # per-channel spatial spread from 0.1 to 2: some channels below softplus(0)^2 = 0.48, some above
    spread = torch.tensor([0.1, 0.5, 1.0, 2.0]).view(1, 4, 1, 1)
    return torch.randn(n, 4, 3, 3, generator=g) * spread + 1.0


def test_ib_kl_term_is_kl_of_feature_variance_to_noise_variance():
    """Kim et al.: KL = 0.5 (sigma_z^2 / sigma^2 + ln(sigma^2 / sigma_z^2) - 1), mean over (B, C).
    After one iteration the recorded KL is the one at lambda = 0 (sigma = softplus(0) = ln 2).
    Bug: the KL's arguments swapped."""
    model, z = SplitNet(), _z()
    res = bottleneck.distill(model, torch.zeros(5, 1, 3, 3), torch.zeros(5, dtype=torch.long), z=z,
                             iterations=1, beta=1.0, generator=torch.Generator().manual_seed(0))
    vz = z.var(dim=(2, 3))
    s2 = math.log(2.0) ** 2
    expected = (0.5 * (vz / s2 + torch.log(s2 / vz) - 1)).mean()
    swapped = (0.5 * (s2 / vz + torch.log(vz / s2) - 1)).mean()
    assert math.isclose(res.final_kl[0], float(expected), rel_tol=1e-5)
    assert not math.isclose(float(expected), float(swapped), rel_tol=1e-2)


def test_kl_gaussian_matches_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    p, q = torch.tensor([0.1, 1.0, 4.0, 0.3]), torch.tensor([2.0, 1.0, 0.5, 0.3])
    ref = kl_divergence(Normal(0.0, p.sqrt()), Normal(0.0, q.sqrt()))
    assert torch.allclose(bottleneck.kl_gaussian(p, q), ref, atol=1e-6)


def test_ib_noise_is_one_draw_per_sample_and_channel_broadcast_over_space():
    """Z_I = Z + sigma * eps with eps of shape [B, C, 1, 1].  Bug: noise drawn per pixel."""
    model, z = SplitNet(), _z()
    bottleneck.distill(model, torch.zeros(5, 1, 3, 3), torch.zeros(5, dtype=torch.long), z=z, iterations=3,
                       generator=torch.Generator().manual_seed(0))
    assert len(model.seen) == 3
    for zi in model.seen:
        noise = zi - z
        assert noise.abs().amax() > 1e-3  # noise was added
        flat = noise.flatten(2)
        assert torch.allclose(flat, flat[:, :, :1].expand_as(flat), atol=1e-6)  # constant over space
        assert flat[:, :, 0].std() > 1e-3  # and differs between samples / channels


def test_ib_robust_mask_is_sigma_squared_above_the_batch_threshold():
    model, z = SplitNet(), _z()
    res = bottleneck.distill(model, torch.zeros(5, 1, 3, 3), torch.zeros(5, dtype=torch.long), z=z,
                             iterations=20, beta=0.3, generator=torch.Generator().manual_seed(0))
    t = z.var(dim=(2, 3)).max()
    assert torch.equal(res.mask_robust, res.sigma**2 > t)


# ----------------------------------------------------------------------------- binning


def test_bin_edges_floor_not_round():
    """bin index = floor(t / 0.5): 0.1 and 0.4 share bin 0, 0.6 is in bin 1, -0.1 in bin -1.
    Bug: round instead of floor (0.1 and -0.1 together, 0.1 and 0.4 apart)."""
    t = torch.tensor([[0.1], [0.4], [0.6], [-0.1], [0.49], [-0.5]])
    ids = bin_patterns(t, 0.5).tolist()
    same = [[a == b for b in ids] for a in ids]
    expected_bins = np.floor(t.numpy()[:, 0] / 0.5)
    assert same == [[a == b for b in expected_bins] for a in expected_bins]


def _entropy_bits(labels) -> float:
    from scipy.stats import entropy

    _, counts = np.unique(labels, axis=0, return_counts=True)
    return float(entropy(counts, base=2))


@pytest.mark.parametrize("width", [0.5, 0.25, 1.0])
def test_binning_mi_against_scipy_entropy(width):
    """I(X;T) = H(T) and I(T;Y) = H(T) - sum_y p(y) H(T | y) of the floor-binned patterns."""
    g = np.random.default_rng(0)
    t = g.normal(0, 0.8, (200, 3))
    y = g.integers(0, 3, 200)
    bins = np.floor(t / width)
    h = _entropy_bits(bins)
    h_y = sum((y == c).mean() * _entropy_bits(bins[y == c]) for c in np.unique(y))
    ixt, ity = binning_mi(torch.from_numpy(t).float(), torch.from_numpy(y), width)
    assert math.isclose(ixt, h, rel_tol=1e-9) and math.isclose(ity, h - h_y, rel_tol=1e-9, abs_tol=1e-12)


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(30, 50, 45, 120), (7, 200, 3, 40), (90, 100, 400, 1000)])
def test_two_proportions_with_unequal_n_against_statsmodels(k1, n1, k2, n2):
    """Bug: a wrong n (all other tests used n1 = n2)."""
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    r = stats.two_proportions(k1, n1, k2, n2)
    assert math.isclose(r["diff"], k1 / n1 - k2 / n2)
    assert math.isclose(r["p_value"], float(proportions_ztest([k1, k2], [n1, n2])[1]), rel_tol=1e-9)
    lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    assert math.isclose(r["ci_low"], lo, rel_tol=1e-7) and math.isclose(r["ci_high"], hi, rel_tol=1e-7)


def _ols_interaction(x1, y1, x2, y2):
    """statsmodels OLS of y on [1, x, g, x*g] (g = 1 for the first series): the x*g coefficient
    is slope_1 - slope_2."""
    import statsmodels.api as sm

    x = np.concatenate([x1, x2])
    g = np.concatenate([np.ones(len(x1)), np.zeros(len(x2))])
    design = np.column_stack([np.ones_like(x), x, g, x * g])
    return sm.OLS(np.concatenate([y1, y2]), design).fit()


def test_slope_difference_equals_ols_with_interaction_in_a_balanced_design():
    """Equal n, the same x and equal residual variances: the pooled interaction model, separate
    fits and Welch's test all give the same t statistic and n1 + n2 - 4 degrees of freedom, so
    the slope test must match statsmodels' OLS with an interaction exactly (estimate, interval,
    p-value).  Bug: the degrees of freedom."""
    x = np.linspace(0, 1, 8)
    r = np.random.default_rng(3).normal(0, 0.2, 8)
    y1, y2 = 1.0 + 2.0 * x + r, 0.5 + 1.5 * x - r  # -r: the same residual sum of squares
    fit = _ols_interaction(x, y1, x, y2)
    got = stats.slope_difference(x, y1, x, y2)
    assert math.isclose(got["diff"], fit.params[3], rel_tol=1e-9)
    assert math.isclose(got["se"], fit.bse[3], rel_tol=1e-9)
    assert math.isclose(got["p_value"], fit.pvalues[3], rel_tol=1e-6)
    lo, hi = fit.conf_int()[3]
    assert math.isclose(got["ci_low"], lo, rel_tol=1e-7) and math.isclose(got["ci_high"], hi, rel_tol=1e-7)


def test_slope_difference_general_case_follows_its_docstring():
    """Unequal n and variances: the estimate is the interaction coefficient; the standard error
    combines the two separate fits' standard errors (statsmodels); the interval is a t interval
    with the degrees of freedom the function reports (Welch-Satterthwaite when it returns
    ``dof``; otherwise n1 + n2 - 4, as its docstring states)."""
    import statsmodels.api as sm
    from scipy.stats import t

    g = np.random.default_rng(4)
    x1, x2 = np.linspace(0, 1, 7), np.linspace(0, 2, 15)
    y1 = 1 + 2 * x1 + g.normal(0, 0.1, 7)
    y2 = 3 - x2 + g.normal(0, 0.6, 15)
    got = stats.slope_difference(x1, y1, x2, y2)
    assert math.isclose(got["diff"], _ols_interaction(x1, y1, x2, y2).params[3], rel_tol=1e-9)
    b1 = sm.OLS(y1, sm.add_constant(x1)).fit().bse[1]
    b2 = sm.OLS(y2, sm.add_constant(x2)).fit().bse[1]
    assert math.isclose(got["se"], math.hypot(b1, b2), rel_tol=1e-9)
    if "dof" in got:
        v1, v2 = b1**2, b2**2
        dof = (v1 + v2) ** 2 / (v1**2 / 5 + v2**2 / 13)
        assert math.isclose(got["dof"], dof, rel_tol=1e-9)
    else:
        dof = 7 + 15 - 4
    q = t.ppf(0.975, dof)
    assert math.isclose(got["ci_high"] - got["diff"], q * got["se"], rel_tol=1e-9)
    assert math.isclose(got["p_value"], 2 * t.sf(abs(got["diff"]) / got["se"], dof), rel_tol=1e-9)


# ----------------------------------------------------------------------------- stratified subsets


def _largest_remainder(counts: np.ndarray, n: int) -> np.ndarray:
    """Hamilton's method, written out: floors of the exact shares, the remaining seats to the
    largest fractional parts (ties to the earlier class)."""
    share = counts / counts.sum() * n
    quota = np.floor(share).astype(int)
    order = sorted(range(len(counts)), key=lambda i: (-(share[i] - quota[i]), i))
    for i in order[: n - quota.sum()]:
        quota[i] += 1
    return quota


@pytest.mark.parametrize(("counts", "n", "quota"), [
    ([50, 30, 20], 7, [4, 2, 1]),  # shares 3.5, 2.1, 1.4: the remainder to the largest fraction
    ([5, 20, 75], 9, [0, 2, 7]),  # shares 0.45, 1.8, 6.75: largest fractions .8 and .75 win
    ([3, 3, 3, 1], 5, [2, 2, 1, 0]),  # shares 1.5, 1.5, 1.5, 0.5: ties to the earlier class
])
def test_stratified_subset_gives_the_remainder_to_the_largest_fractions(counts, n, quota):
    """Bug: the remainder given to the smallest classes."""
    y = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(y)
    assert list(_largest_remainder(np.array(counts), n)) == quota
    idx = stratified_subset(y, n, seed=1)
    assert len(idx) == n and len(np.unique(idx)) == n and (np.diff(idx) > 0).all()
    assert list(np.bincount(y[idx], minlength=len(counts))) == quota


def test_stratified_subset_is_seeded_and_within_one_of_each_share():
    g = np.random.default_rng(2)
    y = g.integers(0, 7, 503)
    counts = np.bincount(y)
    for n in (1, 10, 77, 250, 502):
        idx = stratified_subset(y, n, seed=5)
        got = np.bincount(y[idx], minlength=7)
        assert got.sum() == n and (np.abs(got - counts / counts.sum() * n) < 1).all()
        assert np.array_equal(idx, stratified_subset(y, n, seed=5))
    assert not np.array_equal(stratified_subset(y, 100, seed=5), stratified_subset(y, 100, seed=6))
    assert np.array_equal(stratified_subset(y, 600, seed=5), np.arange(503))


# ----------------------------------------------------------------------------- PGD: reference loop


def reference_pgd(model, x, y, *, eps, alpha, steps, norm, targeted=False, start=None):
    """Madry et al.'s PGD written out: the iterates x_0 (= ``start`` or x), x_1, ..., x_steps."""
    xa = x.clone() if start is None else start.clone()
    out = [xa]
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa).double(), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
        if norm == "linf":
            step = g.sign()
        else:
            step = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        xa = xa.detach() + (-alpha if targeted else alpha) * step
        d = xa - x
        if norm == "linf":
            d = d.clamp(-eps, eps)
        else:
            n = d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            d = d * torch.clamp(eps / n, max=1.0)
        xa = (x + d).clamp(0, 1)
        out.append(xa)
    return out


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_equals_the_reference_loop(norm, targeted):
    model, (x, y) = Linear(scale=1.0), inputs()
    eps, alpha = (0.1, 0.03) if norm == "linf" else (0.5, 0.2)
    ours = pgd(model, x, y, eps=eps, alpha=alpha, steps=6, norm=norm, random_init=False, targeted=targeted)
    ref = reference_pgd(model, x, y, eps=eps, alpha=alpha, steps=6, norm=norm, targeted=targeted)[-1]
    assert torch.allclose(ours, ref, atol=1e-6)
    # the direction: untargeted raises the loss of y, targeted lowers it
    ce = lambda t: F.cross_entropy(model(t), y, reduction="none")  # noqa: E731
    assert ((ce(ours) < ce(x)) if targeted else (ce(ours) > ce(x))).all()


def test_linf_pgd_and_fgsm_equal_torchattacks_without_random_start():
    import torchattacks

    from advfeatures.attacks.pgd import bim, fgsm

    model, (x, y) = Linear(scale=1.0), inputs()
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=7, random_start=False)(x, y)
    assert torch.allclose(pgd(model, x, y, eps=0.1, alpha=0.02, steps=7, random_init=False), theirs, atol=1e-6)
    assert torch.allclose(bim(model, x, y, eps=0.1, alpha=0.02, steps=7), theirs, atol=1e-6)
    assert torch.allclose(fgsm(model, x, y, eps=0.1), torchattacks.FGSM(model, eps=0.1)(x, y), atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_early_stop_returns_each_rows_first_successful_iterate(norm):
    model, (x, y) = Linear(scale=1.0), inputs(n=16)
    eps, alpha, steps = (0.3, 0.02, 15) if norm == "linf" else (3.0, 0.15, 15)
    its = reference_pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, norm=norm)
    with torch.no_grad():
        ok = torch.stack([model(t).argmax(1) != y for t in its[:-1]])  # success at iterate k < steps
    first = torch.where(ok.any(0), ok.int().argmax(0), torch.full((len(y),), steps))
    expected = torch.stack([its[int(k)][i] for i, k in enumerate(first)])
    ours = pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, norm=norm, random_init=False, early_stop=True)
    assert torch.allclose(ours, expected, atol=1e-6)
    assert 0 < int(ok.any(0).sum()) < len(y) or (first > 0).any(), "the setting must stop some rows early"
    assert (first[ok.any(0)] > 0).any() and (first < steps).any()


def test_early_stop_targeted_stops_when_the_target_is_hit():
    model, (x, _) = Linear(scale=1.0), inputs(n=16)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % 4
    ours = pgd(model, x, t, eps=1.0, alpha=0.05, steps=30, targeted=True, random_init=False, early_stop=True)
    full = pgd(model, x, t, eps=1.0, alpha=0.05, steps=30, targeted=True, random_init=False)
    with torch.no_grad():
        hit = model(ours).argmax(1) == t
    assert hit.any()
    # stopped rows are no farther from x than the full run takes them
    d = (ours - x).abs().flatten(1).amax(1)
    assert (d[hit] <= (full - x).abs().flatten(1).amax(1)[hit] + 1e-6).all()
    assert (d[hit] < 1.0).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_uniform_in_the_ball(norm):
    """Linf: uniform per pixel on [-eps, eps].  L2: uniform in the ball's volume, so
    (||delta|| / eps)^d is uniform on [0, 1] and directions are isotropic."""
    from scipy.stats import kstest

    from advfeatures.attacks.pgd import random_start

    eps, n = 0.3, 4000
    x = torch.zeros(n, 1, 2, 2)
    d = random_start(x, eps, norm, torch.Generator().manual_seed(0)).flatten(1).double()
    if norm == "linf":
        assert d.abs().max() <= eps
        assert kstest(((d + eps) / (2 * eps)).flatten().numpy(), "uniform").pvalue > 1e-3
    else:
        r = d.norm(dim=1) / eps
        assert r.max() <= 1 + 1e-6
        assert kstest((r**4).numpy(), "uniform").pvalue > 1e-3
        assert (d / d.norm(dim=1, keepdim=True)).mean(0).abs().max() < 0.05
    # the same generator seed draws the same start; another seed another
    again = random_start(x, eps, norm, torch.Generator().manual_seed(0)).flatten(1).double()
    other = random_start(x, eps, norm, torch.Generator().manual_seed(1)).flatten(1).double()
    assert torch.equal(d, again) and not torch.equal(d, other)


def test_pgd_with_random_start_stays_in_the_ball_and_box_and_uses_the_generator():
    model, (x, y) = Linear(scale=1.0), inputs()
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        a = pgd(model, x, y, eps=eps, alpha=eps / 4, steps=3, norm=norm, generator=torch.Generator().manual_seed(0))
        b = pgd(model, x, y, eps=eps, alpha=eps / 4, steps=3, norm=norm, generator=torch.Generator().manual_seed(0))
        c = pgd(model, x, y, eps=eps, alpha=eps / 4, steps=3, norm=norm, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b) and not torch.equal(a, c)
        d = (a - x).flatten(1)
        assert (d.abs().amax(1) if norm == "linf" else d.norm(dim=1)).max() <= eps + 1e-6
        assert a.min() >= 0 and a.max() <= 1


def test_pgd_start_is_projected_into_the_ball():
    model, (x, y) = Linear(scale=1.0), inputs()
    far = (x + 0.5).clamp(0, 1)
    out = pgd(model, x, y, eps=0.05, alpha=0.01, steps=1, start=far)
    ref = reference_pgd(model, x, y, eps=0.05, alpha=0.01, steps=1, norm="linf",
                        start=(x + (far - x).clamp(-0.05, 0.05)).clamp(0, 1))[-1]
    assert torch.allclose(out, ref, atol=1e-6)


def test_ce_loss_sum_keeps_the_gradient_of_a_saturated_model():
    """In float32 a confident model's softmax rounds p_y to exactly 1 and the gradient on the
    true logit vanishes (PGD stalls: gradient masking); the float64 loss keeps it."""
    from advfeatures.attacks.pgd import ce_loss_sum

    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 35.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 1])
    rows = torch.arange(2)
    (g,) = torch.autograd.grad(ce_loss_sum(logits, y), logits)
    assert (g[rows, y] < 0).all()
    (g32,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), logits)
    assert (g32[rows, y] == 0).all()  # what the float64 loss avoids
    with torch.no_grad():
        assert math.isclose(float(ce_loss_sum(logits, y)), float(F.cross_entropy(logits.double(), y, reduction="sum")))


def test_pgd_restores_the_models_mode_and_gradients():
    model, (x, y) = Linear(), inputs()
    model.train()
    pgd(model, x, y, eps=0.1, alpha=0.05, steps=2)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- statistics: the rest


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (47, 50), (500, 1000)])
def test_wilson_and_binomial_level_against_statsmodels_and_scipy(k, n):
    from scipy.stats import binomtest
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert stats.wilson(k, n) == pytest.approx((lo, hi), rel=1e-12)
    lo10, hi10 = proportion_confint(k, n, alpha=0.1, method="wilson")
    assert stats.wilson(k, n, alpha=0.1) == pytest.approx((lo10, hi10), rel=1e-12)
    for level in (0.1, 0.5, 0.9):
        assert stats.binom_level(k, n, level) == pytest.approx(binomtest(k, n, level).pvalue, rel=1e-12)
    # a level outside [0, 1] is clipped to it
    assert stats.binom_level(k, n, 1.5) == pytest.approx(binomtest(k, n, 1.0).pvalue, rel=1e-12)
    assert stats.binom_level(k, n, -0.5) == pytest.approx(binomtest(k, n, 0.0).pvalue, rel=1e-12)


def test_empty_samples_give_nan_not_an_error():
    assert all(math.isnan(v) for v in stats.wilson(0, 0))
    assert math.isnan(stats.binom_level(0, 0, 0.5))
    r = stats.two_proportions(1, 0, 3, 10)
    assert all(math.isnan(r[k]) for k in ("diff", "p_value", "ci_low", "ci_high"))
    r = stats.mcnemar_paired(np.zeros(0, bool), np.zeros(0, bool))
    assert r["n"] == 0 and math.isnan(r["diff"]) and math.isnan(r["p_value"])


def _pairs(n11, n10, n01, n00):
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, bool)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, bool)
    return a, b


def test_mcnemar_paired_reproduces_newcombes_worked_example():
    """Newcombe (1998b), method 10, 14 / 5 / 0 / 22 pairs: 0.0115 to 0.2265."""
    r = stats.mcnemar_paired(*_pairs(14, 5, 0, 22))
    assert r["n"] == 41 and r["n10"] == 5 and r["n01"] == 0
    assert r["p_a"] == pytest.approx(19 / 41) and r["p_b"] == pytest.approx(14 / 41)
    assert r["diff"] == pytest.approx(5 / 41)
    assert r["ci_low"] == pytest.approx(0.0115, abs=5e-4) and r["ci_high"] == pytest.approx(0.2265, abs=5e-4)


@pytest.mark.parametrize("cells", [(14, 5, 0, 22), (30, 12, 4, 54), (5, 2, 9, 1), (0, 3, 3, 0)])
def test_mcnemar_paired_p_value_against_statsmodels(cells):
    from statsmodels.stats.contingency_tables import mcnemar

    n11, n10, n01, n00 = cells
    a, b = _pairs(*cells)
    g = np.random.default_rng(0).permutation(len(a))  # row order does not matter
    r = stats.mcnemar_paired(a[g], b[g])
    assert r["p_value"] == pytest.approx(mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue, rel=1e-12)
    assert r["ci_low"] <= r["diff"] <= r["ci_high"]
    swapped = stats.mcnemar_paired(b, a)  # the difference and its interval change sign
    assert swapped["diff"] == pytest.approx(-r["diff"])
    assert (swapped["ci_low"], swapped["ci_high"]) == pytest.approx((-r["ci_high"], -r["ci_low"]), abs=1e-12)


def test_mcnemar_paired_without_discordant_pairs_and_bad_lengths():
    r = stats.mcnemar_paired(*_pairs(10, 0, 0, 5))
    assert r["p_value"] == 1.0 and r["diff"] == 0.0
    from advfeatures.utils import AdvFeaturesError

    with pytest.raises(AdvFeaturesError, match=r"equal lengths, got \(3,\) and \(2,\)"):
        stats.mcnemar_paired(np.ones(3, bool), np.ones(2, bool))


def test_two_proportions_without_variance_has_p_one():
    assert stats.two_proportions(0, 10, 0, 30)["p_value"] == 1.0
    assert stats.two_proportions(10, 10, 30, 30)["p_value"] == 1.0
    assert stats.two_proportions(0, 10, 1, 30)["p_value"] < 1.0


def test_bootstrap_weights_are_seeded_resamples_of_n():
    w = stats.bootstrap_weights(50, 200, seed=3)
    assert w.shape == (50, 200) and w.dtype == np.int64 and (w >= 0).all()
    assert (w.sum(0) == 50).all()  # each resample draws n of the n samples
    assert np.array_equal(w, stats.bootstrap_weights(50, 200, seed=3))
    assert not np.array_equal(w, stats.bootstrap_weights(50, 200, seed=4))
    assert abs(w.mean() - 1.0) < 1e-12 and 0.5 < w.var() < 1.5  # multinomial(n, 1/n): variance near 1
    assert stats.bootstrap_weights(5, 0, seed=0).shape == (5, 0)


def test_percentile_ci_against_numpy_and_without_enough_replicates():
    r = np.random.default_rng(1).normal(size=999)
    assert stats.percentile_ci(r) == pytest.approx(tuple(np.quantile(r, [0.025, 0.975])), rel=1e-12)
    assert stats.percentile_ci(r, alpha=0.1) == pytest.approx(tuple(np.quantile(r, [0.05, 0.95])), rel=1e-12)
    with_nan = np.concatenate([r, [np.nan, np.inf]])
    assert stats.percentile_ci(with_nan) == pytest.approx(stats.percentile_ci(r), rel=1e-12)
    assert all(math.isnan(v) for v in stats.percentile_ci(np.array([1.0, np.nan])))


def test_replicates_round_trip_through_a_csv_cell():
    values = [0.123456, -1.5, 2.0]
    cell = stats.encode_replicates(values)
    assert cell == "0.12346 -1.50000 2.00000"
    assert np.allclose(stats.decode_replicates(cell), [0.12346, -1.5, 2.0])
    for empty in (None, float("nan"), "", "  "):
        assert stats.decode_replicates(empty).size == 0


def test_slope_difference_degenerate_inputs_give_nan_and_exact_fits_give_no_interval():
    assert math.isnan(stats.slope_difference([0, 1], [0, 1], [0, 1, 2], [0, 1, 2])["diff"])
    assert math.isnan(stats.slope_difference([1, 1, 1], [0, 1, 2], [0, 1, 2], [0, 1, 2])["p_value"])
    x = np.arange(5.0)
    exact = stats.slope_difference(x, 2 * x, x, x + 1)  # both fits exact: se 0
    assert exact["diff"] == pytest.approx(1.0) and exact["se"] == pytest.approx(0.0, abs=1e-12)
    assert exact["ci_low"] == pytest.approx(1.0) and exact["ci_high"] == pytest.approx(1.0)
    assert exact["p_value"] == pytest.approx(0.0, abs=1e-12)
    same = stats.slope_difference(x, 2 * x, x, 2 * x)  # identical fits: exactly 0 on any CPU
    assert same["diff"] == pytest.approx(0.0, abs=1e-12) and same["p_value"] == 1.0
    assert exact["slope_1"] == pytest.approx(2.0) and exact["slope_2"] == pytest.approx(1.0)


def _same(a: dict, b: dict) -> bool:
    """Equal dicts, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        (isinstance(v, float) and math.isnan(v) and isinstance(b[k], float) and math.isnan(b[k])) or v == b[k]
        for k, v in a.items())


NAN = math.nan


def test_degenerate_results_keep_every_key():
    """Callers index these dicts by name: a NaN result must carry the same keys as a real one."""
    slope = stats.slope_difference([0, 1], [0, 1], [0, 1, 2], [0, 1, 2])
    assert slope.keys() == stats.slope_difference([0, 1, 2], [0, 1, 3], [0, 1, 2], [0, 2, 3]).keys()
    assert all(math.isnan(v) for v in slope.values())
    assert _same(stats.two_proportions(1, 0, 3, 10), {"diff": NAN, "p_value": NAN, "ci_low": NAN, "ci_high": NAN})
    assert _same(stats.two_proportions(1, 10, 3, 0), {"diff": NAN, "p_value": NAN, "ci_low": NAN, "ci_high": NAN})
    empty = stats.mcnemar_paired(np.zeros(0, bool), np.zeros(0, bool))
    assert _same(empty, {"n": 0, "p_a": NAN, "p_b": NAN, "diff": NAN, "n01": 0, "n10": 0, "p_value": NAN,
                         "ci_low": NAN, "ci_high": NAN})
    assert empty.keys() == stats.mcnemar_paired(*_pairs(1, 1, 1, 1)).keys()


def test_smallest_samples_are_computed_not_dropped():
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

    assert stats.wilson(1, 1) == pytest.approx(proportion_confint(1, 1, method="wilson"), rel=1e-12)
    r = stats.two_proportions(1, 1, 3, 10)
    assert r["diff"] == pytest.approx(0.7)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(
        confint_proportions_2indep(1, 1, 3, 10, method="newcomb", compare="diff"), rel=1e-7)
    r = stats.two_proportions(3, 10, 1, 1)
    assert r["diff"] == pytest.approx(-0.7)
    x = np.array([0.0, 1.0, 2.0])
    assert math.isfinite(stats.slope_difference(x, [0, 1, 3], x, [0, 2, 3])["p_value"])
    one = stats.mcnemar_paired([True], [False])
    assert one["n"] == 1 and one["diff"] == 1.0 and one["n10"] == 1


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(5, 10, 5, 20), (10, 30, 10, 10), (2, 8, 2, 8)])
def test_two_proportions_p_value_when_counts_coincide(k1, n1, k2, n2):
    """Equal counts (not equal proportions) still have a z test: only 0 or n1 + n2 successes in
    all have no variance."""
    from statsmodels.stats.proportion import proportions_ztest

    assert stats.two_proportions(k1, n1, k2, n2)["p_value"] == pytest.approx(
        float(proportions_ztest([k1, k2], [n1, n2])[1]), rel=1e-9)


def test_alpha_reaches_every_interval():
    from statsmodels.stats.proportion import confint_proportions_2indep

    r = stats.two_proportions(30, 50, 45, 120, alpha=0.1)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(
        confint_proportions_2indep(30, 50, 45, 120, method="newcomb", compare="diff", alpha=0.1), rel=1e-7)
    a, b = _pairs(30, 12, 4, 54)
    for alpha in (0.05, 0.1, 0.01):
        got = stats.mcnemar_paired(a, b, alpha=alpha)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx(_newcombe_paired(30, 12, 4, 54, alpha), rel=1e-9)


def _newcombe_paired(n11, n10, n01, n00, alpha=0.05):
    """Newcombe (1998b) method 10, written out from the paper: Wilson limits (l2, u2) of
    A = (n11 + n10) / n and (l3, u3) of B = (n11 + n01) / n, the continuity-corrected phi
    (numerator AD - BC less n / 2 when positive, not below 0; 0 when a margin is empty), and
    L = A - B - sqrt(dl2^2 - 2 phi dl2 du3 + du3^2), U = A - B + sqrt(du2^2 - 2 phi du2 dl3 + dl3^2)."""
    from statsmodels.stats.proportion import proportion_confint

    n = n11 + n10 + n01 + n00
    ka, kb = n11 + n10, n11 + n01
    A, B = ka / n, kb / n
    l2, u2 = proportion_confint(ka, n, alpha=alpha, method="wilson")
    l3, u3 = proportion_confint(kb, n, alpha=alpha, method="wilson")
    num = n11 * n00 - n10 * n01
    if num > 0:
        num = max(num - n / 2, 0.0)
    den = math.sqrt(ka * (n - ka) * kb * (n - kb))
    phi = num / den if den else 0.0
    dl2, du2, dl3, du3 = A - l2, u2 - A, B - l3, u3 - B
    return (A - B - math.sqrt(dl2**2 - 2 * phi * dl2 * du3 + du3**2),
            A - B + math.sqrt(du2**2 - 2 * phi * du2 * dl3 + dl3**2))


@pytest.mark.parametrize("cells", [(14, 5, 0, 22), (30, 12, 4, 54), (5, 2, 9, 1), (0, 3, 3, 0), (2, 10, 12, 1),
                                   (10, 0, 0, 0), (4, 3, 0, 0), (20, 1, 1, 20)])
def test_mcnemar_paired_interval_is_newcombes_method_10(cells):
    """Positive and negative correlation of the pairs, an empty margin, one discordant pair each
    way; the vectors given as 0/1 integers (as bool they must count the same)."""
    a, b = _pairs(*cells)
    got = stats.mcnemar_paired(a.astype(int).tolist(), b.astype(int).tolist())
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(_newcombe_paired(*cells), rel=1e-9, abs=1e-12)
    assert (got["n10"], got["n01"]) == (cells[1], cells[2])


def test_one_discordant_pair_gets_the_exact_test():
    from statsmodels.stats.contingency_tables import mcnemar

    for cells in ((3, 1, 0, 2), (3, 0, 1, 2), (5, 2, 0, 1)):
        n11, n10, n01, n00 = cells
        want = mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue
        assert stats.mcnemar_paired(*_pairs(*cells))["p_value"] == pytest.approx(want, rel=1e-12)


def test_bootstrap_with_one_resample_and_none():
    w = stats.bootstrap_weights(7, 1, seed=0)
    assert w.shape == (7, 1) and w.sum() == 7 and w.dtype == np.int64
    z = stats.bootstrap_weights(7, 0, seed=0)
    assert z.shape == (7, 0) and z.dtype == np.int64


def test_decode_replicates_of_a_number_cell():
    assert np.array_equal(stats.decode_replicates(0.5), np.array([0.5]))
    assert stats.decode_replicates(None).dtype == np.float64


# ----------------------------------------------------------------------------- KDE mutual information


def _kde_reference(t: np.ndarray, y: np.ndarray, s2: float) -> dict[str, tuple[float, float]]:
    """Kolchinsky & Tracey's pairwise-distance bounds as Zhang et al. use them, written out in
    numpy (nats -> bits): H_upper(T) = d/2 + d/2 ln(2 pi s2) + ln N - mean_i lse_j(-|t_i - t_j|^2 / 2 s2),
    H_lower the same with 4 s2 plus d/2 ln(1/4), H(T|X) = d/2 (ln(2 pi s2) + 1)."""
    from scipy.special import logsumexp

    n, d = t.shape

    def h(a, var):
        dist = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
        return d / 2 + d / 2 * math.log(2 * math.pi * var) + math.log(len(a)) - logsumexp(-dist / (2 * var), axis=1).mean()

    h_cond = d / 2 * (math.log(2 * math.pi * s2) + 1)
    out = {}
    for name, var, shift in (("kde_upper", s2, 0.0), ("kde_lower", 4 * s2, d / 2 * math.log(0.25))):
        h_t = h(t, var) + shift
        h_t_y = sum((y == c).mean() * (h(t[y == c], var) + shift) for c in np.unique(y))
        out[name] = ((h_t - h_cond) / math.log(2), (h_t - h_t_y) / math.log(2))
    return out


@pytest.mark.parametrize(("n", "d", "s2", "rows"), [(60, 3, 0.1, None), (45, 7, 0.5, 8), (30, 2, 0.05, 1)])
def test_kde_mi_against_the_published_formula(n, d, s2, rows):
    from advfeatures.mutual_info import kde_mi

    g = np.random.default_rng(n)
    y = g.integers(0, 3, n)
    t = g.normal(0, 0.6, (n, d)) + y[:, None] * 0.4 + 5.0  # an offset: centring must not matter
    got = kde_mi(torch.from_numpy(t), torch.from_numpy(y), s2, block_rows=rows)
    want = _kde_reference(t, y, s2)
    for name in ("kde_upper", "kde_lower"):
        assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-9), name
    assert got["kde_lower"][0] <= got["kde_upper"][0]


def test_kde_bootstrap_replicates_are_the_estimate_on_each_resample():
    """I_b = ln N - sum_i W_ib ln(sum_j W_jb exp(s_ij)) / N: the estimate on the resampled set
    (duplicates as repeated points); an all-ones column is the point estimate."""
    from scipy.special import logsumexp

    from advfeatures.mutual_info import kde_mi

    g = np.random.default_rng(0)
    n = 40
    t, y = g.normal(0, 1, (n, 4)), g.integers(0, 2, n)
    w = np.concatenate([np.ones((n, 1), np.int64), stats.bootstrap_weights(n, 5, seed=1)], axis=1)
    boot: dict = {}
    point = kde_mi(torch.from_numpy(t), torch.from_numpy(y), 0.2, weights=w, boot=boot, block_rows=7)
    for name, var in (("kde_upper", 0.2), ("kde_lower", 0.8)):
        s = -((t[:, None] - t[None]) ** 2).sum(-1) / (2 * var)
        want = [(math.log(n) - (w[:, b] * logsumexp(s, axis=1, b=w[:, b][None, :])).sum() / n) / math.log(2)
                for b in range(w.shape[1])]
        assert boot[name] == pytest.approx(want, rel=1e-9)
        assert boot[name][0] == pytest.approx(point[name][0], rel=1e-12)


def test_binning_bootstrap_is_the_entropy_of_resampled_pattern_counts():
    g = np.random.default_rng(3)
    n = 80
    t, y = g.normal(0, 1, (n, 2)), g.integers(0, 2, n)
    w = stats.bootstrap_weights(n, 4, seed=2)
    boot: dict = {}
    binning_mi(torch.from_numpy(t).float(), torch.from_numpy(y), 0.5, weights=w, boot=boot)
    _, ids = np.unique(np.floor(t.astype(np.float32) / 0.5), axis=0, return_inverse=True)
    for b in range(w.shape[1]):
        counts = np.bincount(ids.ravel(), weights=w[:, b])
        assert boot["binning"][b] == pytest.approx(_entropy_bits(np.repeat(np.arange(len(counts)), counts.astype(int))),
                                                   rel=1e-9)


# ----------------------------------------------------------------------------- bottleneck: the rest


class FlatHead(SplitNet):
    """A head whose logits do not depend on Z: the CE term has no gradient, only the KL acts."""

    def head(self, z):
        self.seen.append(z.detach().clone())
        return self.fc.bias.expand(z.shape[0], -1) + 0.0 * z.sum((1, 2, 3))[:, None]


def test_ib_sigma_squared_converges_to_the_feature_variance_under_the_kl_alone():
    """KL(N(sigma_z^2) || N(sigma^2)) is minimised at sigma^2 = sigma_z^2: with a flat CE the
    optimisation (Adam on lambda, sigma = softplus(lambda)) must get there."""
    model, z = FlatHead(), _z()
    res = bottleneck.distill(model, torch.zeros(5, 1, 3, 3), torch.zeros(5, dtype=torch.long), z=z,
                             iterations=400, beta=1.0, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(res.sigma**2, z.var(dim=(2, 3)), rtol=0.05)
    assert res.final_kl[-1] < 1e-3 and res.final_kl[-1] >= 0


def test_spatial_variance_is_the_unbiased_variance_over_space():
    z = _z()
    want = np.var(z.numpy().reshape(5, 4, -1), axis=2, ddof=1)
    assert np.allclose(bottleneck.spatial_variance(z).numpy(), want, rtol=1e-6)
    from advfeatures.utils import AdvFeaturesError

    with pytest.raises(AdvFeaturesError, match=r"Z must be \[N, C, h, w\], got shape \(5, 4\)"):
        bottleneck.spatial_variance(z[:, :, 0, 0])
    with pytest.raises(AdvFeaturesError, match="spatial size 1x1"):
        bottleneck.spatial_variance(z[:, :, :1, :1])


def test_robust_threshold_modes():
    v = torch.tensor([[1.0, 5.0], [2.0, 3.0], [9.0, 0.5], [0.1, 0.2]])
    batch = torch.tensor([0, 0, 1, 1])
    assert torch.equal(bottleneck.robust_threshold(v, batch, "batch"), torch.tensor([5.0, 5.0, 9.0, 9.0]))
    assert torch.equal(bottleneck.robust_threshold(v, batch, "sample"), torch.tensor([5.0, 3.0, 9.0, 0.2]))
    assert torch.equal(bottleneck.robust_threshold(v, batch, "channel"), v)
    from advfeatures.utils import AdvFeaturesError

    with pytest.raises(AdvFeaturesError, match="threshold must be one of .* got 'global'"):
        bottleneck.robust_threshold(v, batch, "global")


def test_split_features_and_predictions_follow_the_mask():
    model, z = SplitNet(), _z()
    mask = torch.tensor([[1, 0, 1, 0]] * 5, dtype=torch.bool)
    mask[2] = torch.tensor([0, 0, 0, 1])
    z_r, z_nr = bottleneck.split_features(z, mask)
    m = mask[:, :, None, None]
    assert torch.equal(z_r, torch.where(m, z, torch.zeros(()))) and torch.equal(z_nr, torch.where(m, torch.zeros(()), z))
    with torch.no_grad():
        want = {k: model.fc(F.relu(v).mean((2, 3))).argmax(1) for k, v in (("full", z), ("robust", z_r),
                                                                             ("nonrobust", z_nr))}
    got = bottleneck.predict_split(model, z, mask, batch_size=2)
    for k in want:
        assert torch.equal(got[k], want[k]) and got[k].dtype == torch.int64
    assert bottleneck.head_predict(model, z[:0]).shape == (0,)
    from advfeatures.utils import AdvFeaturesError

    with pytest.raises(AdvFeaturesError, match=r"mask shape \(5, 3\) does not match Z \(5, 4\)"):
        bottleneck.split_features(z, mask[:, :3])


def test_features_are_batched_without_changing_them():
    model = SplitNet()
    x = torch.rand(7, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bottleneck.features(model, x, batch_size=2), model.features(x).detach(), atol=1e-6)


def test_random_mask_keeps_each_rows_count_and_draws_positions_uniformly():
    k = torch.tensor([0, 1, 2, 5, 3])
    mask = torch.arange(5)[None, :] < k[:, None]
    mask = mask.repeat(400, 1)  # 2000 rows
    out = bottleneck.random_mask_like(mask, torch.Generator().manual_seed(0))
    assert torch.equal(out.sum(1), mask.sum(1))
    freq = out[1::5].float().mean(0)  # rows with one robust channel: each position about 1/5
    assert torch.allclose(freq, torch.full((5,), 0.2), atol=0.06)
    again = bottleneck.random_mask_like(mask, torch.Generator().manual_seed(0))
    other = bottleneck.random_mask_like(mask, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)


# ----------------------------------------------------------------------------- C&W: the parts


def test_cw_margin_is_true_logit_minus_the_best_other_one():
    logits = torch.tensor([[-1.0, -3.0, -2.0], [0.5, 2.0, 1.0], [4.0, 4.0, -1.0]])
    y = torch.tensor([0, 2, 1])
    assert torch.equal(cw.cw_margin(logits, y), torch.tensor([1.0, -1.0, 0.0]))


def test_box_is_the_unit_box_or_its_intersection_with_the_linf_ball():
    x = torch.tensor([0.0, 0.05, 0.5, 0.97, 1.0])
    lo, hi = cw.box(x, None)
    assert torch.equal(lo, torch.zeros(5)) and torch.equal(hi, torch.ones(5))
    lo, hi = cw.box(x, 0.1)
    assert torch.allclose(lo, torch.tensor([0.0, 0.0, 0.4, 0.87, 0.9]))
    assert torch.allclose(hi, torch.tensor([0.1, 0.15, 0.6, 1.0, 1.0]))


def test_tanh_change_of_variables_round_trips_inside_the_box():
    x = torch.tensor([0.0, 1e-4, 0.3, 0.5, 0.9999, 1.0])
    for eps in (None, 0.05):
        lo, hi = cw.box(x, eps)
        # clamped start (Carlini): pixels at a bound start just inside it, at a finite w
        w = cw.to_tanh_space(x, lo, hi, start="clamped")
        assert torch.isfinite(w).all()
        assert torch.allclose(cw.from_tanh_space(w, lo, hi), x, atol=1e-5)
        # frozen start (the official code): pixels at a bound start at atanh(+-1) = +-inf and stay
        w = cw.to_tanh_space(x, lo, hi, start="frozen")
        at_bound = (x == lo) | (x == hi)
        assert torch.isinf(w[at_bound]).all() and torch.isfinite(w[~at_bound]).all()
        back = cw.from_tanh_space(w, lo, hi)
        assert torch.allclose(back, x, atol=1e-5)
        far = cw.from_tanh_space(torch.tensor([-50.0, 50.0, 0.0, 3.0, -3.0, 0.1]), lo, hi)
        assert (far >= lo).all() and (far <= hi).all()
    assert torch.equal(cw.sq_l2(torch.ones(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)), torch.tensor([12.0, 12.0]))


@pytest.mark.parametrize(("steps", "checks", "every"), [(9, 3, 3), (10, 10, 1), (5, 10, 1), (9, 0, 0)])
def test_cost_rise_stop_checks_every_steps_over_checks(steps, checks, every):
    rule = cw.CostRiseStop(steps, checks)
    costs = [10.0, 9.0, 12.0, 8.0, 7.0, 7.5, 6.0, 6.5, 9.0]
    stopped, prev = None, math.inf
    for s in range(steps):
        if rule(s, torch.tensor(costs[s % len(costs)])) and stopped is None:
            stopped = s
    want = None
    if every:
        for s in range(0, steps, every):
            c = costs[s % len(costs)]
            if c > prev:
                want = s
                break
            prev = c
    assert stopped == want


# ----------------------------------------------------------------------------- from the mutation runs' survivors


def test_stats_edge_cases_from_surviving_mutants():
    from scipy.stats import binomtest

    assert stats.binom_level(1, 1, 0.3) == pytest.approx(binomtest(1, 1, 0.3).pvalue)  # n = 1 is a sample
    # 0/1 vectors as floats (a CSV column) count like booleans
    a, b = _pairs(30, 12, 4, 54)
    assert _same(stats.mcnemar_paired(a.astype(float), b.astype(float)), stats.mcnemar_paired(a, b))
    # two replicates make an interval; a missing replicate (None) is dropped like NaN
    assert stats.percentile_ci([1.0, 3.0]) == pytest.approx((1.05, 2.95))
    assert stats.percentile_ci([1.0, None, 3.0]) == pytest.approx((1.05, 2.95))


@pytest.mark.parametrize("cells", [(0, 1, 1, 0), (1, 0, 0, 1), (2, 1, 1, 2)])
def test_mcnemar_paired_interval_for_the_smallest_tables(cells):
    """n = 2 and 6: the continuity correction takes the whole numerator (phi = 0), or phi is -1."""
    got = stats.mcnemar_paired(*_pairs(*cells))
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(_newcombe_paired(*cells), rel=1e-9, abs=1e-12)


class Recorder(torch.nn.Module):
    """Linear model on the first 24 of 48 inputs (the rest has exactly zero gradient) that records
    the range of every input it is given."""

    def __init__(self):
        super().__init__()
        self.inner = Linear(scale=1.0)
        self.lo, self.hi = math.inf, -math.inf

    def forward(self, x):
        self.lo, self.hi = min(self.lo, float(x.detach().min())), max(self.hi, float(x.detach().max()))
        keep = torch.ones_like(x)
        keep.view(x.shape[0], -1)[:, 24:] = 0
        return self.inner(x * keep)


def edge_inputs(n=8):
    g = torch.Generator().manual_seed(4)
    return (torch.rand(n, 3, 4, 4, generator=g) > 0.5).float(), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("kw", [
    {"norm": "linf", "eps": 0.3, "alpha": 0.1},
    {"norm": "l2", "eps": 2.0, "alpha": 0.5},
    {"norm": "linf", "eps": 0.3, "alpha": 0.1, "early_stop": True},
    {"norm": "l2", "eps": 2.0, "alpha": 0.5, "early_stop": True},
])
def test_the_model_only_ever_sees_images_in_the_unit_box(kw):
    """Attacks work in [0, 1] pixel space: the random start, every iterate and a given start are
    clipped before the model sees them (inputs at 0 and 1, where the clipping binds)."""
    x, y = edge_inputs()
    for start in (None, x + 0.7 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))):
        model = Recorder()
        out = pgd(model, x, y, steps=5, generator=torch.Generator().manual_seed(0), start=start, **kw)
        assert 0.0 <= model.lo and model.hi <= 1.0, (model.lo, model.hi)
        assert out.min() >= 0 and out.max() <= 1


def test_pixels_without_gradient_do_not_move_under_linf_steps():
    """sign(0) = 0: a pixel the loss does not depend on keeps its value (no random start)."""
    x, y = inputs()
    out = pgd(Recorder(), x, y, eps=0.2, alpha=0.05, steps=3, random_init=False)
    assert torch.equal(out.view(8, -1)[:, 24:], x.view(8, -1)[:, 24:])
    assert not torch.equal(out.view(8, -1)[:, :24], x.view(8, -1)[:, :24])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_starts_from_the_drawn_random_start(norm):
    """With alpha = 0 PGD stays at its start: x + random_start(x, eps, norm) from the same draw."""
    from advfeatures.attacks.pgd import random_start

    model, (x, y) = Linear(), inputs()
    out = pgd(model, x, y, eps=0.1, alpha=0.0, steps=1, norm=norm, generator=torch.Generator().manual_seed(0))
    want = (x + random_start(x, 0.1, norm, torch.Generator().manual_seed(0))).clamp(0, 1)
    assert torch.allclose(out, want, atol=1e-7)


def test_zero_steps_return_the_input_even_with_a_random_start():
    model, (x, y) = Linear(), inputs()
    assert torch.equal(pgd(model, x, y, eps=0.1, alpha=0.01, steps=0, generator=torch.Generator().manual_seed(0)), x)


def test_early_stop_writes_back_rows_that_never_succeed():
    model, (x, y) = Linear(scale=1.0), inputs(n=16)
    tiny = pgd(model, x, y, eps=0.01, alpha=0.005, steps=4, random_init=False, early_stop=True)
    full = pgd(model, x, y, eps=0.01, alpha=0.005, steps=4, random_init=False)
    with torch.no_grad():
        standing = model(full).argmax(1) == y
    assert standing.any()
    assert torch.allclose(tiny[standing], full[standing], atol=1e-7)


def test_fgsm_and_bim_pass_targeted_and_early_stop_through():
    from advfeatures.attacks.pgd import bim, fgsm

    model, (x, y) = Linear(scale=1.0), inputs(n=16)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % 4
    ref = reference_pgd(model, x, t, eps=0.1, alpha=0.1, steps=1, norm="linf", targeted=True)[-1]
    assert torch.allclose(fgsm(model, x, t, eps=0.1, targeted=True), ref, atol=1e-6)
    ref = reference_pgd(model, x, t, eps=0.1, alpha=0.02, steps=6, norm="linf", targeted=True)[-1]
    assert torch.allclose(bim(model, x, t, eps=0.1, alpha=0.02, steps=6, targeted=True), ref, atol=1e-6)
    stop = pgd(model, x, y, eps=0.3, alpha=0.02, steps=15, random_init=False, early_stop=True)
    assert torch.allclose(bim(model, x, y, eps=0.3, alpha=0.02, steps=15, early_stop=True), stop, atol=1e-7)
    assert not torch.allclose(stop, pgd(model, x, y, eps=0.3, alpha=0.02, steps=15, random_init=False), atol=1e-4)


def test_random_start_follows_the_inputs_dtype_and_a_batch_of_one():
    from advfeatures.attacks.pgd import random_start

    x = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    for norm in ("linf", "l2"):
        d = random_start(x, 0.2, norm, torch.Generator().manual_seed(0))
        assert d.dtype == torch.float64
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(random_start(x, 0.2, "linf", torch.Generator().manual_seed(0)), (2 * u - 1) * 0.2)
    one = random_start(x[:1], 0.2, "l2", torch.Generator().manual_seed(0))
    assert one.shape == (1, 1, 2, 2) and float(one.norm()) <= 0.2 + 1e-9


def test_project_and_check_budget_name_what_is_wrong():
    with pytest.raises(ValueError, match="unknown norm 'l1'; use 'linf' or 'l2'"):
        project(torch.zeros(1, 2), 1.0, "l1")
    from advfeatures.attacks.pgd import check_budget
    from advfeatures.utils import AdvFeaturesError

    with pytest.raises(AdvFeaturesError, match=r"^cw: steps must be a finite number >= 0, got nan"):
        check_budget("cw", eps=None, steps=float("nan"))


def test_l2_random_start_is_a_gaussian_direction_times_a_radius_u_to_the_1_over_d():
    """The textbook draw, in the input's dtype: g ~ N(0, I), then u ~ U(0, 1) per row;
    delta = g / |g| * eps * u^(1/d)."""
    from advfeatures.attacks.pgd import random_start

    x = torch.rand(5, 2, 2, 2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    u = torch.rand(5, generator=gen, dtype=torch.float64)
    want = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * (0.3 * u ** (1 / 8)).view(-1, 1, 1, 1)
    assert torch.allclose(random_start(x, 0.3, "l2", torch.Generator().manual_seed(0)), want, rtol=1e-12)


# ----------------------------------------------------------------------------- bottleneck: from the mutation run


def test_distill_defaults_are_kim_et_als_settings():
    """The official code: beta 0.3, 200 Adam iterations, lr 0.1."""
    import inspect

    p = inspect.signature(bottleneck.distill).parameters
    assert (p["beta"].default, p["iterations"].default, p["lr"].default) == (0.3, 200, 0.1)


@pytest.mark.parametrize(("kw", "bad"), [({"beta": -0.1}, "-0.1, 200, 0.1"), ({"iterations": -1}, "0.3, -1, 0.1"),
                                         ({"lr": 0.0}, "0.3, 200, 0.0")])
def test_distill_refuses_bad_settings_naming_them(kw, bad):
    from advfeatures.utils import AdvFeaturesError

    with pytest.raises(AdvFeaturesError, match=rf"need beta >= 0, iterations >= 0, lr > 0; got {bad}"):
        bottleneck.distill(SplitNet(), None, torch.zeros(5, dtype=torch.long), z=_z(), **kw)


def test_distill_with_zero_iterations_keeps_the_initial_sigma():
    res = bottleneck.distill(SplitNet(), None, torch.zeros(5, dtype=torch.long), z=_z(), iterations=0)
    assert torch.allclose(res.sigma, torch.full((5, 4), math.log(2.0)))
    assert res.final_ce == [] and res.final_kl == []


def test_ib_noise_is_the_generators_draw_added_to_z():
    """Iteration 0: Z_I = Z + softplus(0) * eps, eps = the generator's first [B, C, 1, 1] draw."""
    model, z = SplitNet(), _z()
    bottleneck.distill(model, None, torch.zeros(5, dtype=torch.long), z=z, iterations=1,
                       generator=torch.Generator().manual_seed(7))
    eps = torch.randn((5, 4, 1, 1), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(model.seen[0], z + math.log(2.0) * eps, atol=1e-6)


def test_distill_without_a_generator_uses_seed_zero():
    y = torch.zeros(5, dtype=torch.long)
    a = bottleneck.distill(SplitNet(), None, y, z=_z(), iterations=3)
    b = bottleneck.distill(SplitNet(), None, y, z=_z(), iterations=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.sigma, b.sigma)


def test_distill_result_records_its_settings_and_per_batch_losses():
    """One IB iteration from lambda = 0, with the noise known: the recorded CE and KL per batch are
    the batch means of the written-out terms."""
    model, z = SplitNet(), _z(6)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    res = bottleneck.distill(model, None, y, z=z, iterations=1, beta=0.7, batch_size=3, threshold="sample",
                             generator=torch.Generator().manual_seed(2))
    eps = torch.randn((6, 4, 1, 1), generator=torch.Generator().manual_seed(2))
    s = math.log(2.0)
    with torch.no_grad():
        ce = F.cross_entropy(model.fc(F.relu(z + s * eps).mean((2, 3))), y, reduction="none")
    vz = z.var(dim=(2, 3))
    kl = (0.5 * (vz / s**2 + torch.log(s**2 / vz) - 1)).mean(1)
    assert res.final_ce == pytest.approx([float(ce[:3].mean()), float(ce[3:].mean())], rel=1e-5)
    assert res.final_kl == pytest.approx([float(kl[:3].mean()), float(kl[3:].mean())], rel=1e-5)
    assert torch.equal(res.batch, torch.tensor([0, 0, 0, 1, 1, 1])) and torch.equal(res.labels, y)
    assert res.beta == 0.7 and res.mode == "sample"


def test_distill_in_chunks_is_the_chunks_run_one_after_the_other():
    """Chunks of whole IB batches are optimised in turn from one generator: the chunked run equals
    running the chunks by hand, in order, on the same generator."""
    z = torch.cat([_z(6, 0), _z(6, 1)])
    y = torch.tensor([0, 1, 2] * 4)
    chunked = bottleneck.distill(SplitNet(), None, y, z=z, iterations=4, batch_size=3, chunk_size=6,
                                 generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    first = bottleneck.distill(SplitNet(), None, y[:6], z=z[:6], iterations=4, batch_size=3, chunk_size=None,
                               generator=g)
    second = bottleneck.distill(SplitNet(), None, y[6:], z=z[6:], iterations=4, batch_size=3, chunk_size=None,
                                generator=g)
    assert torch.allclose(chunked.sigma, torch.cat([first.sigma, second.sigma]), atol=1e-6)
    assert chunked.final_ce == pytest.approx(first.final_ce + second.final_ce, rel=1e-6)


def test_robust_mask_compares_sigma_squared_with_the_threshold():
    """lambda = 0: sigma^2 = ln(2)^2 = 0.48.  Channel thresholds 0.40 (robust) and 0.30; with
    sigma^3 = 0.33 the first would not be robust."""
    base = torch.tensor([[1.0, -1.0], [1.0, -1.0]])  # unbiased variance over 4 positions: 4/3
    z = torch.stack([torch.stack([base * math.sqrt(v * 3 / 4) for v in (0.40, 0.30, 0.60, 0.50)])])
    res = bottleneck.distill(FlatHead(), None, torch.zeros(1, dtype=torch.long), z=z, iterations=0,
                             threshold="channel")
    assert torch.allclose(res.sigma_z, torch.tensor([[0.40, 0.30, 0.60, 0.50]]), atol=1e-6)
    assert res.mask_robust.tolist() == [[True, True, False, False]]


def test_bottleneck_helpers_on_edge_inputs():
    from advfeatures.utils import AdvFeaturesError

    v64 = torch.tensor([[1.0, 2.0], [3.0, 0.5]], dtype=torch.float64)
    assert torch.equal(bottleneck.robust_threshold(v64, torch.tensor([0, 0]), "batch"),
                       torch.tensor([3.0, 3.0], dtype=torch.float64))
    assert bottleneck.robust_threshold(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "batch").shape == (0,)
    two = torch.arange(8.0).view(1, 4, 2, 1)  # two positions are enough
    assert torch.allclose(bottleneck.spatial_variance(two), torch.full((1, 4), 0.5))
    with pytest.raises(AdvFeaturesError, match="spatial size 0x3; sigma_z.2 needs at least 2 positions - choose an "
                                               "architecture/input size with a larger split layer"):
        bottleneck.spatial_variance(torch.zeros(1, 4, 0, 3))
    z = _z()
    ints = torch.tensor([[1, 0, 1, 0]] * 5)  # a 0/1 integer mask works like a boolean one
    z_r, z_nr = bottleneck.split_features(z, ints)
    assert torch.equal(z_r + z_nr, z) and torch.equal(z_r[:, 1], torch.zeros_like(z_r[:, 1]))


def test_a_non_finite_ib_loss_is_one_error_naming_the_iteration():
    from advfeatures.utils import AdvFeaturesError

    class NanHead(SplitNet):
        def head(self, z):
            return self.fc(z.mean((2, 3))) * math.nan

    with pytest.raises(AdvFeaturesError, match=r"non-finite IB loss at iteration 1 \(beta 0\.3, lr 0\.1\); "
                                               "lower bottleneck.lr or check the model checkpoint"):
        bottleneck.distill(NanHead(), None, torch.zeros(5, dtype=torch.long), z=_z(), iterations=2)


# ----------------------------------------------------------------------------- MI on a model: the glue


MI_PARAMS = {
    "n_samples": 30, "batch_size": 7, "estimators": ["kde", "binning"],
    "kde": {"noise_var": 0.3}, "binning": {"bin_width": 0.25}, "max_block_mib": 1, "bootstrap": 4,
    "attack": {"norm": "linf", "eps": 0.1, "alpha": 0.05, "steps": 2, "random_start": True},
}


@pytest.fixture(scope="module")
def mi_model():
    from advfeatures.data import Dataset
    from advfeatures.models import build_model

    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 12, 12, generator=g)
    y = torch.arange(60) % 3
    data = Dataset("tiny", x, y, x, y, ["a", "b", "c"], [0.5], [0.3])
    torch.manual_seed(0)
    return build_model("lenet5", **data.model_kwargs()).eval(), data


def test_mi_config_reads_every_key_and_its_defaults():
    from advfeatures.mutual_info import MIConfig
    from advfeatures.utils import AdvFeaturesError

    c = MIConfig.from_params(MI_PARAMS)
    assert (c.estimators, c.noise_var, c.bin_width, c.max_block_mib, c.batch_size, c.bootstrap) == (
        ["kde", "binning"], 0.3, 0.25, 1.0, 7, 4)
    d = MIConfig.from_params({"estimators": ["kde"], "kde": {"noise_var": 0.1}, "binning": {"bin_width": 0.5},
                              "bootstrap": None})
    assert (d.max_block_mib, d.batch_size, d.bootstrap) == (256.0, 500, 0)
    with pytest.raises(AdvFeaturesError, match=r"unknown estimator\(s\) \['mine'\] \(mutual_info.estimators\); "
                                               "use kde, binning"):
        MIConfig.from_params({**MI_PARAMS, "estimators": ["kde", "mine"]})


@pytest.mark.parametrize("which", [["kde"], ["binning"], ["kde", "binning"]])
def test_estimate_runs_the_configured_estimators_with_their_settings(which):
    from advfeatures.mutual_info import MIConfig, estimate, kde_mi

    g = np.random.default_rng(0)
    t, y = torch.from_numpy(g.normal(0, 1, (40, 3))), torch.from_numpy(g.integers(0, 2, 40))
    cfg = MIConfig.from_params({**MI_PARAMS, "estimators": which})
    w = stats.bootstrap_weights(40, 3, seed=0)
    boot: dict = {}
    got = estimate(t, y, cfg, weights=w, boot=boot)
    want: dict = {}
    want_boot: dict = {}
    if "kde" in which:
        want.update(kde_mi(t, y, 0.3, weights=w, boot=want_boot))
    if "binning" in which:
        want["binning"] = binning_mi(t, y, 0.25, weights=w, boot=want_boot)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12)
        assert boot[k] == pytest.approx(want_boot[k], rel=1e-12)


def test_probe_layer_and_accuracy_loss_batch_without_changing_results(mi_model):
    from advfeatures.mutual_info import accuracy_loss, probe_layer
    from advfeatures.utils import AdvFeaturesError

    model, data = mi_model
    x, y = data.x_test[:13], data.y_test[:13]
    for layer in model.probe_names:
        with torch.no_grad():
            want = model.probes(x)[layer].flatten(1)
        assert torch.allclose(probe_layer(model, x, layer, batch_size=4), want, atol=1e-6)
    with torch.no_grad():
        logits = model(x)
    acc, loss = accuracy_loss(model, x, y, batch_size=4)
    assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    with pytest.raises(AdvFeaturesError, match=r"unknown probe layer 'nope'; the model has \["):
        probe_layer(model, x, "nope")


def test_layer_rows_hold_each_layers_estimates(mi_model):
    from advfeatures.mutual_info import (
        MIConfig,
        accuracy_loss,
        estimate,
        layer_mi_rows,
        probe_layer,
    )

    model, data = mi_model
    x, y = data.x_test[:20], data.y_test[:20]
    cfg = MIConfig.from_params(MI_PARAMS)
    w = stats.bootstrap_weights(20, 4, seed=1)
    seen: list[str] = []
    inputs = {"clean": x, "noisy": (x + 0.1).clamp(0, 1)}
    rows = layer_mi_rows(model, inputs, y, cfg, layers=model.probe_names[:2], extra={"method": "m", "epoch": 3},
                         progress=seen.append, weights=w)
    assert seen == [f"{k}/{lay}" for k in inputs for lay in model.probe_names[:2]]
    assert len(rows) == 2 * 2 * 3
    for row in rows:
        t = probe_layer(model, inputs[row["input"]], row["layer"])
        boot: dict = {}
        est = estimate(t, y, cfg, weights=w, boot=boot)[row["estimator"]]
        acc, loss = accuracy_loss(model, inputs[row["input"]], y)
        assert (row["I_XT"], row["I_TY"]) == pytest.approx(est, rel=1e-9)
        assert (row["accuracy"], row["loss"]) == pytest.approx((acc, loss), rel=1e-6)
        assert row["method"] == "m" and row["epoch"] == 3 and row["n"] == 20
        assert stats.decode_replicates(row["I_XT_boot"]) == pytest.approx(boot[row["estimator"]], abs=1e-5)
    plain = layer_mi_rows(model, {"clean": x}, y, cfg)
    assert len(plain) == len(model.probe_names) * 3 and "I_XT_boot" not in plain[0]


def test_mi_inputs_are_the_seeded_stratified_subset_and_its_pgd_examples(mi_model):
    from advfeatures.attacks.evaluate import pgd_batches
    from advfeatures.data import eval_subset
    from advfeatures.mutual_info import mi_inputs
    from advfeatures.utils import derive_seed, make_generator

    model, data = mi_model
    x, x_adv, y = mi_inputs(model, data, MI_PARAMS, seed=5, tags=("standard", 2), device="cpu")
    idx = eval_subset(data.y_test, 30, derive_seed(5, "mutual_info", "subset"))
    assert torch.equal(x, data.x_test[idx]) and torch.equal(y, data.y_test[idx])
    a = MI_PARAMS["attack"]
    from advfeatures.attacks.pgd import PGDSettings

    want = pgd_batches(model, x, y, PGDSettings(norm="linf", eps=0.1, alpha=0.05, steps=2, random_start=True),
                       make_generator(derive_seed(5, "mutual_info", "pgd", "standard", 2)), 7)
    assert torch.allclose(x_adv, want) and a["eps"] == 0.1
    _, other, _ = mi_inputs(model, data, MI_PARAMS, seed=5, tags=("standard", 3), device="cpu")
    assert not torch.equal(other, x_adv)
    no_start = {**MI_PARAMS, "attack": {k: v for k, v in a.items() if k != "random_start"}}
    _, default, _ = mi_inputs(model, data, no_start, seed=5, tags=("standard", 2), device="cpu")
    assert torch.allclose(default, x_adv)  # random_start defaults to True


def test_epoch_rows_share_one_bootstrap_across_jobs(mi_model):
    from advfeatures.mutual_info import epoch_mi

    model, data = mi_model
    a = pd_rows(epoch_mi(model, data, MI_PARAMS, seed=5, method="standard", epoch=1))
    b = pd_rows(epoch_mi(model, data, MI_PARAMS, seed=5, method="trades", epoch=4))
    assert set(a["method"]) == {"standard"} and set(a["epoch"]) == {1} and set(b["epoch"]) == {4}
    assert set(a["input"]) == {"clean", "adversarial"}
    # the clean rows see the same samples and the same resamples: identical replicates
    ca = a[a["input"] == "clean"]["I_XT_boot"].tolist()
    cb = b[b["input"] == "clean"]["I_XT_boot"].tolist()
    assert ca == cb and all(len(stats.decode_replicates(c)) == 4 for c in ca)
    no_boot = pd_rows(epoch_mi(model, data, {**MI_PARAMS, "bootstrap": 0}, seed=5, method="s", epoch=1))
    assert "I_XT_boot" not in no_boot.columns


def pd_rows(rows):
    import pandas as pd

    return pd.DataFrame(rows)


def test_mi_tables_are_written_and_merged(tmp_path):
    import pandas as pd

    from advfeatures.mutual_info import merge_csvs, write_rows
    from advfeatures.utils import AdvFeaturesError

    rows = [{"b": 1, "a": 0.1234567891}, {"b": 2, "a": 2.0}]
    write_rows(rows, tmp_path / "one.csv")
    text = (tmp_path / "one.csv").read_text().splitlines()
    assert text[0] == "b,a" and text[1] == "1,0.123457"
    write_rows([{"b": 3, "a": 3.5}], tmp_path / "two.csv")
    assert merge_csvs([tmp_path / "one.csv", tmp_path / "two.csv"], tmp_path / "all.csv") == 3
    assert pd.read_csv(tmp_path / "all.csv")["b"].tolist() == [1, 2, 3]
    with pytest.raises(AdvFeaturesError, match=r"all\.csv: no MI rows to write"):
        write_rows([], tmp_path / "all.csv")
    (tmp_path / "bad.csv").write_text("")
    with pytest.raises(AdvFeaturesError, match=r"bad\.csv: unreadable MI table \(EmptyDataError\); delete it"):
        merge_csvs([tmp_path / "bad.csv"], tmp_path / "x.csv")


# ----------------------------------------------------------------------------- MI: from the mutation run


def test_mi_estimator_defaults_are_zhang_et_als():
    """Noise variance 0.1 for the KDE bounds, bin width 0.5 for binning (the published code)."""
    import inspect

    from advfeatures import mutual_info as mi

    for fn, key, value in ((mi.kde_mi, "noise_var", 0.1), (mi.kde_mi_reference, "noise_var", 0.1),
                           (mi.bin_patterns, "bin_width", 0.5), (mi.binning_mi, "bin_width", 0.5),
                           (mi.binning_mi_reference, "bin_width", 0.5)):
        assert inspect.signature(fn).parameters[key].default == value, fn.__name__


def test_kde_is_exact_for_activations_far_from_the_origin_and_leaves_them_alone():
    """Distances from |a|^2 + |b|^2 - 2ab lose their digits far from the origin; centring each
    column first keeps them.  The caller's tensor is not centred in place."""
    from advfeatures.mutual_info import kde_mi

    g = np.random.default_rng(1)
    y = g.integers(0, 2, 40)
    t = g.normal(0, 0.5, (40, 3)) + np.array([1e6, -3e6, 0.0])
    tt = torch.from_numpy(t.copy())
    got = kde_mi(tt, torch.from_numpy(y), 0.1)
    want = _kde_reference(t - t.mean(0), y, 0.1)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-7, abs=1e-7)
    assert torch.equal(tt, torch.from_numpy(t))


def test_kde_and_binning_accept_one_sample_and_flat_activations_and_name_bad_shapes():
    from advfeatures.mutual_info import kde_mi, kde_mi_reference
    from advfeatures.utils import AdvFeaturesError

    one = kde_mi(torch.ones(1, 3), torch.zeros(1, dtype=torch.long))
    assert one["kde_upper"] == pytest.approx((0.0, 0.0), abs=1e-12)
    flat = torch.tensor([0.0, 0.1, 5.0, 5.2])  # one activation per sample: shape [N]
    y = torch.tensor([0, 0, 1, 1])
    assert kde_mi(flat, y)["kde_upper"] == pytest.approx(kde_mi(flat[:, None], y)["kde_upper"], rel=1e-12)
    assert kde_mi_reference(flat, y)["kde_upper"] == pytest.approx(kde_mi(flat, y)["kde_upper"], rel=1e-9)
    assert kde_mi_reference(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))["kde_upper"][0] == pytest.approx(0.0)
    for fn in (kde_mi, kde_mi_reference):
        with pytest.raises(AdvFeaturesError, match=r"activations must be \[N, \.\.\.\] with N >= 1, got shape \(0, 3\)"):
            fn(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(AdvFeaturesError, match="bootstrap weights have 3 rows but activations have 4"):
        kde_mi(flat, y, weights=np.ones((3, 2), np.int64), boot={})
    with pytest.raises(AdvFeaturesError, match=r"bin width must be > 0 \(mutual_info.binning.bin_width\), got 0"):
        bin_patterns(flat[:, None], 0.0)


@pytest.mark.parametrize("columns", [0, 1])
def test_bootstrap_replicates_with_zero_or_one_resample(columns):
    from advfeatures.mutual_info import kde_mi

    g = np.random.default_rng(2)
    t, y = torch.from_numpy(g.normal(0, 1, (20, 2))), torch.from_numpy(g.integers(0, 2, 20))
    w = np.ones((20, columns), np.int64)
    boot: dict = {}
    point = kde_mi(t, y, 0.2, weights=w, boot=boot)
    hb = binning_mi(t, y, 0.5, weights=w, boot=boot)
    if columns == 0:
        assert boot == {}
    else:  # an all-ones resample is the sample itself
        assert boot["kde_upper"] == pytest.approx([point["kde_upper"][0]], rel=1e-12)
        assert boot["binning"] == pytest.approx([hb[0]], rel=1e-12)


def test_zero_information_is_plus_zero_in_the_tables():
    """One bin for every sample: H(T) = 0 must be +0.0 (a -0.0 prints as "-0.000000")."""
    t, y = torch.zeros(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    boot: dict = {}
    ixt, ity = binning_mi(t, y, 0.5, weights=np.ones((6, 2), np.int64), boot=boot)
    assert ixt == 0.0 and math.copysign(1.0, ixt) == 1.0 and math.copysign(1.0, ity) == 1.0
    assert all(math.copysign(1.0, v) == 1.0 for v in boot["binning"])


def test_binning_defaults_to_half_width_bins_when_called_without_one():
    from advfeatures.mutual_info import binning_mi_reference

    g = np.random.default_rng(5)
    t, y = torch.from_numpy(g.normal(0, 1, (50, 2))), torch.from_numpy(g.integers(0, 2, 50))
    assert torch.equal(bin_patterns(t), bin_patterns(t, 0.5)) and not torch.equal(bin_patterns(t), bin_patterns(t, 1.5))
    assert binning_mi(t, y) == binning_mi(t, y, 0.5) != binning_mi(t, y, 1.5)
    assert binning_mi_reference(t, y) == pytest.approx(binning_mi(t, y, 0.5), rel=1e-12)


def test_mi_glue_settings_reach_their_use(mi_model):
    from advfeatures.mutual_info import (
        MIConfig,
        epoch_mi,
        estimate,
        layer_mi_rows,
        mi_inputs,
        probe_layer,
    )
    from advfeatures.utils import derive_seed

    model, data = mi_model
    cfg = MIConfig.from_params({"estimators": ["binning"], "kde": {"noise_var": 0.1}, "binning": {"bin_width": 0.5}})
    assert cfg.bootstrap == 0
    # the bootstrap weights of every job: one seed, tagged (seed, "mutual_info", "bootstrap")
    seen: list[str] = []
    rows = epoch_mi(model, data, MI_PARAMS, seed=5, method="standard", epoch=1, progress=seen.append)
    assert seen and seen[0] == f"clean/{model.probe_names[0]}"
    x, _, y = mi_inputs(model, data, MI_PARAMS, seed=5, tags=("standard", 1), device="cpu")
    w = stats.half_sample_weights(len(y), 4, derive_seed(5, "mutual_info", "bootstrap"))
    boot: dict = {}
    estimate(probe_layer(model, x, model.probe_names[0]), y, MIConfig.from_params(MI_PARAMS), weights=w, boot=boot)
    first = next(r for r in rows if r["input"] == "clean" and r["estimator"] == "binning")
    assert stats.decode_replicates(first["I_XT_boot"]) == pytest.approx(boot["binning"], abs=1e-5)
    # no resamples: an empty cell
    empty = layer_mi_rows(model, {"clean": x}, y, cfg, layers=model.probe_names[:1], weights=np.zeros((len(y), 0)))
    assert empty[0]["I_XT_boot"] == ""
    # the attack's norm and random start reach PGD
    l2 = {**MI_PARAMS, "attack": {"norm": "l2", "eps": 0.5, "alpha": 0.3, "steps": 2, "random_start": False}}
    x2, adv2, _ = mi_inputs(model, data, l2, seed=5, tags=("s", 1), device="cpu")
    d = (adv2 - x2).flatten(1)
    assert d.norm(dim=1).max() <= 0.5 + 1e-5 and d.abs().max() > 0.1  # an L2 step, beyond the Linf eps
    again = mi_inputs(model, data, l2, seed=5, tags=("t", 2), device="cpu")[1]
    assert torch.equal(adv2, again)  # no random start: no seed dependence


# ----------------------------------------------------------------------------- C&W: from the mutation run


def test_cw_defaults_are_kim_et_als_settings():
    """c 0.1, kappa 0, Adam lr 0.1, 200 steps, no search, the steps // 3 early stop."""
    model, (x, y) = Linear(scale=1.0), inputs(n=4)
    plain = cw.cw_l2(model, x, y)
    explicit = cw.cw_l2(model, x, y, c=0.1, kappa=0.0, lr=0.1, steps=200, search_steps=0, stop_checks=3)
    assert torch.equal(plain, explicit)
    costs = [5.0, 4.0, 3.0, 3.5, 1.0, 0.5, 0.4, 0.3, 0.2]
    a, b = cw.CostRiseStop(9), cw.CostRiseStop(9, 3)
    assert [a(s, torch.tensor(c)) for s, c in enumerate(costs)] == [b(s, torch.tensor(c)) for s, c in enumerate(costs)]


@pytest.mark.parametrize("key", ["kappa", "lr", "search_steps", "c"])
def test_cw_refuses_each_bad_setting(key):
    from advfeatures.utils import AdvFeaturesError

    model, (x, y) = Linear(), inputs(n=2)
    with pytest.raises(AdvFeaturesError, match=rf"^cw: {key} must be a finite number >= 0"):
        cw.cw_l2(model, x, y, steps=2, **{key: -1.0})


def test_cw_bounded_attack_moves_within_its_box():
    model, (x, y) = Linear(scale=1.0), inputs(n=8)
    out = cw.cw_l2(model, x, y, c=50.0, lr=0.1, steps=60, eps=0.5, stop_checks=0)
    d = (out - x).abs().flatten(1).amax(1)
    assert (d <= 0.5 + 1e-6).all() and (d > 0).any()
    free = cw.cw_l2(model, x, y, c=50.0, lr=0.1, steps=60, stop_checks=0)
    assert not torch.equal(free, out)  # the bound binds somewhere


@pytest.mark.parametrize(("search", "rounds"), [(0, 1), (1, 1), (3, 3)])
def test_cw_runs_one_round_per_search_step(search, rounds):
    model, (x, y) = Linear(scale=1.0), inputs(n=4)
    steps_seen: list[int] = []
    cw.cw_l2(model, x, y, c=0.05, steps=5, stop_checks=0, search_steps=search,
             trace=lambda step, xa, cost: steps_seen.append(step))
    assert steps_seen == list(range(5)) * rounds


class SplitLinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Linear(scale=1.0)

    def features(self, x):
        return x.view(x.shape[0], 3, 4, 4) * 2.0

    def head(self, z):
        return self.inner(z / 2.0)

    def forward(self, x):
        return self.head(self.features(x))


def test_minimise_cw_cost_adds_the_feature_term_on_features_and_logits():
    """NRF's hook: cost = sum ||x' - x||^2 + c * max(margin, -kappa) + extra(Z, logits), with
    Z = model.features(x') and the logits of model.head(Z)."""
    model, (x, y) = SplitLinear(), inputs(n=4)
    extra = lambda z, logits: 0.01 * z.pow(2).sum() - 0.1 * logits[:, 0].sum()  # noqa: E731
    got: list[tuple[torch.Tensor, float]] = []
    lo, hi = cw.box(x, None)
    best, best_l2 = x.clone(), torch.full((4,), math.inf)
    cs = torch.full((4,), 2.0)
    cw.minimise_cw_cost(model, x, y, cs, best, best_l2, lo=lo, hi=hi, kappa=0.5, lr=0.05, steps=6,
                        stop_checks=0, extra=extra, trace=lambda s, xa, c: got.append((xa.clone(), float(c))))
    for xa, cost in got:
        with torch.no_grad():
            z = model.features(xa)
            logits = model.head(z)
        want = ((xa - x).flatten(1).pow(2).sum(1) + 2.0 * cw.cw_margin(logits, y).clamp_min(-0.5)).sum() + extra(z, logits)
        assert math.isclose(cost, float(want), rel_tol=1e-5, abs_tol=1e-6)


def test_cw_margin_with_a_batch_missing_the_last_class():
    logits = torch.tensor([[2.0, 1.0, 0.0, 5.0], [0.0, 3.0, 1.0, -1.0]])
    assert torch.equal(cw.cw_margin(logits, torch.tensor([0, 1])), torch.tensor([-3.0, 2.0]))


@pytest.mark.parametrize(("steps", "checks", "costs", "stop"), [
    (10, 10, [10.0, 11.0, 9.0], 1),  # every step checked: the first rise stops it
    (10, 3, [5.0, 9.0, 9.0, 4.0, 9.0, 9.0, 6.0, 1.0], 6),  # checks at 0, 3, 6, 9
    (6, 3, [5.0, 9.0, 5.0, 9.0, 5.0, 9.0], None),  # an equal cost is not a rise
])
def test_cost_rise_stop_schedules(steps, checks, costs, stop):
    rule = cw.CostRiseStop(steps, checks)
    got = next((s for s in range(steps) if rule(s, torch.tensor(costs[s % len(costs)]))), None)
    assert got == stop
