"""Writing output files so that no writer destroys another's work: claims, then atomic renames.

Every file elscli writes (banks, runs, scans, references, schedules, PNGs, NPZ exports) is written by a
process that first **claims** it: an exclusive advisory lock (``flock``) on a lock file ``.NAME.lock`` beside
``NAME``, taken before the output is checked or touched and held until the output is in place.  A second
writer of the same output — another process, ``--force`` or not — finds the claim held and is refused with
one line, touching nothing; only then is an existing output checked (refused unless ``force``).  The data
are written under a unique temporary name beside the output and renamed into place when complete, so a file
that exists is whole and a reader never sees a half-written one.  Files written in place over a long time
(a run's ``RUN.h5.partial``) are touched only while their output's claim is held.

The lock file is removed when the claim is released (a process killed with SIGKILL leaves an unlocked one,
which the next writer takes over).  Claims are advisory and work between elscli processes; on filesystems
without ``flock`` (some Lustre mounts) writers proceed unclaimed, as before: each file is still whole.
"""
from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from .errors import ElscliError, reason

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writers proceed unclaimed
    fcntl = None

#: errno values meaning "this filesystem cannot lock": the writer then proceeds unclaimed.
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}
_held: Dict[str, int] = {}             # lock path -> how many claims of this process share it
_held_fds: Dict[str, Optional[int]] = {}
_held_guard = threading.Lock()


#: Output directories a command has named but not created yet (:func:`declare_output_dir`), absolute paths.
_pending_dirs: set = set()
#: Directories this process created for its outputs, in order (:func:`remove_created_dirs` on failure).
_created_dirs: list = []


def declare_output_dir(path: os.PathLike | str, option: str = "-o") -> Path:
    """Check an output directory (``option`` names it in messages) and remember it; it is created only when a
    file is written into it (by :func:`claim_output`), so a command that fails first leaves no empty directory.

    Returns the path.  Raises ElscliError when it is a file, or its parent does not exist or is not writable.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ElscliError(f"{option} {str(path)!r} is a file, not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ElscliError(f"{option} {str(path)!r}: directory not writable (permission denied)")
    else:
        _check_directory(path, what=f"{option} {str(path)!r}")
    _pending_dirs.add(os.path.abspath(path))
    return path


def remove_created_dirs() -> None:
    """Remove the output directories this process created, when they are still empty (a failed command
    leaves the file system as it found it); forget them and the declared ones either way."""
    while _created_dirs:
        d = _created_dirs.pop()
        with contextlib.suppress(OSError):
            os.rmdir(d)
    _pending_dirs.clear()


def forget_output_dirs() -> None:
    """Forget the declared and created output directories (a command finished; the next starts afresh)."""
    _created_dirs.clear()
    _pending_dirs.clear()


def _reason(exc: OSError) -> str:
    """The operating system's reason for a failed file operation, without the (temporary) file names it
    mentions: ``strerror``, or the ``error message`` of an HDF5 error, or the first line."""
    import re

    if exc.strerror:
        return exc.strerror
    text = str(exc)
    m = re.search(r"error message = '([^']*)'", text)
    if m:
        return m.group(1)
    first = text.splitlines()[0] if text else reason(exc)
    return re.sub(r"[^\s'\"]*\.tmp-\d+-[0-9a-f]+", "(temporary file)", first)


def file_output(path: os.PathLike | str | None, option: str = "-o") -> Optional[Path]:
    """An output option that names a **file** (``option`` names it in messages), checked as typed, before any
    work: None stays None; an empty name, a name ending in ``/``, ``.`` or ``..``, or an existing directory
    is refused (a file option never writes into a directory, nor replaces one).

    Returns the path; raises :class:`ElscliError` otherwise."""
    if path is None:
        return None
    text = os.fspath(path)
    if not text.strip():
        raise ElscliError(f"{option} needs a file name, got an empty one")
    if text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise ElscliError(f"{option} {text!r} names a directory; give a file name")
    if os.path.isdir(text):
        raise ElscliError(f"{option} {text!r} is a directory; give a file name")
    return Path(text)


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same resolved path (``./x`` and ``x``, symlinks), or,
    both existing, the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_same_files(inputs: Sequence[Tuple[str, Any]], outputs: Sequence[Tuple[str, Any]]) -> None:
    """Refuse, before any work, an output that is the same file as an input or as another output of the
    same command — one would destroy the other (``sample -o x.h5 --png x.h5``; ``sample --bank b.h5 -o b.h5
    --force``).  ``inputs``/``outputs`` are ``(option, path)`` pairs (a None path is skipped); files are
    compared by :func:`os.path.realpath` and, when they exist, :func:`os.path.samefile`.

    Raises :class:`ElscliError` naming both options."""
    outs = [(o, os.fspath(p)) for o, p in outputs if p is not None]
    ins = [(o, os.fspath(p)) for o, p in inputs if p is not None]
    for i, (o, p) in enumerate(outs):
        for o2, p2 in ins:
            if _same_file(p, p2):
                what = f"{o2} {p2!r}" if o2 else repr(p2)
                raise ElscliError(f"{o} {p!r} is the input {what} (one of the inputs): write the result to "
                                  f"another file (nothing was touched)")
        for o2, p2 in outs[:i]:
            if _same_file(p, p2):
                raise ElscliError(f"{o} {p!r} and {o2} {p2!r} are the same file; give two different names")


def check_output_path(path: os.PathLike | str, force: bool = False, *, allow_existing: bool = False) -> Path:
    """Validate an output path before any work is done: its directory must exist and be writable, and an
    existing file is refused unless ``force`` (or ``allow_existing``, e.g. for ``--resume``).

    Returns the path; raises :class:`ElscliError` otherwise."""
    path = Path(path)
    _check_directory(path)
    if path.is_dir():
        raise ElscliError(f"output {str(path)!r} is a directory")
    if path.exists() and not (force or allow_existing):
        raise ElscliError(f"output {str(path)!r} exists; pass --force to overwrite")
    return path


def _check_directory(path: Path, what: Optional[str] = None) -> Path:
    """The directory of an output path, created if it is a declared output directory
    (:func:`declare_output_dir`); ElscliError when it does not exist, is a file, or is not writable."""
    parent = path.parent if str(path.parent) else Path(".")
    what = what or f"output {str(path)!r}"
    if not parent.is_dir():
        if os.path.abspath(parent) in _pending_dirs and not parent.exists() and parent.parent.is_dir():
            try:
                os.mkdir(parent)
            except OSError as exc:
                raise ElscliError(f"cannot create directory {str(parent)!r} for {what}: {_reason(exc)}") from None
            _created_dirs.append(str(parent))
            return parent
        ancestor = parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            raise ElscliError(f"{what}: {str(ancestor)!r} is a file, not a directory")
        raise ElscliError(f"{what}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ElscliError(f"{what}: directory {str(parent)!r} is not writable (permission denied)")
    return parent


def refuse_input_as_output(output: os.PathLike | str, inputs, option: str = "-o") -> None:
    """Refuse an output that is one of the command's own inputs (``build-bank b.h5 -o b.h5 --force``):
    :func:`refuse_same_files` with one output; ``inputs`` are paths (None entries and objects are skipped).

    Raises ElscliError naming both.
    """
    refuse_same_files([("", p) for p in inputs if isinstance(p, (str, os.PathLike))], [(option, output)])


def temp_path_for(path: os.PathLike | str) -> Path:
    """A unique temporary name beside ``path`` (same filesystem, so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def lock_path_for(path: os.PathLike | str) -> Path:
    """The lock file of an output: ``.NAME.lock`` beside ``NAME``."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _try_lock(fd: int, wait: float) -> bool:
    """flock(LOCK_EX) on ``fd``: True when taken (or when the filesystem cannot lock), False when another
    open file holds it after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                return True
            raise


def _acquire(lock: Path, what: Path, wait: float) -> Optional[int]:
    """Open and lock ``lock`` (created if need be), making sure the name still refers to the file locked
    (a releasing holder unlinks it); the file descriptor, or None where locks are unsupported."""
    if fcntl is None:
        return None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ElscliError(f"cannot write {str(what)!r}: {_reason(exc)} (creating a file in "
                              f"{str(what.parent if str(what.parent) else '.')!r} failed)") from None
        try:
            if not _try_lock(fd, wait):
                raise ElscliError(f"{str(what)!r} is being written by another process (it holds {lock.name}); "
                                  f"nothing was touched: wait for it to finish or write elsewhere")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)   # the holder released and removed it meanwhile: lock the file now there


