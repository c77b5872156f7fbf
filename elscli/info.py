"""Describing any elscli file (``elscli info``): dispatch on its root ``format`` attribute to the describer of
its type — bank, run or scan — and list the attributes and datasets of any other HDF5 file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Union

from .errors import ElscliError
from .h5io import file_format, open_h5, read_attrs


def describe_generic(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Root attributes and dataset shapes (``"C×H×W dtype"``) of any HDF5 file.

    Raises ElscliError when it is missing, not HDF5, corrupt or truncated."""
    import h5py

    with open_h5(path) as f:
        try:
            attrs = read_attrs(f)
            datasets: Dict[str, Any] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    datasets[name] = f"{'×'.join(map(str, obj.shape)) or 'scalar'} {obj.dtype}"

            f.visititems(visit)
        except (OSError, KeyError, ValueError) as exc:
            raise ElscliError(f"{str(path)!r} is corrupt or truncated "
                              f"({str(exc).splitlines()[0] if str(exc) else exc})") from None
        return {"path": str(path), "format": file_format(f) or "unknown", "attrs": attrs, "datasets": datasets}


def describe_file(path: Union[str, os.PathLike], *, verify: bool = False) -> Dict[str, Any]:
    """A JSON-ready description of any elscli HDF5 file, by its root ``format`` attribute.

    Banks: :func:`elscli.bank.describe_bank`; runs: :func:`elscli.runs.describe_run`; scans:
    :func:`elscli.analysis.scan.describe_scan`; other HDF5 files: :func:`describe_generic`.  ``verify``
    (banks) reads every pixel, checks the fletcher32 checksums and the content hash, and adds
    ``"verified": True``.

    Raises ElscliError when the path is missing, a directory, not HDF5, corrupt, or fails verification.
    """
    p = Path(path)
    if not p.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    if p.is_dir():
        raise ElscliError(f"{str(path)!r} is a directory; info describes an elscli file")
    with open_h5(p) as f:
        fmt = file_format(f)
    if fmt == "elscli.bank":
        from .bank import describe_bank as describe
    elif fmt == "elscli.run":
        from .runs import describe_run as describe
    elif fmt == "elscli.scan":
        from .analysis.scan import describe_scan as describe
    else:
        return describe_generic(p)
    try:
        data = describe(str(p))
    except ElscliError:
        raise
    except (OSError, KeyError) as exc:
        raise ElscliError(f"{str(path)!r} is corrupt or truncated "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if verify and fmt == "elscli.bank":
        from .bank import Bank

        Bank.open(p)  # raises ElscliError on any checksum or hash failure
        data["verified"] = True
    return data
