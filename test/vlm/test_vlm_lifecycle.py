"""The spatial_vlm lifecycle node over real rclpy, driven through its lifecycle services (get_state /
change_state), with the tiny model; and the node as a process: Ctrl-C / SIGTERM still exit 0.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/vlm/test_vlm_lifecycle.py``.
"""
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
    pytest.skip("ROS tests run through scripts/ros_env.sh", allow_module_level=True)

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from spatial_vlm_interfaces.srv import Ask  # noqa: E402
from spatial_vlm_ros.core.errors import SpatialError  # noqa: E402
from spatial_vlm_ros.ros import conversions as conv  # noqa: E402
from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode  # noqa: E402
from spatial_vlm_ros.vlm.engine import VLMRequest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "ros"))                 # the shared test helper
from lifecycle_client import LifecycleClient  # noqa: E402
from ros_harness import stop_process  # noqa: E402

QUESTION = "Is the mug left of the box?"


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module", autouse=True)
def ros_context():
    if not rclpy.ok():
        rclpy.init()
    yield
    rclpy.try_shutdown()


class Harness:
    """Node under test (``autostart`` false unless given) + tester node with an ``Ask`` client, a
    ``LifecycleClient`` and the two input publishers, spun by one MultiThreadedExecutor."""

    def __init__(self, namespace, **params):
        overrides = [Parameter(k, value=v) for k, v in {
            "autostart": False, "image_topic": f"/{namespace}/image", "objects_topic": f"/{namespace}/objects",
            "max_new_tokens": 6, **params}.items()]
        self.topics = (f"/{namespace}/image", f"/{namespace}/objects")
        self.node = SpatialVLMNode(namespace=namespace, parameter_overrides=overrides)
        self.tester = rclpy.create_node(f"lc_tester_{namespace}")
        self.image_pub = self.tester.create_publisher(Image, self.topics[0], 1)
        self.client = self.tester.create_client(Ask, f"/{namespace}/spatial_vlm/ask")
        self.lifecycle = LifecycleClient(self.tester, f"/{namespace}/spatial_vlm")
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.executor.add_node(self.tester)
        self.thread = threading.Thread(target=self.executor.spin, daemon=False)
        self.thread.start()
        assert self.client.wait_for_service(timeout_sec=10.0) and self.lifecycle.wait_for_services()

    def ask(self, question=QUESTION, timeout=60.0):
        future = self.client.call_async(Ask.Request(question=question))
        assert _wait(future.done, timeout), "no service response"
        return future.result()

    def subscribers(self):
        """Subscriptions to the two input topics, as the ROS graph sees them."""
        return [self.tester.count_subscribers(t) for t in self.topics]

    def close(self):
        self.executor.shutdown()
        self.thread.join(10.0)
        self.node.destroy_node()
        self.tester.destroy_node()


def test_transitions_load_once_serve_only_when_active_and_free_on_cleanup(tiny_llava_dir, torch_engine, make_image):
    h = Harness("vlm_lc", model=str(tiny_llava_dir), backend="transformers")
    try:
        assert h.lifecycle.state() == "unconfigured"
        assert h.node.worker is None and h.subscribers() == [0, 0]
        refused = h.ask()
        assert not refused.success and "not active" in refused.message and "'unconfigured'" in refused.message

        assert h.lifecycle.change("configure") and h.lifecycle.state() == "inactive"
        worker = h.node.worker
        assert worker.wait_loaded(30.0) and worker.state == "ready"
        engine = worker.engine
        refused = h.ask()
        assert not refused.success and "'inactive'" in refused.message
        assert h.subscribers() == [0, 0]

        assert h.lifecycle.change("activate") and h.lifecycle.state() == "active"
        assert _wait(lambda: h.subscribers() == [1, 1], 10.0)
        rgb = make_image(7, 48, 64)
        assert _wait(lambda: (h.image_pub.publish(conv.array_to_image(rgb, "rgb8")),
                              h.node._image is not None)[-1], 10.0)
        expected = torch_engine.answer(VLMRequest(QUESTION, rgb), h.node.options).text
        answer = h.ask()
        assert answer.success and answer.answer == expected, answer.message

        assert h.lifecycle.change("deactivate") and h.lifecycle.state() == "inactive"
        refused = h.ask()
        assert not refused.success and "'inactive'" in refused.message
        assert _wait(lambda: h.subscribers() == [0, 0], 10.0)
        assert h.node.worker is worker and worker.engine is engine and worker.state == "ready"

        assert h.lifecycle.change("activate")                           # no reload, the last image kept
        assert h.node.worker is worker and worker.engine is engine
        again = h.ask()
        assert again.success and again.answer == expected, again.message

        engine_ref = weakref.ref(engine)
        del engine
        assert h.lifecycle.change("deactivate") and h.lifecycle.change("cleanup")
        assert h.lifecycle.state() == "unconfigured"
        assert h.node.worker is None and h.node._image is None and worker.state == "stopped"
        assert worker.engine is None
        gc.collect()
        assert engine_ref() is None, "the model is still referenced after cleanup"
        refused = h.ask()
        assert not refused.success and "'unconfigured'" in refused.message

        assert h.lifecycle.change("configure") and h.lifecycle.change("activate")      # loads again
        assert h.node.worker is not worker and h.node.worker.wait_loaded(30.0)
        assert h.node.worker.state == "ready"
        assert _wait(lambda: (h.image_pub.publish(conv.array_to_image(rgb, "rgb8")),
                              h.node._image is not None)[-1], 10.0)
        assert h.ask().answer == expected
    finally:
        h.close()


