"""Patch mosaics: where each pixel of a sample came from, and how locally consistent it is.

From a run's provenance (``prov_image``: the training image of each pixel's dominant patch at the last step,
``prov_entropy``: the entropy of the patch weights) we report per sample the number of distinct source images
and the mean posterior entropy, and render a **mosaic map**: the sample beside a map colouring every pixel by
its source image, with boundaries drawn between pixels from different sources.

**Local consistency** (the paper's Theorem 4.1): at zero noise every final pixel of an ELS sample is the centre
of the *nearest* patch of its own dictionary.  We measure the fraction of final pixels that equal, within a
tolerance (all channels), the centre of the nearest dictionary patch at the last step's patch size; the nearest
patch is obtained as the machine's ``x0_hat`` of the final image at a tiny time (t = 1e-4, where the softmax is
a hard arg-min up to exact ties).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..bank import bank_images
from ..errors import ElscliError
from ..outputs import declare_output_dir
from ..runs.export import machine_description

CONSISTENCY_T = 1e-4
CONSISTENCY_TOL = 0.02


@dataclass
class RunProvenance:
    """The finished samples of a run with their last-step provenance.

    ``final`` (S, C, H, W) float32; ``labels``, ``sample_ids`` (S,) int64; ``patch_sizes`` (T,) int64;
    ``image`` (S, H, W) int64 bank index of each pixel's dominant patch, ``entropy`` (S, H, W) float32 nats
    and ``weight`` (S, H, W) float32 its softmax weight (each None when the run has no provenance);
    ``bank_hash`` the content hash of the run's bank; ``machine_params`` the machine's other parameters (a
    parameter that followed a schedule: its last step's value).
    """

    path: str
    machine: str
    final: np.ndarray
    labels: np.ndarray
    sample_ids: np.ndarray
    patch_sizes: np.ndarray
    image: Optional[np.ndarray]
    entropy: Optional[np.ndarray]
    weight: Optional[np.ndarray]
    bank_hash: str = ""
    machine_params: Optional[dict] = None


def load_run_provenance(path: os.PathLike | str) -> RunProvenance:
    """The finished samples of a run file with their provenance (read by :func:`elscli.runs.read_finished`).

    Raises ElscliError for a reference trajectory (NPZ), a file that is not a complete run, or a run with no
    finished sample.
    """
    from ..runs import read_finished

    if Path(path).suffix.lower() == ".npz":
        raise ElscliError(f"{str(path)!r} is a reference trajectory (NPZ), not an elscli.run file with provenance")
    run = read_finished(path)
    prov = run.provenance or {}
    machine_params = {k: (v["values"][-1] if isinstance(v, dict) and "values" in v else v)
                      for k, v in (run.params.get("machine_params") or {}).items()}
    return RunProvenance(path=str(path), machine=run.machine, final=run.final, labels=run.labels,
                         sample_ids=run.sample_ids, patch_sizes=run.patch_sizes, image=prov.get("image"),
                         entropy=prov.get("entropy"), weight=prov.get("weight"),
                         bank_hash=str(run.attrs.get("bank_content_hash", "")), machine_params=machine_params)


def distinct_sources(image: np.ndarray) -> np.ndarray:
    """(S, H, W) source indices -> (S,) int64 number of distinct source images per sample."""
    return np.array([len(np.unique(im)) for im in image], dtype=np.int64)


def local_consistency(final: np.ndarray, machine: str, bank, patch_size: Optional[int], labels=None, *,
                      tol: float = CONSISTENCY_TOL, t: float = CONSISTENCY_T,
                      threads: Optional[int] = None, machine_params: Optional[dict] = None) -> np.ndarray:
    """Per-sample fraction of pixels equal (max over channels, within ``tol``) to the centre of the nearest
    patch of their own dictionary at ``patch_size`` (the paper's Theorem 4.1).

    ``final`` (S, C, H, W) on [-1, 1]; the nearest patch is the machine's ``x0_hat`` at time ``t`` (1e-4:
    the softmax is a hard arg-min up to exact ties), by :func:`elscli.machines.denoise` with ``threads``
    Numba threads and the machine's other parameters ``machine_params`` (a run's own).  Returns (S,) float64 in [0, 1].  Raises ElscliError when the bank's
    image shape differs (and as the machine does).
    """
    from ..machines import denoise

    final = np.asarray(final, np.float64)
    if tuple(final.shape[1:]) != tuple(bank_images(bank).shape[1:]):
        raise ElscliError(f"the bank's images have shape {tuple(bank_images(bank).shape[1:])} but the run's have "
                          f"{tuple(final.shape[1:])}")
    labels = np.full(len(final), -1) if labels is None else np.asarray(labels)
    out = np.zeros(len(final))
    for lab in np.unique(labels):
        rows = np.flatnonzero(labels == lab)
        x0 = np.asarray(denoise(machine, final[rows], t, bank, None if patch_size is None else int(patch_size),
                                label=None if lab < 0 else int(lab), threads=threads, **(machine_params or {})),
                        np.float64)
        ok = (np.abs(x0 - final[rows]) <= tol).all(axis=1)  # (B, H, W)
        out[rows] = ok.reshape(len(rows), -1).mean(1)
    return out


def source_colours(image: np.ndarray) -> np.ndarray:
    """(H, W) source indices -> (H, W, 3) float64 RGB in [0, 1]; one fixed colour per training image
    (golden-ratio hues), so a source has the same colour in every sample's map."""
    import colorsys

    idx = np.asarray(image, np.int64)
    uniq, inv = np.unique(idx, return_inverse=True)
    pal = np.array([colorsys.hsv_to_rgb((u * 0.6180339887) % 1.0, 0.45 + 0.4 * ((u * 0.37) % 1.0),
                                        0.75 + 0.25 * ((u * 0.7548776662) % 1.0)) for u in uniq])
    return pal[inv.reshape(idx.shape)]


