"""A softmax over whole training images per output pixel, with distances restricted to that pixel's mask.

For output pixel p with receptive field (mask) Omega_p, over the training images y_n (all channels share the
weights, as in every elscli machine):

    log w_n(p) = -(1 / 2 b^2 tau) sum_{q in Omega_p} sum_c (x_{c,q} - a y_{n,c,q})^2
               = (1/tau) sum_{q in Omega_p} sum_c y_{n,c,q} (s1 x_{c,q} - s2 y_{n,c,q}) + const(p),

    x0_hat_c(p) = sum_n w_n(p) y_{n,c,p},

with s1 = a/b^2, s2 = a^2/2b^2 (the constant, sum over the mask of x^2 / 2b^2 tau, cancels).  This is the
analytical denoiser of Lukoianov et al. (2025, "Locality in image diffusion models emerges from data
statistics", arXiv 2509.09672: their analytical denoiser, an empirical softmax whose distances are
restricted to the support of the Wiener filter, with a temperature); a full mask is the IS machine with log weights divided by tau.

Bank layout: pixel-major, images innermost ((HW, C, N) float32), so every loop over images is contiguous.
One (query, run of pixels) per parallel item, images summed in index order: results do not depend on the
thread count or the batch.  Weights below e^-40 of the maximum are exactly 0 (elscli's exactness rule,
:func:`.expm.exp_nonpositive`).
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH
from .expm import exp_nonpositive
from .softmax_state import entropy_nats

#: Output pixels per parallel item (amortises the item's buffers).
PIXELS_PER_JOB = 16


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def masked_softmax(x, yt, index, indptr, indices, s1, s2):
    """The masked whole-image posterior of every pixel of every query.

    Parameters
    ----------
    x : (B, C, HW) float64
        Flattened queries.
    yt : (HW, C, N) float32
        The dictionary's images, pixel-major, images innermost.
    index : (N,) int64
        Their indices in the bank (for provenance).
    indptr, indices : (HW + 1,) and (nnz,) int64
        The masks in CSR form: pixel p's mask is ``indices[indptr[p]:indptr[p + 1]]`` (pixel indices).
    s1, s2 : float
        a/(b^2 tau) and a^2/(2 b^2 tau).

    Returns
    -------
    x0_hat : (B, C, HW) float64
    image : (B, HW) int64
        The dominant image per pixel (the first maximum in index order).
    weight : (B, HW) float64
        Its normalised weight.
    entropy : (B, HW) float64
        The posterior entropy (nats).
    """
    B, C, HW = x.shape
    N = yt.shape[2]
    x0 = np.zeros((B, C, HW))
    dom = np.empty((B, HW), dtype=np.int64)
    weight = np.empty((B, HW))
    entropy = np.empty((B, HW))
    nchunk = (HW + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB
    for job in prange(B * nchunk):
        bi = job // nchunk
        p0 = (job - bi * nchunk) * PIXELS_PER_JOB
        p1 = min(HW, p0 + PIXELS_PER_JOB)
        logw = np.empty(N)
        for p in range(p0, p1):
            for n in range(N):
                logw[n] = 0.0
            for e in range(indptr[p], indptr[p + 1]):
                q = indices[e]
                for c in range(C):
                    xs = s1 * x[bi, c, q]
                    row = yt[q, c]
                    for n in range(N):
                        y = np.float64(row[n])
                        logw[n] += y * (xs - s2 * y)
            nbest = 0
            for n in range(1, N):
                if logw[n] > logw[nbest]:
                    nbest = n
            mx = logw[nbest]
            S = 0.0
            T = 0.0
            for n in range(N):
                yk = logw[n] - mx
                w = exp_nonpositive(yk)
                S += w
                T += w * yk
                logw[n] = w
            for c in range(C):
                row = yt[p, c]
                acc = 0.0
                for n in range(N):
                    acc += logw[n] * np.float64(row[n])
                x0[bi, c, p] = acc / S
            dom[bi, p] = index[nbest]
            weight[bi, p] = 1.0 / S
            entropy[bi, p] = entropy_nats(S, T)
    return x0, dom, weight, entropy
