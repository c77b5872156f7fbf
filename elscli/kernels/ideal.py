"""The ideal-score (IS) kernel: a softmax over whole training images.

``log w_n = (a/b^2) <x, y_n> - (a^2 / 2b^2) ||y_n||^2`` and ``x0_hat = sum_n w_n y_n``: the empirical
(memorising) optimal denoiser (Kamb & Ganguli 2025, the ideal score machine; science.md, "The machines").
Two passes over the images in index order, in float64, one query per parallel item, so results do not
depend on the thread count.
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH
from .expm import exp_nonpositive
from .softmax_state import entropy_nats


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def ideal_softmax(x, y, index, s1, s2):
    """The IS posterior of each query over the training images ``y[index]``.

    Parameters
    ----------
    x : (B, D) float64
        Flattened queries (D = C H W).
    y : (N, D) float32
        The flattened bank.
    index : (K,) int64
        The dictionary's images (bank indices, increasing).
    s1, s2 : float
        a/b^2 and a^2/2b^2 of the noise level.

    Returns
    -------
    x0_hat : (B, D) float64
    image : (B,) int64
        The dominant image (the first maximum in index order; whole images have no rounding ties).
    weight : (B,) float64
        Its normalised weight.
    entropy : (B,) float64
        The posterior entropy (nats).
    """
    B = x.shape[0]
    D = x.shape[1]
    K = index.shape[0]
    x0 = np.zeros((B, D))
    dom = np.empty(B, dtype=np.int64)
    weight = np.empty(B)
    entropy = np.empty(B)
    for bi in prange(B):
        logw = np.empty(K)
        for k in range(K):
            n = index[k]
            dot = 0.0
            nrm = 0.0
            for d in range(D):
                v = np.float64(y[n, d])
                dot += x[bi, d] * v
                nrm += v * v
            logw[k] = s1 * dot - s2 * nrm
        kbest = 0
        for k in range(K):
            if logw[k] > logw[kbest]:
                kbest = k
        mx = logw[kbest]
        S = 0.0
        T = 0.0
        for k in range(K):
            yk = logw[k] - mx
            w = exp_nonpositive(yk)
            S += w
            T += w * yk
            logw[k] = w
        for k in range(K):
            w = logw[k]
            if w > 0.0:
                n = index[k]
                for d in range(D):
                    x0[bi, d] += w * np.float64(y[n, d])
        for d in range(D):
            x0[bi, d] /= S
        dom[bi] = index[kbest]
        weight[bi] = 1.0 / S
        entropy[bi] = entropy_nats(S, T)
    return x0, dom, weight, entropy
