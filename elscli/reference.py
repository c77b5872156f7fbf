"""Reference trajectories: a trained network's run, for ``compare`` and ``locality-scan``.

A reference trajectory (format in ``docs/formats.md``) holds, for S samples on a reverse time grid of T steps,
the starting state ``seeds`` (S, C, H, W), the network's state ``x`` (S, T+1, C, H, W) at every time, its noise
prediction ``eps`` (S, T, C, H, W) at ``(x[:, i], times[i])``, ``times`` (T+1,) descending to 0, optional
``labels`` (S,) (-1 = unconditional) and the noise ``schedule`` name.  NPZ or HDF5 (datasets at the root,
scalars as root attributes).  elscli adds, all optional so that files of other tools stay readable:

- ``sampler`` (``ddim``, ``euler`` or ``heun``; absent: ``ddim``), ``eta`` (absent: 0), ``grid``
  (``uniform``, ``edm`` or ``custom``; absent: recognised from ``times``) and ``evaluations`` (the network
  calls, 2T - 1 for Heun);
- ``noise`` (S, T, C, H, W) float32: for a stochastic sampler (ddim with eta > 0), the standard normal ``z``
  injected at step i (zeros at the last step, which injects none), and ``noise_seed`` when it was drawn from
  the samples' own generators.  A machine run ``--from-seeds`` this file replays exactly this noise, so it
  follows the network's process whatever generator made it;
- a **forward-noised section** (``forward_*``, all or none): held-out images ``forward_x0`` (F, C, H, W)
  float32 with ``forward_labels`` (F,) int64, each with its own noise ``forward_noise`` (F, C, H, W) float32,
  the times ``forward_times`` (T',) float64 (descending, in (0, 1]) and the network's noise prediction
  ``forward_eps`` (F, T', C, H, W) float32 at the states ``x_t = a(t) x0 + b(t) noise`` (:class:`ForwardStates`):
  what ``locality-scan --states forward`` calibrates against, as the paper's forks do, without following the
  network's own reverse process.

:func:`read` loads one into a :class:`Reference`; :func:`record` makes one from any noise predictor
``eps_fn(x, t, labels) -> eps`` (NumPy in, NumPy out) with any sampler of :mod:`elscli.sampler`, so that a
PyTorch model can be wrapped in a few lines without elscli depending on torch::

    def eps_fn(x, t, labels):
        with torch.no_grad():
            xt = torch.from_numpy(x).float()
            tt = torch.full((len(x),), t)
            return model(xt, tt).double().numpy()

    elscli.reference.record(eps_fn, seeds, path="my-net.npz", noise_schedule="linear",
                            sampler="ddim", eta=1.0, noise_seed=0)        # 20 uniform steps
"""
from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import ElscliError, reason
from .noise import DEFAULT_NOISE_SCHEDULE, get_noise_schedule, grid_name, make_grid
from .sampler import (DEFAULT_SAMPLER, RecordedNoise, StreamNoise, check_grid, check_sampler_eta, is_stochastic,
                      num_evaluations, run_sampler, sample_generator)

FORMAT = "elscli.reference"
SCHEMA_VERSION = 1

EpsFn = Callable[[np.ndarray, float, np.ndarray], np.ndarray]
_SCALAR_KEYS = ("schedule", "sampler", "eta", "grid", "noise_seed", "evaluations")


@dataclass
class ForwardStates:
    """Held-out images noised forward, and the network's noise prediction at each noised state.

    ``x0`` (F, C, H, W) float32 clean images; ``noise`` (F, C, H, W) float32, image i's own standard normal
    draw; ``times`` (T',) float64 descending in (0, 1]; ``eps`` (F, T', C, H, W) float32: the network's
    prediction at ``x_t = a(t) x0 + b(t) noise`` (:meth:`state`); ``labels`` (F,) int64 (-1 unconditional)."""

    x0: np.ndarray
    noise: np.ndarray
    times: np.ndarray
    eps: np.ndarray
    labels: np.ndarray

    @property
    def num_images(self) -> int:
        return int(self.x0.shape[0])

    def state(self, step: int, rows, schedule: str) -> np.ndarray:
        """The noised images ``a x0 + b noise`` at ``times[step]`` for ``rows``: (len(rows), C, H, W) float64
        (computed as :func:`record` computed them for the network)."""
        a, b = get_noise_schedule(schedule)(float(self.times[step]))
        return a * self.x0[rows].astype(np.float64) + b * self.noise[rows].astype(np.float64)


