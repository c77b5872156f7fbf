"""Spatial inconsistency (elscli.analysis.consistency): hand-made images with known topology, the
conventions against independent oracles, the score against a brute-force conformal oracle, and the two
statistical facts the score is for — training digits score consistent, shuffled-block digits do not."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from elscli.analysis import consistency as C
from elscli.errors import ElscliError

YY, XX = np.mgrid[:32, :32]


def _ring(cy=15.5, cx=15.5, r0=6.0, r1=8.5):
    r = np.hypot(YY - cy, XX - cx)
    return (r >= r0) & (r <= r1)


def _disk(cy, cx, r=2.0):
    return np.hypot(YY - cy, XX - cx) <= r


def _shape(name: str) -> np.ndarray:
    m = np.zeros((32, 32), bool)
    if name == "ring":
        return _ring()
    if name == "cross":                                  # 3-pixel-wide arms
        m[15:18, 4:28] = True
        m[4:28, 15:18] = True
    elif name == "two dots":                             # round dots: each skeletonises to one pixel
        m = _disk(6, 6) | _disk(22, 24)
    elif name == "eight":                                # two stacked rings touching: two loops, two junctions
        m = _ring(9, 15.5, 4.5, 6.2) | _ring(22, 15.5, 5.5, 7.2)
    elif name == "digital eight":                        # a box with a middle bar, 2 pixels wide
        for r in (4, 15, 27):
            m[r:r + 2, 8:24] = True
        m[4:29, 8:10] = True
        m[4:29, 22:24] = True
    elif name == "line":
        m[10, 5:25] = True
    elif name == "staircase":                            # a diagonal stroke two pixels wide
        for i in range(20):
            m[5 + i, 5 + i:7 + i] = True
    elif name == "T":
        m[5:8, 5:27] = True
        m[5:28, 15:18] = True
    elif name == "empty":
        pass
    return m


@pytest.mark.parametrize("name, expected", [
    ("ring", dict(components=1, holes=1, end_points=0, branch_points=0)),
    ("cross", dict(components=1, holes=0, end_points=4, branch_points=1)),
    ("two dots", dict(components=2, holes=0, end_points=0, branch_points=0)),
    ("eight", dict(components=1, holes=2, end_points=0, branch_points=2)),
    ("digital eight", dict(components=1, holes=2, end_points=0, branch_points=2)),
    ("line", dict(components=1, holes=0, end_points=2, branch_points=0)),
    ("staircase", dict(components=1, holes=0, end_points=2, branch_points=0)),
    ("T", dict(components=1, holes=0, end_points=3, branch_points=1)),
    ("empty", dict(components=0, holes=0, end_points=0, branch_points=0)),
])
def test_hand_made_images_have_their_known_topology(name, expected):
    mask = _shape(name)
    assert C.image_topology(mask) == expected
    # the same through images on [-1, 1] and the default threshold (0): ink is strictly above it
    img = np.where(mask, 1.0, -1.0)[None, None].astype(np.float32)
    topo = C.topology(img)
    assert {k: int(topo[k][0]) for k in C.FEATURES} == expected
    assert topo.ink_fraction[0] == pytest.approx(mask.mean())
    # transposing an image changes none of its counts
    assert C.image_topology(mask.T) == expected


def test_threshold_decides_what_is_ink():
    img = np.full((1, 1, 32, 32), -1.0)
    img[0, 0][_disk(8, 8)] = 0.5                       # a faint dot and a strong dot
    img[0, 0][_disk(24, 24)] = 1.0
    assert C.topology(img)["components"][0] == 2
    assert C.topology(img, threshold=0.7)["components"][0] == 1
    img[0, 0][_disk(8, 8)] = 0.0                       # exactly at the threshold: not ink
    assert C.topology(img)["components"][0] == 1


def _holes_oracle(mask: np.ndarray) -> int:
    """Holes the textbook way: pad with background, count 4-connected background components, minus the outside."""
    from scipy import ndimage

    padded = np.pad(~mask, 1, constant_values=True)
    return ndimage.label(padded, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])[1] - 1


@settings(max_examples=120)
@given(arrays(bool, (11, 13)))
def test_components_minus_holes_is_the_euler_number(mask):
    """8-connected ink, 4-connected background: components - holes = Euler number (skimage, connectivity 2)."""
    from skimage.measure import euler_number

    t = C.image_topology(mask)
    assert t["holes"] == _holes_oracle(mask)
    assert t["components"] - t["holes"] == euler_number(mask, connectivity=2)


def _crossing_oracle(skel: np.ndarray, y: int, x: int) -> int:
    cycle = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    H, W = skel.shape
    v = [bool(skel[y + dy, x + dx]) if 0 <= y + dy < H and 0 <= x + dx < W else False for dy, dx in cycle]
    return sum(1 for k in range(8) if not v[k] and v[(k + 1) % 8])


@settings(max_examples=60)
@given(arrays(bool, (9, 10)))
def test_end_and_branch_pixels_follow_the_crossing_number(mask):
    sk = C.skeleton_points(mask)
    for y, x in np.argwhere(sk.skeleton):
        cn = _crossing_oracle(sk.skeleton, y, x)
        assert sk.end_points[y, x] == (cn == 1)
        assert sk.branch_pixels[y, x] == (cn >= 3)
    assert not np.any((sk.end_points | sk.branch_pixels) & ~sk.skeleton)


def test_rgb_and_nan_are_refused():
    with pytest.raises(ElscliError, match="line images"):
        C.topology(np.zeros((2, 3, 8, 8)))
    bad = np.zeros((1, 1, 8, 8))
    bad[0, 0, 2, 2] = np.nan
    with pytest.raises(ElscliError, match="NaN"):
        C.topology(bad)


# ================================================================================================ the score
def _dist_from_features(feats: np.ndarray, labels=None, score_features=("components", "end_points"), level=0.95):
    """A BankDistribution over given count vectors (no images needed)."""
    feats = np.asarray(feats, np.int64)
    counts = {k: np.zeros(len(feats), np.int64) for k in C.FEATURES}
    for j, k in enumerate(score_features):
        counts[k] = feats[:, j]
    topo = C.Topology(counts, np.zeros(len(feats)))
    lab = np.full(len(feats), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    return C.BankDistribution(topo, lab, tuple(score_features), level)


def _topo(feats, score_features=("components", "end_points")):
    return _dist_from_features(feats, score_features=score_features).topology


def _score_oracle(bank: np.ndarray, x: np.ndarray):
    """The conformal definition, literally: the pool is bank + [x]; D(z) = #pool members >= z everywhere."""
    pool = np.vstack([bank, x[None]])
    D = np.array([np.sum(np.all(pool >= z, axis=1)) for z in pool])
    n = len(bank)
    return D[-1] / (n + 1), np.sum(D[:-1] > D[-1]) / n


