"""A branch-free, vectorisable ``exp`` for the non-positive arguments of a stable softmax.

Numba's ``math.exp`` compiles to a scalar libm call (there is no SVML here), which would dominate the
fused kernels.  For ``y`` in ``[-SKIP_LOG_RATIO, 0]`` we use ``exp(y) = exp(y / 2^7) ^ (2^7)``: the inner
argument lies in ``[-SKIP_LOG_RATIO / 128, 0]`` = [-0.3125, 0]; a degree-9 Taylor polynomial around its
midpoint is accurate to ~3e-15 relative there, and seven squarings amplify that (and the rounding) to
< 1e-12 — far inside elscli's exactness budget (1e-6); ``tests/test_expm.py`` checks the bound against
``math.exp``.  Arguments below ``-SKIP_LOG_RATIO`` give exactly 0 (each such weight is < e^-40 of the
running maximum, the exactness rule's bound).  Every operation is a multiply-add or a select, so LLVM
vectorises loops that call it.
"""
import math

from numba import njit

from .config import FASTMATH, SKIP_LOG_RATIO

_SQUARINGS = 7
_INV_SCALE = 1.0 / 2 ** _SQUARINGS
_CENTRE = -0.5 * SKIP_LOG_RATIO * _INV_SCALE
_EXP_CENTRE = math.exp(_CENTRE)
# Taylor coefficients of exp(c + d) = exp(c) * sum d^k / k!
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9 = [_EXP_CENTRE / math.factorial(k) for k in range(10)]
_LOW = -SKIP_LOG_RATIO

#: Bound on the relative error of :func:`exp_nonpositive` on [-SKIP_LOG_RATIO, 0] (checked by the tests).
MAX_RELATIVE_ERROR = 1e-12


@njit(inline="always", fastmath=FASTMATH)
def exp_nonpositive(y):
    """exp(y) for y <= 0 (relative error < MAX_RELATIVE_ERROR); exactly 0.0 for y < -SKIP_LOG_RATIO."""
    z = (y if y > _LOW else _LOW) * _INV_SCALE
    d = z - _CENTRE
    p = C9
    p = p * d + C8
    p = p * d + C7
    p = p * d + C6
    p = p * d + C5
    p = p * d + C4
    p = p * d + C3
    p = p * d + C2
    p = p * d + C1
    p = p * d + C0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p if y >= _LOW else 0.0
