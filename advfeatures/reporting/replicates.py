"""A run's tables and claims over its replicates (rules combine_table and combine_claims).

Each replicate's report stages write its own tables and claims; here they become the run's:
tables with every replicate's rows and their mean (:func:`combine_tables`), claims tested over the
replicates (:func:`combine_claims`).  The statistics are :mod:`advfeatures.replicates`'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from advfeatures.compare import column_kind, table_keys, value_columns, value_range
from advfeatures.replicates import (
    ONE_MODEL,
    proper_interval,
    random_effects,
    replicate_effect_test,
    replicate_rows,
)
from advfeatures.reporting import Claim, claims_from_frame
from advfeatures.utils import AdvFeaturesError


def _names(replicates: Sequence[str] | None, k: int) -> list[str]:
    """The replicates' names, ``0 .. k-1`` when not given."""
    return list(replicates) if replicates is not None else [str(i) for i in range(k)]


def numeric_values(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The measurement columns of a table: numeric, neither key nor interval bound nor published."""
    return [c for c in value_columns(df, keys)
            if pd.api.types.is_numeric_dtype(df[c]) and not str(c).lower().startswith("published")
            and not str(c).endswith(" sd")]


def combine_tables(frames: Sequence[pd.DataFrame], name: str, replicates: Sequence[str] | None = None,
                   alpha: float = 0.05) -> pd.DataFrame:
    """One table of a run from its replicates' tables (``frames[i]``: replicate ``replicates[i]``):
    every per-replicate row with a ``replicate`` column first, and, with 2 or more replicates, a
    ``mean`` row per key (:func:`replicate_rows`; keys: :func:`advfeatures.compare.table_keys`)
    with each measurement's between-replicate t interval (``X lo`` / ``X hi``; an accuracy's cut to
    its range, :func:`advfeatures.compare.value_range`; replicates that agree exactly: their own
    intervals combined) and SD (``X sd``).  Counts get their value only, timings their mean and SD."""
    if not frames:
        raise AdvFeaturesError(f"combine_tables: table {name!r} has no replicate")
    replicates = _names(replicates, len(frames))
    if len(replicates) != len(frames):
        raise AdvFeaturesError(f"combine_tables: {len(frames)} tables of {name!r} for {len(replicates)} replicates")
    parts = []
    for rep, df in zip(replicates, frames):
        if "replicate" in df.columns:
            raise AdvFeaturesError(f"combine_tables: replicate {rep}'s table {name!r} already has a replicate column")
        parts.append(df.assign(replicate=str(rep))[["replicate", *df.columns]])
    table = pd.concat(parts, ignore_index=True)
    if len(frames) < 2:
        return table
    keys = [k for k in table_keys(name, frames[0]) if k != "replicate"]
    values = numeric_values(frames[0], keys)
    bounds = {v: r for v in values if (r := value_range(name, v)) is not None}
    out = replicate_rows(table, keys, values, alpha=alpha, bounds=bounds)
    # settings that count (test rows, epochs): the mean row gives their value, no interval; costs
    # (job seconds, which depend on the machine's load): their mean and SD, no interval (a t
    # interval of 3 wall times reached below 0 s)
    kind = {v: column_kind(name, v) for v in values}
    drop = [c for v in values if kind[v] == "count" for c in (f"{v} lo", f"{v} hi", f"{v} sd")]
    drop += [c for v in values if kind[v] == "timing" for c in (f"{v} lo", f"{v} hi")]
    return out.drop(columns=drop)


def headline_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a reader compares with a paper: each key's ``mean`` row where the table has
    replicates, else its one replicate's rows."""
    if "replicate" not in df.columns:
        return df
    rep = df["replicate"].astype(str)
    return df[rep.eq("mean")] if rep.eq("mean").any() else df


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def combine_claims(frames: Sequence[pd.DataFrame], replicates: Sequence[str] | None = None,
                   alpha: float = 0.05, method: str = "dl"):
    """A run's claims from its replicates' claims (``frames[i]``: replicate ``replicates[i]``'s
    claims table of one stage; rows matched by study, key and claim text).

    One replicate: its claims, the test column saying they are about one trained model.  Two or
    more, per claim:

    - *not testable* when the claim is not testable in any replicate (its reasons, with the
      replicates, kept): a precondition that fails for one trained model is not averaged away;
    - otherwise the per-replicate effects are combined by a random-effects model
      (:func:`random_effects`, statsmodels; DerSimonian-Laird by default) that keeps each
      replicate's own interval (its row sampling) and adds the between-replicate variance; its
      t interval on k - 1 df and its p-value against the claim's threshold give the verdict (the
      same rule as one replicate's, :class:`advfeatures.reporting.Claim`).  Where a replicate's
      interval is missing or of zero width, a t test over the per-replicate effects
      (:func:`replicate_effect_test`) instead.

    Returns the :class:`~advfeatures.reporting.Claim` objects (Holm's correction is applied when
    they are written)."""
    if not frames:
        raise AdvFeaturesError("combine_claims: no replicate claims")
    replicates = _names(replicates, len(frames))
    per_rep = [claims_from_frame(df) for df in frames]
    if len(per_rep) == 1:
        out = per_rep[0]
        for c in out:
            c.test = f"{c.test}; {ONE_MODEL}" if c.test else ONE_MODEL
        return out
    index = [{(c.study, c.key, c.claim): c for c in claims} for claims in per_rep]
    order = list(dict.fromkeys(k for idx in index for k in idx))
    out = []
    for k in order:
        rows = [(rep, idx.get(k)) for rep, idx in zip(replicates, index)]
        missing = [rep for rep, c in rows if c is None]
        first = next(c for _, c in rows if c is not None)
        base = dict(study=first.study, claim=first.claim, comparison=first.comparison, threshold=first.threshold,
                    min_effect=first.min_effect, alpha=alpha, key=first.key)
        if missing:
            out.append(Claim(**base, measured=math.nan, note=first.note,
                                   untestable=f"claim missing in replicate(s) {', '.join(missing)}"))
            continue
        if any(c.untestable for _, c in rows):
            reasons = "; ".join(f"replicate {rep}: {c.untestable}" for rep, c in rows if c.untestable)
            measured = [float(c.measured) for _, c in rows if _finite(c.measured)]
            out.append(Claim(**base, measured=float(np.mean(measured)) if measured else math.nan,
                                   note=first.note, n=len(rows), untestable=reasons))
            continue
        est = np.array([float(c.measured) for _, c in rows])
        t = float(first.threshold)
        per = ", ".join(f"r{rep} {float(c.measured):.3g}" for rep, c in rows)
        intervals = [(c.ci_low, c.ci_high) for _, c in rows]
        if all(proper_interval(lo, hi) for lo, hi in intervals):
            # centred on the threshold, so that the p-value tests measured == threshold
            s = random_effects(est - t, intervals=[(float(lo) - t, float(hi) - t) for lo, hi in intervals],
                               method=method, alpha=alpha)
            # replicates that agree exactly: their value, not its round trip through the threshold
            # (0 - 10 + 10 came back as -1.8e-15)
            measured = float(est[0]) if (est == est[0]).all() else s.mean + t
            fields = {"measured": measured, "ci_low": s.ci_low + t, "ci_high": s.ci_high + t,
                      "p_value": s.p_value, "n": s.k,
                      "test": f"{s.method} (tau^2 {s.tau2:.3g}) of the per-replicate effects; "
                              f"per replicate: {first.test}"}
        else:
            r = replicate_effect_test(est, threshold=t, alpha=alpha)
            fields = r | {"test": f"{r['test']} (a replicate's interval is missing or of zero width); "
                                  f"per replicate: {first.test}"}
        out.append(Claim(**base, **fields, note=f"{first.note}; per replicate: {per}".lstrip("; ")))
    return out
