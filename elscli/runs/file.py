"""The run file (``format = "elscli.run"``, schema 1): its schema, the :class:`Run` in memory, reading,
atomic saving, the store a run is written into, and the description ``elscli info`` shows.

This module is the only reader of run files: ``compare``, ``mosaic``, ``--from-seeds`` and ``merge`` read
them through :meth:`Run.open` / :func:`read_finished`.

Datasets at the root (``docs/formats.md``; S samples of shape (C, H, W), T steps):

==================  ======================  =============================================================
``sample_ids``      (S,) int64              global sample number i (its noise: ``default_rng([i, seed])``)
``done``            (S,) bool               finished samples (a partial or interrupted file has False rows)
``seeds``           (S, C, H, W) float32    starting noise
``labels``          (S,) int64              class label, -1 when unconditional
``times``           (T+1,) float64          the time grid, descending to 0
``patch_sizes``     (T,) int64              the patch size of each step (0 for IS)
``final``           (S, C, H, W) float32    the outputs, on the bank's scale (NaN while unfinished)
``x``, ``x0_hat``   (S, T+1, ...), (S, T,   trajectories (optional): the state at every time and the
                    ...) float32            denoiser's estimate at every step
``noise``           (S, T, C, H, W)         a stochastic sampler's (ddim, eta > 0) standard normal noise
                    float32                 injected at each step (zeros at the last step, which injects
                                            none); absent for a deterministic sampler
``prov_image``      (S, H, W) int64         last step: bank index of the training image of the dominant
                                            patch (-1 while unfinished)
``prov_row/col``    (S, H, W) int32         centre of that patch in that image (unpadded coordinates)
``prov_weight``     (S, H, W) float32       its softmax weight
``prov_entropy``    (S, H, W) float32       entropy of the patch weights, in nats
==================  ======================  =============================================================

Root attributes: ``format``, ``schema_version``, ``elscli_version``, ``params`` (JSON: every parameter of the
run, :func:`identity` picks those that make two files parts of one run), ``machine``, ``noise_schedule``,
``bank_content_hash``, ``seed`` (-1 with seeds from a file), ``num_samples``, ``shard`` (``"I/N"``) and
``command_line``.  Per-sample datasets are chunked one sample per chunk.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import h5py
import numpy as np

from ..errors import ElscliError, reason
from ..h5io import atomic_output, file_format, open_h5, read_attrs, read_params, write_root_attrs

FORMAT = "elscli.run"
SCHEMA_VERSION = 1

#: Parameters that make two files parts of the same run (shard, threads, batch size, paths may differ).
IDENTITY_KEYS = ("machine", "machine_params", "noise_schedule", "sampler", "eta", "grid", "bank_content_hash",
                 "image_shape", "seed", "num_samples", "label", "times", "patch_sizes", "seeds_hash", "save_trajectory")
#: The values of identity keys that files written before they were recorded had.
IDENTITY_DEFAULTS = {"noise_schedule": "cosine-legacy", "sampler": "ddim", "eta": 0.0, "grid": "uniform"}
BASE_DATASETS = ("sample_ids", "done", "seeds", "labels", "times", "patch_sizes", "final")
TRAJECTORY_DATASETS = ("x", "x0_hat")
PROVENANCE_DATASETS = ("prov_image", "prov_row", "prov_col", "prov_weight", "prov_entropy")
PROVENANCE_DTYPES = {"prov_image": np.int64, "prov_row": np.int32, "prov_col": np.int32,
                     "prov_weight": np.float32, "prov_entropy": np.float32}
#: Datasets with one row per sample (the others, ``times`` and ``patch_sizes``, describe the grid).
NOISE_DATASET = "noise"
PER_SAMPLE = ("sample_ids", "done", "seeds", "labels", "final") + TRAJECTORY_DATASETS + PROVENANCE_DATASETS \
    + (NOISE_DATASET,)
#: Datasets a run file starts with already filled in (the rest are filled as samples finish).
_KNOWN_AT_START = ("sample_ids", "seeds", "labels", "times", "patch_sizes", "done")


@dataclass
class Run:
    """A run in memory: its datasets (the names of the module docstring) and root attributes.

    Attributes
    ----------
    arrays : dict of str -> ndarray
        The datasets, shapes and dtypes as in the module docstring.
    attrs : dict
        Root attributes, decoded to plain Python (:func:`elscli.h5io.decode_attr`).
    path : Path or None
        The file it was read from or saved to.
    interrupted : int or None
        The signal number when :func:`elscli.runs.sample` was stopped early (the run is partial).
    elapsed : float
        Seconds :func:`elscli.runs.sample` spent computing (0 for a run read from a file).
    samples_computed : int
        Samples computed by that call (a resumed run counts only the new ones).
    compile_seconds : float
        Seconds of ``elapsed`` spent compiling the kernels (Numba, a first run after installing; 0 when they
        were loaded from the cache): a rate per sample leaves them out, as the progress display does.
    """

    arrays: Dict[str, np.ndarray]
    attrs: Dict[str, Any]
    path: Optional[Path] = None
    interrupted: Optional[int] = None
    elapsed: float = 0.0
    samples_computed: int = 0
    compile_seconds: float = 0.0

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Union[str, os.PathLike], *, trajectories: bool = True) -> "Run":
        """Read a run file into memory (``trajectories=False`` skips ``x`` and ``x0_hat``).

        Raises
        ------
        ElscliError
            The file is missing, not HDF5, not an ``elscli.run`` file, unreadable, or lacks one of the
            base datasets (``sample_ids``, ``done``, ``seeds``, ``labels``, ``times``, ``patch_sizes``,
            ``final``).
        """
        path = Path(path)
        with open_h5(path, "r", expected_format=FORMAT) as f:
            try:
                arrays = {k: f[k][()] for k in f.keys()
                          if isinstance(f[k], h5py.Dataset) and (trajectories or k not in TRAJECTORY_DATASETS)}
            except (OSError, KeyError, ValueError) as exc:
                raise ElscliError(f"{str(path)!r}: cannot read the run's datasets (corrupt?): "
                                  f"{reason(exc)}") from None
            attrs = read_attrs(f)
        missing = [k for k in BASE_DATASETS if k not in arrays]
        if missing:
            raise ElscliError(f"{str(path)!r} is not a complete run file (missing {', '.join(missing)})")
        return cls(arrays, attrs, path)

    # -- views -----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        done = int(np.sum(self.arrays["done"])) if "done" in self.arrays else 0
        steps = len(self.arrays["times"]) - 1 if "times" in self.arrays else 0
        return (f"Run(machine={self.machine!r}, samples={len(self) if self.arrays else 0}, done={done}, "
                f"steps={steps}, path={str(self.path) if self.path else None!r})")

    def __len__(self) -> int:
        return int(len(self.arrays["sample_ids"]))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def params(self) -> Dict[str, Any]:
        """Every parameter of the run (the ``params`` root attribute, parsed from JSON)."""
        raw = self.attrs.get("params", "{}")
        return json.loads(raw) if isinstance(raw, str) else dict(raw)

    sample_ids = property(lambda self: self.arrays["sample_ids"], doc="(S,) int64 global sample numbers.")
    done = property(lambda self: self.arrays["done"], doc="(S,) bool: finished samples.")
    seeds = property(lambda self: self.arrays["seeds"], doc="(S, C, H, W) float32 starting noise.")
    labels = property(lambda self: self.arrays["labels"], doc="(S,) int64 labels, -1 unconditional.")
    times = property(lambda self: self.arrays["times"], doc="(T+1,) float64 time grid, descending to 0.")
    patch_sizes = property(lambda self: self.arrays["patch_sizes"], doc="(T,) int64 patch size per step.")
    final = property(lambda self: self.arrays["final"], doc="(S, C, H, W) float32 outputs.")
    x = property(lambda self: self.arrays.get("x"), doc="(S, T+1, C, H, W) float32 states, or None.")
    x0_hat = property(lambda self: self.arrays.get("x0_hat"), doc="(S, T, C, H, W) float32 estimates, or None.")
    noise = property(lambda self: self.arrays.get(NOISE_DATASET),
                     doc="(S, T, C, H, W) float32 noise a stochastic sampler injected, or None.")
    machine = property(lambda self: str(self.attrs.get("machine", "")), doc="is, ls, els or bbels.")

    @property
    def provenance(self) -> Optional[Dict[str, np.ndarray]]:
        """``{"image", "row", "col", "weight", "entropy"}`` arrays (S, H, W) of the last step, or None."""
        if "prov_image" not in self.arrays:
            return None
        return {k[len("prov_"):]: self.arrays[k] for k in PROVENANCE_DATASETS if k in self.arrays}

    @property
    def complete(self) -> bool:
        """Whether every sample of this file is finished."""
        return bool(np.all(self.done))

    def finished(self) -> "Run":
        """A run holding only the finished rows of this one (grid datasets unchanged, same attributes)."""
        done = np.asarray(self.done, bool)
        arrays = {k: (v[done] if k in PER_SAMPLE else v) for k, v in self.arrays.items()}
        return Run(arrays, dict(self.attrs), self.path)

    # -- writing ---------------------------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike], force: bool = False) -> Path:
        """Write this run to ``path`` atomically (:func:`elscli.h5io.atomic_output`) and return the path.

        Raises ElscliError when ``path`` exists without ``force`` or its directory is missing or read-only.
        """
        with atomic_output(path, force) as tmp:
            with h5py.File(tmp, "w") as f:
                for k, v in self.attrs.items():
                    f.attrs[k] = v
                for k in dataset_order(self.arrays):
                    _create_dataset(f, k, self.arrays[k])
        self.path = Path(path)
        return self.path


def read_finished(path: Union[str, os.PathLike], *, trajectories: bool = False) -> Run:
    """The finished samples of a run file (:meth:`Run.open` then :meth:`Run.finished`).

    Raises ElscliError as :meth:`Run.open` does, and when no sample is finished.
    """
    run = Run.open(path, trajectories=trajectories).finished()
    if len(run) == 0:
        raise ElscliError(f"run {str(path)!r} has no finished samples")
    return run


def identity(params: Dict[str, Any]) -> Dict[str, Any]:
    """The parameters (of :data:`IDENTITY_KEYS`) that two files must share to be parts of the same run (those
    a file predates read as :data:`IDENTITY_DEFAULTS`)."""
    return {k: params.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_KEYS}


def dataset_order(arrays: Dict[str, Any]) -> List[str]:
    """Dataset names in the order they are written: the schema's, then any others sorted."""
    known = list(BASE_DATASETS) + list(TRAJECTORY_DATASETS) + list(PROVENANCE_DATASETS) + [NOISE_DATASET]
    return [k for k in known if k in arrays] + sorted(k for k in arrays if k not in known)


