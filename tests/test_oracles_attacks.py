"""Oracle tests of the evaluation helpers, the pyautoattack wrapper and the attack suite
(advfeatures/attacks/evaluate.py, autoattack.py, suite.py) on tiny seeded models and a few
1 x 3 x 3 images.

Small and fast: these are the tests ``make mutation`` runs for the evaluate, autoattack and suite
modules (tests/test_attacks.py trains a LeNet in a fixture).  Expected values are written out
here (a fixed linear model's argmax, the batch loop, the transfer-rate count) or taken from
pyautoattack itself (its own "standard" AutoAttack, its attacks' budgets seen from outside:
the perturbation's norm, the forward passes a budget costs).
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from advfeatures.attacks import autoattack as aa
from advfeatures.attacks import evaluate as ev
from advfeatures.attacks.pgd import PGDSettings, pgd
from advfeatures.data import Dataset, eval_subset
from advfeatures.utils import AdvFeaturesError, batches, derive_seed, make_generator

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# tiny models and data


class Fixed(torch.nn.Module):
    """1 x 2 x 2 images -> 3 classes: logits (2 p0, 2 p1, p2 + p3) (no bias)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 1.0, 1.0]]))

    def forward(self, x):
        return self.fc(x.flatten(1))


def fixed_argmax(x):
    """The class ``Fixed`` predicts, written out row by row."""
    out = []
    for row in x.flatten(1).tolist():
        scores = [2 * row[0], 2 * row[1], row[2] + row[3]]
        out.append(max(range(3), key=lambda i: scores[i]))
    return torch.tensor(out)


class TrainFlip(Fixed):
    """``Fixed`` in eval mode; negated logits in train mode (a model whose mode matters)."""

    def forward(self, x):
        z = super().forward(x)
        return -z if self.training else z


