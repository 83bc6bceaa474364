"""Verdicts of the claims and the statistics behind them (advfeatures.stats, reporting.verdicts)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest

from advfeatures import stats
from advfeatures.mutual_info import binning_mi, kde_mi
from advfeatures.reporting import Claim, adjust, verdicts
from advfeatures.reporting import attacks as rep
from advfeatures.utils import AdvFeaturesError

CFG = verdicts.settings()


# ----------------------------------------------------------------------------- statistics


def test_wilson_matches_known_values_and_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    # textbook values (Newcombe 1998, Table I): 81/263 -> 0.2553 .. 0.3662; 0/10 -> 0 .. 0.2775
    assert stats.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.wilson(7, 20, 0.1) == pytest.approx(proportion_confint(7, 20, 0.1, method="wilson"))
    assert all(math.isnan(v) for v in stats.wilson(0, 0))


def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs():
    # 9 rows only a is right, 1 row only b, 40 both, 50 neither
    a = np.array([1] * 9 + [0] * 1 + [1] * 40 + [0] * 50, bool)
    b = np.array([0] * 9 + [1] * 1 + [1] * 40 + [0] * 50, bool)
    t = stats.mcnemar_paired(a, b)
    assert (t["n10"], t["n01"], t["n"]) == (9, 1, 100)
    assert t["p_value"] == pytest.approx(binomtest(1, 10, 0.5).pvalue) == pytest.approx(0.021484375)
    assert t["diff"] == pytest.approx(0.08) and t["ci_low"] < 0.08 < t["ci_high"]
    assert stats.mcnemar_paired(a, a)["p_value"] == 1.0  # no discordant pairs
    with pytest.raises(AdvFeaturesError, match="equal lengths"):
        stats.mcnemar_paired(a, b[:5])


def test_paired_interval_is_newcombes_and_disagreement_is_inconclusive():
    """Newcombe (1998) method 10 for paired proportions, his worked example (Altman et al.,
    Statistics with confidence, Table 6.2: 14 both, 5 only a, 0 only b, 22 neither): 0.1220,
    95% CI 0.0115 to 0.2265.  The unpaired interval of the same marginals is wider."""
    a = np.array([1] * 14 + [1] * 5 + [0] * 22, bool)
    b = np.array([1] * 14 + [0] * 5 + [0] * 22, bool)
    t = stats.mcnemar_paired(a, b)
    assert t["diff"] == pytest.approx(0.1220, abs=1e-4)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((0.0115, 0.2265), abs=1e-4)
    unpaired = stats.two_proportions(19, 41, 14, 41)
    assert unpaired["ci_high"] - unpaired["ci_low"] > t["ci_high"] - t["ci_low"]
    # exact McNemar p = 0.0625 here while the interval excludes 0: Claim makes that inconclusive
    assert t["p_value"] == pytest.approx(0.0625)
    c = Claim("s", "c", 100 * t["diff"], ">", 0.0, p_value=t["p_value"], ci_low=100 * t["ci_low"],
              ci_high=100 * t["ci_high"])
    assert c.verdict == "inconclusive"


def test_two_proportions_and_slopes():
    t = stats.two_proportions(60, 100, 30, 100)
    assert t["diff"] == pytest.approx(0.3) and t["p_value"] < 1e-4 and 0.15 < t["ci_low"] < t["ci_high"] < 0.45
    assert stats.two_proportions(0, 50, 0, 50)["p_value"] == 1.0
    x = np.log1p([1, 2, 3, 5, 8])
    s = stats.slope_difference(x, 2 * x + 1, x, 0.5 * x + np.array([0, 0.01, -0.01, 0.0, 0.01]))
    assert s["diff"] == pytest.approx(1.5, abs=0.02) and s["ci_low"] > 1.4 and s["p_value"] < 1e-6


def test_slope_difference_uses_welch_degrees_of_freedom():
    """Welch-Satterthwaite: dof = (v1 + v2)^2 / (v1^2 / (n1 - 2) + v2^2 / (n2 - 2)) from the two
    fits' squared standard errors; equal variances and sizes give n1 + n2 - 4."""
    from scipy.stats import linregress
    from scipy.stats import t as student

    rng = np.random.default_rng(0)
    x1, x2 = np.arange(8.0), np.arange(5.0)
    y1, y2 = 2 * x1 + rng.normal(0, 0.1, 8), 0.5 * x2 + rng.normal(0, 2.0, 5)
    s = stats.slope_difference(x1, y1, x2, y2)
    v1, v2 = linregress(x1, y1).stderr ** 2, linregress(x2, y2).stderr ** 2
    dof = (v1 + v2) ** 2 / (v1 ** 2 / 6 + v2 ** 2 / 3)
    assert s["dof"] == pytest.approx(dof) and 3 <= s["dof"] < 9
    assert s["p_value"] == pytest.approx(2 * student.sf(abs(s["diff"]) / s["se"], dof))
    e = rng.normal(0, 1, 6)
    same = stats.slope_difference(np.arange(6.0), e, np.arange(6.0), -e)
    assert same["dof"] == pytest.approx(8.0)


