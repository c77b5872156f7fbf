"""Patch mosaics: distinct sources, boundaries, local consistency (Theorem 4.1), PNGs from real runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elscli.analysis import mosaic as M
from elscli.errors import ElscliError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"


@pytest.fixture(scope="module")
def tiny_bank():
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    from elscli.bank import Bank

    return Bank.from_arrays(np.ascontiguousarray(np.load(GOLDEN)["bank_images"][:12, :, 8:24, 8:24]))


@pytest.fixture(scope="module")
def runs(tiny_bank, tmp_path_factory):
    from elscli import runs as R

    d = tmp_path_factory.mktemp("runs")
    out = {}
    for machine, p in (("els", 3), ("is", None), ("ls", 5)):
        path = d / f"{machine}.h5"
        R.sample(tiny_bank, machine=machine, patch_size=p, steps=10, num_samples=3, seed=2, output=path)
        out[machine] = path
    return out


def test_distinct_sources_and_boundaries():
    img = np.array([[[0, 0, 1], [0, 2, 1], [2, 2, 1]]])
    assert M.distinct_sources(img).tolist() == [3]
    segs = M.boundary_segments(img[0])
    # horizontal neighbours that differ: (0,1)-(0,2), (1,0)-(1,1), (1,1)-(1,2), (2,1)-(2,2) -> 4 vertical edges
    # vertical neighbours that differ: (0,1)-(1,1), (1,0)-(2,0) -> 2 horizontal edges
    assert len(segs) == 6
    assert ((1.5, 1.5), (-0.5, 0.5)) in segs           # between columns 1 and 2 on row 0
    assert ((-0.5, 0.5), (1.5, 1.5)) in segs           # between rows 1 and 2 in column 0
    assert ((0.5, 1.5), (0.5, 0.5)) in segs            # between rows 0 and 1 in column 1
    cols = M.source_colours(np.array([[5, 5], [9, 5]]))
    assert cols.shape == (2, 2, 3) and np.allclose(cols[0, 0], cols[0, 1]) and not np.allclose(cols[0, 0], cols[1, 0])
    # the same source gets the same colour in any map
    np.testing.assert_allclose(M.source_colours(np.array([[9]]))[0, 0], cols[1, 0])


def test_local_consistency_of_training_images(tiny_bank):
    """A training image is locally consistent everywhere under LS (its own windows are in the dictionary)."""
    imgs = tiny_bank.images[:3].astype(np.float64)
    np.testing.assert_allclose(M.local_consistency(imgs, "ls", tiny_bank, 5), 1.0)
    noise = np.random.default_rng(0).uniform(-1, 1, imgs.shape)
    assert M.local_consistency(noise, "ls", tiny_bank, 5).max() < 0.5
    with pytest.raises(ElscliError, match="shape"):
        M.local_consistency(imgs[:, :, :8], "ls", tiny_bank, 5)


def test_mosaic_report_from_runs(runs, tiny_bank, tmp_path):
    rep = M.mosaic_report(M.load_run_provenance(runs["is"]), bank=tiny_bank, out_dir=tmp_path)
    # IS memorises: one source image per sample, and the sample is that image (consistent everywhere)
    assert rep.distinct_sources.tolist() == [1, 1, 1]
    np.testing.assert_allclose(rep.consistency, 1.0)
    assert len(rep.pngs) == 3 and all(Path(p).stat().st_size > 1000 for p in rep.pngs)

    rp = M.load_run_provenance(runs["els"])
    rep = M.mosaic_report(rp, bank=tiny_bank, out_dir=tmp_path, samples=[0, 2], max_pngs=1)
    assert rep.patch_size == 3 and rep.sample_ids.tolist() == [0, 2]
    assert (rep.distinct_sources > 1).all()            # ELS makes mosaics of many training images
    assert ((rep.consistency >= 0) & (rep.consistency <= 1)).all()
    assert rep.consistency.mean() > 0.5                 # Theorem 4.1, approximately at the last step's noise
    assert len(rep.pngs) == 1
    s = rep.summary()
    assert s["num_samples"] == 2 and "mean_local_consistency" in s
    with pytest.raises(ElscliError, match="positions"):
        M.mosaic_report(rp, samples=[5])
    other = type(tiny_bank).from_arrays(tiny_bank.images[:4])
    with pytest.raises(ElscliError, match="content hash"):
        M.mosaic_report(rp, bank=other)


def test_run_without_provenance(tmp_path):
    from elscli.runs import Run

    p = tmp_path / "r.h5"
    arrays = {"sample_ids": np.zeros(1, np.int64), "done": np.ones(1, bool), "seeds": np.zeros((1, 1, 4, 4), np.float32),
              "labels": np.full(1, -1, np.int64), "times": np.array([1.0, 0.0]), "patch_sizes": np.array([3]),
              "final": np.zeros((1, 1, 4, 4), np.float32)}          # a complete run file, but no prov_* datasets
    Run(arrays, {"format": "elscli.run", "machine": "ls"}).save(p)
    with pytest.raises(ElscliError, match="no provenance"):
        M.mosaic_report(M.load_run_provenance(p))
