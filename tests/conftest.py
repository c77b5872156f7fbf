"""Shared fixtures: the shared real-data fixtures, tiny CIFAR batches, and a CLI runner.

The shared data live beside the repository (``../shared/data``; CI copies ``shared/`` next to its fresh
clone); ``ELSCLI_SHARED_DATA`` overrides the location.
"""
from __future__ import annotations

import os
import pickle
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Thread-count tests compare 1 thread with 2, and Numba fixes its pool size (NUMBA_NUM_THREADS, by default the
# cores available) when it is imported: on a one-core runner "2 threads" would silently be 1 and those tests
# would compare 1 with 1.  So the suite starts Numba with at least 2 threads (here and in the subprocesses the
# CLI tests start) unless the environment sets NUMBA_NUM_THREADS; tests that need two threads skip, with the
# reason, when they still cannot have them (tests/threads.py).
if "NUMBA_NUM_THREADS" not in os.environ and "numba" not in sys.modules:
    try:
        _cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        _cores = os.cpu_count() or 1
    os.environ["NUMBA_NUM_THREADS"] = str(max(2, _cores))

try:  # no example database in the checkout; no per-example deadline (first calls may compile Numba kernels)
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("elscli", database=None, deadline=None)
    _hyp_settings.load_profile("elscli")
except ImportError:  # pragma: no cover
    pass


def shared_data_dir() -> Path:
    env = os.environ.get("ELSCLI_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared test data not found at {d} (set ELSCLI_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def mnist_dir(shared_data) -> Path:
    return shared_data / "mnist-5k"


@pytest.fixture(scope="session")
def photo_tiles_dir(shared_data) -> Path:
    return shared_data / "photo-tiles"


@pytest.fixture(scope="session")
def golden_npz(shared_data) -> Path:
    return shared_data / "golden" / "reference-scores-mnist.npz"


@pytest.fixture(scope="session")
def sample_mnist_dir() -> Path:
    return REPO / "sample_data" / "mnist-1k"


# ------------------------------------------------------------------------------------------ tiny CIFAR
def write_cifar_batch(path: Path, data: np.ndarray, labels, key: str = "labels", extra: dict | None = None) -> None:
    """A batch in CIFAR's exact python format: a pickled dict with bytes keys, b'data' (N, 3072) uint8."""
    d = {b"batch_label": b"testing batch", key.encode(): list(map(int, labels)), b"data": data,
         b"filenames": [f"img{i}.png".encode() for i in range(len(labels))]}
    for k, v in (extra or {}).items():
        d[k.encode()] = list(map(int, v))
    with open(path, "wb") as fh:
        pickle.dump(d, fh, protocol=2)


def _rand_batch(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


@pytest.fixture
def cifar10_dir(tmp_path) -> Path:
    """``cifar-10-batches-py/`` with two training batches of 5 images, a test batch and batches.meta."""
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for b in (1, 2):
        write_cifar_batch(d / f"data_batch_{b}", _rand_batch(rng, 5), rng.integers(0, 10, 5))
    write_cifar_batch(d / "test_batch", _rand_batch(rng, 3), [1, 2, 3])
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                                      b"horse", b"ship", b"truck"], b"num_vis": 3072}, fh, protocol=2)
    return d


@pytest.fixture
def cifar10_tar(cifar10_dir, tmp_path) -> Path:
    out = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(cifar10_dir, arcname="cifar-10-batches-py")
    return out


@pytest.fixture
def cifar100_dir(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    write_cifar_batch(d / "train", _rand_batch(rng, 6), [5, 17, 99, 5, 0, 42], key="fine_labels",
                      extra={"coarse_labels": [1, 2, 3, 1, 0, 19]})
    write_cifar_batch(d / "test", _rand_batch(rng, 2), [1, 2], key="fine_labels", extra={"coarse_labels": [0, 0]})
    return d


def cifar_pixels(batch_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(batch_path, "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    key = b"labels" if b"labels" in d else b"fine_labels"
    return d[b"data"].reshape(-1, 3, 32, 32), np.asarray(d[key], dtype=np.int64)


# ------------------------------------------------------------------------------------------ CLI runner
@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``elscli ARGS`` in-process through the real entry point (``elscli.cli.main``)."""
    from elscli.cli import main

    monkeypatch.delenv("ELSCLI_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("ELSCLI_TREE_CACHE", "off")      # tests that keep patch trees on disk say where

    def run(*args) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
