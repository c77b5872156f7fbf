"""NumPy ``.npy`` / ``.npz`` arrays.

- ``.npy``: one image array.  ``.npz``: the images under ``images``, ``x``, ``x_train``, ``data``, ``X`` or
  ``arr_0`` (or the only array), labels under ``labels``, ``y``, ``y_train``, ``targets`` or ``arr_1``.
- Shapes: (N, C, H, W) or (N, H, W, C) with C in {1, 3}, or (N, H, W) (one channel).  The layout is read from
  the axis of size 1 or 3; when both axes 1 and 3 could be channels, pass ``--layout nchw|nhwc``.
- ``--value-range none`` (latents): float data of any channel count stored as float32 as it is (no range check,
  no 8-bit quantisation); the channel axis is the one shorter than both spatial axes (or ``--layout``); 8-bit
  (integer) data is refused.
- dtype uint8: 8-bit codes; wider integers only with ``--value-range 0,255`` (their values must then be 0..255):
  elscli does not guess the range of an int16 or int32 array.  Float: values in ``--value-range`` (default ``-1,1``;
  ``0,1``; ``0,255``); a float array whose every value is an 8-bit level of its range, exactly or within a
  few float32 ulps (``ToTensor()`` + ``Normalize(0.5, 0.5)`` in float32 misses the levels by one), is stored
  as uint8 codes (the largest deviation recorded as ``eight_bit_max_deviation``), anything else as float32.
  Under the default range, a float array with no value below 0 is read but warned about (``warnings`` in the
  provenance): it is probably on [0, 1] or [0, 255]; so is one read as ``0,255`` whose values are all <= 1.  Pickled (object) arrays are refused.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ElscliError, reason
from ..pixels import NO_RANGE, as_labels, float_source_to_internal, nonnegative_range_warning
from ._common import RawImages, refuse_if_permission_denied

IMAGE_KEYS = ("images", "x", "x_train", "data", "X", "arr_0")
LABEL_KEYS = ("labels", "y", "y_train", "targets", "arr_1")


def to_nchw(arr: np.ndarray, layout: Optional[str], what: str, any_channels: bool = False) -> tuple[np.ndarray, str]:
    """An image array as (N, C, H, W) and the layout it had (``nchw``, ``nhwc`` or ``nhw``).

    ``arr``: (N, H, W) (one channel), or (N, C, H, W) / (N, H, W, C) with C in {1, 3} (any C with
    ``any_channels``: latents); ``layout`` forces the 4-D reading, else it comes from the axis of size 1 or 3
    (with ``any_channels``: the axis shorter than both spatial ones).  Raises ElscliError for other shapes, an
    ambiguous layout without ``layout``, or a channel count other than 1 or 3 (without ``any_channels``).
    """
    if arr.ndim == 3:
        return arr[:, None, :, :], "nhw"
    if arr.ndim != 4:
        raise ElscliError(f"{what} has shape {arr.shape}; expected (N, C, H, W), (N, H, W, C) or (N, H, W)")
    if layout is None:
        if any_channels:
            c_first, c_last = arr.shape[1] < min(arr.shape[2:]), arr.shape[3] < min(arr.shape[1:3])
        else:
            c_first, c_last = arr.shape[1] in (1, 3), arr.shape[3] in (1, 3)
        if c_first and not c_last:
            layout = "nchw"
        elif c_last and not c_first:
            layout = "nhwc"
        elif not any_channels and not c_first:
            raise ElscliError(f"{what} (shape {arr.shape}) has no channel axis of size 1 or 3; for latents of "
                              "any channel count pass --value-range none (and --layout nchw|nhwc if need be)")
        else:
            raise ElscliError(f"cannot tell the channel axis of {what} (shape {arr.shape}); pass --layout nchw or nhwc")
    layout = layout.lower()
    if layout == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    elif layout != "nchw":
        raise ElscliError(f"unknown layout {layout!r}; use nchw or nhwc")
    if arr.shape[1] not in (1, 3) and not any_channels:
        raise ElscliError(f"{what} has {arr.shape[1]} channels in layout {layout}; elscli takes 1 (grey) or 3 "
                          "(RGB) image channels, or any count of latent ones with --value-range none")
    return np.ascontiguousarray(arr), layout


def _pick(keys, wanted) -> Optional[str]:
    """The first of ``wanted`` present in ``keys``, or None."""
    return next((k for k in wanted if k in keys), None)


def read_arrays(path: Path, value_range: Optional[str] = None, layout: Optional[str] = None) -> RawImages:
    """Read a ``.npy`` or ``.npz`` file (see the module docstring for keys, shapes and dtypes).

    Returns uint8 codes for uint8 (or 0..255 integer, or 8-bit-level float) arrays, else float32 on
    [-1, 1] (:func:`elscli.pixels.float_source_to_internal`); labels (N,) int64, -1 when absent.  Raises
    ElscliError for unreadable or pickled files, a missing images array, bad shapes, dtypes or values.
    """
    path = Path(path)
    what = repr(str(path))
    labels = None
    images_key = labels_key = None
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        refuse_if_permission_denied(exc, what)
        raise ElscliError(f"{what} is not a readable .npy/.npz file: corrupt, truncated or pickled objects "
                          f"({reason(exc)})") from None
    try:
        if isinstance(loaded, np.ndarray):
            images = loaded
        else:
            with loaded as z:
                keys = list(z.keys())
                images_key = _pick(keys, IMAGE_KEYS)
                if images_key is None:
                    if len(keys) == 1:
                        images_key = keys[0]
                    else:
                        raise ElscliError(f"{what} has no images array (looked for {', '.join(IMAGE_KEYS)}; "
                                          f"it holds {', '.join(keys)})")
                images = z[images_key]
                labels_key = _pick([k for k in keys if k != images_key], LABEL_KEYS)
                if labels_key is not None:
                    labels = z[labels_key]
    except ElscliError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        refuse_if_permission_denied(exc, what)
        raise ElscliError(f"{what} is not a readable .npz file: corrupt, truncated or pickled objects "
                          f"({reason(exc)})") from None
    arr_what = what if images_key is None else f"{images_key!r} in {what}"
    images, used_layout = to_nchw(np.asarray(images), layout, arr_what, any_channels=value_range == NO_RANGE)
    n = images.shape[0]
    warnings = []
    deviation = 0.0
    if value_range == NO_RANGE:         # latents: float32 as they are, any channel count
        data, eight_bit, _ = float_source_to_internal(images, NO_RANGE, arr_what)
        vr = NO_RANGE
    elif images.dtype == np.uint8:
        data, eight_bit = images, True
        vr = "0,255"
    elif images.dtype.kind in "iu" and value_range != "0,255":
        lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
        raise ElscliError(f"{arr_what} holds {images.dtype} integers (values {lo}..{hi}), whose range elscli cannot "
                          f"tell (8-bit codes? 16-bit? labels?): pass --value-range 0,255 if they are 8-bit codes "
                          f"0..255, or save the images as uint8, or as floats with --value-range")
    else:
        vr = value_range or "-1,1"
        data, eight_bit, deviation = float_source_to_internal(images, vr, arr_what)
        if images.dtype.kind == "f" and images.size:
            lo, hi = float(images.min()), float(images.max())
            if value_range is None and lo >= 0.0:
                warnings.append(nonnegative_range_warning(arr_what, lo, hi))
            elif vr == "0,255" and 0.0 < hi <= 1.0:
                warnings.append(f"{arr_what}: float values in [{lo:g}, {hi:g}] read as 0..255 (--value-range 0,255) "
                                f"make a nearly black bank; if the images are on [0, 1], pass --value-range 0,1")
    if labels is not None:
        labels = as_labels(labels, n, f"{labels_key!r} in {what}")
    else:
        labels = np.full(n, -1, dtype=np.int64)
    source = {"reader": "npz" if images_key is not None else "npy", "path": str(path), "images_key": images_key,
              "labels_key": labels_key, "layout": used_layout, "dtype": str(images.dtype), "value_range": vr,
              "native_shape": [int(s) for s in images.shape[1:]], "n_source": int(n)}
    if eight_bit and deviation > 0.0:   # 8-bit levels within a few ulps (e.g. ToTensor + Normalize in float32)
        source["eight_bit_max_deviation"] = deviation
    if warnings:
        source["warnings"] = warnings
    return RawImages(images=data, labels=labels, eight_bit=eight_bit, source=source)
