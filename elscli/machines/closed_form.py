"""The ``scfdm`` machine: the smoothed closed-form diffusion model (Scarvelis, Borde & Solomon 2023,
"Closed-form diffusion models", arXiv 2310.12395), as the posterior mean of the training set smoothed by a
Gaussian.

The data distribution is the training images each blurred by N(0, sigma^2 I) (a Gaussian kernel density
estimate).  Given x_t = a x_0 + b eps, image n's component gives x_t ~ N(a y_n, (a^2 sigma^2 + b^2) I) and
E[x_0 | x_t, n] = y_n + k (x_t - a y_n) with k = a sigma^2 / (a^2 sigma^2 + b^2), so

    w_n ∝ exp(-||x - a y_n||^2 / 2(a^2 sigma^2 + b^2)),   x0_hat = sum_n w_n [y_n + k (x - a y_n)]
                                                                 = (1 - a k) sum_n w_n y_n + k x.

The weights are the IS softmax with b^2 replaced by a^2 sigma^2 + b^2 (the IS kernel,
:func:`.ideal.whole_image_posterior`); sigma = 0 is IS exactly (k = 0).  The smoothing keeps the score
finite as b -> 0, so samples stay near, not on, the training images.  (analytic-diffusion-studio's ``scfdm``
estimates a related smoothing by Monte Carlo over perturbed queries; this is the closed form above.)
Provenance: the dominant image of the weights.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import ElscliError
from .ideal import whole_image_posterior
from .interface import Denoiser, Parameter, Provenance, register


#: The largest smoothing scale: a^2 sigma^2 + b^2 must stay a finite float64 (beyond it the weights are NaN).
MAX_SIGMA = 1e150


def check_sigma(value: Any, shape) -> float:
    """A smoothing scale: a finite number in [0, :data:`MAX_SIGMA`] (pixel units of the bank, [-1, 1] for
    images).  Raises ElscliError otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ElscliError(f"sigma must be a number >= 0, got {value!r}") from None
    if not math.isfinite(v) or v < 0.0:
        raise ElscliError(f"sigma must be a finite number >= 0, got {value!r}")
    if v > MAX_SIGMA:         # its square would overflow: every weight NaN ("x contains NaN or inf" a step later)
        raise ElscliError(f"sigma must be at most {MAX_SIGMA:g} (its square must stay a finite number), got {value!r}")
    return v


@register
class SmoothedClosedForm(Denoiser):
    """scfdm: the posterior mean of the training set smoothed by N(0, sigma^2 I) (module docstring)."""

    name = "scfdm"
    summary = "smoothed closed-form diffusion model: the bank blurred by N(0, sigma^2 I)"
    parameters = (Parameter("sigma", "smoothing standard deviation >= 0 in pixel units (0: IS; a schedule of "
                                     "t allowed)", check_sigma, default=0.1, time_dependent=True),)

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        sigma = values["sigma"]
        v = a * a * sigma * sigma + b * b
        x0, prov = whole_image_posterior(self.bank.images, x, index, a / v, a * a / (2.0 * v))
        if sigma > 0.0:
            k = a * sigma * sigma / v
            x0 = (1.0 - a * k) * x0 + k * x
        return x0, prov
