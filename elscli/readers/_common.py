"""What every reader returns, and the helpers readers share (8-bit detection, value ranges, labels)."""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import ElscliError

#: The affine map of 8-bit codes to the [-1, 1] pixel scale: value = code * U8_SCALE + U8_OFFSET.
U8_SCALE = 1.0 / 127.5
U8_OFFSET = -1.0

#: ``--value-range`` choices for float sources: name -> (low, high) of the source values.
VALUE_RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "0,255": (0.0, 255.0)}


@dataclass
class RawImages:
    """A reader's output, before selection, colour conversion and resizing.

    ``images`` is one ``(N, C, H, W)`` array, or a list of ``(C, H, W)`` arrays when the sizes (or channel
    counts) differ (image folders).  When ``eight_bit`` the arrays are ``uint8`` codes (0..255, pixel value
    ``code/127.5 - 1``); otherwise they are ``float32`` already on the [-1, 1] scale.
    """

    images: Union[np.ndarray, List[np.ndarray]]
    labels: np.ndarray
    eight_bit: bool
    source: Dict[str, Any] = field(default_factory=dict)
    #: per-image description for error messages (e.g. file names); optional
    names: Optional[List[str]] = None

    def __len__(self) -> int:
        return len(self.images)


def u8_to_float(codes: np.ndarray) -> np.ndarray:
    """8-bit codes to the [-1, 1] scale: ``float32(u8/127.5 - 1)`` computed in float64, then rounded."""
    return (codes.astype(np.float64) / 127.5 - 1.0).astype(np.float32)


def float_to_u8_if_exact(x: np.ndarray) -> Optional[np.ndarray]:
    """The uint8 codes of ``x`` (float on [-1, 1]) if every value is exactly ``float32(u/127.5 - 1)``, else None."""
    x32 = np.asarray(x, dtype=np.float32)
    if x32.size == 0 or not np.all(np.isfinite(x32)):
        return None
    codes = np.rint((x32.astype(np.float64) + 1.0) * 127.5)
    if codes.min() < 0 or codes.max() > 255:
        return None
    codes = codes.astype(np.uint8)
    if np.array_equal(u8_to_float(codes), x32):
        return codes
    return None


#: A float source is 8-bit when every value lies within this many float32 ulps (of the largest magnitude of
#: its value range: 1 for -1,1 and 0,1, 255 for 0,255) of an 8-bit level.  The usual torchvision pipeline,
#: ``ToTensor()`` then ``Normalize(0.5, 0.5)`` in float32, computes ``(float32(u/255) - 0.5)/0.5``, which
#: misses ``float32(u/127.5 - 1)`` by up to one such ulp; levels are 1/127.5 apart, ~66,000 ulps.
LEVEL_TOLERANCE_ULPS = 4


def nonnegative_range_warning(what: str, vmin: float, vmax: float) -> str:
    """The warning for a float array with no negative value read as [-1, 1] (probably [0, 1] or [0, 255])."""
    return (f"{what}: float values in [{vmin:g}, {vmax:g}], none below 0, read as [-1, 1] (the default value "
            f"range): if the images are on [0, 1] (torchvision ToTensor) or [0, 255], the bank is shifted by half "
            f"the range; pass --value-range 0,1 or 0,255")


def eight_bit_codes(arr: np.ndarray, value_range: str) -> tuple[Optional[np.ndarray], float]:
    """``(codes, deviation)``: the uint8 codes of a float array whose every value is an 8-bit level of its
    range (``u/255`` for ``0,1``, ``u`` for ``0,255``, ``u/127.5 - 1`` for ``-1,1``, in the array's dtype),
    or within :data:`LEVEL_TOLERANCE_ULPS` float32 ulps of one (float32 and wider arrays); ``(None, nan)``
    otherwise.  ``deviation`` is the largest distance to the level, in the source's units (0.0 when exact)."""
    lo, hi = VALUE_RANGES[value_range]
    a64 = arr.astype(np.float64)
    if value_range == "0,255":
        codes = np.rint(a64)
        canon = codes
    elif value_range == "0,1":
        codes = np.rint(a64 * 255.0)
        canon = codes / 255.0
    else:
        codes = np.rint((a64 + 1.0) * 127.5)
        canon = codes / 127.5 - 1.0
    if codes.size == 0 or codes.min() < 0 or codes.max() > 255:
        return None, float("nan")
    if np.array_equal(canon.astype(arr.dtype), arr):
        return codes.astype(np.uint8), 0.0
    if arr.dtype.itemsize < 4:
        return None, float("nan")
    dev = float(np.max(np.abs(a64 - canon)))
    tol = LEVEL_TOLERANCE_ULPS * float(np.finfo(np.float32).eps) * max(abs(lo), abs(hi))
    if dev <= tol:
        return codes.astype(np.uint8), dev
    return None, float("nan")