def _create_dataset(f: h5py.File, name: str, data: np.ndarray) -> None:
    data = np.asarray(data)
    chunks = None
    if name in PER_SAMPLE and data.ndim >= 2 and data.shape[0] > 0:
        chunks = (1,) + data.shape[1:]
    f.create_dataset(name, data=data, chunks=chunks)


def empty_arrays(sample_ids: np.ndarray, seeds: np.ndarray, labels: np.ndarray, times: np.ndarray,
                 patch_sizes: np.ndarray, save_trajectory: bool, provenance: bool = True,
                 stochastic: bool = False) -> Dict[str, np.ndarray]:
    """The datasets of a run whose samples are all still to compute.

    ``sample_ids`` (S,), ``seeds`` (S, C, H, W) float32, ``labels`` (S,) int64, ``times`` (T+1,) float64,
    ``patch_sizes`` (T,).  ``done`` is all False; ``final``, trajectories, the injected ``noise`` (only when
    ``stochastic``) and float provenance are NaN, integer provenance -1 (the fill values of a run file).
    ``provenance`` False (a machine without a dominant training patch or image: wiener, pspc-square) leaves
    the provenance datasets out.
    """
    S = len(sample_ids)
    C, H, W = (int(s) for s in seeds.shape[1:])
    T = len(times) - 1
    arrays = {
        "sample_ids": np.asarray(sample_ids, np.int64),
        "done": np.zeros(S, dtype=bool),
        "seeds": seeds,
        "labels": labels,
        "times": times,
        "patch_sizes": np.asarray(patch_sizes, np.int64),
        "final": np.full((S, C, H, W), np.nan, np.float32),
    }
    if provenance:
        arrays.update({
            "prov_image": np.full((S, H, W), -1, np.int64),
            "prov_row": np.full((S, H, W), -1, np.int32),
            "prov_col": np.full((S, H, W), -1, np.int32),
            "prov_weight": np.full((S, H, W), np.nan, np.float32),
            "prov_entropy": np.full((S, H, W), np.nan, np.float32),
        })
    if save_trajectory:
        arrays["x"] = np.full((S, T + 1, C, H, W), np.nan, np.float32)
        arrays["x0_hat"] = np.full((S, T, C, H, W), np.nan, np.float32)
    if stochastic:
        arrays[NOISE_DATASET] = np.full((S, T, C, H, W), np.nan, np.float32)
    return arrays


