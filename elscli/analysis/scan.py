"""Locality calibration (``locality-scan``) and the constant-P sweep.

**Scan.** Follow a network's own trajectory (a reference file): at every step i, from the network's state
``x[:, i]`` at ``t = times[i]``, compare the network's score ``-eps[:, i]/b`` with each candidate machine's
score ``-(x - a·x0_hat_P)/b²`` — by cosine similarity (default; higher is better) or L2 distance (lower is
better) — and keep each sample's best P.  The per-sample × candidate × step values are kept in a **scan file**
so that samples can be split over array tasks (``shard``) and the partial scans merged before aggregating.
Per step the samples' best sizes are aggregated by the **lower** median (the released code's
``torch.median``) or the mode, so the schedule only holds candidate sizes.  The schedule is recorded by the
step start times (``docs/formats.md``), never by index.

Scan file (HDF5, ``format = "elscli.scan"``, ``schema_version = 1``), datasets at the root:

| name | shape, dtype | meaning |
|---|---|---|
| ``sample_index`` | (S,) int64 | the sample's index in the reference file |
| ``candidates`` | (K,) int64 | candidate patch sizes (odd) |
| ``times`` | (T,) float64 | start time of each step (the reference's ``times[:-1]``) |
| ``similarity`` | (S, K, T) float64 | cosine similarity, or L2 distance, of network and machine scores |
| ``best`` | (S, T) int64 | each sample's best candidate per step |

Root attributes: ``machine``, ``metric`` (``cosine``|``l2``), ``higher_is_better``, ``bank_hash``,
``reference`` (path), ``reference_seeds_hash``, ``num_reference_samples``, ``shard`` (``"i/n"``),
``noise_schedule``, plus the standard ``format``, ``schema_version``, ``elscli_version``, ``params``.

**Sweep.** Sample the same seeds with each constant P and report, per P, the memorisation (copy) fraction, the
mean nearest-neighbour RMS distance and the mean posterior entropy: the curve from memorisation (large P,
IS-like) to creativity (small P).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ElscliError
from ..noise import scales

FORMAT = "elscli.scan"
SCHEMA_VERSION = 1
METRICS = ("cosine", "l2")
AGGREGATES = ("median", "mode")

# evaluate(x (B,C,H,W) float64, t, candidates, label or None) -> x0_hat (K, B, C, H, W) float64
Evaluator = Callable[[np.ndarray, float, Sequence[int], Optional[int]], np.ndarray]


# --------------------------------------------------------------------------------------------- helpers

def parse_candidates(spec) -> List[int]:
    """``"3,5,7"``, ``"3:31"`` / ``"3-31"`` (every odd size in the range, inclusive) or a list -> sorted odd sizes."""
    if isinstance(spec, str):
        sizes: List[int] = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            sep = ":" if ":" in part else ("-" if "-" in part[1:] else None)
            try:
                if sep:
                    lo, hi = (int(v) for v in part.split(sep, 1))
                    if lo > hi:
                        raise ElscliError(f"candidate range {part!r} is empty")
                    if lo % 2 == 0:
                        raise ElscliError(f"candidate range {part!r} must start at an odd size")
                    sizes.extend(range(lo, hi + 1, 2))
                else:
                    sizes.append(int(part))
            except ValueError:
                raise ElscliError(f"cannot read candidate patch sizes {spec!r} (expected e.g. 3,5,7 or 3:31)") from None
    else:
        sizes = [int(v) for v in spec]
    if not sizes:
        raise ElscliError("no candidate patch sizes given")
    for p in sizes:
        if p < 1 or p % 2 == 0:
            raise ElscliError(f"candidate patch size {p} must be odd and positive")
    return sorted(set(sizes))


def parse_shard(spec: Optional[str]) -> Tuple[int, int]:
    """``"i/n"`` (0-based i < n) -> (i, n); None -> (0, 1)."""
    if spec is None or spec == "":
        return 0, 1
    try:
        i, n = (int(v) for v in str(spec).split("/"))
    except ValueError:
        raise ElscliError(f"--shard must look like i/n (e.g. 0/4), got {spec!r}") from None
    if n < 1 or not (0 <= i < n):
        raise ElscliError(f"--shard {spec!r}: need 0 <= i < n")
    return i, n


def seeds_hash(seeds: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(seeds, dtype=np.float32).tobytes()).hexdigest()[:16]


def lower_median(values: np.ndarray) -> int:
    v = np.sort(np.asarray(values).ravel())
    return int(v[(len(v) - 1) // 2])


def mode(values: np.ndarray) -> int:
    """Most frequent value; ties go to the smallest (as torch.mode)."""
    vals, counts = np.unique(np.asarray(values).ravel(), return_counts=True)
    return int(vals[np.argmax(counts)])


def aggregate(best: np.ndarray, how: str = "median") -> np.ndarray:
    """Per-step aggregate of samples' best sizes (S, T) -> (T,) int64."""
    if how not in AGGREGATES:
        raise ElscliError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
    f = lower_median if how == "median" else mode
    return np.array([f(best[:, j]) for j in range(best.shape[1])], dtype=np.int64)


