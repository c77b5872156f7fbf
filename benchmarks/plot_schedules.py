"""Calibrated locality schedules side by side: one panel per machine, one line per scan (e.g. two checkpoints
of a network), each with the band between its samples' quartile sizes.

Each argument is ``LABEL=SCAN.h5`` (a finished ``elscli locality-scan`` scan file, merged or a partial
shard set merged with ``--allow-partial``); panels are grouped by the scans' machine, in order of first
appearance, and the schedule drawn is the scan's lower median per step (what ``locality-scan`` writes).

    python benchmarks/plot_schedules.py "1,149 steps=ck1/scan-ls.h5" "2,571 steps=ck2/scan-ls.h5" \\
        "1,149 steps=ck1/scan-bbels.h5" "2,571 steps=ck2/scan-bbels.h5" -o docs/schedules.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from elscli.analysis.aggregate import spread
    from elscli.analysis.scan import Scan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scans", nargs="+", help="LABEL=SCAN.h5")
    ap.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    ap.add_argument("--title", default="")
    args = ap.parse_args()

    groups: dict = {}
    for spec in args.scans:
        label, sep, path = spec.partition("=")
        if not sep:
            ap.error(f"{spec!r}: give LABEL=SCAN.h5")
        sc = Scan.read(path)
        if not sc.finished:
            ap.error(f"{path}: an unfinished scan")
        groups.setdefault(sc.machine, []).append((label, sc))

    names = {"ls": "LS", "els": "ELS", "bbels": "bbELS"}
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 3.6), sharey=True, squeeze=False)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for ax, (machine, entries) in zip(axes[0], groups.items()):
        for i, (label, sc) in enumerate(entries):
            sp = spread(sc.best)
            t = np.asarray(sc.times)
            c = colors[i % len(colors)]
            off = (i - (len(entries) - 1) / 2) * 0.25        # ±0.125: equal sizes stay visible
            ax.fill_between(t, sp["q1"] + off, sp["q3"] + off, step="mid", color=c, alpha=0.18, lw=0)
            ax.step(t, sp["median"] + off, where="mid", color=c, lw=2,
                    label=f"{label} ({len(sc.sample_index)} sample{'s' if len(sc.sample_index) != 1 else ''})")
        ax.set_title(f"{names.get(machine, machine)}: schedule (lower median) and quartiles", fontsize=9)
        ax.set_xlim(max(t) + 0.03, min(t) - 0.03)          # noise decreases to the right, as sampling runs
        ax.set_xlabel("t (step start time)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    top = max(int(sc.best.max()) for es in groups.values() for _, sc in es)
    ticks = {int(p) for es in groups.values() for _, sc in es for p in sc.candidates if p <= top}
    axes[0][0].set_yticks(sorted(ticks))                  # shared by the panels
    axes[0][0].set_ylabel("patch size P")
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
