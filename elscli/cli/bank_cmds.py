"""``elscli build-bank`` and ``elscli info``.

Data (the summary, or JSON with ``--json``) goes to stdout; notes and progress go to stderr.  The helpers
:func:`emit` and :func:`describe_file` are reusable by other command modules.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Dict, Optional

import typer


from . import app, command_line


class SourceFormat(str, Enum):
    idx = "idx"
    cifar = "cifar"
    folder = "folder"
    edm = "edm"
    npy = "npy"
    npz = "npz"
    bank = "bank"


class ValueRange(str, Enum):
    m11 = "-1,1"
    z1 = "0,1"
    z255 = "0,255"


class Layout(str, Enum):
    nchw = "nchw"
    nhwc = "nhwc"


# ------------------------------------------------------------------------------------------ output helpers
def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (bytes, bytearray)):
        return o.decode(errors="replace")
    return str(o)


def _fmt_value(v: Any, width: int = 100) -> str:
    if isinstance(v, dict):
        s = ", ".join(f"{k}: {_fmt_value(x, width)}" for k, x in v.items() if x is not None)
    elif isinstance(v, (list, tuple)):
        s = "×".join(map(str, v)) if v and all(isinstance(x, int) for x in v) and len(v) <= 4 else \
            json.dumps(v, default=_json_default)
    elif isinstance(v, float):
        s = f"{v:.6g}"
    else:
        s = str(v)
    return s if len(s) <= width else s[: width - 1] + "…"


def emit(data: Dict[str, Any], as_json: bool, title: str = "") -> None:
    """Print a result: JSON (``as_json``) or a rich two-column table (plain text when not a terminal)."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False)
    table = Table(title=title or None, show_header=False, box=None, pad_edge=False)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in data.items():
        if isinstance(v, dict) and k in ("source", "params") and v:
            table.add_row(k, "")
            for k2, v2 in v.items():
                if not (k2 == "warnings" and "warnings" in data):   # shown in full below
                    table.add_row(f"  {k2}", _fmt_value(v2))
        elif k == "warnings" and isinstance(v, list):
            for i, w in enumerate(v):                               # whole, one row each: they give advice
                table.add_row(k if i == 0 else "", str(w))
        else:
            table.add_row(k, _fmt_value(v))
    console.print(table)


def note(msg: str) -> None:
    print(f"elscli: {msg}", file=sys.stderr)


@contextlib.contextmanager
def warnings_to_stderr():
    """Each :class:`elscli.errors.ElscliWarning` raised inside, as one ``elscli: warning:`` line on stderr."""
    import warnings

    from ..errors import ElscliWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ElscliWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, ElscliWarning):
                    note(f"warning: {w.message}")
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


# ------------------------------------------------------------------------------------------ info
def describe_generic(path: str) -> Dict[str, Any]:
    """Root attributes and dataset shapes of any HDF5 file."""
    import h5py

    from ..errors import ElscliError
    from ..h5io import file_format, open_h5, read_attrs

    with open_h5(path) as f:
        try:
            attrs = read_attrs(f)
            datasets: Dict[str, Any] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    datasets[name] = f"{'×'.join(map(str, obj.shape)) or 'scalar'} {obj.dtype}"

            f.visititems(visit)
        except (OSError, KeyError, ValueError) as exc:
            raise ElscliError(f"{path!r} is corrupt or truncated ({str(exc).splitlines()[0] if str(exc) else exc})") \
                from None
        return {"path": str(path), "format": file_format(f) or "unknown", "attrs": attrs, "datasets": datasets}


