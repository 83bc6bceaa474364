"""Line up two runs' tables and claims and report what differs beyond its tolerance.

A run is any folder holding ``tables/*.csv`` and ``claims.csv`` (a run's ``results/<run>/``,
one replicate's ``results/<run>/rep<r>/``, or the committed ``reference/default/``).  ``python -m advfeatures compare
RUN_A RUN_B [--strict]`` prints every number outside its tolerance, every changed claim verdict,
every table and row present in one run only, and a summary line::

    N of M numbers within tolerance; verdicts changed: K of C (...); rows in one run only: R

Rows are matched by their key columns (:data:`TABLE_KEYS` per table, else the table's text
columns and the setting columns of :data:`SETTING_COLUMNS`), never by position; claims by
(study, claim).  A number is within tolerance when

- its column has an interval (``X lo`` / ``X hi`` columns, or a claim's ``ci_low`` /
  ``ci_high``): either run's interval covers the other run's value (symmetric: ``compare A B`` and
  ``compare B A`` agree);
- otherwise the default tolerance of its column kind (:data:`TOLERANCES`, :func:`column_kind`):
  setting counts (``n``: test rows, ``channels``, ``epochs``) and published numbers exactly, percentages within 2 points, other numbers within 5%
  (relative, with an absolute floor of 1e-3); timing columns are not compared.

Both values missing (empty cells) count as equal; one missing is out of tolerance.  Text columns
outside the key (labels, bounds) are not numbers: a changed text is reported, not counted.
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from advfeatures.utils import AdvFeaturesError

CLAIMS = "claims.csv"
TABLES = "tables"

#: Key columns of the known tables (file stem -> columns); other tables fall back on
#: :func:`table_keys`' rule.  Columns missing from a table are left out of its key.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "training": ("method",),
    "ilyas_datasets": ("training set",),
    "ilyas_transfer": ("architecture",),
    "kim_table1": ("model", "input", "masks"),
    "kim_table2": ("model", "attack"),
    "kim_table3": ("model", "attack"),
    "kim_table4": ("model", "attack"),
    "kim_beta_sweep": ("model", "beta"),
}
#: Numeric columns that name a setting (part of a row's key), not a measurement.
SETTING_COLUMNS = frozenset({"beta", "eps", "epoch", "level", "p", "k", "width", "steps", "replicate", "seed"})


@dataclass(frozen=True)
class Tolerance:
    kind: str
    abs: float = 0.0
    rel: float = 0.0
    compared: bool = True

    def allows(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.abs + self.rel * max(abs(a), abs(b)) + 1e-9

    def describe(self) -> str:
        if not self.compared:
            return "not compared"
        if self.abs == 0 and self.rel == 0:
            return "exact"
        parts = [f"{self.rel:.0%} relative"] if self.rel else []
        parts += [f"{self.abs:g} absolute"] if self.abs else []
        return " + ".join(parts)


#: Default tolerance per column kind, where a column has no interval of its own.  Percentages:
#: 2 points, below the half-width of a 95% Wilson interval at n = 2000 and p = 0.5 (the test
#: subsets of these runs are 100-2000 rows), so a larger change is more than row sampling.
TOLERANCES: dict[str, Tolerance] = {
    "count": Tolerance("count"),
    "published": Tolerance("published"),
    "percent": Tolerance("percent", abs=2.0),
    "value": Tolerance("value", abs=1e-3, rel=0.05),
    "timing": Tolerance("timing", compared=False),
}
#: settings that are counts (test rows, channels, epochs); counts that are measurements
#: (n_success: rows an attack fooled; transfer n) are values
_COUNT = re.compile(r"^(n|n .*|channels|epochs)$", re.IGNORECASE)
_TIMING = re.compile(r"(wall|seconds|time|(^|[_ ])s$)", re.IGNORECASE)
_PERCENT = re.compile(r"(acc|rate|agree|%|chance|clean|true)", re.IGNORECASE)
_BOUNDS = ((" lo", " hi"), ("_lo", "_hi"), ("_low", "_high"), (" low", " high"))


#: tables whose percent-kind columns are fractions in [0, 1] (the MI tables' accuracy); the
#: others give percentages in [0, 100]
FRACTION_TABLES = frozenset({"mutual_info_final", "mutual_info_distortions"})


def value_range(table: str, column: str) -> tuple[float, float] | None:
    """The range a percent-kind column can take ([0, 1] in :data:`FRACTION_TABLES`, else
    [0, 100]); None for other kinds."""
    if column_kind(table, column) != "percent":
        return None
    return (0.0, 1.0) if table in FRACTION_TABLES else (0.0, 100.0)


def tolerance(table: str, column: str) -> Tolerance:
    """The default tolerance of a column (:data:`TOLERANCES` by kind; a fraction's percent
    tolerance scaled to its unit)."""
    tol = TOLERANCES[column_kind(table, column)]
    if tol.kind == "percent" and table in FRACTION_TABLES:
        return Tolerance(tol.kind, abs=tol.abs / 100, rel=tol.rel, compared=tol.compared)
    return tol


def column_kind(table: str, column: str) -> str:
    """The tolerance kind of a value column: timing, count, published, percent or value."""
    if _TIMING.search(column):
        return "timing"
    if _COUNT.match(column):
        return "count"
    if column.lower().startswith("published"):
        return "published"
    if _PERCENT.search(column):
        return "percent"
    return "value"


def interval_columns(columns: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{X: (X lo, X hi)}`` for every column X with both bound columns."""
    cols = set(columns)
    out = {}
    for c in columns:
        for lo, hi in _BOUNDS:
            if c + lo in cols and c + hi in cols:
                out[c] = (c + lo, c + hi)
                break
    return out


