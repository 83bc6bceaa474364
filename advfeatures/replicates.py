"""Statistics over replicates: independent training runs of the same configuration.

A replicate is one trained model set (its own initialisation, data order, attack and IB seeds).
The intervals a single run reports cover which test rows were drawn, never which training run
produced the model; training-seed variance is measured here, over replicates:

- :func:`between_replicates`: the mean of the per-replicate estimates with a t interval on
  k - 1 degrees of freedom from their spread (scipy), and their standard deviation;
- :func:`random_effects`: a random-effects combination (statsmodels ``combine_effects``,
  DerSimonian-Laird or Paule-Mandel) that keeps each replicate's own (within-replicate)
  uncertainty and adds the between-replicate variance tau^2 to it;
- :func:`replicate_effect_test`: a claim's effect tested at the replicate level: one effect per
  replicate (e.g. robust accuracy trained on D_R minus on D, both from the same replicate), then a
  one-sample t test of the k effects against the claim's threshold;
- :func:`replicate_rows`: per-replicate table rows -> those rows plus one ``mean`` row per key
  with the between-replicate interval, the shape the tables use.

With one replicate there is no between-replicate spread: the functions return the single value,
no interval, and a note saying that the result is about one trained model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from advfeatures.utils import AdvFeaturesError

ONE_MODEL = "one replicate: about one trained model (no training-seed variance measured)"
RE_METHODS = {"dl": "DerSimonian-Laird", "pm": "Paule-Mandel"}


def _values(values: Sequence[float], what: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise AdvFeaturesError(f"{what}: no replicate values; the run has no replicate of this row")
    if not np.isfinite(v).all():
        raise AdvFeaturesError(f"{what}: non-finite replicate values {v.tolist()}; check the per-replicate tables")
    return v


def proper_interval(lo, hi) -> bool:
    """An interval with finite ends and a positive width (a missing end, None or text: no)."""
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return False
    return math.isfinite(lo) and math.isfinite(hi) and hi > lo


@dataclass(frozen=True)
class Summary:
    """A combined estimate over k replicates, its interval and how it was made."""

    mean: float
    ci_low: float
    ci_high: float
    k: int
    sd: float = math.nan  # between-replicate standard deviation (ddof 1)
    p_value: float = math.nan
    tau2: float = math.nan  # random effects: between-replicate variance
    method: str = ""

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "k": self.k,
                "sd": self.sd, "p_value": self.p_value, "tau2": self.tau2, "method": self.method}


def between_replicates(values: Sequence[float], alpha: float = 0.05,
                       bounds: tuple[float, float] | None = None,
                       within: Sequence[tuple[float, float]] | None = None) -> Summary:
    """Mean of the per-replicate estimates with a t interval (k - 1 df) from their spread.

    ``bounds``: the range the quantity can take (e.g. 0 and 100 for an accuracy in percent); the
    interval is cut to it (with 2 or 3 replicates a t interval easily reaches past 100%; the cut
    keeps its coverage, since the true value lies in the range).

    ``within``: each replicate's own (1 - alpha) interval, e.g. over its test rows.  When every
    replicate gave the same value (an accuracy of 0 / 500 rows three times) the t interval is a
    single point, which says the value is known exactly; the interval then combines the
    within-replicate intervals instead (:func:`random_effects`; with no spread it is the fixed
    effect).  Without ``within`` such a point interval stays, and the method says so."""
    v = _values(values, "between_replicates")
    k = len(v)
    if k == 1:
        return Summary(float(v[0]), math.nan, math.nan, 1, method=ONE_MODEL)
    same = bool((v == v[0]).all())  # exactly (the mean of three 0.4s is not 0.4 in floating point)
    mean, sd = (float(v[0]), 0.0) if same else (float(v.mean()), float(v.std(ddof=1)))
    method = f"mean of {k} replicates, t interval on {k - 1} df ({100 * (1 - alpha):g}%)"
    if not same:
        lo, hi = sps.t.interval(1 - alpha, k - 1, loc=mean, scale=sd / math.sqrt(k))
    elif within is not None and len(within) == k and all(proper_interval(lo, hi) for lo, hi in within):
        s = random_effects(v, intervals=within, alpha=alpha)
        lo, hi = s.ci_low, s.ci_high
        method = f"{k} replicates gave the same value: their within-replicate intervals combined ({s.method})"
    else:  # no spread and nothing else to go on: the point itself
        lo = hi = mean
        method = f"{k} replicates gave the same value and have no within-replicate interval: no interval"
    if bounds is not None:
        lo, hi = max(float(lo), bounds[0]), min(float(hi), bounds[1])
        method += f", cut to [{bounds[0]:g}, {bounds[1]:g}]"
    return Summary(mean, float(lo), float(hi), k, sd=sd, method=method)


def se_from_interval(lo: float, hi: float, alpha: float = 0.05) -> float:
    """Standard error implied by a (1 - alpha) normal interval [lo, hi]: (hi - lo) / (2 z)."""
    return (float(hi) - float(lo)) / (2 * sps.norm.ppf(1 - alpha / 2))


def random_effects(estimates: Sequence[float], std_errors: Sequence[float] | None = None, *,
                   intervals: Sequence[tuple[float, float]] | None = None, method: str = "dl",
                   alpha: float = 0.05) -> Summary:
    """Random-effects combination of per-replicate estimates that keeps their within-replicate
    uncertainty (``std_errors``, or ``intervals`` at level 1 - alpha converted by
    :func:`se_from_interval`).  ``method``: ``dl`` (DerSimonian-Laird) or ``pm`` (Paule-Mandel).
    The interval uses the t distribution on k - 1 df (statsmodels ``use_t``, scale 1)."""
    from statsmodels.stats.meta_analysis import combine_effects

    est = _values(estimates, "random_effects estimates")
    if (std_errors is None) == (intervals is None):
        raise AdvFeaturesError("random_effects: give either std_errors or intervals for the replicates")
    if std_errors is not None:
        se = _values(std_errors, "random_effects std_errors")
    else:
        se = np.array([se_from_interval(lo, hi, alpha) for lo, hi in intervals])
    if len(se) != len(est):
        raise AdvFeaturesError(f"random_effects: {len(est)} estimates but {len(se)} standard errors")
    if not (se > 0).all():
        raise AdvFeaturesError(
            f"random_effects: within-replicate standard errors must be > 0, got {se.tolist()} "
            "(an interval of zero width: use between_replicates instead)")
    if method not in RE_METHODS:
        raise AdvFeaturesError(f"random_effects: method {method!r}; use one of {sorted(RE_METHODS)}")
    k = len(est)
    if k == 1:
        z = sps.norm.ppf(1 - alpha / 2)
        return Summary(float(est[0]), float(est[0] - z * se[0]), float(est[0] + z * se[0]), 1,
                       method=f"{ONE_MODEL}; its within-replicate interval")
    with np.errstate(invalid="ignore", divide="ignore"):  # a negative tau^2 estimate: statsmodels divides by
        # var + tau^2 (0 for identical estimates) and takes its sqrt; the fixed effect is used then
        res = combine_effects(est, se**2, method_re=method, use_t=True, alpha=alpha)
    tau2 = float(res.tau2)
    if tau2 > 0:  # random effects, scale 1
        mean, sd_mean = float(res.mean_effect_re), float(res.sd_eff_w_re)
    else:  # statsmodels leaves a negative moment estimate as it is; tau^2 is max(0, .): the fixed effect
        tau2, mean, sd_mean = 0.0, float(res.mean_effect_fe), float(res.sd_eff_w_fe)
    q = float(sps.t.ppf(1 - alpha / 2, k - 1))
    lo, hi = mean - q * sd_mean, mean + q * sd_mean
    p = float(2 * sps.t.sf(abs(mean / sd_mean), k - 1)) if sd_mean > 0 else math.nan
    return Summary(mean, float(lo), float(hi), k, sd=float(est.std(ddof=1)), p_value=p, tau2=tau2,
                   method=f"random effects ({RE_METHODS[method]}) over {k} replicates, t interval on {k - 1} df")


def replicate_effect_test(a: Sequence[float], b: Sequence[float] | None = None, *, threshold: float = 0.0,
                          alpha: float = 0.05) -> dict:
    """A claim tested at the replicate level.  The per-replicate effects are ``a - b`` (paired:
    entry i of both comes from replicate i) or ``a`` itself; a one-sample t test (scipy) of the
    k effects against ``threshold``.  Returns the fields of a reporting ``Claim``: measured,
    ci_low, ci_high, p_value, n (replicates) and test.  With one replicate: the effect, no test,
    and a test text saying so."""
    effects = _values(a, "replicate_effect_test")
    if b is not None:
        other = _values(b, "replicate_effect_test (b)")
        if len(other) != len(effects):
            raise AdvFeaturesError(f"replicate_effect_test: {len(effects)} replicates in a, {len(other)} in b; "
                                   "the paired effects need one value of each per replicate")
        effects = effects - other
    k = len(effects)
    if k == 1:
        return {"measured": float(effects[0]), "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
                "n": 1, "test": ONE_MODEL}
    mean = float(effects.mean())
    if float(effects.std(ddof=1)) == 0:  # identical effects: no spread to test with
        return {"measured": mean, "ci_low": mean, "ci_high": mean, "p_value": math.nan, "n": k,
                "test": f"{k} replicates gave the same effect: no spread, no t test"}
    res = sps.ttest_1samp(effects, popmean=threshold)
    ci = res.confidence_interval(1 - alpha)
    return {"measured": mean, "ci_low": float(ci.low), "ci_high": float(ci.high), "p_value": float(res.pvalue),
            "n": k, "test": f"t test over {k} per-replicate effects ({k - 1} df)"}


def replicate_rows(df: pd.DataFrame, keys: Sequence[str], values: Sequence[str], *,
                   replicate: str = "replicate", alpha: float = 0.05, suffixes: tuple[str, str] = (" lo", " hi"),
                   sd_suffix: str = " sd", bounds: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Per-replicate rows -> those rows plus, per key with 2 or more replicates, a row with
    ``replicate = "mean"``: each value column's mean, its between-replicate t interval in the
    ``X lo`` / ``X hi`` columns and its standard deviation in ``X sd``.  Per-replicate rows keep
    their own (within-replicate) intervals; their ``X sd`` is empty.  A key with one replicate
    gets no mean row (its one row is the result, about one trained model); a value missing (NaN)
    in some replicate has no mean (an empty cell).  ``bounds``: value column -> the range its
    interval is cut to; where the replicates agree exactly, their own ``X lo`` / ``X hi`` give
    the interval (both: :func:`between_replicates`)."""
    bounds = bounds or {}
    missing = [c for c in [*keys, *values, replicate] if c not in df.columns]
    if missing:
        raise AdvFeaturesError(f"replicate_rows: columns {missing} missing; the table has {list(df.columns)}")
    out = df.copy()
    out[replicate] = out[replicate].astype(object)
    lo_s, hi_s = suffixes
    for v in values:
        for col in (v + lo_s, v + hi_s, v + sd_suffix):
            if col not in out.columns:
                out[col] = math.nan
    means = []
    for key, group in df.groupby(list(keys), sort=False, dropna=False):
        if group[replicate].duplicated().any():
            raise AdvFeaturesError(f"replicate_rows: replicate repeated for {dict(zip(keys, np.atleast_1d(key)))}")
        if len(group) < 2:
            continue
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row[replicate] = "mean"
        for v in values:
            vals = group[v].to_numpy(float)
            if not np.isfinite(vals).all():  # a value some replicate did not measure: no mean
                row |= dict.fromkeys((v, v + lo_s, v + hi_s, v + sd_suffix), math.nan)
                continue
            within = (list(zip(group[v + lo_s].to_numpy(float), group[v + hi_s].to_numpy(float)))
                      if v + lo_s in group.columns and v + hi_s in group.columns else None)
            s = between_replicates(vals, alpha, bounds.get(v), within=within)
            row |= {v: s.mean, v + lo_s: s.ci_low, v + hi_s: s.ci_high, v + sd_suffix: s.sd}
        means.append(row)
    if means:
        out = pd.concat([out, pd.DataFrame(means)], ignore_index=True)
    order = {k: i for i, k in enumerate(dict.fromkeys(map(tuple, df[list(keys)].astype(str).to_numpy())))}
    out["_order"] = [order[tuple(r)] for r in out[list(keys)].astype(str).to_numpy()]
    out["_mean"] = out[replicate].astype(str).eq("mean")
    return out.sort_values(["_order", "_mean"], kind="stable").drop(columns=["_order", "_mean"]).reset_index(drop=True)