@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(2, 40), st.integers(0, 2 ** 32 - 1))
def test_score_matches_the_conformal_oracle(K, n, seed):
    rng = np.random.default_rng(seed)
    feats = ("components", "holes", "end_points")[:K]
    bank = rng.integers(0, 4, (n, K))
    dist = _dist_from_features(bank, score_features=feats)
    xs = rng.integers(0, 6, (7, K))                      # some beyond every bank value
    s = dist.score(_topo(xs, feats))
    for i, x in enumerate(xs):
        tail, pct = _score_oracle(bank, x)
        assert s.tail[i] == pytest.approx(tail, abs=1e-15)
        assert s.percentile[i] == pytest.approx(pct, abs=1e-15)
        assert s.inconsistent[i] == (pct >= 0.95)
    own = dist.score_bank()
    for i in range(n):
        D = np.sum(np.all(bank >= bank[i], axis=1))
        assert own.tail[i] == pytest.approx(D / n)
        others = np.array([np.sum(np.all(bank >= z, axis=1)) for z in bank])
        assert own.percentile[i] == pytest.approx(np.sum(others > D) / n)


@settings(max_examples=40)
@given(st.integers(20, 300), st.integers(0, 2 ** 32 - 1), st.sampled_from([0.8, 0.9, 0.95]))
def test_at_most_one_minus_level_of_the_bank_is_inconsistent(n, seed, level):
    rng = np.random.default_rng(seed)
    bank = rng.poisson([1.2, 2.5], (n, 2))
    own = _dist_from_features(bank, level=level).score_bank()
    assert np.mean(own.inconsistent) <= 1 - level + 1e-12
    # a bank image added as a new sample is never more inconsistent than it is within the bank
    as_samples = _dist_from_features(bank, level=level).score(_topo(bank))
    assert np.all(as_samples.percentile <= own.percentile + 1e-12)


def test_more_complex_samples_are_less_consistent():
    rng = np.random.default_rng(0)
    dist = _dist_from_features(rng.poisson([1.0, 2.0], (400, 2)))
    s = dist.score(_topo([[1, 2], [2, 4], [4, 9], [9, 30]]))
    assert np.all(np.diff(s.tail) <= 0) and np.all(np.diff(s.percentile) >= 0)
    assert s.tail[-1] == pytest.approx(1 / 401)           # beyond every bank image: only itself dominates
    assert not s.inconsistent[0] and s.inconsistent[-1]