def describe_file(path: str) -> Dict[str, Any]:
    """Describe any elscli HDF5 file by its root ``format`` attribute (bank, run, scan, or generic)."""
    import importlib

    from ..errors import ElscliError
    from ..h5io import file_format, open_h5

    p = Path(path)
    if not p.exists():
        raise ElscliError(f"{path!r} does not exist")
    if p.is_dir():
        raise ElscliError(f"{path!r} is a directory; info describes an elscli file")
    with open_h5(p) as f:
        fmt = file_format(f)
    handlers = {"elscli.bank": ("elscli.bank", "describe_bank"),
                "elscli.run": ("elscli.runs", "describe_run"),
                "elscli.scan": ("elscli.analysis.scan", "describe_scan")}
    if fmt in handlers:
        mod, fn = handlers[fmt]
        try:
            func = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError):
            func = None
        if func is not None:
            try:
                return func(str(p))
            except ElscliError:
                raise
            except (OSError, KeyError) as exc:
                raise ElscliError(f"{path!r} is corrupt or truncated "
                                  f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return describe_generic(str(p))


@app.command("info")
def info_cmd(
    file: Annotated[str, typer.Argument(help="An elscli file: bank, run or scan (HDF5).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Banks: read every pixel, check the fletcher32 "
                                                          "checksums and the content hash.")] = False,
) -> None:
    """Describe an elscli file: what it holds, shapes, label histogram, provenance, content hash.

    Examples:

      elscli info bank.h5

      elscli info bank.h5 --verify

      elscli info bank.h5 --json | python -c "import json,sys; print(json.load(sys.stdin)['n_images'])"
    """
    data = describe_file(file)
    if verify and data.get("format") == "elscli.bank":
        from ..bank import Bank

        Bank.open(file)  # raises ElscliError on any checksum or hash failure
        data["verified"] = True
    emit(data, as_json, title=f"{data.get('format', 'file')}: {file}")


# ------------------------------------------------------------------------------------------ build-bank
@app.command("build-bank")
def build_bank_cmd(
    source: Annotated[str, typer.Argument(help="Training set: IDX dir/file, CIFAR dir/batch/.tar.gz, image folder, "
                                                "EDM dataset_tool folder/.zip, .npy/.npz, or an elscli bank.",
                                           show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Bank file to write (HDF5).", show_default=False)],
    fmt: Annotated[Optional[SourceFormat], typer.Option("--format", "-f", help="Force a reader (default: detect).",
                                                        case_sensitive=False)] = None,
    size: Annotated[int, typer.Option("--size", min=0, help="Resize to S×S with Pillow BILINEAR on the 8-bit image "
                                                              "(0 keeps the native size).")] = 32,
    grayscale: Annotated[Optional[bool], typer.Option("--grayscale/--rgb",
                                                      help="Convert to grey (ITU-R 601 luma) or to RGB "
                                                           "(default: keep the source's channels).",
                                                      show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Keep at most N images (after --classes).")] = None,
    classes: Annotated[Optional[str], typer.Option("--classes", help="Keep only these labels, e.g. 0,3,7 "
                                                                     "(folder class names work too).")] = None,
    subset_seed: Annotated[Optional[int], typer.Option("--subset-seed", help="With --limit: a seeded random "
                                                       "subset (kept in source order) instead of the first N.")] = None,
    dedup: Annotated[bool, typer.Option("--dedup", help="Drop identical images (after resizing), keep the first.")] = False,
    value_range: Annotated[Optional[ValueRange], typer.Option("--value-range", help="Value range of float "
                                                              ".npy/.npz arrays (default -1,1).")] = None,
    layout: Annotated[Optional[Layout], typer.Option("--layout", help="Array layout of .npy/.npz images "
                                                     "(default: from the axis of size 1 or 3).",
                                                     case_sensitive=False)] = None,
    coarse: Annotated[bool, typer.Option("--coarse", help="CIFAR-100: use the 20 coarse labels.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build a bank (HDF5) from a training set.

    Examples:

      elscli build-bank sample_data/mnist-1k -o bank.h5

      elscli build-bank cifar-10-python.tar.gz -o cifar.h5 --classes 3 --limit 1000 --subset-seed 0

      elscli build-bank photos/ -o tiles.h5 --size 0 --grayscale --dedup

      elscli build-bank bank.h5 -o sevens.h5 --classes 7 --size 0
    """
    from ..bank import build_bank, describe_bank
    from ..errors import ElscliError
    from ..outputs import claim_output

    if not Path(source).exists():
        raise ElscliError(f"{source!r} does not exist")
    t0 = time.perf_counter()
    color = None if grayscale is None else ("grayscale" if grayscale else "rgb")
    params: Dict[str, Any] = {
        "command": "build-bank", "source": source, "format": fmt.value if fmt else None, "size": size,
        "color": color, "limit": limit, "classes": classes, "subset_seed": subset_seed, "dedup": dedup,
        "value_range": value_range.value if value_range else None, "layout": layout.value if layout else None,
        "coarse": coarse, "argv": command_line(),
    }
    # The output is claimed before any work (a concurrent writer of it is refused) and until it is in place.
    with claim_output(output, force) as out:
        with warnings_to_stderr():
            bank, stats = build_bank(source, fmt.value if fmt else None, size=size, color=color, limit=limit,
                                     classes=classes, subset_seed=subset_seed, dedup=dedup,
                                     value_range=value_range.value if value_range else None,
                                     layout=layout.value if layout else None, coarse=coarse, progress=True)
        if dedup:
            note(f"--dedup dropped {stats['duplicates_dropped']} duplicate image(s)")
        bank.save(out, force=force, params=params)
    summary = describe_bank(str(out))
    summary.pop("params", None)
    summary["duplicates_dropped"] = stats["duplicates_dropped"]
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    note(f"wrote {len(bank)} images {'×'.join(map(str, bank.shape))} to {str(out)!r}")
    emit(summary, as_json, title=f"bank {out}")
