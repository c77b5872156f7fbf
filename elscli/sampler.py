"""Reverse-process samplers over any denoiser ``D(x, t) -> x0_hat``: DDIM (any eta), Euler and Heun.

A sampler knows nothing of machines, banks or patch sizes: it takes a denoiser, a starting state ``x`` at
``times[0]``, a descending time grid ``t_0 > t_1 > ... > t_T = 0`` (:mod:`elscli.noise` makes ``uniform``
and ``edm`` grids) and a noise schedule (``x_t = a(t) x_0 + b(t) eps``, ``sigma = b / a``), and reports every
step through one callback (that is where run files and references record trajectories).  Everything is
elementwise per item, and every random number an item receives comes from its own source, so an item's
trajectory does not depend on what else is in the batch.

For a step from ``t`` to ``t'`` with ``(a, b)``, ``(a', b')``, ``sigma = b/a``, ``sigma' = b'/a'``,
``x0_hat = D(x, t)`` and ``eps_hat = (x - a x0_hat) / b``:

``ddim`` (Song, Meng & Ermon 2021, Eq. 12; the paper's released update at eta = 0)
    ``x' = a' x0_hat + b' sqrt(1 - eta^2 r) eps_hat + b' eta sqrt(r) z``, ``r = 1 - (sigma'/sigma)^2``,
    ``z ~ N(0, I)`` from the item's own noise source.  This is their
    ``sigma_t(eta) = eta sqrt((1 - abar')/(1 - abar)) sqrt(1 - abar/abar')`` written for any (a, b) (the
    same in the variable x/a, so it holds for variance-exploding schedules too); eta = 0 is deterministic
    DDIM (computed exactly as ``a' x0_hat + b' eps_hat``), eta = 1 is DDPM's ancestral sampling (Ho et al.
    2020, Eq. 7: the posterior ``q(x_t' | x_t, x0_hat)``).
``euler``, ``heun`` (Karras et al. 2022, "EDM", Algorithm 1 without churn)
    the probability-flow ODE ``dy/dsigma = (y - D(y; sigma)) / sigma`` in the variable ``y = x / a``:
    ``d = eps_hat``, Euler ``y' = y + (sigma' - sigma) d``; Heun then evaluates
    ``d' = (y' - D(a' y', t')) / sigma'`` and takes ``y' = y + (sigma' - sigma) (d + d') / 2``; the step
    to ``sigma' = 0`` is an Euler step (``x' = x0_hat``).  Euler in sigma is DDIM (eta = 0) in exact
    arithmetic.

The last step (``t' = 0``: a' = 1, b' = 0) returns ``x0_hat`` itself for every sampler.

**Evaluations.**  On a grid of N steps (N + 1 times), ``ddim`` and ``euler`` evaluate the denoiser N
times and ``heun`` 2N - 1 times (EDM's count: two per step, one for the final step to 0).
:func:`num_evaluations` says so.

**Per-sample noise.**  ``ddim`` with eta > 0 takes ``noise``, a callable ``noise(step_index, shape) -> z``
(float64, ``shape`` = the batch's), consulted once per step that injects noise (every step but the last).
:class:`StreamNoise` draws each item's ``z`` from that item's own :class:`numpy.random.Generator` (rounded to
float32, like stored seeds, so a recorded ``z`` replays bitwise); :class:`RecordedNoise` replays recorded
noise.  elscli's convention: sample ``i`` of root seed ``R`` owns ``numpy.random.default_rng([i, R])``,
which draws its starting noise ``(C, H, W)`` first, then (when labels are random) its label, then the
injected noise of each step in order (:func:`sample_streams`).  So the result depends on neither the batch
size nor the threads nor the shards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ElscliError
from .noise import DEFAULT_NOISE_SCHEDULE, get_noise_schedule

Denoiser = Callable[[np.ndarray, float], np.ndarray]
NoiseSource = Callable[[int, Tuple[int, ...]], np.ndarray]

SAMPLER_NAMES = ("ddim", "euler", "heun")
DEFAULT_SAMPLER = "ddim"


@dataclass
class Step:
    """What the callback sees for step ``index`` (from ``t`` to ``t_next``); arrays are the sampler's own.

    ``noise`` is the standard normal ``z`` the step injected (None for deterministic steps);
    ``evaluations`` the denoiser calls the step made (2 for a Heun step to ``t_next > 0``).
    """

    index: int
    t: float
    t_next: float
    x: np.ndarray        # state at t
    x0_hat: np.ndarray   # the denoiser's output at (x, t)
    x_next: np.ndarray   # state at t_next (== x0_hat on the last step)
    noise: Optional[np.ndarray] = None
    evaluations: int = 1

    @property
    def is_last(self) -> bool:
        return self.t_next == 0.0


# ------------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------------
def check_grid(times: Sequence[float]) -> np.ndarray:
    """A valid reverse grid: 1-D, at least two times, strictly descending, in [0, 1], ending at exactly 0."""
    try:
        times = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise ElscliError("a time grid must be a sequence of numbers") from None
    if times.ndim != 1 or len(times) < 2:
        raise ElscliError("a time grid needs at least two times (one step)")
    if not np.all(np.isfinite(times)) or times.min() < 0.0 or times.max() > 1.0:
        raise ElscliError("grid times must lie in [0, 1]")
    if not np.all(np.diff(times) < 0):
        raise ElscliError("grid times must be strictly descending")
    if times[-1] != 0.0:
        raise ElscliError(f"a grid must end at t = 0 (it ends at {times[-1]})")
    return times


def check_eta(eta) -> float:
    """eta in [0, 1] (0: deterministic DDIM, 1: DDPM ancestral sampling)."""
    try:
        eta = float(eta)
    except (TypeError, ValueError):
        raise ElscliError(f"--eta must be a number in [0, 1], got {eta!r}") from None
    if not (0.0 <= eta <= 1.0):
        raise ElscliError(f"--eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM ancestral), got {eta}")
    return eta


def check_sampler(name: str) -> str:
    name = str(name).lower()
    if name not in SAMPLER_NAMES:
        raise ElscliError(f"unknown sampler {name!r} (known: {', '.join(SAMPLER_NAMES)})")
    return name


def check_sampler_eta(sampler: str, eta) -> Tuple[str, float]:
    """Validate a (sampler, eta) pair: eta > 0 only with ddim (Euler and Heun run without churn)."""
    sampler, eta = check_sampler(sampler), check_eta(eta)
    if eta > 0 and sampler != "ddim":
        raise ElscliError(f"--eta applies to the ddim sampler only ({sampler} integrates the deterministic "
                          "probability-flow ODE)")
    return sampler, eta


def is_stochastic(sampler: str, eta: float) -> bool:
    """Whether the sampler injects noise (ddim with eta > 0)."""
    return check_sampler(sampler) == "ddim" and float(eta) > 0.0


def num_evaluations(sampler: str, times: Sequence[float]) -> int:
    """Denoiser evaluations on ``times``: N for ddim and euler, 2N - 1 for heun (N = len(times) - 1)."""
    sampler = check_sampler(sampler)
    steps = len(check_grid(times)) - 1
    return 2 * steps - 1 if sampler == "heun" else steps


# ------------------------------------------------------------------------------------------------------
# Per-sample noise
# ------------------------------------------------------------------------------------------------------
class StreamNoise:
    """Each item's noise from its own generator: ``z[j] = generators[j].standard_normal(item shape)``, rounded
    to float32 (returned as float64).  The generators advance only when noise is asked for."""

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        self.generators = list(generators)

    def __call__(self, index: int, shape: Tuple[int, ...]) -> np.ndarray:
        if len(self.generators) != shape[0]:
            raise ElscliError(f"{len(self.generators)} noise generators for a batch of {shape[0]}")
        z = np.empty(shape, dtype=np.float64)
        for j, g in enumerate(self.generators):
            z[j] = g.standard_normal(tuple(shape[1:])).astype(np.float32)
        return z


class RecordedNoise:
    """Replays recorded noise: ``noise`` (B, T, ...) gives ``z = noise[:, index]`` at step ``index``."""

    def __init__(self, noise: np.ndarray) -> None:
        self.noise = np.asarray(noise)

    def __call__(self, index: int, shape: Tuple[int, ...]) -> np.ndarray:
        if self.noise.ndim < 2 or (self.noise.shape[0],) + self.noise.shape[2:] != tuple(shape) \
                or not 0 <= index < self.noise.shape[1]:
            raise ElscliError(f"recorded noise of shape {self.noise.shape} has no step {index} for a batch of "
                              f"shape {tuple(shape)}")
        return np.asarray(self.noise[:, index], dtype=np.float64)


def sample_generator(sample_id: int, seed: int) -> np.random.Generator:
    """Sample ``sample_id``'s own generator for root seed ``seed``: ``numpy.random.default_rng([i, seed])``."""
    return np.random.default_rng([int(sample_id), int(seed)])


