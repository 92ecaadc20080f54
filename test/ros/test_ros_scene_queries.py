"""Integration: ``~/find``, ``~/check_placement`` and ``~/get_relation``'s threshold through the real node, on
an analytic tabletop scene whose geometry is known (three objects on a table, ``ros_harness.default_scene``).

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros/test_ros_scene_queries.py``.
"""
import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Point, Vector3
from ros_harness import NodeHarness, default_scene, frame_messages
from std_srvs.srv import Trigger

from spatial_vlm_interfaces.srv import Ask, CheckPlacement, FindObjects, GetRelation

SCENE = default_scene()
TRUTH = {t.label: t for t in SCENE.objects}
OVERRIDES = {"memory.timeout_s": 600.0}


@pytest.fixture(scope="module")
def harness():
    if not rclpy.ok():
        rclpy.init()
    with NodeHarness(OVERRIDES, namespace="sq") as h:
        for k in range(3):
            assert h.publish_and_wait(frame_messages(SCENE, 300.0 + 0.1 * k)), "frame not processed"
        yield h


def _v(x, y, z):
    return Vector3(x=float(x), y=float(y), z=float(z))


def _p(x, y, z):
    return Point(x=float(x), y=float(y), z=float(z))


def _ids(res) -> list[str]:
    return [o.id for o in res.objects]


def _footprint_gap(a, b) -> float:
    """Free length between the truth footprints (gravity x-y rectangles) of ``a`` and ``b`` along the line
    through their centers, metres."""
    ca, cb = (a.box_min_g[:2] + a.box_max_g[:2]) / 2, (b.box_min_g[:2] + b.box_max_g[:2]) / 2
    d = cb - ca

    def exit_param(lo, hi, origin, direction):      # largest t with origin + t d inside [lo, hi]
        return min((hi[k] - origin[k]) / direction[k] if direction[k] > 0 else (lo[k] - origin[k]) / direction[k]
                   for k in range(2) if abs(direction[k]) > 1e-12)
    t_a = exit_param(a.box_min_g[:2], a.box_max_g[:2], ca, d)
    t_b = 1.0 - exit_param(b.box_min_g[:2], b.box_max_g[:2], cb, -d)
    return float((t_b - t_a) * np.linalg.norm(d))


def _point_to_footprint(p, t) -> float:
    """Distance (metres) from the gravity x-y point ``p`` to the truth footprint rectangle of ``t``."""
    return float(np.linalg.norm(np.maximum(np.maximum(t.box_min_g[:2] - p, p - t.box_max_g[:2]), 0.0)))


def test_find_unary_orders_match_the_truth(harness):
    nearest = min(TRUTH.values(), key=lambda t: np.linalg.norm(t.center_c))
    res = harness.call(FindObjects, "find", order_by="distance_to_camera", limit=1)
    assert res.success, res.message
    assert _ids(res) == [f"{nearest.label}_1"] and res.order_by == "distance_to_camera" and not res.descending
    assert len(res.values) == 1 and res.values[0] == pytest.approx(np.linalg.norm(nearest.center_c), abs=0.02)
    assert 0.5 <= res.order_confidence <= 1.0
    tallest = max(TRUTH.values(), key=lambda t: t.size[2])
    res = harness.call(FindObjects, "find", order_by="tallest", limit=1)
    assert res.success and _ids(res) == [f"{tallest.label}_1"] and res.descending
    assert res.values[0] == pytest.approx(tallest.size[2], abs=0.015)
    every = harness.call(FindObjects, "find", order_by="height", limit=10)
    heights = [TRUTH[o.label].size[2] for o in every.objects]
    assert every.success and len(every.objects) == 3 and heights == sorted(heights, reverse=True)


def test_find_relations_match_the_truth(harness):
    on_table = harness.call(FindObjects, "find", relation="on_top_of", reference="table", limit=10)
    assert on_table.success, on_table.message
    assert sorted(_ids(on_table)) == ["book_1", "box_1", "mug_1"] and on_table.reference_id == "table"
    assert len(on_table.confidences) == 3 and min(on_table.confidences) > 0.9
    mug_x = TRUTH["mug"].center_c[0]
    left = harness.call(FindObjects, "find", relation="left_of", reference="mug", limit=10)
    truth_left = sorted(f"{t.label}_1" for t in TRUTH.values() if t.center_c[0] < mug_x - 0.02)
    assert left.success and sorted(_ids(left)) == truth_left and left.relation == "left_of"
    nearest_to_box = min((t for t in TRUTH.values() if t.label != "box"),
                         key=lambda t: np.linalg.norm(t.center_c - TRUTH["box"].center_c))
    res = harness.call(FindObjects, "find", order_by="distance_to_reference", reference="box", limit=1)
    assert res.success and _ids(res) == [f"{nearest_to_box.label}_1"] and res.reference_id == "box_1"
    filtered = harness.call(FindObjects, "find", relation="on_top_of", reference="table", label_filter="book",
                            limit=5)
    assert filtered.success and _ids(filtered) == ["book_1"]


