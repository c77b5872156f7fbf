"""The ``pspc-square`` machine: the patch set posterior composite with square patches (Niedoba, Zwartsenberg,
Murphy & Wood, "Towards a mechanistic explanation of diffusion model generalization", ICML 2025, arXiv
2411.19339; the PSPC-Square denoiser of plai-group/pspc).

Every P x P patch of the query that lies wholly inside the image (centre (i, j) with P//2 <= i < H - P//2,
likewise j) is denoised by the empirical posterior over the patch set — the same-location P x P crop of
every training image —

    w_n(i, j) ∝ exp(-||x_Ω(i,j) - a y_n,Ω(i,j)||^2 / 2b^2),   phi_hat(i, j) = sum_n w_n(i, j) y_n,Ω(i,j),

and each output pixel is the mean, over the patches covering it, of their estimates of that pixel:

    x0_hat(p) = (1 / |Q_p|) sum_{(i, j) in Q_p} phi_hat(i, j)[p - (i, j)],   Q_p = the valid centres within P//2 of p.

So each output pixel averages the posterior means of the offset pixels of up to P^2 patch posteriors, where
ELS-like machines take only each patch's centre.  The patch posteriors are those of LS restricted to the
valid centres, computed by the fused patch kernel accumulating whole patches instead of centres
(:class:`.patch_dictionary.PatchDictionary` with ``whole_patches``).  P = H = W (odd) is one patch — the
whole image — and so the IS machine.  P is odd here (the kernel's windows have a centre), at most the image
side.  No single training patch dominates an output pixel: no provenance.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..errors import ElscliError
from .interface import Parameter, Provenance, positive_odd_patch_size, register
from .local import LocalMachine


def _square_patch_size(value: Any, shape) -> int:
    P = positive_odd_patch_size(value, shape)
    _, H, W = shape
    if P > min(H, W):
        raise ElscliError(f"pspc-square patch size {P} does not fit in {H}x{W} images (patches lie wholly "
                          f"inside the image); use P <= {min(H, W) - (1 - min(H, W) % 2)}")
    return P


def composite(patches: np.ndarray) -> np.ndarray:
    """Average the patch estimates ``patches`` (B, P, P, C, H, W) — at [b, oy, ox, c, i, j] the estimate of
    pixel (i - r + oy, j - r + ox) by the patch centred at (i, j), valid centres only — per output pixel:
    (B, C, H, W) float64.  Offsets are added in a fixed order."""
    B, P, _, C, H, W = patches.shape
    r = P // 2
    hi, wi = H - 2 * r, W - 2 * r
    out = np.zeros((B, C, H, W))
    count = np.zeros((H, W))
    for oy in range(P):
        for ox in range(P):
            out[:, :, oy:oy + hi, ox:ox + wi] += patches[:, oy, ox, :, r:r + hi, r:r + wi]
            count[oy:oy + hi, ox:ox + wi] += 1.0
    return out / count


@register
class PatchPosteriorSquare(LocalMachine):
    """pspc-square: the posterior means of the square patches, averaged per pixel (module docstring)."""

    name = "pspc-square"
    summary = "patch posterior composite: each PxP patch's posterior mean, averaged over overlapping patches"
    parameters = (Parameter("patch_size", "side P of the square patches (odd, at most the image side; a "
                                          "schedule of t allowed)", _square_patch_size, time_dependent=True),)
    has_provenance = False
    padding = "constant"
    whole_patches = True

    @staticmethod
    def groups(P: int, H: int, W: int) -> np.ndarray:
        r = P // 2
        return np.array([[r, H - r, r, W - r, -1, -1, -1, -1]], dtype=np.int64)

    def _denoise(self, x, index, t, a, b, values, provenance) -> Tuple[np.ndarray, Optional[Provenance]]:
        P = values["patch_size"]
        r = P // 2
        xq = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (r, r), (r, r))))
        patches, _ = self.dictionary(index, P).run(xq, a, b)
        return composite(patches), None
