"""The online-softmax state (kernels/softmax_state.py) against a direct NumPy softmax: folds of any split of a
dictionary into pieces, in any order of pieces, merged, give the same posterior and the tie rule's dominant
patch (the first in (image, row, col) order within the tolerance)."""
import numpy as np
import pytest

from elscli.kernels.config import TIE_RELATIVE
from elscli.kernels.softmax_state import NONE, beats, empty_state, fold, merge, start_counted


def direct(logw, centre, order):
    """x0 (C,), weight and entropy of the softmax, and the dominant entry: the first in ``order`` (a list of
    (image, row, col)) among those within the tie tolerance of the largest log weight."""
    m = logw.max()
    w = np.exp(logw - m)
    S = w.sum()
    p = w / S
    tol = TIE_RELATIVE * (1 + abs(m))
    ties = [k for k in range(len(logw)) if logw[k] >= m - tol]
    k = min(ties, key=lambda k: order[k])
    return (w @ centre.T) / S, np.exp(logw[k] - m) / S, float(-(p[p > 0] * np.log(p[p > 0])).sum()), order[k]


def fold_pieces(logw, centre, where, pieces, nstates):
    """Fold each piece (indices into the entries, all at one centre (u, v), images increasing) into state
    number piece % nstates of one pixel; return the merged posterior."""
    C = centre.shape[0]
    blocks = empty_state(nstates, C)
    for q, piece in enumerate(pieces):
        lw = np.ascontiguousarray(logw[piece])
        n, u, v = where[piece[0]]
        assert all(tuple(where[k][1:]) == (u, v) for k in piece)
        fold(blocks, q % nstates, u, v, lw, len(piece), lw.max(), np.ascontiguousarray(centre[:, piece]),
             np.array([where[k][0] for k in piece], dtype=np.int64), np.empty(len(piece)))
    x0 = np.empty(C)
    ext = empty_state(1, C)
    w, e, n, u, v = merge(blocks, 0, 1, nstates, ext, 0, x0)
    return x0, w, e, (n, u, v)


@pytest.mark.parametrize("seed", range(6))
def test_folds_and_merges_equal_the_direct_softmax(seed):
    rng = np.random.default_rng(seed)
    E, C = 60, 2
    logw = rng.normal(0, 8, E)
    logw[rng.integers(E, size=5)] = logw.max()          # exact ties of the maximum
    centre = rng.uniform(-1, 1, (C, E)).astype(np.float32)
    # entries: (image, row, col); each piece one centre (u, v) and increasing images
    where = [(int(rng.integers(0, 9)) + 10 * k, int(k % 3), int(k % 2)) for k in range(E)]
    groups = {}
    for k in range(E):
        groups.setdefault(where[k][1:], []).append(k)
    pieces = []
    for ks in groups.values():
        ks = sorted(ks, key=lambda k: where[k][0])
        cut = int(rng.integers(1, len(ks) + 1))
        pieces += [ks[:cut]] + ([ks[cut:]] if ks[cut:] else [])
    rng.shuffle(pieces)
    want = direct(logw, centre.astype(np.float64), where)
    for nstates in (1, 3):
        x0, w, e, dom = fold_pieces(logw, centre, where, pieces, nstates)
        np.testing.assert_allclose(x0, want[0], rtol=1e-12, atol=1e-14)
        assert w == pytest.approx(want[1], rel=1e-12)
        assert e == pytest.approx(want[2], rel=1e-10, abs=1e-12)
        assert dom == want[3]


def test_near_ties_go_to_the_first_in_image_row_col_order():
    l = 100.0
    tiny = 0.1 * TIE_RELATIVE * (1 + l)                   # within the tolerance
    assert beats(l - tiny, 0, 5, 5, l, 1, 0, 0)            # a later image loses to an earlier one, barely smaller
    assert not beats(l + tiny, 1, 0, 0, l, 0, 5, 5)        # ... even barely larger
    assert beats(l, 0, 1, 9, l, 0, 2, 0) and beats(l, 0, 1, 1, l, 0, 1, 2)   # then row, then col
    big = 10 * TIE_RELATIVE * (1 + l)
    assert beats(l + big, 9, 9, 9, l, 0, 0, 0)             # beyond the tolerance the larger wins
    assert not beats(l - big, 0, 0, 0, l, 9, 9, 9)


def test_a_counted_patch_starts_a_state_that_merges_as_its_copies():
    """start_counted (the constant patch): one patch with k copies merges like k equal entries, and its
    first occurrence takes part in the tie rule."""
    for l_block, want_dom in ((1.5, (0, 7, 7)), (0.5, (3, 1, 2))):   # a tie: image 0 first; else the larger
        ext = empty_state(2, 1)
        start_counted(ext, np.array([True, False]), np.array([1.5, 0.0]), np.array([4, 0]),
                      np.array([[0.25], [0.0]]), np.array([[3, 1, 2], [NONE, -1, -1]]))
        blocks = empty_state(1, 1)
        fold(blocks, 0, 7, 7, np.array([l_block]), 1, l_block, np.array([[1.0]], np.float32), np.array([0]),
             np.empty(1))
        x0 = np.empty(1)
        w, e, n, u, v = merge(blocks, 0, 1, 1, ext, 0, x0)
        logw = np.array([1.5] * 4 + [l_block])
        p = np.exp(logw - 1.5) / np.exp(logw - 1.5).sum()
        assert x0[0] == pytest.approx(p[:4].sum() * 0.25 + p[4] * 1.0, rel=1e-14)
        assert w == pytest.approx(p[4] if want_dom[0] == 0 else p[0], rel=1e-14)
        assert e == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
        assert (n, u, v) == want_dom
