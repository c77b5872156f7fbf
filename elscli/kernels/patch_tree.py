"""A k-d tree over the distinct patches of a dictionary, for the machines at low noise.

At low noise almost every patch of an ELS dictionary has a weight far below e^-40 of the best one, yet the
shift kernel (:mod:`.shift_softmax`) still computes the distance of every (pixel, patch) pair.  Here the
dictionary of *all valid patches* (ELS; the interior pixels of bbELS) is stored once per distinct patch —
with its count and its first occurrence in (image, row, col) order — in a k-d tree whose nodes carry the
bounding box of their patches.  For a query patch q the log weight of any patch phi in a box [lo, hi] is
bounded coordinate by coordinate,

    log w(phi) = sum_d (s1 q_d phi_d - s2 phi_d^2) <= sum_d max_{lo_d <= z <= hi_d} (s1 q_d z - s2 z^2),

(the maximiser is z = clip(q_d / a, lo_d, hi_d)).  The coordinates are the patches' principal axes (an
orthonormal rotation, which keeps both <q, phi> and ||phi||^2; the boxes are widened past the rounding of
the rotated values), where boxes are tighter than in pixel coordinates.  A subtree whose bound is below the
pixel's running maximum by more than ``SKIP_LOG_RATIO`` (40 nats) is skipped: every weight in it is
provably < e^-40 of the maximum.  Leaves are evaluated exactly (float64 dot products over the original
float32 patches) into a float64 online softmax in which each distinct patch counts ``count`` times.  The
traversal visits the more promising child first, so the running maximum is near the true one after the
first leaf.

Pixels walk the tree in tiles of :data:`TILE` neighbours of one query, each tile by one thread from start to
end, so results do not depend on the thread count or the batch; the tree depends on the dictionary alone.
It is built in parallel (patch hashes and rows, the rotation, the split of each level's nodes, the leaves'
boxes and layout), in a fixed order of work that makes it bitwise the same for any thread count.
"""

import numpy as np
from numba import njit, prange

from .config import FASTMATH, SKIP_LOG_RATIO
from .expm import LOG_RATIO_FLOOR, exp_clamped, exp_nonpositive
from .shift_softmax import _precedes, block_max, tie_tolerance

#: Patches per leaf at most.  With leaves evaluated four pixels at a time in 64-pixel tiles, 1,024 is 10%
#: faster than 256 on the sample's own P = 3 and 5 steps (mnist-5k; 512: 8%, 2,048: the same as 1,024):
#: fewer bounds, and longer runs of dot products.
LEAF_SIZE = 1024

#: The machines use the tree for these patch sizes when the noise is low enough: a^2 / 2b^2 (the weights'
#: precision on squared patch distances) at least the value given.  Measured against the shift kernel on
#: mnist-5k by ``benchmarks/bench_tree.py`` (bbELS, 2 cores, steady state, 64-pixel tiles): P = 3 is 10.8x
#: faster at t = 0.05 and still 1.9-2.1x at t = 0.4-1 (its 1.5 M distinct patches are a third of all), so
#: it is used at every noise level; P = 5 is 3.3x faster at t = 0.1, 2.0x at t = 0.2, 1.4x at t = 0.3
#: (a^2/2b^2 = 1.96), 1.1x at t = 0.35 and even at t = 0.4; P = 7 is 0.92x at t = 0.25 and 0.85x at
#: t = 0.3: box bounds in 49 coordinates prune too little.  On the 512 RGB photo tiles (nearly every patch
#: distinct; queries are noised tiles) P = 3 is 7.6x faster at t = 0.05 and 1.45x at t = 0.7, P = 5 1.25x
#: at t = 0.3.
MIN_PRECISION = {3: 0.0, 5: 1.5}
#: ... and when the distinct patches fit in this many bytes.
MAX_BYTES = 1 << 30


@njit(inline="always")
def _decode(row, U, V):
    """Patch number -> (position in the index, top row, left col) in (image, row, col) order."""
    a = row // (U * V)
    rest = row - a * U * V
    return a, rest // V, rest % V


@njit(parallel=True, cache=True)
def _hash_patches(images, index, P):
    """A 64-bit FNV-1a hash of the float32 bits of every valid patch, in (image, row, col) order."""
    N = index.shape[0]
    C, H, W = images.shape[1], images.shape[2], images.shape[3]
    U = H - P + 1
    V = W - P + 1
    bits = images.view(np.uint32)
    out = np.empty(N * U * V, dtype=np.uint64)
    for row in prange(N * U * V):
        a, u, v = _decode(row, U, V)
        n = index[a]
        h = np.uint64(14695981039346656037)
        for c in range(C):
            for dy in range(P):
                for dx in range(P):
                    h = (h ^ np.uint64(bits[n, c, u + dy, v + dx])) * np.uint64(1099511628211)
        out[row] = h
    return out


