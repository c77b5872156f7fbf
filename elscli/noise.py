"""Noise schedules and time grids: time t in [0, 1] -> signal scale a(t) and noise scale b(t).

Forward process ``x_t = a(t) x_0 + b(t) eps`` with ``eps ~ N(0, I)``; ``t = 0`` is the clean end (a = 1,
b = 0) and ``t = 1`` the noisiest.  Every schedule also has the noise-to-signal ratio ``sigma(t) = b / a``
(the noise level of the variance-exploding variable ``x / a``, Karras et al. 2022, "EDM", Sec. 2) and its
inverse, which the EDM grid and the Euler / Heun samplers need.

Schedules are pure functions of ``t``, registered by name in :data:`NOISE_SCHEDULES`; the name is recorded
in every file.  Each is computed without cancellation at either end: for any ``t`` in (0, 1], ``a`` and
``b`` are finite, positive and accurate to a few ulps (tested against 50-digit mpmath at t = 1e-12, 1e-8):

=================  =====================================================================================
``cosine-legacy``  the paper's released code (Kamb & Ganguli 2025): ``beta(t) = 1 - cos^2(theta)`` with
                   ``theta = t / 1.008 * pi / 2`` is the *cumulative* noise variance, so
                   ``a = cos(theta)``, ``b = sin(theta)``, ``sigma = tan(theta)`` (computed as such:
                   ``sqrt(1 - cos^2)`` cancels to 0 at t = 1e-12).  VP.
``cosine``         improved DDPM (Nichol & Dhariwal 2021, Eq. 17): ``abar(t) = f(t) / f(0)``,
                   ``f(t) = cos^2(phi(t))``, ``phi(t) = (t + s) / (1 + s) * pi / 2``, s = 0.008, with
                   ``a = sin((1 - t) / (1 + s) * pi / 2) / cos(phi(0))`` and
                   ``b = sqrt(sin(phi(t) - phi(0)) sin(phi(t) + phi(0))) / cos(phi(0))``
                   (``cos^2 A - cos^2 B = sin(B - A) sin(B + A)``).  Their discrete schedule clips every
                   ``beta_i = 1 - abar(i/T) / abar((i-1)/T)`` at 0.999 for T = 1,000 steps; only the last
                   one reaches it (``abar(1) = 0`` gives beta_1000 = 1; beta_999 = 0.75).  Clipping a
                   per-step ratio is a property of the discretisation, not of a continuous abar(t); we
                   keep what it does to their process: ``abar`` equals their ``cumprod(1 - beta)`` at
                   every t = i/1000, follows the closed form between knots up to t = 0.999, and on the
                   last thousandth ``log abar`` runs linearly from ``abar(0.999)`` to their clipped
                   ``abar(1) = 0.001 * abar(0.999)`` (so a(1) = 4.9e-5, sigma(1) = 2.0e4, finite).  VP.
``linear``         DDPM (Ho et al. 2020, Sec. 4): ``beta_k`` linear from 1e-4 to 0.02 for k = 1..1000,
                   ``abar_k = prod_{j <= k} (1 - beta_j)`` (``abar_0 = 1``), continuous ``t = k / 1000``
                   (t = k/1000 is their x_k, index k-1 of their code's ``alphas_cumprod``), ``log abar``
                   linear in t between the knots; ``a = exp(log abar / 2)``,
                   ``b = sqrt(-expm1(log abar))``.  VP.
``edm``            variance exploding (Karras et al. 2022): ``x_t = x_0 + sigma eps``, a = 1, b = sigma,
                   with ``sigma(t) = sigma_max * t^rho``, sigma_max = 80, rho = 7: ``t = (sigma /
                   sigma_max)^(1/rho)`` is EDM's ``sigma^(1/rho)`` rescaled to [0, 1], so t = 0 is clean,
                   t = 1 is sigma_max, and equal steps in t are EDM's rho = 7 spacing; sigma_min = 0.002
                   (the EDM grid's last non-zero level) is at t = 0.2203.  VE.
=================  =====================================================================================

``sigma_min`` of a schedule (the low end of the EDM grid) is 0.002 (EDM's) for the continuous-time
``cosine-legacy`` and ``edm``, and ``sigma(1/1000)`` (the smallest noise level their 1,000-step networks are
trained on: 0.0100 for ``linear``, 0.0064 for ``cosine``) for the discrete ones; ``sigma_max = sigma(1)``.

A reverse process starts from ``prior_std(t0) * eps``: 1 for the variance-preserving (VP) schedules (DDPM,
DDIM and the paper's code start from ``eps`` itself) and ``sigma(t0)`` for the variance-exploding one
(EDM's ``x = sigma_max * eps``).

Time grids (:func:`make_grid`): ``uniform`` (equal steps in t from the start time to 0, the paper's) and
``edm`` (Karras et al. 2022, Eq. 5: ``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) -
sigma_max^(1/rho)))^rho`` for i = 0..N-1, rho = 7, mapped to times by the schedule's inverse, plus the final
step to t = 0).  ``N`` steps are ``N + 1`` times, descending, the last exactly 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from .errors import ElscliError

HALF_PI = math.pi / 2.0

# ------------------------------------------------------------------------------------------------------
# cosine-legacy (the paper's released code)
# ------------------------------------------------------------------------------------------------------
_LEGACY_STRETCH = 1.008


def _legacy_theta(t: float) -> float:
    return t / _LEGACY_STRETCH * HALF_PI


def cosine_legacy_beta(t: float) -> float:
    """The cumulative noise variance ``beta(t) = 1 - cos^2(theta) = sin^2(theta)`` of ``cosine-legacy``."""
    return math.sin(_legacy_theta(float(t))) ** 2


def cosine_legacy(t: float) -> Tuple[float, float]:
    """(a, b) = (cos(theta), sin(theta)), theta = t / 1.008 * pi / 2 (the paper's released code)."""
    theta = _legacy_theta(float(t))
    return math.cos(theta), math.sin(theta)


def _cosine_legacy_sigma(t: float) -> float:
    return math.tan(_legacy_theta(float(t)))


def _cosine_legacy_time(sigma: float) -> float:
    return math.atan(sigma) / HALF_PI * _LEGACY_STRETCH


# ------------------------------------------------------------------------------------------------------
# cosine (Nichol & Dhariwal 2021), with their beta clipping at 0.999 on the last of 1,000 steps
# ------------------------------------------------------------------------------------------------------
_COS_S = 0.008
_COS_STEPS = 1000
_COS_BETA_MAX = 0.999
_COS_T_CLIP = 0.999                      # the last step, (0.999, 1], is the only one whose beta is clipped
_COS_PHI0 = _COS_S / (1.0 + _COS_S) * HALF_PI
_COS_C0 = math.cos(_COS_PHI0)
_COS_TAN0 = math.tan(_COS_PHI0)


def _cosine_closed_form(t: float) -> Tuple[float, float]:
    """(a, b) of abar = f(t)/f(0) with neither end cancelling (see the module docstring)."""
    a = math.sin((1.0 - t) / (1.0 + _COS_S) * HALF_PI) / _COS_C0
    b = math.sqrt(math.sin(t / (1.0 + _COS_S) * HALF_PI)
                  * math.sin((t + 2.0 * _COS_S) / (1.0 + _COS_S) * HALF_PI)) / _COS_C0
    return a, b


_COS_LOG_ABAR_CLIP = 2.0 * math.log(_cosine_closed_form(_COS_T_CLIP)[0])
_COS_LOG_LAST_RATIO = math.log(1.0 - _COS_BETA_MAX)   # log(abar(1) / abar(0.999)) with beta clipped


def cosine(t: float) -> Tuple[float, float]:
    """(a, b) of the improved-DDPM cosine schedule (Nichol & Dhariwal 2021, Eq. 17; beta clipped at 0.999)."""
    t = float(t)
    if t == 0.0:
        return 1.0, 0.0
    if t <= _COS_T_CLIP:
        return _cosine_closed_form(t)
    log_abar = _COS_LOG_ABAR_CLIP + (t - _COS_T_CLIP) * _COS_STEPS * _COS_LOG_LAST_RATIO
    return math.exp(0.5 * log_abar), math.sqrt(-math.expm1(log_abar))


def _cosine_time(sigma: float) -> float:
    log_abar = -math.log1p(sigma * sigma)
    if log_abar >= _COS_LOG_ABAR_CLIP:
        # abar = cos^2(phi) / cos^2(phi0) = 1 / (1 + sigma^2)  =>  tan(phi) = sqrt(tan^2(phi0) + sigma^2 / c0^2);
        # phi - phi0 from tan(phi) - tan(phi0) = (sigma/c0)^2 / (tan(phi) + tan(phi0)), without cancellation
        s2 = (sigma / _COS_C0) ** 2
        tan_phi = math.sqrt(_COS_TAN0 * _COS_TAN0 + s2)
        d_phi = math.atan2(s2 / (tan_phi + _COS_TAN0), 1.0 + tan_phi * _COS_TAN0)
        return min(d_phi / HALF_PI * (1.0 + _COS_S), _COS_T_CLIP)
    return _COS_T_CLIP + (log_abar - _COS_LOG_ABAR_CLIP) / _COS_LOG_LAST_RATIO / _COS_STEPS


# ------------------------------------------------------------------------------------------------------
# linear (DDPM, Ho et al. 2020)
# ------------------------------------------------------------------------------------------------------
_LIN_STEPS = 1000
_LIN_BETAS = np.linspace(1e-4, 0.02, _LIN_STEPS, dtype=np.float64)
# log abar_k for k = 0..1000 (abar_0 = 1): a sum of log1p(-beta), no cancellation near k = 0
_LIN_LOG_ABAR = np.concatenate([[0.0], np.cumsum(np.log1p(-_LIN_BETAS))])
_LIN_LOG_ABAR.setflags(write=False)


def _linear_log_abar(t: float) -> float:
    u = t * _LIN_STEPS
    k = min(int(u), _LIN_STEPS - 1)
    lo, hi = float(_LIN_LOG_ABAR[k]), float(_LIN_LOG_ABAR[k + 1])
    return lo + (u - k) * (hi - lo)


def linear(t: float) -> Tuple[float, float]:
    """(a, b) of DDPM's linear beta schedule (Ho et al. 2020), log abar interpolated between t = k/1000."""
    log_abar = _linear_log_abar(float(t))
    return math.exp(0.5 * log_abar), math.sqrt(-math.expm1(log_abar))


def _linear_sigma(t: float) -> float:
    return math.sqrt(math.expm1(-_linear_log_abar(float(t))))


def _linear_time(sigma: float) -> float:
    log_abar = -math.log1p(sigma * sigma)
    # the knots descend: the first k with log_abar_{k+1} <= log_abar
    k = int(np.searchsorted(-_LIN_LOG_ABAR, -log_abar, side="left")) - 1
    k = min(max(k, 0), _LIN_STEPS - 1)
    lo, hi = float(_LIN_LOG_ABAR[k]), float(_LIN_LOG_ABAR[k + 1])
    return (k + (log_abar - lo) / (hi - lo)) / _LIN_STEPS


# ------------------------------------------------------------------------------------------------------
# edm (Karras et al. 2022, variance exploding)
# ------------------------------------------------------------------------------------------------------
EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EDM_RHO = 7.0


def _edm_sigma(t: float) -> float:
    return EDM_SIGMA_MAX * float(t) ** EDM_RHO


def edm(t: float) -> Tuple[float, float]:
    """(a, b) = (1, sigma(t)), sigma(t) = 80 t^7 (variance exploding, Karras et al. 2022)."""
    return 1.0, _edm_sigma(t)


def _edm_time(sigma: float) -> float:
    return (sigma / EDM_SIGMA_MAX) ** (1.0 / EDM_RHO)


# ------------------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseSchedule:
    """A named noise schedule: ``schedule(t) -> (a, b)``, ``sigma(t) = b / a`` and its inverse ``time(sigma)``.

    All take and return Python floats; ``t`` must lie in [0, 1] and ``sigma`` in [0, sigma_max], else
    :class:`ElscliError`.  ``variance_exploding``: a = 1 (the reverse process starts from ``sigma(t0) eps``).
    """

    name: str
    _scales: Callable[[float], Tuple[float, float]]
    _sigma: Callable[[float], float]
    _time: Callable[[float], float]
    sigma_min: float
    variance_exploding: bool
    source: str

    def __call__(self, t: float) -> Tuple[float, float]:
        """(a, b) at time ``t``."""
        t = _check_time(t)
        if t == 0.0:
            return 1.0, 0.0
        return self._scales(t)

    def scales(self, t: float) -> Tuple[float, float]:
        return self(t)

    def sigma(self, t: float) -> float:
        """The noise-to-signal ratio ``b(t) / a(t)`` (EDM's sigma of the variable ``x / a``)."""
        t = _check_time(t)
        return 0.0 if t == 0.0 else float(self._sigma(t))

    @property
    def sigma_max(self) -> float:
        """sigma(1)."""
        return float(self._sigma(1.0))

    def time(self, sigma: float) -> float:
        """The time t in [0, 1] at which ``sigma(t) == sigma`` (the inverse of :meth:`sigma`)."""
        s = float(sigma)
        if not (0.0 <= s <= self.sigma_max * (1.0 + 1e-12)):
            raise ElscliError(f"noise level sigma={s:g} is outside [0, {self.sigma_max:g}] "
                              f"of noise schedule {self.name!r}")
        if s == 0.0:
            return 0.0
        return min(1.0, max(0.0, float(self._time(s))))

    def prior_std(self, t: float) -> float:
        """The standard deviation of the noise a reverse process starts from at ``t``: 1 (VP) or sigma(t) (VE)."""
        return self.sigma(t) if self.variance_exploding else 1.0


def _check_time(t) -> float:
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise ElscliError(f"time t={t!r} is not a number") from None
    if not (0.0 <= t <= 1.0):
        raise ElscliError(f"time t={t} is outside [0, 1]")
    return t


def _ratio(scales_fn: Callable[[float], Tuple[float, float]]) -> Callable[[float], float]:
    def sigma(t: float) -> float:
        a, b = scales_fn(t)
        return b / a
    return sigma


NOISE_SCHEDULES: Dict[str, NoiseSchedule] = {
    s.name: s for s in (
        NoiseSchedule("cosine-legacy", cosine_legacy, _cosine_legacy_sigma, _cosine_legacy_time,
                      sigma_min=EDM_SIGMA_MIN, variance_exploding=False,
                      source="Kamb & Ganguli 2025, released code: beta(t) = 1 - cos^2(t/1.008 pi/2)"),
        NoiseSchedule("cosine", cosine, _ratio(cosine), _cosine_time,
                      sigma_min=_ratio(cosine)(1.0 / _COS_STEPS), variance_exploding=False,
                      source="Nichol & Dhariwal 2021, Eq. 17, s = 0.008, beta clipped at 0.999"),
        NoiseSchedule("linear", linear, _linear_sigma, _linear_time,
                      sigma_min=_linear_sigma(1.0 / _LIN_STEPS), variance_exploding=False,
                      source="Ho et al. 2020: beta linear 1e-4..0.02 over 1,000 steps"),
        NoiseSchedule("edm", edm, _edm_sigma, _edm_time,
                      sigma_min=EDM_SIGMA_MIN, variance_exploding=True,
                      source="Karras et al. 2022: x_t = x_0 + sigma eps, sigma = 80 t^7"),
    )
}
DEFAULT_NOISE_SCHEDULE = "cosine-legacy"


def get_noise_schedule(name: str = DEFAULT_NOISE_SCHEDULE) -> NoiseSchedule:
    """The schedule called ``name`` (callable: ``t -> (a, b)``); unknown names raise :class:`ElscliError`."""
    if isinstance(name, NoiseSchedule):
        return name
    try:
        return NOISE_SCHEDULES[str(name)]
    except KeyError:
        raise ElscliError(f"unknown noise schedule {name!r} (known: {', '.join(sorted(NOISE_SCHEDULES))})") from None


def scales(t: float, schedule: str = DEFAULT_NOISE_SCHEDULE) -> Tuple[float, float]:
    """(a, b) at time t; t must lie in [0, 1]."""
    return get_noise_schedule(schedule)(t)


def sigma(t: float, schedule: str = DEFAULT_NOISE_SCHEDULE) -> float:
    """sigma(t) = b(t) / a(t) of ``schedule``."""
    return get_noise_schedule(schedule).sigma(t)


# ------------------------------------------------------------------------------------------------------
# Time grids
# ------------------------------------------------------------------------------------------------------
GRIDS = ("uniform", "edm")
DEFAULT_GRID = "uniform"


def _check_steps(steps) -> int:
    try:
        ok = not isinstance(steps, bool) and int(steps) == steps and int(steps) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ElscliError(f"--steps must be a positive integer, got {steps!r}")
    return int(steps)


def _check_start(start_time) -> float:
    try:
        start_time = float(start_time)
    except (TypeError, ValueError):
        raise ElscliError(f"--start-time must be a number in (0, 1], got {start_time!r}") from None
    if not (0.0 < start_time <= 1.0):
        raise ElscliError(f"--start-time must lie in (0, 1], got {start_time}")
    return start_time


def time_grid(steps: int = 20, start_time: float = 1.0) -> np.ndarray:
    """The ``uniform`` grid: equal steps from ``start_time`` down to 0; ``steps + 1`` float64 times, descending,
    the last exactly 0."""
    steps = _check_steps(steps)
    start_time = _check_start(start_time)
    grid = np.linspace(start_time, 0.0, steps + 1, dtype=np.float64)
    grid[-1] = 0.0
    return grid


def edm_grid(steps: int = 20, schedule: str = DEFAULT_NOISE_SCHEDULE, start_time: float = 1.0,
             rho: float = EDM_RHO) -> np.ndarray:
    """The ``edm`` grid (Karras et al. 2022, Eq. 5): ``steps`` noise levels spaced evenly in ``sigma^(1/rho)``
    from ``sigma(start_time)`` down to the schedule's ``sigma_min``, as times, then t = 0.

    Returns ``steps + 1`` float64 times, descending, ``times[0] == start_time``, ``times[-1] == 0``.
    """
    steps = _check_steps(steps)
    start_time = _check_start(start_time)
    sched = get_noise_schedule(schedule)
    hi, lo = sched.sigma(start_time), sched.sigma_min
    if not lo < hi:
        raise ElscliError(f"the edm grid needs sigma(start_time) = {hi:g} above the schedule's sigma_min = {lo:g} "
                          f"(noise schedule {sched.name!r}); start later")
    times = np.zeros(steps + 1, dtype=np.float64)
    times[0] = start_time
    for i in range(1, steps):
        s = (hi ** (1.0 / rho) + i / (steps - 1) * (lo ** (1.0 / rho) - hi ** (1.0 / rho))) ** rho
        times[i] = sched.time(s)
    if not np.all(np.diff(times) < 0):
        raise ElscliError(f"{steps} edm steps are too many for noise schedule {sched.name!r}: "
                          "neighbouring times coincide")
    return times


def make_grid(kind: str = DEFAULT_GRID, steps: int = 20, schedule: str = DEFAULT_NOISE_SCHEDULE,
              start_time: float = 1.0) -> np.ndarray:
    """A reverse time grid by name: ``uniform`` (:func:`time_grid`) or ``edm`` (:func:`edm_grid`)."""
    if kind == "uniform":
        get_noise_schedule(schedule)
        return time_grid(steps, start_time)
    if kind == "edm":
        return edm_grid(steps, schedule, start_time)
    raise ElscliError(f"unknown grid {kind!r} (known: {', '.join(GRIDS)})")


def grid_name(times, schedule: str = DEFAULT_NOISE_SCHEDULE) -> str:
    """``uniform`` or ``edm`` when ``times`` is that grid of ``schedule`` (to 1e-12), else ``custom``."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 2 or not (0.0 < times[0] <= 1.0):
        return "custom"
    for kind in GRIDS:
        try:
            ref = make_grid(kind, len(times) - 1, schedule, float(times[0]))
        except ElscliError:
            continue
        if np.allclose(ref, times, rtol=1e-12, atol=1e-14):
            return kind
    return "custom"
