"""The command-line edge: a thin Typer layer over the Python API.

=======================  =========================================================================
:mod:`.app`               the Typer application
:mod:`.environment`       the process environment (Slurm array tasks, CPU counts), read only here
:mod:`.output`            printing results: JSON, tables, CSV, notes and warnings, provenance
:mod:`.bank_cmds`         ``build-bank``, ``info``
:mod:`.sample_cmds`       ``sample``, ``merge``, ``export``
:mod:`.analysis_cmds`     ``compare``, ``mosaic``, ``locality-scan``
:mod:`.consistency_cmds`  ``consistency``
=======================  =========================================================================

Each command parses its options, calls one library function and prints the result.  Domain errors
(:class:`elscli.errors.ElscliError`) become one line on stderr and exit code 1; usage errors exit 2; an
unexpected exception (a bug) one line ``elscli: internal error in CMD: …`` and exit code 3; ``ELSCLI_DEBUG=1``
shows tracebacks.
"""
from __future__ import annotations

import os
import sys

from .app import app
from .output import set_argv

# The command modules register their commands on `app` when imported (in this order, as `--help` lists them).
from . import bank_cmds  # noqa: E402,F401  isort: skip
from . import sample_cmds  # noqa: E402,F401  isort: skip
from . import analysis_cmds  # noqa: E402,F401  isort: skip
from . import consistency_cmds  # noqa: E402,F401  isort: skip

__all__ = ["app", "main"]


