"""The patch bank: a training set, stored once, that every machine reads.

A :class:`Bank` holds ``N`` images ``(N, C, H, W)`` on the [-1, 1] pixel scale with their labels — or, built
with ``value_range="none"`` (``build-bank --value-range none``), float32 data of any channel count on the
user's own scale, stored as is (latents of a VAE: no range check, no 8-bit quantisation, no clipping; its
``source["value_range"]`` is ``"none"``).  On disk (HDF5, ``format = "elscli.bank"``, schema 1) it keeps the
narrowest exact dtype:

==================  =====================================================================================
``images``          (N, C, H, W) uint8 codes for 8-bit sources (attrs ``scale`` = 1/127.5, ``offset`` = -1:
                    value = code·scale + offset, evaluated as ``float32(code/127.5 - 1)`` in float64), else
                    float32 with ``scale`` = 1, ``offset`` = 0; chunked, gzip, shuffle, fletcher32
``labels``          (N,) int64, -1 where unlabelled
``classes/<k>``     int64 indices (ascending) of the images with label k, one dataset per label k >= 0
root attrs          ``format``, ``schema_version``, ``elscli_version``, ``params`` (h5io), ``content_hash``,
                    ``source`` (JSON provenance), ``n_images``, ``image_shape``, ``eight_bit``
==================  =====================================================================================

``content_hash`` is the hex SHA-256 of, in order: the ASCII header
``"elscli.bank.v1|{dtype}|{N},{C},{H},{W}|"`` (dtype ``uint8`` or ``float32``), the stored codes as
C-order little-endian bytes, and the labels as little-endian int64 bytes.  It identifies the pixels and
labels, not the provenance: the same images built two ways hash the same.  A bank file is immutable once
written; :meth:`Bank.open` verifies the hash.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .errors import ElscliError
from .pixels import (NO_RANGE, U8_OFFSET, U8_SCALE, as_labels, float_to_u8_if_exact, nonnegative_range_warning,
                     u8_to_float)

FORMAT = "elscli.bank"
SCHEMA_VERSION = 1


def _as_nchw(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None] if a.shape[0] in (1, 3) else a[:, None]
    elif a.ndim == 2:
        a = a[None, None]
    if a.ndim != 4:
        raise ElscliError(f"bank images must be (N, C, H, W), (C, H, W) or (N, H, W); got shape {a.shape}")
    return a


def compute_content_hash(codes: np.ndarray, labels: np.ndarray) -> str:
    """The documented content hash (see the module docstring): 64 hex digits of SHA-256.

    ``codes`` (N, C, H, W) uint8 or float32 as stored; ``labels`` (N,) integers.  Raises KeyError for
    another dtype (callers have checked it).
    """
    codes = np.ascontiguousarray(codes)
    dt = {np.dtype(np.uint8): "uint8", np.dtype(np.float32): "float32"}[codes.dtype]
    h = hashlib.sha256()
    h.update(f"elscli.bank.v1|{dt}|{','.join(str(int(s)) for s in codes.shape)}|".encode("ascii"))
    h.update(codes.astype(codes.dtype.newbyteorder("<"), copy=False).tobytes())
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return h.hexdigest()


class Bank:
    """N training images (N, C, H, W) on [-1, 1] with labels; see the module docstring for the file schema.

    Build one with :meth:`from_arrays`, :meth:`open` or :func:`build_bank`.  ``codes`` holds the stored
    values (uint8 codes when ``eight_bit``, else float32 pixels), ``labels`` (N,) int64 (-1 unlabelled),
    ``source`` the provenance, ``path`` the file it was read from (or None), ``content_hash`` the hash of
    :func:`compute_content_hash`.  The constructor is internal; it raises ElscliError for another dtype.
    """

    def __init__(self, codes: np.ndarray, labels: np.ndarray, *, source: Optional[dict] = None,
                 path: Optional[str] = None, content_hash: Optional[str] = None,
                 class_index: Optional[Dict[int, np.ndarray]] = None):
        # Internal: use from_arrays / open.
        self.codes = np.ascontiguousarray(codes)
        if self.codes.dtype not in (np.uint8, np.float32):
            raise ElscliError(f"bank codes must be uint8 or float32, not {self.codes.dtype}")
        self.eight_bit = self.codes.dtype == np.uint8
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.source = dict(source or {})
        self.path = None if path is None else str(path)
        self.content_hash = content_hash or compute_content_hash(self.codes, self.labels)
        if class_index is None:
            class_index = {int(k): np.flatnonzero(self.labels == k).astype(np.int64)
                           for k in np.unique(self.labels[self.labels >= 0])}
        self._class_index = class_index
        self._images: Optional[np.ndarray] = None

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_arrays(cls, images, labels=None, source: Optional[dict] = None,
                    value_range: Optional[str] = None) -> "Bank":
        """A bank from arrays.

        Parameters
        ----------
        images : array_like
            (N, C, H, W), (C, H, W) (N = 1) or (N, H, W) (C = 1, when ``labels`` has N entries), C in {1, 3}:
            uint8 (or integer) codes 0..255 (value ``code/127.5 - 1``) or floats in [-1, 1] (stored as
            uint8 when every value is exactly an 8-bit level ``float32(u/127.5 - 1)``, else float32).
            Floats with no value below 0 give an :class:`~elscli.errors.ElscliWarning` (recorded in
            ``source["warnings"]``): images on [0, 1] or [0, 255] must be mapped to [-1, 1] first.
        labels : array_like, optional
            (N,) integers >= -1 (-1: unlabelled); default all -1.
        source : dict, optional
            Provenance to record (default ``{"reader": "arrays"}``).
        value_range : None or "none"
            ``"none"``: ``images`` are float data of any channel count (latents) on their own scale, stored
            as float32 as they are (``(N, C, H, W)`` only).

        Raises
        ------
        ElscliError
            Another dtype, a bad shape or channel count, no images, codes outside 0..255, floats outside
            [-1, 1] or not finite, bad labels; with ``value_range="none"``, integer (8-bit) data.
        """
        a = np.asarray(images)
        if a.dtype == object or a.dtype.kind not in "fiub" or a.dtype.kind == "b":
            raise ElscliError(f"bank images must be uint8 or float, not {a.dtype}")
        if value_range is not None:
            from .pixels import float_source_to_internal

            if value_range != NO_RANGE:
                raise ElscliError(f"Bank.from_arrays: value_range is None (pixels on [-1, 1]) or 'none', "
                                  f"not {value_range!r}")
            if a.ndim != 4 or min(a.shape) < 1:
                raise ElscliError(f"latent bank data must be (N, C, H, W) with no empty axis; got shape {a.shape}")
            codes, _, _ = float_source_to_internal(a, NO_RANGE, "the bank data")
            lab = np.full(a.shape[0], -1, np.int64) if labels is None else as_labels(labels, a.shape[0], "bank labels")
            return cls(codes, lab, source={**(source or {"reader": "arrays"}), "value_range": NO_RANGE})
        if a.ndim == 3 and labels is not None and np.ndim(labels) == 1 and len(labels) == a.shape[0]:
            a = a[:, None]  # labels say the first axis is N: (N, H, W)
        a = _as_nchw(a)
        warned = []
        n, c, h, w = a.shape
        if n < 1 or h < 1 or w < 1:
            raise ElscliError(f"a bank needs at least one non-empty image; got shape {a.shape}")
        if c not in (1, 3):
            raise ElscliError(f"bank images must have 1 or 3 channels; got {c} (shape {a.shape})")
        if a.dtype == np.uint8:
            codes = a
        elif a.dtype.kind in "iu":
            if a.min() < 0 or a.max() > 255:
                raise ElscliError("integer bank images must be 8-bit codes in 0..255")
            codes = a.astype(np.uint8)
        else:
            if not np.all(np.isfinite(a)):
                raise ElscliError("bank images contain NaN or infinite values")
            lo, hi = float(a.min()), float(a.max())
            if lo < -1.0 or hi > 1.0:
                raise ElscliError(f"bank images must lie in [-1, 1]; got values in [{lo:g}, {hi:g}]")
            if lo >= 0.0:
                warned.append(nonnegative_range_warning("the bank images", lo, hi).replace(
                    "pass --value-range 0,1 or 0,255", "map them to [-1, 1] first (2x - 1, or x/127.5 - 1)"))
            exact = float_to_u8_if_exact(a)
            codes = exact if exact is not None else a.astype(np.float32)
        if labels is None:
            lab = np.full(n, -1, dtype=np.int64)
        else:
            lab = as_labels(labels, n, "bank labels")
        source = dict(source or {"reader": "arrays"})
        if warned:
            source["warnings"] = list(source.get("warnings", [])) + warned
            _warn(warned)
        return cls(codes, lab, source=source)

    @classmethod
    def open(cls, path: Union[str, os.PathLike]) -> "Bank":
        """Open a bank file (reading every pixel and verifying the content hash and class index sets).

        Raises ElscliError when it is missing, corrupt, not a bank, of another schema version, has an
        unexpected pixel map, or fails its hash check.
        """
        from .h5io import attr_str, open_h5

        path = Path(path)
        f = open_h5(path, "r", expected_format=FORMAT)
        try:
            with f:
                ver = int(f.attrs.get("schema_version", -1))
                if ver != SCHEMA_VERSION:
                    raise ElscliError(f"{str(path)!r} is bank schema version {ver}; this elscli reads version "
                                      f"{SCHEMA_VERSION}")
                for key in ("images", "labels"):
                    if key not in f:
                        raise ElscliError(f"{str(path)!r} is not a complete bank (no {key!r} dataset)")
                ds = f["images"]
                codes = ds[()]
                scale, offset = float(ds.attrs.get("scale", np.nan)), float(ds.attrs.get("offset", np.nan))
                labels = f["labels"][()]
                class_index = {}
                if "classes" in f:
                    for k, d in f["classes"].items():
                        class_index[int(k)] = np.asarray(d[()], dtype=np.int64)
                stored_hash = attr_str(f, "content_hash")
                source = json.loads(attr_str(f, "source") or "{}")
        except ElscliError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ElscliError(f"{str(path)!r} is corrupt or truncated ({_first_line(exc)})") from None
        if codes.dtype == np.uint8:
            if not (np.isclose(scale, U8_SCALE, rtol=0, atol=1e-12) and offset == U8_OFFSET):
                raise ElscliError(f"{str(path)!r}: uint8 images with an unexpected map (scale {scale}, offset {offset})")
        elif codes.dtype == np.float32:
            if not (scale == 1.0 and offset == 0.0):
                raise ElscliError(f"{str(path)!r}: float32 images with an unexpected map (scale {scale}, offset {offset})")
        else:
            raise ElscliError(f"{str(path)!r}: images have dtype {codes.dtype}, expected uint8 or float32")
        if codes.ndim != 4 or labels.shape != (codes.shape[0],):
            raise ElscliError(f"{str(path)!r}: images {codes.shape} and labels {labels.shape} do not match")
        bank = cls(codes, labels, source=source, path=str(path), class_index=None)
        if stored_hash != bank.content_hash:
            raise ElscliError(f"{str(path)!r} fails its content hash check (stored {stored_hash[:12]}…, "
                              f"computed {bank.content_hash[:12]}…): the file is corrupt")
        if set(class_index) != set(bank._class_index) or any(
                not np.array_equal(class_index[k], bank._class_index[k]) for k in class_index):
            raise ElscliError(f"{str(path)!r}: its class index sets do not match its labels (corrupt file)")
        bank._class_index = class_index
        return bank

    # ---------------------------------------------------------------- views
    @property
    def value_range(self) -> str:
        """``"-1,1"`` for pixels on the [-1, 1] scale, ``"none"`` for data stored as is (latents)."""
        return NO_RANGE if self.source.get("value_range") == NO_RANGE else "-1,1"

    @property
    def images(self) -> np.ndarray:
        """(N, C, H, W) float32 on [-1, 1] (or as stored, for ``value_range == "none"``), C-contiguous
        (computed once from the stored codes; do not modify)."""
        if self._images is None:
            self._images = u8_to_float(self.codes) if self.eight_bit else self.codes.copy()
        return self._images

    @property
    def scale(self) -> float:
        """Pixel value per stored unit: 1/127.5 for uint8 codes, 1 for float32 (value = code·scale + offset)."""
        return U8_SCALE if self.eight_bit else 1.0

    @property
    def offset(self) -> float:
        """The offset of the pixel map: -1 for uint8 codes, 0 for float32."""
        return U8_OFFSET if self.eight_bit else 0.0

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def shape(self) -> tuple:
        """The image shape (C, H, W) as a tuple of ints."""
        return tuple(int(s) for s in self.codes.shape[1:])

    @property
    def classes(self) -> np.ndarray:
        """Sorted unique labels >= 0, (K,) int64 (empty for an unlabelled bank)."""
        return np.asarray(sorted(self._class_index), dtype=np.int64)

    def indices_for(self, label) -> np.ndarray:
        """int64 indices (ascending) of the images with ``label``; ElscliError when there are none."""
        try:
            key = int(label)
        except (TypeError, ValueError):
            raise ElscliError(f"label {label!r} is not an integer") from None
        idx = self._class_index.get(key)
        if idx is None or idx.size == 0:
            where = self.path or "this bank"
            raise ElscliError(f"label {key} has no images in bank {where!r} (labels present: "
                              f"{','.join(map(str, self.classes)) or 'none'})")
        return idx.copy()

    def subset(self, indices) -> "Bank":
        """A new bank with the images at ``indices`` (int array or boolean mask; in that order).

        Raises ElscliError for an empty selection or an index out of range."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size == 0:
            raise ElscliError("subset of a bank needs at least one index")
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise ElscliError(f"subset index out of range for a bank of {len(self)} images")
        source = {"reader": "bank-subset", "parent_content_hash": self.content_hash, "parent_path": self.path,
                  "n": int(idx.size)}
        if "label_names" in self.source:
            source["label_names"] = self.source["label_names"]
        return Bank(self.codes[idx], self.labels[idx], source=source)

    def __repr__(self) -> str:
        return (f"Bank(n={len(self)}, shape={self.shape}, dtype={self.codes.dtype}, classes={len(self.classes)}, "
                f"hash={self.content_hash[:12]}, path={self.path!r})")

    # ---------------------------------------------------------------- writing
    def save(self, path: Union[str, os.PathLike], force: bool = False, params: Optional[dict] = None) -> None:
        """Write the bank (schema in the module docstring) atomically, through :func:`elscli.h5io.atomic_output`.

        ``params`` (the command's parameters) are stored as JSON.  Raises ElscliError when ``path`` exists
        without ``force`` or its directory is missing or not writable.
        """
        import h5py

        from .h5io import atomic_output, write_root_attrs

        n, c, h, w = self.codes.shape
        per = max(1, min(n, (1 << 20) // max(1, c * h * w * self.codes.itemsize)))
        with atomic_output(path, force=force) as tmp:
            with h5py.File(tmp, "w") as f:
                write_root_attrs(f, FORMAT, SCHEMA_VERSION, params,
                                 content_hash=self.content_hash,
                                 source=json.dumps(self.source, sort_keys=True, default=str),
                                 n_images=n, image_shape=np.asarray([c, h, w], dtype=np.int64),
                                 eight_bit=bool(self.eight_bit))
                ds = f.create_dataset("images", data=self.codes, chunks=(per, c, h, w), compression="gzip",
                                      compression_opts=4, shuffle=True, fletcher32=True)
                ds.attrs["scale"] = float(self.scale)
                ds.attrs["offset"] = float(self.offset)
                ds.attrs["value"] = "code * scale + offset, as float32(code/127.5 - 1) for uint8"
                f.create_dataset("labels", data=self.labels, chunks=(max(1, min(n, 1 << 16)),),
                                 compression="gzip", fletcher32=True)
                g = f.create_group("classes")
                for k, idx in sorted(self._class_index.items()):
                    g.create_dataset(str(k), data=idx, fletcher32=True, chunks=(max(1, min(idx.size, 1 << 16)),)) \
                        if idx.size else g.create_dataset(str(k), data=idx)
        self.path = str(path)


def bank_images(bank) -> np.ndarray:
    """The (N, C, H, W) images on [-1, 1] of a :class:`Bank` (its float32 ``images``) or of a raw array."""
    images = getattr(bank, "images", None)
    return np.asarray(bank if images is None else images)


def build_bank(source: Union[str, os.PathLike], fmt: Optional[str] = None, *, coarse: bool = False,
               value_range: Optional[str] = None, layout: Optional[str] = None, **options: Any):
    """Read a training set and return ``(bank, stats)``: what ``elscli build-bank`` writes.

    Parameters
    ----------
    source : path-like
        A training set in any format of :mod:`elscli.readers`, or an elscli bank file (to take a subset,
        resize or convert it).
    fmt : str, optional
        Force a reader (``idx``, ``cifar``, ``folder``, ``edm``, ``npy``, ``bank``); detected from the path
        when None.
    coarse, value_range, layout
        Reader options (:func:`elscli.readers.read_raw`).
    **options
        Selection and transforms (:func:`elscli.readers.prepare`: ``size``, ``color``, ``limit``,
        ``classes``, ``subset_seed``, ``dedup``, ``progress``, ``progress_interval``).

    Returns
    -------
    (Bank, dict)
        The bank (in memory; :meth:`Bank.save` writes it) and counts (``n_read``, ``n_selected``,
        ``duplicates_dropped``).  The readers' warnings (``source["warnings"]``) are issued as
        :class:`~elscli.errors.ElscliWarning`.

    Raises
    ------
    ElscliError
        Missing, unreadable or malformed source; an empty selection; bad options.
    """
    from .readers import (detect_format, finish_raw, normalise_format, prepare, read_raw,
                          refuse_unused_reader_options)

    path = Path(source)
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    fmt = normalise_format(fmt) or detect_format(path)
    if fmt == "bank":
        refuse_unused_reader_options(fmt, path, coarse=coarse, value_range=value_range, layout=layout)
        raw = finish_raw(read_bank_source(path), path, fmt)
    else:
        raw = read_raw(path, fmt, coarse=coarse, value_range=value_range, layout=layout)
    res = prepare(raw, **options)
    bank = Bank(res.images, res.labels, source=res.source)
    _warn(res.source.get("warnings", []), stacklevel=3)
    return bank, res.stats


def read_bank_source(path: Union[str, os.PathLike]):
    """An existing bank file as a training-set source for :func:`build_bank`.

    Returns a :class:`elscli.readers.RawImages` holding the bank's stored codes (uint8, or float32 on
    [-1, 1]) and labels, with provenance naming the parent bank's content hash.  Raises ElscliError as
    :meth:`Bank.open` does (missing, corrupt, failed hash check).
    """
    from .readers import RawImages

    path = Path(path)
    bank = Bank.open(path)
    source = {"reader": "bank", "path": str(path), "parent_content_hash": bank.content_hash,
              "native_shape": list(bank.shape), "n_source": len(bank)}
    names = bank.source.get("label_names") if isinstance(bank.source, dict) else None
    if names:
        source["label_names"] = names
    if bank.value_range == NO_RANGE:
        source["value_range"] = NO_RANGE
    return RawImages(images=bank.codes.copy(), labels=bank.labels.copy(), eight_bit=bank.eight_bit, source=source)


def _warn(messages, stacklevel: int = 2) -> None:
    """Each message as an :class:`elscli.errors.ElscliWarning` (the CLI prints them on stderr)."""
    import warnings

    from .errors import ElscliWarning

    for msg in messages:
        warnings.warn(msg, ElscliWarning, stacklevel=stacklevel + 1)


def describe_bank(path_or_h5file) -> Dict[str, Any]:
    """A JSON-ready summary of a bank file, without reading its pixels: what ``elscli info`` shows.

    ``path_or_h5file``: a path, or an open h5py.File (left open).  Raises ElscliError for a missing,
    foreign, corrupt or truncated file.
    """
    import h5py

    from .h5io import attr_str, open_h5, read_params

    own = not isinstance(path_or_h5file, h5py.File)
    f = open_h5(path_or_h5file, "r", expected_format=FORMAT) if own else path_or_h5file
    path = str(path_or_h5file) if own else f.filename
    try:
        ds = f["images"]
        labels = f["labels"][()]
        uniq, counts = np.unique(labels, return_counts=True)
        hist = {str(int(k)): int(v) for k, v in zip(uniq, counts) if k >= 0}
        source = json.loads(attr_str(f, "source") or "{}")
        names = source.get("label_names") or {}
        out: Dict[str, Any] = {
            "path": path,
            "format": FORMAT,
            "schema_version": int(f.attrs.get("schema_version", -1)),
            "elscli_version": attr_str(f, "elscli_version"),
            "n_images": int(ds.shape[0]),
            "image_shape": [int(s) for s in ds.shape[1:]],
            "dtype": str(ds.dtype),
            "scale": float(ds.attrs.get("scale", np.nan)),
            "offset": float(ds.attrs.get("offset", np.nan)),
            "n_classes": len(hist),
            "n_unlabelled": int((labels < 0).sum()),
            "labels": hist,
            "content_hash": attr_str(f, "content_hash"),
            "source": source,
            "params": read_params(f),
        }
        if names:
            out["label_names"] = {k: names.get(k, "") for k in hist}
        if source.get("warnings"):
            out["warnings"] = list(source["warnings"])
        try:
            out["file_bytes"] = os.path.getsize(path)
        except OSError:
            pass
        return out
    except ElscliError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ElscliError(f"{path!r} is corrupt or truncated ({_first_line(exc)})") from None
    finally:
        if own:
            f.close()


def verify_bank(path: Union[str, os.PathLike]) -> List[str]:
    """Read every pixel of a bank file and check it (``elscli info --verify``); returns the checks made.

    The HDF5 fletcher32 checksums, the content hash, the class index sets (:meth:`Bank.open`), and the
    pixels themselves: every value finite and on [-1, 1].  Raises ElscliError naming the first failure."""
    bank = Bank.open(path)
    checks = ["fletcher32 checksums of every chunk", "content hash", "class index sets"]
    if bank.codes.dtype == np.float32:
        bad = ~np.isfinite(bank.codes)
        if bad.any():
            n, c, i, j = (int(v) for v in np.argwhere(bad)[0])
            raise ElscliError(f"{str(path)!r} fails verification: {int(bad.sum())} pixel(s) are NaN or infinite "
                              f"(the first: image {n}, channel {c}, row {i}, column {j})")
        lo, hi = float(bank.codes.min()), float(bank.codes.max())
        if lo < -1.0 or hi > 1.0:
            raise ElscliError(f"{str(path)!r} fails verification: pixel values span [{lo:g}, {hi:g}], outside the "
                              "[-1, 1] scale of a bank")
        checks.append("every pixel finite and on [-1, 1]")
    else:
        checks.append("8-bit codes (every pixel on [-1, 1])")
    if np.any(bank.labels < -1):
        raise ElscliError(f"{str(path)!r} fails verification: labels below -1")
    return checks


def _first_line(exc: BaseException) -> str:
    from .errors import reason

    return reason(exc)


def build_bank_file(source: Union[str, os.PathLike], output: Union[str, os.PathLike], fmt: Optional[str] = None, *,
                    force: bool = False, params: Optional[dict] = None, **options: Any):
    """:func:`build_bank` then :meth:`Bank.save`: what ``elscli build-bank`` does.

    The source is checked, and the output claimed (:func:`elscli.outputs.claim_output`: a concurrent writer of
    it is refused, an existing file is refused unless ``force``), before any work; the claim is held until
    the bank is in place.  ``params`` (the command's parameters) are recorded in the file; ``options`` are
    those of :func:`build_bank`.  Returns ``(bank, stats)``.  Raises ElscliError as :func:`build_bank` does,
    and when the output is refused or its directory is missing or read-only.
    """
    from .outputs import claim_output, refuse_same_files

    if not Path(source).exists():
        raise ElscliError(f"{str(source)!r} does not exist")
    refuse_same_files([("SOURCE", source)], [("-o", output)])   # a bank rebuilt onto itself: refused
    with claim_output(output, force) as out:
        bank, stats = build_bank(source, fmt, **options)
        bank.save(out, force=force, params=params)
    return bank, stats
