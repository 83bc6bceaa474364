"""Tables, figures and machine-checkable claims, shared by every study.

Per-study modules (``reporting.ilyas``, ``reporting.bottleneck``, ``reporting.attacks``,
``reporting.mutual_info``) build their tables from the stage outputs with the helpers here:

- :func:`write_table` writes ``name.csv`` (every column) and its Markdown view ``name.md``
  (:func:`markdown_view`: one cell per quantity, ``97.2 [95.4, 98.3]``, at most 12 columns).
- :class:`Claim` / :func:`write_claims`: one row per claim with the measured value, the
  threshold, the comparison, its statistics and a verdict (holds, fails, inconclusive, not
  testable) with its reason; ``results/<run>/claims.csv`` gathers them.  The settings (level,
  minimum effects, preconditions) are ``report.claims`` in config.yaml (:mod:`.verdicts`).
- :func:`save_figure` writes a PNG atomically with a fixed DPI (non-interactive backend).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from advfeatures.reporting.claims import check_key  # the registry of claim keys
from advfeatures.utils import atomic_write

CLAIM_COLUMNS = ("study", "key", "claim", "verdict", "reason", "measured", "comparison", "threshold",
                 "min_effect", "ci_low", "ci_high", "p_value", "p_adjusted", "alpha", "n", "test", "note")
VERDICTS = ("holds", "fails", "inconclusive", "not testable")


#: at most this many columns in a Markdown view (the CSV beside it keeps every column)
MAX_MD_COLUMNS = 12


def _fmt(v, floatfmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return format(float(v), floatfmt)
    return str(v)


def interval_cell(value, lo, hi, fmt: str = ".1f") -> str:
    """``97.2 [95.4, 98.3]``; the value alone when the interval is missing; empty for NaN."""
    v = _fmt(value, fmt)
    if not v:
        return ""
    if any(x is None or not math.isfinite(float(x)) for x in (lo, hi)):
        return v
    return f"{v} [{format(float(lo), fmt)}, {format(float(hi), fmt)}]"


def markdown_view(df: pd.DataFrame, *, floatfmt: str = ".2f", ci_fmt: str | None = None,
                  drop: Sequence[str] = ()) -> pd.DataFrame:
    """The table as text cells for reading: every ``X`` with ``X lo`` / ``X hi`` beside it (the
    Wilson intervals of :func:`verdicts.add_wilson`) becomes one cell ``X [lo, hi]``; published
    columns without a single value are left out (the note says why); ``drop`` names columns the
    view leaves to the CSV.  Columns of whole numbers show as integers."""
    ci_fmt = ci_fmt or floatfmt
    df = df.drop(columns=[c for c in drop if c in df])
    out = {}
    for col in df.columns:
        if isinstance(col, str) and (col.endswith(" lo") or col.endswith(" hi")) and col[:-3] in df:
            continue
        if isinstance(col, str) and col.startswith("published") and pd.to_numeric(df[col], errors="coerce").isna().all():
            continue
        s = df[col]
        if f"{col} lo" in df and f"{col} hi" in df:
            out[str(col)] = [interval_cell(v, lo, hi, ci_fmt) for v, lo, hi in zip(s, df[f"{col} lo"], df[f"{col} hi"])]
            continue
        num = pd.to_numeric(s, errors="coerce")
        if s.dtype.kind == "f" and num.notna().any() and (num.dropna() == num.dropna().round()).all() \
                and num.abs().max() < 1e15:
            out[str(col)] = ["" if pd.isna(v) else str(int(v)) for v in num]
        else:
            out[str(col)] = [_fmt(v, floatfmt) for v in s]
    return pd.DataFrame(out, columns=list(out))


def to_markdown(df: pd.DataFrame, floatfmt: str = ".2f", ci_fmt: str | None = None,
                drop: Sequence[str] = ()) -> str:
    """A GitHub Markdown table of :func:`markdown_view` (pandas ``to_markdown``, via tabulate)."""
    view = markdown_view(df, floatfmt=floatfmt, ci_fmt=ci_fmt, drop=drop)
    return view.to_markdown(index=False, tablefmt="pipe", disable_numparse=True) + "\n"


def write_table(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike | None = None,
                *, title: str | None = None, note: str | None = None, floatfmt: str = ".2f",
                ci_fmt: str | None = ".1f", drop: Sequence[str] = ()) -> None:
    """Write ``df`` as CSV (every column) and, when ``md_path``, its Markdown view
    (:func:`write_markdown`) with an optional title and note."""
    with atomic_write(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    if md_path is not None:
        write_markdown(df, md_path, title=title, note=note, floatfmt=floatfmt, ci_fmt=ci_fmt, drop=drop)


def write_markdown(df: pd.DataFrame, md_path: str | os.PathLike, *, title: str | None = None,
                   note: str | None = None, floatfmt: str = ".2f", ci_fmt: str | None = ".1f",
                   drop: Sequence[str] = ()) -> None:
    """Write the Markdown view of ``df`` (:func:`markdown_view`, at most ``MAX_MD_COLUMNS``
    columns) with an optional ``### title`` and a note below."""
    md_path = Path(md_path)
    view = markdown_view(df, floatfmt=floatfmt, ci_fmt=ci_fmt, drop=drop)
    if view.shape[1] > MAX_MD_COLUMNS:
        raise ValueError(f"{md_path.name}: the Markdown view has {view.shape[1]} columns "
                         f"({', '.join(view.columns)}), more than {MAX_MD_COLUMNS}; leave some to the CSV "
                         "with drop=[...] or reshape the table")
    text = (f"### {title}\n\n" if title else "") + view.to_markdown(index=False, tablefmt="pipe",
                                                                     disable_numparse=True) + "\n"
    if note:
        text += f"\n{note}\n"
    with atomic_write(md_path) as tmp:
        tmp.write_text(text)


