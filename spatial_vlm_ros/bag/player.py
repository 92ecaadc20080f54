"""Replay a rosbag2 bag with rclpy at its recorded timing (no ros2bag / rosbag2_py needed).

Messages are published in log-time order, each at ``start + (t - t0 - offset) / rate`` on the wall clock,
as the stored CDR bytes (no deserialisation; header stamps stay as recorded, except that with ``loop`` each
pass after the first has them shifted forwards so that time keeps running: ``bag.loop_stamps``). Publishers
use deep queues (keep last ``queue_depth``) so a slow subscriber does not lose frames, and the player waits
(up to a timeout) until every topic has a subscriber before it starts, since messages published before
discovery completes are lost. Topics whose message type is not importable here are skipped with a warning.

Run it under ``scripts/ros_env.sh`` (it loads the Fast DDS profile with a shared-memory segment large
enough for camera frames).
"""
from __future__ import annotations

import importlib
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from spatial_vlm_ros.bag.loop_stamps import PassRestamper
from spatial_vlm_ros.bag.reader import BagReader, RawMessage
from spatial_vlm_ros.core.errors import InputError


def message_class(msgtype: str):
    """Python class of ``pkg/msg/Name`` from the ROS environment, or None if not importable."""
    pkg, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


@dataclass
class PlaybackStats:
    """What one ``run()`` did."""

    published: dict[str, int] = field(default_factory=dict)     # topic -> messages published
    failed: int = 0                                            # publish calls that raised
    skipped_topics: list[str] = field(default_factory=list)    # types not importable
    loops: int = 0
    wall_s: float = 0.0
    max_lateness_ms: float = 0.0                               # worst publish delay behind schedule


