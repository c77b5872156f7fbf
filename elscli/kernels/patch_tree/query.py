"""The patch posterior of query pixels over a :class:`~.build.PatchTree`, with provably skipped subtrees.

For a query patch q the log weight of any patch phi in a node's box [lo, hi] (on the principal axes) is
bounded coordinate by coordinate (Kamb & Ganguli's patch weights, science.md "The machines"):

    log w(phi) = sum_d (s1 q_d phi_d - s2 phi_d^2) <= sum_d max_{lo_d <= z <= hi_d} (s1 q_d z - s2 z^2),

whose maximiser is z = clip(q_d / a, lo_d, hi_d) (:func:`_bound`).  A subtree whose bound is below the
pixel's running maximum by more than ``SKIP_LOG_RATIO`` (40 nats) is skipped: every weight in it is provably
< e^-40 of the maximum.  Leaves are evaluated exactly (float64 dot products over the original float32
patches) and folded into the pixel's online softmax (:mod:`..softmax_state`), each distinct patch counting
``count`` times.  The traversal visits the more promising child first, so the running maximum is near the
true one after the first leaf.

Pixels walk the tree in tiles of :data:`TILE` neighbours of one query, each tile by one thread from start to
end, so results do not depend on the thread count or the batch.
"""
import numpy as np
from numba import njit, prange

from ..config import FASTMATH, SKIP_LOG_RATIO
from ..softmax_state import (SoftmaxState, add_counted_weights, block_max, dominance_tolerance, empty_state,
                             offer_dominant, precedes, raise_maximum)
from .build import TreeArrays
from .dedup import patch_vector


@njit(inline="always", fastmath=FASTMATH)
def _bound(q, qa, p, lo, hi, node, D, s1, s2):
    """Upper bound of log w over the patches in node's box, for pixel p of the tile (q, qa: the pixel's
    query patch and query patch / a, in the box's coordinates)."""
    lon = lo[node]
    hin = hi[node]
    qp = q[p]
    qap = qa[p]
    out = 0.0
    for d in range(D):
        z = qap[d]
        lz = np.float64(lon[d])
        hz = np.float64(hin[d])
        z = lz if z < lz else (hz if z > hz else z)
        out += z * (s1 * qp[d] - s2 * z)
    return out


@njit(inline="always", fastmath=FASTMATH)
def _leaf_logw(node, p, q, D, patches, norms, start, end, s1, s2, lw):
    """lw[:n] = log w of the leaf's n patches for pixel p (up to a constant of the pixel)."""
    s = start[node]
    n = end[node] - s
    # slices indexed by loop counters only: LLVM vectorises these loops (computed indices such as
    # ``base + k`` carry Numba's negative-index check and stay scalar, 3x slower)
    blk = patches[s * D:(s + n) * D].reshape((D, n))
    nrm = norms[s:s + n]
    for k in range(n):
        lw[k] = 0.0
    # four coordinates per pass over the leaf: a quarter of the loads and stores of lw
    D4 = D - D % 4
    for d in range(0, D4, 4):
        q0 = s1 * q[p, d]
        q1 = s1 * q[p, d + 1]
        q2 = s1 * q[p, d + 2]
        q3 = s1 * q[p, d + 3]
        r0 = blk[d]
        r1 = blk[d + 1]
        r2 = blk[d + 2]
        r3 = blk[d + 3]
        for k in range(n):
            lw[k] += ((q0 * np.float64(r0[k]) + q1 * np.float64(r1[k]))
                      + (q2 * np.float64(r2[k]) + q3 * np.float64(r3[k])))
    for d in range(D4, D):
        qd = s1 * q[p, d]
        row = blk[d]
        for k in range(n):
            lw[k] += qd * np.float64(row[k])
    for k in range(n):
        lw[k] -= s2 * nrm[k]


