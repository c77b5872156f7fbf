"""Sample runs: the reverse process over a bank with a machine, written to (and read from) run files.

:func:`sample` is the Python face of ``elscli sample``; :class:`Run` holds a run in memory (``Run.open``
reads a run file); :func:`merge_runs` joins the shards of one run; :func:`describe_run` is what
``elscli info`` shows.  The run file schema (``format = "elscli.run"``) is in ``docs/formats.md``.

Reproducibility: sample number ``i`` of root seed ``R`` starts from
``numpy.random.default_rng([i, R]).standard_normal((C, H, W))`` (float64, stored as float32; the sampler
starts from the float32 value, so a resumed or merged run is bitwise identical); with random labels its
label is then drawn from the same generator, ``classes[rng.integers(len(classes))]``.  Nothing else enters
a sample, so the result does not depend on the batch size, the shards or the thread count.

Writing: a run being written lives in ``RUN.h5.partial`` (flushed after every batch of samples); when all
samples are done, or when SIGINT/SIGTERM asks it to stop (at a batch boundary), it is renamed to
``RUN.h5`` — a file at the final path is always a valid run, whose ``done`` rows say what is finished.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__
from .errors import ElscliError
from .h5io import check_output_path, file_format, open_h5, read_attrs, read_params, temp_path_for, write_root_attrs
from .noise import DEFAULT_NOISE_SCHEDULE, get_noise_schedule, time_grid
from .sampler import Step, check_grid, ddim
from .schedule import LocalitySchedule, load_schedule

FORMAT = "elscli.run"
SCHEMA_VERSION = 1
MACHINES = ("is", "ls", "els", "bbels")
DEFAULT_MACHINE = "bbels"
DEFAULT_NUM_SAMPLES = 16
DEFAULT_BATCH_SIZE = 1  # the machines gain nothing from batching yet; 1 stops soonest on a signal
PARTIAL_SUFFIX = ".partial"

# Parameters that make two files parts of the same run (shard, threads, batch size, paths may differ).
IDENTITY_KEYS = ("machine", "noise_schedule", "bank_content_hash", "image_shape", "seed", "num_samples", "label",
                 "times", "patch_sizes", "seeds_hash", "save_trajectory")
BASE_DATASETS = ("sample_ids", "done", "seeds", "labels", "times", "patch_sizes", "final")
TRAJECTORY_DATASETS = ("x", "x0_hat")
PROVENANCE_DATASETS = ("prov_image", "prov_row", "prov_col", "prov_weight", "prov_entropy")
_PROV_DTYPES = {"prov_image": np.int64, "prov_row": np.int32, "prov_col": np.int32,
                "prov_weight": np.float32, "prov_entropy": np.float32}
_PER_SAMPLE = ("sample_ids", "done", "seeds", "labels", "final") + TRAJECTORY_DATASETS + PROVENANCE_DATASETS


# ================================================================================================
# The run in memory
# ================================================================================================
@dataclass
class Run:
    """A run: its datasets (names of ``docs/formats.md``) and root attributes.

    ``interrupted`` is the signal number when :func:`sample` was stopped early (the run is partial).
    """

    arrays: Dict[str, np.ndarray]
    attrs: Dict[str, Any]
    path: Optional[Path] = None
    interrupted: Optional[int] = None
    elapsed: float = 0.0
    samples_computed: int = 0

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Union[str, os.PathLike], *, trajectories: bool = True) -> "Run":
        """Read a run file (``trajectories=False`` skips ``x`` and ``x0_hat``)."""
        path = Path(path)
        with open_h5(path, "r", expected_format=FORMAT) as f:
            try:
                arrays = {k: f[k][()] for k in f.keys()
                          if isinstance(f[k], _h5py().Dataset) and (trajectories or k not in TRAJECTORY_DATASETS)}
            except (OSError, KeyError, ValueError) as exc:
                raise ElscliError(f"{str(path)!r}: cannot read the run's datasets (corrupt?): "
                                  f"{str(exc).splitlines()[0]}") from None
            attrs = read_attrs(f)
        missing = [k for k in BASE_DATASETS if k not in arrays]
        if missing:
            raise ElscliError(f"{str(path)!r} is not a complete run file (missing {', '.join(missing)})")
        return cls(arrays, attrs, path)

    # -- views -----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        done = int(np.sum(self.arrays["done"])) if "done" in self.arrays else 0
        steps = len(self.arrays["times"]) - 1 if "times" in self.arrays else 0
        return (f"Run(machine={self.machine!r}, samples={len(self) if self.arrays else 0}, done={done}, "
                f"steps={steps}, path={str(self.path) if self.path else None!r})")

    def __len__(self) -> int:
        return int(len(self.arrays["sample_ids"]))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def params(self) -> Dict[str, Any]:
        raw = self.attrs.get("params", "{}")
        return json.loads(raw) if isinstance(raw, str) else dict(raw)

    sample_ids = property(lambda self: self.arrays["sample_ids"])
    done = property(lambda self: self.arrays["done"])
    seeds = property(lambda self: self.arrays["seeds"])
    labels = property(lambda self: self.arrays["labels"])
    times = property(lambda self: self.arrays["times"])
    patch_sizes = property(lambda self: self.arrays["patch_sizes"])
    final = property(lambda self: self.arrays["final"])
    x = property(lambda self: self.arrays.get("x"))
    x0_hat = property(lambda self: self.arrays.get("x0_hat"))
    machine = property(lambda self: str(self.attrs.get("machine", "")))

    @property
    def provenance(self) -> Optional[Dict[str, np.ndarray]]:
        """``{"image", "row", "col", "weight", "entropy"}`` arrays (S, H, W), or None."""
        if "prov_image" not in self.arrays:
            return None
        return {k[len("prov_"):]: self.arrays[k] for k in PROVENANCE_DATASETS if k in self.arrays}

    @property
    def complete(self) -> bool:
        return bool(np.all(self.done))

    def save(self, path: Union[str, os.PathLike], force: bool = False) -> Path:
        """Write this run to ``path`` atomically."""
        path = check_output_path(path, force)
        tmp = temp_path_for(path)
        try:
            with _h5py().File(tmp, "w") as f:
                for k, v in self.attrs.items():
                    f.attrs[k] = v
                for k in _dataset_order(self.arrays):
                    _create(f, k, self.arrays[k])
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.path = path
        return path


def _dataset_order(arrays: Dict[str, np.ndarray]) -> List[str]:
    known = list(BASE_DATASETS) + list(TRAJECTORY_DATASETS) + list(PROVENANCE_DATASETS)
    return [k for k in known if k in arrays] + sorted(k for k in arrays if k not in known)


def _create(f, name: str, data: np.ndarray) -> None:
    data = np.asarray(data)
    chunks = None
    if name in _PER_SAMPLE and data.ndim >= 2 and data.shape[0] > 0:
        chunks = (1,) + data.shape[1:]
    f.create_dataset(name, data=data, chunks=chunks)


def _h5py():
    import h5py

    return h5py


# ================================================================================================
# Seeds, labels, shards
# ================================================================================================
def initial_noise(i: int, seed: int, shape: Tuple[int, ...], classes: Optional[Sequence[int]] = None
                  ) -> Tuple[np.ndarray, Optional[int]]:
    """Sample ``i``'s starting noise (float64) and, when ``classes`` is given, its random label."""
    rng = np.random.default_rng([int(i), int(seed)])
    noise = rng.standard_normal(tuple(shape))
    label = None
    if classes is not None:
        label = int(classes[int(rng.integers(len(classes)))])
    return noise, label


