"""Locality calibration end to end (``elscli locality-scan``): scan a reference (or merge scan files),
aggregate into a :class:`~elscli.schedule.LocalitySchedule`, and write the scan file, the schedule JSON and
the plots — of the patch size, or of any scalar machine parameter (``parameter``, :mod:`.parameter_scan`).
Every output is claimed (:mod:`elscli.outputs`) before the work starts and held until it is in
place, so minutes of scanning are never lost to a refused write, and written atomically.

A scan with a scan file (``scan_out``) works in ``SCAN.h5.partial``, rewritten whole after every unit of work
(a candidate for a batch of samples at one step); SIGINT/SIGTERM stop it at the next unit and rename the
partial file to ``SCAN.h5`` (its ``done`` array says what is computed; :attr:`Calibration.interrupted` is the
signal); ``resume=True`` continues ``SCAN.h5.partial`` (left by a hard kill) or an unfinished ``SCAN.h5``.
Progress (on a terminal a bar, in a batch log a line every ``$ELSCLI_PROGRESS_INTERVAL`` s) counts the
(sample, candidate, step) similarities, with the steps done and an ETA."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..errors import ElscliError
from ..kernels.compilation import COMPILING_NOTE, CompileWatch
from ..outputs import claim_output, refuse_same_files
from ..stopping import StopRequest
from ..schedule import LocalitySchedule, ParameterSchedule
from ..shards import WHOLE, Shard, format_shard, shard_output_path
from .aggregate import AGGREGATES, per_step, schedule_from_scan
from .parameter_scan import PATCH_SIZE, check_parameter, parse_values
from .scan import METRICS, STATES, Scan, parse_candidates, scan
from .scan_merge import merge

PathLike = Union[str, os.PathLike]
#: The machines a calibration applies to (IS has no patch size).
LOCAL_MACHINES = ("ls", "els", "bbels")
#: The suffix of the scan file a scan works in until it is finished or stopped.
PARTIAL_SUFFIX = ".partial"


@dataclass
class Calibration:
    """A calibration's result: the (merged) scan, its schedule (a :class:`LocalitySchedule`, or a
    :class:`ParameterSchedule` when another parameter was scanned), and the files written.

    ``warnings`` are for the user (e.g. a scan that covers only some of the reference's samples);
    ``interrupted``: the signal that stopped an unfinished scan (its scan file holds what is computed; no
    schedule then: ``schedule`` is None); ``computed``: the similarities computed by this call.
    """

    scan: Scan
    aggregate: str
    schedule: Optional[Union[LocalitySchedule, ParameterSchedule]]
    scan_file: Optional[Path] = None
    output: Optional[Path] = None
    plots: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    interrupted: Optional[int] = None
    computed: int = 0

    def per_step(self) -> List[dict]:
        """One row per step (:func:`elscli.analysis.aggregate.per_step`); none for an unfinished scan."""
        return [] if self.schedule is None else per_step(self.scan, self.schedule)

    def summary(self) -> dict:
        """The JSON payload of ``elscli locality-scan``."""
        s = self.scan
        out = {"machine": s.machine, "parameter": s.parameter, "metric": s.metric, "states": s.states,
               "aggregate": self.aggregate, "samples": int(len(s.sample_index)),
               "reference_samples": int(s.num_reference_samples), "complete": s.complete, "finished": s.finished,
               "computed": int(s.done.sum()), "similarities": int(s.done.size),
               "candidates": [c.item() for c in s.candidates]}
        if self.interrupted is not None:
            import signal

            out["interrupted"] = signal.Signals(self.interrupted).name
        if self.scan_file is not None:
            out["scan_file"] = str(self.scan_file)
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_dict()
        out["per_step"] = self.per_step()
        if self.output is not None:
            out["output"] = str(self.output)
        if self.plots:
            out["plots"] = list(self.plots)
        return out


def calibrate(*, reference: Optional[PathLike] = None, scans: Sequence[PathLike] = (), bank=None,
              machine: str = "bbels", candidates="3:31", metric: str = "cosine", aggregate: str = "median",
              output: Optional[PathLike] = None, scan_out: Optional[PathLike] = None, shard: Shard = WHOLE,
              threads: Optional[int] = None, batch_size: int = 64, allow_partial: bool = False,
              force: bool = False, plot_dir: Optional[PathLike] = None, overlay=None, quiet: bool = True,
              command_line: Optional[str] = None, parameter: Optional[str] = None,
              machine_params: Optional[dict] = None, resume: bool = False, states: str = "network",
              handle_signals: bool = True, progress_stream=None,
              progress_interval: Optional[float] = None) -> Calibration:
    """Calibrate a machine's locality schedule against a network, or merge and aggregate scan files.

    Parameters
    ----------
    reference : path-like, optional
        A network's trajectory (NPZ/HDF5 with ``x`` and ``eps``) to scan; or ``scans``: scan files (shards)
        to merge instead.
    bank : path-like or Bank, optional
        The training images (needed to scan).
    machine, candidates, metric, shard, threads, batch_size
        As :func:`elscli.analysis.scan.scan` (``shard`` (I, N): this task's samples; None/``(0, 1)``: all).
    aggregate : {"median", "mode"}
        :func:`elscli.analysis.aggregate.aggregate`.
    output : path-like, optional
        The schedule JSON to write (only from a scan of every reference sample, unless ``allow_partial``).
    scan_out : path-like, optional
        The scan file to write (``{shard}``/``{shards}`` are filled in when scanning a shard).
    force : bool
        Overwrite existing outputs (and start over from an interrupted scan's partial file).
    resume : bool
        Continue the interrupted scan of ``scan_out`` (its ``.partial`` file, or an unfinished scan file).
    states : {"network", "forward"}
        Scan along the network's own trajectory, or along the reference's forward-noised held-out images
        (:func:`elscli.analysis.scan.scan`).
    handle_signals : bool
        Stop at the next unit of work on SIGINT/SIGTERM (from the main thread), keeping what is computed.
    progress_stream : file, optional
        Where progress goes (default stderr).
    progress_interval : float, optional
        Seconds between plain progress lines when that is not a terminal (None: 10,
        :data:`elscli.progress.DEFAULT_INTERVAL`; the CLI gives ``$ELSCLI_PROGRESS_INTERVAL``).
    plot_dir : path-like, optional
        An existing directory for ``schedule-MACHINE.png`` and ``similarity-MACHINE.png``.
    overlay : schedule spec, optional
        A schedule (:func:`elscli.schedule.load_schedule`) drawn beside the calibrated one.
    quiet : bool
        No progress on stderr.
    command_line : str, optional
        Recorded in the scan file.
    parameter : str, optional
        Calibrate this scalar parameter of ``machine`` (any machine that has it: ``sigma`` of scfdm,
        ``threshold``/``temperature`` of pca-locality, ...) instead of the patch size; ``candidates`` are
        then its values (``"0,0.05,0.1"``) and the schedule a :class:`ParameterSchedule`.
    machine_params : dict, optional
        The machine's other parameters during the scan (their defaults when absent).

    Raises
    ------
    ElscliError
        Bad metric, aggregate, states, candidates, machine or parameter; both or neither of ``reference`` and
        ``scans``; no bank; a shard or ``resume`` without ``scan_out``; ``resume`` with ``force``; outputs that
        exist without ``force``, or an interrupted scan's partial file without ``resume`` or ``force``; a scan
        file to resume that is another scan; scans that cannot be merged; or a schedule asked of a partial
        scan without ``allow_partial``.
    """
    if metric not in METRICS:
        raise ElscliError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if states not in STATES:
        raise ElscliError(f"--states must be one of {', '.join(STATES)}, got {states!r}")
    if resume and force:
        raise ElscliError("give --resume or --force, not both")
    if aggregate not in AGGREGATES:
        raise ElscliError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if parameter is not None:
        _check_overlay(overlay, str(parameter).replace("-", "_"))
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ElscliError(f"--batch-size must be at least 1, got {batch_size}")
    if overlay is not None:           # an unknown or unreadable --overlay is refused before any file is written
        from ..schedule import load_schedule

        load_schedule(overlay)
    scan_named = scan_out
    if scan_out is not None and not scans and shard is not None:
        scan_named = shard_output_path(scan_out, shard)
    refuse_same_files([("-r", reference), ("--bank", bank if isinstance(bank, (str, os.PathLike)) else None),
                       ("--overlay", overlay)] + [("", p) for p in (scans or ())],
                      [("-o", output), ("--scan-out", scan_named)])
    with contextlib.ExitStack() as claims:
        if output is not None:
            claims.enter_context(claim_output(output, force, allow_existing=resume))
        if scans:
            if reference is not None:
                raise ElscliError("give scan files to merge, or --reference to scan, not both")
            if resume:
                raise ElscliError("--resume continues a scan: give --reference (and the same --scan-out)")
            scan_path = None if scan_out is None else claims.enter_context(claim_output(scan_out, force))
            result = merge([Scan.read(p) for p in scans])
            if output is not None and not allow_partial and not result.complete:   # refused before any file is written
                _refuse_partial(len(result.sample_index), result.num_reference_samples)
            if scan_path is not None:
                result.write(scan_path, force=force, params={**result.params, "merged_from": [str(p) for p in scans]})
            return _finish(result, scan_path, aggregate, output, allow_partial, force, plot_dir, overlay)
        for option, path in (("--reference", reference), ("--bank", bank)):   # inputs first (then the rules)
            if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
                raise ElscliError(f"{option} {str(path)!r} does not exist")
        if output is not None and not allow_partial and shard is not None and shard[1] > 1:
            raise ElscliError(f"not writing a schedule from shard {format_shard(shard)} of the scan (a partial "
                              "scan): drop -o and merge the shards' --scan-out files later (elscli locality-scan "
                              "scan-*.h5 -o schedule.json), or pass --allow-partial")
        return _scan_reference(reference, bank, machine, candidates, metric, scan_out, shard, threads, batch_size,
                               force, quiet, command_line, claims, resume, states, handle_signals, progress_stream,
                               (aggregate, output, allow_partial, plot_dir, overlay), parameter, machine_params,
                               progress_interval)


def _refuse_partial(covered: int, total: int) -> None:
    raise ElscliError(f"not writing a schedule from a partial scan (it covers {covered} of {total} reference "
                      "samples): merge every shard first (elscli locality-scan scan-*.h5 -o schedule.json), or pass "
                      "--allow-partial; nothing was written")


def _finish(result: Scan, scan_path, aggregate, output, allow_partial, force, plot_dir, overlay) -> Calibration:
    _check_overlay(overlay, result.parameter)
    schedule = schedule_from_scan(result, aggregate)
    cal = Calibration(result, aggregate, schedule, scan_file=scan_path)
    if not result.complete:
        if output is not None and not allow_partial:
            _refuse_partial(len(result.sample_index), result.num_reference_samples)
        cal.warnings.append(f"the scan covers {len(result.sample_index)} of {result.num_reference_samples} "
                            "reference samples")
    if output is not None:
        cal.output = schedule.save(output, force=force)
    if plot_dir is not None:
        cal.plots = _plots(result, schedule, Path(plot_dir), overlay)
    return cal


def _scan_reference(reference, bank, machine, candidates, metric, scan_out, shard, threads, batch_size, force, quiet,
                    command_line, claims: contextlib.ExitStack, resume, states, handle_signals, progress_stream,
                    finish_args, parameter=None, machine_params=None, progress_interval=None) -> Calibration:
    from .. import reference as R
    from ..progress import Progress
    from ..sample_data import open_bank

    if reference is None:
        raise ElscliError("give --reference REF (a network's trajectory), scan files to merge, or --sweep")
    if bank is None:
        raise ElscliError("--reference needs --bank BANK")
    if parameter is None and machine not in LOCAL_MACHINES:
        from ..machines import machine_class

        names = [p.name for p in machine_class(machine).parameters]
        if PATCH_SIZE not in names:
            raise ElscliError(f"machine {machine!r} has no patch size to calibrate; give --parameter NAME (its "
                              f"parameters: {', '.join(names) or 'none'})")
    parameter = PATCH_SIZE if parameter is None else check_parameter(machine, parameter)
    cands = parse_candidates(candidates) if parameter == PATCH_SIZE else parse_values(candidates)
    shard = WHOLE if shard is None else shard
    if shard[1] > 1 and scan_out is None:
        raise ElscliError("--shard needs --scan-out (each array task writes its partial scan)")
    if resume and scan_out is None:
        raise ElscliError("--resume needs --scan-out (the scan file of the interrupted scan)")
    scan_path = partial = previous = None
    if scan_out is not None:   # claimed before the scan: minutes of work are never lost to a refused write
        scan_path = claims.enter_context(claim_output(shard_output_path(scan_out, shard), force,
                                                      allow_existing=True))
        if scan_path.exists() and not (force or resume):
            raise ElscliError(_exists_message(scan_path))
        partial = scan_path.with_name(scan_path.name + PARTIAL_SUFFIX)
        if partial.exists() and not (resume or force):
            raise ElscliError(f"{str(partial)!r} exists (an interrupted scan); pass --resume to continue it or "
                              "--force to start over")
        if resume:
            previous = _previous_scan(scan_path, partial)
    ref = R.read(reference)
    b = open_bank(bank)
    params = {"reference": str(reference), "bank": str(bank), "machine": machine, "candidates": cands,
              "metric": metric, "states": states, "shard": format_shard(shard), "command_line": command_line}
    if parameter != PATCH_SIZE or machine_params:
        params.update(parameter=parameter, machine_params=dict(machine_params or {}))
    warnings = _held_out_warnings(ref, b) if states == "forward" else []
    if resume and previous is None:     # an array task that always passes --resume starts its first attempt so
        warnings.append(f"nothing to resume at {str(scan_path)!r} (no scan file or .partial file there): "
                        "started the scan from the beginning")
    n_mine, n_steps = _scan_size(ref, states, shard)
    todo = n_mine * len(cands) * n_steps - (0 if previous is None else int(previous.done.sum()))
    stop = StopRequest() if handle_signals else contextlib.nullcontext(None)
    watch = CompileWatch(on_first=lambda: bar.log(COMPILING_NOTE))
    with stop as flag, watch, Progress(todo, description=f"locality-scan {machine}", quiet=quiet,
                                       unit="similarities", group=(n_mine * len(cands), "steps"),
                                       stream=progress_stream, interval=progress_interval,
                                       compiling=lambda: watch.seconds) as bar:
        if flag is not None:
            flag.on_first = lambda s: bar.log(
                f"elscli: {_signal_name(s)} received: stopping after the evaluation in flight (send it again to "
                "stop at once)")

        def checkpoint(result: Scan) -> None:
            if flag is not None:
                flag.writing = True
            result.write(partial, force=True)
            if flag is not None:
                flag.writing = False
                if flag.pending_interrupt:
                    raise KeyboardInterrupt

        result = scan(ref, b, machine, cands, metric=metric, shard=shard, threads=threads, batch_size=batch_size,
                      progress=bar, params=params, states=states, resume=previous, parameter=parameter,
                      machine_params=machine_params,
                      checkpoint=None if partial is None else checkpoint,
                      should_stop=None if flag is None else (lambda: flag.signum is not None))
    computed = int(result.done.sum()) - (0 if previous is None else int(previous.done.sum()))
    if scan_path is not None:
        result.write(scan_path, force=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    if not result.finished:
        cal = Calibration(result, finish_args[0], None, scan_file=scan_path,
                          interrupted=None if flag is None else flag.signum, computed=computed)
        cal.warnings = warnings
        return cal
    aggregate, output, allow_partial, plot_dir, overlay = finish_args
    cal = _finish(result, scan_path, aggregate, output, allow_partial, force or resume, plot_dir, overlay)
    cal.computed = computed
    cal.warnings = warnings + cal.warnings
    return cal


def _exists_message(path: Path) -> str:
    """Why an existing scan file is not overwritten: an unfinished scan is to be resumed."""
    try:
        prev = Scan.read(path)
    except ElscliError:
        prev = None
    if prev is not None and not prev.finished:
        return (f"{str(path)!r} is an unfinished scan ({int(prev.done.sum())} of {prev.done.size} similarities "
                "computed); pass --resume to continue it or --force to start over")
    return f"output {str(path)!r} exists; pass --force to overwrite"


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _previous_scan(scan_path: Path, partial: Path) -> Optional[Scan]:
    """The scan to resume: the partial file (a hard kill's), else the scan file (a stopped scan's)."""
    for path in (partial, scan_path):
        if path.exists():
            try:
                return Scan.read(path)
            except ElscliError as exc:
                raise ElscliError(f"cannot resume from {str(path)!r}: {exc}; delete it or pass --force to start "
                                  "over") from None
    return None


def _scan_size(ref, states: str, shard) -> tuple:
    """(samples of this shard, steps) of the scan of ``ref`` along ``states``."""
    if states == "forward":
        fw = ref.require_forward()
        return len(range(shard[0], fw.num_images, shard[1])), len(fw.times)
    ref.require_eps()
    return len(range(shard[0], ref.num_samples, shard[1])), ref.num_steps


def _held_out_warnings(ref, bank) -> List[str]:
    """A warning when forward images are in the bank (a calibration on them measures memorisation)."""
    import hashlib

    import numpy as np

    from ..bank import bank_images

    fw = ref.require_forward()
    seen = {hashlib.blake2b(np.ascontiguousarray(im, dtype=np.float32).tobytes(), digest_size=16).digest()
            for im in bank_images(bank)}
    inside = [i for i, im in enumerate(fw.x0)
              if hashlib.blake2b(np.ascontiguousarray(im, dtype=np.float32).tobytes(), digest_size=16).digest() in seen]
    if not inside:
        return []
    return [f"{len(inside)} of the reference's {fw.num_images} forward images are in the bank (e.g. image "
            f"{inside[0]}): they are not held out"]


def _check_overlay(overlay, parameter: str) -> None:
    if overlay is not None and parameter != PATCH_SIZE:
        raise ElscliError(f"--overlay draws a locality schedule beside a calibrated one: not with a scan of "
                          f"{parameter}")


def _plots(result: Scan, schedule, plot_dir: Path, overlay) -> List[str]:
    from ..schedule import load_schedule
    from .plots import schedule_plot, similarity_plot

    paper = None
    if overlay is not None:
        ov = load_schedule(overlay)
        paper = {"times": list(ov.times), "patch_sizes": list(ov.patch_sizes), "name": str(overlay)}
    values = list(schedule.patch_sizes) if result.parameter == PATCH_SIZE else list(schedule.values)
    name = result.machine if result.parameter == PATCH_SIZE else f"{result.machine}-{result.parameter}"
    return [schedule_plot(result.times, result.best, values, plot_dir / f"schedule-{name}.png",
                          machine=result.machine, candidates=result.candidates, paper=paper,
                          parameter=result.parameter),
            similarity_plot(result.times, result.candidates, result.similarity,
                            plot_dir / f"similarity-{name}.png", metric=result.metric, parameter=result.parameter)]
