"""Ground-truth frames -> query records, frame sets, and centre matching of the node's objects."""
import numpy as np
import pytest

from spatial_vlm_ros.evaluation.matching import match_objects
from spatial_vlm_ros.evaluation.truth_queries import (askable_objects, frame_queries, frame_sets, label_names)


def _obj(oid, label, center, visible=True, size=(0.1, 0.1, 0.1)):
    return {"id": oid, "label": label, "center": list(center), "size": list(size), "visible": visible,
            "in_view": True, "box_min": [0, 0, 0], "box_max": [0, 0, 0]}


def _frame(stamp_ns=2_000_000_000, scene="scene_0000"):
    return {
        "stamp_ns": stamp_ns, "scene_id": scene,
        "objects": [_obj("mug_1", "mug", (0.0, 0.0, 1.0)), _obj("bowl_1", "bowl", (0.3, 0.0, 2.0)),
                    _obj("can_1", "can", (0.1, 0.0, 1.0), visible=False),
                    _obj("cup_1", "cup", (0.5, 0.0, 1.0)), _obj("cup_2", "cup", (0.6, 0.0, 1.0))],
        "relations": [
            {"relation": "left_of", "subject": "mug_1", "reference": "bowl_1", "holds": True, "ambiguous": False},
            {"relation": "left_of", "subject": "bowl_1", "reference": "mug_1", "holds": False, "ambiguous": True},
            {"relation": "above", "subject": "mug_1", "reference": "can_1", "holds": False, "ambiguous": False},
            {"relation": "above", "subject": "mug_1", "reference": "cup_1", "holds": False, "ambiguous": False},
        ],
        "quantities": [
            {"quantity": "distance", "subject": "mug_1", "reference": "bowl_1", "value_m": 1.044},
            {"quantity": "height", "subject": "bowl_1", "reference": None, "value_m": 0.08},
        ],
    }


def test_frame_queries_names_skips_and_truth():
    frame = _frame()
    visible = askable_objects(frame)
    assert set(visible) == {"mug_1", "bowl_1", "cup_1", "cup_2"}
    names = label_names(visible)
    assert names == {"mug_1": "mug", "bowl_1": "bowl"}       # the two cups share a label
    records, skipped = frame_queries(frame, names)
    assert skipped["object not visible"] == 1 and sum(skipped.values()) == 2
    rel = [r for r in records if r.kind == "relation"]
    assert [(r.subject, r.name, r.reference, r.truth, r.ambiguous) for r in rel] == [
        ("mug", "left_of", "bowl", True, False), ("bowl", "left_of", "mug", False, True)]
    qty = [r for r in records if r.kind == "quantity"]
    assert qty[0].truth == pytest.approx(1.044) and qty[0].reference == "bowl"
    assert qty[1].reference == "" and qty[1].subject_range_m == pytest.approx(np.hypot(0.3, 2.0))
    assert records[0].frame_stamp == pytest.approx(2.0) and records[0].scene == "scene_0000"


def test_frame_sets_group_consecutive_frames_of_a_scene():
    frames = {1: {"scene_id": "a"}, 2: {"scene_id": "a"}, 3: {"scene_id": "b"}, 4: {}, 5: {}}
    sets = frame_sets(frames)
    assert [(s.scene, s.stamps_ns) for s in sets] == [("a", [1, 2]), ("b", [3]), ("frame_4", [4]),
                                                       ("frame_5", [5])]
    assert sets[0].last == 2


def test_match_objects_is_one_to_one_and_gated():
    gt = {"mug_1": {"center": [0, 0, 1], "size": [0.08, 0.08, 0.1]},
          "bowl_1": {"center": [0.1, 0, 1], "size": [0.16, 0.16, 0.06]},
          "box_1": {"center": [1, 0, 1], "size": [0.1, 0.1, 0.1]}}
    node = {"red_object_1": np.array([0.09, 0, 1.0]), "blue_object_1": np.array([0.02, 0, 1.0]),
            "green_object_1": np.array([1.3, 0, 1.0])}     # 0.3 m from box_1: beyond its 5 cm gate
    matches = {m.gt_id: m.node_id for m in match_objects(gt, node)}
    assert matches == {"mug_1": "blue_object_1", "bowl_1": "red_object_1"}
    assert match_objects(gt, {}) == []