def test_find_objects_carry_the_box_pose(harness):
    res = harness.call(FindObjects, "find", label_filter="mug", limit=1)
    assert res.success and _ids(res) == ["mug_1"]
    obj = res.objects[0]
    center = np.array([obj.center.x, obj.center.y, obj.center.z])
    assert np.linalg.norm(center - TRUTH["mug"].center_c) < 0.015
    q = np.array([obj.orientation.x, obj.orientation.y, obj.orientation.z, obj.orientation.w])
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fields,needle", [
    (dict(order_by="height", limit=0), "limit must be >= 1"),
    (dict(order_by="colorfulness", limit=1), "unknown order key"),
    (dict(relation="hugging", reference="mug", limit=1), "unknown relation"),
    (dict(relation="on_top_of", reference="sofa", limit=1), "no object matches 'sofa'"),
    (dict(order_by="distance_to_reference", limit=1), "needs a reference"),
])
def test_find_bad_requests_fail_clearly(harness, fields, needle):
    res = harness.call(FindObjects, "find", **fields)
    assert not res.success and needle in res.message, res.message
    assert not res.objects and not res.confidences and not res.values


def test_placement_between_two_objects_knows_the_free_width(harness):
    gap = _footprint_gap(TRUTH["box"], TRUTH["mug"])
    small = harness.call(CheckPlacement, "check_placement", size=_v(0.10, 0.10, 0.10), location="between",
                         references=["box", "mug"], clearance=0.01)
    assert small.success, small.message
    assert small.fits and small.confidence > 0.95 and small.margin > 0.02     # the book behind limits it (~4 cm)
    assert small.free_width == pytest.approx(gap, abs=0.03), (small.free_width, gap)
    assert sorted(small.reference_ids) == ["box_1", "mug_1"] and small.support_id == "table"
    center_g = np.array([small.center_gravity.x, small.center_gravity.y, small.center_gravity.z])
    box_x, mug_x = TRUTH["box"].box_max_g[0], TRUTH["mug"].box_min_g[0]       # the facing sides
    assert box_x + 0.05 < center_g[0] < mug_x - 0.05                           # in the gap
    for t in TRUTH.values():                  # clear of every true footprint by about half the box (+ clearance)
        assert _point_to_footprint(center_g[:2], t) > 0.05, t.label
    assert center_g[2] == pytest.approx(TRUTH["box"].box_min_g[2] + 0.05, abs=0.015)   # standing on the table
    position = np.array([small.pose.position.x, small.pose.position.y, small.pose.position.z])
    assert np.allclose(SCENE.gravity.to_gravity(position), center_g, atol=0.02)
    q = small.pose.orientation
    assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0, abs=1e-6)
    too_wide = gap + 0.06        # no turn of a square box this wide fits the corridor
    big = harness.call(CheckPlacement, "check_placement", size=_v(too_wide, too_wide, 0.10), location="between",
                       references=["box", "mug"])
    assert big.success and not big.fits and big.margin < 0 and big.confidence > 0.9, big.message
    assert "Is there" not in big.answer and big.answer


def test_placement_on_an_object_and_at_a_point(harness):
    book = TRUTH["book"]
    on_book = harness.call(CheckPlacement, "check_placement", size=_v(0.05, 0.05, 0.05), location="on",
                           references=["book"])
    assert on_book.success and on_book.fits and on_book.support_id == "book_1", on_book.message
    assert on_book.center_gravity.z == pytest.approx(book.box_max_g[2] + 0.025, abs=0.015)
    on_box_too_big = harness.call(CheckPlacement, "check_placement", size=_v(0.30, 0.30, 0.05), location="on",
                                  references=["book"])
    assert on_box_too_big.success and not on_box_too_big.fits
    inside_mug = (TRUTH["mug"].box_min_g + TRUTH["mug"].box_max_g) / 2
    at_mug = harness.call(CheckPlacement, "check_placement", size=_v(0.05, 0.05, 0.05), location="at",
                          point=_p(*inside_mug[:2], 0.0), use_yaw=True, yaw=0.3)
    assert at_mug.success and not at_mug.fits and at_mug.yaw == pytest.approx(0.3), at_mug.message


