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
