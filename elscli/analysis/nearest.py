"""Memorisation and novelty: each sample's nearest training image.

For every sample: the nearest training image by L2 distance and by Pearson correlation, the RMS difference to
the L2-nearest (on the [-1, 1] scale), the ratio of the nearest to the second-nearest L2 distance (near 0: a
copy; near 1: no training image is special; the second-nearest is the nearest of the training images whose
pixels differ from the nearest's, so duplicates in the bank do not hide a copy), and whether it is a **copy** (RMS difference < 0.05).  The IS
machine memorises (copies); ELS machines create (no copies, ratio near 1).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import ElscliError

COPY_RMS = 0.05


@dataclass
class NearestResult:
    """Each sample's nearest training images.

    ``nearest_l2`` (S,) int64 bank index of the L2-nearest training image; ``rms`` (S,) the RMS difference
    to it on the [-1, 1] scale; ``ratio`` (S,) nearest / second-nearest L2 distance (NaN with one training
    image); ``nearest_corr`` (S,) bank index of the most correlated training image and ``corr`` its Pearson
    correlation; ``nearest_label`` (S,) label of the L2-nearest; ``copy_rms`` the copy threshold.
    """

    nearest_l2: np.ndarray
    rms: np.ndarray
    ratio: np.ndarray
    nearest_corr: np.ndarray
    corr: np.ndarray
    nearest_label: np.ndarray
    copy_rms: float = COPY_RMS

    @property
    def is_copy(self) -> np.ndarray:
        """(S,) bool: the sample is a copy of a training image (RMS difference below ``copy_rms``)."""
        return self.rms < self.copy_rms

    def summary(self) -> Dict[str, float]:
        """JSON-ready: sample count, copy fraction and threshold, mean/median RMS, median ratio, mean corr."""
        return {"num_samples": int(len(self.rms)), "copy_fraction": float(self.is_copy.mean()),
                "copy_rms_threshold": self.copy_rms,
                "mean_nn_rms": float(self.rms.mean()), "median_nn_rms": float(np.median(self.rms)),
                "median_ratio": float(np.nanmedian(self.ratio)) if np.isfinite(self.ratio).any() else float("nan"),
                "mean_nn_corr": float(self.corr.mean())}

    def rows(self) -> List[dict]:
        """One dict per sample (position ``sample``) with every per-sample measure."""
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
    Both on [-1, 1], computed in float64 over chunks of ``chunk`` training images (exact, not approximate).
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


def nearest_files(paths: Sequence[os.PathLike | str], bank, *, clamp: bool = False
                  ) -> Tuple[Dict[str, dict], List[dict]]:
    """:func:`nearest` for the finals of run or reference files (``elscli compare --nearest``).

    ``bank``: a Bank or a bank path.  ``clamp`` clamps the finals to [-1, 1] first.  Returns ``(summaries,
    rows)``: per input name, its path, machine, ``same_bank`` (whether the run records this bank's content
    hash; None for a reference, which records none) and :meth:`NearestResult.summary`; and one row per
    (input, sample).  Runs sampled from another bank (their recorded content hash differs) give one
    :class:`~elscli.errors.ElscliWarning`: their distances are then to another training set.  Raises
    ElscliError as :func:`elscli.analysis.compare.load_outputs` and :func:`nearest` do.
    """
    import warnings

    from ..errors import ElscliWarning
    from ..sample_data import open_bank
    from .compare import load_outputs

    b = open_bank(bank)
    results: Dict[str, dict] = {}
    rows: List[dict] = []
    others: List[str] = []
    for fp in paths:
        out = load_outputs(fp)
        recorded = (out.attrs or {}).get("bank_content_hash") if out.kind == "run" else None
        same = None if not recorded else bool(recorded == b.content_hash)
        if same is False and str(fp) not in others:
            others.append(str(fp))
        fin = np.clip(out.final, -1, 1) if clamp else out.final
        nn = nearest(fin, b.images, b.labels)
        results[out.name] = {"path": str(fp), "machine": out.machine, "same_bank": same, **nn.summary()}
        rows += [{"input": out.name, **r} for r in nn.rows()]
    if others:
        where = str(bank) if not hasattr(bank, "content_hash") else "the bank given"
        warnings.warn(f"{', '.join(others)} {'was' if len(others) == 1 else 'were'} sampled from another bank "
                      f"than {where} (content hashes differ): the nearest-training-image distances are to "
                      f"another training set", ElscliWarning, stacklevel=2)
    return results, rows
