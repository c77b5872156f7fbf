"""The analytic score machines (science.md, "The machines") as denoisers over one kernel layer.

**The interface.**  A machine is a :class:`Denoiser` subclass registered under a name.  It is built once for
a bank (a :class:`elscli.Bank`, an (N, C, H, W) real array, or a :class:`TrainingSet`) with its parameters,
and then called::

    D = make_denoiser("bbels", bank, patch_size=7)           # or patch_size={t: P, ...} / lambda t: P
    D.prepare(times)                                          # optional: build blocks, trees... now
    x0 = D(x, t)                                              # x (B, C, H, W) -> x0_hat (B, C, H, W) float64
    x0, prov = D.denoise_with_provenance(x, t, label=[3, -1]) # where the machine has a dominant patch
    s = D.score(x, t)                                         # -(x - a x0_hat) / b^2

``t`` may be replaced by the scales ``a=``, ``b=``; ``label`` (None, an int or one per query; -1:
unconditional) restricts each query's dictionary to that label's images.  Everything a machine computes is
``x0_hat``; samplers, runs, ``compare``, ``mosaic`` and ``locality-scan`` need only this interface.

**Adding a machine** is one module (imported below) plus its tests::

    @register
    class Nearest(Denoiser):
        name = "nearest"
        summary = "the nearest training image"
        parameters = (Parameter("sigma", "smoothing (>= 0)", check_sigma, default=0.0),)
        has_provenance = False

        def _denoise(self, x, index, t, a, b, values, provenance):
            ...                      # x (B, C, H, W) over self.bank.images[index]; values["sigma"]
            return x0, None

A parameter may be required or have a default, may be ``time_dependent`` (then a schedule of t is
accepted), and is checked by its ``check(value, (C, H, W))``; ``_prepare`` builds ahead what the calls at
some times will need.  Inputs are checked on one path (:mod:`.training_set`, :mod:`.inputs`): bad input is a
one-line :class:`~elscli.errors.ElscliError`.

**Modules.**  :mod:`.interface` (Denoiser, Parameter, Provenance, registry), :mod:`.training_set` (the one
validation of banks, read-only images keyed by content), :mod:`.inputs` (queries, noise level, labels),
:mod:`.cache` (the content-keyed cache), :mod:`.patch_dictionary` (a local machine's prepared dictionary and
the kernel routing options), :mod:`.ideal` (IS, with a temperature), :mod:`.local` (LS, ELS — with
wrap-around patches the ES machine —, bbELS), :mod:`.nearest` (the nearest training image),
:mod:`.closed_form` (scfdm), :mod:`.gaussian` (the cached Gaussian fit; wiener), :mod:`.pca_locality`
(pca-locality), :mod:`.patch_posterior` (pspc-square), :mod:`.functional`
(``denoise``, ``score``, ``denoise_with_provenance``, ``denoise_candidates``).  The machines know nothing
of time grids or sampling.
"""
from ..kernels.threads import numba_threads
from . import ideal, local, nearest, closed_form, gaussian, pca_locality, patch_posterior  # noqa: F401,I001  (registers them, in this order)
from .functional import denoise, denoise_candidates, denoise_with_provenance, score
from .interface import (REQUIRED, Denoiser, Parameter, Provenance, machine_class, make_denoiser, register,
                        registered)
from .patch_dictionary import DEFAULT_OPTIONS, KernelOptions, PatchDictionary, set_tree_cache
from .training_set import TrainingSet, training_set

#: The registered machines' names.
MACHINES = registered()

__all__ = ["DEFAULT_OPTIONS", "Denoiser", "KernelOptions", "MACHINES", "Parameter", "PatchDictionary",
           "Provenance", "REQUIRED", "TrainingSet", "denoise", "denoise_candidates", "denoise_with_provenance",
           "machine_class", "make_denoiser", "numba_threads", "register", "registered", "score", "set_tree_cache",
           "training_set"]
