"""Deterministic DDIM over any denoiser ``D(x, t) -> x0_hat``.

The sampler knows nothing of machines, banks or patch sizes: it takes a denoiser, a starting state and a
descending time grid ``t_0 > t_1 > ... > t_T = 0`` and reports every step through one callback (that is
where run files record trajectories).  For a step from ``t`` to ``t'`` with ``(a, b) = scales(t)`` and
``(a', b') = scales(t')`` (Kamb & Ganguli 2025, Sec. 2; the released code's DDIM update):

    x0_hat  = D(x, t)
    eps_hat = (x - a * x0_hat) / b
    x'      = a' * x0_hat + b' * eps_hat

and the last step, to ``t' = 0`` (a' = 1, b' = 0), returns ``x0_hat`` itself.  Everything is elementwise
per item, so an item's trajectory does not depend on what else is in the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import ElscliError
from .noise import DEFAULT_NOISE_SCHEDULE, scales

Denoiser = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class Step:
    """What the callback sees for step ``index`` (from ``t`` to ``t_next``); arrays are the sampler's own."""

    index: int
    t: float
    t_next: float
    x: np.ndarray        # state at t
    x0_hat: np.ndarray   # the denoiser's output at (x, t)
    x_next: np.ndarray   # state at t_next (== x0_hat on the last step)

    @property
    def is_last(self) -> bool:
        return self.t_next == 0.0


def check_grid(times: Sequence[float]) -> np.ndarray:
    """A valid reverse grid: 1-D, at least two times, strictly descending, in [0, 1], ending at exactly 0."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 2:
        raise ElscliError("a time grid needs at least two times (one step)")
    if not np.all(np.isfinite(times)) or times.min() < 0.0 or times.max() > 1.0:
        raise ElscliError("grid times must lie in [0, 1]")
    if not np.all(np.diff(times) < 0):
        raise ElscliError("grid times must be strictly descending")
    if times[-1] != 0.0:
        raise ElscliError(f"a grid must end at t = 0 (it ends at {times[-1]})")
    return times


def ddim(denoiser: Denoiser, x: np.ndarray, times: Sequence[float], *,
         callback: Optional[Callable[[Step], None]] = None,
         noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> np.ndarray:
    """Run deterministic DDIM from ``x`` at ``times[0]`` to ``times[-1] = 0``; return the final sample.

    ``x`` is float64 ``(B, C, H, W)`` (any shape works; it is not modified).  ``callback(step)`` is called
    after every step, in order.
    """
    times = check_grid(times)
    x = np.array(x, dtype=np.float64, copy=True)
    for i in range(len(times) - 1):
        t, t_next = float(times[i]), float(times[i + 1])
        a, b = scales(t, noise_schedule)
        x0_hat = np.asarray(denoiser(x, t), dtype=np.float64)
        if x0_hat.shape != x.shape:
            raise ElscliError(f"the denoiser returned shape {x0_hat.shape} for input {x.shape}")
        if t_next == 0.0:
            x_next = x0_hat
        else:
            a_next, b_next = scales(t_next, noise_schedule)
            eps_hat = (x - a * x0_hat) / b
            x_next = a_next * x0_hat + b_next * eps_hat
        if callback is not None:
            callback(Step(i, t, t_next, x, x0_hat, x_next))
        x = x_next
    return x
