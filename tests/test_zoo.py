"""The analytic zoo (issue 15) against its NumPy oracles (tests/oracle.py) and the limits of its math:
IS with a temperature, scfdm, nearest, wiener, pca-locality, pspc-square and ELS with wrap-around patches."""
import numpy as np
import pytest

import elscli
from elscli.errors import ElscliError
from elscli.machines import make_denoiser
from elscli.machines.gaussian import gaussian_fit
from elscli.machines.pca_locality import filter_magnitude, receptive_fields
from elscli.machines.training_set import training_set

from oracle import (cosine_legacy, oracle_denoise, oracle_els_wrap, oracle_filter_magnitude, oracle_is,
                    oracle_masks, oracle_nearest, oracle_pca_locality, oracle_pspc_square, oracle_scfdm,
                    oracle_wiener, rel_err)
from threads import require_two_threads

EXACT = 1e-9


@pytest.fixture(scope="module")
def golden(shared_data):
    return dict(np.load(shared_data / "golden" / "reference-scores-mnist.npz"))


@pytest.fixture(scope="module")
def digits(golden):
    """Real MNIST digits (the golden bank) centre-cropped to 12x11, with their labels."""
    return golden["bank_images"][:, :, 10:22, 11:22].copy(), golden["bank_labels"].copy()


def random_bank(rng, N, C, H, W):
    return rng.uniform(-1, 1, (N, C, H, W)).astype(np.float32)


def noised(rng, images, t):
    a, b = cosine_legacy(t)
    return a * images + b * rng.standard_normal(images.shape)


def separated_threshold(F, quantile):
    """A mask threshold far (relative 1e-6) from every ratio F[p, q] / max_q F[p, q]: the oracle's masks and
    the machine's then cannot differ by rounding at the threshold."""
    rows = F[F.max(1) > 0]
    ratios = np.unique(np.round(rows / rows.max(1, keepdims=True), 12))
    k = int(quantile * (len(ratios) - 1))
    while ratios[k + 1] - ratios[k] < 1e-5:
        k += 1
    return float(0.5 * (ratios[k] + ratios[k + 1]))


# ------------------------------------------------------------------------------------------ the oracles

ZOO_CASES = [("is", {"temperature": 0.5}), ("is", {"temperature": 3.0}), ("scfdm", {"sigma": 0.3}),
             ("scfdm", {"sigma": 0.05}), ("nearest", {}), ("wiener", {}), ("pspc-square", {"patch_size": 3}),
             ("pspc-square", {"patch_size": 5}), ("els", {"patch_size": 3, "wrap": True}),
             ("els", {"patch_size": 5, "wrap": True})]


def oracle_for(machine, params, x, bank, a, b):
    if machine == "is":
        return oracle_is(x, bank, a, b, params["temperature"])[0]
    if machine == "scfdm":
        return oracle_scfdm(x, bank, a, b, params["sigma"])
    if machine == "nearest":
        return oracle_nearest(x, bank, a)[0]
    if machine == "wiener":
        return oracle_wiener(x, bank, a, b)
    if machine == "pspc-square":
        return oracle_pspc_square(x, bank, a, b, params["patch_size"])
    if machine == "els":
        return oracle_els_wrap(x, bank, a, b, params["patch_size"])[0]
    raise ValueError(machine)


@pytest.mark.parametrize("machine,params", ZOO_CASES)
@pytest.mark.parametrize("C,H,W", [(1, 7, 6), (3, 5, 6)])
@pytest.mark.parametrize("t", [0.15, 0.6])
def test_random_banks_match_oracle(machine, params, C, H, W, t):
    rng = np.random.default_rng([C, H, W, int(t * 100)])
    bank = random_bank(rng, 6, C, H, W)
    x = rng.standard_normal((2, C, H, W))
    a, b = cosine_legacy(t)
    got = make_denoiser(machine, bank, **params)(x, t)
    for k in range(len(x)):
        assert rel_err(got[k], oracle_for(machine, params, x[k], bank, a, b)) < EXACT, (machine, params, k)