def similarity(net_score: np.ndarray, mach_score: np.ndarray, metric: str) -> np.ndarray:
    """Per-sample similarity of two score stacks (B, ...) -> (B,): cosine, or L2 distance."""
    a = net_score.reshape(len(net_score), -1)
    b = mach_score.reshape(len(mach_score), -1)
    if metric == "cosine":
        den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return np.divide((a * b).sum(1), den, out=np.zeros(len(a)), where=den > 0)
    if metric == "l2":
        return np.linalg.norm(a - b, axis=1)
    raise ElscliError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")


def machine_evaluator(machine: str, bank, *, threads: Optional[int] = None) -> Evaluator:
    """The per-step evaluation of every candidate: one call, so a multi-candidate kernel can replace it.

    Uses ``elscli.machines.denoise_candidates`` when the core provides it (one pass over the bank for all
    sizes), else one ``denoise`` call per candidate."""
    from .. import machines

    multi = getattr(machines, "denoise_candidates", None)

    def evaluate(x, t, candidates, label):
        if multi is not None:
            return np.asarray(multi(machine, x, t, bank, list(candidates), label=label, threads=threads))
        return np.stack([np.asarray(machines.denoise(machine, x, t, bank, int(p), label=label, threads=threads),
                                    dtype=np.float64) for p in candidates])

    return evaluate


# ------------------------------------------------------------------------------------------------ scan

@dataclass
class Scan:
    sample_index: np.ndarray        # (S,)
    candidates: np.ndarray          # (K,)
    times: np.ndarray               # (T,) step start times
    similarity: np.ndarray          # (S, K, T)
    machine: str
    metric: str = "cosine"
    bank_hash: str = ""
    reference: str = ""
    reference_seeds_hash: str = ""
    num_reference_samples: int = 0
    shard: str = "0/1"
    noise_schedule: str = "cosine-legacy"
    params: dict = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "cosine"

    @property
    def best(self) -> np.ndarray:
        """(S, T) each sample's best candidate per step (ties: the smaller size)."""
        sim = self.similarity if self.higher_is_better else -self.similarity
        return self.candidates[np.argmax(sim, axis=1)]

    @property
    def complete(self) -> bool:
        return len(self.sample_index) == self.num_reference_samples

    def schedule(self, how: str = "median") -> dict:
        """The locality schedule JSON: the aggregate best size for the step starting at each time."""
        return {"times": [round(float(t), 12) for t in self.times], "patch_sizes": [int(p) for p in aggregate(self.best, how)]}

    def write(self, path, *, force: bool = False, params: Optional[dict] = None) -> None:
        import h5py

        from ..h5io import atomic_output, write_root_attrs

        with atomic_output(path, force) as tmp, h5py.File(tmp, "w") as f:
            write_root_attrs(f, FORMAT, SCHEMA_VERSION, params if params is not None else self.params,
                             machine=self.machine, metric=self.metric, higher_is_better=self.higher_is_better,
                             bank_hash=self.bank_hash, reference=self.reference,
                             reference_seeds_hash=self.reference_seeds_hash,
                             num_reference_samples=int(self.num_reference_samples), shard=self.shard,
                             noise_schedule=self.noise_schedule)
            f.create_dataset("sample_index", data=self.sample_index.astype(np.int64))
            f.create_dataset("candidates", data=self.candidates.astype(np.int64))
            f.create_dataset("times", data=self.times.astype(np.float64))
            f.create_dataset("similarity", data=self.similarity.astype(np.float64))
            f.create_dataset("best", data=self.best.astype(np.int64))

    @classmethod
    def read(cls, path) -> "Scan":
        from ..h5io import open_h5, read_attrs, read_params

        with open_h5(path, expected_format=FORMAT) as f:
            try:
                a = read_attrs(f)
                return cls(sample_index=f["sample_index"][()], candidates=f["candidates"][()],
                           times=f["times"][()], similarity=f["similarity"][()], machine=str(a["machine"]),
                           metric=str(a["metric"]), bank_hash=str(a.get("bank_hash", "")),
                           reference=str(a.get("reference", "")),
                           reference_seeds_hash=str(a.get("reference_seeds_hash", "")),
                           num_reference_samples=int(a.get("num_reference_samples", 0)),
                           shard=str(a.get("shard", "0/1")), noise_schedule=str(a.get("noise_schedule", "cosine-legacy")),
                           params=read_params(f))
            except KeyError as exc:
                raise ElscliError(f"scan file {str(path)!r} lacks {exc.args[0]!r}") from None


