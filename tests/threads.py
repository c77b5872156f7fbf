"""Two Numba threads, really: thread-count tests compare 1 thread with 2 and must not compare 1 with 1."""
import numba
import pytest


def require_two_threads() -> None:
    """Skip the calling test, with the reason, when Numba was started with fewer than two threads
    (NUMBA_NUM_THREADS is fixed when Numba is imported; tests/conftest.py asks for 2 unless the environment
    set it)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip(f"Numba runs at most NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS} thread in this process: "
                    f"a 1-vs-2-thread comparison would compare 1 thread with 1")
