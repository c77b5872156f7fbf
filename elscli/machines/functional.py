"""The functional API: ``denoise(name, x, t, bank, patch_size, label)`` and friends, thin wrappers that build the
named :class:`~.interface.Denoiser` for the bank and call it once.  The expensive parts (image blocks,
constant patches, patch trees) are found again across calls in the content-keyed caches (:mod:`.cache`), so
repeated calls with the same bank pay for them once."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..noise import DEFAULT_NOISE_SCHEDULE
from .interface import Denoiser, Provenance, machine_class


def _build(machine: str, bank, patch_size, threads, noise_schedule, options, params=None) -> Denoiser:
    cls = machine_class(machine)
    names = {p.name for p in cls.parameters}
    params = dict(params or {})
    if "patch_size" in names and "patch_size" not in params:
        params["patch_size"] = patch_size
    return cls(bank, threads=threads, noise_schedule=noise_schedule, options=options, **params)


def denoise_with_provenance(machine: str, x, t: Optional[float], bank, patch_size: Optional[int] = None,
                            label=None, *, a: Optional[float] = None, b: Optional[float] = None,
                            threads: Optional[int] = None, noise_schedule: str = DEFAULT_NOISE_SCHEDULE,
                            options=None, **params) -> Tuple[np.ndarray, Provenance]:
    """``x0_hat`` and per-pixel :class:`~.interface.Provenance` of ``machine`` at time ``t`` (or scales a, b).

    x: (B, C, H, W) or (C, H, W) queries; bank: an :class:`elscli.Bank`, an (N, C, H, W) real array or a
    :class:`~.training_set.TrainingSet`; patch_size: P of the local machines (ignored by ``is``); label: None,
    an int, or one int per image (-1: unconditional); threads: Numba threads for this call; options:
    :class:`~.patch_dictionary.KernelOptions` of the local machines; ``**params``: the machine's other
    parameters by name (``sigma=`` of scfdm, ``temperature=`` of is, ``threshold=`` of pca-locality, ``wrap=``
    of els...).  Returns x0_hat (same shape as x, float64) and the Provenance (arrays (B, H, W), or (H, W)
    for one image).  Raises ElscliError on bad input (an unknown parameter, a machine without provenance).
    """
    d = _build(machine, bank, patch_size, threads, noise_schedule, options, params)
    return d.denoise_with_provenance(x, t, label=label, a=a, b=b)


def denoise(machine: str, x, t: Optional[float], bank, patch_size: Optional[int] = None, label=None, *,
            a: Optional[float] = None, b: Optional[float] = None, threads: Optional[int] = None,
            noise_schedule: str = DEFAULT_NOISE_SCHEDULE, options=None, **params) -> np.ndarray:
    """``x0_hat`` of ``machine`` for queries ``x`` at time ``t``: same shape as x, float64 (arguments as
    :func:`denoise_with_provenance`), e.g. ``denoise("scfdm", x, t, bank, sigma=0.1)``."""
    d = _build(machine, bank, patch_size, threads, noise_schedule, options, params)
    return d(x, t, label=label, a=a, b=b)


def score(machine: str, x, t: Optional[float], bank, patch_size: Optional[int] = None, label=None, *,
          a: Optional[float] = None, b: Optional[float] = None, threads: Optional[int] = None,
          noise_schedule: str = DEFAULT_NOISE_SCHEDULE, options=None, **params) -> np.ndarray:
    """The machine's score ``-(x - a x0_hat) / b^2`` (science.md, "Conventions"), same shape as x, float64."""
    d = _build(machine, bank, patch_size, threads, noise_schedule, options, params)
    return d.score(x, t, label=label, a=a, b=b)


def denoise_candidates(machine: str, x, t: Optional[float], bank, patch_sizes, label=None, *,
                       a: Optional[float] = None, b: Optional[float] = None, threads: Optional[int] = None,
                       noise_schedule: str = DEFAULT_NOISE_SCHEDULE, options=None) -> np.ndarray:
    """``x0_hat`` of ``machine`` for each patch size in ``patch_sizes`` (a locality scan's candidates):
    (K, B, C, H, W) float64 for x (B, C, H, W), (K, C, H, W) for one (C, H, W) image.

    LS runs every size in one pass over the bank (:mod:`elscli.kernels.window_sizes`: the window sums of
    all sizes from one integral image per training image), agreeing with :func:`denoise` to rounding
    (~1e-13); the other machines call one denoiser per size, whose prepared dictionaries (blocks, constant
    patches, patch trees) are reused from call to call.  Raises :class:`ElscliError` as :func:`denoise`
    does, for an empty list of sizes too."""
    from ..errors import ElscliError
    from ..kernels.threads import numba_threads
    from .inputs import check_queries, labels_for, noise_scales
    from .local import LocalScore
    from .patch_dictionary import DEFAULT_OPTIONS, image_blocks

    cls = machine_class(machine)
    sizes = [p for p in (patch_sizes if np.ndim(patch_sizes) else [patch_sizes])]
    if not sizes:
        raise ElscliError("no patch sizes given")
    if cls is not LocalScore:
        return np.stack([denoise(machine, x, t, bank, p, label, a=a, b=b, threads=threads,
                                 noise_schedule=noise_schedule, options=options) for p in sizes])
    from ..kernels.softmax_state import log_weight_scales
    from ..kernels.window_sizes import window_sizes_softmax

    D = _build(machine, bank, sizes[0], threads, noise_schedule, options)
    xb, single = check_queries(x, D.bank.shape)
    radii = np.array([LocalScore.parameters[0].check(p, D.bank.shape) // 2 for p in sizes], dtype=np.int64)
    a, b = noise_scales(t, a, b, noise_schedule)
    labs = labels_for(label, xb.shape[0])
    compress = bool((options or DEFAULT_OPTIONS).compress_lanes)
    out = np.empty((len(sizes),) + xb.shape)
    with numba_threads(threads):
        for lab in np.unique(labs):
            sel = np.flatnonzero(labs == lab)
            index = D.bank.index_for(int(lab))
            blocks = image_blocks(D.bank, index)
            out[:, sel] = window_sizes_softmax(np.ascontiguousarray(xb[sel]), blocks, int(index.shape[0]), radii,
                                               log_weight_scales(a, b), compress)
    return out[:, 0] if single else out
