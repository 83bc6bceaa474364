"""Oracle tests of advfeatures/synthesis.py on 1 x 3 x 3 images and tiny hand-made models.

Representation inversion is checked against its closed form on an identity representation
(normalised-gradient steps of ||x - t|| / ||t|| walk the straight line from the start to t, one
step size per step, per row), targeted PGD against a written-out targeted L2 PGD, the chunk glue
against its pieces drawn from the chunk's own generator, and the messages by the value they name.
Fast: ``make mutation`` runs these for the synthesis module (with tests/test_synthesis.py).
"""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
import torch.nn.functional as F

from advfeatures import synthesis as syn
from advfeatures.data import Dataset
from advfeatures.utils import AdvFeaturesError, derive_seed, make_generator

C = 3
D = 9  # pixels of a 1 x 3 x 3 image


class IdentityRep(torch.nn.Module):
    """representation(x) = scale * x.flatten(1) (scale = 1, a parameter); logits = rep @ W + b.

    Records, for every representation call, whether the module was in training mode and whether
    any parameter required a gradient (synthesis must run the model frozen, in eval mode)."""

    def __init__(self, seed: int = 0, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.scale = torch.nn.Parameter(torch.ones((), dtype=dtype))
        self.head = torch.nn.Linear(D, C).to(dtype)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(C, D, generator=g, dtype=dtype) * 3)
            self.head.bias.copy_(torch.randn(C, generator=g, dtype=dtype))
        self.calls: list[tuple[bool, bool]] = []

    def representation(self, x):
        self.calls.append((self.training, any(p.requires_grad for p in self.parameters())))
        return self.scale * x.flatten(1)

    def forward(self, x):
        return self.head(self.representation(x))


def images(n: int, seed: int = 1, lo: float = 0.2, hi: float = 0.8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 3, 3, generator=g, dtype=dtype) * (hi - lo) + lo)


def cfg(kind: str, seed: int = 3, **over) -> syn.SynthesisConfig:
    d = {"batch_size": 4, "inversion": {"steps": 3, "step_size": 0.05},
         "targeted": {"eps": 0.5, "alpha": 0.2, "steps": 4}}
    d.update(over)
    return syn.SynthesisConfig.from_dict(kind, d, seed=seed)


# ----------------------------------------------------------------------------- config


def test_defaults_are_the_papers_settings():
    c = syn.SynthesisConfig.from_dict("d_r", {}, seed=7)
    assert (c.kind, c.batch_size, c.seed) == ("d_r", 500, 7)
    assert (c.inversion.steps, c.inversion.step_size, c.inversion.start, c.inversion.noise_std) == (
        1000, 0.1, "random_image", 0.1)
    assert (c.targeted.eps, c.targeted.alpha, c.targeted.steps) == (0.5, 0.1, 100)
    # None under a key is the defaults too
    n = syn.SynthesisConfig.from_dict("d_det", {"inversion": None, "targeted": None}, seed="2")
    assert n.inversion == syn.InversionConfig() and n.targeted == syn.TargetedConfig() and n.seed == 2
    assert isinstance(n.seed, int)


def test_config_keys_reach_the_config():
    c = syn.SynthesisConfig.from_dict(
        "d_nr", {"batch_size": "7", "inversion": {"steps": 5, "step_size": 0.3, "start": "noise", "noise_std": 0.2},
                 "targeted": {"eps": 2.0, "alpha": 0.4, "steps": 9}}, seed=1)
    assert c.batch_size == 7 and isinstance(c.batch_size, int)
    assert c.inversion == syn.InversionConfig(steps=5, step_size=0.3, start="noise", noise_std=0.2)
    assert c.targeted == syn.TargetedConfig(eps=2.0, alpha=0.4, steps=9)
    assert syn.SynthesisConfig.from_dict("d_r", {"batch_size": 1}, 0).batch_size == 1  # the smallest allowed


