"""Saturation and patch shuffling (advfeatures.distortions)."""

from __future__ import annotations

import pytest
import torch

from advfeatures.distortions import (
    distort,
    patch_permutations,
    patch_shuffle,
    saturate,
    shuffle_region,
)
from advfeatures.utils import AdvFeaturesError

torch.set_num_threads(1)


def _images(n=3, c=2, h=28, w=28, seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g)


def test_saturation_p2_is_identity_and_large_p_binarises():
    x = _images()
    assert torch.equal(saturate(x, 2), x)
    s = saturate(x, 1024)
    assert s.min() >= 0 and s.max() <= 1
    away = (x - 0.5).abs() > 0.05
    assert torch.all((s[away] - 0.5).abs() > 0.49)  # pushed to 0 or 1
    # monotone in the level: higher p -> further from mid-grey
    d8, d64 = (saturate(x, 8) - 0.5).abs(), (saturate(x, 64) - 0.5).abs()
    assert torch.all(d64 >= d8 - 1e-6)
    # the formula, at one pixel: v=0.75 -> sign(0.5)*0.5^(2/8)*0.5+0.5
    assert saturate(torch.tensor([0.75]), 8).item() == pytest.approx(0.5 ** 0.25 * 0.5 + 0.5)


@pytest.mark.parametrize("k", [0, 1])
def test_shuffle_k0_is_identity(k):
    x = _images()
    assert torch.equal(patch_shuffle(x, k), x)


@pytest.mark.parametrize("k,h", [(2, 28), (4, 28), (8, 28), (8, 32), (3, 10)])
def test_shuffle_is_a_permutation_of_patches(k, h):
    x = _images(h=h, w=h)
    g = torch.Generator()
    g.manual_seed(1)
    perm = patch_permutations(len(x), k, g)
    out = patch_shuffle(x, k, perm=perm)
    rs, cs = shuffle_region(h, h, k)
    ph = (rs.stop - rs.start) // k

    def patch(img, j):
        r, c = divmod(j, k)
        return img[:, rs.start + r * ph : rs.start + (r + 1) * ph, cs.start + c * ph : cs.start + (c + 1) * ph]

    for i in range(len(x)):
        for j in range(k * k):
            assert torch.equal(patch(out[i], j), patch(x[i], int(perm[i, j])))
    # pixels outside the grid (border when h % k != 0) stay where they were
    mask = torch.ones(h, h, dtype=torch.bool)
    mask[rs, cs] = False
    assert torch.equal(out[..., mask], x[..., mask])
    # same multiset of pixel values; and the image really changed
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert not torch.equal(out, x)


def test_shuffle_is_seeded():
    x = _images()

    def run(seed):
        g = torch.Generator()
        g.manual_seed(seed)
        return patch_shuffle(x, 4, generator=g)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_bad_levels_raise():
    x = _images()
    with pytest.raises(AdvFeaturesError, match="saturation"):
        saturate(x, 0)
    with pytest.raises(AdvFeaturesError, match="blur"):
        distort(x, "blur", 2)
    with pytest.raises(AdvFeaturesError, match="grid"):
        patch_shuffle(x, 30)
