"""The ideal score (IS) machine: the empirical, memorising optimal denoiser (Kamb & Ganguli 2025; science.md).

``w_n ∝ exp(-||x - a y_n||^2 / 2b^2)`` over the whole training images y_n and ``x0_hat = sum_n w_n y_n``
(:func:`elscli.kernels.ideal.ideal_softmax`).  Provenance: the dominant image, at every pixel its own
location.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .interface import Denoiser, Provenance, register


@register
class IdealScore(Denoiser):
    """IS: a softmax over whole training images; no parameters."""

    name = "is"
    summary = "ideal score: whole images, memorises"
    parameters = ()

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        from ..kernels.ideal import ideal_softmax

        B, C, H, W = x.shape
        s1 = a / (b * b)
        s2 = a * a / (2.0 * b * b)
        images = self.bank.images
        flat = images.reshape(images.shape[0], -1)
        x0, dom, w, ent = ideal_softmax(x.reshape(B, -1), flat, index, s1, s2)
        rows = np.broadcast_to(np.arange(H, dtype=np.int32)[:, None], (H, W))
        cols = np.broadcast_to(np.arange(W, dtype=np.int32)[None, :], (H, W))
        prov = Provenance(np.ascontiguousarray(np.broadcast_to(dom[:, None, None], (B, H, W))),
                          np.ascontiguousarray(np.broadcast_to(rows, (B, H, W))),
                          np.ascontiguousarray(np.broadcast_to(cols, (B, H, W))),
                          np.ascontiguousarray(np.broadcast_to(w[:, None, None], (B, H, W))),
                          np.ascontiguousarray(np.broadcast_to(ent[:, None, None], (B, H, W))))
        return x0.reshape(B, C, H, W), prov
