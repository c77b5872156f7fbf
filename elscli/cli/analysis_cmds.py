"""``elscli compare``, ``elscli mosaic`` and ``elscli locality-scan``: the CLI edge over :mod:`elscli.analysis`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import ElscliError
from ..outputs import file_output
from . import environment
from .app import app, given, refuse_given
from .output import command_line, note, output_dir, print_csv, print_json, table, warn, warnings_to_stderr


def _q(s: dict) -> str:
    return f"{s['median']:.3f} [{s['q1']:.3f}, {s['q3']:.3f}]"


# ============================================================================================ compare

@app.command("compare", short_help="Agreement of final images with a reference, per sample.")
def compare_cmd(
    ctx: typer.Context,
    files: Annotated[List[Path], typer.Argument(metavar="FILES...", help="The reference first (a network's trajectory or a run), "
                                                     "then the runs to compare with it.")],
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A baseline run (usually IS): report "
                                                     "the fraction of samples where each input beats it.")] = None,
    clamp: Annotated[bool, typer.Option("--clamp", help="Clamp final images to [-1, 1] first (as the paper's "
                                                        "notebook did for network outputs).")] = False,
    nearest: Annotated[bool, typer.Option("--nearest", help="Memorisation: each sample's nearest training "
                                                            "image (needs --bank).")] = False,
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK",
                                                 help="Patch bank, for --nearest.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Directory for the scatter and side-by-side "
                                                                "PNGs.")] = None,
    per_sample: Annotated[bool, typer.Option("--per-sample", help="Also print the per-sample table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout (summary and per-sample values).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Per-sample CSV on stdout.")] = False,
) -> None:
    """Sample-by-sample agreement of final images: Pearson r, r², cosine, MSE (samples matched by seeds).

    Examples:

    \b
      elscli compare net.npz bbels.h5 ls.h5 --baseline is.h5 --plot figs/
      elscli compare net.npz bbels.h5 --csv > per-sample.csv
      elscli compare is.h5 bbels.h5 --bank mnist.h5 --nearest     # memorisation: IS copies, ELS creates
    """
    from ..analysis.compare import compare_files

    if as_json and as_csv:
        raise ElscliError("give --json or --csv, not both")
    if nearest and bank is None:
        raise ElscliError("--nearest needs --bank BANK")
    if not nearest:
        refuse_given(ctx, {"bank": "--bank"}, "is the training set of --nearest, which was not given")
    if as_json or as_csv:
        refuse_given(ctx, {"per_sample": "--per-sample"}, f"prints the per-sample table; {'--json' if as_json else '--csv'} "
                     f"holds the per-sample values already")
    plot_dir = output_dir(plot)
    if nearest:   # the agreement table (when the files can be compared), then the nearest training images
        agreement = None
        if len(files) >= 2:
            try:
                comp = compare_files(files, baseline=baseline, clamp=clamp, plot_dir=plot_dir)
            except ElscliError as exc:
                warn(f"no agreement table: {exc}")
            else:
                for w in comp.warnings:
                    warn(w)
                agreement = (comp, comp.summary(), comp.per_sample_rows(), per_sample)
        with warnings_to_stderr():          # a run of another bank: one warning line
            return _nearest(files, bank, as_json=as_json, as_csv=as_csv, clamp=clamp, agreement=agreement)
    comp = compare_files(files, baseline=baseline, clamp=clamp, plot_dir=plot_dir)
    for w in comp.warnings:
        warn(w)
    summary = comp.summary()
    rows = comp.per_sample_rows()
    if as_json:
        print_json({**summary, "per_sample": rows})
        return
    if as_csv:
        print_csv(rows)
        return
    _agreement_tables(comp, summary, clamp, per_sample)


def _agreement_tables(comp, summary, clamp: bool, per_sample: bool) -> None:
    cols = ["input", "machine", "r² median [q1, q3]", "r median", "cosine median", "MSE median"]
    if comp.baseline is not None:
        cols.append(f"beats {comp.baseline}")
    trows = []
    for name, e in summary["inputs"].items():
        r = [name, e["machine"] or "-", _q(e["r2"]), f"{e['r']['median']:.3f}", f"{e['cosine']['median']:.3f}",
             f"{e['mse']['median']:.4f}"]
        if comp.baseline is not None:
            r.append("(baseline)" if name == comp.baseline else f"{e['fraction_beats_baseline']:.0%}")
        trows.append(r)
    table(f"agreement with {comp.reference.name} over {summary['num_samples']} samples"
           + (" (clamped to [-1, 1])" if clamp else ""), cols, trows)
    if per_sample:
        names = [o.name for o in comp.others]
        prow = []
        for j, ri in enumerate(comp.ref_index):
            prow.append([str(int(ri))] + [f"{comp.metrics[n]['r2'][j]:.3f}" for n in names])
        table("per-sample r²", ["sample"] + names, prow)
    for p in comp.plots:
        note(f"wrote {p}")


def _nearest(files, bank_path, *, as_json, as_csv, clamp, agreement=None):
    """``compare --nearest``: each sample's nearest training images; with ``agreement`` (the comparison of
    the same files), its table first (JSON: under ``"agreement"``)."""
    from ..analysis.nearest import nearest_files

    results, all_rows = nearest_files(files, bank_path, clamp=clamp)
    if as_json:
        payload = {"bank": str(bank_path), "inputs": results, "per_sample": all_rows}
        if agreement is not None:
            payload["agreement"] = {**agreement[1], "per_sample": agreement[2]}
        print_json(payload)
        return
    if as_csv:
        print_csv(all_rows)
        return
    if agreement is not None:
        _agreement_tables(agreement[0], agreement[1], clamp, agreement[3])
    trows = [[n, e["machine"] or "-", str(e["num_samples"]), f"{e['copy_fraction']:.0%}", f"{e['mean_nn_rms']:.3f}",
              f"{e['median_ratio']:.3f}", f"{e['mean_nn_corr']:.3f}"] for n, e in results.items()]
    table(f"nearest training image in {bank_path} (copy: RMS < 0.05 on [-1, 1])",
           ["input", "machine", "samples", "copies", "mean RMS to nearest", "median d1/d2", "mean best corr"], trows)


# ============================================================================================= mosaic

@app.command("mosaic", short_help="Patch mosaics and local consistency from provenance.")
def mosaic_cmd(
    ctx: typer.Context,
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A run file with provenance.")],
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK",
                                                 help="The run's bank: enables the local-consistency check.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Directory for mosaic PNGs.")] = None,
    samples: Annotated[Optional[str], typer.Option("--samples", help="Positions of samples to analyse, e.g. "
                                                                     "0,1,2. [default: all]")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Local consistency: max |pixel - nearest "
                                                                 "patch centre| on [-1, 1].")] = 0.02,
    max_pngs: Annotated[int, typer.Option("--max-pngs", help="At most this many PNGs.")] = 16,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", "-j", help="Threads. [default: SLURM_CPUS_PER_TASK, else all cores]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Per-sample CSV on stdout.")] = False,
) -> None:
    """Patch mosaics from provenance: distinct source images, posterior entropy, local consistency
    (Theorem 4.1), and a map PNG per sample (sample | source image of each pixel | entropy).

    Examples:

    \b
      elscli mosaic bbels.h5 --bank mnist.h5 -o mosaics/
      elscli mosaic bbels.h5 --samples 0,3 --json
    """
    from ..analysis.mosaic import mosaic_file

    if as_json and as_csv:
        raise ElscliError("give --json or --csv, not both")
    if not tolerance >= 0:        # NaN too
        raise ElscliError(f"--tolerance must be a number >= 0 (on the [-1, 1] pixel scale), got {tolerance}")
    if bank is None:
        refuse_given(ctx, {"tolerance": "--tolerance"}, "is the tolerance of the local-consistency check, which "
                                                        "needs --bank")
    if output is None:
        refuse_given(ctx, {"max_pngs": "--max-pngs"}, "limits the PNGs written into -o DIR, which was not given")
    sel = None
    if samples:
        try:
            sel = [int(s) for s in samples.split(",") if s.strip()]
        except ValueError:
            raise ElscliError(f"--samples must be integers separated by commas, got {samples!r}") from None
    rep = mosaic_file(run, bank=bank, out_dir=output_dir(output, "-o"), samples=sel, tol=tolerance,
                      max_pngs=max_pngs, threads=environment.resolve_threads(threads))
    if as_json:
        print_json({"run": str(run), **rep.summary(), "per_sample": rep.rows()})
        return
    if as_csv:
        print_csv(rep.rows())
        return
    trows = [[str(r["sample"]), str(r["dominant_sources"]), str(r["distinct_sources"]), f"{r['mean_entropy']:.3f}",
              "-" if r["local_consistency"] is None else f"{r['local_consistency']:.1%}"] for r in rep.rows()]
    table(f"patch mosaic of {run} ({rep.machine}, last P = {rep.patch_size}, tolerance {tolerance})",
           ["sample", "dominant sources (weight ≥ 0.5)", "distinct sources", "mean entropy (nats)",
            "locally consistent"], trows)
    s = rep.summary()
    line = (f"median dominant sources {s['median_dominant_sources']:.0f} (distinct {s['median_distinct_sources']:.0f}), "
            f"mean entropy {s['mean_entropy']:.3f} nats")
    if "mean_local_consistency" in s:
        line += f", mean local consistency {s['mean_local_consistency']:.1%}"
    print(line)
    for p in rep.pngs:
        note(f"wrote {p}")


# ====================================================================================== locality-scan

@app.command("locality-scan", short_help="Calibrate a locality schedule, or sweep patch sizes.")
def locality_scan_cmd(
    ctx: typer.Context,
    scans: Annotated[Optional[List[Path]], typer.Argument(metavar="[SCANS]...", help="Existing scan files (shards) to merge and "
                                                               "aggregate, instead of scanning.")] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="A network's reference "
                                                      "trajectory (NPZ/HDF5 with x and eps).")] = None,
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK", help="Patch bank.")] = None,
    machine: Annotated[str, typer.Option("--machine", "-m", help="bbels | els | ls | pspc-square (| is for "
                                                                 "--sweep); with --parameter, any machine "
                                                                 "that has it")] = "bbels",
    parameter: Annotated[Optional[str], typer.Option(
        "--parameter", help="Calibrate this scalar parameter of the machine instead of the patch size: sigma "
                            "(scfdm), threshold or temperature (pca-locality), temperature (is); "
                            "--candidates then lists its values, e.g. 0,0.05,0.1, and -o writes "
                            "{\"times\": [...], \"NAME\": [...]} for sample --NAME FILE.")] = None,
    candidates: Annotated[str, typer.Option("--candidates", help="Odd candidate sizes: 3,5,7 or a range "
                                                                 "3:31 (with --parameter: values "
                                                                 "0,0.05,0.1).")] = "3:31",
    metric: Annotated[str, typer.Option("--metric", help="cosine (higher is better) | l2 (lower)")] = "cosine",
    aggregate: Annotated[str, typer.Option("--aggregate", help="median (lower median) | mode")] = "median",
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Schedule JSON to write (what "
                                                   "`elscli sample --schedule` reads).")] = None,
    scan_out: Annotated[Optional[str], typer.Option("--scan-out", help="Scan file (HDF5) keeping every "
                                                     "per-sample similarity; {shard}/{shards} are filled in.")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: scan samples I, I+N, ... (needs "
                                                 "--scan-out) [default: in a Slurm array task, (ID - MIN)/STEP "
                                                 "of COUNT; else 0/1)")] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="Constant sizes to sample at (no reference): "
                                                 "memorisation vs creativity.")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="--sweep: samples per size.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="--sweep: root seed.")] = 0,
    steps: Annotated[int, typer.Option("--steps", help="--sweep: DDIM steps.")] = 20,
    label: Annotated[Optional[int], typer.Option("--label", help="--sweep: class-conditional label.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="--sweep: keep the run files here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Directory for PNGs.")] = None,
    overlay: Annotated[Optional[str], typer.Option("--overlay", help="A schedule to draw beside the calibrated "
                                                   "one in the plot, e.g. paper:MNIST_ResNet_zeros.")] = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", "-j", help="Threads. [default: SLURM_CPUS_PER_TASK, else all cores]")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples evaluated together.")] = 64,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Write a schedule from a scan of only "
                                                "some of the reference's samples (a deliberate subset).")] = False,
    states: Annotated[str, typer.Option("--states", help="network: the network's own reverse trajectory | "
                                        "forward: the reference's held-out images noised forward (forward_*, "
                                        "written by elscli.reference.record(..., forward_images=...)).")] = "network",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted scan of --scan-out (its "
                                         ".partial file, or an unfinished scan file).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Calibrate a machine's locality schedule against a network, or sweep constant patch sizes.

    Follows the network's own trajectory (or, with --states forward, held-out images noised forward); at
    each step compares the network's score -eps/b with every candidate machine's score, keeps each sample's
    best P (ties: the smaller), and aggregates per step (lower median).  With --scan-out the scan works in
    SCAN.h5.partial; Ctrl-C or SIGTERM stops it after the evaluation in flight, and --resume continues it.

    Examples:

    \b
      elscli locality-scan -r net.npz --bank mnist.h5 --machine bbels --candidates 3:31 -o bbels.json --plot figs/
      elscli locality-scan -r net.npz --bank mnist.h5 --shard 0/8 --scan-out 'scan-{shard}.h5'   # array task
      elscli locality-scan -r net.npz --bank mnist.h5 --scan-out scan.h5 -o bbels.json --resume   # after a stop
      elscli locality-scan scan-*.h5 -o bbels.json --scan-out scan.h5                          # merge shards
      elscli locality-scan --sweep 3,5,9,15,31 --bank mnist.h5 --machine els -n 16 --plot figs/
      elscli locality-scan -r net.npz --bank mnist.h5 -m scfdm --parameter sigma --candidates 0,0.1,0.5 --metric l2 -o sigma.json
    """
    from ..analysis.calibrate import calibrate
    from ..analysis.sweep import run_sweep

    output, scan_out = file_output(output, "-o"), file_output(scan_out, "--scan-out")
    plot_dir = output_dir(plot)
    n_threads = environment.resolve_threads(threads)
    if sweep is not None:
        if reference is not None or scans:
            raise ElscliError("--sweep samples from noise: give no --reference and no scan files")
        if parameter is not None:
            raise ElscliError("--sweep sweeps the patch size: not with --parameter")
        for option, value in (("-o", output), ("--scan-out", scan_out), ("--shard", shard), ("--overlay", overlay),
                              ("--allow-partial", allow_partial or None)):
            if value is not None:      # a calibration option: --sweep writes runs and plots, not a schedule
                raise ElscliError(f"give --sweep or {option}, not both (--sweep samples constant patch sizes; "
                                  f"{option} is for a calibration against a reference)")
        for name, option in _CALIBRATION_ONLY.items():      # options the sweep would accept and ignore
            if given(ctx, name):
                raise ElscliError(f"give --sweep or {option}, not both (--sweep samples constant patch sizes; "
                                  f"{option} is for a calibration against a reference)")
        result = run_sweep(bank, machine, sweep, num_samples=num_samples, seed=seed, steps=steps, label=label,
                           run_dir=run_dir, plot_dir=plot_dir, force=force, quiet=quiet, threads=n_threads,
                           progress_interval=environment.progress_interval())
        _print_sweep(result, as_json)
        return
    for option, value in (("--label", label), ("--run-dir", run_dir)):
        if value is not None:
            raise ElscliError(f"{option} is for --sweep only (a calibration follows the reference's samples)")
    for name, option in _SWEEP_ONLY.items():
        if given(ctx, name):
            raise ElscliError(f"{option} is for --sweep only (a calibration follows the reference's samples, "
                              f"times and steps)")
    cal = calibrate(reference=reference, scans=scans or (), bank=bank, machine=machine, candidates=candidates,
                    metric=metric, aggregate=aggregate, output=output, scan_out=scan_out,
                    shard=environment.resolve_shard(shard), threads=n_threads, batch_size=batch_size,
                    allow_partial=allow_partial, force=force, plot_dir=plot_dir, overlay=overlay, quiet=quiet,
                    command_line=command_line(), parameter=parameter, resume=resume, states=states,
                    progress_interval=environment.progress_interval())
    for w in cal.warnings:
        warn(w)
    payload = cal.summary()
    if cal.interrupted is not None:
        _stopped_scan(cal, payload, as_json)
    if as_json:
        print_json(payload)
        return
    name = payload["parameter"]
    fmt = "{:.0f}" if name == "patch_size" else "{:.3g}"
    trows = [[f"{r['t']:.3f}", fmt.format(r[name]), f"{fmt.format(r['q1'])}–{fmt.format(r['q3'])}",
              f"{fmt.format(r['min'])}–{fmt.format(r['max'])}", f"{r['median_similarity_at_best']:.4f}"]
             for r in payload["per_step"]]
    what = "locality schedule" if name == "patch_size" else f"{name} schedule"
    table(f"{what} for {cal.scan.machine} ({aggregate} over {payload['samples']} samples, {cal.scan.metric})",
          ["t", "P" if name == "patch_size" else name, "samples q1–q3", "range", f"median {cal.scan.metric}"],
          trows)
    for k in ("scan_file", "output"):
        if k in payload:
            note(f"wrote {payload[k]}")
    for p in payload.get("plots", []):
        note(f"wrote {p}")


