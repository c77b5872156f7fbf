"""Reference trajectories: reading the real fixture, recording with any eps_fn, NPZ/HDF5 round trips, bad files."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from elscli import reference as R
from elscli.errors import ElscliError
from elscli.noise import make_grid, scales, time_grid
from elscli.sampler import ddim

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
    # written before samplers were recorded: read as deterministic DDIM on the uniform grid
    assert (real_ref.sampler, real_ref.eta, real_ref.grid, real_ref.evaluations) == ("ddim", 0.0, "uniform", 20)
    assert real_ref.noise is None and not real_ref.stochastic
    # the stored states follow elscli's DDIM step from the stored eps (our step is the network's step):
    # one step from the stored x[:, i], on the grid (t_i, t_i+1, 0), with the denoiser of the stored eps
    T = real_ref.num_steps
    for i in range(T):
        grid = real_ref.times[[i, i + 1]] if i == T - 1 else np.r_[real_ref.times[[i, i + 1]], 0.0]
        eps = real_ref.eps[:, i].astype(np.float64)

        def replay(x, t, _eps=eps, _t=real_ref.times[i]):
            a, b = scales(_t)
            return (x - b * _eps) / a if t == _t else x

        steps = []
        ddim(replay, real_ref.x[:, i], grid, callback=steps.append)
        np.testing.assert_allclose(steps[0].x_next, real_ref.x[:, i + 1], atol=1e-5)
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
    ({"schedule": np.array("quadratic")}, "unknown noise schedule 'quadratic'"),
    ({"sampler": np.array("dpm++")}, "unknown sampler 'dpm\\+\\+'"),
    ({"eta": np.array(1.5)}, r"eta must lie in \[0, 1\]"),
    ({"sampler": np.array("heun"), "eta": np.array(0.5)}, "ddim sampler only"),
    ({"eta": np.array(1.0), "noise": np.zeros((2, 3, 1, 4, 4), np.float32)}, "'noise' has shape"),
    ({"noise": np.zeros((2, 2, 1, 4, 4), np.float32)}, "injects none"),
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


# ------------------------------------------------------------------------------------------------------
# Recording with any schedule and sampler
# ------------------------------------------------------------------------------------------------------
from elscli.sampler import StreamNoise, run_sampler, sample_streams  # noqa: E402


def smooth_eps(shape):
    """A deterministic per-sample noise predictor (elementwise, so batches cannot change it)."""
    w = np.random.default_rng(3).standard_normal(shape) * 0.2

    def eps_fn(x, t, labels):
        return np.tanh(x * (0.5 + t) + w) + 0.01 * labels[:, None, None, None]
    return eps_fn


@pytest.mark.parametrize("schedule", ["cosine-legacy", "cosine", "linear", "edm"])
@pytest.mark.parametrize("sampler, eta, grid", [("ddim", 0.0, "uniform"), ("ddim", 1.0, "edm"),
                                                 ("ddim", 0.4, "uniform"), ("euler", 0.0, "edm"),
                                                 ("heun", 0.0, "edm")])
def test_record_follows_the_sampler(tmp_path, schedule, sampler, eta, grid):
    """The recorded x is the sampler's own trajectory on the denoiser (x - b eps)/a; eps is the prediction at
    (x[:, i], times[i]); the injected noise is each sample's own stream; the file keeps all of it."""
    shape = (2, 3, 3)
    eps_fn = smooth_eps(shape)
    std = R.get_noise_schedule(schedule).prior_std(1.0)
    start, _ = sample_streams(range(4), 9, shape)
    seeds = (start * std).astype(np.float32)
    labels = np.array([-1, 0, 1, -1])
    stochastic = eta > 0
    ref = R.record(eps_fn, seeds, labels=labels, path=tmp_path / "r.h5", noise_schedule=schedule,
                   sampler=sampler, eta=eta, grid=grid, steps=6, noise_seed=9 if stochastic else None)
    times = make_grid(grid, 6, schedule)
    np.testing.assert_array_equal(ref.times, times)

    def denoiser(x, t):
        a, b = scales(t, schedule)
        return (x - b * eps_fn(x, t, labels)) / a

    seen = []
    gens = sample_streams(range(4), 9, shape)[1]
    final = run_sampler(sampler, denoiser, seeds, times, noise_schedule=schedule, eta=eta,
                        noise=StreamNoise(gens) if stochastic else None, callback=seen.append)
    np.testing.assert_array_equal(ref.x[:, -1], final.astype(np.float32))
    for st in seen:
        np.testing.assert_array_equal(ref.x[:, st.index + 1], st.x_next.astype(np.float32))
        np.testing.assert_array_equal(ref.eps[:, st.index], eps_fn(st.x, st.t, labels).astype(np.float32))
        if stochastic and not st.is_last:
            np.testing.assert_array_equal(ref.noise[:, st.index], st.noise)
    back = R.read(tmp_path / "r.h5")
    assert (back.schedule, back.sampler, back.eta, back.grid) == (schedule, sampler, eta, grid)
    assert back.evaluations == (11 if sampler == "heun" else 6)
    if stochastic:
        assert back.noise_seed == 9 and back.stochastic
        np.testing.assert_array_equal(back.noise, ref.noise)
        np.testing.assert_array_equal(back.noise[:, -1], 0)
    else:
        assert back.noise is None and back.noise_seed is None


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_stochastic_record_is_batch_independent_and_replayable(tmp_path, suffix):
    """Bitwise the same reference for any batch size; a denoiser replaying the file's noise (as a machine run
    --from-seeds does) retraces the network's trajectory bit for bit."""
    shape = (1, 4, 4)
    eps_fn = smooth_eps(shape)
    start, _ = sample_streams(range(5), 2, shape)
    seeds = start.astype(np.float32)
    kw = dict(noise_schedule="linear", sampler="ddim", eta=1.0, noise_seed=2)
    full = R.record(eps_fn, seeds, path=tmp_path / f"r{suffix}", **kw)
    for bs in (1, 2, 3):
        part = R.record(eps_fn, seeds, batch_size=bs, **kw)
        np.testing.assert_array_equal(part.x, full.x)
        np.testing.assert_array_equal(part.noise, full.noise)
    back = R.read(tmp_path / f"r{suffix}", load_trajectories=False)
    assert back.x is None and back.noise is not None      # the noise is read even without the trajectories
    labels = np.full(5, -1)

    def denoiser(x, t):
        a, b = scales(t, "linear")
        return (x - b * eps_fn(x, t, labels)) / a

    from elscli.sampler import RecordedNoise
    again = ddim(denoiser, back.seeds, back.times, noise_schedule="linear", eta=1.0,
                 noise=RecordedNoise(back.require_noise()))
    np.testing.assert_array_equal(again.astype(np.float32), full.x[:, -1])
    # given noise= instead of a seed, the same file
    same = R.record(eps_fn, seeds, noise=full.noise, noise_schedule="linear", eta=1.0)
    np.testing.assert_array_equal(same.x, full.x)
    assert same.noise_seed is None


