"""Numba kernels: the only compiled layer of elscli.

- :mod:`.shift_softmax` — fused patch distance (sliding sums per shift) + online softmax for LS, ELS and bbELS;
- :mod:`.ideal` — the whole-image softmax of the IS machine;
- :mod:`.expm` — the vectorisable exp they share; :mod:`.config` — fastmath flags and block size.

Kernels take the signal and noise scales (a, b) through s1 = a/b^2 and s2 = a^2/(2 b^2), never the time.
"""
