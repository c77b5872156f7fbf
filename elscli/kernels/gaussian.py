"""The linear (Wiener) denoiser of a Gaussian fit, applied in its eigenbasis.

With the training set fitted by one Gaussian N(mu, Sigma) over all D = C H W values, Sigma = U diag(lam) U^T
(its eigendecomposition, :mod:`elscli.machines.gaussian`), the posterior mean of x_0 given x_t = a x_0 + b eps
is (Wang & Vastola 2024, "The unreasonable effectiveness of Gaussian score approximation for diffusion
models and its applications", TMLR 2024, arXiv 2311.10892: the posterior mean of their Gaussian model,
written in the covariance's eigenbasis)

    x0_hat = mu + a Sigma (a^2 Sigma + b^2 I)^-1 (x - a mu) = mu + sum_k u_k [a lam_k / (a^2 lam_k + b^2)] u_k^T (x - a mu).

Each query is projected on the r kept eigenvectors and reconstructed in a fixed order (one query per
parallel item): results do not depend on the thread count or the batch, unlike a BLAS product whose
summation order may follow both.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def wiener_apply(x, mean, vectors, gains, a):
    """``mean + sum_k vectors[k] gains[k] <vectors[k], x - a mean>`` for each query.

    Parameters
    ----------
    x : (B, D) float64
        Flattened queries.
    mean : (D,) float64
        The Gaussian's mean mu.
    vectors : (r, D) float64
        Orthonormal eigenvectors u_k of its covariance, one per row.
    gains : (r,) float64
        a lam_k / (a^2 lam_k + b^2) per eigenvector.
    a : float
        Signal scale of the noise level.

    Returns
    -------
    x0_hat : (B, D) float64
    """
    B, D = x.shape
    r = vectors.shape[0]
    out = np.empty((B, D))
    for bi in prange(B):
        res = np.empty(D)
        for d in range(D):
            res[d] = x[bi, d] - a * mean[d]
        coef = np.empty(r)
        for k in range(r):
            s = 0.0
            for d in range(D):
                s += vectors[k, d] * res[d]
            coef[k] = s * gains[k]
        for d in range(D):
            out[bi, d] = mean[d]
        for k in range(r):
            ck = coef[k]
            for d in range(D):
                out[bi, d] += ck * vectors[k, d]
    return out


@njit(parallel=True, cache=True)
def filter_magnitude(vectors, shrink, C, HW):
    """The pixel-level magnitude of the Wiener filter A = U diag(shrink) U^T (D = C HW values, channel-major):
    ``F[p, q] = sqrt(sum_{c, c'} A[(c, p), (c', q)]^2)``, (HW, HW) float64.

    vectors: (r, D) float64 eigenvectors (rows); shrink: (r,) float64 a^2 lam / (a^2 lam + b^2) in [0, 1].
    Each row p is one parallel item with a fixed summation order."""
    r = vectors.shape[0]
    F = np.zeros((HW, HW))
    for p in prange(HW):
        acc = np.zeros((C, C, HW))
        for k in range(r):
            sk = shrink[k]
            for c in range(C):
                up = vectors[k, c * HW + p] * sk
                if up == 0.0:
                    continue
                for c2 in range(C):
                    base = c2 * HW
                    for q in range(HW):
                        acc[c, c2, q] += up * vectors[k, base + q]
        for c in range(C):
            for c2 in range(C):
                for q in range(HW):
                    v = acc[c, c2, q]
                    F[p, q] += v * v
        for q in range(HW):
            F[p, q] = np.sqrt(F[p, q])
    return F
