"""Slow, obviously-correct NumPy versions of the four machines (float64), written from science.md.

For every pixel: list its dictionary explicitly as (image, row, col) entries of the zero-padded training
images, cut the query window (circular padding for ELS, zeros otherwise), compute squared distances
||x_p - a phi||^2, take a softmax, average the patch centres.  No shortcuts shared with the kernels.
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def cosine_legacy(t):
    beta = 1 - math.cos(t / 1.008 * math.pi / 2) ** 2
    return math.sqrt(1 - beta), math.sqrt(beta)


def softmax_stats(d2, b):
    """Weights and entropy (nats) of w ∝ exp(-d2 / 2b^2)."""
    logw = -np.asarray(d2, np.float64) / (2 * b * b)
    logw = logw - logw.max()
    w = np.exp(logw)
    w /= w.sum()
    nz = w > 0
    return w, float(-np.sum(w[nz] * np.log(w[nz])))


def dictionary(machine, i, j, H, W, P):
    """Centre rows and cols of pixel (i, j)'s dictionary (science.md's table)."""
    r = P // 2
    if machine == "ls":
        return [i], [j]
    if machine == "els":
        return list(range(r, H - r)), list(range(r, W - r))
    if machine == "bbels":
        rows = [i] if (i < r or i > H - 1 - r) else list(range(r, H - r))
        cols = [j] if (j < r or j > W - 1 - r) else list(range(r, W - r))
        return rows, cols
    raise ValueError(machine)


def all_patches(bank, P):
    """(N, H, W, C, P, P): the window centred at every (row, col) of every zero-padded training image."""
    r = P // 2
    bpad = np.pad(np.asarray(bank, np.float64), ((0, 0), (0, 0), (r, r), (r, r)))
    return sliding_window_view(bpad, (P, P), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)


def oracle_denoise(machine, x, bank, a, b, P=None):
    """x0_hat (C, H, W) and provenance dict of arrays (H, W) for one query x (C, H, W)."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    N, C, H, W = bank.shape
    prov = {k: np.zeros((H, W)) for k in ("image", "row", "col", "weight", "entropy")}
    if machine == "is":
        d2 = ((x[None] - a * bank) ** 2).reshape(N, -1).sum(1)
        w, ent = softmax_stats(d2, b)
        k = int(np.argmax(w))
        prov["image"][:] = k
        prov["row"][:] = np.arange(H)[:, None]
        prov["col"][:] = np.arange(W)[None, :]
        prov["weight"][:] = w[k]
        prov["entropy"][:] = ent
        return np.tensordot(w, bank, axes=1), prov
    r = P // 2
    patches = all_patches(bank, P)
    xpad = np.pad(x, ((0, 0), (r, r), (r, r)), mode="wrap" if machine == "els" else "constant")
    out = np.zeros((C, H, W))
    for i in range(H):
        for j in range(W):
            rows, cols = dictionary(machine, i, j, H, W, P)
            entries = [(n, u, v) for n in range(N) for u in rows for v in cols]   # (image, row, col) order
            phi = np.stack([patches[n, u, v] for (n, u, v) in entries])           # (E, C, P, P)
            q = xpad[:, i:i + P, j:j + P]
            d2 = ((q[None] - a * phi) ** 2).reshape(len(entries), -1).sum(1)
            w, ent = softmax_stats(d2, b)
            out[:, i, j] = w @ phi[:, :, r, r]
            k = int(np.argmax(w))                                                 # first maximum
            prov["image"][i, j], prov["row"][i, j], prov["col"][i, j] = entries[k]
            prov["weight"][i, j] = w[k]
            prov["entropy"][i, j] = ent
    return out, prov


def dictionary_mean(machine, bank, P):
    """The a -> 0 limit: per pixel, the plain mean of its dictionary's centre pixels."""
    bank = np.asarray(bank, np.float64)
    N, C, H, W = bank.shape
    if machine == "is":
        return bank.mean(0)
    out = np.zeros((C, H, W))
    for i in range(H):
        for j in range(W):
            rows, cols = dictionary(machine, i, j, H, W, P)
            out[:, i, j] = bank[:, :, rows][:, :, :, cols].mean(axis=(0, 2, 3))
    return out


def nearest_centre(machine, x, bank, P):
    """The b -> 0 limit (a = 1): per pixel, the centre of the nearest dictionary patch."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    N, C, H, W = bank.shape
    if machine == "is":
        return bank[int(np.argmin(((x[None] - bank) ** 2).reshape(N, -1).sum(1)))]
    r = P // 2
    patches = all_patches(bank, P)
    xpad = np.pad(x, ((0, 0), (r, r), (r, r)), mode="wrap" if machine == "els" else "constant")
    out = np.zeros((C, H, W))
    for i in range(H):
        for j in range(W):
            rows, cols = dictionary(machine, i, j, H, W, P)
            phi = patches[:, rows][:, :, cols].reshape(-1, C, P, P)
            d2 = ((xpad[None, :, i:i + P, j:j + P] - phi) ** 2).reshape(len(phi), -1).sum(1)
            out[:, i, j] = phi[int(np.argmin(d2)), :, r, r]
    return out


def rel_err(got, want):
    """max |diff| over an image / max |value| of that image: elscli's definition of exact."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))