def float_source_to_internal(arr: np.ndarray, value_range: str, what: str) -> tuple[np.ndarray, bool, float]:
    """Map a float (or wide-integer) source array to elscli's internal form.

    Returns ``(array, eight_bit, deviation)``: uint8 codes when the source is 8-bit in its own range (every
    value is an 8-bit level of it, exactly or within :data:`LEVEL_TOLERANCE_ULPS` float32 ulps, the largest
    distance being ``deviation``: :func:`eight_bit_codes`), otherwise float32 on [-1, 1] computed in float64
    then rounded (``deviation`` NaN).
    """
    if value_range not in VALUE_RANGES:
        raise ElscliError(f"unknown value range {value_range!r} for {what}; use one of {', '.join(VALUE_RANGES)}")
    lo, hi = VALUE_RANGES[value_range]
    if arr.dtype.kind == "b":
        raise ElscliError(f"{what} holds booleans, not images")
    if arr.dtype.kind not in "fiu":
        raise ElscliError(f"{what} has dtype {arr.dtype}, not a numeric image array")
    if arr.dtype.kind in "iu":  # integer arrays wider than uint8: must be 0..255 codes
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ElscliError(f"{what} is an integer array with values outside 0..255 "
                              f"(min {arr.min()}, max {arr.max()}); elscli reads 8-bit integer images")
        return arr.astype(np.uint8), True, 0.0
    if not np.all(np.isfinite(arr)):
        raise ElscliError(f"{what} contains NaN or infinite values")
    vmin, vmax = (float(arr.min()), float(arr.max())) if arr.size else (lo, hi)
    if vmin < lo or vmax > hi:
        raise ElscliError(f"{what} has values in [{vmin:g}, {vmax:g}], outside --value-range {value_range}; "
                          f"pass the right --value-range (-1,1 | 0,1 | 0,255)")
    codes, dev = eight_bit_codes(arr, value_range)
    if codes is not None:
        return codes, True, dev
    a64 = arr.astype(np.float64)
    if value_range == "0,255":
        x = a64 / 127.5 - 1.0
    elif value_range == "0,1":
        x = a64 * 2.0 - 1.0
    else:
        x = a64
    return np.clip(x, -1.0, 1.0).astype(np.float32), False, float("nan")


def as_labels(raw: Any, n: int, what: str) -> np.ndarray:
    """Validate a label array: integers (or integral floats) >= -1, one per image."""
    lab = np.asarray(raw)
    if lab.ndim != 1:
        lab = lab.reshape(-1) if lab.size == n else lab
    if lab.ndim != 1:
        raise ElscliError(f"labels in {what} have shape {lab.shape}, expected ({n},)")
    if lab.shape[0] != n:
        raise ElscliError(f"label count {lab.shape[0]} != image count {n} in {what}")
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or not np.array_equal(lab, np.rint(lab)):
            raise ElscliError(f"labels in {what} are not integers")
    elif lab.dtype.kind not in "iub":
        raise ElscliError(f"labels in {what} have dtype {lab.dtype}, expected integers")
    lab = lab.astype(np.int64)
    if lab.size and lab.min() < -1:
        raise ElscliError(f"labels in {what} must be >= 0 (or -1 for unlabelled); found {lab.min()}")
    return lab


def refuse_if_permission_denied(exc: BaseException, what: str) -> None:
    """Raise the one-line ElscliError for an unreadable (permission denied) file, so that no reader calls a
    good file it may not read "corrupt"; otherwise return."""
    if isinstance(exc, PermissionError):
        raise ElscliError(f"{what} is not readable (permission denied)") from None


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of a file, gunzipped when it starts with the gzip magic number."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                try:
                    return gzip.GzipFile(fileobj=fh).read()
                except (OSError, EOFError) as exc:
                    raise ElscliError(f"{str(path)!r} is a corrupt or truncated gzip file ({exc})") from None
            return fh.read()
    except PermissionError:
        raise ElscliError(f"{str(path)!r} is not readable (permission denied)") from None
    except IsADirectoryError:
        raise ElscliError(f"{str(path)!r} is a directory, expected a file") from None


def peek(path: Path, n: int = 16) -> bytes:
    """The first ``n`` bytes of a file (after gunzip when it is gzipped); b'' when unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(n)
            if head[:2] == b"\x1f\x8b":
                fh.seek(0)
                try:
                    return gzip.GzipFile(fileobj=fh).read(n)
                except (OSError, EOFError):
                    return b""
            return head
    except OSError:
        return b""


def is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def describe_path(path: os.PathLike | str) -> str:
    return repr(str(path))