#: Options of a calibration that --sweep would ignore (parameter -> option), and the reverse.
_CALIBRATION_ONLY = {"candidates": "--candidates", "metric": "--metric", "aggregate": "--aggregate",
                     "batch_size": "--batch-size", "states": "--states", "resume": "--resume"}
_SWEEP_ONLY = {"num_samples": "--num-samples", "seed": "--seed", "steps": "--steps"}


def _stopped_scan(cal, payload: dict, as_json: bool) -> None:
    """A scan stopped by a signal: say what is kept and how to continue, and exit 128 + the signal."""
    import signal
    import sys

    from .output import argv

    if as_json:
        print_json(payload)
    elif cal.scan_file is not None:
        note(f"wrote {cal.scan_file}")
    name = signal.Signals(cal.interrupted).name
    kept = (f"{payload['computed']}/{payload['similarities']} similarities computed"
            + (f", kept in {cal.scan_file}" if cal.scan_file is not None else " (no --scan-out: not kept)"))
    hint = ""
    if cal.scan_file is not None:
        hint = ("; run the same command again to continue" if "--resume" in argv()
                else f"; continue with: {command_line(drop=('--force',))} --resume")
    print(f"elscli: stopped by {name} with {kept}{hint}", file=sys.stderr)
    raise typer.Exit(128 + int(cal.interrupted))


def _print_sweep(result, as_json: bool) -> None:
    payload = result.summary()
    if as_json:
        print_json(payload)
        return
    rows = payload["points"]
    table(f"constant-P sweep of {result.machine} ({result.num_samples} samples, seed {result.seed})",
          ["P", "copies", "mean RMS to nearest", "median d1/d2", "mean entropy (nats)"],
          [[str(r["patch_size"]), f"{r['copy_fraction']:.0%}", f"{r['mean_nn_rms']:.3f}", f"{r['median_ratio']:.3f}",
            f"{r['mean_entropy']:.3f}"] for r in rows])
    for p in payload.get("plots", []):
        note(f"wrote {p}")