def test_record_noise_is_the_samples_own_stream():
    """Sample j's injected noise is default_rng([sample_ids[j], noise_seed]) after its starting noise."""
    shape = (1, 2, 2)
    ref = R.record(smooth_eps(shape), np.zeros((2,) + shape, np.float32), noise_schedule="cosine", eta=1.0,
                   noise_seed=5, sample_ids=[10, 3], steps=3)
    for j, i in enumerate([10, 3]):
        g = np.random.default_rng([i, 5])
        g.standard_normal(shape)
        for k in range(2):
            np.testing.assert_array_equal(ref.noise[j, k], g.standard_normal(shape).astype(np.float32))


def test_stochastic_reference_without_noise_cannot_be_followed(tmp_path):
    p = tmp_path / "s.npz"
    np.savez(p, seeds=np.zeros((2, 1, 4, 4), np.float32), times=time_grid(2), eta=np.array(1.0),
             x=np.zeros((2, 3, 1, 4, 4), np.float32))
    ref = R.read(p)
    assert ref.stochastic
    with pytest.raises(ElscliError, match="holds no 'noise'"):
        ref.require_noise()


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise_schedule="vp"), "unknown noise schedule 'vp'"),
    (dict(sampler="lms"), "unknown sampler 'lms'"),
    (dict(eta=2.0), r"eta must lie in \[0, 1\]"),
    (dict(sampler="heun", eta=1.0, noise_seed=0), "ddim sampler only"),
    (dict(eta=1.0), "give each sample's noise"),
    (dict(eta=1.0, noise_seed=0, noise=np.zeros((2, 2, 1, 4, 4))), "give each sample's noise"),
    (dict(eta=1.0, noise=np.zeros((2, 3, 1, 4, 4))), "noise must have shape"),
    (dict(eta=1.0, noise_seed=-1), "noise_seed must be a non-negative integer"),
    (dict(noise_seed=0), "injects no noise"),
    (dict(grid="karras"), "unknown grid 'karras'"),
    (dict(times=[1.0, 0.3, 0.5, 0.0]), "descending"),
    (dict(times=time_grid(2), grid="edm"), "not both"),
    (dict(sample_ids=[1, 2, 3]), "sample_ids must have shape"),
    (dict(batch_size=0.5), "batch_size must be a positive integer"),
    (dict(steps="many"), "--steps must be a positive integer"),
    (dict(eta=1.0, noise_seed="x"), "noise_seed must be a non-negative integer"),
])
def test_record_bad_input_writes_nothing(tmp_path, kwargs, match):
    kwargs = dict(kwargs)
    times = kwargs.pop("times", None)
    if "grid" not in kwargs and "steps" not in kwargs and times is None:
        kwargs["steps"] = 2
    with pytest.raises(ElscliError, match=match) as exc:
        R.record(lambda x, t, l: x, np.zeros((2, 1, 4, 4)), times, path=tmp_path / "r.npz", **kwargs)
    assert "\n" not in str(exc.value)
    assert not list(tmp_path.iterdir())
