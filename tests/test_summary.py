"""The README results section: summary building, run-time clustering, splicing."""

import os

import pandas as pd
import pytest

from advfeatures.reporting import Claim, write_claims, write_table
from advfeatures.reporting.summary import END, START, build_summary, run_time, splice_readme


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


def test_summary_inlines_short_tables_links_long_ones_and_splices(tmp_path):
    short, long = tmp_path / "short.md", tmp_path / "long.md"
    write_table(pd.DataFrame({"a": [1.0, 2.0]}), tmp_path / "short.csv", short, title="Short")
    write_table(pd.DataFrame({"a": range(50)}), tmp_path / "long.csv", long, title="Long")
    claims = tmp_path / "claims.csv"
    write_claims([Claim("s", "x above 1", 2.0, ">", 1.0, p_value=0.001, ci_low=1.5, ci_high=2.5),
                  Claim("s", "y below 0", 1.0, "<", 0.0, p_value=0.5),
                  Claim("t", "z below 0", -1.0, "<", 0.0, p_value=0.001, untestable="model m at chance")], claims)
    text = build_summary([("Study", [short, long])], claims, tmp_path / "summary.md", max_rows=30)
    assert "#### Short" in text and "| 1.00 |" in text
    assert f"50 rows: see `{long}`" in text
    assert "Of 3 claims on this run: 1 hold, 0 fail, 1 are inconclusive and 1 are not testable" in text
    assert "| s | 1 | 0 | 1 | 0 | 2 |" in text and "| all studies | 1 | 0 | 1 | 1 | 3 |" in text
    assert "- t: model m at chance (1)" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold numbers\n{END}\noutro\n")
    assert splice_readme(readme, tmp_path / "summary.md")
    new = readme.read_text()
    assert "old numbers" not in new and "#### Short" in new
    assert new.startswith("intro\n") and new.endswith("outro\n")
    assert not splice_readme(readme, tmp_path / "summary.md")  # idempotent
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        splice_readme(readme, tmp_path / "summary.md")
