"""Reference trajectories: a trained network's run, for ``compare`` and ``locality-scan``.

A reference trajectory (format in ``docs/formats.md``) holds, for S samples on a reverse time grid of T steps,
the starting noise ``seeds`` (S, C, H, W), the network's state ``x`` (S, T+1, C, H, W) at every time, its noise
prediction ``eps`` (S, T, C, H, W) at every step, ``times`` (T+1,) descending to 0, optional ``labels`` (S,)
(-1 = unconditional) and the noise ``schedule`` name.  NPZ or HDF5 (datasets at the root, schedule as a root
attribute).

:func:`read` loads one into a :class:`Reference`; :func:`record` makes one from any noise predictor
``eps_fn(x, t, labels) -> eps`` (NumPy in, NumPy out) by running the deterministic DDIM grid, so that a PyTorch
model can be wrapped in a few lines without elscli depending on torch::

    def eps_fn(x, t, labels):
        with torch.no_grad():
            xt = torch.from_numpy(x).float()
            tt = torch.full((len(x),), t)
            return model(xt, tt).double().numpy()

    elscli.reference.record(eps_fn, seeds, elscli.noise.time_grid(20), path="my-net.npz")
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import ElscliError
from .noise import DEFAULT_NOISE_SCHEDULE, get_noise_schedule, scales

FORMAT = "elscli.reference"
SCHEMA_VERSION = 1

EpsFn = Callable[[np.ndarray, float, np.ndarray], np.ndarray]


@dataclass
class Reference:
    """A network's run: everything is float32 as stored except ``times`` (float64) and ``labels`` (int64)."""

    seeds: np.ndarray                  # (S, C, H, W)
    times: np.ndarray                  # (T+1,) descending, times[-1] == 0
    x: Optional[np.ndarray]            # (S, T+1, C, H, W) or None
    eps: Optional[np.ndarray]          # (S, T, C, H, W) or None
    labels: np.ndarray                 # (S,) int64, -1 unconditional
    schedule: str = DEFAULT_NOISE_SCHEDULE
    path: Optional[str] = None
    attrs: dict = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.seeds.shape[0])

    @property
    def num_steps(self) -> int:
        return int(len(self.times) - 1)

    @property
    def image_shape(self):
        return tuple(int(s) for s in self.seeds.shape[1:])

    @property
    def final(self) -> np.ndarray:
        """The network's outputs ``x[:, T]`` (S, C, H, W)."""
        if self.x is None:
            raise ElscliError(f"reference {self.path or ''!r} has no 'x' (the network's states)")
        return self.x[:, -1]

    def require_eps(self) -> np.ndarray:
        if self.eps is None:
            raise ElscliError(f"reference {self.path or ''!r} has no 'eps' (the network's noise predictions); "
                              "locality-scan needs them")
        return self.eps

    def require_x(self) -> np.ndarray:
        if self.x is None:
            raise ElscliError(f"reference {self.path or ''!r} has no 'x' (the network's states)")
        return self.x

    def score(self, step: int) -> np.ndarray:
        """The network's implied score ``-eps[:, step] / b(times[step])`` (S, C, H, W), float64."""
        eps = self.require_eps()
        _, b = scales(self.times[step], self.schedule)
        return -eps[:, step].astype(np.float64) / b


def _as_str(v) -> str:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        v = v.item() if v.ndim == 0 else v.tolist()
        if isinstance(v, bytes):
            v = v.decode()
    return str(v)


