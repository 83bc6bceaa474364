"""Studies run alone (config key studies, targets ilyas / kim / zhang) and advfeatures.plan,
which decides what each job receives."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT, Snake

from advfeatures import config as C
from advfeatures.plan import Plan, beta_tag

TINY = ROOT / "tests" / "tiny.yaml"
STUDY_RULES = {
    "ilyas": {"synthesize", "train_synthetic", "ilyas_eval_reference", "ilyas_report", "transfer_target",
              "ilyas_transfer"},
    "kim": {"attack", "attack_sweep", "attack_tables", "distill", "bottleneck_tables", "bottleneck_tsne"},
    "zhang": {"estimate_mi", "mi_distortions", "merge_mi", "report_mi"},
}


def tiny_plan(**over) -> Plan:
    return Plan(C.resolve(C.layers_for([TINY], over)).config)


# ----------------------------------------------------------------------------- plan (no snakemake)


def test_plan_decides_the_sources_and_slices():
    p = tiny_plan()
    assert [p.synthesis_source(k) for k in ("d_r", "d_nr", "d_rand", "d_det")] == [
        "pgd_linf", "standard", "standard", "standard"]
    assert set(p.synthesis_params("d_r")) == {"batch_size", "inversion", "source_method"}
    assert set(p.synthesis_params("d_det")) == {"batch_size", "targeted", "source_method"}
    t = p.train_params("pgd_linf")
    assert t["method"] == "pgd_linf" and t["epochs"] == 2
    s = p.synthetic_train_params("d_det")
    assert s["method"] == "standard" and s["augmentation"] == "none" and s["epochs"] == 1
    assert p.transfer_archs() == ["lenet5", "lenet5_w2"]
    assert p.synthetic_train_arch("lenet5_w2") == {"arch": "lenet5", "options": {"width": 2}}
    assert p.mi_params()["attack"] == p.config["training"]["common"]["attack"]  # null: the training attack
    assert ("standard", "apgd_ce") not in p.attack_cells() and ("pgd_linf", "apgd_ce") in p.attack_cells()
    assert "nrf" in p.attack_slice("nrf") and "nrf" not in p.attack_slice("pgd")
    assert p.attack_modules("nrf") == ("advfeatures.bottleneck",) and p.attack_modules("pgd") == ()
    assert p.ib_params()["subset"] == p.config["attacks"]["eval_subset"]
    assert [beta_tag(b) for b in (0.3, 1.0, 1e-2)] == ["0.3", "1", "0.01"]


def test_a_study_alone_needs_only_its_sections(tmp_path):
    """A whole run of the Kim et al. study states neither synthesis nor mutual_info."""
    full = C.resolve(C.layers_for([TINY])).config
    kim = {k: v for k, v in full.items() if k not in ("synthesis", "mutual_info")} | {"studies": ["kim"]}
    f = tmp_path / "kim.yaml"
    f.write_text(yaml.safe_dump(kim))
    res = C.resolve(C.layers_for([f]))
    assert "synthesis" not in res.config and "mutual_info" not in res.config
    with pytest.raises(C.ConfigError, match=r"key synthesis: missing; study 'ilyas' needs it"):
        C.resolve(C.layers_for([f], {"studies": ["kim", "ilyas"]}))


def test_studies_are_checked():
    with pytest.raises(C.ConfigError, match="key studies.0"):
        C.resolve(C.layers_for([TINY], {"studies": ["madry"]}))


# ----------------------------------------------------------------------------- through snakemake


def planned_rules(out: str) -> dict[str, int]:
    """{rule: jobs} from the job table of ``snakemake -n``."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", out, re.MULTILINE)
            if m.group(1) != "total"}


@pytest.fixture(scope="module")
def snake(tmp_path_factory):
    return Snake(ROOT, tmp_path_factory.mktemp("studies_wd"))


@pytest.mark.parametrize("study", ["ilyas", "kim", "zhang"])
def test_one_study_alone_plans_only_its_jobs(snake, study):
    proc = snake.run("-n", "--cores", "1", "--quiet", "rules", "--config", f"studies=[{study}]")
    rules = planned_rules(proc.stdout + proc.stderr)
    assert rules.keys() >= STUDY_RULES[study] | {"prepare_data", "train", "summary"}, rules
    others = set().union(*(r for s, r in STUDY_RULES.items() if s != study))
    assert not rules.keys() & others, rules


def test_study_target_builds_only_that_study(snake):
    proc = snake.run("-n", "--quiet", "rules", "--cores", "1", "zhang")
    rules = planned_rules(proc.stdout + proc.stderr)
    assert rules.keys() >= STUDY_RULES["zhang"] and not rules.keys() & (STUDY_RULES["kim"] | STUDY_RULES["ilyas"])
    assert "summary" not in rules


def test_target_of_a_study_left_out_says_so(snake):
    proc = snake.run("-n", "--cores", "1", "ilyas", "--config", "studies=[kim]", check=False)
    assert proc.returncode != 0
    assert "study 'ilyas' is not in config key studies" in proc.stdout + proc.stderr


def test_checkpoint_analysis_trains_nothing(tmp_path):
    """The docs' example: pretrained models, the Kim et al. study alone, a whole run (nothing
    from config.yaml): it converts the two checkpoints and trains no model."""
    wd = tmp_path / "wd"
    (wd / "checkpoints").mkdir(parents=True)
    for name in ("standard.pt", "linf.pt"):
        (wd / "checkpoints" / name).write_bytes(b"")  # only the dry run's existence check reads them
    proc = Snake(ROOT, wd, tiny=False).run("-n", "--quiet", "rules", "--cores", "1",
                                           configs=[ROOT / "tests" / "checkpoint_run.yaml"])
    rules = planned_rules(proc.stdout + proc.stderr)
    assert rules["convert_pretrained"] == 2 and rules.keys() >= STUDY_RULES["kim"]
    assert not rules.keys() & ({"train"} | STUDY_RULES["ilyas"] | STUDY_RULES["zhang"]), rules
    docs = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "tests" / "checkpoint_run.yaml").read_text().split("\n", 2)[2]
    assert example in docs  # the docs show the file this test plans
