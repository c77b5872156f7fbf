"""Large banks: seconds per 20-step bbELS sample, peak memory, and the cost of a full locality scan, for a
60,000-image 1x32x32 bank and a 50,000-image 3x32x32 bank (the sizes of MNIST and CIFAR-10).

The banks are built for timing only, never written: the 512 photo tiles of ``shared/data/photo-tiles`` are
an 8 x 8 raster of each of 8 photographs, which are put back together (256 x 256 each) and cut into random
32 x 32 crops, half of them flipped left-right (seeded); grey banks take Pillow's ITU-R 601 luma of each
crop (as ``build-bank --grayscale``).  Photo crops have almost no repeated patches (no flat background as
in MNIST), so they show the kernels' plain cost per (pixel, patch) pair.  Each measurement runs in its own
process, so that its peak resident set size is its own.

    python benchmarks/bench_banks.py                    # both banks: sample, memory, scan estimate
    python benchmarks/bench_banks.py --only sample --images 60000 --channels 1
    python benchmarks/bench_banks.py --growth           # time of one evaluation against N and C

The full-scan estimate (32 samples, 20 steps, candidates 3:17, as for mnist-5k) times every (step,
candidate) evaluation of one query at ``--scan-images`` images (default: a tenth of the bank), in CPU
seconds, with the patch tree's size limit scaled by the same fraction (so that the small bank uses the tree
exactly where the full one would: a 60,000-image bank never builds it), and scales them by the growth to
the full bank measured on three (step, candidate) pairs (time grows linearly with the bank: ``--growth``).
Queries are held-out crops noised to each step's time, ``x_t = a x0 + b eps`` (photo banks have no network
to follow).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import SHARED, markdown_table

HERE = Path(__file__).resolve().parent


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def photographs() -> np.ndarray:
    """The 8 photographs (8, 256, 256, 3) uint8, from their 8 x 8 rasters of 32 x 32 tiles."""
    from PIL import Image

    root = SHARED / "data" / "photo-tiles"
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        tiles = [np.asarray(Image.open(d / f"{i:03d}.png").convert("RGB")) for i in range(64)]
        out.append(np.concatenate([np.concatenate(tiles[r * 8:(r + 1) * 8], axis=1) for r in range(8)], axis=0))
    return np.stack(out)


def photo_crops(n: int, channels: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """n random size x size crops of the photographs, half flipped left-right: (n, C, size, size) uint8."""
    from PIL import Image

    photos = photographs()
    rng = np.random.default_rng(seed)
    P, H, W, _ = photos.shape
    which = rng.integers(P, size=n)
    top = rng.integers(H - size + 1, size=n)
    left = rng.integers(W - size + 1, size=n)
    flip = rng.random(n) < 0.5
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for k in range(n):
        crop = photos[which[k], top[k]:top[k] + size, left[k]:left[k] + size]
        if flip[k]:
            crop = crop[:, ::-1]
        if channels == 1:
            out[k, 0] = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).convert("L"))
        else:
            out[k] = crop.transpose(2, 0, 1)
    return out


def photo_bank(n: int, channels: int, seed: int = 0):
    from elscli.bank import Bank

    return Bank.from_arrays(photo_crops(n, channels, seed), np.zeros(n, dtype=np.int64))


# ------------------------------------------------------------------------------------------ one process

def run_sample(images: int, channels: int, samples: int, threads) -> dict:
    """Seconds per 20-step bbELS sample (paper:MNIST_ResNet_zeros) and the peak RSS of the process."""
    import elscli

    t0 = time.perf_counter()
    bank = photo_bank(images, channels)
    build = time.perf_counter() - t0
    rss_bank = peak_mb()
    # compile / load the kernels on a tiny bank first, outside the timing
    elscli.sample(bank.subset(range(8)), machine="bbels", num_samples=1, steps=2, patch_size=3, threads=threads)
    t0, c0 = time.perf_counter(), time.process_time()
    elscli.sample(bank, machine="bbels", schedule="paper:MNIST_ResNet_zeros", num_samples=samples, steps=20,
                  seed=0, threads=threads)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"images": images, "channels": channels, "samples": samples, "bank_seconds": round(build, 1),
            "seconds_per_sample": round(total / samples, 2), "cpu_seconds_per_sample": round(cpu / samples, 2),
            "peak_rss_mb_bank": round(rss_bank),
            "peak_rss_mb": round(peak_mb())}


def _queries(channels: int, count: int, seed: int = 1) -> np.ndarray:
    """Held-out crops in [-1, 1] (another seed than the bank's)."""
    return photo_crops(count, channels, seed=1000 + seed).astype(np.float64) / 127.5 - 1.0


def run_evals(images: int, channels: int, cases, threads, tree_max_bytes=None) -> dict:
    """Seconds of single bbELS evaluations (one query) at each (t, P) in ``cases``, each evaluated once after
    its denoiser was prepared for all of that P's times (``Denoiser.prepare``: patch trees, constant patches,
    blocks); the preparation time of each P is reported separately (``prepare``), as a scan pays it once per
    P and process.  ``tree_max_bytes`` caps the patch tree's distinct patches (``KernelOptions``): a bank
    standing in for a larger one is capped in proportion, so that it routes each (t, P) to the kernel the
    larger bank would use."""
    from elscli.machines import DEFAULT_OPTIONS, make_denoiser
    from elscli.noise import scales

    bank = photo_bank(images, channels)
    x0 = _queries(channels, 1)[0]
    eps = np.random.default_rng(7).standard_normal(x0.shape)
    tiny = bank.subset(range(8))
    for t, P in cases:              # compile every kernel variant the cases route to, untimed, on 8 images
        make_denoiser("bbels", tiny, patch_size=P, threads=threads)(x0, t)
    by_p: dict = {}
    for t, P in cases:
        by_p.setdefault(P, []).append(t)
    options = DEFAULT_OPTIONS if tree_max_bytes is None else DEFAULT_OPTIONS.replace(tree_max_bytes=tree_max_bytes)
    machines, prepare = {}, {}
    for P, ts in by_p.items():
        t0 = time.perf_counter()
        machines[P] = make_denoiser("bbels", bank, patch_size=P, threads=threads, options=options).prepare(ts)
        prepare[P] = round(time.perf_counter() - t0, 3)
    out = []
    for t, P in cases:
        a, b = scales(t)
        x = a * x0 + b * eps
        t0, c0 = time.perf_counter(), time.process_time()
        machines[P](x, t)
        out.append([t, P, round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)])
    return {"images": images, "channels": channels, "evals": out, "prepare": prepare,
            "peak_rss_mb": round(peak_mb())}


