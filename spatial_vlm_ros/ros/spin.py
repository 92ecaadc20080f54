"""Process life cycle of the package's nodes: init, spin until Ctrl-C / SIGTERM, clean shutdown (exit 0).

Order (the one that runs clean with the PyPI wheels, see the shared notes): the executor spins in a
non-daemon thread; a SIGINT/SIGTERM only sets an event; then the executor is shut down, its thread joined,
the nodes destroyed (joining their own threads) while the context is still valid, and only then the context
is shut down. rclpy's own signal handlers are not installed, because they shut the context down first, while
callbacks may still run and before the nodes are destroyed. ``run_node`` is the whole ``main`` of a
single-node executable.
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from spatial_vlm_ros.core.errors import SpatialError

#: GIL switch interval while spinning, s (Python's default is 5 ms): a thread that holds the GIL in Python
#: code (frame conversion, the scene receiver) makes a service callback wait at most this long.
SWITCH_INTERVAL_S = 0.001

#: executor threads for a node that does not say (``EXECUTOR_THREADS``): callbacks that wait may take some
DEFAULT_THREADS = 4

_init_arguments: list[str] | None = None


def init(args=None) -> None:
    """``rclpy.init`` without rclpy's signal handlers (``spin_until_shutdown`` handles the signals).

    Raises ``SpatialError`` when rcl refuses the arguments (an unreadable ``--params-file``, a bad remapping)."""
    global _init_arguments
    _init_arguments = list(sys.argv if args is None else args)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as err:                     # rclpy's RCLError: rcl's reason, without its source
        reason = str(err).split(", at /", 1)[0]
        raise SpatialError(f"ROS arguments refused: {reason}") from None


def init_arguments() -> list[str] | None:
    """The arguments of the last ``init`` of this process (None before the first)."""
    return _init_arguments


def _spin(executor, stop: threading.Event) -> None:
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()


def executor_threads(nodes) -> int:
    """Threads of the executor that spins ``nodes``: the most any of them asks for (its class attribute
    ``EXECUTOR_THREADS``, else ``DEFAULT_THREADS``)."""
    return max((int(getattr(node, "EXECUTOR_THREADS", DEFAULT_THREADS)) for node in nodes), default=DEFAULT_THREADS)


def spin_until_shutdown(nodes, num_threads: int | None = None) -> int:
    """Spin ``nodes`` in a ``MultiThreadedExecutor`` (``num_threads``, default ``executor_threads(nodes)``)
    until SIGINT/SIGTERM (or the context is shut down), then clean up in the order above. Returns the exit
    code (0)."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL_S))
    executor = MultiThreadedExecutor(num_threads=num_threads or executor_threads(nodes))
    for node in nodes:
        executor.add_node(node)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=_spin, args=(executor, stop), name="executor", daemon=False)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        thread.join()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.setswitchinterval(switch_interval)
    return 0


def run_node(node_factory: Callable[[], Node], node_name: str, args=None) -> int:
    """Entry point body of a single-node executable: ``init(args)``, create the node with ``node_factory()``
    and spin it until Ctrl-C / SIGTERM. Returns the exit code: 0 after a clean shutdown (or Ctrl-C during
    start-up), 2 when the node rejects its parameters (a ``SpatialError``, logged as fatal under
    ``node_name``)."""
    try:
        init(args=args)
        node = node_factory()
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        return 0
    except SpatialError as err:
        if not getattr(err, "already_logged", False):      # a failed autostart transition logged it
            rclpy.logging.get_logger(node_name).fatal(str(err))
        rclpy.try_shutdown()
        return 2
    return spin_until_shutdown([node])
