"""The support surface as an object: samples kept by the gravity estimate, the table/floor naming rule, the
object view every relation works with, the distance to the edge; on fixtures and on an analytic frame."""
from dataclasses import replace

import numpy as np
import pytest
from reasoning_fixtures import TABLE_Z, make_scene, on_table, pitched_gravity
from surface_fixtures import TABLE_X, TABLE_Y, surface_points, tabletop, tabletop_queries, tabletop_scene

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.core.gravity_frame import sample_surfaces
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.relations import evaluate
from spatial_vlm_ros.core.scene_queries import find_objects
from spatial_vlm_ros.core.support_surface import (
    FLOOR,
    TABLE,
    distance_to_edge,
    height_above,
    near_edge,
    support_surfaces,
    surface_objects,
    with_surfaces,
)
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.sim import analytic

NOISE = DepthNoiseModel()


def _table(scene):
    surfaces = support_surfaces(scene)
    assert [s.name for s in surfaces] == [TABLE]
    return surfaces[0]


def test_the_table_object_spans_the_measured_extent():
    scene = tabletop_scene()
    table = _table(scene)
    lo, hi = table.bounds
    assert np.allclose(lo, (TABLE_X[0] + 0.005, TABLE_Y[0] + 0.005), atol=1e-6)   # outermost samples
    assert np.allclose(hi, (TABLE_X[1] - 0.005, TABLE_Y[1] - 0.005), atol=1e-6)
    assert table.height == pytest.approx(TABLE_Z, abs=1e-9)
    assert table.area_m2 == pytest.approx((1.2 - 0.01) * (0.9 - 0.01), rel=1e-6)
    obj = surface_objects(scene)[0]
    assert (obj.id, obj.label) == ("table", "table") and obj.extra["surface"]
    assert obj.box_max[2] == pytest.approx(TABLE_Z) and obj.size[2] == pytest.approx(table.thickness_m)
    assert np.allclose(scene.center_gravity(obj)[:2], (0.0, 0.95), atol=1e-6)
    assert [o.id for o in with_surfaces(scene)][-1] == "table"


def test_every_relation_works_with_the_table():
    scene = tabletop_scene()
    table = surface_objects(scene)[0]
    by_id = {o.id: o for o in scene.objects}
    assert evaluate("on_top_of", by_id["mug_1"], table, scene, NOISE).holds
    assert not evaluate("on_top_of", by_id["lemon_1"], table, scene, NOISE).holds      # on the box
    assert evaluate("above", by_id["lemon_1"], table, scene, NOISE).holds
    on_table_ids = [m.object.id for m in find_objects(scene, "on", "table", noise=NOISE).matches]
    assert sorted(on_table_ids) == ["bottle_1", "bowl_1", "box_1", "can_1", "mug_1"]


def test_height_above_the_table_is_the_gap_from_its_top():
    scene = tabletop_scene()
    table = surface_objects(scene)[0]
    by_id = {o.id: o for o in scene.objects}
    assert height_above(by_id["box_1"], table, scene, NOISE).value_m == pytest.approx(0.0, abs=1e-9)
    lemon = height_above(by_id["lemon_1"], table, scene, NOISE)
    assert lemon.value_m == pytest.approx(0.20, abs=1e-9) and 0 < lemon.uncertainty_m < 0.01
    q = tabletop_queries()
    a = q.ask("How high is the lemon above the table?")
    assert a.success and a.kind == "metric" and a.value == pytest.approx(0.20, abs=1e-9), a.message
    assert a.answer == "The lemon is 20 cm above the table."
    a = q.ask("How high is the box above the table?")
    assert a.success and a.value == pytest.approx(0.0, abs=1e-9) and a.answer.startswith("The box rests on the table")


def test_distance_to_edge_against_the_true_outline():
    scene = tabletop_scene()
    table = _table(scene)
    by_id = {o.id: o for o in scene.objects}
    for oid in ("mug_1", "can_1", "bottle_1", "bowl_1"):
        c = scene.center_gravity(by_id[oid])[:2]
        truth = min(c[0] - TABLE_X[0], TABLE_X[1] - c[0], c[1] - TABLE_Y[0], TABLE_Y[1] - c[1])
        d = distance_to_edge(by_id[oid], table, scene, NOISE)
        assert abs(d.value_m - truth) <= max(3 * d.uncertainty_m, 1e-3), (oid, d)
    assert near_edge(by_id["can_1"], table, scene, NOISE).holds
    assert not near_edge(by_id["bowl_1"], table, scene, NOISE).holds
    outside = on_table("cup_1", 0.0, 1.6, (0.05, 0.05, 0.05), scene.gravity)
    assert distance_to_edge(outside, table, scene, NOISE).value_m == pytest.approx(-0.2, abs=0.006)
    with pytest.raises(InputError, match="for an object"):
        distance_to_edge(surface_objects(scene)[0], table, scene, NOISE)


