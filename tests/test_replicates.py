"""advfeatures.replicates against hand computations (t quantiles from scipy, DL by its formula)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from advfeatures import replicates as rep
from advfeatures.reporting import replicates as rr
from advfeatures.utils import AdvFeaturesError


def test_between_replicates_t_interval():
    s = rep.between_replicates([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd sqrt(5/3) = 1.29099, sem 0.645497, t_{0.975, 3} = 3.182446
    assert (s.mean, s.sd, s.k) == pytest.approx((2.5, 1.290994, 4), abs=1e-6)
    assert (s.ci_low, s.ci_high) == pytest.approx((2.5 - 2.054266, 2.5 + 2.054266), abs=1e-5)
    assert "t interval on 3 df" in s.method
    narrow = rep.between_replicates([1.0, 2.0, 3.0, 4.0], alpha=0.5)
    assert s.ci_low < narrow.ci_low < narrow.ci_high < s.ci_high
    same = rep.between_replicates([7.0, 7.0])
    assert (same.ci_low, same.ci_high, same.sd) == (7.0, 7.0, 0.0) and "no interval" in same.method


def test_replicates_that_agree_exactly_get_their_within_intervals_combined():
    # 2 of 500 test rows three times: the t interval is the point 0.4, as if known exactly
    within = [(0.1, 1.4)] * 3
    s = rep.between_replicates([0.4, 0.4, 0.4], within=within, bounds=(0.0, 100.0))
    se = rep.se_from_interval(0.1, 1.4) / math.sqrt(3)  # fixed effect of three equal standard errors
    q = sps.t.ppf(0.975, 2)
    assert (s.mean, s.sd) == (0.4, 0.0)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.0, 0.4 + q * se))  # the low end cut to the range
    assert "gave the same value" in s.method and "cut to [0, 100]" in s.method
    # with spread the within intervals are not used: the t interval of the values
    t = rep.between_replicates([0.2, 0.4, 0.6], within=within)
    assert (t.ci_low, t.ci_high) == pytest.approx(sps.t.interval(0.95, 2, loc=0.4, scale=0.2 / math.sqrt(3)))
    # a within interval of zero width or missing: nothing to combine, the point stays
    for bad in ([(0.4, 0.4)] * 3, [(math.nan, 1.0)] * 3, [(0.1, 1.4)] * 2):
        assert (lambda p: (p.ci_low, p.ci_high))(rep.between_replicates([0.4] * 3, within=bad)) == (0.4, 0.4)


def test_an_interval_is_cut_to_the_range_of_its_quantity():
    free = rep.between_replicates([96.0, 99.5])  # t on 1 df: 97.75 +- 22.2
    assert free.ci_high > 100 and free.ci_low < 96
    cut = rep.between_replicates([96.0, 99.5], bounds=(0.0, 100.0))
    assert (cut.mean, cut.sd) == (free.mean, free.sd)
    assert (cut.ci_low, cut.ci_high) == (free.ci_low, 100.0) and "cut to [0, 100]" in cut.method
    low = rep.between_replicates([0.0, 2.0], bounds=(0.0, 100.0))
    assert low.ci_low == 0.0 and low.ci_high < 100


def test_combined_accuracy_intervals_stay_in_their_range():
    frames = [pd.DataFrame({"model": ["standard"], "attack": ["clean"], "n": [500], "accuracy": [v]})
              for v in (96.0, 99.5)]
    mean = rr.combine_tables(frames, "kim_table3").query("replicate == 'mean'").iloc[0]
    assert mean["accuracy hi"] == 100.0 and mean["accuracy lo"] < 96.0
    mi = [pd.DataFrame({"method": ["standard"], "epoch": [1], "input": ["clean"], "layer": [1],
                        "estimator": ["binning"], "n": [100], "accuracy": [v]}) for v in (0.96, 0.995)]
    assert rr.combine_tables(mi, "mutual_info_final").query("replicate == 'mean'").iloc[0]["accuracy hi"] == 1.0


def test_one_replicate_says_it_is_about_one_model():
    s = rep.between_replicates([12.0])
    assert s.mean == 12.0 and s.k == 1 and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert "one trained model" in s.method
    t = rep.replicate_effect_test([3.0], [1.0])
    assert t["measured"] == 2.0 and t["n"] == 1 and math.isnan(t["p_value"]) and "one trained model" in t["test"]
    r = rep.random_effects([50.0], [2.0])
    assert (r.ci_low, r.ci_high) == pytest.approx((50 - 1.959964 * 2, 50 + 1.959964 * 2), abs=1e-5)
    assert "one trained model" in r.method


def test_random_effects_dersimonian_laird_by_hand():
    est, var = np.array([50.0, 55.0, 47.0]), np.array([4.0, 5.0, 4.5])
    w = 1 / var
    fixed = (w * est).sum() / w.sum()
    q = (w * (est - fixed) ** 2).sum()
    tau2 = max(0.0, (q - 2) / (w.sum() - (w**2).sum() / w.sum()))
    w_re = 1 / (var + tau2)
    mean = (w_re * est).sum() / w_re.sum()
    se = math.sqrt(1 / w_re.sum())
    t = sps.t.ppf(0.975, 2)
    r = rep.random_effects(est, np.sqrt(var), method="dl")
    assert tau2 == pytest.approx(10.8333, abs=1e-4) and mean == pytest.approx(50.6136, abs=1e-4)
    assert (r.tau2, r.mean) == pytest.approx((tau2, mean), rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx((mean - t * se, mean + t * se), rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx((40.8897, 60.3375), abs=1e-4)
    assert r.p_value == pytest.approx(2 * sps.t.sf(mean / se, 2), rel=1e-9)
    # the within-replicate uncertainty is kept: wider than the between-replicate t interval alone
    # would be with tau2 = 0, and the combination is not the plain mean (53.0 / 3 = 50.67)
    assert r.ci_high - r.ci_low > 2 * t * math.sqrt(1 / w.sum())


def test_random_effects_paule_mandel_solves_its_equation():
    est, se = np.array([50.0, 55.0, 47.0, 60.0]), np.array([2.0, 2.2, 2.1, 1.5])
    r = rep.random_effects(est, se, method="pm")
    w = 1 / (se**2 + r.tau2)
    m = (w * est).sum() / w.sum()
    assert m == pytest.approx(r.mean, rel=1e-6)
    assert (w * (est - m) ** 2).sum() == pytest.approx(len(est) - 1, rel=1e-4)  # the PM estimating equation
    assert "Paule-Mandel" in r.method


def test_random_effects_from_intervals():
    z = sps.norm.ppf(0.975)
    ivs = [(50 - 2 * z, 50 + 2 * z), (55 - 3 * z, 55 + 3 * z)]
    assert rep.se_from_interval(*ivs[1]) == pytest.approx(3.0)
    a = rep.random_effects([50.0, 55.0], intervals=ivs)
    b = rep.random_effects([50.0, 55.0], [2.0, 3.0])
    num = ("mean", "ci_low", "ci_high", "p_value", "tau2", "sd")
    assert [getattr(a, f) for f in num] == pytest.approx([getattr(b, f) for f in num], rel=1e-9)


def test_replicate_effect_test_paired_t():
    t = rep.replicate_effect_test([10.0, 12.0, 14.0], [4.0, 5.0, 9.0])  # effects 6, 7, 5
    # mean 6, sd 1, sem 1/sqrt(3); t = 6 sqrt(3) = 10.392 on 2 df
    assert t["measured"] == pytest.approx(6.0) and t["n"] == 3
    assert t["p_value"] == pytest.approx(2 * sps.t.sf(6 * math.sqrt(3), 2), rel=1e-9)
    assert t["p_value"] == pytest.approx(0.009133, abs=1e-5)
    half = sps.t.ppf(0.975, 2) / math.sqrt(3)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((6 - half, 6 + half), rel=1e-9)
    assert "t test over 3 per-replicate effects" in t["test"]
    shifted = rep.replicate_effect_test([6.0, 7.0, 5.0], threshold=6.0)
    assert shifted["p_value"] == pytest.approx(1.0) and shifted["measured"] == pytest.approx(6.0)


def test_bad_inputs_name_the_problem():
    with pytest.raises(AdvFeaturesError, match="non-finite"):
        rep.between_replicates([1.0, float("nan")])
    with pytest.raises(AdvFeaturesError, match="3 replicates in a, 2 in b"):
        rep.replicate_effect_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(AdvFeaturesError, match="must be > 0"):
        rep.random_effects([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(AdvFeaturesError, match="either std_errors or intervals"):
        rep.random_effects([1.0, 2.0])
    with pytest.raises(AdvFeaturesError, match="method 'reml'"):
        rep.random_effects([1.0, 2.0], [1.0, 1.0], method="reml")
    with pytest.raises(AdvFeaturesError, match="no replicate values"):
        rep.between_replicates([])


def test_replicate_rows_add_a_mean_row_per_key():
    df = pd.DataFrame({
        "method": ["standard"] * 3 + ["pgd_linf"] * 3 + ["mart"],
        "replicate": [0, 1, 2, 0, 1, 2, 0],
        "clean acc": [97.0, 98.0, 99.0, 90.0, 92.0, 91.0, 95.0],
        "clean acc lo": [95.0, 96.0, 97.0, 88.0, 90.0, 89.0, 93.0],
        "clean acc hi": [98.0, 99.0, 99.5, 92.0, 94.0, 93.0, 97.0],
        "n": [500] * 7,
    })
    out = rep.replicate_rows(df, ["method"], ["clean acc"])
    assert out["method"].tolist() == ["standard"] * 4 + ["pgd_linf"] * 4 + ["mart"]
    assert out["replicate"].tolist() == [0, 1, 2, "mean", 0, 1, 2, "mean", 0]
    mean = out[(out.method == "pgd_linf") & (out.replicate == "mean")].iloc[0]
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # values 90, 92, 91: sd 1
    assert (mean["clean acc"], mean["clean acc sd"]) == pytest.approx((91.0, 1.0))
    assert (mean["clean acc lo"], mean["clean acc hi"]) == pytest.approx((91 - half, 91 + half))
    first = out.iloc[0]  # per-replicate rows keep their own intervals
    assert (first["clean acc lo"], first["clean acc hi"]) == (95.0, 98.0) and math.isnan(first["clean acc sd"])
    assert math.isnan(mean["n"])  # columns not named in values are left empty on mean rows
    with pytest.raises(AdvFeaturesError, match="replicate repeated"):
        rep.replicate_rows(pd.concat([df, df.iloc[[0]]]), ["method"], ["clean acc"])
    with pytest.raises(AdvFeaturesError, match=r"columns \['acc'\] missing"):
        rep.replicate_rows(df, ["method"], ["acc"])


# ----------------------------------------------------------------------------- a run's tables and claims


def _claims(measured, lo, hi, *, verdict="holds", reason="", p=0.01, study="ilyas", key="ilyas.d_r_vs_d"):
    from advfeatures.reporting import CLAIM_COLUMNS

    row = dict.fromkeys(CLAIM_COLUMNS, "")
    row |= {"study": study, "key": key, "claim": "D_R more robust than D", "verdict": verdict, "reason": reason,
            "measured": measured, "comparison": ">", "threshold": 0.0, "min_effect": 2.0, "ci_low": lo,
            "ci_high": hi, "p_value": p, "p_adjusted": p, "alpha": 0.05, "n": 500, "test": "two-proportion z test",
            "note": "x"}
    return pd.DataFrame([row])


def test_combine_tables_one_replicate_adds_only_the_column():
    t = pd.DataFrame({"model": ["a", "b"], "acc": [90.0, 80.0], "acc lo": [88.0, 77.0], "acc hi": [92.0, 83.0]})
    out = rr.combine_tables([t], "kim_table3", ["0"])
    assert list(out.columns) == ["replicate", "model", "acc", "acc lo", "acc hi"]
    assert out["replicate"].tolist() == ["0", "0"] and out["acc"].tolist() == [90.0, 80.0]


def test_combine_tables_three_replicates_mean_rows_per_key():
    frames = [pd.DataFrame({"model": ["a", "b"], "attack": ["pgd", "pgd"], "accuracy": [a, b], "n": [100, 100],
                            "published": [50.0, 40.0]})
              for a, b in ((10.0, 40.0), (12.0, 44.0), (14.0, 42.0))]
    out = rr.combine_tables(frames, "kim_table3", ["0", "1", "2"])
    means = out[out["replicate"] == "mean"].set_index("model")
    assert means.loc["a", "accuracy"] == pytest.approx(12.0) and means.loc["b", "accuracy"] == pytest.approx(42.0)
    half = sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)  # sd 2 over 3 replicates
    assert (means.loc["a", "accuracy lo"], means.loc["a", "accuracy hi"]) == pytest.approx((12 - half, 12 + half))
    assert means.loc["a", "accuracy sd"] == pytest.approx(2.0)
    assert "published sd" not in out.columns  # published numbers are not averaged as measurements
    assert means.loc["a", "n"] == 100 and "n lo" not in out.columns  # a count: its value, no interval
    runs = [pd.DataFrame({"method": ["standard"], "epochs": [15], "test clean acc %": [c],
                          "test clean acc % lo": [c - 4], "test clean acc % hi": [c + 4], "train job wall s": [w]})
            for c, w in ((46.0, 90.0), (46.0, 840.0), (46.0, 200.0))]
    tr = rr.combine_tables(runs, "training", ["0", "1", "2"]).query("replicate == 'mean'").iloc[0]
    assert "train job wall s lo" not in tr and tr["train job wall s sd"] > 0  # a timing: mean and SD only
    assert tr["test clean acc % lo"] < 46.0 < tr["test clean acc % hi"]  # equal values: their own intervals
    assert out["model"].tolist() == ["a"] * 4 + ["b"] * 4  # each key's replicates, then its mean
    with pytest.raises(AdvFeaturesError, match="already has a replicate column"):
        rr.combine_tables([out], "kim_table3", ["0"])


def test_headline_rows_pick_the_means_when_there_are_replicates():
    one = rr.combine_tables([pd.DataFrame({"model": ["a"], "acc": [1.0]})], "kim_table3", ["0"])
    assert len(rr.headline_rows(one)) == 1
    three = rr.combine_tables([pd.DataFrame({"model": ["a"], "acc": [v]}) for v in (1.0, 2.0, 3.0)],
                               "kim_table3", ["0", "1", "2"])
    assert rr.headline_rows(three)["replicate"].tolist() == ["mean"]


def test_combine_claims_one_replicate_says_it_is_about_one_model():
    (c,) = rr.combine_claims([_claims(5.0, 3.0, 7.0)], ["0"])
    assert c.measured == 5.0 and rep.ONE_MODEL in c.test and c.verdict == "holds"


def test_combine_claims_random_effects_against_the_threshold():
    frames = [_claims(m, m - 2.0, m + 2.0) for m in (5.0, 6.0, 7.0)]
    (c,) = rr.combine_claims(frames, ["0", "1", "2"])
    se = 2.0 / sps.norm.ppf(0.975)
    ref = rep.random_effects([5.0, 6.0, 7.0], [se] * 3)
    assert (c.measured, c.ci_low, c.ci_high, c.p_value) == pytest.approx((ref.mean, ref.ci_low, ref.ci_high,
                                                                          ref.p_value))
    assert c.n == 3 and "random effects" in c.test and "r1 6" in c.note
    # the p-value tests the threshold, not zero: the same effects above a threshold of 6 do not reject
    shifted = [_claims(m, m - 2.0, m + 2.0) for m in (5.0, 6.0, 7.0)]
    for f in shifted:
        f["threshold"] = 6.0
    (c6,) = rr.combine_claims(shifted, ["0", "1", "2"])
    assert c6.p_value == pytest.approx(1.0) and c6.verdict != "holds"
    # replicates that agree exactly keep their value (their combined 0 - 10, + 10, came back as -1.8e-15)
    zeros = [_claims(0.0, -0.4, 0.8) for _ in range(3)]
    for f in zeros:
        f["threshold"], f["comparison"] = 10.0, "<="
    (c0,) = rr.combine_claims(zeros, ["0", "1", "2"])
    assert c0.measured == 0.0 and c0.ci_low < 0.0 < c0.ci_high


def test_combine_claims_between_replicate_spread_widens_the_interval():
    """Three precise replicates that disagree: the combined interval covers their spread, wider
    than any replicate's own interval (training-seed variance is counted)."""
    frames = [_claims(m, m - 0.5, m + 0.5) for m in (1.0, 5.0, 9.0)]
    (c,) = rr.combine_claims(frames, ["0", "1", "2"])
    assert c.ci_high - c.ci_low > 8.0 and c.verdict == "inconclusive"


