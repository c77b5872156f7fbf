"""An on-disk cache of arrays built from a bank (the machines' patch trees), keyed by content.

Building a patch tree for mnist-5k takes about a second per patch size, in every process that needs one;
the array tasks of ``elscli sample`` and ``elscli locality-scan`` would each rebuild the same trees.  This
cache keeps such arrays in one ``.npz`` file per key in a directory:

- the **key** is a SHA-256 of everything the arrays depend on (:func:`content_key`: the bank's content hash
  or the image bytes, the dictionary's image indices, the patch size, the builder's version), so a file is
  never used for another bank, subset or code version;
- **writes are atomic**: the arrays go to a temporary file in the same directory, which is flushed and then
  renamed over the final name (``os.replace``), so a reader sees a complete file or none; concurrent writers
  of one key (array tasks starting at once) each write their own temporary file, and the last rename wins
  with the same content;
- a file that cannot be read, or whose stored key or array names differ, is a miss (and is rebuilt), never
  an error: the cache is an optimisation only.

The directory is chosen by the caller (the CLI uses ``$ELSCLI_CACHE/patch-trees``); the library never reads
the environment.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

#: Bumped whenever the layout of cached arrays changes, so that old files become misses.
FORMAT_VERSION = 1


def content_key(*parts) -> str:
    """Hex SHA-256 of ``parts``: strings, numbers and arrays (dtype, shape and bytes), in order."""
    h = hashlib.sha256(f"elscli.array_cache.v{FORMAT_VERSION}".encode())
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"|array:{a.dtype.str}:{a.shape}|".encode())
            h.update(a.tobytes())
        else:
            h.update(f"|{type(p).__name__}:{p}|".encode())
    return h.hexdigest()


class ArrayCache:
    """Named arrays per key, one ``KEY.npz`` file each, in ``directory`` (created on first store)."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str, names: Iterable[str]) -> Optional[Dict[str, np.ndarray]]:
        """The arrays stored under ``key`` (exactly ``names``), or None when absent or unreadable."""
        names = list(names)
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["__key__"]) != key or sorted(set(f.files) - {"__key__"}) != sorted(names):
                    return None
                return {n: f[n] for n in names}
        except Exception:              # absent, truncated, or not an npz: a miss
            return None

    def store(self, key: str, arrays: Dict[str, np.ndarray]) -> Optional[Path]:
        """Write ``arrays`` under ``key`` atomically; returns the path, or None when the directory cannot be
        written (then nothing is cached, and nothing is left behind)."""
        path = self.path(key)
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=self.directory)
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, __key__=np.array(key), **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            return path
        except OSError:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            return None
