"""Known answers for the KDE and binning estimators (advfeatures.mutual_info)."""

from __future__ import annotations

import math

import pytest
import torch

from advfeatures import mutual_info as mi
from advfeatures.utils import AdvFeaturesError

torch.set_num_threads(1)


def _gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _labels(n, k=3):
    return torch.arange(n) % k


def test_identical_activations_carry_no_information():
    t = torch.ones(40, 7) * 3.2
    y = _labels(40)
    for name, (i_xt, i_ty) in mi.kde_mi(t, y, 0.1).items():
        assert abs(i_xt) < 1e-9, name
        assert abs(i_ty) < 1e-9, name
    assert mi.binning_mi(t, y, 0.5) == (0.0, 0.0)


def test_well_separated_points_reach_log2_n():
    n = 32
    t = torch.eye(n) * 100.0  # pairwise distances 100*sqrt(2) >> noise std
    y = _labels(n, 4)
    est = mi.kde_mi(t, y, 0.1)
    for name in ("kde_upper", "kde_lower"):
        assert est[name][0] == pytest.approx(math.log2(n), abs=1e-6)
        # T determines X and so Y: I(T;Y) = H(Y) = log2 4
        assert est[name][1] == pytest.approx(2.0, abs=1e-6)
    assert mi.binning_mi(t, y, 0.5) == pytest.approx((math.log2(n), 2.0))


def test_lower_bound_below_upper_bound():
    g = _gen(1)
    for scale in (0.05, 0.3, 1.0, 3.0):
        t = torch.randn(60, 5, generator=g) * scale
        y = torch.randint(0, 4, (60,), generator=g)
        est = mi.kde_mi(t, y, 0.1)
        assert est["kde_lower"][0] <= est["kde_upper"][0] + 1e-12
        assert 0.0 <= est["kde_lower"][0] <= math.log2(60) + 1e-9


def test_invariant_to_sample_order():
    g = _gen(2)
    t = torch.randn(50, 9, generator=g)
    y = torch.randint(0, 3, (50,), generator=g)
    perm = torch.randperm(50, generator=g)
    a, b = mi.kde_mi(t, y), mi.kde_mi(t[perm], y[perm])
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-10)
    assert mi.binning_mi(t, y) == pytest.approx(mi.binning_mi(t[perm], y[perm]), abs=1e-12)


def test_binning_bounded_by_log2_n_and_label_entropy():
    g = _gen(3)
    y = torch.tensor([0] * 20 + [1] * 10 + [2] * 5)
    p = torch.tensor([20, 10, 5], dtype=torch.float64) / 35
    h_y = float(-(p * p.log2()).sum())
    for width in (0.05, 0.5, 2.0):
        t = torch.randn(35, 6, generator=g)
        i_xt, i_ty = mi.binning_mi(t, y, width)
        assert 0.0 <= i_xt <= math.log2(35) + 1e-12
        assert -1e-12 <= i_ty <= min(h_y, i_xt) + 1e-12


def test_bins_follow_activation_range():
    """Unbounded ReLU activations: values beyond [-1, 1] still land in distinct bins."""
    t = torch.tensor([[0.0], [7.3], [12.6], [40.1]])
    assert mi.bin_patterns(t, 0.5).unique().numel() == 4


@pytest.mark.parametrize("n,d,rows", [(37, 11, 5), (64, 300, 64), (50, 3, 1)])
def test_chunked_kde_matches_plain_reference(n, d, rows):
    g = _gen(n + d)
    # ReLU-like activations at a scale where the bounds are far from both 0 and log2 N
    t = torch.relu(torch.randn(n, d, generator=g)) * (0.8 / math.sqrt(d))
    y = torch.randint(0, 4, (n,), generator=g)
    ref = mi.kde_mi_reference(t, y, 0.1)
    got = mi.kde_mi(t, y, 0.1, block_rows=rows)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-6), k
    assert 0.05 < ref["kde_upper"][0] < math.log2(n) - 0.05  # a non-trivial case


def test_chunked_binning_matches_plain_reference():
    g = _gen(5)
    t = torch.relu(torch.randn(80, 40, generator=g))
    y = torch.randint(0, 5, (80,), generator=g)
    ref = mi.binning_mi_reference(t, y, 0.5)
    # force tiny column chunks so that group ids are refined many times
    ids = mi.bin_patterns(t, 0.5, max_chunk_mib=80 * 24 * 3 / 2**20)
    ids_full = mi.bin_patterns(t, 0.5)
    # the same partition of the samples into patterns
    pairs = set(zip(ids.tolist(), ids_full.tolist()))
    assert len(pairs) == ids.unique().numel() == ids_full.unique().numel()
    assert mi.binning_mi(t, y, 0.5) == pytest.approx(ref, abs=1e-6)
    assert 0 < ref[0] < math.log2(80)  # some but not all patterns collide


def test_bad_settings_raise_one_line_errors():
    t, y = torch.zeros(4, 2), torch.zeros(4)
    with pytest.raises(AdvFeaturesError, match="noise_var"):
        mi.kde_mi(t, y, 0.0)
    with pytest.raises(AdvFeaturesError, match="bin_width"):
        mi.binning_mi(t, y, -1.0)
    with pytest.raises(AdvFeaturesError, match="labels"):
        mi.kde_mi(t, torch.zeros(3))
