"""The k-d tree over distinct patches (low-noise ELS/bbELS): its structure, and results equal to the oracle
and to the shift kernel whatever the noise level, thread count and batch."""
import numpy as np
import pytest

from elscli.kernels.patch_tree import PatchTree, dedup
from elscli.machines import DEFAULT_OPTIONS, denoise_with_provenance

from agreement import assert_independent_of_threads_and_batch, assert_matches_oracle
from oracle import cosine_legacy, rel_err
from threads import require_two_threads

TREE_MACHINES = ["els", "bbels"]


@pytest.fixture(scope="module")
def digits(shared_data):
    g = np.load(shared_data / "golden" / "reference-scores-mnist.npz")
    return g["bank_images"][:12].copy()


#: Kernel options: the patch tree for every patch size at every noise level, or never.
ALWAYS_TREE = DEFAULT_OPTIONS.replace(tree_min_precision=((1, 0.0), (3, 0.0), (5, 0.0), (7, 0.0)))
NEVER_TREE = DEFAULT_OPTIONS.replace(tree_min_precision=())


def all_patches(images, index, P):
    rows, where = [], []
    r = P // 2
    for n in index:
        for u in range(images.shape[2] - P + 1):
            for v in range(images.shape[3] - P + 1):
                rows.append(images[n, :, u:u + P, v:v + P].ravel())
                where.append((n, u + r, v + r))
    return np.array(rows), np.array(where)


@pytest.mark.parametrize("P", [1, 3, 5])
def test_distinct_patches_counts_and_first_occurrences(P, digits):
    images = np.concatenate([digits[:3], digits[:2]])          # duplicates across images
    index = np.array([0, 1, 3, 4, 2])                          # any dictionary order; bank order decides
    tree = PatchTree(images, np.sort(index), P)
    rows, where = all_patches(images, np.sort(index), P)
    C = images.shape[1]
    got = {}
    D = C * P * P
    flat = tree.patches
    for node in range(len(tree.start)):
        if tree.left[node] >= 0:
            continue
        s, e = tree.start[node], tree.end[node]
        block = flat[s * D:e * D].reshape(D, e - s).T            # coordinate-major within a leaf
        for k in range(e - s):
            got[block[k].tobytes()] = (tree.counts[s + k], tuple(tree.first[s + k]))
            # the leaf's box holds its patches, on the principal axes, computed exactly
            z = block[k].astype(np.float64) @ tree.rotation
            assert np.all(z >= tree.lo[node]) and np.all(z <= tree.hi[node])
    want = {}
    for row, w in zip(rows, where):
        key = row.astype(np.float32).tobytes()
        cnt, fst = want.get(key, (0, tuple(w)))
        want[key] = (cnt + 1, fst)
    assert got == want
    assert tree.counts.sum() == len(rows) == tree.n_patches


def test_hash_collisions_are_resolved_exactly(digits, monkeypatch):
    """With every hash equal, distinct patches must still be told apart by comparing them."""
    images = digits[:2, :, 8:20, 8:20].copy()
    honest = PatchTree(images, np.arange(2), 3)
    monkeypatch.setattr(dedup, "_hash_patches",
                        lambda im, idx, P: np.zeros(len(idx) * (im.shape[2] - P + 1) * (im.shape[3] - P + 1),
                                                    dtype=np.uint64))
    colliding = PatchTree(images, np.arange(2), 3)
    assert colliding.n_distinct == honest.n_distinct
    key = lambda t: sorted(zip(map(tuple, t.first), t.counts))
    assert key(colliding) == key(honest)


def test_hashes_sharing_their_top_bits_are_told_apart(digits, monkeypatch):
    """The patches are ordered by the top 32 bits of their hash only; with those all equal (and the low
    bits honest), equal hashes must still be grouped and unequal ones kept apart."""
    images = digits[:3, :, 6:22, 6:22].copy()
    honest = PatchTree(images, np.arange(3), 3)
    real = dedup._hash_patches
    monkeypatch.setattr(dedup, "_hash_patches",
                        lambda im, idx, P: real(im, idx, P) & np.uint64(0xFFFFFFFF))
    low_only = PatchTree(images, np.arange(3), 3)
    key = lambda t: sorted(zip(map(tuple, t.first), t.counts))
    assert low_only.n_distinct == honest.n_distinct and key(low_only) == key(honest)


