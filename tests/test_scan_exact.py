"""Decision-exactness of the locality scan: every sample's best P at every step is what an exhaustive scan
written here (each candidate evaluated on its own, the cosine computed from its definition) chooses, and the
similarities agree to 1e-6 relative; ties (within SIMILARITY_TIE) go to the smaller P; also on the real
reference network for a few samples."""
from pathlib import Path

import numpy as np
import pytest

from elscli import machines
from elscli import reference as R
from elscli.analysis import scan as S
from elscli.noise import scales, time_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"
REAL_REF = SHARED / "reference-resnet-mnist" / "trajectories.npz"


def exhaustive(ref, bank, machine, candidates, samples=None, steps=None, metric="cosine"):
    """(S, K, T) similarities and (S, T) best sizes, the slow and plain way: one denoise call per (sample,
    candidate, step); the best is the first maximum over ascending sizes within 1e-12 (ties)."""
    samples = range(ref.num_samples) if samples is None else samples
    steps = range(ref.num_steps) if steps is None else steps
    sim = np.zeros((len(samples), len(candidates), len(steps)))
    for i, s in enumerate(samples):
        for j, step in enumerate(steps):
            t = float(ref.times[step])
            a, b = scales(t)
            x = ref.x[s, step].astype(np.float64)
            n = (-ref.eps[s, step].astype(np.float64) / b).ravel()
            for k, P in enumerate(candidates):
                m = (-(x - a * machines.denoise(machine, x, t, bank, P)) / b ** 2).ravel()
                sim[i, k, j] = (n @ m / np.sqrt((n @ n) * (m @ m)) if metric == "cosine"
                                else np.sqrt(((n - m) ** 2).sum()))
    key = sim if metric == "cosine" else -sim
    best = np.empty((len(samples), len(steps)), np.int64)
    for i in range(len(samples)):
        for j in range(len(steps)):
            top = key[i, :, j].max()
            best[i, j] = candidates[int(np.flatnonzero(key[i, :, j] >= top - 1e-12 * max(1, abs(top)))[0])]
    return sim, best


@pytest.fixture(scope="module")
def tiny_bank():
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return np.ascontiguousarray(np.load(GOLDEN)["bank_images"][:24, :, 8:24, 8:24])


@pytest.fixture(scope="module")
def noisy_network(tiny_bank):
    """A 'network' that is no one machine: sample i follows bbELS with its own sizes by step (rows of SIZES),
    plus a fixed smooth perturbation of eps, so that candidates have distinct similarities and the best sizes
    vary over samples and steps."""
    rng = np.random.default_rng(7)
    bump = rng.standard_normal((1, 16, 16)) * 0.05
    times = time_grid(5)
    sizes = [[9, 7, 5, 5, 3], [11, 9, 7, 5, 3], [7, 7, 5, 3, 3], [9, 9, 9, 7, 5], [5, 5, 3, 3, 3]]
    refs = []
    for i, row in enumerate(sizes):
        by_time = {round(float(t), 9): p for t, p in zip(times[:-1], row)}

        def eps_fn(x, t, labels, by_time=by_time):
            a, b = scales(t)
            x0 = machines.denoise("bbels", x, t, tiny_bank, by_time[round(float(t), 9)])
            return (x - a * x0) / b + bump * (1 - t)

        seed = np.random.default_rng([2, i]).standard_normal((1, 1, 16, 16)).astype(np.float32)
        refs.append(R.record(eps_fn, seed, times))
    return R.Reference(seeds=np.concatenate([r.seeds for r in refs]), times=times,
                       x=np.concatenate([r.x for r in refs]), eps=np.concatenate([r.eps for r in refs]),
                       labels=np.full(len(refs), -1), schedule=refs[0].schedule)


@pytest.mark.parametrize("machine, metric", [("bbels", "cosine"), ("els", "cosine"), ("ls", "cosine"),
                                             ("bbels", "l2")])
def test_the_scan_chooses_what_the_exhaustive_scan_chooses(noisy_network, tiny_bank, machine, metric):
    cands = [3, 5, 7, 9, 11]
    want_sim, want_best = exhaustive(noisy_network, tiny_bank, machine, cands, metric=metric)
    got = S.scan(noisy_network, tiny_bank, machine, cands, metric=metric, batch_size=2)
    np.testing.assert_array_equal(got.best, want_best)
    assert np.max(np.abs(got.similarity - want_sim) / np.abs(want_sim)) < 1e-6
    assert len(np.unique(want_best)) > 1          # a fixture where the choice varies


