"""A k-d tree over the distinct patches of a dictionary, on their principal axes.

The distinct patches (:mod:`.dedup`) are rotated onto their principal axes (an orthonormal rotation, which
keeps both <q, phi> and ||phi||^2; boxes are tighter there, as neighbouring pixels are strongly correlated)
and split at the median of the widest coordinate, level by level, until leaves hold at most
:data:`LEAF_SIZE` patches.  Each node carries the bounding box of its patches, widened past the rounding
of the rotated values (:data:`BOX_MARGIN`), so that :mod:`.query` can bound every weight below it.  Leaves
are stored coordinate-major for the query's dot products.  The build runs in parallel (rows, the rotation,
the split of each level's nodes, the leaves' boxes and layout) in a fixed order of work: the same tree for
any thread count.
"""
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .dedup import distinct_patches

#: Patches per leaf at most.  With leaves evaluated four pixels at a time in 64-pixel tiles, 1,024 is 10%
#: faster than 256 on the sample's own P = 3 and 5 steps (mnist-5k; 512: 8%, 2,048: the same as 1,024):
#: fewer bounds, and longer runs of dot products.
LEAF_SIZE = 1024


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


class TreeArrays(NamedTuple):
    """A :class:`PatchTree`'s arrays, as :func:`.query.tree_softmax` reads them (see :class:`PatchTree`)."""

    patches: np.ndarray
    norms: np.ndarray
    counts: np.ndarray
    centre: np.ndarray
    first: np.ndarray
    start: np.ndarray
    end: np.ndarray
    left: np.ndarray
    right: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rotation: np.ndarray


class PatchTree:
    """The distinct valid patches of a dictionary (images[index], patch size P) in a k-d tree.

    ``patches``: the distinct patches (D = C P^2 float32 each) in leaf order, flat, each leaf's block stored
    coordinate-major; ``norms`` (n,) float64 their squared norms; ``counts`` (n,) int64 copies; ``centre``
    (C, n) float32 centre values; ``first`` (n, 3) int64 first occurrence (bank image, row, col); per node
    ``start``/``end`` (its range), ``left``/``right`` (children, -1 for leaves), ``lo``/``hi`` (D,) float64
    bounding box of its patches in the coordinates ``phi @ rotation`` (``rotation``: (D, D) float64,
    :func:`principal_axes`).  ``arrays`` gives them all as one :class:`TreeArrays`.

    Built from the dictionary alone (:mod:`.dedup`, then the k-d tree level by level), bitwise the same for
    any thread count."""

    def __init__(self, images: np.ndarray, index: np.ndarray, P: int, leaf_size: int = LEAF_SIZE):
        images = np.ascontiguousarray(images, dtype=np.float32)
        index = np.ascontiguousarray(index, dtype=np.int64)
        C = images.shape[1]
        distinct, counts, where = distinct_patches(images, index, P)
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

    @classmethod
    def from_arrays(cls, arrays: TreeArrays, P: int) -> "PatchTree":
        """A tree from the arrays of one built earlier (``tree.arrays``, e.g. kept in an on-disk cache), as
        it was: nothing is recomputed."""
        tree = cls.__new__(cls)
        for name, value in zip(TreeArrays._fields, arrays):
            setattr(tree, name, value)
        tree.n_patches = int(tree.counts.sum())
        tree.P = int(P)
        tree.D = tree.lo.shape[1]
        return tree

    @property
    def n_distinct(self) -> int:
        """How many distinct patches the tree holds."""
        return self.counts.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the tree's arrays."""
        return int(sum(a.nbytes for a in self.arrays))

    @property
    def arrays(self) -> TreeArrays:
        """The tree's arrays for :func:`.query.tree_softmax`."""
        return TreeArrays(self.patches, self.norms, self.counts, self.centre, self.first, self.start, self.end,
                          self.left, self.right, self.lo, self.hi, self.rotation)
