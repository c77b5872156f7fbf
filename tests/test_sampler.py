"""The DDIM sampler: the update rule, the callback, batch independence, grid checks."""
import math

import numpy as np
import pytest

from elscli.errors import ElscliError
from elscli.noise import scales, time_grid
from elscli.sampler import check_grid, ddim


def nonlinear(x, t):
    """Any denoiser will do: the sampler must not care what it is."""
    return np.tanh(1.5 * x) * (1.0 - 0.3 * t)


def test_matches_the_released_code_update():
    """x' = sqrt(abar'/abar) x + (b' - sqrt(abar'/abar) b) eps_hat, eps_hat = (x - a x0_hat)/b."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 5, 5))
    times = time_grid(8, 1.0)
    got = []
    ddim(nonlinear, x, times, callback=lambda s: got.append(s))
    xr = x.copy()
    for i in range(len(times) - 1):
        t, tn = times[i], times[i + 1]
        a, b = scales(t)
        an, bn = scales(tn)
        x0 = nonlinear(xr, t)
        eps = (xr - a * x0) / b
        ratio = math.sqrt(an ** 2 / a ** 2)
        xr_next = ratio * xr + (bn - ratio * b) * eps
        np.testing.assert_allclose(got[i].x_next, xr_next, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got[i].x0_hat, x0)
        xr = got[i].x_next


def test_last_step_returns_x0_hat_and_callback_order():
    x = np.random.default_rng(1).standard_normal((2, 1, 4, 4))
    times = time_grid(5, 0.9)
    steps = []
    out = ddim(nonlinear, x, times, callback=steps.append)
    assert [s.index for s in steps] == list(range(5))
    assert [s.t for s in steps] == list(times[:-1]) and [s.t_next for s in steps] == list(times[1:])
    assert steps[-1].is_last and not steps[0].is_last
    assert out is steps[-1].x0_hat or np.array_equal(out, steps[-1].x0_hat)
    np.testing.assert_array_equal(steps[0].x, x)
    for s, s_next in zip(steps, steps[1:]):
        np.testing.assert_array_equal(s.x_next, s_next.x)


def test_input_is_not_modified_and_float64():
    x = np.random.default_rng(2).standard_normal((1, 1, 3, 3)).astype(np.float32)
    before = x.copy()
    out = ddim(nonlinear, x, time_grid(3))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(x, before)


def test_constant_denoiser_lands_on_its_output():
    target = np.full((1, 1, 3, 3), 0.25)
    out = ddim(lambda x, t: np.broadcast_to(target, x.shape), np.ones((1, 1, 3, 3)), time_grid(4))
    np.testing.assert_array_equal(out, target)


def test_batch_independence_bitwise():
    x = np.random.default_rng(3).standard_normal((5, 1, 6, 6))
    times = time_grid(10)
    together = ddim(nonlinear, x, times)
    for i in range(5):
        alone = ddim(nonlinear, x[i:i + 1], times)
        assert np.array_equal(alone[0], together[i])


def test_denoiser_shape_is_checked():
    with pytest.raises(ElscliError, match="shape"):
        ddim(lambda x, t: x[:, :, :2], np.zeros((1, 1, 3, 3)), time_grid(2))


@pytest.mark.parametrize("grid, message", [
    ([1.0], "at least two"),
    ([0.5, 0.7, 0.0], "descending"),
    ([1.0, 0.5], "end at t = 0"),
    ([1.2, 0.0], r"\[0, 1\]"),
    ([float("nan"), 0.0], r"\[0, 1\]"),
])
def test_bad_grids(grid, message):
    with pytest.raises(ElscliError, match=message):
        check_grid(grid)


# ======================================================================================================
# Samplers beyond deterministic DDIM: re-derivations, exact answers, per-sample noise, evaluations
# ======================================================================================================
from elscli import noise as N  # noqa: E402
from elscli.sampler import (RecordedNoise, StreamNoise, euler, heun, num_evaluations,  # noqa: E402
                            run_sampler, sample_streams)

SCHEDULES = ["cosine-legacy", "cosine", "linear", "edm"]


def old_ddim(denoiser, x, times, schedule):
    """elscli's DDIM before samplers were generalised (kept verbatim): the default path must not move a bit."""
    x = np.array(x, dtype=np.float64, copy=True)
    for i in range(len(times) - 1):
        t, t_next = float(times[i]), float(times[i + 1])
        a, b = N.scales(t, schedule)
        x0_hat = np.asarray(denoiser(x, t), dtype=np.float64)
        if t_next == 0.0:
            x_next = x0_hat
        else:
            a_next, b_next = N.scales(t_next, schedule)
            eps_hat = (x - a * x0_hat) / b
            x_next = a_next * x0_hat + b_next * eps_hat
        x = x_next
    return x


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_eta_zero_is_bitwise_the_old_ddim(schedule):
    x = np.random.default_rng(4).standard_normal((3, 1, 5, 5)) * N.get_noise_schedule(schedule).prior_std(1.0)
    times = time_grid(20)
    want = old_ddim(nonlinear, x, times, schedule)
    for got in (ddim(nonlinear, x, times, noise_schedule=schedule),
                ddim(nonlinear, x, times, noise_schedule=schedule, eta=0.0),
                run_sampler("ddim", nonlinear, x, times, noise_schedule=schedule)):
        np.testing.assert_array_equal(got, want)


