"""The Numba thread count for one call, set and restored (pynndescent's pattern).

Results never depend on it (the kernels split work by the data alone and merge in a fixed order); only the
wall-clock time does.  The environment (``NUMBA_NUM_THREADS``, Slurm's CPU count) is read at the CLI edge,
never here.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from ..errors import ElscliError


@contextlib.contextmanager
def numba_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the body with ``threads`` Numba threads (capped at the count Numba started with), restoring the
    previous setting afterwards; ``None`` changes nothing.  Raises ElscliError for ``threads`` < 1."""
    if threads is None:
        yield
        return
    import numba

    threads = int(threads)
    if threads < 1:
        raise ElscliError(f"threads must be at least 1, got {threads}")
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
