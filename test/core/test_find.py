"""Scene queries (``find_objects``, ``SpatialQueries.find`` and the ``find`` questions) on the known tabletop of
``surface_fixtures``: every answer checked against the fixture's geometry."""
import numpy as np
import pytest
from reasoning_fixtures import make_scene, pitched_gravity
from surface_fixtures import tabletop, tabletop_queries, tabletop_scene

from spatial_vlm_ros.core.errors import QueryError, ResolutionError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.scene_queries import ORDER_KEYS, find_objects, parse_order

NOISE = DepthNoiseModel()


def _ids(result):
    return [m.object.id for m in result.matches]


def test_relational_queries():
    scene = tabletop_scene()
    assert _ids(find_objects(scene, "on", "box", noise=NOISE)) == ["lemon_1"]
    left = find_objects(scene, "left of", "bowl", noise=NOISE)
    bowl_x = next(o for o in scene.objects if o.id == "bowl_1").center[0]
    expected = {o.id for o in scene.objects if o.center[0] < bowl_x}
    assert set(_ids(left)) == expected == {"mug_1", "box_1", "lemon_1"}
    assert all(0.5 <= m.confidence <= 1.0 and m.margin_m > 0 for m in left.matches)
    assert left.relation == "left_of" and left.reference_id == "bowl_1" and left.considered == 5
    confidences = [m.confidence for m in left.matches]
    assert confidences == sorted(confidences, reverse=True)
    assert _ids(find_objects(scene, "on_top_of", "table", label_filter="mug", noise=NOISE)) == ["mug_1"]
    assert _ids(find_objects(scene, "above", "lemon", noise=NOISE)) == []


def test_orderings_against_the_geometry():
    scene = tabletop_scene()
    objects = list(scene.objects)
    ranges = {o.id: float(np.linalg.norm(o.center)) for o in objects}
    closest = find_objects(scene, order_by="distance_to_camera", limit=1, noise=NOISE)
    assert _ids(closest) == [min(ranges, key=ranges.get)]
    assert closest.matches[0].value == pytest.approx(min(ranges.values()))
    everything = find_objects(scene, order_by="distance_to_camera", noise=NOISE)
    assert [m.value for m in everything.matches] == sorted(ranges.values())
    tallest = find_objects(scene, order_by="height", noise=NOISE)
    assert _ids(tallest)[0] == "bottle_1" and tallest.descending
    assert _ids(find_objects(scene, order_by="height asc", limit=1, noise=NOISE)) == ["lemon_1"]
    assert _ids(find_objects(scene, order_by="-volume", limit=1, noise=NOISE)) == ["box_1"]
    mug = next(o for o in objects if o.id == "mug_1")
    dists = {o.id: float(np.linalg.norm(o.center - mug.center)) for o in objects if o.id != "mug_1"}
    nearest = find_objects(scene, reference="mug", noise=NOISE)        # a reference alone: nearest first
    assert nearest.order_by == "distance_to_reference" and _ids(nearest)[0] == min(dists, key=dists.get)
    assert [m.value for m in nearest.matches] == pytest.approx(sorted(dists.values()))
    edge = find_objects(scene, order_by="distance_to_edge", limit=1, noise=NOISE)
    assert _ids(edge) == ["can_1"]
    leftmost = find_objects(scene, order_by="leftmost", label_filter="mug", noise=NOISE)
    assert _ids(leftmost) == ["mug_1"]


def test_order_confidence_is_low_for_a_near_tie():
    g = pitched_gravity(35.0)
    from reasoning_fixtures import on_table
    scene = make_scene([on_table("a_1", 0.0, 0.8, (0.05, 0.05, 0.100), g),
                        on_table("b_1", 0.2, 0.8, (0.05, 0.05, 0.101), g),
                        on_table("c_1", 0.4, 0.8, (0.05, 0.05, 0.20), g)], g)
    tie = find_objects(scene, order_by="shortest", noise=NOISE)
    assert _ids(tie)[:2] == ["a_1", "b_1"] and tie.order_confidence < 0.75
    clear = find_objects(scene, order_by="tallest", noise=NOISE)
    assert _ids(clear)[0] == "c_1" and clear.order_confidence > 0.99


