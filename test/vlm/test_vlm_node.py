"""The spatial_vlm node over real rclpy: answers ~/ask with a tiny model, refuses cleanly without one.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/vlm`` (skipped otherwise).
"""
import os
import threading
import time

import numpy as np
import pytest

if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
    pytest.skip("ROS tests run through scripts/ros_env.sh", allow_module_level=True)

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from spatial_vlm_interfaces.msg import SpatialObject, SpatialObjectArray  # noqa: E402
from spatial_vlm_interfaces.srv import Ask  # noqa: E402
from spatial_vlm_ros.ros import conversions as conv  # noqa: E402
from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode  # noqa: E402
from spatial_vlm_ros.vlm.engine import VLMRequest  # noqa: E402
from spatial_vlm_ros.vlm.grounding import scene_facts  # noqa: E402

QUESTION = "Which object could I stack on the box?"


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


class Harness:
    """Node under test + tester node, spun by one MultiThreadedExecutor in a non-daemon thread."""

    def __init__(self, namespace, **params):
        if not rclpy.ok():
            rclpy.init()
        overrides = [Parameter(k, value=v) for k, v in {
            "image_topic": f"/{namespace}/image", "objects_topic": f"/{namespace}/objects",
            "request_timeout_s": 60.0, "max_new_tokens": 6, **params}.items()]
        self.node = SpatialVLMNode(namespace=namespace, parameter_overrides=overrides)
        self.tester = rclpy.create_node(f"tester_{namespace}")
        self.image_pub = self.tester.create_publisher(Image, f"/{namespace}/image", 1)
        self.objects_pub = self.tester.create_publisher(SpatialObjectArray, f"/{namespace}/objects", 1)
        self.client = self.tester.create_client(Ask, f"/{namespace}/spatial_vlm/ask")
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.executor.add_node(self.tester)
        self.thread = threading.Thread(target=self.executor.spin, daemon=False)
        self.thread.start()
        assert self.client.wait_for_service(timeout_sec=10.0)

    def ask(self, question, timeout=60.0):
        future = self.client.call_async(Ask.Request(question=question))
        assert _wait(future.done, timeout), "no service response"
        return future.result()

    def close(self):
        self.executor.shutdown()
        self.thread.join(10.0)
        self.node.destroy_node()
        self.tester.destroy_node()


@pytest.fixture(scope="module", autouse=True)
def ros_context():
    yield
    rclpy.try_shutdown()


def test_node_answers_with_the_grounded_model(tiny_llava_dir, torch_engine, make_image):
    h = Harness("vlm_a", model=str(tiny_llava_dir), backend="transformers")
    try:
        assert h.node.worker.wait_loaded(30.0) and h.node.worker.state == "ready"
        no_image = h.ask(QUESTION)
        assert not no_image.success and "no camera image received yet" in no_image.message

        rgb = make_image(31, 60, 80)
        objects = SpatialObjectArray()
        box = SpatialObject(id="box_1", label="box")
        box.center.x, box.center.y, box.center.z = 0.1, 0.05, 0.8
        box.size.x, box.size.y, box.size.z = 0.2, 0.2, 0.1
        objects.objects = [box]
        assert _wait(lambda: h.image_pub.get_subscription_count() > 0
                     and h.objects_pub.get_subscription_count() > 0)
        assert _wait(lambda: (h.image_pub.publish(conv.array_to_image(rgb, "rgb8")),
                              h.objects_pub.publish(objects),
                              h.node._image is not None and len(h.node._objects) == 1)[-1], 10.0)

        response = h.ask(QUESTION)
        assert response.success, response.message
        facts = scene_facts(h.node._objects, max_objects=8)
        assert "box_1" in facts and "size 0.20x0.20x0.10" in facts
        expected = torch_engine.answer(VLMRequest(QUESTION, rgb, facts=facts),
                                       h.node.options)             # same model, same prompt, greedy
        assert response.answer == expected.text
        assert response.kind in ("free", "yes_no")
        assert 0.0 < response.confidence <= 1.0
        assert response.confidence == pytest.approx(
            float(np.exp(np.mean(expected.token_logprobs))), rel=1e-4)
    finally:
        h.close()


def test_node_without_a_model_refuses_cleanly():
    h = Harness("vlm_b", require_image=False)
    try:
        response = h.ask("Describe where the bottle is relative to the bowl.", timeout=10.0)
        assert not response.success
        assert "no VLM model is configured" in response.message and response.answer == ""
    finally:
        h.close()


def test_node_with_a_missing_model_reports_the_load_failure(tmp_path):
    h = Harness("vlm_c", model=str(tmp_path / "missing"), require_image=False)
    try:
        assert h.node.worker.wait_loaded(30.0)
        response = h.ask("Where is the mug?", timeout=10.0)
        assert not response.success and "failed to load" in response.message
    finally:
        h.close()
