"""Printing results at the CLI edge: data to stdout (JSON, tables, CSV), notes and warnings to stderr, and the
command line recorded as provenance in output files."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

from ..errors import ElscliError

_ARGV: List[str] = []


def set_argv(argv: Iterable[Any]) -> None:
    """Record the arguments of the current invocation (the entry point calls it)."""
    _ARGV[:] = [str(a) for a in argv]


def argv() -> List[str]:
    """The arguments of the current invocation (``sys.argv[1:]`` when :func:`set_argv` was not called)."""
    return list(_ARGV) or list(sys.argv[1:])


def command_line(drop: Sequence[str] = ()) -> str:
    """``elscli ARGS`` quoted for a shell (without the arguments in ``drop``): the provenance of a file."""
    return "elscli " + " ".join(shlex.quote(a) for a in argv() if a not in drop)


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)``: NumPy scalars and arrays as Python numbers and lists, bytes decoded,
    anything else as ``str``."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (bytes, bytearray)):
        return o.decode(errors="replace")
    return str(o)


def print_json(payload: Any, *, sort_keys: bool = True) -> None:
    """Print ``payload`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=sort_keys, default=json_default) + "\n")


def print_csv(rows: List[dict]) -> None:
    """Print rows (dicts with the same keys) as CSV on stdout; floats with 6 significant digits."""
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    sys.stdout.write(buf.getvalue())


def table(title: str, columns: List[str], rows: List[List[str]]) -> None:
    """Print a table on stdout (rich; first column left-aligned, the others right-aligned)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):      # a long cell wraps or folds, never cut with "…"
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        t.add_row(*(Text(c) if isinstance(c, str) else c for c in r))    # cells are text, never markup
    Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None).print(t)


def _fmt_value(v: Any, width: Optional[int] = 100, key: str = "") -> str:
    """One value of a key/value table: shapes (keys ending in ``shape``) as ``1×32×32``, other lists as
    ``3, 5, 9``, dicts as ``k: v, ...``, floats to 6 significant digits; cut at ``width`` characters (None:
    never cut)."""
    if isinstance(v, dict):
        s = ", ".join(f"{k}: {_fmt_value(x, width, str(k))}" for k, x in v.items() if x is not None)
    elif isinstance(v, (list, tuple)):
        if key.endswith("shape") and v and all(isinstance(x, int) for x in v):
            s = "×".join(map(str, v))
        elif all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in v):
            s = ", ".join(_fmt_value(x, width) for x in v)
        else:
            s = json.dumps(v, default=json_default)
    elif isinstance(v, float):
        s = f"{v:.6g}"
    else:
        s = str(v)
    return s if width is None or len(s) <= width else s[: width - 1] + "…"


def emit(data: Dict[str, Any], as_json: bool, title: str = "", *, stream=None) -> None:
    """Print a result: JSON (``as_json``, keys in their order, on stdout) or a two-column key/value table on
    ``stream`` (default stdout; a command whose result is a file shows it on stderr: stdout carries only
    data); the ``source`` and ``params`` dicts are shown one entry per line, ``warnings`` whole, one per row.
    Off a terminal no value is cut short."""
    if as_json:
        print_json(data, sort_keys=False)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text          # values are text, never markup: "[sample_id, seed]" must show as is

    stream = sys.stdout if stream is None else stream
    tty = stream.isatty()
    # On a terminal long values are cut at 100 characters and the rest folded to its width; off a terminal
    # (a pipe, a batch log) nothing is cut and nothing wrapped: each value whole on its row.
    width = 100 if tty else None
    console = Console(file=stream, soft_wrap=False, width=None if tty else 1_000_000)
    t = Table(title=title or None, show_header=False, box=None, pad_edge=False)
    t.add_column("key", style="bold cyan", no_wrap=True)
    t.add_column("value", overflow="fold")
    for k, v in data.items():
        if isinstance(v, dict) and k in ("source", "params") and v:
            t.add_row(k, "")
            for k2, v2 in v.items():
                if not (k2 == "warnings" and "warnings" in data):   # shown in full below
                    t.add_row(f"  {k2}", Text(_fmt_value(v2, width, key=str(k2))))
        elif k in ("warnings", "verified") and isinstance(v, list):
            for i, w in enumerate(v):       # whole, one row each: advice, and the checks info --verify made
                t.add_row(k if i == 0 else "", Text(str(w)))
        else:
            t.add_row(k, Text(_fmt_value(v, width, key=str(k))))
    console.print(t)


def note(msg: str) -> None:
    """A note on stderr: ``elscli: MSG``."""
    print(f"elscli: {msg}", file=sys.stderr)


def warn(msg: str) -> None:
    """A warning on stderr: ``elscli: warning: MSG``."""
    print(f"elscli: warning: {msg}", file=sys.stderr)


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Each :class:`elscli.errors.ElscliWarning` raised inside, as one ``elscli: warning:`` line on stderr
    (other warnings are shown as Python shows them).

    The lines are held back until the command's long work starts (a :class:`elscli.progress.Progress`
    display begins: the inputs have been checked) or the block ends without error.  A command that fails
    shows its one error line only: a warning about input the user must change anyway would be a second line.
    """
    import warnings

    from ..errors import ElscliWarning
    from ..progress import START_LISTENERS

    shown = [0]

    def flush() -> None:
        for w in caught[shown[0]:]:
            if issubclass(w.category, ElscliWarning):
                warn(str(w.message))
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        shown[0] = len(caught)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ElscliWarning)
        START_LISTENERS.append(flush)
        try:
            yield
        except BaseException:
            del caught[shown[0]:]      # the error line alone
            raise
        finally:
            START_LISTENERS.remove(flush)
            flush()


def output_dir(path: Optional[Path], option: str = "--plot") -> Optional[Path]:
    """An output directory given by ``option`` (None stays None): checked now, created when the first file
    is written into it (:func:`elscli.outputs.declare_output_dir`), so a command that fails before leaves no
    empty directory behind.

    Raises ElscliError when it is a file, or its parent does not exist or is not writable.
    """
    if path is None:
        return None
    from ..outputs import declare_output_dir

    return declare_output_dir(path, option)
