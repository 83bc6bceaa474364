"""Dataset sources: torchvision readers on local fakes in their real on-disk formats, the offline
error, imagefolder, stratified seeded subsets and the HDF5 round trip."""

from __future__ import annotations

import pickle
import socket
import struct
import time

import numpy as np
import pytest
import torch

from advfeatures import data
from advfeatures.utils import AdvFeaturesError

torch.set_num_threads(1)


def images(n: int, c: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def labels(n: int, seed: int, k: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, size=n).astype(np.int64)


@pytest.fixture
def no_md5(monkeypatch):
    """Fake files cannot match torchvision's md5 sums; everything else is torchvision's own code."""
    import torchvision.datasets.utils as tvu

    monkeypatch.setattr(tvu, "check_md5", lambda *a, **k: True)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach a download host fails the test."""

    def forbidden(url, timeout=None):
        raise AssertionError(f"network access attempted: {url}")

    monkeypatch.setattr(data, "host_reachable", forbidden)


# ----------------------------------------------------------------------------- fakes on disk


def write_idx(path, x: np.ndarray | None = None, y: np.ndarray | None = None) -> None:
    """MNIST idx format: big-endian magic (0x0803 images / 0x0801 labels), sizes, raw bytes."""
    with open(path, "wb") as f:
        if x is not None:
            f.write(struct.pack(">iiii", 0x0803, *x.shape) + x.astype(np.uint8).tobytes())
        else:
            f.write(struct.pack(">ii", 0x0801, len(y)) + y.astype(np.uint8).tobytes())


def fake_mnist(root, folder, xtr, ytr, xte, yte):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", x=xtr[:, 0])
    write_idx(raw / "train-labels-idx1-ubyte", y=ytr)
    write_idx(raw / "t10k-images-idx3-ubyte", x=xte[:, 0])
    write_idx(raw / "t10k-labels-idx1-ubyte", y=yte)


def fake_cifar10(root, xtr, ytr, xte, yte, names):
    """cifar-10-batches-py: five train pickles + test_batch, rows = C*H*W (R, G, B planes)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    parts = np.array_split(np.arange(len(ytr)), 5)
    for i, idx in enumerate(parts, 1):
        batch = {"data": xtr[idx].reshape(len(idx), -1), "labels": ytr[idx].tolist()}
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    batch = {"data": xte.reshape(len(xte), -1), "labels": yte.tolist()}
    (d / "test_batch").write_bytes(pickle.dumps(batch))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def fake_svhn(root, xtr, ytr, xte, yte):
    """SVHN .mat files: X is H x W x C x N, y is N x 1 with digit 0 stored as label 10."""
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train_32x32.mat", xtr, ytr), ("test_32x32.mat", xte, yte)):
        y_file = np.where(y == 0, 10, y).astype(np.uint8)[:, None]
        savemat(root / name, {"X": x.transpose(2, 3, 1, 0), "y": y_file})


def fake_stl10(root, xtr, ytr, xte, yte, names):
    """stl10_binary: column-major 3x96x96 images, labels 1..10, plus the unlabeled file."""
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        (d / f"{split}_X.bin").write_bytes(x.transpose(0, 1, 3, 2).tobytes())
        (d / f"{split}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())
    (d / "unlabeled_X.bin").write_bytes(b"")
    (d / "class_names.txt").write_text("\n".join(names) + "\n")


# ----------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like_reads_idx_files(tmp_path, no_network, name, folder):
    xtr, ytr = images(12, 1, 28, 28, 1), labels(12, 2)
    xte, yte = images(5, 1, 28, 28, 3), labels(5, 4)
    fake_mnist(tmp_path, folder, xtr, ytr, xte, yte)
    raw = data.SOURCES[name](tmp_path, True, 0)  # download=True, but files exist: no network
    np.testing.assert_array_equal(raw.train.x, xtr)
    np.testing.assert_array_equal(raw.test.x, xte)
    np.testing.assert_array_equal(raw.train.y, ytr)
    np.testing.assert_array_equal(raw.test.y, yte)
    assert raw.train.x.dtype == np.uint8 and raw.train.y.dtype == np.int64
    assert len(raw.classes) == 10
    if name == "mnist":
        assert raw.classes == [str(i) for i in range(10)]
    else:
        assert raw.classes[0] == "T-shirt/top"


def test_cifar10_reads_pickled_batches(tmp_path, no_md5, no_network):
    names = [f"class{i}" for i in range(10)]
    xtr, ytr = images(10, 3, 32, 32, 5), labels(10, 6)
    xte, yte = images(4, 3, 32, 32, 7), labels(4, 8)
    fake_cifar10(tmp_path, xtr, ytr, xte, yte, names)
    raw = data.cifar10(tmp_path, False, 0)
    assert raw.train.x.shape == (10, 3, 32, 32) and raw.train.x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(raw.train.x, xtr)  # NHWC -> NCHW is exact
    np.testing.assert_array_equal(raw.test.x, xte)
    np.testing.assert_array_equal(raw.train.y, ytr)
    np.testing.assert_array_equal(raw.test.y, yte)
    assert raw.classes == names


def test_svhn_maps_label_10_to_digit_0(tmp_path, no_md5, no_network):
    xtr = images(8, 3, 32, 32, 9)
    ytr = np.array([0, 1, 2, 3, 0, 9, 5, 0], dtype=np.int64)
    xte, yte = images(3, 3, 32, 32, 10), np.array([0, 7, 9], dtype=np.int64)
    fake_svhn(tmp_path, xtr, ytr, xte, yte)
    raw = data.svhn(tmp_path, False, 0)
    np.testing.assert_array_equal(raw.train.x, xtr)  # H x W x C x N -> N x C x H x W
    np.testing.assert_array_equal(raw.train.y, ytr)  # the files store 10 for these zeros
    np.testing.assert_array_equal(raw.test.y, yte)
    assert raw.train.y.max() <= 9 and raw.classes == [str(i) for i in range(10)]


def test_stl10_reads_labelled_splits(tmp_path, no_md5, no_network):
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    xtr, ytr = images(3, 3, 96, 96, 11), labels(3, 12)
    xte, yte = images(2, 3, 96, 96, 13), labels(2, 14)
    fake_stl10(tmp_path, xtr, ytr, xte, yte, names)
    raw = data.stl10(tmp_path, False, 0)
    np.testing.assert_array_equal(raw.train.x, xtr)  # column-major file layout undone
    np.testing.assert_array_equal(raw.test.x, xte)
    np.testing.assert_array_equal(raw.train.y, ytr)  # 1..10 in the file -> 0..9
    np.testing.assert_array_equal(raw.test.y, yte)
    assert raw.classes == names


def test_offline_download_fails_at_once_with_one_line(tmp_path, monkeypatch):
    tried = []

    def unreachable(url, timeout=None):
        tried.append(url)
        return False

    monkeypatch.setattr(data, "host_reachable", unreachable)
    t0 = time.perf_counter()
    with pytest.raises(AdvFeaturesError) as err:
        data.cifar10(tmp_path / "raw", True, 0)
    assert time.perf_counter() - t0 < 2.0
    msg = str(err.value)
    assert "\n" not in msg
    for part in (
        "'cifar10'",
        "www.cs.toronto.edu",
        "mnist5k",
        "imagefolder",
        str(tmp_path / "raw"),
    ):
        assert part in msg
    assert tried == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]


def test_offline_mnist_names_every_mirror_host(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "host_reachable", lambda url, timeout=None: False)
    with pytest.raises(
        AdvFeaturesError, match=r"ossci-datasets\.s3\.amazonaws\.com.*yann\.lecun\.com"
    ):
        data.mnist(tmp_path, True, 0)


def test_missing_files_without_download_is_one_line(tmp_path, no_network):
    with pytest.raises(AdvFeaturesError, match=r"'svhn'.*download is false.*mnist5k.*imagefolder"):
        data.svhn(tmp_path, False, 0)


def test_host_reachable_against_local_sockets():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert data.host_reachable(f"http://127.0.0.1:{port}/x.tar.gz", timeout=2)
    # the port is closed now: connection refused, reported at once
    t0 = time.perf_counter()
    assert not data.host_reachable(f"http://127.0.0.1:{port}/x.tar.gz", timeout=2)
    assert time.perf_counter() - t0 < 2.0


def test_corrupt_cifar_files_are_named(tmp_path, no_md5, no_network):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (d / f).write_bytes(b"not a pickle")
    with pytest.raises(AdvFeaturesError, match=r"'cifar10'.*unreadable"):
        data.cifar10(tmp_path, True, 0)


# ----------------------------------------------------------------------------- imagefolder


def write_png(path, array: np.ndarray, mode: str | None = None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_imagefolder_rgb_with_sorted_classes(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("zebra", "ant", "mole"):  # sorted: ant=0, mole=1, zebra=2
            for i in range(n):
                a = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
                write_png(tmp_path / split / cls / f"img{i}.png", a)
                expected[(split, cls, i)] = a
    (tmp_path / "train" / "ant" / "notes.txt").write_text("ignored")
    raw = data.imagefolder(tmp_path, False, 0)
    assert raw.classes == ["ant", "mole", "zebra"]
    assert raw.train.x.shape == (9, 3, 6, 6) and raw.test.x.shape == (6, 3, 6, 6)
    np.testing.assert_array_equal(raw.train.y, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(raw.test.y, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(raw.train.x[3], expected[("train", "mole", 0)].transpose(2, 0, 1))
    np.testing.assert_array_equal(raw.test.x[5], expected[("test", "zebra", 1)].transpose(2, 0, 1))


def test_imagefolder_grayscale_and_mixed_modes(tmp_path):
    g = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    write_png(tmp_path / "train" / "a" / "0.png", g)
    write_png(tmp_path / "test" / "a" / "0.png", g)
    raw = data.imagefolder(tmp_path, False, 0)
    assert raw.train.x.shape == (1, 1, 4, 4)  # all grayscale: one channel
    np.testing.assert_array_equal(raw.train.x[0, 0], g)
    # one colour image makes the whole dataset RGB; the grayscale image is replicated
    c = np.zeros((4, 4, 3), dtype=np.uint8)
    c[..., 0] = 255
    write_png(tmp_path / "train" / "b" / "0.png", c)
    raw = data.imagefolder(tmp_path, False, 0)
    assert raw.train.x.shape == (2, 3, 4, 4)
    for ch in range(3):
        np.testing.assert_array_equal(raw.train.x[0, ch], g)
    np.testing.assert_array_equal(raw.train.x[1], c.transpose(2, 0, 1))


def test_imagefolder_names_the_odd_sized_file(tmp_path):
    for i in range(3):
        write_png(tmp_path / "train" / "a" / f"{i}.png", np.zeros((8, 8), np.uint8))
    odd = tmp_path / "test" / "a" / "odd.png"
    write_png(odd, np.zeros((8, 9), np.uint8))
    with pytest.raises(AdvFeaturesError) as err:
        data.imagefolder(tmp_path, False, 0)
    assert str(odd) in str(err.value) and "9x8" in str(err.value)
    for f in [odd, *(tmp_path / "train" / "a").iterdir()]:
        write_png(f, np.zeros((8, 9), np.uint8))  # one size, but not square
    with pytest.raises(AdvFeaturesError, match=r"images are 9x8.*square"):
        data.imagefolder(tmp_path, False, 0)


@pytest.mark.parametrize(
    "layout,pattern",
    [
        ({}, r"needs config key dataset.root"),
        ({"train/a/0.png"}, r"test: folder not found"),
        ({"train/a/0.png", "test/b/0.png"}, r"\['b'\] have no counterpart"),
        ({"train/a/0.png", "train/b/x.txt", "test/a/0.png"}, r"b: no .png"),
        ({"train/a/0.png", "train/a/bad.png", "test/a/0.png"}, r"bad.png: not a readable image"),
    ],
)
def test_imagefolder_bad_layouts(tmp_path, layout, pattern):
    for rel in layout:
        p = tmp_path / rel
        if rel.endswith("bad.png") or rel.endswith(".txt"):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"garbage")
        else:
            write_png(p, np.zeros((4, 4), np.uint8))
    with pytest.raises(AdvFeaturesError, match=pattern):
        data.imagefolder(tmp_path if layout else None, False, 0)


# ----------------------------------------------------------------------------- subsets, HDF5


def test_stratified_subset_keeps_proportions_and_is_seeded():
    y = np.repeat(np.arange(4), [400, 300, 200, 100])
    idx = data.stratified_subset(y, 100, seed=3)
    assert len(idx) == 100 and len(np.unique(idx)) == 100
    np.testing.assert_array_equal(np.bincount(y[idx]), [40, 30, 20, 10])
    np.testing.assert_array_equal(idx, data.stratified_subset(y, 100, seed=3))
    assert not np.array_equal(idx, data.stratified_subset(y, 100, seed=4))
    # uneven quotas: each class within one of its exact share, total exact
    idx = data.stratified_subset(y, 37, seed=0)
    share = np.bincount(y) / len(y) * 37
    assert len(idx) == 37 and np.all(np.abs(np.bincount(y[idx], minlength=4) - share) < 1)


def test_prepare_dataset_subsets_round_trip(tmp_path, no_md5, no_network):
    names = [f"c{i}" for i in range(10)]
    ytr = np.repeat(np.arange(10), 6)  # 60 train, 6 per class
    yte = np.repeat(np.arange(10), 3)
    xtr, xte = images(60, 3, 32, 32, 20), images(30, 3, 32, 32, 21)
    fake_cifar10(tmp_path / "raw", xtr, ytr, xte, yte, names)

    def prepare(out, seed):
        data.prepare_dataset(
            "cifar10",
            out,
            root=tmp_path / "raw",
            download=False,
            seed=seed,
            subset_train=20,
            subset_test=10,
        )
        return data.load_dataset(out)

    ds = prepare(tmp_path / "a.h5", 0)
    again = prepare(tmp_path / "b.h5", 0)
    other = prepare(tmp_path / "c.h5", 1)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    np.testing.assert_array_equal(np.bincount(ds.y_train.numpy()), [2] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test.numpy()), [1] * 10)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)
    assert not torch.equal(ds.x_train, other.x_train)
    # every kept row is an original image with its own label
    flat = {xtr[i].tobytes(): ytr[i] for i in range(60)}
    for x, y in zip((ds.x_train * 255).round().byte().numpy(), ds.y_train.numpy()):
        assert flat[x.tobytes()] == y
    assert ds.classes == names and ds.model_kwargs()["in_channels"] == 3
    assert ds.model_kwargs()["image_size"] == 32 and len(ds.mean) == 3
