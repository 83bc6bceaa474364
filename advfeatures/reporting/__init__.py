"""Tables, figures and machine-checkable claims, shared by every study.

Per-study modules (``reporting.ilyas``, ``reporting.bottleneck``, ``reporting.attacks``,
``reporting.mutual_info``) build their tables from the stage outputs with the helpers here:

- :func:`write_table` writes ``name.csv`` and a Markdown twin ``name.md``.
- :class:`Claim` / :func:`write_claims`: one row per claim with the measured value, the
  threshold, the comparison and whether it holds; ``results/claims.csv`` gathers them.
- :func:`save_figure` writes a PNG atomically with a fixed DPI (non-interactive backend).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from advfeatures.utils import atomic_write

CLAIM_COLUMNS = ("study", "claim", "measured", "comparison", "threshold", "holds", "note")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub Markdown table (no tabulate dependency); NaN shows as an empty cell."""

    def fmt(v) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else format(v, floatfmt)
        return "" if v is None else str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike | None = None,
                *, title: str | None = None, note: str | None = None, floatfmt: str = ".2f") -> None:
    """Write ``df`` as CSV and (when ``md_path``) as Markdown with an optional title and note."""
    with atomic_write(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    if md_path is not None:
        write_markdown(df, md_path, title=title, note=note, floatfmt=floatfmt)


def write_markdown(df: pd.DataFrame, md_path: str | os.PathLike, *, title: str | None = None,
                   note: str | None = None, floatfmt: str = ".2f") -> None:
    """Write ``df`` as a Markdown table with an optional ``### title`` and a note below."""
    md_path = Path(md_path)
    text = (f"### {title}\n\n" if title else "") + to_markdown(df, floatfmt)
    if note:
        text += f"\n{note}\n"
    with atomic_write(md_path) as tmp:
        tmp.write_text(text)


@dataclass
class Claim:
    study: str
    claim: str
    measured: float
    comparison: str  # one of ">", ">=", "<", "<="
    threshold: float
    note: str = ""

    @property
    def holds(self) -> bool:
        m, t = self.measured, self.threshold
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return False
        return {">": m > t, ">=": m >= t, "<": m < t, "<=": m <= t}[self.comparison]

    def row(self) -> dict:
        d = asdict(self)
        d["holds"] = "yes" if self.holds else "no"
        return {k: d[k] for k in CLAIM_COLUMNS}


def write_claims(claims: Iterable[Claim], path: str | os.PathLike) -> pd.DataFrame:
    df = pd.DataFrame([c.row() for c in claims], columns=list(CLAIM_COLUMNS))
    with atomic_write(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def gather_claims(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Concatenate per-stage claim files into ``results/claims.csv``."""
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    with atomic_write(out) as tmp:
        df.to_csv(tmp, index=False)
    return df


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def matplotlib_headless() -> None:
    import matplotlib

    matplotlib.use("Agg")
