"""Shards: splitting the samples of one run (or scan) between independent processes.

Shard ``I`` of ``N`` takes the items at positions ``I, I+N, I+2N, ...`` (striding, as EDM splits work between
ranks), so every item belongs to exactly one shard whatever N, and each item's result depends only on the item
(its seed), never on the shard: shards merge bitwise into the single-process result.  This module knows
nothing of Slurm: the CLI maps array-task variables to a shard (:mod:`elscli.cli.environment`), and a library
call computes what it is asked for — all items unless given a shard.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

from .errors import ElscliError

Shard = Tuple[int, int]
ShardSpec = Union[str, Shard, None]

#: The whole run: shard 0 of 1.
WHOLE: Shard = (0, 1)


def parse_shard(spec: ShardSpec) -> Shard:
    """``"I/N"`` or ``(I, N)`` -> ``(I, N)`` with 0 <= I < N; None or ``""`` -> ``(0, 1)`` (everything).

    Raises
    ------
    ElscliError
        Not of the form I/N with integers, N < 1, or I outside 0..N-1.
    """
    if spec is None or spec == "":
        return WHOLE
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ElscliError(f"a shard is (I, N), got {spec!r}")
        i, n = spec
    else:
        parts = str(spec).split("/")
        if len(parts) != 2:
            raise ElscliError(f"--shard must look like I/N (e.g. 0/4), got {spec!r}")
        try:
            i, n = int(parts[0]), int(parts[1])
        except ValueError:
            raise ElscliError(f"--shard must look like I/N with integers, got {spec!r}") from None
    if n < 1:
        raise ElscliError(f"--shard {i}/{n}: the number of shards must be at least 1")
    if not 0 <= i < n:
        raise ElscliError(f"--shard {i}/{n}: the shard index must lie in 0..{n - 1}")
    return int(i), int(n)


def format_shard(shard: Shard) -> str:
    """``(I, N)`` -> ``"I/N"`` (as recorded in run and scan files)."""
    return f"{int(shard[0])}/{int(shard[1])}"


def shard_output_path(output: Union[str, os.PathLike], shard: Shard) -> Path:
    """The output file of shard I of N.

    ``{shard}`` / ``{shards}`` in the name are replaced by I / N; with N > 1 and no placeholder,
    ``-shardIofN`` (I zero-padded to the width of N-1) is added before the suffix, so that array tasks never
    share a file.  Raises ElscliError for a malformed placeholder.
    """
    text = os.fspath(output)
    i, n = shard
    if "{shard" in text or "{shards" in text:
        try:
            return Path(text.format(shard=i, shards=n))
        except (KeyError, IndexError, ValueError) as exc:
            raise ElscliError(f"-o {text!r}: bad placeholder ({exc}); use {{shard}} and {{shards}}") from None
    if n == 1:
        return Path(text)
    p = Path(text)
    width = len(str(n - 1))
    return p.with_name(f"{p.stem}-shard{i:0{width}d}of{n}{p.suffix}")
