"""Texture and shape distortions of Zhang et al. (after Zhang & Zhu 2019), on images in [0, 1].

- :func:`saturate` (texture): ``v' = sign(2v-1) |2v-1|^(2/p) / 2 + 1/2``, clipped to [0, 1];
  ``p = 2`` is the identity, large ``p`` pushes every pixel towards 0 or 1.
- :func:`patch_shuffle` (shape): split the image into a ``k x k`` grid of equal patches
  (k patches per side), permute the patches with a seeded random permutation per image and
  reassemble; ``k = 0`` (or 1) leaves the image unchanged.

Sizes not divisible by k (28-pixel MNIST with k = 8): the grid covers the central
``(H - H mod k) x (W - W mod k)`` pixels, split evenly (k = 8 on 28 x 28: 3 x 3-pixel patches
over the central 24 x 24), and the leftover border (``(H mod k) // 2`` rows on top, the rest at
the bottom; columns likewise) stays in place.  This keeps every patch the same size, so the
result is exactly a permutation of patches and the model still sees H x W inputs; on MNIST the
border is background.  Both distortions are applied after the attack, to clean and
adversarial inputs alike.
"""

from __future__ import annotations

import torch

from advfeatures.utils import AdvFeaturesError

SATURATION_LEVELS = (2, 8, 16, 64, 1024)
SHUFFLE_LEVELS = (0, 2, 4, 8)
KINDS = ("saturation", "shuffle")


def saturate(x: torch.Tensor, p: float) -> torch.Tensor:
    """Saturation level ``p`` (> 0) of images in [0, 1]."""
    if not p > 0:
        raise AdvFeaturesError(f"saturation level must be > 0 (mutual_info.distortions.saturation), got {p}")
    if p == 2:
        return x.clone()
    v = 2 * x - 1
    return (torch.sign(v) * v.abs().pow(2.0 / p) * 0.5 + 0.5).clamp(0, 1)


def shuffle_region(h: int, w: int, k: int) -> tuple[slice, slice]:
    """The rows and columns that the k x k grid covers (central, a multiple of k)."""
    hh, ww = h - h % k, w - w % k
    top, left = (h % k) // 2, (w % k) // 2
    return slice(top, top + hh), slice(left, left + ww)


def patch_permutations(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One seeded permutation of the ``k*k`` patches per image: [n, k*k] int64."""
    return torch.rand(n, k * k, generator=generator).argsort(dim=1)


def patch_shuffle(
    x: torch.Tensor, k: int, generator: torch.Generator | None = None, perm: torch.Tensor | None = None
) -> torch.Tensor:
    """Shuffle a ``k x k`` grid of patches of each image in ``x`` [N, C, H, W].

    ``perm`` [N, k*k] (from :func:`patch_permutations`) fixes the permutations, so that clean and
    adversarial versions of one image get the same shuffle; otherwise they are drawn from
    ``generator``.  Output patch ``j`` is input patch ``perm[:, j]`` (row-major grid order).
    """
    if k < 0:
        raise AdvFeaturesError(f"patch-shuffle grid size must be >= 0 (mutual_info.distortions.shuffle), got {k}")
    if k <= 1:
        return x.clone()
    n, c, h, w = x.shape
    if h < k or w < k:
        raise AdvFeaturesError(f"cannot split {h}x{w} images into a {k}x{k} grid of patches")
    if perm is None:
        perm = patch_permutations(n, k, generator)
    perm = perm.to(x.device)
    if perm.shape != (n, k * k):
        raise AdvFeaturesError(f"patch permutation has shape {tuple(perm.shape)}, expected {(n, k * k)}")
    rs, cs = shuffle_region(h, w, k)
    region = x[:, :, rs, cs]
    ph, pw = region.shape[2] // k, region.shape[3] // k
    patches = region.reshape(n, c, k, ph, k, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, k * k, c, ph, pw)
    idx = perm.view(n, k * k, 1, 1, 1).expand(-1, -1, c, ph, pw)
    shuffled = patches.gather(1, idx)
    out = x.clone()
    out[:, :, rs, cs] = shuffled.reshape(n, k, k, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, k * ph, k * pw)
    return out


def distort(x: torch.Tensor, kind: str, level: int | float, perm: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply distortion ``kind`` (saturation | shuffle) at ``level``."""
    if kind == "saturation":
        return saturate(x, level)
    if kind == "shuffle":
        return patch_shuffle(x, int(level), generator=generator, perm=perm)
    raise AdvFeaturesError(f"unknown distortion {kind!r}; use one of {KINDS}")
