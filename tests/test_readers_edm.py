"""Datasets in the layout of EDM's dataset_tool.py (NVlabs/edm, edm2): the extracted folder and its zip.

The fixtures write what dataset_tool writes: image i as f"{s[:5]}/img{s}.png" with s = f"{i:08d}"
(uncompressed PNG), dataset.json {"labels": [[name, label], ...]} (or null) at the root, and for the
archive the same names at the zip's root, stored."""
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elscli.bank import Bank
from elscli.errors import ElscliError
from elscli.readers import detect_format, load_images, read_raw

N_IMAGES = 1003          # more than 1,000: a second numbered sub-folder, as dataset_tool makes it


def archive_name(i: int) -> str:
    s = f"{i:08d}"
    return f"{s[:5]}/img{s}.png"


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="png", compress_level=0, optimize=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(folder, zip, images (N, C, H, W) uint8, labels): 1,003 grey 6x6 images with labels (i * 7) % 10,
    given to dataset.json in a shuffled order (names, not positions, tie labels to images)."""
    root = tmp_path_factory.mktemp("edm")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_IMAGES, 6, 6), dtype=np.uint8)
    labels = (np.arange(N_IMAGES) * 7) % 10
    pairs = [[archive_name(i), int(labels[i])] for i in range(N_IMAGES)]
    order = rng.permutation(N_IMAGES)
    meta = json.dumps({"labels": [pairs[k] for k in order]})
    folder = root / "mnist-edm"
    zpath = root / "mnist-edm.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(N_IMAGES):
            data = png_bytes(images[i])
            (folder / archive_name(i)).parent.mkdir(parents=True, exist_ok=True)
            (folder / archive_name(i)).write_bytes(data)
            z.writestr(archive_name(i), data)
        (folder / "dataset.json").write_text(meta)
        z.writestr("dataset.json", meta)
    return folder, zpath, images[:, None], labels


def test_folder_and_zip_are_detected_as_edm(dataset):
    folder, zpath, _, _ = dataset
    assert detect_format(folder) == "edm"
    assert detect_format(zpath) == "edm"


@pytest.mark.parametrize("which", [0, 1], ids=["folder", "zip"])
def test_images_and_labels_from_dataset_json(dataset, which):
    path, images, labels = dataset[which], dataset[2], dataset[3]
    raw = read_raw(path)
    assert raw.source["reader"] == "edm" and raw.source["labels_from"] == "dataset.json"
    np.testing.assert_array_equal(raw.labels, labels)
    got = np.stack([raw.images[i] for i in (0, 1, 999, 1000, 1002)])
    np.testing.assert_array_equal(got, images[[0, 1, 999, 1000, 1002]])


def test_build_bank_folder_and_zip_hold_the_same_bank(cli, dataset, tmp_path):
    folder, zpath, images, labels = dataset
    for src, out in ((folder, "f.h5"), (zpath, "z.h5")):
        res = cli("build-bank", src, "-o", tmp_path / out, "--size", 0, "--json")
        assert res.exit_code == 0, res.stderr
    a, b = Bank.open(tmp_path / "f.h5"), Bank.open(tmp_path / "z.h5")
    np.testing.assert_array_equal(a.codes, images)
    np.testing.assert_array_equal(a.labels, labels)
    assert a.content_hash == b.content_hash
    assert a.classes.tolist() == list(range(10))     # not the two numbered sub-folders as classes 0 and 1


def test_classes_and_limit_select_by_dataset_json_labels(dataset):
    folder, _, images, labels = dataset
    res = load_images(folder, size=0, classes="3", limit=5)
    want = np.flatnonzero(labels == 3)[:5]
    np.testing.assert_array_equal(res.images, images[want])
    assert res.labels.tolist() == [3] * 5


def write_small(root: Path, n: int, meta) -> np.ndarray:
    imgs = np.random.default_rng(n).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    for i in range(n):
        (root / archive_name(i)).parent.mkdir(parents=True, exist_ok=True)
        (root / archive_name(i)).write_bytes(png_bytes(imgs[i]))
    if meta is not None:
        (root / "dataset.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return imgs.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("meta", [{"labels": None}, None], ids=["labels-null", "no-dataset-json"])
def test_unlabelled_dataset(tmp_path, meta):
    imgs = write_small(tmp_path, 3, meta)
    assert detect_format(tmp_path) == "edm"
    raw = read_raw(tmp_path)
    assert raw.labels.tolist() == [-1, -1, -1]
    np.testing.assert_array_equal(np.stack(list(raw.images)), imgs)


def test_numbered_folders_without_edm_names_stay_class_folders(tmp_path):
    """A class-per-folder tree whose classes happen to be numbers is not an EDM dataset."""
    for k in range(2):
        (tmp_path / f"{k:05d}").mkdir()
        Image.fromarray(np.full((4, 4), 40 * k, np.uint8)).save(tmp_path / f"{k:05d}" / "a.png")
    assert detect_format(tmp_path) == "folder"
    assert read_raw(tmp_path).labels.tolist() == [0, 1]


@pytest.mark.parametrize("meta, message", [
    ({"labels": [["00000/img00000000.png", 1]]}, "gives no label for '00000/img00000001.png' (1 of 2"),
    ({"labels": [["00000/img00000000.png", 1], ["00000/img00000001.png", [0.0, 1.0]]]}, "a label vector"),
    ({"labels": [["00000/img00000000.png", 1], ["00000/img00000001.png", -2]]}, "integer class labels"),
    ({"images": []}, "no 'labels' entry"),
    ("{not json", "not valid JSON"),
])
def test_bad_dataset_json(tmp_path, meta, message):
    write_small(tmp_path, 2, meta)
    with pytest.raises(ElscliError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_raw(tmp_path, "edm")


def test_corrupt_zip_is_one_clear_error(dataset, tmp_path):
    data = dataset[1].read_bytes()
    bad = tmp_path / "cut.zip"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ElscliError, match="cut.zip"):
        read_raw(bad, "edm")
