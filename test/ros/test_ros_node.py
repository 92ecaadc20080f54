"""Integration: the real node in-process (MultiThreadedExecutor, non-daemon thread), analytic RGB-D frames
published over DDS, every topic and service checked against the scene's known geometry.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros``.
"""
import itertools
import threading

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from ros_harness import NodeHarness, default_scene, frame_messages, wait_until
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from spatial_vlm_interfaces.srv import Ask, GetRelation, ListObjects, Measure

SCENE = default_scene()
TRUTH = {t.label: t for t in SCENE.objects}
LENGTH_MARGIN_M = 0.02          # relations are only checked where the truth decides them by more than this
OVERRIDES = {"memory.timeout_s": 600.0, "diagnostics_period_s": 0.1}


@pytest.fixture(scope="module")
def harness():
    if not rclpy.ok():
        rclpy.init()
    with NodeHarness(OVERRIDES, namespace="it") as h:
        for k in range(3):
            assert h.publish_and_wait(frame_messages(SCENE, 100.0 + 0.1 * k)), "frame not processed"
        later = itertools.count(3)
        assert h.publish_until_outputs(lambda: frame_messages(SCENE, 100.0 + 0.1 * next(later))), \
            "nothing arrived on ~/objects and ~/markers"
        yield h


def _truth_relations(a, b):
    """(relation, holds, margin) from the analytic truth, margins in metres (volume: relative)."""
    ga, gb = SCENE.gravity.to_gravity(a.center_c), SCENE.gravity.to_gravity(b.center_c)
    va, vb = float(np.prod(a.size)), float(np.prod(b.size))
    return [
        ("left_of", a.center_c[0] < b.center_c[0], abs(a.center_c[0] - b.center_c[0])),
        ("right_of", a.center_c[0] > b.center_c[0], abs(a.center_c[0] - b.center_c[0])),
        ("in_front_of", a.center_c[2] < b.center_c[2], abs(a.center_c[2] - b.center_c[2])),
        ("behind", a.center_c[2] > b.center_c[2], abs(a.center_c[2] - b.center_c[2])),
        ("closer_to_camera", np.linalg.norm(a.center_c) < np.linalg.norm(b.center_c),
         abs(np.linalg.norm(a.center_c) - np.linalg.norm(b.center_c))),
        ("higher_than", ga[2] > gb[2], abs(ga[2] - gb[2])),
        ("taller_than", a.size[2] > b.size[2], abs(a.size[2] - b.size[2])),
        ("wider_than", a.size[0] > b.size[0], abs(a.size[0] - b.size[0])),
        ("bigger_than", va > vb, LENGTH_MARGIN_M * 2 if max(va, vb) > 1.5 * min(va, vb) else 0.0),
    ]


def test_objects_topic_and_list_objects_match_the_scene(harness):
    assert wait_until(lambda: harness.objects and len(harness.objects[-1].objects) == 3, 5.0), \
        f"~/objects: {[len(m.objects) for m in harness.objects]} (objects per message received)"
    assert harness.objects[-1].header.frame_id == "camera"
    res = harness.call(ListObjects, "list_objects")
    assert res.success and len(res.objects) == 3
    for obj in res.objects:
        truth = TRUTH[obj.label]
        assert obj.id == f"{obj.label}_1"
        assert obj.observations == 3
        center = np.array([obj.center.x, obj.center.y, obj.center.z])
        assert np.linalg.norm(center - truth.center_c) < 0.015, obj.id
        assert np.allclose([obj.size.x, obj.size.y, obj.size.z], truth.size, atol=0.01), obj.id
    only = harness.call(ListObjects, "list_objects", label_filter="mug")
    assert only.success and [o.id for o in only.objects] == ["mug_1"]
    none = harness.call(ListObjects, "list_objects", label_filter="teapot")
    assert none.success and not none.objects and "book_1" in none.message


def test_markers_are_boxes_and_labels_in_the_camera_frame(harness):
    assert wait_until(lambda: bool(harness.markers), 5.0)
    markers = harness.markers[-1].markers
    assert markers[0].action == Marker.DELETEALL
    boxes = [m for m in markers if m.ns == "boxes"]
    labels = sorted(m.text for m in markers if m.ns == "labels")
    assert len(boxes) == 3 and labels == ["book_1", "box_1", "mug_1"]
    assert all(m.type == Marker.CUBE and m.header.frame_id == "camera" for m in boxes)


def test_get_relation_agrees_with_the_truth(harness):
    checked = 0
    for a, b in itertools.permutations(TRUTH.values(), 2):
        for relation, holds, margin in _truth_relations(a, b):
            if margin < LENGTH_MARGIN_M:
                continue
            res = harness.call(GetRelation, "get_relation", subject=a.label, relation=relation, reference=b.label)
            assert res.success, res.message
            assert res.holds == holds, f"{a.label} {relation} {b.label}: {res.message}"
            assert 0.5 <= res.confidence <= 1.0 and res.answer
            checked += 1
    assert checked >= 30


def test_measure_agrees_with_the_truth(harness):
    box, mug = TRUTH["box"], TRUTH["mug"]
    res = harness.call(Measure, "measure", quantity="distance", subject="box", reference="mug")
    assert res.success and res.value == pytest.approx(np.linalg.norm(box.center_c - mug.center_c), abs=0.02)
    assert 0.0 < res.uncertainty < 0.02 and "cm" in res.answer
    for label, truth in TRUTH.items():
        res = harness.call(Measure, "measure", quantity="height", subject=label)
        assert res.success and res.value == pytest.approx(truth.size[2], abs=0.01), label
        res = harness.call(Measure, "measure", quantity="distance_to_camera", subject=f"{label}_1")
        assert res.success and res.value == pytest.approx(np.linalg.norm(truth.center_c), abs=0.02), label


