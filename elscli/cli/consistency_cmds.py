"""``elscli consistency``: the CLI edge over :mod:`elscli.analysis.consistency`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .app import app, refuse_given
from ..errors import ElscliError


def _fmt_q(q: dict, digits: int = 0) -> str:
    if math.isnan(q["median"]):
        return "-"
    f = f"{{:.{digits}f}}"
    return f"{f.format(q['median'])} [{f.format(q['q1'])}–{f.format(q['q3'])}]"


def _fmt_scale(loc: dict) -> str:
    if loc["mode"] is None:
        return "1"
    return f"{loc['scale']:g}" + (f" (t ≤ {loc['late_from']:g})" if loc["mode"] == "late" else "")


def _kappa(k) -> str:
    return "undefined" if k is None else f"{k:.2f}"


def _default_bank(finals) -> Path:
    for f in finals:
        p = f.params.get("bank")
        if p and Path(p).exists():
            return Path(p)
    raise ElscliError("give --bank BANK: the training images whose topology is the baseline")


def _unique_names(paths: List[Path]) -> List[str]:
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else str(p) for s, p in zip(stems, paths)]


@app.command("consistency", short_help="Spatial inconsistency of samples (line images).")
def consistency_cmd(
    ctx: typer.Context,
    runs: Annotated[Optional[List[Path]], typer.Argument(metavar="[RUNS]...", help="Run files (elscli sample) to score.")] = None,
    bank: Annotated[Optional[Path], typer.Option("--bank", envvar="ELSCLI_BANK", help="The training images whose "
                                                 "topology is the baseline [default: the bank recorded in the "
                                                 "first run, when it exists].")] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="A network's reference "
                                                      "trajectory (NPZ/HDF5): score its finals too and compare "
                                                      "each run with it sample by sample (matched by seeds).")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Ink: pixels above this value ([-1, 1] scale; "
                                                                 "default the midpoint, 0).")] = 0.0,
    features: Annotated[str, typer.Option("--features", help="Score features, comma-separated: components, "
                                                             "holes, end_points, branch_points.")]
    = "components,end_points",
    level: Annotated[float, typer.Option("--level", help="Inconsistent: more inconsistent than this fraction of "
                                                         "the bank.")] = 0.95,
    sweep: Annotated[bool, typer.Option("--sweep", help="The runs are a locality sweep (sample --schedule-scale "
                                                        "F): a table and a plot against F.")] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Directory for the PNGs: histograms, grids of "
                                                                "the most and least consistent samples, "
                                                                "agreement, sweep.")] = None,
    per_row: Annotated[int, typer.Option("--grid-size", help="Samples per row of each grid.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout (summary and per-sample values).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Per-sample CSV on stdout.")] = False,
) -> None:
    """Spatial inconsistency: topology of each sample (components, holes, skeleton end and branch points)
    and how unlikely it is under the bank's own distribution (line images only).

    A sample is inconsistent when it is more inconsistent than --level (95%) of the bank's own images: its
    tail probability — the fraction of bank images (of its class, when labelled) with at least as many of
    every score feature — is smaller than theirs.

    Examples:

    \b
      elscli consistency bbels.h5 is.h5 --bank mnist.h5 --reference net.npz --plot figs/
      elscli consistency --sweep bbels-F*.h5 --bank mnist.h5 --reference net.npz --plot figs/
      elscli consistency bbels.h5 --bank mnist.h5 --csv > per-sample.csv
    """
    from ..analysis import consistency as C
    from ..bank import Bank
    from rich.markup import escape

    from .output import output_dir as _plot_dir, print_csv as _print_csv, print_json as _print_json, \
        table as _table, warn as _warn

    if as_json and as_csv:
        raise ElscliError("give --json or --csv, not both")
    runs = list(runs or [])
    if not runs and reference is None:
        raise ElscliError("give run files to score, --reference NET, or both")
    if sweep and len(runs) < 2:
        raise ElscliError("--sweep needs at least two runs (one per schedule scale)")
    if per_row < 1:
        raise ElscliError(f"--grid-size must be at least 1, got {per_row}")
    if plot is None:
        refuse_given(ctx, {"per_row": "--grid-size"}, "shapes the grids of --plot DIR, which was not given")
    if not math.isfinite(threshold):
        raise ElscliError(f"--threshold must be a finite number, got {threshold}")
    feats = tuple(s.strip() for s in features.split(",") if s.strip())
    plot_dir = _plot_dir(plot)
    finals = [C.load_finals(p, n) for p, n in zip(runs, _unique_names(runs))]
    if sweep:                                    # tables and figures in the order of the scale
        finals.sort(key=lambda f: f.locality["scale"])
    ref = None
    if reference is not None:
        from ..reference import is_reference_file

        ref = C.load_finals(reference, "network" if is_reference_file(reference) else None)
        if ref.name in {f.name for f in finals}:
            ref.name = f"reference:{ref.name}"
    bank_path = bank if bank is not None else _default_bank(finals)
    b = Bank.open(bank_path)
    if b.value_range != "none" and not -1.0 < threshold < 1.0:   # a pixel bank is on [-1, 1]: no ink, or all ink
        raise ElscliError(f"--threshold must lie inside the bank's value range (-1, 1), got {threshold:g} "
                          f"(bank {str(bank_path)!r})")
    if b.shape[0] != 1:
        raise ElscliError(f"the consistency measure is for line images (one channel); bank {str(bank_path)!r} has "
                          f"{b.shape[0]} channels")
    for f in finals + ([ref] if ref is not None else []):
        if tuple(f.images.shape[1:]) != tuple(b.shape):
            raise ElscliError(f"{f.path!r} has images of shape {tuple(f.images.shape[1:])} but the bank's are "
                              f"{tuple(b.shape)}")
        if f.bank_content_hash and f.bank_content_hash != b.content_hash:
            _warn(f"{f.path} was sampled from another bank than {bank_path} (content hashes differ)")
    dist = C.BankDistribution.from_images(b.images, b.labels, score_features=feats, level=level, threshold=threshold)
    report = C.consistency_report(dist, finals, ref, copies_against=b.images)
    points = report.sweep() if sweep else None
    summary = report.summary()
    summary["bank_path"] = str(bank_path)
    if points is not None:
        summary["sweep"] = points
    if plot_dir is not None:
        from ..analysis.consistency_plots import consistency_plots

        summary["plots"] = consistency_plots(report, plot_dir, sweep=sweep, per_row=per_row)
    if as_json:
        _print_json({**summary, "per_sample": report.rows()})
        return
    if as_csv:
        _print_csv(report.rows())
        return

    feat_names = " & ".join(f.replace("_", " ") for f in dist.score_features)
    cols = ["input", "machine", "F", "samples", "ink fraction", "components", "holes", "end points",
            "branch points", f"inconsistent (> {level:.0%} of bank)", "copies"]
    bs = summary["bank"]
    rows = [["bank", "-", "-", str(bs["images"]), _fmt_q(bs["ink_fraction"], 2)]
            + [_fmt_q(bs[k]) for k in C.FEATURES]
            + [f"{bs['inconsistent_fraction']:.1%} ({bs['inconsistent_count']}, by construction)", "-"]]
    for r in report.all_inputs:
        s = r.summary()
        rows.append([s["name"], s["machine"] or "network", _fmt_scale(s["locality"]) if s["kind"] == "run" else "-",
                     str(s["samples"]), _fmt_q(s["ink_fraction"], 2)] + [_fmt_q(s[k]) for k in C.FEATURES]
                    + [f"{s['inconsistent_fraction']:.0%} ({s['inconsistent_count']})",
                       f"{s['copy_fraction']:.0%}" if "copy_fraction" in s else "-"])
    rows = [[escape(c) for c in r] for r in rows]
    _table(escape(f"spatial consistency against {bank_path} ({len(b)} images; median [q1–q3]; score: {feat_names}; "
                  f"ink > {threshold:g})"), cols, rows)
    if report.agreements:
        arows = [[n, str(a["n"]), str(a["both"]), str(a["reference_only"]), str(a["run_only"]), str(a["neither"]),
                  f"{a['agreement']:.0%}", _kappa(a["kappa"]), _kappa(a["spearman_tail"])]
                 for n, a in summary["agreement_with_reference"].items()]
        rn = report.reference.finals.name
        _table(f"inconsistent samples: {rn} vs each run, sample by sample (matched by seeds)",
               ["input", "samples", "both", f"{rn} only", "run only", "neither", "agreement", "Cohen's κ",
                "Spearman ρ (tail p)"], arows)
    if points is not None:
        prow = [[f"{p['scale']:g}", f"{p['patch_sizes'][0]}→{p['patch_sizes'][-1]}" if p["patch_sizes"] else "-",
                 _fmt_q(p["components"]), _fmt_q(p["end_points"]),
                 f"{p['inconsistent_fraction']:.0%} ({p['inconsistent_count']}/{p['samples']})",
                 f"{p['copy_fraction']:.0%}" if "copy_fraction" in p else "-"] for p in points]
        prow = [[escape(c) for c in r] for r in prow]
        _table("locality sweep (schedule scale F)", ["F", "P first→last step", "components", "end points",
                                                      "inconsistent", "copies"], prow)
    from .output import note

    for p in summary.get("plots", []):
        note(f"wrote {p}")