_FORWARD_KEYS = ("forward_x0", "forward_noise", "forward_times", "forward_eps", "forward_labels")


@dataclass
class Reference:
    """A network's run: everything is float32 as stored except ``times`` (float64) and ``labels`` (int64).

    ``sampler``/``eta``/``grid`` say how it was sampled; ``noise`` (S, T, C, H, W) is the injected noise of a
    stochastic sampler (None otherwise, or when the file does not hold it); ``forward``: the optional
    forward-noised states of held-out images (:class:`ForwardStates`).
    """

    seeds: np.ndarray                  # (S, C, H, W)
    times: np.ndarray                  # (T+1,) descending, times[-1] == 0
    x: Optional[np.ndarray]            # (S, T+1, C, H, W) or None
    eps: Optional[np.ndarray]          # (S, T, C, H, W) or None
    labels: np.ndarray                 # (S,) int64, -1 unconditional
    schedule: str = DEFAULT_NOISE_SCHEDULE
    path: Optional[str] = None
    attrs: dict = field(default_factory=dict)
    sampler: str = DEFAULT_SAMPLER
    eta: float = 0.0
    grid: Optional[str] = None         # None: recognised from times (uniform, edm or custom)
    noise: Optional[np.ndarray] = None  # (S, T, C, H, W) float32 or None
    noise_seed: Optional[int] = None
    forward: Optional[ForwardStates] = None

    def __post_init__(self) -> None:
        if self.grid is None:
            self.grid = grid_name(self.times, self.schedule)

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
    def stochastic(self) -> bool:
        """Whether the sampler injected noise (ddim with eta > 0)."""
        return is_stochastic(self.sampler, self.eta)

    @property
    def evaluations(self) -> int:
        """The network's evaluations per sample: T (ddim, euler) or 2T - 1 (heun)."""
        return num_evaluations(self.sampler, self.times)

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

    def require_noise(self) -> np.ndarray:
        """The injected noise of a stochastic reference (S, T, C, H, W); an error when the file lacks it."""
        if self.noise is None:
            raise ElscliError(f"reference {self.path or ''!r} was sampled with ddim eta={self.eta:g} but holds no "
                              "'noise' (the injected noise), so no machine can follow its process")
        return self.noise

    def require_forward(self) -> ForwardStates:
        """The forward-noised states of held-out images; an error when the file holds none."""
        if self.forward is None:
            raise ElscliError(f"reference {self.path or ''!r} holds no forward-noised states (forward_*): record "
                              "them with elscli.reference.record(..., forward_images=...)")
        return self.forward

    def score(self, step: int) -> np.ndarray:
        """The network's implied score ``-eps[:, step] / b(times[step])`` (S, C, H, W), float64."""
        eps = self.require_eps()
        _, b = get_noise_schedule(self.schedule)(self.times[step])
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
    """Read a reference trajectory (NPZ or HDF5) and validate it; bad files raise ElscliError.

    ``load_trajectories=False`` skips ``x`` and ``eps`` (the injected ``noise`` is always read: a machine run
    from this reference's seeds needs it).
    """
    path = Path(path)
    if not path.exists():
        raise ElscliError(f"{str(path)!r} does not exist")
    data: dict = {}
    attrs: dict = {}
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    if k in ("x", "eps", "forward_eps") and not load_trajectories:
                        continue
                    data[k] = z[k]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            if isinstance(exc, PermissionError):
                raise ElscliError(f"{str(path)!r} is not readable (permission denied)") from None
            raise ElscliError(f"{str(path)!r} is not a readable NPZ file (corrupt or truncated?): "
                              f"{reason(exc)}") from None
        for k in list(data):
            if data[k].ndim == 0:
                attrs[k] = _as_str(data.pop(k))
    else:
        from .h5io import open_h5

        with open_h5(path) as f:
            fmt = _as_str(f.attrs.get("format", ""))
            if fmt not in ("", FORMAT):
                raise ElscliError(f"{str(path)!r} is an {fmt} file, not a reference trajectory")
            for k in ("seeds", "labels", "times", "x", "eps", "noise") + _FORWARD_KEYS:
                if k in f and (load_trajectories or k not in ("x", "eps", "forward_eps")):
                    data[k] = f[k][()]
            for k, v in f.attrs.items():
                attrs[k] = _as_str(v)
    where = f"reference {str(path)!r}"
    schedule = attrs.pop("schedule", DEFAULT_NOISE_SCHEDULE)
    try:
        get_noise_schedule(schedule)  # unknown names are an error
        sampler, eta = check_sampler_eta(attrs.pop("sampler", DEFAULT_SAMPLER), attrs.pop("eta", 0.0))
    except ElscliError as exc:
        raise ElscliError(f"{where}: {exc}") from None
    grid = attrs.pop("grid", None)
    attrs.pop("evaluations", None)
    noise_seed = attrs.pop("noise_seed", None)
    noise_seed = None if noise_seed in (None, "", "None") else int(noise_seed)

    for k in ("seeds", "times"):
        if k not in data:
            raise ElscliError(f"{where} has no {k!r}")
    seeds = np.asarray(data["seeds"], dtype=np.float32)
    if seeds.ndim != 4:
        raise ElscliError(f"{where}: 'seeds' must be (S, C, H, W), got shape {seeds.shape}")
    S = seeds.shape[0]
    times = np.asarray(data["times"], dtype=np.float64)
    if times.ndim != 1 or len(times) < 2 or not np.all(np.diff(times) < 0) or times[-1] != 0 or times[0] > 1:
        raise ElscliError(f"{where}: 'times' must be a descending grid in (0, 1] ending at 0")
    T = len(times) - 1
    labels = np.asarray(data.get("labels", np.full(S, -1)), dtype=np.int64)
    if labels.shape != (S,):
        raise ElscliError(f"{where}: 'labels' must have shape ({S},), got {labels.shape}")
    arrays = {}
    for k, steps in (("x", T + 1), ("eps", T), ("noise", T)):
        v = data.get(k)
        if v is not None:
            v = np.asarray(v, dtype=np.float32)
            if v.shape != (S, steps) + seeds.shape[1:]:
                raise ElscliError(f"{where}: {k!r} has shape {v.shape}, expected {(S, steps) + seeds.shape[1:]}")
        arrays[k] = v
    if arrays["noise"] is not None and not is_stochastic(sampler, eta):
        raise ElscliError(f"{where} holds injected 'noise' but its sampler ({sampler}, eta={eta:g}) injects none")
    forward = _read_forward(data, seeds.shape[1:], where, load_trajectories)
    return Reference(seeds=seeds, times=times, x=arrays["x"], eps=arrays["eps"], labels=labels,
                     schedule=schedule, path=str(path), attrs=attrs, sampler=sampler, eta=eta, grid=grid,
                     noise=arrays["noise"], noise_seed=noise_seed, forward=forward)


