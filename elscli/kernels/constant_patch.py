"""The constant patch: identical dictionary patches stored once, with a count.

On digit-like banks most patches are the same flat background patch (MNIST: 58% of all 3x3 patches, 40% of
5x5, 23% of 7x7 are all-black).  Every copy has the same log weight for a given query pixel,

    log w_const(p) = sum_{window, c} v_c (s1 x_c - s2 v_c),

so their total contribution to pixel p is ``count(p) * exp(log w_const(p) - m)`` — one exp instead of
``count(p)``.  The kernel excludes those lanes (:func:`constant_patch_mask`), starts every pixel's running
maximum at ``log w_const(p)`` (so that blocks far below the flat patch are skipped, which at low noise is most
of them for background pixels), and merges the constant patch in as one more exact term.

Provenance stays well defined: the constant patch's representative is its first occurrence in the
dictionary in (image, row, col) order (:func:`first_occurrence`), and its weight and entropy terms count
every copy.  A patch is *constant* only when it lies wholly inside its training image (patches that reach
into the zero padding of LS and bbELS edge pixels are ordinary lanes) and every pixel of every channel equals
the constant value exactly.
"""
import numpy as np
from numba import njit, prange

from .softmax_state import NONE as _NONE, LogWeightScales, SoftmaxState, start_counted
#: Below this fraction of constant patches among all valid ones the bookkeeping costs more than it saves.
MIN_CONSTANT_FRACTION = 0.01


@njit(parallel=True, cache=True)
def constant_patch_mask(yt, nimg, P, value):
    """uint8 (nblk, H, W, K): 1 where the P x P patch of lane k centred at (u, v) lies inside the image and
    equals ``value[c]`` at every pixel of channel c.  yt: (nblk, H, W, C, K) blocks of images (lanes past
    ``nimg`` are never marked)."""
    nblk, H, W, C, K = yt.shape
    r = P // 2
    out = np.zeros((nblk, H, W, K), dtype=np.uint8)
    for kb in prange(nblk):
        nvalid = min(K, nimg - kb * K)
        # integral image of "pixel differs from the constant in some channel"
        S = np.zeros((H + 1, W + 1, K), dtype=np.int32)
        for y in range(H):
            for x in range(W):
                for k in range(nvalid):
                    diff = 0
                    for c in range(C):
                        if yt[kb, y, x, c, k] != value[c]:
                            diff = 1
                    S[y + 1, x + 1, k] = S[y, x + 1, k] + S[y + 1, x, k] - S[y, x, k] + diff
        for u in range(r, H - r):
            for v in range(r, W - r):
                for k in range(nvalid):
                    n = (S[u + r + 1, v + r + 1, k] - S[u - r, v + r + 1, k]
                         - S[u + r + 1, v - r, k] + S[u - r, v - r, k])
                    if n == 0:
                        out[kb, u, v, k] = 1
    return out


@njit(cache=True)
def _per_centre(mask, index, nimg):
    """How many dictionary images have the constant patch at each centre, and the first (bank index) one."""
    nblk, H, W, K = mask.shape
    count = np.zeros((H, W), dtype=np.int64)
    first = np.full((H, W), _NONE, dtype=np.int64)
    for kb in range(nblk):
        nvalid = min(K, nimg - kb * K)
        for u in range(H):
            for v in range(W):
                for k in range(nvalid):
                    if mask[kb, u, v, k]:
                        count[u, v] += 1
                        n = index[kb * K + k]
                        if n < first[u, v]:
                            first[u, v] = n
    return count, first


@njit(cache=True)
def _per_pixel(count, first, groups, H, W):
    """Per query pixel of an H x W query: the number of constant patches in its dictionary and the first one
    (image, row, col).

    count, first: per patch centre of the dictionary's images (which may be larger than the query, as
    wrap-padded images are); groups: the kernel's group table (centre rectangles, or -1 for the pixel's own
    coordinate)."""
    total = np.zeros((H, W), dtype=np.int64)
    fn = np.full((H, W), _NONE, dtype=np.int64)
    fu = np.full((H, W), -1, dtype=np.int64)
    fv = np.full((H, W), -1, dtype=np.int64)
    for g in range(groups.shape[0]):
        qi0, qi1, qj0, qj1, u0, u1, v0, v1 = groups[g]
        for i in range(qi0, qi1):
            for j in range(qj0, qj1):
                ulo, uhi = (i, i + 1) if u0 < 0 else (u0, u1)
                vlo, vhi = (j, j + 1) if v0 < 0 else (v0, v1)
                for u in range(ulo, uhi):
                    for v in range(vlo, vhi):
                        total[i, j] += count[u, v]
                        if first[u, v] < fn[i, j]:   # strict: the earliest (row, col) wins among equal images
                            fn[i, j] = first[u, v]
                            fu[i, j] = u
                            fv[i, j] = v
    return total, fn, fu, fv