def test_bad_config_messages_name_the_bad_value():
    with pytest.raises(AdvFeaturesError, match=r"unknown synthetic dataset kind 'd_x'; choose one of \('d_r', "):
        syn.SynthesisConfig.from_dict("d_x", {}, 0)
    with pytest.raises(AdvFeaturesError, match=r"^bad option under config key synthesis: .*'stepz'"):
        syn.SynthesisConfig.from_dict("d_r", {"inversion": {"stepz": 3}}, 0)
    with pytest.raises(AdvFeaturesError, match=r"^bad option under config key synthesis: .*'epz'"):
        syn.SynthesisConfig.from_dict("d_rand", {"targeted": {"epz": 3}}, 0)
    with pytest.raises(AdvFeaturesError, match=r"^synthesis.inversion.start is 'zeros'; use one of "
                                               r"\('random_image', 'noise'\)$"):
        syn.SynthesisConfig.from_dict("d_r", {"inversion": {"start": "zeros"}}, 0)
    for bad in (0, -3):
        with pytest.raises(AdvFeaturesError, match=rf"^synthesis.batch_size must be >= 1, got {bad}$"):
            syn.SynthesisConfig.from_dict("d_r", {"batch_size": bad}, 0)


def test_relevant_holds_only_the_kinds_own_settings():
    for kind in syn.INVERSION_KINDS:
        c = cfg(kind)
        assert c.relevant() == {"kind": kind, "batch_size": 4, "seed": 3,
                                "inversion": {"steps": 3, "step_size": 0.05, "start": "random_image",
                                              "noise_std": 0.1}}
    for kind in syn.TARGETED_KINDS:
        assert cfg(kind).relevant() == {"kind": kind, "batch_size": 4, "seed": 3,
                                        "targeted": {"eps": 0.5, "alpha": 0.2, "steps": 4}}


def test_rows_per_pass_cpu_blocks_other_devices_one_pass():
    assert syn.rows_per_pass(torch.device("cpu"), 10_000) == syn.CPU_ROWS_PER_PASS == 256
    assert syn.rows_per_pass(torch.device("meta"), 10_000) == 10_000
    assert syn.rows_per_pass(torch.device("meta"), 0) == 1


# ----------------------------------------------------------------------------- distance and inversion


def test_relative_rep_distance_formula_per_row():
    model = IdentityRep()
    x, t = images(4, seed=1), images(4, seed=2).flatten(1)
    expect = torch.tensor([math.dist(a, b) / math.hypot(*b) for a, b in zip(x.flatten(1).tolist(), t.tolist())])
    torch.testing.assert_close(syn.relative_rep_distance(model, x, t), expect, rtol=1e-5, atol=0)
    # a tiny target norm is used as it is; only an all-zero target is held off zero
    small = t * 1e-4
    expect_small = (x.flatten(1) - small).norm(dim=1) / small.norm(dim=1)
    torch.testing.assert_close(syn.relative_rep_distance(model, x, small), expect_small, rtol=1e-5, atol=0)
    zero = syn.relative_rep_distance(model, x, torch.zeros_like(t))
    torch.testing.assert_close(zero, x.flatten(1).norm(dim=1) / 1e-12, rtol=1e-5, atol=0)


def test_inversion_walks_the_straight_line_one_step_size_per_step():
    """On an identity representation the normalised gradient of ||x - t|| / ||t|| is the unit
    vector from t to x: each step moves a row straight towards its target by step_size, whatever
    the row's distance and target norm (per-row normalisation, targets with ||t|| > 1)."""
    model = IdentityRep()
    start = images(5, seed=3)
    target = images(5, seed=4, lo=0.3, hi=0.9).flatten(1)
    target[1] = target[1] * 0.9 + 0.05  # rows of different target norms and distances
    gap = target - start.flatten(1)
    assert (gap.norm(dim=1) > 0.5).all() and (target.norm(dim=1) > 1).all()
    steps, lr = 4, 0.1
    xs, final = syn.invert_representation(model, target, start, steps=steps, step_size=lr)
    unit = gap / gap.norm(dim=1, keepdim=True)
    expect = start.flatten(1) + steps * lr * unit
    torch.testing.assert_close(xs.flatten(1), expect, rtol=0, atol=1e-5)
    assert xs.shape == start.shape and not xs.requires_grad
    torch.testing.assert_close(final, (gap.norm(dim=1) - steps * lr) / target.norm(dim=1), rtol=0, atol=1e-5)


