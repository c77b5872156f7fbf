"""``sample --schedule-scale F`` and ``--late-scale F --late-from T``: the scaled sizes are the ones used and
recorded, F = 1 reproduces the unscaled run bitwise, bad combinations are refused; and the locality sweep of
``elscli consistency --sweep`` over such runs, end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elscli import runs
from elscli.bank import Bank, build_bank
from elscli.errors import ElscliError
from elscli.noise import time_grid
from elscli.schedule import load_schedule, scale_patch_sizes

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = {"times": [1.0, 0.75, 0.5, 0.25], "patch_sizes": [9, 7, 5, 3]}
DATASETS = ("sample_ids", "done", "seeds", "labels", "times", "patch_sizes", "final", "prov_image", "prov_row",
            "prov_col", "prov_weight", "prov_entropy")


@pytest.fixture(scope="module")
def small() -> Bank:
    """12 bundled digits of 4 classes, centre-cropped to 16x16."""
    full, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    idx = np.concatenate([full.indices_for(c)[:3] for c in range(4)])
    return Bank.from_arrays(np.ascontiguousarray(full.codes[idx][:, :, 8:24, 8:24]), full.labels[idx])


def _sample(bank, **kw):
    return runs.sample(bank, machine="bbels", schedule=SCHEDULE, steps=4, num_samples=2, seed=3, **kw)


def test_scale_one_reproduces_the_unscaled_run_bitwise(small):
    plain = _sample(small)
    one = _sample(small, schedule_scale=1.0)
    for k in DATASETS:
        a, b = np.asarray(plain.arrays[k]), np.asarray(one.arrays[k])
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), k
    assert plain.params["schedule_scale"] is None and one.params["schedule_scale"] == 1.0
    late_one = _sample(small, late_scale=1.0, late_from=0.5)
    assert np.array_equal(late_one.final, plain.final)


def test_scaled_sizes_are_used_and_recorded(small, tmp_path):
    times = time_grid(4)
    base = load_schedule(SCHEDULE).for_grid(times)
    wide = _sample(small, schedule_scale=2.0, output=tmp_path / "wide.h5")
    assert wide.patch_sizes.tolist() == scale_patch_sizes(base, times, 2.0).tolist() == [19, 15, 11, 7]
    assert wide.params["patch_sizes"] == [19, 15, 11, 7] and wide.params["schedule_scale"] == 2.0
    assert runs.Run.open(tmp_path / "wide.h5").params["schedule_scale"] == 2.0
    late = _sample(small, late_scale=0.5, late_from=0.5)                # steps starting at 0.5 and 0.25
    assert late.patch_sizes.tolist() == [9, 7, 3, 1]
    assert (late.params["late_scale"], late.params["late_from"]) == (0.5, 0.5)
    assert not np.array_equal(late.final, _sample(small).final)        # the sizes changed what was computed


@pytest.mark.parametrize("kw, message", [
    (dict(schedule_scale=2.0, late_scale=2.0, late_from=0.5), "not both"),
    (dict(late_scale=2.0), "go together"),
    (dict(late_from=0.3), "go together"),
    (dict(schedule_scale=0.0), "positive"),
    (dict(late_scale=2.0, late_from=1.5), "late-from"),
])
def test_bad_scales_are_refused(small, kw, message):
    with pytest.raises(ElscliError, match=message):
        _sample(small, **kw)


def test_is_has_nothing_to_scale(small):
    with pytest.raises(ElscliError, match="machine .is. has no parameter .patch_size.: --schedule-scale does not apply"):
        runs.sample(small, machine="is", steps=2, num_samples=1, schedule_scale=2.0)


def test_cli_sweep_end_to_end(cli, small, tmp_path):
    """sample at three scales from the same seeds, then consistency --sweep: one point per scale, in order."""
    small.save(tmp_path / "bank.h5")
    (tmp_path / "sched.json").write_text(json.dumps(SCHEDULE))
    for F in ("0.5", "1", "2"):
        res = cli("sample", "--bank", tmp_path / "bank.h5", "--schedule", tmp_path / "sched.json", "--steps", "4",
                  "-n", "3", "--seed", "5", "--schedule-scale", F, "-o", tmp_path / f"F{F}.h5", "--quiet")
        assert res.exit_code == 0, res.stderr
    res = cli("sample", "--bank", tmp_path / "bank.h5", "--machine", "is", "-n", "1", "--schedule-scale", "2",
              "-o", tmp_path / "is.h5")
    assert res.exit_code == 1 and "has no parameter 'patch_size': --schedule-scale does not apply" in res.stderr and res.stdout == ""
    res = cli("consistency", "--sweep", tmp_path / "F2.h5", tmp_path / "F0.5.h5", tmp_path / "F1.h5",
              "--bank", tmp_path / "bank.h5", "--json", "--plot", tmp_path / "figs")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert [p["scale"] for p in out["sweep"]] == [0.5, 1.0, 2.0]
    assert [p["patch_sizes"] for p in out["sweep"]] == [[5, 3, 3, 1], [9, 7, 5, 3], [19, 15, 11, 7]]
    assert all(p["samples"] == 3 for p in out["sweep"])
    assert (tmp_path / "figs" / "sweep.png").stat().st_size > 5000
    res = cli("consistency", "--sweep", tmp_path / "F2.h5", tmp_path / "F0.5.h5", "--bank", tmp_path / "bank.h5")
    assert res.exit_code == 0 and "locality sweep" in res.stdout
