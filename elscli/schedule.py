"""Locality schedules: the patch size P the machine uses at each step of the reverse process.

A schedule is recorded **by time**, never by step index: ``{"times": [t_0, ...], "patch_sizes": [P_0, ...]}``
(any order, odd positive sizes) gives the size for the step that *starts* at ``times[i]``.  When a sampling
grid holds other times, each step takes the entry whose time is nearest to its start time; ties go to the
larger time.  A single integer means a constant P.  A schedule made by ``locality-scan`` also records the noise schedule of
the network it was calibrated on (``"noise_schedule": "linear"``): its times are that schedule's, and
``elscli sample`` refuses to use it on another one.  Presets and hand-written schedules name none.

Presets ``paper:NAME`` are the ten calibrated schedules shipped with the paper's code (bundled as
``elscli/data/paper_scales.json``), used through their ``as_run`` mapping — the sizes the paper's released
runs actually used at step start times 0.95 ... 0.05.  On the default grid (20 steps from t = 1) the
t = 1 step therefore takes the t = 0.95 size.

>>> s = load_schedule("paper:MNIST_ResNet_zeros")
>>> s.for_grid(time_grid(20, 1.0))[:3]          # doctest: +SKIP
array([15, 15, 15])

:class:`ParameterSchedule` records any other scalar machine parameter the same way, by step start time
(``{"times": [...], "sigma": [...]}``, as ``locality-scan --parameter sigma`` writes it).

:func:`scale_patch_sizes` widens or narrows a grid's sizes by a factor (``sample --schedule-scale F``, or only
late steps with ``--late-scale F --late-from T``): the locality-vs-consistency sweep of ``elscli consistency``.
"""
from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ElscliError, reason