@njit(inline="always", fastmath=FASTMATH)
def _leaf_logw4(node, ps, q, D, patches, norms, start, end, s1, s2, lw4):
    """lw4[g, :n] = log w of the leaf's n patches for the four pixels ps[g]: each patch coordinate is loaded
    once for the four, each pixel's sums written as in :func:`_leaf_logw` (they agree with it to rounding;
    which pixels share a group depends on the query alone)."""
    s = start[node]
    n = end[node] - s
    blk = patches[s * D:(s + n) * D].reshape((D, n))
    nrm = norms[s:s + n]
    l0 = lw4[0]
    l1 = lw4[1]
    l2 = lw4[2]
    l3 = lw4[3]
    pa, pb, pc, pd = ps[0], ps[1], ps[2], ps[3]
    for k in range(n):
        l0[k] = 0.0
        l1[k] = 0.0
        l2[k] = 0.0
        l3[k] = 0.0
    D4 = D - D % 4
    for d in range(0, D4, 4):
        a0, a1, a2, a3 = s1 * q[pa, d], s1 * q[pa, d + 1], s1 * q[pa, d + 2], s1 * q[pa, d + 3]
        b0, b1, b2, b3 = s1 * q[pb, d], s1 * q[pb, d + 1], s1 * q[pb, d + 2], s1 * q[pb, d + 3]
        c0, c1, c2, c3 = s1 * q[pc, d], s1 * q[pc, d + 1], s1 * q[pc, d + 2], s1 * q[pc, d + 3]
        d0, d1, d2, d3 = s1 * q[pd, d], s1 * q[pd, d + 1], s1 * q[pd, d + 2], s1 * q[pd, d + 3]
        r0 = blk[d]
        r1 = blk[d + 1]
        r2 = blk[d + 2]
        r3 = blk[d + 3]
        for k in range(n):
            x0 = np.float64(r0[k])
            x1 = np.float64(r1[k])
            x2 = np.float64(r2[k])
            x3 = np.float64(r3[k])
            l0[k] += (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)
            l1[k] += (b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)
            l2[k] += (c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3)
            l3[k] += (d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3)
    for d in range(D4, D):
        a0, b0, c0, d0 = s1 * q[pa, d], s1 * q[pb, d], s1 * q[pc, d], s1 * q[pd, d]
        row = blk[d]
        for k in range(n):
            x0 = np.float64(row[k])
            l0[k] += a0 * x0
            l1[k] += b0 * x0
            l2[k] += c0 * x0
            l3[k] += d0 * x0
    for k in range(n):
        w = s2 * nrm[k]
        l0[k] -= w
        l1[k] -= w
        l2[k] -= w
        l3[k] -= w


@njit(inline="always", fastmath=FASTMATH)
def _leaf_fold(node, p, first, counts, centre, start, end, lw, state):
    """Fold one leaf's log weights ``lw[:n]`` into pixel p's online softmax ``state``
    (:class:`~..softmax_state.SoftmaxState`): each distinct patch counts ``counts`` times, and among the
    leaf's near-ties of its maximum the first occurrence in (image, row, col) order is offered as dominant."""
    s = start[node]
    n = end[node] - s
    mx = block_max(lw, n)        # a plain max loop is one serial chain of n dependent maxima
    if mx < state.m[p] - SKIP_LOG_RATIO:
        return
    tol, may = dominance_tolerance(state, p, mx)
    if may:
        kf = -1
        for k in range(n):
            if lw[k] >= mx - tol:
                f = s + k
                if kf < 0 or precedes(first[f, 0], first[f, 1], first[f, 2],
                                      first[s + kf, 0], first[s + kf, 1], first[s + kf, 2]):
                    kf = k
        f = s + kf
        offer_dominant(state, p, mx, tol, lw[kf], first[f, 0], first[f, 1], first[f, 2])
    m = raise_maximum(state, p, mx)
    add_counted_weights(state, p, lw, n, m, counts, centre, s)


#: Query pixels that walk the tree together (each leaf they need is read once for all of them, and its
#: dot products run four pixels at a time).  Measured on the sample's own P = 5 steps (mnist-5k): 64 is
#: 11% faster than 16 with one pixel at a time and 24% faster with four; 128 and 256 are no better.
TILE = 64


