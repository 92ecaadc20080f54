"""Approximate-time synchroniser and newest-only hand-off (ROS-free)."""
import threading
import time

import pytest

from spatial_vlm_ros.ros.handoff import FrameWorker, LatestOnlyQueue
from spatial_vlm_ros.ros.sync import ApproximateTimeSynchronizer


def test_set_is_emitted_only_when_complete():
    sync = ApproximateTimeSynchronizer(["color", "depth", "info"], slop=0.01)
    assert sync.add("color", 1.000, "c1") is None
    assert sync.add("depth", 1.004, "d1") is None
    assert sync.add("info", 0.998, "i1") == {"color": "c1", "depth": "d1", "info": "i1"}
    assert sync.pending() == {"color": 0, "depth": 0, "info": 0}
    assert sync.stats.matched_sets == 1 and sync.stats.dropped_total == 0


def test_closest_set_within_slop_and_stale_messages_dropped():
    sync = ApproximateTimeSynchronizer(["color", "depth"], slop=0.02)
    for t in (1.0, 1.033, 1.066):
        sync.add("color", t, f"c{t}")
    out = sync.add("depth", 1.070, "d")
    assert out == {"color": "c1.066", "depth": "d"}
    assert sync.stats.dropped["color"] == 2          # 1.0 and 1.033 can no longer be matched
    assert sync.pending()["color"] == 0


def test_stamps_far_apart_never_match_and_spread_is_reported():
    sync = ApproximateTimeSynchronizer(["color", "depth"], slop=0.02, queue_size=3)
    for k in range(5):
        assert sync.add("color", 10.0 + 0.1 * k, k) is None
        assert sync.add("depth", 10.5 + 0.1 * k, k) is None
    assert sync.stats.matched_sets == 0
    assert sync.stats.last_unmatched_spread == pytest.approx(0.5)
    assert sync.pending() == {"color": 3, "depth": 3}           # bounded queues
    assert sync.stats.dropped == {"color": 2, "depth": 2}


def test_out_of_order_and_duplicate_stamps():
    sync = ApproximateTimeSynchronizer(["a", "b"], slop=0.001)
    sync.add("a", 2.0, "a2")
    sync.add("a", 1.0, "a1")
    sync.add("a", 1.0, "a1-again")                  # same stamp replaces
    assert sync.pending()["a"] == 2
    assert sync.add("b", 1.0, "b1") == {"a": "a1-again", "b": "b1"}
    assert sync.add("b", 2.0, "b2") == {"a": "a2", "b": "b2"}


def test_invalid_construction_and_unknown_slot():
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer(["a", "a"], 0.1)
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer(["a"], -1.0)
    sync = ApproximateTimeSynchronizer(["a"], 0.1)
    with pytest.raises(KeyError):
        sync.add("b", 0.0, None)
    assert sync.add("a", 0.0, 1) == {"a": 1}        # a single stream passes straight through


def test_latest_only_queue_drops_stale_items():
    q = LatestOnlyQueue()
    assert q.get(timeout=0.01) is None
    assert q.put(1) is False
    assert q.put(2) is True and q.put(3) is True
    assert q.get(timeout=0.01) == 3
    assert q.dropped == 2 and q.put_count == 3
    q.close()
    assert q.get(timeout=1.0) is None


def test_worker_takes_newest_and_survives_errors():
    q = LatestOnlyQueue()
    seen, errors = [], []
    release = threading.Event()

    def process(item):
        if item == "bad":
            raise ValueError("bad frame")
        release.wait(2.0)
        seen.append(item)

    worker = FrameWorker(q, process, on_error=errors.append)
    worker.start()
    q.put("bad")
    deadline = time.monotonic() + 2.0
    while not errors and time.monotonic() < deadline:
        time.sleep(0.005)
    q.put(0)                                         # taken, blocks in process until release
    while q._has_item and time.monotonic() < deadline:
        time.sleep(0.005)
    for k in range(1, 6):                            # arrive while the worker is busy: only 5 survives
        q.put(k)
    release.set()
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.stop()
    assert not worker.alive
    assert [str(e) for e in errors] == ["bad frame"]
    assert seen == [0, 5]
    assert q.dropped == 4


def test_worker_rate_limit():
    q = LatestOnlyQueue()
    times = []
    worker = FrameWorker(q, lambda item: times.append(time.monotonic()), max_rate_hz=20.0)
    worker.start()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        q.put(object())
        time.sleep(0.002)
    worker.stop()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) >= 3
    assert min(gaps) >= 0.045                        # never faster than 20 Hz