def open_for_writing(path: Path, mode: str) -> h5py.File:
    """Open a run file for writing (``"w"`` or ``"r+"``), with HDF5 file locking where the filesystem
    supports it (NFS often does not).  h5py's errors (``BlockingIOError``, ``OSError``) pass through."""
    try:
        return h5py.File(path, mode, locking="best-effort")
    except TypeError:  # h5py/HDF5 without the locking option
        return h5py.File(path, mode)


def create_run_file(path: Path, params: Dict[str, Any], attrs: Dict[str, Any],
                    arrays: Dict[str, np.ndarray]) -> h5py.File:
    """Create the run file ``path`` (overwriting it) for a run still to compute, and return it open.

    ``arrays`` are :func:`empty_arrays`: the datasets known at the start are written, the others created
    with their fill values (chunked one sample per chunk) and filled in as samples finish.  ``params`` go
    to the ``params`` attribute, ``attrs`` to the other root attributes.
    """
    f = open_for_writing(path, "w")
    try:
        write_root_attrs(f, FORMAT, SCHEMA_VERSION, params, **attrs)
        for k in dataset_order(arrays):
            a = arrays[k]
            if k in _KNOWN_AT_START:
                _create_dataset(f, k, a)
            else:
                chunks = (1,) + a.shape[1:] if a.shape[0] > 0 else None
                fill = -1 if a.dtype.kind == "i" else np.nan
                f.create_dataset(k, shape=a.shape, dtype=a.dtype, chunks=chunks, fillvalue=fill)
        f.flush()
    except BaseException:
        f.close()
        raise
    return f


