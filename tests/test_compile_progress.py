"""A first run says that the kernels are compiling and keeps compile time out of the rate and the ETA (issue 19,
item 1)."""
from __future__ import annotations

import io
import time

import numpy as np
from numba import njit

from elscli.kernels.compilation import COMPILING_NOTE, CompileWatch
from elscli.progress import Progress


def test_watch_counts_compilations_once_and_announces_the_first():
    announced = []

    @njit
    def inner(x):
        return x + 1.0

    @njit
    def outer(x):                      # compiling outer compiles inner inside it: one outermost compilation
        return inner(x) * 2.0

    with CompileWatch(on_first=lambda: announced.append(1)) as watch:
        assert outer(1.0) == 4.0
        after_first = watch.seconds
        assert outer(2.0) == 6.0       # compiled already: no new compilation
        outer(np.float32(1.0))          # a new specialisation compiles again
    assert announced == [1]
    assert watch.count == 2
    assert 0.0 < after_first <= watch.seconds
    assert not watch.compiling


def test_watch_sees_nothing_outside_it_or_for_compiled_functions():
    @njit
    def f(x):
        return x - 1.0

    f(1.0)
    with CompileWatch() as watch:
        f(3.0)
    assert watch.count == 0 and watch.seconds == 0.0

    @njit
    def g(x):
        return x * 3.0

    g(1.0)                              # compiled after the watch ended: not counted
    assert watch.count == 0


def test_progress_leaves_compile_time_out_of_rate_and_eta():
    out = io.StringIO()
    bar = Progress(20, "sample", unit="step", group=(5, "samples"), stream=out, interval=1e9,
                   compiling=lambda: 60.0)
    with bar:
        bar._start = time.monotonic() - 70.0          # 70 s elapsed, 60 of them compiling
        bar.advance(10)                                # 10 steps in 10 s of work
        line = bar.status_line()
    assert "ETA 10s" in line, line                   # 10 more steps at 1 step/s, not 70 s
    assert "0.2 samples/s" in line, line           # 2 samples in 10 s of work
    final = bar.status_line(final=True)
    assert "1m00s of it compiling kernels" in final and "in 1m10s" in final, final


def test_progress_without_compilation_is_unchanged():
    bar = Progress(20, "sample", unit="step", stream=io.StringIO(), interval=1e9)
    with bar:
        bar._start = time.monotonic() - 10.0
        bar.advance(10)
        assert "ETA 10s" in bar.status_line()
        assert "compiling" not in bar.status_line(final=True)


def test_the_note_says_what_is_happening():
    assert "compiling the kernels" in COMPILING_NOTE and "cache" in COMPILING_NOTE
    assert "\n" not in COMPILING_NOTE