def sample_streams(sample_ids: Sequence[int], seed: int, shape: Tuple[int, ...]
                   ) -> Tuple[np.ndarray, List[np.random.Generator]]:
    """Starting noise (B, *shape) float64 and each sample's generator, positioned right after it."""
    gens = [sample_generator(i, seed) for i in sample_ids]
    start = np.empty((len(gens),) + tuple(shape), dtype=np.float64)
    for j, g in enumerate(gens):
        start[j] = g.standard_normal(tuple(shape))
    return start, gens


# ------------------------------------------------------------------------------------------------------
# Samplers
# ------------------------------------------------------------------------------------------------------
def _denoise(denoiser: Denoiser, x: np.ndarray, t: float) -> np.ndarray:
    x0_hat = np.asarray(denoiser(x, t), dtype=np.float64)
    if x0_hat.shape != x.shape:
        raise ElscliError(f"the denoiser returned shape {x0_hat.shape} for input {x.shape}")
    return x0_hat


def ddim(denoiser: Denoiser, x: np.ndarray, times: Sequence[float], *,
         callback: Optional[Callable[[Step], None]] = None,
         noise_schedule: str = DEFAULT_NOISE_SCHEDULE, eta: float = 0.0,
         noise: Optional[NoiseSource] = None) -> np.ndarray:
    """Run DDIM from ``x`` at ``times[0]`` to ``times[-1] = 0``; return the final sample (float64).

    ``x`` is ``(B, C, H, W)`` (any shape whose first axis is the batch works; it is not modified).
    ``eta`` in [0, 1]; for eta > 0 ``noise`` gives each step's standard normal ``z`` (see the module
    docstring).  ``callback(step)`` is called after every step, in order.  Raises :class:`ElscliError` for a
    bad grid, eta, schedule or a denoiser output of the wrong shape.
    """
    times = check_grid(times)
    eta = check_eta(eta)
    sched = get_noise_schedule(noise_schedule)
    if eta > 0 and noise is None:
        raise ElscliError("ddim with eta > 0 needs each sample's noise source (noise=StreamNoise(...))")
    x = np.array(x, dtype=np.float64, copy=True)
    for i in range(len(times) - 1):
        t, t_next = float(times[i]), float(times[i + 1])
        a, b = sched(t)
        x0_hat = _denoise(denoiser, x, t)
        z = None
        if t_next == 0.0:
            x_next = x0_hat
        else:
            a_next, b_next = sched(t_next)
            eps_hat = (x - a * x0_hat) / b
            if eta == 0.0:
                x_next = a_next * x0_hat + b_next * eps_hat
            else:
                ratio = (b_next * a) / (a_next * b)                 # sigma' / sigma < 1
                r = max(0.0, (1.0 - ratio) * (1.0 + ratio))         # 1 - (sigma'/sigma)^2
                c_eps = b_next * math.sqrt((1.0 - eta * eta) + eta * eta * ratio * ratio)
                c_noise = b_next * eta * math.sqrt(r)
                z = noise(i, x.shape)
                x_next = a_next * x0_hat + c_eps * eps_hat + c_noise * z
        if callback is not None:
            callback(Step(i, t, t_next, x, x0_hat, x_next, z, 1))
        x = x_next
    return x


