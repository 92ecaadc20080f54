"""Integration: the node with ``detector: open_vocab`` on a tiny randomly initialised Grounding DINO (built
from a transformers config in the test; no download). RGB-D frames in, ``~/objects`` out; ``~/set_classes``
refuses an empty list (the previous classes stay) and accepts phrases. PLUMBING ONLY: the random model's
boxes mean nothing, so nothing here checks what is detected.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros``.
"""
import pytest
import rclpy
from ros_harness import NodeHarness, default_scene, frame_messages, wait_until

from spatial_vlm_interfaces.srv import ListObjects, SetClasses
from spatial_vlm_ros.perception import open_vocab

SCENE = default_scene(160, 120)


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    return open_vocab.save_tiny_model(tmp_path_factory.mktemp("open_vocab") / "tiny")


@pytest.fixture(scope="module")
def harness(tiny_detector):
    if not rclpy.ok():
        rclpy.init()
    overrides = {"detector": "open_vocab", "open_vocab.model": str(tiny_detector), "open_vocab.device": "cpu",
                 "open_vocab.classes": ["mug"], "diagnostics_period_s": 0.1, "frame_worker": "thread"}
    with NodeHarness(overrides, namespace="ov", with_instances=False) as h:
        yield h


def test_subscribes_no_instances_or_boxes(harness):
    assert set(harness.node.slots) == {"color", "depth", "camera_info"}


def test_set_classes_refuses_an_empty_list_and_accepts_phrases(harness):
    detector = harness.node.pipeline.detector
    refused = harness.call(SetClasses, "set_classes", classes=[])
    assert not refused.success and "empty" in refused.message
    assert tuple(detector.classes) == ("mug",)                     # the previous classes stay
    accepted = harness.call(SetClasses, "set_classes", classes=["mug", "cutting board"])
    assert accepted.success and "cutting board" in accepted.message, accepted.message
    assert tuple(detector.classes) == ("mug", "cutting board")


def test_frames_in_objects_out(harness):
    stats = harness.node.stats
    for k in range(2):
        n_objects = len(harness.objects)
        assert harness.publish_and_wait(frame_messages(SCENE, 400.0 + 0.1 * k), timeout=30.0), \
            f"frame not processed: {stats.snapshot().last_error}"
        assert wait_until(lambda n=n_objects: len(harness.objects) > n, 5.0), "no ~/objects after a processed frame"
    assert harness.objects[-1].header.stamp.sec == 400
    assert harness.call(ListObjects, "list_objects").success
