"""``elscli build-bank`` and ``elscli info``.

``info``'s description goes to stdout (data); ``build-bank``'s result is a file: its summary is a note on
stderr, printed on stdout only as JSON with ``--json``; notes and progress go to stderr.
"""
from __future__ import annotations

import sys
import time
from enum import Enum
from typing import Annotated, Any, Dict, Optional

import typer

from ..errors import ElscliError
from . import environment
from .app import app
from .output import argv, emit, note, warnings_to_stderr


class SourceFormat(str, Enum):
    """``--format`` choices: a reader of :mod:`elscli.readers`, or an elscli bank."""

    idx = "idx"
    cifar = "cifar"
    folder = "folder"
    edm = "edm"
    npy = "npy"
    npz = "npz"
    bank = "bank"


class ValueRange(str, Enum):
    """``--value-range`` choices (:data:`elscli.pixels.VALUE_RANGES`)."""

    m11 = "-1,1"
    z1 = "0,1"
    z255 = "0,255"
    none = "none"


class Layout(str, Enum):
    """``--layout`` choices for arrays."""

    nchw = "nchw"
    nhwc = "nhwc"


@app.command("info", short_help="Describe a bank, run, scan or reference file.")
def info_cmd(
    file: Annotated[str, typer.Argument(metavar="FILE", help="An elscli file (bank, run, scan) or a reference trajectory (NPZ/HDF5).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Banks: read every pixel, check the fletcher32 "
                                                          "checksums and the content hash.")] = False,
) -> None:
    """Describe an elscli file: what it holds, shapes, label histogram, provenance, content hash.

    Examples:

    \b
      elscli info bank.h5
      elscli info bank.h5 --verify
      elscli info bank.h5 --json | python -c "import json,sys; print(json.load(sys.stdin)['n_images'])"
    """
    from ..info import describe_file

    data = describe_file(file, verify=verify)
    emit(data, as_json, title=f"{data.get('format', 'file')}: {file}")


# ------------------------------------------------------------------------------------------ build-bank
@app.command("build-bank", short_help="Build a bank (HDF5) from a training set.")
def build_bank_cmd(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Training set: IDX dir/file, CIFAR dir/batch/.tar.gz, image folder, "
                                                "EDM dataset_tool folder/.zip, .npy/.npz, or an elscli bank.",
                                           show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Bank file to write (HDF5).", show_default=False)],
    fmt: Annotated[Optional[SourceFormat], typer.Option("--format", "-f", help="Force a reader. [default: detected from the source]",
                                                        case_sensitive=False)] = None,
    size: Annotated[int, typer.Option("--size", min=0, help="Resize to S×S with Pillow BILINEAR on the 8-bit image "
                                                              "(0 keeps the native size).")] = 32,
    grayscale: Annotated[bool, typer.Option("--grayscale", help="Convert to grey (ITU-R 601 luma) "
                                            "[default: keep the source's channels]", show_default=False)] = False,
    rgb: Annotated[bool, typer.Option("--rgb", help="Convert to RGB (not with --grayscale) "
                                      "[default: keep the source's channels]", show_default=False)] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Keep at most N images (after --classes).")] = None,
    classes: Annotated[Optional[str], typer.Option("--classes", help="Keep only these labels, e.g. 0,3,7 "
                                                                     "(folder class names work too).")] = None,
    subset_seed: Annotated[Optional[int], typer.Option("--subset-seed", help="With --limit: a seeded random "
                                                       "subset (kept in source order) instead of the first N.")] = None,
    dedup: Annotated[bool, typer.Option("--dedup", help="Drop identical images (after resizing), keep the first.")] = False,
    value_range: Annotated[Optional[ValueRange], typer.Option("--value-range", help="Value range of float "
                                                              ".npy/.npz arrays; none: latents of any channel "
                                                              "count, stored as float32 as they are (no range "
                                                              "check, no 8-bit quantisation). [default: -1,1]")] = None,
    layout: Annotated[Optional[Layout], typer.Option("--layout", help="Array layout of .npy/.npz images "
                                                     "[default: from the axis of size 1 or 3]",
                                                     case_sensitive=False)] = None,
    coarse: Annotated[bool, typer.Option("--coarse", help="CIFAR-100: use the 20 coarse labels.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build a bank (HDF5) from a training set.

    Examples:

    \b
      elscli build-bank sample_data/mnist-1k -o bank.h5
      elscli build-bank cifar-10-python.tar.gz -o cifar.h5 --classes 3 --limit 1000 --subset-seed 0
      elscli build-bank photos/ -o tiles.h5 --size 0 --grayscale --dedup
      elscli build-bank bank.h5 -o sevens.h5 --classes 7 --size 0
      elscli build-bank latents.npy -o latents.h5 --value-range none --size 0   # VAE latents
    """
    from ..bank import build_bank_file, describe_bank
    from ..outputs import file_output

    file_output(output, "-o")
    t0 = time.perf_counter()
    if grayscale and rgb:
        raise ElscliError("give --grayscale or --rgb, not both")
    color = "grayscale" if grayscale else ("rgb" if rgb else None)
    params: Dict[str, Any] = {
        "command": "build-bank", "source": source, "format": fmt.value if fmt else None, "size": size,
        "color": color, "limit": limit, "classes": classes, "subset_seed": subset_seed, "dedup": dedup,
        "value_range": value_range.value if value_range else None, "layout": layout.value if layout else None,
        "coarse": coarse, "argv": argv(),
    }
    with warnings_to_stderr():
        bank, stats = build_bank_file(source, output, fmt.value if fmt else None, force=force, params=params,
                                      size=size, color=color, limit=limit, classes=classes, subset_seed=subset_seed,
                                      dedup=dedup, value_range=params["value_range"], layout=params["layout"],
                                      coarse=coarse, progress=True,
                                      progress_interval=environment.progress_interval())
    if dedup:
        note(f"--dedup dropped {stats['duplicates_dropped']} duplicate image(s)")
    summary = describe_bank(output)
    summary.pop("params", None)
    summary["duplicates_dropped"] = stats["duplicates_dropped"]
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if not as_json:           # the summary of the file written: a note (stdout carries only data, --json)
        emit(summary, False, title=f"bank {output}", stream=sys.stderr)
    note(f"wrote {len(bank)} images {'×'.join(map(str, bank.shape))} to {output!r}")
    if as_json:
        emit(summary, True)
