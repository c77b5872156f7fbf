"""CIFAR-10 / CIFAR-100 "python version" batches: the extracted directory, one batch file, or the .tar.gz.

Each batch is a pickled dict with ``b'data'`` (N, 3072) uint8 — 1024 red, 1024 green, 1024 blue values, each
a 32×32 image in row-major order, i.e. exactly (N, 3, 32, 32) — and ``b'labels'`` (CIFAR-10) or
``b'fine_labels'`` / ``b'coarse_labels'`` (CIFAR-100; fine unless ``coarse``).  A directory or archive gives
its training set: CIFAR-10 ``data_batch_1..5``, CIFAR-100 ``train``.  Pickles are loaded with a restricted
unpickler that only builds plain containers and NumPy arrays (a batch file cannot run code).
"""
from __future__ import annotations

import io
import pickle
import re
import tarfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ElscliError, reason
from ..pixels import as_labels
from ._common import RawImages, refuse_if_permission_denied

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("copyreg", "_reconstructor"),
    ("builtins", "object"), ("_codecs", "encode"),  # Python 3 protocol-2 pickles build bytes with it
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            import importlib
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_pickle(data: bytes, what: str) -> Dict[bytes, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ElscliError(f"{what} is not a readable CIFAR python batch ({reason(exc)})") from None
    if not isinstance(obj, dict):
        raise ElscliError(f"{what} is not a CIFAR python batch (holds a {type(obj).__name__}, not a dict)")
    return {(k.encode() if isinstance(k, str) else k): v for k, v in obj.items()}


def is_cifar_pickle(path: Path) -> bool:
    """Whether ``path`` starts like a pickle of protocol 2 to 5 (as CIFAR's python batches are)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and head[1] in (2, 3, 4, 5)


def _batch_names(names: List[str]) -> Tuple[List[str], Optional[str], str]:
    """(training batch names in order, meta name, variant) among the base names of a CIFAR directory."""
    base = {n.rsplit("/", 1)[-1]: n for n in names}
    c10 = sorted((b for b in base if re.fullmatch(r"data_batch_\d+", b)), key=lambda b: int(b.rsplit("_", 1)[1]))
    if c10:
        return [base[b] for b in c10], base.get("batches.meta"), "cifar10"
    if "train" in base:
        return [base["train"]], base.get("meta"), "cifar100"
    return [], None, ""


def looks_like_cifar_dir(path: Path) -> bool:
    """Whether a directory holds CIFAR-10 ``data_batch_N`` or CIFAR-100 ``train`` pickles."""
    names = [p.name for p in path.iterdir() if p.is_file()]
    batches, _, _ = _batch_names(names)
    return bool(batches) and all(is_cifar_pickle(path / Path(b).name) for b in batches)


def _decode_batches(batches: List[Tuple[str, Dict[bytes, Any]]], coarse: bool) -> Tuple[np.ndarray, np.ndarray, str]:
    imgs, labs = [], []
    key_used = ""
    for what, d in batches:
        if b"data" not in d:
            raise ElscliError(f"{what} has no b'data' entry; not a CIFAR python batch")
        data = np.asarray(d[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ElscliError(f"{what}: b'data' has shape {data.shape} dtype {data.dtype}, expected (N, 3072) uint8")
        keys = [b"coarse_labels"] if coarse else [b"labels", b"fine_labels"]
        key = next((k for k in keys if k in d), None)
        if key is None:
            have = ", ".join(repr(k) for k in d if k != b"data")
            raise ElscliError(f"{what} has no {' or '.join(repr(k) for k in keys)} entry (has {have})")
        key_used = key.decode()
        labs.append(as_labels(np.asarray(d[key]), data.shape[0], what))
        imgs.append(data.reshape(-1, 3, 32, 32))
    return np.concatenate(imgs), np.concatenate(labs), key_used


def _label_names(meta: Optional[Dict[bytes, Any]], key: str) -> Optional[Dict[str, str]]:
    if meta is None:
        return None
    mkey = {"labels": b"label_names", "fine_labels": b"fine_label_names", "coarse_labels": b"coarse_label_names"}[key]
    names = meta.get(mkey)
    if not isinstance(names, (list, tuple)):
        return None
    return {str(i): (n.decode() if isinstance(n, bytes) else str(n)) for i, n in enumerate(names)}


def _is_tarfile(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (EOFError, zlib.error) as exc:
        raise ElscliError(f"{str(path)!r} is a corrupt or truncated archive ({reason(exc)})") from None
    except OSError as exc:
        refuse_if_permission_denied(exc, repr(str(path)))
        raise ElscliError(f"{str(path)!r} cannot be read ({reason(exc)})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        refuse_if_permission_denied(exc, repr(str(path)))
        raise ElscliError(f"{str(path)!r} cannot be read ({exc.strerror or exc})") from None


def read_cifar(path: Path, coarse: bool = False) -> RawImages:
    """Read CIFAR-10/100 training batches (directory, one batch file or ``.tar.gz``): (N, 3, 32, 32) uint8.

    Labels (N,) int64: CIFAR-10 ``labels``, CIFAR-100 ``fine_labels`` (``coarse_labels`` with ``coarse``);
    class names from the ``meta`` file when present.  Raises ElscliError for archives or pickles that are
    corrupt, unreadable, hold no batches, or hold other objects than plain containers and arrays.
    """
    path = Path(path)
    meta = None
    if path.is_dir():
        names = [p.name for p in path.iterdir() if p.is_file()]
        batch_names, meta_name, variant = _batch_names(names)
        if not batch_names:
            raise ElscliError(f"directory {str(path)!r} holds no CIFAR batches (data_batch_N or train)")
        loaded = [(repr(str(path / b)), _load_pickle(_read_bytes(path / b), repr(str(path / b))))
                  for b in batch_names]
        if meta_name:
            meta = _load_pickle(_read_bytes(path / meta_name), repr(str(path / meta_name)))
        files = [str(path / b) for b in batch_names]
    elif _is_tarfile(path):
        try:
            with tarfile.open(path, "r:*") as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                batch_names, meta_name, variant = _batch_names(list(members))
                if not batch_names:
                    raise ElscliError(f"archive {str(path)!r} holds no CIFAR batches (data_batch_N or train)")
                loaded = []
                for b in batch_names:
                    what = f"{b!r} in {str(path)!r}"
                    loaded.append((what, _load_pickle(tar.extractfile(members[b]).read(), what)))
                if meta_name:
                    meta = _load_pickle(tar.extractfile(members[meta_name]).read(), f"{meta_name!r} in {str(path)!r}")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            refuse_if_permission_denied(exc, repr(str(path)))
            raise ElscliError(f"{str(path)!r} is a corrupt or truncated archive ({reason(exc)})") from None
        files = [f"{path}:{b}" for b in batch_names]
    else:  # a single batch file
        loaded = [(repr(str(path)), _load_pickle(_read_bytes(path), repr(str(path))))]
        variant = "cifar100" if b"fine_labels" in loaded[0][1] else "cifar10"
        files = [str(path)]
        for mname in ("batches.meta", "meta"):
            if (path.parent / mname).is_file() and path.name != mname:
                meta = _load_pickle(_read_bytes(path.parent / mname), repr(str(path.parent / mname)))
                break
    images, labels, key = _decode_batches(loaded, coarse)
    source = {"reader": "cifar", "variant": variant, "path": str(path), "files": files, "label_key": key,
              "native_shape": [3, 32, 32], "n_source": int(images.shape[0])}
    names = _label_names(meta, key)
    if names:
        source["label_names"] = names
    return RawImages(images=images, labels=labels, eight_bit=True, source=source)
