"""Numba kernels: the only compiled layer of elscli.

- :mod:`.softmax_state` — the online softmax of a pixel's patch posterior: its state, the rescale, the
  folds, the tie rule (the dominant patch is the first in (image, row, col) order within the tolerance) and
  the merge, used by every kernel below; the log-weight scales s1 = a/b^2, s2 = a^2/2b^2;
- :mod:`.shift_softmax` — fused patch distance (sliding sums per shift) + online softmax for LS, ELS and
  bbELS, over a :class:`~.shift_softmax.BlockDictionary`;
- :mod:`.constant_patch` — the bank's flat background patch, counted once per pixel;
- :mod:`.patch_tree` — the distinct patches in a k-d tree (dedup, build, query), for low noise;
- :mod:`.ideal` — the whole-image softmax of the IS machine (and of scfdm and nearest);
- :mod:`.masked_softmax` — the whole-image softmax with per-pixel masked distances (pca-locality);
- :mod:`.gaussian` — the Wiener filter applied in the covariance's eigenbasis, and its pixel-level
  magnitude (wiener, pca-locality);
- :mod:`.expm` — the vectorisable exp they share; :mod:`.lanes` — live-lane compression;
  :mod:`.config` — fastmath flags, block size, the exactness and tie thresholds.

Kernels take the signal and noise scales (a, b) through s1 = a/b^2 and s2 = a^2/(2 b^2)
(:class:`~.softmax_state.LogWeightScales`), never the time.
"""
