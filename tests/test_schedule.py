"""Locality schedules: presets, the nearest-time rule (ties to the larger time), validation, scaling."""
import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from elscli.errors import ElscliError
from elscli.noise import time_grid
from elscli.schedule import (LocalitySchedule, from_mapping, load_schedule, paper_schedule,
                             paper_schedule_names, scale_patch_size, scale_patch_sizes)

PAPER = json.loads((__import__("pathlib").Path(__file__).resolve().parents[1]
                    / "elscli" / "data" / "paper_scales.json").read_text())["schedules"]


def test_ten_paper_presets_load():
    names = paper_schedule_names()
    assert len(names) == 10 and "MNIST_ResNet_zeros" in names
    for name in names:
        s = load_schedule(f"paper:{name}")
        assert s.source == f"paper:{name}"
        assert all(p % 2 == 1 for p in s.patch_sizes)


def test_default_is_mnist_resnet_zeros():
    assert load_schedule(None) == paper_schedule("MNIST_ResNet_zeros")


def test_paper_schedule_on_default_grid_uses_as_run_by_time():
    as_run = PAPER["MNIST_ResNet_zeros"]["as_run"]
    by_time = dict(zip(as_run["times"], as_run["patch_sizes"]))
    sizes = load_schedule("paper:MNIST_ResNet_zeros").for_grid(time_grid(20, 1.0))
    assert sizes.dtype == np.int64 and sizes.shape == (20,)
    # t = 1 takes the t = 0.95 size; t = 0.95 ... 0.05 take their own as_run entries
    assert sizes[0] == by_time[0.95]
    for k, t in enumerate(np.round(time_grid(20, 1.0)[1:-1], 10), start=1):
        assert sizes[k] == by_time[float(t)], t
    assert list(sizes) == [15, 15, 15, 15, 15, 15, 13, 11, 11, 11, 11, 9, 9, 7, 7, 7, 5, 5, 5, 3]


def test_paper_schedule_on_paper_grid():
    as_run = PAPER["MNIST_ResNet_zeros"]["as_run"]
    sizes = load_schedule("paper:MNIST_ResNet_zeros").for_grid(time_grid(19, 0.95))
    assert list(sizes) == as_run["patch_sizes"]  # as_run is listed in step order 0.95 ... 0.05


def test_nearest_time_and_ties_to_larger_time():
    s = from_mapping({"times": [0.2, 0.4], "patch_sizes": [3, 5]})
    assert s.patch_size_at(0.3) == 5       # exact tie -> the larger time
    assert s.patch_size_at(0.29) == 3
    assert s.patch_size_at(0.31) == 5
    assert s.patch_size_at(1.0) == 5 and s.patch_size_at(0.0) == 3
    # a tie reached through float arithmetic (1 - 0.975 vs 0.975 - 0.95) still goes to the larger time
    s2 = from_mapping({"times": [0.95, 1.0], "patch_sizes": [3, 7]})
    assert s2.patch_size_at(1.0 - 0.025) == 7
    assert s2.patch_size_at(0.9749) == 3


def test_any_order_and_roundtrip(tmp_path):
    s = from_mapping({"times": [0.1, 0.9, 0.5], "patch_sizes": [3, 11, 7]})
    assert s.times == (0.9, 0.5, 0.1) and s.patch_sizes == (11, 7, 3)
    p = tmp_path / "s.json"
    s.save(p)
    again = load_schedule(p)
    assert again.to_dict() == s.to_dict()
    assert list(again.for_grid([0.9, 0.5, 0.1, 0.0])) == [11, 7, 3]


def test_integer_forms():
    assert load_schedule(7).patch_sizes == (7,)
    assert load_schedule("9").for_grid(time_grid(4)).tolist() == [9, 9, 9, 9]
    assert LocalitySchedule.constant(5).is_constant


@pytest.mark.parametrize("content, message", [
    ('{"times": [1.0, 0.5], "patch_sizes": [3, 4]}', "odd"),
    ('{"times": [], "patch_sizes": []}', "no entries"),
    ('{"times": [1.0], "patch_sizes": [0]}', "odd and positive"),
    ('{"times": [1.0], "patch_sizes": [-3]}', "odd and positive"),
    ('{"times": [1.0, 0.5], "patch_sizes": [3]}', "2 times but 1"),
    ('{"times": [1.5], "patch_sizes": [3]}', "[0, 1]"),
    ('{"times": [0.5, 0.5], "patch_sizes": [3, 5]}', "twice"),
    ('{"times": [0.5], "patch_sizes": [3.5]}', "integers"),
    ('{"sizes": [3]}', "a schedule is"),
    ('[3, 5]', "a schedule is"),
    ('{"times": [1.0], ', "not valid JSON"),
    ('4', "odd"),
])
def test_bad_schedule_files(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ElscliError, match=__import__("re").escape(message)):
        load_schedule(str(p))


