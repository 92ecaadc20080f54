"""Processing statistics of the node and their ``diagnostic_msgs/DiagnosticArray`` form.

``ProcessingStats`` is ROS-free and thread-safe (the worker records, a timer reads). Times are
``time.monotonic()`` seconds; latencies are the worker's processing time per frame (conversion + pipeline).

Levels: ERROR when the most recent frame failed, WARN when it had warnings, when input stamps could not be
matched (within the last period), when no frame was processed for ``stale_after_s`` or while up is assumed
rather than measured (the extra value ``up_assumed``, with ``up_source`` saying where up came from); OK
otherwise.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

RATE_WINDOW_S = 5.0    # frame rate over the frames finished in the last 5 s
UP_ASSUMED = "up_assumed"   # extra value: True while the answers' up is assumed (no support plane measured) ...
UP_SOURCE = "up_source"     # ... and where up came from, in words


@dataclass
class StatsSnapshot:
    """A consistent copy of the statistics at one instant."""

    frames_processed: int
    frames_failed: int
    frame_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    last_frame_age_s: float | None       # since the last processed frame (success or failure)
    last_frame_ok: bool | None
    last_error: str
    last_error_age_s: float | None
    last_warning: str
    last_warning_age_s: float | None
    objects: int


class ProcessingStats:
    """Rolling frame rate and latency percentiles, counts and the last error / warning."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self._latencies = deque(maxlen=window)
        self._finished = deque(maxlen=window)
        self.frames_processed = 0
        self.frames_failed = 0
        self._last_frame_t: float | None = None
        self._last_frame_ok: bool | None = None
        self._last_error, self._last_error_t = "", None
        self._last_warning, self._last_warning_t = "", None
        self._objects = 0

    def record_frame(self, latency_s: float, n_objects: int, warnings=(), now: float | None = None) -> None:
        """A frame processed successfully (``warnings``: its non-fatal problems)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.frames_processed += 1
            self._latencies.append(latency_s)
            self._finished.append(now)
            self._last_frame_t, self._last_frame_ok = now, True
            self._objects = int(n_objects)
            if warnings:
                self._last_warning, self._last_warning_t = "; ".join(warnings), now

    def record_error(self, message: str, now: float | None = None) -> None:
        """A frame rejected (bad input) or failed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.frames_failed += 1
            self._last_frame_t, self._last_frame_ok = now, False
            self._last_error, self._last_error_t = message, now

    def record_warning(self, message: str, now: float | None = None) -> None:
        """A non-fatal problem outside a frame (e.g. input stamps too far apart to be matched)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._last_warning, self._last_warning_t = message, now

    def set_objects(self, n_objects: int) -> None:
        with self._lock:
            self._objects = int(n_objects)

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            lat = np.asarray(self._latencies, dtype=np.float64) * 1e3
            recent = [t for t in self._finished if now - t <= RATE_WINDOW_S]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) >= 2 and recent[-1] > recent[0] \
                else 0.0

            def age(t: float | None) -> float | None:
                return None if t is None else now - t

            return StatsSnapshot(
                frames_processed=self.frames_processed, frames_failed=self.frames_failed,
                frame_rate_hz=float(rate),
                latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else 0.0,
                latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else 0.0,
                last_frame_age_s=age(self._last_frame_t), last_frame_ok=self._last_frame_ok,
                last_error=self._last_error, last_error_age_s=age(self._last_error_t),
                last_warning=self._last_warning, last_warning_age_s=age(self._last_warning_t),
                objects=self._objects)


def status_level(snap: StatsSnapshot, period_s: float, stale_after_s: float, up_assumed_from: str = ""
                 ) -> tuple[bytes, str]:
    """(level, message) for one snapshot; ``up_assumed_from``: where up came from while it is assumed ("" when
    measured). See the module docstring for the rules."""
    if snap.last_frame_ok is False:
        return DiagnosticStatus.ERROR, f"last frame rejected: {snap.last_error}"
    if snap.last_warning_age_s is not None and snap.last_warning_age_s <= period_s:
        return DiagnosticStatus.WARN, snap.last_warning
    if snap.last_frame_age_s is None:
        return DiagnosticStatus.WARN, "no frame processed yet (waiting for a synchronised set)"
    if snap.last_frame_age_s > stale_after_s:
        return DiagnosticStatus.WARN, f"no frame processed for {snap.last_frame_age_s:.1f} s"
    if up_assumed_from:
        return DiagnosticStatus.WARN, (f"up assumed ({up_assumed_from}), not measured from a support plane: "
                                       "vertical answers may be wrong")
    return DiagnosticStatus.OK, f"{snap.frame_rate_hz:.1f} Hz, {snap.objects} objects"


def diagnostic_array(snap: StatsSnapshot, stamp, name: str, hardware_id: str, period_s: float,
                     stale_after_s: float, extra: dict | None = None) -> DiagnosticArray:
    """``DiagnosticArray`` with one status ``name`` holding the statistics as key/values."""
    extra = extra or {}
    assumed_from = str(extra.get(UP_SOURCE, "unknown source")) if extra.get(UP_ASSUMED) is True else ""
    level, message = status_level(snap, period_s, stale_after_s, assumed_from)
    values = {
        "frame_rate_hz": f"{snap.frame_rate_hz:.2f}",
        "latency_p50_ms": f"{snap.latency_p50_ms:.1f}",
        "latency_p95_ms": f"{snap.latency_p95_ms:.1f}",
        "frames_processed": str(snap.frames_processed),
        "frames_rejected": str(snap.frames_failed),
        "objects": str(snap.objects),
        "last_error": snap.last_error,
        "last_warning": snap.last_warning,
    }
    values.update({k: str(v) for k, v in extra.items()})
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
