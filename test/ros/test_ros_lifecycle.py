"""Integration: ``spatial_perception`` as a lifecycle node driven through its lifecycle services, its frame
worker process (killed: reported and restarted, the services keep answering), an exception inside a
callback (reported in diagnostics, the node keeps processing), and SIGTERM of the node process (exit 0, the
worker process gone too).

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros``.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_client import LifecycleClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from ros_harness import TOPICS, NodeHarness, default_scene, frame_messages, stamp_clock, stop_process, wait_until

from spatial_vlm_interfaces.srv import ListObjects
from spatial_vlm_ros.ros.qos import diagnostics_qos

ROOT = Path(__file__).resolve().parents[2]
SCENE = default_scene()
OVERRIDES = {"memory.timeout_s": 600.0, "diagnostics_period_s": 0.1}
_next_stamp = stamp_clock(500.0)


@pytest.fixture(scope="module", autouse=True)
def ros():
    if not rclpy.ok():
        rclpy.init()
    yield


def _fingerprint(harness):
    return [(o.id, o.center.x, o.center.y, o.center.z, o.size.x, o.size.y, o.size.z)
            for o in harness.call(ListObjects, "list_objects").objects]


def _perception_subscribers(harness, slot="color"):
    ns = harness.node.get_namespace()            # other tests' nodes may still be in the graph
    return [s for s in harness.tester.get_subscriptions_info_by_topic(TOPICS[slot])
            if "spatial_perception" in s.node_name and s.node_namespace == ns]


def _service_up(harness, name="list_objects") -> bool:
    """Whether the node serves ``~/name`` (by node: a tester's client alone would list the name too)."""
    node = harness.node
    served = harness.tester.get_service_names_and_types_by_node(node.get_name(), node.get_namespace())
    return any(n == f"{harness.ns}/{name}" for n, _ in served)


@pytest.mark.parametrize("frame_worker", ["process", "thread"])
def test_transitions_through_the_lifecycle_services(frame_worker):
    h = NodeHarness({**OVERRIDES, "autostart": False, "frame_worker": frame_worker},
                    namespace=f"lc_{frame_worker}")
    h.thread.start()
    try:
        lc = LifecycleClient(h.tester, h.ns)
        assert lc.wait_for_services()
        assert lc.state() == "unconfigured"
        assert not _service_up(h), "an unconfigured node serves no queries"

        assert lc.change("configure") and lc.state() == "inactive"
        assert wait_until(lambda: _service_up(h), 5.0)
        time.sleep(0.3)
        assert not _perception_subscribers(h), "an inactive node subscribes to no input"

        assert lc.change("activate") and lc.state() == "active"
        h._wait_for_matching()
        for _ in range(2):
            assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
        before = _fingerprint(h)
        assert len(before) == 3

        assert lc.change("deactivate") and lc.state() == "inactive"
        processed = h.node.stats.frames_processed
        for _ in range(3):                                  # ignored while inactive
            h.publish(frame_messages(SCENE, _next_stamp()))
            time.sleep(0.05)
        time.sleep(0.3)
        assert h.node.stats.frames_processed == processed
        assert _fingerprint(h) == before, "deactivate keeps the memory and the services answer from it"

        assert lc.change("activate") and lc.state() == "active"
        h._wait_for_matching()
        assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
        assert [row[0] for row in _fingerprint(h)] == [row[0] for row in before], "same ids after re-activation"

        assert lc.change("deactivate") and lc.change("cleanup") and lc.state() == "unconfigured"
        assert wait_until(lambda: not _service_up(h), 5.0)
        assert h.node.worker_process is None and h.node.frames is None

        assert lc.change("configure") and lc.change("activate"), "a cleaned-up node configures again"
        h._wait_for_matching()
        assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
    finally:
        h.__exit__(None, None, None)


def test_a_failed_configure_leaves_the_node_unconfigured_and_alive():
    h = NodeHarness({"autostart": False, "detector": "boxes", "detections_msg": "vision_msgs/Detection2DArray"},
                    namespace="lc_fail")
    h.thread.start()
    try:
        from spatial_vlm_ros.ros import conversions as conv
        lc = LifecycleClient(h.tester, h.ns)
        assert lc.wait_for_services()
        if conv.VisionDetection2DArray is not None:
            pytest.skip("vision_msgs is installed here: this configuration is valid")
        assert not lc.change("configure")
        assert lc.state() == "unconfigured"
        assert "vision_msgs is not installed" in h.node.transition_error
    finally:
        h.__exit__(None, None, None)


def test_a_killed_worker_process_is_reported_and_restarted():
    with NodeHarness(OVERRIDES, namespace="lc_kill") as h:
        for _ in range(2):
            assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
        before = _fingerprint(h)
        old_pid = h.node.worker_process.process.pid
        os.kill(old_pid, signal.SIGKILL)
        status = h.diagnostic_matching("frame worker process died", level=DiagnosticStatus.ERROR, timeout=5.0)
        assert status is not None
        assert _fingerprint(h) == before, "the last scene stays readable while the worker is down"
        assert wait_until(lambda: h.node.worker_process is not None and h.node.worker_process.alive
                          and h.node.worker_process.process.pid != old_pid, 20.0), "no new worker process"
        h.node.worker_values.clear()
        h._wait_for_matching()
        assert h.publish_until_processed(lambda: frame_messages(SCENE, _next_stamp()), timeout=15.0)
        assert len(_fingerprint(h)) == 3


def test_an_exception_inside_a_callback_is_a_diagnostics_error_and_the_node_goes_on():
    with NodeHarness({**OVERRIDES, "frame_worker": "thread"}, namespace="lc_raise") as h:
        assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
        sync = h.node.sync
        original = sync.add

        def broken(*args, **kwargs):
            raise RuntimeError("injected failure")
        sync.add = broken
        try:
            h.publish(frame_messages(SCENE, _next_stamp()))
            status = h.diagnostic_matching("injected failure", level=DiagnosticStatus.ERROR, timeout=5.0)
            assert status is not None and "internal error" in status.message
        finally:
            sync.add = original
        assert h.node.executor is not None and h.thread.is_alive()
        assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
        assert len(_fingerprint(h)) == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_node_process_exits_0_on_a_signal_and_its_worker_goes_too(sig):
    ns = f"sig{int(sig)}"
    proc = subprocess.Popen([sys.executable, "-m", "spatial_vlm_ros.ros.run", "--params", "config/perception.yaml",
                             "--namespace", ns, "--ros-args", "-p", "diagnostics_period_s:=0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tester = Node(f"sig_tester_{int(sig)}")
    executor = SingleThreadedExecutor()
    executor.add_node(tester)
    pids = []

    def on_diagnostics(msg):
        for status in msg.status:
            if status.hardware_id == f"/{ns}/spatial_perception":
                pids.extend(int(kv.value) for kv in status.values if kv.key == "worker_pid" and kv.value.isdigit())
    tester.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, diagnostics_qos())
    try:
        deadline = time.monotonic() + 30.0
        while not pids and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert pids, "no diagnostics naming the worker process"
    finally:
        tester.destroy_node()
        executor.shutdown()
        _, err = stop_process(proc, sig)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "terminate called" not in err, err
    assert wait_until(lambda: not os.path.exists(f"/proc/{pids[-1]}"), 5.0), "the worker process outlived the node"
