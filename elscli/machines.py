"""The four analytic score machines (science.md, "The machines") over one kernel layer.

``denoise(machine, x, t, bank, patch_size, label)`` returns ``x0_hat``, the per-pixel softmax-weighted mean
of training pixels; ``score`` returns ``-(x - a x0_hat) / b^2``; ``denoise_with_provenance`` also returns,
per output pixel, the dominant dictionary patch (training image, row, col), its weight and the posterior
entropy of the weights.  Machines:

- ``is``    — ideal score: whole images, memorises;
- ``ls``    — local score: PxP window, zero padding, the same-location window of every training image;
- ``els``   — equivariant local score: circular query padding, every valid patch anywhere;
- ``bbels`` — boundary-broken ELS: zero padding; per axis, a pixel within P//2 of a border only sees
  patches centred at its own coordinate (zero-padded), others any coordinate >= P//2 from both borders.

This module validates inputs, pads, builds the per-machine dictionary *groups*, and calls the kernels in
:mod:`elscli.kernels`; it knows nothing of time grids or sampling.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .errors import ElscliError
from .kernels.threads import numba_threads  # noqa: F401  (re-exported)
from .noise import DEFAULT_NOISE_SCHEDULE, get_noise_schedule

MACHINES = ("is", "ls", "els", "bbels")
LOCAL_MACHINES = ("ls", "els", "bbels")


@dataclass
class Provenance:
    """Per output pixel: the dominant dictionary patch and the weight distribution's spread.

    ``image`` (B, H, W) int64 index in the whole bank; ``row``, ``col`` (B, H, W) int32 centre of that
    patch in its (unpadded) training image; ``weight`` (B, H, W) its softmax weight (all copies of an
    identical patch are counted separately; the first in (image, row, col) order is the dominant one);
    ``entropy`` (B, H, W) posterior entropy of the weights in nats.
    """

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    entropy: np.ndarray

    def __getitem__(self, item) -> "Provenance":
        return Provenance(self.image[item], self.row[item], self.col[item], self.weight[item],
                          self.entropy[item])


# ----------------------------------------------------------------------------------------------- inputs

def _bank_arrays(bank) -> Tuple[np.ndarray, Optional[np.ndarray], object]:
    """(images float32 (N,C,H,W), labels or None, bank object) from a Bank or a raw array."""
    images = getattr(bank, "images", None)
    if images is not None:
        return images, getattr(bank, "labels", None), bank
    arr = np.asarray(bank)
    if arr.ndim != 4:
        raise ElscliError(f"a bank must be a Bank or an (N, C, H, W) array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32), None, None


def _check_machine(machine: str) -> str:
    m = str(machine).lower()
    if m not in MACHINES:
        raise ElscliError(f"unknown machine {machine!r} (choose from {', '.join(MACHINES)})")
    return m


def _check_patch_size(machine: str, patch_size, H: int, W: int) -> int:
    if machine == "is":
        return 0
    if patch_size is None:
        raise ElscliError(f"machine {machine!r} needs a patch size")
    if isinstance(patch_size, (bool, np.bool_)) or int(patch_size) != patch_size:
        raise ElscliError(f"patch size must be an odd positive integer, got {patch_size!r}")
    P = int(patch_size)
    if P <= 0 or P % 2 == 0:
        raise ElscliError(f"patch size must be an odd positive integer, got {P}")
    if machine == "els" and (P > H or P > W):
        raise ElscliError(f"ELS has an empty dictionary for patch size {P} on {H}x{W} images "
                          f"(no valid {P}x{P} patch); use P <= {min(H, W)}")
    return P


def _scales(t, a, b, schedule: str) -> Tuple[float, float]:
    if a is not None or b is not None:
        if a is None or b is None:
            raise ElscliError("give both a and b, or neither (then t sets them)")
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= 0:
            raise ElscliError(f"need a >= 0 and b > 0, got a={a}, b={b}")
        return a, b
    if t is None:
        raise ElscliError("give a time t (or the scales a and b)")
    t = float(t)
    if not (0.0 < t <= 1.0):
        raise ElscliError(f"time t={t} is outside (0, 1]")
    return get_noise_schedule(schedule)(t)


def _check_queries(x, bank_shape) -> Tuple[np.ndarray, bool]:
    x = np.asarray(x)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise ElscliError(f"x must be (B, C, H, W) or (C, H, W), got shape {x.shape}")
    if x.shape[1:] != tuple(bank_shape):
        raise ElscliError(f"x has images of shape {tuple(x.shape[1:])} but the bank holds {tuple(bank_shape)} "
                          "(channels, height, width must match)")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ElscliError("x contains NaN or inf")
    return x, single


def _labels_for(label, B: int) -> np.ndarray:
    if label is None:
        return np.full(B, -1, dtype=np.int64)
    lab = np.asarray(label)
    if lab.ndim == 0:
        return np.full(B, int(lab), dtype=np.int64)
    lab = lab.astype(np.int64).ravel()
    if lab.shape[0] != B:
        raise ElscliError(f"got {lab.shape[0]} labels for {B} images")
    return lab


def _index_for_label(label: int, labels: Optional[np.ndarray], bank_obj, N: int) -> np.ndarray:
    if label < 0:
        return np.arange(N, dtype=np.int64)
    if bank_obj is not None and hasattr(bank_obj, "indices_for"):
        idx = np.asarray(bank_obj.indices_for(int(label)), dtype=np.int64)
    elif labels is not None:
        idx = np.flatnonzero(np.asarray(labels) == label).astype(np.int64)
    else:
        raise ElscliError(f"label {label} requested but the bank has no labels")
    if idx.size == 0:
        raise ElscliError(f"label {label} has no images in the bank")
    return idx


# -------------------------------------------------------------------------------------- dictionaries

def _axis_parts(P: int, L: int):
    """bbELS along one axis of length L: (first, last + 1, centre_lo, centre_hi) parts of the query
    coordinates; centre_lo = -1 means "the pixel's own coordinate" (the bands within P//2 of a border)."""
    r = P // 2
    if L <= 2 * r:                      # no interior: every coordinate is within P//2 of a border
        return [(0, L, -1, -1)]
    parts = [(0, r, -1, -1), (r, L - r, r, L - r), (L - r, L, -1, -1)]
    return [p for p in parts if p[1] > p[0]]


def dictionary_groups(machine: str, P: int, H: int, W: int) -> np.ndarray:
    """Group table for the patch kernel: rows (qi0, qi1, qj0, qj1, u0, u1, v0, v1); u0 = -1 means the
    query pixel's own row (v0 = -1 its own column)."""
    r = P // 2
    if machine == "els":
        return np.array([[0, H, 0, W, r, H - r, r, W - r]], dtype=np.int64)
    if machine == "ls":
        return np.array([[0, H, 0, W, -1, -1, -1, -1]], dtype=np.int64)
    if machine == "bbels":
        rows = _axis_parts(P, H)
        cols = _axis_parts(P, W)
        return np.array([[qi0, qi1, qj0, qj1, u0, u1, v0, v1]
                         for (qi0, qi1, u0, u1) in rows for (qj0, qj1, v0, v1) in cols], dtype=np.int64)
    raise ElscliError(f"machine {machine!r} has no patch dictionary")


class _BlockCache:
    """Transposed image blocks per (bank array, index set), kept while the bank array lives.

    Building them is a copy of the selected images; sampling calls the machines dozens of times per sample
    with the same bank, so the copy is made once."""

    def __init__(self, size: int = 16):
        self.size = size
        self.entries: dict = {}

    def get(self, images: np.ndarray, index: np.ndarray, K: int) -> np.ndarray:
        from .kernels.shift_softmax import transpose_blocks

        key = (id(images), images.shape, K, index.shape[0], hash(index.tobytes()))
        hit = self.entries.get(key)
        if hit is not None and hit[0]() is images and np.array_equal(hit[1], index):
            return hit[2]
        blocks = transpose_blocks(images, index, K)
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = (weakref.ref(images), index.copy(), blocks)
        return blocks


_BLOCKS = _BlockCache()


class _ConstantPatchCache:
    """:class:`~elscli.kernels.constant_patch.ConstantPatches` per (bank array, index set, P, machine), and
    the constant value per bank array; built once per dictionary, like the blocks."""

    def __init__(self, size: int = 32):
        self.size = size
        self.entries: dict = {}
        self.values: dict = {}

    def value(self, images: np.ndarray) -> np.ndarray:
        from .kernels.constant_patch import constant_value

        key = (id(images), images.shape)
        hit = self.values.get(key)
        if hit is not None and hit[0]() is images:
            return hit[1]
        val = constant_value(images)
        if len(self.values) >= self.size:
            self.values.pop(next(iter(self.values)))
        self.values[key] = (weakref.ref(images), val)
        return val

    def get(self, images: np.ndarray, index: np.ndarray, blocks: np.ndarray, P: int, machine: str,
            groups: np.ndarray):
        from .kernels import constant_patch
        from .kernels.constant_patch import ConstantPatches

        key = (id(images), images.shape, blocks.shape, index.shape[0], hash(index.tobytes()), P, machine)
        hit = self.entries.get(key)
        if hit is not None and hit[0]() is images and np.array_equal(hit[1], index):
            return hit[2]
        const = ConstantPatches(blocks, index, P, groups, self.value(images),
                                min_fraction=constant_patch.MIN_CONSTANT_FRACTION)
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = (weakref.ref(images), index.copy(), const)
        return const


_CONSTANT_PATCHES = _ConstantPatchCache()


class _PatchTreeCache:
    """:class:`~elscli.kernels.patch_tree.PatchTree` per (bank array, index set, P): a few, they are big."""

    def __init__(self, size: int = 4):
        self.size = size
        self.entries: dict = {}

    def get(self, images: np.ndarray, index: np.ndarray, P: int):
        from .kernels.patch_tree import PatchTree

        key = (id(images), images.shape, index.shape[0], hash(index.tobytes()), P)
        hit = self.entries.get(key)
        if hit is not None and hit[0]() is images and np.array_equal(hit[1], index):
            return hit[2]
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        tree = PatchTree(images, index, P)
        self.entries[key] = (weakref.ref(images), index.copy(), tree)
        return tree


_PATCH_TREES = _PatchTreeCache()


# ------------------------------------------------------------------------------------------- machines

def _tree_group(machine: str, groups: np.ndarray, P: int, H: int, W: int) -> int:
    """The row of ``groups`` whose dictionary is every valid patch (ELS; the bbELS interior), or -1."""
    r = P // 2
    for g, row in enumerate(groups):
        if tuple(row[4:]) == (r, H - r, r, W - r):
            return g
    return -1


def _use_tree(machine: str, P: int, a: float, b: float, n_images: int, C: int, H: int, W: int) -> bool:
    """The patch tree pays off for small patches (few coordinates per bound): at low noise, where its bounds
    prune most of the dictionary, and for P = 3 at any noise (each distinct patch is evaluated once, with
    its count); the thresholds are ``patch_tree.MIN_PRECISION``.  It must also fit the memory budget."""
    from .kernels import patch_tree

    if machine not in ("els", "bbels") or P not in patch_tree.MIN_PRECISION or P > min(H, W) or a <= 0.0:
        return False
    if a * a / (2.0 * b * b) < patch_tree.MIN_PRECISION[P]:
        return False
    n = n_images * (H - P + 1) * (W - P + 1)
    return n * (C * P * P * 4 + 48) <= patch_tree.MAX_BYTES


def _run_patch_machine(machine, xb, images, index, P, a, b):
    from .kernels.config import lanes_per_block
    from .kernels import lanes
    from .kernels.shift_softmax import BlockDictionary, shift_softmax
    from .kernels.softmax_state import empty_state, log_weight_scales

    B, C, H, W = xb.shape
    r = P // 2
    mode = "wrap" if machine == "els" else "constant"
    xq = np.ascontiguousarray(np.pad(xb, ((0, 0), (0, 0), (r, r), (r, r)), mode=mode))
    blocks = _BLOCKS.get(images, index, lanes_per_block(index.shape[0]))
    groups = dictionary_groups(machine, P, H, W)
    scales = log_weight_scales(a, b)
    const = _CONSTANT_PATCHES.get(images, index, blocks, P, machine, groups)
    ext = empty_state(B * H * W, C)
    const.fold_into(ext, xq, P, scales)
    g = _tree_group(machine, groups, P, H, W)
    if g >= 0 and _use_tree(machine, P, a, b, index.shape[0], C, H, W):
        from .kernels.patch_tree import tree_softmax

        tree = _PATCH_TREES.get(images, index, P)
        qi0, qi1, qj0, qj1 = groups[g, :4]
        ii, jj = np.meshgrid(np.arange(qi0, qi1), np.arange(qj0, qj1), indexing="ij")
        pixels = np.ascontiguousarray(np.stack([ii.ravel(), jj.ravel()], axis=1), dtype=np.int64)
        tree_softmax(xq, pixels, P, scales, tree.arrays, ext)
        groups = np.delete(groups, g, axis=0)
    dictionary = BlockDictionary(blocks, int(index.shape[0]), index, groups, int(P), const.mask, bool(const.active))
    x0, dn, du, dv, w, ent = shift_softmax(xq, dictionary, scales, bool(lanes.COMPRESS_LANES), ext)
    return x0, Provenance(dn, du.astype(np.int32), dv.astype(np.int32), w, ent)


def _run_ideal(xb, images, index, a, b):
    from .kernels.ideal import ideal_softmax

    B, C, H, W = xb.shape
    s1 = a / (b * b)
    s2 = a * a / (2.0 * b * b)
    flat = images.reshape(images.shape[0], -1)
    x0, dom, w, ent = ideal_softmax(xb.reshape(B, -1), flat, index, s1, s2)
    rows = np.broadcast_to(np.arange(H, dtype=np.int32)[:, None], (H, W))
    cols = np.broadcast_to(np.arange(W, dtype=np.int32)[None, :], (H, W))
    prov = Provenance(np.ascontiguousarray(np.broadcast_to(dom[:, None, None], (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(rows, (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(cols, (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(w[:, None, None], (B, H, W))),
                      np.ascontiguousarray(np.broadcast_to(ent[:, None, None], (B, H, W))))
    return x0.reshape(B, C, H, W), prov


def denoise_with_provenance(machine: str, x, t: Optional[float], bank, patch_size: Optional[int] = None,
                            label=None, *, a: Optional[float] = None, b: Optional[float] = None,
                            threads: Optional[int] = None,
                            noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> Tuple[np.ndarray, Provenance]:
    """``x0_hat`` and per-pixel :class:`Provenance` of ``machine`` at time ``t`` (or scales ``a``, ``b``).

    x: (B, C, H, W) or (C, H, W) in the [-1, 1] pixel scale plus noise; bank: a :class:`elscli.Bank` or an
    (N, C, H, W) float array; label: None, an int, or one int per image (-1: unconditional).
    """
    machine = _check_machine(machine)
    images, labels, bank_obj = _bank_arrays(bank)
    N, C, H, W = images.shape
    if N == 0:
        raise ElscliError("the bank holds no images")
    xb, single = _check_queries(x, (C, H, W))
    P = _check_patch_size(machine, patch_size, H, W)
    a, b = _scales(t, a, b, noise_schedule)
    B = xb.shape[0]
    labs = _labels_for(label, B)
    x0 = np.empty((B, C, H, W))
    prov = Provenance(np.empty((B, H, W), np.int64), np.empty((B, H, W), np.int32),
                      np.empty((B, H, W), np.int32), np.empty((B, H, W)), np.empty((B, H, W)))
    with numba_threads(threads):
        for lab in np.unique(labs):
            sel = np.flatnonzero(labs == lab)
            index = _index_for_label(int(lab), labels, bank_obj, N)
            xs = np.ascontiguousarray(xb[sel])
            if machine == "is":
                out, pv = _run_ideal(xs, images, index, a, b)
            else:
                out, pv = _run_patch_machine(machine, xs, images, index, P, a, b)
            x0[sel] = out
            for name in ("image", "row", "col", "weight", "entropy"):
                getattr(prov, name)[sel] = getattr(pv, name)
    if single:
        return x0[0], prov[0]
    return x0, prov


def denoise(machine: str, x, t: Optional[float], bank, patch_size: Optional[int] = None, label=None, *,
            a: Optional[float] = None, b: Optional[float] = None, threads: Optional[int] = None,
            noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> np.ndarray:
    """``x0_hat`` of ``machine`` for queries ``x`` at time ``t``: same shape as x, float64."""
    return denoise_with_provenance(machine, x, t, bank, patch_size, label, a=a, b=b, threads=threads,
                                   noise_schedule=noise_schedule)[0]


def denoise_candidates(machine: str, x, t: Optional[float], bank, patch_sizes, label=None, *,
                       a: Optional[float] = None, b: Optional[float] = None, threads: Optional[int] = None,
                       noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> np.ndarray:
    """``x0_hat`` of ``machine`` for each patch size in ``patch_sizes`` (a locality scan's candidates):
    (K, B, C, H, W) float64 for x (B, C, H, W), (K, C, H, W) for one (C, H, W) image.

    LS runs every size in one pass over the bank (:mod:`elscli.kernels.window_sizes`: the window sums of
    all sizes from one integral image per training image), agreeing with :func:`denoise` to rounding
    (~1e-13); the other machines call :func:`denoise` once per size, whose prepared dictionaries (blocks,
    constant patches, patch trees) are reused from call to call.  Raises :class:`ElscliError` as
    :func:`denoise` does, for an empty list of sizes too."""
    machine = _check_machine(machine)
    sizes = [p for p in (patch_sizes if np.ndim(patch_sizes) else [patch_sizes])]
    if not sizes:
        raise ElscliError("no patch sizes given")
    if machine != "ls":
        return np.stack([denoise(machine, x, t, bank, p, label, a=a, b=b, threads=threads,
                                 noise_schedule=noise_schedule) for p in sizes])
    from .kernels import lanes
    from .kernels.config import lanes_per_block
    from .kernels.window_sizes import window_sizes_softmax

    images, labels, bank_obj = _bank_arrays(bank)
    N, C, H, W = images.shape
    if N == 0:
        raise ElscliError("the bank holds no images")
    xb, single = _check_queries(x, (C, H, W))
    radii = np.array([_check_patch_size(machine, p, H, W) // 2 for p in sizes], dtype=np.int64)
    a, b = _scales(t, a, b, noise_schedule)
    labs = _labels_for(label, xb.shape[0])
    out = np.empty((len(sizes),) + xb.shape)
    with numba_threads(threads):
        for lab in np.unique(labs):
            sel = np.flatnonzero(labs == lab)
            index = _index_for_label(int(lab), labels, bank_obj, N)
            blocks = _BLOCKS.get(images, index, lanes_per_block(index.shape[0]))
            out[:, sel] = window_sizes_softmax(np.ascontiguousarray(xb[sel]), blocks, index.shape[0], radii,
                                               a / (b * b), a * a / (2.0 * b * b), lanes.COMPRESS_LANES)
    return out[:, 0] if single else out


def score(machine: str, x, t: Optional[float], bank, patch_size: Optional[int] = None, label=None, *,
          a: Optional[float] = None, b: Optional[float] = None, threads: Optional[int] = None,
          noise_schedule: str = DEFAULT_NOISE_SCHEDULE) -> np.ndarray:
    """The machine's score ``-(x - a x0_hat) / b^2`` (same shape as x, float64)."""
    a_, b_ = _scales(t, a, b, noise_schedule)
    x0 = denoise(machine, x, t, bank, patch_size, label, a=a_, b=b_, threads=threads,
                 noise_schedule=noise_schedule)
    return -(np.asarray(x, dtype=np.float64) - a_ * x0) / (b_ * b_)
