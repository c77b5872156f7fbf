"""The Python API of sampling: run files, reproducibility, resume, merge, from-seeds, the real machines."""
import json
import os
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

import elscli
from elscli import machines, runs
from elscli.cli import environment
from elscli.runs import denoiser as runs_denoiser
from elscli.bank import Bank, build_bank
from elscli.errors import ElscliError
from elscli.noise import scales, time_grid
from elscli.sampler import ddim
from elscli.schedule import load_schedule

from oracle import oracle_denoise

REPO = Path(__file__).resolve().parents[1]
RUN_DATASETS = ("sample_ids", "done", "seeds", "labels", "times", "patch_sizes", "final", "prov_image", "prov_row",
                "prov_col", "prov_weight", "prov_entropy")


@pytest.fixture(scope="session")
def sample_bank() -> Bank:
    """The bundled sample data (1,000 MNIST digits, 32x32)."""
    bank, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    return bank


def sub_bank(full: Bank, per_class=3, classes=(0, 1, 2, 3), lo=8, hi=24) -> Bank:
    idx = np.concatenate([full.indices_for(c)[:per_class] for c in classes])
    return Bank.from_arrays(np.ascontiguousarray(full.codes[idx][:, :, lo:hi, lo:hi]), full.labels[idx])


@pytest.fixture(scope="session")
def small(sample_bank) -> Bank:
    """12 digits of 4 classes, centre-cropped to 16x16: real data, fast machines."""
    return sub_bank(sample_bank)


