"""Compile-time settings shared by every Numba kernel.

``FASTMATH`` deliberately excludes ``nnan`` and ``ninf``: the kernels use ``-inf`` as the "no patch seen
yet" sentinel of the running maximum, and callers check inputs with ``isfinite``; letting LLVM assume
neither can occur would silently break both.  ``reassoc``/``contract`` let LLVM vectorise the reductions;
the compiled code is the same whatever the thread count, so results stay bitwise reproducible.
"""
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: Training images per parallel work item.  The blocks, and the fixed order in which their partial
#: softmax sums are merged, are a function of the bank alone, never of the thread count or batch size:
#: that is what makes results bitwise identical for any ``NUMBA_NUM_THREADS``.
IMAGES_PER_BLOCK = 64

#: Weights below ``exp(-SKIP_LOG_RATIO)`` of the running maximum are set to zero without computing them.
#: Each such weight is provably below e^-40 of the running maximum (the exactness rule of elscli),
#: so the result is still exact.
SKIP_LOG_RATIO = 64.0
