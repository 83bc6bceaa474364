"""results/summary.md, run-time clustering and the Markdown views of the tables."""

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from advfeatures.reporting import (
    MAX_MD_COLUMNS,
    Claim,
    markdown_view,
    verdicts,
    write_claims,
    write_markdown,
    write_table,
)
from advfeatures.reporting.summary import (
    build_summary,
    claims_view,
    run_time,
    verdict_counts_markdown,
)


def _bench(dirpath, rule, tag, seconds, end):
    p = dirpath / rule / f"{tag}.tsv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    os.utime(p, (end, end))


def test_run_time_spans_only_the_last_run(tmp_path):
    b = tmp_path / "bench"
    # an old full run (t = 0..100) and, an hour later, a rerun of two jobs (t = 3600..3650)
    _bench(b, "train", "a", 60, 60)
    _bench(b, "attack", "a", 40, 100)
    _bench(b, "summary", "x", 30, 3630)
    _bench(b, "report", "x", 20, 3650)
    df, tot = run_time(b)
    assert tot["jobs"] == 4 and tot["jobs_in_span"] == 2
    assert tot["span_s"] == pytest.approx(50)
    assert set(df["rule"]) == {"train", "attack", "summary", "report"}
    # the same jobs without the idle hour form one run
    _bench(b, "summary", "x", 30, 130)
    _bench(b, "report", "x", 20, 150)
    _, tot = run_time(b)
    assert tot["jobs_in_span"] == 4 and tot["span_s"] == pytest.approx(150)


def test_run_time_leaves_out_replicates_the_run_no_longer_has(tmp_path):
    # a 2-replicate run of this folder left rep1's files; the 1-replicate rerun counts rep0 only
    b = tmp_path / "bench"
    for name, secs in (("rep0_m_standard", 60), ("rep1_m_standard", 70), ("rep12_m_standard", 5)):
        _bench(b, "train", name, secs, 100)
    _bench(b, "claims_figures", "x", 10, 110)
    df, tot = run_time(b, replicates=1)
    assert tot["jobs"] == 2 and tot["job_s"] == pytest.approx(70)
    assert run_time(b, replicates=2)[1]["job_s"] == pytest.approx(140)
    assert run_time(b)[1]["jobs"] == 4  # no replicate count: every file


def test_summary_inlines_short_tables_links_long_ones(tmp_path):
    short, long = tmp_path / "short.md", tmp_path / "long.md"
    write_table(pd.DataFrame({"a": [1.5, 2.0]}), tmp_path / "short.csv", short, title="Short")
    write_table(pd.DataFrame({"a": range(50)}), tmp_path / "long.csv", long, title="Long")
    claims = tmp_path / "claims.csv"
    write_claims([Claim("s", "x above 1", 2.0, ">", 1.0, p_value=0.001, ci_low=1.5, ci_high=2.5),
                  Claim("s", "y below 0", 1.0, "<", 0.0, p_value=0.5),
                  Claim("t", "z below 0", -1.0, "<", 0.0, p_value=0.001, untestable="model m at chance")], claims)
    text = build_summary([("Study", [short, long])], claims, tmp_path / "summary.md", max_rows=30)
    assert "#### Short" in text and "| 1.50 |" in text
    assert f"50 rows: see `{long}`" in text
    assert "Of 3 claims on this run: 1 hold, 0 fail, 1 are inconclusive and 1 are not testable" in text
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    assert ["s", "1", "0", "1", "0", "2"] in rows and ["all studies", "1", "0", "1", "1", "3"] in rows
    assert "- t: model m at chance (1)" in text
    # the claims table says why: the reason column is there, the effect carries its interval
    claim_rows = [r for r in rows if r[:2] == ["s", "x above 1"]]
    assert claim_rows and "2 [1.5, 2.5]" in claim_rows[0] and "> 1" in claim_rows[0]
    assert any("model m at chance" in cell for r in rows for cell in r)


