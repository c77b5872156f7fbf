"""locality-scan --parameter NAME (issue 15): calibrating any scalar machine parameter through the denoiser
interface — the similarities against an oracle, a parameter recovered from a machine-made reference, the
scan file and schedule JSON, sample reading the schedule, shards, and one-line errors."""
import json

import h5py
import numpy as np
import pytest

import elscli
from elscli import reference
from elscli.analysis import scan as S
from elscli.analysis.aggregate import aggregate, lower_median, mode
from elscli.analysis.calibrate import calibrate
from elscli.analysis.scan_merge import merge
from elscli.errors import ElscliError
from elscli.schedule import ParameterSchedule

from oracle import cosine_legacy, oracle_pspc_square, oracle_scfdm
from test_zoo_runs import machine_reference
from threads import require_two_threads


@pytest.fixture(scope="module")
def small_bank():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (12, 1, 8, 8)).astype(np.float32)
    return elscli.Bank.from_arrays(images, np.arange(12) % 3)


def random_network(path, bank, n=3, steps=5):
    """A 'network' that is none of the machines: eps = x/b shrunk towards a fixed random direction."""
    rng = np.random.default_rng(7)
    direction = rng.standard_normal(bank.shape)

    def eps_fn(x, t, labels):
        return 0.9 * x + 0.3 * direction[None]

    seeds = rng.standard_normal((n,) + bank.shape).astype(np.float32)
    return reference.record(eps_fn, seeds, elscli.noise.time_grid(steps), path=path)


def oracle_similarities(ref, x0_of, candidates, metric):
    """(S, K, T) similarities of the network's score -eps/b and the oracle machine's -(x - a x0)/b^2."""
    S_, T = ref.num_samples, ref.num_steps
    out = np.zeros((S_, len(candidates), T))
    for s in range(S_):
        for j in range(T):
            a, b = cosine_legacy(float(ref.times[j]))
            x = ref.x[s, j].astype(np.float64)
            net = (-ref.eps[s, j].astype(np.float64) / b).ravel()
            for k, c in enumerate(candidates):
                mach = (-(x - a * x0_of(x, a, b, c)) / (b * b)).ravel()
                out[s, k, j] = (net @ mach / (np.linalg.norm(net) * np.linalg.norm(mach)) if metric == "cosine"
                                else np.linalg.norm(net - mach))
    return out


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_sigma_scan_equals_the_oracle(tmp_path, small_bank, metric):
    ref = random_network(tmp_path / "net.npz", small_bank)
    sigmas = [0.0, 0.3, 1.0]
    got = S.scan(ref, small_bank, "scfdm", "1,0,0.3", parameter="sigma", metric=metric)
    images = small_bank.images.astype(np.float64)
    want = oracle_similarities(ref, lambda x, a, b, s: oracle_scfdm(x, images, a, b, s), sigmas, metric)
    assert got.parameter == "sigma" and got.candidates.dtype == np.float64
    np.testing.assert_array_equal(got.candidates, sigmas)
    np.testing.assert_allclose(got.similarity, want, rtol=1e-9, atol=1e-12)
    # the best sigma is one whose oracle similarity is the best (up to rounding: where one image dominates the
    # weights, cosine ties across sigma)
    k = np.searchsorted(sigmas, got.best)
    at_best = np.take_along_axis(want, k[:, None, :], axis=1)[:, 0]
    top = want.max(axis=1) if metric == "cosine" else want.min(axis=1)
    np.testing.assert_allclose(at_best, top, rtol=1e-9, atol=1e-12)


def test_pspc_square_patch_sizes_go_through_the_denoiser_interface(tmp_path, small_bank):
    """A machine with a patch size outside ls/els/bbels is scanned on it (no --parameter): the same
    similarities as the oracle, and a pspc-square 'network' at P = 3 is found at every step."""
    ref = machine_reference(tmp_path / "net.npz", small_bank, "pspc-square", {"patch_size": 3}, n=2)
    got = S.scan(ref, small_bank, "pspc-square", [3, 5, 7], metric="l2")
    images = small_bank.images.astype(np.float64)
    want = oracle_similarities(ref, lambda x, a, b, P: oracle_pspc_square(x, images, a, b, int(P)), [3, 5, 7], "l2")
    np.testing.assert_allclose(got.similarity, want, rtol=1e-7, atol=1e-9)
    assert got.parameter == "patch_size" and got.candidates.dtype == np.int64
    np.testing.assert_array_equal(got.best, np.full_like(got.best, 3))