def test_combine_claims_untestable_in_one_replicate_is_not_testable():
    frames = [_claims(5.0, 3.0, 7.0), _claims(6.0, 4.0, 8.0, verdict="not testable", reason="model at chance"),
              _claims(7.0, 5.0, 9.0)]
    (c,) = rr.combine_claims(frames, ["0", "1", "2"])
    assert c.verdict == "not testable" and "replicate 1: model at chance" in c.reason


def test_combine_claims_without_intervals_uses_a_t_test_over_replicates():
    frames = [_claims(m, float("nan"), float("nan")) for m in (4.0, 5.0, 6.0)]
    (c,) = rr.combine_claims(frames, ["0", "1", "2"])
    ref = sps.ttest_1samp([4.0, 5.0, 6.0], 0.0)
    assert c.p_value == pytest.approx(ref.pvalue) and "t test over 3" in c.test


def test_combine_claims_missing_in_a_replicate_is_not_testable():
    a = _claims(5.0, 3.0, 7.0)
    b = _claims(5.0, 3.0, 7.0, key="ilyas.d_r_vs_d_nr")
    b["claim"] = "other"
    out = rr.combine_claims([a, b], ["0", "1"])
    assert [c.verdict for c in out] == ["not testable", "not testable"]
    assert "missing in replicate(s) 1" in out[0].reason


