"""Bitwise check of whole runs across a change of code: save every array of small runs of every machine on one
checkout, compare another's.

:mod:`bitwise_check` compares the machines' outputs (the functional API); this script compares what
``elscli.sample`` writes — finals, trajectories, x0_hat trajectories, injected noise and provenance — so that a
change of the sampling loop (how a run builds and calls its denoiser) can be shown to change no bit.  Every
registered machine runs on a small bank (48 digits of mnist-5k at 16x16, 4 classes) with the DDIM sampler,
unconditional and with random labels; bbels also with ancestral noise (eta 1) and with Heun on the EDM grid,
and with the paper's locality schedule (several patch sizes in one run, some taking the patch tree).
``--save`` writes the arrays to an .npz; ``--check`` recomputes them and requires every array to be bitwise
equal (``numpy.array_equal``, NaNs equal), printing the runs that differ.

    python benchmarks/bitwise_runs.py --save before.npz        # on the old checkout
    python benchmarks/bitwise_runs.py --check before.npz       # on the new one
"""
from __future__ import annotations


import numpy as np

from common import SHARED, save_or_check

def small_bank():
    from elscli.bank import Bank
    from elscli.readers import load_images

    digits = load_images(SHARED / "data" / "mnist-5k", size=16, limit=400)
    pick = np.concatenate([np.flatnonzero(digits.labels == c)[:12] for c in (0, 1, 2, 3)])
    return Bank.from_arrays(np.ascontiguousarray(digits.images[pick]), digits.labels[pick])


def cases():
    """(name, keyword arguments of elscli.sample)."""
    from elscli.machines import MACHINES

    base = dict(num_samples=3, seed=7, steps=4, save_trajectory=True, threads=1, batch_size=2)
    out = []
    for machine in MACHINES:
        kw = dict(base, machine=machine)
        if machine in ("ls", "els", "bbels", "pspc-square"):
            kw["patch_size"] = 5
        out.append((f"{machine}|all", kw))
        out.append((f"{machine}|labels", dict(kw, label="random")))
    out.append(("bbels|schedule", dict(base, machine="bbels", steps=10)))
    out.append(("bbels|ancestral", dict(base, machine="bbels", patch_size=3, eta=1.0, label="random")))
    out.append(("bbels|heun-edm", dict(base, machine="bbels", patch_size=3, noise_schedule="edm", sampler="heun",
                                        grid="edm")))
    return out


def compute(bank):
    import elscli

    results = {}
    for name, kw in cases():
        run = elscli.sample(bank, **kw)
        for f, v in run.arrays.items():          # every dataset of the run file (finals, trajectories, ...)
            results[f"{name}|{f}"] = np.asarray(v)
    return results


def main() -> None:
    save_or_check(__doc__.splitlines()[0], lambda: compute(small_bank()), len(cases()), "runs")


if __name__ == "__main__":
    main()
