"""Published numbers of the three studies, as data files shipped with the package.

One YAML file per paper (``<id>.yaml`` beside this module): ``paper`` (id, authors, title,
venue, year, url, citation), ``unit`` and ``numbers``, a list of records with ``source`` (the
paper's table or figure), ``row``, ``column``, the setting keys that apply (``dataset``, ``arch``,
``model``, ``setting``), ``value`` and, for values read off a chart, ``approximate: true``.
:func:`numbers` returns them as a table with the paper and its citation on every row, which is
what the reporting code looks values up in (as RobustBench keeps its model information).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

import pandas as pd
import yaml

#: the papers this package holds numbers for (file stems)
PAPERS = ("ilyas2019", "kim2021", "zhang2022")
COLUMNS = ("paper", "source", "dataset", "arch", "model", "row", "column", "setting", "value",
           "approximate", "citation")
_REQUIRED_META = ("id", "authors", "title", "venue", "year", "url", "citation")
_REQUIRED_NUMBER = ("source", "row", "column", "value")


@dataclass(frozen=True)
class Paper:
    id: str
    authors: tuple[str, ...]
    title: str
    venue: str
    year: int
    url: str
    citation: str
    unit: str
    findings: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        """``Kim, Lee, Ro 2021`` / ``Ilyas et al. 2019``."""
        last = [a.split()[-1] for a in self.authors]
        names = ", ".join(last) if len(last) <= 3 else f"{last[0]} et al."
        return f"{names} {self.year}"


def _read(paper_id: str) -> dict:
    if paper_id not in PAPERS:
        raise KeyError(f"no published numbers for paper {paper_id!r}; known: {', '.join(PAPERS)}")
    path = resources.files(__package__).joinpath(f"{paper_id}.yaml")
    doc = yaml.safe_load(path.read_text())
    meta = doc.get("paper") or {}
    missing = [k for k in _REQUIRED_META if not meta.get(k)]
    if missing or meta.get("id") != paper_id:
        raise ValueError(f"advfeatures/published/{paper_id}.yaml: paper needs {', '.join(_REQUIRED_META)} "
                         f"and id {paper_id!r} (missing: {missing or 'id mismatch'})")
    for i, rec in enumerate(doc.get("numbers") or []):
        bad = [k for k in _REQUIRED_NUMBER if k not in rec]
        if bad or not isinstance(rec.get("value"), (int, float)) or not math.isfinite(float(rec["value"])):
            raise ValueError(f"advfeatures/published/{paper_id}.yaml: numbers[{i}] = {rec} needs "
                             f"{', '.join(_REQUIRED_NUMBER)} and a finite numeric value")
    return doc


@functools.cache
def paper(paper_id: str) -> Paper:
    """The paper's metadata (authors, title, venue, year, url, citation)."""
    doc = _read(paper_id)
    m = doc["paper"]
    return Paper(id=m["id"], authors=tuple(m["authors"]), title=" ".join(str(m["title"]).split()),
                 venue=m["venue"], year=int(m["year"]), url=m["url"], citation=" ".join(m["citation"].split()),
                 unit=str(doc.get("unit", "")), findings=tuple(doc.get("findings") or ()))


@functools.cache
def _numbers(paper_id: str) -> pd.DataFrame:
    doc, meta = _read(paper_id), paper(paper_id)
    rows = [{**{c: None for c in COLUMNS}, **rec, "paper": paper_id, "citation": meta.citation}
            for rec in doc.get("numbers") or []]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["approximate"] = df["approximate"].fillna(False).astype(bool)
    df["value"] = df["value"].astype(float)
    return df


def numbers(paper_id: str, **where) -> pd.DataFrame:
    """The paper's numbers (a copy), optionally filtered on columns, e.g. ``source="Table 3"``."""
    df = _numbers(paper_id)
    for k, v in where.items():
        if k not in df:
            raise KeyError(f"published numbers have no column {k!r}; columns: {', '.join(COLUMNS)}")
        df = df[df[k] == v]
    return df.reset_index(drop=True)


def value(paper_id: str, **where) -> float:
    """The one number matching ``where``; NaN when none does; an error when several do."""
    df = numbers(paper_id, **where)
    if len(df) > 1:
        raise ValueError(f"{paper_id}: {len(df)} published numbers match {where}; add keys to pick one")
    return float(df["value"].iloc[0]) if len(df) else math.nan
