"""The ideal score (IS) machine: the empirical, memorising optimal denoiser (Kamb & Ganguli 2025; science.md),
here with a temperature (the ``optimal`` model of analytic-diffusion-studio).

``w_n ∝ exp(-||x - a y_n||^2 / 2b^2 tau)`` over the whole training images y_n and ``x0_hat = sum_n w_n y_n``
(:func:`elscli.kernels.ideal.ideal_softmax`); tau = 1 (the default) is the exact posterior mean of the
empirical distribution, tau > 1 flattens the weights, tau < 1 sharpens them.  Provenance: the dominant
image, at every pixel its own location.  :func:`whole_image_posterior` is the same softmax at any scales,
which ``scfdm`` and ``nearest`` reuse.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import ElscliError
from .interface import Denoiser, Parameter, Provenance, register


#: The smallest softmax temperature: log weights divided by a smaller one overflow float64 (every weight NaN).
MIN_TEMPERATURE = 1e-100


def check_temperature(value: Any, shape) -> float:
    """A softmax temperature: a finite number >= :data:`MIN_TEMPERATURE`.  Raises ElscliError otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ElscliError(f"temperature must be a number > 0, got {value!r}") from None
    if not math.isfinite(v) or v <= 0.0:
        raise ElscliError(f"temperature must be a finite number > 0, got {value!r}")
    if v < MIN_TEMPERATURE:   # the log weights / tau would overflow: NaN weights ("x contains NaN or inf" later)
        raise ElscliError(f"temperature must be at least {MIN_TEMPERATURE:g} (log weights divided by a smaller "
                          f"one overflow), got {value!r}")
    return v


def whole_image_posterior(images: np.ndarray, x: np.ndarray, index: np.ndarray, s1: float, s2: float):
    """The softmax over whole images ``log w_n = s1 <x, y_n> - s2 ||y_n||^2`` of the queries x (B, C, H, W)
    float64 over ``images[index]``: x0_hat = sum_n w_n y_n (B, C, H, W) float64 and its :class:`Provenance`
    (the dominant image, every pixel at its own location)."""
    from ..kernels.ideal import ideal_softmax

    B, C, H, W = x.shape
    flat = images.reshape(images.shape[0], -1)
    x0, dom, w, ent = ideal_softmax(x.reshape(B, -1), flat, index, s1, s2)
    return x0.reshape(B, C, H, W), whole_image_provenance(dom, w, ent, H, W)


def whole_image_provenance(dom: np.ndarray, weight: np.ndarray, entropy: np.ndarray, H: int, W: int) -> Provenance:
    """The :class:`Provenance` of a whole-image posterior: per query (B,) the dominant image, its weight and
    the entropy, broadcast to every pixel (each at its own location)."""
    B = dom.shape[0]
    rows = np.broadcast_to(np.arange(H, dtype=np.int32)[:, None], (H, W))
    cols = np.broadcast_to(np.arange(W, dtype=np.int32)[None, :], (H, W))
    return Provenance(np.ascontiguousarray(np.broadcast_to(dom[:, None, None], (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(rows, (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(cols, (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(weight[:, None, None], (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(entropy[:, None, None], (B, H, W))))


@register
class IdealScore(Denoiser):
    """IS: a softmax over whole training images, log weights divided by a temperature (default 1)."""

    name = "is"
    summary = "ideal score: whole images, memorises"
    parameters = (Parameter("temperature", "softmax temperature tau > 0: log weights divided by tau "
                                           "(1: the exact empirical posterior; a schedule of t allowed)",
                            check_temperature, default=1.0, time_dependent=True),)

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        tau = values["temperature"]
        s1 = a / (b * b)
        s2 = a * a / (2.0 * b * b)
        if tau != 1.0:
            s1 /= tau
            s2 /= tau
        return whole_image_posterior(self.bank.images, x, index, s1, s2)
