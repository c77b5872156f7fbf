"""The vectorisable exp of the kernels against math.exp, over its whole domain and at its edges."""
import math

import numpy as np
from numba import njit

from elscli.kernels.config import FASTMATH, SKIP_LOG_RATIO
from elscli.kernels.expm import LOG_RATIO_FLOOR, MAX_RELATIVE_ERROR, exp_clamped, exp_nonpositive


@njit
def _apply(y):
    out = np.empty(y.shape[0])
    for k in range(y.shape[0]):
        out[k] = exp_nonpositive(y[k])
    return out


@njit(fastmath=FASTMATH)
def _apply_fast(y):
    # as the kernels call it: inlined under their fastmath flags, in a loop LLVM vectorises
    out = np.empty(y.shape[0])
    for k in range(y.shape[0]):
        out[k] = exp_nonpositive(y[k])
    return out


@njit(fastmath=FASTMATH)
def _apply_clamped(y):
    # as the hot loops call it: the argument raised to the floor first, inlined under the kernels' flags
    out = np.empty(y.shape[0])
    for k in range(y.shape[0]):
        out[k] = exp_clamped(max(y[k], LOG_RATIO_FLOOR))
    return out


def test_clamped_exp_over_its_domain_and_below():
    y = np.concatenate([-np.linspace(0.0, -LOG_RATIO_FLOOR, 600_001), -np.geomspace(1e-12, 1.0, 1001)])
    want = np.array([math.exp(v) for v in y])
    got = _apply_clamped(y)
    assert np.max(np.abs(got - want) / want) < MAX_RELATIVE_ERROR
    # below the floor (the kernels' excluded lanes carry -1e300): e^-600, a normal float, never garbage
    low = _apply_clamped(np.array([LOG_RATIO_FLOOR - 1e-9, -745.0, -1e5, -1e300, -np.inf]))
    assert np.allclose(low, math.exp(LOG_RATIO_FLOOR), rtol=MAX_RELATIVE_ERROR, atol=0)
    # products of what it returns with any centre value of magnitude >= 1e-40 stay normal floats
    assert np.all(low * 1e-40 >= np.finfo(np.float64).tiny)


def test_relative_error_over_the_domain():
    y = np.concatenate([-np.linspace(0.0, SKIP_LOG_RATIO, 200_001), -np.geomspace(1e-12, SKIP_LOG_RATIO, 2001)])
    want = np.array([math.exp(v) for v in y])
    for apply in (_apply, _apply_fast):
        got = apply(y)
        assert np.max(np.abs(got - want) / want) < MAX_RELATIVE_ERROR


def test_edges_of_the_domain():
    for apply in (_apply, _apply_fast):
        got = apply(np.array([0.0, -SKIP_LOG_RATIO, -SKIP_LOG_RATIO - 1e-9, -1e300, -np.inf, np.nan]))
        assert abs(got[0] - 1.0) < MAX_RELATIVE_ERROR
        assert abs(got[1] - math.exp(-SKIP_LOG_RATIO)) < MAX_RELATIVE_ERROR * math.exp(-SKIP_LOG_RATIO)
        assert np.all(got[2:] == 0.0)

# elscli's exactness rule (a weight may be left out only when below e^-40 of the running maximum) is tested
# on what the machines return: test_machines.test_weights_within_e40_of_the_maximum_are_never_left_out and
# test_patch_tree.test_tree_never_prunes_weights_within_e40_of_the_maximum.