def test_inversion_clamps_start_and_iterates_to_the_unit_box():
    model = IdentityRep()
    start = images(3, seed=5)
    start[0, 0, 0, 0], start[1, 0, 1, 1] = 1.7, -0.6
    kept = start.clone()
    target = images(3, seed=6).flatten(1)
    xs, final = syn.invert_representation(model, target, start, steps=0, step_size=0.1)
    assert torch.equal(start, kept)  # the caller's start is not clamped in place
    assert torch.equal(xs, kept.clamp(0, 1))
    torch.testing.assert_close(final, syn.relative_rep_distance(model, kept.clamp(0, 1), target), rtol=1e-6, atol=0)
    # a target outside the box: the pixels it pulls out stay at the bound
    far = target.clone()
    far[:, 0], far[:, 4] = 3.0, -2.0
    xs, _ = syn.invert_representation(model, far, start, steps=40, step_size=0.1)
    assert xs.min() >= 0 and xs.max() <= 1
    assert torch.equal(xs[:, 0, 0, 0], torch.ones(3)) and torch.equal(xs[:, 0, 1, 1], torch.zeros(3))


def test_inversion_runs_the_model_frozen_and_restores_it():
    model = IdentityRep().train()
    start, target = images(2, seed=7), images(2, seed=8).flatten(1)
    syn.invert_representation(model, target, start, steps=2, step_size=0.1)
    assert model.calls and all(c == (False, False) for c in model.calls)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_inversion_non_finite_loss_is_an_error_naming_the_step_size():
    model = IdentityRep()
    target = images(2, seed=8).flatten(1)
    target[1, 3] = float("nan")
    with pytest.raises(AdvFeaturesError, match=r"^representation inversion produced non-finite losses; lower "
                                               r"synthesis\.inversion\.step_size$"):
        syn.invert_representation(model, target, images(2), steps=1, step_size=0.1)


# ----------------------------------------------------------------------------- seeded draws


def test_random_other_index_is_uniform_over_the_other_images():
    n, reps = 4, 3000
    idx = torch.zeros(reps, dtype=torch.long)
    other = syn.random_other_index(idx, n, make_generator(0))
    counts = torch.bincount(other, minlength=n)
    assert counts[0] == 0 and counts.sum() == reps
    assert (counts[1:] - reps / 3).abs().max() < 150  # ~5 sd of a binomial(3000, 1/3)
    # two images: always the other one; seeded: same seed same draw, another seed another
    assert torch.equal(syn.random_other_index(torch.tensor([0, 1, 1, 0]), 2, make_generator(1)),
                       torch.tensor([1, 0, 0, 1]))
    big = torch.arange(100)
    a, b = (syn.random_other_index(big, 100, make_generator(s)) for s in (5, 5))
    assert torch.equal(a, b) and not torch.equal(a, syn.random_other_index(big, 100, make_generator(6)))


def test_random_other_index_needs_two_images():
    for n in (0, 1):
        with pytest.raises(AdvFeaturesError, match=r"^random_image start needs at least 2 training images; "
                                                   r"use start: noise$"):
            syn.random_other_index(torch.tensor([0]), n, make_generator(0))


def test_random_image_start_is_another_training_image_from_the_generator():
    x = images(10, seed=9)
    index = torch.tensor([2, 3, 4, 7])
    x0, src = syn.start_points(x, index, syn.InversionConfig(), make_generator(11))
    expect = syn.random_other_index(index, 10, make_generator(11))
    assert torch.equal(src, expect) and (src != index).all()
    assert torch.equal(x0, x[expect])


def test_noise_start_is_clamped_grey_plus_scaled_noise_of_the_generator():
    x = images(10, seed=9, dtype=torch.float64)
    index = torch.tensor([1, 5, 6])
    for std in (0.05, 2.0):
        x0, src = syn.start_points(x, index, syn.InversionConfig(start="noise", noise_std=std), make_generator(4))
        noise = torch.randn((3, 1, 3, 3), generator=make_generator(4), dtype=torch.float64)
        torch.testing.assert_close(x0, (0.5 + std * noise).clamp(0, 1), rtol=0, atol=1e-12)
        assert x0.dtype == torch.float64 and x0.min() >= 0 and x0.max() <= 1
        assert torch.equal(src, torch.full((3,), -1))
    assert x0.min() == 0 and x0.max() == 1  # std 2 reaches both bounds


