"""`snakemake --report` on a whole tiny run, and exact reruns across the whole DAG.

The session's one run of the complete tiny DAG (tests/tiny.yaml, every stage up to
results/tiny/summary.md; conftest.tiny_run, shared with the rerun matrix and the fault tests); then

- the HTML report holds every replicate's tables (results/tiny/rep0/tables/*.csv), the run's
  claims (results/tiny/claims.csv) and every figure (*.png) the workflow declares, each with a
  rendered caption, grouped by study;
- the finished DAG is up to date, and touching every script, rule file and result reruns nothing;
- editing one stage's script reruns exactly that rule and its descendants.

The expected files come from the workflow itself (``--summary``), not from a list typed here.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import REP0, RUN, Snake, edited

pytestmark = pytest.mark.slow

#: the report's categories: one per study, plus the training table and the gathered claims
CATEGORIES = {
    "ilyas": "Ilyas et al. 2019",
    "kim": "Kim, Lee, Ro 2021",
    "robust_acc_vs_eps": "Kim, Lee, Ro 2021",
    "mi": "Zhang et al.",
    "mutual_info": "Zhang et al.",
    "training": "Training",
    "claims": "Claims",
    "paper_vs_ours": "Published numbers",
}
#: what each study's captions must name
PAPER = {"Ilyas et al. 2019": "Ilyas", "Kim, Lee, Ro 2021": "Kim, Lee, Ro", "Zhang et al.": "Zhang"}


def category_of(path: str) -> str:
    stem = Path(path).stem
    key = max((k for k in CATEGORIES if stem == k or stem.startswith(k + "_")), key=len)
    return CATEGORIES[key]


@pytest.fixture(scope="module")
def full_run(tiny_run) -> Snake:
    """The whole tiny DAG, run once per session (conftest.tiny_run); every test here leaves it
    up to date and its repository copy as it found it."""
    return tiny_run


@pytest.fixture(scope="module")
def declared(full_run) -> set[str]:
    """Tables and figures the workflow declares as outputs (from ``--summary``)."""
    files = full_run.summary()
    return {
        f for f in files
        if f.endswith(".png") or (f.startswith(f"{REP0}/tables/") and f.endswith(".csv"))
        or f == f"{RUN}/claims.csv"
    }


@pytest.fixture(scope="module")
def report(full_run) -> tuple[dict, dict]:
    """(results, categories) embedded in the run's report.html."""
    full_run.run("--report", f"{RUN}/report.html")
    html = (full_run.wd / RUN / "report.html").read_text()
    out = []
    for var in ("results", "categories"):
        start = html.index(f"var {var} = {{") + len(f"var {var} = ")
        out.append(json.JSONDecoder().raw_decode(html, start)[0])
    return tuple(out)


def check_figure(path: Path) -> None:
    """A figure is a decodable PNG of a readable size with something drawn in it (not one flat
    colour, not only a frame: many distinct colours come from lines, markers and text)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        w, h = im.size
        a = np.asarray(im.convert("RGB"))
    assert w >= 150 and h >= 100, (path, im.size)
    assert a.std() > 5, f"{path}: (almost) one flat colour"
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 20, f"{path}: too few colours for a plot"


def test_every_declared_table_and_figure_exists(full_run, declared):
    assert sum(f.endswith(".png") for f in declared) >= 8
    assert sum(f.startswith(f"{REP0}/tables/") for f in declared) >= 10
    for f in declared:
        path = full_run.wd / f
        if f.endswith(".png"):
            check_figure(path)
        else:  # a table parses and has rows
            assert len(pd.read_csv(path)) > 0, f
    # nothing in the replicate's tables or any figures folder that the workflow does not declare
    made = {str(p.relative_to(full_run.wd)) for p in (full_run.wd / REP0).glob("tables/*.csv")}
    made |= {str(p.relative_to(full_run.wd)) for p in (full_run.wd / RUN).glob("**/figures/*.png")}
    assert made <= declared


def test_report_holds_every_table_and_figure(full_run, declared, report):
    results, _ = report
    assert set(results) == declared
    for f, rec in results.items():
        # the report embeds the file itself
        payload = rec["data_uri"].split("base64,", 1)[1]
        assert base64.b64decode(payload) == (full_run.wd / f).read_bytes(), f


def test_every_file_has_a_rendered_caption(report):
    results, _ = report
    for f, rec in results.items():
        caption = " ".join(rec["caption"].split())  # rst line breaks
        assert len(caption) > 80, f"{f}: caption missing or too short: {caption!r}"
        assert "{{" not in caption and "{%" not in caption, f"{f}: unrendered template: {caption}"
        paper = PAPER.get(category_of(f))
        if paper:
            assert paper in caption, f"{f}: caption does not name its paper: {caption}"
    # captions name the run's inputs (dataset of tests/tiny.yaml, rendered from the config)
    assert "mnist5k" in results[f"{REP0}/tables/ilyas_datasets.csv"]["caption"]


def test_report_is_grouped_by_study(declared, report):
    _, categories = report
    assert set(categories) == set(CATEGORIES.values())
    placed = {
        f: cat for cat, subs in categories.items() for files in subs.values() for f in files
    }
    assert set(placed) == declared
    for f, cat in placed.items():
        assert cat == category_of(f), f"{f} is under {cat!r}, expected {category_of(f)!r}"
    for cat in PAPER:  # each study's files come in subcategories (tables beside their figures)
        assert all(sub and sub != "None" for sub in categories[cat]), categories[cat]


def test_whole_dag_up_to_date_and_touch_safe(full_run):
    assert full_run.pending_rules() == set()
    repo, wd = full_run.repo, full_run.wd
    touched = list((repo / "workflow_scripts").glob("*.py")) + list((repo / "rules").rglob("*.smk"))
    touched += [p for d in ("data", "results") for p in (wd / d).rglob("*") if p.is_file()]
    touched += list((repo / "advfeatures").rglob("*.py")) + [repo / "Snakefile", repo / "report" / "kim_table1.rst"]
    stats = {p: p.stat() for p in touched}
    try:
        for p in touched:
            os.utime(p)
        assert full_run.pending_rules() == set()
    finally:
        for p, st in stats.items():
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("script, rule", [("report_mi.py", "report_mi"), ("distill.py", "distill")])
def test_editing_a_script_reruns_its_rule_and_descendants(full_run, script, rule):
    with edited(full_run.repo / "workflow_scripts" / script):
        pending = full_run.pending_rules() - {"all"}
    assert pending == full_run.rule_descendants({rule}) - {"all"}
    assert full_run.pending_rules() == set()


def test_every_markdown_view_has_at_most_12_columns(full_run):
    """The Markdown views stay readable (one cell per quantity); the CSVs keep every column."""
    views = sorted((full_run.wd / RUN).glob("tables/*.md")) + sorted((full_run.wd / REP0).glob("tables/*.md"))
    assert len(views) >= 20
    for md in views:
        widths = {line.count("|") - 1 for line in md.read_text().splitlines() if line.startswith("|")}
        assert widths and max(widths) <= 12, f"{md.name}: {max(widths)} columns"
        assert not any(" lo |" in line or " hi |" in line for line in md.read_text().splitlines()), md.name
