"""One exact machine evaluation against the pinned NumPy baseline, in the same process.

Bank: the first 1,000 digits of mnist-5k (32x32); one standard-normal query; t = 0.5.  For ELS and bbELS at
P = 3, 7, 15 prints seconds, (query pixel x dictionary patch) pairs per second per core, and the ratio of
the baseline's seconds (ELS only; it is the straightforward NumPy ELS) to elscli's.  Where the machine
works the dictionary with the patch tree (P = 3) the tree's one-off build is not counted (it is printed);
a second row gives the shift kernel alone, forced.

    python benchmarks/bench_kernels.py [--images 1000] [--t 0.5] [--repeat 3]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from common import best_of, markdown_table, mnist_bank, numpy_baseline, threads


def dictionary_pairs(machine: str, P: int, H: int, W: int, N: int) -> int:
    """Exact count of (query pixel, dictionary patch) pairs of one evaluation."""
    r = P // 2
    if machine == "els":
        return H * W * N * (H - 2 * r) * (W - 2 * r)
    rows = [1 if (i < r or i > H - 1 - r) else H - 2 * r for i in range(H)]
    cols = [1 if (j < r or j > W - 1 - r) else W - 2 * r for j in range(W)]
    return N * sum(rows) * sum(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--t", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="3,7,15")
    args = ap.parse_args()

    from elscli import noise
    from elscli.machines import DEFAULT_OPTIONS, denoise, make_denoiser, patch_dictionary

    bank = mnist_bank(args.images)
    base = numpy_baseline()
    C, H, W = bank.shape
    x = np.random.default_rng(0).standard_normal((1, C, H, W))
    cores = threads()
    denoise("els", x, args.t, bank.subset(np.arange(8)), 3)       # compile outside the timings
    denoise("bbels", x, args.t, bank.subset(np.arange(8)), 3)
    shift_only = DEFAULT_OPTIONS.replace(tree_min_precision=())
    rows = []
    for P in [int(p) for p in args.sizes.split(",")]:
        t_base = best_of(lambda: base.els_x0(x[0].astype(np.float32), bank.images, args.t, P), args.repeat)
        want = base.els_x0(x[0].astype(np.float32), bank.images, args.t, P)
        a, b = noise.scales(args.t)
        tree = make_denoiser("els", bank, patch_size=P).dictionary(np.arange(len(bank)), P).uses_tree(a, b)
        for path in (("patch tree", "shift kernel") if tree else ("shift kernel",)):
            options = shift_only if path == "shift kernel" else DEFAULT_OPTIONS
            for machine in ("els", "bbels"):
                patch_dictionary._TREES.clear()
                patch_dictionary._DICTIONARIES.clear()
                t0 = time.perf_counter()
                out = denoise(machine, x, args.t, bank, P, options=options)   # includes the tree's build, if any
                first = time.perf_counter() - t0
                secs = best_of(lambda: denoise(machine, x, args.t, bank, P, options=options), args.repeat)
                pairs = dictionary_pairs(machine, P, H, W, len(bank))
                agree = f"{np.abs(out[0] - want).max() / np.abs(want).max():.1e}" if machine == "els" else "-"
                label = path if path == "shift kernel" else f"patch tree (first call {first:.2f} s)"
                rows.append([machine, P, label, f"{secs:.3f}", f"{pairs / secs / cores / 1e6:.0f}",
                             f"{t_base:.3f}", f"{t_base / secs:.1f}x", agree])
    print(f"# bench_kernels: {len(bank)} MNIST images {H}x{W}, t={args.t}, {cores} Numba threads, "
          f"best of {args.repeat}, {platform.processor() or platform.machine()}")
    print(markdown_table(["machine", "P", "path", "seconds", "Mpairs/s/core", "baseline s", "vs baseline",
                          "rel. diff to baseline"], rows))


if __name__ == "__main__":
    main()