def test_hash_order_is_a_stable_sort_by_the_top_bits():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2 ** 63, 50_000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    hashes[::7] = hashes[3]                                    # many equal hashes, in position order
    hashes[5::11] &= np.uint64(0xFFFFFFFF)                     # many equal top bits with different low bits
    order = dedup._hash_order(hashes)
    want = np.argsort(hashes >> np.uint64(32), kind="stable")
    np.testing.assert_array_equal(order, want)


@pytest.mark.parametrize("machine", TREE_MACHINES)
@pytest.mark.parametrize("t", [0.03, 0.3, 0.9])
@pytest.mark.parametrize("P", [3, 5])
def test_tree_matches_the_oracle_at_any_noise(machine, t, P, digits):
    rng = np.random.default_rng([P, int(t * 100)])
    a, b = cosine_legacy(t)
    bank = digits[:6, :, 6:26, 7:25]
    x = a * digits[[9], :, 6:26, 7:25] + b * rng.standard_normal((1, 1, 20, 18))
    assert_matches_oracle(machine, x, bank, t, P, tol=1e-9, entropy_rtol=1e-7, options=ALWAYS_TREE)


@pytest.mark.parametrize("machine", TREE_MACHINES)
def test_tree_matches_the_oracle_on_rgb_random_banks(machine):
    rng = np.random.default_rng(5)
    bank = np.round(rng.uniform(-1, 1, (5, 3, 7, 8)) * 2).astype(np.float32) / 2    # coarse: duplicates
    x = rng.standard_normal((2, 3, 7, 8))
    assert_matches_oracle(machine, x, bank, 0.1, 3, tol=1e-9, options=ALWAYS_TREE)


