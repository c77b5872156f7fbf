"""Locality calibration, step 2: merge the partial scans (shards) of one reference into one scan."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ElscliError
from ..shards import WHOLE, format_shard
from .scan import Scan


def merge(scans: Sequence[Scan]) -> Scan:
    """Combine partial scans (shards) of one reference into one, rows sorted by sample index.

    The scans must be finished (an interrupted scan is resumed, not merged), share machine, scanned
    parameter, metric, states, noise schedule, bank, reference seeds, reference size, candidates and time
    grid, and hold disjoint samples.  The result's ``shard`` is ``"0/1"`` when it covers every reference sample,
    else ``"partial"``.  Raises ElscliError for no scans, scans that do not belong together, or overlaps.
    """
    if not scans:
        raise ElscliError("no scan files to merge")
    for s in scans:
        if not s.finished:
            raise ElscliError(f"cannot merge an unfinished scan ({int(s.done.sum())} of {s.done.size} similarities "
                              f"computed{', shard ' + s.shard if s.shard else ''}): finish it first with "
                              "elscli locality-scan ... --resume")
    first = scans[0]
    for s in scans[1:]:
        for attr in ("machine", "parameter", "metric", "states", "noise_schedule", "bank_hash", "reference_seeds_hash",
                     "num_reference_samples"):
            if getattr(s, attr) != getattr(first, attr):
                raise ElscliError(f"cannot merge scans with different {attr}: {getattr(first, attr)!r} vs "
                                  f"{getattr(s, attr)!r}")
        if not np.array_equal(s.candidates, first.candidates):
            raise ElscliError("cannot merge scans with different candidates")
        if s.times.shape != first.times.shape or not np.allclose(s.times, first.times):
            raise ElscliError("cannot merge scans with different time grids")
    idx = np.concatenate([s.sample_index for s in scans])
    if len(np.unique(idx)) != len(idx):
        raise ElscliError("the scans overlap: some samples appear in more than one")
    order = np.argsort(idx, kind="stable")
    sim = np.concatenate([s.similarity for s in scans])[order]
    shard = format_shard(WHOLE) if len(idx) == first.num_reference_samples else "partial"
    return Scan(sample_index=idx[order], candidates=first.candidates, times=first.times, similarity=sim,
                machine=first.machine, metric=first.metric, bank_hash=first.bank_hash, reference=first.reference,
                reference_seeds_hash=first.reference_seeds_hash, num_reference_samples=first.num_reference_samples,
                shard=shard, noise_schedule=first.noise_schedule, params=dict(first.params),
                parameter=first.parameter, states=first.states)
