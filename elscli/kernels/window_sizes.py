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

Layers (as :mod:`.shift_softmax`): :func:`_block_job` works one (query, block of training images) pair into
private buffers, in chunks of :data:`CHUNK` lanes (the table of a chunk, (H+1) (W+1) CHUNK float64, stays in
the core's cache); :func:`window_sizes_softmax` runs ``prange`` over those pairs and merges the blocks in a
fixed order, so results are bitwise identical for any thread count and batch size.  Only x0_hat is
returned: calibration needs no provenance.
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH, SKIP_LOG_RATIO
from .expm import LOG_RATIO_FLOOR, exp_clamped, exp_nonpositive
from .lanes import compress_live
from .shift_softmax import block_max

#: Lanes (training images) per integral image: 128 lanes of a 33 x 33 table are 1.1 MB of float64.
CHUNK = 128


@njit(fastmath=FASTMATH, cache=True)
def _fold(q, i, j, logw, n, centre, compress, m, s, acc, wbuf, live_logw):
    """Fold the log weights ``logw[:n]`` of one chunk (centre values ``centre[c, :n]``, float32 contiguous)
    into the running softmax of size q, pixel (i, j): m (running maximum), s (sum of exp(log w - m)),
    acc[c] (weighted centres).  Skipped when every weight is below e^-SKIP_LOG_RATIO of the running maximum;
    where at most half of the lanes are above that line (and ``compress``: one channel, a CPU with compress
    stores) only those are exponentiated (:func:`.lanes.compress_live`)."""
    mx = block_max(logw, n)
    mo = m[q, i, j]
    if mx < mo - SKIP_LOG_RATIO:
        return
    C = centre.shape[0]
    if mx > mo:
        sc = exp_nonpositive(mo - mx)             # 0 when mo = -inf
        s[q, i, j] *= sc
        for c in range(C):
            acc[q, c, i, j] *= sc
        m[q, i, j] = mx
        mo = mx
    se = 0.0
    if C == 1:
        lw = logw
        cen = centre[0]
        if compress:
            thr = mo - SKIP_LOG_RATIO
            nlive = 0
            for k in range(n):
                nlive += logw[k] >= thr
            if 2 * nlive <= n:
                n = compress_live(logw, centre[0], n, thr, live_logw, wbuf)
                lw = live_logw
                cen = wbuf
        s0 = 0.0
        for k in range(n):
            w = exp_clamped(max(lw[k] - mo, LOG_RATIO_FLOOR))
            se += w
            s0 += w * np.float64(cen[k])
        acc[q, 0, i, j] += s0
    else:
        for k in range(n):
            w = exp_clamped(max(logw[k] - mo, LOG_RATIO_FLOOR))
            se += w
            live_logw[k] = w
        for c in range(C):
            sc_c = 0.0
            for k in range(n):
                sc_c += live_logw[k] * np.float64(centre[c, k])
            acc[q, c, i, j] += sc_c
    s[q, i, j] += se


@njit(fastmath=FASTMATH, cache=True)
def _block_job(x, yb, nvalid, radii, s1, s2, compress, m, s, acc):
    """Online softmax of one query over one block of training images, for every window size, into private
    buffers.  x: (C, H, W) query; yb: (H, W, C, K) block (lanes = images, the first ``nvalid`` valid);
    radii: (Q,) window radii P // 2; m, s (Q, H, W), acc (Q, C, H, W): the running softmax per size."""
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
    wbuf = np.empty(CHUNK, dtype=np.float32)
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
                    i0 = max(i - r, 0)
                    i1 = min(i + r + 1, H)
                    j0 = max(j - r, 0)
                    j1 = min(j + r + 1, W)
                    for k in range(n):
                        logw[k] = (table[i1, j1, k] - table[i0, j1, k]) - (table[i1, j0, k] - table[i0, j0, k])
                    _fold(qi, i, j, logw, n, centre, compress, m, s, acc, wbuf, live_logw)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def window_sizes_softmax(x, yt, nimg, radii, s1, s2, compress):
    """x0_hat of the LS machine for every window radius in ``radii``: (Q, B, C, H, W) float64.

    x: (B, C, H, W) float64 queries (unpadded); yt: (nblk, H, W, C, K) float32 training images in blocks
    (:func:`.shift_softmax.transpose_blocks`), the first ``nimg`` lanes valid; radii: (Q,) int64 >= 0;
    s1 = a / b^2, s2 = a^2 / 2b^2; ``compress``: compress live lanes before the exps where at most half are
    live (``KernelOptions.compress_lanes``).  Blocks are merged in block order whatever the thread count."""
    B, C, H, W = x.shape
    nblk = yt.shape[0]
    K = yt.shape[4]
    Q = radii.shape[0]
    m = np.full((B, nblk, Q, H, W), -np.inf)
    s = np.zeros((B, nblk, Q, H, W))
    acc = np.zeros((B, nblk, Q, C, H, W))
    for job in prange(B * nblk):
        bi = job // nblk
        kb = job - bi * nblk
        nvalid = min(K, nimg - kb * K)
        _block_job(x[bi], yt[kb], nvalid, radii, s1, s2, compress, m[bi, kb], s[bi, kb], acc[bi, kb])
    out = np.empty((Q, B, C, H, W))
    for job in prange(B * Q):
        bi = job // Q
        qi = job - bi * Q
        for i in range(H):
            for j in range(W):
                M = -np.inf
                for kb in range(nblk):
                    M = max(M, m[bi, kb, qi, i, j])
                S = 0.0
                for c in range(C):
                    out[qi, bi, c, i, j] = 0.0
                for kb in range(nblk):
                    mk = m[bi, kb, qi, i, j]
                    if mk == -np.inf:
                        continue
                    sc = exp_nonpositive(mk - M)
                    S += sc * s[bi, kb, qi, i, j]
                    for c in range(C):
                        out[qi, bi, c, i, j] += sc * acc[bi, kb, qi, c, i, j]
                for c in range(C):
                    out[qi, bi, c, i, j] /= S
    return out
