"""rclpy client of the perception node's services and outputs, used by the evaluation runner and the demo.

This is the evaluation subpackage's only module that imports rclpy (scoring and reporting stay ROS-free).
It runs its own rclpy ``Context`` and executor thread, so it coexists with a bag player or an in-process
node that use the default context. Latencies are service round trips measured here, in milliseconds.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from spatial_vlm_interfaces.msg import SpatialObjectArray
from spatial_vlm_interfaces.srv import Ask, CheckPlacement, FindObjects, GetRelation, ListObjects, Measure


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class ObjectsUpdate:
    """One ``~/objects`` message as received: frame stamp (s), wall receive time (s), objects."""

    stamp: float
    received: float
    objects: list


class PerceptionClient:
    """Service clients and output subscriptions of one ``spatial_perception`` node.

    ``node_name``/``namespace`` locate the node (services ``<ns>/<node>/get_relation`` ...).
    """

    def __init__(self, node_name: str = "spatial_perception", namespace: str = "",
                 client_name: str = "spatial_evaluation"):
        self._ctx = rclpy.Context()
        rclpy.init(context=self._ctx)
        self.node = Node(client_name, context=self._ctx)
        base = "/".join(p for p in (namespace.strip("/"), node_name) if p)
        base = "/" + base
        self.base = base
        self._clients = {
            "list_objects": self.node.create_client(ListObjects, f"{base}/list_objects"),
            "get_relation": self.node.create_client(GetRelation, f"{base}/get_relation"),
            "measure": self.node.create_client(Measure, f"{base}/measure"),
            "ask": self.node.create_client(Ask, f"{base}/ask"),
            "reset": self.node.create_client(Trigger, f"{base}/reset"),
            "find": self.node.create_client(FindObjects, f"{base}/find"),
            "check_placement": self.node.create_client(CheckPlacement, f"{base}/check_placement"),
        }
        self._lock = threading.Condition()
        self.updates: list[ObjectsUpdate] = []
        self.diagnostics: dict[str, str] = {}
        reliable = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                              depth=50, durability=DurabilityPolicy.VOLATILE)
        self.node.create_subscription(SpatialObjectArray, f"{base}/objects", self._on_objects, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self._executor = SingleThreadedExecutor(context=self._ctx)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="evaluation-client", daemon=False)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle
    def _spin(self) -> None:
        with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
            self._executor.spin()

    def close(self) -> None:
        """Stop the executor thread, destroy the node, shut the context down (clean exit, no abort)."""
        self._executor.shutdown()
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self._ctx)

    def __enter__(self) -> PerceptionClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_for_services(self, timeout_s: float = 30.0) -> bool:
        """True when every service of the node is available within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for client in self._clients.values():
            if not client.wait_for_service(timeout_sec=max(deadline - time.monotonic(), 0.0)):
                return False
        return True

    def objects_subscribed(self, timeout_s: float = 10.0) -> bool:
        """Wait until the node's ``~/objects`` publisher matched our subscription."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.node.count_publishers(f"{self.base}/objects") > 0:
                return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ outputs
    def _on_objects(self, msg: SpatialObjectArray) -> None:
        with self._lock:
            self.updates.append(ObjectsUpdate(stamp_to_sec(msg.header.stamp), time.time(), list(msg.objects)))
            self._lock.notify_all()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "spatial" not in status.name and "perception" not in status.name:
                continue
            with self._lock:
                self.diagnostics.update({kv.key: kv.value for kv in status.values})

    def wait_for_stamp(self, stamp: float, timeout_s: float, tol: float = 1e-4) -> ObjectsUpdate | None:
        """The first ``~/objects`` update whose stamp is ``stamp`` (or later), waiting up to ``timeout_s``."""
        def find():
            for u in self.updates:
                if u.stamp >= stamp - tol:
                    return u
            return None
        with self._lock:
            self._lock.wait_for(lambda: find() is not None, timeout=timeout_s)
            return find()

    def update_at(self, stamp: float, tol: float = 1e-4) -> ObjectsUpdate | None:
        """The latest ``~/objects`` update with exactly this stamp (seconds), or None."""
        with self._lock:
            return next((u for u in reversed(self.updates) if abs(u.stamp - stamp) < tol), None)

    def clear_updates(self) -> None:
        with self._lock:
            self.updates.clear()

    def processed_stamps(self) -> list[float]:
        with self._lock:
            return sorted({round(u.stamp, 6) for u in self.updates})

    def node_dropped_frames(self) -> int | None:
        """The node's own dropped-frame count from ``/diagnostics`` (a key containing 'dropped'), if any."""
        with self._lock:
            for key, value in self.diagnostics.items():
                if "dropped" in key.lower():
                    try:
                        return int(float(value))
                    except ValueError:
                        return None
        return None

    # ------------------------------------------------------------------ services
    def call(self, service: str, request, timeout_s: float = 10.0):
        """``(response or None, round trip in ms)``; None when the call timed out."""
        client = self._clients[service]
        done = threading.Event()
        t0 = time.perf_counter()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        finished = done.wait(timeout_s)
        latency = (time.perf_counter() - t0) * 1e3
        if not finished:
            client.remove_pending_request(future)
            return None, latency
        return future.result(), latency

    def get_relation(self, subject: str, relation: str, reference: str, timeout_s: float = 10.0):
        return self.call("get_relation", GetRelation.Request(subject=subject, relation=relation,
                                                             reference=reference), timeout_s)

    def measure(self, quantity: str, subject: str, reference: str = "", timeout_s: float = 10.0):
        return self.call("measure", Measure.Request(quantity=quantity, subject=subject,
                                                    reference=reference or ""), timeout_s)

    def ask(self, question: str, timeout_s: float = 10.0, engine: str = ""):
        """``~/ask`` with ``engine`` ("" or "geometry", "vlm", "both")."""
        return self.call("ask", Ask.Request(question=question, engine=engine), timeout_s)

    def list_objects(self, label_filter: str = "", timeout_s: float = 10.0):
        return self.call("list_objects", ListObjects.Request(label_filter=label_filter), timeout_s)

    def find(self, relation: str = "", reference: str = "", label_filter: str = "", order_by: str = "",
             limit: int = 1, timeout_s: float = 10.0):
        return self.call("find", FindObjects.Request(relation=relation, reference=reference,
                                                     label_filter=label_filter, order_by=order_by,
                                                     limit=int(limit)), timeout_s)

    def check_placement(self, size, location: str, references=(), clearance: float = 0.0,
                        timeout_s: float = 10.0):
        """``size``: (w, d, h) metres; the service chooses the yaw."""
        w, d, h = (float(v) for v in size)
        return self.call("check_placement", CheckPlacement.Request(
            size=Vector3(x=w, y=d, z=h), location=location, references=list(references),
            clearance=float(clearance)), timeout_s)

    def reset(self, timeout_s: float = 10.0) -> bool:
        resp, _ = self.call("reset", Trigger.Request(), timeout_s)
        return bool(resp and resp.success)
