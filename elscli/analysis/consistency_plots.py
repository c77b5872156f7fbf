"""The figures of ``elscli consistency`` (matplotlib, Agg backend: no display needed).

- :func:`feature_histograms` — the distribution of every feature: the bank (grey bars) against each input;
- :func:`extremes_grid` — one input's most and least consistent samples, with the skeleton, end points and
  branch points drawn on them and their counts underneath;
- :func:`sweep_plot` — the locality-vs-consistency curve: medians of components and end points, the
  inconsistent fraction and the copy fraction against the schedule scale F;
- :func:`agreement_plot` — each run against the network, sample by sample (the 2x2 table as quadrants);
- :func:`paired_grid` — the network's samples above each run's from the same seeds, inconsistent ones framed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import fitted_suptitle  # noqa: E402
from .consistency import FEATURES, ConsistencyReport, InputResult, ink_masks, skeleton_points  # noqa: E402

_LABELS = {"components": "components (ink, 8-connected)", "holes": "holes (background, 4-connected)",
           "end_points": "end points (skeleton)", "branch_points": "branch points (skeleton)",
           "ink_fraction": "ink fraction (pixels > threshold)"}
_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
            "tab:cyan"]


def _save(fig, path) -> str:
    """Write the figure as PNG (:func:`elscli.analysis.plots.save_figure`: claimed and renamed into place
    whole; an existing figure is replaced) and close it."""
    from . import plots

    try:
        plots.save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return str(path)


def _score_text(report: ConsistencyReport) -> str:
    feats = " & ".join(f.replace("_", " ") for f in report.bank.score_features)
    return (f"score: {feats}; inconsistent = more inconsistent than {report.bank.level:.0%} of the bank; "
            f"ink > {report.bank.threshold:g}")


def feature_histograms(report: ConsistencyReport, path) -> str:
    """One panel per feature (ink fraction and the four counts): the fraction of bank images (grey bars) and of
    each input's samples (lines) at each value; counts above the panel's cap are pooled in its last bin."""
    inputs = report.all_inputs
    names = ["ink_fraction"] + list(FEATURES)
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.5))
    bank_t = report.bank.topology
    for ax, name in zip(axes, names):
        if name == "ink_fraction":
            hi = max([float(bank_t.ink_fraction.max())] + [float(r.topology.ink_fraction.max()) for r in inputs])
            edges = np.linspace(0, max(hi, 0.05) * 1.02, 26)
            w = np.histogram(bank_t.ink_fraction, edges)[0] / len(bank_t)
            ax.bar(edges[:-1], w, width=np.diff(edges), align="edge", color="0.75", label=f"bank ({len(bank_t)})")
            for c, r in zip(_COLOURS, inputs):
                h = np.histogram(r.topology.ink_fraction, edges)[0] / max(len(r.topology), 1)
                ax.step(edges[:-1], h, where="post", color=c, lw=1.6, label=f"{r.finals.name} ({len(r.topology)})")
        else:
            allv = np.concatenate([bank_t[name]] + [r.topology[name] for r in inputs])
            cap = int(max(6, min(int(allv.max()), 20)))
            vals = np.arange(cap + 1)

            def frac(v):
                return np.bincount(np.minimum(v, cap), minlength=cap + 1)[:cap + 1] / max(len(v), 1)

            ax.bar(vals, frac(bank_t[name]), width=0.85, color="0.75", label=f"bank ({len(bank_t)})")
            for c, r in zip(_COLOURS, inputs):
                ax.plot(vals, frac(r.topology[name]), "o-", color=c, ms=3.5, lw=1.4,
                        label=f"{r.finals.name} ({len(r.topology)})")
            step = 1 if cap <= 10 else 2 if cap <= 20 else 5
            ticks = list(range(0, cap, step))
            ax.set_xticks(ticks + [cap])
            ax.set_xticklabels([str(t) for t in ticks] + [f"≥{cap}" if allv.max() > cap else str(cap)], fontsize=8)
        ax.set_title(_LABELS[name], fontsize=9)
        ax.set_ylabel("fraction of images", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fitted_suptitle(fig, f"topology of the bank and the inputs — {_score_text(report)}", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, path)


def _draw_sample(ax, image: np.ndarray, threshold: float) -> None:
    img = np.asarray(image, np.float64)[0]
    ax.imshow((np.clip(img, -1, 1) + 1) / 2, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    sk = skeleton_points(ink_masks(image[None], threshold)[0])
    over = np.zeros(sk.skeleton.shape + (4,))
    over[sk.skeleton] = (0.0, 0.8, 1.0, 0.6)
    ax.imshow(over, interpolation="nearest")
    ys, xs = np.nonzero(sk.end_points)
    ax.plot(xs, ys, "o", ms=4.5, mfc="none", mec="red", mew=1.4)
    ys, xs = np.nonzero(sk.branch_pixels)
    ax.plot(xs, ys, "s", ms=3.5, mfc="none", mec="yellow", mew=1.2)
    ax.set_xticks([])
    ax.set_yticks([])


def extremes_grid(result: InputResult, path, *, report: ConsistencyReport, per_row: int = 8) -> str:
    """Two rows: the input's ``per_row`` most inconsistent samples (smallest tail probability first) and its
    most consistent (largest first); each with its skeleton (cyan), end points (red circles) and branch pixels
    (yellow squares), and under it C (components), H (holes), E (end points), B (branch points), the tail
    probability p and the fraction of the bank that is more consistent.  Inconsistent samples get a red frame."""
    t, s, f = result.topology, result.scores, result.finals
    S = len(t)
    k = max(1, min(per_row, (S + 1) // 2))
    order = np.lexsort((f.sample_ids, -s.percentile, s.tail))     # most inconsistent first
    rows = [("most inconsistent", order[:k]), ("most consistent", order[::-1][:k])] if S > 1 \
        else [("the only sample", order[:1])]
    fig, axes = plt.subplots(len(rows), k, figsize=(1.55 * k + 0.6, 2.05 * len(rows) + 0.75), squeeze=False)
    for ri, (title, idx) in enumerate(rows):
        for ci in range(k):
            ax = axes[ri, ci]
            if ci >= len(idx):
                ax.axis("off")
                continue
            i = idx[ci]
            _draw_sample(ax, f.images[i], report.bank.threshold)
            lab = int(f.labels[i])
            ax.set_title(f"#{int(f.sample_ids[i])}" + (f" ({lab})" if lab >= 0 else ""), fontsize=8, pad=2)
            ax.set_xlabel(f"C{t['components'][i]} H{t['holes'][i]} E{t['end_points'][i]} B{t['branch_points'][i]}\n"
                          f"p={s.tail[i]:.2g} | {s.percentile[i]:.0%}", fontsize=7, labelpad=2)
            if s.inconsistent[i]:
                for sp in ax.spines.values():
                    sp.set_edgecolor("red")
                    sp.set_linewidth(2.0)
        axes[ri, 0].set_ylabel(title, fontsize=9)
    n_inc = int(np.count_nonzero(s.inconsistent))
    fitted_suptitle(fig, f"{f.name}: {n_inc} of {S} samples inconsistent (red frames: more inconsistent than "
                 f"{report.bank.level:.0%} of the bank)\n"
                 f"cyan: skeleton, red ○: end points, yellow □: branch pixels; C/H/E/B: components, holes, end "
                 f"points, branch points; p: tail probability | share of the bank more consistent", fontsize=8)
    fig.tight_layout(pad=0.4, h_pad=0.6, w_pad=0.3)
    return _save(fig, path)


def sweep_plot(points: List[Dict], path, *, report: ConsistencyReport,
               reference: Optional[InputResult] = None) -> str:
    """Left: median components and end points (bars: quartiles) against the scale F, with the bank's and the
    network's medians as horizontal lines.  Right: the inconsistent fraction and the copy fraction against F,
    with the network's inconsistent fraction and the bank's own (at most 1 - level by construction)."""
    F = np.array([p["scale"] for p in points])
    late = points[0]["mode"] == "late"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    bank = report.bank_summary()
    for key, c, m in (("components", "tab:purple", "o"), ("end_points", "tab:green", "s")):
        med = np.array([p[key]["median"] for p in points])
        lo = med - np.array([p[key]["q1"] for p in points])
        hi = np.array([p[key]["q3"] for p in points]) - med
        ax1.errorbar(F, med, yerr=[lo, hi], fmt=m + "-", color=c, capsize=3, label=f"{key.replace('_', ' ')} "
                     "(median, quartiles)")
        ax1.axhline(bank[key]["median"], color=c, ls=":", lw=1.2, label=f"bank median {key.replace('_', ' ')}")
        if reference is not None:
            ax1.axhline(float(np.median(reference.topology[key])), color=c, ls="--", lw=1.0, alpha=0.8,
                        label=f"{reference.finals.name} median {key.replace('_', ' ')}")
    ax1.set_ylabel("count per sample")
    ax1.set_ylim(bottom=0)
    ax1.set_title("topology of the samples", fontsize=10)
    ax1.legend(fontsize=7, loc="best")
    inc = np.array([p["inconsistent_fraction"] for p in points])
    ax2.plot(F, inc, "o-", color="tab:red", lw=2, label="inconsistent fraction")
    if all("copy_fraction" in p for p in points):
        ax2.plot(F, [p["copy_fraction"] for p in points], "s-", color="tab:blue", lw=2,
                 label="copy fraction (RMS < 0.05 to a training image)")
    if reference is not None:
        ax2.axhline(float(np.mean(reference.scores.inconsistent)), color="tab:red", ls="--", lw=1.2,
                    label=f"{reference.finals.name}: inconsistent fraction")
    ax2.axhline(bank["inconsistent_fraction"], color="0.4", ls=":", lw=1.2,
                label=f"bank's own images ({bank['inconsistent_fraction']:.1%})")
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_ylabel("fraction of samples")
    ax2.set_title(_score_text(report).split(";")[1].strip(), fontsize=9)
    ax2.legend(fontsize=7, loc="best")
    ticks = [f"{p['scale']:g}" + (f"\nP {p['patch_sizes'][0]}→{p['patch_sizes'][-1]}" if p["patch_sizes"] else "")
             for p in points]
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(F)
        ax.set_xticklabels(ticks, fontsize=8)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.set_xlabel("schedule scale F" + (f" (steps with t ≤ {points[0]['late_from']:g})" if late else
                                           " (every step)") + " — patch size first→last step")
    n = points[0]["samples"]
    fitted_suptitle(fig, f"locality vs spatial consistency: {n} samples per scale, the same seeds", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def agreement_plot(report: ConsistencyReport, path) -> str:
    """One panel per run: each sample's fraction of the bank at least as inconsistent (log scale; the
    inconsistent side is left/below the 1 - level lines) for the reference (x) and the run (y), with the
    counts of the 2x2 table in the quadrants."""
    ref = report.reference
    names = list(report.agreements)
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.6 * len(names), 6.0), 5.6), squeeze=False)
    alpha = 1 - report.bank.level
    floor = 1.0 / (2 * len(report.bank.topology))
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], names):
        agr, ref_idx, _ = report.agreements[name]
        run = next(r for r in report.inputs if r.finals.name == name)
        x = np.maximum(1 - ref.scores.percentile[ref_idx], floor)
        y = np.maximum(1 - run.scores.percentile, floor)
        jx, jy = (np.exp(rng.normal(0, 0.06, len(x))) for _ in range(2))   # separate tied points a little
        ax.scatter(x * jx, y * jy, s=22, color="tab:blue", alpha=0.8, lw=0, zorder=3)
        ax.axvline(alpha, color="tab:red", ls="--", lw=1)
        ax.axhline(alpha, color="tab:red", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        lim = (floor / 1.6, 1.6)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        lo, hi = lim
        ax.fill_between([lo, alpha], lo, alpha, color="tab:red", alpha=0.10, lw=0)      # both inconsistent
        ax.fill_between([lo, alpha], alpha, hi, color="0.5", alpha=0.10, lw=0)           # they disagree
        ax.fill_between([alpha, hi], lo, alpha, color="0.5", alpha=0.10, lw=0)
        ax.text(0.02, 0.02, f"both inconsistent: {agr.both}", transform=ax.transAxes, fontsize=8, color="tab:red")
        ax.text(0.98, 0.98, f"neither: {agr.neither}", transform=ax.transAxes, fontsize=8, ha="right", va="top")
        ax.text(0.02, 0.98, f"{ref.finals.name} only: {agr.reference_only}", transform=ax.transAxes, fontsize=8,
                va="top")
        ax.text(0.98, 0.02, f"{name} only: {agr.run_only}", transform=ax.transAxes, fontsize=8, ha="right")
        ax.set_xlabel(f"{ref.finals.name}: fraction of the bank at least as inconsistent", fontsize=8)
        ax.set_ylabel(f"{name}: fraction of the bank at least as inconsistent", fontsize=8)
        k, rho = agr.kappa, agr.spearman
        ax.set_title(f"{name} vs {ref.finals.name} ({agr.n} samples): agreement {agr.agreement:.0%},\n"
                     f"κ = {'undefined' if np.isnan(k) else f'{k:.2f}'}, Spearman ρ of p = "
                     f"{'undefined' if rho is None or np.isnan(rho) else f'{rho:.2f}'}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    fitted_suptitle(fig, f"sample by sample: left of / below the dashed lines = inconsistent\n(more inconsistent than "
                 f"{report.bank.level:.0%} of the bank; {_score_text(report).split(';')[0]}; beyond the whole "
                 f"bank: drawn at 1/2N)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def paired_grid(report: ConsistencyReport, path, *, max_samples: int = 16) -> str:
    """The reference's samples (top row) above each run's sample from the same seed, with the skeleton and its
    points drawn, C/E/B counts under each and a red frame on inconsistent ones: where the network and the
    machines break, sample by sample."""
    ref = report.reference
    names = list(report.agreements)
    runs = {r.finals.name: r for r in report.inputs}
    first_idx = report.agreements[names[0]][1]
    cols = min(max_samples, len(first_idx))
    fig, axes = plt.subplots(1 + len(names), cols, figsize=(1.2 * cols + 0.9, 1.5 * (1 + len(names)) + 0.6),
                             squeeze=False)
    for j in range(cols):
        ri = int(first_idx[j])
        rows = [(ref, ri)]
        for n in names:
            ref_idx = report.agreements[n][1]
            hit = np.flatnonzero(ref_idx == ri)
            rows.append((runs[n], int(hit[0]) if len(hit) else None))
        for i, (res, k) in enumerate(rows):
            ax = axes[i, j]
            if k is None:
                ax.axis("off")
                continue
            _draw_sample(ax, res.finals.images[k], report.bank.threshold)
            t = res.topology
            ax.set_xlabel(f"C{t['components'][k]} E{t['end_points'][k]} B{t['branch_points'][k]}", fontsize=7,
                          labelpad=1)
            if res.scores.inconsistent[k]:
                for sp in ax.spines.values():
                    sp.set_edgecolor("red")
                    sp.set_linewidth(2.0)
            if i == 0:
                ax.set_title(f"#{int(ref.finals.sample_ids[k])}", fontsize=8, pad=2)
            if j == 0:
                ax.set_ylabel(res.finals.name, fontsize=8)
    fitted_suptitle(fig, f"the same seeds: {ref.finals.name} (top) and each run; red frame: inconsistent (more than "
                 f"{report.bank.level:.0%} of the bank); C/E/B: components, end points, branch points", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.2)
    return _save(fig, path)


def consistency_plots(report: ConsistencyReport, out_dir, *, sweep: bool = False, per_row: int = 8) -> List[str]:
    """Every figure of a report into ``out_dir``: histograms.png, grid-NAME.png per input, agreement.png and
    paired.png (with a reference and runs), sweep.png (with ``sweep``)."""
    out_dir = Path(out_dir)
    written = [feature_histograms(report, out_dir / "histograms.png")]
    for r in report.all_inputs:
        written.append(extremes_grid(r, out_dir / f"grid-{r.finals.name}.png", report=report, per_row=per_row))
    if report.reference is not None and report.agreements:
        written.append(agreement_plot(report, out_dir / "agreement.png"))
        written.append(paired_grid(report, out_dir / "paired.png"))
    if sweep:
        written.append(sweep_plot(report.sweep(), out_dir / "sweep.png", report=report, reference=report.reference))
    return written
