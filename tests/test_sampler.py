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
