"""The four machines against the NumPy oracle, the paper's golden values, and the properties of the math."""
import math

import numpy as np
import pytest

import elscli
from elscli.errors import ElscliError
from elscli.machines import denoise, denoise_with_provenance, score

from agreement import assert_independent_of_threads_and_batch, assert_matches_oracle
from oracle import cosine_legacy, dictionary_mean, nearest_centre, rel_err

MACHINES = ["is", "ls", "els", "bbels"]


@pytest.fixture(scope="module")
def golden(shared_data):
    return dict(np.load(shared_data / "golden" / "reference-scores-mnist.npz"))


@pytest.fixture(scope="module")
def real_bank(golden):
    """Six real MNIST digits (the golden bank), centre-cropped to 20x18 so the oracle stays quick."""
    return golden["bank_images"][:6, :, 6:26, 7:25].copy()


def random_bank(rng, N, C, H, W):
    return rng.uniform(-1, 1, (N, C, H, W)).astype(np.float32)


# ------------------------------------------------------------------------------------------ the oracle

@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("C,H,W", [(1, 9, 7), (3, 6, 8)])
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_random_banks_match_oracle(machine, C, H, W, t):
    rng = np.random.default_rng([C, H, W, int(t * 10)])
    bank = random_bank(rng, 7, C, H, W)
    x = rng.standard_normal((2, C, H, W))
    for P in ([None] if machine == "is" else [1, 3, 5]):
        assert_matches_oracle(machine, x, bank, t, P)


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("P", [3, 7])
def test_real_digits_match_oracle(machine, P, real_bank):
    rng = np.random.default_rng(P)
    a, b = cosine_legacy(0.3)
    # a realistic query: a noised training digit, as the reverse process sees it at t = 0.3
    x = (a * real_bank[[2]] + b * rng.standard_normal(real_bank[[2]].shape))
    assert_matches_oracle(machine, x, real_bank, 0.3, None if machine == "is" else P)


def test_bank_larger_than_one_block_matches_oracle():
    """More training images than one parallel block (MAX_IMAGES_PER_BLOCK = 512): the fixed-order merge of
    blocks is exact."""
    rng = np.random.default_rng(7)
    bank = random_bank(rng, 600, 1, 6, 6)
    x = rng.standard_normal((1, 1, 6, 6))
    for machine in ("ls", "els", "bbels"):
        assert_matches_oracle(machine, x, bank, 0.4, 3)


# ------------------------------------------------------------------------------- the paper's own code

def test_golden_values_from_the_papers_code(golden):
    bank = elscli.Bank.from_arrays(golden["bank_images"], golden["bank_labels"])
    x = golden["x"]
    checked = 0
    for key in golden:
        if not key.startswith("score_"):
            continue
        parts = key.split("_")
        machine = parts[1].lower()
        if machine == "is":
            P, ti, label = None, int(parts[2][1:]), None
        else:
            P, ti = int(parts[2][1:]), int(parts[3][1:])
            label = int(parts[4][len("label"):]) if len(parts) > 4 else None
        got = score(machine, x, float(golden["ts"][ti]), bank, P, label=label)
        for k in range(x.shape[0]):
            assert rel_err(got[k], golden[key][k]) <= 1e-4, key
        checked += 1
    assert checked == 3 * 3 * 3 + 2 * 3 + 3


# ------------------------------------------------------------------------------------------ properties

@pytest.mark.parametrize("machine", MACHINES)
def test_weights_sum_to_one(machine):
    """With every training pixel equal to c, x0_hat = c * sum(w): it must be exactly c."""
    rng = np.random.default_rng(1)
    bank = np.full((5, 2, 7, 6), 0.37, np.float32)
    x = rng.standard_normal((2, 2, 7, 6)) * 3
    x0 = denoise(machine, x, 0.2, bank, 5)
    np.testing.assert_allclose(x0, np.float32(0.37), rtol=0, atol=1e-12)


@pytest.mark.parametrize("machine", MACHINES)
def test_output_in_convex_hull_of_training_pixels(machine, real_bank):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2,) + real_bank.shape[1:]) * 2
    for t in (0.05, 0.5, 1.0):
        x0 = denoise(machine, x, t, real_bank, 5)
        assert x0.min() >= float(real_bank.min()) - 1e-12 and x0.max() <= float(real_bank.max()) + 1e-12


