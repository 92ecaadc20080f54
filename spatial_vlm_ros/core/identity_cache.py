"""``IdentityCache``: values derived from immutable objects, kept while those objects live.

Scene snapshots and their arrays are never modified once built (``core.scene``), so what is derived from
one (a KD-tree of an object's points, the support surfaces' object views) can be computed once and reused
by every query about that snapshot. Entries are keyed by the object's identity, checked through a weak
reference (an address reused by a later object never hits an old entry), and dropped when the object is
freed. Objects that cannot be weakly referenced are not cached.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """``get(obj, make, key)``: ``make()``'s value for ``obj`` (and ``key``), built once per live object."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, Hashable, V]] = {}   # single dict operations: thread-safe

    def get(self, obj: Any, make: Callable[[], V], key: Hashable = None) -> V:
        ident = id(obj)
        entry = self._entries.get(ident)
        if entry is not None and entry[0]() is obj and entry[1] == key:
            return entry[2]
        value = make()
        try:
            ref = weakref.ref(obj, self._forget_callback(ident))
        except TypeError:                  # not weak-referenceable (e.g. a list): not cached
            return value
        self._entries[ident] = (ref, key, value)
        return value

    def _forget_callback(self, ident: int) -> Callable[[weakref.ref], None]:
        entries = self._entries

        def forget(ref: weakref.ref) -> None:
            entry = entries.get(ident)
            if entry is not None and entry[0] is ref:      # not a newer entry at a reused address
                entries.pop(ident, None)
        return forget

    def __contains__(self, obj: Any) -> bool:
        entry = self._entries.get(id(obj))
        return entry is not None and entry[0]() is obj

    def __len__(self) -> int:
        return len(self._entries)
