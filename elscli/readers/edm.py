"""Datasets written by EDM's ``dataset_tool.py`` (NVlabs/edm, NVlabs/edm2; also StyleGAN2-ADA's): an extracted
folder or its ``.zip``.

The tool writes image number ``i`` as ``f"{s[:5]}/img{s}.png"`` with ``s = f"{i:08d}"`` (1,000 images per
sub-folder ``00000/``, ``00001/``, …; uncompressed PNG, grey or RGB) and, at the root, ``dataset.json``::

    {"labels": [["00000/img00000000.png", 6], ["00000/img00000001.png", 9], ...]}

or ``{"labels": null}`` when the source had no labels.  A ``.zip`` holds the same names at its root
(``ZIP_STORED``).  As EDM's loader (``training/dataset.py``, ``ImageFolderDataset``) does, the images are every
image file below the root (any depth), in sorted order of their ``/``-separated relative names, and each
label is looked up by that name in ``dataset.json``; without ``dataset.json``, or with ``"labels": null``,
the images are unlabelled (label -1).  Every image must then have an integer label >= 0 (EDM's float label
vectors are not class labels and are refused).  Hidden files and folders (``.DS_Store``, ``__MACOSX/``) are
skipped.  Images are decoded lazily (only those a selection keeps), with the image-folder rules
(:func:`elscli.readers.folder.load_image`).
"""
from __future__ import annotations

import io
import json
import math
import re
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ElscliError, reason
from ._common import RawImages, refuse_if_permission_denied
from .folder import IMAGE_SUFFIXES, load_image

LABELS_FILE = "dataset.json"
#: dataset_tool's names: 5-digit sub-folders of ``img`` + 8 digits (its PNGs).
_SUBFOLDER = re.compile(r"\d{5}")
_IMAGE_NAME = re.compile(r"img\d{8}\.png")


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.split("/"))


def _is_image_name(rel: str) -> bool:
    return Path(rel).suffix.lower() in IMAGE_SUFFIXES and not _hidden(rel)


def looks_like_edm_dir(path: Path) -> bool:
    """A folder with ``dataset.json`` at its root and images below it, or with dataset_tool's numbered
    sub-folders (``00000/img00000000.png``) and no images at its root."""
    path = Path(path)
    subdirs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if (path / LABELS_FILE).is_file():
        return any(_is_image_name(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file())
    if not subdirs or not all(_SUBFOLDER.fullmatch(d.name) for d in subdirs):
        return False
    if any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        return False
    names = [p.name for d in subdirs for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(names) and all(_IMAGE_NAME.fullmatch(n) for n in names)


def is_edm_zip(path: Path) -> bool:
    """A zip archive holding image files (a dataset_tool archive; a ``.npz`` holds only ``.npy`` members)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(_is_image_name(n) for n in z.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
        return False


class _DirImages(Sequence):
    def __init__(self, root: Path, names: List[str]):
        self.root, self.names = root, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        return load_image(self.root / self.names[int(i)])


class _ZipImages(Sequence):
    """Members of a zip decoded on access; the archive is opened once, on first access."""

    def __init__(self, path: Path, names: List[str]):
        self.path, self.names = path, names
        self._zip: Optional[zipfile.ZipFile] = None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        name = self.names[int(i)]
        try:
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            data = self._zip.read(name)
        except (zipfile.BadZipFile, OSError, KeyError, EOFError, zlib.error) as exc:
            refuse_if_permission_denied(exc, repr(str(self.path)))
            raise ElscliError(f"{name!r} in {str(self.path)!r} cannot be read: corrupt or truncated archive "
                              f"({reason(exc)})") from None
        return load_image(io.BytesIO(data), name=f"{name!r} in {str(self.path)!r}")

    def __del__(self):
        if self._zip is not None:
            self._zip.close()


def _labels(meta_text: Optional[str], names: List[str], where: str) -> tuple[np.ndarray, Optional[str]]:
    """(labels (N,) int64, how they were found) from the text of ``dataset.json`` (None when absent)."""
    n = len(names)
    if meta_text is None:
        return np.full(n, -1, np.int64), None
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError as exc:
        raise ElscliError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "labels" not in meta:
        raise ElscliError(f"{where} has no 'labels' entry (dataset_tool writes {{\"labels\": [[name, label], ...]}} "
                          f"or {{\"labels\": null}})")
    pairs = meta["labels"]
    if pairs is None:
        return np.full(n, -1, np.int64), "dataset.json (labels: null)"
    if not isinstance(pairs, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise ElscliError(f"{where}: 'labels' must be a list of [file name, label] pairs or null")
    table: Dict[str, object] = {str(name).replace("\\", "/"): lab for name, lab in pairs}
    missing = [nm for nm in names if nm not in table]
    if missing:
        raise ElscliError(f"{where} gives no label for {missing[0]!r} ({len(missing)} of {n} images have none)")
    out = np.empty(n, np.int64)
    for k, nm in enumerate(names):
        lab = table[nm]
        if isinstance(lab, bool) or not isinstance(lab, (int, float)) or not math.isfinite(lab) \
                or lab != int(lab) or lab < 0:
            kind = "a label vector" if isinstance(lab, list) else repr(lab)
            raise ElscliError(f"{where}: the label of {nm!r} is {kind}; elscli reads integer class labels >= 0")
        out[k] = int(lab)
    return out, "dataset.json"


def read_edm(path: Path) -> RawImages:
    """An EDM dataset_tool folder or ``.zip`` (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        files = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        names = sorted(n for n in files if _is_image_name(n))
        meta_path = path / LABELS_FILE
        try:
            meta_text = meta_path.read_text(encoding="utf-8") if meta_path.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            refuse_if_permission_denied(exc, repr(str(meta_path)))
            raise ElscliError(f"{str(meta_path)!r} cannot be read ({reason(exc)})") from None
        images: Sequence = _DirImages(path, names)
        layout, where = "edm-folder", repr(str(meta_path))
        shown = [str(path / n) for n in names]
    else:
        try:
            with zipfile.ZipFile(path) as z:
                members = [n for n in z.namelist() if not n.endswith("/")]
                names = sorted(n for n in members if _is_image_name(n))
                meta_text = z.read(LABELS_FILE).decode("utf-8") if LABELS_FILE in members else None
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
            refuse_if_permission_denied(exc, repr(str(path)))
            raise ElscliError(f"{str(path)!r} is not a readable zip archive: corrupt or truncated "
                              f"({reason(exc)})") from None
        images = _ZipImages(path, names)
        layout, where = "edm-zip", f"{LABELS_FILE!r} in {str(path)!r}"
        shown = [f"{path}:{n}" for n in names]
    if not names:
        raise ElscliError(f"no image files (PNG/JPEG) in {str(path)!r}")
    labels, labels_from = _labels(meta_text, names, where)
    source = {"reader": "edm", "path": str(path), "layout": layout, "labels_from": labels_from,
              "n_source": len(names)}
    return RawImages(images=images, labels=labels, eight_bit=True, source=source, names=shown)
