"""Readers on real files: IDX (mnist-5k), CIFAR python batches, image folders (photo-tiles), npy/npz."""
from __future__ import annotations

import gzip
import pickle
import shutil
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from elscli.errors import ElscliError
from elscli.readers import (detect_format, float_to_u8_if_exact, load_images, prepare, read_raw, resize_u8,
                            u8_to_float)
from elscli.readers.idx import parse_idx

from conftest import cifar_pixels, write_cifar_batch


def write_idx(path, arr, magic, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    payload = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)


def idx_images(mnist_dir):
    data = gzip.open(mnist_dir / "train-images-idx3-ubyte.gz").read()
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)


# ------------------------------------------------------------------------------------------------ IDX
def test_idx_directory_mnist5k(mnist_dir):
    raw = read_raw(mnist_dir)
    assert raw.eight_bit and raw.images.dtype == np.uint8
    assert raw.images.shape == (5000, 1, 28, 28)
    assert np.bincount(raw.labels).tolist() == [500] * 10
    assert np.array_equal(raw.images[:, 0], idx_images(mnist_dir))
    assert raw.source["format"] == "idx"


def test_idx_images_file_finds_labels_beside(mnist_dir):
    raw = read_raw(mnist_dir / "train-images-idx3-ubyte.gz")
    assert raw.labels.shape == (5000,) and raw.labels.min() == 0


def test_idx_raw_uncompressed_equals_gz(mnist_dir, tmp_path):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.open(mnist_dir / f"{name}.gz").read())
    a, b = read_raw(tmp_path), read_raw(mnist_dir)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_idx_prefers_train_pair_and_accepts_t10k_file(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4)), 2051)
    write_idx(tmp_path / "train-labels-idx1-ubyte", [1, 2, 3], 2049)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.full((2, 4, 4), 7), 2051, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", [4, 5], 2049, gz=True)
    assert len(read_raw(tmp_path)) == 3
    t = read_raw(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert t.labels.tolist() == [4, 5] and t.images.max() == 7


def test_idx_without_labels_is_unlabelled(tmp_path):
    write_idx(tmp_path / "digits-images-idx3-ubyte", np.ones((2, 5, 5)), 2051)
    raw = read_raw(tmp_path / "digits-images-idx3-ubyte")
    assert raw.labels.tolist() == [-1, -1]


def test_idx_wrong_magic(tmp_path):
    write_idx(tmp_path / "x-images-idx3-ubyte", np.zeros((2, 4, 4)), 2051)
    write_idx(tmp_path / "x-labels-idx1-ubyte", np.zeros((2, 4, 4)), 2051)  # images magic in the labels file
    with pytest.raises(ElscliError, match=r"magic number 2051, expected 2049.*|x-labels-idx1-ubyte"):
        read_raw(tmp_path / "x-images-idx3-ubyte")
    with pytest.raises(ElscliError, match="magic number 2049, expected 2051"):
        parse_idx(_labels_as_images(tmp_path), 2051)


def _labels_as_images(tmp_path):
    p = tmp_path / "lab-idx1-ubyte"
    write_idx(p, [1, 2], 2049)
    return p


@pytest.mark.parametrize("cut", [3, 10, 100])
def test_idx_truncated(tmp_path, cut):
    p = tmp_path / "t-images-idx3-ubyte"
    write_idx(p, np.zeros((4, 5, 5)), 2051)
    p.write_bytes(p.read_bytes()[:-cut] if cut != 3 else p.read_bytes()[:3])
    with pytest.raises(ElscliError, match="t-images-idx3-ubyte"):
        parse_idx(p, 2051)


def test_idx_truncated_gzip(tmp_path, mnist_dir):
    data = (mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ElscliError, match="truncated"):
        read_raw(p, "idx")


def test_idx_label_count_mismatch(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4)), 2051)
    write_idx(tmp_path / "train-labels-idx1-ubyte", [1, 2], 2049)
    with pytest.raises(ElscliError, match=r"label count 2 .*!= image count 3"):
        read_raw(tmp_path)