@njit(inline="always")
def _same_patch(images, index, P, U, V, row1, row2):
    a1, u1, v1 = _decode(row1, U, V)
    a2, u2, v2 = _decode(row2, U, V)
    n1 = index[a1]
    n2 = index[a2]
    for c in range(images.shape[1]):
        for dy in range(P):
            for dx in range(P):
                if images[n1, c, u1 + dy, v1 + dx] != images[n2, c, u2 + dy, v2 + dx]:
                    return False
    return True


@njit(cache=True)
def _hash_order(hashes):
    """Patch numbers sorted stably by the top 32 bits of their hash: two 16-bit counting-sort passes
    (least significant digit first), 2.5x faster than NumPy's stable argsort of the 64-bit hashes.  Equal
    hashes end up in one run of equal top bits, in (image, row, col) order."""
    n = hashes.shape[0]
    key = np.empty(n, dtype=np.uint32)
    for k in range(n):
        key[k] = np.uint32(hashes[k] >> np.uint64(32))
    order = np.arange(n)
    key2 = np.empty(n, dtype=np.uint32)
    order2 = np.empty(n, dtype=np.int64)
    for shift in (0, 16):
        start = np.zeros(65537, dtype=np.int64)
        for k in range(n):
            start[((key[k] >> np.uint32(shift)) & np.uint32(0xFFFF)) + 1] += 1
        for b in range(65536):
            start[b + 1] += start[b]
        for k in range(n):
            digit = (key[k] >> np.uint32(shift)) & np.uint32(0xFFFF)
            dst = start[digit]
            start[digit] = dst + 1
            key2[dst] = key[k]
            order2[dst] = order[k]
        key, key2 = key2, key
        order, order2 = order2, order
    return order


