"""A k-d tree over the distinct patches of a dictionary, for the ELS and bbELS machines at low noise.

At low noise almost every patch of an ELS dictionary has a weight far below e^-40 of the best one, yet the
shift kernel (:mod:`..shift_softmax`) still computes the distance of every (pixel, patch) pair.  Here the
dictionary of *all valid patches* (ELS; the interior pixels of bbELS) is stored once per distinct patch, with
its count and first occurrence, in a k-d tree whose nodes carry the bounding box of their patches, and each
pixel's softmax visits only the subtrees whose bound comes within e^-40 of its running maximum:

- :mod:`.dedup` — the distinct patches (hash, exact grouping, counts, first occurrences);
- :mod:`.build` — the rotation onto principal axes and the k-d tree (:class:`PatchTree`);
- :mod:`.query` — bounds, leaves and the traversal (:func:`tree_softmax`).

When the machines use it is a routing option (``KernelOptions.tree_min_precision`` and ``tree_max_bytes`` in
:mod:`elscli.machines.patch_dictionary`).
"""
from .build import LEAF_SIZE, PatchTree, TreeArrays
from .query import TILE, tree_softmax

__all__ = ["LEAF_SIZE", "PatchTree", "TILE", "TreeArrays", "tree_softmax"]