def test_choose_targets_messages_name_the_kind_and_value():
    y = torch.tensor([0, 1])
    for n in (0, 1):
        with pytest.raises(AdvFeaturesError, match=rf"^d_rand needs at least 2 classes, got {n}$"):
            syn.choose_targets(y, n, "d_rand", make_generator(0))
    with pytest.raises(AdvFeaturesError, match=r"^choose_targets: kind 'd_r' is not d_rand or d_det$"):
        syn.choose_targets(y, C, "d_r", make_generator(0))


def test_d_rand_targets_are_uniform_over_the_other_classes_and_seeded():
    y = torch.full((3000,), 2)
    t = syn.choose_targets(y, 4, "d_rand", make_generator(0))
    counts = torch.bincount(t, minlength=4)
    assert counts[2] == 0 and (counts[[0, 1, 3]] - 1000).abs().max() < 150
    assert torch.equal(syn.choose_targets(torch.tensor([0, 1, 1]), 2, "d_rand", make_generator(3)),
                       torch.tensor([1, 0, 0]))
    y = torch.arange(60) % C
    assert torch.equal(syn.choose_targets(y, C, "d_rand", make_generator(8)),
                       syn.choose_targets(y, C, "d_rand", make_generator(8)))
    assert not torch.equal(syn.choose_targets(y, C, "d_rand", make_generator(8)),
                           syn.choose_targets(y, C, "d_rand", make_generator(9)))
    assert torch.equal(syn.choose_targets(torch.tensor([0, 1]), 2, "d_det", None), torch.tensor([1, 0]))


def test_draws_are_the_seeded_offsets_added_to_the_row():
    """The published sets are reproducible from their seed: the start image and the d_rand target
    are the row's own index / class plus an offset in [1, n) drawn from the chunk's generator."""
    index = torch.arange(20)
    off = torch.randint(1, 20, (20,), generator=make_generator(31))
    assert torch.equal(syn.random_other_index(index, 20, make_generator(31)), (index + off) % 20)
    y = torch.arange(30) % 5
    off = torch.randint(1, 5, (30,), generator=make_generator(32))
    assert torch.equal(syn.choose_targets(y, 5, "d_rand", make_generator(32)), (y + off) % 5)


# ----------------------------------------------------------------------------- targeted PGD


def reference_targeted_l2(model, x, t, eps, alpha, steps):
    """Targeted L2 PGD from x itself: descend the summed cross-entropy towards t."""
    xa = x.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa).double(), t, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            xa = xa - alpha * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            d = xa - x
            d = d * (eps / d.flatten(1).norm(dim=1)).clamp(max=1).view(-1, 1, 1, 1)
            xa = (x + d).clamp(0, 1)
    return xa.detach()


def test_targeted_examples_is_targeted_l2_pgd_from_the_image():
    model = IdentityRep()
    x = images(6, seed=12)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % C
    c = syn.TargetedConfig(eps=0.7, alpha=0.3, steps=5)
    out = syn.targeted_examples(model, x, t, c)
    torch.testing.assert_close(out, reference_targeted_l2(model, x, t, 0.7, 0.3, 5), rtol=0, atol=1e-5)
    delta = (out - x).flatten(1).norm(dim=1)
    assert (delta <= 0.7 + 1e-5).all() and (delta > 0.69).any()  # the eps ball is reached, not left
    with torch.no_grad():
        assert (F.cross_entropy(model(out), t, reduction="none") < F.cross_entropy(model(x), t, reduction="none")).all()


# ----------------------------------------------------------------------------- one chunk


