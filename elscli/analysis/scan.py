"""Locality calibration, step 1: scan a network's trajectory against a machine's candidate patch sizes.

Follow a network's own trajectory (a reference file): at every step i, from the network's state ``x[:, i]``
at ``t = times[i]``, compare the network's score ``-eps[:, i]/b`` with each candidate machine's score
``-(x - a·x0_hat_P)/b²`` (Tweedie's formula, the score of the paper's Eq. 3 in terms of the denoiser) — by
cosine similarity (default; higher is better) or L2 distance (lower is better) — and keep each sample's best
P.  The machines run on the reference's own noise schedule (its ``schedule``: a(t), b(t) in the softmax and in
the score).  The per-sample × candidate × step values are kept in a **scan file** so that samples can be split
over array tasks (``shard``) and the partial scans merged (:mod:`.scan_merge`) before aggregating into a schedule
(:mod:`.aggregate`); :mod:`.calibrate` runs the three.

Scan file (HDF5, ``format = "elscli.scan"``, ``schema_version = 1``), datasets at the root:

==================  ==================  ===================================================================
``sample_index``    (S,) int64          the sample's index in the reference file
``candidates``      (K,) int64          candidate patch sizes (odd)
``times``           (T,) float64        start time of each step (the reference's ``times[:-1]``)
``similarity``      (S, K, T) float64   cosine similarity, or L2 distance, of network and machine scores
                                        (NaN where not computed yet)
``done``            (S, K, T) bool      which similarities are computed (absent in older files: all)
``best``            (S, T) int64        each sample's best candidate per step (-1 where not all computed)
==================  ==================  ===================================================================

Root attributes: ``machine``, ``metric`` (``cosine``|``l2``), ``higher_is_better``, ``bank_hash``,
``reference`` (path), ``reference_seeds_hash``, ``num_reference_samples``, ``shard`` (``"i/n"``),
``noise_schedule``, ``states`` (``network``: the network's own reverse trajectory, the default;
``forward``: the reference's forward-noised held-out images), plus the standard ``format``,
``schema_version``, ``elscli_version``, ``params``.

**Any scalar parameter** (:mod:`.parameter_scan`).  A scan of another parameter than the patch size —
``sigma`` of scfdm, ``threshold`` of pca-locality, ... — records it in the root attribute ``parameter``
(absent: ``patch_size``), and its ``candidates`` and ``best`` are float64 values (``best`` NaN where not all
computed).

**Ties.**  Similarities within :data:`SIMILARITY_TIE` (relative to max(1, |best|)) of a step's best are
ties, and ties go to the smaller P: exact kernels that sum in different orders differ by rounding, and two
candidates that are the same machine (e.g. LS windows that both cover the whole image) must not be told apart
by rounding.  The scan is exhaustive — every candidate at every step for every sample — so it chooses
exactly what any exact evaluation of the candidates chooses (benchmarks/RESULTS.md, "The locality scan",
measures why skipping candidates cannot be certified for less than evaluating them).

**Stopping and resuming.**  The scan works in units of (step, batch of samples, candidate) and can report
each finished unit (``checkpoint``) and stop between units (``should_stop``); a scan given back as
``resume`` computes only the entries not ``done``.  :mod:`.calibrate` uses them for the ``SCAN.h5.partial``
file, SIGINT/SIGTERM and ``--resume``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..bank import bank_images
from ..errors import ElscliError
from ..noise import DEFAULT_NOISE_SCHEDULE, scales
from ..shards import Shard, WHOLE, format_shard
from ..schedule import MAX_PATCH_SIZE
from .parameter_scan import PATCH_SIZE, parameter_evaluator, parse_values

FORMAT = "elscli.scan"
SCHEMA_VERSION = 1
METRICS = ("cosine", "l2")
#: The states a scan follows: the network's own reverse trajectory, or forward-noised held-out images.
STATES = ("network", "forward")
#: Similarities within this much (relative to max(1, |best|)) of a step's best are ties: the smaller P wins.
#: Far above the rounding of the cosine of exact kernels (~1e-15; x0_hat of kernels summing in other orders
#: differ by ~1e-13, which moves the cosine by less), far below the gaps measured between candidates
#: (>= 4e-7 on the reference ResNet at t = 1, the smallest).
SIMILARITY_TIE = 1e-12

#: evaluate(x (B,C,H,W) float64, t, candidates, label or None) -> x0_hat (K, B, C, H, W) float64
Evaluator = Callable[[np.ndarray, float, Sequence[int], Optional[int]], np.ndarray]
#: The machines whose patch sizes :func:`machine_evaluator` scans (others go through the denoiser interface).
LOCAL_MACHINES = ("ls", "els", "bbels")


def parse_candidates(spec, option: str = "--candidates") -> List[int]:
    """Candidate patch sizes: ``"3,5,7"``, ``"3:31"`` / ``"3-31"`` (every odd size in the range, inclusive),
    or a sequence of ints -> sorted unique odd sizes.

    ``option`` names the option in messages (``--candidates``, ``--sweep``).  Raises ElscliError for an
    unreadable spec, an empty range, a range that starts at an even size, or sizes that are not odd and
    positive (the message says patch sizes must be odd, and lists the even ones).
    """
    shown = f"{option} {spec!r}" if isinstance(spec, str) else option
    if isinstance(spec, str):
        sizes: List[int] = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            sep = ":" if ":" in part else ("-" if "-" in part[1:] else None)
            try:
                if sep:
                    lo, hi = (int(v) for v in part.split(sep, 1))
                else:
                    lo = hi = int(part)
            except ValueError:
                raise ElscliError(f"cannot read {shown}: expected odd patch sizes such as 3,5,7 or a range "
                                  f"3:31") from None
            if not sep:
                sizes.append(lo)
                continue
            if lo > hi:
                raise ElscliError(f"{shown}: the range {part!r} is empty (write it low:high, e.g. 3:31)")
            if hi > MAX_PATCH_SIZE:
                raise ElscliError(f"{shown}: patch sizes must be at most {MAX_PATCH_SIZE}, got {hi}")
            if lo % 2 == 0:
                raise ElscliError(f"{shown}: patch sizes must be odd, and the range {part!r} starts at the even "
                                  f"size {lo} (a range takes every other size from its start: {lo + 1}{sep}{hi}"
                                  + (f" or {lo - 1}{sep}{hi})" if lo > 1 else ")"))
            sizes.extend(range(lo, hi + 1, 2))
    else:
        sizes = [int(v) for v in spec]
    if not sizes:
        raise ElscliError(f"{shown}: no candidate patch sizes given")
    even = sorted({p for p in sizes if p % 2 == 0})
    if even:
        raise ElscliError(f"{shown}: patch sizes must be odd; {', '.join(map(str, even))} "
                          f"{'is' if len(even) == 1 else 'are'} even")
    big = sorted({p for p in sizes if p > MAX_PATCH_SIZE})
    if big:
        raise ElscliError(f"{shown}: patch sizes must be at most {MAX_PATCH_SIZE}, got {big[0]}")
    small = sorted({p for p in sizes if p < 1})
    if small:
        raise ElscliError(f"{shown}: patch sizes must be odd and positive; {', '.join(map(str, small))} "
                          f"{'is' if len(small) == 1 else 'are'} not")
    return sorted(set(sizes))


def seeds_hash(seeds: np.ndarray) -> str:
    """16 hex digits of SHA-256 of the seeds as float32 C-order bytes (identifies a reference's samples)."""
    return hashlib.sha256(np.ascontiguousarray(seeds, dtype=np.float32).tobytes()).hexdigest()[:16]


def similarity(net_score: np.ndarray, mach_score: np.ndarray, metric: str) -> np.ndarray:
    """Per-sample similarity of two score stacks (B, ...) -> (B,) float64.

    ``cosine``: ⟨a, b⟩ / (‖a‖ ‖b‖) over all pixels (0 when either is zero); ``l2``: ‖a - b‖.  Raises
    ElscliError for another metric.
    """
    a = net_score.reshape(len(net_score), -1)
    b = mach_score.reshape(len(mach_score), -1)
    if metric == "cosine":
        den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return np.divide((a * b).sum(1), den, out=np.zeros(len(a)), where=den > 0)
    if metric == "l2":
        return np.linalg.norm(a - b, axis=1)
    raise ElscliError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")


def machine_evaluator(machine: str, bank, *, threads: Optional[int] = None,
                      noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> Evaluator:
    """The per-step evaluation of every candidate: one call, so a multi-candidate kernel can replace it.

    Uses ``elscli.machines.denoise_candidates`` when the machines provide it (one pass over the bank for
    all sizes), else one :func:`elscli.machines.denoise` call per candidate, at the scales (a, b) of t under
    ``noise_schedule`` (the reference's: the score it is compared with is the network's under that schedule).
    The evaluator returns (K, B, C, H, W) float64.
    """
    from .. import machines

    multi = getattr(machines, "denoise_candidates", None)

    def evaluate(x, t, candidates, label):
        if multi is not None:
            return np.asarray(multi(machine, x, t, bank, list(candidates), label=label, threads=threads,
                                    noise_schedule=noise_schedule))
        return np.stack([np.asarray(machines.denoise(machine, x, t, bank, int(p), label=label, threads=threads,
                                                     noise_schedule=noise_schedule),
                                    dtype=np.float64) for p in candidates])

    # LS evaluates every size in one pass (kernels/window_sizes.py): give it all candidates at once; the other
    # machines take one size per call anyway, and one at a time lets a scan stop between them
    evaluate.joint = machine == "ls"
    return evaluate


def best_candidates(similarity: np.ndarray, candidates: np.ndarray, higher_is_better: bool = True,
                    done: Optional[np.ndarray] = None) -> np.ndarray:
    """(S, T), the candidates' dtype: for each sample and step, the smallest candidate whose similarity is
    within :data:`SIMILARITY_TIE` (relative to max(1, |best|)) of the best one; -1 (NaN for float values of
    another parameter) where some candidate of that sample and step is not ``done``.  similarity, done:
    (S, K, T); candidates ascending."""
    sim = np.asarray(similarity, dtype=np.float64)
    sim = sim if higher_is_better else -sim
    ok = np.ones(sim.shape[::2], bool) if done is None else np.asarray(done, bool).all(axis=1)
    filled = np.where(np.isnan(sim), -np.inf, sim)
    top = filled.max(axis=1, keepdims=True)
    tied = filled >= top - SIMILARITY_TIE * np.maximum(1.0, np.abs(top))
    cands = np.asarray(candidates)
    out = cands[np.argmax(tied, axis=1)]
    return np.where(ok, out, -1 if cands.dtype.kind in "iub" else np.nan).astype(cands.dtype)


@dataclass
class Scan:
    """A scan (or a merged set of shards of one): the file's datasets and attributes in memory.

    ``sample_index`` (S,) int64, ``candidates`` (K,) int64 patch sizes (float64 values of another
    ``parameter``), ``times`` (T,) float64 step start times,
    ``similarity`` (S, K, T) float64 (NaN where not computed), ``done`` (S, K, T) bool (None: all); the other
    fields are the file's root attributes (module docstring).
    """

    sample_index: np.ndarray
    candidates: np.ndarray
    times: np.ndarray
    similarity: np.ndarray
    machine: str
    metric: str = "cosine"
    bank_hash: str = ""
    reference: str = ""
    reference_seeds_hash: str = ""
    num_reference_samples: int = 0
    shard: str = "0/1"
    noise_schedule: str = "cosine-legacy"
    params: dict = field(default_factory=dict)
    done: Optional[np.ndarray] = None
    states: str = "network"
    parameter: str = PATCH_SIZE

    def __post_init__(self) -> None:
        if self.done is None:
            self.done = np.ones(self.similarity.shape, dtype=bool)

    @property
    def finished(self) -> bool:
        """Whether every similarity is computed (an interrupted scan is not)."""
        return bool(self.done.all())

    @property
    def higher_is_better(self) -> bool:
        """True for cosine similarity, False for L2 distance."""
        return self.metric == "cosine"

    @property
    def best(self) -> np.ndarray:
        """(S, T), the candidates' dtype: each sample's best candidate per step (ties, within
        :data:`SIMILARITY_TIE`: the smaller one; -1, or NaN, where not every candidate is computed)."""
        return best_candidates(self.similarity, self.candidates, self.higher_is_better, self.done)

    @property
    def complete(self) -> bool:
        """Whether the scan covers every sample of the reference."""
        return len(self.sample_index) == self.num_reference_samples

    def schedule(self, how: str = "median"):
        """The locality schedule of this scan (:func:`elscli.analysis.aggregate.schedule_from_scan`)."""
        from .aggregate import schedule_from_scan

        return schedule_from_scan(self, how)

    def write(self, path, *, force: bool = False, params: Optional[dict] = None) -> None:
        """Write the scan file atomically (:func:`elscli.h5io.atomic_output`); ``params`` replace the
        recorded parameters.  Raises ElscliError when ``path`` exists without ``force``."""
        import h5py

        from ..h5io import atomic_output, write_root_attrs

        with atomic_output(path, force) as tmp, h5py.File(tmp, "w") as f:
            write_root_attrs(f, FORMAT, SCHEMA_VERSION, params if params is not None else self.params,
                             machine=self.machine, metric=self.metric, higher_is_better=self.higher_is_better,
                             bank_hash=self.bank_hash, reference=self.reference,
                             reference_seeds_hash=self.reference_seeds_hash,
                             num_reference_samples=int(self.num_reference_samples), shard=self.shard,
                             noise_schedule=self.noise_schedule, states=self.states)
            if self.parameter != PATCH_SIZE:
                f.attrs["parameter"] = self.parameter
            dtype = np.int64 if self.parameter == PATCH_SIZE else np.float64
            f.create_dataset("sample_index", data=self.sample_index.astype(np.int64))
            f.create_dataset("candidates", data=self.candidates.astype(dtype))
            f.create_dataset("times", data=self.times.astype(np.float64))
            f.create_dataset("similarity", data=self.similarity.astype(np.float64))
            f.create_dataset("done", data=np.asarray(self.done, dtype=bool))
            f.create_dataset("best", data=self.best.astype(dtype))

    @classmethod
    def read(cls, path) -> "Scan":
        """Read a scan file.  Raises ElscliError when it is missing, not an ``elscli.scan`` file, or lacks a
        dataset or attribute."""
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
                           params=read_params(f), done=f["done"][()] if "done" in f else None,
                           states=str(a.get("states", "network")), parameter=str(a.get("parameter", PATCH_SIZE)))
            except KeyError as exc:
                raise ElscliError(f"scan file {str(path)!r} lacks {exc.args[0]!r}") from None


@dataclass
class _States:
    """What a scan follows: per sample and step, the state x and the network's eps there."""

    num_samples: int
    labels: np.ndarray            # (S,) int64
    times: np.ndarray             # (T,) step times
    seeds_hash: str
    state: Callable[[np.ndarray, int], np.ndarray]     # (rows, step) -> x (B, C, H, W) float64
    eps: Callable[[np.ndarray, int], np.ndarray]       # (rows, step) -> eps (B, C, H, W) float64


def _states(reference, states: str) -> _States:
    if states not in STATES:
        raise ElscliError(f"--states must be one of {', '.join(STATES)}, got {states!r}")
    if states == "network":
        eps = reference.require_eps()
        xs = reference.require_x()
        return _States(reference.num_samples, reference.labels, reference.times[:-1].copy(),
                       seeds_hash(reference.seeds), lambda rows, step: xs[rows, step].astype(np.float64),
                       lambda rows, step: eps[rows, step].astype(np.float64))
    fw = reference.require_forward()
    if fw.eps is None:
        raise ElscliError(f"reference {reference.path or ''!r}: its forward-noised section has no 'forward_eps'")
    key = seeds_hash(np.concatenate([fw.x0.ravel(), fw.noise.ravel(), fw.times.astype(np.float32)]))
    return _States(fw.num_images, fw.labels, fw.times.copy(), key,
                   lambda rows, step: fw.state(step, rows, reference.schedule),
                   lambda rows, step: fw.eps[rows, step].astype(np.float64))


def _check_resumable(prev: "Scan", want: "Scan") -> None:
    """Refuse to continue ``prev`` as the scan ``want`` describes unless they are the same scan."""
    for attr in ("machine", "parameter", "metric", "states", "noise_schedule", "bank_hash",
                 "reference_seeds_hash", "num_reference_samples", "shard"):
        if getattr(prev, attr) != getattr(want, attr):
            raise ElscliError(f"cannot resume: the scan file has {attr} {getattr(prev, attr)!r}, this scan "
                              f"{getattr(want, attr)!r}")
    for attr in ("sample_index", "candidates", "times"):
        a, b = getattr(prev, attr), getattr(want, attr)
        if a.shape != b.shape or not np.allclose(a, b):
            raise ElscliError(f"cannot resume: the scan file's {attr} differ from this scan's")
    if prev.similarity.shape != want.similarity.shape or prev.done.shape != want.similarity.shape:
        raise ElscliError("cannot resume: the scan file's arrays do not match its samples, candidates and steps")


def scan(reference, bank, machine: str, candidates: Sequence[int], *, metric: str = "cosine",
         shard: Shard = WHOLE, evaluator: Optional[Evaluator] = None, threads: Optional[int] = None,
         batch_size: int = 64, progress=None, params: Optional[dict] = None, states: str = "network",
         resume: Optional["Scan"] = None, checkpoint: Optional[Callable[["Scan"], None]] = None,
         should_stop: Optional[Callable[[], bool]] = None, parameter: Optional[str] = PATCH_SIZE,
         machine_params: Optional[dict] = None) -> Scan:
    """Scan a reference against a machine's candidate patch sizes (or values of another scalar
    ``parameter``): every candidate, every step, every sample.

    Parameters
    ----------
    reference : elscli.reference.Reference
        The network's trajectory, with ``x`` and ``eps`` (``states="network"``), or with a forward-noised
        section (``states="forward"``).
    bank : Bank or ndarray (N, C, H, W)
        The training images.
    machine : str
        ls, els or bbels; with ``parameter``, any machine that has it.
    candidates : sequence of int or str
        Candidate sizes (:func:`parse_candidates`), or values of ``parameter``
        (:func:`.parameter_scan.parse_values`).
    metric : {"cosine", "l2"}
    shard : (I, N)
        Scan the reference's samples I, I+N, ... (default all).
    evaluator : callable, optional
        Replaces :func:`machine_evaluator` (tests use an oracle); it gets every candidate still to do for a
        batch at once unless it has ``joint = False``, then one candidate per call.
    threads : int, optional
        Numba threads for the machine calls (None: Numba's setting).
    batch_size : int
        Samples (of one label) evaluated together.
    progress : object with ``advance(n)``, optional
        Told of every (sample, candidate, step) similarity computed.
    params : dict, optional
        Recorded in the scan file.
    states : {"network", "forward"}
        Follow the network's own reverse trajectory (``x``, ``eps``), or the reference's held-out images noised
        forward (``forward_*``: :class:`elscli.reference.ForwardStates`).
    resume : Scan, optional
        An unfinished scan of the same reference, bank, machine, candidates, metric, states and shard (else
        ElscliError): only its entries not ``done`` are computed.
    checkpoint : callable(Scan), optional
        Called with the scan after every unit of work (a candidate, or all candidates of a joint evaluator,
        for a batch of samples at one step).
    should_stop : callable() -> bool, optional
        Asked before every unit; when it answers True the scan returns, unfinished (``done`` says what is
        computed).
    parameter : str
        The machine parameter the candidates are values of (default the patch size); any other goes
        through :func:`.parameter_scan.parameter_evaluator`, as do the patch sizes of machines other than
        ls, els and bbels.
    machine_params : dict, optional
        The machine's other parameters (their defaults when absent).

    Returns
    -------
    Scan

    Raises
    ------
    ElscliError
        No ``eps``/``x`` (or forward section) in the reference, image shapes that differ from the bank's, an
        empty shard, a bad metric, states or candidate list, a ``resume`` scan of another scan; a parameter
        the machine does not have, or a candidate value it refuses; ``batch_size`` < 1.
    """
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ElscliError(f"--batch-size must be at least 1, got {batch_size}")
    parameter = PATCH_SIZE if parameter is None else str(parameter).replace("-", "_")
    if parameter == PATCH_SIZE:
        candidates = np.array(parse_candidates(candidates), dtype=np.int64)
    else:
        candidates = np.array(parse_values(candidates), dtype=np.float64)
    if metric not in METRICS:
        raise ElscliError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    src = _states(reference, states)
    bank_shape = tuple(int(s) for s in bank_images(bank).shape[1:])
    if bank_shape != reference.image_shape:
        raise ElscliError(f"the bank's images have shape {bank_shape} but the reference's have "
                          f"{reference.image_shape}")
    i, n = shard
    idx = np.arange(src.num_samples)[i::n]
    if len(idx) == 0:
        raise ElscliError(f"shard {i}/{n} holds no samples (the reference has {src.num_samples})")
    T = len(src.times)
    K = len(candidates)
    result = Scan(sample_index=idx, candidates=candidates, times=src.times, similarity=np.full((len(idx), K, T), np.nan),
                  machine=machine, metric=metric, bank_hash=str(getattr(bank, "content_hash", "")),
                  reference=str(reference.path or ""), reference_seeds_hash=src.seeds_hash,
                  num_reference_samples=src.num_samples, shard=format_shard((i, n)),
                  noise_schedule=reference.schedule, params=dict(params or {}),
                  done=np.zeros((len(idx), K, T), dtype=bool), states=states, parameter=parameter)
    if resume is not None:
        _check_resumable(resume, result)
        result.similarity = np.array(resume.similarity, dtype=np.float64)
        result.done = np.array(resume.done, dtype=bool)
        result.similarity[~result.done] = np.nan
    if evaluator is None and (parameter != PATCH_SIZE or machine not in LOCAL_MACHINES or machine_params):
        evaluator = parameter_evaluator(machine, bank, parameter, threads=threads, machine_params=machine_params,
                                        noise_schedule=reference.schedule)
        evaluator.check(candidates)      # every candidate value checked by the machine before any work
    if evaluator is None:
        evaluator = machine_evaluator(machine, bank, threads=threads, noise_schedule=reference.schedule)
    joint = bool(getattr(evaluator, "joint", True))
    sim, done = result.similarity, result.done
    labels = src.labels[idx]
    for step in range(T):
        if done[:, :, step].all():
            continue
        t = float(src.times[step])
        a, b = scales(t, reference.schedule)
        for lab in np.unique(labels):
            rows_all = np.flatnonzero(labels == lab)
            for lo in range(0, len(rows_all), batch_size):
                rows = rows_all[lo:lo + batch_size]
                pending = [k for k in range(K) if not done[rows, k, step].all()]
                if not pending:
                    continue
                x = src.state(idx[rows], step)
                net = -src.eps(idx[rows], step) / b
                for ks in ([pending] if joint else [[k] for k in pending]):
                    if should_stop is not None and should_stop():
                        return result
                    x0 = evaluator(x, t, [candidates[k].item() for k in ks], None if lab < 0 else int(lab))
                    for j, k in enumerate(ks):
                        sim[rows, k, step] = similarity(net, -(x - a * x0[j]) / (b * b), metric)
                        done[rows, k, step] = True
                    if progress is not None:
                        progress.advance(len(rows) * len(ks))
                    if checkpoint is not None:
                        checkpoint(result)
    return result


def describe_scan(path) -> Dict:
    """A JSON-ready summary of a scan file for ``elscli info``.  Raises ElscliError as :meth:`Scan.read`."""
    from .aggregate import aggregate

    s = Scan.read(path)
    d = {"format": FORMAT, "machine": s.machine, "parameter": s.parameter, "metric": s.metric, "states": s.states,
         "reference": s.reference,
         "bank_hash": s.bank_hash, "samples": int(len(s.sample_index)),
         "reference_samples": int(s.num_reference_samples), "complete": s.complete, "finished": s.finished,
         "computed": f"{int(s.done.sum())}/{s.done.size}", "shard": s.shard,
         "candidates": [c.item() for c in s.candidates], "steps": int(len(s.times)),
         "times": [round(float(t), 12) for t in s.times]}
    if len(s.sample_index) and s.finished:
        d["schedule_median"] = [p.item() for p in aggregate(s.best, "median")]
    return d


def verify_scan(path) -> list:
    """Read a scan file whole and check it (``elscli info --verify``); returns the checks made: shapes, finite
    similarities, and the stored ``best`` equal to the best candidate of the stored similarities.  Raises
    ElscliError naming the first failure."""
    from ..h5io import open_h5

    s = Scan.read(path)
    where = f"{str(path)!r} fails verification"
    S, K, T = len(s.sample_index), len(s.candidates), len(s.times)
    if s.similarity.shape != (S, K, T):
        raise ElscliError(f"{where}: 'similarity' has shape {s.similarity.shape}, expected {(S, K, T)}")
    if not np.all(np.isfinite(s.similarity)):
        raise ElscliError(f"{where}: 'similarity' holds NaN or infinite values")
    with open_h5(path) as f:
        stored = f["best"][()] if "best" in f else None
    if stored is None or not np.array_equal(stored, s.best):
        raise ElscliError(f"{where}: the stored 'best' sizes are not the best candidates of its similarities")
    return [f"shapes of {S} samples x {K} candidates x {T} steps", "every similarity finite",
            "best sizes recomputed from the similarities"]

