"""Integration: the node with ``detector: boxes`` through rclpy. Color, depth, camera info and
``spatial_vlm_interfaces/Detections2D`` (the tight boxes of the analytic scene's masks; no masks are sent)
are matched by stamp; ``~/objects`` and the query services answer from the box-segmented objects. Bad input
(zero detections, boxes outside the image, NaN/negative scores, a silent detections topic) leaves the node
alive and its memory intact, with the reason in /diagnostics. Also: ``~/set_classes`` on a detector without
class prompts, and the startup error for vision_msgs where it is not installed.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros``.
"""
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from ros_harness import NodeHarness, default_scene, frame_messages, memory_rows, stamp_clock, wait_until

from spatial_vlm_interfaces.msg import Detections2D
from spatial_vlm_interfaces.srv import GetRelation, ListObjects, Measure, SetClasses
from spatial_vlm_ros.core.errors import SpatialError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode

SCENE = default_scene()
TRUTH = {t.label: t for t in SCENE.objects}
OVERRIDES = {"detector": "boxes", "memory.timeout_s": 600.0, "diagnostics_period_s": 0.1,
             "stale_after_s": 0.4}
SLOTS = ["color", "depth", "camera_info", "detections"]
_next_stamp = stamp_clock(200.0)


@pytest.fixture(scope="module")
def harness():
    if not rclpy.ok():
        rclpy.init()
    with NodeHarness(OVERRIDES, namespace="boxes", slots=SLOTS) as h:
        for _ in range(2):
            assert h.publish_and_wait(frame_messages(SCENE, _next_stamp())), "frame not processed"
        yield h


def _with_boxes(boxes):
    msgs = frame_messages(SCENE, _next_stamp())
    msgs.detections = conv.detections_to_msg(boxes, msgs.color.header.stamp, msgs.color.header.frame_id)
    return msgs


def test_subscribes_detections_and_no_instances(harness):
    assert set(harness.node.slots) == set(SLOTS)
    ns = harness.node.get_namespace()            # other tests' nodes may still be in the graph

    def ours(topic):
        return [i for i in harness.tester.get_subscriptions_info_by_topic(topic) if i.node_namespace == ns]
    assert [i.topic_type for i in ours("/camera/detections")] == ["spatial_vlm_interfaces/msg/Detections2D"]
    assert not ours("/camera/instances")


def test_objects_from_boxes_match_the_scene(harness):
    assert wait_until(lambda: harness.objects and len(harness.objects[-1].objects) == 3, 5.0)
    objects = {o.label: o for o in harness.objects[-1].objects}
    assert sorted(objects) == sorted(TRUTH)
    for label, obj in objects.items():
        center = np.array([obj.center.x, obj.center.y, obj.center.z])
        assert np.linalg.norm(center - TRUTH[label].center_c) < 0.02, label
        assert np.allclose([obj.size.x, obj.size.y, obj.size.z], TRUTH[label].size, atol=0.015), label


def test_relations_and_measures_answer(harness):
    box, mug = TRUTH["box"], TRUTH["mug"]
    res = harness.call(GetRelation, "get_relation", subject="box", relation="left_of", reference="mug")
    assert res.success and res.holds == bool(box.center_c[0] < mug.center_c[0]), res.message
    res = harness.call(GetRelation, "get_relation", subject="box", relation="taller_than", reference="book")
    assert res.success and res.holds, res.message
    res = harness.call(Measure, "measure", quantity="distance", subject="box", reference="mug")
    assert res.success and res.value == pytest.approx(np.linalg.norm(box.center_c - mug.center_c), abs=0.02)
    res = harness.call(Measure, "measure", quantity="height", subject="mug")
    assert res.success and res.value == pytest.approx(mug.size[2], abs=0.01)


def test_set_classes_is_refused_by_a_detector_without_prompts(harness):
    res = harness.call(SetClasses, "set_classes", classes=["mug", "bowl"])
    assert not res.success and res.message == "detector 'boxes' takes no class prompt"
    assert harness.call(ListObjects, "list_objects").success