def _ode(denoiser: Denoiser, x: np.ndarray, times: Sequence[float], callback, noise_schedule: str,
         second_order: bool) -> np.ndarray:
    times = check_grid(times)
    sched = get_noise_schedule(noise_schedule)
    x = np.array(x, dtype=np.float64, copy=True)
    for i in range(len(times) - 1):
        t, t_next = float(times[i]), float(times[i + 1])
        a, b = sched(t)
        x0_hat = _denoise(denoiser, x, t)
        evaluations = 1
        if t_next == 0.0:                                   # Euler to sigma = 0: y' = y - sigma d = x0_hat
            x_next = x0_hat
        else:
            a_next, b_next = sched(t_next)
            sigma, sigma_next = b / a, b_next / a_next
            y = x / a
            d = (x - a * x0_hat) / b                        # (y - D) / sigma
            y_next = y + (sigma_next - sigma) * d           # Euler step
            if second_order:                                # Heun's correction (EDM Algorithm 1, l. 9-11)
                x0_next = _denoise(denoiser, a_next * y_next, t_next)
                d_next = (y_next - x0_next) / sigma_next
                y_next = y + (sigma_next - sigma) * (0.5 * d + 0.5 * d_next)
                evaluations = 2
            x_next = a_next * y_next
        if callback is not None:
            callback(Step(i, t, t_next, x, x0_hat, x_next, None, evaluations))
        x = x_next
    return x


