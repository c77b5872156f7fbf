"""Live-lane compression (kernels/lanes.py) and the weight sums that use it, against plain NumPy."""
import math

import numpy as np
import pytest

from elscli.kernels import lanes
from elscli.kernels.config import SKIP_LOG_RATIO
from elscli.kernels.lanes import compress_live
from elscli.kernels.softmax_state import add_weights, add_weights_live, empty_state
from elscli.machines import DEFAULT_OPTIONS, denoise_with_provenance

from agreement import assert_matches_oracle
from oracle import cosine_legacy, rel_err


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 64, 504, 509])
def test_compress_live_keeps_exactly_the_live_lanes_in_order(n):
    rng = np.random.default_rng(n)
    logw = rng.normal(size=n + 3)
    logw[::5] = -1e300                                      # excluded lanes are never live
    centre = rng.normal(size=n + 3).astype(np.float32)
    out = np.full(n + 3, np.nan)
    outc = np.full(n + 3, np.nan, dtype=np.float32)
    kk = compress_live(logw, centre, n, 0.1, out, outc)
    live = logw[:n] >= 0.1
    assert kk == live.sum()
    np.testing.assert_array_equal(out[:kk], logw[:n][live])
    np.testing.assert_array_equal(outc[:kk], centre[:n][live])
    assert np.all(np.isnan(out[kk:]))                       # nothing written past the live lanes


def test_weight_sums_over_live_lanes_match_all_lanes():
    """Leaving out the lanes below e^-40 of the maximum changes the sums by less than n e^-40, relative."""
    rng = np.random.default_rng(3)
    n = 509
    mo = 5.0
    logw = mo - rng.uniform(0.0, 80.0, size=n)              # about half the lanes below e^-40
    logw[::7] = -1e300
    centre = rng.uniform(-1, 1, size=(1, n)).astype(np.float32)
    sums = []
    for live_only in (False, True):
        state = empty_state(4, 1)
        state.s[2] = state.t[2] = state.acc[2, 0] = 0.0
        if live_only:
            add_weights_live(state, 2, logw, n, mo, centre[0], np.empty(n), np.empty(n, np.float32))
        else:
            add_weights(state, 2, logw, n, mo, centre, np.empty(n))
        sums.append((state.s[2], state.t[2], state.acc[2, 0]))
    (s_all, t_all, a_all), (s_live, t_live, a_live) = sums
    w = np.exp(np.maximum(logw - mo, -700.0))
    live = logw - mo >= -SKIP_LOG_RATIO
    assert math.isclose(s_live, w[live].sum(), rel_tol=1e-13)
    assert math.isclose(a_live, (w * centre[0])[live].sum(), rel_tol=1e-12)
    bound = n * math.exp(-SKIP_LOG_RATIO)
    assert abs(s_live - s_all) <= bound * s_all
    assert abs(a_live - a_all) <= bound * s_all
    assert abs(t_live - t_all) <= bound * (SKIP_LOG_RATIO + 600) * s_all


@pytest.mark.parametrize("machine", ["els", "bbels"])
@pytest.mark.parametrize("t", [0.05, 0.3])
def test_shift_kernel_with_and_without_compression_agree(machine, t, shared_data):
    """The kernel's two ways of summing a block whose lanes are mostly negligible (compressed live lanes,
    or 8-lane chunks gathered) agree with each other, and the one the other tests do not take on this CPU
    with the oracle."""
    bank = np.load(shared_data / "golden" / "reference-scores-mnist.npz")["bank_images"][:24, :, 6:26, 6:26].copy()
    rng = np.random.default_rng(int(t * 100))
    a, b = cosine_legacy(t)
    x = a * bank[[3]] + b * rng.standard_normal((1, 1, 20, 20))
    results = []
    for on in (True, False):                # the shift kernel throughout (no patch tree)
        options = DEFAULT_OPTIONS.replace(tree_min_precision=(), compress_lanes=on and lanes.HAS_COMPRESS_STORE)
        results.append(denoise_with_provenance(machine, x, t, bank, 7, options=options))
    assert_matches_oracle(machine, x, bank, t, 7, tol=1e-9, options=options)    # without compression
    (x_on, p_on), (x_off, p_off) = results
    assert rel_err(x_on, x_off) < 1e-12
    for name in ("image", "row", "col"):
        np.testing.assert_array_equal(getattr(p_on, name), getattr(p_off, name))
    np.testing.assert_allclose(p_on.entropy, p_off.entropy, rtol=1e-10, atol=1e-12)
