"""HDF5 plumbing shared by every elscli file type: atomic writes, standard root attributes, safe opening.

Every elscli HDF5 file carries root attributes ``format`` (e.g. ``"elscli.bank"``), ``schema_version``,
``elscli_version`` and ``params`` (JSON).  Files are written under a temporary name in the destination
directory and renamed into place when complete, so a file that exists is whole.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import h5py

from . import __version__
from .errors import ElscliError


def check_output_path(path: os.PathLike | str, force: bool = False, *, allow_existing: bool = False) -> Path:
    """Validate an output path before any work is done: its directory must exist and be writable, and an
    existing file is refused unless ``force`` (or ``allow_existing``, e.g. for ``--resume``)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ElscliError(f"output directory {str(parent)!r} does not exist (for {str(path)!r})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ElscliError(f"output directory {str(parent)!r} is not writable (for {str(path)!r})")
    if path.is_dir():
        raise ElscliError(f"output {str(path)!r} is a directory")
    if path.exists() and not (force or allow_existing):
        raise ElscliError(f"output {str(path)!r} exists; pass --force to overwrite")
    return path


def temp_path_for(path: os.PathLike | str) -> Path:
    """A unique temporary name beside ``path`` (same filesystem, so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_output(path: os.PathLike | str, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``; on any error remove it.

    >>> with atomic_output("bank.h5") as tmp:
    ...     write_everything(tmp)
    """
    path = check_output_path(path, force)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_root_attrs(f: h5py.File, fmt: str, schema_version: int, params: Optional[Dict[str, Any]] = None,
                     **extra: Any) -> None:
    f.attrs["format"] = fmt
    f.attrs["schema_version"] = int(schema_version)
    f.attrs["elscli_version"] = __version__
    f.attrs["params"] = json.dumps(params or {}, sort_keys=True, default=str)
    for k, v in extra.items():
        f.attrs[k] = v


def open_h5(path: os.PathLike | str, mode: str = "r", expected_format: Optional[str] = None) -> h5py.File:
    """Open an elscli HDF5 file, turning a missing, corrupt or foreign file into a one-line ElscliError."""
    path = Path(path)
    if mode == "r" and not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    try:
        if mode == "r":
            # Files are immutable once renamed into place, so readers need no HDF5 file lock; skipping it
            # lets many array tasks read one file on filesystems without lock support (NFS, Lustre).
            try:
                f = h5py.File(path, mode, locking=False)
            except TypeError:  # h5py without the locking keyword
                f = h5py.File(path, mode)
        else:
            f = h5py.File(path, mode)
    except (OSError, ValueError) as exc:
        raise ElscliError(f"{str(path)!r} is not a readable HDF5 file (corrupt or truncated?): "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if expected_format is not None:
        fmt = file_format(f)
        if fmt != expected_format:
            f.close()
            raise ElscliError(f"{str(path)!r} is not an {expected_format} file (format: {fmt or 'none'})")
    return f


def file_format(f: h5py.File) -> Optional[str]:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    return None if fmt is None else str(fmt)


def read_params(f: h5py.File) -> Dict[str, Any]:
    raw = f.attrs.get("params", "{}")
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {}
