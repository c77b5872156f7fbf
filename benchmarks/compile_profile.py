"""Where the first run's time goes: run one elscli command line in this process and report, on stderr at
exit, Numba's compilations (each kernel compiled rather than loaded from the cache, its specialisations and
the seconds spent) against the command's wall time.

    python benchmarks/compile_profile.py sample -n 4 -o run.h5 --png grid.png --force

Run it on a fresh checkout (empty ``__pycache__``) for the cold figures, then again for the warm ones (no
compilation at all when every kernel is cached).  Nested compilations (a kernel compiling the kernels it
calls) are counted once, in the outermost.  ``benchmarks/first_run.sh`` does the whole procedure.
"""
from __future__ import annotations

import atexit
import sys
import time
from collections import defaultdict

from numba.core import event

_stack = []
_top = defaultdict(float)          # outermost compilations: name -> seconds
_sigs = defaultdict(set)          # every compilation: name -> signatures
_t0 = time.perf_counter()


class _Listener(event.Listener):
    def on_start(self, ev):
        disp = ev.data["dispatcher"]
        name = f"{disp.py_func.__module__}.{disp.py_func.__qualname__}"
        _sigs[name].add(str(ev.data["args"]))
        _stack.append((name, time.perf_counter()))

    def on_end(self, ev):
        name, t = _stack.pop()
        if not _stack:
            _top[name] += time.perf_counter() - t


def _report() -> None:
    wall = time.perf_counter() - _t0
    total = sum(_top.values())
    print(f"compile_profile: wall {wall:.1f} s, Numba compilation {total:.1f} s ({100 * total / wall:.0f}%), "
          f"{sum(len(s) for s in _sigs.values())} specialisations of {len(_sigs)} functions", file=sys.stderr)
    for name, sec in sorted(_top.items(), key=lambda kv: -kv[1]):
        print(f"compile_profile:   {sec:7.1f} s  {name}  ({len(_sigs[name])} signature(s))", file=sys.stderr)
    for name in sorted(_sigs):
        if name not in _top and len(_sigs[name]) > 1:
            print(f"compile_profile:      nested  {name}  ({len(_sigs[name])} signatures)", file=sys.stderr)


if __name__ == "__main__":
    event.register("numba:compile", _Listener())
    atexit.register(_report)
    from elscli.cli import main

    sys.argv = ["elscli"] + sys.argv[1:]
    main(sys.argv[1:])