def _read_forward(data: dict, image_shape, where: str, load_trajectories: bool) -> Optional[ForwardStates]:
    """The forward-noised section of a file's arrays (all of ``_FORWARD_KEYS`` or none), checked."""
    present = [k for k in _FORWARD_KEYS if k in data]
    if not present:
        return None
    needed = [k for k in _FORWARD_KEYS if k != "forward_eps" or load_trajectories]
    missing = [k for k in needed if k not in data]
    if missing:
        raise ElscliError(f"{where}: its forward-noised section lacks {', '.join(missing)}")
    x0 = np.asarray(data["forward_x0"], dtype=np.float32)
    F = x0.shape[0] if x0.ndim == 4 else -1
    if x0.ndim != 4 or tuple(x0.shape[1:]) != tuple(image_shape) or F < 1:
        raise ElscliError(f"{where}: 'forward_x0' must be (F, {', '.join(map(str, image_shape))}), got {x0.shape}")
    times = np.asarray(data["forward_times"], dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or not np.all(np.diff(times) < 0) or times[0] > 1 or times[-1] <= 0:
        raise ElscliError(f"{where}: 'forward_times' must be descending times in (0, 1]")
    shapes = {"forward_noise": x0.shape, "forward_labels": (F,),
              "forward_eps": (F, len(times)) + tuple(image_shape)}
    out = {}
    for k, shape in shapes.items():
        if k not in data:
            out[k] = None
            continue
        v = np.asarray(data[k], dtype=np.int64 if k == "forward_labels" else np.float32)
        if v.shape != shape:
            raise ElscliError(f"{where}: {k!r} has shape {v.shape}, expected {shape}")
        out[k] = v
    return ForwardStates(x0=x0, noise=out["forward_noise"], times=times, eps=out["forward_eps"],
                         labels=out["forward_labels"])


def describe_reference(path: os.PathLike | str) -> dict:
    """A JSON-ready summary of a reference trajectory (``elscli info``): samples, steps, image shape, the
    time grid, noise schedule and sampler, labels, the arrays it holds and their shapes, and its other
    attributes (e.g. ``model``).  Raises ElscliError as :func:`read` does."""
    ref = read(path)
    S, T = ref.num_samples, ref.num_steps
    hist = {("unconditional" if k < 0 else str(int(k))): int(v)
            for k, v in zip(*np.unique(ref.labels, return_counts=True))}
    shape = "×".join(map(str, ref.image_shape))
    arrays = {"seeds": f"{S}×{shape}", "times": f"{T + 1}"}
    for name, steps in (("x", T + 1), ("eps", T), ("noise", T)):
        if getattr(ref, name) is not None:
            arrays[name] = f"{S}×{steps}×{shape}"
    out = {"path": str(path), "format": "reference trajectory (" + ("NPZ" if Path(path).suffix.lower() == ".npz"
                                                                    else "HDF5") + ")",
           "samples": S, "steps": T, "image_shape": list(ref.image_shape),
           "times": f"{ref.times[0]:g} … {ref.times[-1]:g} ({ref.grid} grid)",
           "noise_schedule": ref.schedule, "sampler": ref.sampler, "eta": ref.eta,
           "evaluations_per_sample": ref.evaluations, "labels": hist, "arrays": arrays}
    if ref.noise_seed is not None:
        out["noise_seed"] = ref.noise_seed
    for k, v in ref.attrs.items():
        if k not in out and k not in ("format", "schema_version"):
            out[k] = v
    return out


def verify_reference(path: os.PathLike | str) -> list:
    """Read a reference trajectory whole and check it (``elscli info --verify``); returns the checks made:
    finite seeds, states, noise predictions and injected noise, and ``x[:, 0]`` equal to ``seeds``.  Raises
    ElscliError naming the first failure."""
    ref = read(path)
    where = f"{str(path)!r} fails verification"
    checks = []
    for name in ("seeds", "x", "eps", "noise"):
        v = getattr(ref, name)
        if v is None:
            continue
        if not np.all(np.isfinite(v)):
            raise ElscliError(f"{where}: {name!r} holds NaN or infinite values")
        checks.append(f"{name} finite")
    if ref.x is not None:
        if not np.array_equal(ref.x[:, 0], ref.seeds):
            raise ElscliError(f"{where}: x[:, 0] differs from seeds (each trajectory must start at its seed)")
        checks.append("x[:, 0] equals seeds")
    return checks


def record(eps_fn: EpsFn, seeds: np.ndarray, times=None, labels=None, path: os.PathLike | str | None = None, *,
           noise_schedule: str = DEFAULT_NOISE_SCHEDULE, sampler: str = DEFAULT_SAMPLER, eta: float = 0.0,
           grid: Optional[str] = None, steps: Optional[int] = None, noise_seed: Optional[int] = None,
           noise: Optional[np.ndarray] = None, sample_ids=None, batch_size: Optional[int] = None,
           force: bool = False, attrs: Optional[dict] = None, forward_images=None, forward_labels=None,
           forward_times=None, forward_noise_seed: int = 0) -> Reference:
    """Sample with a noise predictor ``eps_fn`` from ``seeds`` and write a reference file.

    ``eps_fn(x, t, labels)`` receives ``x`` (B, C, H, W) float64, the time ``t`` (float) and ``labels`` (B,)
    int64 (-1 = unconditional) and returns ``eps`` of the same shape; elscli's sampler sees the denoiser
    ``x0_hat = (x - b(t) eps) / a(t)`` of ``noise_schedule``.  ``seeds`` (S, C, H, W) are the starting states
    at ``times[0]`` (``eps`` for the VP schedules; ``sigma(t0) eps`` for ``edm``).

    The grid: ``times`` (a descending array ending at 0; ``grid`` is then recognised from it), or
    ``grid`` = ``uniform`` | ``edm`` with ``steps`` (default 20) from t = 1.  ``sampler``: ``ddim`` (with
    ``eta`` in [0, 1]; 1 is DDPM's ancestral sampling), ``euler`` or ``heun`` (see :mod:`elscli.sampler`).

    For ``eta > 0`` the injected noise is each sample's own: either ``noise_seed`` (sample j draws from
    ``numpy.random.default_rng([sample_ids[j], noise_seed])`` after one ``standard_normal((C, H, W))`` draw,
    its starting noise as elscli makes it; ``sample_ids`` default to 0..S-1), or ``noise`` (S, T, C, H, W),
    the noise itself.  Either way the file records it as ``noise`` (float32, as used), and the result does not
    depend on ``batch_size``.

    ``forward_images`` (F, C, H, W), optional: held-out clean images in the [-1, 1] pixel scale (not in the
    bank the machines will use), with ``forward_labels`` (F,) (default -1).  Each is noised forward to every
    time of ``forward_times`` (default: the grid's step start times ``times[:-1]``) as ``x_t = a(t) x0 +
    b(t) noise`` with one noise per image — image i's ``numpy.random.default_rng([i, forward_noise_seed])
    .standard_normal((C, H, W))`` — and the network's ``eps_fn`` at those states is recorded
    (:class:`ForwardStates`, the file's ``forward_*`` arrays) for ``locality-scan --states forward``.

    The file is NPZ when ``path`` ends in ``.npz`` and HDF5 otherwise, written atomically; with ``path=None``
    nothing is written.  Bad input raises :class:`ElscliError`.
    """
    from .outputs import claim_output

    seeds = np.asarray(seeds)
    if seeds.dtype.kind not in "fiu" or not np.all(np.isfinite(seeds)):
        raise ElscliError("seeds must be finite numbers")
    if seeds.ndim != 4:
        raise ElscliError(f"seeds must be (S, C, H, W), got shape {seeds.shape}")
    if seeds.shape[0] < 1:
        raise ElscliError("seeds hold no samples")
    sched = get_noise_schedule(noise_schedule)
    sampler, eta = check_sampler_eta(sampler, eta)
    if times is None:
        times = make_grid(grid or "uniform", 20 if steps is None else steps, sched.name)
    else:
        if grid is not None or steps is not None:
            raise ElscliError("give either times, or grid and steps, not both")
        try:
            times = check_grid(times)
        except ElscliError as exc:
            raise ElscliError(f"times: {exc}") from None
    grid = grid_name(times, sched.name)
    S, T = seeds.shape[0], len(times) - 1
    labels = np.full(S, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if labels.shape != (S,):
        raise ElscliError(f"labels must have shape ({S},), got {labels.shape}")
    stochastic = is_stochastic(sampler, eta)
    recorded = None
    if stochastic:
        if (noise_seed is None) == (noise is None):
            raise ElscliError(f"ddim with eta={eta:g} injects noise: give each sample's noise, by noise_seed= "
                              "(their own generators) or noise= (S, T, C, H, W)")
        if noise is not None:
            noise = np.asarray(noise, dtype=np.float32)
            if noise.shape != (S, T) + seeds.shape[1:]:
                raise ElscliError(f"noise must have shape {(S, T) + seeds.shape[1:]}, got {noise.shape}")
        else:
            try:
                ok = not isinstance(noise_seed, bool) and int(noise_seed) == noise_seed and int(noise_seed) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ElscliError(f"noise_seed must be a non-negative integer, got {noise_seed!r}")
            noise_seed = int(noise_seed)
        recorded = np.zeros((S, T) + seeds.shape[1:], dtype=np.float32)
    elif noise_seed is not None or noise is not None:
        raise ElscliError(f"sampler {sampler} with eta={eta:g} injects no noise: drop noise_seed / noise")
    ids = np.arange(S, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
    if ids.shape != (S,):
        raise ElscliError(f"sample_ids must have shape ({S},), got {ids.shape}")
    try:
        bs = S if not batch_size else int(batch_size)
    except (TypeError, ValueError):
        bs = 0
    if bs < 1 or (batch_size and bs != batch_size):
        raise ElscliError(f"batch_size must be a positive integer, got {batch_size!r}")

    fw_spec = _forward_spec(forward_images, forward_labels, forward_times, forward_noise_seed, seeds.shape[1:],
                            times)

    with contextlib.ExitStack() as claim:
        if path is not None:   # claimed before the network runs (a concurrent writer of it is refused)
            claim.enter_context(claim_output(path, force))
        xs = np.empty((S, T + 1) + seeds.shape[1:], dtype=np.float32)
        epss = np.empty((S, T) + seeds.shape[1:], dtype=np.float32)
        for lo in range(0, S, bs):
            sl = slice(lo, min(S, lo + bs))
            x = seeds[sl].astype(np.float64)
            xs[sl, 0] = x
            calls = []

            def denoiser(x, t, _labels=labels[sl]):
                a, b = sched(t)
                eps = np.asarray(eps_fn(x, float(t), _labels), dtype=np.float64)
                if eps.shape != x.shape:
                    raise ElscliError(f"eps_fn returned shape {eps.shape}, expected {x.shape}")
                calls.append(eps)
                return (x - b * eps) / a

            def on_step(step, _sl=sl):
                epss[_sl, step.index] = calls[0]            # the prediction at (x[:, i], times[i])
                calls.clear()
                xs[_sl, step.index + 1] = step.x_next
                if step.noise is not None:
                    recorded[_sl, step.index] = step.noise

            source = None
            if stochastic:
                if noise is not None:
                    source = RecordedNoise(noise[sl])
                else:
                    gens = [sample_generator(i, noise_seed) for i in ids[sl]]
                    for g in gens:                            # past the starting noise, as elscli draws it
                        g.standard_normal(seeds.shape[1:])
                    source = StreamNoise(gens)
            run_sampler(sampler, denoiser, x, times, callback=on_step, noise_schedule=sched.name, eta=eta,
                        noise=source)
        forward = None if fw_spec is None else _record_forward(eps_fn, *fw_spec, sched, bs)
        ref = Reference(seeds=seeds.astype(np.float32), times=times, x=xs, eps=epss, labels=labels,
                        schedule=sched.name, path=None if path is None else str(path), attrs=dict(attrs or {}),
                        sampler=sampler, eta=eta, grid=grid, noise=recorded,
                        noise_seed=noise_seed if stochastic else None, forward=forward)
        if path is not None:
            write(ref, path, force=force)
    return ref


def _forward_spec(images, labels, times, noise_seed, image_shape, grid_times):
    """Checked inputs of :func:`record`'s forward section: (x0 float32, labels, times, noise float32), or None."""
    if images is None:
        if labels is not None or times is not None:
            raise ElscliError("forward_labels / forward_times need forward_images")
        return None
    x0 = np.asarray(images)
    if x0.dtype.kind not in "fiu" or x0.ndim != 4 or tuple(x0.shape[1:]) != tuple(image_shape) or len(x0) < 1:
        raise ElscliError(f"forward_images must be (F, {', '.join(map(str, image_shape))}) numbers, got "
                          f"{x0.dtype} {x0.shape}")
    x0 = x0.astype(np.float32)
    if not np.all(np.isfinite(x0)):
        raise ElscliError("forward_images must be finite")
    F = len(x0)
    labels = np.full(F, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if labels.shape != (F,):
        raise ElscliError(f"forward_labels must have shape ({F},), got {labels.shape}")
    times = np.asarray(grid_times[:-1] if times is None else times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or not np.all(np.diff(times) < 0) or times[0] > 1 or times[-1] <= 0:
        raise ElscliError("forward_times must be descending times in (0, 1]")
    if isinstance(noise_seed, bool) or int(noise_seed) != noise_seed or int(noise_seed) < 0:
        raise ElscliError(f"forward_noise_seed must be a non-negative integer, got {noise_seed!r}")
    noise = np.stack([np.random.default_rng([i, int(noise_seed)]).standard_normal(x0.shape[1:])
                      for i in range(F)]).astype(np.float32)
    return x0, labels, times, noise


def _record_forward(eps_fn, x0, labels, times, noise, sched, batch_size) -> ForwardStates:
    """The network's eps at every forward-noised state (in batches of ``batch_size`` images)."""
    F = len(x0)
    eps = np.empty((F, len(times)) + x0.shape[1:], dtype=np.float32)
    fw = ForwardStates(x0=x0, noise=noise, times=times, eps=eps, labels=labels)
    for j in range(len(times)):
        for lo in range(0, F, batch_size):
            rows = np.arange(lo, min(F, lo + batch_size))
            x = fw.state(j, rows, sched.name)
            e = np.asarray(eps_fn(x, float(times[j]), labels[rows]), dtype=np.float64)
            if e.shape != x.shape:
                raise ElscliError(f"eps_fn returned shape {e.shape}, expected {x.shape}")
            eps[rows, j] = e
    return fw


def _scalars(ref: Reference) -> dict:
    out = {"schedule": ref.schedule, "sampler": ref.sampler, "eta": float(ref.eta), "grid": ref.grid,
           "evaluations": int(ref.evaluations)}
    if ref.noise_seed is not None:
        out["noise_seed"] = int(ref.noise_seed)
    return out


def write(ref: Reference, path: os.PathLike | str, *, force: bool = False) -> None:
    """Write a :class:`Reference` atomically: NPZ when ``path`` ends in ``.npz``, else HDF5."""
    from .h5io import atomic_output, write_root_attrs

    arrays = {"seeds": ref.seeds, "labels": ref.labels, "times": ref.times}
    for k in ("x", "eps", "noise"):
        if getattr(ref, k) is not None:
            arrays[k] = getattr(ref, k)
    if ref.forward is not None:
        fw = ref.forward
        arrays.update({k: v for k, v in (("forward_x0", fw.x0), ("forward_noise", fw.noise),
                                         ("forward_times", fw.times), ("forward_eps", fw.eps),
                                         ("forward_labels", fw.labels)) if v is not None})
    scalars = _scalars(ref)
    reserved = set(arrays) | set(scalars) | {"format", "schema_version", "elscli_version", "params"}
    with atomic_output(path, force) as tmp:
        if Path(path).suffix.lower() == ".npz":
            with open(tmp, "wb") as fh:  # a file object, so numpy does not append '.npz' to the temp name
                np.savez_compressed(fh, **{k: np.array(v) for k, v in scalars.items()},
                                    **{k: np.array(str(v)) for k, v in ref.attrs.items() if k not in reserved},
                                    **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                write_root_attrs(f, FORMAT, SCHEMA_VERSION, {}, **scalars)
                for k, v in ref.attrs.items():
                    if k not in reserved:
                        f.attrs[k] = str(v)
                for k, v in arrays.items():
                    f.create_dataset(k, data=v, compression="gzip" if v.ndim > 1 else None)
    ref.path = str(path)
