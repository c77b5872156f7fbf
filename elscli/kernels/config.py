"""Compile-time settings shared by every Numba kernel.

``FASTMATH`` deliberately excludes ``nnan`` and ``ninf``: the kernels use ``-inf`` as the "no patch seen
yet" sentinel of the running maximum, and callers check inputs with ``isfinite``; letting LLVM assume
neither can occur would silently break both.  ``reassoc``/``contract`` let LLVM vectorise the reductions;
the compiled code is the same whatever the thread count, so results stay bitwise reproducible.
"""
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


#: At most this many training images per parallel work item (the vector lanes of the kernel).  The
#: blocks, and the fixed order in which their partial softmax sums are merged, are a function of the
#: dictionary's image count alone (see :func:`lanes_per_block`), never of the thread count or batch size:
#: that is what makes results bitwise identical for any ``NUMBA_NUM_THREADS``.
MAX_IMAGES_PER_BLOCK = 512


def lanes_per_block(n_images: int) -> int:
    """Images per block for a dictionary of ``n_images`` images: as even a split into
    ceil(n / MAX_IMAGES_PER_BLOCK) blocks as possible, rounded up to a multiple of 8 lanes."""
    n = max(1, int(n_images))
    blocks = -(-n // MAX_IMAGES_PER_BLOCK)
    per = -(-n // blocks)
    return min(MAX_IMAGES_PER_BLOCK, -(-per // 8) * 8)

#: Weights below ``exp(-SKIP_LOG_RATIO)`` of the running maximum are set to zero without computing them.
#: This is exactly the exactness rule of elscli (each skipped weight provably below e^-40 of the running
#: maximum); the weight so left out is at most (number of patches) * e^-40 ~ 4e-18 per patch, relative.
SKIP_LOG_RATIO = 40.0

#: Relative tolerance under which two log weights count as tied when choosing the dominant patch of a
#: pixel (the first in (image, row, col) order among ties).  Running sums make the log weights of two
#: identical patches differ by rounding (~1e-13 relative); this is far above that and far below any
#: difference that changes a weight noticeably.
TIE_RELATIVE = 1e-9

#: Lanes below e^-SKIP_LOG_RATIO of a pixel's maximum get weight exactly 0.  When at most 1/SPARSE_FRACTION
#: of a block's 8-lane chunks hold any other lane (low noise), only those chunks are gathered and
#: exponentiated; otherwise the whole block is (the result is the same up to summation order).
SPARSE_FRACTION = 2

#: Where at most 1/LIVE_COMPRESS_FRACTION of a block's lanes are within e^-SKIP_LOG_RATIO of the pixel's
#: maximum (and the CPU has vector compress stores, see :mod:`.lanes`), those lanes are compressed before
#: the exp and the others left out.  Compressing costs about a quarter of an exp and its sums per lane.
LIVE_COMPRESS_FRACTION = 2
