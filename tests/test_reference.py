"""Reference trajectories: reading the real fixture, recording with any eps_fn, NPZ/HDF5 round trips, bad files."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from elscli import reference as R
from elscli.errors import ElscliError
from elscli.noise import scales, time_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REF_NPZ = SHARED / "reference-resnet-mnist" / "trajectories.npz"


@pytest.fixture(scope="module")
def real_ref():
    if not REF_NPZ.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return R.read(REF_NPZ)


def test_read_real_reference(real_ref):
    assert real_ref.num_samples == 32 and real_ref.num_steps == 20
    assert real_ref.image_shape == (1, 32, 32)
    assert real_ref.schedule == "cosine-legacy"
    assert np.all(real_ref.labels == -1)
    np.testing.assert_array_equal(real_ref.x[:, 0], real_ref.seeds)
    assert "model" in real_ref.attrs
    # the stored states follow deterministic DDIM from the stored eps (our step is the network's step)
    for i in range(real_ref.num_steps):
        nxt, _ = R.ddim_step(real_ref.x[:, i].astype(np.float64), real_ref.eps[:, i].astype(np.float64),
                             real_ref.times[i], real_ref.times[i + 1])
        np.testing.assert_allclose(nxt, real_ref.x[:, i + 1], atol=1e-5)
    s = real_ref.score(3)
    _, b = scales(real_ref.times[3])
    np.testing.assert_allclose(s, -real_ref.eps[:, 3] / b, rtol=1e-6)


def test_record_hand_computed(tmp_path):
    """eps = 0 makes DDIM a pure rescaling: x_{i+1} = a(t_{i+1}) / a(t_i) * x_i; the last step returns x/a."""
    seeds = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32)
    times = time_grid(4)
    calls = []

    def eps_fn(x, t, labels):
        calls.append((x.dtype, t, labels.tolist()))
        return np.zeros_like(x)

    ref = R.record(eps_fn, seeds, times, labels=[1, -1, 2], path=tmp_path / "r.npz")
    a = [scales(t)[0] for t in times]
    for i in range(4):
        np.testing.assert_allclose(ref.x[:, i + 1], ref.x[:, i].astype(np.float64) * a[i + 1] / a[i], rtol=1e-5)
    assert calls[0] == (np.float64, 1.0, [1, -1, 2]) and len(calls) == 4
    back = R.read(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.x, ref.x)
    np.testing.assert_array_equal(back.eps, 0)
    np.testing.assert_array_equal(back.labels, [1, -1, 2])
    np.testing.assert_array_equal(back.times, times)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_record_round_trip_and_batches(tmp_path, suffix):
    rng = np.random.default_rng(1)
    seeds = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    W = rng.standard_normal((18, 18)) * 0.1

    def eps_fn(x, t, labels):  # any deterministic per-sample function
        return np.tanh((x.reshape(len(x), -1) @ W) * t).reshape(x.shape)

    p = tmp_path / f"ref{suffix}"
    full = R.record(eps_fn, seeds, time_grid(6), path=p)
    batched = R.record(eps_fn, seeds, time_grid(6), batch_size=2)
    np.testing.assert_allclose(full.x, batched.x, rtol=1e-6)
    back = R.read(p)
    np.testing.assert_array_equal(back.x, full.x)
    np.testing.assert_array_equal(back.eps, full.eps)
    assert back.schedule == "cosine-legacy"
    assert R.is_reference_file(p)
    with pytest.raises(ElscliError, match="exists"):
        R.record(eps_fn, seeds, time_grid(6), path=p)
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary files left behind


def test_reference_without_eps(tmp_path):
    p = tmp_path / "noeps.npz"
    np.savez(p, seeds=np.zeros((2, 1, 4, 4), np.float32), times=time_grid(2),
             x=np.zeros((2, 3, 1, 4, 4), np.float32))
    ref = R.read(p)
    assert ref.eps is None
    with pytest.raises(ElscliError, match="no 'eps'"):
        ref.require_eps()


@pytest.mark.parametrize("bad,match", [
    ({"times": np.array([1.0, 0.5, 0.6, 0.0])}, "descending"),
    ({"x": np.zeros((2, 2, 1, 4, 4), np.float32)}, "'x' has shape"),
    ({"eps": np.zeros((2, 3, 1, 4, 4), np.float32)}, "'eps' has shape"),
    ({"labels": np.zeros(3, np.int64)}, "'labels'"),
    ({"seeds": np.zeros((2, 4, 4), np.float32)}, "'seeds'"),
    ({"schedule": np.array("linear")}, "unknown noise schedule"),
])
def test_bad_reference_files(tmp_path, bad, match):
    d = {"seeds": np.zeros((2, 1, 4, 4), np.float32), "times": time_grid(2),
         "x": np.zeros((2, 3, 1, 4, 4), np.float32), "eps": np.zeros((2, 2, 1, 4, 4), np.float32)}
    d.update(bad)
    np.savez(tmp_path / "bad.npz", **d)
    with pytest.raises(ElscliError, match=match):
        R.read(tmp_path / "bad.npz")


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ElscliError, match="does not exist"):
        R.read(tmp_path / "nope.npz")
    with h5py.File(tmp_path / "bank.h5", "w") as f:
        f.attrs["format"] = "elscli.bank"
    with pytest.raises(ElscliError, match="not a reference"):
        R.read(tmp_path / "bank.h5")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ElscliError, match="not a readable NPZ"):
        R.read(tmp_path / "junk.npz")


def test_record_rejects_bad_input():
    with pytest.raises(ElscliError, match="seeds"):
        R.record(lambda x, t, l: x, np.zeros((2, 4, 4)), time_grid(2))
    with pytest.raises(ElscliError, match="eps_fn returned shape"):
        R.record(lambda x, t, l: x[:, :1, :2], np.zeros((2, 1, 4, 4)), time_grid(2))
    with pytest.raises(ElscliError, match="descending"):
        R.record(lambda x, t, l: x, np.zeros((2, 1, 4, 4)), [0.0, 1.0])
