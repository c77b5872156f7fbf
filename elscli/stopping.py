"""Stopping long work cleanly on SIGINT/SIGTERM (Ctrl-C, ``scancel``, a Slurm time limit).

:class:`StopRequest` replaces the two signals' handlers for a block of work (from the main thread only):
the first signal only records its number (``signum``), and the work loop stops at its next boundary and
leaves its files whole; a second signal raises ``KeyboardInterrupt`` at once — unless a file write is in
progress (``writing``), in which case it is raised right after (``pending_interrupt``).  ``elscli sample``
(:mod:`elscli.runs.execute`) and ``elscli locality-scan`` (:mod:`elscli.analysis.calibrate`) use it.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable, Dict, Optional


class StopRequest:
    """SIGINT/SIGTERM -> stop at the next boundary; a second signal interrupts at once (outside file writes).

    ``on_first(signum)``, if set, is called on the first signal (e.g. to tell the user)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.writing = False
        self.pending_interrupt = False
        self._old: Dict[int, Any] = {}
        self.on_first: Optional[Callable[[int], None]] = None

    def _handler(self, signum, frame) -> None:
        if self.signum is not None:
            if self.writing:  # never tear a write; raise as soon as it is done
                self.pending_interrupt = True
                return
            raise KeyboardInterrupt
        self.signum = signum
        if self.on_first is not None:
            self.on_first(signum)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
