"""Noise schedules: time t in [0, 1] -> signal scale a(t) and noise scale b(t).

Forward process ``x_t = a(t) x_0 + b(t) eps``.  Only ``cosine-legacy`` is needed now (the paper's released
code): ``beta(t) = 1 - cos^2(t / 1.008 * pi / 2)`` is the *cumulative* noise variance, ``a = sqrt(1 - beta)``,
``b = sqrt(beta)``.  Schedules are pure functions registered by name so that others can be added.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import numpy as np

from .errors import ElscliError


def cosine_legacy_beta(t: float) -> float:
    return 1.0 - math.cos(t / 1.008 * math.pi / 2.0) ** 2


def cosine_legacy(t: float) -> Tuple[float, float]:
    """(a, b) at time t for the cosine-legacy schedule."""
    beta = cosine_legacy_beta(float(t))
    return math.sqrt(1.0 - beta), math.sqrt(beta)


NOISE_SCHEDULES: Dict[str, Callable[[float], Tuple[float, float]]] = {"cosine-legacy": cosine_legacy}
DEFAULT_NOISE_SCHEDULE = "cosine-legacy"


def get_noise_schedule(name: str = DEFAULT_NOISE_SCHEDULE) -> Callable[[float], Tuple[float, float]]:
    try:
        return NOISE_SCHEDULES[name]
    except KeyError:
        raise ElscliError(f"unknown noise schedule {name!r} (known: {', '.join(sorted(NOISE_SCHEDULES))})") from None


def scales(t: float, schedule: str = DEFAULT_NOISE_SCHEDULE) -> Tuple[float, float]:
    """(a, b) at time t; t must lie in [0, 1]."""
    t = float(t)
    if not (0.0 <= t <= 1.0) or math.isnan(t):
        raise ElscliError(f"time t={t} is outside [0, 1]")
    return get_noise_schedule(schedule)(t)


def time_grid(steps: int = 20, start_time: float = 1.0) -> np.ndarray:
    """Equal steps from ``start_time`` down to 0: ``steps + 1`` times, descending, last one exactly 0."""
    if steps < 1:
        raise ElscliError(f"--steps must be at least 1, got {steps}")
    if not (0.0 < start_time <= 1.0):
        raise ElscliError(f"--start-time must lie in (0, 1], got {start_time}")
    grid = np.linspace(start_time, 0.0, steps + 1, dtype=np.float64)
    grid[-1] = 0.0
    return grid
