"""The MI stage on a tiny model: eval mode, seeding, tidy rows, distortions, claims, schema."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from advfeatures import mutual_info as mi
from advfeatures import stats
from advfeatures.data import Dataset
from advfeatures.models import build_model
from advfeatures.reporting import mutual_info as report
from advfeatures.reporting import verdicts
from advfeatures.stages.mi_distortions import distortion_mi

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

PARAMS = {
    "n_samples": 40, "batch_size": 20, "estimators": ["kde", "binning"],
    "kde": {"noise_var": 0.1}, "binning": {"bin_width": 0.5}, "max_block_mib": 1,
    "attack": {"norm": "linf", "eps": 0.1, "alpha": 0.05, "steps": 2, "random_start": True},
    "distortions": {"saturation": [2, 64], "shuffle": [0, 4]},
}


@pytest.fixture(scope="module")
def tiny():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 12, 12, generator=g)
    y = torch.arange(60) % 3
    data = Dataset("tiny", x, y, x, y, ["a", "b", "c"], [0.5], [0.3])
    torch.manual_seed(0)
    model = build_model("lenet5", **data.model_kwargs()).eval()
    return model, data


def test_epoch_rows_are_complete_seeded_and_bounded(tiny):
    model, data = tiny
    rows = mi.epoch_mi(model, data, PARAMS, seed=3, method="standard", epoch=2)
    df = pd.DataFrame(rows)
    assert len(df) == 2 * 5 * 3  # inputs x layers x estimators
    assert set(df["input"]) == {"clean", "adversarial"}
    assert list(dict.fromkeys(df["layer"])) == list(model.probe_names)
    assert (df["I_XT"] <= math.log2(40) + 1e-9).all() and (df["I_XT"] >= -1e-9).all()
    assert (df["I_TY"] <= df["I_XT"] + 1e-9).all()
    again = pd.DataFrame(mi.epoch_mi(model, data, PARAMS, seed=3, method="standard", epoch=2))
    pd.testing.assert_frame_equal(df, again)
    # the adversarial inputs differ from the clean ones (the attack ran) and change accuracy/MI
    x, x_adv, _ = mi.mi_inputs(model, data, PARAMS, seed=3, tags=("standard", 2), device="cpu")
    assert 0 < (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_probes_run_in_eval_mode(tiny):
    model, data = tiny
    seen = []
    h = model.conv1.register_forward_hook(lambda m, i, o: seen.append(m.training))
    model.train()
    try:
        mi.probe_layer(model, data.x_test[:5], "fc1")
        mi.accuracy_loss(model, data.x_test[:5], data.y_test[:5])
    finally:
        h.remove()
    assert seen and not any(seen)
    assert model.training  # restored
    model.eval()


def test_distortion_rows_reuse_identity_and_differ_otherwise(tiny):
    model, data = tiny
    df = pd.DataFrame(distortion_mi(model, data, PARAMS, seed=3, method="pgd_linf"))
    key = ["input", "layer", "estimator"]
    sat2 = df[(df.distortion == "saturation") & (df.level == 2)].set_index(key)
    shuf0 = df[(df.distortion == "shuffle") & (df.level == 0)].set_index(key)
    cols = ["accuracy", "loss", "I_XT", "I_TY"]
    pd.testing.assert_frame_equal(sat2[cols], shuf0[cols])
    shuf4 = df[(df.distortion == "shuffle") & (df.level == 4)].set_index(key)
    assert not shuf4[cols].equals(shuf0[cols])


def _fake_epochs(shift_adv: float, adv_acc: float = 0.9) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for method, scale in (("standard", 1.0), ("pgd_linf", 0.5)):
        for epoch in (1, 2, 3, 5):
            for inp in ("clean", "adversarial"):
                for li, layer in enumerate(("conv1", "fc1")):
                    v = scale * (li + 1) * math.log(epoch + 1) + (shift_adv if inp == "adversarial" else 0)
                    boot = stats.encode_replicates(v + rng.normal(0, 0.01, 50))
                    rows.append({"method": method, "epoch": epoch, "input": inp, "n": 1000, "layer": layer,
                                 "estimator": "kde_upper", "accuracy": adv_acc if method == "pgd_linf" else 0.9,
                                 "loss": 0.3, "I_XT": v, "I_TY": v / 2, "I_XT_boot": boot})
    return pd.DataFrame(rows)


def _fake_distortions(std_drop: tuple, adv_drop: tuple) -> pd.DataFrame:
    rows = []
    for method, (sat, shuf) in (("standard", std_drop), ("pgd_linf", adv_drop)):
        for kind, levels, drop in (("saturation", (2, 64), sat), ("shuffle", (0, 4), shuf)):
            for lv in levels:
                ident = lv in (2, 0)
                for inp in ("clean", "adversarial"):
                    rows.append({"method": method, "distortion": kind, "level": lv, "input": inp, "n": 1000,
                                 "layer": "fc1",
                                 "estimator": "kde_lower", "accuracy": 0.9 - (0 if ident else drop), "loss": 0.1,
                                 "I_XT": 1.0, "I_TY": 0.5})
    return pd.DataFrame(rows)


def test_claims_on_constructed_tables():
    methods = ["standard", "pgd_linf"]
    claims = report.mi_claims(_fake_epochs(0.0), _fake_distortions((0.4, 0.1), (0.1, 0.5)), methods, num_classes=10)
    coincide = [c for c in claims if "coincide" in c.claim]
    assert all(c.measured == 0.0 and c.verdict == "holds" for c in coincide)  # the same series
    less = [c for c in claims if "less I(X;T)" in c.claim]
    assert len(less) == 1 and less[0].verdict == "holds" and less[0].ci_low > 0.1
    assert less[0].measured == pytest.approx(0.75 * math.log(6))
    slower = [c for c in claims if "advances more slowly" in c.claim]
    assert len(slower) == 1 and slower[0].verdict == "holds" and slower[0].measured == pytest.approx(0.75)
    shuffle = [c for c in claims if "patch shuffling" in c.claim]
    # [shuffle - saturation drop]: adversarial 0.5 - 0.1, standard 0.1 - 0.4: contrast 0.7 = 70 points
    assert len(shuffle) == 1 and shuffle[0].measured == pytest.approx(70.0) and shuffle[0].verdict == "holds"
    # the other way round: the shuffle claim fails; shifted trends (offset 0.375 bits > 0.1) do not coincide
    flipped = report.mi_claims(_fake_epochs(0.5), _fake_distortions((0.1, 0.4), (0.5, 0.1)), methods, num_classes=10)
    assert [c.verdict for c in flipped if "patch shuffling" in c.claim] == ["fails"]
    assert [c.verdict for c in flipped if "coincide" in c.claim] == ["fails", "fails"]
    assert all(math.isfinite(c.p_value) for c in claims + flipped)  # every claim has a test


def test_distortion_claims_on_near_binary_images_are_not_testable():
    methods = ["standard", "pgd_linf"]
    claims = report.mi_claims(_fake_epochs(0.0), _fake_distortions((0.4, 0.1), (0.1, 0.5)), methods,
                              num_classes=10, binary_share=0.806)
    (c,) = [c for c in claims if "patch shuffling" in c.claim]
    assert c.verdict == "not testable" and "near binary" in c.reason and "80.6%" in c.reason
    images = np.zeros((10, 1, 4, 4), np.uint8)
    images[:, :, :2] = 128
    assert verdicts.binary_share(images) == pytest.approx(0.5)


def test_saturated_or_flat_mi_series_cannot_make_trends_coincide():
    """The standard model's I(X;T) near log2 N on every layer and epoch, I(T;Y) flat: nothing left
    to compare, so "coincide" is not testable (it held trivially before: offsets of 0)."""
    methods = ["standard", "pgd_linf"]
    df = _fake_epochs(0.0)
    std = df.method == "standard"
    df.loc[std, "I_XT"] = math.log2(1000) - 0.001 - 0.008 * df.loc[std, "epoch"]  # changes, near the ceiling
    df.loc[std, "I_TY"] = 1.0
    claims = report.mi_claims(df, _fake_distortions((0.4, 0.1), (0.1, 0.5)), methods, num_classes=10)
    (c,) = [c for c in claims if "coincide" in c.claim and c.claim.startswith("standard")]
    assert c.verdict == "not testable" and "2 flat, 2 saturated" in c.reason


def test_mi_claims_of_a_model_at_chance_or_at_the_ceiling_are_not_testable():
    methods = ["standard", "pgd_linf"]
    claims = report.mi_claims(_fake_epochs(0.0, adv_acc=0.1), _fake_distortions((0.4, 0.1), (0.1, 0.5)), methods,
                              num_classes=10)
    uses = [c for c in claims if "pgd_linf" in c.claim]
    assert len(uses) == 4 and all(c.verdict == "not testable" and "at chance" in c.reason for c in uses)
    df = _fake_epochs(0.0)
    df.loc[df.layer == "conv1", "I_XT"] = math.log2(1000) - 0.01  # both models' conv1 at log2 N
    less = next(c for c in report.mi_claims(df, _fake_distortions((0.4, 0.1), (0.1, 0.5)), methods, num_classes=10)
                if "less I(X;T)" in c.claim)
    assert less.verdict == "not testable" and "ceiling" in less.reason


def test_flat_series_are_excluded_from_the_correlation():
    df = _fake_epochs(0.0)
    df.loc[df.layer == "conv1", "I_XT"] = math.log2(1000)  # saturated layer: no trend
    tc = report.trend_correlations(df, "standard")
    assert math.isnan(tc.set_index(["layer", "quantity"]).loc[("conv1", "I_XT"), "r"])
    assert not tc.set_index(["layer", "quantity"]).loc[("conv1", "I_XT"), "usable"]
    assert tc.dropna()["r"].min() == pytest.approx(1.0)


def test_schema_rejects_unknown_names_and_keys():
    from pydantic import ValidationError

    from advfeatures.config import MutualInfoBlock

    good = yaml.safe_load((ROOT / "config.yaml").read_text())["mutual_info"]
    MutualInfoBlock.model_validate(good)
    for bad in (
        {**good, "estimators": ["kde", "ksg"]},
        {**good, "methods": ["robust"]},
        {**good, "kde": {"noise_var": 0}},
        {**good, "typo": 1},
        {**good, "distortions": {"saturation": [2], "shuffle": [0], "blur": [1]}},
    ):
        with pytest.raises(ValidationError):
            MutualInfoBlock.model_validate(bad)
