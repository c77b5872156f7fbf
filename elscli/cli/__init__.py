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
(:class:`elscli.errors.ElscliError`) become one line on stderr and exit code 1; usage errors exit 2;
``ELSCLI_DEBUG=1`` shows tracebacks.
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


def main(argv=None) -> None:
    """Console-script entry point: run the command line ``argv`` (default ``sys.argv[1:]``) and exit."""
    from .. import machines
    from ..errors import ElscliError
    from .environment import tree_cache_dir

    set_argv(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("ELSCLI_DEBUG", "") not in ("", "0")
    try:
        machines.set_tree_cache(tree_cache_dir())
        try:
            app(args=argv, standalone_mode=True)
        finally:
            machines.set_tree_cache(None)
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
