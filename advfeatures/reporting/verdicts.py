"""Settings and preconditions of the claims' verdicts (config section ``report.claims``).

The one documented place for the significance level, the minimum effect of every claim and the
preconditions is ``report.claims`` in config.yaml (types in schemas/report.schema.yaml).
:func:`settings` reads that section; called without one it reads config.yaml's (tests, scripts).

Preconditions (a claim whose precondition fails is *not testable*, never *holds*):

- :func:`model_precondition`: a model at chance (clean accuracy within ``chance_margin`` points
  of 100/C %), with non-finite outputs, or flagged ``degenerate`` in its metadata;
- :func:`mask_precondition`: an IB mask keeping on average fewer than ``mask_floor`` robust or
  non-robust channels per sample, or with either part empty for more than ``mask_empty_share``
  of the samples;
- :func:`mi_precondition`: I(X;T) within ``mi_margin`` bits of its ceiling log2 N or of 0;
- :func:`rows_precondition`: fewer than ``min_rows`` rows;
- :func:`binary_precondition`: images near binary (more than ``binary_share`` of the test pixels
  exactly 0 or 1), where saturation is nearly the identity (distortion claims).

Multiplicity: :func:`advfeatures.reporting.adjust` applies Holm's step-down correction
(statsmodels ``multipletests``) to the p-values of the testable claims of each study; a claim
holds only when its adjusted p-value is below ``alpha`` (:class:`advfeatures.reporting.Claim`).

Level: :func:`level` sets the alpha that :func:`add_wilson` uses for the tables' intervals
(the report stages enter it with ``report.claims.alpha``), so every interval of a run is at
the same 1 - alpha.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from advfeatures import stats
from advfeatures.utils import AdvFeaturesError

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
#: study name in claims.csv -> its key under report.claims
STUDY_KEYS = {"ilyas": "ilyas", "kim2021": "bottleneck", "kim2021_attacks": "attacks", "mutual_info": "mutual_info"}


@dataclass
class ClaimSettings:
    alpha: float
    chance_margin: float
    min_rows: int
    mask_floor: float
    mask_empty_share: float
    mi_margin: float
    coincide_max_offset: float
    binary_share: float
    regime_robust_max: float
    target_success_min: float
    near_zero_robust: float
    min_architectures: int
    claims: dict = field(default_factory=dict)

    def min_effect(self, study: str, claim: str) -> float:
        study = STUDY_KEYS.get(study, study)
        try:
            return float(self.claims[study][claim]["min_effect"])
        except (KeyError, TypeError):
            raise AdvFeaturesError(
                f"config key report.claims.{study}.{claim}.min_effect is missing; add it (see config.yaml)"
            ) from None


def settings(section: Mapping | None = None) -> ClaimSettings:
    """``report.claims`` as :class:`ClaimSettings` (default: config.yaml's section)."""
    if section is None:
        import yaml

        with open(CONFIG) as f:
            section = yaml.safe_load(f)["report"]["claims"]
    s = dict(section)
    studies = {k: v for k, v in s.items() if isinstance(v, Mapping)}
    try:
        return ClaimSettings(
            alpha=float(s["alpha"]), chance_margin=float(s["chance_margin"]), min_rows=int(s["min_rows"]),
            mask_floor=float(s["mask_floor"]), mask_empty_share=float(s["mask_empty_share"]),
            mi_margin=float(s["mi_margin"]),
            coincide_max_offset=float(s["coincide_max_offset"]),
            binary_share=float(s["binary_share"]), regime_robust_max=float(s["regime_robust_max"]),
            target_success_min=float(s["target_success_min"]), near_zero_robust=float(s["near_zero_robust"]),
            min_architectures=int(s["min_architectures"]), claims=studies,
        )
    except KeyError as e:
        raise AdvFeaturesError(f"config key report.claims.{e.args[0]} is missing; add it (see config.yaml)") from None


# ----------------------------------------------------------------------------- preconditions


def model_precondition(name: str, clean_acc_pct: float, num_classes: int, cfg: ClaimSettings,
                       *, degenerate: bool = False) -> str:
    """Empty when model ``name`` is usable, else why not (clean accuracy in percent)."""
    if degenerate:
        return f"model {name} is flagged degenerate in its metadata"
    if clean_acc_pct is None or not math.isfinite(float(clean_acc_pct)):
        return f"model {name} has a non-finite clean accuracy"
    chance = 100.0 / num_classes
    if abs(float(clean_acc_pct) - chance) <= cfg.chance_margin:
        return (f"model {name} at chance (clean acc {float(clean_acc_pct):.1f}% within "
                f"{cfg.chance_margin:g} points of 100/C = {chance:.1f}%)")
    return ""


def mask_precondition(name: str, robust: np.ndarray, cfg: ClaimSettings) -> str:
    """Empty when the [N, C] boolean robust mask ``robust`` splits the channels, else why not."""
    m = np.asarray(robust, dtype=bool)
    if m.ndim != 2 or m.shape[0] == 0:
        return f"IB mask {name} has no rows"
    r, nr = m.sum(1), (~m).sum(1)
    if r.mean() < cfg.mask_floor or nr.mean() < cfg.mask_floor:
        return (f"IB mask {name} degenerate ({r.mean():.2f} robust / {nr.mean():.2f} non-robust channels "
                f"per sample, floor {cfg.mask_floor:g})")
    empty = float(np.mean((r == 0) | (nr == 0)))
    if empty > cfg.mask_empty_share:
        return (f"IB mask {name} degenerate (robust or non-robust part empty for {100 * empty:.0f}% "
                f"of samples, limit {100 * cfg.mask_empty_share:.0f}%)")
    return ""


def mi_precondition(name: str, values: Iterable[float], n: int, cfg: ClaimSettings) -> str:
    """Empty when every I(X;T) in ``values`` is away from 0 and from log2 ``n``, else why not."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return f"I(X;T) of {name} missing or non-finite"
    ceiling = math.log2(n)
    top = int(np.sum(v > ceiling - cfg.mi_margin))
    low = int(np.sum(v < cfg.mi_margin))
    if top:
        return (f"I(X;T) of {name} saturated: {top} of {v.size} values within {cfg.mi_margin:g} bits of "
                f"the ceiling log2 N = {ceiling:.2f}")
    if low:
        return f"I(X;T) of {name}: {low} of {v.size} values within {cfg.mi_margin:g} bits of 0"
    return ""


def rows_precondition(what: str, n: int, cfg: ClaimSettings) -> str:
    return f"too few rows: {what} n = {int(n)} < {cfg.min_rows}" if n < cfg.min_rows else ""


def binary_share(x) -> float:
    """Share of the values of ``x`` (float images in [0, 1], or uint8 in [0, 255]) at either end."""
    v = np.asarray(x)
    top = 255 if v.dtype == np.uint8 else 1
    return float(np.mean((v == 0) | (v == top))) if v.size else math.nan


def binary_precondition(share: float | None, cfg: ClaimSettings) -> str:
    """Empty unless ``share`` (of test pixels exactly 0 or 1) exceeds ``binary_share``."""
    if share is None or not math.isfinite(float(share)):
        return ""
    if float(share) > cfg.binary_share:
        return (f"images near binary: {100 * float(share):.1f}% of test pixels are exactly 0 or 1 "
                f"(limit {100 * cfg.binary_share:.0f}%), so saturation is nearly the identity")
    return ""


# ----------------------------------------------------------------------------- table columns

_ALPHA = contextvars.ContextVar("advfeatures_report_alpha", default=None)


@contextlib.contextmanager
def level(alpha: float) -> Iterator[None]:
    """Within the block, :func:`add_wilson` computes 1 - ``alpha`` intervals (``report.claims.alpha``)."""
    if not 0 < float(alpha) < 1:
        raise AdvFeaturesError(f"report.claims.alpha = {alpha} must lie in (0, 1); fix config.yaml")
    token = _ALPHA.set(float(alpha))
    try:
        yield
    finally:
        _ALPHA.reset(token)


def current_alpha() -> float:
    """The alpha of the enclosing :func:`level` block, else ``report.claims.alpha`` of config.yaml."""
    a = _ALPHA.get()
    return float(a) if a is not None else settings().alpha


def add_wilson(df: pd.DataFrame, acc_cols: Iterable[str], n_col: str = "n", alpha: float | None = None,
               scale: float = 100.0) -> pd.DataFrame:
    """Beside every accuracy column (percent; fractions with ``scale=1``) add ``<col> lo`` /
    ``<col> hi``: its 1 - alpha Wilson interval on the same scale, with ``n`` from ``n_col``
    (a column name, or one per accuracy column as a mapping).  ``alpha``: by default
    :func:`current_alpha` (the run's ``report.claims.alpha``)."""
    alpha = current_alpha() if alpha is None else float(alpha)
    df = df.copy()
    for col in acc_cols:
        if col not in df:
            continue
        nc = n_col[col] if isinstance(n_col, Mapping) else n_col
        lo, hi = [], []
        for acc, n in zip(df[col], df[nc]):
            if not (isinstance(n, (int, float, np.integer, np.floating)) and math.isfinite(float(n)) and n > 0
                    and math.isfinite(float(acc))):
                lo.append(math.nan)
                hi.append(math.nan)
                continue
            k = int(round(float(acc) / scale * float(n)))
            a, b = stats.wilson(k, int(n), alpha)
            lo.append(scale * a)
            hi.append(scale * b)
        pos = df.columns.get_loc(col) + 1
        df.insert(pos, f"{col} hi", hi)
        df.insert(pos, f"{col} lo", lo)
    return df
