"""The patch tree against the shift kernel: one bbELS evaluation each, at the noise levels and patch sizes
where the machines choose between them.

Bank: the first ``--images`` digits of mnist-5k (32x32).  Queries: the trained network's own sample at the
grid time nearest t (shared/data/reference-resnet-mnist, sample 0), in none of the banks.  Each case is run
with the tree forced on (for the bbELS interior; the edges always use the shift kernel) and forced off,
after a warm-up call that also builds the tree (the build is not counted).  The machines use the tree
where it is faster (``KernelOptions.tree_min_precision`` in ``elscli/machines/patch_dictionary.py``).

    python benchmarks/bench_tree.py [--images 5000] [--cases 3:0.05,5:0.1,5:0.15,5:0.2,7:0.25]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import SHARED, markdown_table, mnist_bank, threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--cases", default="3:0.05,5:0.1,5:0.15,5:0.2,7:0.25", help="P:t pairs")
    args = ap.parse_args()

    from elscli import reference
    from elscli.machines import DEFAULT_OPTIONS, denoise

    bank = mnist_bank(args.images)
    ref = reference.read(SHARED / "data" / "reference-resnet-mnist" / "trajectories.npz")
    rows = []
    for case in args.cases.split(","):
        P, t = int(case.split(":")[0]), float(case.split(":")[1])
        x = ref.x[0, int(np.argmin(np.abs(ref.times[:-1] - t)))][None].astype(np.float64)
        secs, outs = {}, {}
        for mode in ("tree", "shift"):
            options = DEFAULT_OPTIONS.replace(tree_min_precision=((P, 0.0),) if mode == "tree" else ())
            denoise("bbels", x, t, bank, P, options=options)
            t0 = time.perf_counter()
            outs[mode] = denoise("bbels", x, t, bank, P, options=options)
            secs[mode] = time.perf_counter() - t0
        diff = np.abs(outs["tree"] - outs["shift"]).max()
        rows.append([t, P, f"{secs['tree']:.2f}", f"{secs['shift']:.2f}", f"{secs['shift'] / secs['tree']:.2f}x",
                     f"{diff:.1e}"])
        print(rows[-1], flush=True)
    print(f"# bench_tree: bbels, {len(bank)} images, {threads()} Numba threads")
    print(markdown_table(["t", "P", "tree s", "shift kernel s", "tree speed-up", "max |difference|"], rows))


if __name__ == "__main__":
    main()
