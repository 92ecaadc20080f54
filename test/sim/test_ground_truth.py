"""Ground truth from true geometry, through the package's own relation and quantity definitions."""
import json

import numpy as np
import pytest
import trimesh

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.relations import RELATIONS
from spatial_vlm_ros.sim.ground_truth import GroundTruthConfig, complete_frame, frame_ground_truth, gravity_for_pose
from spatial_vlm_ros.sim.ground_truth_file import load_ground_truth, save_ground_truth
from spatial_vlm_ros.sim.meshes import SimObjectMesh, SupportTop
from spatial_vlm_ros.sim.scene_sampler import PlacedObject, TabletopScene
from spatial_vlm_ros.sim.trajectory import Intrinsics, Viewpoint, world_to_optical

INTR = Intrinsics(320, 240, 250.0, 250.0, 159.5, 119.5)


def _box(size):
    m = trimesh.creation.box(size)
    m.apply_translation([0, 0, size[2] / 2])
    return m


def _placed(i, oid, mesh, xyz, supported_by="table", top=None):
    pose = np.eye(4)
    pose[:3, 3] = xyz
    return PlacedObject(i, oid, SimObjectMesh(oid.rsplit("_", 1)[0], mesh, None, top), pose, supported_by)


@pytest.fixture(scope="module")
def layout():
    """A 20x10x10 cm box carrying a can, a cube to its right, a second cube behind that one, 5 mm further right."""
    can = trimesh.creation.cylinder(radius=0.033, height=0.12, sections=48)
    can.apply_translation([0, 0, 0.06])
    objects = [
        _placed(1, "box_1", _box([0.2, 0.1, 0.1]), [-0.2, 0.0, 0.0], top=SupportTop(0.1, 0.1, 0.05)),
        _placed(2, "can_1", can, [-0.2, 0.0, 0.1], supported_by="box_1"),
        _placed(3, "cube_1", _box([0.1, 0.1, 0.1]), [0.2, 0.05, 0.0]),
        _placed(4, "cube_2", _box([0.1, 0.1, 0.1]), [0.205, 0.35, 0.0]),
    ]
    scene = TabletopScene("hand_made", objects, [], [], 0.3, (0.8, 0.5), 0.75)
    pose = Viewpoint((0.0, 0.1, 0.05), azimuth=0.0, pitch=np.radians(35), distance=1.0).pose()
    mask = np.zeros((240, 320), np.uint16)
    mask[:4, :4] = [[1], [2], [3], [4]]          # visible-pixel counts: 4 each
    gt = frame_ground_truth(scene, INTR, pose, mask, stamp_ns=5_000_000_000, cfg=GroundTruthConfig())
    return scene, pose, gt


def _rel(gt, relation, a, b):
    return next(r for r in gt["relations"] if (r["relation"], r["subject"], r["reference"]) == (relation, a, b))


def _qty(gt, quantity, a, b=None):
    return next(q["value_m"] for q in gt["quantities"]
                if (q["quantity"], q["subject"], q["reference"]) == (quantity, a, b))


def test_gravity_frame_and_boxes_come_from_the_true_pose(layout):
    scene, pose, gt = layout
    g = gravity_for_pose(pose)
    assert g.up == pytest.approx(pose[:3, :3].T @ [0, 0, 1])
    assert gt["gravity"]["support_height"] == pytest.approx(-pose[2, 3], abs=1e-6)
    box = next(o for o in gt["objects"] if o["id"] == "box_1")
    assert box["size"] == pytest.approx([0.2, 0.1, 0.1], abs=1e-6)     # camera azimuth 0: gravity x = world x
    assert box["box_min"][2] == pytest.approx(-pose[2, 3], abs=1e-6)   # bottom on the table
    t = world_to_optical(pose)
    assert box["center"] == pytest.approx(t[:3, :3] @ [-0.2, 0, 0.05] + t[:3, 3], abs=1e-6)
    can = next(o for o in gt["objects"] if o["id"] == "can_1")
    assert can["size"][2] == pytest.approx(0.12, abs=1e-6) and can["supported_by"] == "box_1"
    assert can["visible_pixels"] == 4 and can["visible"] is False     # below the 50-pixel threshold


def test_footprints_are_the_meshes_outlines_from_above(layout):
    _, _, gt = layout
    box = next(o for o in gt["objects"] if o["id"] == "box_1")
    fp = np.array(box["footprint"])
    assert fp.min(axis=0) == pytest.approx(box["box_min"][:2], abs=1e-4)     # a box's outline is its box
    assert fp.max(axis=0) == pytest.approx(box["box_max"][:2], abs=1e-4)
    x, y = fp[:, 0], fp[:, 1]
    area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))     # > 0: counter-clockwise
    assert area == pytest.approx(0.2 * 0.1, rel=1e-3)
    can = next(o for o in gt["objects"] if o["id"] == "can_1")
    cx, cy = np.array(can["footprint"]).T
    can_area = 0.5 * float(np.sum(cx * np.roll(cy, -1) - np.roll(cx, -1) * cy))
    assert can_area == pytest.approx(np.pi * 0.033 ** 2, rel=0.01)           # a circle, not its square box