def _bank_hash(bank) -> str:
    return str(getattr(bank, "content_hash", ""))


def bank_images(bank) -> np.ndarray:
    """The (N, C, H, W) images of a Bank or of a raw array."""
    images = getattr(bank, "images", None)
    return np.asarray(bank if images is None else images)


def scan(reference, bank, machine: str, candidates: Sequence[int], *, metric: str = "cosine",
         shard: Tuple[int, int] = (0, 1), evaluator: Optional[Evaluator] = None, threads: Optional[int] = None,
         batch_size: int = 64, progress=None, params: Optional[dict] = None) -> Scan:
    """Scan a reference trajectory (an :class:`elscli.reference.Reference`) against a machine's candidates."""
    candidates = np.array(parse_candidates(candidates), dtype=np.int64)
    if metric not in METRICS:
        raise ElscliError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    eps = reference.require_eps()
    xs = reference.require_x()
    bank_shape = tuple(int(s) for s in bank_images(bank).shape[1:])
    if bank_shape != reference.image_shape:
        raise ElscliError(f"the bank's images have shape {bank_shape} but the reference's have "
                          f"{reference.image_shape}")
    i, n = shard
    idx = np.arange(reference.num_samples)[i::n]
    if len(idx) == 0:
        raise ElscliError(f"shard {i}/{n} holds no samples (the reference has {reference.num_samples})")
    T = reference.num_steps
    times = reference.times[:-1].copy()
    if evaluator is None:
        evaluator = machine_evaluator(machine, bank, threads=threads)
    sim = np.zeros((len(idx), len(candidates), T), dtype=np.float64)
    labels = reference.labels[idx]
    for step in range(T):
        t = float(reference.times[step])
        a, b = scales(t, reference.schedule)
        for lab in np.unique(labels):
            rows_all = np.flatnonzero(labels == lab)
            for lo in range(0, len(rows_all), batch_size):
                rows = rows_all[lo:lo + batch_size]
                x = xs[idx[rows], step].astype(np.float64)
                net = -eps[idx[rows], step].astype(np.float64) / b
                x0 = evaluator(x, t, [int(p) for p in candidates], None if lab < 0 else int(lab))
                for k in range(len(candidates)):
                    mach = -(x - a * x0[k]) / (b * b)
                    sim[rows, k, step] = similarity(net, mach, metric)
                if progress is not None:
                    progress.advance(len(rows))
    return Scan(sample_index=idx, candidates=candidates, times=times, similarity=sim, machine=machine,
                metric=metric, bank_hash=_bank_hash(bank), reference=str(reference.path or ""),
                reference_seeds_hash=seeds_hash(reference.seeds), num_reference_samples=reference.num_samples,
                shard=f"{i}/{n}", noise_schedule=reference.schedule, params=dict(params or {}))


def merge(scans: Sequence[Scan]) -> Scan:
    """Combine partial scans (shards) of one reference into one; refuses scans that do not belong together."""
    if not scans:
        raise ElscliError("no scan files to merge")
    first = scans[0]
    for s in scans[1:]:
        for attr in ("machine", "metric", "bank_hash", "reference_seeds_hash", "num_reference_samples"):
            if getattr(s, attr) != getattr(first, attr):
                raise ElscliError(f"cannot merge scans with different {attr}: {getattr(first, attr)!r} vs "
                                  f"{getattr(s, attr)!r}")
        if not np.array_equal(s.candidates, first.candidates):
            raise ElscliError("cannot merge scans with different candidate sizes")
        if s.times.shape != first.times.shape or not np.allclose(s.times, first.times):
            raise ElscliError("cannot merge scans with different time grids")
    idx = np.concatenate([s.sample_index for s in scans])
    if len(np.unique(idx)) != len(idx):
        raise ElscliError("the scans overlap: some samples appear in more than one")
    order = np.argsort(idx, kind="stable")
    sim = np.concatenate([s.similarity for s in scans])[order]
    shard = "0/1" if len(idx) == first.num_reference_samples else "partial"
    return Scan(sample_index=idx[order], candidates=first.candidates, times=first.times, similarity=sim,
                machine=first.machine, metric=first.metric, bank_hash=first.bank_hash, reference=first.reference,
                reference_seeds_hash=first.reference_seeds_hash, num_reference_samples=first.num_reference_samples,
                shard=shard, noise_schedule=first.noise_schedule, params=dict(first.params))


