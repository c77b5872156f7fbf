"""Running a planned run: the sampling loop, stopping on signals, and resuming.

:func:`sample` is the Python face of ``elscli sample``.  Writing: a run being written lives in
``RUN.h5.partial`` (flushed after every batch of samples); when all samples are done, or when SIGINT/SIGTERM
asks it to stop (at a sample boundary), it is renamed to ``RUN.h5`` — a file at the final path is always a
valid run, whose ``done`` rows say what is finished.  ``resume=True`` continues ``RUN.h5.partial`` (left by a
hard kill) or ``RUN.h5`` (left by a stop), computing only the unfinished samples.  The whole call holds the
claim on ``RUN.h5`` (and on the ``png``; :mod:`elscli.outputs`), taken before either file is looked at: a
second ``sample`` of the same output — ``force``, ``resume`` or neither — is refused in one line and never
truncates, replaces or renames the first one's partial file.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import numpy as np

from .. import __version__
from ..errors import ElscliError, ElscliWarning
from ..display import parse_channels
from ..h5io import open_h5, temp_path_for
from ..kernels.compilation import COMPILING_NOTE, CompileWatch
from ..outputs import claim_output, refuse_same_files
from ..progress import Progress
from ..sample_data import open_bank
from ..sampler import Step, run_sampler
from ..shards import ShardSpec, parse_shard, shard_output_path
from ..stopping import StopRequest as _StopFlag
from .denoiser import MachineDenoiser, run_denoiser
from .export import save_grid_png
from .file import FORMAT, SCHEMA_VERSION, Run, check_resumable, create_run_file, empty_arrays, open_for_writing, \
    write_rows
from .plan import DEFAULT_MACHINE, RunPlan, plan_run

DEFAULT_BATCH_SIZE = 1  # the machines gain nothing from batching yet; 1 stops soonest on a signal
#: Seconds a stop request may wait for the samples in flight (Slurm sends SIGKILL 30 s after SIGTERM).
DEFAULT_STOP_GRACE = 20.0
PARTIAL_SUFFIX = ".partial"


def _file_arg(value: Any) -> Any:
    """``value`` when it may name a file (a str or path), else None (an object: a bank, a schedule)."""
    return value if isinstance(value, (str, os.PathLike)) else None


def sample(bank: Any = None, *, machine: str = DEFAULT_MACHINE, patch_size: Optional[int] = None,
           schedule: Any = None, steps: Optional[int] = None, start_time: Optional[float] = None,
           num_samples: Optional[int] = None, seed: Optional[int] = None, label: Union[int, str, None] = None,
           from_seeds: Union[str, os.PathLike, None] = None, output: Union[str, os.PathLike, None] = None,
           force: bool = False, resume: bool = False, shard: ShardSpec = None,
           save_trajectory: bool = False, threads: Optional[int] = None, batch_size: Optional[int] = None,
           quiet: bool = True, png: Union[str, os.PathLike, None] = None, handle_signals: bool = True,
           stop_grace: float = DEFAULT_STOP_GRACE, command_line: Optional[str] = None,
           progress_stream=None, schedule_scale: Optional[float] = None, late_scale: Optional[float] = None,
           late_from: Optional[float] = None, machine_params: Optional[dict] = None,
           noise_schedule: Optional[str] = None, sampler: Optional[str] = None, eta: Optional[float] = None,
           grid: Optional[str] = None, channels=None, progress_interval: Optional[float] = None,
           cache_dir: Union[str, os.PathLike, None] = None, sample_data_dir: Union[str, os.PathLike, None] = None
           ) -> Run:
    """Sample a run with a score machine through a reverse process (default: the paper's deterministic DDIM on
    20 equal steps of the cosine-legacy noise schedule).

    The Python face of ``elscli sample``.  It computes exactly what it is asked: every sample unless
    ``shard`` is given, with ``threads`` (or Numba's current setting) — it reads no Slurm or thread
    environment variables (the CLI maps those to ``shard`` and ``threads``).

    Parameters
    ----------
    bank : Bank, path-like or None
        The training images; None: the bundled sample bank (:func:`elscli.sample_data.default_bank_path`).
    machine : str
        A registered machine (:data:`elscli.machines.MACHINES`): is, ls, els, bbels, or the analytic zoo's
        nearest, scfdm, wiener, pca-locality, pspc-square.
    machine_params : dict, optional
        The machine's parameters other than the patch size: ``{"sigma": 0.1}`` (scfdm), ``{"temperature":
        0.5}`` (is, pca-locality), ``{"threshold": 0.2}`` (pca-locality), ``{"wrap": True}`` (els); a value may
        be a schedule {t: value} at the grid's step start times.  Checked before any work and recorded.
    patch_size : int, optional
        A constant odd patch size.  Or ``schedule``: ``paper:NAME``, a JSON file, a mapping, an int or a
        :class:`~elscli.schedule.LocalitySchedule` (default ``paper:MNIST_ResNet_zeros``).
    schedule_scale : float, optional
        Multiply every step's patch size by this factor, rounded to the nearest odd size >= 1 (ties away from
        the unscaled size; :func:`elscli.schedule.scale_patch_size`).  Recorded in the run's params.
    late_scale, late_from : float, optional
        The same, only for the steps starting at t <= ``late_from`` (both or neither).
    steps, start_time : optional
        The grid's steps from ``start_time`` to 0 (default 20 from 1.0).
    noise_schedule : str, optional
        The noise schedule (:data:`elscli.noise.NOISE_SCHEDULES`; default ``cosine-legacy``, or the file's
        with ``from_seeds``).
    sampler : str, optional
        ``ddim`` (default), ``euler`` or ``heun`` (:mod:`elscli.sampler`); with ``from_seeds``, the file's.
    eta : float, optional
        DDIM's eta in [0, 1] (default 0; 1 is DDPM's ancestral sampling).  With eta > 0 sample i's injected
        noise comes from its own generator ``default_rng([i, seed])`` after its starting noise and label
        (or, with ``from_seeds``, is the file's recorded ``noise``), and the run file records it.
    grid : str, optional
        ``uniform`` (default: equal steps in t) or ``edm`` (EDM's rho = 7 spacing in sigma,
        :func:`elscli.noise.make_grid`); with ``from_seeds``, the file's.
    num_samples : int, optional
        Samples in the whole run, all shards (default 16; with ``from_seeds``, all of the file's).
    seed : int, optional
        Root seed R: sample i starts from ``default_rng([i, R]).standard_normal((C, H, W))`` (None: 0).  With
        ``from_seeds`` it is used only for the injected noise of a stochastic sampler the file was not sampled
        with; given otherwise, ElscliError.
    label : int, "random" or None
        Class-conditional on one label, a random class per sample, or unconditional.
    from_seeds : path-like, optional
        A reference trajectory or run file giving seeds, labels, the time grid, the noise schedule, the
        sampler and its injected noise; ``sampler``, ``eta``, ``grid`` and ``steps`` given explicitly override
        the file's (:func:`elscli.runs.plan.plan_run`), another noise schedule is refused.
    output : path-like, optional
        Write a run file there (atomically; :mod:`elscli.runs.file`); None keeps the run in memory.
        ``{shard}``/``{shards}`` in the name are filled in (:func:`elscli.shards.shard_output_path`).
    force, resume : bool
        Overwrite an existing output / continue a partial one.
    shard : "I/N", (I, N) or None
        Compute samples I, I+N, ... of the run; None: all of them.
    save_trajectory : bool
        Keep ``x`` and ``x0_hat`` at every step.
    threads : int, optional
        Numba threads (capped at Numba's thread pool, ``NUMBA_NUM_THREADS``); results do not depend on it.
    batch_size : int, optional
        Samples denoised together (default 1); results do not depend on it.
    quiet : bool
        No progress on stderr (or ``progress_stream``).
    progress_interval : float, optional
        Seconds between plain progress lines when stderr is not a terminal (None: 10,
        :data:`elscli.progress.DEFAULT_INTERVAL`; the CLI gives ``$ELSCLI_PROGRESS_INTERVAL``).
    cache_dir, sample_data_dir : path-like, optional
        For ``bank=None``: where the bundled sample bank is built and kept (None: ``~/.cache/elscli``) and
        where the bundled ``sample_data/`` is (None: beside the package, else the current directory); the CLI
        gives ``$ELSCLI_CACHE`` and ``$ELSCLI_SAMPLE_DATA`` (:func:`elscli.sample_data.default_bank_path`).
    png : path-like, optional
        Also write a labelled grid of the finished samples (:func:`elscli.runs.export.save_grid_png`).
    channels : str or sequence of int, optional
        Which channels the ``png`` shows (:func:`elscli.display.parse_channels`: one or three indices, or
        ``"each"``; default: all of 1 or 3, else the first three).
    handle_signals : bool
        Stop at a sample boundary on SIGINT/SIGTERM (from the main thread); a second signal stops at once.
    stop_grace : float
        Seconds a stop may wait for the samples in flight; longer, and they are dropped (``resume``
        recomputes them).
    command_line : str, optional
        Recorded as provenance (default: this process's ``sys.argv``).

    Returns
    -------
    Run
        The run (read back from the file when ``output`` is given); ``interrupted`` is the signal number
        when a signal stopped it early, ``elapsed``, ``compile_seconds`` (of ``elapsed``, compiling the kernels)
        and ``samples_computed`` describe this call.

    Raises
    ------
    ElscliError
        Bad input (see :func:`elscli.runs.plan.plan_run`), an output that exists without ``force`` or
        ``resume``, an output (or ``png``) another process is writing (its claim, :mod:`elscli.outputs`, is
        held: nothing is touched), or a file that cannot be resumed.
    """
    if resume and force:
        raise ElscliError("give --resume or --force, not both")
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    if int(batch_size) < 1:
        raise ElscliError(f"--batch-size must be at least 1, got {batch_size}")
    # Claim the outputs, then check them, before any expensive work (:mod:`elscli.outputs`): a concurrent
    # writer of this run (with --force, --resume or neither) finds the claim held and is refused, touching
    # nothing; RUN.h5.partial is created, truncated, replaced or renamed only by the claim's holder.
    shard_t = parse_shard(shard)
    out_path = partial = None
    refuse_same_files([("--bank", _file_arg(bank)), ("--from-seeds", from_seeds), ("--schedule", _file_arg(schedule))]
                      + [(f"--{k}", _file_arg(v)) for k, v in (machine_params or {}).items()],
                      [("-o", None if output is None else shard_output_path(output, shard_t)), ("--png", png)])
    with contextlib.ExitStack() as claims:
        if output is not None:
            out_path = claims.enter_context(claim_output(shard_output_path(output, shard_t), force,
                                                         allow_existing=resume))
            partial = out_path.with_name(out_path.name + PARTIAL_SUFFIX)
            if partial.exists() and not (resume or force):
                raise ElscliError(f"{str(partial)!r} exists (an interrupted run); pass --resume to continue it "
                                  "or --force to start over")
        if png is not None:
            claims.enter_context(claim_output(png, force or resume))
        bank_path = None if (bank is None or hasattr(bank, "images")) else str(bank)
        bank_obj = open_bank(bank, cache=cache_dir, sample_data=sample_data_dir)
        if bank_path is None and getattr(bank_obj, "path", None) is not None:
            bank_path = str(bank_obj.path)
        plan = plan_run(bank_obj, machine=machine, patch_size=patch_size, schedule=schedule, steps=steps,
                        start_time=start_time, num_samples=num_samples, seed=seed, label=label, from_seeds=from_seeds,
                        shard=shard_t, save_trajectory=save_trajectory, command_line=command_line, bank_path=bank_path,
                        schedule_scale=schedule_scale, late_scale=late_scale, late_from=late_from,
                        machine_params=machine_params, noise_schedule=noise_schedule, sampler=sampler, eta=eta,
                        grid=grid)
        if channels is not None:
            if png is None:
                raise ElscliError("--channels chooses what --png shows; give --png too")
            parse_channels(channels, plan.shape[0])
        n_threads = effective_threads(threads)
        plan.params["threads"] = n_threads
        plan.params["batch_size"] = int(batch_size)
        loop = dict(threads=n_threads, batch_size=int(batch_size), quiet=quiet, handle_signals=handle_signals,
                    stop_grace=float(stop_grace), progress_stream=progress_stream,
                    progress_interval=progress_interval)

        if out_path is None:
            store = empty_arrays(plan.sample_ids, plan.seeds, plan.labels, plan.times, plan.patch_sizes,
                                 plan.save_trajectory, plan.has_provenance, plan.stochastic)
            run = run_plan(plan, store, bank_obj, flush=None, **loop)
            run.attrs = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "elscli_version": __version__,
                         "params": json.dumps(plan.params, sort_keys=True), **plan.attrs}
            if png is not None and run.done.any():
                save_grid_png(run, png, label_names=_label_names(bank_obj), channels=channels)
            return run

        # -- a run file: work in RUN.h5.partial, rename into place when done or stopped ---------------------
        f = _open_partial(out_path, partial, plan, resume)
        ok = False
        try:
            store = {k: f[k] for k in f.keys()}
            # the execution record of this (last) session
            f.attrs["command_line"] = plan.attrs["command_line"]
            run = run_plan(plan, store, bank_obj, flush=f.flush, **loop)
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
        result.compile_seconds = run.compile_seconds
        if png is not None and result.done.any():
            save_grid_png(result, png, label_names=_label_names(bank_obj), channels=channels)
        return result


def _label_names(bank) -> Optional[Dict[str, str]]:
    """The bank's class names by label (as strings), or None (a bank of a class-per-folder tree has them)."""
    source = getattr(bank, "source", None)
    names = source.get("label_names") if isinstance(source, dict) else None
    return dict(names) if names else None


def effective_threads(threads: Optional[int]) -> int:
    """The Numba thread count a run uses: ``threads`` capped at Numba's thread pool
    (:func:`elscli.kernels.threads.thread_limit`), or
    Numba's current setting when None.  Raises ElscliError when ``threads`` < 1.

    The machines set it for each call and restore the previous setting after (``numba.set_num_threads``),
    so sampling from Python leaves the caller's Numba setting alone."""
    import numba

    from ..kernels.threads import thread_limit

    if threads is None:
        return int(numba.get_num_threads())
    if isinstance(threads, bool) or int(threads) < 1:
        raise ElscliError(f"--threads must be at least 1, got {threads}")
    return max(1, min(int(threads), thread_limit()))


def _open_partial(out_path: Path, partial: Path, plan: RunPlan, resume: bool):
    """The open ``RUN.h5.partial`` to write into: a new file, or (``resume``) the partial or finished file
    of an earlier session after checking it is this very run."""
    resume_from = None
    if resume:
        if partial.exists():
            resume_from = partial
        elif out_path.exists():
            resume_from = out_path
        else:     # an array task that always passes --resume starts its first attempt so: say it, go on
            warnings.warn(f"nothing to resume at {str(out_path)!r} (no run file or .partial file there): "
                          "started the run from the beginning", ElscliWarning, stacklevel=2)
    check = dict(params=plan.params, sample_ids=plan.sample_ids, seeds=plan.seeds,
                 save_trajectory=plan.save_trajectory, provenance=plan.has_provenance, stochastic=plan.stochastic)
    try:
        if resume_from is None:
            return create_run_file(partial, plan.params, plan.attrs,
                                   empty_arrays(plan.sample_ids, plan.seeds, plan.labels, plan.times,
                                                plan.patch_sizes, plan.save_trajectory, plan.has_provenance,
                                                plan.stochastic))
        try:
            with open_h5(resume_from) as f:
                check_resumable(f, resume_from, **check)
        except ElscliError as exc:
            if resume_from != partial or "readable" not in str(exc):
                raise
            if not out_path.exists():  # a hard kill tore the partial file: nothing to resume
                raise ElscliError(f"{str(partial)!r} is unreadable (torn by a hard kill?); delete it or pass "
                                  "--force to start over") from None
            resume_from = out_path      # fall back to the last file that was renamed into place
            with open_h5(resume_from) as f:
                check_resumable(f, resume_from, **check)
        if resume_from == out_path:
            work = temp_path_for(out_path)
            shutil.copyfile(out_path, work)
            os.replace(work, partial)
        return open_for_writing(partial, "r+")
    except BlockingIOError:
        raise ElscliError(f"{str(partial)!r} is being written by another process") from None
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise ElscliError(f"{str(partial)!r} is being written by another process") from None
        raise


def run_plan(plan: RunPlan, store: Dict[str, Any], bank, *, threads: int, batch_size: int, quiet: bool = True,
             handle_signals: bool = True, stop_grace: float = DEFAULT_STOP_GRACE, progress_stream=None,
             progress_interval: Optional[float] = None,
             flush: Optional[Callable[[], None]] = None) -> Run:
    """The sampling loop: every unfinished sample of ``store``, in batches, through the plan's sampler.

    ``store`` holds the run's datasets (:func:`elscli.runs.file.empty_arrays`, or the datasets of an open
    run file, flushed by ``flush`` after each batch).  Each batch is denoised by a
    :class:`~elscli.runs.denoiser.MachineDenoiser` over one denoiser built for the run and prepared, before
    the loop, for the run's times and the labels of the samples to compute
    (:func:`~elscli.runs.denoiser.run_denoiser`); finished rows are written and marked ``done``.  On
    SIGINT/SIGTERM (``handle_signals``) the loop stops at the next sample boundary, finishing the batch in
    flight when that takes less than ``stop_grace`` seconds, else dropping it.

    Returns a :class:`Run` (its arrays are the store when it is in memory, else empty) with
    ``interrupted``, ``elapsed`` (s), ``compile_seconds`` (s of ``elapsed`` compiling kernels, as the progress
    display counts them) and ``samples_computed`` set.
    """
    T = len(plan.times) - 1
    done = np.asarray(store["done"][()] if hasattr(store["done"], "id") else store["done"], dtype=bool)
    todo = np.flatnonzero(~done)
    stop = _StopFlag() if handle_signals else contextlib.nullcontext(None)
    t0 = time.monotonic()
    computed = 0
    interrupted = None
    watch = CompileWatch(on_first=lambda: bar.log(COMPILING_NOTE))
    with stop as flag, watch, Progress(len(todo) * T, "sample", quiet=quiet, unit="step", group=(T, "samples"),
                                       stream=progress_stream, interval=progress_interval,
                                       compiling=lambda: watch.seconds) as bar:
        if done.any():
            bar.log(f"elscli: resuming: {int(done.sum())} of {len(done)} samples already done; computing the "
                    f"other {len(todo)}")
        if flag is not None:
            flag.on_first = lambda s: bar.log(
                f"elscli: {signal.Signals(s).name} received: stopping at the next sample boundary "
                "(send it again to stop at once)")
        machine = None
        if len(todo):   # built once, and prepared (blocks, constant patches, trees...) for every step and label
            machine = run_denoiser(plan.machine, bank, plan.times, plan.patch_sizes, threads=threads,
                                   noise_schedule=plan.noise_schedule, machine_params=plan.machine_params)
            machine.prepare(plan.times[:-1], labels=np.asarray(plan.labels[todo], dtype=np.int64))
        for start in range(0, len(todo), batch_size):
            if flag is not None and flag.signum is not None:
                break
            rows = todo[start:start + batch_size]
            x_init = plan.seeds[rows].astype(np.float64)
            den = MachineDenoiser(machine, plan.times, plan.labels[rows])
            traj_x = traj_x0 = None
            if plan.save_trajectory:
                traj_x = np.empty((len(rows), T + 1) + plan.shape, np.float32)
                traj_x0 = np.empty((len(rows), T) + plan.shape, np.float32)
                traj_x[:, 0] = plan.seeds[rows]
            noise = np.zeros((len(rows), T) + plan.shape, np.float32) if plan.stochastic else None
            batch_start = time.monotonic()

            def on_step(step: Step) -> None:
                if traj_x is not None:
                    traj_x[:, step.index + 1] = step.x_next
                    traj_x0[:, step.index] = step.x0_hat
                if noise is not None and step.noise is not None:
                    noise[:, step.index] = step.noise
                bar.advance(len(rows))
                if flag is not None and flag.signum is not None and not step.is_last:
                    per_step = (time.monotonic() - batch_start) / (step.index + 1)
                    if per_step * (T - step.index - 1) > stop_grace:
                        raise _AbandonBatch

            try:
                final = run_sampler(plan.sampler, den, x_init, plan.times, callback=on_step,
                                    noise_schedule=plan.noise_schedule, eta=plan.eta, noise=plan.noise_source(rows))
            except _AbandonBatch:
                bar.log(f"elscli: dropped the {len(rows)} sample(s) in flight (they would take longer than "
                        f"{stop_grace:g} s to finish; ELSCLI_STOP_GRACE)")
                break
            if flag is not None:
                flag.writing = True
            write_rows(store, rows, final, den.provenance, traj_x, traj_x0, noise)
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
        compile_seconds = bar.compiling_seconds
    elapsed = time.monotonic() - t0
    in_memory = not any(hasattr(v, "id") for v in store.values())
    return Run(dict(store) if in_memory else {}, dict(plan.attrs), None, interrupted, elapsed,
               computed, min(compile_seconds, elapsed))


class _AbandonBatch(Exception):
    """Raised from the step callback: a stop was requested and the batch would take too long to finish."""
