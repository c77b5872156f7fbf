"""Planning a run: every input validated, and what a run (or shard) will compute worked out before any work.

Seeds: sample number ``i`` of root seed ``R`` starts from ``numpy.random.default_rng([i, R]).standard_normal
((C, H, W))`` (float64, stored as float32; the sampler starts from the float32 value, so a resumed or merged
run is bitwise identical); with random labels its label is then drawn from the same generator,
``classes[rng.integers(len(classes))]`` (:func:`initial_noise`).  Or seeds, labels and the time grid come
from a file (:func:`read_seed_source`: a network's reference trajectory or an earlier run).  Nothing else
enters a sample, so the result does not depend on the batch size, the shards or the thread count.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ElscliError, ElscliWarning
from ..h5io import file_format, open_h5
from ..noise import DEFAULT_NOISE_SCHEDULE, get_noise_schedule, time_grid
from ..sampler import check_grid
from ..schedule import (LocalitySchedule, ParameterSchedule, load_schedule, paper_schedule_mismatch,
                        scale_patch_sizes)
from ..shards import ShardSpec, format_shard, parse_shard
from .file import FORMAT, Run

DEFAULT_MACHINE = "bbels"
DEFAULT_NUM_SAMPLES = 16
DEFAULT_STEPS = 20
DEFAULT_START_TIME = 1.0


def initial_noise(i: int, seed: int, shape: Tuple[int, ...], classes: Optional[Sequence[int]] = None
                  ) -> Tuple[np.ndarray, Optional[int]]:
    """Sample ``i``'s starting noise and, when ``classes`` is given, its random label.

    Returns ``(noise, label)``: ``noise`` of ``shape``, float64, ``default_rng([i, seed]).standard_normal``;
    ``label`` = ``classes[rng.integers(len(classes))]`` drawn next from the same generator, or None.
    """
    rng = np.random.default_rng([int(i), int(seed)])
    noise = rng.standard_normal(tuple(shape))
    label = None
    if classes is not None:
        label = int(classes[int(rng.integers(len(classes)))])
    return noise, label


@dataclass
class SeedSource:
    """Seeds, labels and time grid taken from a file (``--from-seeds``).

    ``seeds`` (S, C, H, W) float32; ``labels`` (S,) int64 or None (unconditional); ``times`` (T+1,) float64
    descending to 0; ``sample_ids`` (S,) int64 (a run's own ids, or positions 0..S-1 in a reference);
    ``path``; ``kind`` ``"reference"`` or ``"run"``; ``noise_schedule`` the schedule the file was made with.
    """

    seeds: np.ndarray
    labels: Optional[np.ndarray]
    times: np.ndarray
    sample_ids: np.ndarray
    path: str
    kind: str
    noise_schedule: str = DEFAULT_NOISE_SCHEDULE


def read_seed_source(path: Union[str, os.PathLike]) -> SeedSource:
    """Seeds, labels and time grid from a reference trajectory (NPZ/HDF5) or an earlier run file.

    Raises ElscliError when the file is missing or unreadable, or its time grid is not a valid grid.
    """
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
    from .. import reference

    ref = reference.read(path, load_trajectories=False)
    return SeedSource(ref.seeds, ref.labels, check_grid(ref.times), np.arange(len(ref.seeds), dtype=np.int64),
                      str(path), "reference", ref.schedule)


def hash_arrays(*arrays: np.ndarray) -> str:
    """16 hex digits of SHA-256 over each array's dtype, shape and C-order bytes (identifies seed files)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def default_command_line() -> str:
    """This process's command line, quoted for a shell (``elscli`` for the console script), for provenance."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("elscli", "__main__.py")):
        argv[0] = "elscli"
    return " ".join(shlex.quote(a) for a in argv)


@dataclass
class RunPlan:
    """What a run (or shard) computes, every input checked; nothing computed yet (:func:`plan_run`).

    Attributes
    ----------
    machine : str
        is, ls, els or bbels.
    times : ndarray (T+1,) float64
        The time grid, descending to 0.
    patch_sizes : ndarray (T,) int64
        The patch size of each step (0 for IS).
    sample_ids : ndarray (S,) int64
        This shard's global sample numbers.
    seeds : ndarray (S, C, H, W) float32
        Their starting noise.
    labels : ndarray (S,) int64
        Their labels, -1 unconditional.
    params : dict
        Every parameter, stored as the run file's ``params`` attribute.
    attrs : dict
        The run file's other root attributes.
    save_trajectory : bool
        Keep ``x`` and ``x0_hat`` at every step.
    shape : tuple (C, H, W)
    machine_params : dict
        The machine's parameters other than the patch size (a parameter that follows a schedule: {t: value}
        at the grid's step start times).
    has_provenance : bool
        Whether the machine has a dominant training patch or image per pixel (provenance datasets).
    """

    machine: str
    times: np.ndarray
    patch_sizes: np.ndarray
    sample_ids: np.ndarray
    seeds: np.ndarray
    labels: np.ndarray
    params: Dict[str, Any]
    attrs: Dict[str, Any]
    save_trajectory: bool
    shape: Tuple[int, int, int]
    machine_params: Dict[str, Any] = field(default_factory=dict)
    has_provenance: bool = True


def parameter_value(text: Union[str, float, None], name: str) -> Union[float, Dict[float, float], None]:
    """A machine parameter as given on the command line: a number, or a schedule JSON file written by
    ``locality-scan --parameter NAME`` (``{"times": [...], NAME: [...]}``) -> {t: value}.  None stays None.

    Raises
    ------
    ElscliError
        Neither a number nor a readable schedule file of that parameter
        (:meth:`elscli.schedule.ParameterSchedule.load`).
    """
    if text is None:
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        pass
    path = Path(str(text))
    if not path.is_file():
        raise ElscliError(f"--{name.replace('_', '-')} takes a number or a schedule JSON file, got {str(text)!r}")
    return ParameterSchedule.load(path, name).as_mapping()


def plan_run(bank, *, machine: str = DEFAULT_MACHINE, patch_size: Optional[int] = None,
             schedule: Any = None, steps: Optional[int] = None, start_time: Optional[float] = None,
             num_samples: Optional[int] = None, seed: int = 0, label: Union[int, str, None] = None,
             from_seeds: Union[str, os.PathLike, None] = None, shard: ShardSpec = None,
             save_trajectory: bool = False, noise_schedule: str = DEFAULT_NOISE_SCHEDULE,
             command_line: Optional[str] = None, bank_path: Optional[str] = None,
             schedule_scale: Optional[float] = None, late_scale: Optional[float] = None,
             late_from: Optional[float] = None, machine_params: Optional[Dict[str, Any]] = None) -> RunPlan:
    """Validate every input of :func:`elscli.runs.sample` and work out what the run (or shard) computes.

    The parameters are those of :func:`elscli.runs.sample` (``bank`` a :class:`~elscli.bank.Bank`;
    ``shard`` None means every sample); ``bank_path`` is recorded as the bank's path.  The time grid is
    ``steps`` equal DDIM steps from ``start_time`` to 0 (:func:`elscli.noise.time_grid`) or the file's; each
    step takes its patch size from the locality schedule by its start time
    (:meth:`elscli.schedule.LocalitySchedule.for_grid`), then scaled by ``schedule_scale`` (every step) or
    ``late_scale`` (the steps starting at t <= ``late_from``) with :func:`elscli.schedule.scale_patch_sizes`;
    machines without a patch size ignore it.
    ``machine_params`` — the machine's other parameters by name (``{"sigma": 0.1}``; a value may be a
    schedule {t: value} whose times are the grid's step start times) — are checked by the machine itself at
    every step of the grid before any work, and recorded (all of them, defaults too) as ``machine_params``.

    Raises
    ------
    ElscliError
        An unknown machine or noise schedule, both a patch size and a schedule, a bad schedule or scale
        (both scales, a late scale without its time, a scale for a machine without a patch size), ELS patches
        larger than the image, a parameter the machine lacks or refuses (at any step), a bad sample count,
        seed or label, a label the bank lacks, options that
        cannot be combined with ``from_seeds``, or a seed file whose schedule or image shape differs.
    """
    from ..machines import MACHINES, machine_class

    machine = str(machine).lower()
    if machine not in MACHINES:
        raise ElscliError(f"unknown machine {machine!r} (choose one of {', '.join(MACHINES)})")
    cls = machine_class(machine)
    names = {p.name for p in cls.parameters}
    machine_params = {k: v for k, v in (machine_params or {}).items() if v is not None}
    if "patch_size" in machine_params:
        raise ElscliError("give the patch size as patch_size= / --patch-size or a schedule, not as a machine "
                          "parameter")
    unknown = sorted(set(machine_params) - names)
    if unknown:
        raise ElscliError(f"machine {machine!r} has no parameter {unknown[0]!r} "
                          f"(its parameters: {', '.join(sorted(names)) or 'none'})")
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
        times = time_grid(DEFAULT_STEPS if steps is None else int(steps),
                          DEFAULT_START_TIME if start_time is None else float(start_time))

    # -- patch sizes per step -------------------------------------------------------------------------
    if patch_size is not None and schedule is not None:
        raise ElscliError("give either --patch-size or --schedule, not both")
    if schedule_scale is not None and late_scale is not None:
        raise ElscliError("give --schedule-scale or --late-scale, not both")
    if (late_scale is None) != (late_from is None):
        raise ElscliError("--late-scale F and --late-from T go together")
    if "patch_size" not in names and (schedule_scale is not None or late_scale is not None):
        raise ElscliError(f"{'IS' if machine == 'is' else machine} has no patch size to scale (--schedule-scale "
                          "and --late-scale are for ls, els, bbels, pspc-square)")
    if "patch_size" not in names:
        sched_desc = None
        patch_sizes = np.zeros(len(times) - 1, dtype=np.int64)
        check = dict(machine_params)
    else:
        sched = LocalitySchedule.constant(patch_size) if patch_size is not None else load_schedule(schedule)
        mismatch = None if patch_size is not None else paper_schedule_mismatch(schedule, shape)
        if mismatch is not None:
            warnings.warn(mismatch, ElscliWarning, stacklevel=2)
        sched_desc = sched.source or sched.to_json()
        patch_sizes = sched.for_grid(times)
        if schedule_scale is not None:
            patch_sizes = scale_patch_sizes(patch_sizes, times, schedule_scale)
        elif late_scale is not None:
            patch_sizes = scale_patch_sizes(patch_sizes, times, late_scale, late_from=late_from)
        check = dict(machine_params, patch_size={float(t): int(p) for t, p in zip(times[:-1], patch_sizes)})
    # a parameter given as a schedule {t: value} (locality-scan --parameter) is read off at the grid's times
    for name, v in list(machine_params.items()):
        if isinstance(v, dict):
            keys = np.array([float(k) for k in v], dtype=np.float64)
            vals = list(v.values())
            grid = {}
            for t in times[:-1]:
                hit = np.flatnonzero(np.abs(keys - float(t)) <= 1e-9)
                if hit.size == 0:
                    raise ElscliError(f"the {name} schedule has no value for the step starting at t={float(t):g} "
                                      "(its times must be those of the run's grid)")
                grid[float(t)] = vals[int(hit[0])]
            machine_params[name] = check[name] = grid
    # every parameter (and every patch size of the grid) checked by the machine itself, before any work
    den = cls(bank, noise_schedule=noise_schedule, **check)
    for t in times[:-1]:
        den.values_at(float(t))
    machine_params = {p.name: den.params[p.name] for p in cls.parameters if p.name != "patch_size"}
    recorded = {k: ({"times": list(v), "values": list(v.values())} if isinstance(v, dict) else v)
                for k, v in machine_params.items()}

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
        seeds_hash = hash_arrays(source.seeds[:total], source.sample_ids[:total],
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
        "machine_params": recorded or None,
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
        "schedule_scale": None if schedule_scale is None else float(schedule_scale),
        "late_scale": None if late_scale is None else float(late_scale),
        "late_from": None if late_from is None else float(late_from),
        "from_seeds": None if source is None else source.path,
        "seeds_hash": seeds_hash,
        "save_trajectory": bool(save_trajectory),
        "shard": format_shard(shard),
    }
    attrs = {
        "machine": machine,
        "noise_schedule": noise_schedule,
        "bank_content_hash": str(bank.content_hash),
        "seed": -1 if root_seed is None else root_seed,
        "num_samples": int(total),
        "shard": format_shard(shard),
        "command_line": command_line if command_line is not None else default_command_line(),
    }
    return RunPlan(machine, np.asarray(times, np.float64), patch_sizes, sample_ids, seeds, labels, params, attrs,
                   bool(save_trajectory), shape, machine_params, bool(cls.has_provenance))