def test_failed_configure_reports_why_and_leaves_the_node_alive_and_unconfigured():
    h = Harness("vlm_bad", backend="pytorch", queue_size=0)
    try:
        assert h.lifecycle.state() == "unconfigured"
        assert not h.lifecycle.change("configure")
        assert h.lifecycle.state() == "unconfigured"
        assert "backend: 'pytorch' is not one of" in h.node.transition_error
        assert "queue_size: Parameter queue_size out of range" in h.node.transition_error
        assert not h.lifecycle.change("activate")                  # not a transition from 'unconfigured'
        refused = h.ask()
        assert not refused.success and "'unconfigured'" in refused.message
        assert not h.lifecycle.change("configure") and h.lifecycle.state() == "unconfigured"   # still alive
        assert h.node.worker is None and h.subscribers() == [0, 0]
    finally:
        h.close()


def test_autostart_serves_at_once_and_shutdown_finalizes():
    h = Harness("vlm_auto", autostart=True, require_image=False)
    try:
        assert h.lifecycle.state() == "active"
        assert "no VLM model is configured" in h.ask().message
        assert h.lifecycle.change("shutdown") and h.lifecycle.state() == "finalized"
        assert h.node.worker is None
        refused = h.ask()
        assert not refused.success and "'finalized'" in refused.message
    finally:
        h.close()


@pytest.mark.parametrize("name, value, reason", [
    ("max_objects", 0, "max_objects: Parameter max_objects out of range"),
    ("request_timeout_s", "soon", "request_timeout_s: Trying to set parameter 'request_timeout_s' to 'soon'"),
    ("objects_topic", "/a b", "objects_topic: '/a b' is not a valid topic name (topic name must not contain"),
])
def test_autostart_with_invalid_parameters_raises_the_reason(name, value, reason):
    with pytest.raises(SpatialError, match="invalid parameters: ") as err:
        SpatialVLMNode(namespace="vlm_autobad", parameter_overrides=[Parameter(name, value=value)])
    assert reason in str(err.value)


def _stop(proc, sig):
    return "".join(stop_process(proc, sig))


@pytest.mark.parametrize("command, sig", [
    (["-m", "spatial_vlm_ros.ros.vlm_node", "--ros-args", "-r", "__ns:=/procvlm", "-p", "autostart:=false"],
     signal.SIGTERM),
    (["-m", "spatial_vlm_ros.ros.run", "--nodes", "vlm", "--namespace", "procvlm"], signal.SIGINT),
], ids=["vlm_node-sigterm", "run-sigint"])
def test_node_process_serves_and_exits_0_on_a_signal(command, sig):
    proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    tester = rclpy.create_node("lc_proc_tester")
    executor = SingleThreadedExecutor()
    executor.add_node(tester)
    try:
        lifecycle = LifecycleClient(tester, "/procvlm/spatial_vlm", executor=executor)
        assert lifecycle.wait_for_services(30.0), "the node process did not come up"
        if lifecycle.state() == "unconfigured":
            assert lifecycle.change("configure") and lifecycle.change("activate")
        assert lifecycle.state() == "active"
        client = tester.create_client(Ask, "/procvlm/spatial_vlm/ask")
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Ask.Request(question=QUESTION))
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.done() and "no camera image received yet" in future.result().message
    finally:
        executor.shutdown()
        tester.destroy_node()
        output = _stop(proc, sig)
    assert proc.returncode == 0, output
    assert "terminate called" not in output and "Traceback" not in output
