"""Approximate-time synchroniser: match messages of several streams by their header stamps.

ROS-free (stamps are float seconds, items are opaque) so that it is unit-testable. Each stream ("slot")
keeps a bounded queue sorted by stamp. When a message arrives, the set with the smallest stamp spread that
contains it and one message from every other slot is emitted if its spread (max - min stamp) is at most
``slop`` seconds. Emitted messages and everything older in their slots are removed (a newer set has been
formed, so older messages can only be stale). Messages pushed out of a full queue or removed as stale are
counted as dropped.

The search is exact and near-linear: the best set's earliest stamp ``m`` is one of the queued stamps in
``[pivot - slop, pivot]``; for each such ``m`` every other slot contributes its first stamp ``>= m``
(bisection), so one ``add`` costs O(slots * n log n) for n queued messages instead of trying every
combination.

Time jumps: a message stamped more than ``restart_jump_s`` before the newest one queued in its slot means
the source's clock went back (looped bag, simulator reset, driver restart); every queued message stamped
more than ``restart_jump_s`` after it is dropped as pre-jump, so that the new stream is not starved by
stale messages a full queue would otherwise keep. ``add`` never raises for any stamp (a non-finite one is
dropped) — only for an unknown slot, which is a programming error.
"""
from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncStats:
    """Counters of a synchroniser since creation or ``reset``.

    Every message added is, at any time, exactly one of: queued (``pending``), emitted in a matched set,
    dropped, or replaced by a later duplicate: ``received == matched_sets * len(slots) + dropped_total +
    duplicates + sum(pending)``.
    """

    received: int = 0                                   # messages added
    matched_sets: int = 0                               # complete sets emitted
    dropped: dict = field(default_factory=dict)         # slot -> messages discarded without being matched
    duplicates: int = 0                                 # queued messages replaced by one with the same stamp
    clock_jumps: int = 0                                # backwards jumps > restart_jump_s seen
    last_unmatched_spread: float | None = None          # spread (s) of the newest stamps when no set matched

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))


class ApproximateTimeSynchronizer:
    """Match one message per slot whose header stamps (seconds) lie within ``slop`` of each other.

    ``restart_jump_s`` (seconds, default ``max(1.0, 2 * slop)``): a backwards stamp jump larger than this
    is a clock restart (see the module docstring). Thread-safe: ``add`` may be called from several
    callback threads.
    """

    def __init__(self, slots: Sequence[Hashable], slop: float, queue_size: int = 10,
                 restart_jump_s: float | None = None):
        if len(slots) < 1 or len(set(slots)) != len(slots):
            raise ValueError("slots must be a non-empty sequence of distinct names")
        if not slop >= 0.0 or not math.isfinite(slop):
            raise ValueError("slop must be a finite number >= 0 seconds")
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if restart_jump_s is None:
            restart_jump_s = max(1.0, 2.0 * float(slop))
        if not restart_jump_s > slop:
            raise ValueError("restart_jump_s must be larger than slop")
        self.slots = tuple(slots)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self.restart_jump_s = float(restart_jump_s)
        self._stamps: dict[Hashable, list[float]] = {s: [] for s in self.slots}    # sorted, per slot
        self._items: dict[Hashable, list] = {s: [] for s in self.slots}             # parallel to _stamps
        self._lock = threading.Lock()
        self.stats = SyncStats(dropped={s: 0 for s in self.slots})

    def add(self, slot: Hashable, stamp: float, item: Any) -> dict | None:
        """Add one message; return ``{slot: item}`` for a completed set, else None.

        Messages are kept sorted by stamp; a message with the same stamp as one already queued in its slot
        replaces it (a duplicate).
        """
        if slot not in self._stamps:
            raise KeyError(f"unknown slot {slot!r}; slots are {self.slots}")
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            stamp = math.nan
        with self._lock:
            self.stats.received += 1
            if not math.isfinite(stamp):
                self.stats.dropped[slot] += 1
                return None
            stamps = self._stamps[slot]
            if stamps and stamp < stamps[-1] - self.restart_jump_s:
                self._drop_after(stamp + self.restart_jump_s)
            if not self._insert(slot, stamp, item):      # evicted at once: older than a full queue
                self._record_unmatched()
                return None
            match = self._best_set(slot, stamp)
            if match is None:
                self._record_unmatched()
                return None
            self.stats.matched_sets += 1
            self.stats.last_unmatched_spread = None
            result = {}
            for s, index in match.items():
                result[s] = self._items[s][index]
                self.stats.dropped[s] += index          # everything older than the matched message
                del self._stamps[s][:index + 1]
                del self._items[s][:index + 1]
            return result

    def reset(self) -> None:
        """Forget all queued messages and counters."""
        with self._lock:
            for s in self.slots:
                self._stamps[s].clear()
                self._items[s].clear()
            self.stats = SyncStats(dropped={s: 0 for s in self.slots})

    def pending(self) -> dict:
        """Number of queued messages per slot."""
        with self._lock:
            return {s: len(q) for s, q in self._stamps.items()}

    # ------------------------------------------------------------------------------------------ internals
    def _insert(self, slot, stamp: float, item) -> bool:
        """Queue a message in stamp order; False if the bounded queue pushed it out at once."""
        stamps, items = self._stamps[slot], self._items[slot]
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp:
            items[i] = item
            self.stats.duplicates += 1
            return True
        stamps.insert(i, stamp)
        items.insert(i, item)
        excess = len(stamps) - self.queue_size
        if excess > 0:
            del stamps[:excess]
            del items[:excess]
            self.stats.dropped[slot] += excess
            return i >= excess
        return True

    def _drop_after(self, limit: float) -> None:
        """A clock restart: drop every queued message stamped after ``limit`` (s)."""
        self.stats.clock_jumps += 1
        for s in self.slots:
            stamps = self._stamps[s]
            k = bisect.bisect_right(stamps, limit)
            if k < len(stamps):
                self.stats.dropped[s] += len(stamps) - k
                del stamps[k:]
                del self._items[s][k:]

    def _best_set(self, pivot_slot, pivot: float) -> dict | None:
        """Among sets containing the new message, the one with the smallest spread if it is <= slop, as
        ``{slot: index in its queue}``. Ties go to the earliest window."""
        others = [s for s in self.slots if s != pivot_slot]
        starts = {pivot}
        for s in others:
            stamps = self._stamps[s]
            if not stamps:
                return None
            lo = bisect.bisect_left(stamps, pivot - self.slop)
            hi = bisect.bisect_right(stamps, pivot)
            starts.update(stamps[lo:hi])
        best, best_spread = None, math.inf
        for m in sorted(starts):
            top, chosen = pivot, {}
            for s in others:
                stamps = self._stamps[s]
                j = bisect.bisect_left(stamps, m)
                if j == len(stamps):
                    top = math.inf
                    break
                chosen[s] = j
                top = max(top, stamps[j])
            spread = top - m
            if spread <= self.slop and spread < best_spread:
                best, best_spread = chosen, spread
        if best is None:
            return None
        best[pivot_slot] = bisect.bisect_left(self._stamps[pivot_slot], pivot)
        return best

    def _record_unmatched(self) -> None:
        if all(self._stamps[s] for s in self.slots):
            newest = [self._stamps[s][-1] for s in self.slots]
            self.stats.last_unmatched_spread = max(newest) - min(newest)
