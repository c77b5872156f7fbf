"""locality-scan: calibration recovers a known schedule; aggregation; shards and merge; scan files; sweep."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elscli import machines
from elscli import reference as R
from elscli.analysis import aggregate as A
from elscli.analysis import scan as S
from elscli.analysis import scan_merge
from elscli.analysis import sweep as W
from elscli.shards import parse_shard
from elscli.errors import ElscliError
from elscli.noise import scales, time_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"

# The "network" of the calibration test: a machine with this schedule (step start time -> P).
TRUE_SCHEDULE = [9, 7, 5, 5, 3]  # for the 5-step grid 1.0, 0.8, 0.6, 0.4, 0.2
CANDIDATES = [3, 5, 7, 9, 11]


@pytest.fixture(scope="module")
def tiny_bank():
    """24 MNIST digits (golden bank), centre 16x16 crop: small enough for every machine in a second."""
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return np.ascontiguousarray(np.load(GOLDEN)["bank_images"][:24, :, 8:24, 8:24])


def machine_eps_fn(machine, bank, schedule, times, noise_schedule="cosine-legacy"):
    """eps_fn of a score machine following a locality schedule: eps = (x - a·x0_hat)/b."""
    by_time = {round(float(t), 9): p for t, p in zip(times[:-1], schedule)}

    def eps_fn(x, t, labels):
        a, b = scales(t, noise_schedule)
        x0 = machines.denoise(machine, x, t, bank, by_time[round(float(t), 9)], noise_schedule=noise_schedule)
        return (x - a * x0) / b

    return eps_fn


@pytest.fixture(scope="module")
def recorded(tiny_bank):
    """Reference trajectories recorded from each machine with TRUE_SCHEDULE, 6 samples, 5 steps."""
    seeds = np.random.default_rng(1).standard_normal((6, 1, 16, 16)).astype(np.float32)
    times = time_grid(5)
    return {m: R.record(machine_eps_fn(m, tiny_bank, TRUE_SCHEDULE, times), seeds, times)
            for m in ("els", "bbels", "ls")}


@pytest.mark.parametrize("machine", ["els", "bbels", "ls"])
def test_calibration_recovers_known_schedule(recorded, tiny_bank, machine):
    sc = S.scan(recorded[machine], tiny_bank, machine, CANDIDATES)
    assert (sc.best == np.array(TRUE_SCHEDULE)[None, :]).all()
    sched = sc.schedule("median").to_dict()
    assert sched["patch_sizes"] == TRUE_SCHEDULE
    np.testing.assert_allclose(sched["times"], time_grid(5)[:-1])
    assert sc.schedule("mode").to_dict()["patch_sizes"] == TRUE_SCHEDULE
    # the true size scores (numerically) a perfect cosine
    k = [CANDIDATES.index(p) for p in TRUE_SCHEDULE]
    np.testing.assert_allclose(sc.similarity[:, k, np.arange(5)], 1.0, atol=1e-6)


@pytest.mark.parametrize("noise_schedule", ["linear", "edm"])
def test_scan_runs_on_the_references_noise_schedule(tiny_bank, noise_schedule):
    """A network trained on another noise schedule is scanned with the machines on that schedule (issue 16):
    a machine recorded on it is recovered with a perfect cosine, which the cosine-legacy scales would miss."""
    seeds = np.random.default_rng(2).standard_normal((3, 1, 16, 16)).astype(np.float32)
    times = time_grid(5)
    ref = R.record(machine_eps_fn("bbels", tiny_bank, TRUE_SCHEDULE, times, noise_schedule), seeds, times,
                   noise_schedule=noise_schedule, sampler="heun")
    sc = S.scan(ref, tiny_bank, "bbels", CANDIDATES)
    assert sc.noise_schedule == noise_schedule
    assert sc.schedule().to_dict()["patch_sizes"] == TRUE_SCHEDULE
    k = [CANDIDATES.index(p) for p in TRUE_SCHEDULE]
    np.testing.assert_allclose(sc.similarity[:, k, np.arange(5)], 1.0, atol=1e-6)


def test_calibration_l2_metric(recorded, tiny_bank):
    sc = S.scan(recorded["els"], tiny_bank, "els", CANDIDATES, metric="l2")
    assert not sc.higher_is_better
    assert sc.schedule().to_dict()["patch_sizes"] == TRUE_SCHEDULE


def test_schedule_json_drives_sampling(recorded, tiny_bank, tmp_path):
    """The written schedule, read back by the schedule module, gives the true sizes on the grid."""
    from elscli.schedule import load_schedule

    sc = S.scan(recorded["bbels"], tiny_bank, "bbels", CANDIDATES)
    p = tmp_path / "s.json"
    sc.schedule().save(p)
    assert load_schedule(str(p)).for_grid(time_grid(5)).tolist() == TRUE_SCHEDULE


def test_shards_merge_to_the_full_scan(recorded, tiny_bank, tmp_path):
    ref = recorded["ls"]
    full = S.scan(ref, tiny_bank, "ls", CANDIDATES)
    parts = []
    for i in range(3):
        part = S.scan(ref, tiny_bank, "ls", CANDIDATES, shard=(i, 3))
        assert part.sample_index.tolist() == list(range(i, 6, 3)) and not part.complete
        part.write(tmp_path / f"scan-{i}.h5")
        parts.append(S.Scan.read(tmp_path / f"scan-{i}.h5"))
    merged = scan_merge.merge(parts[::-1])
    assert merged.complete
    np.testing.assert_array_equal(merged.sample_index, np.arange(6))
    np.testing.assert_allclose(merged.similarity, full.similarity)
    d = S.describe_scan(tmp_path / "scan-1.h5")
    assert d["samples"] == 2 and d["reference_samples"] == 6 and not d["complete"] and d["machine"] == "ls"
    assert d["candidates"] == CANDIDATES
    with pytest.raises(ElscliError, match="overlap"):
        scan_merge.merge([parts[0], parts[0]])
    other = S.scan(ref, tiny_bank, "ls", CANDIDATES, shard=(0, 3), metric="l2")
    with pytest.raises(ElscliError, match="metric"):
        scan_merge.merge([parts[1], other])
    # a shard of the same seeds and grid recorded on another noise schedule (issue 16): one line naming both
    import dataclasses
    relabelled = dataclasses.replace(parts[0], noise_schedule="linear")
    with pytest.raises(ElscliError, match="noise_schedule: 'cosine-legacy' vs 'linear'"):
        scan_merge.merge([parts[1], relabelled])


def test_aggregation_lower_median_and_mode():
    assert A.lower_median([3, 5, 7, 9]) == 5           # torch.median: the lower of the two middle values
    assert A.lower_median([9, 3, 5]) == 5
    assert A.mode([3, 3, 5, 5, 7]) == 3                # ties: the smaller
    best = np.array([[3, 9], [5, 9], [7, 3], [9, 3]])
    np.testing.assert_array_equal(A.aggregate(best, "median"), [5, 3])
    with pytest.raises(ElscliError, match="aggregate"):
        A.aggregate(best, "mean")


def test_parse_candidates():
    assert S.parse_candidates("3:9") == [3, 5, 7, 9]
    assert S.parse_candidates("7,3,5,3") == [3, 5, 7]
    assert S.parse_candidates("3-7,11") == [3, 5, 7, 11]
    for bad in ("3,4", "4:8", "x", "", "-3"):
        with pytest.raises(ElscliError):
            S.parse_candidates(bad)
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ElscliError):
        parse_shard("4/4")


def test_scan_refuses_bad_input(recorded, tiny_bank):
    ref = recorded["els"]
    with pytest.raises(ElscliError, match="shape"):
        S.scan(ref, np.zeros((2, 1, 8, 8), np.float32), "els", [3])
    noeps = R.Reference(seeds=ref.seeds, times=ref.times, x=ref.x, eps=None, labels=ref.labels)
    with pytest.raises(ElscliError, match="no 'eps'"):
        S.scan(noeps, tiny_bank, "els", [3])
    with pytest.raises(ElscliError, match="odd"):
        S.scan(ref, tiny_bank, "els", [3, 4])
    with pytest.raises(ElscliError, match="metric"):
        S.scan(ref, tiny_bank, "els", [3], metric="dot")


def test_swappable_evaluator(recorded, tiny_bank):
    """The per-step evaluation of all candidates is one call that can be replaced (e.g. a multi-P kernel)."""
    calls = []

    def evaluate(x, t, cands, label):
        calls.append((x.shape[0], t, tuple(cands), label))
        return np.stack([machines.denoise("els", x, t, tiny_bank, p) for p in cands])

    sc = S.scan(recorded["els"], tiny_bank, "els", CANDIDATES, evaluator=evaluate)
    assert len(calls) == 5 and calls[0] == (6, 1.0, tuple(CANDIDATES), None)
    assert sc.schedule().to_dict()["patch_sizes"] == TRUE_SCHEDULE


def test_sweep_memorisation_curve(tiny_bank):
    """LS with a window covering the whole image is IS: it copies training images; small windows create."""
    from elscli.bank import Bank

    bank = Bank.from_arrays(tiny_bank[:8])
    pts = W.sweep(bank, "ls", [3, 31], num_samples=4, seed=0, steps=10)
    assert [p.patch_size for p in pts] == [3, 31]
    assert pts[1].copy_fraction == 1.0 and pts[1].mean_nn_rms < 0.05
    assert pts[0].copy_fraction < 1.0 and pts[0].mean_nn_rms > pts[1].mean_nn_rms
    assert np.isfinite(pts[0].mean_entropy) and pts[0].mean_entropy >= 0