@dataclass
class Claim:
    """One machine-checkable claim and its verdict.

    ``measured`` is the effect in the claim's units; the claim says ``measured comparison
    threshold`` by at least ``min_effect`` (``>``/``>=``: above, ``<``/``<=``: below).
    ``ci_low``/``ci_high`` are its interval at level 1 - ``alpha``, ``p_value`` the two-sided test
    of ``measured == threshold`` (``test`` names it) and ``p_adjusted`` that p-value after Holm's
    correction within the claim's study (:func:`adjust`, done by :func:`write_claims`).
    ``untestable`` is the failed precondition, if any; ``key`` the claim's entry in the registry
    (:mod:`.claims`).

    Verdict (first match), with the effect ``e`` = distance from the threshold in the claimed
    direction and its interval [e_lo, e_hi]:

    - *not testable*: ``untestable`` set, or nothing measured;
    - *inconclusive*: no test (p-value) or no interval;
    - *holds*: e_lo > ``min_effect`` (the whole interval clears threshold + min_effect) AND the
      (Holm-adjusted) p-value is below ``alpha``;
    - *fails*: e_hi < ``min_effect``: the interval excludes the claimed effect (a precise null,
      e.g. [-0.4, 0.6] points against a claimed 2 points, fails; so does a clear effect the other way);
    - *inconclusive* otherwise (the interval straddles threshold + min_effect, or the interval
      clears it while the adjusted test does not reject).
    """

    study: str
    claim: str
    measured: float
    comparison: str  # one of ">", ">=", "<", "<="
    threshold: float
    note: str = ""
    min_effect: float = 0.0
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    n: float = math.nan
    test: str = ""
    alpha: float = 0.05
    untestable: str = ""
    key: str = ""
    p_adjusted: float = math.nan

    def __post_init__(self) -> None:
        check_key(self.key)

    def _verdict(self) -> tuple[str, str]:
        m, t = self.measured, self.threshold
        if self.untestable:
            return "not testable", self.untestable
        if m is None or not math.isfinite(float(m)):
            return "not testable", "nothing measured (missing or non-finite value)"
        p_raw = self.p_value if self.p_value is not None else math.nan
        p_adj = self.p_adjusted if self.p_adjusted is not None else math.nan
        p = float(p_adj) if math.isfinite(float(p_adj)) else float(p_raw)
        ci = (self.ci_low, self.ci_high)
        has_ci = all(v is not None and math.isfinite(float(v)) for v in ci)
        if not math.isfinite(p):
            return "inconclusive", "no test (p-value) for this value"
        if not has_ci:
            return "inconclusive", "no interval for this value"
        sign = 1.0 if self.comparison in (">", ">=") else -1.0
        e_lo, e_hi = sorted((sign * (float(ci[0]) - float(t)), sign * (float(ci[1]) - float(t))))
        me = float(self.min_effect)
        level = f"{100 * (1 - self.alpha):g}%"
        ptxt = (f"p = {float(p_raw):.3g}, Holm-adjusted {p:.3g}" if math.isfinite(float(p_adj))
                else f"p = {p:.3g}")
        unc = f"{level} CI [{float(ci[0]):.3g}, {float(ci[1]):.3g}]; {ptxt}; level {self.alpha:g}"
        bar = f"{t:g} {'+' if sign > 0 else '-'} min effect {me:g}"
        if e_lo > me:
            if p < self.alpha:
                return "holds", f"the interval clears {bar} and the test rejects ({unc})"
            return "inconclusive", f"the interval clears {bar} but the test does not reject ({unc})"
        if e_hi < me:
            what = ("an effect in the opposite direction" if e_hi < 0
                    else "an effect smaller than claimed")
            return "fails", f"the interval excludes the claimed effect beyond {bar}: {what} ({unc})"
        return "inconclusive", f"the interval straddles {bar} ({unc})"

    @property
    def verdict(self) -> str:
        return self._verdict()[0]

    @property
    def reason(self) -> str:
        return self._verdict()[1]

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def row(self) -> dict:
        d = asdict(self)
        d["verdict"], d["reason"] = self._verdict()
        return {k: d[k] for k in CLAIM_COLUMNS}


