"""The command-line edge: a thin Typer layer over the Python API.

Each group of commands lives in its own module and registers itself on :data:`app`.  Domain errors
(:class:`elscli.errors.ElscliError`) become one line on stderr and exit code 1; usage errors exit 2;
``ELSCLI_DEBUG=1`` shows tracebacks.
"""
from __future__ import annotations

import contextlib
import os
import sys

import typer

app = typer.Typer(
    name="elscli",
    help="Analytic score machines (IS, LS, ELS, bbELS) of Kamb & Ganguli's analytic theory of creativity "
         "in convolutional diffusion models: build patch banks, sample, compare with networks, calibrate locality.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Command modules register their commands on `app` when imported.
_COMMAND_MODULES = ("bank_cmds", "sample_cmds", "analysis_cmds", "consistency_cmds")


def _load_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command group not written yet
            if exc.name != f"{__name__}.{name}":
                raise


_ARGV: list = []
_CLAIMS = contextlib.ExitStack()   # the outputs this command has claimed, released when it ends


def claim(path, force: bool = False, **kwargs):
    """Claim an output file for the rest of the command (:func:`elscli.outputs.claim_output`): a concurrent
    writer of it is refused, and an existing file is refused unless ``force``.  Returns the path."""
    from ..outputs import claim_output

    return _CLAIMS.enter_context(claim_output(path, force, **kwargs))


def command_line() -> list:
    """The arguments of the current invocation (for provenance in output files)."""
    return list(_ARGV)


def main(argv=None) -> None:
    """Console-script entry point."""
    from ..errors import ElscliError

    _ARGV[:] = [str(a) for a in (sys.argv[1:] if argv is None else argv)]

    _load_commands()
    debug = os.environ.get("ELSCLI_DEBUG", "") not in ("", "0")
    try:
        try:
            app(args=argv, standalone_mode=True)
        finally:
            _CLAIMS.close()
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
    except Exception as exc:  # an unexpected failure: still one line unless debugging
        if debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"elscli: error: {type(exc).__name__}: {msg} (set ELSCLI_DEBUG=1 for a traceback)", file=sys.stderr)
        sys.exit(1)
