"""Planning a run: every input validated, and what a run (or shard) will compute worked out before any work.

Seeds: sample number ``i`` of root seed ``R`` owns the generator ``numpy.random.default_rng([i, R])``
(:func:`elscli.sampler.sample_generator`).  It draws the starting noise ``eps = standard_normal((C, H, W))``
first; the starting state is ``eps`` for the variance-preserving noise schedules and ``sigma(t_0) eps`` for
the variance-exploding one (``edm``: EDM's ``sigma_max eps``), stored as float32 in ``seeds`` (the sampler
starts from the float32 value, so a resumed or merged run is bitwise identical).  With random labels its
label is drawn next, ``classes[rng.integers(len(classes))]`` (:func:`initial_noise`); a stochastic sampler
(``ddim`` with eta > 0) then draws each step's injected noise from the same generator
(:meth:`RunPlan.noise_source`).  Or seeds, labels, the time grid, the noise schedule, the sampler and (for a
stochastic one) the injected noise come from a file (:func:`read_seed_source`: a network's reference
trajectory or an earlier run).  Nothing else enters a sample, so the result does not depend on the batch
size, the shards or the thread count.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ElscliError, ElscliWarning
from ..h5io import file_format, open_h5
from ..noise import DEFAULT_GRID, DEFAULT_NOISE_SCHEDULE, GRIDS, get_noise_schedule, grid_name, make_grid
from ..sampler import (DEFAULT_SAMPLER, NoiseSource, RecordedNoise, StreamNoise, check_eta, check_grid, check_sampler,
                       check_sampler_eta, is_stochastic, num_evaluations, sample_generator)
from ..schedule import (LocalitySchedule, ParameterSchedule, load_schedule, paper_schedule_mismatch,
                        scale_patch_sizes)
from ..shards import ShardSpec, format_shard, parse_shard
from .file import FORMAT, Run

DEFAULT_MACHINE = "bbels"
DEFAULT_NUM_SAMPLES = 16
DEFAULT_STEPS = 20
DEFAULT_START_TIME = 1.0


def sample_stream(i: int, seed: int, shape: Tuple[int, ...], classes: Optional[Sequence[int]] = None
                  ) -> Tuple[np.ndarray, Optional[int], np.random.Generator]:
    """Sample ``i``'s starting noise, its random label (when ``classes`` is given) and its generator after them.

    Returns ``(noise, label, rng)``: ``rng = default_rng([i, seed])``; ``noise`` of ``shape``, float64, its
    first draw ``rng.standard_normal(shape)``; ``label`` = ``classes[rng.integers(len(classes))]`` drawn next,
    or None; ``rng`` positioned after them (a stochastic sampler's injected noise comes next).
    """
    rng = sample_generator(int(i), int(seed))
    noise = rng.standard_normal(tuple(shape))
    label = None
    if classes is not None:
        label = int(classes[int(rng.integers(len(classes)))])
    return noise, label, rng


def initial_noise(i: int, seed: int, shape: Tuple[int, ...], classes: Optional[Sequence[int]] = None
                  ) -> Tuple[np.ndarray, Optional[int]]:
    """Sample ``i``'s starting noise and, when ``classes`` is given, its random label.

    Returns ``(noise, label)``: ``noise`` of ``shape``, float64, ``default_rng([i, seed]).standard_normal``;
    ``label`` = ``classes[rng.integers(len(classes))]`` drawn next from the same generator, or None
    (:func:`sample_stream`).
    """
    noise, label, _ = sample_stream(i, seed, shape, classes)
    return noise, label


@dataclass
class SeedSource:
    """Seeds, labels, time grid and sampler taken from a file (``--from-seeds``).

    ``seeds`` (S, C, H, W) float32 (the starting states); ``labels`` (S,) int64 or None (unconditional);
    ``times`` (T+1,) float64 descending to 0; ``sample_ids`` (S,) int64 (a run's own ids, or positions
    0..S-1 in a reference); ``path``; ``kind`` ``"reference"`` or ``"run"``; ``noise_schedule``, ``sampler``,
    ``eta`` and ``grid`` (``uniform``, ``edm`` or ``custom``) the process the file was made with; ``noise``
    (S, T, C, H, W) float32, the noise a stochastic sampler injected at each step (None for a deterministic
    one).
    """

    seeds: np.ndarray
    labels: Optional[np.ndarray]
    times: np.ndarray
    sample_ids: np.ndarray
    path: str
    kind: str
    noise_schedule: str = DEFAULT_NOISE_SCHEDULE
    sampler: str = DEFAULT_SAMPLER
    eta: float = 0.0
    grid: str = DEFAULT_GRID
    noise: Optional[np.ndarray] = None


def read_seed_source(path: Union[str, os.PathLike]) -> SeedSource:
    """Seeds, labels, time grid and sampler from a reference trajectory (NPZ/HDF5) or an earlier run file.

    Raises ElscliError when the file is missing or unreadable, its time grid is not a valid (strictly
    descending) grid, or it was sampled stochastically without recording the injected noise.
    """
    path = Path(path)
    if not path.exists():
        raise ElscliError(f"--from-seeds {str(path)!r} does not exist")
    if path.suffix.lower() != ".npz":
        with open_h5(path) as f:
            fmt = file_format(f)
        if fmt == FORMAT:
            run = Run.open(path, trajectories=False)
            p = run.params
            try:
                times = check_grid(run.times)
            except ElscliError as exc:
                raise ElscliError(f"--from-seeds {str(path)!r}: {exc}") from None
            schedule = str(run.attrs.get("noise_schedule", DEFAULT_NOISE_SCHEDULE))
            sampler, eta = check_sampler_eta(p.get("sampler", DEFAULT_SAMPLER), p.get("eta", 0.0))
            noise = run.arrays.get("noise")
            return SeedSource(np.asarray(run.seeds, np.float32), np.asarray(run.labels, np.int64), times,
                              np.asarray(run.sample_ids, np.int64), str(path), "run", schedule, sampler, eta,
                              p.get("grid") or grid_name(times, schedule),
                              None if noise is None else np.asarray(noise, np.float32))
    from .. import reference

    ref = reference.read(path, load_trajectories=False)
    try:
        times = check_grid(ref.times)
    except ElscliError as exc:
        raise ElscliError(f"--from-seeds {str(path)!r}: {exc}") from None
    return SeedSource(ref.seeds, ref.labels, times, np.arange(len(ref.seeds), dtype=np.int64),
                      str(path), "reference", ref.schedule, ref.sampler, ref.eta, ref.grid,
                      ref.noise if ref.stochastic else None)


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
        Their starting states (``eps``, or ``sigma(t_0) eps`` for a variance-exploding noise schedule).
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
    noise_schedule, sampler, eta, grid
        The reverse process: noise schedule name, ``ddim``/``euler``/``heun``, DDIM's eta in [0, 1], and the
        grid's name (``uniform``, ``edm`` or ``custom``).
    noise : ndarray (S, T, C, H, W) float32 or None
        A stochastic sampler's injected noise when it comes from a file (``--from-seeds``); None when it is
        drawn from the samples' own generators, or the sampler injects none.
    stream_seed : int or None
        The root seed R of the samples' generators (None with seeds from a file).
    stream_classes : list of int or None
        The classes random labels are drawn from (None: no label draw).
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
    noise_schedule: str = DEFAULT_NOISE_SCHEDULE
    sampler: str = DEFAULT_SAMPLER
    eta: float = 0.0
    grid: str = DEFAULT_GRID
    noise: Optional[np.ndarray] = None
    stream_seed: Optional[int] = None
    stream_classes: Optional[List[int]] = None

    @property
    def stochastic(self) -> bool:
        """Whether the sampler injects noise (ddim with eta > 0)."""
        return is_stochastic(self.sampler, self.eta)

    def noise_source(self, rows: np.ndarray) -> Optional[NoiseSource]:
        """The injected noise of the samples at positions ``rows`` (None for a deterministic sampler).

        From a file: :class:`~elscli.sampler.RecordedNoise` of its ``noise``; else each sample's own generator,
        positioned after its starting noise and label (:func:`sample_stream`), as
        :class:`~elscli.sampler.StreamNoise`.  Either way a sample's noise depends only on the sample.
        """
        if not self.stochastic:
            return None
        rows = np.asarray(rows)
        if self.noise is not None:
            return RecordedNoise(self.noise[rows])
        if self.stream_seed is None:
            raise ElscliError("a stochastic run needs the root seed or the recorded noise of its samples")
        gens = [sample_stream(int(i), self.stream_seed, self.shape, self.stream_classes)[2]
                for i in self.sample_ids[rows]]
        return StreamNoise(gens)


def parameter_value(text: Union[str, float, None], name: str) -> Union[float, Dict[float, float], None]:
    """A machine parameter as given on the command line: a number, or a schedule JSON file written by
    ``locality-scan --parameter NAME`` (``{"times": [...], NAME: [...]}``) -> {t: value} (a
    :class:`~elscli.schedule.TimedValues` naming the noise schedule it was calibrated on, which
    :func:`plan_run` checks against the run's).  None stays None.

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


#: How a stochastic run's injected noise is drawn (recorded as the run's ``noise_stream``): sample i's generator
#: ``default_rng([i, seed])`` draws its starting noise, its random label (if any), then z for each step but the
#: last, in step order, each rounded to float32.
STREAM_OWN = ("default_rng([sample_id, seed]): starting noise, label (random labels only), then z = "
              "standard_normal((C, H, W)) per step but the last, rounded to float32")
#: The same with seeds from a file whose noise is not used (another process than the file's): the starting
#: noise is drawn and discarded, so that z follows as in a run of its own.
STREAM_FROM_SEEDS = ("default_rng([sample_id, seed]): one discarded starting-noise draw (the starting state is "
                     "the file's), then z = standard_normal((C, H, W)) per step but the last, rounded to float32")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not 0 <= int(seed) < 2 ** 63:
        raise ElscliError(f"--seed must be a non-negative integer below 2**63, got {seed}")
    return int(seed)


def _from_file(what: str, given, recorded, path: str):
    """``given`` when it equals the file's ``recorded`` value or is None (then ``recorded``); else one line."""
    if given is None or given == recorded:
        return recorded
    raise ElscliError(f"--from-seeds {path!r} was recorded with {what} {recorded!r}, not {given!r} (the one "
                      f"asked for); drop --{what.replace(' ', '-')} to use the file's")


def plan_run(bank, *, machine: str = DEFAULT_MACHINE, patch_size: Optional[int] = None,
             schedule: Any = None, steps: Optional[int] = None, start_time: Optional[float] = None,
             num_samples: Optional[int] = None, seed: Optional[int] = None, label: Union[int, str, None] = None,
             from_seeds: Union[str, os.PathLike, None] = None, shard: ShardSpec = None,
             save_trajectory: bool = False, noise_schedule: Optional[str] = None, sampler: Optional[str] = None,
             eta: Optional[float] = None, grid: Optional[str] = None,
             command_line: Optional[str] = None, bank_path: Optional[str] = None,
             schedule_scale: Optional[float] = None, late_scale: Optional[float] = None,
             late_from: Optional[float] = None, machine_params: Optional[Dict[str, Any]] = None) -> RunPlan:
    """Validate every input of :func:`elscli.runs.sample` and work out what the run (or shard) computes.

    The parameters are those of :func:`elscli.runs.sample` (``bank`` a :class:`~elscli.bank.Bank`;
    ``shard`` None means every sample); ``bank_path`` is recorded as the bank's path.  The time grid is
    ``grid`` (``uniform``: equal steps, :func:`elscli.noise.time_grid`; ``edm``: EDM's rho = 7 spacing,
    :func:`elscli.noise.edm_grid`) with ``steps`` steps from ``start_time`` to 0, or the file's; each step
    takes its patch size from the locality schedule by its start time
    (:meth:`elscli.schedule.LocalitySchedule.for_grid`), then scaled by ``schedule_scale`` (every step) or
    ``late_scale`` (the steps starting at t <= ``late_from``) with :func:`elscli.schedule.scale_patch_sizes`;
    machines without a patch size ignore it.
    ``machine_params`` — the machine's other parameters by name (``{"sigma": 0.1}``; a value may be a
    schedule {t: value} whose times are the grid's step start times) — are checked by the machine itself at
    every step of the grid before any work, and recorded (all of them, defaults too) as ``machine_params``.
    ``noise_schedule`` (default ``cosine-legacy``), ``sampler`` (default ``ddim``), ``eta`` (default 0),
    ``grid`` (default ``uniform``) and ``steps`` left as None take the file's values with ``from_seeds`` (its
    times, and for a stochastic sampler its recorded injected noise).  Given, ``sampler``, ``eta``, ``grid``
    and ``steps`` override the file's (eta falls back to 0 with another sampler; a new grid starts at the
    file's first time; a stochastic process on other times than the file's draws its noise from each sample's
    generator of root seed ``seed``); a ``noise_schedule`` other than the file's is refused.
    ``params["noise_stream"]`` records where a stochastic run's injected noise comes from
    (:data:`STREAM_OWN`, :data:`STREAM_FROM_SEEDS`, or the file's recorded noise).

    Raises
    ------
    ElscliError
        An unknown machine, noise schedule, sampler or grid; eta outside [0, 1] (or eta > 0 with euler or
        heun); a grid that does not decrease; both a patch size and a schedule, a bad schedule (or one
        calibrated on another noise schedule) or scale (both scales, a late scale without its time, a scale for
        a machine without a patch size), ELS patches larger than the image, a parameter the machine lacks or
        refuses (at any step), a bad sample count, seed or label, a label the bank lacks, options that cannot be
        combined with ``from_seeds``, a seed file whose noise schedule or image shape differs from the ones
        asked for, or one sampled stochastically without its injected noise (when its process is asked for).
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
    # one rule for every option of a parameter: refused, in one line, when the machine has no such parameter
    # (--sigma for ls, --patch-size or --schedule-scale for wiener) instead of being recorded and ignored
    given = [(k, f"--{k.replace('_', '-')}") for k in sorted(machine_params)]
    given += [("patch_size", opt) for opt, v in (("--patch-size", patch_size), ("--schedule", schedule),
                                                 ("--schedule-scale", schedule_scale), ("--late-scale", late_scale),
                                                 ("--late-from", late_from)) if v is not None]
    for name, option in given:
        if name not in names:
            raise ElscliError(f"machine {machine!r} has no parameter {name!r}: {option} does not apply "
                              f"(its parameters: {', '.join(sorted(names)) or 'none'})")
    if noise_schedule is not None:
        noise_schedule = get_noise_schedule(noise_schedule).name
    if sampler is not None:
        sampler = check_sampler(sampler)
    if eta is not None:
        eta = check_eta(eta)
    if grid is not None and grid not in GRIDS:
        raise ElscliError(f"unknown grid {grid!r} (known: {', '.join(GRIDS)})")
    shard = parse_shard(shard)
    shape = tuple(int(s) for s in bank.shape)
    classes = [int(c) for c in np.asarray(bank.classes).tolist() if int(c) >= 0]

    # -- the reverse process, the time grid and the seeds ----------------------------------------------
    source = None
    noise_stream = None
    if from_seeds is not None:
        if start_time is not None:
            raise ElscliError("--start-time cannot be combined with --from-seeds (the seeds are the file's states "
                              "at its first time)")
        if label is not None:
            raise ElscliError("--label/--labels cannot be combined with --from-seeds (the labels come from the file)")
        source = read_seed_source(from_seeds)
        noise_schedule = _from_file("noise schedule", noise_schedule, source.noise_schedule, source.path)
        if tuple(source.seeds.shape[1:]) != shape:
            raise ElscliError(f"--from-seeds {source.path!r}: seeds have shape {tuple(source.seeds.shape[1:])} "
                              f"but the bank's images are {shape}")
        # the file's process unless overridden explicitly (eta follows the file's only with the file's sampler)
        if eta is None:
            eta = float(source.eta) if sampler in (None, source.sampler) else 0.0
        sampler = source.sampler if sampler is None else sampler
        sampler, eta = check_sampler_eta(sampler, eta)
        if steps is None and grid is None:
            times, grid = source.times, source.grid
        else:
            if grid is None and source.grid not in GRIDS:
                raise ElscliError(f"--from-seeds {source.path!r} has a custom time grid; give --grid with --steps")
            grid = grid or source.grid
            times = make_grid(grid, len(source.times) - 1 if steps is None else steps, noise_schedule,
                              float(source.times[0]))
    else:
        noise_schedule = noise_schedule or DEFAULT_NOISE_SCHEDULE
        sampler, eta = check_sampler_eta(sampler or DEFAULT_SAMPLER, 0.0 if eta is None else eta)
        grid = grid or DEFAULT_GRID
        times = make_grid(grid, DEFAULT_STEPS if steps is None else steps, noise_schedule,
                          DEFAULT_START_TIME if start_time is None else start_time)
    noise_sched = get_noise_schedule(noise_schedule)
    stochastic = is_stochastic(sampler, eta)

    # -- patch sizes per step -------------------------------------------------------------------------
    if patch_size is not None and schedule is not None:
        raise ElscliError("give either --patch-size or --schedule, not both")
    if schedule_scale is not None and late_scale is not None:
        raise ElscliError("give --schedule-scale or --late-scale, not both")
    if (late_scale is None) != (late_from is None):
        raise ElscliError("--late-scale F and --late-from T go together")
    if "patch_size" not in names:
        sched_desc = None
        patch_sizes = np.zeros(len(times) - 1, dtype=np.int64)
        check = dict(machine_params)
    else:
        if patch_size is not None:
            try:
                sched = LocalitySchedule.constant(patch_size)
            except ElscliError as exc:          # "--patch-size 4: patch sizes must be odd; 4 is even"
                raise ElscliError(f"--patch-size {patch_size}: {str(exc).split(': ', 1)[-1]}") from None
        else:
            sched = load_schedule(schedule)
        sched.check_noise_schedule(noise_schedule)
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
        calibrated_on = getattr(v, "noise_schedule", None)
        if calibrated_on is not None and calibrated_on != noise_schedule:
            raise ElscliError(f"the {name} schedule {getattr(v, 'source', '')!r} was calibrated on noise schedule "
                              f"{calibrated_on!r}, not {noise_schedule!r} (its times are that schedule's)")
        if isinstance(v, dict):
            keys = np.array([float(k) for k in v], dtype=np.float64)
            vals = list(v.values())
            by_time = {}
            for t in times[:-1]:
                hit = np.flatnonzero(np.abs(keys - float(t)) <= 1e-9)
                if hit.size == 0:
                    raise ElscliError(f"the {name} schedule has no value for the step starting at t={float(t):g} "
                                      "(its times must be those of the run's grid)")
                by_time[float(t)] = vals[int(hit[0])]
            machine_params[name] = check[name] = by_time
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
        hashed = [source.seeds[:total], source.sample_ids[:total],
                  source.labels[:total] if source.labels is not None else np.zeros(0)]
        noise = None
        root_seed = None
        if stochastic and source.noise is not None and np.array_equal(times, source.times):
            # the file's own injected noise: part of what the samples are
            noise = np.ascontiguousarray(source.noise[positions], dtype=np.float32)
            hashed.append(source.noise[:total])
            noise_stream = f"recorded: the 'noise' of {source.path}"
        elif stochastic and is_stochastic(source.sampler, source.eta) and np.array_equal(times, source.times):
            raise ElscliError(f"--from-seeds {source.path!r} was sampled with ddim eta={source.eta:g} but holds no "
                              "'noise' (the injected noise); record it, or give another --eta/--steps/--grid")
        elif stochastic:        # another process than the file's: each sample's own generator, root seed --seed
            root_seed = _check_seed(0 if seed is None else seed)
            noise_stream = STREAM_FROM_SEEDS
        if seed is not None and root_seed is None:
            raise ElscliError(f"--seed is not used with --from-seeds here (the starting states come from "
                              f"{source.path!r}{' and so does the injected noise' if noise is not None else ''}; "
                              "a root seed only draws the injected noise of a stochastic sampler the file was "
                              "not sampled with)")
        seeds_hash = hash_arrays(*hashed)
        label_desc: Any = "from-seeds"
        random_labels = False
    else:
        total = DEFAULT_NUM_SAMPLES if num_samples is None else int(num_samples)
        if total < 1:
            raise ElscliError(f"--num-samples must be at least 1, got {total}")
        root_seed = _check_seed(0 if seed is None else seed)
        noise_stream = STREAM_OWN if stochastic else None
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
        # the starting state: eps (VP) or sigma(t_0) eps (VE: EDM's x = sigma_max eps), rounded once to float32
        prior_std = noise_sched.prior_std(float(times[0])) if noise_sched.variance_exploding else None
        for k, i in enumerate(sample_ids):
            eps, lab = initial_noise(int(i), root_seed, shape, classes if random_labels else None)
            seeds[k] = eps if prior_std is None else prior_std * eps
            if random_labels:
                labels[k] = lab
        seeds_hash = None
        noise = None
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
        "value_range": str(getattr(bank, "value_range", "-1,1")),
        "seed": root_seed,
        "num_samples": int(total),
        "label": label_desc,
        "schedule": sched_desc,
        "patch_size": None if patch_size is None else int(patch_size),
        "sampler": sampler,
        "eta": float(eta),
        "grid": grid,
        "steps": int(len(times) - 1),
        "evaluations": int(num_evaluations(sampler, times)),
        "noise_stream": noise_stream,
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
                   bool(save_trajectory), shape, machine_params, bool(cls.has_provenance),
                   noise_schedule=noise_schedule, sampler=sampler, eta=float(eta), grid=grid, noise=noise,
                   stream_seed=root_seed, stream_classes=classes if random_labels else None)