def untestable(*reasons: str) -> str:
    """The failed preconditions (empty ones dropped) as one reason."""
    return " | ".join(dict.fromkeys(r for r in reasons if r))


def adjust(claims: list[Claim]) -> list[Claim]:
    """Set ``p_adjusted`` of every testable claim with a finite p-value: Holm's correction
    (statsmodels ``multipletests``, method ``holm``) within each study.  Returns ``claims``."""
    from statsmodels.stats.multitest import multipletests

    by_study: dict[str, list[Claim]] = {}
    for c in claims:
        p = c.p_value
        c.p_adjusted = math.nan
        if (not c.untestable and p is not None and math.isfinite(float(p)) and c.measured is not None
                and math.isfinite(float(c.measured))):
            by_study.setdefault(c.study, []).append(c)
    for group in by_study.values():
        _, adj, _, _ = multipletests([float(c.p_value) for c in group], alpha=group[0].alpha, method="holm")
        for c, pa in zip(group, adj):
            c.p_adjusted = float(pa)
    return claims


def write_claims(claims: Iterable[Claim], path: str | os.PathLike) -> pd.DataFrame:
    """Holm-adjust the claims' p-values within each study (:func:`adjust`) and write them."""
    claims = adjust(list(claims))
    df = pd.DataFrame([c.row() for c in claims], columns=list(CLAIM_COLUMNS))
    with atomic_write(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def claims_from_frame(df: pd.DataFrame) -> list[Claim]:
    """The :class:`Claim` objects of a claims table (a not-testable row keeps its reason)."""
    out = []
    for r in df.to_dict("records"):
        kw = {k: r[k] for k in ("study", "claim", "measured", "comparison", "threshold", "note", "min_effect",
                                "ci_low", "ci_high", "p_value", "n", "test", "alpha", "key")}
        for k in ("note", "test", "key"):
            kw[k] = "" if not isinstance(kw[k], str) else kw[k]
        out.append(Claim(**kw, untestable=str(r["reason"]) if r["verdict"] == "not testable" else ""))
    return out


def gather_claims(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Concatenate per-stage claim files into one ``claims.csv``; Holm's correction and the
    verdicts are redone within each study over all its files (a study may span several stages)."""
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return write_claims(claims_from_frame(df), out)


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def matplotlib_headless() -> None:
    import matplotlib

    matplotlib.use("Agg")
