"""Shared helpers for the benchmarks: real data, the pinned baseline, timing and table output.

The benchmarks are scripts, not tests: they print ratios against the pinned NumPy baseline
(``../shared/bench/numpy_baseline.py``) measured in the same process, because absolute seconds on a shared
2-core machine are noisy.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence


REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ELSCLI_SHARED", REPO.parent / "shared"))


def mnist_bank(n: int = 1000, size: int = 32):
    """The first ``n`` digits of mnist-5k, resized like the paper (Pillow bilinear on 8-bit images)."""
    from elscli.bank import Bank
    from elscli.readers import load_images

    imgs = load_images(SHARED / "data" / "mnist-5k", size=size, limit=n)
    return Bank.from_arrays(imgs.images, imgs.labels)


def numpy_baseline():
    """The pinned baseline module, imported from shared/ (never copied into the project)."""
    path = SHARED / "bench" / "numpy_baseline.py"
    if not path.exists():
        sys.exit(f"pinned baseline not found at {path} (set ELSCLI_SHARED)")
    spec = importlib.util.spec_from_file_location("numpy_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of ``repeat`` calls (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def threads() -> int:
    import numba

    return numba.get_num_threads()


def markdown_table(header: Sequence[str], rows: List[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_or_check(description: str, compute: Callable[[], dict], count: int, unit: str) -> None:
    """The ``--save FILE`` / ``--check FILE`` command line of the bitwise before/after scripts: ``compute()``
    gives {"CASE|ARRAY": array}; ``--save`` writes them to an .npz, ``--check`` compares them with one
    (same dtype and bits, NaN equal to NaN), prints ``DIFFERS``/``MISSING`` per case and exits 1 on any."""
    import argparse

    import numpy as np

    ap = argparse.ArgumentParser(description=description)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help=f"write the arrays of this checkout's {unit} to this .npz")
    g.add_argument("--check", help=f"compare the arrays of this checkout's {unit} with this .npz")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = compute()
    if args.save:
        np.savez_compressed(args.save, **results)
        print(f"saved {len(results)} arrays of {count} {unit} to {args.save} ({time.perf_counter() - t0:.0f} s)")
        return
    saved = np.load(args.check)
    bad = sorted({k.rsplit("|", 1)[0] for k in results
                  if k not in saved or saved[k].dtype != results[k].dtype
                  or not np.array_equal(saved[k], results[k], equal_nan=results[k].dtype.kind == "f")})
    missing = sorted(set(saved.files) - set(results))
    for k in bad:
        print("DIFFERS:", k)
    for k in missing:
        print("MISSING:", k)
    print(f"{count - len(bad)} of {count} {unit} bitwise equal ({len(results)} arrays; "
          f"{time.perf_counter() - t0:.0f} s)")
    sys.exit(1 if bad or missing else 0)
