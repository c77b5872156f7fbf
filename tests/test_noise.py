"""Noise schedules and grids: each schedule against an independent re-derivation (NumPy / 50-digit mpmath),
no cancellation at either end, sigma and its inverse, the EDM grid, bad input."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from elscli import noise as N
from elscli.errors import ElscliError

NAMES = ["cosine-legacy", "cosine", "linear", "edm"]
mpmath.mp.dps = 50
MP = mpmath.mpf


# ------------------------------------------------------------------------------------------------------
# Independent re-derivations
# ------------------------------------------------------------------------------------------------------
def ddpm_linear_alphas_cumprod():
    """DDPM (Ho et al. 2020): betas = linspace(1e-4, 0.02, 1000), alphas_cumprod = cumprod(1 - betas)."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def improved_ddpm_cosine_alphas_cumprod():
    """improved-diffusion's betas_for_alpha_bar(1000, alpha_bar, max_beta=0.999), then cumprod(1 - betas)."""
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = [min(1 - alpha_bar((i + 1) / 1000) / alpha_bar(i / 1000), 0.999) for i in range(1000)]
    return np.cumprod(1.0 - np.array(betas))


def mp_scales(name: str, t: float):
    """(a, b) in 50-digit arithmetic from each schedule's definition (t is the float given)."""
    t = MP(t)
    if name == "cosine-legacy":
        theta = t / MP(1.008) * mpmath.pi / 2
        abar = mpmath.cos(theta) ** 2
    elif name == "cosine":
        f = lambda u: mpmath.cos((u + MP(0.008)) / (1 + MP(0.008)) * mpmath.pi / 2) ** 2  # noqa: E731
        clip = MP(0.999)
        if t <= clip:
            abar = f(t) / f(0)
        else:   # their clipped last beta: abar(1) = 0.001 abar(0.999), log abar linear in between
            abar = f(clip) / f(0) * MP(0.001) ** ((t - clip) * 1000)
    elif name == "linear":
        betas = [MP(float(b)) for b in np.linspace(1e-4, 0.02, 1000)]
        u = t * 1000
        k = min(int(mpmath.floor(u)), 999)
        lo = mpmath.fsum(mpmath.log(1 - b) for b in betas[:k])
        hi = lo + mpmath.log(1 - betas[k])
        abar = mpmath.exp(lo + (u - k) * (hi - lo))
    else:
        return MP(1), 80 * t ** 7
    return mpmath.sqrt(abar), mpmath.sqrt(1 - abar)


def rel(x, ref):
    return float(abs((MP(x) - ref) / ref))


# ------------------------------------------------------------------------------------------------------
# Each schedule against its re-derivation
# ------------------------------------------------------------------------------------------------------
def test_cosine_legacy_is_the_released_formula():
    """beta(t) = 1 - cos^2(t/1.008 pi/2), a = sqrt(1 - beta), b = sqrt(beta), where that is well conditioned."""
    for t in np.linspace(0.05, 0.95, 19):
        beta = 1.0 - math.cos(t / 1.008 * math.pi / 2.0) ** 2
        a, b = N.scales(t, "cosine-legacy")
        assert a == pytest.approx(math.sqrt(1 - beta), rel=1e-13)
        assert b == pytest.approx(math.sqrt(beta), rel=1e-13)
        assert N.cosine_legacy_beta(t) == pytest.approx(beta, rel=1e-13)
    assert N.scales(1.0)[0] == pytest.approx(0.0125, abs=1e-4)   # science.md: a(1) = 0.0125


def test_linear_matches_ddpm_cumprod_at_every_step_and_log_interpolates_between():
    abar = ddpm_linear_alphas_cumprod()
    got = np.array([N.scales(k / 1000, "linear")[0] ** 2 for k in range(1, 1001)])
    np.testing.assert_allclose(got, abar, rtol=1e-12)
    # between knots: log abar linear in t (np.interp on the DDPM values, abar_0 = 1)
    knots_t = np.arange(1001) / 1000
    log_abar = np.log(np.concatenate([[1.0], abar]))
    rng = np.random.default_rng(0)
    for t in rng.uniform(0, 1, 200):
        a, b = N.scales(t, "linear")
        want = math.exp(np.interp(t, knots_t, log_abar))
        assert a * a == pytest.approx(want, rel=1e-12)
        assert b * b == pytest.approx(1 - want, rel=1e-10, abs=1e-15)