def test_edge_questions():
    q = tabletop_queries()
    a = q.ask("Is the can near the table edge?")
    assert a.success and a.kind == "yes_no" and a.yes and a.answer.startswith("Yes, the can is near the edge")
    a = q.ask("Is the bowl near the edge of the table?")
    assert a.success and not a.yes
    a = q.ask("How far is the can from the edge of the table?")
    assert a.success and a.kind == "metric" and a.value == pytest.approx(0.035, abs=0.006)
    a = q.ask("Is the can within 10 cm of the table edge?")
    assert a.success and a.yes
    a = q.ask("How far is the can from the floor edge?")
    assert not a.success and a.kind == "" and "no floor surface" in a.message


def test_naming_rule_table_and_floor():
    g0 = pitched_gravity(35.0)
    floor_pts = surface_points(g0, x=(-1.5, 1.5), y=(0.3, 2.5), z=TABLE_Z - 0.75)
    table_pts = surface_points(g0)
    g = replace(g0, surfaces=sample_surfaces(np.concatenate([table_pts, floor_pts]), g0.up,
                                             (TABLE_Z, TABLE_Z - 0.75), 0.01))
    names = [(s.name, round(s.height, 3)) for s in support_surfaces(make_scene([], g))]
    assert names == [(TABLE, TABLE_Z), (FLOOR, TABLE_Z - 0.75)]
    # a lone support far below the camera is the floor; a lower surface only 10 cm down is not a floor
    low = replace(g0, surfaces=sample_surfaces(surface_points(g0, z=-1.5), g0.up, (-1.5,), 0.01))
    assert [s.name for s in support_surfaces(make_scene([], low))] == [FLOOR]
    step = replace(g0, surfaces=sample_surfaces(np.concatenate([table_pts, surface_points(g0, z=TABLE_Z - 0.1)]),
                                                g0.up, (TABLE_Z, TABLE_Z - 0.1), 0.01))
    assert [s.name for s in support_surfaces(make_scene([], step))] == [TABLE]
    assert support_surfaces(make_scene([], g0)) == ()          # a static up measures no surface


def test_a_far_sample_cluster_is_not_part_of_the_table():
    g0 = pitched_gravity(35.0)
    shelf = surface_points(g0, x=(2.0, 2.3), y=(2.0, 2.2))          # same height, across the room
    g = replace(g0, surfaces=sample_surfaces(np.concatenate([surface_points(g0), shelf]), g0.up, (TABLE_Z,), 0.01))
    lo, hi = _table(make_scene([], g)).bounds
    assert hi[0] < TABLE_X[1] and hi[1] < TABLE_Y[1]


def test_sample_surfaces_keeps_each_height_once():
    g = pitched_gravity(20.0)
    pts = surface_points(g)
    found = sample_surfaces(pts, g.up, (TABLE_Z, TABLE_Z + 0.01, TABLE_Z - 1.0), 0.01)
    assert len(found) == 1 and found[0].count == len(pts) and not found[0].xy.flags.writeable


def test_objects_are_unchanged_by_the_surfaces():
    objects, g = tabletop()
    assert all(not o.extra.get("surface") for o in objects)
    assert [o.id for o in tabletop_scene().objects] == [o.id for o in objects]


# ------------------------------------------------------------------ through the frame pipeline
OBJECTS = [analytic.BoxObject("box", (-0.20, 0.05), (0.10, 0.10, 0.16), color=(210, 35, 35)),
           analytic.CylinderObject("mug", (0.15, 0.15), 0.04, 0.10, color=(40, 70, 210)),
           analytic.BoxObject("lemon", (-0.20, 0.05), (0.05, 0.05, 0.05), base_z=0.16, color=(230, 200, 30))]


def test_the_pipeline_measures_the_table_of_an_analytic_frame():
    pose = analytic.CameraPose()                 # 60 cm above the table, 90 cm back, pitched 35 degrees
    frame = analytic.render(OBJECTS, pose=pose, camera=analytic.default_camera(320, 240))
    pipeline = FramePipeline(PipelineConfig())
    pipeline.process(Frame(rgb=frame.rgb, depth=encode_depth_mm(frame.depth), depth_encoding="16UC1",
                           camera=frame.camera, stamp=1.0,
                           segmentation=Segmentation(frame.mask, frame.ids, frame.labels, [1.0] * len(frame.ids))))
    scene = pipeline.memory.snapshot()
    table = _table(scene)
    assert table.height == pytest.approx(-pose.height, abs=0.005)
    # gravity frame of a level-yaw camera: world shifted by the camera position (0, -0.9, 0.6)
    lo, hi = table.bounds
    assert lo[1] >= 0.5 - 0.01 and hi[1] <= 1.3 + 0.01 and lo[0] >= -0.6 - 0.01 and hi[0] <= 0.6 + 0.01
    assert hi[1] > 1.3 - 0.05                     # the far edge is in view
    by_label = {o.label: o for o in scene.objects}
    far = distance_to_edge(by_label["mug"], table, scene, NOISE)   # nearest edge: the far one, 25 cm
    assert abs(far.value_m - 0.25) <= 3 * far.uncertainty_m + 0.005, far
    on = sorted(m.object.label for m in find_objects(scene, "on", "table", noise=NOISE).matches)
    assert on == ["box", "mug"]
    lemon = height_above(by_label["lemon"], surface_objects(scene)[0], scene, NOISE)
    assert lemon.value_m == pytest.approx(0.16, abs=0.01)
