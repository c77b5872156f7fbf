"""``elscli compare``, ``elscli mosaic`` and ``elscli locality-scan``: the CLI edge over :mod:`elscli.analysis`."""
from __future__ import annotations

import csv
import io
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import numpy as np
import typer

from . import app, claim
from ..errors import ElscliError


def _command_line() -> str:
    from . import command_line

    return "elscli " + " ".join(shlex.quote(a) for a in (command_line() or sys.argv[1:]))


def _warn(msg: str) -> None:
    print(f"elscli: warning: {msg}", file=sys.stderr)


def _print_json(payload) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _print_csv(rows: List[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    sys.stdout.write(buf.getvalue())


def _table(title: str, columns: List[str], rows: List[List[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None).print(t)


def _plot_dir(plot: Optional[Path]) -> Optional[Path]:
    if plot is None:
        return None
    if plot.exists() and not plot.is_dir():
        raise ElscliError(f"--plot {str(plot)!r} is not a directory")
    if not plot.parent.is_dir():
        raise ElscliError(f"--plot: directory {str(plot.parent)!r} does not exist")
    plot.mkdir(exist_ok=True)
    return plot


def _open_bank(path):
    from ..runs import open_bank

    return open_bank(path)


def _q(s: dict) -> str:
    return f"{s['median']:.3f} [{s['q1']:.3f}, {s['q3']:.3f}]"


# ============================================================================================ compare

@app.command("compare")
def compare_cmd(
    files: Annotated[List[Path], typer.Argument(help="The reference first (a network's trajectory or a run), "
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

      elscli compare net.npz bbels.h5 ls.h5 --baseline is.h5 --plot figs/

      elscli compare net.npz bbels.h5 --csv > per-sample.csv

      elscli compare is.h5 bbels.h5 --bank mnist.h5 --nearest     # memorisation: IS copies, ELS creates
    """
    from ..analysis import compare as C

    if as_json and as_csv:
        raise ElscliError("give --json or --csv, not both")
    plot_dir = _plot_dir(plot)
    if nearest:
        if bank is None:
            raise ElscliError("--nearest needs --bank BANK")
        return _nearest(files, bank, as_json=as_json, as_csv=as_csv, clamp=clamp)
    comp = C.compare_files(files, baseline=baseline, clamp=clamp)
    for w in comp.warnings:
        _warn(w)
    summary = comp.summary()
    rows = comp.per_sample_rows()
    pngs = []
    if plot_dir is not None:
        from ..analysis.plots import comparison_plots

        pngs = comparison_plots(comp, plot_dir)
        summary["plots"] = pngs
    if as_json:
        _print_json({**summary, "per_sample": rows})
        return
    if as_csv:
        _print_csv(rows)
        return
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
    _table(f"agreement with {comp.reference.name} over {summary['num_samples']} samples"
           + (" (clamped to [-1, 1])" if clamp else ""), cols, trows)
    if per_sample:
        names = [o.name for o in comp.others]
        prow = []
        for j, ri in enumerate(comp.ref_index):
            prow.append([str(int(ri))] + [f"{comp.metrics[n]['r2'][j]:.3f}" for n in names])
        _table("per-sample r²", ["sample"] + names, prow)
    for p in pngs:
        print(f"wrote {p}")


def _nearest(files, bank_path, *, as_json, as_csv, clamp):
    from ..analysis.compare import load_outputs
    from ..analysis.nearest import nearest

    bank = _open_bank(bank_path)
    results = {}
    all_rows = []
    for fp in files:
        out = load_outputs(fp)
        fin = np.clip(out.final, -1, 1) if clamp else out.final
        nn = nearest(fin, bank.images, bank.labels)
        results[out.name] = {"path": str(fp), "machine": out.machine, **nn.summary()}
        for r in nn.rows():
            all_rows.append({"input": out.name, **r})
    if as_json:
        _print_json({"bank": str(bank_path), "inputs": results, "per_sample": all_rows})
        return
    if as_csv:
        _print_csv(all_rows)
        return
    trows = [[n, e["machine"] or "-", str(e["num_samples"]), f"{e['copy_fraction']:.0%}", f"{e['mean_nn_rms']:.3f}",
              f"{e['median_ratio']:.3f}", f"{e['mean_nn_corr']:.3f}"] for n, e in results.items()]
    _table(f"nearest training image in {bank_path} (copy: RMS < 0.05 on [-1, 1])",
           ["input", "machine", "samples", "copies", "mean RMS to nearest", "median d1/d2", "mean best corr"], trows)


# ============================================================================================= mosaic

@app.command("mosaic")
def mosaic_cmd(
    run: Annotated[Path, typer.Argument(help="A run file with provenance.")],
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK",
                                                 help="The run's bank: enables the local-consistency check.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Directory for mosaic PNGs.")] = None,
    samples: Annotated[Optional[str], typer.Option("--samples", help="Positions of samples to analyse, e.g. "
                                                                     "0,1,2 (default: all).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Local consistency: max |pixel - nearest "
                                                                 "patch centre| on [-1, 1].")] = 0.02,
    max_pngs: Annotated[int, typer.Option("--max-pngs", help="At most this many PNGs.")] = 16,
    threads: Annotated[Optional[int], typer.Option("--threads", "-j", help="Threads.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Per-sample CSV on stdout.")] = False,
) -> None:
    """Patch mosaics from provenance: distinct source images, posterior entropy, local consistency
    (Theorem 4.1), and a map PNG per sample (sample | source image of each pixel | entropy).

    Examples:

      elscli mosaic bbels.h5 --bank mnist.h5 -o mosaics/

      elscli mosaic bbels.h5 --samples 0,3 --json
    """
    from ..analysis import mosaic as M

    if as_json and as_csv:
        raise ElscliError("give --json or --csv, not both")
    if tolerance < 0:
        raise ElscliError(f"--tolerance must be non-negative, got {tolerance}")
    sel = None
    if samples:
        try:
            sel = [int(s) for s in samples.split(",") if s.strip()]
        except ValueError:
            raise ElscliError(f"--samples must be integers separated by commas, got {samples!r}") from None
    out_dir = _plot_dir(output)
    rp = M.load_run_provenance(run)
    b = _open_bank(bank) if bank is not None else None
    denoise = None
    if threads is not None:
        from ..machines import denoise as _d

        denoise = lambda *a, **k: _d(*a, threads=threads, **k)  # noqa: E731
    rep = M.mosaic_report(rp, bank=b, out_dir=out_dir, samples=sel, tol=tolerance, max_pngs=max_pngs,
                          denoise=denoise)
    if as_json:
        _print_json({"run": str(run), **rep.summary(), "per_sample": rep.rows()})
        return
    if as_csv:
        _print_csv(rep.rows())
        return
    trows = [[str(r["sample"]), str(r["dominant_sources"]), str(r["distinct_sources"]), f"{r['mean_entropy']:.3f}",
              "-" if r["local_consistency"] is None else f"{r['local_consistency']:.1%}"] for r in rep.rows()]
    _table(f"patch mosaic of {run} ({rp.machine}, last P = {rep.patch_size}, tolerance {tolerance})",
           ["sample", "dominant sources (weight ≥ 0.5)", "distinct sources", "mean entropy (nats)",
            "locally consistent"], trows)
    s = rep.summary()
    line = (f"median dominant sources {s['median_dominant_sources']:.0f} (distinct {s['median_distinct_sources']:.0f}), "
            f"mean entropy {s['mean_entropy']:.3f} nats")
    if "mean_local_consistency" in s:
        line += f", mean local consistency {s['mean_local_consistency']:.1%}"
    print(line)
    for p in rep.pngs:
        print(f"wrote {p}")


# ====================================================================================== locality-scan

@app.command("locality-scan")
def locality_scan_cmd(
    scans: Annotated[Optional[List[Path]], typer.Argument(help="Existing scan files (shards) to merge and "
                                                               "aggregate, instead of scanning.")] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="A network's reference "
                                                      "trajectory (NPZ/HDF5 with x and eps).")] = None,
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK", help="Patch bank.")] = None,
    machine: Annotated[str, typer.Option("--machine", "-m", help="bbels | els | ls (| is for --sweep)")] = "bbels",
    candidates: Annotated[str, typer.Option("--candidates", help="Odd candidate sizes: 3,5,7 or a range "
                                                                 "3:31.")] = "3:31",
    metric: Annotated[str, typer.Option("--metric", help="cosine (higher is better) | l2 (lower)")] = "cosine",
    aggregate: Annotated[str, typer.Option("--aggregate", help="median (lower median) | mode")] = "median",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Schedule JSON to write (what "
                                                   "`elscli sample --schedule` reads).")] = None,
    scan_out: Annotated[Optional[Path], typer.Option("--scan-out", help="Scan file (HDF5) keeping every "
                                                     "per-sample similarity; {shard}/{shards} are filled in.")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: scan samples I, I+N, ... (needs "
                                                 "--scan-out; default: from SLURM_ARRAY_*, else 0/1)")] = None,
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
    threads: Annotated[Optional[int], typer.Option("--threads", "-j", help="Threads.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples evaluated together.")] = 64,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Write a schedule from a scan of only "
                                                "some of the reference's samples (a deliberate subset).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Calibrate a machine's locality schedule against a network, or sweep constant patch sizes.

    Follows the network's own trajectory; at each step compares the network's score -eps/b with each
    candidate machine's score, keeps each sample's best P, and aggregates per step (lower median).

    Examples:

      elscli locality-scan -r net.npz --bank mnist.h5 --machine bbels --candidates 3:31 -o bbels.json --plot figs/

      elscli locality-scan -r net.npz --bank mnist.h5 --shard 0/8 --scan-out 'scan-{shard}.h5'   # array task

      elscli locality-scan scan-*.h5 -o bbels.json --scan-out scan.h5                          # merge shards

      elscli locality-scan --sweep 3,5,9,15,31 --bank mnist.h5 --machine els -n 16 --plot figs/
    """
    from ..analysis import scan as S
    from ..runs import parse_shard, resolve_threads, apply_threads, shard_output_path

    plot_dir = _plot_dir(plot)
    if sweep is not None:
        if reference is not None or scans:
            raise ElscliError("--sweep samples from noise: give no --reference and no scan files")
        return _sweep(sweep, bank, machine, num_samples, seed, steps, label, run_dir, plot_dir, threads, force,
                      as_json, quiet)
    if metric not in S.METRICS:
        raise ElscliError(f"--metric must be one of {', '.join(S.METRICS)}, got {metric!r}")
    if aggregate not in S.AGGREGATES:
        raise ElscliError(f"--aggregate must be one of {', '.join(S.AGGREGATES)}, got {aggregate!r}")
    if output is not None:
        claim(output, force)     # held until the command ends: a concurrent writer of it is refused

    if scans:
        if reference is not None:
            raise ElscliError("give scan files to merge, or --reference to scan, not both")
        if scan_out is not None:
            claim(scan_out, force)
        result = S.merge([S.Scan.read(p) for p in scans])
        if scan_out is not None:
            result.write(scan_out, force=force, params={**result.params, "merged_from": [str(p) for p in scans]})
    else:
        if reference is None:
            raise ElscliError("give --reference REF (a network's trajectory), scan files to merge, or --sweep")
        if bank is None:
            raise ElscliError("--reference needs --bank BANK")
        if machine not in ("ls", "els", "bbels"):
            raise ElscliError(f"locality-scan calibrates a local machine (ls, els, bbels), not {machine!r}")
        cands = S.parse_candidates(candidates)
        sh = parse_shard(shard)
        if sh[1] > 1 and scan_out is None:
            raise ElscliError("--shard needs --scan-out (each array task writes its partial scan)")
        scan_path = shard_output_path(scan_out, sh) if scan_out is not None else None
        if scan_path is not None:
            claim(scan_path, force)   # before the scan: minutes of work are never lost to a refused write
        from .. import reference as R
        from ..progress import Progress

        ref = R.read(reference)
        ref.require_eps()
        b = _open_bank(bank)
        n_threads = apply_threads(resolve_threads(threads))
        n_mine = len(range(sh[0], ref.num_samples, sh[1]))
        params = {"reference": str(reference), "bank": str(bank), "machine": machine, "candidates": cands,
                  "metric": metric, "shard": f"{sh[0]}/{sh[1]}", "command_line": _command_line()}
        with Progress(n_mine * ref.num_steps, description=f"locality-scan {machine}", quiet=quiet,
                      unit="sample-steps") as bar:
            result = S.scan(ref, b, machine, cands, metric=metric, shard=sh, threads=n_threads,
                            batch_size=batch_size, progress=bar, params=params)
        if scan_path is not None:
            result.write(scan_path, force=force)
    best = result.best
    payload = {"machine": result.machine, "metric": result.metric, "aggregate": aggregate,
               "samples": int(len(result.sample_index)), "reference_samples": int(result.num_reference_samples),
               "complete": result.complete, "candidates": [int(c) for c in result.candidates]}
    if scan_out is not None:
        payload["scan_file"] = str(scan_path if not scans else scan_out)
    sched = result.schedule(aggregate)
    payload["schedule"] = sched
    sp = S.spread(best)
    payload["per_step"] = [{"t": float(t), "patch_size": int(p), "q1": float(sp["q1"][j]), "q3": float(sp["q3"][j]),
                            "min": int(sp["min"][j]), "max": int(sp["max"][j]),
                            "median_similarity_at_best": float(np.median(
                                result.similarity[:, list(result.candidates).index(p), j]))}
                           for j, (t, p) in enumerate(zip(sched["times"], sched["patch_sizes"]))]
    if not result.complete:
        _warn(f"the scan covers {len(result.sample_index)} of {result.num_reference_samples} reference samples"
              + ("; merge all shards before writing a schedule" if output is not None and not allow_partial else ""))
    if output is not None:
        if not result.complete and not allow_partial:
            raise ElscliError("not writing a schedule from a partial scan: merge every shard first "
                              "(elscli locality-scan scan-*.h5 -o schedule.json), or pass --allow-partial")
        from ..h5io import atomic_output

        with atomic_output(output, force) as tmp:
            Path(tmp).write_text(json.dumps(sched) + "\n")
        payload["output"] = str(output)
    if plot_dir is not None:
        from ..analysis.plots import schedule_plot, similarity_plot

        paper = None
        if overlay is not None:
            from ..schedule import load_schedule

            ov = load_schedule(overlay)
            paper = {"times": list(ov.times), "patch_sizes": list(ov.patch_sizes), "name": overlay}
        payload["plots"] = [
            schedule_plot(result.times, best, sched["patch_sizes"], plot_dir / f"schedule-{result.machine}.png",
                          machine=result.machine, candidates=result.candidates, paper=paper),
            similarity_plot(result.times, result.candidates, result.similarity,
                            plot_dir / f"similarity-{result.machine}.png", metric=result.metric)]
    if as_json:
        _print_json(payload)
        return
    trows = [[f"{r['t']:.3f}", str(r["patch_size"]), f"{r['q1']:.0f}–{r['q3']:.0f}", f"{r['min']}–{r['max']}",
              f"{r['median_similarity_at_best']:.4f}"] for r in payload["per_step"]]
    _table(f"locality schedule for {result.machine} ({aggregate} over {payload['samples']} samples, {metric})",
           ["t", "P", "samples q1–q3", "range", f"median {metric}"], trows)
    for k in ("scan_file", "output"):
        if k in payload:
            print(f"wrote {payload[k]}")
    for p in payload.get("plots", []):
        print(f"wrote {p}")


def _sweep(spec, bank, machine, num_samples, seed, steps, label, run_dir, plot_dir, threads, force, as_json, quiet):
    from ..analysis import scan as S

    if bank is None:
        raise ElscliError("--sweep needs --bank BANK")
    sizes = S.parse_candidates(spec)
    if run_dir is not None and not run_dir.is_dir():
        raise ElscliError(f"--run-dir {str(run_dir)!r} is not a directory")
    b = _open_bank(bank)
    points = S.sweep(b, machine, sizes, num_samples=num_samples, seed=seed, steps=steps, label=label,
                     run_dir=run_dir, force=force, quiet=quiet, threads=threads)
    rows = [p.as_dict() for p in points]
    payload = {"machine": machine, "num_samples": num_samples, "seed": seed, "steps": steps, "points": rows}
    if plot_dir is not None:
        from ..analysis.plots import sweep_plot

        payload["plots"] = [sweep_plot(rows, plot_dir / f"sweep-{machine}.png", machine=machine)]
    if as_json:
        _print_json(payload)
        return
    _table(f"constant-P sweep of {machine} ({num_samples} samples, seed {seed})",
           ["P", "copies", "mean RMS to nearest", "median d1/d2", "mean entropy (nats)"],
           [[str(r["patch_size"]), f"{r['copy_fraction']:.0%}", f"{r['mean_nn_rms']:.3f}", f"{r['median_ratio']:.3f}",
             f"{r['mean_entropy']:.3f}"] for r in rows])
    for p in payload.get("plots", []):
        print(f"wrote {p}")
