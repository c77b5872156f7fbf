"""Peak memory of one bbELS evaluation with a 60,000-image 32x32 bank.

The bank is mnist-5k repeated 12 times with small perturbations (+-1 gray level at random pixels) — for
memory only, not as data.  Prints the peak resident set size of this process after building the bank and
after one evaluation at each patch size (default P = 15; the kernel's buffers do not depend on P: the
bank is held once, transposed into blocks of training images, and patches are never materialised).

    python benchmarks/bench_memory.py [--images 60000]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from common import mnist_bank


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60000)
    ap.add_argument("--t", type=float, default=0.5)
    ap.add_argument("--patch-sizes", default="15")
    args = ap.parse_args()

    from elscli.bank import Bank
    from elscli.machines import denoise

    base = mnist_bank(5000)
    rng = np.random.default_rng(0)
    reps = -(-args.images // len(base))
    codes = np.round((base.images.astype(np.float64) + 1.0) * 127.5).astype(np.int16)
    big = np.concatenate([np.clip(codes + rng.integers(-1, 2, codes.shape) * (rng.random(codes.shape) < 0.05),
                                  0, 255).astype(np.uint8) for _ in range(reps)])[:args.images]
    del codes
    bank = Bank.from_arrays(big, np.tile(base.labels, reps)[:args.images])
    del big
    print(f"bank of {len(bank)} images {bank.shape}: peak RSS {peak_mb():.0f} MB")
    x = rng.standard_normal((1,) + bank.shape)
    for P in [int(p) for p in args.patch_sizes.split(",")]:
        t0 = time.perf_counter()
        denoise("bbels", x, args.t, bank, P)
        print(f"bbELS P={P}, t={args.t}: {time.perf_counter() - t0:.1f} s, peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
