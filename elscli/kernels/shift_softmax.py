"""The fused patch-distance + online-softmax kernel behind the LS, ELS and bbELS machines.

For every query pixel p and every patch phi of its dictionary D_p (science.md, "The machines"):

    log w(phi) = -||x_p - a phi||^2 / (2 b^2) = (a/b^2) <x_p, phi> - (a^2 / 2b^2) ||phi||^2 + const(p)

and ``x0_hat(p) = sum_phi w(phi) phi(centre) / sum_phi w(phi)``; the constant ``||x_p||^2`` cancels.

**Dictionaries as groups.**  A group is a rectangle of query pixels sharing one rectangle of patch centres
in every training image: ELS is one group (all pixels, every valid centre); bbELS has at most (2r+1)^2
(interior block, edge rows and columns, corners); LS is one group whose centre is each pixel's own
location (flagged by -1).

**Log weights for every shift by box sums.**  With ``s1 = a/b^2`` and ``s2 = a^2/2b^2``, the log weight
(less the constant) is a sum over the window of one term per pixel, ``log w = sum_z y(z + d) (s1 x(z) - s2
y(z + d))`` (summed over channels).  For a training image y and a shift d = (u - i, v - j) between patch
centre and query pixel, these terms ``Z(z)`` over the query's padded image give ``log w(x_p, phi_{p+d}) =
sum_{dy, dx < P} Z(p + (dy, dx))`` for *every* p at once: column sums of P rows slid down the rows (the
entering and leaving rows' terms computed on the fly) and row sums of P columns slid along them, a few
operations per (pixel, patch) pair instead of P^2 C multiply-adds.  Zero padding needs no care: a bank
pixel outside the image is never read, and a padded query pixel (x = 0) still adds its ``-s2 y^2``.  The
``-s2 ||phi||^2`` part used to be a per-block table of (H, W, K) float64 read once per pair; folding it into
the terms costs two multiply-adds per column update and saves that table's memory traffic (6% on the
sample's steps).  Sliding sums round differently for different shifts, so the log weights of identical
patches may differ by ~1e-13 relative; near-ties within :func:`~.softmax_state.tie_tolerance` are broken by
(image, row, col) order (:mod:`.softmax_state`), so the dominant patch is still the first copy.

**Vectorised over training images.**  The bank is stored transposed in blocks of up to ``MAX_IMAGES_PER_BLOCK``
images, images innermost (``(H, W, C, K)`` per block): every arithmetic loop runs over one block's lanes.

**Provably negligible weights.**  Per (pixel, centre, block) the lanes within ``SKIP_LOG_RATIO`` (40 nats) of
the pixel's running maximum are counted; if there are none the whole block is skipped without an exp: every
weight in it is provably < e^-40 of the running maximum (elscli's exactness rule).  Lanes within the tie
tolerance of the pixel's dominant patch are counted too; if there are none, neither the maximum nor the
dominant patch can change and the weights are summed straight away — over all lanes, or, where at most
half of them are within 40 nats and the CPU has compress stores, over those lanes alone, compressed first
(:mod:`.lanes`; 7.5% faster on the sample's P = 7 and 9 steps than gathering 8-lane chunks).  Otherwise,
when most 8-lane chunks hold only negligible lanes (low noise), just the other chunks are gathered and
exponentiated.  Lanes left out weigh < e^-40 of the running maximum; lanes below
e^-600 that are not left out count as e^-600 (:func:`.expm.exp_clamped`).

**Wrap-padded images and whole patches.**  The blocks' images may be larger than the query (the wrap-around
ELS: training images circularly padded by r, whose every original pixel is a valid centre); bank bounds
use the blocks' own size, query bounds the query's, and centres are in block coordinates.  A state whose
``acc`` has C P^2 columns instead of C accumulates the posterior mean of the *whole* patch — row
``(oy P + ox) C + c`` the patch pixel at offset (oy - r, ox - r) from its centre, gathered per live
(pixel, block) — for pspc-square's patch posteriors; with C columns (every other machine) nothing of this
runs and the code is the same as before.

**The constant patch** (:mod:`.constant_patch`): the lanes whose patch is the bank's flat background are
left out of the blocks and enter the merge as one exact term ``count * exp(log w_const - m)`` per pixel;
each block's running maximum starts at ``log w_const``, so at low noise background pixels skip nearly
every block.

Layers (stumpy's pattern): :func:`_block_job` works one (query image, image block) pair into a private
:class:`~.softmax_state.SoftmaxState`; :func:`shift_softmax` runs ``prange`` over those pairs and merges the
blocks in a fixed order (:func:`~.softmax_state.merge`), so results are bitwise identical for any thread
count and batch size; its inputs come grouped as a :class:`BlockDictionary` and
:class:`~.softmax_state.LogWeightScales`.  Accumulation is float64 throughout; nothing of size (queries x
patches) is materialised.
"""
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .config import FASTMATH, LIVE_COMPRESS_FRACTION, SKIP_LOG_RATIO, SPARSE_FRACTION
from .softmax_state import (SoftmaxState, add_weights, add_weights_live, block_max, empty_state, fold, merge,
                            tie_tolerance)

