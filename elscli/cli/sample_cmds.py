"""``elscli sample``, ``elscli merge`` and ``elscli export``: the thin CLI edge over :mod:`elscli.runs`."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import ElscliError
from ..outputs import file_output
from . import environment
from .app import app
from .output import argv, command_line, note, print_json, warnings_to_stderr


def _emit(payload: dict, as_json: bool, text: str) -> None:
    """The result of a command that writes files: JSON on stdout with ``--json``, else ``text`` (what was
    written) as notes on stderr — stdout carries only data."""
    if as_json:
        print_json(payload)
    else:
        for line in text.splitlines():
            note(line)


@app.command("sample", no_args_is_help=False, short_help="Sample with a score machine; write a run file.")
def sample_cmd(
    output: Annotated[str, typer.Option("-o", "--output", help="Run file to write (HDF5). With shards, "
                                        "{shard}/{shards} in the name are filled in.")] = "run.h5",
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK",
                                                 help="Patch bank (elscli build-bank). [default: the bundled "
                                                      "sample_data bank, built on first use into "
                                                      "$ELSCLI_CACHE or ~/.cache/elscli]")] = None,
    machine: Annotated[str, typer.Option("--machine", "-m", help="is | ls | els | bbels | nearest | scfdm | wiener | "
                                                                 "pca-locality | pspc-square (README: the analytic "
                                                                 "zoo)")] = "bbels",
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", "-p",
                                                      help="Constant patch size (odd; ls, els, bbels, "
                                                           "pspc-square).")] = None,
    temperature: Annotated[Optional[str], typer.Option(
        "--temperature", help="is, pca-locality: softmax temperature tau > 0 (log weights divided by tau), or a "
                              "schedule JSON from locality-scan --parameter. [default: 1]")] = None,
    sigma: Annotated[Optional[str], typer.Option(
        "--sigma", help="scfdm: smoothing sigma >= 0 of the bank, pixel units (0: IS), or a schedule JSON. "
                        "[default: 0.1]")] = None,
    threshold: Annotated[Optional[str], typer.Option(
        "--threshold", help="pca-locality: mask threshold in [0, 1], relative to each row's largest "
                            "Wiener-filter entry (0: the whole image), or a schedule JSON. [default: 0.1]")] = None,
    wrap: Annotated[bool, typer.Option(
        "--wrap", help="els: wrap-around training patches (every pixel of a circularly padded training image "
                       "is a centre; P up to 2H-1; at P = H the non-local ES machine).")] = False,
    schedule: Annotated[Optional[str], typer.Option(
        "--schedule", help="Locality schedule: paper:NAME, a JSON file {times, patch_sizes}, or an integer. "
                           "[default: paper:MNIST_ResNet_zeros]")] = None,
    schedule_scale: Annotated[Optional[float], typer.Option(
        "--schedule-scale", help="Multiply every step's patch size by F, rounded to the nearest odd size >= 1 "
                                 "(ties away from the unscaled size); recorded in the run.")] = None,
    late_scale: Annotated[Optional[float], typer.Option(
        "--late-scale", help="Like --schedule-scale, only for the steps starting at t <= --late-from.")] = None,
    late_from: Annotated[Optional[float], typer.Option(
        "--late-from", help="With --late-scale: the latest step start time that is scaled.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Steps N of the time grid; the machine is "
                                                 "evaluated N times (ddim, euler) or 2N-1 times (heun), as EDM "
                                                 "counts; with --from-seeds the file's unless given. "
                                                 "[default: 20]")] = None,
    start_time: Annotated[Optional[float], typer.Option("--start-time",
                                                        help="First time of the grid. [default: 1.0]")] = None,
    noise_schedule: Annotated[Optional[str], typer.Option(
        "--noise-schedule", help="Noise schedule: cosine-legacy | cosine | linear | edm. [default: cosine-legacy; "
                                 "with --from-seeds the file's]")] = None,
    sampler: Annotated[Optional[str], typer.Option(
        "--sampler", help="ddim | euler | heun. [default: ddim; with --from-seeds the file's]")] = None,
    eta: Annotated[Optional[float], typer.Option(
        "--eta", help="DDIM's eta in [0, 1]: 0 deterministic, 1 DDPM ancestral sampling (the injected noise "
                      "from each sample's own generator, recorded in the run). [default: 0; with --from-seeds "
                      "the file's]")] = None,
    grid: Annotated[Optional[str], typer.Option(
        "--grid", help="uniform (equal steps in t) | edm (EDM's rho = 7 spacing in sigma). [default: uniform; "
                       "with --from-seeds the file's]")] = None,
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", "-n",
                                                       help="Samples in the whole run (all shards). "
                                                            "[default: 16; with --from-seeds all the file's samples]")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Root seed R: sample i starts from "
                                                     "default_rng([i, R]).standard_normal. [default: 0; with "
                                                     "--from-seeds only for a stochastic sampler the file was "
                                                     "not sampled with]")] = None,
    label: Annotated[Optional[int], typer.Option("--label", help="Class-conditional on this label.")] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help="'random': a random class per sample.")] = None,
    from_seeds: Annotated[Optional[Path], typer.Option(
        "--from-seeds", help="Take seeds, labels, the time grid, the noise schedule and the sampler (with its "
                             "injected noise) from a reference trajectory (NPZ/HDF5) or an earlier run; "
                             "--sampler/--eta/--grid/--steps given explicitly override the file's.")] = None,
    png: Annotated[Optional[str], typer.Option("--png", help="Also write a labelled grid of the finals.")] = None,
    channels: Annotated[Optional[str], typer.Option(
        "--channels", help="Channels the --png shows: one (grey) or three (RGB) indices such as 0,1,2, or 'each' "
                           "(every channel in grey). [default: all of 1 or 3 channels, else the first three]")] = None,
    save_trajectory: Annotated[bool, typer.Option("--save-trajectory",
                                                  help="Keep x and x0_hat at every step.")] = False,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", help="I/N: compute samples I, I+N, ... [default: in a Slurm array task, (ID - MIN)/STEP "
                        "of COUNT from SLURM_ARRAY_TASK_ID/MIN/STEP/COUNT; else 0/1]")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", "-j",
                                                   help="Threads. [default: SLURM_CPUS_PER_TASK, else all cores]")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size",
                                                      help="Samples denoised together (results do not depend on it). "
                                                           "[default: 1]")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a partial run file, skipping finished samples.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Sample with a score machine through a reverse process (default: deterministic DDIM) and write a run file.

    Examples:

    \b
      elscli sample -n 16 --png grid.png                      # bbELS on the bundled MNIST sample bank
      elscli sample --bank mnist.h5 --machine ls --patch-size 7 -n 100 -o ls7.h5
      elscli sample --bank mnist.h5 --machine scfdm --sigma 0.1 --from-seeds net.npz -o scfdm.h5
      elscli sample --bank mnist.h5 --start-time 0.95 --steps 19   # the paper's released machine runs
      elscli sample --bank mnist.h5 --from-seeds net.npz -o bbels.h5   # same seeds, grid, sampler as a network
      elscli sample --bank mnist.h5 --noise-schedule linear --eta 1 -o ddpm.h5   # DDPM ancestral sampling
      elscli sample --bank mnist.h5 --noise-schedule edm --sampler heun --grid edm --steps 18 -o heun.h5
      elscli sample --bank mnist.h5 --from-seeds net.npz --schedule-scale 2 -o wide.h5   # every P doubled
      elscli sample --bank mnist.h5 -n 1000 -o 'run-{shard}.h5'  # in a Slurm array: shard from SLURM_ARRAY_*
    """
    from .. import runs

    output, png = file_output(output, "-o"), file_output(png, "--png")
    if label is not None and labels is not None:
        raise ElscliError("give --label L or --labels random, not both")
    if labels is not None and labels.lower() != "random":
        raise ElscliError(f"--labels takes only 'random' (use --label L for one class), got {labels!r}")
    label_arg = "random" if labels is not None else label
    machine_params = {"temperature": runs.parameter_value(temperature, "temperature"),
                      "sigma": runs.parameter_value(sigma, "sigma"),
                      "threshold": runs.parameter_value(threshold, "threshold"), "wrap": True if wrap else None}
    with warnings_to_stderr():
        run = runs.sample(bank, machine=machine, patch_size=patch_size, schedule=schedule, steps=steps,
                          start_time=start_time, num_samples=num_samples, seed=seed, label=label_arg,
                          from_seeds=from_seeds, output=output, force=force, resume=resume,
                          machine_params={k: v for k, v in machine_params.items() if v is not None},
                          noise_schedule=noise_schedule, sampler=sampler, eta=eta, grid=grid, channels=channels,
                          shard=environment.resolve_shard(shard), save_trajectory=save_trajectory,
                          threads=environment.resolve_threads(threads), batch_size=batch_size, quiet=quiet, png=png,
                          stop_grace=environment.stop_grace(), command_line=command_line(),
                          progress_interval=environment.progress_interval(),
                          cache_dir=environment.cache_dir(), sample_data_dir=environment.sample_data_dir(),
                          schedule_scale=schedule_scale, late_scale=late_scale, late_from=late_from)
    done = int(run.done.sum())
    compiling = float(getattr(run, "compile_seconds", 0.0))
    per = (run.elapsed - compiling) / run.samples_computed if run.samples_computed else None   # as progress
    payload = {
        "output": str(run.path), "png": str(png) if png is not None and done else None,
        "machine": run.machine, "samples": len(run), "samples_done": done,
        "samples_computed": run.samples_computed, "complete": run.complete,
        "seconds": round(run.elapsed, 3), "compile_seconds": round(compiling, 3),
        "seconds_per_sample": None if per is None else round(per, 4),
        "steps": int(len(run.times) - 1), "patch_sizes": [int(p) for p in run.patch_sizes],
        "noise_schedule": run.attrs.get("noise_schedule"), "sampler": run.params.get("sampler"),
        "eta": run.params.get("eta"), "grid": run.params.get("grid"), "evaluations": run.params.get("evaluations"),
        "shard": run.params.get("shard"), "interrupted": None if run.interrupted is None
        else signal.Signals(run.interrupted).name,
    }
    rate = f", {per:.3g} s/sample" if per is not None else ""
    if compiling >= 0.5:          # the progress display's threshold: stated apart, left out of the rate
        rate += f"; {compiling:.0f} s compiling kernels, not in the rate"
    resumed = done - run.samples_computed if resume else 0
    p = run.params
    process = runs.export.process_description(run)
    text = (f"wrote {run.path}: {done}/{len(run)} samples done"
            + (f" ({resumed} from before, {run.samples_computed} now)" if resumed > 0 else "")
            + f" ({run.machine}, {process}, shard {p.get('shard')}{rate})")
    if png is not None and done:
        text += f"\nwrote {png}"
    _emit(payload, as_json, text)
    if run.interrupted is not None:
        hint = ("run the same command again to continue" if "--resume" in argv()
                else f"continue with: {command_line(drop=('--force',))} --resume")   # --force would refuse it
        print(f"elscli: stopped by {signal.Signals(run.interrupted).name} with {done}/{len(run)} samples done; "
              + hint, file=sys.stderr)
        raise typer.Exit(128 + int(run.interrupted))


