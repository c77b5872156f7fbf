"""A k-d tree over the distinct patches of a dictionary, for the ELS and bbELS machines at low noise.

At low noise almost every patch of an ELS dictionary has a weight far below e^-40 of the best one, yet the
shift kernel (:mod:`..shift_softmax`) still computes the distance of every (pixel, patch) pair.  Here the
dictionary of *all valid patches* (ELS; the interior pixels of bbELS) is stored once per distinct patch, with
its count and first occurrence, in a k-d tree whose nodes carry the bounding box of their patches, and each
pixel's softmax visits only the subtrees whose bound comes within e^-40 of its running maximum:

- :mod:`.dedup` — the distinct patches (hash, exact grouping, counts, first occurrences);
- :mod:`.build` — the rotation onto principal axes and the k-d tree (:class:`PatchTree`);
- :mod:`.query` — bounds, leaves and the traversal (:func:`tree_softmax`).
"""
from .build import LEAF_SIZE, PatchTree, TreeArrays
from .query import TILE, tree_softmax

#: The machines use the tree for these patch sizes when the noise is low enough: a^2 / 2b^2 (the weights'
#: precision on squared patch distances) at least the value given.  Measured against the shift kernel on
#: mnist-5k by ``benchmarks/bench_tree.py`` (bbELS, 2 cores, steady state, 64-pixel tiles): P = 3 is 10.8x
#: faster at t = 0.05 and still 1.9-2.1x at t = 0.4-1 (its 1.5 M distinct patches are a third of all), so
#: it is used at every noise level; P = 5 is 3.3x faster at t = 0.1, 2.0x at t = 0.2, 1.4x at t = 0.3
#: (a^2/2b^2 = 1.96), 1.1x at t = 0.35 and even at t = 0.4; P = 7 is 0.92x at t = 0.25 and 0.85x at
#: t = 0.3: box bounds in 49 coordinates prune too little.  On the 512 RGB photo tiles (nearly every patch
#: distinct; queries are noised tiles) P = 3 is 7.6x faster at t = 0.05 and 1.45x at t = 0.7, P = 5 1.25x
#: at t = 0.3.
MIN_PRECISION = {3: 0.0, 5: 1.5}
#: ... and when the distinct patches fit in this many bytes.
MAX_BYTES = 1 << 30

__all__ = ["LEAF_SIZE", "MAX_BYTES", "MIN_PRECISION", "PatchTree", "TILE", "TreeArrays", "tree_softmax"]
