"""Locality calibration, step 3: aggregate each step's per-sample best sizes into a locality schedule.

Per step the samples' best sizes are aggregated by the **lower** median (the released code's
``torch.median``, which returns the lower of the two middle values) or the mode (ties: the smallest, as
``torch.mode``), so the schedule only holds candidate sizes.  The schedule is recorded by the step start
times (``docs/formats.md``), never by index.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..errors import ElscliError
from ..schedule import LocalitySchedule

AGGREGATES = ("median", "mode")
#: Digits the schedule's times are rounded to (the grid times are sums of float steps).
TIME_DIGITS = 12


def lower_median(values) -> int:
    """The lower median of integers: the ``(n-1)//2``-th smallest (torch.median's convention)."""
    v = np.sort(np.asarray(values).ravel())
    return int(v[(len(v) - 1) // 2])


def mode(values) -> int:
    """The most frequent value; ties go to the smallest (as ``torch.mode``)."""
    vals, counts = np.unique(np.asarray(values).ravel(), return_counts=True)
    return int(vals[np.argmax(counts)])


def aggregate(best: np.ndarray, how: str = "median") -> np.ndarray:
    """Per-step aggregate of the samples' best sizes: (S, T) -> (T,) int64, by :func:`lower_median` or
    :func:`mode`.  Raises ElscliError for another ``how``."""
    if how not in AGGREGATES:
        raise ElscliError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
    f = lower_median if how == "median" else mode
    return np.array([f(best[:, j]) for j in range(best.shape[1])], dtype=np.int64)


def schedule_from_scan(scan, how: str = "median") -> LocalitySchedule:
    """The locality schedule of a :class:`~elscli.analysis.scan.Scan`: for the step starting at each of its
    times (rounded to 12 digits), the :func:`aggregate` of the samples' best sizes.  Its JSON
    (:meth:`LocalitySchedule.to_json`) is what ``elscli sample --schedule`` reads."""
    sizes = aggregate(scan.best, how)
    return LocalitySchedule(tuple(round(float(t), TIME_DIGITS) for t in scan.times), tuple(int(p) for p in sizes),
                            source=f"locality-scan {scan.machine} ({how}, {scan.metric})")


def spread(best: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-step spread of the samples' best sizes (S, T): ``min``, ``q1``, ``median``, ``q3``, ``max``, each
    (T,) float64 (``numpy.percentile``, linear interpolation)."""
    q = np.percentile(best, [0, 25, 50, 75, 100], axis=0)
    return {"min": q[0], "q1": q[1], "median": q[2], "q3": q[3], "max": q[4]}


def per_step(scan, schedule: LocalitySchedule) -> List[dict]:
    """One row per step: its start time ``t``, the schedule's ``patch_size``, the samples' ``q1``/``q3``/
    ``min``/``max`` best sizes and the median similarity at the scheduled size."""
    sp = spread(scan.best)
    cands = [int(c) for c in scan.candidates]
    return [{"t": float(t), "patch_size": int(p), "q1": float(sp["q1"][j]), "q3": float(sp["q3"][j]),
             "min": int(sp["min"][j]), "max": int(sp["max"][j]),
             "median_similarity_at_best": float(np.median(scan.similarity[:, cands.index(p), j]))}
            for j, (t, p) in enumerate(zip(schedule.times, schedule.patch_sizes))]