def parse_shard(spec: Union[str, Tuple[int, int], None]) -> Tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; None -> the Slurm array defaults, else (0, 1)."""
    if spec is None:
        return shard_from_env()
    if isinstance(spec, tuple):
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


def shard_from_env(env: Optional[Dict[str, str]] = None) -> Tuple[int, int]:
    """(I, N) from ``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT`` (minus ``SLURM_ARRAY_TASK_MIN``)."""
    env = os.environ if env is None else env
    tid, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
    if tid is None or count is None:
        return 0, 1
    try:
        i = int(tid) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        n = int(count)
    except ValueError:
        raise ElscliError(f"SLURM_ARRAY_TASK_ID={tid!r} / SLURM_ARRAY_TASK_COUNT={count!r} are not integers") from None
    return parse_shard((i, n))


def resolve_threads(threads: Optional[int] = None) -> int:
    """``--threads``: given, else ``SLURM_CPUS_PER_TASK``, else all cores available to this process."""
    if threads is None:
        env = os.environ.get("SLURM_CPUS_PER_TASK")
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ElscliError(f"SLURM_CPUS_PER_TASK={env!r} is not an integer") from None
        else:
            try:
                threads = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                threads = os.cpu_count() or 1
    if threads < 1:
        raise ElscliError(f"--threads must be at least 1, got {threads}")
    return int(threads)


def apply_threads(threads: int) -> int:
    """The thread count the machines will use (``threads`` capped at what Numba was started with).

    The machines set it for each call and restore the previous setting after (``numba.set_num_threads``),
    so sampling from Python leaves the caller's Numba setting alone."""
    import numba

    return max(1, min(int(threads), int(numba.config.NUMBA_NUM_THREADS)))


def shard_output_path(output: Union[str, os.PathLike], shard: Tuple[int, int]) -> Path:
    """``-o`` for shard I of N: ``{shard}``/``{shards}`` in the name are filled in; with N > 1 and no
    placeholder, ``-shardIofN`` is added before the suffix so that array tasks never share a file."""
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


# ================================================================================================
# Seeds taken from a file
# ================================================================================================
@dataclass
class SeedSource:
    seeds: np.ndarray          # (S, C, H, W) float32
    labels: Optional[np.ndarray]
    times: np.ndarray
    sample_ids: np.ndarray
    path: str
    kind: str                  # "reference" or "run"
    noise_schedule: str = DEFAULT_NOISE_SCHEDULE


def read_seed_source(path: Union[str, os.PathLike]) -> SeedSource:
    """Seeds, labels and time grid from a reference trajectory (NPZ/HDF5) or an earlier run."""
    path = Path(path)
    if not path.exists():
        raise ElscliError(f"--from-seeds {str(path)!r} does not exist")
    if path.suffix.lower() != ".npz":
        with open_h5(path) as f:
            fmt = file_format(f)
        if fmt == FORMAT:
            run = Run.open(path, trajectories=False)
            return SeedSource(np.asarray(run.seeds, np.float32), np.asarray(run.labels, np.int64),
                              check_grid(run.times), np.asarray(run.sample_ids, np.int64), str(path), "run",
                              str(run.attrs.get("noise_schedule", DEFAULT_NOISE_SCHEDULE)))
    from . import reference

    ref = reference.read(path, load_trajectories=False)
    return SeedSource(ref.seeds, ref.labels, check_grid(ref.times), np.arange(len(ref.seeds), dtype=np.int64),
                      str(path), "reference", ref.schedule)