def test_half_samples_have_no_duplicates_and_the_spread_of_a_full_sample():
    w = stats.half_sample_weights(50, 30, seed=3)
    assert w.shape == (50, 30) and set(np.unique(w)) == {0, 1} and (w.sum(0) == 25).all()
    assert np.array_equal(w, stats.half_sample_weights(50, 30, seed=3))
    # KDE I(X;T) of 200 Gaussian points: the half-sample spread from ONE sample matches the
    # spread of the estimate over 40 independent samples (within a factor 1.5)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 4
    draws = [kde_mi(torch.randn(200, 3, generator=g), y, 0.1)["kde_upper"][0] for _ in range(40)]
    t = torch.randn(200, 3, generator=g)
    b = {}
    kde_mi(t, y, 0.1, weights=stats.half_sample_weights(200, 200, seed=1), boot=b)
    ratio = float(np.std(b["kde_upper"]) / np.std(draws))
    assert 1 / 1.5 < ratio < 1.5


def test_bootstrap_p_inverts_the_centred_interval():
    reps = np.random.default_rng(1).normal(5.0, 1.0, 999)
    lo, hi = stats.centred_ci(1.5, reps, 0.05)
    assert lo < 0 < hi and stats.bootstrap_p(1.5, reps) > 0.05
    lo, hi = stats.centred_ci(4.0, reps, 0.05)
    assert lo > 0 and stats.bootstrap_p(4.0, reps) < 0.05
    assert stats.bootstrap_p(100.0, reps) == pytest.approx(2 / 1000)  # never 0: (1 + 0) / (B + 1), twice
    assert math.isnan(stats.bootstrap_p(1.0, np.zeros(1)))


def test_bootstrap_is_seeded_and_reproducible():
    w1, w2 = stats.bootstrap_weights(50, 20, seed=7), stats.bootstrap_weights(50, 20, seed=7)
    assert w1.shape == (50, 20) and (w1.sum(0) == 50).all() and np.array_equal(w1, w2)
    assert not np.array_equal(w1, stats.bootstrap_weights(50, 20, seed=8))
    g = torch.Generator().manual_seed(0)
    t, y = torch.randn(50, 6, generator=g), torch.arange(50) % 5
    b1, b2 = {}, {}
    kde_mi(t, y, 0.5, weights=w1, boot=b1)
    kde_mi(t, y, 0.5, weights=w2, boot=b2, block_rows=7)  # blocks do not change the replicates
    assert np.allclose(b1["kde_upper"], b2["kde_upper"]) and b1["kde_upper"].shape == (20,)
    assert np.ptp(b1["kde_upper"]) > 0
    # one resample that takes every sample once is the estimate itself
    ones = np.ones((50, 1), np.int64)
    b = {}
    point = kde_mi(t, y, 0.5, weights=ones, boot=b)
    assert b["kde_upper"][0] == pytest.approx(point["kde_upper"][0])
    assert b["kde_lower"][0] == pytest.approx(point["kde_lower"][0])
    b = {}
    assert binning_mi(t, y, 0.5, weights=ones, boot=b)[0] == pytest.approx(b["binning"][0])
    # a resample of one sample repeated: KDE and binning I(X;T) of identical points are 0
    single = np.zeros((50, 1), np.int64)
    single[3] = 50
    b = {}
    kde_mi(t, y, 0.5, weights=single, boot=b)
    binning_mi(t, y, 0.5, weights=single, boot=b)
    assert b["kde_upper"][0] == pytest.approx(0.0, abs=1e-9) and b["binning"][0] == pytest.approx(0.0)
    assert np.allclose(stats.decode_replicates(stats.encode_replicates([1.0, 2.5])), [1.0, 2.5])