def test_identical_candidates_tie_to_the_smaller_size(tiny_bank, noisy_network):
    """LS windows of 31, 33 and 35 on 16x16 images all cover the whole image from every pixel: the same
    machine (IS), whatever rounding their sums see.  The scan must choose 31 everywhere."""
    sc = S.scan(noisy_network, tiny_bank, "ls", [31, 33, 35])
    assert (sc.best == 31).all()
    spread = np.ptp(sc.similarity, axis=1)
    assert spread.max() < 1e-12                   # equal to rounding
    sc = S.scan(noisy_network, tiny_bank, "bbels", [31, 33])   # every pixel a corner: LS again
    assert (sc.best == 31).all()


def tie_evaluator(bank, offsets):
    """An evaluator whose candidate k returns LS P=5's x0_hat + offsets[k] (a constant shift of every pixel):
    equal offsets make exact ties, tiny ones near-ties."""
    def evaluate(x, t, candidates, label):
        base = machines.denoise("ls", x, t, bank, 5)
        return np.stack([base + offsets[{3: 0, 5: 1, 7: 2}[p]] for p in candidates])
    evaluate.joint = False
    return evaluate


@pytest.mark.parametrize("offsets, winner", [
    ((0.0, 0.0, 0.0), 3),                      # exact ties: the smallest
    ((1e-15, 0.0, 1e-15), 3),                  # differences at rounding level: still ties
    ((0.0, -0.2, 0.0), 3),                     # 5 is worse; 3 and 7 tie
])
def test_ties_and_near_ties(noisy_network, tiny_bank, offsets, winner):
    sc = S.scan(noisy_network, tiny_bank, "ls", [3, 5, 7], evaluator=tie_evaluator(tiny_bank, offsets))
    assert (sc.best == winner).all()


def test_a_real_difference_is_not_a_tie(noisy_network, tiny_bank):
    """Two candidates 1e-2 apart in x0_hat differ by far more than SIMILARITY_TIE, even at t = 1 (where a
    = 0.0125 makes the score barely depend on x0_hat): the better one wins even when it is the larger size."""
    sc_a = S.scan(noisy_network, tiny_bank, "ls", [3, 5], evaluator=tie_evaluator(tiny_bank, (1e-2, 0.0, 0.0)))
    sc_b = S.scan(noisy_network, tiny_bank, "ls", [3, 5], evaluator=tie_evaluator(tiny_bank, (-1e-2, 0.0, 0.0)))
    gap = np.abs(sc_a.similarity[:, 0] - sc_a.similarity[:, 1])
    assert gap.min() > 100 * S.SIMILARITY_TIE
    # shifting x0 one way or the other changes which candidate is closer: the two scans disagree somewhere,
    # and where one prefers 5 the similarity of 5 really is the larger
    assert not np.array_equal(sc_a.best, sc_b.best)
    for sc in (sc_a, sc_b):
        fives = sc.best == 5
        assert np.all(sc.similarity[:, 1][fives] > sc.similarity[:, 0][fives])


@pytest.mark.skipif(not REAL_REF.exists(), reason=f"the reference network's trajectories are not at {REAL_REF}")
@pytest.mark.parametrize("machine", ["bbels", "ls"])
def test_real_reference_a_few_samples(machine):
    """The trained ResNet's own trajectory (shared/data/reference-resnet-mnist), samples 0 and 17, steps at
    t = 0.9, 0.5, 0.15, against 400 digits of mnist-5k: the scan's choices and similarities are the
    exhaustive ones."""
    from elscli.readers import load_images
    from elscli.bank import Bank

    ref = R.read(REAL_REF)
    imgs = load_images(SHARED / "mnist-5k", size=32, limit=400)
    bank = Bank.from_arrays(imgs.images, imgs.labels)
    samples, steps, cands = [0, 17], [2, 10, 17], [3, 5, 7, 9, 13]
    want_sim, want_best = exhaustive(ref, bank, machine, cands, samples, steps)
    # the three steps as a reference of their own (the scan reads x and eps at each step's start time)
    sub = R.Reference(seeds=ref.seeds[samples], times=np.append(ref.times[steps], 0.0),
                      x=ref.x[samples][:, steps + [steps[-1]]], eps=ref.eps[samples][:, steps],
                      labels=ref.labels[samples], schedule=ref.schedule)
    got = S.scan(sub, bank, machine, cands)
    np.testing.assert_array_equal(got.best, want_best)
    assert np.max(np.abs(got.similarity - want_sim) / np.abs(want_sim)) < 1e-6