@pytest.mark.parametrize("size,fields,needle", [
    ((-0.1, 0.1, 0.1), dict(location="between", references=["box", "mug"]), "size must be positive"),
    ((0.1, float("nan"), 0.1), dict(location="on", references=["book"]), "size must be three finite"),
    ((0.1, 0.1, 0.1), dict(location="between", references=["box"]), "needs 2 reference"),
    ((0.1, 0.1, 0.1), dict(location="inside", references=["box"]), "unknown placement location"),
    ((0.1, 0.1, 0.1), dict(location="on", references=["teapot"]), "no object matches 'teapot'"),
    ((0.1, 0.1, 0.1), dict(location="on", references=["book"], clearance=-0.01), "clearance"),
])
def test_placement_bad_requests_fail_clearly(harness, size, fields, needle):
    res = harness.call(CheckPlacement, "check_placement", size=_v(*size), **fields)
    assert not res.success and needle in res.message, res.message


def test_thresholded_relation(harness):
    d = float(np.linalg.norm(TRUTH["mug"].center_c - TRUTH["box"].center_c))
    inside = harness.call(GetRelation, "get_relation", subject="mug", relation="within", reference="box",
                          threshold=d + 0.05)
    outside = harness.call(GetRelation, "get_relation", subject="mug", relation="within", reference="box",
                           threshold=d - 0.05)
    assert inside.success and inside.holds and inside.confidence > 0.95, inside.message
    assert outside.success and not outside.holds and outside.confidence > 0.95, outside.message
    taller = TRUTH["box"].size[2] - TRUTH["mug"].size[2]            # box 16 cm, mug 10 cm
    yes = harness.call(GetRelation, "get_relation", subject="box", relation="taller_than", reference="mug",
                       threshold=taller - 0.03)
    no = harness.call(GetRelation, "get_relation", subject="box", relation="taller_than", reference="mug",
                      threshold=taller + 0.03)
    assert yes.holds and not no.holds and yes.confidence > 0.9 and no.confidence > 0.9
    plain = harness.call(GetRelation, "get_relation", subject="box", relation="taller_than", reference="mug")
    assert plain.success and plain.holds                          # threshold 0: the plain relation
    bad = harness.call(GetRelation, "get_relation", subject="box", relation="left_of", reference="mug",
                       threshold=0.1)
    assert not bad.success and "takes no threshold" in bad.message
    negative = harness.call(GetRelation, "get_relation", subject="box", relation="within", reference="mug",
                            threshold=-0.1)
    assert not negative.success and "threshold" in negative.message


def test_ask_reaches_the_same_answers(harness):
    res = harness.call(Ask, "ask", question="Which objects are on the table?")
    assert res.success and res.kind == "list" and res.value == 3.0, res.message
    res = harness.call(Ask, "ask", question="Is there space to put a 10 cm box between the box and the mug?")
    assert res.success and res.kind == "yes_no" and res.yes, res.message
    assert res.value == pytest.approx(_footprint_gap(TRUTH["box"], TRUTH["mug"]), abs=0.03)
    res = harness.call(Ask, "ask", question="Is the mug within 20 cm of the box?")
    assert res.success and res.kind == "yes_no"
    assert res.yes == (np.linalg.norm(TRUTH["mug"].center_c - TRUTH["box"].center_c) < 0.2)
    res = harness.call(Ask, "ask", question="How high is the book above the table?")
    assert res.success and res.kind == "metric" and res.value == pytest.approx(0.0, abs=0.015), res.message
    res = harness.call(Ask, "ask", question="Does the teapot sing?")
    assert not res.success and res.kind == "" and res.message.startswith("not understood")


def test_an_empty_scene_is_a_clear_error(harness):
    assert harness.call(Trigger, "reset").success
    res = harness.call(FindObjects, "find", order_by="height", limit=1)
    assert not res.success and "no objects" in res.message.lower(), res.message
    res = harness.call(CheckPlacement, "check_placement", size=_v(0.1, 0.1, 0.1), location="on",
                       references=["table"])
    assert not res.success and res.message
