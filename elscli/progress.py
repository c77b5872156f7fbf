"""Progress reporting for long commands: a rich bar on a terminal, plain periodic lines in batch logs.

>>> with Progress(total=200, description="sample", unit="step", group=(20, "samples")) as bar:
...     for _ in range(200):
...         bar.advance()

On a terminal (the stream is a TTY) this shows a rich progress bar; otherwise (a Slurm log, a pipe) it
writes one plain line every ``interval`` seconds (:data:`DEFAULT_INTERVAL`, 10, unless given; the CLI gives
``$ELSCLI_PROGRESS_INTERVAL``: :func:`elscli.cli.environment.progress_interval`) and one at the end, e.g.
``sample: 3/10 samples, 60/200 steps (30%), 0.42 samples/s, ETA 17s``.  ``quiet=True`` silences both.
Everything goes to stderr, never stdout.  Time spent compiling the kernels on a first run (``compiling``,
e.g. :class:`elscli.kernels.compilation.CompileWatch`) is left out of the rate and the ETA.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, List, Optional, TextIO, Tuple

#: Called (without arguments) when a progress display starts, i.e. when the long work of a command begins
#: after its inputs were checked: the CLI shows the warnings it held back until then (see
#: :func:`elscli.cli.output.warnings_to_stderr`).
START_LISTENERS: List[Callable[[], None]] = []

#: Seconds between two plain progress lines when no ``interval`` is given.
DEFAULT_INTERVAL = 10.0


def _fmt_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


class Progress:
    """Context manager counting ``total`` units of work; call :meth:`advance` as work completes.

    ``group=(k, "samples")`` additionally reports whole groups of ``k`` units (e.g. steps per sample).
    ``interval`` (seconds between plain lines; None: :data:`DEFAULT_INTERVAL`, 10).  ``stream``
    defaults to stderr; ``quiet`` prints nothing; ``force_plain`` never uses the rich bar.  Never raises
    for its own reasons.  ``compiling()`` returns the seconds spent so far compiling kernels rather than
    working on the units; they are left out of the rate and the ETA, and the final line says how many there
    were.
    """

    def __init__(self, total: int, description: str = "", quiet: bool = False, unit: str = "it", *,
                 group: Optional[Tuple[int, str]] = None, stream: Optional[TextIO] = None,
                 interval: Optional[float] = None, force_plain: bool = False,
                 compiling: Optional[Callable[[], float]] = None) -> None:
        self.total = max(int(total), 0)
        self.description = description
        self.quiet = quiet
        self.unit = unit
        self.units = unit if unit.endswith("s") else unit + "s"  # "step" -> "steps", "sample-steps" stays
        self.group = group
        self.stream = stream if stream is not None else sys.stderr
        self.interval = DEFAULT_INTERVAL if interval is None else float(interval)
        self.compiling = compiling
        self.completed = 0
        self._start = 0.0
        self._last_line = 0.0
        self._rich = None
        self._task = None
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._use_rich = (not quiet) and tty and not force_plain

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> "Progress":
        for listener in list(START_LISTENERS):
            listener()
        self._start = self._last_line = time.monotonic()
        if self._use_rich:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn)

            self._rich = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn(self.units), TextColumn("{task.fields[extra]}"),
                                      TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                                      console=Console(file=self.stream), transient=False)
            self._rich.__enter__()
            self._task = self._rich.add_task(self.description, total=self.total, extra=self._group_text(),
                                             eta=self._eta_text())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None
        elif not self.quiet and self.completed > 0:
            self._line(final=True)

    # -- updates ---------------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done (and redraw the bar, or print a plain line when ``interval`` s passed)."""
        self.completed += n
        if self.quiet:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=n, extra=self._group_text(), eta=self._eta_text())
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._line()

    def log(self, message: str) -> None:
        """A message that does not break the bar."""
        if self.quiet:
            return
        if self._rich is not None:
            self._rich.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)

    # -- formatting ------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the block was entered (0 before)."""
        return time.monotonic() - self._start if self._start else 0.0

    @property
    def compiling_seconds(self) -> float:
        """Seconds of :attr:`elapsed` spent compiling (``compiling``)."""
        return min(max(float(self.compiling()), 0.0), self.elapsed) if self.compiling is not None else 0.0

    @property
    def working(self) -> float:
        """Seconds of work on the units: :attr:`elapsed` less :attr:`compiling_seconds`."""
        return self.elapsed - self.compiling_seconds

    def _eta_text(self) -> str:
        working = self.working
        if not self.completed or working <= 0:
            return "ETA ?"
        return f"ETA {_fmt_duration((self.total - self.completed) * working / self.completed)}"

    def _group_text(self) -> str:
        if not self.group:
            return ""
        k, name = self.group
        return f"({self.completed // k}/{self.total // k} {name})"

    def status_line(self, final: bool = False) -> str:
        """The plain progress line: groups and units done, percentage, rate and ETA (``final``: total time;
        the rate and ETA leave compile time out)."""
        elapsed = self.working
        parts = []
        if self.group:
            k, name = self.group
            parts.append(f"{self.completed // k}/{self.total // k} {name}")
        pct = 100.0 * self.completed / self.total if self.total else 100.0
        parts.append(f"{self.completed}/{self.total} {self.units} ({pct:.0f}%)")
        if elapsed > 0 and self.completed:
            if self.group:
                k, name = self.group
                rate = self.completed / k / elapsed
                parts.append(f"{rate:.3g} {name}/s" if rate >= 0.1 else f"{1 / rate:.3g} s per {name.rstrip('s')}")
            else:
                parts.append(f"{self.completed / elapsed:.3g} {self.units}/s")
            if final:
                parts.append(f"in {_fmt_duration(self.elapsed)}")
                if self.compiling_seconds >= 0.5:
                    parts.append(f"{_fmt_duration(self.compiling_seconds)} of it compiling kernels")
            else:
                remaining = (self.total - self.completed) * elapsed / self.completed
                parts.append(f"ETA {_fmt_duration(remaining)}")
        head = f"{self.description}: " if self.description else ""
        return head + ", ".join(parts)

    def _line(self, final: bool = False) -> None:
        print(self.status_line(final), file=self.stream, flush=True)
