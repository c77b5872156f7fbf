"""The Bank: construction, the HDF5 schema, round trips, the content hash, class index sets, errors."""
from __future__ import annotations

import hashlib
import json
import os

import h5py
import numpy as np
import pytest

from elscli.bank import Bank, build_bank, compute_content_hash, describe_bank
from elscli.sample_data import sample_data_dir as default_sample_data_dir
from elscli.errors import ElscliError
from elscli.readers import u8_to_float


def small_bank(n=12, c=1, h=5, w=5, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    labels = np.arange(n) % 3
    return Bank.from_arrays(codes, labels, source={"reader": "test"}), codes, labels


def test_from_arrays_uint8():
    b, codes, labels = small_bank()
    assert len(b) == 12 and b.shape == (1, 5, 5) and b.eight_bit
    assert b.images.dtype == np.float32 and b.images.flags.c_contiguous
    assert np.array_equal(b.images, (codes.astype(np.float64) / 127.5 - 1).astype(np.float32))
    assert b.labels.dtype == np.int64 and np.array_equal(b.labels, labels)
    assert b.classes.tolist() == [0, 1, 2]
    assert b.indices_for(1).tolist() == [1, 4, 7, 10]
    assert b.path is None


def test_from_arrays_shapes():
    assert Bank.from_arrays(np.zeros((3, 4, 4), np.uint8)).shape == (3, 4, 4)  # (C, H, W) -> N = 1
    assert len(Bank.from_arrays(np.zeros((3, 4, 4), np.uint8))) == 1
    b = Bank.from_arrays(np.zeros((5, 4, 4), np.uint8))  # (N, H, W) -> C = 1
    assert len(b) == 5 and b.shape == (1, 4, 4) and b.labels.tolist() == [-1] * 5 and b.classes.size == 0


def test_from_arrays_float_exact_becomes_uint8():
    b, codes, labels = small_bank()
    b2 = Bank.from_arrays(b.images.copy(), labels)
    assert b2.eight_bit and np.array_equal(b2.codes, codes) and b2.content_hash == b.content_hash


def test_from_arrays_float_general_stays_float():
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 6, 6)).astype(np.float32)
    b = Bank.from_arrays(x)
    assert not b.eight_bit and np.array_equal(b.images, x) and b.scale == 1.0 and b.offset == 0.0


@pytest.mark.parametrize("bad, msg", [
    (np.full((1, 1, 2, 2), 1.5, np.float32), r"\[-1, 1\]"),
    (np.full((1, 1, 2, 2), np.nan, np.float32), "NaN"),
    (np.zeros((1, 2, 2, 2), np.float32), "1 or 3 channels"),
    (np.zeros((1, 1, 1, 2, 2), np.float32), "shape"),
    (np.full((1, 1, 2, 2), 300, np.int64), "0..255"),
])
def test_from_arrays_rejects(bad, msg):
    with pytest.raises(ElscliError, match=msg):
        Bank.from_arrays(bad)


def test_from_arrays_label_errors():
    with pytest.raises(ElscliError, match="label count 2 != image count 3"):
        Bank.from_arrays(np.zeros((3, 1, 2, 2), np.uint8), [0, 1])
    with pytest.raises(ElscliError, match=">= 0"):
        Bank.from_arrays(np.zeros((2, 1, 2, 2), np.uint8), [0, -3])


def test_indices_for_missing_label():
    b, _, _ = small_bank()
    with pytest.raises(ElscliError, match="label 7 has no images in bank"):
        b.indices_for(7)


def test_subset():
    b, codes, labels = small_bank()
    s = b.subset([5, 0, 2])
    assert np.array_equal(s.codes, codes[[5, 0, 2]]) and s.labels.tolist() == [2, 0, 2]
    assert s.source["parent_content_hash"] == b.content_hash
    assert s.indices_for(2).tolist() == [0, 2]
    with pytest.raises(ElscliError):
        b.subset([])
    with pytest.raises(ElscliError, match="out of range"):
        b.subset([99])