def test_ask_answers_template_questions(harness):
    box, mug = TRUTH["box"], TRUTH["mug"]
    res = harness.call(Ask, "ask", question="Is the box to the left of the mug?")
    assert res.success and res.kind == "yes_no" and res.yes == (box.center_c[0] < mug.center_c[0])
    res = harness.call(Ask, "ask", question="Is the mug to the left of the box?")
    assert res.success and res.kind == "yes_no" and res.yes == (mug.center_c[0] < box.center_c[0])
    res = harness.call(Ask, "ask", question="How far apart are the box and the mug?")
    assert res.success and res.kind == "metric"
    assert res.value == pytest.approx(np.linalg.norm(box.center_c - mug.center_c), abs=0.02)
    res = harness.call(Ask, "ask", question="Which is taller, the box or the mug?")
    assert res.success and res.kind == "choice" and "box" in res.answer.lower()
    res = harness.call(Ask, "ask", question="How tall is the book?")
    assert res.success and res.value == pytest.approx(TRUTH["book"].size[2], abs=0.01)


@pytest.mark.parametrize("srv,name,fields,needle", [
    (GetRelation, "get_relation", dict(subject="teapot", relation="left_of", reference="mug"), "box_1"),
    (GetRelation, "get_relation", dict(subject="box", relation="inside", reference="mug"), "inside"),
    (GetRelation, "get_relation", dict(subject="", relation="left_of", reference="mug"), "subject"),
    (GetRelation, "get_relation", dict(subject="box", relation="left_of", reference=""), "reference"),
    (Measure, "measure", dict(quantity="weight", subject="box", reference="mug"), "weight"),
    (Measure, "measure", dict(quantity="distance", subject="box", reference=""), "reference"),
    (Measure, "measure", dict(quantity="height", subject="the green teapot"), "box_1"),
    (Ask, "ask", dict(question=""), ""),
    (Ask, "ask", dict(question="Is the unicorn left of the box?"), "unicorn"),
    (Ask, "ask", dict(question="asdf qwer zxcv"), "could not parse"),
])
def test_malformed_requests_get_clear_errors(harness, srv, name, fields, needle):
    res = harness.call(srv, name, **fields)
    assert res.success is False
    assert res.message and needle in res.message, res.message


def test_diagnostics_report_rate_latency_and_drops(harness):
    status = harness.diagnostic_matching("objects", level=DiagnosticStatus.OK)
    last = [(st.level, st.message) for a in harness.diagnostics[-3:] for st in a.status]
    assert status is not None, f"no OK status; last ones: {last}"
    values = {kv.key: kv.value for kv in status.values}
    for key in ("frame_rate_hz", "latency_p50_ms", "latency_p95_ms", "dropped_stale_frames",
                "dropped_unmatched_messages", "last_error", "gravity"):
        assert key in values
    assert int(values["frames_processed"]) >= 3 and float(values["latency_p95_ms"]) > 0.0
    assert values["gravity"].startswith("support plane fitted")


@pytest.fixture(scope="module")
def thread_harness():
    """The node with its frame worker in a thread of this process (``frame_worker: thread``), so the test
    can reach into its pipeline."""
    if not rclpy.ok():
        rclpy.init()
    with NodeHarness({**OVERRIDES, "frame_worker": "thread"}, namespace="it_thread") as h:
        for k in range(3):
            assert h.publish_and_wait(frame_messages(SCENE, 100.0 + 0.1 * k)), "frame not processed"
        later = itertools.count(3)
        assert h.publish_until_outputs(lambda: frame_messages(SCENE, 100.0 + 0.1 * next(later))), \
            "nothing arrived on ~/objects and ~/markers"
        yield h


def test_services_answer_while_a_frame_is_processed_and_stale_frames_are_dropped(thread_harness):
    """Block the frame thread inside the pipeline; services still answer; of the frames that arrive meanwhile
    only the newest is processed afterwards."""
    harness = thread_harness
    node = harness.node
    entered, release = threading.Event(), threading.Event()
    original = node.pipeline.process
    stamps = []

    def blocking(frame):
        stamps.append(frame.stamp)
        entered.set()
        release.wait(10.0)
        return original(frame)

    node.pipeline.process = blocking
    try:
        dropped, processed = node.handoff.dropped, node.stats.frames_processed
        harness.publish(frame_messages(SCENE, 200.0))
        assert entered.wait(5.0)
        puts = node.handoff.put_count
        for k in range(1, 4):                                  # arrive while the worker is busy
            harness.publish(frame_messages(SCENE, 200.0 + 0.1 * k))
            assert wait_until(lambda k=k: node.handoff.put_count == puts + k, 5.0)
        assert wait_until(lambda: node.handoff.dropped >= dropped + 2, 5.0)
        res = harness.call(GetRelation, "get_relation", timeout=2.0, subject="box", relation="left_of",
                           reference="mug")
        assert res.success and res.holds
    finally:
        release.set()
    assert wait_until(lambda: node.stats.frames_processed == processed + 2, 5.0)
    node.pipeline.process = original
    assert stamps == [200.0, pytest.approx(200.3)]
    assert node.handoff.dropped == dropped + 2


def test_reset_clears_memory_and_ids_restart(harness):
    res = harness.call(Trigger, "reset")
    assert res.success and "3 object(s) removed" in res.message
    assert harness.call(ListObjects, "list_objects").objects == []
    assert harness.publish_and_wait(frame_messages(SCENE, 300.0))
    ids = sorted(o.id for o in harness.call(ListObjects, "list_objects").objects)
    assert ids == ["book_1", "box_1", "mug_1"]