def describe_scan(path) -> Dict:
    """A summary of a scan file for ``elscli info``."""
    s = Scan.read(path)
    best = s.best
    d = {"format": FORMAT, "machine": s.machine, "metric": s.metric, "reference": s.reference,
         "bank_hash": s.bank_hash, "samples": int(len(s.sample_index)),
         "reference_samples": int(s.num_reference_samples), "complete": s.complete, "shard": s.shard,
         "candidates": [int(c) for c in s.candidates], "steps": int(len(s.times)),
         "times": [round(float(t), 12) for t in s.times]}
    if len(s.sample_index):
        d["schedule_median"] = [int(p) for p in aggregate(best, "median")]
    return d


def spread(best: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-step quartiles of the samples' best sizes, for plots and tables."""
    q = np.percentile(best, [0, 25, 50, 75, 100], axis=0)
    return {"min": q[0], "q1": q[1], "median": q[2], "q3": q[3], "max": q[4]}


# ----------------------------------------------------------------------------------------------- sweep

@dataclass
class SweepPoint:
    patch_size: int
    copy_fraction: float
    mean_nn_rms: float
    mean_entropy: float
    median_ratio: float
    run: Optional[str] = None

    def as_dict(self):
        return {"patch_size": self.patch_size, "copy_fraction": self.copy_fraction, "mean_nn_rms": self.mean_nn_rms,
                "mean_entropy": self.mean_entropy, "median_ratio": self.median_ratio, "run": self.run}


def sweep_point(patch_size: int, final: np.ndarray, entropy: Optional[np.ndarray], bank, *,
                run: Optional[str] = None) -> SweepPoint:
    from .nearest import nearest

    nn = nearest(final, bank_images(bank), getattr(bank, "labels", None))
    return SweepPoint(patch_size=int(patch_size), copy_fraction=float(nn.is_copy.mean()),
                      mean_nn_rms=float(nn.rms.mean()),
                      mean_entropy=float("nan") if entropy is None else float(np.mean(entropy)),
                      median_ratio=nn.summary()["median_ratio"], run=run)


def sweep(bank, machine: str, patch_sizes: Sequence[int], *, num_samples: int = 16, seed: int = 0,
          steps: int = 20, start_time: float = 1.0, label: Optional[int] = None, run_dir=None,
          sample_fn: Optional[Callable] = None, force: bool = False, quiet: bool = True,
          threads: Optional[int] = None) -> List[SweepPoint]:
    """Sample the same seeds at each constant patch size and measure memorisation and posterior entropy.

    ``sample_fn(patch_size, output) -> (final (S,C,H,W), prov_entropy (S,H,W) or None)``; by default
    :func:`elscli.runs.sample` writes ``run_dir/sweep-P{P}.h5`` (or a temporary directory) and its provenance
    gives the entropy."""
    import tempfile

    sizes = parse_candidates(patch_sizes)
    tmpdir = None
    if run_dir is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="elscli-sweep-")
        run_dir = tmpdir.name
    run_dir = Path(run_dir)
    if sample_fn is None:
        sample_fn = _runs_sample_fn(bank, machine, num_samples=num_samples, seed=seed, steps=steps,
                                    start_time=start_time, label=label, force=force, quiet=quiet, threads=threads)
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


def _runs_sample_fn(bank, machine, **kw):
    from .. import runs

    def fn(p, out):
        run_kw = dict(machine=machine, patch_size=None if machine == "is" else int(p), steps=kw["steps"],
                      start_time=kw["start_time"], num_samples=kw["num_samples"], seed=kw["seed"],
                      output=str(out), force=kw["force"], quiet=kw["quiet"], label=kw.get("label"),
                      threads=kw.get("threads"))
        run = runs.sample(bank, **run_kw)
        done = np.asarray(run.done, bool)
        prov = run.provenance
        return np.asarray(run.final)[done], None if prov is None else np.asarray(prov["entropy"])[done]

    return fn
