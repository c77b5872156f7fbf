"""The Numba thread count for one call, set and restored (pynndescent's pattern).

Results never depend on it (the kernels split work by the data alone and merge in a fixed order); only the
wall-clock time does.  The environment (Slurm's CPU count) is read at the CLI edge, never here.  Numba reads
``NUMBA_NUM_THREADS`` itself, once, when it is imported, and sizes its thread pool by it; :func:`thread_limit`
asks Numba for that pool size (its runtime state, not the environment: ``numba.set_num_threads`` refuses
more); with :mod:`.lanes` (the CPU features Numba compiles for) it is one of the two documented places where
elscli looks at Numba's configuration (``tests/test_imports.py`` checks that there are no others).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from ..errors import ElscliError


def thread_limit() -> int:
    """The most threads a Numba parallel region can use in this process: the size of Numba's thread pool
    (``numba.config.NUMBA_NUM_THREADS``, fixed when Numba was imported)."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


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
    threads = min(threads, thread_limit())
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
