"""Verifying a run file whole (``elscli info --verify``): what a run file's rows must satisfy."""
from __future__ import annotations

import os
from typing import List, Union

import numpy as np

from ..errors import ElscliError
from .file import PROVENANCE_DATASETS, Run
from .plan import initial_noise


def verify_run(path: Union[str, os.PathLike]) -> List[str]:
    """Read every dataset of a run file and check it (``elscli info --verify``); returns the checks made.

    Checked: every dataset readable (the HDF5 checksums, where the file has them); shapes consistent with S
    samples of (C, H, W) over T steps; a descending time grid ending at 0 and odd patch sizes (0 for IS);
    unique sample numbers; each sample's starting noise equal to ``default_rng([i, seed])`` (runs with a root
    seed); finished samples with finite finals, weights on [0, 1] and non-negative entropies; unfinished
    ones with NaN finals.  Raises ElscliError naming the first failure.
    """
    run = Run.open(path, trajectories=True)
    where = f"{str(path)!r} fails verification"
    S = len(run)
    seeds, times, sizes = run.seeds, run.times, run.patch_sizes
    T = len(times) - 1
    shape = tuple(seeds.shape[1:])
    expect = {"done": (S,), "labels": (S,), "seeds": (S,) + shape, "final": (S,) + shape,
              "x": (S, T + 1) + shape, "x0_hat": (S, T) + shape, "patch_sizes": (T,)}
    expect.update({k: (S,) + shape[1:] for k in PROVENANCE_DATASETS})
    for k, want in expect.items():
        if k in run.arrays and tuple(run.arrays[k].shape) != want:
            raise ElscliError(f"{where}: {k!r} has shape {tuple(run.arrays[k].shape)}, expected {want}")
    checks = ["every dataset read (checksums)", f"shapes of {S} samples of {'x'.join(map(str, shape))} over "
                                                 f"{T} steps"]
    if T < 1 or not np.all(np.diff(times) < 0) or times[-1] != 0:
        raise ElscliError(f"{where}: 'times' is not a descending grid ending at 0")
    checks.append("time grid")
    if run.machine in ("is", "ls", "els", "bbels"):
        ok_sizes = np.all(sizes == 0) if run.machine == "is" else np.all((sizes > 0) & (sizes % 2 == 1))
        if not ok_sizes:
            raise ElscliError(f"{where}: patch sizes {sizes.tolist()} are not odd and positive (0 for IS)")
        checks.append("patch sizes")
    if len(np.unique(run.sample_ids)) != S:
        raise ElscliError(f"{where}: sample numbers repeat")
    seed = run.params.get("seed", run.attrs.get("seed"))
    if seed is not None and int(seed) >= 0 and not run.params.get("from_seeds"):
        for row, i in enumerate(run.sample_ids):
            if not np.array_equal(initial_noise(int(i), int(seed), shape)[0].astype(np.float32), seeds[row]):
                raise ElscliError(f"{where}: the starting noise of sample {int(i)} is not default_rng([{int(i)}, "
                                  f"{int(seed)}])'s")
        checks.append(f"starting noise of every sample from its number and root seed {int(seed)}")
    done = np.asarray(run.done, bool)
    fin = run.final
    if not np.all(np.isfinite(fin[done])):
        raise ElscliError(f"{where}: a finished sample's final image holds NaN or infinite values")
    if not np.all(np.isnan(fin[~done])):
        raise ElscliError(f"{where}: an unfinished sample has a final image (expected NaN)")
    checks.append(f"finals of the {int(done.sum())} finished samples finite, the others NaN")
    prov = run.provenance
    if prov is not None and done.any():
        w, e = prov["weight"][done], prov["entropy"][done]
        if not (np.all((w >= 0) & (w <= 1)) and np.all(e >= -1e-6) and np.all(prov["image"][done] >= 0)):
            raise ElscliError(f"{where}: provenance of a finished sample out of range (weight outside [0, 1], "
                              "negative entropy or image index)")
        checks.append("provenance weights on [0, 1], entropies >= 0")
    return checks

