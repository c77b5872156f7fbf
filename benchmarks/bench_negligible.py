"""How many (pixel, patch) weights are *not* provably negligible, against bank size: the floor of any exact
skipping scheme.

elscli may skip a weight only when it is provably below e^-40 of the running maximum, so every weight within
40 nats of a pixel's largest must be computed (or counted, for identical patches stored once).  For queries
from a trained network's own trajectory (shared/data/reference-resnet-mnist, sample 0, the grid time nearest
t) this script counts, for a random sample of interior pixels of the bbELS dictionary (every interior patch
of every image), the patches whose log weight lies within 40 nats of the pixel's maximum — all of them, and
the distinct ones — for each bank size.  If these counts grow linearly with the bank, no exact method that
evaluates each such weight (or each distinct such patch) can grow sub-linearly.

    python benchmarks/bench_negligible.py [--sizes 1000,2000,5000] [--times 0.3,0.1,0.05] [--pixels 64]
"""
from __future__ import annotations

import argparse

import numpy as np

from common import SHARED, markdown_table, mnist_bank

RULE = 40.0


def interior_patches(images: np.ndarray, P: int) -> np.ndarray:
    """(N * (H-P+1) * (W-P+1), C*P*P) float64: every fully interior patch."""
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(images, (P, P), axis=(2, 3))          # N, C, H', W', P, P
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * P * P),
                                dtype=np.float64)


def within_rule(q: np.ndarray, phi: np.ndarray, s1: float, s2: float, chunk: int = 1 << 18) -> np.ndarray:
    """For each query patch (rows of q), the boolean mask of patches within RULE nats of its best one."""
    norms = np.einsum("ij,ij->i", phi, phi)
    logw = np.empty((q.shape[0], phi.shape[0]))
    for lo in range(0, phi.shape[0], chunk):
        hi = min(lo + chunk, phi.shape[0])
        logw[:, lo:hi] = s1 * (q @ phi[lo:hi].T) - s2 * norms[lo:hi]
    return logw >= logw.max(axis=1, keepdims=True) - RULE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,2000,5000")
    ap.add_argument("--times", default="0.3,0.1,0.05")
    ap.add_argument("--pixels", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    times = [float(t) for t in args.times.split(",")]

    from elscli import noise, reference, schedule as sched

    schedule = sched.load_schedule(sched.DEFAULT_SCHEDULE)
    full = mnist_bank(max(sizes))
    images = np.asarray(full.images, dtype=np.float64)
    ref = reference.read(SHARED / "data" / "reference-resnet-mnist" / "trajectories.npz")
    rows = []
    for t in times:
        P = schedule.patch_size_at(t)
        a, b = noise.scales(t)
        s1, s2 = a / (b * b), a * a / (2 * b * b)
        step = int(np.argmin(np.abs(ref.times[:-1] - t)))
        x = ref.x[0, step][None].astype(np.float64)
        q_all = interior_patches(x, P)
        pick = np.random.default_rng(args.seed).choice(q_all.shape[0], min(args.pixels, q_all.shape[0]),
                                                       replace=False)
        q = q_all[pick]
        for n in sizes:
            phi = interior_patches(images[:n], P)
            live = within_rule(q, phi, s1, s2)
            _, inverse = np.unique(phi.astype(np.float32), axis=0, return_inverse=True)
            inverse = inverse.ravel()
            distinct_live = np.mean([np.unique(inverse[row]).size for row in live])
            rows.append([t, P, n, phi.shape[0], f"{live.sum(axis=1).mean():.0f}",
                         f"{live.mean():.3f}", f"{distinct_live:.0f}"])
            print(rows[-1], flush=True)
    print(f"# bench_negligible: bbELS interior, {args.pixels} random interior pixels per t, rule e^-{RULE:.0f}")
    print(markdown_table(["t", "P", "images", "patches per pixel", "within e^-40 (mean)", "fraction",
                          "distinct within e^-40 (mean)"], rows))


if __name__ == "__main__":
    main()
