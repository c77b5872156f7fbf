"""The ``nearest`` machine: the nearest training image, a memorisation baseline (the ``nearest_dataset``
model of analytic-diffusion-studio).

``x0_hat = y_m``, ``m = argmin_n ||x - a y_n||^2`` (the first in index order among equals): the b -> 0 limit
of IS at a fixed a > 0, whose weights then concentrate on the nearest scaled image (Kamb & Ganguli 2025;
science.md).  The argmin is the IS kernel's dominant image at the scales s1 = a, s2 = a^2/2 (any b gives the
same order: log w = -||x - a y||^2 / 2b^2 + const).  At a = 0 every image is equally near and the first is
returned.  Provenance: that image, weight 1, entropy 0.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .ideal import whole_image_provenance
from .interface import Denoiser, Provenance, register


@register
class Nearest(Denoiser):
    """nearest: the nearest training image to x / a (module docstring); no parameters."""

    name = "nearest"
    summary = "the nearest training image (the b -> 0 limit of IS), a memorisation baseline"
    parameters = ()

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        from ..kernels.ideal import ideal_softmax

        B, C, H, W = x.shape
        images = self.bank.images
        _, dom, _, _ = ideal_softmax(x.reshape(B, -1), images.reshape(images.shape[0], -1), index,
                                     float(a), 0.5 * a * a)
        x0 = images[dom].astype(np.float64)
        return x0, whole_image_provenance(dom, np.ones(B), np.zeros(B), H, W)
