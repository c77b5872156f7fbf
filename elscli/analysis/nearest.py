"""Memorisation and novelty: each sample's nearest training image.

For every sample: the nearest training image by L2 distance and by Pearson correlation, the RMS difference to
the L2-nearest (on the [-1, 1] scale), the ratio of the nearest to the second-nearest L2 distance (near 0: a
copy; near 1: no training image is special; the second-nearest is the nearest of the training images whose
pixels differ from the nearest's, so duplicates in the bank do not hide a copy), and whether it is a **copy** (RMS difference < 0.05).  The IS
machine memorises (copies); ELS machines create (no copies, ratio near 1).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict

import numpy as np

from ..errors import ElscliError

COPY_RMS = 0.05


@dataclass
class NearestResult:
    nearest_l2: np.ndarray       # (S,) bank index of the L2-nearest training image
    rms: np.ndarray              # (S,) RMS difference to it, [-1, 1] scale
    ratio: np.ndarray            # (S,) nearest / second-nearest L2 distance
    nearest_corr: np.ndarray     # (S,) bank index of the most correlated training image
    corr: np.ndarray             # (S,) its Pearson correlation
    nearest_label: np.ndarray    # (S,) label of the L2-nearest
    copy_rms: float = COPY_RMS

    @property
    def is_copy(self) -> np.ndarray:
        return self.rms < self.copy_rms

    def summary(self) -> Dict[str, float]:
        return {"num_samples": int(len(self.rms)), "copy_fraction": float(self.is_copy.mean()),
                "copy_rms_threshold": self.copy_rms,
                "mean_nn_rms": float(self.rms.mean()), "median_nn_rms": float(np.median(self.rms)),
                "median_ratio": float(np.nanmedian(self.ratio)) if np.isfinite(self.ratio).any() else float("nan"), "mean_nn_corr": float(self.corr.mean())}

    def rows(self):
        return [{"sample": i, "nearest_l2": int(self.nearest_l2[i]), "nearest_label": int(self.nearest_label[i]),
                 "rms": float(self.rms[i]), "ratio": float(self.ratio[i]), "copy": bool(self.is_copy[i]),
                 "nearest_corr": int(self.nearest_corr[i]), "corr": float(self.corr[i])}
                for i in range(len(self.rms))]


def nearest(samples: np.ndarray, bank_images: np.ndarray, bank_labels=None, *, copy_rms: float = COPY_RMS,
            chunk: int = 4096) -> NearestResult:
    """Nearest training images of ``samples`` (S, C, H, W) among ``bank_images`` (N, C, H, W).

    The L2-nearest is the first nearest in bank order; the second-nearest distance of ``ratio`` is taken
    among the images whose pixels differ from the nearest's, so a training image stored twice does not make
    the ratio 1 ("no image is special").  ``ratio`` is NaN when every training image has those same pixels.
    Raises ElscliError on a shape mismatch or an empty bank."""
    samples = np.asarray(samples, np.float64)
    if samples.shape[1:] != tuple(bank_images.shape[1:]):
        raise ElscliError(f"the bank's images have shape {tuple(bank_images.shape[1:])} but the samples have "
                          f"{tuple(samples.shape[1:])}")
    N = len(bank_images)
    if N < 1:
        raise ElscliError("the bank is empty")
    S, D = len(samples), int(np.prod(samples.shape[1:]))
    rows = np.arange(S)
    X = samples.reshape(S, D)
    Xc = X - X.mean(1, keepdims=True)
    Xn = np.linalg.norm(Xc, axis=1)
    x2 = (X * X).sum(1)
    # running nearest and second-nearest with different pixels: squared distance, bank index, pixel group
    best = np.full((S, 2), np.inf)
    best_i = np.zeros((S, 2), np.int64)
    best_g = np.full((S, 2), -1, np.int64)
    groups: Dict[bytes, int] = {}          # identical images share a group (keyed by a digest of their bytes)
    cbest = np.full(S, -np.inf)
    cbest_i = np.zeros(S, np.int64)
    for lo in range(0, N, chunk):
        Y = np.asarray(bank_images[lo:lo + chunk], np.float64).reshape(-1, D)
        g = np.array([groups.setdefault(hashlib.blake2b(y.tobytes(), digest_size=16).digest(), len(groups))
                      for y in Y], np.int64)
        d2 = np.maximum(x2[:, None] + (Y * Y).sum(1)[None, :] - 2 * X @ Y.T, 0.0)
        # this chunk's nearest, and its nearest among images that differ from that one
        j1 = np.argmin(d2, axis=1)
        g1 = g[j1]
        other = np.where(g[None, :] != g1[:, None], d2, np.inf)
        j2 = np.argmin(other, axis=1)
        cand = np.concatenate([best, d2[rows, j1][:, None], other[rows, j2][:, None]], 1)
        cand_i = np.concatenate([best_i, (j1 + lo)[:, None], (j2 + lo)[:, None]], 1)
        cand_g = np.concatenate([best_g, g1[:, None], np.where(np.isfinite(other[rows, j2]), g[j2], -1)[:, None]], 1)
        # merge: the smallest (ties: the earlier index, listed first), then the smallest of another group
        k1 = np.argmin(cand, axis=1)
        d_other = np.where(cand_g != cand_g[rows, k1][:, None], cand, np.inf)
        k2 = np.argmin(d_other, axis=1)
        best = np.stack([cand[rows, k1], d_other[rows, k2]], 1)
        best_i = np.stack([cand_i[rows, k1], cand_i[rows, k2]], 1)
        best_g = np.stack([cand_g[rows, k1], np.where(np.isfinite(best[:, 1]), cand_g[rows, k2], -1)], 1)
        Yc = Y - Y.mean(1, keepdims=True)
        den = Xn[:, None] * np.linalg.norm(Yc, axis=1)[None, :]
        c = np.divide(Xc @ Yc.T, den, out=np.zeros_like(den), where=den > 0)
        j = np.argmax(c, axis=1)
        cj = c[rows, j]
        upd = cj > cbest
        cbest[upd] = cj[upd]
        cbest_i[upd] = j[upd] + lo
    d = np.sqrt(best)
    ratio = np.full(S, np.nan)
    has_second = np.isfinite(d[:, 1])
    np.divide(d[:, 0], d[:, 1], out=ratio, where=has_second & (d[:, 1] > 0))
    labels = np.full(N, -1, np.int64) if bank_labels is None else np.asarray(bank_labels, np.int64)
    return NearestResult(nearest_l2=best_i[:, 0], rms=d[:, 0] / np.sqrt(D), ratio=ratio, nearest_corr=cbest_i,
                         corr=cbest, nearest_label=labels[best_i[:, 0]], copy_rms=copy_rms)
