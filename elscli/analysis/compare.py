"""Sample-by-sample agreement between the final images of runs and reference trajectories.

The first input is the reference (usually a network); every other input is matched to it **by seeds** (the
starting noise), never by position.  Per sample: Pearson r over all pixels and channels of the two final
images, r², the (uncentred) cosine and the MSE.  Summaries: median and quartiles; with a baseline (the IS run),
the fraction of samples where each input's r² beats the baseline's (the paper's tables).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ElscliError
from ..noise import DEFAULT_NOISE_SCHEDULE

METRICS = ("r", "r2", "cosine", "mse")
SEED_TOLERANCE = 1e-5  # max |difference| for two stored float32 seeds to count as the same noise


@dataclass
class Outputs:
    """Final images of one file (a run or a reference), with what identifies each sample.

    ``kind`` ``"reference"`` or ``"run"``; ``machine`` (e.g. ``"bbels"``) for runs, None for references;
    ``seeds`` and ``final`` (S, C, H, W) float32 on [-1, 1]; ``times`` (T+1,) float64; ``labels`` (S,) int64.
    """

    name: str
    kind: str
    machine: Optional[str]
    seeds: np.ndarray
    final: np.ndarray
    times: np.ndarray
    labels: np.ndarray
    path: Optional[str] = None
    attrs: dict = field(default_factory=dict)
    noise_schedule: str = DEFAULT_NOISE_SCHEDULE

    @property
    def label(self) -> str:
        """A short label for tables and plots."""
        return self.name if self.machine is None else f"{self.name} ({self.machine})"

    @property
    def what(self) -> str:
        """What made the samples: ``network`` for a reference trajectory (a network's), else the run's machine
        (its name when the run records none)."""
        return "network" if self.kind == "reference" else (self.machine or self.name)

    @property
    def figure_label(self) -> str:
        """A figure's label for this input: :attr:`what`, with the file's name when that is not the same
        word — ``network (trajectories.npz)``, ``pca-locality (pca.h5)``, ``bbels`` for ``bbels.h5``."""
        file = Path(self.path).name if self.path else self.name
        return self.what if self.name == self.what else f"{self.what} ({file})"


def load_outputs(path: os.PathLike | str, name: Optional[str] = None) -> Outputs:
    """Read the finals of a run file (finished samples only, through :func:`elscli.runs.read_finished`) or
    of a reference trajectory (:func:`elscli.reference.read`).

    ``name`` defaults to the file's stem.  Raises ElscliError for a missing or unreadable file, a run with no
    finished sample, or an HDF5 file of another elscli format.
    """
    from .. import reference as _ref
    from ..h5io import file_format, open_h5
    from ..runs import FORMAT as RUN_FORMAT, read_finished

    path = Path(path)
    name = name or path.stem
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    if path.suffix.lower() != ".npz":
        with open_h5(path) as f:
            fmt = file_format(f)
        if fmt == RUN_FORMAT:
            run = read_finished(path)
            return Outputs(name=name, kind="run", machine=run.attrs.get("machine"),
                           seeds=run.seeds.astype(np.float32), final=run.final.astype(np.float32),
                           times=run.times.astype(np.float64), labels=run.labels.astype(np.int64), path=str(path),
                           attrs=run.attrs,
                           noise_schedule=str(run.attrs.get("noise_schedule") or DEFAULT_NOISE_SCHEDULE))
        if fmt not in (None, "", _ref.FORMAT):
            raise ElscliError(f"{str(path)!r} is an {fmt} file, not a run or a reference trajectory")
    ref = _ref.read(path)
    return Outputs(name=name, kind="reference", machine=None, seeds=ref.seeds, final=ref.final.astype(np.float32),
                   times=ref.times, labels=ref.labels, path=str(path), attrs=ref.attrs,
                   noise_schedule=ref.schedule)


# ----------------------------------------------------------------------------------------------- metrics

def sample_metrics(a: np.ndarray, b: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-sample agreement of two stacks of images (S, ...) on the same scale.

    Returns ``{"r", "r2", "cosine", "mse"}``, each (S,) float64: Pearson r over all pixels and channels
    (the paper's Table 2 reports r²; its released evaluation computed r), its square, the uncentred cosine
    ⟨a, b⟩/(‖a‖‖b‖) and the mean squared difference.  A constant image has r = 0 (no linear agreement can be
    measured).  Raises ElscliError when the shapes differ.
    """
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ElscliError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((ac * ac).sum(1) * (bc * bc).sum(1))
    r = np.divide((ac * bc).sum(1), den, out=np.zeros(len(a)), where=den > 0)
    nden = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    cos = np.divide((a * b).sum(1), nden, out=np.zeros(len(a)), where=nden > 0)
    mse = ((a - b) ** 2).mean(1)
    return {"r": r, "r2": r * r, "cosine": cos, "mse": mse}


def summarize(values: np.ndarray) -> Dict[str, float]:
    """``median``, ``q1``, ``q3`` (``numpy.percentile``, linear), ``mean``, ``min``, ``max`` of (S,) values."""
    v = np.asarray(values, np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(v.mean()),
            "min": float(v.min()), "max": float(v.max())}


# ------------------------------------------------------------------------------------------ seed matching

def match_seeds(ref_seeds: np.ndarray, other_seeds: np.ndarray, *, names=("A", "B"),
                tol: float = SEED_TOLERANCE) -> np.ndarray:
    """For each sample of ``other``, the index of the sample of ``ref`` with the same seed.

    ``ref_seeds`` (R, C, H, W), ``other_seeds`` (S, C, H, W); two seeds are the same noise when they differ by
    at most ``tol`` everywhere.  Returns (S,) int64.  Raises ElscliError when the image shapes differ, a seed
    has no match, or ``other`` holds one seed twice.
    """
    if ref_seeds.shape[1:] != other_seeds.shape[1:]:
        raise ElscliError(f"{names[1]} has images of shape {tuple(other_seeds.shape[1:])} but {names[0]} has "
                          f"{tuple(ref_seeds.shape[1:])}")
    A = ref_seeds.reshape(len(ref_seeds), -1).astype(np.float64)
    B = other_seeds.reshape(len(other_seeds), -1).astype(np.float64)
    d2 = (B * B).sum(1)[:, None] + (A * A).sum(1)[None, :] - 2 * B @ A.T
    idx = np.argmin(d2, axis=1)
    maxdiff = np.abs(B - A[idx]).max(axis=1) if len(B) else np.zeros(0)
    bad = np.flatnonzero(maxdiff > tol)
    if len(bad):
        raise ElscliError(f"{len(bad)} of {len(B)} samples of {names[1]} have seeds that match no sample of "
                          f"{names[0]} (first: sample {bad[0]}); they were not started from the same noise")
    if len(np.unique(idx)) != len(idx):
        raise ElscliError(f"{names[1]} holds the same seed more than once")
    return idx


# ------------------------------------------------------------------------------------------------ compare

@dataclass
class Comparison:
    """The result of :func:`compare`: per-sample metrics of every input against the reference.

    ``ref_index`` (S,) indices into the reference of the samples every input holds; ``other_index`` per
    input, the same samples' indices in it; ``metrics[name][metric]`` (S,) float64; ``plots`` the PNGs
    written by :func:`compare_files`.
    """

    reference: Outputs
    others: List[Outputs]
    ref_index: np.ndarray                     # (S,) indices into reference of the common samples
    other_index: List[np.ndarray]             # per other, (S,) indices of the same samples
    metrics: Dict[str, Dict[str, np.ndarray]] # other name -> metric -> (S,)
    baseline: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    clamp: bool = False
    plots: List[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready: per input, each metric's :func:`summarize` and the fraction of samples beating the
        baseline's r² (with a baseline); ``plots`` when PNGs were written."""
        out = {"reference": self.reference.name, "num_samples": int(len(self.ref_index)), "clamp": self.clamp,
               "baseline": self.baseline, "warnings": list(self.warnings), "inputs": {}}
        for o in self.others:
            m = self.metrics[o.name]
            entry = {"path": o.path, "kind": o.kind, "machine": o.machine,
                     **{k: summarize(m[k]) for k in METRICS}}
            if self.baseline is not None and o.name != self.baseline:
                entry["fraction_beats_baseline"] = float(np.mean(m["r2"] > self.metrics[self.baseline]["r2"]))
            out["inputs"][o.name] = entry
        if self.plots:
            out["plots"] = list(self.plots)
        return out

    def per_sample_rows(self) -> List[dict]:
        """One dict per (sample, input): ``sample`` (reference index), ``input``, ``machine`` and the metrics."""
        rows = []
        for j, ri in enumerate(self.ref_index):
            for o in self.others:
                m = self.metrics[o.name]
                rows.append({"sample": int(ri), "input": o.name, "machine": o.machine or "",
                             **{k: float(m[k][j]) for k in METRICS}})
        return rows


def _unique_names(outs: Sequence[Outputs]) -> None:
    seen: Dict[str, int] = {}
    for o in outs:
        if o.name in seen:
            seen[o.name] += 1
            o.name = f"{o.name}-{seen[o.name]}"
        else:
            seen[o.name] = 1


def compare(reference: Outputs, others: Sequence[Outputs], *, baseline: Optional[Outputs] = None,
            clamp: bool = False) -> Comparison:
    """Match every other input (and the baseline) to the reference by seeds and compute per-sample metrics
    over the samples that all of them hold.  ``clamp`` clamps every final image to [-1, 1] first (machines'
    outputs already lie there; networks' may not).  Differing time grids or sample sets are reported in
    ``warnings``.  Raises ElscliError when there is nothing to compare, noise schedules or shapes differ, a seed
    has no match, or no sample is common to all inputs."""
    others = list(others)
    if baseline is not None:
        others = [o for o in others if o is not baseline] + [baseline]
    if not others:
        raise ElscliError("nothing to compare: give the reference and at least one run")
    _unique_names([reference] + others)
    warnings: List[str] = []
    matches = []
    for o in others:
        if o.noise_schedule != reference.noise_schedule:
            raise ElscliError(f"noise schedules differ: {reference.name} was sampled with "
                              f"{reference.noise_schedule!r}, {o.name} with {o.noise_schedule!r}")
        idx = match_seeds(reference.seeds, o.seeds, names=(reference.name, o.name))
        matches.append(idx)
        if len(o.times) != len(reference.times) or not np.allclose(o.times, reference.times):
            warnings.append(f"time grids differ: {o.name} runs {len(o.times) - 1} steps from t={o.times[0]:g}, "
                            f"{reference.name} {len(reference.times) - 1} steps from t={reference.times[0]:g}")
    common = set(range(len(reference.seeds)))
    for idx in matches:
        common &= set(idx.tolist())
    common_idx = np.array(sorted(common), dtype=np.int64)
    if len(common_idx) == 0:
        raise ElscliError("the inputs have no sample in common with the reference")
    held = [len(idx) for idx in matches] + [len(reference.seeds)]
    if max(held) > len(common_idx):
        warnings.append(f"comparing the {len(common_idx)} samples that every input holds ("
                        + ", ".join(f"{o.name}: {len(idx)}" for o, idx in zip([reference] + others,
                                                                              [reference.seeds] + matches))
                        + ")")
    ref_final = reference.final[common_idx]
    if clamp:
        ref_final = np.clip(ref_final, -1, 1)
    metrics, other_index = {}, []
    for o, idx in zip(others, matches):
        pos = {int(r): k for k, r in enumerate(idx)}
        oi = np.array([pos[int(r)] for r in common_idx], dtype=np.int64)
        other_index.append(oi)
        fin = o.final[oi]
        if clamp:
            fin = np.clip(fin, -1, 1)
        metrics[o.name] = sample_metrics(ref_final, fin)
    return Comparison(reference=reference, others=others, ref_index=common_idx, other_index=other_index,
                      metrics=metrics, baseline=None if baseline is None else baseline.name, warnings=warnings,
                      clamp=clamp)


def compare_files(paths: Sequence[os.PathLike | str], *, baseline: Optional[os.PathLike | str] = None,
                  clamp: bool = False, plot_dir: Optional[os.PathLike | str] = None) -> Comparison:
    """:func:`compare` on files (:func:`load_outputs`): ``paths[0]`` is the reference, the rest are compared
    with it; with ``plot_dir`` (an existing directory) also the scatter and side-by-side PNGs
    (:func:`elscli.analysis.plots.comparison_plots`).  Raises ElscliError as :func:`compare` does and when
    fewer than two files are given."""
    if len(paths) < 2 and baseline is None:
        raise ElscliError("compare needs at least two files: the reference (e.g. a network) and a run")
    outs = [load_outputs(p) for p in paths]
    base = None
    if baseline is not None:
        same = [o for o in outs[1:] if Path(o.path).resolve() == Path(baseline).resolve()]
        base = same[0] if same else load_outputs(baseline)
    comp = compare(outs[0], outs[1:], baseline=base, clamp=clamp)
    if plot_dir is not None:
        from .plots import comparison_plots

        comp.plots = comparison_plots(comp, plot_dir)
    return comp
