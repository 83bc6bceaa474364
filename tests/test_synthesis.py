"""Unit tests of advfeatures.synthesis on a tiny LeNet and 12x12 random images."""

from __future__ import annotations

import pytest
import torch

from advfeatures import synthesis as syn
from advfeatures.attacks.evaluate import evaluate_model, transfer_rate
from advfeatures.attacks.pgd import PGDSettings
from advfeatures.data import Dataset
from advfeatures.models import build_model
from advfeatures.utils import AdvFeaturesError, make_generator

torch.set_num_threads(1)
C = 3


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("lenet5", in_channels=1, num_classes=C, image_size=12, mean=[0.5], std=[0.25]).eval()


def tiny_data(n: int = 24, seed: int = 1):
    g = make_generator(seed)
    x = torch.rand(n, 1, 12, 12, generator=g)
    y = torch.arange(n) % C
    return x, y


def cfg(kind: str, **over) -> syn.SynthesisConfig:
    d = {"batch_size": 8, "inversion": {"steps": 15, "step_size": 0.2}, "targeted": {"eps": 1.0, "alpha": 0.2, "steps": 5}}
    d.update(over)
    return syn.SynthesisConfig.from_dict(kind, d, seed=3)


def test_inversion_decreases_loss_and_stays_in_unit_box():
    model = tiny_model()
    x, _ = tiny_data(8)
    with torch.no_grad():
        target = model.representation(x)
    start = x.roll(1, dims=0)  # a different image for every row
    with torch.no_grad():
        before = syn.relative_rep_distance(model, start, target)
    xs, after = syn.invert_representation(model, target, start, steps=30, step_size=0.2)
    assert after.mean() < 0.5 * before.mean()
    assert (after < before).float().mean() >= 0.75
    assert xs.min() >= 0 and xs.max() <= 1
    assert model.training is False and all(p.requires_grad for p in model.parameters())


def test_random_other_index_never_picks_itself():
    idx = torch.arange(50).repeat(20)
    other = syn.random_other_index(idx, 50, make_generator(0))
    assert (other != idx).all() and other.min() >= 0 and other.max() < 50
    assert len(other.unique()) == 50  # every image gets used as a start somewhere


def test_targets_d_rand_never_true_and_d_det_is_next_class():
    y = torch.arange(600) % C
    t = syn.choose_targets(y, C, "d_rand", make_generator(0))
    assert (t != y).all() and t.min() >= 0 and t.max() < C
    for c in range(C):  # both other classes occur for every true class
        assert len(t[y == c].unique()) == C - 1
    assert torch.equal(syn.choose_targets(y, C, "d_det", None), (y + 1) % C)


#: Allowed difference between two float32 code paths of one synthesis (pass sizes, thread counts,
#: another CPU's GEMM kernels), per unit of L2 path a row can travel (steps x step size; images
#: in [0, 1]).  Each step moves a row by one step along a normalised gradient whose float32
#: rounding depends on the GEMM blocking; the differences add up over the steps.  Measured on the
#: tiny case below (6 models x 4 kinds x pass sizes 1-7 x 1/2 threads x AVX-512/AVX2/SSE4.2
#: kernels): at most 3.6e-5 over a path of 3.0 (1.2e-5 per unit; float32 against a float64 run:
#: 3.2e-5), 1.8e-7 for targeted PGD; another CPU gave 2.0e-5.  A real defect is far larger:
#: normalising the gradient over the pass instead of per row moves pixels by 0.16.
ROUNDING_ATOL_PER_PATH = 1e-4


def path_length(c: syn.SynthesisConfig) -> float:
    if c.kind in syn.INVERSION_KINDS:
        return c.inversion.steps * c.inversion.step_size
    return c.targeted.steps * c.targeted.alpha


@pytest.mark.parametrize("rows, threads", [(3, 1), (1, 2)])
@pytest.mark.parametrize("kind", syn.KINDS)
def test_chunk_split_into_cpu_passes_matches_one_pass_within_rounding(kind, rows, threads, monkeypatch):
    """Inversion and targeted PGD are per row: passes of a few rows (and another thread count)
    give the rows of one pass up to float32 rounding, which differs between GEMM blockings (not
    bit for bit: the tiny case differs by 3.4e-5 on an AVX-512 CPU)."""
    model = tiny_model()
    x, y = tiny_data(12)
    index = torch.arange(1, 11)
    c = cfg(kind)
    whole = syn.synthesize_chunk(c, model, x, y, index, C, make_generator(5))
    monkeypatch.setattr(syn, "CPU_ROWS_PER_PASS", rows)
    assert syn.rows_per_pass(torch.device("cpu"), 10) == rows
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        split = syn.synthesize_chunk(c, model, x, y, index, C, make_generator(5))
    finally:
        torch.set_num_threads(before)
    atol = ROUNDING_ATOL_PER_PATH * path_length(c)
    for name in syn.ARRAYS:
        if whole[name].is_floating_point():
            torch.testing.assert_close(split[name], whole[name], rtol=0, atol=atol)
        else:  # labels, indices, predictions (the smallest top-2 logit gap here is 1e-3)
            assert torch.equal(whole[name], split[name]), name
    assert (split["x"] - x[index]).abs().max() > 100 * atol  # the optimisation moved the rows