def test_replicate_rows_leave_a_value_missing_in_a_replicate_empty():
    df = pd.DataFrame({"replicate": [0, 1], "model": ["a", "a"], "acc": [1.0, 3.0], "pgd": [float("nan"), 2.0]})
    mean = rep.replicate_rows(df, ["model"], ["acc", "pgd"]).iloc[-1]
    assert mean["replicate"] == "mean" and mean["acc"] == 2.0 and math.isnan(mean["pgd"])


def test_random_effects_truncates_a_negative_tau2_to_the_fixed_effect():
    """Two replicates closer than their own errors: the moment estimate of tau^2 is negative
    (statsmodels returns it as it is); DerSimonian-Laird's tau^2 is max(0, .), i.e. the
    inverse-variance (fixed-effect) mean with a t interval on k - 1 df."""
    s = rep.random_effects([-2.0, 0.0], [2.0, math.sqrt(6.0)])
    w = np.array([1 / 4, 1 / 6])
    mean, sd = float((w * [-2.0, 0.0]).sum() / w.sum()), float(math.sqrt(1 / w.sum()))
    q = sps.t.ppf(0.975, 1)
    assert s.tau2 == 0.0 and (s.mean, s.ci_low, s.ci_high) == pytest.approx((mean, mean - q * sd, mean + q * sd))
    assert s.p_value == pytest.approx(2 * sps.t.sf(abs(mean / sd), 1))
