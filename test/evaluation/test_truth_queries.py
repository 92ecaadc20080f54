"""Ground-truth frames -> query records, frame sets, and center matching of the node's objects."""
import numpy as np
import pytest

from spatial_vlm_ros.evaluation.matching import match_objects
from spatial_vlm_ros.evaluation.truth_queries import askable_objects, frame_queries, frame_sets, label_names


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


def test_missed_objects_are_scored_wrong_not_skipped():
    from spatial_vlm_ros.evaluation.facts import merge_facts
    from spatial_vlm_ros.evaluation.scoring import summarize
    from spatial_vlm_ros.evaluation.truth_queries import NOT_FOUND, askable_records
    frame = _frame()
    names = {"mug_1": "mug"}                                  # the node found only the mug
    skipped_records, skipped = frame_queries(frame, names)     # old behaviour: silently dropped
    records, why = frame_queries(frame, names, missed=NOT_FOUND)
    assert len(records) > len(skipped_records)
    about_missed = [r for r in records if r.missed]
    assert {r.missed for r in about_missed} >= {"bowl_1", "cup_1"}
    assert all(not r.success and r.predicted is None and NOT_FOUND in r.message for r in about_missed)
    assert askable_records(records) == [r for r in records if not r.missed]
    # invisible objects are still not asked about (a camera cannot see them)
    assert why["object not visible"] == 1 and all("can_1" not in (r.subject_id, r.reference_id) for r in records)
    # answer the askable ones correctly: accuracy still counts every missed question as wrong
    for r in askable_records(records):
        r.success, r.predicted = True, r.truth
    s = summarize(records)
    facts = [f for f in merge_facts(records) if f.kind == "relation" and not f.ambiguous]
    assert s["relations"]["overall"]["n_scored"] == len(facts) > 0          # each fact once
    assert s["relations"]["overall"]["accuracy"] == pytest.approx(
        sum(not any(r.missed for r in f.askings) for f in facts) / len(facts))
    q = [r for r in records if r.kind == "quantity" and float(r.truth) >= 0.02]
    assert s["quantities"]["overall"]["n_failed"] == sum(bool(r.missed) for r in q) > 0


def test_detector_recall_and_precision_counts():
    from spatial_vlm_ros.evaluation.truth_queries import detection_counts
    c = detection_counts(present=10, found=8, reported=9)
    assert c["recall"] == pytest.approx(0.8) and c["precision"] == pytest.approx(8 / 9)
    assert c["missed"] == 2 and c["false_positives"] == 1
    empty = detection_counts(0, 0, 0)
    assert np.isnan(empty["recall"]) and np.isnan(empty["precision"])


def test_question_names_use_labels_then_matched_ids():
    from spatial_vlm_ros.evaluation.asking import question_names
    from spatial_vlm_ros.evaluation.matching import Match
    visible = askable_objects(_frame())
    matches = [Match("cup_1", "cup_2", 0.01), Match("mug_1", "red_object_1", 0.01)]
    # ground-truth labelled detectors: unique labels by label, duplicates by the matched node id
    assert question_names("external", visible, matches) == {"mug_1": "mug", "bowl_1": "bowl", "cup_1": "cup_2"}
    assert question_names("boxes", visible, matches)["cup_1"] == "cup_2"
    # tabletop: only matched objects have a name; the rest were not found
    assert question_names("tabletop", visible, matches) == {"cup_1": "cup_2", "mug_1": "red_object_1"}
