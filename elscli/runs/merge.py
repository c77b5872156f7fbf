"""Merging the shards of one run into one run file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from .. import __version__
from ..errors import ElscliError
from ..outputs import claim_output, refuse_same_files
from ..shards import WHOLE, format_shard
from .file import IDENTITY_KEYS, Run, identity
from .plan import default_command_line

#: Datasets that describe the grid, the same in every shard (the others have one row per sample).
_GRID = ("times", "patch_sizes")


def merge_runs(paths: Sequence[Union[str, os.PathLike]], output: Union[str, os.PathLike], *,
               allow_missing: bool = False, force: bool = False, command_line: Optional[str] = None) -> Run:
    """Merge the shards of one run into one file, rows sorted by sample id, and return it.

    The shards must share every parameter of :data:`elscli.runs.file.IDENTITY_KEYS` (machine, schedule,
    bank hash, seeds, grid, ...), their datasets and their grid, hold disjoint sample ids and together every
    sample, finished — unless ``allow_missing``, when the merged file holds only the finished samples.
    Since a sample depends only on its id and the run's parameters, the merge is bitwise the single-process
    run.  The file is written atomically (:meth:`Run.save`).

    Raises
    ------
    ElscliError
        No input, an input given twice or equal to the output, files of different runs, overlapping
        samples, missing or unfinished samples (without ``allow_missing``), an output that exists
        without ``force``, or an output another process is writing (:mod:`elscli.outputs`).
    """
    if not paths:
        raise ElscliError("merge needs at least one run file")
    with claim_output(output, force) as out:   # a concurrent writer of the output is refused (elscli.outputs)
        return _merge(paths, out, allow_missing=allow_missing, force=force, command_line=command_line)


def _merge(paths, out: Path, *, allow_missing: bool, force: bool, command_line: Optional[str]) -> Run:
    refuse_same_files([("", p) for p in paths], [("-o", out)])
    resolved = {Path(p).resolve() for p in paths}
    if len(resolved) != len(paths):
        raise ElscliError("a run file is given twice")
    runs = [Run.open(p) for p in paths]
    first = runs[0]
    ident = identity(first.params)
    for p, r in zip(paths[1:], runs[1:]):
        other = identity(r.params)
        diff = [k for k in IDENTITY_KEYS if ident.get(k) != other.get(k)]
        if diff:
            k = diff[0]
            raise ElscliError(f"{str(p)!r} is not a shard of the same run as {str(paths[0])!r} "
                              f"({k}: {other.get(k)!r} vs {ident.get(k)!r})")
        if set(r.arrays) != set(first.arrays):
            raise ElscliError(f"{str(p)!r} holds other datasets than {str(paths[0])!r}")
    all_ids = np.concatenate([r.sample_ids for r in runs])
    uniq, counts = np.unique(all_ids, return_counts=True)
    if np.any(counts > 1):
        raise ElscliError(f"sample {int(uniq[counts > 1][0])} appears in more than one shard (the same shard twice?)")
    done_ids = np.concatenate([r.sample_ids[r.done] for r in runs])
    total = int(ident.get("num_samples") or 0)
    if ident.get("seeds_hash") is None:          # fresh seeds: the ids are 0 .. total-1
        missing_ids = np.setdiff1d(np.arange(total), done_ids)
        n_missing = len(missing_ids)
    else:                                        # seeds from a file: ids are the file's, count them
        missing_ids = np.setdiff1d(all_ids, done_ids)
        n_missing = total - len(done_ids)
    if n_missing and not allow_missing:
        shown = ", ".join(str(int(i)) for i in missing_ids[:8]) + (" ..." if len(missing_ids) > 8 else "")
        raise ElscliError(f"{n_missing} of {total} samples are missing or unfinished"
                          + (f" ({shown})" if shown else "")
                          + "; merge the other shards too, --resume the unfinished ones, or pass --allow-missing")
    arrays: Dict[str, np.ndarray] = {}
    for k in first.arrays:
        if k in _GRID:
            arrays[k] = first.arrays[k]
            for p, r in zip(paths[1:], runs[1:]):
                if not np.array_equal(r.arrays[k], first.arrays[k]):
                    raise ElscliError(f"{str(p)!r} has other {k} than {str(paths[0])!r}")
        else:
            arrays[k] = np.concatenate([r.arrays[k][r.done] for r in runs])
    order = np.argsort(arrays["sample_ids"], kind="stable")
    for k in arrays:
        if k not in _GRID:
            arrays[k] = arrays[k][order]
    params = dict(first.params)
    params["shard"] = format_shard(WHOLE)
    params["merged_from"] = [str(p) for p in paths]
    attrs = dict(first.attrs)
    attrs["params"] = json.dumps(params, sort_keys=True)
    attrs["shard"] = format_shard(WHOLE)
    attrs["elscli_version"] = __version__
    attrs["command_line"] = command_line if command_line is not None else default_command_line()
    run = Run(arrays, attrs)
    run.save(out, force=force)
    return run
