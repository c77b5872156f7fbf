"""How one exact evaluation's time grows with the bank, at several noise levels.

Banks: the first 1,000 / 2,000 / 5,000 digits of mnist-5k (32x32).  For each bank size and each time
t in {0.9, 0.5, 0.3, 0.1, 0.05}, seconds of one bbELS evaluation at the patch size that ``paper:MNIST_ResNet_zeros``
uses at that time (or ``--patch-size``), on a realistic query: the trained network's own sample at time t
(shared/data/reference-resnet-mnist), in none of the banks.  Best of ``--repeat`` runs, so one-off setup
(the patch tree of a bank, built once per bank and patch size) is not counted.
Prints seconds and the growth relative to the smallest bank (linear growth = the bank-size ratio).

    python benchmarks/bench_scaling.py [--sizes 1000,2000,5000] [--times 0.9,0.5,0.3,0.1,0.05] [--machine bbels]
"""
from __future__ import annotations

import argparse

import numpy as np

from common import SHARED, best_of, markdown_table, mnist_bank, threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,2000,5000")
    ap.add_argument("--times", default="0.9,0.5,0.3,0.1,0.05")
    ap.add_argument("--machine", default="bbels")
    ap.add_argument("--patch-size", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from elscli.machines import denoise
    from elscli.schedule import load_schedule

    sizes = [int(s) for s in args.sizes.split(",")]
    times = [float(t) for t in args.times.split(",")]
    schedule = load_schedule("paper:MNIST_ResNet_zeros")
    full = mnist_bank(max(sizes))
    # Queries: a trained network's own trajectory (shared/data/reference-resnet-mnist, sample 0) at the grid
    # time nearest t — realistic inputs that are in none of the banks (a noised training digit would be its
    # own nearest patch source in the largest bank only, and flatter the growth at low noise).
    from elscli import reference

    ref = reference.read(SHARED / "data" / "reference-resnet-mnist" / "trajectories.npz")
    denoise(args.machine, ref.x[0, :1], 0.5, full.subset(np.arange(8)), 3)
    secs = {}
    for t in times:
        step = int(np.argmin(np.abs(ref.times[:-1] - t)))
        x = ref.x[0, step][None].astype(np.float64)
        P = args.patch_size or schedule.patch_size_at(t)
        for n in sizes:
            bank = full.subset(np.arange(n))
            secs[t, n] = (P, best_of(lambda: denoise(args.machine, x, t, bank, P), args.repeat))
    rows = []
    for t in times:
        P = secs[t, sizes[0]][0]
        base = secs[t, sizes[0]][1]
        rows.append([t, P] + [f"{secs[t, n][1]:.3f}" for n in sizes]
                    + [f"{secs[t, sizes[-1]][1] / base:.2f}x (bank {sizes[-1] / sizes[0]:.0f}x)"])
    print(f"# bench_scaling: {args.machine}, {threads()} Numba threads, best of {args.repeat}")
    print(markdown_table(["t", "P"] + [f"{n} images (s)" for n in sizes] + ["growth"], rows))


if __name__ == "__main__":
    main()