@pytest.mark.parametrize("machine", MACHINES)
def test_no_signal_limit_is_the_dictionary_mean(machine):
    rng = np.random.default_rng(3)
    bank = random_bank(rng, 6, 1, 8, 7)
    x = rng.standard_normal((1, 8, 7))
    x0 = denoise(machine, x, None, bank, 3, a=1e-12, b=1.0)
    assert rel_err(x0, dictionary_mean(machine, bank, 3)) < 1e-9


@pytest.mark.parametrize("machine", MACHINES)
def test_no_noise_limit_is_the_nearest_patch_centre(machine):
    rng = np.random.default_rng(4)
    bank = random_bank(rng, 6, 2, 7, 8)
    x = rng.uniform(-1, 1, (2, 7, 8))
    x0 = denoise(machine, x, None, bank, 3, a=1.0, b=1e-5)
    np.testing.assert_allclose(x0, nearest_centre(machine, x, bank, 3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("machine", MACHINES)
def test_permuting_the_bank_changes_nothing(machine, real_bank):
    rng = np.random.default_rng(5)
    perm = rng.permutation(len(real_bank))
    x = rng.standard_normal((2,) + real_bank.shape[1:])
    x0, prov = denoise_with_provenance(machine, x, 0.4, real_bank, 5)
    y0, pperm = denoise_with_provenance(machine, x, 0.4, real_bank[perm], 5)
    assert rel_err(y0, x0) < 1e-12
    np.testing.assert_allclose(pperm.weight, prov.weight, rtol=1e-12)
    np.testing.assert_allclose(pperm.entropy, prov.entropy, rtol=1e-9, atol=1e-12)
    # the dominant patch may be another copy of an identical patch, but its content is the same
    r = 2
    padded = np.pad(real_bank, ((0, 0), (0, 0), (r, r), (r, r)))
    def content(p, images):
        return np.stack([images[p.image[k, i, j], :, p.row[k, i, j]:p.row[k, i, j] + 5, p.col[k, i, j]:p.col[k, i, j] + 5]
                         for k in range(2) for i in range(0, real_bank.shape[2], 3) for j in range(0, real_bank.shape[3], 3)])
    np.testing.assert_array_equal(content(pperm, padded[perm]), content(prov, padded))


def test_els_commutes_with_circular_shifts(real_bank):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1,) + real_bank.shape[1:])
    x0 = denoise("els", x, 0.3, real_bank, 5)
    for shift in [(3, 0), (0, -5), (7, 4)]:
        shifted = denoise("els", np.roll(x, shift, axis=(2, 3)), 0.3, real_bank, 5)
        assert rel_err(shifted, np.roll(x0, shift, axis=(2, 3))) < 1e-12


@pytest.mark.parametrize("P", [3, 5, 7])
def test_bbels_equals_ls_on_corner_pixels(P, real_bank):
    rng = np.random.default_rng(P)
    x = rng.standard_normal((2,) + real_bank.shape[1:])
    bb = denoise("bbels", x, 0.5, real_bank, P)
    ls = denoise("ls", x, 0.5, real_bank, P)
    H, W = real_bank.shape[2:]
    r = P // 2
    corner = np.zeros((H, W), bool)
    for rows in (slice(0, r), slice(H - r, H)):
        for cols in (slice(0, r), slice(W - r, W)):
            corner[rows, cols] = True
    np.testing.assert_allclose(bb[..., corner], ls[..., corner], rtol=1e-12, atol=1e-14)
    assert not np.allclose(bb[..., ~corner], ls[..., ~corner])


def test_ls_with_a_window_covering_the_image_is_is(real_bank):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2,) + real_bank.shape[1:])
    H, W = real_bank.shape[2:]
    P = 2 * max(H, W) - 1
    for t in (0.2, 0.7):
        assert rel_err(denoise("ls", x, t, real_bank, P), denoise("is", x, t, real_bank)) < 1e-9


@pytest.mark.parametrize("machine", MACHINES)
def test_thread_count_and_batch_do_not_change_results(machine):
    rng = np.random.default_rng(9)
    bank = random_bank(rng, 600, 1, 10, 10)      # several parallel blocks
    x = rng.standard_normal((3, 1, 10, 10))
    assert_independent_of_threads_and_batch(machine, x, bank, 0.5, 5)


