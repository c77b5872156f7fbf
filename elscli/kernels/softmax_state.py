"""The online softmax of a pixel's patch posterior: its state, and every rule that updates or merges it.

Every machine computes, for each output pixel p, a softmax over the patches phi of its dictionary D_p and
the weighted mean of their centres (Kamb & Ganguli 2025, the LS/ELS machines; science.md, "The machines"):

    w(phi) = exp(log w(phi)) / sum_{phi'} exp(log w(phi')),   log w(phi) = -||x_p - a phi||^2 / (2 b^2),
    x0_hat(p) = sum_phi w(phi) phi(centre).

The kernels see a dictionary in pieces — blocks of training images (:mod:`.shift_softmax`), leaves of the
patch tree (:mod:`.patch_tree.query`), the constant patch (:mod:`.constant_patch`) — so each piece keeps,
per pixel, the state of an online softmax (Milakov & Gimelshein 2018, "Online normalizer calculation for
softmax"), in float64:

=======  ============  ======================================================================================
field    shape, dtype  meaning
=======  ============  ======================================================================================
``m``    (n,) f8       running maximum of log w (``-inf``: no patch yet)
``s``    (n,) f8       sum of exp(log w - m)
``t``    (n,) f8       sum of exp(log w - m) (log w - m), for the entropy ``H = log s - t / s`` (nats)
``ld``   (n,) f8       log weight of the dominant patch (``-inf``: none)
``acc``  (n, C) f8     sum of exp(log w - m) phi_c(centre), per channel c
``dom``  (n, 3) i8     the dominant patch: (bank image, centre row, centre col); (:data:`NONE`, -1, -1): none
=======  ============  ======================================================================================

``n`` counts pixels, flattened in C order over whatever grid a kernel works (a block's H x W pixels, or the
queries' B x H x W).  The rules, each written once here:

- **rescale** (:func:`raise_maximum`): a new maximum m' multiplies s and acc by e^(m - m') and turns t into
  e^(m - m') (t + (m - m') s);
- **add** (:func:`add_weights`, :func:`add_weights_live`, :func:`add_counted_weights`): the weights of a
  set of log weights against the running maximum;
- **precedence and ties** (:func:`beats`): the dominant patch is the first in (image, row, col) order among
  the patches whose log weight is within :func:`tie_tolerance` of the largest.  Sliding sums make the log
  weights of identical patches differ by rounding (~1e-13 relative); ties absorb that, so the dominant
  patch is the first copy whichever piece, block or leaf saw it;
- **merge** (:func:`merge`): the states of several pieces, in a fixed order, into x0_hat, the dominant
  patch's normalised weight and the posterior entropy — so results do not depend on how the work was split.

Exactness rule: a weight below e^-:data:`~.config.SKIP_LOG_RATIO` of the running maximum may be left out.

Numba note: in a ``parallel=True`` function, Numba 0.68 silently drops writes made through a named tuple's
arrays (in a ``prange`` body through a tuple defined outside it, and through inlined functions).  So the
parallel drivers only unpack named tuples, and build them again inside the ``prange`` body for a job function
(:func:`.shift_softmax._block_job`, :func:`.patch_tree.query._tile_job`) that is not parallel: there, and
in everything it calls, writing through them is safe.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .config import FASTMATH, SKIP_LOG_RATIO, TIE_RELATIVE
from .expm import LOG_RATIO_FLOOR, exp_clamped, exp_nonpositive
from .lanes import compress_live

#: Image index of "no dominant patch yet": after every real image in (image, row, col) order.
NONE = np.iinfo(np.int64).max


class SoftmaxState(NamedTuple):
    """The online-softmax state of ``n`` pixels (see the module docstring for each field)."""

    m: np.ndarray
    s: np.ndarray
    t: np.ndarray
    ld: np.ndarray
    acc: np.ndarray
    dom: np.ndarray


@njit(cache=True)
def empty_state(n, C):
    """The state of ``n`` pixels with ``C`` channels that have seen no patch: m = ld = -inf, s = t = acc = 0,
    dom = (NONE, -1, -1).  Returns a :class:`SoftmaxState`."""
    dom = np.full((n, 3), -1, dtype=np.int64)
    for p in range(n):
        dom[p, 0] = NONE
    return SoftmaxState(np.full(n, -np.inf), np.zeros(n), np.zeros(n), np.full(n, -np.inf), np.zeros((n, C)),
                        dom)


def start_counted(state, where, logw, count, centre, dom):
    """Pixels ``where`` (n,) bool of ``state`` start over with one patch of log weight ``logw`` (n,) standing for
    ``count`` (n,) int64 copies, centre values ``centre`` (n, C) per copy and first occurrence ``dom`` (n, 3):
    m = ld = logw, s = count, t = 0 (every copy at the maximum), acc = count centre."""
    state.m[where] = logw[where]
    state.ld[where] = logw[where]
    state.s[where] = count[where].astype(np.float64)
    state.t[where] = 0.0
    for c in range(state.acc.shape[1]):
        state.acc[where, c] = count[where] * centre[where, c]
    state.dom[where] = dom[where]


class LogWeightScales(NamedTuple):
    """The noise scales as the kernels use them: with x_t = a x_0 + b eps (science.md, "Conventions"),

        log w(phi) = -||x_p - a phi||^2 / (2 b^2) = s1 <x_p, phi> - s2 ||phi||^2 + const(p),

    ``s1 = a / b^2``, ``s2 = a^2 / (2 b^2)`` (floats; the constant ||x_p||^2 / 2b^2 cancels in the softmax)."""

    a: float
    s1: float
    s2: float


def log_weight_scales(a: float, b: float) -> LogWeightScales:
    """:class:`LogWeightScales` of signal scale ``a`` >= 0 and noise scale ``b`` > 0."""
    a = float(a)
    b = float(b)
    return LogWeightScales(a, a / (b * b), a * a / (2.0 * b * b))


# ------------------------------------------------------------------------------- precedence and ties

@njit(inline="always")
def precedes(n, u, v, n0, u0, v0):
    """(n, u, v) comes before (n0, u0, v0) in (image, row, col) order."""
    return n < n0 or (n == n0 and (u < u0 or (u == u0 and v < v0)))


@njit(inline="always")
def tie_tolerance(logw):
    """Log weights this close to ``logw`` are ties for the choice of the dominant patch: ``TIE_RELATIVE (1 +
    |logw|)``, far above the rounding of the running sums (~1e-13 relative), far below any difference that
    matters."""
    return TIE_RELATIVE * (1.0 + abs(logw))


@njit(inline="always")
def beats(l, n, u, v, l0, n0, u0, v0):
    """A patch of log weight ``l`` at (n, u, v) takes the place of the dominant patch (``l0`` at (n0, u0, v0)):
    it is larger beyond the tie tolerance, or tied and first in (image, row, col) order."""
    tol = tie_tolerance(max(l, l0))
    return l > l0 + tol or (l >= l0 - tol and precedes(n, u, v, n0, u0, v0))


@njit(inline="always")
def dominance_tolerance(state, p, mx):
    """The tie tolerance between a piece whose largest log weight is ``mx`` and pixel p's dominant patch, and
    whether the piece can hold p's next dominant patch (``mx`` within that tolerance of it, or above)."""
    lo = state.ld[p]
    tol = tie_tolerance(max(mx, lo))
    return tol, mx >= lo - tol