def constant_value(images: np.ndarray) -> np.ndarray:
    """The candidate constant pixel (C,): each channel's most common value over the bank (the background
    of digit-like data).  Which value is chosen never changes results, only how much is saved."""
    C = images.shape[1]
    out = np.empty(C, dtype=np.float32)
    for c in range(C):
        vals, counts = np.unique(np.asarray(images[:, c], dtype=np.float32), return_counts=True)
        out[c] = vals[np.argmax(counts)]
    return out


class ConstantPatches:
    """The constant patch of one dictionary (bank images, index set, patch size, machine's groups).

    yt: (nblk, Hb, Wb, C, K) float32 the dictionary's image blocks; index: (n,) int64 their bank indices; P:
    patch size; groups: the machine's group table; value: (C,) float32 the candidate constant pixel
    (:func:`constant_value`); min_fraction: below this fraction of constant patches among all valid ones
    it is not split off; query_shape: (H, W) of the queries (default (Hb, Wb); smaller when the blocks hold
    wrap-padded images).

    ``mask`` (nblk, H, W, K) marks the lanes the kernel leaves out; ``count``, ``first_*`` (H, W) give each
    pixel's number of copies and first occurrence; ``value`` (C,) the constant pixel.  ``active`` is False
    when constant patches are too rare to be worth it (then the kernel runs over every lane as before)."""

    def __init__(self, yt: np.ndarray, index: np.ndarray, P: int, groups: np.ndarray, value: np.ndarray,
                 min_fraction: float = MIN_CONSTANT_FRACTION, query_shape=None):
        nimg = index.shape[0]
        nblk, Hb, Wb, C, K = yt.shape
        H, W = (Hb, Wb) if query_shape is None else (int(query_shape[0]), int(query_shape[1]))
        self.value = np.asarray(value, dtype=np.float32)
        mask = constant_patch_mask(yt, nimg, P, self.value)
        count, first = _per_centre(mask, index, nimg)
        valid = nimg * max(Hb - 2 * (P // 2), 0) * max(Wb - 2 * (P // 2), 0)
        self.fraction = float(count.sum()) / valid if valid else 0.0
        self.active = self.fraction >= min_fraction
        if self.active:
            self.mask = mask
            self.count, self.first_image, self.first_row, self.first_col = _per_pixel(count, first, groups, H, W)
        else:
            self.mask = np.zeros((1, 1, 1, 1), dtype=np.uint8)
            self.count = np.zeros((H, W), dtype=np.int64)
            self.first_image = np.full((H, W), _NONE, dtype=np.int64)
            self.first_row = np.full((H, W), -1, dtype=np.int64)
            self.first_col = np.full((H, W), -1, dtype=np.int64)

    def log_weights(self, xq: np.ndarray, P: int, s1: float, s2: float) -> np.ndarray:
        """log w_const(p) for padded queries xq (B, C, H+2r, W+2r): (B, H, W), -inf where a pixel's
        dictionary has no constant patch."""
        from numpy.lib.stride_tricks import sliding_window_view

        v = self.value.astype(np.float64)
        z = np.tensordot(v, xq, axes=([0], [1]))                      # (B, Hp, Wp): sum_c v_c x_c
        box = sliding_window_view(z, (P, P), axis=(1, 2)).sum(axis=(3, 4))
        out = s1 * box - s2 * P * P * float(np.dot(v, v))
        out[:, self.count == 0] = -np.inf
        return out

    def fold_into(self, state: SoftmaxState, xq: np.ndarray, P: int, scales: LogWeightScales) -> None:
        """Start every pixel whose dictionary holds the constant patch with its exact term: ``state`` is the
        :class:`~.softmax_state.SoftmaxState` of the B H W query pixels (xq: (B, C, H+2r, W+2r) padded
        queries).  A state that accumulates whole patches (``acc`` of C P^2 columns, :func:`.shift_softmax.
        shift_softmax`) gets the constant value at every offset."""
        if not self.active:
            return
        lw = self.log_weights(xq, P, scales.s1, scales.s2)
        B, H, W = lw.shape
        C = self.value.shape[0]
        each = (B, H, W)
        count = np.broadcast_to(self.count, each).reshape(-1)
        value = self.value.astype(np.float64)
        if state.acc.shape[1] != C:
            value = np.tile(value, state.acc.shape[1] // C)
        centre = np.broadcast_to(value, (B * H * W, value.shape[0]))
        dom = np.stack([np.broadcast_to(self.first_image, each), np.broadcast_to(self.first_row, each),
                        np.broadcast_to(self.first_col, each)], axis=-1).reshape(-1, 3)
        start_counted(state, count > 0, lw.reshape(-1), count, centre, dom)
