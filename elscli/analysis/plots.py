"""The figures of ``compare`` and ``locality-scan`` (matplotlib, Agg backend: no display needed).

- :func:`scatter_r2` — the paper's scatter: r² against the network for a machine (y) vs for IS (x), with the
  diagonal (points above it: the machine predicts the network better than IS does);
- :func:`side_by_side` — a grid, one row per sample: network | machine(s) | IS, with per-panel r²;
- :func:`schedule_plot` — calibrated P against t, with the per-sample spread;
- :func:`sweep_plot` — the memorisation → creativity curve of a constant-P sweep.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path, *, dpi: int) -> None:
    """Write a figure as its path's suffix says (PNG by default), claimed and renamed into place whole
    (:func:`elscli.outputs.atomic_output`; an existing figure is replaced)."""
    from ..outputs import atomic_output

    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)


def fitted_suptitle(fig, text: str, *, fontsize: float):
    """``fig.suptitle(text)`` wrapped at spaces to lines that fit the figure's width (DejaVu Sans averages
    about 0.55 em per character; explicit newlines are kept), so that a title of a narrow grid is not cut at
    the figure's edges.  Returns the Text; lay the figure out after (``tight_layout`` keeps the title above
    the panels' titles).  The figure grows by the height of the lines the wrapping adds, so that the panels
    keep their room."""
    import textwrap

    width_pt = fig.get_figwidth() * 72.0 * 0.96
    per_line = max(20, int(width_pt / (0.55 * fontsize)))
    lines = [w for part in text.split("\n") for w in (textwrap.wrap(part, per_line) or [""])]
    added = len(lines) - (text.count("\n") + 1)
    if added > 0:
        fig.set_figheight(fig.get_figheight() + added * 1.25 * fontsize / 72.0)
    return fig.suptitle("\n".join(lines), fontsize=fontsize)


def show_image(ax, img: np.ndarray, value_range: Optional[str] = None) -> None:
    """Show a (C, H, W) image: on the [-1, 1] scale, clipped, grey for C = 1 or RGB for C = 3; other channel
    counts (latents), or ``value_range="none"``, as :func:`elscli.display.to_display` shows them (the first
    three channels, each stretched to its 1st-99th percentile)."""
    from ..display import NO_RANGE, to_display

    img = np.asarray(img, np.float64)
    if value_range is None and img.shape[0] not in (1, 3):
        value_range = NO_RANGE
    u8, _ = to_display(img[None], value_range=value_range)
    if u8.shape[-1] == 1:
        ax.imshow(u8[0, :, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(u8[0], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def scatter_r2(r2_machine: np.ndarray, r2_is: np.ndarray, path, *, machine: str = "machine",
               baseline: str = "IS", reference: str = "network") -> str:
    """The paper's scatter (its Fig. 4): per sample, r² of the machine against the network (y, (S,)) versus r²
    of the baseline (x, (S,)), with the diagonal; written to ``path`` (PNG), which is returned as str."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="equal agreement")
    beats = r2_machine > r2_is
    ax.scatter(r2_is[beats], r2_machine[beats], s=22, color="tab:blue", alpha=0.85,
               label=f"{machine} closer ({beats.mean():.0%})")
    ax.scatter(r2_is[~beats], r2_machine[~beats], s=22, color="tab:red", alpha=0.85,
               label=f"{baseline} closer ({(~beats).mean():.0%})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(f"r² ({baseline} vs {reference})")
    ax.set_ylabel(f"r² ({machine} vs {reference})")
    ax.set_title(f"median r²: {machine} {np.median(r2_machine):.2f}, {baseline} {np.median(r2_is):.2f}",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return str(path)


def side_by_side(columns: Dict[str, np.ndarray], path, *, r2: Optional[Dict[str, np.ndarray]] = None,
                 sample_labels: Optional[Sequence] = None, max_samples: int = 16) -> str:
    """``columns``: name -> (S, C, H, W) finals, the first being the reference.  One row per input (reference
    on top), one column per sample, r² against the reference under each machine's image."""
    names = list(columns)
    S = min(len(next(iter(columns.values()))), max_samples)
    fig, axes = plt.subplots(len(names), S, figsize=(1.25 * S + 0.9, 1.45 * len(names) + 0.3), squeeze=False)
    for j in range(S):
        for i, n in enumerate(names):
            ax = axes[i, j]
            show_image(ax, columns[n][j])
            if i == 0 and sample_labels is not None:
                ax.set_title(f"#{sample_labels[j]}", fontsize=8)
            if r2 is not None and n in r2:
                ax.set_xlabel(f"r²={r2[n][j]:.2f}", fontsize=7, labelpad=1)
            if j == 0:      # "network (trajectories.npz)": the file on a second line, within the row's height
                ax.set_ylabel(n.replace(" (", "\n("), fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def schedule_plot(times: np.ndarray, best: np.ndarray, schedule: Sequence[int], path, *, machine: str = "",
                  candidates: Optional[Sequence[int]] = None, paper: Optional[dict] = None,
                  parameter: str = "patch_size") -> str:
    """P (or another scanned ``parameter``) vs t: per-step quartile band and range of the samples' best
    candidates (candidates the samples chose: :func:`elscli.analysis.aggregate.spread`), and the aggregated
    schedule."""
    from .aggregate import spread

    size = parameter == "patch_size"
    times = np.asarray(times)
    values = None
    if not size and candidates is not None:
        # another parameter's values (0, 0.1, 0.5, 4, ...) are drawn at equal spacing, by candidate, as in
        # similarity_plot: a linear axis would crowd the small values together
        values = np.asarray(candidates, dtype=np.float64)
        best = np.searchsorted(values, np.asarray(best, dtype=np.float64))
        schedule = np.searchsorted(values, np.asarray(schedule, dtype=np.float64))
    sp = spread(best)
    q = [sp["min"], sp["q1"], sp["median"], sp["q3"], sp["max"]]
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    ax.fill_between(times, q[0], q[4], color="tab:blue", alpha=0.12, step="mid", label="samples: range")
    ax.fill_between(times, q[1], q[3], color="tab:blue", alpha=0.3, step="mid", label="samples: quartiles")
    rng = np.random.default_rng(0)
    jitter = (rng.random(best.shape) - 0.5) * 0.3 * (times[0] - times[-1]) / max(len(times), 1)
    ax.scatter((times[None, :] + jitter).ravel(), best.ravel(), s=5, color="tab:blue", alpha=0.25, lw=0)
    ax.step(times, schedule, where="mid", color="black", lw=2, label="schedule (aggregate)")
    if paper:
        order = np.argsort(paper["times"])[::-1]
        ax.step(np.asarray(paper["times"])[order], np.asarray(paper["patch_sizes"])[order], where="mid",
                color="tab:orange", lw=1.3, ls="--", label=paper.get("name", "paper"))
    ax.set_xlabel("t (step start time)")
    ax.set_ylabel("best patch size P" if size else f"best {parameter}")
    if size and candidates is not None and len(candidates) <= 16:
        ticks = set(int(c) for c in candidates) | (set(int(p) for p in paper["patch_sizes"]) if paper else set())
        ax.set_yticks(sorted(ticks))
    if values is not None:
        ax.set_yticks(range(len(values)))
        ax.set_yticklabels([f"{v:g}" for v in values])
    ax.set_xlim(max(times) + 0.03, min(times) - 0.03)  # noise decreases to the right, as sampling runs
    what = "locality calibration" if size else f"{parameter} calibration"
    ax.set_title(f"{what}{(' — ' + machine) if machine else ''}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return str(path)


def similarity_plot(times: np.ndarray, candidates: np.ndarray, similarity: np.ndarray, path, *,
                    metric: str = "cosine", parameter: str = "patch_size") -> str:
    """Per step, how far each candidate's median (over samples) similarity is from the step's best candidate
    (log colour scale: at high noise every candidate's cosine is close to 1, so raw values hide the ranking);
    the best candidate of each step is marked."""
    from matplotlib.colors import LogNorm

    med = np.median(similarity, axis=0)  # (K, T)
    gap = (med.max(axis=0, keepdims=True) - med) if metric == "cosine" else (med - med.min(axis=0, keepdims=True))
    floor = max(float(np.min(gap[gap > 0])) if np.any(gap > 0) else 1e-12, 1e-12)
    times = np.asarray(times, np.float64)
    dt = float(np.median(np.abs(np.diff(times)))) if len(times) > 1 else 0.05
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    im = ax.imshow(np.maximum(gap, floor), aspect="auto", origin="lower", cmap="viridis_r",
                   norm=LogNorm(vmin=floor, vmax=max(float(gap.max()), floor * 10)),
                   extent=(times[0] + dt / 2, times[-1] - dt / 2, -0.5, len(candidates) - 0.5))
    best = np.argmin(gap, axis=0)
    ax.plot(times, best, "o", color="white", mec="black", ms=5, label="best")
    ax.set_yticks(range(len(candidates)))
    ax.set_yticklabels([f"{c:g}" for c in candidates], fontsize=7)
    ax.set_xlabel("t (step start time)")
    ax.set_ylabel("candidate P" if parameter == "patch_size" else f"candidate {parameter}")
    ax.set_title(f"median {metric}: distance to the step's best candidate", fontsize=10)
    fig.colorbar(im, ax=ax, label="gap (log)")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return str(path)


def sweep_plot(points: List[dict], path, *, machine: str = "") -> str:
    """Copy fraction, mean RMS to the nearest training image and mean posterior entropy (nats, right axis)
    against the constant patch size P (:class:`elscli.analysis.sweep.SweepPoint` dicts); returns the path."""
    P = [p["patch_size"] for p in points]
    fig, ax1 = plt.subplots(figsize=(5.4, 3.8))
    ax1.plot(P, [p["copy_fraction"] for p in points], "o-", color="tab:red", label="copy fraction (RMS < 0.05)")
    ax1.plot(P, [p["mean_nn_rms"] for p in points], "s-", color="tab:blue", label="mean RMS to nearest")
    ax1.set_xlabel("constant patch size P")
    ax1.set_ylabel("fraction / RMS distance")
    ax1.set_ylim(bottom=0)
    ax2 = ax1.twinx()
    ax2.plot(P, [p["mean_entropy"] for p in points], "^--", color="tab:green", label="mean posterior entropy")
    ax2.set_ylabel("entropy (nats)")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    ax1.set_xticks(P)
    ax1.set_title(f"memorisation vs creativity{(' — ' + machine) if machine else ''}", fontsize=10)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return str(path)


def comparison_plots(comparison, out_dir, *, max_samples: int = 16) -> List[str]:
    """The scatter (one per non-baseline input, when a baseline is given) and the side-by-side grid."""
    out_dir = Path(out_dir)
    written = []
    ref = comparison.reference
    base = comparison.baseline
    for o in comparison.others:
        if base is not None and o.name != base:
            written.append(scatter_r2(comparison.metrics[o.name]["r2"], comparison.metrics[base]["r2"],
                                      out_dir / f"scatter-{o.name}.png", machine=o.machine or o.name,
                                      baseline=base, reference=ref.what))
    cols = {ref.figure_label: ref.final[comparison.ref_index]}     # rows say what they are, not a file stem
    r2 = {}
    for o, oi in zip(comparison.others, comparison.other_index):
        cols[o.figure_label] = o.final[oi]
        r2[o.figure_label] = comparison.metrics[o.name]["r2"]
    written.append(side_by_side(cols, out_dir / "side-by-side.png", r2=r2, sample_labels=comparison.ref_index,
                                max_samples=max_samples))
    return written