@njit(inline="always")
def offer_dominant(state, p, mx, tol, lw, n, u, v):
    """Pixel p's dominant patch becomes (n, u, v), of log weight ``lw`` — the first patch, in (image, row, col)
    order, within ``tol`` of its piece's maximum ``mx`` — if it beats the present one (:func:`beats`, with the
    piece's maximum standing for its ties)."""
    lo = state.ld[p]
    if mx > lo + tol or precedes(n, u, v, state.dom[p, 0], state.dom[p, 1], state.dom[p, 2]):
        state.dom[p, 0] = n
        state.dom[p, 1] = u
        state.dom[p, 2] = v
        state.ld[p] = max(lw, lo) if mx <= lo + tol else lw


# ---------------------------------------------------------------------------------- rescale and add

@njit(fastmath=FASTMATH, cache=True)
def block_max(values, n):
    """The largest of the log weights values[:n], n >= 1 (finite values).  Eight independent running maxima,
    written as selects, so that LLVM vectorises the reduction (a plain ``max`` loop stays scalar without the
    ``nnan`` flag)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = values[0]
    n8 = n - n % 8
    for k in range(0, n8, 8):
        m0 = m0 if m0 > values[k] else values[k]
        m1 = m1 if m1 > values[k + 1] else values[k + 1]
        m2 = m2 if m2 > values[k + 2] else values[k + 2]
        m3 = m3 if m3 > values[k + 3] else values[k + 3]
        m4 = m4 if m4 > values[k + 4] else values[k + 4]
        m5 = m5 if m5 > values[k + 5] else values[k + 5]
        m6 = m6 if m6 > values[k + 6] else values[k + 6]
        m7 = m7 if m7 > values[k + 7] else values[k + 7]
    for k in range(n8, n):
        m0 = m0 if m0 > values[k] else values[k]
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))



@njit(inline="always")
def raise_maximum(state, p, mx):
    """Make ``mx`` pixel p's running maximum if it is larger, rescaling s, t and acc by e^(m - mx); returns
    the running maximum."""
    mo = state.m[p]
    if mx > mo:
        C = state.acc.shape[1]
        if mo == -np.inf:
            state.s[p] = 0.0
            state.t[p] = 0.0
            for c in range(C):
                state.acc[p, c] = 0.0
        else:
            sc = exp_nonpositive(mo - mx)
            state.t[p] = sc * (state.t[p] + (mo - mx) * state.s[p])
            state.s[p] *= sc
            for c in range(C):
                state.acc[p, c] *= sc
        state.m[p] = mx
        mo = mx
    return mo


@njit(fastmath=FASTMATH, cache=True)
def add_weights(state, p, logw, nvalid, mo, centre, wbuf):
    """Add the weights ``exp(logw[:nvalid] - mo)`` (``mo`` >= every entry: pixel p's running maximum) to its
    sums: s += sum w, t += sum w (log w - mo), acc[c] += sum w centre[c, k].  centre: (C, >= nvalid) float32;
    wbuf: (>= nvalid,) float64 scratch.  Log ratios below ``LOG_RATIO_FLOOR`` count as that floor (weight
    e^-600, see :mod:`.expm`): no select per lane."""
    C = centre.shape[0]
    se = 0.0
    st = 0.0
    if C == 1:
        s0 = 0.0
        for k in range(nvalid):
            y = max(logw[k] - mo, LOG_RATIO_FLOOR)
            w = exp_clamped(y)
            se += w
            st += w * y
            s0 += w * np.float64(centre[0, k])
        state.acc[p, 0] += s0
    else:
        for k in range(nvalid):
            y = max(logw[k] - mo, LOG_RATIO_FLOOR)
            w = exp_clamped(y)
            se += w
            st += w * y
            wbuf[k] = w
        for c in range(C):
            sc_c = 0.0
            for k in range(nvalid):
                sc_c += wbuf[k] * np.float64(centre[c, k])
            state.acc[p, c] += sc_c
    state.s[p] += se
    state.t[p] += st


@njit(fastmath=FASTMATH, cache=True)
def add_weights_live(state, p, logw, nvalid, mo, centre, live_logw, live_centre):
    """:func:`add_weights` for one channel (centre: (>= nvalid,) float32), with the exps spent on live lanes
    only: the lanes within ``SKIP_LOG_RATIO`` of ``mo`` are first compressed to the front of
    ``live_logw``/``live_centre`` (:func:`.lanes.compress_live`); the others are left out, as the exactness
    rule allows."""
    kk = compress_live(logw, centre, nvalid, mo - SKIP_LOG_RATIO, live_logw, live_centre)
    se = 0.0
    st = 0.0
    s0 = 0.0
    for k in range(kk):
        y = max(live_logw[k] - mo, LOG_RATIO_FLOOR)
        w = exp_clamped(y)
        se += w
        st += w * y
        s0 += w * np.float64(live_centre[k])
    state.acc[p, 0] += s0
    state.s[p] += se
    state.t[p] += st


@njit(inline="always", fastmath=FASTMATH)
def add_counted_weights(state, p, lw, n, m, counts, centre, s):
    """:func:`add_weights` for the distinct patches [s, s + n) of a list, each standing for ``counts[s + k]``
    copies: w_k = counts[s + k] exp(lw[k] - m).  centre: (C, >= s + n) float32.  Overwrites ``lw[:n]`` with
    the weights."""
    C = centre.shape[0]
    cnt = counts[s:s + n]
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
        state.acc[p, c] += sc_c
    state.s[p] += se
    state.t[p] += st


@njit(fastmath=FASTMATH, cache=True)
def fold(state, p, u, v, logw, nvalid, mx, centre, ids, wbuf):
    """Fold the log weights ``logw[:nvalid]`` (largest ``mx``) of patches centred at (u, v) of the images
    ``ids[:nvalid]`` (increasing) into pixel p's softmax; ``centre[c, k]`` is entry k's centre value in channel
    c.  The dominant patch moves to the first entry within the tie tolerance of ``mx`` if that one beats it."""
    tol, may = dominance_tolerance(state, p, mx)
    if may:
        kf = 0
        while logw[kf] < mx - tol:
            kf += 1
        offer_dominant(state, p, mx, tol, logw[kf], ids[kf], u, v)
    mo = raise_maximum(state, p, mx)
    add_weights(state, p, logw, nvalid, mo, centre, wbuf)


# ---------------------------------------------------------------------------------------------- merge

@njit(inline="always")
def entropy_nats(S, T):
    """Posterior entropy ``log S - T / S`` (nats, clipped at 0 against rounding) of the weights whose sums
    against the maximum are S (of exp(log w - M)) and T (of exp(log w - M)(log w - M))."""
    return max(math.log(S) - T / S, 0.0)


@njit(inline="always")
def merge(blocks, q0, stride, nblk, ext, pe, x0):
    """Merge one pixel's states into its posterior: ``ext[pe]`` (patches worked outside the blocks: the
    constant patch, or the patch tree; m = -inf if none) first, then ``blocks[q0 + kb * stride]`` for kb <
    nblk, in that fixed order.

    Writes x0_hat(p) = acc / S to ``x0`` (C,); returns (weight of the dominant patch, posterior entropy in
    nats, and the dominant patch's image, row, col), with S = sum_k e^(m_k - M) s_k over the states, M their
    largest maximum."""
    C = x0.shape[0]
    lc = ext.m[pe]
    M = lc
    for kb in range(nblk):
        M = max(M, blocks.m[q0 + kb * stride])
    # the dominant patch: first in (image, row, col) order among the near-ties of the blocks and ext
    qbest = q0
    for kb in range(1, nblk):
        q = q0 + kb * stride
        if beats(blocks.ld[q], blocks.dom[q, 0], blocks.dom[q, 1], blocks.dom[q, 2], blocks.ld[qbest],
                 blocks.dom[qbest, 0], blocks.dom[qbest, 1], blocks.dom[qbest, 2]):
            qbest = q
    best_l = blocks.ld[qbest]
    best_n = blocks.dom[qbest, 0]
    best_u = blocks.dom[qbest, 1]
    best_v = blocks.dom[qbest, 2]
    S = 0.0
    T = 0.0
    for c in range(C):
        x0[c] = 0.0
    if lc > -np.inf:
        if beats(ext.ld[pe], ext.dom[pe, 0], ext.dom[pe, 1], ext.dom[pe, 2], best_l, best_n, best_u, best_v):
            best_l = ext.ld[pe]
            best_n = ext.dom[pe, 0]
            best_u = ext.dom[pe, 1]
            best_v = ext.dom[pe, 2]
        sc = math.exp(lc - M)
        S += sc * ext.s[pe]
        T += sc * (ext.t[pe] + (lc - M) * ext.s[pe])
        for c in range(C):
            x0[c] += sc * ext.acc[pe, c]
    for kb in range(nblk):
        q = q0 + kb * stride
        mk = blocks.m[q]
        if mk == -np.inf:
            continue
        sc = math.exp(mk - M)
        S += sc * blocks.s[q]
        T += sc * (blocks.t[q] + (mk - M) * blocks.s[q])
        for c in range(C):
            x0[c] += sc * blocks.acc[q, c]
    for c in range(C):
        x0[c] /= S
    return math.exp(best_l - M) / S, entropy_nats(S, T), best_n, best_u, best_v