def euler(denoiser: Denoiser, x: np.ndarray, times: Sequence[float], *,
          callback: Optional[Callable[[Step], None]] = None,
          noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> np.ndarray:
    """Euler's method on the probability-flow ODE in sigma (EDM Algorithm 1 without churn or correction).

    Same arguments, shapes and errors as :func:`ddim` (eta = 0).
    """
    return _ode(denoiser, x, times, callback, noise_schedule, second_order=False)


def heun(denoiser: Denoiser, x: np.ndarray, times: Sequence[float], *,
         callback: Optional[Callable[[Step], None]] = None,
         noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> np.ndarray:
    """Heun's method on the probability-flow ODE in sigma (Karras et al. 2022, Algorithm 1, S_churn = 0).

    Two denoiser evaluations per step except the last (Euler to sigma = 0): 2N - 1 on N steps.
    Same arguments, shapes and errors as :func:`ddim` (eta = 0).
    """
    return _ode(denoiser, x, times, callback, noise_schedule, second_order=True)


SAMPLERS: Dict[str, Callable[..., np.ndarray]] = {"ddim": ddim, "euler": euler, "heun": heun}


def run_sampler(sampler: str, denoiser: Denoiser, x: np.ndarray, times: Sequence[float], *,
                callback: Optional[Callable[[Step], None]] = None,
                noise_schedule: str = DEFAULT_NOISE_SCHEDULE, eta: float = 0.0,
                noise: Optional[NoiseSource] = None) -> np.ndarray:
    """Run the sampler called ``sampler`` (ddim, euler or heun); ``eta`` and ``noise`` are ddim's."""
    sampler, eta = check_sampler_eta(sampler, eta)
    if sampler == "ddim":
        return ddim(denoiser, x, times, callback=callback, noise_schedule=noise_schedule, eta=eta, noise=noise)
    return SAMPLERS[sampler](denoiser, x, times, callback=callback, noise_schedule=noise_schedule)
