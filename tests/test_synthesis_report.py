"""Tests of advfeatures.reporting.ilyas: published column gating, table rows, claims, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advfeatures.reporting import ilyas, matplotlib_headless


def frames(nr_robust: float = 0.0, n: int = 1000, nr_clean: float = 0.85):
    cols = ["set", "train_arch", "arch", "arch_options", "n_test", "clean_acc", "robust_acc_l2", "robust_acc_linf",
            "transfer_rate", "transfer_n"]
    evals = pd.DataFrame(
        [
            ["d_r", "lenet5", "lenet5", "{}", n, 0.90, 0.40, 0.30, 0.2, 20],
            ["d_nr", "lenet5", "lenet5", "{}", n, nr_clean, nr_robust, 0.0, 0.9, 30],
            ["d_rand", "lenet5", "lenet5", "{}", n, 0.45, 0.0, 0.0, 0.8, 25],
            ["d_det", "lenet5", "lenet5", "{}", n, 0.35, 0.0, 0.0, 0.7, 25],
            ["d_rand", "lenet5_w2", "lenet5", "{'width': 2}", n, 0.55, 0.0, 0.0, 0.85, 24],
        ],
        columns=cols,
    )
    ref = pd.DataFrame(
        [["D (standard)", "lenet5", "lenet5", "", n, 0.98, 0.05, 0.1, 1.0, 30],
         ["D (pgd_l2)", "lenet5", "lenet5", "", n, 0.97, 0.6, 0.5, 0.1, 30]],
        columns=cols,
    )
    return evals, ref


def test_published_only_in_the_papers_setting():
    l2 = {"l2": {"eps": 0.25}}
    assert ilyas.published_applies("cifar10", "resnet50", l2)
    assert not ilyas.published_applies("mnist5k", "lenet5", l2)
    assert not ilyas.published_applies("cifar10", "resnet50", {"l2": {"eps": 0.5}})
    evals, ref = frames()
    stats = {"d_r": {"label_hit": 0.9, "rep_distance": 0.2}}
    on = ilyas.datasets_table(evals[evals.train_arch == "lenet5"], ref, stats, robust_method="pgd_l2", with_published=True)
    off = ilyas.datasets_table(evals[evals.train_arch == "lenet5"], ref, stats, robust_method="pgd_l2", with_published=False)
    assert len(on) == 6 and on["published clean acc"].tolist()[0] == 95.3
    assert on["published clean acc"].isna().tolist() == [False, True, False, False, False, False]
    assert off["published clean acc"].isna().all()
    assert on.loc[2, "clean acc"] == 90.0 and on.loc[2, "source model agrees with label"] == 90.0


def test_claims_follow_the_measurements():
    evals, ref = frames()
    cl = ilyas.claims(evals, ref, num_classes=10)
    assert [c.verdict for c in cl] == ["holds"] * 6
    assert "headline" in cl[0].claim and cl[0].measured == pytest.approx(35.0)  # D_R vs D, same arch
    evals2, _ = frames(nr_robust=0.5)  # d_nr robust: both robustness claims must fail
    cl = ilyas.claims(evals2, ref, num_classes=10)
    assert [c.verdict for c in cl[:4]] == ["holds", "fails", "holds", "fails"]


def test_model_at_chance_makes_its_claims_not_testable():
    evals, ref = frames(nr_clean=0.105)  # D_NR model at chance (10 classes)
    cl = ilyas.claims(evals, ref, num_classes=10)
    uses_dnr = [c for c in cl if "D_NR" in c.claim]
    assert len(uses_dnr) == 3
    assert all(c.verdict == "not testable" and "d_nr at chance" in c.reason for c in uses_dnr)
    assert [c.verdict for c in cl if "D_NR" not in c.claim] == ["holds"] * 3
    # on n = 100 rows, 3 points above the level is within the uncertainty
    evals, ref = frames(n=100)
    det = ilyas.claims(evals.assign(clean_acc=evals.clean_acc.where(evals.set != "d_det", 0.33)), ref, 10)[-1]
    assert det.verdict == "inconclusive"


def test_tables_carry_n_and_wilson_intervals():
    evals, ref = frames()
    t = ilyas.datasets_table(evals[evals.train_arch == "lenet5"], ref, {}, robust_method="pgd_l2", with_published=False)
    assert (t["n"] == 1000).all()
    row = t.iloc[0]  # D (standard): 98% of 1000
    assert (row["clean acc lo"], row["clean acc hi"]) == pytest.approx((96.9, 98.7), abs=0.05)


def test_figures_and_transfer_table(tmp_path):
    matplotlib_headless()
    evals, _ = frames()
    df = ilyas.transfer_table(evals, "d_rand")
    assert df["architecture"].tolist() == ["lenet5", "lenet5_w2"] and df["transfer rate"].tolist() == [80.0, 85.0]
    ilyas.transfer_figure(df, "d_rand", "l2").savefig(tmp_path / "t.png")
    rng = np.random.default_rng(0)
    x = rng.random((12, 1, 8, 8)).astype(np.float32)
    ys = np.arange(12) % 3
    sets = {k: {"x": x[::-1].copy(), "y": (ys + 1) % 3, "source_index": np.arange(12)} for k in ilyas.SET_ORDER}
    rows = ilyas.sample_rows(np.arange(12), ys, 2, seed=0)
    assert len(rows) == 6 and sorted(ys[rows].tolist()) == [0, 0, 1, 1, 2, 2]
    fig = ilyas.samples_figure(x, sets, rows, ["a", "b", "c"])
    assert len(fig.axes) == 5 * 6
    fig.savefig(tmp_path / "s.png")