class Tiny(torch.nn.Module):
    """1 x 3 x 3 images -> 5 classes through a hidden ReLU layer; seeded weights (APGD-T's DLR
    loss needs at least 4 classes)."""

    def __init__(self, seed: int = 3, classes: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = torch.nn.Linear(9, 8)
        self.b = torch.nn.Linear(8, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        return self.b(torch.relu(self.a(x.flatten(1))))


class Counting(torch.nn.Module):
    """Counts forward passes and notes the auto-attack logger's level during them."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.levels = model, 0, set()

    def forward(self, x):
        self.calls += 1
        self.levels.add(logging.getLogger("auto-attack").level)
        return self.model(x)


def images(n: int, seed: int = 1, side: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, side, side, generator=g) * 0.6 + 0.2  # inside (0, 1)


def labelled(n: int = 6, seed: int = 1, classes: int = 5):
    """Tiny model and n images it classifies correctly (labels = its predictions)."""
    model = Tiny(classes=classes)
    x = images(n, seed)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def linf(a, b):
    return (a - b).flatten(1).abs().amax(1)


def l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


def acc(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def grads_and_mode(model):
    return model.training, [p.requires_grad for p in model.parameters()]


# ---------------------------------------------------------------------------------------------
# evaluate.predict / attack_batches


def test_predict_is_the_argmax_of_a_fixed_linear_model_in_any_batch_size():
    x = images(7, side=2)
    want = fixed_argmax(x)
    assert len(set(want.tolist())) == 3  # every class occurs: an argmax over another dim would differ
    for bs in (1, 2, 3, 7, 500):
        got = ev.predict(Fixed(), x, bs)
        assert got.dtype == torch.long and got.shape == (7,)
        assert torch.equal(got, want), bs
    assert torch.equal(ev.predict(Fixed(), x), want)


def test_predict_of_no_rows_is_an_empty_long_tensor():
    got = ev.predict(Fixed(), torch.zeros(0, 1, 2, 2))
    assert got.shape == (0,) and got.dtype == torch.long


def test_predict_runs_in_eval_mode_and_restores_train_mode():
    x = images(9, side=2)
    model = TrainFlip()
    model.train()
    assert torch.equal(ev.predict(model, x, 4), fixed_argmax(x))
    assert model.training
    model.eval()
    assert torch.equal(ev.predict(model, x, 4), fixed_argmax(x))
    assert not model.training


def test_predict_does_not_build_a_graph():
    x = images(3, side=2).requires_grad_(True)
    model = Fixed()
    with torch.enable_grad():
        out = ev.predict(model, x)
    assert not out.requires_grad


def test_attack_batches_runs_fn_on_each_batch_in_order():
    x = torch.arange(7.0).view(7, 1)
    y = torch.arange(7) * 10
    seen = []

    def fn(b, xb, yb):
        seen.append((b, xb.flatten().tolist(), yb.tolist()))
        return xb + 100

    out = ev.attack_batches(x, y, fn, 3)
    assert seen == [(0, [0.0, 1.0, 2.0], [0, 10, 20]), (1, [3.0, 4.0, 5.0], [30, 40, 50]), (2, [6.0], [60])]
    assert [o.flatten().tolist() for o in out] == [[100.0, 101.0, 102.0], [103.0, 104.0, 105.0], [106.0]]
    assert ev.attack_batches(x[:0], y[:0], fn, 3) == []


def test_attack_batches_iterates_what_progress_returns():
    x, y = torch.arange(6.0).view(6, 1), torch.arange(6)
    given = []

    def progress(it):
        given.append(list(it))
        return it[::-1]  # a wrapper that changes the order: its iterator is the one used

    out = ev.attack_batches(x, y, lambda b, xb, yb: (b, xb.flatten().tolist()), 2, progress=progress)
    assert given == [[(0, slice(0, 2)), (1, slice(2, 4)), (2, slice(4, 6))]]
    assert out == [(2, [4.0, 5.0]), (1, [2.0, 3.0]), (0, [0.0, 1.0])]


# ---------------------------------------------------------------------------------------------
# evaluate: PGD helpers


LINF = PGDSettings(norm="linf", eps=0.3, alpha=0.1, steps=4, random_start=True)
L2 = PGDSettings(norm="l2", eps=0.8, alpha=0.3, steps=3, random_start=False)


@pytest.mark.parametrize("a", [LINF, L2], ids=["linf", "l2"])
def test_adversarial_examples_are_pgd_under_the_settings(a):
    model, x, y = labelled(5)
    got = ev.adversarial_examples(model, x, y, a, make_generator(4))
    want = pgd(model, x, y, eps=a.eps, alpha=a.alpha, steps=a.steps, norm=a.norm, random_init=a.random_start,
               generator=make_generator(4))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    bound = linf(got, x) if a.norm == "linf" else l2(got, x)
    assert float(bound.max()) <= a.eps + 1e-5 and float(bound.max()) > a.eps / 4


def test_adversarial_examples_draw_the_random_start_from_the_generator():
    model, x, y = labelled(5)
    one = ev.adversarial_examples(model, x, y, LINF, make_generator(4))
    again = ev.adversarial_examples(model, x, y, LINF, make_generator(4))
    other = ev.adversarial_examples(model, x, y, LINF, make_generator(5))
    no_start = ev.adversarial_examples(model, x, y, PGDSettings(**{**LINF.__dict__, "random_start": False}),
                                       make_generator(4))
    torch.testing.assert_close(one, again)
    assert float(linf(one, other).max()) > 1e-4 and float(linf(one, no_start).max()) > 1e-4


def test_pgd_batches_is_the_batch_loop_with_one_generator():
    model, x, y = labelled(7)
    g = make_generator(9)
    want = torch.cat([pgd(model, x[s], y[s], eps=LINF.eps, alpha=LINF.alpha, steps=LINF.steps, norm="linf",
                          random_init=True, generator=g) for s in batches(7, 3)])
    got = ev.pgd_batches(model, x, y, LINF, make_generator(9), 3)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_robust_accuracy_is_clean_and_seeded_pgd_accuracy():
    model = Tiny()
    x = images(12, seed=2)
    y = torch.tensor([0, 1, 2] * 4)  # random labels: some rows wrong from the start
    clean_want = acc(model, x, y)
    assert 0 < clean_want < 1
    strong = PGDSettings(norm="linf", eps=0.5, alpha=0.2, steps=5, random_start=True)
    x_adv = ev.pgd_batches(model, x, y, strong, make_generator(11), 5)
    robust_want = acc(model, x_adv, y)
    assert robust_want < clean_want
    clean, robust = ev.robust_accuracy(model, x, y, strong, 11, 5)
    assert isinstance(clean, float) and isinstance(robust, float)
    assert clean == pytest.approx(clean_want, abs=1e-9) and robust == pytest.approx(robust_want, abs=1e-9)
    assert ev.robust_accuracy(model, x, y, strong, 11) == pytest.approx((clean_want, robust_want), abs=1e-9)
    none = PGDSettings(norm="linf", eps=0.0, alpha=0.1, steps=3, random_start=True)
    assert ev.robust_accuracy(model, x, y, none, 11, 5) == pytest.approx((clean_want, clean_want), abs=1e-9)


def test_pgd_settings_from_a_config_mapping():
    got = ev.pgd_settings({"a": {"eps": 0.1, "steps": 3}, "b": {"norm": "l2", "eps": 1.5, "alpha": 0.2,
                                                                 "random_start": False}})
    assert got == {"a": PGDSettings(eps=0.1, steps=3),
                   "b": PGDSettings(norm="l2", eps=1.5, alpha=0.2, random_start=False)}
    assert ev.pgd_settings({}) == {}


def tiny_dataset(n_test: int = 12) -> Dataset:
    x = images(n_test, seed=6)
    y = torch.tensor([0, 1, 2] * (n_test // 3))
    return Dataset("tiny", x, y, x, y, ["a", "b", "c"], [0.5], [0.25])


def test_evaluate_model_is_robust_accuracy_on_the_seeded_subset_per_attack():
    model = Tiny()
    model.train()
    data = tiny_dataset()
    attacks = {"weak": PGDSettings(eps=0.05, alpha=0.02, steps=3), "strong": PGDSettings(eps=0.5, alpha=0.2, steps=5)}
    row = ev.evaluate_model(model, data, attacks, subset=6, seed=2, batch_size=4)
    assert grads_and_mode(model) == (True, [True] * 4)  # train mode and gradients restored
    idx = eval_subset(data.y_test, 6, derive_seed(2, "ilyas_eval_subset"))
    model.eval()
    want = {"n_test": 6.0}
    for name, a in attacks.items():
        clean, robust = ev.robust_accuracy(model, data.x_test[idx], data.y_test[idx], a,
                                           derive_seed(2, "ilyas_eval", name), 4)
        want.update(clean_acc=clean, **{f"robust_acc_{name}": robust})
    assert row == pytest.approx(want, abs=1e-9)
    assert set(row) == set(want)
    assert row["robust_acc_strong"] < row["clean_acc"]  # the attacks differ: the names are not mixed up
    # the subset differs with the seed and None is the whole test set
    idx2 = eval_subset(data.y_test, 6, derive_seed(3, "ilyas_eval_subset"))
    assert not torch.equal(idx, idx2)
    full = ev.evaluate_model(model, data, attacks, subset=None, seed=2)
    assert full["n_test"] == 12.0
    clean, robust = ev.robust_accuracy(model, data.x_test, data.y_test, attacks["strong"],
                                       derive_seed(2, "ilyas_eval", "strong"))
    assert (full["clean_acc"], full["robust_acc_strong"]) == pytest.approx((clean, robust), abs=1e-9)


def test_the_evaluation_subset_is_the_seeded_stratified_one():
    data = tiny_dataset(30)
    for seed in (2, 3):
        idx, x, y = ev._subset(data, 9, seed, torch.device("cpu"))
        want = eval_subset(data.y_test, 9, derive_seed(seed, "ilyas_eval_subset"))
        assert torch.equal(idx, want) and torch.equal(x, data.x_test[want]) and torch.equal(y, data.y_test[want])
    assert not torch.equal(ev._subset(data, 9, 2, "cpu")[0], ev._subset(data, 9, 3, "cpu")[0])
    assert not torch.equal(ev._subset(data, 9, 2, "cpu")[0], eval_subset(data.y_test, 9, derive_seed(2, "None")))


def test_evaluate_model_seeds_each_attack_by_its_name(monkeypatch):
    calls = []
    real = ev.robust_accuracy

    def spy(model, x, y, a, seed, batch_size=500):
        calls.append((a, seed, batch_size))
        return real(model, x, y, a, seed, batch_size)

    monkeypatch.setattr(ev, "robust_accuracy", spy)
    attacks = {"weak": PGDSettings(eps=0.05, alpha=0.02, steps=3), "strong": PGDSettings(eps=0.5, alpha=0.2, steps=5)}
    ev.evaluate_model(Tiny(), tiny_dataset(), attacks, subset=6, seed=2, batch_size=4)
    assert calls == [(attacks["weak"], derive_seed(2, "ilyas_eval", "weak"), 4),
                     (attacks["strong"], derive_seed(2, "ilyas_eval", "strong"), 4)]


def reference_transfer(source, target, x, y, attack, seed, bs):
    g = make_generator(derive_seed(seed, "ilyas_transfer"))
    x_adv = ev.pgd_batches(source, x, y, attack, g, bs)
    with torch.no_grad():
        ps, pt = source(x).argmax(1), target(x).argmax(1)
        fs, ft = source(x_adv).argmax(1), target(x_adv).argmax(1)
    n = k = 0
    for i in range(len(y)):
        if ps[i] == y[i] and pt[i] == y[i] and fs[i] != y[i]:
            n += 1
            k += int(ft[i] != y[i])
    return (k / n if n else float("nan")), n


def test_transfer_rate_counts_source_fooled_rows_both_models_got_right():
    source, target = Tiny(3), Tiny(3)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a target close to the source: some examples transfer, not all
        for p in target.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    x = images(30, seed=6)
    with torch.no_grad():
        y = source(x).argmax(1)
    y[::4] = (y[::4] + 1) % 5  # some rows wrong from the start
    data = Dataset("tiny", x, y, x, y, [str(i) for i in range(5)], [0.5], [0.25])
    source.train()
    attack = PGDSettings(eps=0.25, alpha=0.1, steps=5)
    got = ev.transfer_rate(source, target, data, attack, subset=15, seed=4, batch_size=4)
    assert grads_and_mode(source) == (True, [True] * 4)
    idx = eval_subset(data.y_test, 15, derive_seed(4, "ilyas_eval_subset"))
    source.eval()
    rate, n = reference_transfer(source, target, data.x_test[idx], data.y_test[idx], attack, 4, 4)
    assert 0 < n < 15 and 0 < rate < 1  # the data tell the conditions apart
    assert got == pytest.approx({"transfer_rate": rate, "transfer_n": float(n)}, abs=1e-9)
    full = ev.transfer_rate(source, target, data, attack, subset=None, seed=4)
    rate, n = reference_transfer(source, target, data.x_test, data.y_test, attack, 4, 500)
    assert full == pytest.approx({"transfer_rate": rate, "transfer_n": float(n)}, abs=1e-9)
    assert ev.transfer_rate(source, source, data, attack, subset=None, seed=4)["transfer_rate"] == 1.0


def test_transfer_rate_without_a_fooled_row_is_nan():
    data = tiny_dataset()
    got = ev.transfer_rate(Tiny(3), Tiny(5), data, PGDSettings(eps=0.0, alpha=0.1, steps=2), subset=None, seed=1)
    assert got["transfer_n"] == 0.0 and math.isnan(got["transfer_rate"])


# ---------------------------------------------------------------------------------------------
# autoattack: the wrapper's budgets, seeds and side effects


def assert_in_box_and_ball(x_adv, x, eps, norm="linf"):
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    d = linf(x_adv, x) if norm == "linf" else l2(x_adv, x)
    assert float(d.max()) <= eps + 1e-5


def attacked_in_budget(attack, norm):
    """``attack`` on 6 rows at eps 0.3 (Linf) or 0.6 (L2): its output stays in the box and the
    ball, fools some row, and an L2 ball is not a Linf one of the same radius (there L2 reaches
    3 eps).  Returns model, x, y, x_adv."""
    model, x, y = labelled(6)
    eps = 0.3 if norm == "linf" else 0.6
    x_adv = attack(model, x, y, eps=eps, n_iter=10, norm=norm, seed=1)
    assert_in_box_and_ball(x_adv, x, eps, norm)
    assert acc(model, x_adv, y) < 1.0
    if norm == "l2":
        assert float(linf(x_adv, x).max()) < eps
    return model, x, y, x_adv


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_ce_respects_its_budget_and_fools_rows(norm):
    _, _, _, x_adv = attacked_in_budget(aa.apgd_ce, norm)
    assert not x_adv.requires_grad


def test_apgd_ce_is_seeded_and_leaves_the_caller_state_alone():
    model, x, y = labelled(6)
    model.train()
    log = logging.getLogger("auto-attack")
    log.setLevel(logging.DEBUG)
    try:
        counted = Counting(model)
        torch.manual_seed(123)
        state = torch.get_rng_state()
        one = aa.apgd_ce(counted, x, y, eps=0.3, n_iter=5, seed=1)
        assert torch.equal(torch.get_rng_state(), state)  # pyautoattack reseeds the global RNG: forked
        assert counted.levels == {logging.WARNING} and log.level == logging.DEBUG
    finally:
        log.setLevel(logging.NOTSET)
    assert grads_and_mode(model) == (True, [True] * 4)
    assert grads_and_mode(counted) == (True, [True] * 4)
    # seed 1, 2, then 1 again: a clock-seeded attack cannot pass both checks
    other = aa.apgd_ce(model, x, y, eps=0.3, n_iter=5, seed=2)
    assert float(linf(one, other).max()) > 1e-4
    torch.testing.assert_close(aa.apgd_ce(model, x, y, eps=0.3, n_iter=5, seed=1), one)
    model.eval()
    default = aa.apgd_ce(model, x, y, eps=0.3, n_iter=5)
    assert float(linf(default, aa.apgd_ce(model, x, y, eps=0.3, n_iter=5, seed=1)).max()) > 1e-4
    torch.testing.assert_close(aa.apgd_ce(model, x, y, eps=0.3, n_iter=5, seed=0), default)  # seed 0 by default


def test_apgd_ce_leaves_a_misclassified_row_alone():
    """Attacked against the given labels, not the model's own predictions: a row already wrong
    counts as not robust and is returned as it is."""
    model, x, y = labelled(6)
    y = y.clone()
    y[2] = (y[2] + 1) % 5
    x_adv = aa.apgd_ce(model, x, y, eps=0.3, n_iter=5, seed=1)
    assert torch.equal(x_adv[2], x[2]) and float(linf(x_adv, x).max()) > 0.1


def forward_calls(fn, model, x, y, **kw):
    counted = Counting(model)
    fn(counted, x, y, **kw)
    return counted.calls


def test_apgd_ce_runs_its_iterations_and_restarts():
    model, x, y = labelled(4)
    # eps tiny: no row is fooled, so every restart runs every iteration
    calls = {(n, r): forward_calls(aa.apgd_ce, model, x, y, eps=1e-4, n_iter=n, n_restarts=r)
             for n, r in ((5, 1), (10, 1), (5, 2))}
    assert calls[(10, 1)] - calls[(5, 1)] == 5
    assert calls[(5, 2)] > calls[(5, 1)] + 4
    assert forward_calls(aa.apgd_ce, model, x, y, eps=1e-4) == forward_calls(
        aa.apgd_ce, model, x, y, eps=1e-4, n_iter=100, n_restarts=1)  # defaults: 100 steps, 1 restart


@pytest.mark.parametrize("fn", [aa.apgd_ce, aa.fab, aa.autoattack])
def test_eps_zero_is_the_clean_input_without_an_attack(fn):
    model, x, y = labelled(4)
    counted = Counting(model)
    out = fn(counted, x, y, eps=0.0, n_iter=3)
    assert torch.equal(out, x) and out is not x and counted.calls == 0


@pytest.mark.parametrize(("fn", "name", "keys"), [
    (aa.apgd_ce, "apgd_ce", ("eps", "n_iter", "n_restarts")),
    (aa.fab, "fab", ("eps", "n_iter", "n_restarts", "n_target_classes")),
    (aa.autoattack, "autoattack", ("eps", "n_iter", "n_target_classes", "n_queries")),
])
def test_bad_budgets_are_refused_by_name(fn, name, keys):
    model, x, y = labelled(2)
    for key in keys:
        for bad in (float("nan"), -1):
            with pytest.raises(AdvFeaturesError, match=rf"^{name}: {key} must be"):
                fn(model, x, y, **{"eps": 0.1, key: bad})


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_respects_its_budget(norm):
    model, x, y, x_adv = attacked_in_budget(aa.fab, norm)
    moved = linf(x_adv, x) > 0
    # FAB is minimal-norm: a row it moved is one it fools (an unfooled row is returned as x)
    with torch.no_grad():
        assert bool((model(x_adv[moved]).argmax(1) != y[moved]).all())


def test_fab_is_seeded_and_runs_its_budget():
    model, x, y = labelled(6)
    model.train()
    one = aa.fab(model, x, y, eps=0.3, n_iter=5, seed=1)
    assert grads_and_mode(model) == (True, [True] * 4)
    torch.testing.assert_close(aa.fab(model, x, y, eps=0.3, n_iter=5, seed=1), one)
    x4, y4 = x[:4], y[:4]
    base = forward_calls(aa.fab, model, x4, y4, eps=1e-4, n_iter=5)
    assert forward_calls(aa.fab, model, x4, y4, eps=1e-4, n_iter=10) > base
    assert forward_calls(aa.fab, model, x4, y4, eps=1e-4, n_iter=5, n_restarts=2) > base
    t1 = forward_calls(aa.fab, model, x4, y4, eps=1e-4, n_iter=5, targeted=True, n_target_classes=1)
    t2 = forward_calls(aa.fab, model, x4, y4, eps=1e-4, n_iter=5, targeted=True, n_target_classes=2)
    assert t2 > t1
    assert forward_calls(aa.fab, model, x4, y4, eps=1e-4) == forward_calls(
        aa.fab, model, x4, y4, eps=1e-4, n_iter=100, n_restarts=1, targeted=False)


def test_fab_restarts_are_seeded():
    model, x, y = labelled(12, seed=3)
    kw = {"eps": 0.4, "norm": "l2", "n_iter": 5, "n_restarts": 2}
    default = aa.fab(model, x, y, **kw)
    one = aa.fab(model, x, y, seed=1, **kw)
    assert float(linf(default, one).max()) > 1e-3
    torch.testing.assert_close(aa.fab(model, x, y, seed=0, **kw), default)


def test_fab_targets_nine_classes_by_default_and_prints_nothing(capsys):
    model, x, y = labelled(3, classes=12)
    kw = {"eps": 1e-4, "n_iter": 2, "targeted": True}
    assert forward_calls(aa.fab, model, x, y, **kw) == forward_calls(aa.fab, model, x, y, n_target_classes=9, **kw)
    assert forward_calls(aa.fab, model, x, y, **kw) != forward_calls(aa.fab, model, x, y, n_target_classes=10, **kw)
    aa.fab(model, x, y, eps=0.3, n_iter=3, n_restarts=2)
    assert capsys.readouterr().out == ""


def test_targeted_fab_tries_at_most_the_other_classes():
    """Nine target classes on a 5-class model: the 4 other classes (pyautoattack alone indexes a
    sixth and fails once a row survives the first four)."""
    model, x, y = labelled(3)
    kw = {"eps": 1e-4, "n_iter": 2, "targeted": True}
    out = aa.fab(model, x, y, **kw)
    assert torch.equal(out, x)  # nothing fooled within 1e-4
    four = forward_calls(aa.fab, model, x, y, n_target_classes=4, **kw)
    assert forward_calls(aa.fab, model, x, y, **kw) == four
    assert forward_calls(aa.fab, model, x, y, n_target_classes=3, **kw) < four
    assert forward_calls(aa.fab, model, x, y, n_target_classes=0, **kw) == forward_calls(
        aa.fab, model, x, y, n_target_classes=1, **kw)  # at least one target class
    assert forward_calls(aa.fab, model, x, y, eps=1e-4, n_iter=2, n_target_classes=0) == forward_calls(
        aa.fab, model, x, y, eps=1e-4, n_iter=2, n_target_classes=9)  # untargeted: no target classes


def test_fab_targets_the_classes_it_is_given():
    """Targeted FAB with one target class pushes each row towards its second most likely class."""
    model, x, y = labelled(6)
    x_adv = aa.fab(model, x, y, eps=0.6, n_iter=20, targeted=True, n_target_classes=1, seed=0)
    with torch.no_grad():
        second = model(x).sort(1, descending=True).indices[:, 1]
        pred = model(x_adv).argmax(1)
    fooled = pred != y
    assert bool(fooled.any()) and torch.equal(pred[fooled], second[fooled])


def test_build_autoattack_is_pyautoattacks_standard_with_the_budget_given():
    from pyautoattack import AutoAttack

    model = Tiny()
    for norm, nn in (("linf", "Linf"), ("l2", "L2")):
        ref = AutoAttack(model, norm=nn, eps=0.2, seed=7, version="standard", device="cpu")
        got = aa.build_autoattack(model, eps=0.2, norm=norm, seed=7, device=torch.device("cpu"), n_iter=12,
                                  n_target_classes=2, n_queries=30, components=("apgd-ce", "square"))
        assert got.attacks_to_run == ["apgd-ce", "square"] and not got.verbose
        assert (got.norm, got.epsilon, got.seed, got.version) == (nn, 0.2, 7, "standard")
        for part in ("apgd", "apgd_targeted", "fab", "square"):
            mine, theirs = getattr(got, part), getattr(ref, part)
            assert (getattr(mine, "model", None) or mine.predict) is model
            assert mine.device == torch.device("cpu")
            # (FAB's targeted flag is not compared: pyautoattack sets it when it runs fab / fab-t)
            for key in ("eps", "norm", "seed", "n_restarts", "verbose", "eot_iter", "thr_decr", "p_init", "loss",
                        "logger", "use_largereps", "topk"):
                if hasattr(theirs, key):
                    assert getattr(mine, key) == getattr(theirs, key), (part, key)
        # Square's schedule is not rescaled to 10000 queries (AutoAttack's standard setting)
        assert not got.square.rescale_schedule and not ref.square.rescale_schedule
        for part in (got.apgd, got.apgd_targeted):
            assert part.n_iter == 12 and part.n_iter_2 == max(int(0.22 * 12), 1)
            assert part.n_iter_min == max(int(0.06 * 12), 1) and part.size_decr == max(int(0.03 * 12), 1)
        assert got.fab.n_iter == 12 and got.square.n_queries == 30
        assert got.apgd_targeted.n_target_classes == got.fab.n_target_classes == 2
        assert got.apgd.logger is got.logger and got.apgd_targeted.logger is got.logger
    default = aa.build_autoattack(model, eps=0.1)
    assert default.attacks_to_run == list(aa.AA_COMPONENTS) and default.norm == "Linf" and default.seed == 0
    assert default.apgd.n_iter == 100 and default.fab.n_iter == 100 and default.square.n_queries == 5000
    assert default.apgd_targeted.n_target_classes == default.fab.n_target_classes == 9


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_autoattack_respects_its_budget_and_is_no_better_than_clean(norm):
    model, x, y = labelled(6)
    y = y.clone()
    y[0] = (y[0] + 1) % 5  # one row wrong from the start
    eps = 0.3 if norm == "linf" else 0.6
    x_adv = aa.autoattack(model, x, y, eps=eps, norm=norm, n_iter=5, n_target_classes=2, n_queries=10, seed=1)
    assert_in_box_and_ball(x_adv, x, eps, norm)
    assert not x_adv.requires_grad
    assert acc(model, x_adv, y) < acc(model, x, y) == pytest.approx(5 / 6)
    if norm == "l2":
        assert float(linf(x_adv, x).max()) < eps


def test_autoattack_is_seeded_and_leaves_the_caller_state_alone():
    model, x, y = labelled(6)
    model.train()
    kw = {"eps": 0.3, "n_iter": 4, "n_target_classes": 2, "n_queries": 10, "components": ["square"]}
    log = logging.getLogger("auto-attack")
    log.setLevel(logging.INFO)
    try:
        counted = Counting(model)
        torch.manual_seed(5)
        state = torch.get_rng_state()
        one = aa.autoattack(counted, x, y, seed=1, **kw)
        assert torch.equal(torch.get_rng_state(), state)
        assert counted.levels == {logging.WARNING} and log.level == logging.INFO
    finally:
        log.setLevel(logging.NOTSET)
    assert grads_and_mode(model) == (True, [True] * 4)
    other = aa.autoattack(model, x, y, seed=2, **kw)
    assert float(linf(one, other).max()) > 1e-4
    torch.testing.assert_close(aa.autoattack(model, x, y, seed=1, **kw), one)
    torch.testing.assert_close(aa.autoattack(model, x, y, **kw), aa.autoattack(model, x, y, seed=0, **kw))


def test_autoattack_defaults_are_the_standard_budget(monkeypatch):
    built = []

    class Stub:
        def run_standard_evaluation(self, x, y, batch_size=250):
            return x + 0.01, y

    monkeypatch.setattr(aa, "build_autoattack", lambda m, **kw: built.append(kw) or Stub())
    model, x, y = labelled(2, classes=12)
    out = aa.autoattack(model, x, y, eps=0.2)
    torch.testing.assert_close(out, x + 0.01)
    assert built == [{"eps": 0.2, "norm": "linf", "seed": 0, "device": x.device, "components": aa.AA_COMPONENTS,
                      "n_iter": 100, "n_target_classes": 9, "n_queries": 5000}]


def test_autoattack_runs_the_components_and_budget_it_is_given(monkeypatch):
    model, x, y = labelled(4)
    built = []
    real = aa.build_autoattack

    def spy(m, **kw):
        built.append(kw)
        return real(m, **kw)

    monkeypatch.setattr(aa, "build_autoattack", spy)
    # 9 target classes on a 5-class model: clamped to the 4 other classes
    aa.autoattack(model, x, y, eps=1e-4, norm="l2", seed=3, components=["apgd-t"], n_iter=3, n_queries=7)
    assert built[-1] == {"eps": 1e-4, "norm": "l2", "seed": 3, "device": x.device, "components": ["apgd-t"],
                         "n_iter": 3, "n_target_classes": 4, "n_queries": 7}
    aa.autoattack(model, x, y, eps=0.1, n_target_classes=1, components=["fab-t"], n_iter=2)
    assert built[-1]["n_target_classes"] == 1 and built[-1]["norm"] == "linf" and built[-1]["seed"] == 0
    aa.autoattack(model, x, y, eps=0.1, n_target_classes=0, components=["fab-t"], n_iter=2)
    assert built[-1]["n_target_classes"] == 1  # at least one target class
    aa.autoattack(model, x[:1], y[:1], eps=0.1, components=["fab-t"], n_iter=2)
    assert built[-1]["components"] == ["fab-t"] and built[-1]["n_queries"] == 5000 and built[-1]["n_iter"] == 2
    # the budget reaches the attacks: more queries or iterations, more forward passes
    sq = {q: forward_calls(aa.autoattack, model, x, y, eps=1e-4, components=["square"], n_queries=q)
          for q in (5, 10)}
    assert sq[10] - sq[5] == 5
    it = {n: forward_calls(aa.autoattack, model, x, y, eps=1e-4, components=["apgd-t"], n_iter=n,
                           n_target_classes=1) for n in (3, 6)}
    assert it[6] - it[3] == 3
    # every component on rows still robust: the standard order runs all four
    assert forward_calls(aa.autoattack, model, x, y, eps=1e-4, n_iter=2, n_queries=3) > sq[5]


# ---------------------------------------------------------------------------------------------
# suite: resolving config entries, dispatching to the attacks, the batched evaluation


def test_make_attack_resolves_defaults_eps_and_labels():
    from advfeatures.attacks.suite import make_attack

    f = make_attack("f", {"type": "fgsm"}, eps_default=0.1)
    assert (f.name, f.type, f.kwargs, f.bound, f.needs_mask) == ("f", "fgsm", {"eps": 0.1}, "Linf 0.1", False)
    assert make_attack("f", {"type": "fgsm", "eps": 0.05}, eps_default=0.1).kwargs == {"eps": 0.05}
    assert make_attack("f", {"type": "fgsm", "eps": None}, eps_default=0.1).kwargs == {"eps": 0.1}
    assert make_attack("f", {"type": "fgsm", "subset": 10, "models": ["a"]}, eps_default=0.1).kwargs == {"eps": 0.1}
    b = make_attack("b", {"type": "bim", "steps": 4}, eps_default=0.2)
    assert b.kwargs == {"eps": 0.2, "steps": 4, "alpha": pytest.approx(1.25 * 0.2 / 4), "early_stop": False}
    assert make_attack("b", {"type": "bim", "steps": 0}, eps_default=0.2).kwargs["alpha"] == pytest.approx(0.25)
    assert make_attack("b", {"type": "bim", "alpha": 0.03, "early_stop": 1}, eps_default=0.2).kwargs == {
        "eps": 0.2, "steps": 10, "alpha": 0.03, "early_stop": True}
    p = make_attack("p", {"type": "pgd"}, eps_default=0.123456)
    assert p.kwargs == {"eps": 0.123456, "steps": 10, "alpha": pytest.approx(2.3 * 0.123456 / 10),
                        "early_stop": False, "norm": "linf", "random_init": True}
    assert p.bound == "Linf 0.1235" and p.extra == {"spec": {"type": "pgd"}}
    q = make_attack("q", {"type": "pgd", "norm": "l2", "eps": 1.5, "random_start": 0}, eps_default=0.1)
    assert q.bound == "L2 1.5" and q.kwargs["norm"] == "l2" and q.kwargs["random_init"] is False
    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.q.eps: an L2 PGD needs its own eps"):
        make_attack("q", {"type": "pgd", "norm": "l2"}, eps_default=0.1)


def test_make_attack_resolves_cw_nrf_and_the_pyautoattack_types():
    from advfeatures.attacks.suite import make_attack

    c = make_attack("c", {"type": "cw"}, eps_default=0.1)
    assert c.kwargs == {"c": 0.1, "kappa": 0.0, "lr": 0.1, "steps": 200, "eps": None, "stop_checks": 3,
                        "start": "frozen", "search_steps": 0}
    assert c.bound == "unbounded" and not c.needs_mask
    c2 = make_attack("c", {"type": "cw", "bound": "linf", "c": 2.0, "search_steps": "2", "stop_checks": "0",
                           "start": "clamped"}, eps_default=0.1)
    assert c2.kwargs["eps"] == 0.1 and c2.bound == "Linf 0.1" and c2.kwargs["c"] == 2.0
    assert (c2.kwargs["search_steps"], c2.kwargs["stop_checks"], c2.kwargs["start"]) == (2, 0, "clamped")
    n = make_attack("n", {"type": "nrf", "mask": "robust", "maximize": 0}, eps_default=0.1)
    assert n.needs_mask and n.extra["mask"] == "robust" and n.kwargs["maximize"] is False
    assert n.kwargs == {"c": 0.1, "kappa": 0.0, "lr": 0.1, "steps": 200, "eps": None, "stop_checks": 3,
                        "start": "frozen", "maximize": False}
    d = make_attack("n", {"type": "nrf"}, eps_default=0.1)
    assert d.extra["mask"] == "nonrobust" and d.kwargs["maximize"] is True and d.bound == "unbounded"
    nl = make_attack("n", {"type": "nrf", "bound": "linf"}, eps_default=0.1)
    assert nl.kwargs["eps"] == 0.1 and nl.bound == "Linf 0.1"
    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.n.mask must be nonrobust or robust"):
        make_attack("n", {"type": "nrf", "mask": "all"}, eps_default=0.1)
    a = make_attack("a", {"type": "apgd_ce"}, eps_default=0.1)
    assert a.kwargs == {"eps": 0.1, "n_iter": 100, "n_restarts": 1} and a.bound == "Linf 0.1"
    f = make_attack("f", {"type": "fab", "targeted": 1, "n_iter": "7"}, eps_default=0.1)
    assert f.kwargs == {"eps": 0.1, "n_iter": 7, "n_restarts": 1, "targeted": True, "n_target_classes": 9}
    assert f.bound == "Linf 0.1"
    std = make_attack("s", {"type": "autoattack"}, eps_default=0.1)
    assert std.kwargs == {"eps": 0.1, "components": list(aa.AA_COMPONENTS), "n_iter": 100, "n_target_classes": 9,
                          "n_queries": 5000}
    assert std.extra["standard"] is True and std.bound == "Linf 0.1"
    for reduced in ({"n_iter": 99}, {"n_target_classes": 8}, {"n_queries": 4999},
                    {"components": ["apgd-ce", "apgd-t", "fab-t"]}):
        assert make_attack("s", {"type": "autoattack", **reduced}, eps_default=0.1).extra["standard"] is False
    more = make_attack("s", {"type": "autoattack", "n_iter": 200}, eps_default=0.1)
    assert more.extra["standard"] is True
    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.s.components: \['pgd'\] not in"):
        make_attack("s", {"type": "autoattack", "components": ["apgd-ce", "pgd"]}, eps_default=0.1)
    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.s.components: \[\] not in"):
        make_attack("s", {"type": "autoattack", "components": []}, eps_default=0.1)


def test_make_attack_refuses_unknown_types_and_keys_by_name():
    from advfeatures.attacks.suite import ATTACK_TYPES, make_attack

    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.x.type is 'deepfool'; choose one of "
                                               r"\['fgsm'"):
        make_attack("x", {"type": "deepfool"}, eps_default=0.1)
    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.x.type is None"):
        make_attack("x", None, eps_default=0.1)
    with pytest.raises(AdvFeaturesError, match=r"^config key attacks.suite.x has unknown option\(s\) \['steps', "
                                               r"'zz'\] for type fgsm; allowed: \['eps'\]"):
        make_attack("x", {"type": "fgsm", "steps": 3, "zz": 1}, eps_default=0.1)
    assert ATTACK_TYPES == ("fgsm", "bim", "pgd", "cw", "apgd_ce", "autoattack", "fab", "nrf")


def test_with_eps_sweeps_the_linf_budget():
    from advfeatures.attacks.suite import Attack, make_attack

    p = make_attack("p", {"type": "pgd", "steps": 4}, eps_default=0.1).with_eps(0.3)
    assert p.kwargs["eps"] == 0.3 and p.kwargs["alpha"] == pytest.approx(2.3 * 0.3 / 4) and p.bound == "Linf 0.3"
    assert p.name == "p" and p.type == "pgd"
    assert p.extra["spec"] == {"type": "pgd", "steps": 4, "eps": 0.3} and isinstance(p.kwargs["eps"], float)
    c = make_attack("c", {"type": "cw"}, eps_default=0.1).with_eps(0.2)
    assert c.kwargs["eps"] == 0.2 and c.bound == "Linf 0.2"
    with pytest.raises(AdvFeaturesError, match=r"^attack 'h' has no eps to sweep"):
        Attack("h", "fgsm", {}, "none", extra={"spec": {"type": "fgsm"}}).with_eps(0.2)


def recorder(calls, shift=0.0):
    def fn(model, x, y, **kw):
        calls.append({"x": x.clone(), "y": y.clone(), "training": model.training, **kw})
        return x + shift
    return fn


@pytest.mark.parametrize(("spec", "target", "needs"), [
    ({"type": "fgsm"}, "fgsm", ()),
    ({"type": "bim", "steps": 3}, "bim", ()),
    ({"type": "pgd", "steps": 3}, "pgd", ("generator",)),
    ({"type": "cw", "steps": 3}, "cw_l2", ()),
    ({"type": "apgd_ce", "n_iter": 3}, "aa.apgd_ce", ("seed",)),
    ({"type": "autoattack", "n_iter": 3}, "aa.autoattack", ("seed",)),
    ({"type": "fab", "n_iter": 3}, "aa.fab", ("seed",)),
])
def test_each_type_runs_its_attack_with_its_kwargs(monkeypatch, spec, target, needs):
    from advfeatures.attacks import suite

    calls = []
    owner, attr = (aa, target[3:]) if target.startswith("aa.") else (suite, target)
    monkeypatch.setattr(owner, attr, recorder(calls))
    a = suite.make_attack("a", spec, eps_default=0.1)
    model, x, y = labelled(3)
    g = make_generator(1)
    out = a(model, x, y, generator=g, seed=17)
    assert torch.equal(out, x) and len(calls) == 1
    got = calls[0]
    assert torch.equal(got.pop("x"), x) and torch.equal(got.pop("y"), y)
    got.pop("training")
    want = dict(a.kwargs)
    if "generator" in needs:
        want["generator"] = g
    if "seed" in needs:
        want["seed"] = 17
    assert got == want
    if "seed" in needs:  # seed 0 when none is given
        a(model, x, y)
        assert calls[1]["seed"] == 0


def test_nrf_runs_with_the_mask_and_refuses_to_run_without_one(monkeypatch):
    from advfeatures.attacks import suite

    calls = []

    def fake_nrf(model, x, y, mask, **kw):
        calls.append((mask, kw))
        return x

    monkeypatch.setattr(suite, "nrf", fake_nrf)
    a = suite.make_attack("n", {"type": "nrf", "steps": 3}, eps_default=0.1)
    model, x, y = labelled(3)
    mask = torch.ones(3, 8, dtype=torch.bool)
    a(model, x, y, mask=mask)
    assert calls[0][0] is mask and calls[0][1] == a.kwargs
    with pytest.raises(AdvFeaturesError, match=r"^attack 'n' \(nrf\) needs a channel mask; none was given"):
        a(model, x, y)
    bad = suite.Attack("z", "deepfool", {}, "none")
    with pytest.raises(AdvFeaturesError, match=r"^unknown attack type 'deepfool'; choose one of \('fgsm'"):
        bad(model, x, y)


def test_evaluate_attack_runs_batches_seeded_in_eval_mode_and_clamps(monkeypatch):
    from advfeatures.attacks import suite

    calls = []
    draws = []

    def fake_pgd(model, x, y, *, generator, **kw):
        calls.append({"rows": len(x), "training": model.training, "kw": kw})
        draws.append(float(torch.rand(1, generator=generator)))
        return x + torch.tensor([0.7, -0.9]).repeat(len(x) * 9 // 2 + 1)[: len(x) * 9].view_as(x)

    monkeypatch.setattr(suite, "pgd", fake_pgd)
    model = Tiny()
    model.train()
    x = images(10, seed=8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[0] = (y[0] + 1) % 5
    a = suite.make_attack("p", {"type": "pgd", "steps": 2}, eps_default=0.1)
    res = suite.evaluate_attack(model, a, x, y, seed=4, batch_size=4)
    assert [c["rows"] for c in calls] == [4, 4, 2] and not any(c["training"] for c in calls)
    assert model.training
    g = make_generator(derive_seed(4, "attack", "p"))
    assert draws == [float(torch.rand(1, generator=g)) for _ in range(3)]  # one generator across batches
    shifted = x + torch.tensor([0.7, -0.9]).repeat(45)[:90].view_as(x).contiguous()
    want = torch.cat([shifted[s] for s in batches(10, 4)]).clamp(0, 1)
    torch.testing.assert_close(res.x_adv, want)
    assert res.x_adv.dtype == torch.float32 and torch.equal(res.y, y) and res.y is not y
    model.eval()
    with torch.no_grad():
        assert torch.equal(res.pred_clean, model(x).argmax(1)) and torch.equal(res.pred_adv, model(want).argmax(1))
    torch.testing.assert_close(res.linf, (want - x).flatten(1).abs().amax(1))
    torch.testing.assert_close(res.l2, (want - x).flatten(1).norm(dim=1))
    assert res.clean_acc == pytest.approx(float((res.pred_clean == y).float().mean()))
    assert res.robust_acc == pytest.approx(float((res.pred_adv == y).float().mean()))
    assert res.clean_acc == pytest.approx(0.9) and res.robust_acc < 0.9


def test_evaluate_attack_seeds_pyautoattack_per_batch(monkeypatch):
    from advfeatures.attacks import suite

    seeds = []
    monkeypatch.setattr(aa, "apgd_ce", lambda m, x, y, *, seed, **kw: seeds.append(seed) or x)
    a = suite.make_attack("ap", {"type": "apgd_ce", "n_iter": 2}, eps_default=0.1)
    model, x, y = labelled(5)
    suite.evaluate_attack(model, a, x, y, seed=3, batch_size=2, progress=True)
    assert seeds == [derive_seed(3, "attack", "ap", b) for b in range(3)]


def test_evaluate_attack_gives_nrf_the_masks_of_mask_fn(monkeypatch):
    from advfeatures.attacks import suite

    got = []
    monkeypatch.setattr(suite, "nrf", lambda m, x, y, mask, **kw: got.append(mask.clone()) or x)
    seen = []

    model, x, y = labelled(5)

    def mask_fn(m, xb, yb, generator):
        assert m is model and torch.equal(yb, y[:3] if len(yb) == 3 else y[3:])
        seen.append((len(xb), float(torch.rand(1, generator=generator))))
        return (torch.arange(len(xb) * 4).view(len(xb), 4) % 3 == 0).long()  # not bool: the suite casts

    for which, flip in (("nonrobust", True), ("robust", False)):
        got.clear()
        seen.clear()
        a = suite.make_attack("n", {"type": "nrf", "mask": which, "steps": 2}, eps_default=0.1)
        suite.evaluate_attack(model, a, x, y, seed=6, batch_size=3, mask_fn=mask_fn)
        g = make_generator(derive_seed(6, "attack-mask"))
        assert seen == [(3, float(torch.rand(1, generator=g))), (2, float(torch.rand(1, generator=g)))]
        for m, n in zip(got, (3, 2)):
            robust = torch.arange(n * 4).view(n, 4) % 3 == 0
            assert m.dtype == torch.bool and torch.equal(m, ~robust if flip else robust)
    a = suite.make_attack("n", {"type": "nrf", "steps": 2}, eps_default=0.1)
    with pytest.raises(AdvFeaturesError, match=r"^attack 'n' needs bottleneck masks; pass mask_fn"):
        suite.evaluate_attack(model, a, x, y, seed=6)


def test_evaluate_attack_of_no_rows():
    from advfeatures.attacks import suite

    a = suite.make_attack("f", {"type": "fgsm"}, eps_default=0.1)
    x = torch.zeros(0, 1, 3, 3)
    res = suite.evaluate_attack(Tiny(), a, x, torch.zeros(0, dtype=torch.long), seed=0)
    assert res.x_adv.shape == (0, 1, 3, 3) and res.linf.shape == (0,) and res.l2.shape == (0,)
    assert math.isnan(res.clean_acc) and math.isnan(res.robust_acc)


def test_evaluate_attack_is_the_attack_itself():
    from advfeatures.attacks import suite

    model, x, y = labelled(6)
    a = suite.make_attack("p", {"type": "pgd", "steps": 3}, eps_default=0.2)
    res = suite.evaluate_attack(model, a, x, y, seed=2, batch_size=4)
    g = make_generator(derive_seed(2, "attack", "p"))
    want = torch.cat([pgd(model, x[s], y[s], generator=g, **a.kwargs) for s in batches(6, 4)])
    torch.testing.assert_close(res.x_adv, want, atol=1e-6, rtol=0)
    assert float(res.linf.max()) <= 0.2 + 1e-6 and res.robust_acc < res.clean_acc == 1.0


def test_robust_accuracy_vs_eps_rows():
    from advfeatures.attacks import suite

    model = Tiny()
    x = images(10, seed=8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[0] = (y[0] + 1) % 5
    a = suite.make_attack("p", {"type": "pgd", "steps": 3}, eps_default=0.05)
    rows = suite.robust_accuracy_vs_eps(model, a, x, y, [0.0, -1, 0.1, 0.4], seed=1, batch_size=4)
    assert rows[:2] == [{"eps": 0.0, "n": 10, "robust_acc": pytest.approx(0.9), "max_linf": 0.0}] * 2
    for row, eps in zip(rows[2:], (0.1, 0.4)):
        res = suite.evaluate_attack(model, a.with_eps(eps), x, y, seed=1, batch_size=4)
        assert row == {"eps": eps, "n": 10, "robust_acc": pytest.approx(res.robust_acc),
                       "max_linf": pytest.approx(float(res.linf.max()))}
        assert 0 < row["max_linf"] <= eps + 1e-6
    assert rows[3]["robust_acc"] < rows[2]["robust_acc"] <= 0.9


def test_evaluate_attack_shows_a_progress_bar_only_when_asked(capsys):
    from advfeatures.attacks import suite

    model, x, y = labelled(5)
    a = suite.make_attack("fgsm_bar", {"type": "fgsm"}, eps_default=0.1)
    suite.evaluate_attack(model, a, x, y, seed=0, batch_size=2)
    assert capsys.readouterr().err == ""
    suite.evaluate_attack(model, a, x, y, seed=0, batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "fgsm_bar: " in err and "/3 " in err  # named, over the 3 batches
    assert not err.endswith("\n")  # leave=False: the finished bar is erased, not left on its own line


def test_robust_accuracy_vs_eps_runs_no_attack_at_eps_zero_and_passes_the_masks(monkeypatch, caplog):
    from advfeatures.attacks import suite

    calls = []
    monkeypatch.setattr(suite, "nrf", lambda m, x, y, mask, **kw: calls.append((kw["eps"], len(x))) or x + kw["eps"])
    model, x, y = labelled(5)
    a = suite.make_attack("n", {"type": "nrf", "steps": 2}, eps_default=0.1)
    mask_fn = lambda m, xb, yb, g: torch.ones(len(xb), 4, dtype=torch.bool)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        rows = suite.robust_accuracy_vs_eps(model, a, x, y, [0.0, 0.05], seed=0, batch_size=3, mask_fn=mask_fn)
    assert calls == [(0.05, 3), (0.05, 2)]  # eps 0: the clean input, no attack run (and no mask needed)
    assert rows[1]["max_linf"] == pytest.approx(0.05) and rows[0]["robust_acc"] == 1.0
    assert [r.getMessage() for r in caplog.records if r.name == "advfeatures"] == [
        f"n eps=0.05 robust acc {rows[1]['robust_acc']:.4f} (n=5)"]
