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


# ------------------------------------------------------------------------------------------- the zoo
# Each straight from its formula (the machines' docstrings and their papers), for one query x (C, H, W).

def oracle_is(x, bank, a, b, tau=1.0):
    """IS with log weights divided by tau: (x0_hat, weights)."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    d2 = ((x[None] - a * bank) ** 2).reshape(len(bank), -1).sum(1)
    w, _ = softmax_stats(d2 / tau, b)
    return np.tensordot(w, bank, axes=1), w


def oracle_scfdm(x, bank, a, b, sigma):
    """The posterior mean of the training images blurred by N(0, sigma^2 I) (Scarvelis et al. 2023): image n
    gives x ~ N(a y_n, (a^2 sigma^2 + b^2) I) and E[x0 | x, n] = y_n + a sigma^2 (x - a y_n) / (a^2 sigma^2 + b^2)."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    v = a * a * sigma * sigma + b * b
    d2 = ((x[None] - a * bank) ** 2).reshape(len(bank), -1).sum(1)
    logw = -d2 / (2 * v)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    means = bank + (a * sigma * sigma / v) * (x[None] - a * bank)
    return np.tensordot(w, means, axes=1)


def oracle_nearest(x, bank, a):
    """The training image nearest to x in ||x - a y||, and its index (the first among equals)."""
    bank = np.asarray(bank, np.float64)
    d2 = ((np.asarray(x, np.float64)[None] - a * bank) ** 2).reshape(len(bank), -1).sum(1)
    k = int(np.argmin(d2))
    return bank[k], k


def gaussian_moments(bank):
    """Mean (D,) and maximum-likelihood covariance (D, D) of the flattened bank."""
    Y = np.asarray(bank, np.float64).reshape(len(bank), -1)
    mu = Y.mean(0)
    Yc = Y - mu
    return mu, Yc.T @ Yc / len(Y)


def oracle_wiener(x, bank, a, b):
    """mu + a Sigma (a^2 Sigma + b^2 I)^-1 (x - a mu) with the full covariance and a linear solve."""
    mu, S = gaussian_moments(bank)
    D = mu.size
    xf = np.asarray(x, np.float64).ravel()
    z = np.linalg.solve(a * a * S + b * b * np.eye(D), xf - a * mu)
    return (mu + a * S @ z).reshape(np.shape(x))


def oracle_filter_magnitude(bank, a, b):
    """F[p, q] = sqrt(sum over channel pairs of A^2), A = a^2 Sigma (a^2 Sigma + b^2 I)^-1 (by a solve)."""
    mu, S = gaussian_moments(bank)
    N, C, H, W = np.shape(bank)
    D = mu.size
    A = np.linalg.solve(a * a * S + b * b * np.eye(D), a * a * S).T       # Sigma and the inverse commute
    A4 = A.reshape(C, H * W, C, H * W)
    return np.sqrt((A4 ** 2).sum(axis=(0, 2)))


def oracle_masks(bank, a, b, threshold):
    """(HW, HW) bool: pixel p's mask holds q when F[p, q] >= threshold * max_q F[p, q]; a pixel where every
    training image has the same value in every channel keeps only itself."""
    bank = np.asarray(bank)
    N, C, H, W = bank.shape
    F = oracle_filter_magnitude(bank, a, b)
    mask = F >= threshold * F.max(1, keepdims=True)
    flat = bank.reshape(N, C, H * W)
    for p in range(H * W):
        if np.all(flat[:, :, p] == flat[0, :, p]) or F[p].max() <= 0:
            mask[p] = False
            mask[p, p] = True
    return mask


def oracle_pca_locality(x, bank, a, b, threshold, tau, mask=None):
    """Per pixel p: a softmax over whole training images of -sum_{q in mask_p} ||x_q - a y_q||^2 / 2 b^2 tau,
    and the weighted mean of the images' pixel p.  Returns (x0_hat, dominant image per pixel (H, W))."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    N, C, H, W = bank.shape
    if mask is None:
        mask = oracle_masks(bank, a, b, threshold)
    d2pix = ((x[None] - a * bank) ** 2).sum(1).reshape(N, H * W)        # (N, HW): per pixel, all channels
    out = np.zeros((C, H * W))
    dom = np.zeros(H * W, dtype=np.int64)
    for p in range(H * W):
        d2 = d2pix[:, mask[p]].sum(1)
        w, _ = softmax_stats(d2 / tau, b)
        out[:, p] = w @ bank.reshape(N, C, H * W)[:, :, p]
        dom[p] = int(np.argmax(w))
    return out.reshape(C, H, W), dom.reshape(H, W)


def oracle_pspc_square(x, bank, a, b, P):
    """Niedoba et al.'s PSPC-Square: every P x P patch wholly inside the image is denoised by the softmax over
    the same-location crops of the training images; each pixel averages the estimates of the patches
    covering it."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    N, C, H, W = bank.shape
    total = np.zeros((C, H, W))
    count = np.zeros((H, W))
    for i0 in range(H - P + 1):              # top-left corners
        for j0 in range(W - P + 1):
            crops = bank[:, :, i0:i0 + P, j0:j0 + P]
            d2 = ((x[None, :, i0:i0 + P, j0:j0 + P] - a * crops) ** 2).reshape(N, -1).sum(1)
            w, _ = softmax_stats(d2, b)
            total[:, i0:i0 + P, j0:j0 + P] += np.tensordot(w, crops, axes=1)
            count[i0:i0 + P, j0:j0 + P] += 1
    return total / count


def oracle_els_wrap(x, bank, a, b, P):
    """ELS over wrap-around training patches: the dictionary of every pixel is the P x P patch centred at every
    (row, col) of every circularly padded training image; the query window is circular.  Returns x0_hat and
    the dominant (image, row, col) per pixel (first in that order among the largest weights)."""
    x = np.asarray(x, np.float64)
    bank = np.asarray(bank, np.float64)
    N, C, H, W = bank.shape
    r = P // 2
    offs = np.arange(-r, r + 1)
    entries, phis = [], []
    for n in range(N):
        for u in range(H):
            for v in range(W):
                rows = (u + offs) % H
                cols = (v + offs) % W
                entries.append((n, u, v))
                phis.append(bank[n][:, rows][:, :, cols])
    phi = np.stack(phis)                                       # (E, C, P, P)
    out = np.zeros((C, H, W))
    dom = np.zeros((3, H, W), dtype=np.int64)
    for i in range(H):
        for j in range(W):
            q = x[:, (i + offs) % H][:, :, (j + offs) % W]
            d2 = ((q[None] - a * phi) ** 2).reshape(len(phi), -1).sum(1)
            w, _ = softmax_stats(d2, b)
            out[:, i, j] = w @ phi[:, :, r, r]
            dom[:, i, j] = entries[int(np.argmax(w))]
    return out, dom