# ------------------------------------------------------------------------------------------------ CIFAR
def test_cifar10_dir(cifar10_dir):
    raw = read_raw(cifar10_dir)
    p1, l1 = cifar_pixels(cifar10_dir / "data_batch_1")
    p2, l2 = cifar_pixels(cifar10_dir / "data_batch_2")
    assert raw.images.shape == (10, 3, 32, 32) and raw.eight_bit
    assert np.array_equal(raw.images, np.concatenate([p1, p2]))
    assert np.array_equal(raw.labels, np.concatenate([l1, l2]))
    assert raw.source["variant"] == "cifar10" and raw.source["label_names"]["3"] == "cat"


def test_cifar10_tar_equals_dir(cifar10_dir, cifar10_tar):
    assert detect_format(cifar10_tar) == "cifar"
    a, b = read_raw(cifar10_tar), read_raw(cifar10_dir)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert a.source["label_names"] == b.source["label_names"]


def test_cifar_single_batch_file(cifar10_dir):
    raw = read_raw(cifar10_dir / "test_batch")
    assert raw.labels.tolist() == [1, 2, 3]


def test_cifar100_fine_and_coarse(cifar100_dir):
    fine = read_raw(cifar100_dir)
    coarse = read_raw(cifar100_dir, coarse=True)
    assert fine.labels.tolist() == [5, 17, 99, 5, 0, 42]
    assert coarse.labels.tolist() == [1, 2, 3, 1, 0, 19]
    assert fine.source["variant"] == "cifar100"


def test_cifar_rgb_channel_order(tmp_path):
    """b'data' rows are 1024 red, 1024 green, 1024 blue values: channel 0 is red."""
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 10, 20, 30
    d = tmp_path / "c"
    d.mkdir()
    write_cifar_batch(d / "data_batch_1", data, [0])
    raw = read_raw(d)
    assert raw.images[0, :, 0, 0].tolist() == [10, 20, 30]


def test_cifar_label_count_mismatch(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    write_cifar_batch(d / "data_batch_1", np.zeros((3, 3072), np.uint8), [0, 1])
    with pytest.raises(ElscliError, match="label count 2 != image count 3"):
        read_raw(d)


def test_cifar_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "nothing"),))

    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(ElscliError, match="refusing to load shutil.rmtree"):
        read_raw(p, "cifar")