def check_resumable(f: h5py.File, path: Path, params: Dict[str, Any], sample_ids: np.ndarray,
                    seeds: np.ndarray, save_trajectory: bool, provenance: bool = True,
                    stochastic: bool = False) -> None:
    """Refuse to ``--resume`` a file that is not this very run (shard) with every dataset it needs.

    Raises ElscliError naming the first parameter that differs, the missing datasets, or other samples.
    """
    if file_format(f) != FORMAT:
        raise ElscliError(f"{str(path)!r} is not an {FORMAT} file; cannot --resume it")
    old = read_params(f)
    old_id, new_id = identity(old), identity(params)
    diff = [k for k in IDENTITY_KEYS if old_id[k] != new_id[k]] + (["shard"] if old.get("shard") != params.get("shard")
                                                                  else [])
    if diff:
        k = diff[0]
        was, now = (old.get(k), params.get(k)) if k == "shard" else (old_id[k], new_id[k])
        raise ElscliError(f"--resume: {str(path)!r} was made with {k}={was!r}, not {now!r}; "
                          "resume with the same parameters (or write a new file)")
    missing = [k for k in BASE_DATASETS + (PROVENANCE_DATASETS if provenance else ()) if k not in f]
    if save_trajectory:
        missing += [k for k in TRAJECTORY_DATASETS if k not in f]
    if stochastic and NOISE_DATASET not in f:
        missing.append(NOISE_DATASET)
    if missing:
        raise ElscliError(f"--resume: {str(path)!r} lacks {', '.join(missing)} (not a run file written by sample)")
    if not np.array_equal(f["sample_ids"][()], sample_ids) or not np.array_equal(f["seeds"][()], seeds):
        raise ElscliError(f"--resume: {str(path)!r} holds other samples than this run would")


