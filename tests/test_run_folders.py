"""One folder per run: run names, prepared data keyed by its settings, presets never sharing a path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TINY

from advfeatures.config import layers_for, resolve, run_name
from advfeatures.paths import RunPaths, data_key
from advfeatures.plan import Plan

PRESETS = sorted((ROOT / "presets").glob("*.yaml"))


def name_of(*files, cli=None) -> str:
    layers = layers_for(files, cli, default_run=ROOT / "config.yaml")
    return resolve(layers).config.get("run") or run_name(layers)


def test_run_names_come_from_the_config_files():
    assert name_of() == "default"
    assert name_of(ROOT / "presets" / "cifar10-cpu.yaml") == "cifar10-cpu"
    assert name_of(TINY) == "tiny"  # tests/tiny.yaml states its run


def test_overlays_join_and_command_line_values_hash(tmp_path):
    extra = tmp_path / "fast.yaml"
    extra.write_text("training: {common: {eval_subset: 100}}\n")
    assert name_of(extra) == "default+fast"
    a, b = name_of(cli={"seed": 1}), name_of(cli={"seed": 2})
    assert re.fullmatch(r"default-[0-9a-f]{8}", a) and a != b and a == name_of(cli={"seed": 1})
    assert name_of(cli={"run": "mine", "seed": 1}) == "mine"  # stated: kept as it is
    assert name_of(cli={"replicates": 3}) == "default"  # more replicates of the same run, same folder


def test_every_preset_has_its_own_run_folder():
    roots = {name_of(p): p.name for p in PRESETS}
    assert len(roots) == len(PRESETS) and "default" not in roots, roots


def test_a_bad_run_name_is_refused_with_its_key():
    from advfeatures.config import ConfigError

    with pytest.raises(ConfigError, match=r"key run"):
        resolve(layers_for([], {"run": "../elsewhere"}, default_run=ROOT / "config.yaml"))


def test_data_key_follows_the_dataset_settings_only():
    p = Plan(resolve(layers_for([], None, default_run=ROOT / "config.yaml")).config).dataset_params()
    assert data_key(p) == data_key(dict(p)) and re.fullmatch(r"[0-9a-f]{8}", data_key(p))
    assert data_key(p | {"download": not p["download"]}) == data_key(p)  # not a setting of the data
    assert data_key(p | {"subset_train": 100}) != data_key(p)
    assert data_key(p | {"seed": 1}) != data_key(p)


def test_runs_share_data_but_no_result_path():
    a, b = RunPaths("default", "k1"), RunPaths("cifar10-cpu", "k1")
    assert a.data_h5("x") == b.data_h5("x")
    for helper in ("model_pt", "attack_h5", "synthetic_h5", "mi_csv"):
        assert getattr(a, helper)() != getattr(b, helper)()
    assert a.run_table("t") != b.run_table("t") and a.run_claims_csv() != b.run_claims_csv()
    assert a.resume_dir("standard", rep=0) != b.resume_dir("standard", rep=0)
    assert a.model_pt(rep=0) != a.model_pt(rep=1)


def test_replicate_seeds():
    plan = Plan(resolve(layers_for([], {"seed": 5, "replicates": 3}, default_run=ROOT / "config.yaml")).config)
    assert plan.replicates == ["0", "1", "2"]
    assert [plan.replicate_seed(r) for r in plan.replicates] == [5, 6, 7]
    assert plan.dataset_params()["seed"] == 5  # the data's subsets: one for every replicate


def _outputs(*configs, cli=()) -> set[str]:
    """Every output file a dry run of the whole DAG plans (snakemake --summary, nothing built)."""
    args = [sys.executable, "-m", "snakemake", "--summary", "--cores", "1", "--directory", str(ROOT)]
    args += [*(["--configfile", *map(str, configs)] if configs else []), *(["--config", *cli] if cli else [])]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return {line.split("\t")[0] for line in out.splitlines()[1:] if line.strip()}


@pytest.mark.slow
def test_default_run_and_a_preset_plan_disjoint_outputs():
    default = _outputs()
    preset = _outputs(ROOT / "presets" / "cifar10-cpu.yaml")
    assert default and preset and not (default & preset), sorted(default & preset)[:5]
    assert all(f.startswith(("results/default/", "data/")) for f in default)
    assert all(f.startswith(("results/cifar10-cpu/", "data/")) for f in preset)


@pytest.mark.slow
def test_replicates_are_independent_jobs_of_one_run():
    two = _outputs(TINY, cli=["replicates=2"])
    models = {f for f in two if f.endswith("/model.pt") and "/synthetic/" not in f and "/transfer/" not in f}
    assert {re.search(r"/rep(\d+)/", f)[1] for f in models} == {"0", "1"}
    assert "results/tiny/tables/kim_table3.csv" in two and "results/tiny/rep1/tables/kim_table3.csv" in two
    written = yaml.safe_load(Path(ROOT / "config.yaml").read_text())
    assert "replicates" not in written or written["replicates"] == 1  # the default run stays one replicate
