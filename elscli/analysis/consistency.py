"""Spatial inconsistency: the topology of line images and how unlikely it is under the training set.

Kamb & Ganguli (ICML 2025, Sec. 5) argue that too much locality late in the reverse process makes images that
are plausible patch by patch and wrong as a whole — strokes that do not join, extra limbs, the wrong number of
parts — and that trained convolutional networks make the same errors on the same samples.  This module
measures it for line images (one channel: MNIST-like digits, strokes on a background).

**Features** of one image (:func:`image_topology`, :func:`topology`):

- *ink*: the pixels **above** ``threshold`` (default 0, the midpoint of the [-1, 1] pixel scale);
- *components*: connected components of the ink, 8-connectivity (``scipy.ndimage.label``);
- *holes*: connected components of the background, 4-connectivity, that do not touch the image border — the
  dual convention of digital topology (8-connected foreground, 4-connected background), under which
  ``components - holes`` is the Euler number (Rosenfeld 1970; ``skimage.measure.euler_number(connectivity=2)``);
- on the skeleton (``skimage.morphology.skeletonize``), *end points* and *branch points* by the crossing
  number (Rutovitz 1966) — the number of 0 -> 1 transitions around a skeleton pixel's 8 neighbours in cyclic
  order, computed for every pixel with one ``scipy.ndimage.correlate`` and a 256-entry table: an end point has
  crossing number 1, a branch pixel 3 or more, and *branch points* are the 8-connected clusters of branch
  pixels (a junction drawn with several adjacent branch pixels counts once).  An isolated skeleton pixel (a dot)
  has crossing number 0: it is a component with no end point.  The crossing number, unlike a plain count of
  neighbours, counts the end of a diagonal staircase (two touching neighbours) as one end point.

**Score** (:class:`BankDistribution`).  Locality adds parts, so a sample is inconsistent when its topology is
*more complex than the training images'*: its **tail probability** ``p(x)`` is the fraction of the reference
images ``Y`` (the bank; only the sample's class when the sample has a label and the bank has labels) with at
least as much of every score feature (default: components and end points, the signature of strokes that do not
join and of extra limbs)::

    p(x) = (1 + #{y in Y : f_k(y) >= f_k(x) for every score feature k}) / (|Y| + 1)

(the sample counts itself, as in a conformal p-value, so ``p > 0``; a bank image is scored within the bank,
where ``p`` is the fraction of ``Y`` — itself included — that dominates it).
``p`` is not yet calibrated: a digit "8" has a small ``p`` only because loops are rare.  Calibration uses the
bank's own scores: the sample's **bank percentile** is the fraction of the reference images whose own ``p`` is
strictly larger (strictly more consistent), and the sample is **inconsistent** when that fraction is at least
``level`` (default 0.95: "more inconsistent than 95% of the bank").  By construction at most ``1 - level`` of
the bank's own images are inconsistent, and a sample drawn like a training image (exchangeable with them) is
inconsistent with probability at most ``1 - level`` — the conformal guarantee (Vovk, Gammerman & Shafer,
*Algorithmic Learning in a Random World*, 2005; Shafer & Vovk, JMLR 9, 2008).  So "inconsistent" means "unlike
the training images", with the bank's own spread as the yardstick, not an arbitrary threshold.

The score only looks up: an image with *less* structure than every training image (no ink at all) scores
consistent; the ink fraction is reported beside it.  Multi-channel (RGB) images are refused: the features are
those of strokes on a background.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ElscliError

FEATURES = ("components", "holes", "end_points", "branch_points")
DEFAULT_SCORE_FEATURES = ("components", "end_points")
DEFAULT_THRESHOLD = 0.0
DEFAULT_LEVEL = 0.95

_EIGHT = np.ones((3, 3), dtype=bool)                      # 8-connectivity
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)  # 4-connectivity
# The 8 neighbours in cyclic order (N, NE, E, SE, S, SW, W, NW) and the weight 2**k of neighbour k: correlating
# the skeleton with _CODE gives every pixel's neighbourhood as an 8-bit code.
_CYCLE = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
_CODE = np.zeros((3, 3), dtype=np.int64)
for _k, (_dy, _dx) in enumerate(_CYCLE):
    _CODE[1 + _dy, 1 + _dx] = 1 << _k


def _crossing_table() -> np.ndarray:
    """(256,) int64: the crossing number of every 8-neighbourhood code — 0 -> 1 transitions around the cycle."""
    table = np.zeros(256, dtype=np.int64)
    for code in range(256):
        bits = [(code >> k) & 1 for k in range(8)]
        table[code] = sum(1 for k in range(8) if bits[k] == 0 and bits[(k + 1) % 8] == 1)
    return table


_CROSSING = _crossing_table()


# ================================================================================================
# Features of one image
# ================================================================================================
@dataclass
class Skeleton:
    """The skeleton of one ink mask and its special points, all (H, W) bool."""

    skeleton: np.ndarray
    end_points: np.ndarray      # skeleton pixels with crossing number 1
    branch_pixels: np.ndarray   # skeleton pixels with crossing number >= 3 (clusters = branch points)


def skeleton_points(mask: np.ndarray) -> Skeleton:
    """Skeleton (``skimage.morphology.skeletonize``), end points and branch pixels of an (H, W) bool mask."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ElscliError(f"an ink mask is (H, W), got shape {mask.shape}")
    skel = skeletonize(mask) if mask.any() else np.zeros_like(mask)
    code = ndimage.correlate(skel.astype(np.int64), _CODE, mode="constant", cval=0)
    crossing = _CROSSING[code]
    return Skeleton(skel, skel & (crossing == 1), skel & (crossing >= 3))


