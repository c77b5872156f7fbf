"""The distinct valid patches of a dictionary: numbered, hashed, grouped exactly, each kept once with its count.

A dictionary's valid patches (those wholly inside their training image; ELS, and the interior pixels of
bbELS) are numbered in (image, row, col) order: patch number ``(a U + u) V + v`` is the P x P patch whose top-left
corner is (u, v) in image ``index[a]``, U = H - P + 1, V = W - P + 1 (:func:`_decode`).  Identical patches
are found by a 64-bit FNV-1a hash of their float32 bits, ordered by a radix sort of the hashes' top bits and
compared exactly within a run of equal hashes, so a hash collision never merges two different patches.
Each distinct patch keeps its first occurrence in (image, row, col) order — the one the tie rule of
:mod:`..softmax_state` names dominant among copies — and the number of its copies (its weight counts them
all).  Everything here is a function of the dictionary alone, the same for any thread count.
"""
import numpy as np
from numba import njit, prange


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
def patch_vector(image, u, v, P, out):
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
        patch_vector(images[n], u, v, P, out[i])
        where[i, 0] = n
        where[i, 1] = u + r
        where[i, 2] = v + r
    return out, where



def distinct_patches(images: np.ndarray, index: np.ndarray, P: int):
    """The distinct valid P x P patches of the images ``images[index]``.

    Parameters
    ----------
    images : (N, C, H, W) float32, C-contiguous
    index : (n,) int64
        The dictionary's images (bank indices, increasing).
    P : int
        Odd patch size, P <= min(H, W).

    Returns
    -------
    rows : (m, C P P) float32
        Each distinct patch once, flattened (c, row, col), in the order of their hashes.
    counts : (m,) int64
        How many valid patches of the dictionary equal it.
    where : (m, 3) int64
        Its first occurrence: (bank image, centre row, centre col).
    """
    hashes = _hash_patches(images, index, P)
    order = _hash_order(hashes)
    first_row, counts = _group(images, index, P, order, hashes)
    del hashes, order
    rows, where = _rows(images, index, P, first_row)
    return rows, counts, where