# ----------------------------------------------------------------------------- verdicts


def test_verdict_rules():
    sig = dict(p_value=0.001, ci_low=5.0, ci_high=15.0)
    assert Claim("s", "c", 10.0, ">", 0.0, **sig).verdict == "holds"
    assert Claim("s", "c", -10.0, ">", 0.0, p_value=0.001, ci_low=-15.0, ci_high=-5.0).verdict == "fails"
    assert Claim("s", "c", 10.0, ">", 0.0, p_value=0.2, ci_low=-2.0, ci_high=22.0).verdict == "inconclusive"
    # "<" claims: the mirror image
    assert Claim("s", "c", -10.0, "<", 0.0, p_value=0.001, ci_low=-15.0, ci_high=-5.0).verdict == "holds"
    assert Claim("s", "c", 10.0, "<", 0.0, **sig).verdict == "fails"
    # every verdict needs both a test and an interval
    assert Claim("s", "c", 10.0, ">", 0.0, p_value=0.001).verdict == "inconclusive"
    assert Claim("s", "c", 0.5, ">", 0.0, ci_low=0.2, ci_high=0.8).verdict == "inconclusive"
    # the interval clears the threshold but the test does not reject: no verdict
    split = Claim("s", "c", 12.2, ">", 0.0, p_value=0.0625, ci_low=1.15, ci_high=22.65)
    assert split.verdict == "inconclusive" and "does not reject" in split.reason
    # a failed precondition wins over everything, even a huge significant effect
    dead = Claim("s", "c", 1e6, ">", 0.0, untestable="model m at chance", **sig)
    assert (dead.verdict, dead.reason) == ("not testable", "model m at chance")
    assert not dead.holds
    assert Claim("s", "c", math.nan, ">", 0.0, **sig).verdict == "not testable"
    row = Claim("s", "c", 10.0, ">", 0.0, **sig).row()
    assert row["verdict"] == "holds" and "holds" not in row and "reason" in row and "p_adjusted" in row


def test_an_interval_straddling_the_minimum_effect_is_inconclusive():
    """Effect 2.5 points, CI [0.3, 4.7], minimum effect 2: the point estimate clears the minimum
    effect, the interval does not, so the data cannot tell a 2-point effect from a 0.3-point one."""
    c = Claim("s", "c", 2.5, ">", 0.0, min_effect=2.0, p_value=0.03, ci_low=0.3, ci_high=4.7)
    assert c.verdict == "inconclusive" and "straddles" in c.reason
    assert Claim("s", "c", 4.5, ">", 0.0, min_effect=2.0, p_value=1e-4, ci_low=2.3, ci_high=6.7).verdict == "holds"


def test_a_precise_null_fails_a_greater_than_claim():
    """CI [-0.4, 0.6] points against a claimed effect of at least 2 points: the interval excludes
    the claimed effect, so the claim fails (it was only inconclusive under the old rule)."""
    c = Claim("s", "c", 0.1, ">", 0.0, min_effect=2.0, p_value=0.7, ci_low=-0.4, ci_high=0.6)
    assert c.verdict == "fails" and "smaller than claimed" in c.reason
    # with no minimum effect the same interval still admits a (tiny) positive effect
    assert Claim("s", "c", 0.1, ">", 0.0, p_value=0.7, ci_low=-0.4, ci_high=0.6).verdict == "inconclusive"
    # and a "<" level claim: robust accuracy 30% [25, 35] against "at most 10%" fails
    assert Claim("s", "c", 30.0, "<=", 10.0, p_value=1e-9, ci_low=25.0, ci_high=35.0).verdict == "fails"