def is_reference_file(path: os.PathLike | str) -> bool:
    """True when ``path`` looks like a reference trajectory (NPZ, or HDF5 that is not an elscli run/scan/bank)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return True
    from .h5io import open_h5

    try:
        with open_h5(path) as f:
            fmt = _as_str(f.attrs.get("format", ""))
            return fmt in ("", FORMAT) and "seeds" in f and "times" in f
    except (OSError, ValueError):  # ElscliError included: missing, not HDF5, or still being written
        return False


def read(path: os.PathLike | str, *, load_trajectories: bool = True) -> Reference:
    """Read a reference trajectory (NPZ or HDF5) and validate its shapes; bad files raise ElscliError."""
    path = Path(path)
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    data: dict = {}
    attrs: dict = {}
    schedule = DEFAULT_NOISE_SCHEDULE
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    if k in ("x", "eps") and not load_trajectories:
                        continue
                    data[k] = z[k]
        except (OSError, ValueError) as exc:
            raise ElscliError(f"{str(path)!r} is not a readable NPZ file: {str(exc).splitlines()[0]}") from None
        if "schedule" in data:
            schedule = _as_str(data.pop("schedule"))
        for k in list(data):
            if data[k].ndim == 0:
                attrs[k] = _as_str(data.pop(k))
    else:
        from .h5io import open_h5

        with open_h5(path) as f:
            fmt = _as_str(f.attrs.get("format", ""))
            if fmt not in ("", FORMAT):
                raise ElscliError(f"{str(path)!r} is an {fmt} file, not a reference trajectory")
            for k in ("seeds", "labels", "times", "x", "eps"):
                if k in f and (load_trajectories or k not in ("x", "eps")):
                    data[k] = f[k][()]
            for k, v in f.attrs.items():
                attrs[k] = _as_str(v)
            schedule = attrs.pop("schedule", schedule)
    get_noise_schedule(schedule)  # unknown names are an error

    for k in ("seeds", "times"):
        if k not in data:
            raise ElscliError(f"reference {str(path)!r} has no {k!r}")
    seeds = np.asarray(data["seeds"], dtype=np.float32)
    if seeds.ndim != 4:
        raise ElscliError(f"reference {str(path)!r}: 'seeds' must be (S, C, H, W), got shape {seeds.shape}")
    S = seeds.shape[0]
    times = np.asarray(data["times"], dtype=np.float64)
    if times.ndim != 1 or len(times) < 2 or not np.all(np.diff(times) < 0) or times[-1] != 0 or times[0] > 1:
        raise ElscliError(f"reference {str(path)!r}: 'times' must be a descending grid in (0, 1] ending at 0")
    T = len(times) - 1
    labels = np.asarray(data.get("labels", np.full(S, -1)), dtype=np.int64)
    if labels.shape != (S,):
        raise ElscliError(f"reference {str(path)!r}: 'labels' must have shape ({S},), got {labels.shape}")
    x = data.get("x")
    if x is not None:
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (S, T + 1) + seeds.shape[1:]:
            raise ElscliError(f"reference {str(path)!r}: 'x' has shape {x.shape}, expected "
                              f"{(S, T + 1) + seeds.shape[1:]}")
    eps = data.get("eps")
    if eps is not None:
        eps = np.asarray(eps, dtype=np.float32)
        if eps.shape != (S, T) + seeds.shape[1:]:
            raise ElscliError(f"reference {str(path)!r}: 'eps' has shape {eps.shape}, expected "
                              f"{(S, T) + seeds.shape[1:]}")
    return Reference(seeds=seeds, times=times, x=x, eps=eps, labels=labels, schedule=schedule,
                     path=str(path), attrs=attrs)


def ddim_step(x: np.ndarray, eps: np.ndarray, t: float, t_next: float, schedule: str = DEFAULT_NOISE_SCHEDULE):
    """One deterministic DDIM step from ``t`` to ``t_next`` given the noise prediction; returns (x_next, x0_hat)."""
    a, b = scales(t, schedule)
    a2, b2 = scales(t_next, schedule)
    x0_hat = (x - b * eps) / a
    return a2 * x0_hat + b2 * eps, x0_hat


def record(eps_fn: EpsFn, seeds: np.ndarray, times, labels=None, path: os.PathLike | str | None = None, *,
           schedule: str = DEFAULT_NOISE_SCHEDULE, batch_size: Optional[int] = None, force: bool = False,
           attrs: Optional[dict] = None) -> Reference:
    """Run deterministic DDIM on ``times`` from ``seeds`` with a noise predictor and write a reference file.

    ``eps_fn(x, t, labels)`` receives ``x`` (B, C, H, W) float64, the time ``t`` (float) and ``labels`` (B,)
    int64 (-1 = unconditional) and returns ``eps`` of the same shape as ``x``.  The file is NPZ when ``path``
    ends in ``.npz`` and HDF5 otherwise, written atomically; with ``path=None`` nothing is written.
    """
    from .outputs import claim_output

    seeds = np.asarray(seeds)
    if seeds.ndim != 4:
        raise ElscliError(f"seeds must be (S, C, H, W), got shape {seeds.shape}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 2 or not np.all(np.diff(times) < 0) or times[-1] != 0 or times[0] > 1:
        raise ElscliError("times must be a descending grid in (0, 1] ending at 0")
    get_noise_schedule(schedule)
    S, T = seeds.shape[0], len(times) - 1
    labels = np.full(S, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if labels.shape != (S,):
        raise ElscliError(f"labels must have shape ({S},), got {labels.shape}")
    bs = S if not batch_size else int(batch_size)
    with contextlib.ExitStack() as claim:
        if path is not None:   # claimed before the network runs (a concurrent writer of it is refused)
            claim.enter_context(claim_output(path, force))
        xs = np.empty((S, T + 1) + seeds.shape[1:], dtype=np.float32)
        epss = np.empty((S, T) + seeds.shape[1:], dtype=np.float32)
        for lo in range(0, S, bs):
            sl = slice(lo, min(S, lo + bs))
            x = seeds[sl].astype(np.float64)
            xs[sl, 0] = x
            for i in range(T):
                eps = np.asarray(eps_fn(x, float(times[i]), labels[sl]), dtype=np.float64)
                if eps.shape != x.shape:
                    raise ElscliError(f"eps_fn returned shape {eps.shape}, expected {x.shape}")
                epss[sl, i] = eps
                x, _ = ddim_step(x, eps, times[i], times[i + 1], schedule)
                xs[sl, i + 1] = x
        ref = Reference(seeds=seeds.astype(np.float32), times=times, x=xs, eps=epss, labels=labels,
                        schedule=schedule, path=None if path is None else str(path), attrs=dict(attrs or {}))
        if path is not None:
            write(ref, path, force=force)
    return ref


def write(ref: Reference, path: os.PathLike | str, *, force: bool = False) -> None:
    """Write a :class:`Reference` atomically: NPZ when ``path`` ends in ``.npz``, else HDF5."""
    from .h5io import atomic_output, write_root_attrs

    arrays = {"seeds": ref.seeds, "labels": ref.labels, "times": ref.times}
    if ref.x is not None:
        arrays["x"] = ref.x
    if ref.eps is not None:
        arrays["eps"] = ref.eps
    with atomic_output(path, force) as tmp:
        if Path(path).suffix.lower() == ".npz":
            with open(tmp, "wb") as fh:  # a file object, so numpy does not append '.npz' to the temp name
                np.savez_compressed(fh, schedule=np.array(ref.schedule),
                                    **{k: np.array(str(v)) for k, v in ref.attrs.items()
                                       if k not in arrays and k != "schedule"}, **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                write_root_attrs(f, FORMAT, SCHEMA_VERSION, {}, schedule=ref.schedule)
                for k, v in ref.attrs.items():
                    if k not in ("format", "schema_version", "elscli_version", "params", "schedule"):
                        f.attrs[k] = str(v)
                for k, v in arrays.items():
                    f.create_dataset(k, data=v, compression="gzip" if v.ndim > 1 else None)
    ref.path = str(path)