def test_cosine_matches_improved_ddpm_clipped_cumprod():
    """At t = k/1000 their cumprod of clipped betas; between knots the closed form f(t)/f(0); on the clipped
    last step, log abar linear between abar(0.999) and their abar(1) = 0.001 abar(0.999)."""
    abar = improved_ddpm_cosine_alphas_cumprod()
    got = np.array([N.scales(k / 1000, "cosine")[0] ** 2 for k in range(1, 1001)])
    np.testing.assert_allclose(got, abar, rtol=1e-10)
    assert abar[-1] == pytest.approx(0.001 * abar[-2], rel=1e-12)       # only the last beta was clipped
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2     # noqa: E731
    for t in np.random.default_rng(1).uniform(0, 0.999, 200):
        a, b = N.scales(t, "cosine")
        assert a * a == pytest.approx(f(t) / f(0), rel=1e-11)
        assert a * a + b * b == pytest.approx(1.0, rel=1e-14)
    for t in np.linspace(0.999, 1.0, 7):
        want = math.exp(np.interp(t, [0.999, 1.0], np.log(abar[-2:])))
        assert N.scales(t, "cosine")[0] ** 2 == pytest.approx(want, rel=1e-10)


def test_edm_is_variance_exploding_with_sigma_max_t_to_the_rho():
    for t in np.linspace(0, 1, 11):
        a, b = N.scales(t, "edm")
        assert a == 1.0 and b == pytest.approx(80.0 * t ** 7, rel=1e-15, abs=0)
    s = N.get_noise_schedule("edm")
    assert s.sigma_max == 80.0 and s.sigma_min == 0.002 and s.variance_exploding
    assert s.time(0.002) == pytest.approx((0.002 / 80) ** (1 / 7), rel=1e-14)
    assert s.prior_std(1.0) == 80.0 and N.get_noise_schedule("linear").prior_std(1.0) == 1.0


@pytest.mark.parametrize("name", NAMES)
def test_ends_and_monotonicity(name):
    s = N.get_noise_schedule(name)
    assert s(0.0) == (1.0, 0.0) and s.sigma(0.0) == 0.0 and s.time(0.0) == 0.0
    t = np.linspace(0, 1, 4001)
    ab = np.array([s(u) for u in t])
    sig = np.array([s.sigma(u) for u in t])
    assert np.all(np.diff(sig) > 0), "sigma must increase with t"
    assert np.all(np.diff(ab[:, 1]) > 0) and np.all(np.diff(ab[:, 0]) <= 0)
    assert np.all(ab[1:, 1] > 0) and np.all(ab[:, 0] > 0)
    np.testing.assert_allclose(sig[1:], ab[1:, 1] / ab[1:, 0], rtol=1e-14)
    if not s.variance_exploding:
        np.testing.assert_allclose(ab[:, 0] ** 2 + ab[:, 1] ** 2, 1.0, rtol=1e-14)
    assert s.sigma_max == s.sigma(1.0)
    assert 0 < s.sigma_min < s.sigma_max


# ------------------------------------------------------------------------------------------------------
# No cancellation at either end (issue 13, item 4)
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [1e-12, 1e-8, 1e-4, 0.3, 0.9])
def test_accurate_to_1e12_against_mpmath(name, t):
    a, b = N.scales(t, name)
    a_ref, b_ref = mp_scales(name, t)
    assert math.isfinite(a) and math.isfinite(b) and b > 0
    assert rel(a, a_ref) < 1e-12 and rel(b, b_ref) < 1e-12
    assert rel(N.sigma(t, name), b_ref / a_ref) < 1e-12


def test_noisy_end_without_cancellation():
    """a(t) near t = 1 is small (cosine-legacy: 0.0125, linear: 0.0064): no 1 - (1 - a^2) there either."""
    for name in ("cosine-legacy", "linear", "cosine"):
        for t in (1.0, 0.9995, 0.999, 0.9985, 0.99):
            a, b = N.scales(t, name)
            a_ref, b_ref = mp_scales(name, t)
            assert rel(a, a_ref) < 1e-12 and rel(b, b_ref) < 1e-12, (name, t)