def boundary_segments(image: np.ndarray) -> List[tuple]:
    """Line segments ``((x0, x1), (y0, y1))`` in pixel-edge coordinates (matplotlib's ``imshow`` pixel
    centres at integers) between 4-neighbours of an (H, W) map with different sources."""
    segs = []
    H, W = image.shape
    ys, xs = np.nonzero(image[:, 1:] != image[:, :-1])
    segs += [((x + 0.5, x + 0.5), (y - 0.5, y + 0.5)) for y, x in zip(ys, xs)]
    ys, xs = np.nonzero(image[1:, :] != image[:-1, :])
    segs += [((x - 0.5, x + 0.5), (y + 0.5, y + 0.5)) for y, x in zip(ys, xs)]
    return segs


AMBIGUOUS_WEIGHT = 0.5


def mosaic_figure(final: np.ndarray, image: np.ndarray, path, *, title: str = "", entropy=None,
                  weight=None) -> None:
    """Write one sample's mosaic PNG: the sample | its source map with boundaries | (optionally) the
    posterior entropy per pixel.  With ``weight``, pixels whose dominant patch has weight below 0.5 (no single
    source: e.g. blank background, where many identical patches share the weight) are drawn light grey."""
    from .plots import plt, save_figure, show_image

    panels = 3 if entropy is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.6))
    show_image(axes[0], final)
    axes[0].set_title("sample")
    colours = source_colours(image)
    shown = np.asarray(image)
    label = f"source image ({len(np.unique(image))} distinct)"
    if weight is not None:
        amb = np.asarray(weight) < AMBIGUOUS_WEIGHT
        colours[amb] = 0.88
        shown = np.where(amb, -1, shown)
        label = f"source image ({len(np.unique(shown[~amb]))} dominant; grey: none)"
    axes[1].imshow(colours, interpolation="nearest")
    from matplotlib.collections import LineCollection

    segs = boundary_segments(shown)
    if segs:
        axes[1].add_collection(LineCollection([list(zip(*s)) for s in segs], colors="black", linewidths=0.8))
    axes[1].set_title(label, fontsize=9)
    if entropy is not None:
        im = axes[2].imshow(entropy, cmap="magma", interpolation="nearest", vmin=0)
        axes[2].set_title("posterior entropy (nats)")
        fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


@dataclass
class MosaicReport:
    """Per sample (S,): ``sample_ids``, ``distinct_sources`` (distinct training images of the dominant
    patches), ``dominant_sources`` (the same among pixels whose dominant patch has weight >= 0.5),
    ``mean_entropy`` (nats), ``consistency`` (local consistency, or None without a bank); the last step's
    ``patch_size``, the ``tolerance``, the ``pngs`` written, and the run's ``machine``."""

    sample_ids: np.ndarray
    distinct_sources: np.ndarray
    dominant_sources: np.ndarray
    mean_entropy: np.ndarray
    consistency: Optional[np.ndarray]
    patch_size: Optional[int]
    tolerance: float
    pngs: List[str]
    machine: str = ""

    def rows(self) -> List[dict]:
        """One JSON-ready dict per sample."""
        return [{"sample": int(self.sample_ids[i]), "distinct_sources": int(self.distinct_sources[i]),
                 "dominant_sources": int(self.dominant_sources[i]),
                 "mean_entropy": float(self.mean_entropy[i]),
                 "local_consistency": None if self.consistency is None else float(self.consistency[i])}
                for i in range(len(self.sample_ids))]

    def summary(self) -> dict:
        """JSON-ready: sample count, medians of the source counts, mean entropy, patch size, tolerance,
        PNGs and (with a bank) the mean local consistency."""
        d = {"num_samples": int(len(self.sample_ids)),
             "median_distinct_sources": float(np.median(self.distinct_sources)),
             "median_dominant_sources": float(np.median(self.dominant_sources)),
             "mean_entropy": float(np.mean(self.mean_entropy)), "patch_size": self.patch_size,
             "tolerance": self.tolerance, "pngs": list(self.pngs)}
        if self.consistency is not None:
            d["mean_local_consistency"] = float(np.mean(self.consistency))
        return d


