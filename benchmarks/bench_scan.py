"""The locality scan at the paper's scale: where an exhaustive scan's time goes, what a decision-exact scan
must compute, and the full scans' wall times.

``--profile`` (default): every (step, candidate) evaluation of a few reference samples, timed, over all of
mnist-5k (bbELS, candidates 3:17), and from the same evaluations:

- seconds per step for all candidates, and for each sample's winner alone — the time of an oracle that knew
  the winners and evaluated only them (a decision-exact scan must evaluate each winner exactly: its
  similarity is reported);
- the gap between each sample's best and second-best similarity, and the precision of x0_hat per pixel
  that a bound must reach to separate them: with s_P = -(x - a x0_P)/b^2 and the network's n = -eps/b, a
  change d in x0_P at every pixel moves cos(n, s_P) by up to ``(a/b^2) sum_p |n_p| d / (|n| |s_P|)``;
- certification by pixels: the fraction of pixels at which a losing candidate must be evaluated exactly
  (its x0_hat elsewhere bounded by the pixel range [-1, 1]) before its upper bound falls below the winner.

``--full MACHINE[:CANDIDATES]``: ``elscli locality-scan`` over all 32 reference samples in a fresh process
(Numba's cache warm, as after the first run of a checkout; patch-tree builds included), timed.

``--certify SAVED.npz``: from a saved profile (``--save``: per-evaluation seconds, similarities and x0_hat),
the time an ideal certified scan would take: each sample's winner evaluated exactly, each loser only at the
fraction of its pixels its bound needs (taken as that fraction of its evaluation time — a lower bound of any
pixel-bounded skipping's cost, as the bounds themselves are free here), against the exhaustive scan.

``--ls-sizes``: LS with every candidate size in one pass (``machines.denoise_candidates``, the integral-image
kernel) against one ``denoise`` call per size, for the ``--samples`` (``all``: the 32) at a few steps.

    python benchmarks/bench_scan.py [--samples 0,8,16,24] [--reference PATH]
    python benchmarks/bench_scan.py --full ls:3:31 --full bbels:3:17
    python benchmarks/bench_scan.py --ls-sizes --samples all
    python benchmarks/bench_scan.py --samples 0 --candidates 3:31 --steps 0,10,19    # 3:31 against 3:17
    python benchmarks/bench_scan.py --samples 0 --save exh.npz && python benchmarks/bench_scan.py --certify exh.npz
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import SHARED, markdown_table, mnist_bank, threads


def cos_upper_bound(n, u, c, x0, known):
    """Upper bound of cos(n, u + c z) over z = x0 on the known pixels and z in [-1, 1] elsewhere: the
    largest numerator over the smallest norm, pixel by pixel (valid while the numerator is positive)."""
    z_num = np.where(known, x0, np.sign(n))
    num = float((n * (u + c * z_num)).sum())
    z_den = np.where(known, x0, np.clip(-u / c, -1.0, 1.0))
    return num / (np.linalg.norm(n) * np.linalg.norm(u + c * z_den))


def pixels_to_certify(n, u, c, x0, best):
    """Smallest fraction of pixels (taken in order of |n|, the largest uncertainty first) at which x0 must be
    known exactly for the upper bound to fall below ``best``."""
    order = np.argsort(-np.abs(n))
    lo, hi = 0, len(n)
    while lo < hi:
        mid = (lo + hi) // 2
        known = np.zeros(len(n), bool)
        known[order[:mid]] = True
        if cos_upper_bound(n, u, c, x0, known) < best:
            hi = mid
        else:
            lo = mid + 1
    return lo / len(n)


def profile(args) -> None:
    import elscli
    from elscli import reference as R
    from elscli.analysis.scan import parse_candidates, similarity
    from elscli.noise import scales

    bank = mnist_bank(5000)
    ref = R.read(args.reference)
    samples = [int(s) for s in args.samples.split(",")]
    cands = parse_candidates(args.candidates)
    T = ref.num_steps
    steps = range(T) if args.steps is None else [int(j) for j in args.steps.split(",")]
    S, K = len(samples), len(cands)
    # compile, and build the patch trees, outside the timings
    for P in cands:
        elscli.denoise(args.machine, ref.x[samples[0], T - 1].astype(np.float64), float(ref.times[T - 1]), bank, P)
    sec = np.zeros((K, T))
    sim = np.zeros((S, K, T))
    x0 = np.zeros((S, K, T) + ref.image_shape)
    for step in steps:
        t = float(ref.times[step])
        a, b = scales(t, ref.schedule)
        x = ref.x[samples, step].astype(np.float64)
        net = -ref.eps[samples, step].astype(np.float64) / b
        for k, P in enumerate(cands):
            t0 = time.perf_counter()
            x0[:, k, step] = elscli.denoise(args.machine, x, t, bank, P)
            sec[k, step] = time.perf_counter() - t0
            sim[:, k, step] = similarity(net, -(x - a * x0[:, k, step]) / (b * b), "cosine")
        print(f"t={t:.2f}: " + " ".join(f"P{P}={s:.2f}s" for P, s in zip(cands, sec[:, step])), flush=True)
    per_sample = sec / S                                   # seconds per sample for each (candidate, step)
    best = np.argmax(sim, axis=1)                          # (S, T); ties: the smaller P (first)
    rows = []
    for step in steps:
        t = float(ref.times[step])
        a, b = scales(t, ref.schedule)
        c = a / (b * b)
        gaps, deltas, fracs = [], [], []
        for i, s in enumerate(samples):
            order = np.argsort(-sim[i, :, step], kind="stable")
            gap = sim[i, order[0], step] - sim[i, order[1], step]
            n = (-ref.eps[s, step].astype(np.float64) / b).ravel()
            u = (-ref.x[s, step].astype(np.float64) / (b * b)).ravel()
            sw = u + c * x0[i, best[i, step], step].ravel()
            sens = c * np.abs(n).sum() / (np.linalg.norm(n) * np.linalg.norm(sw))
            gaps.append(gap)
            deltas.append(gap / sens)
            fracs += [pixels_to_certify(n, u, c, x0[i, k, step].ravel(), sim[i, best[i, step], step])
                      for k in range(K) if k != best[i, step]]
        win = np.mean([per_sample[best[i, step], step] for i in range(S)])
        rows.append([f"{t:.2f}", "/".join(str(cands[k]) for k in best[:, step]), f"{per_sample[:, step].sum():.2f}",
                     f"{win:.2f}", f"{np.median(gaps):.1e}", f"{np.min(gaps):.1e}", f"{np.median(deltas):.1e}",
                     f"{np.min(fracs):.2f}–{np.median(fracs):.2f}"])
    total = per_sample.sum()
    oracle = np.mean([sum(per_sample[best[i, j], j] for j in steps) for i in range(S)])
    print(f"\n{args.machine}, candidates {cands[0]}:{cands[-1]}, samples {samples} of {args.reference}, "
          f"{len(bank)} images, {threads()} threads")
    print(markdown_table(["t", "best P (per sample)", "s per sample, all candidates", "s, winner only",
                          "gap to 2nd (median)", "gap (min)", "x0 precision needed (median)",
                          "pixels to certify a loser (min–median)"], rows))
    if args.steps is not None:
        print(f"(steps {list(steps)} only)")
    print(f"\nexhaustive: {total:.1f} s per sample -> {32 * total / 60:.1f} min for 32 samples; "
          f"winners only (an oracle): {oracle:.1f} s per sample ({oracle / total:.0%}) -> {32 * oracle / 60:.1f} min")
    if args.save:
        np.savez(args.save, sec=np.broadcast_to(per_sample, (S, K, T)), sim=sim, x0=x0, samples=samples,
                 cands=cands, times=ref.times[:-1])


def certify(args) -> None:
    """The ideal pixel-certified scan's time against the exhaustive one, from a saved profile."""
    from elscli import reference as R
    from elscli.noise import scales

    d = np.load(args.certify)
    sec, sim, x0 = d["sec"], d["sim"], d["x0"]          # (S, K, T) seconds per sample, (S, K, T), (S, K, T, C, H, W)
    samples, cands = [int(s) for s in d["samples"]], [int(c) for c in d["cands"]]
    ref = R.read(args.reference)
    S, K, T = sim.shape
    rows, tot_exh, tot_cert, tot_win = [], 0.0, 0.0, 0.0
    for step in range(T):
        t = float(ref.times[step])
        a, b = scales(t, ref.schedule)
        c = a / (b * b)
        exh = cert = win = 0.0
        fracs = []
        for i, s in enumerate(samples):
            n = (-ref.eps[s, step].astype(np.float64) / b).ravel()
            u = (-ref.x[s, step].astype(np.float64) / (b * b)).ravel()
            kb = int(np.argmax(sim[i, :, step]))
            exh += sec[i, :, step].sum()
            win += sec[i, kb, step]
            cert += sec[i, kb, step]
            for k in range(K):
                if k != kb:
                    f = pixels_to_certify(n, u, c, x0[i, k, step].ravel(), sim[i, kb, step])
                    fracs.append(f)
                    cert += f * sec[i, k, step]
        tot_exh, tot_cert, tot_win = tot_exh + exh, tot_cert + cert, tot_win + win
        rows.append([f"{t:.2f}", f"{exh / S:.1f}", f"{win / S:.1f}", f"{cert / S:.1f}", f"{cert / exh:.0%}",
                     f"{min(fracs):.2f}–{np.median(fracs):.2f}"])
    print(f"\n{args.certify}: samples {samples}, candidates {cands}")
    print(markdown_table(["t", "exhaustive (s per sample)", "winner only (s)", "ideal certified (s)",
                          "certified / exhaustive", "pixels to certify a loser (min–median)"], rows))
    print(f"\nper sample: exhaustive {tot_exh / S:.0f} s, winner only {tot_win / S:.0f} s ({tot_win / tot_exh:.0%}), "
          f"ideal certified {tot_cert / S:.0f} s ({tot_cert / tot_exh:.0%}); for 32 samples "
          f"{32 * tot_exh / S / 60:.0f} / {32 * tot_win / S / 60:.0f} / {32 * tot_cert / S / 60:.0f} min")