def test_a_sigma_is_recovered_and_sample_reads_its_schedule(tmp_path, small_bank, cli):
    """Against a 'network' that is scfdm at sigma = 0.2, the L2 scan finds 0.2 at every step (distance 0 up to
    the reference's float32), the CLI writes the scan file and the schedule {"times", "sigma"}, and sample
    --sigma FILE from the reference's seeds reproduces the reference.  (Cosine cannot tell sigma where one
    image dominates the weights: the score is then -(1 - a k)(x - a y_n)/b^2, the same direction for every
    sigma.)"""
    ref = machine_reference(tmp_path / "net.npz", small_bank, "scfdm", {"sigma": 0.2})
    result = S.scan(ref, small_bank, "scfdm", [0.0, 0.1, 0.2, 0.4], parameter="sigma", metric="l2")
    np.testing.assert_array_equal(result.best, np.full(result.best.shape, 0.2))
    others = result.similarity[:, [0, 1, 3]].min(axis=1)
    assert np.all(result.similarity[:, 2] < 0.05 * others)
    bank = tmp_path / "bank.h5"
    small_bank.save(bank)
    r = cli("locality-scan", "-r", tmp_path / "net.npz", "--bank", bank, "-m", "scfdm", "--parameter", "sigma",
            "--candidates", "0,0.1,0.2,0.4", "--metric", "l2", "-o", tmp_path / "sigma.json",
            "--scan-out", tmp_path / "scan.h5", "--plot", tmp_path / "plots", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "sigma schedule for scfdm" in r.stdout
    sched = json.loads((tmp_path / "sigma.json").read_text())
    assert sched == {"times": [round(float(t), 12) for t in ref.times[:-1]], "sigma": [0.2] * ref.num_steps,
                     "noise_schedule": ref.schedule}
    with h5py.File(tmp_path / "scan.h5") as f:
        assert f.attrs["parameter"] == "sigma" and f["candidates"].dtype == np.float64
        np.testing.assert_array_equal(f["best"][()], result.best)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["schedule-scfdm-sigma.png",
                                                                       "similarity-scfdm-sigma.png"]
    info = json.loads(cli("info", tmp_path / "scan.h5", "--json").stdout)
    assert info["parameter"] == "sigma" and info["schedule_median"] == [0.2] * ref.num_steps
    r = cli("sample", "--bank", bank, "-m", "scfdm", "--sigma", tmp_path / "sigma.json", "--from-seeds",
            tmp_path / "net.npz", "-o", tmp_path / "scfdm.h5", "--quiet")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_allclose(elscli.Run.open(tmp_path / "scfdm.h5").final, ref.x[:, -1], rtol=0, atol=1e-5)


def test_parameter_shards_merge_into_the_whole_scan(tmp_path, small_bank):
    ref = random_network(tmp_path / "net.npz", small_bank, n=4)
    kw = dict(parameter="threshold", machine_params={"temperature": 0.5})
    whole = S.scan(ref, small_bank, "pca-locality", [0.0, 0.2, 0.5], **kw)
    parts = [S.scan(ref, small_bank, "pca-locality", [0.0, 0.2, 0.5], shard=(i, 2), **kw) for i in range(2)]
    for i, p in enumerate(parts):
        p.write(tmp_path / f"s{i}.h5")
    merged = merge([S.Scan.read(tmp_path / f"s{i}.h5") for i in range(2)])
    assert merged.parameter == "threshold" and merged.complete
    np.testing.assert_array_equal(merged.similarity, whole.similarity)
    np.testing.assert_array_equal(merged.best, whole.best)
    other = S.scan(ref, small_bank, "pca-locality", [0.5, 1.0, 2.0], parameter="temperature", shard=(1, 2))
    with pytest.raises(ElscliError, match="different parameter"):
        merge([parts[0], other])
    with pytest.raises(ElscliError, match="not with a scan of threshold"):
        calibrate(scans=[tmp_path / "s0.h5", tmp_path / "s1.h5"], overlay="paper:MNIST_ResNet_zeros")


def test_aggregates_of_values_are_candidates():
    best = np.array([[0.1, 0.5], [0.2, 0.5], [0.5, 0.1], [0.1, 0.2]])
    assert lower_median(best[:, 0]) == 0.1 and isinstance(lower_median(best[:, 0]), float)
    assert mode(best[:, 1]) == 0.5
    np.testing.assert_array_equal(aggregate(best, "median"), [0.1, 0.2])
    assert aggregate(best, "median").dtype == np.float64
    assert aggregate(np.array([[3, 5], [7, 5]]), "median").dtype == np.int64


def test_parameter_schedule_json(tmp_path):
    s = ParameterSchedule("sigma", (1.0, 0.5), (0.0, 0.25))
    s.save(tmp_path / "s.json")
    back = ParameterSchedule.load(tmp_path / "s.json", "sigma")
    assert back.as_mapping() == {1.0: 0.0, 0.5: 0.25} and back.to_dict() == s.to_dict()
    with pytest.raises(ElscliError, match="is not a threshold schedule"):
        ParameterSchedule.load(tmp_path / "s.json", "threshold")
    for times, values, message in [((1.0,), (0.1, 0.2), "1 times but 2"), ((1.0, 1.0), (0.1, 0.2), "twice"),
                                   ((1.5,), (0.1,), "in \\[0, 1\\]"), ((1.0,), (float("nan"),), "finite")]:
        with pytest.raises(ElscliError, match=message):
            ParameterSchedule("sigma", times, values)


def test_bad_parameter_scans_fail_in_one_line_before_any_output(tmp_path, small_bank, cli):
    ref = machine_reference(tmp_path / "net.npz", small_bank, "scfdm", {"sigma": 0.2}, n=1)
    with pytest.raises(ElscliError, match="sigma must be"):
        S.scan(ref, small_bank, "scfdm", [0.1, -0.5], parameter="sigma")
    with pytest.raises(ElscliError, match="has no parameter 'sigma'"):
        S.scan(ref, small_bank, "wiener", [0.1], parameter="sigma")
    bank = tmp_path / "bank.h5"
    small_bank.save(bank)
    base = ("locality-scan", "-r", tmp_path / "net.npz", "--bank", bank, "-o", tmp_path / "out.json",
            "--scan-out", tmp_path / "scan.h5", "--quiet")
    for args, message in [(("-m", "scfdm", "--parameter", "sigma", "--candidates", "0,-1"), "sigma must be"),
                          (("-m", "scfdm", "--parameter", "sigma", "--candidates", "0,a"), "cannot read candidate values"),
                          (("-m", "is", "--parameter", "threshold", "--candidates", "0.1"), "has no parameter 'threshold'"),
                          (("-m", "pca-locality", "--parameter", "temperature", "--candidates", "0,1"), "temperature"),
                          (("-m", "wiener",), "no patch size to calibrate"),
                          (("-m", "scfdm", "--parameter", "sigma", "--candidates", "0.1", "--overlay",
                            "paper:MNIST_ResNet_zeros"), "not with a scan of sigma")]:
        r = cli(*base, *args)
        assert r.exit_code == 1 and message in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert not (tmp_path / "out.json").exists() and not (tmp_path / "scan.h5").exists()
    r = cli("locality-scan", "--sweep", "3,5", "--bank", bank, "--parameter", "sigma", "--quiet")
    assert r.exit_code == 1 and "not with --parameter" in r.stderr
    (tmp_path / "thr.json").write_text(json.dumps({"times": [1.0], "threshold": [0.1]}))
    r = cli("sample", "--bank", bank, "-m", "scfdm", "--sigma", tmp_path / "thr.json", "-n", "1", "--steps", "2",
            "-o", tmp_path / "bad.h5", "--quiet")
    assert r.exit_code == 1 and "is not a sigma schedule" in r.stderr and r.stderr.count("\n") == 1
    ParameterSchedule("sigma", (1.0,), (0.1,)).save(tmp_path / "one.json")
    r = cli("sample", "--bank", bank, "-m", "scfdm", "--sigma", tmp_path / "one.json", "-n", "1", "--steps", "2",
            "-o", tmp_path / "bad.h5", "--quiet")
    assert r.exit_code == 1 and "no value for the step starting at t=0.5" in r.stderr
    assert not (tmp_path / "bad.h5").exists()


@pytest.mark.parametrize("machine,params,candidates,kw", [
    ("ls", {"patch_size": 3}, [3, 5, 7], {}),                                # one pass for all sizes
    ("bbels", {"patch_size": 5}, [3, 5, 7], {}),                             # one denoise per size
    ("scfdm", {"sigma": 0.2}, [0.0, 0.2, 0.5], {"parameter": "sigma"}),      # the denoiser interface
])
def test_the_scan_evaluates_machines_under_the_references_noise_schedule(tmp_path, small_bank, machine, params,
                                                                         candidates, kw):
    """A 'network' that is the machine under the linear schedule is found at every step, at L2 distance 0
    (up to the reference's float32): the candidates are evaluated at the reference's (a, b), not at
    cosine-legacy's for the same t."""
    D = elscli.machines.make_denoiser(machine, small_bank, noise_schedule="linear", **params)

    def eps_fn(x, t, labels):
        a, b = elscli.noise.scales(t, "linear")
        return (x - a * D(x, t)) / b

    seeds = np.random.default_rng(3).standard_normal((3,) + small_bank.shape).astype(np.float32)
    ref = reference.record(eps_fn, seeds, elscli.noise.time_grid(5), path=tmp_path / "net.npz",
                           noise_schedule="linear")
    got = S.scan(ref, small_bank, machine, candidates, metric="l2", **kw)
    true = params.get("patch_size", params.get("sigma"))
    np.testing.assert_array_equal(got.best, np.full(got.best.shape, true))
    k = list(candidates).index(true)
    assert got.similarity[:, k].max() < 1e-3 * got.similarity.max()


@pytest.mark.parametrize("machine,parameter,values", [("pca-locality", "threshold", [0.0, 0.2, 0.5]),
                                                      ("scfdm", "sigma", [0.0, 0.3]),
                                                      ("pspc-square", "patch_size", [3, 5])])
def test_a_parameter_scan_does_not_depend_on_threads_or_batch_size(tmp_path, small_bank, machine, parameter, values):
    require_two_threads()
    ref = random_network(tmp_path / "net.npz", small_bank, n=5)
    one = S.scan(ref, small_bank, machine, values, parameter=parameter, threads=1, batch_size=64)
    two = S.scan(ref, small_bank, machine, values, parameter=parameter, threads=2, batch_size=2)
    np.testing.assert_array_equal(one.similarity, two.similarity)
