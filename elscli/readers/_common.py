"""What every reader returns (:class:`RawImages`), and the byte-level helpers readers share (gzip, peeking,
permission errors).

The pixel map (8-bit codes, value ranges) and label coercion live in :mod:`elscli.pixels`."""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import ElscliError, reason


@dataclass
class RawImages:
    """A reader's output, before selection, colour conversion and resizing.

    ``images`` is one ``(N, C, H, W)`` array, or a list of ``(C, H, W)`` arrays when the sizes (or channel
    counts) differ (image folders).  When ``eight_bit`` the arrays are ``uint8`` codes (0..255, pixel value
    ``code/127.5 - 1``); otherwise they are ``float32`` already on the [-1, 1] scale.
    """

    images: Union[np.ndarray, List[np.ndarray]]
    labels: np.ndarray
    eight_bit: bool
    source: Dict[str, Any] = field(default_factory=dict)
    #: per-image description for error messages (e.g. file names); optional
    names: Optional[List[str]] = None

    def __len__(self) -> int:
        return len(self.images)


def refuse_if_permission_denied(exc: BaseException, what: str) -> None:
    """Raise the one-line ElscliError for an unreadable (permission denied) file, so that no reader calls a
    good file it may not read "corrupt"; otherwise return (``what`` names the file in the message)."""
    if isinstance(exc, PermissionError):
        raise ElscliError(f"{what} is not readable (permission denied)") from None


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of a file, gunzipped when it starts with the gzip magic number (1f 8b, RFC 1952).

    Raises
    ------
    ElscliError
        The file is unreadable, a directory, or a corrupt/truncated gzip stream.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                try:
                    return gzip.GzipFile(fileobj=fh).read()
                except (OSError, EOFError, zlib.error) as exc:
                    raise ElscliError(f"{str(path)!r} is a corrupt or truncated gzip file ({reason(exc)})") from None
            return fh.read()
    except PermissionError:
        raise ElscliError(f"{str(path)!r} is not readable (permission denied)") from None
    except IsADirectoryError:
        raise ElscliError(f"{str(path)!r} is a directory, expected a file") from None


def peek(path: Path, n: int = 16) -> bytes:
    """The first ``n`` bytes of a file (after gunzip when it is gzipped); ``b''`` when unreadable (never raises)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(n)
            if head[:2] == b"\x1f\x8b":
                fh.seek(0)
                try:
                    return gzip.GzipFile(fileobj=fh).read(n)
                except (OSError, EOFError, zlib.error):
                    return b""
            return head
    except OSError:
        return b""
