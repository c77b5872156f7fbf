"""The constant-P sweep: memorisation versus creativity as the patch size grows.

Sample the same seeds with each constant patch size P and report, per P, the memorisation (copy) fraction, the
mean nearest-neighbour RMS distance, the median nearest/second-nearest distance ratio (:mod:`.nearest`) and
the mean posterior entropy of the last step: the curve from creativity (small P: patch mosaics) to
memorisation (large P: the IS machine's copies of training images; the paper's Section 5).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from ..bank import bank_images
from ..errors import ElscliError
from .scan import parse_candidates


@dataclass
class SweepPoint:
    """The measures of one constant patch size: ``copy_fraction`` (RMS < 0.05 to a training image),
    ``mean_nn_rms`` (on the [-1, 1] scale), ``mean_entropy`` (nats; NaN without provenance),
    ``median_ratio`` (nearest / second-nearest distance) and the ``run`` file kept (or None)."""

    patch_size: int
    copy_fraction: float
    mean_nn_rms: float
    mean_entropy: float
    median_ratio: float
    run: Optional[str] = None

    def as_dict(self) -> dict:
        """The point as a JSON-ready dict (field names as keys)."""
        return {"patch_size": self.patch_size, "copy_fraction": self.copy_fraction, "mean_nn_rms": self.mean_nn_rms,
                "mean_entropy": self.mean_entropy, "median_ratio": self.median_ratio, "run": self.run}


@dataclass
class Sweep:
    """A sweep's result: its points, in increasing P, and the plots written."""

    machine: str
    num_samples: int
    seed: int
    steps: int
    points: List[SweepPoint]
    plots: List[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON payload of ``elscli locality-scan --sweep``."""
        out = {"machine": self.machine, "num_samples": self.num_samples, "seed": self.seed, "steps": self.steps,
               "points": [p.as_dict() for p in self.points]}
        if self.plots:
            out["plots"] = list(self.plots)
        return out


def sweep_point(patch_size: int, final: np.ndarray, entropy: Optional[np.ndarray], bank, *,
                run: Optional[str] = None) -> SweepPoint:
    """The :class:`SweepPoint` of finals (S, C, H, W) and their last-step entropy (S, H, W) (or None)."""
    from .nearest import nearest

    nn = nearest(final, bank_images(bank), getattr(bank, "labels", None))
    return SweepPoint(patch_size=int(patch_size), copy_fraction=float(nn.is_copy.mean()),
                      mean_nn_rms=float(nn.rms.mean()),
                      mean_entropy=float("nan") if entropy is None else float(np.mean(entropy)),
                      median_ratio=nn.summary()["median_ratio"], run=run)


def sweep(bank, machine: str, patch_sizes: Sequence[int], *, num_samples: int = 16, seed: int = 0,
          steps: int = 20, start_time: float = 1.0, label: Optional[int] = None, run_dir=None,
          sample_fn: Optional[Callable] = None, force: bool = False, quiet: bool = True,
          threads: Optional[int] = None, progress_interval: Optional[float] = None) -> List[SweepPoint]:
    """Sample the same seeds at each constant patch size and measure memorisation and posterior entropy.

    ``sample_fn(patch_size, output) -> (final (S,C,H,W), prov_entropy (S,H,W) or None)``; by default
    :func:`elscli.runs.sample` computes every sample (no shard) into ``run_dir/sweep-MACHINE-P{P}.h5`` (or a
    temporary directory, removed after) and its provenance gives the entropy.  Returns one point per size,
    in increasing P.  ``quiet`` and ``progress_interval`` (seconds between plain progress lines, None: 10) are
    those of each run's progress.  Raises ElscliError for bad sizes or sampling input.
    """
    sizes = parse_candidates(patch_sizes, "--sweep")
    tmpdir = None
    if run_dir is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="elscli-sweep-")
        run_dir = tmpdir.name
    run_dir = Path(run_dir)
    if sample_fn is None:
        sample_fn = _runs_sample_fn(bank, machine, num_samples=num_samples, seed=seed, steps=steps,
                                    start_time=start_time, label=label, force=force, quiet=quiet, threads=threads,
                                    progress_interval=progress_interval)
    points = []
    try:
        for p in sizes:
            out = run_dir / f"sweep-{machine}-P{p}.h5"
            final, entropy = sample_fn(p, out)
            points.append(sweep_point(p, final, entropy, bank, run=None if tmpdir else str(out)))
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return points


def run_sweep(bank, machine: str, patch_sizes, *, num_samples: int = 16, seed: int = 0, steps: int = 20,
              label: Optional[int] = None, run_dir=None, plot_dir=None, force: bool = False, quiet: bool = True,
              threads: Optional[int] = None, progress_interval: Optional[float] = None) -> Sweep:
    """:func:`sweep` from a bank path (or Bank), plus the plot ``sweep-MACHINE.png`` in ``plot_dir``.

    What ``elscli locality-scan --sweep`` runs.  Raises ElscliError when the bank is missing, ``run_dir``
    is not a directory, or :func:`sweep` refuses its input.
    """
    from ..sample_data import open_bank

    if bank is None:
        raise ElscliError("--sweep needs --bank BANK")
    sizes = parse_candidates(patch_sizes, "--sweep")
    if run_dir is not None and not Path(run_dir).is_dir():
        raise ElscliError(f"--run-dir {str(run_dir)!r} is not a directory")
    b = open_bank(bank)
    points = sweep(b, machine, sizes, num_samples=num_samples, seed=seed, steps=steps, label=label,
                   run_dir=run_dir, force=force, quiet=quiet, threads=threads, progress_interval=progress_interval)
    result = Sweep(machine, num_samples, seed, steps, points)
    if plot_dir is not None:
        from .plots import sweep_plot

        result.plots.append(sweep_plot([p.as_dict() for p in points], Path(plot_dir) / f"sweep-{machine}.png",
                                       machine=machine))
    return result


def _runs_sample_fn(bank, machine, **kw):
    from .. import runs

    def fn(p, out):
        run = runs.sample(bank, machine=machine, patch_size=None if machine == "is" else int(p), steps=kw["steps"],
                          start_time=kw["start_time"], num_samples=kw["num_samples"], seed=kw["seed"],
                          output=str(out), force=kw["force"], quiet=kw["quiet"], label=kw.get("label"),
                          threads=kw.get("threads"), shard=None, progress_interval=kw.get("progress_interval"))
        done = np.asarray(run.done, bool)
        prov = run.provenance
        return np.asarray(run.final)[done], None if prov is None else np.asarray(prov["entropy"])[done]

    return fn
