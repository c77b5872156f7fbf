"""Images to 8-bit pixels for display (PNG grids, per-sample PNGs): which channels are shown, and how values
become grey levels.

Pixel banks (values on [-1, 1], 1 or 3 channels) are shown as they are: ``round((x + 1) * 127.5)`` clipped to
0..255, grey or RGB.  Banks of any other kind — latents (``build-bank --value-range none``: any channel count,
values on the user's own scale) — are shown channel by channel:

- ``channels`` None: the first three channels as RGB (the first one in grey when C = 2); or a list of one or
  three channel indices (grey or RGB); or ``"each"``: every channel in grey, side by side.
- values off the [-1, 1] pixel scale (``value_range="none"``) are stretched per shown channel from its 1st to its
  99th percentile over the images shown (finite values) to 0..255, clipped.

:func:`to_display` returns the 8-bit images and a one-line note saying what is shown (empty for a plain pixel
bank), for the caller to print or draw.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ElscliError

#: ``value_range`` of banks on the [-1, 1] pixel scale, and of banks stored as is (latents).
PIXEL_RANGE = "-1,1"
NO_RANGE = "none"
#: Percentiles of a channel mapped to 0 and 255 when values are not on the pixel scale.
STRETCH_PERCENTILES = (1.0, 99.0)

Channels = Union[None, str, Sequence[int]]


def parse_channels(spec: Channels, C: int) -> Union[str, List[int], None]:
    """``--channels``: None, ``"each"``, or one or three comma-separated channel indices (e.g. ``"0,1,2"``,
    ``"3"``), each in 0..C-1.  Raises ElscliError for anything else."""
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "each":
            return "each"
        try:
            idx = [int(v) for v in text.split(",") if v.strip() != ""]
        except ValueError:
            raise ElscliError(f"--channels takes 'each' or one or three channel indices such as 0,1,2; "
                              f"got {spec!r}") from None
    else:
        idx = [int(v) for v in spec]
    if len(idx) not in (1, 3):
        raise ElscliError(f"--channels takes one (grey) or three (RGB) channel indices, got {len(idx)}")
    bad = [i for i in idx if not 0 <= i < C]
    if bad:
        raise ElscliError(f"--channels: channel {bad[0]} does not exist (the images have {C} channel(s), 0..{C - 1})")
    return idx


def _ordinal(q: float) -> str:
    n = f"{q:g}"
    if n.endswith(("11", "12", "13")) or "." in n:
        return n + "th"
    return n + {"1": "st", "2": "nd", "3": "rd"}.get(n[-1], "th")


def _stretch(x: np.ndarray) -> Tuple[np.ndarray, float, float]:
    """One channel's values (any shape) to 0..255 float by its percentiles over finite values."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.zeros_like(x), 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, STRETCH_PERCENTILES))
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return (np.nan_to_num(x, nan=lo) - lo) * (255.0 / (hi - lo)), lo, hi


def to_display(images: np.ndarray, *, value_range: Optional[str] = PIXEL_RANGE,
               channels: Channels = None) -> Tuple[np.ndarray, str]:
    """(N, C, H, W) images to (N, H, W', c) uint8 for display, with a note on what is shown.

    ``value_range``: ``"-1,1"`` (pixels; None means the same) or ``"none"`` (values as stored, stretched per
    channel: :data:`STRETCH_PERCENTILES`).  ``channels``: see the module docstring (:func:`parse_channels`).
    ``c`` is 1 (grey) or 3 (RGB); W' = C·W with ``"each"``.  NaN (unfinished samples) shows as black (pixel
    scale) or the low end of the stretch.  Raises ElscliError for a bad ``channels`` or ``value_range``.
    """
    img = np.asarray(images, np.float64)
    if img.ndim != 4:
        raise ElscliError(f"images to display must be (N, C, H, W), got shape {img.shape}")
    N, C, H, W = img.shape
    value_range = PIXEL_RANGE if value_range is None else str(value_range)
    if value_range not in (PIXEL_RANGE, NO_RANGE):
        raise ElscliError(f"unknown value range {value_range!r} for display (use {PIXEL_RANGE} or {NO_RANGE})")
    chosen = parse_channels(channels, C)
    if chosen is None:
        chosen = list(range(C)) if C in (1, 3) else [0, 1, 2] if C > 3 else [0]
    notes = []
    if chosen == "each":
        shown = img.transpose(0, 2, 1, 3).reshape(N, 1, H, C * W)      # channel c at columns c*W..(c+1)*W
        notes.append(f"each of the {C} channels in grey, left to right")
        per_channel = [img[:, c] for c in range(C)]
    else:
        shown = img[:, chosen]
        per_channel = [img[:, c] for c in chosen]
        if list(chosen) != list(range(C)):
            notes.append(f"channel{'s' if len(chosen) > 1 else ''} {','.join(map(str, chosen))} of {C} as "
                         f"{'RGB' if len(chosen) == 3 else 'grey'}")
    if value_range == PIXEL_RANGE:
        u8 = np.clip(np.round((np.nan_to_num(shown, nan=-1.0) + 1.0) * 127.5), 0, 255)
    else:
        if chosen == "each":
            parts = [_stretch(ch) for ch in per_channel]
            u8 = np.concatenate([p[0] for p in parts], axis=2)[:, None]
        else:
            parts = [_stretch(ch) for ch in per_channel]
            u8 = np.stack([p[0] for p in parts], axis=1)
        u8 = np.clip(np.round(u8), 0, 255)
        lo_p, hi_p = STRETCH_PERCENTILES
        notes.append(f"values as stored, each channel stretched from its {_ordinal(lo_p)} to {_ordinal(hi_p)} "
                     "percentile ("
                     + ", ".join(f"{lo:.3g}..{hi:.3g}" for _, lo, hi in parts) + ")")
    return np.transpose(u8.astype(np.uint8), (0, 2, 3, 1)), "; ".join(notes)
