"""The bundled sample data (1,000 MNIST digits in ``sample_data/mnist-1k``) and the default bank built from it.

``elscli sample`` without ``--bank`` uses a bank of the bundled digits, built on first use into a
cache directory (``~/.cache/elscli`` unless given; the CLI gives ``$ELSCLI_CACHE``) and reused afterwards.
:func:`open_bank` turns whatever a caller gives as a bank (a :class:`~elscli.bank.Bank`, a path, or None for
this default) into a Bank.  This module reads no environment variables: the CLI maps ``ELSCLI_CACHE`` and
``ELSCLI_SAMPLE_DATA`` to the ``cache`` and ``sample_data`` arguments (:mod:`elscli.cli.environment`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional, Union

PathLike = Union[str, os.PathLike]

from .bank import Bank, build_bank
from .errors import ElscliError, reason
from .outputs import claim_output


def sample_data_dir(override: Optional[PathLike] = None) -> Path:
    """The repository's ``sample_data/`` directory (editable install or a checkout), or ``override`` when it
    is a directory (the CLI passes ``$ELSCLI_SAMPLE_DATA``).

    Looks at ``override``, then beside the elscli package, then in the current directory.  Raises
    ElscliError when none is found."""
    cands = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    cands += [here.parent / "sample_data", here / "sample_data", Path.cwd() / "sample_data"]
    for c in cands:
        if c.is_dir():
            return c
    raise ElscliError("cannot find sample_data/ (looked beside the elscli package and in the current "
                      "directory; set ELSCLI_SAMPLE_DATA)")


def cache_dir(cache: Optional[PathLike] = None) -> Path:
    """Where elscli caches derived files: ``cache`` when given (the CLI passes ``$ELSCLI_CACHE``), else
    ``~/.cache/elscli`` (not created here)."""
    return Path(cache) if cache else Path.home() / ".cache" / "elscli"


def usable_cache_dir(path: Path) -> Path:
    """Create the cache directory ``path`` (:func:`cache_dir`) if needed and check that elscli can write there.

    Returns ``path``.  Raises ElscliError, in words naming the path and ``ELSCLI_CACHE``, when it (or a
    parent) is a file, cannot be created, or is not writable.
    """
    where = f"the cache directory {str(path)!r} (ELSCLI_CACHE, default ~/.cache/elscli)"
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        what = "it" if blocker == path else f"{str(blocker)!r}"
        raise ElscliError(f"{where} cannot be used: {what} is a file, not a directory; set ELSCLI_CACHE to "
                          f"a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ElscliError(f"{where} cannot be created: {reason(exc)}; set ELSCLI_CACHE to a writable "
                          f"directory") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ElscliError(f"{where} is not writable; set ELSCLI_CACHE to a writable directory")
    return path


def default_bank_path(cache: Optional[PathLike] = None, sample_data: Optional[PathLike] = None) -> Path:
    """The bank of the bundled ``sample_data/mnist-1k``, built on first use into :func:`cache_dir` (``cache``;
    None: ``~/.cache/elscli``); ``sample_data``: where the bundled data are (None: :func:`sample_data_dir`'s
    search).

    The build claims the file (:mod:`elscli.outputs`), writes a temporary file and renames it into place, so
    concurrent array tasks are safe: one builds, the others wait for it (up to 10 minutes) and use it.  The
    name carries 12 hex digits of a SHA-256 of the source files' names and bytes, so a changed
    ``sample_data`` gives a new bank.

    Raises ElscliError when the sample data are missing or the cache directory cannot be created.
    """
    src = Path(sample_data_dir(sample_data)) / "mnist-1k"
    if not src.is_dir():
        raise ElscliError(f"the bundled sample data {str(src)!r} is missing; pass --bank BANK.h5")
    h = hashlib.sha256()
    for p in sorted(src.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    target = cache_dir(cache) / f"sample-mnist-1k-{h.hexdigest()[:12]}.h5"
    if target.exists():
        return target
    usable_cache_dir(target.parent)
    # One task builds it (claimed, temporary name, atomic rename); concurrent tasks wait for it, then use it.
    with claim_output(target, force=True, wait=600.0):
        if not target.exists():
            bank, _stats = build_bank(src)
            bank.save(target, force=True)
    return target


def open_bank(bank: Any = None, *, cache: Optional[PathLike] = None,
              sample_data: Optional[PathLike] = None) -> Bank:
    """A :class:`~elscli.bank.Bank` from a Bank (returned as is), a bank file path, or None (the bundled
    sample bank, :func:`default_bank_path` with ``cache`` and ``sample_data``).

    Raises ElscliError when the file does not exist or cannot be read as a bank.
    """
    if isinstance(bank, Bank):
        return bank
    path = default_bank_path(cache, sample_data) if bank is None else Path(bank)
    if not path.exists():
        raise ElscliError(f"bank {str(path)!r} does not exist")
    try:
        return Bank.open(path)
    except ElscliError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ElscliError(f"bank {str(path)!r} cannot be read (corrupt?): {reason(exc)}") from None