def test_zero_detections_are_no_objects_not_an_error(harness):
    before = memory_rows(harness)
    failed = harness.node.stats.frames_failed
    assert harness.publish_and_wait(_with_boxes([]))
    assert harness.node.stats.frames_failed == failed
    assert memory_rows(harness) == before                       # nothing seen: nothing changes (timeout 600 s)


def test_bad_boxes_are_skipped_with_warnings_and_memory_intact(harness):
    before = memory_rows(harness)
    mug_box = next(d for d in conv.detections_from_msg(frame_messages(SCENE, 0.0).detections) if d.label == "mug")
    w, h = SCENE.camera.width, SCENE.camera.height
    bad = [Detection2D("mug", float("nan"), mug_box.center_x, mug_box.center_y, mug_box.size_x, mug_box.size_y),
           Detection2D("mug", -0.5, mug_box.center_x, mug_box.center_y, mug_box.size_x, mug_box.size_y),
           Detection2D("ghost", 0.9, w + 100.0, h + 100.0, 20.0, 20.0),
           Detection2D("ghost", 0.9, 50.0, 50.0, -4.0, 10.0)]
    failed = harness.node.stats.frames_failed
    assert harness.publish_and_wait(_with_boxes(bad))
    assert harness.node.stats.frames_failed == failed
    status = harness.diagnostic_matching("invalid score nan", DiagnosticStatus.WARN)
    assert status is not None, "NaN score not reported in /diagnostics"
    blob = status.message + " " + " ".join(kv.value for kv in status.values)
    assert "invalid score -0.5" in blob and "outside the" in blob and "not positive" in blob
    assert memory_rows(harness) == before
    assert harness.call(GetRelation, "get_relation", subject="box", relation="left_of", reference="mug").success


def _publish_until_diagnostic(harness, slots: list[str], text: str, timeout_s: float = 1.5):
    """Publish frames with only ``slots`` until a diagnostics status containing ``text`` arrives (or None)."""
    deadline = time.monotonic() + timeout_s
    found = None
    while time.monotonic() < deadline and found is None:
        harness.publish(frame_messages(SCENE, _next_stamp()), slots=slots)
        found = harness.diagnostic_matching(text, timeout=0.1)
    return found


def test_silent_detections_topic_is_named_in_diagnostics(harness):
    before = memory_rows(harness)
    processed = harness.node.stats.frames_processed
    found = _publish_until_diagnostic(harness, ["color", "depth", "camera_info"],
                                      "no messages on /camera/detections")
    assert found is not None and "every color frame" in found.message
    assert harness.node.stats.frames_processed == processed
    assert memory_rows(harness) == before
    assert harness.publish_and_wait(frame_messages(SCENE, _next_stamp()))      # recovers with boxes again


def test_rgb_only_frames_when_depth_is_expected_suggest_depth_source_model(harness):
    before = memory_rows(harness)
    processed = harness.node.stats.frames_processed
    found = _publish_until_diagnostic(harness, ["color", "camera_info", "detections"],
                                      "no messages on /camera/aligned_depth_to_color/image_raw")
    assert found is not None and "depth_source: model" in found.message, found
    assert harness.node.stats.frames_processed == processed and memory_rows(harness) == before
    assert harness.publish_and_wait(frame_messages(SCENE, _next_stamp()))


def test_vision_msgs_requested_but_missing_is_a_startup_error():
    if conv.VisionDetection2DArray is not None:
        pytest.skip("vision_msgs is installed here")
    if not rclpy.ok():
        rclpy.init()
    params = [rclpy.parameter.Parameter("detector", value="boxes"),
              rclpy.parameter.Parameter("detections_msg", value="vision_msgs/Detection2DArray")]
    with pytest.raises(SpatialError, match="vision_msgs is not installed"):
        SpatialPerceptionNode(parameter_overrides=params, namespace="vision")


def test_detections_message_type_is_the_contract():
    fields = Detections2D.get_fields_and_field_types()
    assert fields == {"header": "std_msgs/Header", "detections": "sequence<spatial_vlm_interfaces/Detection2D>"}
    from spatial_vlm_interfaces.msg import Detection2D as Msg
    assert Msg.get_fields_and_field_types() == {
        "label": "string", "score": "float", "id": "string", "center_x": "double", "center_y": "double",
        "size_x": "double", "size_y": "double"}