@contextlib.contextmanager
def claim_output(path: os.PathLike | str, force: bool = False, *, allow_existing: bool = False,
                 wait: float = 0.0, check: bool = True) -> Iterator[Path]:
    """Hold the claim on output ``path`` (see the module docstring) for the ``with`` block.

    Taken first, then the path is checked (:func:`check_output_path` with ``force``/``allow_existing``;
    ``check=False`` skips that, e.g. for an output directory whose files the caller checks).  A claim held
    by another process raises :class:`ElscliError` at once (or after ``wait`` seconds); claims of the same
    output nest within one process.  Yields the path."""
    path = Path(path)
    if path.name in ("", ".") or (check and path.name == ".."):
        raise ElscliError(f"output {str(path)!r} names a directory; give a file name")
    parent = _check_directory(path)
    lock = lock_path_for(path)
    key = os.path.join(os.path.realpath(parent), lock.name)
    with _held_guard:
        nested = key in _held
        if nested:
            _held[key] += 1
    if not nested:
        fd = _acquire(lock, path, wait)
        with _held_guard:
            _held[key], _held_fds[key] = 1, fd
    try:
        yield check_output_path(path, force, allow_existing=allow_existing) if check else path
    finally:
        with _held_guard:
            _held[key] -= 1
            last = _held[key] == 0
            if last:
                del _held[key]
                fd = _held_fds.pop(key)
        if last and fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)    # before unlocking: a waiting writer then locks a fresh lock file
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: os.PathLike | str, force: bool = False) -> Iterator[Path]:
    """Claim ``path``, yield a temporary path beside it to write, and on success rename it into place;
    on any error remove it.  A claim held by another writer, or an existing file without ``force``, raises
    :class:`ElscliError` before anything is written.

    >>> with atomic_output("bank.h5") as tmp:
    ...     write_everything(tmp)
    """
    with claim_output(path, force) as path:
        tmp = temp_path_for(path)
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as exc:     # the user's path and the reason, never the temporary name
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise ElscliError(f"cannot write {str(path)!r}: {_reason(exc)}") from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