def table_keys(name: str, df: pd.DataFrame) -> list[str]:
    """Key columns of table ``name``: :data:`TABLE_KEYS`, else its text columns and settings."""
    if name in TABLE_KEYS:
        keys = [c for c in TABLE_KEYS[name] if c in df.columns]
        if keys:  # a table with replicates has one row per (key, replicate)
            return keys + [c for c in ("replicate",) if c in df.columns and c not in keys]
    bounds = {b for pair in interval_columns(list(df.columns)).values() for b in pair}
    return [
        c for c in df.columns
        if c not in bounds and (c in SETTING_COLUMNS or not pd.api.types.is_numeric_dtype(df[c]))
        and not df[c].isna().all()
    ]


def value_columns(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The columns compared as numbers: neither key nor interval bound."""
    bounds = {b for pair in interval_columns(list(df.columns)).values() for b in pair}
    return [c for c in df.columns if c not in keys and c not in bounds]


def _key_text(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else format(v, "g")
    return str(v)


def keyed_rows(df: pd.DataFrame, keys: Sequence[str]) -> dict[str, pd.Series]:
    """Rows by their key text ``k1=v1, k2=v2``; a repeated key gets `` (occurrence 2)``, ..."""
    out: dict[str, pd.Series] = {}
    for _, row in df.iterrows():
        text = ", ".join(f"{k}={_key_text(row[k])}" for k in keys) or "row"
        key, i = text, 1
        while key in out:
            i += 1
            key = f"{text} (occurrence {i})"
        out[key] = row
    return out


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _fmt(v: float) -> str:
    return "missing" if math.isnan(v) else format(v, ".4g")


@dataclass
class Comparison:
    """What :func:`compare_runs` found; ``lines`` are the findings in reading order."""

    run_a: Path
    run_b: Path
    numbers: int = 0
    within: int = 0
    claims: int = 0
    verdict_changes: list[str] = field(default_factory=list)
    one_run_only: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def outside(self) -> int:
        return self.numbers - self.within

    @property
    def clean(self) -> bool:
        return self.outside == 0 and not self.verdict_changes and self.one_run_only == 0

    def summary(self) -> str:
        changed = f"{len(self.verdict_changes)} of {self.claims}"
        if self.verdict_changes:
            counts: dict[str, int] = {}
            for c in self.verdict_changes:
                counts[c] = counts.get(c, 0) + 1
            changed += " (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")"
        return (f"{self.within} of {self.numbers} numbers within tolerance; verdicts changed: {changed}; "
                f"rows in one run only: {self.one_run_only}")

    def compare_number(self, where: str, column: str, a: float, b: float, tol: Tolerance,
                       a_iv: tuple[float, float] | None = None, b_iv: tuple[float, float] | None = None) -> None:
        if not tol.compared:
            return
        self.numbers += 1
        if math.isnan(a) and math.isnan(b):
            self.within += 1
            return
        ivs = [iv for iv in (a_iv, b_iv) if iv is not None and not any(math.isnan(x) for x in iv)]
        if math.isnan(a) or math.isnan(b):
            ok, why = False, "missing in one run"
        elif ivs:
            ok = any(iv[0] - 1e-9 <= other <= iv[1] + 1e-9 for iv, other in zip((a_iv, b_iv), (b, a))
                     if iv is not None and not any(math.isnan(x) for x in iv))
            why = "outside both intervals " + " / ".join(
                f"[{_fmt(iv[0])}, {_fmt(iv[1])}]" if iv else "none" for iv in (a_iv, b_iv))
        else:
            ok, why = tol.allows(a, b), f"{tol.kind} tolerance: {tol.describe()}"
        if ok:
            self.within += 1
        else:
            self.lines.append(f"{where}: {column}: {_fmt(a)} -> {_fmt(b)} ({why})")


def _require(run: Path) -> None:
    missing = [p for p in (run / TABLES, run / CLAIMS) if not p.exists()]
    if missing:
        raise AdvFeaturesError(
            f"{run} is not a finished run: {', '.join(str(p) for p in missing)} missing; give a folder "
            f"holding {TABLES}/*.csv and {CLAIMS} (e.g. results/default after `make run`, or reference/default)"
        )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AdvFeaturesError(f"cannot read {path} as CSV ({exc}); regenerate it or remove it") from None


def one_replicate(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where one table has a ``replicate`` column and the other not (a replicate's own folder
    ``rep<r>/``, or a run written before replicates), the other is one replicate: replicate 0."""
    if ("replicate" in a.columns) != ("replicate" in b.columns):
        a, b = (a, b.assign(replicate=0)) if "replicate" in a.columns else (a.assign(replicate=0), b)
    return a, b


def compare_table(cmp: Comparison, name: str, a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Compare table ``name`` of both runs row by row (rows matched by key)."""
    keys = [k for k in table_keys(name, a) if k in b.columns]
    ivs = interval_columns(list(a.columns))
    rows_a, rows_b = keyed_rows(a, keys), keyed_rows(b, keys)
    for key in rows_a.keys() - rows_b.keys():
        cmp.one_run_only += 1
        cmp.lines.append(f"tables/{name}.csv [{key}]: only in {cmp.run_a}")
    for key in rows_b.keys() - rows_a.keys():
        cmp.one_run_only += 1
        cmp.lines.append(f"tables/{name}.csv [{key}]: only in {cmp.run_b}")
    cols_a, cols_b = value_columns(a, keys), value_columns(b, keys)
    for c in [c for c in cols_a if c not in cols_b] + [c for c in cols_b if c not in cols_a]:
        cmp.lines.append(f"tables/{name}.csv: column {c!r} only in {cmp.run_a if c in cols_a else cmp.run_b}")
    text = {c for c in cols_a if c in b.columns and not (pd.api.types.is_numeric_dtype(a[c])
                                                         and pd.api.types.is_numeric_dtype(b[c]))}
    for key in [k for k in rows_a if k in rows_b]:
        ra, rb = rows_a[key], rows_b[key]
        where = f"tables/{name}.csv [{key}]"
        for c in cols_a:
            if c not in b.columns:
                continue
            if c in text:  # text outside the key (e.g. an attack's label): a change is reported, not counted
                ta, tb = _key_text(ra[c]), _key_text(rb[c])
                if ta != tb:
                    cmp.lines.append(f"{where}: {c}: {ta!r} -> {tb!r}")
                continue
            iv_a = (_num(ra[ivs[c][0]]), _num(ra[ivs[c][1]])) if c in ivs else None
            iv_b = ((_num(rb[ivs[c][0]]), _num(rb[ivs[c][1]]))
                    if c in ivs and ivs[c][0] in b.columns and ivs[c][1] in b.columns else None)
            cmp.compare_number(where, c, _num(ra[c]), _num(rb[c]), tolerance(name, c), iv_a, iv_b)


def compare_claims(cmp: Comparison, a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Claims by (study, claim): verdict, measured (its CI), threshold, n."""
    keys = [k for k in ("study", "claim") if k in a.columns and k in b.columns]
    if not keys or "verdict" not in a.columns or "verdict" not in b.columns:
        raise AdvFeaturesError(f"{CLAIMS} needs the columns study, claim and verdict (written by gather_claims)")
    rows_a, rows_b = keyed_rows(a, keys), keyed_rows(b, keys)
    cmp.claims = len(rows_a.keys() & rows_b.keys())
    for key in rows_a.keys() - rows_b.keys():
        cmp.one_run_only += 1
        cmp.lines.append(f"claims.csv [{key}]: only in {cmp.run_a}")
    for key in rows_b.keys() - rows_a.keys():
        cmp.one_run_only += 1
        cmp.lines.append(f"claims.csv [{key}]: only in {cmp.run_b}")
    for key in [k for k in rows_a if k in rows_b]:
        ra, rb = rows_a[key], rows_b[key]
        where = f"claims.csv [{key}]"
        if str(ra["verdict"]) != str(rb["verdict"]):
            change = f"{ra['verdict']} -> {rb['verdict']}"
            cmp.verdict_changes.append(change)
            cmp.lines.append(f"{where}: verdict {change}")

        def iv(r):
            return (_num(r.get("ci_low")), _num(r.get("ci_high")))

        cmp.compare_number(where, "measured", _num(ra.get("measured")), _num(rb.get("measured")),
                           TOLERANCES["value"], iv(ra), iv(rb))
        cmp.compare_number(where, "threshold", _num(ra.get("threshold")), _num(rb.get("threshold")),
                           TOLERANCES["value"])
        cmp.compare_number(where, "n", _num(ra.get("n")), _num(rb.get("n")), TOLERANCES["count"])


def compare_runs(run_a: str | Path, run_b: str | Path) -> Comparison:
    """Compare two finished runs' ``tables/*.csv`` and ``claims.csv``."""
    a, b = Path(run_a), Path(run_b)
    _require(a)
    _require(b)
    cmp = Comparison(a, b)
    names_a = {p.stem for p in (a / TABLES).glob("*.csv")}
    names_b = {p.stem for p in (b / TABLES).glob("*.csv")}
    for name in sorted(names_a ^ names_b):
        cmp.one_run_only += 1
        cmp.lines.append(f"tables/{name}.csv: only in {a if name in names_a else b}")
    for name in sorted(names_a & names_b):
        ta, tb = one_replicate(_read_csv(a / TABLES / f"{name}.csv"), _read_csv(b / TABLES / f"{name}.csv"))
        compare_table(cmp, name, ta, tb)
    compare_claims(cmp, _read_csv(a / CLAIMS), _read_csv(b / CLAIMS))
    return cmp


#: What a reference keeps of a run: small text files only (no models, no HDF5, no figures).
REFERENCE_FILES = (f"{TABLES}/*.csv", f"{TABLES}/*.md", CLAIMS, "config.yaml")


def _git(*args: str) -> str:
    try:
        res = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def provenance(run: Path, commit: str | None = None) -> str:
    """A Markdown note on where a reference comes from (commit, software, CPU, verdicts);
    ``commit``: the commit that produced the run (default: this checkout's HEAD)."""
    import torch

    dirty = ""
    if commit is None:
        commit = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
        dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    claims = pd.read_csv(run / CLAIMS)
    verdicts = claims["verdict"].value_counts()
    counts = ", ".join(f"{int(verdicts.get(v, 0))} {v}" for v in ("holds", "fails", "inconclusive", "not testable"))
    return "\n".join([
        "# Reference run",
        "",
        f"The tables and claims of a finished run (`{run}`), committed so that a new run can be",
        "compared with them: `python -m advfeatures compare reference/default results/default` (`make run`",
        "does it at its end). Regenerate on purpose with `make reference` after a change that is meant",
        "to move the numbers; see docs/reproducibility.md for what is exact and what holds within",
        "tolerance on another CPU.",
        "",
        f"- commit: {commit}{dirty}",
        f"- python {platform.python_version()}, torch {torch.__version__}, pandas {pd.__version__}",
        f"- CPU: {platform.machine()} {platform.processor() or ''} (torch kernels: "
        f"{torch.backends.cpu.get_cpu_capability()})".replace("  ", " "),
        f"- {len(claims)} claims: {counts}",
        "",
    ])


def write_reference(run: str | Path, dest: str | Path, commit: str | None = None) -> list[Path]:
    """Replace ``dest`` with the small text outputs of finished run ``run`` (:data:`REFERENCE_FILES`)
    and a provenance README; returns the files written.  Stale files of ``dest`` go."""
    run, dest = Path(run), Path(dest)
    _require(run)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for pattern in REFERENCE_FILES:
            for f in sorted(run.glob(pattern)):
                target = tmp / f.relative_to(run)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
        (tmp / "README.md").write_text(provenance(run, commit))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in dest.rglob("*") if p.is_file())


def reference_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m advfeatures reference",
        description="Copy a finished run's tables (CSV, Markdown) and claims into a reference folder "
                    "(replacing it), with a README on where they come from.",
    )
    p.add_argument("run", help="the finished run folder (holding tables/ and claims.csv)")
    p.add_argument("dest", help="the reference folder to replace (e.g. reference/default)")
    p.add_argument("--commit", help="the commit that produced the run, when it is not this checkout's HEAD")
    args = p.parse_args(argv)
    try:
        files = write_reference(args.run, args.dest, args.commit)
    except AdvFeaturesError as exc:
        print(f"reference: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dest}: {len(files)} files from {args.run}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m advfeatures compare",
        description="Line up two runs' tables/*.csv and claims.csv; report numbers outside their "
                    "tolerance, changed verdicts and rows present in one run only.",
    )
    p.add_argument("run_a", help="a run folder holding tables/ and claims.csv (e.g. reference/default)")
    p.add_argument("run_b", help="the other run folder (e.g. results)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a number is out of tolerance, a verdict changed or a row is in one run only")
    p.add_argument("--summary-only", action="store_true", help="print the summary line only")
    args = p.parse_args(argv)
    try:
        cmp = compare_runs(args.run_a, args.run_b)
    except AdvFeaturesError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    if not args.summary_only:
        print(f"compare {cmp.run_a} (A) with {cmp.run_b} (B):")
        for line in cmp.lines:
            print("  " + line)
    print(cmp.summary())
    return 1 if args.strict and not cmp.clean else 0


if __name__ == "__main__":
    sys.exit(main())
