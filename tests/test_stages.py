"""Stages run without Snakemake: the job record the workflow writes beside a log, and the
command line that reruns it (advfeatures.stages.job)."""

from __future__ import annotations

import pandas as pd
import pytest

from advfeatures.reporting import Claim, write_claims
from advfeatures.stages import report
from advfeatures.stages.job import Files, Job, main, record_path, run


def claims(path, study, measured):
    write_claims([Claim(study, "c", measured, ">", 0.0, "")], path)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Jobs write only inside the working directory (stages.job.check_paths): work in tmp_path."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def claim_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    claims(a, "one", 1.0)
    claims(b, "two", -1.0)
    return [str(a), str(b)]


def test_files_are_positional_and_named():
    f = Files(["x.h5", "y.h5", "z.h5"], {"model": "x.h5", "many": ["y.h5", "z.h5"]})
    assert f[0] == "x.h5" and f.model == "x.h5" and f.many == ["y.h5", "z.h5"]
    with pytest.raises(AttributeError, match="job has no file named 'missing'"):
        _ = f.missing


def test_record_then_rerun_by_hand_gives_the_same_file(tmp_path, claim_files):
    out, log = tmp_path / "claims.csv", tmp_path / "logs" / "gather_claims.log"
    log.parent.mkdir()
    job = Job("gather_claims", input=Files(claim_files, {"claims": claim_files}), output=Files([str(out)]),
              params={}, log=str(log))
    run(report.STAGES["gather_claims"], job)
    rec = record_path(job)
    assert rec.exists() and "gather_claims" in rec.read_text()
    again = tmp_path / "again.csv"
    main(report.STAGES, ["--job", str(rec), "--output", f"0={again}", "--log", "-"])
    assert again.read_bytes() == out.read_bytes()
    assert list(pd.read_csv(out)["study"]) == ["one", "two"]


def test_explicit_flags_build_the_job(tmp_path, claim_files):
    out = tmp_path / "claims.csv"
    main(report.STAGES, ["--input", f"claims={claim_files[0]}", "--input", f"claims={claim_files[1]}",
                         "--output", f"0={out}", "--log", "-"])
    assert len(pd.read_csv(out)) == 2


def test_a_science_error_is_one_line(tmp_path, capsys):
    bad = tmp_path / "missing.h5"
    from advfeatures.stages import data as data_stage

    job = Job("prepare_data", output=Files([str(tmp_path / "d.h5")]),
              params={"dataset": {"name": "imagefolder", "root": str(bad), "seed": 0}})
    with pytest.raises(SystemExit):
        run(data_stage.STAGES["prepare_data"], job)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("advfeatures error: ")


def test_unknown_file_to_replace_is_an_error(tmp_path, claim_files):
    job = Job("gather_claims", input=Files(claim_files, {"claims": claim_files}),
              output=Files([str(tmp_path / "o.csv")]), log=str(tmp_path / "g.log"))
    run(report.STAGES["gather_claims"], job)
    with pytest.raises(SystemExit, match="no single file 'nope'"):
        main(report.STAGES, ["--job", str(record_path(job)), "--output", "nope=x.csv"])
