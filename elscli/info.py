"""Describing any elscli file (``elscli info``): dispatch on its type — bank, run or scan (the root ``format``
attribute), or a network's reference trajectory (NPZ or HDF5) — to the describer and verifier of that type,
and list the attributes and datasets of any other HDF5 file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .errors import ElscliError, reason
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
                              f"({reason(exc)})") from None
        return {"path": str(path), "format": file_format(f) or "unknown", "attrs": attrs, "datasets": datasets}


def describe_file(path: Union[str, os.PathLike], *, verify: bool = False) -> Dict[str, Any]:
    """A JSON-ready description of any elscli file, by its type.

    Banks: :func:`elscli.bank.describe_bank`; runs: :func:`elscli.runs.describe_run`; scans:
    :func:`elscli.analysis.scan.describe_scan`; reference trajectories (NPZ, or HDF5 with ``seeds`` and
    ``times``): :func:`elscli.reference.describe_reference`; other HDF5 files: :func:`describe_generic`.
    ``verify`` reads the whole file and checks it (:func:`verify_file`); the checks made are listed under
    ``"verified"``.

    Raises ElscliError when the path is missing, a directory, neither HDF5 nor NPZ, corrupt, or fails
    verification.
    """
    p = Path(path)
    kind = file_kind(p)
    if kind == "generic":
        data = describe_generic(p)
    else:
        try:
            if kind == "elscli.bank":
                from .bank import describe_bank

                data = describe_bank(str(p))
            elif kind == "elscli.run":
                from .runs import describe_run

                data = describe_run(str(p))
            elif kind == "elscli.scan":
                from .analysis.scan import describe_scan

                data = describe_scan(str(p))
            else:
                from .reference import describe_reference

                data = describe_reference(str(p))
        except ElscliError:
            raise
        except (OSError, KeyError) as exc:
            raise ElscliError(f"{str(path)!r} is corrupt or truncated "
                              f"({reason(exc)})") from None
    if verify:
        data["verified"] = verify_file(p, kind)
    return data


def file_kind(path: Union[str, os.PathLike]) -> str:
    """What a file is: ``"elscli.bank"``, ``"elscli.run"``, ``"elscli.scan"``, ``"reference"`` (a network's
    trajectory, NPZ or HDF5) or ``"generic"`` (another HDF5 file).

    Raises ElscliError when it is missing, a directory, unreadable, or neither HDF5 nor NPZ."""
    p = Path(path)
    if not p.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    if p.is_dir():
        raise ElscliError(f"{str(path)!r} is a directory; info describes an elscli file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except PermissionError:
        raise ElscliError(f"{str(path)!r} is not readable (permission denied)") from None
    if head.startswith(b"\x89HDF\r\n\x1a\n") or p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        with open_h5(p) as f:
            fmt = file_format(f)
            if fmt in ("elscli.bank", "elscli.run", "elscli.scan"):
                return fmt
            if fmt in (None, "", "elscli.reference") and "seeds" in f and "times" in f:
                return "reference"
        return "generic"
    if head.startswith(b"PK") or p.suffix.lower() == ".npz":
        return "reference"
    what = "an empty file" if not head else "neither HDF5 nor NPZ"
    raise ElscliError(f"{str(path)!r} is {what}: info describes elscli banks, runs and scans (HDF5) and "
                      "reference trajectories (NPZ or HDF5)")


def verify_file(path: Union[str, os.PathLike], kind: Optional[str] = None) -> List[str]:
    """Read a whole file and check it; returns the checks made (see :func:`elscli.bank.verify_bank`,
    :func:`elscli.runs.verify.verify_run`, :func:`elscli.analysis.scan.verify_scan`,
    :func:`elscli.reference.verify_reference`; another HDF5 file: every dataset read, which checks its
    checksums where it has them).  Raises ElscliError naming the first failure."""
    kind = kind or file_kind(path)
    if kind == "elscli.bank":
        from .bank import verify_bank

        return verify_bank(path)
    if kind == "elscli.run":
        from .runs.verify import verify_run

        return verify_run(path)
    if kind == "elscli.scan":
        from .analysis.scan import verify_scan

        return verify_scan(path)
    if kind == "reference":
        from .reference import verify_reference

        return verify_reference(path)
    import h5py

    with open_h5(path) as f:
        try:
            f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        except (OSError, ValueError) as exc:
            raise ElscliError(f"{str(path)!r} fails verification: a dataset cannot be read "
                              f"({reason(exc)})") from None
    return ["every dataset read (checksums)"]
