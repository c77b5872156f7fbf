"""The ``pca-locality`` machine: locality from data statistics (Lukoianov, Yuan, Solomon & Sitzmann 2025,
"Locality in image diffusion models emerges from data statistics", arXiv 2509.09672; the ``pca_locality``
model of analytic-diffusion-studio).

At noise level (a, b) the Wiener filter of the training set's Gaussian fit (:mod:`.gaussian`) maps the
signal estimate x/a to x0_hat - mu by ``A = U diag(s) U^T``, ``s_k = a^2 lam_k / (a^2 lam_k + b^2)``.  Its
rows are local on natural images, and the paper takes each output pixel's receptive field from them:

- ``F[p, q] = sqrt(sum_{c, c'} A[(c, p), (c', q)]^2)`` — how much input pixel q enters output pixel p (all
  channels; for one channel |A_pq|) (:func:`elscli.kernels.gaussian.filter_magnitude`);
- the mask of p: ``Omega_p = {q : F[p, q] >= threshold * max_q' F[p, q']}`` — the support of its row,
  thresholded relative to the row's largest entry, so it is never empty for threshold in [0, 1] (a pixel
  where every training image has the same value keeps only itself: its output is that value whatever the
  mask);
- an empirical softmax over whole training images with distances restricted to the mask and a temperature
  tau: ``w_n(p) ∝ exp(-sum_{q in Omega_p} ||x_q - a y_{n,q}||^2 / (2 b^2 tau))``, ``x0_hat(p) = sum_n
  w_n(p) y_n(p)`` (:func:`elscli.kernels.masked_softmax.masked_softmax`).

threshold = 0 makes every mask the whole image: the IS machine at temperature tau.  The reference code
normalises each row by its diagonal entry and thresholds against the largest entry of the whole matrix;
the row-relative rule here does not let a few low-variance pixels (whose rows, divided by a tiny diagonal,
are huge) set the scale of every mask.  The eigendecomposition is the one :mod:`.gaussian` caches per bank;
the filter magnitude is cached per noise level, the masks per (noise level, threshold).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import ElscliError
from .cache import ContentCache
from .gaussian import gaussian_fit
from .ideal import check_temperature
from .interface import Denoiser, Parameter, Provenance, register
from .patch_dictionary import index_digest
from .training_set import TrainingSet

_MAGNITUDES = ContentCache(4)      # (bank key, index digest, a, b) -> F (HW, HW)
_MASKS = ContentCache(32)          # (bank key, index digest, a, b, threshold) -> (indptr, indices)
_PIXEL_MAJOR = ContentCache(2)     # (bank key, index digest) -> images (HW, C, N) float32


def check_threshold(value: Any, shape) -> float:
    """A mask threshold: a number in [0, 1] (above 1 every mask would be empty)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ElscliError(f"mask threshold must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or v < 0.0:
        raise ElscliError(f"mask threshold must be a number in [0, 1], got {value!r}")
    if v > 1.0:
        raise ElscliError(f"mask threshold {v} is above 1: every receptive field would be empty "
                          "(it is relative to the largest entry of each row of the Wiener filter)")
    return v


def filter_magnitude(bank: TrainingSet, index: np.ndarray, a: float, b: float) -> np.ndarray:
    """F (HW, HW) float64 of the module docstring for the images ``bank.images[index]`` at scales (a, b),
    from the content-keyed cache."""
    from ..kernels.gaussian import filter_magnitude as kernel

    def build():
        fit = gaussian_fit(bank, index)
        C, H, W = fit.shape
        return kernel(fit.vectors, fit.shrinkage(a, b), C, H * W)

    return _MAGNITUDES.get((bank.key, index_digest(index), float(a), float(b)), build)


def receptive_fields(bank: TrainingSet, index: np.ndarray, a: float, b: float,
                     threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """The masks Omega_p of every pixel in CSR form: ``(indptr (HW + 1,), indices (nnz,))`` int64, pixel p's
    mask being ``indices[indptr[p]:indptr[p + 1]]`` (increasing); from the content-keyed cache."""

    def build():
        fit = gaussian_fit(bank, index)
        F = filter_magnitude(bank, index, a, b)
        top = F.max(axis=1)
        mask = F >= threshold * top[:, None]
        lone = fit.constant | (top <= 0.0)
        mask[lone] = False
        mask[lone, np.flatnonzero(lone)] = True
        rows, cols = np.nonzero(mask)
        indptr = np.zeros(F.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=F.shape[0]), out=indptr[1:])
        return indptr, cols.astype(np.int64)

    key = (bank.key, index_digest(index), float(a), float(b), float(threshold))
    return _MASKS.get(key, build)


def pixel_major(bank: TrainingSet, index: np.ndarray) -> np.ndarray:
    """The images ``bank.images[index]`` as (HW, C, N) float32 (pixel-major, images innermost), cached."""
    def build():
        imgs = bank.images[index]
        N, C, H, W = imgs.shape
        return np.ascontiguousarray(imgs.reshape(N, C, H * W).transpose(2, 1, 0))

    return _PIXEL_MAJOR.get((bank.key, index_digest(index)), build)


@register
class PCALocality(Denoiser):
    """pca-locality: an empirical softmax per pixel, restricted to the thresholded support of that pixel's
    row of the Wiener filter, with a temperature (module docstring)."""

    name = "pca-locality"
    summary = "locality from data statistics: IS restricted to each pixel's Wiener-filter support"
    parameters = (
        Parameter("threshold", "mask threshold in [0, 1], relative to each row's largest Wiener-filter entry "
                               "(0: the whole image; a schedule of t allowed)", check_threshold, default=0.1,
                  time_dependent=True),
        Parameter("temperature", "softmax temperature tau > 0: log weights divided by tau (a schedule of t "
                                 "allowed)", check_temperature, default=1.0, time_dependent=True),
    )

    def _prepare(self, index, t, ab, values) -> None:
        gaussian_fit(self.bank, index)
        pixel_major(self.bank, index)
        if ab is not None:
            receptive_fields(self.bank, index, ab[0], ab[1], values["threshold"])

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        from ..kernels.masked_softmax import masked_softmax

        B, C, H, W = x.shape
        tau = values["temperature"]
        indptr, indices = receptive_fields(self.bank, index, a, b, values["threshold"])
        yt = pixel_major(self.bank, index)
        x0, dom, w, ent = masked_softmax(x.reshape(B, C, H * W), yt, index, indptr, indices,
                                         a / (b * b * tau), a * a / (2.0 * b * b * tau))
        rows = np.broadcast_to(np.arange(H, dtype=np.int32)[:, None], (B, H, W))
        cols = np.broadcast_to(np.arange(W, dtype=np.int32)[None, :], (B, H, W))
        prov = Provenance(dom.reshape(B, H, W), np.ascontiguousarray(rows), np.ascontiguousarray(cols),
                          w.reshape(B, H, W), ent.reshape(B, H, W))
        return x0.reshape(B, C, H, W), prov
