"""The local score machines of Kamb & Ganguli (2025): LS, ELS and bbELS (science.md, "The machines").

For every output pixel p, a softmax over the P x P patches phi of a dictionary D_p,
``w(phi) ∝ exp(-||x_Ωp - a phi||^2 / 2b^2)``, and ``x0_hat(p) = sum_phi w(phi) phi(centre)``:

- ``ls``    — local score: zero-padded query window; D_p the same-location window of every training image;
- ``els``   — equivariant local score: circular query padding; D_p every valid patch anywhere; with
  ``wrap=True`` every pixel of every circularly padded training image is a patch centre (P up to 2H - 1):
  at P = H (odd H) this is the paper's equivariant, non-local ES machine, whose dictionary is every circular
  shift of every training image;
- ``bbels`` — boundary-broken ELS: zero padding; per axis, a pixel within P//2 of a border only sees
  patches centred at its own coordinate (zero-padded), others any coordinate >= P//2 from both borders.

A machine here only names its query padding and its dictionary as *groups* (rectangles of query pixels
sharing one rectangle of patch centres); :class:`.patch_dictionary.PatchDictionary` and the kernels do the
rest.  Parameter: ``patch_size`` (odd, may follow a schedule of t).
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from ..errors import ElscliError
from .interface import Denoiser, Parameter, Provenance, positive_odd_patch_size, register
from .patch_dictionary import DEFAULT_OPTIONS, KernelOptions, PatchDictionary


def _axis_parts(P: int, L: int):
    """bbELS along one axis of length L: (first, last + 1, centre_lo, centre_hi) parts of the query
    coordinates; centre_lo = -1 means "the pixel's own coordinate" (the bands within P//2 of a border)."""
    r = P // 2
    if L <= 2 * r:                      # no interior: every coordinate is within P//2 of a border
        return [(0, L, -1, -1)]
    parts = [(0, r, -1, -1), (r, L - r, r, L - r), (L - r, L, -1, -1)]
    return [p for p in parts if p[1] > p[0]]


class LocalMachine(Denoiser):
    """A local score machine: a query padding and a dictionary of patches per pixel (groups).

    ``options``: :class:`~.patch_dictionary.KernelOptions` (routing between the kernels; None: the
    defaults)."""

    #: numpy.pad mode of the query window: "wrap" (circular) or "constant" (zeros).
    padding: ClassVar[str] = "constant"
    #: The dictionary's images are circularly padded by P // 2 (:class:`.patch_dictionary.PatchDictionary`).
    wrap: bool = False
    #: The kernel returns whole posterior-mean patches, not only their centres.
    whole_patches: ClassVar[bool] = False

    def __init__(self, bank, *, options: Optional[KernelOptions] = None, **kwargs) -> None:
        self._pinned: Dict[Tuple[str, int], PatchDictionary] = {}
        super().__init__(bank, options=DEFAULT_OPTIONS if options is None else options, **kwargs)

    @staticmethod
    def groups(P: int, H: int, W: int) -> np.ndarray:
        """Group table (G, 8) int64 for the patch kernel: rows (qi0, qi1, qj0, qj1, u0, u1, v0, v1): query
        rows [qi0, qi1) and cols [qj0, qj1) see patch centres rows [u0, u1), cols [v0, v1); u0 = -1 means the
        query pixel's own row (v0 = -1 its own column)."""
        raise NotImplementedError

    def dictionary_groups(self, P: int, H: int, W: int) -> np.ndarray:
        """The group table of this denoiser at patch size P (:meth:`groups`; centres in the coordinates of the
        dictionary's images, which are wrap-padded when :attr:`wrap`)."""
        return self.groups(P, H, W)

    def dictionary(self, index: np.ndarray, P: int) -> PatchDictionary:
        """The (cached) prepared dictionary of the images ``index`` at patch size P, kept while this
        denoiser lives."""
        from .patch_dictionary import index_digest

        key = (index_digest(index), int(P))
        d = self._pinned.get(key)
        if d is None:
            C, H, W = self.bank.shape
            r = P // 2
            pad = r if self.wrap else 0
            groups = self.dictionary_groups(P, H, W)
            tree_group = -1
            for g, row in enumerate(groups):
                if tuple(row[4:]) == (r, H + 2 * pad - r, r, W + 2 * pad - r):
                    tree_group = g
                    break
            d = PatchDictionary.cached(self.name, self.bank, index, P, groups, tree_group, self.options,
                                       wrap=self.wrap, whole_patches=self.whole_patches)
            self._pinned[key] = d
        return d

    def _prepare(self, index, t, ab, values) -> None:
        d = self.dictionary(index, values["patch_size"])
        d.prepare(tree=ab is not None and d.uses_tree(*ab))

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        P = values["patch_size"]
        r = P // 2
        xq = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode=self.padding))
        return self.dictionary(index, P).run(xq, a, b)