def _is_click(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is Click's exception class ``name`` (or a subclass): Typer either vendors Click or
    depends on it, so the class is matched by name."""
    return any(c.__name__ == name for c in type(exc).__mro__)


def _usage_error(exc: BaseException) -> int:
    """Show a usage error (bad option syntax, unknown command...): Click's usage and message on a terminal,
    one line ``elscli CMD: error: MESSAGE (see 'elscli CMD --help')`` otherwise (batch logs, pipes).
    Returns its exit code (2)."""
    code = int(getattr(exc, "exit_code", 2))
    _plain_option_message(exc)
    if _is_click(exc, "NoArgsIsHelpError") or sys.stderr.isatty():
        exc.show()
        return code
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "elscli"
    message = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    if _is_click(exc, "BadParameter") and getattr(param, "param_type_name", "") == "option" and param.opts:
        message = f"{max(param.opts, key=len)} {exc.message}"      # "--limit must be at least 1, got '-5'"
    print(f"{command}: error: {message} (see '{command} --help')", file=sys.stderr)
    return code


def _given_value(opts) -> "str | None":
    """The value given on the command line to the option named by any of ``opts`` (the last one given)."""
    from .output import argv

    args, value = argv(), None
    for i, a in enumerate(args):
        if a == "--":
            break
        for o in opts:
            if a == o and i + 1 < len(args):
                value = args[i + 1]
            elif o.startswith("--") and a.startswith(o + "="):
                value = a[len(o) + 1:]
    return value


def _plain_option_message(exc: BaseException) -> None:
    """Reword a bad option value's message (Click's ``BadParameter``; Typer's come from pydantic: "Input
    should be greater than or equal to 1", "Value error, …") in elscli's words — the option, what it allows,
    and the value given (:func:`elscli.errors.option_words`) — for both the terminal's box and the one line."""
    from ..errors import option_words

    param = getattr(exc, "param", None)
    if not _is_click(exc, "BadParameter") or param is None or not getattr(exc, "message", None):
        return
    opts = list(getattr(param, "opts", []) or [])
    words = option_words(exc.message)
    value = _given_value(opts) if getattr(param, "param_type_name", "") == "option" else None
    exc.message = words + (f", got {value!r}" if value is not None else "")
    longest = max(opts, key=len) if opts else None
    if longest and getattr(param, "param_type_name", "") == "option":
        exc.param_hint = repr(longest)


INT64_MAX = 2 ** 63 - 1
"""The largest value of an integer option: every one is stored or computed as a 64-bit integer."""


def _integer_options(command: str) -> dict:
    """The integer options of ``command`` (from its signature: ``int`` or ``Optional[int]`` parameters), each
    name such as ``-n`` mapped to its longest name (``--num-samples``)."""
    import typing

    out = {}
    for c in app.registered_commands:
        if (c.name or c.callback.__name__.replace("_", "-")) != command:
            continue
        for hint in typing.get_type_hints(c.callback, include_extras=True).values():
            meta = getattr(hint, "__metadata__", ())
            if not meta:
                continue
            base = typing.get_args(hint)[0]
            if base is not int and int not in typing.get_args(base):
                continue
            info = meta[0]
            decls = [d for d in (getattr(info, "default", None), *(getattr(info, "param_decls", None) or ()))
                     if isinstance(d, str) and d.startswith("-")]
            for d in decls:
                out[d] = max(decls, key=len)
    return out


def _refuse_huge_integers(args) -> None:
    """Refuse, in elscli's words (ElscliError), an integer option whose value does not fit 64 bits: the
    libraries under elscli would fail converting it ("Python int too large to convert to C long")."""
    from ..errors import ElscliError

    names = [a for a in args if not a.startswith("-")]
    opts = _integer_options(names[0]) if names else {}
    for i, a in enumerate(args):
        opt, value = (a.split("=", 1) if a.startswith("--") and "=" in a
                      else (a, args[i + 1] if i + 1 < len(args) else None))
        if opt not in opts or value is None:
            continue
        try:
            n = int(value)
        except ValueError:
            continue                                  # the parser says it in its own (reworded) way
        if abs(n) > INT64_MAX:
            raise ElscliError(f"{opts[opt]} must be at most {INT64_MAX} in size (a 64-bit integer), got {value!r}")


def _array_too_large(exc: BaseException) -> "str | None":
    """The one line for NumPy refusing an array larger than memory or any address space ("Unable to allocate
    71.1 PiB for an array…", "array is too big", "Maximum allowed size exceeded"): asked for by a count or size
    given far too large (-n, --steps…) — the input, not a bug.  None for any other exception (a plain
    ``MemoryError`` stays an internal error, "out of memory": it may be elscli's own doing)."""
    import re

    text = str(exc)
    if any(c.__qualname__ == "_ArrayMemoryError" for c in type(exc).__mro__):   # its __name__ is MemoryError
        m = re.search(r"allocate (.+?) for an array", text)
        size = f" ({m.group(1)} for one array)" if m else ""
    elif isinstance(exc, ValueError) and ("Maximum allowed size exceeded" in text or "array is too big" in text):
        size = " (an array beyond any address space)"
    else:
        return None
    return (f"elscli: error: out of memory{size}: is a count or size given, such as -n, --steps, --size or "
            f"--scale, far too large?")


EXIT_INTERNAL = 3
"""Exit code of an unexpected internal failure (a bug of elscli, not of the input): distinct from 1 (bad input,
an :class:`~elscli.errors.ElscliError`) and 2 (usage)."""


def _command_name() -> str:
    """The sub-command of the current invocation (``sample``, ``locality-scan``...), or ``elscli`` when none
    was given: the first argument that names a registered command."""
    from .output import argv

    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    for group in getattr(app, "registered_groups", []):
        if group.name:
            names.add(group.name)
    for a in argv():
        if a in names:
            return a
    return "elscli"


def _internal_error_line(exc: BaseException) -> str:
    """The one line shown for an unexpected exception: the command and the failure in words — never the
    exception's class name (see :func:`elscli.errors.reason`) — and how to report it."""
    from ..errors import reason

    return (f"elscli: internal error in {_command_name()}: {reason(exc)} "
            f"(a bug of elscli; please report it with the output of ELSCLI_DEBUG=1)")


def main(argv=None) -> None:
    """Console-script entry point: run the command line ``argv`` (default ``sys.argv[1:]``) and exit.

    Exit codes: 0 success; 1 an :class:`~elscli.errors.ElscliError` (bad input: one line on stderr naming the
    user's path); 2 a usage error (one line when stderr is not a terminal); 3 an unexpected internal failure
    (one line ``elscli: internal error in CMD: …`` without Python exception names; ``ELSCLI_DEBUG=1`` for the
    traceback); 130 Ctrl-C; a command's own code otherwise (``sample`` stopped by a signal: 128 + its number).
    """
    from .. import machines
    from ..errors import ElscliError
    from ..outputs import forget_output_dirs, remove_created_dirs
    from .environment import tree_cache_dir

    set_argv(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("ELSCLI_DEBUG", "") not in ("", "0")
    try:
        machines.set_tree_cache(tree_cache_dir())
        try:
            _refuse_huge_integers(list(sys.argv[1:] if argv is None else argv))
            rv = app(args=argv, standalone_mode=False)
        except BaseException:
            remove_created_dirs()           # a failed command leaves no directory it created
            raise
        finally:
            machines.set_tree_cache(None)
        forget_output_dirs()
    except SystemExit:
        raise
    except ElscliError as exc:
        if debug:
            raise
        print(f"elscli: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("elscli: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _is_click(exc, "UsageError"):
            sys.exit(_usage_error(exc))
        if _is_click(exc, "Abort"):       # Click's Ctrl-C / EOF at a prompt
            print("elscli: interrupted", file=sys.stderr)
            sys.exit(130)
        if _is_click(exc, "ClickException"):
            if debug:
                raise
            print(f"elscli: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
            sys.exit(int(getattr(exc, "exit_code", 1)))
        too_large = None if debug else _array_too_large(exc)
        if too_large is not None:          # the input asked for arrays that cannot exist: not a bug of elscli
            print(too_large, file=sys.stderr)
            sys.exit(1)
        if debug:                          # an unexpected failure: still one line unless debugging
            raise
        print(_internal_error_line(exc), file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
    if isinstance(rv, int) and not isinstance(rv, bool):
        sys.exit(rv)