def test_inversion_chunk_is_the_inversion_from_the_chunks_random_start():
    model = IdentityRep()
    x, y = images(10, seed=13), torch.arange(10) % C
    index = torch.tensor([3, 4, 5, 6])
    c = cfg("d_r")
    out = syn.synthesize_chunk(c, model, x, y, index, C, make_generator(21))
    x0 = x[syn.random_other_index(index, 10, make_generator(21))]
    xs, dist = syn.invert_representation(model, x[index].flatten(1), x0, steps=3, step_size=0.05)
    torch.testing.assert_close(out["x"], xs, rtol=0, atol=1e-6)
    torch.testing.assert_close(out["rep_distance"], dist, rtol=0, atol=1e-6)
    assert torch.equal(out["y"], y[index]) and torch.equal(out["y_source"], y[index])
    with torch.no_grad():
        assert torch.equal(out["source_pred"], model(out["x"]).argmax(1))
    # the noise start draws its noise from the same generator
    n = syn.synthesize_chunk(cfg("d_nr", inversion={"steps": 0, "start": "noise", "noise_std": 0.3}),
                             model, x, y, index, C, make_generator(21))
    x0, _ = syn.start_points(x, index, syn.InversionConfig(start="noise", noise_std=0.3), make_generator(21))
    torch.testing.assert_close(n["x"], x0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", syn.TARGETED_KINDS)
def test_targeted_chunk_relabels_as_the_target_and_measures_from_the_source(kind):
    model = IdentityRep()
    x, y = images(10, seed=14), torch.arange(10) % C
    index = torch.tensor([0, 2, 5, 9])
    out = syn.synthesize_chunk(cfg(kind), model, x, y, index, C, make_generator(22))
    t = syn.choose_targets(y[index], C, kind, make_generator(22))
    assert torch.equal(out["y"], t) and (t != y[index]).all()
    assert torch.equal(out["y_source"], y[index]) and torch.equal(out["source_index"], index)
    torch.testing.assert_close(out["x"], reference_targeted_l2(model, x[index], t, 0.5, 0.2, 4), rtol=0, atol=1e-5)
    expect = (out["x"] - x[index]).flatten(1).norm(dim=1) / x[index].flatten(1).norm(dim=1)
    torch.testing.assert_close(out["rep_distance"], expect, rtol=1e-5, atol=1e-7)
    assert (out["rep_distance"] > 0).all()
    with torch.no_grad():
        assert torch.equal(out["source_pred"], model(out["x"]).argmax(1))


@pytest.mark.parametrize("kind", syn.KINDS)
def test_chunk_arrays_types_and_frozen_model(kind):
    """float64 images and model, an int32 index (and int32 labels where no cross-entropy takes
    them as targets): the arrays come back as the synthetic layout's float32 / int64, on the CPU;
    the model ran in eval mode with frozen weights."""
    model = IdentityRep(dtype=torch.float64).train()
    x, y = images(8, seed=15, dtype=torch.float64), torch.arange(8) % C
    if kind in syn.INVERSION_KINDS:
        y = y.int()
    index = torch.tensor([1, 2, 3], dtype=torch.int32)
    out = syn.synthesize_chunk(cfg(kind), model, x, y, index, C, make_generator(1))
    assert set(out) == set(syn.ARRAYS)
    want = {"x": torch.float32, "y": torch.int64, "source_index": torch.int64, "y_source": torch.int64,
            "source_pred": torch.int64, "rep_distance": torch.float32}
    assert {k: v.dtype for k, v in out.items()} == want
    assert all(v.device.type == "cpu" and not v.requires_grad for v in out.values())
    assert out["x"].shape == (3, 1, 3, 3) and out["rep_distance"].shape == (3,)
    assert model.calls and all(c == (False, False) for c in model.calls)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_chunk_split_into_passes_gives_the_rows_of_one_pass(monkeypatch):
    model = IdentityRep()
    x, y = images(9, seed=16), torch.arange(9) % C
    index = torch.arange(1, 8)
    for kind in syn.KINDS:
        whole = syn.synthesize_chunk(cfg(kind), model, x, y, index, C, make_generator(2))
        monkeypatch.setattr(syn, "CPU_ROWS_PER_PASS", 2)
        split = syn.synthesize_chunk(cfg(kind), model, x, y, index, C, make_generator(2))
        monkeypatch.setattr(syn, "CPU_ROWS_PER_PASS", 256)
        torch.testing.assert_close(split["x"], whole["x"], rtol=0, atol=1e-5)
        torch.testing.assert_close(split["rep_distance"], whole["rep_distance"], rtol=0, atol=1e-5)
        assert torch.equal(split["y"], whole["y"])


# ----------------------------------------------------------------------------- the whole set


def test_chunk_k_is_seeded_by_its_own_derived_seed(tmp_path):
    model = IdentityRep()
    x, y = images(10, seed=17), torch.arange(10) % C
    c = cfg("d_rand", seed=5)
    state = tmp_path / "runs" / "d_rand"  # folders made as needed
    out = syn.synthesize(c, model, x, y, C, state_dir=state, progress=False)
    assert torch.equal(out["source_index"], torch.arange(10))
    for k, rows in enumerate((slice(0, 4), slice(4, 8), slice(8, 10))):
        g = make_generator(derive_seed(5, "synthesis", "d_rand", k))
        assert torch.equal(out["y"][rows], syn.choose_targets(y[rows], C, "d_rand", g)), k
    assert sorted(p.name for p in state.iterdir()) == ["chunk_00000.pt", "chunk_00001.pt", "chunk_00002.pt"]
    assert {k: v.shape[0] for k, v in out.items()} == dict.fromkeys(syn.ARRAYS, 10)


def test_stop_after_chunk_and_reuse_is_logged(tmp_path, caplog):
    model = IdentityRep()
    x, y = images(10, seed=17), torch.arange(10) % C
    c = cfg("d_det")
    assert syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "s", progress=False, stop_after_chunk=1) is None
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["chunk_00000.pt"]
    assert syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "s", progress=False, stop_after_chunk=2) is None
    assert len(list((tmp_path / "s").iterdir())) == 2
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        out = syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "s", progress=False)
    assert f"reused 2 of 3 finished chunks from {tmp_path / 's'}" in caplog.messages
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        fresh = syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "f", progress=False)
    assert not any("reused" in m for m in caplog.messages)
    for name in syn.ARRAYS:
        assert torch.equal(out[name], fresh[name]), name


