"""Incremental reruns of the whole workflow, driven through the snakemake CLI.

A copy of the repository (so edits never touch the real tree) runs the tiny DAG once in a
temporary working directory; every other check is a dry run against that state:

- an up-to-date workflow runs zero jobs; touching files without changing them reruns nothing;
- editing a library module reruns exactly the rules that import it (``lib(...)`` inputs) and
  their descendants, nothing upstream or beside them (table ``EDITS``);
- changing a config value reruns exactly the jobs whose ``params`` slice holds it
  (table ``CONFIG_CHANGES``).

Stages add their rows to the tables and their tiny targets to ``TARGETS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
import yaml
from conftest import Snake, job_stats

pytestmark = pytest.mark.slow

DATASET, ARCH = "mnist5k", "lenet5"
METHODS = ("standard", "pgd_linf")  # the methods tests/tiny.yaml trains


def run_path(method):
    return f"results/{DATASET}/{ARCH}/{method}"


#: what the tiny run builds (stages append their tiny outputs here)
TARGETS = [f"{run_path(m)}/metrics.csv" for m in METHODS]


@dataclass
class Case:
    id: str
    edit: str | dict  # a file of the repository (appended to) or a config overlay
    rules: set[str]  # rules whose jobs must rerun; their descendants must too, nothing else
    only: str | None = None  # if set, every rerun output path contains this (one job of many)
    extra: list[str] = field(default_factory=list)  # targets beyond TARGETS for this case


EDITS = [
    Case("training-module", "advfeatures/training.py", {"train"}),
    Case("pgd-module", "advfeatures/attacks/pgd.py", {"train"}),
    Case("lenet-module", "advfeatures/models/lenet.py", {"train"}),
    Case("data-module", "advfeatures/data.py", {"prepare_data", "train"}),
    Case("utils-module", "advfeatures/utils.py", {"prepare_data", "train"}),
    Case("train-script", "workflow_scripts/train.py", {"train"}),
    Case("common-script", "workflow_scripts/_common.py", {"prepare_data", "train"}),
    Case("other-script", "workflow_scripts/attack.py", set()),
    Case("readme", "README.md", set()),
    Case("design-doc", "docs/notes.md", set()),
]

CONFIG_CHANGES = [
    Case("epochs", {"training": {"common": {"epochs": 3}}}, {"train"}),
    Case("one-method-lr", {"training": {"methods": {"pgd_linf": {"lr": 0.02}}}}, {"train"}, only="/pgd_linf/"),
    Case("train-attack-eps", {"training": {"common": {"attack": {"eps": 0.2}}}}, {"train"}),
    Case("subset", {"dataset": {"subset_train": 300}}, {"prepare_data", "train"}),
    Case("seed", {"seed": 1}, {"prepare_data", "train"}),
    # scheduling only: threads and cluster resources are not provenance
    Case("threads", {"threads": 2}, set()),
    Case("cluster-resources", {"resources": {"train": {"mem_mb": 2000, "runtime": 30}}}, set()),
]


@pytest.fixture(scope="module")
def snake(repo_copy, tmp_path_factory) -> Snake:
    """The tiny DAG, run once in a fresh working directory from the repository copy."""
    s = Snake(repo_copy, tmp_path_factory.mktemp("wf_wd"))
    s.run("--cores", "2", *TARGETS)
    return s


def plan(snake: Snake, *targets, configs=()) -> dict[str, str]:
    """{output file: rule} of the jobs a plain run would execute."""
    return {
        f: rule
        for f, (rule, p) in snake.summary(*TARGETS, *targets, configs=configs).items()
        if p != "no update"
    }


def test_tiny_run_made_everything(snake):
    for m in METHODS:
        for f in ("model.pt", "metrics.csv", "checkpoints/epoch_1.pt", "checkpoints/epoch_2.pt"):
            assert (snake.wd / run_path(m) / f).stat().st_size > 0
    assert (snake.wd / "data" / f"{DATASET}.h5").exists()
    rows = (snake.wd / run_path("standard") / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs


def test_up_to_date_runs_zero_jobs(snake):
    assert snake.pending_rules(*TARGETS) == set()
    assert plan(snake) == {}


def test_touch_without_change_reruns_nothing(snake):
    """mtime alone does not rerun: Snakemake compares checksums of inputs it recorded
    (files up to max-checksum-file-size, raised in profiles/default)."""
    touched = [p for d in ("data", "results") for p in (snake.wd / d).rglob("*") if p.is_file()]
    touched += list((snake.repo / "advfeatures").rglob("*.py"))
    touched += [snake.repo / f for f in ("config.yaml", "Snakefile", "tests/tiny.yaml")]
    assert len(touched) > 10
    for p in touched:
        os.utime(p)
    assert plan(snake) == {}
    assert snake.pending_rules(*TARGETS) == set()


def test_touching_scripts_reruns_nothing(snake):
    """A touched but unchanged workflow script reruns nothing.

    Snakemake 9 compares a rule's ``script:`` by mtime only (the ``code`` rerun trigger), so
    profiles/default drops that trigger and every rule lists its script as an input
    (script_input() in rules/common.smk): the input checksum decides. Editing a script does
    rerun its jobs (EDITS: train-script, common-script; test_edit_then_run_reruns_only_planned_jobs).
    """
    scripts = sorted((snake.repo / "workflow_scripts").glob("*.py"))
    stats = {p: p.stat() for p in scripts}
    try:
        for p in scripts:
            os.utime(p)
        assert plan(snake) == {}
        assert snake.pending_rules(*TARGETS) == set()
    finally:
        for p, st in stats.items():
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_rule_without_its_script_as_input_is_rejected(snake, tmp_path):
    """The Snakefile refuses a rule whose script is not among its inputs (else a script edit
    would go unnoticed, the profile having no `code` trigger)."""
    rules = snake.repo / "rules" / "train.smk"
    before, st = rules.read_bytes(), rules.stat()
    line = b'        script=script_input("train"),\n'
    assert line in before
    try:
        rules.write_bytes(before.replace(line, b""))
        proc = snake.run("-n", *TARGETS, check=False)
    finally:
        rules.write_bytes(before)
        os.utime(rules, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert proc.returncode != 0
    assert "rule train" in proc.stderr and "workflow_scripts/train.py" in proc.stderr, proc.stderr[-2000:]


def check_plan(snake: Snake, case: Case, configs=()):
    summary = snake.summary(*TARGETS, *case.extra, configs=configs)
    pending = {f: rule for f, (rule, p) in summary.items() if p != "no update"}
    want = snake.rule_descendants(case.rules, *TARGETS, *case.extra) - {"all"} if case.rules else set()
    assert set(pending.values()) == want, f"{case.id}: reruns {sorted(set(pending.values()))}, expected {sorted(want)}"
    if case.only:
        assert all(case.only in f for f in pending), sorted(pending)
    for f, (rule, _) in summary.items():  # every output of the expected jobs reruns
        if rule in want and (not case.only or case.only in f):
            assert f in pending, f"{case.id}: {f} ({rule}) does not rerun"


@pytest.mark.parametrize("case", EDITS, ids=lambda c: c.id)
def test_editing_a_file_reruns_exactly_its_jobs(snake, case):
    path = snake.repo / case.edit
    existed = path.exists()
    before = path.read_bytes() if existed else None
    stat = path.stat() if existed else None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_bytes((before or b"") + b"\n# edited by tests/test_workflow.py\n")
        check_plan(snake, case)
    finally:
        if existed:
            path.write_bytes(before)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        else:
            path.unlink()
    assert plan(snake) == {}  # restoring the file restores the up-to-date state


@pytest.mark.parametrize("case", CONFIG_CHANGES, ids=lambda c: c.id)
def test_changing_config_reruns_exactly_its_jobs(snake, tmp_path, case):
    overlay = tmp_path / "change.yaml"
    overlay.write_text(yaml.safe_dump(case.edit))
    check_plan(snake, case, configs=[overlay])


def test_edit_then_run_reruns_only_planned_jobs(snake):
    """A real run after an edit executes what the dry run planned and leaves the rest alone."""
    path = snake.repo / "workflow_scripts" / "train.py"
    before, st = path.read_bytes(), path.stat()
    data = snake.wd / "data" / f"{DATASET}.h5"
    data_mtime = data.stat().st_mtime_ns
    try:
        path.write_bytes(before + b"\n# edited by tests/test_workflow.py\n")
        planned = snake.pending_rules(*TARGETS)
        proc = snake.run("--cores", "2", *TARGETS)
    finally:
        path.write_bytes(before)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert planned == {"train"}
    assert job_stats(proc.stdout + proc.stderr) == {"train": len(METHODS)}
    assert data.stat().st_mtime_ns == data_mtime  # upstream untouched
    assert plan(snake) == {}


def test_profile_default_is_picked_up(snake):
    """profiles/default (the workflow profile) raises the checksum limit and drops the `code`
    rerun trigger: see its comments."""
    prof = snake.repo / "profiles" / "default" / "config.yaml"
    if not prof.exists():
        pytest.skip("no workflow profile in this checkout")
    proc = snake.run("-n", *TARGETS)
    out = proc.stdout + proc.stderr
    assert "profiles/default" in out
    prof_cfg = yaml.safe_load(prof.read_text())
    assert int(prof_cfg["max-checksum-file-size"]) >= 10**8
    # scripts are inputs (checksummed); `code` would rerun on a touched script's mtime
    assert set(prof_cfg["rerun-triggers"]) == {"mtime", "params", "input", "software-env"}