def test_class_conditional_score_uses_the_samples_class():
    """Class 0 digits have two strokes, class 1 one: two strokes are ordinary for a 0 and odd for a 1."""
    rng = np.random.default_rng(1)
    zeros = np.column_stack([np.full(100, 2), rng.integers(2, 5, 100)])
    ones = np.column_stack([np.ones(100, np.int64), rng.integers(1, 3, 100)])
    dist = _dist_from_features(np.vstack([zeros, ones]), labels=[0] * 100 + [1] * 100)
    x = _topo([[2, 3], [2, 3], [2, 3]])
    s = dist.score(x, np.array([0, 1, -1]))
    assert list(s.group) == [0, 1, -1]
    assert not s.inconsistent[0] and s.inconsistent[1]
    with pytest.raises(ElscliError, match="class 7"):
        dist.score(x, np.array([7, 7, 7]))


def test_bad_score_options_are_refused():
    imgs = np.where(np.stack([_shape("ring"), _shape("cross")]), 1.0, -1.0)[:, None]
    with pytest.raises(ElscliError, match="unknown feature"):
        C.BankDistribution.from_images(imgs, score_features=("loops",))
    with pytest.raises(ElscliError, match="level"):
        C.BankDistribution.from_images(imgs, level=1.0)
    with pytest.raises(ElscliError, match="at least two"):
        C.BankDistribution.from_images(imgs[:1])


# ================================================================================ real digits: the two facts
def _bundled_digits():
    from elscli.bank import build_bank
    from tests.conftest import REPO

    bank, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    return bank.images, bank.labels


