"""Checks of what a denoiser is called with: queries, the noise level, labels (one-line ElscliError each)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from ..errors import ElscliError
from ..noise import get_noise_schedule


def check_queries(x, shape: Tuple[int, int, int]) -> Tuple[np.ndarray, bool]:
    """``x`` (B, C, H, W) or (C, H, W) as C-contiguous float64 (B, C, H, W), and whether it was a single image.
    Raises ElscliError for another shape than the bank's images or for NaN/inf."""
    x = np.asarray(x)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise ElscliError(f"x must be (B, C, H, W) or (C, H, W), got shape {x.shape}")
    if x.shape[1:] != tuple(shape):
        raise ElscliError(f"x has images of shape {tuple(x.shape[1:])} but the bank holds {tuple(shape)} "
                          "(channels, height, width must match)")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ElscliError("x contains NaN or inf")
    return x, single


def noise_scales(t: Optional[float], a: Optional[float], b: Optional[float], schedule: str) -> Tuple[float, float]:
    """(a, b) of ``x_t = a x_0 + b eps``: given directly (a >= 0, b > 0, both or neither), or from time ``t`` in
    (0, 1] through the named noise schedule (:mod:`elscli.noise`).  Raises ElscliError otherwise."""
    if a is not None or b is not None:
        if a is None or b is None:
            raise ElscliError("give both a and b, or neither (then t sets them)")
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= 0:
            raise ElscliError(f"need a >= 0 and b > 0, got a={a}, b={b}")
        return _floor_sigma(a, b)
    if t is None:
        raise ElscliError("give a time t (or the scales a and b)")
    t = float(t)
    if not (0.0 < t <= 1.0):
        raise ElscliError(f"time t={t} is outside (0, 1]")
    return _floor_sigma(*get_noise_schedule(schedule)(t))


# The weights exp(-|x/a - phi|^2 / (2 sigma^2)) depend on sigma = b/a only.  Below this sigma every patch farther
# than the nearest by more than ~1e-278 in squared distance (far below float64's resolution of distances) has a
# weight under e^-40 of the largest: the machines already return their sigma -> 0 limit (the nearest patch's
# centre), and a/b^2, a^2/2b^2 stay finite.  Without it b^2 underflows to 0 (edm: sigma = 80 t^7 at t < 5e-23).
SIGMA_FLOOR = 1e-140


def _floor_sigma(a: float, b: float) -> Tuple[float, float]:
    b = max(b, SIGMA_FLOOR * a)
    if not math.isfinite(a / (b * b) if b * b > 0 else math.inf):
        raise ElscliError(f"the scales a={a:g}, b={b:g} are too small to represent the weights in float64")
    return a, b


def labels_for(label, B: int) -> np.ndarray:
    """One int64 label per query: ``label`` None (all -1: unconditional), one int, or B ints."""
    if label is None:
        return np.full(B, -1, dtype=np.int64)
    lab = np.asarray(label)
    if lab.ndim == 0:
        return np.full(B, int(lab), dtype=np.int64)
    lab = lab.astype(np.int64).ravel()
    if lab.shape[0] != B:
        raise ElscliError(f"got {lab.shape[0]} labels for {B} images")
    return lab
