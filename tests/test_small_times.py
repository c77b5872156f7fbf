"""Issue 13, item 4: small times neither crash nor lose precision, whatever the noise schedule.

At t = 1e-12 the old cosine-legacy b = sqrt(1 - cos^2) was 0 and the machines raised ZeroDivisionError; now
every schedule gives b > 0 accurate to a few ulps (tests/test_noise.py), and every machine returns its
low-noise limit: the centre of the nearest patch of its dictionary.
"""
from __future__ import annotations

import numpy as np
import pytest

import elscli
from elscli.noise import NOISE_SCHEDULES

from oracle import nearest_centre


@pytest.mark.parametrize("schedule", sorted(NOISE_SCHEDULES))
@pytest.mark.parametrize("machine", ["is", "ls", "els", "bbels"])
def test_machines_at_tiny_times_return_the_nearest_patch_centre(schedule, machine):
    rng = np.random.default_rng(12)
    bank = rng.uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)
    x = rng.uniform(-1, 1, (2, 1, 8, 8))
    want = np.stack([nearest_centre(machine, xi, bank, 3) for xi in x])
    for t in (1e-12, 1e-8):
        got = elscli.denoise(machine, x, t, bank, patch_size=3, noise_schedule=schedule)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_cli_denoise_path_reports_no_python_exception(tmp_path):
    """The case of the issue, through the library: no ZeroDivisionError at t = 1e-12."""
    X = np.random.default_rng(0).uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((1, 1, 8, 8))
    y = elscli.denoise("ls", x, 1e-12, X, patch_size=3)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("machine", ["is", "ls", "els", "bbels"])
def test_scales_whose_square_underflows(machine):
    """edm at t = 1e-30 (sigma = 8e-209, b^2 = 0 in float64) and b = 1e-200 given directly: the sigma -> 0 limit,
    not a ZeroDivisionError."""
    rng = np.random.default_rng(13)
    bank = rng.uniform(-1, 1, (5, 1, 7, 7)).astype(np.float32)
    x = rng.uniform(-1, 1, (1, 1, 7, 7))
    want = nearest_centre(machine, x[0], bank, 3)[None]
    for got in (elscli.denoise(machine, x, 1e-30, bank, patch_size=3, noise_schedule="edm"),
                elscli.denoise(machine, x, 1e-300, bank, patch_size=3, noise_schedule="edm"),
                elscli.denoise(machine, x, None, bank, patch_size=3, a=1.0, b=1e-200)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
