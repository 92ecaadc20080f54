"""Helpers for the integration tests and the service benchmark: run the real node in-process with a
``MultiThreadedExecutor`` in a non-daemon thread, publish analytic RGB-D frames, call services.

Run through ``SVR_ISOLATE=1 scripts/ros_env.sh`` (private network namespace and ROS_DOMAIN_ID).
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from spatial_vlm_interfaces.msg import Detections2D, InstanceSegmentation, SpatialObjectArray
from spatial_vlm_interfaces.srv import ListObjects
from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode
from spatial_vlm_ros.ros.qos import diagnostics_qos, output_qos, sensor_qos
from spatial_vlm_ros.sim import analytic
from spatial_vlm_ros.sim.detections import detections_from_mask

TOPICS = {"color": "/camera/color/image_raw", "depth": "/camera/aligned_depth_to_color/image_raw",
          "camera_info": "/camera/color/camera_info", "instances": "/camera/instances",
          "detections": "/camera/detections"}
TYPES = {"color": Image, "depth": Image, "camera_info": CameraInfo, "instances": InstanceSegmentation,
         "detections": Detections2D}


def stamp_clock(start: float, step: float = 0.1):
    """A function returning increasing header stamps (seconds): ``start + step``, ``start + 2 step``, ..."""
    now = [float(start)]

    def next_stamp() -> float:
        now[0] += step
        return now[0]
    return next_stamp


def wait_until(predicate, timeout: float = 10.0, period: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


def default_scene(width: int = 320, height: int = 240, **render_kwargs) -> analytic.AnalyticFrame:
    """Three well-separated objects on a table, seen from 0.6 m up, pitched 35 deg down."""
    objects = [
        analytic.BoxObject("box", (-0.22, 0.0), (0.10, 0.10, 0.16), color=(210, 35, 35)),
        analytic.CylinderObject("mug", (0.18, 0.06), 0.04, 0.10, color=(40, 70, 210)),
        analytic.BoxObject("book", (0.0, 0.20), (0.20, 0.14, 0.05), color=(35, 160, 50)),
    ]
    return analytic.render(objects, camera=analytic.default_camera(width, height), **render_kwargs)


@dataclass
class FrameMessages:
    """The messages of one frame (masks and their tight 2D boxes); tests corrupt them before publishing."""

    color: Image
    depth: Image
    camera_info: CameraInfo
    instances: InstanceSegmentation
    detections: Detections2D | None = None

    def items(self):
        return {"color": self.color, "depth": self.depth, "camera_info": self.camera_info,
                "instances": self.instances, "detections": self.detections}.items()


def frame_messages(scene: analytic.AnalyticFrame, stamp_s: float, depth_encoding: str = "16UC1") -> FrameMessages:
    stamp = conv.seconds_to_stamp(stamp_s)
    frame_id = scene.camera.frame_id or "camera_color_optical_frame"
    depth = encode_depth_mm(scene.depth) if depth_encoding == "16UC1" else \
        np.nan_to_num(scene.depth, nan=0.0).astype(np.float32)
    info = conv.camera_info_from_model(scene.camera, stamp)
    info.header.frame_id = frame_id
    return FrameMessages(
        color=conv.array_to_image(scene.rgb, "rgb8", stamp, frame_id),
        depth=conv.array_to_image(depth, depth_encoding, stamp, frame_id),
        camera_info=info,
        instances=conv.segmentation_to_msg(scene.mask, scene.ids, scene.labels, None, stamp, frame_id),
        detections=conv.detections_to_msg(detections_from_mask(scene.mask, scene.ids, scene.labels), stamp,
                                          frame_id))


class NodeHarness:
    """The node under test plus a tester node (publishers, subscriptions, service clients), both spun by
    one ``MultiThreadedExecutor`` in a non-daemon thread. Use as a context manager."""

    def __init__(self, overrides: dict | None = None, namespace: str = "", with_instances: bool = True,
                 slots=None):
        """``slots``: the inputs to publish (default color, depth, camera info and, with ``with_instances``,
        instances); the harness waits until the node subscribes to each of them."""
        params = [Parameter(name, value=value) for name, value in (overrides or {}).items()]
        self.node = SpatialPerceptionNode(parameter_overrides=params, namespace=namespace)
        self.ns = self.node.get_fully_qualified_name()
        self.tester = Node("tester_" + str(abs(hash(self.ns)) % 10000), namespace=namespace)
        qos = sensor_qos(10)
        if slots is None:
            slots = ["color", "depth", "camera_info"] + (["instances"] if with_instances else [])
        self.pubs = {slot: self.tester.create_publisher(TYPES[slot], TOPICS[slot], qos) for slot in slots}
        self.objects: list[SpatialObjectArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.markers: list[MarkerArray] = []
        self._outputs = [
            self.tester.create_subscription(MarkerArray, f"{self.ns}/markers", self.markers.append, output_qos()),
            self.tester.create_subscription(SpatialObjectArray, f"{self.ns}/objects", self.objects.append,
                                            output_qos())]
        self.tester.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append,
                                        diagnostics_qos())
        self._clients = {}
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.executor.add_node(self.tester)
        self.thread = threading.Thread(target=self.executor.spin, name="executor", daemon=False)

    def __enter__(self) -> NodeHarness:
        self.thread.start()
        self._wait_for_matching()
        return self

    def _wait_for_matching(self) -> None:
        """Until the test publishers see the node's subscriptions AND the node's subscriptions (in its worker
        process, if any) see a publisher on every input, so that the first frame is not lost to discovery."""
        assert wait_until(lambda: all(p.get_subscription_count() >= 1 for p in self.pubs.values()), 10.0), \
            "the node's subscriptions did not match the test publishers"
        if self.node.frames is not None or self.node.worker_process is not None:     # configured: outputs exist
            assert wait_until(lambda: all(sub.get_publisher_count() >= 1 for sub in self._outputs), 10.0), \
                "the test's ~/objects and ~/markers subscriptions did not see the node's publishers"
        topics = [TOPICS[slot] for slot in self.pubs]
        assert wait_until(lambda: not any(t in self.node.worker_values.get("inputs_without_publisher", "(none yet)")
                                          for t in topics + ["(not subscribed)", "(none yet)"]), 10.0), \
            f"the node's subscriptions did not see the test publishers: {self.node.worker_values}"

    def __exit__(self, *exc) -> None:
        self.executor.shutdown()
        self.thread.join(10.0)
        self.tester.destroy_node()
        self.node.destroy_node()

    def restart_inputs(self) -> None:
        """Deactivate and re-activate the node: its subscriptions are re-created and half-matched messages
        dropped, the memory stays."""
        self.node.trigger_deactivate()
        self.node.worker_values.clear()
        self.node.trigger_activate()
        self._wait_for_matching()

    # ----------------------------------------------------------------------------------------- frames
    def publish(self, msgs: FrameMessages, slots=None) -> None:
        for slot, msg in msgs.items():
            if msg is not None and slot in self.pubs and (slots is None or slot in slots):
                self.pubs[slot].publish(msg)

    def publish_and_wait(self, msgs: FrameMessages, outcome: str = "processed", timeout: float = 10.0) -> bool:
        """Publish one frame and wait until the node processed (or rejected) it."""
        stats = self.node.stats
        before = stats.frames_processed if outcome == "processed" else stats.frames_failed
        self.publish(msgs)
        counter = (lambda: stats.frames_processed) if outcome == "processed" else (lambda: stats.frames_failed)
        return wait_until(lambda: counter() > before, timeout)

    def publish_until_processed(self, make_msgs, timeout: float = 15.0, period: float = 1.0) -> bool:
        """Publish ``make_msgs()`` (a fresh frame each time) every ``period`` s until the node processed one:
        camera topics are best-effort (sensor-data QoS), so on a loaded machine one message of a set can be
        lost and the set never completes, e.g. the first frame a restarted worker receives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.publish_and_wait(make_msgs(), timeout=min(period, max(deadline - time.monotonic(), 0.01))):
                return True
        return False

    def publish_until_outputs(self, make_msgs, timeout: float = 15.0, period: float = 1.0) -> bool:
        """Publish ``make_msgs()`` every ``period`` s until ``~/objects`` and ``~/markers`` have each delivered a
        message. The test's subscriptions seeing the node's publishers (``_wait_for_matching``) does not mean
        those publishers already see the subscriptions; until they do, what they publish is not delivered
        (seen once on a loaded machine: the first frames processed, nothing on ``~/objects``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wait_until(lambda: bool(self.objects) and bool(self.markers), min(period, deadline - time.monotonic())):
                return True
            self.publish_and_wait(make_msgs(), timeout=min(period, max(deadline - time.monotonic(), 0.01)))
        return bool(self.objects) and bool(self.markers)

    # --------------------------------------------------------------------------------------- services
    def client(self, srv_type, name: str):
        key = (srv_type, name)
        if key not in self._clients:
            client = self.tester.create_client(srv_type, f"{self.ns}/{name}")
            assert client.wait_for_service(timeout_sec=10.0), f"service {name} not available"
            self._clients[key] = client
        return self._clients[key]

    def call(self, srv_type, name: str, timeout: float = 10.0, **fields):
        request = srv_type.Request(**fields)
        future = self.client(srv_type, name).call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), f"no answer from {name} within {timeout} s"
        return future.result()

    # ------------------------------------------------------------------------------------ diagnostics
    def diagnostic_matching(self, text: str, level=None, timeout: float = 5.0):
        """The first /diagnostics status of this node (received from now on) whose message or values
        contain ``text`` (and with ``level`` if given); None on timeout."""
        start = len(self.diagnostics)
        found = []

        def check():
            for array in self.diagnostics[start:]:
                for status in array.status:
                    if status.hardware_id != self.ns:
                        continue
                    blob = status.message + " " + " ".join(kv.value for kv in status.values)
                    if text in blob and (level is None or status.level == level):
                        found.append(status)
                        return True
            return False
        wait_until(check, timeout)
        return found[0] if found else None


def ros_init() -> None:
    if not rclpy.ok():
        rclpy.init()


def memory_rows(harness: NodeHarness) -> list[tuple]:
    """The node's memory as ``~/list_objects`` reports it, one tuple per object (id, label, observations,
    center, size, last_seen), to compare before and after."""
    res = harness.call(ListObjects, "list_objects")
    assert res.success
    return [(o.id, o.label, o.observations, o.center.x, o.center.y, o.center.z, o.size.x, o.size.y, o.size.z,
             o.last_seen.sec, o.last_seen.nanosec) for o in res.objects]


def stop_process(proc: subprocess.Popen, sig: int, timeout_s: float = 20.0) -> tuple[str, str]:
    """Send ``sig`` to ``proc`` and wait for it (killed after ``timeout_s``); its (stdout, stderr)."""
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()
