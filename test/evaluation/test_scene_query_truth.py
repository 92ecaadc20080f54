"""Scene-level queries scored against ground truth: truths from true boxes, node answers mapped and judged."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from spatial_vlm_ros.evaluation.scene_query_truth import (
    convex_separation,
    fill_find,
    fill_placement,
    pose_margin,
    scene_queries,
    summarize_scene_queries,
)
from spatial_vlm_ros.evaluation.truth_queries import askable_objects

# a level camera 0.5 m above the table: camera optical (x right, y down, z forward) -> gravity (x right,
# y forward, z up)
R = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
TABLE_Z = -0.5


def _entry(oid, label, lo, hi, supported_by="table"):
    lo, hi = np.array(lo), np.array(hi)
    return {"id": oid, "label": label, "box_min": lo.tolist(), "box_max": hi.tolist(),
            "center": (R.T @ ((lo + hi) / 2)).tolist(), "size": (hi - lo).tolist(), "supported_by": supported_by,
            "visible": True, "in_view": True}


def _frame():
    return {"stamp_ns": 5_000_000_000, "scene_id": "scene_0000",
            "gravity": {"rotation": R.tolist(), "support_height": TABLE_Z},
            "objects": [_entry("box_1", "box", (-0.30, 0.90, -0.50), (-0.20, 1.00, -0.35)),
                        _entry("mug_1", "mug", (0.10, 0.90, -0.50), (0.18, 0.98, -0.40)),
                        _entry("lemon_1", "lemon", (-0.28, 0.92, -0.35), (-0.22, 0.98, -0.29), "box_1")]}


NAMES = {"box_1": "box", "mug_1": "mug", "lemon_1": "lemon"}


def _obj(node_id, gt_entry, offset=(0.0, 0.0, 0.0)):
    c = np.array(gt_entry["center"]) + np.array(offset)
    return SimpleNamespace(id=node_id, center=SimpleNamespace(x=c[0], y=c[1], z=c[2]))


def _find_response(*objects):
    return SimpleNamespace(success=True, message="", answer="", objects=list(objects),
                           confidences=[0.99] * len(objects))


def _records():
    frame = _frame()
    return frame, {r.query: r for r in scene_queries(frame, askable_objects(frame), NAMES)}


def test_the_queries_of_a_frame_and_their_truths():
    frame, recs = _records()
    assert set(recs) >= {"which objects are on the table", "what is on box_1", "the object closest to the camera",
                         "the tallest object"}
    assert recs["what is on box_1"].request == dict(relation="on_top_of", reference="box", limit=100)
    placements = [r for r in recs.values() if r.kind == "placement"]
    assert [r.truth for r in placements] == [True, False]          # 0.6x and 1.4x the free width
    free = placements[0].truth_free_width_m                       # facing sides at x = -0.20 and 0.10
    assert free == pytest.approx(0.30, abs=0.005)
    assert placements[0].request["size"][0] == pytest.approx(0.6 * free, abs=0.002)
    assert placements[0].request["references"] == ["box", "mug"]


def test_find_answers_are_mapped_to_ground_truth_and_judged_as_sets():
    frame, recs = _records()
    e = {x["id"]: x for x in frame["objects"]}
    visible = askable_objects(frame)
    right = recs["which objects are on the table"]
    fill_find(right, _find_response(_obj("mug_7", e["mug_1"], (0.01, 0, 0)), _obj("box_2", e["box_1"])), 3.0,
              frame, visible)
    assert right.truth == "box_1,mug_1" and right.predicted == "box_1,mug_1" and right.correct
    _, recs = _records()
    short = recs["which objects are on the table"]
    fill_find(short, _find_response(_obj("box_2", e["box_1"])), 3.0, frame, visible)       # the mug missing
    assert not short.correct
    _, recs = _records()
    extra = recs["what is on box_1"]
    fill_find(extra, _find_response(_obj("lemon_1", e["lemon_1"]), _obj("ghost_1", e["mug_1"], (0.5, 0, 0))),
              3.0, frame, visible)
    assert extra.truth == "lemon_1" and "?ghost_1" in extra.predicted and not extra.correct
    _, recs = _records()
    closest = recs["the object closest to the camera"]
    nearest = min(e.values(), key=lambda x: np.linalg.norm(x["center"]))["id"]
    fill_find(closest, _find_response(_obj("n_1", e[nearest])), 3.0, frame, visible)
    assert closest.truth == nearest and closest.correct
    _, recs = _records()
    failed = recs["the tallest object"]
    fill_find(failed, SimpleNamespace(success=False, message="no objects"), 3.0, frame, visible)
    assert not failed.answered and not failed.correct and failed.message == "no objects"


def _placement_response(fits, center_g, yaw=0.0, free=0.30):
    p = R.T @ np.asarray(center_g, dtype=float)
    return SimpleNamespace(success=True, message="", answer="", fits=fits, confidence=0.99, free_width=free,
                           yaw=yaw, pose=SimpleNamespace(position=SimpleNamespace(x=p[0], y=p[1], z=p[2])))


def test_a_fits_answer_counts_only_with_a_truly_free_pose():
    frame, recs = _records()
    good, _ = [r for r in recs.values() if r.kind == "placement"]
    side = good.request["size"][0]
    fill_placement(good, _placement_response(True, (-0.05, 0.95, TABLE_Z + 0.025)), 2.0, frame)
    assert good.pose_margin_m > 0.0 and good.correct
    _, recs = _records()
    bad_pose, _ = [r for r in recs.values() if r.kind == "placement"]
    fill_placement(bad_pose, _placement_response(True, (0.14, 0.94, TABLE_Z + 0.025)), 2.0, frame)   # in the mug
    assert bad_pose.pose_margin_m < -side / 2 and not bad_pose.correct
    _, recs = _records()
    _, too_big = [r for r in recs.values() if r.kind == "placement"]
    fill_placement(too_big, _placement_response(False, (-0.05, 0.95, TABLE_Z + 0.025)), 2.0, frame)
    assert too_big.correct and too_big.pose_margin_m is None


def test_a_reference_the_node_did_not_find_counts_wrong():
    frame = _frame()
    names = {"box_1": "box", "mug_1": "mug"}                      # the lemon was not found
    recs = scene_queries(frame, askable_objects(frame), {k: v for k, v in names.items() if k != "box_1"})
    missed = [r for r in recs if r.missed]
    assert missed and all(not r.success for r in missed)
    assert {r.missed for r in missed} == {"box_1"}
    summary = summarize_scene_queries(recs)
    assert summary["placement"]["missed"] == 2 and summary["placement"]["accuracy"] == 0.0
    assert summary["find"]["missed"] == 1 and summary["find"]["answered"] == 0


def test_summary_counts_pose_and_free_width():
    frame, recs = _records()
    good, big = [r for r in recs.values() if r.kind == "placement"]
    fill_placement(good, _placement_response(True, (-0.05, 0.95, TABLE_Z + 0.025), free=0.31), 2.0, frame)
    fill_placement(big, _placement_response(True, (0.14, 0.94, TABLE_Z + 0.025), free=0.20), 2.0, frame)
    s = summarize_scene_queries([good, big])["placement"]
    assert s["accuracy"] == 0.5 and s["fits_pose_free"] == 0.5
    assert s["free_width_within_10pct"] == 0.5      # 0.31 vs 0.30 within, 0.20 vs 0.30 not


def test_convex_separation():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert convex_separation(square, square + [1.5, 0]) == pytest.approx(0.5)      # face to face
    assert convex_separation(square, square + [0.8, 0.3]) == pytest.approx(-0.2)   # overlapping 0.2 along x
    diamond = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], float) * 0.5 + [2.0, 0.5]
    assert convex_separation(square, diamond) == pytest.approx(0.5, abs=1e-9)       # its tip 0.5 from the face


def test_the_pose_check_uses_the_mesh_footprint_where_there_is_one():
    frame = _frame()
    mug = next(e for e in frame["objects"] if e["id"] == "mug_1")             # box x 0.10..0.18, y 0.90..0.98
    corner = SimpleNamespace(**dict(zip("xyz", R.T @ np.array([0.105, 0.975, TABLE_Z + 0.01]))))
    size = (0.006, 0.006, 0.02)
    assert pose_margin(frame, size, corner, 0.0) < 0                          # inside the mug's box corner
    mug["footprint"] = [[0.14, 0.90], [0.18, 0.94], [0.14, 0.98], [0.10, 0.94]]   # a diamond inside the box
    assert pose_margin(frame, size, corner, 0.0) > 0.01                       # clear of the true outline
    low = SimpleNamespace(**dict(zip("xyz", R.T @ np.array([0.14, 0.94, TABLE_Z + 0.3]))))
    assert pose_margin(frame, size, low, 0.0) == math.inf                     # above everything
