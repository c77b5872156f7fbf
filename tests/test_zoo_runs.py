"""The analytic zoo through runs and the CLI (issue 15): machine parameters in run files, shard
independence, provenance only where it exists."""
import json

import h5py
import numpy as np
import pytest

import elscli
from elscli import noise, reference, runs
from elscli.errors import ElscliError
from elscli.machines import make_denoiser


@pytest.fixture(scope="module")
def small_bank():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (12, 1, 8, 8)).astype(np.float32)
    return elscli.Bank.from_arrays(images, np.arange(12) % 3)


def machine_reference(path, bank, machine, params, n=4):
    """A 'network' that is a machine: eps = (x - a x0_hat) / b of ``machine`` with ``params``."""
    D = make_denoiser(machine, bank, **params)

    def eps_fn(x, t, labels):
        a, b = noise.scales(t)
        return (x - a * D(x, t)) / b

    seeds = np.random.default_rng(1).standard_normal((n,) + bank.shape).astype(np.float32)
    return reference.record(eps_fn, seeds, noise.time_grid(6), path=path)


@pytest.mark.parametrize("machine,params,patch", [("scfdm", {"sigma": 0.2}, None), ("wiener", {}, None),
                                                  ("nearest", {}, None), ("is", {"temperature": 0.5}, None),
                                                  ("pca-locality", {"threshold": 0.3}, None),
                                                  ("pspc-square", {}, 3), ("els", {"wrap": True}, 5)])
def test_runs_record_machine_parameters_and_match_the_denoiser(tmp_path, small_bank, machine, params, patch):
    """A run's finals are the sampler over the machine's denoiser, its parameters are in the file (all of
    them, defaults too) and only machines with a dominant image or patch store provenance."""
    out = tmp_path / "run.h5"
    run = runs.sample(small_bank, machine=machine, machine_params=params, patch_size=patch, num_samples=2,
                      steps=4, output=out)
    cls = elscli.machines.machine_class(machine)
    recorded = run.params["machine_params"] or {}
    assert set(recorded) == {p.name for p in cls.parameters} - {"patch_size"}
    for k, v in params.items():
        assert recorded[k] == v
    D = make_denoiser(machine, small_bank, **params, **({"patch_size": patch} if patch else {}))
    from elscli.sampler import ddim
    want = ddim(lambda x, t: D(x, t), run.seeds.astype(np.float64), run.times)
    np.testing.assert_array_equal(run.final, want.astype(np.float32))
    with h5py.File(out) as f:
        assert ("prov_image" in f) == cls.has_provenance
    info = runs.describe_run(out)
    assert info["machine_params"] == recorded


@pytest.mark.parametrize("machine,params,patch", [("scfdm", {"sigma": 0.1}, None), ("pspc-square", {}, 5),
                                                  ("pca-locality", {"threshold": 0.2}, None)])
def test_shards_merge_into_the_single_run_bitwise(tmp_path, small_bank, machine, params, patch):
    whole = runs.sample(small_bank, machine=machine, machine_params=params, patch_size=patch, num_samples=4,
                        steps=4, output=tmp_path / "all.h5", batch_size=3)
    parts = [runs.sample(small_bank, machine=machine, machine_params=params, patch_size=patch, num_samples=4,
                         steps=4, output=tmp_path / "s{shard}.h5", shard=f"{i}/2") for i in range(2)]
    merged = runs.merge_runs([tmp_path / "s0.h5", tmp_path / "s1.h5"], tmp_path / "m.h5")
    np.testing.assert_array_equal(merged.final, whole.final)
    assert all(p.complete for p in parts)


def test_a_run_resumes_only_with_the_same_machine_parameters(tmp_path, small_bank):
    out = tmp_path / "run.h5"
    runs.sample(small_bank, machine="scfdm", machine_params={"sigma": 0.1}, num_samples=2, steps=3, output=out)
    with pytest.raises(ElscliError, match="machine_params"):
        runs.sample(small_bank, machine="scfdm", machine_params={"sigma": 0.3}, num_samples=2, steps=3,
                    output=out, resume=True)


def test_cli_sample_takes_the_zoo_parameters(tmp_path, small_bank, cli):
    bank = tmp_path / "bank.h5"
    small_bank.save(bank)
    r = cli("sample", "--bank", bank, "-m", "pca-locality", "--threshold", "0.25", "--temperature", "0.8", "-n", "1",
            "--steps", "3", "-o", tmp_path / "p.h5", "--quiet")
    assert r.exit_code == 0, r.stderr
    r = cli("info", tmp_path / "p.h5", "--json")
    assert json.loads(r.stdout)["machine_params"] == {"threshold": 0.25, "temperature": 0.8}
    r = cli("sample", "--bank", bank, "-m", "els", "--wrap", "-p", "15", "-n", "1", "--steps", "2",
            "-o", tmp_path / "es.h5", "--quiet")
    assert r.exit_code == 0, r.stderr
    for args, message in [(("-m", "wiener", "--sigma", "1"), "has no parameter 'sigma'"),
                          (("-m", "scfdm", "--sigma", "-1"), "sigma must be"),
                          (("-m", "pca-locality", "--threshold", "2"), "every receptive field would be empty"),
                          (("-m", "els", "-p", "15"), "empty dictionary"),
                          (("-m", "scfdm", "--sigma", "nope.json"), "takes a number or a schedule")]:
        r = cli("sample", "--bank", bank, *args, "-n", "1", "--steps", "2", "-o", tmp_path / "bad.h5", "--quiet")
        assert r.exit_code == 1 and message in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert not (tmp_path / "bad.h5").exists()


def test_mosaic_uses_the_runs_parameters_and_refuses_runs_without_provenance(tmp_path, small_bank):
    from elscli.analysis import mosaic as M

    runs.sample(small_bank, machine="scfdm", machine_params={"sigma": 0.3}, num_samples=2, steps=3,
                output=tmp_path / "s.h5")
    seen = []
    real = elscli.machines.denoise

    def spy(machine, x, t, bank, patch_size, label=None, **params):
        seen.append((machine, {k: v for k, v in params.items() if k != "threads"}))
        return real(machine, x, t, bank, patch_size, label=label, **params)

    rp = M.load_run_provenance(tmp_path / "s.h5")
    import pytest as _pytest
    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr(elscli.machines, "denoise", spy)
        rep = M.mosaic_report(rp, bank=small_bank)
    assert seen and all(m == "scfdm" and p == {"sigma": 0.3} for m, p in seen)
    assert rep.consistency.shape == (2,)
    runs.sample(small_bank, machine="wiener", num_samples=1, steps=3, output=tmp_path / "w.h5")
    with pytest.raises(ElscliError, match="has no provenance"):
        M.mosaic_report(M.load_run_provenance(tmp_path / "w.h5"), bank=small_bank)