@njit(cache=True)
def _group(images, index, P, order, hashes):
    """Distinct patches: for each, its first patch number (``order`` sorts the patches stably by the top
    bits of their hash, so the first of a group is its first occurrence) and its copy count.  Within a run
    of equal top bits, patches with equal hashes are compared exactly (hash collisions become separate
    groups)."""
    H, W = images.shape[2], images.shape[3]
    U = H - P + 1
    V = W - P + 1
    n = order.shape[0]
    first = np.empty(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    reps = np.empty(n, dtype=np.int64)     # group ids of the current hash run
    ngroups = 0
    i = 0
    top = np.uint64(32)
    while i < n:
        j = i
        h = hashes[order[i]] >> top
        while j < n and hashes[order[j]] >> top == h:
            j += 1
        nrep = 0
        for k in range(i, j):
            row = order[k]
            hk = hashes[row]
            found = -1
            for q in range(nrep):
                rq = first[reps[q]]
                if hashes[rq] == hk and _same_patch(images, index, P, U, V, row, rq):
                    found = reps[q]
                    break
            if found < 0:
                first[ngroups] = row
                count[ngroups] = 1
                reps[nrep] = ngroups
                nrep += 1
                ngroups += 1
            else:
                count[found] += 1
        i = j
    return first[:ngroups], count[:ngroups]


@njit(inline="always")
def _patch_vector(image, u, v, P, out):
    """out[:] = the P x P patch of image (C, H, W) whose top-left corner is (u, v), flattened (c, row, col)."""
    d = 0
    for c in range(image.shape[0]):
        for dy in range(P):
            for dx in range(P):
                out[d] = image[c, u + dy, v + dx]
                d += 1


@njit(parallel=True, cache=True)
def _rows(images, index, P, which):
    """The patches numbered ``which`` as rows (c, dy, dx), and their (bank image, centre row, centre col)."""
    C, H, W = images.shape[1], images.shape[2], images.shape[3]
    U = H - P + 1
    V = W - P + 1
    r = P // 2
    out = np.empty((which.shape[0], C * P * P), dtype=np.float32)
    where = np.empty((which.shape[0], 3), dtype=np.int64)
    for i in prange(which.shape[0]):
        a, u, v = _decode(which[i], U, V)
        n = index[a]
        _patch_vector(images[n], u, v, P, out[i])
        where[i, 0] = n
        where[i, 1] = u + r
        where[i, 2] = v + r
    return out, where


@njit(cache=True)
def _select(vals, idx, kth):
    """Reorder ``vals`` and ``idx`` together so that vals[kth] has rank kth, smaller values before it and
    larger after (quickselect; ties in any order)."""
    lo = 0
    hi = vals.shape[0] - 1
    while hi > lo:
        a = vals[lo]
        b = vals[(lo + hi) // 2]
        c = vals[hi]
        pivot = max(min(a, b), min(max(a, b), c))     # median of three
        i = lo
        j = hi
        while i <= j:
            while vals[i] < pivot:
                i += 1
            while vals[j] > pivot:
                j -= 1
            if i <= j:
                tv = vals[i]
                vals[i] = vals[j]
                vals[j] = tv
                ti = idx[i]
                idx[i] = idx[j]
                idx[j] = ti
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            return


@njit(inline="always")
def _split(X, perm, s, e):
    """Split the node [s, e) of the row order ``perm`` in place at the median of its widest coordinate
    (judged on an evenly spaced sample); returns the split position."""
    D = X.shape[1]
    step = max(1, (e - s) // 128)
    best = 0
    spread = -1.0
    for d in range(D):
        a = X[perm[s], d]
        b = a
        for k in range(s, e, step):
            x = X[perm[k], d]
            a = min(a, x)
            b = max(b, x)
        w = np.float64(b) - np.float64(a)
        if w > spread:
            spread = w
            best = d
    # a sample without spread: split anyway (the rows are distinct)
    mid = s + (e - s) // 2
    vals = np.empty(e - s, dtype=X.dtype)
    for k in range(s, e):
        vals[k - s] = X[perm[k], best]
    _select(vals, perm[s:e], mid - s)
    return mid


@njit(parallel=True, cache=True)
def _build_tree(X, leaf_size):
    """k-d tree over the rows of X (n, D): returns the row order and, per node, its [start, end) range in
    that order, its children (-1 for leaves) and its bounding box.

    Built level by level: the nodes of one level own disjoint ranges of the row order and are split in
    parallel; children are numbered in the order of their parents, so the tree is the same for any thread
    count."""
    n, D = X.shape
    max_nodes = 2 * (n // max(leaf_size // 2, 1) + 1) + 1
    start = np.empty(max_nodes, dtype=np.int64)
    end = np.empty(max_nodes, dtype=np.int64)
    left = np.full(max_nodes, -1, dtype=np.int64)
    right = np.full(max_nodes, -1, dtype=np.int64)
    lo = np.empty((max_nodes, D), dtype=np.float32)
    hi = np.empty((max_nodes, D), dtype=np.float32)
    perm = np.arange(n)
    mids = np.empty(max_nodes, dtype=np.int64)
    nnodes = 1
    start[0] = 0
    end[0] = n
    level_lo = 0
    level_hi = 1
    while level_hi > level_lo:
        for node in prange(level_lo, level_hi):
            s = start[node]
            e = end[node]
            mids[node] = _split(X, perm, s, e) if e - s > leaf_size else -1
        first_child = nnodes
        for node in range(level_lo, level_hi):
            if mids[node] < 0:
                continue
            for cs, ce in ((start[node], mids[node]), (mids[node], end[node])):
                start[nnodes] = cs
                end[nnodes] = ce
                nnodes += 1
            left[node] = nnodes - 2
            right[node] = nnodes - 1
        level_lo = first_child
        level_hi = nnodes
    # exact bounding boxes: the leaves in parallel, then the inner nodes bottom-up (children are numbered
    # after their parents)
    for node in prange(nnodes):
        if left[node] < 0:
            s = start[node]
            for d in range(D):
                lo[node, d] = X[perm[s], d]
                hi[node, d] = X[perm[s], d]
            for k in range(s + 1, end[node]):
                row = perm[k]
                for d in range(D):
                    x = X[row, d]
                    if x < lo[node, d]:
                        lo[node, d] = x
                    if x > hi[node, d]:
                        hi[node, d] = x
    for node in range(nnodes - 1, -1, -1):
        if left[node] >= 0:
            a = left[node]
            b = right[node]
            for d in range(D):
                lo[node, d] = min(lo[a, d], lo[b, d])
                hi[node, d] = max(hi[a, d], hi[b, d])
    return perm, start[:nnodes], end[:nnodes], left[:nnodes], right[:nnodes], lo[:nnodes], hi[:nnodes]


@njit(parallel=True, cache=True)
def _leaf_major(rows, perm, start, end, left, centre_cols):
    """The rows ``rows[perm]`` as a flat array where leaf [s, e) occupies [s D, e D) coordinate-major, so
    that a leaf's dot products run over contiguous memory; with their squared norms (float64) and their
    centre values (C, n)."""
    n, D = rows.shape
    out = np.empty(n * D, dtype=np.float32)
    norms = np.zeros(n)
    centre = np.empty((centre_cols.shape[0], n), dtype=np.float32)
    for node in prange(start.shape[0]):
        if left[node] >= 0:
            continue
        s = start[node]
        m = end[node] - s
        block = np.empty((m, D), dtype=np.float32)      # the leaf's rows gathered once (random reads) ...
        for k in range(m):
            row = perm[s + k]
            for d in range(D):
                block[k, d] = rows[row, d]
            for c in range(centre_cols.shape[0]):
                centre[c, s + k] = rows[row, centre_cols[c]]
        for k in range(m):
            nk = 0.0
            for d in range(D):
                x = np.float64(block[k, d])
                nk += x * x
            norms[s + k] = nk
        for d in range(D):                                # ... then written coordinate-major, sequentially
            o = s * D + d * m
            for k in range(m):
                out[o + k] = block[k, d]
    return out, norms, centre


@njit(parallel=True, cache=True)
def _gather_rows(counts, where, perm):
    """counts[perm] and where[perm] (n, 3), in parallel (NumPy's fancy indexing is serial)."""
    n = perm.shape[0]
    c = np.empty(n, dtype=counts.dtype)
    w = np.empty((n, 3), dtype=where.dtype)
    for k in prange(n):
        p = perm[k]
        c[k] = counts[p]
        w[k, 0] = where[p, 0]
        w[k, 1] = where[p, 1]
        w[k, 2] = where[p, 2]
    return c, w


@njit(cache=True)
def _scatter(rows, step):
    """Scatter matrix (D, D) about the mean of rows[::step], summed in one fixed order (no BLAS, whose
    summation order may depend on its thread count)."""
    n, D = rows.shape
    m = 0
    mean = np.zeros(D)
    for k in range(0, n, step):
        for d in range(D):
            mean[d] += rows[k, d]
        m += 1
    mean /= m
    out = np.zeros((D, D))
    x = np.empty(D)
    for k in range(0, n, step):
        for d in range(D):
            x[d] = rows[k, d] - mean[d]
        for d in range(D):
            for e in range(D):
                out[d, e] += x[d] * x[e]
    return out


def principal_axes(rows: np.ndarray, sample: int = 1 << 16) -> np.ndarray:
    """The orthonormal (D, D) matrix whose columns are the principal axes of (an evenly spaced sample of at
    most ``sample`` of) ``rows`` (n, D), by decreasing variance.  The tree splits and bounds patches in these
    coordinates, where their boxes are tighter than in pixel coordinates (neighbouring pixels are strongly
    correlated).  A function of the rows alone: the same tree for any thread count."""
    _, vectors = np.linalg.eigh(_scatter(rows, max(1, rows.shape[0] // sample)))
    return np.ascontiguousarray(vectors[:, ::-1])


@njit(parallel=True, cache=True)
def rotated_rows(rows, rotation):
    """``rows @ rotation`` computed in float64 in one fixed order, rounded to float32."""
    n, D = rows.shape
    out = np.empty((n, D), dtype=np.float32)
    chunk = 4096
    for c in prange((n + chunk - 1) // chunk):
        acc = np.empty(D)
        for k in range(c * chunk, min(n, (c + 1) * chunk)):
            for e in range(D):
                acc[e] = 0.0
            for d in range(D):
                x = np.float64(rows[k, d])
                for e in range(D):
                    acc[e] += x * rotation[d, e]
            for e in range(D):
                out[k, e] = acc[e]
    return out


#: Relative widening of the boxes, above float32 rounding of the rotated coordinates (2^-24 = 6e-8) and the
#: float64 rounding of the rotation itself (~1e-15): every patch's exact rotated coordinates lie inside.
BOX_MARGIN = 2.5e-7


def widened_boxes(lo: np.ndarray, hi: np.ndarray):
    """float64 boxes containing the exact rotated coordinates of every patch whose float32-rounded rotated
    coordinates lie in [lo, hi]."""
    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    pad = BOX_MARGIN * np.maximum(np.abs(lo), np.abs(hi)) + 1e-12
    return lo - pad, hi + pad


class PatchTree:
    """The distinct valid patches of a dictionary (images[index], patch size P) in a k-d tree.

    ``patches``: the distinct patches (D float32 each) in leaf order, flat, each leaf's block stored
    coordinate-major; ``norms`` (n,) their squared norms; ``counts`` (n,) copies; ``centre`` (C, n) centre
    values; ``first`` (n, 3) first occurrence (bank image, row, col); per node ``start``/``end`` (its range),
    ``left``/``right`` (children, -1 for leaves), ``lo``/``hi`` (D,) float64 bounding box of its patches
    in the coordinates ``phi @ rotation`` (``rotation``: :func:`principal_axes`)."""

    def __init__(self, images: np.ndarray, index: np.ndarray, P: int, leaf_size: int = LEAF_SIZE):
        images = np.ascontiguousarray(images, dtype=np.float32)
        index = np.ascontiguousarray(index, dtype=np.int64)
        C = images.shape[1]
        hashes = _hash_patches(images, index, P)
        order = _hash_order(hashes)
        first_row, counts = _group(images, index, P, order, hashes)
        del hashes, order
        distinct, where = _rows(images, index, P, first_row)
        self.rotation = principal_axes(distinct)
        rotated = rotated_rows(distinct, self.rotation)
        perm, self.start, self.end, self.left, self.right, lo, hi = _build_tree(rotated, leaf_size)
        del rotated
        self.lo, self.hi = widened_boxes(lo, hi)
        centre_cols = np.array([c * P * P + (P * P) // 2 for c in range(C)], dtype=np.int64)
        self.patches, self.norms, self.centre = _leaf_major(distinct, perm, self.start, self.end, self.left,
                                                            centre_cols)
        self.counts, self.first = _gather_rows(counts, where, perm)
        self.n_patches = int(counts.sum())
        del distinct, where
        self.P = P
        self.D = self.lo.shape[1]

    @property
    def n_distinct(self) -> int:
        return self.counts.shape[0]


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
def _leaf_fold(node, p, C, counts, centre, first, start, end, lw, state, acc, dom):
    """Fold one leaf's log weights ``lw[:n]`` into pixel p's online softmax ``state`` = (m, s, t, ld),
    ``acc`` (C,) and ``dom`` = (image, row, col) of the dominant patch."""
    s = start[node]
    n = end[node] - s
    cnt = counts[s:s + n]
    mx = block_max(lw, n)        # a plain max loop is one serial chain of n dependent maxima
    m = state[p, 0]
    if mx < m - SKIP_LOG_RATIO:
        return
    lo = state[p, 3]
    tol = tie_tolerance(max(mx, lo))
    if mx >= lo - tol:
        kf = -1
        for k in range(n):
            if lw[k] >= mx - tol:
                f = s + k
                if kf < 0 or _precedes(first[f, 0], first[f, 1], first[f, 2],
                                       first[s + kf, 0], first[s + kf, 1], first[s + kf, 2]):
                    kf = k
        f = s + kf
        if mx > lo + tol or _precedes(first[f, 0], first[f, 1], first[f, 2], dom[p, 0], dom[p, 1], dom[p, 2]):
            dom[p, 0] = first[f, 0]
            dom[p, 1] = first[f, 1]
            dom[p, 2] = first[f, 2]
            state[p, 3] = max(lw[kf], lo) if mx <= lo + tol else lw[kf]
    if mx > m:
        if m == -np.inf:
            state[p, 1] = 0.0
            state[p, 2] = 0.0
            for c in range(C):
                acc[p, c] = 0.0
        else:
            sc = exp_nonpositive(m - mx)
            state[p, 2] = sc * (state[p, 2] + (m - mx) * state[p, 1])
            state[p, 1] *= sc
            for c in range(C):
                acc[p, c] *= sc
        state[p, 0] = mx
        m = mx
    se = 0.0
    st = 0.0
    for k in range(n):
        y = max(lw[k] - m, LOG_RATIO_FLOOR)
        w = exp_clamped(y) * np.float64(cnt[k])
        se += w
        st += w * y
        lw[k] = w
    for c in range(C):
        cen = centre[c, s:s + n]
        sc_c = 0.0
        for k in range(n):
            sc_c += lw[k] * np.float64(cen[k])
        acc[p, c] += sc_c
    state[p, 1] += se
    state[p, 2] += st


#: Query pixels that walk the tree together (each leaf they need is read once for all of them, and its
#: dot products run four pixels at a time).  Measured on the sample's own P = 5 steps (mnist-5k): 64 is
#: 11% faster than 16 with one pixel at a time and 24% faster with four; 128 and 256 are no better.
TILE = 64


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def tree_softmax(xq, pixels, P, s1, s2, a, patches, norms, counts, centre, first, start, end, left, right, lo,
                 hi, rotation):
    """Online softmax of every pixel in ``pixels`` (npix, 2) of every padded query xq (B, C, H+2r, W+2r)
    over the distinct patches of a :class:`PatchTree` (its arrays passed one by one).

    Pixels walk the tree in tiles of :data:`TILE` consecutive pixels: a node is opened when its bound
    passes for any pixel of the tile, and a leaf is evaluated for exactly the pixels whose bound passes,
    four at a time (:func:`_leaf_logw4`).  Which pixels share a group depends on the query alone, so
    results do not depend on the thread count or the batch.

    Returns per (query, pixel): m, s, t (running max, sum of exp(log w - m) with counts, and of
    exp(log w - m)(log w - m)), acc (C) weighted centre sums, ld (the dominant patch's log weight), the
    dominant patch's (image, row, col) — the state :func:`~.shift_softmax.shift_softmax` merges — and the
    work done (patches evaluated, bounds computed)."""
    B, C = xq.shape[0], xq.shape[1]
    npix = pixels.shape[0]
    D = lo.shape[1]
    out_state = np.empty((B, npix, 4))
    out_acc = np.empty((B, npix, C))
    out_dom = np.empty((B, npix, 3), dtype=np.int64)
    out_work = np.zeros((B, npix, 2), dtype=np.int64)
    leaf_max = 0
    for node in range(start.shape[0]):
        leaf_max = max(leaf_max, end[node] - start[node] if left[node] < 0 else 0)
    ntiles = (npix + TILE - 1) // TILE
    for job in prange(B * ntiles):
        bi = job // ntiles
        p0 = (job - bi * ntiles) * TILE
        T = min(TILE, npix - p0)
        q = np.empty((T, D))
        for p in range(T):
            _patch_vector(xq[bi], pixels[p0 + p, 0], pixels[p0 + p, 1], P, q[p])
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
        state = np.empty((T, 4))
        acc = np.zeros((T, C))
        dom = np.empty((T, 3), dtype=np.int64)
        first_leaf = np.empty(T, dtype=np.int64)
        for p in range(T):
            state[p, 0] = -np.inf
            state[p, 1] = 0.0
            state[p, 2] = 0.0
            state[p, 3] = -np.inf
            dom[p, 0] = np.iinfo(np.int64).max
            dom[p, 1] = -1
            dom[p, 2] = -1
            # each pixel's most promising leaf first, so that its running maximum is close to the true one
            node = 0
            while left[node] >= 0:
                bl = _bound(qr, qa, p, lo, hi, left[node], D, s1, s2)
                br = _bound(qr, qa, p, lo, hi, right[node], D, s1, s2)
                node = left[node] if bl >= br else right[node]
            first_leaf[p] = node
            out_work[bi, p0 + p, 0] += end[node] - start[node]
            _leaf_logw(node, p, q, D, patches, norms, start, end, s1, s2, lw)
            _leaf_fold(node, p, C, counts, centre, first, start, end, lw, state, acc, dom)
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
                live[p] = bp >= state[p, 0] - SKIP_LOG_RATIO
                any_live |= live[p]
                out_work[bi, p0 + p, 1] += 1
            if not any_live:
                continue
            if left[node] < 0:
                # the pixels that need this leaf, four at a time (each patch loaded once for the four)
                nt = 0
                for p in range(T):
                    if live[p] and node != first_leaf[p]:
                        todo[nt] = p
                        nt += 1
                        out_work[bi, p0 + p, 0] += end[node] - start[node]
                nt4 = nt - nt % 4
                for g in range(0, nt4, 4):
                    _leaf_logw4(node, todo[g:g + 4], q, D, patches, norms, start, end, s1, s2, lw4)
                    for h in range(4):
                        _leaf_fold(node, todo[g + h], C, counts, centre, first, start, end, lw4[h], state, acc,
                                   dom)
                for g in range(nt4, nt):
                    _leaf_logw(node, todo[g], q, D, patches, norms, start, end, s1, s2, lw)
                    _leaf_fold(node, todo[g], C, counts, centre, first, start, end, lw, state, acc, dom)
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
            out_state[bi, p0 + p] = state[p]
            out_acc[bi, p0 + p] = acc[p]
            out_dom[bi, p0 + p] = dom[p]
    return out_state, out_acc, out_dom, out_work
