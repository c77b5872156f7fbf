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
@pytest.mark.parametrize("t", [0.3, 0.8])
def test_latent_banks_of_four_channels_off_the_pixel_scale_match_oracle(machine, t):
    """Latents (issue 16): 4 channels, values ~ N(0.5, 2.5^2), far outside [-1, 1]."""
    rng = np.random.default_rng([4, int(t * 10)])
    bank = (0.5 + 2.5 * rng.standard_normal((7, 4, 6, 7))).astype(np.float32)
    x = 2.0 * rng.standard_normal((2, 4, 6, 7))
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
def test_weights_within_e40_of_the_maximum_are_never_left_out(machine, P, zeros, path):
    """elscli's exactness rule: only weights below e^-40 of a pixel's largest may be skipped.

    A black image (weight 1 for the black query) and a grey one c = 0.5 whose weight is e^-39.5 at interior
    pixels: x0_hat = n1 e^L c / (n0 + n1 e^L) ~ 1e-18, not 0 — the grey patches may not be dropped, by the
    shift kernel (blocks, 8-lane chunks, compressed lanes), the patch tree or the constant patch."""
    from elscli.machines import DEFAULT_OPTIONS

    options = DEFAULT_OPTIONS
    if path != "default":
        options = options.replace(tree_min_precision=())
    if path == "shift-kernel-uncompressed":
        options = options.replace(compress_lanes=False)
    C, H, W, c = 1, 8, 8, 0.5
    bank = np.zeros((zeros + 1, C, H, W), np.float32)
    bank[-1] = c                                          # in the second block when there are 512 black ones
    full = C * H * W if machine == "is" else C * P * P
    L_interior = -39.5
    b = math.sqrt(c * c * full / (2 * -L_interior))       # a = 1: log w(grey) - log w(black) = -c^2 m / (2 b^2)
    x0 = denoise(machine, np.zeros((1, C, H, W)), None, bank, P, a=1.0, b=b, options=options)[0, 0]
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


# ------------------------------------------------------------------------- the denoiser interface

def test_a_denoiser_built_once_equals_the_functional_api(real_bank):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2,) + real_bank.shape[1:])
    for machine in MACHINES:
        params = {} if machine == "is" else {"patch_size": 5}
        D = elscli.machines.make_denoiser(machine, real_bank, **params)
        for t in (0.2, 0.6):
            got, prov = D.denoise_with_provenance(x, t)
            want, wprov = denoise_with_provenance(machine, x, t, real_bank, 5)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(D(x, t), want)
            for name in ("image", "row", "col", "weight", "entropy"):
                np.testing.assert_array_equal(getattr(prov, name), getattr(wprov, name))
            np.testing.assert_array_equal(D.score(x, t), score(machine, x, t, real_bank, 5))


def test_a_patch_size_schedule_is_evaluated_at_each_time(real_bank):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1,) + real_bank.shape[1:])
    D = elscli.machines.make_denoiser("els", real_bank, patch_size={0.8: 7, 0.3: 3})
    np.testing.assert_array_equal(D(x, 0.8), denoise("els", x, 0.8, real_bank, 7))
    np.testing.assert_array_equal(D(x, 0.3), denoise("els", x, 0.3, real_bank, 3))
    with pytest.raises(ElscliError, match="no value at t=0.5"):
        D(x, 0.5)
    D2 = elscli.machines.make_denoiser("bbels", real_bank, patch_size=lambda t: 3 if t < 0.5 else 5)
    np.testing.assert_array_equal(D2(x, 0.7), denoise("bbels", x, 0.7, real_bank, 5))
    with pytest.raises(ElscliError, match="odd positive"):
        elscli.machines.make_denoiser("ls", real_bank, patch_size={0.5: 4})(x, 0.5)