@pytest.mark.parametrize("machine,params", ZOO_CASES)
def test_real_digits_match_oracle(machine, params, digits):
    images = digits[0][:12]
    rng = np.random.default_rng(1)
    x = noised(rng, images[[3, 8]], 0.3)
    a, b = cosine_legacy(0.3)
    got = make_denoiser(machine, images, **params)(x, 0.3)
    for k in range(len(x)):
        assert rel_err(got[k], oracle_for(machine, params, x[k], images, a, b)) < EXACT, (machine, params, k)


@pytest.mark.parametrize("C,H,W,N", [(1, 6, 5, 9), (3, 4, 4, 60), (2, 5, 4, 7)])
@pytest.mark.parametrize("t", [0.2, 0.7])
def test_pca_locality_matches_oracle(C, H, W, N, t):
    """Masks, then x0_hat and the dominant image, on banks with fewer and with more images than values
    (the Gram and the covariance routes of the eigendecomposition)."""
    rng = np.random.default_rng([C, H, W, N])
    bank = random_bank(rng, N, C, H, W)
    bank[:, :, 0, 0] = 0.25                                   # a pixel with no variance keeps only itself
    a, b = cosine_legacy(t)
    F = oracle_filter_magnitude(bank, a, b)
    ts = training_set(bank)
    index = np.arange(N)
    got_F = filter_magnitude(ts, index, a, b)
    assert rel_err(got_F, F) < 1e-9
    for tau, quantile in [(1.0, 0.3), (0.7, 0.8)]:
        thr = separated_threshold(F, quantile)
        mask = oracle_masks(bank, a, b, thr)
        indptr, indices = receptive_fields(ts, index, a, b, thr)
        got_mask = np.zeros_like(mask)
        for p in range(H * W):
            got_mask[p, indices[indptr[p]:indptr[p + 1]]] = True
        np.testing.assert_array_equal(got_mask, mask)
        assert mask[0].sum() == 1 and 1 < mask.sum(1).max()
        x = rng.standard_normal((2, C, H, W))
        D = make_denoiser("pca-locality", bank, threshold=thr, temperature=tau)
        x0, prov = D.denoise_with_provenance(x, t)
        for k in range(2):
            want, dom = oracle_pca_locality(x[k], bank, a, b, thr, tau, mask)
            assert rel_err(x0[k], want) < EXACT
            np.testing.assert_array_equal(prov.image[k], dom)


def test_pca_locality_on_real_digits_matches_oracle(digits):
    images = digits[0][:40]
    rng = np.random.default_rng(2)
    x = noised(rng, images[[5]], 0.4)
    a, b = cosine_legacy(0.4)
    thr = separated_threshold(oracle_filter_magnitude(images, a, b), 0.5)
    got = make_denoiser("pca-locality", images, threshold=thr, temperature=0.8)(x, 0.4)
    assert rel_err(got[0], oracle_pca_locality(x[0], images, a, b, thr, 0.8)[0]) < EXACT


def test_els_wrap_provenance_matches_oracle(digits):
    images = digits[0][:5, :, :9, :9]
    rng = np.random.default_rng(3)
    x = noised(rng, images[[1]], 0.2)
    a, b = cosine_legacy(0.2)
    for P in (3, 5, 9, 13):
        x0, prov = make_denoiser("els", images, patch_size=P, wrap=True).denoise_with_provenance(x, 0.2)
        want, dom = oracle_els_wrap(x[0], images, a, b, P)
        assert rel_err(x0[0], want) < EXACT
        np.testing.assert_array_equal(prov.image[0], dom[0])
        np.testing.assert_array_equal(prov.row[0], dom[1])
        np.testing.assert_array_equal(prov.col[0], dom[2])