@pytest.mark.parametrize("kind", syn.KINDS)
def test_chunk_labels_and_provenance(kind):
    model = tiny_model()
    x, y = tiny_data(12)
    index = torch.arange(2, 10)
    out = syn.synthesize_chunk(cfg(kind), model, x, y, index, C, make_generator(5))
    assert set(out) == set(syn.ARRAYS)
    assert torch.equal(out["source_index"], index)
    assert torch.equal(out["y_source"], y[index])
    assert out["x"].shape == (8, 1, 12, 12) and out["x"].dtype == torch.float32
    assert out["x"].min() >= 0 and out["x"].max() <= 1
    if kind in syn.INVERSION_KINDS:
        assert torch.equal(out["y"], y[index])  # label stays y
        assert not torch.equal(out["x"], x[index])
    elif kind == "d_det":
        assert torch.equal(out["y"], (y[index] + 1) % C)  # relabelled as the target
    else:
        assert (out["y"] != y[index]).all()
    if kind in syn.TARGETED_KINDS:
        delta = (out["x"] - x[index]).flatten(1).norm(dim=1)
        assert (delta <= 1.0 + 1e-5).all()


def test_noise_start_is_grey_plus_noise():
    x, _ = tiny_data(6)
    c = syn.InversionConfig(start="noise", noise_std=0.05)
    x0, src = syn.start_points(x, torch.arange(6), c, make_generator(0))
    assert (src == -1).all()
    assert abs(float(x0.mean()) - 0.5) < 0.02 and float(x0.std()) < 0.1


@pytest.mark.parametrize("kind", ["d_nr", "d_rand"])
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, kind, monkeypatch):
    model = tiny_model()
    x, y = tiny_data(28)  # 4 chunks of 8, the last one partial
    c = cfg(kind)
    full = syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "a", progress=False)
    assert syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "b", progress=False, stop_after_chunk=2) is None
    assert len(list((tmp_path / "b").glob("chunk_*.pt"))) == 2
    calls = []
    real = syn.synthesize_chunk
    monkeypatch.setattr(syn, "synthesize_chunk", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "b", progress=False)
    assert len(calls) == 2  # only the two unfinished chunks were recomputed
    for name in syn.ARRAYS:
        assert torch.equal(full[name], resumed[name]), name


def test_changed_config_ignores_old_chunks(tmp_path):
    model = tiny_model()
    x, y = tiny_data(16)
    a = syn.synthesize(cfg("d_nr"), model, x, y, C, state_dir=tmp_path, progress=False)
    c2 = cfg("d_nr", inversion={"steps": 3, "step_size": 0.2})
    b = syn.synthesize(c2, model, x, y, C, state_dir=tmp_path, progress=False)
    fresh = syn.synthesize(c2, model, x, y, C, state_dir=tmp_path / "fresh", progress=False)
    assert not torch.equal(a["x"], b["x"])
    assert torch.equal(b["x"], fresh["x"])


def test_seeded_determinism(tmp_path):
    model = tiny_model()
    x, y = tiny_data(16)
    runs = [syn.synthesize(cfg("d_rand"), model, x, y, C, state_dir=tmp_path / str(i), progress=False) for i in range(2)]
    for name in syn.ARRAYS:
        assert torch.equal(runs[0][name], runs[1][name])
    other = syn.SynthesisConfig.from_dict("d_rand", {"batch_size": 8, "targeted": {"eps": 1.0, "alpha": 0.2, "steps": 5}}, seed=4)
    diff = syn.synthesize(other, model, x, y, C, state_dir=tmp_path / "s4", progress=False)
    assert not torch.equal(runs[0]["y"], diff["y"])


def test_bad_config_is_one_line_error():
    with pytest.raises(AdvFeaturesError, match="d_x"):
        syn.SynthesisConfig.from_dict("d_x", {}, 0)
    with pytest.raises(AdvFeaturesError, match="start"):
        syn.SynthesisConfig.from_dict("d_r", {"inversion": {"start": "zeros"}}, 0)


def test_transfer_to_itself_is_total_and_eval_row():
    model = tiny_model()
    x, y = tiny_data(30)
    with torch.no_grad():
        y = model(x).argmax(1)  # the model is right on every row
    data = Dataset("tiny", x, y, x, y, [str(i) for i in range(C)], [0.5], [0.25])
    attack = PGDSettings(norm="l2", eps=3.0, alpha=0.5, steps=10, random_start=False)
    t = transfer_rate(model, model, data, attack, subset=None, seed=0)
    assert t["transfer_n"] > 0 and t["transfer_rate"] == 1.0
    row = evaluate_model(model, data, {"l2": attack}, subset=None, seed=0)
    assert row["clean_acc"] == 1.0 and row["robust_acc_l2"] == pytest.approx(1 - t["transfer_n"] / 30)


def test_synthetic_dataset_keeps_original_test_split():
    x, y = tiny_data(10)
    base = Dataset("tiny", x, y, x[:4], y[:4], [str(i) for i in range(C)], [0.5], [0.25])
    d = syn.synthetic_dataset(base, x.flip(0), (y + 1) % C, "d_det")
    assert torch.equal(d.x_test, base.x_test) and torch.equal(d.y_train, (y + 1) % C)
    with pytest.raises(AdvFeaturesError, match="shape"):
        syn.synthetic_dataset(base, torch.zeros(3, 1, 8, 8), y[:3], "d_det")
