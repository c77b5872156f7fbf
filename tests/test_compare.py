"""compare: metrics against hand-computed values, matching by seeds, refusals, baseline fractions, nearest."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from elscli.analysis import compare as C
from elscli.analysis.nearest import nearest
from elscli.errors import ElscliError
from elscli.noise import time_grid


def outputs(name, seeds, final, times=None, kind="run", machine="bbels"):
    times = time_grid(4) if times is None else times
    return C.Outputs(name=name, kind=kind, machine=machine, seeds=np.asarray(seeds, np.float32),
                     final=np.asarray(final, np.float32), times=times, labels=np.full(len(seeds), -1))


def write_run(path, seeds, final, machine="bbels", times=None, done=None):
    """A minimal elscli.run file per formats.md (as other tools write it)."""
    S = len(seeds)
    times = time_grid(4) if times is None else times
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "elscli.run"
        f.attrs["schema_version"] = 1
        f.attrs["machine"] = machine
        f["sample_ids"] = np.arange(S)
        f["done"] = np.ones(S, bool) if done is None else done
        f["seeds"] = np.asarray(seeds, np.float32)
        f["labels"] = np.full(S, -1)
        f["times"] = times
        f["patch_sizes"] = np.full(len(times) - 1, 3)
        f["final"] = np.asarray(final, np.float32)


def test_metrics_hand_computed():
    a = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    b = np.array([[1.0, 3.0, 2.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    m = C.sample_metrics(a, b)
    # [1,2,3] vs [1,3,2]: centred [-1,0,1]·[-1,1,0] = 1, norms sqrt2·sqrt2 -> r = 0.5; cosine 13/14; MSE 2/3
    np.testing.assert_allclose(m["r"], [0.5, 1.0, -1.0, 0.0])
    np.testing.assert_allclose(m["r2"], [0.25, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(m["cosine"], [13 / 14, 1.0, 10 / 14, 3 / np.sqrt(0.75 * 14)])
    np.testing.assert_allclose(m["mse"], [2 / 3, 14 / 3, 8 / 3, (0.25 + 2.25 + 6.25) / 3])


def test_metrics_over_all_pixels_and_channels():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4, 5))
    b = a + 0.3 * rng.standard_normal(a.shape)
    m = C.sample_metrics(a, b)
    for s in range(2):
        np.testing.assert_allclose(m["r"][s], np.corrcoef(a[s].ravel(), b[s].ravel())[0, 1])


def test_summarize_quartiles():
    s = C.summarize(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert (s["median"], s["q1"], s["q3"], s["mean"]) == (3.0, 2.0, 4.0, 3.0)


def test_matching_by_seeds_not_position():
    rng = np.random.default_rng(1)
    seeds = rng.standard_normal((5, 1, 4, 4))
    ref_final = rng.standard_normal((5, 1, 4, 4))
    perm = np.array([3, 0, 4, 1, 2])
    mach_final = ref_final + 0.1 * rng.standard_normal(ref_final.shape)
    ref = outputs("net", seeds, ref_final, kind="reference", machine=None)
    shuffled = outputs("m", seeds[perm], mach_final[perm])
    comp = C.compare(ref, [shuffled])
    expected = C.sample_metrics(ref_final, mach_final)["r2"]
    np.testing.assert_allclose(comp.metrics["m"]["r2"], expected[comp.ref_index])
    np.testing.assert_array_equal(comp.ref_index, np.arange(5))


def test_subset_and_baseline_fraction():
    rng = np.random.default_rng(2)
    seeds = rng.standard_normal((4, 1, 3, 3))
    ref_final = rng.standard_normal((4, 1, 3, 3))
    good = ref_final + 0.05 * rng.standard_normal(ref_final.shape)
    bad = rng.standard_normal(ref_final.shape)
    bad[0] = ref_final[0]  # the baseline wins on sample 0 only
    ref = outputs("net", seeds, ref_final, kind="reference", machine=None)
    comp = C.compare(ref, [outputs("els", seeds, good)], baseline=outputs("is", seeds, bad, machine="is"))
    s = comp.summary()
    assert s["inputs"]["els"]["fraction_beats_baseline"] == pytest.approx(0.75)
    assert "fraction_beats_baseline" not in s["inputs"]["is"]
    # a run holding a subset of the samples: compared on the common ones, with a warning
    comp = C.compare(ref, [outputs("els", seeds[1:3], good[1:3])])
    np.testing.assert_array_equal(comp.ref_index, [1, 2])


def test_refusals_and_time_grid_warning():
    rng = np.random.default_rng(3)
    seeds = rng.standard_normal((3, 1, 4, 4))
    fin = rng.standard_normal((3, 1, 4, 4))
    ref = outputs("net", seeds, fin, kind="reference", machine=None)
    with pytest.raises(ElscliError, match="match no sample"):
        C.compare(ref, [outputs("m", seeds + 0.01, fin)])
    with pytest.raises(ElscliError, match="shape"):
        C.compare(ref, [outputs("m", seeds[:, :, :2], fin[:, :, :2])])
    comp = C.compare(ref, [outputs("m", seeds, fin, times=np.linspace(0.95, 0, 20))])
    assert any("time grids differ" in w for w in comp.warnings)
    np.testing.assert_allclose(comp.metrics["m"]["r2"], 1.0)


def test_clamp():
    seeds = np.random.default_rng(4).standard_normal((1, 1, 1, 3))
    ref = outputs("net", seeds, [[[[-1.5, 0.0, 1.5]]]], kind="reference", machine=None)
    m = outputs("m", seeds, [[[[-1.0, 0.0, 1.0]]]])
    assert C.compare(ref, [m]).metrics["m"]["mse"][0] == pytest.approx(0.5 / 3)
    assert C.compare(ref, [m], clamp=True).metrics["m"]["mse"][0] == 0.0


def test_compare_files(tmp_path):
    rng = np.random.default_rng(5)
    seeds = rng.standard_normal((4, 1, 4, 4)).astype(np.float32)
    net_x = rng.standard_normal((4, 5, 1, 4, 4)).astype(np.float32)
    net_x[:, 0] = seeds
    np.savez(tmp_path / "net.npz", seeds=seeds, times=time_grid(4), x=net_x,
             eps=np.zeros((4, 4, 1, 4, 4), np.float32), schedule=np.array("cosine-legacy"))
    write_run(tmp_path / "els.h5", seeds[::-1], net_x[::-1, -1] * 0.5 + 0.1)
    done = np.array([True, True, True, False])
    write_run(tmp_path / "is.h5", seeds, rng.standard_normal((4, 1, 4, 4)), machine="is", done=done)
    comp = C.compare_files([tmp_path / "net.npz", tmp_path / "els.h5"], baseline=tmp_path / "is.h5")
    np.testing.assert_allclose(comp.metrics["els"]["r"], 1.0, atol=1e-6)
    assert len(comp.ref_index) == 3  # the unfinished IS row is not compared
    assert comp.others[0].machine == "bbels" and comp.reference.kind == "reference"
    with pytest.raises(ElscliError, match="at least two"):
        C.compare_files([tmp_path / "net.npz"])


def test_nearest_hand_computed():
    bank = np.zeros((3, 1, 2, 2))
    bank[1] = 0.5
    bank[2] = [[[1.0, -1.0], [1.0, -1.0]]]
    samples = np.stack([bank[1] + 0.01, bank[2] * 0.6]).astype(np.float64)
    nn = nearest(samples, bank.astype(np.float32), np.array([7, 8, 9]))
    np.testing.assert_array_equal(nn.nearest_l2, [1, 2])
    np.testing.assert_allclose(nn.rms, [0.01, 0.4])
    np.testing.assert_array_equal(nn.is_copy, [True, False])
    # sample 0: d(bank1) = 0.02, d(bank0) = 2*0.51 = 1.02 -> ratio 0.02/1.02
    np.testing.assert_allclose(nn.ratio[0], 0.02 / 1.02)
    # sample 1: d(bank2) = 2*0.4 = 0.8, d(bank0) = 2*0.6 = 1.2 -> ratio 2/3
    np.testing.assert_allclose(nn.ratio[1], 2 / 3)
    assert nn.nearest_corr[1] == 2 and nn.corr[1] == pytest.approx(1.0)
    assert nn.nearest_label.tolist() == [8, 9]
    assert nn.summary()["copy_fraction"] == 0.5


def test_nearest_chunks_agree_and_shape_check():
    rng = np.random.default_rng(6)
    bank = rng.uniform(-1, 1, (50, 1, 3, 3)).astype(np.float32)
    samples = bank[[4, 17, 33]] + 0.001
    a = nearest(samples, bank, chunk=7)
    b = nearest(samples, bank)
    np.testing.assert_array_equal(a.nearest_l2, [4, 17, 33])
    np.testing.assert_allclose(a.ratio, b.ratio)
    assert a.is_copy.all()
    with pytest.raises(ElscliError, match="shape"):
        nearest(samples[:, :, :2], bank)


def test_nearest_ratio_ignores_copies_of_the_nearest_image():
    """A training image stored twice (or three times) is still the one the sample copies: the ratio is its
    distance over the distance to the nearest *different* image, not 1."""
    rng = np.random.default_rng(7)
    base = rng.uniform(-1, 1, (5, 1, 4, 4)).astype(np.float32)
    sample = base[[2]] + 0.01
    d = np.sqrt(((base.astype(np.float64) - sample) ** 2).sum(axis=(1, 2, 3)))
    want = d[2] / np.sort(d)[1]
    assert want < 0.1
    for bank in (base, base[[0, 2, 1, 2, 3, 4]], base[[2, 2, 2, 0, 1, 3, 4]], base[[0, 1, 3, 4, 2, 2]]):
        first = int(np.flatnonzero((bank == base[2]).all(axis=(1, 2, 3)))[0])
        for chunk in (1, 2, 3, 4096):
            nn = nearest(sample, bank, chunk=chunk)
            assert nn.nearest_l2[0] == first                   # the first copy in bank order
            np.testing.assert_allclose(nn.ratio[0], want, rtol=1e-9)
    same = nearest(sample, np.repeat(base[[2]], 3, axis=0))    # every training image the same: no ratio
    assert np.isnan(same.ratio[0]) and np.isnan(same.summary()["median_ratio"])


def test_noise_schedules_must_agree(tmp_path):
    """A machine run on one noise schedule says nothing about a network sampled on another: one line naming
    both (issue 16), whether the inputs are runs or references."""
    rng = np.random.default_rng(6)
    seeds = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    net_x = rng.standard_normal((2, 5, 1, 4, 4)).astype(np.float32)
    net_x[:, 0] = seeds
    np.savez(tmp_path / "net.npz", seeds=seeds, times=time_grid(4), x=net_x, schedule=np.array("linear"))
    write_run(tmp_path / "els.h5", seeds, net_x[:, -1])                          # cosine-legacy
    with pytest.raises(ElscliError, match="noise schedules differ: net was sampled with 'linear', "
                                          "els with 'cosine-legacy'") as exc:
        C.compare_files([tmp_path / "net.npz", tmp_path / "els.h5"])
    assert "\n" not in str(exc.value)
    np.savez(tmp_path / "other.npz", seeds=seeds, times=time_grid(4), x=net_x, schedule=np.array("edm"))
    with pytest.raises(ElscliError, match="'linear', other with 'edm'"):
        C.compare_files([tmp_path / "net.npz", tmp_path / "other.npz"])
    np.savez(tmp_path / "twin.npz", seeds=seeds, times=time_grid(4), x=net_x, schedule=np.array("linear"))
    comp = C.compare_files([tmp_path / "net.npz", tmp_path / "twin.npz"])       # the same schedule: compared
    np.testing.assert_allclose(comp.metrics["twin"]["r2"], 1.0)