class BagPlayer:
    """Publish a bag at recorded timing. ``run()`` blocks until done (or ``stop()`` / Ctrl-C) and returns 0.

    rate: playback speed factor (2.0 = twice as fast); loop: start over at the end until stopped;
    start_offset: seconds of the bag to skip; topics: subset to publish (default all);
    wait_subscribers: subscribers each topic must have before playback starts (0 = do not wait),
    waiting at most ``wait_timeout_s`` (``grace_s`` once any topic has them); reliability: "reliable" or
    "best_effort"; prefetch: messages read ahead by a reader thread.
    """

    def __init__(self, bag: str | Path, rate: float = 1.0, loop: bool = False, start_offset: float = 0.0,
                 topics: list[str] | None = None, queue_depth: int = 100, reliability: str = "reliable",
                 wait_subscribers: int = 1, wait_timeout_s: float = 5.0, grace_s: float = 1.0,
                 prefetch: int = 64, node_name: str = "bag_player", verbose: bool = True):
        if not rate > 0:
            raise InputError(f"rate must be positive, got {rate}")
        if start_offset < 0:
            raise InputError(f"start offset must be >= 0 s, got {start_offset}")
        if reliability not in ("reliable", "best_effort"):
            raise InputError(f"reliability must be 'reliable' or 'best_effort', got {reliability!r}")
        self.bag = Path(bag)
        self.rate, self.loop, self.start_offset = float(rate), bool(loop), float(start_offset)
        self.topics = list(topics) if topics else None
        self.queue_depth, self.reliability = int(queue_depth), reliability
        self.wait_subscribers, self.wait_timeout_s = int(wait_subscribers), float(wait_timeout_s)
        self.grace_s, self.prefetch = float(grace_s), max(int(prefetch), 1)
        self.node_name, self.verbose = node_name, verbose
        self.stats = PlaybackStats()
        self._stop = threading.Event()
        self._prefetch_error: Exception | None = None
        self._reader = BagReader(self.bag).open()        # fail early on a bad bag or topic list
        if self.topics:
            self._reader._connections(self.topics)

    # hooks for subclasses (e.g. an evaluation that pauses between scenes to query a node)
    def before_publish(self, message: RawMessage) -> bool:
        """Called before each message is published, in the playback thread; may block. Return True to restart
        the timing schedule at this message (after a pause), False to keep it."""
        return False

    def after_publish(self, message: RawMessage) -> None:
        """Called right after ``message`` was published."""

    def end_of_pass(self) -> None:
        """Called when a pass has published the whole bag (not when stopped), before the next loop or the end
        of ``run()``, with the publishers still up; may block."""

    def stop(self) -> None:
        """Ask a running ``run()`` (in another thread) to finish after the current message."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    # ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        import rclpy
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self._reader.open()
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node(self.node_name, context=context)
        log = node.get_logger()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.queue_depth,
                         reliability=ReliabilityPolicy.RELIABLE if self.reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
        t_start = time.monotonic()
        try:
            publishers = {}
            for topic, msgtype in self._reader.topics.items():
                if self.topics and topic not in self.topics:
                    continue
                cls = message_class(msgtype)
                if cls is None:
                    self.stats.skipped_topics.append(topic)
                    log.warning(f"skipping {topic}: message type {msgtype} is not importable here")
                    continue
                publishers[topic] = node.create_publisher(cls, topic, qos)
                self.stats.published[topic] = 0
            if not publishers:
                raise InputError(f"nothing to publish from {self.bag}")
            t0 = self._reader.start_ns + int(self.start_offset * 1e9)
            if t0 > self._reader.end_ns:
                raise InputError(f"start offset {self.start_offset} s is past the end of the bag "
                                 f"({(self._reader.end_ns - self._reader.start_ns) / 1e9:.3f} s)")
            self._wait_for_subscribers(publishers, log)
            # loop: header stamps of pass k move forwards by k * (span + one frame period), see loop_stamps
            self._restamp = PassRestamper(self._reader.topics, self._reader._store)
            while not self._stop.is_set():
                self._play_once(publishers, t0, log)
                self.stats.loops += 1
                if not self.loop:
                    break
                self._restamp.next_pass()
        except KeyboardInterrupt:
            pass
        finally:
            self.stats.wall_s = time.monotonic() - t_start
            node.destroy_node()
            rclpy.try_shutdown(context=context)
            self._reader.close()
        if self.verbose:
            total = sum(self.stats.published.values())
            print(f"bag player: published {total} messages in {self.stats.wall_s:.2f} s "
                  f"({self.stats.loops} pass(es), {self.stats.failed} failed, worst lateness "
                  f"{self.stats.max_lateness_ms:.1f} ms)", flush=True)
        return 0

    def _wait_for_subscribers(self, publishers, log) -> None:
        """Wait until every topic has ``wait_subscribers`` subscribers; once one topic has them, give the
        others ``grace_s`` more (a node may not subscribe to every topic, e.g. no instances topic)."""
        if self.wait_subscribers <= 0:
            return
        deadline = time.monotonic() + self.wait_timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            counts = [p.get_subscription_count() >= self.wait_subscribers for p in publishers.values()]
            if all(counts):
                break
            if any(counts):
                deadline = min(deadline, time.monotonic() + self.grace_s)
            time.sleep(0.02)
        missing = [t for t, p in publishers.items() if p.get_subscription_count() < self.wait_subscribers]
        if missing:
            log.warning(f"starting without subscribers on {', '.join(missing)}")
        time.sleep(0.2)          # let matched readers finish their side of the discovery handshake

    @staticmethod
    def _put(out: queue.Queue, item, cancel: threading.Event) -> bool:
        """Put ``item`` on the bounded queue, waiting while it is full unless cancelled; False once cancelled."""
        while not cancel.is_set():
            try:
                out.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        return not cancel.is_set()

    def _prefetch(self, topics, t0: int, out: queue.Queue, cancel: threading.Event) -> None:
        """Read messages ahead in a thread so disk and chunk decoding never delay a publish; None ends."""
        try:
            for m in self._reader.raw_messages(topics, start_ns=t0):
                if not self._put(out, m, cancel):
                    return
        except Exception as err:  # noqa: BLE001 - handed to the publishing thread
            self._prefetch_error = err
        finally:
            self._put(out, None, cancel)

    def _play_once(self, publishers, t0: int, log) -> None:
        pending: queue.Queue = queue.Queue(maxsize=self.prefetch)
        cancel = threading.Event()
        reader = threading.Thread(target=self._prefetch, args=(list(publishers), t0, pending, cancel),
                                  name="bag_prefetch")
        reader.start()
        try:
            wall0 = None
            while not self._stop.is_set():
                m = pending.get()
                if m is None:
                    if self._prefetch_error is not None:
                        raise InputError(f"reading {self.bag} failed: {self._prefetch_error}")
                    self.end_of_pass()
                    return
                m = self._restamp.apply(m)
                if self.before_publish(m):
                    wall0 = None                     # restart the schedule at this message
                if self._stop.is_set():
                    return
                if wall0 is None:                    # the schedule starts with the first message
                    wall0 = time.monotonic() - (m.log_time_ns - t0) * 1e-9 / self.rate
                due = wall0 + (m.log_time_ns - t0) * 1e-9 / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        return
                else:
                    self.stats.max_lateness_ms = max(self.stats.max_lateness_ms, -delay * 1e3)
                try:
                    publishers[m.topic].publish(m.data)
                    self.stats.published[m.topic] += 1
                except Exception as err:   # noqa: BLE001 - rclpy raises RCLError; keep replaying
                    self.stats.failed += 1
                    log.warning(f"publish on {m.topic} failed: {err}", throttle_duration_sec=1.0)
                    continue
                self.after_publish(m)
        finally:
            cancel.set()
            reader.join()
