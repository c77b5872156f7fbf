"""Locality calibration, step 3: aggregate each step's per-sample best sizes into a locality schedule.

Per step the samples' best sizes are aggregated by the **lower** median (the released code's
``torch.median``, which returns the lower of the two middle values) or the mode (ties: the smallest, as
``torch.mode``), so the schedule only holds candidate sizes.  The schedule is recorded by the step start
times (``docs/formats.md``), never by index.  A scan of another scalar parameter (:mod:`.parameter_scan`)
aggregates its float candidates the same way into a :class:`~elscli.schedule.ParameterSchedule`.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..errors import ElscliError
from ..schedule import LocalitySchedule, ParameterSchedule
from .parameter_scan import PATCH_SIZE

AGGREGATES = ("median", "mode")
#: Digits the schedule's times are rounded to (the grid times are sums of float steps).
TIME_DIGITS = 12


def _item(value, dtype):
    return int(value) if np.dtype(dtype).kind in "iub" else float(value)


def lower_median(values):
    """The lower median: the ``(n-1)//2``-th smallest (torch.median's convention) — one of the values, an int
    for integers (patch sizes), a float for floats (another parameter's values)."""
    v = np.sort(np.asarray(values).ravel())
    return _item(v[(len(v) - 1) // 2], v.dtype)


def mode(values):
    """The most frequent value; ties go to the smallest (as ``torch.mode``); int or float as
    :func:`lower_median`."""
    vals, counts = np.unique(np.asarray(values).ravel(), return_counts=True)
    return _item(vals[np.argmax(counts)], vals.dtype)


def aggregate(best: np.ndarray, how: str = "median") -> np.ndarray:
    """Per-step aggregate of the samples' best candidates: (S, T) -> (T,) int64 for patch sizes (float64 for
    float values), by :func:`lower_median` or :func:`mode`.  Raises ElscliError for another ``how``."""
    if how not in AGGREGATES:
        raise ElscliError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
    f = lower_median if how == "median" else mode
    dtype = np.int64 if np.asarray(best).dtype.kind in "iub" else np.float64
    return np.array([f(best[:, j]) for j in range(best.shape[1])], dtype=dtype)


def schedule_from_scan(scan, how: str = "median"):
    """The locality schedule of a :class:`~elscli.analysis.scan.Scan`: for the step starting at each of its
    times (rounded to 12 digits), the :func:`aggregate` of the samples' best sizes.  Its JSON
    (:meth:`LocalitySchedule.to_json`) is what ``elscli sample --schedule`` reads; it names the reference's
    noise schedule, so that a run on another one is refused.  A scan of another ``parameter`` gives a
    :class:`~elscli.schedule.ParameterSchedule` (``sample --PARAMETER FILE``).  Raises ElscliError for an
    unfinished (interrupted) scan."""
    if not scan.finished:
        raise ElscliError(f"the scan is unfinished ({int(scan.done.sum())} of {scan.done.size} similarities "
                          "computed): finish it with elscli locality-scan ... --resume")
    if scan.parameter != PATCH_SIZE:
        return ParameterSchedule(scan.parameter, tuple(round(float(t), TIME_DIGITS) for t in scan.times),
                                 tuple(float(v) for v in aggregate(scan.best, how)),
                                 source=f"locality-scan {scan.machine} --parameter {scan.parameter} ({how}, "
                                        f"{scan.metric})", noise_schedule=scan.noise_schedule)
    sizes = aggregate(scan.best, how)
    return LocalitySchedule(tuple(round(float(t), TIME_DIGITS) for t in scan.times), tuple(int(p) for p in sizes),
                            source=f"locality-scan {scan.machine} ({how}, {scan.metric})",
                            noise_schedule=scan.noise_schedule)


def spread(best: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-step spread of the samples' best candidates (S, T): ``min``, ``q1``, ``median``, ``q3``, ``max``,
    each (T,) and each one of the samples' candidates — never an interpolated value (such as an even patch
    size): ``q1`` is the ``floor(0.25 (S-1))``-th smallest, ``median`` the lower median
    (:func:`lower_median`), ``q3`` the ``ceil(0.75 (S-1))``-th smallest (``numpy.percentile`` methods
    ``lower``/``higher``), so [q1, q3] holds at least the middle half of the samples.  int64 for patch
    sizes, float64 for another parameter's values."""
    best = np.asarray(best)
    dtype = np.int64 if best.dtype.kind in "iub" else np.float64
    lo = np.percentile(best, [0, 25, 50], axis=0, method="lower")
    hi = np.percentile(best, [75, 100], axis=0, method="higher")
    return {"min": lo[0].astype(dtype), "q1": lo[1].astype(dtype), "median": lo[2].astype(dtype),
            "q3": hi[0].astype(dtype), "max": hi[1].astype(dtype)}


def per_step(scan, schedule) -> List[dict]:
    """One row per step: its start time ``t``, the schedule's ``patch_size`` (or value of the scanned
    parameter, keyed by its name), the samples' ``q1``/``q3``/``min``/``max`` best candidates and the median
    similarity at the scheduled candidate."""
    sp = spread(scan.best)
    cands = [c.item() for c in scan.candidates]
    values = schedule.patch_sizes if isinstance(schedule, LocalitySchedule) else schedule.values
    key = PATCH_SIZE if isinstance(schedule, LocalitySchedule) else schedule.name
    dt = scan.candidates.dtype
    return [{"t": float(t), key: _item(p, dt), "q1": _item(sp["q1"][j], dt), "q3": _item(sp["q3"][j], dt),
             "min": _item(sp["min"][j], dt), "max": _item(sp["max"][j], dt),
             "median_similarity_at_best": float(np.median(scan.similarity[:, cands.index(p), j]))}
            for j, (t, p) in enumerate(zip(schedule.times, values))]