def full(spec: str, args) -> None:
    machine, _, cands = spec.partition(":")
    cands = cands or "3:17"
    with tempfile.TemporaryDirectory() as d:
        bank = Path(d) / "mnist5k.h5"
        subprocess.run(["elscli", "build-bank", str(SHARED / "data" / "mnist-5k"), "-o", str(bank), "--json"],
                       check=True, capture_output=True)
        cmd = ["elscli", "locality-scan", "-r", str(args.reference), "--bank", str(bank), "--machine", machine,
               "--candidates", cands, "--scan-out", str(Path(d) / "scan.h5"), "--json", "--quiet"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(res.stderr)
        out = json.loads(res.stdout)
        print(f"{machine} {cands}: {wall / 60:.1f} min wall for {out['samples']} samples "
              f"(schedule {out['schedule']['patch_sizes']})", flush=True)


def ls_sizes(args) -> None:
    import elscli
    from elscli import machines
    from elscli import reference as R
    from elscli.analysis.scan import parse_candidates

    bank = mnist_bank(5000)
    ref = R.read(args.reference)
    cands = parse_candidates("3:31")
    rows = []
    rows_ref = [int(s) for s in args.samples.split(",")] if args.samples != "all" else list(range(ref.num_samples))
    for step in ((0, 5, 10, 15, 19) if args.steps is None else [int(j) for j in args.steps.split(",")]):
        t = float(ref.times[step])
        x = ref.x[rows_ref, step].astype(np.float64)
        machines.denoise_candidates("ls", x[:1], t, bank, cands)
        for P in cands:
            elscli.denoise("ls", x[:1], t, bank, P)
        best_multi = best_single = float("inf")
        for _ in range(2):      # alternating, best of 2 each
            t0 = time.perf_counter()
            machines.denoise_candidates("ls", x, t, bank, cands)
            t1 = time.perf_counter()
            for P in cands:
                elscli.denoise("ls", x, t, bank, P)
            t2 = time.perf_counter()
            best_multi, best_single = min(best_multi, t1 - t0), min(best_single, t2 - t1)
        rows.append([f"{t:.2f}", f"{best_multi:.2f}", f"{best_single:.2f}", f"{best_single / best_multi:.2f}x"])
        print(rows[-1], flush=True)
    print(f"\nLS, 15 sizes 3:31, {len(x)} samples, {len(bank)} images, {threads()} threads")
    print(markdown_table(["t", "one pass, all sizes (s)", "one call per size (s)", "speed-up"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=SHARED / "data" / "reference-resnet-mnist" / "trajectories.npz")
    ap.add_argument("--samples", default="0,8,16,24", help="reference samples (--ls-sizes: 'all' for all 32)")
    ap.add_argument("--steps", default=None, help="only these step indices, e.g. 0,10,19 (default: all; "
                    "--ls-sizes: 0,5,10,15,19)")
    ap.add_argument("--machine", default="bbels")
    ap.add_argument("--candidates", default="3:17")
    ap.add_argument("--save", default=None, help="keep the timings and similarities (.npz)")
    ap.add_argument("--full", action="append", default=[], help="MACHINE[:CANDIDATES], e.g. bbels:3:17")
    ap.add_argument("--certify", type=Path, default=None, help="ideal certified scan from a --save file")
    ap.add_argument("--ls-sizes", action="store_true", help="LS: one pass for all sizes against one call per size")
    args = ap.parse_args()
    if args.ls_sizes:
        ls_sizes(args)
        return
    if args.certify:
        certify(args)
        return
    if args.full:
        for spec in args.full:
            full(spec, args)
        return
    profile(args)


if __name__ == "__main__":
    main()