def test_markdown_view_one_cell_per_quantity_and_column_limit(tmp_path):
    df = pd.DataFrame({"model": ["a", "b"], "n": [1000.0, 200.0], "acc": [97.2, 50.0],
                       "published_acc": [np.nan, np.nan], "published_b": [95.3, np.nan]})
    df = verdicts.add_wilson(df, ["acc"], "n")
    view = markdown_view(df, ci_fmt=".1f")
    assert list(view.columns) == ["model", "n", "acc", "published_b"]  # lo/hi merged, empty published dropped
    assert view.loc[0, "acc"] == "97.2 [96.0, 98.1]" and view.loc[0, "n"] == "1000"
    assert view.loc[1, "published_b"] == ""
    wide = pd.DataFrame({f"c{i}": [1.0] for i in range(MAX_MD_COLUMNS + 1)})
    with pytest.raises(ValueError, match="13 columns"):
        write_markdown(wide, tmp_path / "wide.md")
    write_markdown(wide, tmp_path / "ok.md", drop=["c0"])
    header = (tmp_path / "ok.md").read_text().splitlines()[0]
    assert header.count("|") - 1 == MAX_MD_COLUMNS


def test_claims_view_tolerates_added_and_missing_columns():
    claims = pd.DataFrame({"study": ["s"], "claim": ["x"], "verdict": ["holds"], "measured": [2.0],
                           "comparison": [">"], "threshold": [0.0], "ci_low": [1.0], "ci_high": [3.0],
                           "p_value": [0.01], "p_holm": [0.03], "n": [10], "reason": ["significant"]})
    v = claims_view(claims)
    assert list(v.columns) == ["study", "claim", "verdict", "effect [95% CI]", "claim says", "p_value", "n", "reason"]
    assert v.loc[0, "effect [95% CI]"] == "2 [1, 3]"
    v = claims_view(claims.drop(columns=["ci_low", "ci_high", "comparison"]))
    assert v.loc[0, "effect [95% CI]"] == "2" and "claim says" not in v


REPO = Path(__file__).resolve().parents[1]
def test_readme_fits_a_few_screens_and_its_table_is_generated():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 200
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        if link.startswith("http"):
            continue
        assert (REPO / link).exists(), f"README links to missing {link}"
    for url in ("arxiv.org/abs/1905.02175", "proceedings.neurips.cc/paper/2021", "arxiv.org/abs/2207.05756"):
        assert url in text
    # the verdict table is what the code writes from the claims file the pictures were made from
    start, end = text.index("<!-- verdicts:start"), text.index("<!-- verdicts:end -->")
    block = text[text.index("\n", start) + 1:end].strip()
    claims = pd.read_csv(REPO / "docs" / "figures" / "claims.csv")
    assert block == verdict_counts_markdown(claims).strip()
    assert (REPO / "docs" / "figures" / "claims_forest.png").stat().st_size > 10_000


def test_table3_view_has_attacks_as_rows_and_one_column_per_model(tmp_path):
    from advfeatures.reporting import attacks as rep

    rows = []
    for model in ("standard", "ADV"):
        for label, bound, acc, pub in (("Clean", "", 90.0, np.nan), ("FGSM", "Linf 0.03", 50.0, 51.3),
                                       ("PGD", "Linf 0.03", 40.0, 44.7), ("NRF max norm G_nr", "unbounded", 20.0, 27.4)):
            rows.append({"model": model, "label": label, "bound": bound, "n": 100, "accuracy": acc,
                         "published": pub if model == "ADV" else np.nan})
    t3 = verdicts.add_wilson(pd.DataFrame(rows), ["accuracy"], "n")
    view = rep.table3_view(t3)
    assert list(view.columns) == ["attack (bound)", "n", "standard", "ADV"]
    assert list(view["attack (bound)"]) == ["Clean", "FGSM (Linf 0.03)", "PGD (Linf 0.03)", "NRF max norm G_nr (unbounded)"]
    pgd = view.set_index("attack (bound)").loc["PGD (Linf 0.03)"]
    assert pgd["n"] == "100" and pgd["ADV"].startswith("40.0 [") and pgd["ADV"].endswith("(paper 44.7)")
    assert "paper" not in pgd["standard"]
    write_markdown(view, tmp_path / "t3.md")