@pytest.mark.parametrize("machine", MACHINES)
def test_class_conditional_equals_the_filtered_bank(machine, golden):
    images, labels = golden["bank_images"][:, :, 4:28, 4:28].copy(), golden["bank_labels"]
    bank = elscli.Bank.from_arrays(images, labels)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3,) + images.shape[1:])
    lab = np.array([3, -1, 7])
    got, prov = denoise_with_provenance(machine, x, 0.6, bank, 5, label=lab)
    for k in range(3):
        sel = np.arange(len(images)) if lab[k] < 0 else np.flatnonzero(labels == lab[k])
        want, wprov = denoise_with_provenance(machine, x[k], 0.6, images[sel], 5)
        assert rel_err(got[k], want) < 1e-12
        np.testing.assert_array_equal(prov.image[k], sel[wprov.image])    # indices into the whole bank


@pytest.mark.parametrize("machine", MACHINES)
def test_identical_patches_count_every_copy_and_the_first_dominates(machine, real_bank):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1,) + real_bank.shape[1:])
    once, p1 = denoise_with_provenance(machine, x, 0.2, real_bank, 3)
    twice, p2 = denoise_with_provenance(machine, x, 0.2, np.concatenate([real_bank, real_bank]), 3)
    assert rel_err(twice, once) < 1e-12
    np.testing.assert_allclose(p2.weight, p1.weight / 2, rtol=1e-12)
    np.testing.assert_allclose(p2.entropy, p1.entropy + np.log(2), rtol=1e-9)
    np.testing.assert_array_equal(p2.image, p1.image)          # never the later copy
    np.testing.assert_array_equal(p2.row, p1.row)
    np.testing.assert_array_equal(p2.col, p1.col)


def test_all_background_patches_resolve_to_the_first_location():
    """Many identical (all -1) patches: the dominant one is the first in (image, row, col) order."""
    bank = np.full((3, 1, 8, 8), -1.0, np.float32)
    x = -np.ones((1, 1, 8, 8))
    _, prov = denoise_with_provenance("els", x, 0.1, bank, 3)
    assert np.all(prov.image == 0) and np.all(prov.row == 1) and np.all(prov.col == 1)
    np.testing.assert_allclose(prov.entropy, np.log(3 * 36))


def test_single_image_and_float32_queries():
    rng = np.random.default_rng(12)
    bank = random_bank(rng, 4, 3, 6, 6)
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    out = denoise("bbels", x, 0.5, bank, 3)
    assert out.shape == (3, 6, 6)
    np.testing.assert_array_equal(out, denoise("bbels", x[None].astype(np.float64), 0.5, bank, 3)[0])


def test_score_is_the_tweedie_form(real_bank):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1,) + real_bank.shape[1:])
    a, b = cosine_legacy(0.5)
    x0 = denoise("els", x, 0.5, real_bank, 3)
    np.testing.assert_allclose(score("els", x, 0.5, real_bank, 3), -(x - a * x0) / b ** 2, rtol=1e-12)


# ----------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,message", [
    (dict(machine="els", patch_size=4), "odd positive"),
    (dict(machine="ls", patch_size=0), "odd positive"),
    (dict(machine="bbels", patch_size=-3), "odd positive"),
    (dict(machine="els", patch_size=2.5), "odd positive"),
    (dict(machine="els", patch_size=None), "needs a patch size"),
    (dict(machine="els", patch_size=9), "empty dictionary"),
    (dict(machine="els", patch_size=3, t=0.0), "outside (0, 1]"),
    (dict(machine="els", patch_size=3, t=1.5), "outside (0, 1]"),
    (dict(machine="els", patch_size=3, t=-0.2), "outside (0, 1]"),
    (dict(machine="elz", patch_size=3), "unknown machine"),
    (dict(machine="els", patch_size=3, label=5), "no images"),
])
def test_bad_input_is_a_clear_value_error(kwargs, message):
    rng = np.random.default_rng(0)
    bank = elscli.Bank.from_arrays(random_bank(rng, 4, 1, 8, 8), np.array([0, 1, 0, 1]))
    call = dict(machine="els", x=rng.standard_normal((1, 1, 8, 8)), t=0.5, bank=bank, patch_size=3)
    call.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        denoise(**call)


@pytest.mark.parametrize("x,message", [
    (np.full((1, 1, 8, 8), np.nan), "NaN or inf"),
    (np.full((1, 1, 8, 8), np.inf), "NaN or inf"),
    (np.zeros((1, 3, 8, 8)), "must match"),
    (np.zeros((1, 1, 8, 9)), "must match"),
    (np.zeros((8, 8)), r"\(B, C, H, W\)"),
])
def test_bad_queries(x, message):
    bank = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ElscliError, match=message):
        denoise("bbels", x, 0.5, bank, 3)


