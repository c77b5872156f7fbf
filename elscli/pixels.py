"""The pixel map: how stored codes and source values become elscli's [-1, 1] pixels, and label coercion.

elscli keeps 8-bit images as their ``uint8`` codes and maps them to the [-1, 1] pixel scale by the affine map
``value = code * U8_SCALE + U8_OFFSET`` = ``code/127.5 - 1`` (the map of torchvision's
``ToTensor()`` followed by ``Normalize(0.5, 0.5)``, which the paper's training pipeline used), evaluated in
float64 and rounded once to float32.  Float sources are read in one of :data:`VALUE_RANGES` and mapped
affinely to [-1, 1].  This module sits below both the readers and the bank: it imports nothing of elscli but
:class:`~elscli.errors.ElscliError`.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .errors import ElscliError

#: The affine map of 8-bit codes to the [-1, 1] pixel scale: value = code * U8_SCALE + U8_OFFSET.
U8_SCALE = 1.0 / 127.5
U8_OFFSET = -1.0

#: ``--value-range`` choices for float sources: name -> (low, high) of the source values.
VALUE_RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "0,255": (0.0, 255.0)}
#: ``--value-range none``: float data (latents) of any channel count kept as float32 on its own scale — no
#: range check, no mapping, no 8-bit quantisation, no clipping.
NO_RANGE = "none"


def u8_to_float(codes: np.ndarray) -> np.ndarray:
    """8-bit codes to the [-1, 1] pixel scale.

    Parameters
    ----------
    codes : ndarray of uint8, any shape
        Codes 0..255.

    Returns
    -------
    ndarray of float32, same shape
        ``float32(code/127.5 - 1)``, computed in float64 and rounded once, so that every code maps to the
        float32 nearest its exact value (0 -> -1, 255 -> 1).
    """
    return (codes.astype(np.float64) / 127.5 - 1.0).astype(np.float32)


def float_to_u8_if_exact(x: np.ndarray) -> Optional[np.ndarray]:
    """The uint8 codes of ``x`` when every value is exactly an 8-bit level, else None.

    Parameters
    ----------
    x : array_like of float, any shape
        Pixels on the [-1, 1] scale.

    Returns
    -------
    ndarray of uint8 (same shape) or None
        ``codes`` with ``u8_to_float(codes) == float32(x)`` element for element; None when ``x`` is empty,
        holds NaN/inf, lies outside [-1, 1] or holds any value that is not such a level.
    """
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
    """The warning (one line) for a float array with no negative value read as [-1, 1]: it is probably on
    [0, 1] or [0, 255].  ``vmin``, ``vmax``: the array's range."""
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

    Parameters
    ----------
    arr : ndarray of float or integer, any shape
        Source values.  Integer arrays must hold 8-bit codes 0..255 whatever ``value_range``.
    value_range : str
        A key of :data:`VALUE_RANGES` (``"-1,1"``, ``"0,1"`` or ``"0,255"``): the range the float values are in;
        or :data:`NO_RANGE` (``"none"``): float data kept as float32, whatever its values.
    what : str
        How to name the array in error messages.

    Returns
    -------
    (ndarray, bool, float)
        ``(array, eight_bit, deviation)``: uint8 codes when the source is 8-bit in its own range (every value
        is an 8-bit level of it, exactly or within :data:`LEVEL_TOLERANCE_ULPS` float32 ulps, the largest
        distance being ``deviation``: :func:`eight_bit_codes`), otherwise float32 on [-1, 1] (the affine map
        of the range) computed in float64 then rounded (``deviation`` NaN); for ``"none"`` the float32 data.

    Raises
    ------
    ElscliError
        Unknown range; boolean or non-numeric dtype; integers outside 0..255 (any integers for ``"none"``);
        NaN/inf; values outside the range.
    """
    if value_range != NO_RANGE and value_range not in VALUE_RANGES:
        raise ElscliError(f"unknown value range {value_range!r} for {what}; use one of "
                          f"{', '.join(VALUE_RANGES)}, {NO_RANGE}")
    if arr.dtype.kind == "b":
        raise ElscliError(f"{what} holds booleans, not images")
    if arr.dtype.kind not in "fiu":
        raise ElscliError(f"{what} has dtype {arr.dtype}, not a numeric image array")
    if value_range == NO_RANGE:         # latents: float32 as they are
        if arr.dtype.kind != "f":
            raise ElscliError(f"{what} is {arr.dtype} (8-bit image) data; --value-range none keeps float data "
                              f"(latents) as is: drop it for 8-bit images")
        if not np.all(np.isfinite(arr)):
            raise ElscliError(f"{what} contains NaN or infinite values")
        return np.ascontiguousarray(arr, dtype=np.float32), False, float("nan")
    lo, hi = VALUE_RANGES[value_range]
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
    """Validate and convert a label array: one integer label per image, -1 for unlabelled.

    Parameters
    ----------
    raw : array_like
        Integers, booleans or integral floats; any shape holding exactly ``n`` values.
    n : int
        The number of images.
    what : str
        How to name the labels in error messages.

    Returns
    -------
    ndarray of int64, shape (n,)

    Raises
    ------
    ElscliError
        Wrong count or shape, non-integral or non-finite floats, a non-numeric dtype, or a label below -1.
    """
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