def assert_runs_equal(a: runs.Run, b: runs.Run, names=RUN_DATASETS):
    for k in names:
        x, y = np.asarray(a.arrays[k]), np.asarray(b.arrays[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k


# ------------------------------------------------------------------------------------------ seeding
def test_initial_noise_is_the_documented_generator():
    noise, label = runs.initial_noise(7, 42, (1, 4, 4), classes=[3, 5, 9])
    rng = np.random.default_rng([7, 42])
    np.testing.assert_array_equal(noise, rng.standard_normal((1, 4, 4)))
    assert label == [3, 5, 9][int(rng.integers(3))]
    assert noise.dtype == np.float64


def test_run_structure_and_trajectory(small):
    run = elscli.sample(small, machine="bbels", num_samples=3, seed=5, steps=4, save_trajectory=True, threads=1)
    S, T, shape = 3, 4, (1, 16, 16)
    assert run.sample_ids.tolist() == [0, 1, 2] and run.done.all() and run.complete
    assert run.seeds.dtype == np.float32 and run.final.dtype == np.float32 and run.final.shape == (S,) + shape
    for i in range(S):
        want = np.random.default_rng([i, 5]).standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(run.seeds[i], want)
    assert run.labels.tolist() == [-1, -1, -1] and run.labels.dtype == np.int64
    np.testing.assert_array_equal(run.times, time_grid(4, 1.0))
    assert run.patch_sizes.dtype == np.int64
    np.testing.assert_array_equal(run.patch_sizes, load_schedule(None).for_grid(run.times))
    assert run.x.shape == (S, T + 1) + shape and run.x0_hat.shape == (S, T) + shape
    np.testing.assert_array_equal(run.x[:, 0], run.seeds)
    np.testing.assert_array_equal(run.x[:, T], run.final)
    np.testing.assert_array_equal(run.x0_hat[:, T - 1], run.final)
    prov = run.provenance
    assert prov["image"].dtype == np.int64 and prov["row"].dtype == np.int32 and prov["weight"].dtype == np.float32
    assert prov["image"].min() >= 0 and prov["image"].max() < len(small)
    assert (prov["row"] >= 0).all() and (prov["row"] < 16).all()
    assert (prov["weight"] > 0).all() and (prov["weight"] <= 1 + 1e-6).all() and (prov["entropy"] >= -1e-6).all()
    # where the final step is confident, the final pixel is the centre of the dominant patch
    imgs = small.images
    centre = imgs[prov["image"], 0, prov["row"], prov["col"]]
    sure = prov["weight"] > 0.999
    assert sure.sum() > 10  # (identical background patches share their weight)
    np.testing.assert_allclose(run.final[:, 0][sure], centre[sure], atol=2e-3)
    assert run.attrs["machine"] == "bbels" and run.attrs["bank_content_hash"] == small.content_hash


# ------------------------------------------------------------------------------------------ the oracle
@pytest.mark.parametrize("machine, P", [("is", None), ("ls", 3), ("els", 3), ("bbels", 5)])
def test_sampling_with_kernels_equals_sampling_with_oracle(sample_bank, machine, P):
    tiny = sub_bank(sample_bank, per_class=2, classes=(0, 7), lo=10, hi=20)  # 4 digits, 10x10
    run = elscli.sample(tiny, machine=machine, patch_size=P, num_samples=2, seed=3, steps=4, start_time=0.9,
                        save_trajectory=True, threads=1)
    images = tiny.images.astype(np.float64)
    for s in range(2):
        got = []

        def oracle(x, t):
            a, b = scales(t)
            out, prov = oracle_denoise(machine, x[0], images, a, b, P)
            got.append(prov)
            return out[None]

        want_final = ddim(oracle, run.seeds[s:s + 1].astype(np.float64), run.times)
        steps = []
        ddim(oracle, run.seeds[s:s + 1].astype(np.float64), run.times, callback=steps.append)
        for i, st in enumerate(steps):
            np.testing.assert_allclose(run.x0_hat[s, i], st.x0_hat[0], rtol=0, atol=1e-5)
            np.testing.assert_allclose(run.x[s, i + 1], st.x_next[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(run.final[s], want_final[0], atol=1e-5)
        prov = got[-1]
        clear = prov["weight"] > 0.6
        for k in ("image", "row", "col"):
            np.testing.assert_array_equal(run.provenance[k][s][clear], prov[k][clear].astype(np.int64))
        np.testing.assert_allclose(run.provenance["entropy"][s], prov["entropy"], atol=1e-4)


# ------------------------------------------------------------------------------------------ reproducibility
def test_batch_size_does_not_matter(small):
    a = elscli.sample(small, num_samples=5, seed=1, steps=3, batch_size=1, threads=1)
    b = elscli.sample(small, num_samples=5, seed=1, steps=3, batch_size=3, threads=1)
    c = elscli.sample(small, num_samples=5, seed=1, steps=3, batch_size=8, threads=2)
    assert_runs_equal(a, b)
    assert_runs_equal(a, c)


def test_shards_then_merge_equal_one_run(small, tmp_path):
    whole = elscli.sample(small, num_samples=5, seed=2, steps=3, output=tmp_path / "whole.h5")
    paths = []
    for i in range(3):
        r = elscli.sample(small, num_samples=5, seed=2, steps=3, shard=f"{i}/3", output=tmp_path / "part.h5")
        assert r.sample_ids.tolist() == list(range(i, 5, 3))
        paths.append(r.path)
    assert [p.name for p in paths] == ["part-shard0of3.h5", "part-shard1of3.h5", "part-shard2of3.h5"]
    merged = runs.merge_runs(paths[::-1], tmp_path / "merged.h5")
    assert_runs_equal(whole, runs.Run.open(tmp_path / "merged.h5"))
    assert merged.params["shard"] == "0/1"


def test_shard_placeholder_and_slurm_env(monkeypatch):
    assert runs.shard_output_path("r-{shard}-of-{shards}.h5", (2, 5)) == Path("r-2-of-5.h5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "2")
    assert environment.shard_from_slurm() == (2, 3)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert environment.resolve_threads(None) == 3
    assert environment.resolve_threads(1) == 1


def test_merge_refuses_what_does_not_belong_together(small, tmp_path):
    kw = dict(num_samples=4, steps=2)
    a0 = elscli.sample(small, seed=1, shard="0/2", output=tmp_path / "a.h5", **kw).path
    a1 = elscli.sample(small, seed=1, shard="1/2", output=tmp_path / "a.h5", **kw).path
    b1 = elscli.sample(small, seed=9, shard="1/2", output=tmp_path / "b.h5", **kw).path
    c1 = elscli.sample(small, seed=1, shard="1/2", patch_size=3, output=tmp_path / "c.h5", **kw).path
    with pytest.raises(ElscliError, match="not a shard of the same run.*seed"):
        runs.merge_runs([a0, b1], tmp_path / "m.h5")
    with pytest.raises(ElscliError, match="patch_sizes"):
        runs.merge_runs([a0, c1], tmp_path / "m.h5")
    with pytest.raises(ElscliError, match="2 of 4 samples are missing"):
        runs.merge_runs([a0], tmp_path / "m.h5")
    with pytest.raises(ElscliError, match="given twice"):
        runs.merge_runs([a0, a0], tmp_path / "m.h5")
    m = runs.merge_runs([a0], tmp_path / "m.h5", allow_missing=True)
    assert m.sample_ids.tolist() == [0, 2]
    with pytest.raises(ElscliError, match="exists"):
        runs.merge_runs([a0, a1], tmp_path / "m.h5")
    assert len(runs.Run.open(tmp_path / "m.h5")) == 2  # nothing lost
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


# ------------------------------------------------------------------------------------------ interruption
def test_interrupt_then_resume_equals_uninterrupted(small, tmp_path, monkeypatch):
    kw = dict(num_samples=5, seed=4, steps=3, batch_size=1, threads=1)
    whole = elscli.sample(small, output=tmp_path / "whole.h5", **kw)
    real = runs_denoiser._machine_api()
    calls = {"n": 0}

    def interrupting_denoise(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # in sample 2 (2 plain steps + 1 with provenance each): SIGINT, as Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        return real[0](*a, **k)

    monkeypatch.setattr(runs_denoiser, "_machine_api", lambda: (interrupting_denoise, real[1]))
    out = tmp_path / "run.h5"
    part = elscli.sample(small, output=out, **kw)
    assert part.interrupted == signal.SIGINT
    assert part.done.tolist() == [True, True, True, False, False]  # sample 2 is finished first
    assert out.exists() and not (tmp_path / "run.h5.partial").exists()
    on_disk = runs.Run.open(out)
    assert on_disk.done.sum() == 3 and np.isnan(on_disk.final[3:]).all()
    np.testing.assert_array_equal(on_disk.final[:3], whole.final[:3])
    monkeypatch.setattr(runs_denoiser, "_machine_api", lambda: real)
    with pytest.raises(ElscliError, match="exists"):
        elscli.sample(small, output=out, **kw)
    with pytest.raises(ElscliError, match="seed=4, not 5"):
        elscli.sample(small, output=out, resume=True, **{**kw, "seed": 5})
    resumed = elscli.sample(small, output=out, resume=True, **kw)
    assert resumed.samples_computed == 2 and resumed.complete
    assert_runs_equal(whole, resumed)


def test_a_slow_batch_in_flight_is_dropped_on_a_stop_request(small, tmp_path, monkeypatch):
    """With no grace time left, a signal drops the samples in flight; the file keeps the finished ones."""
    kw = dict(num_samples=4, seed=4, steps=4, batch_size=2, threads=1)
    whole = elscli.sample(small, **kw)
    real = runs_denoiser._machine_api()
    calls = {"n": 0}

    def interrupting_denoise(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # first step of the second batch (3 plain steps + 1 with provenance per batch)
            os.kill(os.getpid(), signal.SIGTERM)
        return real[0](*a, **k)

    monkeypatch.setattr(runs_denoiser, "_machine_api", lambda: (interrupting_denoise, real[1]))
    part = elscli.sample(small, output=tmp_path / "r.h5", stop_grace=0, **kw)
    assert part.interrupted == signal.SIGTERM and part.samples_computed == 2
    assert part.done.tolist() == [True, True, False, False]
    monkeypatch.setattr(runs_denoiser, "_machine_api", lambda: real)
    resumed = elscli.sample(small, output=tmp_path / "r.h5", resume=True, **kw)
    assert_runs_equal(whole, resumed)


def test_resume_from_a_stale_partial_file(small, tmp_path):
    """After a hard kill only RUN.h5.partial exists: --resume picks it up, without --resume it is refused."""
    kw = dict(num_samples=3, seed=0, steps=2)
    whole = elscli.sample(small, output=tmp_path / "w.h5", **kw)
    os.replace(tmp_path / "w.h5", tmp_path / "r.h5.partial")
    with h5py.File(tmp_path / "r.h5.partial", "r+") as f:
        f["done"][1:] = False
    with pytest.raises(ElscliError, match="interrupted run"):
        elscli.sample(small, output=tmp_path / "r.h5", **kw)
    r = elscli.sample(small, output=tmp_path / "r.h5", resume=True, **kw)
    assert r.samples_computed == 2
    assert_runs_equal(whole, r)


# ------------------------------------------------------------------------------------------ labels
def test_fixed_label_restricts_the_dictionary(small):
    run = elscli.sample(small, num_samples=2, seed=0, steps=3, label=2, patch_size=5)
    assert run.labels.tolist() == [2, 2]
    assert (small.labels[run.provenance["image"]] == 2).all()


def test_random_labels_follow_the_generator(small):
    run = elscli.sample(small, num_samples=6, seed=11, steps=2, label="random", patch_size=3)
    classes = list(small.classes)
    for i in range(6):
        _, lab = runs.initial_noise(i, 11, (1, 16, 16), classes)
        assert run.labels[i] == lab
        assert (small.labels[run.provenance["image"][i]] == lab).all()


# ------------------------------------------------------------------------------------------ the machines
def test_paper_schedule_sizes_reach_the_machine_at_the_right_times(small, monkeypatch):
    real = runs_denoiser._machine_api()
    seen = []

    def rec(i):
        def f(denoiser, x, t, label):
            seen.append((round(float(t), 10), denoiser.values_at(t)["patch_size"]))
            return real[i](denoiser, x, t, label)
        return f

    monkeypatch.setattr(runs_denoiser, "_machine_api", lambda: (rec(0), rec(1)))
    as_run = dict(zip([0.95 - 0.05 * k for k in range(19)],
                      [15, 15, 15, 15, 15, 13, 11, 11, 11, 11, 9, 9, 7, 7, 7, 5, 5, 5, 3]))
    as_run = {round(t, 10): p for t, p in as_run.items()}
    run = elscli.sample(small, num_samples=1, steps=20, start_time=1.0)
    assert seen[0] == (1.0, 15) and seen[1:] == list(as_run.items())
    assert run.patch_sizes.tolist() == [15] + list(as_run.values())
    seen.clear()
    run = elscli.sample(small, num_samples=1, steps=19, start_time=0.95)
    assert seen == list(as_run.items())
    assert run.patch_sizes.tolist() == list(as_run.values())


@pytest.mark.parametrize("machine", sorted(machines.MACHINES))
def test_a_run_equals_one_machine_call_per_step(small, machine):
    """A run builds its denoiser once with the patch size as a schedule of t and prepares it ahead: every
    trajectory array and the provenance are bitwise what calling :func:`elscli.denoise` at each step with that
    step's patch size gives (the way runs called the machines before), for every machine, with random labels
    and the paper's locality schedule (several patch sizes in one run)."""
    kw = dict(num_samples=3, seed=2, steps=6, label="random", save_trajectory=True, threads=1, batch_size=2)
    run = elscli.sample(small, machine=machine, **kw)
    has_patch = any(p.name == "patch_size" for p in machines.machine_class(machine).parameters)
    if has_patch:
        assert len(set(run.patch_sizes.tolist())) > 1          # really a schedule of several sizes
    sizes = dict(zip(run.times[:-1].tolist(), run.patch_sizes.tolist()))
    last = float(run.times[-2])
    for rows in ([0, 1], [2]):
        labels = run.labels[rows]
        prov = {}

        def per_call(x, t):
            P = sizes[float(t)] if has_patch else None
            if float(t) == last and machines.machine_class(machine).has_provenance:
                x0, prov["p"] = elscli.denoise_with_provenance(machine, x, t, small, P, labels, threads=1)
                return x0
            return elscli.denoise(machine, x, t, small, P, labels, threads=1)

        steps = []
        final = ddim(per_call, run.seeds[rows].astype(np.float64), run.times, callback=steps.append)
        np.testing.assert_array_equal(run.final[rows], final.astype(np.float32))
        for i, st in enumerate(steps):
            np.testing.assert_array_equal(run.x0_hat[rows, i], st.x0_hat.astype(np.float32))
            np.testing.assert_array_equal(run.x[rows, i + 1], st.x_next.astype(np.float32))
        if "p" in prov:
            for k in ("image", "row", "col"):
                np.testing.assert_array_equal(run.provenance[k][rows], getattr(prov["p"], k))
            np.testing.assert_array_equal(run.provenance["weight"][rows], prov["p"].weight.astype(np.float32))


def test_a_run_builds_and_prepares_its_denoiser_once(small, monkeypatch):
    """One denoiser for the whole run (three batches), prepared before the first machine call for every time
    of the grid and every label of the samples to compute: bbELS has the image blocks and constant patch of
    every patch size of the schedule and every label when it is first called."""
    from elscli.runs import execute

    built, prepared, first_call = [], [], []
    real_build, real_api = execute.run_denoiser, runs_denoiser._machine_api()

    def build(*a, **k):
        d = real_build(*a, **k)
        real_prepare = d.prepare
        d.prepare = lambda times, labels=None: prepared.append((np.array(times), np.array(labels))) or \
            real_prepare(times, labels=labels)
        built.append(d)
        return d

    def observe(i):
        def f(denoiser, x, t, label):
            if not first_call:
                first_call.append({key: d.blocks is not None and d.constant is not None
                                   for key, d in denoiser._pinned.items()})
            return real_api[i](denoiser, x, t, label)
        return f

    monkeypatch.setattr(execute, "run_denoiser", build)
    monkeypatch.setattr(runs_denoiser, "_machine_api", lambda: (observe(0), observe(1)))
    run = elscli.sample(small, machine="bbels", num_samples=5, seed=3, steps=8, label="random", batch_size=2,
                        threads=1)
    assert len(built) == 1 and len(prepared) == 1
    times, labels = prepared[0]
    np.testing.assert_array_equal(times, run.times[:-1])
    assert sorted(labels.tolist()) == sorted(run.labels.tolist())
    n_labels, n_sizes = len(set(run.labels.tolist())), len(set(run.patch_sizes.tolist()))
    assert n_sizes > 1 and len(first_call[0]) == n_labels * n_sizes and all(first_call[0].values())


def test_is_copies_training_images_and_records_no_patch_size(small):
    run = elscli.sample(small, machine="is", num_samples=4, seed=0, steps=20)
    assert run.patch_sizes.tolist() == [0] * 20
    train = small.images.reshape(len(small), -1).astype(np.float64)
    for f in run.final.reshape(4, -1):
        rms = np.sqrt(((train - f) ** 2).mean(1)).min()
        assert rms < 0.05


@pytest.mark.parametrize("machine", ["ls", "els", "bbels"])
def test_local_machines_stay_in_the_training_pixel_range(small, machine):
    run = elscli.sample(small, machine=machine, num_samples=3, seed=0, steps=6, patch_size=5)
    lo, hi = float(small.images.min()), float(small.images.max())
    assert run.final.min() >= lo - 1e-6 and run.final.max() <= hi + 1e-6


@pytest.mark.parametrize("machine", ["els", "bbels"])
def test_els_finals_are_not_copies_with_the_bundled_bank(sample_bank, machine):
    bank = sample_bank.subset(np.arange(0, len(sample_bank), 10))  # 100 of the bundled digits, all classes
    run = elscli.sample(bank, machine=machine, num_samples=1, seed=0, steps=6, patch_size=3)
    train = bank.images.reshape(len(bank), -1).astype(np.float64)
    for f in run.final.reshape(1, -1):
        assert np.sqrt(((train - f) ** 2).mean(1)).min() > 0.05


# ------------------------------------------------------------------------------------------ from seeds
def test_from_seeds_reference_and_earlier_run(small, tmp_path):
    rng = np.random.default_rng(0)
    seeds = rng.standard_normal((3, 1, 16, 16)).astype(np.float32)
    times = time_grid(4, 0.9)
    np.savez(tmp_path / "ref.npz", seeds=seeds, times=times, labels=np.array([-1, 1, 3]),
             schedule=np.array("cosine-legacy"))
    run = elscli.sample(small, from_seeds=tmp_path / "ref.npz", patch_size=5, output=tmp_path / "a.h5")
    np.testing.assert_array_equal(run.seeds, seeds)
    np.testing.assert_array_equal(run.times, times)
    assert run.labels.tolist() == [-1, 1, 3] and run.sample_ids.tolist() == [0, 1, 2]
    assert run.params["seed"] is None and run.params["from_seeds"].endswith("ref.npz")
    again = elscli.sample(small, from_seeds=tmp_path / "a.h5", patch_size=5)
    assert_runs_equal(run, again)
    first2 = elscli.sample(small, from_seeds=tmp_path / "ref.npz", patch_size=5, num_samples=2)
    np.testing.assert_array_equal(first2.final, run.final[:2])


def test_from_seeds_hdf5_reference_with_shards(small, tmp_path):
    seeds = np.random.default_rng(1).standard_normal((4, 1, 16, 16)).astype(np.float32)
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        f["seeds"] = seeds
        f["times"] = time_grid(3, 1.0)
        f.attrs["schedule"] = "cosine-legacy"
    whole = elscli.sample(small, from_seeds=tmp_path / "ref.h5", patch_size=3)
    parts = [elscli.sample(small, from_seeds=tmp_path / "ref.h5", patch_size=3, shard=f"{i}/2",
                           output=tmp_path / "p.h5").path for i in range(2)]
    assert runs.Run.open(parts[1]).sample_ids.tolist() == [1, 3]
    merged = runs.merge_runs(parts, tmp_path / "m.h5")
    assert_runs_equal(whole, merged)
    with pytest.raises(ElscliError, match="2 of 4 samples are missing"):
        runs.merge_runs([parts[0]], tmp_path / "m2.h5")


def test_from_seeds_bad_inputs(small, tmp_path):
    np.savez(tmp_path / "ref.npz", seeds=np.zeros((2, 1, 28, 28), np.float32), times=time_grid(3))
    with pytest.raises(ElscliError, match=r"seeds have shape \(1, 28, 28\) but the bank's images are \(1, 16, 16\)"):
        elscli.sample(small, from_seeds=tmp_path / "ref.npz")
    np.savez(tmp_path / "ok.npz", seeds=np.zeros((2, 1, 16, 16), np.float32), times=time_grid(3))
    with pytest.raises(ElscliError, match="--start-time cannot be combined with --from-seeds"):
        elscli.sample(small, from_seeds=tmp_path / "ok.npz", start_time=0.9)
    np.savez(tmp_path / "custom.npz", seeds=np.zeros((2, 1, 16, 16), np.float32), times=[1.0, 0.7, 0.1, 0.0])
    with pytest.raises(ElscliError, match="has a custom time grid; give --grid with --steps"):
        elscli.sample(small, from_seeds=tmp_path / "custom.npz", steps=4)
    with pytest.raises(ElscliError, match="holds only 2"):
        elscli.sample(small, from_seeds=tmp_path / "ok.npz", num_samples=3)
    with pytest.raises(ElscliError, match="does not exist"):
        elscli.sample(small, from_seeds=tmp_path / "nope.npz")


# ------------------------------------------------------------------------------------------ bad input
def test_bad_inputs_are_one_line_errors_and_lose_nothing(small, tmp_path):
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    unlabelled = Bank.from_arrays(small.codes)
    (tmp_path / "even.json").write_text('{"times": [1.0, 0.5], "patch_sizes": [3, 4]}')
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    cases = [
        (dict(bank=small, label=7), "label 7 is not in the bank"),
        (dict(bank=small, label=-1), "class of the bank"),
        (dict(bank=unlabelled, label="random"), "needs a labelled bank"),
        (dict(bank=small, shard="3/3"), "shard index must lie in 0..2"),
        (dict(bank=small, shard="1"), "I/N"),
        (dict(bank=small, schedule=str(tmp_path / "even.json")), "odd"),
        (dict(bank=small, patch_size=4), "odd"),
        (dict(bank=small, machine="gan"), "unknown machine"),
        (dict(bank=small, machine="els", patch_size=17), "no valid 17x17 patch"),
        (dict(bank=small, seed=-1), "non-negative"),
        (dict(bank=small, num_samples=0), "at least 1"),
        (dict(bank=small, resume=True, force=True), "not both"),
        (dict(bank=tmp_path / "corrupt.h5"), "corrupt"),
        (dict(bank=tmp_path / "none.h5"), "does not exist"),
        (dict(bank=small), "exists"),
    ]
    for kw, message in cases:
        target = out if message == "exists" else tmp_path / "new.h5"
        with pytest.raises(ElscliError, match=message) as exc:
            elscli.sample(**{"num_samples": 2, "steps": 2, "output": target, **kw})
        assert "\n" not in str(exc.value)
    assert out.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["corrupt.h5", "even.json", "run.h5"]


def test_run_open_rejects_other_files(small, tmp_path):
    small.save(tmp_path / "bank.h5")
    with pytest.raises(ElscliError, match="not an elscli.run file"):
        runs.Run.open(tmp_path / "bank.h5")


# ------------------------------------------------------------------------------------------ outputs
def test_describe_export_and_grid(small, tmp_path):
    run = elscli.sample(small, num_samples=3, seed=0, steps=2, label="random", output=tmp_path / "r.h5",
                        png=tmp_path / "grid.png")
    d = runs.describe_run(tmp_path / "r.h5")
    assert d["machine"] == "bbels" and d["samples_done"] == 3 and d["complete"] and d["steps"] == 2
    assert d["bank_content_hash"] == small.content_hash and d["provenance"] and not d["trajectory"]
    json.dumps(d)
    from PIL import Image

    g = Image.open(tmp_path / "grid.png")
    assert g.width >= 3 * 16 * 4 and g.height > 16 * 4
    [npz] = runs.export_run(tmp_path / "r.h5", tmp_path / "f.npz")
    with np.load(npz) as z:
        np.testing.assert_array_equal(z["final"], run.final)
        np.testing.assert_array_equal(z["labels"], run.labels)
    pngs = runs.export_run(tmp_path / "r.h5", tmp_path / "pngs", scale=2)
    assert [p.name for p in pngs] == ["sample_000000.png", "sample_000001.png", "sample_000002.png"]
    im = np.asarray(Image.open(pngs[0]))
    assert im.shape == (32, 32)
    np.testing.assert_array_equal(im[::2, ::2], runs.to_uint8(run.final[:1])[0, :, :, 0])
    with pytest.raises(ElscliError, match="exists"):
        runs.export_run(tmp_path / "r.h5", tmp_path / "pngs")


def test_default_bank_is_built_once_into_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ELSCLI_CACHE", str(tmp_path / "elsewhere"))   # the library reads no environment:
    assert runs.cache_dir() == tmp_path / "home" / ".cache" / "elscli"  # its default is ~/.cache/elscli
    assert environment.cache_dir() == tmp_path / "elsewhere"            # the CLI's is $ELSCLI_CACHE
    p = runs.default_bank_path(cache)
    assert p.parent == cache and p.exists()
    mtime = p.stat().st_mtime_ns
    assert runs.default_bank_path(cache) == p and p.stat().st_mtime_ns == mtime
    assert os.listdir(cache) == [p.name]
    bank = runs.open_bank(None, cache=cache)
    assert len(bank) == 1000 and bank.shape == (1, 32, 32)