def _in_process(kind: str, **kw) -> dict:
    """Run one measurement in a fresh Python (its own peak RSS) and return its JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps({"kind": kind, **kw})]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    if res.returncode != 0:
        sys.exit(f"child failed: {' '.join(cmd)}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["sample", "scan"], default=None)
    ap.add_argument("--images", type=int, default=None, help="one bank of this size (with --channels)")
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--scan-images", type=int, default=None, help="bank size for the per-step scan timings "
                    "(default: a tenth of the bank)")
    ap.add_argument("--candidates", default="3:17")
    ap.add_argument("--growth", action="store_true", help="one evaluation against N (and C)")
    ap.add_argument("--growth-images", default="5000,15000,30000,60000", help="bank sizes for --growth")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        spec = json.loads(args._child)
        kind = spec.pop("kind")
        fn = {"sample": run_sample, "evals": run_evals}[kind]
        print(json.dumps(fn(**spec)))
        return

    from elscli.analysis.scan import parse_candidates
    from elscli.noise import time_grid

    banks = [(60000, 1), (50000, 3)]
    if args.images is not None:
        banks = [(args.images, args.channels or 1)]
    if args.growth:
        cases = [[0.5, 11], [0.1, 5]]
        rows = []
        for C in (1, 3):
            for n in (int(v) for v in args.growth_images.split(",")):
                r = _in_process("evals", images=n, channels=C, cases=cases, threads=args.threads)
                rows.append([n, C] + [f"{e[2]:.2f} ({e[3]:.2f})" for e in r["evals"]] + [r["peak_rss_mb"]])
                print(rows[-1], flush=True)
        print(markdown_table(["images", "channels"] + [f"t={t}, P={p}: wall (CPU) s" for t, p in cases]
                             + ["peak RSS MB"], rows))
        return
    for n, C in banks:
        if args.only in (None, "sample"):
            r = _in_process("sample", images=n, channels=C, samples=args.samples, threads=args.threads)
            print(f"bank {n} x {C}x32x32: {r['seconds_per_sample']} s ({r['cpu_seconds_per_sample']} s of CPU) per "
                  f"20-step bbELS sample "
                  f"(paper:MNIST_ResNet_zeros), peak RSS {r['peak_rss_mb']} MB (bank alone {r['peak_rss_mb_bank']} MB; "
                  f"bank built in {r['bank_seconds']} s)", flush=True)
        if args.only in (None, "scan"):
            cands = parse_candidates(args.candidates)
            times = [float(t) for t in time_grid(20)[:-1]]
            small = args.scan_images or n // 10
            from elscli.machines import DEFAULT_OPTIONS    # the small bank routes (t, P) as the full one does
            r = _in_process("evals", images=small, channels=C, cases=[[t, p] for t in times for p in cands],
                            threads=args.threads, tree_max_bytes=DEFAULT_OPTIONS.tree_max_bytes * small // n)
            per_step = sum(e[3] for e in r["evals"])      # CPU seconds: robust to a shared machine
            check = [[times[0], cands[0]], [times[10], cands[len(cands) // 2]], [times[-2], cands[-1]]]
            full = _in_process("evals", images=n, channels=C, cases=check, threads=args.threads)
            small_t = {(e[0], e[1]): e[3] for e in r["evals"]}
            ratios = [e[3] / small_t[(e[0], e[1])] for e in full["evals"]]
            ratio = float(np.median(ratios))
            print(f"bank {n} x {C}x32x32: one sample's exhaustive scan ({len(times)} steps x {len(cands)} "
                  f"candidates) {per_step:.1f} s of CPU at {small} images (+ {sum(r['prepare'].values()):.1f} s "
                  f"of preparation, once per process); measured growth to {n}: "
                  f"{', '.join(f'{q:.1f}x' for q in ratios)} (bank {n / small:.0f}x), peak RSS at {n} "
                  f"{full['peak_rss_mb']} MB; full scan of 32 samples ~{32 * per_step * ratio / 3600:.1f} h of CPU",
                  flush=True)


if __name__ == "__main__":
    main()
