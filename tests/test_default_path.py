"""The paper's default path (bbELS, cosine-legacy, deterministic DDIM on 20 equal steps) is unchanged in what a
run file stores by computing cosine-legacy without cancellation (a = cos, b = sin instead of
sqrt(1 - beta), sqrt(beta), which differ in the last bits) and by the generalised samplers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import elscli
from elscli import noise as N
from elscli.bank import build_bank

REPO = Path(__file__).resolve().parents[1]


def _old_cosine_legacy(t):
    beta = 1.0 - math.cos(t / 1.008 * math.pi / 2.0) ** 2
    return math.sqrt(1.0 - beta), math.sqrt(beta)


@pytest.fixture(scope="module")
def bank():
    b, _ = build_bank(REPO / "sample_data" / "mnist-1k", size=32, limit=120)
    return b


def test_default_run_is_bitwise_the_old_one(bank, monkeypatch):
    new = elscli.sample(bank, num_samples=2, seed=3, quiet=True, handle_signals=False)
    s = N.NOISE_SCHEDULES["cosine-legacy"]
    old_sched = N.NoiseSchedule("cosine-legacy", _old_cosine_legacy, N._ratio(_old_cosine_legacy), s._time,
                                sigma_min=s.sigma_min, variance_exploding=False, source="the old formula")
    # the old formula really is different in float64 (else this test would prove nothing) ...
    assert any(old_sched(t) != s(t) for t in N.time_grid(20)[:-1])
    monkeypatch.setitem(N.NOISE_SCHEDULES, "cosine-legacy", old_sched)
    old = elscli.sample(bank, num_samples=2, seed=3, quiet=True, handle_signals=False)
    # ... but not in what the run stores
    np.testing.assert_array_equal(new.final, old.final)
    for k in ("image", "row", "col", "weight", "entropy"):
        np.testing.assert_array_equal(new.provenance[k], old.provenance[k])