PAPER_PREFIX = "paper:"
DEFAULT_SCHEDULE = "paper:MNIST_ResNet_zeros"
# Two start times closer than this count as equally near (float grids: 1 - 0.975 vs 0.975 - 0.95).
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LocalitySchedule:
    """Patch size by step start time.

    ``times`` (floats in [0, 1], distinct, sorted descending) and ``patch_sizes`` (odd positive ints) of the
    same length: ``patch_sizes[i]`` is the size for the step that starts at ``times[i]``; ``source`` says
    where it came from (a preset name, a file, ...); ``noise_schedule`` the noise schedule it was calibrated
    on (:data:`elscli.noise.NOISE_SCHEDULES`), or None when it names none.  Raises ElscliError for entries
    that break these rules.
    """

    times: Tuple[float, ...]
    patch_sizes: Tuple[int, ...]
    source: str = ""
    noise_schedule: Optional[str] = None

    def __post_init__(self) -> None:
        _validate(self.times, self.patch_sizes, self.source or "schedule")
        if self.noise_schedule is not None:
            from .noise import get_noise_schedule

            try:
                get_noise_schedule(self.noise_schedule)
            except ElscliError as exc:
                raise ElscliError(f"{self.source or 'schedule'}: {exc}") from None

    @classmethod
    def constant(cls, patch_size: int) -> "LocalitySchedule":
        """A constant patch size (recorded at t = 1)."""
        return cls((1.0,), (_check_size(patch_size, f"patch size {patch_size!r}"),), source=str(int(patch_size)))

    @property
    def is_constant(self) -> bool:
        """Whether every entry has the same patch size."""
        return len(set(self.patch_sizes)) == 1

    def patch_size_at(self, t: float) -> int:
        """The size for the step starting at ``t``: nearest recorded time, ties to the larger time."""
        times = np.asarray(self.times, dtype=np.float64)
        dist = np.abs(times - float(t))
        near = dist <= dist.min() + _TIE_TOLERANCE
        best = int(np.flatnonzero(near)[np.argmax(times[near])])
        return int(self.patch_sizes[best])

    def for_grid(self, times: Sequence[float]) -> np.ndarray:
        """Patch size of every step of a grid ``t_0 > ... > t_T``: ``(T,)`` int64, one per step start."""
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or len(times) < 2:
            raise ElscliError("a time grid needs at least two times (one step)")
        return np.array([self.patch_size_at(t) for t in times[:-1]], dtype=np.int64)

    def to_dict(self) -> Dict[str, Any]:
        """``{"times": [...], "patch_sizes": [...]}`` (and ``"noise_schedule"`` when it names one): the JSON
        form ``load_schedule`` reads."""
        out: Dict[str, Any] = {"times": [float(t) for t in self.times],
                               "patch_sizes": [int(p) for p in self.patch_sizes]}
        if self.noise_schedule is not None:
            out["noise_schedule"] = str(self.noise_schedule)
        return out

    def check_noise_schedule(self, noise_schedule: str) -> None:
        """Refuse (ElscliError, one line naming both) to use a schedule calibrated on another noise schedule."""
        if self.noise_schedule is not None and self.noise_schedule != noise_schedule:
            raise ElscliError(f"locality schedule {self.source or ''!r} was calibrated on noise schedule "
                              f"{self.noise_schedule!r}, not {noise_schedule!r} (its times are that schedule's)")

    def to_json(self) -> str:
        """:meth:`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict())

    def save(self, path: Union[str, os.PathLike], force: bool = False) -> Path:
        """Write :meth:`to_json` (and a newline) to ``path``, claimed and renamed into place whole
        (:func:`elscli.outputs.atomic_output`).

        Raises ElscliError when ``path`` exists without ``force``, is being written by another process, or its
        directory is missing/read-only."""
        from .outputs import atomic_output

        with atomic_output(path, force) as tmp:
            Path(tmp).write_text(self.to_json() + "\n")
        return Path(path)



@dataclass(frozen=True)
class ParameterSchedule:
    """A scalar machine parameter by step start time, as ``locality-scan --parameter NAME`` writes it.

    ``name`` is the machine parameter (``sigma`` of scfdm, ``threshold`` or ``temperature`` of pca-locality,
    ...); ``times`` (floats in [0, 1], distinct) and ``values`` (finite floats) have the same length:
    ``values[i]`` is the parameter for the step that starts at ``times[i]``.  Its JSON is
    ``{"times": [...], NAME: [...]}``, which ``elscli sample --NAME FILE`` reads (the run's grid must hold
    exactly these start times; the machine checks each value's range).  Raises ElscliError for entries that
    break these rules.
    """

    name: str
    times: Tuple[float, ...]
    values: Tuple[float, ...]
    source: str = ""
    noise_schedule: Optional[str] = None

    def __post_init__(self) -> None:
        what = self.source or f"{self.name} schedule"
        if self.noise_schedule is not None:
            from .noise import get_noise_schedule

            try:
                get_noise_schedule(self.noise_schedule)
            except ElscliError as exc:
                raise ElscliError(f"{what}: {exc}") from None
        if self.name == "patch_sizes" or self.name == "times" or not self.name:
            raise ElscliError(f"{what}: {self.name!r} is not a machine parameter's name")
        _validate_times(self.times, len(self.values), self.name, what)
        for v in self.values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(float(v)):
                raise ElscliError(f"{what}: {self.name} values must be finite numbers, got {v!r}")

    def as_mapping(self) -> "TimedValues":
        """``{t: value}``: the form a denoiser's parameter takes (``make_denoiser(..., NAME={t: value})``), as a
        :class:`TimedValues` that remembers the noise schedule the times belong to."""
        return TimedValues({float(t): float(v) for t, v in zip(self.times, self.values)},
                           noise_schedule=self.noise_schedule, source=self.source)

    def to_dict(self) -> Dict[str, Any]:
        """``{"times": [...], NAME: [...]}`` (and ``"noise_schedule"`` when it names one): the JSON form
        :meth:`load` reads."""
        out: Dict[str, Any] = {"times": [float(t) for t in self.times], self.name: [float(v) for v in self.values]}
        if self.noise_schedule is not None:
            out["noise_schedule"] = str(self.noise_schedule)
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict())

    def save(self, path: Union[str, os.PathLike], force: bool = False) -> Path:
        """Write :meth:`to_json` (and a newline) to ``path`` as :meth:`LocalitySchedule.save` does.  Raises
        ElscliError as that."""
        from .outputs import atomic_output

        with atomic_output(path, force) as tmp:
            Path(tmp).write_text(self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], name: str) -> "ParameterSchedule":
        """Read a ``{"times": [...], NAME: [...]}`` JSON file.  Raises ElscliError when it is missing,
        unreadable, not JSON, or not a schedule of ``name``."""
        bad = f"{os.fspath(path)!r} is not a {name} schedule (JSON with 'times' and '{name}' lists of equal length)"
        try:
            obj = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise ElscliError(bad) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("times"), list) \
                or not isinstance(obj.get(name), list):
            raise ElscliError(bad)
        noise_schedule = obj.get("noise_schedule")
        if noise_schedule is not None and not isinstance(noise_schedule, str):
            raise ElscliError(f"{os.fspath(path)!r}: \"noise_schedule\" must be a name such as \"linear\", "
                              f"got {noise_schedule!r}")
        return cls(name, tuple(obj["times"]), tuple(obj[name]), source=os.fspath(path),
                   noise_schedule=noise_schedule)


class TimedValues(dict):
    """A ``{t: value}`` mapping read from a schedule file (:meth:`ParameterSchedule.as_mapping`) that remembers
    the noise schedule its times belong to (``noise_schedule``, None when the file names none) and its
    ``source``, so that ``elscli sample`` can refuse it on another noise schedule."""

    def __init__(self, items, noise_schedule: Optional[str] = None, source: str = "") -> None:
        super().__init__(items)
        self.noise_schedule = noise_schedule
        self.source = source

#: The largest patch size elscli accepts: far beyond any image it samples (P is at most 2H - 1 for any use),
#: and small enough that a P×P window fits every integer type and array it is used in.
MAX_PATCH_SIZE = 65535


def _check_size(p: Any, what: str) -> int:
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) and not (
            isinstance(p, float) and p.is_integer()):
        raise ElscliError(f"{what}: patch sizes must be integers, got {p!r}")
    p = int(p)
    if p < 1:
        raise ElscliError(f"{what}: patch sizes must be odd and positive, got {p}")
    if p % 2 == 0:
        raise ElscliError(f"{what}: patch sizes must be odd; {p} is even")
    if p > MAX_PATCH_SIZE:
        raise ElscliError(f"{what}: patch sizes must be at most {MAX_PATCH_SIZE}, got {p}")
    return p


def _validate(times: Sequence[float], sizes: Sequence[int], what: str) -> None:
    _validate_times(times, len(sizes), "patch sizes", what)
    for p in sizes:
        if not _is_even_int(p):
            _check_size(p, what)
    even = sorted({int(p) for p in sizes if _is_even_int(p)})
    if even:         # every even size at once: a schedule file may hold several
        raise ElscliError(f"{what}: patch sizes must be odd; {', '.join(map(str, even))} "
                          f"{'is' if len(even) == 1 else 'are'} even")


def _is_even_int(p: Any) -> bool:
    return (not isinstance(p, bool) and isinstance(p, (int, np.integer, float)) and float(p).is_integer()
            and int(p) >= 1 and int(p) % 2 == 0)


def _validate_times(times: Sequence[float], n_values: int, values: str, what: str) -> None:
    if len(times) == 0 or n_values == 0:
        raise ElscliError(f"{what}: the schedule has no entries")
    if len(times) != n_values:
        raise ElscliError(f"{what}: {len(times)} times but {n_values} {values}")
    for t in times:
        if not isinstance(t, (int, float, np.floating, np.integer)) or isinstance(t, bool) \
                or math.isnan(float(t)) or not 0.0 <= float(t) <= 1.0:
            raise ElscliError(f"{what}: times must be numbers in [0, 1], got {t!r}")
    if len(set(float(t) for t in times)) != len(times):
        raise ElscliError(f"{what}: a time appears twice")


def from_mapping(obj: Any, source: str = "schedule") -> LocalitySchedule:
    """A schedule from ``{"times": [...], "patch_sizes": [...]}`` (any order; sorted by time, descending;
    optionally ``"noise_schedule": NAME``) or a bare integer (a constant size).  Raises ElscliError for any
    other shape or invalid entries."""
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return LocalitySchedule.constant(int(obj))
    if not isinstance(obj, dict) or "times" not in obj or "patch_sizes" not in obj:
        raise ElscliError(f"{source}: a schedule is {{\"times\": [...], \"patch_sizes\": [...]}} or one integer")
    times, sizes = obj["times"], obj["patch_sizes"]
    if not isinstance(times, list) or not isinstance(sizes, list):
        raise ElscliError(f"{source}: \"times\" and \"patch_sizes\" must be lists")
    _validate(times, sizes, source)
    noise_schedule = obj.get("noise_schedule")
    if noise_schedule is not None and not isinstance(noise_schedule, str):
        raise ElscliError(f"{source}: \"noise_schedule\" must be a name such as \"linear\", got {noise_schedule!r}")
    order = sorted(range(len(times)), key=lambda i: -float(times[i]))
    return LocalitySchedule(tuple(float(times[i]) for i in order), tuple(int(sizes[i]) for i in order), source,
                            noise_schedule)


@lru_cache(maxsize=1)
def _paper_table() -> Dict[str, Any]:
    text = resources.files("elscli").joinpath("data/paper_scales.json").read_text()
    return json.loads(text)["schedules"]


def paper_schedule_names() -> List[str]:
    """The names of the paper's ten calibrated schedules (``paper:NAME`` presets), sorted."""
    return sorted(_paper_table())


def paper_schedule(name: str) -> LocalitySchedule:
    """The paper's calibrated schedule ``name`` (e.g. ``MNIST_ResNet_zeros``) in its ``as_run`` mapping.

    Source: the schedules shipped with the paper's code (Kamb & Ganguli 2025), bundled as
    ``elscli/data/paper_scales.json``.  Raises ElscliError for an unknown name."""
    table = _paper_table()
    if name not in table:
        raise ElscliError(f"unknown paper schedule {name!r} (known: {', '.join(sorted(table))})")
    return from_mapping(table[name]["as_run"], source=PAPER_PREFIX + name)


#: The data set each paper schedule was calibrated on (the prefix of its name) and the image shape
#: (C, H, W) the paper's networks were trained at: 28x28 MNIST/FashionMNIST resized to 32x32 (one channel),
#: CIFAR10 3x32x32; CelebA three channels (its size is not recorded here: a CelebA schedule fits images of
#: three channels whose sides hold its largest patch).
PAPER_DATASETS: Dict[str, Tuple[int, Optional[int], Optional[int]]] = {
    "MNIST": (1, 32, 32), "FashionMNIST": (1, 32, 32), "CIFAR10": (3, 32, 32), "CelebA": (3, None, None)}


def _paper_fits(name: str, shape: Sequence[int]) -> bool:
    want = PAPER_DATASETS[name.split("_", 1)[0]]
    if any(w is not None and int(w) != int(s) for w, s in zip(want, shape)):
        return False
    return max(paper_schedule(name).patch_sizes) <= min(int(s) for s in shape[1:])


def paper_schedules_for(shape: Sequence[int]) -> List[str]:
    """The paper schedules (``paper:NAME``) calibrated on images of ``shape`` (C, H, W)
    (:data:`PAPER_DATASETS`)."""
    return [PAPER_PREFIX + n for n in paper_schedule_names() if _paper_fits(n, shape)]


def paper_schedule_mismatch(spec: Any, shape: Sequence[int]) -> Optional[str]:
    """A warning when ``spec`` (a ``--schedule`` value; None is the default) is a paper schedule calibrated on
    images of another channel count or size than ``shape`` (C, H, W) (:data:`PAPER_DATASETS`) — its patch
    sizes were fitted to that data set's networks — naming the schedules that fit; None otherwise."""
    text = DEFAULT_SCHEDULE if spec is None else spec
    if not isinstance(text, str) or not text.startswith(PAPER_PREFIX):
        return None
    name = text[len(PAPER_PREFIX):]
    if name not in _paper_table() or _paper_fits(name, shape):
        return None
    dataset = name.split("_", 1)[0]
    want = PAPER_DATASETS[dataset]
    shown = "×".join(str(w) for w in want) if None not in want else f"{want[0]}-channel"
    have = "×".join(map(str, shape))
    fit = paper_schedules_for(shape)
    advice = (f"the paper's schedules for {have} images are {', '.join(fit)}; or" if fit else
              "no paper schedule fits them:")
    return (f"the locality schedule {text} was calibrated for {dataset} ({shown} images, P up to "
            f"{max(paper_schedule(name).patch_sizes)}), but the bank holds {have} images; {advice} calibrate one "
            f"(elscli locality-scan) or give --patch-size P")


def load_schedule(spec: Union[str, int, os.PathLike, Dict, LocalitySchedule, None] = None) -> LocalitySchedule:
    """Resolve ``--schedule``: ``paper:NAME``, a JSON file path, an integer (string), a mapping, or a schedule.

    ``None`` gives the default, ``paper:MNIST_ResNet_zeros``.  Raises ElscliError for an unknown preset,
    a missing or unreadable file, invalid JSON or invalid entries.
    """
    if spec is None:
        spec = DEFAULT_SCHEDULE
    if isinstance(spec, LocalitySchedule):
        return spec
    if isinstance(spec, dict) or (isinstance(spec, (int, np.integer)) and not isinstance(spec, bool)):
        return from_mapping(spec)
    text = os.fspath(spec)
    if text.startswith(PAPER_PREFIX):
        return paper_schedule(text[len(PAPER_PREFIX):])
    stripped = text.strip()
    if stripped.lstrip("+-").isdigit() and not Path(text).exists():
        try:
            return LocalitySchedule.constant(int(stripped))
        except ElscliError as exc:              # "--schedule 4: patch sizes must be odd; 4 is even"
            raise ElscliError(f"--schedule {stripped}: {str(exc).split(': ', 1)[-1]}") from None
    path = Path(text)
    if not path.exists():
        raise ElscliError(f"schedule {text!r}: no such file (and not paper:NAME or an integer)")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ElscliError(f"schedule {text!r}: cannot read it ({reason(exc)})") from None
    except json.JSONDecodeError as exc:
        raise ElscliError(f"schedule {text!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    sched = from_mapping(obj, source=text)
    return sched


# ================================================================================================
# Scaling a schedule (sample --schedule-scale F, --late-scale F --late-from T)
# ================================================================================================
def _factor(factor: Any, what: str) -> Fraction:
    """``factor`` as an exact fraction of its shortest decimal form (0.75 -> 3/4, 1.1 -> 11/10)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)):
        raise ElscliError(f"{what} must be a number, got {factor!r}")
    f = float(factor)
    if not math.isfinite(f) or f <= 0:
        raise ElscliError(f"{what} must be a positive number, got {factor!r}")
    return Fraction(repr(f))


def scale_patch_size(patch_size: int, factor: float) -> int:
    """``patch_size`` multiplied by ``factor`` and rounded to the nearest odd size >= 1.

    The product is exact (``factor`` is taken as its shortest decimal form, so 0.75 * 7 is 5.25, not a
    binary neighbour).  Odd sizes are 2 apart, so a tie — the product exactly halfway between two odd sizes —
    happens exactly when the product is an even integer; ties go **away from the unscaled size**: up when
    ``factor > 1``, down when ``factor < 1`` (so a factor above 1 never narrows a window and one below 1 never
    widens it; ``factor = 1`` returns ``patch_size``).  Products below 2 give 1.

    Examples: factor 2 maps 3, 5, 7, 9, 11 to 7, 11, 15, 19, 23 (6 -> 7: ties up); factor 0.5 maps them to
    1, 3, 3, 5, 5; factor 0.8 maps 5 to 3 (4: a tie, down).

    Raises :class:`ElscliError` for a non-positive or non-finite factor or a size that is not odd and positive.
    """
    p = _check_size(patch_size, f"patch size {patch_size!r}")
    f = _factor(factor, "the schedule scale factor (--schedule-scale, --late-scale)")
    k2 = (f * p - 1) / 2               # the nearest odd size is 2k + 1 for the integer k nearest to k2
    lo = math.floor(k2)
    rem = k2 - lo
    if rem < Fraction(1, 2):
        k = lo
    elif rem > Fraction(1, 2):
        k = lo + 1
    else:
        k = lo + 1 if f > 1 else lo
    scaled = max(1, 2 * k + 1)
    if scaled > MAX_PATCH_SIZE:
        shown = str(scaled) if scaled < 10 ** 12 else f"about 10^{len(str(scaled)) - 1}"
        raise ElscliError(f"the schedule scale factor {float(factor):g} makes patch size {p} into {shown}: patch "
                          f"sizes must be at most {MAX_PATCH_SIZE}")
    return scaled


def scale_patch_sizes(patch_sizes: Sequence[int], times: Sequence[float], factor: float, *,
                      late_from: float | None = None) -> np.ndarray:
    """A grid's per-step sizes, scaled by :func:`scale_patch_size`.

    ``patch_sizes`` (T,) are the sizes of the steps starting at ``times[:-1]`` (``times`` is the (T+1,) grid,
    descending).  With ``late_from = T0`` only the steps whose start time is ``<= T0`` are scaled (within 1e-9,
    so that a float grid's 0.30000000000000004 counts as 0.3); the others keep their size.  Returns (T,) int64.
    Raises :class:`ElscliError` on bad sizes, a bad factor, ``late_from`` outside [0, 1] or mismatched lengths.
    """
    sizes = [int(p) for p in np.asarray(patch_sizes).tolist()]
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) != len(sizes) + 1:
        raise ElscliError(f"{len(sizes)} patch sizes need a grid of {len(sizes) + 1} times, got {times.shape}")
    _factor(factor, "the schedule scale factor (--schedule-scale, --late-scale)")
    if late_from is not None:
        lf = float(late_from)
        if not 0.0 <= lf <= 1.0:
            raise ElscliError(f"--late-from must be a time in [0, 1], got {late_from!r}")
    out = [scale_patch_size(p, factor) if late_from is None or t <= float(late_from) + _TIE_TOLERANCE else p
           for p, t in zip(sizes, times[:-1])]
    return np.asarray(out, dtype=np.int64)
