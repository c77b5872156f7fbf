"""A branch-free, vectorisable ``exp`` for the non-positive arguments of a stable softmax.

Numba's ``math.exp`` compiles to a scalar libm call (there is no SVML here), which would dominate the
fused kernels.  For ``y`` in ``[-SKIP_LOG_RATIO, 0]`` we use ``exp(y) = exp(y / 2^7) ^ (2^7)``: the inner
argument lies in ``[-0.5, 0]``; a degree-12 Taylor polynomial around -0.25 is accurate to ~1e-16 relative
there, and seven squarings amplify that to ~2e-14 — far inside elscli's exactness budget (1e-6).  Arguments
below ``-SKIP_LOG_RATIO`` give exactly 0 (each such weight is < e^-64 of the running maximum).
Every operation is a multiply-add or a select, so LLVM vectorises loops that call it.
"""
import math

from numba import njit

from .config import FASTMATH, SKIP_LOG_RATIO

_SQUARINGS = 7
_INV_SCALE = 1.0 / 128.0
_CENTRE = -0.25
_EXP_CENTRE = math.exp(_CENTRE)
# Taylor coefficients of exp(c + d) = exp(c) * sum d^k / k!
_C = [_EXP_CENTRE / math.factorial(k) for k in range(13)]
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12 = _C
_LOW = -SKIP_LOG_RATIO


@njit(inline="always", fastmath=FASTMATH)
def exp_nonpositive(y):
    """exp(y) for y <= 0 (relative error < 1e-13); exactly 0.0 for y < -SKIP_LOG_RATIO."""
    z = (y if y > _LOW else _LOW) * _INV_SCALE
    d = z - _CENTRE
    p = C12
    p = p * d + C11
    p = p * d + C10
    p = p * d + C9
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
