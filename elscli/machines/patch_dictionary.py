"""A local machine's prepared patch dictionary, and the options that route its work between the kernels.

One :class:`PatchDictionary` per (bank content, dictionary images — all, or one label's —, P, machine,
options) holds everything the kernels read for it: the images transposed into blocks
(:func:`~elscli.kernels.shift_softmax.transpose_blocks`), the machine's groups of query pixels and patch
centres, the constant patch (:mod:`elscli.kernels.constant_patch`) and, when the routing takes it, the patch
tree (:mod:`elscli.kernels.patch_tree`).  :meth:`PatchDictionary.prepare` builds them explicitly;
:meth:`PatchDictionary.run` evaluates the patch posterior of padded queries.  Blocks and trees, which do not
depend on the machine, are shared between dictionaries through the content-keyed caches of :mod:`.cache`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

import numpy as np

from ..kernels.constant_patch import MIN_CONSTANT_FRACTION
from ..kernels.lanes import HAS_COMPRESS_STORE
from .cache import ContentCache
from .interface import Provenance
from .training_set import TrainingSet


@dataclass(frozen=True)
class KernelOptions:
    """How the local machines route their work between the kernels (speed only: every route is exact).

    ``tree_min_precision``: (P, threshold) pairs — the patch tree works the dictionary of every valid patch
    (ELS; the bbELS interior) for these patch sizes when a^2 / 2b^2 (the weights' precision on squared patch
    distances) is at least the threshold.  Measured against the shift kernel on mnist-5k by
    ``benchmarks/bench_tree.py`` (bbELS, 2 cores, steady state, 64-pixel tiles): P = 3 is 10.8x faster at
    t = 0.05 and still 1.9-2.1x at t = 0.4-1 (its 1.5 M distinct patches are a third of all), so it is used at
    every noise level; P = 5 is 3.3x faster at t = 0.1, 2.0x at t = 0.2, 1.4x at t = 0.3 (a^2/2b^2 = 1.96),
    1.1x at t = 0.35 and even at t = 0.4; P = 7 is 0.92x at t = 0.25 and 0.85x at t = 0.3: box bounds in 49
    coordinates prune too little.  On the 512 RGB photo tiles (nearly every patch distinct; queries are
    noised tiles) P = 3 is 7.6x faster at t = 0.05 and 1.45x at t = 0.7, P = 5 1.25x at t = 0.3.
    ``tree_max_bytes``: ... and when the distinct patches fit in this many bytes.
    ``compress_lanes``: compress live lanes before the exps (:mod:`elscli.kernels.lanes`; pays only where the
    CPU has vector compress stores).
    ``min_constant_fraction``: below this fraction of constant patches among all valid ones the constant
    patch is not split off (:mod:`elscli.kernels.constant_patch`).

    Results of different options agree to rounding (~1e-12 relative), not bitwise; each set of options is
    bitwise reproducible."""

    tree_min_precision: Tuple[Tuple[int, float], ...] = ((3, 0.0), (5, 1.5))
    tree_max_bytes: int = 1 << 30
    compress_lanes: bool = field(default=HAS_COMPRESS_STORE)
    min_constant_fraction: float = MIN_CONSTANT_FRACTION

    def tree_threshold(self, P: int) -> Optional[float]:
        """The precision from which the tree works patch size P, or None if never."""
        for p, thr in self.tree_min_precision:
            if p == P:
                return float(thr)
        return None

    def replace(self, **changes) -> "KernelOptions":
        """A copy with some options changed."""
        return replace(self, **changes)


#: The options the machines use unless given others.
DEFAULT_OPTIONS = KernelOptions()

_BLOCKS = ContentCache(8)          # (bank key, index digest, K) -> transposed blocks
_TREES = ContentCache(4)           # (bank key, index digest, P, wrap) -> PatchTree (big: a few)
_WRAPPED = ContentCache(2)         # (bank key, pad) -> the bank's images, circularly padded
_CONSTANT_VALUES = ContentCache(8)  # bank key -> the candidate constant pixel
_DICTIONARIES = ContentCache(64)   # (bank key, index digest, P, machine, options) -> PatchDictionary

#: Where patch trees are kept between processes (an :class:`~elscli.array_cache.ArrayCache`), or None
#: (:func:`set_tree_cache`); and how many trees this process built and loaded from there.
_TREE_STORE = None
TREE_STATS = {"built": 0, "loaded": 0}


def set_tree_cache(directory) -> None:
    """Keep the patch trees the machines build in ``directory`` (created when needed), and use those found
    there, instead of building each in every process: one file per bank content, index set, patch size and
    tree layout (:mod:`elscli.array_cache`: written under a temporary name and renamed, so array tasks
    starting at once are safe; an unreadable file is rebuilt).  None: no disk cache (the default).  Speed
    only: a loaded tree is the built one, array for array.  Trees take ~125 MB (P = 3) and ~430 MB (P = 5)
    for mnist-5k."""
    global _TREE_STORE
    from ..array_cache import ArrayCache

    _TREE_STORE = None if directory is None else ArrayCache(directory)


def _patch_tree(bank: TrainingSet, index: np.ndarray, index_key: str, P: int, pad: int = 0):
    """The patch tree of ``bank.images[index]`` (circularly padded by ``pad``: :func:`wrapped_images`) at patch
    size P: from the disk cache when it holds it, else built (and stored there)."""
    from ..array_cache import content_key
    from ..kernels.patch_tree import LEAF_SIZE, PatchTree, TreeArrays

    store = _TREE_STORE
    if store is not None:
        disk_key = content_key("patch-tree", bank.key, index_key, int(P), LEAF_SIZE,
                               *(("wrap", int(pad)) if pad else ()))
        arrays = store.load(disk_key, TreeArrays._fields)
        if arrays is not None:
            TREE_STATS["loaded"] += 1
            return PatchTree.from_arrays(TreeArrays(**arrays), P)
    tree = PatchTree(wrapped_images(bank, pad), index, P)
    TREE_STATS["built"] += 1
    if store is not None:
        store.store(disk_key, tree.arrays._asdict())
    return tree


def index_digest(index: np.ndarray) -> str:
    """Hex BLAKE2b of an index set (int64 bytes)."""
    return hashlib.blake2b(np.ascontiguousarray(index, dtype=np.int64).tobytes(), digest_size=16).hexdigest()


def wrapped_images(bank: TrainingSet, pad: int) -> np.ndarray:
    """The bank's images circularly padded by ``pad`` pixels on every side: (N, C, H+2 pad, W+2 pad) float32,
    read-only, from the content-keyed cache (``pad`` = 0: the images themselves).  ``pad`` may exceed the
    image side (the padding then wraps around more than once)."""
    if pad == 0:
        return bank.images

    def build():
        out = np.pad(bank.images, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="wrap")
        out.flags.writeable = False
        return out

    return _WRAPPED.get((bank.key, int(pad)), build)


def image_blocks(bank: TrainingSet, index: np.ndarray, pad: int = 0) -> np.ndarray:
    """The images ``bank.images[index]`` (circularly padded by ``pad``: :func:`wrapped_images`) as the kernels'
    blocks (nblk, H + 2 pad, W + 2 pad, C, K) float32 (:func:`~elscli.kernels.shift_softmax.transpose_blocks`),
    from the content-keyed cache."""
    from ..kernels.config import lanes_per_block
    from ..kernels.shift_softmax import transpose_blocks

    K = lanes_per_block(index.shape[0])
    key = (bank.key, index_digest(index), K) if pad == 0 else (bank.key, index_digest(index), K, "wrap", pad)
    return _BLOCKS.get(key, lambda: transpose_blocks(wrapped_images(bank, pad), index, K))


class PatchDictionary:
    """The prepared dictionary of one local machine over the images ``bank.images[index]`` at patch size P.

    ``groups`` (G, 8) int64: the machine's rectangles of query pixels and patch centres (see
    :mod:`elscli.kernels.shift_softmax`), centres in the coordinates of the dictionary's images;
    ``tree_group``: the row of ``groups`` whose dictionary is every valid patch of those images (ELS; the
    bbELS interior), or -1.  ``wrap``: the dictionary's images are the training images circularly padded by
    P // 2 (:func:`wrapped_images`), so that every pixel of a training image is a valid patch centre (the
    wrap-around ELS); provenance is given back in the unpadded images.  ``whole_patches``: :meth:`run`
    returns every pixel of each pixel's posterior-mean patch, not only its centre (the patch posteriors of
    pspc-square).  Nothing is built until :meth:`prepare` or :meth:`run`."""

    def __init__(self, bank: TrainingSet, index: np.ndarray, P: int, groups: np.ndarray, tree_group: int,
                 options: KernelOptions = DEFAULT_OPTIONS, wrap: bool = False, whole_patches: bool = False) -> None:
        self.bank = bank
        self.index = np.ascontiguousarray(index, dtype=np.int64)
        self.index_key = index_digest(self.index)
        self.P = int(P)
        self.groups = np.ascontiguousarray(groups, dtype=np.int64)
        self.tree_group = int(tree_group)
        self.options = options
        self.pad = self.P // 2 if wrap else 0
        self.whole_patches = bool(whole_patches)
        self.blocks: Optional[np.ndarray] = None
        self.constant = None
        self.tree = None

    @classmethod
    def cached(cls, machine: str, bank: TrainingSet, index: np.ndarray, P: int, groups: np.ndarray,
               tree_group: int, options: KernelOptions = DEFAULT_OPTIONS, wrap: bool = False,
               whole_patches: bool = False) -> "PatchDictionary":
        """The dictionary for these inputs from the content-keyed cache (made, unprepared, if not held)."""
        key = (bank.key, index_digest(index), int(P), machine, options, bool(wrap), bool(whole_patches))
        return _DICTIONARIES.get(key, lambda: cls(bank, index, P, groups, tree_group, options, wrap,
                                                  whole_patches))

    @property
    def image_shape(self) -> Tuple[int, int]:
        """(rows, cols) of the dictionary's images: the training images', plus the wrap padding."""
        _, H, W = self.bank.shape
        return H + 2 * self.pad, W + 2 * self.pad

    # ------------------------------------------------------------------------------------ routing
    def uses_tree(self, a: float, b: float) -> bool:
        """Whether :meth:`run` at scales (a, b) works the tree group with the patch tree: small patches (few
        coordinates per bound) at low noise, where its bounds prune most of the dictionary, and P = 3 at any
        noise (each distinct patch is evaluated once, with its count); within the memory budget."""
        if self.tree_group < 0 or a <= 0.0:
            return False
        thr = self.options.tree_threshold(self.P)
        C = self.bank.shape[0]
        H, W = self.image_shape
        if thr is None or self.P > min(H, W) or a * a / (2.0 * b * b) < thr:
            return False
        n = self.index.shape[0] * (H - self.P + 1) * (W - self.P + 1)
        return n * (C * self.P * self.P * 4 + 48) <= self.options.tree_max_bytes

    # ------------------------------------------------------------------------------------ building
    def prepare(self, tree: bool = False) -> "PatchDictionary":
        """Build the blocks and the constant patch, and the patch tree if ``tree``.  Returns self."""
        from ..kernels.constant_patch import ConstantPatches, constant_value

        if self.blocks is None:
            self.blocks = image_blocks(self.bank, self.index, self.pad)
        if self.constant is None:
            value = _CONSTANT_VALUES.get(self.bank.key, lambda: constant_value(self.bank.images))
            self.constant = ConstantPatches(self.blocks, self.index, self.P, self.groups, value,
                                            min_fraction=self.options.min_constant_fraction,
                                            query_shape=self.bank.shape[1:])
        if tree and self.tree is None and self.tree_group >= 0:
            key = (self.bank.key, self.index_key, self.P) + (("wrap",) if self.pad else ())
            self.tree = _TREES.get(key, lambda: _patch_tree(self.bank, self.index, self.index_key, self.P,
                                                            self.pad))
        return self

    # ------------------------------------------------------------------------------------- running
    def run(self, xq: np.ndarray, a: float, b: float) -> Tuple[np.ndarray, Provenance]:
        """x0_hat (B, C, H, W) float64 and Provenance of padded queries ``xq`` (B, C, H+2r, W+2r) float64
        C-contiguous (r = P // 2) at scales (a, b); builds what :meth:`prepare` has not.

        With ``whole_patches`` the first array is (B, P, P, C, H, W): at [b, oy, ox, c, i, j] the posterior
        mean of pixel (i - r + oy, j - r + ox) of the patch centred at (i, j); pixels that no group covers
        get zeros (and meaningless provenance)."""
        from ..kernels.patch_tree import tree_softmax
        from ..kernels.shift_softmax import BlockDictionary, shift_softmax
        from ..kernels.softmax_state import empty_state, log_weight_scales

        use_tree = self.uses_tree(a, b)
        self.prepare(tree=use_tree)
        B, C = xq.shape[0], xq.shape[1]
        _, H, W = self.bank.shape
        P = self.P
        scales = log_weight_scales(a, b)
        ext = empty_state(B * H * W, C * P * P if self.whole_patches else C)
        uncovered = self.uncovered()
        if uncovered is not None:
            # a neutral state (one weight, zero values) for the pixels no group covers, so the merge is defined
            hide = np.broadcast_to(uncovered, (B, H, W)).reshape(-1)
            ext.m[hide] = 0.0
            ext.s[hide] = 1.0
        self.constant.fold_into(ext, xq, P, scales)
        groups = self.groups
        if use_tree:
            g = self.tree_group
            qi0, qi1, qj0, qj1 = groups[g, :4]
            ii, jj = np.meshgrid(np.arange(qi0, qi1), np.arange(qj0, qj1), indexing="ij")
            pixels = np.ascontiguousarray(np.stack([ii.ravel(), jj.ravel()], axis=1), dtype=np.int64)
            tree_softmax(xq, pixels, P, scales, self.tree.arrays, ext)
            groups = np.delete(groups, g, axis=0)
        dictionary = BlockDictionary(self.blocks, int(self.index.shape[0]), self.index, groups, P,
                                     self.constant.mask, bool(self.constant.active))
        x0, dn, du, dv, w, ent = shift_softmax(xq, dictionary, scales, bool(self.options.compress_lanes), ext)
        if self.pad:
            du = (du - self.pad) % H
            dv = (dv - self.pad) % W
        if self.whole_patches:
            x0 = x0.reshape(B, P, P, C, H, W)
        return x0, Provenance(dn, du.astype(np.int32), dv.astype(np.int32), w, ent)

    def uncovered(self) -> Optional[np.ndarray]:
        """(H, W) bool: the query pixels no group covers, or None when every pixel is covered."""
        _, H, W = self.bank.shape
        covered = np.zeros((H, W), dtype=bool)
        for qi0, qi1, qj0, qj1 in self.groups[:, :4]:
            covered[qi0:qi1, qj0:qj1] = True
        return None if covered.all() else ~covered
