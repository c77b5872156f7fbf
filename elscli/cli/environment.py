"""The process environment, read here and only here (the CLI edge): Slurm array tasks, CPU counts, stop grace.

The library computes exactly what it is asked for (``elscli.sample(...)`` without ``shard`` computes every
sample, without ``threads`` uses Numba's setting); the commands turn the environment into those arguments:

- ``--shard`` defaults to the Slurm array task's shard (:func:`shard_from_slurm`), else ``0/1``;
- ``--threads`` defaults to ``SLURM_CPUS_PER_TASK``, else the cores this process may run on;
- the grace time of a stop request comes from ``ELSCLI_STOP_GRACE`` (seconds, default 20);
- the machines keep their patch trees between processes in :func:`tree_cache_dir` (``ELSCLI_TREE_CACHE``,
  ``ELSCLI_CACHE``);
- ``sample`` without ``--bank`` builds the bundled sample bank into :func:`cache_dir` (``ELSCLI_CACHE``) from
  :func:`sample_data_dir` (``ELSCLI_SAMPLE_DATA``);
- plain progress lines (not on a terminal) come every :func:`progress_interval` seconds
  (``ELSCLI_PROGRESS_INTERVAL``, default 10);
- ``ELSCLI_DEBUG`` (read by :func:`elscli.cli.main`) shows tracebacks.

No module outside :mod:`elscli.cli` reads the environment (``tests/test_imports.py`` checks it): the library
takes all of these as arguments, with the defaults its docstrings give.

(``--bank`` reads ``ELSCLI_BANK`` through Typer's ``envvar``.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from ..errors import ElscliError
from ..shards import WHOLE, Shard, ShardSpec, parse_shard

#: The variables Slurm sets in every task of a job array (``sbatch --array``).
SLURM_ARRAY_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                    "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT")
DEFAULT_STOP_GRACE = 20.0


def _environ(env: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return os.environ if env is None else env


def shard_from_slurm(env: Optional[Mapping[str, str]] = None) -> Optional[Shard]:
    """The shard of this Slurm array task, or None outside a job array.

    Slurm numbers the tasks of ``--array=MIN-MAX:STEP`` MIN, MIN+STEP, ..., MAX (``SLURM_ARRAY_TASK_ID``) and
    sets ``SLURM_ARRAY_TASK_MIN/MAX/STEP/COUNT``.  For such an arithmetic array (0-based, 1-based or with
    a step) task ID is shard ``(ID - MIN) / STEP`` of ``COUNT``.  Missing MIN, STEP, MAX default to 0, 1 and
    MIN + STEP·(COUNT-1).

    Raises
    ------
    ElscliError
        The variables are not integers, or the task IDs are not an arithmetic range that includes this ID
        (``--array=1,3,5``, a resubmission of some tasks): the message names the variables and asks for an
        explicit ``--shard I/N``.
    """
    env = _environ(env)
    if env.get("SLURM_ARRAY_TASK_ID") in (None, ""):
        return None
    shown = ", ".join(f"{k}={env[k]}" for k in SLURM_ARRAY_VARS if k in env)
    if env.get("SLURM_ARRAY_TASK_COUNT") in (None, ""):
        raise ElscliError(f"in a Slurm array task ({shown}) without SLURM_ARRAY_TASK_COUNT the shard is unknown; "
                          "pass --shard I/N")
    try:
        tid = int(env["SLURM_ARRAY_TASK_ID"])
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
        lo = int(env.get("SLURM_ARRAY_TASK_MIN") or 0)
        step = int(env.get("SLURM_ARRAY_TASK_STEP") or 1)
        hi = int(env.get("SLURM_ARRAY_TASK_MAX") or lo + step * (count - 1))
    except ValueError:
        raise ElscliError(f"the Slurm array variables are not integers ({shown}); pass --shard I/N") from None
    arithmetic = count >= 1 and step >= 1 and lo + step * (count - 1) == hi
    if not (arithmetic and lo <= tid <= hi and (tid - lo) % step == 0):
        raise ElscliError(f"cannot map this Slurm array task to a shard ({shown}): its task IDs are not the "
                          "arithmetic range MIN, MIN+STEP, ..., MAX (an --array list such as 1,3,5, or a "
                          "resubmission of some tasks?); pass --shard I/N explicitly (I in 0..N-1; to resubmit "
                          "tasks of an array 0..N-1: --shard $SLURM_ARRAY_TASK_ID/N)")
    return (tid - lo) // step, count


def resolve_shard(spec: ShardSpec, env: Optional[Mapping[str, str]] = None) -> Shard:
    """``--shard``: an explicit ``I/N`` wins; else this Slurm array task's shard; else ``(0, 1)``.

    Raises ElscliError for a malformed ``I/N`` or an array task that cannot be mapped
    (:func:`shard_from_slurm`).
    """
    if spec is not None and spec != "":
        return parse_shard(spec)
    from_env = shard_from_slurm(env)
    return WHOLE if from_env is None else parse_shard(from_env)


def resolve_threads(threads: Optional[int] = None, env: Optional[Mapping[str, str]] = None) -> int:
    """``--threads``: given, else ``SLURM_CPUS_PER_TASK``, else the cores available to this process.

    Raises ElscliError when ``SLURM_CPUS_PER_TASK`` is not an integer or the count is below 1.
    """
    env = _environ(env)
    if threads is None:
        value = env.get("SLURM_CPUS_PER_TASK")
        if value:
            try:
                threads = int(value)
            except ValueError:
                raise ElscliError(f"SLURM_CPUS_PER_TASK={value!r} is not an integer") from None
        else:
            try:
                threads = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                threads = os.cpu_count() or 1
    if threads < 1:
        raise ElscliError(f"--threads must be at least 1, got {threads}")
    return int(threads)


def stop_grace(env: Optional[Mapping[str, str]] = None) -> float:
    """Seconds a stop request may wait for the samples in flight: ``$ELSCLI_STOP_GRACE``, default 20 (Slurm
    sends SIGKILL 30 s after SIGTERM by default); an unreadable value gives the default."""
    try:
        return float(_environ(env).get("ELSCLI_STOP_GRACE", DEFAULT_STOP_GRACE))
    except ValueError:
        return DEFAULT_STOP_GRACE


def cache_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    """Where elscli keeps derived files (the bundled sample bank, patch trees): ``$ELSCLI_CACHE``, else
    ``~/.cache/elscli`` (:func:`elscli.sample_data.cache_dir`; not created here)."""
    from ..sample_data import cache_dir as library_cache_dir

    return library_cache_dir(_environ(env).get("ELSCLI_CACHE") or None)


def sample_data_dir(env: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """``$ELSCLI_SAMPLE_DATA``: where the bundled ``sample_data/`` is, or None (the library looks beside the
    package, then in the current directory: :func:`elscli.sample_data.sample_data_dir`)."""
    value = _environ(env).get("ELSCLI_SAMPLE_DATA")
    return Path(value) if value else None


def progress_interval(env: Optional[Mapping[str, str]] = None) -> float:
    """Seconds between plain progress lines (stderr not a terminal): ``$ELSCLI_PROGRESS_INTERVAL``, else
    :data:`elscli.progress.DEFAULT_INTERVAL` (10); a value that is not a number gives the default."""
    from ..progress import DEFAULT_INTERVAL

    try:
        return float(_environ(env).get("ELSCLI_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL


def tree_cache_dir(env: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Where the machines keep their patch trees between processes (:func:`elscli.machines.set_tree_cache`):
    ``$ELSCLI_TREE_CACHE`` (empty, ``0`` or ``off``: nowhere, None), else ``$ELSCLI_CACHE/patch-trees``, else
    ``~/.cache/elscli/patch-trees``."""
    env = _environ(env)
    value = env.get("ELSCLI_TREE_CACHE")
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "none") else Path(value)
    return cache_dir(env) / "patch-trees"
