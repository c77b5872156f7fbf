"""Cost of one evaluation of every machine of the analytic zoo on mnist-5k, against the pinned NumPy baseline
in the same run.

Bank: the 5,000 digits of mnist-5k (32x32); one query, a training digit noised to t.  For each machine: the
first call (which builds what the machine caches per bank and noise level: the Gaussian fit's
eigendecomposition, pca-locality's filter magnitude and masks, image blocks, constant patches, patch
trees) and the best of ``--repeat`` later calls (default 2), and the ratio of the baseline's seconds — the pinned
straightforward NumPy ELS at P = 3 on the same bank and query (``shared/bench/numpy_baseline.py``), measured
once in this process — to the machine's.  Seconds on a shared machine are noisy; the ratios, taken in one
run, are the figures to quote.  The load average is printed with them, and each row's progress on stderr.
About 2 minutes on 2 quiet cores (the baseline's one ELS evaluation and the ELS rows are most of it).

    python benchmarks/bench_zoo.py [--images 5000] [--times 0.5,0.1] [--repeat 2] [--no-baseline]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from common import best_of, markdown_table, mnist_bank, numpy_baseline, threads

#: (label, machine, parameters): the zoo, with the parameters of the README's comparison run.
ZOO = [
    ("is", "is", {}),
    ("is τ=0.5", "is", {"temperature": 0.5}),
    ("nearest", "nearest", {}),
    ("scfdm σ=0.1", "scfdm", {"sigma": 0.1}),
    ("wiener", "wiener", {}),
    ("pca-locality θ=0.1", "pca-locality", {"threshold": 0.1}),
    ("pca-locality θ=0.3", "pca-locality", {"threshold": 0.3}),
    ("pspc-square P=5", "pspc-square", {"patch_size": 5}),
    ("pspc-square P=15", "pspc-square", {"patch_size": 15}),
    ("els P=3", "els", {"patch_size": 3}),
    ("els P=3 wrap", "els", {"patch_size": 3, "wrap": True}),
    ("els P=7 wrap", "els", {"patch_size": 7, "wrap": True}),
    ("bbels P=7", "bbels", {"patch_size": 7}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--times", default="0.5,0.1")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline (ratios not printed)")
    ap.add_argument("--only", default="", help="comma-separated labels to run (default: all)")
    args = ap.parse_args()
    start = time.perf_counter()

    from elscli import noise
    from elscli.machines import make_denoiser

    bank = mnist_bank(args.images)
    C, H, W = bank.shape
    rng = np.random.default_rng(0)
    times = [float(t) for t in args.times.split(",")]
    queries = {}
    for t in times:
        a, b = noise.scales(t)
        queries[t] = a * bank.images[[17]].astype(np.float64) + b * rng.standard_normal((1, C, H, W))
    small = bank.subset(np.arange(16))
    for _, machine, params in ZOO:                      # compile outside the timings
        make_denoiser(machine, small, **params)(queries[times[0]][:, :, :, :], times[0])
    t_base = None
    if not args.no_baseline:
        base = numpy_baseline()
        t0 = time.perf_counter()
        base.els_x0(queries[times[0]][0].astype(np.float32), bank.images, times[0], 3)
        t_base = time.perf_counter() - t0
        print(f"  baseline: {t_base:.2f} s ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr, flush=True)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = []
    for label, machine, params in ZOO:
        if only and label not in only:
            continue
        for t in times:
            D = make_denoiser(machine, bank, **params)
            x = queries[t]
            t0 = time.perf_counter()
            D(x, t)
            first = time.perf_counter() - t0
            best = best_of(lambda: D(x, t), args.repeat)
            ratio = f"{t_base / best:.1f}x" if t_base else "-"
            rows.append((label, t, f"{first:.3f}", f"{best:.4f}", ratio))
            print(f"  {label} t={t}: {best:.4f} s ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr,
                  flush=True)
    print(f"mnist-{args.images} ({C}x{H}x{W}), {threads()} Numba threads, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine)")
    if t_base:
        print(f"baseline: NumPy ELS P=3 at t={times[0]}: {t_base:.2f} s (ratio = baseline s / machine s)")
    print(markdown_table(("machine", "t", "first call s", "per evaluation s", "vs baseline"), rows))
    print(f"({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
