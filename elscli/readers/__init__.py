"""Readers: training sets in the formats researchers already have -> 8-bit (or float) image arrays.

One module per format, auto-detected from the path (:func:`detect_format`) unless forced:

=========  ==========================================================================================
``idx``     MNIST / FashionMNIST IDX files, raw or ``.gz`` (:mod:`.idx`)
``cifar``   CIFAR-10 / CIFAR-100 python batches: extracted directory, one batch file or ``.tar.gz`` (:mod:`.cifar`)
``folder``  image folders, one sub-folder per class or flat (:mod:`.folder`)
``edm``     EDM ``dataset_tool.py`` datasets: the folder (``00000/img00000000.png``, …, ``dataset.json``) or
            its ``.zip``, labels from ``dataset.json`` (:mod:`.edm`)
``npy``     ``.npy`` / ``.npz`` arrays (:mod:`.arrays`)
=========  ==========================================================================================

An existing elscli bank is also a source of ``elscli build-bank`` (format ``bank``, detected from the HDF5
signature), but it is read by :func:`elscli.bank.build_bank`, above this package: readers know nothing of
banks, so the two never import each other.

:func:`load_images` reads a source and then applies, in this order: class selection (``classes``), the
subset (``limit`` images — the first ones, or a seeded random choice kept in source order with
``subset_seed``), colour conversion (``grayscale``: Pillow ``convert('L')``, ITU-R 601 luma; ``rgb``:
grey replicated to three channels), resizing, and ``dedup`` (identical final images dropped, the first kept).

Resizing (``size`` S > 0, default 32 as in the paper) is Pillow's ``Image.resize((S, S), Image.BILINEAR)`` on
the 8-bit image (RGB images as one RGB image), and the result stays 8-bit — what the paper's torchvision
pipeline did.  Float sources that are not exactly 8-bit are resized per channel as Pillow mode ``'F'``
(float32) images with the same filter, on the [-1, 1] scale, and stay float.  Images already S×S are not
touched.  ``size=0`` keeps the native size (all images must then share it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import ElscliError, reason
from ..progress import Progress
from ..pixels import NO_RANGE, U8_OFFSET, U8_SCALE, VALUE_RANGES, float_to_u8_if_exact, u8_to_float
from ._common import RawImages

FORMATS = ("idx", "cifar", "folder", "edm", "npy", "bank")
_ALIASES = {"mnist": "idx", "fashion-mnist": "idx", "fashionmnist": "idx", "cifar10": "cifar",
            "cifar100": "cifar", "cifar-10": "cifar", "cifar-100": "cifar", "npz": "npy", "images": "folder",
            "imagefolder": "folder", "edm2": "edm", "dataset_tool": "edm", "dataset-tool": "edm", "zip": "edm"}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

__all__ = ["FORMATS", "RawImages", "Images", "detect_format", "read_raw", "finish_raw", "prepare", "load_images",
           "resize_u8", "resize_float", "to_grayscale", "u8_to_float", "float_to_u8_if_exact",
           "U8_SCALE", "U8_OFFSET", "VALUE_RANGES"]


@dataclass
class Images:
    """The pipeline's result (:func:`prepare`): the images a bank will hold.

    ``images`` (N, C, H, W): uint8 codes when ``eight_bit`` (pixel value ``code/127.5 - 1``), else float32
    on [-1, 1]; ``labels`` (N,) int64, -1 unlabelled; ``source`` the provenance (reader, selection,
    transform, warnings); ``stats`` counts (``n_read``, ``n_selected``, ``duplicates_dropped``).
    """

    images: np.ndarray
    labels: np.ndarray
    eight_bit: bool
    source: Dict[str, Any] = field(default_factory=dict)
    stats: Dict[str, Any] = field(default_factory=dict)


def normalise_format(fmt: Optional[str]) -> Optional[str]:
    """A format name or alias (``mnist``, ``cifar10``, ``npz``, ``edm2``...) -> one of :data:`FORMATS`; None
    stays None.  Raises ElscliError for an unknown name."""
    if fmt is None:
        return None
    f = str(fmt).lower()
    f = _ALIASES.get(f, f)
    if f not in FORMATS:
        raise ElscliError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return f


def detect_format(path: Union[str, Path]) -> str:
    """Which reader handles ``path``: one of :data:`FORMATS`, from magic numbers and directory contents.

    Raises ElscliError when it does not exist, is unreadable, is a single image file, or is not recognised.
    """
    from .cifar import is_cifar_pickle, looks_like_cifar_dir
    from .edm import is_edm_zip, looks_like_edm_dir
    from .folder import IMAGE_SUFFIXES, looks_like_image_folder
    from .idx import is_idx_file

    path = Path(path)
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    if path.is_dir():
        try:
            entries = list(path.iterdir())
        except PermissionError:
            raise ElscliError(f"directory {str(path)!r} is not readable (permission denied)") from None
        if looks_like_cifar_dir(path):
            return "cifar"
        if any(p.is_file() and is_idx_file(p) for p in entries):
            return "idx"
        if looks_like_edm_dir(path):  # before image folders: its numbered sub-folders are not classes
            return "edm"
        if looks_like_image_folder(path):
            return "folder"
        raise ElscliError(f"cannot tell what directory {str(path)!r} holds: no IDX files, CIFAR batches or "
                          f"images found (use --format to force a reader)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except PermissionError:
        raise ElscliError(f"{str(path)!r} is not readable (permission denied)") from None
    name = path.name.lower()
    if head.startswith(HDF5_SIGNATURE):
        return "bank"
    if head.startswith(b"\x93NUMPY") or (head.startswith(b"PK") and name.endswith(".npz")):
        return "npy"
    if is_idx_file(path):
        return "idx"
    if head.startswith(b"\x1f\x8b"):       # gzip (RFC 1952): a stream that is corrupt or breaks off is said so
        import gzip
        import zlib

        try:
            with gzip.open(path) as g:
                g.read(1 << 16)
        except PermissionError:
            pass
        except (OSError, EOFError, zlib.error) as exc:
            raise ElscliError(f"{str(path)!r} is a corrupt or truncated gzip file ({reason(exc)})") from None
    if head.startswith(b"\x1f\x8b") or name.endswith((".tar", ".tar.gz", ".tgz")):
        import tarfile
        import zlib

        try:
            if tarfile.is_tarfile(path):
                return "cifar"
        except PermissionError:
            pass                                  # said by the reader that opens it
        except (OSError, EOFError, zlib.error) as exc:     # a gzip stream that is corrupt or breaks off
            raise ElscliError(f"{str(path)!r} is a corrupt or truncated archive ({reason(exc)})") from None
    if is_cifar_pickle(path):
        return "cifar"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ElscliError(f"{str(path)!r} is a single image; give the folder that holds the images")
    if head.startswith(b"PK"):
        return "edm" if name.endswith(".zip") or is_edm_zip(path) else "npy"
    raise ElscliError(f"unknown format: cannot tell what {str(path)!r} holds (not IDX, CIFAR, .npy/.npz, "
                      f"an image folder or an elscli bank; use --format to force a reader)")


#: The largest ``size`` (S×S) images are resized to: far beyond the images these machines are for, and small
#: enough that one image of it fits in memory.
MAX_SIZE = 16384


def refuse_unused_reader_options(fmt: str, path: Union[str, Path], *, coarse: bool = False,
                                 value_range: Optional[str] = None, layout: Optional[str] = None) -> None:
    """Refuse a reader option the reader of ``fmt`` does not use (it would be accepted and ignored):
    ``coarse`` is for CIFAR, ``layout`` and a ``value_range`` other than ``none`` for ``.npy``/``.npz`` arrays
    (``none`` also for an elscli bank of latents, which keeps its own range).  Raises ElscliError."""
    kind = {"bank": "an elscli bank", "npy": "a .npy/.npz array", "cifar": "CIFAR data", "idx": "IDX data",
            "folder": "an image folder", "edm": "an EDM dataset"}.get(fmt, f"{fmt} data")
    what = f"{str(path)!r} is {kind}"
    if coarse and fmt != "cifar":
        raise ElscliError(f"--coarse chooses CIFAR-100's coarse labels; {what}: drop --coarse")
    if layout is not None and fmt != "npy":
        raise ElscliError(f"--layout is for .npy/.npz arrays; {what}: drop --layout")
    if value_range is not None and value_range != NO_RANGE and fmt != "npy":
        raise ElscliError(f"--value-range is for float .npy/.npz arrays; {what} (its pixel values are "
                          f"{'the bank' + chr(39) + 's own' if fmt == 'bank' else '8-bit'}): drop --value-range")


def read_raw(path: Union[str, Path], fmt: Optional[str] = None, *, coarse: bool = False,
             value_range: Optional[str] = None, layout: Optional[str] = None) -> RawImages:
    """Read a training set with the reader of ``fmt`` (detected when None), without selection or resizing.

    Parameters
    ----------
    path : path-like
        The source (file or directory).
    fmt : str, optional
        ``idx``, ``cifar``, ``folder``, ``edm`` or ``npy`` (aliases such as ``mnist``, ``cifar10``, ``npz``
        too).
    coarse : bool
        CIFAR-100: the 20 coarse labels instead of the 100 fine ones.
    value_range : str, optional
        Float arrays: the range of their values (a key of :data:`elscli.pixels.VALUE_RANGES`; default
        ``-1,1``), or ``none``: float data of any channel count (latents) kept as it is (arrays only).
    layout : str, optional
        Arrays: ``nchw`` or ``nhwc`` (default: from the axis of size 1 or 3).

    Returns
    -------
    RawImages
        uint8 codes (``eight_bit``) or float32 pixels on [-1, 1], (N, C, H, W) or a sequence of (C, H, W);
        labels (N,) int64 (-1: unlabelled); provenance (and any ``warnings``) in ``source``.

    Raises
    ------
    ElscliError
        Missing or unrecognised source, a malformed file, no images, an unknown option value, or an elscli
        bank (read those with :func:`elscli.bank.build_bank`).
    """
    path = Path(path)
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    fmt = normalise_format(fmt) or detect_format(path)
    if value_range is not None and value_range != NO_RANGE and value_range not in VALUE_RANGES:
        raise ElscliError(f"unknown value range {value_range!r}; use one of {', '.join(VALUE_RANGES)}, {NO_RANGE}")
    refuse_unused_reader_options(fmt, path, coarse=coarse, value_range=value_range, layout=layout)
    if value_range == NO_RANGE and fmt not in ("npy", "bank"):
        raise ElscliError(f"--value-range none keeps float arrays (latents) as they are; {str(path)!r} is "
                          f"8-bit {fmt} data: drop --value-range none")
    if fmt == "bank":
        raise ElscliError(f"{str(path)!r} is an elscli bank, not a training set for the readers; "
                          "elscli.bank.build_bank (elscli build-bank) reads it")
    if fmt == "idx":
        from .idx import read_idx

        raw = read_idx(path)
    elif fmt == "cifar":
        from .cifar import read_cifar

        raw = read_cifar(path, coarse=coarse)
    elif fmt == "folder":
        from .folder import read_folder

        raw = read_folder(path)
    elif fmt == "edm":
        from .edm import read_edm

        raw = read_edm(path)
    else:
        from .arrays import read_arrays

        raw = read_arrays(path, value_range=value_range, layout=layout)
    return finish_raw(raw, path, fmt)


def finish_raw(raw: RawImages, path: Union[str, Path], fmt: str) -> RawImages:
    """Check that a reader found images, and record ``format`` and ``path_resolved`` in its provenance.

    Returns ``raw`` (modified in place); raises ElscliError when it holds no images."""
    path = Path(path)
    if len(raw) == 0:
        raise ElscliError(f"{str(path)!r} holds no images")
    raw.source.setdefault("format", fmt)
    raw.source.setdefault("path_resolved", str(path.resolve()))
    return raw


# --------------------------------------------------------------------------------------------- transforms
def resize_u8(img: np.ndarray, size: int) -> np.ndarray:
    """Resize an 8-bit image as the paper's torchvision pipeline did.

    (C, H, W) uint8 with C = 1 or 3 -> (C, size, size) uint8, by Pillow ``resize((size, size),
    Image.BILINEAR)`` on the 8-bit image (an RGB image as one RGB image).  Returned unchanged when already
    size x size.
    """
    from PIL import Image

    if img.shape[1:] == (size, size):
        return img
    if img.shape[0] == 1:
        out = np.asarray(Image.fromarray(img[0], mode="L").resize((size, size), Image.BILINEAR))
        return out[None].copy()
    out = np.asarray(Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)), mode="RGB")
                     .resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def resize_float(img: np.ndarray, size: int, clip: bool = True) -> np.ndarray:
    """Resize a float image: (C, H, W) float32 on [-1, 1] (any C and scale with ``clip=False``: latents) ->
    (C, size, size) float32.

    Each channel is resized as a Pillow mode ``'F'`` image with ``Image.BILINEAR`` (the filter of
    :func:`resize_u8`), then clipped to [-1, 1] when ``clip``.  Returned unchanged when already size x size.
    """
    from PIL import Image

    if img.shape[1:] == (size, size):
        return img
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F")
                        .resize((size, size), Image.BILINEAR), dtype=np.float32) for c in img]
    out = np.stack(chans)
    return (np.clip(out, -1.0, 1.0) if clip else out).astype(np.float32)


def to_grayscale(img: np.ndarray, eight_bit: bool) -> np.ndarray:
    """An RGB image to grey: (3, H, W) -> (1, H, W), same dtype; a grey image is returned unchanged.

    8-bit: Pillow ``convert('L')`` (ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, rounded by Pillow);
    float32: the same weights in float64, clipped to [-1, 1].
    """
    if img.shape[0] == 1:
        return img
    if eight_bit:
        from PIL import Image

        return np.asarray(Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)), mode="RGB")
                          .convert("L"))[None].copy()
    g = img[0].astype(np.float64) * 0.299 + img[1] * 0.587 + img[2] * 0.114
    return np.clip(g, -1.0, 1.0).astype(np.float32)[None]


def parse_classes(classes: Union[None, str, Sequence], label_names: Optional[Dict[str, str]]) -> Optional[List[int]]:
    """``--classes``: ``"0,3,7"`` (or folder class names, or a sequence) -> sorted unique labels [0, 3, 7].

    ``label_names`` maps label (as str) -> class name.  None gives None (no selection).  Raises
    ElscliError for an empty list or a token that is neither an integer nor a known class name.
    """
    if classes is None:
        return None
    tokens = [t.strip() for t in classes.split(",")] if isinstance(classes, str) else [str(c) for c in classes]
    tokens = [t for t in tokens if t != ""]
    if not tokens:
        raise ElscliError("--classes is empty; give labels such as 0,3,7")
    by_name = {v: int(k) for k, v in (label_names or {}).items()}
    out = []
    for t in tokens:
        try:
            out.append(int(t))
        except ValueError:
            if t in by_name:
                out.append(by_name[t])
            else:
                raise ElscliError(f"--classes: {t!r} is neither an integer label nor a class name"
                                  + (f" (names: {', '.join(sorted(by_name))})" if by_name else "")) from None
    return sorted(set(out))


def prepare(raw: RawImages, *, size: int = 32, color: Optional[str] = None, limit: Optional[int] = None,
            classes=None, subset_seed: Optional[int] = None, dedup: bool = False, progress: bool = False,
            progress_interval: Optional[float] = None) -> Images:
    """Selection, colour conversion, resizing and de-duplication (in that order; see the module docstring).

    Parameters
    ----------
    raw : RawImages
        A reader's output.
    size : int
        Resize to size x size (:func:`resize_u8` / :func:`resize_float`); 0 keeps the native size.
    color : {None, "grayscale", "rgb"}
        Colour conversion; None keeps the source's channels (grey images join RGB ones as RGB).
    limit : int, optional
        Keep at most this many images (after ``classes``): the first ones, or with ``subset_seed`` the
        indices ``numpy.random.default_rng(subset_seed).choice(n, limit, replace=False)``, sorted.  When the
        first ones hold fewer classes than the selection they were taken from, a warning (in
        ``source["warnings"]``) says so.
    classes : str or sequence, optional
        Labels (or class names) to keep (:func:`parse_classes`).
    dedup : bool
        Drop images identical (SHA-256 of their final bytes) to an earlier one.
    progress : bool
        Report the decoding of large image folders on stderr.
    progress_interval : float, optional
        Seconds between plain progress lines when stderr is not a terminal (None: 10,
        :data:`elscli.progress.DEFAULT_INTERVAL`; the CLI gives ``$ELSCLI_PROGRESS_INTERVAL``).

    Returns
    -------
    Images

    Raises
    ------
    ElscliError
        Empty selection, labels asked of an unlabelled source, bad options, or mixed sizes with ``size=0``.
    """
    path = raw.source.get("path", "source")
    n0 = len(raw)
    idx = np.arange(n0)
    wanted = parse_classes(classes, raw.source.get("label_names"))
    if wanted is not None:
        if np.all(raw.labels < 0):
            raise ElscliError(f"--classes given but {path!r} has no labels")
        idx = idx[np.isin(raw.labels, wanted)]
        if idx.size == 0:
            present = np.unique(raw.labels[raw.labels >= 0])
            raise ElscliError(f"empty selection: no image in {path!r} has label "
                              f"{','.join(map(str, wanted))} (labels present: "
                              f"{','.join(map(str, present[:20]))}{'…' if present.size > 20 else ''})")
    limit_warning = None
    if subset_seed is not None and limit is None:
        raise ElscliError("--subset-seed picks the random subset of --limit N: give --limit too (without it "
                          "every image is kept)")
    if limit is not None:
        if limit < 1:
            raise ElscliError(f"--limit must be at least 1 (got {limit})")
        if subset_seed is not None and not 0 <= int(subset_seed) < 2 ** 63:
            raise ElscliError(f"--subset-seed must be a non-negative integer below 2**63, got {subset_seed}")
        if limit < idx.size:
            if subset_seed is not None:
                pick = np.random.default_rng(subset_seed).choice(idx.size, size=limit, replace=False)
                idx = idx[np.sort(pick)]
            else:
                before = np.unique(raw.labels[idx][raw.labels[idx] >= 0])
                idx = idx[:limit]
                kept = np.unique(raw.labels[idx][raw.labels[idx] >= 0])
                if kept.size < before.size:
                    limit_warning = (f"--limit {limit} took the first {limit} images of {path!r}, which hold "
                                     f"{kept.size} of its {before.size} classes (labels "
                                     f"{','.join(map(str, kept[:10]))}{'…' if kept.size > 10 else ''}; the source "
                                     f"is sorted by class?); pass --subset-seed S for a seeded random subset")
    if color not in (None, "grayscale", "rgb"):
        raise ElscliError(f"unknown colour mode {color!r}")
    latent = raw.source.get("value_range") == NO_RANGE
    if latent and color is not None:
        raise ElscliError("--grayscale/--rgb convert pixel colours; data read with --value-range none (latents) "
                          "keeps its channels")
    if size < 0:
        raise ElscliError(f"--size must be 0 (native) or positive (got {size})")
    if size > MAX_SIZE:
        raise ElscliError(f"--size must be at most {MAX_SIZE} (got {size}): a bank holds every image at that size "
                          f"in memory")

    imgs = raw.images
    eight_bit = raw.eight_bit
    labels = raw.labels[idx]
    out: List[np.ndarray] = []
    if isinstance(imgs, np.ndarray):
        selected = [imgs[i] for i in idx]
    else:  # lazily-read images (folders): decode only the selected ones, once, with progress on big reads
        selected = []
        with Progress(total=int(idx.size), description="reading images", unit="image",
                      quiet=not progress or idx.size < 2000, interval=progress_interval) as bar:
            for i in idx:
                selected.append(imgs[i])
                bar.advance()
    chans = {im.shape[0] for im in selected}
    native = {im.shape for im in selected}
    if len(native) == 1 and "native_shape" not in raw.source:
        raw.source["native_shape"] = [int(s) for s in next(iter(native))]
    target_c = 1 if color == "grayscale" else 3 if (color == "rgb" or 3 in chans) else 1
    for im in selected:
        if latent:
            pass
        elif target_c == 1 and im.shape[0] == 3:
            im = to_grayscale(im, eight_bit)
        elif target_c == 3 and im.shape[0] == 1:
            im = np.repeat(im, 3, axis=0)
        if size > 0:
            im = resize_u8(im, size) if eight_bit else resize_float(im, size, clip=not latent)
        out.append(im)
    shapes = {}
    for k, im in zip(idx, out):
        shapes.setdefault(im.shape[1:], int(k))
    if len(shapes) > 1:
        items = list(shapes.items())[:2]
        names = raw.names or [f"image {j}" for j in range(n0)]
        desc = " and ".join(f"{h}x{w} in {names[j]!r}" for (h, w), j in items)
        raise ElscliError(f"images of mixed sizes in {path!r} ({desc}); pass --size S to resize them all "
                          f"(--size 0 keeps the native size, which must be the same for every image)")
    arr = np.ascontiguousarray(np.stack(out)) if out else np.zeros((0,), np.uint8)
    if not eight_bit:
        arr = arr.astype(np.float32)
    stats: Dict[str, Any] = {"n_read": int(n0), "n_selected": int(idx.size), "duplicates_dropped": 0}
    if dedup:
        seen: Dict[bytes, int] = {}
        keep = []
        for j in range(arr.shape[0]):
            h = hashlib.sha256(arr[j].tobytes()).digest()
            if h not in seen:
                seen[h] = j
                keep.append(j)
        stats["duplicates_dropped"] = int(arr.shape[0] - len(keep))
        if stats["duplicates_dropped"]:
            arr, labels, idx = arr[keep], labels[keep], idx[keep]
    source = dict(raw.source)
    if limit_warning is not None:
        source["warnings"] = list(source.get("warnings", [])) + [limit_warning]
    source["selection"] = {
        "classes": wanted, "limit": limit, "subset_seed": subset_seed, "dedup": bool(dedup),
        "n_selected": int(idx.size), "duplicates_dropped": stats["duplicates_dropped"],
    }
    if idx.size != n0:
        source["selection"]["source_indices_sha256"] = hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest()
        runs = _compact_ranges(idx)
        if len(runs) <= 1000:  # otherwise the options (classes, limit, subset_seed) and the sha256 identify it
            source["selection"]["source_indices"] = runs
    source["transform"] = {
        "size": int(size), "color": color or "native",
        "resize": None if size == 0 else "PIL.Image.resize((S, S), Image.BILINEAR) on "
                                          + ("8-bit images" if eight_bit else "float32 mode 'F' channels"),
    }
    return Images(images=arr, labels=labels.astype(np.int64), eight_bit=eight_bit, source=source, stats=stats)


def _compact_ranges(idx: np.ndarray) -> List[List[int]]:
    """Sorted indices as [start, stop) runs — a compact, exact record of which source images were taken."""
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [idx.size]])
    return [[int(idx[a]), int(idx[b - 1]) + 1] for a, b in zip(starts, stops)]


def load_images(path: Union[str, Path], fmt: Optional[str] = None, *, size: int = 32, color: Optional[str] = None,
                limit: Optional[int] = None, classes=None, subset_seed: Optional[int] = None, dedup: bool = False,
                value_range: Optional[str] = None, layout: Optional[str] = None, coarse: bool = False,
                progress: bool = False, progress_interval: Optional[float] = None) -> Images:
    """:func:`read_raw` then :func:`prepare`: the images a bank will hold (see both for the options).

    Returns :class:`Images`; raises ElscliError as they do."""
    raw = read_raw(path, fmt, coarse=coarse, value_range=value_range, layout=layout)
    return prepare(raw, size=size, color=color, limit=limit, classes=classes, subset_seed=subset_seed, dedup=dedup,
                   progress=progress, progress_interval=progress_interval)