@app.command("merge", short_help="Merge the shards of one run into one run file.")
def merge_cmd(
    shards: Annotated[List[Path], typer.Argument(metavar="SHARDS...", help="Shard run files of one run.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Merged run file.")],
    allow_missing: Annotated[bool, typer.Option("--allow-missing",
                                                help="Merge even if some samples are missing or unfinished.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Merge the shards of one run (same parameters and bank, disjoint samples) into one run file.

    Examples:

    \b
      elscli merge run-*.h5 -o run.h5
      elscli merge run-0.h5 run-2.h5 -o partial.h5 --allow-missing
    """
    from .. import runs

    output = file_output(output, "-o")
    run = runs.merge_runs(shards, output, allow_missing=allow_missing, force=force, command_line=command_line())
    payload = {"output": str(output), "inputs": [str(s) for s in shards], "samples": len(run),
               "num_samples": run.params.get("num_samples")}
    _emit(payload, as_json, f"wrote {output}: {len(run)} samples from {len(shards)} shards")


@app.command("export", short_help="Export a run's finished samples as .npz or PNGs.")
def export_cmd(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="A .npz file, or a directory for one PNG "
                                                                "per sample.")],
    scale: Annotated[Optional[int], typer.Option("--scale", help="PNG upscaling factor (nearest neighbour; PNGs "
                                                                 "only). [default: 1]")] = None,
    channels: Annotated[Optional[str], typer.Option(
        "--channels", help="Channels the PNGs show: one (grey) or three (RGB) indices such as 0,1,2, or 'each'. "
                           "[default: all of 1 or 3 channels, else the first three]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Export a run's finished samples as .npz (final, sample_ids, labels, seeds, times) or PNGs (latents and
    other channel counts: the first three channels, or --channels, each stretched to its 1-99th percentile).

    Examples:

    \b
      elscli export run.h5 -o finals.npz
      elscli export run.h5 -o pngs/ --scale 4
    """
    from .. import runs

    files = runs.export_run(run, output, force=force, scale=scale, channels=channels)
    r = runs.Run.open(run, trajectories=False)
    done = int(r.done.sum())
    payload = {"run": str(run), "output": str(output), "files": len(files), "samples": done,
               "run_samples": len(r), "complete": bool(r.complete)}
    if not r.complete:
        note(f"{run} is a partial run: exported its {done} finished sample(s) of {len(r)}")
    _emit(payload, as_json, f"wrote {len(files)} file(s) to {output}")
