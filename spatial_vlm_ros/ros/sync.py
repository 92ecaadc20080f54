"""Approximate-time synchroniser: match messages of several streams by their header stamps.

ROS-free (stamps are float seconds, items are opaque) so that it is unit-testable. Each stream ("slot")
keeps a bounded queue. When a message arrives, the set with the smallest stamp spread that contains it and
one message from every other slot is emitted if its spread (max - min stamp) is at most ``slop`` seconds.
Emitted messages and everything older in their slots are removed (a newer set has been formed, so older
messages can only be stale). Messages pushed out of a full queue or removed as stale are counted as dropped.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence


@dataclass
class SyncStats:
    """Counters of a synchroniser since creation or ``reset``."""

    received: int = 0                                   # messages added
    matched_sets: int = 0                               # complete sets emitted
    dropped: dict = field(default_factory=dict)         # slot -> messages discarded without being matched
    last_unmatched_spread: float | None = None          # spread (s) of the newest stamps when no set matched

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))


class ApproximateTimeSynchronizer:
    """Match one message per slot whose header stamps (seconds) lie within ``slop`` of each other.

    Thread-safe: ``add`` may be called from several callback threads.
    """

    def __init__(self, slots: Sequence[Hashable], slop: float, queue_size: int = 10):
        if len(slots) < 1 or len(set(slots)) != len(slots):
            raise ValueError("slots must be a non-empty sequence of distinct names")
        if not slop >= 0.0:
            raise ValueError("slop must be >= 0 seconds")
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.slots = tuple(slots)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self._queues: dict[Hashable, deque] = {s: deque() for s in self.slots}
        self._lock = threading.Lock()
        self.stats = SyncStats(dropped={s: 0 for s in self.slots})

    def add(self, slot: Hashable, stamp: float, item: Any) -> dict | None:
        """Add one message; return ``{slot: item}`` for a completed set, else None.

        Messages are kept sorted by stamp; a message with the same stamp as one already queued in its slot
        replaces it (a duplicate).
        """
        if slot not in self._queues:
            raise KeyError(f"unknown slot {slot!r}; slots are {self.slots}")
        stamp = float(stamp)
        with self._lock:
            self.stats.received += 1
            queue = self._queues[slot]
            self._insert(slot, queue, stamp, item)
            match = self._best_set(slot, stamp)
            if match is None:
                self._record_unmatched()
                return None
            self.stats.matched_sets += 1
            self.stats.last_unmatched_spread = None
            result = {}
            for s, (t, it) in match.items():
                result[s] = it
                q = self._queues[s]
                while q and q[0][0] <= t:          # the matched message and everything older
                    old_t, _ = q.popleft()
                    if old_t != t:
                        self.stats.dropped[s] += 1
            return result

    def reset(self) -> None:
        """Forget all queued messages and counters."""
        with self._lock:
            for q in self._queues.values():
                q.clear()
            self.stats = SyncStats(dropped={s: 0 for s in self.slots})

    def pending(self) -> dict:
        """Number of queued messages per slot."""
        with self._lock:
            return {s: len(q) for s, q in self._queues.items()}

    # ------------------------------------------------------------------------------------------ internals
    def _insert(self, slot, queue: deque, stamp: float, item) -> None:
        for i, (t, _) in enumerate(queue):
            if t == stamp:
                queue[i] = (stamp, item)
                return
        queue.append((stamp, item))
        if len(queue) > 1 and queue[-2][0] > stamp:
            ordered = sorted(queue, key=lambda entry: entry[0])
            queue.clear()
            queue.extend(ordered)
        while len(queue) > self.queue_size:
            queue.popleft()
            self.stats.dropped[slot] += 1

    def _best_set(self, pivot_slot, pivot_stamp: float) -> dict | None:
        """Among sets containing the new message, the one with the smallest spread if it is <= slop."""
        candidates = []
        for s in self.slots:
            if s == pivot_slot:
                candidates.append([(pivot_stamp, self._item(s, pivot_stamp))])
                continue
            near = [(t, it) for t, it in self._queues[s] if abs(t - pivot_stamp) <= self.slop]
            if not near:
                return None
            candidates.append(near)
        best, best_spread = None, None
        for combo in itertools.product(*candidates):
            stamps = [t for t, _ in combo]
            spread = max(stamps) - min(stamps)
            if spread <= self.slop and (best_spread is None or spread < best_spread):
                best, best_spread = combo, spread
        if best is None:
            return None
        return dict(zip(self.slots, best))

    def _item(self, slot, stamp: float):
        for t, it in self._queues[slot]:
            if t == stamp:
                return it
        raise KeyError(stamp)

    def _record_unmatched(self) -> None:
        if all(self._queues[s] for s in self.slots):
            newest = [self._queues[s][-1][0] for s in self.slots]
            self.stats.last_unmatched_spread = max(newest) - min(newest)