def shuffle_blocks(images: np.ndarray, block: int = 4, seed: int = 0) -> np.ndarray:
    """Each image's block x block tiles permuted at random: every tile is a real piece of a digit, the whole
    is not (the patch mosaic with no consistency at all)."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    S, _, H, W = images.shape
    for i in range(S):
        tiles = images[i, 0].reshape(H // block, block, W // block, block).swapaxes(1, 2).reshape(-1, block, block)
        tiles = tiles[rng.permutation(len(tiles))]
        out[i, 0] = tiles.reshape(H // block, W // block, block, block).swapaxes(1, 2).reshape(H, W)
    return out


@pytest.fixture(scope="module")
def digits():
    return _bundled_digits()


def test_training_digits_score_consistent_and_shuffled_blocks_do_not(digits):
    images, labels = digits                               # sorted by class: split at random
    order = np.random.default_rng(0).permutation(len(images))
    train, held = np.sort(order[:600]), np.sort(order[600:])
    dist = C.BankDistribution.from_images(images[train], labels[train])
    own = dist.score_bank()
    assert np.mean(own.inconsistent) <= 0.05
    # the bank's own images, scored as samples, are consistent at least as often
    assert np.mean(dist.score(dist.topology).inconsistent) <= np.mean(own.inconsistent)
    # unseen digits of the same distribution: the conformal guarantee (<= 5%, plus sampling noise)
    held_topo = C.topology(images[held])
    for lab in (None, labels[held]):
        assert np.mean(dist.score(held_topo, lab).inconsistent) <= 0.09
    # 4x4 blocks of the held-out digits shuffled: far more often inconsistent than the bank
    shuffled = C.topology(shuffle_blocks(images[held]))
    s = dist.score(shuffled)
    assert np.mean(s.inconsistent) >= 0.8
    assert np.mean(s.inconsistent) >= 10 * max(np.mean(own.inconsistent), 0.01)
    assert np.median(shuffled["components"]) > np.median(held_topo["components"])
    assert np.median(shuffled["end_points"]) > np.median(held_topo["end_points"])


# ================================================================================================ agreement
def test_cohens_kappa_of_a_known_table():
    """20 both, 5 first only, 10 second only, 15 neither: p_o = 0.7, p_e = 0.5, kappa = 0.4."""
    ref = np.array([1] * 20 + [1] * 5 + [0] * 10 + [0] * 15, bool)
    run = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15, bool)
    a = C.agreement(ref, run)
    assert (a.both, a.reference_only, a.run_only, a.neither) == (20, 5, 10, 15)
    assert a.agreement == pytest.approx(0.7)
    assert a.kappa == pytest.approx(0.4)
    assert C.agreement(ref, ref).kappa == pytest.approx(1.0)
    assert np.isnan(C.agreement(np.ones(5, bool), np.ones(5, bool)).kappa)    # one class only: undefined
    assert C.agreement(np.ones(5, bool), np.ones(5, bool)).as_dict()["kappa"] is None


# ================================================================================================ the sweep
def _finals(name, images, seeds, params):
    S = len(images)
    return C.Finals(name, "run", "bbels", images.astype(np.float32), np.arange(S, dtype=np.int64),
                    np.full(S, -1, np.int64), seeds.astype(np.float32), params)


def test_sweep_orders_by_scale_over_shared_seeds(digits, tmp_path, monkeypatch):
    from figures import capture_layout_faults

    from elscli.analysis.consistency_plots import consistency_plots

    faults = capture_layout_faults(monkeypatch)

    images, labels = digits
    dist = C.BankDistribution.from_images(images[::2], labels[::2])
    seeds = np.random.default_rng(0).standard_normal((8, 1, 32, 32))
    clean, broken = images[1:17:2], shuffle_blocks(images[1:17:2])
    # F = 0.5 makes shuffled digits, F = 2 clean ones; F = 1 is half and half and holds only 6 of the 8 seeds
    runs = [_finals("wide", clean, seeds, {"schedule_scale": 2.0, "patch_sizes": [23, 7]}),
            _finals("narrow", broken, seeds, {"schedule_scale": 0.5, "patch_sizes": [5, 1]}),
            _finals("mid", np.concatenate([broken[:3], clean[3:6]]), seeds[:6], {"patch_sizes": [11, 3]})]
    rep = C.consistency_report(dist, runs, copies_against=images[::2])
    pts = rep.sweep()
    assert [p["scale"] for p in pts] == [0.5, 1.0, 2.0] and [p["samples"] for p in pts] == [6, 6, 6]
    inc = [p["inconsistent_fraction"] for p in pts]
    assert inc[0] > inc[1] > inc[2]
    assert inc[1] == pytest.approx(np.mean(rep.inputs[2].scores.inconsistent))       # mid: all its 6 samples
    assert inc[0] == pytest.approx(np.mean(rep.inputs[1].scores.inconsistent[:6]))   # narrow: the shared 6
    assert pts[0]["components"]["median"] > pts[2]["components"]["median"]
    assert all(p["copy_fraction"] == 0 for p in pts[:2])
    written = consistency_plots(rep, tmp_path, sweep=True)
    assert {p.split("/")[-1] for p in written} == {"histograms.png", "grid-wide.png", "grid-narrow.png",
                                                  "grid-mid.png", "sweep.png"}
    assert len(faults) == 5 and all(v == [] for v in faults.values()), faults     # no text over another


@pytest.mark.parametrize("params, seeds_ok, message", [
    ([{"schedule_scale": 2.0}, {"schedule_scale": 2.0}], True, "same schedule scale 2"),
    ([{"schedule_scale": 2.0}, {"late_scale": 0.5, "late_from": 0.3}], True, "mix"),
    ([{"late_scale": 2.0, "late_from": 0.3}, {"late_scale": 0.5, "late_from": 0.2}], True, "mix"),
    ([{"schedule_scale": 2.0}, {"schedule_scale": 0.5}], False, "match no sample"),
])
def test_sweep_refuses_runs_that_are_not_one_sweep(digits, params, seeds_ok, message):
    images, labels = digits
    dist = C.BankDistribution.from_images(images[::4])
    rng = np.random.default_rng(1)
    seeds = rng.standard_normal((3, 1, 32, 32))
    other = seeds if seeds_ok else rng.standard_normal((3, 1, 32, 32))
    runs = [_finals("a", images[1:4], seeds, params[0]), _finals("b", images[5:8], other, params[1])]
    with pytest.raises(ElscliError, match=message):
        C.consistency_report(dist, runs).sweep()


def test_report_agreement_matches_its_definitions(digits):
    """consistency_report's 2x2 table and rank correlation, recomputed from the per-sample scores."""
    from scipy.stats import spearmanr

    images, labels = digits
    dist = C.BankDistribution.from_images(images[::2], labels[::2])
    rng = np.random.default_rng(4)
    seeds = rng.standard_normal((10, 1, 32, 32))
    mixed = np.concatenate([shuffle_blocks(images[1:11:2]), images[11:21:2]])
    order = rng.permutation(10)                          # the run holds the same seeds in another order
    ref = C.Finals("network", "reference", None, mixed.astype(np.float32), np.arange(10), np.full(10, -1),
                   seeds.astype(np.float32))
    other = np.concatenate([images[1:7:2], shuffle_blocks(images[7:21:2], seed=1)])
    run = _finals("run", other[order], seeds[order], {})
    rep = C.consistency_report(dist, [run], ref)
    a, idx, _ = rep.agreements["run"]
    assert idx.tolist() == order.tolist()
    r_flags, m_flags = rep.reference.scores.inconsistent[order], rep.inputs[0].scores.inconsistent
    assert a.both == np.sum(r_flags & m_flags) and a.neither == np.sum(~r_flags & ~m_flags)
    assert a.reference_only == np.sum(r_flags & ~m_flags) and a.run_only == np.sum(~r_flags & m_flags)
    assert a.spearman == pytest.approx(spearmanr(rep.reference.scores.tail[order], rep.inputs[0].scores.tail)[0])
    flat = C.consistency_report(dist, [_finals("flat", shuffle_blocks(images[1:21:2]), seeds, {})], ref)
    assert flat.agreements["flat"][0].as_dict()["spearman_tail"] is None     # a constant input: undefined