@pytest.mark.parametrize("machine,params", [("is", {"temperature": 2.0}), ("scfdm", {"sigma": 0.2}),
                                            ("nearest", {}), ("wiener", {}), ("pca-locality", {"threshold": 0.3}),
                                            ("pspc-square", {"patch_size": 5}),
                                            ("els", {"patch_size": 5, "wrap": True})])
def test_class_conditional_equals_the_filtered_bank(machine, params, digits):
    images, labels = digits
    bank = elscli.Bank.from_arrays(images, labels)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3,) + images.shape[1:])
    lab = np.array([3, -1, 7])
    got = make_denoiser(machine, bank, **params)(x, 0.5, label=lab)
    for k in range(3):
        sel = np.arange(len(images)) if lab[k] < 0 else np.flatnonzero(labels == lab[k])
        want = make_denoiser(machine, images[sel], **params)(x[k], 0.5)
        assert rel_err(got[k], want) < 1e-12, (machine, k)


# ------------------------------------------------------------------------------------------ the limits

def test_scfdm_at_sigma_zero_is_is(digits):
    images = digits[0]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3,) + images.shape[1:])
    for t in (0.05, 0.5, 1.0):
        x0, prov = make_denoiser("scfdm", images, sigma=0.0).denoise_with_provenance(x, t)
        y0, qrov = make_denoiser("is", images).denoise_with_provenance(x, t)
        np.testing.assert_array_equal(x0, y0)
        np.testing.assert_array_equal(prov.image, qrov.image)
        np.testing.assert_array_equal(prov.weight, qrov.weight)
    assert rel_err(make_denoiser("scfdm", images, sigma=0.2)(x, 0.5), y0) > 1e-3


def test_scfdm_at_low_noise_stays_off_the_training_images(digits):
    """As b -> 0 the smoothed posterior keeps k x with k -> 1/a (x itself is returned): the score stays finite."""
    images = digits[0]
    rng = np.random.default_rng(6)
    x = images[[4]] + 0.05 * rng.standard_normal(images[[4]].shape)
    got = make_denoiser("scfdm", images, sigma=0.5)(x, None, a=1.0, b=1e-6)
    assert rel_err(got, x) < 1e-9


def test_is_temperature_one_is_the_default_and_tau_flattens(digits):
    images = digits[0]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2,) + images.shape[1:])
    base, p1 = make_denoiser("is", images).denoise_with_provenance(x, 0.3)
    same, p2 = make_denoiser("is", images, temperature=1.0).denoise_with_provenance(x, 0.3)
    np.testing.assert_array_equal(base, same)
    hot = make_denoiser("is", images, temperature=1e6).denoise_with_provenance(x, 0.3)[1]
    assert np.all(hot.entropy > p1.entropy)
    np.testing.assert_allclose(hot.entropy, np.log(len(images)), rtol=1e-3)


def test_nearest_returns_training_images_and_is_the_low_noise_limit_of_is(digits):
    images = digits[0]
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4,) + images.shape[1:])
    for t in (0.1, 0.9):
        a, b = cosine_legacy(t)
        got, prov = make_denoiser("nearest", images).denoise_with_provenance(x, t)
        for k in range(len(x)):
            want, n = oracle_nearest(x[k], images, a)
            np.testing.assert_array_equal(got[k], images[n].astype(np.float64))
            assert np.all(prov.image[k] == n) and np.all(prov.weight[k] == 1.0)
        is_limit = make_denoiser("is", images)(x, None, a=a, b=1e-4)
        np.testing.assert_array_equal(is_limit, got)


