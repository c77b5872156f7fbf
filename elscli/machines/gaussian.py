"""The Gaussian fit of a training set — one eigendecomposition per (bank content, label) — and the ``wiener``
machine, the posterior mean under that Gaussian.

**The fit.**  The N dictionary images as vectors y_n of D = C H W values; mean ``mu = (1/N) sum_n y_n`` and
maximum-likelihood covariance ``Sigma = (1/N) sum_n (y_n - mu)(y_n - mu)^T``.  Its eigendecomposition
``Sigma = U diag(lam) U^T`` is computed once and kept in a content-keyed cache (:mod:`.cache`): from the
D x D covariance when N >= D, else from the N x N Gram matrix ``G = (1/N) Yc Yc^T`` (Yc the centred images),
whose eigenpairs (lam, v) give ``u = Yc^T v / sqrt(N lam)``.  Only eigenvalues above
``lam_max max(N, D) eps`` are kept (the rank of the data; numpy's matrix-rank rule): the others are zero up
to rounding, and a zero eigenvalue contributes nothing to either machine that uses the fit.  LAPACK and BLAS
run on one thread here, so the fit is the same whatever thread count the process was given.

**wiener** (Wang & Vastola 2024, "The unreasonable effectiveness of Gaussian score approximation for
diffusion models and its applications", TMLR 2024, arXiv 2311.10892: the posterior mean under their
Gaussian model; the ``wiener`` model of analytic-diffusion-studio):

    x0_hat = mu + a Sigma (a^2 Sigma + b^2 I)^-1 (x - a mu) = mu + U diag(a lam / (a^2 lam + b^2)) U^T (x - a mu)

(:func:`elscli.kernels.gaussian.wiener_apply`).  It is linear in x and has no dominant training image (no
provenance).  It is the exact posterior mean only when the data are Gaussian: on N samples of a Gaussian
both it and IS tend to the true posterior mean as N grows, at a fixed noise level and dimension — IS only
once the samples are dense at the scale b/a, which in D dimensions needs N exponential in D (at low noise
IS returns a training image, the Wiener filter a shrunk projection).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np

from .cache import ContentCache
from .interface import Denoiser, Provenance, register
from .patch_dictionary import index_digest
from .training_set import TrainingSet

_FITS = ContentCache(4)            # (bank key, index digest) -> GaussianFit


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS and LAPACK on one thread for the body (threadpoolctl), so their summation order, and so their
    results, do not follow the machine's core count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                              # pragma: no cover - a declared dependency
        yield
        return
    with threadpool_limits(limits=1):
        yield


@dataclass(frozen=True)
class GaussianFit:
    """The Gaussian fit of the images ``bank.images[index]``: ``mean`` (D,) float64, ``vectors`` (r, D) float64
    orthonormal eigenvectors of the covariance (rows, eigenvalues decreasing), ``values`` (r,) float64 their
    eigenvalues (> 0), ``constant`` (H W,) bool the pixels where every image has the same value in every
    channel (zero variance), ``shape`` (C, H, W)."""

    mean: np.ndarray
    vectors: np.ndarray
    values: np.ndarray
    constant: np.ndarray
    shape: Tuple[int, int, int]

    def gains(self, a: float, b: float) -> np.ndarray:
        """a lam / (a^2 lam + b^2) per eigenvector (the Wiener filter on x), (r,) float64."""
        lam = self.values
        return a * lam / (a * a * lam + b * b)

    def shrinkage(self, a: float, b: float) -> np.ndarray:
        """a^2 lam / (a^2 lam + b^2) in [0, 1] per eigenvector (the Wiener filter on x / a), (r,) float64."""
        lam = self.values
        return a * a * lam / (a * a * lam + b * b)


def fit_gaussian(images: np.ndarray) -> GaussianFit:
    """The :class:`GaussianFit` of ``images`` (N, C, H, W) real (see the module docstring)."""
    N, C, H, W = images.shape
    D = C * H * W
    Y = np.asarray(images, dtype=np.float64).reshape(N, D)
    mean = Y.mean(axis=0)
    Yc = Y - mean
    with _one_blas_thread():
        if N >= D:
            lam, vec = np.linalg.eigh(Yc.T @ Yc / N)            # columns: eigenvectors of Sigma
            lam = lam[::-1]
            vec = vec[:, ::-1]
            keep = lam > max(lam[0], 0.0) * max(N, D) * np.finfo(np.float64).eps
            lam = lam[keep]
            vectors = np.ascontiguousarray(vec[:, keep].T)
        else:
            lam, v = np.linalg.eigh(Yc @ Yc.T / N)               # Gram matrix: eigenvectors in image space
            lam = lam[::-1]
            v = v[:, ::-1]
            keep = lam > max(lam[0], 0.0) * max(N, D) * np.finfo(np.float64).eps
            lam = lam[keep]
            vectors = np.ascontiguousarray((Yc.T @ v[:, keep] / np.sqrt(N * lam)).T)
    flat = np.asarray(images).reshape(N, C, H * W)
    constant = np.all(flat == flat[:1], axis=(0, 1))
    return GaussianFit(mean, vectors, np.ascontiguousarray(lam), constant, (C, H, W))


def gaussian_fit(bank: TrainingSet, index: np.ndarray) -> GaussianFit:
    """The cached :class:`GaussianFit` of ``bank.images[index]`` (computed once per content and index set)."""
    return _FITS.get((bank.key, index_digest(index)), lambda: fit_gaussian(bank.images[index]))


@register
class Wiener(Denoiser):
    """wiener: the posterior mean under the training set's Gaussian fit (module docstring); no parameters,
    no provenance."""

    name = "wiener"
    summary = "Gaussian (linear) denoiser: the Wiener filter of the bank's mean and covariance"
    parameters = ()
    has_provenance = False

    def _prepare(self, index, t, ab, values) -> None:
        gaussian_fit(self.bank, index)

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        from ..kernels.gaussian import wiener_apply

        fit = gaussian_fit(self.bank, index)
        B = x.shape[0]
        out = wiener_apply(x.reshape(B, -1), fit.mean, fit.vectors, fit.gains(a, b), float(a))
        return out.reshape(x.shape), None