def test_holm_within_each_study_and_verdicts_from_the_adjusted_p():
    """Three claims of one study with p = 0.01, 0.02, 0.04: Holm multiplies by 3, 2, 1 (step-down,
    monotone), so only the first stays below 0.05; another study is corrected on its own."""
    from statsmodels.stats.multitest import multipletests

    ci = dict(ci_low=5.0, ci_high=15.0)
    cs = [Claim("a", f"c{i}", 10.0, ">", 0.0, p_value=p, **ci) for i, p in enumerate((0.01, 0.02, 0.04))]
    other = Claim("b", "d", 10.0, ">", 0.0, p_value=0.04, **ci)
    dead = Claim("a", "x", 10.0, ">", 0.0, p_value=1e-9, untestable="no rows", **ci)
    adjust(cs + [other, dead])
    expect = multipletests([0.01, 0.02, 0.04], method="holm")[1]
    assert [c.p_adjusted for c in cs] == pytest.approx(list(expect))
    assert list(expect) == pytest.approx([0.03, 0.04, 0.04])
    assert other.p_adjusted == pytest.approx(0.04) and math.isnan(dead.p_adjusted)
    assert [c.verdict for c in cs] == ["holds", "holds", "holds"]
    cs = [Claim("a", f"c{i}", 10.0, ">", 0.0, p_value=p, **ci) for i, p in enumerate((0.01, 0.03, 0.04))]
    adjust(cs)
    assert [c.verdict for c in cs] == ["holds", "inconclusive", "inconclusive"]
    assert "Holm-adjusted" in cs[1].reason


