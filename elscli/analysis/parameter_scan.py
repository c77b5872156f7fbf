"""Calibrating any scalar machine parameter: the candidates and the evaluator of ``locality-scan --parameter``.

The locality scan (:mod:`.scan`) compares a network's score with a machine's at every step of the network's
own trajectory and keeps each sample's best candidate.  Its candidates are patch sizes for the local
machines; here they are the values of any scalar parameter of any registered machine — the smoothing
``sigma`` of scfdm, the mask ``threshold`` or the ``temperature`` of pca-locality, the ``temperature`` of
IS, the patch size of pspc-square — each evaluated through the denoiser interface alone
(:func:`elscli.machines.make_denoiser`: one denoiser per candidate value, the machine's other parameters
fixed), so a new machine needs nothing here.  The scan file then records ``parameter`` and float candidates,
and the aggregate is a :class:`elscli.schedule.ParameterSchedule` ``{"times": [...], NAME: [...]}``, which
``elscli sample --NAME FILE`` reads.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ElscliError

#: The parameter a scan calibrates when none is named: the local machines' patch size.
PATCH_SIZE = "patch_size"


def parse_values(spec) -> List[float]:
    """Candidate values of a scalar parameter: ``"0,0.05,0.1"`` or a sequence of numbers -> sorted distinct
    floats.  Raises ElscliError for an unreadable spec, no values, or a value that is not finite (the
    machine checks the range of each: :func:`parameter_evaluator`)."""
    if isinstance(spec, str):
        try:
            values = [float(v) for v in spec.replace(" ", "").split(",") if v]
        except ValueError:
            raise ElscliError(f"cannot read candidate values {spec!r} (expected e.g. 0,0.05,0.1)") from None
    else:
        try:
            values = [float(v) for v in spec]
        except (TypeError, ValueError):
            raise ElscliError(f"cannot read candidate values {spec!r} (expected numbers)") from None
    if not values:
        raise ElscliError("no candidate values given")
    if not all(np.isfinite(values)):
        raise ElscliError(f"candidate values must be finite, got {spec!r}")
    return sorted(set(values))


def check_parameter(machine: str, parameter: str) -> str:
    """``parameter`` (dashes read as underscores) when machine ``machine`` has it; else ElscliError naming
    the machine's parameters (also for an unknown machine)."""
    from ..machines import machine_class

    name = str(parameter).replace("-", "_")
    names = [p.name for p in machine_class(machine).parameters]
    if name not in names:
        raise ElscliError(f"machine {machine!r} has no parameter {name!r} "
                          f"(its parameters: {', '.join(names) or 'none'})")
    return name


def parameter_evaluator(machine: str, bank, parameter: str, *, threads: Optional[int] = None,
                        noise_schedule: Optional[str] = None, machine_params: Optional[dict] = None):
    """The scan's evaluator for the values of ``parameter`` of ``machine``: ``evaluate(x, t, values, label)``
    -> x0_hat (K, B, C, H, W) float64, one denoiser per value (built on first use and kept), the machine's
    other parameters ``machine_params`` (their defaults when absent).

    ``evaluate.check(values)`` builds the denoisers of all values, so the machine refuses a bad value (e.g.
    a negative sigma, a temperature <= 0, an even patch size) in one line before any work; ``evaluate.joint``
    is False (one value per call).  Raises ElscliError for a parameter the machine does not have, or
    ``machine_params`` that name it.
    """
    from .. import machines

    parameter = check_parameter(machine, parameter)
    fixed = dict(machine_params or {})
    if parameter in fixed:
        raise ElscliError(f"{parameter} is the scanned parameter: do not also fix it")
    if noise_schedule is not None:
        fixed["noise_schedule"] = noise_schedule
    cache: Dict[float, machines.Denoiser] = {}

    def denoiser(value) -> "machines.Denoiser":
        key = float(value)
        if key not in cache:
            v = int(key) if parameter == PATCH_SIZE and key.is_integer() else key
            cache[key] = machines.make_denoiser(machine, bank, threads=threads, **fixed, **{parameter: v})
        return cache[key]

    def evaluate(x, t, values: Sequence[float], label):
        return np.stack([np.asarray(denoiser(v)(x, t, label=label), dtype=np.float64) for v in values])

    evaluate.check = lambda values: [denoiser(v) for v in values]    # type: ignore[attr-defined]
    evaluate.joint = False                                             # type: ignore[attr-defined]
    return evaluate
