"""MNIST / FashionMNIST IDX files (raw or gzipped).

IDX layout (http://yann.lecun.com/exdb/mnist/): a big-endian header ``0, 0, type, ndim`` (type 0x08 = uint8),
then ``ndim`` big-endian uint32 dimensions, then the data.  Images are magic 2051 (``ndim`` 3: N, rows, cols),
labels magic 2049 (``ndim`` 1: N).  The source may be a directory holding an images/labels pair (the
``train-*`` pair when a directory holds both train and test files) or the images file itself, with its labels
file beside it (``…images-idx3-ubyte[.gz]`` -> ``…labels-idx1-ubyte[.gz]``).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import ElscliError
from ..pixels import as_labels
from ._common import RawImages, peek, read_maybe_gzip

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_IDX_TYPES = {0x08: np.uint8}


def is_idx_file(path: Path) -> bool:
    """Whether ``path`` (raw or gzipped) starts with a uint8 IDX header of 1 or 3 dimensions."""
    head = peek(path, 4)
    return len(head) == 4 and head[0] == 0 and head[1] == 0 and head[2] == 0x08 and head[3] in (1, 3)


def parse_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one IDX file, checking its magic number and that the data length matches the header.

    Returns the data as uint8 with the header's dimensions (images (N, rows, cols), labels (N,)).  Raises
    ElscliError for a wrong magic number, a truncated file or trailing bytes.
    """
    data = read_maybe_gzip(path)
    what = "images" if expected_magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise ElscliError(f"{str(path)!r} is too short to be an IDX {what} file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise ElscliError(f"{str(path)!r} has IDX magic number {magic}, expected {expected_magic} "
                          f"(an IDX {what} file)")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ElscliError(f"{str(path)!r} is truncated (header needs {header_len} bytes, file has {len(data)})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise ElscliError(f"{str(path)!r} is truncated: header says {'x'.join(map(str, dims))} "
                          f"({expected} bytes), file has {len(data)} bytes")
    if len(data) > expected:
        raise ElscliError(f"{str(path)!r} has {len(data) - expected} bytes beyond what its header "
                          f"({'x'.join(map(str, dims))}) describes; not a valid IDX file")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


_IMAGE_NAME = re.compile(r"images?[-_.]?idx3", re.I)


def labels_path_for(images_path: Path) -> Optional[Path]:
    """The labels file beside an images file, by MNIST's naming convention (gz or not); None when absent."""
    name = images_path.name
    cands: List[str] = []
    m = _IMAGE_NAME.search(name)
    if m:
        stem = name[: m.start()] + re.sub(r"images?", "labels", m.group(0), flags=re.I).replace("idx3", "idx1") \
            + name[m.end():]
        cands.append(stem)
    alts = []
    for c in cands:
        alts += [c, c[:-3] if c.endswith(".gz") else c + ".gz"]
    for c in alts:
        p = images_path.with_name(c)
        if p.is_file():
            return p
    return None


def find_pair(directory: Path) -> tuple[Path, Optional[Path]]:
    """The images file (and its labels file, or None) in a directory: the ``train*`` pair when there are
    several.  Raises ElscliError when there is no images file or several without one training file."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and is_idx_file(p))
    images = [p for p in files if peek(p, 4)[3:4] == b"\x03"]
    if not images:
        raise ElscliError(f"no IDX images file (magic {IMAGES_MAGIC}) in directory {str(directory)!r}")
    if len(images) > 1:
        train = [p for p in images if p.name.lower().startswith("train")]
        if len(train) == 1:
            images = train
        else:
            raise ElscliError(f"directory {str(directory)!r} holds several IDX images files "
                              f"({', '.join(p.name for p in images)}); give the one you want")
    return images[0], labels_path_for(images[0])


def read_idx(path: Path) -> RawImages:
    """Read MNIST-style IDX images (a directory or the images file): (N, 1, rows, cols) uint8 codes.

    Labels (N,) int64 come from the labels file beside the images (-1 with a note on stderr when there is
    none).  Raises ElscliError for malformed files and mismatched counts.
    """
    path = Path(path)
    if path.is_dir():
        images_path, labels_path = find_pair(path)
    else:
        images_path, labels_path = path, labels_path_for(path)
    imgs = parse_idx(images_path, IMAGES_MAGIC)
    if imgs.ndim != 3:
        raise ElscliError(f"{str(images_path)!r}: IDX images must have 3 dimensions (N, rows, cols), got {imgs.ndim}")
    n = imgs.shape[0]
    if labels_path is not None:
        raw = parse_idx(labels_path, LABELS_MAGIC)
        if raw.shape[0] != n:
            raise ElscliError(f"label count {raw.shape[0]} in {str(labels_path)!r} != image count {n} "
                              f"in {str(images_path)!r}")
        labels = as_labels(raw, n, str(labels_path))
    else:
        print(f"elscli: note: no labels file beside {str(images_path)!r}; images are unlabelled", file=sys.stderr)
        labels = np.full(n, -1, dtype=np.int64)
    source = {"reader": "idx", "path": str(path), "images_file": str(images_path),
              "labels_file": None if labels_path is None else str(labels_path),
              "native_shape": [1, int(imgs.shape[1]), int(imgs.shape[2])], "n_source": int(n)}
    return RawImages(images=imgs[:, None, :, :], labels=labels, eight_bit=True, source=source)
