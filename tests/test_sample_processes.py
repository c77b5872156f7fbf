"""`elscli sample` on any noise schedule, sampler and grid (issue 16): the run equals a NumPy re-derivation of
the process with the machine as denoiser, follows a network's reference (its sampler, grid and injected noise),
records what it did, and a stochastic run is bitwise the same for any batch size, thread count and sharding."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import elscli
from elscli import reference as R
from elscli import runs
from elscli.bank import Bank, build_bank
from elscli.errors import ElscliError
from elscli.machines import denoise
from elscli.noise import NOISE_SCHEDULES, make_grid
from elscli.runs import denoiser as runs_denoiser

from test_cli_sample import elscli as run_cli, env
from threads import require_two_threads

REPO = Path(__file__).resolve().parents[1]
P = 3
SHAPE = (1, 16, 16)


@pytest.fixture(scope="module")
def small():
    """12 digits of 4 classes from the bundled sample data, centre-cropped to 16x16."""
    full, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    idx = np.concatenate([full.indices_for(c)[:3] for c in (0, 1, 2, 3)])
    return Bank.from_arrays(np.ascontiguousarray(full.codes[idx][:, :, 8:24, 8:24]), full.labels[idx])


@pytest.fixture(scope="module")
def small_file(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "small.h5"
    small.save(path)
    return path


def documented_stream(i, seed, steps, classes=None):
    """Sample i's generator as the README documents it: starting noise, label, then each step's z (float32)."""
    rng = np.random.default_rng([i, seed])
    eps = rng.standard_normal(SHAPE)
    label = None if classes is None else classes[int(rng.integers(len(classes)))]
    z = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(steps - 1)]
    return eps, label, z


def machine(bank, label, schedule):
    lab = None if label < 0 else [label]
    return lambda x, t: denoise("bbels", x[None], t, bank, P, lab, noise_schedule=schedule)[0]


# ------------------------------------------------------------------------------------------ re-derivations
def test_ddpm_ancestral_run_is_ho_et_al_posterior_sampling(small):
    """--eta 1 is DDPM (Ho et al. 2020, Eq. 6-7): x' ~ q(x_t' | x_t, x0_hat), mean
    sqrt(abar') beta / (1 - abar) x0 + sqrt(alpha) (1 - abar') / (1 - abar) x, variance
    (1 - abar') / (1 - abar) beta, alpha = abar / abar'; with each sample's noise from its own generator
    after its starting noise and its random label."""
    steps, seed = 4, 11
    run = elscli.sample(small, num_samples=3, seed=seed, steps=steps, noise_schedule="linear", eta=1.0,
                        patch_size=P, label="random")
    sched = NOISE_SCHEDULES["linear"]
    times = make_grid("uniform", steps, "linear")
    assert run.params["sampler"] == "ddim" and run.params["eta"] == 1.0 and run.params["grid"] == "uniform"
    assert run.params["evaluations"] == steps and run.noise.shape == (3, steps) + SHAPE
    assert run.params["noise_stream"] == runs.plan.STREAM_OWN
    assert "ddim eta=1 on 4 uniform steps of linear" in runs.export.grid_title(run)   # the PNG's title says so
    for k in range(3):
        eps, label, z = documented_stream(k, seed, steps, classes=[0, 1, 2, 3])
        assert run.labels[k] == label
        np.testing.assert_array_equal(run.seeds[k], eps.astype(np.float32))
        np.testing.assert_array_equal(run.noise[k, :-1], np.stack(z))
        assert not run.noise[k, -1].any()                     # the last step injects none
        D = machine(small, label, "linear")
        x = run.seeds[k].astype(np.float64)
        for i in range(steps):
            x0 = D(x, times[i])
            if i == steps - 1:
                x = x0
                break
            abar, abar_next = sched(times[i])[0] ** 2, sched(times[i + 1])[0] ** 2
            alpha = abar / abar_next
            beta = 1 - alpha
            mean = (math.sqrt(abar_next) * beta / (1 - abar)) * x0 + (math.sqrt(alpha) * (1 - abar_next) / (1 - abar)) * x
            x = mean + math.sqrt((1 - abar_next) / (1 - abar) * beta) * z[i].astype(np.float64)
        np.testing.assert_allclose(run.final[k], x, atol=2e-6)


def test_heun_on_the_edm_grid_is_edm_algorithm_1(small, monkeypatch):
    """--noise-schedule edm --sampler heun --grid edm: the starting state is sigma_max eps (EDM's), the grid is
    Eq. 5's, Heun makes 2N - 1 machine calls (counted), and the run is Algorithm 1 (S_churn = 0) in NumPy."""
    steps, seed = 3, 5
    calls = []
    real = runs_denoiser._machine_api

    def counting():
        den, prov = real()
        return (lambda *a, **k: calls.append(a[2]) or den(*a, **k)), (lambda *a, **k: calls.append(a[2]) or prov(*a, **k))

    monkeypatch.setattr(runs_denoiser, "_machine_api", counting)
    run = elscli.sample(small, num_samples=2, seed=seed, steps=steps, noise_schedule="edm", sampler="heun",
                        grid="edm", patch_size=P)
    monkeypatch.undo()
    times = make_grid("edm", steps, "edm")
    np.testing.assert_array_equal(run.times, times)
    assert run.params["evaluations"] == 2 * steps - 1 and len(calls) == 2 * (2 * steps - 1)
    assert "heun on 3 edm steps of edm (5 evaluations)" in runs.export.grid_title(run)
    assert run.noise is None and run.attrs["noise_schedule"] == "edm" and run.params["noise_stream"] is None
    sigma = [NOISE_SCHEDULES["edm"].sigma(t) for t in times]
    for k in range(2):
        eps = np.random.default_rng([k, seed]).standard_normal(SHAPE)
        np.testing.assert_array_equal(run.seeds[k], (80.0 * eps).astype(np.float32))
        D = machine(small, -1, "edm")
        x = run.seeds[k].astype(np.float64)
        for i in range(steps):                      # EDM Algorithm 1, lines 4-11, S_churn = 0
            d = (x - D(x, times[i])) / sigma[i]
            x_next = x + (sigma[i + 1] - sigma[i]) * d
            if sigma[i + 1] != 0:
                d2 = (x_next - D(x_next, times[i + 1])) / sigma[i + 1]
                x_next = x + (sigma[i + 1] - sigma[i]) * (0.5 * d + 0.5 * d2)
            x = x_next
        np.testing.assert_allclose(run.final[k], x, atol=1e-6)


# ------------------------------------------------------------------------------------------ --from-seeds
@pytest.mark.parametrize("process", [dict(sampler="ddim", eta=1.0, noise_seed=3),
                                     dict(sampler="heun", grid="edm", steps=3)], ids=["ddpm", "heun-edm"])
def test_from_seeds_follows_the_references_process(small, tmp_path, process):
    """A machine run --from-seeds a reference takes its noise schedule, sampler, eta, grid and injected noise:
    a reference recorded from the machine itself (as a network) is reproduced to rounding; a run from that
    run's seeds, bitwise."""
    seeds = np.random.default_rng(0).standard_normal((3,) + SHAPE).astype(np.float32)

    def eps_fn(x, t, labels):
        a, b = NOISE_SCHEDULES["linear"](t)
        return (x - a * denoise("bbels", x, t, small, P, noise_schedule="linear")) / b

    ref = R.record(eps_fn, seeds, path=tmp_path / "net.npz", noise_schedule="linear",
                   **({"steps": 4} | process))
    run = elscli.sample(small, from_seeds=tmp_path / "net.npz", patch_size=P, output=tmp_path / "m.h5")
    p = run.params
    assert (run.attrs["noise_schedule"], p["sampler"], p["eta"], p["grid"]) == ("linear", ref.sampler, ref.eta, ref.grid)
    np.testing.assert_array_equal(run.times, ref.times)
    if ref.stochastic:
        np.testing.assert_array_equal(run.noise, ref.noise)
    np.testing.assert_allclose(run.final, ref.final, atol=1e-5)
    again = elscli.sample(small, from_seeds=tmp_path / "m.h5", patch_size=P)
    np.testing.assert_array_equal(again.final, run.final)
    # another noise schedule than the file's is refused, naming both (sampler, eta, grid, steps may be overridden)
    with pytest.raises(ElscliError, match="recorded with noise schedule 'linear', not 'cosine'"):
        elscli.sample(small, from_seeds=tmp_path / "net.npz", patch_size=P, noise_schedule="cosine")


def test_from_seeds_process_overridden_explicitly(small, tmp_path):
    """--sampler/--eta/--grid/--steps given with --from-seeds override the file's process (the seeds and labels
    stay the file's): eta 0 on a DDPM reference is the deterministic run from the same seeds; heun on an edm
    grid starts at the file's first time; eta 1 on other steps draws each sample's noise from its own generator
    of root seed --seed (after one discarded starting draw), as recorded in noise_stream."""
    seeds = np.random.default_rng(1).standard_normal((2,) + SHAPE).astype(np.float32)
    np.savez(tmp_path / "det.npz", seeds=seeds, times=make_grid("uniform", 4, "linear"), schedule="linear")

    def eps_fn(x, t, labels):
        a, b = NOISE_SCHEDULES["linear"](t)
        return (x - a * denoise("bbels", x, t, small, P, noise_schedule="linear")) / b

    R.record(eps_fn, seeds, path=tmp_path / "ddpm.npz", noise_schedule="linear", steps=4, eta=1.0, noise_seed=9)
    ref = R.read(tmp_path / "ddpm.npz")
    follow = elscli.sample(small, from_seeds=tmp_path / "ddpm.npz", patch_size=P)
    assert follow.params["noise_stream"].startswith("recorded")
    np.testing.assert_array_equal(follow.noise, ref.noise)

    det = elscli.sample(small, from_seeds=tmp_path / "ddpm.npz", patch_size=P, eta=0.0)
    plain = elscli.sample(small, from_seeds=tmp_path / "det.npz", patch_size=P)
    assert det.params["eta"] == 0.0 and det.noise is None and det.params["noise_stream"] is None
    np.testing.assert_array_equal(det.final, plain.final)
    assert not np.array_equal(det.final, follow.final)

    heun = elscli.sample(small, from_seeds=tmp_path / "ddpm.npz", patch_size=P, sampler="heun", grid="edm", steps=3)
    assert (heun.params["sampler"], heun.params["eta"], heun.params["grid"]) == ("heun", 0.0, "edm")
    np.testing.assert_array_equal(heun.times, make_grid("edm", 3, "linear", float(ref.times[0])))
    assert heun.params["evaluations"] == 5

    six = elscli.sample(small, from_seeds=tmp_path / "ddpm.npz", patch_size=P, steps=6, seed=2)
    assert six.params["noise_stream"].startswith("default_rng([sample_id, seed]): one discarded")
    np.testing.assert_array_equal(six.times, make_grid("uniform", 6, "linear"))
    for k in range(2):
        _, _, z = documented_stream(k, 2, 6)
        np.testing.assert_array_equal(six.noise[k, :-1], np.stack(z))
    np.testing.assert_array_equal(six.seeds, seeds)
    with pytest.raises(ElscliError, match="--eta applies to the ddim sampler only"):
        elscli.sample(small, from_seeds=tmp_path / "ddpm.npz", patch_size=P, sampler="euler", eta=1.0)


def test_locality_schedule_of_another_noise_schedule_is_refused(small, tmp_path):
    (tmp_path / "cal.json").write_text('{"times": [1.0, 0.5], "patch_sizes": [5, 3], "noise_schedule": "linear"}')
    run = elscli.sample(small, num_samples=1, steps=2, schedule=str(tmp_path / "cal.json"), noise_schedule="linear")
    assert run.patch_sizes.tolist() == [5, 3]
    with pytest.raises(ElscliError, match="calibrated on noise schedule 'linear', not 'cosine-legacy'"):
        elscli.sample(small, num_samples=1, steps=2, schedule=str(tmp_path / "cal.json"))


def test_parameter_schedule_of_another_noise_schedule_is_refused(small, tmp_path, cli, monkeypatch):
    """A machine parameter's schedule (locality-scan --parameter) names its noise schedule too: `sample
    --sigma FILE` on another noise schedule is one line, exit 1, nothing written; on its own it runs."""
    monkeypatch.chdir(tmp_path)
    small.save(tmp_path / "b.h5")
    (tmp_path / "sigma.json").write_text('{"times": [1.0, 0.5], "sigma": [0.2, 0.1], "noise_schedule": "linear"}')
    base = ["sample", "--bank", "b.h5", "-m", "scfdm", "--sigma", "sigma.json", "-n", 1, "--steps", 2, "-q"]
    r = cli(*base, "-o", "bad.h5")
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "the sigma schedule 'sigma.json' was calibrated on noise schedule 'linear', not 'cosine-legacy'" in r.stderr
    assert not list(tmp_path.glob("bad.h5*"))
    r = cli(*base, "--noise-schedule", "linear", "-o", "ok.h5")
    assert r.exit_code == 0, r.stderr
    assert runs.Run.open(tmp_path / "ok.h5").params["machine_params"]["sigma"] == {"times": [1.0, 0.5],
                                                                                  "values": [0.2, 0.1]}


# ------------------------------------------------------------------------------------------ determinism
SAMPLERS = {
    "ddim-cosine": ["--noise-schedule", "cosine"],
    "ddpm-linear": ["--noise-schedule", "linear", "--eta", 1],
    "ddim-eta0.5-edm-grid": ["--noise-schedule", "cosine", "--eta", 0.5, "--grid", "edm"],
    "euler-edm": ["--noise-schedule", "edm", "--sampler", "euler", "--grid", "edm"],
    "heun-linear-edm-grid": ["--noise-schedule", "linear", "--sampler", "heun", "--grid", "edm"],
}


@pytest.mark.parametrize("process", list(SAMPLERS))
def test_every_sampler_is_bitwise_the_same_for_any_batch_thread_and_shard(small_file, tmp_path, process):
    """Each sampler through `elscli sample` (real processes): one process with batch size 1 on 1 thread; one
    with batch size 3 on 2 threads (two Numba threads really run); two shards (batch sizes 2 and 1, 2 threads)
    run at once and merged: the same bits, the injected noise of a stochastic sampler included."""
    require_two_threads()
    common = ["sample", "--bank", small_file, "-n", 5, "--seed", 4, "--steps", 4, "--labels", "random",
              "--patch-size", P, "--quiet", *SAMPLERS[process]]
    run_cli(*common, "--batch-size", 1, "--threads", 1, "-o", "one.h5", cwd=tmp_path, NUMBA_NUM_THREADS=2)
    run_cli(*common, "--batch-size", 3, "--threads", 2, "-o", "three.h5", cwd=tmp_path, NUMBA_NUM_THREADS=2)
    shards = [subprocess.Popen([sys.executable, "-m", "elscli", *map(str, common + [
        "--shard", f"{i}/2", "--batch-size", 2 - i, "--threads", 2, "-o", "part-{shard}.h5"])], cwd=tmp_path,
        env=env(NUMBA_NUM_THREADS=2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in shards:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    run_cli("merge", "part-0.h5", "part-1.h5", "-o", "merged.h5", cwd=tmp_path)
    one = runs.Run.open(tmp_path / "one.h5")
    assert one.params["threads"] == 1 and runs.Run.open(tmp_path / "three.h5").params["threads"] == 2
    assert runs.Run.open(tmp_path / "part-0.h5").params["threads"] == 2
    stochastic = "--eta" in SAMPLERS[process]
    assert (one.noise is not None) == stochastic and one.complete
    if stochastic:
        assert np.isfinite(one.noise).all() and one.noise[:, :-1].std() > 0.5
    for other in ("three.h5", "merged.h5"):
        run = runs.Run.open(tmp_path / other)
        for k in ("sample_ids", "seeds", "labels", "times", "final", "noise", "prov_image", "prov_weight"):
            assert (one.arrays.get(k) is None and run.arrays.get(k) is None) \
                or np.array_equal(one.arrays[k], run.arrays[k]), (other, k)


def test_shards_of_another_sampler_do_not_merge(small_file, tmp_path):
    """A shard made with another sampler, eta or grid is not part of the same run: merge refuses it in one line
    naming the parameter, and writes nothing."""
    common = ["sample", "--bank", small_file, "-n", 4, "--seed", 4, "--steps", 3, "--noise-schedule", "linear",
              "--patch-size", P, "--quiet"]
    run_cli(*common, "--eta", 1, "--shard", "0/2", "-o", "ddpm.h5", cwd=tmp_path)
    shown = run_cli("info", "ddpm-shard0of2.h5", cwd=tmp_path).stdout          # values shown as text, not markup
    assert "default_rng([sample_id, seed])" in shown and "ddim" in shown and "injected_noise" in shown
    for name, extra, message in (("det", [], "eta: 0.0 vs 1.0"),
                                 ("heun", ["--sampler", "heun"], "sampler: 'heun' vs 'ddim'"),
                                 ("edm", ["--eta", 1, "--grid", "edm"], "grid: 'edm' vs 'uniform'")):
        run_cli(*common, *extra, "--shard", "1/2", "-o", f"{name}.h5", cwd=tmp_path)
        r = run_cli("merge", "ddpm-shard0of2.h5", f"{name}-shard1of2.h5", "-o", "bad.h5", cwd=tmp_path, check=False)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert message in r.stderr, r.stderr
        assert not list(tmp_path.glob("bad.h5*"))
