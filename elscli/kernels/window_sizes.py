"""The LS machine for many window sizes in one pass over the bank (locality calibration).

The local score machine (Kamb & Ganguli 2025; science.md, "The machines") weighs, for query pixel p, the
same-location P x P window of every training image n (zero padding):

    log w_P(n, p) = -||x_{W_P(p)} - a y_{n, W_P(p)}||^2 / (2 b^2)
                  = sum_{z in W_P(p)} Z_n(z) + const(p),   Z_n(z) = sum_c y_n(c, z) (s1 x(c, z) - s2 y_n(c, z)),

with ``s1 = a / b^2``, ``s2 = a^2 / (2 b^2)`` (the constant ``||x||^2 / 2b^2`` cancels in the softmax), and
``x0_hat_P(p) = sum_n w_P(n, p) y_n(p) / sum_n w_P(n, p)``.  The terms ``Z_n(z)`` do not depend on P: with
the integral image ``I_n`` of ``Z_n`` (summed-area table; Crow 1984) each window size is four look-ups,

    log w_P(n, p) = I_n(i1, j1) - I_n(i0, j1) - I_n(i1, j0) + I_n(i0, j0),

``[i0, i1) x [j0, j1)`` the window clipped to the image (zero padding adds nothing).  So a locality scan's
candidates 3, 5, ..., 31 cost one pass over the bank per query — the terms and the table once, then per
candidate four look-ups per (pixel, image), a maximum and the exps — instead of one pass per candidate.

Exactness: float64 throughout (the table's differences lose ~1e-16 of the sum of |Z| over the image, far
below elscli's 1e-6); per (pixel, size, chunk of lanes) a chunk whose largest log weight is below
e^-SKIP_LOG_RATIO of the running maximum is skipped (elscli's exactness rule), and weights below e^-600 of
the maximum count as e^-600 (:func:`.expm.exp_clamped`).  The result agrees with the shift kernel's LS
(:mod:`.shift_softmax`, one size per call) to rounding (~1e-13), not bitwise: the sums run in another order.

Measured (``benchmarks/bench_scan.py``, LS, candidates 3:31 on mnist-5k): one pass for all 15 sizes takes
0.7-0.9x the time of the 15 one-size calls — the window sums are a minority of the work; each size still
needs, per (pixel, training image), its log weight's comparison with the running maximum and, where it is
not negligible, its exp and weighted sums.

Layers (as :mod:`.shift_softmax`): :func:`_block_job` works one (query, block of training images) pair into
a private :class:`.softmax_state.SoftmaxState` of (size, pixel) entries, in chunks of :data:`CHUNK` lanes
(the table of a chunk, (H+1) (W+1) CHUNK float64, stays in the core's cache); :func:`window_sizes_softmax`
runs ``prange`` over those pairs and merges the blocks in a fixed order (:func:`.softmax_state.merge`), so
results are bitwise identical for any thread count and batch size.  Only x0_hat is returned: calibration
needs no provenance (the states' dominant patch stays unset).
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH, SKIP_LOG_RATIO
from .softmax_state import (SoftmaxState, add_weights, add_weights_live, block_max, empty_state, merge,
                            raise_maximum)

#: Lanes (training images) per integral image: 128 lanes of a 33 x 33 table are 1.1 MB of float64.
CHUNK = 128


@njit(fastmath=FASTMATH, cache=True)
def _block_job(x, yb, nvalid, radii, s1, s2, compress, state):
    """Online softmax of one query over one block of training images, for every window size, into a
    private state.  x: (C, H, W) query; yb: (H, W, C, K) block (lanes = images, the first ``nvalid``
    valid); radii: (Q,) window radii P // 2; state: :class:`SoftmaxState` of Q H W entries, size q and pixel
    (i, j) at (q H + i) W + j.  Per (size, pixel, chunk): the chunk is skipped when its largest log weight is
    below e^-SKIP_LOG_RATIO of the running maximum; otherwise its weights are added, over the live lanes
    only (compressed first) where at most half are live and ``compress`` (one channel, compress stores)."""
    C, H, W = x.shape
    Q = radii.shape[0]
    xs = np.empty_like(x)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                xs[c, i, j] = s1 * x[c, i, j]
    table = np.zeros((H + 1, W + 1, CHUNK))
    row = np.empty(CHUNK)
    logw = np.empty(CHUNK)
    live_logw = np.empty(CHUNK)
    wbuf = np.empty(CHUNK)
    live_centre = np.empty(CHUNK, dtype=np.float32)
    centre = np.empty((C, CHUNK), dtype=np.float32)
    for lo in range(0, nvalid, CHUNK):
        n = min(CHUNK, nvalid - lo)
        # integral image of the terms Z: table[i + 1, j + 1] = sum of Z over [0, i] x [0, j]
        for i in range(H):
            for k in range(n):
                row[k] = 0.0
            for j in range(W):
                for c in range(C):
                    q = xs[c, i, j]
                    for k in range(n):
                        y = np.float64(yb[i, j, c, lo + k])
                        row[k] += y * (q - s2 * y)
                for k in range(n):
                    table[i + 1, j + 1, k] = table[i, j + 1, k] + row[k]
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    for k in range(n):
                        centre[c, k] = yb[i, j, c, lo + k]
                for qi in range(Q):
                    r = radii[qi]
                    t11 = table[min(i + r + 1, H), min(j + r + 1, W)]
                    t01 = table[max(i - r, 0), min(j + r + 1, W)]
                    t10 = table[min(i + r + 1, H), max(j - r, 0)]
                    t00 = table[max(i - r, 0), max(j - r, 0)]
                    for k in range(n):
                        logw[k] = (t11[k] - t01[k]) - (t10[k] - t00[k])
                    p = (qi * H + i) * W + j
                    mx = block_max(logw, n)
                    if mx < state.m[p] - SKIP_LOG_RATIO:
                        continue            # every weight of the chunk is < e^-40 of the running maximum
                    mo = raise_maximum(state, p, mx)
                    if compress and C == 1:
                        thr = mo - SKIP_LOG_RATIO
                        nlive = 0
                        for k in range(n):
                            nlive += logw[k] >= thr
                        if 2 * nlive <= n:
                            add_weights_live(state, p, logw, n, mo, centre[0], live_logw, live_centre)
                            continue
                    add_weights(state, p, logw, n, mo, centre, wbuf)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def window_sizes_softmax(x, yt, nimg, radii, scales, compress):
    """x0_hat of the LS machine for every window radius in ``radii``.

    Parameters
    ----------
    x : (B, C, H, W) float64
        Queries (unpadded: windows are clipped to the image, which is zero padding).
    yt : (nblk, H, W, C, K) float32
        The dictionary's training images in blocks (:func:`.shift_softmax.transpose_blocks`), the first
        ``nimg`` lanes valid.
    radii : (Q,) int64
        Window radii P // 2 (>= 0).
    scales : LogWeightScales
        s1 = a/b^2 and s2 = a^2/2b^2 of the noise level.
    compress : bool
        Compress live lanes before the exps where at most half are live (``KernelOptions.compress_lanes``).

    Returns
    -------
    x0_hat : (Q, B, C, H, W) float64
        Blocks merged in block order, whatever the thread count.
    """
    s1 = scales.s1
    s2 = scales.s2
    B, C, H, W = x.shape
    nblk = yt.shape[0]
    K = yt.shape[4]
    Q = radii.shape[0]
    n = Q * H * W
    # named tuples unpacked before each prange loop and rebuilt inside it (see .softmax_state)
    sm, ss, st, sld, sacc, sdom = empty_state(B * nblk * n, C)
    em, es, et, eld, eacc, edom = empty_state(B * n, C)
    for job in prange(B * nblk):
        bi = job // nblk
        kb = job - bi * nblk
        nvalid = min(K, nimg - kb * K)
        q0 = job * n
        q1 = q0 + n
        _block_job(x[bi], yt[kb], nvalid, radii, s1, s2, compress,
                   SoftmaxState(sm[q0:q1], ss[q0:q1], st[q0:q1], sld[q0:q1], sacc[q0:q1], sdom[q0:q1]))
    out = np.empty((Q, B, C, H, W))
    x0 = np.empty((B * n, C))
    for bi in prange(B):
        for p in range(n):
            merge(SoftmaxState(sm, ss, st, sld, sacc, sdom), bi * nblk * n + p, n, nblk,
                  SoftmaxState(em, es, et, eld, eacc, edom), bi * n + p, x0[bi * n + p])
    for qi in range(Q):
        for bi in range(B):
            for c in range(C):
                for i in range(H):
                    for j in range(W):
                        out[qi, bi, c, i, j] = x0[bi * n + (qi * H + i) * W + j, c]
    return out