class Gaussian:
    """Data x0 ~ N(mu, s^2) per pixel: the exact denoiser E[x0 | x_t] = mu + a s^2 / (a^2 s^2 + b^2) (x - a mu)."""

    def __init__(self, shape=(1, 4, 4), seed=7, schedule="cosine-legacy"):
        rng = np.random.default_rng(seed)
        self.mu = rng.uniform(-0.5, 0.5, shape)
        self.s = rng.uniform(0.2, 0.8, shape)
        self.schedule = schedule
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        a, b = N.scales(t, self.schedule)
        return self.mu + a * self.s ** 2 / (a * a * self.s ** 2 + b * b) * (x - a * self.mu)

    def flow(self, x, t, t_next):
        """The probability-flow ODE's exact map: in y = x/a, y - mu scales as sqrt(s^2 + sigma^2)."""
        sched = N.get_noise_schedule(self.schedule)
        a, a_next = sched(t)[0], sched(t_next)[0]
        sig, sig_next = sched.sigma(t), sched.sigma(t_next)
        y = x / a
        return a_next * (self.mu + (y - self.mu) * np.sqrt((self.s ** 2 + sig_next ** 2) / (self.s ** 2 + sig ** 2)))


def song_ddim_vp(D, x, times, schedule, eta, zs):
    """DDIM in Song, Meng & Ermon (2021)'s own terms (Eq. 12, sigma_t(eta) of Eq. 16), VP schedules."""
    for i in range(len(times) - 1):
        t, tn = times[i], times[i + 1]
        x0 = D(x, t)
        if tn == 0:
            return x0
        ab, abn = N.scales(t, schedule)[0] ** 2, N.scales(tn, schedule)[0] ** 2
        eps = (x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
        sig = eta * np.sqrt((1 - abn) / (1 - ab)) * np.sqrt(1 - ab / abn)
        x = np.sqrt(abn) * x0 + np.sqrt(1 - abn - sig ** 2) * eps + sig * zs[:, i]
    return x


def ddpm_posterior(D, x, times, schedule, zs):
    """DDPM ancestral sampling (Ho et al. 2020, Eqs. 6-7): x' = posterior mean of q(x' | x, x0_hat) + sqrt(var) z."""
    for i in range(len(times) - 1):
        t, tn = times[i], times[i + 1]
        x0 = D(x, t)
        if tn == 0:
            return x0
        ab, abn = N.scales(t, schedule)[0] ** 2, N.scales(tn, schedule)[0] ** 2
        beta = 1 - ab / abn
        mean = np.sqrt(abn) * beta / (1 - ab) * x0 + np.sqrt(1 - beta) * (1 - abn) / (1 - ab) * x
        var = (1 - abn) / (1 - ab) * beta
        x = mean + np.sqrt(var) * zs[:, i]
    return x


def k_diffusion_ancestral_ve(D, x, times, eta, zs):
    """The VE ancestral step (k-diffusion's get_ancestral_step / sample_euler_ancestral), edm schedule."""
    for i in range(len(times) - 1):
        t, tn = times[i], times[i + 1]
        s, sn = N.sigma(t, "edm"), N.sigma(tn, "edm")
        den = D(x, t)
        if tn == 0:
            return den
        up = min(sn, eta * (sn ** 2 * (s ** 2 - sn ** 2) / s ** 2) ** 0.5)
        down = (sn ** 2 - up ** 2) ** 0.5
        x = x + (x - den) / s * (down - s) + zs[:, i] * up
    return x


def edm_algorithm1(D, x, times, schedule, heun_steps=True):
    """Karras et al. (2022) Algorithm 1 (no churn) in y = x/a, sigma = b/a, as k-diffusion's sample_heun."""
    sched = N.get_noise_schedule(schedule)
    sig = [sched.sigma(t) for t in times]
    y = x / sched(times[0])[0]
    for i in range(len(times) - 1):
        den = D(y * sched(times[i])[0], times[i])
        d = (y - den) / sig[i]
        dt = sig[i + 1] - sig[i]
        if sig[i + 1] == 0 or not heun_steps:
            y = y + d * dt
        else:
            y2 = y + d * dt
            d2 = (y2 - D(y2 * sched(times[i + 1])[0], times[i + 1])) / sig[i + 1]
            y = y + (d + d2) / 2 * dt
    return y * sched(times[-1])[0]


def _streams(n, shape, seed=11):
    start, gens = sample_streams(range(n), seed, shape)
    return start, gens


def _zs(n, steps, shape, seed=11):
    """The noise sample j receives: default_rng([j, seed]) after its starting noise, float32-rounded."""
    zs = np.zeros((n, steps) + shape)
    for j in range(n):
        g = np.random.default_rng([j, seed])
        g.standard_normal(shape)
        for i in range(steps - 1):
            zs[j, i] = g.standard_normal(shape).astype(np.float32)
    return zs


@pytest.mark.parametrize("schedule", ["cosine-legacy", "cosine", "linear"])
@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_ddim_eta_matches_song_et_al(schedule, eta):
    shape = (1, 4, 4)
    D = Gaussian(shape, schedule=schedule)
    start, gens = _streams(3, shape)
    times = N.make_grid("uniform", 12, schedule)
    got = ddim(D, start, times, noise_schedule=schedule, eta=eta, noise=StreamNoise(gens))
    want = song_ddim_vp(D, start, times, schedule, eta, _zs(3, 12, shape))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("grid", ["uniform", "edm"])
def test_eta_one_is_ddpm_ancestral(grid):
    shape = (2, 3, 3)
    D = Gaussian(shape, schedule="linear")
    start, gens = _streams(4, shape, seed=3)
    times = N.make_grid(grid, 10, "linear")
    got = ddim(D, start, times, noise_schedule="linear", eta=1.0, noise=StreamNoise(gens))
    want = ddpm_posterior(D, start, times, "linear", _zs(4, 10, shape, seed=3))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_eta_on_the_variance_exploding_schedule(eta):
    shape = (1, 4, 4)
    D = Gaussian(shape, schedule="edm")
    start, gens = _streams(2, shape)
    start = start * N.get_noise_schedule("edm").prior_std(1.0)
    times = N.make_grid("edm", 10, "edm")
    got = ddim(D, start, times, noise_schedule="edm", eta=eta, noise=StreamNoise(gens))
    want = k_diffusion_ancestral_ve(D, start, times, eta, _zs(2, 10, shape))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("grid", ["uniform", "edm"])
def test_euler_and_heun_are_edm_algorithm_1(schedule, grid):
    shape = (1, 4, 4)
    D = Gaussian(shape, schedule=schedule)
    x = np.random.default_rng(5).standard_normal((2,) + shape) * N.get_noise_schedule(schedule).prior_std(1.0)
    times = N.make_grid(grid, 9, schedule)
    # rounding in y = x/a is relative to sigma_max (2e4 for the clipped cosine), not to the output
    tol = dict(rtol=1e-10, atol=1e-14 * N.get_noise_schedule(schedule).sigma_max)
    np.testing.assert_allclose(heun(D, x, times, noise_schedule=schedule),
                               edm_algorithm1(D, x, times, schedule), **tol)
    np.testing.assert_allclose(euler(D, x, times, noise_schedule=schedule),
                               edm_algorithm1(D, x, times, schedule, heun_steps=False), **tol)
    # Euler in sigma is DDIM (eta = 0) in exact arithmetic
    np.testing.assert_allclose(euler(D, x, times, noise_schedule=schedule),
                               ddim(D, x, times, noise_schedule=schedule), **tol)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_ode_solvers_converge_to_the_closed_form_flow(schedule):
    """Gaussian data: the flow from t_0 to the last non-zero time is known in closed form; on EDM grids of 16,
    32, 64 and 128 steps Heun's error falls ~4x per halving (second order), Euler's ~2x (first order), and
    Heun at 128 steps is within 1% of the state."""
    shape = (1, 4, 4)
    D = Gaussian(shape, schedule=schedule)
    x = np.random.default_rng(6).standard_normal((3,) + shape) * N.get_noise_schedule(schedule).prior_std(1.0)
    errs = {"euler": [], "heun": []}
    for steps in (16, 32, 64, 128):
        times = N.make_grid("edm", steps, schedule)
        exact = D.flow(x, times[0], times[-2])
        for name, fn in (("euler", euler), ("heun", heun)):
            seen = []
            final = fn(D, x, times, noise_schedule=schedule, callback=seen.append)
            penultimate = seen[-1].x
            errs[name].append(np.abs(penultimate - exact).max() / np.abs(exact).max())
            np.testing.assert_array_equal(final, D(penultimate, times[-2]))   # the last step is x0_hat
    e, h = np.array(errs["euler"]), np.array(errs["heun"])
    assert np.all(h[:-1] / h[1:] > 3.5) and np.all(h[:-1] / h[1:] < 5.0), h
    assert np.all(e[:-1] / e[1:] > 1.7) and np.all(e[:-1] / e[1:] < 2.3), e
    assert h[-1] < 0.01 and np.all(h[1:] < e[1:])          # (at 16 steps Heun can be the worse of the two)


@pytest.mark.parametrize("sampler", ["ddim", "euler", "heun"])
@pytest.mark.parametrize("schedule", ["cosine-legacy", "edm"])
def test_is_on_a_one_image_bank_is_exact(sampler, schedule):
    """IS with one training image phi returns phi at every (x, t): then every state is a phi + b eps_0 exactly
    (x_t = a(t) phi + b(t) (x_0 - a_0 phi) / b_0), for ddim, Euler and Heun, and the output is phi."""
    from elscli.machines import denoise

    rng = np.random.default_rng(8)
    phi = rng.uniform(-1, 1, (1, 1, 6, 6)).astype(np.float32)
    sched = N.get_noise_schedule(schedule)
    x = rng.standard_normal((2, 1, 6, 6)) * sched.prior_std(1.0)
    times = N.make_grid("edm", 6, schedule)
    seen = []
    final = run_sampler(sampler, lambda z, t: denoise("is", z, t, phi, noise_schedule=schedule), x, times,
                        noise_schedule=schedule, callback=seen.append)
    phi64 = phi.astype(np.float64)
    a0, b0 = sched(times[0])
    eps0 = (x - a0 * phi64) / b0
    for s in seen[:-1]:
        a, b = sched(s.t_next)
        np.testing.assert_allclose(s.x_next, a * phi64 + b * eps0, rtol=1e-12, atol=1e-13 * max(1.0, b))
    np.testing.assert_allclose(final, np.broadcast_to(phi, final.shape), rtol=0, atol=1e-12)


def test_stochastic_ddim_is_independent_of_the_batch_bitwise():
    shape = (1, 5, 5)
    D = Gaussian(shape, schedule="linear")
    ids = np.arange(7)
    times = N.make_grid("uniform", 10, "linear")

    def run(batches):
        out = np.empty((len(ids),) + shape)
        traj = np.empty((len(ids), 10) + shape)
        for rows in batches:
            start, gens = sample_streams(ids[rows], 42, shape)
            seen = []
            out[rows] = ddim(D, start, times, noise_schedule="linear", eta=1.0, noise=StreamNoise(gens),
                             callback=seen.append)
            for s in seen:
                traj[rows, s.index] = s.x_next
        return out, traj

    together = run([np.arange(7)])
    for batches in ([np.arange(i, i + 1) for i in range(7)], [np.arange(0, 3), np.arange(3, 7)],
                    [np.array([6, 0, 3]), np.array([5, 1]), np.array([2, 4])]):
        got = run(batches)
        np.testing.assert_array_equal(got[0], together[0])
        np.testing.assert_array_equal(got[1], together[1])
    # and noise really entered: the result differs from another root seed's
    start, gens = sample_streams(ids, 42, shape)
    other = ddim(D, start, times, noise_schedule="linear", eta=1.0, noise=StreamNoise(sample_streams(ids, 43, shape)[1]))
    assert not np.allclose(other, together[0])


def test_sample_streams_follow_the_seed_convention():
    """Sample i of root seed R: default_rng([i, R]) draws its starting noise, then the injected noise."""
    start, gens = sample_streams([3, 9], 5, (2, 2))
    for j, i in enumerate([3, 9]):
        g = np.random.default_rng([i, 5])
        np.testing.assert_array_equal(start[j], g.standard_normal((2, 2)))
        np.testing.assert_array_equal(gens[j].standard_normal((2, 2)), g.standard_normal((2, 2)))


def test_recorded_noise_replays_the_stream_and_the_callback_reports_it():
    shape = (1, 3, 3)
    D = Gaussian(shape)
    times = time_grid(6)
    start, gens = sample_streams(range(2), 1, shape)
    seen = []
    first = ddim(D, start, times, eta=0.7, noise=StreamNoise(gens), callback=seen.append)
    assert all(s.noise is not None for s in seen[:-1]) and seen[-1].noise is None
    zs = np.zeros((2, 6) + shape, np.float32)
    for s in seen[:-1]:
        zs[:, s.index] = s.noise
        np.testing.assert_array_equal(s.noise, s.noise.astype(np.float32))   # float32 values, replayable
    again = ddim(D, start, times, eta=0.7, noise=RecordedNoise(zs))
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("sampler, per_grid", [("ddim", lambda n: n), ("euler", lambda n: n),
                                               ("heun", lambda n: 2 * n - 1)])
@pytest.mark.parametrize("steps", [1, 5, 18])
def test_evaluations(sampler, per_grid, steps):
    D = Gaussian()
    times = N.make_grid("edm", steps)
    seen = []
    run_sampler(sampler, D, np.zeros((1, 1, 4, 4)), times, callback=seen.append)
    assert D.calls == per_grid(steps) == num_evaluations(sampler, times) == sum(s.evaluations for s in seen)
    assert len(seen) == steps


@pytest.mark.parametrize("call, match", [
    (lambda: run_sampler("dpm++", nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2)), "unknown sampler 'dpm\\+\\+'"),
    (lambda: ddim(nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), eta=-0.1), r"--eta must lie in \[0, 1\]"),
    (lambda: ddim(nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), eta=1.5), r"--eta must lie in \[0, 1\]"),
    (lambda: ddim(nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), eta=float("nan")), r"--eta must lie"),
    (lambda: ddim(nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), eta="lots"), r"--eta must be a number"),
    (lambda: ddim(nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), eta=0.5), "needs each sample's noise"),
    (lambda: run_sampler("heun", nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), eta=0.5), "ddim sampler only"),
    (lambda: ddim(nonlinear, np.zeros((1, 1, 2, 2)), time_grid(2), noise_schedule="vp"), "unknown noise schedule"),
    (lambda: heun(nonlinear, np.zeros((1, 1, 2, 2)), [0.5, 0.8, 0.0]), "descending"),
    (lambda: euler(nonlinear, np.zeros((1, 1, 2, 2)), [1.0, 0.5, 0.5, 0.0]), "descending"),
    (lambda: ddim(nonlinear, np.zeros((2, 1, 2, 2)), time_grid(3), eta=1.0,
                  noise=StreamNoise([np.random.default_rng(0)])), "1 noise generators for a batch of 2"),
    (lambda: ddim(nonlinear, np.zeros((2, 1, 2, 2)), time_grid(3), eta=1.0,
                  noise=RecordedNoise(np.zeros((2, 1, 1, 2, 2)))), "has no step 1"),
])
def test_bad_sampler_input(call, match):
    with pytest.raises(ElscliError, match=match) as exc:
        call()
    assert "\n" not in str(exc.value)