def test_wiener_on_two_images_is_the_closed_form():
    """Two images y1, y2: mu = (y1 + y2)/2, Sigma = d d^T / 4 with d = y1 - y2 (rank one), so
    x0_hat = mu + d (a/4) <d, x - a mu> / (a^2 |d|^2 / 4 + b^2)."""
    rng = np.random.default_rng(9)
    bank = random_bank(rng, 2, 2, 5, 4)
    y = bank.astype(np.float64)
    mu = y.mean(0)
    d = y[0] - y[1]
    x = rng.standard_normal((3,) + bank.shape[1:])
    for t in (0.1, 0.5, 0.95):
        a, b = cosine_legacy(t)
        got = make_denoiser("wiener", bank)(x, t)
        for k in range(3):
            want = mu + d * (a / 4) * np.sum(d * (x[k] - a * mu)) / (a * a * np.sum(d * d) / 4 + b * b)
            assert rel_err(got[k], want) < 1e-12
    assert gaussian_fit(training_set(bank), np.arange(2)).values.shape == (1,)


def test_wiener_and_is_on_a_gaussian_bank():
    """What the math says: on N samples of a Gaussian both IS (the posterior mean of the empirical
    distribution) and wiener (that of the Gaussian fit) tend to the true posterior mean as N grows, at a fixed
    noise level and dimension, so their gap closes (here in 4 dimensions at t = 0.6, ~N^-1/2).  It does not
    close at low noise in many dimensions: IS needs samples dense at the scale b/a, N exponential in D, and
    returns a training image while wiener returns a shrunk projection."""
    rng = np.random.default_rng(10)
    L = np.array([[1.0, 0, 0, 0], [0.6, 0.5, 0, 0], [-0.3, 0.2, 0.4, 0], [0.1, 0.3, -0.2, 0.3]])
    queries_x0 = rng.standard_normal((32, 4)) @ L.T
    gaps = []
    for N in (100, 1000, 10000, 100000):
        trials = []
        for seed in range(3):
            g = np.random.default_rng([N, seed])
            bank = (g.standard_normal((N, 4)) @ L.T).reshape(N, 1, 2, 2).astype(np.float32)
            x = noised(g, queries_x0.reshape(32, 1, 2, 2), 0.6)
            trials.append(np.mean((make_denoiser("is", bank)(x, 0.6) - make_denoiser("wiener", bank)(x, 0.6)) ** 2))
        gaps.append(np.mean(trials))
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < gaps[0] / 30, gaps
    # many dimensions, low noise: IS memorises whatever N
    g = np.random.default_rng(11)
    bank = g.standard_normal((2000, 1, 8, 8)).astype(np.float32)
    x = noised(g, g.standard_normal((4, 1, 8, 8)), 0.05)
    is_out = make_denoiser("is", bank)(x, 0.05)
    nearest = make_denoiser("nearest", bank)(x, 0.05)
    assert rel_err(is_out, nearest) < 1e-6
    assert np.mean((is_out - make_denoiser("wiener", bank)(x, 0.05)) ** 2) > 0.1


def test_pca_locality_at_threshold_zero_is_is_with_its_temperature(digits):
    images = digits[0][:30]
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2,) + images.shape[1:])
    for tau in (1.0, 0.5):
        got = make_denoiser("pca-locality", images, threshold=0.0, temperature=tau)(x, 0.4)
        assert rel_err(got, make_denoiser("is", images, temperature=tau)(x, 0.4)) < 1e-12


def test_pspc_square_with_one_patch_covering_the_image_is_is():
    rng = np.random.default_rng(13)
    for C, H in [(1, 7), (3, 5)]:
        bank = random_bank(rng, 9, C, H, H)
        x = rng.standard_normal((2, C, H, H))
        for t in (0.1, 0.6):
            got = make_denoiser("pspc-square", bank, patch_size=H)(x, t)
            assert rel_err(got, make_denoiser("is", bank)(x, t)) < 1e-12


def test_pspc_square_with_one_pixel_patches_is_the_per_pixel_posterior():
    """P = 1: one patch per pixel, the LS machine at P = 1."""
    rng = np.random.default_rng(14)
    bank = random_bank(rng, 9, 2, 6, 5)
    x = rng.standard_normal((2, 2, 6, 5))
    got = make_denoiser("pspc-square", bank, patch_size=1)(x, 0.3)
    assert rel_err(got, make_denoiser("ls", bank, patch_size=1)(x, 0.3)) < 1e-12