def _patch_size(value: Any, shape) -> int:
    return positive_odd_patch_size(value, shape)


_PATCH_SIZE = Parameter("patch_size", "side P of the square patches (odd; a schedule of t allowed)", _patch_size,
                        time_dependent=True)


@register
class LocalScore(LocalMachine):
    """LS: zero-padded P x P window; each pixel's dictionary is the same-location window of every training
    image (science.md, "The machines")."""

    name = "ls"
    summary = "local score: PxP window, zero padding, the same-location window of every training image"
    parameters = (_PATCH_SIZE,)
    padding = "constant"

    @staticmethod
    def groups(P: int, H: int, W: int) -> np.ndarray:
        return np.array([[0, H, 0, W, -1, -1, -1, -1]], dtype=np.int64)


def _els_patch_size(value: Any, shape) -> int:
    P = positive_odd_patch_size(value, shape)
    _, H, W = shape
    if P > 2 * min(H, W) - 1:
        raise ElscliError(f"ELS patch size {P} is larger than twice the image side less one "
                          f"({H}x{W} images); use P <= {2 * min(H, W) - 1}")
    return P


def _flag(value: Any, shape) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ElscliError(f"expected true or false, got {value!r}")


@register
class EquivariantLocalScore(LocalMachine):
    """ELS: circularly padded P x P window; each pixel's dictionary is every valid P x P patch of every
    training image, anywhere (science.md, "The machines").

    ``wrap=True``: the dictionary is every P x P patch of every circularly padded training image — every
    pixel of a training image is a patch centre, P up to 2H - 1.  The dictionary of every query pixel is
    then invariant under circular shifts of the training images, so at P = H = W (odd) the machine is the
    equivariant but non-local ES machine of Kamb & Ganguli (2025: the ideal score of the training set
    closed under circular shifts), which at low noise returns circular shifts of training images.  Its
    provenance gives patch centres in the unpadded training image (row, col modulo H, W)."""

    name = "els"
    summary = "equivariant local score: circular query padding, every valid patch anywhere"
    parameters = (Parameter("patch_size", _PATCH_SIZE.doc + "; at most the image side (2H - 1 with wrap)",
                            _els_patch_size, time_dependent=True),
                  Parameter("wrap", "wrap-around training patches: every pixel of a circularly padded "
                                    "training image is a patch centre (at P = H: the non-local ES machine)",
                            _flag, default=False))
    padding = "wrap"

    def __init__(self, bank, **kwargs) -> None:
        super().__init__(bank, **kwargs)
        self.wrap = bool(self.params["wrap"])
        if not self._scheduled():
            self.values_at(None)

    def values_at(self, t):
        values = super().values_at(t)
        P = values["patch_size"]
        _, H, W = self.bank.shape
        if not values["wrap"] and (P > H or P > W):
            raise ElscliError(f"ELS has an empty dictionary for patch size {P} on {H}x{W} images "
                              f"(no valid {P}x{P} patch); use P <= {min(H, W)}, or wrap-around patches")
        return values

    @staticmethod
    def groups(P: int, H: int, W: int) -> np.ndarray:
        r = P // 2
        return np.array([[0, H, 0, W, r, H - r, r, W - r]], dtype=np.int64)

    def dictionary_groups(self, P: int, H: int, W: int) -> np.ndarray:
        if not self.wrap:
            return self.groups(P, H, W)
        r = P // 2       # every pixel of the padded images' central H x W is a centre: [r, H + r) padded
        return np.array([[0, H, 0, W, r, H + r, r, W + r]], dtype=np.int64)


@register
class BoundaryBrokenELS(LocalMachine):
    """bbELS: zero-padded window; per axis, a pixel within P//2 of a border sees only patches centred at its
    own coordinate, others every coordinate >= P//2 from both borders (science.md, "The machines")."""

    name = "bbels"
    summary = "boundary-broken ELS: zero padding; edge pixels see patches at their own offset from the edge"
    parameters = (_PATCH_SIZE,)
    padding = "constant"

    @staticmethod
    def groups(P: int, H: int, W: int) -> np.ndarray:
        rows = _axis_parts(P, H)
        cols = _axis_parts(P, W)
        return np.array([[qi0, qi1, qj0, qj1, u0, u1, v0, v1]
                         for (qi0, qi1, u0, u1) in rows for (qj0, qj1, v0, v1) in cols], dtype=np.int64)