def image_topology(mask: np.ndarray) -> Dict[str, int]:
    """The four counts of :data:`FEATURES` for one (H, W) bool ink mask (conventions: module docstring)."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ElscliError(f"an ink mask is (H, W), got shape {mask.shape}")
    _, components = ndimage.label(mask, structure=_EIGHT)
    back, n_back = ndimage.label(~mask, structure=_FOUR)
    border = np.unique(np.concatenate([back[0], back[-1], back[:, 0], back[:, -1]]))
    holes = n_back - int(np.count_nonzero(border))       # label 0 (ink) is not a background component
    sk = skeleton_points(mask)
    _, branch_points = ndimage.label(sk.branch_pixels, structure=_EIGHT)
    return {"components": int(components), "holes": int(holes), "end_points": int(np.count_nonzero(sk.end_points)),
            "branch_points": int(branch_points)}


def ink_masks(images: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """(S, H, W) bool: pixels above ``threshold`` of single-channel images (S, 1, H, W) or (S, H, W).

    Raises :class:`ElscliError` for multi-channel images (the measure is for line images) and NaN pixels."""
    a = np.asarray(images)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise ElscliError(f"the consistency measure is for line images (one channel); these images have "
                              f"{a.shape[1]} channels")
        a = a[:, 0]
    if a.ndim != 3:
        raise ElscliError(f"images must be (S, 1, H, W) or (S, H, W), got shape {a.shape}")
    if not np.isfinite(float(threshold)):
        raise ElscliError(f"the ink threshold must be a finite number, got {threshold!r}")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise ElscliError("images contain NaN pixels (unfinished samples?)")
    return a > float(threshold)


@dataclass
class Topology:
    """Per-image features of a stack of S images: each of :data:`FEATURES` (S,) int64, ``ink_fraction`` (S,)."""

    counts: Dict[str, np.ndarray]
    ink_fraction: np.ndarray

    def __len__(self) -> int:
        return int(len(self.ink_fraction))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.ink_fraction if name == "ink_fraction" else self.counts[name]

    def matrix(self, features: Sequence[str]) -> np.ndarray:
        """(S, K) int64: the named count features side by side."""
        return np.stack([self.counts[f] for f in features], axis=1) if len(self) else np.zeros((0, len(features)),
                                                                                                 np.int64)

    def take(self, index) -> "Topology":
        return Topology({k: v[index] for k, v in self.counts.items()}, self.ink_fraction[index])


def topology(images: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> Topology:
    """Features of single-channel images (S, 1, H, W) on [-1, 1] (or (S, H, W)): ink above ``threshold``."""
    masks = ink_masks(images, threshold)
    counts = {k: np.zeros(len(masks), np.int64) for k in FEATURES}
    for i, m in enumerate(masks):
        for k, v in image_topology(m).items():
            counts[k][i] = v
    ink = masks.reshape(len(masks), -1).mean(axis=1) if len(masks) else np.zeros(0)
    return Topology(counts, ink.astype(np.float64))


# ================================================================================================
# The bank's distribution and the score
# ================================================================================================
def _check_features(features: Sequence[str]) -> Tuple[str, ...]:
    features = tuple(features)
    if not features:
        raise ElscliError("the score needs at least one feature")
    bad = [f for f in features if f not in FEATURES]
    if bad:
        raise ElscliError(f"unknown feature {bad[0]!r} (choose from {', '.join(FEATURES)})")
    if len(set(features)) != len(features):
        raise ElscliError("a score feature is named twice")
    return features


class _Dominance:
    """Counts of reference vectors that dominate a query (>= in every coordinate), by a reversed cumulative
    histogram over the (small, non-negative) integer feature grid: O(grid) to build, O(1) per query."""

    def __init__(self, ref: np.ndarray):
        ref = np.asarray(ref, np.int64)
        self.top = ref.max(axis=0) + 1 if len(ref) else np.ones(ref.shape[1], np.int64)
        hist = np.zeros(tuple(int(t) + 1 for t in self.top), np.int64)
        np.add.at(hist, tuple(ref.T), 1)
        for ax in range(hist.ndim):       # suffix sums: hist[c] = #{ref >= c}
            hist = np.flip(np.cumsum(np.flip(hist, ax), axis=ax), ax)
        self.cum = hist

    def count(self, q: np.ndarray) -> np.ndarray:
        q = np.minimum(np.asarray(q, np.int64), self.top)   # beyond every reference value: nothing dominates
        return self.cum[tuple(q.T)]


@dataclass
class BankDistribution:
    """The bank's own distribution of the score features, and the score of samples under it.

    ``topology``: the bank images' features; ``labels`` (N,) int64 (-1 unlabelled); ``score_features``;
    ``level`` (default 0.95); ``threshold``: the ink threshold the features were computed with.  Built by
    :meth:`from_images`.  A sample is scored in its *group*: the bank images of its class when it has a label
    and the bank has labels, the whole bank otherwise.

    In a group ``Y`` of ``n`` images with a sample ``x`` added (the pool of a conformal test), let ``D(z)`` be
    the number of pool members that dominate ``z`` (``>=`` in every score feature, ``z`` itself included).
    Then ``tail(x) = D(x) / (n + 1)`` and ``percentile(x) = #{y in Y : D(y) > D(x)} / n``, the fraction of the
    group strictly more consistent than ``x``; ``x`` is inconsistent when ``percentile(x) >= level``.  Under
    exchangeability of ``x`` with ``Y`` its rank among the ``n + 1`` is uniform, so this happens with
    probability at most ``(n + 1 - ceil(level * n)) / (n + 1)`` (~ ``1 - level``)."""

    topology: Topology
    labels: np.ndarray
    score_features: Tuple[str, ...] = DEFAULT_SCORE_FEATURES
    level: float = DEFAULT_LEVEL
    threshold: float = DEFAULT_THRESHOLD
    _groups: Dict[int, Tuple[np.ndarray, np.ndarray, "_Dominance", np.ndarray]] = field(default_factory=dict,
                                                                                     repr=False)

    @classmethod
    def from_images(cls, images: np.ndarray, labels: Optional[np.ndarray] = None, *,
                    score_features: Sequence[str] = DEFAULT_SCORE_FEATURES, level: float = DEFAULT_LEVEL,
                    threshold: float = DEFAULT_THRESHOLD) -> "BankDistribution":
        """The distribution of the bank's images (N, 1, H, W) on [-1, 1]; ``labels`` (N,) or None.

        Raises :class:`ElscliError` for RGB images, unknown features, a level outside (0, 1), fewer than two
        images."""
        feats = _check_features(score_features)
        if not 0.0 < float(level) < 1.0:
            raise ElscliError(f"--level (a fraction of the bank) must lie in (0, 1), got {level!r}")
        if len(images) < 2:
            raise ElscliError("the bank needs at least two images to give a distribution")
        topo = topology(images, threshold)
        lab = np.full(len(topo), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        if lab.shape != (len(topo),):
            raise ElscliError(f"labels must have shape ({len(topo)},), got {lab.shape}")
        return cls(topo, lab, feats, float(level), float(threshold))

    def _group(self, group: int):
        """(indices, features (n, K), dominance counter, D of each member within the group)."""
        if group not in self._groups:
            idx = np.arange(len(self.labels)) if group < 0 else np.flatnonzero(self.labels == group)
            if len(idx) < 2:
                raise ElscliError(f"the bank has {len(idx)} image(s) of class {group}; a class-conditional "
                                  "score needs at least two")
            f = self.topology.matrix(self.score_features)[idx]
            dom = _Dominance(f)
            self._groups[group] = (idx, f, dom, dom.count(f))
        return self._groups[group]

    def group_of(self, label: int) -> int:
        """The group a sample of ``label`` is scored in: its class when the bank is labelled, else -1."""
        label = int(label)
        if label >= 0 and np.any(self.labels >= 0):
            if not np.any(self.labels == label):
                raise ElscliError(f"class {label} is not in the bank")
            return label
        return -1

    def score(self, topo: Topology, labels: Optional[np.ndarray] = None) -> "Scores":
        """Tail probability, bank percentile and the inconsistent flag of every sample of ``topo`` (each
        sample alone added to its group: samples do not affect each other's scores)."""
        S = len(topo)
        lab = np.full(S, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        if lab.shape != (S,):
            raise ElscliError(f"labels must have shape ({S},), got {lab.shape}")
        fx = topo.matrix(self.score_features)
        tail, pct = np.zeros(S), np.zeros(S)
        groups = np.array([self.group_of(v) for v in lab], np.int64)
        for i in range(S):
            idx, f, dom, d_bank = self._group(int(groups[i]))
            d_x = 1 + int(dom.count(fx[i:i + 1])[0])
            d_pool = d_bank + np.all(fx[i] >= f, axis=1)          # the sample may dominate bank images too
            tail[i] = d_x / (len(idx) + 1)
            pct[i] = np.count_nonzero(d_pool > d_x) / len(idx)
        return Scores(tail, pct, pct >= self.level, groups)

    def score_bank(self, group: int = -1) -> "Scores":
        """The bank images of a group (-1: all) scored within it: ``tail`` = D / n (the group is the pool),
        ``percentile`` = #{group images with a larger D} / n.  An image is inconsistent when at least
        ``level * n`` images lie strictly above it, which only the lowest ``n - ceil(level * n)`` can: at most
        ``1 - level`` of the bank is inconsistent, by construction."""
        idx, f, dom, d_bank = self._group(int(group))
        n = len(idx)
        order = np.sort(d_bank)
        above = n - np.searchsorted(order, d_bank, side="right")
        pct = above / n
        return Scores(d_bank / n, pct, pct >= self.level, np.full(n, group, np.int64))


@dataclass
class Scores:
    """Per-sample score: ``tail`` (S,) tail probability, ``percentile`` (S,) the fraction of the bank group
    strictly more consistent, ``inconsistent`` (S,) bool (percentile >= level), ``group`` (S,) the class scored
    in (-1: the whole bank)."""

    tail: np.ndarray
    percentile: np.ndarray
    inconsistent: np.ndarray
    group: np.ndarray


# ================================================================================================
# Inputs: the finals of runs and of a network's reference trajectory
# ================================================================================================
@dataclass
class Finals:
    """The final images of one input: ``images`` (S, C, H, W) float32, ``sample_ids`` (S,) int64 (a run's
    sample numbers; a reference's positions), ``labels`` (S,) int64, ``seeds`` (S, C, H, W) float32."""

    name: str
    kind: str                      # "run" or "reference"
    machine: Optional[str]
    images: np.ndarray
    sample_ids: np.ndarray
    labels: np.ndarray
    seeds: np.ndarray
    params: Dict = field(default_factory=dict)
    bank_content_hash: Optional[str] = None
    path: Optional[str] = None

    @property
    def locality(self) -> Dict:
        """How the run's schedule was scaled: ``{"mode": "all"|"late"|None, "scale": F, "late_from": T}``
        (``sample --schedule-scale F`` / ``--late-scale F --late-from T``; an unscaled run has scale 1)."""
        p = self.params
        if p.get("late_scale") is not None:
            return {"mode": "late", "scale": float(p["late_scale"]), "late_from": p.get("late_from")}
        if p.get("schedule_scale") is not None:
            return {"mode": "all", "scale": float(p["schedule_scale"]), "late_from": None}
        return {"mode": None, "scale": 1.0, "late_from": None}


def load_finals(path, name: Optional[str] = None) -> Finals:
    """The finished finals of a run file (:func:`elscli.runs.read_finished`) or of a network's reference
    trajectory (:func:`elscli.reference.read`, ``x[:, T]``).  Raises :class:`ElscliError` for a missing or
    unreadable file, or a run with no finished sample."""
    from pathlib import Path

    from .. import reference as R

    path = Path(path)
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    if R.is_reference_file(path):
        ref = R.read(path)
        S = ref.num_samples
        return Finals(name or path.stem, "reference", None, np.asarray(ref.final, np.float32),
                      np.arange(S, dtype=np.int64), ref.labels, ref.seeds, {}, None, str(path))
    from ..runs import read_finished

    run = read_finished(path)
    return Finals(name or path.stem, "run", run.machine or None, np.asarray(run.final, np.float32),
                  np.asarray(run.sample_ids, np.int64), np.asarray(run.labels, np.int64),
                  np.asarray(run.seeds, np.float32), run.params, run.attrs.get("bank_content_hash"), str(path))


# ================================================================================================
# The report: every input scored, the network compared sample by sample, the sweep
# ================================================================================================
def quartiles(values: np.ndarray) -> Dict[str, float]:
    """Median and quartiles (numpy's linear interpolation) of ``values``; NaN for an empty array."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return {"median": float("nan"), "q1": float("nan"), "q3": float("nan")}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3)}


@dataclass
class InputResult:
    """One input's features and scores; ``copies`` (S,) bool when the copy check ran (``compare --nearest``)."""

    finals: Finals
    topology: Topology
    scores: Scores
    copies: Optional[np.ndarray] = None

    def summary(self) -> Dict:
        f = self.finals
        out = {"name": f.name, "kind": f.kind, "machine": f.machine, "path": f.path, "samples": len(self.topology),
               "locality": f.locality, "ink_fraction": quartiles(self.topology.ink_fraction)}
        for k in FEATURES:
            out[k] = quartiles(self.topology[k])
        out["inconsistent_count"] = int(np.count_nonzero(self.scores.inconsistent))
        out["inconsistent_fraction"] = float(np.mean(self.scores.inconsistent)) if len(self.topology) else 0.0
        out["median_tail"] = float(np.median(self.scores.tail)) if len(self.topology) else float("nan")
        if self.copies is not None:
            out["copy_fraction"] = float(np.mean(self.copies))
        return out

    def take(self, index) -> "InputResult":
        """The same result restricted to the samples ``index`` (positions)."""
        index = np.asarray(index)
        f = self.finals
        fin = Finals(f.name, f.kind, f.machine, f.images[index], f.sample_ids[index], f.labels[index], f.seeds[index],
                     f.params, f.bank_content_hash, f.path)
        sc = self.scores
        return InputResult(fin, self.topology.take(index),
                           Scores(sc.tail[index], sc.percentile[index], sc.inconsistent[index], sc.group[index]),
                           None if self.copies is None else self.copies[index])

    def rows(self) -> List[Dict]:
        f, t, s = self.finals, self.topology, self.scores
        rows = []
        for i in range(len(t)):
            r = {"input": f.name, "sample": int(f.sample_ids[i]), "label": int(f.labels[i]),
                 "ink_fraction": float(t.ink_fraction[i])}
            r.update({k: int(t[k][i]) for k in FEATURES})
            r.update({"tail_probability": float(s.tail[i]), "bank_percentile": float(s.percentile[i]),
                      "inconsistent": bool(s.inconsistent[i])})
            if self.copies is not None:
                r["copy"] = bool(self.copies[i])
            rows.append(r)
        return rows


@dataclass
class Agreement:
    """Sample-by-sample agreement of two inconsistent flags over the same seeds, as a 2x2 table:
    ``both`` inconsistent, ``reference_only``, ``run_only``, ``neither``; Cohen's kappa (Cohen 1960).
    ``spearman``: when set, the rank correlation of the two inputs' tail probabilities over the same samples
    (a continuous check that does not depend on the 95% line; ``scipy.stats.spearmanr``)."""

    both: int
    reference_only: int
    run_only: int
    neither: int
    spearman: Optional[float] = None

    @property
    def n(self) -> int:
        return self.both + self.reference_only + self.run_only + self.neither

    @property
    def agreement(self) -> float:
        """Observed agreement p_o = (both + neither) / n."""
        return (self.both + self.neither) / self.n if self.n else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's kappa (p_o - p_e) / (1 - p_e), p_e the agreement expected from the two marginals; NaN when
        p_e = 1 (both raters put every sample in the same class: kappa is undefined)."""
        n = self.n
        if n == 0:
            return float("nan")
        ref_yes, run_yes = self.both + self.reference_only, self.both + self.run_only
        pe = (ref_yes * run_yes + (n - ref_yes) * (n - run_yes)) / (n * n)
        return float("nan") if pe >= 1.0 else (self.agreement - pe) / (1.0 - pe)

    def as_dict(self) -> Dict:
        k = self.kappa
        rho = self.spearman
        return {"n": self.n, "both": self.both, "reference_only": self.reference_only, "run_only": self.run_only,
                "neither": self.neither, "agreement": self.agreement, "kappa": None if np.isnan(k) else k,
                "spearman_tail": None if rho is None or np.isnan(rho) else rho}


def agreement(reference_flags: np.ndarray, run_flags: np.ndarray) -> Agreement:
    """The 2x2 table of two (S,) bool flag arrays over the same samples."""
    a = np.asarray(reference_flags, bool)
    b = np.asarray(run_flags, bool)
    if a.shape != b.shape:
        raise ElscliError(f"cannot compare {a.shape} flags with {b.shape} flags")
    return Agreement(int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)), int(np.sum(~a & ~b)))


@dataclass
class ConsistencyReport:
    """Everything ``elscli consistency`` shows: the bank's own scores, every input, and (with a reference)
    each run's agreement with it over the samples they share (matched by seeds)."""

    bank: BankDistribution
    bank_scores: Scores
    inputs: List[InputResult]
    reference: Optional[InputResult] = None
    agreements: Dict[str, Tuple[Agreement, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def all_inputs(self) -> List[InputResult]:
        return ([self.reference] if self.reference is not None else []) + list(self.inputs)

    def bank_summary(self) -> Dict:
        t = self.bank.topology
        out = {"images": len(t), "ink_fraction": quartiles(t.ink_fraction)}
        for k in FEATURES:
            out[k] = quartiles(t[k])
        out["inconsistent_count"] = int(np.count_nonzero(self.bank_scores.inconsistent))
        out["inconsistent_fraction"] = float(np.mean(self.bank_scores.inconsistent))
        return out

    def summary(self) -> Dict:
        out = {"score_features": list(self.bank.score_features), "level": self.bank.level,
               "threshold": self.bank.threshold, "bank": self.bank_summary(),
               "inputs": {r.finals.name: r.summary() for r in self.all_inputs}}
        if self.agreements:
            out["agreement_with_reference"] = {n: a.as_dict() for n, (a, _, _) in self.agreements.items()}
        return out

    def rows(self) -> List[Dict]:
        return [r for res in self.all_inputs for r in res.rows()]

    def sweep(self) -> List[Dict]:
        """The runs as a locality sweep, ordered by scale, over the seeds they share (those of the smallest run;
        matched by seeds): per run its scale, medians and quartiles of components and end points, the
        inconsistent fraction and (when computed) the copy fraction.  Raises :class:`ElscliError` when the runs
        mix whole-schedule and late-only scaling, repeat a scale, or do not share the smallest run's seeds."""
        runs = [r for r in self.inputs if r.finals.kind == "run"]
        if not runs:
            raise ElscliError("a sweep needs runs (sample --schedule-scale F ...)")
        modes = {(r.finals.locality["mode"] or "all") if r.finals.locality["mode"] != "late"
                 else ("late", r.finals.locality["late_from"]) for r in runs}
        if len(modes) > 1:
            raise ElscliError("the sweep's runs mix --schedule-scale and --late-scale (or several --late-from "
                              "times); give runs of one kind")
        scales = [r.finals.locality["scale"] for r in runs]
        if len(set(scales)) != len(scales):
            dup = next(s for s in scales if scales.count(s) > 1)
            raise ElscliError(f"two runs of the sweep have the same schedule scale {dup:g}")
        from .compare import match_seeds

        base = min(runs, key=lambda r: len(r.topology))   # every run must hold the smallest run's seeds
        points = []
        for r in sorted(runs, key=lambda r: r.finals.locality["scale"]):
            idx = match_seeds(r.finals.seeds, base.finals.seeds, names=(r.finals.name, base.finals.name))
            s = r.take(idx).summary()
            p = {"name": r.finals.name, "scale": r.finals.locality["scale"], "mode": r.finals.locality["mode"] or "all",
                 "late_from": r.finals.locality["late_from"], "samples": s["samples"],
                 "patch_sizes": [int(v) for v in r.finals.params.get("patch_sizes", [])],
                 "components": s["components"], "end_points": s["end_points"],
                 "inconsistent_fraction": s["inconsistent_fraction"], "inconsistent_count": s["inconsistent_count"]}
            if "copy_fraction" in s:
                p["copy_fraction"] = s["copy_fraction"]
            points.append(p)
        return points


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged); NaN with fewer than 3 samples or a constant input."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def consistency_report(bank: BankDistribution, inputs: Sequence[Finals], reference: Optional[Finals] = None, *,
                       copies_against: Optional[np.ndarray] = None) -> ConsistencyReport:
    """Score every input (and the reference) under ``bank``; with a reference, the 2x2 agreement of each run's
    inconsistent flags with the reference's over the samples they share (matched by seeds, as ``compare``
    does) and the rank correlation of their tail probabilities; with ``copies_against`` (the bank's images), each sample's copy flag (RMS < 0.05 to the nearest
    training image, :func:`elscli.analysis.nearest.nearest`)."""
    from .compare import match_seeds
    from .nearest import nearest

    def one(f: Finals) -> InputResult:
        topo = topology(f.images, bank.threshold)
        res = InputResult(f, topo, bank.score(topo, f.labels))
        if copies_against is not None:
            res.copies = nearest(f.images, copies_against).is_copy
        return res

    results = [one(f) for f in inputs]
    ref = one(reference) if reference is not None else None
    report = ConsistencyReport(bank, bank.score_bank(), results, ref)
    if ref is not None:
        for r in results:
            idx = match_seeds(ref.finals.seeds, r.finals.seeds, names=(ref.finals.name, r.finals.name))
            a = agreement(ref.scores.inconsistent[idx], r.scores.inconsistent)
            a.spearman = _spearman(ref.scores.tail[idx], r.scores.tail)
            report.agreements[r.finals.name] = (a, idx, np.arange(len(idx)))
    return report