def test_wrap_els_at_full_size_returns_circular_shifts_at_low_noise(digits):
    """At P = H = W the wrap-around ELS is the equivariant non-local ES machine: a slightly noised circular
    shift of a training image comes back as that shift, and the machine commutes with circular shifts."""
    images = digits[0][:20, :, :11, :11]
    rng = np.random.default_rng(15)
    D = make_denoiser("els", images, patch_size=11, wrap=True)
    a, b = cosine_legacy(0.05)
    for n, shift in [(2, (3, 5)), (11, (-4, 1)), (17, (0, 6))]:
        target = np.roll(images[n].astype(np.float64), shift, axis=(1, 2))
        x = a * target + b * 0.1 * rng.standard_normal(target.shape)
        assert rel_err(D(x, 0.05), target) < 1e-6
    x = rng.standard_normal((1,) + images.shape[1:])
    x0 = D(x, 0.4)
    for shift in [(2, 0), (5, -3)]:
        assert rel_err(D(np.roll(x, shift, axis=(2, 3)), 0.4), np.roll(x0, shift, axis=(2, 3))) < 1e-12


def test_wrap_els_equals_els_where_no_patch_wraps():
    """Where no training patch wraps, the two dictionaries are the same: at P = 1 (no padding at all), and on
    images of period 3 with H - 2r a multiple of 3, where every wrapping patch is a copy of a valid patch and
    every valid patch appears (H / (H - 2r))^2 times as often: the same posterior."""
    rng = np.random.default_rng(16)
    bank = random_bank(rng, 5, 2, 6, 7)
    x = rng.standard_normal((2, 2, 6, 7))
    wrap1 = make_denoiser("els", bank, patch_size=1, wrap=True).denoise_with_provenance(x, 0.3)
    els1 = make_denoiser("els", bank, patch_size=1).denoise_with_provenance(x, 0.3)
    np.testing.assert_array_equal(wrap1[0], els1[0])
    np.testing.assert_array_equal(wrap1[1].image, els1[1].image)
    tile = random_bank(rng, 4, 1, 3, 3)
    periodic = np.tile(tile, (1, 1, 3, 3))                    # 9 x 9, period 3
    xp = rng.standard_normal((2, 1, 9, 9))
    for P in (7,):                                            # H - 2r = 3
        got = make_denoiser("els", periodic, patch_size=P, wrap=True)(xp, 0.4)
        assert rel_err(got, make_denoiser("els", periodic, patch_size=P)(xp, 0.4)) < 1e-12
    assert rel_err(make_denoiser("els", bank, patch_size=3, wrap=True)(x, 0.3),
                   make_denoiser("els", bank, patch_size=3)(x, 0.3)) > 1e-3


# ------------------------------------------------------------------------------- determinism and errors

DETERMINISM = [("is", {"temperature": 0.7}), ("scfdm", {"sigma": 0.1}), ("nearest", {}), ("wiener", {}),
               ("pca-locality", {"threshold": 0.2}), ("pspc-square", {"patch_size": 5}),
               ("els", {"patch_size": 5, "wrap": True})]


@pytest.mark.parametrize("machine,params", DETERMINISM)
def test_thread_count_and_batch_do_not_change_results(machine, params):
    require_two_threads()
    rng = np.random.default_rng(17)
    bank = random_bank(rng, 600, 1, 8, 8)          # several parallel blocks
    x = rng.standard_normal((3, 1, 8, 8))
    one = make_denoiser(machine, bank, threads=1, **params)
    two = make_denoiser(machine, bank, threads=2, **params)
    r1 = one(x, 0.5)
    np.testing.assert_array_equal(r1, two(x, 0.5))
    for k in range(3):
        np.testing.assert_array_equal(r1[k], two(x[k], 0.5))
    if one.has_provenance:
        p1 = one.denoise_with_provenance(x, 0.5)[1]
        p2 = two.denoise_with_provenance(x, 0.5)[1]
        for name in ("image", "row", "col", "weight", "entropy"):
            np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name))


