"""The denoiser interface every machine implements, its parameters, its provenance, and the registry.

A machine is a subclass of :class:`Denoiser` registered under a name (:func:`register`).  It is built once for
a bank, with its parameters, and then called as ``D(x, t) -> x0_hat`` (see the package docstring of
:mod:`elscli.machines` for the contract and an example).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Tuple, Type

import numpy as np

from ..errors import ElscliError
from ..kernels.threads import numba_threads
from ..noise import DEFAULT_NOISE_SCHEDULE
from .inputs import check_queries, labels_for, noise_scales
from .training_set import TrainingSet, training_set


@dataclass
class Provenance:
    """Per output pixel: the dominant dictionary patch and the weight distribution's spread.

    ``image`` (B, H, W) int64 index in the whole bank; ``row``, ``col`` (B, H, W) int32 centre of that
    patch in its (unpadded) training image; ``weight`` (B, H, W) float64 its softmax weight (all copies of an
    identical patch are counted separately; the first in (image, row, col) order is the dominant one);
    ``entropy`` (B, H, W) float64 posterior entropy of the weights in nats.
    """

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    entropy: np.ndarray

    FIELDS: ClassVar[Tuple[str, ...]] = ("image", "row", "col", "weight", "entropy")

    def __getitem__(self, item) -> "Provenance":
        return Provenance(self.image[item], self.row[item], self.col[item], self.weight[item],
                          self.entropy[item])

    @classmethod
    def empty(cls, B: int, H: int, W: int) -> "Provenance":
        """Uninitialised arrays for B images of H x W pixels."""
        return cls(np.empty((B, H, W), np.int64), np.empty((B, H, W), np.int32), np.empty((B, H, W), np.int32),
                   np.empty((B, H, W)), np.empty((B, H, W)))


#: Marks a parameter without a default (it must be given).
REQUIRED = object()


@dataclass(frozen=True)
class Parameter:
    """One parameter of a machine.

    ``name`` is the keyword it is given by (and the CLI option ``--name``); ``doc`` one line for ``--help``;
    ``check(value, shape)`` returns the value normalised, or raises ElscliError (``shape`` is the bank's
    (C, H, W)); ``default`` is :data:`REQUIRED` when it must be given; ``time_dependent`` allows a schedule —
    a callable ``t -> value`` or a mapping {t: value} — instead of one value (the patch size of the
    paper's locality schedules)."""

    name: str
    doc: str
    check: Callable[[Any, Tuple[int, int, int]], Any]
    default: Any = REQUIRED
    time_dependent: bool = False


class Denoiser:
    """A training-free denoiser ``D(x, t) -> x0_hat`` over one bank (see :mod:`elscli.machines`).

    Parameters
    ----------
    bank : Bank, (N, C, H, W) real array, or TrainingSet
        The training images (checked and keyed once: :func:`.training_set.training_set`).
    label : None, int or (B,) ints, optional
        Default label of the queries (-1 or None: unconditional); a call may give its own.
    noise_schedule : str
        Name of the schedule that maps t to (a, b) (:mod:`elscli.noise`).
    threads : int, optional
        Numba threads for each call (results do not depend on it).
    options : KernelOptions, optional
        How the machine routes its work between the kernels (speed only; the local machines'
        :class:`~.patch_dictionary.KernelOptions`, None: the defaults); machines without a choice ignore it.
    **params
        The machine's :attr:`parameters` by name; a ``time_dependent`` one may be a schedule.

    Raises ElscliError for a bad bank, an unknown or missing parameter, or a bad value.

    Subclasses set :attr:`name`, :attr:`parameters`, :attr:`has_provenance` and implement :meth:`_denoise`
    (and :meth:`_prepare` if they have something to build ahead of the calls).
    """

    #: Registry name (``elscli sample --machine NAME``).
    name: ClassVar[str] = ""
    #: One line for tables and ``--help``.
    summary: ClassVar[str] = ""
    #: The machine's parameters.
    parameters: ClassVar[Tuple[Parameter, ...]] = ()
    #: Whether it has a dominant training patch or image per output pixel (:class:`Provenance`).
    has_provenance: ClassVar[bool] = True

    def __init__(self, bank, *, label=None, noise_schedule: str = DEFAULT_NOISE_SCHEDULE,
                 threads: Optional[int] = None, options=None, **params) -> None:
        self.bank: TrainingSet = training_set(bank)
        self.label = label
        self.noise_schedule = noise_schedule
        self.threads = threads
        self.options = options
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ElscliError(f"machine {self.name!r} has no parameter {unknown[0]!r} "
                              f"(its parameters: {', '.join(known) or 'none'})")
        self.params: Dict[str, Any] = {}
        for p in self.parameters:
            value = params.get(p.name, p.default)
            if value is REQUIRED or value is None and p.default is REQUIRED:
                raise ElscliError(f"machine {self.name!r} needs a {p.name.replace('_', ' ')}")
            if p.time_dependent and (callable(value) or isinstance(value, Mapping)):
                self.params[p.name] = value            # checked at each time it is used
            else:
                self.params[p.name] = p.check(value, self.bank.shape)

    # ------------------------------------------------------------------------------------ parameters
    def values_at(self, t: Optional[float]) -> Dict[str, Any]:
        """The parameters' values at time ``t`` (schedules evaluated and checked).  Raises ElscliError when a
        schedule has no value at ``t`` (or ``t`` is None)."""
        out = {}
        for p in self.parameters:
            v = self.params[p.name]
            if callable(v) or isinstance(v, Mapping):
                if t is None:
                    raise ElscliError(f"{p.name} is a schedule: give the time t")
                try:
                    v = v[float(t)] if isinstance(v, Mapping) else v(float(t))
                except KeyError:
                    raise ElscliError(f"the {p.name.replace('_', ' ')} schedule has no value at t={t}") from None
                v = p.check(v, self.bank.shape)
            out[p.name] = v
        return out

    # ----------------------------------------------------------------------------------------- calls
    def __call__(self, x, t: Optional[float], *, label=..., a: Optional[float] = None,
                 b: Optional[float] = None) -> np.ndarray:
        """x0_hat (same shape as ``x``: (B, C, H, W) or (C, H, W)), float64, at time ``t`` (or scales a, b)."""
        return self._run(x, t, label, a, b, provenance=False)[0]

    def denoise_with_provenance(self, x, t: Optional[float], *, label=..., a: Optional[float] = None,
                                b: Optional[float] = None) -> Tuple[np.ndarray, Provenance]:
        """x0_hat and per-pixel :class:`Provenance`.  Raises ElscliError for a machine without provenance."""
        if not self.has_provenance:
            raise ElscliError(f"machine {self.name!r} has no dominant training patch (no provenance)")
        return self._run(x, t, label, a, b, provenance=True)

    def score(self, x, t: Optional[float], *, label=..., a: Optional[float] = None,
              b: Optional[float] = None) -> np.ndarray:
        """The score ``-(x - a x0_hat) / b^2`` (science.md, "Conventions"), same shape as x, float64."""
        a_, b_ = noise_scales(t, a, b, self.noise_schedule)
        x0 = self(x, t, label=label, a=a_, b=b_)
        return -(np.asarray(x, dtype=np.float64) - a_ * x0) / (b_ * b_)

    def prepare(self, times=None, labels=None) -> "Denoiser":
        """Build now what calls at ``times`` (an array of t in (0, 1]; None: what does not depend on t) for
        queries of ``labels`` (None: the denoiser's label) will need — for the local machines the image blocks,
        the constant patch and, where the routing takes it at some t, the patch tree of every patch size of
        the schedule — so that no call in a sampling loop pays for it.  Returns self.

        Raises ElscliError for a label with no images, a time outside (0, 1], or ``times=None`` with a
        parameter that is a schedule."""
        label = self.label if labels is None else labels
        labs = np.unique(labels_for(label, int(np.size(label)) if np.ndim(label) else 1))
        if times is None:
            if self._scheduled():
                raise ElscliError("a parameter is a schedule: give the times to prepare for")
            plan = [(None, None, self.values_at(None))]
        else:
            plan = [(float(t), noise_scales(t, None, None, self.noise_schedule), self.values_at(t))
                    for t in np.atleast_1d(np.asarray(times, dtype=np.float64))]
        with numba_threads(self.threads):
            for lab in labs:
                index = self.bank.index_for(int(lab))
                for t, ab, values in plan:
                    self._prepare(index, t, ab, values)
        return self

    def _scheduled(self) -> bool:
        return any(callable(v) or isinstance(v, Mapping) for v in self.params.values())

    def _run(self, x, t, label, a, b, provenance: bool):
        xb, single = check_queries(x, self.bank.shape)
        values = self.values_at(t)
        a, b = noise_scales(t, a, b, self.noise_schedule)
        B, C, H, W = xb.shape
        labs = labels_for(self.label if label is ... else label, B)
        x0 = np.empty((B, C, H, W))
        prov = Provenance.empty(B, H, W) if provenance else None
        with numba_threads(self.threads):
            for lab in np.unique(labs):
                sel = np.flatnonzero(labs == lab)
                index = self.bank.index_for(int(lab))
                out, pv = self._denoise(np.ascontiguousarray(xb[sel]), index, t, a, b, values, provenance)
                x0[sel] = out
                if provenance:
                    for name in Provenance.FIELDS:
                        getattr(prov, name)[sel] = getattr(pv, name)
        if single:
            return x0[0], (prov[0] if provenance else None)
        return x0, prov

    # ------------------------------------------------------------------------------ for subclasses
    def _prepare(self, index: np.ndarray, t: Optional[float], ab: Optional[Tuple[float, float]],
                 values: Dict[str, Any]) -> None:
        """Build ahead what calls for the dictionary of images ``index`` at time ``t`` (scales ``ab``; both
        None: any time) with the parameter ``values`` will need (default: nothing)."""

    def _denoise(self, x: np.ndarray, index: np.ndarray, t: Optional[float], a: float, b: float,
                 values: Dict[str, Any], provenance: bool) -> Tuple[np.ndarray, Optional[Provenance]]:
        """x0_hat (B, C, H, W) float64 of the queries ``x`` (B, C, H, W) float64 C-contiguous over the images
        ``self.bank.images[index]``, at scales (a, b) (time ``t``, None when the scales were given), with
        the parameters ``values``; and their Provenance (bank indices) when ``provenance``."""
        raise NotImplementedError


_REGISTRY: Dict[str, Type[Denoiser]] = {}


def register(cls: Type[Denoiser]) -> Type[Denoiser]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"machine name {cls.name!r} is empty or taken")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> Tuple[str, ...]:
    """The names of the registered machines, in registration order."""
    return tuple(_REGISTRY)


def machine_class(name: str) -> Type[Denoiser]:
    """The registered class of machine ``name`` (case-insensitive); ElscliError when there is none."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ElscliError(f"unknown machine {name!r} (choose from {', '.join(_REGISTRY)})")
    return _REGISTRY[key]


def make_denoiser(name: str, bank, **kwargs) -> Denoiser:
    """``machine_class(name)(bank, **kwargs)``: the denoiser ``name`` built for ``bank``."""
    return machine_class(name)(bank, **kwargs)


def positive_odd_patch_size(value, shape) -> int:
    """A patch size: an odd positive integer (bools and non-integral floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or not math.isfinite(float(value)) or int(value) != value:
        raise ElscliError(f"patch size must be an odd positive integer, got {value!r}")
    P = int(value)
    if P <= 0 or P % 2 == 0:
        raise ElscliError(f"patch size must be an odd positive integer, got {P}")
    return P