def test_content_hash_documented_formula():
    b, codes, labels = small_bank()
    h = hashlib.sha256()
    h.update(b"elscli.bank.v1|uint8|12,1,5,5|")
    h.update(codes.tobytes())
    h.update(labels.astype("<i8").tobytes())
    assert b.content_hash == h.hexdigest() == compute_content_hash(codes, labels)
    other = Bank.from_arrays(codes, (labels + 1) % 3)
    assert other.content_hash != b.content_hash
    same_pixels = Bank.from_arrays(codes, labels, source={"reader": "elsewhere"})
    assert same_pixels.content_hash == b.content_hash


@pytest.mark.parametrize("eight_bit", [True, False])
def test_save_open_roundtrip(tmp_path, eight_bit):
    if eight_bit:
        b, _, _ = small_bank(c=3)
    else:
        b = Bank.from_arrays(np.random.default_rng(3).uniform(-1, 1, (7, 3, 4, 4)).astype(np.float32),
                             [0, 0, 5, 5, 5, -1, 2], source={"reader": "test", "note": "float"})
    p = tmp_path / "bank.h5"
    b.save(p, params={"command": "test"})
    assert b.path == str(p)
    o = Bank.open(p)
    assert o.path == str(p)
    assert np.array_equal(o.codes, b.codes) and o.codes.dtype == b.codes.dtype
    assert np.array_equal(o.images, b.images) and np.array_equal(o.labels, b.labels)
    assert o.content_hash == b.content_hash and o.source == b.source
    for k in o.classes:
        assert np.array_equal(o.indices_for(k), b.indices_for(k))
    assert [p.name for p in tmp_path.iterdir()] == ["bank.h5"]  # no temporary left


def test_file_schema(tmp_path):
    b, codes, labels = small_bank()
    p = tmp_path / "bank.h5"
    b.save(p, params={"size": 32})
    with h5py.File(p, "r") as f:
        assert f.attrs["format"] == "elscli.bank" and f.attrs["schema_version"] == 1
        assert "elscli_version" in f.attrs and json.loads(f.attrs["params"]) == {"size": 32}
        assert f.attrs["content_hash"] == b.content_hash
        assert json.loads(f.attrs["source"]) == {"reader": "test"}
        ds = f["images"]
        assert ds.dtype == np.uint8 and ds.shape == (12, 1, 5, 5) and ds.fletcher32
        assert ds.attrs["scale"] == pytest.approx(1 / 127.5, abs=0) and ds.attrs["offset"] == -1.0
        assert f["labels"].dtype == np.int64 and f["labels"].fletcher32
        assert sorted(f["classes"]) == ["0", "1", "2"]
        assert f["classes/2"][()].tolist() == [2, 5, 8, 11]
        assert np.array_equal(u8_to_float(ds[()]), (ds[()] * ds.attrs["scale"] + ds.attrs["offset"]).astype(np.float32))


def test_save_refuses_overwrite(tmp_path):
    b, _, _ = small_bank()
    p = tmp_path / "bank.h5"
    b.save(p)
    before = p.read_bytes()
    with pytest.raises(ElscliError, match="exists; pass --force"):
        b.save(p)
    assert p.read_bytes() == before
    b2, _, _ = small_bank(seed=9)
    b2.save(p, force=True)
    assert Bank.open(p).content_hash == b2.content_hash


def test_save_into_missing_directory(tmp_path):
    b, _, _ = small_bank()
    with pytest.raises(ElscliError, match="does not exist"):
        b.save(tmp_path / "no" / "bank.h5")


def test_open_errors(tmp_path):
    with pytest.raises(ElscliError, match="does not exist"):
        Bank.open(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ElscliError, match="not a readable HDF5"):
        Bank.open(tmp_path / "text.h5")
    with h5py.File(tmp_path / "run.h5", "w") as f:
        f.attrs["format"] = "elscli.run"
    with pytest.raises(ElscliError, match="not an elscli.bank file"):
        Bank.open(tmp_path / "run.h5")


def test_open_truncated(tmp_path):
    b, _, _ = small_bank(n=200, h=16, w=16)
    p = tmp_path / "bank.h5"
    b.save(p)
    data = p.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ElscliError, match="cut.h5"):
        Bank.open(tmp_path / "cut.h5")