def test_prepare_builds_the_trees_of_the_schedule_before_any_call(real_bank):
    """After prepare(times) a call finds every dictionary built: the tree where the routing takes it (P = 3
    at any noise), none where it does not (P = 7)."""
    D = elscli.machines.make_denoiser("bbels", real_bank, patch_size={0.9: 7, 0.1: 3})
    D.prepare([0.9, 0.1])
    index = np.arange(len(real_bank))
    small, large = D.dictionary(index, 3), D.dictionary(index, 7)
    assert small.tree is not None and small.blocks is not None and small.constant is not None
    assert large.tree is None and large.blocks is not None
    x = np.random.default_rng(22).standard_normal((1,) + real_bank.shape[1:])
    np.testing.assert_array_equal(D(x, 0.1), denoise("bbels", x, 0.1, real_bank, 3))


def test_bad_parameters_are_one_line_errors(real_bank):
    with pytest.raises(ElscliError, match="has no parameter 'sigma'"):
        elscli.machines.make_denoiser("els", real_bank, patch_size=3, sigma=0.1)
    with pytest.raises(ElscliError, match="needs a patch size"):
        elscli.machines.make_denoiser("ls", real_bank)
    with pytest.raises(ElscliError, match="unknown machine"):
        elscli.machines.make_denoiser("wiener-filter", real_bank)


def test_a_new_machine_is_one_class(real_bank):
    """A machine registered from outside the package runs through the same calls (labels, single images,
    scales) and reports that it has no provenance."""
    from elscli.machines import Denoiser, Parameter, interface

    def check_weight(v, shape):
        if not 0.0 <= float(v) <= 1.0:
            raise ElscliError(f"weight must lie in [0, 1], got {v}")
        return float(v)

    class Blend(Denoiser):
        name = "test-blend"
        parameters = (Parameter("weight", "share of the dictionary mean", check_weight, default=0.5),)
        has_provenance = False

        def _denoise(self, x, index, t, a, b, values, provenance):
            mean = self.bank.images[index].astype(np.float64).mean(axis=0)
            return values["weight"] * mean + (1 - values["weight"]) * x / max(a, 1e-12), None

    elscli.machines.register(Blend)
    try:
        bank = elscli.Bank.from_arrays(real_bank, np.array([0, 1, 0, 1, 0, 1]))
        D = elscli.machines.make_denoiser("test-blend", bank, weight=1.0)
        x = np.zeros((2,) + real_bank.shape[1:])
        got = D(x, 0.5, label=[1, -1])
        np.testing.assert_allclose(got[0], real_bank[[1, 3, 5]].astype(np.float64).mean(0))
        np.testing.assert_allclose(got[1], real_bank.astype(np.float64).mean(0))
        assert D(x[0], 0.5).shape == x[0].shape
        with pytest.raises(ElscliError, match="no provenance"):
            D.denoise_with_provenance(x, 0.5)
        with pytest.raises(ElscliError, match=r"weight must lie in \[0, 1\]"):
            elscli.machines.make_denoiser("test-blend", bank, weight=2.0)
    finally:
        interface._REGISTRY.pop("test-blend")


# ------------------------------------------------------------------ banks: one check, content keys

@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("P", [3, 7])
def test_a_bank_changed_in_place_is_never_served_from_a_cache(machine, P):
    """Issue 13's snippet, for every machine and both kernel routes (P = 3: the patch tree for ELS and the
    bbELS interior; P = 7: the shift kernel), through every cache (blocks, constant patches, trees,
    dictionaries, checked banks): after X[:] = ..., the result is that of a fresh copy of X."""
    X = np.random.default_rng(0).uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)
    X[:, :, :3, :3] = -1.0                            # some flat patches: the constant patch takes part
    x = np.random.default_rng(1).standard_normal((1, 1, 8, 8))
    y0, p0 = denoise_with_provenance(machine, x, 0.5, X, P)
    X[:] = np.random.default_rng(2).uniform(-1, 1, X.shape)
    y1, p1 = denoise_with_provenance(machine, x, 0.5, X, P)
    want, wprov = denoise_with_provenance(machine, x, 0.5, X.copy(), P)
    assert not np.array_equal(y0, want)
    np.testing.assert_array_equal(y1, want)
    np.testing.assert_array_equal(p1.image, wprov.image)
    np.testing.assert_array_equal(p1.weight, wprov.weight)


