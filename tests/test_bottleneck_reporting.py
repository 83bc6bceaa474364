"""Tables and claims of the bottleneck stage from small synthetic records (advfeatures.reporting.bottleneck)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advfeatures.reporting import bottleneck as rb

ROOT = Path(__file__).resolve().parents[1]
MASK_KEYS = ("mask_robust", "mask_robust_predlabel", "mask_random")


def record(rng, n=40, c=8, attacked=False, k=10):
    r = {"y": rng.integers(0, k, n), "pred_full": rng.integers(0, k, n), "index": np.arange(n)}
    for key in MASK_KEYS:
        r[key] = rng.random((n, c)) > 0.5
    for sfx in ("", "_predlabel", "_random"):
        r[f"pred_robust{sfx}"] = rng.integers(0, k, n)
        r[f"pred_nonrobust{sfx}"] = rng.integers(0, k, n)
    if attacked:
        for sfx in ("", "_predlabel", "_random"):
            r[f"clean_mask_robust{sfx}"] = rng.random((n, c)) > 0.5
            r[f"pred_robust_cleanmask{sfx}"] = rng.integers(0, k, n)
            r[f"pred_nonrobust_cleanmask{sfx}"] = rng.integers(0, k, n)
    return r


@pytest.fixture
def recs():
    rng = np.random.default_rng(0)
    return {(m, i): record(rng, attacked=i != "clean") for m in ("standard", "pgd_linf") for i in ("clean", "pgd")}


def test_table1_rows_and_accuracies(recs):
    t = rb.table1(recs, ["standard", "pgd_linf"], ["clean", "pgd"], dataset="mnist5k", arch="lenet5")
    assert len(t) == 2 * (3 + 6)
    r = recs[("pgd_linf", "pgd")]
    row = t[(t.model == "pgd_linf") & (t.input == "pgd") & (t.masks == rb.PAPER_MASK)].iloc[0]
    assert row.r_acc == pytest.approx(100 * np.mean(r["pred_robust_cleanmask"] == r["y"]))
    assert row.int_acc == pytest.approx(100 * np.mean(r["pred_full"] == r["y"]))
    assert row.robust_channels == pytest.approx(r["clean_mask_robust"].sum(1).mean())
    own = t[(t.model == "pgd_linf") & (t.input == "pgd") & (t.masks == "attacked, predicted label")].iloc[0]
    assert own.nr_acc == pytest.approx(100 * np.mean(r["pred_nonrobust_predlabel"] == r["y"]))
    assert t["published_r"].isna().all()  # preset does not match the paper's setting


def test_published_only_for_matching_preset_and_paper_rows(recs):
    t = rb.table1(recs, ["standard", "pgd_linf"], ["clean", "pgd"], dataset="cifar10", arch="vgg16")
    pub = t[t.published_r.notna()]
    assert set(pub.model) == {"pgd_linf"} and set(pub.masks) == {rb.PAPER_MASK}
    assert pub.set_index("input").loc["pgd", "published_int"] == rb.PUBLISHED_TABLE1["pgd"][0]


def test_table2_counts_only_successful_attacks(recs):
    t = rb.table2(recs, ["standard", "pgd_linf"], ["pgd"], num_classes=10, dataset="mnist5k", arch="lenet5")
    r = recs[("standard", "pgd")]
    ok = r["pred_full"] != r["y"]
    row = t[t.model == "standard"].iloc[0]
    assert row.n_success == ok.sum()
    assert row.nr_agree == pytest.approx(100 * np.mean(r["pred_nonrobust"][ok] == r["pred_full"][ok]))
    assert row.nr_agree_random == pytest.approx(100 * np.mean(r["pred_nonrobust_random"][ok] == r["pred_full"][ok]))
    assert row.chance == pytest.approx(100 / 9)


def test_claims_and_sweep(recs):
    rng = np.random.default_rng(1)
    betas = ["0.01", "1", "10"]
    sweep = {("pgd_linf", b): record(rng) for b in betas}
    # make robust channels fall with beta, as the claim expects; an accurate model whose IB mask
    # beats the random-mask control (else the sweep claim is not testable)
    for j, b in enumerate(betas):
        r = sweep[("pgd_linf", b)]
        r["mask_robust"][:] = np.arange(8) < 6 - 2 * j
        r["pred_full"] = r["pred_robust"] = r["y"].copy()
    sw = rb.beta_sweep(sweep, ["pgd_linf"], betas)
    assert list(sw.robust_channels) == [6.0, 4.0, 2.0]
    assert list(sw.nonrobust_channels) == [2.0, 4.0, 6.0]
    t1 = rb.table1(recs, ["standard", "pgd_linf"], ["clean", "pgd"], dataset="mnist5k", arch="lenet5")
    t2 = rb.table2(recs, ["standard", "pgd_linf"], ["pgd"], num_classes=10, dataset="mnist5k", arch="lenet5")
    cl = rb.claims(t1, t2, sw, recs, sweep)
    names = [c.claim for c in cl]
    assert sum("control" in n for n in names) == 2 * 3 + 2 * 2 + 1
    beta_claim = next(c for c in cl if "fall as beta grows" in c.claim)
    assert beta_claim.measured == -4.0 and beta_claim.verdict == "holds"
    paper = next(c for c in cl if c.claim.startswith("pgd_linf, pgd: R. accuracy under attack"))
    d = t1[(t1.model == "pgd_linf") & (t1.masks == rb.PAPER_MASK) & (t1.input == "pgd")].iloc[0]
    assert paper.measured == pytest.approx(d.r_acc - d.int_acc)
    # the Table 1/2 models here predict at random: pgd_linf's clean accuracy is exactly 1/K, so nothing
    # about it is testable; no claim about either random model holds
    for c in cl[:-2]:  # the last two: the sweep, whose model is accurate
        assert c.verdict != "holds", c
        if c.claim.startswith("pgd_linf"):
            assert c.verdict == "not testable" and "pgd_linf at chance" in c.reason, c


def test_degenerate_mask_and_random_control_gate_table2():
    rng = np.random.default_rng(3)
    recs = {(m, i): record(rng, n=200, attacked=i != "clean") for m in ("pgd_linf",) for i in ("clean", "pgd")}
    clean, att = recs[("pgd_linf", "clean")], recs[("pgd_linf", "pgd")]
    clean["pred_full"] = clean["y"].copy()  # an accurate model
    att["pred_full"] = (att["y"] + 1) % 10  # every row successfully attacked
    att["pred_nonrobust"] = att["pred_full"].copy()  # NR. agrees with the adversarial prediction ...
    att["pred_nonrobust_random"] = att["pred_full"].copy()  # ... and so does the random-mask control
    t1 = rb.table1(recs, ["pgd_linf"], ["clean", "pgd"], dataset="mnist5k", arch="lenet5")
    t2 = rb.table2(recs, ["pgd_linf"], ["pgd"], num_classes=10, dataset="mnist5k", arch="lenet5")
    sw = rb.beta_sweep({("pgd_linf", "1"): clean}, ["pgd_linf"], ["1"])
    paper = lambda cl: next(c for c in cl if "most successfully attacked rows (IB with the true label" in c.claim)  # noqa: E731
    control = lambda cl: next(c for c in cl if "exceeds that of a random mask" in c.claim)  # noqa: E731
    cl = rb.claims(t1, t2, sw, recs, {("pgd_linf", "1"): clean})
    # a mask no better than random is a finding of its own claim; it does not hide the paper's claim
    assert paper(cl).measured == 100.0 and paper(cl).verdict == "holds"
    assert control(cl).verdict == "fails" and control(cl).measured == 0.0
    att["pred_nonrobust_random"] = att["y"].copy()  # the control now loses: both hold
    cl = rb.claims(t1, t2, sw, recs, {("pgd_linf", "1"): clean})
    assert paper(cl).verdict == "holds" and control(cl).verdict == "holds"
    att["mask_robust"][:] = False  # Z_nr keeps every channel: NR. = Int. by construction
    c = paper(rb.claims(t1, t2, sw, recs, {("pgd_linf", "1"): clean}))
    assert c.verdict == "not testable" and "degenerate" in c.reason


def test_attacks_reusing_the_same_images_are_not_pooled():
    """Three attacks on the same 60 images with identical outcomes: pooling them (as before) made
    n = 180 and p = 6e-5 (15 discordant rows) for a 5-of-60 difference; one claim per attack keeps n = 60 and the
    exact McNemar p of 60 rows (5 discordant rows, all one way: p = 0.0625), so it is not a finding."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(4)
    base = record(rng, n=60, attacked=True)
    base["pred_full"] = (base["y"] + 1) % 10  # every row wrong under attack ...
    base["pred_robust_cleanmask"] = base["pred_full"].copy()
    base["pred_robust_cleanmask"][:5] = base["y"][:5]  # ... R. right on 5 of them
    base["clean_mask_robust"][:] = np.arange(8) < 4
    clean = record(rng, n=60)
    clean["pred_full"] = clean["y"].copy()
    atks = ("fgsm", "pgd", "cw")
    recs = {("pgd_linf", "clean"): clean, **{("pgd_linf", a): dict(base) for a in atks}}
    t1 = rb.table1(recs, ["pgd_linf"], ["clean", *atks], dataset="mnist5k", arch="lenet5")
    t2 = rb.table2(recs, ["pgd_linf"], list(atks), num_classes=10, dataset="mnist5k", arch="lenet5")
    sw = rb.beta_sweep({("pgd_linf", "1"): clean}, ["pgd_linf"], ["1"])
    cl = [c for c in rb.claims(t1, t2, sw, recs, {("pgd_linf", "1"): clean})
          if "R. accuracy under attack exceeds Int." in c.claim]
    assert [c.claim.split(":")[0] for c in cl] == [f"pgd_linf, {a}" for a in atks]
    for c in cl:
        assert c.n == 60 and c.measured == pytest.approx(100 * 5 / 60)
        assert c.p_value == pytest.approx(binomtest(0, 5, 0.5).pvalue) and c.verdict == "inconclusive"
    assert binomtest(0, 15, 0.5).pvalue < 1e-3  # what the pooled rows would have claimed