def test_gather_redoes_holm_over_every_file_of_a_study(tmp_path):
    """ilyas.csv and ilyas_transfer.csv both hold study "ilyas": results/claims.csv corrects them together."""
    from advfeatures.reporting import gather_claims, write_claims

    ci = dict(ci_low=5.0, ci_high=15.0)
    write_claims([Claim("ilyas", "a", 10.0, ">", 0.0, p_value=0.03, **ci)], tmp_path / "a.csv")
    write_claims([Claim("ilyas", "b", 10.0, ">", 0.0, p_value=0.04, **ci),
                  Claim("ilyas", "c", 1.0, ">", 0.0, untestable="too few rows")], tmp_path / "b.csv")
    alone = pd.read_csv(tmp_path / "a.csv")
    assert alone["verdict"].tolist() == ["holds"] and alone["p_adjusted"].tolist() == [0.03]
    df = gather_claims([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "all.csv")
    assert df["p_adjusted"].tolist()[:2] == pytest.approx([0.06, 0.06])
    assert df["verdict"].tolist() == ["inconclusive", "inconclusive", "not testable"]
    assert df["reason"].tolist()[2] == "too few rows"


def test_write_claims_adjusts_and_writes_both_p_values(tmp_path):
    from advfeatures.reporting import write_claims

    cs = [Claim("a", f"c{i}", 10.0, ">", 0.0, p_value=p, ci_low=5.0, ci_high=15.0) for i, p in enumerate((0.01, 0.03))]
    df = write_claims(cs, tmp_path / "c.csv")
    assert list(df["p_value"]) == [0.01, 0.03] and list(df["p_adjusted"]) == pytest.approx([0.02, 0.03])


def _records(acc_a: float, acc_b: float, n: int = 100, clean: float = 0.95, robust_channels: int = 8):
    """Two paired attack records on the same n rows (robust accuracies in fractions): Linf NRF
    (IB masks with ``robust_channels`` of 16) and Linf PGD at the same eps."""
    y = np.zeros(n, np.int64)
    index = np.arange(n)
    base = {"method": "pgd_linf", "norm": "linf", "mask": "nonrobust", "maximize": True, "standard": False,
            "index": index, "y": y, "n": n, "clean_acc": 100 * clean, "bound": "Linf 0.1", "degenerate": False,
            "kwargs": {"c": 1.0, "kappa": 0.0, "lr": 0.1, "steps": 200}, "mask_robust": None}
    # rows paired: a is right on the first acc_a*n rows, b on the first acc_b*n rows
    nrf = {**base, "attack": "nrf_linf", "type": "nrf", "correct_adv": index < round(acc_a * n),
           "mask_robust": np.tile(np.arange(16) < robust_channels, (n, 1))}
    pgd = {**base, "attack": "pgd", "type": "pgd", "mask": "", "correct_adv": index < round(acc_b * n)}
    return [pgd, nrf]


def test_one_point_on_100_rows_is_inconclusive_thirty_points_hold():
    (one,) = rep.claims(_records(0.40, 0.41), ["pgd_linf"], num_classes=10, cfg=CFG)
    assert one.measured == pytest.approx(-1.0) and one.verdict == "inconclusive"
    (clear,) = rep.claims(_records(0.10, 0.40), ["pgd_linf"], num_classes=10, cfg=CFG)
    assert clear.measured == pytest.approx(-30.0) and clear.verdict == "holds"
    assert clear.p_value == pytest.approx(binomtest(0, 30, 0.5).pvalue)  # 30 discordant rows, all one way
    (wrong,) = rep.claims(_records(0.40, 0.10), ["pgd_linf"], num_classes=10, cfg=CFG)
    assert wrong.verdict == "fails"


def test_attacks_on_a_model_at_chance_are_not_testable():
    (c,) = rep.claims(_records(0.0, 0.40, clean=0.105), ["pgd_linf"], num_classes=10, cfg=CFG)
    assert c.verdict == "not testable" and "at chance" in c.reason


def test_mismatched_budgets_get_no_verdict():
    """Unbounded NRF against Linf PGD / APGD-CE / AutoAttack, or Linf NRF against unbounded CW: no
    claim at all (the pairs stay in Table 3); only unbounded NRF vs unbounded CW and Linf NRF vs
    Linf baselines at the same eps are compared."""
    pgd, nrf = _records(0.10, 0.40)
    unbounded_nrf = {**nrf, "attack": "nrf", "bound": "unbounded"}
    cw = {**pgd, "attack": "cw", "type": "cw", "norm": "l2", "bound": "unbounded"}
    apgd = {**pgd, "attack": "apgd_ce", "type": "apgd_ce", "bound": "Linf 0.2"}  # another eps
    assert rep.claims([pgd, apgd, unbounded_nrf], ["pgd_linf"], num_classes=10, cfg=CFG) == []
    assert rep.claims([cw, nrf], ["pgd_linf"], num_classes=10, cfg=CFG) == []
    (matched,) = rep.claims([cw, unbounded_nrf], ["pgd_linf"], num_classes=10, cfg=CFG)
    assert matched.claim == "ADV: unbounded NRF stronger than unbounded CW (paper Table 3)"
    assert matched.verdict == "holds" and matched.key == "attacks.nrf_vs_cw"
    # the same budget but another c: NRF's feature term is not the only difference
    (other_c,) = rep.claims([{**cw, "kwargs": {**cw["kwargs"], "c": 0.1}}, unbounded_nrf], ["pgd_linf"],
                            num_classes=10, cfg=CFG)
    assert other_c.verdict == "not testable" and "differ in c (0.1 vs 1.0)" in other_c.reason
    names = [c.claim for c in rep.claims([pgd, {**apgd, "bound": "Linf 0.1"}, nrf], ["pgd_linf"], num_classes=10,
                                         cfg=CFG)]
    assert names == ["ADV: NRF stronger than PGD at the same budget (Linf 0.1)",
                     "ADV: NRF stronger than APGD-CE at the same budget (Linf 0.1)"]


def test_empty_or_missing_masks_make_nrf_claims_not_testable():
    """An IB mask with no robust channel makes NRF CW plus a push along the whole margin gradient:
    a 30-point effect on such a mask must not hold."""
    (empty,) = rep.claims(_records(0.10, 0.40, robust_channels=0), ["pgd_linf"], num_classes=10, cfg=CFG)
    assert empty.measured == pytest.approx(-30.0)
    assert empty.verdict == "not testable" and "degenerate (0.00 robust / 16.00 non-robust" in empty.reason
    pgd, nrf = _records(0.10, 0.40)
    (old,) = rep.claims([pgd, {**nrf, "mask_robust": None}], ["pgd_linf"], num_classes=10, cfg=CFG)
    assert old.verdict == "not testable" and "stores no IB masks" in old.reason


def test_table4_ablations_need_the_same_masks():
    pgd, nrf = _records(0.10, 0.40)
    down = {**nrf, "attack": "nrf_min_nr", "maximize": False, "correct_adv": pgd["correct_adv"]}
    r_up = {**nrf, "attack": "nrf_max_r", "mask": "robust", "correct_adv": pgd["correct_adv"]}
    cl = {c.key: c for c in rep.claims([nrf, down, r_up], ["pgd_linf"], num_classes=10, cfg=CFG)}
    assert set(cl) == {"attacks.max_vs_min_gnr", "attacks.max_gnr_vs_max_gr"}
    assert all(c.verdict == "holds" and c.measured == pytest.approx(-30.0) for c in cl.values())
    other = np.tile(np.arange(16) >= 8, (100, 1))  # as many channels, other ones
    (c,) = [c for c in rep.claims([nrf, {**down, "mask_robust": other}], ["pgd_linf"], num_classes=10, cfg=CFG)]
    assert c.verdict == "not testable" and "different IB masks on 100%" in c.reason


def test_preconditions():
    assert verdicts.model_precondition("m", 11.0, 10, CFG).startswith("model m at chance")
    assert verdicts.model_precondition("m", 50.0, 10, CFG) == ""
    assert "non-finite" in verdicts.model_precondition("m", math.nan, 10, CFG)
    assert "degenerate" in verdicts.model_precondition("m", 90.0, 10, CFG, degenerate=True)
    keep_all = np.ones((100, 16), bool)
    assert "degenerate" in verdicts.mask_precondition("x", keep_all, CFG)
    half = np.zeros((100, 16), bool)
    half[:, :8] = True
    assert verdicts.mask_precondition("x", half, CFG) == ""
    mostly_empty = half.copy()
    mostly_empty[:60] = True  # 60% of rows: no non-robust channel, although 3.2 per sample on average
    reason = verdicts.mask_precondition("x", mostly_empty, CFG)
    assert "empty for 60% of samples" in reason
    assert "ceiling" in verdicts.mi_precondition("l", [5.0, math.log2(1000) - 0.01], 1000, CFG)
    assert "of 0" in verdicts.mi_precondition("l", [5.0, 0.0], 1000, CFG)
    assert verdicts.mi_precondition("l", [5.0, 6.0], 1000, CFG) == ""
    assert "too few rows" in verdicts.rows_precondition("rows", 29, CFG)


def test_settings_name_a_missing_key():
    cfg = verdicts.settings()  # config.yaml's report.claims
    assert cfg.alpha == 0.05 and cfg.min_effect("kim2021_attacks", "nrf_vs_cw") == 2.0
    with pytest.raises(AdvFeaturesError, match=r"report\.claims\.attacks\.nope\.min_effect"):
        cfg.min_effect("kim2021_attacks", "nope")
    with pytest.raises(AdvFeaturesError, match=r"report\.claims\.alpha"):
        verdicts.settings({"chance_margin": 2})


def test_wilson_columns_beside_accuracies():
    df = verdicts.add_wilson(pd.DataFrame({"n": [100, 0], "acc": [50.0, 10.0]}), ["acc"])
    assert list(df.columns) == ["n", "acc", "acc lo", "acc hi"]
    assert (df.loc[0, "acc lo"], df.loc[0, "acc hi"]) == pytest.approx(
        tuple(100 * v for v in stats.wilson(50, 100, CFG.alpha)))
    assert math.isnan(df.loc[1, "acc lo"])
    # the run's alpha reaches every table interval through verdicts.level
    with verdicts.level(0.2):
        narrow = verdicts.add_wilson(pd.DataFrame({"n": [100], "acc": [50.0]}), ["acc"])
    assert (narrow.loc[0, "acc lo"], narrow.loc[0, "acc hi"]) == pytest.approx(
        tuple(100 * v for v in stats.wilson(50, 100, 0.2)))
    with pytest.raises(AdvFeaturesError, match="alpha"):
        with verdicts.level(1.5):
            pass