@pytest.mark.parametrize("machine", MACHINES)
def test_a_bank_objects_images_changed_in_place_are_never_served_from_a_cache(machine):
    rng = np.random.default_rng(3)
    bank = elscli.Bank.from_arrays(rng.uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32), np.arange(6) % 2)
    x = rng.standard_normal((2, 1, 8, 8))
    D = elscli.machines.make_denoiser(machine, bank, **({} if machine == "is" else {"patch_size": 3}))
    y0 = D(x, 0.5, label=[0, -1])
    if bank.images.flags.writeable:                   # a Bank whose images can change: changed in place
        bank.images[:] = rng.uniform(-1, 1, bank.images.shape)
        want = denoise(machine, x, 0.5, elscli.Bank.from_arrays(bank.images.copy(), np.arange(6) % 2), 3,
                       label=[0, -1])
        got = denoise(machine, x, 0.5, bank, 3, label=[0, -1])
        assert not np.array_equal(got, y0)
        np.testing.assert_array_equal(got, want)
        # a denoiser built before the change keeps the images it was built for
        np.testing.assert_array_equal(D(x, 0.5, label=[0, -1]), y0)
    else:                                             # read-only images: they cannot change
        with pytest.raises(ValueError):
            bank.images[:] = 0.0


def test_frozen_arrays_are_used_as_they_are_and_writeable_ones_copied():
    from elscli.machines import training_set

    X = np.random.default_rng(4).uniform(-1, 1, (3, 1, 5, 5)).astype(np.float32)
    ts = training_set(X)
    assert ts.images is not X and not ts.images.flags.writeable
    assert training_set(X).key == ts.key == training_set(X.copy()).key
    X.flags.writeable = False
    assert training_set(X).images is X
    Y = X.copy()
    Y[0, 0, 0, 0] += 0.25
    assert training_set(Y).key != ts.key
    # remembered while writeable, changed, then frozen: the change is seen
    Z = X.copy()
    before = training_set(Z).key
    Z[1, 0, 2, 2] = -Z[1, 0, 2, 2]
    Z.flags.writeable = False
    assert training_set(Z).key != before and training_set(Z).images is Z


@pytest.mark.parametrize("bank,message", [
    (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN or infinite"),
    (np.full((2, 1, 8, 8), -np.inf), "NaN or infinite"),
    (np.zeros((2, 8, 8), np.float32), r"\(N, C, H, W\)"),
    (np.zeros((2, 1, 8, 8), complex), "real"),
    (np.zeros((2, 1, 8, 8), bool), "real"),
    (np.zeros((0, 1, 8, 8), np.float32), "at least one"),
    (np.array([[[["a"]]]]), "real"),
])
@pytest.mark.parametrize("machine", MACHINES)
def test_bad_raw_banks_are_one_line_errors(bank, message, machine):
    with pytest.raises(ElscliError, match=message) as info:
        denoise(machine, np.zeros((1, 1, 8, 8)), 0.5, bank, 3)
    assert "\n" not in str(info.value)


def test_banks_of_any_range_and_channel_count_are_accepted():
    """Latent banks: values far outside [-1, 1], four channels — the machines still agree with the oracle."""
    rng = np.random.default_rng(5)
    bank = (rng.standard_normal((5, 4, 6, 6)) * 7).astype(np.float32)
    x = rng.standard_normal((1, 4, 6, 6)) * 7
    for machine in MACHINES:
        assert_matches_oracle(machine, x, bank, 0.5, None if machine == "is" else 3)


def test_the_content_cache_drops_the_least_recently_used():
    from elscli.machines.cache import ContentCache

    built = []
    cache = ContentCache(2)
    make = lambda k: cache.get(k, lambda: built.append(k) or k)
    for k in ("a", "b", "a", "c", "a", "b"):
        make(k)
    assert built == ["a", "b", "c", "b"]
    assert len(cache) == 2 and "a" in cache and "b" in cache
