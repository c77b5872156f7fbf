"""The denoiser a run hands the sampler: a machine at each step's patch size, ``D(x, t) -> x0_hat``.

The sampler (:func:`elscli.sampler.ddim`) knows nothing of machines; :class:`MachineDenoiser` binds one
machine, bank, labels and locality schedule into the ``D(x, t)`` it calls, and keeps the per-pixel provenance
of the last step.  It uses only the public functions :func:`elscli.machines.denoise` and
:func:`elscli.machines.denoise_with_provenance`.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from ..noise import DEFAULT_NOISE_SCHEDULE


def _machine_api() -> Tuple[Callable, Callable]:
    """``(denoise, denoise_with_provenance)`` of :mod:`elscli.machines`, looked up at each batch (tests and
    benchmarks replace this function to observe or interrupt the machine calls)."""
    from .. import machines

    return machines.denoise, machines.denoise_with_provenance


class MachineDenoiser:
    """``D(x, t) -> x0_hat`` for one batch of samples.

    Parameters
    ----------
    machine : str
        A registered machine (:data:`elscli.machines.MACHINES`).
    bank : Bank
        The training images.
    times : ndarray (T+1,) float64
        The time grid; the step starting at ``times[i]`` uses ``patch_sizes[i]``.
    patch_sizes : ndarray (T,) int
        Patch size per step (ignored for IS).
    labels : ndarray (B,) int64
        The batch's labels (-1 unconditional); all -1 means an unconditional machine.
    threads : int, optional
        Numba threads for each machine call (None: Numba's current setting).
    noise_schedule : str
        The noise schedule giving a(t), b(t).
    machine_params : dict, optional
        The machine's parameters other than the patch size (``{"sigma": 0.1}``; a schedule {t: value}).

    Calling it with ``x`` (B, C, H, W) float64 and a grid time ``t`` returns ``x0_hat`` (B, C, H, W)
    float64; at the last step (``t = times[-2]``) it also stores :attr:`provenance`
    (:class:`elscli.machines.Provenance`) when the machine has one.  A time not on the grid raises KeyError; the machines raise
    ElscliError for bad input.
    """

    def __init__(self, machine: str, bank, times: np.ndarray, patch_sizes: np.ndarray, labels: np.ndarray,
                 threads: Optional[int] = None, noise_schedule: str = DEFAULT_NOISE_SCHEDULE,
                 machine_params: Optional[dict] = None) -> None:
        from ..machines import machine_class

        cls = machine_class(machine)
        self.machine = machine
        self.machine_params = dict(machine_params or {})
        self._has_patch = any(p.name == "patch_size" for p in cls.parameters)
        self._has_provenance = cls.has_provenance
        self.bank = bank
        self._sizes = {float(t): int(p) for t, p in zip(times[:-1], patch_sizes)}
        self._last_t = float(times[-2])
        self.labels = _label_arg(labels)
        self.threads = threads
        self.provenance = None
        self.noise_schedule = noise_schedule
        self._denoise, self._denoise_prov = _machine_api()

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        p = self._sizes[float(t)]
        patch = p if self._has_patch else None
        if float(t) == self._last_t and self._has_provenance:
            x0, self.provenance = self._denoise_prov(self.machine, x, t, self.bank, patch, self.labels,
                                                     threads=self.threads, noise_schedule=self.noise_schedule,
                                                     **self.machine_params)
            return x0
        return self._denoise(self.machine, x, t, self.bank, patch, self.labels, threads=self.threads,
                             noise_schedule=self.noise_schedule, **self.machine_params)


def _label_arg(labels: np.ndarray):
    labels = np.asarray(labels, dtype=np.int64)
    if np.all(labels < 0):
        return None
    return labels