#: Log weight given to excluded lanes (the constant patch's, and lanes past the last image): below every
#: skip threshold, and raised to ``LOG_RATIO_FLOOR`` before any exp (so no inf - inf or 0 * inf).
EXCLUDED = -1e300

# group columns: query rows [qi0, qi1), query cols [qj0, qj1), centre rows [u0, u1), centre cols [v0, v1);
# u0 == -1: the centre row is the query pixel's own row (v0 == -1: its own column).
G_QI0, G_QI1, G_QJ0, G_QJ1, G_U0, G_U1, G_V0, G_V1 = range(8)


@njit(inline="always")
def _shift_range(q0, q1, c0, c1):
    """Shifts d = centre - query coordinate that pair query coordinates [q0, q1) with centres [c0, c1);
    c0 < 0 means each query coordinate's own centre (d = 0 only)."""
    if c0 < 0:
        return 0, 1
    return c0 - (q1 - 1), c1 - q0


@njit(inline="always")
def _overlap(q0, q1, c0, c1, d):
    """The query coordinates in [q0, q1) whose centre q + d lies in [c0, c1) (all of them for own centres)."""
    if c0 < 0:
        return q0, q1
    return max(q0, c0 - d), min(q1, c1 - d)


@njit(fastmath=FASTMATH, cache=True)
def _block_job(xq, yb, nvalid, index_b, groups, P, s1, s2, exclude, use_exclude, compress_lanes, state):
    """Online softmax of one query image over one block of training images, into a private state.

    xq: (C, H+2r, W+2r) float64 padded query; yb: (Hb, Wb, C, K) float32 block of training images (lanes =
    images; Hb >= H when they are wrap-padded), the first ``nvalid`` valid; index_b: (nvalid,) int64 their indices in the bank; groups, P: the
    dictionary (:class:`BlockDictionary`); s1, s2: :class:`~.softmax_state.LogWeightScales`; exclude (H, W,
    K) uint8: lanes left out at each patch centre (the constant patch, counted separately), read only when
    ``use_exclude``; state: the :class:`~.softmax_state.SoftmaxState` of the H x W pixels (pixel (i, j) at
    i W + j), updated in place.

    For each shift (du, dv) and query row i, ``vsum[cc]`` holds the column sums over the P rows of the
    window of the terms ``sum_c y (s1 x - s2 y)`` with ``x = x[c, z, cc]``, ``y = y[z + du - r, cc + dv - r,
    c]``; moving to the next row adds the entering row's terms and subtracts the leaving row's (computed
    again, not stored).  The first row's sums, and the first pixel's row sum, are built four rows (columns)
    per pass over the lanes: at P = 15 a shift's overlap is often shorter than the window, and these starts
    were a third of the time.  A sliding sum of P columns of ``vsum`` then gives ``log w`` for every pixel
    of the row (lanes the constant patch takes are set to ``EXCLUDED``).  The cost per (pixel, patch) pair
    does not depend on P, and no buffer grows with P.

    Each pixel's log weights are first only counted against two thresholds — the skip threshold (running
    maximum - ``SKIP_LOG_RATIO``) and the dominant patch's log weight less the tie tolerance.  Below the
    first everywhere: the block is skipped.  Below the second everywhere: neither the maximum nor the
    dominant patch can change, and the weights go straight to :func:`~.softmax_state.add_weights`.
    Otherwise the full :func:`~.softmax_state.fold` runs.
    """
    C = xq.shape[0]
    Hp = xq.shape[1]
    Wp = xq.shape[2]
    r = P // 2
    H = Hp - 2 * r
    W = Wp - 2 * r
    Hb = yb.shape[0]                           # the block's images: H x W, or larger (wrap-padded)
    Wb = yb.shape[1]
    K = yb.shape[3]
    Ca = state.acc.shape[1]                    # C: centres; C P^2: whole patches (see shift_softmax)
    whole = Ca != C
    pbuf = np.zeros((Ca if whole else 1, K), dtype=yb.dtype)
    xs = np.empty_like(xq)                     # s1 x: the query's factor in every term
    for ch in range(C):
        for z in range(Hp):
            for cc in range(Wp):
                xs[ch, z, cc] = s1 * xq[ch, z, cc]
    vsum = np.empty((Wp, K))
    dsum = np.empty(K)
    lbuf = np.full(K, EXCLUDED)                # lanes past nvalid are never written: excluded for good
    wbuf = np.empty(K)
    nchunk = (nvalid + 7) // 8
    live_chunk = np.zeros(nchunk, dtype=np.bool_)
    live_lane = np.zeros(8 * nchunk, dtype=np.uint8)
    live_word = live_lane.view(np.uint64)
    sparse_logw = np.empty(K)
    sparse_ids = np.empty(K, dtype=np.int64)
    sparse_centre = np.empty((Ca, K), dtype=yb.dtype)
    G = groups.shape[0]
    for g in range(G):
        qi0 = groups[g, G_QI0]
        qi1 = groups[g, G_QI1]
        qj0 = groups[g, G_QJ0]
        qj1 = groups[g, G_QJ1]
        u0 = groups[g, G_U0]
        u1 = groups[g, G_U1]
        v0 = groups[g, G_V0]
        v1 = groups[g, G_V1]
        du_lo, du_hi = _shift_range(qi0, qi1, u0, u1)
        dv_lo, dv_hi = _shift_range(qj0, qj1, v0, v1)
        for du in range(du_lo, du_hi):
            i_lo, i_hi = _overlap(qi0, qi1, u0, u1, du)
            if i_hi <= i_lo:
                continue
            for dv in range(dv_lo, dv_hi):
                j_lo, j_hi = _overlap(qj0, qj1, v0, v1, dv)
                if j_hi <= j_lo:
                    continue
                # padded query columns whose bank column lies inside the image (the others add zero)
                c_lo = max(j_lo, r - dv)
                c_hi = min(j_hi + 2 * r, Wb + r - dv)
                for i in range(i_lo, i_hi):
                    if i == i_lo:
                        for cc in range(j_lo, j_hi + 2 * r):
                            for k in range(K):
                                vsum[cc, k] = 0.0
                        # the window's rows whose bank row lies inside the image, four per pass over vsum
                        z0 = max(i, r - du)
                        z1 = max(z0, min(i + P, Hb + r - du))
                        z4 = z0
                        if C == 1:
                            z4 = z1 - (z1 - z0) % 4
                            for z in range(z0, z4, 4):
                                yr = z + du - r
                                for cc in range(c_lo, c_hi):
                                    q0 = xs[0, z, cc]
                                    q1 = xs[0, z + 1, cc]
                                    q2 = xs[0, z + 2, cc]
                                    q3 = xs[0, z + 3, cc]
                                    for k in range(K):
                                        y0 = np.float64(yb[yr, cc + dv - r, 0, k])
                                        y1 = np.float64(yb[yr + 1, cc + dv - r, 0, k])
                                        y2 = np.float64(yb[yr + 2, cc + dv - r, 0, k])
                                        y3 = np.float64(yb[yr + 3, cc + dv - r, 0, k])
                                        vsum[cc, k] += ((y0 * (q0 - s2 * y0) + y1 * (q1 - s2 * y1))
                                                        + (y2 * (q2 - s2 * y2) + y3 * (q3 - s2 * y3)))
                        for z in range(z4, z1):
                            yr = z + du - r
                            for cc in range(c_lo, c_hi):
                                for ch in range(C):
                                    q = xs[ch, z, cc]
                                    for k in range(K):
                                        y = np.float64(yb[yr, cc + dv - r, ch, k])
                                        vsum[cc, k] += y * (q - s2 * y)
                    else:
                        zn = i + P - 1
                        zo = i - 1
                        yn = zn + du - r
                        yo = zo + du - r
                        has_n = 0 <= yn < Hb
                        has_o = 0 <= yo < Hb
                        if C == 1 and has_n and has_o:
                            for cc in range(c_lo, c_hi):
                                qn = xs[0, zn, cc]
                                qo = xs[0, zo, cc]
                                for k in range(K):
                                    y_n = np.float64(yb[yn, cc + dv - r, 0, k])
                                    y_o = np.float64(yb[yo, cc + dv - r, 0, k])
                                    vsum[cc, k] += y_n * (qn - s2 * y_n) - y_o * (qo - s2 * y_o)
                        else:
                            if has_n:
                                for cc in range(c_lo, c_hi):
                                    for ch in range(C):
                                        qn = xs[ch, zn, cc]
                                        for k in range(K):
                                            y_n = np.float64(yb[yn, cc + dv - r, ch, k])
                                            vsum[cc, k] += y_n * (qn - s2 * y_n)
                            if has_o:
                                for cc in range(c_lo, c_hi):
                                    for ch in range(C):
                                        qo = xs[ch, zo, cc]
                                        for k in range(K):
                                            y_o = np.float64(yb[yo, cc + dv - r, ch, k])
                                            vsum[cc, k] -= y_o * (qo - s2 * y_o)
                    u = i + du
                    for j in range(j_lo, j_hi):
                        v = j + dv
                        p = i * W + j
                        ex = exclude[u, v]
                        mi = state.m[p]
                        li = state.ld[p]
                        thr_skip = mi - SKIP_LOG_RATIO
                        thr_dom = li - tie_tolerance(li)
                        nskip = 0
                        ndom = 0
                        if j == j_lo:
                            for k in range(K):
                                dsum[k] = vsum[j, k]
                            b4 = P - (P - 1) % 4              # columns 1 .. b4-1 four per pass, then the rest
                            for b in range(1, b4, 4):
                                for k in range(K):
                                    dsum[k] += ((vsum[j + b, k] + vsum[j + b + 1, k])
                                                + (vsum[j + b + 2, k] + vsum[j + b + 3, k]))
                            for b in range(b4, P):
                                for k in range(K):
                                    dsum[k] += vsum[j + b, k]
                            if use_exclude:
                                for k in range(nvalid):
                                    lw = EXCLUDED if ex[k] else dsum[k]
                                    lbuf[k] = lw
                                    nskip += lw >= thr_skip
                                    ndom += lw >= thr_dom
                            else:
                                for k in range(nvalid):
                                    lw = dsum[k]
                                    lbuf[k] = lw
                                    nskip += lw >= thr_skip
                                    ndom += lw >= thr_dom
                        else:
                            vn = vsum[j + 2 * r]
                            vo = vsum[j - 1]
                            if use_exclude:
                                for k in range(nvalid):
                                    d = dsum[k] + vn[k] - vo[k]
                                    dsum[k] = d
                                    lw = EXCLUDED if ex[k] else d
                                    lbuf[k] = lw
                                    nskip += lw >= thr_skip
                                    ndom += lw >= thr_dom
                            else:
                                for k in range(nvalid):
                                    d = dsum[k] + vn[k] - vo[k]
                                    dsum[k] = d
                                    lbuf[k] = d
                                    nskip += d >= thr_skip
                                    ndom += d >= thr_dom
                        if nskip == 0:
                            continue            # every weight of this block is < e^-40 of the maximum
                        ybc = yb[u, v]
                        if whole:
                            # every pixel of the patch, offset-major: row (oy P + ox) C + c
                            for oy in range(P):
                                for ox in range(P):
                                    for c in range(C):
                                        row = (oy * P + ox) * C + c
                                        for k in range(nvalid):
                                            pbuf[row, k] = yb[u - r + oy, v - r + ox, c, k]
                            ybc = pbuf
                        compress = compress_lanes and Ca == 1
                        if ndom == 0 and (compress or nskip * 8 * SPARSE_FRACTION > nvalid):
                            # neither the maximum nor the dominant patch can change: weights only (and
                            # where few lanes are live, only theirs)
                            if compress and nskip * LIVE_COMPRESS_FRACTION <= nvalid:
                                add_weights_live(state, p, lbuf, nvalid, mi, ybc[0], sparse_logw,
                                                 sparse_centre[0])
                            else:
                                add_weights(state, p, lbuf, nvalid, mi, ybc, wbuf)
                            continue
                        mx = block_max(lbuf, nvalid)
                        # Lanes below e^-40 of the maximum get weight exactly 0 either way; when most
                        # 8-lane chunks hold only such lanes, the other chunks are gathered before the exp.
                        thr = max(mx, mi) - SKIP_LOG_RATIO
                        for k in range(8 * nchunk):
                            live_lane[k] = 1 if lbuf[k] >= thr else 0
                        nlive = 0
                        for ch in range(nchunk):
                            f = live_word[ch] != 0
                            live_chunk[ch] = f
                            nlive += 1 if f else 0
                        if nlive * SPARSE_FRACTION <= nchunk:
                            kk = 0
                            for ch in range(nchunk):
                                if live_chunk[ch]:
                                    for q in range(8):
                                        k = 8 * ch + q
                                        sparse_logw[kk + q] = lbuf[k]
                                        sparse_ids[kk + q] = index_b[k] if k < nvalid else 0
                                    for c in range(Ca):
                                        for q in range(8):
                                            sparse_centre[c, kk + q] = ybc[c, 8 * ch + q]
                                    kk += 8
                            fold(state, p, u, v, sparse_logw, kk, mx, sparse_centre, sparse_ids, wbuf)
                        else:
                            fold(state, p, u, v, lbuf, nvalid, mx, ybc, index_b, wbuf)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def shift_softmax(xq, dictionary, scales, compress_lanes, ext):
    """The patch posterior of every pixel of every query over a dictionary of training-image blocks: all
    (query image, image block) pairs in parallel, then a merge of the blocks in a fixed order.

    Parameters
    ----------
    xq : (B, C, H+2r, W+2r) float64
        Padded queries (r = P // 2; circular padding for ELS, zeros otherwise).
    dictionary : BlockDictionary
        The training images in blocks, the groups of pixels and patch centres, P, and the lanes the constant
        patch takes.
    scales : LogWeightScales
        s1 = a/b^2 and s2 = a^2/2b^2 of the noise level: log w = s1 <x_p, phi> - s2 ||phi||^2.
    compress_lanes : bool
        Compress the live lanes before the exps where at most half are live (:mod:`.lanes`; worth it only
        where the CPU has vector compress stores).
    ext : SoftmaxState of B H W pixels
        Its ``acc`` has C columns (patch centres) or C P^2 (whole patches, see the module docstring).
        Patches counted elsewhere — the constant patch, or whole groups worked by the patch tree
        (:mod:`.patch_tree`) — as one state per pixel ((b, i, j) at (b H + i) W + j; m = -inf: none).  Each
        block's running maximum starts at ``ext.m``, so blocks far below it are skipped; the merge takes ext
        first.

    Returns
    -------
    x0_hat : (B, C, H, W) float64, or (B, C P^2, H, W) for whole patches
    image, row, col : (B, H, W) int64
        The dominant patch per pixel: bank image index and centre (row, col).
    weight : (B, H, W) float64
        Its normalised weight.
    entropy : (B, H, W) float64
        The posterior entropy (nats).
    """
    yt = dictionary.blocks
    nimg = dictionary.n_images
    index = dictionary.index
    groups = dictionary.groups
    P = dictionary.P
    exclude = dictionary.exclude
    use_exclude = dictionary.use_exclude
    s1 = scales.s1
    s2 = scales.s2
    B = xq.shape[0]
    nblk = yt.shape[0]
    H = xq.shape[2] - 2 * (P // 2)
    W = xq.shape[3] - 2 * (P // 2)
    K = yt.shape[4]
    HW = H * W
    # Named tuples are unpacked before each prange loop and rebuilt inside it: Numba (0.68) silently loses
    # writes made in a prange body through a named tuple defined outside it.
    em, es, et, eld, eacc, edom = ext.m, ext.s, ext.t, ext.ld, ext.acc, ext.dom
    Ca = eacc.shape[1]
    sm, ss, st, sld, sacc, sdom = empty_state(B * nblk * HW, Ca)
    for bi in range(B):
        for kb in range(nblk):
            sm[(bi * nblk + kb) * HW:(bi * nblk + kb + 1) * HW] = em[bi * HW:(bi + 1) * HW]
    for job in prange(B * nblk):
        bi = job // nblk
        kb = job - bi * nblk
        lo = kb * K
        nvalid = min(K, nimg - lo)
        q0 = job * HW
        q1 = q0 + HW
        _block_job(xq[bi], yt[kb], nvalid, index[lo:lo + nvalid], groups, P, s1, s2,
                   exclude[kb if use_exclude else 0], use_exclude, compress_lanes,
                   SoftmaxState(sm[q0:q1], ss[q0:q1], st[q0:q1], sld[q0:q1], sacc[q0:q1], sdom[q0:q1]))
    x0 = np.empty((B, Ca, H, W))
    dom_n = np.empty((B, H, W), dtype=np.int64)
    dom_u = np.empty((B, H, W), dtype=np.int64)
    dom_v = np.empty((B, H, W), dtype=np.int64)
    weight = np.empty((B, H, W))
    entropy = np.empty((B, H, W))
    for bi in prange(B):
        for i in range(H):
            for j in range(W):
                p = i * W + j
                w, e, n, u, v = merge(SoftmaxState(sm, ss, st, sld, sacc, sdom), bi * nblk * HW + p, HW, nblk,
                                      SoftmaxState(em, es, et, eld, eacc, edom), bi * HW + p, x0[bi, :, i, j])
                dom_n[bi, i, j] = n
                dom_u[bi, i, j] = u
                dom_v[bi, i, j] = v
                weight[bi, i, j] = w
                entropy[bi, i, j] = e
    return x0, dom_n, dom_u, dom_v, weight, entropy


class BlockDictionary(NamedTuple):
    """A machine's patch dictionary as :func:`shift_softmax` reads it.

    ``blocks`` (nblk, H, W, C, K) float32: the dictionary's training images, K per block, images innermost
    (:func:`transpose_blocks`), ``n_images`` of them valid, ``index`` (n_images,) int64 their indices in the
    bank (increasing); ``groups`` (G, 8) int64: rectangles of query pixels and the rectangle of patch centres
    each sees (columns ``G_*``); ``P`` the patch size; ``exclude`` (nblk, H, W, K) uint8: the lanes the
    constant patch takes (:mod:`.constant_patch`), read only when ``use_exclude``."""

    blocks: np.ndarray
    n_images: int
    index: np.ndarray
    groups: np.ndarray
    P: int
    exclude: np.ndarray
    use_exclude: bool


def transpose_blocks(images: np.ndarray, index: np.ndarray, K: int) -> np.ndarray:
    """The images ``images[index]`` (N, C, H, W) as blocks (nblk, H, W, C, K), images innermost
    (float32; lanes past the last image are zero and never read by the softmax)."""
    n = index.shape[0]
    N, C, H, W = images.shape
    nblk = max(1, (n + K - 1) // K)
    out = np.zeros((nblk * K, C, H, W), dtype=np.float32)
    out[:n] = images[index]
    return np.ascontiguousarray(out.reshape(nblk, K, C, H, W).transpose(0, 3, 4, 2, 1))