@pytest.mark.parametrize("machine,params,message", [
    ("scfdm", {"sigma": -0.1}, "sigma must be"),
    ("scfdm", {"sigma": float("nan")}, "sigma must be"),
    ("is", {"temperature": 0.0}, "temperature must be"),
    ("is", {"temperature": -2}, "temperature must be"),
    ("pca-locality", {"temperature": 0}, "temperature must be"),
    ("pca-locality", {"threshold": 1.5}, "every receptive field would be empty"),
    ("pca-locality", {"threshold": -0.1}, "threshold must be"),
    ("pspc-square", {"patch_size": 4}, "odd positive"),
    ("pspc-square", {"patch_size": 9}, "does not fit"),
    ("els", {"patch_size": 9}, "empty dictionary"),
    ("els", {"patch_size": 15, "wrap": True}, "twice the image side"),
    ("els", {"patch_size": 3, "wrap": "maybe"}, "true or false"),
    ("wiener", {"sigma": 1}, "has no parameter"),
])
def test_bad_parameters_are_one_line_errors(machine, params, message):
    bank = random_bank(np.random.default_rng(18), 4, 1, 7, 7)
    with pytest.raises(ElscliError, match=message) as err:
        make_denoiser(machine, bank, **params)
    assert "\n" not in str(err.value)


def test_a_bad_value_in_a_schedule_is_refused_when_used():
    bank = random_bank(np.random.default_rng(19), 4, 1, 7, 7)
    D = make_denoiser("scfdm", bank, sigma={0.5: 0.1, 0.2: -1.0})
    D(np.zeros((1, 7, 7)), 0.5)
    with pytest.raises(ElscliError, match="sigma must be"):
        D(np.zeros((1, 7, 7)), 0.2)


def test_machines_without_provenance_say_so():
    bank = random_bank(np.random.default_rng(20), 4, 1, 7, 7)
    for machine, params in [("wiener", {}), ("pspc-square", {"patch_size": 3})]:
        with pytest.raises(ElscliError, match="no provenance"):
            make_denoiser(machine, bank, **params).denoise_with_provenance(np.zeros((1, 7, 7)), 0.5)


def test_the_eigendecomposition_is_computed_once_per_bank(monkeypatch):
    from elscli.machines import gaussian

    calls = []
    real = gaussian.fit_gaussian
    monkeypatch.setattr(gaussian, "fit_gaussian", lambda images: calls.append(1) or real(images))
    bank = random_bank(np.random.default_rng(21), 30, 1, 6, 6)
    x = np.random.default_rng(22).standard_normal((2, 1, 6, 6))
    for t in (0.9, 0.5, 0.1):
        make_denoiser("wiener", bank)(x, t)
        make_denoiser("pca-locality", bank, threshold=0.2)(x, t)
    assert len(calls) == 1
    changed = bank.copy()
    changed[0, 0, 0, 0] += 0.5                                 # new content: a new fit
    make_denoiser("wiener", changed)(x, 0.5)
    assert len(calls) == 2


def test_the_functional_api_takes_each_machines_parameters():
    rng = np.random.default_rng(23)
    bank = random_bank(rng, 6, 1, 7, 7)
    x = rng.standard_normal((2, 1, 7, 7))
    np.testing.assert_array_equal(elscli.denoise("scfdm", x, 0.5, bank, sigma=0.2),
                                  make_denoiser("scfdm", bank, sigma=0.2)(x, 0.5))
    np.testing.assert_array_equal(elscli.denoise("els", x, 0.5, bank, 3, wrap=True),
                                  make_denoiser("els", bank, patch_size=3, wrap=True)(x, 0.5))
    with pytest.raises(ElscliError, match="has no parameter 'sigma'"):
        elscli.denoise("is", x, 0.5, bank, sigma=0.2)