def _hash_arrays(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# ================================================================================================
# Banks
# ================================================================================================
def cache_dir() -> Path:
    """``$ELSCLI_CACHE``, else ``~/.cache/elscli``."""
    env = os.environ.get("ELSCLI_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "elscli"


def default_bank_path() -> Path:
    """The bank of the bundled ``sample_data/mnist-1k``, built on first use into :func:`cache_dir`.

    The build claims the file (:mod:`elscli.outputs`), writes a temporary file and renames it into place, so
    concurrent array tasks are safe: one builds, the others wait for it (up to 10 minutes) and use it.  The
    name carries a hash of the source files, so a changed ``sample_data`` gives a new bank.
    """
    from .bank import default_sample_data_dir

    src = Path(default_sample_data_dir()) / "mnist-1k"
    if not src.is_dir():
        raise ElscliError(f"the bundled sample data {str(src)!r} is missing; pass --bank BANK.h5")
    h = hashlib.sha256()
    for p in sorted(src.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    target = cache_dir() / f"sample-mnist-1k-{h.hexdigest()[:12]}.h5"
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ElscliError(f"cannot create the cache directory {str(target.parent)!r}: {exc}") from None
    from .bank import build_bank
    from .outputs import claim_output

    # One task builds it (claimed, temporary name, atomic rename); concurrent tasks wait for it, then use it.
    with claim_output(target, force=True, wait=600.0):
        if not target.exists():
            bank, _stats = build_bank(src)
            bank.save(target, force=True)
    return target


def open_bank(bank: Any = None):
    """A Bank from a Bank, a path, or None (the bundled sample bank)."""
    from .bank import Bank

    if isinstance(bank, Bank):
        return bank
    path = default_bank_path() if bank is None else Path(bank)
    if not path.exists():
        raise ElscliError(f"bank {str(path)!r} does not exist")
    try:
        return Bank.open(path)
    except ElscliError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ElscliError(f"bank {str(path)!r} cannot be read (corrupt?): {str(exc).splitlines()[0]}") from None


# ================================================================================================
# The denoiser a run uses
# ================================================================================================
def _machine_api() -> Tuple[Callable, Callable]:
    from . import machines

    return machines.denoise, machines.denoise_with_provenance


class MachineDenoiser:
    """``D(x, t) -> x0_hat`` for one batch: the machine at the patch size of the step starting at ``t``,
    restricted to the batch's labels; at ``provenance_time`` (the last step) it also keeps the provenance."""

    def __init__(self, machine: str, bank, times: np.ndarray, patch_sizes: np.ndarray, labels: np.ndarray,
                 threads: Optional[int] = None, noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> None:
        self.machine = machine
        self.bank = bank
        self._sizes = {float(t): int(p) for t, p in zip(times[:-1], patch_sizes)}
        self._last_t = float(times[-2])
        self.labels = _label_arg(labels)
        self.threads = threads
        self.provenance = None
        self.noise_schedule = noise_schedule
        self._denoise, self._denoise_prov = _machine_api()

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        p = self._sizes[float(t)]
        patch = None if self.machine == "is" else p
        if float(t) == self._last_t:
            x0, self.provenance = self._denoise_prov(self.machine, x, t, self.bank, patch, self.labels,
                                                     threads=self.threads, noise_schedule=self.noise_schedule)
            return x0
        return self._denoise(self.machine, x, t, self.bank, patch, self.labels, threads=self.threads,
                             noise_schedule=self.noise_schedule)


def _label_arg(labels: np.ndarray):
    labels = np.asarray(labels, dtype=np.int64)
    if np.all(labels < 0):
        return None
    return labels


# ================================================================================================
# Planning a run
# ================================================================================================
@dataclass
class RunPlan:
    machine: str
    times: np.ndarray
    patch_sizes: np.ndarray
    sample_ids: np.ndarray       # this shard's global ids
    seeds: np.ndarray            # (S, C, H, W) float32
    labels: np.ndarray           # (S,) int64
    params: Dict[str, Any]
    attrs: Dict[str, Any]
    save_trajectory: bool
    shape: Tuple[int, int, int]


def plan_run(bank, *, machine: str = DEFAULT_MACHINE, patch_size: Optional[int] = None,
             schedule: Any = None, steps: Optional[int] = None, start_time: Optional[float] = None,
             num_samples: Optional[int] = None, seed: int = 0, label: Union[int, str, None] = None,
             from_seeds: Union[str, os.PathLike, None] = None, shard: Union[str, Tuple[int, int], None] = None,
             save_trajectory: bool = False, noise_schedule: str = DEFAULT_NOISE_SCHEDULE,
             command_line: Optional[str] = None, bank_path: Optional[str] = None) -> RunPlan:
    """Validate every input and work out what a run (or shard) computes; nothing is computed yet."""
    machine = str(machine).lower()
    if machine not in MACHINES:
        raise ElscliError(f"unknown machine {machine!r} (choose one of {', '.join(MACHINES)})")
    get_noise_schedule(noise_schedule)
    shard = parse_shard(shard)
    shape = tuple(int(s) for s in bank.shape)
    classes = [int(c) for c in np.asarray(bank.classes).tolist() if int(c) >= 0]

    # -- the time grid and the seeds ----------------------------------------------------------------
    source = None
    if from_seeds is not None:
        if steps is not None or start_time is not None:
            raise ElscliError("--steps/--start-time cannot be combined with --from-seeds (the grid comes from the file)")
        if label is not None:
            raise ElscliError("--label/--labels cannot be combined with --from-seeds (the labels come from the file)")
        source = read_seed_source(from_seeds)
        if source.noise_schedule != noise_schedule:
            raise ElscliError(f"--from-seeds {source.path!r} uses noise schedule {source.noise_schedule!r}, "
                              f"not {noise_schedule!r}")
        if tuple(source.seeds.shape[1:]) != shape:
            raise ElscliError(f"--from-seeds {source.path!r}: seeds have shape {tuple(source.seeds.shape[1:])} "
                              f"but the bank's images are {shape}")
        times = source.times
    else:
        times = time_grid(20 if steps is None else int(steps), 1.0 if start_time is None else float(start_time))

    # -- patch sizes per step -------------------------------------------------------------------------
    if patch_size is not None and schedule is not None:
        raise ElscliError("give either --patch-size or --schedule, not both")
    if machine == "is":
        sched_desc = None
        patch_sizes = np.zeros(len(times) - 1, dtype=np.int64)
    else:
        sched = LocalitySchedule.constant(patch_size) if patch_size is not None else load_schedule(schedule)
        sched_desc = sched.source or sched.to_json()
        patch_sizes = sched.for_grid(times)
        if machine == "els" and int(patch_sizes.max()) > min(shape[1:]):
            raise ElscliError(f"ELS has no valid {int(patch_sizes.max())}x{int(patch_sizes.max())} patch in "
                              f"{shape[1]}x{shape[2]} images; use patch sizes <= {min(shape[1:])}")

    # -- which samples ----------------------------------------------------------------------------------
    if source is not None:
        total = len(source.seeds) if num_samples is None else int(num_samples)
        if not 0 <= total <= len(source.seeds):
            raise ElscliError(f"--num-samples {total}: {source.path!r} holds only {len(source.seeds)} seeds")
        positions = np.arange(total)[shard[0]::shard[1]]
        sample_ids = source.sample_ids[positions]
        seeds = np.ascontiguousarray(source.seeds[positions], dtype=np.float32)
        labels = (np.full(len(positions), -1, np.int64) if source.labels is None
                  else np.asarray(source.labels[positions], np.int64))
        seeds_hash = _hash_arrays(source.seeds[:total], source.sample_ids[:total],
                                  source.labels[:total] if source.labels is not None else np.zeros(0))
        label_desc: Any = "from-seeds"
        root_seed = None
    else:
        total = DEFAULT_NUM_SAMPLES if num_samples is None else int(num_samples)
        if total < 1:
            raise ElscliError(f"--num-samples must be at least 1, got {total}")
        if isinstance(seed, bool) or int(seed) < 0:
            raise ElscliError(f"--seed must be a non-negative integer, got {seed}")
        root_seed = int(seed)
        sample_ids = np.arange(total, dtype=np.int64)[shard[0]::shard[1]]
        random_labels = False
        fixed_label = -1
        if label is None:
            label_desc = None
        elif str(label).lower() == "random":
            if not classes:
                raise ElscliError("--labels random needs a labelled bank (this bank has no labels)")
            random_labels, label_desc = True, "random"
        else:
            try:
                fixed_label = int(label)
            except (TypeError, ValueError):
                raise ElscliError(f"--label must be an integer class or 'random', got {label!r}") from None
            if fixed_label < 0:
                raise ElscliError(f"--label must be a class of the bank (>= 0), got {fixed_label}; "
                                  "leave it out for unconditional samples")
            label_desc = fixed_label
        seeds = np.empty((len(sample_ids),) + shape, dtype=np.float32)
        labels = np.full(len(sample_ids), fixed_label, dtype=np.int64)
        for k, i in enumerate(sample_ids):
            noise, lab = initial_noise(int(i), root_seed, shape, classes if random_labels else None)
            seeds[k] = noise
            if random_labels:
                labels[k] = lab
        seeds_hash = None
    bad = sorted(set(int(v) for v in labels if v >= 0) - set(classes))
    if bad:
        shown = ", ".join(map(str, classes[:20])) + (" ..." if len(classes) > 20 else "")
        raise ElscliError(f"label {bad[0]} is not in the bank (its classes: {shown or 'none, unlabelled'})")

    params = {
        "machine": machine,
        "noise_schedule": noise_schedule,
        "bank": bank_path if bank_path is not None else (str(bank.path) if getattr(bank, "path", None) else None),
        "bank_content_hash": str(bank.content_hash),
        "image_shape": list(shape),
        "seed": root_seed,
        "num_samples": int(total),
        "label": label_desc,
        "schedule": sched_desc,
        "patch_size": None if patch_size is None else int(patch_size),
        "steps": int(len(times) - 1),
        "start_time": float(times[0]),
        "times": [float(t) for t in times],
        "patch_sizes": [int(p) for p in patch_sizes],
        "from_seeds": None if source is None else source.path,
        "seeds_hash": seeds_hash,
        "save_trajectory": bool(save_trajectory),
        "shard": f"{shard[0]}/{shard[1]}",
    }
    attrs = {
        "machine": machine,
        "noise_schedule": noise_schedule,
        "bank_content_hash": str(bank.content_hash),
        "seed": -1 if root_seed is None else root_seed,
        "num_samples": int(total),
        "shard": f"{shard[0]}/{shard[1]}",
        "command_line": command_line if command_line is not None else _default_command_line(),
    }
    return RunPlan(machine, np.asarray(times, np.float64), patch_sizes, sample_ids, seeds, labels, params, attrs,
                   bool(save_trajectory), shape)


def _default_command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("elscli", "__main__.py")):
        argv[0] = "elscli"
    return " ".join(shlex.quote(a) for a in argv)


def identity(params: Dict[str, Any]) -> Dict[str, Any]:
    return {k: params.get(k) for k in IDENTITY_KEYS}


# ================================================================================================
# Stores: where rows go (a dict of arrays, or an HDF5 file)
# ================================================================================================
def _empty_arrays(plan: RunPlan) -> Dict[str, np.ndarray]:
    S = len(plan.sample_ids)
    C, H, W = plan.shape
    T = len(plan.times) - 1
    arrays = {
        "sample_ids": np.asarray(plan.sample_ids, np.int64),
        "done": np.zeros(S, dtype=bool),
        "seeds": plan.seeds,
        "labels": plan.labels,
        "times": plan.times,
        "patch_sizes": np.asarray(plan.patch_sizes, np.int64),
        "final": np.full((S, C, H, W), np.nan, np.float32),
        "prov_image": np.full((S, H, W), -1, np.int64),
        "prov_row": np.full((S, H, W), -1, np.int32),
        "prov_col": np.full((S, H, W), -1, np.int32),
        "prov_weight": np.full((S, H, W), np.nan, np.float32),
        "prov_entropy": np.full((S, H, W), np.nan, np.float32),
    }
    if plan.save_trajectory:
        arrays["x"] = np.full((S, T + 1, C, H, W), np.nan, np.float32)
        arrays["x0_hat"] = np.full((S, T, C, H, W), np.nan, np.float32)
    return arrays


def _h5_open_rw(path: Path, mode: str):
    """Open for writing with HDF5 file locking where the filesystem supports it (NFS often does not)."""
    h5py = _h5py()
    try:
        return h5py.File(path, mode, locking="best-effort")
    except TypeError:  # h5py/HDF5 without the locking option
        return h5py.File(path, mode)


def _new_file(path: Path, plan: RunPlan):
    f = _h5_open_rw(path, "w")
    try:
        write_root_attrs(f, FORMAT, SCHEMA_VERSION, plan.params, **plan.attrs)
        arrays = _empty_arrays(plan)
        for k in _dataset_order(arrays):
            a = arrays[k]
            if k in ("sample_ids", "seeds", "labels", "times", "patch_sizes", "done"):
                _create(f, k, a)
            else:
                chunks = (1,) + a.shape[1:] if a.shape[0] > 0 else None
                fill = -1 if a.dtype.kind == "i" else np.nan
                f.create_dataset(k, shape=a.shape, dtype=a.dtype, chunks=chunks, fillvalue=fill)
        f.flush()
    except BaseException:
        f.close()
        raise
    return f


def _check_resumable(f, path: Path, plan: RunPlan) -> None:
    if file_format(f) != FORMAT:
        raise ElscliError(f"{str(path)!r} is not an {FORMAT} file; cannot --resume it")
    old = read_params(f)
    new = plan.params
    diff = [k for k in IDENTITY_KEYS + ("shard",) if old.get(k) != new.get(k)]
    if diff:
        k = diff[0]
        raise ElscliError(f"--resume: {str(path)!r} was made with {k}={old.get(k)!r}, not {new.get(k)!r}; "
                          "resume with the same parameters (or write a new file)")
    missing = [k for k in BASE_DATASETS + PROVENANCE_DATASETS if k not in f]
    if plan.save_trajectory:
        missing += [k for k in TRAJECTORY_DATASETS if k not in f]
    if missing:
        raise ElscliError(f"--resume: {str(path)!r} lacks {', '.join(missing)} (not a run file written by sample)")
    if not np.array_equal(f["sample_ids"][()], plan.sample_ids) or not np.array_equal(f["seeds"][()], plan.seeds):
        raise ElscliError(f"--resume: {str(path)!r} holds other samples than this run would")


# ================================================================================================
# Signals
# ================================================================================================
class _StopFlag:
    """SIGINT/SIGTERM -> stop at a sample boundary; a second signal interrupts at once (outside file writes)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.writing = False
        self.pending_interrupt = False
        self._old: Dict[int, Any] = {}
        self.on_first: Optional[Callable[[int], None]] = None

    def _handler(self, signum, frame) -> None:
        if self.signum is not None:
            if self.writing:  # never tear a write; raise as soon as it is done
                self.pending_interrupt = True
                return
            raise KeyboardInterrupt
        self.signum = signum
        if self.on_first is not None:
            self.on_first(signum)

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class _AbandonBatch(Exception):
    """Raised from the step callback: a stop was requested and the batch would take too long to finish."""


def stop_grace_seconds() -> float:
    """How long a stop request may wait for the samples in flight (``$ELSCLI_STOP_GRACE``, default 20 s —
    Slurm sends SIGKILL 30 s after SIGTERM by default).  Longer, and the batch in flight is dropped: the
    file keeps only finished samples, and ``--resume`` recomputes the dropped ones."""
    try:
        return float(os.environ.get("ELSCLI_STOP_GRACE", "20"))
    except ValueError:
        return 20.0


# ================================================================================================
# sample()
# ================================================================================================
def sample(bank: Any = None, *, machine: str = DEFAULT_MACHINE, patch_size: Optional[int] = None,
           schedule: Any = None, steps: Optional[int] = None, start_time: Optional[float] = None,
           num_samples: Optional[int] = None, seed: int = 0, label: Union[int, str, None] = None,
           from_seeds: Union[str, os.PathLike, None] = None, output: Union[str, os.PathLike, None] = None,
           force: bool = False, resume: bool = False, shard: Union[str, Tuple[int, int], None] = None,
           save_trajectory: bool = False, threads: Optional[int] = None, batch_size: Optional[int] = None,
           quiet: bool = True, png: Union[str, os.PathLike, None] = None, handle_signals: bool = True,
           command_line: Optional[str] = None, progress_stream=None) -> Run:
    """Sample a run with a score machine — the Python face of ``elscli sample``.

    ``bank``: a :class:`~elscli.bank.Bank`, a bank path, or None for the bundled sample bank.
    ``machine``: is, ls, els or bbels.  ``patch_size`` (constant) or ``schedule`` (``paper:NAME``, a JSON
    file, a mapping, an int; default ``paper:MNIST_ResNet_zeros``).  ``steps``/``start_time``: equal steps from
    ``start_time`` (default 20 from 1.0) to 0.  ``num_samples`` (default 16), root ``seed``, ``label`` (an int,
    ``"random"`` or None).  ``from_seeds``: a reference trajectory or run file giving seeds, labels and times.
    ``output``: write a run file (atomically; ``resume`` continues a partial one, ``force`` overwrites);
    ``shard="I/N"`` (default from the Slurm array variables) computes samples I, I+N, ...
    Returns the :class:`Run` (its ``interrupted`` is set when SIGINT/SIGTERM stopped it early).

    >>> run = elscli.sample("bank.h5", machine="bbels", num_samples=4, seed=1)   # doctest: +SKIP
    >>> run.final.shape                                                         # doctest: +SKIP
    (4, 1, 32, 32)
    """
    if resume and force:
        raise ElscliError("give --resume or --force, not both")
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    if int(batch_size) < 1:
        raise ElscliError(f"--batch-size must be at least 1, got {batch_size}")
    # Check the output before any expensive work.
    shard_t = parse_shard(shard)
    out_path = partial = None
    if output is not None:
        out_path = shard_output_path(output, shard_t)
        check_output_path(out_path, force, allow_existing=resume)
        partial = out_path.with_name(out_path.name + PARTIAL_SUFFIX)
        if partial.exists() and not (resume or force):
            raise ElscliError(f"{str(partial)!r} exists (an interrupted run); pass --resume to continue it "
                              "or --force to start over")
    if png is not None:
        check_output_path(png, force or resume)
    bank_path = None if (bank is None or hasattr(bank, "images")) else str(bank)
    bank_obj = open_bank(bank)
    if bank_path is None and getattr(bank_obj, "path", None) is not None:
        bank_path = str(bank_obj.path)
    plan = plan_run(bank_obj, machine=machine, patch_size=patch_size, schedule=schedule, steps=steps,
                    start_time=start_time, num_samples=num_samples, seed=seed, label=label, from_seeds=from_seeds,
                    shard=shard_t, save_trajectory=save_trajectory, command_line=command_line, bank_path=bank_path)
    n_threads = apply_threads(resolve_threads(threads))
    plan.params["threads"] = n_threads
    plan.params["batch_size"] = int(batch_size)

    if out_path is None:
        store = _empty_arrays(plan)
        run = _execute(plan, store, bank_obj, n_threads, int(batch_size), quiet, handle_signals, progress_stream,
                       flush=None)
        run.attrs = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "elscli_version": __version__,
                     "params": json.dumps(plan.params, sort_keys=True), **plan.attrs}
        if png is not None and run.done.any():
            save_grid_png(run, png)
        return run

    # -- a run file: work in RUN.h5.partial, rename into place when done or stopped ---------------------
    resume_from = None
    if resume:
        if partial.exists():
            resume_from = partial
        elif out_path.exists():
            resume_from = out_path
    try:
        if resume_from is not None:
            try:
                with open_h5(resume_from) as f:
                    _check_resumable(f, resume_from, plan)
            except ElscliError as exc:
                if resume_from != partial or "readable" not in str(exc):
                    raise
                if not out_path.exists():  # a hard kill tore the partial file: nothing to resume
                    raise ElscliError(f"{str(partial)!r} is unreadable (torn by a hard kill?); delete it or pass "
                                      "--force to start over") from None
                resume_from = out_path      # fall back to the last file that was renamed into place
                with open_h5(resume_from) as f:
                    _check_resumable(f, resume_from, plan)
            if resume_from == out_path:
                work = temp_path_for(out_path)
                shutil.copyfile(out_path, work)
                os.replace(work, partial)
            f = _h5_open_rw(partial, "r+")
        else:
            f = _new_file(partial, plan)
    except BlockingIOError:
        raise ElscliError(f"{str(partial)!r} is being written by another process") from None
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise ElscliError(f"{str(partial)!r} is being written by another process") from None
        raise
    ok = False
    try:
        store = {k: f[k] for k in f.keys()}
        # the execution record of this (last) session
        f.attrs["command_line"] = plan.attrs["command_line"]
        run = _execute(plan, store, bank_obj, n_threads, int(batch_size), quiet, handle_signals, progress_stream,
                       flush=f.flush)
        ok = True
    finally:
        done_any = bool(np.any(f["done"][()])) if f.id.valid else False
        f.close()
        if ok or done_any:
            os.replace(partial, out_path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
    result = Run.open(out_path)
    result.interrupted, result.elapsed, result.samples_computed = run.interrupted, run.elapsed, run.samples_computed
    if png is not None and result.done.any():
        save_grid_png(result, png)
    return result


def _execute(plan: RunPlan, store, bank, threads: int, batch_size: int, quiet: bool, handle_signals: bool,
             progress_stream, flush: Optional[Callable[[], None]]) -> Run:
    from .progress import Progress

    T = len(plan.times) - 1
    done = np.asarray(store["done"][()] if hasattr(store["done"], "id") else store["done"], dtype=bool)
    todo = np.flatnonzero(~done)
    stop = _StopFlag() if handle_signals else contextlib.nullcontext(None)
    t0 = time.monotonic()
    computed = 0
    interrupted = None
    grace = stop_grace_seconds()
    with stop as flag, Progress(len(todo) * T, "sample", quiet=quiet, unit="step", group=(T, "samples"),
                                stream=progress_stream) as bar:
        if flag is not None:
            flag.on_first = lambda s: bar.log(
                f"elscli: {signal.Signals(s).name} received: stopping at the next sample boundary "
                "(send it again to stop at once)")
        for start in range(0, len(todo), batch_size):
            if flag is not None and flag.signum is not None:
                break
            rows = todo[start:start + batch_size]
            x_init = plan.seeds[rows].astype(np.float64)
            den = MachineDenoiser(plan.machine, bank, plan.times, plan.patch_sizes, plan.labels[rows], threads,
                                  plan.params["noise_schedule"])
            traj_x = traj_x0 = None
            if plan.save_trajectory:
                traj_x = np.empty((len(rows), T + 1) + plan.shape, np.float32)
                traj_x0 = np.empty((len(rows), T) + plan.shape, np.float32)
                traj_x[:, 0] = plan.seeds[rows]
            batch_start = time.monotonic()

            def on_step(step: Step) -> None:
                if traj_x is not None:
                    traj_x[:, step.index + 1] = step.x_next
                    traj_x0[:, step.index] = step.x0_hat
                bar.advance(len(rows))
                if flag is not None and flag.signum is not None and not step.is_last:
                    per_step = (time.monotonic() - batch_start) / (step.index + 1)
                    if per_step * (T - step.index - 1) > grace:
                        raise _AbandonBatch

            try:
                final = ddim(den, x_init, plan.times, callback=on_step, noise_schedule=plan.params["noise_schedule"])
            except _AbandonBatch:
                bar.log(f"elscli: dropped the {len(rows)} sample(s) in flight (they would take longer than "
                        f"{grace:g} s to finish; ELSCLI_STOP_GRACE)")
                break
            if flag is not None:
                flag.writing = True
            _write_rows(store, rows, final, den.provenance, traj_x, traj_x0)
            store["done"][rows] = True
            if flush is not None:
                flush()
            if flag is not None:
                flag.writing = False
                if flag.pending_interrupt:
                    raise KeyboardInterrupt
            computed += len(rows)
        if flag is not None and flag.signum is not None and computed < len(todo):
            interrupted = flag.signum
    in_memory = not any(hasattr(v, "id") for v in store.values())
    return Run(dict(store) if in_memory else {}, dict(plan.attrs), None, interrupted, time.monotonic() - t0,
               computed)


def _write_rows(store, rows: np.ndarray, final: np.ndarray, prov, traj_x, traj_x0) -> None:
    rows = np.asarray(rows)
    store["final"][rows] = final.astype(np.float32)
    if prov is not None:
        for k in PROVENANCE_DATASETS:
            val = getattr(prov, k[len("prov_"):], None)
            if val is not None:
                store[k][rows] = np.asarray(val).astype(_PROV_DTYPES[k])
    if traj_x is not None:
        store["x"][rows] = traj_x
        store["x0_hat"][rows] = traj_x0


# ================================================================================================
# Merging shards
# ================================================================================================
def merge_runs(paths: Sequence[Union[str, os.PathLike]], output: Union[str, os.PathLike], *,
               allow_missing: bool = False, force: bool = False, command_line: Optional[str] = None) -> Run:
    """Merge the shards of one run into one file (rows sorted by sample id).

    The shards must have the same parameters and bank hash, disjoint sample ids, and together hold every
    sample (finished) unless ``allow_missing``; the merged file then holds only the finished samples.
    """
    if not paths:
        raise ElscliError("merge needs at least one run file")
    out = check_output_path(output, force)
    resolved = {Path(p).resolve() for p in paths}
    if out.resolve() in resolved:
        raise ElscliError(f"-o {str(out)!r} is one of the inputs")
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
        if k in ("times", "patch_sizes"):
            arrays[k] = first.arrays[k]
            for p, r in zip(paths[1:], runs[1:]):
                if not np.array_equal(r.arrays[k], first.arrays[k]):
                    raise ElscliError(f"{str(p)!r} has other {k} than {str(paths[0])!r}")
        else:
            arrays[k] = np.concatenate([r.arrays[k][r.done] for r in runs])
    order = np.argsort(arrays["sample_ids"], kind="stable")
    for k in arrays:
        if k not in ("times", "patch_sizes"):
            arrays[k] = arrays[k][order]
    params = dict(first.params)
    params["shard"] = "0/1"
    params["merged_from"] = [str(p) for p in paths]
    attrs = dict(first.attrs)
    attrs["params"] = json.dumps(params, sort_keys=True)
    attrs["shard"] = "0/1"
    attrs["elscli_version"] = __version__
    attrs["command_line"] = command_line if command_line is not None else _default_command_line()
    run = Run(arrays, attrs)
    run.save(out, force=force)
    return run


# ================================================================================================
# Describing, exporting, pictures
# ================================================================================================
def describe_run(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """A JSON-ready summary of a run file (what ``elscli info RUN.h5`` shows)."""
    run = Run.open(path, trajectories=False)
    with open_h5(path) as f:
        has_traj = all(k in f for k in TRAJECTORY_DATASETS)
    p = run.params
    labels = run.labels
    hist = {str(int(k)): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
    ids = run.sample_ids
    return {
        "path": str(path),
        "format": FORMAT,
        "schema_version": int(run.attrs.get("schema_version", 0)),
        "elscli_version": run.attrs.get("elscli_version"),
        "machine": run.machine,
        "noise_schedule": run.attrs.get("noise_schedule"),
        "bank": p.get("bank"),
        "bank_content_hash": run.attrs.get("bank_content_hash"),
        "seed": p.get("seed"),
        "from_seeds": p.get("from_seeds"),
        "num_samples_total": p.get("num_samples"),
        "shard": p.get("shard"),
        "samples": len(run),
        "samples_done": int(np.sum(run.done)),
        "complete": run.complete,
        "sample_ids": f"{int(ids.min())}..{int(ids.max())}" if len(ids) else "",
        "image_shape": list(run.seeds.shape[1:]),
        "steps": int(len(run.times) - 1),
        "times": [round(float(t), 6) for t in run.times],
        "patch_sizes": [int(v) for v in run.patch_sizes],
        "schedule": p.get("schedule"),
        "labels": hist,
        "trajectory": has_traj,
        "provenance": run.provenance is not None,
        "command_line": run.attrs.get("command_line"),
        # the grid times are sums of float steps (0.6499999999999999); shown to 6 decimals, stored exactly
        "params": {**p, "times": [round(float(t), 6) for t in p["times"]]} if "times" in p else p,
    }


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats (N, C, H, W) -> uint8 (N, H, W, C), clipped; NaN (unfinished) -> 0."""
    img = np.nan_to_num(np.asarray(images, np.float64), nan=-1.0)
    u8 = np.clip(np.round((img + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.transpose(u8, (0, 2, 3, 1))


def _pil_image(tile: np.ndarray):
    from PIL import Image

    if tile.shape[2] == 1:
        return Image.fromarray(tile[:, :, 0], mode="L")
    return Image.fromarray(tile[:, :, :3], mode="RGB")


def save_grid_png(run: Run, path: Union[str, os.PathLike], *, columns: Optional[int] = None,
                  tile_pixels: int = 112, max_samples: int = 400) -> Path:
    """A labelled grid of the finished samples (nearest-neighbour upscaled), written atomically."""
    from PIL import Image, ImageDraw, ImageFont

    rows_idx = np.flatnonzero(run.done)[:max_samples]
    if len(rows_idx) == 0:
        raise ElscliError("the run has no finished samples to draw")
    imgs = to_uint8(run.final[rows_idx])
    n, H, W, C = imgs.shape
    scale = max(1, int(round(tile_pixels / max(H, W))))
    th, tw = H * scale, W * scale
    columns = columns or min(n, 8)
    grid_rows = -(-n // columns)
    try:
        font = ImageFont.load_default(size=max(11, min(18, tw // 7)))
    except TypeError:
        font = ImageFont.load_default()
    caption = max(14, min(22, tw // 6 + 4))
    pad = 4
    header = caption + 6
    canvas = Image.new("RGB", (columns * (tw + pad) + pad, header + grid_rows * (th + caption + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    p = run.params
    title = f"{run.machine}  seed {p.get('seed')}  {len(run.times) - 1} steps  {p.get('schedule') or ''}"
    draw.text((pad, 2), title.strip(), fill="black", font=font)
    for k, r in enumerate(rows_idx):
        gy, gx = divmod(k, columns)
        x0 = pad + gx * (tw + pad)
        y0 = header + gy * (th + caption + pad)
        tile = _pil_image(imgs[k]).resize((tw, th), Image.NEAREST)
        canvas.paste(tile.convert("RGB"), (x0, y0))
        lab = int(run.labels[r])
        text = f"#{int(run.sample_ids[r])}" + (f"  label {lab}" if lab >= 0 else "")
        draw.text((x0 + 1, y0 + th + 1), text, fill="black", font=font)
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        canvas.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def export_run(path: Union[str, os.PathLike], output: Union[str, os.PathLike], *, force: bool = False,
               scale: int = 1) -> List[Path]:
    """Write a run's finished finals as ``.npz`` (``output`` ends in .npz) or one PNG per sample (``output``
    a directory, created if needed; files ``sample_000012.png``).  Returns the files written."""
    run = Run.open(path, trajectories=False)
    rows = np.flatnonzero(run.done)
    output = Path(output)
    if output.suffix.lower() == ".npz":
        check_output_path(output, force)
        tmp = temp_path_for(output).with_suffix(".npz")
        try:
            arrays = {"final": run.final[rows], "sample_ids": run.sample_ids[rows], "labels": run.labels[rows],
                      "seeds": run.seeds[rows], "times": run.times, "patch_sizes": run.patch_sizes}
            np.savez(tmp, **arrays, machine=np.array(run.machine))
            os.replace(tmp, output)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return [output]
    if output.exists() and not output.is_dir():
        raise ElscliError(f"export target {str(output)!r} is a file; give a directory (PNGs) or a .npz path")
    if not output.parent.is_dir():
        raise ElscliError(f"output directory {str(output.parent)!r} does not exist (for {str(output)!r})")
    width = max(6, len(str(int(run.sample_ids.max())))) if len(run) else 6
    targets = [output / f"sample_{int(run.sample_ids[r]):0{width}d}.png" for r in rows]
    clash = [t for t in targets if t.exists()]
    if clash and not force:
        raise ElscliError(f"{str(clash[0])!r} exists; pass --force to overwrite")
    output.mkdir(exist_ok=True)
    from PIL import Image

    imgs = to_uint8(run.final[rows])
    for img, target in zip(imgs, targets):
        pil = _pil_image(img)
        if scale > 1:
            pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
        tmp = temp_path_for(target)
        pil.save(tmp, format="PNG")
        os.replace(tmp, target)
    return targets
