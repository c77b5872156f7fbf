"""HDF5 plumbing shared by every elscli file type: standard root attributes, safe opening.

Every elscli HDF5 file carries root attributes ``format`` (e.g. ``"elscli.bank"``), ``schema_version``,
``elscli_version`` and ``params`` (JSON).  Files are written through :mod:`elscli.outputs` (claimed, written
under a temporary name in the destination directory, renamed into place when complete), so a file that
exists is whole; ``atomic_output``, ``claim_output``, ``check_output_path`` and ``temp_path_for`` are
re-exported here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import h5py
import numpy as np

from . import __version__
from .errors import ElscliError, reason
from .outputs import atomic_output, check_output_path, claim_output, temp_path_for  # noqa: F401 (re-exported)


def write_root_attrs(f: h5py.File, fmt: str, schema_version: int, params: Optional[Dict[str, Any]] = None,
                     **extra: Any) -> None:
    """Write the standard root attributes of an elscli file, then ``extra`` ones.

    Parameters
    ----------
    f : h5py.File
        Open for writing.
    fmt : str
        The ``format`` attribute, e.g. ``"elscli.bank"``.
    schema_version : int
        The file type's schema version.
    params : dict, optional
        The command's parameters, stored as sorted JSON in ``params`` (values JSON cannot hold are stored
        with ``str``).
    **extra
        More root attributes, stored as given (h5py's conversion rules).
    """
    f.attrs["format"] = fmt
    f.attrs["schema_version"] = int(schema_version)
    f.attrs["elscli_version"] = __version__
    f.attrs["params"] = json.dumps(params or {}, sort_keys=True, default=str)
    for k, v in extra.items():
        f.attrs[k] = v


#: h5py ``locking=`` values tried in turn when reading: first none (files are immutable once renamed into
#: place, and filesystems without lock support, NFS and Lustre, then work), then the others, because HDF5
#: refuses to open a file a second time in one process with other locking flags than the first open's.
_READ_LOCKINGS = (False, None, True, "best-effort")


def _open_error(path: Path, exc: BaseException) -> ElscliError:
    """What an HDF5 open failure means, in one line — never "corrupt" for a file that is merely busy."""
    msg = str(exc).splitlines()[0] if str(exc) else reason(exc)
    if "errno = 13" in msg or "Permission denied" in msg:
        return ElscliError(f"{str(path)!r} is not readable (permission denied)")
    if "unable to lock file" in msg:
        return ElscliError(f"{str(path)!r} is locked by another process that is writing it; wait for that process "
                           f"to finish (HDF5: {msg})")
    if "file signature not found" in msg:
        return ElscliError(f"{str(path)!r} is not a readable HDF5 file (no HDF5 signature: corrupt, truncated or "
                           f"another format)")
    return ElscliError(f"{str(path)!r} is not a readable HDF5 file (corrupt or truncated?): {msg}")


def open_h5(path: os.PathLike | str, mode: str = "r", expected_format: Optional[str] = None) -> h5py.File:
    """Open an elscli HDF5 file, turning a missing, corrupt, foreign or busy file into a one-line ElscliError.

    Reading (``mode="r"``) takes no HDF5 file lock, and works when the same process already has the file
    open for reading (an ``h5py.File`` with any ``locking=``); a file this process has open for writing is
    refused as such (elscli reads only finished files), never called corrupt.

    Returns the open ``h5py.File`` (the caller closes it; it is a context manager).  Raises ElscliError when
    the file does not exist (mode ``"r"``), is unreadable, busy, not HDF5, or (``expected_format``) has
    another root ``format`` attribute.
    """
    path = Path(path)
    if mode == "r" and not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    if mode != "r":
        try:
            f = h5py.File(path, mode)
        except (OSError, ValueError) as exc:
            raise _open_error(path, exc) from None
    else:
        f = None
        for locking in _READ_LOCKINGS:
            try:
                f = h5py.File(path, "r", locking=locking)
                break
            except TypeError:  # h5py without the locking keyword
                try:
                    f = h5py.File(path, "r")
                    break
                except (OSError, ValueError) as exc:
                    raise _open_error(path, exc) from None
            except (OSError, ValueError) as exc:
                if "locking" in str(exc) and "flag" in str(exc):   # open here already, with other flags
                    continue
                raise _open_error(path, exc) from None
        if f is None:
            raise ElscliError(f"{str(path)!r} is open elsewhere in this process with HDF5 file-locking settings "
                              f"that cannot be matched; close it there first")
        if f.id.get_intent() & h5py.h5f.ACC_RDWR:   # the open we joined is a writer's
            f.close()
            raise ElscliError(f"{str(path)!r} is open for writing elsewhere in this process (an h5py.File in mode "
                              f"'r+', 'a' or 'w'); close it there first: elscli reads only finished files")
    if expected_format is not None:
        fmt = file_format(f)
        if fmt != expected_format:
            f.close()
            raise ElscliError(f"{str(path)!r} is not an {expected_format} file (format: {fmt or 'none'})")
    return f


def decode_attr(value: Any) -> Any:
    """An HDF5 attribute value as plain Python: the one decoder of attributes in elscli.

    ``bytes`` (fixed-length HDF5 strings) become ``str`` (UTF-8), NumPy scalars become Python scalars
    (``np.int64`` -> ``int``, ``np.bool_`` -> ``bool``, ...); arrays and everything else are returned as
    they are.
    """
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def attr_str(obj: Any, name: str, default: str = "") -> str:
    """Attribute ``name`` of an HDF5 object (file, group, dataset) as ``str``; ``default`` when absent."""
    value = obj.attrs.get(name)
    return default if value is None else str(decode_attr(value))


def read_attrs(obj: Any) -> Dict[str, Any]:
    """Every attribute of an HDF5 object, decoded with :func:`decode_attr`."""
    return {k: decode_attr(v) for k, v in obj.attrs.items()}


def file_format(f: h5py.File) -> Optional[str]:
    """The root ``format`` attribute of an open file (e.g. ``"elscli.run"``), or None when it has none."""
    value = f.attrs.get("format")
    return None if value is None else str(decode_attr(value))


def read_params(f: h5py.File) -> Dict[str, Any]:
    """The root ``params`` attribute of an open file, parsed from JSON; ``{}`` when absent or not JSON."""
    try:
        return json.loads(attr_str(f, "params", "{}"))
    except json.JSONDecodeError:
        return {}