def write_rows(store: Dict[str, Any], rows: np.ndarray, final: np.ndarray, provenance: Any,
               traj_x: Optional[np.ndarray] = None, traj_x0: Optional[np.ndarray] = None,
               noise: Optional[np.ndarray] = None) -> None:
    """Write finished samples into a store (a dict of arrays, or the datasets of an open run file).

    ``rows`` (B,) positions; ``final`` (B, C, H, W); ``provenance`` an object with ``image``, ``row``, ``col``,
    ``weight``, ``entropy`` arrays (B, H, W) (:class:`elscli.machines.Provenance`) or None; ``traj_x``
    (B, T+1, C, H, W) and ``traj_x0`` (B, T, C, H, W) when trajectories are kept; ``noise`` (B, T, C, H, W)
    the injected noise of a stochastic sampler.  Values are cast to the schema's dtypes.  ``done`` is not
    touched (the caller sets it after the rows are written).
    """
    rows = np.asarray(rows)
    store["final"][rows] = final.astype(np.float32)
    if provenance is not None:
        for k in PROVENANCE_DATASETS:
            val = getattr(provenance, k[len("prov_"):], None)
            if val is not None:
                store[k][rows] = np.asarray(val).astype(PROVENANCE_DTYPES[k])
    if traj_x is not None:
        store["x"][rows] = traj_x
        store["x0_hat"][rows] = traj_x0
    if noise is not None:
        store[NOISE_DATASET][rows] = noise.astype(np.float32)


def describe_run(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """A JSON-ready summary of a run file: what ``elscli info RUN.h5`` shows.

    Raises ElscliError as :meth:`Run.open` does.
    """
    run = Run.open(path, trajectories=False)
    with open_h5(path) as f:
        has_traj = all(k in f for k in TRAJECTORY_DATASETS)
    p = run.params
    labels = run.labels
    hist = {str(int(k)): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
    ids = run.sample_ids
    return {
        "path": str(path),
        "format": FORMAT,
        "schema_version": int(run.attrs.get("schema_version", 0)),
        "elscli_version": run.attrs.get("elscli_version"),
        "machine": run.machine,
        "machine_params": p.get("machine_params") or {},
        "noise_schedule": run.attrs.get("noise_schedule"),
        "sampler": p.get("sampler", IDENTITY_DEFAULTS["sampler"]),
        "eta": p.get("eta", IDENTITY_DEFAULTS["eta"]),
        "grid": p.get("grid"),
        "evaluations": p.get("evaluations"),
        "injected_noise": run.noise is not None,
        "noise_stream": p.get("noise_stream"),
        "bank": p.get("bank"),
        "bank_content_hash": run.attrs.get("bank_content_hash"),
        "seed": p.get("seed"),
        "from_seeds": p.get("from_seeds"),
        "num_samples_total": p.get("num_samples"),
        "shard": p.get("shard"),
        "samples": len(run),
        "samples_done": int(np.sum(run.done)),
        "complete": run.complete,
        "sample_ids": f"{int(ids.min())}..{int(ids.max())}" if len(ids) else "",
        "image_shape": list(run.seeds.shape[1:]),
        "steps": int(len(run.times) - 1),
        "times": [round(float(t), 6) for t in run.times],
        "patch_sizes": [int(v) for v in run.patch_sizes],
        "schedule": p.get("schedule"),
        "labels": hist,
        "trajectory": has_traj,
        "provenance": run.provenance is not None,
        "command_line": run.attrs.get("command_line"),
        # the grid times are sums of float steps (0.6499999999999999); shown to 6 decimals, stored exactly
        "params": {**p, "times": [round(float(t), 6) for t in p["times"]]} if "times" in p else p,
    }