def test_progress_is_on_by_default_one_ascii_line_per_chunk_with_its_numbers(tmp_path, caplog):
    model = IdentityRep()
    x, y = images(8, seed=18), torch.arange(8) % C
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        out = syn.synthesize(cfg("d_det"), model, x, y, C, state_dir=tmp_path)  # progress by default
    lines = [m for m in caplog.messages if m.startswith("synthesize d_det: ")]
    assert lines and all(m.isascii() and m == m.strip() for m in lines)  # '#' bars: log files stay ASCII
    assert all(re.search(r"chunk/s|s/chunk", m) for m in lines[1:])
    for k, rows in ((1, slice(0, 4)), (2, slice(4, 8))):  # chunk k's line: k of 2 done, chunk k's numbers
        hit = float((out["source_pred"][rows] == out["y"][rows]).float().mean())
        line = next(m for m in lines if f" {k}/2 " in m)
        assert f"rep_dist={float(out['rep_distance'][rows].mean()):.3f}" in line and f"hit={hit:.3f}" in line
    hits = [float((out["source_pred"][r] == out["y"][r]).float().mean()) for r in (slice(0, 4), slice(4, 8))]
    assert hits[0] != hits[1] and 0.5 not in hits[1:]  # the chunks' hit rates tell == from != apart
    assert not any(" 0/2 " in m and "hit=" in m for m in lines)  # no postfix before a chunk is done
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        syn.synthesize(cfg("d_det"), model, x, y, C, state_dir=tmp_path / "q", progress=False)
    assert not any(m.startswith("synthesize") for m in caplog.messages)


def test_log_stream_drops_blank_writes(caplog):
    s = syn._LogStream()
    with caplog.at_level(logging.INFO, logger="advfeatures"):
        s.write("\r  \n")
        s.write("\rsynthesize d_r: 50%\n")
        s.write("\r XsX \n")
        s.flush()
    assert caplog.messages == ["synthesize d_r: 50%", "XsX"]