def test_open_detects_tampering(tmp_path):
    b, _, _ = small_bank()
    p = tmp_path / "bank.h5"
    b.save(p)
    with h5py.File(p, "r+") as f:  # rewrite the labels consistently but leave the hash
        del f["labels"]
        f.create_dataset("labels", data=np.zeros(12, np.int64))
    with pytest.raises(ElscliError, match="content hash"):
        Bank.open(p)


def test_describe_bank(tmp_path):
    b, _, _ = small_bank()
    p = tmp_path / "bank.h5"
    b.save(p, params={"k": 1})
    d = describe_bank(str(p))
    assert d["format"] == "elscli.bank" and d["n_images"] == 12 and d["image_shape"] == [1, 5, 5]
    assert d["labels"] == {"0": 4, "1": 4, "2": 4} and d["content_hash"] == b.content_hash
    assert d["dtype"] == "uint8" and d["params"] == {"k": 1}
    with h5py.File(p, "r") as f:
        assert describe_bank(f)["n_images"] == 12
    json.dumps(d)


def test_build_bank_mnist_and_golden_codes(mnist_dir):
    bank, stats = build_bank(mnist_dir)
    assert len(bank) == 5000 and bank.shape == (1, 32, 32) and bank.eight_bit
    assert stats["duplicates_dropped"] == 0
    assert bank.images.min() == -1.0 and bank.images.max() == 1.0


def test_default_sample_data_dir(monkeypatch, tmp_path):
    d = default_sample_data_dir()
    assert (d / "mnist-1k" / "train-images-idx3-ubyte.gz").is_file()
    bank, _ = build_bank(d / "mnist-1k")
    assert len(bank) == 1000 and np.bincount(bank.labels).tolist() == [100] * 10
    assert default_sample_data_dir(tmp_path) == tmp_path          # the override (the CLI's ELSCLI_SAMPLE_DATA)
    monkeypatch.setenv("ELSCLI_SAMPLE_DATA", str(tmp_path))       # the library reads no environment
    assert default_sample_data_dir() == d


def test_bank_file_is_read_only_friendly(tmp_path):
    """Opening never writes: a read-only bank file opens (many array tasks read one bank at once)."""
    b, _, _ = small_bank()
    p = tmp_path / "bank.h5"
    b.save(p)
    os.chmod(p, 0o444)
    try:
        assert Bank.open(p).content_hash == b.content_hash
    finally:
        os.chmod(p, 0o644)


def test_from_arrays_labels_disambiguate_three_grey_images():
    b = Bank.from_arrays(np.zeros((3, 4, 4), np.uint8), [0, 1, 2])
    assert len(b) == 3 and b.shape == (1, 4, 4)


def test_images_writable_c_contiguous_float32():
    b, _, _ = small_bank()
    assert b.images.flags.c_contiguous and b.images.flags.writeable and b.images.dtype == np.float32


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 5), c=st.sampled_from([1, 3]), h=st.integers(1, 6), w=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1), as_float=st.booleans())
def test_roundtrip_property(n, c, h, w, seed, as_float):
    import tempfile

    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 4, n)
    if as_float:
        arr = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    else:
        arr = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    b = Bank.from_arrays(arr, labels)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "b.h5")
        b.save(p)
        o = Bank.open(p)
    assert np.array_equal(o.codes, b.codes) and np.array_equal(o.labels, labels)
    assert o.content_hash == b.content_hash
    assert o.classes.tolist() == sorted(set(int(x) for x in labels if x >= 0))
    for k in o.classes:
        assert o.indices_for(k).tolist() == np.flatnonzero(labels == k).tolist()


def test_from_arrays_warns_about_images_on_0_1():
    from elscli.errors import ElscliWarning

    x = np.random.default_rng(6).uniform(0, 1, (3, 1, 4, 4)).astype(np.float32)
    with pytest.warns(ElscliWarning, match="none below 0"):
        b = Bank.from_arrays(x)
    assert len(b.source["warnings"]) == 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ElscliWarning)
        assert "warnings" not in Bank.from_arrays(x * 2 - 1).source
        assert "warnings" not in Bank.from_arrays((x * 255).astype(np.uint8)).source   # codes: no doubt
