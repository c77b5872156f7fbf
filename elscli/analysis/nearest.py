"""Memorisation and novelty: each sample's nearest training image.

For every sample: the nearest training image by L2 distance and by Pearson correlation, the RMS difference to
the L2-nearest (on the [-1, 1] scale), the ratio of the nearest to the second-nearest L2 distance (near 0: a
copy; near 1: no training image is special), and whether it is a **copy** (RMS difference < 0.05).  The IS
machine memorises (copies); ELS machines create (no copies, ratio near 1).
"""
from __future__ import annotations

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
                "median_ratio": float(np.median(self.ratio)), "mean_nn_corr": float(self.corr.mean())}

    def rows(self):
        return [{"sample": i, "nearest_l2": int(self.nearest_l2[i]), "nearest_label": int(self.nearest_label[i]),
                 "rms": float(self.rms[i]), "ratio": float(self.ratio[i]), "copy": bool(self.is_copy[i]),
                 "nearest_corr": int(self.nearest_corr[i]), "corr": float(self.corr[i])}
                for i in range(len(self.rms))]


def nearest(samples: np.ndarray, bank_images: np.ndarray, bank_labels=None, *, copy_rms: float = COPY_RMS,
            chunk: int = 4096) -> NearestResult:
    """Nearest training images of ``samples`` (S, C, H, W) among ``bank_images`` (N, C, H, W)."""
    samples = np.asarray(samples, np.float64)
    if samples.shape[1:] != tuple(bank_images.shape[1:]):
        raise ElscliError(f"the bank's images have shape {tuple(bank_images.shape[1:])} but the samples have "
                          f"{tuple(samples.shape[1:])}")
    N = len(bank_images)
    if N < 1:
        raise ElscliError("the bank is empty")
    S, D = len(samples), int(np.prod(samples.shape[1:]))
    X = samples.reshape(S, D)
    Xc = X - X.mean(1, keepdims=True)
    Xn = np.linalg.norm(Xc, axis=1)
    x2 = (X * X).sum(1)
    best = np.full((S, 2), np.inf)
    best_i = np.zeros((S, 2), np.int64)
    cbest = np.full(S, -np.inf)
    cbest_i = np.zeros(S, np.int64)
    for lo in range(0, N, chunk):
        Y = np.asarray(bank_images[lo:lo + chunk], np.float64).reshape(-1, D)
        d2 = np.maximum(x2[:, None] + (Y * Y).sum(1)[None, :] - 2 * X @ Y.T, 0.0)
        # merge this chunk's two smallest with the running two smallest
        k = min(2, d2.shape[1])
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if d2.shape[1] > k else np.tile(np.arange(k), (S, 1))
        cand = np.concatenate([best, np.take_along_axis(d2, part, 1)], 1)
        cand_i = np.concatenate([best_i, part + lo], 1)
        order = np.argsort(cand, axis=1, kind="stable")[:, :2]
        best = np.take_along_axis(cand, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
        Yc = Y - Y.mean(1, keepdims=True)
        den = Xn[:, None] * np.linalg.norm(Yc, axis=1)[None, :]
        c = np.divide(Xc @ Yc.T, den, out=np.zeros_like(den), where=den > 0)
        j = np.argmax(c, axis=1)
        cj = c[np.arange(S), j]
        upd = cj > cbest
        cbest[upd] = cj[upd]
        cbest_i[upd] = j[upd] + lo
    d = np.sqrt(best)
    ratio = np.divide(d[:, 0], d[:, 1], out=np.zeros(S), where=np.isfinite(d[:, 1]) & (d[:, 1] > 0))
    if N == 1:
        ratio[:] = np.nan
    labels = np.full(N, -1, np.int64) if bank_labels is None else np.asarray(bank_labels, np.int64)
    return NearestResult(nearest_l2=best_i[:, 0], rms=d[:, 0] / np.sqrt(D), ratio=ratio, nearest_corr=cbest_i,
                         corr=cbest, nearest_label=labels[best_i[:, 0]], copy_rms=copy_rms)
