"""advfeatures.h5io: atomic writes, provenance attrs, one-line errors for bad files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from advfeatures import __version__, h5io
from advfeatures.utils import AdvFeaturesError


def write_sample(path, **kw):
    arrays = {"x": torch.rand(4, 1, 3, 3), "y": np.arange(4, dtype=np.int64)}
    return h5io.write_h5(
        path, arrays, kind=kw.pop("kind", "attack"), producer="tests", params={"eps": 0.3, "seed": 1},
        attrs={"classes": ["a", "b"], "name": "toy"}, **kw,
    )


def test_roundtrip_with_provenance(tmp_path):
    p = write_sample(tmp_path / "sub" / "a.h5")
    data, attrs = h5io.read_h5(p, kind="attack")
    assert data["x"].dtype == np.float32 and data["x"].shape == (4, 1, 3, 3)
    assert data["y"].dtype == np.int64 and data["y"].tolist() == [0, 1, 2, 3]
    assert attrs["schema_version"] == h5io.SCHEMA_VERSION and attrs["kind"] == "attack"
    assert attrs["producer"] == "tests" and attrs["advfeatures_version"] == __version__
    assert attrs["params"] == {"eps": 0.3, "seed": 1}
    assert h5io.read_attr_json(attrs, "classes") == ["a", "b"] and attrs["name"] == "toy"
    only_y, _ = h5io.read_h5(p, ["y"])
    assert list(only_y) == ["y"]


def test_atomic_write_leaves_nothing_when_writer_fails(tmp_path):
    target = tmp_path / "out.h5"

    class Boom:  # np.asarray of this raises half-way through writing
        def __array__(self, *a, **k):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        h5io.write_h5(target, {"ok": np.zeros(3), "bad": Boom()}, kind="attack", producer="tests")
    assert list(tmp_path.iterdir()) == []  # neither the final file nor a temporary one


def test_atomic_write_keeps_old_file_when_rewrite_fails(tmp_path):
    p = write_sample(tmp_path / "a.h5")
    before = p.read_bytes()

    class Boom:
        def __array__(self, *a, **k):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        h5io.write_h5(p, {"bad": Boom()}, kind="attack", producer="tests")
    assert p.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ["a.h5"]


def one_line_error(path, **kw) -> str:
    with pytest.raises(AdvFeaturesError) as exc:
        h5io.read_h5(path, **kw)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "zeroed_header"])
def test_corrupt_file_is_one_line_naming_it(tmp_path, damage):
    p = write_sample(tmp_path / "a.h5")
    blob = p.read_bytes()
    p.write_bytes(
        {
            "truncated": blob[: len(blob) // 3],
            "garbage": b"\x89HDF junk" * 100,
            "empty": b"",
            "zeroed_header": b"\x00" * 512 + blob[512:],
        }[damage]
    )
    assert "corrupt" in one_line_error(p)


def test_truncated_data_region_is_reported(tmp_path):
    # keep the superblock and metadata, cut into the raw data: reading the array must fail cleanly
    p = tmp_path / "big.h5"
    h5io.write_h5(p, {"x": np.random.default_rng(0).random((200, 64))}, kind="attack", producer="tests")
    with h5py.File(p, "r") as f:
        offset = f["x"].id.get_offset()
    blob = p.read_bytes()
    p.write_bytes(blob[: offset + 1000])
    assert "corrupt" in one_line_error(p)


def test_missing_file_wrong_kind_missing_key(tmp_path):
    assert "not found" in one_line_error(tmp_path / "nope.h5")
    p = write_sample(tmp_path / "a.h5", kind="synthetic")
    assert "expected 'dataset'" in one_line_error(p, kind="dataset")
    assert "missing dataset(s) ['x_adv']" in one_line_error(p, keys=["x_adv"])


def test_file_not_made_by_h5io_is_wrong_kind(tmp_path):
    p = tmp_path / "foreign.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.zeros(3)
    assert "holds kind=None" in one_line_error(p, kind="dataset")


def test_params_are_json(tmp_path):
    p = write_sample(tmp_path / "a.h5")
    with h5py.File(p, "r") as f:
        assert json.loads(f.attrs["params"]) == {"eps": 0.3, "seed": 1}