def test_the_old_formula_did_cancel():
    """The regression this guards: b = sqrt(1 - cos^2) is 0 at t = 1e-12 and 4% off at 1e-8 (issue 13)."""
    old_b = lambda t: math.sqrt(1.0 - math.cos(t / 1.008 * math.pi / 2.0) ** 2)  # noqa: E731
    assert old_b(1e-12) == 0.0 and N.scales(1e-12)[1] > 0
    assert rel(old_b(1e-8), mp_scales("cosine-legacy", 1e-8)[1]) > 0.01


@pytest.mark.parametrize("name", NAMES)
def test_time_inverts_sigma(name):
    s = N.get_noise_schedule(name)
    ts = np.concatenate([np.logspace(-12, 0, 49), np.linspace(0.99, 1.0, 21), [0.999, 0.9995]])
    for t in ts:
        back = s.time(s.sigma(t))
        assert back == pytest.approx(t, rel=1e-9, abs=0), (t, back)


# ------------------------------------------------------------------------------------------------------
# Grids
# ------------------------------------------------------------------------------------------------------
def test_uniform_grid_is_unchanged():
    np.testing.assert_array_equal(N.time_grid(20), np.r_[np.linspace(1.0, 0.0, 21)[:-1], 0.0])
    np.testing.assert_array_equal(N.make_grid("uniform", 19, "cosine-legacy", 0.95), N.time_grid(19, 0.95))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [1, 2, 18])
def test_edm_grid_is_karras_eq5(name, steps):
    """sigma_i = (smax^(1/7) + i/(N-1) (smin^(1/7) - smax^(1/7)))^7, i < N, then 0 (EDM's own code)."""
    s = N.get_noise_schedule(name)
    times = N.make_grid("edm", steps, name)
    assert len(times) == steps + 1 and times[0] == 1.0 and times[-1] == 0.0
    assert np.all(np.diff(times) < 0)
    rho = 7
    idx = np.arange(steps)
    if steps > 1:
        want = (s.sigma_max ** (1 / rho) + idx / (steps - 1) * (s.sigma_min ** (1 / rho)
                                                                 - s.sigma_max ** (1 / rho))) ** rho
    else:
        want = np.array([s.sigma_max])
    got = np.array([s.sigma(t) for t in times[:-1]])
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert N.grid_name(times, name) == ("edm" if steps > 1 else "uniform")   # one step: both are [1, 0]
    assert N.grid_name(N.time_grid(steps), name) == "uniform"


def test_edm_uniform_grid_is_rho_spacing():
    """On the edm schedule equal steps in t are EDM's rho = 7 spacing: sigma^(1/7) is linear in t."""
    s = N.get_noise_schedule("edm")
    root = np.array([s.sigma(t) ** (1 / 7) for t in N.time_grid(10)])
    np.testing.assert_allclose(np.diff(root), np.diff(root)[0], rtol=1e-12)


def test_grid_name_custom():
    assert N.grid_name([1.0, 0.7, 0.2, 0.0]) == "custom"


# ------------------------------------------------------------------------------------------------------
# Bad input: one-line ElscliError
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: N.get_noise_schedule("quadratic"), "unknown noise schedule 'quadratic'"),
    (lambda: N.scales(1.5), r"outside \[0, 1\]"),
    (lambda: N.scales(-1e-9, "linear"), r"outside \[0, 1\]"),
    (lambda: N.scales(float("nan"), "cosine"), r"outside \[0, 1\]"),
    (lambda: N.scales("soon", "edm"), "not a number"),
    (lambda: N.get_noise_schedule("edm").time(81.0), "outside"),
    (lambda: N.get_noise_schedule("linear").time(-1.0), "outside"),
    (lambda: N.make_grid("karras", 10), "unknown grid 'karras'"),
    (lambda: N.make_grid("edm", 0), "--steps"),
    (lambda: N.make_grid("edm", 10, "edm", 0.1), "sigma_min"),
    (lambda: N.time_grid(5, 0.0), "--start-time"),
])
def test_bad_input(call, match):
    with pytest.raises(ElscliError, match=match) as exc:
        call()
    assert "\n" not in str(exc.value)
