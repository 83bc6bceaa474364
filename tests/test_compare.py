"""advfeatures.compare and ``python -m advfeatures compare`` on small runs the tests write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from advfeatures import compare as cmp_mod
from advfeatures.__main__ import main as cli
from advfeatures.compare import (
    TOLERANCES,
    column_kind,
    compare_runs,
    interval_columns,
    table_keys,
    tolerance,
    value_range,
)

ROOT = Path(__file__).resolve().parents[1]

DATASETS = pd.DataFrame({
    "training set": ["D (standard training)", "D_R (robust features)", "D_det (deterministic target labels)"],
    "n": [500, 500, 500],
    "clean acc": [98.0, 96.4, 21.6],
    "clean acc lo": [96.36, 94.38, 18.22],
    "clean acc hi": [98.91, 97.71, 25.42],
    "rel. repr. distance": [float("nan"), 0.20, 1.26],
    "published clean acc": [95.3, 84.0, 43.7],
})
TABLE3 = pd.DataFrame({  # long format, as the CSV (the Markdown twin is wide)
    "model": ["standard", "standard", "ADV"],
    "attack": ["clean", "pgd", "pgd"],
    "label": ["Clean", "PGD", "PGD"],
    "bound": [None, "Linf 0.1765", "Linf 0.1765"],
    "n": [500, 500, 500],
    "accuracy": [97.2, 14.2, 88.0],
    "median_l2_fooled": [None, 1.19, 0.53],
})
TRAINING = pd.DataFrame({
    "method": ["standard", "pgd_linf"],
    "epochs": [20, 20],
    "test clean acc %": [97.2, 97.0],
    "train job wall s": [35.4, 111.1],
})
SWEEP = pd.DataFrame({  # not in TABLE_KEYS: keys from its text and setting columns
    "model": ["standard", "standard", "ADV"],
    "beta": [0.1, 1.0, 0.1],
    "I_XT": [3.0, 2.0, 1.0],
})
CLAIMS = pd.DataFrame({
    "study": ["ilyas", "ilyas"],
    "claim": ["D_R is more robust than D", "D_NR gives near-zero robustness"],
    "verdict": ["inconclusive", "fails"],
    "measured": [-5.2, 23.6],
    "threshold": [0.0, 10.0],
    "ci_low": [-11.3, 20.1],
    "ci_high": [0.99, 27.5],
    "p_value": [0.1, 1e-18],
    "n": [500, 500],
})


def write_run(path: Path, edits: dict | None = None, claims: pd.DataFrame | None = None) -> Path:
    """A run folder with the four tables above; ``edits``: {table: DataFrame} replaces one."""
    tables = {"ilyas_datasets": DATASETS, "kim_table3": TABLE3, "training": TRAINING, "ib_sweep": SWEEP}
    tables |= edits or {}
    (path / "tables").mkdir(parents=True)
    for name, df in tables.items():
        if df is not None:
            df.to_csv(path / "tables" / f"{name}.csv", index=False)
    (CLAIMS if claims is None else claims).to_csv(path / "claims.csv", index=False)
    return path


def edited(df: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    out = df.copy()
    out.loc[row, column] = value
    return out


def test_identical_runs_agree_everywhere(tmp_path, capsys):
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    c = compare_runs(a, b)
    # numbers: datasets 3 rows x (n, clean acc, distance, published) + table3 3 x (n, accuracy,
    # median_l2_fooled; label and bound are text) + training 2 x 2 (wall s not compared) + sweep
    # 3 x 1 + claims 2 x (measured, threshold, n)
    assert c.numbers == 12 + 9 + 4 + 3 + 6
    assert c.within == c.numbers and c.lines == [] and c.clean
    assert c.summary() == "34 of 34 numbers within tolerance; verdicts changed: 0 of 2; rows in one run only: 0"
    assert cli(["compare", str(a), str(b), "--strict"]) == 0
    assert capsys.readouterr().out.strip().endswith("verdicts changed: 0 of 2; rows in one run only: 0")


def test_rows_are_matched_by_key_not_position(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", {"ilyas_datasets": DATASETS.iloc[::-1], "ib_sweep": SWEEP.iloc[[2, 0, 1]]})
    assert compare_runs(a, b).clean


def test_value_inside_either_interval_is_within_and_outside_both_is_reported(tmp_path):
    a = write_run(tmp_path / "a")
    # D_det 21.6 [18.2, 25.4] -> 14.4 [11.6, 17.7]: the intervals do not overlap
    moved = edited(edited(edited(DATASETS, 2, "clean acc", 14.4), 2, "clean acc lo", 11.6), 2, "clean acc hi", 17.7)
    # D_R 96.4 -> 94.6: inside A's interval [94.38, 97.71]
    moved = edited(moved, 1, "clean acc", 94.6)
    b = write_run(tmp_path / "b", {"ilyas_datasets": moved})
    ab, ba = compare_runs(a, b), compare_runs(b, a)
    assert ab.outside == ba.outside == 1  # symmetric
    (line,) = ab.lines
    assert line.startswith("tables/ilyas_datasets.csv [training set=D_det (deterministic target labels)]: clean acc")
    assert "21.6 -> 14.4" in line and "[18.22, 25.42] / [11.6, 17.7]" in line
    assert cli(["compare", str(a), str(b)]) == 0  # reported, but not strict
    assert cli(["compare", str(a), str(b), "--strict"]) == 1


@pytest.mark.parametrize("table, row, column, value, within", [
    ("kim_table3", 2, "accuracy", 89.9, True),  # percent: 2 points
    ("kim_table3", 2, "accuracy", 90.1, False),
    ("kim_table3", 2, "n", 499, False),  # a setting count: exact
    ("kim_table3", 1, "median_l2_fooled", 1.2, True),  # value: 5% relative
    ("training", 0, "train job wall s", 99.0, True),  # timing: not compared
    ("training", 0, "epochs", 21, False),  # count: exact
    ("ilyas_datasets", 0, "n", 499, False),
    ("ilyas_datasets", 0, "published clean acc", 95.4, False),  # published: exact
    ("ilyas_datasets", 1, "rel. repr. distance", 0.209, True),  # value: 5% relative
    ("ilyas_datasets", 1, "rel. repr. distance", 0.215, False),
    ("ilyas_datasets", 0, "rel. repr. distance", 0.2, False),  # missing in one run
    ("ib_sweep", 0, "I_XT", 3.2, False),
])
def test_default_tolerance_per_column_kind(tmp_path, table, row, column, value, within):
    base = {"ilyas_datasets": DATASETS, "kim_table3": TABLE3, "training": TRAINING, "ib_sweep": SWEEP}
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", {table: edited(base[table], row, column, value)})
    c = compare_runs(a, b)
    assert (c.outside == 0) is within, c.lines
    assert c.numbers == 34


def test_column_kinds_and_intervals():
    assert column_kind("training", "train job wall s") == "timing"
    assert [column_kind("x", c) for c in ("n", "n D", "channels", "epochs")] == ["count"] * 4
    assert [column_kind("x", c) for c in ("nonrobust_channels", "n_success", "transfer n")] == ["value"] * 3
    assert column_kind("x", "published robust acc l2") == "published"
    assert column_kind("x", "nr_agree") == column_kind("x", "Clean") == column_kind("x", "r_true") == "percent"
    assert interval_columns(["acc", "acc lo", "acc hi", "r", "r_lo", "x lo"]) == {"acc": ("acc lo", "acc hi")}
    assert table_keys("kim_table3", TABLE3) == ["model", "attack"]
    assert table_keys("ib_sweep", SWEEP) == ["model", "beta"]
    assert table_keys("training", TRAINING.assign(replicate=["0", "mean"])) == ["method", "replicate"]
    assert TOLERANCES["percent"].allows(50.0, 52.0) and not TOLERANCES["percent"].allows(50.0, 52.1)


def test_fraction_tables_get_a_tolerance_and_range_in_their_unit():
    # the MI tables give accuracy as a fraction: 2 points there is 0.02, not 2.0 (every value)
    assert tolerance("mutual_info_final", "accuracy").allows(0.50, 0.52)
    assert not tolerance("mutual_info_final", "accuracy").allows(0.50, 0.53)
    assert tolerance("kim_table3", "accuracy").allows(50.0, 52.0)
    assert not tolerance("kim_table3", "accuracy").allows(50.0, 52.1)
    assert value_range("mutual_info_distortions", "accuracy") == (0.0, 1.0)
    assert value_range("kim_table3", "accuracy") == (0.0, 100.0)
    assert value_range("kim_table3", "median_l2_fooled") is None


def test_rows_tables_and_columns_in_one_run_only(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", {
        "kim_table3": TABLE3.iloc[:2],  # ADV's PGD row is gone
        "training": TRAINING.drop(columns="epochs"),
        "ib_sweep": None,  # the whole table is gone
    })
    c = compare_runs(a, b)
    assert c.one_run_only == 2 and not c.clean
    assert f"tables/kim_table3.csv [model=ADV, attack=pgd]: only in {a}" in c.lines
    assert f"tables/ib_sweep.csv: only in {a}" in c.lines
    assert f"tables/training.csv: column 'epochs' only in {a}" in c.lines
    assert c.summary().endswith("rows in one run only: 2")
    assert cli(["compare", str(a), str(b), "--strict"]) == 1


def test_text_outside_the_key_is_reported_not_counted(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", {"kim_table3": edited(TABLE3, 1, "bound", "L2 0.5")})
    c = compare_runs(a, b)
    assert c.numbers == 34 and c.outside == 0
    assert c.lines == ["tables/kim_table3.csv [model=standard, attack=pgd]: bound: 'Linf 0.1765' -> 'L2 0.5'"]


def test_repeated_keys_are_numbered(tmp_path):
    twice = pd.concat([SWEEP, SWEEP.iloc[[0]].assign(I_XT=3.5)], ignore_index=True)
    a = write_run(tmp_path / "a", {"ib_sweep": twice})
    b = write_run(tmp_path / "b", {"ib_sweep": edited(twice, 3, "I_XT", 9.0)})
    c = compare_runs(a, b)
    assert c.lines == ["tables/ib_sweep.csv [model=standard, beta=0.1 (occurrence 2)]: I_XT: 3.5 -> 9 "
                       "(value tolerance: 5% relative + 0.001 absolute)"]


def test_verdict_changes_are_counted_and_named(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    claims = edited(edited(CLAIMS, 0, "verdict", "holds"), 0, "p_value", 0.01)  # p-values are not compared
    b = write_run(tmp_path / "b", claims=claims)
    c = compare_runs(a, b)
    assert c.verdict_changes == ["inconclusive -> holds"] and c.outside == 0
    assert c.summary() == ("34 of 34 numbers within tolerance; verdicts changed: 1 of 2 "
                           "(inconclusive -> holds: 1); rows in one run only: 0")
    assert cli(["compare", str(a), str(b), "--strict", "--summary-only"]) == 1
    assert capsys.readouterr().out.count("\n") == 1
    moved = edited(edited(edited(CLAIMS, 1, "measured", 30.0), 1, "ci_low", 28.0), 1, "ci_high", 32.0)
    c = compare_runs(a, write_run(tmp_path / "c", claims=moved))
    assert c.outside == 1 and "claims.csv [study=ilyas, claim=D_NR gives near-zero robustness]: measured" in c.lines[0]


def test_not_a_run_is_a_one_line_error(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    assert cli(["compare", str(a), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty") in err and "claims.csv" in err and "not a finished run" in err
    (a / "tables" / "training.csv").write_bytes(b"\x00\xff\xfe")
    with pytest.raises(cmp_mod.AdvFeaturesError, match="training.csv"):
        compare_runs(a, a)


def test_dispatcher_runs_as_a_module(tmp_path):
    a = write_run(tmp_path / "a")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "advfeatures", "compare", str(a), str(a), "--strict"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert "34 of 34 numbers within tolerance" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "advfeatures", "nosuch"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown command 'nosuch'" in bad.stderr and "compare" in bad.stderr


def test_reference_keeps_the_small_text_outputs_and_replaces_the_old_one(tmp_path):
    run = write_run(tmp_path / "results")
    (run / "tables" / "training.md").write_text("| method |\n")
    (run / "model.pt").write_bytes(b"weights")  # never copied
    (run / "figures").mkdir()
    (run / "figures" / "x.png").write_bytes(b"png")
    dest = tmp_path / "reference" / "default"
    dest.mkdir(parents=True)
    (dest / "stale.csv").write_text("old")
    assert cli(["reference", str(run), str(dest)]) == 0
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["README.md", "claims.csv", "tables/ib_sweep.csv", "tables/ilyas_datasets.csv",
                   "tables/kim_table3.csv", "tables/training.csv", "tables/training.md"]
    assert "2 claims: 0 holds, 1 fails, 1 inconclusive, 0 not testable" in (dest / "README.md").read_text()
    assert cli(["reference", str(run), str(dest), "--commit", "abc1234"]) == 0
    assert "- commit: abc1234\n" in (dest / "README.md").read_text()
    assert compare_runs(dest, run).clean
    assert sorted(p.name for p in dest.parent.iterdir()) == ["default"]  # no temporary folders left
    assert cli(["reference", str(tmp_path / "nothing"), str(dest)]) == 2
    assert (dest / "claims.csv").exists()  # a failed call leaves the old reference


@pytest.mark.slow
def test_every_table_of_a_real_run_has_unique_row_keys(tiny_run):
    """On the tiny run's real tables (conftest.tiny_run, shared with the workflow tests): every
    row has its own key (no ``(occurrence 2)``: a table that gains rows its key cannot tell apart needs a
    TABLE_KEYS entry), and a run compared with itself is clean."""
    from conftest import RUN

    results = tiny_run.wd / RUN
    tables = sorted((results / "tables").glob("*.csv"))
    assert len(tables) >= 8
    for f in tables:
        df = pd.read_csv(f)
        rows = cmp_mod.keyed_rows(df, table_keys(f.stem, df))
        assert len(rows) == len(df) and not [k for k in rows if "(occurrence " in k], (f.name, list(rows)[:5])
    c = compare_runs(results, results)
    assert c.clean and c.numbers > 500 and c.claims > 10, c.summary()


def test_a_table_without_replicate_column_is_replicate_zero():
    """A replicate's own table (or a run from before replicates) against a run's table with one
    replicate: the same rows, nothing in one run only."""
    from advfeatures.compare import Comparison, compare_table, one_replicate

    plain = pd.DataFrame({"model": ["a", "b"], "attack": ["pgd", "pgd"], "accuracy": [10.0, 20.0]})
    run = plain.assign(replicate=0)[["replicate", "model", "attack", "accuracy"]]
    cmp = Comparison(Path("A"), Path("B"))
    compare_table(cmp, "kim_table3", *one_replicate(plain, run))
    assert cmp.one_run_only == 0 and cmp.numbers == 2 and cmp.within == 2
    three = pd.concat([run, run.assign(replicate=1)], ignore_index=True)
    cmp = Comparison(Path("A"), Path("B"))
    compare_table(cmp, "kim_table3", *one_replicate(plain, three))
    assert cmp.one_run_only == 2  # replicate 1's rows: in one run only