@pytest.mark.parametrize("spec, message", [
    ("paper:NoSuchNet", "unknown paper schedule"),
    ("missing-file.json", "no such file"),
    ("6", "odd"),
    (0, "odd"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ElscliError, match=message):
        load_schedule(spec)


def test_errors_are_one_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"times": [1.0, 0.5], "patch_sizes": [3, 4]}')
    with pytest.raises(ElscliError) as exc:
        load_schedule(str(p))
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------- scaling (sample --schedule-scale)
@pytest.mark.parametrize("factor, sizes, expected", [
    (2, [1, 3, 5, 7, 9, 11], [3, 7, 11, 15, 19, 23]),     # every product even: ties, all up
    (0.5, [1, 3, 5, 7, 9, 11], [1, 1, 3, 3, 5, 5]),       # 1.5 -> 1, 2.5 -> 3, 3.5 -> 3, 4.5 -> 5, 5.5 -> 5
    (0.75, [3, 5, 7, 9, 11], [3, 3, 5, 7, 9]),            # 2.25, 3.75, 5.25, 6.75, 8.25
    (1.5, [1, 3, 5, 7, 9, 11], [1, 5, 7, 11, 13, 17]),    # 1.5, 4.5, 7.5, 10.5, 13.5, 16.5
    (0.8, [5], [3]),                                      # 4: a tie, down (the factor narrows)
    (1.2, [5], [7]),                                      # 6: a tie, up (the factor widens)
    (0.4, [5], [1]),                                      # 2: a tie, down
    (0.1, [3, 11], [1, 1]),                               # below 2: 1
    (3, [7], [21]),
])
def test_scale_patch_size_rounds_to_the_nearest_odd_size(factor, sizes, expected):
    assert [scale_patch_size(p, factor) for p in sizes] == expected


@given(st.integers(0, 60), st.floats(0.05, 8.0), st.floats(0.05, 8.0))
def test_scale_patch_size_properties(k, f1, f2):
    p = 2 * k + 1
    assert scale_patch_size(p, 1) == p and scale_patch_size(p, 1.0) == p
    a, b = scale_patch_size(p, min(f1, f2)), scale_patch_size(p, max(f1, f2))
    assert a <= b                                          # monotone in the factor
    for f, q in ((f1, scale_patch_size(p, f1)), (f2, scale_patch_size(p, f2))):
        assert q % 2 == 1 and q >= 1
        assert abs(q - f * p) <= 1 + 1e-9 or (q == 1 and f * p < 1)   # nearest odd: within 1
        assert (q >= p) if f > 1 else (q <= p)             # never against the factor's direction


def test_scale_patch_sizes_whole_grid_and_late_steps():
    times = time_grid(20, 1.0)
    base = np.array([11, 9] + [7] * 6 + [5] * 7 + [3] * 5)
    assert scale_patch_sizes(base, times, 1).tolist() == base.tolist()
    assert scale_patch_sizes(base, times, 2).tolist() == [23, 19] + [15] * 6 + [11] * 7 + [7] * 5
    late = scale_patch_sizes(base, times, 2, late_from=0.3)          # steps starting at t <= 0.3: the last 6
    assert late.tolist() == base[:14].tolist() + [11] + [7] * 5
    assert scale_patch_sizes(base, times, 2, late_from=0.0).tolist() == base.tolist()   # no step starts at 0
    assert scale_patch_sizes(base, times, 0.5, late_from=1.0).tolist() == scale_patch_sizes(base, times, 0.5).tolist()


@pytest.mark.parametrize("call, message", [
    (lambda: scale_patch_size(5, 0), "positive"),
    (lambda: scale_patch_size(5, -1), "positive"),
    (lambda: scale_patch_size(5, float("nan")), "positive"),
    (lambda: scale_patch_size(4, 2), "odd"),
    (lambda: scale_patch_sizes([3, 3], time_grid(2), 2, late_from=1.5), "late-from"),
    (lambda: scale_patch_sizes([3, 3], time_grid(3), 2), "grid"),
])
def test_scale_bad_input(call, message):
    with pytest.raises(ElscliError, match=message):
        call()
