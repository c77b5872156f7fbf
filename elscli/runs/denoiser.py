"""The denoiser a run hands the sampler: a machine with the run's locality schedule, ``D(x, t) -> x0_hat``.

The sampler (:func:`elscli.sampler.ddim`) knows nothing of machines.  A run builds its machine once
(:func:`run_denoiser`: :func:`elscli.machines.make_denoiser` with the patch size as the schedule {t: P} of the
run's grid) and prepares it for the run's times and labels (:meth:`elscli.machines.Denoiser.prepare`: image
blocks, constant patches, patch trees, Gaussian fits built once, before the sampling loop);
:class:`MachineDenoiser` binds that denoiser and one batch's labels into the ``D(x, t)`` the sampler calls,
and keeps the per-pixel provenance of the last step.  The outputs are bitwise those of calling
:func:`elscli.machines.denoise` at each step with that step's patch size (``benchmarks/bitwise_runs.py``;
``tests/test_runs.py``).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from ..noise import DEFAULT_NOISE_SCHEDULE


def _evaluate(denoiser, x: np.ndarray, t: float, label):
    """``x0_hat`` of ``denoiser`` for the batch ``x`` at grid time ``t``."""
    return denoiser(x, t, label=label)


def _evaluate_with_provenance(denoiser, x: np.ndarray, t: float, label):
    """``(x0_hat, Provenance)`` of ``denoiser`` for the batch ``x`` at grid time ``t``."""
    return denoiser.denoise_with_provenance(x, t, label=label)


def _machine_api() -> Tuple[Callable, Callable]:
    """``(evaluate, evaluate_with_provenance)``, each called as ``f(denoiser, x, t, label)``, looked up for each
    batch (tests and benchmarks replace this function to observe or interrupt the machine calls)."""
    return _evaluate, _evaluate_with_provenance


def run_denoiser(machine: str, bank, times: np.ndarray, patch_sizes: np.ndarray, *, threads: Optional[int] = None,
                 noise_schedule: str = DEFAULT_NOISE_SCHEDULE, machine_params: Optional[dict] = None):
    """The machine of a run, built once: a :class:`elscli.machines.Denoiser` whose patch size (for the machines
    that have one) is the schedule ``{times[i]: patch_sizes[i]}`` of the run's steps.

    Parameters
    ----------
    machine : str
        A registered machine (:data:`elscli.machines.MACHINES`).
    bank : Bank, (N, C, H, W) array or TrainingSet
        The training images.
    times : ndarray (T+1,) float64
        The time grid; the step starting at ``times[i]`` uses ``patch_sizes[i]``.
    patch_sizes : ndarray (T,) int
        Patch size per step (ignored by the machines without one, e.g. IS).
    threads : int, optional
        Numba threads for each machine call (None: Numba's current setting).
    noise_schedule : str
        The noise schedule giving a(t), b(t).
    machine_params : dict, optional
        The machine's parameters other than the patch size (``{"sigma": 0.1}``; a schedule {t: value}).

    Not prepared: call ``.prepare(times[:-1], labels)``.  Raises ElscliError for an unknown machine or
    parameter, or a bad value.
    """
    from ..machines import machine_class

    cls = machine_class(machine)
    params = dict(machine_params or {})
    if any(p.name == "patch_size" for p in cls.parameters):
        params["patch_size"] = {float(t): int(p) for t, p in zip(times[:-1], patch_sizes)}
    return cls(bank, threads=threads, noise_schedule=noise_schedule, **params)


class MachineDenoiser:
    """``D(x, t) -> x0_hat`` for one batch of samples, over a run's (prepared) denoiser.

    Parameters
    ----------
    denoiser : elscli.machines.Denoiser
        The run's machine (:func:`run_denoiser`), prepared for the run's times and labels.
    times : ndarray (T+1,) float64
        The time grid: the last step starts at ``times[-2]``.
    labels : ndarray (B,) int64
        The batch's labels (-1 unconditional); all -1 means an unconditional machine.

    Calling it with ``x`` (B, C, H, W) float64 and a grid time ``t`` returns ``x0_hat`` (B, C, H, W)
    float64; at the last step (``t = times[-2]``) it also stores :attr:`provenance`
    (:class:`elscli.machines.Provenance`) when the machine has one.  A time not on the grid raises ElscliError
    (the patch size schedule has no value there); the machines raise ElscliError for bad input.
    """

    def __init__(self, denoiser, times: np.ndarray, labels: np.ndarray) -> None:
        self.denoiser = denoiser
        self.machine = denoiser.name
        self._has_provenance = denoiser.has_provenance
        self._last_t = float(times[-2])
        self.labels = _label_arg(labels)
        self.provenance = None
        self._evaluate, self._evaluate_prov = _machine_api()

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        if float(t) == self._last_t and self._has_provenance:
            x0, self.provenance = self._evaluate_prov(self.denoiser, x, t, self.labels)
            return x0
        return self._evaluate(self.denoiser, x, t, self.labels)


def _label_arg(labels: np.ndarray):
    labels = np.asarray(labels, dtype=np.int64)
    if np.all(labels < 0):
        return None
    return labels