@pytest.mark.parametrize("machine", TREE_MACHINES)
def test_tree_and_shift_kernel_agree_on_real_digits(machine, digits):
    rng = np.random.default_rng(8)
    a, b = cosine_legacy(0.05)
    x = a * digits[[10, 11]] + b * rng.standard_normal((2, 1, 32, 32))
    tree = denoise_with_provenance(machine, x, 0.05, digits[:10], 3, options=ALWAYS_TREE)
    shift = denoise_with_provenance(machine, x, 0.05, digits[:10], 3, options=NEVER_TREE)
    assert rel_err(tree[0], shift[0]) < 1e-12
    for name in ("image", "row", "col"):
        np.testing.assert_array_equal(getattr(tree[1], name), getattr(shift[1], name))
    np.testing.assert_allclose(tree[1].entropy, shift[1].entropy, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("machine", TREE_MACHINES)
def test_tree_results_do_not_depend_on_threads_batch_or_copies(machine, digits):
    rng = np.random.default_rng(4)
    a, b = cosine_legacy(0.05)
    x = a * digits[[1, 2]] + b * rng.standard_normal((2, 1, 32, 32))
    one = assert_independent_of_threads_and_batch(machine, x, digits, 0.05, 3, options=ALWAYS_TREE)
    doubled = denoise_with_provenance(machine, x, 0.05, np.concatenate([digits, digits]), 3,
                                      options=ALWAYS_TREE)
    assert rel_err(doubled[0], one[0]) < 1e-12
    np.testing.assert_array_equal(doubled[1].image, one[1].image)       # the first copy dominates
    np.testing.assert_allclose(doubled[1].weight, one[1].weight / 2, rtol=1e-9)


@pytest.mark.parametrize("P", [3, 5])
def test_every_node_bound_holds_on_the_principal_axes(P, digits):
    """The box bound, computed on the principal axes, is above the exact log weight of every patch below the
    node, for queries near and far from the data and at low and high noise."""
    from elscli.kernels.patch_tree.query import _bound

    tree = PatchTree(digits, np.arange(len(digits)), P, leaf_size=4)
    np.testing.assert_allclose(tree.rotation.T @ tree.rotation, np.eye(tree.D), atol=1e-12)
    D = tree.D
    rows = np.empty((tree.n_distinct, D))                      # patches in leaf order, row-major
    for node in range(len(tree.start)):
        if tree.left[node] < 0:
            s, e = tree.start[node], tree.end[node]
            rows[s:e] = tree.patches[s * D:e * D].reshape(D, e - s).T
    rng = np.random.default_rng(P)
    for t in (0.05, 0.5):
        a, b = cosine_legacy(t)
        s1, s2 = a / (b * b), a * a / (2 * b * b)
        for q in (a * rows[rng.integers(len(rows))] + b * rng.standard_normal(D), rng.standard_normal(D) * 3):
            logw = s1 * rows @ q - s2 * np.einsum("ij,ij->i", rows, rows)
            qr = (q @ tree.rotation)[None]
            for node in range(len(tree.start)):
                bound = _bound(qr, qr / a, 0, tree.lo, tree.hi, node, D, s1, s2)
                assert logw[tree.start[node]:tree.end[node]].max() <= bound + 1e-9 * (1 + abs(bound))


@pytest.mark.parametrize("P", [3, 5])
def test_tree_is_the_same_for_any_thread_count(P, digits):
    """The build runs in parallel (levels of the tree, leaves, rows): every array must be bitwise the same
    with one thread and with two, and the nodes must partition the patches."""
    import numba

    from elscli.machines import numba_threads

    require_two_threads()
    trees = []
    for threads in (1, 2):
        with numba_threads(threads):
            assert numba.get_num_threads() == threads
            trees.append(PatchTree(digits, np.arange(len(digits)), P, leaf_size=8))
    one, two = trees
    for name in ("patches", "norms", "counts", "centre", "first", "start", "end", "left", "right", "lo", "hi",
                 "rotation"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)
    assert one.start[0] == 0 and one.end[0] == one.n_distinct
    for node in range(len(one.start)):
        if one.left[node] < 0:
            assert 0 < one.end[node] - one.start[node] <= 8
        else:
            a, b = one.left[node], one.right[node]
            assert a > node and b > node
            assert (one.start[a], one.end[a], one.start[b], one.end[b]) == (
                one.start[node], one.start[b], one.end[a], one.end[node])


@pytest.mark.parametrize("P", [3, 5])
def test_tree_never_prunes_weights_within_e40_of_the_maximum(P):
    """elscli's exactness rule, in the tree: a subtree may be skipped only when its bound is below e^-40 of
    the running maximum.  A black query; the black patch has weight 1, a grey one (c = 0.5) e^-39.5, and
    far patches (|value| >= 0.9) below e^-120.  With leaves of 2 patches, black and grey sit in different
    leaves, so the grey leaf is reached only if the pruning test keeps it: x0_hat must be
    e^L c / (1 + e^L) ~ 1e-18 at every pixel, not 0."""
    from elscli.kernels.patch_tree import tree_softmax
    from elscli.kernels.softmax_state import LogWeightScales, empty_state

    rng = np.random.default_rng(P)
    H = W = 8
    c = 0.5
    far = rng.uniform(0.9, 1.0, (6, 1, H, W)) * rng.choice([-1.0, 1.0], (6, 1, H, W))
    images = np.concatenate([np.zeros((1, 1, H, W)), np.full((1, 1, H, W), c), far]).astype(np.float32)
    tree = PatchTree(images, np.arange(len(images)), P, leaf_size=2)
    D = tree.D
    leaf_of = {}
    for node in range(len(tree.start)):
        if tree.left[node] < 0:
            s, e = tree.start[node], tree.end[node]
            for row in tree.patches[s * D:e * D].reshape(D, e - s).T:
                leaf_of[row.tobytes()] = node
    black, grey = np.zeros(D, np.float32).tobytes(), np.full(D, c, np.float32).tobytes()
    assert leaf_of[black] != leaf_of[grey]
    L = -39.5
    b = np.sqrt(c * c * D / (2 * -L))
    s1, s2 = 1.0 / (b * b), 1.0 / (2 * b * b)
    r = P // 2
    xq = np.zeros((1, 1, H + 2 * r, W + 2 * r))
    ii, jj = np.meshgrid(np.arange(r, H - r), np.arange(r, W - r), indexing="ij")
    pixels = np.ascontiguousarray(np.stack([ii.ravel(), jj.ravel()], axis=1), dtype=np.int64)
    state = empty_state(H * W, 1)
    tree_softmax(xq, pixels, P, LogWeightScales(1.0, s1, s2), tree.arrays, state)
    where = pixels[:, 0] * W + pixels[:, 1]
    x0 = state.acc[where, 0] / state.s[where]
    np.testing.assert_allclose(x0, np.exp(L) * c / (1 + np.exp(L)), rtol=1e-9, atol=0)
