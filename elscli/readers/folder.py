"""Image folders: one sub-folder per class (labels 0..K-1 in sorted folder-name order, like torchvision's
ImageFolder), or a flat folder of unlabelled images.  PNG, JPEG (and BMP/TIFF/WebP) files, grey or RGB, 8-bit.
Files are decoded lazily, only for the images a selection keeps.

Palette and alpha images are converted with Pillow (``P``/``RGBA`` -> ``RGB``, ``LA``/``1`` -> ``L``);
16-bit and float images are refused.  When a folder mixes grey and RGB images, the grey ones are replicated
to three channels (unless ``--grayscale``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..errors import ElscliError, reason
from ._common import RawImages, refuse_if_permission_denied

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _image_files(directory: Path) -> List[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def looks_like_image_folder(path: Path) -> bool:
    """Whether a directory holds image files, at its top or in its (non-hidden) sub-folders."""
    if _image_files(path):
        return True
    return any(_image_files(d) for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_image(path, name: Optional[str] = None) -> np.ndarray:
    """One image (a path, or a binary file object described by ``name`` in messages) as (C, H, W) uint8 with
    C = 1 (grey) or 3 (RGB).

    Palette, alpha and other 8-bit modes are converted with Pillow (``P``/``RGBA``/``CMYK``... -> ``RGB``,
    ``1``/``LA`` -> ``L``).  Raises ElscliError for unreadable files and 16-bit or float images.
    """
    from PIL import Image, UnidentifiedImageError

    what = name if name is not None else repr(str(path))
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("L", "RGB"):
                pass
            elif mode in ("1", "LA"):
                im = im.convert("L")
            elif mode in ("P", "RGBA", "CMYK", "YCbCr", "PA", "RGBX", "LAB", "HSV"):
                im = im.convert("RGB")
            else:
                raise ElscliError(f"{what} is a {mode!r} image; elscli reads 8-bit grey or RGB images")
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ElscliError):
            raise
        refuse_if_permission_denied(exc, what)
        raise ElscliError(f"{what} is not a readable image ({reason(exc)})") from None
    if arr.ndim == 2:
        return arr[None, :, :].copy()
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class LazyImages(Sequence):
    """Image files decoded on access (so ``--classes`` / ``--limit`` decode only the images they keep).

    ``images[i]`` is :func:`load_image` of the i-th file: (C, H, W) uint8.
    """

    def __init__(self, files: List[Path]):
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        return load_image(self.files[int(i)])


def read_folder(path: Path) -> RawImages:
    """Read an image folder (see the module docstring): lazily decoded uint8 images and int64 labels.

    With class sub-folders, labels are 0..K-1 in sorted folder-name order and ``source["label_names"]``
    keeps the names; a flat folder is unlabelled (-1).  Raises ElscliError when ``path`` is not a directory
    or holds no image files.
    """
    path = Path(path)
    if not path.is_dir():
        raise ElscliError(f"{str(path)!r} is not a directory (an image folder source must be one)")
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".") and _image_files(d))
    files: List[Path]
    if class_dirs:
        top = _image_files(path)
        if top:
            print(f"elscli: note: ignoring {len(top)} image file(s) at the top of {str(path)!r} "
                  f"(it has class sub-folders)", file=sys.stderr)
        files, labels = [], []
        for k, d in enumerate(class_dirs):
            fs = _image_files(d)
            files += fs
            labels += [k] * len(fs)
        label_names = {str(k): d.name for k, d in enumerate(class_dirs)}
        layout = "class-subfolders"
    else:
        files = _image_files(path)
        if not files:
            raise ElscliError(f"no image files (PNG/JPEG) in {str(path)!r} or its sub-folders")
        labels = [-1] * len(files)
        label_names = None
        layout = "flat"
    source = {"reader": "folder", "path": str(path), "layout": layout, "n_source": len(files)}
    if label_names:
        source["label_names"] = label_names
    return RawImages(images=LazyImages(files), labels=np.asarray(labels, dtype=np.int64), eight_bit=True, source=source,
                     names=[str(f) for f in files])