@njit(fastmath=FASTMATH, cache=True)
def _tile_job(xq_b, pixels, P, s1, s2, a, tree, leaf_max, ext, bi, H, W, work):
    """One tile of pixels of one query through the tree, into the state ``ext``
    (:class:`~..softmax_state.SoftmaxState` of all B H W query pixels; only this tile's entries are written).

    xq_b: (C, H+2r, W+2r) padded query ``bi``; pixels: (T, 2) the tile's (row, col); tree: :class:`TreeArrays`;
    leaf_max: the largest leaf's size; work: (T, 2) int64, patches evaluated and bounds computed, added to.
    Each pixel first takes its most promising leaf, then the tile walks the tree depth first: a node is
    opened when its bound passes for any pixel, a leaf is evaluated for exactly those pixels, four at a
    time."""
    patches = tree.patches
    norms = tree.norms
    counts = tree.counts
    centre = tree.centre
    first = tree.first
    start = tree.start
    end = tree.end
    left = tree.left
    right = tree.right
    lo = tree.lo
    hi = tree.hi
    rotation = tree.rotation
    C = xq_b.shape[0]
    D = lo.shape[1]
    T = pixels.shape[0]
    q = np.empty((T, D))
    for p in range(T):
        patch_vector(xq_b, pixels[p, 0], pixels[p, 1], P, q[p])
    qr = np.zeros((T, D))             # the query patches on the principal axes, for the bounds
    for p in range(T):
        for d in range(D):
            qd = q[p, d]
            for e in range(D):
                qr[p, e] += qd * rotation[d, e]
    qa = qr / a
    lw = np.empty(leaf_max)
    lw4 = np.empty((4, leaf_max))
    todo = np.empty(T, dtype=np.int64)
    state = empty_state(T, C)
    first_leaf = np.empty(T, dtype=np.int64)
    for p in range(T):
        # each pixel's most promising leaf first, so that its running maximum is close to the true one
        node = 0
        while left[node] >= 0:
            bl = _bound(qr, qa, p, lo, hi, left[node], D, s1, s2)
            br = _bound(qr, qa, p, lo, hi, right[node], D, s1, s2)
            node = left[node] if bl >= br else right[node]
        first_leaf[p] = node
        work[p, 0] += end[node] - start[node]
        _leaf_logw(node, p, q, D, patches, norms, start, end, s1, s2, lw)
        _leaf_fold(node, p, first, counts, centre, start, end, lw, state)
    # then every subtree whose bound is within SKIP_LOG_RATIO of some pixel's running maximum
    stack = np.empty(256, dtype=np.int64)
    live = np.empty(T, dtype=np.bool_)
    stack[0] = 0
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        any_live = False
        for p in range(T):
            bp = _bound(qr, qa, p, lo, hi, node, D, s1, s2)
            live[p] = bp >= state.m[p] - SKIP_LOG_RATIO
            any_live |= live[p]
            work[p, 1] += 1
        if not any_live:
            continue
        if left[node] < 0:
            # the pixels that need this leaf, four at a time (each patch loaded once for the four)
            nt = 0
            for p in range(T):
                if live[p] and node != first_leaf[p]:
                    todo[nt] = p
                    nt += 1
                    work[p, 0] += end[node] - start[node]
            nt4 = nt - nt % 4
            for g in range(0, nt4, 4):
                _leaf_logw4(node, todo[g:g + 4], q, D, patches, norms, start, end, s1, s2, lw4)
                for h in range(4):
                    _leaf_fold(node, todo[g + h], first, counts, centre, start, end, lw4[h], state)
            for g in range(nt4, nt):
                _leaf_logw(node, todo[g], q, D, patches, norms, start, end, s1, s2, lw)
                _leaf_fold(node, todo[g], first, counts, centre, start, end, lw, state)
            continue
        # the child nearer the tile's first live pixel is opened first
        pl = 0
        while not live[pl]:
            pl += 1
        bl = _bound(qr, qa, pl, lo, hi, left[node], D, s1, s2)
        br = _bound(qr, qa, pl, lo, hi, right[node], D, s1, s2)
        if bl >= br:
            stack[top] = right[node]
            stack[top + 1] = left[node]
        else:
            stack[top] = left[node]
            stack[top + 1] = right[node]
        top += 2
    for p in range(T):
        pe = (bi * H + pixels[p, 0]) * W + pixels[p, 1]
        ext.m[pe] = state.m[p]
        ext.s[pe] = state.s[p]
        ext.t[pe] = state.t[p]
        ext.ld[pe] = state.ld[p]
        for c in range(C):
            ext.acc[pe, c] = state.acc[p, c]
        for e in range(3):
            ext.dom[pe, e] = state.dom[p, e]


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def tree_softmax(xq, pixels, P, scales, tree, ext):
    """The patch posterior of the pixels ``pixels`` of every query over the distinct patches of a tree.

    Pixels walk the tree in tiles of :data:`TILE` consecutive pixels: a node is opened when its bound
    passes for any pixel of the tile, and a leaf is evaluated for exactly the pixels whose bound passes,
    four at a time (:func:`_leaf_logw4`).  Which pixels share a tile depends on the query alone, so
    results do not depend on the thread count or the batch.

    Parameters
    ----------
    xq : (B, C, H+2r, W+2r) float64
        Padded queries (r = P // 2).
    pixels : (npix, 2) int64
        The (row, col) of the pixels whose dictionary is every valid patch (all of ELS, the bbELS interior).
    P : int
        Odd patch size of the tree.
    scales : LogWeightScales
        a, s1 = a/b^2, s2 = a^2/2b^2 of the noise level.
    tree : TreeArrays
        :attr:`PatchTree.arrays <.build.PatchTree.arrays>`.
    ext : SoftmaxState of B H W pixels
        Receives each listed pixel's state ((b, i, j) at (b H + i) W + j), replacing what it held: the
        tree counts every valid patch, the constant patch included.  :func:`~..shift_softmax.shift_softmax`
        merges it with the blocks of the other groups.

    Returns
    -------
    work : (B, npix, 2) int64
        Per (query, pixel): patches evaluated and bounds computed.
    """
    s1 = scales.s1
    s2 = scales.s2
    a = scales.a
    patches = tree.patches
    norms = tree.norms
    counts = tree.counts
    centre = tree.centre
    first = tree.first
    start = tree.start
    end = tree.end
    left = tree.left
    right = tree.right
    lo = tree.lo
    hi = tree.hi
    rotation = tree.rotation
    # Named tuples are unpacked before the prange loop and built again inside it (see
    # :mod:`..softmax_state`: Numba loses writes through named tuples in parallel functions).
    em, es, et, eld, eacc, edom = ext.m, ext.s, ext.t, ext.ld, ext.acc, ext.dom
    B = xq.shape[0]
    r = P // 2
    H = xq.shape[2] - 2 * r
    W = xq.shape[3] - 2 * r
    npix = pixels.shape[0]
    out_work = np.zeros((B, npix, 2), dtype=np.int64)
    leaf_max = 0
    for node in range(start.shape[0]):
        leaf_max = max(leaf_max, end[node] - start[node] if left[node] < 0 else 0)
    ntiles = (npix + TILE - 1) // TILE
    for job in prange(B * ntiles):
        bi = job // ntiles
        p0 = (job - bi * ntiles) * TILE
        T = min(TILE, npix - p0)
        _tile_job(xq[bi], pixels[p0:p0 + T], P, s1, s2, a,
                  TreeArrays(patches, norms, counts, centre, first, start, end, left, right, lo, hi, rotation),
                  leaf_max, SoftmaxState(em, es, et, eld, eacc, edom), bi, H, W, out_work[bi, p0:p0 + T])
    return out_work
