"""Newest-only hand-off from message callbacks to one processing thread.

Callbacks ``put`` complete frame sets and never block; the worker always takes the NEWEST set. A set that
is replaced before the worker took it is dropped and counted, so a slow pipeline skips stale frames instead
of building a queue. ROS-free.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class LatestOnlyQueue:
    """A one-slot mailbox: ``put`` replaces any item not yet taken (counted in ``dropped``)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; return True if it replaced an untaken (now dropped) item."""
        with self._cond:
            replaced = self._has_item
            if replaced:
                self.dropped += 1
            self._item, self._has_item = item, True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def get(self, timeout: float | None = None) -> Any:
        """Take the newest item, waiting up to ``timeout`` seconds; None on timeout or after ``close``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def clear(self) -> None:
        """Discard an untaken item without counting it as dropped (e.g. on reset)."""
        with self._cond:
            self._item, self._has_item = None, False

    def close(self) -> None:
        """Wake up waiters; later ``get`` calls return None immediately."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class FrameWorker:
    """A thread that feeds the newest item of a ``LatestOnlyQueue`` to ``process`` at most ``max_rate_hz``.

    ``process`` must not raise; a raised exception is passed to ``on_error`` and the loop goes on.
    Not a daemon thread: call ``stop()`` (joins) before the process exits.
    """

    def __init__(self, queue: LatestOnlyQueue, process: Callable[[Any], None], max_rate_hz: float = 0.0,
                 on_error: Callable[[BaseException], None] | None = None, name: str = "frame-worker"):
        self.queue = queue
        self._process = process
        self._min_period = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self._last_start = -float("inf")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end, wake it and join it (the item being processed is finished first)."""
        self._stop.set()
        self.queue.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._last_start + self._min_period - time.monotonic()
            if wait > 0 and self._stop.wait(wait):   # rate limit: newer sets keep replacing the item
                break
            item = self.queue.get(timeout=0.2)
            if item is None:
                continue
            self._last_start = time.monotonic()
            try:
                self._process(item)
            except Exception as err:  # noqa: BLE001 - the worker must survive any bad frame
                if self._on_error is not None:
                    self._on_error(err)