def test_foreign_or_incomplete_chunk_files_are_redone(tmp_path):
    model = IdentityRep()
    x, y = images(8, seed=19), torch.arange(8) % C
    c = cfg("d_rand")
    fresh = syn.synthesize(c, model, x, y, C, state_dir=tmp_path / "fresh", progress=False)
    fp = syn.fingerprint(c, model, x, y)
    d = tmp_path / "s"
    d.mkdir()
    (d / "chunk_00000.pt").write_bytes(b"not a torch file")
    bad = {k: torch.zeros_like(v[:4]) for k, v in fresh.items()}
    torch.save({"fingerprint": fp, "arrays": {k: v for k, v in bad.items() if k != "rep_distance"}},
               d / "chunk_00001.pt")
    assert syn._load_chunk(d / "chunk_00000.pt", fp) is None and syn._load_chunk(d / "chunk_00001.pt", fp) is None
    torch.save({"fingerprint": "0" * 16, "arrays": bad}, d / "chunk_00001.pt")
    assert syn._load_chunk(d / "chunk_00001.pt", fp) is None
    torch.save({"fingerprint": fp, "arrays": bad}, d / "chunk_00001.pt")
    assert syn._load_chunk(d / "chunk_00001.pt", fp).keys() == set(syn.ARRAYS)
    torch.save({"fingerprint": "0" * 16, "arrays": bad}, d / "chunk_00001.pt")
    out = syn.synthesize(c, model, x, y, C, state_dir=d, progress=False)
    for name in syn.ARRAYS:
        assert torch.equal(out[name], fresh[name]), name


class Foreign:
    """An object torch.load(weights_only=True) refuses to unpickle."""


def test_chunk_file_without_arrays_or_with_foreign_objects_is_not_loaded(tmp_path):
    arrays = {k: torch.zeros(2) for k in syn.ARRAYS}
    torch.save({"fingerprint": "f" * 16}, tmp_path / "no_arrays.pt")
    assert syn._load_chunk(tmp_path / "no_arrays.pt", "f" * 16) is None
    torch.save({"fingerprint": "f" * 16, "arrays": arrays, "note": Foreign()}, tmp_path / "foreign.pt")
    assert syn._load_chunk(tmp_path / "foreign.pt", "f" * 16) is None  # weights only: no code is unpickled
    torch.save({"fingerprint": "f" * 16, "arrays": arrays}, tmp_path / "good.pt")
    assert syn._load_chunk(tmp_path / "good.pt", "f" * 16).keys() == set(syn.ARRAYS)
    for i, obj in enumerate((torch.zeros(3), [1, 2], {"fingerprint": "f" * 16, "arrays": torch.zeros(2)})):
        torch.save(obj, tmp_path / f"not_a_chunk_{i}.pt")  # loadable, but no chunk: redone, no crash
        assert syn._load_chunk(tmp_path / f"not_a_chunk_{i}.pt", "f" * 16) is None


def test_fingerprint_follows_config_weights_and_data():
    model = IdentityRep()
    x, y = images(6, seed=20), torch.arange(6) % C
    base = syn.fingerprint(cfg("d_r"), model, x, y)
    assert len(base) == 16 and int(base, 16) >= 0
    assert syn.fingerprint(cfg("d_r"), IdentityRep(), x.clone(), y.clone()) == base
    changed = [
        syn.fingerprint(cfg("d_r", seed=4), model, x, y),
        syn.fingerprint(cfg("d_r", batch_size=5), model, x, y),
        syn.fingerprint(cfg("d_r", inversion={"steps": 4, "step_size": 0.05}), model, x, y),
        syn.fingerprint(cfg("d_nr"), model, x, y),
        syn.fingerprint(cfg("d_r"), IdentityRep(seed=1), x, y),
        syn.fingerprint(cfg("d_r"), model, x.flip(0), y),
        syn.fingerprint(cfg("d_r"), model, x, y.flip(0)),
        syn.fingerprint(cfg("d_r"), model, x.reshape(6, 1, 9, 1), y),  # same bytes, another shape
        syn.fingerprint(cfg("d_r"), model, x.view(torch.int32), y),  # same bytes and shape, another dtype
    ]
    assert len(set(changed)) == len(changed) and base not in changed
    # the other family's settings do not change a set
    assert syn.fingerprint(cfg("d_r", targeted={"eps": 9.0}), model, x, y) == base
    # empty data hash without error, apart from non-empty data
    assert syn.fingerprint(cfg("d_r"), model, x[:0], y[:0]) != base