# ------------------------------------------------------------------------------------------------ folders
def test_photo_tiles_folder(photo_tiles_dir):
    raw = read_raw(photo_tiles_dir)
    assert raw.source["format"] == "folder" and raw.source["layout"] == "class-subfolders"
    assert len(raw) == 512 and np.bincount(raw.labels).tolist() == [64] * 8
    res = prepare(raw, size=0)
    assert res.images.shape == (512, 3, 32, 32) and res.source["native_shape"] == [3, 32, 32]
    names = sorted(p.name for p in photo_tiles_dir.iterdir())
    assert [raw.source["label_names"][str(k)] for k in range(8)] == names
    first = np.asarray(Image.open(photo_tiles_dir / names[0] / "000.png").convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(res.images[0], first)


def test_flat_folder_mixed_grey_rgb(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    c = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(g).save(tmp_path / "a.png")
    Image.fromarray(c).save(tmp_path / "b.png")
    raw = read_raw(tmp_path)
    assert raw.labels.tolist() == [-1, -1]
    res = prepare(raw, size=0)
    assert res.images.shape == (2, 3, 8, 8)
    assert np.array_equal(res.images[0], np.stack([g] * 3)) and np.array_equal(res.images[1], c.transpose(2, 0, 1))
    grey = prepare(raw, size=0, color="grayscale")
    assert np.array_equal(grey.images[1, 0], np.asarray(Image.fromarray(c).convert("L")))
    assert np.array_equal(grey.images[0, 0], g)


def test_jpeg_folder(tmp_path):
    (tmp_path / "cls").mkdir()
    Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(tmp_path / "cls" / "x.jpg", quality=95)
    res = load_images(tmp_path, size=0)
    assert res.images.shape == (1, 3, 10, 12) and res.labels.tolist() == [0]


def test_mixed_sizes_need_resize(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((9, 7), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(ElscliError, match=r"mixed sizes.*8x8 in .*a\.png.*9x7 in .*b\.png"):
        load_images(tmp_path, size=0)
    assert load_images(tmp_path, size=6).images.shape == (2, 1, 6, 6)


# ------------------------------------------------------------------------------------------------ arrays
def test_npy_uint8_layouts_agree(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "nchw.npy", x)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    a, b = read_raw(tmp_path / "nchw.npy"), read_raw(tmp_path / "nhwc.npy")
    assert np.array_equal(a.images, x) and np.array_equal(b.images, x)
    assert a.source["layout"] == "nchw" and b.source["layout"] == "nhwc"


def test_npy_ambiguous_layout(tmp_path):
    np.save(tmp_path / "amb.npy", np.zeros((2, 3, 5, 3), np.uint8))
    with pytest.raises(ElscliError, match="--layout"):
        read_raw(tmp_path / "amb.npy")
    assert read_raw(tmp_path / "amb.npy", layout="nhwc").images.shape == (2, 3, 3, 5)


def test_npz_with_labels_and_float_8bit(tmp_path):
    rng = np.random.default_rng(1)
    u = rng.integers(0, 256, (5, 1, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=u.astype(np.float32) / np.float32(255), y_train=np.arange(5))
    raw = read_raw(tmp_path / "d.npz", value_range="0,1")
    assert raw.eight_bit and np.array_equal(raw.images, u) and raw.labels.tolist() == list(range(5))


def test_npy_float_exact_minus1_1_is_8bit(tmp_path):
    u = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    np.save(tmp_path / "f.npy", u8_to_float(u))
    raw = read_raw(tmp_path / "f.npy")
    assert raw.eight_bit and np.array_equal(raw.images, u)


def test_npy_float_not_8bit_stays_float(tmp_path):
    x = np.random.default_rng(2).uniform(-1, 1, (3, 1, 5, 5)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    res = load_images(tmp_path / "f.npy", size=0)
    assert not res.eight_bit and res.images.dtype == np.float32 and np.array_equal(res.images, x)
    r8 = load_images(tmp_path / "f.npy", size=8)
    ref = np.asarray(Image.fromarray(x[1, 0], mode="F").resize((8, 8), Image.BILINEAR))
    assert r8.images.shape == (3, 1, 8, 8) and np.allclose(r8.images[1, 0], np.clip(ref, -1, 1))


def test_npy_value_range_checked(tmp_path):
    np.save(tmp_path / "f.npy", np.full((1, 1, 2, 2), 3.5, np.float32))
    with pytest.raises(ElscliError, match="outside --value-range -1,1"):
        read_raw(tmp_path / "f.npy")
    raw = read_raw(tmp_path / "f.npy", value_range="0,255")
    assert not raw.eight_bit and np.allclose(raw.images, 3.5 / 127.5 - 1)


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 1, 2, 2), np.uint8), labels=np.arange(4))
    with pytest.raises(ElscliError, match="label count 4 != image count 3"):
        read_raw(tmp_path / "d.npz")


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ElscliError, match="o.npy"):
        read_raw(tmp_path / "o.npy")


def test_npy_nan_refused(tmp_path):
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "n.npy", x)
    with pytest.raises(ElscliError, match="NaN"):
        read_raw(tmp_path / "n.npy")


# ------------------------------------------------------------------------------------------------ detection
def test_detect_formats(mnist_dir, photo_tiles_dir, cifar10_dir, tmp_path):
    assert detect_format(mnist_dir) == "idx"
    assert detect_format(mnist_dir / "train-images-idx3-ubyte.gz") == "idx"
    assert detect_format(photo_tiles_dir) == "folder"
    assert detect_format(cifar10_dir) == "cifar"
    np.save(tmp_path / "a.npy", np.zeros((1, 2, 2), np.uint8))
    np.savez(tmp_path / "a.npz", images=np.zeros((1, 2, 2), np.uint8))
    assert detect_format(tmp_path / "a.npy") == detect_format(tmp_path / "a.npz") == "npy"


def test_detect_unknown_and_missing(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ElscliError, match="unknown format.*notes.txt"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(ElscliError, match="does not exist"):
        detect_format(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ElscliError, match="cannot tell what directory"):
        detect_format(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------ pipeline
def test_resize_is_pillow_bilinear_on_u8(mnist_dir):
    raw = read_raw(mnist_dir)
    out = resize_u8(raw.images[7], 32)
    ref = np.asarray(Image.fromarray(raw.images[7, 0]).resize((32, 32), Image.BILINEAR))
    assert out.dtype == np.uint8 and np.array_equal(out[0], ref)


def test_golden_bank_pixels_match_paper_pipeline(mnist_dir, golden_npz):
    """The golden bank (every 78th mnist-5k digit, resized 28->32 by the paper's pipeline) has our 8-bit codes.

    The paper's code maps codes to [-1, 1] in float32 arithmetic ((u/255 - 0.5)/0.5), which can differ from
    elscli's float32(u/127.5 - 1) by one ulp; the codes themselves must agree exactly."""
    res = load_images(mnist_dir)
    z = np.load(golden_npz)
    codes = res.images[::78][:64]
    torch_like = (codes.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    assert np.array_equal(torch_like, z["bank_images"])
    assert np.array_equal(res.labels[::78][:64], z["bank_labels"])
    assert np.abs(u8_to_float(codes) - z["bank_images"]).max() < 1e-7


def test_selection_classes_limit_seed(mnist_dir):
    raw = read_raw(mnist_dir)
    r = prepare(raw, size=0, classes="3,7", limit=50)
    assert set(r.labels.tolist()) == {3} and len(r.labels) == 50
    a = prepare(raw, size=0, classes=[3, 7], limit=50, subset_seed=4)
    b = prepare(raw, size=0, classes=[3, 7], limit=50, subset_seed=4)
    assert np.array_equal(a.images, b.images) and set(a.labels.tolist()) == {3, 7}
    assert a.labels.tolist() == sorted(a.labels.tolist())  # kept in source order
    with pytest.raises(ElscliError, match="empty selection.*label 11"):
        prepare(raw, classes="11")


def test_dedup_counts(tmp_path):
    x = np.zeros((5, 1, 4, 4), np.uint8)
    x[1] = 1
    x[3] = 1
    np.save(tmp_path / "d.npy", x)
    r = load_images(tmp_path / "d.npy", size=0, dedup=True)
    assert r.stats["duplicates_dropped"] == 3 and r.images.shape[0] == 2


def test_classes_by_folder_name(photo_tiles_dir):
    r = load_images(photo_tiles_dir, size=0, classes="rocket")
    assert len(r.labels) == 64 and r.source["label_names"][str(r.labels[0])] == "rocket"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=64))
def test_u8_float_roundtrip(codes):
    u = np.asarray(codes, dtype=np.uint8)
    x = u8_to_float(u)
    assert np.array_equal(x, (u.astype(np.float64) / 127.5 - 1).astype(np.float32))
    assert np.array_equal(float_to_u8_if_exact(x), u)
    assert x.min() >= -1 and x.max() <= 1


def test_float_to_u8_rejects_near_misses():
    x = u8_to_float(np.arange(10, dtype=np.uint8))
    x[3] = np.nextafter(x[3], np.float32(2))
    assert float_to_u8_if_exact(x) is None


def test_folder_decodes_only_selected_images(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "z.png").write_bytes(b"not an image")
    assert load_images(tmp_path, size=0, limit=2).images.shape == (2, 1, 8, 8)
    with pytest.raises(ElscliError, match="z.png"):
        load_images(tmp_path, size=0)


def test_classes_on_unlabelled_source(tmp_path):
    np.save(tmp_path / "u.npy", np.zeros((2, 1, 4, 4), np.uint8))
    with pytest.raises(ElscliError, match="has no labels"):
        load_images(tmp_path / "u.npy", classes="1")


# ------------------------------------------------------------------------------- values users get wrong
def torchvision_normalize(u: np.ndarray) -> np.ndarray:
    """torchvision's ToTensor() then Normalize(0.5, 0.5), in float32 as torch computes them:
    ToTensor divides the uint8 image by 255, Normalize subtracts the mean then divides by the std."""
    x = u.astype(np.float32) / np.float32(255)
    return (x - np.float32(0.5)) / np.float32(0.5)


def test_torchvision_normalized_floats_are_read_as_8bit(tmp_path):
    rng = np.random.default_rng(3)
    u = np.concatenate([np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16),
                        rng.integers(0, 256, (3, 1, 16, 16), dtype=np.uint8)])
    x = torchvision_normalize(u)
    assert not np.array_equal(x, u8_to_float(u))           # the pipeline misses some levels by an ulp
    assert np.abs(x - u8_to_float(u)).max() <= np.finfo(np.float32).eps
    np.save(tmp_path / "u.npy", u)
    for name, arr in (("f32.npy", x), ("f64.npy", x.astype(np.float64))):   # float64 copies keep the misses
        np.save(tmp_path / name, arr)
        raw = read_raw(tmp_path / name)
        assert raw.eight_bit and np.array_equal(raw.images, u), name
        assert 0 < raw.source["eight_bit_max_deviation"] <= 4 * np.finfo(np.float32).eps
        # resized as the paper's 8-bit pipeline resizes the codes, not as float images
        np.testing.assert_array_equal(load_images(tmp_path / name, size=28).images,
                                      load_images(tmp_path / "u.npy", size=28).images)
    np.save(tmp_path / "off.npy", np.clip(x + np.float32(1e-4), -1, 1))     # far from the levels: float data
    assert not read_raw(tmp_path / "off.npy").eight_bit


def test_float_images_on_0_1_under_the_default_range_are_warned_about(tmp_path):
    u = np.random.default_rng(4).integers(0, 256, (3, 1, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "tt.npy", u.astype(np.float32) / np.float32(255))     # ToTensor alone: [0, 1]
    raw = read_raw(tmp_path / "tt.npy")
    assert len(raw.source["warnings"]) == 1 and "--value-range 0,1" in raw.source["warnings"][0]
    assert "warnings" not in read_raw(tmp_path / "tt.npy", value_range="0,1").source
    np.save(tmp_path / "m11.npy", torchvision_normalize(u))
    assert "warnings" not in read_raw(tmp_path / "m11.npy").source
    # the mirror mistake: images on [0, 1] declared as 0..255
    assert "--value-range 0,1" in read_raw(tmp_path / "tt.npy", value_range="0,255").source["warnings"][0]
    np.save(tmp_path / "u255.npy", u.astype(np.float32))
    assert "warnings" not in read_raw(tmp_path / "u255.npy", value_range="0,255").source


@pytest.mark.parametrize("fmt", ["npy", "npz", "cifar-dir", "cifar-tar", "edm-zip", "folder"])
def test_a_file_we_may_not_read_is_not_called_corrupt(fmt, tmp_path, cifar10_dir, cifar10_tar, monkeypatch):
    """Permission denied is said as such, never as "corrupt or truncated" (readers run as root in CI, so the
    denial is simulated where the reader opens the file)."""
    import pathlib
    import zipfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    if fmt in ("npy", "npz"):
        path = tmp_path / f"x.{fmt}"
        (np.save if fmt == "npy" else np.savez)(path, np.zeros((2, 1, 4, 4), np.uint8))
        monkeypatch.setattr(np, "load", denied)
    elif fmt == "cifar-dir":
        path = cifar10_dir
        monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    elif fmt == "cifar-tar":
        path = cifar10_tar
        import tarfile

        monkeypatch.setattr(tarfile, "open", denied)
    elif fmt == "edm-zip":
        path = tmp_path / "d.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("00000/img00000000.png", b"")
        monkeypatch.setattr(zipfile, "ZipFile", denied)
    else:
        path = tmp_path / "imgs"
        path.mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(path / "a.png")
        monkeypatch.setattr(Image, "open", denied)
    reader = {"npy": "npy", "npz": "npy", "cifar-dir": "cifar", "cifar-tar": "cifar", "edm-zip": "edm",
              "folder": "folder"}[fmt]
    with pytest.raises(ElscliError) as exc:
        load_images(path, reader, size=0)
    assert "permission denied" in str(exc.value) and "corrupt" not in str(exc.value)


def test_a_bank_file_is_read_by_the_bank_layer_not_the_readers(tmp_path):
    """Readers know nothing of banks (no import cycle): a bank source goes through elscli.bank.build_bank."""
    from elscli.bank import Bank, build_bank

    codes = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4) * 7
    Bank.from_arrays(codes, [3, 5]).save(tmp_path / "b.h5")
    assert detect_format(tmp_path / "b.h5") == "bank"
    with pytest.raises(ElscliError, match="build_bank"):
        read_raw(tmp_path / "b.h5")
    bank, stats = build_bank(tmp_path / "b.h5", size=0, classes="5")
    np.testing.assert_array_equal(bank.codes, codes[1:])
    assert bank.labels.tolist() == [5] and stats["n_read"] == 2
    assert bank.source["reader"] == "bank" and bank.source["format"] == "bank"