def test_relations_of_the_layout(layout):
    _, _, gt = layout
    assert _rel(gt, "on_top_of", "can_1", "box_1")["holds"]
    assert _rel(gt, "above", "can_1", "box_1")["holds"]
    assert _rel(gt, "below", "box_1", "can_1")["holds"]
    assert not _rel(gt, "on_top_of", "box_1", "can_1")["holds"]
    assert not _rel(gt, "on_top_of", "cube_1", "box_1")["holds"]
    assert _rel(gt, "left_of", "box_1", "cube_1")["holds"]
    assert _rel(gt, "in_front_of", "cube_1", "cube_2")["holds"]
    assert _rel(gt, "taller_than", "can_1", "cube_1")["holds"]
    assert _rel(gt, "wider_than", "box_1", "cube_1")["holds"]
    assert _rel(gt, "next_to", "can_1", "box_1")["holds"] is False     # stacked, not side by side
    # every relation for every ordered pair, margins agree with holds
    n = len(gt["objects"])
    assert len(gt["relations"]) == n * (n - 1) * len(RELATIONS)
    assert all((r["margin_m"] > 0) == r["holds"] for r in gt["relations"] if abs(r["margin_m"]) > 1e-6)


def test_pairs_within_the_margin_are_ambiguous(layout):
    _, _, gt = layout
    # cube_2 is 5 mm right of cube_1: the left/right call is within the 1 cm ambiguity margin
    assert _rel(gt, "left_of", "cube_1", "cube_2")["ambiguous"]
    assert _rel(gt, "right_of", "cube_2", "cube_1")["ambiguous"]
    assert not _rel(gt, "left_of", "box_1", "cube_1")["ambiguous"]
    assert _rel(gt, "taller_than", "cube_1", "cube_2")["ambiguous"]     # same size
    cfg = gt["ambiguity"]
    for r in gt["relations"]:
        threshold = max(cfg["margin_m"], cfg["sigmas"] * r["sigma_m"])
        if abs(abs(r["margin_m"]) - threshold) > 1e-5:           # away from the (rounded) boundary
            assert r["ambiguous"] == (abs(r["margin_m"]) < threshold)


def test_quantities_of_the_layout(layout):
    _, _, gt = layout
    assert _qty(gt, "height", "can_1") == pytest.approx(0.12, abs=1e-6)
    assert _qty(gt, "width", "box_1") == pytest.approx(0.2, abs=1e-6)
    assert _qty(gt, "distance", "box_1", "cube_1") == pytest.approx(np.hypot(0.4, 0.05), abs=1e-6)
    assert _qty(gt, "vertical_distance", "box_1", "can_1") == pytest.approx(0.11, abs=1e-6)
    assert _qty(gt, "horizontal_distance", "box_1", "can_1") == pytest.approx(0.0, abs=1e-6)
    assert 0.25 <= _qty(gt, "gap", "box_1", "cube_1") < 0.257             # faces 25 cm apart, 6 mm sampling
    assert _qty(gt, "gap", "box_1", "can_1") < 0.005                      # resting contact
    assert len([q for q in gt["quantities"] if q["reference"] is None]) == 4 * 4
    assert len([q for q in gt["quantities"] if q["reference"] is not None]) == 6 * 4


def test_boxes_only_ground_truth_is_completed_with_the_same_definitions(layout, tmp_path):
    _, _, gt = layout
    frame = {k: v for k, v in gt.items() if k not in ("relations", "quantities")}
    completed = complete_frame(frame)
    full = {(r["relation"], r["subject"], r["reference"]): r for r in gt["relations"]}
    compared = 0
    for r in completed["relations"]:
        truth = full[(r["relation"], r["subject"], r["reference"])]
        if r["relation"] != "next_to" and not truth["ambiguous"]:   # next_to uses the cloud (box surface here)
            assert r["holds"] == truth["holds"], r
            compared += 1
    assert compared > 100
    # the file round trip fills them in too
    path = save_ground_truth(tmp_path / "gt.json", [frame], source="user")
    loaded = load_ground_truth(path)
    assert list(loaded) == [5_000_000_000]
    assert len(loaded[5_000_000_000]["relations"]) == len(gt["relations"])


@pytest.mark.parametrize("doc, message", [
    ({"format": "something else", "frames": {}}, "not a ground-truth file"),
    ({"format": "spatial_vlm_ros/ground_truth", "version": 1, "frames": []}, "keyed by stamp"),
    ({"format": "spatial_vlm_ros/ground_truth", "version": 1, "frames": {"1.5": {}}}, "integer nanoseconds"),
    ({"format": "spatial_vlm_ros/ground_truth", "version": 1, "frames": {"15": {"objects": []}}}, "gravity"),
    ({"format": "spatial_vlm_ros/ground_truth", "version": 1,
      "frames": {"15": {"gravity": {"rotation": np.eye(3).tolist()}, "objects": [{"id": "a"}]}}}, "lacks label"),
    ({"format": "spatial_vlm_ros/ground_truth", "version": 7, "frames": {}}, "newer"),
])
def test_bad_ground_truth_files_are_rejected_clearly(doc, message, tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        load_ground_truth(path)
    with pytest.raises(InputError, match="cannot read"):
        load_ground_truth(tmp_path / "missing.json")