def mosaic_report(run: RunProvenance, *, bank=None, out_dir=None, samples: Optional[Sequence[int]] = None,
                  tol: float = CONSISTENCY_TOL, max_pngs: int = 16, threads: Optional[int] = None) -> MosaicReport:
    """Distinct sources, mean entropy, local consistency (when a bank is given) and mosaic PNGs (when
    ``out_dir`` is given, at most ``max_pngs``) for the run's samples (``samples``: positions in the run's
    finished rows; default all).

    Raises ElscliError when the run has no provenance, a position is out of range, ``max_pngs`` is negative,
    the bank's content hash differs from the run's, or ``out_dir`` does not exist.
    """
    if isinstance(max_pngs, bool) or int(max_pngs) < 0:
        raise ElscliError(f"--max-pngs must be 0 or more, got {max_pngs}")
    if run.image is None or run.entropy is None:
        raise ElscliError(f"run {run.path!r} has no provenance (prov_image / prov_entropy); sample it with "
                          "provenance recorded")
    sel = np.arange(len(run.final)) if samples is None else np.asarray(list(samples), np.int64)
    if len(sel) and (sel.min() < 0 or sel.max() >= len(run.final)):
        raise ElscliError(f"sample positions must lie in 0..{len(run.final) - 1}")
    if bank is not None and run.bank_hash and getattr(bank, "content_hash", "") and \
            str(bank.content_hash) != run.bank_hash:
        raise ElscliError(f"the bank's content hash {bank.content_hash} differs from the run's {run.bank_hash}")
    P = int(run.patch_sizes[-1]) if len(run.patch_sizes) else None
    ds = distinct_sources(run.image[sel])
    if run.weight is not None:
        dom = np.array([len(np.unique(im[w >= AMBIGUOUS_WEIGHT])) for im, w in zip(run.image[sel], run.weight[sel])],
                       dtype=np.int64)
    else:
        dom = ds.copy()
    ent = run.entropy[sel].reshape(len(sel), -1).mean(1)
    cons = None
    if bank is not None:
        cons = local_consistency(run.final[sel], run.machine, bank, P, run.labels[sel], tol=tol, threads=threads,
                                 machine_params=run.machine_params)
    pngs = []
    if out_dir is not None:
        out_dir = declare_output_dir(out_dir, "-o")    # created when the first PNG is written
        for j, s in enumerate(sel[:max_pngs]):
            p = out_dir / f"mosaic-{Path(run.path).stem}-{int(run.sample_ids[s])}.png"
            t = (f"{machine_description(run.machine, run.machine_params)} sample {int(run.sample_ids[s])}: "
                 f"{dom[j]} dominant sources ({ds[j]} in all), "
                 f"mean entropy {ent[j]:.2f} nats"
                 + ("" if cons is None else f", locally consistent {cons[j]:.0%}"))
            mosaic_figure(run.final[s], run.image[s], p, title=t, entropy=run.entropy[s],
                          weight=None if run.weight is None else run.weight[s])
            pngs.append(str(p))
    return MosaicReport(sample_ids=run.sample_ids[sel], distinct_sources=ds, dominant_sources=dom, mean_entropy=ent,
                        consistency=cons, patch_size=P, tolerance=tol, pngs=pngs, machine=run.machine)


def mosaic_file(path: os.PathLike | str, *, bank=None, out_dir=None, samples: Optional[Sequence[int]] = None,
                tol: float = CONSISTENCY_TOL, max_pngs: int = 16, threads: Optional[int] = None) -> MosaicReport:
    """:func:`mosaic_report` of a run file (``elscli mosaic``); ``bank`` a Bank, a bank path or None (no
    local consistency).  Raises ElscliError as :func:`load_run_provenance` and :func:`mosaic_report` do."""
    from ..sample_data import open_bank

    if tol < 0:
        raise ElscliError(f"--tolerance must be non-negative, got {tol}")
    rp = load_run_provenance(path)
    b = open_bank(bank) if bank is not None else None
    return mosaic_report(rp, bank=b, out_dir=out_dir, samples=samples, tol=tol, max_pngs=max_pngs, threads=threads)
