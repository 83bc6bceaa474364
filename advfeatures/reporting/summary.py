"""The run's summary: a training table, every study's Markdown tables and all claims.

``results/<run>/summary.md`` gathers a run's Markdown views in one page (the HTML report of
``snakemake --report`` holds the same tables and the figures).  The README is static: it shows
the committed reference run's claims picture and links here.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from advfeatures.reporting import VERDICTS, interval_cell, to_markdown, write_table
from advfeatures.utils import atomic_write


def training_table(metrics: Mapping[str, str | os.PathLike],
                   benchmarks: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """One row per training method: final clean and PGD accuracy (%), epochs, job wall time."""
    rows = []
    for method, path in metrics.items():
        df = pd.read_csv(path)
        last = df.iloc[-1]
        wall = None
        bench = benchmarks.get(method)
        if bench and Path(bench).exists():
            with open(bench) as f:
                bench_rows = list(csv.DictReader(f, delimiter="\t"))
            wall = float(bench_rows[-1]["s"]) if bench_rows else None
        rows.append({
            "method": method,
            "epochs": int(last["epoch"]),
            "test clean acc %": 100 * float(last["test_clean_acc"]),
            "test PGD acc %": 100 * float(last["test_pgd_acc"]),
            "train job wall s": wall,
        })
    return pd.DataFrame(rows)


def write_training_table(metrics, benchmarks, csv_path, md_path, attack: Mapping | None = None):
    df = training_table(metrics, benchmarks)
    note = None
    if attack:
        note = (f"PGD: {attack['norm']} eps {attack['eps']:.4g}, {attack['steps']} steps of "
                f"{attack['alpha']:.4g}, on the fixed evaluation subset of the test set.")
    write_table(df, csv_path, md_path, title="Training: standard and adversarially trained models",
                note=note, floatfmt=".1f")
    return df


_REP = re.compile(r"^rep(\d+)_")


def benchmark_jobs(bench_dir: str | os.PathLike, replicates: int | None = None) -> list[dict]:
    """One record per job from Snakemake's benchmark files under ``bench_dir``: the file's last
    row (its columns as text: s, max_rss, ...) plus ``rule`` (the first path part), ``job`` (the
    rest of the path) and ``end`` (the file's mtime: when the job ended).  With ``replicates``
    = k, files of replicates k and above (``rep<r>_...``, left by an earlier run of the same run
    folder with more replicates) are not this run's and are skipped."""
    out = []
    for tsv in sorted(Path(bench_dir).rglob("*.tsv")):
        if replicates is not None and (m := _REP.match(tsv.name)) and int(m.group(1)) >= replicates:
            continue
        with open(tsv) as f:
            recs = list(csv.DictReader(f, delimiter="\t"))
        if recs:
            parts = tsv.relative_to(bench_dir).with_suffix("").parts
            job = "/".join(parts[1:]) or parts[0]
            out.append({**recs[-1], "rule": parts[0], "job": job, "end": tsv.stat().st_mtime})
    return out


def run_time(bench_dir: str | os.PathLike, gap_s: float = 120.0,
             replicates: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Wall time per rule from Snakemake's benchmark files, and the span of the last run.

    A benchmark file is written when its job ends, so a job ran from mtime - s to mtime.  The
    last run is the cluster of jobs reached backwards from the last job end without an idle gap
    longer than ``gap_s``; its span (first start to last end) is the run's wall time, without
    Snakemake's own start-up.  ``jobs_in_span`` tells whether that run executed every job (a
    fresh ``make run``) or only part of the DAG (an incremental rerun).  ``replicates``: as
    :func:`benchmark_jobs`.
    """
    jobs = []
    for rec in benchmark_jobs(bench_dir, replicates):
        secs, end = float(rec["s"]), rec["end"]
        jobs.append((end - secs, end, rec["rule"], secs))
    cols = ["rule", "jobs", "job seconds (sum)", "longest job s"]
    if not jobs:
        return pd.DataFrame(columns=cols), {"jobs": 0, "jobs_in_span": 0, "span_s": 0.0, "job_s": 0.0}
    df = pd.DataFrame([{"rule": r, "s": s} for _, _, r, s in jobs])
    df = df.groupby("rule")["s"].agg(["count", "sum", "max"]).reset_index()
    df.columns = cols
    df = df.sort_values("job seconds (sum)", ascending=False, ignore_index=True)
    # walk back from the last end: a job belongs to the last run while it overlaps it or ends
    # less than gap_s before the run's earliest start so far
    jobs.sort(key=lambda j: j[1], reverse=True)
    start = jobs[0][0]
    in_span = 0
    for j_start, j_end, _, _ in jobs:
        if j_end < start - gap_s:
            break
        start = min(start, j_start)
        in_span += 1
    totals = {"jobs": len(jobs), "jobs_in_span": in_span, "span_s": jobs[0][1] - start,
              "job_s": float(df["job seconds (sum)"].sum())}
    return df, totals


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Per study: how many claims hold, fail, are inconclusive or not testable (and the total)."""
    t = pd.crosstab(claims["study"], claims["verdict"]).reindex(columns=list(VERDICTS), fill_value=0)
    t = t.reindex(list(dict.fromkeys(claims["study"])))
    t["total"] = t.sum(axis=1)
    t.loc["all studies"] = t.sum(axis=0)
    return t.reset_index().rename(columns={"index": "study"})


def verdict_counts_markdown(claims: pd.DataFrame) -> str:
    c = verdict_counts(claims)
    tot = c.iloc[-1]
    head = (f"Of {int(tot['total'])} claims on this run: {int(tot['holds'])} hold, {int(tot['fails'])} fail, "
            f"{int(tot['inconclusive'])} are inconclusive and {int(tot['not testable'])} are not testable "
            "(verdicts and settings: `report.claims` in config.yaml).\n")
    return head + "\n" + to_markdown(c) + "\n"


def claims_view(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims for reading: effect with its interval in one cell, the claim's test
    (``> 0``), p, n and the reason of the verdict; extra columns of claims.csv stay in the CSV."""
    lo = next((c for c in ("ci_low", "ci_lo") if c in claims), None)
    hi = next((c for c in ("ci_high", "ci_hi") if c in claims), None)
    eff = next((c for c in ("measured", "effect") if c in claims), None)
    out = pd.DataFrame({c: claims[c] for c in ("study", "claim", "verdict") if c in claims})
    if eff:
        out["effect [95% CI]"] = [
            interval_cell(v, a, b, ".3g") for v, a, b in zip(
                claims[eff], claims[lo] if lo else [math.nan] * len(claims),
                claims[hi] if hi else [math.nan] * len(claims))]
    if "comparison" in claims and "threshold" in claims:
        out["claim says"] = [f"{c} {t:g}" if pd.notna(t) else "" for c, t in zip(claims["comparison"], claims["threshold"])]
    for c in ("p_value", "n", "reason"):
        if c in claims:
            out[c] = claims[c]
    return out


def not_testable_markdown(claims: pd.DataFrame) -> str:
    """The reasons of the not-testable claims, each once, with how many claims it stops."""
    nt = claims[claims["verdict"] == "not testable"]
    if nt.empty:
        return "\nEvery claim was testable on this run.\n"
    lines = ["\nNot testable on this run (reason: claims):\n"]
    reasons: dict[tuple[str, str], int] = {}
    for study, reason in zip(nt["study"], nt["reason"]):
        for part in str(reason).split(" | "):
            reasons[(study, part)] = reasons.get((study, part), 0) + 1
    lines += [f"- {study}: {reason} ({n})" for (study, reason), n in reasons.items()]
    return "\n".join(lines) + "\n"


def build_summary(sections: Sequence[tuple[str, Sequence[str | os.PathLike]]],
                  claims_csv: str | os.PathLike, out: str | os.PathLike,
                  figures: Sequence[str] = (), bench_dir: str | os.PathLike | None = None,
                  max_rows: int = 30, preamble: str = "", replicates: int | None = None) -> str:
    """Concatenate Markdown tables per study, then the claims table; write and return it.

    Tables longer than ``max_rows`` rows are named with their path instead of inlined.
    """
    parts = [preamble] if preamble else []
    if bench_dir is not None:
        rt, tot = run_time(bench_dir, replicates=replicates)
        if tot["jobs"]:
            scope = ("every job of the DAG" if tot["jobs_in_span"] == tot["jobs"]
                     else f"an incremental rerun of {tot['jobs_in_span']} of {tot['jobs']} jobs")
            parts.append("### Run time\n")
            parts.append(
                f"Last run: **{tot['span_s'] / 60:.1f} min** wall clock for {scope} "
                f"(first job start to last job end, from Snakemake's benchmark files; the summary job "
                f"is not counted). All {tot['jobs']} jobs together take {tot['job_s'] / 60:.1f} "
                "job-minutes. Per rule (latest run of each job):\n"
            )
            parts.append(to_markdown(rt, floatfmt=".1f"))
    for title, tables in sections:
        parts.append(f"### {title}\n")
        for t in tables:
            text = Path(t).read_text().strip()
            rows = sum(1 for line in text.splitlines() if line.startswith("| ")) - 1
            if rows > max_rows:
                # keep the page readable: long tables are linked, not inlined
                title = next((ln[4:] for ln in text.splitlines() if ln.startswith("### ")), Path(t).stem)
                parts.append(f"#### {title}\n\n{rows} rows: see `{t}` (and the CSV beside it).\n")
                continue
            # demote the tables' own headings below the study heading
            parts.append(text.replace("### ", "#### ", 1) + "\n")
    claims = pd.read_csv(claims_csv)
    parts.append(f"### Claims ({Path(claims_csv).name})\n")
    parts.append(verdict_counts_markdown(claims))
    parts.append(to_markdown(claims_view(claims), floatfmt=".3g"))
    parts.append(not_testable_markdown(claims))
    if figures:
        parts.append("\nFigures: " + ", ".join(f"`{f}`" for f in figures) + "\n")
    text = "\n".join(parts)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        tmp.write_text(text)
    return text
