"""Incremental reruns of the whole workflow, driven through the snakemake CLI.

A copy of the repository (so edits never touch the real tree) runs the whole tiny DAG once
(``tiny_run`` in conftest.py: every stage, tests/tiny.yaml); every other check is a dry run
against that state:

- an up-to-date workflow runs zero jobs; touching files without changing them reruns nothing;
- editing a library module reruns exactly the jobs that import it and their descendants,
  nothing upstream or beside them (table ``EDITS``);
- changing a config value reruns exactly the jobs whose ``params`` slice holds it and their
  descendants (table ``CONFIG_CHANGES``).

The expected job set of a case is derived, not typed: the hand-written ``rules`` (which rules a
module feeds, which jobs a config key reaches) select the seed jobs in the DAG of the detailed
summary, and every output downstream of a seed (through the recorded input files) must rerun,
every other output must not.  ``never`` names rules that must stay untouched, for the reader
and as a second, independent assertion.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

import pytest
import yaml
from conftest import REP0, RUN, TINY_DATA, Snake, edited, job_stats

pytestmark = pytest.mark.slow

DATASET, ARCH = "mnist5k", "lenet5"
METHODS = ("standard", "pgd_linf")  # the methods tests/tiny.yaml trains


def run_path(method):
    return f"{REP0}/{DATASET}/{ARCH}/{method}"


#: what the tiny run builds: the whole DAG (rule all gathers every stage's TARGETS)
TARGETS = ["all"]

#: rules that are neither a compute stage nor upstream of one (for `never` sets)
COMPUTE = {"prepare_data", "train", "synthesize", "attack", "attack_sweep", "distill", "estimate_mi"}


@dataclass
class Case:
    id: str
    edit: str | dict  # a file of the repository (appended to) or a config overlay
    rules: set[str]  # rules whose jobs must rerun; their descendants must too, nothing else
    only: dict[str, str] = field(default_factory=dict)  # rule -> regex: only these of its jobs' outputs
    never: set[str] = field(default_factory=set)  # rules that must not rerun (said explicitly)
    extra: list[str] = field(default_factory=list)  # targets beyond TARGETS for this case


#: rules whose jobs import advfeatures.reporting (its __init__: write_table, Claim, figures); the
#: compute stages (train_synthetic, ilyas_eval_reference, transfer_target included) never do (issue 11)
REPORTING = {
    "ilyas_report", "ilyas_transfer", "attack_tables",
    "bottleneck_tables", "bottleneck_tsne", "report_mi", "training_table", "gather_claims", "summary",
}
ATTACKS = {"attack", "attack_sweep"}  # every attack job imports the whole advfeatures.attacks
NRF_JOBS = {"attack": r"/attacks/nrf[a-z_]*\.h5$"}  # attacks.suite entries of type nrf (tiny.yaml)


#: which rules each file feeds (hand-written from the imports of workflow_scripts/*.py and the stages)
EDITS = [
    # foundation modules: everything downstream of the jobs that import them
    Case("training-module", "advfeatures/training.py",
         {"train", "synthesize", "train_synthetic", "ilyas_eval_reference", "transfer_target"},
         never={"prepare_data"}),
    Case("checkpoint-module", "advfeatures/models/checkpoint.py", {"train"}, never={"prepare_data"}),
    Case("pgd-module", "advfeatures/attacks/pgd.py", {"train"}, never={"prepare_data"}),
    Case("lenet-module", "advfeatures/models/lenet.py", {"train"}, never={"prepare_data"}),
    Case("data-module", "advfeatures/data.py", {"prepare_data"}),
    Case("utils-module", "advfeatures/utils.py", {"prepare_data", "run_config"}),
    Case("h5io-module", "advfeatures/h5io.py", {"prepare_data"}),
    # one stage's module: that stage and what reads its files, no sibling stage
    Case("synthesis-module", "advfeatures/synthesis.py",
         {"synthesize", "train_synthetic", "ilyas_eval_reference", "transfer_target"},
         never={"train", "attack", "distill", "estimate_mi", "mi_distortions"}),
    Case("bottleneck-module", "advfeatures/bottleneck.py", {"distill", "attack"}, only=NRF_JOBS,
         never={"train", "synthesize", "attack_sweep", "estimate_mi"}),
    Case("cw-module", "advfeatures/attacks/cw.py", ATTACKS,
         never={"train", "synthesize", "train_synthetic", "estimate_mi", "mi_distortions"}),
    Case("nrf-module", "advfeatures/attacks/nrf.py", ATTACKS,
         never={"train", "synthesize", "train_synthetic", "estimate_mi", "mi_distortions"}),
    Case("suite-module", "advfeatures/attacks/suite.py", ATTACKS,
         never={"train", "synthesize", "estimate_mi"}),
    Case("mi-module", "advfeatures/mutual_info.py", {"estimate_mi", "mi_distortions", "merge_mi"},
         never={"train", "synthesize", "attack", "distill"}),
    Case("distortions-module", "advfeatures/distortions.py", {"mi_distortions"},
         never={"train", "estimate_mi"}),
    Case("reporting-core", "advfeatures/reporting/__init__.py", REPORTING,
         never=COMPUTE | {"train_synthetic", "ilyas_eval_reference", "transfer_target"}),
    Case("reporting-ilyas", "advfeatures/reporting/ilyas.py", {"ilyas_report", "ilyas_transfer"},
         never=COMPUTE | {"train_synthetic", "transfer_target", "training_table", "attack_tables"}),
    Case("reporting-bottleneck", "advfeatures/reporting/bottleneck.py",
         {"bottleneck_tables", "bottleneck_tsne"}, never=COMPUTE | {"training_table", "attack_tables"}),
    Case("reporting-attacks", "advfeatures/reporting/attacks.py", {"attack_tables"},
         never=COMPUTE | {"training_table", "bottleneck_tables"}),
    Case("reporting-mi", "advfeatures/reporting/mutual_info.py", {"report_mi"},
         never=COMPUTE | {"merge_mi", "training_table"}),
    Case("stats-module", "advfeatures/stats.py",
         {"estimate_mi", "mi_distortions", "merge_mi", "ilyas_report", "ilyas_transfer", "attack_tables",
          "bottleneck_tables", "bottleneck_tsne", "report_mi"}, never={"train", "attack", "distill", "synthesize"}),
    Case("reporting-verdicts", "advfeatures/reporting/verdicts.py",
         {"ilyas_report", "ilyas_transfer", "attack_tables", "bottleneck_tables", "bottleneck_tsne", "report_mi"},
         never=COMPUTE | {"training_table", "merge_mi"}),
    Case("reporting-summary", "advfeatures/reporting/summary.py", {"training_table", "summary"},
         never=COMPUTE | {"attack_tables", "report_mi", "bottleneck_tables"}),
    # scripts (inputs of their rules, checksummed)
    Case("train-script", "workflow_scripts/train.py", {"train"}, never={"prepare_data"}),
    Case("attack-script", "workflow_scripts/attack.py", {"attack"}, never={"train", "attack_sweep"}),
    Case("distill-script", "workflow_scripts/distill.py", {"distill"}, never={"attack"}),
    Case("stage-job", "advfeatures/stages/job.py", {"prepare_data", "run_config"}),
    Case("attack-stage", "advfeatures/stages/attack.py", ATTACKS, never={"train", "synthesize", "estimate_mi"}),
    # the checkpoint converter feeds only convert_pretrained: the tiny run trains every model
    Case("pretrained-module", "advfeatures/models/pretrained.py", set(), never={"train", "attack", "distill"}),
    Case("convert-script", "workflow_scripts/convert_pretrained.py", set(), never={"train"}),
    Case("convert-stage", "advfeatures/stages/convert_pretrained.py", set(), never={"train"}),
    # not provenance: nothing reruns
    Case("readme", "README.md", set()),
    Case("design-doc", "docs/notes.md", set()),
    Case("config-comment", "config.yaml", set()),
    Case("rules-comment", "rules/attacks.smk", set()),
    Case("report-caption", "report/kim_table3.rst", set()),
]

CONFIG_CHANGES = [
    Case("epochs", {"training": {"common": {"epochs": 3}}}, {"train"}, never={"prepare_data"}),
    Case("one-method-lr", {"training": {"methods": {"pgd_linf": {"lr": 0.02}}}}, {"train"},
         only={"train": "/pgd_linf/"}, never={"prepare_data"}),
    Case("train-attack-eps", {"training": {"common": {"attack": {"eps": 0.2}}}}, {"train"}),
    Case("subset", {"dataset": {"subset_train": 300}}, {"prepare_data"}),
    Case("seed", {"seed": 1}, {"prepare_data"}),
    # one attack's parameter: that attack (its suite jobs, its sweep), what reads its files
    Case("fgsm-eps", {"attacks": {"suite": {"fgsm": {"eps": 0.1}}}}, {"attack"},
         only={"attack": r"/attacks/fgsm\.h5$"},
         never={"prepare_data", "train", "synthesize", "attack_sweep", "estimate_mi", "bottleneck_tsne"}),
    Case("pgd-steps", {"attacks": {"suite": {"pgd": {"steps": 5}}}}, ATTACKS,
         only={"attack": r"/attacks/pgd\.h5$", "attack_sweep": r"/sweep_pgd\.csv$"},
         never={"train", "synthesize", "estimate_mi"}),
    Case("cw-steps", {"attacks": {"suite": {"cw": {"steps": 5}}}}, {"attack"},
         only={"attack": r"/attacks/cw\.h5$"}, never={"train", "attack_sweep", "bottleneck_tsne"}),
    Case("nrf-masks", {"attacks": {"nrf": {"iterations": 5}}}, {"attack"}, only=NRF_JOBS,
         never={"train", "attack_sweep", "distill"}),
    # estimator settings: the MI stage only
    Case("mi-kde", {"mutual_info": {"kde": {"noise_var": 0.2}}}, {"estimate_mi", "mi_distortions"},
         never={"train", "attack", "distill", "synthesize"}),
    Case("mi-distortion-levels", {"mutual_info": {"distortions": {"shuffle": [0, 4]}}}, {"mi_distortions"},
         never={"train", "estimate_mi"}),
    Case("ib-iterations", {"bottleneck": {"iterations": 10}}, {"distill"}, never={"train", "attack"}),
    Case("tsne", {"bottleneck": {"tsne": {"perplexity": 4}}}, {"bottleneck_tsne"},
         never={"distill", "bottleneck_tables"}),
    Case("synthesis-targeted", {"synthesis": {"targeted": {"steps": 2}}}, {"synthesize"},
         only={"synthesize": r"/(d_rand|d_det)\.h5$"}, never={"train", "attack", "ilyas_eval_reference"}),
    Case("synthesis-eval", {"synthesis": {"eval": {"subset": 40}}},
         {"train_synthetic", "ilyas_eval_reference", "transfer_target"},
         never={"train", "synthesize"}),
    # verdict settings: the claim-writing report jobs only; bootstrap: the per-epoch MI jobs
    Case("claims-alpha", {"report": {"claims": {"alpha": 0.01}}},
         {"ilyas_report", "ilyas_transfer", "attack_tables", "bottleneck_tables", "report_mi",
          "combine_table", "combine_claims"},  # alpha: the level of the intervals over the replicates
         never=COMPUTE | {"training_table", "bottleneck_tsne", "merge_mi"}),
    Case("mi-bootstrap", {"mutual_info": {"bootstrap": 10}}, {"estimate_mi"},
         never={"train", "attack", "distill", "mi_distortions"}),
    # scheduling only: threads and cluster resources are not provenance
    Case("threads", {"threads": 2}, set()),
    Case("cluster-resources", {"resources": {"train": {"mem_mb": 2000, "runtime": 30}}}, set()),
]


@pytest.fixture(scope="module")
def snake(tiny_run) -> Snake:
    """The whole tiny DAG, run once per session (conftest.tiny_run) from the repository copy."""
    return tiny_run


def plan(snake: Snake, *targets, configs=()) -> dict[str, str]:
    """{output file: rule} of the jobs a plain run would execute."""
    return {
        f: rule
        for f, (rule, p) in snake.summary(*TARGETS, *targets, configs=configs).items()
        if p != "no update"
    }


def test_tiny_run_built_every_stage(snake):
    """One output of each stage exists and is not empty (the matrix below needs them all)."""
    wd = snake.wd
    files = [
        f"{run_path('pgd_linf')}/attacks/nrf.h5", f"{run_path('standard')}/attacks/sweep_pgd.csv",
        f"{run_path('standard')}/bottleneck/cw_beta0.3.h5", f"{run_path('pgd_linf')}/mutual_info/epoch_2.csv",
        f"{REP0}/{DATASET}/{ARCH}/synthetic/d_r.h5", f"{REP0}/{DATASET}/{ARCH}/synthetic/d_rand/lenet5_w2/eval.csv",
        f"{REP0}/{DATASET}/{ARCH}/transfer/lenet5_w2/transfer.csv",
        f"{RUN}/tables/kim_table3.md", f"{RUN}/tables/kim_table1.md", f"{RUN}/tables/ilyas_datasets.md",
        f"{RUN}/tables/mutual_info_final.md", f"{RUN}/claims.csv", f"{RUN}/summary.md", f"{RUN}/config.yaml",
        f"{REP0}/claims.csv", f"{REP0}/tables/kim_table3.md",
    ]
    assert [f for f in files if not (wd / f).is_file() or (wd / f).stat().st_size == 0] == []
    claims = (wd / RUN / "claims.csv").read_text()
    for study in ("ilyas", "bottleneck", "attacks", "mutual_info"):
        assert (wd / RUN / "claims" / f"{study}.csv").stat().st_size > 0
    assert len(claims.splitlines()) > 4


def test_tiny_run_tests_share_one_xdist_group(request, snake):
    """conftest puts every test that uses tiny_run in one xdist group; under ``--dist loadgroup``
    (make test) xdist has read the mark, so the tiny DAG runs on one worker only."""
    assert request.node.get_closest_marker("xdist_group").args == ("tiny_run",)
    if getattr(request.config.option, "dist", "no") == "loadgroup":
        assert request.node.nodeid.endswith("@tiny_run"), request.node.nodeid


def test_tiny_run_records_the_degenerate_flag(snake):
    """The claims' model precondition reads model.pt's meta["degenerate"] (training.health
    .allow_degenerate, set in tests/tiny.yaml), recorded by the attack and Ilyas evaluation jobs."""
    import pandas as pd

    from advfeatures import h5io
    from advfeatures.models.checkpoint import load_checkpoint

    def flag(model):
        return bool(load_checkpoint(model)["meta"].get("degenerate", False))

    _, attrs = h5io.read_h5(snake.wd / run_path("pgd_linf") / "attacks" / "nrf.h5", [], kind="attack")
    assert "degenerate" in attrs
    assert bool(attrs["degenerate"]) == flag(snake.wd / run_path("pgd_linf") / "model.pt")
    syn = snake.wd / f"{REP0}/{DATASET}/{ARCH}/synthetic/d_rand/lenet5_w2"
    ev = pd.read_csv(syn / "eval.csv")
    assert list(ev["degenerate"]) == [flag(syn / "model.pt")]


def test_tiny_run_made_everything(snake):
    for m in METHODS:
        for f in ("model.pt", "metrics.csv", "checkpoints/epoch_1.pt", "checkpoints/epoch_2.pt"):
            assert (snake.wd / run_path(m) / f).stat().st_size > 0
    assert (snake.wd / TINY_DATA).exists()
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
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rule train" in out and "workflow_scripts/train.py" in out, out[-2000:]


@dataclass(frozen=True)
class Output:
    """One row of ``--detailed-summary``: an output file of the DAG."""

    rule: str
    inputs: frozenset[str]
    pending: bool  # a plain run would (re)make it


def file_dag(snake: Snake, *targets, configs=()) -> dict[str, Output]:
    """{output file: Output} of every job the targets need, with the inputs Snakemake recorded."""
    proc = snake.run("--detailed-summary", *targets, configs=configs)
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert rows and rows[0][0] == "output_file", proc.stdout[-2000:]
    head = rows[0]
    i_rule, i_in, i_plan = head.index("rule"), head.index("input-file(s)"), head.index("plan")
    # the inputs of an existing output are those recorded when it was made: after a change of the
    # dataset settings its data file has another key than the new one, so the data file is one
    # node whatever its key
    same_data = lambda f: re.sub(r"^data/(.+)_[0-9a-f]{8}\.h5$", r"data/\1.h5", f)  # noqa: E731
    return {
        same_data(r[0]): Output(r[i_rule], frozenset(same_data(f) for f in r[i_in].split(",") if f and f != "-"),
                                r[i_plan] != "no update")
        for r in rows[1:]
    }


def downstream(dag: dict[str, Output], files: set[str]) -> set[str]:
    """``files`` and every output that reads one of them, directly or through other outputs."""
    out = set(files)
    while new := {f for f, o in dag.items() if f not in out and o.inputs & out}:
        out |= new
    return out


def upstream(dag: dict[str, Output], files: set[str]) -> set[str]:
    """Outputs that ``files`` are made from, directly or through other outputs."""
    out: set[str] = set()
    frontier = set(files)
    while frontier:
        frontier = {i for f in frontier for i in dag[f].inputs if i in dag} - out
        out |= frontier
    return out


def check_plan(snake: Snake, case: Case, configs=()):
    dag = file_dag(snake, *TARGETS, *case.extra, configs=configs)
    pending = {f for f, o in dag.items() if o.pending}
    rules_of = lambda files: {dag[f].rule for f in files}  # noqa: E731
    missing = case.rules - rules_of(dag)
    assert not missing, f"{case.id}: the table names rules {sorted(missing)} that are not in the DAG"
    seeds = {
        f for f, o in dag.items()
        if o.rule in case.rules and (o.rule not in case.only or re.search(case.only[o.rule], f))
    }
    for rule, pattern in case.only.items():  # a filter that selects nothing is a typo
        assert any(re.search(pattern, f) for f in seeds if dag[f].rule == rule), f"{case.id}: {rule} {pattern}"
    want = downstream(dag, seeds)
    reran = sorted(rules_of(pending))
    # the explicit promises first: the named rules and everything upstream stay untouched
    assert not rules_of(pending) & case.never, f"{case.id}: reruns {sorted(rules_of(pending) & case.never)}"
    assert not pending & (upstream(dag, seeds) - want), f"{case.id}: reruns upstream {sorted(pending - want)}"
    # rule level: only descendants of the named rules in the rule graph (all of them, unfiltered)
    below = snake.rule_descendants(case.rules, *TARGETS) - {"all"} if case.rules else set()
    assert rules_of(pending) <= below, f"{case.id}: reruns {reran}, rule graph allows {sorted(below)}"
    if not case.only:
        assert rules_of(pending) == below, f"{case.id}: reruns {reran}, expected {sorted(below)}"
    # job level: exactly the seeds and their descendants
    assert pending == want, (
        f"{case.id}: unexpected {sorted(pending - want)[:10]}; not rerun {sorted(want - pending)[:10]}"
    )


@pytest.mark.parametrize("case", EDITS, ids=lambda c: c.id)
def test_editing_a_file_reruns_exactly_its_jobs(snake, case):
    with edited(snake.repo / case.edit):
        check_plan(snake, case)


def test_restoring_an_edited_file_restores_the_up_to_date_state(snake):
    """Checksums, not history: once an edited module is back to its old bytes nothing reruns
    (checked once here rather than after every case of the matrix above, a Snakemake call each)."""
    with edited(snake.repo / "advfeatures" / "training.py"):
        assert plan(snake)
    assert plan(snake) == {}


@pytest.mark.parametrize("case", CONFIG_CHANGES, ids=lambda c: c.id)
def test_changing_config_reruns_exactly_its_jobs(snake, tmp_path, case):
    overlay = tmp_path / "change.yaml"
    overlay.write_text(yaml.safe_dump(case.edit))
    # results/<run>/config.yaml records every key of the resolved config: run_config reruns on
    # any change (a cheap local job that nothing reads), scheduling keys included
    case = dataclasses.replace(case, rules=case.rules | {"run_config"})
    check_plan(snake, case, configs=[overlay])


def test_edit_then_run_reruns_only_planned_jobs(snake):
    """A real run after an edit executes what the dry run planned and leaves the rest alone.

    The MI report module: cheap jobs only (report_mi, the replicate's gather_claims, the tables and
    claims over the replicates, claims_figures, summary)."""
    mtimes = {p: p.stat().st_mtime_ns for d in ("data", "results") for p in (snake.wd / d).rglob("*") if p.is_file()}
    with edited(snake.repo / "advfeatures" / "reporting" / "mutual_info.py"):
        planned = plan(snake)
        stats = job_stats(snake.run("-n", *TARGETS).stdout)
        proc = snake.run("--cores", "2", *TARGETS)
    reruns = {"report_mi", "gather_claims", "combine_table", "combine_claims", "gather_run_claims",
              "claims_figures", "summary"}
    assert set(planned.values()) == reruns
    # two MI tables over the replicates, one stage's claims
    assert job_stats(proc.stdout + proc.stderr) == stats == dict.fromkeys([*reruns, "all"], 1) | {"combine_table": 2}
    changed = {str(p.relative_to(snake.wd)) for p, t in mtimes.items() if p.stat().st_mtime_ns != t}
    made = changed - {f for f in changed if f.startswith((f"{RUN}/logs/", f"{RUN}/benchmarks/"))}
    assert made and made <= set(planned), sorted(made - set(planned))  # nothing else rewritten
    assert plan(snake) == {}


def test_profile_default_is_picked_up(snake):
    """profiles/default (the workflow profile) raises the checksum limit and drops the `code`
    rerun trigger: see its comments."""
    prof = snake.repo / "profiles" / "default" / "config.yaml"
    assert prof.exists(), "profiles/default/config.yaml is part of the checkout"
    proc = snake.run("-n", *TARGETS)
    out = proc.stdout + proc.stderr
    assert "profiles/default" in out
    prof_cfg = yaml.safe_load(prof.read_text())
    assert int(prof_cfg["max-checksum-file-size"]) >= 10**8
    # scripts are inputs (checksummed); `code` would rerun on a touched script's mtime
    assert set(prof_cfg["rerun-triggers"]) == {"mtime", "params", "input", "software-env"}
