"""Seconds per sample of ``elscli sample``: 20-step bbELS with ``paper:MNIST_ResNet_zeros`` on all of mnist-5k.

Runs the real sampling path (:func:`elscli.sample`, run file included) on a bank of the first ``--images``
digits of mnist-5k (32x32, resized like the paper) and prints the seconds per sample, with a breakdown of
the machine time per patch size of the schedule (each step's machine call is timed).

    python benchmarks/bench_sample.py [--images 5000] [--samples 1] [--steps 20] [--machine bbels]
                                      [--schedule paper:MNIST_ResNet_zeros] [--threads N] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import markdown_table, mnist_bank, threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--machine", default="bbels")
    ap.add_argument("--schedule", default="paper:MNIST_ResNet_zeros")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import elscli
    from elscli.machines import interface

    bank = mnist_bank(args.images)
    per_size = defaultdict(float)
    calls = defaultdict(int)
    real_run = interface.Denoiser._run

    def timed_run(self, x, t, label, a, b, provenance):
        """Every machine call, through whichever path (a run's denoiser or the functional API), by its P."""
        t0 = time.perf_counter()
        out = real_run(self, x, t, label, a, b, provenance)
        patch = self.values_at(t).get("patch_size", 0) if t is not None else 0
        per_size[patch] += time.perf_counter() - t0
        calls[patch] += np.shape(x)[0] if np.ndim(x) == 4 else 1
        return out

    interface.Denoiser._run = timed_run
    # Warm-up (Numba compilation or cache load) on a tiny problem, outside the timing: the shift kernel, and
    # the patch tree at low noise.
    elscli.sample(bank.subset(range(4)), machine=args.machine, num_samples=1, steps=2, patch_size=3,
                  threads=args.threads)
    from elscli.machines import denoise

    denoise(args.machine, bank.images[:1], 0.05, bank.subset(range(4)), 3, threads=args.threads)
    per_size.clear()
    calls.clear()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run = elscli.sample(bank, machine=args.machine, schedule=None if args.machine == "is" else args.schedule,
                            num_samples=args.samples, steps=args.steps, seed=0, output=Path(d) / "run.h5",
                            threads=args.threads, batch_size=args.batch_size)
        total = time.perf_counter() - t0
    result = {
        "machine": args.machine, "schedule": args.schedule, "images": len(bank), "image_shape": list(bank.shape),
        "steps": args.steps, "samples": args.samples, "threads": threads(),
        "seconds_total": round(total, 2), "seconds_per_sample": round(total / args.samples, 2),
        "patch_sizes": run.patch_sizes.tolist(),
        "machine_seconds_per_sample_by_patch_size": {str(p): round(s / args.samples, 2)
                                                     for p, s in sorted(per_size.items())},
        "cpu": platform.processor() or platform.machine(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.machine}, {args.steps} steps, {args.schedule}, {len(bank)} images {tuple(bank.shape)}, "
          f"{threads()} threads: {result['seconds_per_sample']} s per sample")
    rows = [(p, calls[p] // max(args.samples, 1), f"{per_size[p] / args.samples:.2f}",
             f"{per_size[p] / max(calls[p], 1):.2f}") for p in sorted(per_size)]
    print(markdown_table(["P", "steps per sample", "machine s per sample", "s per step"], rows))


if __name__ == "__main__":
    main()
