"""The attacks stage's config checks, HDF5 round trip and tables (no model training here)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import SNAKEMAKE

from advfeatures import h5io
from advfeatures.reporting import attacks as rep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _validate(cfg):
    from advfeatures.config import validate_config

    validate_config(copy.deepcopy(cfg))


@pytest.mark.parametrize(
    "path, value",
    [
        (("suite", "x"), {"type": "deepfool"}),               # unknown type
        (("suite", "pgd", "stepz"), 3),                       # unknown option of a known type
        (("suite", "fgsm", "steps"), 3),                      # option of another type
        (("suite", "nrf", "mask"), "half"),                   # bad enum
        (("suite", "Bad-Name"), {"type": "fgsm"}),            # name pattern
        (("models",), ["standard", "adv"]),                   # unknown model
        (("sweep", "eps"), [0.1]),                            # a sweep needs two points
        (("extra",), 1),                                      # unknown key
    ],
)
def test_schema_rejects_bad_attack_config(config, path, value):
    _validate(config)
    cfg = copy.deepcopy(config)
    node = cfg["attacks"]
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    from advfeatures.config import ConfigError

    with pytest.raises(ConfigError, match="invalid config: key attacks") as e:
        _validate(cfg)
    msg = str(e.value)
    # the message points at the bad entry: its place in the config and the key or value
    assert ".".join(("attacks", *path[:-1])) in msg, msg
    assert str(path[-1]) in msg or repr(value) in msg, msg


def test_unknown_sweep_attack_name_fails_before_any_job(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("attacks:\n  sweep:\n    attacks: [pgd, nosuch]\n")
    r = subprocess.run(
        [SNAKEMAKE, "-n", "--directory", str(tmp_path / "wd"), "--configfile",
         str(ROOT / "tests" / "tiny.yaml"), str(overlay), "--cores", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0
    assert "invalid config: key attacks.sweep.attacks: names ['nosuch']" in r.stdout + r.stderr


# ----------------------------------------------------------------------------- records and tables


def _write(path, method, attack, atype, index, y, pred_clean, pred_adv, bound="Linf 0.1", mask="", maximize=True):
    n = len(y)
    h5io.write_h5(
        path,
        {"x_adv": np.zeros((n, 1, 2, 2), np.float32), "index": np.asarray(index), "y": np.asarray(y),
         "pred_clean": np.asarray(pred_clean), "pred_adv": np.asarray(pred_adv),
         "linf": np.full(n, 0.1, np.float32), "l2": np.linspace(0.5, 1.0, n).astype(np.float32)},
        kind="attack", producer="test", params={"spec": {"type": atype}},
        attrs={"attack": attack, "attack_type": atype, "method": method, "bound": bound, "mask": mask,
               "attack_kwargs": {"maximize": maximize}, "standard": False},
    )
    return rep.load_record(path)


def test_paired_comparison_uses_shared_rows_and_claims_follow(tmp_path):
    y = np.zeros(6, np.int64)
    # PGD on rows 0..5 fools rows 0, 1; NRF on rows 0, 2, 4 fools rows 0, 2, 4
    pgd = _write(tmp_path / "p.h5", "pgd_linf", "pgd", "pgd", range(6), y, y, [1, 1, 0, 0, 0, 0])
    nrf = _write(tmp_path / "n.h5", "pgd_linf", "nrf_linf", "nrf", [0, 2, 4], y[:3], y[:3], [1, 1, 1],
                 mask="nonrobust")
    a_n, a_p, n = rep.paired(nrf, pgd)
    assert (a_n, a_p, n) == (0.0, pytest.approx(200 / 3), 3)
    (claim,) = rep.claims([pgd, nrf], ["pgd_linf"], num_classes=2)
    assert claim.measured == pytest.approx(-200 / 3) and "same 3 test rows" in claim.note
    assert claim.verdict == "not testable" and "too few rows" in claim.reason  # 3 < report.claims.min_rows
    assert "NRF stronger than PGD at the same budget (Linf 0.1)" in claim.claim


def test_published_values_only_in_the_paper_setting(tmp_path):
    y = np.zeros(4, np.int64)
    rec = _write(tmp_path / "a.h5", "pgd_linf", "apgd_ce", "apgd_ce", range(4), y, y, [0, 0, 1, 1])
    ours = {"dataset": "mnist5k", "arch": "lenet5", "eps": 0.1765}
    paper = {"dataset": "cifar10", "arch": "vgg16", "eps": 0.03}
    t_ours = rep.table3([rec], ours, ["pgd_linf"])
    assert t_ours["published"].isna().all()
    t_paper = rep.table3([rec], paper, ["pgd_linf"])
    # the paper's "AA" column (APGD-CE in its code) and its clean accuracy
    assert list(t_paper["published"]) == [79.7, 42.0]
    assert rep.paper_setting({**paper, "eps": 8 / 255}) is None
    assert rep.paper_setting({"dataset": "cifar10", "arch": "wrn", "arch_options": {"depth": 16}, "eps": 0.03}) is None


def test_table4_marks_direction_and_gradient(tmp_path):
    y = np.zeros(2, np.int64)
    recs = [
        _write(tmp_path / f"{i}.h5", "trades", f"a{i}", "nrf", [0, 1], y, y, adv, bound="unbounded", mask=m,
               maximize=mx)
        for i, (m, mx, adv) in enumerate([("nonrobust", True, [1, 1]), ("nonrobust", False, [0, 1]),
                                          ("robust", True, [1, 0]), ("robust", False, [0, 0])])
    ]
    t4 = rep.table4(recs, {"dataset": "svhn", "arch": "vgg16", "eps": 0.03}, ["trades"])
    assert list(zip(t4["gradient"], t4["direction"])) == [("G_nr", "max"), ("G_nr", "min"), ("G_r", "max"),
                                                          ("G_r", "min")]
    assert list(t4["accuracy"]) == [0.0, 50.0, 50.0, 100.0]
    assert list(t4["published"]) == [14.3, 68.4, 27.3, 82.3]
    ablation = [c for c in rep.claims(recs, ["trades"], num_classes=2) if "norm of G_nr" in c.claim]
    assert [c.measured for c in ablation] == [-50.0, -50.0]  # max vs min G_nr, max G_nr vs max G_r
    assert all(c.verdict == "not testable" for c in ablation)


def test_table3_columns_follow_the_paper_whatever_the_job_order(tmp_path):
    """Paper order: Clean, FGSM, BIM, PGD, CW, APGD/AA, FAB, NRF, then extras (here an L2 PGD)."""
    y = np.zeros(4, np.int64)
    jobs = [  # (attack, type, bound, mask), in a shuffled job order as on a CIFAR-10 run
        ("nrf", "nrf", "unbounded", "nonrobust"), ("cw", "cw", "unbounded", ""), ("pgd_l2", "pgd", "L2 1.5", ""),
        ("fab", "fab", "Linf 0.1", ""), ("nrf_linf", "nrf", "Linf 0.1", "nonrobust"),
        ("autoattack", "autoattack", "Linf 0.1", ""), ("pgd", "pgd", "Linf 0.1", ""),
        ("apgd_ce", "apgd_ce", "Linf 0.1", ""), ("bim", "bim", "Linf 0.1", ""), ("fgsm", "fgsm", "Linf 0.1", ""),
    ]
    recs = []
    for name, atype, bound, mask in jobs:
        recs.append(_write(tmp_path / f"{name}.h5", "pgd_linf", name, atype, range(4), y, y, [0, 1, 1, 1],
                           bound=bound, mask=mask))
        if name == "pgd_l2":  # an L2 PGD record carries its norm in the spec
            recs[-1] = {**recs[-1], "norm": "l2"}
    setting = {"dataset": "cifar10", "arch": "lenet5", "eps": 0.1}
    t3 = rep.table3(recs, setting, ["pgd_linf"])
    assert list(t3["attack"]) == ["clean", "fgsm", "bim", "pgd", "cw", "apgd_ce", "autoattack", "fab", "nrf",
                                  "nrf_linf", "pgd_l2"]
    wide = rep.table3_wide(t3)
    assert [c.split(" (")[0] for c in wide.columns[1:]] == [
        "Clean", "FGSM", "BIM", "PGD", "CW-L2", "APGD-CE", "AutoAttack", "FAB", "NRF max norm G_nr",
        "NRF max norm G_nr", "PGD"]
    assert wide.columns[-1] == "PGD (L2 1.5)"