def test_figures_render(tmp_path, recs):
    from advfeatures.reporting import matplotlib_headless, save_figure

    matplotlib_headless()
    rng = np.random.default_rng(2)
    sw = rb.beta_sweep({("standard", b): record(rng) for b in ("0.1", "1")}, ["standard"], ["0.1", "1"])
    save_figure(rb.beta_sweep_figure(sw), tmp_path / "sweep.png")
    clean = record(rng, n=30)
    clean["z_pool"] = rng.normal(size=(30, 8)).astype(np.float32)
    att = {"index": np.arange(5, 30), "z_pool": rng.normal(size=(25, 8)).astype(np.float32)}
    save_figure(rb.tsne_figure(clean, att, points=20, perplexity=5, seed=0), tmp_path / "tsne.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000 and (tmp_path / "tsne.png").stat().st_size > 1000


@pytest.mark.slow
def test_dry_run_builds_the_bottleneck_dag(tmp_path):
    """`snakemake -n` on the default config schedules every distill job and the report rules."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--directory", str(tmp_path), "--cores", "1",
         "-s", str(ROOT / "Snakefile"), "results/default/rep0/tables/kim_table1.csv",
         "results/default/rep0/figures/kim_tsne.png"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import yaml

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["bottleneck"]
    betas = {f"{float(b):g}" for b in cfg["betas"]}
    n_table = len(cfg["methods"]) * (1 + len(cfg["attacks"]))
    shared = f"{float(cfg['beta']):g}" in betas
    n_sweep = sum(len(betas) - (shared and m in cfg["methods"]) for m in cfg["sweep_methods"])
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("distill "))
    assert int(line.split()[-1]) == n_table + n_sweep