def test_parse_order():
    assert parse_order("height") == ("height", True)
    assert parse_order("height asc") == ("height", False)
    assert parse_order("-distance_to_camera") == ("distance_to_camera", True)
    assert parse_order("nearest", has_reference=True) == ("distance_to_reference", False)
    assert parse_order("") == ("", False)
    assert set(ORDER_KEYS) >= {"distance_to_camera", "distance_to_reference", "height", "volume"}


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(order_by="colorfulness"), QueryError, "unknown order key 'colorfulness'"),
    (dict(limit=-1), QueryError, "limit must be >= 1"),
    (dict(limit=0), QueryError, "limit must be >= 1"),
    (dict(limit=1.5), QueryError, "whole number"),
    (dict(relation="hugging", reference="mug"), QueryError, "unknown relation"),
    (dict(relation="on"), QueryError, "needs a reference"),
    (dict(order_by="distance_to_reference"), QueryError, "needs a reference"),
    (dict(relation="on", reference="sofa"), ResolutionError, "no object matches 'sofa'"),
    (dict(relation=3, reference="mug"), QueryError, "must be a string"),
])
def test_bad_requests(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        find_objects(tabletop_scene(), noise=NOISE, **kwargs)


def test_empty_scene_is_an_error():
    _, g = tabletop()
    with pytest.raises(QueryError, match="the scene is empty"):
        find_objects(make_scene([], g), "on", "table")


def test_the_facade_returns_typed_answers():
    q = tabletop_queries()
    a = q.find(relation="on", reference="table", order_by="height")
    assert a.success and [o.id for o in a.objects] == ["bottle_1", "box_1", "can_1", "mug_1", "bowl_1"]
    assert len(a.confidences) == len(a.values) == 5 and a.values[0] == pytest.approx(0.25)
    assert a.relation == "on_top_of" and a.reference_id == "table" and a.order_by == "height" and a.descending
    bad = q.find(order_by="nope")
    assert not bad.success and "unknown order key" in bad.message and bad.objects == ()
    assert not q.find(limit=-3).success


@pytest.mark.parametrize("question,ids,sentence", [
    ("What is on the box?", ["lemon_1"], "The lemon is on top of the box."),
    ("Which objects are on the table?", ["mug_1", "bowl_1", "box_1", "bottle_1", "can_1"], None),
    ("What is left of the bowl?", ["mug_1", "box_1", "lemon_1"], None),
    ("Which object is closest to the camera?", None, "closest to the camera"),
    ("What is the nearest object to the mug?", ["bowl_1"], "The bowl is the nearest to the mug"),
    ("Which object is the tallest?", ["bottle_1"], "The bottle is the tallest"),
    ("What is below the lemon?", ["box_1"], "The box is below the lemon."),
])
def test_find_questions(question, ids, sentence):
    q = tabletop_queries()
    a = q.ask(question)
    assert a.success and a.kind == "list", a.message
    assert a.query is not None and a.query.kind == "find"
    if ids is not None:
        direct = q.find(a.query.relation, a.query.reference, a.query.subject, a.query.order_by, a.query.limit or None)
        assert sorted(o.id for o in direct.objects) == sorted(ids)
    if sentence is not None:
        assert sentence in a.answer, a.answer
    assert 0.5 <= a.confidence <= 1.0


def test_closest_question_agrees_with_the_ranges():
    scene = tabletop_scene()
    ranges = {o.id: float(np.linalg.norm(o.center)) for o in scene.objects}
    a = tabletop_queries().ask("Which object is closest to the camera?")
    first = min(ranges, key=ranges.get)
    assert a.value == pytest.approx(ranges[first]) and first.split("_")[0] in a.answer
