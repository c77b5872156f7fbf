"""The training images as every machine reads them: checked once, read-only, named by their content.

Every way a bank enters the machines — an :class:`elscli.Bank`, a raw ``(N, C, H, W)`` array, a
:class:`TrainingSet` — goes through :func:`training_set`, the one validation path: a 4-D array of a real
dtype (float or integer), at least one non-empty image, every value finite (one-line
:class:`~elscli.errors.ElscliError` otherwise).  There is no range check: banks of latent codes have any
range and any channel count.

The images a machine reads are a **read-only** float32 array — the caller's own when it is already frozen
(not writeable, and no writeable array shares its memory), else a private copy — and :attr:`TrainingSet.key`
is a BLAKE2b hash of their bytes (about 20 ms per 20 MB; computed once per content).  Caches key on it
(:mod:`.cache`), so results are never those of data that were changed since.  Repeated calls with the same
array are cheap: for a frozen array the check and the key are remembered; for a writeable one the
remembered private copy is reused only when the array still equals it byte for byte (a comparison, ~2 ms
per 20 MB), and is made again otherwise.
"""
from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from typing import Optional, Tuple

import numpy as np

from ..errors import ElscliError


class TrainingSet:
    """N training images (N, C, H, W) float32, read-only, with their labels and content key.

    ``images``: the read-only images; ``labels``: (N,) int64 or None; ``key``: hex BLAKE2b of the images'
    shape and bytes; ``bank``: the :class:`elscli.Bank` they came from, if any (its class index gives the
    images of a label)."""

    def __init__(self, images: np.ndarray, key: str, labels: Optional[np.ndarray] = None, bank=None) -> None:
        self.images = images
        self.key = key
        self.labels = labels
        self.bank = bank

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def index_for(self, label: int) -> np.ndarray:
        """int64 indices (ascending) of the images a dictionary of ``label`` holds: all of them for label < 0.
        Raises ElscliError when the bank has no labels or none of that label."""
        label = int(label)
        if label < 0:
            return np.arange(len(self), dtype=np.int64)
        if self.bank is not None and hasattr(self.bank, "indices_for"):
            idx = np.asarray(self.bank.indices_for(label), dtype=np.int64)
        elif self.labels is not None:
            idx = np.flatnonzero(np.asarray(self.labels) == label).astype(np.int64)
        else:
            raise ElscliError(f"label {label} requested but the bank has no labels")
        if idx.size == 0:
            raise ElscliError(f"label {label} has no images in the bank")
        return idx


def _frozen(a) -> bool:
    """True when no writeable array can change ``a``'s memory: ``a`` and every array it views are read-only,
    down to an array that owns its memory (or immutable bytes)."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        if a.base is None:
            return True
        a = a.base
    return isinstance(a, bytes)


def _checked_float32(source) -> np.ndarray:
    """``source`` as a C-contiguous float32 (N, C, H, W) array, after the checks of the module docstring."""
    arr = np.asarray(source)
    if arr.dtype == object or arr.dtype.kind not in "fiu":
        raise ElscliError(f"bank images must be a real (float or integer) array, not {arr.dtype}")
    if arr.ndim != 4:
        raise ElscliError(f"a bank must be a Bank or an (N, C, H, W) array, got shape {arr.shape}")
    if min(arr.shape) < 1:
        raise ElscliError(f"a bank needs at least one non-empty image, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise ElscliError("bank images contain NaN or infinite values")
    return out


def content_key(images: np.ndarray) -> str:
    """Hex BLAKE2b (128-bit) of a C-contiguous float32 array's shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"float32|{','.join(str(s) for s in images.shape)}|".encode("ascii"))
    h.update(memoryview(images).cast("B"))
    return h.hexdigest()


_MEMO_SIZE = 8
#: id(source array) -> (weak reference to it, the read-only images, their key, whether the source was frozen)
_MEMO: "OrderedDict[int, Tuple[weakref.ref, np.ndarray, str, bool]]" = OrderedDict()


def _same_bytes(source: np.ndarray, images: np.ndarray) -> bool:
    if source.shape != images.shape:
        return False
    if source.dtype == np.float32:
        return bool(np.array_equal(source.view(np.uint32), images.view(np.uint32)))
    converted = np.asarray(source, dtype=np.float32)
    return bool(np.array_equal(converted.view(np.uint32), images.view(np.uint32)))


def _images_and_key(source) -> Tuple[np.ndarray, str]:
    """The read-only float32 images of ``source`` and their content key (see the module docstring)."""
    if not isinstance(source, np.ndarray):
        images = _checked_float32(source)
        images.flags.writeable = False
        return images, content_key(images)
    frozen = _frozen(source)
    hit = _MEMO.get(id(source))
    if hit is not None and hit[0]() is source:
        # a source frozen then and now cannot have changed; any other is compared with what was kept
        if (hit[3] and frozen) or _same_bytes(source, hit[1]):
            _MEMO.move_to_end(id(source))
            if frozen and not hit[3] and source.dtype == np.float32 and source.flags.c_contiguous:
                _MEMO[id(source)] = (hit[0], source, hit[2], True)     # frozen since: drop the copy
                return source, hit[2]
            return hit[1], hit[2]
    images = _checked_float32(source)
    if images is source and not frozen:
        images = images.copy()          # the caller's array may change: keep a copy of what it holds now
    if images.flags.writeable:
        images.flags.writeable = False
    key = content_key(images)
    try:
        _MEMO[id(source)] = (weakref.ref(source), images, key, frozen)
    except TypeError:                   # pragma: no cover - arrays support weak references
        return images, key
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return images, key


def training_set(bank) -> TrainingSet:
    """The :class:`TrainingSet` of ``bank``: a TrainingSet, an :class:`elscli.Bank` (its ``images``, labels and
    class index) or a raw (N, C, H, W) real array.  Raises ElscliError on anything the module docstring
    refuses."""
    if isinstance(bank, TrainingSet):
        return bank
    images = getattr(bank, "images", None)
    if images is not None:
        checked, key = _images_and_key(images)
        labels = getattr(bank, "labels", None)
        return TrainingSet(checked, key, None if labels is None else np.asarray(labels), bank)
    checked, key = _images_and_key(bank)
    return TrainingSet(checked, key)
