"""Integration: an RGB-only camera (``depth_source: model``). The node subscribes color, camera info and
the detections, never a depth topic, and a frame runs end to end through a tiny randomly initialised depth
model, on PyTorch and on onnxruntime (its ONNX export). PLUMBING ONLY: the random model's depth means nothing,
so nothing here checks geometry or accuracy.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros``.
"""
import pytest
import rclpy
from ros_harness import TOPICS, NodeHarness, default_scene, frame_messages, wait_until

from spatial_vlm_ros.perception import mono_depth

SCENE = default_scene(160, 120)
SLOTS = ["color", "camera_info", "detections"]


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory):
    return mono_depth.save_tiny_model(tmp_path_factory.mktemp("depth") / "tiny")


@pytest.fixture(scope="module", params=["torch", "onnx"])
def harness(request, tiny_depth_model, tmp_path_factory):
    if not rclpy.ok():
        rclpy.init()
    overrides = {"detector": "boxes", "depth_source": "model", "depth_model.model": str(tiny_depth_model),
                 "depth_model.device": "cpu", "diagnostics_period_s": 0.1, "frame_worker": "thread",
                 "stale_after_s": 0.4}
    if request.param == "onnx":
        onnx_dir = tmp_path_factory.mktemp("depth_onnx")
        mono_depth.export_onnx(str(tiny_depth_model), onnx_dir, image_size=(SCENE.camera.height,
                                                                            SCENE.camera.width))
        overrides.update({"depth_model.backend": "onnx", "depth_model.onnx_dir": str(onnx_dir)})
    with NodeHarness(overrides, namespace=f"rgb_only_{request.param}", slots=SLOTS) as h:
        yield h


def test_no_depth_topic_is_subscribed(harness):
    assert "depth" not in harness.node.slots
    assert set(harness.node.slots) == set(SLOTS)
    subscribers = harness.tester.get_subscriptions_info_by_topic(TOPICS["depth"])
    ns = harness.node.get_namespace()            # other tests' nodes may still be in the graph

    def ours(infos):
        return [s for s in infos if "spatial_perception" in s.node_name and s.node_namespace == ns]
    assert not ours(subscribers)
    assert wait_until(lambda: ours(harness.tester.get_subscriptions_info_by_topic(TOPICS["color"])), 5.0), \
        "the look-up itself finds the node's color subscription"
    assert harness.node.pipeline.depth_predictor is not None


def test_rgb_only_frames_run_through_the_depth_model(harness):
    """Color + camera info + boxes (no depth message at all) make a complete set; the frame reaches the
    pipeline (the random depth may or may not give liftable objects, so either outcome is accepted, but
    never a complaint about missing depth)."""
    stats = harness.node.stats
    for k in range(3):
        done = stats.frames_processed + stats.frames_failed
        harness.publish(frame_messages(SCENE, 300.0 + 0.1 * k))
        assert wait_until(lambda done=done: stats.frames_processed + stats.frames_failed > done, 30.0), \
            "the RGB-only frame was never matched and processed"
    assert harness.node.sync.stats.matched_sets >= 3
    error = stats.snapshot().last_error
    assert "depth image" not in error and "topics.depth" not in error, error
    status = harness.diagnostic_matching("")                  # the next status of this node
    assert status is not None and {kv.key: kv.value for kv in status.values}["depth_source"] == "model"
