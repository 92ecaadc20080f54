"""Record selected topics of a live ROS 2 graph into a rosbag2 bag (MCAP or sqlite3) with rclpy + rosbags.

Subscriptions take the serialised CDR bytes (``raw=True``), which go into the bag untouched, stamped with
the receive time. Message types are discovered from the graph; their definitions come from the Kilted type
store or, for custom types, from ``.msg`` files (source tree or ``AMENT_PREFIX_PATH``), so the bag opens in
Foxglove. Subscriptions have a deep queue and, as ``ros2 bag record`` does, are reliable when every publisher
of the topic is reliable and best effort otherwise (which matches any publisher). Run it under
``scripts/ros_env.sh``.

Stopping: SIGINT (Ctrl-C), SIGTERM (docker stop, systemd, a launch shutdown) and SIGHUP (a closed terminal)
all end the recording the same way when ``run()`` is called from the main thread: the loop stops, the
subscriptions go and the bag is closed, so the MCAP/sqlite3 file and ``metadata.yaml`` are complete.
"""
from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

from rosbags.rosbag2 import Writer

from spatial_vlm_ros.bag.typestore import register_msg_type, typestore
from spatial_vlm_ros.bag.writer import STORAGES
from spatial_vlm_ros.core.errors import InputError

#: Signals that stop a recording cleanly (the bag is closed) instead of killing the process.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class BagRecorder:
    """Write ``topics`` to the bag folder ``bag`` until ``duration`` seconds (None: until ``stop()`` or
    Ctrl-C) or ``max_messages`` in total. ``run()`` blocks and returns 0.

    Topics are waited for (their type must appear in the graph) for up to ``discovery_timeout_s``; topics
    still unknown then raise InputError, as do unknown storage names and an existing bag path."""

    def __init__(self, bag: str | Path, topics: list[str], storage: str = "mcap", duration: float | None = None,
                 max_messages: int | None = None, discovery_timeout_s: float = 10.0, queue_depth: int = 100,
                 overwrite: bool = False, node_name: str = "bag_recorder", verbose: bool = True):
        if not topics:
            raise InputError("give at least one topic to record")
        if storage not in STORAGES:
            raise InputError(f"unknown storage '{storage}' (choose {' or '.join(STORAGES)})")
        if duration is not None and not duration > 0:
            raise InputError(f"duration must be positive, got {duration}")
        self.bag = Path(bag)
        if self.bag.exists() and not overwrite:
            raise InputError(f"{self.bag} exists; choose another path or pass overwrite=True")
        self.topics = [t if t.startswith("/") else "/" + t for t in topics]
        self.storage, self.duration, self.max_messages = storage, duration, max_messages
        self.discovery_timeout_s, self.queue_depth = float(discovery_timeout_s), int(queue_depth)
        self.overwrite, self.node_name, self.verbose = overwrite, node_name, verbose
        self.counts: dict[str, int] = {t: 0 for t in self.topics}
        self._stop = threading.Event()
        self._ready = threading.Event()

    def stop(self) -> None:
        """Finish a running ``run()`` (from another thread)."""
        self._stop.set()

    def wait_until_recording(self, timeout: float | None = None) -> bool:
        """Block until every subscription exists (so a test can start publishing); False on timeout."""
        return self._ready.wait(timeout)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    # ------------------------------------------------------------------------------------------------
    def _discover(self, node) -> dict[str, str]:
        deadline = time.monotonic() + self.discovery_timeout_s
        found: dict[str, str] = {}
        while True:
            graph = dict(node.get_topic_names_and_types())
            for t in self.topics:
                if t in graph and graph[t]:
                    found[t] = graph[t][0]
            if len(found) == len(self.topics) or time.monotonic() > deadline or self._stop.is_set():
                break
            time.sleep(0.05)
        missing = [t for t in self.topics if t not in found]
        if missing:
            raise InputError(f"no publisher found for {', '.join(missing)} within {self.discovery_timeout_s:.0f} s")
        return found

    def run(self) -> int:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        context = rclpy.Context()
        rclpy.init(context=context)
        previous = self._catch_stop_signals()      # after rclpy.init, which installs its own handlers
        node = rclpy.create_node(self.node_name, context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        writer = None
        try:
            types = self._discover(node)
            store = _typestore_for(types)
            writer = self._new_writer()
            writer.open()
            self._subscribe(node, writer, store, types)
            self._ready.set()
            self._spin(executor, context)
        except KeyboardInterrupt:
            pass
        finally:
            self._ready.set()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown(context=context)
            if writer is not None:
                writer.close()
            _restore_signals(previous)
        if self.verbose:
            print(f"bag recorder: wrote {self.total} messages to {self.bag} "
                  f"({', '.join(f'{t}: {n}' for t, n in self.counts.items())})", flush=True)
        return 0

    def _new_writer(self) -> Writer:
        """A bag writer (not opened) on a fresh ``self.bag`` (an existing one is removed with ``overwrite``)."""
        if self.bag.exists() and self.overwrite:
            shutil.rmtree(self.bag)
        self.bag.parent.mkdir(parents=True, exist_ok=True)
        return Writer(self.bag, version=8, storage_plugin=STORAGES[self.storage])

    def _subscribe(self, node, writer: Writer, store, types: dict[str, str]) -> None:
        """One raw subscription per topic, writing into its bag connection."""
        from spatial_vlm_ros.bag.player import message_class

        for topic, msgtype in types.items():
            cls = message_class(msgtype)
            if cls is None:
                raise InputError(f"cannot subscribe to {topic}: type {msgtype} is not importable here")
            conn = writer.add_connection(topic, msgtype, typestore=store)
            node.create_subscription(cls, topic, self._callback(writer, conn, topic, node),
                                     self._qos(node, topic), raw=True)

    def _qos(self, node, topic: str):
        """Like ``ros2 bag record``: reliable only when every publisher offers it (else best effort, which
        matches any publisher); keep-last ``queue_depth``, volatile."""
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        offered = [p.qos_profile.reliability for p in node.get_publishers_info_by_topic(topic)]
        reliable = bool(offered) and all(r == ReliabilityPolicy.RELIABLE for r in offered)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.queue_depth,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)

    def _spin(self, executor, context) -> None:
        """Until ``stop()``, the duration or ``max_messages``."""
        t_end = None if self.duration is None else time.monotonic() + self.duration
        while not self._stop.is_set() and context.ok():
            if t_end is not None and time.monotonic() >= t_end:
                break
            if self.max_messages is not None and self.total >= self.max_messages:
                break
            executor.spin_once(timeout_sec=0.05)

    def _catch_stop_signals(self) -> dict:
        """Make SIGINT/SIGTERM/SIGHUP call ``stop()``; returns the handlers replaced (empty off the main
        thread, where Python cannot install handlers: the caller stops the recorder itself)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in STOP_SIGNALS:
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, lambda *_: self.stop())
        return previous

    def _callback(self, writer, conn, topic: str, node):
        clock = node.get_clock()

        def on_message(data: bytes) -> None:
            if self.max_messages is not None and self.total >= self.max_messages:
                return
            writer.write(conn, clock.now().nanoseconds, data)
            self.counts[topic] += 1
        return on_message


def _typestore_for(types: dict[str, str]):
    """The Kilted type store with every discovered message type registered (custom ones from .msg files)."""
    store = typestore()
    for msgtype in set(types.values()):
        register_msg_type(store, msgtype)
    return store


def _restore_signals(previous: dict) -> None:
    for signum, handler in previous.items():     # None: a handler not installed from Python
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