def test_fingerprint_hashes_the_weights_names():
    a, b = IdentityRep(), IdentityRep()
    b.scale.data.fill_(2.0)
    assert syn.fingerprint(cfg("d_r"), a, images(2), torch.zeros(2, dtype=torch.long)) != syn.fingerprint(
        cfg("d_r"), b, images(2), torch.zeros(2, dtype=torch.long))

    class Renamed(torch.nn.Module):  # the same tensors under other names
        def __init__(self, m):
            super().__init__()
            self.other_scale = m.scale
            self.other_head = m.head

    x, y = images(2), torch.zeros(2, dtype=torch.long)
    assert syn.fingerprint(cfg("d_r"), a, x, y) != syn.fingerprint(cfg("d_r"), Renamed(a), x, y)


def test_clear_state_deletes_only_the_chunks(tmp_path):
    for name in ("chunk_00000.pt", "chunk_00001.pt", "keep.pt", "chunk_notes.txt"):
        (tmp_path / name).write_text("x")
    syn.clear_state(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk_notes.txt", "keep.pt"]


def test_synthetic_dataset_takes_the_train_split_and_keeps_the_rest():
    x = images(6, seed=21)
    y = torch.arange(6) % C
    base = Dataset("tiny", x, y, x[:2] * 0.5, y[:2], ["a", "b", "c"], [0.4], [0.2])
    d = syn.synthetic_dataset(base, x.double().flip(0), (y + 1).int() % C, "d_det")
    assert d.name == "tiny" and d.classes == ["a", "b", "c"] and d.mean == [0.4] and d.std == [0.2]
    assert d.x_train.dtype == torch.float32 and torch.equal(d.x_train, x.flip(0))
    assert d.y_train.dtype == torch.int64 and torch.equal(d.y_train, (y + 1) % C)
    assert d.x_test is base.x_test and d.y_test is base.y_test
    with pytest.raises(AdvFeaturesError, match=r"^synthetic set d_rand: image shape \(1, 4, 4\) differs from the "
                                               r"dataset's \(1, 3, 3\); delete it and rerun synthesize$"):
        syn.synthetic_dataset(base, torch.zeros(2, 1, 4, 4), y[:2], "d_rand")


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="deliberate: needs a CUDA device (CI has none; it runs on a GPU machine, e.g. make gpu-check)")
def test_cuda_data_with_the_cpu_generator_gives_the_cpu_draws_and_rows():
    """Synthesis draws from a CPU generator whatever the device: on CUDA data the draws are made
    on the CPU and moved, so the rows are the CPU run's (floats up to rounding)."""
    cuda = torch.device("cuda")
    x, y = images(10, seed=23), torch.arange(10) % C
    index = torch.tensor([1, 4, 6, 8])
    other = syn.random_other_index(index.to(cuda), 10, make_generator(3))
    assert other.device.type == "cuda" and torch.equal(other.cpu(), syn.random_other_index(index, 10, make_generator(3)))
    t = syn.choose_targets(y.to(cuda), C, "d_rand", make_generator(3))
    assert t.device.type == "cuda" and torch.equal(t.cpu(), syn.choose_targets(y, C, "d_rand", make_generator(3)))
    for start in syn.START_POINTS:
        c = syn.InversionConfig(start=start)
        x0, src = syn.start_points(x.to(cuda), index.to(cuda), c, make_generator(3))
        x0_cpu, src_cpu = syn.start_points(x, index, c, make_generator(3))
        assert x0.device.type == "cuda" and src.device.type == "cuda"
        torch.testing.assert_close(x0.cpu(), x0_cpu, rtol=0, atol=1e-6)
        assert torch.equal(src.cpu(), src_cpu)
    overrides = {"d_nr": {"inversion": {"steps": 3, "step_size": 0.05, "start": "noise"}}}
    for kind in syn.KINDS:
        c = cfg(kind, **overrides.get(kind, {}))
        on_cpu = syn.synthesize_chunk(c, IdentityRep(), x, y, index, C, make_generator(4))
        on_gpu = syn.synthesize_chunk(c, IdentityRep().to(cuda), x, y, index, C, make_generator(4))
        for name in ("x", "rep_distance"):
            assert on_gpu[name].device.type == "cpu"
            torch.testing.assert_close(on_gpu[name], on_cpu[name], rtol=0, atol=1e-4)
        for name in ("y", "source_index", "y_source"):
            assert torch.equal(on_gpu[name], on_cpu[name]), (kind, name)
