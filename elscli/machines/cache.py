"""The one cache of the machines: objects built from a training set, kept by a key that names its content.

Every key starts with the :attr:`TrainingSet.key <.training_set.TrainingSet.key>` of the images the object
was built from — a hash of their bytes, never an ``id()`` — and goes on with whatever else the object
depends on (the dictionary's index set, P, the machine, the kernel options).  A cache can therefore never
return an object built from data that are no longer there: changed data have another key.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class ContentCache:
    """At most ``size`` built objects by content key; the least recently used is dropped first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache holds at least one entry, not {size}")
        self.size = int(size)
        self._entries: "OrderedDict[Hashable, object]" = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The object under ``key``, built by ``build()`` (and kept) when it is not held."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]  # type: ignore[return-value]
        value = build()
        self._entries[key] = value
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
