"""Bitwise check of the machines across a change of code: save every output of one checkout, compare another's.

Runs the four machines through the functional API (``elscli.denoise_with_provenance``, present in every
version) on real data — the first 1,000 digits of mnist-5k (two parallel blocks of images, flat background:
the constant patch) and the 512 RGB photo tiles (8 labelled photographs) — at low, mid and high noise, for
patch sizes that take every path of the kernels (the patch tree at P = 3, and at P = 5 at low noise; the shift
kernel elsewhere), unconditional and class-conditional (one label per query, one of them -1).  ``--save``
writes x0_hat and every provenance field to an .npz; ``--check`` recomputes them and requires every array
to be bitwise equal (``numpy.array_equal``), printing the cases that differ.

    python benchmarks/bitwise_check.py --save before.npz        # on the old checkout
    python benchmarks/bitwise_check.py --check before.npz       # on the new one
"""
from __future__ import annotations

import math

import numpy as np

from common import SHARED, save_or_check

FIELDS = ("image", "row", "col", "weight", "entropy")


def cosine_legacy(t):
    """(a, b) of the paper's schedule, computed here (the scales are passed to the machines, so that a change
    of the library's schedule code does not show up as a change of the machines)."""
    beta = 1 - math.cos(t / 1.008 * math.pi / 2) ** 2
    return math.sqrt(1 - beta), math.sqrt(beta)


def banks():
    from elscli.bank import Bank
    from elscli.readers import load_images

    digits = load_images(SHARED / "data" / "mnist-5k", size=32, limit=1000)
    tiles = load_images(SHARED / "data" / "photo-tiles", size=0)
    return {"mnist": Bank.from_arrays(digits.images, digits.labels),
            "tiles": Bank.from_arrays(tiles.images, tiles.labels)}


def cases():
    """(bank, machine, P, t, labelled) — every machine on both banks."""
    out = []
    for bank, sizes, times in (("mnist", (3, 5, 9), (0.05, 0.3, 0.7)), ("tiles", (3, 5, 7), (0.05, 0.4))):
        for machine in ("is", "ls", "els", "bbels"):
            for P in ((None,) if machine == "is" else sizes):
                for t in times:
                    for labelled in (False, True):
                        out.append((bank, machine, P, t, labelled))
    return out


def compute(bank_objs):
    import elscli

    results = {}
    for bank, machine, P, t, labelled in cases():
        b = bank_objs[bank]
        rng = np.random.default_rng(len(results))
        a, s = cosine_legacy(t)
        pick = rng.choice(len(b), 2, replace=False)
        x = np.concatenate([a * b.images[pick] + s * rng.standard_normal((2,) + b.shape),
                            rng.standard_normal((1,) + b.shape)])
        label = np.array([int(b.labels[pick[0]]), -1, int(b.classes[-1])]) if labelled else None
        x0, prov = elscli.denoise_with_provenance(machine, x, None, b, P, label=label, a=a, b=s)
        key = f"{bank}|{machine}|P{P}|t{t}|{'labels' if labelled else 'all'}"
        results[key + "|x0"] = x0
        for f in FIELDS:
            results[key + "|" + f] = getattr(prov, f)
    return results


def main() -> None:
    save_or_check(__doc__.splitlines()[0], lambda: compute(banks()), len(cases()), "cases")


if __name__ == "__main__":
    main()
