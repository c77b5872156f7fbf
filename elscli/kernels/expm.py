"""A branch-free, vectorisable ``exp`` for the non-positive arguments of a stable softmax.

Numba's ``math.exp`` compiles to a scalar libm call (there is no SVML here), which would dominate the
fused kernels.  We use the classic range reduction ``exp(y) = 2^n exp(r)`` with ``n = round(y log2(e))``
and ``r = y - n ln 2`` in ``[-ln2/2, ln2/2]``: ``exp(r)`` is a degree-9 polynomial (the power form of the
Chebyshev interpolant of ``exp`` on that interval, relative error ~2e-14), and the factor ``2^n`` is added
straight to the result's exponent bits.  ``n`` comes from the "shifter" trick: ``t = y log2(e) + 1.5 *
2^52`` rounds ``y log2(e)`` to an integer held in the low bits of ``t``, and ``n = t - 1.5 * 2^52``.  Those
two steps and ``r`` are emitted without fast-math flags (:func:`_shifted`, :func:`_reduced`), since
reassociation would cancel the shifter (or distribute ``(t - shifter) ln 2``) and wreck the result.
``tests/test_expm.py`` checks the bound against ``math.exp``, inlined under the kernels' flags too.

Two entry points:

- :func:`exp_clamped` — the hot loops' exp: ``exp(y)`` for ``y`` in ``[LOG_RATIO_FLOOR, 0]``; callers
  raise their argument to ``LOG_RATIO_FLOOR`` first (one ``max``).  A weight below e^-600 of the maximum
  is then counted as e^-600 ~ 3e-261 instead of its true value or 0: far below the exactness rule's e^-40,
  and every product with it (a centre value, a log ratio) is still a normal float, so no slow subnormal
  arithmetic.  Per 4 lanes this is 15 vector operations (the old Taylor polynomial with seven squarings
  took 21, the floor-based reduction with a final select 17).
- :func:`exp_nonpositive` — ``exp(y)`` for ``y <= 0``, exactly 0.0 below ``-SKIP_LOG_RATIO`` and for
  ``-inf`` and NaN (a select on top of the above), for the rescaling factors of the online softmax.
"""
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
import numpy as np

from .config import SKIP_LOG_RATIO

#: Bound on the relative error of :func:`exp_clamped` and :func:`exp_nonpositive` (checked by the tests).
MAX_RELATIVE_ERROR = 1e-13

#: Lower end of :func:`exp_clamped`'s domain: callers raise log weight ratios below it to it.
LOG_RATIO_FLOOR = -600.0

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_SHIFTER = 6755399441055744.0          # 1.5 * 2^52: t = x + _SHIFTER holds round(x) in its low bits
_LOW = -SKIP_LOG_RATIO
# exp(r) on |r| <= ln(2)/2 * 1.0005: Chebyshev interpolant of degree 9, in power form (numpy.polynomial)
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9 = (
    1.0000000000000138, 1.0000000000000049, 0.49999999999421746, 0.16666666666560023, 0.04166666704919801,
    0.008333333387894595, 0.001388880043818126, 0.00019841164387962308, 2.4885056773470768e-05,
    2.7643354376394777e-06)


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bits of a float64, as an int64 (a bitcast, which LLVM vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, x):
    """The float64 whose IEEE-754 bits are the int64 x."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _shifted(typingctx, y):
    """``t = y log2(e) + 1.5 * 2^52`` (one fma, no fast-math flags): ``t - 1.5 * 2^52`` is ``y log2(e)``
    rounded to the nearest integer ``n``, and the low 12 bits of ``t``'s IEEE-754 bits are ``n``."""
    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        return builder.fma(args[0], ir.Constant(d, _LOG2E), ir.Constant(d, _SHIFTER))
    return types.float64(types.float64), codegen


@intrinsic
def _reduced(typingctx, y, t):
    """``r = y - n ln 2`` with ``n = t - 1.5 * 2^52`` (exact), no fast-math flags."""
    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        n = builder.fsub(args[1], ir.Constant(d, _SHIFTER))
        return builder.fma(builder.fneg(n), ir.Constant(d, _LN2), args[0])
    return types.float64(types.float64, types.float64), codegen


@njit(inline="always")
def exp_clamped(y):
    """exp(y) for ``LOG_RATIO_FLOOR <= y <= 0`` (relative error < MAX_RELATIVE_ERROR).  Outside that
    domain the result is garbage: callers write ``exp_clamped(max(y, LOG_RATIO_FLOOR))``."""
    t = _shifted(y)                              # n = round(y log2 e) in [-866, 0]
    r = _reduced(y, t)
    p = C9
    p = p * r + C8
    p = p * r + C7
    p = p * r + C6
    p = p * r + C5
    p = p * r + C4
    p = p * r + C3
    p = p * r + C2
    p = p * r + C1
    p = p * r + C0
    # p is in [0.70, 1.42], so adding n to its exponent field gives the normal float p * 2^n
    return _from_bits(_bits(p) + (_bits(t) << 52))


@njit(inline="always")
def exp_nonpositive(y):
    """exp(y) for y <= 0 (relative error < MAX_RELATIVE_ERROR); exactly 0.0 for y < -SKIP_LOG_RATIO, -inf
    and NaN."""
    e = exp_clamped(y if y > _LOW else _LOW)
    return e if y >= _LOW else 0.0
