"""Watching Numba compile the kernels, so that long commands can say so and keep it out of their rates.

Every kernel is compiled on its first call in a fresh install (``cache=True``: later processes load the
machine code from ``__pycache__``; loading is not compiling).  :class:`CompileWatch` listens to Numba's
``numba:compile`` events (emitted only when a function is compiled, never when it is loaded from the
cache) and keeps the seconds spent in outermost compilations; :class:`elscli.progress.Progress` leaves them
out of its rate and ETA, and the first compilation can be announced on stderr.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

#: What a command says on stderr when the kernels start compiling.
COMPILING_NOTE = ("elscli: compiling the kernels (the first run after installing; later runs load them from "
                  "the cache): this takes a few minutes and is left out of the progress rate and ETA")


class CompileWatch:
    """Seconds Numba spends compiling while the watch is active (a context manager).

    ``on_first()`` is called when the first compilation starts (in the compiling thread, before it
    compiles).  Nested compilations (a kernel compiling the kernels it calls) count once.

    >>> with CompileWatch(on_first=lambda: print("compiling...")) as watch:
    ...     run_kernels()
    >>> watch.seconds, watch.count
    """

    def __init__(self, on_first: Optional[Callable[[], None]] = None) -> None:
        self.on_first = on_first
        self.count = 0                  # outermost compilations finished
        self._done = 0.0                # their seconds
        self._depth = 0
        self._started: Optional[float] = None
        self._lock = threading.Lock()
        self._listener = None
        self._announced = False

    @property
    def seconds(self) -> float:
        """Seconds of compilation so far (including one in progress)."""
        with self._lock:
            running = time.perf_counter() - self._started if self._started is not None else 0.0
            return self._done + running

    @property
    def compiling(self) -> bool:
        """Whether a compilation is in progress."""
        return self._started is not None

    def _start(self) -> None:
        first = False
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._started = time.perf_counter()
                first = not self._announced and self.on_first is not None
                self._announced = True
        if first:
            self.on_first()

    def _end(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._started is not None:
                self._done += time.perf_counter() - self._started
                self._started = None
                self.count += 1

    def __enter__(self) -> "CompileWatch":
        from numba.core import event

        watch = self

        class _Listener(event.Listener):
            def on_start(self, ev) -> None:
                watch._start()

            def on_end(self, ev) -> None:
                watch._end()

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        from numba.core import event

        if self._listener is not None:
            event.unregister("numba:compile", self._listener)
            self._listener = None