def test_identical_patches_in_different_blocks_resolve_to_the_first():
    """Copies of the bank land in different parallel blocks; the first copy still dominates everywhere."""
    rng = np.random.default_rng(14)
    base = np.round(rng.uniform(-1, 1, (300, 1, 8, 8)) * 4).astype(np.float32) / 4   # coarse: many ties
    doubled = np.concatenate([base, base])                                           # 600 images: 2 blocks
    x = rng.standard_normal((2, 1, 8, 8))
    for machine in ("ls", "els", "bbels"):
        once, p1 = denoise_with_provenance(machine, x, 0.3, base, 3)
        twice, p2 = denoise_with_provenance(machine, x, 0.3, doubled, 3)
        assert rel_err(twice, once) < 1e-12
        assert np.all(p2.image < len(base))
        for name in ("image", "row", "col"):
            np.testing.assert_array_equal(getattr(p2, name), getattr(p1, name))
        np.testing.assert_allclose(p2.weight, p1.weight / 2, rtol=1e-9)


# ------------------------------------------------------------------------------- the exactness rule

def _window_sizes(machine, P, C, H, W):
    """(H, W): how many query entries each pixel's softmax compares (zero padding counts only the image)."""
    if machine == "is":
        return np.full((H, W), C * H * W)
    if machine == "els":
        return np.full((H, W), C * P * P)
    r = P // 2
    rows = np.array([min(u + r, H - 1) - max(u - r, 0) + 1 for u in range(H)])
    cols = np.array([min(v + r, W - 1) - max(v - r, 0) + 1 for v in range(W)])
    return C * rows[:, None] * cols[None, :]


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("P", [3, 5])
@pytest.mark.parametrize("zeros", [1, 512], ids=["one-block", "two-blocks"])
@pytest.mark.parametrize("path", ["default", "shift-kernel", "shift-kernel-uncompressed"])
def test_weights_within_e40_of_the_maximum_are_never_left_out(machine, P, zeros, path, monkeypatch):
    """elscli's exactness rule: only weights below e^-40 of a pixel's largest may be skipped.

    A black image (weight 1 for the black query) and a grey one c = 0.5 whose weight is e^-39.5 at interior
    pixels: x0_hat = n1 e^L c / (n0 + n1 e^L) ~ 1e-18, not 0 — the grey patches may not be dropped, by the
    shift kernel (blocks, 8-lane chunks, compressed lanes), the patch tree or the constant patch."""
    from elscli.kernels import lanes, patch_tree

    if path != "default":
        monkeypatch.setattr(patch_tree, "MIN_PRECISION", {})
    if path == "shift-kernel-uncompressed":
        monkeypatch.setattr(lanes, "COMPRESS_LANES", False)
    C, H, W, c = 1, 8, 8, 0.5
    bank = np.zeros((zeros + 1, C, H, W), np.float32)
    bank[-1] = c                                          # in the second block when there are 512 black ones
    full = C * H * W if machine == "is" else C * P * P
    L_interior = -39.5
    b = math.sqrt(c * c * full / (2 * -L_interior))       # a = 1: log w(grey) - log w(black) = -c^2 m / (2 b^2)
    x0 = denoise(machine, np.zeros((1, C, H, W)), None, bank, P, a=1.0, b=b)[0, 0]
    L = -c * c * _window_sizes(machine, P, C, H, W) / (2 * b * b)
    want = np.exp(L) * c / (zeros + np.exp(L))
    assert L.min() == pytest.approx(L_interior)
    np.testing.assert_allclose(x0, want, rtol=1e-9, atol=0)


def test_two_threads_really_run_two_threads():
    """The thread-count tests' premise: a call asking for 2 threads runs Numba's parallel loops on 2."""
    import numba
    from numba import njit, prange

    from elscli.machines import numba_threads
    from threads import require_two_threads

    require_two_threads()

    @njit(parallel=True)
    def thread_ids(n):
        out = np.empty(n, np.int64)
        for i in prange(n):
            out[i] = numba.get_thread_id()
        return out

    before = numba.get_num_threads()
    for k in (1, 2):
        with numba_threads(k):
            assert numba.get_num_threads() == k
            assert sorted(set(thread_ids(4096).tolist())) == list(range(k))
    assert numba.get_num_threads() == before
